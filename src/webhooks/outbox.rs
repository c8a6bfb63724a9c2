//! The durable CDR outbox: two databases in the store's environment.
//! `cdr_outbox` holds one item per CDR still to push (key: a big-endian
//! sequence number, so older items come first); `cdr_push` holds each
//! call's push state, shown on its call record.
//!
//! The store writer queues an item in the transaction that stores the CDR
//! ([`Outbox::enqueue_in`]), so no CDR is stored without its push. The
//! pusher's outcomes are small transactions of their own; LMDB serializes
//! them with the writer's batches.

use std::time::Duration;

use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database, RwTxn};
use serde::{Deserialize, Serialize};
use shards::store::{decode_record, encode_record, Store, StoreError};

use super::dispatch::{Due, Queue};

const ITEMS_DB: &str = "cdr_outbox";
const STATES_DB: &str = "cdr_push";

/// One CDR waiting for its push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub call_id: String,
    pub attempts: u32,
    /// Unix ms of the next attempt.
    pub next_at_ms: u64,
    /// Unix ms when the CDR was stored.
    pub created_ms: u64,
    pub last_error: Option<String>,
}

/// A call's push as its call record shows it (`push` of API.md 2.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    /// `pending` | `delivered` | `abandoned` (its CDR is gone from the store).
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Retry schedule: `initial`, doubled per failed attempt, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after the `attempts`-th failed attempt (1 = the first).
    pub fn after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .max(Duration::from_millis(1))
    }
}

#[derive(Clone)]
pub struct Outbox {
    env: shards::store::GatedEnv,
    items: Database<'static, Bytes, Bytes>,
    states: Database<'static, Str, Bytes>,
}

impl Outbox {
    /// Opens (creating) the two databases; needs a store opened read-write.
    pub fn open(store: &Store) -> Result<Outbox, StoreError> {
        let env = store.env();
        let wtxn = env.write_txn()?;
        let (items, states) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                let i = dbo.create_database::<Bytes, Bytes>(wtxn, Some(ITEMS_DB))?;
                let s = dbo.create_database::<Str, Bytes>(wtxn, Some(STATES_DB))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((i, s)))
            })?
            .unwrap_commit();
        Ok(Outbox { env, items, states })
    }

    /// Queues the push of `call_id` inside the writer's transaction, due now.
    pub fn enqueue_in(
        &self,
        wtxn: &mut RwTxn,
        call_id: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let item = Item {
            call_id: call_id.to_string(),
            attempts: 0,
            next_at_ms: now_ms,
            created_ms: now_ms,
            last_error: None,
        };
        append(self.items, wtxn, &encode_record(&item)?)?;
        self.put_state(wtxn, &item, "pending")
    }

    /// Is the push of `call_id` still to be done (retention keeps its CDR)?
    pub fn pending_in(&self, txn: &RwTxn, call_id: &str) -> Result<bool, StoreError> {
        Ok(match self.states.get(txn, call_id)? {
            Some(raw) => decode_record::<PushState>("push state", call_id, raw)?.state == "pending",
            None => false,
        })
    }

    /// Forgets the push state of `call_id`, whose CDR retention removes.
    pub fn forget_in(&self, wtxn: &mut RwTxn, call_id: &str) -> Result<(), StoreError> {
        self.states.delete(wtxn, call_id)?;
        Ok(())
    }

    fn put_state(&self, wtxn: &mut RwTxn, item: &Item, state: &str) -> Result<(), StoreError> {
        let state = PushState {
            state: state.into(),
            attempts: item.attempts,
            last_error: item.last_error.clone(),
        };
        self.states
            .put(wtxn, &item.call_id, &encode_record(&state)?)?;
        Ok(())
    }

    /// Items due by `now_ms` (oldest first, at most `limit`, skipping
    /// `busy`), and the earliest `next_at_ms` of the items not due yet.
    pub fn due_items(
        &self,
        now_ms: u64,
        limit: usize,
        busy: &impl Fn(u64) -> bool,
    ) -> Result<Due<Item>, StoreError> {
        scan_due(
            self.env,
            self.items,
            "outbox item",
            now_ms,
            limit,
            |item: &Item| item.next_at_ms,
            |id, _| !busy(id),
        )
    }

    /// Item `id` is done: gone from the outbox, its call's push `state`
    /// (`delivered`, or `abandoned` when there is nothing left to push).
    pub fn finish(&self, id: u64, item: &Item, state: &str) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.items.delete(&mut wtxn, &id.to_be_bytes())?;
        self.put_state(&mut wtxn, item, state)?;
        wtxn.commit()?;
        Ok(())
    }

    /// Item `id` stays queued as `item` says (next attempt, error).
    pub fn reschedule(&self, id: u64, item: &Item) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.items
            .put(&mut wtxn, &id.to_be_bytes(), &encode_record(item)?)?;
        self.put_state(&mut wtxn, item, "pending")?;
        wtxn.commit()?;
        Ok(())
    }

    /// CDRs waiting for their push.
    pub fn backlog(&self) -> Result<u64, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.items.len(&rtxn)?)
    }

    /// The push state of `call_id`, when its CDR was ever queued.
    pub fn state(&self, call_id: &str) -> Result<Option<PushState>, StoreError> {
        let rtxn = self.env.read_txn()?;
        match self.states.get(&rtxn, call_id)? {
            Some(raw) => Ok(Some(decode_record("push state", call_id, raw)?)),
            None => Ok(None),
        }
    }
}

impl Queue for Outbox {
    type Item = Item;
    fn due(
        &self,
        now_ms: u64,
        limit: usize,
        busy: &std::collections::HashSet<u64>,
    ) -> Result<Due<Item>, StoreError> {
        self.due_items(now_ms, limit, &|id| busy.contains(&id))
    }
}

/// Puts `value` after the last key of a queue keyed by big-endian
/// sequence numbers (so iteration order is arrival order).
pub fn append(
    db: Database<'static, Bytes, Bytes>,
    wtxn: &mut RwTxn,
    value: &[u8],
) -> Result<(), StoreError> {
    let next = match db.last(wtxn)? {
        Some((key, _)) => seq_of(key).wrapping_add(1),
        None => 1,
    };
    db.put(wtxn, &next.to_be_bytes(), value)?;
    Ok(())
}

/// Reads a queue in arrival order and picks the items `eligible(id, item)`
/// accepts whose `next_at` has come, at most `limit` (> 0), and the earliest
/// time another eligible item read on the way comes due. The scan stops at
/// `limit`, so a large backlog is not read whole for every delivery: the
/// rest waits for the next look.
pub fn scan_due<T: serde::de::DeserializeOwned>(
    env: shards::store::GatedEnv,
    db: Database<'static, Bytes, Bytes>,
    what: &str,
    now_ms: u64,
    limit: usize,
    next_at: impl Fn(&T) -> u64,
    mut eligible: impl FnMut(u64, &T) -> bool,
) -> Result<Due<T>, StoreError> {
    let rtxn = env.read_txn()?;
    let mut due = Vec::new();
    let mut next: Option<u64> = None;
    for entry in db.iter(&rtxn)? {
        let (key, raw) = entry?;
        let id = seq_of(key);
        let item: T = decode_record(what, "", raw)?;
        if !eligible(id, &item) {
            continue;
        }
        let at = next_at(&item);
        if at <= now_ms {
            due.push((id, item));
            if due.len() >= limit {
                break;
            }
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok((due, next))
}

pub fn seq_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shards::store::StoreOptions;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        };
        let secs: Vec<u64> = (1..=11).map(|a| b.after(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.after(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn items_come_due_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            map_size: 16 << 20,
            read_only: false,
        };
        let store = Store::open(dir.path(), &opts).unwrap();
        let outbox = Outbox::open(&store).unwrap();
        let mut wtxn = store.env().write_txn().unwrap();
        for (i, id) in ["a@x", "b@x", "c@x"].iter().enumerate() {
            outbox.enqueue_in(&mut wtxn, id, 1000 + i as u64).unwrap();
        }
        wtxn.commit().unwrap();
        let none = |_| false;
        let (due, next) = outbox.due_items(1001, 10, &none).unwrap();
        let ids: Vec<&str> = due.iter().map(|(_, i)| i.call_id.as_str()).collect();
        assert_eq!((ids, next), (vec!["a@x", "b@x"], Some(1002)));

        let (id_a, mut a) = due[0].clone();
        a.attempts = 1;
        a.next_at_ms = 5000;
        a.last_error = Some("connect: refused".into());
        outbox.reschedule(id_a, &a).unwrap();
        let (id_b, b) = due[1].clone();
        outbox.finish(id_b, &b, "delivered").unwrap();
        assert_eq!(outbox.backlog().unwrap(), 2);
        assert_eq!(outbox.state("b@x").unwrap().unwrap().state, "delivered");
        let sa = outbox.state("a@x").unwrap().unwrap();
        assert_eq!((sa.state.as_str(), sa.attempts), ("pending", 1));
        // Busy items are skipped.
        let (due, next) = outbox.due_items(9999, 10, &|id| id == id_a).unwrap();
        assert_eq!((due.len(), next), (1, None));

        // The sequence continues after the last item, so order is kept.
        let mut wtxn = store.env().write_txn().unwrap();
        outbox.enqueue_in(&mut wtxn, "d@x", 1003).unwrap();
        wtxn.commit().unwrap();
        let (due, _) = outbox.due_items(9999, 10, &none).unwrap();
        let ids: Vec<&str> = due.iter().map(|(_, i)| i.call_id.as_str()).collect();
        assert_eq!(ids, vec!["a@x", "c@x", "d@x"]);
    }
}
