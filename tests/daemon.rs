//! `ticketgate run` against real Dovecot and Postfix: a whole conversation
//! by mail with IDLE, peers restarting under it, and a SIGKILL in the middle
//! of a backlog.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{gateway, support_address, wait_until, Daemon};
use common::servers::mail_servers;
use common::*;
use ticketgate::inbound::parse::parse;

fn comment_count(gw: &Gateway, ticket: i64) -> usize {
    if gw
        .run(&["ticket", "show", &ticket.to_string(), "--json"])
        .status
        .success()
    {
        gw.ticket(ticket)["comments"].as_array().unwrap().len()
    } else {
        0
    }
}

fn text_of(raw: &[u8]) -> String {
    parse(raw, &Default::default())
        .unwrap()
        .text
        .unwrap_or_default()
        .replace("\r\n", "\n")
}

/// The customer answers a notification the way a mail client does.
fn answer(from: &str, raw: &[u8], words: &str) -> Vec<u8> {
    let original = parse(raw, &Default::default()).unwrap();
    let reply_to = String::from_utf8_lossy(raw)
        .lines()
        .find(|l| l.starts_with("Reply-To:"))
        .and_then(|l| Some(l[l.find('<')? + 1..l.find('>')?].to_string()))
        .unwrap();
    let quoted: String = text_of(raw).lines().map(|l| format!("> {l}\n")).collect();
    Mail::new(
        from,
        &format!("AW: {}", original.subject),
        &format!("{words}\n\nAm 27.11.2026 schrieb Support:\n{quoted}"),
    )
    .to(&reply_to)
    .header("In-Reply-To", original.message_id.as_deref().unwrap())
    .header("References", original.message_id.as_deref().unwrap())
    .render()
    .into_bytes()
}

#[test]
fn a_conversation_by_mail_through_the_daemon() {
    let servers = mail_servers();
    let support = support_address("conversation");
    let mut gw = gateway(servers, &support);
    let daemon = Daemon::start(&gw);
    let subject = format!("Wareneingang {}", std::process::id());

    // Anna writes to support@; the ticket appears within a second (IDLE)
    // and her acknowledgement reaches her mailbox.
    let first = Mail::new(ANNA, &subject, "Buchung geht nicht.").to(&support);
    let sent = Instant::now();
    servers.send(ANNA, &support, first.render().as_bytes());
    wait_until("the ticket", Duration::from_secs(10), || {
        !gw.tickets().is_empty()
    });
    let latency = sent.elapsed();
    assert!(
        latency < Duration::from_secs(3),
        "arrival to ticket took {latency:?}"
    );
    let id = gw.tickets()[0]["id"].as_i64().unwrap();
    let ack = servers.wait_for(ANNA, &format!("[#{id}] {subject}"), 1);
    assert_eq!(ack.len(), 1, "acknowledgement delivered");
    assert!(text_of(&ack[0]).starts_with(DELIMITER));

    // She answers above the delimiter: same ticket, only her words.
    servers.send(ANNA, &support, &answer(ANNA, &ack[0], "Nur Halle 4."));
    wait_until("her reply", Duration::from_secs(10), || {
        comment_count(&gw, id) == 2
    });
    assert_eq!(gw.ticket(id)["comments"][1]["body"], "Nur Halle 4.");

    // An agent answers; the daemon's worker delivers it.
    gw.ok(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        LENA,
        "--body",
        "Bitte Inventursperre prüfen.",
        "--solve",
    ]);
    let answer_id = gw.notifications("agent_reply", id)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let answers = servers.wait_for(ANNA, &answer_id, 1);
    assert_eq!(answers.len(), 1, "the agent's answer arrived");
    assert!(text_of(&answers[0]).contains("Bitte Inventursperre prüfen."));
    let solved_id = gw.notifications("ticket_solved", id)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let solved = servers.wait_for(ANNA, &solved_id, 1);
    assert_eq!(solved.len(), 1, "the solved notice arrived");
    assert!(text_of(&solved[0]).contains("ist gelöst"));

    // Her answer to the solved notice reopens the ticket.
    servers.send(
        ANNA,
        &support,
        &answer(ANNA, &solved[0], "Leider noch nicht."),
    );
    wait_until("the reopening", Duration::from_secs(10), || {
        gw.ticket(id)["status"] == "open"
    });
    assert_eq!(comment_count(&gw, id), 4);

    // Solved again and closed after 14 days; her next answer opens a
    // follow-up.
    gw.ok(&["ticket", "solve", &id.to_string()]);
    gw.at("2030-01-01T00:00:00Z");
    gw.ok(&["tick"]);
    assert_eq!(gw.ticket(id)["status"], "closed");
    servers.send(
        ANNA,
        &support,
        &answer(ANNA, &solved[0], "Es ist wieder da."),
    );
    wait_until("the follow-up", Duration::from_secs(10), || {
        gw.tickets().len() == 2
    });
    let followup = gw.tickets()[1].clone();
    assert_eq!(followup["followup_of"], id);
    assert_eq!(followup["subject"], subject.as_str());

    assert!(daemon.terminate().success(), "SIGTERM is a clean stop");
    // Processed mail left the INBOX for the processed folder.
    let (user, domain) = support.split_once('@').unwrap();
    let inbox = servers
        .state
        .join("mail")
        .join(domain)
        .join(user)
        .join("Maildir");
    let waiting = ["new", "cur"]
        .iter()
        .map(|d| {
            std::fs::read_dir(inbox.join(d))
                .map(|e| e.count())
                .unwrap_or(0)
        })
        .sum::<usize>();
    assert_eq!(waiting, 0, "INBOX is empty");
}

#[test]
fn a_sigkill_in_the_middle_of_a_backlog_loses_and_doubles_nothing() {
    let servers = mail_servers();
    let support = support_address("kill");
    let gw = gateway(servers, &support);
    // This test is about the mailbox; its 1,400 notifications go to files.
    let config = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(
        &gw.config,
        config.replace("transport = \"smtp\"", "transport = \"file\""),
    )
    .unwrap();
    // 2,000 messages: every third one answers the one before it.
    let mut raws = Vec::new();
    let mut new_tickets = 0;
    for i in 0..2000 {
        let mut mail =
            Mail::new(JOHN, &format!("Backlog {i}"), &format!("Message {i}")).to(&support);
        if i % 3 == 2 {
            mail = mail.replying_to(&format!("<backlog.{}.{}@acme>", std::process::id(), i - 1));
        } else {
            new_tickets += 1;
        }
        mail = mail.header(
            "Message-ID",
            &format!("<backlog.{}.{i}@acme>", std::process::id()),
        );
        raws.push(mail.render().into_bytes());
    }
    servers.append(&support, &raws);

    let daemon = Daemon::start(&gw);
    let processed = || -> usize {
        let out = gw.run(&["ticket", "list", "--json"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    wait_until("part of the backlog", Duration::from_secs(60), || {
        processed() >= 100
    });
    drop(daemon); // SIGKILL
    let partial = processed();
    assert!(
        partial < new_tickets,
        "killed in the middle ({partial} of {new_tickets})"
    );

    let daemon = Daemon::start(&gw);
    // The killed instance's lease is not waited out: its process is gone.
    wait_until("the mailbox taken over", Duration::from_secs(5), || {
        std::fs::read_to_string(gw.path("daemon.log"))
            .unwrap()
            .contains("which held this mailbox, is gone; taking over")
    });
    wait_until("the whole backlog", Duration::from_secs(120), || {
        processed() >= new_tickets
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.terminate().success());

    // Exactly one ticket per new message, one comment per message.
    let tickets = gw.tickets();
    assert_eq!(tickets.len(), new_tickets);
    let mut subjects: Vec<&str> = tickets
        .iter()
        .map(|t| t["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), new_tickets, "no ticket twice");
    let (comments, distinct) = comment_totals(&gw);
    assert_eq!(
        (comments, distinct),
        (2000, 2000),
        "every message exactly once"
    );
}

/// All comments, and how many different source messages they came from.
fn comment_totals(gw: &Gateway) -> (i64, i64) {
    use sqlx::Row;
    let settings = ticketgate::config::Settings::load(&gw.config).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = ticketgate::store::Store::open(&settings.database.url)
            .await
            .unwrap();
        let mut conn = store.acquire().await.unwrap();
        let row =
            sqlx::query("SELECT COUNT(*) AS n, COUNT(DISTINCT message_id) AS d FROM comments")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        (row.try_get("n").unwrap(), row.try_get("d").unwrap())
    })
}

#[test]
fn check_reports_each_peer() {
    let servers = mail_servers();
    let support = support_address("check");
    let gw = gateway(servers, &support);
    // IMAPS with the test CA instead of plain IMAP.
    let config = std::fs::read_to_string(&gw.config)
        .unwrap()
        .replace("host = \"127.0.0.1\"", "host = \"localhost\"")
        .replace(
            &format!("port = {}", servers.port("TG_IMAP_PORT")),
            &format!("port = {}", servers.port("TG_IMAPS_PORT")),
        )
        .replace(
            "tls = false",
            &format!("tls = true\nca_file = \"{}\"", servers.ca_cert()),
        );
    std::fs::write(&gw.config, &config).unwrap();
    let out = gw.run(&["check"]);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("ok    imap:") && report.contains("IDLE yes"),
        "{report}"
    );
    assert!(report.contains("ok    outbound (smtp)"), "{report}");

    std::fs::write(
        &gw.config,
        config.replace(
            "password = \"secret\"\nprocessed",
            "password = \"wrong\"\nprocessed",
        ),
    )
    .unwrap();
    let out = gw.run(&["check"]);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  imap: authentication as")
            && report.contains("[AUTHENTICATIONFAILED]"),
        "{report}"
    );
}

/// A free loopback port for the metrics endpoint.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> String {
    get(port, "/metrics")
}

fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn polling_flagging_oversized_mail_and_metrics() {
    let servers = mail_servers();
    let support = support_address("polling");
    let gw = gateway(servers, &support);
    let port = free_port();
    // No IDLE, no processed folder (flag and leave in place), small size
    // limit, metrics on.
    let config = std::fs::read_to_string(&gw.config)
        .unwrap()
        .replace(
            "processed_mailbox = \"Processed\"\n",
            "idle = false\npoll_interval_secs = 1\n",
        )
        .replace(
            "outbox_interval_secs = 1\n",
            &format!("outbox_interval_secs = 1\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
        );
    std::fs::write(&gw.config, config + "[limits]\nmax_message_bytes = 4000\n").unwrap();
    let big = Mail::new(JOHN, "Huge log", &"log line\n".repeat(1000)).to(&support);
    servers.append(
        &support,
        &[
            Mail::new(JOHN, "Small", "x")
                .to(&support)
                .render()
                .into_bytes(),
            big.render().into_bytes(),
        ],
    );

    let daemon = Daemon::start(&gw);
    wait_until("both messages", Duration::from_secs(20), || {
        gw.tickets().len() == 1 && gw.suspended().len() == 1
    });
    let suspended = gw.suspended().remove(0);
    assert_eq!(suspended["reason"], "over_limit");
    assert_eq!(suspended["subject"], "Huge log");
    assert!(
        suspended["detail"]
            .as_str()
            .unwrap()
            .contains("max_message_bytes"),
        "{suspended}"
    );

    // Polling picks up new mail; processed mail stays, flagged, and is
    // not read twice.
    servers.append(
        &support,
        &[Mail::new(JOHN, "Later", "y")
            .to(&support)
            .render()
            .into_bytes()],
    );
    wait_until("the polled message", Duration::from_secs(20), || {
        gw.tickets().len() == 2
    });
    let metrics = scrape(port);
    assert!(
        metrics.contains("ticketgate_messages_total{outcome=\"created\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ticketgate_messages_total{outcome=\"suspended\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ticketgate_imap_connected{mailbox=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ticketgate_outbox_messages{state="),
        "{metrics}"
    );
    assert!(
        metrics.contains("ticketgate_outbox_oldest_queued_seconds"),
        "{metrics}"
    );
    assert!(metrics.contains("# HELP ticketgate_messages"), "{metrics}");
    assert!(
        metrics.contains("ticketgate_suspended_messages 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "ticketgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("ticketgate_deliveries_total{result=\"failed\"} 0"),
        "{metrics}"
    );
    let last_poll: i64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ticketgate_imap_last_poll_timestamp_seconds{mailbox=\"default\"} ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(last_poll > 1_700_000_000, "{metrics}");
    assert!(
        get(port, "/metricsXYZ").starts_with("HTTP/1.1 404"),
        "only /metrics is served"
    );
    assert!(daemon.terminate().success());

    let (user, domain) = support.split_once('@').unwrap();
    let cur = servers
        .state
        .join("mail")
        .join(domain)
        .join(user)
        .join("Maildir/cur");
    let seen = std::fs::read_dir(&cur)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(":2,S")
        })
        .count();
    assert_eq!(seen, 3, "all three flagged \\Seen in place");

    let daemon = Daemon::start(&gw);
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.terminate().success());
    assert_eq!(
        gw.tickets().len(),
        2,
        "nothing processed twice after a restart"
    );
    assert_eq!(gw.suspended().len(), 1);
}
