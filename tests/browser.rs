//! The help center in a real browser: headless Chromium driven over
//! WebDriver (chromedriver), against `ticketgate serve` and the mails the
//! file transport writes, as a customer meets them.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). With `TICKETGATE_SCREENSHOTS=DIR` the journey saves screenshots
//! of the main pages, desktop and phone width, into DIR.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use common::{config_text, ANNA, JOHN, LENA, PETER};
use ticketgate::reply::DELIMITER;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "Sonnige-Terrasse-am-See-7";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills its process when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A help center served by the real binary (`ticketgate serve`), with its
/// directory imported (and so the invitations queued), and mail written
/// to `.eml` files.
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    base: String,
    _server: Process,
}

impl Site {
    fn start() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let config = dir.path().join("ticketgate.toml");
        let text = config_text("[outbound]\ntransport = \"file\"\ndir = \"outbox\"\n").replace(
            "base_url = \"https://help.example.com\"",
            &format!("base_url = \"{base}\"\nlisten = \"127.0.0.1:{port}\""),
        );
        std::fs::write(&config, text).unwrap();
        let users = format!("{}/users.csv", common::FIXTURES);
        let import = ticketgate(&config, &["users", "import", &users]);
        assert!(import.status.success(), "{import:?}");
        let server = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Process(server);
        wait_for_port(port, "ticketgate serve");
        Site {
            dir,
            config,
            base,
            _server: server,
        }
    }

    /// Runs a command that must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = ticketgate(&self.config, args);
        assert!(
            output.status.success(),
            "ticketgate {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn ticket(&self, id: i64) -> Value {
        serde_json::from_str(&self.ok(&["ticket", "show", &id.to_string(), "--json"])).unwrap()
    }

    /// Delivers the outbox and returns the mails to `to` of `event`, newest last.
    fn mails(&self, event: &str, to: &str) -> Vec<Delivered> {
        self.ok(&["outbox", "flush"]);
        let dir = self.dir.path().join("outbox");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|path| Delivered::read(&std::fs::read(path).unwrap()))
            .filter(|mail| {
                mail.header("X-Ticketgate-Event").as_deref() == Some(event) && mail.to == to
            })
            .collect()
    }

    /// The first link of this help center in a mail's text body that
    /// starts with `prefix` (e.g. "/activate/").
    fn link_in(&self, mail: &Delivered, prefix: &str) -> String {
        let text = &mail.text;
        let start = format!("{}{prefix}", self.base);
        let at = text
            .find(&start)
            .unwrap_or_else(|| panic!("no {start} link in:\n{text}"));
        text[at..]
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap()
            .to_string()
    }
}

/// A mail as the customer's client shows it.
struct Delivered {
    raw: Vec<u8>,
    to: String,
    subject: String,
    text: String,
}

impl Delivered {
    fn read(raw: &[u8]) -> Delivered {
        let message = mail_parser::MessageParser::default().parse(raw).unwrap();
        Delivered {
            to: message
                .to()
                .and_then(|to| to.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string(),
            subject: message.subject().unwrap_or_default().to_string(),
            text: message.body_text(0).unwrap_or_default().to_string(),
            raw: raw.to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        let message = mail_parser::MessageParser::default()
            .parse(&self.raw)
            .unwrap();
        message
            .header(name)
            .and_then(|h| h.as_text())
            .map(str::to_string)
    }
}

fn ticketgate(config: &PathBuf, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// Installs Debian's chromium and chromium-driver once, if missing (as the
/// mail servers' set-up installs Postfix and Dovecot).
fn install_chromium() {
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/chromium.sh");
    let status = Command::new("bash").arg(script).status().unwrap();
    assert!(
        status.success()
            && std::path::Path::new(CHROMEDRIVER).exists()
            && std::path::Path::new(CHROMIUM).exists(),
        "the browser tests need Debian's chromium and chromium-driver, and {script} \
         could not install them (root needed)"
    );
    *installed = true;
}

/// Headless Chromium under its own chromedriver.
struct Browser {
    client: Client,
    _driver: Process,
    _profile: tempfile::TempDir,
    screenshots: Option<PathBuf>,
}

impl Browser {
    async fn start() -> Browser {
        install_chromium();
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Process(driver);
        wait_for_port(port, "chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--window-size=1280,900", "--lang=de-DE",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                // A German browser: pages before sign-in follow it.
                "prefs": {"intl.accept_languages": "de-DE,de"},
            }),
        );
        // Two TLS back-ends are linked (ring for ticketgate, aws-lc for the
        // WebDriver client's defaults); the session itself is plain HTTP.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver starts a session");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
            screenshots: std::env::var_os("TICKETGATE_SCREENSHOTS").map(PathBuf::from),
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks the link or button whose text is `text`, and waits for the
    /// page it leads to.
    async fn click_text(&self, text: &str) {
        let xpath =
            format!("//a[normalize-space()='{text}'] | //button[normalize-space()='{text}']");
        let target = self
            .client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no link or button {text:?}: {e}"));
        self.navigate_by(target).await;
    }

    /// Clicks `target` and waits until the page it was on is gone and the
    /// next one is loaded.
    async fn navigate_by(&self, target: fantoccini::elements::Element) {
        let old_page = self.client.find(Locator::Css("html")).await.unwrap();
        target.click().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while old_page.attr("lang").await.is_ok() {
            assert!(Instant::now() < deadline, "the click led nowhere");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        loop {
            let state = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .unwrap();
            if state == "complete" {
                break;
            }
            assert!(Instant::now() < deadline, "the page did not load");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Saves the page at desktop and phone width, when asked to.
    async fn screenshot(&self, name: &str) {
        let Some(dir) = &self.screenshots else {
            return;
        };
        std::fs::create_dir_all(dir).unwrap();
        for (suffix, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            self.client.set_window_size(width, height).await.unwrap();
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
        }
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    async fn activate(&self, site: &Site, email: &str) {
        let invitation = site
            .mails("invitation", email)
            .pop()
            .expect("an invitation");
        let link = site.link_in(&invitation, "/activate/");
        self.goto(&link).await;
        self.fill("#password", PASSWORD).await;
        self.fill("#password_confirm", PASSWORD).await;
        self.click_text("Passwort speichern").await;
        assert_eq!(self.path().await, "/requests");
    }
}

#[tokio::test]
async fn a_customer_goes_from_the_invitation_to_a_follow_up() {
    let site = Site::start();
    let browser = Browser::start().await;

    // The invitation: an account mail, no ticket, no delimiter.
    let invitation = site
        .mails("invitation", ANNA)
        .pop()
        .expect("Anna is invited");
    assert_eq!(invitation.header("X-Ticketgate-Ticket"), None);
    assert!(!invitation.text.contains(DELIMITER));
    browser.activate(&site, ANNA).await;
    assert_eq!(browser.text("h1").await, "Meine Aktivitäten");

    // A request with category, emergency and an attachment.
    browser.click_text("Anfrage einreichen").await;
    assert_eq!(browser.path().await, "/requests/new");
    browser.fill("#subject", "Export nach SAP bricht ab").await;
    browser
        .fill(
            "#description",
            "Seit dem Update bricht der Export mit Fehler 500 ab.",
        )
        .await;
    browser
        .client
        .find(Locator::Css("#category"))
        .await
        .unwrap()
        .select_by_value("developer_support")
        .await
        .unwrap();
    browser.click("#emergency").await;
    let log = site.dir.path().join("export.log");
    std::fs::write(&log, "ERROR 500 at /api/export\n").unwrap();
    browser
        .client
        .find(Locator::Css("#attachments"))
        .await
        .unwrap()
        .send_keys(log.to_str().unwrap())
        .await
        .unwrap();
    browser.screenshot("request-form").await;
    browser.click_text("Absenden").await;
    let path = browser.path().await;
    let id: i64 = path
        .strip_prefix("/tickets/")
        .unwrap_or_else(|| panic!("to the new ticket, not {path}"))
        .parse()
        .unwrap();
    assert_eq!(browser.text(".ticket-meta .status").await, "Offen");
    assert!(browser.source().await.contains("export.log"));
    let ticket = site.ticket(id);
    assert_eq!(ticket["category"], "developer_support");
    assert_eq!(ticket["priority"], "urgent");
    assert_eq!(
        ticket["comments"][0]["attachments"][0]["filename"],
        "export.log"
    );

    // The acknowledgement is the usual mail: the customer can go on by mail.
    let ack = site
        .mails("ticket_created", ANNA)
        .pop()
        .expect("acknowledged");
    assert_eq!(
        ack.text.lines().find(|l| !l.trim().is_empty()),
        Some(DELIMITER)
    );
    assert!(ack.subject.starts_with(&format!("[#{id}]")));
    let reply_to = mail_parser::MessageParser::default()
        .parse(&ack.raw)
        .unwrap();
    let reply_to = reply_to
        .reply_to()
        .and_then(|r| r.first())
        .and_then(|a| a.address());
    assert!(reply_to.unwrap().starts_with("support+"), "{reply_to:?}");
    assert_eq!(site.mails("urgent_ticket", "oncall@example.com").len(), 1);

    // The agent answers; the customer follows the link in the mail.
    site.ok(&[
        "ticket",
        "reply",
        &id.to_string(),
        "--agent",
        LENA,
        "--body",
        "Bitte schicken Sie uns die Exportdatei.",
    ]);
    let answer = site.mails("agent_reply", ANNA).pop().expect("the answer");
    let link = site.link_in(&answer, "/tickets/");
    assert_eq!(link, format!("{}/tickets/{id}", site.base));
    browser.goto(&link).await;
    assert_eq!(
        browser.text(".ticket-meta .status").await,
        "Wartet auf Ihre Antwort"
    );
    assert!(browser
        .source()
        .await
        .contains("Bitte schicken Sie uns die Exportdatei."));
    browser.screenshot("ticket").await;

    // She comments, then marks it solved.
    browser
        .fill("#body", "Die Datei ist im Anhang des ersten Beitrags.")
        .await;
    browser.click_text("Kommentar senden").await;
    assert_eq!(browser.count("[data-comment-id]").await, 3);
    assert_eq!(browser.text(".ticket-meta .status").await, "Offen");
    browser.click_text("Als gelöst markieren").await;
    assert_eq!(browser.text(".ticket-meta .status").await, "Gelöst");
    assert_eq!(site.ticket(id)["status"], "solved");

    // The rating link opens the page with "good" chosen; only sending counts.
    let solved = site
        .mails("ticket_solved", ANNA)
        .pop()
        .expect("solved notice");
    let good = site.link_in(&solved, "/rate/");
    assert!(good.ends_with("/good"), "{good}");
    browser.goto(&good).await;
    let good_radio = browser
        .client
        .find(Locator::Css("#rating-good"))
        .await
        .unwrap();
    assert!(good_radio.is_selected().await.unwrap());
    assert_eq!(
        site.ticket(id)["rating"],
        Value::Null,
        "opening records nothing"
    );
    browser.screenshot("rating").await;
    browser.fill("#comment", "Schnell und freundlich.").await;
    browser.click_text("Bewertung senden").await;
    assert_eq!(browser.text("h1").await, "Vielen Dank!");
    let rated = site.ticket(id);
    assert_eq!(rated["rating"], "good");
    assert_eq!(rated["rating_comment"], "Schnell und freundlich.");

    // Fifteen days later the ticket is closed: no form, a follow-up link.
    let now = ticketgate::clock::Clock::System.now();
    let later = chrono::DateTime::from_timestamp(now + 15 * 86_400, 0)
        .unwrap()
        .to_rfc3339();
    site.ok(&["--now", &later, "tick"]);
    browser.goto(&format!("{}/tickets/{id}", site.base)).await;
    assert_eq!(browser.text(".ticket-meta .status").await, "Geschlossen");
    assert_eq!(browser.count("#body").await, 0, "no comment form");
    browser.click_text("Folgeanfrage erstellen").await;
    assert_eq!(
        browser.path().await,
        format!("/requests/new?followup_of={id}")
    );
    let subject = browser
        .client
        .find(Locator::Css("#subject"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(subject.as_deref(), Some("Export nach SAP bricht ab"));
    browser
        .fill("#description", "Der Fehler ist wieder da.")
        .await;
    browser.click_text("Absenden").await;
    let followup: i64 = browser
        .path()
        .await
        .strip_prefix("/tickets/")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(followup, id);
    assert_eq!(site.ticket(followup)["followup_of"], id);
    assert!(browser
        .source()
        .await
        .contains(&format!("href=\"/tickets/{id}\"")));
    let ack = site
        .mails("followup_created", ANNA)
        .pop()
        .expect("follow-up ack");
    assert!(ack.subject.contains("Export nach SAP bricht ab"));

    // "Meine Aktivitäten" lists both, with their status codes.
    browser.goto(&format!("{}/requests", site.base)).await;
    let source = browser.source().await;
    assert!(source.contains(&format!("data-ticket-id=\"{id}\" data-status=\"closed\"")));
    assert!(source.contains(&format!(
        "data-ticket-id=\"{followup}\" data-status=\"open\""
    )));
    browser.screenshot("my-activities").await;

    // Signing out ends it.
    browser.click_text("Abmelden").await;
    browser.goto(&format!("{}/tickets/{id}", site.base)).await;
    assert_eq!(
        browser.path().await,
        format!("/login?next=%2Ftickets%2F{id}")
    );
    browser.client.close().await.unwrap();
}

#[tokio::test]
async fn a_member_reads_and_a_stranger_sees_nothing() {
    let site = Site::start();
    let browser = Browser::start().await;
    let ticket = site.dir.path().join("mail.eml");
    std::fs::write(
        &ticket,
        common::Mail::new(ANNA, "Lizenz verlängern", "Bitte um ein Angebot.").render(),
    )
    .unwrap();
    site.ok(&["ingest", ticket.to_str().unwrap()]);

    browser.activate(&site, PETER).await;
    browser.click_text("Anfragen meiner Organisation").await;
    browser.click_text("Lizenz verlängern").await;
    assert_eq!(browser.path().await, "/tickets/1");
    assert_eq!(
        browser.count("#body").await,
        0,
        "members get no comment form"
    );
    assert_eq!(browser.count("form.solve").await, 0);
    assert!(browser.source().await.contains("Key-User"));
    assert_eq!(browser.count("a[href='/requests/new']").await, 0);
    browser.click_text("Abmelden").await;

    browser.activate(&site, JOHN).await;
    assert_eq!(
        browser.text("h1").await,
        "My activities",
        "John reads English"
    );
    browser.goto(&format!("{}/tickets/1", site.base)).await;
    assert_eq!(browser.text("h1").await, "Not found");
    assert_eq!(site.ticket(1)["comments"].as_array().unwrap().len(), 1);
    browser.client.close().await.unwrap();
}

#[tokio::test]
async fn the_demo_prints_a_login_that_opens_the_sample_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let demo = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut demo = Process(demo);
    wait_for_port(port, "ticketgate demo");
    let mut printed = String::new();
    {
        use std::io::{BufRead, BufReader};
        let mut lines = BufReader::new(demo.0.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            printed.push_str(&line);
            printed.push('\n');
            if line.trim_start().starts_with("password:") {
                break;
            }
        }
    }
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{printed}"))
            .trim()
            .to_string()
    };
    assert!(
        printed.contains(&format!("http://127.0.0.1:{port}/login")),
        "{printed}"
    );
    let (email, password) = (field("email:"), field("password:"));
    assert_eq!(email, ANNA);

    let browser = Browser::start().await;
    browser
        .goto(&format!("http://127.0.0.1:{port}/login"))
        .await;
    browser.fill("#email", &email).await;
    browser.fill("#password", &password).await;
    browser.click_text("Anmelden").await;
    assert_eq!(browser.path().await, "/requests");
    // Anna's sample mails made tickets; her organization has more.
    let mine = browser.count("[data-ticket-id]").await;
    assert!(mine >= 2, "{}", browser.source().await);
    browser.click_text("Anfragen meiner Organisation").await;
    assert!(browser.count("[data-ticket-id]").await > mine);
    browser.client.close().await.unwrap();
}
