//! What happens to mail that must not become a ticket: machine mail,
//! spoofs, strangers, members, duplicates, broken messages, and the
//! suspended queue an operator works through.

mod common;

use common::*;

fn outcome(report: &serde_json::Value) -> (String, String) {
    (
        report["outcome"].as_str().unwrap_or_default().to_string(),
        report["reason"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn machine_mail_is_ignored_and_never_answered() {
    let gw = Gateway::new();
    let id = gw.ingest(&Mail::new(ANNA, "Frage", "Hallo").render())["ticket"]
        .as_i64()
        .unwrap();
    let outbox_before = gw.outbox().len();
    let tag = format!("[#{id}] Frage");

    let cases = [
        (
            Mail::new(ANNA, &tag, "Bin weg").header("Auto-Submitted", "auto-replied"),
            "auto_reply",
        ),
        (
            Mail::new(ANNA, &tag, "Bin weg").header("X-Autoreply", "yes"),
            "auto_reply",
        ),
        (
            Mail::new(ANNA, &tag, "Bin weg").header("X-Autorespond", "yes"),
            "auto_reply",
        ),
        (
            Mail::new(ANNA, &tag, "News").header("Precedence", "bulk"),
            "auto_reply",
        ),
        (
            Mail::new(ANNA, &tag, "News").header("Precedence", "list"),
            "auto_reply",
        ),
        (
            Mail::new(ANNA, &format!("Out of Office: {tag}"), "Away"),
            "auto_reply",
        ),
        (
            Mail::new(ANNA, &format!("Automatische Antwort: {tag}"), "Weg"),
            "auto_reply",
        ),
        (
            Mail::new(ANNA, &tag, "Schleife").header("X-Ticketgate-Loop", "support@example.com"),
            "loop",
        ),
        (
            Mail::new("MAILER-DAEMON@mx.example.com", "Undelivered Mail", "failed"),
            "bounce",
        ),
        (
            Mail::new(ANNA, &tag, "x").header("Return-Path", "<>"),
            "bounce",
        ),
    ];
    for (mail, reason) in cases {
        let report = gw.ingest(&mail.render());
        assert_eq!(
            outcome(&report),
            ("ignored".into(), reason.into()),
            "{}",
            mail.render()
        );
        assert!(report["ticket"].is_null());
    }
    // Auto-Submitted: no is a person.
    let human = gw.ingest(
        &Mail::new(ANNA, &tag, "Ich bin ein Mensch")
            .header("Auto-Submitted", "no")
            .render(),
    );
    assert_eq!(human["outcome"], "appended");

    let ticket = gw.ticket(id);
    assert_eq!(ticket["comments"].as_array().unwrap().len(), 2);
    assert_eq!(ticket["status"], "open");
    let new_rows = gw.outbox().len() - outbox_before;
    assert_eq!(new_rows, 1, "only the human reply notified the agents");
}

#[test]
fn a_bounce_marks_the_notification_it_refers_to() {
    let gw = Gateway::new();
    let id = gw.ingest(&Mail::new(JOHN, "Question", "Hi").render())["ticket"]
        .as_i64()
        .unwrap();
    let ack = gw.notifications("ticket_created", id)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
To: support@example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <dsn.1@mx.example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
Your message could not be delivered.\r\n\
--b\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.com\r\n\
\r\n\
Final-Recipient: rfc822; {JOHN}\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
--b\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: support@example.com\r\n\
To: {JOHN}\r\n\
Message-ID: {ack}\r\n\
Subject: [#{id}] Question\r\n\
--b--\r\n"
    );
    let report = gw.ingest(&dsn);
    assert_eq!(outcome(&report), ("ignored".into(), "bounce".into()));
    let row = gw.notifications("ticket_created", id).remove(0);
    assert_eq!(row["state"], "bounced");
    assert_eq!(
        gw.notifications("agent_new_ticket", id)[0]["state"],
        "queued"
    );
}

#[test]
fn spoofed_senders_are_suspended_without_backscatter() {
    let gw = Gateway::new();
    let id = gw.ingest(&Mail::new(ANNA, "Frage", "Hallo").render())["ticket"]
        .as_i64()
        .unwrap();
    let outbox_before = gw.outbox().len();
    let spoof = Mail::new(ANNA, &format!("AW: [#{id}] Frage"), "Bitte an IBAN DE00 überweisen.").header(
        "Authentication-Results",
        "mx.example.com; spf=fail smtp.mailfrom=evil.example; dkim=none; dmarc=fail (p=reject) header.from=mueller-maschinenbau.de",
    );
    let report = gw.ingest(&spoof.render());
    assert_eq!(
        outcome(&report),
        ("suspended".into(), "spoof_suspected".into())
    );
    assert_eq!(gw.ticket(id)["comments"].as_array().unwrap().len(), 1);
    assert_eq!(
        gw.outbox().len(),
        outbox_before,
        "nothing sent to the forged From"
    );

    // The same verdict from a server we do not trust is ignored.
    let untrusted = Mail::new(ANNA, &format!("AW: [#{id}] Frage"), "Echt.")
        .header("Authentication-Results", "relay.evil.example; dmarc=fail");
    assert_eq!(gw.ingest(&untrusted.render())["outcome"], "appended");

    // Without DMARC, SPF and DKIM must both fail.
    let both = Mail::new(ANNA, "Neu", "x").header(
        "Authentication-Results",
        "mx.example.com; spf=fail; dkim=fail",
    );
    assert_eq!(
        outcome(&gw.ingest(&both.render())),
        ("suspended".into(), "spoof_suspected".into())
    );
    let one = Mail::new(ANNA, "Neu", "x").header(
        "Authentication-Results",
        "mx.example.com; spf=fail; dkim=pass",
    );
    assert_eq!(gw.ingest(&one.render())["outcome"], "created");
}

#[test]
fn strangers_and_members_are_suspended_members_get_one_notice() {
    let gw = Gateway::new();
    let stranger = gw.ingest(&Mail::new("someone@gmail.example", "Hi", "Let me in").render());
    assert_eq!(
        outcome(&stranger),
        ("suspended".into(), "unknown_sender".into())
    );
    assert!(gw.outbox().is_empty(), "no mail to unknown senders");

    let member = gw.ingest(
        &Mail::new(
            "Peter.Weber@Mueller-Maschinenbau.de",
            "Drucker",
            "Geht nicht",
        )
        .render(),
    );
    assert_eq!(
        outcome(&member),
        ("suspended".into(), "not_key_user".into())
    );
    let outbox = gw.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["event"], "not_key_user");
    assert_eq!(outbox[0]["to"][0], PETER);
    assert!(outbox[0]["ticket"].is_null());
    assert!(gw.tickets().is_empty());

    let queue = gw.suspended();
    assert_eq!(queue.len(), 2);
    assert_eq!(queue[0]["from"], "someone@gmail.example");
    assert_eq!(queue[1]["subject"], "Drucker");
}

#[test]
fn released_messages_run_again_and_deleted_ones_are_gone() {
    let gw = Gateway::new();
    let stranger = Mail::new(
        "new.colleague@mueller-maschinenbau.de",
        "Zugang",
        "Ich bin neu.",
    );
    gw.ingest(&stranger.render());
    gw.ingest(&Mail::new("spam@spam.example", "Buy", "now").render());
    let queue = gw.suspended();
    assert_eq!(queue.len(), 2);

    // Releasing before the directory knows the sender suspends it again.
    let again = gw.json_lines(&[
        "suspended",
        "release",
        &queue[0]["id"].to_string(),
        "--json",
    ]);
    assert_eq!(
        outcome(&again[0]),
        ("suspended".into(), "unknown_sender".into())
    );
    assert_eq!(gw.suspended().len(), 2);

    // The operator adds the sender as key user and releases the message.
    let csv = gw.path("more.csv");
    std::fs::write(
        &csv,
        "organization,email,name,role,locale\nMüller Maschinenbau GmbH,new.colleague@mueller-maschinenbau.de,Neu,key_user,de\n",
    )
    .unwrap();
    gw.ok(&["users", "import", csv.to_str().unwrap()]);
    let queue = gw.suspended();
    let kept = queue.iter().find(|s| s["subject"] == "Zugang").unwrap();
    let released = gw.json_lines(&["suspended", "release", &kept["id"].to_string(), "--json"]);
    assert_eq!(
        released[0]["outcome"], "created",
        "not a duplicate of its own record"
    );
    assert_eq!(released[0]["message_id"], stranger.message_id());
    let ticket = gw.ticket(released[0]["ticket"].as_i64().unwrap());
    assert_eq!(ticket["comments"][0]["body"], "Ich bin neu.");
    assert_eq!(gw.suspended().len(), 1);

    // Now the same message from the mailbox is a duplicate.
    assert_eq!(gw.ingest(&stranger.render())["outcome"], "duplicate");

    let spam = gw.suspended()[0]["id"].to_string();
    gw.ok(&["suspended", "delete", &spam]);
    assert!(gw.suspended().is_empty());
    assert_eq!(
        gw.run(&["suspended", "delete", &spam]).status.code(),
        Some(1)
    );
    assert_eq!(
        gw.run(&["suspended", "release", &spam]).status.code(),
        Some(1)
    );
}

#[test]
fn duplicates_have_no_effect() {
    let gw = Gateway::new();
    let mail = Mail::new(JOHN, "Question", "Hi");
    assert_eq!(gw.ingest(&mail.render())["outcome"], "created");
    let outbox = gw.outbox().len();
    let report = gw.ingest(&mail.render());
    assert_eq!(report["outcome"], "duplicate");
    assert!(report["ticket"].is_null());
    assert_eq!(gw.tickets().len(), 1);
    assert_eq!(gw.outbox().len(), outbox);

    // Without a Message-ID the bytes decide.
    let no_id = Mail::new(JOHN, "Other", "Hello")
        .header("Message-ID", "")
        .render();
    assert_eq!(gw.ingest(&no_id)["outcome"], "created");
    assert_eq!(gw.ingest(&no_id)["outcome"], "duplicate");
}

#[test]
fn a_message_that_cannot_be_stored_is_suspended_not_lost() {
    // Storing this message's attachment fails (the database refuses it,
    // as a full disk would): the message is rolled back alone, kept, and
    // the next one goes on.
    let gw = Gateway::new();
    refuse_blobs_of_length(&gw, 5);
    let with_attachment = "From: anna.schmidt@mueller-maschinenbau.de\r\nTo: support@example.com\r\nSubject: Log\r\nMessage-ID: <att.1@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nAnbei.\r\n--b\r\nContent-Type: application/octet-stream; name=\"log.txt\"\r\nContent-Disposition: attachment; filename=\"log.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGFsbG8=\r\n--b--\r\n";
    let plain = Mail::new(ANNA, "Ohne Anhang", "Text").render();
    let dir = gw.dir.path();
    std::fs::write(dir.join("a.eml"), with_attachment).unwrap();
    std::fs::write(dir.join("b.eml"), &plain).unwrap();
    let reports = gw.ingest_files(&[dir.join("a.eml"), dir.join("b.eml")]);
    assert_eq!(
        outcome(&reports[0]),
        ("suspended".into(), "processing_error".into())
    );
    assert_eq!(reports[1]["outcome"], "created");
    assert_eq!(
        gw.tickets().len(),
        1,
        "the failed message left no half ticket"
    );
    let queue = gw.suspended();
    assert_eq!(queue[0]["reason"], "processing_error");
    assert!(queue[0]["detail"]
        .as_str()
        .unwrap()
        .contains("no space left"));

    // Once the database takes it again, release brings it in.
    allow_blobs_again(&gw);
    let released = gw.json_lines(&[
        "suspended",
        "release",
        &queue[0]["id"].to_string(),
        "--json",
    ]);
    assert_eq!(released[0]["outcome"], "created");
}

/// Makes the database refuse attachment contents of this length.
fn refuse_blobs_of_length(gw: &Gateway, length: usize) {
    if common::database::on_postgres() {
        execute(
            gw,
            &format!(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
                 IF LENGTH(NEW.data) = {length} THEN RAISE EXCEPTION 'no space left on device'; END IF;
                 RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
        );
        execute(
            gw,
            "CREATE TRIGGER refuse BEFORE INSERT ON blobs FOR EACH ROW EXECUTE FUNCTION refuse()",
        );
    } else {
        execute(
            gw,
            &format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON blobs WHEN LENGTH(NEW.data) = {length}
                 BEGIN SELECT RAISE(ABORT, 'no space left on device'); END"
            ),
        );
    }
}

fn allow_blobs_again(gw: &Gateway) {
    if common::database::on_postgres() {
        execute(gw, "DROP TRIGGER refuse ON blobs");
    } else {
        execute(gw, "DROP TRIGGER refuse");
    }
}

fn execute(gw: &Gateway, statement: &str) {
    let settings = ticketgate::config::Settings::load(&gw.config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = ticketgate::store::Store::open(&settings.database.url)
            .await
            .unwrap();
        let mut conn = store.acquire().await.unwrap();
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    });
}

#[test]
fn garbage_is_an_outcome_not_a_crash() {
    let gw = Gateway::new();
    for junk in [
        &b""[..],
        b"\x00\xff\xfe garbage \x00",
        b"no colon in this header line\r\n\r\nbody",
        b"From: \r\nSubject: =?utf-8?B?broken\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
    ] {
        let report = gw.ingest_bytes(junk);
        assert_eq!(report["outcome"], "suspended", "{report}");
        let reason = report["reason"].as_str().unwrap();
        assert!(matches!(reason, "unknown_sender" | "processing_error"), "{reason}");
    }
}
