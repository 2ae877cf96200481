//! Latency histograms that thousands of client tasks record into at once.

use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency recorded as itself, in microseconds (60 s); anything
/// slower is recorded as 60 s.
const MAX_MICROS: u64 = 60_000_000;

/// Histogram shards per CPU: enough that tasks on different threads rarely
/// wait for the same lock.
const SHARDS_PER_CPU: usize = 4;

/// A microsecond-resolution HDR histogram split into a few mutex-guarded
/// shards.
///
/// One histogram per client would cost about 0.25 MB each, gigabytes for
/// 10,000 clients; a single shared one would make every receiver wait on one
/// lock. A handful of shards, merged at the end, avoids both.
pub struct ShardedHistogram {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

impl ShardedHistogram {
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let shards = (0..cpus * SHARDS_PER_CPU)
            .map(|_| {
                let histogram = Histogram::new_with_max(MAX_MICROS, 3)
                    .expect("1 µs to 60 s at 3 significant digits is a valid range");
                Mutex::new(histogram)
            })
            .collect();
        Self { shards }
    }

    /// Records one value in microseconds. Callers spread themselves over the
    /// shards by passing something different each, such as their index.
    pub fn record(&self, shard: usize, micros: u64) {
        self.shards[shard % self.shards.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros);
    }

    pub fn quantiles(&self) -> Quantiles {
        let mut merged = Histogram::new_with_max(MAX_MICROS, 3).expect("same bounds as the shards");
        for shard in &*self.shards {
            merged
                .add(&*shard.lock().unwrap_or_else(PoisonError::into_inner))
                .expect("shards share their bounds");
        }
        Quantiles::of(&merged)
    }
}

impl Default for ShardedHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Quantiles of a microsecond histogram, in milliseconds. All zero when
/// nothing was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Quantiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_one_distribution() {
        let histogram = ShardedHistogram::new();
        for micros in 1..=1_000 {
            histogram.record(micros as usize, micros);
        }
        let quantiles = histogram.quantiles();
        assert!((quantiles.p50 - 0.5).abs() < 0.01, "{quantiles:?}");
        assert!((quantiles.p99 - 0.99).abs() < 0.01, "{quantiles:?}");
        assert!((quantiles.max - 1.0).abs() < 0.01, "{quantiles:?}");
    }

    #[test]
    fn slower_than_the_range_saturates() {
        let histogram = ShardedHistogram::new();
        histogram.record(0, u64::MAX);
        assert!(histogram.quantiles().max >= 60_000.0);
        assert_eq!(ShardedHistogram::new().quantiles(), Quantiles::default());
    }
}
