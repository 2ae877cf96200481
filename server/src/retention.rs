//! Message retention: with `--retention`, messages older than that are
//! deleted from the store, a little at a time, until the server stops.
//!
//! Nothing else changes: ids are never reused, so a page, a `history`
//! request or a resume that asks for ids that are gone gets what is left
//! (a `history` page then says it is the beginning).

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// How often old messages are looked for: a tenth of the retention period,
/// between a second and a minute, so nothing stays much past its time.
pub fn interval(age: Duration) -> Duration {
    (age / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Deletes what is older than `age`, every [`interval`], until `shutdown`.
pub async fn run(store: Store, age: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(interval(age));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let cutoff = SystemTime::now() - age;
        match store.forget_before(cutoff).await {
            Ok(0) => {}
            Ok(forgotten) => {
                tracing::info!(forgotten, "deleted messages past the retention period")
            }
            Err(error) => {
                tracing::warn!(%error, "could not delete old messages; trying again later")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_messages_are_looked_for_a_tenth_of_the_period_apart_within_bounds() {
        assert_eq!(interval(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(interval(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(
            interval(Duration::from_secs(30 * 86_400)),
            Duration::from_secs(60)
        );
    }
}
