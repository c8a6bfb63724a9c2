//! The locator webhook (API.md 2.3): `registered`, `unregistered` and
//! `offline` events POSTed as JSON, at least once, in order per AOR.
//!
//! The store writer turns each binding change (and each expiry sweep) into
//! events and queues them in `locator_outbox`, in the transaction that
//! changes the bindings. Only the oldest queued event of an AOR may be sent,
//! so a failing AOR waits (with backoff) without reordering its events,
//! while other AORs go on. Each event carries an `X-ShardPBX-Event-Id`
//! header, so a receiver can drop the duplicates at-least-once implies.
//! Events older than `max_age_secs` are dropped (logged and counted).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, RwTxn};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shards::registrar::{Binding, ChangeOutcome};
use shards::store::{encode_record, Store, StoreError};
use shards::time::Now;

use super::client::{agent, Failure};
use super::dispatch::{Dispatcher, Due, Queue};
use super::outbox::{append, scan_due, Backoff};
use super::stats::{ErrorKind, WebhookStats};
use crate::config::{LocatorEvent, LocatorWebhookConfig};

const QUEUE_DB: &str = "locator_outbox";
/// Events in flight at once (each of another AOR).
const WORKERS: usize = 4;

/// One queued event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub aor: String,
    /// `X-ShardPBX-Event-Id`: random, the same on every attempt.
    pub id: String,
    pub body: serde_json::Value,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub created_ms: u64,
}

/// The durable event queue.
#[derive(Clone)]
pub struct EventQueue {
    env: shards::store::GatedEnv,
    db: Database<'static, Bytes, Bytes>,
    /// The events the config wants.
    wanted: Vec<LocatorEvent>,
}

impl EventQueue {
    pub fn open(store: &Store, wanted: &[LocatorEvent]) -> Result<EventQueue, StoreError> {
        let env = store.env();
        let wtxn = env.write_txn()?;
        let db = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                let d = dbo.create_database::<Bytes, Bytes>(wtxn, Some(QUEUE_DB))?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(d))
            })?
            .unwrap_commit();
        Ok(EventQueue {
            env,
            db,
            wanted: wanted.to_vec(),
        })
    }

    /// Queues the events of one binding change, inside the writer's
    /// transaction; `now` is unix seconds. True when anything was queued.
    pub fn enqueue_change(
        &self,
        wtxn: &mut RwTxn,
        outcome: &ChangeOutcome,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut any = false;
        for (event, list) in [
            (LocatorEvent::Offline, &outcome.expired),
            (LocatorEvent::Unregistered, &outcome.unregistered),
            (LocatorEvent::Registered, &outcome.registered),
        ] {
            for b in list {
                any |= self.enqueue(wtxn, event, b, now)?;
            }
        }
        Ok(any)
    }

    /// Queues `offline` for bindings that lapsed.
    pub fn enqueue_expired(
        &self,
        wtxn: &mut RwTxn,
        gone: &[Binding],
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut any = false;
        for b in gone {
            any |= self.enqueue(wtxn, LocatorEvent::Offline, b, now)?;
        }
        Ok(any)
    }

    fn enqueue(
        &self,
        wtxn: &mut RwTxn,
        event: LocatorEvent,
        b: &Binding,
        now: u64,
    ) -> Result<bool, StoreError> {
        if !self.wanted.contains(&event) {
            return Ok(false);
        }
        let now_ms = Now::read().unix_ms;
        let item = Queued {
            aor: b.aor.clone(),
            id: event_id(),
            body: payload(event, b, now),
            attempts: 0,
            next_at_ms: now_ms,
            created_ms: now_ms,
        };
        append(self.db, wtxn, &encode_record(&item)?)?;
        Ok(true)
    }

    fn remove(&self, id: u64) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.db.delete(&mut wtxn, &id.to_be_bytes())?;
        wtxn.commit()?;
        Ok(())
    }

    fn reschedule(&self, id: u64, item: &Queued) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        self.db
            .put(&mut wtxn, &id.to_be_bytes(), &encode_record(item)?)?;
        wtxn.commit()?;
        Ok(())
    }

    pub fn backlog(&self) -> Result<u64, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.db.len(&rtxn)?)
    }
}

impl Queue for EventQueue {
    type Item = Queued;

    /// The oldest event of each AOR, when due and not in flight.
    fn due(
        &self,
        now_ms: u64,
        limit: usize,
        busy: &HashSet<u64>,
    ) -> Result<Due<Queued>, StoreError> {
        let mut seen: HashSet<String> = HashSet::new();
        scan_due(
            self.env,
            self.db,
            "locator event",
            now_ms,
            limit,
            |q: &Queued| q.next_at_ms,
            // Only an AOR's oldest event, and not while it is in flight.
            |id, q| seen.insert(q.aor.clone()) && !busy.contains(&id),
        )
    }
}

/// The JSON of guide 1.3 / API.md 2.3.
fn payload(event: LocatorEvent, b: &Binding, now: u64) -> serde_json::Value {
    let expires = match event {
        LocatorEvent::Registered => b.expires_at.saturating_sub(now),
        _ => 0,
    };
    json!({
        "event": event.as_str(),
        "timestamp": now,
        "location": {
            "aor": b.aor,
            "contact": b.uri,
            "destination": b.source,
            "transport": b.transport,
            "user_agent": b.user_agent,
            "expires": expires,
        }
    })
}

fn event_id() -> String {
    let mut raw = [0u8; 16];
    if getrandom::getrandom(&mut raw).is_err() {
        raw[..8].copy_from_slice(&Now::read().unix_ms.to_be_bytes());
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts sending the events of `queue` (also those an earlier run left).
pub fn start(
    queue: EventQueue,
    cfg: LocatorWebhookConfig,
    stats: Arc<WebhookStats>,
) -> std::io::Result<Dispatcher> {
    let sender = Sender::new(queue.clone(), cfg, stats);
    Dispatcher::start("locator", queue, WORKERS, move |id, item| {
        sender.attempt(id, item);
    })
}

/// Sends the events of an [`EventQueue`].
pub struct Sender {
    queue: EventQueue,
    cfg: LocatorWebhookConfig,
    agent: ureq::Agent,
    stats: Arc<WebhookStats>,
}

impl Sender {
    pub fn new(queue: EventQueue, cfg: LocatorWebhookConfig, stats: Arc<WebhookStats>) -> Sender {
        Sender {
            agent: agent(std::time::Duration::from_millis(cfg.timeout_ms)),
            queue,
            cfg,
            stats,
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            initial: std::time::Duration::from_millis(self.cfg.retry_initial_ms),
            max: std::time::Duration::from_secs(self.cfg.retry_max_secs),
        }
    }

    /// One attempt at event `id`; its outcome is written back to the queue.
    pub fn attempt(&self, id: u64, mut item: Queued) {
        let now = Now::read().unix_ms;
        let written = if now.saturating_sub(item.created_ms) > self.cfg.max_age_secs * 1000 {
            self.stats.failed(
                ErrorKind::Expired,
                &format!(
                    "{} event for {} dropped after {} attempts",
                    item.body["event"], item.aor, item.attempts
                ),
            );
            self.queue.remove(id)
        } else {
            match self.post(&item) {
                Ok(()) => self.queue.remove(id),
                Err(f) => {
                    item.attempts += 1;
                    self.stats
                        .failed(f.kind, &format!("event for {}: {f}", item.aor));
                    item.next_at_ms = Now::read().unix_ms
                        + self.backoff().after(item.attempts).as_millis() as u64;
                    self.queue.reschedule(id, &item)
                }
            }
        };
        if let Err(e) = written {
            tracing::error!(aor = %item.aor, "locator event outcome not stored: {e}");
        }
    }

    fn post(&self, item: &Queued) -> Result<(), Failure> {
        let body = serde_json::to_vec(&item.body)
            .map_err(|e| Failure::new(ErrorKind::Local, e.to_string()))?;
        let mut req = self
            .agent
            .post(&self.cfg.url)
            .header("Content-Type", "application/json")
            .header("X-ShardPBX-Event-Id", &item.id);
        for (name, value) in &self.cfg.headers {
            req = req.header(name, value);
        }
        let started = Instant::now();
        let reply = req.send(&body[..]);
        self.stats.observe(started.elapsed());
        match reply {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(Failure::status(r.status().as_u16())),
            Err(e) => Err(Failure::from(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shards::store::StoreOptions;

    fn binding(aor: &str, port: u16) -> Binding {
        Binding {
            aor: aor.into(),
            contact: format!("<sip:u@127.0.0.1:{port}>"),
            uri: format!("sip:u@127.0.0.1:{port}"),
            source: format!("127.0.0.1:{port}"),
            transport: "UDP".into(),
            conn: None,
            expires_at: 1000 + 300,
            q: None,
            instance: None,
            reg_id: None,
            call_id: "c".into(),
            cseq: 1,
            user_agent: Some("phone/1".into()),
            path: vec![],
            updated_at: 1000,
        }
    }

    #[test]
    fn only_the_oldest_event_of_each_aor_is_due_and_unwanted_events_are_not_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                map_size: 16 << 20,
                read_only: false,
            },
        )
        .unwrap();
        let q =
            EventQueue::open(&store, &[LocatorEvent::Registered, LocatorEvent::Offline]).unwrap();
        let mut wtxn = store.env().write_txn().unwrap();
        let a = ChangeOutcome {
            registered: vec![binding("sip:a@x", 1)],
            ..Default::default()
        };
        let a_gone = ChangeOutcome {
            unregistered: vec![binding("sip:a@x", 1)],
            ..Default::default()
        };
        assert!(q.enqueue_change(&mut wtxn, &a, 1000).unwrap());
        // Unregistered is not in the config's list.
        assert!(!q.enqueue_change(&mut wtxn, &a_gone, 1001).unwrap());
        assert!(q
            .enqueue_expired(&mut wtxn, &[binding("sip:a@x", 2)], 1002)
            .unwrap());
        let b = ChangeOutcome {
            registered: vec![binding("sip:b@x", 3)],
            ..Default::default()
        };
        q.enqueue_change(&mut wtxn, &b, 1003).unwrap();
        wtxn.commit().unwrap();
        assert_eq!(q.backlog().unwrap(), 3);

        let (due, _) = q.due(u64::MAX, 10, &HashSet::new()).unwrap();
        let heads: Vec<(&str, &serde_json::Value)> = due
            .iter()
            .map(|(_, i)| (i.aor.as_str(), &i.body["event"]))
            .collect();
        assert_eq!(
            heads,
            [
                ("sip:a@x", &json!("registered")),
                ("sip:b@x", &json!("registered"))
            ]
        );
        let body = &due[0].1.body;
        assert_eq!(body["location"]["destination"], "127.0.0.1:1");
        assert_eq!(body["location"]["expires"], 300);
        assert_eq!(body["location"]["user_agent"], "phone/1");
        assert_eq!(body["timestamp"], 1000);
        // While a's head is in flight, a's next event is not handed out.
        let busy: HashSet<u64> = [due[0].0].into();
        let (due2, _) = q.due(u64::MAX, 10, &busy).unwrap();
        assert_eq!(due2.len(), 1);
        assert_eq!(due2[0].1.aor, "sip:b@x");
        // Once a's head is gone, its offline event is next.
        q.remove(due[0].0).unwrap();
        let (due3, _) = q.due(u64::MAX, 10, &HashSet::new()).unwrap();
        assert_eq!(due3[0].1.body["event"], "offline");
        assert_eq!(due3[0].1.body["location"]["expires"], 0);
        assert_ne!(due3[0].1.id, due[0].1.id);
    }
}
