//! The mailbox poller of `ticketgate run`: drains one IMAP mailbox through
//! the pipeline, acknowledges each message only after its outcome is
//! committed, then waits for more (IDLE, or polling). It runs over any
//! [`Connector`], so its protocol edge cases are tested against a scripted
//! server as well as against Dovecot.
//!
//! Every message the server lists ends in exactly one place: a ticket or
//! comment, ignored, a duplicate, or the suspended queue. A message the
//! server will not hand out (`BODY[] NIL`, a failing FETCH) is tried
//! `max_fetch_attempts` times, one at a time so that it cannot hold up the
//! others, and then suspended as `unreadable` from what can be read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{ImapSettings, LimitsSettings};
use crate::domain::retry::Backoff;
use crate::inbound::imap::{Connector, Imap, ImapError, Meta, Selected, COPY_MARKER};
use crate::inbound::process::{Parsing, Pipeline, PipelineError, Reason, Report, HASHED_ID_SUFFIX};
use crate::metrics::Metrics;
use crate::store::{self, Store};

/// Committed batches acknowledged in one command. Dovecot's MOVE costs
/// mostly per command (it looks over the whole mailbox each time, ~20 ms
/// with 10,000 messages waiting), little per message: two batches in one
/// take the server about as long as one did.
const ACKNOWLEDGE_TOGETHER: usize = 2;
/// Fetched batches being committed at a time: two written in one
/// transaction, two waiting with their content parsed, so that the database
/// does not wait while the server moves two batches or has a slow moment.
/// On a 10,000-message drain, one batch written and one waiting came to
/// 0.68-0.93 of the minimal client, one and two waiting to 0.71-0.90, two
/// and one to 0.75-0.92, two and two to 0.78-0.91 (and ~50 MB instead of
/// ~40 MB at peak).
const COMMITS_AHEAD: usize = 4;
/// Fetched batches committed in one transaction when they are waiting
/// together: one sync to disk for both.
const COMMIT_TOGETHER: usize = 2;
/// Waiting messages whose fetch failed are tried again this soon.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("IMAP: {0}")]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("committing a batch stopped: {0}")]
    Task(String),
}

/// Why a message could not be fetched so far.
#[derive(Debug, Default)]
struct FetchFailures {
    attempts: u32,
    last_error: String,
    /// Fetching even its header section cost the connection.
    headers_failed: bool,
}

/// What the poller shares with the rest of the daemon.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    /// Woken whenever a batch queued notifications.
    pub outbox_due: Arc<Notify>,
}

pub struct Poller<C: Connector> {
    settings: ImapSettings,
    limits: LimitsSettings,
    connector: C,
    pipeline: Arc<Pipeline>,
    store: Store,
    clock: Clock,
    shared: Shared,
    uid_validity: u32,
    failures: HashMap<u32, FetchFailures>,
    /// UIDs to fetch one at a time: they were in a batch whose fetch failed.
    suspects: HashSet<u32>,
    /// Copied and flagged `\Deleted`, waiting for a safe EXPUNGE (servers
    /// without UIDPLUS, while another client's `\Deleted` mail is there).
    pending_expunge: HashSet<u32>,
    /// Committed, but the server refused to acknowledge them; left alone
    /// for the rest of the session.
    unacknowledged: HashSet<u32>,
    /// Something was committed and acknowledged in the current session.
    progress: bool,
}

/// What a batch's FETCH brought, already being parsed.
struct Fetched {
    /// UIDs of the messages being parsed, in their order.
    got: Vec<u32>,
    /// Listed, but the server sent no content (`BODY[] NIL`).
    empty: Vec<u32>,
    parsing: Parsing,
}

/// What became of a batch taken alone.
enum Taken {
    Committed(Committed),
    /// Take its messages one at a time.
    OneByOne,
}

/// Fetched batches being committed, in mailbox order.
#[derive(Default)]
struct Committing {
    batches: VecDeque<InFlight>,
    /// To the drain's committer task, started with its first batch.
    committer: Option<mpsc::UnboundedSender<Queued>>,
}

/// A fetched batch handed to the committer.
struct InFlight {
    batch: Vec<Meta>,
    /// UIDs of the messages being committed, in their order.
    uids: Vec<u32>,
    reports: oneshot::Receiver<Result<Vec<Report>, SessionError>>,
}

/// A fetched batch as the committer gets it.
struct Queued {
    parsing: Parsing,
    messages: usize,
    now: i64,
    reports: oneshot::Sender<Result<Vec<Report>, SessionError>>,
}

/// The messages of one batch with a committed outcome.
#[derive(Default)]
struct Committed {
    uids: Vec<u32>,
    /// Message-ID header by UID, for the copy check after a crash.
    message_ids: HashMap<u32, String>,
    reports: Vec<Report>,
}

impl<C: Connector> Poller<C> {
    pub fn new(
        settings: &ImapSettings,
        limits: &LimitsSettings,
        connector: C,
        pipeline: Arc<Pipeline>,
        store: Store,
        clock: Clock,
        shared: Shared,
    ) -> Self {
        shared.metrics.add_mailbox(&settings.name);
        Poller {
            settings: settings.clone(),
            limits: limits.clone(),
            connector,
            pipeline,
            store,
            clock,
            shared,
            uid_validity: 0,
            failures: HashMap::new(),
            suspects: HashSet::new(),
            pending_expunge: HashSet::new(),
            unacknowledged: HashSet::new(),
            progress: false,
        }
    }

    /// Reads the mailbox until `shutdown`, reconnecting with back-off. The
    /// back-off grows while sessions fail without getting anything done,
    /// and waits longest for faults an operator has to fix (a refused
    /// login, an unusable processed folder).
    pub async fn run(&mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_MAX);
        loop {
            self.progress = false;
            let result = self.session(&shutdown).await;
            self.shared
                .metrics
                .set_imap_connected(&self.settings.name, false);
            let error = match result {
                Ok(()) | Err(SessionError::Imap(ImapError::Shutdown)) => return,
                Err(error) => error,
            };
            if self.progress {
                backoff.reset();
            }
            let delay = match &error {
                SessionError::Imap(e) if e.needs_operator() => BACKOFF_MAX,
                _ => backoff.next_delay(),
            };
            match &error {
                SessionError::Imap(e) if e.needs_operator() => tracing::error!(
                    mailbox = %self.settings.name,
                    "IMAP session ended: {error}; check the {} settings (next try in {} s)",
                    self.settings.table(),
                    delay.as_secs()
                ),
                _ => tracing::warn!(
                    mailbox = %self.settings.name,
                    "IMAP session ended: {error}; reconnecting in {} s",
                    delay.as_secs()
                ),
            }
            if pause(delay, &shutdown).await {
                return;
            }
        }
    }

    /// One connection: drain the mailbox, wait for more, until shutdown
    /// (`Ok`) or a failure (`Err`).
    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), SessionError> {
        let mut imap = Imap::open(&self.connector, &self.settings, shutdown).await?;
        let caps = imap.capabilities;
        tracing::info!(
            host = %self.settings.host,
            mailbox = %self.settings.name,
            idle = caps.idle,
            r#move = caps.mv,
            uidplus = caps.uidplus,
            "IMAP connected"
        );
        self.shared
            .metrics
            .set_imap_connected(&self.settings.name, true);
        self.unacknowledged.clear();
        if let Some(folder) = &self.settings.processed_mailbox {
            imap.ensure_folder(folder).await?;
        }
        loop {
            let selected = imap.select(&self.settings.mailbox).await?;
            if selected.uid_validity != self.uid_validity {
                // New UIDVALIDITY: every UID we knew means another message.
                self.uid_validity = selected.uid_validity;
                self.failures.clear();
                self.suspects.clear();
                self.pending_expunge.clear();
            }
            while self.drain(&mut imap, &selected, shutdown).await? > 0 && !shutdown.is_cancelled()
            {
            }
            if shutdown.is_cancelled() {
                imap.logout().await;
                return Ok(());
            }
            if imap.new_mail_announced() {
                // Mail that arrived while we were busy was announced then,
                // not again in IDLE: look before waiting.
                continue;
            }
            let wait = self.wait_time();
            if caps.idle && self.settings.idle {
                match imap.idle(wait).await {
                    Err(ImapError::Shutdown) => return Ok(()),
                    other => other?,
                }
            } else if pause(wait, shutdown).await {
                imap.logout().await;
                return Ok(());
            }
            // A whole wait on a working connection: the next failure starts
            // the back-off from the beginning.
            self.progress = true;
        }
    }

    /// How long to wait before looking again: the renewal or poll interval,
    /// or sooner while fetches that failed are to be tried again.
    fn wait_time(&self) -> Duration {
        let normal = if self.settings.idle {
            Duration::from_secs(self.settings.idle_renewal_secs)
        } else {
            Duration::from_secs(self.settings.poll_interval_secs)
        };
        if self.failures.is_empty() {
            normal
        } else {
            normal.min(RETRY_FAILED_AFTER)
        }
    }

    fn flag_mode(&self) -> bool {
        self.settings.processed_mailbox.is_none()
    }

    /// One pass over the waiting messages, in batches bounded by count and
    /// bytes; returns how many got a committed outcome and were
    /// acknowledged. Stops between batches on shutdown.
    async fn drain(
        &mut self,
        imap: &mut Imap,
        selected: &Selected,
        shutdown: &CancellationToken,
    ) -> Result<usize, SessionError> {
        let mailbox = self.settings.state_key();
        let last_uid = if self.flag_mode() {
            let mut conn = self.store.acquire().await?;
            match store::imap_state::get(&mut conn, &mailbox).await? {
                Some((validity, last)) if validity == i64::from(selected.uid_validity) => {
                    last as u32
                }
                _ => 0,
            }
        } else {
            0
        };
        let query = if self.flag_mode() {
            format!("UID {}:*", last_uid + 1)
        } else if !imap.capabilities.mv && selected.keywords {
            // Copied and flagged, only the EXPUNGE is outstanding.
            format!("NOT (DELETED KEYWORD {COPY_MARKER})")
        } else {
            "ALL".to_string()
        };
        let mut uids = imap.search(&query).await?;
        // `UID n:*` always includes the highest UID, even below n.
        uids.retain(|uid| {
            *uid > last_uid
                && !self.pending_expunge.contains(uid)
                && !self.unacknowledged.contains(uid)
        });
        self.shared
            .metrics
            .set_imap_waiting(&self.settings.name, uids.len() as u64);
        self.shared
            .metrics
            .set_last_poll(&self.settings.name, self.clock.now());
        if uids.is_empty() {
            return Ok(0);
        }
        tracing::info!(waiting = uids.len(), mailbox = %self.settings.name, "processing the mailbox");
        let mut progress = Progress::new(&uids, last_uid);
        // Sizes and flags of the whole backlog at once: one round trip.
        let metas = imap.meta(&uids).await?;
        let queue: VecDeque<Vec<Meta>> = plan_batches(
            &metas,
            self.limits.max_message_bytes,
            self.settings.batch_size,
            self.settings.batch_max_bytes,
        )
        .into();
        let mut committing = Committing::default();
        let drained = self
            .drain_batches(
                imap,
                selected,
                shutdown,
                queue,
                &mut progress,
                &mut committing,
            )
            .await;
        if drained.is_err() {
            // What was fetched is committed before the error is returned
            // (it is read again later and found to be a duplicate).
            for batch in committing.batches.drain(..) {
                let _ = batch.reports.await;
            }
        }
        drained.map(|()| progress.done)
    }

    /// Takes the planned batches: plain ones committed one after the other
    /// while the next are fetched and the ones before moved, the others
    /// alone.
    async fn drain_batches(
        &mut self,
        imap: &mut Imap,
        selected: &Selected,
        shutdown: &CancellationToken,
        mut queue: VecDeque<Vec<Meta>>,
        progress: &mut Progress,
        committing: &mut Committing,
    ) -> Result<(), SessionError> {
        // Committed, to be acknowledged together while later batches are
        // committed.
        let mut lagging = Lagging::default();
        loop {
            if !shutdown.is_cancelled() {
                self.keep_committing(imap, &mut queue, committing).await?;
            }
            if let Some(first) = committing.batches.pop_front() {
                let reports = first.reports.await.map_err(|_| {
                    SessionError::Task("the batch before it was not committed".to_string())
                })??;
                let mut committed = Committed::default();
                committed.absorb(&first.uids, reports);
                for uid in &first.uids {
                    self.failures.remove(uid);
                }
                self.shared.metrics.count(&committed.reports);
                self.shared.outbox_due.notify_one();
                lagging.add(first.batch, committed);
                // The next commit is queued before the server is kept busy
                // moving.
                if !shutdown.is_cancelled() {
                    self.keep_committing(imap, &mut queue, committing).await?;
                }
                if lagging.batches >= ACKNOWLEDGE_TOGETHER || committing.batches.is_empty() {
                    if let Some((before, done)) = lagging.take() {
                        self.settle(imap, selected, &before, done, progress).await?;
                    }
                }
                continue;
            }
            // Nothing is being committed: the next batch goes alone.
            if shutdown.is_cancelled() {
                break;
            }
            let Some(batch) = queue.pop_front() else {
                break;
            };
            match self.take(imap, selected, &batch).await? {
                Taken::Committed(committed) => {
                    self.shared.metrics.count(&committed.reports);
                    self.shared.outbox_due.notify_one();
                    self.settle(imap, selected, &batch, committed, progress)
                        .await?;
                }
                Taken::OneByOne => {
                    // Those that never failed first, so that one bad
                    // message delays nobody.
                    let mut singles = batch;
                    singles.sort_by_key(|m| self.attempts(m.uid));
                    for meta in singles.into_iter().rev() {
                        queue.push_front(vec![meta]);
                    }
                }
            }
        }
        if let Some((before, done)) = lagging.take() {
            self.settle(imap, selected, &before, done, progress).await?;
        }
        Ok(())
    }

    /// Fetches plain batches from the front of the queue until
    /// `COMMITS_AHEAD` are being committed, each commit starting when the
    /// one before it has finished. A batch whose fetch fails goes back to
    /// the queue to be taken one message at a time.
    async fn keep_committing(
        &mut self,
        imap: &mut Imap,
        queue: &mut VecDeque<Vec<Meta>>,
        committing: &mut Committing,
    ) -> Result<(), SessionError> {
        while committing.batches.len() < COMMITS_AHEAD {
            let Some(batch) = queue.pop_front() else {
                return Ok(());
            };
            if !self.plain(&batch) {
                queue.push_front(batch);
                return Ok(());
            }
            let uids: Vec<u32> = batch.iter().map(|m| m.uid).collect();
            let fetched = match imap.fetch(&uids, bytes_of(&batch), false).await {
                Ok(fetched) => self.parse(fetched),
                Err(error) => {
                    tracing::warn!(
                        messages = uids.len(),
                        "fetching a batch failed ({error}); fetching its messages one at a time"
                    );
                    self.suspects.extend(&uids);
                    queue.push_front(batch);
                    return if error.connection_usable() {
                        Ok(())
                    } else {
                        Err(error.into())
                    };
                }
            };
            for uid in &fetched.empty {
                // Tried again alone, and suspended at the limit.
                self.failed(*uid, "the server sent no content (BODY[] NIL)");
            }
            let committer = committing.committer.get_or_insert_with(|| {
                let (queue, queued) = mpsc::unbounded_channel();
                tokio::spawn(commit_in_order(
                    self.pipeline.clone(),
                    self.store.clone(),
                    queued,
                ));
                queue
            });
            let (reports, committed) = oneshot::channel();
            // A committer that stopped drops it: `committed` then says
            // that it was not committed.
            let _ = committer.send(Queued {
                parsing: fetched.parsing,
                messages: fetched.got.len(),
                now: self.clock.now(),
                reports,
            });
            committing.batches.push_back(InFlight {
                batch,
                uids: fetched.got,
                reports: committed,
            });
        }
        Ok(())
    }

    /// Acknowledges a committed batch in the mailbox and moves the stored
    /// position on.
    async fn settle(
        &mut self,
        imap: &mut Imap,
        selected: &Selected,
        batch: &[Meta],
        committed: Committed,
        progress: &mut Progress,
    ) -> Result<(), SessionError> {
        let mut acknowledged = Vec::new();
        if !committed.uids.is_empty() {
            acknowledged = self.acknowledge(imap, selected, batch, &committed).await?;
            self.progress = true;
        }
        if let Some(highest) = progress.acknowledged(&acknowledged) {
            if self.flag_mode() {
                // The stored last UID stays below every message still
                // waiting, so that none is skipped next time.
                let mut conn = self.store.acquire().await?;
                store::imap_state::set(
                    &mut conn,
                    &self.settings.state_key(),
                    i64::from(selected.uid_validity),
                    i64::from(highest),
                )
                .await?;
            }
        }
        let left = progress.waiting.saturating_sub(progress.done);
        self.shared
            .metrics
            .set_imap_waiting(&self.settings.name, left as u64);
        let rate = progress.done as f64 / progress.started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(done = progress.done, left, rate = %format!("{rate:.0}/s"), "batch committed");
        // The client keeps only 100 unsolicited responses; a MOVE's
        // EXPUNGEs fill that. What arrived meanwhile is found by the next
        // search.
        imap.new_mail_announced();
        Ok(())
    }

    fn attempts(&self, uid: u32) -> u32 {
        self.failures.get(&uid).map_or(0, |f| f.attempts)
    }

    /// Fetches and commits a batch of one message, or has a batch of
    /// several taken one message at a time (plain batches are committed by
    /// `keep_committing`). A message that reached the attempt limit is
    /// suspended instead. On a lost connection, what was fetched is
    /// committed before the error is returned.
    async fn take(
        &mut self,
        imap: &mut Imap,
        selected: &Selected,
        batch: &[Meta],
    ) -> Result<Taken, SessionError> {
        let now = self.clock.now();
        let mut committed = Committed::default();
        let [meta] = batch else {
            return Ok(Taken::OneByOne);
        };
        let uid = meta.uid;
        if meta.size > self.limits.max_message_bytes {
            let detail = format!(
                "message of {} bytes exceeds [limits] max_message_bytes = {}",
                meta.size, self.limits.max_message_bytes
            );
            tracing::warn!(
                uid,
                size = meta.size,
                "message too large; suspended from its headers"
            );
            self.hold_back(
                imap,
                selected,
                meta,
                Reason::OverLimit,
                &detail,
                now,
                &mut committed,
            )
            .await?;
        } else if self.attempts(uid) >= self.settings.max_fetch_attempts {
            let detail = self.unreadable_detail(uid);
            self.hold_back(
                imap,
                selected,
                meta,
                Reason::Unreadable,
                &detail,
                now,
                &mut committed,
            )
            .await?;
        } else {
            match imap.fetch(&[uid], meta.size, false).await {
                Ok(mut fetched) => match fetched.pop().and_then(|(_, body)| body) {
                    Some(raw) => {
                        self.suspects.remove(&uid);
                        self.commit(&[uid], vec![raw], now, &mut committed).await?;
                    }
                    None => self.failed(uid, "the server sent no content (BODY[] NIL)"),
                },
                Err(error) => {
                    self.failed(uid, &error.to_string());
                    if !error.connection_usable() {
                        return Err(error.into());
                    }
                }
            }
        }
        Ok(Taken::Committed(committed))
    }

    /// Starts parsing what a batch's FETCH brought: parsing is most of a
    /// message's CPU, and it runs while the server moves the batch before.
    fn parse(&self, fetched: Vec<(u32, Option<Vec<u8>>)>) -> Fetched {
        let mut got = Vec::new();
        let mut empty = Vec::new();
        let mut raws = Vec::new();
        for (uid, body) in fetched {
            match body {
                Some(raw) => {
                    got.push(uid);
                    raws.push(raw);
                }
                None => empty.push(uid),
            }
        }
        Fetched {
            got,
            empty,
            parsing: self.pipeline.parse_elsewhere(raws),
        }
    }

    /// Commits fetched messages through the pipeline.
    async fn commit(
        &mut self,
        uids: &[u32],
        raws: Vec<Vec<u8>>,
        now: i64,
        committed: &mut Committed,
    ) -> Result<(), SessionError> {
        if raws.is_empty() {
            return Ok(());
        }
        let reports = self.pipeline.process_batch(&self.store, &raws, now).await?;
        committed.absorb(uids, reports);
        for uid in uids {
            self.failures.remove(uid);
        }
        Ok(())
    }

    /// A batch of messages that never failed, fetched as one.
    fn plain(&self, batch: &[Meta]) -> bool {
        batch.len() > 1
            && batch.iter().all(|m| {
                m.size <= self.limits.max_message_bytes
                    && !self.suspects.contains(&m.uid)
                    && !self.failures.contains_key(&m.uid)
            })
    }

    fn failed(&mut self, uid: u32, error: &str) {
        let failures = self.failures.entry(uid).or_default();
        failures.attempts += 1;
        failures.last_error = error.to_string();
        self.suspects.insert(uid);
        tracing::warn!(
            uid,
            attempt = failures.attempts,
            of = self.settings.max_fetch_attempts,
            "cannot fetch message: {error}"
        );
    }

    fn unreadable_detail(&self, uid: u32) -> String {
        let failures = self.failures.get(&uid);
        format!(
            "the IMAP server would not hand out message UID {uid} of {} ({} attempts; last: {})",
            self.settings.mailbox,
            failures.map_or(0, |f| f.attempts),
            failures.map_or("", |f| f.last_error.as_str())
        )
    }

    /// Suspends a message from its header section (or, if even that cannot
    /// be had, from its UID and size alone).
    #[allow(clippy::too_many_arguments)]
    async fn hold_back(
        &mut self,
        imap: &mut Imap,
        selected: &Selected,
        meta: &Meta,
        reason: Reason,
        detail: &str,
        now: i64,
        committed: &mut Committed,
    ) -> Result<(), SessionError> {
        let uid = meta.uid;
        let headers_failed = self.failures.get(&uid).is_some_and(|f| f.headers_failed);
        let headers = if headers_failed {
            None
        } else {
            match imap.fetch(&[uid], 0, true).await {
                Ok(mut fetched) => fetched.pop().and_then(|(_, h)| h),
                Err(error) if error.connection_usable() => None,
                Err(error) => {
                    self.failures.entry(uid).or_default().headers_failed = true;
                    return Err(error.into());
                }
            }
        };
        let kept = if headers.is_some() {
            "its headers"
        } else {
            "its UID and size"
        };
        let key = format!(
            "<{}.{}.{uid}@{}.imap.ticketgate>",
            reason.as_str(),
            selected.uid_validity,
            self.settings
                .state_key()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        let detail = format!("{detail}; size {} bytes; kept: {kept}", meta.size);
        let report = self
            .pipeline
            .suspend_held_back(
                &self.store,
                &key,
                &key,
                headers.as_deref(),
                reason,
                &detail,
                now,
            )
            .await?;
        if reason == Reason::Unreadable {
            tracing::warn!(
                uid,
                size = meta.size,
                "suspended as unreadable from {kept}: {detail}"
            );
        }
        self.failures.remove(&uid);
        self.suspects.remove(&uid);
        committed.uids.push(uid);
        committed.reports.push(report);
        Ok(())
    }

    /// Acknowledges committed messages: moved to the processed folder, or
    /// flagged `\Seen`. Returns the UIDs acknowledged. A refusal for the
    /// batch is retried message by message; messages the server still
    /// refuses stay where they are (their outcome is committed).
    async fn acknowledge(
        &mut self,
        imap: &mut Imap,
        selected: &Selected,
        batch: &[Meta],
        committed: &Committed,
    ) -> Result<Vec<u32>, SessionError> {
        let uids = committed.uids.clone();
        match self
            .acknowledge_all(imap, selected, batch, committed, &uids)
            .await
        {
            Ok(()) => Ok(uids),
            Err(error) if error.connection_usable() && uids.len() > 1 => {
                tracing::warn!(
                    "acknowledging {} messages failed ({error}); one at a time",
                    uids.len()
                );
                let mut done = Vec::new();
                for uid in uids {
                    match self
                        .acknowledge_all(imap, selected, batch, committed, &[uid])
                        .await
                    {
                        Ok(()) => done.push(uid),
                        Err(error) if error.connection_usable() => self.refused_ack(uid, &error),
                        Err(error) => return Err(error.into()),
                    }
                }
                Ok(done)
            }
            Err(error) if error.connection_usable() => {
                for uid in &uids {
                    self.refused_ack(*uid, &error);
                }
                Ok(Vec::new())
            }
            Err(error) => Err(error.into()),
        }
    }

    fn refused_ack(&mut self, uid: u32, error: &ImapError) {
        tracing::error!(
            uid,
            "the server refused to acknowledge message UID {uid} ({error}); its outcome is committed, it stays in {}",
            self.settings.mailbox
        );
        self.unacknowledged.insert(uid);
    }

    async fn acknowledge_all(
        &mut self,
        imap: &mut Imap,
        selected: &Selected,
        batch: &[Meta],
        committed: &Committed,
        uids: &[u32],
    ) -> Result<(), ImapError> {
        let Some(folder) = self.settings.processed_mailbox.clone() else {
            return imap.add_flags(uids, "\\Seen").await;
        };
        if imap.capabilities.mv {
            return imap.move_to(uids, &folder).await;
        }
        // COPY, then \Deleted, then EXPUNGE. The marker goes on first, so
        // that after a crash in between, a marked message is looked for in
        // the folder before it is copied a second time.
        let marked: Vec<&str> = uids
            .iter()
            .filter(|uid| batch.iter().any(|m| m.uid == **uid && m.copy_marked))
            .filter_map(|uid| committed.message_ids.get(uid).map(String::as_str))
            .collect();
        let mut to_copy = uids.to_vec();
        if !marked.is_empty() {
            let present = imap.present_in(&folder, &marked).await?;
            imap.select(&self.settings.mailbox).await?;
            to_copy.retain(|uid| {
                let copied = committed
                    .message_ids
                    .get(uid)
                    .is_some_and(|id| present.contains(id));
                if copied {
                    tracing::info!(
                        uid,
                        "already in {folder} (copied before a restart); not copied again"
                    );
                }
                !copied
            });
        }
        if selected.keywords {
            imap.add_flags(uids, COPY_MARKER).await?;
        }
        imap.copy_to(&to_copy, &folder).await?;
        imap.add_flags(uids, "\\Deleted").await?;
        if imap.capabilities.uidplus {
            return imap.uid_expunge(uids).await;
        }
        // A plain EXPUNGE removes every \Deleted message: only when all of
        // them are ours.
        self.pending_expunge.extend(uids);
        let others = if selected.keywords {
            imap.search(&format!("DELETED NOT KEYWORD {COPY_MARKER}"))
                .await?
        } else {
            let deleted = imap.search("DELETED").await?;
            crate::inbound::imap::without(&deleted, &self.pending_expunge)
        };
        if others.is_empty() {
            imap.expunge_all().await?;
            self.pending_expunge.clear();
        } else {
            tracing::info!(
                others = others.len(),
                "not expunging yet: messages flagged \\Deleted by another client are still waiting"
            );
        }
        Ok(())
    }
}

/// What `ticketgate check` says of the mailbox: login, the mailbox, the
/// processed folder, as the poller would meet them at the start of a
/// session. Each line is `Ok(detail)` or `Err(reason)`.
pub async fn check(
    connector: &impl Connector,
    settings: &ImapSettings,
) -> Vec<(String, Result<String, String>)> {
    let shutdown = CancellationToken::new();
    let mut lines = Vec::new();
    let server = format!(
        "{}:{} as {}",
        settings.host, settings.port, settings.username
    );
    let mut imap = match Imap::open(connector, settings, &shutdown).await {
        Ok(imap) => imap,
        Err(error) => {
            lines.push((settings.label(), Err(error.to_string())));
            return lines;
        }
    };
    let caps = imap.capabilities;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    match imap.select(&settings.mailbox).await {
        Ok(selected) => lines.push((
            settings.label(),
            Ok(format!(
                "{server}; {} holds {} messages; IDLE {}, MOVE {}, UIDPLUS {}",
                settings.mailbox,
                selected.exists,
                if caps.idle { "yes" } else { "no (polling)" },
                yes_no(caps.mv),
                yes_no(caps.uidplus),
            )),
        )),
        Err(error) => lines.push((settings.label(), Err(format!("{server}: {error}")))),
    }
    if let Some(folder) = &settings.processed_mailbox {
        let result = match imap.ensure_folder(folder).await {
            Ok(()) => Ok(format!("{folder} exists")),
            Err(error) => Err(error.to_string()),
        };
        lines.push((format!("{} processed_mailbox", settings.label()), result));
    }
    imap.logout().await;
    lines
}

/// How far a drain has come: for the log, the metrics and the stored
/// position.
struct Progress {
    waiting: usize,
    done: usize,
    started: std::time::Instant,
    last_uid: u32,
    in_order: Vec<u32>,
    acknowledged: HashSet<u32>,
    /// How many of `in_order` are acknowledged, counting from the lowest.
    below_all_waiting: usize,
}

impl Progress {
    fn new(uids: &[u32], last_uid: u32) -> Progress {
        let mut in_order = uids.to_vec();
        in_order.sort_unstable();
        Progress {
            waiting: uids.len(),
            done: 0,
            started: std::time::Instant::now(),
            last_uid,
            in_order,
            acknowledged: HashSet::new(),
            below_all_waiting: 0,
        }
    }

    /// Counts acknowledged messages. Returns the highest UID below which
    /// everything is acknowledged now, when that rose: the stored last UID
    /// may only rise over messages that are all acknowledged, whatever
    /// order they were taken in.
    fn acknowledged(&mut self, uids: &[u32]) -> Option<u32> {
        self.done += uids.len();
        self.acknowledged.extend(uids);
        let before = self.below_all_waiting;
        while self
            .in_order
            .get(self.below_all_waiting)
            .is_some_and(|uid| self.acknowledged.contains(uid))
        {
            self.below_all_waiting += 1;
        }
        if self.below_all_waiting == before {
            return None;
        }
        Some(self.in_order[self.below_all_waiting - 1]).filter(|h| *h > self.last_uid)
    }
}

/// What a batch weighs on the wire.
fn bytes_of(batch: &[Meta]) -> u64 {
    batch.iter().map(|m| m.size).sum()
}

/// Committed batches not acknowledged yet, to go to the server in one
/// command.
#[derive(Default)]
struct Lagging {
    metas: Vec<Meta>,
    committed: Committed,
    batches: usize,
}

impl Lagging {
    fn add(&mut self, batch: Vec<Meta>, committed: Committed) {
        self.metas.extend(batch);
        self.committed.uids.extend(committed.uids);
        self.committed.message_ids.extend(committed.message_ids);
        self.committed.reports.extend(committed.reports);
        self.batches += 1;
    }

    /// The batches so far, as one; none if there are none.
    fn take(&mut self) -> Option<(Vec<Meta>, Committed)> {
        let Lagging {
            metas,
            committed,
            batches,
        } = std::mem::take(self);
        (batches > 0).then_some((metas, committed))
    }
}

impl Committed {
    /// Adds the reports of committed messages, by UID.
    fn absorb(&mut self, uids: &[u32], reports: Vec<Report>) {
        debug_assert_eq!(uids.len(), reports.len());
        for (uid, report) in uids.iter().zip(reports) {
            // A Message-ID of its own, to look for after a crash (not
            // one ticketgate made up from the content).
            if !report.message_id.ends_with(HASHED_ID_SUFFIX) {
                self.message_ids.insert(*uid, report.message_id.clone());
            }
            self.uids.push(*uid);
            self.reports.push(report);
        }
    }
}

/// Commits a drain's batches in mailbox order, so that a reply sees the
/// ticket its question opened a batch earlier. Batches that are waiting
/// when the one before is done go in one transaction, up to
/// `COMMIT_TOGETHER`: one sync to disk for all. Stops at the first failure;
/// the batches after it are not committed.
async fn commit_in_order(
    pipeline: Arc<Pipeline>,
    store: Store,
    mut queued: mpsc::UnboundedReceiver<Queued>,
) {
    while let Some(first) = queued.recv().await {
        let now = first.now;
        let mut group = vec![first];
        while group.len() < COMMIT_TOGETHER {
            match queued.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(group.len());
        let mut parsings = Vec::with_capacity(group.len());
        for batch in group {
            parsings.push(batch.parsing);
            replies.push((batch.messages, batch.reports));
        }
        match pipeline.commit_parsed(&store, parsings, now).await {
            Ok(mut reports) => {
                for (messages, reply) in replies {
                    let rest = reports.split_off(messages.min(reports.len()));
                    let _ = reply.send(Ok(std::mem::replace(&mut reports, rest)));
                }
            }
            Err(error) => {
                // The first is told why; the rest, and all queued behind,
                // are dropped unanswered, which reads as not committed.
                if let Some((_, first)) = replies.into_iter().next() {
                    let _ = first.send(Err(error.into()));
                }
                return;
            }
        }
    }
}

/// Splits metadata into batches of at most `max_count` messages and
/// `max_bytes` (a larger message alone); messages over `max_message_bytes`
/// each form a batch of their own and are suspended from their headers.
pub fn plan_batches(
    metas: &[Meta],
    max_message_bytes: u64,
    max_count: usize,
    max_bytes: u64,
) -> Vec<Vec<Meta>> {
    let mut batches: Vec<Vec<Meta>> = Vec::new();
    let mut current: Vec<Meta> = Vec::new();
    let mut bytes = 0u64;
    for meta in metas {
        if meta.size > max_message_bytes {
            batches.push(vec![meta.clone()]);
            continue;
        }
        if !current.is_empty() && (bytes + meta.size > max_bytes || current.len() >= max_count) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += meta.size;
        current.push(meta.clone());
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Sleeps `duration` unless shutdown comes first; returns whether to stop.
pub async fn pause(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => shutdown.is_cancelled(),
        _ = shutdown.cancelled() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: u32, size: u64) -> Meta {
        Meta {
            uid,
            size,
            copy_marked: false,
        }
    }

    #[test]
    fn batches_are_bounded_by_bytes_and_large_mail_goes_alone() {
        let metas = [
            meta(1, 400),
            meta(2, 400),
            meta(3, 400),
            meta(4, 5_000),
            meta(5, 100),
        ];
        let uids = |batches: Vec<Vec<Meta>>| -> Vec<Vec<u32>> {
            batches
                .iter()
                .map(|b| b.iter().map(|m| m.uid).collect())
                .collect()
        };
        assert_eq!(
            uids(plan_batches(&metas, 4_000, 100, 1_000)),
            vec![vec![1, 2], vec![4], vec![3, 5]]
        );
        assert_eq!(
            uids(plan_batches(&metas, 4_000, 1, 1_000)),
            vec![vec![1], vec![2], vec![4], vec![3], vec![5]]
        );
    }

    #[tokio::test]
    async fn batches_committed_together_get_their_own_reports_in_order() {
        let settings =
            crate::config::Settings::parse(crate::config::SAMPLE, std::path::Path::new("/tmp"))
                .unwrap();
        let pipeline = Arc::new(Pipeline::new(&settings));
        let store = Store::open("sqlite::memory:").await.unwrap();
        let mail = |id: &str| {
            format!(
                "From: someone@example.org\r\nTo: support@example.com\r\nSubject: {id}\r\n\
                 Message-ID: <{id}@example.org>\r\n\r\nHallo\r\n"
            )
            .into_bytes()
        };
        let (queue, queued) = mpsc::unbounded_channel();
        let mut replies = Vec::new();
        for batch in [vec!["a1", "a2"], vec!["b1", "b2", "b3"]] {
            let (reports, reply) = oneshot::channel();
            let raws = batch.iter().map(|id| mail(id)).collect();
            let queued = Queued {
                parsing: pipeline.parse_elsewhere(raws),
                messages: batch.len(),
                now: 1_700_000_000,
                reports,
            };
            assert!(queue.send(queued).is_ok());
            replies.push(reply);
        }
        drop(queue);
        // Both are waiting when the committer starts: one transaction.
        commit_in_order(pipeline, store, queued).await;
        let mut got = Vec::new();
        for reply in replies {
            let reports = reply.await.unwrap().unwrap();
            got.push(
                reports
                    .into_iter()
                    .map(|r| r.message_id)
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(
            got,
            [
                vec!["<a1@example.org>", "<a2@example.org>"],
                vec!["<b1@example.org>", "<b2@example.org>", "<b3@example.org>"]
            ]
        );
    }
}
