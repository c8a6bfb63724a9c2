//! Test endpoints that carry media: a caller and a registered phone that
//! speak enough SIP for a call (INVITE with SDP, 200, ACK, re-INVITE, BYE)
//! and send and receive real RTP over loopback UDP.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;

/// One RTP packet as received.
#[derive(Clone, Debug)]
pub struct RtpIn {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    pub from: SocketAddr,
}

pub fn rtp_packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(pt | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Sends `payloads` as one RTP stream (seq from `seq0`, timestamp step
/// `ts_step`) `gap` apart.
pub fn send_stream(
    sock: &UdpSocket,
    dest: SocketAddr,
    pt: u8,
    seq0: u16,
    ts_step: u32,
    gap: Duration,
    payloads: &[Vec<u8>],
) {
    let start = Instant::now();
    for (i, p) in payloads.iter().enumerate() {
        let pkt = rtp_packet(
            pt,
            i == 0,
            seq0.wrapping_add(i as u16),
            1000 + ts_step * i as u32,
            0x5eed_0000 | u32::from(pt),
            p,
        );
        sock.send_to(&pkt, dest).unwrap();
        // Pace against the start, so the stream keeps its rate.
        let due = start + gap * (i as u32 + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Receives RTP until `quiet` passes without a packet or `limit` runs out.
pub fn receive(sock: &UdpSocket, quiet: Duration, limit: Duration) -> Vec<RtpIn> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(quiet)).unwrap();
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if n >= 12 => out.push(RtpIn {
                pt: buf[1] & 0x7f,
                marker: buf[1] & 0x80 != 0,
                seq: u16::from_be_bytes([buf[2], buf[3]]),
                ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                payload: buf[12..n].to_vec(),
                from,
            }),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

/// An SDP offer or answer for audio on `port` of 127.0.0.1.
pub fn sdp(port: u16, pts: &[(u8, &str)], extra: &str) -> String {
    let fmts: Vec<String> = pts.iter().map(|(pt, _)| pt.to_string()).collect();
    let maps: String = pts
        .iter()
        .map(|(pt, map)| format!("a=rtpmap:{pt} {map}\r\n"))
        .collect();
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n{maps}a=ptime:20\r\n{extra}",
        fmts.join(" ")
    )
}

pub const PCMU: (u8, &str) = (0, "PCMU/8000");
pub const PCMA: (u8, &str) = (8, "PCMA/8000");
pub const OPUS: (u8, &str) = (111, "opus/48000/2");

/// (address, port) of the first audio stream of an SDP body.
pub fn sdp_audio(body: &str) -> SocketAddr {
    let ip = body
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .expect("c= line");
    let port = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .expect("m=audio line");
    format!("{}:{}", ip.trim(), port).parse().unwrap()
}

fn body_of(text: &str) -> String {
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn header_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn sip_response(
    req: &str,
    code: u16,
    reason: &str,
    to_tag: &str,
    contact: &str,
    body: &str,
) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for l in req.lines() {
            if let Some((n, _)) = l.split_once(':') {
                if n.trim().eq_ignore_ascii_case(name) {
                    out.push_str(l.trim_end());
                    out.push_str("\r\n");
                }
            }
        }
    }
    let to = header_of(req, "To").unwrap_or_default();
    if to.contains("tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    out.push_str(&format!("Contact: <{contact}>\r\n"));
    if body.is_empty() {
        out.push_str("Content-Length: 0\r\n\r\n");
    } else {
        out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    out
}

/// A registered phone that answers calls and re-INVITEs, and hangs up or
/// accepts BYE.
pub struct Phone {
    pub sip: Uac,
    pub rtp: UdpSocket,
    pub user: String,
    /// The last request of the current call (INVITE or re-INVITE) we answered.
    pub last_invite: String,
}

impl Phone {
    pub fn register(pbx: &Pbx, user: &str, pass: &str) -> Phone {
        let sip = Uac::new(pbx.sip);
        let contact = format!("<sip:{user}@{}>", sip.local);
        let r = register_with_auth(
            &sip,
            user,
            pass,
            &format!("reg-{user}-{}", sip.local.port()),
            1,
            &contact,
            Some(300),
        );
        assert_eq!(r.code, 200, "registration of {user}: {}", r.raw);
        Phone {
            sip,
            rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            user: user.into(),
            last_invite: String::new(),
        }
    }

    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }

    /// Waits for a request whose method is `method`; answers anything else
    /// in the way (e.g. an OPTIONS) with 200.
    pub fn wait_request(&self, method: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let Some(text) = self.sip.recv(Duration::from_millis(200)) else {
                continue;
            };
            if text.starts_with(&format!("{method} ")) {
                return Some(text);
            }
        }
        None
    }

    /// Waits for an INVITE and answers 200 with `answer_sdp`; waits for the
    /// ACK. Returns the INVITE.
    pub fn answer(&mut self, answer_sdp: &str) -> String {
        let invite = self
            .wait_request("INVITE", Duration::from_secs(10))
            .expect("the phone got no INVITE");
        let contact = format!("sip:{}@{}", self.user, self.sip.local);
        self.sip
            .send(&sip_response(&invite, 180, "Ringing", "ph1", &contact, ""));
        self.sip.send(&sip_response(
            &invite, 200, "OK", "ph1", &contact, answer_sdp,
        ));
        self.wait_request("ACK", Duration::from_secs(5))
            .expect("no ACK for the phone's 200");
        self.last_invite = invite.clone();
        invite
    }

    /// Sends 180 Ringing for `invite`.
    pub fn ring(&self, invite: &str) {
        let contact = format!("sip:{}@{}", self.user, self.sip.local);
        self.sip
            .send(&sip_response(invite, 180, "Ringing", "ph1", &contact, ""));
    }

    /// Answers a BYE with 200; true when one came within `limit`.
    pub fn accept_bye(&self, limit: Duration) -> bool {
        match self.wait_request("BYE", limit) {
            Some(bye) => {
                let contact = format!("sip:{}@{}", self.user, self.sip.local);
                self.sip
                    .send(&sip_response(&bye, 200, "OK", "ph1", &contact, ""));
                true
            }
            None => false,
        }
    }
}

/// The calling side: 1001 with digest auth, an RTP socket, the dialog.
pub struct Caller {
    pub sip: Uac,
    pub rtp: UdpSocket,
    pub call_id: String,
    to_header: String,
    remote_target: String,
    cseq: u32,
    /// The SDP of the 200 OK (the relay's, when proxied).
    pub answer: String,
}

impl Caller {
    pub fn new(pbx: &Pbx, call_id: &str) -> Caller {
        Caller {
            sip: Uac::new(pbx.sip),
            rtp: UdpSocket::bind("127.0.0.1:0").unwrap(),
            call_id: call_id.into(),
            to_header: String::new(),
            remote_target: String::new(),
            cseq: 0,
            answer: String::new(),
        }
    }

    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }

    fn invite_text(&self, to: &str, cseq: u32, auth: Option<&str>, offer: &str) -> String {
        format!(
            "INVITE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=c1\r\nTo: <sip:{to}@pbx.test>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{me}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
            me = self.sip.local,
            b = branch(),
            cid = self.call_id,
            auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default(),
            len = offer.len(),
        )
    }

    /// INVITE (407, answer with credentials) with `offer`; waits for the 200
    /// while `during` runs (the callee answers in it), ACKs it.
    pub fn call(&mut self, to: &str, offer: &str, during: impl FnOnce()) -> Response {
        let ch = self.sip.request(&self.invite_text(to, 1, None, offer));
        assert_eq!(ch.code, 407, "{}", ch.raw);
        let auth = digest_auth(
            ch.header("Proxy-Authenticate").unwrap(),
            "1001",
            "secret1001",
            "INVITE",
            &format!("sip:{to}@pbx.test"),
            1,
        );
        self.sip.send(&self.invite_text(to, 2, Some(&auth), offer));
        during();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Some(text) = self.sip.recv(Duration::from_millis(500)) else {
                continue;
            };
            let r = Response::parse(&text);
            if r.code >= 200 && r.header("CSeq").is_some_and(|c| c.starts_with("2 ")) {
                if r.code < 300 {
                    self.to_header = r.header("To").unwrap_or_default().to_string();
                    self.remote_target = r
                        .header("Contact")
                        .unwrap_or_default()
                        .trim_matches(|c| c == '<' || c == '>')
                        .to_string();
                    self.cseq = 2;
                    self.answer = body_of(&text);
                    self.send_in_dialog("ACK", 2, "");
                }
                return r;
            }
        }
        panic!("no final response to the INVITE");
    }

    fn send_in_dialog(&self, method: &str, cseq: u32, body: &str) {
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        self.sip.send(&format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=c1\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:1001@{me}>\r\n{ct}Content-Length: {len}\r\n\r\n{body}",
            target = self.remote_target,
            me = self.sip.local,
            b = branch(),
            to = self.to_header,
            cid = self.call_id,
            len = body.len(),
        ));
    }

    /// A re-INVITE with `offer`, answered by `during` on the other side;
    /// returns the SDP of the 200 and ACKs it.
    pub fn reinvite(&mut self, offer: &str, during: impl FnOnce()) -> String {
        self.cseq += 1;
        let cseq = self.cseq;
        self.send_in_dialog("INVITE", cseq, offer);
        during();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Some(text) = self.sip.recv(Duration::from_millis(500)) else {
                continue;
            };
            let r = Response::parse(&text);
            if r.code >= 200
                && r.header("CSeq")
                    .is_some_and(|c| c.starts_with(&format!("{cseq} ")))
            {
                assert_eq!(r.code, 200, "re-INVITE: {}", r.raw);
                self.send_in_dialog("ACK", cseq, "");
                return body_of(&text);
            }
        }
        panic!("no answer to the re-INVITE");
    }

    /// Sends `method` in the dialog with CSeq `cseq` (not counting up: a
    /// replay when `cseq` was used) and returns its final response.
    pub fn replay_in_dialog(&self, method: &str, cseq: u32) -> Response {
        self.send_in_dialog(method, cseq, "");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(text) = self.sip.recv(Duration::from_millis(500)) {
                let r = Response::parse(&text);
                if r.header("CSeq").is_some_and(|c| c.contains(method)) && r.code >= 200 {
                    return r;
                }
            }
        }
        panic!("no answer to {method}");
    }

    pub fn bye(&mut self) -> Response {
        self.cseq += 1;
        let cseq = self.cseq;
        self.send_in_dialog("BYE", cseq, "");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(text) = self.sip.recv(Duration::from_millis(500)) {
                let r = Response::parse(&text);
                if r.header("CSeq").is_some_and(|c| c.contains("BYE")) && r.code >= 200 {
                    return r;
                }
            }
        }
        panic!("no answer to BYE");
    }

    /// Waits for a BYE from the appliance and answers it.
    pub fn accept_bye(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(text) = self.sip.recv(Duration::from_millis(200)) {
                if text.starts_with("BYE ") {
                    self.sip.send(&sip_response(
                        &text,
                        200,
                        "OK",
                        "c1",
                        "sip:1001@127.0.0.1",
                        "",
                    ));
                    return true;
                }
            }
        }
        false
    }
}

/// A PCMU call from 1001 to `phone` (registered as 1002), answered and
/// ACKed; media as each side's SDP says (direct unless the config proxies it).
pub fn answered_call(pbx: &Pbx, phone: &mut Phone, call_id: &str) -> Caller {
    let mut caller = Caller::new(pbx, call_id);
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let r = caller.call("1002", &offer, || {
        phone.answer(&answer);
    });
    assert_eq!(r.code, 200, "{}", r.raw);
    caller
}

/// Sends `a_payloads` from `a` to `a_dest` and `b_payloads` from `b` to
/// `b_dest` at the same time, `gap` apart; returns what each side received
/// (a's, b's).
#[allow(clippy::too_many_arguments)]
pub fn exchange(
    a: &UdpSocket,
    a_dest: SocketAddr,
    a_pt: u8,
    a_payloads: Vec<Vec<u8>>,
    b: &UdpSocket,
    b_dest: SocketAddr,
    b_pt: u8,
    b_payloads: Vec<Vec<u8>>,
    ts_step: u32,
    gap: Duration,
) -> (Vec<RtpIn>, Vec<RtpIn>) {
    let a2 = a.try_clone().unwrap();
    let b2 = b.try_clone().unwrap();
    let a3 = a.try_clone().unwrap();
    let b3 = b.try_clone().unwrap();
    let send_time = gap * a_payloads.len().max(b_payloads.len()) as u32;
    let ra = std::thread::spawn(move || {
        receive(
            &a3,
            Duration::from_millis(800),
            send_time + Duration::from_secs(5),
        )
    });
    let rb = std::thread::spawn(move || {
        receive(
            &b3,
            Duration::from_millis(800),
            send_time + Duration::from_secs(5),
        )
    });
    let sa =
        std::thread::spawn(move || send_stream(&a2, a_dest, a_pt, 100, ts_step, gap, &a_payloads));
    let sb = std::thread::spawn(move || {
        send_stream(&b2, b_dest, b_pt, 40000, ts_step, gap, &b_payloads);
    });
    sa.join().unwrap();
    sb.join().unwrap();
    (ra.join().unwrap(), rb.join().unwrap())
}

/// Sequence numbers step by one and timestamps by `ts_step`.
pub fn assert_continuous(pkts: &[RtpIn], ts_step: u32, what: &str) {
    for w in pkts.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "{what}: seq break {:?} -> {:?}",
            w[0].seq,
            w[1].seq
        );
        assert_eq!(
            w[1].ts,
            w[0].ts.wrapping_add(ts_step),
            "{what}: ts break at seq {}",
            w[1].seq
        );
    }
}

/// G.711 µ-law encoding of one sample (test side).
pub fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = (s + BIAS).min(32635 + BIAS);
    let mut exp = 7;
    let mut mask = 0x4000;
    while exp > 0 && s & mask == 0 {
        exp -= 1;
        mask >>= 1;
    }
    let mant = (s >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) | mant) as u8
}

/// G.711 A-law encoding of one sample (test side).
pub fn alaw(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3;
    let sign = if s >= 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s - 1;
    }
    let seg_ends = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let seg = seg_ends.iter().position(|&e| s <= e).unwrap_or(8);
    let a = if seg >= 8 {
        0x7f
    } else if seg < 2 {
        (seg << 4) as i32 | ((s >> 1) & 0xf)
    } else {
        (seg << 4) as i32 | ((s >> seg) & 0xf)
    };
    ((a | sign) ^ 0x55) as u8
}

/// `frames` 20 ms frames (160 samples) of a sine at `hz`, encoded with `enc`.
pub fn tone_frames(hz: f64, frames: usize, enc: fn(i16) -> u8) -> Vec<Vec<u8>> {
    (0..frames)
        .map(|f| {
            (0..160)
                .map(|i| {
                    let n = (f * 160 + i) as f64;
                    enc((8000.0 * (2.0 * std::f64::consts::PI * hz * n / 8000.0).sin()) as i16)
                })
                .collect()
        })
        .collect()
}

/// Power of `hz` in `samples` (8 kHz) by the Goertzel algorithm.
pub fn goertzel(samples: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// A 200 OK to `req` (from the phone) carrying `body`.
pub fn ok_with_sdp(req: &str, body: &str) -> String {
    sip_response(req, 200, "OK", "ph1", "sip:1002@127.0.0.1", body)
}

/// A PCMU call from 1001 to `phone` (1002) with `frames` 20 ms frames of a
/// tone each way (440 Hz from the caller, 1000 Hz back), then a BYE from
/// the caller. Returns the INVITE the phone got.
pub fn call_with_tones(pbx: &Pbx, phone: &mut Phone, call_id: &str, frames: usize) -> String {
    let mut caller = Caller::new(pbx, call_id);
    let offer = sdp(caller.rtp_port(), &[PCMU], "");
    let answer = sdp(phone.rtp_port(), &[PCMU], "");
    let mut invite = String::new();
    let r = caller.call("1002", &offer, || invite = phone.answer(&answer));
    assert_eq!(r.code, 200, "{}", r.raw);
    let to_b = sdp_audio(invite.split_once("\r\n\r\n").unwrap().1);
    let to_a = sdp_audio(&caller.answer);
    exchange(
        &caller.rtp,
        to_a,
        0,
        tone_frames(440.0, frames, ulaw),
        &phone.rtp,
        to_b,
        0,
        tone_frames(1000.0, frames, ulaw),
        160,
        Duration::from_millis(20),
    );
    let r = caller.bye();
    assert_eq!(r.code, 200, "{}", r.raw);
    phone.accept_bye(Duration::from_secs(3));
    invite
}

/// Samples of the left and right channel of an 8 kHz 16-bit stereo WAV.
pub fn read_wav(path: &std::path::Path) -> (Vec<i16>, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 2, "stereo");
    assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 8000);
    assert_eq!(u16::from_le_bytes([bytes[34], bytes[35]]), 16);
    let data_len = u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize;
    assert_eq!(data_len + 44, bytes.len(), "header covers the whole file");
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for f in bytes[44..].chunks_exact(4) {
        l.push(i16::from_le_bytes([f[0], f[1]]));
        r.push(i16::from_le_bytes([f[2], f[3]]));
    }
    (l, r)
}

pub fn recording_of(pbx: &Pbx, call_id: &str) -> (serde_json::Value, std::path::PathBuf) {
    let c = wait_cdr(pbx, call_id);
    let rec = &c["recorder"][0];
    assert_eq!(rec["trackId"], "mixed", "{c}");
    let rel = rec["path"].as_str().unwrap();
    let path = pbx.dir.path().join("data").join(rel);
    // The writer closes the file just after the CDR is written.
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) != rec["size"].as_u64().unwrap() {
        assert!(
            Instant::now() < deadline,
            "{} never reached {} bytes",
            path.display(),
            rec["size"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (c, path)
}
