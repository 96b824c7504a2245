//! The daemon while its mail servers restart under it. Its own test
//! binary, since it stops the shared servers.

mod common;

use std::time::Duration;

use common::daemon::{gateway, support_address, wait_until, Daemon};
use common::servers::mail_servers;
use common::*;

#[test]
fn the_daemon_survives_its_mail_servers_restarting() {
    let servers = mail_servers();
    let support = support_address("restart");
    let gw = gateway(servers, &support);
    let _daemon = Daemon::start(&gw);
    let first = Mail::new(JOHN, "Before", "one").to(&support);
    servers.send(JOHN, &support, first.render().as_bytes());
    wait_until("the first ticket", Duration::from_secs(10), || {
        gw.tickets().len() == 1
    });

    // Both servers go away while the daemon idles, and come back.
    servers.restart();
    let second = Mail::new(JOHN, "After", "two").to(&support);
    servers.send(JOHN, &support, second.render().as_bytes());
    wait_until(
        "the ticket after the restart",
        Duration::from_secs(30),
        || gw.tickets().len() == 2,
    );
    let log = std::fs::read_to_string(gw.path("daemon.log")).unwrap();
    assert!(
        log.contains("IMAP session ended"),
        "the outage was noticed: {log}"
    );
    assert!(
        log.matches("IMAP connected").count() >= 2,
        "and it reconnected: {log}"
    );
    // Its acknowledgement went out through the restarted Postfix.
    let ack_id = gw.notifications("ticket_created", 2)[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(servers.wait_for(JOHN, &ack_id, 1).len(), 1);

    // The servers restart again while the daemon is fetching a backlog:
    // every message still ends in exactly one ticket.
    let raws: Vec<Vec<u8>> = (0..600)
        .map(|i| {
            Mail::new(JOHN, &format!("Backlog {i}"), "x")
                .to(&support)
                .header(
                    "Message-ID",
                    &format!("<restart.{}.{i}@acme>", std::process::id()),
                )
                .render()
                .into_bytes()
        })
        .collect();
    servers.append(&support, &raws);
    wait_until("the fetching to start", Duration::from_secs(30), || {
        gw.tickets().len() > 2
    });
    servers.restart();
    wait_until("the whole backlog", Duration::from_secs(90), || {
        gw.tickets().len() >= 602
    });
    std::thread::sleep(Duration::from_millis(500));
    let tickets = gw.tickets();
    assert_eq!(tickets.len(), 602, "nothing lost, nothing twice");
    let mut subjects: Vec<&str> = tickets
        .iter()
        .map(|t| t["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 602);
}
