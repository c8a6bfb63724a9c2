//! rtp-load: RTP relay load generator for ShardPBX (see bench-scenarios/run-rtp.sh).
//!
//! With `--pbx HOST:PORT` it is both the caller and the callee of N calls
//! through the PBX, over one UDP SIP socket: it sends `INVITE sip:load<i>@PBX`
//! (PCMU offer on its caller RTP socket), answers the INVITE the PBX sends to
//! it (the trunk `dest`) with 200 + SDP on its callee RTP socket, ACKs, then
//! streams one 172-byte PCMU packet per call per direction every ptime for
//! `--seconds`, counts what comes back per SSRC (loss, seq breaks, ts breaks,
//! one-way delay), and hangs every call up with BYE.
//!
//! With `--reflector HOST:PORT` there is no SIP: N streams from one socket to
//! a UDP reflector (perf/rtp_reflector.rs), counted the same way.
//!
//! Markers on stderr for an observer sampling CPU: `MEDIA START` (then a
//! `--marker-pause-ms` pause before the first packet) and `MEDIA END` (after
//! the last packet and a 1 s drain, before the BYEs).
//!
//! Everything is bounded: setup at most calls/setup_rate + 10 s, media exactly
//! `--seconds` (+1 s drain; a tick that could not be sent in time, because the
//! generator was starved of CPU, is skipped and reported), teardown at most 10 s.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;

/// Largest packet: 12 header + 8 PCMU bytes per ms of ptime (ptime <= 180).
const PKT_MAX: usize = 12 + 8 * 180;
const HDR: usize = 12;
const SSRC_BASE: u32 = 0x5250_0000;
const SEND_BATCH: usize = 128;
const RECV_BATCH: usize = 64;
const RECV_BUF: usize = 2048;
const SIP_BUF: usize = 65536;
const NS: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const T1: u64 = 500 * MS;
const T2: u64 = 4_000 * MS;
const HIST_STEP_NS: u64 = 10_000; // 10 µs buckets
const HIST_BUCKETS: usize = 20_000; // up to 200 ms, then an overflow bucket

// ---------------------------------------------------------------- arguments

struct Args {
    pbx: Option<SocketAddr>,
    reflector: Option<SocketAddr>,
    calls: usize,
    seconds: u64,
    ptime: u64,
    setup_rate: f64,
    json: bool,
    sip_port: u16,
    rtp_port: u16,
    marker_pause_ms: u64,
}

const USAGE: &str = "\
usage: rtp-load (--pbx HOST:PORT | --reflector HOST:PORT) [options]
  --pbx HOST:PORT        ShardPBX SIP address: be caller and callee of every call
  --reflector HOST:PORT  no SIP: N streams from one socket to a UDP reflector
  --calls N              concurrent calls (reflector: streams), default 100
  --seconds S            media time, default 20
  --ptime MS             packet interval 1..180, default 20: 8*ptime PCMU bytes per packet
                         (20 ms: 172-byte packets, timestamp +160)
  --setup-rate R         calls set up per second, default 200
  --sip-port P           bind the SIP socket to 127.0.0.1:P (default 0 = any)
  --rtp-port P           caller RTP socket on P, callee on P+2 (reflector: P); default 0 = any
  --marker-pause-ms MS   pause after printing MEDIA START before the first packet, default 250
  --json                 also print one JSON summary line at the end
";

fn die(msg: &str) -> ! {
    eprintln!("rtp-load: {msg}");
    std::process::exit(2);
}

fn resolve(s: &str) -> SocketAddr {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(|a| a.is_ipv4()))
        .unwrap_or_else(|| die(&format!("cannot resolve {s} to an IPv4 address")))
}

fn parse_args() -> Args {
    let mut a = Args {
        pbx: None,
        reflector: None,
        calls: 100,
        seconds: 20,
        ptime: 20,
        setup_rate: 200.0,
        json: false,
        sip_port: 0,
        rtp_port: 0,
        marker_pause_ms: 250,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "-h" || k == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        if k == "--json" {
            a.json = true;
            continue;
        }
        let v = it.next().unwrap_or_else(|| die(&format!("{k} needs a value\n{USAGE}")));
        let num = |v: &str| -> u64 { v.parse().unwrap_or_else(|_| die(&format!("{k}: bad number {v}"))) };
        match k.as_str() {
            "--pbx" => a.pbx = Some(resolve(&v)),
            "--reflector" => a.reflector = Some(resolve(&v)),
            "--calls" => a.calls = num(&v) as usize,
            "--seconds" => a.seconds = num(&v),
            "--ptime" => a.ptime = num(&v),
            "--setup-rate" => {
                a.setup_rate = v.parse().unwrap_or_else(|_| die("--setup-rate: bad number"))
            }
            "--sip-port" => a.sip_port = num(&v) as u16,
            "--rtp-port" => a.rtp_port = num(&v) as u16,
            "--marker-pause-ms" => a.marker_pause_ms = num(&v),
            _ => die(&format!("unknown option {k}\n{USAGE}")),
        }
    }
    if a.pbx.is_some() == a.reflector.is_some() {
        die(&format!("give exactly one of --pbx and --reflector\n{USAGE}"));
    }
    if a.calls == 0 || a.calls > 1_000_000 {
        die("--calls must be 1..1000000");
    }
    if a.ptime == 0 || a.ptime > 180 {
        die("--ptime must be 1..180");
    }
    if !(a.setup_rate > 0.0) {
        die("--setup-rate must be > 0");
    }
    a
}

// ---------------------------------------------------------------- time, sockets

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * NS + ts.tv_nsec as u64
}

fn cpu_self_ns() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * NS + t.tv_usec as u64 * 1000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn set_buf(fd: libc::c_int, force: libc::c_int, plain: libc::c_int, bytes: libc::c_int) -> libc::c_int {
    let p = &bytes as *const libc::c_int as *const libc::c_void;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, force, p, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, len);
        }
        let mut got: libc::c_int = 0;
        let mut gl = len;
        libc::getsockopt(fd, libc::SOL_SOCKET, plain, &mut got as *mut _ as *mut libc::c_void, &mut gl);
        got
    }
}

/// The address a socket of ours is bound to.
fn local(sock: &UdpSocket) -> SocketAddr {
    sock.local_addr().unwrap_or_else(|e| die(&format!("socket has no local address: {e}")))
}

fn udp(port: u16, what: &str, bufsize: libc::c_int) -> UdpSocket {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|e| die(&format!("cannot bind {what} socket 127.0.0.1:{port}: {e}")));
    s.set_nonblocking(true)
        .unwrap_or_else(|e| die(&format!("{what} socket: cannot set non-blocking: {e}")));
    if bufsize > 0 {
        let fd = s.as_raw_fd();
        let r = set_buf(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, bufsize);
        let w = set_buf(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, bufsize);
        if r < bufsize || w < bufsize {
            eprintln!("rtp-load: warning: {what} socket buffers rcv {r} snd {w} bytes (asked {bufsize})");
        }
    }
    s
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => die("IPv6 is not supported"),
    }
}

fn sin(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
        sin_zero: [0; 8],
    }
}

/// Waits until one of `fds` is readable or `timeout_ns` passes.
fn wait(fds: &[libc::c_int], timeout_ns: u64) {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
        .collect();
    let ts = libc::timespec {
        tv_sec: (timeout_ns / NS) as libc::time_t,
        tv_nsec: (timeout_ns % NS) as libc::c_long,
    };
    unsafe { libc::ppoll(p.as_mut_ptr(), p.len() as libc::nfds_t, &ts, std::ptr::null()) };
}

// ---------------------------------------------------------------- RTP

/// What one stream's sender keeps.
struct TxStream {
    dest: libc::sockaddr_in,
    ssrc: u32,
    seq: u16,
    ts: u32,
    sent: u64,
    send_fail: u64,
}

/// What the receiver keeps per stream (indexed by SSRC - SSRC_BASE).
#[derive(Default, Clone)]
struct RxStream {
    recv: u64,
    have: bool,
    last_seq: u16,
    last_ts: u32,
    seq_breaks: u64,
    ts_breaks: u64,
    dups: u64,
}

struct Hist {
    b: Vec<u64>,
    n: u64,
    max: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist { b: vec![0; HIST_BUCKETS + 1], n: 0, max: 0 }
    }
    fn add(&mut self, ns: u64) {
        let i = ((ns / HIST_STEP_NS) as usize).min(HIST_BUCKETS);
        self.b[i] += 1;
        self.n += 1;
        self.max = self.max.max(ns);
    }
    /// Upper edge of the bucket holding quantile q, in µs.
    fn q_us(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let want = ((q * self.n as f64).ceil() as u64).max(1);
        let mut acc = 0;
        for (i, c) in self.b.iter().enumerate() {
            acc += c;
            if acc >= want {
                if i == HIST_BUCKETS {
                    return self.max as f64 / 1000.0;
                }
                return ((i as u64 + 1) * HIST_STEP_NS) as f64 / 1000.0;
            }
        }
        self.max as f64 / 1000.0
    }
}

/// sendmmsg batches of RTP packets.
struct Tx {
    bufs: Vec<[u8; PKT_MAX]>,
    step: u32,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    eagain_waits: u64,
}

impl Tx {
    fn new(ptime_ms: u64) -> Box<Tx> {
        let step = 8 * ptime_ms as u32;
        let mut t = Box::new(Tx {
            bufs: vec![[0xFFu8; PKT_MAX]; SEND_BATCH],
            step,
            iovs: Vec::with_capacity(SEND_BATCH),
            msgs: vec![unsafe { std::mem::zeroed() }; SEND_BATCH],
            eagain_waits: 0,
        });
        for i in 0..SEND_BATCH {
            let p = t.bufs[i].as_mut_ptr();
            t.iovs.push(libc::iovec { iov_base: p as *mut libc::c_void, iov_len: HDR + step as usize });
        }
        for i in 0..SEND_BATCH {
            let iov = &mut t.iovs[i] as *mut libc::iovec;
            let h = &mut t.msgs[i].msg_hdr;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        }
        t
    }

    /// One packet for each stream in `idx` (all sent from `fd`).
    fn tick(&mut self, fd: libc::c_int, streams: &mut [TxStream], idx: &[usize], first: bool) {
        for chunk in idx.chunks(SEND_BATCH) {
            let stamp = now_ns().to_be_bytes();
            for (k, &j) in chunk.iter().enumerate() {
                let s = &mut streams[j];
                let b = &mut self.bufs[k];
                b[0] = 0x80;
                b[1] = if first { 0x80 } else { 0x00 }; // marker on the first packet, PT 0 (PCMU)
                b[2..4].copy_from_slice(&s.seq.to_be_bytes());
                b[4..8].copy_from_slice(&s.ts.to_be_bytes());
                b[8..12].copy_from_slice(&s.ssrc.to_be_bytes());
                b[HDR..HDR + 8].copy_from_slice(&stamp);
                self.msgs[k].msg_hdr.msg_name = &mut s.dest as *mut libc::sockaddr_in as *mut libc::c_void;
                self.msgs[k].msg_len = 0;
            }
            let n = chunk.len();
            let mut off = 0;
            let mut tries = 0;
            while off < n {
                let r = unsafe { libc::sendmmsg(fd, self.msgs.as_mut_ptr().add(off), (n - off) as libc::c_uint, 0) };
                if r > 0 {
                    for &j in &chunk[off..off + r as usize] {
                        streams[j].sent += 1;
                    }
                    off += r as usize;
                    continue;
                }
                let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if err == libc::EINTR {
                    continue;
                }
                if (err == libc::EAGAIN || err == libc::ENOBUFS) && tries < 5 {
                    tries += 1;
                    self.eagain_waits += 1;
                    let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                    unsafe { libc::poll(&mut p, 1, 2) };
                    continue;
                }
                // Give up on this datagram (counted), go on with the rest.
                streams[chunk[off]].send_fail += 1;
                off += 1;
            }
            for &j in chunk {
                let s = &mut streams[j];
                s.seq = s.seq.wrapping_add(1);
                s.ts = s.ts.wrapping_add(self.step);
            }
        }
    }
}

/// recvmmsg batches; per-SSRC accounting.
struct Rx {
    bufs: Vec<[u8; RECV_BUF]>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    streams: Vec<RxStream>,
    step: u32,
    hist: [Hist; 2],
    foreign: u64,    // not an RTP packet of ours
    misrouted: u64,  // arrived on the socket of the wrong role
}

impl Rx {
    fn new(nstreams: usize, ptime_ms: u64) -> Box<Rx> {
        let mut r = Box::new(Rx {
            bufs: vec![[0u8; RECV_BUF]; RECV_BATCH],
            iovs: Vec::with_capacity(RECV_BATCH),
            msgs: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            streams: vec![RxStream::default(); nstreams],
            step: 8 * ptime_ms as u32,
            hist: [Hist::new(), Hist::new()],
            foreign: 0,
            misrouted: 0,
        });
        for i in 0..RECV_BATCH {
            let p = r.bufs[i].as_mut_ptr();
            r.iovs.push(libc::iovec { iov_base: p as *mut libc::c_void, iov_len: RECV_BUF });
        }
        for i in 0..RECV_BATCH {
            let iov = &mut r.iovs[i] as *mut libc::iovec;
            let h = &mut r.msgs[i].msg_hdr;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
        }
        r
    }

    /// Reads everything queued on `fd` (bounded). `parity`: the stream index
    /// parity this socket should receive (PBX mode), None = any.
    fn drain(&mut self, fd: libc::c_int, parity: Option<usize>, pbx: bool) -> u64 {
        let mut total = 0u64;
        for _ in 0..512 {
            for m in self.msgs.iter_mut() {
                m.msg_len = 0;
                m.msg_hdr.msg_flags = 0;
            }
            let n = unsafe {
                libc::recvmmsg(fd, self.msgs.as_mut_ptr(), RECV_BATCH as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
            };
            if n <= 0 {
                break;
            }
            let now = now_ns();
            let n = n as usize;
            total += n as u64;
            for k in 0..n {
                let len = self.msgs[k].msg_len as usize;
                let b = &self.bufs[k];
                if len < HDR + 8 || b[0] >> 6 != 2 {
                    self.foreign += 1;
                    continue;
                }
                let ssrc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
                let idx = ssrc.wrapping_sub(SSRC_BASE) as usize;
                if idx >= self.streams.len() {
                    self.foreign += 1;
                    continue;
                }
                if let Some(p) = parity {
                    if idx % 2 != p {
                        self.misrouted += 1;
                    }
                }
                let seq = u16::from_be_bytes([b[2], b[3]]);
                let ts = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                let mut st = [0u8; 8];
                st.copy_from_slice(&b[HDR..HDR + 8]);
                let sent_at = u64::from_be_bytes(st);
                let dir = if pbx { idx % 2 } else { 0 };
                self.hist[dir].add(now.saturating_sub(sent_at));
                let step = self.step;
                let s = &mut self.streams[idx];
                s.recv += 1;
                if s.have {
                    if seq == s.last_seq {
                        s.dups += 1;
                    } else if seq != s.last_seq.wrapping_add(1) {
                        s.seq_breaks += 1;
                    }
                    if ts != s.last_ts.wrapping_add(step) && seq != s.last_seq {
                        s.ts_breaks += 1;
                    }
                }
                s.have = true;
                s.last_seq = seq;
                s.last_ts = ts;
            }
            if n < RECV_BATCH {
                break;
            }
        }
        total
    }
}

// ---------------------------------------------------------------- SIP

struct Msg<'a> {
    status: u16, // 0 for a request
    method: &'a str,
    ruri: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a str,
}

fn canon(name: &str) -> &str {
    match name {
        "i" | "I" => "call-id",
        "f" | "F" => "from",
        "t" | "T" => "to",
        "v" | "V" => "via",
        "m" | "M" => "contact",
        "l" | "L" => "content-length",
        "c" | "C" => "content-type",
        _ => name,
    }
}

impl<'a> Msg<'a> {
    fn parse(text: &'a str) -> Option<Msg<'a>> {
        let (head, body) = match text.find("\r\n\r\n") {
            Some(p) => (&text[..p], &text[p + 4..]),
            None => (text, ""),
        };
        let mut lines = head.split("\r\n");
        let first = lines.next()?;
        let (status, method, ruri) = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            (rest.get(..3)?.parse().ok()?, "", "")
        } else {
            let mut p = first.split(' ');
            let m = p.next()?;
            let u = p.next()?;
            (0, m, u)
        };
        let mut headers = Vec::new();
        for l in lines {
            let Some(c) = l.find(':') else { continue };
            headers.push((l[..c].trim(), l[c + 1..].trim()));
        }
        Some(Msg { status, method, ruri, headers, body })
    }
    fn get(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| canon(n).eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
    fn cseq_method(&self) -> &'a str {
        self.get("cseq").and_then(|c| c.split_whitespace().nth(1)).unwrap_or("")
    }
}

fn tag_of(hdr: &str) -> Option<&str> {
    let p = hdr.find(";tag=")?;
    let t = &hdr[p + 5..];
    Some(t.split([';', '>', ' ', ',']).next().unwrap_or(t))
}

/// The URI inside a Contact (or Request-URI) value.
fn uri_of(hdr: &str) -> &str {
    if let (Some(a), Some(b)) = (hdr.find('<'), hdr.find('>')) {
        if a < b {
            return &hdr[a + 1..b];
        }
    }
    hdr.split(';').next().unwrap_or(hdr).trim()
}

/// host:port of a sip: URI, when it is an IPv4 literal.
fn uri_addr(uri: &str) -> Option<SocketAddrV4> {
    let u = uri.strip_prefix("sip:")?;
    let u = u.rsplit('@').next()?;
    let hp = u.split([';', '?', '>']).next()?;
    if let Ok(a) = hp.parse::<SocketAddrV4>() {
        return Some(a);
    }
    hp.parse::<Ipv4Addr>().ok().map(|ip| SocketAddrV4::new(ip, 5060))
}

/// (c= address, m=audio port) of an SDP body; media-level c= wins.
fn sdp_dest(body: &str) -> Option<SocketAddrV4> {
    let mut ip: Option<Ipv4Addr> = None;
    let mut port: Option<u16> = None;
    let mut in_audio = false;
    for l in body.lines() {
        let l = l.trim();
        if let Some(m) = l.strip_prefix("m=") {
            in_audio = m.starts_with("audio ");
            if in_audio && port.is_none() {
                port = m.split_whitespace().nth(1).and_then(|p| p.split('/').next()?.parse().ok());
            }
        } else if let Some(c) = l.strip_prefix("c=IN IP4 ") {
            let a = c.split(['/', ' ']).next().and_then(|a| a.parse().ok());
            if in_audio || ip.is_none() {
                if a.is_some() {
                    ip = a;
                }
            }
        }
    }
    Some(SocketAddrV4::new(ip?, port.filter(|&p| p != 0)?))
}

/// The number in a tag or user like `rlf123x456` / `load123`.
fn index_in(s: &str, prefix: &str) -> Option<usize> {
    let d = s.strip_prefix(prefix)?;
    let end = d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len());
    d[..end].parse().ok()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Pending,
    Calling,
    Proceeding,
    Up,
    Failed,
}

struct Call {
    st: St,
    fail_code: u16,
    late_up: bool,
    invite: Vec<u8>,
    branch: String,
    retx_at: u64,
    retx_iv: u64,
    // From the 200 to our INVITE.
    to_hdr: String,
    target_uri: String,
    target: SocketAddrV4,
    caller_dest: Option<SocketAddrV4>,
    // The INVITE the PBX sent to us (the callee).
    callee_call_id: Option<String>,
    callee_dest: Option<SocketAddrV4>,
    callee_resp: Option<Vec<u8>>,
    callee_from: Option<SocketAddr>,
    callee_acked: bool,
    callee_retx_at: u64,
    callee_retx_iv: u64,
    callee_bye: bool,
    // Teardown.
    bye: Option<Vec<u8>>,
    bye_at: u64,
    bye_iv: u64,
    bye_code: u16,
}

#[derive(Default)]
struct SipCounters {
    invites_sent: u64,
    invite_retx: u64,
    callee_invites: u64,
    callee_invite_retx: u64,
    callee_200_retx: u64,
    acks_sent: u64,
    byes_sent: u64,
    bye_retx: u64,
    bye_200: u64,
    bye_other: u64,
    callee_byes: u64,
    caller_byes_from_pbx: u64,
    unknown: u64,
    fail_codes: HashMap<u16, u64>,
}

struct Sip {
    sock: UdpSocket,
    pbx: SocketAddrV4,
    me: SocketAddrV4,
    pid: u32,
    caller_rtp: u16,
    callee_rtp: u16,
    calls: Vec<Call>,
    by_callee_id: HashMap<String, usize>,
    c: SipCounters,
    buf: Vec<u8>,
    phase_media: bool,
    ptime: u64,
}

fn sdp(port: u16, id: usize, ptime: u64) -> String {
    format!(
        "v=0\r\no=rtpload {id} 1 IN IP4 127.0.0.1\r\ns=rtpload\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:{ptime}\r\na=sendrecv\r\n"
    )
}

impl Sip {
    fn new(sock: UdpSocket, pbx: SocketAddrV4, calls: usize, caller_rtp: u16, callee_rtp: u16) -> Sip {
        let me = v4(local(&sock));
        let pid = std::process::id();
        let calls = (0..calls)
            .map(|_| Call {
                st: St::Pending,
                fail_code: 0,
                late_up: false,
                invite: Vec::new(),
                branch: String::new(),
                retx_at: 0,
                retx_iv: T1,
                to_hdr: String::new(),
                target_uri: String::new(),
                target: pbx,
                caller_dest: None,
                callee_call_id: None,
                callee_dest: None,
                callee_resp: None,
                callee_from: None,
                callee_acked: false,
                callee_retx_at: 0,
                callee_retx_iv: T1,
                callee_bye: false,
                bye: None,
                bye_at: 0,
                bye_iv: T1,
                bye_code: 0,
            })
            .collect();
        Sip {
            sock,
            pbx,
            me,
            pid,
            caller_rtp,
            callee_rtp,
            calls,
            by_callee_id: HashMap::new(),
            c: SipCounters::default(),
            buf: vec![0; SIP_BUF],
            phase_media: false,
            ptime: 20,
        }
    }

    fn send(&self, data: &[u8], to: SocketAddr) {
        for _ in 0..3 {
            match self.sock.send_to(data, to) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut p = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                    unsafe { libc::poll(&mut p, 1, 5) };
                }
                Err(_) => return,
            }
        }
    }

    fn from_hdr(&self, i: usize) -> String {
        format!("<sip:rtpload@{}>;tag=rlf{i}x{}", self.me, self.pid)
    }

    fn call_id(&self, i: usize) -> String {
        format!("rtpload-{i}-{}@127.0.0.1", self.pid)
    }

    fn send_invite(&mut self, i: usize, now: u64) {
        let branch = format!("z9hG4bK-rl{i}x{}i", self.pid);
        let body = sdp(self.caller_rtp, i, self.ptime);
        let msg = format!(
            "INVITE sip:load{i}@{pbx} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: <sip:load{i}@{pbx}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:rtpload@{me}>\r\n\
             User-Agent: rtp-load\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{body}",
            pbx = self.pbx,
            me = self.me,
            from = self.from_hdr(i),
            cid = self.call_id(i),
            len = body.len()
        );
        let c = &mut self.calls[i];
        c.invite = msg.into_bytes();
        c.branch = branch;
        c.st = St::Calling;
        c.retx_at = now + T1;
        c.retx_iv = T1;
        self.send(&self.calls[i].invite, SocketAddr::V4(self.pbx));
        self.c.invites_sent += 1;
    }

    /// ACK: for a 2xx a new transaction to the Contact; for a failure the
    /// INVITE's branch and Request-URI, to the PBX.
    fn send_ack(&mut self, i: usize, to_hdr: &str, ok: bool) {
        let (ruri, branch, dest) = if ok {
            let c = &self.calls[i];
            (c.target_uri.clone(), format!("z9hG4bK-rl{i}x{}a", self.pid), c.target)
        } else {
            (format!("sip:load{i}@{}", self.pbx), self.calls[i].branch.clone(), self.pbx)
        };
        let msg = format!(
            "ACK {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to_hdr}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 ACK\r\n\
             Content-Length: 0\r\n\r\n",
            me = self.me,
            from = self.from_hdr(i),
            cid = self.call_id(i),
        );
        self.send(msg.as_bytes(), SocketAddr::V4(dest));
        self.c.acks_sent += 1;
    }

    fn send_bye(&mut self, i: usize, now: u64) {
        let c = &self.calls[i];
        let msg = format!(
            "BYE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-rl{i}x{pid}b;rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            ruri = c.target_uri,
            me = self.me,
            pid = self.pid,
            from = self.from_hdr(i),
            to = c.to_hdr,
            cid = self.call_id(i),
        );
        let target = c.target;
        self.send(msg.as_bytes(), SocketAddr::V4(target));
        let c = &mut self.calls[i];
        c.bye = Some(msg.into_bytes());
        c.bye_at = now + T1;
        c.bye_iv = T1;
        self.c.byes_sent += 1;
    }

    /// A response to a request we received (Vias, From, To, Call-ID, CSeq copied).
    fn respond(&self, m: &Msg, code: &str, to_tag: Option<&str>, extra: &str, body: &str) -> Vec<u8> {
        let mut out = String::with_capacity(512 + body.len());
        out.push_str("SIP/2.0 ");
        out.push_str(code);
        out.push_str("\r\n");
        for (n, v) in &m.headers {
            let c = canon(n);
            if c.eq_ignore_ascii_case("via") {
                out.push_str("Via: ");
                out.push_str(v);
                out.push_str("\r\n");
            }
        }
        let to = m.get("to").unwrap_or("");
        let from = m.get("from").unwrap_or("");
        out.push_str("From: ");
        out.push_str(from);
        out.push_str("\r\nTo: ");
        out.push_str(to);
        if let (Some(t), None) = (to_tag, tag_of(to)) {
            out.push_str(";tag=");
            out.push_str(t);
        }
        out.push_str("\r\nCall-ID: ");
        out.push_str(m.get("call-id").unwrap_or(""));
        out.push_str("\r\nCSeq: ");
        out.push_str(m.get("cseq").unwrap_or(""));
        out.push_str("\r\n");
        out.push_str(extra);
        if !body.is_empty() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        out.push_str(body);
        out.into_bytes()
    }

    /// Reads and handles every queued SIP datagram (bounded).
    fn poll(&mut self, now: u64) {
        for _ in 0..4096 {
            let mut buf = std::mem::take(&mut self.buf);
            let r = self.sock.recv_from(&mut buf);
            match r {
                Ok((n, src)) => {
                    if let Ok(text) = std::str::from_utf8(&buf[..n]) {
                        if let Some(m) = Msg::parse(text) {
                            self.handle(&m, src, now);
                        } else {
                            self.c.unknown += 1;
                        }
                    }
                    self.buf = buf;
                }
                Err(_) => {
                    self.buf = buf;
                    return;
                }
            }
        }
    }

    fn handle(&mut self, m: &Msg, src: SocketAddr, now: u64) {
        if m.status != 0 {
            return self.on_response(m, now);
        }
        match m.method {
            "INVITE" => self.on_callee_invite(m, src, now),
            "ACK" => {
                if let Some(i) = self.callee_index(m) {
                    self.calls[i].callee_acked = true;
                }
            }
            "BYE" => {
                let to = m.get("to").unwrap_or("");
                let tag = tag_of(to).unwrap_or("");
                if let Some(i) = index_in(tag, "rlt").filter(|&i| i < self.calls.len()) {
                    if !self.calls[i].callee_bye {
                        self.calls[i].callee_bye = true;
                        self.c.callee_byes += 1;
                    }
                } else if index_in(tag, "rlf").is_some() {
                    // The PBX hung up our caller leg (e.g. rtp_timeout).
                    self.c.caller_byes_from_pbx += 1;
                }
                let r = self.respond(m, "200 OK", None, "", "");
                self.send(&r, src);
            }
            "CANCEL" | "OPTIONS" | "UPDATE" | "INFO" | "NOTIFY" => {
                let r = self.respond(m, "200 OK", Some("rlo"), "", "");
                self.send(&r, src);
            }
            _ => {
                self.c.unknown += 1;
            }
        }
    }

    fn callee_index(&self, m: &Msg) -> Option<usize> {
        if let Some(&i) = m.get("call-id").and_then(|id| self.by_callee_id.get(id)) {
            return Some(i);
        }
        let tag = tag_of(m.get("to").unwrap_or(""))?;
        index_in(tag, "rlt").filter(|&i| i < self.calls.len())
    }

    fn on_callee_invite(&mut self, m: &Msg, src: SocketAddr, now: u64) {
        let Some(call_id) = m.get("call-id") else { return };
        let i = match self.by_callee_id.get(call_id) {
            Some(&i) => i,
            None => {
                // The Request-URI (or To) user is load<i>.
                let user = |u: &str| -> Option<usize> {
                    let u = uri_of(u);
                    let u = u.strip_prefix("sip:")?;
                    let user = u.split('@').next()?;
                    index_in(user, "load")
                };
                let Some(i) = user(m.ruri)
                    .or_else(|| m.get("to").and_then(user))
                    .filter(|&i| i < self.calls.len())
                else {
                    let r = self.respond(m, "404 Not Found", Some("rl404"), "", "");
                    self.send(&r, src);
                    self.c.unknown += 1;
                    return;
                };
                i
            }
        };
        let c = &mut self.calls[i];
        let retransmission = c.callee_call_id.as_deref() == Some(call_id)
            && tag_of(m.get("to").unwrap_or("")).is_none();
        if let Some(r) = c.callee_resp.clone().filter(|_| retransmission) {
            // A retransmitted INVITE: the same answer again.
            self.c.callee_invite_retx += 1;
            self.send(&r, src);
            return;
        }
        self.c.callee_invites += 1;
        if let Some(d) = sdp_dest(m.body) {
            c.callee_dest = Some(d);
        }
        c.callee_call_id = Some(call_id.to_string());
        self.by_callee_id.insert(call_id.to_string(), i);
        let tag = format!("rlt{i}x{}", self.pid);
        let contact = format!("Contact: <sip:load{i}@{}>\r\n", self.me);
        let body = sdp(self.callee_rtp, i, self.ptime);
        let r = self.respond(m, "200 OK", Some(&tag), &contact, &body);
        self.send(&r, src);
        let c = &mut self.calls[i];
        c.callee_resp = Some(r);
        c.callee_from = Some(src);
        c.callee_acked = false;
        c.callee_retx_at = now + T1;
        c.callee_retx_iv = T1;
    }

    fn on_response(&mut self, m: &Msg, now: u64) {
        let Some(i) = m
            .get("call-id")
            .and_then(|id| index_in(id, "rtpload-"))
            .filter(|&i| i < self.calls.len())
        else {
            self.c.unknown += 1;
            return;
        };
        match m.cseq_method() {
            "INVITE" => {
                let to = m.get("to").unwrap_or("").to_string();
                if m.status < 200 {
                    if self.calls[i].st == St::Calling {
                        self.calls[i].st = St::Proceeding;
                    }
                } else if m.status < 300 {
                    let was = self.calls[i].st;
                    if was != St::Up {
                        let contact = m.get("contact").map(uri_of).unwrap_or("");
                        let c = &mut self.calls[i];
                        c.target_uri = if contact.is_empty() {
                            format!("sip:load{i}@{}", self.pbx)
                        } else {
                            contact.to_string()
                        };
                        c.target = uri_addr(&c.target_uri).unwrap_or(self.pbx);
                        c.to_hdr = to.clone();
                        c.caller_dest = sdp_dest(m.body);
                        c.st = St::Up;
                        if self.phase_media || was == St::Failed {
                            c.late_up = true;
                        }
                    }
                    // ACK every 200 (retransmissions too).
                    self.send_ack(i, &to, true);
                } else {
                    let c = &mut self.calls[i];
                    if c.st != St::Failed && c.st != St::Up {
                        c.st = St::Failed;
                        c.fail_code = m.status;
                        *self.c.fail_codes.entry(m.status).or_default() += 1;
                    }
                    self.send_ack(i, &to, false);
                }
            }
            "BYE" => {
                if m.status >= 200 && self.calls[i].bye_code == 0 {
                    self.calls[i].bye_code = m.status;
                    if m.status < 300 {
                        self.c.bye_200 += 1;
                    } else {
                        self.c.bye_other += 1;
                    }
                }
            }
            _ => self.c.unknown += 1,
        }
        let _ = now;
    }

    /// Retransmissions (INVITE until a response, our 200 until the ACK, BYE
    /// until a final response).
    fn timers(&mut self, now: u64) {
        let pbx = SocketAddr::V4(self.pbx);
        for i in 0..self.calls.len() {
            let c = &self.calls[i];
            if c.st == St::Calling && now >= c.retx_at {
                self.send(&c.invite, pbx);
                self.c.invite_retx += 1;
                let c = &mut self.calls[i];
                c.retx_iv = (c.retx_iv * 2).min(T2);
                c.retx_at = now + c.retx_iv;
            }
            let c = &self.calls[i];
            if let (Some(r), Some(src), false) = (&c.callee_resp, c.callee_from, c.callee_acked) {
                if now >= c.callee_retx_at && c.callee_retx_iv <= 32 * T1 {
                    self.send(r, src);
                    self.c.callee_200_retx += 1;
                    let c = &mut self.calls[i];
                    c.callee_retx_iv *= 2;
                    c.callee_retx_at = now + c.callee_retx_iv.min(T2);
                }
            }
            let c = &self.calls[i];
            if let (Some(b), 0) = (&c.bye, c.bye_code) {
                if now >= c.bye_at {
                    self.send(b, SocketAddr::V4(c.target));
                    self.c.bye_retx += 1;
                    let c = &mut self.calls[i];
                    c.bye_iv = (c.bye_iv * 2).min(T2);
                    c.bye_at = now + c.bye_iv;
                }
            }
        }
    }

    fn is_up(c: &Call) -> bool {
        c.st == St::Up && c.caller_dest.is_some() && c.callee_dest.is_some()
    }
}

// ---------------------------------------------------------------- the run

struct DirStats {
    name: &'static str,
    sent: u64,
    recv: u64,
    lost: u64,
    seq_breaks: u64,
    ts_breaks: u64,
    dups: u64,
    send_fail: u64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn main() {
    let a = parse_args();
    let pbx_mode = a.pbx.is_some();
    let ptime_ns = a.ptime * MS;
    let ticks = (a.seconds * 1000 / a.ptime).max(1);
    const BUFSZ: libc::c_int = 8 << 20;

    // Sockets: PBX mode one for SIP, one per RTP role; reflector mode one.
    let rtp_a = udp(a.rtp_port, "caller RTP", BUFSZ);
    let rtp_b = if pbx_mode {
        Some(udp(if a.rtp_port == 0 { 0 } else { a.rtp_port + 2 }, "callee RTP", BUFSZ))
    } else {
        None
    };
    let port_a = local(&rtp_a).port();
    let port_b = rtp_b.as_ref().map(|s| local(s).port()).unwrap_or(0);
    let mut sip = a.pbx.map(|p| {
        let s = udp(a.sip_port, "SIP", 4 << 20);
        let mut s = Sip::new(s, v4(p), a.calls, port_a, port_b);
        s.ptime = a.ptime;
        s
    });

    // ---- setup
    let t_setup0 = now_ns();
    let mut setup_ns = 0;
    if let Some(sip) = sip.as_mut() {
        eprintln!(
            "rtp-load: SIP 127.0.0.1:{} -> {}, RTP caller :{port_a} callee :{port_b}, {} calls at {}/s",
            sip.me.port(),
            sip.pbx,
            a.calls,
            a.setup_rate
        );
        let limit = t_setup0 + ((a.calls as f64 / a.setup_rate) * NS as f64) as u64 + 10 * NS;
        let fd = sip.sock.as_raw_fd();
        let mut next = 0usize;
        let mut last_scan = 0u64;
        loop {
            let now = now_ns();
            let mut burst = 0;
            while next < a.calls
                && burst < 256
                && now >= t_setup0 + ((next as f64 / a.setup_rate) * NS as f64) as u64
            {
                sip.send_invite(next, now);
                next += 1;
                burst += 1;
            }
            sip.poll(now);
            if now >= last_scan + 10 * MS {
                last_scan = now;
                sip.timers(now);
                let done = sip
                    .calls
                    .iter()
                    .filter(|c| Sip::is_up(c) || c.st == St::Failed)
                    .count();
                if done == a.calls && next == a.calls {
                    break;
                }
            }
            if now >= limit {
                break;
            }
            let due = if next < a.calls {
                (t_setup0 + ((next as f64 / a.setup_rate) * NS as f64) as u64).saturating_sub(now)
            } else {
                10 * MS
            };
            wait(&[fd], due.clamp(50_000, 10 * MS));
        }
        setup_ns = now_ns() - t_setup0;
        sip.phase_media = true;
    }

    // ---- streams
    let up: Vec<usize> = match &sip {
        Some(s) => (0..a.calls).filter(|&i| Sip::is_up(&s.calls[i])).collect(),
        None => (0..a.calls).collect(),
    };
    let (calls_up, calls_failed) = (up.len(), a.calls - up.len());
    if let Some(s) = &sip {
        eprintln!(
            "rtp-load: SETUP {calls_up} up, {calls_failed} failed in {:.2} s",
            setup_ns as f64 / NS as f64
        );
        if calls_failed > 0 {
            let mut by_state: HashMap<String, usize> = HashMap::new();
            for c in &s.calls {
                if !Sip::is_up(c) {
                    let k = match c.st {
                        St::Failed => format!("final {}", c.fail_code),
                        St::Up if c.caller_dest.is_none() => "200 without usable SDP".into(),
                        St::Up => "200 but no INVITE reached the callee".into(),
                        St::Proceeding => "1xx only".into(),
                        St::Calling => "no response".into(),
                        St::Pending => "not sent".into(),
                    };
                    *by_state.entry(k).or_default() += 1;
                }
            }
            eprintln!("rtp-load: failed calls by state: {by_state:?}");
        }
    }
    let nstreams = if pbx_mode { 2 * a.calls } else { a.calls };
    let mut tx: Vec<TxStream> = (0..nstreams)
        .map(|j| TxStream {
            dest: sin(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9)),
            ssrc: SSRC_BASE + j as u32,
            seq: (j as u16).wrapping_mul(7919),
            ts: (j as u32).wrapping_mul(104_729),
            sent: 0,
            send_fail: 0,
        })
        .collect();
    // Which streams each socket sends.
    let mut idx_a: Vec<usize> = Vec::new();
    let mut idx_b: Vec<usize> = Vec::new();
    match &sip {
        Some(s) => {
            for &i in &up {
                // `up` holds only calls with both media addresses (Sip::is_up).
                let (Some(caller), Some(callee)) = (s.calls[i].caller_dest, s.calls[i].callee_dest) else {
                    continue;
                };
                tx[2 * i].dest = sin(caller);
                tx[2 * i + 1].dest = sin(callee);
                idx_a.push(2 * i);
                idx_b.push(2 * i + 1);
            }
        }
        None => {
            let r = v4(a.reflector.unwrap_or_else(|| die("give exactly one of --pbx and --reflector")));
            for j in 0..nstreams {
                tx[j].dest = sin(r);
                idx_a.push(j);
            }
        }
    }
    let mut txer = Tx::new(a.ptime);
    let mut rx = Rx::new(nstreams, a.ptime);
    let fd_a = rtp_a.as_raw_fd();
    let fd_b = rtp_b.as_ref().map(|s| s.as_raw_fd());
    let fd_sip = sip.as_ref().map(|s| s.sock.as_raw_fd());
    let mut fds = vec![fd_a];
    fds.extend(fd_b);
    fds.extend(fd_sip);

    // ---- media
    eprintln!("MEDIA START");
    let _ = std::io::stderr().flush();
    std::thread::sleep(std::time::Duration::from_millis(a.marker_pause_ms));
    let cpu0 = cpu_self_ns();
    let t0 = now_ns();
    let t_stop = t0 + ticks * ptime_ns;
    let mut tick = 0u64;
    let (mut late_ticks, mut max_late) = (0u64, 0u64);
    let mut last_scan = t0;
    let drain = |rx: &mut Rx| {
        if pbx_mode {
            // Caller socket receives callee->caller (odd), callee socket the other.
            rx.drain(fd_a, Some(1), true);
            if let Some(fd_b) = fd_b {
                rx.drain(fd_b, Some(0), true);
            }
        } else {
            rx.drain(fd_a, None, false);
        }
    };
    if !idx_a.is_empty() {
        loop {
            let now = now_ns();
            let mut sent_now = 0;
            while tick < ticks && now >= t0 + tick * ptime_ns && now < t_stop && sent_now < 4 {
                let late = now - (t0 + tick * ptime_ns);
                max_late = max_late.max(late);
                if late > ptime_ns {
                    late_ticks += 1;
                }
                txer.tick(fd_a, &mut tx, &idx_a, tick == 0);
                if let Some(fb) = fd_b {
                    txer.tick(fb, &mut tx, &idx_b, tick == 0);
                }
                tick += 1;
                sent_now += 1;
                drain(&mut rx);
            }
            drain(&mut rx);
            if let Some(s) = sip.as_mut() {
                s.poll(now);
                if now >= last_scan + 10 * MS {
                    last_scan = now;
                    s.timers(now);
                }
            }
            if tick >= ticks {
                break;
            }
            // The media phase lasts --seconds: ticks a starved generator could
            // not send by then are skipped (reported), not sent late.
            if now_ns() >= t_stop {
                break;
            }
            let next = t0 + tick * ptime_ns;
            let now = now_ns();
            if next > now {
                wait(&fds, next - now);
            }
        }
    }
    let t_media_end = now_ns();
    // Drain what is still in flight: 1 s.
    while now_ns() < t_media_end + NS {
        drain(&mut rx);
        if let Some(s) = sip.as_mut() {
            s.poll(now_ns());
        }
        wait(&fds, 5 * MS);
    }
    drain(&mut rx);
    let media_ns = t_media_end - t0;
    let gen_cpu_ns = cpu_self_ns() - cpu0;
    let gen_wall_ns = now_ns() - t0;
    eprintln!("MEDIA END");
    let _ = std::io::stderr().flush();

    // ---- teardown
    let mut teardown_ns = 0;
    let mut bye_calls = 0usize;
    if let Some(s) = sip.as_mut() {
        let t = now_ns();
        let limit = t + 10 * NS;
        let to_bye: Vec<usize> = (0..a.calls).filter(|&i| s.calls[i].st == St::Up).collect();
        bye_calls = to_bye.len();
        let fd = s.sock.as_raw_fd();
        let mut next = 0usize;
        let mut last_scan = 0u64;
        loop {
            let now = now_ns();
            // BYEs at up to 5000/s.
            while next < to_bye.len() && now >= t + next as u64 * (NS / 5000) {
                s.send_bye(to_bye[next], now);
                next += 1;
            }
            s.poll(now);
            if now >= last_scan + 10 * MS {
                last_scan = now;
                s.timers(now);
                let done = next == to_bye.len()
                    && to_bye.iter().all(|&i| {
                        let c = &s.calls[i];
                        c.bye_code != 0 && (c.callee_bye || c.callee_call_id.is_none())
                    });
                if done {
                    break;
                }
            }
            if now >= limit {
                break;
            }
            wait(&[fd], MS);
        }
        teardown_ns = now_ns() - t;
    }

    // ---- report
    let dirs: Vec<(&'static str, usize)> = if pbx_mode {
        vec![("caller->callee", 0), ("callee->caller", 1)]
    } else {
        vec![("echo", 0)]
    };
    let mut ds: Vec<DirStats> = Vec::new();
    for (name, d) in dirs {
        let mut x = DirStats {
            name,
            sent: 0,
            recv: 0,
            lost: 0,
            seq_breaks: 0,
            ts_breaks: 0,
            dups: 0,
            send_fail: 0,
            p50: rx.hist[d].q_us(0.5),
            p99: rx.hist[d].q_us(0.99),
            p999: rx.hist[d].q_us(0.999),
            max: rx.hist[d].max as f64 / 1000.0,
        };
        for j in 0..nstreams {
            if pbx_mode && j % 2 != d {
                continue;
            }
            let (t, r) = (&tx[j], &rx.streams[j]);
            x.sent += t.sent;
            x.send_fail += t.send_fail;
            x.recv += r.recv;
            x.lost += t.sent.saturating_sub(r.recv - r.dups.min(r.recv));
            x.seq_breaks += r.seq_breaks;
            x.ts_breaks += r.ts_breaks;
            x.dups += r.dups;
        }
        ds.push(x);
    }
    let sum = |f: fn(&DirStats) -> u64| ds.iter().map(f).sum::<u64>();
    let (sent, recv, lost) = (sum(|d| d.sent), sum(|d| d.recv), sum(|d| d.lost));
    let (seqb, tsb) = (sum(|d| d.seq_breaks), sum(|d| d.ts_breaks));
    let media_s = media_ns as f64 / NS as f64;
    let gen_cpu_s = gen_cpu_ns as f64 / NS as f64;

    let mode = match (&a.pbx, &a.reflector) {
        (Some(p), _) => format!("pbx {p}"),
        (_, Some(r)) => format!("reflector {r}"),
        _ => unreachable!(),
    };
    println!(
        "rtp-load: {mode}, {} {}, ptime {} ms, media {} s",
        a.calls,
        if pbx_mode { "calls" } else { "streams" },
        a.ptime,
        a.seconds
    );
    if let Some(s) = &sip {
        println!(
            "  setup      {calls_up} up, {calls_failed} failed in {:.2} s (INVITEs {} + {} retransmitted; callee INVITEs {} + {} retransmitted; our 200 resent {}; failure codes {:?})",
            setup_ns as f64 / NS as f64,
            s.c.invites_sent,
            s.c.invite_retx,
            s.c.callee_invites,
            s.c.callee_invite_retx,
            s.c.callee_200_retx,
            s.c.fail_codes
        );
    }
    println!(
        "  media      {tick} of {ticks} ticks of {} ms sent in {media_s:.2} s (skipped {}; late > 1 ptime: {late_ticks}, max lateness {:.1} ms, send EAGAIN waits {})",
        a.ptime,
        ticks - tick,
        max_late as f64 / MS as f64,
        txer.eagain_waits
    );
    for d in &ds {
        println!(
            "  {:<15}sent {} received {} lost {} ({:.4}%) seq breaks {} ts breaks {} dups {} send failures {}; delay send->read by the generator p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs max {:.1} ms",
            d.name,
            d.sent,
            d.recv,
            d.lost,
            if d.sent > 0 { d.lost as f64 * 100.0 / d.sent as f64 } else { 0.0 },
            d.seq_breaks,
            d.ts_breaks,
            d.dups,
            d.send_fail,
            d.p50,
            d.p99,
            d.p999,
            d.max / 1000.0
        );
    }
    println!(
        "  total          sent {sent} received {recv} lost {lost} seq breaks {seqb} ts breaks {tsb} (foreign {} misrouted {})",
        rx.foreign, rx.misrouted
    );
    if let Some(s) = &sip {
        println!(
            "  teardown       {} BYEs for {bye_calls} calls ({} retransmitted): {} x 200, {} other; callee BYEs received {}; PBX BYEs to the caller {}; {:.2} s",
            s.c.byes_sent,
            s.c.bye_retx,
            s.c.bye_200,
            s.c.bye_other,
            s.c.callee_byes,
            s.c.caller_byes_from_pbx,
            teardown_ns as f64 / NS as f64
        );
    }
    println!(
        "  generator CPU  {gen_cpu_s:.2} s over the media phase and drain = {:.0}% of one core, {:.2} µs per packet sent+received",
        gen_cpu_ns as f64 * 100.0 / gen_wall_ns as f64,
        if sent + recv > 0 { gen_cpu_ns as f64 / 1000.0 / (sent + recv) as f64 } else { 0.0 }
    );
    if a.json {
        let dirs_json: Vec<String> = ds
            .iter()
            .map(|d| {
                format!(
                    "{{\"dir\":\"{}\",\"sent\":{},\"received\":{},\"lost\":{},\"seq_breaks\":{},\"ts_breaks\":{},\"dups\":{},\"send_failures\":{},\"delay_p50_us\":{:.0},\"delay_p99_us\":{:.0},\"delay_p999_us\":{:.0},\"delay_max_us\":{:.0}}}",
                    d.name, d.sent, d.recv, d.lost, d.seq_breaks, d.ts_breaks, d.dups, d.send_fail, d.p50, d.p99, d.p999, d.max
                )
            })
            .collect();
        let (byes, bye200, callee_byes) = sip
            .as_ref()
            .map(|s| (s.c.byes_sent, s.c.bye_200, s.c.callee_byes))
            .unwrap_or((0, 0, 0));
        println!(
            "{{\"mode\":\"{}\",\"calls\":{},\"calls_up\":{calls_up},\"calls_failed\":{calls_failed},\"setup_s\":{:.3},\"media_s\":{media_s:.3},\"teardown_s\":{:.3},\"ticks\":{ticks},\"ticks_sent\":{tick},\"late_ticks\":{late_ticks},\"max_late_ms\":{:.2},\"sent\":{sent},\"received\":{recv},\"lost\":{lost},\"seq_breaks\":{seqb},\"ts_breaks\":{tsb},\"foreign\":{},\"misrouted\":{},\"byes_sent\":{byes},\"bye_200\":{bye200},\"callee_byes\":{callee_byes},\"gen_cpu_s\":{gen_cpu_s:.3},\"directions\":[{}]}}",
            if pbx_mode { "pbx" } else { "reflector" },
            a.calls,
            setup_ns as f64 / NS as f64,
            teardown_ns as f64 / NS as f64,
            max_late as f64 / MS as f64,
            rx.foreign,
            rx.misrouted,
            dirs_json.join(",")
        );
    }
    let _ = std::io::stdout().flush();
    if calls_up == 0 {
        std::process::exit(3);
    }
}
