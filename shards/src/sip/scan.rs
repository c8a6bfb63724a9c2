//! Byte-level scanning for [`Message::parse`](super::Message::parse): SWAR
//! searches (eight bytes at a time) for line ends and colons, white-space
//! helpers, and the start line.

use super::error::{ErrorKind, ParseError};
use super::message::StartLine;
use super::method::Method;
use super::syntax::{find_byte, is_token_bytes};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

#[inline]
fn load8(hay: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&hay[i..i + 8]);
    u64::from_le_bytes(w)
}

/// High bit set in each byte of `w` equal to the byte repeated in `rep`. Only
/// the lowest set bit is exact (borrows may mark bytes above a match), which is
/// all the searches below use.
#[inline]
fn matches(w: u64, rep: u64) -> u64 {
    let x = w ^ rep;
    x.wrapping_sub(LO) & !x & HI
}

/// Finds `needle` from `from`, eight bytes at a time.
#[inline]
pub(crate) fn find_from(hay: &[u8], from: usize, needle: u8) -> Option<usize> {
    let rep = LO.wrapping_mul(u64::from(needle));
    let mut i = from;
    while i + 8 <= hay.len() {
        let t = matches(load8(hay, i), rep);
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay.get(i..)?
        .iter()
        .position(|&b| b == needle)
        .map(|p| p + i)
}

/// Finds the first `a` or `b` from `from`, eight bytes at a time.
#[inline]
pub(crate) fn find2_from(hay: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    let (ra, rb) = (LO.wrapping_mul(u64::from(a)), LO.wrapping_mul(u64::from(b)));
    let mut i = from;
    while i + 8 <= hay.len() {
        let w = load8(hay, i);
        let t = matches(w, ra) | matches(w, rb);
        if t != 0 {
            return Some(i + (t.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay.get(i..)?
        .iter()
        .position(|&c| c == a || c == b)
        .map(|p| p + i)
}

/// (end of line content without CR/LF, start of next line)
#[inline]
pub(crate) fn line_at(buf: &[u8], pos: usize) -> (usize, usize) {
    match find_from(buf, pos, b'\n') {
        Some(lf) => (
            if lf > pos && buf[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            },
            lf + 1,
        ),
        None => {
            let end = if buf.len() > pos && buf[buf.len() - 1] == b'\r' {
                buf.len() - 1
            } else {
                buf.len()
            };
            (end, buf.len())
        }
    }
}

#[inline]
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

#[inline]
pub(crate) fn skip_wsp(buf: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && is_wsp(buf[i]) {
        i += 1;
    }
    i
}

#[inline]
pub(crate) fn trim_wsp_end(buf: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && is_wsp(buf[end - 1]) {
        end -= 1;
    }
    end
}

fn is_sip_version(v: &[u8]) -> bool {
    v.len() > 4
        && v[..4].eq_ignore_ascii_case(b"SIP/")
        && match v[4..].iter().position(|&b| b == b'.') {
            Some(dot) => {
                let (maj, min) = (&v[4..4 + dot], &v[5 + dot..]);
                !maj.is_empty()
                    && !min.is_empty()
                    && maj.iter().all(u8::is_ascii_digit)
                    && min.iter().all(u8::is_ascii_digit)
            }
            None => false,
        }
}

const fn start_err(what: &'static str) -> ParseError {
    ParseError::new(ErrorKind::StartLine, what)
}

pub(crate) fn parse_start_line<'a>(
    line: &'a str,
    defect: &mut Option<ParseError>,
) -> Result<StartLine<'a>, ParseError> {
    let b = line.as_bytes();
    if b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"SIP/") {
        let sp = find_byte(line, b' ').ok_or(start_err("status line without status code"))?;
        let version = &line[..sp];
        if !is_sip_version(version.as_bytes()) {
            return Err(start_err("invalid SIP version"));
        }
        let rest = &b[sp + 1..];
        let three = rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit);
        if !three || rest.get(3).is_some_and(|&c| c != b' ') {
            return Err(start_err("status code must be 3 digits"));
        }
        let code = u16::from(rest[0] - b'0') * 100
            + u16::from(rest[1] - b'0') * 10
            + u16::from(rest[2] - b'0');
        if !(100..=699).contains(&code) {
            return Err(start_err("status code out of range"));
        }
        let reason = line.get(sp + 5..).unwrap_or("");
        return Ok(StartLine::Response {
            version,
            code,
            reason,
        });
    }
    let sp = find_byte(line, b' ').ok_or(start_err("not a SIP request line"))?;
    let method = &line[..sp];
    if !is_token_bytes(method.as_bytes()) {
        return Err(start_err("invalid method"));
    }
    let rest = &line[sp + 1..];
    let rb = rest.as_bytes();
    let mut t_end = rb.len();
    while t_end > 0 && is_wsp(rb[t_end - 1]) {
        t_end -= 1;
    }
    let trimmed = &rest[..t_end];
    let last_sp = rb[..t_end]
        .iter()
        .rposition(|&c| c == b' ')
        .ok_or(start_err("not a SIP request line"))?;
    let version = &trimmed[last_sp + 1..];
    if !is_sip_version(version.as_bytes()) {
        return Err(start_err("not a SIP request line"));
    }
    let uri_part = &trimmed[..last_sp];
    let ub = uri_part.as_bytes();
    let (mut u0, mut u1) = (0, ub.len());
    while u0 < u1 && ub[u0] == b' ' {
        u0 += 1;
    }
    while u1 > u0 && ub[u1 - 1] == b' ' {
        u1 -= 1;
    }
    let uri = &uri_part[u0..u1];
    let problem = if trimmed.len() != rest.len() {
        Some("trailing white space in request line")
    } else if uri.len() != uri_part.len() {
        Some("extra white space in request line")
    } else if uri.is_empty() {
        Some("missing Request-URI")
    } else {
        None
    };
    if let Some(what) = problem {
        defect.get_or_insert(start_err(what));
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        uri,
        version,
    })
}
