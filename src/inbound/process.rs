//! The pipeline (SPEC section 2): one raw message in, one committed outcome
//! out. Every database effect of a message happens on the connection it is
//! given, so the caller decides the transaction; nothing is sent here, only
//! queued in the outbox.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::blobs::{self, BlobStore};
use crate::config::Settings;
use crate::domain::classify::{classify, MachineMail};
use crate::domain::mail::InboundMail;
use crate::domain::sender::{is_spoofed, Person, Role};
use crate::domain::thread::{thread_hints, SupportAddress, ThreadHints, TokenSigner};
use crate::domain::ticket::{
    customer_action, is_emergency, parse_agent_commands, status_after_agent_comment,
    CustomerAction, Priority, Status, DEFAULT_CATEGORY,
};
use crate::inbound::parse::parse;
use crate::outbound::enqueue::{enqueue, Event, Recipient, Topic};
use crate::reply;
use crate::store::{self, tickets::Ticket, Conn};

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
    reply: String,
    full_text: String,
}

impl Prepared {
    fn new(raw: &[u8]) -> Prepared {
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

    /// Processes one message inside a savepoint of `tx`: a message that
    /// fails is rolled back alone and suspended as `processing_error`, so
    /// it never blocks the ones after it. Fails only when even that record
    /// cannot be written (the database is gone).
    pub async fn process(
        &self,
        tx: &mut Conn,
        raw: &[u8],
        now: i64,
        delivery: Delivery,
    ) -> Result<Report, PipelineError> {
        use sqlx::Connection;

        let prepared = match catch_unwind(AssertUnwindSafe(|| Prepared::new(raw))) {
            Ok(prepared) => prepared,
            Err(_) => {
                let message_id = hashed_message_id(raw);
                let detail = "the message could not be parsed";
                return self
                    .suspend_failed(tx, &message_id, None, raw, detail, now)
                    .await;
            }
        };

        let mut savepoint = tx.begin().await?;
        match self
            .apply(&mut savepoint, &prepared, raw, now, delivery)
            .await
        {
            Ok(report) => {
                savepoint.commit().await?;
                Ok(report)
            }
            Err(error) => {
                savepoint.rollback().await?;
                tracing::warn!(message_id = %prepared.message_id, %error, "processing failed");
                self.suspend_failed(
                    tx,
                    &prepared.message_id,
                    prepared.mail.as_ref(),
                    raw,
                    &error.to_string(),
                    now,
                )
                .await
            }
        }
    }

    async fn suspend_failed(
        &self,
        conn: &mut Conn,
        message_id: &str,
        mail: Option<&InboundMail>,
        raw: &[u8],
        detail: &str,
        now: i64,
    ) -> Result<Report, PipelineError> {
        Ok(suspend(
            conn,
            message_id,
            mail,
            raw,
            Reason::ProcessingError,
            Some(detail),
            now,
        )
        .await?)
    }

    async fn apply(
        &self,
        conn: &mut Conn,
        prepared: &Prepared,
        raw: &[u8],
        now: i64,
        delivery: Delivery,
    ) -> Result<Report, PipelineError> {
        let message_id = prepared.message_id.as_str();
        if delivery == Delivery::Fresh && store::messages::is_known(conn, message_id).await? {
            return Ok(Report::new(message_id, Outcome::Duplicate));
        }
        let Some(mail) = &prepared.mail else {
            let detail = "not a mail message (no header section)";
            return Ok(suspend(
                conn,
                message_id,
                None,
                raw,
                Reason::ProcessingError,
                Some(detail),
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
            store::messages::record(
                conn,
                message_id,
                "ignored",
                Some(reason.as_str()),
                None,
                now,
            )
            .await?;
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
            Some(from) => store::directory::person_by_email(conn, from).await?,
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
            let topic = Topic::Message {
                subject: &mail.subject,
                message_id,
            };
            enqueue(
                conn,
                &self.support,
                Event::NotKeyUser,
                topic,
                None,
                Recipient::person(&person),
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
        let report = match (person.role, ticket) {
            (Role::Agent, Some(ticket)) => self.agent_writes(conn, &inbound, ticket).await?,
            (_, Some(ticket)) => self.customer_writes(conn, &inbound, ticket).await?,
            (_, None) => self.open_ticket(conn, &inbound, None).await?,
        };
        store::messages::record(
            conn,
            message_id,
            report.outcome.as_str(),
            None,
            report.ticket,
            now,
        )
        .await?;
        if let Some(ticket) = report.ticket {
            store::messages::add_ref(conn, message_id, ticket, now).await?;
        }
        Ok(report)
    }

    /// The first hint, in the spec's order, naming a ticket this person may
    /// write on. Foreign or unknown tickets are passed over silently: a
    /// guessed number must not reveal that the ticket exists.
    async fn find_ticket(
        &self,
        conn: &mut Conn,
        hints: &ThreadHints,
        person: &Person,
    ) -> Result<Option<Ticket>, sqlx::Error> {
        let mut candidates: Vec<i64> = hints.token_tickets.clone();
        for message_id in &hints.referenced_ids {
            if let Some(id) = store::messages::ticket_for_ref(conn, message_id).await? {
                candidates.push(id);
            }
        }
        candidates.extend(&hints.subject_tickets);
        for id in candidates {
            if let Some(ticket) = store::tickets::get(conn, id).await? {
                if person.may_write_on(ticket.organization_id) {
                    return Ok(Some(ticket));
                }
            }
        }
        Ok(None)
    }

    /// A new ticket (or a follow-up of `followup_of`) with the message as
    /// its first comment.
    async fn open_ticket(
        &self,
        conn: &mut Conn,
        inbound: &Inbound<'_>,
        followup_of: Option<&Ticket>,
    ) -> Result<Report, PipelineError> {
        let now = inbound.now;
        let subject = match followup_of {
            Some(old) => old.subject.clone(),
            None if inbound.mail.subject.trim().is_empty() => "(no subject)".to_string(),
            None => inbound.mail.subject.clone(),
        };
        let category = inbound
            .hints
            .category_tags
            .iter()
            .find_map(|tag| self.settings.category_for_tag(tag))
            .or(followup_of.map(|old| old.category.as_str()))
            .unwrap_or(DEFAULT_CATEGORY);
        let urgent = is_emergency(
            &inbound.mail.subject,
            &self.settings.policy.emergency_markers,
        );
        let priority = if urgent {
            Priority::Urgent
        } else {
            Priority::Normal
        };
        let id = store::tickets::create(
            conn,
            store::tickets::NewTicket {
                subject: &subject,
                organization_id: inbound.person.organization_id,
                requester_id: inbound.person.id,
                category,
                priority: priority.as_str(),
                status: Status::Open,
                followup_of: followup_of.map(|t| t.id),
                now,
            },
        )
        .await?;
        // Threading must know the customer's own mail before notifications
        // compute their References.
        store::messages::add_ref(conn, inbound.message_id, id, now).await?;
        let comment_id = self
            .add_comment(conn, id, inbound, inbound.body, true)
            .await?;

        let topic = || Topic::Ticket {
            id,
            subject: &subject,
        };
        let event = if followup_of.is_some() {
            Event::FollowupCreated
        } else {
            Event::TicketCreated
        };
        let person = inbound.person;
        enqueue(
            conn,
            &self.support,
            event,
            topic(),
            Some(comment_id),
            Recipient::person(person),
            now,
        )
        .await?;
        self.notify_team(conn, Event::AgentNewTicket, topic(), comment_id, now)
            .await?;
        if urgent {
            self.notify_oncall(conn, topic(), comment_id, now).await?;
        }

        let outcome = if followup_of.is_some() {
            Outcome::Followup
        } else {
            Outcome::Created
        };
        let mut report = Report::new(inbound.message_id, outcome).on_ticket(id, Status::Open);
        report.followup_of = followup_of.map(|t| t.id);
        Ok(report)
    }

    async fn customer_writes(
        &self,
        conn: &mut Conn,
        inbound: &Inbound<'_>,
        ticket: Ticket,
    ) -> Result<Report, PipelineError> {
        let now = inbound.now;
        let action = customer_action(
            ticket.status,
            ticket.solved_at,
            now,
            self.settings.policy.reopen_days,
        );
        if action == CustomerAction::FollowUp {
            return self.open_ticket(conn, inbound, Some(&ticket)).await;
        }
        let comment_id = self
            .add_comment(conn, ticket.id, inbound, inbound.body, true)
            .await?;
        store::tickets::set_status(conn, ticket.id, Status::Open, now).await?;
        let topic = || Topic::Ticket {
            id: ticket.id,
            subject: &ticket.subject,
        };
        self.notify_team(conn, Event::AgentCustomerReply, topic(), comment_id, now)
            .await?;
        let escalated = ticket.priority != Priority::Urgent.as_str()
            && is_emergency(
                &inbound.mail.subject,
                &self.settings.policy.emergency_markers,
            );
        if escalated {
            store::tickets::set_priority(conn, ticket.id, Priority::Urgent.as_str()).await?;
            self.notify_oncall(conn, topic(), comment_id, now).await?;
        }
        let outcome = match action {
            CustomerAction::Reopen => Outcome::Reopened,
            _ => Outcome::Appended,
        };
        Ok(Report::new(inbound.message_id, outcome).on_ticket(ticket.id, Status::Open))
    }

    /// An agent answering by mail: commands first, then the comment. A
    /// closed ticket accepts no comments, so the answer opens a follow-up.
    async fn agent_writes(
        &self,
        conn: &mut Conn,
        inbound: &Inbound<'_>,
        ticket: Ticket,
    ) -> Result<Report, PipelineError> {
        let now = inbound.now;
        let (commands, body) = parse_agent_commands(inbound.body);
        let (ticket, outcome) = if ticket.status == Status::Closed {
            let id = store::tickets::create(
                conn,
                store::tickets::NewTicket {
                    subject: &ticket.subject,
                    organization_id: ticket.organization_id,
                    requester_id: ticket.requester_id,
                    category: &ticket.category,
                    priority: &ticket.priority,
                    status: Status::Open,
                    followup_of: Some(ticket.id),
                    now,
                },
            )
            .await?;
            store::messages::add_ref(conn, inbound.message_id, id, now).await?;
            let new = store::tickets::get(conn, id)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            (new, Outcome::Followup)
        } else {
            (ticket, Outcome::Appended)
        };
        let followup_of = (outcome == Outcome::Followup)
            .then_some(ticket.followup_of)
            .flatten();

        let public = !commands.internal;
        let comment_id = self
            .add_comment(conn, ticket.id, inbound, &body, public)
            .await?;
        let status = status_after_agent_comment(ticket.status, &commands);
        if status != ticket.status {
            store::tickets::set_status(conn, ticket.id, status, now).await?;
        }
        if commands.urgent && ticket.priority != Priority::Urgent.as_str() {
            store::tickets::set_priority(conn, ticket.id, Priority::Urgent.as_str()).await?;
        }
        self.notify_requester_of_answer(conn, &ticket, Some(comment_id), public, status, now)
            .await?;
        let mut report = Report::new(inbound.message_id, outcome).on_ticket(ticket.id, status);
        report.followup_of = followup_of;
        Ok(report)
    }

    /// The requester hears of a public answer, and of a solve with the
    /// rating request.
    pub async fn notify_requester_of_answer(
        &self,
        conn: &mut Conn,
        ticket: &Ticket,
        comment_id: Option<i64>,
        public: bool,
        status: Status,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let requester = store::directory::person_by_id(conn, ticket.requester_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        let topic = || Topic::Ticket {
            id: ticket.id,
            subject: &ticket.subject,
        };
        if public {
            enqueue(
                conn,
                &self.support,
                Event::AgentReply,
                topic(),
                comment_id,
                Recipient::person(&requester),
                now,
            )
            .await?;
        }
        if status == Status::Solved && ticket.status != Status::Solved {
            enqueue(
                conn,
                &self.support,
                Event::TicketSolved,
                topic(),
                comment_id,
                Recipient::person(&requester),
                now,
            )
            .await?;
        }
        Ok(())
    }

    async fn add_comment(
        &self,
        conn: &mut Conn,
        ticket_id: i64,
        inbound: &Inbound<'_>,
        body: &str,
        public: bool,
    ) -> Result<i64, PipelineError> {
        let comment_id = store::tickets::add_comment(
            conn,
            store::tickets::NewComment {
                ticket_id,
                author_id: inbound.person.id,
                public,
                body,
                full_text: inbound.full_text,
                message_id: Some(inbound.message_id),
                now: inbound.now,
            },
        )
        .await?;
        for attachment in &inbound.mail.attachments {
            let sha256 = self.blobs.put(&attachment.data)?;
            store::tickets::add_attachment(
                conn,
                comment_id,
                &attachment.filename,
                &attachment.content_type,
                attachment.data.len() as i64,
                &sha256,
            )
            .await?;
        }
        Ok(comment_id)
    }

    async fn notify_team(
        &self,
        conn: &mut Conn,
        event: Event,
        topic: Topic<'_>,
        comment_id: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        if let Some(team) = &self.settings.mail.agents_address {
            enqueue(
                conn,
                &self.support,
                event,
                topic,
                Some(comment_id),
                Recipient {
                    address: team,
                    locale: &self.settings.mail.default_locale,
                },
                now,
            )
            .await?;
        }
        Ok(())
    }

    async fn notify_oncall(
        &self,
        conn: &mut Conn,
        topic: Topic<'_>,
        comment_id: i64,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        if let Some(oncall) = &self.settings.mail.oncall_address {
            enqueue(
                conn,
                &self.support,
                Event::UrgentTicket,
                topic,
                Some(comment_id),
                Recipient {
                    address: oncall,
                    locale: &self.settings.mail.default_locale,
                },
                now,
            )
            .await?;
        }
        Ok(())
    }
}

/// A message that got past the gates, with its author.
#[derive(Clone, Copy)]
struct Inbound<'a> {
    message_id: &'a str,
    mail: &'a InboundMail,
    person: &'a Person,
    hints: &'a ThreadHints,
    body: &'a str,
    full_text: &'a str,
    now: i64,
}

/// Keeps the message whole in the suspended queue and records the outcome.
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
    store::messages::record(
        conn,
        message_id,
        "suspended",
        Some(reason.as_str()),
        None,
        now,
    )
    .await?;
    Ok(Report::new(message_id, Outcome::Suspended).with_reason(reason))
}

impl Pipeline {
    /// Processes `raws` in one transaction (one durable commit for the
    /// batch, one savepoint per message). The reports count only once this
    /// returns: before, nothing of the batch is committed.
    pub async fn process_batch(
        &self,
        store: &store::Store,
        raws: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<Report>, PipelineError> {
        let mut tx = store.begin().await?;
        let mut reports = Vec::with_capacity(raws.len());
        for raw in raws {
            reports.push(self.process(&mut tx, raw, now, Delivery::Fresh).await?);
        }
        tx.commit().await?;
        Ok(reports)
    }
}
