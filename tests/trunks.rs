//! Calls through static routes and trunks (real binary, sipp as caller and
//! as carrier): out through a trunk, failover on a failure and on no answer,
//! a carrier that challenges us, a trunk caller that needs no auth.

mod common;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use common::*;

fn wait_ok(peer: Peer, what: &str) {
    let st = peer.wait(Duration::from_secs(15));
    assert!(st.success(), "{what} sipp failed: {st}");
}

/// A Pbx whose trunk and route files are `trunks` and `routes`.
fn pbx_with(trunks: &str, routes: &str, extra: &str) -> Pbx {
    pbx_with_fn(|_| trunks.to_string(), routes, extra)
}

/// Like `pbx_with`, the trunks written knowing the appliance's SIP address.
fn pbx_with_fn(trunks: impl Fn(std::net::SocketAddr) -> String, routes: &str, extra: &str) -> Pbx {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("trunks.toml");
    let r = dir.path().join("routes.toml");
    std::fs::write(&r, routes).unwrap();
    let pbx = Pbx::start(PbxOptions {
        proxy_extra: format!("{extra}\nmax_ring_time = 6"),
        ..PbxOptions::default()
    });
    std::fs::write(&t, trunks(pbx.sip)).unwrap();
    // Rewrite the config with the files and restart.
    let text = std::fs::read_to_string(&pbx.config).unwrap();
    let text = text
        .replace(
            "routes_files = []",
            &format!("routes_files = [\"{}\"]", r.display()),
        )
        .replace(
            "trunks_files = []",
            &format!("trunks_files = [\"{}\"]", t.display()),
        );
    std::fs::write(&pbx.config, text).unwrap();
    let mut pbx = pbx;
    pbx.restart();
    std::mem::forget(dir);
    pbx
}

fn last_cdr(pbx: &Pbx) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = pbx.cli(&["cdr", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(last) = list.last() {
            return last.clone();
        }
        assert!(Instant::now() < deadline, "no CDR");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn out_route(trunks: &[&str], select: &str) -> String {
    let dest: Vec<String> = trunks.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[[routes]]\nname = \"out\"\npriority = 10\nmatch = {{ \"to.user\" = \"^9(\\\\d+)$\" }}\nrewrite = {{ \"to.user\" = \"{{1}}\" }}\naction = \"forward\"\ndest = [{}]\nselect = \"{select}\"\n",
        dest.join(", ")
    )
}

fn trunk(name: &str, port: u16, creds: bool) -> String {
    let creds = if creds {
        "username = \"trunkuser\"\npassword = \"trunkpass\"\n"
    } else {
        ""
    };
    format!("[trunks.{name}]\ndest = \"sip:127.0.0.1:{port}\"\n{creds}")
}

#[test]
fn out_through_a_trunk_with_route_rewrite() {
    let port = free_port();
    let pbx = pbx_with(
        &trunk("carrier", port, false),
        &out_route(&["carrier"], "failover"),
        "",
    );
    let callee = sipp_peer(port, pbx.dir(), "uas");
    let out = sipp_caller(&pbx, UAC_AUTH, "9555");
    assert_sipp_ok(&out, "caller");
    wait_ok(callee, "carrier");
    let cdr = last_cdr(&pbx);
    assert_eq!(cdr["status"], "completed");
    assert_eq!(cdr["sipTrunkId"], "carrier");
    assert_eq!(cdr["routeId"], "out");
    assert_eq!(cdr["direction"], "outbound");
}

#[test]
fn failover_to_the_second_trunk_when_the_first_answers_503() {
    let (a, b) = (free_port(), free_port());
    let trunks = format!("{}\n{}", trunk("a", a, false), trunk("b", b, false));
    let pbx = pbx_with(&trunks, &out_route(&["a", "b"], "failover"), "");
    let first = sipp_peer(a, pbx.dir(), "uas_503.xml");
    let second = sipp_peer(b, pbx.dir(), "uas");
    let out = sipp_caller(&pbx, UAC_AUTH, "9777");
    assert!(out.status.success(), "caller failed");
    wait_ok(first, "first trunk");
    wait_ok(second, "second trunk");
    let cdr = last_cdr(&pbx);
    assert_eq!(cdr["status"], "completed");
    assert_eq!(cdr["sipTrunkId"], "b", "the trunk that answered: {cdr}");
}

#[test]
fn failover_when_the_first_trunk_does_not_answer() {
    let (a, b) = (free_port(), free_port());
    let trunks = format!("{}\n{}", trunk("a", a, false), trunk("b", b, false));
    let pbx = pbx_with(&trunks, &out_route(&["a", "b"], "failover"), "");
    let first = sipp_peer(a, pbx.dir(), "uas_ring.xml");
    let second = sipp_peer(b, pbx.dir(), "uas");
    let started = Instant::now();
    let out = sipp_caller(&pbx, UAC_AUTH, "9777");
    assert!(out.status.success(), "caller failed");
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "the first trunk rang for its share of max_ring_time"
    );
    wait_ok(first, "first trunk (CANCELed)");
    wait_ok(second, "second trunk");
}

#[test]
fn a_trunk_that_challenges_us_gets_the_trunk_credentials() {
    let port = free_port();
    let pbx = pbx_with(
        &trunk("carrier", port, true),
        &out_route(&["carrier"], "failover"),
        "",
    );
    let callee = sipp_peer(port, pbx.dir(), "uas_challenge.xml");
    let out = sipp_caller(&pbx, UAC_AUTH, "9123");
    assert!(
        out.status.success(),
        "caller failed (carrier refused our credentials?)"
    );
    wait_ok(callee, "carrier");
    assert_eq!(last_cdr(&pbx)["status"], "completed");
}

#[test]
fn a_caller_from_a_trunk_inbound_host_needs_no_auth() {
    let uas_port = free_port();
    // Bind first, so the trunk can name the caller's exact address.
    let uac = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let src = uac.local_addr().unwrap();
    let trunks = format!("[trunks.pstn]\ninbound_hosts = [\"{src}\"]\n");
    let pbx = pbx_with(&trunks, "", "");
    let callee = sipp_peer(uas_port, pbx.dir(), "uas");
    let reg = Uac::new(pbx.sip);
    let r = register_with_auth(
        &reg,
        "1002",
        "secret1002",
        "reg-in",
        1,
        &format!("<sip:1002@127.0.0.1:{uas_port}>"),
        Some(600),
    );
    assert_eq!(r.code, 200);
    let invite = format!(
        "INVITE sip:1002@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:+4930111@carrier>;tag=in1\r\nTo: <sip:1002@pbx.test>\r\nCall-ID: inbound-1\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@{src}>\r\nContent-Length: 0\r\n\r\n",
        b = branch()
    );
    uac.send_to(invite.as_bytes(), pbx.sip).unwrap();
    uac.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 65536];
    let ok = loop {
        let (n, _) = uac.recv_from(&mut buf).expect("an answer");
        let r = Response::parse(&String::from_utf8_lossy(&buf[..n]));
        assert_ne!(r.code, 407, "a trunk caller is not challenged");
        if r.code >= 200 {
            break r;
        }
    };
    assert_eq!(ok.code, 200, "{}", ok.raw);
    // ACK and BYE through the dialog (To tag of the 200).
    let to = ok.header("To").unwrap();
    for (method, cseq) in [("ACK", 1), ("BYE", 2)] {
        let m = format!(
            "{method} sip:shardpbx@{pbx} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:+4930111@carrier>;tag=in1\r\nTo: {to}\r\nCall-ID: inbound-1\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            pbx = pbx.sip,
            b = branch()
        );
        uac.send_to(m.as_bytes(), pbx.sip).unwrap();
    }
    wait_ok(callee, "callee");
    let cdr = last_cdr(&pbx);
    assert_eq!(cdr["direction"], "inbound");
    assert_eq!(cdr["sipTrunkId"], "pstn");
    assert_eq!(cdr["hangupReason"], "byCaller");
}

#[test]
fn a_route_that_loops_back_to_us_gets_482() {
    // A trunk whose destination is ShardPBX itself.
    let pbx = pbx_with_fn(
        |sip| format!("[trunks.self]\ndest = \"sip:{sip}\"\n"),
        &out_route(&["self"], "failover"),
        "",
    );
    let r = call_by_hand(&pbx, "9444", "loop-1");
    assert_eq!(r.code, 482, "{}", r.raw);
}

#[test]
fn trunk_max_calls_gives_503_beyond_the_limit() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let trunks = format!("[trunks.small]\ndest = \"sip:127.0.0.1:{port}\"\nmax_calls = 1\n");
    let pbx = pbx_with(&trunks, &out_route(&["small"], "failover"), "");
    // The first call takes the only slot: its INVITE reaches the trunk and
    // stays unanswered.
    let uac = Uac::new(pbx.sip);
    let invite = |cseq: u32, auth: Option<String>| {
        format!(
            "INVITE sip:9100@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@pbx.test>;tag=m{cseq}\r\nTo: <sip:9100@pbx.test>\r\nCall-ID: slot-1\r\nCSeq: {cseq} INVITE\r\n{auth}Content-Length: 0\r\n\r\n",
            me = uac.local,
            b = branch(),
            auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default()
        )
    };
    let ch = uac.request(&invite(1, None));
    let auth = digest_auth(
        ch.header("Proxy-Authenticate").unwrap(),
        "1001",
        "secret1001",
        "INVITE",
        "sip:9100@pbx.test",
        1,
    );
    uac.send(&invite(2, Some(auth)));
    silent
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 4096];
    silent
        .recv_from(&mut buf)
        .expect("the first call reaches the trunk");
    let second = call_by_hand(&pbx, "9200", "slot-2");
    assert_eq!(second.code, 503, "{}", second.raw);
}

#[test]
fn round_robin_spreads_consecutive_calls_over_the_trunks() {
    let (a, b) = (free_port(), free_port());
    let trunks = format!("{}\n{}", trunk("a", a, false), trunk("b", b, false));
    let pbx = pbx_with(&trunks, &out_route(&["a", "b"], "round_robin"), "");
    // Each carrier takes exactly one call.
    let first = sipp_peer(a, pbx.dir(), "uas");
    let second = sipp_peer(b, pbx.dir(), "uas");
    for i in 0..2 {
        let started = Instant::now();
        let out = sipp_caller(&pbx, UAC_AUTH, "9321");
        assert!(out.status.success(), "caller failed");
        // No ring timeout on a carrier that already took its call.
        assert!(
            started.elapsed() < Duration::from_millis(3200),
            "call {i} went to the busy carrier first"
        );
    }
    wait_ok(first, "trunk a");
    wait_ok(second, "trunk b");
}

/// A test CA and a certificate it signed for `name` (PEM files in `dir`):
/// (CA certificate, leaf certificate, leaf key).
fn ca_and_leaf(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test Carrier CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let (c, l, k) = (
        dir.join("ca.pem"),
        dir.join("carrier.crt"),
        dir.join("carrier.key"),
    );
    std::fs::write(&c, ca.pem()).unwrap();
    std::fs::write(&l, leaf.pem()).unwrap();
    std::fs::write(&k, leaf_key.serialize_pem()).unwrap();
    (c, l, k)
}

#[test]
fn out_through_a_tcp_trunk() {
    let port = free_port();
    let pbx = pbx_with(
        &format!("[trunks.carrier]\ndest = \"sip:127.0.0.1:{port}\"\ntransport = \"tcp\"\n"),
        &out_route(&["carrier"], "failover"),
        "",
    );
    let callee = sipp_peer_with(port, pbx.dir(), "uas", &["-t", "t1"]);
    let out = sipp_caller(&pbx, UAC_AUTH, "9555");
    assert_sipp_ok(&out, "caller");
    wait_ok(callee, "carrier over tcp");
    assert_eq!(last_cdr(&pbx)["status"], "completed");
    assert_eq!(pbx.metric_sum("shardpbx_tcp_dialled_total"), 1);
}

#[test]
fn out_through_a_tls_trunk_whose_certificate_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf, key) = ca_and_leaf(dir.path(), "carrier.test");
    let (tls_port, sipp_port, wrong_port) = (free_port(), free_port(), free_port());
    let carrier = |name: &str, port: u16| {
        format!(
            "[trunks.{name}]\ndest = \"sip:127.0.0.1:{port}\"\ntransport = \"tls\"\ntls_ca = \"{}\"\ntls_name = \"carrier.test\"\n",
            ca.display()
        )
    };
    // "wrong" presents the same certificate for a name it must not have.
    let trunks = format!(
        "{}{}",
        carrier("carrier", tls_port),
        carrier("wrong", wrong_port)
            .replace("tls_name = \"carrier.test\"", "tls_name = \"other.test\"")
    );
    let pbx = pbx_with(&trunks, &out_route(&["wrong", "carrier"], "failover"), "");
    let service = format!("cert = {}\nkey = {}\n", leaf.display(), key.display());
    let _front = common::stunnel::start(
        dir.path(),
        tls_port,
        &format!("{service}connect = 127.0.0.1:{sipp_port}\n"),
    );
    let _wrong = common::stunnel::start(
        dir.path(),
        wrong_port,
        &format!("{service}connect = 127.0.0.1:{sipp_port}\n"),
    );
    let callee = sipp_peer_with(sipp_port, pbx.dir(), "uas", &["-t", "t1"]);
    let out = sipp_caller(&pbx, UAC_AUTH, "9555");
    assert_sipp_ok(&out, "caller");
    wait_ok(callee, "carrier behind tls");
    let cdr = last_cdr(&pbx);
    assert_eq!(cdr["status"], "completed", "{cdr}");
    assert_eq!(
        cdr["sipTrunkId"], "carrier",
        "the trunk that answered: {cdr}"
    );
    // The first trunk failed its verification (its certificate is not for
    // other.test): nothing was sent to it, and the failover to the second
    // came at once (a transport error counts as 503), not after a timer.
    assert!(pbx.metric_sum("shardpbx_tls_failures_total") >= 1);
    let ms = |k: &str| {
        jiff::Timestamp::from_str(cdr[k].as_str().unwrap())
            .unwrap()
            .as_millisecond()
    };
    assert!(
        ms("answerTime") - ms("startTime") < 1000,
        "failover took {} ms: {cdr}",
        ms("answerTime") - ms("startTime")
    );
}
