//! The IMAP side of the daemon: a connection over any byte stream a
//! [`Connector`] hands out (TCP or TLS in production, an in-memory pipe in
//! tests), the login, and the mailbox operations the poller needs. Every
//! step is bounded by a timeout and abandoned at once on shutdown, and every
//! failure is an [`ImapError`] an operator can read. I/O only: what to do
//! with the messages is the poller's and the pipeline's business.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response, ResponseCode, Status};
use async_imap::types::{Flag, Mailbox};
use async_imap::{Client, Session};
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

use crate::config::ImapSettings;

/// The byte stream under the IMAP session, TLS or plain.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

pub type ImapSession = Session<Box<dyn Io>>;

/// Opens the byte stream to the server (TCP, TLS), within the connect
/// timeout. Tests hand out in-memory pipes to a scripted server instead.
pub trait Connector: Send + Sync {
    fn connect(&self) -> impl Future<Output = Result<Box<dyn Io>, ImapError>> + Send;
}

/// Keyword ticketgate sets on a message before copying it to the processed
/// folder (servers without MOVE): after a crash between COPY and EXPUNGE,
/// it tells which messages may have been copied already.
pub const COPY_MARKER: &str = "$TicketgateCopy";

/// Bytes per second a large fetch is granted beyond the command timeout.
const MIN_FETCH_RATE: u64 = 100 * 1024;
/// LOGOUT on the way out is a courtesy: a silent server does not hold us.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("TLS with {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error("the IMAP server did not answer within {secs} s ({step}); is it stalled, or is `tls` wrong for this port?")]
    Timeout { step: String, secs: u64 },
    #[error("authentication as {user} failed: {answer}")]
    Auth { user: String, answer: String },
    #[error("the XOAUTH2 token command failed: {0}")]
    TokenCommand(String),
    #[error("the server refused {command}: {answer}")]
    Refused { command: String, answer: String },
    #[error("the connection was lost during {during}: {reason}")]
    Lost { during: String, reason: String },
    #[error("processed_mailbox {folder:?} cannot be used: {answer}{hint}")]
    Folder {
        folder: String,
        answer: String,
        hint: String,
    },
    #[error("stopped")]
    Shutdown,
}

impl ImapError {
    /// Whether the session can go on after this error: the server said
    /// NO or BAD to one command and is still talking to us.
    pub fn connection_usable(&self) -> bool {
        matches!(self, ImapError::Refused { .. })
    }

    /// A refused login or a broken folder setting needs an operator;
    /// retrying quickly cannot help.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            ImapError::Auth { .. } | ImapError::Folder { .. } | ImapError::TokenCommand(_)
        )
    }

    fn from_protocol(step: &str, error: async_imap::error::Error) -> ImapError {
        use async_imap::error::Error;
        match error {
            Error::No(answer) | Error::Bad(answer) => ImapError::Refused {
                command: step.to_string(),
                answer: server_text(&answer),
            },
            Error::ConnectionLost => ImapError::Lost {
                during: step.to_string(),
                reason: "the server closed the connection".into(),
            },
            Error::Io(e) => ImapError::Lost {
                during: step.to_string(),
                reason: e.to_string(),
            },
            Error::Validate(e) => ImapError::Refused {
                command: step.to_string(),
                answer: format!("not sent: {e}"),
            },
            other => ImapError::Lost {
                during: step.to_string(),
                reason: format!("unreadable answer ({other})"),
            },
        }
    }
}

/// The server's own words out of async-imap's error text, which wraps them
/// in Rust debug output (`code: Some(TryCreate), info: Some("…")`).
pub fn server_text(raw: &str) -> String {
    static INFO: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    static CODE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let info = INFO.get_or_init(|| {
        regex::Regex::new(r#"info(?:rmation)?: Some\("((?:[^"\\]|\\.)*)"\)"#).expect("valid")
    });
    let code = CODE.get_or_init(|| regex::Regex::new(r"code: Some\(([A-Za-z]+)").expect("valid"));
    let text = info
        .captures(raw)
        .map(|c| c[1].replace("\\\"", "\"").replace("\\\\", "\\"));
    let code = code.captures(raw).map(|c| c[1].to_ascii_uppercase());
    match (code, text) {
        (Some(code), Some(text)) => format!("[{code}] {text}"),
        (None, Some(text)) => text,
        (Some(code), None) => format!("[{code}]"),
        (None, None) => raw.to_string(),
    }
}

/// Mailbox names go on the wire in modified UTF-7 (RFC 3501 5.1.3).
pub fn wire_name(folder: &str) -> String {
    utf7_imap::encode_utf7_imap(folder.to_string())
}

/// What the server offers, as far as the poller cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    pub idle: bool,
    pub mv: bool,
    pub uidplus: bool,
}

/// A selected mailbox.
#[derive(Debug, Clone, Copy)]
pub struct Selected {
    pub uid_validity: u32,
    pub exists: u32,
    /// The server keeps keywords we make up (`\*` in PERMANENTFLAGS).
    pub keywords: bool,
}

/// Size and flags of a waiting message.
#[derive(Debug, Clone)]
pub struct Meta {
    pub uid: u32,
    pub size: u64,
    pub copy_marked: bool,
}

/// The network connector: TCP, then TLS when `tls = true`, each within
/// `timeout_secs`.
pub struct NetConnector {
    settings: ImapSettings,
}

impl NetConnector {
    pub fn new(settings: &ImapSettings) -> Self {
        NetConnector {
            settings: settings.clone(),
        }
    }
}

impl Connector for NetConnector {
    async fn connect(&self) -> Result<Box<dyn Io>, ImapError> {
        let settings = &self.settings;
        let address = format!("{}:{}", settings.host, settings.port);
        let limit = Duration::from_secs(settings.timeout_secs);
        let tcp = match tokio::time::timeout(limit, TcpStream::connect(&address)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(ImapError::Connect {
                    address,
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ImapError::Timeout {
                    step: format!("connecting to {address}"),
                    secs: settings.timeout_secs,
                })
            }
        };
        tcp.set_nodelay(true).ok();
        // A peer that vanished without a word is noticed between commands.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(15));
        socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(&keepalive)
            .ok();
        if !settings.tls {
            return Ok(Box::new(tcp));
        }
        match tokio::time::timeout(limit, tls_connect(settings, tcp)).await {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(reason)) => Err(ImapError::Tls { address, reason }),
            Err(_) => Err(ImapError::Timeout {
                step: format!("TLS handshake with {address}"),
                secs: settings.timeout_secs,
            }),
        }
    }
}

async fn tls_connect(
    settings: &ImapSettings,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &settings.ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            roots.add(cert).map_err(|e| e.to_string())?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(settings.host.clone())
        .map_err(|e| format!("{}: {e}", settings.host))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())
}

/// One logged-in IMAP connection. Every method is bounded by the command
/// timeout and returns [`ImapError::Shutdown`] as soon as shutdown begins.
pub struct Imap {
    session: Option<ImapSession>,
    /// New mail announced during one of our own exchanges.
    announced: bool,
    pub capabilities: Capabilities,
    timeout: Duration,
    shutdown: CancellationToken,
}

impl Imap {
    /// Connects, reads the greeting, logs in (LOGIN or XOAUTH2) and reads
    /// the capabilities. Fails on network, TLS, timeout or authentication
    /// errors.
    pub async fn open(
        connector: &impl Connector,
        settings: &ImapSettings,
        shutdown: &CancellationToken,
    ) -> Result<Imap, ImapError> {
        let timeout = Duration::from_secs(settings.timeout_secs);
        let stream = race(shutdown, "connecting", timeout, connector.connect()).await?;
        let mut client = Client::new(stream);
        let greeting = race(shutdown, "the greeting", timeout, client.read_response()).await?;
        if greeting.is_none() {
            return Err(ImapError::Lost {
                during: "the greeting".into(),
                reason: "the server closed the connection before greeting".into(),
            });
        }
        let token = xoauth2_token(settings).await?;
        let user = settings.username.clone();
        let login = race(shutdown, "the login", timeout, async {
            Ok::<_, ImapError>(match token {
                Some(token) => {
                    let auth = XOAuth2 {
                        user: user.clone(),
                        token,
                    };
                    client.authenticate("XOAUTH2", auth).await
                }
                None => {
                    client
                        .login(&user, settings.password.as_deref().unwrap_or_default())
                        .await
                }
            })
        })
        .await?;
        let session = login.map_err(|(e, _)| match ImapError::from_protocol("LOGIN", e) {
            ImapError::Refused { answer, .. } => ImapError::Auth {
                user: settings.username.clone(),
                answer,
            },
            other => other,
        })?;
        let mut imap = Imap {
            session: Some(session),
            announced: false,
            capabilities: Capabilities::default(),
            timeout,
            shutdown: shutdown.clone(),
        };
        let caps = imap
            .run("CAPABILITY", None, |s| Box::pin(s.capabilities()))
            .await?;
        imap.capabilities = Capabilities {
            idle: caps.has_str("IDLE"),
            mv: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
        };
        Ok(imap)
    }

    /// Runs one command within the timeout (plus `extra`), or gives up on
    /// shutdown. After any error but a refusal, the session is gone.
    async fn run<T>(
        &mut self,
        step: &str,
        extra: Option<Duration>,
        command: impl for<'a> FnOnce(
            &'a mut ImapSession,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = async_imap::error::Result<T>> + Send + 'a>,
        >,
    ) -> Result<T, ImapError> {
        let Some(session) = self.session.as_mut() else {
            return Err(ImapError::Lost {
                during: step.into(),
                reason: "the connection was given up earlier".into(),
            });
        };
        let limit = self.timeout + extra.unwrap_or_default();
        let result = race(&self.shutdown, step, limit, command(session)).await;
        if let Err(e) = &result {
            if !e.connection_usable() {
                self.session = None;
            }
        }
        result
    }

    /// Selects `folder` (read-write).
    pub async fn select(&mut self, folder: &str) -> Result<Selected, ImapError> {
        let name = wire_name(folder);
        let mailbox = self
            .run(&format!("SELECT {folder}"), None, |s| {
                Box::pin(s.select(name))
            })
            .await?;
        Ok(selected(&mailbox))
    }

    /// Makes sure `folder` exists (LIST, else CREATE) and can be selected.
    /// Fails with the server's answer and, when it refused, a hint at the
    /// server's hierarchy (e.g. `INBOX.Processed` on Cyrus and Courier).
    pub async fn ensure_folder(&mut self, folder: &str) -> Result<(), ImapError> {
        let name = wire_name(folder);
        let exists = {
            let pattern = quote(&name);
            self.run(&format!("LIST {folder}"), None, |s| {
                Box::pin(async move {
                    let names: Vec<_> = s
                        .list(Some(""), Some(&pattern))
                        .await?
                        .try_collect()
                        .await?;
                    Ok(!names.is_empty())
                })
            })
            .await?
        };
        let refusal = if exists {
            None
        } else {
            let name = name.clone();
            match self
                .run(&format!("CREATE {folder}"), None, |s| {
                    Box::pin(s.create(name))
                })
                .await
            {
                Ok(()) => None,
                Err(ImapError::Refused { answer, .. }) => Some(answer),
                Err(other) => return Err(other),
            }
        };
        // A folder that exists may still be unusable (\Noselect); STATUS
        // tells without leaving the selected mailbox.
        let status = match &refusal {
            Some(answer) => Err(answer.clone()),
            None => {
                let name = name.clone();
                match self
                    .run(&format!("STATUS {folder}"), None, |s| {
                        Box::pin(s.status(name, "(UIDVALIDITY)"))
                    })
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(ImapError::Refused { answer, .. }) => Err(answer),
                    Err(other) => return Err(other),
                }
            }
        };
        let Err(answer) = status else {
            return Ok(());
        };
        let hint = self.folder_hint(folder).await;
        Err(ImapError::Folder {
            folder: folder.to_string(),
            answer,
            hint,
        })
    }

    /// Names of the form the server wants, from its hierarchy delimiter.
    async fn folder_hint(&mut self, folder: &str) -> String {
        let delimiter = self
            .run("LIST for the hierarchy delimiter", None, |s| {
                Box::pin(async move {
                    let names: Vec<_> = s.list(Some(""), Some("\"\"")).await?.try_collect().await?;
                    Ok(names
                        .first()
                        .and_then(|n| n.delimiter().map(str::to_string)))
                })
            })
            .await
            .ok()
            .flatten();
        match delimiter {
            Some(d) if !folder.to_ascii_uppercase().starts_with("INBOX") => format!(
                "; this server separates folders with {d:?}: folders may have to live below INBOX, e.g. processed_mailbox = \"INBOX{d}{folder}\""
            ),
            Some(d) => format!("; this server separates folders with {d:?}"),
            None => String::new(),
        }
    }

    /// UIDs matching `query`, ascending.
    pub async fn search(&mut self, query: &str) -> Result<Vec<u32>, ImapError> {
        let responses = self
            .exchange("UID SEARCH", format!("UID SEARCH {query}"), None)
            .await?;
        let mut uids: Vec<u32> = responses
            .into_iter()
            .filter_map(|r| match r {
                Untagged::Search(ids) => Some(ids),
                _ => None,
            })
            .flatten()
            .collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// Sends `command` and reads every response up to its own tagged one,
    /// which must be OK; returns the untagged ones. async-imap's own FETCH,
    /// STORE and SEARCH end quietly on a NO or a closed connection, which
    /// would make a refusal look like an empty answer.
    async fn exchange(
        &mut self,
        step: &str,
        command: String,
        extra: Option<Duration>,
    ) -> Result<Vec<Untagged>, ImapError> {
        let responses = self
            .run(step, extra, |session| {
                Box::pin(async move {
                    let tag = session.run_command(&command).await?;
                    let mut untagged = Vec::new();
                    let mut farewell = None;
                    loop {
                        let Some(response) = session.read_response().await? else {
                            let reason = match farewell {
                                Some(text) => {
                                    format!("the server closed the connection (BYE {text})")
                                }
                                None => "the server closed the connection".to_string(),
                            };
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                reason,
                            )
                            .into());
                        };
                        match response.parsed() {
                            Response::Done {
                                tag: done,
                                status,
                                outcome,
                            } if *done == tag => {
                                let text = outcome_text(outcome);
                                return match status {
                                    Status::Ok => Ok(untagged),
                                    Status::No => Err(async_imap::error::Error::No(text)),
                                    _ => Err(async_imap::error::Error::Bad(text)),
                                };
                            }
                            Response::Data {
                                status: Status::Bye,
                                outcome,
                            } => farewell = Some(outcome_text(outcome)),
                            Response::Fetch(_, attributes) => {
                                untagged.push(Untagged::Fetch(fetched(attributes)))
                            }
                            Response::MailboxData(MailboxDatum::Search(uids)) => {
                                untagged.push(Untagged::Search(uids.clone()))
                            }
                            Response::MailboxData(
                                MailboxDatum::Exists(_) | MailboxDatum::Recent(_),
                            ) => untagged.push(Untagged::Announced),
                            _ => {}
                        }
                    }
                })
            })
            .await?;
        if responses.iter().any(|r| matches!(r, Untagged::Announced)) {
            self.announced = true;
        }
        Ok(responses)
    }

    /// Size and copy marker of each message; UIDs the server no longer
    /// has (expunged meanwhile) are missing from the answer.
    pub async fn meta(&mut self, uids: &[u32]) -> Result<Vec<Meta>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let command = format!("UID FETCH {} (UID RFC822.SIZE FLAGS)", uid_set(uids));
        let responses = self.exchange("FETCH of sizes", command, None).await?;
        let mut metas: Vec<Meta> = fetches(responses)
            .filter_map(|f| {
                Some(Meta {
                    uid: f.uid?,
                    size: u64::from(f.size.unwrap_or(0)),
                    copy_marked: f.flags.iter().any(|k| k.eq_ignore_ascii_case(COPY_MARKER)),
                })
            })
            .collect();
        metas.sort_by_key(|m| m.uid);
        metas.dedup_by_key(|m| m.uid);
        Ok(metas)
    }

    /// The raw messages (or their header sections), without setting
    /// `\Seen`. Every UID asked for is in the answer, in order: `None` when
    /// the server would not hand it out (`BODY[] NIL`, or left out). A NO
    /// for the command, or a connection lost before its end, is an error,
    /// never an empty answer.
    pub async fn fetch(
        &mut self,
        uids: &[u32],
        expected_bytes: u64,
        headers_only: bool,
    ) -> Result<Vec<(u32, Option<Vec<u8>>)>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let (step, items) = if headers_only {
            ("FETCH of headers", "(UID BODY.PEEK[HEADER])")
        } else {
            ("FETCH of messages", "(UID BODY.PEEK[])")
        };
        let command = format!("UID FETCH {} {items}", uid_set(uids));
        let extra = Duration::from_secs(expected_bytes / MIN_FETCH_RATE);
        let responses = self.exchange(step, command, Some(extra)).await?;
        let mut found = std::collections::HashMap::new();
        for f in fetches(responses) {
            if let (Some(uid), Some(body)) = (f.uid, f.body) {
                found.insert(uid, body);
            }
        }
        Ok(uids.iter().map(|uid| (*uid, found.remove(uid))).collect())
    }

    /// `UID STORE set +FLAGS.SILENT (flags)`.
    pub async fn add_flags(&mut self, uids: &[u32], flags: &str) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let command = format!("UID STORE {} +FLAGS.SILENT ({flags})", uid_set(uids));
        self.exchange(&format!("STORE {flags}"), command, None)
            .await
            .map(|_| ())
    }

    pub async fn move_to(&mut self, uids: &[u32], folder: &str) -> Result<(), ImapError> {
        let (set, name) = (uid_set(uids), wire_name(folder));
        self.run(&format!("MOVE to {folder}"), None, |s| {
            Box::pin(s.uid_mv(set, name))
        })
        .await
    }

    pub async fn copy_to(&mut self, uids: &[u32], folder: &str) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let (set, name) = (uid_set(uids), wire_name(folder));
        self.run(&format!("COPY to {folder}"), None, |s| {
            Box::pin(s.uid_copy(set, name))
        })
        .await
    }

    /// `UID EXPUNGE` (UIDPLUS): removes exactly these messages.
    pub async fn uid_expunge(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        let command = format!("UID EXPUNGE {}", uid_set(uids));
        self.exchange("UID EXPUNGE", command, None)
            .await
            .map(|_| ())
    }

    /// Plain `EXPUNGE`: removes every `\Deleted` message of the mailbox.
    pub async fn expunge_all(&mut self) -> Result<(), ImapError> {
        self.exchange("EXPUNGE", "EXPUNGE".into(), None)
            .await
            .map(|_| ())
    }

    /// Which of `message_ids` `folder` holds already. Leaves `folder`
    /// examined: select the mailbox again afterwards.
    pub async fn present_in(
        &mut self,
        folder: &str,
        message_ids: &[&str],
    ) -> Result<HashSet<String>, ImapError> {
        let name = wire_name(folder);
        self.run(&format!("EXAMINE {folder}"), None, |s| {
            Box::pin(s.examine(name))
        })
        .await?;
        let mut present = HashSet::new();
        for id in message_ids {
            if !self
                .search(&format!("HEADER Message-ID {}", quote(id)))
                .await?
                .is_empty()
            {
                present.insert(id.to_string());
            }
        }
        Ok(present)
    }

    /// Whether the server announced new messages (EXISTS/RECENT) since the
    /// last look; consumes those announcements.
    pub fn new_mail_announced(&mut self) -> bool {
        use async_imap::types::UnsolicitedResponse;
        let mut announced = std::mem::take(&mut self.announced);
        let Some(session) = &self.session else {
            return announced;
        };
        while let Ok(response) = session.unsolicited_responses.try_recv() {
            if matches!(response, UnsolicitedResponse::Exists(n) | UnsolicitedResponse::Recent(n) if n > 0)
            {
                announced = true;
            }
        }
        announced
    }

    /// Waits in IDLE until the server announces something or `renewal`
    /// passes, then ends the IDLE (DONE). Returns early, leaving the
    /// connection, on shutdown.
    pub async fn idle(&mut self, renewal: Duration) -> Result<(), ImapError> {
        let Some(session) = self.session.take() else {
            return Err(ImapError::Lost {
                during: "IDLE".into(),
                reason: "the connection was given up earlier".into(),
            });
        };
        let mut handle = session.idle();
        race(&self.shutdown, "IDLE", self.timeout, handle.init()).await?;
        {
            let (wait, _interrupt) = handle.wait_with_timeout(renewal);
            // Keep-alive lines (`* OK Still here`) restart async-imap's own
            // timer, so the renewal needs one of its own.
            let limit = renewal + self.timeout;
            race(&self.shutdown, "IDLE", limit, wait).await?;
        }
        let session = race(
            &self.shutdown,
            "DONE (end of IDLE)",
            self.timeout,
            handle.done(),
        )
        .await?;
        self.session = Some(session);
        Ok(())
    }

    /// Logs out politely, without waiting long for a silent server.
    pub async fn logout(mut self) {
        if let Some(mut session) = self.session.take() {
            let _ = tokio::time::timeout(LOGOUT_TIMEOUT, session.logout()).await;
        }
    }
}

/// What a FETCH response says of one message.
struct Fetched {
    uid: Option<u32>,
    size: Option<u32>,
    flags: Vec<String>,
    /// `BODY[]` or `BODY[HEADER]`; `None` also for `NIL`.
    body: Option<Vec<u8>>,
}

/// The untagged responses an exchange keeps.
enum Untagged {
    Fetch(Fetched),
    Search(Vec<u32>),
    /// EXISTS or RECENT: new mail.
    Announced,
}

fn fetches(responses: Vec<Untagged>) -> impl Iterator<Item = Fetched> {
    responses.into_iter().filter_map(|r| match r {
        Untagged::Fetch(f) => Some(f),
        _ => None,
    })
}

fn fetched(attributes: &[AttributeValue<'_>]) -> Fetched {
    let mut f = Fetched {
        uid: None,
        size: None,
        flags: Vec::new(),
        body: None,
    };
    for attribute in attributes {
        match attribute {
            AttributeValue::Uid(uid) => f.uid = Some(*uid),
            AttributeValue::Rfc822Size(size) => f.size = Some(*size),
            AttributeValue::Flags(flags) => f.flags = flags.iter().map(|k| k.to_string()).collect(),
            AttributeValue::BodySection { data, .. }
            | AttributeValue::Rfc822(data)
            | AttributeValue::Rfc822Header(data) => f.body = data.as_ref().map(|d| d.to_vec()),
            _ => {}
        }
    }
    f
}

/// A status response's text, with its response code (`[TRYCREATE] …`).
fn outcome_text(outcome: &async_imap::imap_proto::Outcome<'_>) -> String {
    let text = outcome.information.as_deref().unwrap_or("").trim();
    let code = match &outcome.code {
        None => None,
        Some(ResponseCode::TryCreate) => Some("TRYCREATE".to_string()),
        Some(ResponseCode::Alert) => Some("ALERT".to_string()),
        Some(ResponseCode::Parse) => Some("PARSE".to_string()),
        Some(ResponseCode::ReadOnly) => Some("READ-ONLY".to_string()),
        Some(other) => format!("{other:?}")
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .map(str::to_ascii_uppercase),
    };
    match code {
        Some(code) if text.is_empty() => format!("[{code}]"),
        Some(code) => format!("[{code}] {text}"),
        None => text.to_string(),
    }
}

/// Races `future` against the timeout and shutdown.
async fn race<T, E>(
    shutdown: &CancellationToken,
    step: &str,
    limit: Duration,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError>
where
    E: IntoImapError,
{
    tokio::select! {
        result = tokio::time::timeout(limit, future) => match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.into_imap_error(step)),
            Err(_) => Err(ImapError::Timeout { step: step.to_string(), secs: limit.as_secs() }),
        },
        _ = shutdown.cancelled() => Err(ImapError::Shutdown),
    }
}

trait IntoImapError {
    fn into_imap_error(self, step: &str) -> ImapError;
}

impl IntoImapError for async_imap::error::Error {
    fn into_imap_error(self, step: &str) -> ImapError {
        ImapError::from_protocol(step, self)
    }
}

impl IntoImapError for std::io::Error {
    fn into_imap_error(self, step: &str) -> ImapError {
        ImapError::Lost {
            during: step.to_string(),
            reason: self.to_string(),
        }
    }
}

impl IntoImapError for ImapError {
    fn into_imap_error(self, _step: &str) -> ImapError {
        self
    }
}

fn selected(mailbox: &Mailbox) -> Selected {
    Selected {
        uid_validity: mailbox.uid_validity.unwrap_or(0),
        exists: mailbox.exists,
        keywords: mailbox
            .permanent_flags
            .iter()
            .any(|f| matches!(f, Flag::MayCreate)),
    }
}

/// The bearer token, from the config or freshly from the command.
async fn xoauth2_token(settings: &ImapSettings) -> Result<Option<String>, ImapError> {
    if let Some(token) = &settings.xoauth2_token {
        return Ok(Some(token.clone()));
    }
    let Some(command) = &settings.xoauth2_command else {
        return Ok(None);
    };
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(settings.timeout_secs), run)
        .await
        .map_err(|_| {
            ImapError::TokenCommand(format!(
                "{command:?} did not finish within {} s",
                settings.timeout_secs
            ))
        })?
        .map_err(|e| ImapError::TokenCommand(format!("{command:?}: {e}")))?;
    if !output.status.success() {
        return Err(ImapError::TokenCommand(format!(
            "{command:?} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(Some(
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    ))
}

/// SASL XOAUTH2 as Microsoft 365 and Gmail expect it.
struct XOAuth2 {
    user: String,
    token: String,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        format!("user={}\x01auth=Bearer {}\x01\x01", self.user, self.token)
    }
}

/// `1:3,5,8:9` for a UID list: runs as ranges, so that a whole backlog
/// fits one command line.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// An IMAP quoted string.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// UIDs in `all` that are not in `except`.
pub fn without(all: &[u32], except: &HashSet<u32>) -> Vec<u32> {
    all.iter()
        .copied()
        .filter(|u| !except.contains(u))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_runs() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 8, 9, 7, 12]), "1:3,5,7:9,12");
        assert_eq!(uid_set(&[4]), "4");
    }

    #[test]
    fn mailbox_names_are_modified_utf7() {
        assert_eq!(wire_name("Processed"), "Processed");
        assert_eq!(wire_name("Erledigt-Ä"), "Erledigt-&AMQ-");
        assert_eq!(wire_name("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(wire_name("R&D"), "R&-D");
    }

    #[test]
    fn the_servers_words_are_kept_not_rust_debug_output() {
        assert_eq!(
            server_text(r#"code: Some(TryCreate), info: Some("Mailbox doesn't exist: X")"#),
            "[TRYCREATE] Mailbox doesn't exist: X"
        );
        assert_eq!(
            server_text(r#"code: None, info: Some("Permission denied \"x\"")"#),
            "Permission denied \"x\""
        );
        assert_eq!(server_text("plain words"), "plain words");
    }
}
