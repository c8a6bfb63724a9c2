//! The store's room: the gate every transaction passes (so the writer can
//! grow the map), the map/used/budget figures the writer measures, and the
//! pure policy that decides when to grow the map and when new calls must be
//! refused so the records of calls that happened still fit.
//!
//! Growing an LMDB map (`mdb_env_set_mapsize`) unmaps and maps the file
//! again: no transaction of this process may be open at that moment, in any
//! thread, or a reader would touch unmapped memory. Every transaction (and
//! the sync) therefore holds the gate shared. To grow, the writer raises a
//! flag that keeps new transactions out (control threads wait, shards get an
//! error instead of waiting), lets the open ones finish, remaps, and lowers
//! the flag; if they do not finish within its patience it gives up and tries
//! again later, so nobody is held back longer than that. The map doubles
//! each time, so this happens a handful of times in a store's life.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, TryLockError};
use std::time::{Duration, Instant};

use heed::{CommitOrAbort, DatabaseOpener, Env, OnCommit, RoTxn, RwTxn, WithTls};

/// Map size, use and budget, as last measured by the writer, and whether new
/// calls are refused for lack of room. Shared by everything that holds the
/// store (shards read `refusing_calls` per new INVITE).
#[derive(Default)]
pub struct Space {
    gate: RwLock<()>,
    /// The writer wants the gate exclusively: no new transactions.
    pending: AtomicBool,
    map_bytes: AtomicU64,
    used_bytes: AtomicU64,
    live_bytes: AtomicU64,
    budget_bytes: AtomicU64,
    refusing: AtomicBool,
    flows_dropped: AtomicU64,
}

/// One measurement of the store (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Size of the memory map (what the file may grow to without a resize).
    pub map: u64,
    /// Pages the file has ever handed out (its high-water mark: disk use).
    pub used: u64,
    /// Pages holding data now; `used - live` are free pages LMDB reuses.
    pub live: u64,
    /// The most the map may grow to (`[store] max_disk_mib`).
    pub budget: u64,
    /// New calls are refused (503) until retention frees room.
    pub refusing_calls: bool,
}

impl Space {
    pub(super) fn gate(&self) -> RwLockReadGuard<'_, ()> {
        while self.pending.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(50));
        }
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The gate without waiting (for shards): None while the map is grown.
    pub(super) fn try_gate(&self) -> Option<RwLockReadGuard<'_, ()>> {
        if self.pending.load(Ordering::Acquire) {
            return None;
        }
        match self.gate.try_read() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Runs `f` with the gate held exclusively, once the transactions open
    /// now have ended (new ones are held off meanwhile); None (and `f` not
    /// run) when they have not within `patience`.
    pub(super) fn exclusive<R>(&self, patience: Duration, f: impl FnOnce() -> R) -> Option<R> {
        let deadline = Instant::now() + patience;
        self.pending.store(true, Ordering::Release);
        let guard = loop {
            match self.gate.try_write() {
                Ok(g) => break Some(g),
                Err(TryLockError::Poisoned(p)) => break Some(p.into_inner()),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(TryLockError::WouldBlock) => break None,
            }
        };
        let out = guard.map(|_g| f());
        self.pending.store(false, Ordering::Release);
        out
    }

    pub(super) fn record(&self, u: &Usage) {
        self.map_bytes.store(u.map, Ordering::Relaxed);
        self.used_bytes.store(u.used, Ordering::Relaxed);
        self.live_bytes.store(u.live, Ordering::Relaxed);
        self.budget_bytes.store(u.budget, Ordering::Relaxed);
    }

    pub(super) fn set_refusing(&self, on: bool) {
        self.refusing.store(on, Ordering::Release);
    }

    /// True while the store is too full for new calls: their records might
    /// not fit, so they are refused rather than lost.
    pub fn refusing_calls(&self) -> bool {
        self.refusing.load(Ordering::Acquire)
    }

    /// SIP flows not stored because the store was too full.
    pub fn note_flows_dropped(&self, n: u64) {
        self.flows_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn flows_dropped(&self) -> u64 {
        self.flows_dropped.load(Ordering::Relaxed)
    }

    /// The last measurement (for `/metrics` and AMI health).
    pub fn usage(&self) -> Usage {
        Usage {
            map: self.map_bytes.load(Ordering::Relaxed),
            used: self.used_bytes.load(Ordering::Relaxed),
            live: self.live_bytes.load(Ordering::Relaxed),
            budget: self.budget_bytes.load(Ordering::Relaxed),
            refusing_calls: self.refusing_calls(),
        }
    }
}

/// What the writer should do about room, from one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Grow the map to this many bytes.
    pub grow_to: Option<u64>,
    /// Refuse new calls (and stop storing SIP flows).
    pub refuse_calls: bool,
}

/// The map grows once fewer than 1/GROW_WHEN of its pages were never used.
const GROW_WHEN: u64 = 8;
/// New calls are refused once live data passes 7/8 of the budget: the last
/// eighth is kept for registrations and the records of calls under way.
const REFUSE_NUM: u64 = 7;
/// ... and admitted again once it is back under 3/4 (no flapping).
const ADMIT_NUM: u64 = 6;
const DENOM: u64 = 8;

/// Decides growth and refusal. `u.refusing_calls` is the current state (for
/// the hysteresis); sizes are rounded to `page` (the OS page size).
pub fn plan(u: &Usage, page: u64) -> Plan {
    let page = page.max(1);
    let round = |b: u64| b / page * page;
    let budget = round(u.budget).max(page);
    let grow_to = if u.map < budget && u.map.saturating_sub(u.used) < u.map / GROW_WHEN {
        // Double, but never past the budget.
        let want = round(u.map.saturating_mul(2).min(budget));
        (want > u.map).then_some(want)
    } else {
        None
    };
    let refuse_calls = if u.refusing_calls {
        u.live >= budget / DENOM * ADMIT_NUM
    } else {
        u.live >= budget / DENOM * REFUSE_NUM
    };
    Plan {
        grow_to,
        refuse_calls,
    }
}

/// Bytes SIP flows may still take: flows stop at the threshold where calls
/// are refused, so a burst of them never eats the last eighth kept for
/// registrations and CDRs.
pub fn flow_allowance(u: &Usage, page: u64) -> u64 {
    let budget = u.budget / page.max(1) * page.max(1);
    (budget / DENOM * REFUSE_NUM).saturating_sub(u.live)
}

/// Roughly what storing a value of `len` bytes under a `key_len` key takes
/// in the map: large values get overflow pages of their own.
pub fn stored_size(key_len: usize, len: usize, page: u64) -> u64 {
    let raw = (key_len + len + 16) as u64;
    if raw * 2 > page {
        raw.div_ceil(page.max(1)) * page
    } else {
        raw
    }
}

/// A read transaction that holds the gate (the map cannot move under it).
pub struct ReadTxn<'s> {
    // Field order matters: the transaction ends before the gate opens.
    txn: RoTxn<'static, WithTls>,
    _gate: RwLockReadGuard<'s, ()>,
}

impl<'s> Deref for ReadTxn<'s> {
    type Target = RoTxn<'static, WithTls>;
    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

/// A write transaction that holds the gate.
pub struct WriteTxn<'s> {
    txn: RwTxn<'static>,
    _gate: RwLockReadGuard<'s, ()>,
}

impl WriteTxn<'_> {
    pub fn commit(self) -> heed::Result<()> {
        let WriteTxn { txn, _gate } = self;
        txn.commit()
    }
}

impl<'s> Deref for WriteTxn<'s> {
    type Target = RwTxn<'static>;
    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

impl DerefMut for WriteTxn<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.txn
    }
}

/// The environment as code outside the store module sees it: every
/// transaction it opens passes the gate.
#[derive(Clone, Copy)]
pub struct GatedEnv {
    pub(super) env: &'static Env,
    pub(super) space: &'static Space,
}

impl GatedEnv {
    pub fn read_txn(&self) -> heed::Result<ReadTxn<'static>> {
        let gate = self.space.gate();
        Ok(ReadTxn {
            txn: self.env.read_txn()?,
            _gate: gate,
        })
    }

    /// A read transaction, or an error instead of waiting while the map is
    /// being grown (shards must not wait).
    pub fn try_read_txn(&self) -> Result<ReadTxn<'static>, super::StoreError> {
        let gate = self
            .space
            .try_gate()
            .ok_or_else(|| super::StoreError("store: the map is being grown".into()))?;
        Ok(ReadTxn {
            txn: self.env.read_txn()?,
            _gate: gate,
        })
    }

    pub fn write_txn(&self) -> heed::Result<WriteTxn<'static>> {
        let gate = self.space.gate();
        Ok(WriteTxn {
            txn: self.env.write_txn()?,
            _gate: gate,
        })
    }

    /// `heed::Env::create_databases_and_commit` on a gated transaction.
    pub fn create_databases_and_commit<F, D, A, E>(
        &self,
        wtxn: WriteTxn<'static>,
        f: F,
    ) -> Result<CommitOrAbort<D::Committed, A>, E>
    where
        F: FnOnce(
            &DatabaseOpener<'static, WithTls>,
            &mut RwTxn<'static>,
        ) -> Result<CommitOrAbort<D, A>, E>,
        D: OnCommit,
        E: From<heed::Error>,
    {
        let WriteTxn { txn, _gate } = wtxn;
        self.env.create_databases_and_commit(txn, f)
    }

    /// `heed::Env::open_databases_and_commit` on a gated transaction.
    pub fn open_databases_and_commit<F, D, A, E>(
        &self,
        rtxn: ReadTxn<'static>,
        f: F,
    ) -> Result<CommitOrAbort<D::Committed, A>, E>
    where
        F: FnOnce(
            &DatabaseOpener<'static, WithTls>,
            &RoTxn<'static, WithTls>,
        ) -> Result<CommitOrAbort<D, A>, E>,
        D: OnCommit,
        E: From<heed::Error>,
    {
        let ReadTxn { txn, _gate } = rtxn;
        self.env.open_databases_and_commit(txn, f)
    }
}

/// Page counts of a named database as LMDB keeps them in the main database
/// (its `MDB_db` record: pad u32, flags u16, depth u16, then branch, leaf
/// and overflow page counts, entries and root as machine words).
pub(super) fn db_record_pages(raw: &[u8]) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    if raw.len() != 8 + 5 * WORD {
        return None;
    }
    let word = |i: usize| -> Option<u64> {
        let at = 8 + i * WORD;
        let bytes: [u8; WORD] = raw.get(at..at + WORD)?.try_into().ok()?;
        Some(usize::from_ne_bytes(bytes) as u64)
    };
    Some(word(0)? + word(1)? + word(2)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn usage(map: u64, used: u64, live: u64, budget: u64, refusing: bool) -> Usage {
        Usage {
            map,
            used,
            live,
            budget,
            refusing_calls: refusing,
        }
    }

    #[test]
    fn the_map_doubles_when_nearly_used_up_but_never_past_the_budget() {
        // Plenty of never-used pages: no growth.
        assert_eq!(
            plan(&usage(MIB, MIB / 2, MIB / 2, 8 * MIB, false), 4096).grow_to,
            None
        );
        // Fewer than 1/8 left: double.
        let p = plan(&usage(MIB, MIB - 4096, MIB / 2, 8 * MIB, false), 4096);
        assert_eq!(p.grow_to, Some(2 * MIB));
        // Capped at the budget.
        let p = plan(&usage(6 * MIB, 6 * MIB, MIB, 8 * MIB, false), 4096);
        assert_eq!(p.grow_to, Some(8 * MIB));
        // At the budget: nothing to grow.
        let p = plan(&usage(8 * MIB, 8 * MIB, MIB, 8 * MIB, false), 4096);
        assert_eq!(p.grow_to, None);
        // A budget that is not a page multiple is rounded down.
        let p = plan(&usage(4096, 4096, 4096, 3 * 4096 + 100, false), 4096);
        assert_eq!(p.grow_to, Some(2 * 4096));
    }

    #[test]
    fn calls_are_refused_near_the_budget_with_hysteresis() {
        let b = 8 * MIB;
        assert!(!plan(&usage(b, b, 6 * MIB, b, false), 4096).refuse_calls);
        assert!(plan(&usage(b, b, 7 * MIB, b, false), 4096).refuse_calls);
        // Once refusing, calls come back only under 3/4 of the budget.
        assert!(plan(&usage(b, b, 6 * MIB + 1, b, true), 4096).refuse_calls);
        assert!(!plan(&usage(b, b, 6 * MIB - 1, b, true), 4096).refuse_calls);
        // Free pages (used > live) do not count against the budget.
        assert!(!plan(&usage(b, b, MIB, b, false), 4096).refuse_calls);
    }

    #[test]
    fn flows_may_fill_only_up_to_the_refusal_threshold() {
        let b = 8 * MIB;
        assert_eq!(flow_allowance(&usage(b, b, 6 * MIB, b, false), 4096), MIB);
        assert_eq!(flow_allowance(&usage(b, b, 7 * MIB, b, false), 4096), 0);
        assert_eq!(flow_allowance(&usage(b, b, 8 * MIB, b, false), 4096), 0);
        assert_eq!(stored_size(10, 100, 4096), 126);
        assert_eq!(stored_size(10, 11_000, 4096), 3 * 4096);
    }

    #[test]
    fn db_records_are_read_as_lmdb_lays_them_out() {
        let mut raw = vec![0u8; 8];
        for w in [3usize, 10, 2, 99, 7] {
            raw.extend_from_slice(&w.to_ne_bytes());
        }
        assert_eq!(db_record_pages(&raw), Some(15));
        assert_eq!(db_record_pages(&raw[..20]), None);
    }
}
