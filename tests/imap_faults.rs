//! The poller against a scripted IMAP server: what a misbehaving server does
//! to the mailbox, message by message, with the outcome and the log line an
//! operator sees. (tests/imap_dovecot.rs shows the same against Dovecot.)

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_imap::{FakeImap, Faults, BASIC, FULL};
use common::*;
use ticketgate::clock::Clock;
use ticketgate::config::Settings;
use ticketgate::inbound::poller::{self, Poller, Shared};
use ticketgate::inbound::process::Pipeline;
use ticketgate::store::Store;
use tokio_util::sync::CancellationToken;

struct Harness {
    gw: Gateway,
    fake: FakeImap,
    logs: Arc<Mutex<Vec<u8>>>,
}

fn harness(capabilities: &[&'static str], imap_extra: &str) -> Harness {
    let gw = Gateway::with_config_extra(&format!(
        "[imap]\nhost = \"imap.fake\"\ntls = false\nusername = \"support@example.com\"\n\
         password = \"x\"\ntimeout_secs = 1\n{imap_extra}"
    ));
    Harness {
        gw,
        fake: FakeImap::new(capabilities),
        logs: Arc::default(),
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Harness {
    fn settings(&self) -> Settings {
        Settings::load(&self.gw.config).unwrap()
    }

    /// Runs the poller until `done` holds (checked on the fake server's
    /// state), then shuts it down; returns how long the shutdown took.
    fn run_until(&self, what: &str, done: impl Fn(&FakeImap) -> bool) -> Duration {
        let settings = self.settings();
        let logs = self.logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || LogWriter(logs.clone()))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = Store::open(&settings.database.url).await.unwrap();
            let pipeline = Arc::new(Pipeline::new(&settings));
            let imap = settings.mailboxes[0].clone();
            let mut poller = Poller::new(
                &imap,
                &settings.limits,
                self.fake.connector(),
                pipeline,
                store.clone(),
                Clock::System,
                Shared {
                    metrics: Arc::default(),
                    outbox_due: Arc::default(),
                },
            );
            let shutdown = CancellationToken::new();
            let run = poller.run(shutdown.clone());
            tokio::pin!(run);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                tokio::select! {
                    _ = &mut run => panic!("the poller stopped by itself"),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                if done(&self.fake) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}; log:\n{}",
                    self.log()
                );
            }
            shutdown.cancel();
            let stopping = Instant::now();
            run.await;
            store.close().await;
            stopping.elapsed()
        })
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap()).to_string()
    }

    fn mail(&self, subject: &str) -> Vec<u8> {
        Mail::new(JOHN, subject, "Hallo").render().into_bytes()
    }
}

/// Three messages, the second one of which the server will not hand
/// out, read until the INBOX is empty.
fn one_bad_of_three(fault: impl FnOnce(&mut Faults)) -> Harness {
    let h = harness(
        FULL,
        "processed_mailbox = \"Processed\"\nmax_fetch_attempts = 2\n",
    );
    for subject in ["Eins", "Zwei", "Drei"] {
        h.fake.append("INBOX", &h.mail(subject), &[]);
    }
    h.fake.faults(fault);
    h.run_until("an empty INBOX", |fake| fake.count("INBOX") == 0);
    assert_eq!(h.gw.subjects(), vec!["Drei", "Eins"]);
    h
}

#[test]
fn a_message_sent_as_body_nil_is_suspended_as_unreadable_not_lost() {
    let h = one_bad_of_three(|f| {
        f.nil_body.insert(2);
    });
    let suspended = h.gw.suspended();
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert_eq!(suspended[0]["reason"], "unreadable");
    assert_eq!(suspended[0]["subject"], "Zwei", "kept from its headers");
    let detail = suspended[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("UID 2") && detail.contains("BODY[] NIL"),
        "{detail}"
    );
    assert!(detail.contains("kept: its headers"), "{detail}");
    assert_eq!(h.fake.count("Processed"), 3, "all three acknowledged");
    let log = h.log();
    assert!(
        log.contains("cannot fetch message: the server sent no content (BODY[] NIL)"),
        "{log}"
    );
    assert!(
        log.contains("suspended as unreadable from its headers"),
        "{log}"
    );
}

#[test]
fn a_failing_fetch_does_not_block_the_others() {
    let h = harness(
        FULL,
        "processed_mailbox = \"Processed\"\nmax_fetch_attempts = 2\n",
    );
    for subject in ["Eins", "Zwei", "Drei", "Vier"] {
        h.fake.append("INBOX", &h.mail(subject), &[]);
    }
    h.fake.faults(|f| {
        f.fail_fetch.insert(2);
    });
    h.run_until("an empty INBOX", |fake| fake.count("INBOX") == 0);

    assert_eq!(h.gw.subjects(), vec!["Drei", "Eins", "Vier"]);
    let suspended = h.gw.suspended();
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0]["reason"], "unreadable");
    let detail = suspended[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("[SERVERBUG] Internal error occurred"),
        "{detail}"
    );
    assert_eq!(h.fake.connections(), 1, "a refusal needs no reconnect");
    let log = h.log();
    assert!(
        log.contains("fetching a batch failed (the server refused FETCH of messages: [SERVERBUG] Internal error occurred"),
        "{log}"
    );
    assert!(log.contains("fetching its messages one at a time"), "{log}");
    assert!(!log.contains("code: "), "no Rust debug output: {log}");
}

#[test]
fn a_message_that_makes_the_server_hang_up_is_suspended_from_its_uid() {
    let h = one_bad_of_three(|f| {
        f.drop_on_fetch.insert(2);
    });
    let suspended = h.gw.suspended();
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0]["reason"], "unreadable");
    let detail = suspended[0]["detail"].as_str().unwrap();
    assert!(detail.contains("kept: its UID and size"), "{detail}");
    assert!(
        detail.contains("the server closed the connection"),
        "{detail}"
    );
    let log = h.log();
    assert!(
        log.contains("IMAP session ended: IMAP: the connection was lost during FETCH"),
        "{log}"
    );
    assert!(
        log.contains("suspended as unreadable from its UID and size"),
        "{log}"
    );
}

#[test]
fn a_stalled_server_is_given_up_and_shutdown_does_not_wait_for_it() {
    let h = harness(FULL, "processed_mailbox = \"Processed\"\n");
    h.fake.append("INBOX", &h.mail("Eins"), &[]);
    h.fake.faults(|f| {
        f.stall_on.insert("FETCH".into());
    });
    let stop = h.run_until("a reconnect after the stall", |fake| {
        fake.connections() >= 2
    });
    let log = h.log();
    assert!(
        log.contains("the IMAP server did not answer within 1 s (FETCH of sizes)"),
        "{log}"
    );
    assert!(log.contains("reconnecting in"), "{log}");
    assert!(stop < Duration::from_secs(3), "shutdown took {stop:?}");
    assert_eq!(h.fake.count("INBOX"), 1, "nothing acknowledged");
    assert!(h.gw.tickets().is_empty());
}

#[test]
fn a_silent_peer_times_out_at_the_greeting() {
    // What `tls = false` against an implicit-TLS port looks like.
    let h = harness(FULL, "");
    h.fake.faults(|f| {
        f.stall_on.insert("GREETING".into());
    });
    let stop = h.run_until("a second attempt", |fake| fake.connections() >= 2);
    let log = h.log();
    assert!(
        log.contains("did not answer within 1 s (the greeting); is it stalled, or is `tls` wrong for this port?"),
        "{log}"
    );
    assert!(stop < Duration::from_secs(3), "shutdown took {stop:?}");
}

#[test]
fn without_move_and_uidplus_mail_another_client_deleted_is_never_expunged_unread() {
    let h = harness(BASIC, "processed_mailbox = \"Processed\"\nbatch_size = 1\n");
    h.fake.append("INBOX", &h.mail("Eins"), &[]);
    h.fake.append("INBOX", &h.mail("Zwei"), &[]);
    // Flagged by another client before ticketgate saw it.
    h.fake.append("INBOX", &h.mail("Drei"), &["\\Deleted"]);
    h.run_until("an empty INBOX", |fake| fake.count("INBOX") == 0);

    assert_eq!(
        h.gw.subjects(),
        vec!["Drei", "Eins", "Zwei"],
        "all processed"
    );
    assert_eq!(h.fake.count("Processed"), 3);
    let log = h.fake.log();
    let expunges: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, l)| l.as_str() == "EXPUNGE")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(expunges.len(), 1, "{log:#?}");
    let last_copy = log.iter().rposition(|l| l.starts_with("UID COPY")).unwrap();
    assert!(
        expunges[0] > last_copy,
        "EXPUNGE only once Drei was copied: {log:#?}"
    );
    assert!(log
        .iter()
        .any(|l| l.contains("+FLAGS.SILENT ($TicketgateCopy)")));
    assert!(
        h.log().contains(
            "not expunging yet: messages flagged \\Deleted by another client are still waiting"
        ),
        "{}",
        h.log()
    );
}

#[test]
fn without_keywords_the_expunge_still_waits_for_foreign_deleted_mail() {
    let h = harness(BASIC, "processed_mailbox = \"Processed\"\nbatch_size = 1\n");
    h.fake.faults(|f| f.no_keywords = true);
    h.fake.append("INBOX", &h.mail("Eins"), &[]);
    h.fake.append("INBOX", &h.mail("Zwei"), &["\\Deleted"]);
    h.run_until("an empty INBOX", |fake| fake.count("INBOX") == 0);
    assert_eq!(h.gw.subjects(), vec!["Eins", "Zwei"]);
    assert_eq!(h.fake.count("Processed"), 2);
    assert!(!h.fake.log().iter().any(|l| l.contains("$TicketgateCopy")));
}

#[test]
fn after_a_crash_between_copy_and_expunge_nothing_is_copied_twice() {
    let h = harness(BASIC, "processed_mailbox = \"Processed\"\n");
    // The state a crash leaves: marked, copied, not yet flagged \Deleted.
    let copied = h.mail("Eins");
    h.fake.append("INBOX", &copied, &["$TicketgateCopy"]);
    h.fake.append("Processed", &copied, &["$TicketgateCopy"]);
    // Marked, but the crash came before the COPY.
    h.fake
        .append("INBOX", &h.mail("Zwei"), &["$TicketgateCopy"]);
    h.fake.append("INBOX", &h.mail("Drei"), &[]);
    h.run_until("an empty INBOX", |fake| fake.count("INBOX") == 0);

    assert_eq!(h.gw.subjects(), vec!["Drei", "Eins", "Zwei"]);
    assert_eq!(
        h.fake.count("Processed"),
        3,
        "Eins once, Zwei and Drei copied"
    );
    assert!(h.log().contains("not copied again"), "{}", h.log());
}

#[test]
fn a_processed_folder_that_cannot_be_created_is_a_clear_error_and_touches_nothing() {
    let h = harness(FULL, "processed_mailbox = \"Processed\"\n");
    h.fake
        .faults(|f| f.refuse_create = Some("Permission denied".into()));
    h.fake.append("INBOX", &h.mail("Eins"), &[]);
    h.run_until("a login", |fake| {
        fake.log().iter().any(|l| l.starts_with("CREATE"))
    });
    std::thread::sleep(Duration::from_millis(100));
    let log = h.log();
    assert!(
        log.contains("processed_mailbox \"Processed\" cannot be used: [CANNOT] Permission denied; this server separates folders with \".\": folders may have to live below INBOX, e.g. processed_mailbox = \"INBOX.Processed\""),
        "{log}"
    );
    assert!(
        log.contains("ERROR"),
        "an operator's problem is an error: {log}"
    );
    assert!(log.contains("next try in 60 s"), "{log}");
    assert_eq!(h.fake.count("INBOX"), 1);
    assert!(
        h.gw.tickets().is_empty(),
        "nothing read without a place to put it"
    );

    // `check` says the same.
    let settings = h.settings();
    let imap = settings.mailboxes[0].clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lines = runtime.block_on(poller::check(&h.fake.connector(), &imap));
    let folder = lines
        .iter()
        .find(|(what, _)| what == "imap processed_mailbox")
        .unwrap();
    let reason = folder.1.as_ref().unwrap_err();
    assert!(reason.contains("INBOX.Processed"), "{reason}");
}

#[test]
fn mailbox_names_travel_in_modified_utf7() {
    let h = harness(FULL, "processed_mailbox = \"Erledigt-Ä\"\n");
    h.fake.append("INBOX", &h.mail("Eins"), &[]);
    h.run_until("the move", |fake| fake.count("Erledigt-&AMQ-") == 1);
    let log = h.fake.log();
    assert!(
        log.contains(&"CREATE \"Erledigt-&AMQ-\"".to_string()),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("UID MOVE") && l.ends_with("\"Erledigt-&AMQ-\"")),
        "{log:#?}"
    );
}

#[test]
fn a_refused_login_is_an_authentication_failure_not_a_blip() {
    let h = harness(FULL, "");
    h.fake.faults(|f| f.refuse_login = true);
    h.run_until("a login attempt", |fake| {
        fake.log().iter().any(|l| l.starts_with("LOGIN"))
    });
    std::thread::sleep(Duration::from_millis(100));
    let log = h.log();
    assert!(
        log.contains("ERROR") && log.contains("authentication as support@example.com failed: [AUTHENTICATIONFAILED] Authentication failed."),
        "{log}"
    );
    assert!(log.contains("check the [imap] settings"), "{log}");
}

#[test]
fn flag_mode_never_skips_a_message_that_is_still_waiting() {
    // Without a processed folder, the last UID is remembered; a message
    // that failed must stay above it.
    let h = harness(FULL, "max_fetch_attempts = 2\n");
    for subject in ["Eins", "Zwei", "Drei"] {
        h.fake.append("INBOX", &h.mail(subject), &[]);
    }
    h.fake.faults(|f| {
        f.fail_fetch.insert(2);
    });
    h.run_until("all three handled", |fake| {
        let state = fake.state.lock().unwrap();
        state.folders["INBOX"]
            .messages
            .iter()
            .all(|m| m.flags.contains("\\Seen"))
    });
    assert_eq!(h.gw.subjects(), vec!["Drei", "Eins"]);
    assert_eq!(h.gw.suspended().len(), 1);
}

#[test]
fn batches_wait_fetched_behind_the_one_committed_and_two_are_moved_at_once() {
    let h = harness(FULL, "processed_mailbox = \"Processed\"\nbatch_size = 2\n");
    for subject in [
        "Eins", "Zwei", "Drei", "Vier", "Fünf", "Sechs", "Sieben", "Acht", "Neun", "Zehn",
    ] {
        h.fake.append("INBOX", &h.mail(subject), &[]);
    }
    h.run_until("an empty INBOX", |fake| fake.count("INBOX") == 0);
    assert_eq!(h.gw.subjects().len(), 10);
    assert_eq!(h.fake.count("Processed"), 10);
    let log = h.fake.log();
    let position = |prefix: &str| {
        let hits: Vec<usize> = log
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(prefix))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(hits.len(), 1, "{prefix}: {log:#?}");
        hits[0]
    };
    let fetch = |set: &str| position(&format!("UID FETCH {set} (UID BODY.PEEK[])"));
    let moved = |set: &str| position(&format!("UID MOVE {set} "));
    // While a batch is written, the next ones wait fetched behind it, so
    // the database has them at hand while the server is busy moving; two
    // committed batches go in one MOVE, and the last alone.
    let fetches = ["1:2", "3:4", "5:6", "7:8", "9:10"].map(fetch);
    assert!(fetches.is_sorted(), "{log:#?}");
    assert!(fetch("9:10") < moved("1:4"), "{log:#?}");
    assert!(moved("1:4") < moved("5:8"), "{log:#?}");
    assert!(moved("5:8") < moved("9:10"), "{log:#?}");
    let moves = log.iter().filter(|l| l.starts_with("UID MOVE")).count();
    assert_eq!(moves, 3, "{log:#?}");
}
