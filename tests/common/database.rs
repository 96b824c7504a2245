//! Which database the suite runs on: SQLite files by default; with
//! `TG_TEST_DATABASE=postgres`, every gateway gets a database of its own
//! on the PostgreSQL of this machine (127.0.0.1:5432, trust auth), dropped
//! when the test binary exits.
#![allow(dead_code)]

use std::process::Command;
use std::sync::Mutex;

pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// Databases this test process created, dropped at its exit.
static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn on_postgres() -> bool {
    std::env::var("TG_TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

/// The `[database] url` of a new gateway: its SQLite file, or a fresh
/// PostgreSQL database.
pub fn fresh_url(test: &str) -> String {
    if on_postgres() {
        fresh_postgres(test)
    } else {
        "sqlite://ticketgate.db".into()
    }
}

/// A new, empty PostgreSQL database; its URL.
pub fn fresh_postgres(test: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "ticketgate_t_{test}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    psql(&format!("CREATE DATABASE {name}"));
    let mut created = CREATED.lock().unwrap();
    if created.is_empty() {
        extern "C" fn drop_created() {
            let names = std::mem::take(&mut *CREATED.lock().unwrap_or_else(|e| e.into_inner()));
            for name in names {
                let _ = try_psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
        unsafe { libc::atexit(drop_created) };
    }
    created.push(name.clone());
    format!("{SERVER}/{name}")
}

/// Whether the PostgreSQL of this machine answers (benchmarks skip their
/// PostgreSQL parts otherwise).
pub fn postgres_answers() -> bool {
    try_psql("SELECT 1").is_ok()
}

pub fn psql(sql: &str) {
    if let Err(error) = try_psql(sql) {
        panic!("{sql}: {error}");
    }
}

fn try_psql(sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("psql (Debian's postgresql-client) does not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The rows of `sql` on the database at `url`, as psql prints them
/// unaligned (`|` between columns), one line per row.
pub fn query(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-d", url, "-Atc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
