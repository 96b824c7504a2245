//! Delivering the outbox: claim a due row, check the per-recipient rate
//! limit, render, send, record. A temporary failure is retried with
//! back-off until `retry_max_age_hours`; a permanent one (5xx) is recorded
//! as failed with the server's answer.
//!
//! Guarantee: at least once. A row is claimed (committed) before it is
//! sent and marked sent after; if the process dies between the server's
//! acceptance and that commit, the row is sent again once its claim lapses
//! (`LEASE` seconds), with the same Message-ID, so mail clients show it
//! once. No row is ever sent twice otherwise, and none is silently dropped.

use serde::Serialize;

use crate::config::Settings;
use crate::domain::retry::{gives_up, next_attempt};
use crate::domain::thread::{SupportAddress, TokenSigner, REPLY_PURPOSE};
use crate::domain::ticket::Status;
use crate::outbound::compose::{compose, Envelope};
use crate::outbound::enqueue::Event;
use crate::outbound::render::{self, Context, Renderer};
use crate::outbound::transport::Transport;
use crate::rating;
use crate::store::{self, outbox::Due, Store};

/// How long a claimed row is left alone by other workers.
pub const LEASE: i64 = 300;
/// Rows fetched per round.
const ROUND: i64 = 50;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
    pub suppressed: usize,
}

pub struct Deliverer {
    settings: Settings,
    support: SupportAddress,
    signer: TokenSigner,
    renderer: Renderer,
    transport: Transport,
}

/// Which due rows a run delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything due.
    All,
    /// Only rows that failed before and are due again (the scheduler's job).
    Retries,
}

impl Deliverer {
    /// Loads and checks the templates and builds the transport. Fails with
    /// a message naming the template or setting at fault.
    pub fn new(settings: &Settings) -> Result<Deliverer, String> {
        let renderer = Renderer::load(settings.outbound.templates_dir.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(Deliverer {
            transport: Transport::from_settings(settings)?,
            support: settings.support(),
            signer: TokenSigner::new(&settings.security.token_secret),
            renderer,
            settings: settings.clone(),
        })
    }

    /// Delivers every due row. Fails only on database errors.
    pub async fn flush(
        &self,
        store: &Store,
        now: i64,
        scope: Scope,
    ) -> Result<FlushReport, sqlx::Error> {
        let mut report = FlushReport::default();
        loop {
            let mut conn = store.acquire().await?;
            let due = store::outbox::due(&mut conn, now, ROUND).await?;
            drop(conn);
            let due: Vec<Due> = due
                .into_iter()
                .filter(|row| scope == Scope::All || row.attempts > 0)
                .collect();
            if due.is_empty() {
                return Ok(report);
            }
            for row in due {
                self.deliver(store, &row, now, &mut report).await?;
            }
        }
    }

    async fn deliver(
        &self,
        store: &Store,
        row: &Due,
        now: i64,
        report: &mut FlushReport,
    ) -> Result<(), sqlx::Error> {
        let mut conn = store.acquire().await?;
        if !store::outbox::claim(&mut conn, row, now + LEASE).await? {
            return Ok(());
        }
        if row.automatic && !self.is_staff(&row.to) {
            let limit = i64::from(self.settings.outbound.rate_limit_per_hour);
            let sent = store::outbox::automatic_sent_since(&mut conn, &row.to, now - 3_600).await?;
            if sent >= limit {
                let reason = format!(
                    "rate limit: {sent} automatic mails to {} in the last hour",
                    row.to
                );
                tracing::warn!(id = row.id, to = %row.to, "suppressed: {reason}");
                store::outbox::mark_final(&mut conn, row.id, "suppressed", &reason).await?;
                report.suppressed += 1;
                return Ok(());
            }
        }
        let message = match self.message(&mut conn, row, now).await? {
            Ok(message) => message,
            Err(reason) => {
                tracing::error!(id = row.id, "cannot build the notification: {reason}");
                store::outbox::mark_final(&mut conn, row.id, "failed", &reason).await?;
                report.failed += 1;
                return Ok(());
            }
        };
        drop(conn);

        let name = format!("{:08}-{}.eml", row.id, row.event);
        let result = self.transport.send(&name, &message).await;
        if result.is_ok() && std::env::var_os("TICKETGATE_FAULT_EXIT_AFTER_SEND").is_some() {
            // Fault injection for the crash-between-send-and-commit test.
            std::process::exit(99);
        }
        let mut conn = store.acquire().await?;
        match result {
            Ok(()) => {
                store::outbox::mark_sent(&mut conn, row.id, now).await?;
                report.sent += 1;
            }
            Err(error) if error.permanent => {
                tracing::warn!(id = row.id, to = %row.to, "delivery failed: {}", error.message);
                store::outbox::mark_final(&mut conn, row.id, "failed", &error.message).await?;
                report.failed += 1;
            }
            Err(error) => {
                let attempts = row.attempts + 1;
                let max_age = self.settings.outbound.retry_max_age_hours * 3_600;
                if gives_up(row.created_at, now, max_age) {
                    let reason = format!("gave up after {attempts} attempts: {}", error.message);
                    store::outbox::mark_final(&mut conn, row.id, "failed", &reason).await?;
                    report.failed += 1;
                } else {
                    let next = next_attempt(now, attempts, rand::random::<f64>());
                    tracing::info!(
                        id = row.id,
                        attempts,
                        next,
                        "delivery will be retried: {}",
                        error.message
                    );
                    store::outbox::mark_retry(&mut conn, row.id, next, &error.message).await?;
                    report.retrying += 1;
                }
            }
        }
        Ok(())
    }

    /// Our own team and on-call addresses are not rate limited: a busy
    /// day must not silence the agents' notices.
    fn is_staff(&self, address: &str) -> bool {
        let mail = &self.settings.mail;
        [&mail.agents_address, &mail.oncall_address]
            .into_iter()
            .flatten()
            .any(|staff| staff.eq_ignore_ascii_case(address))
    }

    /// Renders and composes a row; `Err` is a reason the row can never be
    /// delivered (its ticket is gone, a template or address is broken).
    async fn message(
        &self,
        conn: &mut store::Conn,
        row: &Due,
        now: i64,
    ) -> Result<Result<lettre::Message, String>, sqlx::Error> {
        let Some(event) = render::EVENTS
            .iter()
            .copied()
            .find(|e| e.as_str() == row.event)
        else {
            return Ok(Err(format!("unknown event {:?}", row.event)));
        };
        let mut context = Context {
            subject: row.subject.trim_start_matches("Re: ").to_string(),
            reopen_days: self.settings.policy.reopen_days,
            ..Default::default()
        };
        context.recipient.email = row.to.clone();
        if let Some(person) = store::directory::person_by_email(conn, &row.to).await? {
            context.recipient.name = person.name;
        }
        let mut reply_to = self.support.plain();
        if let Some(ticket_id) = row.ticket_id {
            let Some(facts) =
                store::tickets::notification_facts(conn, ticket_id, row.comment_id).await?
            else {
                return Ok(Err(format!("ticket #{ticket_id} does not exist")));
            };
            let ticket = &facts.ticket;
            let base = self.settings.web.base_url.trim_end_matches('/');
            context.organization = facts.organization.clone();
            context.requester.name = facts.requester_name.clone();
            context.requester.email = facts.requester_email.clone();
            context.ticket = Some(render::TicketRef {
                id: ticket.id,
                subject: ticket.subject.clone(),
                status: ticket.status.as_str().into(),
                status_label: ticket.status.label(&row.locale).into(),
                link: format!("{base}/tickets/{}", ticket.id),
                category: ticket.category.clone(),
                priority: ticket.priority.clone(),
                urgent: ticket.priority == "urgent",
                followup_of: ticket.followup_of,
            });
            context.comment = Some(render::CommentRef {
                author: facts.comment_author.clone().unwrap_or_default(),
                body: facts.comment_body.clone().unwrap_or_default(),
            });
            if event == Event::TicketSolved || ticket.status == Status::Solved {
                context.rating = Some(rating::links(
                    &self.signer,
                    base,
                    ticket.id,
                    ticket.solve_count,
                ));
            }
            reply_to = self
                .support
                .with_tag(&self.signer.issue(REPLY_PURPOSE, ticket.id));
        }
        fill_for_strict_templates(&mut context);
        let body = match self.renderer.render(event, &row.locale, &context) {
            Ok(body) => body,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let envelope = Envelope {
            row,
            from_name: &self.settings.mail.from_name,
            from: &self.support.plain(),
            reply_to: &reply_to,
            now,
        };
        Ok(compose(&envelope, &body))
    }
}

/// Strict templates fail on a missing field; an event that has no ticket,
/// comment or rating gets empty ones, and templates test what they use.
fn fill_for_strict_templates(context: &mut Context) {
    context.ticket.get_or_insert_with(Default::default);
    context.comment.get_or_insert_with(Default::default);
    context.rating.get_or_insert_with(Default::default);
}
