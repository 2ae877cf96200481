//! Starting and stopping the two servers as child processes: a fresh one
//! for every run, on a free loopback port, so its memory figures start
//! clean.

use std::{
    fs::{self, File},
    io::{Read, Seek, SeekFrom},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// How long a server may take to accept TCP connections after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A pause once the port is open, so the "before" memory sample is not
/// taken while the server is still starting up (Node especially).
const AFTER_READY: Duration = Duration::from_millis(300);

/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often to check on a starting or stopping server.
const POLL: Duration = Duration::from_millis(50);

/// The end of a server's log quoted in an error.
const LOG_TAIL_BYTES: u64 = 2_000;

pub const PARLEY_BINARY: &str = "target/release/server";
/// Parley's flags besides `--addr`: quiet logs, and connection caps and
/// request and handshake rates out of the way, since every load-generator
/// client comes from one address (past the default 256 per address, and
/// connecting far faster than 5 a second) and the Node peer has no caps at
/// all.
pub const PARLEY_ARGS: [&str; 18] = [
    "--log",
    "warn",
    "--max-connections",
    "1000000",
    "--max-connections-per-ip",
    "1000000",
    "--rate-limit-burst",
    "1000000",
    "--rate-limit-per-sec",
    "1000000",
    "--request-rate-burst",
    "1000000",
    "--request-rate-per-sec",
    "1000000",
    "--handshake-rate-burst",
    "1000000",
    "--handshake-rate-per-sec",
    "1000000",
];
pub const NODE_DIR: &str = "bench/peers/node-ws";
pub const NODE_SCRIPT: &str = "bench/peers/node-ws/server.js";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    Parley,
    Node,
}

/// Both servers, in the order their runs alternate.
pub const BOTH: [ServerKind; 2] = [ServerKind::Parley, ServerKind::Node];

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Parley => "Parley",
            Self::Node => "Node",
        }
    }

    fn command(self, repo: &Path, addr: SocketAddr, store: Option<&Path>) -> Command {
        let mut command = match self {
            Self::Parley => {
                let mut command = Command::new(repo.join(PARLEY_BINARY));
                command
                    .args(["--addr", &addr.to_string()])
                    .args(PARLEY_ARGS);
                if let Some(store) = store {
                    command.arg("--database-url").arg(sqlite_url(store));
                }
                command
            }
            Self::Node => {
                let mut command = Command::new("node");
                command
                    .arg(NODE_SCRIPT)
                    .env("PORT", addr.port().to_string());
                command
            }
        };
        command.current_dir(repo);
        command
    }
}

/// Starts servers from one repository, logging each to a file that the next
/// start of the same kind overwrites.
pub struct Launcher {
    repo: PathBuf,
    log_dir: PathBuf,
}

impl Launcher {
    pub fn new(repo: &Path) -> Result<Self> {
        let log_dir = std::env::temp_dir().join(format!("parley-compare-{}", std::process::id()));
        fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
        Ok(Self {
            repo: repo.to_owned(),
            log_dir,
        })
    }

    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Where server logs (and other files of this run) go; removed by
    /// [`clean_up`](Self::clean_up).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Checks that both servers can be started: Parley's binary exists,
    /// `node` runs, and the Node peer's packages are installed (`npm ci`
    /// if they are not).
    pub fn preflight(&self) -> Result<()> {
        let binary = self.repo.join(PARLEY_BINARY);
        if !binary.is_file() {
            bail!(
                "{} does not exist: build it with `cargo leptos build --release`, or pass \
                 --repo with the repository root",
                binary.display()
            );
        }
        let node = Command::new("node")
            .arg("--version")
            .output()
            .context("running `node --version`: is Node installed?")?;
        if !node.status.success() {
            bail!("`node --version` failed: {}", node.status);
        }
        let node_dir = self.repo.join(NODE_DIR);
        if !node_dir.join("node_modules").is_dir() {
            eprintln!("compare: installing the Node peer's packages (npm ci)");
            let mut npm = Command::new("npm")
                .arg("ci")
                .current_dir(&node_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .with_context(|| format!("running `npm ci` in {}", node_dir.display()))?;
            match wait_with_timeout(&mut npm, Duration::from_secs(300))? {
                Some(status) if status.success() => {}
                Some(status) => bail!("`npm ci` in {} failed: {status}", node_dir.display()),
                None => {
                    let _ = npm.kill();
                    let _ = npm.wait();
                    bail!("`npm ci` in {} took over 300 s", node_dir.display());
                }
            }
        }
        Ok(())
    }

    /// Starts a fresh server on a free port and waits until it accepts TCP
    /// connections.
    pub async fn start(&self, kind: ServerKind) -> Result<Server> {
        self.start_with_store(kind, None).await
    }

    /// [`start`](Self::start), Parley with a new, empty SQLite store of its
    /// own in the log directory (the Node peer stores nothing): for runs
    /// whose page shows the stored history.
    pub async fn start_fresh(&self, kind: ServerKind, run: usize) -> Result<Server> {
        let store = self
            .log_dir
            .join(format!("{}-{run}.db", kind.name().to_lowercase()));
        for suffix in ["", "-wal", "-shm"] {
            let mut path = store.clone().into_os_string();
            path.push(suffix);
            let _ = fs::remove_file(path);
        }
        self.start_with_store(kind, Some(&store)).await
    }

    async fn start_with_store(&self, kind: ServerKind, store: Option<&Path>) -> Result<Server> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_path = self
            .log_dir
            .join(format!("{}.log", kind.name().to_lowercase()));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = kind.command(&self.repo, addr, store);
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches nothing of ours. It
        // makes the server die with the thread that started it (a runtime
        // worker, which lives as long as this process), so an interrupted
        // compare leaves no server behind.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}: {command:?}", kind.name()))?;
        let mut server = Server {
            kind,
            child: Some(child),
            addr,
            log_path,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Removes the server logs.
    pub fn clean_up(&self) {
        let _ = fs::remove_dir_all(&self.log_dir);
    }
}

/// A running server; killed when dropped unless stopped first.
pub struct Server {
    kind: ServerKind,
    child: Option<Child>,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        let child = self.child.as_mut().expect("a started server has a child");
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited at start ({status}){}",
                    self.kind.name(),
                    log_tail(&self.log_path)
                );
            }
            let addr = self.addr;
            let connected = tokio::task::spawn_blocking(move || {
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            })
            .await
            .unwrap_or(false);
            if connected {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} did not accept connections on {} within {READY_TIMEOUT:?}{}",
                    self.kind.name(),
                    self.addr,
                    log_tail(&self.log_path)
                );
            }
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(AFTER_READY).await;
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited after [`STOP_TIMEOUT`].
    /// An `Err` says the server had already exited by itself (it crashed
    /// during the run) or would not stop.
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let name = self.kind.name();
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} had exited during the run ({status}){}",
                log_tail(&self.log_path)
            );
        }
        let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
        // SAFETY: kill only sends a signal; the child has not been reaped,
        // so the pid is still ours.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let started = Instant::now();
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{name} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `--database-url` of a SQLite file: `sqlite:///abs/path.db`.
fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() > limit {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last lines of a server's log, for an error message.
pub fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map_or(0, |meta| meta.len());
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).trim().to_owned();
    }
    if text.is_empty() {
        String::new()
    } else {
        format!("; its log ends with:\n{text}")
    }
}
