//! The relay's WebRTC-to-RTP bridge and transcoded calls, CPU time per
//! packet through `MediaRelay::on_datagram`, with no sockets.
//!
//! Set-up (untimed): a session whose caller side is a real WebRTC leg. The
//! browser is played by a second `shards::media::webrtc::Transport` (DTLS
//! client, `a=setup:active` toward the relay's passive end); ICE checks are
//! signed here (`stun_check`) and one is sent to each end, then datagrams
//! are shuttled (the relay's `SocketOp::Send` into the browser's `handle`,
//! the browser's `poll_transmit` into `relay.on_datagram`) until the browser
//! has its `Event::Keys` and the relay relays media to it. The callee side
//! is plain RTP. A second session, plain on both sides, is the baseline.
//!
//! Measured, best-of-15 on-CPU time per packet over batches made
//! beforehand (untimed; SRTP protection by the browser happens there):
//! - `webrtc_in`: browser -> callee, 172-byte G.711 RTP in SRTP with the
//!   key DTLS gave the browser (unprotect, checks, plain out);
//! - `webrtc_out`: callee -> browser, plain 172-byte G.711 RTP (protect);
//! - `plain_in`, `plain_out`: the same on the plain session;
//! - `opus_in`, `pcmu_out`: the WebRTC session transcoding Opus (browser,
//!   pt 111, 48 kHz) <-> PCMU (callee): 20 ms of a 1 kHz tone encoded by
//!   libopus at 48 kHz in SRTP toward the callee, a PCMU packet of the same
//!   tone toward the browser.
//!
//! From these: CPU per call-second (50 packets a second each way) and calls
//! per core for the relay's per-packet work only, and with the ~10 µs per
//! packet the user-space relay pays in the kernel and its system calls
//! (perf/RESULTS.md, measured end to end there, not here).
//!
//! cargo bench --bench webrtc

use std::cell::Cell;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use shards::media::relay::{
    MediaInput, MediaOutput, MediaRelay, RelayConfig, SdpOrigin, Side, Signalled, SocketOp,
};
use shards::media::srtp::{Context, MasterKey};
use shards::media::webrtc::{
    Event, IceCreds, Identity, RemoteParams, Role, Setup, State, Transport,
};
use shards::recording::Codec;
use shards::time::Now;

#[path = "cpu_time.rs"]
mod cpu_time;
use cpu_time::thread_cpu_ns;

/// The STUN check a browser sends (shared with tests/webrtc.rs).
#[path = "../tests/common/stun.rs"]
mod stun;
use stun::stun_check;

/// Room for a packet and any suite's trailer (what the relay's receive
/// buffers have is more; a transcoded packet may grow, so those get 1500).
const BUF: usize = 256;
const BUF_TRANSCODE: usize = 1500;
const RTP_LEN: usize = 172;
const ROUNDS: usize = 15;
/// Packets per timed batch: plain and SRTP, transcoded.
const BATCH: usize = 4096;
const BATCH_TRANSCODE: usize = 2048;
/// Packets a second each way in a 20 ms call.
const PPS: f64 = 50.0;
/// What the user-space relay pays per packet outside `on_datagram` (the
/// receive and send system calls, the kernel's UDP paths, wakes): the
/// end-to-end 10.04 µs of perf/RESULTS.md (issue 15, twelfth session,
/// `run-rtp.sh --kernel-forwarding off`) less its in-process plain 0.05.
const KERNEL_NS: f64 = 10_000.0;

const BROWSER: &str = "127.0.0.1:7000";
const CALLEE: &str = "127.0.0.1:8000";
const SSRC_BROWSER: u32 = 0x1111_2222;
const SSRC_CALLEE: u32 = 0x3333_4444;

/// A packet in a buffer of its own.
struct Packet {
    buf: Vec<u8>,
    len: usize,
}

fn rtp(cap: usize, pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Packet {
    let mut buf = vec![0u8; cap];
    buf[0] = 0x80;
    buf[1] = pt;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[12..12 + payload.len()].copy_from_slice(payload);
    Packet {
        buf,
        len: 12 + payload.len(),
    }
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

/// `n` samples of a 1 kHz tone at `rate` Hz, about -12 dBFS.
fn tone(rate: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / rate).sin()) as i16)
        .collect()
}

/// 20 ms of the tone in µ-law (160 bytes; the tone repeats every 8).
fn pcmu_payload() -> Vec<u8> {
    tone(8000.0, 160).into_iter().map(ulaw).collect()
}

/// 5 s of the tone as a browser sends it: 20 ms Opus frames from a 48 kHz
/// mono VoIP encoder at 32 kbit/s.
fn opus_payloads() -> Vec<Vec<u8>> {
    let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
    tone(48000.0, 250 * 960)
        .chunks(960)
        .map(|f| enc.encode_vec(f, 1275).unwrap())
        .collect()
}

/// The relay's clock, advanced 20 ms a packet.
fn tick(ms: &Cell<u64>) -> Now {
    let t = ms.get() + 20;
    ms.set(t);
    Now {
        unix: t / 1000,
        mono_ms: t,
        unix_ms: t,
    }
}

/// Answers the relay's socket requests; returns what it asked to send.
fn drain(relay: &mut MediaRelay) -> Vec<(u16, SocketAddr, Vec<u8>)> {
    let mut sent = Vec::new();
    while let Some(out) = relay.poll_output() {
        match out {
            MediaOutput::Socket(SocketOp::Send { port, dest, data }) => {
                relay.handle(MediaInput::Sent { port });
                sent.push((port, dest, data));
            }
            MediaOutput::Socket(
                SocketOp::Bind { port, .. }
                | SocketOp::Reserve { port, .. }
                | SocketOp::Read { port },
            ) => relay.handle(MediaInput::Bound { port }),
            MediaOutput::Socket(SocketOp::Close { port }) => {
                relay.handle(MediaInput::Closed { port });
            }
            MediaOutput::SessionFailed { reason, .. } => panic!("session failed: {reason}"),
            MediaOutput::Recording(_) => {}
        }
    }
    sent
}

fn new_relay() -> MediaRelay {
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
    MediaRelay::new(cfg, 0, 1, [7; 32])
}

fn signal(relay: &mut MediaRelay, id: u64, side: Side, rtp: Option<SocketAddr>) {
    let sig = Signalled {
        rtp,
        rtcp: None,
        rtcp_mux: true,
        hold: false,
        codecs: vec![(111, "opus".into(), 48000), (0, "PCMU".into(), 8000)],
    };
    relay.signalled(
        id,
        side,
        sig,
        SdpOrigin::Setup("127.0.0.1".parse().unwrap()),
    );
}

/// A plain session `id` between BROWSER's address (caller) and CALLEE.
fn plain_session(relay: &mut MediaRelay, id: u64) -> (u16, u16) {
    let ports = relay.create(id, "plain@bench", false).unwrap();
    drain(relay);
    signal(relay, id, Side::Caller, Some(BROWSER.parse().unwrap()));
    signal(relay, id, Side::Callee, Some(CALLEE.parse().unwrap()));
    ports
}

/// The WebRTC session: its ports, and the browser's SRTP keys (`local`
/// to send with, `remote` to receive with).
struct WebRtcCall {
    port_a: u16,
    port_b: u16,
    send: MasterKey,
    recv: MasterKey,
    datagrams: usize,
}

/// Session `id` with a browser on the caller side, ICE and DTLS done.
fn webrtc_session(relay: &mut MediaRelay, id: u64, ms: &Cell<u64>) -> WebRtcCall {
    let (port_a, port_b) = relay.create(id, "webrtc@bench", false).unwrap();
    drain(relay);
    let browser_addr: SocketAddr = BROWSER.parse().unwrap();
    let ours = relay.webrtc_local(0, id, Side::Caller).unwrap();
    let relay_addr = ours.candidate;
    let mut n = 0x2545_f491u32;
    let mut rng = |b: &mut [u8]| {
        for x in b {
            n ^= n << 13;
            n ^= n >> 17;
            n ^= n << 5;
            *x = n as u8;
        }
    };
    let identity = Arc::new(Identity::generate(&mut rng).unwrap());
    let creds = IceCreds::random(&mut rng);
    let t0 = ms.get();
    relay
        .webrtc_remote(
            t0,
            id,
            Side::Caller,
            RemoteParams {
                creds: creds.clone(),
                fingerprint: *identity.fingerprint(),
                setup: Setup::Active,
                rtcp_mux: true,
                mid: Some("0".into()),
                ice_lite: false,
            },
        )
        .unwrap();
    // What the call layer does with a browser's SDP: no address.
    signal(relay, id, Side::Caller, None);
    signal(relay, id, Side::Callee, Some(CALLEE.parse().unwrap()));
    let mut browser = Transport::new(
        t0,
        creds.clone(),
        RemoteParams {
            creds: ours.creds.clone(),
            fingerprint: ours.fingerprint,
            setup: Setup::Passive,
            rtcp_mux: true,
            mid: Some("0".into()),
            ice_lite: false,
        },
        identity,
        Role::Client,
    )
    .unwrap();
    // One nominating check each way: the relay selects the browser, the
    // browser (DTLS client) selects the relay and sends its ClientHello.
    let mut check = stun_check(
        &format!("{}:{}", ours.creds.ufrag(), creds.ufrag()),
        ours.creds.pwd(),
        [1; 12],
    );
    let len = check.len();
    let now = Now {
        unix: t0 / 1000,
        mono_ms: t0,
        unix_ms: t0,
    };
    assert!(relay
        .on_datagram(now, port_a, browser_addr, &mut check, len)
        .is_none());
    let check = stun_check(
        &format!("{}:{}", creds.ufrag(), ours.creds.ufrag()),
        creds.pwd(),
        [2; 12],
    );
    assert!(browser.handle(t0, relay_addr, &check));
    let mut keys = None;
    let mut datagrams = 0;
    for _ in 0..200 {
        let t = ms.get() + 1;
        ms.set(t);
        let now = Now {
            unix: t / 1000,
            mono_ms: t,
            unix_ms: t,
        };
        let mut moved = 0;
        for (port, dest, data) in drain(relay) {
            assert_eq!((port, dest), (port_a, browser_addr));
            assert!(browser.handle(t, relay_addr, &data));
            moved += 1;
        }
        while let Some(tx) = browser.poll_transmit() {
            assert_eq!(tx.dest, relay_addr);
            let len = tx.data.len();
            let mut buf = tx.data;
            buf.resize(len.max(2048), 0);
            assert!(relay
                .on_datagram(now, port_a, browser_addr, &mut buf, len)
                .is_none());
            moved += 1;
        }
        while let Some(e) = browser.poll_event() {
            match e {
                Event::Selected(a) => assert_eq!(a, relay_addr),
                Event::Keys { local, remote } => keys = Some((local, remote)),
                Event::Failed(f) => panic!("browser: {f}"),
            }
        }
        datagrams += moved;
        if keys.is_some() && moved == 0 {
            break;
        }
    }
    let (send, recv) = keys.expect("no DTLS keys at the browser");
    assert_eq!(browser.state(), State::Connected);
    WebRtcCall {
        port_a,
        port_b,
        send,
        recv,
        datagrams,
    }
}

/// Best-of-[`ROUNDS`] on-CPU time per packet over batches of `batch`
/// packets made beforehand (untimed) by `make`; checks every packet was
/// forwarded (the relay's `forwarded` counter) and returns ns/packet.
fn best_of(
    relay: &mut MediaRelay,
    name: &str,
    batch: usize,
    mut make: impl FnMut() -> Packet,
    mut f: impl FnMut(&mut MediaRelay, &mut Packet) -> usize,
) -> f64 {
    let mut best = u64::MAX;
    let mut sink = 0;
    let mut packets: Vec<Packet> = Vec::with_capacity(batch);
    let (forwarded, rejected) = (relay.counters.forwarded, relay.counters.rejected);
    for _ in 0..ROUNDS {
        packets.clear();
        packets.extend((0..batch).map(|_| make()));
        let t = thread_cpu_ns();
        for p in &mut packets {
            sink += f(relay, p);
        }
        best = best.min(thread_cpu_ns().saturating_sub(t));
    }
    black_box(sink);
    let c = relay.counters;
    assert_eq!(
        (c.forwarded - forwarded, c.rejected - rejected),
        ((ROUNDS * batch) as u64, 0),
        "{name}: not every packet was relayed: {c:?}"
    );
    let ns = best as f64 / batch as f64;
    println!("best-of-{ROUNDS} cpu time  {name:<44} {ns:>9.1} ns/packet");
    ns
}

/// Sends `p` into the relay on `port` from `src`; the length out.
fn relay_one(
    relay: &mut MediaRelay,
    ms: &Cell<u64>,
    port: u16,
    src: SocketAddr,
    p: &mut Packet,
) -> usize {
    relay
        .on_datagram(tick(ms), port, src, &mut p.buf, p.len)
        .map_or(0, |f| f.len)
}

fn main() {
    let ms = Cell::new(1_000);
    let mut relay = new_relay();
    let browser: SocketAddr = BROWSER.parse().unwrap();
    let callee: SocketAddr = CALLEE.parse().unwrap();
    let pcmu = pcmu_payload();

    let call = webrtc_session(&mut relay, 1, &ms);
    let suite = call.send.suite();
    println!(
        "DTLS-SRTP: handshake in {} datagrams; negotiated SRTP suite {}",
        call.datagrams,
        suite.name()
    );
    let (plain_a, plain_b) = plain_session(&mut relay, 2);

    // The browser's SRTP stream (one SSRC, seq on across the cases).
    let mut tx = Context::new(&call.send);
    let mut rx = Context::new(&call.recv);
    let mut seq = 0u16;
    let mut srtp_packet = |cap: usize, pt: u8, step: u32, payload: &[u8]| {
        seq = seq.wrapping_add(1);
        let mut p = rtp(cap, pt, seq, u32::from(seq) * step, SSRC_BROWSER, payload);
        p.len = tx.protect_rtp(&mut p.buf, p.len).unwrap();
        p
    };
    let mut callee_seq = 0u16;
    let mut callee_packet = |cap: usize| {
        callee_seq = callee_seq.wrapping_add(1);
        let ts = u32::from(callee_seq) * 160;
        rtp(cap, 0, callee_seq, ts, SSRC_CALLEE, &pcmu)
    };

    // The leg works both ways before anything is timed: the browser's SRTP
    // reaches the callee in clear, the callee's RTP reaches the browser in
    // SRTP it can open.
    let mut p = srtp_packet(BUF, 0, 160, &pcmu);
    let f = relay
        .on_datagram(tick(&ms), call.port_a, browser, &mut p.buf, p.len)
        .expect("browser -> callee not relayed");
    assert_eq!((f.dest, f.len, f.out_port), (callee, RTP_LEN, call.port_b));
    let mut p = callee_packet(BUF);
    let f = relay
        .on_datagram(tick(&ms), call.port_b, callee, &mut p.buf, p.len)
        .expect("callee -> browser not relayed");
    assert_eq!((f.dest, f.out_port), (browser, call.port_a));
    assert_eq!(rx.unprotect_rtp(&mut p.buf, f.len), Ok(RTP_LEN));
    assert_eq!(&p.buf[12..RTP_LEN], &pcmu[..]);

    let webrtc_in = best_of(
        &mut relay,
        "webrtc_in   srtp g711 browser -> plain callee",
        BATCH,
        || srtp_packet(BUF, 0, 160, &pcmu),
        |r, p| relay_one(r, &ms, call.port_a, browser, p),
    );
    let webrtc_out = best_of(
        &mut relay,
        "webrtc_out  plain g711 callee -> srtp browser",
        BATCH,
        || callee_packet(BUF),
        |r, p| relay_one(r, &ms, call.port_b, callee, p),
    );
    let mut plain_seq = 0u16;
    let mut plain_packet = |ssrc: u32| {
        plain_seq = plain_seq.wrapping_add(1);
        rtp(BUF, 0, plain_seq, u32::from(plain_seq) * 160, ssrc, &pcmu)
    };
    let plain_in = best_of(
        &mut relay,
        "plain_in    plain g711 caller -> plain callee",
        BATCH,
        || plain_packet(SSRC_BROWSER),
        |r, p| relay_one(r, &ms, plain_a, browser, p),
    );
    let plain_out = best_of(
        &mut relay,
        "plain_out   plain g711 callee -> plain caller",
        BATCH,
        || plain_packet(SSRC_CALLEE),
        |r, p| relay_one(r, &ms, plain_b, callee, p),
    );

    // The same WebRTC call, transcoding: Opus on the browser's side, PCMU
    // on the callee's.
    assert!(relay.set_transcoding(1, Some(((Codec::Opus, 111, 48000), (Codec::Pcmu, 0, 8000)))));
    let opus = opus_payloads();
    let opus_bytes = opus.iter().map(Vec::len).sum::<usize>() as f64 / opus.len() as f64;
    let mut frame = 0;
    let mut next_opus = move || {
        frame = (frame + 1) % opus.len();
        opus[frame].clone()
    };
    let mut p = srtp_packet(BUF_TRANSCODE, 111, 960, &next_opus());
    let f = relay
        .on_datagram(tick(&ms), call.port_a, browser, &mut p.buf, p.len)
        .expect("opus browser -> callee not relayed");
    assert_eq!((f.dest, f.len), (callee, RTP_LEN));
    assert_eq!(p.buf[1] & 0x7f, 0);
    let mut p = callee_packet(BUF_TRANSCODE);
    let f = relay
        .on_datagram(tick(&ms), call.port_b, callee, &mut p.buf, p.len)
        .expect("pcmu callee -> browser not relayed");
    let opus_out = rx.unprotect_rtp(&mut p.buf, f.len).unwrap();
    assert_eq!(p.buf[1] & 0x7f, 111);
    let opus_in = best_of(
        &mut relay,
        "opus_in     srtp opus browser -> pcmu callee",
        BATCH_TRANSCODE,
        || srtp_packet(BUF_TRANSCODE, 111, 960, &next_opus()),
        |r, p| relay_one(r, &ms, call.port_a, browser, p),
    );
    let pcmu_out = best_of(
        &mut relay,
        "pcmu_out    pcmu callee -> srtp opus browser",
        BATCH_TRANSCODE,
        || callee_packet(BUF_TRANSCODE),
        |r, p| relay_one(r, &ms, call.port_b, callee, p),
    );
    println!(
        "opus from the browser: {opus_bytes:.1} bytes/packet payload; to it (one sample): {} bytes",
        opus_out - 12
    );

    // Per call-second: one packet each way, 50 times a second.
    println!();
    println!(
        "{:<44} {:>14} {:>11} {:>22}",
        "call (20 ms packets, both ways)", "µs CPU/call-s", "calls/core", "calls/core +10 µs/pkt"
    );
    for (name, a, b) in [
        ("plain <-> plain", plain_in, plain_out),
        (
            &*format!("webrtc ({}) <-> plain, g711", suite.name()),
            webrtc_in,
            webrtc_out,
        ),
        ("webrtc opus <-> plain pcmu, transcoded", opus_in, pcmu_out),
    ] {
        let per_second = PPS * (a + b);
        let with_kernel = per_second + 2.0 * PPS * KERNEL_NS;
        println!(
            "{name:<44} {:>14.1} {:>11.0} {:>22.0}",
            per_second / 1000.0,
            1e9 / per_second,
            1e9 / with_kernel
        );
    }
}
