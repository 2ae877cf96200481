//! Queues bounded in bytes, not entries: an entry can be a few bytes or a
//! 64 KiB message, so a count bounds nothing a hostile client cares about.
//!
//! A [`ByteBudget`] hands out [`Reserved`] bytes that travel with the entry
//! and give the bytes back when it is dropped (written, stored, published),
//! so what waits in a queue never exceeds the budget, whatever the entries.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes that entries of one queue may hold at once.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    bytes: Arc<Semaphore>,
    max: usize,
}

/// Bytes an entry holds of its queue's budget, until dropped.
#[derive(Debug)]
pub struct Reserved {
    _bytes: OwnedSemaphorePermit,
}

impl ByteBudget {
    pub fn new(max: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Reserves `bytes` for an entry, or `None` if that would go past the
    /// budget: the caller refuses or drops the entry instead of queueing it.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reserved> {
        let bytes = u32::try_from(bytes)
            .ok()
            .filter(|&b| b as usize <= self.max)?;
        Arc::clone(&self.bytes)
            .try_acquire_many_owned(bytes)
            .ok()
            .map(|bytes| Reserved { _bytes: bytes })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.max - self.bytes.available_permits()
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_budget_and_come_back_when_dropped() {
        let budget = ByteBudget::new(100);
        let a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(41).is_none());
        let b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(budget.try_reserve(60).is_some());
        drop(b);
        assert!(budget.try_reserve(101).is_none(), "never, whatever is free");
        assert!(budget.try_reserve(usize::MAX).is_none());
    }
}
