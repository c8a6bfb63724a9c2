//! Replay protection: the per-shard table of the highest nonce-count accepted for
//! each live nonce (RFC 7616 section 3.4.5: a server should refuse a request whose
//! `nc` it has already seen).
//!
//! Memory is bounded twice: entries of expired nonces are dropped (on every
//! [`NonceCounts::record`] from the oldest end, and by [`NonceCounts::sweep`]), and
//! at most `capacity` entries are kept; when full, the oldest entry is evicted and
//! every nonce at or below it that is not in the table counts as
//! [`NcVerdict::Forgotten`] from then on, so an evicted nonce can never be replayed.

use std::collections::BTreeMap;

use super::nonce::NonceId;

/// The result of presenting a nonce-count for a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcVerdict {
    /// Higher than anything seen for this nonce; now recorded.
    Accepted,
    /// Equal to or lower than a count already accepted for this nonce.
    Replay,
    /// The nonce's entry was evicted under memory pressure, so its history is
    /// unknown: the caller must treat the nonce as stale.
    Forgotten,
}

/// Highest nonce-count seen per nonce, ordered by issue time.
#[derive(Debug, Clone)]
pub struct NonceCounts {
    counts: BTreeMap<NonceId, u32>,
    capacity: usize,
    lifetime: u64,
    /// The newest nonce evicted for capacity: nonces not newer than it and not in
    /// `counts` have an unknown history.
    forgotten_up_to: Option<NonceId>,
}

impl NonceCounts {
    /// A table for nonces living `lifetime` seconds, holding at most `capacity`
    /// entries (at least 1).
    pub fn new(capacity: usize, lifetime: u64) -> Self {
        NonceCounts {
            counts: BTreeMap::new(),
            capacity: capacity.max(1),
            lifetime,
            forgotten_up_to: None,
        }
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// True when no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Maximum number of nonces tracked.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Presents `nc` for the (authentic, unexpired) nonce `id` at `now` and records it
    /// when it is accepted. Call only after the response verified.
    pub fn record(&mut self, now: u64, id: NonceId, nc: u32) -> NcVerdict {
        self.drop_expired(now);
        if let Some(highest) = self.counts.get_mut(&id) {
            if nc <= *highest {
                return NcVerdict::Replay;
            }
            *highest = nc;
            return NcVerdict::Accepted;
        }
        if self.forgotten_up_to.is_some_and(|floor| id <= floor) {
            return NcVerdict::Forgotten;
        }
        // A new entry starts from "nothing seen", i.e. 0: nc=00000000 is never valid.
        if nc == 0 {
            return NcVerdict::Replay;
        }
        if self.counts.len() >= self.capacity {
            // Full: the oldest of the table and this nonce goes.
            if self
                .counts
                .first_key_value()
                .is_some_and(|(&oldest, _)| id < oldest)
            {
                self.forget(id);
                return NcVerdict::Forgotten;
            }
            while self.counts.len() >= self.capacity {
                let Some((evicted, _)) = self.counts.pop_first() else {
                    break;
                };
                self.forget(evicted);
            }
        }
        self.counts.insert(id, nc);
        NcVerdict::Accepted
    }

    fn forget(&mut self, id: NonceId) {
        self.forgotten_up_to = Some(self.forgotten_up_to.map_or(id, |floor| floor.max(id)));
    }

    /// Drops the entries of every nonce expired at `now`. `record` already does this
    /// as it goes; call `sweep` from a periodic timer so an idle shard frees memory.
    pub fn sweep(&mut self, now: u64) {
        self.drop_expired(now);
    }

    fn drop_expired(&mut self, now: u64) {
        while let Some(entry) = self.counts.first_entry() {
            if !entry.key().expired(now, self.lifetime) {
                break;
            }
            entry.remove();
        }
        if self
            .forgotten_up_to
            .is_some_and(|floor| floor.expired(now, self.lifetime))
        {
            // Everything at or below the floor is expired and refused before it
            // gets here.
            self.forgotten_up_to = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    fn id(issued: u64, counter: u32) -> NonceId {
        NonceId {
            issued,
            counter,
            tag: [counter as u8; 16],
        }
    }

    #[test]
    fn increasing_counts_are_accepted() {
        let mut t = NonceCounts::new(10, 300);
        let n = id(T0, 1);
        for nc in 1..=5 {
            assert_eq!(t.record(T0, n, nc), NcVerdict::Accepted);
        }
        // Gaps are fine (RFC 7616: the count only has to grow).
        assert_eq!(t.record(T0, n, 9), NcVerdict::Accepted);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn same_or_lower_count_is_replay() {
        let mut t = NonceCounts::new(10, 300);
        let n = id(T0, 1);
        assert_eq!(t.record(T0, n, 1), NcVerdict::Accepted);
        assert_eq!(t.record(T0, n, 1), NcVerdict::Replay);
        assert_eq!(t.record(T0, n, 3), NcVerdict::Accepted);
        assert_eq!(t.record(T0, n, 2), NcVerdict::Replay);
        assert_eq!(t.record(T0, n, 3), NcVerdict::Replay);
        assert_eq!(t.record(T0, n, 4), NcVerdict::Accepted);
    }

    #[test]
    fn zero_count_is_never_accepted() {
        let mut t = NonceCounts::new(10, 300);
        assert_eq!(t.record(T0, id(T0, 1), 0), NcVerdict::Replay);
        assert!(t.is_empty());
    }

    #[test]
    fn nonces_are_independent() {
        let mut t = NonceCounts::new(10, 300);
        assert_eq!(t.record(T0, id(T0, 1), 1), NcVerdict::Accepted);
        assert_eq!(t.record(T0, id(T0, 2), 1), NcVerdict::Accepted);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn sweep_frees_expired_entries() {
        let mut t = NonceCounts::new(100, 300);
        for i in 0..50 {
            t.record(T0 + i, id(T0 + i, i as u32), 1);
        }
        assert_eq!(t.len(), 50);
        t.sweep(T0 + 299);
        assert_eq!(t.len(), 50);
        t.sweep(T0 + 300); // issued at T0 expires now
        assert_eq!(t.len(), 49);
        t.sweep(T0 + 320);
        assert_eq!(t.len(), 29);
        t.sweep(T0 + 10_000);
        assert!(t.is_empty());
    }

    #[test]
    fn record_drops_expired_entries_as_it_goes() {
        let mut t = NonceCounts::new(100, 300);
        t.record(T0, id(T0, 1), 1);
        t.record(T0 + 400, id(T0 + 400, 2), 1);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn capacity_cap_evicts_oldest_and_forgets_it() {
        let mut t = NonceCounts::new(3, 300);
        for c in 1..=3 {
            assert_eq!(
                t.record(T0, id(T0 + u64::from(c), c), 1),
                NcVerdict::Accepted
            );
        }
        assert_eq!(t.record(T0, id(T0 + 4, 4), 1), NcVerdict::Accepted);
        assert_eq!(t.len(), 3);
        // The oldest was evicted: its history is unknown, so it is not replayable.
        assert_eq!(t.record(T0, id(T0 + 1, 1), 2), NcVerdict::Forgotten);
        assert_eq!(t.record(T0, id(T0 + 1, 1), 1), NcVerdict::Forgotten);
        // An unseen nonce older than the evicted one is forgotten too.
        assert_eq!(t.record(T0, id(T0, 9), 1), NcVerdict::Forgotten);
        assert_eq!(t.len(), 3);
        // So is an unseen nonce older than everything in a full table, and
        // refusing it evicts nothing.
        let mut u = NonceCounts::new(2, 300);
        u.record(T0, id(T0 + 5, 5), 1);
        u.record(T0, id(T0 + 6, 6), 1);
        assert_eq!(u.record(T0, id(T0 + 1, 1), 1), NcVerdict::Forgotten);
        assert_eq!(u.record(T0, id(T0 + 5, 5), 2), NcVerdict::Accepted);
        assert_eq!(u.record(T0, id(T0 + 1, 1), 1), NcVerdict::Forgotten);
        // The survivors still work.
        assert_eq!(t.record(T0, id(T0 + 2, 2), 2), NcVerdict::Accepted);
        assert_eq!(t.record(T0, id(T0 + 2, 2), 2), NcVerdict::Replay);
        // A newer nonce gets in by evicting the next oldest.
        assert_eq!(t.record(T0, id(T0 + 5, 5), 1), NcVerdict::Accepted);
        assert_eq!(t.len(), 3);
        assert_eq!(t.record(T0, id(T0 + 2, 2), 3), NcVerdict::Forgotten);
    }

    #[test]
    fn forgotten_floor_is_cleared_once_expired() {
        let mut t = NonceCounts::new(1, 300);
        t.record(T0, id(T0, 1), 1);
        t.record(T0, id(T0 + 1, 2), 1);
        assert_eq!(t.record(T0, id(T0, 1), 2), NcVerdict::Forgotten);
        t.sweep(T0 + 301);
        assert!(t.is_empty());
        assert_eq!(t.record(T0 + 301, id(T0 + 301, 3), 1), NcVerdict::Accepted);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let mut t = NonceCounts::new(1000, 300);
        for i in 0..100_000u32 {
            let now = T0 + u64::from(i / 100);
            t.record(now, id(now, i), 1);
            assert!(t.len() <= 1000);
        }
    }
}
