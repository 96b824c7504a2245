//! The sample mailbox in `fixtures/mail/` (real clients, encodings,
//! attachments, machine mail, attacks), ingested in name order into a fresh
//! database, must give the outcomes written down in
//! `fixtures/mail/expected-ingest.jsonl`.

mod common;

use common::*;
use serde_json::Value;

fn fixture_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(format!("{FIXTURES}/mail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

fn expected() -> Vec<Value> {
    std::fs::read_to_string(format!("{FIXTURES}/mail/expected-ingest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_sample_mailbox_gives_the_documented_outcomes() {
    let gw = Gateway::new();
    let files = fixture_files();
    let reports = gw.ingest_files(&files);
    let expected = expected();
    assert_eq!(reports.len(), files.len());
    assert_eq!(expected.len(), files.len());

    let mut mismatches = Vec::new();
    for (report, want) in reports.iter().zip(&expected) {
        let mut fields = vec!["outcome", "ticket", "status", "reason", "followup_of"];
        if !want["message_id"].is_null() {
            fields.push("message_id");
        }
        for field in fields {
            if report[field] != want[field] {
                mismatches.push(format!(
                    "{}: {field} = {} (expected {})",
                    want["file"], report[field], want[field]
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // Messages without a Message-ID get a stable one from their bytes.
    let no_id = &reports[21];
    assert!(no_id["message_id"]
        .as_str()
        .unwrap()
        .ends_with("@sha256.ticketgate>"));

    // Ingesting the whole mailbox again changes nothing.
    let again = gw.ingest_files(&files);
    assert!(
        again.iter().all(|r| r["outcome"] == "duplicate"),
        "{again:?}"
    );
    assert_eq!(gw.tickets().len(), 7);
}

#[test]
fn the_sample_mailbox_leaves_the_documented_state() {
    let gw = Gateway::new();
    gw.ingest_files(&fixture_files());

    let one = gw.ticket(1);
    assert_eq!(one["status"], "pending");
    let authors: Vec<&str> = one["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["author"].as_str().unwrap())
        .collect();
    assert_eq!(
        authors,
        [ANNA, ANNA, JONAS, LENA],
        "nothing from the auto-replies, the loop, the spoof or John"
    );

    let two = gw.ticket(2);
    assert_eq!(
        (two["category"].as_str(), two["status"].as_str()),
        (Some("billing"), Some("solved"))
    );

    let three = gw.ticket(3);
    assert_eq!(three["priority"], "urgent");
    assert_eq!(
        three["subject"],
        "[Notfall] Produktionssystem steht – Login nicht möglich"
    );

    assert_eq!(gw.ticket(6)["category"], "developer_support");
    assert_eq!(gw.ticket(7)["category"], "customer_support");

    // Subjects decoded from RFC 2047 (B and Q, several charsets).
    for ticket in gw.tickets() {
        let subject = ticket["subject"].as_str().unwrap();
        assert!(!subject.contains("=?"), "undecoded subject {subject}");
    }

    let suspended = gw.suspended();
    let reasons: Vec<&str> = suspended
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "not_key_user",
            "unknown_sender",
            "spoof_suspected",
            "unknown_sender"
        ]
    );
    assert_eq!(suspended[0]["from"], PETER);

    // Nothing is sent to a spoofed, unknown or machine sender; the member
    // gets the one notice.
    let outbox = gw.outbox();
    let recipients: Vec<&str> = outbox
        .iter()
        .map(|r| r["to"][0].as_str().unwrap())
        .collect();
    assert!(!recipients.contains(&"sandra.klein1987@gmail.com"));
    assert!(!recipients.iter().any(|r| r.contains("outlook-mail.eu")));
    let notices: Vec<_> = outbox
        .iter()
        .filter(|r| r["event"] == "not_key_user")
        .collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["to"][0], PETER);
}

#[test]
fn attachments_are_stored_by_content_under_safe_names() {
    let gw = Gateway::new();
    gw.ingest_files(&fixture_files());
    let ticket = gw.ticket(6);
    let attachments = ticket["comments"][0]["attachments"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = attachments
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    // "../../etc/passwd" as sent: only its last path component is kept.
    assert_eq!(
        names,
        [
            "Prüfbericht_März.pdf",
            "Fehlermeldung Postman.png",
            "passwd"
        ]
    );
    assert_eq!(attachments[0]["content_type"], "application/pdf");
    assert_eq!(attachments[1]["content_type"], "image/png");
    let sizes: Vec<u64> = attachments
        .iter()
        .map(|a| a["size"].as_u64().unwrap())
        .collect();

    // Exactly three contents, in the database by hash, with the sizes
    // shown; nothing written to the file system.
    let blobs: Vec<(String, i64)> = query(
        &gw,
        "SELECT sha256, LENGTH(data) FROM blobs ORDER BY LENGTH(data)",
    );
    assert!(blobs.iter().all(|(sha, _)| sha.len() == 64));
    let mut blob_sizes: Vec<u64> = blobs.iter().map(|(_, n)| *n as u64).collect();
    blob_sizes.sort();
    let mut sizes_sorted = sizes.clone();
    sizes_sorted.sort();
    assert_eq!(blob_sizes, sizes_sorted);
    assert!(!gw.path("data").exists());
    assert!(!gw.path("etc/passwd").exists());
    assert!(!gw.path("data/etc/passwd").exists());
}

/// Rows of a query on the gateway's database.
fn query(gw: &Gateway, sql: &str) -> Vec<(String, i64)> {
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
        sqlx::query_as(sql).fetch_all(&mut *conn).await.unwrap()
    })
}

/// The comment bodies keep what each customer wrote this time: quote
/// headers, quoted history, our delimiter (also wrapped and quoted),
/// signatures and agent commands are cut, across clients and charsets.
#[test]
fn comments_hold_only_the_new_text() {
    let gw = Gateway::new();
    gw.ingest_files(&fixture_files());
    let body = |ticket: i64, index: usize| -> String {
        gw.ticket(ticket)["comments"][index]["body"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let cut_everywhere = |text: &str| {
        for banned in [
            DELIMITER,
            "Bitte geben Sie Ihre Antwort",
            "\n>",
            "schrieb",
            "Gesendet:",
            "Von:",
            "wrote:",
            "Original Message",
        ] {
            assert!(!text.contains(banned), "{banned:?} left in:\n{text}");
        }
    };

    // 03: Outlook reply above the delimiter, Von:/Gesendet: block cut.
    let outlook = body(1, 1);
    assert!(outlook.starts_with("Hallo Support-Team,"), "{outlook}");
    assert!(outlook.ends_with("Tel. +49 7361 5550-214"), "{outlook}");
    cut_everywhere(&outlook);

    // 04: Gmail attribution wrapped over two lines, then `>` quote.
    let gmail = body(1, 2);
    assert!(gmail.ends_with("Tel. +49 7361 5550-230"), "{gmail}");
    cut_everywhere(&gmail);

    // 17: agent command and the blank line after it removed.
    let agent = body(1, 3);
    assert!(
        agent.starts_with("Guten Tag Frau Schmidt, guten Tag Herr Becker,"),
        "{agent}"
    );
    assert!(!agent.contains("#pending"));
    cut_everywhere(&agent);

    // 18: `#solved` removed, Outlook mobile trailer cut.
    let solved = body(2, 1);
    assert!(solved.starts_with("Hi John,"), "{solved}");
    assert!(
        !solved.contains("#solved") && !solved.contains("Get Outlook"),
        "{solved}"
    );

    // 20: ISO-8859-1 from GMX, delimiter quoted and wrapped by the client.
    let gmx = body(3, 1);
    assert!(gmx.starts_with("Guten Morgen Frau Fischer,"), "{gmx}");
    assert!(gmx.ends_with("Anna Schmidt"), "{gmx}");
    assert!(gmx.contains("für ihn"), "decoded umlauts: {gmx}");
    cut_everywhere(&gmx);

    // 15: bottom-posted below the quoted delimiter: the text below is kept.
    let bottom = body(4, 1);
    assert!(
        bottom.starts_with("Hello,") && bottom.contains("Leeds"),
        "{bottom}"
    );
    assert!(
        !bottom.contains("John Carter\nHead of IT"),
        "signature cut: {bottom}"
    );
    cut_everywhere(&bottom);

    // 19: HTML-only mail as readable text, link kept.
    let html = body(5, 0);
    assert!(
        html.contains("https://help.example.com/docs/onboarding/user-import"),
        "{html}"
    );
    assert!(
        html.contains("Priya Sharma") && !html.contains("<li>"),
        "{html}"
    );

    // 22: "-----Original Message-----" and the quoted acknowledgement cut.
    let cdo = body(5, 1);
    assert!(cdo.ends_with("Acme Logistics Ltd"), "{cdo}");
    cut_everywhere(&cdo);
}
