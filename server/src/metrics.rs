//! Prometheus metrics: their names, cheap handles for the hot paths, and
//! `/metrics` on an address of its own.
//!
//! Handles are looked up once, when [`Metrics`] is built, so counting costs
//! an atomic add. Without an installed recorder (unit tests) they count
//! nothing.
//!
//! `/metrics` is not on the page's address: it would tell anyone who asks
//! how many people are connected, how much they say and what goes wrong.
//! [`serve`] puts it on a listener of its own (`--metrics-addr`), one a
//! firewall can keep to the operators; without one it is not served at all.

use std::sync::OnceLock;

use app::protocol::ErrorCode;
use axum::{
    extract::State, http::header, middleware, response::IntoResponse, routing::get, Router,
};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Installs the process-wide Prometheus recorder (once; later calls return
/// the same handle) and describes every metric.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

/// Only `/metrics`: every metric in `prometheus`, in Prometheus' text format.
pub fn router(prometheus: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .layer(middleware::map_response_with_state(
            crate::headers::Policy::new(None),
            crate::headers::add,
        ))
        .with_state(prometheus)
}

async fn render(State(prometheus): State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus.render(),
    )
}

/// Serves [`router`] on `listener` until `shutdown` is cancelled (the page's
/// server cancels its own token when it stops: [`crate::AppState::shutdown`]).
/// Plain `axum::serve`: scrapers are few and known, and none of the page's
/// connection handling applies to them.
pub async fn serve(
    listener: TcpListener,
    prometheus: PrometheusHandle,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(prometheus))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

fn describe() {
    describe_gauge!("parley_connections_open", "WebSocket connections open now");
    describe_counter!("parley_frames_in_total", "Frames received from clients");
    describe_counter!(
        "parley_frames_out_total",
        "Frames queued for clients (one per recipient)"
    );
    describe_counter!("parley_messages_relayed_total", "Chat messages relayed");
    describe_counter!(
        "parley_errors_total",
        "Error frames sent to clients, by error code"
    );
    describe_counter!(
        "parley_clients_dropped_slow_total",
        "Clients disconnected for falling behind (close code 1008)"
    );
    describe_counter!(
        "parley_rate_limited_total",
        "Client frames dropped by the rate limit"
    );
    describe_histogram!(
        "parley_store_batch_size",
        "Messages stored per transaction (group commit)"
    );
    describe_histogram!(
        "parley_commit_seconds",
        "Time one transaction of the group commit took (the store's share)"
    );
    describe_histogram!(
        "parley_commit_wait_seconds",
        "Time from a message's submission to its outcome (queue and transaction): \
         what a sender waits for its ack, apart from the fan-out"
    );
    describe_counter!(
        "parley_store_errors_total",
        "Transactions the message store failed"
    );
    describe_counter!(
        "parley_resumes_total",
        "Connections that resumed: outcome=\"same\" (the token's person) or \"new\""
    );
    describe_counter!(
        "parley_caught_up_messages_total",
        "Missed messages sent to resuming clients from the store"
    );
}

#[derive(Clone)]
pub struct Metrics {
    connections: Gauge,
    frames_in: Counter,
    frames_out: Counter,
    messages: Counter,
    dropped_slow: Counter,
    rate_limited: Counter,
    batch_size: Histogram,
    commit_seconds: Histogram,
    commit_wait: Histogram,
    store_errors: Counter,
    resumed_same: Counter,
    resumed_new: Counter,
    caught_up: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            connections: gauge!("parley_connections_open"),
            frames_in: counter!("parley_frames_in_total"),
            frames_out: counter!("parley_frames_out_total"),
            messages: counter!("parley_messages_relayed_total"),
            dropped_slow: counter!("parley_clients_dropped_slow_total"),
            rate_limited: counter!("parley_rate_limited_total"),
            batch_size: histogram!("parley_store_batch_size"),
            commit_seconds: histogram!("parley_commit_seconds"),
            commit_wait: histogram!("parley_commit_wait_seconds"),
            store_errors: counter!("parley_store_errors_total"),
            resumed_same: counter!("parley_resumes_total", "outcome" => "same"),
            resumed_new: counter!("parley_resumes_total", "outcome" => "new"),
            caught_up: counter!("parley_caught_up_messages_total"),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A connection opened; it is counted as closed when the guard drops.
    pub fn connection(&self) -> ConnectionGauge {
        self.connections.increment(1.0);
        ConnectionGauge(self.connections.clone())
    }

    pub fn frame_in(&self) {
        self.frames_in.increment(1);
    }

    pub fn frames_out(&self, n: usize) {
        self.frames_out.increment(n as u64);
    }

    /// A client fell too far behind and is being closed with 1008.
    pub fn dropped_slow(&self) {
        self.dropped_slow.increment(1);
    }

    pub fn message_relayed(&self) {
        self.messages.increment(1);
    }

    /// One transaction of the group commit stored `messages`.
    pub fn commit_batch(&self, messages: usize) {
        self.batch_size.record(messages as f64);
    }

    /// One transaction of the group commit took `took`.
    pub fn commit_took(&self, took: std::time::Duration) {
        self.commit_seconds.record(took.as_secs_f64());
    }

    /// A message's outcome came `waited` after it was submitted.
    pub fn commit_waited(&self, waited: std::time::Duration) {
        self.commit_wait.record(waited.as_secs_f64());
    }

    /// A client resumed: as the same person as before, or as someone new.
    pub fn resumed(&self, same: bool) {
        if same {
            self.resumed_same.increment(1);
        } else {
            self.resumed_new.increment(1);
        }
    }

    /// `messages` missed messages went to a client catching up.
    pub fn caught_up(&self, messages: usize) {
        self.caught_up.increment(messages as u64);
    }

    pub fn store_error(&self) {
        self.store_errors.increment(1);
    }

    pub fn error(&self, code: ErrorCode) {
        counter!("parley_errors_total", "code" => code.as_str()).increment(1);
        if code == ErrorCode::RateLimited {
            self.rate_limited.increment(1);
        }
    }
}

/// Counts one open connection for as long as it lives.
pub struct ConnectionGauge(Gauge);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
