//! Counters and gauges of the daemon, and the Prometheus text it serves at
//! `/metrics` (`[daemon] metrics_listen`). The counters live in memory; the
//! outbox gauges are read from the database at each scrape.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::inbound::process::{Outcome, Report};
use crate::store::{self, Store};

const OUTCOMES: &[Outcome] = <Outcome as strum::VariantArray>::VARIANTS;

#[derive(Default)]
pub struct Metrics {
    messages: [AtomicU64; 7],
    imap_connected: AtomicBool,
    imap_waiting: AtomicU64,
}

impl Metrics {
    pub fn count(&self, reports: &[Report]) {
        for report in reports {
            let index = OUTCOMES
                .iter()
                .position(|o| *o == report.outcome)
                .expect("all outcomes listed");
            self.messages[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn set_imap_connected(&self, connected: bool) {
        self.imap_connected.store(connected, Ordering::Relaxed);
    }

    pub fn set_imap_waiting(&self, waiting: u64) {
        self.imap_waiting.store(waiting, Ordering::Relaxed);
    }

    /// Prometheus text format.
    pub async fn render(&self, store: &Store, now: i64) -> String {
        let mut out = String::from("# TYPE ticketgate_messages_total counter\n");
        for (outcome, counter) in OUTCOMES.iter().zip(&self.messages) {
            out.push_str(&format!(
                "ticketgate_messages_total{{outcome=\"{}\"}} {}\n",
                outcome.as_str(),
                counter.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# TYPE ticketgate_imap_connected gauge\nticketgate_imap_connected {}\n",
            u8::from(self.imap_connected.load(Ordering::Relaxed))
        ));
        out.push_str(&format!(
            "# TYPE ticketgate_imap_waiting_messages gauge\nticketgate_imap_waiting_messages {}\n",
            self.imap_waiting.load(Ordering::Relaxed)
        ));
        let health = match store.acquire().await {
            Ok(mut conn) => store::outbox::health(&mut conn, now).await,
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
            Err(error) => tracing::warn!("metrics: database error: {error}"),
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until shutdown.
pub async fn serve(
    metrics: &Metrics,
    store: &Store,
    clock: Clock,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        let Ok((mut socket, _)) = accepted else {
            continue;
        };
        let mut request = [0u8; 1024];
        let n = socket.read(&mut request).await.unwrap_or(0);
        let response = if request[..n].starts_with(b"GET /metrics") {
            let body = metrics.render(store, clock.now()).await;
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
        };
        let _ = socket.write_all(response.as_bytes()).await;
    }
}
