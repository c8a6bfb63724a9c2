//! The WebRTC transport of one leg (`media::webrtc::Transport`: ICE-lite
//! STUN checks, the DTLS gate, deadlines, events). One transport per input,
//! with fixed credentials (those of RFC 5769 2.1, so its sample request is
//! a valid check), a fixed peer fingerprint and one identity made once
//! (`OnceLock`); role and peer `a=setup` from the first byte. Then
//! operations, each from one of four sources (IPv4, IPv6, IPv4-mapped)
//! after a fuzzer-chosen step of time: a raw datagram, a DTLS-range
//! datagram, a Binding request built and signed here (attributes, flags,
//! transaction id, an extra attribute chosen by the fuzzer; optionally a
//! wrong password or username, no MESSAGE-INTEGRITY or FINGERPRINT, a
//! flipped byte), a replay of the last datagram, or a timer. Checked:
//!
//! - every transmit is either a STUN Binding success response (0x0101) to
//!   the source of the datagram just handled, with that datagram's
//!   transaction id, no longer than it, whose XOR-MAPPED-ADDRESS is that
//!   source, whose MESSAGE-INTEGRITY (our pwd) and FINGERPRINT verify; or
//!   DTLS (first byte 20..=63) to an address that passed a check;
//! - a check built here is answered exactly when it is valid (right
//!   username and password, MESSAGE-INTEGRITY and FINGERPRINT, nothing
//!   flipped) and the leg has not failed; a valid nominating check from a
//!   new address selects it; `dropped` counts exactly the STUN and DTLS
//!   datagrams not taken; `handle` takes exactly STUN and DTLS;
//! - `selected()` only changes to the source of a datagram that was just
//!   answered, so it is always an address from which a check came;
//! - no event before the first datagram but the ICE timeout at its
//!   deadline; `Selected(a)` names the selected address; never `Keys`
//!   (nobody here has the certificate of the fingerprint); one `Failed`,
//!   equal to the state; `IceTimeout` only past the ICE deadline without
//!   selection, `DtlsTimeout` only `DTLS_TIMEOUT_MS` after DTLS started;
//! - the state only moves forward and never leaves `Failed`; once failed,
//!   nothing is sent and `poll_timeout` is `None` (and only then).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use shards::media::webrtc::{
    classify, Event, Failure, Fingerprint, IceCreds, Identity, Kind, RemoteParams, Role, Setup,
    State, Transport, DTLS_TIMEOUT_MS, ICE_TIMEOUT_MS,
};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

/// RFC 5769 2.1: USERNAME "evtj:h6vY", the password of the request.
const OUR_UFRAG: &str = "evtj";
const OUR_PWD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const THEIR_UFRAG: &str = "h6vY";
const THEIR_PWD: &str = "P2uYro0UCOQ4zxjKXaWCBui1";
const THEIR_FP: &str = "sha-256 8F:2B:6C:0D:4E:3A:11:22:33:44:55:66:77:88:99:AA:\
                        BB:CC:DD:EE:FF:00:01:02:03:04:05:06:07:08:09:0A";

const COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const USERNAME: u16 = 0x0006;
const INTEGRITY: u16 = 0x0008;
const XOR_MAPPED: u16 = 0x0020;
const PRIORITY: u16 = 0x0024;
const USE_CANDIDATE: u16 = 0x0025;
const FINGERPRINT: u16 = 0x8028;
const CONTROLLED: u16 = 0x8029;
const CONTROLLING: u16 = 0x802a;

fn identity() -> Arc<Identity> {
    static ID: OnceLock<Arc<Identity>> = OnceLock::new();
    ID.get_or_init(|| {
        let mut n = 7u8;
        let mut rng = |b: &mut [u8]| {
            for x in b {
                n = n.wrapping_mul(31).wrapping_add(17);
                *x = n;
            }
        };
        Arc::new(Identity::generate(&mut rng).expect("identity"))
    })
    .clone()
}

fn sources() -> [SocketAddr; 4] {
    [
        "192.0.2.1:32853".parse().unwrap(),
        "[2001:db8:1234:5678:11:2233:4455:6677]:32853".parse().unwrap(),
        "198.51.100.7:5000".parse().unwrap(),
        "[::ffff:203.0.113.9]:40000".parse().unwrap(),
    ]
}

fn remote(setup: Setup, ice_lite: bool) -> RemoteParams {
    RemoteParams {
        creds: IceCreds::new(THEIR_UFRAG, THEIR_PWD).unwrap(),
        fingerprint: Fingerprint::parse(THEIR_FP).unwrap(),
        setup,
        rtcp_mux: true,
        mid: Some("0".into()),
        ice_lite,
    }
}

fn local() -> IceCreds {
    IceCreds::new(OUR_UFRAG, OUR_PWD).unwrap()
}

/// A datagram handled in one operation, and what is known about it.
struct Sent {
    src: SocketAddr,
    data: Vec<u8>,
    /// For a check built here: whether it is valid, and whether it
    /// nominates (USE-CANDIDATE with ICE-CONTROLLING).
    built: Option<(bool, bool)>,
}

fn run(data: &[u8]) {
    let Some((&config, mut ops)) = data.split_first() else {
        return;
    };
    let t0 = 1_000u64;
    let role = if config & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let (ok_setup, bad_setup) = match role {
        Role::Server => ([Setup::ActPass, Setup::Active][usize::from(config >> 1 & 1)], Setup::Passive),
        Role::Client => ([Setup::ActPass, Setup::Passive][usize::from(config >> 1 & 1)], Setup::Active),
    };
    // Refusals come before any DTLS state is made.
    assert!(Transport::new(t0, local(), remote(bad_setup, false), identity(), role).is_err());
    assert!(Transport::new(t0, local(), remote(ok_setup, true), identity(), role).is_err());
    let mut t = Transport::new(t0, local(), remote(ok_setup, false), identity(), role)
        .expect("a transport");

    let srcs = sources();
    let mut h = Harness {
        now: t0,
        passed: Vec::new(),
        any_datagram: false,
        dtls_start: None,
        failed: None,
        last: None,
        sel: None,
        rank: 0,
    };
    h.after(&mut t, None, role);
    let mut steps = 0;
    while let [op, dt, rest @ ..] = ops {
        ops = rest;
        steps += 1;
        if steps > 64 {
            break;
        }
        h.now += u64::from(*dt) * u64::from(*dt);
        let src = srcs[usize::from(op >> 4 & 3)];
        let sent = match op & 7 {
            0 | 1 => {
                let Some((d, tail)) = take_len(ops) else { break };
                ops = tail;
                Sent { src, data: d.to_vec(), built: None }
            }
            2 => {
                let Some((d, tail)) = take_len(ops) else { break };
                ops = tail;
                let mut d = d.to_vec();
                if let Some(b) = d.first_mut() {
                    *b = 20 + *b % 44;
                }
                Sent { src, data: d, built: None }
            }
            3 | 4 => {
                let Some((s, tail)) = build_check(ops, op & 7 == 4) else { break };
                ops = tail;
                Sent { src, ..s }
            }
            5 => match h.last.take() {
                Some(last) => Sent { src, ..last },
                None => continue,
            },
            _ => {
                t.handle_timeout(h.now);
                h.after(&mut t, None, role);
                continue;
            }
        };
        let kind = classify(&sent.data);
        let before = t.dropped();
        let failed_before = h.failed.is_some();
        let taken = t.handle(h.now, sent.src, &sent.data);
        assert_eq!(taken, matches!(kind, Kind::Stun | Kind::Dtls), "handle of {kind:?}");
        if !taken {
            assert_eq!(t.dropped(), before);
        }
        h.any_datagram |= taken;
        let dropped = t.dropped() - before;
        assert!(dropped <= 1);
        if kind == Kind::Dtls && dropped == 0 && h.failed.is_none() {
            h.dtls_start.get_or_insert(h.now);
        }
        let answered = h.after(&mut t, Some((&sent, kind)), role);
        // Failing in this operation (a deadline, DTLS) clears the queue.
        let failed_here = h.failed.is_some() && !failed_before;
        if kind == Kind::Stun && !failed_here {
            // Dropped or answered, one or the other.
            assert_eq!(dropped == 1, !answered, "STUN neither answered nor dropped");
        }
        if let (Some((valid, _)), false) = (sent.built, failed_here) {
            // Our answer: header, XOR-MAPPED-ADDRESS (12 or 24 bytes),
            // MESSAGE-INTEGRITY, FINGERPRINT. A check smaller than that is
            // not answered (no amplification).
            let answer_len = 20 + if sent.src.is_ipv4() { 12 } else { 24 } + 24 + 8;
            if !valid || failed_before || answer_len > sent.data.len() {
                assert!(!answered, "an invalid check (or one after failure, or one smaller than its answer) was answered");
            } else {
                assert!(answered, "a valid check was not answered");
            }
        }
        h.last = Some(sent);
    }
}

/// `len`, then that many bytes (fewer at the end).
fn take_len(ops: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = ops.split_first()?;
    let n = usize::from(*len).min(rest.len());
    Some(rest.split_at(n))
}

/// A Binding request built here: `flags`, 12 bytes of transaction id,
/// `flip` (position, if `flipped`), an extra attribute (type u16, len,
/// value), then signed as asked.
fn build_check(ops: &[u8], flipped: bool) -> Option<(Sent, &[u8])> {
    let (&flags, rest) = ops.split_first()?;
    let txid: [u8; 12] = rest.get(..12)?.try_into().ok()?;
    let mut rest = &rest[12..];
    let mut flip = None;
    if flipped {
        let (&f, r) = rest.split_first()?;
        flip = Some(f);
        rest = r;
    }
    let (extra_type, r) = match rest {
        [a, b, r @ ..] => (u16::from_be_bytes([*a, *b]), r),
        _ => return None,
    };
    let (extra, rest) = take_len(r)?;

    let use_candidate = flags & 1 != 0;
    let role_attr = flags >> 1 & 3;
    let priority = flags & 8 != 0;
    let wrong_pwd = flags & 16 != 0;
    let wrong_user = flags & 32 != 0;
    let no_fp = flags & 64 != 0;
    let no_mi = flags & 128 != 0;

    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&COOKIE);
    m.extend_from_slice(&txid);
    let user = if wrong_user {
        format!("{OUR_UFRAG}:{OUR_UFRAG}")
    } else {
        format!("{OUR_UFRAG}:{THEIR_UFRAG}")
    };
    attr(&mut m, USERNAME, user.as_bytes());
    if priority {
        attr(&mut m, PRIORITY, &0x6e00_01ffu32.to_be_bytes());
    }
    let mut controlling = false;
    let mut nominates = use_candidate;
    if role_attr & 1 != 0 {
        attr(&mut m, CONTROLLING, &[7; 8]);
        controlling = true;
    }
    if role_attr & 2 != 0 {
        attr(&mut m, CONTROLLED, &[9; 8]);
    }
    if use_candidate {
        attr(&mut m, USE_CANDIDATE, &[]);
    }
    // The extra attribute: MESSAGE-INTEGRITY or FINGERPRINT there break the
    // check; USE-CANDIDATE and ICE-CONTROLLING count.
    let mut valid = !(wrong_pwd || wrong_user || no_fp || no_mi) && flip.is_none();
    if extra_type != 0xffff {
        attr(&mut m, extra_type, extra);
        match extra_type {
            INTEGRITY | FINGERPRINT => valid = false,
            USE_CANDIDATE => nominates = true,
            CONTROLLING => controlling = true,
            _ => {}
        }
    }
    if !no_mi {
        let key = if wrong_pwd { THEIR_PWD } else { OUR_PWD };
        let at = m.len();
        set_len(&mut m, at + 24);
        let mac = hmac(key.as_bytes(), &m);
        attr(&mut m, INTEGRITY, &mac);
    }
    if !no_fp {
        let at = m.len();
        set_len(&mut m, at + 8);
        let fp = crc32fast::hash(&m) ^ 0x5354_554e;
        attr(&mut m, FINGERPRINT, &fp.to_be_bytes());
    } else {
        let at = m.len();
        set_len(&mut m, at);
    }
    if let Some(f) = flip {
        let i = usize::from(f) % m.len();
        m[i] ^= 1 << (f % 8);
        // A flipped top bit of the type makes it no STUN at all.
    }
    let sent = Sent {
        src: sources()[0],
        data: m,
        built: Some((valid, nominates && controlling)),
    };
    Some((sent, rest))
}

fn attr(m: &mut Vec<u8>, typ: u16, value: &[u8]) {
    m.extend_from_slice(&typ.to_be_bytes());
    m.extend_from_slice(&(value.len() as u16).to_be_bytes());
    m.extend_from_slice(value);
    m.resize(m.len().next_multiple_of(4), 0);
}

/// The header's length field for a message that will be `total` long.
fn set_len(m: &mut [u8], total: usize) {
    let len = u16::try_from(total - 20).unwrap_or(u16::MAX);
    m[2..4].copy_from_slice(&len.to_be_bytes());
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("any key");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

struct Harness {
    now: u64,
    /// Sources whose check was answered.
    passed: Vec<SocketAddr>,
    any_datagram: bool,
    /// When DTLS started (selection or the first DTLS datagram taken).
    dtls_start: Option<u64>,
    failed: Option<Failure>,
    last: Option<Sent>,
    /// `selected()` after the previous operation.
    sel: Option<SocketAddr>,
    /// How far the state has come (`rank`).
    rank: u8,
}

fn rank(s: State) -> u8 {
    match s {
        State::Checking => 0,
        State::Handshaking => 1,
        State::Connected => 2,
        State::Failed(_) => 3,
    }
}

impl Harness {
    /// Drains transmits and events after an operation (`sent`: the
    /// datagram it handled) and checks them; returns whether a STUN
    /// response was sent.
    fn after(&mut self, t: &mut Transport, sent: Option<(&Sent, Kind)>, role: Role) -> bool {
        // Failing clears what was queued, in the same operation too.
        let failed_now = self.failed.is_none() && matches!(t.state(), State::Failed(_));
        let mut answered = false;
        let mut dtls_out = Vec::new();
        while let Some(tx) = t.poll_transmit() {
            assert!(
                !matches!(t.state(), State::Failed(_)),
                "transmit after failure"
            );
            match tx.data.first() {
                Some(0x01) => {
                    let (s, kind) = sent.expect("a STUN response with no datagram handled");
                    assert_eq!(kind, Kind::Stun, "a STUN response to a non-STUN datagram");
                    assert!(!answered, "two responses to one datagram");
                    check_response(&tx.data, &s.data, s.src);
                    assert_eq!(tx.dest, s.src, "response sent elsewhere");
                    answered = true;
                    if !self.passed.contains(&s.src) {
                        self.passed.push(s.src);
                    }
                }
                Some(20..=63) => dtls_out.push(tx.dest),
                _ => panic!("transmit neither STUN response nor DTLS: {:02x?}", tx.data),
            }
        }
        for dest in dtls_out {
            assert!(
                self.passed.contains(&dest),
                "DTLS to {dest}, which passed no check"
            );
        }

        // Selection.
        let sel = t.selected();
        if let Some(a) = sel {
            assert!(
                self.passed.contains(&a) || failed_now,
                "selected {a}, which passed no check"
            );
        }
        if sel != self.sel {
            let (s, _) = sent.expect("selection changed without a datagram");
            assert!(answered || failed_now, "selection changed by a datagram not answered");
            assert_eq!(sel, Some(s.src), "selected another address than the checked one");
            if self.dtls_start.is_none() {
                self.dtls_start = Some(self.now);
            }
        }
        if let Some((s, _)) = sent {
            if let (Some((true, true)), true) = (s.built, answered) {
                assert_eq!(sel, Some(s.src), "a valid nomination did not select");
            }
        }
        self.sel = sel;

        // Events.
        while let Some(e) = t.poll_event() {
            if !self.any_datagram {
                assert!(
                    e == Event::Failed(Failure::IceTimeout) && self.now >= 1_000 + ICE_TIMEOUT_MS,
                    "event {e:?} before any datagram at {}",
                    self.now
                );
            }
            match e {
                Event::Selected(a) => assert_eq!(Some(a), t.selected(), "Selected event"),
                Event::Keys { .. } => panic!("keys without the peer's certificate"),
                Event::Failed(f) => {
                    assert!(self.failed.is_none(), "failed twice: {:?} then {f:?}", self.failed);
                    assert_eq!(t.state(), State::Failed(f));
                    match f {
                        Failure::IceTimeout => assert!(
                            t.selected().is_none() && self.now >= 1_000 + ICE_TIMEOUT_MS,
                            "ICE timeout at {} (selected {:?})",
                            self.now,
                            t.selected()
                        ),
                        Failure::DtlsTimeout => {
                            let start = self.dtls_start.expect("DTLS timeout before DTLS started");
                            assert!(
                                self.now >= start + DTLS_TIMEOUT_MS,
                                "DTLS timeout at {}, DTLS started at {start} ({role:?})",
                                self.now
                            );
                        }
                        Failure::ConsentExpired => panic!("consent expired but never connected"),
                        Failure::DtlsError | Failure::Fingerprint => assert!(
                            self.dtls_start.is_some(),
                            "{f:?} before DTLS started"
                        ),
                    }
                    self.failed = Some(f);
                }
            }
        }

        // State.
        let state = t.state();
        assert_ne!(state, State::Connected, "connected without the peer's certificate");
        match self.failed {
            Some(f) => assert_eq!(state, State::Failed(f), "left Failed"),
            None => assert!(!matches!(state, State::Failed(_)), "failed without an event"),
        }
        assert!(rank(state) >= self.rank, "state went back to {state:?}");
        self.rank = rank(state);
        assert_eq!(
            t.poll_timeout().is_none(),
            matches!(state, State::Failed(_)),
            "poll_timeout {:?} in {state:?}",
            t.poll_timeout()
        );
        answered
    }
}

/// Checks a success response to `req` from `src`.
fn check_response(r: &[u8], req: &[u8], src: SocketAddr) {
    assert!(
        r.len() <= req.len(),
        "response of {} bytes to a request of {} from {src}",
        r.len(),
        req.len()
    );
    assert_eq!(&r[..2], &[0x01, 0x01], "not a Binding success response");
    assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])) + 20, r.len(), "length field");
    assert_eq!(&r[4..8], &COOKIE);
    assert_eq!(r[8..20], req[8..20], "transaction id");
    let mut at = 20;
    let (mut mapped, mut mi, mut fp) = (None, None, None);
    while at < r.len() {
        let typ = u16::from_be_bytes([r[at], r[at + 1]]);
        let len = usize::from(u16::from_be_bytes([r[at + 2], r[at + 3]]));
        let value = &r[at + 4..at + 4 + len];
        match typ {
            XOR_MAPPED => mapped = Some(value),
            INTEGRITY => mi = Some((at, value)),
            FINGERPRINT => fp = Some((at, value)),
            _ => panic!("unexpected attribute {typ:#x}"),
        }
        at += 4 + len.next_multiple_of(4);
    }
    assert_eq!(at, r.len());
    let (fp_at, fp) = fp.expect("FINGERPRINT");
    assert_eq!(fp_at + 8, r.len(), "FINGERPRINT last");
    assert_eq!(fp, (crc32fast::hash(&r[..fp_at]) ^ 0x5354_554e).to_be_bytes());
    let (mi_at, mi) = mi.expect("MESSAGE-INTEGRITY");
    let mut signed = r[..mi_at].to_vec();
    set_len(&mut signed, mi_at + 24);
    assert_eq!(mi, hmac(OUR_PWD.as_bytes(), &signed), "MESSAGE-INTEGRITY");
    let v = mapped.expect("XOR-MAPPED-ADDRESS");
    let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
    let mut key = COOKIE.to_vec();
    key.extend_from_slice(&r[8..20]);
    let ip: IpAddr = match v[1] {
        1 => {
            let o: [u8; 4] = std::array::from_fn(|i| v[4 + i] ^ key[i]);
            o.into()
        }
        2 => {
            let o: [u8; 16] = std::array::from_fn(|i| v[4 + i] ^ key[i]);
            o.into()
        }
        f => panic!("address family {f}"),
    };
    assert_eq!(
        SocketAddr::new(ip, port),
        SocketAddr::new(src.ip().to_canonical(), src.port()),
        "XOR-MAPPED-ADDRESS"
    );
}
