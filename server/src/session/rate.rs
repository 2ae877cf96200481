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

/// Lets "typing" news through: a "typing" at most [`TypingThrottle::BURST`]
/// times at once and then once a second (a repeat while it still stands,
/// at most once per [`TypingThrottle::EVERY`]), and a "stopped" only after
/// a "typing" that got through. Each relay fans out to the whole room, so
/// alternating the two must not be a way around the limit; a person who
/// clears the box and types again is still shown at once.
#[derive(Debug, Clone)]
pub struct TypingThrottle {
    /// When the last "typing" was let through, while it still stands.
    shown_at: Option<Instant>,
    /// Relays of "typing" left.
    relays: TokenBucket,
}

impl TypingThrottle {
    pub const EVERY: Duration = Duration::from_secs(2);
    pub const BURST: u32 = 4;
    pub const PER_SECOND: u32 = 1;

    pub fn new(now: Instant) -> Self {
        Self {
            shown_at: None,
            relays: TokenBucket::new(Self::BURST, Self::PER_SECOND, now),
        }
    }

    /// Whether to tell the others that typing is `active`.
    pub fn allow(&mut self, active: bool, now: Instant) -> bool {
        if !active {
            return self.shown_at.take().is_some();
        }
        let repeat_too_soon = self
            .shown_at
            .is_some_and(|at| now.saturating_duration_since(at) < Self::EVERY);
        if repeat_too_soon || !self.relays.try_take(now) {
            return false;
        }
        self.shown_at = Some(now);
        true
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
    fn typing_is_repeated_once_per_interval_and_stopping_only_after_it() {
        let start = Instant::now();
        let mut throttle = TypingThrottle::new(start);
        assert!(!throttle.allow(false, start), "nothing to stop");
        assert!(throttle.allow(true, start));
        assert!(!throttle.allow(true, start + Duration::from_millis(1_999)));
        assert!(throttle.allow(true, start + TypingThrottle::EVERY));
        assert!(throttle.allow(false, start + TypingThrottle::EVERY));
        assert!(!throttle.allow(false, start + TypingThrottle::EVERY));
        throttle.reset();
        assert!(!throttle.allow(false, start + TypingThrottle::EVERY));
    }

    #[test]
    fn typing_again_after_clearing_the_box_is_shown_at_once() {
        let start = Instant::now();
        let mut throttle = TypingThrottle::new(start);
        assert!(throttle.allow(true, start));
        assert!(throttle.allow(false, start + Duration::from_millis(300)));
        assert!(throttle.allow(true, start + Duration::from_millis(600)));
    }

    #[test]
    fn alternating_typing_and_stopped_is_held_to_the_rate() {
        let start = Instant::now();
        let mut throttle = TypingThrottle::new(start);
        let relayed = |throttle: &mut TypingThrottle, from: u64, to: u64| {
            (from..to)
                .filter(|&ms| throttle.allow(ms % 2 == 0, start + Duration::from_millis(ms)))
                .count()
        };
        let burst = TypingThrottle::BURST as usize;
        assert_eq!(
            relayed(&mut throttle, 0, 500),
            2 * burst,
            "the burst, each stopped"
        );
        // Then one "typing" (and its "stopped") a second.
        assert_eq!(relayed(&mut throttle, 500, 10_500), 2 * 10);
    }
}
