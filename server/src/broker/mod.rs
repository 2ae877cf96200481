//! The broker: how what one server process stores reaches the clients of
//! every process.
//!
//! - [`Broker::Local`] (the default): one process; the hub relays each
//!   message as its commit returns.
//! - [`Broker::Redis`] ([`redis`]): any number of processes sharing one
//!   PostgreSQL store. After each commit a process publishes the messages
//!   on Redis; every process, itself included, hands what it receives to
//!   its `sequencer`, which relays messages in id order, each once, and
//!   reads whatever it did not receive from the store. It never skips an
//!   id the store has (a failed read is retried), and trusts an id from
//!   Redis only as far as the store vouches for it.
//!
//! The broker also carries presence between processes (see
//! [`cluster`](crate::cluster)). It knows nothing of rooms or clients: it
//! hands everything to a [`Sink`] (the hub).

pub mod redis;
mod sequencer;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{cluster::NodeId, store::StoredMessage};

pub use self::redis::RedisBroker;

/// Where the broker delivers.
pub trait Sink: Send + Sync + 'static {
    /// A stored message, in id order, each once.
    fn relay(&self, message: &StoredMessage);
    /// Presence from another process.
    fn signal(&self, signal: Signal);
    /// What this process has in each of its rooms, to announce when it
    /// (re)joins the others.
    fn occupancy(&self) -> Vec<Signal>;
    /// Time to forget the processes that fell silent.
    fn expire(&self);
}

/// Presence between processes, on the `parley:presence` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// A process (re)joined: everyone announces their rooms to it.
    Hello { node: NodeId },
    /// A process is alive.
    Beat { node: NodeId },
    /// Everyone `node` has in `room` (`people` empty if the room is too big
    /// to list), replacing what it announced before.
    Room {
        node: NodeId,
        room: String,
        online: u64,
        people: Vec<(u64, String)>,
    },
}

impl Signal {
    pub fn node(&self) -> NodeId {
        match self {
            Signal::Hello { node } | Signal::Beat { node } | Signal::Room { node, .. } => *node,
        }
    }

    /// About the bytes it holds: its strings, and a word per person.
    pub fn weight(&self) -> usize {
        match self {
            Signal::Hello { .. } | Signal::Beat { .. } => 0,
            Signal::Room { room, people, .. } => {
                room.len()
                    + people
                        .iter()
                        .map(|(_, nickname)| 8 + nickname.len())
                        .sum::<usize>()
            }
        }
    }
}

/// How the hub shares what it stores.
#[derive(Clone, Default)]
pub enum Broker {
    /// One process: nothing to share.
    #[default]
    Local,
    Redis(Arc<RedisBroker>),
}

impl Broker {
    pub fn is_local(&self) -> bool {
        matches!(self, Broker::Local)
    }

    /// Whether the broker reaches the other processes now.
    pub fn healthy(&self) -> bool {
        match self {
            Broker::Local => true,
            Broker::Redis(redis) => redis.healthy(),
        }
    }

    /// Shares a message just stored; returns at once.
    pub fn publish(&self, message: StoredMessage) {
        if let Broker::Redis(redis) = self {
            redis.publish(message);
        }
    }

    /// Tells the other processes about this one's people in a room.
    pub fn announce(&self, signal: Signal) {
        if let Broker::Redis(redis) = self {
            redis.announce(signal);
        }
    }

    /// This process, as the others know it (0 when alone).
    pub fn node(&self) -> NodeId {
        match self {
            Broker::Local => 0,
            Broker::Redis(redis) => redis.node(),
        }
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broker::Local => f.write_str("Local"),
            Broker::Redis(redis) => write!(f, "Redis(node {})", redis.node()),
        }
    }
}
