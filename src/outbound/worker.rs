//! The outbox worker of `ticketgate run`: delivers due notifications every
//! `outbox_interval_secs`, and at once when the poller queued some. On
//! shutdown, a delivery in hand may finish for a moment; then it is
//! abandoned, and its claim lapses so that it is sent after the restart
//! (at least once, see `deliver`).

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::domain::retry::Backoff;
use crate::outbound::deliver::{Deliverer, Scope};
use crate::store::Store;

/// How long a delivery in hand may go on after shutdown began.
const GRACE: Duration = Duration::from_secs(3);

pub async fn run(
    deliverer: &Deliverer,
    store: &Store,
    metrics: &crate::metrics::Metrics,
    clock: Clock,
    interval: Duration,
    due: &Notify,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let flush = deliverer.flush(store, clock.now(), Scope::All);
        tokio::pin!(flush);
        let result = tokio::select! {
            result = &mut flush => result,
            _ = shutdown.cancelled() => {
                if tokio::time::timeout(GRACE, &mut flush).await.is_err() {
                    tracing::info!("outbox: delivery in hand abandoned at shutdown; it is sent after the restart");
                }
                return;
            }
        };
        let wait = match result {
            Ok(report) => {
                backoff.reset();
                metrics.count_deliveries(&report);
                if report != Default::default() {
                    tracing::info!(
                        sent = report.sent,
                        retrying = report.retrying,
                        failed = report.failed,
                        suppressed = report.suppressed,
                        "outbox delivered"
                    );
                }
                interval
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    "outbox worker: database error: {error}; again in {} s",
                    delay.as_secs()
                );
                delay
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = due.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
