//! The WebSocket codec against RFC 6455's examples and a hostile client.

use std::sync::Arc;

use super::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// RFC 6455 section 1.3: the accept value for [`KEY`].
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn limits() -> Limits {
    Limits {
        max_head: 1000,
        max_body: 1000,
        partial_ms: 5_000,
    }
}

fn request(extra: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: pbx.example.com:8443\r\nUpgrade: websocket\r\n\
         Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn sip_request(extra: &str) -> Vec<u8> {
    request(&format!("Sec-WebSocket-Protocol: sip\r\n{extra}"))
}

/// A client frame: masked with a fixed key.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn open_codec() -> WsCodec {
    let mut c = WsCodec::new(limits(), Arc::new(OriginPolicy::default()));
    c.push(0, &sip_request(""));
    match c.poll(0) {
        Ok(Some(WsFrame::Reply(r))) => assert!(r.starts_with(b"HTTP/1.1 101 ")),
        other => panic!("{other:?}"),
    }
    assert!(c.is_open());
    c
}

fn refusal(req: &[u8], policy: OriginPolicy) -> Refusal {
    let mut c = WsCodec::new(limits(), Arc::new(policy));
    c.push(0, req);
    match c.poll(0) {
        Err(WsError::Handshake(r)) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn handshake_accepts_with_rfc_6455_accept_value_and_sip() {
    let mut c = WsCodec::new(limits(), Arc::new(OriginPolicy::default()));
    c.push(0, &sip_request("Origin: https://PBX.example.com:8080\r\n"));
    let Ok(Some(WsFrame::Reply(r))) = c.poll(0) else {
        panic!("no 101");
    };
    let r = std::str::from_utf8(r).expect("utf8");
    assert!(r.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{r}");
    assert!(
        r.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
        "{r}"
    );
    assert!(r.contains("Sec-WebSocket-Protocol: sip\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\n"));
}

#[test]
fn handshake_refusals_name_their_status() {
    let def = OriginPolicy::default;
    assert_eq!(refusal(&request(""), def()), Refusal::NoSipProtocol);
    assert_eq!(
        refusal(
            &request("Sec-WebSocket-Protocol: chat, superchat\r\n"),
            def()
        ),
        Refusal::NoSipProtocol
    );
    let v8 = String::from_utf8(sip_request(""))
        .expect("utf8")
        .replace("Version: 13", "Version: 8");
    assert_eq!(refusal(v8.as_bytes(), def()), Refusal::Version);
    assert!(Refusal::Version.response().starts_with(b"HTTP/1.1 426"));
    let post = String::from_utf8(sip_request(""))
        .expect("utf8")
        .replace("GET /", "POST /");
    assert_eq!(refusal(post.as_bytes(), def()), Refusal::BadRequest);
    let short_key = String::from_utf8(sip_request(""))
        .expect("utf8")
        .replace(KEY, "c2hvcnQ=");
    assert_eq!(refusal(short_key.as_bytes(), def()), Refusal::BadRequest);
    let no_upgrade = String::from_utf8(sip_request(""))
        .expect("utf8")
        .replace("Upgrade: websocket", "Upgrade: h2c");
    assert_eq!(refusal(no_upgrade.as_bytes(), def()), Refusal::BadRequest);
    // Another site's page, under the default (same host) policy.
    assert_eq!(
        refusal(&sip_request("Origin: https://evil.example\r\n"), def()),
        Refusal::Origin
    );
    assert!(Refusal::Origin.response().starts_with(b"HTTP/1.1 403"));
}

#[test]
fn origin_policies() {
    let same = OriginPolicy::default();
    assert!(same.allows(None, Some("pbx:8443")), "not a browser");
    assert!(same.allows(Some("https://pbx:8080"), Some("pbx:8443")));
    assert!(same.allows(Some("http://[::1]:8080"), Some("[::1]:8443")));
    assert!(!same.allows(Some("https://pbx.evil:8080"), Some("pbx:8443")));
    assert!(!same.allows(Some("null"), Some("pbx:8443")));
    assert!(!same.allows(Some("https://pbx"), None));
    let listed = OriginPolicy::new(&["https://crm.example.com/".into()]);
    assert!(listed.allows(Some("https://CRM.example.com"), Some("pbx")));
    assert!(
        !listed.allows(Some("https://pbx"), Some("pbx")),
        "list only"
    );
    let any = OriginPolicy::new(&["*".into()]);
    assert!(any.allows(Some("https://anything"), Some("pbx")));
}

#[test]
fn oversized_or_endless_handshake_is_refused() {
    let mut c = WsCodec::new(limits(), Arc::new(OriginPolicy::default()));
    c.push(0, b"GET / HTTP/1.1\r\nX: ");
    c.push(0, &vec![b'a'; MAX_HANDSHAKE]);
    assert_eq!(c.poll(0), Err(WsError::Handshake(Refusal::BadRequest)));
    // Slow: partial past the limit.
    let mut c = WsCodec::new(limits(), Arc::new(OriginPolicy::default()));
    c.push(100, b"GET / HTTP/1.1\r\n");
    assert_eq!(c.poll(100), Ok(None));
    assert!(!c.stalled(5_100));
    assert!(c.stalled(5_101));
}

#[test]
fn message_split_at_every_byte_comes_out_whole() {
    let msg = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    let mut wire = sip_request("");
    let hs = wire.len();
    wire.extend(client_frame(true, OP_TEXT, msg));
    for cut in 1..wire.len() {
        let mut c = WsCodec::new(limits(), Arc::new(OriginPolicy::default()));
        let mut got = Vec::new();
        for part in [&wire[..cut], &wire[cut..]] {
            c.push(0, part);
            while let Some(f) = c.poll(0).expect("poll") {
                match f {
                    WsFrame::Message(m) => got.push(m.to_vec()),
                    WsFrame::Reply(_) => {}
                    WsFrame::Close(_) => panic!("close"),
                }
            }
        }
        assert_eq!(got, vec![msg.to_vec()], "cut at {cut} (handshake {hs})");
    }
}

#[test]
fn fragments_are_reassembled_and_control_frames_interleave() {
    let mut c = open_codec();
    c.push(0, &client_frame(false, OP_TEXT, b"REGISTER "));
    c.push(0, &client_frame(true, OP_PING, b"hi"));
    c.push(0, &client_frame(false, OP_CONTINUATION, b"sip:x "));
    c.push(0, &client_frame(true, OP_PONG, b""));
    c.push(0, &client_frame(true, OP_CONTINUATION, b"SIP/2.0\r\n\r\n"));
    let Ok(Some(WsFrame::Reply(pong))) = c.poll(0) else {
        panic!("no pong");
    };
    assert_eq!(pong, [0x8a, 2, b'h', b'i']);
    assert_eq!(
        c.poll(0),
        Ok(Some(WsFrame::Message(b"REGISTER sip:x SIP/2.0\r\n\r\n")))
    );
    assert_eq!(c.poll(0), Ok(None));
}

#[test]
fn keepalives_are_skipped_and_close_is_answered() {
    let mut c = open_codec();
    c.push(0, &client_frame(true, OP_TEXT, b"\r\n\r\n"));
    c.push(0, &client_frame(true, OP_TEXT, b""));
    c.push(0, &client_frame(true, OP_CLOSE, &1001u16.to_be_bytes()));
    c.push(0, &client_frame(true, OP_TEXT, b"after close"));
    assert_eq!(c.poll(0), Ok(Some(WsFrame::Close(&[0x88, 2, 0x03, 0xe8]))));
    assert_eq!(c.poll(0), Ok(None), "nothing is read after a close");
}

#[test]
fn protocol_violations_end_the_connection() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked", vec![0x81, 0x02, b'h', b'i']),
        ("reserved bits", {
            let mut f = client_frame(true, OP_TEXT, b"x");
            f[0] |= 0x40;
            f
        }),
        ("unknown opcode", client_frame(true, 3, b"x")),
        (
            "continuation first",
            client_frame(true, OP_CONTINUATION, b"x"),
        ),
        ("fragmented ping", client_frame(false, OP_PING, b"x")),
        ("long ping", client_frame(true, OP_PING, &[0u8; 126])),
        ("text inside a message", {
            let mut f = client_frame(false, OP_TEXT, b"a");
            f.extend(client_frame(true, OP_TEXT, b"b"));
            f
        }),
    ];
    for (what, wire) in cases {
        let mut c = open_codec();
        c.push(0, &wire);
        assert_eq!(c.poll(0), Err(WsError::Protocol), "{what}");
        assert_eq!(c.poll(0), Err(WsError::Protocol), "{what}: sticks");
    }
    assert_eq!(WsError::Protocol.farewell(), [0x88, 2, 0x03, 0xea]);
}

#[test]
fn too_large_is_refused_before_its_payload_arrives() {
    let mut c = open_codec();
    // Only the header of a 1 GiB frame.
    c.push(
        0,
        &[0x81, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4],
    );
    assert_eq!(c.poll(0), Err(WsError::TooLarge));
    // Fragments that add up past the limit.
    let mut c = open_codec();
    c.push(0, &client_frame(false, OP_TEXT, &[b'a'; 1500]));
    c.push(0, &client_frame(true, OP_CONTINUATION, &[b'a'; 600]));
    assert_eq!(c.poll(0), Err(WsError::TooLarge));
    assert_eq!(WsError::TooLarge.farewell(), [0x88, 2, 0x03, 0xf1]);
}

#[test]
fn a_message_partial_too_long_is_stalled() {
    let mut c = open_codec();
    c.push(1_000, &client_frame(false, OP_TEXT, b"half"));
    assert_eq!(c.poll(1_000), Ok(None));
    assert!(!c.stalled(6_000));
    assert!(c.stalled(6_001));
}

#[test]
fn frame_message_lengths() {
    for n in [0usize, 125, 126, 0xffff, 0x10000] {
        let msg = vec![b'a'; n];
        let mut out = Vec::new();
        frame_message(&msg, &mut out);
        assert_eq!(out[0], 0x81);
        let (len, at) = match out[1] {
            126 => (usize::from(u16::from_be_bytes([out[2], out[3]])), 4),
            127 => (
                u64::from_be_bytes(out[2..10].try_into().expect("8")) as usize,
                10,
            ),
            l => (usize::from(l), 2),
        };
        assert_eq!((len, out.len() - at), (n, n));
    }
    let mut out = Vec::new();
    frame_message(&[0xff, 0xfe], &mut out);
    assert_eq!(out[0], 0x82, "not UTF-8: binary");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x1234_5678u32;
    for _ in 0..2000 {
        let mut c = open_codec();
        let mut wire = Vec::new();
        for _ in 0..(seed % 64) {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            wire.push((seed >> 16) as u8);
        }
        c.push(0, &wire);
        for _ in 0..8 {
            if !matches!(c.poll(0), Ok(Some(_))) {
                break;
            }
        }
    }
}

#[test]
fn a_read_full_of_pings_is_answered_ping_by_ping() {
    let mut c = open_codec();
    let mut wire = Vec::new();
    for i in 0..10_000u32 {
        wire.extend(client_frame(true, OP_PING, &i.to_be_bytes()));
    }
    c.push(0, &wire);
    let mut pongs = 0u32;
    while let Ok(Some(WsFrame::Reply(r))) = c.poll(0) {
        assert_eq!(&r[2..], &pongs.to_be_bytes(), "pong {pongs}");
        pongs += 1;
    }
    assert_eq!(pongs, 10_000);
}

#[test]
fn keepalives_and_pongs_leave_nothing_partial() {
    let mut c = open_codec();
    c.push(1_000, &client_frame(true, OP_TEXT, b"\r\n\r\n"));
    c.push(1_000, &client_frame(true, OP_PONG, b""));
    assert_eq!(c.poll(1_000), Ok(None));
    assert!(
        !c.stalled(60_000),
        "an idle connection is not a slow sender"
    );
}

#[test]
fn a_continuation_over_the_limit_is_refused_from_its_header() {
    let mut c = open_codec();
    c.push(0, &client_frame(false, OP_TEXT, &[b'a'; 1500]));
    // Only the header of a 600-byte continuation: 1500 + 600 > 2000.
    c.push(0, &[0x80, 0x80 | 126, 0x02, 0x58, 1, 2, 3, 4]);
    assert_eq!(c.poll(0), Err(WsError::TooLarge));
    // A data frame inside a message, refused from its header too.
    let mut c = open_codec();
    c.push(0, &client_frame(false, OP_TEXT, b"a"));
    c.push(0, &[0x81, 0x80 | 126, 0x03, 0x00, 1, 2, 3, 4]);
    assert_eq!(c.poll(0), Err(WsError::Protocol));
}
