//! [`Pending`]: requests a shard holds while something else answers for
//! them (the store writer for a REGISTER, a user backend or the HTTP router
//! for a webhook, timer H for a `spam` INVITE). Each entry gets a token (the
//! question's id), a deadline and a payload (the request's bytes and how it
//! goes on). Sans-IO: time is an argument; nothing here sends or parses.

use std::collections::{BTreeMap, BTreeSet};

/// A deadline that never comes (an answer that always arrives).
pub(crate) const NEVER: u64 = u64::MAX;

/// Parked entries by token, with their deadlines in order.
pub(crate) struct Pending<T> {
    /// By token; tokens grow, so this is also arrival order.
    entries: BTreeMap<u64, (u64, T)>,
    /// (deadline, token), soonest first.
    deadlines: BTreeSet<(u64, u64)>,
    next_token: u64,
    /// At most this many entries (`[security] max_parked_requests`).
    capacity: usize,
}

/// A parked entry that was refused: the table is full.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full<T>(pub T);

impl<T> Pending<T> {
    /// A table of at most `capacity` entries.
    pub(crate) fn bounded(capacity: usize) -> Self {
        Pending {
            entries: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_token: 1,
            capacity,
        }
    }

    /// A table without a bound of its own.
    pub(crate) fn unbounded() -> Self {
        Self::bounded(usize::MAX)
    }

    /// Whether one more entry fits.
    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < self.capacity
    }

    /// The token the next [`insert`](Self::insert) will give, to put in a
    /// question before the entry is parked.
    pub(crate) fn next_token(&self) -> u64 {
        self.next_token
    }

    /// Parks `payload` until `deadline` (ms; [`expire`](Self::expire) hands
    /// it back once `now >= deadline`). Returns its token.
    pub(crate) fn insert(&mut self, deadline: u64, payload: T) -> Result<u64, Full<T>> {
        if !self.has_room() {
            return Err(Full(payload));
        }
        let token = self.next_token;
        self.next_token += 1;
        self.entries.insert(token, (deadline, payload));
        self.deadlines.insert((deadline, token));
        Ok(token)
    }

    /// Takes the entry of `token` out (its answer came).
    pub(crate) fn take(&mut self, token: u64) -> Option<T> {
        let (deadline, payload) = self.entries.remove(&token)?;
        self.deadlines.remove(&(deadline, token));
        Some(payload)
    }

    /// The entry of `token`, left parked.
    pub(crate) fn get(&self, token: u64) -> Option<&T> {
        self.entries.get(&token).map(|(_, p)| p)
    }

    /// Takes every entry `pick` selects out, in arrival order.
    pub(crate) fn take_where(&mut self, mut pick: impl FnMut(&T) -> bool) -> Vec<T> {
        let tokens: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, (_, p))| pick(p))
            .map(|(t, _)| *t)
            .collect();
        tokens.into_iter().filter_map(|t| self.take(t)).collect()
    }

    /// The token of the first entry (in arrival order) `pick` selects.
    pub(crate) fn find(&self, mut pick: impl FnMut(&T) -> bool) -> Option<u64> {
        self.entries
            .iter()
            .find(|(_, (_, p))| pick(p))
            .map(|(t, _)| *t)
    }

    /// Whether an entry `pick` selects is parked.
    pub(crate) fn any(&self, pick: impl FnMut(&T) -> bool) -> bool {
        self.find(pick).is_some()
    }

    /// Takes out the entries whose deadline is `now` or earlier, soonest
    /// deadline first (equal deadlines in arrival order).
    pub(crate) fn expire(&mut self, now: u64) -> Vec<(u64, T)> {
        let mut due = Vec::new();
        while let Some(&(deadline, token)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some((_, payload)) = self.entries.remove(&token) {
                due.push((token, payload));
            }
        }
        due
    }

    /// The soonest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Entries parked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_take_hands_back_the_payload_once() {
        let mut p = Pending::unbounded();
        assert_eq!(p.next_token(), 1);
        let a = p.insert(100, "a").unwrap();
        let b = p.insert(50, "b").unwrap();
        assert_ne!(a, b);
        assert_eq!(p.next_token(), b + 1);
        assert_eq!(p.len(), 2);
        assert_eq!(p.get(a), Some(&"a"));
        assert_eq!(p.take(a), Some("a"));
        assert_eq!(p.take(a), None, "taken once");
        assert_eq!(p.get(a), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p.next_deadline(), Some(50));
    }

    #[test]
    fn expire_hands_back_what_is_due_in_deadline_order() {
        let mut p = Pending::unbounded();
        let late = p.insert(300, "late").unwrap();
        let first = p.insert(100, "first").unwrap();
        let tie = p.insert(100, "tie").unwrap();
        let never = p.insert(NEVER, "never").unwrap();
        assert!(p.expire(99).is_empty(), "nothing due before its deadline");
        assert_eq!(p.expire(100), vec![(first, "first"), (tie, "tie")]);
        assert!(p.expire(299).is_empty());
        assert_eq!(p.expire(1_000), vec![(late, "late")]);
        assert_eq!(p.len(), 1);
        assert!(p.expire(u64::MAX - 1).is_empty(), "NEVER stays");
        assert_eq!(p.take(never), Some("never"));
    }

    #[test]
    fn a_taken_entry_does_not_expire() {
        let mut p = Pending::unbounded();
        let a = p.insert(10, 'a').unwrap();
        p.insert(20, 'b').unwrap();
        p.take(a);
        assert_eq!(p.expire(30).len(), 1);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn the_bound_refuses_and_frees_room_as_entries_leave() {
        let mut p = Pending::bounded(2);
        let a = p.insert(10, 1).unwrap();
        p.insert(10, 2).unwrap();
        assert!(!p.has_room());
        assert_eq!(p.insert(10, 3), Err(Full(3)));
        assert_eq!(p.len(), 2);
        p.take(a);
        assert!(p.has_room());
        p.insert(10, 4).unwrap();
        assert_eq!(p.expire(10).len(), 2);
        assert!(p.has_room());
    }

    #[test]
    fn take_where_and_find_go_in_arrival_order() {
        let mut p = Pending::unbounded();
        p.insert(30, (1, 'x')).unwrap();
        let b = p.insert(10, (2, 'y')).unwrap();
        p.insert(20, (1, 'z')).unwrap();
        assert_eq!(p.find(|&(k, _)| k == 2), Some(b));
        assert!(p.any(|&(k, _)| k == 1));
        assert_eq!(p.take_where(|&(k, _)| k == 1), vec![(1, 'x'), (1, 'z')]);
        assert!(!p.any(|&(k, _)| k == 1));
        assert_eq!(p.expire(100), vec![(b, (2, 'y'))]);
    }
}
