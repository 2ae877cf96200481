//! Group commit: the one task that stores messages, in batches, and hands
//! each to the hub once it is durable, in id order.
//!
//! A message is stored before anyone hears of it: its sender's ack and
//! everyone else's copy wait for the commit. One transaction per message
//! would cap the chat at the disk's fsync rate, so the task commits
//! whatever arrived while the previous transaction was committing, in one
//! transaction: under load, batches grow and the cost per message falls.
//! Being the only task that stores, it also sees each batch's ids in order
//! and delivers them in that order, which is what keeps every client's
//! stream in id order.
//!
//! Each batch is handed over whole to the deliverer, one thread of its own
//! that may block: relaying is writing to every member's socket,
//! milliseconds for a big room, and the hub writes them right there (see
//! [`crate::flush`]). Meanwhile the next batch is being committed.
//!
//! At shutdown the queue is drained: [`Committer::drain`] stops taking
//! messages and returns once every message already taken is stored (or
//! failed) and handed to the hub, so their acks go out before the
//! connections close.

use std::{sync::Arc, time::Instant};

use app::protocol::ClientMessageId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    byte_budget::{ByteBudget, Reserved},
    client_id::ClientId,
    metrics::Metrics,
    store::{Appended, NewMessage, Store, StoredMessage},
    writer::ClientWriter,
};

/// Who to answer about a message once its fate is known.
#[derive(Debug, Clone)]
pub struct Pending {
    pub from: ClientId,
    pub client_id: Option<ClientMessageId>,
    /// The sender's connection, for the ack: it may have moved to another
    /// room since.
    pub reply: Option<Arc<ClientWriter>>,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now: relay it and ack it.
    Stored(StoredMessage),
    /// Its `client_id` was stored before: ack it again, relay nothing.
    Duplicate(StoredMessage),
    /// The store failed: nothing was stored.
    Failed,
}

/// A message waiting to be stored, with its share of the queue's bytes and
/// when it was submitted.
type Queued = (Pending, NewMessage, Reserved, Instant);

/// Why a message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The queue is full: the store is falling far behind.
    #[error("the message store is falling behind")]
    Backlogged,
    /// The server is shutting down (see [`Committer::drain`]).
    #[error("the server is shutting down")]
    Closing,
}

/// The handle that sessions (through the hub) submit messages to.
#[derive(Debug, Clone)]
pub struct Committer {
    queue: mpsc::Sender<Queued>,
    /// What the queued messages may hold: see [`MAX_QUEUED_BYTES`].
    budget: ByteBudget,
    /// Cancelled to stop taking messages.
    closing: CancellationToken,
    /// Cancelled by the commit task when it has handed over its last
    /// message.
    finished: CancellationToken,
}

/// Most messages committed in one transaction.
pub const MAX_BATCH: usize = 1024;

/// Messages that may wait for the store before new ones are refused.
pub const MAX_QUEUED: usize = 65_536;

/// Bytes the messages waiting for the store may hold before new ones are
/// refused (as [`Refused::Backlogged`]): their text, nickname, room and key,
/// and [`QUEUED_OVERHEAD`] each. 32 MiB is 16,000 of the longest messages,
/// or the whole [`MAX_QUEUED`] of short ones.
pub const MAX_QUEUED_BYTES: usize = 32 << 20;

/// What a queued message holds beside its strings: the sender's handle and
/// writer reference, the queue's slot.
pub const QUEUED_OVERHEAD: usize = 256;

impl Committer {
    /// Starts the commit task and its deliverer; `deliver` is called on
    /// the deliverer's thread, where it may block, once per batch, with the
    /// batch's messages, batches in commit order.
    pub fn spawn(
        store: Store,
        metrics: Metrics,
        deliver: impl Fn(Vec<(Pending, Outcome)>) + Send + Sync + 'static,
    ) -> Self {
        let (queue, mut submitted) = mpsc::channel(MAX_QUEUED);
        let (closing, finished) = (CancellationToken::new(), CancellationToken::new());
        let (stop, done) = (closing.clone(), finished.clone());
        // The queued bytes stay reserved until their batch is delivered, so
        // the bytes waiting for the deliverer count in the same bound.
        let (to_deliver, mut delivering) =
            mpsc::unbounded_channel::<(Vec<(Pending, Outcome)>, Vec<(Reserved, Instant)>)>();
        let deliverer = tokio::task::spawn_blocking(move || {
            while let Some((outcomes, _held)) = delivering.blocking_recv() {
                deliver(outcomes);
            }
        });
        tokio::spawn(async move {
            let _done = done.drop_guard();
            let mut batch = Vec::new();
            loop {
                let taken = tokio::select! {
                    taken = submitted.recv_many(&mut batch, MAX_BATCH) => taken,
                    // Nothing more is taken; what is queued still comes out,
                    // and then `recv_many` returns 0.
                    () = stop.cancelled(), if !submitted.is_closed() => {
                        submitted.close();
                        continue;
                    }
                };
                if taken == 0 {
                    break;
                }
                metrics.commit_batch(batch.len());
                // The bytes stay reserved until the batch is delivered.
                let (entries, held): (Vec<_>, Vec<(Reserved, Instant)>) =
                    std::mem::take(&mut batch)
                        .into_iter()
                        .map(|(pending, message, reserved, at)| {
                            ((pending, message), (reserved, at))
                        })
                        .unzip();
                let (pending, messages): (Vec<Pending>, Vec<NewMessage>) =
                    entries.into_iter().unzip();
                let started = Instant::now();
                let appended = store.append(messages).await;
                let done = Instant::now();
                metrics.commit_took(done - started);
                for (_, submitted) in &held {
                    metrics.commit_waited(done - *submitted);
                }
                let outcomes: Vec<(Pending, Outcome)> = match appended {
                    Ok(appended) => pending
                        .into_iter()
                        .zip(appended)
                        .map(|(pending, appended)| {
                            let outcome = match appended {
                                Appended::New(message) => Outcome::Stored(message),
                                Appended::Duplicate(message) => Outcome::Duplicate(message),
                            };
                            (pending, outcome)
                        })
                        .collect(),
                    Err(err) => {
                        tracing::error!(%err, messages = pending.len(), "storing messages failed");
                        metrics.store_error();
                        pending
                            .into_iter()
                            .map(|pending| (pending, Outcome::Failed))
                            .collect()
                    }
                };
                // The deliverer outlives this loop: it ends when this sender
                // is dropped, after the loop.
                let _ = to_deliver.send((outcomes, held));
            }
            drop(to_deliver);
            if let Err(err) = deliverer.await {
                tracing::error!(%err, "delivering stored messages failed");
            }
        });
        Self {
            queue,
            budget: ByteBudget::new(MAX_QUEUED_BYTES),
            closing,
            finished,
        }
    }

    /// Queues a message for the next commit, without waiting.
    pub fn submit(&self, pending: Pending, message: NewMessage) -> Result<(), Refused> {
        let bytes = QUEUED_OVERHEAD
            + message.text.len()
            + message.nickname.len()
            + message.room.len()
            + message.client_key.as_ref().map_or(0, String::len);
        let reserved = self.budget.try_reserve(bytes).ok_or(Refused::Backlogged)?;
        self.queue
            .try_send((pending, message, reserved, Instant::now()))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => Refused::Backlogged,
                mpsc::error::TrySendError::Closed(_) => Refused::Closing,
            })
    }

    /// Stops taking messages, and returns once every message taken before
    /// is stored (or failed) and delivered.
    pub async fn drain(&self) {
        self.closing.cancel();
        self.finished.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use app::protocol::MESSAGE_MAX_CHARS;

    use super::*;

    fn long_message() -> NewMessage {
        NewMessage {
            room: "general".into(),
            from: 1,
            nickname: "alice".into(),
            text: "x".repeat(MESSAGE_MAX_CHARS),
            client_key: None,
        }
    }

    fn pending() -> Pending {
        Pending {
            from: ClientId::from(1),
            client_id: None,
            reply: None,
        }
    }

    // On the test's one thread the commit task cannot take anything until
    // the test awaits: whatever is submitted stays queued.
    #[tokio::test]
    async fn the_queue_holds_at_most_its_bytes_whatever_the_count() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let committer = Committer::spawn(store, Metrics::default(), |_| {});
        let taken = (0..MAX_QUEUED)
            .take_while(|_| committer.submit(pending(), long_message()).is_ok())
            .count();
        let each = QUEUED_OVERHEAD + MESSAGE_MAX_CHARS + "alice".len() + "general".len();
        assert_eq!(taken, MAX_QUEUED_BYTES / each);
        assert!(taken < MAX_QUEUED, "the bytes are the bound");
        assert_eq!(
            committer.submit(pending(), long_message()),
            Err(Refused::Backlogged)
        );
    }

    #[tokio::test]
    async fn stored_messages_give_their_bytes_back() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let (delivered, mut deliveries) = mpsc::unbounded_channel();
        let committer = Committer::spawn(store, Metrics::default(), move |batch| {
            for (_, outcome) in batch {
                let _ = delivered.send(outcome);
            }
        });
        for _ in 0..3 {
            committer.submit(pending(), long_message()).unwrap();
        }
        for _ in 0..3 {
            assert!(matches!(deliveries.recv().await, Some(Outcome::Stored(_))));
        }
        committer.drain().await;
        assert_eq!(committer.budget.used(), 0);
    }
}
