//! [`ParseError`]: what is wrong with a SIP message, and whether it can be answered.

use std::fmt;

/// The class of a [`ParseError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Nothing but CR/LF (a keep-alive) or an empty datagram.
    Empty,
    /// The start line is not a SIP request or status line.
    StartLine,
    /// The request carries a SIP version other than 2.0 (answer 505).
    Version,
    /// The Request-URI is malformed.
    RequestUri,
    /// A header line or a header value is malformed.
    Header,
    /// A mandatory header (Via, From, To, Call-ID, CSeq) is missing.
    Missing,
    /// A single-valued header appears more than once or carries several values.
    Repeated,
    /// The CSeq method differs from the request method.
    CSeqMismatch,
    /// The body cannot be framed: bad, repeated or too large Content-Length.
    ContentLength,
    /// A limit was exceeded (more than 64 headers, message over 4 GiB).
    TooLarge,
    /// The start line or a header is not valid UTF-8.
    Encoding,
}

/// A malformed SIP message, or a malformed piece of one.
///
/// `Display` gives a short text naming the header and the problem, e.g.
/// `Content-Length: larger than the datagram`, fit for a log line or a Warning.
///
/// [`ParseError::status`] tells the caller what to do with the message:
/// `Some(400)` or `Some(505)` when a response can be formed (the error came from
/// [`Message::check`](super::Message::check) on a request other than ACK whose top
/// Via is usable), `None` when the message must be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    kind: ErrorKind,
    header: Option<&'static str>,
    what: &'static str,
    status: Option<u16>,
}

impl ParseError {
    pub(crate) const fn new(kind: ErrorKind, what: &'static str) -> Self {
        ParseError {
            kind,
            header: None,
            what,
            status: None,
        }
    }

    /// A malformed header value.
    pub(crate) const fn header(what: &'static str) -> Self {
        Self::new(ErrorKind::Header, what)
    }

    /// Names the header the error is about (keeps an existing name).
    pub(crate) fn in_header(mut self, name: &'static str) -> Self {
        if self.header.is_none() {
            self.header = Some(name);
        }
        self
    }

    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn with_status(mut self, status: Option<u16>) -> Self {
        self.status = status;
        self
    }

    /// The class of the problem.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The canonical name of the header at fault, if one is.
    pub fn header_name(&self) -> Option<&'static str> {
        self.header
    }

    /// The problem, without the header name.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The status code to answer with (400, or 505 for a bad SIP version), or
    /// `None` when the message cannot be answered and must be dropped.
    pub fn status(&self) -> Option<u16> {
        self.status
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.header {
            Some(h) => write!(f, "{h}: {}", self.what),
            None => f.write_str(self.what),
        }
    }
}

impl std::error::Error for ParseError {}
