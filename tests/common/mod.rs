//! A ticketgate in a temporary directory, driven through its command line
//! exactly as operators and the contract tests drive it.
#![allow(dead_code)]

pub mod daemon;
pub mod database;
pub mod fake_imap;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
pub const SECRET: &str = "test-secret-of-the-test-suite";

pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub now: String,
}

impl Gateway {
    /// A fresh database with the sample directory imported.
    pub fn new() -> Gateway {
        Self::with_config_extra("")
    }

    pub fn with_config_extra(extra: &str) -> Gateway {
        Self::with_config(&config_text(extra))
    }

    /// On a SQLite file whatever the suite's database, for tests of what
    /// the file does (replaced, unwritable, missing).
    pub fn on_sqlite() -> Gateway {
        Self::with_config(&sqlite_config_text(""))
    }

    /// A gateway with this configuration text.
    pub fn with_config(text: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ticketgate.toml");
        std::fs::write(&config, text).unwrap();
        let gateway = Gateway {
            dir,
            config,
            now: "2026-11-27T10:00:00Z".into(),
        };
        let users = format!("{FIXTURES}/users.csv");
        // Tests of tickets want no invitation mails in their outbox.
        gateway.ok(&["users", "import", "--no-invite", &users]);
        gateway
    }

    pub fn at(&mut self, now: &str) -> &mut Self {
        self.now = now.to_string();
        self
    }

    /// Runs `ticketgate --config … --now … ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ticketgate"));
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--now")
            .arg(&self.now)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("ticketgate starts");
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "ticketgate {args:?} failed ({:?}):\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The JSON lines of a successful `--json` command.
    pub fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        self.ok(args)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Ingests one message given as text; returns its outcome line.
    pub fn ingest(&self, raw: &str) -> Value {
        self.ingest_bytes(raw.as_bytes())
    }

    pub fn ingest_bytes(&self, raw: &[u8]) -> Value {
        let path = self.dir.path().join(format!("in-{}.eml", rand_suffix()));
        std::fs::write(&path, raw).unwrap();
        let mut lines = self.json_lines(&["ingest", "--json", path.to_str().unwrap()]);
        assert_eq!(lines.len(), 1);
        lines.remove(0)
    }

    pub fn ingest_files(&self, files: &[PathBuf]) -> Vec<Value> {
        let mut args = vec!["ingest", "--json"];
        let names: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
        args.extend(names);
        self.json_lines(&args)
    }

    pub fn ticket(&self, id: i64) -> Value {
        let mut lines = self.json_lines(&["ticket", "show", &id.to_string(), "--json"]);
        assert_eq!(lines.len(), 1, "ticket show prints exactly one object");
        lines.remove(0)
    }

    pub fn tickets(&self) -> Vec<Value> {
        self.json_lines(&["ticket", "list", "--json"])
    }

    /// The subjects of all tickets, sorted.
    pub fn subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = self
            .tickets()
            .iter()
            .map(|t| t["subject"].as_str().unwrap_or_default().to_string())
            .collect();
        subjects.sort();
        subjects
    }

    pub fn outbox(&self) -> Vec<Value> {
        self.json_lines(&["outbox", "list", "--json"])
    }

    /// Outbox rows of one event for one ticket.
    pub fn notifications(&self, event: &str, ticket: i64) -> Vec<Value> {
        self.outbox()
            .into_iter()
            .filter(|row| row["event"] == event && row["ticket"] == ticket)
            .collect()
    }

    pub fn suspended(&self) -> Vec<Value> {
        self.json_lines(&["suspended", "list", "--json"])
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// The configuration of a test's gateway, on the suite's database (see
/// `database`).
pub fn config_text(extra: &str) -> String {
    sqlite_config_text(extra).replace(
        "url = \"sqlite://ticketgate.db\"",
        &format!("url = \"{}\"", database::fresh_url("gw")),
    )
}

/// The same on a SQLite file, for tests of SQLite itself.
pub fn sqlite_config_text(extra: &str) -> String {
    format!(
        r#"[database]
url = "sqlite://ticketgate.db"
[mail]
support_address = "support@example.com"
agents_address = "team@example.com"
oncall_address = "oncall@example.com"
[web]
base_url = "https://help.example.com"
[security]
token_secret = "{SECRET}"
trusted_authserv_ids = ["mx.example.com"]
[policy]
reopen_days = 14
{extra}"#
    )
}

pub const ANNA: &str = "anna.schmidt@mueller-maschinenbau.de";
pub const JONAS: &str = "jonas.becker@mueller-maschinenbau.de";
pub const PETER: &str = "peter.weber@mueller-maschinenbau.de";
pub const JOHN: &str = "john.carter@acme-logistics.co.uk";
pub const LENA: &str = "lena.fischer@example.com";
pub const MARK: &str = "mark.evans@example.com";

/// A plain-text mail, built line by line like a client would send it.
pub struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    pub fn new(from: &str, subject: &str, body: &str) -> Mail {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Mail {
            headers: vec![
                ("From".into(), from.into()),
                ("To".into(), "support@example.com".into()),
                ("Subject".into(), subject.into()),
                ("Date".into(), "Fri, 27 Nov 2026 10:00:00 +0100".into()),
                (
                    "Message-ID".into(),
                    format!("<test.{}.{n}@client.example>", std::process::id()),
                ),
                ("MIME-Version".into(), "1.0".into()),
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                ("Content-Transfer-Encoding".into(), "8bit".into()),
            ],
            body: body.into(),
        }
    }

    /// Sets (replaces) a header; an empty value removes it.
    pub fn header(mut self, name: &str, value: &str) -> Mail {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            self.headers.push((name.into(), value.into()));
        }
        self
    }

    pub fn to(self, to: &str) -> Mail {
        self.header("To", to)
    }

    pub fn replying_to(self, message_id: &str) -> Mail {
        self.header("In-Reply-To", message_id)
            .header("References", message_id)
    }

    pub fn message_id(&self) -> String {
        self.headers
            .iter()
            .find(|(n, _)| n == "Message-ID")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&self.body.replace('\n', "\r\n"));
        out
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join("mail").join(name)
}

pub const DELIMITER: &str = "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##";
