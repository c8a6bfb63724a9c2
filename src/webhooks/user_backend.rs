//! The HTTP user backend (`[[proxy.user_backends]] type = "http"`, API.md
//! 2.2), on control-core threads: shards send a [`UserQuery`] when a user
//! is not in their cache; a worker asks the backend (GET
//! `url?{username_field}=..&{realm_field}=..`) and the answer goes back to
//! the asking shard's inbox. Answers are cached here too, per (user,
//! realm): found and refused users for `cache_ttl_secs`, unknown ones for
//! `negative_cache_ttl_secs`, so a registration storm over many shards is
//! one request per user. Concurrent questions for one user share a request.
//! Failures (timeout, connection, other status, unusable body) are never
//! cached and become 503 on the SIP side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use shards::runtime::{Inbox, ShardMsg};
use shards::users::{Credential, RemoteAnswer, RemoteKey, UserQuery, UserRecord};

use super::client::{agent, spawn_pool, Failure};
use super::stats::{ErrorKind, WebhookStats};
use crate::config::HttpUserBackend;

/// Threads asking the backends.
const WORKERS: usize = 4;
/// The largest answer body read.
const MAX_BODY: u64 = 64 << 10;

enum Entry {
    Answered(RemoteAnswer, Instant),
    /// Being asked; these shards wait for the answer too.
    Asking(Vec<usize>),
}

struct Backend {
    cfg: HttpUserBackend,
    agent: ureq::Agent,
}

struct Shared {
    /// Config index -> backend.
    backends: HashMap<usize, Backend>,
    entries: Mutex<HashMap<RemoteKey, Entry>>,
    inboxes: Arc<Vec<Arc<Inbox>>>,
    stats: Arc<WebhookStats>,
}

/// Starts the workers that answer `queries` from the HTTP `backends`
/// (config index, settings).
pub fn start(
    backends: Vec<(usize, HttpUserBackend)>,
    queries: Receiver<UserQuery>,
    inboxes: Arc<Vec<Arc<Inbox>>>,
    stats: Arc<WebhookStats>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        backends: backends
            .into_iter()
            .map(|(i, cfg)| {
                let agent = agent(cfg.timeout);
                (i, Backend { cfg, agent })
            })
            .collect(),
        entries: Mutex::new(HashMap::new()),
        inboxes,
        stats,
    });
    spawn_pool("user-backend", WORKERS, queries, move |q| shared.answer(q))
}

impl Shared {
    fn answer(&self, q: UserQuery) {
        let Some(backend) = self.backends.get(&q.key.0) else {
            self.reply(&[q.shard], &q.key, RemoteAnswer::Unavailable, 0);
            return;
        };
        {
            let Ok(mut entries) = self.entries.lock() else {
                return;
            };
            match entries.get_mut(&q.key) {
                Some(Entry::Answered(answer, until)) if *until > Instant::now() => {
                    let left = until.saturating_duration_since(Instant::now()).as_secs();
                    let answer = answer.clone();
                    drop(entries);
                    self.reply(&[q.shard], &q.key, answer, left.max(1));
                    return;
                }
                Some(Entry::Asking(waiting)) => {
                    waiting.push(q.shard);
                    return;
                }
                _ => {
                    entries.insert(q.key.clone(), Entry::Asking(vec![q.shard]));
                }
            }
        }
        let (answer, ttl) = self.ask(backend, &q.key);
        let waiting = {
            let Ok(mut entries) = self.entries.lock() else {
                return;
            };
            let waiting = match entries.remove(&q.key) {
                Some(Entry::Asking(w)) => w,
                _ => vec![q.shard],
            };
            if !ttl.is_zero() {
                entries.insert(
                    q.key.clone(),
                    Entry::Answered(answer.clone(), Instant::now() + ttl),
                );
            }
            if entries.len() > 100_000 {
                let now = Instant::now();
                entries.retain(|_, e| !matches!(e, Entry::Answered(_, until) if *until <= now));
            }
            waiting
        };
        self.reply(&waiting, &q.key, answer, ttl.as_secs());
    }

    fn reply(&self, shards: &[usize], key: &RemoteKey, answer: RemoteAnswer, ttl_secs: u64) {
        for shard in shards {
            if let Some(inbox) = self.inboxes.get(*shard) {
                inbox.push(ShardMsg::UserAnswer {
                    key: key.clone(),
                    answer: answer.clone(),
                    ttl_secs,
                });
            }
        }
    }

    /// One request to the backend: the answer and how long to keep it.
    fn ask(&self, backend: &Backend, key: &RemoteKey) -> (RemoteAnswer, Duration) {
        let (_, user, realm) = key;
        let cfg = &backend.cfg;
        let mut url = match url::Url::parse(&cfg.url) {
            Ok(u) => u,
            Err(e) => {
                self.stats
                    .failed(ErrorKind::Local, &format!("url {}: {e}", cfg.url));
                return (RemoteAnswer::Unavailable, Duration::ZERO);
            }
        };
        url.query_pairs_mut()
            .append_pair(&cfg.username_field, user)
            .append_pair(&cfg.realm_field, realm);
        let mut req = backend.agent.get(url.as_str());
        for (name, value) in &cfg.headers {
            req = req.header(name, value);
        }
        let started = Instant::now();
        let reply = req.call();
        self.stats.observe(started.elapsed());
        let failed = |f: Failure| {
            self.stats
                .failed(f.kind, &format!("user {user}@{realm}: {f}"));
            (RemoteAnswer::Unavailable, Duration::ZERO)
        };
        let mut reply = match reply {
            Ok(r) => r,
            Err(e) => return failed(Failure::from(e)),
        };
        let status = reply.status().as_u16();
        let body = reply
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .ok();
        match parse_answer(status, body.as_deref(), user, cfg.password_is_ha1) {
            Some(RemoteAnswer::Unknown) => (RemoteAnswer::Unknown, cfg.negative_cache_ttl),
            Some(answer) => (answer, cfg.cache_ttl),
            None if status == 200 => failed(Failure::new(
                ErrorKind::Protocol,
                "200 without a user object carrying password or ha1",
            )),
            None => failed(Failure::status(status)),
        }
    }
}

/// What a backend's reply (status, body text if any) says about user `asked`
/// (guide 1.2): 200 with a user object, 404, or 403 with an optional
/// `message`/`reason`. `None` when the reply is unusable. Pure, so it is
/// fuzzed (fuzz target `webhook_json`).
pub fn parse_answer(
    status: u16,
    body: Option<&str>,
    asked: &str,
    password_is_ha1: bool,
) -> Option<RemoteAnswer> {
    let body: Option<serde_json::Value> = body.and_then(|t| serde_json::from_str(t).ok());
    match status {
        200 => body
            .as_ref()
            .and_then(|b| record(b, asked, password_is_ha1))
            .map(RemoteAnswer::Found),
        404 => Some(RemoteAnswer::Unknown),
        403 => {
            let reason = body
                .as_ref()
                .and_then(|b| b["message"].as_str().or(b["reason"].as_str()))
                .map(reason_phrase)
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "Forbidden".into());
            Some(RemoteAnswer::Forbidden(reason))
        }
        _ => None,
    }
}

/// The user object of guide 1.2: `ha1` wins over `password`, which is
/// plaintext unless the config says it is an HA1.
/// At most this many `allowed_caller_ids` of a backend's user are kept.
const MAX_CALLER_IDS: usize = 64;

fn record(v: &serde_json::Value, asked: &str, password_is_ha1: bool) -> Option<UserRecord> {
    let credential = match (v["ha1"].as_str(), v["password"].as_str()) {
        (Some(ha1), _) => Credential::Md5Ha1(ha1.to_ascii_lowercase()),
        (None, Some(p)) if password_is_ha1 => Credential::Md5Ha1(p.to_ascii_lowercase()),
        (None, Some(p)) => Credential::Password(p.to_string()),
        (None, None) => return None,
    };
    Some(UserRecord {
        username: v["username"].as_str().unwrap_or(asked).to_string(),
        credential,
        display_name: v["display_name"].as_str().map(String::from),
        allow_guest_calls: v["allow_guest_calls"].as_bool().unwrap_or(false),
        allowed_caller_ids: v["allowed_caller_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str())
                    .take(MAX_CALLER_IDS)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// A backend's message as a SIP reason phrase: printable, one line, short.
fn reason_phrase(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(100)
        .collect();
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_objects_read_as_the_guide_writes_them() {
        let r = record(&json!({"id": 1001, "username": "1001", "password": "pw", "display_name": "John", "allow_guest_calls": true}), "x", false).unwrap();
        assert_eq!(r.credential, Credential::Password("pw".into()));
        assert_eq!(
            (
                r.username.as_str(),
                r.display_name.as_deref(),
                r.allow_guest_calls
            ),
            ("1001", Some("John"), true)
        );
        let h = record(&json!({"password": "pw", "ha1": "ABC"}), "u", false).unwrap();
        assert_eq!(
            (h.credential, h.username.as_str()),
            (Credential::Md5Ha1("abc".into()), "u")
        );
        let p = record(&json!({"password": "DEF"}), "u", true).unwrap();
        assert_eq!(p.credential, Credential::Md5Ha1("def".into()));
        assert_eq!(record(&json!({"username": "u"}), "u", false), None);
        assert_eq!(reason_phrase(" Account\r\nlocked "), "Account locked");
    }
}
