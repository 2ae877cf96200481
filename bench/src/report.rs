//! What a run found: one report type per mode, printed for people and
//! serialized as JSON for scripts.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

use crate::{client::Errors, histogram::Quantiles, procstat::ServerUsage};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Report {
    Fanout(FanoutReport),
    Idle(IdleReport),
    Storm(StormReport),
    Writes(WritesReport),
}

impl Report {
    /// Whether every message arrived exactly once and nothing failed.
    pub fn is_clean(&self) -> bool {
        match self {
            Self::Fanout(report) => {
                report.gaps == 0
                    && report.duplicates == 0
                    && report.missing == 0
                    && report.wrong_room == 0
                    && report.errors == 0
            }
            Self::Idle(report) => report.errors == 0,
            Self::Writes(report) => report.is_clean(),
            Self::Storm(report) => {
                report.errors == 0
                    && report
                        .rounds
                        .iter()
                        .all(|round| round.received == round.receivers)
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fanout(report) => report.fmt(f),
            Self::Idle(report) => report.fmt(f),
            Self::Storm(report) => report.fmt(f),
            Self::Writes(report) => report.fmt(f),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FanoutReport {
    pub clients: usize,
    pub senders: usize,
    /// `--rooms`: the clients were spread over rooms `bench-0`, ...; `None`:
    /// all in the server's default room.
    pub rooms: Option<usize>,
    /// Clients connected to each server process, in `--addr` order.
    pub servers: Vec<usize>,
    /// Messages per second from each sender.
    pub rate: f64,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub payload_bytes: usize,
    /// Time to open every connection.
    pub connect_secs: f64,
    /// Messages sent that were scheduled inside the measured window.
    pub sent: u64,
    /// A message goes to everyone in its room but its sender: `sent ×
    /// (clients - 1)` without rooms.
    pub expected: u64,
    /// Messages scheduled inside the window that arrived (once).
    pub delivered: u64,
    /// `delivered` per second of the window.
    pub deliveries_per_sec: f64,
    /// From each message's scheduled send time to its arrival.
    pub latency_ms: Quantiles,
    /// How late senders started sending, against their schedule.
    pub send_lag_ms: Quantiles,
    /// Sequence numbers a receiver skipped over (warm-up included).
    pub gaps: u64,
    /// Messages a receiver saw again, or out of order.
    pub duplicates: u64,
    /// Messages never received by the end of the drain.
    pub missing: u64,
    /// Messages (warm-up included) that reached a client of another room
    /// than their sender's, or named another room than the client's.
    pub wrong_room: u64,
    pub errors: u64,
    pub error_kinds: Errors,
    pub server: Option<ServerUsage>,
    pub server_us_per_delivery: Option<PerDelivery>,
    /// Server CPU per message sent in the window.
    pub server_us_per_message: Option<PerDelivery>,
}

/// Server CPU time per delivered message, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerDelivery {
    pub user: f64,
    pub system: f64,
    pub total: f64,
}

impl PerDelivery {
    /// `None` when nothing was delivered.
    pub fn new(usage: &ServerUsage, delivered: u64) -> Option<Self> {
        let per = |secs: f64| secs * 1e6 / delivered as f64;
        (delivered > 0).then(|| Self {
            user: per(usage.cpu_user_secs),
            system: per(usage.cpu_system_secs),
            total: per(usage.cpu_user_secs + usage.cpu_system_secs),
        })
    }
}

impl fmt::Display for FanoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fanout: {} clients", self.clients)?;
        if let Some(rooms) = self.rooms {
            write!(f, " in {rooms} rooms")?;
        }
        if self.servers.len() > 1 {
            let servers: Vec<String> = self.servers.iter().map(ToString::to_string).collect();
            write!(
                f,
                " on {} servers ({})",
                self.servers.len(),
                servers.join(" + ")
            )?;
        }
        writeln!(
            f,
            ", {} senders × {} msg/s, {} s measured after {} s warm-up",
            self.senders, self.rate, self.duration_secs, self.warmup_secs
        )?;
        writeln!(f, "  connect       {:.2} s", self.connect_secs)?;
        writeln!(
            f,
            "  deliveries    {} of {} expected ({:.0}/s), {} messages sent",
            self.delivered, self.expected, self.deliveries_per_sec, self.sent
        )?;
        writeln!(f, "  latency ms    {}", self.latency_ms)?;
        writeln!(f, "  send lag ms   {}", self.send_lag_ms)?;
        write!(
            f,
            "  correctness   {} gaps, {} duplicates, {} missing",
            self.gaps, self.duplicates, self.missing
        )?;
        if self.rooms.is_some() {
            write!(f, ", {} in the wrong room", self.wrong_room)?;
        }
        writeln!(f)?;
        writeln!(f, "  errors        {}", self.error_kinds)?;
        if let Some(server) = &self.server {
            server.fmt(f)?;
        }
        for (what, per) in [
            ("per message ", &self.server_us_per_message),
            ("per delivery", &self.server_us_per_delivery),
        ] {
            if let Some(per) = per {
                writeln!(
                    f,
                    "  {what}  {:.3} µs server CPU ({:.3} user, {:.3} system)",
                    per.total, per.user, per.system
                )?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Quantiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WritesReport {
    pub clients: usize,
    /// Messages per second from each client.
    pub rate: f64,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub payload_bytes: usize,
    /// Time to open every connection.
    pub connect_secs: f64,
    /// Messages sent that were scheduled inside the measured window.
    pub sent: u64,
    /// Of those, the ones acked (stored).
    pub acked: u64,
    /// `acked` per second of the window.
    pub stored_per_sec: f64,
    /// Messages sent, warm-up included.
    pub sent_total: u64,
    /// Of those, the ones acked.
    pub acked_total: u64,
    /// Messages sent (warm-up included) never acked by the end of the drain.
    pub unacked: u64,
    /// Acks of a message already acked, or out of order.
    pub duplicate_acks: u64,
    /// Messages refused with an `error` frame naming their `client_id`.
    pub refused: u64,
    pub refused_by_code: BTreeMap<String, u64>,
    /// From each message's scheduled send time to its ack.
    pub ack_latency_ms: Quantiles,
    /// `sent × (clients - 1)`: a message goes to everyone but its sender.
    pub expected: u64,
    /// Messages scheduled inside the window that arrived (once).
    pub delivered: u64,
    /// `delivered` per second of the window.
    pub deliveries_per_sec: f64,
    /// From each message's scheduled send time to its arrival.
    pub latency_ms: Quantiles,
    /// How late senders started sending, against their schedule.
    pub send_lag_ms: Quantiles,
    /// Sequence numbers a receiver skipped over (warm-up included).
    pub gaps: u64,
    /// Messages a receiver saw again, or out of order.
    pub duplicates: u64,
    /// Messages never received by the end of the drain.
    pub missing: u64,
    /// Acks whose id was not above the same sender's previous ack's.
    pub ack_id_regressions: u64,
    /// Relayed messages whose id was not above the previous one the same
    /// receiver saw.
    pub relay_id_regressions: u64,
    pub errors: u64,
    pub error_kinds: Errors,
    pub server: Option<ServerUsage>,
    /// Server CPU per acked (stored) message.
    pub server_us_per_message: Option<PerDelivery>,
    pub server_us_per_delivery: Option<PerDelivery>,
}

impl WritesReport {
    /// Every message acked once and delivered once to everyone else, ids in
    /// order, nothing refused or failed.
    pub fn is_clean(&self) -> bool {
        self.acked == self.sent
            && self.acked_total == self.sent_total
            && self.unacked == 0
            && self.duplicate_acks == 0
            && self.refused == 0
            && self.gaps == 0
            && self.duplicates == 0
            && self.missing == 0
            && self.ack_id_regressions == 0
            && self.relay_id_regressions == 0
            && self.errors == 0
    }
}

impl fmt::Display for WritesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "writes: {} clients × {} msg/s, {} s measured after {} s warm-up",
            self.clients, self.rate, self.duration_secs, self.warmup_secs
        )?;
        writeln!(f, "  connect       {:.2} s", self.connect_secs)?;
        writeln!(
            f,
            "  stored        {} of {} sent acked ({:.0}/s); all runs: {} of {}, {} unacked, {} acked twice",
            self.acked,
            self.sent,
            self.stored_per_sec,
            self.acked_total,
            self.sent_total,
            self.unacked,
            self.duplicate_acks
        )?;
        write!(f, "  refused       {}", self.refused)?;
        for (code, count) in &self.refused_by_code {
            write!(f, " ({code}: {count})")?;
        }
        writeln!(f)?;
        writeln!(f, "  ack ms        {}", self.ack_latency_ms)?;
        writeln!(
            f,
            "  deliveries    {} of {} expected ({:.0}/s)",
            self.delivered, self.expected, self.deliveries_per_sec
        )?;
        writeln!(f, "  latency ms    {}", self.latency_ms)?;
        writeln!(f, "  send lag ms   {}", self.send_lag_ms)?;
        writeln!(
            f,
            "  correctness   {} gaps, {} duplicates, {} missing",
            self.gaps, self.duplicates, self.missing
        )?;
        writeln!(
            f,
            "  ids           {} acks and {} relayed messages not above the previous one",
            self.ack_id_regressions, self.relay_id_regressions
        )?;
        writeln!(f, "  errors        {}", self.error_kinds)?;
        if let Some(server) = &self.server {
            server.fmt(f)?;
        }
        for (what, per) in [
            ("per message ", &self.server_us_per_message),
            ("per delivery", &self.server_us_per_delivery),
        ] {
            if let Some(per) = per {
                writeln!(
                    f,
                    "  {what}  {:.3} µs server CPU ({:.3} user, {:.3} system)",
                    per.total, per.user, per.system
                )?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub clients: usize,
    pub connect_secs: f64,
    pub hold_secs: f64,
    pub errors: u64,
    pub error_kinds: Errors,
    pub server: Option<ServerUsage>,
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "idle: {} clients held for {} s",
            self.clients, self.hold_secs
        )?;
        writeln!(f, "  connect       {:.2} s", self.connect_secs)?;
        writeln!(f, "  errors        {}", self.error_kinds)?;
        if let Some(server) = &self.server {
            server.fmt(f)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub clients: usize,
    pub connect_secs: f64,
    pub rounds: Vec<Round>,
    /// Median of `last_ms` over the rounds that reached every receiver.
    pub median_last_ms: Option<f64>,
    pub errors: u64,
    pub error_kinds: Errors,
    pub server: Option<ServerUsage>,
}

impl StormReport {
    pub fn new(
        clients: usize,
        connect_secs: f64,
        rounds: Vec<Round>,
        errors: Errors,
        server: Option<ServerUsage>,
    ) -> Self {
        let mut lasts: Vec<f64> = rounds.iter().filter_map(|round| round.last_ms).collect();
        lasts.sort_by(f64::total_cmp);
        let median_last_ms = match lasts.len() {
            0 => None,
            n if n % 2 == 1 => Some(lasts[n / 2]),
            n => Some((lasts[n / 2 - 1] + lasts[n / 2]) / 2.0),
        };
        Self {
            clients,
            connect_secs,
            rounds,
            median_last_ms,
            errors: errors.total(),
            error_kinds: errors,
            server,
        }
    }
}

/// One storm message, from its sending to each receiver's arrival.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub receivers: usize,
    pub received: usize,
    /// Until the last receiver had it; `None` if some never did.
    pub last_ms: Option<f64>,
    /// Of the receivers that got it.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Round {
    /// `latencies` are the receivers' arrival times in nanoseconds after
    /// sending.
    pub fn new(receivers: usize, mut latencies: Vec<u64>) -> Self {
        latencies.sort_unstable();
        let ms = |nanos: u64| nanos as f64 / 1e6;
        let complete = latencies.len() == receivers;
        Self {
            receivers,
            received: latencies.len(),
            last_ms: latencies.last().copied().filter(|_| complete).map(ms),
            p50_ms: percentile(&latencies, 0.50).map(ms),
            p99_ms: percentile(&latencies, 0.99).map(ms),
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], quantile: f64) -> Option<u64> {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

impl fmt::Display for StormReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "storm: 1 sender, {} receivers, {} rounds",
            self.clients - 1,
            self.rounds.len()
        )?;
        writeln!(f, "  connect       {:.2} s", self.connect_secs)?;
        let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
        for (index, round) in self.rounds.iter().enumerate() {
            writeln!(
                f,
                "  round {index:<6}  {}/{} received, last {} ms, p50 {} ms, p99 {} ms",
                round.received,
                round.receivers,
                ms(round.last_ms),
                ms(round.p50_ms),
                ms(round.p99_ms)
            )?;
        }
        writeln!(f, "  median last   {} ms", ms(self.median_last_ms))?;
        writeln!(f, "  errors        {}", self.error_kinds)?;
        if let Some(server) = &self.server {
            server.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.50), Some(50));
        assert_eq!(percentile(&values, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.0), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn an_incomplete_round_has_no_last_arrival_and_no_median_vote() {
        let complete = Round::new(3, vec![3_000_000, 1_000_000, 2_000_000]);
        assert_eq!(complete.last_ms, Some(3.0));
        assert_eq!(complete.p50_ms, Some(2.0));
        let short = Round::new(3, vec![1_000_000]);
        assert_eq!((short.received, short.last_ms), (1, None));

        let report = StormReport::new(
            4,
            0.1,
            vec![
                complete.clone(),
                short,
                Round::new(3, vec![1, 2, 5_000_000]),
            ],
            Errors::default(),
            None,
        );
        assert_eq!(report.median_last_ms, Some(4.0));
        assert!(!Report::Storm(report).is_clean());
    }

    #[test]
    fn json_is_tagged_with_the_mode() {
        let report = Report::Fanout(FanoutReport {
            clients: 6,
            ..FanoutReport::default()
        });
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"], "fanout");
        assert_eq!(json["clients"], 6);
        assert_eq!(json["latency_ms"]["p99"], 0.0);
        assert!(json["server"].is_null());
    }
}
