//! The LMDB store (heed): one environment per process under `data_dir/lmdb`.
//!
//! Shards and the CLI only read. Exactly one writer (the control core's writer
//! thread) calls the `&mut`-free write methods here, batching many changes into
//! one transaction. The environment is opened with `NO_SYNC`; the writer calls
//! [`Store::sync`] about once a second and at shutdown.
//!
//! Every transaction passes the gate of [`space`], so the writer can grow
//! the map up to its budget ([`Store::tend_space`]); [`retention`] removes
//! old CDRs and SIP flows.

pub mod flow_pack;
pub mod retention;
pub mod space;

use std::path::{Path, PathBuf};

use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions};

pub use space::{GatedEnv, ReadTxn, Space, Usage, WriteTxn};

use crate::cdr::Cdr;
use crate::registrar::{self, Binding, BindingChange, ChangeError, ChangeOutcome};

/// Where and how to open the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub map_size: usize,
    /// The CLI opens read-only, also while the server runs.
    pub read_only: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            map_size: 1 << 30,
            read_only: false,
        }
    }
}

/// A store failure, with the path for context.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> Self {
        StoreError(format!("store: {e}"))
    }
}

/// The process's LMDB environment and its databases.
///
/// The environment lives as long as the process (one per process, as LMDB
/// wants), which lets shards hold plain `'static` handles to it.
#[derive(Clone)]
pub struct Store {
    env: &'static Env,
    space: &'static Space,
    /// The unnamed database (one record per named database), for measuring
    /// live data; None when read-only.
    main: Option<Database<'static, Bytes, Bytes>>,
    /// AOR -> JSON array of [`Binding`].
    bindings: Database<'static, Str, Bytes>,
    /// (start unix ms big-endian, callId) -> CDR JSON, in time order.
    cdrs: Database<'static, Bytes, Bytes>,
    /// callId -> key in `cdrs`.
    cdr_ids: Database<'static, Str, Bytes>,
    /// callId -> the call's SIP messages (JSON array); None in a read-only
    /// store written before sip-flow existed.
    flows: Option<Database<'static, Str, Bytes>>,
    path: PathBuf,
}

const BINDINGS_DB: &str = "bindings";
const CDRS_DB: &str = "cdrs";
const CDR_IDS_DB: &str = "cdr_ids";
const FLOWS_DB: &str = "sipflows";

type Dbs = (
    Database<'static, Str, Bytes>,
    Database<'static, Bytes, Bytes>,
    Database<'static, Str, Bytes>,
);

impl Store {
    /// Opens (creating unless read-only) the environment in `dir`.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        if !opts.read_only {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError(format!("data_dir: cannot create {}: {e}", dir.display()))
            })?;
        } else if !dir.join("data.mdb").exists() {
            return Err(StoreError(format!(
                "data_dir: no store at {} (has the server run with this config?)",
                dir.display()
            )));
        }
        // Never below the file as it is: the writer may have grown the map
        // past the configured size, and a map smaller than the file would,
        // with WRITE_MAP, truncate the file under a running server's map.
        let file_len = std::fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.len());
        let page = page_size() as usize;
        let map_size = opts
            .map_size
            .max(usize::try_from(file_len).unwrap_or(usize::MAX));
        let map_size = map_size.div_ceil(page).saturating_mul(page);
        let mut options = EnvOpenOptions::new();
        options.map_size(map_size).max_dbs(16).max_readers(512);
        let flags = if opts.read_only {
            EnvFlags::READ_ONLY
        } else {
            EnvFlags::NO_SYNC | EnvFlags::WRITE_MAP
        };
        // SAFETY: NO_SYNC keeps integrity (LMDB may lose the last commits on a
        // power cut, never corrupt); the writer syncs every second. WRITE_MAP
        // makes a commit a few stores into the map instead of a pwrite per
        // dirty page; only our own safe code writes through it. The env is
        // opened once per process.
        let env = unsafe {
            options.flags(flags);
            options.open(dir)
        }
        .map_err(|e| {
            StoreError(format!(
                "data_dir: cannot open store {}: {e}",
                dir.display()
            ))
        })?;
        let env: &'static Env = Box::leak(Box::new(env));
        let space: &'static Space = Box::leak(Box::default());
        let (bindings, cdrs, cdr_ids): Dbs = if opts.read_only {
            let rtxn = env.read_txn()?;
            env.open_databases_and_commit(rtxn, |dbo, rtxn| {
                let b = dbo.open_database::<Str, Bytes>(rtxn, Some(BINDINGS_DB))?;
                let c = dbo.open_database::<Bytes, Bytes>(rtxn, Some(CDRS_DB))?;
                let i = dbo.open_database::<Str, Bytes>(rtxn, Some(CDR_IDS_DB))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(
                    b.zip(c).zip(i).map(|((b, c), i)| (b, c, i)),
                ))
            })?
            .unwrap_commit()
            .ok_or_else(|| {
                StoreError("store: databases missing (written by an older version?)".into())
            })?
        } else {
            let wtxn = env.write_txn()?;
            env.create_databases_and_commit(wtxn, |dbo, wtxn| {
                let b = dbo.create_database::<Str, Bytes>(wtxn, Some(BINDINGS_DB))?;
                let c = dbo.create_database::<Bytes, Bytes>(wtxn, Some(CDRS_DB))?;
                let i = dbo.create_database::<Str, Bytes>(wtxn, Some(CDR_IDS_DB))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit((b, c, i)))
            })?
            .unwrap_commit()
        };
        let flows = if opts.read_only {
            let rtxn = env.read_txn()?;
            env.open_databases_and_commit(rtxn, |dbo, rtxn| {
                let f = dbo.open_database::<Str, Bytes>(rtxn, Some(FLOWS_DB))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(f))
            })?
            .unwrap_commit()
        } else {
            let wtxn = env.write_txn()?;
            env.create_databases_and_commit(wtxn, |dbo, wtxn| {
                let f = dbo.create_database::<Str, Bytes>(wtxn, Some(FLOWS_DB))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(Some(f)))
            })?
            .unwrap_commit()
        };
        let main = if opts.read_only {
            None
        } else {
            let rtxn = env.read_txn()?;
            env.open_databases_and_commit(rtxn, |dbo, rtxn| {
                let m = dbo.open_database::<Bytes, Bytes>(rtxn, None)?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(m))
            })?
            .unwrap_commit()
        };
        let store = Store {
            env,
            space,
            main,
            bindings,
            cdrs,
            cdr_ids,
            flows,
            path: dir.to_path_buf(),
        };
        // Until told otherwise the map may not grow.
        let map = env.info().map_size as u64;
        space.record(&Usage {
            map,
            budget: map,
            ..Usage::default()
        });
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The environment, for the control core's own named databases
    /// (console users, API tokens) beside the ones opened here; its
    /// transactions pass the gate like the store's own.
    pub fn env(&self) -> GatedEnv {
        GatedEnv {
            env: self.env,
            space: self.space,
        }
    }

    /// Map size, use and budget, and whether new calls are refused.
    pub fn space(&self) -> &'static Space {
        self.space
    }

    fn read_txn(&self) -> Result<ReadTxn<'static>, StoreError> {
        Ok(self.env().read_txn()?)
    }

    fn write_txn(&self) -> Result<WriteTxn<'static>, StoreError> {
        Ok(self.env().write_txn()?)
    }

    /// The stored bindings of one AOR (lapsed ones included; callers filter
    /// by now). Shards call this: it fails rather than wait while the
    /// writer grows the map.
    pub fn bindings(&self, aor: &str) -> Result<Vec<Binding>, StoreError> {
        let rtxn = self.env().try_read_txn()?;
        match self.bindings.get(&rtxn, aor)? {
            Some(raw) => decode(raw),
            None => Ok(Vec::new()),
        }
    }

    /// How many AORs have stored bindings.
    pub fn aor_count(&self) -> Result<u64, StoreError> {
        let rtxn = self.read_txn()?;
        Ok(self.bindings.len(&rtxn)?)
    }

    /// Every stored binding, AOR by AOR.
    pub fn all_bindings(&self) -> Result<Vec<Binding>, StoreError> {
        let rtxn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.bindings.iter(&rtxn)? {
            let (_, raw) = item?;
            out.extend(decode(raw)?);
        }
        Ok(out)
    }

    /// Applies a batch of changes in one write transaction. Each result is the
    /// outcome for the change at the same index.
    pub fn apply_changes(
        &self,
        changes: &[BindingChange],
    ) -> Result<Vec<Result<ChangeOutcome, ChangeError>>, StoreError> {
        self.apply_changes_with(changes, |_, _, _| Ok(()))
    }

    /// As [`Store::apply_changes`], and in the same transaction whatever
    /// `also(txn, change, outcome)` writes for each applied change (the
    /// control core queues locator events there).
    pub fn apply_changes_with(
        &self,
        changes: &[BindingChange],
        mut also: impl FnMut(&mut heed::RwTxn, &BindingChange, &ChangeOutcome) -> Result<(), StoreError>,
    ) -> Result<Vec<Result<ChangeOutcome, ChangeError>>, StoreError> {
        let mut wtxn = self.write_txn()?;
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            let current = match self.bindings.get(&wtxn, &change.aor)? {
                Some(raw) => decode(raw)?,
                None => Vec::new(),
            };
            let result = registrar::apply(current, change);
            if let Ok(outcome) = &result {
                self.put(&mut wtxn, &change.aor, &outcome.bindings)?;
                also(&mut wtxn, change, outcome)?;
            }
            results.push(result);
        }
        wtxn.commit()?;
        Ok(results)
    }

    /// Removes the bindings of `aors` that lapsed by `now`; returns them.
    pub fn remove_expired(&self, aors: &[String], now: u64) -> Result<Vec<Binding>, StoreError> {
        self.remove_expired_with(aors, now, |_, _| Ok(()))
    }

    /// As [`Store::remove_expired`], and in the same transaction whatever
    /// `also(txn, lapsed)` writes.
    pub fn remove_expired_with(
        &self,
        aors: &[String],
        now: u64,
        also: impl FnOnce(&mut heed::RwTxn, &[Binding]) -> Result<(), StoreError>,
    ) -> Result<Vec<Binding>, StoreError> {
        let mut wtxn = self.write_txn()?;
        let mut gone = Vec::new();
        for aor in aors {
            let Some(raw) = self.bindings.get(&wtxn, aor)? else {
                continue;
            };
            let (lapsed, live): (Vec<_>, Vec<_>) =
                decode(raw)?.into_iter().partition(|b| b.expires_at <= now);
            if !lapsed.is_empty() {
                self.put(&mut wtxn, aor, &live)?;
                gone.extend(lapsed);
            }
        }
        also(&mut wtxn, &gone)?;
        wtxn.commit()?;
        Ok(gone)
    }

    fn put(
        &self,
        wtxn: &mut heed::RwTxn<'static>,
        aor: &str,
        list: &[Binding],
    ) -> Result<(), StoreError> {
        if list.is_empty() {
            self.bindings.delete(wtxn, aor)?;
        } else {
            let raw = encode_record(list)?;
            self.bindings.put(wtxn, aor, &raw)?;
        }
        Ok(())
    }

    /// Stores finished calls in one write transaction (a CDR with a callId
    /// already stored replaces it).
    /// Stores calls' SIP flows (callId, the bytes of `call::flow::Flow::encode`),
    /// compressed (see [`flow_pack`]).
    pub fn put_flows(&self, flows: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let packed: Vec<(String, Vec<u8>)> = flows
            .iter()
            .map(|(call_id, raw)| (call_id.clone(), flow_pack::pack(raw)))
            .collect();
        self.put_packed_flows(&packed)
    }

    /// Stores SIP flows already in their stored form ([`flow_pack::pack`]):
    /// the writer packs them once, measures their room by what is stored,
    /// and may retry the write after growing the map.
    pub fn put_packed_flows(&self, flows: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let Some(db) = self.flows else {
            return Err(StoreError("store: opened read-only".into()));
        };
        let mut wtxn = self.write_txn()?;
        for (call_id, stored) in flows {
            db.put(&mut wtxn, call_id, stored)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    /// The stored SIP flow of a call (see `call::flow`), if any, as
    /// `Flow::encode` wrote it.
    pub fn flow(&self, call_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(db) = self.flows else {
            return Ok(None);
        };
        let rtxn = self.read_txn()?;
        let Some(stored) = db.get(&rtxn, call_id)? else {
            return Ok(None);
        };
        flow_pack::unpack(stored)
            .map(Some)
            .ok_or_else(|| StoreError(format!("store: the SIP flow of {call_id} is corrupt")))
    }

    pub fn put_cdrs(&self, cdrs: &[Cdr]) -> Result<(), StoreError> {
        self.put_cdrs_with(cdrs, |_, _| Ok(()))
    }

    /// Stores `cdrs` and, in the same transaction, whatever `also` writes for
    /// each (the control core queues their push there, so a CDR is never
    /// stored without it).
    pub fn put_cdrs_with(
        &self,
        cdrs: &[Cdr],
        mut also: impl FnMut(&mut heed::RwTxn, &Cdr) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut wtxn = self.write_txn()?;
        for cdr in cdrs {
            also(&mut wtxn, cdr)?;
            if let Some(old) = self.cdr_ids.get(&wtxn, &cdr.call_id)? {
                let old = old.to_vec();
                self.cdrs.delete(&mut wtxn, &old)?;
            }
            let mut key = cdr.start_ms().to_be_bytes().to_vec();
            key.extend_from_slice(cdr.call_id.as_bytes());
            let raw = encode_record(cdr)?;
            self.cdrs.put(&mut wtxn, &key, &raw)?;
            self.cdr_ids.put(&mut wtxn, &cdr.call_id, &key)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    /// CDRs that started at or after `since_ms`, oldest first, at most `limit`.
    pub fn cdrs_since(&self, since_ms: u64, limit: usize) -> Result<Vec<Cdr>, StoreError> {
        let rtxn = self.read_txn()?;
        let from = since_ms.to_be_bytes();
        let range = (
            std::ops::Bound::Included(&from[..]),
            std::ops::Bound::Unbounded,
        );
        let mut out = Vec::new();
        for item in self.cdrs.range(&rtxn, &range)? {
            if out.len() >= limit {
                break;
            }
            let (_, raw) = item?;
            out.push(decode_record("CDR", "", raw)?);
        }
        Ok(out)
    }

    /// CDRs that started in `[since_ms, until_ms)`, newest first, each handed
    /// to `visit` until it returns false (one read transaction, one CDR in
    /// memory at a time).
    pub fn cdrs_newest_first(
        &self,
        since_ms: u64,
        until_ms: u64,
        mut visit: impl FnMut(Cdr) -> bool,
    ) -> Result<(), StoreError> {
        if since_ms >= until_ms {
            return Ok(());
        }
        let rtxn = self.read_txn()?;
        let (from, to) = (since_ms.to_be_bytes(), until_ms.to_be_bytes());
        // Keys are (start ms, callId): every key of `until_ms` sorts after `to`.
        let range = (
            std::ops::Bound::Included(&from[..]),
            std::ops::Bound::Excluded(&to[..]),
        );
        for item in self.cdrs.rev_range(&rtxn, &range)? {
            let (_, raw) = item?;
            let cdr = decode_record("CDR", "", raw)?;
            if !visit(cdr) {
                break;
            }
        }
        Ok(())
    }

    /// Is a CDR stored under `call_id`? Shards may call this: like
    /// [`Store::bindings`] it fails rather than wait while the map grows.
    pub fn cdr_exists(&self, call_id: &str) -> Result<bool, StoreError> {
        let rtxn = self.env().try_read_txn()?;
        Ok(self.cdr_ids.get(&rtxn, call_id)?.is_some())
    }

    /// One CDR by its callId.
    pub fn cdr(&self, call_id: &str) -> Result<Option<Cdr>, StoreError> {
        let rtxn = self.read_txn()?;
        let Some(key) = self.cdr_ids.get(&rtxn, call_id)? else {
            return Ok(None);
        };
        match self.cdrs.get(&rtxn, key)? {
            Some(raw) => decode_record("CDR", call_id, raw).map(Some),
            None => Ok(None),
        }
    }

    /// Flushes committed transactions to disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        let _gate = self.space.gate();
        self.env.force_sync().map_err(StoreError::from)
    }

    /// Sets the disk budget: the most the map may grow to, bytes (never
    /// below the map as it is).
    pub fn set_budget(&self, bytes: u64) {
        let mut u = self.space.usage();
        u.budget = bytes.max(u.map);
        self.space.record(&u);
    }

    /// Measures the store: map size, high-water mark, live data.
    pub fn measure(&self) -> Result<Usage, StoreError> {
        let rtxn = self.read_txn()?;
        let info = self.env.info();
        let main = self.env.unnamed_database_stat();
        let page = u64::from(main.page_size);
        let mut live_pages = (main.branch_pages + main.leaf_pages + main.overflow_pages) as u64;
        // The two meta pages.
        live_pages += 2;
        if let Some(db) = self.main {
            for item in db.iter(&rtxn)? {
                let (_, raw) = item?;
                live_pages += space::db_record_pages(raw).unwrap_or(0);
            }
        }
        let used = (info.last_page_number as u64 + 1) * page;
        let before = self.space.usage();
        Ok(Usage {
            map: info.map_size as u64,
            used,
            live: (live_pages * page).min(used),
            budget: before.budget,
            refusing_calls: before.refusing_calls,
        })
    }

    /// The writer's look at the room: grows the map when it is nearly used
    /// up (up to the budget), and refuses or admits new calls. Growing waits
    /// a little for the transactions open in the process to end (see
    /// [`space`]); when they do not, the next look tries again. Returns the
    /// new figures.
    pub fn tend_space(&self) -> Result<Usage, StoreError> {
        let mut u = self.measure()?;
        let os_page = page_size();
        let plan = space::plan(&u, os_page);
        if let Some(to) = plan.grow_to {
            if self.grow(to, GROW_PATIENCE)? {
                tracing::info!(from = u.map, to, budget = u.budget, "store: map grown");
                u.map = to;
            }
        }
        if plan.refuse_calls != u.refusing_calls {
            if plan.refuse_calls {
                tracing::error!(
                    live = u.live,
                    budget = u.budget,
                    "store: nearly full; new calls are refused (503) and SIP flows not stored until retention frees room"
                );
            } else {
                tracing::warn!(
                    live = u.live,
                    budget = u.budget,
                    "store: room again; new calls admitted"
                );
            }
        }
        u.refusing_calls = plan.refuse_calls;
        self.space.record(&u);
        self.space.set_refusing(u.refusing_calls);
        Ok(u)
    }

    /// Grows the map to `to` bytes once the open transactions end (false
    /// when they do not within `patience`).
    fn grow(&self, to: u64, patience: std::time::Duration) -> Result<bool, StoreError> {
        let env = self.env;
        let Ok(size) = usize::try_from(to) else {
            return Err(StoreError(format!("store: map size {to} too large")));
        };
        match self.space.exclusive(patience, || {
            // SAFETY: the gate is held exclusively, so no transaction of this
            // process is open in any thread (each holds the gate shared), and
            // none can start until the remap is done.
            unsafe { env.resize(size) }
        }) {
            None => Ok(false),
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(StoreError(format!(
                "store: cannot grow the map to {to}: {e}"
            ))),
        }
    }

    /// After a write failed with MDB_MAP_FULL: grows the map now (waiting up
    /// to `patience` for the open transactions to end) if the budget allows.
    /// True when the map grew.
    pub fn grow_after_full(&self, patience: std::time::Duration) -> Result<bool, StoreError> {
        let u = self.measure()?;
        let os_page = page_size();
        let budget = u.budget / os_page * os_page;
        if u.map >= budget {
            return Ok(false);
        }
        let to = (u.map.saturating_mul(2).min(budget)) / os_page * os_page;
        if !self.grow(to, patience)? {
            return Ok(false);
        }
        tracing::info!(from = u.map, to, "store: map grown after MDB_MAP_FULL");
        let mut now = self.space.usage();
        now.map = to;
        self.space.record(&now);
        Ok(true)
    }
}

/// How long growing the map may hold new transactions off.
const GROW_PATIENCE: std::time::Duration = std::time::Duration::from_millis(100);

/// Is this error LMDB's "map full"?
pub fn is_map_full(e: &StoreError) -> bool {
    e.0.contains("MDB_MAP_FULL") || e.0.contains("MapFull")
}

/// The OS page size (what map sizes are multiples of).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

fn decode(raw: &[u8]) -> Result<Vec<Binding>, StoreError> {
    decode_record("binding record", "", raw)
}

/// A JSON record read back from the store; `what` and `key` name it in the
/// error (every database of the environment keeps JSON values).
pub fn decode_record<T: serde::de::DeserializeOwned>(
    what: &str,
    key: &str,
    raw: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError(format!("store: corrupt {what} {key}: {e}")))
}

/// A record as the store keeps it (JSON).
pub fn encode_record<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError(format!("store: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::BindingOp;

    fn binding(aor: &str, uri: &str, expires_at: u64) -> Binding {
        Binding {
            aor: aor.into(),
            contact: format!("<{uri}>"),
            uri: uri.into(),
            source: "127.0.0.1:5070".into(),
            transport: "UDP".into(),
            conn: None,
            expires_at,
            q: None,
            instance: None,
            reg_id: None,
            user_agent: Some("test".into()),
            path: vec![],
            call_id: "c".into(),
            cseq: 1,
            updated_at: 0,
        }
    }

    #[test]
    fn batch_write_read_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let changes: Vec<_> = (0..3)
            .map(|i| BindingChange {
                max_contacts: 0,
                aor: format!("sip:{i}@example.com"),
                call_id: "c".into(),
                cseq: 1,
                now: 100,
                ops: vec![BindingOp::Upsert(Box::new(binding(
                    &format!("sip:{i}@example.com"),
                    "sip:x@10.0.0.1",
                    100 + i,
                )))],
            })
            .collect();
        let res = store.apply_changes(&changes).unwrap();
        assert!(res.iter().all(std::result::Result::is_ok));
        assert_eq!(store.all_bindings().unwrap().len(), 3);
        let aors: Vec<String> = changes.iter().map(|c| c.aor.clone()).collect();
        let gone = store.remove_expired(&aors, 101).unwrap();
        assert_eq!(gone.len(), 2); // expires_at 100 and 101
        store.sync().unwrap();
        let left = store.all_bindings().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].aor, "sip:2@example.com");
        assert_eq!(store.bindings("sip:2@example.com").unwrap().len(), 1);
    }

    #[test]
    fn cdrs_are_kept_in_time_order_and_found_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let cdr = |id: &str, start: u64| Cdr {
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
        };
        store
            .put_cdrs(&[cdr("late", 3000), cdr("early", 1000)])
            .unwrap();
        store.put_cdrs(&[cdr("mid", 2000)]).unwrap();
        let ids: Vec<String> = store
            .cdrs_since(0, 10)
            .unwrap()
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        assert_eq!(ids, ["early", "mid", "late"]);
        assert_eq!(store.cdrs_since(2000, 10).unwrap().len(), 2);
        assert_eq!(store.cdrs_since(0, 1).unwrap().len(), 1);
        assert_eq!(store.cdr("mid").unwrap().unwrap().status_code, 404);
        assert!(store.cdr("nope").unwrap().is_none());
        assert!(store.cdr_exists("mid").unwrap());
        assert!(!store.cdr_exists("nope").unwrap());
        // Storing the same call again replaces it.
        store.put_cdrs(&[cdr("mid", 2500)]).unwrap();
        assert_eq!(store.cdrs_since(0, 10).unwrap().len(), 3);
        let newest_first = |since, until, max: usize| {
            let mut ids = Vec::new();
            store
                .cdrs_newest_first(since, until, |c| {
                    ids.push(c.call_id);
                    ids.len() < max
                })
                .unwrap();
            ids
        };
        assert_eq!(newest_first(0, u64::MAX, 10), ["late", "mid", "early"]);
        // since inclusive, until exclusive; the visitor stops the scan.
        assert_eq!(newest_first(1000, 3000, 10), ["mid", "early"]);
        assert_eq!(newest_first(2500, 3001, 10), ["late", "mid"]);
        assert_eq!(newest_first(0, u64::MAX, 1), ["late"]);
        assert!(newest_first(3000, 3000, 10).is_empty());
    }
}
