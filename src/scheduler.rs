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
