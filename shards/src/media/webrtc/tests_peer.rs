//! `Transport` against an independent DTLS-SRTP stack, OpenSSL (the
//! family of the BoringSSL in browsers), with each SRTP profile `srtp` has
//! (AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM, AEAD_AES_256_GCM):
//! Connected in either role, keys equal to what OpenSSL exports (RFC 5764
//! layout, sliced here by hand), SRTP both ways, and consent expiry 30 s
//! after the last check. Also the key layout alone.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use openssl::pkey::PKey;
use openssl::ssl::{
    ErrorCode, Ssl, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVerifyMode,
};
use openssl::x509::X509;

use super::dtls::srtp_keys;
use super::tests::{addr, identity, remote, rng, End, CLIENT, SERVER};
use super::{
    classify, Event, Failure, Fingerprint, IceCreds, Kind, Role, Setup, State, Transport,
    CONSENT_TIMEOUT_MS,
};
use crate::media::srtp::{Context, MasterKey, Suite};

/// Datagrams in and out of OpenSSL, one per read or write.
#[derive(Default)]
struct Pipe {
    inbox: VecDeque<Vec<u8>>,
    outbox: Vec<Vec<u8>>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let d = self.inbox.pop_front().ok_or(io::ErrorKind::WouldBlock)?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbox.push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The browser's DTLS end, played by OpenSSL.
struct Peer {
    stream: SslStream<Pipe>,
    done: bool,
    fingerprint: Fingerprint,
}

impl Peer {
    /// An OpenSSL DTLS 1.2 end with an ECDSA P-256 certificate, requiring
    /// the other's certificate (checked by fingerprint below), offering or
    /// accepting `profiles`.
    fn new(server: bool, profiles: &str) -> Peer {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let mut ctx = SslContextBuilder::new(SslMethod::dtls()).unwrap();
        ctx.set_certificate(&X509::from_der(cert.der()).unwrap())
            .unwrap();
        ctx.set_private_key(&PKey::private_key_from_der(&key.serialize_der()).unwrap())
            .unwrap();
        ctx.set_cipher_list("ECDHE-ECDSA-AES128-GCM-SHA256")
            .unwrap();
        ctx.set_tlsext_use_srtp(profiles).unwrap();
        let verify = SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT;
        ctx.set_verify_callback(verify, |_, _| true);
        ctx.set_options(SslOptions::NO_QUERY_MTU);
        let mut ssl = Ssl::new(&ctx.build()).unwrap();
        ssl.set_mtu(1200).unwrap();
        if server {
            ssl.set_accept_state();
        } else {
            ssl.set_connect_state();
        }
        let mut peer = Peer {
            stream: SslStream::new(ssl, Pipe::default()).unwrap(),
            done: false,
            fingerprint: Fingerprint::of_der(cert.der()),
        };
        peer.step();
        peer
    }

    fn step(&mut self) {
        if self.done {
            // Late flights are answered while reading.
            let _ = self.stream.ssl_read(&mut [0u8; 2048]);
            return;
        }
        match self.stream.do_handshake() {
            Ok(()) => self.done = true,
            Err(e) if e.code() == ErrorCode::WANT_READ => {}
            Err(e) => panic!("OpenSSL handshake: {e}"),
        }
    }

    fn feed(&mut self, datagram: &[u8]) {
        self.stream.get_mut().inbox.push_back(datagram.to_vec());
        self.step();
    }

    fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.stream.get_mut().outbox)
    }

    /// The certificate it was shown.
    fn seen(&self) -> Fingerprint {
        let cert = self.stream.ssl().peer_certificate().unwrap();
        Fingerprint::of_der(&cert.to_der().unwrap())
    }

    /// The client's and the server's SRTP keys as OpenSSL exports them.
    fn exported(&self) -> (MasterKey, MasterKey) {
        let ssl = self.stream.ssl();
        let suite = match ssl.selected_srtp_profile().unwrap().name() {
            "SRTP_AES128_CM_SHA1_80" => Suite::AesCm128HmacSha1_80,
            "SRTP_AEAD_AES_128_GCM" => Suite::AeadAes128Gcm,
            "SRTP_AEAD_AES_256_GCM" => Suite::AeadAes256Gcm,
            other => panic!("profile {other}"),
        };
        let (k, s) = (suite.key_len(), suite.salt_len());
        let mut km = vec![0u8; 2 * (k + s)];
        ssl.export_keying_material(&mut km, "EXTRACTOR-dtls_srtp", None)
            .unwrap();
        let client = [&km[..k], &km[2 * k..2 * k + s]].concat();
        let server = [&km[k..2 * k], &km[2 * k + s..]].concat();
        (
            MasterKey::new(suite, &client).unwrap(),
            MasterKey::new(suite, &server).unwrap(),
        )
    }
}

/// Our transport in `role` and the OpenSSL peer (the other role, with
/// `profiles`), the browser's nominating check at 0, run until both are
/// done; returns them and the time.
fn connect(role: Role, profiles: &str) -> (End, Peer, IceCreds, u64) {
    let id = identity(1);
    let (ours, theirs) = (IceCreds::random(&mut rng(3)), IceCreds::random(&mut rng(4)));
    let mut peer = Peer::new(role == Role::Client, profiles);
    let setup = match role {
        Role::Server => Setup::ActPass,
        Role::Client => Setup::Passive,
    };
    let params = remote(&theirs, peer.fingerprint, setup);
    let t = Transport::new(0, ours.clone(), params, id.clone(), role).unwrap();
    let mut e = End::new(t, addr(SERVER), ours);
    assert!(e.check(0, addr(CLIENT), &theirs, true));
    let mut now = 0;
    while now < 5_000 {
        for d in peer.take() {
            assert_eq!(classify(&d), Kind::Dtls);
            assert!(e.t.handle(now, addr(CLIENT), &d));
        }
        if e.t.poll_timeout().is_some_and(|t| t <= now) {
            e.t.handle_timeout(now);
        }
        for tx in e.drain() {
            assert_eq!(tx.dest, addr(CLIENT));
            peer.feed(&tx.data);
        }
        if e.t.state() == State::Connected && peer.done {
            break;
        }
        now += 5;
    }
    assert_eq!(e.t.state(), State::Connected, "{:?}", e.events);
    assert!(peer.done);
    assert_eq!(peer.seen(), *id.fingerprint());
    (e, peer, theirs, now)
}

fn check_keys(e: &End, peer: &Peer, role: Role, suite: Suite) {
    let (local, remote) = e.keys().unwrap();
    let (client, server) = peer.exported();
    assert_eq!(local.suite(), suite);
    let (peer_local, peer_remote) = match role {
        Role::Server => (client, server),
        Role::Client => (server, client),
    };
    // Crosswise: our local is the peer's remote, and back.
    assert_eq!(local, peer_remote);
    assert_eq!(remote, peer_local);
    srtp_works(&local, &peer_remote);
    srtp_works(&peer_local, &remote);
    assert_eq!(
        e.events,
        vec![Event::Selected(addr(CLIENT)), Event::Keys { local, remote }]
    );
}

/// As DTLS server, `dimpl` picks in its own order (AES-256-GCM, then
/// AES-128-GCM, then AES_CM) among what the client offers.
#[test]
fn server_with_an_openssl_client() {
    for (profiles, suite) in [
        (
            "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM",
            Suite::AeadAes128Gcm,
        ),
        ("SRTP_AES128_CM_SHA1_80", Suite::AesCm128HmacSha1_80),
        (
            "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM:SRTP_AEAD_AES_256_GCM",
            Suite::AeadAes256Gcm,
        ),
        ("SRTP_AEAD_AES_256_GCM", Suite::AeadAes256Gcm),
    ] {
        let (e, peer, _, _) = connect(Role::Server, profiles);
        check_keys(&e, &peer, Role::Server, suite);
    }
}

/// As DTLS client, `dimpl` offers the three; the OpenSSL server picks in
/// its order.
#[test]
fn client_with_an_openssl_server() {
    for (profiles, suite) in [
        (
            "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM",
            Suite::AesCm128HmacSha1_80,
        ),
        ("SRTP_AEAD_AES_128_GCM", Suite::AeadAes128Gcm),
        (
            "SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_80",
            Suite::AeadAes256Gcm,
        ),
    ] {
        let (e, peer, _, _) = connect(Role::Client, profiles);
        check_keys(&e, &peer, Role::Client, suite);
    }
}

#[test]
fn consent_expires_30_s_after_the_last_check() {
    let (mut e, mut peer, theirs, start) = connect(Role::Server, "SRTP_AEAD_AES_128_GCM");
    e.events.clear();
    // Checks every 5 s until 20 s; one from elsewhere at 25 s does not
    // count for the selected address.
    let mut last = 0;
    let mut now = start;
    while now <= 60_000 {
        if now % 5_000 == 0 && now <= 20_000 {
            assert!(e.check(now, addr(CLIENT), &theirs, false));
            last = now;
        }
        if now == 25_000 {
            assert!(e.check(now, addr("203.0.113.9:9"), &theirs, false));
        }
        if e.t.poll_timeout().is_some_and(|t| t <= now) {
            e.t.handle_timeout(now);
        }
        for tx in e.drain() {
            peer.feed(&tx.data);
        }
        if e.t.state() != State::Connected {
            break;
        }
        assert!(e.t.poll_timeout().unwrap() <= last + CONSENT_TIMEOUT_MS);
        now += 1;
    }
    assert_eq!(last, 20_000);
    assert_eq!(now, last + CONSENT_TIMEOUT_MS);
    assert_eq!(e.t.state(), State::Failed(Failure::ConsentExpired));
    assert_eq!(e.events, vec![Event::Failed(Failure::ConsentExpired)]);
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend(seq.to_be_bytes());
    p.extend(960u32.wrapping_mul(u32::from(seq)).to_be_bytes());
    p.extend(0x1234_5678u32.to_be_bytes());
    p.extend((0..80u8).map(|i| i ^ seq as u8));
    p
}

/// `sender`'s protected packets are read with `receiver`'s key.
fn srtp_works(sender: &MasterKey, receiver: &MasterKey) {
    let (mut tx, mut rx) = (Context::new(sender), Context::new(receiver));
    for seq in [1u16, 2, 3] {
        let plain = rtp(seq);
        let mut buf = plain.clone();
        buf.resize(plain.len() + sender.suite().rtp_overhead(), 0);
        let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
        assert_ne!(&buf[12..plain.len()], &plain[12..]);
        let m = rx.unprotect_rtp(&mut buf, n).unwrap();
        assert_eq!(&buf[..m], &plain[..]);
    }
}

#[test]
fn exported_keys_layout_and_srtp() {
    for suite in Suite::EVERY {
        let (k, s) = (suite.key_len(), suite.salt_len());
        let km: Vec<u8> = (0..2 * (k + s)).map(|i| i as u8).collect();
        let (srv_local, srv_remote) = srtp_keys(Role::Server, suite, &km).unwrap();
        let (cli_local, cli_remote) = srtp_keys(Role::Client, suite, &km).unwrap();
        // RFC 5764 4.2: client key | server key | client salt | server salt.
        let client = [&km[..k], &km[2 * k..2 * k + s]].concat();
        let server = [&km[k..2 * k], &km[2 * k + s..]].concat();
        assert_eq!(cli_local, MasterKey::new(suite, &client).unwrap());
        assert_eq!(srv_local, MasterKey::new(suite, &server).unwrap());
        assert_eq!((&srv_local, &srv_remote), (&cli_remote, &cli_local));
        srtp_works(&srv_local, &cli_remote);
        srtp_works(&cli_local, &srv_remote);
        assert!(srtp_keys(Role::Server, suite, &km[1..]).is_none());
    }
}
