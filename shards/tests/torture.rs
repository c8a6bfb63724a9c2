//! RFC 4475 torture messages at parser level: one test per message, asserting
//! the outcome tests/sip-torture/README.md gives (valid: parse + check succeed
//! and the accessors give the right values; invalid: the right error, and
//! whether a 400/505 can be sent or the message is dropped).

use std::net::{IpAddr, Ipv4Addr};

use shards::sip::{
    Contact, ErrorKind, HeaderName, Host, Message, Method, NameAddr, ParseError, Scheme, Transport,
};

fn load(name: &str) -> &'static [u8] {
    let path = format!(
        "{}/tests/sip-torture/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Box::leak(data.into_boxed_slice())
}

/// Parses and checks a message that must be accepted.
fn valid(name: &str) -> Message<'static> {
    let msg = Message::parse(load(name)).unwrap_or_else(|e| panic!("{name}: parse: {e}"));
    if let Err(e) = msg.check() {
        panic!("{name}: check: {e}");
    }
    // The fast tag accessors agree with the full parse.
    assert_eq!(msg.from_tag(), msg.from().unwrap().tag(), "{name}");
    assert_eq!(msg.to_tag(), msg.to().unwrap().tag(), "{name}");
    msg
}

/// Parses a message that must fail `check` (parse itself succeeds); returns the
/// error after asserting its kind, text and status (400/505, or None = drop).
fn rejected(name: &str, kind: ErrorKind, text: &str, status: Option<u16>) -> ParseError {
    let msg = Message::parse(load(name)).unwrap_or_else(|e| panic!("{name}: parse: {e}"));
    let e = msg.check().expect_err(name);
    assert_eq!(e.kind(), kind, "{name}: {e}");
    assert_eq!(e.to_string(), text, "{name}");
    assert_eq!(e.status(), status, "{name}: {e}");
    e
}

/// A message that `parse` itself refuses: dropped.
fn dropped(name: &str, kind: ErrorKind) {
    let e = Message::parse(load(name)).expect_err(name);
    assert_eq!(e.kind(), kind, "{name}: {e}");
    assert_eq!(e.status(), None);
}

fn addr<'a>(m: &NameAddr<'a>) -> &'a str {
    m.uri.as_str()
}

// ---- 3.1.1 valid messages ----

#[test]
fn wsinv() {
    let m = valid("wsinv");
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(
        m.request_uri().unwrap().params.get("unknownparam"),
        Some(None)
    );
    let to = m.to().unwrap();
    assert_eq!(to.tag(), Some("1918181833n"));
    assert_eq!(addr(&to), "sip:vivekg@chair-dnrc.example.com");
    let from = m.from().unwrap();
    assert_eq!(from.display_name_unquoted().unwrap(), "J Rosenberg \\\"");
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].host, Host::V4(Ipv4Addr::new(192, 0, 2, 2)));
    assert_eq!(
        (vias[0].transport, vias[0].branch()),
        (Transport::Udp, Some("390skdjuw"))
    );
    assert_eq!(vias[1].host, Host::Name("spindle.example.com"));
    assert_eq!(
        (vias[1].transport, vias[1].branch()),
        (Transport::Tcp, Some("z9hG4bK9ikj8"))
    );
    assert_eq!(vias[2].host, Host::V4(Ipv4Addr::new(192, 168, 255, 111)));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.header(HeaderName::Subject).unwrap(), "");
    assert_eq!(
        m.header(HeaderName::parse("newfangledheader")).unwrap(),
        "newfangled value continued newfangled value"
    );
    let contact = match m.contacts().next().unwrap().unwrap() {
        Contact::Addr(a) => a,
        Contact::Star => panic!("star"),
    };
    assert_eq!(
        contact.display_name_unquoted().unwrap(),
        "Quoted string \"\""
    );
    assert_eq!(contact.params.value("newparam"), Some("newvalue"));
    assert_eq!(contact.params.get("secondparam"), Some(None));
    assert_eq!(contact.params.value("q"), Some("0.33"));
    let route = m.name_addrs(HeaderName::Route).next().unwrap().unwrap();
    assert!(route.uri.params.contains("lr"));
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth() {
    let m = valid("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(Method::Other(method)));
    assert_eq!(m.cseq().unwrap().method.as_str(), method);
    let uri = m.request_uri().unwrap();
    assert_eq!(
        uri.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(uri.host, Some(Host::Name("example.com")));
    assert_eq!(
        m.to().unwrap().display_name_unquoted().unwrap(),
        "BEL:\x07 NUL:\0 DEL:\x7f"
    );
    let from = m.from().unwrap();
    assert_eq!(from.display_name, Some("token1~` token2'+_ token3*%!.-"));
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(m.max_forwards().unwrap(), Some(255));
    assert_eq!(
        m.call_id(),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    let ext = m
        .headers()
        .find(|h| matches!(h.name, HeaderName::Other(_)))
        .unwrap();
    assert_eq!(ext.raw_name, "extensionHeader-!.%*+_`'~");
    assert_eq!(ext.raw_value, "\u{feff}大停電");
}

#[test]
fn esc01() {
    let m = valid("esc01");
    let uri = m.request_uri().unwrap();
    assert_eq!(
        uri.user_unescaped().unwrap().as_ref(),
        b"sips:user@example.com"
    );
    assert_eq!(uri.host, Some(Host::Name("example.net")));
    let to = m.to().unwrap();
    assert_eq!(to.uri.user_unescaped().unwrap().as_ref(), b"user");
    let from = m.from().unwrap();
    assert_eq!(
        from.uri.user_unescaped().unwrap().as_ref(),
        b"I have spaces"
    );
    assert_eq!(from.tag(), Some("938"));
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!("star")
    };
    assert_eq!(c.uri.user_unescaped().unwrap().as_ref(), b"caller");
    let p: Vec<_> = c.uri.params.iter().map(|p| (p.name, p.value)).collect();
    assert_eq!(p, [("%6C%72", None), ("n%61me", Some("v%61lue%25%34%31"))]);
    assert_eq!(
        shards::sip::unescape("v%61lue%25%34%31").as_ref(),
        b"value%41"
    );
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn escnull() {
    let m = valid("escnull");
    assert_eq!(
        m.to().unwrap().uri.user_unescaped().unwrap().as_ref(),
        b"null-\0-null"
    );
    let users: Vec<Vec<u8>> = m
        .contacts()
        .map(|c| match c.unwrap() {
            Contact::Addr(a) => a.uri.user_unescaped().unwrap().into_owned(),
            Contact::Star => Vec::new(),
        })
        .collect();
    assert_eq!(users, [b"\0".to_vec(), b"\0\0".to_vec()]);
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn esc02() {
    let m = valid("esc02");
    assert_eq!(m.method(), Some(Method::Other("RE%47IST%45R")));
    assert_eq!(m.cseq().unwrap().method, Method::Other("RE%47IST%45R"));
    assert_eq!(m.to().unwrap().display_name_unquoted().unwrap(), "%Z%45");
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(m.header_count(HeaderName::parse("C%6Fntact")), 1);
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK209%fzsnel234"));
}

#[test]
fn lwsdisp() {
    let m = valid("lwsdisp");
    let from = m.from().unwrap();
    assert_eq!(from.display_name, Some("caller"));
    assert_eq!(from.tag(), Some("323"));
}

#[test]
fn longreq() {
    let m = valid("longreq");
    let to = m.to().unwrap();
    assert!(to
        .display_name_unquoted()
        .unwrap()
        .contains("extremeextreme"));
    assert_eq!(to.uri.port, Some(6000));
    let last = to.uri.params.iter().last().unwrap();
    assert!(last.name.starts_with("verylong") && last.name.ends_with("ParameterNameWithNoValue"));
    assert_eq!(last.value, None);
    assert_eq!(to.uri.params.value("longparamnamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamenamename"), Some("shortvalue"));
    assert!(m.from().unwrap().tag().unwrap().len() > 100);
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, Host::Name("sip33.example.com"));
    assert_eq!(vias[33].received(), Some("192.0.2.5"));
    let unknown = m
        .headers()
        .find(|h| h.raw_name.starts_with("Unknown-LongLong"))
        .unwrap();
    assert!(unknown.raw_value.len() > 200);
    assert!(m.call_id().unwrap().ends_with("longcallid"));
    assert_eq!(m.body().len(), 150);
}

#[test]
fn dblreq() {
    let data = load("dblreq");
    let m = valid("dblreq");
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.call_id(), Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412"));
    assert!(m.body().is_empty());
    assert!(m.len() < data.len());
}

#[test]
fn semiuri() {
    let m = valid("semiuri");
    let uri = m.request_uri().unwrap();
    assert_eq!(uri.user, Some("user;par=u%40example.net"));
    assert_eq!(uri.host, Some(Host::Name("example.com")));
    assert!(uri.params.is_empty());
    assert_eq!(m.header_values(HeaderName::Accept).count(), 6);
}

#[test]
fn transports() {
    let m = valid("transports");
    let t: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
    assert_eq!(
        t,
        [
            Transport::Udp,
            Transport::Sctp,
            Transport::Tls,
            Transport::Other("UNKNOWN"),
            Transport::Tcp
        ]
    );
    assert_eq!(m.call_id(), Some("transports.kijh4akdnaqjkwendsasfdj"));
}

#[test]
fn mpart01() {
    let m = valid("mpart01");
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(ct.params.value("boundary"), Some("7a9cbec02ceef655"));
    assert_eq!(m.body().len(), 553);
    assert_eq!(m.top_via().unwrap().rport(), Some(None));
    assert!(m.header(HeaderName::Identity).is_some());
}

#[test]
fn unreason() {
    let m = valid("unreason");
    assert_eq!(m.status_code(), Some(200));
    assert!(m.reason().unwrap().starts_with("= 2**3 * 5**2 "));
    assert_eq!(m.body().len(), 154);
}

#[test]
fn noreason() {
    let m = valid("noreason");
    assert_eq!((m.status_code(), m.reason()), (Some(100), Some("")));
}

// ---- 3.1.2 invalid messages ----

#[test]
fn badinv01() {
    rejected(
        "badinv01",
        ErrorKind::Header,
        "Via: empty parameter",
        Some(400),
    );
}

#[test]
fn clerr() {
    rejected(
        "clerr",
        ErrorKind::ContentLength,
        "Content-Length: larger than the datagram",
        Some(400),
    );
}

#[test]
fn ncl() {
    rejected(
        "ncl",
        ErrorKind::ContentLength,
        "Content-Length: not a number",
        Some(400),
    );
}

#[test]
fn scalar02() {
    rejected(
        "scalar02",
        ErrorKind::Header,
        "CSeq: sequence number out of range",
        Some(400),
    );
}

#[test]
fn scalarlg() {
    rejected(
        "scalarlg",
        ErrorKind::Header,
        "CSeq: sequence number out of range",
        None,
    );
}

#[test]
fn quotbal() {
    rejected(
        "quotbal",
        ErrorKind::Header,
        "To: unterminated quoted string",
        Some(400),
    );
}

#[test]
fn ltgtruri() {
    rejected(
        "ltgtruri",
        ErrorKind::RequestUri,
        "Request-URI: URI must not be enclosed in <> here",
        Some(400),
    );
}

#[test]
fn lwsruri() {
    rejected(
        "lwsruri",
        ErrorKind::RequestUri,
        "Request-URI: invalid character (white space?) in URI",
        Some(400),
    );
}

#[test]
fn lwsstart() {
    rejected(
        "lwsstart",
        ErrorKind::StartLine,
        "extra white space in request line",
        Some(400),
    );
}

#[test]
fn trws() {
    rejected(
        "trws",
        ErrorKind::StartLine,
        "trailing white space in request line",
        Some(400),
    );
}

#[test]
fn escruri() {
    rejected(
        "escruri",
        ErrorKind::RequestUri,
        "Request-URI: headers (?...) not allowed",
        Some(400),
    );
}

#[test]
fn baddate() {
    rejected(
        "baddate",
        ErrorKind::Header,
        "Date: not an RFC 1123 date in GMT",
        Some(400),
    );
}

#[test]
fn regbadct() {
    rejected(
        "regbadct",
        ErrorKind::Header,
        "Contact: URI with headers must be enclosed in <>",
        Some(400),
    );
}

#[test]
fn badaspec() {
    rejected(
        "badaspec",
        ErrorKind::Header,
        "To: white space inside <>",
        Some(400),
    );
}

#[test]
fn baddn() {
    rejected(
        "baddn",
        ErrorKind::Header,
        "From: invalid display name (quote it)",
        Some(400),
    );
}

#[test]
fn badvers() {
    rejected(
        "badvers",
        ErrorKind::Version,
        "SIP version not supported",
        Some(505),
    );
}

#[test]
fn mismatch01() {
    rejected(
        "mismatch01",
        ErrorKind::CSeqMismatch,
        "CSeq: method does not match the request method",
        Some(400),
    );
}

#[test]
fn mismatch02() {
    let e = rejected(
        "mismatch02",
        ErrorKind::CSeqMismatch,
        "CSeq: method does not match the request method",
        Some(400),
    );
    assert_eq!(e.header_name(), Some("CSeq"));
    let m = Message::parse(load("mismatch02")).unwrap();
    assert_eq!(m.method(), Some(Method::Other("NEWMETHOD")));
}

#[test]
fn bigcode() {
    dropped("bigcode", ErrorKind::StartLine);
}

// ---- 3.2 transaction layer ----

#[test]
fn badbranch() {
    let m = valid("badbranch");
    let via = m.top_via().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK"));
    assert!(!via.is_rfc3261());
}

// ---- 3.3 application layer ----

#[test]
fn insuf() {
    let e = rejected("insuf", ErrorKind::Missing, "From: missing", Some(400));
    assert_eq!(e.header_name(), Some("From"));
    let m = Message::parse(load("insuf")).unwrap();
    assert!(m.call_id().is_none());
    assert!(m.can_respond());
}

#[test]
fn unkscm() {
    let m = valid("unkscm");
    let uri = m.request_uri().unwrap();
    assert!(matches!(uri.scheme, Scheme::Other(_)));
    assert!(uri
        .scheme
        .as_str()
        .eq_ignore_ascii_case("nobodyknowsthisscheme"));
    assert_eq!(uri.opaque(), "totallyopaquecontent");
}

#[test]
fn novelsc() {
    let m = valid("novelsc");
    assert_eq!(m.request_uri().unwrap().scheme, Scheme::Other("soap.beep"));
}

#[test]
fn unksm2() {
    let m = valid("unksm2");
    assert_eq!(m.to().unwrap().uri.scheme, Scheme::Other("isbn"));
    let from = m.from().unwrap();
    assert_eq!(from.uri.scheme, Scheme::Other("http"));
    assert_eq!(from.tag(), Some("3234233"));
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!("star")
    };
    assert_eq!(
        (c.uri.scheme, c.uri.opaque()),
        (Scheme::Other("name"), "John_Smith")
    );
}

#[test]
fn bext01() {
    let m = valid("bext01");
    let req: Vec<_> = m.tokens(HeaderName::Require).collect();
    assert_eq!(req, ["nothingSupportsThis", "nothingSupportsThisEither"]);
    let preq: Vec<_> = m.tokens(HeaderName::ProxyRequire).collect();
    assert_eq!(preq, ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]);
    assert_eq!(m.top_via().unwrap().transport, Transport::Tls);
}

#[test]
fn invut() {
    let m = valid("invut");
    assert!(m
        .content_type()
        .unwrap()
        .unwrap()
        .is("application", "unknownformat"));
    assert_eq!(m.body().len(), 40);
    assert!(m.body().starts_with(b"<audio>"));
}

#[test]
fn regaut01() {
    let m = valid("regaut01");
    assert_eq!(
        m.header_raw(HeaderName::Authorization),
        Some("NoOneKnowsThisScheme opaque-data=here")
    );
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn multi01() {
    let e = rejected(
        "multi01",
        ErrorKind::Repeated,
        "From: appears more than once",
        Some(400),
    );
    assert_eq!(e.header_name(), Some("From"));
}

#[test]
fn mcl01() {
    rejected(
        "mcl01",
        ErrorKind::ContentLength,
        "Content-Length: several values",
        Some(400),
    );
}

#[test]
fn bcast() {
    let m = valid("bcast");
    assert_eq!(m.status_code(), Some(200));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias[1].host.ip(), Some(IpAddr::V4(Ipv4Addr::BROADCAST)));
}

#[test]
fn zeromf() {
    let m = valid("zeromf");
    assert_eq!(m.max_forwards().unwrap(), Some(0));
    assert_eq!(m.method(), Some(Method::Options));
}

#[test]
fn cparam01() {
    let m = valid("cparam01");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!("star")
    };
    assert_eq!(c.uri.as_str(), "sip:+19725552222@gw1.example.net");
    assert!(c.uri.params.is_empty());
    assert_eq!(c.params.get("unknownparam"), Some(None));
}

#[test]
fn cparam02() {
    let m = valid("cparam02");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!("star")
    };
    assert_eq!(
        c.uri.as_str(),
        "sip:+19725552222@gw1.example.net;unknownparam"
    );
    assert_eq!(c.uri.params.get("unknownparam"), Some(None));
    assert!(c.params.is_empty());
}

#[test]
fn regescrt() {
    let m = valid("regescrt");
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!("star")
    };
    assert_eq!(c.uri.headers, Some("Route=%3Csip:sip.example.com%3E"));
    assert_eq!(
        shards::sip::unescape(c.uri.headers.unwrap()).as_ref(),
        b"Route=<sip:sip.example.com>"
    );
    assert_eq!(
        c.uri.as_str(),
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
}

#[test]
fn sdp01() {
    let m = valid("sdp01");
    let accept: Vec<_> = m.header_values(HeaderName::Accept).collect();
    assert_eq!(accept, ["text/nobodyKnowsThis"]);
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
}

// ---- 3.4 backward compatibility ----

#[test]
fn inv2543() {
    let data = load("inv2543");
    let m = valid("inv2543");
    let via = m.top_via().unwrap();
    assert_eq!(via.branch(), None);
    assert!(!via.is_rfc3261());
    assert_eq!(m.from().unwrap().tag(), None);
    assert_eq!(m.max_forwards().unwrap(), None);
    assert_eq!(m.content_length(), None);
    assert!(m.body().starts_with(b"v=0"));
    assert_eq!(m.len(), data.len());
    let rr = m
        .name_addrs(HeaderName::RecordRoute)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(rr.uri.params.value("maddr"), Some("ss1.example.com"));
}
