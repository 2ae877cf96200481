//! `fanout`: every client receives while a few of them send on a fixed
//! schedule; measures end-to-end latency and checks that no message is lost,
//! repeated or reordered. The timeline and the send loop are in
//! [`crate::schedule`], with why latency runs from the *scheduled* send time.
//!
//! With `--rooms N` the clients are spread over N rooms (and over every
//! `--addr`, see [`crate::layout`]): a message is expected by the other
//! clients of its sender's room, on whichever process they are, and every
//! check runs per room. A message naming another room, or from a sender of
//! another room, is counted in `wrong_room`.

use std::{sync::Arc, time::Duration};

use anyhow::{ensure, Context, Result};
use futures_util::{stream::SplitSink, StreamExt};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    client::{self, Errors, Event},
    config::{CommonArgs, FanoutArgs},
    connect::{connect_all, Connected, Ws, SETTLE},
    histogram::ShardedHistogram,
    layout::Layout,
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
    if let Some(rooms) = args.rooms {
        ensure!(
            args.clients >= 2 * rooms,
            "--clients ({}) must be at least twice --rooms ({rooms}): every room needs a \
             sender and someone to receive",
            args.clients
        );
    }
    let layout = Layout::new(args.rooms, common.addr.len());
    let mut server = ServerWatch::new(&common.server_pid).context("reading the server's /proc")?;
    let Connected { sockets, elapsed } = connect_all(common, args.clients, layout).await?;
    tokio::time::sleep(SETTLE).await;
    server.connected()?;

    let shared = Arc::new(Shared {
        timeline: Timeline::new(args.warmup, args.duration),
        senders: args.senders,
        layout,
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
    let layout = shared.layout;
    let mut sent_by = vec![0; args.senders];
    let mut sent = 0;
    let mut expected = 0;
    for outcome in outcomes {
        if let Some(counts) = outcome.sent {
            sent_by[outcome.index] = counts.total;
            sent += counts.in_window;
            let room = layout.room_of(outcome.index);
            let receivers = layout.in_room(args.clients, room) as u64 - 1;
            expected += counts.in_window * receivers;
        }
    }
    let mut report = FanoutReport {
        clients: args.clients,
        senders: args.senders,
        rooms: args.rooms,
        servers: clients_per_server(layout, outcomes),
        rate: args.rate,
        warmup_secs: args.warmup.as_secs_f64(),
        duration_secs: args.duration.as_secs_f64(),
        payload_bytes: args.payload_bytes,
        connect_secs: connect_time.as_secs_f64(),
        sent,
        expected,
        latency_ms: shared.latency.quantiles(),
        send_lag_ms: shared.timeline.send_lag.quantiles(),
        ..FanoutReport::default()
    };
    let mut errors = Errors::default();
    for outcome in outcomes {
        let room = layout.room_of(outcome.index);
        // What each sender of this room sent, in rank order.
        let sent_in_room: Vec<u64> = (0..layout.in_room(args.senders, room))
            .map(|rank| sent_by[layout.client(room, rank)])
            .collect();
        let own = (outcome.index < args.senders).then(|| layout.rank_in_room(outcome.index));
        report.delivered += outcome.delivered;
        report.gaps += outcome.tracker.gaps;
        report.duplicates += outcome.tracker.duplicates;
        report.missing += outcome.tracker.missing(&sent_in_room, own);
        report.wrong_room += outcome.wrong_room;
        errors += outcome.errors;
        errors.malformed += outcome.tracker.unknown_senders;
    }
    report.deliveries_per_sec = report.delivered as f64 / args.duration.as_secs_f64();
    report.errors = errors.total();
    report.error_kinds = errors;
    report.server_us_per_delivery = server
        .as_ref()
        .and_then(|server| PerDelivery::new(server, report.delivered));
    report.server_us_per_message = server
        .as_ref()
        .and_then(|server| PerDelivery::new(server, report.sent));
    report.server = server;
    report
}

/// How many clients each server process had, in `--addr` order.
fn clients_per_server(layout: Layout, outcomes: &[ClientOutcome]) -> Vec<usize> {
    let mut servers = vec![0; layout.servers()];
    for outcome in outcomes {
        servers[outcome.server] += 1;
    }
    servers
}

/// What all client tasks share.
struct Shared {
    timeline: Timeline,
    senders: usize,
    layout: Layout,
    payload_bytes: usize,
    latency: ShardedHistogram,
}

/// What one client saw, for the totals.
struct ClientOutcome {
    index: usize,
    /// The server (index into `--addr`) it was connected to.
    server: usize,
    /// Of the senders of its room, indexed by their rank in the room.
    tracker: SeqTracker,
    /// New messages scheduled inside the window.
    delivered: u64,
    /// Messages naming another room, or from a sender of another room.
    wrong_room: u64,
    errors: Errors,
    sent: Option<Sent>,
}

async fn run_client(
    index: usize,
    ws: Ws,
    sender: Option<SenderRole>,
    shared: Arc<Shared>,
) -> ClientOutcome {
    let layout = shared.layout;
    let room = layout.room_of(index);
    let room_name = layout.room_name(room);
    let mut tracker = SeqTracker::new(layout.in_room(shared.senders, room));
    let mut delivered = 0;
    let mut wrong_room = 0;
    let on_event = |event: Event<'_>, received: u64| {
        let Event::Message {
            stamp, room: named, ..
        } = event
        else {
            return;
        };
        if let Some(room_name) = &room_name {
            if named != Some(room_name.as_str()) || layout.room_of(stamp.sender as usize) != room {
                wrong_room += 1;
                return;
            }
        }
        let rank = layout.rank_in_room(stamp.sender as usize);
        let rank = u32::try_from(rank).expect("a rank is at most a sender's index");
        if tracker.observe(rank, stamp.seq) == Seen::New
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
            let errors = client::receive_events(
                &mut ws,
                &shared.timeline.stop,
                &shared.timeline.clock,
                on_event,
            )
            .await;
            (ws, errors, None)
        }
        // Sending and receiving run side by side in this task: a send held
        // up by the server must not stop us reading (nor answering pings).
        Some(role) => {
            let (mut sink, mut stream) = ws.split();
            let (errors, sent) = tokio::join!(
                client::receive_events(
                    &mut stream,
                    &shared.timeline.stop,
                    &shared.timeline.clock,
                    on_event
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
        server: layout.server_of(index),
        tracker,
        delivered,
        wrong_room,
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
