//! What the modes that send on a fixed schedule share (`fanout`, `writes`):
//! the timeline of a run (warm-up, measured window, catch-up, drain), each
//! sender's schedule, and the send loop.
//!
//! Latency is measured from when a message was *scheduled* to be sent, not
//! from when it was actually sent: a sender held up by a slow server (or a
//! busy generator) sends late but keeps the scheduled stamp, so the delay
//! shows up in the numbers instead of silently thinning out the load. The
//! schedule is driven by tokio's millisecond timer, so sends start up to about
//! a millisecond late even when idle; `send_lag_ms` in the reports shows how
//! late they actually were.

use std::{ops::Range, time::Duration};

use anyhow::Result;
use futures_util::{stream::SplitSink, SinkExt};
use tokio::{
    sync::mpsc,
    time::{sleep_until, timeout_at, Instant},
};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    connect::Ws,
    histogram::ShardedHistogram,
    procstat::{ServerUsage, ServerWatch},
    stamp::Clock,
};

/// Time for every client task to start before the first message is due.
const LEAD: Duration = Duration::from_millis(100);

/// How long past the end of the window senders that fell behind may take to
/// send what they still owe.
const CATCH_UP: Duration = Duration::from_secs(10);

/// When a run sends and measures, and what its clients share to do so.
pub struct Timeline {
    pub clock: Clock,
    /// When the first message is due (the warm-up starts).
    pub start: Instant,
    pub window_start: Instant,
    pub window_end: Instant,
    /// Scheduled times (Unix nanoseconds) of the messages that are measured.
    pub window: Range<u64>,
    /// How late senders started sending, against their schedule.
    pub send_lag: ShardedHistogram,
    /// Cancelled at the end of the drain: every client stops then.
    pub stop: CancellationToken,
}

impl Timeline {
    /// A run starting now (plus a short lead), `warmup` then `duration`.
    pub fn new(warmup: Duration, duration: Duration) -> Self {
        let clock = Clock::new();
        let start = Instant::now() + LEAD;
        let window_start = start + warmup;
        let window_end = window_start + duration;
        Self {
            clock,
            start,
            window_start,
            window_end,
            window: clock.unix_nanos(window_start)..clock.unix_nanos(window_end),
            send_lag: ShardedHistogram::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Sender `k` of `senders`, sending `rate` messages a second from the
    /// start until the end of the window.
    pub fn schedule(&self, k: usize, senders: usize, rate: f64) -> Schedule {
        Schedule::for_sender(k, senders, rate, self.start, self.window_end)
    }

    /// Waits out the warm-up and the window (measuring the server's CPU over
    /// the window), then up to [`CATCH_UP`] for late senders, then `drain`,
    /// and stops every client. `all_sent` ends once every sender is done.
    pub async fn run(
        &self,
        server: &mut ServerWatch,
        connections: usize,
        mut all_sent: mpsc::Receiver<()>,
        drain: Duration,
    ) -> Result<Option<ServerUsage>> {
        tracing::info!(
            secs = (self.window_start - self.start).as_secs_f64(),
            "warming up"
        );
        sleep_until(self.window_start).await;
        server.start_cpu()?;
        tracing::info!(
            secs = (self.window_end - self.window_start).as_secs_f64(),
            "measuring"
        );
        sleep_until(self.window_end).await;
        let usage = server.finish(connections)?;

        if timeout_at(self.window_end + CATCH_UP, all_sent.recv())
            .await
            .is_err()
        {
            tracing::warn!(
                "senders still behind schedule {CATCH_UP:?} after the window; stopping them after the drain"
            );
        }
        tokio::time::sleep(drain).await;
        self.stop.cancel();
        Ok(usage)
    }

    /// Sends one sender's messages at their scheduled times, or at once when
    /// running late: `frame(seq, scheduled_unix_nanos)` makes each one.
    pub async fn send_on_schedule(
        &self,
        sink: &mut SplitSink<Ws, Message>,
        index: usize,
        role: SenderRole,
        mut frame: impl FnMut(u64, u64) -> String,
    ) -> Sent {
        let mut sent = Sent::default();
        for seq in 0.. {
            let Some(due) = role.schedule.due(seq) else {
                break;
            };
            tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                () = sleep_until(due) => {}
            }
            let lag = Instant::now().saturating_duration_since(due);
            self.send_lag
                .record(index, u64::try_from(lag.as_micros()).unwrap_or(u64::MAX));
            let scheduled = self.clock.unix_nanos(due);
            let frame = Message::text(frame(seq, scheduled));
            let result = tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                result = sink.send(frame) => result,
            };
            if result.is_err() {
                sent.failed = true;
                break;
            }
            sent.total += 1;
            if self.window.contains(&scheduled) {
                sent.in_window += 1;
            }
        }
        drop(role.sending);
        sent
    }
}

/// What a sending client holds.
pub struct SenderRole {
    pub schedule: Schedule,
    /// Dropped when this sender is done.
    pub sending: mpsc::Sender<()>,
}

/// When one sender's messages are due: message `seq` at
/// `first + seq / rate`, for as long as that is before `end`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    first: Instant,
    rate: f64,
    end: Instant,
}

impl Schedule {
    /// Sender `k` of `senders` starts `k / senders` of an interval after
    /// `start`, so the senders take turns evenly instead of all sending at
    /// the same instant.
    pub fn for_sender(k: usize, senders: usize, rate: f64, start: Instant, end: Instant) -> Self {
        let offset = k as f64 / senders as f64 / rate;
        Self {
            first: start + Duration::from_secs_f64(offset),
            rate,
            end,
        }
    }

    /// Computed from `first` each time, so rounding never accumulates.
    pub fn due(&self, seq: u64) -> Option<Instant> {
        let after = Duration::try_from_secs_f64(seq as f64 / self.rate).ok()?;
        let due = self.first.checked_add(after)?;
        (due < self.end).then_some(due)
    }
}

/// How many messages one sender got out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub total: u64,
    pub in_window: u64,
    pub failed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due_times(schedule: &Schedule) -> Vec<Instant> {
        (0..).map_while(|seq| schedule.due(seq)).collect()
    }

    #[test]
    fn senders_are_spread_evenly_over_one_interval() {
        let start = Instant::now();
        let end = start + Duration::from_secs(1);
        let first = Schedule::for_sender(0, 4, 10.0, start, end);
        let third = Schedule::for_sender(2, 4, 10.0, start, end);
        assert_eq!(first.due(0), Some(start));
        assert_eq!(third.due(0), Some(start + Duration::from_millis(50)));
        assert_eq!(third.due(1), Some(start + Duration::from_millis(150)));
        assert_eq!(due_times(&first).len(), 10);
        assert_eq!(due_times(&third).len(), 10);
    }

    #[test]
    fn fractional_rates_and_the_end_are_respected() {
        let start = Instant::now();
        let end = start + Duration::from_secs(5);
        let slow = Schedule::for_sender(0, 1, 0.5, start, end);
        let times = due_times(&slow);
        assert_eq!(times.len(), 3);
        assert_eq!(times[2], start + Duration::from_secs(4));
        let none = Schedule::for_sender(0, 1, 1.0, start, start);
        assert!(due_times(&none).is_empty());
    }
}
