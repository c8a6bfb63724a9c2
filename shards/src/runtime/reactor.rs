//! One shard's loop: everything the shard owns polled in turn on its own
//! thread, and one park, in `epoll_wait`, only when a whole pass found
//! nothing to do.
//!
//! A pass, in this order:
//! 1. the SIP socket: `recvmmsg` batches (at most [`RECV_ROUNDS`] of them,
//!    so the other sources get their turn under load);
//! 2. the inbox: datagrams other shards handed on, the store writer's
//!    answers, control messages;
//! 3. the media sockets, when the relay reads any;
//! 4. stream connections (`streams.rs`), when TCP is on: accepts, framed
//!    messages, pongs, write queues that got room, and what closed;
//! 5. deadlines: `handle_timeout` when [`ShardLogic::poll_timeout`] is due
//!    (or `tick` passed without one), right after the media and stream polls, so the
//!    relay's tick (which hands steady streams to the kernel) sees as few
//!    packets still waiting in their sockets as can be;
//!
//! and after each source: handoffs to their owners' inboxes, the socket
//! work the relay asked for, then one `sendmmsg` flush of what the turn
//! queued. A send the kernel cannot take now (socket buffer full) stays
//! queued, in order, and the park also waits for the socket to be writable.
//!
//! The park: the inbox's doorbell is armed (then pushes ring it), and one
//! `epoll_wait` covers the SIP socket, the doorbell and, while sends wait,
//! the socket's room, until the logic's next deadline. While the relay has
//! sockets, media is polled on the beat ([`MEDIA_POLL`] or the pacer's
//! interval), not per packet, so one wake serves every call's packets. With
//! `poll_interval` set and work seen lately (the pacer), the shard sleeps
//! to the next beat instead of waiting for readiness.
//!
//! This replaces the executor's own park (an io_uring enter with a timer
//! submitted and cancelled, a `membarrier`, for every wake, in each of four
//! tasks): `perf/RESULTS.md`, "One loop per shard".

use std::io;
use std::net::UdpSocket as StdUdpSocket;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::epoll::{self, ctl};
use super::inbox::{Inbox, ShardMsg};
use super::media_io::{MediaIo, MEDIA_POLL};
use super::pacer::Pacer;
use super::shard::{Output, ShardContext, ShardLogic, MAX_DATAGRAM};
use super::stats::{ShardGauges, ShardStats};
use super::streams::Streams;
use super::udp_batch::{RecvBatch, SendQueue};
use crate::time::Now;
use crate::transport::{Peer, StreamKind};

/// `recvmmsg` batches taken from the SIP socket per pass.
const RECV_ROUNDS: usize = 4;

/// epoll tags of the park's sources.
const TAG_SIP: u64 = 1;
const TAG_DOOR: u64 = 2;
const TAG_MEDIA: u64 = 3;
const TAG_STREAMS: u64 = 4;

/// Media polls in a row that found nothing before the park stops beating
/// for media and waits for a media socket to be readable instead (the
/// streams are quiet, or the kernel relays them).
const QUIET_MEDIA_POLLS: u32 = 16;

/// How a shard loop runs (from `[runtime]`).
pub(super) struct LoopConfig {
    pub recv_batch: usize,
    pub send_batch: usize,
    /// The longest park without calling `handle_timeout`.
    pub tick: Duration,
    pub poll_interval: Duration,
    /// Keep polling this long after the last work before parking.
    pub spin_before_park: Duration,
}

/// One shard: its logic, its sockets, and the loop around them.
pub(super) struct Reactor<L> {
    ctx: ShardContext,
    logic: L,
    out: Output,
    cfg: LoopConfig,
    sock: StdUdpSocket,
    inbox: std::sync::Arc<Inbox>,
    media: MediaIo,
    /// The shard's TCP/TLS listeners and connections (accepted and dialled).
    streams: Streams,
    rx: RecvBatch,
    pacer: Pacer,
    epfd: OwnedFd,
    /// The SIP socket is also watched for room (sends wait).
    watching_room: bool,
    /// Media polls in a row that found nothing.
    quiet_media_polls: u32,
    /// The media sockets' epoll set is in the park's (media is quiet).
    watching_media: bool,
    /// When `handle_timeout` last ran (mono ms).
    last_timeout: u64,
    stopping: bool,
}

impl<L: ShardLogic> Reactor<L> {
    pub(super) fn new(
        ctx: ShardContext,
        cfg: LoopConfig,
        sock: StdUdpSocket,
        streams: Streams,
        logic: L,
    ) -> io::Result<Reactor<L>> {
        sock.set_nonblocking(true)?;
        if let Err(e) = super::backlog::enable(sock.as_raw_fd()) {
            tracing::warn!(
                "no receive times on the SIP socket ({e}): overload shedding on its backlog is off"
            );
        }
        let media = MediaIo::new()?;
        let epfd = epoll::create()?;
        ctl(
            &epfd,
            libc::EPOLL_CTL_ADD,
            sock.as_raw_fd(),
            libc::EPOLLIN,
            TAG_SIP,
        )?;
        let inbox = ctx.inboxes[ctx.id].clone();
        ctl(
            &epfd,
            libc::EPOLL_CTL_ADD,
            inbox.doorbell_fd(),
            libc::EPOLLIN,
            TAG_DOOR,
        )?;
        ctl(
            &epfd,
            libc::EPOLL_CTL_ADD,
            streams.ready_fd(),
            libc::EPOLLIN,
            TAG_STREAMS,
        )?;
        Ok(Reactor {
            streams,
            rx: RecvBatch::new(cfg.recv_batch, MAX_DATAGRAM),
            pacer: Pacer::new(cfg.poll_interval, Instant::now()),
            ctx,
            logic,
            out: Output::default(),
            cfg,
            sock,
            inbox,
            media,
            epfd,
            watching_room: false,
            quiet_media_polls: 0,
            watching_media: false,
            last_timeout: Now::read().mono_ms,
            stopping: false,
        })
    }

    /// Runs until the inbox says stop.
    pub(super) fn run(mut self) {
        let mut idle_since: Option<Instant> = None;
        while !self.stopping {
            let now = Now::read();
            let work = self.poll_sip(now)
                + self.poll_inbox(now)
                + self.poll_media(now)
                + self.poll_streams(now)
                + self.poll_deadlines(now);
            if work > 0 {
                self.pacer.saw_work(Instant::now(), work);
                idle_since = None;
                continue;
            }
            if self.stopping {
                break;
            }
            if !self.cfg.spin_before_park.is_zero() {
                let t = Instant::now();
                let since = *idle_since.get_or_insert(t);
                if t.duration_since(since) < self.cfg.spin_before_park {
                    std::hint::spin_loop();
                    continue;
                }
            }
            idle_since = None;
            self.park();
        }
        self.flush();
        tracing::debug!(shard = self.ctx.id, "shard stopped");
    }

    /// Up to `RECV_ROUNDS` batches from the SIP socket.
    fn poll_sip(&mut self, now: Now) -> usize {
        let fd = self.sock.as_raw_fd();
        let mut got = 0;
        for _ in 0..RECV_ROUNDS {
            let n = match self.rx.recv(fd) {
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
            let backlog = super::backlog::probe(fd, n, self.rx.capacity());
            self.logic.on_backlog(now, backlog);
            let stats = &self.ctx.stats;
            ShardStats::add(&stats.rx_datagrams, n as u64);
            for i in 0..n {
                let r = self.rx.get(i);
                ShardStats::add(&stats.rx_bytes, r.data.len() as u64);
                stats.sip.count(true, r.data);
                let Some(src) = r.src else { continue };
                if r.truncated {
                    ShardStats::add(&stats.dropped, 1);
                    continue;
                }
                self.logic
                    .on_datagram(now, r.data, Peer::udp(src), false, &mut self.out);
            }
            self.end_turn(now);
            if n < self.rx.capacity() {
                break;
            }
        }
        got
    }

    /// Everything waiting in the inbox.
    fn poll_inbox(&mut self, now: Now) -> usize {
        let mut got = 0;
        while let Some(msg) = self.inbox.pop() {
            got += 1;
            match msg {
                ShardMsg::Stop => {
                    self.logic.on_stop(now, &mut self.out);
                    self.stopping = true;
                }
                ShardMsg::Datagram { data, src } => {
                    ShardStats::add(&self.ctx.stats.handoff_in, 1);
                    self.logic.on_datagram(now, &data, src, true, &mut self.out);
                }
                ShardMsg::StreamSend { conn, data } => {
                    self.streams.send(conn, &data, &self.ctx.stats);
                }
                ShardMsg::TlsConfig(config) => self.streams.set_tls_config(config),
                other => self.logic.on_message(now, other, &mut self.out),
            }
        }
        if got > 0 {
            self.end_turn(now);
        }
        got
    }

    /// One pass over the stream connections.
    fn poll_streams(&mut self, now: Now) -> usize {
        let (streams, logic, out) = (&mut self.streams, &mut self.logic, &mut self.out);
        let mut work = streams.poll(now.mono_ms, &self.ctx.stats, |msg, peer| {
            logic.on_datagram(now, msg, peer, false, out);
        });
        for (peer, why) in streams.take_closed() {
            work += 1;
            logic.on_stream_closed(now, peer, why, out);
        }
        ShardGauges::set(&self.ctx.stats.gauges.tcp_connections, streams.len() as u64);
        if work > 0 {
            self.end_turn(now);
        }
        work
    }

    /// Fires what is due (and at least every `tick`).
    fn poll_deadlines(&mut self, now: Now) -> usize {
        let due = self
            .logic
            .poll_timeout()
            .is_some_and(|at| at <= now.mono_ms);
        let tick = self.cfg.tick.as_millis() as u64;
        if !due && now.mono_ms < self.last_timeout.saturating_add(tick) {
            return 0;
        }
        self.last_timeout = now.mono_ms;
        self.logic.handle_timeout(now, &mut self.out);
        self.end_turn(now);
        // A timeout that queued nothing is not work that keeps the shard up.
        usize::from(due)
    }

    /// One pass over the media sockets, when the relay reads any.
    fn poll_media(&mut self, now: Now) -> usize {
        if self.media.is_idle() {
            return 0;
        }
        let logic = &mut self.logic;
        let counts = self
            .media
            .poll(|port, src, buf, len| logic.on_media(now, port, src, buf, len));
        let stats = &self.ctx.stats;
        ShardStats::add(&stats.rtp_rx, counts.received);
        ShardStats::add(&stats.rtp_tx, counts.relayed.saturating_sub(counts.failed));
        ShardStats::add(
            &stats.rtp_dropped,
            counts.received - counts.relayed + counts.failed,
        );
        if counts.received > 0 {
            // Recording and failed sessions may ask for socket work.
            self.end_turn(now);
            self.quiet_media_polls = 0;
            self.watch_media(false);
        } else {
            self.quiet_media_polls = self.quiet_media_polls.saturating_add(1);
        }
        counts.received as usize
    }

    /// What every turn of the logic ends with: handoffs to their owners,
    /// the relay's socket work (answered at once), then the flush.
    fn end_turn(&mut self, now: Now) {
        self.dispatch_handoffs();
        while let Some(op) = self.logic.poll_socket_op(now, &mut self.out) {
            // A failed bind is the logic's to report (a spare another
            // program holds is routine; a session's port is not).
            let event = self.media.apply(op);
            self.logic.on_socket_event(event);
        }
        self.dispatch_handoffs();
        self.dispatch_streams(now);
        self.flush();
    }

    /// Messages for stream connections: this shard's are written now,
    /// another shard's go to its inbox; those for trunks go over this
    /// shard's own connection (dialled if need be).
    fn dispatch_streams(&mut self, now: Now) {
        let me = self.ctx.id as u16;
        for (peer, tls, data) in self.out.dials.drain(..) {
            let kind = peer.stream_kind().unwrap_or(StreamKind::Tcp);
            self.streams
                .dial_send(now.mono_ms, peer.addr, kind, tls, &data, &self.ctx.stats);
        }
        for (conn, data) in self.out.streams.drain(..) {
            if conn.shard == me {
                self.streams.send(conn, &data, &self.ctx.stats);
                continue;
            }
            let Some(inbox) = self.ctx.inboxes.get(usize::from(conn.shard)) else {
                continue;
            };
            if !inbox.push(ShardMsg::StreamSend { conn, data }) {
                ShardStats::add(&self.ctx.stats.handoff_dropped, 1);
            }
        }
        // This turn's messages for this shard's connections (and those
        // other shards handed over), one write per connection.
        self.streams.flush_queued(&self.ctx.stats);
    }

    fn dispatch_handoffs(&mut self) {
        for (owner, data, src) in self.out.handoffs.drain(..) {
            let Some(inbox) = self.ctx.inboxes.get(owner) else {
                continue;
            };
            if inbox.push(ShardMsg::Datagram { data, src }) {
                ShardStats::add(&self.ctx.stats.handoff_out, 1);
            } else {
                ShardStats::add(&self.ctx.stats.handoff_dropped, 1);
            }
        }
    }

    /// Sends what the logic queued without blocking; what the socket
    /// cannot take now stays queued, in order, for the next flush.
    fn flush(&mut self) {
        if self.out.sends.is_empty() {
            return;
        }
        let queue = &mut self.out.sends;
        let stats = &self.ctx.stats;
        let mut failed = 0u64;
        let next = queue.send_from(self.sock.as_raw_fd(), 0, self.cfg.send_batch, &mut failed);
        for i in 0..next {
            stats.sip.count(false, queue.item(i).1);
        }
        ShardStats::add(&stats.tx_datagrams, next as u64 - failed);
        ShardStats::add(&stats.tx_errors, failed);
        if next == queue.len() {
            queue.clear();
        } else {
            let mut rest = SendQueue::default();
            for i in next..queue.len() {
                let (dst, data) = queue.item(i);
                rest.push(dst, data);
            }
            *queue = rest;
        }
        self.watch_room(!self.out.sends.is_empty());
    }

    /// Also wakes the park when the SIP socket has room (sends wait).
    fn watch_room(&mut self, on: bool) {
        if on == self.watching_room {
            return;
        }
        let events = if on {
            libc::EPOLLIN | libc::EPOLLOUT
        } else {
            libc::EPOLLIN
        };
        match ctl(
            &self.epfd,
            libc::EPOLL_CTL_MOD,
            self.sock.as_raw_fd(),
            events,
            TAG_SIP,
        ) {
            Ok(()) => self.watching_room = on,
            Err(e) => tracing::warn!("sip socket: cannot watch for room: {e}"),
        }
    }

    /// Media readiness wakes the park (quiet media) or not (the beat).
    fn watch_media(&mut self, on: bool) {
        if on == self.watching_media {
            return;
        }
        let op = if on {
            libc::EPOLL_CTL_ADD
        } else {
            libc::EPOLL_CTL_DEL
        };
        match ctl(
            &self.epfd,
            op,
            self.media.ready_fd(),
            libc::EPOLLIN,
            TAG_MEDIA,
        ) {
            Ok(()) => self.watching_media = on,
            Err(e) => tracing::warn!("media sockets: cannot watch for readiness: {e}"),
        }
    }

    /// Sleeps until there is something to do: readiness, a doorbell, the
    /// next deadline, the media beat, or (polling) the pacer's beat. While
    /// media is busy it is polled on the beat, so one wake serves many
    /// packets; once [`QUIET_MEDIA_POLLS`] polls in a row found nothing,
    /// the park waits for a media socket to be readable instead.
    fn park(&mut self) {
        let start = Instant::now();
        if self.pacer.polling(start) {
            // Senders push without a doorbell; the next pass takes it all.
            let beat = self.pacer.interval_or(MEDIA_POLL);
            std::thread::sleep(self.pacer.until_beat(start, beat, Duration::ZERO));
            return;
        }
        if !self.inbox.arm() {
            return;
        }
        let now_ms = Now::read().mono_ms;
        let mut wait = match self.logic.poll_timeout() {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms)),
            None => self.cfg.tick,
        }
        .min(self.cfg.tick);
        let quiet = self.quiet_media_polls >= QUIET_MEDIA_POLLS;
        if !self.media.is_idle() && !quiet {
            let beat = self.pacer.interval_or(MEDIA_POLL);
            wait = wait.min(self.pacer.until_beat(start, beat, Duration::ZERO));
        }
        self.watch_media(quiet && !self.media.is_idle());
        // epoll counts in ms: round up, so a deadline is never polled early
        // in a loop of zero-timeout waits.
        let timeout_ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: events has 4 slots.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                timeout_ms,
            )
        };
        self.inbox.disarm();
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::warn!("shard park failed: {e}");
                std::thread::sleep(Duration::from_millis(1));
            }
            return;
        }
        for ev in &events[..n as usize] {
            let tag = ev.u64;
            let ready = ev.events;
            if tag == TAG_DOOR {
                self.inbox.drain_doorbell();
            } else if tag == TAG_SIP && ready & libc::EPOLLOUT as u32 != 0 {
                self.flush();
            }
        }
    }
}
