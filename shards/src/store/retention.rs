//! Retention: removes CDRs and SIP flows older than their keep time, a
//! bounded batch per write transaction, so the writer goes back to its
//! queue between batches. A cursor remembers where a pass got to, so CDRs
//! kept back (a push still pending) are not read again on every batch.

use heed::RwTxn;

use super::{Store, StoreError};

/// Where a pass over the time-ordered CDR keys stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The next key to look at; empty = from the oldest.
    next: Vec<u8>,
}

/// What one batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Call-IDs whose record (or flow, for [`Store::sweep_flows`]) went.
    pub removed: Vec<String>,
    /// The pass reached the cut-off: nothing older is left to look at (the
    /// cursor starts again from the oldest next time).
    pub done: bool,
}

/// The key every CDR of `ms` sorts at or after.
fn time_key(ms: u64) -> [u8; 8] {
    ms.to_be_bytes()
}

/// The first key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

impl Store {
    /// Removes up to `limit` CDRs that started before `before_ms`, oldest
    /// first: the record, its callId index entry and its SIP flow, plus
    /// whatever `also(txn, callId)` removes (the push state). A CDR that
    /// `keep(txn, callId)` holds back (its push is still pending) stays.
    pub fn sweep_cdrs(
        &self,
        cursor: &mut Cursor,
        before_ms: u64,
        limit: usize,
        mut keep: impl FnMut(&RwTxn, &str) -> Result<bool, StoreError>,
        mut also: impl FnMut(&mut RwTxn, &str) -> Result<(), StoreError>,
    ) -> Result<Swept, StoreError> {
        let mut wtxn = self.write_txn()?;
        let (keys, done) = self.keys_before(&wtxn, cursor, before_ms, limit)?;
        let mut removed = Vec::new();
        for (key, call_id) in &keys {
            if keep(&wtxn, call_id)? {
                continue;
            }
            self.cdrs.delete(&mut wtxn, key)?;
            if self.cdr_ids.get(&wtxn, call_id)? == Some(key.as_slice()) {
                self.cdr_ids.delete(&mut wtxn, call_id)?;
            }
            if let Some(flows) = self.flows {
                flows.delete(&mut wtxn, call_id)?;
            }
            also(&mut wtxn, call_id)?;
            removed.push(call_id.clone());
        }
        wtxn.commit()?;
        advance(cursor, &keys, done);
        Ok(Swept { removed, done })
    }

    /// Removes the SIP flows of up to `limit` calls that started before
    /// `before_ms` (their CDRs stay).
    pub fn sweep_flows(
        &self,
        cursor: &mut Cursor,
        before_ms: u64,
        limit: usize,
    ) -> Result<Swept, StoreError> {
        let Some(flows) = self.flows else {
            return Err(StoreError("store: opened read-only".into()));
        };
        let mut wtxn = self.write_txn()?;
        let (keys, done) = self.keys_before(&wtxn, cursor, before_ms, limit)?;
        let mut removed = Vec::new();
        for (_, call_id) in &keys {
            if flows.delete(&mut wtxn, call_id)? {
                removed.push(call_id.clone());
            }
        }
        wtxn.commit()?;
        advance(cursor, &keys, done);
        Ok(Swept { removed, done })
    }

    /// Up to `limit` (key, callId) of CDRs from the cursor on that started
    /// before `before_ms`; true when there are no more.
    #[allow(clippy::type_complexity)]
    fn keys_before(
        &self,
        txn: &RwTxn,
        cursor: &Cursor,
        before_ms: u64,
        limit: usize,
    ) -> Result<(Vec<(Vec<u8>, String)>, bool), StoreError> {
        let to = time_key(before_ms);
        // LMDB refuses an empty key, so "from the oldest" is unbounded.
        let from = match cursor.next.as_slice() {
            [] => std::ops::Bound::Unbounded,
            k => std::ops::Bound::Included(k),
        };
        let range = (from, std::ops::Bound::Excluded(&to[..]));
        let mut keys = Vec::new();
        if cursor.next.as_slice() >= &to[..] {
            return Ok((keys, true));
        }
        for item in self.cdrs.range(txn, &range)? {
            if keys.len() >= limit.max(1) {
                return Ok((keys, false));
            }
            let (key, _) = item?;
            let call_id = String::from_utf8_lossy(key.get(8..).unwrap_or_default()).into_owned();
            keys.push((key.to_vec(), call_id));
        }
        Ok((keys, true))
    }
}

fn advance(cursor: &mut Cursor, keys: &[(Vec<u8>, String)], done: bool) {
    cursor.next = match (done, keys.last()) {
        (false, Some((last, _))) => successor(last),
        _ => Vec::new(),
    };
}

#[cfg(test)]
mod tests {

    /// Bytes a flow compressor cannot shrink (stored flows are compressed).
    fn incompressible(len: usize, seed: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed as u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
    use super::*;
    use crate::cdr::Cdr;
    use crate::store::StoreOptions;

    fn cdr(id: &str, start: u64) -> Cdr {
        Cdr {
            call_id: id.into(),
            start_time: crate::cdr::time_fmt::rfc3339_ms(start),
            ring_time: None,
            answer_time: None,
            end_time: crate::cdr::time_fmt::rfc3339_ms(start + 1000),
            duration_secs: 0,
            caller: "sip:a@x".into(),
            callee: "sip:b@x".into(),
            from_number: "a".into(),
            to_number: "b".into(),
            direction: crate::cdr::Direction::Internal,
            status: crate::cdr::CallStatus::Failed,
            status_code: 404,
            hangup_reason: crate::cdr::HangupReason::Failed,
            sip_trunk_id: None,
            route_id: None,
            auth_user: None,
            recorder: vec![],
            recording_url: None,
            metadata: Default::default(),
        }
    }

    fn ids(store: &Store) -> Vec<String> {
        store
            .cdrs_since(0, 100)
            .unwrap()
            .into_iter()
            .map(|c| c.call_id)
            .collect()
    }

    #[test]
    fn old_cdrs_go_in_bounded_batches_with_their_index_and_flow() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let calls: Vec<Cdr> = (0..5)
            .map(|i| cdr(&format!("c{i}"), 1000 * (i + 1)))
            .collect();
        store.put_cdrs(&calls).unwrap();
        let flows: Vec<(String, Vec<u8>)> =
            (0..5).map(|i| (format!("c{i}"), vec![1; 10])).collect();
        store.put_flows(&flows).unwrap();
        let mut cursor = Cursor::default();
        // Before 3500: c0, c1, c2; two per batch.
        let s = store
            .sweep_cdrs(&mut cursor, 3500, 2, |_, _| Ok(false), |_, _| Ok(()))
            .unwrap();
        assert_eq!(
            (s.removed.as_slice(), s.done),
            (&["c0".to_string(), "c1".into()][..], false)
        );
        let s = store
            .sweep_cdrs(&mut cursor, 3500, 2, |_, _| Ok(false), |_, _| Ok(()))
            .unwrap();
        assert_eq!(
            (s.removed.as_slice(), s.done),
            (&["c2".to_string()][..], true)
        );
        assert_eq!(ids(&store), ["c3", "c4"]);
        assert!(store.cdr("c2").unwrap().is_none());
        assert!(store.flow("c2").unwrap().is_none());
        assert!(store.flow("c3").unwrap().is_some());
        // Nothing more before the cut-off.
        let s = store
            .sweep_cdrs(&mut cursor, 3500, 2, |_, _| Ok(false), |_, _| Ok(()))
            .unwrap();
        assert!(s.removed.is_empty() && s.done);
    }

    #[test]
    fn a_kept_cdr_stays_and_the_cursor_moves_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let calls: Vec<Cdr> = (0..4)
            .map(|i| cdr(&format!("c{i}"), 1000 * (i + 1)))
            .collect();
        store.put_cdrs(&calls).unwrap();
        let mut cursor = Cursor::default();
        let mut also = Vec::new();
        let s = store
            .sweep_cdrs(
                &mut cursor,
                10_000,
                1,
                |_, id| Ok(id == "c0"),
                |_, _| Ok(()),
            )
            .unwrap();
        assert!(s.removed.is_empty() && !s.done, "c0 kept back");
        let s = store
            .sweep_cdrs(
                &mut cursor,
                10_000,
                10,
                |_, id| Ok(id == "c0"),
                |_, id| {
                    also.push(id.to_string());
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(s.removed, ["c1", "c2", "c3"]);
        assert!(s.done);
        assert_eq!(also, ["c1", "c2", "c3"]);
        assert_eq!(ids(&store), ["c0"]);
        // The next pass starts from the oldest again: c0 is looked at anew.
        let s = store
            .sweep_cdrs(&mut cursor, 10_000, 10, |_, _| Ok(false), |_, _| Ok(()))
            .unwrap();
        assert_eq!(s.removed, ["c0"]);
    }

    #[test]
    fn flows_go_before_their_cdrs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        store
            .put_cdrs(&[cdr("old", 1000), cdr("new", 5000)])
            .unwrap();
        store
            .put_flows(&[("old".into(), vec![1]), ("new".into(), vec![2])])
            .unwrap();
        let mut cursor = Cursor::default();
        let s = store.sweep_flows(&mut cursor, 3000, 10).unwrap();
        assert_eq!(
            (s.removed.as_slice(), s.done),
            (&["old".to_string()][..], true)
        );
        assert!(store.flow("old").unwrap().is_none());
        assert!(store.flow("new").unwrap().is_some());
        assert_eq!(ids(&store), ["old", "new"]);
    }

    #[test]
    fn the_map_grows_to_the_budget_and_the_room_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                map_size: 1 << 20,
                read_only: false,
            },
        )
        .unwrap();
        store.set_budget(4 << 20);
        let before = store.tend_space().unwrap();
        assert_eq!(before.map, 1 << 20);
        assert!(before.live > 0 && before.live <= before.used);
        // Fill past the map: each write that fails for room grows it.
        let mut n = 0;
        while store.space().usage().map < 4 << 20 && n < 2000 {
            let big = incompressible(16 << 10, n);
            match store.put_flows(&[(format!("f{n}"), big)]) {
                Ok(()) => n += 1,
                Err(e) if crate::store::is_map_full(&e) => {
                    assert!(store
                        .grow_after_full(std::time::Duration::from_secs(1))
                        .unwrap());
                }
                Err(e) => panic!("{e}"),
            }
            store.tend_space().unwrap();
        }
        let u = store.tend_space().unwrap();
        assert_eq!(u.map, 4 << 20, "grown to the budget");
        // Keep filling until calls would be refused; it never grows past.
        while !store.space().refusing_calls() && n < 2000 {
            let big = incompressible(16 << 10, n);
            if store.put_flows(&[(format!("f{n}"), big)]).is_err() {
                break;
            }
            n += 1;
            store.tend_space().unwrap();
        }
        let u = store.tend_space().unwrap();
        assert!(u.refusing_calls, "{u:?}");
        assert_eq!(u.map, 4 << 20);
        assert!(!store.grow_after_full(std::time::Duration::ZERO).unwrap());
        // Deleting data gives room back: live drops, calls come back.
        let mut wtxn = store.env().write_txn().unwrap();
        let flows = store.flows.unwrap();
        flows.clear(&mut wtxn).unwrap();
        wtxn.commit().unwrap();
        let u = store.tend_space().unwrap();
        assert!(!u.refusing_calls, "{u:?}");
        assert!(u.live < u.used);
    }

    #[test]
    fn growing_the_map_under_concurrent_readers_is_safe() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                map_size: 1 << 20,
                read_only: false,
            },
        )
        .unwrap();
        store.set_budget(16 << 20);
        store.put_cdrs(&[cdr("first", 1)]).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // Every read sees consistent data while the map moves.
                        let c = store.cdr("first").unwrap().unwrap();
                        assert_eq!(c.status_code, 404);
                        let _ = store.flow("f1");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let mut grown = 0;
        for n in 0..600 {
            let mut big = incompressible(16 << 10, n);
            big[0] = n as u8;
            match store.put_flows(&[(format!("f{n}"), big)]) {
                Ok(()) => {}
                Err(e) if crate::store::is_map_full(&e) => {
                    assert!(store
                        .grow_after_full(std::time::Duration::from_secs(5))
                        .unwrap());
                }
                Err(e) => panic!("{e}"),
            }
            let before = store.space().usage().map;
            if store.tend_space().unwrap().map > before {
                grown += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        assert!(grown >= 2, "grew {grown} times");
        assert_eq!(store.flow("f599").unwrap().unwrap()[0], (599 % 256) as u8);
    }
}
