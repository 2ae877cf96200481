//! `idle`: many connections that say nothing, to measure what an open
//! connection costs the server.

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, Errors},
    config::{CommonArgs, IdleArgs},
    connect::{connect_all, Connected, SETTLE},
    layout::Layout,
    procstat::ServerWatch,
    report::IdleReport,
    stamp::Clock,
};

pub async fn run(common: &CommonArgs, args: &IdleArgs) -> Result<IdleReport> {
    let mut server = ServerWatch::new(&common.server_pid).context("reading the server's /proc")?;
    let Connected { sockets, elapsed } =
        connect_all(common, args.clients, Layout::new(None, common.addr.len())).await?;

    // Idle clients still read: that is what answers the server's pings.
    let clock = Clock::new();
    let stop = CancellationToken::new();
    let mut clients = JoinSet::new();
    for mut ws in sockets {
        let stop = stop.clone();
        clients.spawn(async move {
            let errors = client::receive(&mut ws, &stop, &clock, |_, _| {}).await;
            client::close(ws).await;
            errors
        });
    }

    tokio::time::sleep(SETTLE).await;
    server.connected()?;
    server.start_cpu()?;
    tracing::info!(secs = args.hold.as_secs_f64(), "holding");
    tokio::time::sleep(args.hold).await;
    let usage = server.finish(args.clients)?;

    stop.cancel();
    let mut errors = Errors::default();
    for client_errors in clients.join_all().await {
        errors += client_errors;
    }
    Ok(IdleReport {
        clients: args.clients,
        connect_secs: elapsed.as_secs_f64(),
        hold_secs: args.hold.as_secs_f64(),
        errors: errors.total(),
        error_kinds: errors,
        server: usage,
    })
}
