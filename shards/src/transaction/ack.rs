//! Requests a client transaction derives from its INVITE: the ACK for a 300-699
//! final (RFC 3261 17.1.1.3) and the CANCEL (RFC 3261 9.1).

use crate::sip::{HeaderName, Message, Writer};

use super::key::KeyError;

/// Writes into `out` (cleared first) the ACK for the non-2xx final `response`
/// to `invite` (RFC 3261 17.1.1.3): the INVITE's Request-URI, its top Via only,
/// its Route headers, Max-Forwards 70, its From, the response's To (with the
/// tag), its Call-ID, CSeq with its number and method ACK, Content-Length 0.
/// Returns the length.
pub fn build_ack(
    invite: &Message<'_>,
    response: &Message<'_>,
    out: &mut Vec<u8>,
) -> Result<usize, KeyError> {
    let to = response.header(HeaderName::To).ok_or(KeyError::To)?;
    derived(invite, "ACK", &to, out)
}

/// Writes into `out` (cleared first) a CANCEL for `invite` (RFC 3261 9.1): the
/// same Request-URI, top Via (so the same branch), Route headers, From, To,
/// Call-ID and CSeq number, method CANCEL, Max-Forwards 70, no body. Returns
/// the length.
pub fn build_cancel(invite: &Message<'_>, out: &mut Vec<u8>) -> Result<usize, KeyError> {
    let to = invite.header(HeaderName::To).ok_or(KeyError::To)?;
    derived(invite, "CANCEL", &to, out)
}

fn derived(
    invite: &Message<'_>,
    method: &str,
    to: &str,
    out: &mut Vec<u8>,
) -> Result<usize, KeyError> {
    let uri = invite.request_uri_str().ok_or(KeyError::StartLine)?;
    let via = invite.top_via().map_err(|_| KeyError::Via)?;
    let call_id = invite.call_id().ok_or(KeyError::CallId)?;
    let cseq = invite.cseq().map_err(|_| KeyError::CSeq)?;
    let from = invite.header(HeaderName::From).ok_or(KeyError::From)?;
    let mut w = Writer::request(out, method, uri);
    w.header("Via", via.as_str());
    for route in invite.headers_named(HeaderName::Route) {
        w.header("Route", &route.value());
    }
    w.header("Max-Forwards", "70");
    w.header("From", &from);
    w.header("To", to);
    w.header("Call-ID", call_id);
    w.header_fmt("CSeq", format_args!("{} {}", cseq.seq, method));
    Ok(w.finish(b""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Method;

    const INVITE: &[u8] = b"INVITE sip:bob@192.0.2.20:5070;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcli1;rport, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKold\r\n\
Via: SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKolder\r\n\
Max-Forwards: 12\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=ftag\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 314 INVITE\r\n\
Contact: <sip:alice@192.0.2.10>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    const BUSY: &[u8] = b"SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcli1;rport=5060;received=192.0.2.10\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=ftag\r\n\
To: <sip:bob@example.com>;tag=bobtag\r\n\
Call-ID: call-1@192.0.2.10\r\n\
CSeq: 314 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn ack_for_non_2xx_has_every_field_right() {
        let invite = Message::parse(INVITE).unwrap();
        let busy = Message::parse(BUSY).unwrap();
        let mut out = Vec::new();
        let n = build_ack(&invite, &busy, &mut out).unwrap();
        assert_eq!(n, out.len());
        let ack = Message::parse(&out).unwrap();
        ack.check().unwrap();
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(
            ack.request_uri_str(),
            Some("sip:bob@192.0.2.20:5070;transport=udp")
        );
        let vias: Vec<_> = ack.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 1, "only the top Via of the INVITE");
        assert_eq!(vias[0].branch(), Some("z9hG4bKcli1"));
        assert_eq!(vias[0].rport(), Some(None), "the INVITE's Via as sent");
        let routes: Vec<_> = ack
            .name_addrs(HeaderName::Route)
            .map(|r| r.unwrap().uri.host.unwrap().to_string())
            .collect();
        assert_eq!(
            routes,
            ["p1.example.com", "p2.example.com", "p3.example.com"]
        );
        assert_eq!(ack.max_forwards().unwrap(), Some(70));
        assert_eq!(ack.from().unwrap().tag(), Some("ftag"));
        assert_eq!(ack.from().unwrap().display_name, Some("\"Alice\""));
        assert_eq!(
            ack.to().unwrap().tag(),
            Some("bobtag"),
            "To of the response"
        );
        assert_eq!(ack.call_id(), Some("call-1@192.0.2.10"));
        let cseq = ack.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (314, Method::Ack));
        assert_eq!(ack.content_length(), Some(0));
        assert!(ack.body().is_empty());
        assert_eq!(ack.header(HeaderName::Contact), None);
        assert_eq!(ack.header(HeaderName::ContentType), None);
    }

    #[test]
    fn cancel_copies_the_invite() {
        let invite = Message::parse(INVITE).unwrap();
        let mut out = Vec::new();
        build_cancel(&invite, &mut out).unwrap();
        let cancel = Message::parse(&out).unwrap();
        cancel.check().unwrap();
        assert_eq!(cancel.method(), Some(Method::Cancel));
        assert_eq!(cancel.request_uri_str(), invite.request_uri_str());
        assert_eq!(cancel.vias().count(), 1);
        assert_eq!(cancel.top_via().unwrap().branch(), Some("z9hG4bKcli1"));
        assert_eq!(cancel.to().unwrap().tag(), None);
        assert_eq!(
            cancel.header(HeaderName::To).unwrap(),
            "<sip:bob@example.com>"
        );
        let cseq = cancel.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (314, Method::Cancel));
        assert_eq!(cancel.name_addrs(HeaderName::Route).count(), 3);
    }

    #[test]
    fn missing_fields_are_errors_not_panics() {
        let busy = Message::parse(BUSY).unwrap();
        let mut out = Vec::new();
        let text = std::str::from_utf8(INVITE).unwrap();
        for (header, err) in [
            ("Via:", KeyError::Via),
            ("Call-ID:", KeyError::CallId),
            ("CSeq:", KeyError::CSeq),
            ("From:", KeyError::From),
        ] {
            let broken = text.replace(header, "X-Gone:");
            let invite = Message::parse(broken.as_bytes()).unwrap();
            assert_eq!(build_ack(&invite, &busy, &mut out), Err(err));
        }
        let invite = Message::parse(INVITE).unwrap();
        let no_to = std::str::from_utf8(BUSY).unwrap().replace("To:", "X-Gone:");
        let resp = Message::parse(no_to.as_bytes()).unwrap();
        assert_eq!(build_ack(&invite, &resp, &mut out), Err(KeyError::To));
        assert_eq!(build_ack(&busy, &busy, &mut out), Err(KeyError::StartLine));
        // Folded headers are written on one line.
        let folded = text.replace("From: \"Alice\"", "From:\r\n  \"Alice\"");
        let invite = Message::parse(folded.as_bytes()).unwrap();
        build_ack(&invite, &busy, &mut out).unwrap();
        let ack = Message::parse(&out).unwrap();
        ack.check().unwrap();
        assert_eq!(ack.from().unwrap().tag(), Some("ftag"));
    }
}
