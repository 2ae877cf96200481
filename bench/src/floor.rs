//! The scenarios without a server: what this machine's kernel alone costs.
//!
//! Writer threads write 100 bytes to the server ends of N loopback TCP
//! connections, one plain `write` each: no WebSocket framing, no lock, no
//! bookkeeping, what an ideal server would do. Tokio tasks read the client
//! ends, as `loadgen` does. A server cannot beat these numbers on the same
//! machine, so they tell a slow kernel apart from a slow server.
//!
//! - [`storm`]: one message to every connection; time until the last has it.
//! - [`fanout`]: messages at a steady rate, each to every connection, every
//!   writer thread writing its share of each; latency from the scheduled time.

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};
use tokio::{io::AsyncReadExt, net::TcpSocket, sync::mpsc};

/// The bytes each socket gets per message: about a chat frame's size.
const MESSAGE_BYTES: usize = 100;

type Message = [u8; MESSAGE_BYTES];

/// Connections per source address, below the ephemeral port range's size.
const PER_SOURCE_ADDR: usize = 20_000;

#[derive(Debug, Clone, clap::Parser)]
#[command(about = "What the kernel alone costs: the benchmark scenarios with an ideal server")]
pub struct FloorCli {
    #[command(subcommand)]
    pub mode: FloorMode,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum FloorMode {
    /// One message to every connection, a few times.
    Storm(StormArgs),
    /// Messages at a steady rate, each to every connection.
    Fanout(FanoutArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct StormArgs {
    /// Connections. Both ends live in this process: it needs two open files
    /// per connection.
    #[arg(long, default_value_t = 9_000)]
    pub connections: usize,

    /// Threads writing, each to its share of the sockets.
    #[arg(long, default_value_t = 2)]
    pub writers: usize,

    /// Rounds, 300 ms apart.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Connections, every one receiving every message.
    #[arg(long, default_value_t = 999)]
    pub connections: usize,

    /// Threads writing, each its share of the sockets for every message.
    #[arg(long, default_value_t = 2)]
    pub writers: usize,

    /// Messages per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,

    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,

    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

/// One storm round: how long the writes took, and until the last socket
/// had its message.
#[derive(Debug, Clone, Copy)]
pub struct StormRound {
    pub written: Duration,
    pub last_received: Duration,
}

/// Latency of every measured delivery, sorted, and how many were expected.
#[derive(Debug, Clone)]
pub struct FanoutResult {
    pub latencies: Vec<Duration>,
    pub expected: usize,
}

impl FanoutResult {
    /// The `q` quantile (0 to 1) of the latencies.
    pub fn quantile(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        // Rounding a quantile to an index: the loss of precision is intended.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let index = ((last as f64) * q).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

pub async fn storm(args: &StormArgs) -> Result<Vec<StormRound>> {
    ensure!(
        args.connections > 0 && args.writers > 0,
        "nothing to measure"
    );
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let ends = connect_all(args.connections, |mut client| {
        let arrived = arrived.clone();
        async move {
            let mut message = [0; MESSAGE_BYTES];
            while client.read_exact(&mut message).await.is_ok() {
                if arrived.send(Instant::now()).is_err() {
                    return;
                }
            }
        }
    })
    .await?;

    let mut rounds = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let start = Instant::now();
        write_in_parallel(&ends, args.writers, &[b'x'; MESSAGE_BYTES])?;
        let written = start.elapsed();
        let mut last = start;
        for _ in 0..args.connections {
            last = arrivals.recv().await.context("a reader stopped")?;
        }
        rounds.push(StormRound {
            written,
            last_received: last - start,
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(rounds)
}

pub async fn fanout(args: &FanoutArgs) -> Result<FanoutResult> {
    ensure!(
        args.connections > 0 && args.writers > 0 && args.rate > 0.0,
        "nothing to measure"
    );
    let clock = Instant::now();
    // Messages numbered below this are warm-up.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let first_measured = (args.warmup * args.rate) as u64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = first_measured + (args.duration * args.rate) as u64;
    let (done, mut results) = mpsc::unbounded_channel::<Vec<Duration>>();
    let ends = connect_all(args.connections, |mut client| {
        let done = done.clone();
        async move {
            let mut latencies = Vec::new();
            let mut message = [0; MESSAGE_BYTES];
            while client.read_exact(&mut message).await.is_ok() {
                let received = clock.elapsed();
                let (seq, scheduled) = decode(&message);
                if seq >= first_measured {
                    latencies.push(received.saturating_sub(scheduled));
                }
            }
            let _ = done.send(latencies);
        }
    })
    .await?;
    drop(done);

    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = clock.elapsed() + Duration::from_millis(100);
    let ends = Arc::new(ends);
    let writers: Vec<_> = (0..args.writers)
        .map(|writer| {
            let ends = Arc::clone(&ends);
            let share = share(ends.len(), args.writers, writer);
            std::thread::spawn(move || -> std::io::Result<()> {
                for seq in 0..total {
                    #[allow(clippy::cast_possible_truncation)]
                    let scheduled = start + interval * seq as u32;
                    std::thread::sleep(scheduled.saturating_sub(clock.elapsed()));
                    let message = encode(seq, scheduled);
                    for mut socket in &ends[share.clone()] {
                        socket.write_all(&message)?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("a writer thread panicked")?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Closing the server ends stops the readers, which then report.
    drop(ends);
    let mut latencies = Vec::new();
    while let Some(part) = results.recv().await {
        latencies.extend(part);
    }
    latencies.sort_unstable();
    #[allow(clippy::cast_possible_truncation)]
    let expected = (total - first_measured) as usize * args.connections;
    Ok(FanoutResult {
        latencies,
        expected,
    })
}

/// Opens `n` loopback connections, spawns `read` on each client end, and
/// returns the server ends.
async fn connect_all<F, Fut>(n: usize, read: F) -> Result<Vec<std::net::TcpStream>>
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding")?;
    let addr = listener.local_addr()?;
    let mut server_ends = Vec::with_capacity(n);
    for i in 0..n {
        let host = u8::try_from(1 + i / PER_SOURCE_ADDR).context("too many connections")?;
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)),
            0,
        ))?;
        let client = socket.connect(addr).await.context("connecting")?;
        let (server_end, _) = listener.accept().context("accepting")?;
        server_end.set_nodelay(true)?;
        server_ends.push(server_end);
        tokio::spawn(read(client));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(server_ends)
}

/// Writes one message to every socket, `writers` threads each taking a share.
fn write_in_parallel(
    ends: &[std::net::TcpStream],
    writers: usize,
    message: &Message,
) -> std::io::Result<()> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..writers)
            .map(|writer| {
                scope.spawn(move || -> std::io::Result<()> {
                    for mut socket in &ends[share(ends.len(), writers, writer)] {
                        socket.write_all(message)?;
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|thread| thread.join().expect("a writer thread panicked"))
    })
}

/// The range of `len` sockets that writer `writer` of `writers` writes to.
fn share(len: usize, writers: usize, writer: usize) -> std::ops::Range<usize> {
    let size = len.div_ceil(writers);
    (writer * size).min(len)..((writer + 1) * size).min(len)
}

fn encode(seq: u64, scheduled: Duration) -> Message {
    let mut message = [b'x'; MESSAGE_BYTES];
    message[..8].copy_from_slice(&seq.to_le_bytes());
    #[allow(clippy::cast_possible_truncation)]
    let nanos = scheduled.as_nanos() as u64;
    message[8..16].copy_from_slice(&nanos.to_le_bytes());
    message
}

fn decode(message: &Message) -> (u64, Duration) {
    let seq = u64::from_le_bytes(message[..8].try_into().expect("8 bytes"));
    let nanos = u64::from_le_bytes(message[8..16].try_into().expect("8 bytes"));
    (seq, Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_socket_once() {
        for (len, writers) in [(10, 3), (9, 3), (1, 2), (0, 2)] {
            let covered: Vec<usize> = (0..writers).flat_map(|w| share(len, writers, w)).collect();
            assert_eq!(
                covered,
                (0..len).collect::<Vec<_>>(),
                "{len} over {writers}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_socket_gets_every_storm_round() {
        let args = StormArgs {
            connections: 50,
            writers: 2,
            rounds: 2,
        };
        // A round only ends once every socket has had its message.
        let rounds = tokio::time::timeout(Duration::from_secs(10), storm(&args))
            .await
            .expect("every message arrives")
            .unwrap();
        assert_eq!(rounds.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fanout_measures_every_delivery_after_the_warmup() {
        let args = FanoutArgs {
            connections: 20,
            writers: 2,
            rate: 50.0,
            warmup: 0.2,
            duration: 0.4,
        };
        let result = tokio::time::timeout(Duration::from_secs(10), fanout(&args))
            .await
            .expect("done in time")
            .unwrap();
        assert_eq!(result.expected, 20 * 20);
        assert_eq!(result.latencies.len(), result.expected);
        assert!(result.quantile(0.5) <= result.quantile(0.99));
    }
}
