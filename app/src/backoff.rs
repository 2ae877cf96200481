//! When to try connecting again: capped exponential backoff with full jitter.
//!
//! Jitter spreads the reconnections of many pages after a server restart
//! over the whole window instead of having them all arrive at once. The
//! backoff only starts over once a connection has *stayed* open: a server
//! that accepts and then drops every connection at once must not be hammered
//! at the shortest delay forever.

use std::time::Duration;

/// The shortest wait, and the whole wait before the second attempt.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// How long a connection must have stayed open for the backoff to start over.
pub const STABLE_AFTER: Duration = Duration::from_secs(5);

/// The reconnection policy; `random` yields numbers in `0.0..1.0`.
#[derive(Debug, Clone)]
pub struct Backoff<R> {
    /// Failed attempts since the last stable connection.
    failures: u32,
    random: R,
}

impl<R: FnMut() -> f64> Backoff<R> {
    pub fn new(random: R) -> Self {
        Self {
            failures: 0,
            random,
        }
    }

    /// How long to wait before the next attempt, after an attempt that
    /// failed or a connection that closed: anywhere from [`FIRST_DELAY`] to a
    /// ceiling that doubles with every failure, up to [`MAX_DELAY`].
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = FIRST_DELAY
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_DELAY);
        self.failures = self.failures.saturating_add(1);
        // Whole milliseconds: float Durations bring panicking conversions
        // into the page's wasm.
        let spread = (ceiling - FIRST_DELAY).as_millis() as f64;
        let jitter = (spread * (self.random)().clamp(0.0, 1.0)) as u64;
        FIRST_DELAY + Duration::from_millis(jitter)
    }

    /// A connection closed after being open for `open_for`.
    pub fn closed_after(&mut self, open_for: Duration) {
        if open_for >= STABLE_AFTER {
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(backoff: &mut Backoff<impl FnMut() -> f64>, n: usize) -> Vec<Duration> {
        (0..n).map(|_| backoff.next_delay()).collect()
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(|| 1.0);
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(
            delays(&mut backoff, 8),
            [
                ms(500),
                ms(1_000),
                ms(2_000),
                ms(4_000),
                ms(8_000),
                MAX_DELAY,
                MAX_DELAY,
                MAX_DELAY
            ]
        );
        // Many more failures neither overflow nor pass the cap.
        assert_eq!(delays(&mut backoff, 100).last(), Some(&MAX_DELAY));
    }

    #[test]
    fn delays_are_spread_between_the_first_delay_and_the_ceiling() {
        let mut low = Backoff::new(|| 0.0);
        assert!(delays(&mut low, 10).iter().all(|&d| d == FIRST_DELAY));

        let mut half = Backoff::new(|| 0.5);
        let third = delays(&mut half, 3)[2];
        assert_eq!(third, Duration::from_millis(1_250));
    }

    #[test]
    fn only_a_connection_that_stayed_open_starts_the_backoff_over() {
        let mut backoff = Backoff::new(|| 1.0);
        delays(&mut backoff, 4);
        // Accepted, then closed at once: keep backing off.
        backoff.closed_after(Duration::from_millis(50));
        assert_eq!(backoff.next_delay(), Duration::from_secs(8));
        backoff.closed_after(STABLE_AFTER);
        assert_eq!(backoff.next_delay(), FIRST_DELAY);
    }
}
