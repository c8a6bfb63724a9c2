//! Timers: their RFC names ([`Timer`]), the two slots every transaction keeps (a
//! retransmission schedule and the one deadline that ends its state) and the
//! table's deadline queue (a `BTreeSet` ordered by deadline).

use std::collections::BTreeSet;

use super::TxId;

/// The RFC 3261 / RFC 6026 timers (table 4 of RFC 3261).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Client INVITE retransmission (T1, doubling).
    A,
    /// Client INVITE timeout in Calling (64*T1).
    B,
    /// Client INVITE: absorbs 300-699 retransmissions (32 s over UDP).
    D,
    /// Client non-INVITE retransmission (T1 doubling up to T2).
    E,
    /// Client non-INVITE timeout (64*T1).
    F,
    /// Server INVITE final-response retransmission (T1 doubling up to T2).
    G,
    /// Server INVITE: waits for the ACK (64*T1).
    H,
    /// Server INVITE: absorbs ACK retransmissions (T4).
    I,
    /// Server non-INVITE: absorbs request retransmissions (64*T1).
    J,
    /// Client non-INVITE: absorbs response retransmissions (T4).
    K,
    /// Server INVITE Accepted: absorbs INVITE retransmissions after a 2xx (64*T1).
    L,
    /// Client INVITE Accepted: passes 2xx retransmissions up (64*T1).
    M,
}

/// A retransmission schedule (timers A, E, G and the 2xx retransmission): when
/// it fires next and the interval that led there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Retransmit {
    at: Option<u64>,
    interval: u64,
}

impl Retransmit {
    /// Arms: first firing `interval` after `now`.
    pub(crate) fn start(&mut self, now: u64, interval: u64) {
        self.interval = interval.max(1);
        self.at = Some(now.saturating_add(self.interval));
    }

    /// Disarms.
    pub(crate) fn stop(&mut self) {
        self.at = None;
    }

    /// When it fires next.
    pub(crate) fn at(&self) -> Option<u64> {
        self.at
    }

    /// Whether it is armed and due at `now`.
    pub(crate) fn is_due(&self, now: u64) -> bool {
        self.at.is_some_and(|at| at <= now)
    }

    /// Re-arms after firing at `now` with the interval doubled, at most `cap`.
    pub(crate) fn back_off(&mut self, now: u64, cap: u64) {
        let next = self.interval.saturating_mul(2).min(cap).max(1);
        self.start(now, next);
    }
}

/// The deadline that ends a state (B, D, F, H, I, J, K, L, M).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Deadline(Option<(u64, Timer)>);

impl Deadline {
    /// Arms `timer` to fire `after` ms from `now`.
    pub(crate) fn set(&mut self, now: u64, after: u64, timer: Timer) {
        self.0 = Some((now.saturating_add(after), timer));
    }

    /// Disarms.
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// When it fires.
    pub(crate) fn at(&self) -> Option<u64> {
        self.0.map(|(at, _)| at)
    }

    /// The timer, when it is due at `now` (it is then disarmed).
    pub(crate) fn take_due(&mut self, now: u64) -> Option<Timer> {
        match self.0 {
            Some((at, timer)) if at <= now => {
                self.0 = None;
                Some(timer)
            }
            _ => None,
        }
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Each transaction's next deadline, ordered: the table's timer queue.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    set: BTreeSet<(u64, TxId)>,
}

impl TimerQueue {
    /// Moves `tx` from deadline `old` to `new` (either may be `None`).
    pub(crate) fn reschedule(&mut self, tx: TxId, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        if let Some(at) = old {
            self.set.remove(&(at, tx));
        }
        if let Some(at) = new {
            self.set.insert((at, tx));
        }
    }

    /// The earliest deadline.
    pub(crate) fn first(&self) -> Option<u64> {
        self.set.first().map(|&(at, _)| at)
    }

    /// Removes and returns the earliest entry when it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(u64, TxId)> {
        match self.set.first() {
            Some(&(at, _)) if at <= now => self.set.pop_first(),
            _ => None,
        }
    }

    /// Number of scheduled transactions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(index: u32) -> TxId {
        TxId {
            index,
            generation: 0,
        }
    }

    #[test]
    fn retransmit_doubles_up_to_the_cap() {
        let mut r = Retransmit::default();
        assert_eq!(r.at(), None);
        r.start(0, 500);
        let mut fired = vec![];
        let mut now = 0;
        while fired.len() < 6 {
            now = r.at().unwrap();
            assert!(r.is_due(now) && !r.is_due(now - 1));
            fired.push(now);
            r.back_off(now, 4000);
        }
        assert_eq!(fired, [500, 1500, 3500, 7500, 11500, 15500]);
        r.stop();
        assert!(!r.is_due(now + 100_000));
        r.start(0, 0);
        assert_eq!(r.at(), Some(1), "an interval is at least 1 ms");
    }

    #[test]
    fn deadline_fires_once() {
        let mut d = Deadline::default();
        d.set(100, 50, Timer::B);
        assert_eq!(d.at(), Some(150));
        assert_eq!(d.take_due(149), None);
        assert_eq!(d.take_due(150), Some(Timer::B));
        assert_eq!(d.take_due(150), None);
        d.set(0, 1, Timer::D);
        d.clear();
        assert_eq!(d.at(), None);
        assert_eq!(earliest(Some(3), Some(2)), Some(2));
        assert_eq!(earliest(None, Some(2)), Some(2));
        assert_eq!(earliest(Some(3), None), Some(3));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn queue_orders_by_deadline_then_id() {
        let mut q = TimerQueue::default();
        q.reschedule(id(1), None, Some(30));
        q.reschedule(id(2), None, Some(10));
        q.reschedule(id(3), None, Some(10));
        q.reschedule(id(1), Some(30), Some(5));
        q.reschedule(id(3), Some(10), None);
        assert_eq!(q.len(), 2);
        assert_eq!(q.first(), Some(5));
        assert_eq!(q.pop_due(4), None);
        assert_eq!(q.pop_due(100), Some((5, id(1))));
        assert_eq!(q.pop_due(100), Some((10, id(2))));
        assert_eq!(q.pop_due(100), None);
        assert_eq!(q.first(), None);
    }
}
