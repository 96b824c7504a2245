//! Properties of the whole pipeline on generated and mutated mail, bounded
//! so that they run in seconds on every CI run (the coverage-guided fuzz
//! target in fuzz/ explores further): every message gets exactly one
//! committed outcome, nothing panics, a repeat is a duplicate, what is
//! suspended is in the queue, and no stranger ever becomes a requester.

use std::sync::OnceLock;

use proptest::prelude::*;
use ticketgate::config::Settings;
use ticketgate::inbound::process::{Outcome, Pipeline};
use ticketgate::store::{self, Store};

const SENDERS: &[&str] = &[
    "anna.schmidt@mueller-maschinenbau.de",
    "ANNA.SCHMIDT@mueller-maschinenbau.de",
    "peter.weber@mueller-maschinenbau.de",
    "john.carter@acme-logistics.co.uk",
    "lena.fischer@example.com",
    "evil@evil.example",
    "jonas.bec\u{212A}er@mueller-maschinenbau.de",
    "MAILER-DAEMON@mx.example.com",
    "",
];

const EXTRA_HEADERS: &[&str] = &[
    "Auto-Submitted: auto-replied",
    "Precedence: bulk",
    "X-Ticketgate-Loop: support@example.com",
    "Authentication-Results: mx.example.com; dmarc=fail header.from=mueller-maschinenbau.de",
    "Authentication-Results: mx.example.com; dmarc=pass header.from=evil.example",
    "From: second@evil.example",
    "Sender: bulk@elsewhere.example",
    "In-Reply-To: <tg.1.ticket_created.0000000000000000@example.com>",
    "References: <a@x> <b@x> <c@x>",
    "To: support+billing@example.com",
    "To: support+1-aaaaaaaaaaaaa@example.com",
    "Content-Type: multipart/mixed; boundary=\"b\"",
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: base64",
    "Message-ID: <fixed@x>",
];

const BODIES: &[&str] = &[
    "Hallo,\nbitte helfen.\n",
    "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##\n> alt\n",
    "Neu oben\n\nAm 1.12.2026 schrieb Support:\n> alt\n",
    "<div></span><p>Hallo</p><table><tr><td>x</td></tr></table>",
    "--b\r\nContent-Type: text/plain\r\n\r\nTeil\r\n--b\r\nContent-Disposition: attachment; filename=\"../x\"\r\n\r\nAAAA\r\n--b--\r\n",
    "",
];

/// A mail from parts a real one could have, plus byte flips and cuts.
fn mail() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SENDERS),
        prop::collection::vec(prop::sample::select(EXTRA_HEADERS), 0..4),
        "[ -~äöü]{0,40}",
        prop::sample::select(BODIES),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(from, extra, subject, body, flips, cut)| {
            let mut raw =
                format!("From: {from}\r\nTo: support@example.com\r\nSubject: {subject}\r\n");
            for header in extra {
                raw.push_str(header);
                raw.push_str("\r\n");
            }
            raw.push_str("\r\n");
            raw.push_str(body);
            let mut raw = raw.into_bytes();
            for (at, byte) in flips {
                let i = at.index(raw.len());
                raw[i] = byte;
            }
            if let Some(cut) = cut {
                raw.truncate(cut.index(raw.len() + 1));
            }
            raw
        })
}

fn any_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => mail(),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ]
}

struct World {
    _dir: tempfile::TempDir,
    settings: Settings,
}

/// One directory and config for all cases; each case gets a database of
/// its own.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = "[mail]\nsupport_address = \"support@example.com\"\nagents_address = \"team@example.com\"\n\
                      [security]\ntoken_secret = \"prop\"\ntrusted_authserv_ids = [\"mx.example.com\"]\n";
        let settings = Settings::parse(config, dir.path()).unwrap();
        World {
            _dir: dir,
            settings,
        }
    })
}

fn check(messages: Vec<Vec<u8>>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let csv =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/users.csv")).unwrap();
        let entries = ticketgate::directory::parse(&csv).unwrap();
        ticketgate::directory::import(&store, &entries)
            .await
            .unwrap();
        let pipeline = Pipeline::new(&world().settings);
        let now = 1_795_773_600;

        let reports = pipeline
            .process_batch(&store, &messages, now)
            .await
            .unwrap();
        prop_assert_eq!(reports.len(), messages.len(), "one outcome per message");
        let mut suspended = 0;
        for report in &reports {
            match report.outcome {
                Outcome::Suspended => {
                    prop_assert!(report.reason.is_some());
                    suspended += 1;
                }
                Outcome::Ignored => prop_assert!(report.reason.is_some()),
                Outcome::Created | Outcome::Followup => {
                    prop_assert!(report.ticket.is_some());
                    prop_assert_eq!(
                        report.status,
                        Some(ticketgate::domain::ticket::Status::Open)
                    );
                }
                Outcome::Appended | Outcome::Reopened => prop_assert!(report.ticket.is_some()),
                Outcome::Duplicate => {}
            }
        }

        // The same messages again: every one a duplicate.
        let again = pipeline
            .process_batch(&store, &messages, now)
            .await
            .unwrap();
        for (first, second) in reports.iter().zip(&again) {
            prop_assert_eq!(second.outcome, Outcome::Duplicate, "{:?}", first);
        }

        let mut conn = store.acquire().await.unwrap();
        let queue = store::suspended::list(&mut conn).await.unwrap();
        prop_assert_eq!(queue.len(), suspended, "the suspended are in the queue");
        // Requesters are key users or agents of the directory, never
        // strangers or members.
        for ticket in store::tickets::list_tickets(&mut conn, &Default::default())
            .await
            .unwrap()
        {
            prop_assert!(
                [
                    "anna.schmidt@mueller-maschinenbau.de",
                    "john.carter@acme-logistics.co.uk",
                    "lena.fischer@example.com",
                ]
                .contains(&ticket.requester.as_str()),
                "requester {}",
                ticket.requester
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_message_gets_exactly_one_committed_outcome(
        messages in prop::collection::vec(any_message(), 1..8)
    ) {
        check(messages)?;
    }
}
