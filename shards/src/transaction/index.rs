//! [`KeyIndex`]: finds a transaction by its key (or its alias) without a
//! second copy of the key. The index holds only `(hash, TxId, which key)`;
//! the key itself lives once, in the transaction's entry, and the table
//! hands a lookup to read it there. Keyed with a per-table random SipHash
//! seed, since every key comes off the wire.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::key::{KeyData, TransactionKey};
use super::TxId;

/// Which of an entry's keys an index slot stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    Key,
    Alias,
}

#[derive(Clone, Copy)]
struct Indexed {
    hash: u64,
    id: TxId,
    which: Which,
}

pub(super) struct KeyIndex {
    table: HashTable<Indexed>,
    hasher: RandomState,
}

impl KeyIndex {
    pub(super) fn new() -> Self {
        KeyIndex {
            table: HashTable::new(),
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, view: &KeyData<&str>) -> u64 {
        self.hasher.hash_one(view)
    }

    /// The transaction whose key (or alias) equals `view`; `key_of` reads a
    /// transaction's key from the table.
    pub(super) fn get<'k>(
        &self,
        view: &KeyData<&str>,
        key_of: impl Fn(TxId, Which) -> Option<&'k TransactionKey>,
    ) -> Option<TxId> {
        let hash = self.hash(view);
        self.table
            .find(hash, |e| {
                e.hash == hash && key_of(e.id, e.which).is_some_and(|k| k.view() == *view)
            })
            .map(|e| e.id)
    }

    /// Indexes `key` as `id`'s key or alias. An equal key already indexed
    /// now finds `id` instead (as a map's insert would).
    pub(super) fn insert<'k>(
        &mut self,
        key: &TransactionKey,
        id: TxId,
        which: Which,
        key_of: impl Fn(TxId, Which) -> Option<&'k TransactionKey>,
    ) {
        let view = key.view();
        let hash = self.hash(&view);
        let new = Indexed { hash, id, which };
        let same =
            |e: &Indexed| e.hash == hash && key_of(e.id, e.which).is_some_and(|k| k.view() == view);
        match self.table.find_entry(hash, same) {
            Ok(mut old) => *old.get_mut() = new,
            Err(_) => {
                self.table.insert_unique(hash, new, |e| e.hash);
            }
        }
    }

    /// Drops `key` from the index if it still finds `id` there.
    pub(super) fn remove(&mut self, key: &TransactionKey, id: TxId, which: Which) {
        let hash = self.hash(&key.view());
        if let Ok(found) = self
            .table
            .find_entry(hash, |e| e.hash == hash && e.id == id && e.which == which)
        {
            found.remove();
        }
    }

    /// Keys and aliases indexed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Message;
    use crate::transaction::key::{client_view, server_view};

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKabc\r\n\
From: <sip:alice@example.com>;tag=f1\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";

    fn id(index: u32) -> TxId {
        TxId {
            index,
            generation: 0,
        }
    }

    /// Keys live outside the index, as in the table's entries.
    struct Keys(Vec<(TxId, Which, TransactionKey)>);

    impl Keys {
        fn of(&self, id: TxId, which: Which) -> Option<&TransactionKey> {
            self.0
                .iter()
                .find(|(i, w, _)| *i == id && *w == which)
                .map(|(_, _, k)| k)
        }
    }

    #[test]
    fn a_borrowed_view_finds_its_key_and_nothing_else() {
        let invite = Message::parse(INVITE.as_bytes()).unwrap();
        let keys = Keys(vec![(
            id(1),
            Which::Key,
            TransactionKey::server(&invite).unwrap(),
        )]);
        let mut index = KeyIndex::new();
        index.insert(&keys.0[0].2, id(1), Which::Key, |i, w| keys.of(i, w));
        // The ACK of a non-2xx matches the INVITE's server key.
        let ack = INVITE
            .replacen("INVITE sip", "ACK sip", 1)
            .replace("7 INVITE", "7 ACK");
        let ack = Message::parse(ack.as_bytes()).unwrap();
        let view = server_view(&ack).unwrap();
        assert_eq!(index.get(&view, |i, w| keys.of(i, w)), Some(id(1)));
        // Same branch, but a client key: another key.
        let resp = Message::parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKabc\r\nCSeq: 7 INVITE\r\n\r\n",
        )
        .unwrap();
        let view = client_view(&resp).unwrap();
        assert_eq!(index.get(&view, |i, w| keys.of(i, w)), None);
    }

    #[test]
    fn an_equal_key_takes_over_and_the_old_owner_cannot_remove_it() {
        let invite = Message::parse(INVITE.as_bytes()).unwrap();
        let key = TransactionKey::server(&invite).unwrap();
        let keys = Keys(vec![
            (id(1), Which::Key, key.clone()),
            (id(2), Which::Alias, key.clone()),
        ]);
        let mut index = KeyIndex::new();
        let view = key.view();
        index.insert(&key, id(1), Which::Key, |i, w| keys.of(i, w));
        index.insert(&key, id(2), Which::Alias, |i, w| keys.of(i, w));
        assert_eq!(index.len(), 1);
        assert_eq!(index.get(&view, |i, w| keys.of(i, w)), Some(id(2)));
        index.remove(&key, id(1), Which::Key);
        assert_eq!(index.get(&view, |i, w| keys.of(i, w)), Some(id(2)));
        index.remove(&key, id(2), Which::Alias);
        assert_eq!(index.len(), 0);
        assert_eq!(index.get(&view, |i, w| keys.of(i, w)), None);
    }
}
