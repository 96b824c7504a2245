//! The pipeline (SPEC section 2): one raw message in, one committed outcome
//! out. Every database effect of a message happens on the connection it is
//! given, so the caller decides the transaction; nothing is sent here, only
//! queued in the outbox.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::blobs::{self, BlobStore};
use crate::config::Settings;
use crate::domain::classify::{classify, MachineMail};
use crate::domain::mail::InboundMail;
use crate::domain::sender::{is_spoofed, Person, Role};
use crate::domain::thread::{thread_hints, SupportAddress, TokenSigner};
use crate::domain::ticket::Status;
use crate::inbound::parse::parse;
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

/// What the pure steps make of the raw bytes, before any database work.
struct Prepared {
    message_id: String,
    mail: Option<InboundMail>,
    /// Why there is no mail, when there is none.
    failure: &'static str,
    reply: String,
    full_text: String,
}

impl Prepared {
    /// Parses and extracts; a panic in either (a bug, never the sender's
    /// fault) leaves a message without mail, which is suspended.
    fn new(raw: &[u8]) -> Prepared {
        catch_unwind(AssertUnwindSafe(|| Prepared::parse(raw))).unwrap_or_else(|_| Prepared {
            message_id: hashed_message_id(raw),
            mail: None,
            failure: "the message could not be parsed",
            reply: String::new(),
            full_text: String::new(),
        })
    }

    fn parse(raw: &[u8]) -> Prepared {
        let mail = parse(raw);
        let message_id = mail
            .as_ref()
            .and_then(|m| m.message_id.clone())
            .filter(|id| id.len() > 2)
            .unwrap_or_else(|| hashed_message_id(raw));
        let (reply, full_text) = match &mail {
            Some(InboundMail {
                text: Some(text), ..
            }) => (reply::extract_reply(text), text.clone()),
            Some(InboundMail {
                html: Some(html), ..
            }) => (reply::extract_reply_html(html), reply::html_to_text(html)),
            _ => (String::new(), String::new()),
        };
        Prepared {
            message_id,
            mail,
            failure: "not a mail message (no header section)",
            reply,
            full_text,
        }
    }
}

/// A message without Message-ID is known by the hash of its bytes, so the
/// same file ingested twice is still a duplicate.
pub fn hashed_message_id(raw: &[u8]) -> String {
    format!("<{}@sha256.ticketgate>", blobs::hex(&Sha256::digest(raw)))
}

/// What one batch of messages knows beyond the database, and the records it
/// writes at its end: every statement is a round trip, so lookups that the
/// batch can answer itself are not asked of the database.
#[derive(Default)]
struct Batch {
    /// Message-IDs processed before or earlier in this batch.
    known: HashSet<String>,
    people: HashMap<String, Option<Person>>,
    records: Vec<store::messages::Record>,
}

impl Batch {
    async fn prefetch(conn: &mut Conn, prepared: &[Prepared]) -> Result<Batch, sqlx::Error> {
        let ids: Vec<&str> = prepared.iter().map(|p| p.message_id.as_str()).collect();
        let known = store::messages::known_among(conn, &ids).await?;
        Ok(Batch {
            known: known.into_iter().collect(),
            ..Default::default()
        })
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

    fn record(&mut self, report: &Report) {
        self.records.extend(record_of(report));
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
        let prepared: Vec<Prepared> = raws.iter().map(|raw| Prepared::new(raw)).collect();
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
            batch.record(&report);
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

    /// Suspends a message the mailbox did not hand out whole (too large,
    /// or unreadable on the server) from what could be read: its header
    /// section, or nothing at all. It is known by `key` (its place in the
    /// mailbox), not by its Message-ID, so that a whole copy arriving later
    /// is processed as usual; the same key twice is a duplicate.
    pub async fn suspend_held_back(
        &self,
        store: &store::Store,
        key: &str,
        headers: Option<&[u8]>,
        reason: Reason,
        detail: &str,
        now: i64,
    ) -> Result<Report, PipelineError> {
        let mail = headers.and_then(|h| Prepared::new(h).mail);
        let mut tx = store.begin().await?;
        if !store::messages::known_among(&mut tx, &[key])
            .await?
            .is_empty()
        {
            return Ok(Report::new(key, Outcome::Duplicate));
        }
        let raw = headers.unwrap_or_default();
        let report = suspend(&mut tx, key, mail.as_ref(), raw, reason, Some(detail), now).await?;
        let record: Vec<_> = record_of(&report).into_iter().collect();
        store::messages::record_all(&mut tx, &record, now).await?;
        tx.commit().await?;
        Ok(report)
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

        let prepared = Prepared::new(raw);
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
        batch.record(&report);
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
        let record: Vec<_> = record_of(&report).into_iter().collect();
        store::messages::record_all(conn, &record, now).await?;
        Ok(report)
    }

    async fn apply(
        &self,
        conn: &mut Conn,
        batch: &mut Batch,
        prepared: &Prepared,
        raw: &[u8],
        now: i64,
        delivery: Delivery,
    ) -> Result<Report, PipelineError> {
        let message_id = prepared.message_id.as_str();
        if !batch.known.insert(message_id.to_string()) && delivery == Delivery::Fresh {
            return Ok(Report::new(message_id, Outcome::Duplicate));
        }
        let Some(mail) = &prepared.mail else {
            let detail = Some(prepared.failure);
            return Ok(suspend(
                conn,
                message_id,
                None,
                raw,
                Reason::ProcessingError,
                detail,
                now,
            )
            .await?);
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

        if is_spoofed(mail, &self.settings.security.trusted_authserv_ids) {
            return Ok(suspend(
                conn,
                message_id,
                Some(mail),
                raw,
                Reason::SpoofSuspected,
                None,
                now,
            )
            .await?);
        }

        let person = match &mail.from {
            Some(from) => batch.person(conn, from).await?,
            None => None,
        };
        let Some(person) = person else {
            return Ok(suspend(
                conn,
                message_id,
                Some(mail),
                raw,
                Reason::UnknownSender,
                None,
                now,
            )
            .await?);
        };
        if person.role == Role::Member {
            let report = suspend(
                conn,
                message_id,
                Some(mail),
                raw,
                Reason::NotKeyUser,
                None,
                now,
            )
            .await?;
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

        let hints = thread_hints(mail, &self.support, &self.signer);
        let ticket = self.find_ticket(conn, &hints, &person).await?;
        let inbound = Inbound {
            message_id,
            mail,
            person: &person,
            hints: &hints,
            body: &prepared.reply,
            full_text: &prepared.full_text,
            now,
        };
        match (person.role, ticket) {
            (Role::Agent, Some(ticket)) => self.agent_writes(conn, &inbound, ticket).await,
            (_, Some(ticket)) => self.customer_writes(conn, &inbound, ticket).await,
            (_, None) => self.open_ticket(conn, &inbound, None).await,
        }
    }
}

/// The processing log entry of a report; duplicates leave none.
fn record_of(report: &Report) -> Option<store::messages::Record> {
    (report.outcome != Outcome::Duplicate).then(|| store::messages::Record {
        message_id: report.message_id.clone(),
        outcome: report.outcome.as_str(),
        reason: report.reason.map(Reason::as_str),
        ticket_id: report.ticket,
    })
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
