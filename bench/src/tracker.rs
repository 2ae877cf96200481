//! Spotting lost, repeated and reordered messages from sequence numbers.

/// What one receiver has seen from each sender.
///
/// A v1 server relays one sender's messages to one receiver in order, so a
/// receiver only needs the next sequence number it expects from each sender:
/// a higher one means messages were skipped (a gap), a lower one means a
/// message came twice or out of order (counted as a duplicate).
#[derive(Debug, Clone)]
pub struct SeqTracker {
    next: Vec<u64>,
    /// Sequence numbers skipped over, in total.
    pub gaps: u64,
    /// Messages seen again or going backwards.
    pub duplicates: u64,
    /// Messages naming a sender this run does not have.
    pub unknown_senders: u64,
}

/// How a message fits the sequence of its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before: the expected one, or one after a gap.
    New,
    /// Seen before, or older than one already seen.
    Duplicate,
    /// From a sender outside `0..senders`.
    UnknownSender,
}

impl SeqTracker {
    pub fn new(senders: usize) -> Self {
        Self {
            next: vec![0; senders],
            gaps: 0,
            duplicates: 0,
            unknown_senders: 0,
        }
    }

    pub fn observe(&mut self, sender: u32, seq: u64) -> Seen {
        let Some(next) = usize::try_from(sender)
            .ok()
            .and_then(|sender| self.next.get_mut(sender))
        else {
            self.unknown_senders += 1;
            return Seen::UnknownSender;
        };
        if seq < *next {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        self.gaps += seq - *next;
        *next = seq + 1;
        Seen::New
    }

    /// Messages never received at the end of the sequence: `sent[k]` is how
    /// many sender `k` sent. A receiver that is itself sender `own` is not
    /// sent its own messages, so that sender is skipped.
    pub fn missing(&self, sent: &[u64], own: Option<usize>) -> u64 {
        self.next
            .iter()
            .zip(sent)
            .enumerate()
            .filter(|&(sender, _)| Some(sender) != own)
            .map(|(_, (&next, &sent))| sent.saturating_sub(next))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_delivery_is_clean() {
        let mut tracker = SeqTracker::new(2);
        for seq in 0..5 {
            assert_eq!(tracker.observe(0, seq), Seen::New);
            assert_eq!(tracker.observe(1, seq), Seen::New);
        }
        assert_eq!((tracker.gaps, tracker.duplicates), (0, 0));
        assert_eq!(tracker.missing(&[5, 5], None), 0);
    }

    #[test]
    fn skipped_sequences_are_gaps_and_repeats_are_duplicates() {
        let mut tracker = SeqTracker::new(1);
        for seq in [0, 1, 4, 4, 2, 5, 9] {
            tracker.observe(0, seq);
        }
        // 2 and 3 skipped before 4, then 6, 7 and 8 before 9.
        assert_eq!(tracker.gaps, 5);
        // The second 4, and 2 going backwards.
        assert_eq!(tracker.duplicates, 2);
    }

    #[test]
    fn missing_counts_the_unreceived_tail_except_the_receivers_own() {
        let mut tracker = SeqTracker::new(3);
        tracker.observe(0, 0);
        tracker.observe(2, 0);
        tracker.observe(2, 1);
        // Sender 0 sent 4 (3 missing), sender 1 is the receiver itself,
        // sender 2 sent 2 (none missing).
        assert_eq!(tracker.missing(&[4, 7, 2], Some(1)), 3);
        assert_eq!(tracker.missing(&[4, 7, 2], None), 10);
    }

    #[test]
    fn unknown_senders_are_counted_not_tracked() {
        let mut tracker = SeqTracker::new(1);
        assert_eq!(tracker.observe(1, 0), Seen::UnknownSender);
        assert_eq!(tracker.unknown_senders, 1);
        assert_eq!(tracker.observe(0, 0), Seen::New);
    }
}
