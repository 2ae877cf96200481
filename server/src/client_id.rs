//! The id of one connection, known to every layer of the server.

use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one connection for the server's life; never reused. Clients
/// see it as their `id` in `welcome`, `from` in messages and in presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(u64);

/// The process's number in a cluster, in the ids' high bits (0 alone).
static PROCESS: AtomicU64 = AtomicU64::new(0);

/// Bits of an id below the process number: a trillion connections per
/// process, and room above for 8,191 process numbers under 2^53, the
/// largest integer a JavaScript number holds exactly.
const PROCESS_SHIFT: u32 = 40;
const PROCESSES: u64 = (1 << (53 - PROCESS_SHIFT)) - 1;

impl ClientId {
    /// A fresh id, never handed out before in this process, nor (in a
    /// cluster) by another one.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let process = PROCESS.load(Ordering::Relaxed);
        Self(process << PROCESS_SHIFT | NEXT.fetch_add(1, Ordering::Relaxed))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// Takes a process number from the Redis at `url` (a counter every
/// process increments at start) for this process's ids, and returns it. If
/// Redis cannot be reached, a random number: two processes then share one
/// with a chance of 1 in 8,191.
pub async fn join_cluster(url: &str) -> u64 {
    let counted = async {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("INCR")
            .arg("parley:processes")
            .query_async::<u64>(&mut connection)
            .await
    };
    let number = match tokio::time::timeout(std::time::Duration::from_secs(2), counted).await {
        Ok(Ok(count)) => count,
        Ok(Err(error)) => {
            tracing::warn!(%error, "no process number from Redis: taking a random one");
            random()
        }
        Err(_) => {
            tracing::warn!("no process number from Redis in time: taking a random one");
            random()
        }
    };
    let process = number % PROCESSES + 1;
    PROCESS.store(process, Ordering::Relaxed);
    process
}

fn random() -> u64 {
    let mut bytes = [0; 8];
    getrandom::fill(&mut bytes).unwrap_or_default();
    u64::from_le_bytes(bytes)
}

/// An id as a client names it (in `from` or `welcome`).
impl From<u64> for ClientId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}
