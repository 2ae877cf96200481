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

/// HTTP settings as `compare` gives Parley: every load-generator client
/// connects from one address, far faster than the handshake rate allows.
fn bench_http() -> HttpConfig {
    HttpConfig {
        request_rate_burst: 1_000_000,
        request_rate_per_sec: 1_000_000,
        handshake_rate_burst: 1_000_000,
        handshake_rate_per_sec: 1_000_000,
        ..HttpConfig::default()
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
            bench_http(),
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
        loadgen(&[self.addr], mode_args).await
    }

    /// The rooms with people in them (`general` is always listed), by name,
    /// with how many: sampled once every client the run has is connected.
    async fn loadgen_rooms(
        &self,
        clients: usize,
        mode_args: &[&str],
    ) -> (Report, Vec<(String, u64)>) {
        let watcher = {
            let hub = Arc::clone(&self.hub);
            tokio::spawn(async move {
                loop {
                    if hub.len() == clients {
                        // The last welcome may still be on its way.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        return hub.room_list();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let report = self.loadgen(mode_args).await;
        let list = tokio::time::timeout(Duration::from_secs(1), watcher)
            .await
            .expect("the server saw every client connected at once")
            .unwrap();
        let rooms = list
            .rooms
            .into_iter()
            .filter(|room| room.online > 0)
            .map(|room| (room.name, room.online))
            .collect();
        (report, rooms)
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// Runs loadgen against `addrs`, reporting on this very process: the
/// servers run inside it.
async fn loadgen(addrs: &[SocketAddr], mode_args: &[&str]) -> Report {
    let pid = std::process::id().to_string();
    let mut args = vec!["loadgen".to_owned()];
    for addr in addrs {
        args.extend(["--addr".to_owned(), addr.to_string()]);
    }
    args.extend(["--server-pid", &pid, "--deadline", "60"].map(str::to_owned));
    args.extend(mode_args.iter().map(|arg| (*arg).to_owned()));
    let cli = Cli::try_parse_from(args).unwrap();
    parley_bench::run(&cli).await.expect("the run completes")
}

/// Fan-out in rooms: 12 clients in 3 rooms, senders 0 and 3 in `bench-0`,
/// 1 in `bench-1`, 2 in `bench-2`.
const ROOMS_ARGS: [&str; 13] = [
    "fanout",
    "--clients",
    "12",
    "--rooms",
    "3",
    "--senders",
    "4",
    "--rate",
    "20",
    "--warmup",
    "0.5",
    "--duration",
    "2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_in_rooms_delivers_each_message_to_its_room_only() {
    let server = TestServer::start().await;
    let (report, rooms) = server.loadgen_rooms(12, &ROOMS_ARGS).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        rooms,
        [
            ("bench-0".to_owned(), 4),
            ("bench-1".to_owned(), 4),
            ("bench-2".to_owned(), 4)
        ],
        "each client in its room"
    );
    let Report::Fanout(FanoutReport {
        rooms,
        servers,
        sent,
        expected,
        delivered,
        gaps,
        duplicates,
        missing,
        wrong_room,
        errors,
        server_us_per_message,
        ..
    }) = report
    else {
        panic!("not a fanout report: {report:?}");
    };
    assert_eq!((rooms, servers), (Some(3), vec![12]));
    // 4 senders × 20 msg/s × 2 s, each to the 3 others of its room.
    assert_eq!(sent, 160);
    assert_eq!(expected, 480);
    assert_eq!(delivered, expected);
    assert_eq!(
        (gaps, duplicates, missing, wrong_room, errors),
        (0, 0, 0, 0, 0)
    );
    assert!(server_us_per_message.is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_over_two_servers_that_share_nothing_lose_what_crosses() {
    // Two processes without a broker: each room's clients alternate between
    // them, so only half of what each client should get reaches it, and the
    // run must say so.
    let (first, second) = (TestServer::start().await, TestServer::start().await);
    let report = loadgen(&[first.addr, second.addr], &ROOMS_ARGS).await;
    assert!(!report.is_clean(), "{report}");
    let Report::Fanout(FanoutReport {
        servers,
        expected,
        delivered,
        missing,
        wrong_room,
        duplicates,
        server: usage,
        ..
    }) = report
    else {
        panic!("not a fanout report: {report:?}");
    };
    assert_eq!(servers, [6, 6], "clients spread evenly over both");
    assert_eq!(expected, 480);
    // Room 0 is clients 0, 3, 6, 9 on servers 0, 1, 0, 1: each message
    // reaches the one other client on its sender's server.
    assert_eq!(delivered, 160);
    assert!(missing > 0);
    assert_eq!((wrong_room, duplicates), (0, 0));
    // Both servers live in this process, so it is the one pid watched.
    assert_eq!(usage.map(|usage| usage.processes.len()), Some(1));
    first.shutdown().await;
    second.shutdown().await;
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
