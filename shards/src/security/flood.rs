//! The flood limit: a token bucket per source IP (rate `per_sec`, burst
//! twice that). Checked before a request is parsed, so a flood from one
//! address costs a hash lookup per datagram, not a transaction. The table
//! is bounded: when it is full, buckets that are full again (their source
//! went quiet) are forgotten; a source that finds no room is limited as if
//! it had a bucket of its own, which an attacker with many addresses
//! cannot use to starve known ones.

use std::collections::HashMap;
use std::net::IpAddr;

/// At most this many sources are tracked per shard.
pub const MAX_SOURCES: usize = 65_536;

struct Bucket {
    /// Tokens, in thousandths.
    milli: u64,
    at_ms: u64,
}

/// Token buckets by source IP.
pub struct FloodLimiter {
    per_sec: u64,
    buckets: HashMap<IpAddr, Bucket>,
    /// The bucket shared by sources that found no room in the table.
    overflow: Bucket,
}

impl FloodLimiter {
    /// `per_sec` requests a second per source; 0 = no limit.
    pub fn new(per_sec: u32) -> FloodLimiter {
        let per_sec = u64::from(per_sec);
        FloodLimiter {
            per_sec,
            buckets: HashMap::new(),
            overflow: Bucket {
                milli: per_sec.saturating_mul(2_000),
                at_ms: 0,
            },
        }
    }

    pub fn is_off(&self) -> bool {
        self.per_sec == 0
    }

    fn burst_milli(&self) -> u64 {
        self.per_sec.saturating_mul(2_000)
    }

    /// May a request from `ip` go on at `now_ms`? Takes a token if so.
    pub fn admit(&mut self, now_ms: u64, ip: IpAddr) -> bool {
        if self.per_sec == 0 {
            return true;
        }
        let (rate, burst) = (self.per_sec, self.burst_milli());
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_SOURCES {
            self.buckets
                .retain(|_, b| refill(b, now_ms, rate, burst) < burst);
        }
        let bucket = if self.buckets.len() < MAX_SOURCES || self.buckets.contains_key(&ip) {
            self.buckets.entry(ip).or_insert(Bucket {
                milli: burst,
                at_ms: now_ms,
            })
        } else {
            &mut self.overflow
        };
        refill(bucket, now_ms, rate, burst);
        if bucket.milli >= 1_000 {
            bucket.milli -= 1_000;
            true
        } else {
            false
        }
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// Adds the tokens earned since the bucket's last look; returns its level.
fn refill(b: &mut Bucket, now_ms: u64, per_sec: u64, burst: u64) -> u64 {
    let earned = now_ms.saturating_sub(b.at_ms).saturating_mul(per_sec);
    b.milli = b.milli.saturating_add(earned).min(burst);
    b.at_ms = b.at_ms.max(now_ms);
    b.milli
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_of_twice_the_rate_then_the_rate() {
        let mut f = FloodLimiter::new(10);
        let a = ip("192.0.2.1");
        let passed = (0..100).filter(|_| f.admit(0, a)).count();
        assert_eq!(passed, 20, "the burst");
        assert!(!f.admit(50, a));
        assert!(f.admit(100, a), "one token per 100 ms");
        assert!(!f.admit(150, a));
        // Over ten seconds at 1000/s: about rate * 10 pass.
        let passed = (0..10_000u64).filter(|i| f.admit(1_000 + i, a)).count();
        assert!((100..=125).contains(&passed), "{passed}");
        // Another source has its own bucket.
        assert!(f.admit(11_000, ip("192.0.2.2")));
    }

    #[test]
    fn zero_is_no_limit() {
        let mut f = FloodLimiter::new(0);
        assert!((0..10_000).all(|_| f.admit(0, ip("192.0.2.1"))));
        assert_eq!(f.tracked(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_quiet_sources_make_room() {
        let mut f = FloodLimiter::new(1);
        for i in 0..MAX_SOURCES as u32 {
            let a = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            assert!(f.admit(0, a));
        }
        assert_eq!(f.tracked(), MAX_SOURCES);
        // Full: a new source shares the overflow bucket (burst 2).
        let newcomer = ip("192.0.2.9");
        assert!(f.admit(0, newcomer));
        assert!(f.admit(0, ip("192.0.2.10")));
        assert!(!f.admit(0, ip("192.0.2.11")));
        assert_eq!(f.tracked(), MAX_SOURCES);
        // Once the others went quiet (buckets full again), they make room.
        assert!(f.admit(10_000, newcomer));
        assert!(f.tracked() < MAX_SOURCES);
    }
}
