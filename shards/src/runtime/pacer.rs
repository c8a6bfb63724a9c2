//! When a shard's loop wakes: interrupt mitigation in the NAPI style.
//!
//! An idle shard sleeps until a socket is readable or its doorbell rings, so
//! the first datagram after a quiet spell is handled at once. Each such wake
//! costs the executor's whole park/unpark path (on a VM: IPIs, timer
//! reprogramming, io_uring enters), far more than the datagram itself. So
//! once a shard has seen work it stops waiting for readiness: its loop polls
//! SIP, inbox and media on a grid of beats (`interval` apart; the media
//! beat of an idle-SIP shard lands on the same instants) and takes in
//! batches whatever arrived meanwhile. After `GRACE_BEATS` beats without
//! work it goes back to waiting for readiness.
//!
//! The cost is at most one interval of added latency per hop while busy, and
//! at most `1 / interval` wakes per second however heavy the load.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Beats without work after which the shard waits for readiness again.
pub(super) const GRACE_BEATS: u32 = 16;

/// The shard's beat grid and whether it is polling on it.
pub(super) struct Pacer {
    interval: Duration,
    epoch: Instant,
    last_work: Cell<Option<Instant>>,
}

impl Pacer {
    /// `interval` zero: never poll, always wait for readiness.
    pub(super) fn new(interval: Duration, epoch: Instant) -> Pacer {
        Pacer {
            interval,
            epoch,
            last_work: Cell::new(None),
        }
    }

    /// The loop handled something at `now`.
    pub(super) fn saw_work(&self, now: Instant) {
        if !self.interval.is_zero() {
            self.last_work.set(Some(now));
        }
    }

    /// Whether the loop should poll on the beat instead of waiting for
    /// readiness: work was seen within the last `GRACE_BEATS` beats.
    pub(super) fn polling(&self, now: Instant) -> bool {
        match self.last_work.get() {
            Some(t) => now.saturating_duration_since(t) < self.interval * GRACE_BEATS,
            None => false,
        }
    }

    /// The beat period; `fallback` when the pacer never polls.
    pub(super) fn interval_or(&self, fallback: Duration) -> Duration {
        if self.interval.is_zero() {
            fallback
        } else {
            self.interval
        }
    }

    /// How long from `now` until the first beat of a grid of `period` that
    /// is at least `at_least` away (never zero).
    pub(super) fn until_beat(
        &self,
        now: Instant,
        period: Duration,
        at_least: Duration,
    ) -> Duration {
        let period_ns = period.as_nanos().max(1);
        let target = now.saturating_duration_since(self.epoch) + at_least;
        let target_ns = target.as_nanos();
        // The first multiple of the period strictly after `target`, unless
        // `target` is itself on a beat and some delay was asked for.
        let beats = if target_ns.is_multiple_of(period_ns) && !at_least.is_zero() {
            target_ns / period_ns
        } else {
            target_ns / period_ns + 1
        };
        let beat_ns = beats.saturating_mul(period_ns);
        let wait_ns = beat_ns.saturating_sub(now.saturating_duration_since(self.epoch).as_nanos());
        Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_idle_shard_waits_for_readiness() {
        let t0 = Instant::now();
        let p = Pacer::new(ms(1), t0);
        assert!(!p.polling(t0));
        assert!(!p.polling(t0 + ms(5)));
    }

    #[test]
    fn work_starts_polling_until_the_grace_runs_out() {
        let t0 = Instant::now();
        let p = Pacer::new(ms(1), t0);
        p.saw_work(t0 + ms(3));
        assert!(p.polling(t0 + ms(3)));
        assert!(p.polling(t0 + ms(3) + ms(u64::from(GRACE_BEATS)) - Duration::from_nanos(1)));
        assert!(!p.polling(t0 + ms(3) + ms(u64::from(GRACE_BEATS))));
        // More work extends it.
        p.saw_work(t0 + ms(10));
        assert!(p.polling(t0 + ms(20)));
    }

    #[test]
    fn a_zero_interval_never_polls() {
        let t0 = Instant::now();
        let p = Pacer::new(Duration::ZERO, t0);
        p.saw_work(t0);
        assert!(!p.polling(t0));
        assert_eq!(p.interval_or(ms(1)), ms(1));
    }

    #[test]
    fn every_task_lands_on_the_same_beat() {
        let t0 = Instant::now();
        let p = Pacer::new(ms(1), t0);
        let us = Duration::from_micros;
        // Two tasks asking at different moments of the same beat wake together.
        let a = t0 + us(5_100);
        let b = t0 + us(5_950);
        assert_eq!(a + p.until_beat(a, ms(1), Duration::ZERO), t0 + ms(6));
        assert_eq!(b + p.until_beat(b, ms(1), Duration::ZERO), t0 + ms(6));
        // Exactly on a beat: the next one, never zero.
        let c = t0 + ms(7);
        assert_eq!(p.until_beat(c, ms(1), Duration::ZERO), ms(1));
        // A longer wait rounds up to a beat of the grid.
        assert_eq!(a + p.until_beat(a, ms(1), ms(20)), t0 + ms(26));
        assert_eq!(c + p.until_beat(c, ms(1), ms(20)), t0 + ms(27));
        // A coarser grid (media) shares the finer grid's instants.
        assert_eq!(a + p.until_beat(a, ms(2), Duration::ZERO), t0 + ms(6));
    }
}
