//! Transaction matching (RFC 3261 17.1.3, 17.2.3, 9.2): [`TransactionKey`], the
//! borrowed form the table looks up without allocating, and [`cancel_target`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use crate::sip::{Host, Message, Method};

/// What a message lacks to be matched to a transaction (or to build an ACK or
/// CANCEL from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Not a request where one is needed, or no Request-URI.
    StartLine,
    /// No usable top Via.
    Via,
    /// The top Via has no branch (responses only: we always send one).
    Branch,
    /// No usable CSeq.
    CSeq,
    /// No Call-ID.
    CallId,
    /// No From.
    From,
    /// No To.
    To,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::StartLine => "not a request",
            KeyError::Via => "no usable Via",
            KeyError::Branch => "no Via branch",
            KeyError::CSeq => "no usable CSeq",
            KeyError::CallId => "no Call-ID",
            KeyError::From => "no From",
            KeyError::To => "no To",
        })
    }
}

impl std::error::Error for KeyError {}

/// A Via sent-by host: names compare as written, addresses by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HostKey<S> {
    Name(S),
    Ip(IpAddr),
}

/// The fields a key compares, generic over how text is held: `&str` for
/// lookups, [`Span`]s into one owned buffer inside [`TransactionKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum KeyData<S> {
    /// RFC 3261 server transaction: the branch has the magic cookie.
    Server {
        branch: S,
        host: HostKey<S>,
        port: u16,
        /// The request method, ACK mapped to INVITE.
        method: S,
    },
    /// RFC 2543 server transaction (no magic cookie).
    Legacy {
        request_uri: S,
        to_tag: Option<S>,
        from_tag: Option<S>,
        call_id: S,
        cseq: u32,
        /// The top Via element as written.
        via: S,
        /// The request method, ACK mapped to INVITE.
        method: S,
    },
    /// Client transaction: branch and CSeq method of the response.
    Client { branch: S, method: S },
    /// An INVITE server transaction in Accepted, found by the ACK for its 2xx.
    Ack2xx {
        call_id: S,
        cseq: u32,
        from_tag: Option<S>,
        to_tag: Option<S>,
    },
}

impl<S> KeyData<S> {
    fn map<T>(&self, f: &mut impl FnMut(&S) -> T) -> KeyData<T> {
        match self {
            KeyData::Server {
                branch,
                host,
                port,
                method,
            } => KeyData::Server {
                branch: f(branch),
                host: match host {
                    HostKey::Name(n) => HostKey::Name(f(n)),
                    HostKey::Ip(ip) => HostKey::Ip(*ip),
                },
                port: *port,
                method: f(method),
            },
            KeyData::Legacy {
                request_uri,
                to_tag,
                from_tag,
                call_id,
                cseq,
                via,
                method,
            } => KeyData::Legacy {
                request_uri: f(request_uri),
                to_tag: to_tag.as_ref().map(&mut *f),
                from_tag: from_tag.as_ref().map(&mut *f),
                call_id: f(call_id),
                cseq: *cseq,
                via: f(via),
                method: f(method),
            },
            KeyData::Client { branch, method } => KeyData::Client {
                branch: f(branch),
                method: f(method),
            },
            KeyData::Ack2xx {
                call_id,
                cseq,
                from_tag,
                to_tag,
            } => KeyData::Ack2xx {
                call_id: f(call_id),
                cseq: *cseq,
                from_tag: from_tag.as_ref().map(&mut *f),
                to_tag: to_tag.as_ref().map(&mut *f),
            },
        }
    }
}

/// A range of [`TransactionKey::text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

/// Identifies one transaction (RFC 3261 17.1.3 and 17.2.3). Build it with
/// [`TransactionKey::server`] from a received request or
/// [`TransactionKey::client`] from a response (or a request we send).
///
/// Owns its text in one allocation.
#[derive(Clone)]
pub struct TransactionKey {
    text: Box<str>,
    spans: KeyData<Span>,
}

impl TransactionKey {
    /// The server-transaction key of a received request: with a magic-cookie
    /// branch (branch, sent-by host and port, method), else RFC 2543 rules
    /// (Request-URI, To tag, From tag, Call-ID, CSeq number, top Via, method).
    /// ACK maps to INVITE; CANCEL keeps its own method.
    pub fn server(request: &Message<'_>) -> Result<Self, KeyError> {
        server_view(request).map(|v| Self::from_view(&v))
    }

    /// The client-transaction key of a response, or of a request we send: top
    /// Via branch and CSeq method.
    pub fn client(msg: &Message<'_>) -> Result<Self, KeyError> {
        client_view(msg).map(|v| Self::from_view(&v))
    }

    /// Whether this is an RFC 3261 (magic cookie) server key.
    pub fn is_rfc3261(&self) -> bool {
        matches!(self.spans, KeyData::Server { .. })
    }

    /// Whether this is a client-transaction key.
    pub fn is_client(&self) -> bool {
        matches!(self.spans, KeyData::Client { .. })
    }

    /// The method the key matches (ACK shows as INVITE); empty for the internal
    /// ACK-for-2xx keys.
    pub fn method(&self) -> &str {
        match self.view() {
            KeyData::Server { method, .. }
            | KeyData::Legacy { method, .. }
            | KeyData::Client { method, .. } => method,
            KeyData::Ack2xx { .. } => "",
        }
    }

    /// The branch (RFC 3261 server keys and client keys).
    pub fn branch(&self) -> Option<&str> {
        match self.view() {
            KeyData::Server { branch, .. } | KeyData::Client { branch, .. } => Some(branch),
            _ => None,
        }
    }

    pub(crate) fn from_view(view: &KeyData<&str>) -> Self {
        let mut len = 0;
        view.map(&mut |s| len += s.len());
        let mut text = String::with_capacity(len);
        let spans = view.map(&mut |s| {
            // A key is made of fields of one message, far below 4 GiB.
            let start = u32::try_from(text.len()).unwrap_or(u32::MAX);
            text.push_str(s);
            Span {
                start,
                end: u32::try_from(text.len()).unwrap_or(u32::MAX),
            }
        });
        TransactionKey {
            text: text.into_boxed_str(),
            spans,
        }
    }

    pub(crate) fn view(&self) -> KeyData<&str> {
        self.spans.map(&mut |sp| {
            self.text
                .get(sp.start as usize..sp.end as usize)
                .unwrap_or("")
        })
    }

    /// This RFC 2543 key with another To tag: where the ACK for a non-2xx
    /// final carrying `to_tag` looks. `None` for other keys or the same tag.
    pub(crate) fn with_to_tag(&self, tag: Option<&str>) -> Option<TransactionKey> {
        match self.view() {
            KeyData::Legacy {
                request_uri,
                to_tag,
                from_tag,
                call_id,
                cseq,
                via,
                method,
            } if to_tag != tag => Some(Self::from_view(&KeyData::Legacy {
                request_uri,
                to_tag: tag,
                from_tag,
                call_id,
                cseq,
                via,
                method,
            })),
            _ => None,
        }
    }
}

/// The key of the INVITE server transaction a CANCEL with key `cancel`
/// cancels (RFC 3261 9.2: the same matching rules, method INVITE). `None` when
/// `cancel` is not the server key of a CANCEL.
pub fn cancel_target(cancel: &TransactionKey) -> Option<TransactionKey> {
    let target = match cancel.view() {
        KeyData::Server {
            branch,
            host,
            port,
            method: "CANCEL",
        } => KeyData::Server {
            branch,
            host,
            port,
            method: "INVITE",
        },
        KeyData::Legacy {
            request_uri,
            to_tag,
            from_tag,
            call_id,
            cseq,
            via,
            method: "CANCEL",
        } => KeyData::Legacy {
            request_uri,
            to_tag,
            from_tag,
            call_id,
            cseq,
            via,
            method: "INVITE",
        },
        _ => return None,
    };
    Some(TransactionKey::from_view(&target))
}

impl PartialEq for TransactionKey {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for TransactionKey {}

impl Hash for TransactionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.view().hash(state);
    }
}

impl fmt::Debug for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view().fmt(f)
    }
}

/// The method as a key field: ACK matches INVITE.
fn key_method<'a>(method: Method<'a>) -> &'a str {
    match method {
        Method::Ack => "INVITE",
        m => m.as_str(),
    }
}

/// The server key fields of a request, borrowed from it.
pub(crate) fn server_view<'a>(msg: &Message<'a>) -> Result<KeyData<&'a str>, KeyError> {
    let method = key_method(msg.method().ok_or(KeyError::StartLine)?);
    let via = msg.top_via().map_err(|_| KeyError::Via)?;
    if via.is_rfc3261() {
        let host = match via.host {
            Host::Name(n) => HostKey::Name(n),
            Host::V4(a) => HostKey::Ip(IpAddr::V4(a)),
            Host::V6(a) => HostKey::Ip(IpAddr::V6(a)),
        };
        return Ok(KeyData::Server {
            branch: via.branch().unwrap_or_default(),
            host,
            port: via.port_or_default(),
            method,
        });
    }
    Ok(KeyData::Legacy {
        request_uri: msg.request_uri_str().ok_or(KeyError::StartLine)?,
        to_tag: msg.to_tag(),
        from_tag: msg.from_tag(),
        call_id: msg.call_id().ok_or(KeyError::CallId)?,
        cseq: msg.cseq().map_err(|_| KeyError::CSeq)?.seq,
        via: via.as_str(),
        method,
    })
}

/// The client key fields of a response (or of a request we send).
pub(crate) fn client_view<'a>(msg: &Message<'a>) -> Result<KeyData<&'a str>, KeyError> {
    let via = msg.top_via().map_err(|_| KeyError::Via)?;
    let branch = via.branch().ok_or(KeyError::Branch)?;
    let cseq = msg.cseq().map_err(|_| KeyError::CSeq)?;
    Ok(KeyData::Client {
        branch,
        method: cseq.method.as_str(),
    })
}

/// The fields an ACK for a 2xx shares with that 2xx: Call-ID, CSeq number,
/// From tag, To tag.
pub(crate) fn ack_2xx_view<'a>(msg: &Message<'a>) -> Result<KeyData<&'a str>, KeyError> {
    Ok(KeyData::Ack2xx {
        call_id: msg.call_id().ok_or(KeyError::CallId)?,
        cseq: msg.cseq().map_err(|_| KeyError::CSeq)?.seq,
        from_tag: msg.from_tag(),
        to_tag: msg.to_tag(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> TransactionKey {
        TransactionKey::server(&Message::parse(raw.as_bytes()).unwrap()).unwrap()
    }

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKabc;rport\r\n\
From: <sip:alice@example.com>;tag=f1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn rfc3261_fields() {
        let k = key(INVITE);
        assert!(k.is_rfc3261() && !k.is_client());
        assert_eq!(k.method(), "INVITE");
        assert_eq!(k.branch(), Some("z9hG4bKabc"));
        // ACK matches INVITE; other headers do not matter.
        let ack = INVITE
            .replacen("INVITE sip", "ACK sip", 1)
            .replace("7 INVITE", "7 ACK")
            .replace(
                "<sip:bob@example.com>\r\n",
                "<sip:bob@example.com>;tag=x\r\n",
            );
        assert_eq!(key(&ack), k);
        // CANCEL has its own key, and its target is the INVITE.
        let cancel = INVITE
            .replacen("INVITE sip", "CANCEL sip", 1)
            .replace("7 INVITE", "7 CANCEL");
        let ck = key(&cancel);
        assert_ne!(ck, k);
        assert_eq!(ck.method(), "CANCEL");
        assert_eq!(cancel_target(&ck), Some(k.clone()));
        assert_eq!(cancel_target(&k), None);
        // Branch, sent-by host and port all count.
        assert_ne!(key(&INVITE.replace("z9hG4bKabc", "z9hG4bKabd")), k);
        assert_ne!(key(&INVITE.replace("192.0.2.1:5062", "192.0.2.2:5062")), k);
        assert_ne!(key(&INVITE.replace("192.0.2.1:5062", "192.0.2.1")), k);
        // The default port is the port.
        assert_eq!(
            key(&INVITE.replace("192.0.2.1:5062", "192.0.2.1")),
            key(&INVITE.replace("192.0.2.1:5062", "192.0.2.1:5060"))
        );
    }

    #[test]
    fn rfc2543_fields() {
        let raw = INVITE.replace("branch=z9hG4bKabc;", "");
        let k = key(&raw);
        assert!(!k.is_rfc3261());
        assert_eq!(k.branch(), None);
        for (from, to) in [
            ("sip:bob@example.com SIP", "sip:bob@example.org SIP"),
            ("tag=f1", "tag=f2"),
            ("Call-ID: c1", "Call-ID: c2"),
            ("7 INVITE", "8 INVITE"),
            ("192.0.2.1:5062;", "192.0.2.1:5063;"),
            (
                "<sip:bob@example.com>\r\n",
                "<sip:bob@example.com>;tag=t\r\n",
            ),
        ] {
            assert_ne!(key(&raw.replacen(from, to, 1)), k, "{to}");
        }
        // A To tag only matters through the alias the table adds.
        let alias = k.with_to_tag(Some("t")).unwrap();
        assert_eq!(
            key(&raw.replacen(
                "<sip:bob@example.com>\r\n",
                "<sip:bob@example.com>;tag=t\r\n",
                1
            )),
            alias
        );
        assert_eq!(k.with_to_tag(None), None);
        assert_eq!(key(INVITE).with_to_tag(Some("t")), None);
    }

    #[test]
    fn client_keys() {
        let resp = Message::parse(
            b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCSeq: 1 INVITE\r\n\r\n",
        )
        .unwrap();
        let k = TransactionKey::client(&resp).unwrap();
        assert!(k.is_client());
        assert_eq!((k.branch(), k.method()), (Some("z9hG4bKx"), "INVITE"));
        let no_branch =
            Message::parse(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 INVITE\r\n\r\n")
                .unwrap();
        assert_eq!(TransactionKey::client(&no_branch), Err(KeyError::Branch));
        let no_cseq =
            Message::parse(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n")
                .unwrap();
        assert_eq!(TransactionKey::client(&no_cseq), Err(KeyError::CSeq));
        let no_via = Message::parse(b"SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\n\r\n").unwrap();
        assert_eq!(TransactionKey::client(&no_via), Err(KeyError::Via));
    }

    #[test]
    fn server_key_errors() {
        let resp = Message::parse(b"SIP/2.0 200 OK\r\n\r\n").unwrap();
        assert_eq!(TransactionKey::server(&resp), Err(KeyError::StartLine));
        let no_via = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n").unwrap();
        assert_eq!(TransactionKey::server(&no_via), Err(KeyError::Via));
        let bad_via =
            Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: garbage\r\nCall-ID: x\r\n\r\n")
                .unwrap();
        assert_eq!(TransactionKey::server(&bad_via), Err(KeyError::Via));
        let no_call_id = Message::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 OPTIONS\r\n\r\n",
        )
        .unwrap();
        assert_eq!(TransactionKey::server(&no_call_id), Err(KeyError::CallId));
        let no_cseq =
            Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCall-ID: x\r\n\r\n")
                .unwrap();
        assert_eq!(TransactionKey::server(&no_cseq), Err(KeyError::CSeq));
        // RFC 3261 matching needs neither Call-ID nor CSeq.
        let minimal = Message::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1\r\n\r\n",
        )
        .unwrap();
        assert!(TransactionKey::server(&minimal).unwrap().is_rfc3261());
    }

    #[test]
    fn ack_2xx_fields() {
        let msg = Message::parse(INVITE.as_bytes()).unwrap();
        let v = ack_2xx_view(&msg).unwrap();
        assert_eq!(
            v,
            KeyData::Ack2xx {
                call_id: "c1",
                cseq: 7,
                from_tag: Some("f1"),
                to_tag: None
            }
        );
        let k = TransactionKey::from_view(&v);
        assert_eq!(k.method(), "");
        assert_eq!(k.view(), v);
    }
}
