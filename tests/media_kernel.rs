//! Steady RTP streams relayed by the kernel (`[media] kernel_forwarding =
//! "auto"`, the eBPF program of `shards/bpf/rtp_fwd.bpf.c` on loopback):
//! the packets and the CDR's statistics are those of the user-space relay
//! for a stream with loss, a talkspurt, a new SSRC and a sequence wrap;
//! mute takes a stream back at once and the renumbered stream goes back to
//! the kernel; packets from a foreign port neither pass nor knock the
//! stream out of the kernel; streams between peers on the wire (a veth
//! pair into a network namespace of the test's own) come in and leave
//! again through the kernel; and where the kernel refuses the program, RTP
//! is relayed in user space and the log says why.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::media::*;
use common::*;

const GAP: Duration = Duration::from_millis(10);

fn pbx(forwarding: &str, launcher: Vec<String>) -> Pbx {
    Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "always""#.into(),
        media_extra: format!("kernel_forwarding = \"{forwarding}\""),
        launcher,
        ..PbxOptions::default()
    })
}

fn series(pbx: &Pbx, series: &str) -> u64 {
    let text = pbx.http_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in metrics:\n{text}"))
}

/// A proxied PCMU call from 1001 to a registered 1002: (caller, phone,
/// where the caller sends RTP, where the phone sends RTP).
fn call(pbx: &Pbx, call_id: &str) -> (Caller, Phone, SocketAddr, SocketAddr) {
    let mut phone = Phone::register(pbx, "1002", "secret1002");
    let mut caller = Caller::new(pbx, call_id);
    let offer = sdp(caller.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let answer = sdp(phone.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let mut invite = String::new();
    let r = caller.call("1002", &offer, || invite = phone.answer(&answer));
    assert_eq!(r.code, 200, "{}", r.raw);
    let offer_seen = invite.split_once("\r\n\r\n").unwrap().1.to_string();
    let (to_a, to_b) = (sdp_audio(&caller.answer), sdp_audio(&offer_seen));
    (caller, phone, to_a, to_b)
}

/// One packet to send: (seq, timestamp, ssrc, marker).
type Pkt = (u16, u32, u32, bool);

/// `n` packets of one source from `seq`/`ts`, the first with `marker`.
fn run(seq: u16, ts: u32, ssrc: u32, marker: bool, n: u16) -> Vec<Pkt> {
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

/// Sends `pkts` `GAP` apart from `from` to `to` while `at` collects what
/// arrives; returns it.
fn relay(from: &UdpSocket, to: SocketAddr, at: &UdpSocket, pkts: &[Pkt]) -> Vec<RtpIn> {
    let rx = at.try_clone().unwrap();
    let limit = GAP * pkts.len() as u32 + Duration::from_secs(3);
    let got = std::thread::spawn(move || receive(&rx, Duration::from_millis(600), limit));
    let start = Instant::now();
    for (i, &(seq, ts, ssrc, marker)) in pkts.iter().enumerate() {
        let payload = [0x55u8; 160];
        from.send_to(&rtp_packet(0, marker, seq, ts, ssrc, &payload), to)
            .unwrap();
        let due = start + GAP * (i as u32 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    got.join().unwrap()
}

/// The stream of the comparison: steady, loss of 3, a talkspurt after a
/// silence (marker, timestamp jump), a new SSRC, and a sequence wrap.
fn eventful_stream() -> Vec<Pkt> {
    let mut s = run(65_300, 1_000, 0xaaaa, true, 40);
    s.extend(run(65_343, 1_000 + 43 * 160, 0xaaaa, false, 40)); // 3 lost
    s.extend(run(65_383, 1_000 + 200 * 160, 0xaaaa, true, 40)); // talkspurt
    s.extend(run(7, 555_000, 0xbbbb, false, 40)); // new source
    s.extend(run(65_520, 600_000, 0xcccc, false, 40)); // wraps at 65535
    s
}

/// What a receiver can tell apart: seq, timestamp, SSRC, marker.
fn seen(pkts: &[RtpIn]) -> Vec<Pkt> {
    pkts.iter()
        .map(|p| (p.seq, p.ts, p.ssrc, p.marker))
        .collect()
}

/// The caller's track in the CDR, without the jitter (the kernel measures
/// arrival in ns, user space in ms).
fn caller_track(pbx: &Pbx, call_id: &str) -> serde_json::Value {
    let c = wait_cdr(pbx, call_id);
    let mut rtp = c["metadata"]["tracks"][0]["rtp"].clone();
    rtp.as_object_mut().unwrap().remove("jitterMs");
    rtp
}

#[test]
fn the_kernel_relays_what_user_space_would_and_counts_the_same() {
    let stream = eventful_stream();
    let mut results = Vec::new();
    for mode in ["off", "auto"] {
        let pbx = pbx(mode, Vec::new());
        let kernel = series(&pbx, "shardpbx_rtp_forwarding{path=\"kernel\"}");
        assert_eq!(
            kernel,
            u64::from(mode == "auto"),
            "kernel path with kernel_forwarding = {mode} (this machine allows eBPF)"
        );
        let call_id = format!("kernel-{mode}@test");
        let (mut caller, phone, to_a, _) = call(&pbx, &call_id);
        let got = relay(&caller.rtp, to_a, &phone.rtp, &stream);
        let in_kernel = series(&pbx, "shardpbx_rtp_kernel_total{shard=\"0\"}");
        assert_eq!(caller.bye().code, 200);
        assert!(phone.accept_bye(Duration::from_secs(3)));
        let track = caller_track(&pbx, &call_id);
        results.push((mode, seen(&got), track, in_kernel));
    }
    let (_, user_pkts, user_track, user_kernel) = &results[0];
    let (_, kern_pkts, kern_track, kern_kernel) = &results[1];
    assert_eq!(*user_kernel, 0);
    // A handover needs a tick (100 ms = 10 packets) of steady stream and no
    // packet of it still waiting in the relay's socket (a busy machine
    // delays it): some of the 40-packet runs go through the kernel.
    assert!(
        *kern_kernel > 0,
        "only {kern_kernel} of {} packets relayed by the kernel",
        stream.len()
    );
    assert_eq!(user_pkts.len(), stream.len(), "user space relays all");
    assert_eq!(kern_pkts, user_pkts, "same packets, same order");
    assert_eq!(kern_track, user_track, "same statistics");
    assert_eq!(user_track["lost"], 3, "{user_track}");
    assert_eq!(user_track["packets"], stream.len(), "{user_track}");
}

#[test]
fn mute_takes_a_stream_back_at_once_and_the_renumbered_stream_returns_to_the_kernel() {
    let pbx = pbx("auto", Vec::new());
    let (mut caller, phone, to_a, _) = call(&pbx, "kernel-mute@test");
    let kernel = || series(&pbx, "shardpbx_rtp_kernel_total{shard=\"0\"}");
    let before = relay(&caller.rtp, to_a, &phone.rtp, &run(100, 0, 7, true, 50));
    assert_eq!(before.len(), 50);
    let k0 = kernel();
    assert!(k0 > 0, "the steady stream went to the kernel");

    let mute = |action: &str| {
        let body = format!(r#"{{"action":"{action}","track_id":"audio-0"}}"#);
        let (code, text) = call_command(&pbx, "kernel-mute@test", &body);
        assert_eq!(code, 200, "{text}");
    };
    mute("mute");
    let muted = relay(
        &caller.rtp,
        to_a,
        &phone.rtp,
        &run(150, 50 * 160, 7, false, 30),
    );
    assert!(muted.is_empty(), "muted audio relayed: {:?}", seen(&muted));
    mute("unmute");
    let after = relay(
        &caller.rtp,
        to_a,
        &phone.rtp,
        &run(180, 80 * 160, 7, false, 60),
    );
    assert_eq!(after.len(), 60);
    // Renumbered across the mute (150.. -> 150..), a marker where it resumed,
    // then continuous: the kernel applies the same offset.
    assert_eq!((after[0].seq, after[0].marker), (150, true));
    assert_continuous(&after, 160, "after unmute");
    assert!(
        kernel() > k0,
        "the renumbered stream went back to the kernel ({k0} -> {})",
        kernel()
    );
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
}

#[test]
fn packets_from_a_foreign_port_neither_pass_nor_take_the_stream_out_of_the_kernel() {
    let pbx = pbx("auto", Vec::new());
    let (mut caller, phone, to_a, _) = call(&pbx, "kernel-spray@test");
    let warm = relay(&caller.rtp, to_a, &phone.rtp, &run(1, 0, 9, true, 30));
    assert_eq!(warm.len(), 30);
    let k0 = series(&pbx, "shardpbx_rtp_kernel_total{shard=\"0\"}");
    assert!(k0 > 0);

    // The attacker: same IP (the one the caller's SDP names), another
    // port, packets that would continue the stream.
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sprayer = std::thread::spawn({
        let attacker = attacker.try_clone().unwrap();
        move || {
            for i in 0..200u16 {
                let p = rtp_packet(0, false, 31 + i, 30 * 160, 9, &[0xee; 160]);
                attacker.send_to(&p, to_a).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let during = relay(
        &caller.rtp,
        to_a,
        &phone.rtp,
        &run(31, 30 * 160, 9, false, 60),
    );
    sprayer.join().unwrap();
    assert!(
        during.iter().all(|p| p.payload.iter().all(|&b| b == 0x55)),
        "a sprayed packet was relayed"
    );
    assert_eq!(during.len(), 60, "the caller's own stream is intact");
    assert_continuous(&during, 160, "during the spray");
    assert!(series(&pbx, "shardpbx_rtp_unlatched_source_total{shard=\"0\"}") >= 190);
    // Whatever of it the kernel relayed, it did with the spray going on.
    let k1 = series(&pbx, "shardpbx_rtp_kernel_total{shard=\"0\"}");
    assert!(k1 > k0, "the stream stayed in the kernel ({k0} -> {k1})");
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
}

#[test]
fn without_bpf_rights_rtp_is_relayed_in_user_space_and_the_log_says_why() {
    let Ok(capsh) = which("capsh") else {
        panic!("capsh missing: scripts/install-deps.sh installs libcap2-bin");
    };
    let launcher = vec![
        capsh,
        "--drop=cap_bpf,cap_sys_admin,cap_perfmon,cap_net_admin".into(),
        "--".into(),
        "-c".into(),
        "exec \"$0\" \"$@\"".into(),
    ];
    let pbx = pbx("auto", launcher);
    assert_eq!(series(&pbx, "shardpbx_rtp_forwarding{path=\"user\"}"), 1);
    let (mut caller, phone, to_a, _) = call(&pbx, "kernel-refused@test");
    let got = relay(&caller.rtp, to_a, &phone.rtp, &run(1, 0, 5, true, 40));
    assert_eq!(got.len(), 40);
    assert_continuous(&got, 160, "user space");
    let log = pbx.log_text();
    assert_eq!(
        log.matches("RTP is relayed in user space only").count(),
        1,
        "{log}"
    );
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
}

/// A network namespace of the test's own, joined to this one by a veth
/// pair: 198.18.N.1 (the PBX) on this side, .2 and .4 (two peers) in
/// the namespace (RFC 2544's benchmarking range: public addresses, on no
/// real network). Removed, with the pair, on drop.
struct PeerNet {
    ns: String,
    here: String,
    net: String,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PeerNet {
    fn new() -> PeerNet {
        let pid = std::process::id();
        let net = format!("198.18.{}", pid % 250 + 1);
        let (ns, here, there) = (
            format!("spk-{pid}"),
            format!("spk{pid}a"),
            format!("spk{pid}b"),
        );
        let p = PeerNet {
            ns: ns.clone(),
            here: here.clone(),
            net: net.clone(),
        };
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &here, "type", "veth", "peer", "name", &there]);
        ip(&["link", "set", &there, "netns", &ns]);
        ip(&["addr", "add", &format!("{net}.1/24"), "dev", &here]);
        ip(&["link", "set", &here, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{net}.2/24"), "dev", &there]);
        inside(&["addr", "add", &format!("{net}.4/24"), "dev", &there]);
        inside(&["link", "set", &there, "up"]);
        inside(&["link", "set", "lo", "up"]);
        p
    }

    /// A UDP socket on `.host` in the namespace (made by a thread that
    /// joined the namespace; the socket stays there). The one `unsafe` of
    /// the tests: `setns` has no safe wrapper in std.
    #[allow(unsafe_code)]
    fn socket(&self, host: u8) -> UdpSocket {
        let path = format!("/run/netns/{}", self.ns);
        let addr = format!("{}.{host}:0", self.net);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on an open namespace fd; it changes this
            // thread's network namespace only.
            assert_eq!(
                unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            UdpSocket::bind(addr).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        // Deleting the namespace deletes the pair; the link first in case.
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.here])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .output();
    }
}

#[test]
fn streams_from_the_wire_are_relayed_back_out_by_the_kernel() {
    // Both phones' media are on the other side of a veth pair (the host's
    // one network, as on a server with one NIC): each stream comes in
    // through the pair and leaves through it again.
    let net = PeerNet::new();
    let pbx = Pbx::start(PbxOptions {
        addr: "0.0.0.0".into(),
        proxy_extra: format!("media_proxy = \"always\"\nexternal_ip = \"{}.1\"", net.net),
        ..PbxOptions::default()
    });
    let far = net.socket(2);
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "kernel-veth@test");
    caller.rtp = net.socket(4);
    let offer = sdp(caller.rtp_port(), &[PCMU], "a=sendrecv\r\n")
        .replace("127.0.0.1", &format!("{}.4", net.net));
    let far_addr = far.local_addr().unwrap();
    let answer = sdp(far_addr.port(), &[PCMU], "a=sendrecv\r\n")
        .replace("127.0.0.1", &far_addr.ip().to_string());
    let mut invite = String::new();
    let r = caller.call("1002", &offer, || invite = phone.answer(&answer));
    assert_eq!(r.code, 200, "{}", r.raw);
    let to_a = sdp_audio(&caller.answer);
    let to_b = sdp_audio(invite.split_once("\r\n\r\n").unwrap().1);
    assert_eq!(to_b.ip().to_string(), format!("{}.1", net.net));

    let there = {
        let (caller_rtp, far) = (caller.rtp.try_clone().unwrap(), far.try_clone().unwrap());
        std::thread::spawn(move || relay(&far, to_b, &caller_rtp, &run(500, 0, 0xbb, true, 80)))
    };
    let here = relay(&caller.rtp, to_a, &far, &run(100, 0, 0xaa, true, 80));
    let back = there.join().unwrap();
    for (what, got, from) in [("to the far side", &here, to_b), ("back", &back, to_a)] {
        assert_eq!(got.len(), 80, "{what}");
        assert_continuous(got, 160, what);
        assert!(got.iter().all(|p| p.from.port() == from.port()), "{what}");
    }
    let way = |w: &str| {
        series(
            &pbx,
            &format!("shardpbx_rtp_kernel_packets_total{{way=\"{w}\"}}"),
        )
    };
    assert!(
        way("out") >= 80,
        "{} left through the pair in the kernel",
        way("out")
    );
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
}

/// Sends, from a raw socket, `n` RTP packets that continue `ssrc`'s stream
/// from `seq` and `ts` at `from` to `to`, whose UDP header claims a length
/// of `udp_len` (checksum 0: none).
fn forge(from: SocketAddr, to: SocketAddr, ssrc: u32, seq: u16, ts: u32, n: u16, udp_len: u16) {
    let script = r#"
import socket, struct, sys
src, sport, dst, dport, ssrc, seq, ts, n, ulen = sys.argv[1:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(int(n)):
    rtp = struct.pack("!BBHII", 0x80, 0, (int(seq) + i) & 0xffff, (int(ts) + 160 * i) & 0xffffffff, int(ssrc)) + b"\x66" * 160
    udp = struct.pack("!HHHH", int(sport), int(dport), int(ulen), 0)
    total = 20 + len(udp) + len(rtp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(ip + udp + rtp, (dst, 0))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .args([
            from.ip().to_string(),
            from.port().to_string(),
            to.ip().to_string(),
            to.port().to_string(),
            ssrc.to_string(),
            seq.to_string(),
            ts.to_string(),
            n.to_string(),
            udp_len.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_forged_udp_length_is_neither_relayed_nor_counted() {
    let pbx = pbx("auto", Vec::new());
    let (mut caller, phone, to_a, _) = call(&pbx, "kernel-forged@test");
    let warm = relay(&caller.rtp, to_a, &phone.rtp, &run(1, 0, 3, true, 30));
    assert_eq!(warm.len(), 30);
    assert!(series(&pbx, "shardpbx_rtp_kernel_total{shard=\"0\"}") > 0);
    // The next packets of the stream, from the caller's own address, with
    // UDP lengths that lie (shorter than the header, longer than the packet).
    let from = caller.rtp.local_addr().unwrap();
    forge(from, to_a, 3, 31, 30 * 160, 5, 4);
    forge(from, to_a, 3, 31, 30 * 160, 5, 60_000);
    let rest = relay(
        &caller.rtp,
        to_a,
        &phone.rtp,
        &run(31, 30 * 160, 3, false, 30),
    );
    assert!(
        rest.iter().all(|p| p.payload.iter().all(|&b| b == 0x55)),
        "a forged packet was relayed"
    );
    assert_eq!(rest.len(), 30);
    assert_continuous(&rest, 160, "after the forgeries");
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
    let track = caller_track(&pbx, "kernel-forged@test");
    assert_eq!(track["packets"], 60, "{track}");
    assert_eq!(track["bytes"], 60 * 172, "{track}");
}
