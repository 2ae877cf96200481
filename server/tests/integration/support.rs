//! A server on 127.0.0.1 with an ephemeral port, a small JSON client, and
//! helpers for raw TCP clients that send what no library would.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use leptos::config::LeptosOptions;
use serde_json::{json, Value};
use server::{
    config::{ChatConfig, ConnectionConfig, HttpConfig},
    hub::Hub,
    limits::ConnectionLimits,
    store::Store,
    AppState,
};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};
use tokio_tungstenite::{
    tungstenite::client::IntoClientRequest,
    tungstenite::{protocol::CloseFrame, Message},
    MaybeTlsStream, WebSocketStream,
};
use tokio_util::task::TaskTracker;

pub mod cluster;

/// Long enough for a loaded CI machine, short enough to fail fast.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, if the builder asked for it.
    pub metrics_addr: Option<SocketAddr>,
    pub hub: Arc<Hub>,
    /// The server's connection tasks, to check none outlives its client.
    pub tasks: TaskTracker,
    /// Open connections, HTTP and WebSocket alike.
    pub limits: ConnectionLimits,
    /// The server's message store.
    pub store: Store,
    /// Holds the store's file, when the server made its own.
    _data: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

pub fn connection_config() -> ConnectionConfig {
    ConnectionConfig::default()
}

/// A SQLite store in `dir`.
pub fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("parley.db").display())
}

/// Chat settings with a rate limit too high to matter.
pub fn unlimited_chat() -> ChatConfig {
    ChatConfig {
        rate_limit_burst: 1_000_000,
        rate_limit_per_sec: 1_000_000,
        ..ChatConfig::default()
    }
}

/// HTTP settings with request and handshake rates too high to matter: a
/// test's clients all come from one address, far faster than people do.
pub fn unlimited_http() -> HttpConfig {
    HttpConfig {
        request_rate_burst: 1_000_000,
        request_rate_per_sec: 1_000_000,
        handshake_rate_burst: 1_000_000,
        handshake_rate_per_sec: 1_000_000,
        ..HttpConfig::default()
    }
}

/// A server to start, defaults unless told otherwise (but for the request
/// and handshake rates: [`unlimited_http`]).
pub struct Builder {
    connection: ConnectionConfig,
    chat: ChatConfig,
    http: HttpConfig,
    site_root: String,
    database_url: Option<String>,
    metrics: bool,
}

impl Builder {
    pub fn connection(mut self, connection: ConnectionConfig) -> Self {
        self.connection = connection;
        self
    }

    pub fn chat(mut self, chat: ChatConfig) -> Self {
        self.chat = chat;
        self
    }

    pub fn http(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// The store to use; by default a fresh SQLite file of the server's own.
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// Serves `/metrics` on a port of its own, as `--metrics-addr` does
    /// ([`TestServer::metrics_url`]); by default they are not served.
    pub fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// Where static files are served from (`target/site` by default).
    pub fn site_root(mut self, site_root: &str) -> Self {
        self.site_root = site_root.to_owned();
        self
    }

    pub async fn start(self) -> TestServer {
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let options = LeptosOptions::builder()
            .output_name("parley")
            .site_root(self.site_root)
            .site_addr(addr)
            .build();
        let (url, data) = match self.database_url {
            Some(url) => (url, None),
            None => {
                let data = TempDir::new().unwrap();
                let url = sqlite_url(&data);
                (url, Some(data))
            }
        };
        let store = Store::open(&url).await.expect("the test store opens");
        let state = AppState::new(
            options,
            self.connection,
            self.chat,
            self.http,
            store.clone(),
        );
        let hub = Arc::clone(&state.hub);
        let tasks = state.tasks.clone();
        let limits = state.limits.clone();
        let metrics_addr = if self.metrics {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // Stops with the server, as in main.rs.
            tokio::spawn(server::metrics::serve(
                listener,
                state.prometheus.clone(),
                state.shutdown.clone(),
            ));
            Some(addr)
        } else {
            None
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            metrics_addr,
            hub,
            tasks,
            limits,
            store,
            _data: data,
            stop: Some(stop),
            task,
        }
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub async fn start_with(connection: ConnectionConfig) -> Self {
        Self::builder().connection(connection).start().await
    }

    /// A server whose rate limit does not get in the way of tests that send
    /// many messages at once.
    pub async fn start_unlimited() -> Self {
        Self::builder().chat(unlimited_chat()).start().await
    }

    pub async fn start_configured(connection: ConnectionConfig, chat: ChatConfig) -> Self {
        Self::builder()
            .connection(connection)
            .chat(chat)
            .start()
            .await
    }

    pub fn builder() -> Builder {
        Builder {
            connection: connection_config(),
            chat: ChatConfig::default(),
            http: unlimited_http(),
            site_root: "target/site".to_owned(),
            database_url: None,
            metrics: false,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `path` on the metrics' address (see [`Builder::metrics`]).
    pub fn metrics_url(&self, path: &str) -> String {
        let addr = self.metrics_addr.expect("a server built with .metrics()");
        format!("http://{addr}{path}")
    }

    /// A connected client, past its `welcome`.
    pub async fn client(&self) -> Client {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.addr))
            .await
            .expect("WebSocket handshake");
        let client = Client::welcomed(socket).await;
        self.wait_for_clients_at_least(1).await;
        client
    }

    /// A client of `/ws?resume` that sent `resume {token, after}` first,
    /// past its `welcome`, with the `message` frames that came before it.
    pub async fn resume(&self, token: Option<&str>, after: Option<u64>) -> (Client, Vec<Value>) {
        self.resume_in("general", token, after).await
    }

    /// [`resume`](Self::resume) into `room`.
    pub async fn resume_in(
        &self,
        room: &str,
        token: Option<&str>,
        after: Option<u64>,
    ) -> (Client, Vec<Value>) {
        resume_at(self.addr, room, token, after).await
    }

    /// Waits until the hub has exactly `n` clients (joining and leaving
    /// happen on the server's own tasks, a moment after the client acts).
    pub async fn wait_for_clients(&self, n: usize) {
        self.wait_until(|| self.hub.len() == n, &format!("{n} clients"))
            .await;
    }

    async fn wait_for_clients_at_least(&self, n: usize) {
        self.wait_until(|| self.hub.len() >= n, &format!("at least {n} clients"))
            .await;
    }

    /// Waits until exactly `n` connections are open, as the limits count them.
    pub async fn wait_for_connections(&self, n: usize) {
        self.wait_until(|| self.limits.open() == n, &format!("{n} open connections"))
            .await;
    }

    /// Waits until exactly `n` connection tasks are still running.
    pub async fn wait_for_tasks(&self, n: usize) {
        self.wait_until(|| self.tasks.len() == n, &format!("{n} connection tasks"))
            .await;
    }

    async fn wait_until(&self, check: impl Fn() -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; hub has {} clients, {} tasks run, {} connections open",
                self.hub.len(),
                self.tasks.len(),
                self.limits.open()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Triggers a graceful shutdown and waits for `serve` to return.
    pub async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("server stops in time")
            .unwrap()
            .unwrap();
    }
}

/// A client of the server at `addr` that connected to `/ws?resume` and
/// sent `resume {token, after, room}` first, past its `welcome`, with the
/// `message` frames that came before it.
pub async fn resume_at(
    addr: SocketAddr,
    room: &str,
    token: Option<&str>,
    after: Option<u64>,
) -> (Client, Vec<Value>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?resume", addr))
        .await
        .expect("WebSocket handshake");
    let resume =
        json!({"type": "resume", "payload": {"token": token, "after": after, "room": room}});
    socket
        .send(Message::text(resume.to_string()))
        .await
        .expect("send resume");
    let mut client = Client {
        socket,
        id: 0,
        welcome: Value::Null,
    };
    let mut missed = Vec::new();
    loop {
        let frame = client.next_frame().await;
        match frame["type"].as_str() {
            Some("message") => missed.push(frame["payload"].clone()),
            Some("welcome") => {
                client.id = frame["payload"]["id"].as_u64().expect("an id");
                client.welcome = frame;
                return (client, missed);
            }
            _ => panic!("before welcome only missed messages come: {frame}"),
        }
    }
}

pub struct Client {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// This connection's id, from its `welcome`.
    pub id: u64,
    pub welcome: Value,
}

impl Client {
    /// Reads the `welcome` every connection starts with.
    pub async fn welcomed(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        let mut client = Client {
            socket,
            id: 0,
            welcome: Value::Null,
        };
        let welcome = client.next_frame().await;
        assert_eq!(welcome["type"], "welcome", "the first frame: {welcome}");
        client.id = welcome["payload"]["id"].as_u64().expect("an id");
        client.welcome = welcome;
        client
    }

    /// The resume token from this connection's `welcome`.
    pub fn token(&self) -> String {
        self.welcome["payload"]["token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("send a frame");
    }

    pub async fn set_nickname(&mut self, nickname: &str) {
        self.send_json(json!({"type": "nickname", "payload": nickname}))
            .await;
    }

    pub async fn say(&mut self, text: &str) {
        self.send_json(json!({"type": "message", "payload": text}))
            .await;
    }

    /// Sends a message with a `client_id`, which asks for an ack.
    pub async fn say_with_id(&mut self, text: &str, client_id: &str) {
        self.send_json(
            json!({"type": "message", "payload": {"text": text, "client_id": client_id}}),
        )
        .await;
    }

    /// The next frame that is not about presence or the room list (joins
    /// and leaves come and go with other tests' clients). Pings are skipped
    /// too.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame["type"] != "presence" && frame["type"] != "rooms" {
                return frame;
            }
        }
    }

    /// The next frame of type `kind`, skipping any others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_frame().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// The next frame, whatever it is, which must be a JSON text frame.
    /// Pings are skipped.
    pub async fn next_frame(&mut self) -> Value {
        loop {
            match self.next_message().await {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Asserts the next frame is an `error` frame with this code.
    pub async fn expect_error(&mut self, code: &str) {
        let frame = self.next_json().await;
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["payload"]["code"], code, "{frame}");
        let message = frame["payload"]["message"].as_str().expect("a message");
        assert!(!message.is_empty(), "{frame}");
    }

    /// Asserts the next frame is the chat message `nickname: text`, with an
    /// id and a time; returns its payload.
    pub async fn expect_message(&mut self, nickname: &str, text: &str) -> Value {
        let frame = self.next_json().await;
        assert_eq!(frame["type"], "message", "{frame}");
        let payload = frame["payload"].clone();
        assert_eq!(payload["nickname"], nickname, "{frame}");
        assert_eq!(payload["text"], text, "{frame}");
        assert!(payload["id"].as_u64().is_some(), "{frame}");
        assert!(payload["from"].as_u64().is_some(), "{frame}");
        let sent_at = payload["sent_at"].as_str().expect("a time");
        assert!(
            sent_at.len() == 24 && sent_at.ends_with('Z'),
            "RFC 3339 in UTC with milliseconds: {frame}"
        );
        payload
    }

    /// Reads until the server closes, returning its close frame.
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.next_message().await {
                Message::Close(frame) => return frame,
                Message::Ping(_) | Message::Pong(_) | Message::Text(_) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    async fn next_message(&mut self) -> Message {
        self.next_message_within(WAIT).await
    }

    /// The next frame of type `kind` to arrive within `wait` (for what
    /// takes longer than [`WAIT`] by design), skipping any others.
    pub async fn next_of_within(&mut self, kind: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Message::Text(text) = self.next_message_within(left).await {
                let frame: Value = serde_json::from_str(&text).expect("JSON frame");
                if frame["type"] == kind {
                    return frame;
                }
            }
        }
    }

    async fn next_message_within(&mut self, wait: Duration) -> Message {
        tokio::time::timeout(wait, self.socket.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a valid frame")
    }
}

/// A valid WebSocket handshake with the RFC 6455 sample key, and no `Origin`.
pub const HANDSHAKE: &str = "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// [`HANDSHAKE`] with these headers replacing those of the same name, or
/// added.
pub fn handshake_with(headers: &[(&str, &str)]) -> String {
    let mut lines: Vec<String> = HANDSHAKE
        .trim_end()
        .split("\r\n")
        .map(str::to_owned)
        .collect();
    for (name, value) in headers {
        let line = format!("{name}: {value}");
        let prefix = format!("{}:", name.to_ascii_lowercase());
        match lines
            .iter_mut()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        {
            Some(existing) => *existing = line,
            None => lines.push(line),
        }
    }
    lines.join("\r\n") + "\r\n\r\n"
}

/// A TCP connection to `addr` from the local address `from` (any address
/// in 127.0.0.0/8 is this machine).
pub async fn connect_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads a response head, up to and including the blank line.
pub async fn read_head(socket: &mut TcpStream) -> String {
    tokio::time::timeout(WAIT, async {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            socket.read_exact(&mut byte).await.expect("a response head");
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    })
    .await
    .expect("a response head in time")
}

/// The status code of a response head.
pub fn status(head: &str) -> u16 {
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The value of a header in a response head, if present.
pub fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.split("\r\n").find_map(|line| {
        let (n, value) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Sends `request` on a new connection and reads the response's head and
/// its `Content-Length` body.
pub async fn exchange(mut socket: TcpStream, request: &str) -> (String, String) {
    ask(&mut socket, request).await
}

/// Sends `request` on `socket`, kept open, and reads the response's head
/// and its `Content-Length` body.
pub async fn ask(socket: &mut TcpStream, request: &str) -> (String, String) {
    socket.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(socket).await;
    let length = header(&head, "content-length").map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0; length];
    tokio::time::timeout(WAIT, socket.read_exact(&mut body))
        .await
        .expect("a body in time")
        .unwrap();
    (head, String::from_utf8(body).unwrap())
}

/// Someone connecting from `from` to `/ws?resume` (through a proxy that
/// says it forwards `forwarded_for`, if given) and resuming `token`
/// (someone new without one): once welcomed, the socket and the welcome's
/// payload.
pub async fn resume_from(
    from: IpAddr,
    addr: SocketAddr,
    forwarded_for: Option<&str>,
    token: Option<&str>,
) -> (WebSocketStream<TcpStream>, Value) {
    let socket = connect_from(from, addr).await;
    let mut request = format!("ws://{addr}/ws?resume")
        .into_client_request()
        .unwrap();
    if let Some(client) = forwarded_for {
        request
            .headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::client_async(request, socket)
        .await
        .expect("WebSocket handshake");
    let resume = json!({"type": "resume", "payload": {"token": token, "after": null}});
    ws.send(Message::text(resume.to_string())).await.unwrap();
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a valid frame");
        let Ok(frame) = serde_json::from_str::<Value>(frame.to_text().unwrap_or_default()) else {
            continue;
        };
        if frame["type"] == "welcome" {
            return (ws, frame["payload"].clone());
        }
    }
}

/// A fresh, empty database of each kind, dropped with the guard.
pub enum Database {
    Sqlite(TempDir),
    Postgres { url: String },
}

impl Database {
    pub fn sqlite() -> Self {
        Self::Sqlite(TempDir::new().unwrap())
    }

    /// A new database on the test PostgreSQL server; `None` where none is
    /// configured (never in CI, where that is a failure).
    pub async fn postgres() -> Option<Self> {
        let Ok(admin) = std::env::var("PARLEY_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PARLEY_TEST_POSTGRES_URL must be set in CI (scripts/with-postgres.sh)"
            );
            eprintln!("PostgreSQL not configured (PARLEY_TEST_POSTGRES_URL): skipped");
            return None;
        };
        let name = format!("parley_it_{}_{}", std::process::id(), rand_suffix());
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("the admin database");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .expect("a fresh database");
        pool.close().await;
        let (base, _) = admin.rsplit_once('/').expect("a URL with a database name");
        Some(Self::Postgres {
            url: format!("{base}/{name}"),
        })
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => sqlite_url(dir),
            Self::Postgres { url } => url.clone(),
        }
    }
}

/// Distinct enough for databases made by one test process.
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs `$body` (an async fn taking the database URL) on both stores.
macro_rules! on_both_stores {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let database = $crate::support::Database::sqlite();
                super::$body(database.url()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if let Some(database) = $crate::support::Database::postgres().await {
                    super::$body(database.url()).await;
                }
            }
        }
    };
}
pub(crate) use on_both_stores;
