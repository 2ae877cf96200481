//! How fast one client network may make requests: a token bucket per
//! [`ClientNet`] for HTTP requests of every kind, and another for WebSocket
//! handshakes, which cost far more (a task, a join, reads of the store).
//! The caps on open connections do not bound this: a client can open and
//! close connections, or send request after request on one, as fast as
//! the network lets it.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{ClientNet, Refusal};
use crate::{
    lock,
    session::{RateLimit, TokenBucket},
};

/// Client networks each rate keeps a bucket for, at most. A bucket is
/// 64 bytes with its key, and this many fit a hash table of 65,536 slots:
/// about 4 MiB for each of the two rates, however many addresses a
/// hostile client rotates through.
pub const MAX_TRACKED: usize = 50_000;

/// The request and handshake rates of every client network.
pub struct RequestRates {
    requests: AddressRate,
    handshakes: AddressRate,
}

impl RequestRates {
    pub fn new(requests: RateLimit, handshakes: RateLimit) -> Self {
        Self {
            requests: AddressRate::new(requests, MAX_TRACKED),
            handshakes: AddressRate::new(handshakes, MAX_TRACKED),
        }
    }

    /// Counts a request from `client`, and if it is a WebSocket handshake
    /// counts that too; refused if either rate is exceeded.
    pub fn check(&self, client: ClientNet, handshake: bool) -> Result<(), Refusal> {
        let now = Instant::now();
        if !self.requests.try_take(client, now) {
            return Err(Refusal::RequestRate);
        }
        if handshake && !self.handshakes.try_take(client, now) {
            return Err(Refusal::HandshakeRate);
        }
        Ok(())
    }
}

/// One rate, a bucket per client network, for at most `capacity` of them.
struct AddressRate {
    limit: RateLimit,
    /// How long an unused bucket takes to fill up: one left alone that long
    /// is as good as a new one, and can be forgotten.
    refill: Duration,
    capacity: usize,
    buckets: Mutex<HashMap<ClientNet, Tracked>>,
}

struct Tracked {
    bucket: TokenBucket,
    /// When the bucket was last used.
    last: Instant,
}

impl AddressRate {
    fn new(limit: RateLimit, capacity: usize) -> Self {
        Self {
            refill: Duration::from_secs_f64(f64::from(limit.burst) / f64::from(limit.per_second)),
            limit,
            capacity,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn try_take(&self, client: ClientNet, now: Instant) -> bool {
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= self.capacity && !buckets.contains_key(&client) {
            self.make_room(&mut buckets, now);
        }
        let tracked = buckets.entry(client).or_insert_with(|| Tracked {
            bucket: TokenBucket::new(self.limit.burst, self.limit.per_second, now),
            last: now,
        });
        tracked.last = now;
        tracked.bucket.try_take(now)
    }

    /// Forgets the full buckets; if that leaves more than three quarters of
    /// the capacity (that many networks busy within one refill time), the
    /// least recently used too, down to three quarters. Those start again
    /// with a full bucket: only a client with more networks than the
    /// capacity gains from it, and the connection caps still hold it. A
    /// quarter of the capacity at least is free after each sweep, so
    /// sweeping costs O(1) per new network, amortised.
    fn make_room(&self, buckets: &mut HashMap<ClientNet, Tracked>, now: Instant) {
        buckets.retain(|_, tracked| now.saturating_duration_since(tracked.last) < self.refill);
        let keep = self.capacity * 3 / 4;
        if buckets.len() > keep {
            let mut lasts: Vec<Instant> = buckets.values().map(|tracked| tracked.last).collect();
            let forget = lasts.len() - keep;
            let (_, &mut newest_forgotten, _) = lasts.select_nth_unstable(forget - 1);
            buckets.retain(|_, tracked| tracked.last > newest_forgotten);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        lock(&self.buckets).len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn v4(n: u32) -> ClientNet {
        ClientNet::V4(Ipv4Addr::from_bits(n))
    }

    const LIMIT: RateLimit = RateLimit {
        burst: 4,
        per_second: 2,
    };

    #[test]
    fn each_network_has_its_own_burst_then_its_rate() {
        let rate = AddressRate::new(LIMIT, 100);
        let start = Instant::now();
        assert!((0..4).all(|_| rate.try_take(v4(1), start)));
        assert!(!rate.try_take(v4(1), start));
        assert!((0..4).all(|_| rate.try_take(v4(2), start)));
        assert!(!rate.try_take(v4(1), start + Duration::from_millis(499)));
        assert!(rate.try_take(v4(1), start + Duration::from_millis(500)));
        assert!(!rate.try_take(v4(1), start + Duration::from_millis(500)));
    }

    #[test]
    fn requests_and_handshakes_are_counted_apart_and_a_handshake_is_both() {
        let rates = RequestRates::new(
            RateLimit {
                burst: 2,
                per_second: 1,
            },
            RateLimit {
                burst: 1,
                per_second: 1,
            },
        );
        let client = v4(1);
        assert_eq!(rates.check(client, true), Ok(()));
        assert_eq!(rates.check(client, true), Err(Refusal::HandshakeRate));
        // The refused handshake was a request all the same.
        assert_eq!(rates.check(client, false), Err(Refusal::RequestRate));
        assert_eq!(rates.check(v4(2), true), Ok(()));
    }

    #[test]
    fn past_the_capacity_full_buckets_are_forgotten_first() {
        let rate = AddressRate::new(LIMIT, 8);
        let start = Instant::now();
        for n in 1..8 {
            assert!(rate.try_take(v4(n), start));
        }
        // A network that has just used its whole burst; the others are
        // full again by now.
        let now = start + rate.refill;
        assert!((0..4).all(|_| rate.try_take(v4(0), now)));
        assert_eq!(rate.tracked(), 8);
        assert!(rate.try_take(v4(100), now));
        // Only the busy network and the new one are left, and the busy
        // one is still held to its rate.
        assert_eq!(rate.tracked(), 2);
        assert!(!rate.try_take(v4(0), now));
    }

    #[test]
    fn past_the_capacity_with_every_bucket_busy_the_least_recent_quarter_goes() {
        let rate = AddressRate::new(LIMIT, 8);
        let start = Instant::now();
        for n in 0..8 {
            let at = start + Duration::from_millis(u64::from(n));
            assert!((0..4).all(|_| rate.try_take(v4(n), at)));
        }
        let now = start + Duration::from_millis(10);
        assert!(rate.try_take(v4(100), now));
        assert_eq!(rate.tracked(), 7, "three quarters kept, and the new one");
        // The rest are still held; the two used longest ago start over.
        assert!((2..8).all(|n| !rate.try_take(v4(n), now)));
        assert!(rate.try_take(v4(0), now));
    }

    #[test]
    fn however_many_networks_come_the_map_stays_under_its_capacity() {
        let rate = AddressRate::new(LIMIT, 1_000);
        let now = Instant::now();
        for n in 0..100_000 {
            rate.try_take(v4(n), now);
            assert!(rate.tracked() <= 1_000);
        }
        assert!(std::mem::size_of::<(ClientNet, Tracked)>() <= 64);
    }
}
