//! [`Message::check`]: the validation a proxy runs after [`Message::parse`]
//! (mandatory and single-valued headers, CSeq/method match, syntax of the headers a
//! proxy relies on), and whether a rejected message can be answered.

use super::error::{ErrorKind, ParseError};
use super::fields::SipDate;
use super::header::HeaderName;
use super::message::{Kept, Message, StartLine};
use super::method::Method;
use super::name_addr::Contact;
use super::syntax::{is_callid, trim_lws};
use super::uri::Scheme;
use super::via::Via;

const MANDATORY: [HeaderName<'static>; 5] = [
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
];

const SINGLE: [HeaderName<'static>; 9] = [
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::ContentType,
    HeaderName::Expires,
    HeaderName::MinExpires,
    HeaderName::Date,
];

impl<'a> Message<'a> {
    /// Validates the message. On error, [`ParseError::status`] is the response to
    /// send (400, or 505 for a SIP version other than 2.0) or `None` to drop it
    /// (responses, ACK, or no usable top Via). Checked, first failure reported:
    ///
    /// * SIP version 2.0; request line with single spaces and no trailing space;
    ///   well-formed header lines;
    /// * Request-URI syntax, and no `?headers` in a sip/sips Request-URI;
    /// * Via, From, To, Call-ID and CSeq present (Max-Forwards is optional);
    /// * Content-Length single, numeric and within the datagram;
    /// * From, To, Call-ID, CSeq, Max-Forwards, Content-Type, Expires,
    ///   Min-Expires and Date not repeated;
    /// * CSeq number and method, and for requests CSeq method == request method;
    /// * Call-ID, every Via, From, To, Max-Forwards (0-255), every Contact (and
    ///   `*` alone), Expires, Date (RFC 1123 GMT), Content-Type, Route and
    ///   Record-Route.
    pub fn check(&self) -> Result<(), ParseError> {
        match self.find_problem() {
            Ok(_) => Ok(()),
            Err(e) => Err(self.answerable(e)),
        }
    }

    /// [`Message::check`], keeping the From, To and top Via it parsed, so
    /// the layers above ([`Message::from`], [`Message::to`],
    /// [`Message::top_via`]) do not parse them again.
    pub fn check_and_keep(&mut self) -> Result<(), ParseError> {
        match self.find_problem() {
            Ok(kept) => {
                self.kept = Some(kept);
                Ok(())
            }
            Err(e) => Err(self.answerable(e)),
        }
    }

    fn answerable(&self, e: ParseError) -> ParseError {
        let status = if !self.can_respond() {
            None
        } else if e.kind() == ErrorKind::Version {
            Some(505)
        } else {
            Some(400)
        };
        e.with_status(status)
    }

    /// Whether a response to this message can be formed: a request other than
    /// ACK whose top Via has a usable protocol and sent-by (its parameters may
    /// be malformed). The response then copies whatever From, To, Call-ID and
    /// CSeq the request has (the first of each).
    pub fn can_respond(&self) -> bool {
        matches!(self.start_line(), StartLine::Request { method, .. } if method != Method::Ack)
            && self
                .header_raw(HeaderName::Via)
                .is_some_and(|v| Via::parse_sent_by(v).is_ok())
    }

    fn find_problem(&self) -> Result<Kept<'a>, ParseError> {
        if !self.version().eq_ignore_ascii_case("SIP/2.0") {
            return Err(ParseError::new(
                ErrorKind::Version,
                "SIP version not supported",
            ));
        }
        if let Some(e) = self.defect {
            return Err(e);
        }
        let method = self.method();
        if method.is_some() {
            let uri = self.request_uri()?;
            if matches!(uri.scheme, Scheme::Sip | Scheme::Sips) && uri.headers.is_some() {
                return Err(
                    ParseError::new(ErrorKind::RequestUri, "headers (?...) not allowed")
                        .in_header("Request-URI"),
                );
            }
        }
        for name in MANDATORY {
            if self.header_count(name) == 0 {
                return Err(ParseError::new(ErrorKind::Missing, "missing").in_header(name.as_str()));
            }
        }
        if let Some(e) = self.framing {
            return Err(e);
        }
        for name in SINGLE {
            if self.header_count(name) > 1 {
                return Err(
                    ParseError::new(ErrorKind::Repeated, "appears more than once")
                        .in_header(name.as_str()),
                );
            }
        }
        let cseq = self.cseq()?;
        if method.is_some_and(|m| m != cseq.method) {
            return Err(ParseError::new(
                ErrorKind::CSeqMismatch,
                "method does not match the request method",
            )
            .in_header("CSeq"));
        }
        let call_id = self.call_id().unwrap_or("");
        if !is_callid(call_id) {
            let what = if call_id.contains(',') {
                "several values"
            } else {
                "invalid"
            };
            let kind = if call_id.contains(',') {
                ErrorKind::Repeated
            } else {
                ErrorKind::Header
            };
            return Err(ParseError::new(kind, what).in_header("Call-ID"));
        }
        let mut top_via = None;
        for via in self.vias() {
            top_via.get_or_insert(via?);
        }
        let from = self.from()?;
        let to = self.to()?;
        self.max_forwards()?;
        let mut contacts = 0;
        let mut star = false;
        for c in self.contacts() {
            contacts += 1;
            star |= c? == Contact::Star;
        }
        if star && contacts > 1 {
            return Err(ParseError::header("* must be the only value").in_header("Contact"));
        }
        self.expires()?;
        if let Some(d) = self.header_raw(HeaderName::Date) {
            SipDate::parse(trim_lws(d)).map_err(|e| e.in_header("Date"))?;
        }
        self.content_type()?;
        for name in [HeaderName::Route, HeaderName::RecordRoute] {
            for r in self.name_addrs(name) {
                r.map_err(|e| e.in_header(name.as_str()))?;
            }
        }
        Ok(Kept { from, to, top_via })
    }
}
