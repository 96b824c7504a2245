//! The IMAP side of the daemon: connect (TLS or plain), log in (LOGIN or
//! XOAUTH2), and the mailbox operations the poller needs. I/O only; what to
//! do with the messages is the pipeline's business.

use std::fmt::Debug;
use std::sync::Arc;

use async_imap::{Client, Session};
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::config::ImapSettings;

/// The byte stream under the IMAP session, TLS or plain.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}

pub type ImapSession = Session<Box<dyn Io>>;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("login as {0} refused: {1}")]
    Login(String, String),
    #[error("XOAUTH2 token command failed: {0}")]
    TokenCommand(String),
    #[error("IMAP: {0}")]
    Protocol(#[from] async_imap::error::Error),
}

/// What the server offers, as far as the poller cares.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    pub idle: bool,
    pub mv: bool,
    pub uidplus: bool,
}

/// Connects and logs in. Fails on network, TLS or authentication errors;
/// all of them are worth retrying later except a refused login, which the
/// caller logs loudly.
pub async fn connect(settings: &ImapSettings) -> Result<(ImapSession, Capabilities), ImapError> {
    let address = format!("{}:{}", settings.host, settings.port);
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|e| ImapError::Connect(address.clone(), e))?;
    tcp.set_nodelay(true).ok();
    let stream: Box<dyn Io> = if settings.tls {
        Box::new(tls_connect(settings, tcp).await?)
    } else {
        Box::new(tcp)
    };
    let mut client = Client::new(stream);
    client
        .read_response()
        .await
        .map_err(|e| ImapError::Connect(address.clone(), e))?
        .ok_or_else(|| {
            let closed = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the greeting",
            );
            ImapError::Connect(address.clone(), closed)
        })?;

    let mut session = match xoauth2_token(settings).await? {
        Some(token) => {
            let auth = XOAuth2 {
                user: settings.username.clone(),
                token,
            };
            client
                .authenticate("XOAUTH2", auth)
                .await
                .map_err(|(e, _)| ImapError::Login(settings.username.clone(), e.to_string()))?
        }
        None => client
            .login(
                &settings.username,
                settings.password.as_deref().unwrap_or_default(),
            )
            .await
            .map_err(|(e, _)| ImapError::Login(settings.username.clone(), e.to_string()))?,
    };
    let caps = session.capabilities().await?;
    let capabilities = Capabilities {
        idle: caps.has_str("IDLE"),
        mv: caps.has_str("MOVE"),
        uidplus: caps.has_str("UIDPLUS"),
    };
    Ok((session, capabilities))
}

async fn tls_connect(
    settings: &ImapSettings,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &settings.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| ImapError::Tls(format!("{}: {e}", ca.display())))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ImapError::Tls(format!("{}: {e}", ca.display())))?;
            roots.add(cert).map_err(|e| ImapError::Tls(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ImapError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(settings.host.clone())
        .map_err(|e| ImapError::Tls(format!("{}: {e}", settings.host)))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| ImapError::Tls(e.to_string()))
}

/// The bearer token, from the config or freshly from the command.
async fn xoauth2_token(settings: &ImapSettings) -> Result<Option<String>, ImapError> {
    if let Some(token) = &settings.xoauth2_token {
        return Ok(Some(token.clone()));
    }
    let Some(command) = &settings.xoauth2_command else {
        return Ok(None);
    };
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .await
        .map_err(|e| ImapError::TokenCommand(e.to_string()))?;
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

/// UIDs of the messages waiting in the selected mailbox, ascending.
/// `after`: only UIDs above it (when processed mail stays in place).
pub async fn waiting_uids(
    session: &mut ImapSession,
    after: Option<u32>,
) -> Result<Vec<u32>, ImapError> {
    let query = match after {
        Some(last) => format!("UID {}:*", last + 1),
        None => "ALL".to_string(),
    };
    let mut uids: Vec<u32> = session
        .uid_search(query)
        .await?
        .into_iter()
        .filter(|uid| after.is_none_or(|last| *uid > last))
        .collect();
    uids.sort_unstable();
    Ok(uids)
}

/// Sizes of the given messages, by UID.
pub async fn sizes(session: &mut ImapSession, uids: &[u32]) -> Result<Vec<(u32, u64)>, ImapError> {
    let fetches: Vec<_> = session
        .uid_fetch(uid_set(uids), "(UID RFC822.SIZE)")
        .await?
        .try_collect()
        .await?;
    Ok(fetches
        .iter()
        .filter_map(|f| Some((f.uid?, u64::from(f.size?))))
        .collect())
}

/// The raw messages (or only their headers), by UID, without setting
/// `\Seen`.
pub async fn fetch(
    session: &mut ImapSession,
    uids: &[u32],
    headers_only: bool,
) -> Result<Vec<(u32, Vec<u8>)>, ImapError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let query = if headers_only {
        "(UID BODY.PEEK[HEADER])"
    } else {
        "(UID BODY.PEEK[])"
    };
    let fetches: Vec<_> = session
        .uid_fetch(uid_set(uids), query)
        .await?
        .try_collect()
        .await?;
    let mut messages: Vec<(u32, Vec<u8>)> = fetches
        .iter()
        .filter_map(|f| {
            let body = if headers_only { f.header() } else { f.body() };
            Some((f.uid?, body?.to_vec()))
        })
        .collect();
    messages.sort_by_key(|(uid, _)| *uid);
    Ok(messages)
}

/// Acknowledges processed messages: moved to `processed` (MOVE, or COPY +
/// `\Deleted` + expunge), or flagged `\Seen` when there is no such folder.
pub async fn acknowledge(
    session: &mut ImapSession,
    capabilities: Capabilities,
    uids: &[u32],
    processed: Option<&str>,
) -> Result<(), ImapError> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(uids);
    match processed {
        Some(folder) if capabilities.mv => session.uid_mv(&set, folder).await?,
        Some(folder) => {
            session.uid_copy(&set, folder).await?;
            let _: Vec<_> = session
                .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect()
                .await?;
            if capabilities.uidplus {
                let _: Vec<_> = session.uid_expunge(&set).await?.try_collect().await?;
            } else {
                let _: Vec<_> = session.expunge().await?.try_collect().await?;
            }
        }
        None => {
            let _: Vec<_> = session
                .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                .await?
                .try_collect()
                .await?;
        }
    }
    Ok(())
}

/// `1,2,5` for a UID list (servers accept long lists; batches keep them
/// bounded).
fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
