//! Ingest throughput beside SQLite's own write limit, in the same run.
//!
//! 1. ticketgate: N generated messages (a third of them replies threading
//!    into earlier tickets; a fifth of the new requests carry a PDF or PNG,
//!    as real mailboxes have them) through the whole pipeline into a fresh
//!    SQLite database, committed durably in batches as `ticketgate ingest`
//!    does.
//! 2. the write limit: the same rows (tickets, comments, attachment
//!    metadata and contents, outbox rows with the template context each
//!    notification keeps, message records, thread references) with the
//!    same indexes, written straight into a fresh SQLite database with
//!    multi-row statements, one durable commit per batch (WAL,
//!    `synchronous = FULL`), nothing else done.
//!
//! 3. ticketgate on PostgreSQL: the same messages into a fresh database on
//!    the PostgreSQL of this machine (127.0.0.1:5432, trust auth; skipped
//!    with a note when it does not answer), every batch committed durably
//!    (`synchronous_commit = on`, the server's default).
//!
//! `cargo bench --bench ingest` (N from TG_BENCH_N, default 10000).

use std::time::Instant;

// Fresh PostgreSQL databases, dropped at exit, as the tests make them.
#[path = "../tests/common/database.rs"]
mod database;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Executor;
use ticketgate::config::Settings;
use ticketgate::domain::notice::{CommentRef, Context, PersonRef, TicketRef};
use ticketgate::inbound::process::{Overlapped, Pipeline};
use ticketgate::store::Store;

const ORGANIZATIONS: usize = 50;
const KEY_USERS_PER_ORG: usize = 4;
const BATCH: usize = 200;

/// One generated message, and what ticketgate stores of it.
struct Generated {
    raw: Vec<u8>,
    reply: bool,
    subject: String,
    body: String,
    attachment: Option<(&'static str, Vec<u8>)>,
}

fn main() {
    let n: usize = std::env::var("TG_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let messages = generate(n);
    let bytes: usize = messages.iter().map(|m| m.raw.len()).sum();
    let attachments = messages.iter().filter(|m| m.attachment.is_some()).count();
    println!(
        "ingest: {n} messages ({:.1} MB, {attachments} with an attachment)",
        bytes as f64 / 1e6
    );
    // As `ticketgate ingest` runs: one runtime thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pipeline = ticketgate_ingest(&messages, "sqlite://bench.db").await;
        let limit = write_limit(&messages).await;
        println!("ingest: ticketgate {pipeline:.0} messages/s");
        println!("ingest: SQLite write limit for the same rows {limit:.0} messages/s");
        println!(
            "ingest: ticketgate at {:.2} of the write limit",
            pipeline / limit
        );
        if database::postgres_answers() {
            let url = database::fresh_postgres("bench");
            let on_postgres = ticketgate_ingest(&messages, &url).await;
            println!("ingest: ticketgate on PostgreSQL {on_postgres:.0} messages/s");
        } else {
            println!("ingest: PostgreSQL on 127.0.0.1:5432 does not answer; skipped");
        }
        println!("ingest: peak memory (VmHWM) {}", peak_memory());
    });
}

async fn ticketgate_ingest(messages: &[Generated], url: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let config = "[database]\nurl = \"sqlite://bench.db\"\n[mail]\nsupport_address = \"support@example.com\"\nagents_address = \"team@example.com\"\n[security]\ntoken_secret = \"bench\"\ntrusted_authserv_ids = [\"mx.example.com\"]\n";
    let config = config.replace("sqlite://bench.db", url);
    let settings = Settings::parse(&config, dir.path()).unwrap();
    let store = Store::open(&settings.database.url).await.unwrap();
    ticketgate::directory::import(&store, &directory())
        .await
        .unwrap();
    let pipeline = Pipeline::new(&settings);
    let raws: Vec<Vec<u8>> = messages.iter().map(|m| m.raw.clone()).collect();
    let now = 1_795_773_600;

    let started = Instant::now();
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    // As `ingest` does: each batch parsed while the one before is written.
    let mut overlapped = Overlapped::new(&pipeline);
    for batch in raws.chunks(BATCH) {
        let reports = overlapped.push(&store, batch.to_vec(), now).await.unwrap();
        for report in reports {
            *outcomes.entry(report.outcome.as_str()).or_default() += 1;
        }
    }
    for report in overlapped.finish(&store, now).await.unwrap() {
        *outcomes.entry(report.outcome.as_str()).or_default() += 1;
    }
    let elapsed = started.elapsed();
    store.close().await;
    println!(
        "ingest: ticketgate on {} took {:.2} s; outcomes {outcomes:?}",
        url.split(':').next().unwrap_or_default(),
        elapsed.as_secs_f64()
    );
    messages.len() as f64 / elapsed.as_secs_f64()
}

/// The same rows as ticketgate writes, straight into SQLite.
async fn write_limit(messages: &[Generated]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("limit.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    pool.execute(
        "CREATE TABLE tickets (id INTEGER PRIMARY KEY, subject TEXT, organization_id INTEGER,
             requester_id INTEGER, category TEXT, priority TEXT, status TEXT, created_at INTEGER);
         CREATE TABLE comments (id INTEGER PRIMARY KEY, ticket_id INTEGER, author_id INTEGER,
             public INTEGER, body TEXT, full_text TEXT, message_id TEXT, created_at INTEGER);
         CREATE INDEX comments_by_ticket ON comments(ticket_id, id);
         CREATE TABLE attachments (id INTEGER PRIMARY KEY, comment_id INTEGER, filename TEXT,
             content_type TEXT, size INTEGER, sha256 TEXT);
         CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BLOB);
         CREATE TABLE outbox (id INTEGER PRIMARY KEY, event TEXT, ticket_id INTEGER,
             recipients TEXT, locale TEXT, subject TEXT, message_id TEXT UNIQUE,
             in_reply_to TEXT, refs TEXT, reply_to TEXT, context TEXT,
             state TEXT, next_attempt_at INTEGER, created_at INTEGER, sent_at INTEGER);
         CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
         CREATE INDEX outbox_by_recipient ON outbox(recipients, sent_at);
         CREATE TABLE messages (message_id TEXT PRIMARY KEY, fingerprint TEXT, outcome TEXT,
             ticket_id INTEGER, processed_at INTEGER);
         CREATE TABLE message_refs (id INTEGER PRIMARY KEY, message_id TEXT UNIQUE,
             ticket_id INTEGER, created_at INTEGER);
         CREATE INDEX message_refs_by_ticket ON message_refs(ticket_id, id);",
    )
    .await
    .unwrap();
    // What each notification keeps of its event, as ticketgate does.
    let contexts: Vec<String> = messages.iter().map(context_of).collect();
    let started = Instant::now();
    let mut ticket = 0i64;
    let mut comment = 0i64;
    for (b, batch) in messages.chunks(BATCH).enumerate() {
        let mut tx = pool.begin().await.unwrap();
        let mut tickets = Vec::new();
        let mut comments = Vec::new();
        let mut files = Vec::new();
        let mut outbox = Vec::new();
        let mut records = Vec::new();
        let mut refs = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            let k = b * BATCH + i;
            let id = if m.reply {
                // A reply changes its ticket too (status, times).
                let id = 1 + (k as i64 % ticket.max(1));
                tickets.push((id, m.subject.as_str()));
                id
            } else {
                ticket += 1;
                tickets.push((ticket, m.subject.as_str()));
                ticket
            };
            comment += 1;
            comments.push((comment, id, m.body.as_str()));
            if let Some((name, data)) = &m.attachment {
                files.push((comment, *name, data));
            }
            for event in if m.reply {
                &["agent_customer_reply"][..]
            } else {
                &["ticket_created", "agent_new_ticket"][..]
            } {
                outbox.push((format!("<tg.{id}.{event}.{k}@example.com>"), id, *event, k));
            }
            records.push((format!("<bench.{k}@kunde.example>"), id));
            refs.push(format!("<bench.{k}@kunde.example>"));
        }
        if !tickets.is_empty() {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO tickets (id, subject, organization_id, requester_id, category, priority, status, created_at) ");
            q.push_values(&tickets, |mut row, (id, subject)| {
                row.push_bind(id)
                    .push_bind(*subject)
                    .push_bind(1)
                    .push_bind(1)
                    .push_bind("customer_support")
                    .push_bind("normal")
                    .push_bind("open")
                    .push_bind(0);
            });
            q.push(" ON CONFLICT (id) DO UPDATE SET status = excluded.status");
            q.build().execute(&mut *tx).await.unwrap();
        }
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO comments (id, ticket_id, author_id, public, body, full_text, message_id, created_at) ");
        q.push_values(&comments, |mut row, (id, ticket, body)| {
            row.push_bind(id)
                .push_bind(ticket)
                .push_bind(1)
                .push_bind(1)
                .push_bind(*body)
                .push_bind(*body)
                .push_bind("<x>")
                .push_bind(0);
        });
        q.build().execute(&mut *tx).await.unwrap();
        if !files.is_empty() {
            let mut q =
                sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO blobs (sha256, data) ");
            q.push_values(&files, |mut row, (comment, _, data)| {
                row.push_bind(format!("{comment:064}"))
                    .push_bind(data.as_slice());
            });
            q.push(" ON CONFLICT (sha256) DO NOTHING");
            q.build().execute(&mut *tx).await.unwrap();
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO attachments (comment_id, filename, content_type, size, sha256) ",
            );
            q.push_values(&files, |mut row, (comment, name, data)| {
                row.push_bind(comment)
                    .push_bind(*name)
                    .push_bind("application/pdf")
                    .push_bind(data.len() as i64)
                    .push_bind(format!("{comment:064}"));
            });
            q.build().execute(&mut *tx).await.unwrap();
        }
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO outbox (event, ticket_id, recipients, locale, subject, message_id, in_reply_to, refs, reply_to, context, state, next_attempt_at, created_at) ");
        q.push_values(&outbox, |mut row, (message_id, ticket, event, k)| {
            row.push_bind(*event)
                .push_bind(ticket)
                .push_bind("[\"user1@kunde12.example\"]")
                .push_bind("de")
                .push_bind("[#1234] Wareneingang 1234: Lagerort nicht gefunden")
                .push_bind(message_id.as_str())
                .push_bind(format!("<bench.{k}@kunde12.example>"))
                .push_bind(format!("<bench.{k}@kunde12.example>"))
                .push_bind("support+t1234.8f2a9c1e5b7d3a60@example.com")
                .push_bind(contexts[*k].as_str())
                .push_bind("queued")
                .push_bind(0)
                .push_bind(0);
        });
        q.build().execute(&mut *tx).await.unwrap();
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO messages (message_id, fingerprint, outcome, ticket_id, processed_at) ",
        );
        q.push_values(&records, |mut row, (message_id, ticket)| {
            row.push_bind(message_id.as_str())
                .push_bind("f")
                .push_bind("created")
                .push_bind(ticket)
                .push_bind(0);
        });
        q.build().execute(&mut *tx).await.unwrap();
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO message_refs (message_id, ticket_id, created_at) ",
        );
        q.push_values(
            refs.iter().chain(outbox.iter().map(|o| &o.0)),
            |mut row, message_id| {
                row.push_bind(message_id.as_str()).push_bind(1).push_bind(0);
            },
        );
        q.build().execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    let elapsed = started.elapsed();
    pool.close().await;
    println!(
        "ingest: the write limit took {:.2} s",
        elapsed.as_secs_f64()
    );
    messages.len() as f64 / elapsed.as_secs_f64()
}

/// The template context of a notification about `m`, as ticketgate keeps
/// it in the outbox row.
fn context_of(m: &Generated) -> String {
    let person = PersonRef {
        name: "Benutzer 1".into(),
        email: "user1@kunde12.example".into(),
    };
    let context = Context {
        recipient: person.clone(),
        requester: person,
        organization: "Kunde 12 GmbH".into(),
        ticket: Some(TicketRef {
            id: 1234,
            subject: m.subject.clone(),
            status: "open".into(),
            status_label: "Offen".into(),
            link: "https://help.example.com/tickets/1234".into(),
            category: "customer_support".into(),
            priority: "normal".into(),
            urgent: false,
            followup_of: None,
        }),
        comment: Some(CommentRef {
            author: "Benutzer 1".into(),
            body: m.body.clone(),
        }),
        rating: None,
        subject: m.subject.clone(),
        reopen_days: 14,
        link: String::new(),
        key_users: Vec::new(),
    };
    serde_json::to_string(&context).unwrap()
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

const BODY_DE: &str = "Guten Tag,\r\n\r\nbeim Buchen des Wareneingangs erscheint seit dem Update die Meldung\r\n\"Lagerort nicht gefunden\". Betroffen sind alle Artikel der Gruppe 4711.\r\nKönnen Sie uns bitte helfen? Die Inventur steht vor der Tür.\r\n\r\nMit freundlichen Grüßen\r\nBenutzer\r\n";

/// A deterministic mix: two thirds new tickets (every fifth of them with a
/// screenshot or a PDF), one third replies that thread by subject tag or by
/// References to an earlier mail, with the quoted history a real client
/// sends.
fn generate(n: usize) -> Vec<Generated> {
    let mut messages = Vec::with_capacity(n);
    let mut tickets = 0usize;
    // The ticket each new-ticket mail will open (ids count from 1).
    let mut ticket_of = vec![0usize; n];
    for i in 0..n {
        let org = i % ORGANIZATIONS;
        let user = (i / ORGANIZATIONS) % KEY_USERS_PER_ORG;
        let from = format!("user{user}@kunde{org}.example");
        let reply = i % 3 == 2 && i >= ORGANIZATIONS;
        let message = if reply {
            // i ≡ 2 (mod 3), so i - ORGANIZATIONS (≡ 0) was a new ticket of
            // the same organization: thread by References to that mail.
            let target = i - ORGANIZATIONS;
            let tag_ticket = ticket_of[target];
            let body = "Danke, das hat geholfen. Eine Frage noch: gilt das auch für Gruppe 4712?";
            let raw = format!(
                "From: Benutzer <{from}>\r\nTo: support@example.com\r\nSubject: AW: [#{tag_ticket}] Wareneingang {target}\r\nMessage-ID: <bench.{i}@kunde{org}.example>\r\nIn-Reply-To: <bench.{target}@kunde{}.example>\r\nReferences: <bench.{target}@kunde{}.example>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n\r\nAm 27.11.2026 um 09:12 schrieb Support <support@example.com>:\r\n> ##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##\r\n>\r\n> Ihre Anfrage [#{tag_ticket}] wurde beantwortet.\r\n>\r\n{}",
                target % ORGANIZATIONS,
                target % ORGANIZATIONS,
                BODY_DE.lines().map(|l| format!("> {l}\r\n")).collect::<String>()
            );
            Generated {
                raw: raw.into_bytes(),
                reply: true,
                subject: format!("Wareneingang {target}"),
                body: body.into(),
                attachment: None,
            }
        } else {
            tickets += 1;
            ticket_of[i] = tickets;
            let subject = format!("Wareneingang {i}: Lagerort nicht gefunden");
            let text = BODY_DE
                .replace('ü', "=C3=BC")
                .replace('ö', "=C3=B6")
                .replace('ß', "=C3=9F")
                .replace('Ü', "=C3=9C");
            let attachment = tickets.is_multiple_of(5).then(|| {
                if tickets.is_multiple_of(10) {
                    ("Pruefbericht.pdf", pseudo_random(i as u64, 60_000))
                } else {
                    ("Fehlermeldung.png", pseudo_random(i as u64, 30_000))
                }
            });
            let raw = match &attachment {
                None => format!(
                    "From: Benutzer <{from}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <bench.{i}@kunde{org}.example>\r\nDate: Fri, 27 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{text}"
                ),
                Some((name, data)) => {
                    let content_type = if name.ends_with(".pdf") { "application/pdf" } else { "image/png" };
                    format!(
                        "From: Benutzer <{from}>\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <bench.{i}@kunde{org}.example>\r\nDate: Fri, 27 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{text}\r\n--b{i}\r\nContent-Type: {content_type}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--b{i}--\r\n",
                        base64_lines(data)
                    )
                }
            };
            Generated {
                raw: raw.into_bytes(),
                reply: false,
                subject,
                body: BODY_DE.into(),
                attachment,
            }
        };
        messages.push(message);
    }
    messages
}

/// Incompressible, distinct per seed, like a real screenshot or PDF.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 54 * 2 + 4);
    for (i, chunk) in bytes.chunks(3).enumerate() {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
        if (i + 1) % 19 == 0 {
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out
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
