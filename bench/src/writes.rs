//! `writes`: every client sends on a fixed schedule and receives everyone
//! else's messages, each message with a `client_id` so the server acks it
//! once stored. Measures ack latency (scheduled send to ack) and delivery
//! latency, and checks that every message is acked once, delivered once to
//! every other client, and that ids strictly increase: the acks each sender
//! gets, and the relayed messages each receiver sees.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{ensure, Context, Result};
use futures_util::StreamExt;
use tokio::{sync::mpsc, task::JoinSet};

use crate::{
    client::{self, Errors, Event},
    config::{CommonArgs, WritesArgs},
    connect::{connect_all, Connected, Ws, SETTLE},
    histogram::ShardedHistogram,
    layout::Layout,
    procstat::{ServerUsage, ServerWatch},
    protocol::ClientFrame,
    report::{PerDelivery, WritesReport},
    schedule::{Schedule, SenderRole, Sent, Timeline},
    stamp::Stamp,
    tracker::{Seen, SeqTracker},
};

pub async fn run(common: &CommonArgs, args: &WritesArgs) -> Result<WritesReport> {
    ensure!(!args.duration.is_zero(), "--duration must be more than 0");
    let mut server = ServerWatch::new(&common.server_pid).context("reading the server's /proc")?;
    let Connected { sockets, elapsed } =
        connect_all(common, args.clients, Layout::new(None, common.addr.len())).await?;
    tokio::time::sleep(SETTLE).await;
    server.connected()?;

    let shared = Arc::new(Shared {
        timeline: Timeline::new(args.warmup, args.duration),
        clients: args.clients,
        payload_bytes: args.payload_bytes,
        ack_latency: ShardedHistogram::new(),
        latency: ShardedHistogram::new(),
    });
    let (sending, all_sent) = mpsc::channel::<()>(1);
    let mut clients = JoinSet::new();
    for (index, ws) in sockets.into_iter().enumerate() {
        let role = SenderRole {
            schedule: shared.timeline.schedule(index, args.clients, args.rate),
            sending: sending.clone(),
        };
        clients.spawn(run_client(index, ws, role, Arc::clone(&shared)));
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
    args: &WritesArgs,
    connect_time: Duration,
    shared: &Shared,
    outcomes: &[ClientOutcome],
    server: Option<ServerUsage>,
) -> WritesReport {
    let mut sent_by = vec![0; args.clients];
    for outcome in outcomes {
        sent_by[outcome.index] = outcome.sent.total;
    }
    let sent: u64 = outcomes.iter().map(|o| o.sent.in_window).sum();
    let secs = args.duration.as_secs_f64();
    let mut report = WritesReport {
        clients: args.clients,
        rate: args.rate,
        warmup_secs: args.warmup.as_secs_f64(),
        duration_secs: secs,
        payload_bytes: args.payload_bytes,
        connect_secs: connect_time.as_secs_f64(),
        sent,
        sent_total: sent_by.iter().sum(),
        expected: sent * (args.clients as u64 - 1),
        ack_latency_ms: shared.ack_latency.quantiles(),
        latency_ms: shared.latency.quantiles(),
        send_lag_ms: shared.timeline.send_lag.quantiles(),
        ..WritesReport::default()
    };
    let mut errors = Errors::default();
    for outcome in outcomes {
        let own = Some(outcome.index);
        report.acked += outcome.acked;
        report.acked_total += outcome.acked_total;
        report.unacked += outcome.acks.gaps + outcome.acks.missing(&[outcome.sent.total], None);
        report.duplicate_acks += outcome.acks.duplicates;
        report.ack_id_regressions += outcome.ack_id_regressions;
        report.relay_id_regressions += outcome.relay_id_regressions;
        for (code, count) in &outcome.refused {
            *report.refused_by_code.entry(code.clone()).or_default() += count;
            report.refused += count;
        }
        report.delivered += outcome.delivered;
        report.gaps += outcome.tracker.gaps;
        report.duplicates += outcome.tracker.duplicates;
        report.missing += outcome.tracker.missing(&sent_by, own);
        errors += outcome.errors;
        errors.malformed += outcome.tracker.unknown_senders + outcome.acks.unknown_senders;
        if outcome.sent.failed {
            errors.transport += 1;
        }
    }
    report.stored_per_sec = report.acked as f64 / secs;
    report.deliveries_per_sec = report.delivered as f64 / secs;
    report.errors = errors.total();
    report.error_kinds = errors;
    report.server_us_per_message = server
        .as_ref()
        .and_then(|server| PerDelivery::new(server, report.acked));
    report.server_us_per_delivery = server
        .as_ref()
        .and_then(|server| PerDelivery::new(server, report.delivered));
    report.server = server;
    report
}

/// What all client tasks share.
struct Shared {
    timeline: Timeline,
    clients: usize,
    payload_bytes: usize,
    /// From each message's scheduled send time to its ack.
    ack_latency: ShardedHistogram,
    /// From each message's scheduled send time to its arrival elsewhere.
    latency: ShardedHistogram,
}

/// What one client saw, for the totals.
struct ClientOutcome {
    index: usize,
    sent: Sent,
    /// Acks of this client's own messages, by sequence number (one sender).
    acks: SeqTracker,
    /// First acks of messages scheduled inside the window.
    acked: u64,
    /// First acks of any message, warm-up included.
    acked_total: u64,
    /// Acks whose id was not above the previous ack's.
    ack_id_regressions: u64,
    /// Refusals of this client's messages, by error code.
    refused: BTreeMap<String, u64>,
    /// Everyone else's messages.
    tracker: SeqTracker,
    /// New messages scheduled inside the window.
    delivered: u64,
    /// Relayed messages whose id was not above the previous one's.
    relay_id_regressions: u64,
    errors: Errors,
}

/// The `client_id` of message `seq` from client `index`.
fn client_id(index: usize, seq: u64) -> String {
    format!("{index}-{seq}")
}

/// Reads back a `client_id` made by [`client_id`].
fn parse_client_id(text: &str) -> Option<(usize, u64)> {
    let (index, seq) = text.split_once('-')?;
    Some((index.parse().ok()?, seq.parse().ok()?))
}

/// Ids that must strictly increase: counts the ones that do not.
#[derive(Default)]
struct Increasing {
    last: Option<u64>,
    regressions: u64,
}

impl Increasing {
    fn observe(&mut self, id: u64) {
        if self.last.is_some_and(|last| id <= last) {
            self.regressions += 1;
        }
        self.last = Some(id);
    }
}

async fn run_client(index: usize, ws: Ws, role: SenderRole, shared: Arc<Shared>) -> ClientOutcome {
    let schedule: Schedule = role.schedule;
    let timeline = &shared.timeline;
    let mut acks = SeqTracker::new(1);
    let (mut acked, mut acked_total) = (0, 0);
    let mut ack_ids = Increasing::default();
    let mut refused = BTreeMap::<String, u64>::new();
    let mut tracker = SeqTracker::new(shared.clients);
    let mut delivered = 0;
    let mut relay_ids = Increasing::default();
    let mut unknown = 0;

    let on_event = |event: Event<'_>, received: u64| match event {
        Event::Message { stamp, id, .. } => {
            match id {
                Some(id) => relay_ids.observe(id),
                None => unknown += 1,
            }
            if tracker.observe(stamp.sender, stamp.seq) == Seen::New
                && timeline.window.contains(&stamp.scheduled)
            {
                delivered += 1;
                let micros = received.saturating_sub(stamp.scheduled) / 1_000;
                shared.latency.record(index, micros);
            }
        }
        Event::Ack { client_id, id } => {
            let Some((seq, due)) = parse_client_id(client_id)
                .filter(|&(sender, _)| sender == index)
                .and_then(|(_, seq)| Some((seq, schedule.due(seq)?)))
            else {
                unknown += 1;
                return;
            };
            ack_ids.observe(id);
            if acks.observe(0, seq) == Seen::New {
                acked_total += 1;
                let scheduled = timeline.clock.unix_nanos(due);
                if timeline.window.contains(&scheduled) {
                    acked += 1;
                    let micros = received.saturating_sub(scheduled) / 1_000;
                    shared.ack_latency.record(index, micros);
                }
            }
        }
        Event::Refused {
            code,
            client_id: Some(_),
        } => *refused.entry(code.to_owned()).or_default() += 1,
        Event::Refused { .. } => {}
    };

    // Sending and receiving run side by side in this task: a send held up by
    // the server must not stop us reading (nor answering pings).
    let (mut sink, mut stream) = ws.split();
    let sender = u32::try_from(index).expect("fewer clients than open files");
    let (mut errors, sent) = tokio::join!(
        client::receive_events(&mut stream, &timeline.stop, &timeline.clock, on_event),
        timeline.send_on_schedule(&mut sink, index, role, |seq, scheduled| {
            let text = Stamp {
                sender,
                seq,
                scheduled,
            }
            .encode(shared.payload_bytes);
            ClientFrame::TrackedMessage {
                text: &text,
                client_id: &client_id(index, seq),
            }
            .encode()
        }),
    );
    let ws = sink.reunite(stream).expect("both halves of one connection");
    client::close(ws).await;
    errors.malformed += unknown;
    ClientOutcome {
        index,
        sent,
        acks,
        acked,
        acked_total,
        ack_id_regressions: ack_ids.regressions,
        refused,
        tracker,
        delivered,
        relay_id_regressions: relay_ids.regressions,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip_and_fit_the_protocol() {
        let id = client_id(19, 7_499);
        assert_eq!(id, "19-7499");
        assert_eq!(parse_client_id(&id), Some((19, 7_499)));
        assert!(id.len() <= 64);
        assert_eq!(parse_client_id("19"), None);
        assert_eq!(parse_client_id("a-1"), None);
    }

    #[test]
    fn ids_that_do_not_increase_are_counted() {
        let mut ids = Increasing::default();
        for id in [3, 5, 5, 4, 9] {
            ids.observe(id);
        }
        assert_eq!(ids.regressions, 2);
    }
}
