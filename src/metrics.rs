//! Counters and gauges of the daemon and the help center, in Prometheus
//! text at `/metrics` (`[daemon] metrics_listen`, an address of its own so
//! that it need not be public like the help center). The counters live in
//! memory; the outbox gauges are read from the database at each scrape.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::inbound::process::Report;
use crate::store::{self, Store};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailboxLabel {
    mailbox: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabel {
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    messages: Family<OutcomeLabel, Counter>,
    web_requests: Family<StatusLabel, Counter>,
    imap_connected: Family<MailboxLabel, Gauge>,
    imap_waiting: Family<MailboxLabel, Gauge>,
    outbox: Family<StateLabel, Gauge>,
    outbox_oldest: Gauge<u64, AtomicU64>,
    suspended: Gauge,
    deliveries: Family<DeliveryLabel, Counter>,
    last_poll: Family<MailboxLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ticketgate");
        let messages = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "messages",
            "Messages processed, by outcome",
            messages.clone(),
        );
        let web_requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "web_requests",
            "Help center answers, by HTTP status",
            web_requests.clone(),
        );
        let imap_connected = Family::<MailboxLabel, Gauge>::default();
        registry.register(
            "imap_connected",
            "1 while the mailbox is connected, by mailbox",
            imap_connected.clone(),
        );
        let imap_waiting = Family::<MailboxLabel, Gauge>::default();
        registry.register(
            "imap_waiting_messages",
            "Messages in the mailbox not yet processed, by mailbox",
            imap_waiting.clone(),
        );
        let outbox = Family::<StateLabel, Gauge>::default();
        registry.register("outbox_messages", "Outbox rows by state", outbox.clone());
        let outbox_oldest = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "outbox_oldest_queued_seconds",
            "Age of the oldest queued outbox row",
            outbox_oldest.clone(),
        );
        let suspended = Gauge::default();
        registry.register(
            "suspended_messages",
            "Messages held in the suspended queue",
            suspended.clone(),
        );
        let deliveries = Family::<DeliveryLabel, Counter>::default();
        registry.register(
            "deliveries",
            "Delivery attempts by result (sent, retrying, failed, suppressed)",
            deliveries.clone(),
        );
        for result in ["sent", "retrying", "failed", "suppressed"] {
            deliveries
                .get_or_create(&DeliveryLabel { result })
                .inc_by(0);
        }
        let last_poll = Family::<MailboxLabel, Gauge>::default();
        registry.register(
            "imap_last_poll_timestamp_seconds",
            "When the mailbox was last read successfully by this instance (Unix time; 0: not yet)",
            last_poll.clone(),
        );
        registry.register(
            "build",
            "The running version",
            prometheus_client::metrics::info::Info::new(BuildLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        // Every outcome from the start, zero too, so rates can be taken.
        for outcome in <crate::inbound::process::Outcome as strum::VariantArray>::VARIANTS {
            messages
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.as_str(),
                })
                .inc_by(0);
        }
        Metrics {
            registry,
            messages,
            web_requests,
            imap_connected,
            imap_waiting,
            outbox,
            outbox_oldest,
            suspended,
            deliveries,
            last_poll,
        }
    }
}

fn mailbox_label(mailbox: &str) -> MailboxLabel {
    MailboxLabel {
        mailbox: mailbox.to_string(),
    }
}

impl Metrics {
    pub fn count(&self, reports: &[Report]) {
        for report in reports {
            self.messages
                .get_or_create(&OutcomeLabel {
                    outcome: report.outcome.as_str(),
                })
                .inc();
        }
    }

    pub fn count_web_request(&self, status: u16) {
        self.web_requests
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    /// The mailbox's series, at 0 until it is read (an instance standing
    /// by for another's mailbox shows it never polled).
    pub fn add_mailbox(&self, mailbox: &str) {
        self.set_imap_connected(mailbox, false);
        self.set_imap_waiting(mailbox, 0);
        self.set_last_poll(mailbox, 0);
    }

    pub fn set_imap_connected(&self, mailbox: &str, connected: bool) {
        self.imap_connected
            .get_or_create(&mailbox_label(mailbox))
            .set(i64::from(connected));
    }

    /// What one delivery round did.
    pub fn count_deliveries(&self, report: &crate::outbound::deliver::FlushReport) {
        for (result, n) in [
            ("sent", report.sent),
            ("retrying", report.retrying),
            ("failed", report.failed),
            ("suppressed", report.suppressed),
        ] {
            self.deliveries
                .get_or_create(&DeliveryLabel { result })
                .inc_by(n as u64);
        }
    }

    pub fn set_last_poll(&self, mailbox: &str, now: i64) {
        self.last_poll
            .get_or_create(&mailbox_label(mailbox))
            .set(now);
    }

    pub fn set_imap_waiting(&self, mailbox: &str, waiting: u64) {
        self.imap_waiting
            .get_or_create(&mailbox_label(mailbox))
            .set(waiting.try_into().unwrap_or(i64::MAX));
    }

    /// Prometheus text format, the outbox gauges read now.
    pub async fn render(&self, store: &Store, now: i64) -> String {
        let health = match store.acquire().await {
            Ok(mut conn) => store::outbox::health(&mut conn, now).await,
            Err(e) => Err(e),
        };
        match health {
            Ok((states, oldest)) => {
                for (state, count) in states {
                    self.outbox
                        .get_or_create(&StateLabel {
                            state: state.to_string(),
                        })
                        .set(count);
                }
                self.outbox_oldest
                    .set(oldest.unwrap_or(0).try_into().unwrap_or(0));
            }
            Err(error) => tracing::warn!("metrics: database error: {error}"),
        }
        let held = match store.read().await {
            Ok(mut conn) => store::suspended::count(&mut conn).await,
            Err(e) => Err(e),
        };
        match held {
            Ok(count) => {
                self.suspended.set(count);
            }
            Err(error) => tracing::warn!("metrics: database error: {error}"),
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics: {e}");
        }
        out
    }
}

struct Scrape {
    metrics: Arc<Metrics>,
    store: Store,
    clock: Clock,
}

/// Serves `GET /metrics` on `listener` until shutdown.
pub async fn serve(
    metrics: Arc<Metrics>,
    store: Store,
    clock: Clock,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) {
    let scrape = Arc::new(Scrape {
        metrics,
        store,
        clock,
    });
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .with_state(scrape);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::error!("metrics endpoint: {e}");
    }
}

async fn metrics_page(State(scrape): State<Arc<Scrape>>) -> impl IntoResponse {
    let body = scrape
        .metrics
        .render(&scrape.store, scrape.clock.now())
        .await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
