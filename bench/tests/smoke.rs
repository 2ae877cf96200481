//! loadgen against the real Parley server, in-process on a loopback port:
//! every mode runs end to end and a healthy server comes out clean. No
//! timing is asserted; the numbers depend on the machine.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use clap::Parser;
use leptos::config::LeptosOptions;
use parley_bench::{
    config::Cli,
    report::{FanoutReport, IdleReport, Report, StormReport, WritesReport},
};
use server::{
    config::{ChatConfig, ConnectionConfig, HttpConfig},
    hub::Hub,
    store::Store,
    AppState,
};
use tokio::{sync::oneshot, task::JoinHandle};

/// Chat settings as `compare` gives Parley: a load test sends far faster
/// than the per-person rate limit allows.
fn bench_chat() -> ChatConfig {
    ChatConfig {
        rate_limit_burst: 1_000_000,
        rate_limit_per_sec: 1_000_000,
        ..ChatConfig::default()
    }
}

/// A Parley server started the way its own integration tests start it.
struct TestServer {
    addr: SocketAddr,
    hub: Arc<Hub>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start() -> Self {
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let options = LeptosOptions::builder()
            .output_name("parley")
            .site_root("target/site")
            .site_addr(addr)
            .build();
        let (stop, stopped) = oneshot::channel::<()>();
        let store = Store::open("sqlite::memory:").await.unwrap();
        let state = AppState::new(
            options,
            ConnectionConfig::default(),
            bench_chat(),
            HttpConfig::default(),
            store,
        );
        let hub = Arc::clone(&state.hub);
        let task = tokio::spawn(server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            hub,
            stop,
            task,
        }
    }

    /// Runs loadgen, and returns its report with the most clients the
    /// server itself saw connected at once meanwhile.
    async fn loadgen_watched(&self, mode_args: &[&str]) -> (Report, usize) {
        let peak = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let (hub, peak) = (Arc::clone(&self.hub), Arc::clone(&peak));
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(hub.len(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let report = self.loadgen(mode_args).await;
        watcher.abort();
        (report, peak.load(Ordering::Relaxed))
    }

    /// Runs loadgen against this server, reporting on this very process:
    /// the server runs inside it.
    async fn loadgen(&self, mode_args: &[&str]) -> Report {
        let (addr, pid) = (self.addr.to_string(), std::process::id().to_string());
        let args = [
            "loadgen",
            "--addr",
            &addr,
            "--server-pid",
            &pid,
            "--deadline",
            "60",
        ];
        let cli = Cli::try_parse_from(args.iter().chain(mode_args)).unwrap();
        parley_bench::run(&cli).await.expect("the run completes")
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_exactly_once() {
    let server = TestServer::start().await;
    let args = [
        "fanout",
        "--clients",
        "6",
        "--senders",
        "3",
        "--rate",
        "20",
        "--warmup",
        "0.5",
        "--duration",
        "2",
        "--payload-bytes",
        "64",
    ];
    let (report, peak) = server.loadgen_watched(&args).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(peak, 6, "the server saw every client connected at once");
    let Report::Fanout(FanoutReport {
        sent,
        expected,
        delivered,
        gaps,
        duplicates,
        missing,
        errors,
        latency_ms,
        server: usage,
        ..
    }) = report
    else {
        panic!("not a fanout report: {report:?}");
    };
    // 3 senders × 20 msg/s × 2 s, each to the 5 other clients.
    assert_eq!(sent, 120);
    assert_eq!(expected, 600);
    assert_eq!(delivered, expected);
    assert_eq!((gaps, duplicates, missing, errors), (0, 0, 0, 0));
    assert!(latency_ms.max > 0.0);
    assert!(
        usage.is_some(),
        "server usage, since --server-pid was given"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_reaches_every_client_every_round() {
    let server = TestServer::start().await;
    let args = [
        "storm",
        "--clients",
        "20",
        "--repeat",
        "3",
        "--pause",
        "0.2",
    ];
    let report = server.loadgen(&args).await;
    assert!(report.is_clean(), "{report}");
    let Report::Storm(StormReport {
        rounds,
        median_last_ms,
        errors,
        ..
    }) = report
    else {
        panic!("not a storm report: {report:?}");
    };
    assert_eq!(rounds.len(), 3);
    for round in &rounds {
        assert_eq!((round.receivers, round.received), (19, 19), "{round:?}");
        assert!(round.last_ms.is_some());
    }
    assert!(median_last_ms.is_some());
    assert_eq!(errors, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_stay_open_and_are_measured() {
    let server = TestServer::start().await;
    let (report, peak) = server
        .loadgen_watched(&["idle", "--clients", "10", "--hold", "0.5"])
        .await;
    assert!(report.is_clean(), "{report}");
    let Report::Idle(IdleReport {
        errors,
        server: usage,
        ..
    }) = report
    else {
        panic!("not an idle report: {report:?}");
    };
    assert_eq!(errors, 0);
    assert_eq!(peak, 10, "the server held all ten connections at once");
    assert!(
        usage.is_some(),
        "server usage, since --server-pid was given"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_acks_stores_and_delivers_every_message() {
    let server = TestServer::start().await;
    let args = [
        "writes",
        "--clients",
        "4",
        "--rate",
        "50",
        "--warmup",
        "0.5",
        "--duration",
        "2",
    ];
    let (report, peak) = server.loadgen_watched(&args).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(peak, 4, "the server saw every client connected at once");
    let Report::Writes(WritesReport {
        sent,
        acked,
        sent_total,
        acked_total,
        unacked,
        refused,
        expected,
        delivered,
        gaps,
        duplicates,
        missing,
        ack_id_regressions,
        relay_id_regressions,
        errors,
        ack_latency_ms,
        latency_ms,
        server: usage,
        ..
    }) = report
    else {
        panic!("not a writes report: {report:?}");
    };
    // 4 clients × 50 msg/s × 2 s, each to the 3 other clients.
    assert_eq!(sent, 400);
    assert_eq!(acked, sent, "every message in the window acked");
    // Plus 4 × 50 × 0.5 in the warm-up.
    assert_eq!(sent_total, 500);
    assert_eq!(acked_total, sent_total, "every message acked");
    assert_eq!(expected, 1_200);
    assert_eq!(delivered, expected);
    assert_eq!((unacked, refused, errors), (0, 0, 0));
    assert_eq!((gaps, duplicates, missing), (0, 0, 0));
    assert_eq!(
        (ack_id_regressions, relay_id_regressions),
        (0, 0),
        "acks and relayed messages come with increasing ids"
    );
    assert!(ack_latency_ms.max > 0.0);
    assert!(latency_ms.max > 0.0);
    assert!(
        usage.is_some(),
        "server usage, since --server-pid was given"
    );
    server.shutdown().await;
}
