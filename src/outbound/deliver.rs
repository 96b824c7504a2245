//! Delivering the outbox, round by round: claim a round of due rows, check
//! the per-recipient rate limit, render each from the context it was
//! queued with, compose, hand the round to the transport, mark the round.
//! A temporary failure is retried with back-off until
//! `retry_max_age_hours`; a permanent one (5xx) is recorded as failed with
//! the server's answer.
//!
//! Guarantee: at least once. A row is claimed (committed) before it is
//! sent and marked when its round is done; if the process dies between the
//! server's acceptance and that mark, the row is sent again once its claim
//! lapses (`[outbound] claim_secs`), with the same Message-ID, so mail clients show
//! it once. A round is at most `ROUND` rows, so that is the most a crash
//! can send twice. Claims and marks are written without waiting for the disk: a power
//! cut may lose the last few, and those mails go out once more. No row is
//! sent twice otherwise, and none is silently dropped.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::Settings;
use crate::domain::notice::{Context, OutboxState};
use crate::domain::retry::{gives_up, next_attempt};
use crate::outbound::compose::{compose, Envelope};
use crate::outbound::render::Renderer;
use crate::outbound::transport::{Outbound, SendError, Transport};
use crate::store::outbox::{self, Due, Mark};
use crate::store::Store;

/// Rows claimed, and marked, together: two database writes per round
/// instead of two per mail, so that delivery keeps up while the poller
/// writes its batches.
const ROUND: usize = 25;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
    pub suppressed: usize,
}

/// What delivery needs of the configuration.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub from_name: String,
    pub from: String,
    pub rate_limit_per_hour: i64,
    pub retry_max_age_seconds: i64,
    /// How long a claimed row is left alone by other workers.
    pub claim_secs: i64,
    /// Our own team and on-call addresses are not rate limited: a busy day
    /// must not silence the agents' notices.
    pub staff: Vec<String>,
}

impl DeliveryPolicy {
    pub fn from_settings(settings: &Settings) -> DeliveryPolicy {
        let mail = &settings.mail;
        DeliveryPolicy {
            from_name: mail.from_name.clone(),
            from: settings.support().plain(),
            rate_limit_per_hour: i64::from(settings.outbound.rate_limit_per_hour),
            retry_max_age_seconds: settings.outbound.retry_max_age_hours * 3_600,
            claim_secs: settings.outbound.claim_secs as i64,
            staff: [&mail.agents_address, &mail.oncall_address]
                .into_iter()
                .flatten()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
        }
    }

    fn is_staff(&self, address: &str) -> bool {
        self.staff.iter().any(|s| s.eq_ignore_ascii_case(address))
    }
}

pub struct Deliverer<T: Transport = Outbound> {
    policy: DeliveryPolicy,
    renderer: Renderer,
    transport: T,
}

/// Which due rows a run delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything due.
    All,
    /// Only rows that failed before and are due again (the scheduler's job).
    Retries,
}

impl Deliverer<Outbound> {
    /// Loads and checks the templates and builds the configured transport.
    /// Fails with a message naming the template or setting at fault.
    pub fn new(settings: &Settings) -> Result<Deliverer<Outbound>, String> {
        Deliverer::with_transport(settings, Outbound::from_settings(settings)?)
    }
}

impl<T: Transport> Deliverer<T> {
    /// The same over another transport.
    pub fn with_transport(settings: &Settings, transport: T) -> Result<Deliverer<T>, String> {
        let renderer = Renderer::load(settings.outbound.templates_dir.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(Deliverer {
            policy: DeliveryPolicy::from_settings(settings),
            renderer,
            transport,
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
        // Automatic mail sent in the last hour, by limited recipient.
        let mut sent: HashMap<String, i64> = HashMap::new();
        loop {
            let round = outbox::claim_round(
                store,
                now,
                now + self.policy.claim_secs,
                scope == Scope::Retries,
                ROUND,
            )
            .await?;
            if round.is_empty() {
                return Ok(report);
            }
            let mut new: Vec<&str> = round
                .iter()
                .filter(|row| row.rate_limited() && !self.policy.is_staff(row.to()))
                .map(Due::to)
                .filter(|to| !sent.contains_key(*to))
                .collect();
            new.sort_unstable();
            new.dedup();
            if !new.is_empty() {
                let mut conn = store.acquire().await?;
                let counts = outbox::automatic_sent_since(&mut conn, &new, now - 3_600).await?;
                for to in new {
                    sent.insert(to.to_string(), 0);
                }
                sent.extend(counts);
            }
            // The rate limit in order, then the round to the transport.
            let ready: Vec<Result<lettre::Message, Mark>> = round
                .iter()
                .map(|row| self.ready(row, now, &mut sent))
                .collect();
            let mut outgoing = Vec::new();
            let held: Vec<Option<Mark>> = round
                .iter()
                .zip(ready)
                .map(|(row, ready)| match ready {
                    Ok(message) => {
                        outgoing.push((format!("{:08}-{}.eml", row.id, row.event), message));
                        None
                    }
                    Err(mark) => Some(mark),
                })
                .collect();
            let mut results = self.transport.send_round(outgoing).await.into_iter();
            let marks: Vec<Mark> = round
                .iter()
                .zip(held)
                .map(|(row, held)| {
                    held.unwrap_or_else(|| {
                        // A transport that answers for fewer mails than it
                        // was given leaves the rest to be tried again.
                        let result = results.next().unwrap_or_else(|| {
                            Err(SendError {
                                permanent: false,
                                message: "the transport reported no result".into(),
                            })
                        });
                        self.mark(row, result, now)
                    })
                })
                .collect();
            for mark in &marks {
                match mark {
                    Mark::Sent => report.sent += 1,
                    Mark::Retry { .. } => report.retrying += 1,
                    Mark::Final {
                        state: OutboxState::Suppressed,
                        ..
                    } => report.suppressed += 1,
                    Mark::Final { .. } => report.failed += 1,
                }
            }
            let marks = round.iter().map(|row| row.id).zip(marks).collect();
            outbox::record_all(store, marks, now).await?;
        }
    }

    /// One row up to sending: the rate limit, then render and compose.
    fn ready(
        &self,
        row: &Due,
        now: i64,
        sent: &mut HashMap<String, i64>,
    ) -> Result<lettre::Message, Mark> {
        if row.rate_limited() && !self.policy.is_staff(row.to()) {
            let count = sent.entry(row.to().to_string()).or_default();
            if *count >= self.policy.rate_limit_per_hour {
                let reason = format!(
                    "rate limit: {count} automatic mails to {} in the last hour",
                    row.to()
                );
                tracing::warn!(id = row.id, to = %row.to(), "suppressed: {reason}");
                return Err(Mark::Final {
                    state: OutboxState::Suppressed,
                    reason,
                });
            }
            *count += 1;
        }
        self.message(row, now).map_err(|reason| {
            tracing::error!(id = row.id, "cannot build the notification: {reason}");
            Mark::Final {
                state: OutboxState::Failed,
                reason,
            }
        })
    }

    /// What to mark a row the transport tried to send.
    fn mark(&self, row: &Due, result: Result<(), SendError>, now: i64) -> Mark {
        match result {
            Ok(()) => Mark::Sent,
            Err(error) if error.permanent => {
                tracing::warn!(id = row.id, to = %row.to(), "delivery failed: {}", error.message);
                Mark::Final {
                    state: OutboxState::Failed,
                    reason: error.message,
                }
            }
            Err(error) if gives_up(row.created_at, now, self.policy.retry_max_age_seconds) => {
                Mark::Final {
                    state: OutboxState::Failed,
                    reason: format!("gave up after {} attempts: {}", row.attempts, error.message),
                }
            }
            Err(error) => {
                let next = next_attempt(now, row.attempts, rand::random::<f64>());
                tracing::info!(
                    id = row.id,
                    attempts = row.attempts,
                    next,
                    "delivery will be retried: {}",
                    error.message
                );
                Mark::Retry {
                    next_attempt_at: next,
                    error: error.message,
                }
            }
        }
    }

    /// Renders and composes a row from what it was queued with; `Err` is a
    /// reason the row can never be delivered (a broken template or
    /// address).
    fn message(&self, row: &Due, now: i64) -> Result<lettre::Message, String> {
        let context: Context = serde_json::from_str(&row.context)
            .map_err(|e| format!("the queued context cannot be read: {e}"))?;
        let body = self
            .renderer
            .render(row.event, &row.locale, &context)
            .map_err(|e| e.to_string())?;
        let envelope = Envelope {
            row,
            from_name: &self.policy.from_name,
            from: &self.policy.from,
            now,
        };
        compose(&envelope, &body)
    }
}
