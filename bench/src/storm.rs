//! `storm`: one client sends a single message to everyone else; how long
//! until the last of them has it? Repeated a few times.

use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::SinkExt;
use tokio::{
    sync::mpsc,
    task::JoinSet,
    time::{timeout_at, Instant},
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, Errors},
    config::{CommonArgs, StormArgs},
    connect::{connect_all, Connected, Ws, SETTLE},
    layout::Layout,
    procstat::ServerWatch,
    protocol::ClientFrame,
    report::{Round, StormReport},
    stamp::{Clock, Stamp},
};

/// One receiver got round `round`'s message at `received` (Unix ns).
struct Arrival {
    round: u64,
    received: u64,
}

pub async fn run(common: &CommonArgs, args: &StormArgs) -> Result<StormReport> {
    let mut server = ServerWatch::new(&common.server_pid).context("reading the server's /proc")?;
    let Connected { sockets, elapsed } =
        connect_all(common, args.clients, Layout::new(None, common.addr.len())).await?;

    let clock = Clock::new();
    let stop = CancellationToken::new();
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let mut sockets = sockets.into_iter();
    let mut origin = sockets.next().expect("a storm has at least two clients");
    let receivers = sockets.len();
    let mut clients = JoinSet::new();
    for mut ws in sockets {
        let (stop, arrived) = (stop.clone(), arrived.clone());
        clients.spawn(async move {
            let errors = client::receive(&mut ws, &stop, &clock, |stamp, received| {
                // Fails only once the run is over and nobody is listening.
                let _ = arrived.send(Arrival {
                    round: stamp.seq,
                    received,
                });
            })
            .await;
            client::close(ws).await;
            errors
        });
    }
    drop(arrived);

    tokio::time::sleep(SETTLE).await;
    server.connected()?;
    server.start_cpu()?;
    let mut errors = Errors::default();
    let mut rounds = Vec::new();
    for round in 0..args.repeat {
        if round > 0 {
            errors += listen(&mut origin, args.pause, &clock).await;
        }
        let latencies = storm_round(
            &mut origin,
            round,
            &clock,
            &mut arrivals,
            receivers,
            args.round_timeout,
        )
        .await?;
        let round = Round::new(receivers, latencies);
        tracing::info!(received = round.received, last_ms = ?round.last_ms, "round");
        rounds.push(round);
    }
    let usage = server.finish(args.clients)?;

    stop.cancel();
    for client_errors in clients.join_all().await {
        errors += client_errors;
    }
    client::close(origin).await;
    Ok(StormReport::new(
        args.clients,
        elapsed.as_secs_f64(),
        rounds,
        errors,
        usage,
    ))
}

/// Sends round `round`'s message and collects each receiver's latency from
/// the moment of sending, in nanoseconds, until all have it or `limit` runs
/// out.
async fn storm_round(
    origin: &mut Ws,
    round: u64,
    clock: &Clock,
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    receivers: usize,
    limit: Duration,
) -> Result<Vec<u64>> {
    let sent = clock.now();
    let text = Stamp {
        sender: 0,
        seq: round,
        scheduled: sent,
    }
    .encode(0);
    origin
        .send(Message::text(ClientFrame::Message(&text).encode()))
        .await
        .context("sending the storm message")?;

    let deadline = Instant::now() + limit;
    let mut latencies = Vec::with_capacity(receivers);
    while latencies.len() < receivers {
        match timeout_at(deadline, arrivals.recv()).await {
            Ok(Some(arrival)) if arrival.round == round => {
                latencies.push(arrival.received.saturating_sub(sent));
            }
            // A straggler from a round that already gave up on it.
            Ok(Some(_)) => {}
            // Out of time, or every receiver is gone.
            Ok(None) | Err(_) => break,
        }
    }
    Ok(latencies)
}

/// Reads the sender's connection for `pause` (nothing is expected, but
/// reading answers the server's pings) and returns what went wrong.
async fn listen(origin: &mut Ws, pause: Duration, clock: &Clock) -> Errors {
    let forever = CancellationToken::new();
    // Running out of time is the normal end; dropping `receive` then is safe
    // because reading the next frame is cancel-safe.
    tokio::time::timeout(pause, client::receive(origin, &forever, clock, |_, _| {}))
        .await
        .unwrap_or_default()
}
