//! Time as an input: the runtime reads the clocks once per batch and passes
//! [`Now`] to the sans-IO logic, which never reads a clock itself.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock seconds (for expiries, nonces, CDRs) and a monotonic
/// millisecond count (for timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub unix: u64,
    pub mono_ms: u64,
    /// Wall-clock milliseconds (CDR timestamps).
    pub unix_ms: u64,
}

impl Now {
    /// Reads both clocks.
    pub fn read() -> Now {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Now {
            unix: wall.as_secs(),
            mono_ms: start.elapsed().as_millis() as u64,
            unix_ms: wall.as_millis() as u64,
        }
    }
}
