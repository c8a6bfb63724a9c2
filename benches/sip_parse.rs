//! SIP parser micro-benchmark: parse a typical INVITE with SDP (~900 bytes) and
//! read what a proxy needs (top Via branch, Call-ID, CSeq, From/To tags,
//! Max-Forwards, Request-URI, body); plus parse + full `check`, and building a
//! response.

use std::hint::black_box;

use criterion::measurement::{Measurement, WallTime};
use criterion::{criterion_group, Criterion, Throughput};
use shards::sip::{Message, Writer};

const INVITE: &[u8] = b"INVITE sip:+15551234567@pbx.example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.23:5060;branch=z9hG4bK-524287-1---a7f3c9d21e4b;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@198.51.100.23:5060;transport=udp>;+sip.instance=\"<urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301>\"\r\n\
To: <sip:+15551234567@pbx.example.com;user=phone>\r\n\
From: \"Alice Example\" <sip:alice@pbx.example.com>;tag=9fxced76sl\r\n\
Call-ID: 3848276298220188511@198.51.100.23\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path\r\n\
User-Agent: Z 5.4.12 v2.10.13.2-mod\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: 337\r\n\
\r\n\
v=0\r\n\
o=Z 0 1690 IN IP4 198.51.100.23\r\n\
s=Z\r\n\
c=IN IP4 198.51.100.23\r\n\
t=0 0\r\n\
m=audio 8000 RTP/AVP 106 9 98 101 0 8 3\r\n\
a=rtpmap:106 opus/48000/2\r\n\
a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1\r\n\
a=rtpmap:98 telephone-event/48000\r\n\
a=fmtp:98 0-16\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n";

#[path = "cpu_time.rs"]
mod cpu_time;
use cpu_time::{thread_cpu_ns, CpuTime};

/// What a proxy reads from every request it forwards.
fn proxy_view(buf: &[u8]) -> usize {
    let Ok(m) = Message::parse(buf) else { return 0 };
    let mut acc = 0;
    if let Ok(via) = m.top_via() {
        acc += via.branch().map_or(0, str::len);
    }
    acc += m.call_id().map_or(0, str::len);
    if let Ok(cseq) = m.cseq() {
        acc += cseq.seq as usize;
    }
    acc += m.from_tag().map_or(0, str::len);
    acc += m.to_tag().map_or(0, str::len);
    if let Ok(Some(mf)) = m.max_forwards() {
        acc += usize::from(mf);
    }
    if let Ok(uri) = m.request_uri() {
        acc += uri.user.map_or(0, str::len);
    }
    acc + m.content_length().unwrap_or(0) as usize + m.body().len()
}

fn bench<M: Measurement>(c: &mut Criterion<M>, label: &str) {
    assert!(Message::parse(INVITE).unwrap().check().is_ok());
    assert!(proxy_view(INVITE) > 0);
    let mut g = c.benchmark_group(label);
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("parse_invite_proxy_view", |b| {
        b.iter(|| proxy_view(black_box(INVITE)));
    });
    const TINY: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nl: 0\r\n\r\n";
    g.bench_function("parse_tiny", |b| {
        b.iter(|| Message::parse(black_box(TINY)).map(|m| m.len()));
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| Message::parse(black_box(INVITE)).map(|m| m.len()));
    });
    g.bench_function("parse_and_check", |b| {
        b.iter(|| Message::parse(black_box(INVITE)).map(|m| m.check().is_ok()));
    });
    // What a call's flow capture does to every message it keeps.
    g.bench_function("redact_no_credentials", |b| {
        b.iter(|| shards::call::redact::credentials(black_box(INVITE)).len());
    });
    let req = Message::parse(INVITE).unwrap();
    let src = "198.51.100.23:5060".parse().unwrap();
    let mut out = Vec::with_capacity(1024);
    g.bench_function("build_180_response", |b| {
        b.iter(|| {
            let mut w = Writer::response_to(
                &mut out,
                black_box(&req),
                180,
                None,
                Some("as7d1"),
                Some(src),
            );
            w.header("Contact", "<sip:pbx@192.0.2.10:5060>");
            w.finish(b"")
        });
    });
    // A finished call's flow: twelve messages captured, then compressed for
    // the store (shard and control core, once per call).
    g.bench_function("flow_call_capture_pack", |b| {
        b.iter(|| flow_call(black_box(&req), src));
    });
    g.finish();
}

/// Captures the twelve messages of a call (the INVITE's size each) and packs
/// the flow as the store keeps it; returns the stored length.
fn flow_call(req: &Message<'_>, peer: std::net::SocketAddr) -> usize {
    let mut flow = shards::call::flow::Flow::new(64 << 10, "192.0.2.10:5060");
    for i in 0..12u64 {
        if i % 2 == 0 {
            flow.push_checked(1_795_000_000_000 + i, peer, "caller", req);
        } else {
            flow.push(1_795_000_000_000 + i, false, peer, "callee", req.as_bytes());
        }
    }
    flow.seal();
    shards::store::flow_pack::pack(&flow.into_stored()).len()
}

fn wall(c: &mut Criterion) {
    bench(c, "sip_wall");
}

fn cpu(c: &mut Criterion<CpuTime>) {
    bench(c, "sip_cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(CpuTime(WallTime));
    targets = cpu
}
/// Best-of-15 on-CPU time per call over batches of 20,000 calls: the cost
/// without interference from whatever else the machine runs, printed before
/// criterion's statistics.
fn best_of(name: &str, mut f: impl FnMut() -> usize) {
    let mut best = u64::MAX;
    let mut sink = 0;
    for _ in 0..15 {
        let t = thread_cpu_ns();
        for _ in 0..20_000 {
            sink += f();
        }
        best = best.min(thread_cpu_ns().saturating_sub(t));
    }
    black_box(sink);
    println!(
        "best-of-15 cpu time  {name:<28} {:>8.1} ns",
        best as f64 / 20_000.0
    );
}

fn main() {
    best_of("parse_invite_proxy_view", || proxy_view(black_box(INVITE)));
    best_of("parse_only", || {
        Message::parse(black_box(INVITE)).map_or(0, |m| m.len())
    });
    best_of("parse_and_check", || {
        Message::parse(black_box(INVITE)).map_or(0, |m| usize::from(m.check().is_ok()))
    });
    let req = Message::parse(INVITE).unwrap();
    let src = "198.51.100.23:5060".parse().unwrap();
    best_of("flow_call_capture_pack", || flow_call(black_box(&req), src));
    wall_time();
    cpu_time();
    Criterion::default().configure_from_args().final_summary();
}
