//! Command-line flags, each with an environment variable and a sane default.

use std::{net::SocketAddr, time::Duration};

use clap::{builder::RangedU64ValueParser, Parser};

use crate::origin::OriginPolicy;
use crate::proxy::TrustedProxies;
use crate::session::RateLimit;

/// Parley: a real-time chat server (HTTP page and WebSocket on one port).
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on, for the page and the `/ws` endpoint alike.
    /// `LEPTOS_SITE_ADDR` is what `cargo leptos` sets.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Address to serve Prometheus' `/metrics` on, and nothing else, e.g.
    /// `127.0.0.1:9100`: one that only operators can reach. Unset, the
    /// metrics are not served (never on the page's address: they tell
    /// anyone how busy the chat is).
    #[arg(long, env = "PARLEY_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log filter in `tracing` syntax, e.g. `info` or `server=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,

    #[command(flatten)]
    pub connection: ConnectionConfig,

    #[command(flatten)]
    pub chat: ChatConfig,

    #[command(flatten)]
    pub http: HttpConfig,

    #[command(flatten)]
    pub store: StoreConfig,

    /// Shares rooms with other Parley processes through this Redis, e.g.
    /// `redis://127.0.0.1:6379`. Needs a PostgreSQL `DATABASE_URL` that
    /// every process shares. Unset: this process chats alone.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
}

impl Config {
    /// What the flags cannot check one by one: several processes share
    /// rooms only through one store, and SQLite is one process's file; the
    /// metrics need an address of their own; a handshake is a request too.
    pub fn check(&self) -> Result<(), String> {
        // Port 0 binds two different ephemeral ports, so only a real port
        // clashes; refused here with a reason rather than as a failed bind.
        if self.metrics_addr == Some(self.addr) && self.addr.port() != 0 {
            return Err(format!(
                "--metrics-addr must differ from --addr ({}): the metrics are \
                 not served on the page's address",
                self.addr
            ));
        }
        let (handshakes, requests) = (self.http.handshake_rate(), self.http.request_rate());
        if handshakes.burst > requests.burst || handshakes.per_second > requests.per_second {
            return Err(format!(
                "the handshake rate ({} at once, {} a second) must not exceed the request \
                 rate ({} at once, {} a second): every handshake is a request too, so the \
                 request rate would be the limit; raise --request-rate-burst and \
                 --request-rate-per-sec with them",
                handshakes.burst, handshakes.per_second, requests.burst, requests.per_second
            ));
        }
        let postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| self.store.database_url.starts_with(scheme));
        if self.redis_url.is_some() && !postgres {
            return Err("REDIS_URL shares rooms between processes, which needs a \
                 PostgreSQL DATABASE_URL (postgres://...) that they all use"
                .into());
        }
        Ok(())
    }
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
    #[arg(long, env = "PARLEY_PING_INTERVAL_SECS", default_value_t = ConnectionConfig::DEFAULT.ping_interval_secs,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ping_interval_secs: u64,

    /// Bytes read from a socket at a time (tungstenite's read buffer). Small,
    /// because it is allocated and zeroed per connection; larger frames grow it.
    /// 64 to 65536: tungstenite cannot read with an empty buffer.
    #[arg(long, env = "PARLEY_READ_BUFFER", default_value_t = ConnectionConfig::DEFAULT.read_buffer,
          value_parser = RangedU64ValueParser::<usize>::new().range(64..=65536))]
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

    /// Seconds a dropped person (one whose client can resume) stays online
    /// with their nickname reserved, waiting for them to come back with
    /// their resume token; 0 lets them go at once.
    #[arg(long, env = "PARLEY_RESUME_GRACE_SECS", default_value_t = ChatConfig::DEFAULT.resume_grace_secs,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub resume_grace_secs: u64,
}

impl ChatConfig {
    pub const DEFAULT: Self = Self {
        rate_limit_burst: 20,
        rate_limit_per_sec: 10,
        presence_interval_ms: 200,
        presence_list_limit: 1000,
        resume_grace_secs: 60,
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

    pub fn resume_grace(&self) -> Duration {
        Duration::from_secs(self.resume_grace_secs)
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Who may connect, how many at once, and how long they may stall.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpConfig {
    /// Origins, besides the page's own, whose pages may open `/ws`: a
    /// comma-separated list such as `https://chat.example.com`, or `*` for
    /// any. Clients that send no `Origin` (non-browsers) are always allowed.
    #[arg(long, env = "PARLEY_ALLOWED_ORIGINS", default_value = "", hide_default_value = true,
          value_parser = OriginPolicy::parse)]
    pub allowed_origins: OriginPolicy,

    /// Open connections (HTTP and WebSocket) beyond which a new one is
    /// answered `503 Service Unavailable` and closed.
    #[arg(long, env = "PARLEY_MAX_CONNECTIONS", default_value_t = HttpConfig::DEFAULT.max_connections,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,

    /// Open connections from one client address beyond which a new one is
    /// answered `429 Too Many Requests` and closed.
    #[arg(long, env = "PARLEY_MAX_CONNECTIONS_PER_IP", default_value_t = HttpConfig::DEFAULT.max_connections_per_ip,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections_per_ip: usize,

    /// HTTP requests (the page, its files, `/healthz`, WebSocket
    /// handshakes) one client address may make at once; beyond it they are
    /// answered `429 Too Many Requests`. A page load is about 5: this lets
    /// 40 people behind one address load it at the same moment.
    #[arg(long, env = "PARLEY_REQUEST_RATE_BURST", default_value_t = HttpConfig::DEFAULT.request_rate_burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub request_rate_burst: u32,

    /// HTTP requests per second one client address may keep making after a
    /// burst: 10 page loads a second.
    #[arg(long, env = "PARLEY_REQUEST_RATE_PER_SEC", default_value_t = HttpConfig::DEFAULT.request_rate_per_sec,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub request_rate_per_sec: u32,

    /// WebSocket handshakes one client address may make at once (each is a
    /// request too); beyond it they are answered `429 Too Many Requests`.
    /// A page makes one, and reconnects at most every half second.
    #[arg(long, env = "PARLEY_HANDSHAKE_RATE_BURST", default_value_t = HttpConfig::DEFAULT.handshake_rate_burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub handshake_rate_burst: u32,

    /// WebSocket handshakes per second one client address may keep making
    /// after a burst.
    #[arg(long, env = "PARLEY_HANDSHAKE_RATE_PER_SEC", default_value_t = HttpConfig::DEFAULT.handshake_rate_per_sec,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub handshake_rate_per_sec: u32,

    /// Seconds an HTTP response may wait for a client that reads nothing
    /// before the connection is dropped.
    #[arg(long, env = "PARLEY_HTTP_WRITE_TIMEOUT_SECS", default_value_t = HttpConfig::DEFAULT.http_write_timeout_secs,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub http_write_timeout_secs: u64,

    /// Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Host` are
    /// believed: comma-separated IP addresses and CIDR ranges, like
    /// `127.0.0.1,10.0.0.0/8`. Requests they forward count against the
    /// client's address, and the Origin check compares with the host the
    /// client asked the proxy for. None by default: those headers are ignored.
    #[arg(long, env = "PARLEY_TRUSTED_PROXIES", default_value = "", hide_default_value = true,
          value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
}

impl HttpConfig {
    /// The defaults of the flags (see [`ConnectionConfig::DEFAULT`]).
    pub const DEFAULT: Self = Self {
        allowed_origins: OriginPolicy::SAME_ORIGIN,
        max_connections: 16384,
        max_connections_per_ip: 256,
        request_rate_burst: 200,
        request_rate_per_sec: 50,
        handshake_rate_burst: 20,
        handshake_rate_per_sec: 5,
        http_write_timeout_secs: 30,
        trusted_proxies: TrustedProxies::NONE,
    };

    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.http_write_timeout_secs)
    }

    /// How fast one client address may make HTTP requests.
    pub fn request_rate(&self) -> RateLimit {
        RateLimit {
            burst: self.request_rate_burst,
            per_second: self.request_rate_per_sec,
        }
    }

    /// How fast one client address may make WebSocket handshakes.
    pub fn handshake_rate(&self) -> RateLimit {
        RateLimit {
            burst: self.handshake_rate_burst,
            per_second: self.handshake_rate_per_sec,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where the messages are stored.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (created with its directory if missing)
    /// or `postgres://user@host/database`.
    #[arg(long, env = "DATABASE_URL", default_value_t = StoreConfig::default_url())]
    pub database_url: String,
    /// Forget messages older than this (`30d`, `12h`; at least `1m`). Off
    /// by default: everything is kept.
    #[arg(long, env = "PARLEY_RETENTION", value_parser = parse_retention)]
    pub retention: Option<Duration>,
}

/// A retention period: a humantime duration of at least a minute, so a
/// typo cannot make messages vanish before anyone reads them.
fn parse_retention(raw: &str) -> Result<Duration, String> {
    let age = humantime::parse_duration(raw).map_err(|error| error.to_string())?;
    if age < Duration::from_secs(60) {
        return Err(format!("{raw} is shorter than a minute"));
    }
    Ok(age)
}

impl StoreConfig {
    /// A file beside the working directory, so the server runs with no setup.
    pub fn default_url() -> String {
        "sqlite://data/parley.db".into()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database_url: Self::default_url(),
            retention: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn retention_is_off_by_default_and_at_least_a_minute() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("parley").chain(args.iter().copied()))
        };
        assert_eq!(parse(&[]).unwrap().store.retention, None);
        assert_eq!(
            parse(&["--retention", "30d"]).unwrap().store.retention,
            Some(Duration::from_secs(30 * 86_400))
        );
        for bad in ["59s", "soon", "0"] {
            assert!(parse(&["--retention", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn redis_needs_a_shared_postgresql_store() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("parley").chain(args.iter().copied())).unwrap()
        };
        let alone = parse(&[]);
        assert!(alone.check().is_ok());
        let on_sqlite = parse(&["--redis-url", "redis://127.0.0.1:1"]);
        assert!(on_sqlite.check().unwrap_err().contains("PostgreSQL"));
        let shared = parse(&[
            "--redis-url",
            "redis://127.0.0.1:1",
            "--database-url",
            "postgres://localhost/parley",
        ]);
        assert!(shared.check().is_ok());
    }

    #[test]
    fn the_metrics_address_is_optional_and_not_the_pages() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("parley").chain(args.iter().copied()))
        };
        if std::env::var_os("PARLEY_METRICS_ADDR").is_none() {
            assert_eq!(parse(&[]).unwrap().metrics_addr, None);
        }
        let apart = parse(&["--metrics-addr", "127.0.0.1:9100"]).unwrap();
        assert_eq!(apart.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
        assert!(apart.check().is_ok());
        let same = parse(&["--addr", "0.0.0.0:3000", "--metrics-addr", "0.0.0.0:3000"]).unwrap();
        assert!(same.check().unwrap_err().contains("--metrics-addr"));
        let ephemeral = parse(&["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"]).unwrap();
        assert!(ephemeral.check().is_ok());
        let err = parse(&["--metrics-addr", "9100"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
    }

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
        assert_eq!(config.http.allowed_origins, OriginPolicy::SAME_ORIGIN);
        for nonsense in [
            &["--ping-interval-secs", "0"][..],
            &["--ping-interval-secs", "3601"],
            &["--read-buffer", "0"],
            &["--read-buffer", "63"],
            &["--read-buffer", "65537"],
            &["--client-buffer-bytes", "0"],
            &["--rate-limit-burst", "0"],
            &["--presence-interval-ms", "1"],
            &["--addr", "nowhere"],
            &["--max-connections", "0"],
            &["--max-connections-per-ip", "0"],
            &["--request-rate-burst", "0"],
            &["--request-rate-per-sec", "0"],
            &["--handshake-rate-burst", "0"],
            &["--handshake-rate-per-sec", "0"],
            &["--http-write-timeout-secs", "0"],
            &["--allowed-origins", "chat.example.com"],
            &["--allowed-origins", "https://chat.example.com/"],
            &["--trusted-proxies", "localhost"],
            &["--trusted-proxies", "10.0.0.1/8"],
            &["--trusted-proxies", "10.0.0.0/33"],
        ] {
            let args = std::iter::once("parley").chain(nonsense.iter().copied());
            let err = Config::try_parse_from(args).expect_err(&format!("{nonsense:?}"));
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
        }
        let edges = Config::try_parse_from([
            "parley",
            "--ping-interval-secs",
            "3600",
            "--read-buffer",
            "64",
        ])
        .unwrap();
        assert_eq!(edges.connection.ping_interval_secs, 3600);
        assert_eq!(edges.connection.read_buffer, 64);
    }

    #[test]
    fn the_caps_the_write_timeout_and_the_allowed_origins_are_taken() {
        let config = Config::try_parse_from([
            "parley",
            "--max-connections",
            "3",
            "--max-connections-per-ip",
            "2",
            "--http-write-timeout-secs",
            "1",
            "--allowed-origins",
            "https://chat.example.com,http://localhost:8080",
        ])
        .unwrap();
        assert_eq!(config.http.max_connections, 3);
        assert_eq!(config.http.max_connections_per_ip, 2);
        assert_eq!(config.http.write_timeout(), Duration::from_secs(1));
        assert_eq!(
            config.http.allowed_origins,
            OriginPolicy::SameOriginOr(vec![
                "https://chat.example.com".into(),
                "http://localhost:8080".into()
            ])
        );
        let any = Config::try_parse_from(["parley", "--allowed-origins", "*"]).unwrap();
        assert_eq!(any.http.allowed_origins, OriginPolicy::Any);
    }

    #[test]
    fn the_rates_are_taken_and_a_handshake_rate_above_the_request_rate_is_refused() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("parley").chain(args.iter().copied())).unwrap()
        };
        let config = parse(&[
            "--request-rate-burst",
            "1000",
            "--request-rate-per-sec",
            "100",
            "--handshake-rate-burst",
            "1000",
            "--handshake-rate-per-sec",
            "7",
        ]);
        assert_eq!(
            config.http.request_rate(),
            RateLimit {
                burst: 1000,
                per_second: 100
            }
        );
        assert_eq!(
            config.http.handshake_rate(),
            RateLimit {
                burst: 1000,
                per_second: 7
            }
        );
        assert!(config.check().is_ok());
        for args in [
            &["--handshake-rate-burst", "201"][..],
            &["--handshake-rate-per-sec", "51"],
        ] {
            let err = parse(args).check().unwrap_err();
            assert!(err.contains("--request-rate-burst"), "{args:?}: {err}");
        }
    }

    #[test]
    fn the_trusted_proxies_are_taken() {
        let config =
            Config::try_parse_from(["parley", "--trusted-proxies", "127.0.0.1, 10.0.0.0/8"])
                .unwrap();
        assert_eq!(
            config.http.trusted_proxies,
            TrustedProxies::parse("127.0.0.1,10.0.0.0/8").unwrap()
        );
        assert!(config.http.trusted_proxies.contains([10, 1, 2, 3].into()));
    }

    #[test]
    fn the_defaults_of_the_flags_are_the_defaults_in_code() {
        let config = Config::try_parse_from(["parley"]).unwrap();
        let http = HttpConfig::DEFAULT;
        assert_eq!(config.http.allowed_origins, http.allowed_origins);
        assert_eq!(config.http.max_connections, http.max_connections);
        assert_eq!(
            config.http.max_connections_per_ip,
            http.max_connections_per_ip
        );
        assert_eq!(
            config.http.http_write_timeout_secs,
            http.http_write_timeout_secs
        );
        assert_eq!(config.http.trusted_proxies, http.trusted_proxies);
        assert!(config.http.trusted_proxies.is_empty());
        assert_eq!(config.http.request_rate(), http.request_rate());
        assert_eq!(config.http.handshake_rate(), http.handshake_rate());
        assert!(config.check().is_ok());
        assert_eq!(
            config.connection.read_buffer,
            ConnectionConfig::DEFAULT.read_buffer
        );
    }

    #[test]
    fn the_database_url_defaults_to_a_sqlite_file_and_is_taken() {
        // Unless the environment sets it, the default is the default in code.
        if std::env::var_os("DATABASE_URL").is_none() {
            let config = Config::try_parse_from(["parley"]).unwrap();
            assert_eq!(
                config.store.database_url,
                StoreConfig::default().database_url
            );
            assert_eq!(config.store.database_url, "sqlite://data/parley.db");
        }
        let config =
            Config::try_parse_from(["parley", "--database-url", "postgres://me@db/parley"])
                .unwrap();
        assert_eq!(config.store.database_url, "postgres://me@db/parley");
    }
}
