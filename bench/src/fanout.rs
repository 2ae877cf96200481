//! `fanout`: every client receives while a few of them send on a fixed
//! schedule; measures end-to-end latency and checks that no message is lost,
//! repeated or reordered. The timeline and the send loop are in
//! [`crate::schedule`], with why latency runs from the *scheduled* send time.

use std::{sync::Arc, time::Duration};

use anyhow::{ensure, Context, Result};
use futures_util::{stream::SplitSink, StreamExt};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    client::{self, Errors},
    config::{CommonArgs, FanoutArgs},
    connect::{connect_all, Connected, Ws, SETTLE},
    histogram::ShardedHistogram,
    procstat::{ServerUsage, ServerWatch},
    protocol::ClientFrame,
    report::{FanoutReport, PerDelivery},
    schedule::{SenderRole, Sent, Timeline},
    stamp::Stamp,
    tracker::{Seen, SeqTracker},
};

pub async fn run(common: &CommonArgs, args: &FanoutArgs) -> Result<FanoutReport> {
    ensure!(
        args.senders <= args.clients,
        "--senders ({}) cannot be more than --clients ({})",
        args.senders,
        args.clients
    );
    ensure!(!args.duration.is_zero(), "--duration must be more than 0");
    let mut server = ServerWatch::new(common.server_pid).context("reading the server's /proc")?;
    let Connected { sockets, elapsed } = connect_all(common, args.clients).await?;
    tokio::time::sleep(SETTLE).await;
    server.connected()?;

    let shared = Arc::new(Shared {
        timeline: Timeline::new(args.warmup, args.duration),
        senders: args.senders,
        payload_bytes: args.payload_bytes,
        latency: ShardedHistogram::new(),
    });

    // Each sender holds a clone of `sending` until it has sent its last
    // message; `recv` returns `None` once every clone is gone.
    let (sending, all_sent) = mpsc::channel::<()>(1);
    let mut clients = JoinSet::new();
    for (index, ws) in sockets.into_iter().enumerate() {
        let sender = (index < args.senders).then(|| SenderRole {
            schedule: shared.timeline.schedule(index, args.senders, args.rate),
            sending: sending.clone(),
        });
        clients.spawn(run_client(index, ws, sender, Arc::clone(&shared)));
    }
    drop(sending);

    let usage = shared
        .timeline
        .run(&mut server, args.clients, all_sent, args.drain)
        .await?;
    let outcomes = clients.join_all().await;

    Ok(summarize(args, elapsed, &shared, &outcomes, usage))
}

/// Adds up what every client saw.
fn summarize(
    args: &FanoutArgs,
    connect_time: Duration,
    shared: &Shared,
    outcomes: &[ClientOutcome],
    server: Option<ServerUsage>,
) -> FanoutReport {
    let mut sent_by = vec![0; args.senders];
    let mut sent = 0;
    for outcome in outcomes {
        if let Some(counts) = outcome.sent {
            sent_by[outcome.index] = counts.total;
            sent += counts.in_window;
        }
    }
    let mut report = FanoutReport {
        clients: args.clients,
        senders: args.senders,
        rate: args.rate,
        warmup_secs: args.warmup.as_secs_f64(),
        duration_secs: args.duration.as_secs_f64(),
        payload_bytes: args.payload_bytes,
        connect_secs: connect_time.as_secs_f64(),
        sent,
        expected: sent * (args.clients as u64 - 1),
        latency_ms: shared.latency.quantiles(),
        send_lag_ms: shared.timeline.send_lag.quantiles(),
        ..FanoutReport::default()
    };
    let mut errors = Errors::default();
    for outcome in outcomes {
        let own = (outcome.index < args.senders).then_some(outcome.index);
        report.delivered += outcome.delivered;
        report.gaps += outcome.tracker.gaps;
        report.duplicates += outcome.tracker.duplicates;
        report.missing += outcome.tracker.missing(&sent_by, own);
        errors += outcome.errors;
        errors.malformed += outcome.tracker.unknown_senders;
    }
    report.deliveries_per_sec = report.delivered as f64 / args.duration.as_secs_f64();
    report.errors = errors.total();
    report.error_kinds = errors;
    report.server_us_per_delivery = server
        .as_ref()
        .and_then(|server| PerDelivery::new(server, report.delivered));
    report.server = server;
    report
}

/// What all client tasks share.
struct Shared {
    timeline: Timeline,
    senders: usize,
    payload_bytes: usize,
    latency: ShardedHistogram,
}

/// What one client saw, for the totals.
struct ClientOutcome {
    index: usize,
    tracker: SeqTracker,
    /// New messages scheduled inside the window.
    delivered: u64,
    errors: Errors,
    sent: Option<Sent>,
}

async fn run_client(
    index: usize,
    ws: Ws,
    sender: Option<SenderRole>,
    shared: Arc<Shared>,
) -> ClientOutcome {
    let mut tracker = SeqTracker::new(shared.senders);
    let mut delivered = 0;
    let on_message = |stamp: Stamp, received: u64| {
        if tracker.observe(stamp.sender, stamp.seq) == Seen::New
            && shared.timeline.window.contains(&stamp.scheduled)
        {
            delivered += 1;
            let micros = received.saturating_sub(stamp.scheduled) / 1_000;
            shared.latency.record(index, micros);
        }
    };
    let (ws, mut errors, sent) = match sender {
        None => {
            let mut ws = ws;
            let errors = client::receive(
                &mut ws,
                &shared.timeline.stop,
                &shared.timeline.clock,
                on_message,
            )
            .await;
            (ws, errors, None)
        }
        // Sending and receiving run side by side in this task: a send held
        // up by the server must not stop us reading (nor answering pings).
        Some(role) => {
            let (mut sink, mut stream) = ws.split();
            let (errors, sent) = tokio::join!(
                client::receive(
                    &mut stream,
                    &shared.timeline.stop,
                    &shared.timeline.clock,
                    on_message
                ),
                send_on_schedule(&mut sink, index, role, &shared),
            );
            let ws = sink.reunite(stream).expect("both halves of one connection");
            (ws, errors, Some(sent))
        }
    };
    client::close(ws).await;
    if sent.is_some_and(|sent| sent.failed) {
        errors.transport += 1;
    }
    ClientOutcome {
        index,
        tracker,
        delivered,
        errors,
        sent,
    }
}

/// Sends this sender's messages on its schedule, each text stamped with its
/// scheduled time.
async fn send_on_schedule(
    sink: &mut SplitSink<Ws, Message>,
    index: usize,
    role: SenderRole,
    shared: &Shared,
) -> Sent {
    let sender = u32::try_from(index).expect("fewer clients than open files");
    shared
        .timeline
        .send_on_schedule(sink, index, role, |seq, scheduled| {
            let text = Stamp {
                sender,
                seq,
                scheduled,
            }
            .encode(shared.payload_bytes);
            ClientFrame::Message(&text).encode()
        })
        .await
}
