//! Notifications as customers receive them, through the file transport:
//! headers, both bodies in both languages, reply tokens that thread back,
//! ratings, the rate limit, retries and template overrides.

mod common;

use common::*;
use ticketgate::domain::mail::InboundMail;

/// The `.eml` files the file transport wrote, parsed, in outbox order.
fn delivered(gw: &Gateway) -> Vec<(String, InboundMail, Vec<u8>)> {
    let dir = gw.path("outbox");
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => return Vec::new(),
    };
    names.retain(|n| n.ends_with(".eml"));
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let raw = std::fs::read(dir.join(&name)).unwrap();
            let mail = ticketgate::inbound::parse::parse(&raw, &Default::default()).unwrap();
            (name, mail, raw)
        })
        .collect()
}

fn text(mail: &InboundMail) -> String {
    mail.text.as_deref().unwrap().replace("\r\n", "\n")
}

fn flush(gw: &Gateway) -> serde_json::Value {
    gw.json_lines(&["outbox", "flush", "--json"]).remove(0)
}

#[test]
fn notifications_carry_threading_headers_and_both_bodies() {
    let gw = Gateway::new();
    let first = Mail::new(ANNA, "Drucker druckt nicht", "Seit heute früh.");
    let id = gw.ingest(&first.render())["ticket"].as_i64().unwrap();
    gw.ok(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        LENA,
        "--body",
        "Bitte Treiber neu installieren.",
    ]);
    assert_eq!(flush(&gw)["sent"], 3);

    let mails = delivered(&gw);
    let (_, ack, raw) = &mails[0];
    assert_eq!(ack.header("x-ticketgate-event"), Some("ticket_created"));
    assert_eq!(
        ack.header("x-ticketgate-ticket"),
        Some(id.to_string().as_str())
    );
    assert_eq!(ack.header("auto-submitted"), Some("auto-generated"));
    assert_eq!(ack.subject, format!("[#{id}] Drucker druckt nicht"));
    assert_eq!(ack.from.as_deref(), Some("support@example.com"));
    assert_eq!(ack.recipients, vec![ANNA.to_string()]);
    assert_eq!(ack.in_reply_to, vec![first.message_id()]);
    let stored = gw.notifications("ticket_created", id)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ack.message_id.as_deref(),
        Some(stored.as_str()),
        "the stored Message-ID is the one sent"
    );
    let reply_to = header_line(raw, "Reply-To");
    assert!(reply_to.contains(&format!("support+{id}-")), "{reply_to}");

    let body = text(ack);
    assert_eq!(body.lines().find(|l| !l.trim().is_empty()), Some(DELIMITER));
    assert!(body.contains(&format!("https://help.example.com/tickets/{id}")));
    assert!(
        body.contains("Seit heute früh."),
        "the customer's words: {body}"
    );
    assert!(
        body.contains("Guten Tag Anna Schmidt"),
        "German for a German user"
    );
    let html = ack.html.as_deref().unwrap();
    assert!(html
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .contains(DELIMITER));
    assert!(html.contains(&format!("href=\"https://help.example.com/tickets/{id}\"")));

    // The team's notice; the agent's answer is not automatic.
    let (_, team, _) = &mails[1];
    assert_eq!(team.recipients, vec!["team@example.com".to_string()]);
    assert_eq!(team.header("x-ticketgate-event"), Some("agent_new_ticket"));
    let (_, answer, _) = &mails[2];
    assert_eq!(answer.header("x-ticketgate-event"), Some("agent_reply"));
    assert_eq!(answer.header("auto-submitted"), None);
    assert!(text(answer).contains("Bitte Treiber neu installieren."));
    assert!(
        text(answer).contains("Wartet auf Ihre Antwort"),
        "status label in German"
    );
    assert_eq!(
        answer.references.first(),
        Some(&first.message_id()),
        "conversation chained"
    );
    assert_eq!(answer.in_reply_to.len(), 1);

    // Every row is now sent, and flushing again sends nothing twice.
    assert!(gw.outbox().iter().all(|r| r["state"] == "sent"));
    assert_eq!(flush(&gw)["sent"], 0);
    assert_eq!(delivered(&gw).len(), 3);
}

fn header_line(raw: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .unwrap_or_default()
        .to_string()
}

/// Reply-To token of a delivered notification.
fn reply_address(raw: &[u8]) -> String {
    let line = header_line(raw, "Reply-To");
    let start = line.find('<').unwrap() + 1;
    let end = line.find('>').unwrap();
    line[start..end].to_string()
}

#[test]
fn english_customers_get_english_mail() {
    let gw = Gateway::new();
    let id = gw.ingest(&Mail::new(JOHN, "Invoice", "Wrong amount.").render())["ticket"]
        .as_i64()
        .unwrap();
    gw.ok(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        MARK,
        "--body",
        "Corrected.",
        "--solve",
    ]);
    flush(&gw);
    let mails = delivered(&gw);
    let ack = text(&mails[0].1);
    assert!(ack.starts_with(DELIMITER));
    assert!(
        ack.contains("Hello John Carter") && ack.contains("Status: "),
        "{ack}"
    );
    let solved = mails
        .iter()
        .find(|(_, m, _)| m.header("x-ticketgate-event") == Some("ticket_solved"))
        .unwrap();
    let body = text(&solved.1);
    assert!(body.contains("has been solved"), "{body}");
    assert!(
        body.contains("https://help.example.com/rate/")
            && body.contains("/good")
            && body.contains("/bad")
    );
}

#[test]
fn a_reply_to_a_notification_threads_back_by_each_header_alone() {
    let gw = Gateway::new();
    let id = gw.ingest(&Mail::new(ANNA, "Export", "Export bricht ab.").render())["ticket"]
        .as_i64()
        .unwrap();
    flush(&gw);
    let (_, ack, raw) = delivered(&gw).remove(0);
    let token_address = reply_address(&raw);
    let ack_id = ack.message_id.clone().unwrap();
    let quoted = text(&ack)
        .lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let reply_body = |words: &str| {
        format!(
            "{words}\n\nAm 27.11.2026 um 10:03 schrieb Support <support@example.com>:\n{quoted}\n"
        )
    };

    // 1. Only the reply token (client dropped References, subject edited).
    let by_token = Mail::new(ANNA, "Neuer Betreff", &reply_body("Per Token.")).to(&token_address);
    let report = gw.ingest(&by_token.render());
    assert_eq!(
        (report["outcome"].as_str(), report["ticket"].as_i64()),
        (Some("appended"), Some(id))
    );

    // 2. Only References to the notification.
    let by_reference =
        Mail::new(ANNA, "Neuer Betreff", &reply_body("Per Referenz.")).replying_to(&ack_id);
    assert_eq!(gw.ingest(&by_reference.render())["ticket"], id);

    // 3. Only the subject tag.
    let by_subject = Mail::new(
        ANNA,
        &format!("AW: {}", ack.subject),
        &reply_body("Per Betreff."),
    );
    assert_eq!(gw.ingest(&by_subject.render())["ticket"], id);

    let comments = gw.ticket(id)["comments"].clone();
    let bodies: Vec<&str> = comments
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "Export bricht ab.",
            "Per Token.",
            "Per Referenz.",
            "Per Betreff."
        ]
    );
}

#[test]
fn ratings_belong_to_one_solve() {
    let gw = Gateway::new();
    let id = gw.ingest(&Mail::new(JOHN, "Seats", "How many?").render())["ticket"]
        .as_i64()
        .unwrap();
    gw.ok(&["ticket", "solve", &id.to_string()]);
    flush(&gw);
    let solved = delivered(&gw)
        .into_iter()
        .find(|(_, m, _)| m.header("x-ticketgate-event") == Some("ticket_solved"))
        .unwrap();
    let body = text(&solved.1);
    let link = body
        .lines()
        .find(|l| l.contains("/rate/") && l.contains("/good"))
        .unwrap();
    let token = link
        .split("/rate/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();

    let settings = ticketgate::config::Settings::load(&gw.config).unwrap();
    let acts = ticketgate::acts::Acts::new(&settings);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rate = |token: &str, rating| {
        rt.block_on(async {
            let store = ticketgate::store::Store::open(&settings.database.url)
                .await
                .unwrap();
            let result =
                ticketgate::rating::rate(&acts, &store, token, rating, None, 1_795_800_000)
                    .await
                    .unwrap();
            store.close().await;
            result
        })
    };
    use ticketgate::domain::decide::Refusal as RateError;
    use ticketgate::domain::ticket::Rating;

    assert_eq!(rate(&token, Rating::Good), Ok(id));
    assert_eq!(gw.ticket(id)["rating"], "good");
    assert_eq!(rate(&token, Rating::Bad), Ok(id), "changed while solved");
    assert_eq!(gw.ticket(id)["rating"], "bad");
    let forged = format!("{id}-aaaaaaaaaaaaa");
    assert_eq!(rate(&forged, Rating::Good), Err(RateError::InvalidLink));

    // Reopened and solved again: the old link is dead, the rating reset.
    gw.ingest(&Mail::new(JOHN, &format!("Re: [#{id}] Seats"), "One more").render());
    gw.ok(&["ticket", "solve", &id.to_string()]);
    assert!(gw.ticket(id)["rating"].is_null());
    assert!(rate(&token, Rating::Good).is_err());

    // Closed: no more ratings.
    let mut gw = gw;
    gw.at("2026-12-30T10:00:00Z");
    gw.ok(&["tick"]);
    flush(&gw);
    let newest = delivered(&gw)
        .into_iter()
        .rev()
        .find(|(_, m, _)| m.header("x-ticketgate-event") == Some("ticket_solved"))
        .unwrap();
    let link = text(&newest.1)
        .lines()
        .find(|l| l.contains("/rate/"))
        .unwrap()
        .to_string();
    let fresh = link
        .split("/rate/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(fresh, token);
    assert_eq!(rate(&fresh, Rating::Good), Err(RateError::NotRateable(id)));
}

#[test]
fn automatic_mail_per_recipient_is_rate_limited_not_lost() {
    let gw = Gateway::with_config_extra(
        "[outbound]\ntransport = \"file\"\ndir = \"outbox\"\nrate_limit_per_hour = 3\n",
    );
    for i in 0..5 {
        gw.ingest(&Mail::new(JOHN, &format!("Question {i}"), "x").render());
    }
    let report = flush(&gw);
    // 5 acknowledgements to John: 3 go out. The 5 notices to our own team
    // are not limited.
    assert_eq!(report["sent"], 8);
    assert_eq!(report["suppressed"], 2);
    let outbox = gw.outbox();
    let suppressed: Vec<_> = outbox
        .iter()
        .filter(|r| r["state"] == "suppressed")
        .collect();
    assert_eq!(suppressed.len(), 2);
    // The sent ones of the same rounds are recorded as sent.
    assert_eq!(outbox.iter().filter(|r| r["state"] == "sent").count(), 8);
    assert!(suppressed.iter().all(|r| r["to"][0] == JOHN));
    assert!(suppressed
        .iter()
        .all(|r| r["last_error"].as_str().unwrap().contains("rate limit")));
    // An agent's own answer is not automatic and not limited.
    gw.ok(&["ticket", "reply", "1", "--agent", MARK, "--body", "Answer"]);
    assert_eq!(flush(&gw)["sent"], 1);
}

#[test]
fn failed_deliveries_are_retried_with_back_off_then_given_up() {
    let mut gw = Gateway::with_config_extra(
        "[outbound]\ntransport = \"file\"\ndir = \"blocked/outbox\"\nretry_max_age_hours = 1\n",
    );
    std::fs::write(gw.path("blocked"), "a file where the directory should be").unwrap();
    gw.ingest(&Mail::new(JOHN, "Question", "x").render());
    let report = flush(&gw);
    assert_eq!(report["retrying"], 2);
    let row = gw.outbox().remove(0);
    assert_eq!(row["state"], "queued");
    assert_eq!(row["attempts"], 1);
    assert!(row["last_error"].as_str().unwrap().contains("cannot write"));

    // Not due yet: nothing happens; the scheduler retries once due.
    assert_eq!(flush(&gw)["retrying"], 0);
    gw.at("2026-11-27T10:01:30Z");
    let tick = gw.json_lines(&["tick", "--json"]);
    assert_eq!(tick[1]["delivery"]["retrying"], 2);
    assert_eq!(gw.outbox()[0]["attempts"], 2);

    // The directory comes back: delivered.
    std::fs::remove_file(gw.path("blocked")).unwrap();
    gw.at("2026-11-27T10:10:00Z");
    assert_eq!(flush(&gw)["sent"], 2);

    // A new row that keeps failing past the maximum age is failed.
    std::fs::remove_dir_all(gw.path("blocked")).unwrap();
    std::fs::write(gw.path("blocked"), "again").unwrap();
    gw.ingest(&Mail::new(JOHN, "Second", "x").render());
    flush(&gw);
    gw.at("2026-11-27T11:10:01Z");
    let report = flush(&gw);
    assert_eq!(report["failed"], 2);
    let failed: Vec<_> = gw
        .outbox()
        .into_iter()
        .filter(|r| r["state"] == "failed")
        .collect();
    assert!(failed[0]["last_error"]
        .as_str()
        .unwrap()
        .starts_with("gave up after 2 attempts"));
}

#[test]
fn operators_override_templates_and_broken_ones_stop_the_start() {
    let gw = Gateway::with_config_extra(
        "[outbound]\ntransport = \"file\"\ndir = \"outbox\"\ntemplates_dir = \"mytemplates\"\n",
    );
    std::fs::create_dir(gw.path("mytemplates")).unwrap();
    std::fs::write(
        gw.path("mytemplates/ticket_created.en.txt.hbs"),
        "Dear {{recipient.name}}, case {{ticket.id}} is ours.",
    )
    .unwrap();
    gw.ingest(&Mail::new(JOHN, "Question", "x").render());
    flush(&gw);
    let ack = text(&delivered(&gw)[0].1);
    assert_eq!(
        ack.trim_end(),
        format!(
            "{DELIMITER}\n{}\n\nDear John Carter, case 1 is ours.",
            ticketgate::outbound::render::ENGLISH_HINT
        )
    );

    std::fs::write(
        gw.path("mytemplates/agent_reply.de.html.hbs"),
        "<p>{{#each}}</p>",
    )
    .unwrap();
    let out = gw.run(&["outbox", "flush"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agent_reply.de.html.hbs"), "{err}");
}

#[test]
fn the_readme_sample_is_what_the_templates_render() {
    use ticketgate::domain::notice::Event;
    use ticketgate::outbound::render::{sample_context, Renderer};
    let renderer = Renderer::load(None).unwrap();
    let body = renderer
        .render(Event::TicketCreated, "de", &sample_context())
        .unwrap();
    let sample_path = format!(
        "{}/docs/sample-ticket_created.de.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let html_path = format!(
        "{}/docs/sample-ticket_created.de.html",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("UPDATE_SAMPLES").is_some() {
        std::fs::write(&sample_path, &body.text).unwrap();
        std::fs::write(&html_path, &body.html).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&sample_path).unwrap(),
        body.text,
        "run with UPDATE_SAMPLES=1"
    );
    assert_eq!(
        std::fs::read_to_string(&html_path).unwrap(),
        body.html,
        "run with UPDATE_SAMPLES=1"
    );
}

#[test]
fn a_notification_says_what_was_true_at_its_event() {
    // The answer is queued while the ticket waits for the customer, and
    // delivered only after it was solved: it still says "waiting".
    let gw = Gateway::new();
    let id = gw.ingest(&Mail::new(ANNA, "Export", "Bricht ab.").render())["ticket"]
        .as_i64()
        .unwrap();
    gw.ok(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        LENA,
        "--body",
        "Bitte neu starten.",
    ]);
    gw.ok(&["ticket", "solve", &id.to_string()]);
    flush(&gw);
    let mails = delivered(&gw);
    let answer = mails
        .iter()
        .find(|(_, m, _)| m.header("x-ticketgate-event") == Some("agent_reply"))
        .unwrap();
    let body = text(&answer.1);
    assert!(body.contains("Status: Wartet auf Ihre Antwort"), "{body}");
    assert!(!body.contains("Gelöst"), "{body}");
    let ack = text(&mails[0].1);
    assert!(
        ack.contains("Status: Offen"),
        "the acknowledgement too: {ack}"
    );
    let solved = mails
        .iter()
        .find(|(_, m, _)| m.header("x-ticketgate-event") == Some("ticket_solved"))
        .unwrap();
    assert!(text(&solved.1).contains("ist gelöst"));
}

#[test]
fn the_notice_to_a_member_names_the_key_users_to_ask() {
    let gw = Gateway::with_config_extra("[outbound]\ntransport = \"file\"\ndir = \"outbox\"\n");
    gw.ingest(&Mail::new(PETER, "Bitte Lizenz verlängern", "x").render());
    flush(&gw);
    let notice = text(&delivered(&gw)[0].1);
    assert!(
        notice.contains(&format!("- Anna Schmidt <{ANNA}>")),
        "{notice}"
    );
    assert!(
        notice.contains(&format!("- Jonas Becker <{JONAS}>")),
        "{notice}"
    );
    assert!(
        !notice.contains(JOHN),
        "only her own organization's: {notice}"
    );
}

#[test]
fn colleagues_in_cc_get_the_public_answers_until_they_are_removed() {
    let gw = Gateway::with_config_extra("[outbound]\ntransport = \"file\"\ndir = \"outbox\"\n");
    let mail = Mail::new(ANNA, "Druckerproblem", "Er druckt nicht.")
        .header("Cc", &format!("{PETER}, {JOHN}, fremd@elsewhere.example"));
    assert_eq!(gw.ingest(&mail.render())["outcome"], "created");
    assert_eq!(gw.ticket(1)["followers"], serde_json::json!([PETER]));
    gw.ok(&[
        "ticket",
        "reply",
        "1",
        "--agent",
        LENA,
        "--body",
        "Bitte neu starten.",
    ]);
    let to = |gw: &Gateway| -> Vec<String> {
        let mut to: Vec<String> = gw
            .outbox()
            .iter()
            .filter(|r| r["event"] == "agent_reply")
            .map(|r| r["to"][0].as_str().unwrap().to_string())
            .collect();
        to.sort();
        to
    };
    assert_eq!(to(&gw), vec![ANNA.to_string(), PETER.to_string()]);
    gw.ok(&["ticket", "unfollow", "1", PETER]);
    assert_eq!(gw.ticket(1)["followers"], serde_json::json!([]));
    gw.ok(&[
        "ticket",
        "reply",
        "1",
        "--agent",
        LENA,
        "--body",
        "Und jetzt?",
    ]);
    assert_eq!(
        to(&gw),
        vec![ANNA.to_string(), ANNA.to_string(), PETER.to_string()]
    );
    assert_eq!(
        gw.run(&["ticket", "unfollow", "1", PETER]).status.code(),
        Some(1)
    );
}
