//! The flusher pool: threads that write queued frames to client sockets.
//!
//! A broadcast queues its frame for every recipient (cheap: a lock, a push,
//! a reference count) and hands the pool a [`FlushJob`]: the sockets whose
//! queue it found empty, which nobody else will write. Flusher threads on
//! tokio's blocking pool, at most one per CPU, write jobs oldest first.
//! They run on the blocking pool because writing to a room is milliseconds
//! of system calls: done on the async workers, it would hold up every
//! client's input. While they are busy, later broadcasts queue behind
//! unwritten frames and one `writev` then carries several: the cost per
//! frame falls as load rises.
//!
//! Chat messages mostly skip the pool: the group commit's deliverer, a
//! thread of its own, writes each member's socket right after queueing for it
//! ([`Room::broadcast_here`](crate::room::Room::broadcast_here)), while its
//! lock and queue are in that CPU's cache; a flusher on another CPU would
//! miss its cache on every one of them. The pool writes the rest (typing,
//! presence, relays from the broker) and the biggest rooms, which every CPU
//! should share.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use crate::{lock, writer::ClientWriter};

/// Sockets a flusher claims at a time: small enough to share the work out
/// evenly, big enough that claiming costs nothing next to writing.
pub const CHUNK: usize = 64;

/// Jobs of this many chunks or more (2,048 sockets) start every flusher,
/// and are never written by one thread alone.
pub const SHARED_FLUSH_CHUNKS: usize = 32;

/// The clients a broadcast saw, shared by the broadcast and its flush job.
pub type Recipients = Arc<[Arc<ClientWriter>]>;

#[derive(Debug)]
pub struct FlushPool {
    /// Jobs queued for writing, oldest first. Bounded by the clients: a
    /// socket is handed over only by a broadcast that found its queue empty,
    /// so it waits in one job at most, and every job has a socket.
    jobs: Mutex<VecDeque<Arc<FlushJob>>>,
    /// Flusher threads running, and how many may.
    running: AtomicUsize,
    max: usize,
}

impl FlushPool {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            jobs: Mutex::default(),
            running: AtomicUsize::new(0),
            max: std::thread::available_parallelism().map_or(1, |cpus| cpus.get()),
        })
    }

    /// Writes the job soon, on flusher threads; the caller does not wait.
    pub fn submit(self: &Arc<Self>, job: FlushJob) {
        if job.to_flush.is_empty() {
            return;
        }
        let shared = job.is_shared();
        lock(&self.jobs).push_back(Arc::new(job));
        // One flusher per job keeps the others free for the next ones; a
        // huge room gets every flusher at once.
        let wanted = if shared { self.max } else { 1 };
        for _ in 0..wanted {
            self.start_flusher();
        }
    }

    /// Starts one more flusher thread if fewer than one per CPU run.
    fn start_flusher(self: &Arc<Self>) {
        if let Some(slot) = Slot::claim(self) {
            tokio::task::spawn_blocking(move || slot.flush_until_idle());
        }
    }
}

/// A running flusher's place in the pool. Given back on drop, so a flusher
/// that unwinds (a panic in a write) does not leave the pool believing it
/// still runs, which would stop broadcasts from being written at all.
struct Slot(Arc<FlushPool>);

impl Slot {
    /// Counts one more running flusher, unless there are enough already.
    fn claim(pool: &Arc<FlushPool>) -> Option<Self> {
        pool.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < pool.max).then_some(running + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(pool)))
    }

    /// Writes queued jobs, oldest first, sharing each with the other
    /// flushers chunk by chunk, until none are left.
    fn flush_until_idle(self) {
        let pool = Arc::clone(&self.0);
        let mut slot = self;
        loop {
            let job = lock(&pool.jobs).front().cloned();
            if let Some(job) = job {
                if !job.run_chunk() {
                    let mut jobs = lock(&pool.jobs);
                    if jobs.front().is_some_and(|front| Arc::ptr_eq(front, &job)) {
                        jobs.pop_front();
                    }
                }
                continue;
            }
            drop(slot);
            // A job queued after the look above, while this thread still
            // counted as running, started no flusher: take it on.
            if lock(&pool.jobs).is_empty() {
                return;
            }
            match Slot::claim(&pool) {
                Some(claimed) => slot = claimed,
                None => return,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The sockets one broadcast has to write to: those whose queue it found
/// empty. Shared by the flushers writing them.
#[derive(Debug)]
#[must_use = "the sockets of a flush job are written by it or by no one"]
pub struct FlushJob {
    recipients: Recipients,
    /// Indices into `recipients`.
    to_flush: Vec<usize>,
    next_chunk: AtomicUsize,
}

impl FlushJob {
    /// Writing `recipients[i]` for every `i` in `to_flush`.
    pub fn new(recipients: Recipients, to_flush: Vec<usize>) -> Self {
        Self {
            recipients,
            to_flush,
            next_chunk: AtomicUsize::new(0),
        }
    }

    /// Whether every flusher should share it.
    fn is_shared(&self) -> bool {
        Self::is_shared_size(self.to_flush.len())
    }

    /// Whether writing this many sockets is a job for every flusher,
    /// rather than for one thread.
    pub fn is_shared_size(sockets: usize) -> bool {
        sockets.div_ceil(CHUNK) >= SHARED_FLUSH_CHUNKS
    }

    /// Claims a chunk of sockets and writes to them; `false` if none was left.
    fn run_chunk(&self) -> bool {
        let first = self.next_chunk.fetch_add(1, Ordering::Relaxed) * CHUNK;
        let Some(chunk) = self.to_flush.get(first..) else {
            return false;
        };
        for &index in chunk.iter().take(CHUNK) {
            self.recipients[index].flush();
        }
        true
    }
}

impl Drop for FlushJob {
    /// Frames queued first are written by this job or by no one: if it is
    /// dropped unfinished (a flusher unwound), finish here.
    fn drop(&mut self) {
        while self.run_chunk() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_flusher_that_unwinds_gives_its_slot_back() {
        let pool = FlushPool::new();
        let max = pool.max;
        let slots: Vec<_> = (0..max).map(|_| Slot::claim(&pool).unwrap()).collect();
        assert!(Slot::claim(&pool).is_none(), "every slot is taken");

        let slot = slots.into_iter().next().unwrap();
        let unwound = std::thread::spawn(move || {
            let _slot = slot;
            panic!("a write went wrong");
        })
        .join();
        assert!(unwound.is_err());
        assert!(
            Slot::claim(&pool).is_some(),
            "the unwound flusher's slot is free again"
        );
    }
}
