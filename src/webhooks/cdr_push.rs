//! CDR push (API.md 2.4). With `[callrecord] type = "http"` every stored
//! CDR is POSTed as `multipart/form-data` (`calllog.json`, and with
//! `with_media` one `media_audio-N` WAV part per recording) until the
//! target answers 2xx; with `type = "s3"` its recordings and then its JSON
//! are written to the bucket (`s3.rs`). Items come from the durable outbox,
//! so a push survives restarts; failures wait out an exponential backoff.
//!
//! Requests are blocking ureq calls on the workers of a [`Dispatcher`]
//! (this is the control core).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shards::cdr::Cdr;
use shards::store::Store;
use shards::time::Now;

use super::client::{agent, Failure};
use super::dispatch::Dispatcher;
use super::multipart::Multipart;
use super::outbox::{Backoff, Item, Outbox};
use super::s3::S3Archive;
use super::stats::{ErrorKind, WebhookStats};
use crate::config::HttpCallRecord;

/// How long a push waits for a recording the recorder is still closing
/// before sending it as it is.
const RECORDING_WAIT_MS: u64 = 60_000;
/// How soon a push that waits for a recording looks again.
const RECORDING_POLL_MS: u64 = 250;
/// Requests in flight at once.
const WORKERS: usize = 4;

/// Where CDRs go.
#[derive(Clone, Debug)]
pub enum Target {
    Http(HttpCallRecord),
    S3 {
        archive: S3Archive,
        /// Keep the local recordings once uploaded.
        keep_local: bool,
    },
}

/// What the pusher needs to know.
#[derive(Clone, Debug)]
pub struct PushConfig {
    pub target: Target,
    /// Per request.
    pub timeout: Duration,
    pub backoff: Backoff,
    /// Recordings' relative paths are under this.
    pub data_dir: PathBuf,
}

/// Starts pushing the CDRs of `outbox` (also those an earlier run left).
pub fn start(
    store: Store,
    outbox: Outbox,
    cfg: PushConfig,
    stats: Arc<WebhookStats>,
) -> std::io::Result<Dispatcher> {
    let worker = Worker {
        store,
        outbox: outbox.clone(),
        agent: agent(cfg.timeout),
        cfg,
        stats,
    };
    Dispatcher::start("cdr-push", outbox, WORKERS, move |id, item| {
        worker.attempt(id, item);
    })
}

fn now_ms() -> u64 {
    Now::read().unix_ms
}

struct Worker {
    store: Store,
    outbox: Outbox,
    agent: ureq::Agent,
    cfg: PushConfig,
    stats: Arc<WebhookStats>,
}

/// Why an attempt did not deliver.
enum NotDone {
    /// A recording is still being closed: look again soon, no attempt spent.
    RecordingOpen(String),
    Failed(Failure),
    /// The CDR is no longer in the store: nothing to push.
    Gone,
}

impl Worker {
    fn attempt(&self, id: u64, mut item: Item) {
        let now = now_ms();
        let wait_for_recordings = now.saturating_sub(item.created_ms) < RECORDING_WAIT_MS;
        let result = self.push(&item.call_id, wait_for_recordings);
        let written = match result {
            Ok(()) => {
                item.attempts += 1;
                item.last_error = None;
                self.outbox.finish(id, &item, "delivered")
            }
            Err(NotDone::RecordingOpen(why)) => {
                item.next_at_ms = now_ms() + RECORDING_POLL_MS;
                item.last_error = Some(why);
                self.outbox.reschedule(id, &item)
            }
            Err(NotDone::Failed(f)) => {
                item.attempts += 1;
                self.stats
                    .failed(f.kind, &format!("CDR {}: {f}", item.call_id));
                let wait = self.cfg.backoff.after(item.attempts);
                item.next_at_ms = now_ms() + wait.as_millis() as u64;
                item.last_error = Some(f.to_string());
                self.outbox.reschedule(id, &item)
            }
            Err(NotDone::Gone) => {
                tracing::warn!(call_id = %item.call_id, "CDR push abandoned: the CDR is no longer stored");
                item.last_error = Some("the CDR is no longer stored".into());
                self.outbox.finish(id, &item, "abandoned")
            }
        };
        if let Err(e) = written {
            tracing::error!(call_id = %item.call_id, "cdr push: outcome not stored: {e}");
        }
    }

    fn push(&self, call_id: &str, wait_for_recordings: bool) -> Result<(), NotDone> {
        let cdr = match self.store.cdr(call_id) {
            Ok(Some(cdr)) => cdr,
            Ok(None) => return Err(NotDone::Gone),
            Err(e) => return Err(local(e)),
        };
        match &self.cfg.target {
            Target::Http(http) => self.post(http, &cdr, wait_for_recordings),
            Target::S3 {
                archive,
                keep_local,
            } => self.archive(archive, *keep_local, &cdr, wait_for_recordings),
        }
    }

    /// One request, timed for the metrics.
    fn timed<T>(&self, request: impl FnOnce() -> Result<T, Failure>) -> Result<T, NotDone> {
        let started = Instant::now();
        let result = request();
        self.stats.observe(started.elapsed());
        result.map_err(NotDone::Failed)
    }

    fn post(&self, http: &HttpCallRecord, cdr: &Cdr, wait: bool) -> Result<(), NotDone> {
        let json = serde_json::to_vec(cdr).map_err(local)?;
        let mut m = Multipart::new();
        m.part("calllog.json", "calllog.json", "application/json", &json);
        if http.with_media {
            for (i, (name, data)) in self.recordings(cdr, wait)?.iter().enumerate() {
                m.part(&format!("media_audio-{i}"), name, "audio/wav", data);
            }
        }
        let (content_type, body) = m.finish();
        let mut req = self
            .agent
            .post(&http.url)
            .header("Content-Type", &content_type);
        for (name, value) in &http.headers {
            req = req.header(name, value);
        }
        self.timed(|| match req.send(&body[..]) {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(Failure::status(r.status().as_u16())),
            Err(e) => Err(Failure::from(e)),
        })
    }

    /// Recordings first, the CDR JSON last: a CDR in the bucket means its
    /// recordings are there too.
    fn archive(
        &self,
        s3: &S3Archive,
        keep_local: bool,
        cdr: &Cdr,
        wait: bool,
    ) -> Result<(), NotDone> {
        let day = shards::cdr::time_fmt::yyyymmdd(cdr.start_ms());
        for (name, data) in self.recordings(cdr, wait)? {
            let key = s3.key(&day, &name);
            self.timed(|| s3.put(&self.agent, &key, "audio/wav", &data))?;
        }
        let json = serde_json::to_vec(cdr).map_err(local)?;
        let key = s3.key(&day, &format!("{}.json", cdr.call_id));
        self.timed(|| s3.put(&self.agent, &key, "application/json", &json))?;
        if !keep_local {
            for rec in &cdr.recorder {
                let path = resolve(&self.cfg.data_dir, &rec.path);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "uploaded recording not removed: {e}");
                    }
                }
            }
        }
        Ok(())
    }

    /// (file name, bytes) of each recording of `cdr` that is there.
    fn recordings(&self, cdr: &Cdr, wait: bool) -> Result<Vec<(String, Vec<u8>)>, NotDone> {
        let mut out = Vec::new();
        for (i, rec) in cdr.recorder.iter().enumerate() {
            let path = resolve(&self.cfg.data_dir, &rec.path);
            let Some(data) = read_recording(&path, rec.size, wait)? else {
                continue;
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("audio-{i}.wav"));
            out.push((name, data));
        }
        Ok(out)
    }
}

fn local(e: impl std::fmt::Display) -> NotDone {
    NotDone::Failed(Failure::new(ErrorKind::Local, e.to_string()))
}

/// A recorder path of a CDR: relative ones are under `data_dir`.
fn resolve(data_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        data_dir.join(p)
    }
}

/// The recording's bytes once it has the size its CDR gives (the recorder
/// closes the file just after the CDR is written). After the wait, a file
/// that is gone is left out (logged) rather than holding the CDR forever.
fn read_recording(path: &Path, size: u64, wait: bool) -> Result<Option<Vec<u8>>, NotDone> {
    match std::fs::read(path) {
        Ok(data) if data.len() as u64 >= size || !wait => Ok(Some(data)),
        Ok(data) => Err(NotDone::RecordingOpen(format!(
            "recording {} has {} of {size} bytes",
            path.display(),
            data.len()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if wait {
                Err(NotDone::RecordingOpen(format!(
                    "recording {} not there yet",
                    path.display()
                )))
            } else {
                tracing::warn!(path = %path.display(), "CDR pushed without its recording: the file is gone");
                Ok(None)
            }
        }
        Err(e) => Err(NotDone::Failed(Failure::new(
            ErrorKind::Local,
            format!("recording {}: {e}", path.display()),
        ))),
    }
}
