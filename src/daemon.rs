//! `ticketgate run`: wiring only. It starts a poller per mailbox (each
//! reading while this instance holds the mailbox's lease), the outbox
//! worker, the scheduler, the help center (when `[web] listen` is set) and
//! the metrics endpoint on one thread, and stops
//! them together on SIGTERM or SIGINT: each task watches the same
//! cancellation token, abandons network waits at once and never leaves a
//! message acknowledged that is not committed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Settings;
use crate::inbound::imap::NetConnector;
use crate::inbound::lease::{instance_name, read_while_held, HeldCount, Lease, LeaseTiming};
use crate::inbound::poller::{Poller, Shared};
use crate::inbound::process::Pipeline;
use crate::metrics::Metrics;
use crate::outbound::deliver::Deliverer;
use crate::store::Store;

/// After SIGTERM, the tasks get this long before the process exits anyway.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

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
    let web_listener = bind_web(&settings).await?;
    let metrics = Arc::new(Metrics::default());
    let outbox_due = Arc::new(Notify::new());
    let web = Arc::new(crate::web::Web::new(
        &settings,
        store.clone(),
        clock,
        metrics.clone(),
        outbox_due.clone(),
    ));
    let pipeline = Pipeline::new(&settings);
    let shutdown = CancellationToken::new();
    let holder = instance_name();
    let timing = LeaseTiming::from_failover_secs(settings.daemon.failover_secs);
    let held = HeldCount::default();
    let readers: Vec<_> = settings
        .mailboxes
        .iter()
        .map(|imap| {
            let poller = Poller::new(
                imap,
                &settings.limits,
                NetConnector::new(imap),
                Arc::new(pipeline.for_mailbox(imap.category)),
                store.clone(),
                clock,
                Shared {
                    metrics: metrics.clone(),
                    outbox_due: outbox_due.clone(),
                },
            );
            let lease = Lease {
                store: store.clone(),
                mailbox: imap.name.clone(),
                holder: holder.clone(),
                timing,
                held: held.clone(),
            };
            read_while_held(poller, lease, shutdown.clone())
        })
        .collect();
    if readers.is_empty() {
        tracing::info!("no [imap] or [[mailbox]] section: not reading a mailbox");
    }
    let interval = Duration::from_secs(settings.daemon.outbox_interval_secs);
    tracing::info!(instance = %holder, "ticketgate running");
    tokio::join!(
        signals(shutdown.clone()),
        futures::future::join_all(readers),
        crate::outbound::worker::run(
            &deliverer,
            &store,
            &metrics,
            clock,
            interval,
            &outbox_due,
            shutdown.clone()
        ),
        crate::scheduler::run(&store, settings.policy.reopen_days, clock, shutdown.clone()),
        async {
            if let Some(listener) = metrics_listener {
                crate::metrics::serve(
                    metrics.clone(),
                    store.clone(),
                    clock,
                    listener,
                    shutdown.clone(),
                )
                .await;
            }
        },
        async {
            if let Some(listener) = web_listener {
                if let Err(e) = crate::web::serve(web, listener, shutdown.clone()).await {
                    tracing::error!("help center: {e}");
                }
            }
        },
    );
    tracing::info!("ticketgate stopped");
    Ok(())
}

/// The help center's address, bound at start so that a taken port stops
/// start-up with a clear message.
pub async fn bind_web(settings: &Settings) -> Result<Option<tokio::net::TcpListener>, String> {
    let Some(address) = &settings.web.listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("[web] listen {address}: {e}"))?;
    tracing::info!(
        "help center on http://{address} ({})",
        settings.web.base_url
    );
    Ok(Some(listener))
}

/// `ticketgate serve`: the help center alone, until SIGTERM or SIGINT.
pub async fn serve(settings: Settings, store: Store, clock: Clock) -> Result<(), String> {
    let Some(listener) = bind_web(&settings).await? else {
        return Err("[web] listen is not set: the help center has no address".into());
    };
    let web = Arc::new(crate::web::Web::new(
        &settings,
        store,
        clock,
        Arc::new(Metrics::default()),
        Arc::new(Notify::new()),
    ));
    let shutdown = CancellationToken::new();
    let (served, ()) = tokio::join!(
        crate::web::serve(web, listener, shutdown.clone()),
        signals(shutdown.clone())
    );
    served.map_err(|e| format!("help center: {e}"))
}

/// Cancels `shutdown` on SIGTERM or SIGINT, and ends the process if the
/// tasks have not stopped `STOP_DEADLINE` later.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
        _ = shutdown.cancelled() => return,
    }
    shutdown.cancel();
    std::thread::spawn(|| {
        std::thread::sleep(STOP_DEADLINE);
        tracing::error!(
            "still not stopped {} s after the signal; exiting",
            STOP_DEADLINE.as_secs()
        );
        std::process::exit(1);
    });
}
