//! `Transport` with injected time: two transports back to back (each
//! given the other's fingerprint and credentials), the browser side's
//! checks made by the test loop: Connected with AEAD_AES_256_GCM keys and
//! SRTP both ways; the fingerprint check, the deadlines, the address gate,
//! hostile datagrams. The harness here serves `tests_peer` too (Connected,
//! keys and SRTP against OpenSSL).

use std::net::SocketAddr;
use std::sync::Arc;

use super::dtls::{srtp_keys, Role};
use super::stun::binding_request;
use super::{
    classify, Event, Failure, Fingerprint, IceCreds, Identity, Kind, RemoteParams, Setup, State,
    Transmit, Transport, CONSENT_TIMEOUT_MS, DTLS_TIMEOUT_MS, ICE_TIMEOUT_MS,
};
use crate::media::srtp::{Context, MasterKey, Suite};

pub(super) fn rng(seed: u8) -> impl FnMut(&mut [u8]) {
    let mut n = seed;
    move |b: &mut [u8]| {
        for x in b {
            n = n.wrapping_mul(31).wrapping_add(17);
            *x = n;
        }
    }
}

pub(super) fn identity(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::generate(&mut rng(seed)).unwrap())
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn remote(creds: &IceCreds, fingerprint: Fingerprint, setup: Setup) -> RemoteParams {
    RemoteParams {
        creds: creds.clone(),
        fingerprint,
        setup,
        rtcp_mux: true,
        mid: Some("0".into()),
        ice_lite: false,
    }
}

/// One end: a transport, its address, its credentials, what it said.
pub(super) struct End {
    pub(super) t: Transport,
    pub(super) addr: SocketAddr,
    pub(super) creds: IceCreds,
    pub(super) events: Vec<Event>,
    /// DTLS it sent while being checked, not yet delivered.
    pending: Vec<Transmit>,
    txid: u8,
}

impl End {
    pub(super) fn new(t: Transport, addr: SocketAddr, creds: IceCreds) -> End {
        End {
            t,
            addr,
            creds,
            events: Vec::new(),
            pending: Vec::new(),
            txid: 0,
        }
    }

    /// What it has to send; its events go to `events`.
    pub(super) fn drain(&mut self) -> Vec<Transmit> {
        let mut out = std::mem::take(&mut self.pending);
        out.extend(std::iter::from_fn(|| self.t.poll_transmit()));
        self.events
            .extend(std::iter::from_fn(|| self.t.poll_event()));
        out
    }

    /// The browser's check from `src` (whose ufrag is `theirs`), answered
    /// or not.
    pub(super) fn check(
        &mut self,
        now: u64,
        src: SocketAddr,
        theirs: &IceCreds,
        nominate: bool,
    ) -> bool {
        self.txid = self.txid.wrapping_add(1);
        let user = format!("{}:{}", self.creds.ufrag(), theirs.ufrag());
        let req = binding_request(&[self.txid; 12], &user, self.creds.pwd(), true, nominate);
        assert!(self.t.handle(now, src, &req));
        let mut answered = false;
        let before = self.pending.len();
        let mut out = self.drain();
        self.pending = out.drain(..before).collect();
        for tx in out {
            if classify(&tx.data) == Kind::Stun {
                assert_eq!(tx.dest, src);
                assert_eq!(&tx.data[..2], &[0x01, 0x01]);
                assert_eq!(&tx.data[8..20], &[self.txid; 12]);
                answered = true;
            } else {
                // DTLS (a client's first flight) goes back in the queue.
                self.pending.push(tx);
            }
        }
        answered
    }

    pub(super) fn keys(&self) -> Option<(MasterKey, MasterKey)> {
        self.events.iter().find_map(|e| match e {
            Event::Keys { local, remote } => Some((local.clone(), remote.clone())),
            _ => None,
        })
    }

    pub(super) fn failed(&self) -> Option<Failure> {
        self.events.iter().find_map(|e| match e {
            Event::Failed(f) => Some(*f),
            _ => None,
        })
    }
}

pub(super) const SERVER: &str = "192.0.2.10:40000";
pub(super) const CLIENT: &str = "198.51.100.20:50000";

/// A server and a client transport made at 0, each with the other's
/// credentials and fingerprint, but the fingerprint that `wrong` expects
/// is another certificate's.
fn pair(wrong: Option<Role>) -> (End, End) {
    let (ids, idc, other) = (identity(1), identity(2), identity(9));
    let (cs, cc) = (IceCreds::random(&mut rng(3)), IceCreds::random(&mut rng(4)));
    let pick =
        |role, right: &Identity| *if wrong == Some(role) { &other } else { right }.fingerprint();
    let server_sees = remote(&cc, pick(Role::Server, &idc), Setup::Active);
    let client_sees = remote(&cs, pick(Role::Client, &ids), Setup::Passive);
    let server = Transport::new(0, cs.clone(), server_sees, ids, Role::Server).unwrap();
    let client = Transport::new(0, cc.clone(), client_sees, idc, Role::Client).unwrap();
    (
        End::new(server, addr(SERVER), cs),
        End::new(client, addr(CLIENT), cc),
    )
}

fn settled(e: &End) -> bool {
    matches!(e.t.state(), State::Connected | State::Failed(_))
}

/// DTLS from `from` to `to`; STUN went to the browser (already checked).
fn deliver(to: &mut End, from: SocketAddr, txs: Vec<Transmit>, now: u64) {
    for tx in txs {
        assert_eq!(tx.dest, to.addr);
        if classify(&tx.data) == Kind::Dtls {
            assert!(to.t.handle(now, from, &tx.data));
        }
    }
}

/// Runs `a` and `b` back to back from `from` for at most `ms`: the
/// browser's nominating check to each every 2.5 s while `checks`, DTLS
/// delivered between them, timers fired when due. Stops when both are
/// connected or failed; returns the time.
fn drive(a: &mut End, b: &mut End, from: u64, ms: u64, checks: bool) -> u64 {
    let mut now = from;
    let mut next_check = from;
    while now < from + ms {
        if checks && now >= next_check {
            let (ac, bc) = (a.creds.clone(), b.creds.clone());
            let (aa, ba) = (a.addr, b.addr);
            for (e, src, theirs) in [(&mut *a, ba, &bc), (&mut *b, aa, &ac)] {
                let answered = e.check(now, src, theirs, true);
                assert_eq!(answered, !matches!(e.t.state(), State::Failed(_)));
            }
            next_check += 2500;
        }
        for e in [&mut *a, &mut *b] {
            if e.t.poll_timeout().is_some_and(|t| t <= now) {
                e.t.handle_timeout(now);
            }
        }
        loop {
            let (ta, tb) = (a.drain(), b.drain());
            if ta.is_empty() && tb.is_empty() {
                break;
            }
            deliver(b, a.addr, ta, now);
            deliver(a, b.addr, tb, now);
        }
        if settled(a) && settled(b) {
            return now;
        }
        now += 5;
    }
    now
}

/// RTP and RTCP protected with `sender` are read with `receiver`, and not
/// with `sender`'s own other direction (`other`).
fn srtp_one_way(sender: &MasterKey, receiver: &MasterKey, other: &MasterKey) {
    let (mut tx, mut rx) = (Context::new(sender), Context::new(receiver));
    let suite = sender.suite();
    for seq in [1u16, 2, 3, 5, 100] {
        let mut plain = vec![0x80, 111];
        plain.extend(seq.to_be_bytes());
        plain.extend(960u32.wrapping_mul(u32::from(seq)).to_be_bytes());
        plain.extend(0x1234_5678u32.to_be_bytes());
        plain.extend((0..160u8).map(|i| i ^ seq as u8));
        let mut buf = plain.clone();
        buf.resize(plain.len() + suite.rtp_overhead(), 0);
        let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
        assert_ne!(&buf[12..plain.len()], &plain[12..]);
        let mut wrong = buf.clone();
        let r = Context::new(other).unprotect_rtp(&mut wrong, n);
        assert!(r.is_err(), "{r:?}");
        let m = rx.unprotect_rtp(&mut buf, n).unwrap();
        assert_eq!(&buf[..m], &plain[..]);
    }
    let mut plain = vec![0x81, 201, 0, 7];
    plain.extend(0x1234_5678u32.to_be_bytes());
    plain.extend(0..24u8);
    for _ in 0..3 {
        let mut buf = plain.clone();
        buf.resize(plain.len() + suite.rtcp_overhead(), 0);
        let n = tx.protect_rtcp(&mut buf, plain.len()).unwrap();
        assert_ne!(&buf[8..plain.len()], &plain[8..]);
        let m = rx.unprotect_rtcp(&mut buf, n).unwrap();
        assert_eq!(&buf[..m], &plain[..]);
    }
}

/// Two of our transports: ICE completes both ways and DTLS too, each end
/// checking the other's certificate. `dimpl` offers and, as server,
/// prefers SRTP_AEAD_AES_256_GCM: both ends are Connected with
/// AEAD_AES_256_GCM keys, crosswise (the server's local key is the
/// client's remote key, and back), as RFC 5764 lays them out in the
/// exported material, and SRTP and SRTCP work both ways.
#[test]
fn back_to_back_dimpl_picks_aes_256_gcm() {
    let (mut s, mut c) = pair(None);
    let end = drive(&mut s, &mut c, 0, 15_000, true);
    assert_eq!(s.t.state(), State::Connected, "{:?}", s.events);
    assert_eq!(c.t.state(), State::Connected, "{:?}", c.events);
    assert!(end < 1_000, "connected at {end} ms");
    assert!(s.failed().is_none() && c.failed().is_none());
    let (km, profile) =
        s.t.leg()
            .exported
            .clone()
            .expect("the server exported keys");
    assert_eq!(profile, dimpl::SrtpProfile::AEAD_AES_256_GCM);
    assert_eq!(km.len(), 2 * (32 + 12));
    assert_eq!(c.t.leg().exported, Some((km.clone(), profile)));
    let (s_local, s_remote) = s.keys().expect("server keys");
    let (c_local, c_remote) = c.keys().expect("client keys");
    for k in [&s_local, &s_remote] {
        assert_eq!(k.suite(), Suite::AeadAes256Gcm);
    }
    assert_eq!((&s_local, &s_remote), (&c_remote, &c_local));
    assert_ne!(s_local, s_remote);
    assert_eq!(
        srtp_keys(Role::Server, Suite::AeadAes256Gcm, &km),
        Some((s_local.clone(), s_remote.clone()))
    );
    assert_eq!(
        s.events,
        vec![
            Event::Selected(addr(CLIENT)),
            Event::Keys {
                local: s_local.clone(),
                remote: s_remote.clone()
            }
        ]
    );
    assert_eq!(
        c.events,
        vec![
            Event::Selected(addr(SERVER)),
            Event::Keys {
                local: c_local.clone(),
                remote: c_remote.clone()
            }
        ]
    );
    srtp_one_way(&s_local, &c_remote, &s_remote);
    srtp_one_way(&c_local, &s_remote, &c_remote);
    // Checks go on for a while: both stay Connected, nothing more is said.
    s.events.clear();
    c.events.clear();
    for at in (end + 500..end + 10_000).step_by(500) {
        drive(&mut s, &mut c, at, 5, true);
    }
    assert_eq!(
        (s.t.state(), c.t.state()),
        (State::Connected, State::Connected)
    );
    assert!(
        s.events.is_empty() && c.events.is_empty(),
        "{:?} {:?}",
        s.events,
        c.events
    );
}

#[test]
fn wrong_fingerprint_fails_the_leg() {
    for wrong in [Role::Server, Role::Client] {
        let (mut s, mut c) = pair(Some(wrong));
        drive(&mut s, &mut c, 0, 5_000, true);
        let (bad, other) = match wrong {
            Role::Server => (&s, &c),
            Role::Client => (&c, &s),
        };
        assert_eq!(
            bad.t.state(),
            State::Failed(Failure::Fingerprint),
            "{wrong:?}"
        );
        assert_eq!(bad.failed(), Some(Failure::Fingerprint));
        assert!(bad.keys().is_none() && other.keys().is_none());
        assert_eq!(Failure::Fingerprint.as_str(), "fingerprint_mismatch");
    }
}

#[test]
fn ice_timeout_at_10_s() {
    let (mut s, _) = pair(None);
    assert_eq!(s.t.state(), State::Checking);
    assert_eq!(s.t.poll_timeout(), Some(ICE_TIMEOUT_MS));
    s.t.handle_timeout(ICE_TIMEOUT_MS - 1);
    assert_eq!(s.t.state(), State::Checking);
    // A check without nomination does not count as selection.
    let cc = IceCreds::random(&mut rng(4));
    assert!(s.check(5_000, addr(CLIENT), &cc, false));
    s.t.handle_timeout(ICE_TIMEOUT_MS);
    assert_eq!(s.t.state(), State::Failed(Failure::IceTimeout));
    assert_eq!(s.drain(), vec![]);
    assert_eq!(s.events, vec![Event::Failed(Failure::IceTimeout)]);
    assert_eq!(s.t.poll_timeout(), None);
    // Nothing is answered any more.
    assert!(!s.check(ICE_TIMEOUT_MS + 1, addr(CLIENT), &cc, true));
    assert_eq!(Failure::IceTimeout.as_str(), "ice_timeout");
}

#[test]
fn dtls_timeout_10_s_after_selection() {
    for role in [Role::Server, Role::Client] {
        let (mut s, mut c) = pair(None);
        let (ac, bc) = (s.creds.clone(), c.creds.clone());
        // Selected at 1 s; the peer's DTLS never comes (or is never
        // answered), though checks go on.
        let (e, peer, creds) = match role {
            Role::Server => (&mut s, addr(CLIENT), &bc),
            Role::Client => (&mut c, addr(SERVER), &ac),
        };
        let mut now = 1_000;
        while e.failed().is_none() && now < 20_000 {
            if now % 2_500 == 1_000 {
                e.check(now, peer, creds, true);
            }
            if e.t.poll_timeout().is_some_and(|t| t <= now) {
                e.t.handle_timeout(now);
            }
            e.drain();
            now += 1;
        }
        assert_eq!(e.t.state(), State::Failed(Failure::DtlsTimeout), "{role:?}");
        assert_eq!(now - 1, 1_000 + DTLS_TIMEOUT_MS, "{role:?}");
        assert_eq!(Failure::DtlsTimeout.as_str(), "dtls_timeout");
    }
}

/// A client's first flight, to feed a server.
fn client_hello() -> Vec<u8> {
    let (mut s, mut c) = pair(None);
    c.check(0, addr(SERVER), &s.creds.clone(), true);
    let flight = c.drain();
    let hello = flight
        .iter()
        .find(|t| classify(&t.data) == Kind::Dtls)
        .unwrap();
    s.t.handle_timeout(0);
    hello.data.clone()
}

#[test]
fn dtls_from_an_unchecked_address_is_dropped() {
    let hello = client_hello();
    let (mut s, c) = pair(None);
    let stranger = addr("203.0.113.66:1234");
    assert!(s.t.handle(10, stranger, &hello));
    assert_eq!(s.t.dropped(), 1);
    assert!(s.drain().is_empty());
    // Also from the client's address before it passed a check.
    assert!(s.t.handle(20, addr(CLIENT), &hello));
    assert_eq!(s.t.dropped(), 2);
    assert!(s.drain().is_empty());
    // Once checked (even without nomination), the same hello is answered.
    assert!(s.check(30, addr(CLIENT), &c.creds, false));
    assert!(s.t.handle(40, addr(CLIENT), &hello));
    let out = s.drain();
    assert!(out
        .iter()
        .any(|t| classify(&t.data) == Kind::Dtls && t.dest == addr(CLIENT)));
    assert_eq!(s.t.dropped(), 2);
}

#[test]
fn checks_are_answered_only_when_valid() {
    let (mut s, c) = pair(None);
    let src = addr(CLIENT);
    // Wrong password, wrong username order, another ufrag: no answer.
    let ours = s.creds.clone();
    let bad = [
        binding_request(
            &[1; 12],
            &format!("{}:{}", ours.ufrag(), c.creds.ufrag()),
            c.creds.pwd(),
            true,
            true,
        ),
        binding_request(
            &[2; 12],
            &format!("{}:{}", c.creds.ufrag(), ours.ufrag()),
            ours.pwd(),
            true,
            true,
        ),
        binding_request(
            &[3; 12],
            &format!("{}:zzzz", ours.ufrag()),
            ours.pwd(),
            true,
            true,
        ),
    ];
    for (i, req) in bad.iter().enumerate() {
        assert!(s.t.handle(10, src, req));
        assert!(s.drain().is_empty(), "request {i}");
        assert_eq!(s.t.dropped(), i as u64 + 1);
    }
    assert_eq!(s.t.state(), State::Checking);
    // A controlled peer's USE-CANDIDATE is answered but nominates nothing.
    let user = format!("{}:{}", ours.ufrag(), c.creds.ufrag());
    let req = binding_request(&[4; 12], &user, ours.pwd(), false, true);
    assert!(s.t.handle(20, src, &req));
    assert_eq!(s.drain().len(), 1);
    assert!(s.events.is_empty() && s.t.selected().is_none());
    // RTP, RTCP and others are not ours.
    assert!(!s.t.handle(30, src, &[0x80, 111, 0, 1]));
    assert!(!s.t.handle(30, src, &[0x81, 200, 0, 1]));
    assert!(!s.t.handle(30, src, &[]));
    assert_eq!(s.t.dropped(), 3);
}

#[test]
fn a_later_nomination_switches_the_selection() {
    let (mut s, c) = pair(None);
    let (a, b) = (addr(CLIENT), addr("[2001:db8::7]:50001"));
    assert!(s.check(10, a, &c.creds, true));
    assert_eq!(s.t.state(), State::Handshaking);
    assert!(s.check(20, a, &c.creds, true));
    assert!(s.check(30, b, &c.creds, true));
    assert_eq!(s.events, vec![Event::Selected(a), Event::Selected(b)]);
    assert_eq!(s.t.selected(), Some(b));
}

/// Once DTLS completed, a nomination from another address (a call party
/// holding our password, spoofing a third party's address to aim the
/// call's media at it) is answered but moves nothing.
#[test]
fn after_dtls_a_nomination_does_not_move_the_media() {
    let (mut s, mut c) = pair(None);
    let end = drive(&mut s, &mut c, 0, 15_000, true);
    assert_eq!(s.t.state(), State::Connected, "{:?}", s.events);
    let victim = addr("203.0.113.99:7");
    let before = s.events.len();
    assert!(s.check(end + 10, victim, &c.creds, true), "answered");
    assert_eq!(s.t.selected(), Some(addr(CLIENT)));
    s.drain();
    assert_eq!(s.events.len(), before, "{:?}", &s.events[before..]);
}

#[test]
fn checked_addresses_are_bounded() {
    let hello = client_hello();
    let (mut s, c) = pair(None);
    let many: Vec<SocketAddr> = (0..20)
        .map(|i| addr(&format!("203.0.113.{i}:999")))
        .collect();
    for (i, a) in many.iter().enumerate() {
        assert!(s.check(i as u64, *a, &c.creds, false));
    }
    // The first ones were forgotten: their DTLS is dropped.
    assert!(s.t.handle(100, many[0], &hello));
    assert_eq!(s.t.dropped(), 1);
    assert!(s.t.handle(100, many[19], &hello));
    assert_eq!(s.t.dropped(), 1);
}

#[test]
fn hostile_datagrams_never_panic() {
    let (mut s, c) = pair(None);
    let mut cl = pair(None).1;
    let checked = addr(CLIENT);
    assert!(s.check(0, checked, &c.creds, true));
    assert!(cl.check(0, addr(SERVER), &s.creds, true));
    let mut r = rng(77);
    let mut now = 1;
    for first in 0..=255u8 {
        for len in [1usize, 2, 13, 20, 25, 60, 200, 1500] {
            let mut buf = vec![0u8; len];
            r(&mut buf);
            buf[0] = first;
            let ours = matches!(classify(&buf), Kind::Stun | Kind::Dtls);
            for src in [checked, addr("203.0.113.1:1")] {
                for e in [&mut s, &mut cl] {
                    assert_eq!(e.t.handle(now, src, &buf), ours);
                    e.drain();
                }
            }
            now += 1;
        }
    }
    // Time going back is taken as standing still.
    for e in [&mut s, &mut cl] {
        e.t.handle_timeout(0);
        assert!(e.t.handle(1, checked, &[22, 0xfe, 0xfd, 0, 0]));
        e.drain();
    }
    // Malformed DTLS is discarded (dimpl's contract), not fatal.
    assert!(
        !matches!(s.t.state(), State::Failed(_)),
        "{:?} {:?}",
        s.t,
        s.events
    );
    assert!(
        !matches!(cl.t.state(), State::Failed(_)),
        "{:?} {:?}",
        cl.t,
        cl.events
    );
}

#[test]
fn setup_conflicts_and_lite_peers_are_refused() {
    let (id, creds) = (identity(1), IceCreds::random(&mut rng(3)));
    let fp = *id.fingerprint();
    let mk = |setup, role, lite| {
        let mut r = remote(&creds, fp, setup);
        r.ice_lite = lite;
        Transport::new(0, creds.clone(), r, Arc::clone(&id), role).map(|_| ())
    };
    use super::Error;
    assert_eq!(
        mk(Setup::Active, Role::Client, false),
        Err(Error::SetupConflict)
    );
    assert_eq!(
        mk(Setup::Passive, Role::Server, false),
        Err(Error::SetupConflict)
    );
    assert_eq!(
        mk(Setup::ActPass, Role::Server, true),
        Err(Error::IceLitePeer)
    );
    assert_eq!(mk(Setup::ActPass, Role::Server, false), Ok(()));
    assert_eq!(mk(Setup::ActPass, Role::Client, false), Ok(()));
    assert_eq!(Setup::Passive.our_role(), Role::Client);
    assert_eq!(Setup::Active.our_role(), Role::Server);
}

#[test]
fn identity_fingerprint_is_of_its_certificate() {
    let id = identity(5);
    let fp = id.fingerprint().to_string();
    assert!(
        fp.starts_with("sha-256 ") && fp.len() == 8 + 32 * 3 - 1,
        "{fp}"
    );
    assert_ne!(id.fingerprint(), identity(5).fingerprint());
    assert_eq!(Failure::DtlsError.as_str(), "dtls_failed");
    assert_eq!(Failure::ConsentExpired.as_str(), "consent_expired");
    let _ = CONSENT_TIMEOUT_MS;
}
