//! The daemon against a misbehaving real Dovecot: a stalled server process,
//! a message file the server cannot read, and a server without MOVE and
//! UIDPLUS with ticketgate killed between COPY and EXPUNGE. Its own test
//! binary, since it stops Dovecot processes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::{gateway, support_address, wait_until, Daemon};
use common::servers::{mail_servers, MailServers};
use common::*;

/// Pids of the Dovecot imap processes serving `user` (their process title
/// names the user: `verbose_proctitle`).
fn imap_processes(user: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("/imap [") && cmdline.contains(&format!("[{user} ")) {
            pids.push(pid);
        }
    }
    pids
}

fn signal(pid: i32, signal: i32) {
    unsafe { libc::kill(pid, signal) };
}

fn log_of(gw: &Gateway) -> String {
    std::fs::read_to_string(gw.path("daemon.log")).unwrap_or_default()
}

fn set(gw: &Gateway, from: &str, to: &str) {
    let config = std::fs::read_to_string(&gw.config).unwrap();
    assert!(config.contains(from), "{from} in {config}");
    std::fs::write(&gw.config, config.replacen(from, to, 1)).unwrap();
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    ["new", "cur"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.join(sub)).into_iter().flatten())
        .flatten()
        .map(|e| e.path())
        .collect()
}

fn message_ids(files: &[PathBuf]) -> Vec<String> {
    let mut ids: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = String::from_utf8_lossy(&std::fs::read(f).ok()?).to_string();
            text.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .map(|l| l[11..].trim().to_string())
        })
        .collect();
    ids.sort();
    ids
}

fn mails(support: &str, tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            Mail::new(JOHN, &format!("{tag} {i}"), "x")
                .to(support)
                .header(
                    "Message-ID",
                    &format!("<{tag}.{}.{i}@acme>", std::process::id()),
                )
                .render()
                .into_bytes()
        })
        .collect()
}

#[test]
fn a_stalled_server_process_is_given_up_and_sigterm_still_stops_at_once() {
    let servers = mail_servers();
    let support = support_address("stall");
    let gw = gateway(servers, &support);
    set(
        &gw,
        "processed_mailbox = \"Processed\"\n",
        "processed_mailbox = \"Processed\"\nidle = false\npoll_interval_secs = 1\ntimeout_secs = 2\n",
    );
    let daemon = Daemon::start(&gw);
    wait_until("the first connection", Duration::from_secs(10), || {
        !imap_processes(&support).is_empty()
    });
    let first = imap_processes(&support);
    for pid in &first {
        signal(*pid, libc::SIGSTOP);
    }
    // The stopped process answers nothing: the daemon gives up on it.
    wait_until("the daemon to give up", Duration::from_secs(20), || {
        log_of(&gw).contains("the IMAP server did not answer within 2 s")
    });
    // Let it go on: stopped, it may hold the mailbox's lock, and the APPEND
    // below would wait for it. The daemon reconnects (Dovecot starts a new
    // process) and reads the new mail.
    for pid in &first {
        signal(*pid, libc::SIGCONT);
    }
    servers.append(&support, &mails(&support, "Stall", 1));
    wait_until(
        "the ticket after the stall",
        Duration::from_secs(20),
        || gw.tickets().len() == 1,
    );

    // Stalled again, mid-conversation: SIGTERM ends the daemon promptly.
    let second: Vec<i32> = imap_processes(&support)
        .into_iter()
        .filter(|p| !first.contains(p))
        .collect();
    assert!(!second.is_empty());
    for pid in &second {
        signal(*pid, libc::SIGSTOP);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let stopping = Instant::now();
    let status = daemon.terminate();
    let took = stopping.elapsed();
    for pid in &second {
        signal(*pid, libc::SIGCONT);
    }
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
}

#[test]
fn a_message_file_dovecot_cannot_read_is_suspended_and_the_rest_goes_in() {
    let servers = mail_servers();
    let support = support_address("unreadable");
    let gw = gateway(servers, &support);
    set(
        &gw,
        "processed_mailbox = \"Processed\"\n",
        "processed_mailbox = \"Processed\"\nmax_fetch_attempts = 2\n",
    );
    servers.append(&support, &mails(&support, "Lesbar", 3));
    // The second message's file loses its read permission.
    let maildir = servers.maildir(&support);
    let uidlist = std::fs::read_to_string(maildir.join("dovecot-uidlist")).unwrap();
    let name = uidlist
        .lines()
        .find(|l| l.starts_with("2 "))
        .and_then(|l| l.split(" :").nth(1))
        .unwrap()
        .to_string();
    let file = files_in(&maildir)
        .into_iter()
        .find(|f| f.file_name().unwrap().to_string_lossy().starts_with(&name))
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();

    let daemon = Daemon::start(&gw);
    wait_until(
        "the two readable ones and the suspension",
        Duration::from_secs(60),
        || gw.tickets().len() == 2 && gw.suspended().len() == 1,
    );
    assert!(daemon.terminate().success());
    let suspended = gw.suspended().remove(0);
    assert_eq!(suspended["reason"], "unreadable");
    let detail = suspended["detail"].as_str().unwrap();
    assert!(detail.contains("Internal error occurred"), "{detail}");
    assert_eq!(gw.subjects(), vec!["Lesbar 0", "Lesbar 2"]);
    let log = log_of(&gw);
    assert!(log.contains("cannot fetch message"), "{log}");
    assert!(log.contains("suspended as unreadable"), "{log}");
}

/// A TCP proxy to `upstream` that withholds the server's answer to the
/// first `UID COPY` and raises `held` instead: the moment between COPY and
/// EXPUNGE, frozen.
fn copy_trap(upstream: u16) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(AtomicBool::new(false));
    let flag = held.clone();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        let copy_tag = Arc::new(std::sync::Mutex::new(None::<String>));
        // Client to server, line by line, noting the COPY's tag.
        let (mut to_server, from_client) =
            (server.try_clone().unwrap(), client.try_clone().unwrap());
        let tag = copy_tag.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(from_client);
            let mut line = Vec::new();
            while lines.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8_lossy(&line);
                if text.contains(" UID COPY ") && tag.lock().unwrap().is_none() {
                    *tag.lock().unwrap() = text.split(' ').next().map(str::to_string);
                }
                if to_server.write_all(&line).is_err() {
                    return;
                }
                line.clear();
            }
        });
        // Server to client, until the COPY's answer, which is swallowed.
        let mut to_client = client;
        let mut lines = BufReader::new(server);
        let mut line = Vec::new();
        while lines.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let tag = copy_tag.lock().unwrap().clone();
            if let Some(tag) = tag {
                if line.starts_with(format!("{tag} ").as_bytes()) {
                    flag.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            if to_client.write_all(&line).is_err() {
                return;
            }
            line.clear();
        }
    });
    (port, held)
}

fn basic_gateway(servers: &MailServers, support: &str, port: u16) -> Gateway {
    let gw = gateway(servers, support);
    set(
        &gw,
        &format!("port = {}", servers.port("TG_IMAP_PORT")),
        &format!("port = {port}"),
    );
    set(&gw, "transport = \"smtp\"", "transport = \"file\"");
    set(
        &gw,
        "processed_mailbox = \"Processed\"\n",
        "processed_mailbox = \"Processed\"\nbatch_size = 10\n",
    );
    gw
}

#[test]
fn without_move_and_uidplus_a_sigkill_between_copy_and_expunge_copies_nothing_twice() {
    let servers = mail_servers();
    let support = support_address("copykill");
    servers.append(&support, &mails(&support, "Kopie", 40));

    // First run, through the trap: killed right after the first COPY.
    let (trap, held) = copy_trap(servers.port("TG_IMAP_BASIC_PORT"));
    let gw = basic_gateway(servers, &support, trap);
    let daemon = Daemon::start(&gw);
    wait_until("the first COPY", Duration::from_secs(20), || {
        held.load(Ordering::SeqCst)
    });
    drop(daemon); // SIGKILL
    let maildir = servers.maildir(&support);
    let processed = maildir.join(".Processed");
    // The first COPY acknowledges two committed batches of ten.
    wait_until(
        "Dovecot to finish the copy",
        Duration::from_secs(10),
        || files_in(&processed).len() == 20,
    );
    assert_eq!(files_in(&maildir).len(), 40, "nothing expunged yet");

    // Second run, straight to the server.
    set(
        &gw,
        &format!("port = {trap}"),
        &format!("port = {}", servers.port("TG_IMAP_BASIC_PORT")),
    );
    let daemon = Daemon::start(&gw);
    wait_until("an empty INBOX", Duration::from_secs(30), || {
        files_in(&maildir).is_empty()
    });
    assert!(daemon.terminate().success());

    let ids = message_ids(&files_in(&processed));
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids.len(), 40, "one copy each in Processed");
    assert_eq!(unique.len(), 40);
    assert_eq!(gw.tickets().len(), 40);
    let log = log_of(&gw);
    assert!(log.contains("not copied again"), "{log}");
    assert!(log.contains("move=false uidplus=false"), "{log}");
}
