//! Delivery from a durable queue: one dispatcher thread takes the items
//! that are due from the queue and hands them to a few worker threads,
//! which make the (blocking) requests and write each outcome back to the
//! queue themselves. The dispatcher never hands out an item that is still
//! in flight, and sleeps until the next item comes due, a worker finishes,
//! or it is told that something was queued.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{select, Receiver, Sender};
use shards::store::StoreError;
use shards::time::Now;

/// Due items (id, item), and when the next of the others comes due.
pub type Due<T> = (Vec<(u64, T)>, Option<u64>);

/// A durable queue the dispatcher reads.
pub trait Queue: Send + 'static {
    type Item: Send + 'static;
    /// At most `limit` (> 0) items due by `now_ms` that are not `busy`, and
    /// the earliest time another item read on the way comes due (the
    /// dispatcher looks again within a second in any case).
    fn due(
        &self,
        now_ms: u64,
        limit: usize,
        busy: &HashSet<u64>,
    ) -> Result<Due<Self::Item>, StoreError>;
}

/// A running dispatcher and its workers.
pub struct Dispatcher {
    wake: Sender<()>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dispatcher {
    /// `deliver(id, item)` runs on one of `workers` threads named `name-N`.
    pub fn start<Q: Queue>(
        name: &str,
        queue: Q,
        workers: usize,
        deliver: impl Fn(u64, Q::Item) + Send + Sync + 'static,
    ) -> std::io::Result<Dispatcher> {
        let workers = workers.max(1);
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let stop = Arc::new(AtomicBool::new(false));
        let (work_tx, work_rx) = crossbeam_channel::bounded::<(u64, Q::Item)>(workers);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<u64>();
        let deliver = Arc::new(deliver);
        for i in 0..workers {
            let (deliver, work_rx, done_tx) = (deliver.clone(), work_rx.clone(), done_tx.clone());
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    while let Ok((id, item)) = work_rx.recv() {
                        deliver(id, item);
                        if done_tx.send(id).is_err() {
                            break;
                        }
                    }
                })?;
        }
        let stop2 = stop.clone();
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                run(
                    &label, &queue, workers, &work_tx, &done_rx, &wake_rx, &stop2,
                );
            })?;
        Ok(Dispatcher {
            wake: wake_tx,
            stop,
            thread: Some(thread),
        })
    }

    /// Tells the dispatcher that new items were queued.
    pub fn waker(&self) -> Sender<()> {
        self.wake.clone()
    }

    /// Stops handing out items; deliveries in flight finish on their own
    /// (what they do not finish stays queued for the next start).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run<Q: Queue>(
    name: &str,
    queue: &Q,
    workers: usize,
    work: &Sender<(u64, Q::Item)>,
    done: &Receiver<u64>,
    wake: &Receiver<()>,
    stop: &AtomicBool,
) {
    let mut busy: HashSet<u64> = HashSet::new();
    while !stop.load(Ordering::Acquire) {
        while let Ok(id) = done.try_recv() {
            busy.remove(&id);
        }
        let now = Now::read().unix_ms;
        let room = workers.saturating_sub(busy.len());
        let mut wait = Duration::from_secs(1);
        if room > 0 {
            match queue.due(now, room, &busy) {
                Ok((due, next)) => {
                    for (id, item) in due {
                        busy.insert(id);
                        if work.send((id, item)).is_err() {
                            return;
                        }
                    }
                    if let Some(next) = next {
                        wait = wait.min(Duration::from_millis(next.saturating_sub(now)));
                    }
                }
                Err(e) => tracing::error!(queue = name, "cannot read the delivery queue: {e}"),
            }
        }
        if busy.len() >= workers {
            // Full: only a finished delivery can change anything.
            wait = Duration::from_secs(1);
        }
        select! {
            recv(wake) -> _ => {}
            recv(done) -> id => {
                if let Ok(id) = id {
                    busy.remove(&id);
                }
            }
            default(wait) => {}
        }
    }
}
