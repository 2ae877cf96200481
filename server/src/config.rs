//! Command-line flags, each with an environment variable and a sane default.

use std::{net::SocketAddr, time::Duration};

use clap::{builder::RangedU64ValueParser, Parser};

use crate::session::RateLimit;

/// Parley: a real-time chat server (HTTP page and WebSocket on one port).
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on, for the page and the `/ws` endpoint alike.
    /// `LEPTOS_SITE_ADDR` is what `cargo leptos` sets.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Log filter in `tracing` syntax, e.g. `info` or `server=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,

    #[command(flatten)]
    pub connection: ConnectionConfig,

    #[command(flatten)]
    pub chat: ChatConfig,
}

/// Per-connection tuning; the defaults favour many mostly idle chat clients.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionConfig {
    /// Bytes that may wait for one slow client (messages, pongs and all),
    /// once its socket buffer is full, before it is disconnected (close code
    /// 1008) rather than allowed to bloat the server.
    #[arg(long, env = "PARLEY_CLIENT_BUFFER_BYTES", default_value_t = ConnectionConfig::DEFAULT.client_buffer_bytes,
          value_parser = RangedU64ValueParser::<usize>::new().range(1024..=1 << 30))]
    pub client_buffer_bytes: usize,

    /// Seconds between the server's pings. A client that has sent nothing,
    /// not even a pong, for two intervals is dropped as dead.
    #[arg(long, env = "PARLEY_PING_INTERVAL_SECS", default_value_t = ConnectionConfig::DEFAULT.ping_interval_secs, value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_interval_secs: u64,

    /// Bytes read from a socket at a time (tungstenite's read buffer). Small,
    /// because it is allocated and zeroed per connection; larger frames grow it.
    #[arg(long, env = "PARLEY_READ_BUFFER", default_value_t = ConnectionConfig::DEFAULT.read_buffer)]
    pub read_buffer: usize,
}

impl ConnectionConfig {
    /// The defaults of the flags, in one place for the flags and for code
    /// (tests, embedders) that builds a configuration without parsing any.
    pub const DEFAULT: Self = Self {
        client_buffer_bytes: 256 * 1024,
        ping_interval_secs: 30,
        read_buffer: 512,
    };

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs)
    }
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How the chat treats its clients: rate limits and presence.
#[derive(Debug, Clone, clap::Args)]
pub struct ChatConfig {
    /// Frames (messages, nickname changes, bad frames) a client may send in
    /// one burst; beyond it they are refused with `rate_limited`.
    #[arg(long, env = "PARLEY_RATE_LIMIT_BURST", default_value_t = ChatConfig::DEFAULT.rate_limit_burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// Frames per second a client may keep sending after a burst.
    #[arg(long, env = "PARLEY_RATE_LIMIT_PER_SEC", default_value_t = ChatConfig::DEFAULT.rate_limit_per_sec,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_sec: u32,

    /// Milliseconds over which joins, leaves and renames are gathered into
    /// one `presence` announcement.
    #[arg(long, env = "PARLEY_PRESENCE_INTERVAL_MS", default_value_t = ChatConfig::DEFAULT.presence_interval_ms,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub presence_interval_ms: u64,

    /// Largest number of people online whose names presence lists; above
    /// it, only the count is announced.
    #[arg(long, env = "PARLEY_PRESENCE_LIST_LIMIT", default_value_t = ChatConfig::DEFAULT.presence_list_limit)]
    pub presence_list_limit: usize,
}

impl ChatConfig {
    pub const DEFAULT: Self = Self {
        rate_limit_burst: 20,
        rate_limit_per_sec: 10,
        presence_interval_ms: 200,
        presence_list_limit: 1000,
    };

    pub fn rate_limit(&self) -> RateLimit {
        RateLimit {
            burst: self.rate_limit_burst,
            per_second: self.rate_limit_per_sec,
        }
    }

    pub fn presence_interval(&self) -> Duration {
        Duration::from_millis(self.presence_interval_ms)
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn flags_override_defaults_and_nonsense_is_refused() {
        let config = Config::try_parse_from([
            "parley",
            "--addr",
            "127.0.0.1:0",
            "--client-buffer-bytes",
            "8192",
            "--rate-limit-per-sec",
            "500",
        ])
        .unwrap();
        assert_eq!(config.addr.port(), 0);
        assert_eq!(config.connection.client_buffer_bytes, 8192);
        assert_eq!(config.chat.rate_limit().per_second, 500);
        assert!(Config::try_parse_from(["parley", "--ping-interval-secs", "0"]).is_err());
        assert!(Config::try_parse_from(["parley", "--client-buffer-bytes", "0"]).is_err());
        assert!(Config::try_parse_from(["parley", "--rate-limit-burst", "0"]).is_err());
        assert!(Config::try_parse_from(["parley", "--presence-interval-ms", "1"]).is_err());
        assert!(Config::try_parse_from(["parley", "--addr", "nowhere"]).is_err());
    }
}
