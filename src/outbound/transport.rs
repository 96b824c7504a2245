//! Where notifications go: the configured [`Outbound`] transport, an SMTP
//! server (lettre; STARTTLS, implicit TLS or plain on loopback; AUTH;
//! timeouts) or `.eml` files in a directory. Delivery works over any
//! [`Transport`], so tests can put their own in between.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Settings;

/// Sends one composed message.
pub trait Transport: Send + Sync {
    /// Delivers `message`; `name` names the file for a file transport.
    fn send(
        &self,
        name: &str,
        message: &Message,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// The transport the configuration names.
pub enum Outbound {
    File {
        dir: PathBuf,
    },
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// lettre bounds only the TCP connect; every send is bounded here.
        timeout: Duration,
    },
}

/// Bytes per second a large message is granted beyond the timeout.
const MIN_SEND_RATE: u64 = 100 * 1024;

/// A failed delivery, and whether trying again can help.
#[derive(Debug)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

impl Outbound {
    /// Builds the configured transport. Fails when the SMTP settings
    /// cannot work (an unreadable `ca_file`, a bad certificate).
    pub fn from_settings(settings: &Settings) -> Result<Outbound, String> {
        if settings.outbound.transport == "file" {
            return Ok(Outbound::File {
                dir: settings.outbound.dir.clone(),
            });
        }
        let smtp = settings
            .smtp
            .as_ref()
            .ok_or("[outbound] transport = \"smtp\" needs an [smtp] section")?;
        let mut tls = TlsParameters::builder(smtp.host.clone());
        if let Some(ca) = &smtp.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| format!("[smtp] ca_file {}: {e}", ca.display()))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|e| format!("[smtp] ca_file {}: {e}", ca.display()))?;
            tls = tls.add_root_certificate(certificate);
        }
        let tls = tls.build_rustls().map_err(|e| format!("[smtp] TLS: {e}"))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(smtp.timeout_secs)));
        builder = if smtp.tls {
            builder.tls(Tls::Wrapper(tls))
        } else if smtp.starttls {
            builder.tls(Tls::Required(tls))
        } else {
            builder.tls(Tls::None)
        };
        if let Some(username) = &smtp.username {
            let password = smtp.password.clone().unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Outbound::Smtp {
            transport: builder.build(),
            timeout: Duration::from_secs(smtp.timeout_secs),
        })
    }

    /// Whether mail could go out now: the directory is writable, or the
    /// SMTP server answers (TLS and AUTH included).
    pub async fn check(&self) -> Result<String, String> {
        match self {
            Outbound::File { dir } => std::fs::create_dir_all(dir)
                .map(|_| format!("writes to {}", dir.display()))
                .map_err(|e| format!("{}: {e}", dir.display())),
            Outbound::Smtp { transport, timeout } => {
                match tokio::time::timeout(*timeout * 3, transport.test_connection()).await {
                    Ok(Ok(true)) => Ok("the server accepts connections".into()),
                    Ok(Ok(false)) => Err("the server did not answer NOOP".into()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!(
                        "the server did not answer within {} s",
                        timeout.as_secs() * 3
                    )),
                }
            }
        }
    }
}

impl Transport for Outbound {
    async fn send(&self, name: &str, message: &Message) -> Result<(), SendError> {
        let bytes = message.formatted();
        match self {
            Outbound::File { dir } => {
                // Writing and syncing a file blocks; keep it off the thread
                // that serves IMAP and the database.
                let (path, name) = (dir.clone(), name.to_string());
                tokio::task::spawn_blocking(move || write_file(&path, &name, &bytes))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                    .map_err(|e| SendError {
                        permanent: false,
                        message: format!("cannot write to {}: {e}", dir.display()),
                    })
            }
            Outbound::Smtp { transport, timeout } => {
                // Connect, greeting, TLS, AUTH, envelope and the data, and
                // then some for a large message.
                let size = bytes.len() as u64;
                let limit = *timeout * 3 + Duration::from_secs(size / MIN_SEND_RATE);
                let send = transport.send_raw(message.envelope(), &bytes);
                match tokio::time::timeout(limit, send).await {
                    Ok(result) => result.map(|_| ()).map_err(|e| {
                        SendError {
                            // Only the server's 5xx answer is final; a refused
                            // connection, a timeout or a 4xx is worth another try.
                            permanent: e.is_permanent(),
                            message: e.to_string(),
                        }
                    }),
                    Err(_) => Err(SendError {
                        permanent: false,
                        message: format!(
                            "the SMTP server did not finish within {} s",
                            limit.as_secs()
                        ),
                    }),
                }
            }
        }
    }
}

/// Writes under a temporary name and renames, so a reader never sees half
/// a message.
fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}
