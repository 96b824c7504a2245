//! A whole support conversation through the command line: new ticket,
//! agent answer, customer reply, solve, reopen, close, follow-up.

mod common;

use common::*;

#[test]
fn a_ticket_lives_through_the_spec_table() {
    let mut gw = Gateway::new();

    // A key user opens a ticket.
    let first = Mail::new(
        ANNA,
        "Rechnungsexport schlägt fehl",
        "Hallo,\nder Export bricht ab.\n\nGruß\nAnna",
    );
    let report = gw.ingest(&first.render());
    assert_eq!(report["outcome"], "created");
    assert_eq!(report["status"], "open");
    assert_eq!(report["message_id"], first.message_id());
    let id = report["ticket"].as_i64().unwrap();
    let ticket = gw.ticket(id);
    assert_eq!(ticket["requester"], ANNA);
    assert_eq!(ticket["organization"], "Müller Maschinenbau GmbH");
    assert_eq!(ticket["category"], "customer_support");
    assert_eq!(ticket["priority"], "normal");
    assert_eq!(
        ticket["comments"][0]["body"],
        "Hallo,\nder Export bricht ab.\n\nGruß\nAnna"
    );
    let ack = gw.notifications("ticket_created", id);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0]["to"][0], ANNA);
    assert_eq!(
        ack[0]["subject"],
        format!("[#{id}] Rechnungsexport schlägt fehl")
    );
    assert_eq!(
        gw.notifications("agent_new_ticket", id)[0]["to"][0],
        "team@example.com"
    );

    // An agent answers on the command line: pending, answer queued.
    gw.ok(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        LENA,
        "--body",
        "Bitte senden Sie uns das Log.",
    ]);
    assert_eq!(gw.ticket(id)["status"], "pending");
    let answer = gw.notifications("agent_reply", id);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0]["to"][0], ANNA);

    // The customer answers that mail above the delimiter: threads by
    // In-Reply-To, the quoted history is cut, status back to open.
    let answer_id = answer[0]["message_id"].as_str().unwrap().to_string();
    let reply = Mail::new(
        ANNA,
        &format!("AW: [#{id}] Rechnungsexport schlägt fehl"),
        &format!("Anbei das Log.\n\nAm 27.11.2026 um 10:03 schrieb Support <support@example.com>:\n> {DELIMITER}\n> Bitte senden Sie uns das Log.\n"),
    )
    .header("Subject", "AW: Rechnungsexport")
    .replying_to(&answer_id);
    let report = gw.ingest(&reply.render());
    assert_eq!(report["outcome"], "appended");
    assert_eq!(report["ticket"], id);
    assert_eq!(report["status"], "open");
    let ticket = gw.ticket(id);
    assert_eq!(ticket["comments"].as_array().unwrap().len(), 3);
    assert_eq!(ticket["comments"][2]["body"], "Anbei das Log.");
    assert_eq!(gw.notifications("agent_customer_reply", id).len(), 1);

    // Solved; a reply within 14 days reopens.
    gw.ok(&["ticket", "solve", &id.to_string()]);
    assert_eq!(gw.ticket(id)["status"], "solved");
    assert_eq!(gw.notifications("ticket_solved", id).len(), 1);
    gw.at("2026-12-05T10:00:00Z");
    let thanks = Mail::new(
        ANNA,
        &format!("AW: [#{id}] Rechnungsexport schlägt fehl"),
        "Leider wieder kaputt.",
    );
    let report = gw.ingest(&thanks.render());
    assert_eq!(report["outcome"], "reopened");
    assert_eq!(report["status"], "open");

    // Solved again; after 14 days the scheduler closes it.
    gw.ok(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        LENA,
        "--body",
        "Jetzt behoben.",
        "--solve",
    ]);
    assert_eq!(gw.ticket(id)["status"], "solved");
    gw.at("2026-12-19T09:00:00Z");
    let tick = gw.json_lines(&["tick", "--json"]);
    assert_eq!(tick[0]["closed"], serde_json::json!([]), "13 days: not yet");
    gw.at("2026-12-20T10:00:01Z");
    let tick = gw.json_lines(&["tick", "--json"]);
    assert_eq!(tick[0]["closed"], serde_json::json!([id]));
    assert_eq!(gw.ticket(id)["status"], "closed");
    let again = gw.json_lines(&["tick", "--json"]);
    assert_eq!(
        again[0]["closed"],
        serde_json::json!([]),
        "tick is idempotent"
    );

    // A closed ticket accepts no comments: an answer opens a follow-up.
    let late = Mail::new(
        ANNA,
        &format!("AW: [#{id}] Rechnungsexport schlägt fehl"),
        "Es ist wieder passiert.",
    );
    let report = gw.ingest(&late.render());
    assert_eq!(report["outcome"], "followup");
    assert_eq!(report["followup_of"], id);
    let followup = report["ticket"].as_i64().unwrap();
    assert_ne!(followup, id);
    let new = gw.ticket(followup);
    assert_eq!(new["followup_of"], id);
    assert_eq!(
        new["subject"], "Rechnungsexport schlägt fehl",
        "keeps the old subject"
    );
    assert_eq!(new["status"], "open");
    assert_eq!(new["comments"][0]["body"], "Es ist wieder passiert.");
    assert_eq!(gw.notifications("followup_created", followup).len(), 1);
    assert_eq!(
        gw.ticket(id)["comments"].as_array().unwrap().len(),
        5,
        "old ticket untouched"
    );

    // The CLI refuses to comment on the closed ticket.
    let refused = gw.run(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        LENA,
        "--body",
        "x",
    ]);
    assert_eq!(refused.status.code(), Some(1));
}

#[test]
fn solved_longer_than_reopen_days_takes_a_follow_up_even_before_the_scheduler_ran() {
    let mut gw = Gateway::new();
    let id = gw.ingest(&Mail::new(JOHN, "Licence question", "How many seats?").render())["ticket"]
        .as_i64()
        .unwrap();
    gw.ok(&["ticket", "solve", &id.to_string()]);
    gw.at("2026-12-11T10:00:00Z"); // exactly 14 days: still reopens
    let report = gw.ingest(
        &Mail::new(
            JOHN,
            &format!("Re: [#{id}] Licence question"),
            "One more thing",
        )
        .render(),
    );
    assert_eq!(report["outcome"], "reopened");
    gw.ok(&["ticket", "solve", &id.to_string()]);
    gw.at("2026-12-25T10:00:01Z");
    let report = gw.ingest(
        &Mail::new(
            JOHN,
            &format!("Re: [#{id}] Licence question"),
            "And another",
        )
        .render(),
    );
    assert_eq!(report["outcome"], "followup");
    assert_eq!(report["followup_of"], id);
}

#[test]
fn agents_answer_by_mail_with_commands() {
    let gw = Gateway::new();
    let id = gw
        .ingest(&Mail::new(JOHN, "Import fails", "CSV import fails with error 42.").render())
        ["ticket"]
        .as_i64()
        .unwrap();
    let subject = format!("Re: [#{id}] Import fails");

    let pending =
        gw.ingest(&Mail::new(MARK, &subject, "Which version do you run?\n\nMark").render());
    assert_eq!(pending["outcome"], "appended");
    assert_eq!(pending["status"], "pending");

    let internal = gw.ingest(
        &Mail::new(
            MARK,
            &subject,
            "#internal\n\nCustomer is on 4.2, known bug.",
        )
        .render(),
    );
    assert_eq!(internal["outcome"], "appended");
    assert_eq!(
        internal["status"], "pending",
        "an internal note leaves the status"
    );

    let solved = gw.ingest(&Mail::new(MARK, &subject, "#solved #urgent\n\nFixed in 4.3.").render());
    assert_eq!(solved["status"], "solved");

    let ticket = gw.ticket(id);
    let comments = ticket["comments"].as_array().unwrap();
    assert_eq!(comments[1]["body"], "Which version do you run?\n\nMark");
    assert_eq!(comments[1]["author"], MARK);
    assert_eq!(comments[2]["public"], false);
    assert_eq!(comments[2]["body"], "Customer is on 4.2, known bug.");
    assert_eq!(comments[3]["body"], "Fixed in 4.3.");
    assert_eq!(ticket["priority"], "urgent");
    assert_eq!(ticket["status"], "solved");

    // Two public answers reached the customer, the internal note did not.
    assert_eq!(gw.notifications("agent_reply", id).len(), 2);
    assert_eq!(gw.notifications("ticket_solved", id).len(), 1);
}

#[test]
fn replies_thread_by_token_reference_and_subject_tag() {
    let gw = Gateway::new();
    let first = Mail::new(ANNA, "Drucker", "Druck geht nicht.");
    let id = gw.ingest(&first.render())["ticket"].as_i64().unwrap();

    // By a reply token in the recipient address, with nothing else.
    let signer = ticketgate::domain::thread::TokenSigner::new(SECRET);
    let token = signer.issue(ticketgate::domain::thread::REPLY_PURPOSE, id);
    let by_token =
        Mail::new(JONAS, "Antwort", "Per Token.").to(&format!("support+{token}@example.com"));
    let report = gw.ingest(&by_token.render());
    assert_eq!(
        (report["outcome"].as_str(), report["ticket"].as_i64()),
        (Some("appended"), Some(id))
    );

    // By References to the customer's first mail (another key user of the
    // same organization may write on it).
    let by_reference =
        Mail::new(JONAS, "AW: Drucker", "Per Referenz.").replying_to(&first.message_id());
    assert_eq!(gw.ingest(&by_reference.render())["ticket"], id);

    // By References to one of our notifications.
    let ack = gw.notifications("ticket_created", id)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let by_notification = Mail::new(ANNA, "AW: Drucker", "Per Benachrichtigung.").replying_to(&ack);
    assert_eq!(gw.ingest(&by_notification.render())["ticket"], id);

    // A forged token is no thread; the subject tag behind it still is.
    let forged = Mail::new(ANNA, &format!("AW: [#{id}] Drucker"), "Gefälscht.")
        .to(&format!("support+{}-aaaaaaaaaaaaa@example.com", id + 1));
    assert_eq!(gw.ingest(&forged.render())["ticket"], id);
    let comments = gw.ticket(id)["comments"].as_array().unwrap().len();
    assert_eq!(comments, 5);
}

#[test]
fn nobody_writes_into_another_organizations_ticket() {
    let gw = Gateway::new();
    let first = Mail::new(ANNA, "Vertraulich", "Interne Zahlen.");
    let id = gw.ingest(&first.render())["ticket"].as_i64().unwrap();
    let signer = ticketgate::domain::thread::TokenSigner::new(SECRET);
    let token = signer.issue(ticketgate::domain::thread::REPLY_PURPOSE, id);

    for attack in [
        Mail::new(JOHN, &format!("Re: [#{id}] Vertraulich"), "by subject tag"),
        Mail::new(JOHN, "Re: Vertraulich", "by reference").replying_to(&first.message_id()),
        Mail::new(JOHN, "Re: Vertraulich", "by a stolen token")
            .to(&format!("support+{token}@example.com")),
    ] {
        let report = gw.ingest(&attack.render());
        assert_eq!(report["outcome"], "created", "treated as new: {report}");
        assert_ne!(report["ticket"], id);
        let theirs = gw.ticket(report["ticket"].as_i64().unwrap());
        assert_eq!(theirs["organization"], "Acme Logistics Ltd");
    }
    let ticket = gw.ticket(id);
    assert_eq!(
        ticket["comments"].as_array().unwrap().len(),
        1,
        "Müller's ticket untouched"
    );
}

#[test]
fn categories_and_emergencies_from_the_mail() {
    let gw = Gateway::new();
    let billing = gw.ingest(
        &Mail::new(ANNA, "Rechnung", "x")
            .to("Support+Billing@Example.com")
            .render(),
    );
    assert_eq!(
        gw.ticket(billing["ticket"].as_i64().unwrap())["category"],
        "billing"
    );
    let dev = gw.ingest(
        &Mail::new(ANNA, "API", "x")
            .to("support+dev@example.com")
            .render(),
    );
    assert_eq!(
        gw.ticket(dev["ticket"].as_i64().unwrap())["category"],
        "developer_support"
    );
    let unknown = gw.ingest(
        &Mail::new(ANNA, "Was", "x")
            .to("support+whatever@example.com")
            .render(),
    );
    assert_eq!(
        gw.ticket(unknown["ticket"].as_i64().unwrap())["category"],
        "customer_support"
    );

    let urgent = gw.ingest(&Mail::new(ANNA, "AW: notfall: Produktion steht", "Hilfe").render());
    let id = urgent["ticket"].as_i64().unwrap();
    let ticket = gw.ticket(id);
    assert_eq!(ticket["priority"], "urgent");
    assert_eq!(
        ticket["subject"], "AW: notfall: Produktion steht",
        "stored as sent"
    );
    let oncall = gw.notifications("urgent_ticket", id);
    assert_eq!(oncall.len(), 1);
    assert_eq!(oncall[0]["to"][0], "oncall@example.com");
    assert!(gw
        .notifications("urgent_ticket", billing["ticket"].as_i64().unwrap())
        .is_empty());
}
