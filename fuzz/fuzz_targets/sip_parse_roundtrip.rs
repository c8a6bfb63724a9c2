//! SIP parser and serializer: `Message::parse` and every lazy accessor never
//! panic; a message that passes `check` survives a round trip through
//! `Writer` (same start line, headers, typed values and body); a response built
//! with `Writer::response_to` for any request parses, and a stamped top Via
//! carries the source address.

use std::fmt::Debug;
use std::net::SocketAddr;

use shards::sip::{HeaderName, Message, StartLine, Via, Writer};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

const SOURCES: [&str; 2] = ["192.0.2.7:5062", "[2001:db8::7]:5062"];

fn run(data: &[u8]) {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let before = typed(&msg);
    let valid = msg.check();
    if msg.is_request() {
        for src in SOURCES {
            answer(&msg, src.parse().expect("literal address"));
        }
    }
    if valid.is_ok() {
        round_trip(&msg, &before);
    }
}

/// Every typed accessor, as text (the values borrow different buffers).
fn typed(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    fn put(out: &mut Vec<String>, v: impl Debug) {
        out.push(format!("{v:?}"));
    }
    put(&mut out, start_key(msg));
    put(&mut out, msg.method());
    put(&mut out, msg.status_code());
    put(
        &mut out,
        msg.request_uri()
            .map(|u| (u, u.user_unescaped(), u.port_or_default())),
    );
    put(&mut out, msg.call_id());
    put(&mut out, msg.cseq());
    put(
        &mut out,
        msg.from().map(|n| (n, n.display_name_unquoted(), n.tag())),
    );
    put(
        &mut out,
        msg.to().map(|n| (n, n.display_name_unquoted(), n.tag())),
    );
    put(&mut out, msg.from_tag());
    put(&mut out, msg.to_tag());
    put(&mut out, msg.top_via());
    for via in msg.vias() {
        put(
            &mut out,
            via.map(|v| {
                let params: Vec<_> = v.params.iter().collect();
                (
                    v,
                    v.branch(),
                    v.is_rfc3261(),
                    v.received(),
                    v.rport(),
                    v.maddr(),
                    v.ttl(),
                    v.port_or_default(),
                    params,
                )
            }),
        );
    }
    for c in msg.contacts() {
        put(&mut out, c);
    }
    for name in [HeaderName::Route, HeaderName::RecordRoute] {
        for n in msg.name_addrs(name) {
            put(&mut out, n);
        }
    }
    put(&mut out, msg.max_forwards());
    put(&mut out, msg.expires());
    put(
        &mut out,
        msg.content_type()
            .map(|t| t.map(|t| (t, t.is("application", "sdp")))),
    );
    for name in [
        HeaderName::Supported,
        HeaderName::Require,
        HeaderName::Allow,
    ] {
        let tokens: Vec<_> = msg.tokens(name).collect();
        put(&mut out, tokens);
    }
    for h in msg.headers() {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        let values: Vec<_> = msg.header_values(h.name).collect();
        put(&mut out, (h.name, values, msg.header_count(h.name)));
    }
    put(&mut out, msg.body());
    out
}

/// A 400 for any request, stamped for `src`, parses; its Vias are the
/// request's, the top one stamped.
fn answer(req: &Message<'_>, src: SocketAddr) {
    let mut out = Vec::new();
    let w = Writer::response_to(&mut out, req, 400, None, Some("fz1"), Some(src));
    let len = w.finish(b"");
    assert_eq!(len, out.len());
    let resp = match Message::parse(&out) {
        Ok(r) => r,
        Err(e) => panic!(
            "response to a request does not parse: {e}\n{}",
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(resp.status_code(), Some(400));
    // No CR but in CRLF: a copied value cannot end a line for another parser.
    for (i, &b) in out.iter().enumerate() {
        assert!(
            b != b'\r' || out.get(i + 1) == Some(&b'\n'),
            "bare CR in our response"
        );
    }
    assert!(resp.body().is_empty());
    assert_eq!(
        resp.header_count(HeaderName::Via),
        req.header_count(HeaderName::Via)
    );
    if let Ok(top) = req.top_via() {
        let _ = top.response_dest(src);
        let mut stamped = Vec::new();
        top.write_stamped(&mut stamped, src);
        let text = std::str::from_utf8(&stamped).expect("stamped Via is UTF-8");
        let v = match Via::parse(text) {
            Ok(v) => v,
            Err(e) => panic!(
                "stamped Via does not parse: {e}: {text:?} (from {:?})",
                top.as_str()
            ),
        };
        if top.rport().is_some() || top.host.ip() != Some(src.ip()) {
            let got = v.received().map(|r| r.parse::<std::net::IpAddr>());
            assert_eq!(got, Some(Ok(src.ip())), "received of {text:?}");
        }
        if top.rport().is_some() {
            assert_eq!(v.rport(), Some(Some(src.port())), "rport of {text:?}");
        }
        assert_eq!(v.branch(), top.branch());
    }
}

/// Writes `msg` again with `Writer` and checks what the parser reads back.
/// Typed values keep their text as written, folds included, so they must be
/// equal when nothing was folded; either way a second round trip changes
/// nothing.
fn round_trip(msg: &Message<'_>, before: &[String]) {
    let out = write(msg);
    let again = reparse(&out);
    let after = typed(&again);
    if !msg.headers().any(|h| h.is_folded()) {
        same(before, &after);
    }
    let out2 = write(&again);
    assert_eq!(out, out2, "second round trip differs");
    same(&after, &typed(&reparse(&out2)));
}

fn same(a: &[String], b: &[String]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x, y, "typed value changed in the round trip");
    }
}

fn write(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = match msg.start_line() {
        StartLine::Request { method, uri, .. } => Writer::request(&mut out, method.as_str(), uri),
        StartLine::Response { code, reason, .. } => Writer::response(&mut out, code, Some(reason)),
    };
    for h in msg.headers() {
        if h.name != HeaderName::ContentLength {
            w.header(h.raw_name, &h.value());
        }
    }
    w.finish(msg.body());
    let again = reparse(&out);
    assert_eq!(again.body(), msg.body());
    assert_eq!(again.content_length(), Some(msg.body().len() as u32));
    let old: Vec<_> = msg
        .headers()
        .filter(|h| h.name != HeaderName::ContentLength)
        .map(|h| (h.name, normalized(&h.value())))
        .collect();
    let new: Vec<_> = again
        .headers()
        .filter(|h| h.name != HeaderName::ContentLength)
        .map(|h| (h.name, h.value().into_owned()))
        .collect();
    assert_eq!(old, new, "headers changed in the round trip");
    assert_eq!(start_key(&again), start_key(msg), "start line changed");
    out
}

/// The start line without the version (`check` accepts `sip/2.0` in any case;
/// `Writer` writes `SIP/2.0`).
fn start_key(msg: &Message<'_>) -> String {
    match msg.start_line() {
        StartLine::Request { method, uri, .. } => format!("{method:?} {uri}"),
        StartLine::Response { code, reason, .. } => format!("{code} {reason}"),
    }
}

fn reparse(out: &[u8]) -> Message<'_> {
    let again = match Message::parse(out) {
        Ok(m) => m,
        Err(e) => panic!(
            "re-serialized message does not parse: {e}\n{}",
            String::from_utf8_lossy(out)
        ),
    };
    if let Err(e) = again.check() {
        panic!(
            "re-serialized message fails check: {e}\n{}",
            String::from_utf8_lossy(out)
        );
    }
    again
}

/// What a value becomes once written: CR/LF are spaces, outer white space trimmed.
fn normalized(v: &str) -> String {
    v.replace(['\r', '\n'], " ")
        .trim_matches([' ', '\t'])
        .to_string()
}
