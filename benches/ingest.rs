//! Ingest throughput: N generated messages (a third of them replies into
//! earlier tickets) through the whole pipeline into a fresh SQLite database,
//! committed durably in batches as `ticketgate ingest` does.
//!
//! `cargo bench --bench ingest` (N from TG_BENCH_N, default 10000).

use std::time::Instant;

use ticketgate::config::Settings;
use ticketgate::inbound::process::Pipeline;
use ticketgate::store::Store;

const ORGANIZATIONS: usize = 50;
const KEY_USERS_PER_ORG: usize = 4;
const BATCH: usize = 200;

fn main() {
    let n: usize = std::env::var("TG_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let config = "[database]\nurl = \"sqlite://bench.db\"\n[mail]\nsupport_address = \"support@example.com\"\nagents_address = \"team@example.com\"\n[security]\ntoken_secret = \"bench\"\ntrusted_authserv_ids = [\"mx.example.com\"]\n";
    let settings = Settings::parse(config, dir.path()).unwrap();
    // As `ticketgate ingest` does: one thread, pinned with its database worker.
    ticketgate::cpu::pin_to_current_cpu();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let messages = generate(n);
    let bytes: usize = messages.iter().map(Vec::len).sum();

    runtime.block_on(async {
        let store = Store::open(&settings.database.url).await.unwrap();
        ticketgate::directory::import(&store, &directory())
            .await
            .unwrap();
        let pipeline = Pipeline::new(&settings);
        let now = 1_795_773_600;

        let started = Instant::now();
        let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
        for batch in messages.chunks(BATCH) {
            for report in pipeline.process_batch(&store, batch, now).await.unwrap() {
                *outcomes.entry(report.outcome.as_str()).or_default() += 1;
            }
        }
        let elapsed = started.elapsed();
        store.close().await;

        println!(
            "ingest: {n} messages ({:.1} MB) in {:.2} s",
            bytes as f64 / 1e6,
            elapsed.as_secs_f64()
        );
        println!("ingest: {:.0} messages/s", n as f64 / elapsed.as_secs_f64());
        println!("ingest: outcomes {outcomes:?}");
        println!("ingest: peak memory (VmHWM) {}", peak_memory());
    });
}

fn directory() -> Vec<ticketgate::directory::Entry> {
    let mut entries = Vec::new();
    for org in 0..ORGANIZATIONS {
        for user in 0..KEY_USERS_PER_ORG {
            entries.push(ticketgate::directory::Entry {
                organization: format!("Kunde {org} GmbH"),
                email: format!("user{user}@kunde{org}.example"),
                name: format!("Benutzer {user}"),
                role: ticketgate::domain::sender::Role::KeyUser,
                locale: if org % 2 == 0 { "de" } else { "en" }.into(),
            });
        }
    }
    entries
}

/// A deterministic mix: two thirds new tickets, one third replies that
/// thread by subject tag or by References to an earlier mail, with the
/// quoted history a real client sends.
fn generate(n: usize) -> Vec<Vec<u8>> {
    let mut messages = Vec::with_capacity(n);
    let mut tickets = 0usize;
    // The ticket each new-ticket mail will open (ids count from 1).
    let mut ticket_of = vec![0usize; n];
    for i in 0..n {
        let org = i % ORGANIZATIONS;
        let user = (i / ORGANIZATIONS) % KEY_USERS_PER_ORG;
        let from = format!("user{user}@kunde{org}.example");
        let body_de = "Guten Tag,\r\n\r\nbeim Buchen des Wareneingangs erscheint seit dem Update die Meldung\r\n\"Lagerort nicht gefunden\". Betroffen sind alle Artikel der Gruppe 4711.\r\nKönnen Sie uns bitte helfen? Die Inventur steht vor der Tür.\r\n\r\nMit freundlichen Grüßen\r\nBenutzer\r\n";
        let reply = i % 3 == 2 && i >= ORGANIZATIONS;
        let raw = if reply {
            // i ≡ 2 (mod 3), so i - ORGANIZATIONS (≡ 0) was a new ticket of
            // the same organization: thread by References to that mail.
            let target = i - ORGANIZATIONS;
            let tag_ticket = ticket_of[target];
            format!(
                "From: Benutzer <{from}>\r\nTo: support@example.com\r\nSubject: AW: [#{tag_ticket}] Wareneingang {target}\r\nMessage-ID: <bench.{i}@kunde{org}.example>\r\nIn-Reply-To: <bench.{target}@kunde{}.example>\r\nReferences: <bench.{target}@kunde{}.example>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nDanke, das hat geholfen. Eine Frage noch: gilt das auch für Gruppe 4712?\r\n\r\nAm 27.11.2026 um 09:12 schrieb Support <support@example.com>:\r\n> ##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##\r\n>\r\n> Ihre Anfrage [#{tag_ticket}] wurde beantwortet.\r\n>\r\n{}",
                target % ORGANIZATIONS,
                target % ORGANIZATIONS,
                body_de.lines().map(|l| format!("> {l}\r\n")).collect::<String>()
            )
        } else {
            tickets += 1;
            ticket_of[i] = tickets;
            format!(
                "From: Benutzer <{from}>\r\nTo: support@example.com\r\nSubject: Wareneingang {i}: Lagerort nicht gefunden\r\nMessage-ID: <bench.{i}@kunde{org}.example>\r\nDate: Fri, 27 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}",
                body_de.replace('ü', "=C3=BC").replace('ö', "=C3=B6").replace('ß', "=C3=9F").replace('Ü', "=C3=9C")
            )
        };
        messages.push(raw.into_bytes());
    }
    messages
}

fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l[6..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
