//! The store writer's upkeep: retention of CDRs and SIP flows (a bounded
//! batch at a time, between the writer's own batches), the room check that
//! grows the map and refuses new calls near the disk budget, and the retry
//! of a write that found the map full.

use std::time::{Duration, Instant};

use shards::store::retention::Cursor;
use shards::store::{is_map_full, Store, StoreError};
use shards::time::Now;

use super::writer::PushQueue;

/// CDRs or flows looked at per retention transaction.
const RETENTION_BATCH: usize = 256;
/// How often retention looks for old records when it has caught up.
const RETENTION_EVERY: Duration = Duration::from_secs(1);
/// How often the room is measured at least (and after writes at most).
const TEND_EVERY: Duration = Duration::from_millis(50);
/// How long a write that found the map full waits for the map to grow.
const FULL_PATIENCE: Duration = Duration::from_millis(200);

/// Retention settings (`[store]`); None = keep for ever.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Retention {
    pub cdrs: Option<Duration>,
    pub flows: Option<Duration>,
}

impl Retention {
    /// From `*_retention_days` (0 = keep).
    pub fn from_days(cdr_days: f64, flow_days: f64) -> Retention {
        let keep = |days: f64| {
            (days > 0.0 && days.is_finite()).then(|| Duration::from_secs_f64(days * 86_400.0))
        };
        Retention {
            cdrs: keep(cdr_days),
            flows: keep(flow_days),
        }
    }
}

/// The writer's upkeep state.
pub struct Upkeep {
    retention: Retention,
    cdr_cursor: Cursor,
    flow_cursor: Cursor,
    next_retention: Instant,
    last_tend: Option<Instant>,
}

impl Upkeep {
    pub fn new(retention: Retention) -> Upkeep {
        Upkeep {
            retention,
            cdr_cursor: Cursor::default(),
            flow_cursor: Cursor::default(),
            next_retention: Instant::now(),
            last_tend: None,
        }
    }

    /// Measures the room (grows the map, refuses or admits calls), at most
    /// every few tens of ms unless `now_anyway`.
    pub fn tend(&mut self, store: &Store, now_anyway: bool) {
        if !now_anyway && self.last_tend.is_some_and(|t| t.elapsed() < TEND_EVERY) {
            return;
        }
        self.last_tend = Some(Instant::now());
        if let Err(e) = store.tend_space() {
            tracing::error!("store: cannot measure the map: {e}");
        }
    }

    /// One retention batch of each kind when due; true when there is more
    /// to do right away (the writer comes back without waiting).
    pub fn retention(&mut self, store: &Store, push: Option<&PushQueue>) -> bool {
        if Instant::now() < self.next_retention {
            return false;
        }
        let now_ms = Now::read().unix_ms;
        let cut = |keep: Duration| now_ms.saturating_sub(keep.as_millis() as u64);
        let mut more = false;
        if let Some(keep) = self.retention.cdrs {
            let swept = store.sweep_cdrs(
                &mut self.cdr_cursor,
                cut(keep),
                RETENTION_BATCH,
                |txn, call_id| match push {
                    Some(q) => q.outbox.pending_in(txn, call_id),
                    None => Ok(false),
                },
                |wtxn, call_id| match push {
                    Some(q) => q.outbox.forget_in(wtxn, call_id),
                    None => Ok(()),
                },
            );
            match swept {
                Ok(s) => {
                    if !s.removed.is_empty() {
                        tracing::info!(count = s.removed.len(), "retention: old CDRs deleted");
                    }
                    more |= !s.done;
                }
                Err(e) => tracing::error!("retention: CDR sweep failed: {e}"),
            }
        }
        if let Some(keep) = self.retention.flows {
            match store.sweep_flows(&mut self.flow_cursor, cut(keep), RETENTION_BATCH) {
                Ok(s) => {
                    if !s.removed.is_empty() {
                        tracing::info!(count = s.removed.len(), "retention: old SIP flows deleted");
                    }
                    more |= !s.done;
                }
                Err(e) => tracing::error!("retention: flow sweep failed: {e}"),
            }
        }
        if !more {
            self.next_retention = Instant::now() + RETENTION_EVERY;
        }
        more
    }
}

/// Runs a write; when it finds the map full, grows the map (if the budget
/// allows) and runs it once more.
pub fn with_room<T>(
    store: &Store,
    mut write: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match write() {
        Err(e) if is_map_full(&e) => match store.grow_after_full(FULL_PATIENCE) {
            Ok(true) => write(),
            Ok(false) => Err(e),
            Err(g) => {
                tracing::error!("{g}");
                Err(e)
            }
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_days_become_durations_and_zero_keeps() {
        let r = Retention::from_days(90.0, 0.0);
        assert_eq!(r.cdrs, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(r.flows, None);
        let r = Retention::from_days(0.0001, 0.5);
        assert_eq!(r.cdrs, Some(Duration::from_secs_f64(8.64)));
        assert_eq!(r.flows, Some(Duration::from_secs(43_200)));
    }

    fn cdr(id: &str, start: u64) -> shards::cdr::Cdr {
        shards::cdr::Cdr {
            call_id: id.into(),
            start_time: shards::cdr::time_fmt::rfc3339_ms(start),
            ring_time: None,
            answer_time: None,
            end_time: shards::cdr::time_fmt::rfc3339_ms(start + 1000),
            duration_secs: 0,
            caller: "sip:a@x".into(),
            callee: "sip:b@x".into(),
            from_number: "a".into(),
            to_number: "b".into(),
            direction: shards::cdr::Direction::Internal,
            status: shards::cdr::CallStatus::Failed,
            status_code: 404,
            hangup_reason: shards::cdr::HangupReason::Failed,
            sip_trunk_id: None,
            route_id: None,
            auth_user: None,
            recorder: vec![],
            recording_url: None,
            metadata: Default::default(),
        }
    }

    #[test]
    fn retention_keeps_a_cdr_whose_push_is_pending_and_forgets_the_others_push_state() {
        use crate::webhooks::outbox::Outbox;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &shards::store::StoreOptions::default()).unwrap();
        let outbox = Outbox::open(&store).unwrap();
        let (wake, _rx) = crossbeam_channel::bounded(1);
        let push = PushQueue {
            outbox: outbox.clone(),
            wake,
        };
        store
            .put_cdrs_with(
                &[cdr("pending@x", 1000), cdr("delivered@x", 2000)],
                |wtxn, c| outbox.enqueue_in(wtxn, &c.call_id, 1),
            )
            .unwrap();
        store.put_cdrs(&[cdr("unpushed@x", 3000)]).unwrap();
        store
            .put_flows(&[("pending@x".into(), vec![1, 2, 3])])
            .unwrap();
        let (due, _) = outbox.due_items(u64::MAX, 10, &|_| false).unwrap();
        let (id, item) = due
            .iter()
            .find(|(_, i)| i.call_id == "delivered@x")
            .cloned()
            .unwrap();
        outbox.finish(id, &item, "delivered").unwrap();

        let mut upkeep = Upkeep::new(Retention {
            cdrs: Some(Duration::from_millis(1)),
            flows: Some(Duration::from_millis(1)),
        });
        let mut rounds = 0;
        while upkeep.retention(&store, Some(&push)) {
            rounds += 1;
            assert!(rounds < 10);
        }
        assert!(
            store.cdr("pending@x").unwrap().is_some(),
            "push pending: kept"
        );
        assert_eq!(outbox.state("pending@x").unwrap().unwrap().state, "pending");
        // Its flow follows the flow retention all the same.
        assert!(store.flow("pending@x").unwrap().is_none());
        assert!(store.cdr("delivered@x").unwrap().is_none());
        assert!(outbox.state("delivered@x").unwrap().is_none());
        assert!(store.cdr("unpushed@x").unwrap().is_none());
    }
}
