//! Transcoding cost per packet (`shards::media::transcode`), 20 ms frames:
//! PCMU -> Opus (decode the table, libopus encode at 8 kHz, 24 kbit/s),
//! Opus -> PCMU (libopus decode at 8 kHz, µ-law encode) for Opus made by the
//! transcoder itself (narrowband SILK) and by a 48 kHz fullband encoder as a
//! browser sends it, and PCMU -> PCMA (one table lookup a byte); plus the
//! plain copy of a 172-byte packet as the baseline. The signal is a few
//! tones and noise, 5 s of it replayed in a loop; each packet is copied into
//! a fresh buffer (untimed) before it is transcoded in place.
//!
//! A call with one transcoded leg costs one packet each way 50 times a
//! second: (pcmu_to_opus + opus_to_pcmu) * 50 ns of CPU per second.
//!
//! Printed first as best-of-15 on-CPU time per packet, then criterion's
//! statistics (wall and on-CPU).
//!
//! cargo bench --bench transcode

use std::hint::black_box;

use criterion::measurement::{Measurement, WallTime};
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use shards::media::transcode::Transcoder;
use shards::recording::Codec;

#[path = "cpu_time.rs"]
mod cpu_time;
use cpu_time::{thread_cpu_ns, CpuTime};

const BUF: usize = 1500;
/// Frames in the signal replayed: 5 s of 20 ms.
const FRAMES: usize = 250;

const PCMU: (Codec, u8, u32) = (Codec::Pcmu, 0, 8000);
const PCMA: (Codec, u8, u32) = (Codec::Pcma, 8, 8000);
const OPUS: (Codec, u8, u32) = (Codec::Opus, 111, 48000);

/// A packet in a fixed buffer, as the relay holds one.
#[derive(Clone)]
struct Packet {
    buf: [u8; BUF],
    len: usize,
}

fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Packet {
    let mut buf = [0u8; BUF];
    buf[0] = 0x80;
    buf[1] = pt;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    buf[12..12 + payload.len()].copy_from_slice(payload);
    Packet {
        buf,
        len: 12 + payload.len(),
    }
}

/// `n` samples at `rate` Hz: 300, 1000 and 2500 Hz tones and some noise,
/// about -14 dBFS.
fn signal(rate: f64, n: usize) -> Vec<i16> {
    let mut noise = 0x2545_f491u32;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let tone = |hz: f64, amp: f64| amp * (2.0 * std::f64::consts::PI * hz * t).sin();
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let hiss = f64::from(noise >> 20) - 2048.0;
            (tone(300.0, 3000.0) + tone(1000.0, 2500.0) + tone(2500.0, 1500.0) + hiss) as i16
        })
        .collect()
}

/// ITU-T G.711 µ-law of one sample (bench side).
fn ulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    s = s.abs().min(32635) + 0x84;
    let mut exp = 7;
    while exp > 0 && s & (0x80 << exp) == 0 {
        exp -= 1;
    }
    !(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0f)) as u8
}

/// The packets each benchmark replays.
struct Streams {
    pcmu: Vec<Packet>,
    /// Made from `pcmu` by the transcoder (8 kHz encoder).
    opus: Vec<Packet>,
    /// A 48 kHz fullband VoIP encoder at 32 kbit/s.
    opus48: Vec<Packet>,
}

fn streams() -> Streams {
    let pcm = signal(8000.0, FRAMES * 160);
    let pcmu: Vec<Packet> = pcm
        .chunks(160)
        .enumerate()
        .map(|(i, f)| {
            let law: Vec<u8> = f.iter().map(|&s| ulaw(s)).collect();
            packet(0, i as u16, i as u32 * 160, &law)
        })
        .collect();
    let mut up = Transcoder::new(PCMU, OPUS).unwrap();
    let opus = pcmu
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.len = up.transcode(&mut p.buf, p.len).unwrap();
            p
        })
        .collect();
    let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
    let opus48 = signal(48000.0, FRAMES * 960)
        .chunks(960)
        .enumerate()
        .map(|(i, f)| {
            packet(
                111,
                i as u16,
                i as u32 * 960,
                &enc.encode_vec(f, 1275).unwrap(),
            )
        })
        .collect();
    Streams { pcmu, opus, opus48 }
}

/// Cycles through `packets`, a copy at a time.
fn cycle(packets: &[Packet]) -> impl FnMut() -> Packet + '_ {
    let mut i = 0;
    move || {
        i = (i + 1) % packets.len();
        packets[i].clone()
    }
}

/// The cases: name, packets in, transcoder.
fn cases(s: &Streams) -> Vec<(&'static str, &[Packet], Transcoder)> {
    vec![
        (
            "pcmu_to_opus",
            &s.pcmu[..],
            Transcoder::new(PCMU, OPUS).unwrap(),
        ),
        (
            "opus_to_pcmu",
            &s.opus[..],
            Transcoder::new(OPUS, PCMU).unwrap(),
        ),
        (
            "opus48k_to_pcmu",
            &s.opus48[..],
            Transcoder::new(OPUS, PCMU).unwrap(),
        ),
        (
            "pcmu_to_pcma",
            &s.pcmu[..],
            Transcoder::new(PCMU, PCMA).unwrap(),
        ),
    ]
}

fn bench<M: Measurement>(c: &mut Criterion<M>, label: &str) {
    let s = streams();
    let mut g = c.benchmark_group(label);
    g.throughput(Throughput::Elements(1));
    let plain = s.pcmu[0].clone();
    g.bench_function("memcpy_172", |b| {
        let mut dst = [0u8; BUF];
        b.iter(|| {
            dst[..plain.len].copy_from_slice(black_box(&plain.buf[..plain.len]));
            black_box(&dst);
        });
    });
    for (name, packets, mut t) in cases(&s) {
        let mut next = cycle(packets);
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                &mut next,
                |p| t.transcode(&mut p.buf, black_box(p.len)).unwrap(),
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
}

fn wall(c: &mut Criterion) {
    bench(c, "transcode_wall");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    bench(c, "transcode_cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(CpuTime(WallTime));
    targets = cpu
}

/// Packets per timed batch of [`best_of`].
const BATCH: usize = 2048;

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
        "best-of-15 cpu time  {name:<28} {:>10.1} ns/packet",
        best as f64 / BATCH as f64
    );
}

fn main() {
    let s = streams();
    let mut dst = [0u8; BUF];
    best_of("memcpy_172", cycle(&s.pcmu), |p| {
        dst[..p.len].copy_from_slice(black_box(&p.buf[..p.len]));
        black_box(&dst)[0] as usize
    });
    for (name, packets, mut t) in cases(&s) {
        best_of(name, cycle(packets), |p| {
            t.transcode(&mut p.buf, black_box(p.len)).unwrap()
        });
    }
    let bytes: usize = s.opus.iter().map(|p| p.len - 12).sum();
    println!(
        "opus from pcmu_to_opus: {:.1} kbit/s payload, {:.1} bytes/packet",
        bytes as f64 * 8.0 / (FRAMES as f64 * 0.02) / 1000.0,
        bytes as f64 / FRAMES as f64
    );
    wall_time();
    cpu_time();
    Criterion::default().configure_from_args().final_summary();
}
