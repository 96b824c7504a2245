//! Postfix away: notifications wait in the outbox and go out once it is
//! back. Its own test binary, since it stops the shared Postfix.

mod common;

use common::servers::mail_servers;
use common::*;

#[test]
fn rows_stay_queued_while_postfix_is_down_and_go_out_after() {
    let servers = mail_servers();
    let mut gw = Gateway::with_config_extra(&servers.smtp_config("TG_SMTP_PORT"));
    let subject = format!("Outage {}", std::process::id());
    gw.ingest(&Mail::new(JOHN, &subject, "x").render());
    let ack_id = gw.notifications("ticket_created", 1)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();

    servers.postfix("stop");
    let report = gw.json_lines(&["outbox", "flush", "--json"]).remove(0);
    servers.postfix("start");
    assert_eq!(report["retrying"], 2, "{report}");
    for row in gw.outbox() {
        assert_eq!(row["state"], "queued");
        assert!(!row["last_error"].is_null());
    }

    // Back: the scheduler's retry delivers once the back-off has passed.
    gw.at("2026-11-27T10:01:30Z");
    let tick = gw.json_lines(&["tick", "--json"]);
    assert_eq!(tick[1]["delivery"]["sent"], 2, "{tick:?}");
    assert!(gw.outbox().iter().all(|r| r["state"] == "sent"));
    assert_eq!(servers.wait_for(JOHN, &ack_id, 1).len(), 1);
}

#[test]
fn a_silent_smtp_server_is_a_temporary_failure_not_a_hang() {
    // Accepts the connection and never says a word (a stalled relay, or
    // STARTTLS settings against an implicit-TLS port).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let gw = Gateway::with_config_extra(&format!(
        "[outbound]\ntransport = \"smtp\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nstarttls = false\ntimeout_secs = 1\n"
    ));
    gw.ingest(&Mail::new(JOHN, "Stille", "x").render());
    let started = std::time::Instant::now();
    let report = gw.json_lines(&["outbox", "flush", "--json"]).remove(0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "flush returned after {:?}",
        started.elapsed()
    );
    assert_eq!(report["retrying"], 2, "{report}");
    for row in gw.outbox() {
        assert_eq!(row["state"], "queued");
        let error = row["last_error"].as_str().unwrap();
        assert!(error.contains("did not finish within 3 s"), "{error}");
    }
}
