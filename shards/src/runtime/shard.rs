//! Shard executors: one glommio executor per shard, pinned to its CPU, each
//! with its own SO_REUSEPORT socket on the SIP port. The loop here only moves
//! bytes: it drains the socket in `recvmmsg` batches, feeds the shard's
//! [`ShardLogic`], hands datagrams it does not own to their owner's inbox, and
//! flushes what the logic queued with `sendmmsg`. It also owns the RTP
//! sockets the logic's relay asks for (`media_io`): after every turn of the
//! logic, before that turn's datagrams are flushed, it binds and closes
//! what the logic asks ([`ShardLogic::poll_socket_op`]) and answers each
//! ([`ShardLogic::on_socket_event`]); and it runs the media poller.
//!
//! When the tasks wake is the pacer's call (`pacer.rs`): on readiness (socket,
//! doorbell) by default, or, with `poll_interval` set and work seen lately,
//! on a beat shared by every task of the shard.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::UdpSocket;
use glommio::{LocalExecutorBuilder, Placement};

use super::inbox::{Inbox, ShardMsg};
use super::media_io::{MediaIo, MEDIA_POLL};
use super::pacer::Pacer;
use super::stats::{ShardGauges, ShardStats};
use super::udp_batch::{RecvBatch, SendQueue};
use crate::media::relay::{MediaInput, SocketOp};
use crate::time::Now;

/// The largest SIP datagram we accept; bigger ones are dropped and counted.
pub const MAX_DATAGRAM: usize = 65_535;

/// How the shards run (from `[runtime]`, perf profiles and `[proxy]`).
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub shards: usize,
    /// CPU of each shard (`cpus[i]` pins shard i).
    pub cpus: Vec<usize>,
    pub sip_addr: SocketAddr,
    pub recv_batch: usize,
    pub send_batch: usize,
    /// SO_RCVBUF / SO_SNDBUF, 0 = kernel default.
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub spin_before_park: Duration,
    /// Poll period while the shard is busy (see `pacer.rs`); zero = wake on
    /// every readiness event.
    pub poll_interval: Duration,
    pub io_memory: usize,
    pub ring_depth: usize,
    /// The longest the timer task sleeps without looking at
    /// [`ShardLogic::poll_timeout`] again.
    pub tick: Duration,
}

/// What a shard's logic asks the loop to do.
#[derive(Default)]
pub struct Output {
    pub sends: SendQueue,
    /// `(owner shard, datagram, source)`: a message this shard does not own.
    pub handoffs: Vec<(usize, Vec<u8>, SocketAddr)>,
}

/// Everything a shard's logic is told about its place among the shards.
#[derive(Clone)]
pub struct ShardContext {
    pub id: usize,
    pub shards: usize,
    pub stats: Arc<ShardStats>,
    pub inboxes: Arc<Vec<Arc<Inbox>>>,
}

/// The sans-IO logic one shard runs; built on the shard's own thread.
pub trait ShardLogic {
    /// A datagram from the socket (`handed_off`: it came from another shard).
    fn on_datagram(
        &mut self,
        now: Now,
        data: &[u8],
        src: SocketAddr,
        handed_off: bool,
        out: &mut Output,
    );
    /// A message from the control core (not datagrams or stop).
    fn on_message(&mut self, now: Now, msg: ShardMsg, out: &mut Output);
    /// The deadline [`Self::poll_timeout`] gave has come (or the loop's
    /// longest sleep, `RuntimeConfig::tick`, ran out): fire what is due.
    fn handle_timeout(&mut self, now: Now, out: &mut Output);
    /// The earliest deadline of the logic (mono ms, [`Now::mono_ms`]); the
    /// loop sleeps until then, at most `RuntimeConfig::tick`, and is woken
    /// sooner when a turn makes an earlier one.
    fn poll_timeout(&self) -> Option<u64> {
        None
    }
    /// A datagram on media port `port` (RTP or RTCP). The logic may rewrite
    /// it in place; returns the media port to send it from and where to.
    fn on_media(
        &mut self,
        _now: Now,
        _port: u16,
        _src: SocketAddr,
        _packet: &mut [u8],
    ) -> Option<(u16, SocketAddr)> {
        None
    }
    /// Before the datagrams of a batch from the SIP socket: whether the
    /// socket was drained or how long what is left has waited (overload
    /// admission).
    fn on_backlog(&mut self, _now: Now, _backlog: super::Backlog) {}
    /// The shard is stopping: last words (e.g. BYE for calls still up).
    fn on_stop(&mut self, _now: Now, _out: &mut Output) {}
    /// The next media socket the logic wants bound or closed; called until
    /// `None` after every turn, each answered at once through
    /// [`ShardLogic::on_socket_event`]. The logic may do other work of its
    /// media here (it gets the turn's `now` and `out`).
    fn poll_socket_op(&mut self, _now: Now, _out: &mut Output) -> Option<SocketOp> {
        None
    }
    /// What became of a [`SocketOp`].
    fn on_socket_event(&mut self, _event: MediaInput) {}
}

/// The running shards.
pub struct Runtime {
    pub inboxes: Arc<Vec<Arc<Inbox>>>,
    pub stats: Vec<Arc<ShardStats>>,
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl Runtime {
    /// Binds every shard's socket and starts the executors.
    pub fn start<F, L>(cfg: &RuntimeConfig, make_logic: F) -> io::Result<Runtime>
    where
        F: Fn(ShardContext) -> L + Send + Sync + 'static,
        L: ShardLogic + 'static,
    {
        let shards = cfg.shards.max(1);
        let sockets = bind_reuseport(cfg, shards)?;
        let mut doorbells = Vec::with_capacity(shards);
        let mut inboxes = Vec::with_capacity(shards);
        for _ in 0..shards {
            let door = StdUdpSocket::bind("127.0.0.1:0")?;
            inboxes.push(Arc::new(Inbox::new(door.local_addr()?)?));
            doorbells.push(door);
        }
        let inboxes = Arc::new(inboxes);
        let stats: Vec<Arc<ShardStats>> = (0..shards).map(|_| Arc::default()).collect();
        let make_logic = Arc::new(make_logic);
        let mut handles = Vec::with_capacity(shards);
        for (id, (sock, door)) in sockets.into_iter().zip(doorbells).enumerate() {
            let ctx = ShardContext {
                id,
                shards,
                stats: stats[id].clone(),
                inboxes: inboxes.clone(),
            };
            let cpu = cfg.cpus.get(id).copied();
            let placement = match cpu {
                Some(cpu) => Placement::Fixed(cpu),
                None => Placement::Unbound,
            };
            let make_logic = make_logic.clone();
            let loop_cfg = LoopConfig {
                recv_batch: cfg.recv_batch,
                send_batch: cfg.send_batch,
                tick: cfg.tick,
                poll_interval: cfg.poll_interval,
            };
            let sock_fd = sock.into_raw_fd();
            let door_fd = door.into_raw_fd();
            let handle = LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{id}"))
                .io_memory(cfg.io_memory)
                .ring_depth(cfg.ring_depth)
                .spin_before_park(cfg.spin_before_park)
                .spawn(move || async move {
                    // SAFETY: the fds were just released by their std owners.
                    let sock = unsafe { UdpSocket::from_raw_fd(sock_fd) };
                    let door = unsafe { UdpSocket::from_raw_fd(door_fd) };
                    // SAFETY: plain syscall without arguments.
                    let tid = unsafe { libc::gettid() };
                    ShardGauges::set(&ctx.stats.gauges.tid, tid.max(0) as u64);
                    let logic = make_logic(ctx.clone());
                    run_shard(ctx, loop_cfg, sock, door, logic).await;
                })
                .map_err(|e| {
                    io::Error::other(format!("runtime.cpus: cannot start shard {id}: {e}"))
                })?;
            handles.push(handle);
        }
        Ok(Runtime {
            inboxes,
            stats,
            handles,
        })
    }

    /// Asks every shard to stop and waits for them.
    pub fn stop(self) {
        for inbox in self.inboxes.iter() {
            inbox.push(ShardMsg::Stop);
        }
        for h in self.handles {
            if let Err(e) = h.join() {
                tracing::error!("shard ended with an error: {e}");
            }
        }
    }
}

/// Binds one SO_REUSEPORT socket per shard on the SIP address. A port that
/// another socket already holds is an error, not a silent share.
fn bind_reuseport(cfg: &RuntimeConfig, shards: usize) -> io::Result<Vec<StdUdpSocket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    // Probe without SO_REUSEPORT: fails if anyone holds the port.
    drop(StdUdpSocket::bind(cfg.sip_addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("proxy.udp_port: cannot bind {}: {e}", cfg.sip_addr),
        )
    })?);
    let mut out = Vec::with_capacity(shards);
    for _ in 0..shards {
        let sock = Socket::new(
            Domain::for_address(cfg.sip_addr),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        sock.set_reuse_port(true)?;
        if cfg.rcvbuf > 0 && !force_buffer(&sock, libc::SO_RCVBUFFORCE, cfg.rcvbuf) {
            sock.set_recv_buffer_size(cfg.rcvbuf)?;
        }
        if cfg.sndbuf > 0 && !force_buffer(&sock, libc::SO_SNDBUFFORCE, cfg.sndbuf) {
            sock.set_send_buffer_size(cfg.sndbuf)?;
        }
        sock.bind(&cfg.sip_addr.into()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("proxy.udp_port: cannot bind {}: {e}", cfg.sip_addr),
            )
        })?;
        out.push(StdUdpSocket::from(sock));
    }
    Ok(out)
}

/// Sets a socket buffer past `net.core.*mem_max` (needs CAP_NET_ADMIN);
/// false when refused, and the caller falls back to the capped option.
fn force_buffer(sock: &socket2::Socket, option: libc::c_int, bytes: usize) -> bool {
    let value = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: a plain int option on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

struct LoopConfig {
    recv_batch: usize,
    send_batch: usize,
    tick: Duration,
    poll_interval: Duration,
}

struct Shard<L> {
    ctx: ShardContext,
    logic: L,
    out: Output,
    /// The deadline the timer task sleeps to (mono ms).
    timer_at: std::cell::Cell<u64>,
    /// Wakes the timer task when a turn made an earlier deadline.
    rearm: glommio::channels::local_channel::LocalSender<()>,
}

impl<L: ShardLogic> Shard<L> {
    /// After a turn of the logic: wake the timer task if the logic now has
    /// a deadline before the one it sleeps to.
    fn rearm_timer(&self) {
        if self
            .logic
            .poll_timeout()
            .is_some_and(|at| at < self.timer_at.get())
        {
            let _ = self.rearm.try_send(());
        }
    }
}

async fn run_shard<L: ShardLogic + 'static>(
    ctx: ShardContext,
    cfg: LoopConfig,
    sock: UdpSocket,
    door: UdpSocket,
    logic: L,
) {
    let sock = Rc::new(sock);
    let (rearm, rearmed) = glommio::channels::local_channel::new_bounded(1);
    let shard = Rc::new(RefCell::new(Shard {
        ctx: ctx.clone(),
        logic,
        out: Output::default(),
        timer_at: std::cell::Cell::new(0),
        rearm,
    }));
    let media_io = match MediaIo::new() {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(shard = ctx.id, "no epoll set for media sockets: {e}");
            return;
        }
    };
    let (wake_tx, wake_rx) = glommio::channels::local_channel::new_bounded(1);
    let media = Rc::new(MediaShell {
        io: RefCell::new(media_io),
        wake: wake_tx,
    });
    let send_batch = cfg.send_batch;
    let pacer = Rc::new(Pacer::new(cfg.poll_interval, Instant::now()));
    let recv = glommio::spawn_local(recv_loop(
        sock.clone(),
        shard.clone(),
        media.clone(),
        pacer.clone(),
        cfg.recv_batch,
        send_batch,
    ));
    let poller = glommio::spawn_local(media_poller(
        sock.clone(),
        shard.clone(),
        media.clone(),
        pacer.clone(),
        wake_rx,
        send_batch,
    ));
    let tick = glommio::spawn_local(timer_loop(
        sock.clone(),
        shard.clone(),
        media.clone(),
        pacer.clone(),
        cfg.tick,
        send_batch,
        rearmed,
    ));
    inbox_loop(&sock, &door, &shard, &media, &pacer, send_batch).await;
    drop(recv.cancel());
    drop(tick.cancel());
    drop(poller.cancel());
    tracing::debug!(shard = ctx.id, "shard stopped");
}

async fn recv_loop<L: ShardLogic + 'static>(
    sock: Rc<UdpSocket>,
    shard: Rc<RefCell<Shard<L>>>,
    media: Rc<MediaShell>,
    pacer: Rc<Pacer>,
    batch: usize,
    send_batch: usize,
) {
    let fd = sock.as_raw_fd();
    if let Err(e) = super::backlog::enable(fd) {
        tracing::warn!(
            "no receive times on the SIP socket ({e}): overload shedding on its backlog is off"
        );
    }
    let mut rx = RecvBatch::new(batch, MAX_DATAGRAM);
    let mut peek = [0u8; 1];
    loop {
        let mut got = 0;
        loop {
            let n = match rx.recv(fd) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("sip socket receive failed: {e}");
                    0
                }
            };
            if n == 0 {
                break;
            }
            got += n;
            // One clock read for the batch and what it asks of the media.
            let now = Now::read();
            let backlog = super::backlog::probe(fd, n, rx.capacity());
            {
                let mut guard = shard.borrow_mut();
                let sh = &mut *guard;
                sh.logic.on_backlog(now, backlog);
                let stats = &sh.ctx.stats;
                ShardStats::add(&stats.rx_datagrams, n as u64);
                for i in 0..n {
                    let r = rx.get(i);
                    ShardStats::add(&stats.rx_bytes, r.data.len() as u64);
                    stats.sip.count(true, r.data);
                    let Some(src) = r.src else { continue };
                    if r.truncated {
                        ShardStats::add(&stats.dropped, 1);
                        continue;
                    }
                    sh.logic.on_datagram(now, r.data, src, false, &mut sh.out);
                }
                dispatch_handoffs(sh);
            }
            apply_media_changes(&shard, &media, now);
            flush(&sock, &shard, send_batch).await;
            if n < rx.capacity() {
                break;
            }
            glommio::yield_if_needed().await;
        }
        let now = Instant::now();
        if got > 0 {
            pacer.saw_work(now);
        }
        if pacer.polling(now) {
            beat(&pacer, now, Duration::ZERO).await;
            continue;
        }
        if let Err(e) = sock.peek_from(&mut peek).await {
            tracing::warn!("sip socket wait failed: {e}");
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Sleeps until the logic's next deadline (at most `longest`, and less
/// when a turn elsewhere made an earlier one), then lets it fire what is due.
async fn timer_loop<L: ShardLogic + 'static>(
    sock: Rc<UdpSocket>,
    shard: Rc<RefCell<Shard<L>>>,
    media: Rc<MediaShell>,
    pacer: Rc<Pacer>,
    longest: Duration,
    send_batch: usize,
    rearmed: glommio::channels::local_channel::LocalReceiver<()>,
) {
    loop {
        let now = Now::read().mono_ms;
        let wait = match shard.borrow().logic.poll_timeout() {
            Some(at) => Duration::from_millis(at.saturating_sub(now)).min(longest),
            None => longest,
        };
        shard.borrow().timer_at.set(now + wait.as_millis() as u64);
        if !wait.is_zero() {
            let sleep = beat(&pacer, Instant::now(), wait);
            let woken = async {
                rearmed.recv().await;
            };
            futures_lite::future::or(sleep, woken).await;
        }
        let now = Now::read();
        {
            let mut guard = shard.borrow_mut();
            let sh = &mut *guard;
            // Nothing is due yet when woken early: the logic fires only
            // what is, so this costs a look.
            sh.logic.handle_timeout(now, &mut sh.out);
            dispatch_handoffs(sh);
        }
        apply_media_changes(&shard, &media, now);
        flush(&sock, &shard, send_batch).await;
    }
}

/// Drains the inbox; returns on `Stop`.
async fn inbox_loop<L: ShardLogic + 'static>(
    sock: &Rc<UdpSocket>,
    door: &UdpSocket,
    shard: &Rc<RefCell<Shard<L>>>,
    media: &Rc<MediaShell>,
    pacer: &Rc<Pacer>,
    send_batch: usize,
) {
    let inbox = shard.borrow().ctx.inboxes[shard.borrow().ctx.id].clone();
    let mut bell = [0u8; 64];
    loop {
        let mut stop = false;
        let mut got = 0usize;
        let now = Now::read();
        {
            let mut guard = shard.borrow_mut();
            let sh = &mut *guard;
            while let Some(msg) = inbox.pop() {
                got += 1;
                match msg {
                    ShardMsg::Stop => {
                        sh.logic.on_stop(now, &mut sh.out);
                        stop = true;
                    }
                    ShardMsg::Datagram { data, src } => {
                        ShardStats::add(&sh.ctx.stats.handoff_in, 1);
                        sh.logic.on_datagram(now, &data, src, true, &mut sh.out);
                    }
                    other => sh.logic.on_message(now, other, &mut sh.out),
                }
            }
            dispatch_handoffs(sh);
        }
        apply_media_changes(shard, media, now);
        flush(sock, shard, send_batch).await;
        if stop {
            return;
        }
        // While the shard polls, the doorbell stays unarmed: senders push
        // without a syscall and the next beat takes what they queued.
        let now = Instant::now();
        if got > 0 {
            pacer.saw_work(now);
        }
        if pacer.polling(now) {
            beat(pacer, now, Duration::ZERO).await;
            continue;
        }
        if inbox.arm() {
            if let Err(e) = door.recv_from(&mut bell).await {
                tracing::warn!("shard doorbell failed: {e}");
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// The shard's media sockets and the way to wake their poller.
struct MediaShell {
    io: RefCell<MediaIo>,
    /// Told when the first socket opens (the poller waits while there are none).
    wake: glommio::channels::local_channel::LocalSender<()>,
}

/// Binds and closes the media sockets the logic asks for, answering each
/// at once (a failed bind is answered too, so the logic never counts on a
/// socket that does not exist).
fn apply_media_changes<L: ShardLogic + 'static>(
    shard: &Rc<RefCell<Shard<L>>>,
    media: &Rc<MediaShell>,
    now: Now,
) {
    let mut guard = shard.borrow_mut();
    let sh = &mut *guard;
    let mut io = media.io.borrow_mut();
    let was_idle = io.is_idle();
    while let Some(op) = sh.logic.poll_socket_op(now, &mut sh.out) {
        // A failed bind is the logic's to report (a spare another program
        // holds is routine; a session's port is not).
        let event = io.apply(op);
        sh.logic.on_socket_event(event);
    }
    dispatch_handoffs(sh);
    // Last in every turn: deadlines the turn made (socket work included)
    // may be earlier than the one the timer task sleeps to.
    sh.rearm_timer();
    if was_idle && !io.is_idle() {
        let _ = media.wake.try_send(());
    }
}

/// Relays media: polls the shard's media sockets while there are any (see
/// `media_io`), sleeping `MEDIA_POLL` when none is ready. What the packets
/// made the logic ask for (recording) is taken after each pass.
async fn media_poller<L: ShardLogic + 'static>(
    sock: Rc<UdpSocket>,
    shard: Rc<RefCell<Shard<L>>>,
    media: Rc<MediaShell>,
    pacer: Rc<Pacer>,
    wake: glommio::channels::local_channel::LocalReceiver<()>,
    send_batch: usize,
) {
    loop {
        if media.io.borrow().is_idle() {
            if wake.recv().await.is_none() {
                return;
            }
            continue;
        }
        let now = Now::read();
        let counts = {
            let mut io = media.io.borrow_mut();
            let mut guard = shard.borrow_mut();
            let sh = &mut *guard;
            let counts = io.poll(|port, src, data| sh.logic.on_media(now, port, src, data));
            let stats = &sh.ctx.stats;
            ShardStats::add(&stats.rtp_rx, counts.received);
            ShardStats::add(&stats.rtp_tx, counts.relayed.saturating_sub(counts.failed));
            ShardStats::add(
                &stats.rtp_dropped,
                counts.received - counts.relayed + counts.failed,
            );
            counts
        };
        if counts.received > 0 {
            apply_media_changes(&shard, &media, now);
            // Nothing a packet does sends SIP today; should it, it leaves now.
            flush(&sock, &shard, send_batch).await;
        }
        if counts.received == 0 {
            beat(&pacer, Instant::now(), Duration::ZERO).await;
        } else {
            glommio::yield_if_needed().await;
        }
    }
}

/// Sleeps until the first beat of the shard's grid at least `at_least` from
/// `now`, so every task of the shard that sleeps wakes on the same instants.
async fn beat(pacer: &Pacer, now: Instant, at_least: Duration) {
    let period = pacer.interval_or(MEDIA_POLL);
    glommio::timer::sleep(pacer.until_beat(now, period, at_least)).await;
}

fn dispatch_handoffs<L>(sh: &mut Shard<L>) {
    for (owner, data, src) in sh.out.handoffs.drain(..) {
        let Some(inbox) = sh.ctx.inboxes.get(owner) else {
            continue;
        };
        if inbox.push(ShardMsg::Datagram { data, src }) {
            ShardStats::add(&sh.ctx.stats.handoff_out, 1);
        } else {
            ShardStats::add(&sh.ctx.stats.handoff_dropped, 1);
        }
    }
}

/// Sends what the logic queued: `sendmmsg` batches, and when the socket
/// buffer is full, one awaited send (which waits for room) before retrying.
async fn flush<L>(sock: &Rc<UdpSocket>, shard: &Rc<RefCell<Shard<L>>>, batch: usize) {
    let mut queue = {
        let mut sh = shard.borrow_mut();
        if sh.out.sends.is_empty() {
            return;
        }
        std::mem::take(&mut sh.out.sends)
    };
    let fd: RawFd = sock.as_raw_fd();
    {
        let sh = shard.borrow();
        for i in 0..queue.len() {
            sh.ctx.stats.sip.count(false, queue.item(i).1);
        }
    }
    let mut failed = 0u64;
    let mut next = 0;
    while next < queue.len() {
        next = queue.send_from(fd, next, batch, &mut failed);
        if next < queue.len() {
            let (dst, data) = queue.item(next);
            if sock.send_to(data, dst).await.is_err() {
                failed += 1;
            }
            next += 1;
        }
    }
    let mut sh = shard.borrow_mut();
    ShardStats::add(&sh.ctx.stats.tx_datagrams, queue.len() as u64 - failed);
    ShardStats::add(&sh.ctx.stats.tx_errors, failed);
    // Give the (cleared) buffer back so its capacity is reused.
    if sh.out.sends.is_empty() {
        queue.clear();
        sh.out.sends = queue;
    }
}
