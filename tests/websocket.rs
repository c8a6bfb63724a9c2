//! SIP over WebSocket (RFC 7118) through the real binary, with
//! tungstenite as the client: a phone on WSS (and on plain WS) registers,
//! is called over its connection and goes offline with it; handshakes of
//! other sites' pages or without the `sip` subprotocol are refused; broken
//! frames, oversized messages and stalled handshakes cost only their own
//! connection.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::stream_phone::*;
use common::webhook::WebhookServer;
use common::*;

struct WsPbx {
    pbx: Pbx,
    ws: SocketAddr,
    wss: SocketAddr,
    cert: PathBuf,
}

/// A server with WS and WSS on their own ports (WSS with the self-signed
/// certificate it made for itself).
fn pbx_ws(extra: &str) -> WsPbx {
    let (ws, wss) = (free_port(), free_port());
    let pbx = Pbx::start(PbxOptions {
        shards: 2,
        proxy_extra: format!("ws_port = {ws}\nwss_port = {wss}\ntcp_idle_secs = 3\n{extra}"),
        ..PbxOptions::default()
    });
    let cert = pbx.dir().join("data/tls/self-signed.crt");
    assert!(cert.exists(), "no self-signed certificate made");
    WsPbx {
        pbx,
        ws: SocketAddr::from(([127, 0, 0, 1], ws)),
        wss: SocketAddr::from(([127, 0, 0, 1], wss)),
        cert,
    }
}

impl WsPbx {
    fn wss_phone(&self, origin: Option<&str>) -> Result<StreamPhone, u16> {
        let wire = Wire::tls(self.wss, "pbx.test", trusting(&self.cert));
        StreamPhone::connect_ws(
            wire,
            &format!("wss://pbx.test:{}/", self.wss.port()),
            origin,
        )
    }

    fn ws_phone(&self, origin: Option<&str>) -> Result<StreamPhone, u16> {
        let wire = Wire::Tcp(TcpStream::connect(self.ws).expect("connect"));
        StreamPhone::connect_ws(wire, &format!("ws://127.0.0.1:{}/", self.ws.port()), origin)
    }
}

#[test]
fn a_wss_phone_registers_is_called_over_its_connection_and_goes_offline() {
    let hook = WebhookServer::start();
    let p = pbx_ws(&format!(
        "[proxy.locator_webhook]\nurl = \"{}\"\nretry_initial_ms = 100\nretry_max_secs = 1\n",
        hook.url("/locator")
    ));
    // As JsSIP does: a Contact on an invented `.invalid` host that only
    // the connection can reach, and a page of the same host as Origin.
    let mut phone = p
        .wss_phone(Some("https://pbx.test:8080"))
        .expect("upgraded");
    let r = phone.register("1002", "<sip:k3j2h1@df7jal23ls0d.invalid;transport=ws>");
    assert_eq!(r.code, 200, "{}", r.raw);
    let answering = phone.answer_a_call();
    let out = sipp_caller(&p.pbx, UAC_AUTH, "1002");
    assert_sipp_ok(&out, "udp caller");
    let (phone, got) = answering.join().unwrap();
    let methods: Vec<&str> = got.iter().map(|m| m.lines().next().unwrap_or("")).collect();
    assert!(
        methods[0].starts_with("INVITE sip:k3j2h1@df7jal23ls0d.invalid;transport=ws "),
        "{methods:?}"
    );
    assert!(methods.iter().any(|m| m.starts_with("ACK ")), "{methods:?}");
    assert!(methods.iter().any(|m| m.starts_with("BYE ")), "{methods:?}");
    // Our Via and Contact on that leg name WSS and our WSS port.
    let via = &headers(&got[0], "Via")[0];
    let wss = p.wss.port();
    assert!(
        via.starts_with(&format!("SIP/2.0/WSS 127.0.0.1:{wss}")),
        "{via}"
    );
    let contact = &headers(&got[0], "Contact")[0];
    assert!(
        contact.contains(&format!(":{wss};transport=ws>")),
        "{contact}"
    );
    let cdr = first_cdr(&p.pbx);
    assert_eq!(cdr["status"], "completed", "{cdr}");
    drop(phone);
    let events = hook.wait_for(Duration::from_secs(10), |reqs| {
        reqs.iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("\"offline\""))
    });
    let bodies: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .collect();
    let of = |kind: &str| -> Vec<&serde_json::Value> {
        bodies.iter().filter(|b| b["event"] == kind).collect()
    };
    assert_eq!(
        of("registered")[0]["location"]["transport"],
        "WSS",
        "{bodies:?}"
    );
    assert_eq!(of("offline").len(), 1, "{bodies:?}");
    assert_eq!(of("offline")[0]["location"]["transport"], "WSS");
}

#[test]
fn a_plain_ws_phone_registers_and_answers_options() {
    let p = pbx_ws("");
    let mut phone = p.ws_phone(None).expect("upgraded");
    let r = phone.options("ws-opt-1");
    assert_eq!(r.code, 200, "{}", r.raw);
    let r = phone.register("1001", "<sip:a1@x.invalid;transport=ws>");
    assert_eq!(r.code, 200, "{}", r.raw);
    let list = p.pbx.cli(&["registrations", "list", "--json"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("\"WS\""), "{text}");
}

#[test]
fn other_sites_and_other_protocols_are_refused_at_the_handshake() {
    let p = pbx_ws("");
    // A page of another site, in a visitor's browser.
    assert_eq!(p.wss_phone(Some("https://evil.example")).err(), Some(403));
    assert_eq!(p.ws_phone(Some("http://evil.example")).err(), Some(403));
    // Not asking for `sip`: raw, since the test client always asks.
    let mut s = TcpStream::connect(p.ws).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: chat\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert_eq!(p.pbx.metric_sum("shardpbx_ws_refused_total"), 3);
    // The same host's page is taken.
    assert!(p.wss_phone(Some("https://pbx.test:8080")).is_ok());
    assert!(p.ws_phone(Some("http://127.0.0.1:8080")).is_ok());
    // An allow-list replaces the same-host rule.
    let listed = pbx_ws("ws_origins = [\"https://crm.example.com\"]\n");
    assert!(listed.ws_phone(Some("https://crm.example.com")).is_ok());
    assert_eq!(
        listed.ws_phone(Some("http://127.0.0.1:8080")).err(),
        Some(403)
    );
}

/// Reads what the server sends until it closes (or `limit`).
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let mut chunk = [0u8; 1024];
        match s.read(&mut chunk) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => {}
        }
    }
    (got, false)
}

/// An upgraded raw connection to the WS port (the 101 read).
fn raw_upgraded(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: sip\r\n\r\n",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed during the handshake");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

#[test]
fn broken_frames_huge_messages_and_stalled_handshakes_cost_only_their_connection() {
    let p = pbx_ws("");
    // An unmasked frame (a server's frame, from a client): close 1002.
    let mut s = raw_upgraded(p.ws);
    s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(closed, "unmasked frame not refused");
    assert_eq!(got, [0x88, 0x02, 0x03, 0xea], "close 1002");
    // The header of a 1 GiB message: refused before any of it is buffered.
    let mut s = raw_upgraded(p.ws);
    s.write_all(&[0x81, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4])
        .unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    assert!(closed, "1 GiB message not refused");
    assert_eq!(got, [0x88, 0x02, 0x03, 0xf1], "close 1009");
    assert_eq!(p.pbx.metric_sum("shardpbx_ws_protocol_errors_total"), 2);
    // A handshake that never ends its head: closed when the message time
    // (tcp_idle_secs = 3 here) is up, not before.
    let mut slow = TcpStream::connect(p.ws).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(8));
    assert!(closed, "stalled handshake not closed");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed too early"
    );
    // A phone is served all along, and a ping is answered on its socket.
    let mut phone = p.ws_phone(None).expect("upgraded");
    let r = phone.options("ws-after-attacks");
    assert_eq!(r.code, 200, "{}", r.raw);
}
