//! `loadgen`, Parley's load generator, as a library so tests can drive it.
//!
//! It loads any server that speaks wire protocol v1 (`PROTOCOL.md`) over
//! plain `ws://`, in one of four modes (see [`config::Mode`]):
//!
//! - [`fanout`]: steady traffic; end-to-end latency and lost messages.
//! - [`idle`]: open connections only; server memory per connection.
//! - [`storm`]: one message to everyone; time until the last has it.
//! - [`writes`]: everyone sends acked messages; ack and delivery latency of
//!   a server that stores them, lost messages, ids in order.
//!
//! [`floor`] is the storm without a server: the least time the machine
//! itself needs, a yardstick for the storm's numbers (the `floor` binary).
//!
//! [`compare`] runs those modes against Parley and the Node peer in one go
//! and reports medians, ratios and targets (the `compare` binary).
//!
//! Supporting modules: [`connect`] opens the connections where [`layout`]
//! puts them (which server process, which room), [`schedule`] times the
//! senders, [`client`] reads them, [`protocol`] and [`stamp`] are what goes
//! over the wire, [`tracker`] and [`histogram`] turn arrivals into numbers,
//! [`procstat`] watches the server processes, and [`report`] presents the
//! results.

pub mod client;
pub mod compare;
pub mod config;
pub mod connect;
pub mod fanout;
pub mod floor;
pub mod histogram;
pub mod idle;
pub mod layout;
pub mod procstat;
pub mod protocol;
pub mod report;
pub mod schedule;
pub mod stamp;
pub mod storm;
pub mod tracker;
pub mod writes;

use anyhow::{anyhow, Result};

use crate::{
    config::{Cli, Mode},
    report::Report,
};

/// Runs the mode `cli` asks for. An `Err` means the run could not be done
/// (the server was unreachable, a limit was too low, it took longer than
/// `--deadline`); problems seen during the run are counted in the report.
pub async fn run(cli: &Cli) -> Result<Report> {
    let common = &cli.common;
    let work = async {
        Ok(match &cli.mode {
            Mode::Fanout(args) => Report::Fanout(fanout::run(common, args).await?),
            Mode::Idle(args) => Report::Idle(idle::run(common, args).await?),
            Mode::Storm(args) => Report::Storm(storm::run(common, args).await?),
            Mode::Writes(args) => Report::Writes(writes::run(common, args).await?),
        })
    };
    tokio::time::timeout(common.deadline, work)
        .await
        .map_err(|_| {
            anyhow!(
                "the run took longer than --deadline ({:?})",
                common.deadline
            )
        })?
}
