//! Relays messages in id order, each once, whatever order they arrive in.
//!
//! Ids are handed out under one lock across processes (the store's append
//! lock), strictly increasing in commit order, and a message is published
//! only after its commit. So when a message arrives whose id is not the
//! next one, the ones before it are already in the store: a read fills the
//! gap. Ids can skip (a rolled-back transaction, a duplicate `client_id`),
//! which costs one such read and no more. A slow poll of the store catches
//! messages whose publication never arrived (the publisher lost Redis just
//! then); while Redis is away the poll is fast, and is what relays.

use std::{sync::Weak, time::Duration};

use tokio::sync::mpsc;

use super::Sink;
use crate::store::{Store, StoredMessage};

/// Messages read from the store per query.
const READ: u32 = 256;

/// How often the store is polled while the broker delivers.
pub const SLOW_POLL: Duration = Duration::from_secs(2);
/// How often the store is polled while it does not.
pub const FAST_POLL: Duration = Duration::from_millis(250);

pub struct Sequencer {
    /// The newest id relayed.
    last: u64,
    store: Store,
    sink: Weak<dyn Sink>,
}

impl Sequencer {
    /// Relays from the message after `last` on.
    pub fn new(last: u64, store: Store, sink: Weak<dyn Sink>) -> Self {
        Self { last, store, sink }
    }

    /// Runs until `received` closes: messages from the broker, in any
    /// order; polls the store every `poll` (which the broker changes as it
    /// comes and goes).
    pub async fn run(
        mut self,
        mut received: mpsc::Receiver<Vec<StoredMessage>>,
        poll: tokio::sync::watch::Receiver<Duration>,
    ) {
        loop {
            let every = *poll.borrow();
            tokio::select! {
                batch = received.recv() => match batch {
                    Some(batch) => self.received(batch).await,
                    None => return,
                },
                () = tokio::time::sleep(every) => self.catch_up(None).await,
            }
        }
    }

    async fn received(&mut self, mut batch: Vec<StoredMessage>) {
        batch.sort_unstable_by_key(|message| message.id);
        for message in batch {
            if message.id <= self.last {
                continue;
            }
            if message.id > self.last + 1 {
                self.catch_up(Some(message.id)).await;
                if message.id <= self.last {
                    continue;
                }
            }
            self.relay(&message);
        }
    }

    /// Relays what the store holds after the last id relayed: up to `until`
    /// (exclusive), or all of it.
    async fn catch_up(&mut self, until: Option<u64>) {
        loop {
            let page = match self.store.tail(self.last, READ).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "could not read messages to relay");
                    return;
                }
            };
            let full = page.len() == READ as usize;
            for message in page {
                if until.is_some_and(|until| message.id >= until) {
                    return;
                }
                self.relay(&message);
            }
            if !full {
                return;
            }
        }
    }

    fn relay(&mut self, message: &StoredMessage) {
        self.last = message.id;
        if let Some(sink) = self.sink.upgrade() {
            sink.relay(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{broker::Signal, store::NewMessage};

    #[derive(Default)]
    struct Relayed(Mutex<Vec<u64>>);

    impl Sink for Relayed {
        fn relay(&self, message: &StoredMessage) {
            self.0.lock().unwrap().push(message.id);
        }
        fn signal(&self, _: Signal) {}
        fn occupancy(&self) -> Vec<Signal> {
            Vec::new()
        }
        fn expire(&self) {}
    }

    async fn stored(store: &Store, n: usize) -> Vec<StoredMessage> {
        let batch = (0..n)
            .map(|i| NewMessage {
                room: "general".into(),
                from: 1,
                nickname: "a".into(),
                text: i.to_string(),
                client_key: None,
            })
            .collect();
        store
            .append(batch)
            .await
            .unwrap()
            .iter()
            .map(|appended| appended.message().clone())
            .collect()
    }

    #[tokio::test]
    async fn out_of_order_and_missing_messages_are_relayed_in_order_once() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 6).await;
        let relayed = Arc::new(Relayed::default());
        let sink: Arc<dyn Sink> = relayed.clone();
        let mut sequencer = Sequencer::new(0, store, Arc::downgrade(&sink));
        // 4 comes first: 1 to 3 are read from the store; then 2 again, and
        // 6 without 5.
        sequencer.received(vec![messages[3].clone()]).await;
        sequencer.received(vec![messages[1].clone()]).await;
        sequencer
            .received(vec![messages[5].clone(), messages[0].clone()])
            .await;
        let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
        assert_eq!(*relayed.0.lock().unwrap(), ids);
    }

    #[tokio::test]
    async fn the_poll_relays_what_never_arrived() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 3).await;
        let relayed = Arc::new(Relayed::default());
        let sink: Arc<dyn Sink> = relayed.clone();
        let mut sequencer = Sequencer::new(messages[0].id, store, Arc::downgrade(&sink));
        sequencer.catch_up(None).await;
        assert_eq!(*relayed.0.lock().unwrap(), [messages[1].id, messages[2].id]);
    }
}
