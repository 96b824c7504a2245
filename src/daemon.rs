//! `ticketgate run`: the IMAP poller (IDLE where offered, polling
//! otherwise), the outbox worker, the scheduler and the metrics endpoint,
//! on one thread, until SIGTERM or SIGINT. Every peer may go away; each
//! task reconnects with capped exponential back-off, and a message is
//! acknowledged in the mailbox only after its outcome is committed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify};

use crate::clock::Clock;
use crate::config::{ImapSettings, Settings};
use crate::inbound::imap::{self, Capabilities, ImapError, ImapSession};
use crate::inbound::process::{Outcome, Pipeline, PipelineError, Report};
use crate::outbound::deliver::{Deliverer, Scope};
use crate::store::{self, Store};

/// IDLE is re-issued well before the 29 minutes RFC 2177 allows.
const IDLE_RENEWAL: Duration = Duration::from_secs(25 * 60);
const SCHEDULER_INTERVAL: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

const OUTCOMES: [Outcome; 7] = [
    Outcome::Created,
    Outcome::Appended,
    Outcome::Reopened,
    Outcome::Followup,
    Outcome::Suspended,
    Outcome::Ignored,
    Outcome::Duplicate,
];

/// Counters the metrics endpoint reports.
#[derive(Default)]
pub struct Metrics {
    messages: [AtomicU64; 7],
    imap_connected: AtomicBool,
    imap_waiting: AtomicU64,
}

impl Metrics {
    fn count(&self, reports: &[Report]) {
        for report in reports {
            let index = OUTCOMES
                .iter()
                .position(|o| *o == report.outcome)
                .expect("all outcomes listed");
            self.messages[index].fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error("IMAP: {0}")]
    Protocol(#[from] async_imap::error::Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Everything the tasks share.
struct Daemon {
    settings: Settings,
    store: Store,
    clock: Clock,
    pipeline: Pipeline,
    deliverer: Deliverer,
    metrics: Metrics,
    /// Wakes the outbox worker when the poller queued mail.
    outbox_due: Notify,
}

/// Runs until SIGTERM/SIGINT. Fails at start when the templates, the
/// transport or the metrics address are unusable.
pub async fn run(settings: Settings, store: Store, clock: Clock) -> Result<(), String> {
    let deliverer = Deliverer::new(&settings)?;
    let metrics_listener = match &settings.daemon.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| format!("[daemon] metrics_listen {address}: {e}"))?,
        ),
        None => None,
    };
    let daemon = Arc::new(Daemon {
        pipeline: Pipeline::new(&settings),
        settings,
        store,
        clock,
        deliverer,
        metrics: Metrics::default(),
        outbox_due: Notify::new(),
    });
    let (stop, stopped) = watch::channel(false);
    tracing::info!("ticketgate running");
    tokio::join!(
        signals(stop),
        daemon.poll_mailbox(stopped.clone()),
        daemon.deliver_outbox(stopped.clone()),
        daemon.schedule(stopped.clone()),
        daemon.serve_metrics(metrics_listener, stopped),
    );
    tracing::info!("ticketgate stopped");
    Ok(())
}

async fn signals(stop: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        tracing::error!("cannot listen for SIGTERM");
        return;
    };
    let Ok(mut int) = signal(SignalKind::interrupt()) else {
        tracing::error!("cannot listen for SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing the batch in hand"),
        _ = int.recv() => tracing::info!("SIGINT: finishing the batch in hand"),
    }
    let _ = stop.send(true);
}

/// Sleeps `duration` unless asked to stop first; returns whether to stop.
async fn pause(duration: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(duration) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

/// Whether the server announced new messages (EXISTS/RECENT) during the
/// commands since the last look; consumes those announcements.
fn new_mail_announced(session: &ImapSession) -> bool {
    use async_imap::types::UnsolicitedResponse;
    let mut announced = false;
    while let Ok(response) = session.unsolicited_responses.try_recv() {
        if matches!(response, UnsolicitedResponse::Exists(n) | UnsolicitedResponse::Recent(n) if n > 0)
        {
            announced = true;
        }
    }
    announced
}

struct Backoff(Duration);

impl Backoff {
    fn next(&mut self) -> Duration {
        let current = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        current
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_START;
    }
}

impl Daemon {
    async fn poll_mailbox(&self, mut stopped: watch::Receiver<bool>) {
        let Some(imap) = &self.settings.imap else {
            tracing::info!("no [imap] section: not reading a mailbox");
            return;
        };
        let mut backoff = Backoff(BACKOFF_START);
        loop {
            let result = self.session(imap, &mut stopped, &mut backoff).await;
            self.metrics.imap_connected.store(false, Ordering::Relaxed);
            match result {
                Ok(()) => return,
                Err(error) => {
                    let delay = backoff.next();
                    tracing::warn!(%error, retry_in = ?delay, "IMAP session ended");
                    if pause(delay, &mut stopped).await {
                        return;
                    }
                }
            }
        }
    }

    /// One IMAP connection: drain the mailbox, then wait for more (IDLE or
    /// polling), until stopped (`Ok`) or the connection fails (`Err`).
    async fn session(
        &self,
        imap: &ImapSettings,
        stopped: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Result<(), SessionError> {
        let (mut session, capabilities) = imap::connect(imap).await?;
        tracing::info!(host = %imap.host, idle = capabilities.idle, r#move = capabilities.mv, "IMAP connected");
        self.metrics.imap_connected.store(true, Ordering::Relaxed);
        if let Some(folder) = &imap.processed_mailbox {
            // Usually exists already; then the server says so and we go on.
            let _ = session.create(folder).await;
        }
        loop {
            let mailbox = session.select(&imap.mailbox).await?;
            backoff.reset();
            let uid_validity = i64::from(mailbox.uid_validity.unwrap_or(0));
            // Until a search finds nothing: mail that arrived during a
            // drain is taken before waiting.
            while self
                .drain(&mut session, imap, capabilities, uid_validity, stopped)
                .await?
                > 0
                && !*stopped.borrow()
            {}
            if *stopped.borrow() {
                let _ = session.logout().await;
                return Ok(());
            }
            if new_mail_announced(&session) {
                // Mail that arrived while we were busy was announced then,
                // not again in IDLE: look before waiting.
                continue;
            }
            if capabilities.idle && imap.idle {
                let mut handle = session.idle();
                handle.init().await?;
                let (wait, _interrupt) = handle.wait_with_timeout(IDLE_RENEWAL);
                tokio::select! {
                    response = wait => { response?; }
                    _ = stopped.changed() => return Ok(()),
                }
                session = handle.done().await?;
            } else if pause(Duration::from_secs(imap.poll_interval_secs), stopped).await {
                let _ = session.logout().await;
                return Ok(());
            }
        }
    }

    /// Processes every waiting message in batches: fetch, commit through
    /// the pipeline, then acknowledge in the mailbox. Stops between batches
    /// when asked to.
    async fn drain(
        &self,
        session: &mut ImapSession,
        imap: &ImapSettings,
        capabilities: Capabilities,
        uid_validity: i64,
        stopped: &watch::Receiver<bool>,
    ) -> Result<usize, SessionError> {
        let mut conn = self.store.acquire().await?;
        let last_uid = match store::imap_state::get(&mut conn, &imap.mailbox).await? {
            Some((validity, last)) if validity == uid_validity => last,
            _ => 0,
        };
        drop(conn);
        // With a processed folder, whatever is left in the mailbox waits;
        // without one, processed mail stays and the last UID tells apart.
        let after = imap.processed_mailbox.is_none().then_some(last_uid as u32);
        let uids = imap::waiting_uids(session, after).await?;
        self.metrics
            .imap_waiting
            .store(uids.len() as u64, Ordering::Relaxed);
        if uids.is_empty() {
            return Ok(0);
        }
        tracing::info!(waiting = uids.len(), "processing the mailbox");
        let started = Instant::now();
        let mut done = 0usize;
        for batch in uids.chunks(imap.batch_size) {
            if *stopped.borrow() {
                break;
            }
            let now = self.clock.now();
            let sizes = imap::sizes(session, batch).await?;
            let (fits, too_large): (Vec<_>, Vec<_>) = sizes
                .iter()
                .partition(|(_, size)| *size <= imap.max_message_bytes);
            let fitting: Vec<u32> = fits.iter().map(|(uid, _)| *uid).collect();
            let mut reports = Vec::new();
            for (uid, size) in too_large {
                for (_, headers) in imap::fetch(session, &[uid], true).await? {
                    tracing::warn!(uid, size, "message too large; suspended from its headers");
                    reports.push(
                        self.pipeline
                            .suspend_oversized(&self.store, &headers, size, now)
                            .await?,
                    );
                }
            }
            let raws: Vec<Vec<u8>> = imap::fetch(session, &fitting, false)
                .await?
                .into_iter()
                .map(|(_, raw)| raw)
                .collect();
            reports.extend(self.pipeline.process_batch(&self.store, &raws, now).await?);
            self.metrics.count(&reports);
            self.outbox_due.notify_one();

            imap::acknowledge(
                session,
                capabilities,
                batch,
                imap.processed_mailbox.as_deref(),
            )
            .await?;
            let highest = i64::from(*batch.last().expect("chunks are not empty"));
            let mut conn = self.store.acquire().await?;
            store::imap_state::set(&mut conn, &imap.mailbox, uid_validity, highest).await?;
            done += batch.len();
            let left = uids.len() - done;
            self.metrics
                .imap_waiting
                .store(left as u64, Ordering::Relaxed);
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
            tracing::info!(done, left, rate = format!("{rate:.0}/s"), "batch committed");
            // The client keeps only 100 unsolicited responses and drops the
            // rest; a MOVE's EXPUNGEs would fill that and hide a later
            // EXISTS. What arrived meanwhile is found by the next search.
            new_mail_announced(session);
        }
        Ok(done)
    }

    async fn deliver_outbox(&self, mut stopped: watch::Receiver<bool>) {
        let interval = Duration::from_secs(self.settings.daemon.outbox_interval_secs);
        let mut backoff = Backoff(BACKOFF_START);
        loop {
            let wait = match self
                .deliverer
                .flush(&self.store, self.clock.now(), Scope::All)
                .await
            {
                Ok(report) => {
                    backoff.reset();
                    if report != Default::default() {
                        tracing::info!(?report, "outbox delivered");
                    }
                    interval
                }
                Err(error) => {
                    let delay = backoff.next();
                    tracing::warn!(%error, retry_in = ?delay, "outbox worker: database error");
                    delay
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.outbox_due.notified() => {}
                _ = stopped.changed() => return,
            }
        }
    }

    async fn schedule(&self, mut stopped: watch::Receiver<bool>) {
        loop {
            match crate::scheduler::close_solved(&self.store, &self.settings, self.clock.now())
                .await
            {
                Ok(closed) if !closed.is_empty() => {
                    tracing::info!(?closed, "closed solved tickets")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "scheduler: database error"),
            }
            if pause(SCHEDULER_INTERVAL, &mut stopped).await {
                return;
            }
        }
    }

    async fn serve_metrics(
        &self,
        listener: Option<tokio::net::TcpListener>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let Some(listener) = listener else { return };
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped.changed() => return,
            };
            let Ok((mut socket, _)) = accepted else {
                continue;
            };
            let mut request = [0u8; 1024];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let response = if request[..n].starts_with(b"GET /metrics") {
                let body = self.render_metrics().await;
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = socket.write_all(response.as_bytes()).await;
        }
    }

    /// Prometheus text format.
    async fn render_metrics(&self) -> String {
        let mut out = String::from("# TYPE ticketgate_messages_total counter\n");
        for (outcome, counter) in OUTCOMES.iter().zip(&self.metrics.messages) {
            out.push_str(&format!(
                "ticketgate_messages_total{{outcome=\"{}\"}} {}\n",
                outcome.as_str(),
                counter.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# TYPE ticketgate_imap_connected gauge\nticketgate_imap_connected {}\n",
            u8::from(self.metrics.imap_connected.load(Ordering::Relaxed))
        ));
        out.push_str(&format!(
            "# TYPE ticketgate_imap_waiting_messages gauge\nticketgate_imap_waiting_messages {}\n",
            self.metrics.imap_waiting.load(Ordering::Relaxed)
        ));
        let health = match self.store.acquire().await {
            Ok(mut conn) => store::outbox::health(&mut conn, self.clock.now()).await,
            Err(e) => Err(e),
        };
        match health {
            Ok((states, oldest)) => {
                out.push_str("# TYPE ticketgate_outbox_messages gauge\n");
                for (state, count) in states {
                    out.push_str(&format!(
                        "ticketgate_outbox_messages{{state=\"{state}\"}} {count}\n"
                    ));
                }
                out.push_str(&format!(
                    "# TYPE ticketgate_outbox_oldest_queued_seconds gauge\nticketgate_outbox_oldest_queued_seconds {}\n",
                    oldest.unwrap_or(0)
                ));
            }
            Err(error) => tracing::warn!(%error, "metrics: database error"),
        }
        out
    }
}
