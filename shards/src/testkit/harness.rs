//! The driver: the shard logic under test and the scripted UAs on one
//! virtual network and one virtual clock (the idea of quinn-proto's test
//! `Pair`). The logic is reached only through [`ShardLogic`]; datagrams it
//! sends go to the UA whose address they target; what UAs send goes to the
//! logic. Time moves only in [`Harness::run_until`]: to the next datagram
//! arrival, UA timer or logic deadline, whichever comes first.
//!
//! At one instant the order is: datagrams due (in the order they were
//! sent), then UA timers, then the logic's tick.
//!
//! Media as the runtime moves it: after every turn of the logic (and
//! before that turn's datagrams leave) the harness drains
//! `poll_socket_op`, answers each op from its virtual socket table
//! ([`Sockets`]) and hands the answer back (`on_socket_event`). A datagram
//! for the logic's IP on another port than its SIP port goes to `on_media`
//! with that port when a socket there is read (else it is dropped and
//! counted, as the kernel would), and what `on_media` forwards leaves from
//! that port of the logic's IP, with the same latency. RTP is neither
//! faulted nor listed in the ladder (the UAs record it).

use std::net::SocketAddr;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::clock::{Clock, START_MONO_MS};
use super::fault::{Fault, FaultKind, Faults};
use super::media::{MediaCounts, Socket, SocketFault, Sockets};
use super::ua::Ua;
use crate::cdr::Cdr;
use crate::control_link::ControlRequest;
use crate::runtime::{Output, ShardContext, ShardLogic, ShardMsg, ShardStats};

/// The longest the logic waits between ticks (the binary's `[runtime] tick`).
const MAX_TICK_MS: u64 = 1_000;
/// Default one-way delay of the virtual network.
const LATENCY_MS: u64 = 10;
/// Events one `run_until` may handle before the harness calls it a livelock.
const MAX_EVENTS: usize = 1_000_000;

/// A datagram on its way.
#[derive(Debug)]
struct InFlight {
    at_ms: u64,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// One line of the ladder: what was sent, when, and what became of it.
#[derive(Clone, Debug)]
pub(crate) struct WireEvent {
    /// Mono ms it was sent.
    pub(crate) at_ms: u64,
    pub(crate) from: SocketAddr,
    pub(crate) to: SocketAddr,
    pub(crate) first_line: String,
    pub(crate) fault: Option<FaultKind>,
}

/// The logic under test, its UAs and its network.
pub(crate) struct Harness<L: ShardLogic> {
    logic: L,
    /// The address the logic listens on.
    pub(crate) addr: SocketAddr,
    pub(crate) stats: Arc<ShardStats>,
    clock: Clock,
    last_tick_ms: u64,
    /// One-way delay of every datagram.
    pub(crate) latency_ms: u64,
    uas: Vec<Ua>,
    in_flight: Vec<InFlight>,
    seq: u64,
    faults: Faults,
    wire: Vec<WireEvent>,
    control: Receiver<ControlRequest>,
    /// Records and flows the logic sent to the control core.
    pub(crate) cdrs: Vec<Cdr>,
    pub(crate) flows: Vec<(String, Vec<u8>)>,
    /// Other control requests (bindings to store...).
    pub(crate) requests: Vec<ControlRequest>,
    /// Datagrams the logic handed to another shard (none with one shard).
    pub(crate) handoffs: Vec<(usize, Vec<u8>, crate::transport::Peer)>,
    out: Output,
    /// The logic's media sockets.
    pub(crate) sockets: Sockets,
    /// What became of media datagrams for the logic.
    pub(crate) media: MediaCounts,
}

impl<L: ShardLogic> Harness<L> {
    /// Builds the logic as the runtime does (shard 0 of 1, from a
    /// `ShardContext`), listening on `addr`; what it sends to the control
    /// core arrives on `control`.
    pub(crate) fn start(
        addr: SocketAddr,
        control: Receiver<ControlRequest>,
        make_logic: impl FnOnce(ShardContext) -> L,
    ) -> Harness<L> {
        let stats = Arc::new(ShardStats::default());
        let ctx = ShardContext {
            id: 0,
            shards: 1,
            stats: stats.clone(),
            inboxes: Arc::new(Vec::new()),
        };
        let clock = Clock::new();
        Harness {
            logic: make_logic(ctx),
            addr,
            stats,
            last_tick_ms: clock.ms(),
            clock,
            latency_ms: LATENCY_MS,
            uas: Vec::new(),
            in_flight: Vec::new(),
            seq: 0,
            faults: Faults::default(),
            wire: Vec::new(),
            control,
            cdrs: Vec::new(),
            flows: Vec::new(),
            requests: Vec::new(),
            handoffs: Vec::new(),
            out: Output::default(),
            sockets: Sockets::new(addr.ip()),
            media: MediaCounts::default(),
        }
    }

    /// Refuses socket operations of the logic as `fault` says.
    pub(crate) fn socket_fault(&mut self, fault: SocketFault) {
        self.sockets.fault(fault);
    }

    /// Starts `ua`'s RTP (a packet now, then every 20 ms).
    pub(crate) fn start_rtp(&mut self, ua: SocketAddr) {
        let now = self.clock.ms();
        self.ua_mut(ua).start_rtp(now);
    }

    /// Puts any datagram on the network (a host that is not a UA).
    pub(crate) fn inject(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.send_media(from, to, data);
    }

    pub(crate) fn add_ua(&mut self, ua: Ua) {
        let taken = |a: SocketAddr| {
            a.ip() == self.addr.ip() || self.uas.iter().any(|u| [u.addr, u.rtp_addr()].contains(&a))
        };
        assert!(
            !taken(ua.addr) && !taken(ua.rtp_addr()),
            "address {} taken",
            ua.addr
        );
        self.uas.push(ua);
    }

    pub(crate) fn ua(&self, addr: SocketAddr) -> &Ua {
        self.uas
            .iter()
            .find(|u| u.addr == addr)
            .unwrap_or_else(|| panic!("no UA at {addr}"))
    }

    /// The UA at `addr`, to act on; what it sends leaves on the next run.
    pub(crate) fn ua_mut(&mut self, addr: SocketAddr) -> &mut Ua {
        self.uas
            .iter_mut()
            .find(|u| u.addr == addr)
            .unwrap_or_else(|| panic!("no UA at {addr}"))
    }

    pub(crate) fn fault(&mut self, fault: Fault) {
        self.faults.add(fault);
    }

    /// Virtual monotonic ms now (what the logic's `Now::mono_ms` says).
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.ms()
    }

    /// When the logic wants `handle_timeout` next (mono ms): its
    /// `poll_timeout`, at most the runtime's longest sleep after the last.
    fn logic_deadline(&self) -> Option<u64> {
        let longest = self.last_tick_ms + MAX_TICK_MS;
        Some(
            self.logic
                .poll_timeout()
                .map_or(longest, |at| at.min(longest)),
        )
    }

    /// Runs for `ms` of virtual time.
    pub(crate) fn run_for(&mut self, ms: u64) {
        self.run_until(self.clock.ms() + ms);
    }

    /// Handles every event due up to `until_ms` (mono), then stops there.
    pub(crate) fn run_until(&mut self, until_ms: u64) {
        for _ in 0..MAX_EVENTS {
            self.collect_outboxes();
            let next = [
                self.next_arrival(),
                self.next_ua_timer(),
                self.logic_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at <= until_ms => self.step(at),
                _ => {
                    self.clock.set(until_ms.max(self.clock.ms()));
                    return;
                }
            }
        }
        panic!(
            "no quiet moment after {MAX_EVENTS} events:\n{}",
            self.ladder()
        );
    }

    /// Runs until nothing is in flight and no UA timer is pending (the
    /// logic's own timers may still run later).
    pub(crate) fn settle(&mut self) {
        loop {
            self.collect_outboxes();
            let Some(at) = [self.next_arrival(), self.next_ua_timer()]
                .into_iter()
                .flatten()
                .min()
            else {
                return;
            };
            self.run_until(at);
        }
    }

    /// A message from the control core (a REST command, a reload...), at
    /// the current virtual time.
    pub(crate) fn message(&mut self, msg: ShardMsg) {
        let now = self.clock.now();
        self.logic.on_message(now, msg, &mut self.out);
        self.route_output();
    }

    /// Stops the logic as the runtime does at shutdown (`on_stop`), and
    /// delivers what it sent.
    pub(crate) fn stop(&mut self) {
        let now = self.clock.now();
        self.logic.on_stop(now, &mut self.out);
        self.route_output();
        self.settle();
    }

    /// Handles everything due at `at`.
    fn step(&mut self, at: u64) {
        self.clock.set(at);
        let now = self.clock.now();
        while let Some(d) = self.pop_due(at) {
            if d.to == self.addr {
                self.logic
                    .on_datagram(now, &d.data, d.from.into(), false, &mut self.out);
                self.route_output();
            } else if d.to.ip() == self.addr.ip() {
                self.deliver_media(d.to.port(), d.from, &d.data);
            } else if let Some(ua) = self.uas.iter_mut().find(|u| u.addr == d.to) {
                ua.on_datagram(at, d.from, &d.data);
            } else if let Some(ua) = self.uas.iter_mut().find(|u| u.rtp_addr() == d.to) {
                ua.on_media(at, d.from, &d.data);
            }
            self.collect_outboxes();
        }
        for ua in &mut self.uas {
            if ua.poll_timeout().is_some_and(|t| t <= at) {
                ua.handle_timeout(at);
            }
        }
        if self.logic_deadline().is_some_and(|t| t <= at) {
            self.last_tick_ms = at;
            self.logic.handle_timeout(now, &mut self.out);
            self.route_output();
        }
    }

    fn next_arrival(&self) -> Option<u64> {
        self.in_flight.iter().map(|d| d.at_ms).min()
    }

    fn next_ua_timer(&self) -> Option<u64> {
        self.uas.iter().filter_map(Ua::poll_timeout).min()
    }

    /// The earliest datagram due by `at` (first sent first).
    fn pop_due(&mut self, at: u64) -> Option<InFlight> {
        let i = self
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, d)| d.at_ms <= at)
            .min_by_key(|(_, d)| (d.at_ms, d.seq))
            .map(|(i, _)| i)?;
        Some(self.in_flight.swap_remove(i))
    }

    fn collect_outboxes(&mut self) {
        let mut sends = Vec::new();
        let mut media = Vec::new();
        for ua in &mut self.uas {
            let from = ua.addr;
            sends.extend(ua.take_outbox().into_iter().map(|(to, d)| (from, to, d)));
            media.extend(ua.take_media_outbox());
        }
        for (from, to, data) in sends {
            self.send(from, to, data);
        }
        for (from, to, data) in media {
            self.send_media(from, to, data);
        }
    }

    /// A datagram for the logic's media port `port`: relayed as the
    /// runtime's media poller does (counted in the shard's RTP stats).
    fn deliver_media(&mut self, port: u16, src: SocketAddr, data: &[u8]) {
        match self.sockets.get(port) {
            None => {
                self.media.unreachable += 1;
                return;
            }
            Some(Socket::Held) => {
                self.media.unread += 1;
                return;
            }
            Some(Socket::Reading) => {}
        }
        self.media.received += 1;
        ShardStats::add(&self.stats.rtp_rx, 1);
        let now = self.clock.now();
        // Room for what the relay may add (an SRTP tag), as the runtime's
        // buffers have.
        let len = data.len();
        let mut buf = data.to_vec();
        buf.resize(len + 64, 0);
        let way = self.logic.on_media(now, port, src, &mut buf, len);
        match way {
            Some((out_port, dest, len)) if self.sockets.get(out_port).is_some() => {
                self.media.relayed += 1;
                ShardStats::add(&self.stats.rtp_tx, 1);
                let from = SocketAddr::new(self.addr.ip(), out_port);
                buf.truncate(len);
                self.send_media(from, dest, buf);
            }
            Some(_) => {
                self.media.no_socket += 1;
                ShardStats::add(&self.stats.rtp_dropped, 1);
            }
            None => ShardStats::add(&self.stats.rtp_dropped, 1),
        }
        self.route_output();
    }

    /// Answers the socket work the logic asks for after a turn, as the
    /// runtime's `apply_media_changes` does.
    fn apply_socket_ops(&mut self) {
        let now = self.clock.now();
        while let Some(op) = self.logic.poll_socket_op(now, &mut self.out) {
            let answer = self.sockets.apply(op);
            self.logic.on_socket_event(answer);
        }
    }

    /// Puts a media datagram on the network: no faults, not in the ladder.
    fn send_media(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(InFlight {
            at_ms: self.clock.ms() + self.latency_ms,
            seq: self.seq,
            from,
            to,
            data,
        });
    }

    /// Moves what the logic produced onto the network and the control
    /// core's requests into the harness.
    fn route_output(&mut self) {
        self.apply_socket_ops();
        let sends: Vec<(SocketAddr, Vec<u8>)> = (0..self.out.sends.len())
            .map(|i| {
                let (to, data) = self.out.sends.item(i);
                (to, data.to_vec())
            })
            .collect();
        self.out.sends.clear();
        for (to, data) in sends {
            self.send(self.addr, to, data);
        }
        self.handoffs.append(&mut self.out.handoffs);
        while let Ok(req) = self.control.try_recv() {
            match req {
                ControlRequest::StoreCdr(cdr) => self.cdrs.push(*cdr),
                ControlRequest::StoreFlow(call_id, json) => self.flows.push((call_id, json)),
                other => self.requests.push(other),
            }
        }
    }

    /// Puts a datagram on the network, faults applied.
    fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let fault = self.faults.apply(from, to, &data);
        let first_line = String::from_utf8_lossy(&data)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        self.wire.push(WireEvent {
            at_ms: self.clock.ms(),
            from,
            to,
            first_line,
            fault,
        });
        let at_ms = self.clock.ms() + self.latency_ms;
        let copies = match fault {
            Some(FaultKind::Drop) => return,
            Some(FaultKind::Duplicate) => 2,
            _ => 1,
        };
        let at_ms = match fault {
            Some(FaultKind::Delay(ms)) => at_ms + ms,
            _ => at_ms,
        };
        for _ in 0..copies {
            self.seq += 1;
            self.in_flight.push(InFlight {
                at_ms,
                seq: self.seq,
                from,
                to,
                data: data.clone(),
            });
        }
    }

    /// Everything sent so far.
    pub(crate) fn wire(&self) -> &[WireEvent] {
        &self.wire
    }

    fn name_of(&self, addr: SocketAddr) -> String {
        if addr == self.addr {
            return "proxy".into();
        }
        self.uas
            .iter()
            .find(|u| u.addr == addr)
            .map_or_else(|| addr.to_string(), |u| u.name.to_string())
    }

    /// The message ladder so far, one line per datagram (for failures).
    pub(crate) fn ladder(&self) -> String {
        self.wire
            .iter()
            .map(|w| {
                let fate = match w.fault {
                    None => "",
                    Some(FaultKind::Drop) => "  [dropped]",
                    Some(FaultKind::Duplicate) => "  [duplicated]",
                    Some(FaultKind::Delay(_)) => "  [delayed]",
                };
                format!(
                    "{:>8} ms  {:>7} -> {:<7} {}{fate}\n",
                    w.at_ms - START_MONO_MS,
                    self.name_of(w.from),
                    self.name_of(w.to),
                    w.first_line
                )
            })
            .collect()
    }
}
