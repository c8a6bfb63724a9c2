//! The store writer: the only thread that writes LMDB. It takes binding
//! changes from the shards, applies a batch of them in one transaction,
//! answers each shard through its inbox, syncs to disk about once a second
//! and removes bindings whose time ran out. Between batches it does the
//! store's upkeep (`upkeep`): retention, growing the map, refusing new calls
//! near the disk budget. Bindings registered over a stream connection go
//! when the shard reports the connection closed (and, at start, every such
//! binding left from before: no connection outlives the process). Bindings are written first, and SIP flows are not
//! stored while calls are refused, so the room left keeps registrations and
//! the CDRs of calls under way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use shards::control_link::ControlRequest;
use shards::registrar::{BindingChange, BindingOp};
use shards::runtime::{Inbox, RegisterFailure, ShardMsg};
use shards::store::Store;
use shards::time::Now;
use shards::transport::ConnId;

use super::upkeep::{with_room, Upkeep};

/// How long the writer lets requests gather after a batch before it looks
/// again: at most this much added to a REGISTER's answer, and only under
/// load (an idle writer takes the first request at once); at most
/// 1/GATHER wakes of the writer per second however heavy the load. 1 ms
/// rather than 0.3 ms: with 2 shards at 6000 registrations/s it cut 8 %
/// of the CPU per registration (larger batches, fewer commits and fewer
/// rings of the shards' doorbells) and left sipp's p99 at 8 ms
/// (perf/RESULTS.md, tenth session).
const GATHER: Duration = Duration::from_micros(1000);

/// Writer settings (`[store]`, `[runtime]`).
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub batch: usize,
    pub fsync_interval: Duration,
    pub sweep_interval: Duration,
    pub retention: super::upkeep::Retention,
}

/// Runs until every sender is gone, then syncs and returns.
/// Where stored CDRs are queued for their push, and how the pusher is told.
pub struct PushQueue {
    pub outbox: crate::webhooks::outbox::Outbox,
    pub wake: crossbeam_channel::Sender<()>,
}

/// Where binding changes become locator events, and how their sender is told.
pub struct EventQueue {
    pub queue: crate::webhooks::locator::EventQueue,
    pub wake: crossbeam_channel::Sender<()>,
}

/// The durable webhook queues the writer fills in its own transactions.
#[derive(Default)]
pub struct Queues {
    pub cdr: Option<PushQueue>,
    pub locator: Option<EventQueue>,
}

pub fn run(
    store: Store,
    requests: Receiver<ControlRequest>,
    inboxes: Arc<Vec<Arc<Inbox>>>,
    cfg: WriterConfig,
    queues: Queues,
) {
    let mut expiries = ExpiryIndex::default();
    let mut conns = ConnIndex::default();
    let mut stale = Vec::new();
    match store.all_bindings() {
        Ok(all) => {
            for b in all {
                if b.conn.is_some() && !stale.contains(&b.aor) {
                    stale.push(b.aor.clone());
                }
                expiries.push(b.expires_at, b.aor);
            }
        }
        Err(e) => tracing::error!("store: cannot read bindings for the expiry index: {e}"),
    }
    if !stale.is_empty() {
        tracing::info!(
            aors = stale.len(),
            "bindings on connections of the last run go"
        );
        let mut changes = unanswered(stale, BindingOp::StaleConns);
        apply(
            &store,
            &mut changes,
            &inboxes,
            &mut expiries,
            &mut conns,
            queues.locator.as_ref(),
        );
    }
    // fdatasync takes milliseconds: a thread of its own does it, so commits
    // (and the REGISTERs waiting on them) never queue behind a sync.
    let dirty = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let syncer = {
        let (store, dirty, stop) = (store.clone(), dirty.clone(), stop.clone());
        let interval = cfg.fsync_interval;
        std::thread::Builder::new()
            .name("store-sync".into())
            .spawn(move || sync_loop(&store, &dirty, &stop, interval))
    };
    let mut last_sweep = Instant::now();
    let mut batch = Batch::default();
    let mut upkeep = Upkeep::new(cfg.retention);
    upkeep.tend(&store, true);
    let mut more_upkeep = false;
    loop {
        // Retention with more to do comes back at once, between batches.
        let wait = if more_upkeep {
            Duration::ZERO
        } else {
            cfg.sweep_interval.min(Duration::from_secs(1))
        };
        let first = match requests.recv_timeout(wait) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(first) = first {
            push(&mut batch, first);
            while batch.len() < cfg.batch.max(1) {
                match requests.try_recv() {
                    Ok(r) => push(&mut batch, r),
                    Err(_) => break,
                }
            }
            apply(
                &store,
                &mut batch.bindings,
                &inboxes,
                &mut expiries,
                &mut conns,
                queues.locator.as_ref(),
            );
            // Every connection that closed in this batch: one transaction.
            let mut gone = Vec::new();
            for conn in batch.closed.drain(..) {
                gone.extend(unanswered(conns.take(conn), BindingOp::ConnClosed(conn)));
            }
            apply(
                &store,
                &mut gone,
                &inboxes,
                &mut expiries,
                &mut conns,
                queues.locator.as_ref(),
            );
            if !batch.cdrs.is_empty() {
                store_cdrs(&store, &batch.cdrs, queues.cdr.as_ref());
                batch.cdrs.clear();
            }
            if !batch.flows.is_empty() {
                store_flows(&store, &batch.flows);
                batch.flows.clear();
            }
            dirty.store(true, Ordering::Release);
            // Group commit: under load, let the next requests gather while
            // the writer is not waiting on the channel, so the shards send
            // without waking it (no futex per request) and the next batch
            // answers many REGISTERs with one doorbell per shard.
            std::thread::sleep(GATHER);
        }
        upkeep.tend(&store, false);
        more_upkeep = upkeep.retention(&store, queues.cdr.as_ref());
        if last_sweep.elapsed() >= cfg.sweep_interval {
            let now = Now::read().unix;
            let due = expiries.due(now);
            if !due.is_empty() {
                let mut queued = false;
                let swept = store.remove_expired_with(&due, now, |wtxn, gone| {
                    if let Some(l) = &queues.locator {
                        queued = l.queue.enqueue_expired(wtxn, gone, now)?;
                    }
                    Ok(())
                });
                if queued {
                    if let Some(l) = &queues.locator {
                        let _ = l.wake.try_send(());
                    }
                }
                match swept {
                    Ok(gone) => {
                        for b in &gone {
                            tracing::info!(aor = %b.aor, contact = %b.uri, "binding expired");
                        }
                        if !gone.is_empty() {
                            dirty.store(true, Ordering::Release);
                        }
                    }
                    Err(e) => tracing::error!("store: expiry sweep failed: {e}"),
                }
            }
            last_sweep = Instant::now();
        }
    }
    stop.store(true, Ordering::Release);
    match syncer {
        Ok(h) => {
            let _ = h.join();
        }
        Err(e) => tracing::error!("store: no sync thread ({e}); syncing at exit only"),
    }
    if let Err(e) = store.sync() {
        tracing::error!("store: final sync failed: {e}");
    }
}

/// Stores SIP flows as far as the room for them goes (up to where new calls
/// are refused); the rest are dropped (counted), so the room left keeps
/// CDRs and registrations. Each flow is compressed once, here, and its room
/// is what it takes compressed.
fn store_flows(store: &Store, flows: &[(String, Vec<u8>)]) {
    use shards::store::flow_pack;
    use shards::store::space::{flow_allowance, stored_size};
    let page = shards::store::page_size();
    let mut room = match store.measure() {
        Ok(u) => flow_allowance(&u, page),
        Err(e) => {
            tracing::error!("store: cannot measure the map: {e}");
            0
        }
    };
    let fit: Vec<(String, Vec<u8>)> = flows
        .iter()
        .map(|(id, raw)| (id.clone(), flow_pack::pack(raw)))
        .filter(|(id, f)| {
            let need = stored_size(id.len(), f.len(), page);
            let ok = need <= room;
            if ok {
                room -= need;
            }
            ok
        })
        .collect();
    let dropped = flows.len() - fit.len();
    if dropped > 0 {
        store.space().note_flows_dropped(dropped as u64);
        tracing::warn!("store: nearly full; {dropped} SIP flow(s) not stored");
    }
    if fit.is_empty() {
        return;
    }
    if let Err(e) = with_room(store, || store.put_packed_flows(&fit)) {
        tracing::error!("store: {} SIP flow(s) not stored: {e}", fit.len());
    }
}

/// Stores CDRs; with a push queue, each is queued for its push in the same
/// transaction, and the pusher is told.
fn store_cdrs(store: &Store, cdrs: &[shards::cdr::Cdr], push: Option<&PushQueue>) {
    let stored = with_room(store, || match push {
        None => store.put_cdrs(cdrs),
        Some(q) => {
            let now = Now::read().unix_ms;
            store.put_cdrs_with(cdrs, |wtxn, cdr| {
                q.outbox.enqueue_in(wtxn, &cdr.call_id, now)
            })
        }
    });
    match stored {
        Ok(()) => {
            if let Some(q) = push {
                let _ = q.wake.try_send(());
            }
        }
        Err(e) => tracing::error!("store: {} CDR(s) not stored: {e}", cdrs.len()),
    }
}

/// Syncs the store about every `interval` while there are unsynced commits.
fn sync_loop(store: &Store, dirty: &AtomicBool, stop: &AtomicBool, interval: Duration) {
    let tick = interval
        .min(Duration::from_millis(100))
        .max(Duration::from_millis(1));
    let mut last = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        if last.elapsed() >= interval && dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = store.sync() {
                tracing::error!("store: sync failed: {e}");
                dirty.store(true, Ordering::Release);
            }
            last = Instant::now();
        }
    }
}

/// Requests taken in one go, written in one transaction per kind.
#[derive(Default)]
struct Batch {
    bindings: Vec<(usize, u64, BindingChange)>,
    cdrs: Vec<shards::cdr::Cdr>,
    flows: Vec<(String, Vec<u8>)>,
    /// Stream connections that closed.
    closed: Vec<ConnId>,
}

impl Batch {
    fn len(&self) -> usize {
        self.bindings.len() + self.cdrs.len() + self.flows.len() + self.closed.len()
    }
}

/// Changes the writer makes on its own (nobody waits for an answer): one
/// per AOR, each with `op`.
fn unanswered(aors: Vec<String>, op: BindingOp) -> Vec<(usize, u64, BindingChange)> {
    let now = Now::read().unix;
    aors.into_iter()
        .map(|aor| {
            let change = BindingChange {
                aor,
                call_id: String::new(),
                cseq: 0,
                now,
                ops: vec![op.clone()],
                max_contacts: 0,
            };
            (NO_REPLY, 0, change)
        })
        .collect()
}

/// The "shard" of a change the writer made itself: no answer goes out.
const NO_REPLY: usize = usize::MAX;

/// Which AORs registered over each stream connection (bounded by the
/// connections that registered; an entry goes when its connection closes).
#[derive(Default)]
struct ConnIndex {
    /// A set per connection: one connection (an SBC, a load generator)
    /// may carry thousands of AORs, and each REGISTER on it is noted.
    aors: std::collections::HashMap<ConnId, std::collections::HashSet<String>>,
}

impl ConnIndex {
    fn note(&mut self, change: &BindingChange) {
        for op in &change.ops {
            if let BindingOp::Upsert(b) = op {
                if let Some(conn) = b.conn {
                    let set = self.aors.entry(conn).or_default();
                    if !set.contains(&change.aor) {
                        set.insert(change.aor.clone());
                    }
                }
            }
        }
    }

    /// The AORs of `conn`, sorted (its offline events go out in a stable
    /// order), forgetting them.
    fn take(&mut self, conn: ConnId) -> Vec<String> {
        let mut aors: Vec<String> = self
            .aors
            .remove(&conn)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        aors.sort_unstable();
        aors
    }
}

fn push(batch: &mut Batch, req: ControlRequest) {
    match req {
        ControlRequest::ApplyBindings {
            shard,
            token,
            change,
        } => batch.bindings.push((shard, token, change)),
        ControlRequest::StoreCdr(cdr) => batch.cdrs.push(*cdr),
        ControlRequest::StoreFlow(call_id, json) => batch.flows.push((call_id, json)),
        ControlRequest::ConnClosed(conn) => batch.closed.push(conn),
    }
}

fn apply(
    store: &Store,
    batch: &mut Vec<(usize, u64, BindingChange)>,
    inboxes: &[Arc<Inbox>],
    expiries: &mut ExpiryIndex,
    conns: &mut ConnIndex,
    locator: Option<&EventQueue>,
) {
    if batch.is_empty() {
        return;
    }
    let changes: Vec<BindingChange> = batch.iter().map(|(_, _, c)| c.clone()).collect();
    let mut queued = false;
    let results = with_room(store, || {
        store.apply_changes_with(&changes, |wtxn, change, outcome| {
            if let Some(l) = locator {
                queued |= l.queue.enqueue_change(wtxn, outcome, change.now)?;
            }
            Ok(())
        })
    });
    if let (true, Ok(_), Some(l)) = (queued, &results, locator) {
        let _ = l.wake.try_send(());
    }
    for (i, (shard, token, change)) in batch.drain(..).enumerate() {
        let result = match &results {
            Ok(results) => match &results[i] {
                Ok(outcome) => {
                    for b in &outcome.bindings {
                        expiries.push(b.expires_at, change.aor.clone());
                    }
                    conns.note(&change);
                    for b in &outcome.expired {
                        if b.conn.is_some() {
                            tracing::info!(aor = %b.aor, contact = %b.uri, "binding gone with its connection");
                        }
                    }
                    Ok(outcome.clone())
                }
                Err(e) => Err(RegisterFailure::Refused(e.clone())),
            },
            Err(e) => Err(RegisterFailure::Store(e.to_string())),
        };
        if let Some(inbox) = inboxes.get(shard) {
            inbox.push(ShardMsg::Registered { token, result });
        }
    }
}

/// Min-heap of (expires_at, aor); stale entries are harmless (the sweep
/// re-reads the store), so refreshes just push again.
#[derive(Default)]
struct ExpiryIndex {
    heap: BinaryHeap<Reverse<(u64, String)>>,
}

impl ExpiryIndex {
    fn push(&mut self, at: u64, aor: String) {
        self.heap.push(Reverse((at, aor)));
    }

    /// AORs with something due by `now`, each once.
    fn due(&mut self, now: u64) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, aor))) = self.heap.pop() {
                if !out.contains(&aor) {
                    out.push(aor);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_index_yields_each_due_aor_once() {
        let mut idx = ExpiryIndex::default();
        idx.push(10, "a".into());
        idx.push(5, "b".into());
        idx.push(7, "a".into());
        idx.push(20, "c".into());
        assert_eq!(idx.due(10), vec!["b".to_string(), "a".to_string()]);
        assert!(idx.due(19).is_empty());
        assert_eq!(idx.due(20), vec!["c".to_string()]);
    }
}
