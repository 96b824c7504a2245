//! Due jobs: closing tickets solved longer than `reopen_days` ago.
//! Idempotent: running a job twice changes nothing the second time.

use crate::domain::ticket::close_cutoff;
use crate::store::{self, Store};

/// Closes every ticket solved more than `reopen_days` before `now`; returns
/// their ids.
pub async fn close_solved(
    store: &Store,
    reopen_days: i64,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let cutoff = close_cutoff(now, reopen_days);
    let mut tx = store.begin().await?;
    store::facts::lock_counters(&mut tx, store.backend).await?;
    let closed = store::tickets::close_solved_before(&mut tx, cutoff, now).await?;
    tx.commit().await?;
    Ok(closed)
}

const INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The daemon's scheduler: runs the jobs every minute until shutdown.
pub async fn run(
    store: &Store,
    reopen_days: i64,
    clock: crate::clock::Clock,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match close_solved(store, reopen_days, clock.now()).await {
            Ok(closed) if !closed.is_empty() => {
                let ids: Vec<String> = closed.iter().map(|id| format!("#{id}")).collect();
                tracing::info!("closed solved tickets: {}", ids.join(", "))
            }
            Ok(_) => {}
            Err(error) => tracing::warn!("scheduler: database error: {error}"),
        }
        if crate::inbound::poller::pause(INTERVAL, &shutdown).await {
            return;
        }
    }
}
