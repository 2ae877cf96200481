//! Opening thousands of client connections quickly, within the limits of one
//! process and one machine.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::Semaphore,
    task::JoinSet,
    time::Instant,
};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{protocol::WebSocketConfig, Message},
    WebSocketStream,
};

use crate::{
    config::CommonArgs,
    layout::Layout,
    protocol::{ClientFrame, ServerFrame, MAX_FRAME_BYTES},
};

/// One client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// The pause after connecting before anything is measured or sent. A
/// client's handshake completes a moment before the server has registered it
/// for broadcasts, and the server's memory takes a moment to settle.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Open files kept for everything that is not a client connection: the
/// runtime, stdio, `/proc` reads, the JSON report.
const SPARE_FILES: u64 = 64;

/// Every client connection, in client order, and how long opening them took.
pub struct Connected {
    pub sockets: Vec<Ws>,
    pub elapsed: Duration,
}

/// Opens `clients` connections, at most `--connect-concurrency` at a time,
/// each to the server and in the room `layout` gives it, and sets client
/// `i`'s nickname to `c<i>`. Any failure fails the run: a benchmark with
/// fewer clients than asked for would measure something else.
///
/// A client with a room connects to `<path>?resume`, sends `resume` naming
/// its room first, and waits for the `welcome` that puts it there.
///
/// The connections are not read until all are open, so the whole connect
/// phase must stay well under the server's ping timeout (60 s for Parley).
pub async fn connect_all(common: &CommonArgs, clients: usize, layout: Layout) -> Result<Connected> {
    let files = raise_open_file_limit().context("raising the open-file limit")?;
    ensure!(
        clients as u64 + SPARE_FILES <= files,
        "{clients} connections need more open files than this process may have ({files}); \
         run several loadgen processes or raise the hard limit (ulimit -Hn)"
    );
    ensure!(!common.addr.is_empty(), "no server address (--addr)");
    let sources = source_addrs(&common.addr, common.source_addr_count(clients))?;
    let query = if layout.has_rooms() { "?resume" } else { "" };
    let urls: Vec<Arc<str>> = common
        .addr
        .iter()
        .map(|addr| format!("ws://{addr}{}{query}", common.path).into())
        .collect();
    let permits = Arc::new(Semaphore::new(common.connect_concurrency));
    tracing::info!(
        clients,
        urls = ?urls,
        rooms = layout.room_count(),
        sources = sources.len().max(1),
        "connecting"
    );

    let started = Instant::now();
    let mut pending = JoinSet::new();
    for index in 0..clients {
        let source = (!sources.is_empty()).then(|| sources[index % sources.len()]);
        let server = layout.server_of(index);
        let (url, permits, target, limit) = (
            Arc::clone(&urls[server]),
            Arc::clone(&permits),
            common.addr[server],
            common.connect_timeout,
        );
        let room = layout.room_name(layout.room_of(index));
        pending.spawn(async move {
            let _permit = permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let connected = tokio::time::timeout(
                limit,
                connect_one(index, target, &url, source, room.as_deref()),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow!("timed out after {limit:?}")))
            .with_context(|| match source {
                Some(source) => format!("connecting client {index} to {target} from {source}"),
                None => format!("connecting client {index} to {target}"),
            });
            (index, connected)
        });
    }

    let mut sockets: Vec<Option<Ws>> = std::iter::repeat_with(|| None).take(clients).collect();
    while let Some(joined) = pending.join_next().await {
        let (index, connected) = joined.context("a connect task panicked")?;
        sockets[index] = Some(connected?);
    }
    let elapsed = started.elapsed();
    tracing::info!(clients, secs = elapsed.as_secs_f64(), "connected");
    Ok(Connected {
        sockets: sockets
            .into_iter()
            .map(|ws| ws.expect("every client joined"))
            .collect(),
        elapsed,
    })
}

async fn connect_one(
    index: usize,
    target: SocketAddr,
    url: &str,
    source: Option<IpAddr>,
    room: Option<&str>,
) -> Result<Ws> {
    let stream = match source {
        Some(source) => {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            socket.connect(target).await?
        }
        None => TcpStream::connect(target).await?,
    };
    // Every frame is one small message that should leave at once.
    stream.set_nodelay(true)?;
    let (mut ws, _) = client_async_with_config(url, stream, Some(client_config())).await?;
    if let Some(room) = room {
        let resume = ClientFrame::Resume {
            token: None,
            after: None,
            room: Some(room),
        };
        ws.send(Message::text(resume.encode())).await?;
        await_welcome(&mut ws, room).await?;
    }
    let nickname = format!("c{index}");
    ws.send(Message::text(ClientFrame::Nickname(&nickname).encode()))
        .await?;
    Ok(ws)
}

/// Reads until the server's `welcome`, which must name `room`.
async fn await_welcome(ws: &mut Ws, room: &str) -> Result<()> {
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        match ServerFrame::decode(&text) {
            Ok(ServerFrame::Welcome {
                room: Some(welcomed),
            }) if welcomed == room => {
                return Ok(());
            }
            Ok(ServerFrame::Welcome { room: welcomed }) => {
                bail!("asked for room {room:?}, welcomed into {welcomed:?}")
            }
            Ok(ServerFrame::Error { code, .. }) => bail!("joining room {room:?}: error {code}"),
            _ => {}
        }
    }
    bail!("the server closed the connection before its welcome")
}

/// Small buffers: tungstenite's defaults (128 KiB each way) would cost the
/// generator gigabytes at 10,000 connections, for frames of a few hundred
/// bytes.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// `count` loopback addresses to bind client sockets to, or none (let the
/// kernel choose) for a single one. Each local address has its own set of
/// ephemeral ports, so more addresses allow more connections to one server.
fn source_addrs(targets: &[SocketAddr], count: usize) -> Result<Vec<IpAddr>> {
    if count <= 1 {
        return Ok(Vec::new());
    }
    for target in targets {
        ensure!(
            matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback()),
            "spreading connections over {count} source addresses needs 127.x.x.x server \
             addresses, not {}",
            target.ip()
        );
    }
    let count = u8::try_from(count)
        .ok()
        .filter(|&count| count < u8::MAX)
        .with_context(|| format!("{count} source addresses: at most 254 are available"))?;
    Ok((1..=count)
        .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .collect())
}

/// Raises this process's soft limit on open files to its hard limit, and
/// returns the new limit: every connection is an open file, and the usual
/// soft limit of 1,024 is far too low.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_address_is_left_to_the_kernel() {
        let target: SocketAddr = "10.1.2.3:3000".parse().unwrap();
        assert!(source_addrs(&[target], 1).unwrap().is_empty());
    }

    #[test]
    fn several_source_addresses_are_consecutive_loopback_ones() {
        let target: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let sources = source_addrs(&[target], 3).unwrap();
        let expected: Vec<IpAddr> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        assert_eq!(sources, expected);
        assert!(source_addrs(&[target], 255).is_err());
        assert!(source_addrs(&["10.1.2.3:3000".parse().unwrap()], 2).is_err());
        assert!(source_addrs(&[target, "10.1.2.3:3000".parse().unwrap()], 2).is_err());
    }

    #[test]
    fn the_open_file_limit_only_goes_up() {
        let raised = raise_open_file_limit().unwrap();
        assert_eq!(raise_open_file_limit().unwrap(), raised);
    }
}
