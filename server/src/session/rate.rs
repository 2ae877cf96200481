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

/// Lets "typing" news through at most once per `every`, and a "stopped"
/// only after a "typing" that got through.
#[derive(Debug, Clone, Default)]
pub struct TypingThrottle {
    /// When the last "typing" was let through, while it still stands.
    shown_at: Option<Instant>,
}

impl TypingThrottle {
    pub const EVERY: Duration = Duration::from_secs(2);

    /// Whether to tell the others that typing is `active`.
    pub fn allow(&mut self, active: bool, now: Instant) -> bool {
        match (active, self.shown_at) {
            (true, Some(at)) if now.saturating_duration_since(at) < Self::EVERY => false,
            (true, _) => {
                self.shown_at = Some(now);
                true
            }
            (false, shown) => {
                self.shown_at = None;
                shown.is_some()
            }
        }
    }

    /// A message was sent: the others stop showing "typing" by themselves.
    pub fn reset(&mut self) {
        self.shown_at = None;
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
        assert!(throttle.allow(true, start + TypingThrottle::EVERY));
        throttle.reset();
        assert!(!throttle.allow(false, start + TypingThrottle::EVERY));
    }
}
