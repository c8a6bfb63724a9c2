//! [`Message`]: the one-pass scanner (start line, header boundaries, body framing)
//! and the lazy accessors that parse individual headers on demand.

use std::borrow::Cow;
use std::fmt;

use super::error::{ErrorKind, ParseError};
use super::fields::{parse_delta_seconds, parse_max_forwards, CSeq, MediaType};
use super::header::{classify_in, from_id, HeaderName, KNOWN_COUNT, OTHER};
use super::method::Method;
use super::name_addr::{tag_only, Contact, NameAddr};
use super::scan::{
    find2_from, find_from, is_wsp, line_at, parse_start_line, skip_wsp, trim_wsp_end,
};
use super::syntax::{is_token_bytes, trim_lws, unfold, ListItems};
use super::uri::Uri;
use super::via::Via;

/// Headers stored per message; one more is a [`ErrorKind::TooLarge`] parse error.
pub const MAX_HEADERS: usize = 64;

/// Header boundaries found by the scanner (offsets into the datagram).
#[derive(Clone, Copy, Debug)]
struct Entry {
    name_start: u32,
    value_start: u32,
    value_end: u32,
    name_len: u16,
    id: u8,
    folded: bool,
}

impl Entry {
    /// Filler for unused slots (never read).
    const EMPTY: Entry = Entry {
        name_start: 0,
        value_start: 0,
        value_end: 0,
        name_len: 0,
        id: 0,
        folded: false,
    };
}

/// The first line of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `Method SP Request-URI SP SIP-Version`
    Request {
        /// Method.
        method: Method<'a>,
        /// Request-URI as written (parse with [`Message::request_uri`]).
        uri: &'a str,
        /// SIP version as written (`SIP/2.0`).
        version: &'a str,
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`
    Response {
        /// SIP version as written.
        version: &'a str,
        /// Status code, 100-699.
        code: u16,
        /// Reason phrase (may be empty).
        reason: &'a str,
    },
}

/// One header line as found by the scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name (compact forms mapped to the full name).
    pub name: HeaderName<'a>,
    /// The name as written.
    pub raw_name: &'a str,
    /// The value as written, trimmed; a folded value keeps its line breaks.
    pub raw_value: &'a str,
    folded: bool,
}

impl<'a> Header<'a> {
    /// The value with folds replaced by a space (borrowed when not folded).
    pub fn value(&self) -> Cow<'a, str> {
        if self.folded {
            unfold(self.raw_value)
        } else {
            Cow::Borrowed(self.raw_value)
        }
    }

    /// Whether the value spans several lines.
    pub fn is_folded(&self) -> bool {
        self.folded
    }
}

/// A SIP message borrowing its datagram. See the [module docs](super).
#[derive(Clone)]
pub struct Message<'a> {
    buf: &'a [u8],
    head: &'a str,
    start: StartLine<'a>,
    entries: [Entry; MAX_HEADERS],
    count: usize,
    /// Per known header id: index of its first entry (`OTHER` when absent).
    first: [u8; KNOWN_COUNT],
    /// Per known header id: number of entries (saturating).
    counts: [u8; KNOWN_COUNT],
    body_start: usize,
    body_end: usize,
    content_length: Option<u32>,
    /// First irregularity of the start line or header section (answer 400).
    pub(crate) defect: Option<ParseError>,
    /// Content-Length problem (answer 400); the body is then the rest.
    pub(crate) framing: Option<ParseError>,
    /// What [`Message::check_and_keep`] parsed.
    pub(super) kept: Option<Kept<'a>>,
}

/// The headers a checked message has parsed already, and the layers above
/// read again and again.
#[derive(Clone, Copy, Debug)]
pub(super) struct Kept<'a> {
    pub(super) from: NameAddr<'a>,
    pub(super) to: NameAddr<'a>,
    pub(super) top_via: Option<Via<'a>>,
}

impl<'a> Message<'a> {
    /// Scans one SIP message at the start of `buf` (a datagram, or a stream buffer
    /// holding a whole message). Leading CR/LF are skipped. Bytes after the
    /// Content-Length body are ignored (see [`Message::len`]).
    ///
    /// An `Err` means the message cannot be answered: drop it. Problems that still
    /// allow a 400 (or 505) are reported by [`Message::check`].
    pub fn parse(buf: &'a [u8]) -> Result<Self, ParseError> {
        if u32::try_from(buf.len()).is_err() {
            return Err(ParseError::new(ErrorKind::TooLarge, "message too large"));
        }
        let mut pos = 0;
        while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
            pos += 1;
        }
        if pos == buf.len() {
            return Err(ParseError::new(ErrorKind::Empty, "empty message"));
        }
        let start_pos = pos;
        let (start_end, next) = line_at(buf, pos);
        pos = next;

        // Built in place (the struct is large): head and start are set below.
        let mut msg = Message {
            buf,
            head: "",
            start: StartLine::Response {
                version: "",
                code: 0,
                reason: "",
            },
            entries: [Entry::EMPTY; MAX_HEADERS],
            count: 0,
            first: [OTHER; KNOWN_COUNT],
            counts: [0u8; KNOWN_COUNT],
            body_start: buf.len(),
            body_end: buf.len(),
            content_length: None,
            defect: None,
            framing: None,
            kept: None,
        };
        let mut current: Option<usize> = None;
        let mut defect: Option<ParseError> = None;
        let mut cl_entry: Option<usize> = None;
        let mut cl_repeated = false;
        let (head_end, body_start) = loop {
            if pos >= buf.len() {
                break (buf.len(), buf.len());
            }
            let first_byte = buf[pos];
            if first_byte == b'\n' {
                break (pos, pos + 1);
            }
            if first_byte == b'\r' && buf.get(pos + 1).is_none_or(|&c| c == b'\n') {
                break (pos, (pos + 2).min(buf.len()));
            }
            if is_wsp(first_byte) {
                let (end, next) = line_at(buf, pos);
                let content = skip_wsp(buf, pos, end);
                match current {
                    Some(i) if content < end => {
                        let e = &mut msg.entries[i];
                        if e.value_start == e.value_end {
                            e.value_start = content as u32;
                        } else {
                            e.folded = true;
                        }
                        e.value_end = trim_wsp_end(buf, content, end) as u32;
                    }
                    Some(_) => {}
                    None => {
                        defect.get_or_insert(ParseError::header("line starts with white space"));
                    }
                }
                pos = next;
                continue;
            }
            current = None;
            let colon = match find2_from(buf, pos, b':', b'\n') {
                Some(c) if buf[c] == b':' => c,
                _ => {
                    defect.get_or_insert(ParseError::header("header line without colon"));
                    pos = line_at(buf, pos).1;
                    continue;
                }
            };
            let line_start = pos;
            let (end, next) = line_at(buf, colon + 1);
            pos = next;
            let name = &buf[line_start..trim_wsp_end(buf, line_start, colon)];
            let id = classify_in(buf, line_start, name.len());
            if name.is_empty()
                || name.len() > usize::from(u16::MAX)
                || (id == OTHER && !is_token_bytes(name))
            {
                defect.get_or_insert(ParseError::header("invalid header name"));
                continue;
            }
            if msg.count == MAX_HEADERS {
                return Err(ParseError::new(ErrorKind::TooLarge, "more than 64 headers"));
            }
            if let (Some(f), Some(c)) = (
                msg.first.get_mut(id as usize),
                msg.counts.get_mut(id as usize),
            ) {
                if *f == OTHER {
                    *f = msg.count as u8;
                }
                *c = c.saturating_add(1);
            }
            if HeaderName::ContentLength.id() == Some(id) {
                cl_repeated |= cl_entry.is_some();
                cl_entry = Some(msg.count);
            }
            let value_start = skip_wsp(buf, colon + 1, end);
            msg.entries[msg.count] = Entry {
                name_start: line_start as u32,
                value_start: value_start as u32,
                value_end: trim_wsp_end(buf, value_start, end) as u32,
                name_len: name.len() as u16,
                id,
                folded: false,
            };
            current = Some(msg.count);
            msg.count += 1;
        };

        if has_bare_cr(buf, start_pos, head_end) {
            defect.get_or_insert(ParseError::header("CR not followed by LF"));
        }
        let head = std::str::from_utf8(&buf[..head_end])
            .map_err(|_| ParseError::new(ErrorKind::Encoding, "not valid UTF-8"))?;
        let start_line = head.get(start_pos..start_end).unwrap_or("");
        // A problem of the start line is reported before those of the headers.
        let header_defect = defect.take();
        let start = parse_start_line(start_line, &mut defect)?;
        let defect = defect.or(header_defect);

        msg.head = head;
        msg.start = start;
        msg.defect = defect;
        msg.body_start = body_start;
        if let Some(i) = cl_entry {
            let cl_err = |what| {
                Some(ParseError::new(ErrorKind::ContentLength, what).in_header("Content-Length"))
            };
            let value = trim_lws(msg.entry_value(&msg.entries[i]));
            if cl_repeated || value.contains(',') {
                msg.framing = cl_err("several values");
            } else if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                msg.framing = cl_err("not a number");
            } else {
                match super::fields::parse_u32(value) {
                    Some(n) if n as usize <= buf.len() - body_start => {
                        msg.content_length = Some(n);
                        msg.body_end = body_start + n as usize;
                    }
                    _ => msg.framing = cl_err("larger than the datagram"),
                }
            }
        }
        Ok(msg)
    }

    fn entry_value(&self, e: &Entry) -> &'a str {
        self.head
            .get(e.value_start as usize..e.value_end as usize)
            .unwrap_or("")
    }

    fn entry_header(&self, e: &Entry) -> Header<'a> {
        let raw_name = self.entry_name(e);
        Header {
            name: from_id(e.id, raw_name),
            raw_name,
            raw_value: self.entry_value(e),
            folded: e.folded,
        }
    }

    /// The start line.
    pub fn start_line(&self) -> StartLine<'a> {
        self.start
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method (`None` for a response).
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code (`None` for a request).
    pub fn status_code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase (`None` for a request).
    pub fn reason(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// The SIP version as written.
    pub fn version(&self) -> &'a str {
        match self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => version,
        }
    }

    /// The Request-URI as written (`None` for a response).
    pub fn request_uri_str(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI (an error for a response).
    pub fn request_uri(&self) -> Result<Uri<'a>, ParseError> {
        let uri = self
            .request_uri_str()
            .ok_or(ParseError::new(ErrorKind::RequestUri, "not a request"))?;
        Uri::parse(uri).map_err(|e| e.with_kind(ErrorKind::RequestUri).in_header("Request-URI"))
    }

    /// All headers in order.
    pub fn headers(&self) -> impl Iterator<Item = Header<'a>> + '_ {
        self.entries[..self.count]
            .iter()
            .map(move |e| self.entry_header(e))
    }

    /// Headers named `name` (full or compact form), in order.
    pub fn headers_named<'s>(
        &'s self,
        name: HeaderName<'s>,
    ) -> impl Iterator<Item = Header<'a>> + 's {
        let id = name.id();
        let start = match id {
            Some(id) => self
                .first
                .get(id as usize)
                .map_or(self.count, |&f| usize::from(f)),
            None => 0,
        };
        self.entries[start.min(self.count)..self.count]
            .iter()
            .filter(move |e| match id {
                Some(id) => e.id == id,
                None => e.id == OTHER && name.matches(e.id, self.entry_name(e)),
            })
            .map(move |e| self.entry_header(e))
    }

    fn entry_name(&self, e: &Entry) -> &'a str {
        let start = e.name_start as usize;
        self.head
            .get(start..start + usize::from(e.name_len))
            .unwrap_or("")
    }

    fn first_entry(&self, name: HeaderName<'_>) -> Option<&Entry> {
        match name.id() {
            Some(id) => {
                let i = *self.first.get(id as usize)?;
                self.entries[..self.count].get(usize::from(i))
            }
            None => self.entries[..self.count]
                .iter()
                .find(|e| e.id == OTHER && name.matches(e.id, self.entry_name(e))),
        }
    }

    /// Number of header lines named `name`.
    pub fn header_count(&self, name: HeaderName<'_>) -> usize {
        match name.id() {
            Some(id) => match self.counts.get(id as usize) {
                Some(&n) if n < u8::MAX => usize::from(n),
                _ => self.headers_named(name).count(),
            },
            None => self.headers_named(name).count(),
        }
    }

    /// The first header named `name`, unfolded.
    pub fn header(&self, name: HeaderName<'_>) -> Option<Cow<'a, str>> {
        self.first_entry(name).map(|e| self.entry_header(e).value())
    }

    /// The first header named `name`, as written (folds kept).
    pub fn header_raw(&self, name: HeaderName<'_>) -> Option<&'a str> {
        self.first_entry(name).map(|e| self.entry_value(e))
    }

    /// Every value of `name` across repeated headers. List headers
    /// ([`HeaderName::is_list`]) are split on commas outside quotes and `<>`, empty
    /// elements skipped; other headers (Authorization, Date, unknown ones) give
    /// their whole value. Values are unfolded (borrowed unless folded).
    pub fn header_values<'s>(
        &'s self,
        name: HeaderName<'s>,
    ) -> impl Iterator<Item = Cow<'a, str>> + 's {
        self.raw_values(name)
            .filter(move |v| !v.is_empty() || !name.is_list())
            .map(unfold)
    }

    /// Like [`Message::header_values`] but raw: folds kept, empty list elements
    /// included (strict parsers reject them).
    pub fn raw_values<'s>(&'s self, name: HeaderName<'s>) -> impl Iterator<Item = &'a str> + 's {
        let list = name.is_list();
        self.headers_named(name).flat_map(move |h| {
            let (items, whole) = if list {
                (Some(ListItems::new(h.raw_value)), None)
            } else {
                (None, Some(h.raw_value))
            };
            items.into_iter().flatten().chain(whole)
        })
    }

    /// Option tags or method names of Require, Proxy-Require, Supported,
    /// Unsupported, Allow, ... across repeated headers.
    pub fn tokens<'s>(&'s self, name: HeaderName<'s>) -> impl Iterator<Item = &'a str> + 's {
        self.raw_values(name)
            .flat_map(ListItems::new)
            .filter(|t| !t.is_empty())
    }

    /// Call-ID (first one, trimmed).
    pub fn call_id(&self) -> Option<&'a str> {
        self.header_raw(HeaderName::CallId).map(trim_lws)
    }

    fn required(&self, name: HeaderName<'static>) -> Result<&'a str, ParseError> {
        self.header_raw(name)
            .ok_or(ParseError::new(ErrorKind::Missing, "missing").in_header(name.as_str()))
    }

    /// CSeq (first one).
    pub fn cseq(&self) -> Result<CSeq<'a>, ParseError> {
        CSeq::parse(self.required(HeaderName::CSeq)?).map_err(|e| e.in_header("CSeq"))
    }

    /// From (first one).
    pub fn from(&self) -> Result<NameAddr<'a>, ParseError> {
        if let Some(kept) = &self.kept {
            return Ok(kept.from);
        }
        NameAddr::parse(self.required(HeaderName::From)?).map_err(|e| e.in_header("From"))
    }

    /// To (first one).
    pub fn to(&self) -> Result<NameAddr<'a>, ParseError> {
        if let Some(kept) = &self.kept {
            return Ok(kept.to);
        }
        NameAddr::parse(self.required(HeaderName::To)?).map_err(|e| e.in_header("To"))
    }

    /// The From tag, found without parsing the rest of the From header (a fast
    /// path for dialog and transaction matching; [`Message::check`] validates).
    pub fn from_tag(&self) -> Option<&'a str> {
        self.header_raw(HeaderName::From).and_then(tag_only)
    }

    /// The To tag, like [`Message::from_tag`].
    pub fn to_tag(&self) -> Option<&'a str> {
        self.header_raw(HeaderName::To).and_then(tag_only)
    }

    /// The top Via element.
    pub fn top_via(&self) -> Result<Via<'a>, ParseError> {
        if let Some(via) = self.kept.and_then(|k| k.top_via) {
            return Ok(via);
        }
        match self.header_raw(HeaderName::Via) {
            Some(v) => Via::parse_prefix(v, true)
                .map(|(via, _)| via)
                .map_err(|e| e.in_header("Via")),
            None => Err(ParseError::new(ErrorKind::Missing, "missing").in_header("Via")),
        }
    }

    /// Every Via element, top first, across repeated headers. After an error
    /// the rest of that header line is skipped.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'a>, ParseError>> + '_ {
        self.elements(HeaderName::Via, |s| Via::parse_prefix(s, true))
            .map(|r| r.map_err(|e| e.in_header("Via")))
    }

    /// Every Contact element across repeated headers.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'a>, ParseError>> + '_ {
        self.elements(HeaderName::Contact, Contact::parse_prefix)
            .map(|r| r.map_err(|e| e.in_header("Contact")))
    }

    /// Every name-addr element of a list header (Route, Record-Route, Path, ...).
    pub fn name_addrs<'s>(
        &'s self,
        name: HeaderName<'s>,
    ) -> impl Iterator<Item = Result<NameAddr<'a>, ParseError>> + 's {
        self.elements(name, NameAddr::parse_prefix)
    }

    fn elements<'s, T: 's>(
        &'s self,
        name: HeaderName<'s>,
        parse: fn(&'a str) -> Result<(T, &'a str), ParseError>,
    ) -> impl Iterator<Item = Result<T, ParseError>> + use<'s, 'a, T> {
        self.headers_named(name).flat_map(move |h| Elements {
            rest: Some(h.raw_value),
            parse,
        })
    }

    /// Max-Forwards: `Ok(None)` when absent.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        self.header_raw(HeaderName::MaxForwards)
            .map(|v| parse_max_forwards(v).map_err(|e| e.in_header("Max-Forwards")))
            .transpose()
    }

    /// Expires: `Ok(None)` when absent.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.header_raw(HeaderName::Expires)
            .map(|v| parse_delta_seconds(v).map_err(|e| e.in_header("Expires")))
            .transpose()
    }

    /// Content-Type: `Ok(None)` when absent.
    pub fn content_type(&self) -> Result<Option<MediaType<'a>>, ParseError> {
        self.header_raw(HeaderName::ContentType)
            .map(|v| MediaType::parse(v).map_err(|e| e.in_header("Content-Type")))
            .transpose()
    }

    /// The Content-Length value, when present and valid.
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    /// The body: Content-Length bytes, or the rest of the datagram without
    /// Content-Length. Meaningless when [`Message::check`] reported a
    /// Content-Length error (it is then the rest of the datagram).
    pub fn body(&self) -> &'a [u8] {
        self.buf.get(self.body_start..self.body_end).unwrap_or(&[])
    }

    /// Bytes this message occupies from the start of the buffer (leading CR/LF
    /// included); anything after it is not part of the message.
    pub fn len(&self) -> usize {
        self.body_end
    }

    /// Never true: a parsed message has at least a start line.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The message bytes (see [`Message::len`]).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf.get(..self.body_end).unwrap_or(self.buf)
    }
}

/// The comma-separated elements of one header value, parsed one at a time by a
/// prefix parser that returns the rest (empty or starting with `,`).
struct Elements<'a, T> {
    rest: Option<&'a str>,
    parse: fn(&'a str) -> Result<(T, &'a str), ParseError>,
}

impl<'a, T> Iterator for Elements<'a, T> {
    type Item = Result<T, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest.take()?;
        Some((self.parse)(s).map(|(v, rest)| {
            self.rest = rest.strip_prefix(',');
            v
        }))
    }
}

/// Whether `buf[from..end]` holds a CR that does not start a CRLF. CR appears
/// only in line ends (RFC 3261 7.3.1; even `quoted-pair` excludes it): a bare
/// CR inside a value would end the line for another parser, so a value copied
/// from such a message (into a response, a forwarded request) could inject a
/// header there.
fn has_bare_cr(buf: &[u8], from: usize, end: usize) -> bool {
    let head = &buf[..end];
    let mut at = from;
    while let Some(cr) = find_from(head, at, b'\r') {
        if buf.get(cr + 1) != Some(&b'\n') {
            return true;
        }
        at = cr + 2;
    }
    false
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("start", &self.start)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("body_len", &self.body().len())
            .field("defect", &self.defect)
            .field("framing", &self.framing)
            .finish()
    }
}
