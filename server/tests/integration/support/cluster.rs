//! Processes for tests of several servers: a throwaway `redis-server`, and
//! the real server binary. Each runs on a free loopback port and is killed
//! when dropped, so a failing test leaves nothing behind.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{Client, WAIT};

/// Where Debian's package puts it (scripts/setup.sh installs it).
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A port nobody listens on now. Another process could take it before the
/// caller binds it; callers that cannot simply ask for port 0 retry.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Waits for a child to exit, up to `WAIT`; `None` if it is still running.
async fn wait_for_exit(child: &mut Child) -> Option<ExitStatus> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Kills a child and reaps it, if it still runs.
fn kill_and_reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends SIGTERM to a child (std has no way to, and a crate for one call
/// would be more than `kill(1)`).
fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// A `redis-server` of the test's own on 127.0.0.1, with no persistence and
/// a throwaway directory; killed on drop.
pub struct Redis {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Redis {
    /// A running Redis, answering `PING`. `None` (with a notice) if
    /// `redis-server` is not installed, except in CI, where that fails.
    pub async fn start() -> Option<Self> {
        if !Path::new(REDIS_SERVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{REDIS_SERVER} must be installed in CI (scripts/setup.sh)"
            );
            eprintln!("{REDIS_SERVER} is not installed (scripts/setup.sh): skipped");
            return None;
        }
        let mut redis = Self {
            port: 0,
            dir: TempDir::new().unwrap(),
            child: None,
        };
        // A port taken between free_port() and redis' bind: try another.
        for _ in 0..5 {
            redis.port = free_port();
            if redis.spawn().await {
                return Some(redis);
            }
        }
        panic!("redis-server did not start");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL) and waits until it is gone: clients see the
    /// connection drop, as when Redis crashes.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill redis-server");
            assert!(
                wait_for_exit(&mut child).await.is_some(),
                "redis-server exits"
            );
        }
    }

    /// Starts it again on the same port (empty: nothing was persisted).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop() it first");
        // The port was ours a moment ago; on a busy machine another process
        // may take it, which no retry of ours could undo.
        assert!(
            self.spawn().await,
            "redis-server restarts on port {}",
            self.port
        );
    }

    /// Spawns redis-server on `self.port`; whether it answers `PING`.
    async fn spawn(&mut self) -> bool {
        let log = self.dir.path().join("redis.log");
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server starts");
        let child = self.child.insert(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if ping(self.port).await {
                return true;
            }
            if child.try_wait().expect("redis' status").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "redis-server on port {} did not answer; its log:\n{}",
            self.port,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
        false
    }

    /// Whether it answers `PING` now.
    pub async fn answers(&self) -> bool {
        ping(self.port).await
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            kill_and_reap(child);
        }
    }
}

/// Whether something on `port` answers Redis' inline `PING` with `+PONG`.
async fn ping(port: u16) -> bool {
    let exchange = async {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await?;
        socket.write_all(b"PING\r\n").await?;
        let mut answer = [0; 7];
        socket.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(&answer == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(true))
    )
}

/// The repository's root, where the server finds `target/site`.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate is in the workspace")
        .to_owned()
}

/// The real server binary (`target/<profile>/server`), on a free loopback
/// port of its own choosing; killed on drop.
pub struct ServerProcess {
    pub addr: SocketAddr,
    /// Where it serves `/metrics`, when started with `PARLEY_METRICS_ADDR`.
    pub metrics_addr: Option<SocketAddr>,
    child: Child,
    /// Holds the SQLite file, when no `DATABASE_URL` was given.
    _data: Option<TempDir>,
}

impl ServerProcess {
    /// Starts the server with these environment variables (`DATABASE_URL`,
    /// `REDIS_URL`, ...) on top of the test's own, from the repository root,
    /// and waits until `/healthz` answers. It listens on `127.0.0.1:0` and
    /// says where in its log, so no port can be taken from under it. With
    /// no `DATABASE_URL`, it gets a SQLite file of its own.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let get = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let data = get("DATABASE_URL")
            .is_none()
            .then(|| TempDir::new().unwrap());
        // Its log must say where it listens (`server` at `info`).
        let log = match get("RUST_LOG") {
            Some(filter) => format!("{filter},server=info"),
            None => "info".to_owned(),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .current_dir(repository_root())
            // The name of the page's files, as cargo-leptos would set it.
            .env("LEPTOS_OUTPUT_NAME", "parley")
            .envs(env.iter().copied())
            // Flags win over the environment, whatever it says.
            .args(["--addr", "127.0.0.1:0", "--log", &log])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(data) = &data {
            command.args(["--database-url", &super::sqlite_url(data)]);
        }
        let mut child = command.spawn().expect("the server binary starts");
        let (addr, metrics_addr) = listening_addr(&mut child).await;
        let mut server = Self {
            addr,
            metrics_addr,
            child,
            _data: data,
        };
        server.wait_healthy().await;
        server
    }

    /// `ws://<addr>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A connected client, past its `welcome`.
    pub async fn client(&self) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(self.ws_url())
            .await
            .expect("WebSocket handshake");
        Client::welcomed(socket).await
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub async fn kill(&mut self) {
        self.child.kill().expect("kill the server");
        assert!(
            wait_for_exit(&mut self.child).await.is_some(),
            "the server dies"
        );
    }

    /// Stops it with SIGTERM (a graceful shutdown) and waits for it to
    /// exit; how it exited.
    pub async fn stop(&mut self) -> ExitStatus {
        terminate(&self.child);
        match wait_for_exit(&mut self.child).await {
            Some(status) => status,
            None => {
                kill_and_reap(&mut self.child);
                panic!("the server did not stop within {WAIT:?} of SIGTERM");
            }
        }
    }

    async fn wait_healthy(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(response) = reqwest::get(self.url("/healthz")).await {
                if response.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the server exited ({status}) before it was healthy");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server was not healthy in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Reads the server's log until it says where it listens (and, before
/// that, where it serves the metrics, if it does); from then on a thread
/// copies the log to the test's stderr (shown when a test fails), which
/// also keeps the pipe from filling up and stalling the server.
async fn listening_addr(child: &mut Child) -> (SocketAddr, Option<SocketAddr>) {
    let stdout = child.stdout.take().expect("a piped stdout");
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut metrics = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            eprintln!("[server] {line}");
            if let Some((_, url)) = line.split_once("metrics on http://") {
                metrics = url.trim().strip_suffix("/metrics").map(str::to_owned);
            }
            if let Some((_, addr)) = line.split_once("listening on http://") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send((addr.trim().to_owned(), metrics.take()));
                }
            }
        }
    });
    match tokio::time::timeout(WAIT, rx).await {
        Ok(Ok((addr, metrics))) => (
            addr.parse().expect("an address in the log"),
            metrics.map(|addr| addr.parse().expect("a metrics address in the log")),
        ),
        _ => {
            kill_and_reap(child);
            panic!("the server did not say where it listens within {WAIT:?}");
        }
    }
}
