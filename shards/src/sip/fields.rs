//! Typed parsers for the simple header fields: CSeq, Max-Forwards, Expires and
//! other delta-seconds, Content-Type / Accept media types, Date (RFC 1123, GMT).

use super::error::ParseError;
use super::method::Method;
use super::params::Params;
use super::syntax::{is_lws, is_token, split_before, split_byte, trim_lws};

/// `CSeq: <number> <method>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// Sequence number.
    pub seq: u32,
    /// Method.
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    /// Parses a CSeq value (LWS between number and method may be folded).
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let s = trim_lws(s);
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let rest = &s[digits..];
        if digits == 0 || !rest.bytes().next().is_some_and(is_lws) {
            return Err(ParseError::header("expected <number> <method>"));
        }
        let seq =
            parse_u32(&s[..digits]).ok_or(ParseError::header("sequence number out of range"))?;
        let method = trim_lws(rest);
        if !is_token(method) {
            return Err(ParseError::header("invalid method"));
        }
        Ok(CSeq {
            seq,
            method: Method::parse(method),
        })
    }
}

/// Parses all-digit text into a u32 (leading zeros allowed), `None` on overflow
/// or any non-digit.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u32, |acc, b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// Max-Forwards: 0-255.
pub fn parse_max_forwards(s: &str) -> Result<u8, ParseError> {
    let v = parse_u32(trim_lws(s)).ok_or(ParseError::header("not a number"))?;
    u8::try_from(v).map_err(|_| ParseError::header("out of range (0-255)"))
}

/// delta-seconds (Expires, Min-Expires, expires parameter): a u32.
pub fn parse_delta_seconds(s: &str) -> Result<u32, ParseError> {
    let t = trim_lws(s);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::header("not a number of seconds"));
    }
    parse_u32(t).ok_or(ParseError::header("number of seconds out of range"))
}

/// A media type (`Content-Type`) or media range (`Accept` element).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// Type, as written (`application`, `*`).
    pub ty: &'a str,
    /// Subtype, as written (`sdp`, `*`).
    pub subtype: &'a str,
    /// Parameters (`;boundary=...`, `;q=0.5`).
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses `type "/" subtype *( ";" param )`.
    pub fn parse(s: &'a str) -> Result<Self, ParseError> {
        let s = trim_lws(s);
        let (ty, rest) = split_byte(s, b'/').ok_or(ParseError::header("expected type/subtype"))?;
        let (sub, params) = split_before(rest, b';');
        let (ty, subtype) = (trim_lws(ty), trim_lws(sub));
        if !is_token(ty) || !is_token(subtype) {
            return Err(ParseError::header("expected type/subtype"));
        }
        let params = Params::new(params);
        params.check_header()?;
        Ok(MediaType {
            ty,
            subtype,
            params,
        })
    }

    /// Case-insensitive match on type and subtype (`application/sdp`).
    pub fn is(&self, ty: &str, subtype: &str) -> bool {
        self.ty.eq_ignore_ascii_case(ty) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// A `Date` header value (RFC 3261 20.17: RFC 1123 format, always GMT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipDate {
    /// Year, e.g. 2005.
    pub year: u16,
    /// Month, 1-12.
    pub month: u8,
    /// Day of month, 1-31.
    pub day: u8,
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute, 0-59.
    pub minute: u8,
    /// Second, 0-60.
    pub second: u8,
}

impl SipDate {
    /// Parses `Sat, 15 Oct 2005 04:44:56 GMT`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        const BAD: ParseError = ParseError::header("not an RFC 1123 date in GMT");
        let s = trim_lws(s);
        let mut parts = s.split(' ');
        let mut next = || parts.next().ok_or(BAD);
        let wkday = next()?;
        let day = next()?;
        let month = next()?;
        let year = next()?;
        let time = next()?;
        let zone = next()?;
        if parts.next().is_some() {
            return Err(BAD);
        }
        const DAYS: [&str; 7] = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        if !DAYS.contains(&wkday) || zone != "GMT" {
            return Err(BAD);
        }
        let month = MONTHS.iter().position(|m| *m == month).ok_or(BAD)? as u8 + 1;
        let num = |t: &str, len: usize, max: u32| {
            (t.len() == len)
                .then(|| parse_u32(t))
                .flatten()
                .filter(|v| *v <= max)
        };
        let day = num(day, 2, 31).filter(|d| *d >= 1).ok_or(BAD)? as u8;
        let year = num(year, 4, 9999).ok_or(BAD)? as u16;
        let mut hms = time.split(':');
        let mut field = |max| hms.next().and_then(|t| num(t, 2, max)).ok_or(BAD);
        let (hour, minute, second) = (field(23)? as u8, field(59)? as u8, field(60)? as u8);
        if hms.next().is_some() {
            return Err(BAD);
        }
        Ok(SipDate {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = CSeq::parse("0009\r\n  INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        let c = CSeq::parse("8 RE%47IST%45R").unwrap();
        assert_eq!(c.method, Method::Other("RE%47IST%45R"));
        assert_eq!(CSeq::parse("4294967295 BYE").unwrap().seq, u32::MAX);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("1 INVITE x").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_max_forwards("0068").unwrap(), 68);
        assert_eq!(parse_max_forwards("0").unwrap(), 0);
        assert!(parse_max_forwards("300").is_err());
        assert!(parse_max_forwards("-1").is_err());
        assert!(parse_max_forwards("").is_err());
        assert_eq!(parse_delta_seconds(" 3600 ").unwrap(), 3600);
        assert!(parse_delta_seconds("1".repeat(100).as_str()).is_err());
        assert!(parse_delta_seconds("1h").is_err());
    }

    #[test]
    fn media_types() {
        let m = MediaType::parse("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.params.value("boundary"), Some("7a9cbec02ceef655"));
        let m = MediaType::parse("application / sdp").unwrap();
        assert_eq!((m.ty, m.subtype), ("application", "sdp"));
        assert!(MediaType::parse("*/*;q=0.5").is_ok());
        assert!(MediaType::parse("application").is_err());
        assert!(MediaType::parse("application/").is_err());
        assert!(MediaType::parse("a/b;").is_err());
    }

    #[test]
    fn dates() {
        let d = SipDate::parse("Sat, 15 Oct 2005 04:44:56 GMT").unwrap();
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second),
            (2005, 10, 15, 4, 44, 56)
        );
        assert!(SipDate::parse("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(SipDate::parse("Fri, 1 Jan 2010 16:00:00 GMT").is_err());
        assert!(SipDate::parse("Fri, 01 Jan 2010 24:00:00 GMT").is_err());
        assert!(SipDate::parse("Fri, 01 Foo 2010 16:00:00 GMT").is_err());
        assert!(SipDate::parse("").is_err());
    }
}
