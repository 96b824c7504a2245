//! The daemon as a child process of a test, reading a mailbox of its own.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::servers::MailServers;
use super::Gateway;

/// A support mailbox of the test's own, so tests do not read each other's mail.
pub fn support_address(test: &str) -> String {
    format!("support-{test}-{}@example.com", std::process::id())
}

pub fn gateway(servers: &MailServers, support: &str) -> Gateway {
    let extra = format!(
        "{}{}[daemon]\noutbox_interval_secs = 1\n",
        servers.imap_config(support),
        servers.smtp_config("TG_SMTP_PORT")
    );
    let gw = Gateway::with_config_extra(&extra);
    let config = std::fs::read_to_string(&gw.config)
        .unwrap()
        .replace("support@example.com", support);
    std::fs::write(&gw.config, config).unwrap();
    gw
}

/// The daemon as a child process; killed when dropped.
pub struct Daemon(Child);

impl Daemon {
    pub fn start(gw: &Gateway) -> Daemon {
        Self::start_logging_to(gw, "daemon.log")
    }

    /// Started with its log in `log` of the gateway's directory.
    pub fn start_logging_to(gw: &Gateway, log: &str) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(gw.path(log))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .args(["--config", gw.config.to_str().unwrap(), "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.0.id() as i32, signal) };
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let status = self.0.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
