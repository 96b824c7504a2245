//! `ticketgate run` against the real Dovecot of the end-to-end tests:
//!
//! 1. backlog: N messages (German and English, from several clients, a
//!    third of them replies threading by References) wait in the support
//!    mailbox when the daemon starts; measured until every one has its
//!    committed outcome (messages/s, the daemon's peak memory). One more
//!    message arrives during the drain and must be processed after it;
//! 2. IDLE latency: single messages APPENDed while the daemon idles, timed
//!    from the APPEND until the database shows the message committed;
//! 3. trickle: messages APPENDed every 10 ms, so that many arrive while the
//!    daemon is busy with the previous ones: latency under steady load;
//! 4. mid-drain arrival: one message APPENDed while the daemon drains a
//!    burst that IDLE announced, after its SEARCH; it must not wait for
//!    the next arrival;
//! 5. several instances: two daemons on one fresh PostgreSQL database
//!    (127.0.0.1:5432; skipped with a note when it does not answer), two
//!    mailboxes of N messages each waiting at the start; measured until
//!    every message of both has its committed outcome
//!    (TG_BENCH_PART=instances runs only this part).
//!
//! `cargo bench --bench imap_backlog` (N from TG_BENCH_N, default 10000;
//! the daemon's `[imap] batch_size` from TG_BENCH_BATCH, default 100;
//! TG_BENCH_KEEP=1 keeps the temp dir with config, database and daemon
//! log). Starts the mail servers with tests/servers/mailservers.sh if they
//! are not running (root needed) and leaves them running.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_imap::Session;

// Fresh PostgreSQL databases, dropped at exit, as the tests make them.
#[path = "../tests/common/database.rs"]
mod database;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ORGANIZATIONS: usize = 50;
const KEY_USERS_PER_ORG: usize = 4;
/// A reply answers the mail this many places earlier: the same
/// organization (a multiple of ORGANIZATIONS) and a new-ticket mail
/// (replies are i ≡ 2 mod 3, so the target is ≡ 0).
const REPLY_DISTANCE: usize = 500;
const _: () = assert!(REPLY_DISTANCE.is_multiple_of(ORGANIZATIONS) && REPLY_DISTANCE % 3 == 2);
/// Messages per MULTIAPPEND command. One APPEND per message costs Dovecot
/// a Maildir rescan each, quadratic in the mailbox size (10,000 took
/// 54 s even over 8 connections); a MULTIAPPEND is one transaction.
const APPEND_CHUNK: usize = 500;
const LATENCY_SAMPLES: usize = 20;
const TRICKLE: usize = 200;
const TRICKLE_INTERVAL: Duration = Duration::from_millis(10);
/// Enough for a drain of a few batches (~0.2 s), to append into.
const BURST: usize = 300;
/// How long a single message may take before it counts as stuck.
const STUCK: Duration = Duration::from_secs(10);
/// How long stuck messages get to come in by themselves: beyond Dovecot's
/// `mailbox_idle_check_interval` (30 s), its fallback when a change
/// notification is missed.
const RESCUE: Duration = Duration::from_secs(35);

type ImapSession = Session<TcpStream>;

fn main() {
    let n: usize = std::env::var("TG_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let batch: usize = std::env::var("TG_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let problems = runtime.block_on(bench(n, batch));
    if !problems.is_empty() {
        println!("imap backlog: PROBLEMS");
        for problem in &problems {
            println!("  - {problem}");
        }
        std::process::exit(1);
    }
}

async fn bench(n: usize, batch: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let servers = MailServers::start();
    let run = format!("bench-{}", std::process::id());
    // An own mailbox, so neither other tests nor earlier runs interfere.
    let user = format!("support-{run}@example.com");
    let _mailbox = servers.mailbox(&user);
    let dir = tempfile::Builder::new()
        .prefix("ticketgate-imap-bench-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("ticketgate.toml");
    std::fs::write(&config, config_text(&servers, &user, batch)).unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(&users, users_csv()).unwrap();
    let bin = ticketgate_binary();
    let import = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(["users", "import"])
        .arg(&users)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "users import: {}",
        String::from_utf8_lossy(&import.stderr)
    );

    if std::env::var("TG_BENCH_PART").is_ok_and(|p| p == "instances") {
        return two_instances_on_postgres(&servers, &bin, &users, n, batch).await;
    }

    // Setup, not measured: fill the mailbox.
    let messages = generate(n, &run, &user);
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let appending = Instant::now();
    servers.multiappend(&user, &messages).await;
    println!(
        "imap backlog: appended {n} messages ({:.1} MB) in {:.1} s (setup, MULTIAPPEND)",
        bytes as f64 / 1e6,
        appending.elapsed().as_secs_f64()
    );

    // Setup wrote ~11 MB of Maildir; its writeback must not compete with
    // the daemon's fsyncs.
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };

    // The yardstick: a minimal client that only fetches and moves the same
    // messages from a mailbox of its own, batch by batch.
    // Its mailbox goes at the end: on ext4 without a journal, ten thousand
    // files deleted just before the daemon starts would slow every file it
    // creates (the file transport's mails) for minutes.
    let (yardstick, _minimal_mailbox) = minimal_client(&servers, &run, n, batch).await;

    // Every message appended, for the final mailbox check.
    let mut sent = n;
    let mut session = servers.login(&user).await;

    // 1. The backlog, and one message arriving while it is drained (after
    // the first batch), which the daemon can learn of only from an untagged
    // EXISTS in the answer to one of its later commands.
    let log_path = dir.path().join("daemon.log");
    let started = Instant::now();
    let mut daemon = Daemon::spawn(&bin, &config, &log_path);
    let db = Database::open(&dir.path().join("bench.db"), &mut daemon).await;
    let deadline = started + Duration::from_secs(60 + n as u64 / 50);
    let mut processed = 0;
    let mut arrived = false;
    while processed < n {
        daemon.assert_running();
        if !arrived
            && daemon
                .first_line_after(started, "batch committed")
                .is_some()
        {
            let raw = single_message(&run, "during-backlog", &user, 3);
            session.append("INBOX", None, None, &raw).await.unwrap();
            arrived = true;
            sent += 1;
        }
        if Instant::now() > deadline {
            problems.push(format!(
                "backlog: only {processed} of {n} messages processed after {:.0} s",
                started.elapsed().as_secs_f64()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        processed = db.processed().await;
    }
    let elapsed = started.elapsed();
    let outbox_at_drain_end = db.outbox().await;
    let backlog_peak = daemon.memory("VmHWM");
    let (user_cpu, system_cpu) = daemon.cpu();
    let rate = processed as f64 / elapsed.as_secs_f64();
    println!(
        "imap backlog: {processed} messages in {:.2} s = {rate:.0} messages/s, daemon peak memory {}",
        elapsed.as_secs_f64(),
        backlog_peak
    );
    println!(
        "imap backlog: the daemon at {:.2} of the minimal fetch-and-move client",
        rate / yardstick
    );
    // The client's clock starts at its login; the daemon's above at its
    // process start. The same from the daemon's login, for comparison.
    if let Some(connected) = daemon.first_line_after(started, "IMAP connected") {
        let draining = (started + elapsed).saturating_duration_since(connected);
        let from_login = processed as f64 / draining.as_secs_f64().max(1e-6);
        println!(
            "imap backlog: from its IMAP login ({:.2} s after its start) {:.2} s = {from_login:.0} messages/s, {:.2} of the client",
            connected.duration_since(started).as_secs_f64(),
            draining.as_secs_f64(),
            from_login / yardstick
        );
    }
    println!(
        "imap backlog: daemon CPU {user_cpu:.2} s user + {system_cpu:.2} s system in {:.2} s ({:.0} % of one CPU)",
        elapsed.as_secs_f64(),
        (user_cpu + system_cpu) / elapsed.as_secs_f64() * 100.0
    );
    println!("imap backlog: outcomes {:?}", db.outcomes().await);
    println!("imap backlog: outbox when the backlog was in {outbox_at_drain_end:?}");
    // The outbox worker shares the daemon's one thread with the poller and
    // lags behind it; the latency parts need an idle daemon.
    let outbox_deadline = Instant::now() + Duration::from_secs(60 + n as u64 / 50);
    while db.queued().await > 0 && Instant::now() < outbox_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match db.queued().await {
        0 => println!(
            "imap backlog: outbox empty (file transport) {:.2} s after the daemon started",
            started.elapsed().as_secs_f64()
        ),
        left => problems.push(format!(
            "outbox: {left} notifications still queued {:.0} s after the daemon started",
            started.elapsed().as_secs_f64()
        )),
    }
    // After the wait, so that the last batch's line (logged after its MOVE)
    // has arrived.
    // Only the backlog's drain: its done= counts rise, a later drain (the
    // message that arrived meanwhile) starts low again.
    let mut commits = daemon.batch_commits();
    if let Some(end) = commits.windows(2).position(|w| w[1].1 <= w[0].1) {
        commits.truncate(end + 1);
    }
    if let (Some((first_at, first_done)), Some((last_at, last_done))) =
        (commits.first(), commits.last())
    {
        let span = last_at.duration_since(*first_at).as_secs_f64();
        println!(
            "imap backlog: start to first batch done {:.2} s; first to last batch done {:.2} s = {:.0} messages/s ({} batches of {batch})",
            first_at.duration_since(started).as_secs_f64(),
            span,
            (last_done - first_done) as f64 / span.max(1e-6),
            commits.len()
        );
    }
    if arrived {
        let target = n + 1;
        let waiting = Instant::now();
        while db.processed().await < target && waiting.elapsed() < STUCK {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if db.processed().await >= target {
            println!("imap backlog: the message that arrived during it was processed too");
        } else {
            let (what, nudged) = stranded(
                &db,
                &mut session,
                &run,
                &user,
                "backlog",
                target,
                started + elapsed,
            )
            .await;
            sent += usize::from(nudged);
            problems.push(format!(
                "backlog: a message APPENDed during the drain (after its first batch) was unprocessed {} s after the drain ended; {what}",
                STUCK.as_secs()
            ));
        }
    }
    let replies = (0..n).filter(|&i| is_reply(i)).count();
    let appended = db.outcome_count("appended").await;
    if processed == n && appended != replies {
        problems.push(format!(
            "backlog: {replies} replies sent, but {appended} threaded into their tickets"
        ));
    }

    // 2. Latency while idling.
    let mut latencies = Vec::new();
    let mut appends = Vec::new();
    // From the daemon's "processing the mailbox" (IDLE woke, mailbox
    // re-selected and searched) to the commit: its own share.
    let mut own = Vec::new();
    sent += LATENCY_SAMPLES;
    for sample in 0..LATENCY_SAMPLES {
        // Time for the daemon to settle back into IDLE.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = db.processed().await;
        let raw = single_message(&run, &format!("idle{sample}"), &user, sample);
        let t0 = Instant::now();
        session.append("INBOX", None, None, &raw).await.unwrap();
        appends.push(t0.elapsed());
        loop {
            if db.processed().await > before {
                let done = Instant::now();
                latencies.push(done - t0);
                if let Some(woke) = daemon.first_line_after(t0, "processing the mailbox") {
                    own.push(done.saturating_duration_since(woke));
                }
                break;
            }
            if t0.elapsed() > STUCK {
                problems.push(format!(
                    "idle latency: sample {sample} not processed {} s after its APPEND",
                    STUCK.as_secs()
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        daemon.assert_running();
    }
    if !latencies.is_empty() && !own.is_empty() {
        println!(
            "idle latency: median {} ms, max {} ms ({} samples, APPEND over IMAP; the APPEND itself: median {} ms; from the daemon's wake-up to commit: median {} ms, max {} ms)",
            millis(median(&mut latencies)),
            millis(*latencies.iter().max().unwrap()),
            latencies.len(),
            millis(median(&mut appends)),
            millis(median(&mut own)),
            millis(*own.iter().max().unwrap()),
        );
    }

    // 3. A steady trickle, most messages arriving mid-drain.
    let base = db.processed().await;
    let (mut trickle, missing) = trickle(&db, &mut session, &run, &user, base).await;
    if !trickle.is_empty() {
        println!(
            "trickle: {} of {TRICKLE} messages, one per {} ms: latency median {} ms, max {} ms",
            trickle.len(),
            TRICKLE_INTERVAL.as_millis(),
            millis(median(&mut trickle)),
            millis(*trickle.iter().max().unwrap()),
        );
    }
    sent += TRICKLE;
    if missing > 0 {
        let since = Instant::now() - STUCK;
        let (what, nudged) = stranded(
            &db,
            &mut session,
            &run,
            &user,
            "trickle",
            base + TRICKLE,
            since,
        )
        .await;
        sent += usize::from(nudged);
        problems.push(format!(
            "trickle: {missing} of {TRICKLE} messages still unprocessed {} s after the last APPEND; {what}",
            STUCK.as_secs(),
        ));
    }

    // 4. As in part 1, but in a drain that IDLE started: one message
    // arriving right after the SEARCH, one after the first batch's MOVE
    // (whose EXPUNGE responses fill async-imap's queue of unsolicited
    // responses, 100 entries; later ones, an EXISTS too, are dropped).
    for (probe, (when, line)) in [
        ("after its SEARCH", "processing the mailbox"),
        ("after its first batch", "batch committed"),
    ]
    .into_iter()
    .enumerate()
    {
        // The previous message's log lines come after its commit; let them
        // arrive so they are not mistaken for this drain's.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let base = db.processed().await;
        let burst: Vec<Vec<u8>> = (0..BURST)
            .map(|k| single_message(&run, &format!("burst{probe}.{k}"), &user, k))
            .collect();
        let t0 = Instant::now();
        servers.multiappend(&user, &burst).await;
        sent += BURST;
        while daemon.first_line_after(t0, line).is_none() && t0.elapsed() < STUCK {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let late = single_message(&run, &format!("late{probe}"), &user, 7);
        session.append("INBOX", None, None, &late).await.unwrap();
        sent += 1;
        let appended = Instant::now();
        let target = base + BURST + 1;
        while db.processed().await < target && appended.elapsed() < STUCK {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Whether it really came mid-drain: that drain's SEARCH found the
        // burst alone, and its last batch came after the APPEND.
        let searched = daemon.first_value_after(t0, "processing the mailbox", "waiting=");
        let mid_drain = searched == Some(BURST)
            && daemon
                .batch_commits()
                .iter()
                .any(|(at, done)| *at > appended && *done == BURST);
        let mid_drain = if mid_drain {
            "while the burst was still being drained"
        } else {
            "but not mid-drain: the timing missed"
        };
        if db.processed().await >= target {
            println!(
                "mid-drain arrival ({when}): processed {} ms after its APPEND ({mid_drain})",
                appended.elapsed().as_millis(),
            );
        } else {
            let tag = format!("late{probe}");
            let (what, nudged) =
                stranded(&db, &mut session, &run, &user, &tag, target, appended).await;
            sent += usize::from(nudged);
            problems.push(format!(
                "mid-drain arrival ({when}, {mid_drain}): unprocessed {} s after its APPEND; {what}",
                STUCK.as_secs(),
            ));
        }
    }

    // Stop the daemon; its peak memory covers all parts.
    let peak = daemon.memory("VmHWM");
    let stopping = Instant::now();
    match daemon.stop() {
        Ok(status) if status.success() => println!(
            "daemon: stopped {} ms after SIGTERM; peak memory over the whole run {peak}",
            stopping.elapsed().as_millis()
        ),
        Ok(status) => problems.push(format!("daemon: exited with {status} after SIGTERM")),
        Err(e) => problems.push(e),
    }
    let log = daemon.lines();
    // Rate-limit suppression is the loop brake working as configured: each
    // generated user writes dozens of mails within the hour.
    let (rate_limited, complaints): (Vec<&String>, Vec<&String>) = log
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .partition(|l| l.contains("suppressed: rate limit"));
    println!(
        "daemon: {} rate-limit warnings (expected), {} other warnings/errors",
        rate_limited.len(),
        complaints.len()
    );
    for line in complaints.iter().take(10) {
        problems.push(format!("daemon log: {line}"));
    }
    if complaints.len() > 10 {
        problems.push(format!(
            "daemon log: {} more warnings/errors",
            complaints.len() - 10
        ));
    }
    println!("daemon: outbox {:?}", db.outbox().await);
    let suspended = db.suspended().await;
    if !suspended.is_empty() {
        problems.push(format!("suspended messages: {suspended:?}"));
    }
    db.pool.close().await;

    // Every message must have left INBOX for the processed folder.
    let waiting = session.select("INBOX").await.unwrap().exists;
    let moved = session
        .status("Processed", "(MESSAGES)")
        .await
        .unwrap()
        .exists;
    if waiting != 0 || moved as usize != sent {
        problems.push(format!(
            "mailbox: {waiting} left in INBOX, {moved} in Processed, {sent} sent"
        ));
    }
    let _ = session.logout().await;

    problems.extend(two_instances_on_postgres(&servers, &bin, &users, n, batch).await);

    if std::env::var_os("TG_BENCH_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
    problems
}

/// Part 5: two daemons on one PostgreSQL database, two mailboxes of `n`
/// messages each, both waiting when the daemons start.
async fn two_instances_on_postgres(
    servers: &MailServers,
    bin: &Path,
    users_file: &Path,
    n: usize,
    batch: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !database::postgres_answers() {
        println!("imap instances: PostgreSQL on 127.0.0.1:5432 does not answer; skipped");
        return problems;
    }
    let url = database::fresh_postgres("bench");
    let run = format!("instances-{}", std::process::id());
    let users = [
        format!("support-a-{run}@example.com"),
        format!("support-b-{run}@example.com"),
    ];
    let _mailboxes: Vec<_> = users.iter().map(|u| servers.mailbox(u)).collect();
    for (i, user) in users.iter().enumerate() {
        servers
            .multiappend(user, &generate(n, &format!("{run}-{i}"), user))
            .await;
    }
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    let dir = tempfile::Builder::new()
        .prefix("ticketgate-instances-bench-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("ticketgate.toml");
    let single = config_text(servers, &users[0], batch).replace("sqlite://bench.db", &url);
    let imap_start = single.find("[imap]").unwrap();
    let imap_end = single[imap_start..].find("\n\n").unwrap() + imap_start;
    let imap = &single[imap_start..imap_end];
    let mailboxes = format!(
        "{}\n\n{}\n",
        imap.replace("[imap]", "[[mailbox]]\nname = \"a\""),
        imap.replace("[imap]", "[[mailbox]]\nname = \"b\"")
            .replace(&users[0], &users[1]),
    );
    let text = format!(
        "{}{mailboxes}{}",
        &single[..imap_start],
        &single[imap_end..]
    );
    std::fs::write(&config, text).unwrap();
    let import = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .args(["users", "import", "--no-invite"])
        .arg(users_file)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let processed = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM messages")
            .fetch_one(&pool)
            .await
            .unwrap() as usize
    };

    let started = Instant::now();
    let mut daemons: Vec<Daemon> = (0..2)
        .map(|i| Daemon::spawn(bin, &config, &dir.path().join(format!("daemon-{i}.log"))))
        .collect();
    let total = 2 * n;
    let deadline = started + Duration::from_secs(60 + total as u64 / 50);
    let mut done = 0;
    while done < total && Instant::now() < deadline {
        for daemon in &mut daemons {
            daemon.assert_running();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        done = processed().await;
    }
    let elapsed = started.elapsed();
    let holders: Vec<(String, String)> =
        sqlx::query_as("SELECT mailbox, holder FROM mailbox_leases ORDER BY mailbox")
            .fetch_all(&pool)
            .await
            .unwrap();
    println!(
        "imap instances: 2 daemons on PostgreSQL, 2 mailboxes of {n}: {done} messages in {:.2} s = {:.0} messages/s; leases {holders:?}",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
    if done < total {
        problems.push(format!("instances: only {done} of {total} processed"));
    }
    if holders.len() == 2 && holders[0].1 == holders[1].1 {
        problems.push("instances: one daemon read both mailboxes".into());
    }
    for daemon in &daemons {
        // SAFETY: kill has no preconditions.
        unsafe { libc::kill(daemon.child.id() as i32, libc::SIGTERM) };
    }
    for daemon in &mut daemons {
        let _ = daemon.child.wait();
    }
    pool.close().await;
    if std::env::var_os("TG_BENCH_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
    problems
}

/// Fetches and moves `n` messages batch by batch, nothing else; returns
/// messages per second, and the client's mail, to be deleted later.
async fn minimal_client(
    servers: &MailServers,
    run: &str,
    n: usize,
    batch: usize,
) -> (f64, MailboxRemoval) {
    use futures::TryStreamExt;
    let user = format!("minimal-{run}@example.com");
    let mailbox = servers.mailbox(&user);
    servers.multiappend(&user, &generate(n, run, &user)).await;
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    let started = Instant::now();
    let mut session = servers.login(&user).await;
    let _ = session.create("Processed").await;
    session.select("INBOX").await.unwrap();
    let mut done = 0;
    let (mut fetch_time, mut move_time) = (Duration::ZERO, Duration::ZERO);
    loop {
        let mut uids: Vec<u32> = session
            .uid_search("ALL")
            .await
            .unwrap()
            .into_iter()
            .collect();
        if uids.is_empty() {
            break;
        }
        uids.sort_unstable();
        for chunk in uids.chunks(batch) {
            let set: Vec<String> = chunk.iter().map(u32::to_string).collect();
            let set = set.join(",");
            let fetching = Instant::now();
            let fetched: Vec<_> = session
                .uid_fetch(&set, "(UID BODY.PEEK[])")
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            done += fetched.iter().filter(|f| f.body().is_some()).count();
            let moving = Instant::now();
            fetch_time += moving - fetching;
            session.uid_mv(&set, "Processed").await.unwrap();
            move_time += moving.elapsed();
            while session.unsolicited_responses.try_recv().is_ok() {}
        }
    }
    let elapsed = started.elapsed();
    let _ = session.logout().await;
    let rate = done as f64 / elapsed.as_secs_f64();
    println!(
        "imap backlog: minimal fetch-and-move client: {done} messages in {:.2} s = {rate:.0} messages/s (FETCH {:.2} s, MOVE {:.2} s)",
        elapsed.as_secs_f64(),
        fetch_time.as_secs_f64(),
        move_time.as_secs_f64()
    );
    (rate, mailbox)
}

/// After messages went missing (processed count below `target`; `since`:
/// when the daemon should have had them, i.e. their APPEND or the end of
/// the drain they arrived during): are they still in INBOX, does Dovecot's
/// periodic IDLE check (every 30 s) bring them in, or does it take a new
/// arrival? Returns the diagnosis and whether it appended a message.
async fn stranded(
    db: &Database,
    session: &mut ImapSession,
    run: &str,
    user: &str,
    tag: &str,
    target: usize,
    since: Instant,
) -> (String, bool) {
    let inbox = session
        .status("INBOX", "(MESSAGES)")
        .await
        .map_or(0, |m| m.exists);
    while db.processed().await < target && since.elapsed() < RESCUE {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if db.processed().await >= target {
        let what = format!(
            "{inbox} waited in INBOX; they came in by themselves {:.1} s late",
            since.elapsed().as_secs_f64()
        );
        return (what, false);
    }
    let raw = single_message(run, &format!("nudge-{tag}"), user, 0);
    session.append("INBOX", None, None, &raw).await.unwrap();
    let nudged = Instant::now();
    while db.processed().await < target + 1 && nudged.elapsed() < STUCK {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let what = match (target + 1).saturating_sub(db.processed().await) {
        0 => format!(
            "{inbox} waited in INBOX, still there {} s late; one more APPEND brought them in within {} ms: the daemon sat in IDLE unaware of them",
            RESCUE.as_secs(),
            nudged.elapsed().as_millis()
        ),
        left => format!(
            "{inbox} waited in INBOX; even after one more APPEND {left} are missing"
        ),
    };
    (what, true)
}

/// Appends TRICKLE messages at a steady pace while watching the database;
/// returns each processed message's latency and how many never made it.
async fn trickle(
    db: &Database,
    session: &mut ImapSession,
    run: &str,
    user: &str,
    base: usize,
) -> (Vec<Duration>, usize) {
    let sent_at = RefCell::new(Vec::<Instant>::new());
    let appender = async {
        let start = tokio::time::Instant::now();
        for k in 0..TRICKLE {
            let raw = single_message(run, &format!("trickle{k}"), user, k);
            // Recorded before the APPEND: the daemon may commit before our
            // APPEND's OK arrives.
            sent_at.borrow_mut().push(Instant::now());
            session.append("INBOX", None, None, &raw).await.unwrap();
            tokio::time::sleep_until(start + TRICKLE_INTERVAL * (k as u32 + 1)).await;
        }
    };
    let watcher = async {
        let mut latencies = Vec::new();
        loop {
            // The daemon takes them in UID order, which is append order.
            let done = db.processed().await.saturating_sub(base);
            let now = Instant::now();
            {
                let sent_at = sent_at.borrow();
                while latencies.len() < done.min(sent_at.len()) {
                    latencies.push(now - sent_at[latencies.len()]);
                }
                if latencies.len() == TRICKLE {
                    return (latencies, 0);
                }
                if sent_at.len() == TRICKLE && now - sent_at[TRICKLE - 1] > STUCK {
                    let missing = TRICKLE - latencies.len();
                    return (latencies, missing);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let ((), result) = tokio::join!(appender, watcher);
    result
}

/// The test mail servers (started if needed) and where they listen.
struct MailServers {
    state: PathBuf,
    imap_port: u16,
    password: String,
}

impl MailServers {
    fn start() -> MailServers {
        let state = std::env::var_os("TG_MAIL_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("ticketgate-mailservers"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/mailservers.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(&state)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "starting the mail servers failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env: BTreeMap<String, String> = std::fs::read_to_string(state.join("env"))
            .expect("the start script writes STATE/env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        MailServers {
            state,
            imap_port: env["TG_IMAP_PORT"].parse().unwrap(),
            password: env["TG_MAIL_PASSWORD"].clone(),
        }
    }

    async fn login(&self, user: &str) -> ImapSession {
        let tcp = TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap().expect("greeting");
        client
            .login(user, &self.password)
            .await
            .map_err(|(e, _)| e)
            .unwrap()
    }

    /// Appends the messages in order (UIDs follow their index), many per
    /// command: MULTIAPPEND (RFC 3502) with LITERAL+ literals, which
    /// async-imap cannot send.
    async fn multiappend(&self, user: &str, messages: &[Vec<u8>]) {
        let tcp = TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .unwrap();
        let (read, mut write) = tcp.into_split();
        let mut read = tokio::io::BufReader::new(read);
        let mut line = Vec::new();
        read.read_until(b'\n', &mut line).await.unwrap();
        let login = format!("l LOGIN \"{user}\" \"{}\"\r\n", self.password);
        let mut commands = vec![("l".to_string(), login.into_bytes())];
        for (k, chunk) in messages.chunks(APPEND_CHUNK).enumerate() {
            let tag = format!("a{k}");
            let mut command = format!("{tag} APPEND INBOX").into_bytes();
            for raw in chunk {
                command.extend_from_slice(format!(" {{{}+}}\r\n", raw.len()).as_bytes());
                command.extend_from_slice(raw);
            }
            command.extend_from_slice(b"\r\n");
            commands.push((tag, command));
        }
        commands.push(("z".to_string(), b"z LOGOUT\r\n".to_vec()));
        for (tag, command) in commands {
            write.write_all(&command).await.unwrap();
            let done = format!("{tag} ");
            loop {
                line.clear();
                let read = read.read_until(b'\n', &mut line).await.unwrap();
                assert!(read > 0, "the IMAP server closed the connection");
                if line.starts_with(done.as_bytes()) {
                    let answer = String::from_utf8_lossy(&line);
                    assert!(answer[done.len()..].starts_with("OK"), "{answer}");
                    break;
                }
            }
        }
    }

    /// The user's home, Maildir included (Dovecot: STATE/mail/DOMAIN/LOCAL),
    /// deleted when the result is dropped.
    fn mailbox(&self, user: &str) -> MailboxRemoval {
        let (local, domain) = user.split_once('@').unwrap();
        MailboxRemoval(self.state.join("mail").join(domain).join(local))
    }
}

/// Deletes a user's mail when dropped, after a panic too: the state
/// directory is shared and 10,000 messages are 11 MB.
struct MailboxRemoval(PathBuf);

impl Drop for MailboxRemoval {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

fn config_text(servers: &MailServers, user: &str, batch: usize) -> String {
    format!(
        r#"[database]
url = "sqlite://bench.db"

[mail]
support_address = "{user}"
agents_address = "team@example.com"

[imap]
host = "127.0.0.1"
port = {port}
tls = false
username = "{user}"
password = "{password}"
processed_mailbox = "Processed"
batch_size = {batch}

[outbound]
# Files, so that delivering the acknowledgements does not dominate.
transport = "file"
dir = "outbox"

[security]
token_secret = "bench"
trusted_authserv_ids = ["mx.example.com"]

[storage]
data_dir = "data"
"#,
        port = servers.imap_port,
        password = servers.password,
    )
}

/// The release binary `cargo bench` builds beside this bench (the bench
/// profile inherits release), so it is never stale.
fn ticketgate_binary() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ticketgate"));
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// The daemon, with its stderr collected line by line as it arrives.
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn spawn(bin: &Path, config: &Path, log_path: &Path) -> Daemon {
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("TICKETGATE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        let mut file = std::fs::File::create(log_path).unwrap();
        // A thread, so that the arrival time of each line is exact even
        // while the runtime is busy appending.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                collected.lock().unwrap().push((Instant::now(), line));
            }
        });
        Daemon {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
            let log = self.lines();
            let tail = &log[log.len().saturating_sub(20)..];
            panic!("the daemon exited with {status}:\n{}", tail.join("\n"));
        }
    }

    fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().map(|(_, l)| l.clone()).collect()
    }

    /// When the first line containing `needle` came after `after`.
    fn first_line_after(&self, after: Instant, needle: &str) -> Option<Instant> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .find(|(at, l)| *at > after && l.contains(needle))
            .map(|(at, _)| *at)
    }

    /// The numeric field `key` (e.g. "waiting=") of the first line
    /// containing `needle` after `after`.
    fn first_value_after(&self, after: Instant, needle: &str, key: &str) -> Option<usize> {
        let lines = self.lines.lock().unwrap();
        let (_, line) = lines
            .iter()
            .find(|(at, l)| *at > after && l.contains(needle))?;
        field(line, key)
    }

    /// When each "batch committed" line came, with its `done=` count.
    fn batch_commits(&self) -> Vec<(Instant, usize)> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|(_, l)| l.contains("batch committed"))
            .filter_map(|(at, l)| Some((*at, field(l, "done=")?)))
            .collect()
    }

    /// A line of /proc/PID/status, e.g. `VmHWM` as "31 MB".
    fn memory(&self, key: &str) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix(" kB")?.parse::<u64>().ok())
            .map(|kb| format!("{:.1} MB", kb as f64 / 1024.0))
            .unwrap_or_else(|| "unknown".into())
    }

    /// User and system CPU seconds so far (/proc/PID/stat).
    fn cpu(&self) -> (f64, f64) {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the parenthesised command name: state is field 3, utime 14,
        // stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let seconds = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .map_or(0.0, |t| t / ticks)
        };
        (seconds(11), seconds(12))
    }

    /// SIGTERM, then waits for the exit (the daemon finishes its batch).
    fn stop(&mut self) -> Result<std::process::ExitStatus, String> {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // own child, not yet reaped, so it cannot name another process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err("daemon: still running 15 s after SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    /// Never leave a daemon behind, even when the bench panics.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The daemon's database, read-only (WAL: never blocks its writer).
struct Database {
    pool: SqlitePool,
}

impl Database {
    /// Waits for the daemon to have the file open, then connects.
    async fn open(path: &Path, daemon: &mut Daemon) -> Database {
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        loop {
            daemon.assert_running();
            let ready: Result<i64, _> = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
                .fetch_one(&pool)
                .await;
            if ready.is_ok() {
                return Database { pool };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Messages with a committed outcome.
    async fn processed(&self) -> usize {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        count as usize
    }

    /// Notifications not yet delivered.
    async fn queued(&self) -> usize {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'queued'")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        count as usize
    }

    async fn outcome_count(&self, outcome: &str) -> usize {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE outcome = $1")
            .bind(outcome)
            .fetch_one(&self.pool)
            .await
            .unwrap();
        count as usize
    }

    async fn grouped(&self, sql: &str) -> BTreeMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>(sql)
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    async fn outcomes(&self) -> BTreeMap<String, i64> {
        self.grouped("SELECT outcome, COUNT(*) FROM messages GROUP BY outcome")
            .await
    }

    async fn outbox(&self) -> BTreeMap<String, i64> {
        self.grouped("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .await
    }

    async fn suspended(&self) -> BTreeMap<String, i64> {
        self.grouped("SELECT reason, COUNT(*) FROM suspended GROUP BY reason")
            .await
    }
}

/// `key` (e.g. "done=") followed by a number, in a log line.
fn field(line: &str, key: &str) -> Option<usize> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))?
        .parse()
        .ok()
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

fn millis(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn users_csv() -> String {
    let mut csv = String::from("organization,email,name,role,locale\n");
    let first = [
        "Anna", "Jonas", "Sabine", "Mehmet", "Claire", "Tom", "Priya", "Lukas",
    ];
    let last = [
        "Schmidt", "Becker", "Yılmaz", "Wagner", "Dubois", "Baker", "Shah", "Krüger",
    ];
    for org in 0..ORGANIZATIONS {
        for user in 0..KEY_USERS_PER_ORG {
            csv.push_str(&format!(
                "{},{},{} {},key_user,{}\n",
                organization(org),
                address(org, user),
                first[(org + user) % first.len()],
                last[(org * 3 + user) % last.len()],
                if german(org) { "de" } else { "en" }
            ));
        }
        csv.push_str(&format!(
            "{},info@kunde{org}.example,Empfang,member,{}\n",
            organization(org),
            if german(org) { "de" } else { "en" }
        ));
    }
    csv.push_str("Example Software AG,lena.fischer@example.com,Lena Fischer,agent,de\n");
    csv.push_str("Example Software AG,mark.evans@example.com,Mark Evans,agent,en\n");
    csv
}

fn organization(org: usize) -> String {
    if german(org) {
        format!("Kunde {org} GmbH")
    } else {
        format!("Customer {org} Ltd")
    }
}

fn german(org: usize) -> bool {
    org.is_multiple_of(2)
}

fn address(org: usize, user: usize) -> String {
    format!("user{user}@kunde{org}.example")
}

fn is_reply(i: usize) -> bool {
    i % 3 == 2 && i >= REPLY_DISTANCE
}

fn message_id(run: &str, i: &str, org: usize) -> String {
    format!("<{run}.{i}@kunde{org}.example>")
}

const TOPICS_DE: [(&str, &str); 5] = [
    (
        "Wareneingang",
        "beim Buchen des Wareneingangs erscheint seit dem Update die Meldung\r\n\"Lagerort nicht gefunden\". Betroffen sind alle Artikel der Gruppe 4711.",
    ),
    (
        "Rechnung doppelt",
        "die Rechnung für November wurde uns zweimal zugestellt und auch zweimal\r\nabgebucht. Bitte prüfen Sie das und erstatten Sie den doppelten Betrag.",
    ),
    (
        "Passwort zurücksetzen",
        "unsere Kollegin kann ihr Passwort nicht zurücksetzen. Der Link in der\r\nE-Mail führt auf eine Fehlerseite (\"Token ungültig\").",
    ),
    (
        "DATEV-Export bricht ab",
        "der DATEV-Export für den Monat Oktober bricht bei 87 % ab. Im Protokoll\r\nsteht nur \"Zeitüberschreitung\". Bis Freitag müssen die Daten beim Steuerbüro sein.",
    ),
    (
        "Lieferscheine drucken",
        "seit heute Morgen werden keine Lieferscheine mehr gedruckt. Der Drucker\r\nselbst funktioniert, Testseiten kommen an.",
    ),
];

const TOPICS_EN: [(&str, &str); 5] = [
    (
        "Goods receipt fails",
        "since the update, booking a goods receipt shows \"storage location not found\"\r\nfor every item in group 4711.",
    ),
    (
        "Invoice charged twice",
        "we received the November invoice twice and were charged twice as well.\r\nCould you please check and refund the duplicate amount?",
    ),
    (
        "Password reset link broken",
        "a colleague cannot reset her password. The link in the email leads to an\r\nerror page saying \"invalid token\".",
    ),
    (
        "Export stops at 87%",
        "the monthly export for October stops at 87%. The log only says \"timeout\".\r\nOur accountants need the data by Friday.",
    ),
    (
        "Delivery notes not printing",
        "since this morning no delivery notes are printed. The printer itself works,\r\ntest pages come out fine.",
    ),
];

fn subject(i: usize, org: usize) -> String {
    let topic = (i / ORGANIZATIONS) % 5;
    if german(org) {
        format!("{} (Vorgang {i})", TOPICS_DE[topic].0)
    } else {
        format!("{} (case {i})", TOPICS_EN[topic].0)
    }
}

fn body(i: usize, org: usize, user: usize) -> String {
    let topic = (i / ORGANIZATIONS) % 5;
    if german(org) {
        format!(
            "Guten Tag,\r\n\r\n{}\r\nKönnen Sie uns bitte helfen?\r\n\r\nMit freundlichen Grüßen\r\nBenutzer {user}\r\n{}\r\nTel. +49 711 123456-{i}\r\n",
            TOPICS_DE[topic].1,
            organization(org)
        )
    } else {
        format!(
            "Hello,\r\n\r\n{}\r\nCould you please have a look?\r\n\r\nKind regards,\r\nUser {user}\r\n{}\r\n",
            TOPICS_EN[topic].1,
            organization(org)
        )
    }
}

/// The customer's mail: two thirds new tickets in the styles of several
/// clients (some with an attachment), one third replies with quoted
/// history that thread by In-Reply-To/References.
fn generate(n: usize, run: &str, support: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| mail(i, run, support)).collect()
}

fn mail(i: usize, run: &str, support: &str) -> Vec<u8> {
    let org = i % ORGANIZATIONS;
    let user = (i / ORGANIZATIONS) % KEY_USERS_PER_ORG;
    let from = address(org, user);
    let id = message_id(run, &i.to_string(), org);
    let date = "Fri, 27 Nov 2026 09:00:00 +0100";
    if is_reply(i) {
        let target = i - REPLY_DISTANCE;
        let target_user = (target / ORGANIZATIONS) % KEY_USERS_PER_ORG;
        let original = body(target, org, target_user);
        let quoted: String = original.lines().map(|l| format!("> {l}\r\n")).collect();
        let (prefix, text, header) = if german(org) {
            (
                "AW",
                "Danke, das hat geholfen. Eine Frage noch: gilt das auch für Gruppe 4712?\r\n\r\nGrüße\r\n",
                format!("Am 27.11.2026 um 09:12 schrieb Support <{support}>:"),
            )
        } else {
            (
                "RE",
                "Thanks, that fixed it. One more question: does this apply to group 4712 too?\r\n\r\nBest\r\n",
                format!("On Fri, 27 Nov 2026 at 09:12, Support <{support}> wrote:"),
            )
        };
        let target_id = message_id(run, &target.to_string(), org);
        return format!(
            "From: {from}\r\nTo: {support}\r\nSubject: {prefix}: {}\r\nMessage-ID: {id}\r\nIn-Reply-To: {target_id}\r\nReferences: {target_id}\r\nDate: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n{header}\r\n> ##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##\r\n>\r\n{quoted}",
            subject(target, org)
        )
        .into_bytes();
    }
    let headers = format!(
        "From: Benutzer {user} <{from}>\r\nTo: Support <{support}>\r\nSubject: {}\r\nMessage-ID: {id}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n",
        subject(i, org)
    );
    let text = body(i, org, user);
    let raw = match i % 10 {
        // Outlook: quoted-printable text.
        0..=3 => format!(
            "{headers}X-Mailer: Microsoft Outlook 16.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}",
            quoted_printable(&text)
        ),
        // Gmail: text and HTML alternatives.
        4..=6 => {
            let html: String = text
                .split("\r\n\r\n")
                .map(|p| format!("<div dir=\"ltr\">{}</div>", p.replace("\r\n", "<br>")))
                .collect();
            format!(
                "{headers}Content-Type: multipart/alternative; boundary=\"000000000000b{i}\"\r\n\r\n--000000000000b{i}\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n--000000000000b{i}\r\nContent-Type: text/html; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n--000000000000b{i}--\r\n",
                quoted_printable(&text),
                quoted_printable(&html)
            )
        }
        // Thunderbird / Apple Mail: 8-bit flowed text.
        7 => format!(
            "{headers}User-Agent: Mozilla Thunderbird\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}"
        ),
        // With a screenshot or a PDF: a fifth of the new requests, as real
        // support mailboxes have them.
        k => {
            let (name, content_type, size) = if k == 8 {
                ("Pruefbericht.pdf", "application/pdf", 60_000)
            } else {
                ("screenshot.png", "image/png", 30_000)
            };
            format!(
                "{headers}Content-Type: multipart/mixed; boundary=\"mixed{i}\"\r\n\r\n--mixed{i}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n--mixed{i}\r\nContent-Type: {content_type}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--mixed{i}--\r\n",
                base64_lines(&pseudo_random(i as u64, size))
            )
        }
    };
    raw.into_bytes()
}

/// A new-ticket mail for the latency parts.
fn single_message(run: &str, tag: &str, support: &str, k: usize) -> Vec<u8> {
    let org = k % ORGANIZATIONS;
    let user = k % KEY_USERS_PER_ORG;
    format!(
        "From: {}\r\nTo: {support}\r\nSubject: {} ({tag})\r\nMessage-ID: {}\r\nDate: Fri, 27 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
        address(org, user),
        subject(k, org),
        message_id(run, tag, org),
        body(k, org, user)
    )
    .into_bytes()
}

/// Quoted-printable as mail clients write it: non-ASCII bytes and `=`
/// encoded, CRLF kept, lines soft-broken before 76 characters.
fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    for line in text.split("\r\n") {
        let mut width = 0;
        for &b in line.as_bytes() {
            let piece = if b == b'=' || !(b == b' ' || b.is_ascii_graphic()) {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            };
            if width + piece.len() > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            width += piece.len();
            out.push_str(&piece);
        }
        out.push_str("\r\n");
    }
    out.truncate(out.len() - 2);
    out
}

fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn base64_lines(bytes: &[u8]) -> String {
    data_encoding::BASE64
        .encode(bytes)
        .as_bytes()
        .chunks(76)
        .map(|l| format!("{}\r\n", String::from_utf8_lossy(l)))
        .collect()
}
