//! The relay with a fast path (a map that forwards by the kernel program's
//! rules, in virtual time): what is handed over and when, what is taken
//! back and when, and that a stream relayed partly by the fast path is
//! relayed and counted exactly as by the relay alone.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::super::fastpath::{Handover, Progress};
use super::super::stats::to_clock;
use super::tests::{addr, local, packet, relay, run_sockets, session, sig, t};
use super::*;

/// A forwarder that follows `rtp_fwd.bpf.c`'s rules.
#[derive(Clone, Default)]
struct FakeKernel(Rc<RefCell<Streams>>);

#[derive(Default)]
struct Streams {
    /// The stream, its progress, its last transit time (A.8).
    by_port: HashMap<u16, (Handover, Progress, u32)>,
    refuse: bool,
    /// Handovers asked for.
    offers: u32,
}

impl FastPath for FakeKernel {
    fn hand_over(&mut self, port: u16, h: &Handover) -> bool {
        let mut k = self.0.borrow_mut();
        k.offers += 1;
        if k.refuse {
            return false;
        }
        let p = Progress::at_handover(h);
        let transit = to_clock(h.last_ms, h.clock_rate).wrapping_sub(h.last_ts);
        k.by_port.insert(port, (*h, p, transit));
        true
    }

    fn progress(&mut self, port: u16) -> Option<Progress> {
        self.0.borrow().by_port.get(&port).map(|(_, p, _)| *p)
    }

    fn take(&mut self, port: u16) -> Option<Progress> {
        self.0.borrow_mut().by_port.remove(&port).map(|(_, p, _)| p)
    }
}

impl FakeKernel {
    fn handed(&self, port: u16) -> Option<Handover> {
        self.0.borrow().by_port.get(&port).map(|(h, _, _)| *h)
    }

    /// The program's turn on a datagram to our `port`: relayed (rewritten)
    /// when it is the next packet of a handed-over stream.
    fn relay(&self, ms: u64, port: u16, src: SocketAddr, pkt: &mut [u8]) -> Option<Forward> {
        let mut k = self.0.borrow_mut();
        let (h, p, last_transit) = k.by_port.get_mut(&port)?;
        let hdr = rtp::parse_rtp(pkt)?;
        let ts_step = hdr.timestamp.wrapping_sub(p.last_ts) as i32;
        let steady = src == SocketAddr::V4(h.from)
            && pkt[1] == h.payload_type
            && hdr.ssrc == h.ssrc
            && hdr.seq == p.last_seq.wrapping_add(1)
            && ts_step >= 0
            && ts_step as u32 <= h.clock_rate;
        if !steady {
            return None;
        }
        let transit = to_clock(ms, h.clock_rate).wrapping_sub(hdr.timestamp);
        let d = f64::from((transit.wrapping_sub(*last_transit) as i32).unsigned_abs());
        p.jitter += (d - p.jitter) / 16.0;
        *last_transit = transit;
        p.packets += 1;
        p.bytes += pkt.len() as u64;
        (p.last_seq, p.last_ts, p.last_ms) = (hdr.seq, hdr.timestamp, ms);
        if h.seq_offset != 0 {
            rtp::set_seq(pkt, hdr.seq.wrapping_sub(h.seq_offset));
        }
        Some(Forward {
            out_port: h.out_port,
            dest: SocketAddr::V4(h.to),
            len: pkt.len(),
        })
    }
}

fn rtp(seq: u16, ts: u32, ssrc: u32, marker: bool) -> Vec<u8> {
    let mut p = packet(seq, ts);
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    if marker {
        p[1] |= 0x80;
    }
    p
}

/// One run of the caller's stream: (seq, ts, ssrc, marker) per packet.
type Pkt = (u16, u32, u32, bool);

/// A relay with one session, with or without the fake kernel.
struct Rig {
    r: MediaRelay,
    kernel: Option<FakeKernel>,
    a: u16,
    b: u16,
    ms: u64,
    next_tick: u64,
    /// What reached the callee: (seq, ts, ssrc, marker, by the kernel).
    out: Vec<(Pkt, bool)>,
}

const CALLER: &str = "127.0.0.1:7000";

impl Rig {
    fn new(with_kernel: bool) -> Rig {
        let mut r = relay(62000);
        let kernel = with_kernel.then(FakeKernel::default);
        if let Some(k) = &kernel {
            r.set_fast_path(Box::new(k.clone()));
        }
        let (a, b) = session(&mut r, 1);
        run_sockets(&mut r);
        Rig {
            r,
            kernel,
            a,
            b,
            ms: 0,
            next_tick: 100,
            out: Vec::new(),
        }
    }

    /// Sends `pkts` from the caller 20 ms apart, ticking every 100 ms.
    fn send(&mut self, pkts: &[Pkt]) {
        for &(seq, ts, ssrc, marker) in pkts {
            self.ms += 20;
            while self.next_tick <= self.ms {
                self.r.on_tick(self.next_tick);
                self.next_tick += 100;
            }
            let mut p = rtp(seq, ts, ssrc, marker);
            let src = addr(CALLER);
            let by_kernel = self
                .kernel
                .as_ref()
                .and_then(|k| k.relay(self.ms, self.a, src, &mut p));
            let (fwd, kernel) = match by_kernel {
                Some(f) => (Some(f), true),
                None => (self.r.on_packet(t(self.ms), self.a, src, &mut p), false),
            };
            if let Some(f) = fwd {
                assert_eq!(
                    f,
                    Forward {
                        out_port: self.b,
                        dest: addr("127.0.0.1:8000"),
                        len: p.len(),
                    }
                );
                let h = rtp::parse_rtp(&p).unwrap();
                self.out
                    .push(((h.seq, h.timestamp, h.ssrc, h.marker), kernel));
            }
        }
    }

    fn by_kernel(&self) -> usize {
        self.out.iter().filter(|(_, k)| *k).count()
    }

    fn seen(&self) -> Vec<Pkt> {
        self.out.iter().map(|(p, _)| *p).collect()
    }
}

fn run_of(seq: u16, ts: u32, ssrc: u32, marker: bool, n: u16) -> Vec<Pkt> {
    (0..n)
        .map(|i| {
            (
                seq.wrapping_add(i),
                ts.wrapping_add(160 * u32::from(i)),
                ssrc,
                marker && i == 0,
            )
        })
        .collect()
}

#[test]
fn a_steady_stream_is_handed_over_on_the_tick_and_counted_on_the_next() {
    let mut rig = Rig::new(true);
    let k = rig.kernel.clone().unwrap();
    rig.send(&run_of(1, 0, 1, true, 4)); // 20..80 ms: latched at the 3rd
    assert!(k.handed(rig.a).is_none(), "no tick yet");
    rig.send(&run_of(5, 4 * 160, 1, false, 1)); // 100 ms: the tick hands over
    let h = k.handed(rig.a).expect("handed over on the tick");
    assert_eq!(
        (
            h.from,
            h.to,
            h.out_port,
            h.ssrc,
            h.payload_type,
            h.clock_rate,
            h.seq_offset
        ),
        (
            "127.0.0.1:7000".parse().unwrap(),
            "127.0.0.1:8000".parse().unwrap(),
            rig.b,
            1,
            0,
            8000,
            0
        )
    );
    assert_eq!((h.last_seq, h.last_ts), (4, 3 * 160));
    // The packet of the tick's own turn came after the handover: the kernel's.
    assert_eq!(rig.by_kernel(), 1);
    rig.send(&run_of(6, 5 * 160, 1, false, 20));
    assert_eq!(rig.by_kernel(), 21);
    assert_eq!(
        rig.r.counters.fast_forwarded, 20,
        "read on the ticks so far"
    );
    let report = rig.r.close(1, rig.ms).unwrap();
    assert_eq!(rig.r.counters.fast_forwarded, 21, "and the rest on close");
    assert_eq!(rig.r.counters.forwarded, 25);
    let rtp = &report.stats[0]["rtp"];
    assert_eq!(
        (rtp["packets"].as_u64(), rtp["seqBreaks"].as_u64()),
        (Some(25), Some(0))
    );
    assert!(k.handed(rig.a).is_none(), "taken back on close");
}

#[test]
fn a_stream_partly_relayed_by_the_kernel_is_relayed_and_counted_as_by_the_relay_alone() {
    let mut stream = run_of(65_300, 1_000, 0xaaaa, true, 40);
    stream.extend(run_of(65_343, 1_000 + 43 * 160, 0xaaaa, false, 40)); // 3 lost
    stream.extend(run_of(65_383, 1_000 + 300 * 160, 0xaaaa, true, 40)); // talkspurt
    stream.extend(run_of(7, 555_000, 0xbbbb, false, 40)); // new source
    stream.extend(run_of(65_520, 600_000, 0xcccc, false, 40)); // wraps
                                                               // A late duplicate and a reordered pair.
    stream.extend([(23, 600_000 + 39 * 160, 0xcccc, false)]);
    stream.extend(run_of(25, 600_000 + 41 * 160, 0xcccc, false, 1));
    stream.extend(run_of(24, 600_000 + 40 * 160, 0xcccc, false, 1));
    stream.extend(run_of(26, 600_000 + 42 * 160, 0xcccc, false, 30));
    let mut alone = Rig::new(false);
    let mut with = Rig::new(true);
    alone.send(&stream);
    with.send(&stream);
    assert!(
        with.by_kernel() > stream.len() / 2,
        "{} by the kernel",
        with.by_kernel()
    );
    assert_eq!(with.seen(), alone.seen());
    let report_alone = alone.r.close(1, alone.ms).unwrap();
    let report_with = with.r.close(1, with.ms).unwrap();
    assert_eq!(report_with.stats, report_alone.stats);
    assert_eq!(report_alone.stats[0]["rtp"]["lost"], 3);
    assert_eq!(with.r.counters.forwarded, alone.r.counters.forwarded);
    assert_eq!(with.r.counters.fast_forwarded as usize, with.by_kernel());
}

#[test]
fn mute_takes_the_stream_back_and_the_renumbered_stream_is_handed_over_with_its_offset() {
    let mut rig = Rig::new(true);
    let k = rig.kernel.clone().unwrap();
    rig.send(&run_of(100, 0, 1, true, 20));
    assert!(k.handed(rig.a).is_some());
    assert!(rig.r.set_muted(1, Side::Caller, true));
    assert!(k.handed(rig.a).is_none(), "taken back at once");
    let before = rig.out.len();
    rig.send(&run_of(120, 20 * 160, 1, false, 10));
    assert_eq!(rig.out.len(), before, "nothing relayed while muted");
    assert!(
        k.handed(rig.a).is_none(),
        "a muted stream is not handed over"
    );
    rig.r.set_muted(1, Side::Caller, false);
    rig.send(&run_of(130, 30 * 160, 1, false, 20));
    let h = k.handed(rig.a).expect("handed over again");
    assert_eq!(h.seq_offset, 10);
    let after: Vec<Pkt> = rig.seen()[before..].to_vec();
    assert_eq!(after[0], (120, 30 * 160, 1, true), "renumbered, marked");
    for w in after.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1));
    }
    assert!(rig.out[before..].iter().filter(|(_, k)| *k).count() >= 10);
}

#[test]
fn foreign_packets_do_not_take_a_stream_back_and_recorded_or_refused_ones_stay() {
    let mut rig = Rig::new(true);
    let k = rig.kernel.clone().unwrap();
    rig.send(&run_of(1, 0, 1, true, 10));
    assert!(k.handed(rig.a).is_some());
    // Same IP, other port: dropped, the stream stays with the kernel.
    let mut p = rtp(11, 10 * 160, 1, false);
    assert_eq!(
        rig.r
            .on_packet(t(rig.ms), rig.a, addr("127.0.0.1:7777"), &mut p),
        None
    );
    assert!(k.handed(rig.a).is_some());
    assert_eq!(rig.r.counters.unlatched_source, 1);
    // RTCP muxed on the RTP port from the peer: relayed, stream stays.
    let mut rtcp = vec![0x80, 200, 0, 6, 0, 0, 0, 1];
    rtcp.extend_from_slice(&[0; 20]);
    let _ = rig.r.on_packet(t(rig.ms), rig.a, addr(CALLER), &mut rtcp);
    assert!(k.handed(rig.a).is_some());

    // A recorded call is never handed over.
    let mut r = relay(62100);
    let kern = FakeKernel::default();
    r.set_fast_path(Box::new(kern.clone()));
    r.cfg.recording = true;
    let (a, _) = r.create(2, "rec@test", true).unwrap();
    r.signalled(2, Side::Caller, sig(CALLER, false), local());
    r.signalled(2, Side::Callee, sig("127.0.0.1:8000", false), local());
    for i in 0..10u16 {
        let _ = r.on_packet(
            t(20 * u64::from(i)),
            a,
            addr(CALLER),
            &mut rtp(i, 160 * u32::from(i), 1, false),
        );
    }
    r.on_tick(300);
    assert!(kern.handed(a).is_none(), "recorded");

    // A forwarder that refuses leaves the stream to the relay, and is not
    // asked again on every tick: 6 s of stream, one offer every 5 s.
    let mut rig = Rig::new(true);
    rig.kernel.as_ref().unwrap().0.borrow_mut().refuse = true;
    rig.send(&run_of(1, 0, 1, true, 300));
    assert_eq!((rig.out.len(), rig.by_kernel()), (300, 0));
    assert_eq!(rig.kernel.as_ref().unwrap().0.borrow().offers, 2);
}
