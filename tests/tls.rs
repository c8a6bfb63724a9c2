//! SIP over TLS through the real binary: a phone on a verified TLS
//! connection registers and is called over it, sipp registers and calls
//! through stunnel (which verifies the server's certificate), the
//! certificate is swapped over AMI without a restart, and broken or
//! stalled handshakes cost only their own connection.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::stream_phone::*;
use common::webhook::WebhookServer;
use common::*;

/// A server with TLS on its own port and the self-signed certificate it
/// made for itself (names: its realms, localhost, 127.0.0.1).
fn pbx_tls(extra: &str) -> (Pbx, SocketAddr, PathBuf) {
    let tls = free_port();
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        proxy_extra: format!("tls_port = {tls}\ntcp_idle_secs = 3\n{extra}"),
        ..PbxOptions::default()
    });
    let cert = pbx.dir().join("data/tls/self-signed.crt");
    assert!(cert.exists(), "no self-signed certificate made");
    (pbx, SocketAddr::from(([127, 0, 0, 1], tls)), cert)
}

fn ami_post(pbx: &Pbx, path: &str) -> (u16, String) {
    http_request(pbx, "POST", path, "", "")
}

#[test]
fn a_tls_phone_registers_is_called_over_its_connection_and_goes_offline() {
    let hook = WebhookServer::start();
    let (pbx, tls, cert) = pbx_tls(&format!(
        "[proxy.locator_webhook]\nurl = \"{}\"\nretry_initial_ms = 100\nretry_max_secs = 1\n",
        hook.url("/locator")
    ));
    let mut phone = StreamPhone::connect_tls(tls, "pbx.test", trusting(&cert));
    let r = phone.register("1002", "<sip:1002@127.0.0.1:9;transport=tls>");
    assert_eq!(r.code, 200, "{}", r.raw);
    let answering = phone.answer_a_call();
    let out = sipp_caller(&pbx, UAC_AUTH, "1002");
    assert_sipp_ok(&out, "udp caller");
    let (phone, got) = answering.join().unwrap();
    let methods: Vec<&str> = got.iter().map(|m| m.lines().next().unwrap_or("")).collect();
    assert!(methods[0].starts_with("INVITE "), "{methods:?}");
    assert!(methods.iter().any(|m| m.starts_with("ACK ")), "{methods:?}");
    assert!(methods.iter().any(|m| m.starts_with("BYE ")), "{methods:?}");
    // Over TLS the phone is offered SRTP best effort (RTP/AVP with our key
    // for each suite); it answered plain, and the call went on plain.
    let offer = got[0].split_once("\r\n\r\n").unwrap().1;
    assert!(offer.contains(" RTP/AVP "), "{offer}");
    assert!(
        offer.contains("a=crypto:1 AEAD_AES_128_GCM inline:"),
        "{offer}"
    );
    assert!(
        offer.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{offer}"
    );
    // Our Via on that leg names TLS and our TLS port.
    let via = &headers(&got[0], "Via")[0];
    assert!(
        via.starts_with(&format!("SIP/2.0/TLS 127.0.0.1:{}", tls.port())),
        "{via}"
    );
    drop(phone);
    let events = hook.wait_for(Duration::from_secs(10), |reqs| {
        reqs.iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("\"offline\""))
    });
    let offline: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter(|b| b["event"] == "offline")
        .collect();
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert_eq!(offline[0]["location"]["transport"], "TLS");
}

/// stunnel in client mode: sipp's TCP on `accept`, TLS to `connect`,
/// verifying the server's certificate against `ca` and the name `host`.
fn stunnel(
    dir: &std::path::Path,
    accept: u16,
    connect: SocketAddr,
    ca: &std::path::Path,
    host: &str,
) -> common::stunnel::Stunnel {
    common::stunnel::start(
        dir,
        accept,
        &format!(
            "client = yes\nconnect = {connect}\nCAfile = {}\nverifyChain = yes\ncheckHost = {host}\n",
            ca.display()
        ),
    )
}

#[test]
fn sipp_registers_and_calls_through_stunnel_that_verifies_the_certificate() {
    let (pbx, tls, cert) = pbx_tls("");
    let dir = pbx.dir().to_path_buf();
    let local = free_port();
    let tunnel = stunnel(&dir, local, tls, &cert, "pbx.test");
    let target = format!("127.0.0.1:{local}");
    let reg = sipp_register_to(&dir, &target, &["-t", "t1"], "pbx.test");
    assert_sipp_ok(&reg, "register over tls");
    let uas_port = free_port();
    let uas = sipp_peer(uas_port, pbx.dir(), "uas");
    register_contact(&pbx, "1002", "secret1002", uas_port);
    let out = sipp_caller_to(&target, &["-t", "t1"], UAC_AUTH, "1002");
    assert_sipp_ok(&out, "caller over tls");
    assert!(uas.wait(Duration::from_secs(10)).success(), "udp callee");
    let cdr = first_cdr(&pbx);
    assert_eq!(cdr["status"], "completed", "{cdr}");
    // What stunnel checked: the chain and the name.
    let log = tunnel.log_text();
    assert!(log.contains("Certificate accepted"), "{log}");
    drop(tunnel);
    // The same certificate for another name is refused: the check is real.
    let other = free_port();
    let wrong = stunnel(&dir, other, tls, &cert, "evil.test");
    let mut s = StreamPhone::connect(SocketAddr::from(([127, 0, 0, 1], other)));
    s.send("OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKw\r\nFrom: <sip:a@pbx.test>;tag=1\r\nTo: <sip:pbx.test>\r\nCall-ID: wrong-name\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    assert!(
        s.recv(Duration::from_secs(3)).is_none(),
        "answered through a tunnel that should refuse"
    );
    drop(wrong);
}

#[test]
fn the_certificate_is_swapped_over_ami_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let pair = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["pbx.test".to_string()]).unwrap();
        let cert = params.self_signed(&pair).unwrap();
        let (c, k) = (
            dir.path().join(format!("{name}.crt")),
            dir.path().join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, pair.serialize_pem()).unwrap();
        (c, k, cert.der().to_vec())
    };
    let (c1, k1, der1) = make("one");
    let (c2, k2, der2) = make("two");
    let live = dir.path().join("live.crt");
    let live_key = dir.path().join("live.key");
    std::fs::copy(&c1, &live).unwrap();
    std::fs::copy(&k1, &live_key).unwrap();
    let (pbx, tls, _) = {
        let tls = free_port();
        let pbx = Pbx::start(PbxOptions {
            proxy_extra: format!(
                "tls_port = {tls}\ntls_cert = \"{}\"\ntls_key = \"{}\"",
                live.display(),
                live_key.display()
            ),
            ..PbxOptions::default()
        });
        (pbx, SocketAddr::from(([127, 0, 0, 1], tls)), ())
    };
    let mut old = StreamPhone::connect_tls(tls, "pbx.test", trusting(&c1));
    assert_eq!(old.server_cert().unwrap(), der1);
    // A key that does not fit: refused, the old certificate stays.
    std::fs::copy(&c2, &live).unwrap();
    std::fs::copy(&k1, &live_key).unwrap();
    let (code, body) = ami_post(&pbx, "/ami/v1/reload/tls");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("proxy.tls_key"), "{body}");
    assert_eq!(
        StreamPhone::connect_tls(tls, "pbx.test", trusting(&c1))
            .server_cert()
            .unwrap(),
        der1
    );
    // The new pair: new connections get it, the old one goes on.
    std::fs::copy(&k2, &live_key).unwrap();
    let (code, body) = ami_post(&pbx, "/ami/v1/reload/tls");
    assert_eq!(code, 200, "{body}");
    let new = StreamPhone::connect_tls(tls, "pbx.test", trusting(&c2));
    assert_eq!(new.server_cert().unwrap(), der2);
    let r = old.options("tls-opt-1");
    assert_eq!(r.code, 200, "{}", r.raw);
}

#[test]
fn broken_and_stalled_handshakes_cost_only_their_connection() {
    let (pbx, tls, cert) = pbx_tls("");
    // Not TLS at all: a SIP request in clear on the TLS port.
    let mut clear = StreamPhone::connect(tls);
    clear.send("OPTIONS sip:pbx.test SIP/2.0\r\nContent-Length: 0\r\n\r\n");
    assert!(
        clear.closed_within(Duration::from_secs(3)),
        "cleartext on TLS"
    );
    assert!(pbx.metric_sum("shardpbx_tls_failures_total") >= 1);
    // A handshake that never finishes: a client hello cut short.
    let mut stalled = TcpStream::connect(tls).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 64];
    let got = stalled.read(&mut byte);
    assert!(
        matches!(got, Ok(0))
            || got
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "stalled handshake not closed: {got:?} after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed too early"
    );
    // A verified phone is served all along.
    let mut phone = StreamPhone::connect_tls(tls, "pbx.test", trusting(&cert));
    let r = phone.register("1001", "<sip:1001@127.0.0.1:9;transport=tls>");
    assert_eq!(r.code, 200, "{}", r.raw);
}

#[test]
fn an_unreadable_or_mismatched_certificate_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad-tls.toml");
    let other_key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/shards/src/transport/testdata/test_other_key.pem"
    );
    let cert = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/shards/src/transport/testdata/test_cert.pem"
    );
    for (cert, key, want) in [
        (
            "/nonexistent/pbx.crt",
            other_key,
            "proxy.tls_cert: cannot read /nonexistent/pbx.crt",
        ),
        (cert, other_key, "proxy.tls_key"),
    ] {
        std::fs::write(
            &cfg,
            format!(
                "http_addr = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n[proxy]\naddr = \"127.0.0.1\"\nudp_port = {}\n\
                 tls_port = {}\ntls_cert = \"{cert}\"\ntls_key = \"{key}\"\nroutes_files = []\ntrunks_files = []\n",
                free_port(),
                dir.path().join("data").display(),
                free_port(),
                free_port()
            ),
        )
        .unwrap();
        for sub in ["check-config", "run"] {
            let out = Command::new(BIN)
                .args([sub, "--config"])
                .arg(&cfg)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{sub}: {err}");
            assert!(err.contains(want), "{sub}: {err}");
        }
    }
}
