//! Notifications through a real Postfix (STARTTLS on a loopback port) into
//! real mailboxes, read back as the customer's client sees them, and
//! answered the way a mail client answers.

mod common;

use common::servers::mail_servers;
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use ticketgate::domain::mail::InboundMail;

use ticketgate::inbound::parse::parse;
use ticketgate::outbound::deliver::{Deliverer, Scope};
use ticketgate::outbound::transport::{Outbound, SendError, Transport};

fn unique(label: &str) -> String {
    format!(
        "{label} {}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}

fn text(mail: &InboundMail) -> String {
    mail.text
        .as_deref()
        .unwrap_or_default()
        .replace("\r\n", "\n")
}

/// How a mail client answers: Reply-To as recipient, In-Reply-To and
/// References from the original, the quoted original below the answer.
fn answer(from: &str, original: &InboundMail, raw: &[u8], words: &str) -> Mail {
    let reply_to = String::from_utf8_lossy(raw)
        .lines()
        .find(|l| l.starts_with("Reply-To:"))
        .and_then(|l| Some(l[l.find('<')? + 1..l.find('>')?].to_string()))
        .unwrap();
    let quoted: String = text(original).lines().map(|l| format!("> {l}\n")).collect();
    let mut refs = original.references.clone();
    refs.push(original.message_id.clone().unwrap());
    Mail::new(
        from,
        &format!("AW: {}", original.subject),
        &format!(
            "{words}\n\nAm 27.11.2026 um 10:03 schrieb Support <support@example.com>:\n{quoted}"
        ),
    )
    .to(&reply_to)
    .header("In-Reply-To", original.message_id.as_deref().unwrap())
    .header("References", &refs.join(" "))
}

#[test]
fn a_conversation_by_mail_through_postfix() {
    let servers = mail_servers();
    let gw = Gateway::with_config_extra(&servers.smtp_config("TG_SMTP_PORT"));
    let subject = unique("Lagerbuchung");
    let id = gw.ingest(&Mail::new(ANNA, &subject, "Buchung geht nicht.").render())["ticket"]
        .as_i64()
        .unwrap();
    let report = gw.json_lines(&["outbox", "flush", "--json"]).remove(0);
    assert_eq!(report["sent"], 2, "{report}");

    // The acknowledgement arrives in Anna's mailbox, German, both parts.
    let ack_id = gw.notifications("ticket_created", id)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = servers
        .wait_for(ANNA, &ack_id, 1)
        .pop()
        .expect("acknowledgement delivered");
    let ack = parse(&raw, &Default::default()).unwrap();
    assert_eq!(ack.subject, format!("[#{id}] {subject}"));
    assert_eq!(ack.header("auto-submitted"), Some("auto-generated"));
    assert_eq!(
        ack.header("x-ticketgate-ticket"),
        Some(id.to_string().as_str())
    );
    assert!(text(&ack).starts_with(DELIMITER), "{}", text(&ack));
    assert!(text(&ack).contains("Buchung geht nicht."));
    assert!(ack.html.as_deref().unwrap().contains(DELIMITER));
    let team = servers.wait_for("team@example.com", &format!("[#{id}] {subject}"), 1);
    assert_eq!(team.len(), 1, "the team heard of it");

    // Anna answers the acknowledgement from her client: same ticket, only
    // her new words.
    let reply = answer(ANNA, &ack, &raw, "Es betrifft nur Halle 4.");
    let report = gw.ingest(&reply.render());
    assert_eq!(
        (report["outcome"].as_str(), report["ticket"].as_i64()),
        (Some("appended"), Some(id))
    );
    assert_eq!(
        gw.ticket(id)["comments"][1]["body"],
        "Es betrifft nur Halle 4."
    );

    // An agent answers and solves; the English customer gets English mail.
    gw.ok(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        LENA,
        "--body",
        "Sperre aufgehoben.",
        "--solve",
    ]);
    gw.ok(&["outbox", "flush"]);
    let solved_id = gw.notifications("ticket_solved", id)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let solved = parse(
        &servers.wait_for(ANNA, &solved_id, 1).pop().unwrap(),
        &Default::default(),
    )
    .unwrap();
    assert!(text(&solved).contains("ist gelöst"), "{}", text(&solved));
    assert!(text(&solved).contains("https://help.example.com/rate/"));

    let english = unique("Licence");
    let john_ticket = gw.ingest(&Mail::new(JOHN, &english, "Seats?").render())["ticket"]
        .as_i64()
        .unwrap();
    gw.ok(&["outbox", "flush"]);
    let john_ack_id = gw.notifications("ticket_created", john_ticket)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let john_raw = servers.wait_for(JOHN, &john_ack_id, 1).pop().unwrap();
    let john_ack = parse(&john_raw, &Default::default()).unwrap();
    assert!(
        text(&john_ack).contains("thank you for your request"),
        "{}",
        text(&john_ack)
    );

    // John answers by each threading header alone.
    let by_token = answer(JOHN, &john_ack, &john_raw, "By token.")
        .header("In-Reply-To", "")
        .header("References", "")
        .header("Subject", "no tag");
    assert_eq!(gw.ingest(&by_token.render())["ticket"], john_ticket);
    let by_references = answer(JOHN, &john_ack, &john_raw, "By references.")
        .to("support@example.com")
        .header("Subject", "no tag");
    assert_eq!(gw.ingest(&by_references.render())["ticket"], john_ticket);
    let by_subject = answer(JOHN, &john_ack, &john_raw, "By subject.")
        .to("support@example.com")
        .header("In-Reply-To", "")
        .header("References", "");
    assert_eq!(gw.ingest(&by_subject.render())["ticket"], john_ticket);
    let bodies: Vec<String> = gw.ticket(john_ticket)["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        bodies,
        ["Seats?", "By token.", "By references.", "By subject."]
    );
}

#[test]
fn a_permanent_rejection_is_recorded_with_the_servers_answer() {
    let servers = mail_servers();
    let gw = Gateway::with_config_extra(&servers.smtp_config("TG_SMTP_REJECT_PORT"));
    gw.ingest(&Mail::new(JOHN, &unique("Rejected"), "x").render());
    let report = gw.json_lines(&["outbox", "flush", "--json"]).remove(0);
    assert_eq!(report["failed"], 2, "{report}");
    for row in gw.outbox() {
        assert_eq!(row["state"], "failed");
        let error = row["last_error"].as_str().unwrap();
        assert!(error.contains("5"), "the server's answer: {error}");
    }
}

/// Sends through the real transport, and after the first send never
/// returns: the moment between the server's acceptance and the mark.
struct DiesAfterFirstSend {
    inner: Outbound,
    sends: AtomicUsize,
}

impl Transport for DiesAfterFirstSend {
    async fn send(&self, name: &str, message: &lettre::Message) -> Result<(), SendError> {
        let result = self.inner.send(name, message).await;
        if self.sends.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        result
    }
}

#[test]
fn a_crash_between_send_and_commit_sends_once_more_at_most() {
    let servers = mail_servers();
    let mut gw = Gateway::with_config_extra(&servers.smtp_config("TG_SMTP_PORT"));
    gw.ingest(&Mail::new(JOHN, &unique("Crash"), "x").render());
    let ack_id = gw.notifications("ticket_created", 1)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The process dies right after the server accepted the first mail: a
    // transport that never comes back from its first send, and the flush
    // abandoned there, as a SIGKILL would.
    let settings = ticketgate::config::Settings::load(&gw.config).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = ticketgate::store::Store::open(&settings.database.url)
            .await
            .unwrap();
        let transport = DiesAfterFirstSend {
            inner: Outbound::from_settings(&settings).unwrap(),
            sends: AtomicUsize::new(0),
        };
        let deliverer = Deliverer::with_transport(&settings, transport).unwrap();
        let now = chrono::DateTime::parse_from_rfc3339(&gw.now)
            .unwrap()
            .timestamp();
        let flush = deliverer.flush(&store, now, Scope::All);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), flush)
                .await
                .is_err(),
            "the flush dies in the middle"
        );
        store.close().await;
    });
    assert_eq!(servers.wait_for(JOHN, &ack_id, 1).len(), 1);
    let row = gw.notifications("ticket_created", 1).remove(0);
    assert_eq!(
        (row["state"].as_str(), row["attempts"].as_i64()),
        (Some("queued"), Some(1))
    );

    // Restarted at once: both rows were claimed in that round and are
    // left alone while the claim lasts.
    let report = gw.json_lines(&["outbox", "flush", "--json"]).remove(0);
    assert_eq!(report["sent"], 0);
    // After the claim lapses the round is sent again, once, with the same
    // Message-IDs, and recorded as sent.
    gw.at("2026-11-27T10:05:01Z");
    assert_eq!(
        gw.json_lines(&["outbox", "flush", "--json"]).remove(0)["sent"],
        2
    );
    assert_eq!(gw.notifications("ticket_created", 1)[0]["state"], "sent");
    gw.at("2026-11-27T11:00:00Z");
    assert_eq!(
        gw.json_lines(&["outbox", "flush", "--json"]).remove(0)["sent"],
        0
    );
    let copies = servers.wait_for(JOHN, &ack_id, 2);
    assert_eq!(
        copies.len(),
        2,
        "the documented at-least-once: one extra copy"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        servers.messages_containing(JOHN, &ack_id).len(),
        2,
        "and no more"
    );
}
