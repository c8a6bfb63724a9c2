//! One shard's SIP stream connections (RFC 3261 section 18 over TCP, and
//! over TLS with rustls; RFC 7118 over WebSocket, plain and over TLS): its
//! SO_REUSEPORT listeners (the kernel spreads new connections over the
//! shards), the connections it accepted, their TLS sessions, framing (SIP
//! or WebSocket), write queues and limits. Non-blocking only;
//! readiness comes from an epoll set of its own whose fd the shard's park
//! watches. A TLS session is sans-IO (rustls): ciphertext read from the
//! socket goes in, plaintext comes out to the framer; what it writes
//! (handshake, records) goes to the connection's write queue.
//!
//! A pass ([`Streams::poll`]): accept what waits (up to the limits: in
//! all, per source IP; a connection over a limit is closed at once), read
//! what waits on each ready connection (a bounded number of reads each, so
//! one busy peer does not starve the others), frame it, hand each message
//! to the caller, answer pings with pongs, and flush write queues that got
//! room. Once a second, idle connections and slow senders (a message
//! partial for longer than the framer allows) are closed.
//!
//! Connections to trunks over TCP or TLS are dialled by the shard that
//! sends to them, kept in a table by (address, kind) and reused while they
//! last; a TLS one verifies the trunk's certificate ([`TlsDial`]).
//! Messages queued while the connect or handshake is under way go out once
//! it is done.
//!
//! Writes go out at once while the socket takes them; the rest waits in
//! the connection's queue, bounded by [`StreamConfig::max_queued`] (a
//! reader that does not read is closed, not buffered for).

mod conn;
mod framing;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use rustls::{ClientConnection, Connection, ServerConfig, ServerConnection};

use self::conn::{drain_tls, open_tls, Conn, Framing};
use self::framing::{frame_sip, frame_ws};

use super::epoll::{self, ctl};
use super::stats::ShardStats;
use crate::transport::tls::TlsDial;
use crate::transport::websocket::{OriginPolicy, WsCodec};
use crate::transport::{ConnId, Framer, Limits, Peer, StreamKind};

/// epoll tag of listener `i` is `TAG_LISTENERS - i` (connections are
/// tagged by slot, counting up from 0).
const TAG_LISTENERS: u64 = u64::MAX;
/// How long a TLS handshake may take (ms), or the time one message may
/// take when that is shorter.
const HANDSHAKE_MS: u64 = 10_000;
/// Reads per ready connection per pass.
const READS_PER_PASS: usize = 4;
/// Accepts per pass.
const ACCEPTS_PER_PASS: usize = 64;
/// Idle and slow-sender sweep period (ms).
const SWEEP_MS: u64 = 1_000;
/// How long the listener rests when the process is out of descriptors or
/// memory (ms): the pending connections wait in the kernel's backlog
/// instead of waking the shard for an accept that fails.
const ACCEPT_REST_MS: u64 = 100;

/// Limits of one shard's stream connections.
#[derive(Clone, Copy, Debug)]
pub struct StreamConfig {
    /// Connections this shard keeps at once.
    pub max_conns: usize,
    /// Connections one source IP may hold on this shard.
    pub max_per_ip: usize,
    /// A connection with no traffic (keep-alives count) this long is
    /// closed (ms).
    pub idle_ms: u64,
    /// Bytes a connection may have waiting to be written.
    pub max_queued: usize,
    /// What one message may be.
    pub limits: Limits,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_conns: 4096,
            max_per_ip: 64,
            idle_ms: 300_000,
            max_queued: 1 << 20,
            limits: Limits::default(),
        }
    }
}

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed it, or the socket failed.
    Peer,
    /// Bad framing: no or bad Content-Length, too large.
    Framing,
    /// No traffic for `idle_ms`.
    Idle,
    /// A message took longer than the framer allows.
    Slow,
    /// Its write queue overflowed.
    Backlog,
}

struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

/// The stream connections of one shard.
pub(super) struct Streams {
    shard: u16,
    cfg: StreamConfig,
    /// The listeners (TCP, TLS, WS, WSS: those that are on).
    listeners: Vec<(TcpListener, StreamKind)>,
    /// The configuration new TLS sessions take (TLS and WSS).
    tls: Option<Arc<ServerConfig>>,
    /// Which pages may open a WebSocket.
    ws_origins: Arc<OriginPolicy>,
    /// Room to frame one WebSocket message we send.
    ws_scratch: Vec<u8>,
    epfd: OwnedFd,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// Connections with messages queued this turn.
    dirty: Vec<u32>,
    /// The connections this shard dialled, by (address, kind).
    dialled: HashMap<(SocketAddr, StreamKind), u32>,
    per_ip: HashMap<IpAddr, u32>,
    scratch: Vec<u8>,
    /// Plaintext out of a TLS session.
    plain: Vec<u8>,
    last_sweep_ms: u64,
    /// The listener is out of the epoll set until then (mono ms).
    resting_until: Option<u64>,
    /// Connections closed since the last [`Streams::take_closed`].
    closed: Vec<(Peer, CloseReason)>,
}

impl Streams {
    /// Takes this shard's listeners (bound with SO_REUSEPORT by the
    /// runtime), each with its kind; `tls` is what TLS and WSS sessions
    /// take.
    pub(super) fn new(
        shard: u16,
        listeners: Vec<(TcpListener, StreamKind)>,
        tls: Option<Arc<ServerConfig>>,
        ws_origins: Arc<OriginPolicy>,
        cfg: StreamConfig,
    ) -> io::Result<Streams> {
        let epfd = epoll::create()?;
        for (i, (l, kind)) in listeners.iter().enumerate() {
            if kind.is_secure() && tls.is_none() {
                return Err(io::Error::other(format!(
                    "{kind:?} listener without TLS settings"
                )));
            }
            let tag = TAG_LISTENERS - i as u64;
            l.set_nonblocking(true)?;
            ctl(
                &epfd,
                libc::EPOLL_CTL_ADD,
                l.as_raw_fd(),
                libc::EPOLLIN,
                tag,
            )?;
        }
        Ok(Streams {
            shard,
            cfg,
            listeners,
            tls,
            ws_origins,
            ws_scratch: Vec::new(),
            epfd,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            per_ip: HashMap::new(),
            scratch: vec![0; 64 * 1024],
            plain: vec![0; 16 * 1024],
            last_sweep_ms: 0,
            resting_until: None,
            closed: Vec::new(),
            dialled: HashMap::new(),
            dirty: Vec::new(),
        })
    }

    /// The epoll set the park watches: readable when a connection or the
    /// listener is.
    pub(super) fn ready_fd(&self) -> std::os::fd::RawFd {
        self.epfd.as_raw_fd()
    }

    /// One pass; `deliver` gets each framed message and its peer. Returns
    /// how much work was found (messages, accepts, flushes).
    pub(super) fn poll(
        &mut self,
        now_ms: u64,
        stats: &ShardStats,
        mut deliver: impl FnMut(&[u8], Peer),
    ) -> usize {
        if self.live == 0 && self.listeners.is_empty() {
            // Nothing to watch (no listeners, nothing dialled): no syscall.
            return 0;
        }
        let mut work = 0;
        if now_ms >= self.last_sweep_ms + SWEEP_MS {
            self.last_sweep_ms = now_ms;
            self.sweep(now_ms, stats);
        }
        if self.resting_until.is_some_and(|until| now_ms >= until) {
            self.watch_listeners(libc::EPOLL_CTL_ADD);
        }
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: events has 64 slots; a zero timeout never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                0,
            )
        };
        for ev in events.iter().take(n.max(0) as usize) {
            let (tag, ready) = (ev.u64, ev.events);
            let listener = TAG_LISTENERS - tag;
            if listener < self.listeners.len() as u64 {
                work += self.accept(listener as usize, now_ms, stats);
                continue;
            }
            let slot = tag as u32;
            if ready & libc::EPOLLOUT as u32 != 0 {
                work += 1;
                if self.connected(slot, stats) {
                    self.flush(slot, stats);
                }
            }
            if ready & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                work += self.read(slot, now_ms, stats, &mut deliver);
            }
        }
        work
    }

    /// Writes one message to connection `conn` of this shard; false when
    /// the connection is gone (the message is lost, as a datagram to a
    /// peer that left would be).
    pub(super) fn send(&mut self, conn: ConnId, data: &[u8], stats: &ShardStats) -> bool {
        let mut scratch = std::mem::take(&mut self.ws_scratch);
        let queued = self
            .conn_mut(conn)
            .map(|c| c.queue_message(data, &mut scratch));
        self.ws_scratch = scratch;
        match queued {
            None => {
                ShardStats::add(&stats.stream_sends_lost, 1);
                return false;
            }
            Some(false) => {
                self.close(conn.slot, CloseReason::Peer, stats);
                return false;
            }
            Some(true) => {}
        }
        let Some(c) = self.conn_mut(conn) else {
            return false;
        };
        ShardStats::add(&stats.tx_stream_messages, 1);
        // Written by `flush_queued` at the end of the turn: one write for
        // every message the turn made for this connection.
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn.slot);
        }
        true
    }

    /// Writes what this turn queued, one write per connection.
    pub(super) fn flush_queued(&mut self, stats: &ShardStats) {
        let dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            if let Some(c) = conn_at(&mut self.slots, slot) {
                c.dirty = false;
                self.flush(slot, stats);
            }
        }
        // Keeps the list's room for the next turn.
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// Sends one message over this shard's own connection to `addr` of
    /// `kind`, dialling it when there is none (a TLS one verified with
    /// `tls`). False when it cannot be made (the message is lost, counted).
    pub(super) fn dial_send(
        &mut self,
        now_ms: u64,
        addr: SocketAddr,
        kind: StreamKind,
        tls: Option<TlsDial>,
        data: &[u8],
        stats: &ShardStats,
    ) -> bool {
        let slot = match self.dialled.get(&(addr, kind)) {
            Some(&slot) => slot,
            None => match self.dial(now_ms, addr, kind, tls) {
                Ok(slot) => {
                    ShardStats::add(&stats.tcp_dialled, 1);
                    slot
                }
                Err(e) => {
                    tracing::warn!(%addr, ?kind, "cannot connect: {e}");
                    ShardStats::add(&stats.stream_sends_lost, 1);
                    // Reported like a connection that closed: what was
                    // sent there fails at once.
                    self.closed
                        .push((Peer::dial(addr, kind), CloseReason::Peer));
                    return false;
                }
            },
        };
        let id = self.id(slot);
        self.send(id, data, stats)
    }

    fn dial(
        &mut self,
        now_ms: u64,
        addr: SocketAddr,
        kind: StreamKind,
        tls: Option<TlsDial>,
    ) -> io::Result<u32> {
        use socket2::{Domain, Protocol, Socket, Type};
        if self.live >= self.cfg.max_conns {
            return Err(io::Error::other("tcp_max_connections reached"));
        }
        let session = match kind {
            StreamKind::Tcp => None,
            // We never dial a WebSocket (browsers come to us).
            StreamKind::Ws | StreamKind::Wss => {
                return Err(io::Error::other("a WebSocket is never dialled"));
            }
            StreamKind::Tls => {
                let d = tls.ok_or_else(|| io::Error::other("no TLS settings for this address"))?;
                let mut c = ClientConnection::new(d.config, d.name).map_err(io::Error::other)?;
                c.set_buffer_limit(Some(self.cfg.limits.max_head + self.cfg.limits.max_body));
                Some(Box::new(Connection::Client(c)))
            }
        };
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let slot = self.adopt(TcpStream::from(sock), addr, kind, session, now_ms)?;
        if let Some(c) = self.slots[slot as usize].conn.as_mut() {
            c.dialled = true;
            c.connecting = true;
            if let Some(tls) = c.tls.as_mut() {
                // The ClientHello waits in the queue for the connect.
                drain_tls(tls, &mut c.queued);
            }
        }
        self.watch(slot, true);
        self.dialled.insert((addr, kind), slot);
        Ok(slot)
    }

    /// Watches a connection for room (or for its connect to finish) too.
    fn watch(&mut self, slot: u32, out: bool) {
        let Some(c) = conn_at(&mut self.slots, slot) else {
            return;
        };
        if c.watching_out == out {
            return;
        }
        let events = if out {
            libc::EPOLLIN | libc::EPOLLOUT
        } else {
            libc::EPOLLIN
        };
        if ctl(
            &self.epfd,
            libc::EPOLL_CTL_MOD,
            c.stream.as_raw_fd(),
            events,
            u64::from(slot),
        )
        .is_ok()
        {
            c.watching_out = out;
        }
    }

    /// New TLS sessions take `config` (a reloaded certificate); sessions
    /// under way keep theirs.
    pub(super) fn set_tls_config(&mut self, config: Arc<ServerConfig>) {
        if let Some(c) = &mut self.tls {
            *c = config;
        }
    }

    /// Connections closed since the last call, with why.
    pub(super) fn take_closed(&mut self) -> Vec<(Peer, CloseReason)> {
        std::mem::take(&mut self.closed)
    }

    /// Connections open now.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        if id.shard != self.shard {
            return None;
        }
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_mut()
    }

    fn id(&self, slot: u32) -> ConnId {
        ConnId {
            shard: self.shard,
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    fn accept(&mut self, index: usize, now_ms: u64, stats: &ShardStats) -> usize {
        let mut got = 0;
        for _ in 0..ACCEPTS_PER_PASS {
            let Some((listener, kind)) = self.listeners.get(index) else {
                return got;
            };
            let kind = *kind;
            let (stream, peer) = match listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if out_of_resources(&e) => {
                    tracing::warn!("tcp accept failed, new connections wait: {e}");
                    self.watch_listeners(libc::EPOLL_CTL_DEL);
                    self.resting_until = Some(now_ms + ACCEPT_REST_MS);
                    break;
                }
                Err(e) => {
                    // The peer reset before the accept, and the like.
                    tracing::debug!("tcp accept failed: {e}");
                    continue;
                }
            };
            got += 1;
            let ip = canonical(peer.ip());
            let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0) as usize;
            if self.live >= self.cfg.max_conns || from_ip >= self.cfg.max_per_ip {
                ShardStats::add(&stats.tcp_refused, 1);
                drop(stream);
                continue;
            }
            let tls = match (kind.is_secure(), &self.tls) {
                (true, Some(config)) => match ServerConnection::new(config.clone()) {
                    Ok(mut s) => {
                        // Bounds what a peer can make the session buffer.
                        s.set_buffer_limit(Some(
                            self.cfg.limits.max_head + self.cfg.limits.max_body,
                        ));
                        Some(Box::new(Connection::Server(s)))
                    }
                    Err(e) => {
                        tracing::warn!("tls session not made: {e}");
                        continue;
                    }
                },
                _ => None,
            };
            if let Err(e) = self.adopt(stream, peer, kind, tls, now_ms) {
                tracing::debug!(%peer, "tcp connection not kept: {e}");
                continue;
            }
            *self.per_ip.entry(ip).or_insert(0) += 1;
            ShardStats::add(&stats.tcp_accepted, 1);
        }
        got
    }

    /// Puts the listeners in (`EPOLL_CTL_ADD`) or out of the epoll set.
    fn watch_listeners(&mut self, op: libc::c_int) {
        for (i, (l, _)) in self.listeners.iter().enumerate() {
            let tag = TAG_LISTENERS - i as u64;
            if let Err(e) = ctl(&self.epfd, op, l.as_raw_fd(), libc::EPOLLIN, tag) {
                tracing::warn!("sip listener: cannot change its watch: {e}");
            }
        }
        if op == libc::EPOLL_CTL_ADD {
            self.resting_until = None;
        }
    }

    fn adopt(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        kind: StreamKind,
        tls: Option<Box<Connection>>,
        now_ms: u64,
    ) -> io::Result<u32> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.slots.len()).map_err(|_| io::Error::other("slots"))?;
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                s
            }
        };
        if let Err(e) = ctl(
            &self.epfd,
            libc::EPOLL_CTL_ADD,
            stream.as_raw_fd(),
            libc::EPOLLIN,
            u64::from(slot),
        ) {
            self.free.push(slot);
            return Err(e);
        }
        self.slots[slot as usize].conn = Some(Conn {
            stream,
            peer,
            tls,
            kind,
            framing: if kind.is_websocket() {
                Framing::Ws(Box::new(WsCodec::new(
                    self.cfg.limits,
                    self.ws_origins.clone(),
                )))
            } else {
                Framing::Sip(Framer::new(self.cfg.limits))
            },
            queued: Vec::new(),
            opened_ms: now_ms,
            last_ms: now_ms,
            watching_out: false,
            dialled: false,
            connecting: false,
            dirty: false,
        });
        self.live += 1;
        Ok(slot)
    }

    fn read(
        &mut self,
        slot: u32,
        now_ms: u64,
        stats: &ShardStats,
        deliver: &mut impl FnMut(&[u8], Peer),
    ) -> usize {
        let id = self.id(slot);
        let Some(Slot {
            conn: Some(c),
            generation: _,
        }) = self.slots.get_mut(slot as usize)
        else {
            return 0;
        };
        let peer = Peer::stream(c.peer, id, c.kind);
        let mut got = 0;
        let mut close = None;
        for _ in 0..READS_PER_PASS {
            let n = match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    close = Some(CloseReason::Peer);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    close = Some(CloseReason::Peer);
                    break;
                }
            };
            c.last_ms = now_ms;
            ShardStats::add(&stats.rx_bytes, n as u64);
            match &mut c.tls {
                None => c.framing.push(now_ms, &self.scratch[..n]),
                Some(tls) => {
                    if let Err(why) = open_tls(
                        tls,
                        &self.scratch[..n],
                        &mut self.plain,
                        &mut c.framing,
                        &mut c.queued,
                        now_ms,
                    ) {
                        if why == CloseReason::Framing {
                            ShardStats::add(&stats.tls_failures, 1);
                        }
                        close = Some(why);
                        break;
                    }
                }
            }
            // Every message, however framed: counted, then handed out.
            let take = |m: &[u8]| {
                ShardStats::add(&stats.rx_stream_messages, 1);
                stats.sip.count(true, m);
                deliver(m, peer);
            };
            let framed = match &mut c.framing {
                Framing::Sip(f) => frame_sip(f, &mut c.tls, &mut c.queued, now_ms, stats, take),
                Framing::Ws(w) => frame_ws(w, &mut c.tls, &mut c.queued, now_ms, stats, take),
            };
            match framed {
                Ok(n) => got += n,
                Err((n, why)) => {
                    got += n;
                    if why == CloseReason::Framing {
                        tracing::debug!(peer = %c.peer, kind = ?c.kind, "stream closed: bad framing");
                    }
                    close = Some(why);
                    break;
                }
            }
            if close.is_some() || n < self.scratch.len() {
                break;
            }
        }
        if let Some(why) = close {
            // What was queued (a WebSocket close or refusal, a TLS alert)
            // goes out first, as far as the socket takes it.
            self.flush(slot, stats);
            self.close(slot, why, stats);
        } else if self.slots[slot as usize]
            .conn
            .as_ref()
            .is_some_and(|c| !c.queued.is_empty())
        {
            self.flush(slot, stats);
        }
        got.max(1)
    }

    /// Writes what the connection has queued; watches for room when the
    /// socket is full, closes it when the queue overflows or the write
    /// fails.
    fn flush(&mut self, slot: u32, stats: &ShardStats) {
        let Some(c) = conn_at(&mut self.slots, slot) else {
            return;
        };
        if c.connecting {
            // Written once the connect is done (the room event says so).
            if c.queued.len() > self.cfg.max_queued {
                self.close(slot, CloseReason::Backlog, stats);
            }
            return;
        }
        let mut sent = 0;
        let mut failed = false;
        while sent < c.queued.len() {
            match c.stream.write(&c.queued[sent..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        ShardStats::add(&stats.tx_stream_bytes, sent as u64);
        c.queued.drain(..sent);
        if failed {
            self.close(slot, CloseReason::Peer, stats);
            return;
        }
        if c.queued.len() > self.cfg.max_queued {
            self.close(slot, CloseReason::Backlog, stats);
            return;
        }
        let want_out = !c.queued.is_empty();
        self.watch(slot, want_out);
    }

    /// A dialled connection became writable: its connect is done (or
    /// failed).
    fn connected(&mut self, slot: u32, stats: &ShardStats) -> bool {
        let Some(c) = conn_at(&mut self.slots, slot) else {
            return false;
        };
        if !c.connecting {
            return true;
        }
        match c.stream.take_error() {
            Ok(None) => {
                c.connecting = false;
                let _ = c.stream.set_nodelay(true);
                true
            }
            Ok(Some(e)) | Err(e) => {
                tracing::warn!(peer = %c.peer, "connect failed: {e}");
                self.close(slot, CloseReason::Peer, stats);
                false
            }
        }
    }

    fn sweep(&mut self, now_ms: u64, stats: &ShardStats) {
        let mut due = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let Some(c) = &s.conn else { continue };
            let handshaking = c.connecting || c.tls.as_ref().is_some_and(|t| t.is_handshaking());
            if now_ms.saturating_sub(c.last_ms) > self.cfg.idle_ms {
                due.push((i as u32, CloseReason::Idle));
            } else if c.framing.stalled(now_ms)
                || (handshaking
                    && now_ms.saturating_sub(c.opened_ms)
                        > HANDSHAKE_MS.min(self.cfg.limits.partial_ms))
            {
                due.push((i as u32, CloseReason::Slow));
            }
        }
        for (slot, why) in due {
            self.close(slot, why, stats);
        }
    }

    fn close(&mut self, slot: u32, why: CloseReason, stats: &ShardStats) {
        let id = self.id(slot);
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(c) = s.conn.take() else {
            return;
        };
        s.generation = s.generation.wrapping_add(1);
        // Closing the fd takes it out of the epoll set too.
        let _ = ctl(&self.epfd, libc::EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, 0);
        if c.dialled {
            let key = (c.peer, c.kind);
            if self.dialled.get(&key) == Some(&slot) {
                self.dialled.remove(&key);
            }
        } else {
            let ip = canonical(c.peer.ip());
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
        self.free.push(slot);
        self.live -= 1;
        ShardStats::add(&stats.tcp_closed, 1);
        if why == CloseReason::Idle || why == CloseReason::Slow {
            ShardStats::add(&stats.tcp_timed_out, 1);
        }
        // A connection we dialled is named as the engine sent to it.
        let peer = if c.dialled {
            Peer::dial(c.peer, c.kind)
        } else {
            Peer::stream(c.peer, id, c.kind)
        };
        self.closed.push((peer, why));
    }
}

/// The connection in `slot`, if there is one.
fn conn_at(slots: &mut [Slot], slot: u32) -> Option<&mut Conn> {
    slots.get_mut(slot as usize).and_then(|s| s.conn.as_mut())
}

/// Errors of accept that say the process (not the peer) is short of
/// something: descriptors, buffers, memory.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// An IPv4-mapped IPv6 address counts as its IPv4 (one source, one count).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
