//! Token buckets: how fast a client may send.

use std::time::{Duration, Instant};

/// Allows bursts of up to `burst` events, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f32,
    burst: f32,
    per_second: f32,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_second: u32, now: Instant) -> Self {
        Self {
            tokens: burst as f32,
            burst: burst as f32,
            per_second: per_second as f32,
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f32() * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Lets "typing" news through at most once per [`Self::EVERY`], and a
/// "stopped" only after a "typing" that got through. A "stopped" does not
/// open the way for the next "typing": alternating the two would otherwise
/// be relayed without limit, a fan-out to the whole room for each frame.
/// Sending a message does: the others clear "typing" when it arrives, so
/// typing again is news (and messages have their own rate limit).
#[derive(Debug, Clone, Default)]
pub struct TypingThrottle {
    /// When the last "typing" was let through, until a message is sent.
    shown_at: Option<Instant>,
    /// That "typing" still stands: no "stopped" followed it yet.
    showing: bool,
}

impl TypingThrottle {
    pub const EVERY: Duration = Duration::from_secs(2);

    /// Whether to tell the others that typing is `active`.
    pub fn allow(&mut self, active: bool, now: Instant) -> bool {
        if !active {
            return std::mem::take(&mut self.showing);
        }
        match self.shown_at {
            Some(at) if now.saturating_duration_since(at) < Self::EVERY => false,
            _ => {
                self.shown_at = Some(now);
                self.showing = true;
                true
            }
        }
    }

    /// A message was sent: the others stop showing "typing" by themselves.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3, 2, start);
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        assert!(!bucket.try_take(start + Duration::from_millis(400)));
        assert!(bucket.try_take(start + Duration::from_millis(500)));
        // Idle time refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn typing_is_let_through_once_per_interval_and_stopping_only_after_it() {
        let start = Instant::now();
        let mut throttle = TypingThrottle::default();
        assert!(!throttle.allow(false, start), "nothing to stop");
        assert!(throttle.allow(true, start));
        assert!(!throttle.allow(true, start + Duration::from_millis(1_999)));
        assert!(throttle.allow(true, start + TypingThrottle::EVERY));
        assert!(throttle.allow(false, start + TypingThrottle::EVERY));
        assert!(!throttle.allow(false, start + TypingThrottle::EVERY));
        throttle.reset();
        assert!(!throttle.allow(false, start + TypingThrottle::EVERY));
        assert!(
            throttle.allow(true, start + TypingThrottle::EVERY),
            "news after a message"
        );
    }

    #[test]
    fn alternating_typing_and_stopped_gets_one_of_each_per_interval() {
        let start = Instant::now();
        let mut throttle = TypingThrottle::default();
        let relayed = (0..1_000)
            .filter(|&i| throttle.allow(i % 2 == 0, start + Duration::from_millis(i)))
            .count();
        assert_eq!(relayed, 2, "one typing and one stopped in the first second");
        let later = start + TypingThrottle::EVERY;
        assert!(throttle.allow(true, later));
        assert!(throttle.allow(false, later));
        assert!(!throttle.allow(true, later));
    }
}
