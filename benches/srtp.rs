//! SRTP cost per packet (`shards::media::srtp`) for a 172-byte RTP packet
//! (12-byte header, 160 bytes of PCMU, 20 ms): protect, unprotect, and
//! "relay" (unprotect with one context, protect with another: what the
//! relay does to every packet between two SRTP legs), for every suite;
//! plus a plain 172-byte copy as the baseline. Packets to unprotect are
//! made (untimed) by a sender context with increasing sequence numbers, as
//! the replay window accepts each index once.
//!
//! The same through the relay itself (`MediaRelay::on_datagram`: checks,
//! statistics, renumbering and the crypto of each side), printed as
//! best-of-15: plain to plain, SRTP to plain, SRTP to SRTP.
//!
//! cargo bench --bench srtp

use std::hint::black_box;

use criterion::measurement::{Measurement, WallTime};
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use shards::media::relay::{
    MediaInput, MediaOutput, MediaRelay, RelayConfig, SdpOrigin, Side, Signalled, SocketOp,
};
use shards::media::srtp::{Context, MasterKey, Suite};
use shards::time::Now;

/// Room for the packet and any suite's trailer.
const BUF: usize = 256;
const RTP_LEN: usize = 172;

/// A packet in a fixed buffer, as the relay holds one.
#[derive(Clone)]
struct Packet {
    buf: [u8; BUF],
    len: usize,
}

fn rtp(seq: u16) -> Packet {
    let mut buf = [0u8; BUF];
    buf[0] = 0x80;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    buf[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    for (i, b) in buf[12..RTP_LEN].iter_mut().enumerate() {
        *b = 0xd5 ^ i as u8;
    }
    Packet { buf, len: RTP_LEN }
}

fn context(suite: Suite, fill: u8) -> Context {
    let mut n = fill;
    Context::new(&MasterKey::random(suite, &mut |b: &mut [u8]| {
        for x in b {
            n = n.wrapping_mul(13).wrapping_add(1);
            *x = n;
        }
    }))
}

/// A sender of SRTP packets with increasing sequence numbers.
struct Source {
    tx: Context,
    seq: u16,
}

impl Source {
    fn new(suite: Suite) -> Source {
        Source {
            tx: context(suite, 1),
            seq: 0,
        }
    }

    fn next(&mut self) -> Packet {
        self.seq = self.seq.wrapping_add(1);
        let mut p = rtp(self.seq);
        p.len = self.tx.protect_rtp(&mut p.buf, p.len).unwrap();
        p
    }
}

#[path = "cpu_time.rs"]
mod cpu_time;
use cpu_time::{thread_cpu_ns, CpuTime};

fn suite_label(suite: Suite) -> &'static str {
    match suite {
        Suite::AesCm128HmacSha1_80 => "aes_cm_sha1_80",
        Suite::AeadAes128Gcm => "aead_aes_128_gcm",
        Suite::AeadAes256Gcm => "aead_aes_256_gcm",
    }
}

fn bench<M: Measurement>(c: &mut Criterion<M>, label: &str) {
    let mut g = c.benchmark_group(label);
    g.throughput(Throughput::Elements(1));
    let plain = rtp(1);
    g.bench_function("memcpy_172", |b| {
        let mut dst = [0u8; BUF];
        b.iter(|| {
            dst[..RTP_LEN].copy_from_slice(black_box(&plain.buf[..RTP_LEN]));
            black_box(&dst);
        });
    });
    for suite in Suite::EVERY {
        let name = suite_label(suite);
        let mut tx = context(suite, 1);
        g.bench_function(format!("protect_{name}"), |b| {
            b.iter_batched_ref(
                || plain.clone(),
                |p| tx.protect_rtp(&mut p.buf, black_box(p.len)),
                BatchSize::SmallInput,
            );
        });
        let mut src = Source::new(suite);
        let mut rx = context(suite, 1);
        g.bench_function(format!("unprotect_{name}"), |b| {
            b.iter_batched_ref(
                || src.next(),
                |p| rx.unprotect_rtp(&mut p.buf, black_box(p.len)).unwrap(),
                BatchSize::SmallInput,
            );
        });
        let mut src = Source::new(suite);
        let (mut a_rx, mut b_tx) = (context(suite, 1), context(suite, 2));
        g.bench_function(format!("relay_{name}"), |b| {
            b.iter_batched_ref(
                || src.next(),
                |p| {
                    let n = a_rx.unprotect_rtp(&mut p.buf, black_box(p.len)).unwrap();
                    b_tx.protect_rtp(&mut p.buf, n).unwrap()
                },
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

fn wall(c: &mut Criterion) {
    bench(c, "srtp_wall");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    bench(c, "srtp_cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(CpuTime(WallTime));
    targets = cpu
}

/// Packets per timed batch of [`best_of`].
const BATCH: usize = 4096;

/// Best-of-15 on-CPU time per packet over batches of [`BATCH`] packets
/// made beforehand (untimed) by `make`: the cost without interference from
/// whatever else the machine runs, printed before criterion's statistics.
fn best_of(name: &str, mut make: impl FnMut() -> Packet, mut f: impl FnMut(&mut Packet) -> usize) {
    let mut best = u64::MAX;
    let mut sink = 0;
    let mut batch: Vec<Packet> = Vec::with_capacity(BATCH);
    for _ in 0..15 {
        batch.clear();
        batch.extend((0..BATCH).map(|_| make()));
        let t = thread_cpu_ns();
        for p in &mut batch {
            sink += f(p);
        }
        best = best.min(thread_cpu_ns().saturating_sub(t));
    }
    black_box(sink);
    println!(
        "best-of-15 cpu time  {name:<28} {:>8.1} ns/packet",
        best as f64 / BATCH as f64
    );
}

fn main() {
    let mut dst = [0u8; BUF];
    best_of(
        "memcpy_172",
        || rtp(1),
        |p| {
            dst[..RTP_LEN].copy_from_slice(black_box(&p.buf[..RTP_LEN]));
            black_box(&dst)[0] as usize
        },
    );
    for suite in Suite::EVERY {
        let name = suite_label(suite);
        let mut tx = context(suite, 1);
        best_of(
            &format!("protect_{name}"),
            || rtp(1),
            |p| tx.protect_rtp(&mut p.buf, black_box(p.len)).unwrap(),
        );
        let mut src = Source::new(suite);
        let mut rx = context(suite, 1);
        best_of(
            &format!("unprotect_{name}"),
            || src.next(),
            |p| rx.unprotect_rtp(&mut p.buf, black_box(p.len)).unwrap(),
        );
        let mut src = Source::new(suite);
        let (mut a_rx, mut b_tx) = (context(suite, 1), context(suite, 2));
        best_of(
            &format!("relay_{name}"),
            || src.next(),
            |p| {
                let n = a_rx.unprotect_rtp(&mut p.buf, black_box(p.len)).unwrap();
                b_tx.protect_rtp(&mut p.buf, n).unwrap()
            },
        );
    }
    for (name, a, b) in [
        ("relay_plain_to_plain", None, None),
        ("relay_gcm_to_plain", Some(Suite::AeadAes128Gcm), None),
        ("relay_cm_to_plain", Some(Suite::AesCm128HmacSha1_80), None),
        (
            "relay_gcm_to_gcm",
            Some(Suite::AeadAes128Gcm),
            Some(Suite::AeadAes128Gcm),
        ),
        (
            "relay_cm_to_cm",
            Some(Suite::AesCm128HmacSha1_80),
            Some(Suite::AesCm128HmacSha1_80),
        ),
    ] {
        through_relay(name, a, b);
    }
    wall_time();
    cpu_time();
    Criterion::default().configure_from_args().final_summary();
}

/// A relay with one answered call between 127.0.0.1:7000 (caller, SRTP
/// with `a` when set) and 127.0.0.1:8000 (callee, SRTP with `b`): the
/// caller's packets through `on_datagram`, best-of-15 per packet.
fn through_relay(name: &str, a: Option<Suite>, b: Option<Suite>) {
    let cfg = RelayConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        advertise: "127.0.0.1".parse().unwrap(),
        port_start: 30000,
        port_end: 30100,
        rtp_timeout_ms: 0,
        recordings_dir: "/nonexistent".into(),
        recordings_cdr_dir: "recordings".into(),
        recording: false,
    };
    let mut relay = MediaRelay::new(cfg, 0, 1, [7; 32]);
    let (port_a, _) = relay.create(1, "bench@test", false).unwrap();
    while let Some(out) = relay.poll_output() {
        if let MediaOutput::Socket(op) = out {
            let port = match op {
                SocketOp::Bind { port, .. }
                | SocketOp::Reserve { port, .. }
                | SocketOp::Read { port } => port,
                SocketOp::Close { port } | SocketOp::Send { port, .. } => port,
            };
            relay.handle(MediaInput::Bound { port });
        }
    }
    let origin = SdpOrigin::Setup("127.0.0.1".parse().unwrap());
    for (side, at) in [(Side::Caller, 7000), (Side::Callee, 8000)] {
        let rtp = format!("127.0.0.1:{at}").parse().unwrap();
        let sig = Signalled {
            rtp: Some(rtp),
            rtcp: None,
            rtcp_mux: true,
            hold: false,
            codecs: vec![(0, "PCMU".into(), 8000)],
        };
        relay.signalled(1, side, sig, origin);
    }
    let key = |suite: Suite, fill: u8| MasterKey::random(suite, &mut |x: &mut [u8]| x.fill(fill));
    let mut caller = a.map(|suite| {
        relay.set_srtp(1, Side::Caller, Some((1, key(suite, 3), true)), None);
        Context::new(&key(suite, 3))
    });
    if let Some(suite) = b {
        relay.set_srtp(1, Side::Callee, Some((1, key(suite, 4), true)), None);
    }
    let src = "127.0.0.1:7000".parse().unwrap();
    let mut seq = 0u16;
    let mut ms = 0u64;
    best_of(
        name,
        || {
            seq = seq.wrapping_add(1);
            let mut p = rtp(seq);
            if let Some(c) = caller.as_mut() {
                p.len = c.protect_rtp(&mut p.buf, p.len).unwrap();
            }
            p
        },
        |p| {
            ms += 20;
            let now = Now {
                unix: ms / 1000,
                mono_ms: ms,
                unix_ms: ms,
            };
            relay
                .on_datagram(now, port_a, src, &mut p.buf, p.len)
                .map_or(0, |f| f.len)
        },
    );
}
