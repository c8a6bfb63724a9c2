//! RFC 5118 torture messages (SIP over IPv6) at parser level: one test per
//! message of section 4, asserting what the RFC says of it (see
//! tests/sip-ipv6-torture/README.md): the valid ones parse, pass `check` and
//! give the right hosts, ports, `received` values and SDP addresses; 4.2 gets a
//! 400; 4.10's extra colon is accepted as the address the sender meant.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use shards::media::sdp;
use shards::sip::{Contact, ErrorKind, Host, Message, Method, ResponseDest, Transport, Writer};

fn load(name: &str) -> &'static [u8] {
    let path = format!(
        "{}/tests/sip-ipv6-torture/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Box::leak(data.into_boxed_slice())
}

fn valid(name: &str) -> Message<'static> {
    let msg = Message::parse(load(name)).unwrap_or_else(|e| panic!("{name}: parse: {e}"));
    if let Err(e) = msg.check() {
        panic!("{name}: check: {e}");
    }
    msg
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn contact_host(m: &Message<'_>) -> Host<'static> {
    match m.contacts().next().unwrap().unwrap() {
        Contact::Addr(na) => leak_host(na.uri.host.unwrap()),
        Contact::Star => panic!("star"),
    }
}

fn leak_host(h: Host<'_>) -> Host<'static> {
    match h {
        Host::Name(n) => Host::Name(Box::leak(n.to_string().into_boxed_str())),
        Host::V4(a) => Host::V4(a),
        Host::V6(a) => Host::V6(a),
    }
}

/// The 400 we would send for a request, with the top Via stamped for `src`.
fn answer(m: &Message<'_>, src: SocketAddr) -> Vec<u8> {
    let mut out = Vec::new();
    let w = Writer::response_to(&mut out, m, 400, None, Some("t1"), Some(src));
    w.finish(b"");
    out
}

#[test]
fn rfc5118_4_1_ipv6_good() {
    let m = valid("ipv6-good");
    assert_eq!(m.method(), Some(Method::Register));
    let ruri = m.request_uri().unwrap();
    assert_eq!(ruri.host, Some(Host::V6(v6("2001:db8::10"))));
    assert_eq!(ruri.port, None);
    let via = m.top_via().unwrap();
    assert_eq!(via.host, Host::V6(v6("2001:db8::9:1")));
    assert_eq!((via.transport, via.port), (Transport::Udp, None));
    assert_eq!(contact_host(&m), Host::V6(v6("2001:db8::1")));
}

#[test]
fn rfc5118_4_2_ipv6_bad_is_400() {
    let m = Message::parse(load("ipv6-bad")).expect("parse finds the start line");
    let e = m.check().expect_err("no [] around the IPv6 address");
    assert_eq!(e.kind(), ErrorKind::RequestUri, "{e}");
    assert_eq!(e.status(), Some(400), "{e}");
    // The 400 can be built and goes back to the IPv6 sender.
    let src: SocketAddr = "[2001:db8::9:1]:5060".parse().unwrap();
    let resp = answer(&m, src);
    let r = Message::parse(&resp).unwrap();
    assert_eq!(r.status_code(), Some(400));
    assert_eq!(r.top_via().unwrap().host, Host::V6(v6("2001:db8::9:1")));
}

#[test]
fn rfc5118_4_3_port_ambiguous_is_an_address() {
    let m = valid("port-ambiguous");
    let ruri = m.request_uri().unwrap();
    // Eight groups once expanded: 5070 is the last group, not a port.
    assert_eq!(ruri.host, Some(Host::V6(v6("2001:db8::10:5070"))));
    assert_eq!(ruri.port, None);
    assert_eq!(ruri.port_or_default(), 5060);
}

#[test]
fn rfc5118_4_4_port_unambiguous() {
    let m = valid("port-unambiguous");
    let ruri = m.request_uri().unwrap();
    assert_eq!(ruri.host, Some(Host::V6(v6("2001:db8::10"))));
    assert_eq!(ruri.port, Some(5070));
}

#[test]
fn rfc5118_4_5_received_with_brackets_is_accepted() {
    let m = valid("via-received-param-with-delim");
    assert_eq!(m.method(), Some(Method::Bye));
    let via = m.top_via().unwrap();
    assert_eq!(via.host, Host::V6(v6("2001:db8::9:1")));
    assert_eq!(via.received(), Some("[2001:db8::9:255]"));
    assert_eq!(via.branch(), Some("z9hG4bKas3-111"));
    // Processing continues: our response stamps the real source, in the
    // strict form (no brackets), replacing the bracketed one.
    let src: SocketAddr = "[2001:db8::9:255]:5060".parse().unwrap();
    let resp = answer(&m, src);
    let r = Message::parse(&resp).unwrap();
    let top = r.top_via().unwrap();
    assert_eq!(top.received(), Some("2001:db8::9:255"));
    assert_eq!(
        top.response_dest(src),
        ResponseDest::Addr("[2001:db8::9:255]:5060".parse().unwrap())
    );
}

#[test]
fn rfc5118_4_5_received_without_brackets() {
    let m = valid("via-received-param-no-delim");
    assert_eq!(m.method(), Some(Method::Options));
    let via = m.top_via().unwrap();
    assert_eq!(via.received(), Some("2001:db8::9:255"));
    assert_eq!(
        via.received().unwrap().parse::<IpAddr>().unwrap(),
        IpAddr::V6(v6("2001:db8::9:255"))
    );
    assert_eq!(contact_host(&m), Host::V6(v6("2001:db8::9:1")));
}

#[test]
fn rfc5118_4_6_ipv6_in_sdp() {
    let m = valid("ipv6-in-sdp");
    assert_eq!(
        m.request_uri().unwrap().host,
        Some(Host::V6(v6("2001:db8::10")))
    );
    assert_eq!(m.to().unwrap().uri.host, Some(Host::V6(v6("2001:db8::10"))));
    assert_eq!(m.top_via().unwrap().host, Host::V6(v6("2001:db8::20")));
    let s = sdp::parse(m.body()).unwrap();
    let addr = IpAddr::V6(v6("2001:db8::20"));
    assert_eq!(s.session_conn, Some(addr));
    let audio = s.audio.unwrap();
    assert_eq!((audio.conn, audio.port), (Some(addr), 6000));
    assert_eq!(audio.payload_types, vec![2]);
    assert_eq!(s.other_media, 1);
}

#[test]
fn rfc5118_4_7_mixed_ipv4_ipv6_vias() {
    let m = valid("mult-ip-in-header");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host, Host::V6(v6("2001:db8::9:1")));
    assert_eq!(
        (vias[0].transport, vias[0].port),
        (Transport::Udp, Some(6050))
    );
    assert_eq!(vias[1].host, Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(vias[2].host, Host::V6(v6("2001:db8::9:255")));
    assert_eq!(vias[2].transport, Transport::Tcp);
    assert_eq!(vias[2].received(), Some("192.0.2.200"));
    // The response goes to the top Via's sent-by port at the source address.
    let src: SocketAddr = "[2001:db8::9:1]:6050".parse().unwrap();
    assert_eq!(vias[0].response_dest(src), ResponseDest::Addr(src));
    let r = answer(&m, src);
    let r = Message::parse(&r).unwrap();
    assert_eq!(r.vias().count(), 3);
    assert_eq!(
        r.top_via().unwrap().received(),
        None,
        "sent-by is the source"
    );
}

#[test]
fn rfc5118_4_8_multiple_addresses_in_sdp() {
    let m = valid("mult-ip-in-sdp");
    let s = sdp::parse(m.body()).unwrap();
    // No session-level c=; the audio stream's own c= is IPv4, the video's IPv6.
    assert_eq!(s.session_conn, None);
    let audio = s.audio.unwrap();
    assert_eq!(audio.conn, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
    assert_eq!(audio.port, 22334);
    assert_eq!(s.other_media, 1);
    // Proxied: the audio goes to the relay, the video is refused (port 0) and
    // keeps its own IPv6 c= line.
    let relay = sdp::Relay {
        addr: IpAddr::V6(v6("2001:db8::99")),
        rtp_port: 40000,
    };
    let out = String::from_utf8(sdp::rewrite(m.body(), &relay).unwrap()).unwrap();
    assert!(
        out.contains("m=audio 40000 RTP/AVP 0\r\nc=IN IP6 2001:db8::99\r\n"),
        "{out}"
    );
    assert!(
        out.contains("m=video 0 RTP/AVP 107\r\nc=IN IP6 2001:db8::1\r\n"),
        "{out}"
    );
}

#[test]
fn rfc5118_4_9_ipv4_mapped() {
    let m = valid("ipv4-mapped-ipv6");
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    let mapped = |s: &str| Host::V6(s.parse::<Ipv4Addr>().unwrap().to_ipv6_mapped());
    assert_eq!(vias[0].host, mapped("192.0.2.10"));
    assert_eq!(vias[0].port, Some(19823));
    assert_eq!(vias[1].host, mapped("192.0.2.2"));
    assert_eq!(contact_host(&m), mapped("192.0.2.2"));
    let s = sdp::parse(m.body()).unwrap();
    let addr = IpAddr::V6(v6("::ffff:192.0.2.2"));
    assert_eq!(s.session_conn, Some(addr));
    assert_eq!(s.audio.unwrap().conn, Some(addr));
}

#[test]
fn rfc5118_4_10_extra_colon_is_read_as_meant() {
    let m = valid("ipv6-bug-abnf-3-colons");
    let meant = Host::V6(v6("2001:db8::192.0.2.1"));
    assert_eq!(m.request_uri().unwrap().host, Some(meant));
    assert_eq!(m.to().unwrap().uri.host, Some(meant));
}

#[test]
fn rfc5118_4_10_correct_syntax() {
    let m = valid("ipv6-correct-abnf-2-colons");
    let host = Host::V6(v6("2001:db8::192.0.2.1"));
    assert_eq!(m.request_uri().unwrap().host, Some(host));
    assert_eq!(m.to().unwrap().uri.host, Some(host));
    assert_eq!(
        m.top_via().unwrap().host,
        Host::Name("lab1.east.example.com")
    );
}
