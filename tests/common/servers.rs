//! The real mail servers of the end-to-end tests: a private Postfix and
//! Dovecot on loopback ports, started once per test binary by
//! `tests/servers/mailservers.sh` (idempotent; later binaries reuse them).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct MailServers {
    pub state: PathBuf,
    pub env: HashMap<String, String>,
}

/// Where the servers keep their state; shared by all test binaries.
fn state_dir() -> PathBuf {
    std::env::var_os("TG_MAIL_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ticketgate-mailservers"))
}

pub fn mail_servers() -> &'static MailServers {
    static SERVERS: OnceLock<MailServers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let state = state_dir();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/mailservers.sh");
        let out = std::process::Command::new("bash")
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
        stop_when_cargo_ends(&script, &state);
        let env = std::fs::read_to_string(state.join("env"))
            .expect("the start script writes STATE/env")
            .lines()
            .filter_map(|l| l.trim_start_matches("export ").split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        MailServers { state, env }
    })
}

/// The servers outlive this test binary (the next ones reuse them) but not
/// the `cargo test` that runs them all: a detached watcher stops them once
/// the parent process (cargo) is gone.
fn stop_when_cargo_ends(script: &Path, state: &Path) {
    use std::os::unix::process::CommandExt;
    let cargo = std::os::unix::process::parent_id();
    let watch = format!(
        "while kill -0 {cargo} 2>/dev/null; do sleep 1; done; bash '{}' stop '{}'",
        script.display(),
        state.display()
    );
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(watch)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
}

impl MailServers {
    pub fn port(&self, name: &str) -> u16 {
        self.env[name].parse().unwrap()
    }

    pub fn ca_cert(&self) -> String {
        self.env["TG_CA_CERT"].clone()
    }

    /// The `[outbound]`/`[smtp]` config for delivering through Postfix:
    /// STARTTLS verified against the test CA, then AUTH on the submission
    /// port (the rejecting port offers no AUTH).
    pub fn smtp_config(&self, port_name: &str) -> String {
        let mut config = format!(
            "[outbound]\ntransport = \"smtp\"\n[smtp]\nhost = \"localhost\"\nport = {}\nstarttls = true\nca_file = \"{}\"\ntimeout_secs = 10\n",
            self.port(port_name),
            self.ca_cert(),
        );
        if port_name == "TG_SMTP_PORT" {
            config.push_str(&format!(
                "username = \"support@example.com\"\npassword = \"{}\"\n",
                self.env["TG_MAIL_PASSWORD"]
            ));
        }
        config
    }

    pub fn maildir(&self, address: &str) -> PathBuf {
        let (user, domain) = address.split_once('@').unwrap();
        self.state
            .join("mail")
            .join(domain)
            .join(user)
            .join("Maildir")
    }

    /// Every message in `address`'s INBOX whose raw text contains `needle`.
    pub fn messages_containing(&self, address: &str, needle: &str) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir(address).join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Ok(raw) = std::fs::read(entry.path()) {
                    if String::from_utf8_lossy(&raw).contains(needle) {
                        found.push(raw);
                    }
                }
            }
        }
        found
    }

    /// Waits until `count` messages containing `needle` reached `address`.
    pub fn wait_for(&self, address: &str, needle: &str, count: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.messages_containing(address, needle);
            if found.len() >= count || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `postfix -c … stop|start` on the private instance.
    pub fn postfix(&self, action: &str) {
        let status = std::process::Command::new("postfix")
            .arg("-c")
            .arg(self.state.join("postfix/etc"))
            .arg(action)
            .output()
            .expect("postfix runs");
        assert!(
            status.status.success(),
            "postfix {action}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
}

impl MailServers {
    /// The IMAP config for the daemon reading `support`'s mailbox.
    pub fn imap_config(&self, support: &str) -> String {
        format!(
            "[imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = false\nusername = \"{support}\"\npassword = \"{}\"\nprocessed_mailbox = \"Processed\"\n",
            self.port("TG_IMAP_PORT"),
            self.env["TG_MAIL_PASSWORD"]
        )
    }

    /// Sends a message through Postfix, as a customer's mail server would.
    pub fn send(&self, from: &str, to: &str, raw: &[u8]) {
        use lettre::address::Envelope;
        use lettre::{SmtpTransport, Transport};
        let transport = SmtpTransport::builder_dangerous("127.0.0.1")
            .port(self.port("TG_SMTP_PORT"))
            .build();
        let envelope =
            Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
        transport
            .send_raw(&envelope, raw)
            .expect("Postfix accepts the mail");
    }

    /// Puts messages straight into `user`'s INBOX (a backlog).
    pub fn append(&self, user: &str, raws: &[Vec<u8>]) {
        let port = self.port("TG_IMAP_PORT");
        let password = self.env["TG_MAIL_PASSWORD"].clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.unwrap();
            let mut session = client
                .login(user, &password)
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            for raw in raws {
                session.append("INBOX", None, None, raw).await.unwrap();
            }
            session.logout().await.unwrap();
        });
    }

    /// Stops and starts both servers (state and mail are kept).
    pub fn restart(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/mailservers.sh");
        for action in ["stop", "start"] {
            let out = std::process::Command::new("bash")
                .arg(&script)
                .arg(action)
                .arg(&self.state)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{action}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
