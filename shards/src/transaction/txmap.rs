//! [`TxMap`]: what a layer above the table keeps per transaction, found by
//! the handle's slot index instead of a hash. The table reuses slot indexes
//! and bounds them (`max_transactions`), so the map's vector stays as small
//! as the table; a handle's generation tells a stale entry from a live one.

use super::TxId;

/// A map from live transaction handles to `V`, one vector slot per table slot.
#[derive(Debug)]
pub struct TxMap<V> {
    slots: Vec<Option<(u32, V)>>,
    len: usize,
}

impl<V> Default for TxMap<V> {
    fn default() -> Self {
        TxMap {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<V> TxMap<V> {
    /// The value of `tx`, if it has one.
    pub fn get(&self, tx: &TxId) -> Option<&V> {
        match self.slots.get(tx.index as usize) {
            Some(Some((generation, v))) if *generation == tx.generation => Some(v),
            _ => None,
        }
    }

    /// The value of `tx`, to change it.
    pub fn get_mut(&mut self, tx: &TxId) -> Option<&mut V> {
        match self.slots.get_mut(tx.index as usize) {
            Some(Some((generation, v))) if *generation == tx.generation => Some(v),
            _ => None,
        }
    }

    /// Whether `tx` has a value.
    pub fn contains_key(&self, tx: &TxId) -> bool {
        self.get(tx).is_some()
    }

    /// Sets the value of `tx`, returning its previous one. A value left by
    /// an earlier transaction of the same slot is replaced (and not
    /// returned: it belonged to a handle that no longer exists).
    pub fn insert(&mut self, tx: TxId, value: V) -> Option<V> {
        let at = tx.index as usize;
        if self.slots.len() <= at {
            self.slots.resize_with(at + 1, || None);
        }
        match self.slots[at].replace((tx.generation, value)) {
            Some((generation, old)) if generation == tx.generation => Some(old),
            Some(_) => None,
            None => {
                self.len += 1;
                None
            }
        }
    }

    /// Takes the value of `tx`.
    pub fn remove(&mut self, tx: &TxId) -> Option<V> {
        let slot = self.slots.get_mut(tx.index as usize)?;
        match slot {
            Some((generation, _)) if *generation == tx.generation => {
                self.len -= 1;
                slot.take().map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// Values held (stale ones of reused slots included until replaced).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(index: u32, generation: u32) -> TxId {
        TxId { index, generation }
    }

    #[test]
    fn a_handle_finds_only_its_own_value() {
        let mut m = TxMap::default();
        assert_eq!(m.insert(tx(3, 1), "a"), None);
        assert_eq!(m.get(&tx(3, 1)), Some(&"a"));
        assert_eq!(m.get(&tx(3, 2)), None, "a later transaction of the slot");
        assert_eq!(m.get(&tx(2, 1)), None);
        assert_eq!(m.get(&tx(9, 1)), None, "past the end");
        assert_eq!(m.insert(tx(3, 1), "b"), Some("a"));
        assert_eq!(m.len(), 1);
        // The slot's next transaction replaces a value its handle left.
        assert_eq!(m.insert(tx(3, 2), "c"), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.get(&tx(3, 1)), None);
        assert_eq!(m.remove(&tx(3, 1)), None, "stale handle removes nothing");
        if let Some(v) = m.get_mut(&tx(3, 2)) {
            *v = "d";
        }
        assert_eq!(m.remove(&tx(3, 2)), Some("d"));
        assert!(m.is_empty());
        assert_eq!(m.remove(&tx(3, 2)), None);
        assert!(!m.contains_key(&tx(3, 2)));
    }
}
