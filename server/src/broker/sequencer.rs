//! Relays messages in id order, each once, whatever order they arrive in,
//! and never moves past a message it has not relayed.
//!
//! Ids are handed out under one lock across processes (the store's append
//! lock), strictly increasing in commit order, and a message is published
//! only after its commit. So when a message arrives whose id is not the
//! next one, the ones before it are already in the store: a read of the
//! store after the last id relayed fills the gap.
//!
//! **A gap is never skipped.** Messages that arrive ahead of a gap are held
//! while the store is read. A read that fails proves nothing: nothing is
//! relayed past the gap, and the read is retried (50 ms, doubling up to
//! 5 s) until one succeeds; then everything is relayed in order. Ids can
//! skip for real (a rolled-back transaction, a duplicate `client_id`): a
//! read that succeeds shows it, as whatever it does not return after the
//! last id relayed is not in the store, and is passed. What is held is
//! bounded ([`HELD_MESSAGES`], [`HELD_BYTES`]): past that the highest ids
//! are let go, and read from the store, which has them, once the gap is
//! filled.
//!
//! **What Redis says is checked before it moves the sequencer.** A
//! message's id is trusted only as far as the store vouches for it: one
//! id far ahead, relayed, would make every real message after it look old
//! and silence the cluster. So a message from Redis is relayed as it came
//! only if its id is the next one (checked: `last + 1` never overflows)
//! and at most `confirmed`, the newest id the store is known to hold: the
//! newest any read returned, or the newest this process stored itself
//! (ids are given in commit order, so whoever committed an id knows every
//! id below it is settled). Anything else waits for a read, and what is
//! relayed then is the store's rows; an id Redis announced that a read
//! which succeeded does not return is dropped, with a warning and
//! `parley_broker_rejected_total{reason="not_stored"}`. On one process
//! alone every message is its own, so the in-order path reads nothing;
//! with several, another process's message costs a read unless this one
//! stored a later id first (a read covers every message stored by then).
//! What is not checked is the text of a message whose id is vouched for:
//! Redis is trusted with that as with presence (keep it private).
//!
//! A poll of the store catches messages whose publication never arrived
//! (the publisher lost Redis just then): slow while Redis delivers; while
//! Redis is away, fast, and it is what relays.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Weak,
    },
    time::Duration,
};

use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use super::Sink;
use crate::store::{Store, StoreError, StoredMessage};

/// Messages read from the store per query.
const READ: u32 = 256;

/// How often the store is polled while the broker delivers.
pub const SLOW_POLL: Duration = Duration::from_secs(2);
/// How often the store is polled while it does not.
pub const FAST_POLL: Duration = Duration::from_millis(250);

/// The most messages held ahead of a gap; past it the highest ids are let
/// go (the store has them).
pub const HELD_MESSAGES: usize = 4096;
/// The most bytes held ahead of a gap (the messages' strings and structs);
/// a frame is at most 64 KiB, so this holds at least 64 of the largest.
pub const HELD_BYTES: usize = 4 << 20;

/// The wait before the first retry of a failed read; it doubles with each
/// failure, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// What the sequencer reads messages from: the [`Store`] (a seam for tests,
/// whose log fails on demand).
pub trait Log: Send + Sync + 'static {
    /// Up to `limit` messages of every room with id > `after`, oldest first.
    fn tail(
        &self,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send;
}

impl Log for Store {
    fn tail(
        &self,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send {
        Store::tail(self, after, limit)
    }
}

pub struct Sequencer<L = Store> {
    /// The newest id relayed.
    last: u64,
    /// The newest id a read returned (or the store's newest at start).
    confirmed: u64,
    /// The newest id this process stored (shared with the broker, which
    /// sees each message the hub stores before publishing it).
    stored: Arc<AtomicU64>,
    /// Messages from Redis after `last`, not relayed yet, by id.
    held: BTreeMap<u64, StoredMessage>,
    /// Their [`weight`], summed.
    held_bytes: usize,
    /// The highest id Redis announced, held or let go; while it is above
    /// `last` the store must be read.
    announced: u64,
    /// Reads that failed in a row, and when to try again.
    failures: u32,
    retry_at: Instant,
    /// When the store was last read: the poll counts from there.
    read_at: Instant,
    log: L,
    sink: Weak<dyn Sink>,
}

impl<L: Log> Sequencer<L> {
    /// Relays from the message after `last` (the store's newest) on.
    pub fn new(last: u64, log: L, sink: Weak<dyn Sink>, stored: Arc<AtomicU64>) -> Self {
        let now = Instant::now();
        Self {
            last,
            confirmed: last,
            stored,
            held: BTreeMap::new(),
            held_bytes: 0,
            announced: last,
            failures: 0,
            retry_at: now,
            read_at: now,
            log,
            sink,
        }
    }

    /// Runs until `received` closes: messages from the broker, in any
    /// order; reads the store every `poll` (which the broker changes as it
    /// comes and goes), and while a gap is open, when the retry is due.
    pub async fn run(
        mut self,
        mut received: mpsc::Receiver<Vec<StoredMessage>>,
        poll: watch::Receiver<Duration>,
    ) {
        loop {
            // A deadline, not a period: a steady stream of batches must not
            // put off the retry or the poll.
            let due = if self.gap() {
                self.retry_at
            } else {
                self.read_at + *poll.borrow()
            };
            tokio::select! {
                batch = received.recv() => match batch {
                    Some(batch) => self.received(batch).await,
                    None => return,
                },
                () = tokio::time::sleep_until(due) => self.read().await,
            }
        }
    }

    /// Whether Redis announced an id the store has not yet shown.
    fn gap(&self) -> bool {
        self.announced > self.last
    }

    fn confirmed(&self) -> u64 {
        self.confirmed.max(self.stored.load(Ordering::Acquire))
    }

    async fn received(&mut self, batch: Vec<StoredMessage>) {
        for message in batch {
            self.hold(message);
        }
        self.relay_held();
        if self.gap() && Instant::now() >= self.retry_at {
            self.read().await;
        }
    }

    /// Keeps a message from Redis until it can be relayed, within bounds.
    fn hold(&mut self, message: StoredMessage) {
        if message.id <= self.last {
            return;
        }
        self.announced = self.announced.max(message.id);
        self.held_bytes += weight(&message);
        if let Some(again) = self.held.insert(message.id, message) {
            self.held_bytes -= weight(&again);
        }
        while self.held.len() > HELD_MESSAGES || self.held_bytes > HELD_BYTES {
            // The furthest from being relayed go: a read brings them back.
            let Some((_, let_go)) = self.held.pop_last() else {
                break;
            };
            self.held_bytes -= weight(&let_go);
        }
    }

    /// Relays the held messages that are next, as long as the store vouches
    /// for their ids.
    fn relay_held(&mut self) {
        let confirmed = self.confirmed();
        while let Some(entry) = self.held.first_entry() {
            let id = *entry.key();
            if self.last.checked_add(1) != Some(id) || id > confirmed {
                return;
            }
            let message = entry.remove();
            self.held_bytes -= weight(&message);
            self.relay(&message);
        }
    }

    /// Reads the store after `last` to its end and relays every message it
    /// returns. If every page was read, what Redis announced and the store
    /// does not have is dropped; if a read fails, what is held stays held
    /// and the read is retried later.
    async fn read(&mut self) {
        loop {
            self.read_at = Instant::now();
            let page = match self.log.tail(self.last, READ).await {
                Ok(page) => page,
                Err(error) => {
                    self.failed(&error);
                    self.relay_held();
                    return;
                }
            };
            self.failures = 0;
            let full = page.len() == READ as usize;
            for message in page {
                // The store returns ids after `last`, in order; anything
                // else would move the sequencer back.
                if message.id > self.last {
                    self.confirmed = self.confirmed.max(message.id);
                    self.relay(&message);
                }
            }
            self.forget_relayed();
            if !full {
                break;
            }
        }
        if self.gap() {
            self.reject_announced();
        }
    }

    fn failed(&mut self, error: &StoreError) {
        self.failures = self.failures.saturating_add(1);
        let wait = FIRST_RETRY
            .saturating_mul(1 << (self.failures - 1).min(7))
            .min(MAX_RETRY);
        self.retry_at = Instant::now() + wait;
        tracing::warn!(%error, retry_in = ?wait, "could not read messages to relay");
    }

    /// Lets go of the held messages at or before `last`.
    fn forget_relayed(&mut self) {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > self.last {
                return;
            }
            self.held_bytes -= weight(&entry.remove());
        }
    }

    /// The store was read to its end and did not have what Redis announced
    /// after `last`: forged, or garbled on the way.
    fn reject_announced(&mut self) {
        let dropped = self.held.len().max(1);
        tracing::warn!(
            announced = self.announced,
            newest = self.last,
            dropped,
            "Redis announced messages the store does not have: dropped"
        );
        metrics::counter!("parley_broker_rejected_total", "reason" => "not_stored")
            .increment(dropped as u64);
        self.held.clear();
        self.held_bytes = 0;
        self.announced = self.last;
    }

    fn relay(&mut self, message: &StoredMessage) {
        self.last = message.id;
        if let Some(sink) = self.sink.upgrade() {
            sink.relay(message);
        }
    }
}

/// What a held message costs, roughly.
fn weight(message: &StoredMessage) -> usize {
    size_of::<StoredMessage>()
        + message.room.len()
        + message.sent_at.len()
        + message.nickname.len()
        + message.text.len()
        + message.client_key.as_ref().map_or(0, String::len)
}

#[cfg(test)]
mod tests {
    use std::sync::{atomic::AtomicBool, Mutex};

    use super::*;
    use crate::{broker::Signal, store::NewMessage};

    /// The ids relayed, in order; `grew` ticks with each.
    #[derive(Default)]
    struct Relayed {
        ids: Mutex<Vec<u64>>,
        grew: tokio::sync::Notify,
    }

    impl Relayed {
        fn ids(&self) -> Vec<u64> {
            self.ids.lock().unwrap().clone()
        }

        /// Waits until `n` messages were relayed.
        async fn until(&self, n: usize) -> Vec<u64> {
            let wait = async {
                loop {
                    let grew = self.grew.notified();
                    if self.ids.lock().unwrap().len() >= n {
                        return self.ids();
                    }
                    grew.await;
                }
            };
            tokio::time::timeout(Duration::from_secs(20), wait)
                .await
                .unwrap_or_else(|_| panic!("{n} relayed; only {:?}", self.ids()))
        }
    }

    impl Sink for Relayed {
        fn relay(&self, message: &StoredMessage) {
            self.ids.lock().unwrap().push(message.id);
            self.grew.notify_waiters();
        }
        fn signal(&self, _: Signal) {}
        fn occupancy(&self) -> Vec<Signal> {
            Vec::new()
        }
        fn expire(&self) {}
    }

    /// The store, whose reads fail while `down`, never return the ids in
    /// `gone` (as after a rolled-back transaction), and are counted.
    #[derive(Clone)]
    struct Flaky {
        store: Store,
        down: Arc<AtomicBool>,
        gone: Vec<u64>,
        /// Reads attempted, and when.
        reads: Arc<Mutex<Vec<Instant>>>,
        failed: Arc<watch::Sender<usize>>,
    }

    impl Flaky {
        fn new(store: Store) -> Self {
            Self {
                store,
                down: Arc::default(),
                gone: Vec::new(),
                reads: Arc::default(),
                failed: Arc::new(watch::channel(0).0),
            }
        }

        fn set_down(&self, down: bool) {
            self.down.store(down, Ordering::SeqCst);
        }

        fn reads(&self) -> Vec<Instant> {
            self.reads.lock().unwrap().clone()
        }
    }

    impl Log for Flaky {
        fn tail(
            &self,
            after: u64,
            limit: u32,
        ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send {
            let this = self.clone();
            async move {
                this.reads.lock().unwrap().push(Instant::now());
                if this.down.load(Ordering::SeqCst) {
                    this.failed.send_modify(|n| *n += 1);
                    return Err(StoreError::Unavailable("down for the test".into()));
                }
                let mut page = this.store.tail(after, limit).await?;
                page.retain(|message| !this.gone.contains(&message.id));
                Ok(page)
            }
        }
    }

    /// A sequencer on `log` from `last` on, and what it relays; this
    /// process stored nothing yet.
    fn start<L: Log>(last: u64, log: L) -> (Sequencer<L>, Arc<Relayed>, Arc<dyn Sink>) {
        let relayed = Arc::new(Relayed::default());
        let sink: Arc<dyn Sink> = relayed.clone();
        let sequencer = Sequencer::new(last, log, Arc::downgrade(&sink), Arc::default());
        (sequencer, relayed, sink)
    }

    async fn stored_with(store: &Store, texts: Vec<String>) -> Vec<StoredMessage> {
        let batch = texts
            .into_iter()
            .map(|text| NewMessage {
                room: "general".into(),
                from: 1,
                nickname: "a".into(),
                text,
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

    async fn stored(store: &Store, n: usize) -> Vec<StoredMessage> {
        stored_with(store, (0..n).map(|i| i.to_string()).collect()).await
    }

    fn ids(messages: &[StoredMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.id).collect()
    }

    /// A message as Redis could carry it, whatever the store holds.
    fn forged(id: u64) -> StoredMessage {
        StoredMessage {
            id,
            room: "general".into(),
            sent_at: "2026-01-01T00:00:00.000Z".into(),
            from: 666,
            nickname: "mallory".into(),
            text: "forged".into(),
            client_key: None,
        }
    }

    #[tokio::test]
    async fn out_of_order_and_missing_messages_are_relayed_in_order_once() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 6).await;
        let (mut sequencer, relayed, _sink) = start(0, store);
        // 4 comes first: 1 to 3 are read from the store; then 2 again, and
        // 6 without 5.
        sequencer.received(vec![messages[3].clone()]).await;
        sequencer.received(vec![messages[1].clone()]).await;
        sequencer
            .received(vec![messages[5].clone(), messages[0].clone()])
            .await;
        assert_eq!(relayed.ids(), ids(&messages));
    }

    #[tokio::test]
    async fn the_poll_relays_what_never_arrived() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 3).await;
        let (mut sequencer, relayed, _sink) = start(messages[0].id, store);
        sequencer.read().await;
        assert_eq!(relayed.ids(), ids(&messages[1..]));
    }

    #[tokio::test]
    async fn a_failed_gap_read_holds_what_came_after_until_the_store_answers() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 6).await;
        let log = Flaky::new(store);
        let (mut sequencer, relayed, _sink) = start(0, log.clone());
        log.set_down(true);
        // 4 arrives ahead of 1 to 3, which cannot be read: nothing moves.
        sequencer.received(vec![messages[3].clone()]).await;
        assert_eq!(log.reads().len(), 1);
        assert!(sequencer.retry_at > Instant::now(), "a retry is due later");
        // 6 arrives meanwhile, and is held too (the retry is not due).
        sequencer.received(vec![messages[5].clone()]).await;
        assert_eq!(log.reads().len(), 1);
        assert!(relayed.ids().is_empty(), "{:?}", relayed.ids());
        assert_eq!(sequencer.last, 0);
        // The retry reads the store: everything, in order.
        log.set_down(false);
        sequencer.read().await;
        assert_eq!(relayed.ids(), ids(&messages));
        assert!(sequencer.held.is_empty() && sequencer.held_bytes == 0);
    }

    #[tokio::test]
    async fn retries_back_off_and_relay_everything_once_the_store_is_back() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 5).await;
        let log = Flaky::new(store);
        log.set_down(true);
        let (sequencer, relayed, _sink) = start(0, log.clone());
        let (tx, rx) = mpsc::channel(8);
        let (_poll, poll) = watch::channel(SLOW_POLL);
        let running = tokio::spawn(sequencer.run(rx, poll));
        tx.send(vec![messages[4].clone(), messages[2].clone()])
            .await
            .unwrap();
        // The first read and three retries fail.
        let mut failed = log.failed.subscribe();
        failed.wait_for(|&n| n >= 4).await.unwrap();
        log.set_down(false);
        assert_eq!(relayed.until(5).await, ids(&messages));
        // Each wait doubled: at least 50, 100, 200 ms between the reads.
        let reads = log.reads();
        for (n, pair) in reads.windows(2).take(3).enumerate() {
            assert!(
                pair[1] - pair[0] >= FIRST_RETRY * (1 << n),
                "read {} came {:?} after the one before",
                n + 1,
                pair[1] - pair[0]
            );
        }
        drop(tx);
        running.await.unwrap();
    }

    #[tokio::test]
    async fn an_id_the_store_does_not_have_is_passed_once_a_read_succeeds() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 5).await;
        // The store never shows the third (as if its transaction had
        // rolled back after taking the id).
        let mut log = Flaky::new(store);
        log.gone = vec![messages[2].id];
        let (mut sequencer, relayed, _sink) = start(messages[1].id, log.clone());
        log.set_down(true);
        sequencer.received(vec![messages[3].clone()]).await;
        assert!(relayed.ids().is_empty(), "a failed read proves nothing");
        log.set_down(false);
        sequencer.read().await;
        assert_eq!(relayed.ids(), [messages[3].id, messages[4].id]);
        assert!(!sequencer.gap());
    }

    #[tokio::test]
    async fn forged_ids_far_ahead_do_not_silence_the_messages_after_them() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let before = stored(&store, 2).await;
        let log = Flaky::new(store.clone());
        let (mut sequencer, relayed, _sink) = start(before[1].id, log.clone());
        // One id far ahead, and a run of the next ids, which the store
        // does not have either.
        let next = before[1].id + 1;
        let mut forgeries: Vec<StoredMessage> = (next..next + 10).map(forged).collect();
        forgeries.push(forged(1 << 40));
        sequencer.received(forgeries).await;
        assert!(relayed.ids().is_empty(), "{:?}", relayed.ids());
        assert_eq!(sequencer.last, before[1].id);
        assert!(!sequencer.gap() && sequencer.held.is_empty());
        // The real messages with those ids come after, and are relayed.
        let after = stored(&store, 3).await;
        assert_eq!(after[0].id, next);
        for message in &after {
            sequencer.received(vec![message.clone()]).await;
        }
        assert_eq!(relayed.ids(), ids(&after));
        assert_eq!(log.reads().len(), 2, "one read rejected all the forgeries");
    }

    #[tokio::test]
    async fn the_largest_id_neither_overflows_nor_moves_the_sequencer() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 2).await;
        let (mut sequencer, relayed, _sink) = start(0, store.clone());
        sequencer
            .received(vec![forged(u64::MAX), forged(u64::MAX - 1)])
            .await;
        assert_eq!(relayed.ids(), ids(&messages), "the store's, not Redis's");
        assert!(!sequencer.gap());
        // Even a sequencer that reached the largest id has no next one.
        let (mut at_the_end, relayed, _sink) = start(u64::MAX, store);
        at_the_end.stored.store(u64::MAX, Ordering::SeqCst);
        at_the_end.received(vec![forged(u64::MAX)]).await;
        at_the_end.read().await;
        assert!(relayed.ids().is_empty());
    }

    #[tokio::test]
    async fn the_next_message_this_process_stored_is_relayed_without_a_read() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, 4).await;
        let log = Flaky::new(store);
        log.set_down(true);
        let (mut sequencer, relayed, _sink) = start(0, log.clone());
        // This process stored up to the third: the store vouches for them,
        // even while it cannot be read.
        sequencer.stored.store(messages[2].id, Ordering::SeqCst);
        for message in &messages[..3] {
            sequencer.received(vec![message.clone()]).await;
        }
        assert_eq!(relayed.ids(), ids(&messages[..3]));
        assert!(log.reads().is_empty());
        // The fourth is next, but only a read can vouch for it.
        sequencer.received(vec![messages[3].clone()]).await;
        assert_eq!(log.reads().len(), 1);
        assert_eq!(relayed.ids(), ids(&messages[..3]));
        log.set_down(false);
        sequencer.read().await;
        assert_eq!(relayed.ids(), ids(&messages));
    }

    #[tokio::test]
    async fn what_is_held_is_bounded_and_what_was_let_go_is_read_back() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let messages = stored(&store, HELD_MESSAGES + 100).await;
        let log = Flaky::new(store.clone());
        log.set_down(true);
        let (mut sequencer, relayed, _sink) = start(0, log.clone());
        // All but the first arrive while the store is down.
        sequencer.received(messages[1..].to_vec()).await;
        assert_eq!(sequencer.held.len(), HELD_MESSAGES);
        assert_eq!(
            sequencer.held.last_key_value().map(|(&id, _)| id),
            Some(messages[HELD_MESSAGES].id),
            "the lowest ids are kept"
        );
        log.set_down(false);
        sequencer.read().await;
        assert_eq!(relayed.ids(), ids(&messages));

        // In bytes too: each of these is nearly a quarter of the bound.
        let big = "x".repeat(HELD_BYTES / 4 - 1024);
        let messages = stored_with(&store, vec![big; 6]).await;
        log.set_down(true);
        sequencer.received(messages[1..].to_vec()).await;
        assert!(sequencer.held_bytes <= HELD_BYTES);
        assert_eq!(sequencer.held.len(), 4);
        log.set_down(false);
        sequencer.read().await;
        assert_eq!(relayed.ids()[HELD_MESSAGES + 100..], ids(&messages));
    }
}
