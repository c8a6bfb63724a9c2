//! Checks every request passes before a handler sees it, answered without
//! state (RFC 3261 8.2 and 16.3): URI scheme (416), method (405), extensions
//! (420), Max-Forwards (483), bodies we cannot read (415) or answers the
//! caller cannot take (406).

use crate::sip::{HeaderName, Message, Method, Scheme};

/// Methods this endpoint handles, for `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER";
/// Extensions we support, for `Supported` (and accept in `Require`).
pub const SUPPORTED: &str = "path";
/// Bodies we read.
pub const ACCEPT: &str = "application/sdp";

/// A stateless final answer: code, reason override, extra headers.
#[derive(Debug, PartialEq, Eq)]
pub struct Reject {
    pub code: u16,
    pub headers: Vec<(&'static str, String)>,
}

impl Reject {
    fn new(code: u16) -> Self {
        Reject {
            code,
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Would we forward this request (so Max-Forwards applies)? INVITEs always
/// leave through a new leg; OPTIONS and others only when addressed to a user
/// rather than to us.
fn would_forward(msg: &Message<'_>, method: &Method<'_>) -> bool {
    match method {
        Method::Invite => true,
        Method::Register | Method::Ack | Method::Cancel | Method::Bye => false,
        _ => msg.request_uri().is_ok_and(|u| u.user.is_some()),
    }
}

/// Runs the checks in RFC 3261 8.2 order; `None` means go on.
pub fn inspect(msg: &Message<'_>) -> Option<Reject> {
    let method = msg.method()?;
    if matches!(method, Method::Ack) {
        return None;
    }
    // 8.2.2.1: a Request-URI scheme we do not understand.
    match msg.request_uri() {
        Ok(uri) if matches!(uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel) => {}
        Ok(_) => return Some(Reject::new(416)),
        Err(_) => return Some(Reject::new(400)),
    }
    // 8.2.1: a method we do not handle.
    let known = matches!(
        method,
        Method::Invite | Method::Cancel | Method::Bye | Method::Options | Method::Register
    );
    if !known {
        return Some(Reject::new(405).with("Allow", ALLOW.to_string()));
    }
    // 8.2.2.3: required extensions we lack (not for CANCEL).
    if !matches!(method, Method::Cancel) {
        let supported: Vec<&str> = SUPPORTED.split(", ").collect();
        let unsupported: Vec<&str> = msg
            .tokens(HeaderName::Require)
            .chain(msg.tokens(HeaderName::ProxyRequire))
            .filter(|t| !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Some(Reject::new(420).with("Unsupported", unsupported.join(", ")));
        }
    }
    // 16.3 step 2: Max-Forwards on what we would forward.
    if would_forward(msg, &method) && matches!(msg.max_forwards(), Ok(Some(0))) {
        return Some(Reject::new(483));
    }
    if matches!(method, Method::Invite) {
        // 8.2.3: a body we cannot read.
        if !msg.body().is_empty() {
            let readable = match msg.content_type() {
                Ok(Some(ct)) => {
                    ct.is("application", "sdp") || ct.ty.eq_ignore_ascii_case("multipart")
                }
                Ok(None) => false,
                Err(_) => false,
            };
            if !readable {
                return Some(Reject::new(415).with("Accept", ACCEPT.to_string()));
            }
        }
        // RFC 3261 21.4.7: the caller cannot take an SDP answer.
        if msg.header_count(HeaderName::Accept) > 0 {
            let takes_sdp = msg.header_values(HeaderName::Accept).any(|v| {
                let v = v.trim().to_ascii_lowercase();
                let range = v.split(';').next().unwrap_or("").trim().to_string();
                range == "application/sdp"
                    || range == "application/*"
                    || range == "*/*"
                    || range.is_empty()
            });
            if !takes_sdp {
                return Some(Reject::new(406).with("Accept", ACCEPT.to_string()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, extra: &str, body: &str) -> Vec<u8> {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn code(raw: &[u8]) -> Option<u16> {
        let msg = Message::parse(raw).unwrap();
        msg.check().unwrap();
        inspect(&msg).map(|r| r.code)
    }

    #[test]
    fn each_check_gives_its_code() {
        assert_eq!(code(&req("OPTIONS", "sip:pbx", "", "")), None);
        assert_eq!(code(&req("OPTIONS", "nobody:x", "", "")), Some(416));
        assert_eq!(code(&req("INFO", "sip:pbx", "", "")), Some(405));
        assert_eq!(
            code(&req("OPTIONS", "sip:pbx", "Require: foo, path\r\n", "")),
            Some(420)
        );
        assert_eq!(
            code(&req("REGISTER", "sip:pbx", "Require: path\r\n", "")),
            None
        );
        assert_eq!(
            code(&req(
                "INVITE",
                "sip:u@pbx",
                "Content-Type: text/plain\r\n",
                "hi"
            )),
            Some(415)
        );
        assert_eq!(
            code(&req("INVITE", "sip:u@pbx", "Accept: text/plain\r\n", "")),
            Some(406)
        );
        assert_eq!(
            code(&req(
                "INVITE",
                "sip:u@pbx",
                "Accept: application/sdp\r\n",
                ""
            )),
            None
        );
        assert_eq!(code(&req("ACK", "nobody:x", "", "")), None);
    }

    #[test]
    fn max_forwards_zero_only_matters_when_forwarding() {
        let to_us = b"OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:pbx>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(code(to_us), None);
        let to_user = b"OPTIONS sip:u@pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:u@pbx>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 0\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(code(to_user), Some(483));
    }
}
