//! What a load-test message carries, and the clock its times come from.
//!
//! A message text is `<sender>:<seq>:<scheduled_unix_nanos>`, optionally
//! followed by `:` and padding `x`s up to a requested length. Everything a
//! receiver needs to measure latency and spot lost or repeated messages is in
//! the text itself, so any server that relays texts unchanged can be measured.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Who sent a message, its place in that sender's sequence, and when it was
/// *scheduled* to be sent (Unix nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub seq: u64,
    pub scheduled: u64,
}

impl Stamp {
    /// The message text, padded to `min_len` bytes if it is shorter. The
    /// padding is not whitespace: servers trim that.
    pub fn encode(&self, min_len: usize) -> String {
        let mut text = format!("{}:{}:{}", self.sender, self.seq, self.scheduled);
        if text.len() < min_len {
            text.push(':');
            let padding = min_len.saturating_sub(text.len());
            text.extend(std::iter::repeat_n('x', padding));
        }
        text
    }

    /// Reads a stamp back; `None` if the text is not one of ours.
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = text.splitn(4, ':');
        let stamp = Self {
            sender: fields.next()?.parse().ok()?,
            seq: fields.next()?.parse().ok()?,
            scheduled: fields.next()?.parse().ok()?,
        };
        match fields.next() {
            None => Some(stamp),
            Some(padding) if padding.bytes().all(|b| b == b'x') => Some(stamp),
            Some(_) => None,
        }
    }
}

/// Converts monotonic [`Instant`]s to Unix nanoseconds through one anchor
/// taken at the start of a run.
///
/// Every time in a run (scheduled and received) goes through the same clock,
/// so a step of the wall clock mid-run cannot distort latencies, while the
/// stamps in the messages stay meaningful Unix times.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_unix_nanos: u64,
}

impl Clock {
    pub fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the system clock is after 1970");
        Self {
            anchor: Instant::now(),
            anchor_unix_nanos: duration_nanos(since_epoch),
        }
    }

    pub fn unix_nanos(&self, at: Instant) -> u64 {
        self.anchor_unix_nanos + duration_nanos(at.saturating_duration_since(self.anchor))
    }

    pub fn now(&self) -> u64 {
        self.unix_nanos(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Nanoseconds fit a `u64` for the next five centuries.
fn duration_nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        sender: 12,
        seq: 345,
        scheduled: 1_700_000_000_123_456_789,
    };

    #[test]
    fn round_trips_with_and_without_padding() {
        let plain = STAMP.encode(0);
        assert_eq!(plain, "12:345:1700000000123456789");
        assert_eq!(Stamp::parse(&plain), Some(STAMP));

        let padded = STAMP.encode(100);
        assert_eq!(padded.len(), 100);
        assert!(padded.starts_with("12:345:1700000000123456789:xxx"));
        assert_eq!(Stamp::parse(&padded), Some(STAMP));

        // Exactly one byte short: the separator alone fills it.
        let tight = STAMP.encode(plain.len() + 1);
        assert_eq!(tight, format!("{plain}:"));
        assert_eq!(Stamp::parse(&tight), Some(STAMP));
    }

    #[test]
    fn foreign_texts_are_refused() {
        for text in [
            "",
            "hello",
            "1:2",
            "1:2:x",
            "-1:2:3",
            "1:2:3:padding",
            "1:2:3 ",
        ] {
            assert_eq!(Stamp::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn clock_is_monotonic_and_near_the_wall_clock() {
        let clock = Clock::new();
        let now = clock.now();
        let later = Instant::now() + std::time::Duration::from_millis(5);
        assert!(clock.unix_nanos(later) >= now + 5_000_000);
        let wall = duration_nanos(SystemTime::now().duration_since(UNIX_EPOCH).unwrap());
        assert!(clock.now().abs_diff(wall) < 1_000_000_000);
    }
}
