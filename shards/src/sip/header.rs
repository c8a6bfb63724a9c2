//! [`HeaderName`]: the known SIP headers, their compact forms (RFC 3261 7.3.3 and
//! later RFCs), whether they are comma-separated lists, and the case-insensitive
//! name lookup the scanner uses (a compile-time hash table, no allocation).

use std::fmt;

macro_rules! known_headers {
    ($( $variant:ident = $name:literal, $compact:literal, $list:literal; )*) => {
        /// A header name. Known headers (full or compact form, any case) map to a
        /// variant; anything else is `Other` with the name as written.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum HeaderName<'a> {
            $( $variant, )*
            /// An unknown header, name as written.
            Other(&'a str),
        }

        #[derive(Clone, Copy)]
        #[repr(u8)]
        #[allow(clippy::upper_case_acronyms, clippy::enum_variant_names)]
        enum Id { $( $variant, )* }

        /// (name, compact letter or b'\0', comma-separated list)
        const KNOWN: &[(HeaderName<'static>, &str, u8, bool)] = &[
            $( (HeaderName::$variant, $name, $compact, $list), )*
        ];

        impl HeaderName<'_> {
            /// Index into `KNOWN`, `None` for `Other`.
            #[inline]
            pub(crate) fn id(&self) -> Option<u8> {
                match self {
                    $( HeaderName::$variant => Some(Id::$variant as u8), )*
                    HeaderName::Other(_) => None,
                }
            }
        }
    };
}

known_headers! {
    Accept = "Accept", b'\0', true;
    AcceptContact = "Accept-Contact", b'a', true;
    AcceptEncoding = "Accept-Encoding", b'\0', true;
    AcceptLanguage = "Accept-Language", b'\0', true;
    AlertInfo = "Alert-Info", b'\0', true;
    Allow = "Allow", b'\0', true;
    AllowEvents = "Allow-Events", b'u', true;
    AuthenticationInfo = "Authentication-Info", b'\0', false;
    Authorization = "Authorization", b'\0', false;
    CallId = "Call-ID", b'i', false;
    CallInfo = "Call-Info", b'\0', true;
    Contact = "Contact", b'm', true;
    ContentDisposition = "Content-Disposition", b'\0', false;
    ContentEncoding = "Content-Encoding", b'e', true;
    ContentLanguage = "Content-Language", b'\0', true;
    ContentLength = "Content-Length", b'l', false;
    ContentType = "Content-Type", b'c', false;
    CSeq = "CSeq", b'\0', false;
    Date = "Date", b'\0', false;
    ErrorInfo = "Error-Info", b'\0', true;
    Event = "Event", b'o', false;
    Expires = "Expires", b'\0', false;
    From = "From", b'f', false;
    Identity = "Identity", b'y', false;
    IdentityInfo = "Identity-Info", b'n', false;
    InReplyTo = "In-Reply-To", b'\0', true;
    MaxForwards = "Max-Forwards", b'\0', false;
    MimeVersion = "MIME-Version", b'\0', false;
    MinExpires = "Min-Expires", b'\0', false;
    MinSe = "Min-SE", b'\0', false;
    Organization = "Organization", b'\0', false;
    PAssertedIdentity = "P-Asserted-Identity", b'\0', true;
    PPreferredIdentity = "P-Preferred-Identity", b'\0', true;
    Path = "Path", b'\0', true;
    Priority = "Priority", b'\0', false;
    Privacy = "Privacy", b'\0', false;
    ProxyAuthenticate = "Proxy-Authenticate", b'\0', false;
    ProxyAuthorization = "Proxy-Authorization", b'\0', false;
    ProxyRequire = "Proxy-Require", b'\0', true;
    RAck = "RAck", b'\0', false;
    Reason = "Reason", b'\0', true;
    RecordRoute = "Record-Route", b'\0', true;
    ReferTo = "Refer-To", b'r', false;
    ReferredBy = "Referred-By", b'b', false;
    RejectContact = "Reject-Contact", b'j', true;
    Replaces = "Replaces", b'\0', false;
    ReplyTo = "Reply-To", b'\0', false;
    RequestDisposition = "Request-Disposition", b'd', true;
    Require = "Require", b'\0', true;
    RetryAfter = "Retry-After", b'\0', false;
    Route = "Route", b'\0', true;
    RSeq = "RSeq", b'\0', false;
    Server = "Server", b'\0', false;
    ServiceRoute = "Service-Route", b'\0', true;
    SessionExpires = "Session-Expires", b'x', false;
    Subject = "Subject", b's', false;
    SubscriptionState = "Subscription-State", b'\0', false;
    Supported = "Supported", b'k', true;
    Timestamp = "Timestamp", b'\0', false;
    To = "To", b't', false;
    Unsupported = "Unsupported", b'\0', true;
    UserAgent = "User-Agent", b'\0', false;
    Via = "Via", b'v', true;
    Warning = "Warning", b'\0', true;
    WwwAuthenticate = "WWW-Authenticate", b'\0', false;
}

/// Marker for "unknown header" in the scanner's compact tables.
pub(crate) const OTHER: u8 = u8::MAX;

/// Number of known headers (ids are `0..KNOWN_COUNT`).
pub(crate) const KNOWN_COUNT: usize = KNOWN.len();

const TABLE_SIZE: usize = 256;

/// Known names are compared as three little-endian words (24 bytes; the longest,
/// `P-Preferred-Identity`, has 20).
const WORDS: usize = 3;
const MAX_KNOWN_LEN: usize = WORDS * 8;

/// Per known name: its bytes in lower case, and 0x20 where it has a letter, as
/// words. A name matches when `(word | mask) == lower` for every word: exactly a
/// case-insensitive comparison (the mask only folds letters).
#[derive(Clone, Copy)]
struct Folded {
    len: usize,
    lower: [u64; WORDS],
    mask: [u64; WORDS],
}

const fn build_folded() -> [Folded; KNOWN.len()] {
    let mut t = [Folded {
        len: 0,
        lower: [0; WORDS],
        mask: [0; WORDS],
    }; KNOWN.len()];
    let mut i = 0;
    while i < KNOWN.len() {
        let name = KNOWN[i].1.as_bytes();
        t[i].len = name.len();
        let mut j = 0;
        while j < name.len() && j < MAX_KNOWN_LEN {
            let shift = 8 * (j % 8);
            t[i].lower[j / 8] |= (name[j].to_ascii_lowercase() as u64) << shift;
            if name[j].is_ascii_alphabetic() {
                t[i].mask[j / 8] |= 0x20 << shift;
            }
            j += 1;
        }
        i += 1;
    }
    t
}

/// Case-insensitive hash of a name from its first word (zero padded) and length.
const fn hash(first_word: u64, len: usize) -> usize {
    let keep = if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    };
    let folded = (first_word | 0x2020_2020_2020_2020) & keep;
    ((folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize ^ len.wrapping_mul(31))
        % TABLE_SIZE
}

const fn build_table() -> [u8; TABLE_SIZE] {
    let mut t = [OTHER; TABLE_SIZE];
    let mut i = 0;
    while i < KNOWN.len() {
        let mut h = hash(FOLDED_CONST[i].lower[0], FOLDED_CONST[i].len);
        while t[h] != OTHER {
            h = (h + 1) % TABLE_SIZE;
        }
        t[h] = i as u8;
        i += 1;
    }
    t
}

const fn build_compact() -> [u8; 26] {
    let mut t = [OTHER; 26];
    let mut i = 0;
    while i < KNOWN.len() {
        let c = KNOWN[i].2;
        if c != b'\0' {
            t[(c - b'a') as usize] = i as u8;
        }
        i += 1;
    }
    t
}

const FOLDED_CONST: [Folded; KNOWN.len()] = build_folded();
static FOLDED: [Folded; KNOWN.len()] = FOLDED_CONST;
static TABLE: [u8; TABLE_SIZE] = build_table();
static COMPACT: [u8; 26] = build_compact();

/// Looks up a name given as zero-padded words.
#[inline]
fn lookup(words: &[u64; WORDS], len: usize) -> u8 {
    let mut h = hash(words[0], len);
    loop {
        let id = TABLE[h];
        let Some(k) = FOLDED.get(id as usize) else {
            return OTHER;
        };
        if k.len == len
            && (words[0] | k.mask[0]) == k.lower[0]
            && (words[1] | k.mask[1]) == k.lower[1]
            && (words[2] | k.mask[2]) == k.lower[2]
        {
            return id;
        }
        h = (h + 1) % TABLE_SIZE;
    }
}

fn compact(c: u8) -> u8 {
    let c = c.to_ascii_lowercase();
    if c.is_ascii_lowercase() {
        COMPACT[(c - b'a') as usize]
    } else {
        OTHER
    }
}

/// The id of a header name (full or compact, any case), or [`OTHER`].
pub(crate) fn classify(name: &[u8]) -> u8 {
    match name.len() {
        0 => OTHER,
        1 => compact(name[0]),
        len if len > MAX_KNOWN_LEN => OTHER,
        len => {
            let mut bytes = [0u8; MAX_KNOWN_LEN];
            bytes[..len].copy_from_slice(name);
            let mut words = [0u64; WORDS];
            for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(chunk);
                *w = u64::from_le_bytes(b);
            }
            lookup(&words, len)
        }
    }
}

/// [`classify`] of `buf[start..start + len]`, loading whole words from the
/// buffer (the scanner's fast path; bytes past the name are masked off).
#[inline]
pub(crate) fn classify_in(buf: &[u8], start: usize, len: usize) -> u8 {
    let nwords = len.div_ceil(8);
    if !(2..=MAX_KNOWN_LEN).contains(&len) || start + nwords * 8 > buf.len() {
        return match buf.get(start..start + len) {
            Some(name) => classify(name),
            None => OTHER,
        };
    }
    let mut words = [0u64; WORDS];
    for (k, w) in words.iter_mut().enumerate().take(nwords) {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[start + 8 * k..start + 8 * k + 8]);
        *w = u64::from_le_bytes(b);
    }
    let rem = len - (nwords - 1) * 8;
    if rem < 8 {
        words[nwords - 1] &= (1u64 << (8 * rem)) - 1;
    }
    lookup(&words, len)
}

/// The `HeaderName` of a scanner id.
pub(crate) fn from_id(id: u8, raw: &str) -> HeaderName<'_> {
    match KNOWN.get(id as usize) {
        Some(k) => k.0,
        None => HeaderName::Other(raw),
    }
}

impl<'a> HeaderName<'a> {
    /// Maps a name as written (full or compact form, any case) to a `HeaderName`.
    pub fn parse(name: &'a str) -> Self {
        if !super::syntax::is_token_bytes(name.as_bytes()) {
            return HeaderName::Other(name);
        }
        from_id(classify(name.as_bytes()), name)
    }

    /// The canonical full name (`Call-ID`, `CSeq`, ...), or the name as written.
    pub fn as_str(&self) -> &'a str {
        match self.id() {
            Some(id) => KNOWN[id as usize].1,
            None => match self {
                HeaderName::Other(s) => s,
                _ => "",
            },
        }
    }

    /// The compact form, if the header has one.
    pub fn compact(&self) -> Option<char> {
        let id = self.id()?;
        let c = KNOWN[id as usize].2;
        (c != b'\0').then_some(c as char)
    }

    /// Whether the header's value is a comma-separated list (Via, Contact, Route,
    /// Require, Allow, ...). Other headers (Authorization, Date, unknown ones) are
    /// never split on commas.
    pub fn is_list(&self) -> bool {
        self.id().is_some_and(|id| KNOWN[id as usize].3)
    }

    /// Whether this name matches a header of the message with scanner id `id` and
    /// raw name `raw`.
    pub(crate) fn matches(&self, id: u8, raw: &str) -> bool {
        match self {
            HeaderName::Other(s) => id == OTHER && s.eq_ignore_ascii_case(raw),
            known => known.id() == Some(id),
        }
    }
}

impl fmt::Display for HeaderName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_classifies() {
        for (i, k) in KNOWN.iter().enumerate() {
            assert_eq!(classify(k.1.as_bytes()) as usize, i, "{}", k.1);
            assert_eq!(classify(k.1.to_ascii_lowercase().as_bytes()) as usize, i);
            assert_eq!(classify(k.1.to_ascii_uppercase().as_bytes()) as usize, i);
            assert_eq!(HeaderName::parse(k.1), k.0);
            assert_eq!(k.0.as_str(), k.1);
            assert_eq!(k.0.id(), Some(i as u8));
        }
        assert!(KNOWN.len() < OTHER as usize);
    }

    #[test]
    fn classify_in_buffer() {
        let buf = b"x Content-Length: 0\r\nVIA: a\r\nP-Preferred-Identity: b\r\nX-Foo-Bar-Baz: c";
        assert_eq!(
            classify_in(buf, 2, 14),
            HeaderName::ContentLength.id().unwrap()
        );
        assert_eq!(classify_in(buf, 21, 3), HeaderName::Via.id().unwrap());
        assert_eq!(
            classify_in(buf, 29, 20),
            HeaderName::PPreferredIdentity.id().unwrap()
        );
        assert_eq!(classify_in(buf, 54, 13), OTHER);
        assert_eq!(
            classify_in(buf, 54, 1),
            HeaderName::SessionExpires.id().unwrap()
        );
        assert_eq!(classify_in(buf, 1, 1), OTHER);
        assert_eq!(classify_in(buf, 2, 13), OTHER);
        assert_eq!(classify_in(b"to", 0, 2), HeaderName::To.id().unwrap());
        assert_eq!(classify_in(b"to", 0, 3), OTHER);
        // Near-misses that differ only outside the letter case bit.
        assert_eq!(classify(b"Call_ID"), OTHER);
        assert_eq!(classify(b"Call\rID"), OTHER);
        assert_eq!(classify(b"CALL-ID"), HeaderName::CallId.id().unwrap());
    }

    #[test]
    fn compact_forms() {
        let pairs = [
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("e", HeaderName::ContentEncoding),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("f", HeaderName::From),
            ("s", HeaderName::Subject),
            ("k", HeaderName::Supported),
            ("t", HeaderName::To),
            ("v", HeaderName::Via),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("j", HeaderName::RejectContact),
            ("a", HeaderName::AcceptContact),
            ("d", HeaderName::RequestDisposition),
            ("y", HeaderName::Identity),
            ("n", HeaderName::IdentityInfo),
        ];
        for (c, h) in pairs {
            assert_eq!(HeaderName::parse(c), h, "{c}");
            assert_eq!(HeaderName::parse(&c.to_ascii_uppercase()), h);
            assert_eq!(h.compact(), c.chars().next());
        }
        assert_eq!(HeaderName::parse("z"), HeaderName::Other("z"));
        assert_eq!(HeaderName::parse("1"), HeaderName::Other("1"));
    }

    #[test]
    fn unknown_names() {
        assert_eq!(
            HeaderName::parse("C%6Fntact"),
            HeaderName::Other("C%6Fntact")
        );
        assert_eq!(HeaderName::parse("X-Foo").as_str(), "X-Foo");
        assert_eq!(HeaderName::parse(""), HeaderName::Other(""));
        assert_eq!(HeaderName::parse("Call\rID"), HeaderName::Other("Call\rID"));
        assert_eq!(HeaderName::parse("Call_ID"), HeaderName::Other("Call_ID"));
        assert!(HeaderName::Other("x-foo").matches(OTHER, "X-FOO"));
        assert!(!HeaderName::Via.matches(OTHER, "Via"));
        assert!(HeaderName::Via.is_list());
        assert!(!HeaderName::Authorization.is_list());
        assert!(!HeaderName::Other("x").is_list());
    }
}
