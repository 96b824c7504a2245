//! The help center under load: `ticketgate serve` (the release binary) on a
//! SQLite database of 100,000 tickets (1,000 organizations, two comments
//! each), and 50 signed-in clients, each on its own keep-alive connection,
//! asking one page after the other: a ticket of their organization, "Meine
//! Aktivitäten" (own requests), the organization's requests. Prints pages
//! per second and p50/p99 latency, overall and per page.
//!
//! `cargo bench --bench web` (the client runs on one thread of the same
//! machine, so the server has the rest of it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

use ticketgate::store::{insert_rows, Store};

const ORGANIZATIONS: i64 = 1_000;
const TICKETS: i64 = 100_000;
const CLIENTS: i64 = 50;
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);
const BASE_TIME: i64 = 1_790_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Page {
    Ticket,
    Mine,
    Organization,
}

const PAGES: [Page; 3] = [Page::Ticket, Page::Mine, Page::Organization];

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ticketgate.db");
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    setup.block_on(fill(&format!("sqlite://{}", db.display())));
    println!(
        "database: {TICKETS} tickets, {} comments, {ORGANIZATIONS} organizations, built in {:.1} s",
        TICKETS * 2,
        started.elapsed().as_secs_f64()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("ticketgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://ticketgate.db\"\n[mail]\nsupport_address = \"support@example.com\"\n\
             [web]\nbase_url = \"http://127.0.0.1:{port}\"\nlisten = \"127.0.0.1:{port}\"\n\
             [security]\ntoken_secret = \"bench\"\n"
        ),
    )
    .unwrap();
    let server = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let load = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = load.block_on(run_clients(port));
    drop(server);

    let mut all: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    println!(
        "{CLIENTS} clients for {} s: {} pages, {:.0} pages/s, p50 {:.1} ms, p99 {:.1} ms",
        MEASURE.as_secs(),
        all.len(),
        all.len() as f64 / MEASURE.as_secs_f64(),
        percentile(&mut all, 0.50),
        percentile(&mut all, 0.99)
    );
    for page in PAGES {
        let mut these: Vec<Duration> = results
            .iter()
            .filter(|(p, _)| *p == page)
            .map(|(_, d)| *d)
            .collect();
        println!(
            "  {page:?}: {} pages, p50 {:.1} ms, p99 {:.1} ms",
            these.len(),
            percentile(&mut these, 0.50),
            percentile(&mut these, 0.99)
        );
    }
}

/// Stops the server however the bench ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(latencies: &mut [Duration], p: f64) -> f64 {
    latencies.sort_unstable();
    let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
    latencies[index].as_secs_f64() * 1_000.0
}

/// Every client's pages in the measured window, with their latency.
async fn run_clients(port: u16) -> Vec<(Page, Duration)> {
    let start = Instant::now();
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|client| tokio::spawn(client_loop(port, client, start)))
        .collect();
    let mut results = Vec::new();
    for client in clients {
        results.extend(client.await.unwrap());
    }
    results
}

async fn client_loop(port: u16, client: i64, start: Instant) -> Vec<(Page, Duration)> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let cookie = format!("tg_session=bench-session-{client}");
    let organization = client;
    let mut results = Vec::new();
    let mut n: i64 = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed > WARM_UP + MEASURE {
            return results;
        }
        let page = PAGES[(n % 3) as usize];
        let path = match page {
            // A ticket of the client's organization: t ≡ organization (mod 1000).
            Page::Ticket => format!(
                "/tickets/{}",
                organization + ORGANIZATIONS * ((n * 37) % 100)
            ),
            Page::Mine => "/requests".to_string(),
            Page::Organization => "/requests?scope=organization&status=open".to_string(),
        };
        n += 1;
        let request = Request::get(&path)
            .header("host", "127.0.0.1")
            .header("cookie", &cookie)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let asked = Instant::now();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let took = asked.elapsed();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        if n <= 3 {
            let expected: &[u8] = match page {
                Page::Ticket => b"data-comment-id",
                _ => b"data-ticket-id",
            };
            assert!(
                body.windows(expected.len()).any(|w| w == expected),
                "{path} shows no data"
            );
        }
        if elapsed > WARM_UP {
            results.push((page, took));
        }
    }
}

/// 1,000 organizations with a key user and a member each, one agent,
/// 100,000 tickets (of every status) with two comments each, and a session
/// for each of the first 50 key users.
async fn fill(url: &str) {
    let store = Store::open(url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let organizations: Vec<i64> = (1..=ORGANIZATIONS + 1).collect();
    insert_rows(
        &mut tx,
        "INSERT INTO organizations (id, name)",
        2,
        "",
        &organizations,
        |q, id| q.bind(*id).bind(format!("Kunde {id} GmbH")),
    )
    .await
    .unwrap();
    // Key user of organization o: 2o - 1; member: 2o; the agent: 2001.
    let users: Vec<(i64, i64, String, &str)> = (1..=ORGANIZATIONS)
        .flat_map(|o| {
            [
                (2 * o - 1, o, format!("key{o}@kunde{o}.example"), "key_user"),
                (2 * o, o, format!("member{o}@kunde{o}.example"), "member"),
            ]
        })
        .chain([(
            2 * ORGANIZATIONS + 1,
            ORGANIZATIONS + 1,
            "agent@example.com".to_string(),
            "agent",
        )])
        .collect();
    insert_rows(
        &mut tx,
        "INSERT INTO users (id, organization_id, email, name, role, locale)",
        6,
        "",
        &users,
        |q, (id, org, email, role)| {
            q.bind(*id)
                .bind(*org)
                .bind(email.as_str())
                .bind(format!("Benutzer {id}"))
                .bind(*role)
                .bind("de")
        },
    )
    .await
    .unwrap();
    let statuses = ["open", "pending", "solved", "closed"];
    let tickets: Vec<i64> = (1..=TICKETS).collect();
    insert_rows(
        &mut tx,
        "INSERT INTO tickets (id, subject, organization_id, requester_id, category, priority,
             status, created_at, updated_at, solve_count)",
        10,
        "",
        &tickets,
        |q, t| {
            let org = (t - 1) % ORGANIZATIONS + 1;
            q.bind(*t)
                .bind(format!(
                    "Anfrage {t}: Der Export nach SAP bricht mit Fehler 500 ab"
                ))
                .bind(org)
                .bind(2 * org - 1)
                .bind("customer_support")
                .bind("normal")
                .bind(statuses[(((t - 1) / ORGANIZATIONS) % 4) as usize])
                .bind(BASE_TIME + t)
                .bind(BASE_TIME + t)
                .bind(0)
        },
    )
    .await
    .unwrap();
    let body =
        "Guten Tag,\n\nseit dem letzten Update bricht der Export nach SAP mit dem Fehler 500 ab. \
                Wir haben den Dienst neu gestartet und die Protokolle geprüft, ohne Erfolg. \
                Können Sie sich das bitte ansehen? Die Protokolldatei schicke ich gern nach.\n\n\
                Viele Grüße";
    let comments: Vec<i64> = (1..=TICKETS * 2).collect();
    insert_rows(
        &mut tx,
        "INSERT INTO comments (id, ticket_id, author_id, public, body, full_text, created_at)",
        7,
        "",
        &comments,
        |q, c| {
            let ticket = (c + 1) / 2;
            let org = (ticket - 1) % ORGANIZATIONS + 1;
            let author = if c % 2 == 1 {
                2 * org - 1
            } else {
                2 * ORGANIZATIONS + 1
            };
            q.bind(*c)
                .bind(ticket)
                .bind(author)
                .bind(1)
                .bind(body)
                .bind(body)
                .bind(BASE_TIME + ticket)
        },
    )
    .await
    .unwrap();
    for client in 1..=CLIENTS {
        let secret = format!("bench-session-{client}");
        ticketgate::store::accounts::create_session(
            &mut tx,
            &ticketgate::accounts::digest(&secret),
            2 * client - 1,
            BASE_TIME,
            i64::MAX / 2,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    store.close().await;
}
