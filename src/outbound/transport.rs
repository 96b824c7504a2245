//! Where notifications go: the configured [`Outbound`] transport, an SMTP
//! server (lettre; STARTTLS, implicit TLS or plain on loopback; AUTH;
//! timeouts) or `.eml` files in a directory. Delivery works over any
//! [`Transport`], so tests can put their own in between.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Settings;

/// Mails of a round on their way at the same time, by default (SMTP
/// connections from the pool).
const SENDING: usize = 2;

/// Sends composed messages.
pub trait Transport: Send + Sync {
    /// Delivers `message`; `name` names the file for a file transport.
    fn send(
        &self,
        name: &str,
        message: &Message,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Delivers a round of named messages; the results in their order. By
    /// default a few at a time, each with `send`.
    fn send_round(
        &self,
        mails: Vec<(String, Message)>,
    ) -> impl Future<Output = Vec<Result<(), SendError>>> + Send {
        few_at_a_time(self, mails)
    }
}

/// A round sent `SENDING` mails at a time, each with `send`.
async fn few_at_a_time<T: Transport + ?Sized>(
    transport: &T,
    mails: Vec<(String, Message)>,
) -> Vec<Result<(), SendError>> {
    futures::stream::iter(mails)
        .map(|(name, message)| async move { transport.send(&name, &message).await })
        .buffered(SENDING)
        .collect()
        .await
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
    async fn send_round(&self, mails: Vec<(String, Message)>) -> Vec<Result<(), SendError>> {
        match self {
            Outbound::File { dir } => write_round(dir, mails).await,
            Outbound::Smtp { .. } => few_at_a_time(self, mails).await,
        }
    }

    async fn send(&self, name: &str, message: &Message) -> Result<(), SendError> {
        match self {
            Outbound::File { dir } => {
                let mails = vec![(name.to_string(), message.clone())];
                let written = write_round(dir, mails).await.pop();
                written
                    .unwrap_or_else(|| Err(write_error(dir, std::io::Error::other("not written"))))
            }
            Outbound::Smtp { transport, timeout } => {
                let bytes = message.formatted();
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

fn write_error(dir: &Path, error: std::io::Error) -> SendError {
    SendError {
        permanent: false,
        message: format!("cannot write to {}: {error}", dir.display()),
    }
}

/// Writes a round of mails as files, off the runtime thread (writing and
/// syncing block); the results in their order.
async fn write_round(dir: &Path, mails: Vec<(String, Message)>) -> Vec<Result<(), SendError>> {
    let count = mails.len();
    let path = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || write_files(&path, mails)).await {
        Ok(results) => results
            .into_iter()
            .map(|result| result.map_err(|e| write_error(dir, e)))
            .collect(),
        Err(e) => (0..count)
            .map(|_| Err(write_error(dir, std::io::Error::other(e.to_string()))))
            .collect(),
    }
}

/// Each mail is written under a temporary name and renamed, so that a
/// reader never sees half a message. The round's contents reach the disk
/// with one sync of the filesystem, then its new names with one sync of
/// the directory: two disk flushes for the round instead of one or more
/// per file, and every file reported written is durable under its name.
fn write_files(dir: &Path, mails: Vec<(String, Message)>) -> Vec<std::io::Result<()>> {
    use std::io::Write;
    let opened = std::fs::create_dir_all(dir).and_then(|()| std::fs::File::open(dir));
    let directory = match opened {
        Ok(directory) => directory,
        Err(e) => return mails.iter().map(|_| Err(same_error(&e))).collect(),
    };
    let temporary = |name: &str| dir.join(format!(".{name}.tmp"));
    let written: Vec<(String, std::io::Result<()>)> = mails
        .into_iter()
        .map(|(name, message)| {
            let result = std::fs::File::create(temporary(&name))
                .and_then(|mut file| file.write_all(&message.formatted()));
            (name, result)
        })
        .collect();
    let contents_synced = rustix::fs::syncfs(&directory).map_err(std::io::Error::from);
    let renamed: Vec<std::io::Result<()>> = written
        .into_iter()
        .map(|(name, result)| {
            result?;
            contents_synced.as_ref().map_err(same_error)?;
            std::fs::rename(temporary(&name), dir.join(&name))
        })
        .collect();
    let names_synced = directory.sync_all();
    renamed
        .into_iter()
        .map(|result| result.and(names_synced.as_ref().map_err(same_error).copied()))
        .collect()
}

/// The error again, for each of several results.
fn same_error(error: &std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str) -> Message {
        Message::builder()
            .from("support@example.com".parse().unwrap())
            .to("john@example.com".parse().unwrap())
            .subject(subject)
            .body(String::from("Hallo"))
            .unwrap()
    }

    fn round() -> Vec<(String, Message)> {
        vec![
            ("00000001-ticket_created.eml".into(), mail("one")),
            ("00000002-ticket_created.eml".into(), mail("two")),
        ]
    }

    #[test]
    fn a_round_of_files_is_written_whole_under_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        let results = write_files(&outbox, round());
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let mut names: Vec<String> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        // No temporary file is left behind.
        assert_eq!(
            names,
            ["00000001-ticket_created.eml", "00000002-ticket_created.eml"]
        );
        let second = std::fs::read_to_string(outbox.join("00000002-ticket_created.eml")).unwrap();
        assert!(second.contains("Subject: two"), "{second}");
    }

    #[test]
    fn a_directory_that_cannot_be_made_fails_each_mail_of_the_round() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-directory");
        std::fs::write(&file, "").unwrap();
        let results = write_files(&file.join("outbox"), round());
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(Result::is_err), "{results:?}");
    }
}
