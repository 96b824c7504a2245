//! Sharing the mailboxes among instances: a poller reads its mailbox only
//! while this instance holds the mailbox's lease (`store::leases`). The
//! holder renews it; an instance that died stops renewing, and another
//! takes the mailbox over within `failover_secs`.
//!
//! With `failover_secs` F, a lease lasts 4/5 F and is renewed, and sought
//! by the others, every 1/5 F: a dead holder's lease ends at most 4/5 F
//! after its death, and someone takes it at most 1/5 F later. A holder
//! that cannot renew (the database is away) stops reading before its
//! lease ends, so two instances never read one mailbox at once.
//!
//! Sharing out: instances started together should not leave one of them
//! reading everything. An instance makes its attempts one at a time,
//! counting what it holds; one that holds k mailboxes already seeks a free
//! mailbox (no lease row: never read, or given up at shutdown) only after
//! k more rounds, so an idle instance gets it first. (An instance alone
//! thus starts reading its second mailbox a round later.) A mailbox whose
//! holder died (its lease expired) is taken over at once by whoever comes
//! first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::inbound::imap::Connector;
use crate::inbound::poller::{pause, Poller};
use crate::store::{self, Store};

/// The timing of the leases, from `failover_secs`.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    /// How long a lease lasts from its last renewal.
    pub lasts: Duration,
    /// How often the holder renews it and the others try to take it.
    pub every: Duration,
}

impl LeaseTiming {
    pub fn from_failover_secs(failover_secs: u64) -> LeaseTiming {
        let failover = Duration::from_secs(failover_secs.max(1));
        LeaseTiming {
            lasts: failover * 4 / 5,
            every: (failover / 5).max(Duration::from_millis(200)),
        }
    }
}

/// Who this instance is in `mailbox_leases` and in `check`:
/// `host:pid:random:pid-namespace`. The random part tells a restarted
/// process with the same pid from the one before; host and namespace tell
/// whose pid it is (see `is_dead_neighbour`).
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(':', "-"))
        .unwrap_or_else(|_| "host".into());
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|link| {
            link.to_string_lossy()
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        })
        .unwrap_or_default();
    let random: u16 = rand::random();
    format!("{host}:{}:{random:04x}:{namespace}", std::process::id())
}

/// Whether `holder` was a process of this host and pid namespace that is
/// gone: it died without giving its leases up (a crash, SIGKILL), so a
/// restarted instance need not wait for them to expire. Holders elsewhere
/// can only expire.
pub fn is_dead_neighbour(holder: &str, me: &str) -> bool {
    let theirs: Vec<&str> = holder.split(':').collect();
    let mine: Vec<&str> = me.split(':').collect();
    let [their_host, their_pid, _, their_namespace] = theirs[..] else {
        return false;
    };
    let [my_host, _, _, my_namespace] = mine[..] else {
        return false;
    };
    if their_host != my_host || their_namespace != my_namespace || my_namespace.is_empty() {
        return false;
    }
    match their_pid.parse::<u32>() {
        Ok(pid) => {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        Err(_) => false,
    }
}

/// How many mailboxes this instance reads: shared by its leases.
pub type HeldCount = Arc<tokio::sync::Mutex<usize>>;

/// One mailbox's lease, as held by this instance.
pub struct Lease {
    pub store: Store,
    pub mailbox: String,
    pub holder: String,
    pub timing: LeaseTiming,
    pub held: HeldCount,
}

impl Lease {
    /// Takes or renews it; `Ok(false)` while another instance holds it.
    async fn take(&self) -> Result<bool, sqlx::Error> {
        let mut conn = self.store.acquire().await?;
        let secs = self.timing.lasts.as_secs_f64().ceil() as i64;
        store::leases::take(
            &mut conn,
            self.store.backend,
            &self.mailbox,
            &self.holder,
            secs,
        )
        .await
    }

    /// Whether the mailbox has no lease row: never read, or given up.
    async fn is_free(&self) -> Result<bool, sqlx::Error> {
        let mut conn = self.store.acquire().await?;
        store::leases::is_free(&mut conn, &self.mailbox).await
    }

    /// Removes the lease of a dead process of this host (see
    /// `is_dead_neighbour`); whether there was one.
    async fn clear_dead_neighbour(&self) -> bool {
        let cleared = async {
            let mut conn = self.store.acquire().await?;
            let Some(holder) = store::leases::holder(&mut conn, &self.mailbox).await? else {
                return Ok(false);
            };
            if !is_dead_neighbour(&holder, &self.holder) {
                return Ok(false);
            }
            tracing::info!(mailbox = %self.mailbox, "{holder}, which held this mailbox, is gone; taking over");
            store::leases::release(&mut conn, &self.mailbox, &holder).await?;
            Ok::<_, sqlx::Error>(true)
        };
        cleared.await.unwrap_or(false)
    }

    /// Waits until this instance holds the lease; false on shutdown.
    async fn wait_to_take(&self, shutdown: &CancellationToken) -> bool {
        let mut said = false;
        let mut deferred = false;
        loop {
            // One attempt of this instance at a time, so that it counts
            // what it holds before it seeks more.
            let attempt = {
                let mut held = self.held.lock().await;
                if *held > 0 && !deferred && self.is_free().await.unwrap_or(false) {
                    // Leave a free mailbox to instances that read fewer.
                    Err(self.timing.every * *held as u32)
                } else {
                    let taken = self.take().await;
                    if matches!(taken, Ok(true)) {
                        *held += 1;
                    }
                    Ok(taken)
                }
            };
            let wait = match attempt {
                Err(others_first) => {
                    deferred = true;
                    others_first
                }
                Ok(Ok(true)) => {
                    tracing::info!(mailbox = %self.mailbox, holder = %self.holder, "reading this mailbox");
                    return true;
                }
                Ok(Ok(false)) if self.clear_dead_neighbour().await => Duration::ZERO,
                Ok(Ok(false)) => {
                    if !said {
                        tracing::info!(mailbox = %self.mailbox, "another instance reads this mailbox; standing by");
                        said = true;
                    }
                    self.timing.every
                }
                Ok(Err(error)) => {
                    tracing::warn!(mailbox = %self.mailbox, "cannot take the mailbox's lease: {error}");
                    self.timing.every
                }
            };
            if pause(wait, shutdown).await {
                return false;
            }
        }
    }

    /// Renews the lease until `held` is cancelled; cancels it when the
    /// lease is lost or could not be renewed for so long that it may have
    /// ended.
    async fn keep(&self, held: &CancellationToken) {
        let mut renewed = Instant::now();
        loop {
            if pause(self.timing.every, held).await {
                return;
            }
            match self.take().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(mailbox = %self.mailbox, "the mailbox's lease went to another instance; no longer reading it");
                    held.cancel();
                    return;
                }
                Err(error) => {
                    tracing::warn!(mailbox = %self.mailbox, "cannot renew the mailbox's lease: {error}");
                    // Stop one renewal before it may end, not after.
                    if renewed.elapsed() + self.timing.every >= self.timing.lasts {
                        tracing::warn!(mailbox = %self.mailbox, "the lease may end before it is renewed; no longer reading the mailbox");
                        held.cancel();
                        return;
                    }
                }
            }
        }
    }

    async fn release(&self) {
        let released = async {
            let mut conn = self.store.acquire().await?;
            store::leases::release(&mut conn, &self.mailbox, &self.holder).await
        };
        if let Err(error) = released.await {
            tracing::warn!(mailbox = %self.mailbox, "cannot give the lease up ({error}); it ends by itself");
        }
    }
}

/// Reads the mailbox whenever this instance holds its lease, until
/// shutdown; at shutdown the lease is given up for the next instance.
pub async fn read_while_held<C: Connector>(
    mut poller: Poller<C>,
    lease: Lease,
    shutdown: CancellationToken,
) {
    loop {
        if !lease.wait_to_take(&shutdown).await {
            return;
        }
        let held = shutdown.child_token();
        tokio::join!(poller.run(held.clone()), lease.keep(&held));
        *lease.held.lock().await -= 1;
        if shutdown.is_cancelled() {
            lease.release().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_process_of_this_host_and_namespace_is_a_dead_neighbour() {
        let me = instance_name();
        let parts: Vec<&str> = me.split(':').collect();
        let (host, namespace) = (parts[0], parts[3]);
        // Beyond the largest pid Linux hands out.
        let gone = format!("{host}:4194999:abcd:{namespace}");
        assert!(is_dead_neighbour(&gone, &me));
        let alive = format!("{host}:1:abcd:{namespace}");
        assert!(!is_dead_neighbour(&alive, &me));
        let myself = format!("{host}:{}:abcd:{namespace}", std::process::id());
        assert!(!is_dead_neighbour(&myself, &me));
        let elsewhere = format!("other-host:4194999:abcd:{namespace}");
        assert!(!is_dead_neighbour(&elsewhere, &me));
        let other_namespace = format!("{host}:4194999:abcd:1");
        assert!(!is_dead_neighbour(&other_namespace, &me));
        assert!(!is_dead_neighbour("old-style:4194999", &me));
    }
}
