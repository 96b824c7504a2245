//! Due jobs: closing tickets solved longer than `reopen_days` ago.
//! Idempotent: running a job twice changes nothing the second time.

use crate::config::Settings;
use crate::domain::ticket::Status;
use crate::store::{self, Store};

const DAY: i64 = 86_400;

/// Closes every ticket solved more than `reopen_days` before `now`; returns
/// their ids.
pub async fn close_solved(
    store: &Store,
    settings: &Settings,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let cutoff = now - settings.policy.reopen_days * DAY;
    let mut tx = store.begin().await?;
    let due = store::tickets::solved_before(&mut tx, cutoff).await?;
    for id in &due {
        store::tickets::set_status(&mut tx, *id, Status::Closed, now).await?;
    }
    tx.commit().await?;
    Ok(due)
}

const INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The daemon's scheduler: runs the jobs every minute until shutdown.
pub async fn run(
    store: &Store,
    settings: &Settings,
    clock: crate::clock::Clock,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match close_solved(store, settings, clock.now()).await {
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
