//! The virtual clock: one monotonic millisecond count the harness moves by
//! hand, and the [`Now`] the logic under test is given (wall clock derived
//! from it, so CDR times and durations follow virtual time).

use crate::time::Now;

/// Wall-clock ms at virtual time 0 (2027-01-15T08:00:00Z: a fixed date, so
/// CDR timestamps are the same on every run).
pub(crate) const EPOCH_UNIX_MS: u64 = 1_800_000_000_000;
/// Monotonic ms at the start (not 0: some logic takes 0 for "never").
pub(crate) const START_MONO_MS: u64 = 1_000;

/// Virtual time; it only moves forward, and only when the harness says so.
#[derive(Debug)]
pub(crate) struct Clock {
    mono_ms: u64,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            mono_ms: START_MONO_MS,
        }
    }

    /// Monotonic ms now.
    pub(crate) fn ms(&self) -> u64 {
        self.mono_ms
    }

    /// Moves to `mono_ms` (never backwards).
    pub(crate) fn set(&mut self, mono_ms: u64) {
        assert!(
            mono_ms >= self.mono_ms,
            "virtual time goes backwards: {} -> {mono_ms}",
            self.mono_ms
        );
        self.mono_ms = mono_ms;
    }

    /// What the logic is told the time is.
    pub(crate) fn now(&self) -> Now {
        now_at(self.mono_ms)
    }
}

/// The [`Now`] of virtual monotonic time `mono_ms`.
pub(crate) fn now_at(mono_ms: u64) -> Now {
    let unix_ms = EPOCH_UNIX_MS + mono_ms;
    Now {
        unix: unix_ms / 1000,
        mono_ms,
        unix_ms,
    }
}

/// The RFC 3339 text a CDR shows for virtual monotonic time `mono_ms`.
pub(crate) fn cdr_time(mono_ms: u64) -> String {
    crate::cdr::time_fmt::rfc3339_ms(EPOCH_UNIX_MS + mono_ms)
}
