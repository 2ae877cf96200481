//! `fanout`: every client receives while a few of them send on a fixed
//! schedule; measures end-to-end latency and checks that no message is lost,
//! repeated or reordered.
//!
//! Latency is measured from when a message was *scheduled* to be sent, not
//! from when it was actually sent: a sender held up by a slow server (or a
//! busy generator) sends late but keeps the scheduled stamp, so the delay
//! shows up in the numbers instead of silently thinning out the load. The
//! schedule is driven by tokio's millisecond timer, so sends start up to about
//! a millisecond late even when idle; `send_lag_ms` in the report shows how
//! late they actually were.

use std::{ops::Range, sync::Arc, time::Duration};

use anyhow::{ensure, Context, Result};
use futures_util::{stream::SplitSink, SinkExt, StreamExt};
use tokio::{
    sync::mpsc,
    task::JoinSet,
    time::{sleep_until, timeout_at, Instant},
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, Errors},
    config::{CommonArgs, FanoutArgs},
    connect::{connect_all, Connected, Ws, SETTLE},
    histogram::ShardedHistogram,
    procstat::{ServerUsage, ServerWatch},
    protocol::ClientFrame,
    report::{FanoutReport, PerDelivery},
    stamp::{Clock, Stamp},
    tracker::{Seen, SeqTracker},
};

/// Time for every client task to start before the first message is due.
const LEAD: Duration = Duration::from_millis(100);

/// How long past the end of the window senders that fell behind may take to
/// send what they still owe.
const CATCH_UP: Duration = Duration::from_secs(10);

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

    let clock = Clock::new();
    let start = Instant::now() + LEAD;
    let window_start = start + args.warmup;
    let window_end = window_start + args.duration;
    let shared = Arc::new(Shared {
        clock,
        senders: args.senders,
        payload_bytes: args.payload_bytes,
        window: clock.unix_nanos(window_start)..clock.unix_nanos(window_end),
        latency: ShardedHistogram::new(),
        send_lag: ShardedHistogram::new(),
        stop: CancellationToken::new(),
    });

    // Each sender holds a clone of `sending` until it has sent its last
    // message; `recv` returns `None` once every clone is gone.
    let (sending, mut all_sent) = mpsc::channel::<()>(1);
    let mut clients = JoinSet::new();
    for (index, ws) in sockets.into_iter().enumerate() {
        let sender = (index < args.senders).then(|| SenderRole {
            schedule: Schedule::for_sender(index, args.senders, args.rate, start, window_end),
            sending: sending.clone(),
        });
        clients.spawn(run_client(index, ws, sender, Arc::clone(&shared)));
    }
    drop(sending);

    tracing::info!(secs = args.warmup.as_secs_f64(), "warming up");
    sleep_until(window_start).await;
    server.start_cpu()?;
    tracing::info!(secs = args.duration.as_secs_f64(), "measuring");
    sleep_until(window_end).await;
    let usage = server.finish(args.clients)?;

    if timeout_at(window_end + CATCH_UP, all_sent.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            "senders still behind schedule {CATCH_UP:?} after the window; stopping them after the drain"
        );
    }
    tokio::time::sleep(args.drain).await;
    shared.stop.cancel();
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
        send_lag_ms: shared.send_lag.quantiles(),
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
    clock: Clock,
    senders: usize,
    payload_bytes: usize,
    /// Scheduled times (Unix nanoseconds) of the messages that are measured.
    window: Range<u64>,
    latency: ShardedHistogram,
    send_lag: ShardedHistogram,
    stop: CancellationToken,
}

struct SenderRole {
    schedule: Schedule,
    /// Dropped when this sender is done.
    sending: mpsc::Sender<()>,
}

/// When one sender's messages are due: message `seq` at
/// `first + seq / rate`, for as long as that is before `end`.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    first: Instant,
    rate: f64,
    end: Instant,
}

impl Schedule {
    /// Sender `k` of `senders` starts `k / senders` of an interval after
    /// `start`, so the senders take turns evenly instead of all sending at
    /// the same instant.
    fn for_sender(k: usize, senders: usize, rate: f64, start: Instant, end: Instant) -> Self {
        let offset = k as f64 / senders as f64 / rate;
        Self {
            first: start + Duration::from_secs_f64(offset),
            rate,
            end,
        }
    }

    /// Computed from `first` each time, so rounding never accumulates.
    fn due(&self, seq: u64) -> Option<Instant> {
        let after = Duration::try_from_secs_f64(seq as f64 / self.rate).ok()?;
        let due = self.first.checked_add(after)?;
        (due < self.end).then_some(due)
    }
}

/// How many messages one sender got out.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    total: u64,
    in_window: u64,
    failed: bool,
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
            && shared.window.contains(&stamp.scheduled)
        {
            delivered += 1;
            let micros = received.saturating_sub(stamp.scheduled) / 1_000;
            shared.latency.record(index, micros);
        }
    };
    let (ws, mut errors, sent) = match sender {
        None => {
            let mut ws = ws;
            let errors = client::receive(&mut ws, &shared.stop, &shared.clock, on_message).await;
            (ws, errors, None)
        }
        // Sending and receiving run side by side in this task: a send held
        // up by the server must not stop us reading (nor answering pings).
        Some(role) => {
            let (mut sink, mut stream) = ws.split();
            let (errors, sent) = tokio::join!(
                client::receive(&mut stream, &shared.stop, &shared.clock, on_message),
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

/// Sends this sender's messages at their scheduled times, or at once when
/// running late, each stamped with its scheduled time.
async fn send_on_schedule(
    sink: &mut SplitSink<Ws, Message>,
    index: usize,
    role: SenderRole,
    shared: &Shared,
) -> Sent {
    let sender = u32::try_from(index).expect("fewer clients than open files");
    let mut sent = Sent::default();
    for seq in 0.. {
        let Some(due) = role.schedule.due(seq) else {
            break;
        };
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            () = sleep_until(due) => {}
        }
        let lag = Instant::now().saturating_duration_since(due);
        shared
            .send_lag
            .record(index, u64::try_from(lag.as_micros()).unwrap_or(u64::MAX));
        let scheduled = shared.clock.unix_nanos(due);
        let text = Stamp {
            sender,
            seq,
            scheduled,
        }
        .encode(shared.payload_bytes);
        let frame = Message::text(ClientFrame::Message(&text).encode());
        let result = tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            result = sink.send(frame) => result,
        };
        if result.is_err() {
            sent.failed = true;
            break;
        }
        sent.total += 1;
        if shared.window.contains(&scheduled) {
            sent.in_window += 1;
        }
    }
    drop(role.sending);
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due_times(schedule: &Schedule) -> Vec<Instant> {
        (0..).map_while(|seq| schedule.due(seq)).collect()
    }

    #[test]
    fn senders_are_spread_evenly_over_one_interval() {
        let start = Instant::now();
        let end = start + Duration::from_secs(1);
        let first = Schedule::for_sender(0, 4, 10.0, start, end);
        let third = Schedule::for_sender(2, 4, 10.0, start, end);
        assert_eq!(first.due(0), Some(start));
        assert_eq!(third.due(0), Some(start + Duration::from_millis(50)));
        assert_eq!(third.due(1), Some(start + Duration::from_millis(150)));
        assert_eq!(due_times(&first).len(), 10);
        assert_eq!(due_times(&third).len(), 10);
    }

    #[test]
    fn fractional_rates_and_the_end_are_respected() {
        let start = Instant::now();
        let end = start + Duration::from_secs(5);
        let slow = Schedule::for_sender(0, 1, 0.5, start, end);
        let times = due_times(&slow);
        assert_eq!(times.len(), 3);
        assert_eq!(times[2], start + Duration::from_secs(4));
        let none = Schedule::for_sender(0, 1, 1.0, start, start);
        assert!(due_times(&none).is_empty());
    }
}
