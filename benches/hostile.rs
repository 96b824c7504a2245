//! The worst single messages: each hostile case is ingested (and its
//! notifications flushed) by the real binary in a fresh directory, and the
//! wall time and peak memory (max RSS) of each command are reported.
//!
//! `cargo build --release && cargo bench --bench hostile`; `TG_BIN=path`
//! measures another build of ticketgate (e.g. an older one, for before and
//! after). Commands running longer than `TG_BENCH_LIMIT_SECS` (default 120)
//! are killed and reported as such.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ANNA: &str = "anna.schmidt@mueller-maschinenbau.de";

struct Case {
    name: &'static str,
    /// Writes the message files into the directory; they are ingested with
    /// one command. Cases are written one at a time, and big ones streamed,
    /// so that this process stays small: a child's peak memory (`wait4`)
    /// starts from its parent's at fork.
    write: WriteCase,
}

type WriteCase = Box<dyn Fn(&Path) -> Vec<PathBuf>>;

fn headers(subject: &str, extra: &str, content_type: &str) -> String {
    format!(
        "From: Anna Schmidt <{ANNA}>\r\nTo: support@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{}.{}@mueller-maschinenbau.de>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\n{extra}Content-Type: {content_type}\r\n",
        subject.replace(' ', "-"),
        std::process::id()
    )
}

fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn plain(subject: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{}Content-Transfer-Encoding: 8bit\r\n\r\n{body}",
        headers(subject, extra, "text/plain; charset=utf-8")
    )
    .into_bytes()
}

fn html(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "{}\r\n{body}",
        headers(subject, "", "text/html; charset=utf-8")
    )
    .into_bytes()
}

/// A customer's mail with a pasted log of about `bytes` (LF line ends, as
/// pasted), written in pieces.
fn pasted_log(dir: &Path, name: &str, subject: &str, bytes: usize) -> PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(&plain(subject, "", "Hier das Protokoll von heute:\n\n"))
        .unwrap();
    let mut written = 0;
    let mut i = 0u64;
    while written < bytes {
        let line = format!("2026-11-27 10:00:{i:08} WARN Lager 4 Buchung verzoegert\n");
        out.write_all(line.as_bytes()).unwrap();
        written += line.len();
        i += 1;
    }
    out.flush().unwrap();
    path
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "1 MB pasted log",
            write: Box::new(|d| vec![pasted_log(d, "m.eml", "Eins MB", 1_000_000)]),
        },
        Case {
            name: "4 MB pasted log",
            write: Box::new(|d| vec![pasted_log(d, "m.eml", "Vier MB", 4_000_000)]),
        },
        Case {
            name: "20 MB pasted log",
            write: Box::new(|d| vec![pasted_log(d, "m.eml", "Zwanzig MB", 20_000_000)]),
        },
        Case {
            name: "References with 50,000 IDs",
            write: Box::new(|d| {
                let references: Vec<String> =
                    (0..50_000).map(|i| format!("<r{i}@x.example>")).collect();
                let extra = format!("References: {}\r\n", references.join("\r\n "));
                vec![file(d, "m.eml", &plain("Referenzen", &extra, "Hallo"))]
            }),
        },
        Case {
            name: "HTML <div></span> x 20,000",
            write: Box::new(|d| {
                vec![file(
                    d,
                    "m.eml",
                    &html("Tags", &"<div></span>".repeat(20_000)),
                )]
            }),
        },
        Case {
            name: "HTML <div></span> x 100,000",
            write: Box::new(|d| {
                vec![file(
                    d,
                    "m.eml",
                    &html("Tags gross", &"<div></span>".repeat(100_000)),
                )]
            }),
        },
        Case {
            name: "HTML table, 176 KB, one wide cell",
            write: Box::new(|d| {
                // One long paragraph makes its column as wide as the wrap
                // width; a table layout pads every row to it.
                let mut table = format!(
                    "<table><tr><td>{}</td><td>x</td></tr>",
                    vec!["Wort"; 2_500].join(" ")
                );
                while table.len() < 176_000 {
                    table.push_str("<tr><td>a</td><td>b</td></tr>");
                }
                table.push_str("</table>");
                vec![file(d, "m.eml", &html("Tabelle", &table))]
            }),
        },
        Case {
            name: "10,000 attachments",
            write: Box::new(|d| {
                let mut parts = String::new();
                for i in 0..10_000 {
                    parts.push_str(&format!(
                        "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f{i}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC{i:08}\r\n"
                    ));
                }
                let raw = format!(
                    "{}\r\n--b\r\nContent-Type: text/plain\r\n\r\nAnbei die Dateien.\r\n{parts}--b--\r\n",
                    headers("Viele Anhaenge", "", "multipart/mixed; boundary=\"b\"")
                );
                vec![file(d, "m.eml", raw.as_bytes())]
            }),
        },
        Case {
            name: "ten 20 MB mails in one ingest",
            write: Box::new(|d| {
                (0..10)
                    .map(|i| pasted_log(d, &format!("m{i}.eml"), &format!("Gross {i}"), 20_000_000))
                    .collect()
            }),
        },
        Case {
            name: "one 200 MB mail",
            write: Box::new(|d| vec![pasted_log(d, "m.eml", "Riesig", 200_000_000)]),
        },
    ]
}

/// Runs `bin` with `args` in `dir`; returns (seconds, peak MiB, success),
/// or `None` for the time when it was killed at the limit.
// The child is reaped by wait4, which also reports its peak memory.
#[allow(clippy::zombie_processes)]
fn measure(bin: &Path, dir: &Path, args: &[&str], limit: Duration) -> (Option<f64>, f64, bool) {
    let config = dir.join("ticketgate.toml");
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("--now")
        .arg("2026-11-27T10:00:00Z")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let pid = child.id() as i32;
    let started = Instant::now();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child, with valid out-pointers.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            return (None, usage.ru_maxrss as f64 / 1024.0, false);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let seconds = started.elapsed().as_secs_f64();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (Some(seconds), usage.ru_maxrss as f64 / 1024.0, ok)
}

fn fresh(bin: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ticketgate.toml"),
        "[mail]\nsupport_address = \"support@example.com\"\nagents_address = \"team@example.com\"\n\
         [security]\ntoken_secret = \"bench\"\n",
    )
    .unwrap();
    let users = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/users.csv");
    let (_, _, ok) = measure(
        bin,
        dir.path(),
        &["users", "import", users.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(ok, "users import");
    dir
}

fn shown(seconds: Option<f64>, limit: Duration) -> String {
    match seconds {
        Some(s) => format!("{s:.2} s"),
        None => format!("> {} s (killed)", limit.as_secs()),
    }
}

fn main() {
    let bin: PathBuf = std::env::var_os("TG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ticketgate")));
    let limit = Duration::from_secs(
        std::env::var("TG_BENCH_LIMIT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    );
    let only = std::env::var("TG_BENCH_CASE").ok();
    println!("hostile: {}", bin.display());
    println!("| case | ingest | ingest peak | flush | flush peak |");
    println!("|---|---|---|---|---|");
    for case in cases() {
        if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let dir = fresh(&bin);
        let files: Vec<String> = (case.write)(dir.path())
            .iter()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        let mut args = vec!["ingest", "--json"];
        args.extend(files.iter().map(String::as_str));
        let (ingest, ingest_peak, _) = measure(&bin, dir.path(), &args, limit);
        let (flush, flush_peak, _) = measure(&bin, dir.path(), &["outbox", "flush"], limit);
        println!(
            "| {} | {} | {ingest_peak:.0} MiB | {} | {flush_peak:.0} MiB |",
            case.name,
            shown(ingest, limit),
            shown(flush, limit)
        );
    }
}
