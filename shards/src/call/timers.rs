//! The engine's deadlines: one min-heap of `(when, call, what)`, whose top
//! is the engine's [`poll_timeout`](super::CallEngine::poll_timeout). An
//! entry is not removed when its call moves on: it is checked when it
//! comes due (the engine looks at the call), and the heap is compacted
//! when stale entries outnumber live calls.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What comes due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Deadline {
    /// The call's ring timeout (or the first party's, click-to-dial).
    Ring,
    /// One callee leg's own ring timeout (sequential forking, transfer).
    Leg(usize),
    /// A router's `max_duration` after the answer.
    MaxDuration,
    /// A finished call's flow stops collecting late messages.
    FlowLinger,
}

/// Stale entries tolerated per live call before the heap is compacted.
const SLACK_PER_CALL: usize = 4;
/// Entries below which the heap is never compacted.
const MIN_COMPACT: usize = 1024;

#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(u64, u64, Deadline)>>,
    /// The heap's size after the last compaction: the next one waits until
    /// it has doubled, so a heap of mostly live entries is not rescanned
    /// on every call.
    compacted_len: usize,
}

impl Timers {
    /// `what` of `call` comes due at `at` (mono ms).
    pub(super) fn push(&mut self, at: u64, call: u64, what: Deadline) {
        self.heap.push(Reverse((at, call, what)));
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The earliest entry due at `now`, removed.
    pub(super) fn pop_due(&mut self, now: u64) -> Option<(u64, Deadline)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((_, call, what))| (call, what))
            }
            _ => None,
        }
    }

    /// Drops the entries `keep` refuses when there are many more entries
    /// than the `live` calls can account for.
    pub(super) fn compact(&mut self, live: usize, mut keep: impl FnMut(u64, Deadline) -> bool) {
        let len = self.heap.len();
        if len <= MIN_COMPACT.max(live * SLACK_PER_CALL) || len <= 2 * self.compacted_len {
            return;
        }
        self.heap
            .retain(|Reverse((_, call, what))| keep(*call, *what));
        self.compacted_len = self.heap.len();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_come_due_in_order_and_only_when_due() {
        let mut t = Timers::default();
        t.push(300, 1, Deadline::Ring);
        t.push(100, 2, Deadline::Leg(0));
        t.push(200, 1, Deadline::MaxDuration);
        assert_eq!(t.next(), Some(100));
        assert_eq!(t.pop_due(99), None);
        assert_eq!(t.pop_due(250), Some((2, Deadline::Leg(0))));
        assert_eq!(t.pop_due(250), Some((1, Deadline::MaxDuration)));
        assert_eq!(t.pop_due(250), None);
        assert_eq!(t.next(), Some(300));
    }

    #[test]
    fn stale_entries_are_compacted_away_once_they_dominate() {
        let mut t = Timers::default();
        for call in 0..2000 {
            t.push(1_000_000 + call, call, Deadline::Ring);
        }
        // Few live calls: everything but call 7 is stale.
        t.compact(1, |call, _| call == 7);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(u64::MAX), Some((7, Deadline::Ring)));
        // Below the floor nothing is scanned.
        t.push(5, 1, Deadline::Ring);
        t.compact(0, |_, _| false);
        assert_eq!(t.len(), 1);
    }
}
