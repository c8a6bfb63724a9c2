//! Starting the shards: one glommio executor per shard, pinned to its CPU,
//! each with its own SO_REUSEPORT socket on the SIP port (and, where the
//! kernel allows, the program that steers each datagram to its owner's
//! socket: `steer.rs`), an inbox with a doorbell, and the
//! [`ShardLogic`] it runs. The executor hosts one loop (`reactor.rs`) that
//! moves the bytes: SIP datagrams in `recvmmsg` batches into the logic, the
//! ones it does not own to their owner's inbox, what it queued out with
//! `sendmmsg`, the media sockets its relay asks for, its deadlines.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use super::inbox::{Inbox, ShardMsg};
use super::kernel_rtp::{KernelRtpConfig, RtpPath};
use super::reactor::{LoopConfig, Reactor};
use super::stats::{ShardGauges, ShardStats};
use super::steer::{SteerError, Steering};
use super::streams::Streams;
use super::udp_batch::SendQueue;
use super::KernelMode;
use crate::media::fastpath::FastPath;
use crate::media::relay::{MediaInput, SocketOp};
use crate::time::Now;
use crate::transport::tls::TlsDial;
use crate::transport::websocket::OriginPolicy;
use crate::transport::{ConnId, Link, Peer, StreamKind};

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
    /// Whether the kernel may steer datagrams to their owner shard.
    pub steering: KernelMode,
    /// Whether (and for which ports) the kernel may relay steady RTP
    /// streams; `None` without a media relay.
    pub kernel_rtp: Option<KernelRtpConfig>,
    /// SIP over TCP and TLS: where to listen and the connections' limits;
    /// `None`: neither.
    pub streams: Option<StreamListeners>,
}

/// Where the shards listen for SIP stream connections.
#[derive(Clone, Debug)]
pub struct StreamListeners {
    /// Each listening address with its kind and the config key that set
    /// it (named when it cannot be bound): TCP, TLS, WS, WSS.
    pub listen: Vec<(SocketAddr, StreamKind, &'static str)>,
    /// The certificate's configuration for TLS and WSS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Which pages may open a SIP WebSocket.
    pub ws_origins: Arc<OriginPolicy>,
    pub limits: super::StreamConfig,
}

/// What a shard's logic asks the loop to do.
#[derive(Default)]
pub struct Output {
    /// Datagrams for the UDP socket.
    pub sends: SendQueue,
    /// Messages for stream connections (this shard's or another's).
    pub streams: Vec<(ConnId, Vec<u8>)>,
    /// Messages for this shard's own connection to an address (a trunk
    /// over TCP or TLS), dialled when there is none; TLS ones with how to
    /// verify the peer.
    pub dials: Vec<(Peer, Option<TlsDial>, Vec<u8>)>,
    /// `(owner shard, message, source)`: a message this shard does not own.
    pub handoffs: Vec<(usize, Vec<u8>, Peer)>,
}

impl Output {
    /// Queues one SIP message to `dest` on its link.
    pub fn send(&mut self, dest: Peer, data: &[u8]) {
        match dest.link {
            Link::Udp => self.sends.push(dest.addr, data),
            Link::Conn(conn, _) => self.streams.push((conn, data.to_vec())),
            Link::Dial(_) => self.dials.push((dest, None, data.to_vec())),
        }
    }

    /// Queues one SIP message to a TLS destination we dial, with how to
    /// verify it (used when the connection has to be made).
    pub fn send_dial(&mut self, dest: Peer, dial: Option<TlsDial>, data: &[u8]) {
        self.dials.push((dest, dial, data.to_vec()));
    }
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
    /// A SIP message: a datagram from the socket or one message framed
    /// from a stream connection (`handed_off`: it came from another shard).
    fn on_datagram(&mut self, now: Now, data: &[u8], src: Peer, handed_off: bool, out: &mut Output);
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
    /// A datagram `buf[..len]` on media port `port` (RTP or RTCP; `buf`
    /// has room to grow). The logic may rewrite it in place; returns the
    /// media port to send it from, where to, and its new length.
    fn on_media(
        &mut self,
        _now: Now,
        _port: u16,
        _src: SocketAddr,
        _buf: &mut [u8],
        _len: usize,
    ) -> Option<(u16, SocketAddr, usize)> {
        None
    }
    /// Before the datagrams of a batch from the SIP socket: whether the
    /// socket was drained or how long what is left has waited (overload
    /// admission).
    fn on_backlog(&mut self, _now: Now, _backlog: super::Backlog) {}
    /// A stream connection of this shard closed (`why`); what was bound to
    /// it goes.
    fn on_stream_closed(
        &mut self,
        _now: Now,
        _peer: Peer,
        _why: super::CloseReason,
        _out: &mut Output,
    ) {
    }
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
    /// Steady RTP streams may be relayed by `fast` (given once, at start,
    /// when the kernel path is on).
    fn use_fast_path(&mut self, _fast: Box<dyn FastPath>) {}
}

/// The running shards.
pub struct Runtime {
    pub inboxes: Arc<Vec<Arc<Inbox>>>,
    pub stats: Vec<Arc<ShardStats>>,
    /// How datagrams reach their owner shard.
    pub steering: Arc<Steering>,
    /// How steady RTP streams are relayed.
    pub rtp_path: Arc<RtpPath>,
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
        let streams = cfg.streams.as_ref();
        // listeners[shard]: that shard's listener of every stream kind.
        let mut listeners: Vec<Vec<(std::net::TcpListener, StreamKind)>> =
            (0..shards).map(|_| Vec::new()).collect();
        for &(addr, kind, key) in streams.map_or(&[][..], |s| &s.listen) {
            for (shard, l) in bind_tcp_reuseport(addr, shards, key)?
                .into_iter()
                .enumerate()
            {
                listeners[shard].push((l, kind));
            }
        }
        let steering = Steering::attach(cfg.steering, &sockets);
        match &steering {
            Steering::Kernel(_) => tracing::info!(
                shards,
                "SIP datagrams are steered to their owner shard by the kernel"
            ),
            Steering::UserSpace(why @ (SteerError::NotBuilt | SteerError::Refused(_))) => {
                tracing::warn!(
                    "SIP datagrams are handed to their owner shard in user space: {why}"
                );
            }
            Steering::UserSpace(_) => {}
        }
        let rtp_path = match &cfg.kernel_rtp {
            Some(k) => RtpPath::start(k),
            None => RtpPath::UserSpace("no media relay".into()),
        };
        match &rtp_path {
            RtpPath::Kernel(k) => tracing::info!(
                interfaces = %k.interfaces.join(","),
                "steady RTP streams are relayed by the kernel"
            ),
            RtpPath::UserSpace(why) if cfg.kernel_rtp.is_some() => {
                tracing::warn!("RTP is relayed in user space only: {why}");
            }
            RtpPath::UserSpace(_) => {}
        }
        let rtp_path = Arc::new(rtp_path);
        let mut inboxes = Vec::with_capacity(shards);
        for _ in 0..shards {
            inboxes.push(Arc::new(Inbox::new()?));
        }
        let inboxes = Arc::new(inboxes);
        let stats: Vec<Arc<ShardStats>> = (0..shards).map(|_| Arc::default()).collect();
        let make_logic = Arc::new(make_logic);
        let mut handles = Vec::with_capacity(shards);
        for (id, sock) in sockets.into_iter().enumerate() {
            // Every shard has a connection table: without listeners it
            // still dials trunks over TCP and TLS.
            let limits = streams.map(|s| s.limits).unwrap_or_default();
            let streams = Streams::new(
                id as u16,
                std::mem::take(&mut listeners[id]),
                streams.and_then(|s| s.tls.clone()),
                streams.map(|s| s.ws_origins.clone()).unwrap_or_default(),
                limits,
            )
            .map_err(|e| {
                io::Error::other(format!("shard {id}: cannot watch its SIP listeners: {e}"))
            })?;
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
            let fast = rtp_path.fast_path();
            let loop_cfg = LoopConfig {
                recv_batch: cfg.recv_batch,
                send_batch: cfg.send_batch,
                tick: cfg.tick,
                poll_interval: cfg.poll_interval,
                spin_before_park: cfg.spin_before_park,
            };
            let handle = LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{id}"))
                .io_memory(cfg.io_memory)
                .ring_depth(cfg.ring_depth)
                .spawn(move || async move {
                    // SAFETY: plain syscall without arguments.
                    let tid = unsafe { libc::gettid() };
                    ShardGauges::set(&ctx.stats.gauges.tid, tid.max(0) as u64);
                    let mut logic = make_logic(ctx.clone());
                    if let Some(fast) = fast {
                        logic.use_fast_path(Box::new(fast));
                    }
                    match Reactor::new(ctx.clone(), loop_cfg, sock, streams, logic) {
                        Ok(reactor) => reactor.run(),
                        Err(e) => {
                            tracing::error!(shard = ctx.id, "shard cannot start its loop: {e}");
                        }
                    }
                })
                .map_err(|e| {
                    io::Error::other(format!("runtime.cpus: cannot start shard {id}: {e}"))
                })?;
            handles.push(handle);
        }
        // Started means running: every shard's thread is up (it publishes
        // its thread id first thing) before the caller reports it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stats.iter().any(|s| ShardGauges::get(&s.gauges.tid) == 0)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Runtime {
            inboxes,
            stats,
            steering: Arc::new(steering),
            rtp_path,
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

/// Binds one SO_REUSEPORT TCP listener per shard on `addr` (the kernel
/// spreads new connections over them). A port another socket holds is an
/// error, as for UDP.
fn bind_tcp_reuseport(
    addr: SocketAddr,
    shards: usize,
    key: &str,
) -> io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let taken =
        |e: io::Error| io::Error::new(e.kind(), format!("{key}: cannot listen on {addr}: {e}"));
    drop(std::net::TcpListener::bind(addr).map_err(taken)?);
    let mut out = Vec::with_capacity(shards);
    for _ in 0..shards {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.set_reuse_port(true)?;
        sock.bind(&addr.into()).map_err(taken)?;
        sock.listen(1024).map_err(taken)?;
        out.push(std::net::TcpListener::from(sock));
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
