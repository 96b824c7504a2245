//! The TOML configuration: read, defaulted, validated, with relative paths
//! resolved against the file's directory. Errors name the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::decide::Policy;
use crate::domain::thread::SupportAddress;
use crate::domain::thread::TokenSigner;
use crate::domain::ticket::{Category, DEFAULT_EMERGENCY_MARKERS};

#[derive(Debug, thiserror::Error)]
#[error("config error in {file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(skip)]
    pub config_dir: PathBuf,
    #[serde(default)]
    pub database: DatabaseSettings,
    pub mail: MailSettings,
    /// One mailbox, named `default`; at load it moves to the front of
    /// `mailboxes` (so it is always `None` after `parse`).
    imap: Option<ImapSettings>,
    /// `[[mailbox]]` entries, after `[imap]` if there is one: every mailbox
    /// `ticketgate run` reads.
    #[serde(default, rename = "mailbox")]
    pub mailboxes: Vec<ImapSettings>,
    #[serde(default)]
    pub outbound: OutboundSettings,
    pub smtp: Option<SmtpSettings>,
    #[serde(default)]
    pub web: WebSettings,
    pub security: SecuritySettings,
    #[serde(default)]
    pub policy: PolicySettings,
    #[serde(default = "default_categories")]
    pub categories: BTreeMap<String, Category>,
    #[serde(default)]
    pub storage: StorageSettings,
    #[serde(default)]
    pub daemon: DaemonSettings,
    #[serde(default)]
    pub limits: LimitsSettings,
}

/// What one message may cost at most, for `ingest` as for IMAP. A message
/// beyond a limit is suspended (`over_limit`, the detail names the key), or
/// loses the part in excess with a note on its comment; it never takes
/// unbounded time or memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSettings {
    /// Larger messages are suspended from their header section, never read
    /// whole.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u64,
    #[serde(default = "default_max_header_fields")]
    pub max_header_fields: usize,
    /// References beyond the newest this many are not looked at.
    #[serde(default = "default_max_references")]
    pub max_references: usize,
    #[serde(default = "default_max_mime_parts")]
    pub max_mime_parts: usize,
    #[serde(default = "default_max_mime_depth")]
    pub max_mime_depth: usize,
    /// Attachments kept per message; the rest is dropped with a note.
    #[serde(default = "default_max_attachments")]
    pub max_attachments: usize,
    /// Bytes of attachments kept per message; the rest is dropped with a
    /// note.
    #[serde(default = "default_max_message_bytes")]
    pub max_attachment_bytes: u64,
    /// HTML with more elements is turned into text by a plain tag stripper.
    #[serde(default = "default_max_html_elements")]
    pub max_html_elements: usize,
    /// The customer's reply kept as the comment; longer ones are cut with a
    /// note (the original text keeps more).
    #[serde(default = "default_max_comment_bytes")]
    pub max_comment_bytes: usize,
    /// The message's whole text kept beside the comment.
    #[serde(default = "default_max_full_text_bytes")]
    pub max_full_text_bytes: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: default_max_message_bytes(),
            max_header_bytes: default_max_header_bytes(),
            max_header_fields: default_max_header_fields(),
            max_references: default_max_references(),
            max_mime_parts: default_max_mime_parts(),
            max_mime_depth: default_max_mime_depth(),
            max_attachments: default_max_attachments(),
            max_attachment_bytes: default_max_message_bytes(),
            max_html_elements: default_max_html_elements(),
            max_comment_bytes: default_max_comment_bytes(),
            max_full_text_bytes: default_max_full_text_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSettings {
    /// How often the outbox worker looks for due mail (it is also woken
    /// whenever new mail was queued).
    #[serde(default = "default_daemon_interval")]
    pub outbox_interval_secs: u64,
    /// `127.0.0.1:9187` serves Prometheus metrics at `/metrics`.
    pub metrics_listen: Option<String>,
    /// `json` for one JSON object per log line; text otherwise.
    #[serde(default)]
    pub log_format: Option<String>,
    /// A mailbox whose reader stopped renewing its lease this long ago is
    /// taken over by another instance on the same database.
    #[serde(default = "default_failover_secs")]
    pub failover_secs: u64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            outbox_interval_secs: default_daemon_interval(),
            metrics_listen: None,
            log_format: None,
            failover_secs: default_failover_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    #[serde(default = "default_database_url")]
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: default_database_url(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub support_address: String,
    pub agents_address: Option<String>,
    pub oncall_address: Option<String>,
    /// Locale of mail to addresses outside the directory (agents, on-call).
    #[serde(default = "default_locale")]
    pub default_locale: String,
    /// Display name on outgoing mail.
    #[serde(default = "default_from_name")]
    pub from_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    /// The mailbox's name in logs, leases and `check` (`default` for
    /// `[imap]`); required in `[[mailbox]]`.
    #[serde(default)]
    pub name: String,
    /// New tickets from this mailbox get this category unless their
    /// plus-address chose one (a billing@ mailbox).
    pub category: Option<Category>,
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: u16,
    #[serde(default = "default_true")]
    pub tls: bool,
    pub username: String,
    pub password: Option<String>,
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    /// Processed messages are moved here; without it they are flagged
    /// `\Seen` and left in place.
    pub processed_mailbox: Option<String>,
    /// XOAUTH2 (Microsoft 365, Gmail): a bearer token, or a command that
    /// prints one (run at every login, so it can refresh).
    pub xoauth2_token: Option<String>,
    pub xoauth2_command: Option<String>,
    /// Use IDLE when the server offers it; otherwise poll.
    #[serde(default = "default_true")]
    pub idle: bool,
    #[serde(default = "default_poll_secs")]
    pub poll_interval_secs: u64,
    /// Messages fetched and committed together.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// A PEM certificate to trust besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for the server at every step: connect, TLS, the
    /// greeting, the login and each command (a large fetch gets more, in
    /// proportion to its size). A silent server is given up and reconnected.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// IDLE is ended and issued again after this many seconds, so that a
    /// connection that died silently is noticed (RFC 2177 allows 29 minutes).
    #[serde(default = "default_idle_renewal")]
    pub idle_renewal_secs: u64,
    /// A message the server fails to hand out this many times is suspended
    /// as `unreadable` from what can be read (its headers, or its UID).
    #[serde(default = "default_fetch_attempts")]
    pub max_fetch_attempts: u32,
    /// Bytes fetched and committed together at most (a larger message is
    /// fetched alone).
    #[serde(default = "default_batch_bytes")]
    pub batch_max_bytes: u64,
}

/// The name `[imap]` gets: its stored position stays keyed as before.
pub const DEFAULT_MAILBOX_NAME: &str = "default";

impl ImapSettings {
    /// How errors name this mailbox's table.
    pub fn table(&self) -> String {
        if self.name.is_empty() || self.name == DEFAULT_MAILBOX_NAME {
            "[imap]".into()
        } else {
            format!("[[mailbox]] {:?}", self.name)
        }
    }

    /// How `check` and the logs name it.
    pub fn label(&self) -> String {
        if self.name == DEFAULT_MAILBOX_NAME {
            "imap".into()
        } else {
            format!("imap {}", self.name)
        }
    }

    /// The key of the stored position (`imap_state`): the folder for the
    /// `default` mailbox, as before there were several; `name/folder` for
    /// the others, since two accounts may both read an `INBOX`.
    pub fn state_key(&self) -> String {
        if self.name == DEFAULT_MAILBOX_NAME {
            self.mailbox.clone()
        } else {
            format!("{}/{}", self.name, self.mailbox)
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSettings {
    #[serde(default = "default_transport")]
    pub transport: String,
    #[serde(default = "default_outbox_dir")]
    pub dir: PathBuf,
    /// Automatic mails per recipient and hour before further ones are
    /// suppressed (mail-loop brake).
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_hour: u32,
    /// Temporary delivery failures are retried for this long, then failed.
    #[serde(default = "default_retry_hours")]
    pub retry_max_age_hours: i64,
    /// A row claimed for sending by an instance that died is sent by
    /// another after this long; longer than a round of sending can take.
    #[serde(default = "default_claim_secs")]
    pub claim_secs: u64,
    /// Templates here replace the built-in ones of the same file name.
    pub templates_dir: Option<PathBuf>,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            transport: default_transport(),
            dir: default_outbox_dir(),
            rate_limit_per_hour: default_rate_limit(),
            retry_max_age_hours: default_retry_hours(),
            claim_secs: default_claim_secs(),
            templates_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default = "default_true")]
    pub starttls: bool,
    #[serde(default)]
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// A PEM certificate to trust besides the public roots (a private CA
    /// or a self-signed server).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// `127.0.0.1:8080` serves the help center (`run` and `serve`); off
    /// when absent.
    pub listen: Option<String>,
    /// Files of one request or comment in the help center, in all.
    #[serde(default = "default_upload_bytes")]
    pub max_upload_bytes: u64,
    /// Files per request or comment.
    #[serde(default = "default_upload_files")]
    pub max_upload_files: usize,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            base_url: default_base_url(),
            listen: None,
            max_upload_bytes: default_upload_bytes(),
            max_upload_files: default_upload_files(),
        }
    }
}

fn default_upload_bytes() -> u64 {
    20 * 1024 * 1024
}
fn default_upload_files() -> usize {
    10
}

impl SecuritySettings {
    /// Why `token_secret` cannot protect anything: the sample's value, or
    /// too short to resist guessing (reply tokens and rating links are
    /// forged with it).
    pub fn secret_problem(&self) -> Option<String> {
        let secret = self.token_secret.trim();
        if secret == "change-me" {
            return Some("[security] token_secret is still the sample's \"change-me\"; set a long random value (e.g. openssl rand -base64 32)".into());
        }
        if secret.chars().count() < 16 {
            return Some(format!(
                "[security] token_secret has {} characters; use at least 16 random ones (e.g. openssl rand -base64 32)",
                secret.chars().count()
            ));
        }
        None
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    pub token_secret: String,
    #[serde(default)]
    pub trusted_authserv_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    #[serde(default = "default_reopen_days")]
    pub reopen_days: i64,
    #[serde(default = "default_emergency_markers")]
    pub emergency_markers: Vec<String>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            reopen_days: default_reopen_days(),
            emergency_markers: default_emergency_markers(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Attachments live under `{data_dir}/attachments`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
        }
    }
}

fn default_database_url() -> String {
    "sqlite://ticketgate.db".into()
}
fn default_locale() -> String {
    "de".into()
}
fn default_imap_port() -> u16 {
    993
}
fn default_smtp_port() -> u16 {
    587
}
fn default_true() -> bool {
    true
}
fn default_claim_secs() -> u64 {
    300
}
fn default_failover_secs() -> u64 {
    30
}
fn default_mailbox() -> String {
    "INBOX".into()
}
fn default_transport() -> String {
    "file".into()
}
fn default_outbox_dir() -> PathBuf {
    "outbox".into()
}
fn default_rate_limit() -> u32 {
    20
}
fn default_retry_hours() -> i64 {
    48
}
fn default_timeout() -> u64 {
    30
}
fn default_idle_renewal() -> u64 {
    300
}
fn default_fetch_attempts() -> u32 {
    3
}
fn default_batch_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_poll_secs() -> u64 {
    30
}
fn default_batch() -> usize {
    100
}
fn default_max_message_bytes() -> u64 {
    25 * 1024 * 1024
}
fn default_max_header_bytes() -> u64 {
    256 * 1024
}
fn default_max_header_fields() -> usize {
    1_000
}
fn default_max_references() -> usize {
    50
}
fn default_max_mime_parts() -> usize {
    500
}
fn default_max_mime_depth() -> usize {
    20
}
fn default_max_attachments() -> usize {
    50
}
fn default_max_html_elements() -> usize {
    20_000
}
fn default_max_comment_bytes() -> usize {
    1024 * 1024
}
fn default_max_full_text_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_daemon_interval() -> u64 {
    5
}
fn default_from_name() -> String {
    "Support".into()
}
fn default_base_url() -> String {
    "http://localhost:8080".into()
}
fn default_reopen_days() -> i64 {
    14
}
fn default_emergency_markers() -> Vec<String> {
    DEFAULT_EMERGENCY_MARKERS
        .iter()
        .map(|m| m.to_string())
        .collect()
}
fn default_data_dir() -> PathBuf {
    "data".into()
}
fn default_categories() -> BTreeMap<String, Category> {
    [
        ("billing", Category::Billing),
        ("onboarding", Category::OnboardingCsm),
        ("dev", Category::DeveloperSupport),
        ("partner", Category::PartnerCustomCode),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Settings {
    /// Reads and validates `path`. Fails with a message naming the file and
    /// the offending key or value.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let error = |message: String| ConfigError {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            error(format!(
                "cannot read it ({e}); `ticketgate --config {} init` writes a sample",
                path.display()
            ))
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Settings::parse(&text, dir).map_err(error)
    }

    /// Parses TOML text; `config_dir` anchors relative paths.
    pub fn parse(text: &str, config_dir: &Path) -> Result<Settings, String> {
        let mut settings: Settings = toml::from_str(text).map_err(|e| e.to_string())?;
        settings.config_dir = config_dir.to_path_buf();
        if let Some(mut imap) = settings.imap.take() {
            if imap.name.is_empty() {
                imap.name = DEFAULT_MAILBOX_NAME.into();
            }
            settings.mailboxes.insert(0, imap);
        }
        settings.read_secrets(config_dir)?;
        settings.validate()?;
        settings.database.url = resolve_database_url(&settings.database.url, config_dir);
        settings.outbound.dir = config_dir.join(&settings.outbound.dir);
        settings.storage.data_dir = config_dir.join(&settings.storage.data_dir);
        if let Some(dir) = &settings.outbound.templates_dir {
            settings.outbound.templates_dir = Some(config_dir.join(dir));
        }
        for imap in &mut settings.mailboxes {
            if let Some(ca) = &imap.ca_file {
                imap.ca_file = Some(config_dir.join(ca));
            }
        }
        if let Some(smtp) = &mut settings.smtp {
            if let Some(ca) = &smtp.ca_file {
                smtp.ca_file = Some(config_dir.join(ca));
            }
        }
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        if SupportAddress::parse(&self.mail.support_address).is_none() {
            return Err(format!(
                "[mail] support_address = {:?} is not an email address",
                self.mail.support_address
            ));
        }
        for (key, address) in [
            ("agents_address", &self.mail.agents_address),
            ("oncall_address", &self.mail.oncall_address),
        ] {
            if let Some(address) = address {
                if !address.contains('@') {
                    return Err(format!(
                        "[mail] {key} = {address:?} is not an email address"
                    ));
                }
            }
        }
        if self.security.token_secret.trim().is_empty() {
            return Err("[security] token_secret must not be empty".into());
        }
        if self.policy.reopen_days < 0 {
            return Err(format!(
                "[policy] reopen_days = {} must not be negative",
                self.policy.reopen_days
            ));
        }
        match self.outbound.transport.as_str() {
            "file" => {}
            "smtp" if self.smtp.is_none() => {
                return Err("[outbound] transport = \"smtp\" needs an [smtp] section".into())
            }
            "smtp" => {}
            other => {
                return Err(format!(
                    "[outbound] transport = {other:?} is not a transport (\"file\" or \"smtp\")"
                ))
            }
        }
        if let Some(smtp) = &self.smtp {
            if smtp.tls && smtp.starttls {
                return Err(
                    "[smtp] tls = true (implicit TLS) and starttls = true exclude each other"
                        .into(),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for imap in &self.mailboxes {
            let table = imap.table();
            if imap.name.trim().is_empty() {
                return Err("[[mailbox]] needs a name".into());
            }
            if !names.insert(imap.name.as_str()) {
                return Err(format!("{table}: the name is used by another mailbox"));
            }
            if imap.batch_size == 0 {
                return Err(format!("{table} batch_size must be at least 1"));
            }
            for (key, value) in [
                ("timeout_secs", imap.timeout_secs),
                ("idle_renewal_secs", imap.idle_renewal_secs),
                ("max_fetch_attempts", u64::from(imap.max_fetch_attempts)),
                ("batch_max_bytes", imap.batch_max_bytes),
            ] {
                if value == 0 {
                    return Err(format!("{table} {key} must be at least 1"));
                }
            }
            if imap.password.is_none()
                && imap.xoauth2_token.is_none()
                && imap.xoauth2_command.is_none()
            {
                return Err(format!(
                    "{table} needs password, xoauth2_token or xoauth2_command"
                ));
            }
        }
        if self.outbound.claim_secs == 0 {
            return Err("[outbound] claim_secs must be at least 1".into());
        }
        if self.daemon.failover_secs == 0 {
            return Err("[daemon] failover_secs must be at least 1".into());
        }
        if let Some(listen) = &self.daemon.metrics_listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!(
                    "[daemon] metrics_listen = {listen:?} is not an address like 127.0.0.1:9187"
                ));
            }
        }
        let limits = &self.limits;
        for (key, value) in [
            ("max_message_bytes", limits.max_message_bytes),
            ("max_header_bytes", limits.max_header_bytes),
            ("max_header_fields", limits.max_header_fields as u64),
            ("max_mime_parts", limits.max_mime_parts as u64),
            ("max_mime_depth", limits.max_mime_depth as u64),
            ("max_html_elements", limits.max_html_elements as u64),
            ("max_comment_bytes", limits.max_comment_bytes as u64),
            ("max_full_text_bytes", limits.max_full_text_bytes as u64),
        ] {
            if value == 0 {
                return Err(format!("[limits] {key} must be at least 1"));
            }
        }
        if self.outbound.retry_max_age_hours <= 0 {
            return Err(format!(
                "[outbound] retry_max_age_hours = {} must be positive",
                self.outbound.retry_max_age_hours
            ));
        }
        let scheme = self.database.url.split(':').next().unwrap_or_default();
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err(format!(
                "[database] url = {:?} must start with sqlite:// or postgres://",
                self.database.url
            ));
        }
        if let Some(listen) = &self.web.listen {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!(
                    "[web] listen = {listen:?} is not an address like 127.0.0.1:8080"
                ));
            }
        }
        if self.web.max_upload_bytes == 0 || self.web.max_upload_files == 0 {
            return Err("[web] max_upload_bytes and max_upload_files must be at least 1".into());
        }
        if !self.web.base_url.starts_with("http://") && !self.web.base_url.starts_with("https://") {
            return Err(format!(
                "[web] base_url = {:?} must be an http(s) URL",
                self.web.base_url
            ));
        }
        Ok(())
    }

    /// Secrets may live outside the config: `"credential:NAME"` reads
    /// `$CREDENTIALS_DIRECTORY/NAME` (systemd's `LoadCredential=`), and
    /// `"file:PATH"` reads a file (relative to the config's directory).
    fn read_secrets(&mut self, config_dir: &Path) -> Result<(), String> {
        let mut secrets: Vec<(String, &mut String)> = vec![(
            "[security] token_secret".into(),
            &mut self.security.token_secret,
        )];
        for imap in &mut self.mailboxes {
            let table = imap.table();
            if let Some(password) = &mut imap.password {
                secrets.push((format!("{table} password"), password));
            }
            if let Some(token) = &mut imap.xoauth2_token {
                secrets.push((format!("{table} xoauth2_token"), token));
            }
        }
        if let Some(password) = self.smtp.as_mut().and_then(|s| s.password.as_mut()) {
            secrets.push(("[smtp] password".into(), password));
        }
        for (key, value) in secrets {
            let path = if let Some(name) = value.strip_prefix("credential:") {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    format!("{key} = \"{value}\" needs systemd's LoadCredential= ($CREDENTIALS_DIRECTORY is not set)")
                })?;
                Path::new(&dir).join(name)
            } else if let Some(file) = value.strip_prefix("file:") {
                config_dir.join(file)
            } else {
                continue;
            };
            let secret = std::fs::read_to_string(&path)
                .map_err(|e| format!("{key}: cannot read {} ({e})", path.display()))?;
            *value = secret.trim_end_matches(['\r', '\n']).to_string();
        }
        Ok(())
    }

    pub fn support(&self) -> SupportAddress {
        SupportAddress::parse(&self.mail.support_address).expect("validated at load")
    }

    /// The settings of the ticket rules.
    pub fn policy(&self) -> Policy {
        Policy {
            support: self.support(),
            signer: TokenSigner::new(&self.security.token_secret),
            base_url: self.web.base_url.trim_end_matches('/').to_string(),
            trusted_authserv_ids: self.security.trusted_authserv_ids.clone(),
            categories: self
                .categories
                .iter()
                .map(|(tag, category)| (tag.to_ascii_lowercase(), *category))
                .collect(),
            mailbox_category: None,
            emergency_markers: self.policy.emergency_markers.clone(),
            reopen_days: self.policy.reopen_days,
            agents_address: self.mail.agents_address.clone(),
            oncall_address: self.mail.oncall_address.clone(),
            default_locale: self.mail.default_locale.clone(),
        }
    }
}

/// `sqlite://relative.db` is relative to the config file, not to wherever
/// the daemon happens to be started.
fn resolve_database_url(url: &str, config_dir: &Path) -> String {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return url.to_string();
    };
    let rest = rest.trim_start_matches("//");
    if rest.starts_with(':') || rest.starts_with('/') {
        return url.to_string();
    }
    format!("sqlite://{}", config_dir.join(rest).display())
}

/// The commented configuration `ticketgate init` writes.
pub const SAMPLE: &str = r#"# ticketgate configuration. Relative paths are relative to this file.

[database]
# SQLite by default (a file, zero set-up); postgres://user@host/db for
# several instances sharing one database.
url = "sqlite://ticketgate.db"

[mail]
# Customers write here; plus-addressing (support+billing@…) selects a
# category and carries the reply tokens of our notifications.
support_address = "support@example.com"
# New tickets and customer replies are announced here.
agents_address = "team@example.com"
# Urgent tickets ([Notfall], [Emergency]) are announced here too.
oncall_address = "oncall@example.com"
# Language of mail to addresses outside the directory: "de" or "en".
default_locale = "de"
# Display name on outgoing mail.
from_name = "Support"

# [imap]                       # the mailbox `ticketgate run` reads
# host = "imap.example.com"
# port = 993
# tls = true
# username = "support@example.com"
# password = "…"               # or xoauth2_token / xoauth2_command
# mailbox = "INBOX"
# processed_mailbox = "Processed"   # without it: flagged \Seen, left in place
# idle = true                  # IDLE when offered, else poll every…
# poll_interval_secs = 30
# batch_size = 100
# batch_max_bytes = 8388608    # bytes fetched together at most
# timeout_secs = 30            # per step: connect, TLS, greeting, login, command
# idle_renewal_secs = 300      # IDLE is renewed this often
# max_fetch_attempts = 3       # then a message the server won't hand out is suspended
# category = "customer_support"  # what new tickets from this mailbox are
#
# More mailboxes: one [[mailbox]] table each, shaped like [imap], with a
# name; several instances on one PostgreSQL database share them out.
# [[mailbox]]
# name = "billing"
# category = "billing"
# host = "imap.example.com"
# username = "billing@example.com"
# password = "…"

[daemon]
outbox_interval_secs = 5
# metrics_listen = "127.0.0.1:9187"   # Prometheus text at /metrics
# log_format = "json"
# failover_secs = 30          # another instance takes over a silent one's mailbox

[outbound]
# "file" writes .eml files into `dir` (development); "smtp" uses [smtp].
transport = "file"
dir = "outbox"
# Automatic mails per recipient and hour; more are suppressed (loop brake).
rate_limit_per_hour = 20
# Temporary delivery failures are retried with back-off for this long.
retry_max_age_hours = 48
# A mail claimed by an instance that died is sent by another after this long.
# claim_secs = 300
# Templates in this directory replace the built-in ones of the same name
# (e.g. ticket_created.de.txt.hbs); they are checked at start-up.
# templates_dir = "templates"

# [smtp]
# host = "smtp.example.com"
# port = 587
# starttls = true          # or tls = true for implicit TLS (port 465)
# username = "…"
# password = "…"
# timeout_secs = 30
# ca_file = "ca.pem"       # trust a private CA besides the public roots

[web]
# Ticket links in notifications: {base_url}/tickets/{id}
base_url = "https://help.example.com"
# The help center, served by `run` and `serve` on this address (put a TLS
# proxy in front of it; cookies are Secure when base_url is https).
# listen = "127.0.0.1:8080"
# Files of one request or comment, in all and how many.
# max_upload_bytes = 20971520
# max_upload_files = 10

[security]
# Signs reply tokens and rating links. Change it, and keep it secret.
token_secret = "change-me"
# Authentication-Results from these servers are believed (DMARC/SPF/DKIM).
trusted_authserv_ids = ["mx.example.com"]

[policy]
# A solved ticket reopens on a reply within this many days; later it is
# closed and a reply opens a follow-up ticket.
reopen_days = 14
emergency_markers = ["[Notfall]", "Notfall:", "[Emergency]"]

[storage]
# Attachments are stored under {data_dir}/attachments, by content hash.
data_dir = "data"

[limits]
# What one message may cost at most (mail comes from the whole internet).
# Beyond a limit it is suspended as over_limit, or loses what is in excess
# with a note on its comment.
max_message_bytes = 26214400   # larger ones: suspended from their headers
max_header_bytes = 262144
max_header_fields = 1000
max_references = 50            # the newest ones are used for threading
max_mime_parts = 500
max_mime_depth = 20
max_attachments = 50           # more are dropped, with a note
max_attachment_bytes = 26214400
max_html_elements = 20000      # more: converted by a plain tag stripper
max_comment_bytes = 1048576    # the reply kept as the comment
max_full_text_bytes = 4194304  # the whole text kept beside it

[categories]
# plus-address tag = category
billing = "billing"
onboarding = "onboarding_csm"
dev = "developer_support"
partner = "partner_custom_code"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_valid_and_resolves_paths() {
        let settings = Settings::parse(SAMPLE, Path::new("/etc/tg")).unwrap();
        assert_eq!(settings.database.url, "sqlite:///etc/tg/ticketgate.db");
        assert_eq!(settings.outbound.dir, PathBuf::from("/etc/tg/outbox"));
        assert_eq!(settings.policy.reopen_days, 14);
        assert_eq!(settings.categories.get("billing"), Some(&Category::Billing));
        assert_eq!(settings.categories.get("whatever"), None);
    }

    #[test]
    fn secrets_can_be_read_from_files_beside_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "a-long-random-secret-value\n").unwrap();
        let text = SAMPLE.replace(
            "token_secret = \"change-me\"",
            "token_secret = \"file:secret\"",
        );
        let settings = Settings::parse(&text, dir.path()).unwrap();
        assert_eq!(settings.security.token_secret, "a-long-random-secret-value");
        let missing = SAMPLE.replace(
            "token_secret = \"change-me\"",
            "token_secret = \"file:nope\"",
        );
        let err = Settings::parse(&missing, dir.path()).unwrap_err();
        assert!(
            err.contains("[security] token_secret") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let minimal =
            "[mail]\nsupport_address = \"support@example.com\"\n[security]\ntoken_secret = \"x\"\n";
        assert!(Settings::parse(minimal, Path::new(".")).is_ok());

        let bad_address = minimal.replace("support@example.com", "support");
        let err = Settings::parse(&bad_address, Path::new(".")).unwrap_err();
        assert!(err.contains("support_address"), "{err}");

        let bad_category = format!("{minimal}[categories]\nbilling = \"money\"\n");
        let err = Settings::parse(&bad_category, Path::new(".")).unwrap_err();
        assert!(err.contains("billing") && err.contains("money"), "{err}");

        let unknown_key = format!("{minimal}[policy]\nreopen_dayz = 3\n");
        let err = Settings::parse(&unknown_key, Path::new(".")).unwrap_err();
        assert!(err.contains("reopen_dayz"), "{err}");

        let missing = "[mail]\nsupport_address = \"support@example.com\"\n";
        let err = Settings::parse(missing, Path::new(".")).unwrap_err();
        assert!(err.contains("security"), "{err}");
    }

    #[test]
    fn imap_is_the_default_mailbox_and_mailbox_tables_add_more() {
        let base =
            "[mail]\nsupport_address = \"support@example.com\"\n[security]\ntoken_secret = \"x\"\n";
        let imap =
            "[imap]\nhost = \"imap.example.com\"\nusername = \"support\"\npassword = \"p\"\n";
        let billing = "[[mailbox]]\nname = \"billing\"\ncategory = \"billing\"\nhost = \"imap.example.com\"\nusername = \"billing\"\npassword = \"p\"\nca_file = \"ca.pem\"\n";
        let settings =
            Settings::parse(&format!("{base}{imap}{billing}"), Path::new("/etc/tg")).unwrap();
        let names: Vec<&str> = settings.mailboxes.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["default", "billing"]);
        let (default, billing_box) = (&settings.mailboxes[0], &settings.mailboxes[1]);
        assert_eq!(default.category, None);
        assert_eq!(billing_box.category, Some(Category::Billing));
        assert_eq!(billing_box.ca_file, Some(PathBuf::from("/etc/tg/ca.pem")));
        // Positions: the default mailbox's as before several existed.
        assert_eq!(default.state_key(), "INBOX");
        assert_eq!(billing_box.state_key(), "billing/INBOX");
        assert_eq!(settings.daemon.failover_secs, 30);

        let twice = format!("{base}{billing}{billing}");
        let err = Settings::parse(&twice, Path::new(".")).unwrap_err();
        assert!(
            err.contains("[[mailbox]] \"billing\"") && err.contains("another"),
            "{err}"
        );
        let unnamed = format!(
            "{base}{}",
            billing.replace("[[mailbox]]\nname = \"billing\"\n", "[[mailbox]]\n")
        );
        let err = Settings::parse(&unnamed, Path::new(".")).unwrap_err();
        assert!(err.contains("needs a name"), "{err}");
        let no_password = format!("{base}{}", billing.replace("password = \"p\"\n", ""));
        let err = Settings::parse(&no_password, Path::new(".")).unwrap_err();
        assert!(
            err.contains("[[mailbox]] \"billing\" needs password"),
            "{err}"
        );
        let bad_category = format!(
            "{base}{}",
            billing.replace("category = \"billing\"", "category = \"money\"")
        );
        let err = Settings::parse(&bad_category, Path::new(".")).unwrap_err();
        assert!(err.contains("money"), "{err}");
    }

    #[test]
    fn absolute_and_memory_databases_stay_as_given() {
        assert_eq!(
            resolve_database_url("sqlite:///var/tg.db", Path::new("/x")),
            "sqlite:///var/tg.db"
        );
        assert_eq!(
            resolve_database_url("sqlite::memory:", Path::new("/x")),
            "sqlite::memory:"
        );
        assert_eq!(
            resolve_database_url("postgres://localhost/tg", Path::new("/x")),
            "postgres://localhost/tg"
        );
    }
}
