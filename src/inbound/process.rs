//! The pipeline (SPEC section 2), for a batch of raw messages: parse each
//! (pure), load the facts the whole batch needs in one read, decide each
//! message in memory (`domain::decide`), write every decision in one
//! transaction (`store::write`), and report one outcome per message. The
//! reports count only once the commit is done; nothing is sent here, only
//! queued in the outbox.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{LimitsSettings, Settings};
use crate::domain::decide::{admit, decide_mail, Contribution, Decision, Policy, World};
use crate::domain::mail::{sha256_hex, InboundMail};
use crate::domain::sender::normalize_email;
use crate::domain::thread::{thread_hints, ThreadHints};
use crate::domain::ticket::{is_emergency, Status};
use crate::inbound::parse;
use crate::reply;
use crate::store::facts::{self, Wanted};
use crate::store::messages::{self, Record};
use crate::store::suspended::NewSuspended;
use crate::store::write::{self, Item};
use crate::store::{Conn, Store};

pub use crate::domain::decide::{Outcome, Reason};

/// Recipients of one mail looked at as possible followers.
const MAX_FOLLOWERS_PER_MAIL: usize = 50;

/// One `ingest --json` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub message_id: String,
    pub outcome: Outcome,
    pub ticket: Option<i64>,
    pub status: Option<Status>,
    pub reason: Option<Reason>,
    pub followup_of: Option<i64>,
}

impl Report {
    fn of(message_id: &str, decision: &Decision) -> Report {
        Report {
            message_id: message_id.to_string(),
            outcome: decision.outcome,
            ticket: decision.ticket.map(|(id, _)| id),
            status: decision.ticket.map(|(_, status)| status),
            reason: decision.reason,
            followup_of: decision.followup_of,
        }
    }

    fn duplicate(message_id: &str) -> Report {
        Report {
            message_id: message_id.to_string(),
            outcome: Outcome::Duplicate,
            ticket: None,
            status: None,
            reason: None,
            followup_of: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stopped while parsing a batch")]
    Stopped,
}

/// Whether a message comes fresh from a mailbox or back from the suspended
/// queue (then it is not a duplicate of its own earlier record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Fresh,
    Released,
}

/// What the pure first steps make of the raw bytes: the parsed mail, its
/// thread hints and the keys it is known by. Reply extraction (the
/// expensive part) waits until the gates let the message through.
struct Prepared {
    message_id: String,
    /// What makes two copies of a message the same one: sender, subject,
    /// text and attachments (or the raw bytes, when there is no mail).
    fingerprint: String,
    mail: Option<(InboundMail, ThreadHints)>,
    /// Why there is no mail, when there is none.
    failure: &'static str,
    /// Why the message goes to the suspended queue whatever it says: a
    /// limit it exceeds, or the mailbox not handing it out whole.
    held: Option<(Reason, String)>,
    /// The reply cut out of the mail, unless it is held; `None` for a mail
    /// whose extraction failed (a bug in ticketgate: the message is kept
    /// for an operator). Done here, before the rules know whether the
    /// sender is admitted, because here it runs beside the database work.
    extracted: Option<Extracted>,
}

impl Prepared {
    /// Checks the header section and parses; a panic (a bug, never the
    /// sender's fault) leaves a message without mail, which is suspended.
    fn new(raw: &[u8], policy: &Policy, limits: &LimitsSettings) -> Prepared {
        catch_unwind(AssertUnwindSafe(|| Prepared::parse(raw, policy, limits))).unwrap_or_else(
            |_| Prepared {
                message_id: hashed_message_id(raw),
                fingerprint: sha256_hex(raw),
                mail: None,
                failure: "the message could not be parsed",
                held: None,
                extracted: None,
            },
        )
    }

    fn parse(raw: &[u8], policy: &Policy, limits: &LimitsSettings) -> Prepared {
        let unparsed = |held: Option<(Reason, String)>| Prepared {
            message_id: hashed_message_id(raw),
            fingerprint: sha256_hex(raw),
            mail: None,
            failure: "not a mail message (no header section)",
            held,
            extracted: None,
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
        let hints = thread_hints(&mail, &policy.support, &policy.signer);
        let held = mail.over_limit.clone().map(|d| (Reason::OverLimit, d));
        let extracted = if held.is_none() {
            catch_unwind(AssertUnwindSafe(|| extract(&mail, limits))).ok()
        } else {
            None
        };
        Prepared {
            message_id,
            fingerprint: fingerprint(&mail),
            held,
            mail: Some((mail, hints)),
            failure: "",
            extracted,
        }
    }

    /// A message the source did not hand out whole, known by `key`; its
    /// header section (if any) names sender and subject for the queue.
    fn held_back(
        key: &str,
        fingerprint: &str,
        headers: Option<&[u8]>,
        (reason, detail): (Reason, String),
        limits: &LimitsSettings,
    ) -> Prepared {
        Prepared {
            message_id: key.to_string(),
            fingerprint: fingerprint.to_string(),
            mail: headers
                .and_then(|h| parse::parse(h, limits))
                .map(|m| (m, ThreadHints::default())),
            failure: "",
            held: Some((reason, detail)),
            extracted: None,
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
    data_encoding::HEXLOWER.encode(&hash.finalize())
}

/// How the Message-IDs ticketgate makes up for messages without one end.
pub const HASHED_ID_SUFFIX: &str = "@sha256.ticketgate>";

/// A message without Message-ID is known by the hash of its bytes, so the
/// same file ingested twice is still a duplicate.
pub fn hashed_message_id(raw: &[u8]) -> String {
    format!("<{}{HASHED_ID_SUFFIX}", sha256_hex(raw))
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

/// The dedup keys a batch knows: processed before, or earlier in the batch,
/// each with the fingerprint it was processed with (none for records
/// written before fingerprints were kept).
struct Dedup {
    known: HashMap<String, Option<String>>,
}

/// A second key for a message whose Message-ID was taken by another
/// message: the Message-ID with its fingerprint.
fn collision_key(message_id: &str, fingerprint: &str) -> String {
    format!("{message_id}#{}", &fingerprint[..16])
}

impl Dedup {
    async fn prefetch(conn: &mut Conn, prepared: &[Prepared]) -> Result<Dedup, sqlx::Error> {
        let collision_keys: Vec<String> = prepared
            .iter()
            .map(|p| collision_key(&p.message_id, &p.fingerprint))
            .collect();
        let keys: Vec<&str> = prepared
            .iter()
            .map(|p| p.message_id.as_str())
            .chain(collision_keys.iter().map(String::as_str))
            .collect();
        let known = messages::known_among(conn, &keys).await?;
        Ok(Dedup {
            known: known.into_iter().collect(),
        })
    }

    /// Under which key the message is recorded, and whether it was seen:
    /// a duplicate has the same Message-ID and fingerprint. The same
    /// Message-ID with another sender or content (reused, or predictable)
    /// is another message, under a key of its own: it must not swallow a
    /// stranger's mail.
    fn key(&mut self, prepared: &Prepared) -> (String, bool) {
        let (id, fingerprint) = (&prepared.message_id, &prepared.fingerprint);
        let second = collision_key(id, fingerprint);
        if self.known.contains_key(&second) {
            return (second, true);
        }
        match self.known.get(id) {
            None => {
                self.known.insert(id.clone(), Some(fingerprint.clone()));
                (id.clone(), false)
            }
            Some(None) => (id.clone(), true),
            Some(Some(seen)) if seen == fingerprint => (id.clone(), true),
            Some(Some(_)) => {
                tracing::warn!(
                    message_id = %id,
                    "a message with this Message-ID but another sender or content was processed before; this one is processed as a message of its own"
                );
                self.known.insert(second.clone(), Some(fingerprint.clone()));
                (second, false)
            }
        }
    }
}

/// Batches in a row, as `ingest` reads them: each is parsed (and its
/// replies extracted) on a blocking thread while the one handed in before
/// it is written, since parsing is most of a message's CPU and the
/// database worker waits on none of it. The rules still see the batches
/// one after another, each with the facts the one before it wrote.
pub struct Overlapped {
    pipeline: Pipeline,
    parsed: Option<(Vec<Vec<u8>>, Vec<Prepared>)>,
}

impl Overlapped {
    pub fn new(pipeline: &Pipeline) -> Overlapped {
        Overlapped {
            pipeline: pipeline.clone(),
            parsed: None,
        }
    }

    /// Hands in the next batch; commits the one handed in before it and
    /// returns that one's reports (none the first time).
    pub async fn push(
        &mut self,
        store: &Store,
        raws: Vec<Vec<u8>>,
        now: i64,
    ) -> Result<Vec<Report>, PipelineError> {
        let parsing = self.pipeline.parse_elsewhere(raws);
        let reports = self.finish(store, now).await?;
        self.parsed = Some(parsing.done().await?);
        Ok(reports)
    }

    /// Commits the batch handed in last; returns its reports.
    pub async fn finish(&mut self, store: &Store, now: i64) -> Result<Vec<Report>, PipelineError> {
        match self.parsed.take() {
            Some((raws, prepared)) => {
                self.pipeline
                    .commit_prepared(store, &raws, prepared, now)
                    .await
            }
            None => Ok(Vec::new()),
        }
    }
}

/// A batch being parsed on a blocking thread (`Pipeline::parse_elsewhere`).
/// Dropped, the parse still runs to its end and is thrown away.
pub struct Parsing(tokio::task::JoinHandle<(Vec<Vec<u8>>, Vec<Prepared>)>);

impl Parsing {
    /// The batch with its parse.
    async fn done(self) -> Result<(Vec<Vec<u8>>, Vec<Prepared>), PipelineError> {
        self.0.await.map_err(|_| PipelineError::Stopped)
    }
}

/// The pipeline with its rules and limits; cheap to build once per run.
#[derive(Clone)]
pub struct Pipeline {
    policy: Policy,
    limits: LimitsSettings,
}

impl Pipeline {
    pub fn new(settings: &Settings) -> Self {
        Pipeline {
            policy: settings.policy(),
            limits: settings.limits.clone(),
        }
    }

    /// The pipeline of one mailbox: its new tickets get the mailbox's
    /// category unless their plus-address chose one.
    pub fn for_mailbox(&self, category: Option<crate::domain::ticket::Category>) -> Self {
        let mut pipeline = self.clone();
        pipeline.policy.mailbox_category = category;
        pipeline
    }

    /// Processes `raws` in one transaction: one durable commit for the
    /// batch and its attachments. If the batch fails, it is rolled back
    /// and its messages are committed one by one, so that a bad one is
    /// suspended as `processing_error` and the others go in. Fails only
    /// when even that is impossible (the database is gone).
    pub async fn process_batch(
        &self,
        store: &Store,
        raws: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<Report>, PipelineError> {
        self.commit_prepared(store, raws, self.prepare(raws), now)
            .await
    }

    /// Commits batches whose parsing was started with `parse_elsewhere` as
    /// one, in their order, like `process_batch` otherwise.
    pub async fn commit_parsed(
        &self,
        store: &Store,
        parsings: Vec<Parsing>,
        now: i64,
    ) -> Result<Vec<Report>, PipelineError> {
        let (mut raws, mut prepared) = (Vec::new(), Vec::new());
        for parsing in parsings {
            let (batch_raws, batch_prepared) = parsing.done().await?;
            raws.extend(batch_raws);
            prepared.extend(batch_prepared);
        }
        self.commit_prepared(store, &raws, prepared, now).await
    }

    /// Starts parsing `raws` on a blocking thread, so that the caller's
    /// thread stays free for its other work meanwhile (the poller's IMAP
    /// connection, the batch before being written).
    pub fn parse_elsewhere(&self, raws: Vec<Vec<u8>>) -> Parsing {
        let pipeline = self.clone();
        Parsing(tokio::task::spawn_blocking(move || {
            let prepared = pipeline.prepare(&raws);
            (raws, prepared)
        }))
    }

    async fn commit_prepared(
        &self,
        store: &Store,
        raws: &[Vec<u8>],
        prepared: Vec<Prepared>,
        now: i64,
    ) -> Result<Vec<Report>, PipelineError> {
        let outcome = async {
            let mut tx = store.begin().await?;
            let result = self
                .commit(&mut tx, store.backend, raws, prepared, now, Delivery::Fresh)
                .await;
            crate::store::settle(tx, result).await
        }
        .await;
        match outcome {
            Ok(reports) => Ok(reports),
            Err(error) => {
                tracing::warn!(
                    messages = raws.len(),
                    "batch failed ({error}); committing its messages one by one"
                );
                let mut reports = Vec::with_capacity(raws.len());
                for raw in raws {
                    reports.push(self.commit_alone(store, raw, now).await?);
                }
                Ok(reports)
            }
        }
    }

    fn prepare(&self, raws: &[Vec<u8>]) -> Vec<Prepared> {
        raws.iter()
            .map(|raw| Prepared::new(raw, &self.policy, &self.limits))
            .collect()
    }

    async fn commit_alone(
        &self,
        store: &Store,
        raw: &[u8],
        now: i64,
    ) -> Result<Report, PipelineError> {
        let raws = [raw.to_vec()];
        let attempt = async {
            let mut tx = store.begin().await?;
            let prepared = self.prepare(&raws);
            let result = self
                .commit(
                    &mut tx,
                    store.backend,
                    &raws,
                    prepared,
                    now,
                    Delivery::Fresh,
                )
                .await;
            crate::store::settle(tx, result).await
        }
        .await;
        match attempt {
            Ok(mut reports) => Ok(reports.remove(0)),
            Err(error) => {
                let prepared = self.prepare(&raws).remove(0);
                tracing::warn!(message_id = %prepared.message_id, "processing failed ({error}); suspending");
                let held = Prepared {
                    held: Some((Reason::ProcessingError, error.to_string())),
                    ..prepared
                };
                let mut tx = store.begin().await?;
                let mut reports = self
                    .commit(
                        &mut tx,
                        store.backend,
                        &raws,
                        vec![held],
                        now,
                        Delivery::Released,
                    )
                    .await?;
                tx.commit().await?;
                Ok(reports.remove(0))
            }
        }
    }

    /// Decides and writes `prepared` on `conn` (the caller's transaction).
    async fn commit(
        &self,
        conn: &mut Conn,
        backend: crate::store::Backend,
        raws: &[Vec<u8>],
        prepared: Vec<Prepared>,
        now: i64,
        delivery: Delivery,
    ) -> Result<Vec<Report>, sqlx::Error> {
        let mut dedup = Dedup::prefetch(conn, &prepared).await?;
        let mut world = facts::load(conn, backend, &self.wanted(&prepared), None).await?;
        let mut reports = Vec::with_capacity(prepared.len());
        let mut decided = Vec::with_capacity(prepared.len());
        for (raw, prepared) in raws.iter().zip(prepared) {
            let (key, seen) = dedup.key(&prepared);
            if seen && delivery == Delivery::Fresh {
                reports.push(Report::duplicate(&prepared.message_id));
                continue;
            }
            let record = (key, prepared.fingerprint.clone());
            let (decision, mail, message_id) = self.decide(&mut world, prepared, now);
            reports.push(Report::of(&message_id, &decision));
            decided.push((decision, mail, message_id, record, raw));
        }
        let items: Vec<Item> = decided
            .iter()
            .map(
                |(decision, mail, message_id, (key, fingerprint), raw)| Item {
                    decision,
                    message_id,
                    record: Some(Record {
                        message_id: key.clone(),
                        fingerprint: Some(fingerprint.clone()),
                        outcome: decision.outcome,
                        reason: decision.reason,
                        ticket_id: decision.ticket.map(|(id, _)| id),
                    }),
                    suspended: decision.writes.suspend.then(|| NewSuspended {
                        message_id,
                        reason: decision.reason.unwrap_or(Reason::ProcessingError),
                        detail: decision.detail.as_deref(),
                        sender: mail.as_ref().and_then(|m| m.from.as_deref()),
                        subject: mail.as_ref().map_or("", |m| m.subject.as_str()),
                        raw,
                        now,
                    }),
                },
            )
            .collect();
        write::apply(conn, &items, &world, now).await?;
        Ok(reports)
    }

    /// What the batch's decisions need to know.
    fn wanted(&self, prepared: &[Prepared]) -> Wanted {
        let mut wanted = Wanted::default();
        for staff in [&self.policy.agents_address, &self.policy.oncall_address]
            .into_iter()
            .flatten()
        {
            wanted.emails.insert(normalize_email(staff));
        }
        for (mail, hints) in prepared.iter().filter_map(|p| p.mail.as_ref()) {
            wanted.emails.extend(mail.from.clone());
            // Colleagues in To/Cc may become followers; a mail to hundreds
            // of addresses does not make hundreds of lookups.
            wanted
                .emails
                .extend(mail.recipients.iter().take(MAX_FOLLOWERS_PER_MAIL).cloned());
            wanted
                .referenced
                .extend(hints.referenced_ids.iter().cloned());
            wanted.tickets.extend(&hints.token_tickets);
            wanted.tickets.extend(&hints.subject_tickets);
        }
        wanted
    }

    /// One message through the gates and the rules; returns the decision
    /// and, for the suspended queue, what the mail said.
    fn decide(
        &self,
        world: &mut World,
        prepared: Prepared,
        now: i64,
    ) -> (Decision, Option<InboundMail>, String) {
        let Prepared {
            message_id,
            mail,
            failure,
            held,
            extracted,
            ..
        } = prepared;
        let Some((mail, hints)) = mail else {
            let held = held.unwrap_or((Reason::ProcessingError, failure.to_string()));
            return (Decision::suspended(held.0, Some(held.1)), None, message_id);
        };
        if let Some((reason, detail)) = held {
            return (
                Decision::suspended(reason, Some(detail)),
                Some(mail),
                message_id,
            );
        }
        let author = match admit(world, &self.policy, &mail, &message_id) {
            Ok(author) => author,
            Err(decision) => return (*decision, Some(mail), message_id),
        };
        let Some(extracted) = extracted else {
            let detail = "the reply could not be extracted".to_string();
            let decision = Decision::suspended(Reason::ProcessingError, Some(detail));
            return (decision, Some(mail), message_id);
        };
        let contribution = Contribution {
            author,
            subject: mail.subject.clone(),
            body: extracted.body,
            full_text: extracted.full_text,
            attachments: mail.attachments.clone(),
            message_id: Some(message_id.clone()),
            category: None,
            urgent: is_emergency(&mail.subject, &self.policy.emergency_markers),
            cc: mail.recipients.clone(),
        };
        let decision = decide_mail(world, &self.policy, &hints, contribution, now);
        (decision, Some(mail), message_id)
    }

    /// Suspends a message the source did not hand out whole (too large,
    /// or unreadable on the server) from what could be read: its header
    /// section (cut to `max_header_bytes`), or nothing at all. It is known
    /// by `key` and `fingerprint` like any message: the same pair again is a
    /// duplicate, while a whole copy arriving later is processed as usual.
    #[allow(clippy::too_many_arguments)]
    pub async fn suspend_held_back(
        &self,
        store: &Store,
        key: &str,
        fingerprint: &str,
        headers: Option<&[u8]>,
        reason: Reason,
        detail: &str,
        now: i64,
    ) -> Result<Report, PipelineError> {
        let limits = &self.limits;
        let headers = headers.map(|h| &h[..h.len().min(limits.max_header_bytes as usize)]);
        let held = (reason, detail.to_string());
        let prepared = Prepared::held_back(key, fingerprint, headers, held, limits);
        let raws = [headers.unwrap_or_default().to_vec()];
        let mut tx = store.begin().await?;
        let mut reports = self
            .commit(
                &mut tx,
                store.backend,
                &raws,
                vec![prepared],
                now,
                Delivery::Fresh,
            )
            .await?;
        tx.commit().await?;
        Ok(reports.remove(0))
    }

    /// Suspends a message too large to read whole (`ingest`), from its
    /// header section. Known by its Message-ID with a fingerprint of its
    /// headers and size: the same message again is a duplicate.
    pub async fn suspend_oversized(
        &self,
        store: &Store,
        headers: &[u8],
        size: u64,
        now: i64,
    ) -> Result<Report, PipelineError> {
        let limits = &self.limits;
        let key = parse::parse(headers, limits)
            .and_then(|m| m.message_id)
            .filter(|id| id.len() > 2)
            .unwrap_or_else(|| hashed_message_id(headers));
        let mut hash = Sha256::new();
        hash.update(headers);
        hash.update(size.to_be_bytes());
        let fingerprint = data_encoding::HEXLOWER.encode(&hash.finalize());
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

    /// Processes one message on `conn` (the caller's transaction), for
    /// `suspended release`: it is not a duplicate of its own earlier
    /// record. A failure suspends it again as `processing_error`.
    pub async fn process_one(
        &self,
        conn: &mut Conn,
        backend: crate::store::Backend,
        raw: &[u8],
        now: i64,
    ) -> Result<Report, PipelineError> {
        use sqlx::Connection;
        let raws = [raw.to_vec()];
        let mut savepoint = conn.begin().await?;
        match self
            .commit(
                &mut savepoint,
                backend,
                &raws,
                self.prepare(&raws),
                now,
                Delivery::Released,
            )
            .await
        {
            Ok(mut reports) => {
                savepoint.commit().await?;
                Ok(reports.remove(0))
            }
            Err(error) => {
                savepoint.rollback().await?;
                let prepared = self.prepare(&raws).remove(0);
                let held = Prepared {
                    held: Some((Reason::ProcessingError, error.to_string())),
                    ..prepared
                };
                let mut reports = self
                    .commit(conn, backend, &raws, vec![held], now, Delivery::Released)
                    .await?;
                Ok(reports.remove(0))
            }
        }
    }
}
