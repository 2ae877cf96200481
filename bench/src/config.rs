//! Command-line flags. Flags shared by every mode may come before or after
//! the mode's name.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{builder::RangedU64ValueParser, ArgAction, Args, Parser, Subcommand};

use crate::protocol::MESSAGE_MAX_CHARS;

/// Connections per source address when `--source-addrs` is not given: well
/// below the ~28,000 ephemeral ports Linux hands out per local address.
pub const CONNECTIONS_PER_SOURCE_ADDR: usize = 20_000;

/// loadgen: drives a server speaking Parley's wire protocol v1 with many
/// WebSocket clients and reports latency, losses and the server's resources.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Mode {
    /// Some clients send on a fixed schedule, every client receives; measures
    /// end-to-end latency and checks for lost, repeated or reordered messages.
    Fanout(FanoutArgs),
    /// Clients connect and stay idle; measures the server's memory per
    /// connection.
    Idle(IdleArgs),
    /// One client sends a single message to everyone, a few times; measures
    /// how long until the last client has it.
    Storm(StormArgs),
    /// Every client sends messages with a `client_id` on a fixed schedule and
    /// receives everyone else's; measures ack and delivery latency of a
    /// server that stores each message, and checks acks, losses and ids.
    Writes(WritesArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Server address (an IP address, not a name). Repeat it (or separate
    /// addresses with commas) for several server processes: clients are
    /// spread over them round-robin (see `fanout --rooms` for how). Give
    /// every value on the same side of the mode's name: values after it
    /// replace those before.
    #[arg(
        long,
        global = true,
        env = "LOADGEN_ADDR",
        default_value = "127.0.0.1:3000",
        value_delimiter = ',',
        action = ArgAction::Append
    )]
    pub addr: Vec<SocketAddr>,

    /// WebSocket path on the server.
    #[arg(long, global = true, default_value = "/ws")]
    pub path: String,

    /// Connections being opened at once.
    #[arg(long, global = true, default_value_t = 200,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub connect_concurrency: usize,

    /// Seconds one connection may take, TCP and WebSocket handshakes included.
    #[arg(long, global = true, default_value = "10", value_parser = seconds)]
    pub connect_timeout: Duration,

    /// Local addresses 127.0.0.1, 127.0.0.2, ... to spread connections over,
    /// for more connections than one address has ports. Default: one per
    /// 20,000 connections. More than one needs a 127.x.x.x server address.
    #[arg(long, global = true, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_addrs: Option<u8>,

    /// Process id of the server, to report its memory and CPU use (Linux).
    /// Repeat it (or separate ids with commas) for several server
    /// processes: the report gives each one's and their sum. As with
    /// `--addr`, give every value on the same side of the mode's name.
    #[arg(
        long,
        global = true,
        env = "LOADGEN_SERVER_PID",
        value_delimiter = ',',
        action = ArgAction::Append
    )]
    pub server_pid: Vec<u32>,

    /// Also write the report as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,

    /// Exit with status 2 unless the run was clean: no gaps, duplicates,
    /// missing messages or errors.
    #[arg(long, global = true)]
    pub assert_clean: bool,

    /// Seconds the whole run may take before it is abandoned as a failure.
    #[arg(long, global = true, default_value = "600", value_parser = seconds)]
    pub deadline: Duration,
}

impl CommonArgs {
    /// How many source addresses `clients` connections are spread over.
    pub fn source_addr_count(&self, clients: usize) -> usize {
        self.source_addrs.map_or_else(
            || clients.div_ceil(CONNECTIONS_PER_SOURCE_ADDR).max(1),
            usize::from,
        )
    }
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Client connections, senders included.
    #[arg(long, default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(2..))]
    pub clients: usize,

    /// Clients that send (the first ones); every client receives.
    #[arg(long, default_value_t = 10,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub senders: usize,

    /// Spread the clients evenly over this many rooms, `bench-0`,
    /// `bench-1`, ...: client `i` joins room `i mod N` (by connecting to
    /// `<path>?resume` and sending `resume` with that room first), so the
    /// senders, the first clients, are spread over the rooms too, and each
    /// message is expected by the other clients of its room only. Without
    /// it every client stays in the server's default room, on plain `<path>`.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=u32::MAX as u64))]
    pub rooms: Option<usize>,

    /// Messages per second from each sender; fractions allowed.
    #[arg(long, default_value_t = 1.0, value_parser = rate)]
    pub rate: f64,

    /// Seconds of sending before the measured window.
    #[arg(long, default_value = "5", value_parser = seconds)]
    pub warmup: Duration,

    /// Seconds in the measured window.
    #[arg(long, default_value = "30", value_parser = seconds)]
    pub duration: Duration,

    /// Seconds receivers keep listening after the last send.
    #[arg(long, default_value = "2", value_parser = seconds)]
    pub drain: Duration,

    /// Pad each message text to this many bytes (at most 2,000).
    #[arg(long, default_value_t = 0,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=MESSAGE_MAX_CHARS as u64))]
    pub payload_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct WritesArgs {
    /// Client connections, each sending and receiving.
    #[arg(long, default_value_t = 20,
          value_parser = RangedU64ValueParser::<usize>::new().range(2..))]
    pub clients: usize,

    /// Messages per second from each client; fractions allowed. A server's
    /// per-client rate limit must allow it.
    #[arg(long, default_value_t = 500.0, value_parser = rate)]
    pub rate: f64,

    /// Seconds of sending before the measured window.
    #[arg(long, default_value = "3", value_parser = seconds)]
    pub warmup: Duration,

    /// Seconds in the measured window.
    #[arg(long, default_value = "15", value_parser = seconds)]
    pub duration: Duration,

    /// Seconds clients keep listening (for acks and messages) after the
    /// last send.
    #[arg(long, default_value = "2", value_parser = seconds)]
    pub drain: Duration,

    /// Pad each message text to this many bytes (at most 2,000).
    #[arg(long, default_value_t = 0,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=MESSAGE_MAX_CHARS as u64))]
    pub payload_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Client connections.
    #[arg(long, default_value_t = 1_000,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub clients: usize,

    /// Seconds to hold the connections open once all are connected.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub hold: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    /// Client connections: one sender and everyone else receiving.
    #[arg(long, default_value_t = 1_000,
          value_parser = RangedU64ValueParser::<usize>::new().range(2..))]
    pub clients: usize,

    /// Messages (rounds) to send.
    #[arg(long, default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub repeat: u64,

    /// Seconds between rounds.
    #[arg(long, default_value = "1", value_parser = seconds)]
    pub pause: Duration,

    /// Seconds a round waits for every client before giving up on it.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub round_timeout: Duration,
}

/// Seconds, fractions allowed: `2`, `0.5`.
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{text}` is not a duration: it must be finite and not negative"))
}

/// Messages per second: positive, and at least one per day.
pub(crate) fn rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if rate.is_finite() && rate >= 1.0 / 86_400.0 {
        Ok(rate)
    } else {
        Err(format!(
            "`{text}` is not a rate: it must be positive and finite"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn common_flags_go_before_or_after_the_mode() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--addr",
            "127.0.0.1:4000",
            "fanout",
            "--rate",
            "0.5",
            "--warmup",
            "0.25",
            "--server-pid",
            "42",
        ])
        .unwrap();
        assert_eq!(cli.common.addr, ["127.0.0.1:4000".parse().unwrap()]);
        assert_eq!(cli.common.server_pid, [42]);
        let Mode::Fanout(fanout) = cli.mode else {
            panic!("parsed {:?}", cli.mode)
        };
        assert_eq!(fanout.rate, 0.5);
        assert_eq!(fanout.warmup, Duration::from_millis(250));
    }

    #[test]
    fn several_servers_are_given_by_repeating_flags_or_with_commas() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "--addr",
            "127.0.0.1:4000",
            "--addr",
            "127.0.0.1:4001,127.0.0.1:4002",
            "--server-pid",
            "7,8",
            "--server-pid",
            "9",
            "fanout",
            "--rooms",
            "1000",
        ])
        .unwrap();
        assert_eq!(cli.common.addr.len(), 3);
        assert_eq!(cli.common.addr[2].port(), 4002);
        assert_eq!(cli.common.server_pid, [7, 8, 9]);
        let Mode::Fanout(fanout) = cli.mode else {
            panic!("parsed {:?}", cli.mode)
        };
        assert_eq!(fanout.rooms, Some(1000));
        let cli = Cli::try_parse_from(["loadgen", "fanout"]).unwrap();
        assert_eq!(cli.common.addr, ["127.0.0.1:3000".parse().unwrap()]);
        assert!(cli.common.server_pid.is_empty());
    }

    #[test]
    fn writes_defaults_to_20_clients_at_500_per_second() {
        let cli = Cli::try_parse_from(["loadgen", "writes"]).unwrap();
        let Mode::Writes(writes) = cli.mode else {
            panic!("parsed {:?}", cli.mode)
        };
        assert_eq!((writes.clients, writes.rate), (20, 500.0));
    }

    #[test]
    fn nonsense_is_refused() {
        for args in [
            &["loadgen", "fanout", "--rate", "0"][..],
            &["loadgen", "fanout", "--rate", "inf"],
            &["loadgen", "fanout", "--clients", "1"],
            &["loadgen", "fanout", "--duration", "-1"],
            &["loadgen", "fanout", "--payload-bytes", "2001"],
            &["loadgen", "fanout", "--rooms", "0"],
            &["loadgen", "idle", "--source-addrs", "0"],
            &["loadgen", "storm", "--repeat", "0"],
            &["loadgen", "writes", "--clients", "1"],
            &["loadgen", "writes", "--rate", "0"],
            &["loadgen", "--addr", "localhost:3000", "idle"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn source_addresses_default_to_one_per_20000_connections() {
        let cli = Cli::try_parse_from(["loadgen", "idle"]).unwrap();
        assert_eq!(cli.common.source_addr_count(1), 1);
        assert_eq!(cli.common.source_addr_count(20_000), 1);
        assert_eq!(cli.common.source_addr_count(20_001), 2);
        let cli = Cli::try_parse_from(["loadgen", "idle", "--source-addrs", "3"]).unwrap();
        assert_eq!(cli.common.source_addr_count(10), 3);
    }
}
