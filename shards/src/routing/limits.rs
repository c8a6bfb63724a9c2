//! Per-trunk call limits (`max_calls`, `max_cps`) shared by all shards.
//!
//! These few atomics (active calls, the packed (second, count) CPS window, the
//! limit values and the `Arc` count that a [`CallPermit`] holds) are the only
//! state shards share on the call path. They are shared because the limits are
//! per trunk, not per shard: a carrier that allows 30 channels must never see 31,
//! and splitting 30 into per-shard quotas would refuse calls while another shard
//! has room (calls land on shards by Call-ID hash, not evenly per trunk). One
//! CAS per call start on a dedicated cache line is cheap next to a SIP
//! transaction, and it needs no lock.
//!
//! A reload keeps the counters: `RoutingSnapshot::carry_limits_from` hands the
//! old `Arc<TrunkLimits>` of a same-named trunk to the new snapshot and stores
//! the new limit values into it, so calls in progress still count.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Which limit refused a call (answer 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_calls` calls are active.
    MaxCalls,
    /// `max_cps` calls already started in this second.
    MaxCps,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::MaxCalls => "max_calls reached",
            Limit::MaxCps => "max_cps reached",
        })
    }
}

/// The live counters of one trunk. Cache-line aligned so two trunks' counters
/// never share a line.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct TrunkLimits {
    max_calls: AtomicU32,
    max_cps: AtomicU32,
    active: AtomicU32,
    /// `second << 32 | count`: calls started in `second` (of `now_ms`).
    window: AtomicU64,
}

impl TrunkLimits {
    /// Limits with no calls counted yet; 0 = unlimited.
    pub fn new(max_calls: u32, max_cps: u32) -> Arc<TrunkLimits> {
        let l = TrunkLimits::default();
        l.set(max_calls, max_cps);
        Arc::new(l)
    }

    /// Changes the limits (a reload); active calls are kept. A lower `max_calls`
    /// refuses new calls until enough active ones ended.
    pub fn set(&self, max_calls: u32, max_cps: u32) {
        self.max_calls.store(max_calls, Ordering::Relaxed);
        self.max_cps.store(max_cps, Ordering::Relaxed);
    }

    pub fn max_calls(&self) -> u32 {
        self.max_calls.load(Ordering::Relaxed)
    }

    pub fn max_cps(&self) -> u32 {
        self.max_cps.load(Ordering::Relaxed)
    }

    /// Calls holding a permit now.
    pub fn active_calls(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Starts a call through the trunk at `now_ms` (milliseconds of one clock that
    /// all shards share, e.g. `time::Now::mono_ms`), or says which limit refuses
    /// it. The permit counts the call as active until it is dropped.
    ///
    /// `max_calls` is checked first (an increment only below the limit, so the
    /// count never exceeds it); a call it admits that `max_cps` then refuses is
    /// uncounted again, so the CPS window counts only calls that started.
    /// Relaxed ordering suffices: each limit is one atomic, and read-modify-write
    /// operations on one atomic are totally ordered.
    pub fn try_start_call(self: &Arc<Self>, now_ms: u64) -> Result<CallPermit, Limit> {
        let max_calls = self.max_calls();
        if max_calls == 0 {
            self.active.fetch_add(1, Ordering::Relaxed);
        } else {
            self.active
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < max_calls).then_some(n + 1)
                })
                .map_err(|_| Limit::MaxCalls)?;
        }
        // From here on a permit exists, so an early return releases the call.
        let permit = CallPermit {
            limits: Arc::clone(self),
        };
        self.take_cps_slot(now_ms)?;
        Ok(permit)
    }

    /// One more call in the current second, unless `max_cps` are there already.
    fn take_cps_slot(&self, now_ms: u64) -> Result<(), Limit> {
        let max = self.max_cps();
        if max == 0 {
            return Ok(());
        }
        let now_sec = (now_ms / 1000) & u64::from(u32::MAX);
        self.window
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                let (sec, count) = (w >> 32, w & u64::from(u32::MAX));
                // A shard whose clock read is a little older than another's
                // (now_sec < sec) counts in the newer second.
                if now_sec > sec {
                    Some(now_sec << 32 | 1)
                } else if count < u64::from(max) {
                    Some(sec << 32 | (count + 1))
                } else {
                    None
                }
            })
            .map(|_| ())
            .map_err(|_| Limit::MaxCps)
    }
}

/// One active call through a trunk; dropping it ends the call for `max_calls`.
#[derive(Debug)]
pub struct CallPermit {
    limits: Arc<TrunkLimits>,
}

impl CallPermit {
    pub fn limits(&self) -> &Arc<TrunkLimits> {
        &self.limits
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        self.limits.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn max_calls_and_permit_drop() {
        let l = TrunkLimits::new(2, 0);
        let a = l.try_start_call(0).unwrap();
        let b = l.try_start_call(0).unwrap();
        assert_eq!(l.try_start_call(0).unwrap_err(), Limit::MaxCalls);
        assert_eq!(l.active_calls(), 2);
        drop(a);
        assert_eq!(l.active_calls(), 1);
        let c = l.try_start_call(0).unwrap();
        assert_eq!(l.try_start_call(0).unwrap_err(), Limit::MaxCalls);
        drop((b, c));
        assert_eq!(l.active_calls(), 0);
    }

    #[test]
    fn unlimited_still_counts() {
        let l = TrunkLimits::new(0, 0);
        let permits: Vec<_> = (0..1000).map(|_| l.try_start_call(5).unwrap()).collect();
        assert_eq!(l.active_calls(), 1000);
        drop(permits);
        assert_eq!(l.active_calls(), 0);
    }

    #[test]
    fn max_cps_across_a_second_boundary() {
        let l = TrunkLimits::new(0, 3);
        let mut keep = Vec::new();
        for ms in [1000, 1400, 1999] {
            keep.push(l.try_start_call(ms).unwrap());
        }
        assert_eq!(l.try_start_call(1999).unwrap_err(), Limit::MaxCps);
        // The refused call is not active.
        assert_eq!(l.active_calls(), 3);
        // A new second, a new window; ending calls does not give CPS slots back.
        drop(keep);
        for ms in [2000, 2001, 2999] {
            l.try_start_call(ms).unwrap();
        }
        assert_eq!(l.try_start_call(2999).unwrap_err(), Limit::MaxCps);
        // A slightly stale clock read counts in the newer second.
        assert_eq!(l.try_start_call(1500).unwrap_err(), Limit::MaxCps);
        assert!(l.try_start_call(3000).is_ok());
    }

    #[test]
    fn cps_refusal_releases_the_call_slot() {
        let l = TrunkLimits::new(1, 1);
        drop(l.try_start_call(0).unwrap());
        assert_eq!(l.try_start_call(10).unwrap_err(), Limit::MaxCps);
        assert_eq!(l.active_calls(), 0);
        let _p = l.try_start_call(1000).unwrap();
        assert_eq!(l.try_start_call(2000).unwrap_err(), Limit::MaxCalls);
    }

    #[test]
    fn set_changes_limits_and_keeps_counts() {
        let l = TrunkLimits::new(1, 0);
        let _p = l.try_start_call(0).unwrap();
        l.set(2, 0);
        let _q = l.try_start_call(0).unwrap();
        l.set(1, 0);
        assert_eq!(l.active_calls(), 2);
        assert_eq!(l.try_start_call(0).unwrap_err(), Limit::MaxCalls);
    }

    #[test]
    fn threads_never_exceed_max_calls() {
        const MAX: u32 = 8;
        const THREADS: u32 = 4;
        let l = TrunkLimits::new(MAX, 0);
        // Counted by the callers themselves, independent of the limiter's counter.
        let inside = Arc::new(AtomicU32::new(0));
        let peak = Arc::new(AtomicU32::new(0));
        let start = Arc::new(std::sync::Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (l, inside, peak) = (Arc::clone(&l), Arc::clone(&inside), Arc::clone(&peak));
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    let mut held = Vec::new();
                    let (mut ok, mut refused) = (0u32, 0u32);
                    for i in 0..20_000u32 {
                        match l.try_start_call(u64::from(i)) {
                            Ok(p) => {
                                ok += 1;
                                let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(n, Ordering::SeqCst);
                                held.push(p);
                            }
                            Err(Limit::MaxCalls) => refused += 1,
                            Err(Limit::MaxCps) => unreachable!(),
                        }
                        // Each thread alone would hold more than MAX; release in
                        // a pattern that differs per thread.
                        if (i + t) % 5 == 0 || held.len() as u32 > MAX + 2 {
                            if let Some(p) = held.pop() {
                                inside.fetch_sub(1, Ordering::SeqCst);
                                drop(p);
                            }
                        }
                    }
                    inside.fetch_sub(held.len() as u32, Ordering::SeqCst);
                    drop(held);
                    (ok, refused)
                })
            })
            .collect();
        let (mut ok, mut refused) = (0, 0);
        for t in threads {
            let (o, r) = t.join().unwrap();
            ok += o;
            refused += r;
        }
        assert!(peak.load(Ordering::SeqCst) <= MAX, "peak {peak:?}");
        assert_eq!(peak.load(Ordering::SeqCst), MAX);
        assert_eq!(l.active_calls(), 0);
        assert!(ok > 0 && refused > 0, "ok {ok} refused {refused}");
    }
}
