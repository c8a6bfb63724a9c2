//! When a shard's loop wakes: interrupt mitigation in the NAPI style.
//!
//! An idle shard sleeps until a socket is readable or its doorbell rings, so
//! the first datagram after a quiet spell is handled at once. Each such wake
//! costs the executor's whole park/unpark path (on a VM: IPIs, timer
//! reprogramming, io_uring enters), far more than the datagram itself. So
//! once a shard has seen work it stops waiting for readiness: its loop polls
//! SIP, inbox and media on a grid of beats (`interval` apart; the media
//! beat of an idle-SIP shard lands on the same instants) and takes in
//! batches whatever arrived meanwhile. It does so only while beats pay:
//! while the work of the last `GRACE_BEATS` beats would give each beat at
//! least `MIN_BATCH` items. Below that rate a wake per readiness event costs
//! no more wakes than the beats would, and adds no delay, so a lightly
//! loaded shard answers at once. After `GRACE_BEATS` beats without work it
//! waits for readiness in any case.
//!
//! The cost is at most one interval of added latency per hop while busy, and
//! at most `1 / interval` wakes per second however heavy the load.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Beats without work after which the shard waits for readiness again.
pub(super) const GRACE_BEATS: u32 = 16;
/// Items per beat, on average over the grace window, below which the
/// shard waits for readiness instead of polling on the beat.
pub(super) const MIN_BATCH: u32 = 2;

/// The shard's beat grid and whether it is polling on it.
pub(super) struct Pacer {
    interval: Duration,
    epoch: Instant,
    last_work: Cell<Option<Instant>>,
    /// Items counted in the current grace window (from `window_start`) and
    /// in the one before it.
    window_start: Cell<Instant>,
    items: Cell<u32>,
    items_before: Cell<u32>,
}

impl Pacer {
    /// `interval` zero: never poll, always wait for readiness.
    pub(super) fn new(interval: Duration, epoch: Instant) -> Pacer {
        Pacer {
            interval,
            epoch,
            last_work: Cell::new(None),
            window_start: Cell::new(epoch),
            items: Cell::new(0),
            items_before: Cell::new(0),
        }
    }

    fn grace(&self) -> Duration {
        self.interval * GRACE_BEATS
    }

    /// Starts a new window when the current one is over (two when it is
    /// long over: nothing was counted in between).
    fn roll(&self, now: Instant) {
        let since = now.saturating_duration_since(self.window_start.get());
        if since < self.grace() {
            return;
        }
        let before = if since < self.grace() * 2 {
            self.items.get()
        } else {
            0
        };
        self.items_before.set(before);
        self.items.set(0);
        self.window_start.set(now);
    }

    /// The loop handled `items` things at `now`.
    pub(super) fn saw_work(&self, now: Instant, items: usize) {
        if self.interval.is_zero() {
            return;
        }
        self.last_work.set(Some(now));
        self.roll(now);
        let items = u32::try_from(items).unwrap_or(u32::MAX);
        self.items.set(self.items.get().saturating_add(items));
    }

    /// Whether the loop should poll on the beat instead of waiting for
    /// readiness: work was seen within the last `GRACE_BEATS` beats, and
    /// enough of it that beats batch ([`MIN_BATCH`] items a beat over the
    /// current and the previous window).
    pub(super) fn polling(&self, now: Instant) -> bool {
        let recent = self
            .last_work
            .get()
            .is_some_and(|t| now.saturating_duration_since(t) < self.grace());
        if !recent {
            return false;
        }
        self.roll(now);
        let seen = self.items.get().saturating_add(self.items_before.get());
        seen >= GRACE_BEATS * MIN_BATCH
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

    /// Enough work in one pass that beats batch: polling at once.
    const BUSY: usize = (GRACE_BEATS * MIN_BATCH) as usize;

    #[test]
    fn work_starts_polling_until_the_grace_runs_out() {
        let t0 = Instant::now();
        let p = Pacer::new(ms(1), t0);
        p.saw_work(t0 + ms(3), BUSY);
        assert!(p.polling(t0 + ms(3)));
        assert!(p.polling(t0 + ms(3) + ms(u64::from(GRACE_BEATS)) - Duration::from_nanos(1)));
        assert!(!p.polling(t0 + ms(3) + ms(u64::from(GRACE_BEATS))));
        // More work extends it.
        p.saw_work(t0 + ms(10), BUSY);
        assert!(p.polling(t0 + ms(20)));
    }

    #[test]
    fn a_light_load_keeps_waiting_for_readiness() {
        let t0 = Instant::now();
        let p = Pacer::new(ms(1), t0);
        // One datagram every 2 ms: half an item a beat, for a whole second.
        for i in 0..500 {
            let t = t0 + ms(2 * i);
            p.saw_work(t, 1);
            assert!(!p.polling(t), "polled at {i}");
        }
    }

    #[test]
    fn a_rate_that_fills_beats_polls_and_a_falling_one_stops() {
        let t0 = Instant::now();
        let p = Pacer::new(ms(1), t0);
        let us = Duration::from_micros;
        // Three items a beat: polling within the first window.
        let mut t = t0;
        for _ in 0..3 * GRACE_BEATS {
            t += us(333);
            p.saw_work(t, 1);
        }
        assert!(p.polling(t));
        // Then one item every 4 ms: once two windows passed at that rate,
        // readiness again, though work never stopped.
        let mut stopped = None;
        for i in 0..40u64 {
            t += ms(4);
            p.saw_work(t, 1);
            if !p.polling(t) {
                stopped.get_or_insert(i);
            }
        }
        assert!(stopped.is_some_and(|i| i <= 10), "{stopped:?}");
    }

    #[test]
    fn a_zero_interval_never_polls() {
        let t0 = Instant::now();
        let p = Pacer::new(Duration::ZERO, t0);
        p.saw_work(t0, BUSY);
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
