//! The pipeline (SPEC section 2): one raw message in, one committed outcome
//! out. Every database effect of a message happens on the connection it is
//! given, so the caller decides the transaction; nothing is sent here, only
//! queued in the outbox.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::blobs::{self, BlobStore};
use crate::config::{LimitsSettings, Settings};
use crate::domain::classify::{classify, MachineMail};
use crate::domain::mail::InboundMail;
use crate::domain::sender::{authenticate, Distrust, Person, Role};
use crate::domain::thread::{thread_hints, SupportAddress, TokenSigner};
use crate::domain::ticket::Status;
use crate::inbound::parse;
use crate::outbound::enqueue::{Event, Notifications, Recipient, Topic};
use crate::reply;
use crate::store::{self, Conn};

mod apply;

use apply::Inbound;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Appended,
    Reopened,
    Followup,
    Suspended,
    Ignored,
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Appended => "appended",
            Outcome::Reopened => "reopened",
            Outcome::Followup => "followup",
            Outcome::Suspended => "suspended",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    SpoofSuspected,
    AmbiguousSender,
    NotKeyUser,
    UnknownSender,
    AutoReply,
    Bounce,
    Loop,
    OverLimit,
    Unreadable,
    ProcessingError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SpoofSuspected => "spoof_suspected",
            Reason::AmbiguousSender => "ambiguous_sender",
            Reason::NotKeyUser => "not_key_user",
            Reason::UnknownSender => "unknown_sender",
            Reason::AutoReply => "auto_reply",
            Reason::Bounce => "bounce",
            Reason::Loop => "loop",
            Reason::OverLimit => "over_limit",
            Reason::Unreadable => "unreadable",
            Reason::ProcessingError => "processing_error",
        }
    }
}

/// One `ingest --json` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub message_id: String,
    pub outcome: Outcome,
    pub ticket: Option<i64>,
    pub status: Option<&'static str>,
    pub reason: Option<Reason>,
    pub followup_of: Option<i64>,
}

impl Report {
    fn new(message_id: &str, outcome: Outcome) -> Self {
        Report {
            message_id: message_id.to_string(),
            outcome,
            ticket: None,
            status: None,
            reason: None,
            followup_of: None,
        }
    }

    fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    fn on_ticket(mut self, ticket: i64, status: Status) -> Self {
        self.ticket = Some(ticket);
        self.status = Some(status.as_str());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("attachment storage: {0}")]
    Storage(#[from] std::io::Error),
}

/// Whether a message comes fresh from a mailbox or back from the suspended
/// queue (then it is not a duplicate of its own earlier record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Fresh,
    Released,
}

/// What the pure first steps make of the raw bytes, before any database
/// work: the parsed mail and the keys it is known by. Reply extraction (the
/// expensive part) waits until the gates let the message through.
struct Prepared {
    message_id: String,
    /// What makes two copies of a message the same one: sender, subject,
    /// text and attachments (or the raw bytes, when there is no mail).
    fingerprint: String,
    mail: Option<InboundMail>,
    /// Why there is no mail, when there is none.
    failure: &'static str,
    /// Why the message goes to the suspended queue whatever it says: a
    /// limit it exceeds, or the mailbox not handing it out whole.
    held: Option<(Reason, String)>,
}

impl Prepared {
    /// Checks the header section and parses; a panic (a bug, never the
    /// sender's fault) leaves a message without mail, which is suspended.
    fn new(raw: &[u8], limits: &LimitsSettings) -> Prepared {
        catch_unwind(AssertUnwindSafe(|| Prepared::parse(raw, limits))).unwrap_or_else(|_| {
            Prepared {
                message_id: hashed_message_id(raw),
                fingerprint: blobs::hex(&Sha256::digest(raw)),
                mail: None,
                failure: "the message could not be parsed",
                held: None,
            }
        })
    }

    fn parse(raw: &[u8], limits: &LimitsSettings) -> Prepared {
        let unparsed = |held: Option<(Reason, String)>| Prepared {
            message_id: hashed_message_id(raw),
            fingerprint: blobs::hex(&Sha256::digest(raw)),
            mail: None,
            failure: "not a mail message (no header section)",
            held,
        };
        if let Err(detail) = parse::check_header_section(raw, limits) {
            return unparsed(Some((Reason::OverLimit, detail)));
        }
        let Some(mail) = parse::parse(raw, limits) else {
            return unparsed(None);
        };
        let message_id = mail
            .message_id
            .clone()
            .filter(|id| id.len() > 2)
            .unwrap_or_else(|| hashed_message_id(raw));
        Prepared {
            message_id,
            fingerprint: fingerprint(&mail),
            held: mail.over_limit.clone().map(|d| (Reason::OverLimit, d)),
            mail: Some(mail),
            failure: "",
        }
    }

    /// A message the source did not hand out whole, known by `key`; its
    /// header section (if any) names sender and subject for the queue.
    fn held_back(
        key: &str,
        fingerprint: &str,
        headers: Option<&[u8]>,
        reason: Reason,
        detail: &str,
        limits: &LimitsSettings,
    ) -> Prepared {
        Prepared {
            message_id: key.to_string(),
            fingerprint: fingerprint.to_string(),
            mail: headers.and_then(|h| parse::parse(h, limits)),
            failure: "",
            held: Some((reason, detail.to_string())),
        }
    }
}

fn fingerprint(mail: &InboundMail) -> String {
    let mut hash = Sha256::new();
    for part in [
        mail.from.as_deref().unwrap_or_default(),
        mail.subject.as_str(),
        mail.text.as_deref().unwrap_or_default(),
        mail.html.as_deref().unwrap_or_default(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for attachment in &mail.attachments {
        hash.update(attachment.sha256.as_bytes());
    }
    blobs::hex(&hash.finalize())
}

/// A message without Message-ID is known by the hash of its bytes, so the
/// same file ingested twice is still a duplicate.
pub fn hashed_message_id(raw: &[u8]) -> String {
    format!("<{}@sha256.ticketgate>", blobs::hex(&Sha256::digest(raw)))
}

/// The text a message adds: the reply as the comment, the whole text beside
/// it, each within its limit, with a note on what was left out.
struct Extracted {
    body: String,
    full_text: String,
}

fn extract(mail: &InboundMail, limits: &LimitsSettings) -> Extracted {
    // The text is cut first: what lies beyond the kept text is not looked
    // at, so a giant body costs no more than the limit.
    let cut_note = |text: &mut String| {
        if cut_to(text, limits.max_full_text_bytes) {
            text.push_str(&format!(
                "\n\n[ticketgate: cut at {} bytes ([limits] max_full_text_bytes)]",
                limits.max_full_text_bytes
            ));
        }
    };
    let (mut body, full_text) = match (&mail.text, &mail.html) {
        (Some(text), _) => {
            let mut full_text = text.clone();
            cut_note(&mut full_text);
            (reply::extract_reply(&full_text), full_text)
        }
        (None, Some(html)) => {
            let html = reply::extract_html(html, limits.max_html_elements);
            let mut full_text = html.full_text;
            cut_note(&mut full_text);
            (html.reply, full_text)
        }
        _ => (String::new(), String::new()),
    };
    if cut_to(&mut body, limits.max_comment_bytes) {
        body.push_str(&format!(
            "\n\n[ticketgate: the reply was cut at {} bytes ([limits] max_comment_bytes); the original text keeps more]",
            limits.max_comment_bytes
        ));
    }
    if !mail.dropped_attachments.is_empty() {
        body.push_str(&format!(
            "\n\n[ticketgate: {} attachment(s) not kept, beyond [limits] max_attachments = {} or max_attachment_bytes = {}: {}]",
            mail.dropped_attachments.len(),
            limits.max_attachments,
            limits.max_attachment_bytes,
            dropped_list(&mail.dropped_attachments)
        ));
    }
    Extracted { body, full_text }
}

/// Cuts `text` to at most `max` bytes at a character boundary; whether it
/// was longer.
fn cut_to(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// The first few dropped attachments by name; a count for the rest.
fn dropped_list(dropped: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut list = dropped[..dropped.len().min(SHOWN)].join(", ");
    if dropped.len() > SHOWN {
        list.push_str(&format!(" and {} more", dropped.len() - SHOWN));
    }
    list
}

/// What one batch of messages knows beyond the database, and the records it
/// writes at its end: every statement is a round trip, so lookups that the
/// batch can answer itself are not asked of the database.
#[derive(Default)]
struct Batch {
    /// Dedup keys processed before or earlier in this batch, with the
    /// fingerprint they were processed with (none for records written before
    /// fingerprints were kept).
    known: HashMap<String, Option<String>>,
    people: HashMap<String, Option<Person>>,
    records: Vec<store::messages::Record>,
}

/// Under which key a message is recorded, and whether it was seen before.
struct DedupKey {
    key: String,
    seen: bool,
}

/// A second key for a message whose Message-ID was taken by another
/// message: the Message-ID with its fingerprint.
fn collision_key(message_id: &str, fingerprint: &str) -> String {
    format!("{message_id}#{}", &fingerprint[..16])
}

impl Batch {
    async fn prefetch(conn: &mut Conn, prepared: &[Prepared]) -> Result<Batch, sqlx::Error> {
        let collision_keys: Vec<String> = prepared
            .iter()
            .map(|p| collision_key(&p.message_id, &p.fingerprint))
            .collect();
        let keys: Vec<&str> = prepared
            .iter()
            .map(|p| p.message_id.as_str())
            .chain(collision_keys.iter().map(String::as_str))
            .collect();
        let known = store::messages::known_among(conn, &keys).await?;
        Ok(Batch {
            known: known.into_iter().collect(),
            ..Default::default()
        })
    }

    /// A message is a duplicate when its Message-ID was processed with the
    /// same fingerprint. The same Message-ID with another sender or content
    /// (a reused or predictable ID) is another message, recorded under a key
    /// of its own: it must not swallow a stranger's mail.
    fn dedup(&mut self, prepared: &Prepared) -> DedupKey {
        let (id, fingerprint) = (&prepared.message_id, &prepared.fingerprint);
        let second = collision_key(id, fingerprint);
        if self.known.contains_key(&second) {
            return DedupKey {
                key: second,
                seen: true,
            };
        }
        match self.known.get(id) {
            None => {
                self.known.insert(id.clone(), Some(fingerprint.clone()));
                DedupKey {
                    key: id.clone(),
                    seen: false,
                }
            }
            Some(None) => DedupKey {
                key: id.clone(),
                seen: true,
            },
            Some(Some(seen)) if seen == fingerprint => DedupKey {
                key: id.clone(),
                seen: true,
            },
            Some(Some(_)) => {
                tracing::warn!(
                    message_id = %id,
                    "a message with this Message-ID but another sender or content was processed before; this one is processed as a message of its own"
                );
                self.known.insert(second.clone(), Some(fingerprint.clone()));
                DedupKey {
                    key: second,
                    seen: false,
                }
            }
        }
    }

    async fn person(
        &mut self,
        conn: &mut Conn,
        email: &str,
    ) -> Result<Option<Person>, sqlx::Error> {
        if let Some(person) = self.people.get(email) {
            return Ok(person.clone());
        }
        let person = store::directory::person_by_email(conn, email).await?;
        self.people.insert(email.to_string(), person.clone());
        Ok(person)
    }

    fn record(&mut self, key: &str, fingerprint: Option<&str>, report: &Report) {
        self.records.extend(record_of(key, fingerprint, report));
    }
}

/// The pipeline with its settings; cheap to build once per run.
pub struct Pipeline {
    settings: Settings,
    support: SupportAddress,
    signer: TokenSigner,
    blobs: BlobStore,
}

impl Pipeline {
    pub fn new(settings: &Settings) -> Self {
        Pipeline {
            support: settings.support(),
            signer: TokenSigner::new(&settings.security.token_secret),
            blobs: BlobStore::new(settings.storage.data_dir.join("attachments")),
            settings: settings.clone(),
        }
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// Processes `raws` in one transaction: one durable commit for the
    /// batch. The reports count only once this returns. If the batch fails
    /// (one message trips the database or the attachment store), it is
    /// rolled back and its messages are committed one by one, so the bad
    /// one is suspended as `processing_error` and the others go in. Fails
    /// only when even that is impossible (the database is gone).
    pub async fn process_batch(
        &self,
        store: &store::Store,
        raws: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<Report>, PipelineError> {
        let limits = &self.settings.limits;
        let prepared: Vec<Prepared> = raws.iter().map(|raw| Prepared::new(raw, limits)).collect();
        match self.commit(store, raws, &prepared, now).await {
            Ok(reports) => Ok(reports),
            Err(error) => {
                tracing::warn!(%error, messages = raws.len(), "batch failed; committing its messages one by one");
                let mut reports = Vec::with_capacity(raws.len());
                for (raw, prepared) in raws.iter().zip(&prepared) {
                    reports.push(self.commit_alone(store, raw, prepared, now).await?);
                }
                Ok(reports)
            }
        }
    }

    async fn commit(
        &self,
        store: &store::Store,
        raws: &[Vec<u8>],
        prepared: &[Prepared],
        now: i64,
    ) -> Result<Vec<Report>, PipelineError> {
        let mut tx = store.begin().await?;
        let mut batch = Batch::prefetch(&mut tx, prepared).await?;
        let mut reports = Vec::with_capacity(raws.len());
        for (raw, prepared) in raws.iter().zip(prepared) {
            let report = self
                .apply(&mut tx, &mut batch, prepared, raw, now, Delivery::Fresh)
                .await?;
            reports.push(report);
        }
        store::messages::record_all(&mut tx, &batch.records, now).await?;
        tx.commit().await?;
        Ok(reports)
    }

    async fn commit_alone(
        &self,
        store: &store::Store,
        raw: &[u8],
        prepared: &Prepared,
        now: i64,
    ) -> Result<Report, PipelineError> {
        let raws = [raw.to_vec()];
        match self
            .commit(store, &raws, std::slice::from_ref(prepared), now)
            .await
        {
            Ok(mut reports) => Ok(reports.remove(0)),
            Err(error) => {
                tracing::warn!(message_id = %prepared.message_id, %error, "processing failed; suspending");
                let mut tx = store.begin().await?;
                let report = self
                    .suspend_failed(&mut tx, prepared, raw, &error.to_string(), now)
                    .await?;
                tx.commit().await?;
                Ok(report)
            }
        }
    }

    /// Suspends a message the source did not hand out whole (too large,
    /// or unreadable on the server) from what could be read: its header
    /// section (cut to `max_header_bytes`), or nothing at all. It is known
    /// by `key` and `fingerprint` like any message: the same pair again is a
    /// duplicate, while a whole copy arriving later is processed as usual.
    #[allow(clippy::too_many_arguments)]
    pub async fn suspend_held_back(
        &self,
        store: &store::Store,
        key: &str,
        fingerprint: &str,
        headers: Option<&[u8]>,
        reason: Reason,
        detail: &str,
        now: i64,
    ) -> Result<Report, PipelineError> {
        let limits = &self.settings.limits;
        let headers = headers.map(|h| &h[..h.len().min(limits.max_header_bytes as usize)]);
        let prepared = Prepared::held_back(key, fingerprint, headers, reason, detail, limits);
        let raws = [headers.unwrap_or_default().to_vec()];
        let mut reports = self
            .commit(store, &raws, std::slice::from_ref(&prepared), now)
            .await?;
        Ok(reports.remove(0))
    }

    /// Suspends a message too large to read whole (`ingest`), from its
    /// header section. Known by its Message-ID with a fingerprint of its
    /// headers and size: the same message again is a duplicate.
    pub async fn suspend_oversized(
        &self,
        store: &store::Store,
        headers: &[u8],
        size: u64,
        now: i64,
    ) -> Result<Report, PipelineError> {
        let limits = &self.settings.limits;
        let key = parse::parse(headers, limits)
            .and_then(|m| m.message_id)
            .filter(|id| id.len() > 2)
            .unwrap_or_else(|| hashed_message_id(headers));
        let mut hash = Sha256::new();
        hash.update(headers);
        hash.update(size.to_be_bytes());
        let fingerprint = blobs::hex(&hash.finalize());
        let detail = format!(
            "message of {size} bytes exceeds [limits] max_message_bytes = {}",
            limits.max_message_bytes
        );
        self.suspend_held_back(
            store,
            &key,
            &fingerprint,
            Some(headers),
            Reason::OverLimit,
            &detail,
            now,
        )
        .await
    }

    /// Removes temporary attachment files an interrupted run left behind.
    pub fn remove_leftovers(&self) -> usize {
        self.blobs.remove_leftovers()
    }

    /// Processes one message on `conn` (the caller's transaction) inside a
    /// savepoint, for `suspended release`: a failure suspends it again as
    /// `processing_error`.
    pub async fn process_one(
        &self,
        conn: &mut Conn,
        raw: &[u8],
        now: i64,
        delivery: Delivery,
    ) -> Result<Report, PipelineError> {
        use sqlx::Connection;

        let prepared = Prepared::new(raw, &self.settings.limits);
        let mut batch = Batch::prefetch(conn, std::slice::from_ref(&prepared)).await?;
        let mut savepoint = conn.begin().await?;
        let report = match self
            .apply(&mut savepoint, &mut batch, &prepared, raw, now, delivery)
            .await
        {
            Ok(report) => {
                savepoint.commit().await?;
                report
            }
            Err(error) => {
                savepoint.rollback().await?;
                return self
                    .suspend_failed(conn, &prepared, raw, &error.to_string(), now)
                    .await;
            }
        };
        store::messages::record_all(conn, &batch.records, now).await?;
        Ok(report)
    }

    async fn suspend_failed(
        &self,
        conn: &mut Conn,
        prepared: &Prepared,
        raw: &[u8],
        detail: &str,
        now: i64,
    ) -> Result<Report, PipelineError> {
        let report = suspend(
            conn,
            &prepared.message_id,
            prepared.mail.as_ref(),
            raw,
            Reason::ProcessingError,
            Some(detail),
            now,
        )
        .await?;
        let record = record_of(&prepared.message_id, Some(&prepared.fingerprint), &report);
        store::messages::record_all(conn, &Vec::from_iter(record), now).await?;
        Ok(report)
    }

    /// One message through the gates and the ticket rules, recorded in
    /// `batch` under its dedup key.
    async fn apply(
        &self,
        conn: &mut Conn,
        batch: &mut Batch,
        prepared: &Prepared,
        raw: &[u8],
        now: i64,
        delivery: Delivery,
    ) -> Result<Report, PipelineError> {
        let DedupKey { key, seen } = batch.dedup(prepared);
        if seen && delivery == Delivery::Fresh {
            return Ok(Report::new(&prepared.message_id, Outcome::Duplicate));
        }
        let report = self.decide(conn, batch, prepared, raw, now).await?;
        batch.record(&key, Some(&prepared.fingerprint), &report);
        Ok(report)
    }

    /// The gates, cheapest first, all decided from the headers (and the
    /// directory) before any body is extracted or converted, so that a
    /// stranger's mail costs almost nothing; then the reply and the rules.
    async fn decide(
        &self,
        conn: &mut Conn,
        batch: &mut Batch,
        prepared: &Prepared,
        raw: &[u8],
        now: i64,
    ) -> Result<Report, PipelineError> {
        let message_id = prepared.message_id.as_str();
        let held = Held {
            message_id,
            mail: prepared.mail.as_ref(),
            raw,
            now,
        };
        if let Some((reason, detail)) = &prepared.held {
            return Ok(held.suspend(conn, *reason, Some(detail)).await?);
        }
        let Some(mail) = &prepared.mail else {
            let detail = Some(prepared.failure);
            return Ok(held.suspend(conn, Reason::ProcessingError, detail).await?);
        };

        if let Some(machine) = classify(mail) {
            let reason = match machine {
                MachineMail::Loop => Reason::Loop,
                MachineMail::AutoReply => Reason::AutoReply,
                MachineMail::Bounce { refers_to } => {
                    let note = format!("bounce {message_id}");
                    for id in &refers_to {
                        store::outbox::mark_bounced(conn, id, &note).await?;
                    }
                    Reason::Bounce
                }
            };
            return Ok(Report::new(message_id, Outcome::Ignored).with_reason(reason));
        }

        match authenticate(mail, &self.settings.security.trusted_authserv_ids) {
            Some(Distrust::Spoofed) => {
                return Ok(held.suspend(conn, Reason::SpoofSuspected, None).await?);
            }
            Some(Distrust::Ambiguous(why)) => {
                return Ok(held
                    .suspend(conn, Reason::AmbiguousSender, Some(&why))
                    .await?);
            }
            None => {}
        }

        let person = match &mail.from {
            Some(from) => batch.person(conn, from).await?,
            None => None,
        };
        let Some(person) = person else {
            return Ok(held.suspend(conn, Reason::UnknownSender, None).await?);
        };
        if person.role == Role::Member {
            let report = held.suspend(conn, Reason::NotKeyUser, None).await?;
            let mut notice = Notifications::default();
            notice.add(Event::NotKeyUser, Recipient::person(&person), None);
            let topic = Topic::Message {
                subject: &mail.subject,
            };
            notice
                .enqueue(
                    conn,
                    &self.support,
                    topic,
                    &[message_id.to_string()],
                    None,
                    now,
                )
                .await?;
            return Ok(report);
        }

        // Extraction is the expensive part; a panic in it is a bug in
        // ticketgate, and the message is kept for an operator.
        let limits = &self.settings.limits;
        let Ok(extracted) = catch_unwind(AssertUnwindSafe(|| extract(mail, limits))) else {
            let detail = Some("the reply could not be extracted");
            return Ok(held.suspend(conn, Reason::ProcessingError, detail).await?);
        };
        let hints = thread_hints(mail, &self.support, &self.signer);
        let ticket = self.find_ticket(conn, &hints, &person).await?;
        let inbound = Inbound {
            message_id,
            mail,
            person: &person,
            hints: &hints,
            body: &extracted.body,
            full_text: &extracted.full_text,
            now,
        };
        match (person.role, ticket) {
            (Role::Agent, Some(ticket)) => self.agent_writes(conn, &inbound, ticket).await,
            (_, Some(ticket)) => self.customer_writes(conn, &inbound, ticket).await,
            (_, None) => self.open_ticket(conn, &inbound, None).await,
        }
    }
}

/// The processing log entry of a report, under its dedup key; duplicates
/// leave none.
fn record_of(
    key: &str,
    fingerprint: Option<&str>,
    report: &Report,
) -> Option<store::messages::Record> {
    (report.outcome != Outcome::Duplicate).then(|| store::messages::Record {
        message_id: key.to_string(),
        fingerprint: fingerprint.map(str::to_string),
        outcome: report.outcome.as_str(),
        reason: report.reason.map(Reason::as_str),
        ticket_id: report.ticket,
    })
}

/// A message on its way to the suspended queue, should a gate stop it.
struct Held<'a> {
    message_id: &'a str,
    mail: Option<&'a InboundMail>,
    raw: &'a [u8],
    now: i64,
}

impl Held<'_> {
    async fn suspend(
        &self,
        conn: &mut Conn,
        reason: Reason,
        detail: Option<&str>,
    ) -> Result<Report, sqlx::Error> {
        suspend(
            conn,
            self.message_id,
            self.mail,
            self.raw,
            reason,
            detail,
            self.now,
        )
        .await
    }
}

/// Keeps the message whole in the suspended queue.
async fn suspend(
    conn: &mut Conn,
    message_id: &str,
    mail: Option<&InboundMail>,
    raw: &[u8],
    reason: Reason,
    detail: Option<&str>,
    now: i64,
) -> Result<Report, sqlx::Error> {
    store::suspended::insert(
        conn,
        store::suspended::NewSuspended {
            message_id,
            reason: reason.as_str(),
            detail,
            sender: mail.and_then(|m| m.from.as_deref()),
            subject: mail.map(|m| m.subject.as_str()).unwrap_or_default(),
            raw,
            now,
        },
    )
    .await?;
    Ok(Report::new(message_id, Outcome::Suspended).with_reason(reason))
}
