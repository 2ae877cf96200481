//! The Redis broker: pub/sub between server processes.
//!
//! Two channels: `parley:messages` carries each process's newly stored
//! messages, `parley:presence` its [`Signal`]s, both as JSON arrays: one
//! PUBLISH carries whatever queued while the previous one was out, so a
//! burst (a thousand rooms announced at once) costs a few round trips, not
//! one each. Pub/sub, not
//! streams: the store is already the durable, ordered log (every process
//! can read any message back by id), so Redis only has to say "there is
//! something new" fast; what it drops while a process is away is read
//! from the store by the `Sequencer`.
//!
//! Three tasks: one publishes (batching whatever queued meanwhile into
//! one PUBLISH), one subscribes, one beats and expires silent processes.
//! Each reconnects on its own with exponential backoff, and the broker is
//! unhealthy (`/healthz` says degraded) while either connection is down.
//! Nothing waits for Redis: a message that cannot be published is still
//! stored, and every process reads it from the store.
//!
//! Nothing from Redis is taken on trust: a publication that is not what its
//! channel carries is dropped (a warning, `parley_broker_rejected_total`),
//! and the sequencer moves on an id only as far as the store vouches for
//! it, which is why [`RedisBroker::publish`] notes the ids this process
//! stored.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::{mpsc, watch};

use super::{
    sequencer::{Sequencer, FAST_POLL, SLOW_POLL},
    Signal, Sink,
};
use crate::{
    byte_budget::{ByteBudget, Reserved},
    cluster::NodeId,
    store::{Store, StoreError, StoredMessage},
};

const MESSAGES: &str = "parley:messages";
const PRESENCE: &str = "parley:presence";

/// How often a process says it is alive.
pub const BEAT: Duration = Duration::from_secs(1);
/// How long a silent process stays listed.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two attempts to reach Redis.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest a PUBLISH may take before Redis counts as gone.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages and signals waiting to be published; past this they are
/// dropped (the store still has the messages).
const OUTBOX: usize = 16_384;

/// Bytes what waits to be published may hold (a message's strings, or a
/// signal, and `OUTGOING_OVERHEAD` each): past it, new publications are
/// dropped as when the outbox is full (the store keeps every message).
pub const OUTBOX_BYTES: usize = 16 << 20;

/// What a waiting publication holds beside its strings.
const OUTGOING_OVERHEAD: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct RedisBroker {
    node: NodeId,
    outbox: mpsc::Sender<(Outgoing, Reserved)>,
    /// What waits in the outbox may hold: [`OUTBOX_BYTES`].
    outbox_bytes: ByteBudget,
    subscribed: AtomicBool,
    publishing: AtomicBool,
    /// How often the sequencer polls the store.
    poll: watch::Sender<Duration>,
    /// The newest id this process stored: the sequencer relays a message
    /// from Redis up to it without asking the store.
    stored: Arc<AtomicU64>,
}

enum Outgoing {
    Message(StoredMessage),
    Signal(Signal),
}

impl RedisBroker {
    /// Starts sharing through the Redis at `url`, relaying into `sink` from
    /// the store's newest message on. Returns at once: a Redis that cannot
    /// be reached yet is retried in the background.
    pub async fn start(
        url: &str,
        node: NodeId,
        store: Store,
        sink: Weak<dyn Sink>,
    ) -> Result<Arc<Self>, BrokerError> {
        let client =
            redis::Client::open(url).map_err(|error| BrokerError::InvalidUrl(error.to_string()))?;
        let last = store.newest_id().await?;
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let (poll, polling) = watch::channel(FAST_POLL);
        let (received_tx, received) = mpsc::channel(1024);
        let stored = Arc::new(AtomicU64::new(last));
        let broker = Arc::new(Self {
            node,
            outbox,
            outbox_bytes: ByteBudget::new(OUTBOX_BYTES),
            subscribed: AtomicBool::new(false),
            publishing: AtomicBool::new(false),
            poll,
            stored: stored.clone(),
        });
        let sequencer = Sequencer::new(last, store, sink.clone(), stored);
        tokio::spawn(sequencer.run(received, polling));
        tokio::spawn(publish(Arc::downgrade(&broker), client.clone(), queued));
        tokio::spawn(subscribe(
            Arc::downgrade(&broker),
            client,
            received_tx,
            sink.clone(),
        ));
        tokio::spawn(beat(Arc::downgrade(&broker), sink));
        Ok(broker)
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn healthy(&self) -> bool {
        self.subscribed.load(Ordering::Acquire) && self.publishing.load(Ordering::Acquire)
    }

    /// Shares a message this process just stored (its commit returned).
    pub fn publish(&self, message: StoredMessage) {
        self.stored.fetch_max(message.id, Ordering::Release);
        let bytes = message.text.len()
            + message.nickname.len()
            + message.room.len()
            + message.sent_at.len()
            + message.client_key.as_ref().map_or(0, String::len);
        self.send(Outgoing::Message(message), bytes);
    }

    pub fn announce(&self, signal: Signal) {
        let bytes = signal.weight();
        self.send(Outgoing::Signal(signal), bytes);
    }

    fn send(&self, outgoing: Outgoing, bytes: usize) {
        let Some(reserved) = self.outbox_bytes.try_reserve(OUTGOING_OVERHEAD + bytes) else {
            tracing::debug!("broker outbox over its bytes: dropped (the store keeps messages)");
            return;
        };
        if self.outbox.try_send((outgoing, reserved)).is_err() {
            tracing::debug!("broker outbox full: dropped (the store keeps messages)");
        }
    }

    /// Records whether a connection works, and polls the store fast while
    /// one does not.
    fn set(&self, flag: &AtomicBool, up: bool) {
        let was = flag.swap(up, Ordering::AcqRel);
        if was != up {
            if up {
                tracing::info!(node = self.node, "Redis reached");
            } else {
                tracing::warn!(
                    node = self.node,
                    "Redis unreachable: relaying from the store"
                );
            }
        }
        let every = if self.healthy() { SLOW_POLL } else { FAST_POLL };
        self.poll.send_replace(every);
        metrics::gauge!("parley_broker_up").set(if self.healthy() { 1.0 } else { 0.0 });
    }
}

/// Runs `connect` until it succeeds, backing off between attempts, with
/// the broker's `flag` down meanwhile and up once connected; `None` once
/// the broker is gone.
async fn reach<T, Fut>(
    broker: &Weak<RedisBroker>,
    flag: fn(&RedisBroker) -> &AtomicBool,
    what: &str,
    mut connect: impl FnMut() -> Fut,
) -> Option<T>
where
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    let mut attempt = 0;
    loop {
        let result = connect().await;
        let broker = broker.upgrade()?;
        match result {
            Ok(connected) => {
                broker.set(flag(&broker), true);
                return Some(connected);
            }
            Err(error) => {
                tracing::debug!(%error, "cannot {what} on Redis");
                broker.set(flag(&broker), false);
                drop(broker);
                back_off(&mut attempt).await;
            }
        }
    }
}

/// Waits before the next attempt: 100 ms, doubling up to [`MAX_BACKOFF`].
async fn back_off(attempt: &mut u32) {
    let wait = Duration::from_millis(100)
        .saturating_mul(1 << (*attempt).min(6))
        .min(MAX_BACKOFF);
    *attempt += 1;
    tokio::time::sleep(wait).await;
}

async fn publish(
    broker: Weak<RedisBroker>,
    client: redis::Client,
    mut queued: mpsc::Receiver<(Outgoing, Reserved)>,
) {
    let mut batch = Vec::new();
    loop {
        let connect = || client.get_multiplexed_async_connection();
        let Some(mut connection) = reach(&broker, |b| &b.publishing, "publish", connect).await
        else {
            return;
        };
        loop {
            if queued.recv_many(&mut batch, 1024).await == 0 {
                return;
            }
            let mut messages = Vec::new();
            let mut signals = Vec::new();
            // The bytes go back as the batch goes out.
            for (outgoing, _reserved) in batch.drain(..) {
                match outgoing {
                    Outgoing::Message(message) => messages.push(message),
                    Outgoing::Signal(signal) => signals.push(signal),
                }
            }
            let sent = tokio::time::timeout(PUBLISH_TIMEOUT, async {
                if !messages.is_empty() {
                    let json = serde_json::to_string(&messages).unwrap_or_default();
                    connection.publish::<_, _, ()>(MESSAGES, json).await?;
                }
                if !signals.is_empty() {
                    let json = serde_json::to_string(&signals).unwrap_or_default();
                    connection.publish::<_, _, ()>(PRESENCE, json).await?;
                }
                Ok::<_, redis::RedisError>(())
            })
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                let Some(broker) = broker.upgrade() else {
                    return;
                };
                broker.set(&broker.publishing, false);
                break;
            }
        }
    }
}

async fn subscribe(
    broker: Weak<RedisBroker>,
    client: redis::Client,
    received: mpsc::Sender<Vec<StoredMessage>>,
    sink: Weak<dyn Sink>,
) {
    loop {
        let connect = || async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(MESSAGES).await?;
            pubsub.subscribe(PRESENCE).await?;
            Ok(pubsub)
        };
        let Some(pubsub) = reach(&broker, |b| &b.subscribed, "subscribe", connect).await else {
            return;
        };
        let Some(node) = broker.upgrade().map(|broker| {
            // Now that this process hears the answers: whoever is
            // listening learns who it has and says who they have, after a
            // start and after an outage that may have made them forget it.
            broker.announce(Signal::Hello { node: broker.node });
            if let Some(sink) = sink.upgrade() {
                for here in sink.occupancy() {
                    broker.announce(here);
                }
            }
            broker.node
        }) else {
            return;
        };
        let mut stream = pubsub.into_on_message();
        while let Some(message) = stream.next().await {
            let payload = message.get_payload_bytes();
            if message.get_channel_name() == MESSAGES {
                match serde_json::from_slice::<Vec<StoredMessage>>(payload) {
                    Ok(batch) => {
                        if received.send(batch).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "unreadable message batch on Redis: dropped");
                        unreadable();
                    }
                }
            } else {
                match serde_json::from_slice::<Vec<Signal>>(payload) {
                    Ok(signals) => {
                        let Some(sink) = sink.upgrade() else { return };
                        for signal in signals.into_iter().filter(|s| s.node() != node) {
                            sink.signal(signal);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "unreadable presence on Redis: dropped");
                        unreadable();
                    }
                }
            }
        }
        let Some(broker) = broker.upgrade() else {
            return;
        };
        broker.set(&broker.subscribed, false);
    }
}

/// Counts a publication on Redis that was not what its channel carries
/// (the store still has every message).
fn unreadable() {
    metrics::counter!("parley_broker_rejected_total", "reason" => "unreadable").increment(1);
}

/// Says this process is alive, and forgets the others that fell silent.
async fn beat(broker: Weak<RedisBroker>, sink: Weak<dyn Sink>) {
    let mut every = tokio::time::interval(BEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(broker) = broker.upgrade() else {
            return;
        };
        broker.announce(Signal::Beat { node: broker.node });
        match sink.upgrade() {
            Some(sink) => sink.expire(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere;

    impl Sink for Nowhere {
        fn relay(&self, _: &StoredMessage) {}
        fn signal(&self, _: Signal) {}
        fn occupancy(&self) -> Vec<Signal> {
            Vec::new()
        }
        fn expire(&self) {}
    }

    // A Redis nobody listens on: nothing leaves the outbox.
    #[tokio::test]
    async fn what_waits_to_be_published_holds_at_most_its_bytes() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let sink: Weak<dyn Sink> = Weak::<Nowhere>::new();
        let broker = RedisBroker::start("redis://127.0.0.1:1", 1, store, sink)
            .await
            .unwrap();
        let text = "x".repeat(app::protocol::MESSAGE_MAX_CHARS);
        for id in 1..=OUTBOX as u64 {
            broker.publish(StoredMessage {
                id,
                room: "general".into(),
                sent_at: "2026-12-03T14:00:00.000Z".into(),
                from: 1,
                nickname: "alice".into(),
                text: text.clone(),
                client_key: None,
            });
        }
        let used = broker.outbox_bytes.used();
        assert!(used <= OUTBOX_BYTES, "{used}");
        assert!(
            used > OUTBOX_BYTES - 2 * (OUTGOING_OVERHEAD + text.len() + 64),
            "the bytes were the bound, not the {OUTBOX} entries: {used}"
        );
    }
}
