//! Per-SSRC sequence state of an SRTP context: the packet index estimate
//! from a 16-bit sequence number (RFC 3711 section 3.3.1 and Appendix A),
//! the 64-packet replay window (section 3.3.2), and the bounded table that
//! holds one such state per SSRC, evicting the least recently used.

use super::SrtpError;

/// Size of the replay window, in packets (RFC 3711 3.3.2: at least 64).
pub(super) const WINDOW: u64 = 64;

/// The highest index seen (or sent) on an SSRC and which of the
/// [`WINDOW`] indexes below it were received. For SRTP the index is
/// `ROC * 2^16 + SEQ`, so `highest` also holds the ROC and `s_l`; for
/// SRTCP it is the 31-bit SRTCP index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Window {
    highest: u64,
    /// Bit `k` set: index `highest - k` was accepted.
    bits: u64,
}

impl Window {
    /// The state of an SSRC whose first packet has index `index` (for SRTP:
    /// ROC 0, `s_l` the first sequence number), before that packet is
    /// accepted.
    pub(super) fn starting_at(index: u64) -> Window {
        Window {
            highest: index,
            bits: 0,
        }
    }

    /// The highest index accepted.
    #[cfg(test)]
    pub(super) fn highest(&self) -> u64 {
        self.highest
    }

    /// RFC 3711 Appendix A: the index of a packet with sequence number `seq`
    /// given the ROC and highest sequence number `s_l`. A guess of ROC - 1
    /// while the ROC is still 0 is taken as ROC 0, as libsrtp does (a packet
    /// from before the first one seen cannot have a negative index).
    pub(super) fn estimate(&self, seq: u16) -> u64 {
        let roc = self.highest >> 16;
        let s_l = u32::from(self.highest as u16);
        let seq32 = u32::from(seq);
        let v = if s_l < 0x8000 {
            if seq32 > s_l + 0x8000 {
                roc.saturating_sub(1)
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq32 {
            roc + 1
        } else {
            roc
        };
        (v << 16) | u64::from(seq)
    }

    /// Whether a packet with index `index` may be accepted: ahead of the
    /// highest, or inside the window and not yet seen.
    pub(super) fn check(&self, index: u64) -> Result<(), SrtpError> {
        let Some(delta) = self.highest.checked_sub(index) else {
            return Ok(());
        };
        if delta >= WINDOW || self.bits >> delta & 1 == 1 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    /// Records `index` as accepted (after [`Window::check`] and
    /// authentication): it becomes the highest if it is ahead.
    pub(super) fn accept(&mut self, index: u64) {
        match self.highest.checked_sub(index) {
            Some(delta) => {
                if delta < WINDOW {
                    self.bits |= 1 << delta;
                }
            }
            None => {
                let shift = index - self.highest;
                self.bits = if shift >= WINDOW {
                    0
                } else {
                    self.bits << shift
                };
                self.bits |= 1;
                self.highest = index;
            }
        }
    }
}

/// At most this many SSRCs have state in one context (per kind of state).
pub const MAX_SSRCS: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Slot<T> {
    ssrc: u32,
    /// Tick of the last `put`: the smallest is evicted first.
    used: u64,
    state: T,
}

/// Per-SSRC state, at most [`MAX_SSRCS`] entries; storing a new SSRC in a
/// full table evicts the least recently stored one.
#[derive(Clone, Debug)]
pub(super) struct SsrcTable<T: Copy> {
    slots: [Option<Slot<T>>; MAX_SSRCS],
    tick: u64,
}

impl<T: Copy> SsrcTable<T> {
    pub(super) fn new() -> SsrcTable<T> {
        SsrcTable {
            slots: [None; MAX_SSRCS],
            tick: 0,
        }
    }

    /// The state of `ssrc`, if it has one.
    pub(super) fn get(&self, ssrc: u32) -> Option<T> {
        self.slots
            .iter()
            .flatten()
            .find(|s| s.ssrc == ssrc)
            .map(|s| s.state)
    }

    /// Stores the state of `ssrc`, marking it the most recently used.
    pub(super) fn put(&mut self, ssrc: u32, state: T) {
        self.tick += 1;
        let slot = Slot {
            ssrc,
            used: self.tick,
            state,
        };
        // The entry of this SSRC, else a free slot, else the LRU one.
        let mut target: Option<&mut Option<Slot<T>>> = None;
        let mut target_rank = (2u8, u64::MAX);
        for entry in &mut self.slots {
            let rank = match entry {
                Some(s) if s.ssrc == ssrc => (0, 0),
                None => (1, 0),
                Some(s) => (2, s.used),
            };
            if target.is_none() || rank < target_rank {
                target_rank = rank;
                target = Some(entry);
            }
        }
        if let Some(entry) = target {
            *entry = Some(slot);
        }
    }

    /// Number of SSRCs with state.
    pub(super) fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_follows_appendix_a() {
        // ROC 0, s_l 65530: seq 3 is after the wrap.
        let w = Window::starting_at(65530);
        assert_eq!(w.estimate(3), 0x1_0003);
        assert_eq!(w.estimate(65531), 65531);
        // ROC 1, s_l 5: seq 65533 is from before the wrap.
        let w = Window::starting_at(0x1_0005);
        assert_eq!(w.estimate(65533), 65533);
        assert_eq!(w.estimate(6), 0x1_0006);
        // ROC 0, s_l 5: seq 65533 cannot be ROC -1: ROC 0.
        let w = Window::starting_at(5);
        assert_eq!(w.estimate(65533), 65533);
        // Half way: s_l 40000, seq 7232 (exactly s_l - 32768) stays ROC 0.
        let w = Window::starting_at(40000);
        assert_eq!(w.estimate(7232), 7232);
        assert_eq!(w.estimate(7231), 0x1_0000 + 7231);
    }

    #[test]
    fn window_accepts_once_and_forgets_old() {
        let mut w = Window::starting_at(100);
        assert_eq!(w.check(100), Ok(()));
        w.accept(100);
        assert_eq!(w.check(100), Err(SrtpError::Replayed));
        assert_eq!(w.check(99), Ok(()));
        w.accept(99);
        assert_eq!(w.check(99), Err(SrtpError::Replayed));
        w.accept(200);
        assert_eq!(w.check(100), Err(SrtpError::Replayed), "too old");
        assert_eq!(w.check(137), Ok(()), "in the window, never seen");
        assert_eq!(w.check(136), Err(SrtpError::Replayed), "just outside");
        w.accept(137);
        assert_eq!(w.check(137), Err(SrtpError::Replayed));
        w.accept(1000);
        assert_eq!(w.highest(), 1000);
        assert_eq!(w.check(999), Ok(()));
    }

    #[test]
    fn table_is_bounded_and_evicts_lru() {
        let mut t: SsrcTable<u32> = SsrcTable::new();
        for ssrc in 0..MAX_SSRCS as u32 {
            t.put(ssrc, ssrc * 10);
        }
        assert_eq!(t.len(), MAX_SSRCS);
        t.put(0, 1); // 0 is now the most recent; 1 the least.
        t.put(100, 7);
        assert_eq!(t.len(), MAX_SSRCS);
        assert_eq!(t.get(1), None);
        assert_eq!(t.get(0), Some(1));
        assert_eq!(t.get(100), Some(7));
        assert_eq!(t.get(2), Some(20));
    }
}
