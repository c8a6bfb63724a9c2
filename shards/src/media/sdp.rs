//! SDP (RFC 4566/8866) inspection and rewriting for the media relay, sans-IO.
//!
//! Owns two things: [`parse`], which summarises an offer/answer into what the
//! relay needs (addresses, ports, codecs, direction of the first audio
//! stream), and [`rewrite`], which produces the SDP sent to the other leg when
//! media is proxied (addresses and ports pointed at the relay, every stream
//! except the first audio one rejected, ICE attributes removed).

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};

/// Summary of an SDP body, as returned by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// Session-level `c=` address; `None` if absent or not an IP literal.
    pub session_conn: Option<IpAddr>,
    /// The first `m=audio` section, if any.
    pub audio: Option<AudioStream>,
    /// Number of `m=` lines other than the first `m=audio` one.
    pub other_media: usize,
}

/// The first audio stream of an SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioStream {
    /// Effective connection address: the media-level `c=` if the section has
    /// one, else the session-level `c=`. `None` when the applicable `c=` is
    /// absent or not an IP literal (a media-level hostname does not fall back
    /// to the session-level address).
    pub conn: Option<IpAddr>,
    /// Port of the `m=` line (0 = stream rejected/disabled).
    pub port: u16,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// Numeric fmt entries of the `m=` line, in order.
    pub payload_types: Vec<u8>,
    /// `a=rtpmap` entries of this media section, in order.
    pub rtpmaps: Vec<RtpMap>,
    /// Port of `a=rtcp:<port> [IN IP4 <addr>]` (RFC 3605).
    pub rtcp_port: Option<u16>,
    /// `a=rtcp-mux` present (RFC 5761).
    pub rtcp_mux: bool,
    /// Media-level direction attribute, else session-level, else `SendRecv`.
    pub direction: Direction,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// Values of this section's `a=crypto` attributes (RFC 4568), as
    /// written, at most [`MAX_CRYPTO`]; `media::srtp::sdes` reads them.
    pub crypto: Vec<String>,
}

/// The most `a=crypto` attributes of one stream kept (the rest are
/// ignored): a peer offers one per suite it knows.
pub const MAX_CRYPTO: usize = 8;
/// The longest `a=crypto` value kept (a base64 key of a 256-bit suite with
/// a lifetime, an MKI and session parameters is well under this).
const MAX_CRYPTO_LEN: usize = 256;

/// One `a=rtpmap:<pt> <name>/<clock>[/<channels>]` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written, e.g. `telephone-event`.
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count (1 when not given).
    pub channels: u8,
}

/// Media direction attribute (RFC 3264).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

/// Where proxied media should go: the relay's address and RTP port
/// (RTCP is advertised on `rtp_port + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// Relay address advertised in `o=`, `c=` and `a=rtcp`.
    pub addr: IpAddr,
    /// Relay RTP port advertised on the first `m=audio` line.
    pub rtp_port: u16,
}

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    /// The body is not valid UTF-8.
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        valid_up_to: usize,
    },
    /// The body does not start with a `v=` line.
    MissingVersion,
    /// An `m=` line could not be parsed.
    BadMediaLine {
        /// 1-based line number in the body.
        line: usize,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// Our WebRTC end could not be written for a browser (no DTLS
    /// certificate, no session).
    NoWebRtc,
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::NotUtf8 { valid_up_to } => write!(
                f,
                "SDP body is not valid UTF-8 (invalid byte at offset {valid_up_to})"
            ),
            SdpError::MissingVersion => f.write_str("SDP body does not start with a v= line"),
            SdpError::BadMediaLine { line, reason } => {
                write!(f, "SDP line {line}: malformed m= line: {reason}")
            }
            SdpError::NoWebRtc => f.write_str("no WebRTC end could be made for a browser"),
        }
    }
}

impl std::error::Error for SdpError {}

impl AudioStream {
    /// Encoding name and clock rate of payload type `pt`: from this section's
    /// `a=rtpmap` if present, else from the RFC 3551 static audio table.
    #[must_use]
    pub fn codec_of(&self, pt: u8) -> Option<(&str, u32)> {
        if let Some(m) = self.rtpmaps.iter().find(|m| m.pt == pt) {
            return Some((m.name.as_str(), m.clock_rate));
        }
        static_codec(pt)
    }

    /// True when the stream is on hold: direction `sendonly` or `inactive`,
    /// or connection address `0.0.0.0` (RFC 2543 style hold).
    #[must_use]
    pub fn is_hold(&self) -> bool {
        matches!(self.direction, Direction::SendOnly | Direction::Inactive)
            || self.conn == Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Whether the stream's profile is secure RTP (`RTP/SAVP`, `RTP/SAVPF`):
    /// a peer that accepts only SRTP.
    #[must_use]
    pub fn is_savp(&self) -> bool {
        is_savp(&self.proto)
    }
}

/// Whether `proto` is an SRTP profile over plain UDP (`RTP/SAVP`,
/// `RTP/SAVPF`; RFC 3711, RFC 5124).
#[must_use]
pub fn is_savp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/SAVP") || proto.eq_ignore_ascii_case("RTP/SAVPF")
}

/// RFC 3551 table 4, audio payload types with a static assignment.
fn static_codec(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        _ => return None,
    })
}

/// Which part of the body a line belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Session,
    FirstAudio,
    Other,
}

/// A parsed `m=` line, borrowing from the body.
struct MediaLine<'a> {
    media: &'a str,
    port: u16,
    proto: &'a str,
    /// Everything after the port token (including its leading whitespace),
    /// kept verbatim when rewriting.
    after_port: &'a str,
    /// The fmt list, whitespace separated.
    fmts: &'a str,
}

impl<'a> MediaLine<'a> {
    /// Parses the text after `m=`.
    fn parse(rest: &'a str) -> Result<Self, &'static str> {
        let (media, tail) = rest
            .split_once(char::is_whitespace)
            .ok_or("missing port and transport protocol")?;
        if media.is_empty() {
            return Err("missing media type");
        }
        let tail = tail.trim_start();
        let port_end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let (port_tok, after_port) = tail.split_at(port_end);
        if port_tok.is_empty() {
            return Err("missing port");
        }
        let (port_str, count) = match port_tok.split_once('/') {
            Some((p, c)) => (p, Some(c)),
            None => (port_tok, None),
        };
        let port = parse_decimal_u16(port_str).ok_or("port is not a number in 0..=65535")?;
        if let Some(c) = count {
            parse_decimal_u16(c).ok_or("port count is not a number")?;
        }
        let after = after_port.trim_start();
        let proto_end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (proto, fmts) = after.split_at(proto_end);
        if proto.is_empty() {
            return Err("missing transport protocol");
        }
        Ok(MediaLine {
            media,
            port,
            proto,
            after_port,
            fmts,
        })
    }

    fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }
}

/// Strict decimal u16 (no sign, no whitespace).
fn parse_decimal_u16(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Checks UTF-8 and the leading `v=` line; returns the body as text.
fn sdp_text(body: &[u8]) -> Result<&str, SdpError> {
    let text = std::str::from_utf8(body).map_err(|e| SdpError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    match lines(text).next() {
        Some((_, first)) if first.starts_with("v=") => Ok(text),
        _ => Err(SdpError::MissingVersion),
    }
}

/// Non-blank lines with their 1-based line numbers, CR/LF stripped.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Walks the lines of a validated body, tracking the section each belongs to.
/// `on_line` receives the section, the line, and the parsed `m=` line if it
/// is one (the section given for an `m=` line is the one it opens).
fn walk<'a>(
    text: &'a str,
    mut on_line: impl FnMut(Section, &'a str, Option<&MediaLine<'a>>),
) -> Result<(), SdpError> {
    let mut section = Section::Session;
    let mut seen_audio = false;
    for (no, line) in lines(text) {
        if let Some(rest) = line.strip_prefix("m=") {
            let m = MediaLine::parse(rest)
                .map_err(|reason| SdpError::BadMediaLine { line: no, reason })?;
            section = if !seen_audio && m.is_audio() {
                seen_audio = true;
                Section::FirstAudio
            } else {
                Section::Other
            };
            on_line(section, line, Some(&m));
        } else {
            on_line(section, line, None);
        }
    }
    Ok(())
}

/// Splits `a=<name>[:<value>]` into name and value (`""` when absent).
fn attribute(line: &str) -> Option<(&str, &str)> {
    let a = line.strip_prefix("a=")?;
    Some(match a.split_once(':') {
        Some((n, v)) => (n.trim(), v),
        None => (a.trim(), ""),
    })
}

/// Address of a `c=` line (`c=IN IP4 <addr>[/ttl[/count]]`), if it is an IP
/// literal.
fn conn_addr(line: &str) -> Option<IpAddr> {
    let mut f = line.strip_prefix("c=")?.split_whitespace();
    let _nettype = f.next()?;
    let _addrtype = f.next()?;
    let addr = f.next()?;
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse().ok()
}

fn direction_of(name: &str) -> Option<Direction> {
    [
        ("sendrecv", Direction::SendRecv),
        ("sendonly", Direction::SendOnly),
        ("recvonly", Direction::RecvOnly),
        ("inactive", Direction::Inactive),
    ]
    .into_iter()
    .find(|(n, _)| name.eq_ignore_ascii_case(n))
    .map(|(_, d)| d)
}

/// Parses the value of `a=rtpmap:` (`<pt> <name>/<clock>[/<channels>]`).
fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let mut f = value.split_whitespace();
    let pt = f.next()?.parse().ok()?;
    let mut enc = f.next()?.split('/');
    let name = enc.next()?;
    let clock_rate = enc.next()?.parse().ok()?;
    let channels = match enc.next() {
        Some(c) => c.parse().ok()?,
        None => 1,
    };
    if name.is_empty() {
        return None;
    }
    Some(RtpMap {
        pt,
        name: name.to_owned(),
        clock_rate,
        channels,
    })
}

/// First whitespace-separated token of an attribute value.
fn first_token(value: &str) -> Option<&str> {
    value.split_whitespace().next()
}

/// Summarises an SDP body. Lines may end with CRLF or LF; blank and unknown
/// lines are ignored.
///
/// # Errors
///
/// Only when the body is not UTF-8 ([`SdpError::NotUtf8`]), does not start
/// with `v=` ([`SdpError::MissingVersion`]), or has an `m=` line whose port,
/// port count or protocol cannot be parsed ([`SdpError::BadMediaLine`]).
pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
    let text = sdp_text(body)?;
    let mut session_conn = None;
    let mut session_dir = None;
    let mut audio: Option<AudioStream> = None;
    // Media-level c= of the audio section: outer Some = line present.
    let mut media_conn: Option<Option<IpAddr>> = None;
    let mut media_dir = None;
    let mut other_media = 0usize;

    walk(text, |section, line, m| {
        if let Some(m) = m {
            if section == Section::FirstAudio {
                audio = Some(AudioStream {
                    conn: None,
                    port: m.port,
                    proto: m.proto.to_owned(),
                    payload_types: m
                        .fmts
                        .split_whitespace()
                        .filter_map(|t| t.parse().ok())
                        .collect(),
                    rtpmaps: Vec::new(),
                    rtcp_port: None,
                    rtcp_mux: false,
                    direction: Direction::SendRecv,
                    ptime: None,
                    crypto: Vec::new(),
                });
            } else {
                other_media += 1;
            }
            return;
        }
        match section {
            Section::Session => {
                if line.starts_with("c=") {
                    if session_conn.is_none() {
                        session_conn = conn_addr(line);
                    }
                } else if let Some(d) = attribute(line).and_then(|(n, _)| direction_of(n)) {
                    session_dir = Some(d);
                }
            }
            Section::FirstAudio => {
                let Some(a) = audio.as_mut() else { return };
                if line.starts_with("c=") {
                    if media_conn.is_none() {
                        media_conn = Some(conn_addr(line));
                    }
                    return;
                }
                let Some((name, value)) = attribute(line) else {
                    return;
                };
                if let Some(d) = direction_of(name) {
                    media_dir = Some(d);
                } else if name.eq_ignore_ascii_case("rtpmap") {
                    a.rtpmaps.extend(parse_rtpmap(value));
                } else if name.eq_ignore_ascii_case("rtcp") {
                    a.rtcp_port = first_token(value).and_then(parse_decimal_u16);
                } else if name.eq_ignore_ascii_case("rtcp-mux") {
                    a.rtcp_mux = true;
                } else if name.eq_ignore_ascii_case("ptime") {
                    a.ptime = first_token(value).and_then(|v| v.parse().ok());
                } else if name.eq_ignore_ascii_case("crypto")
                    && a.crypto.len() < MAX_CRYPTO
                    && value.len() <= MAX_CRYPTO_LEN
                {
                    a.crypto.push(value.trim().to_owned());
                }
            }
            Section::Other => {}
        }
    })?;

    if let Some(a) = audio.as_mut() {
        a.conn = media_conn.unwrap_or(session_conn);
        a.direction = media_dir.or(session_dir).unwrap_or(Direction::SendRecv);
    }
    Ok(Sdp {
        session_conn,
        audio,
        other_media,
    })
}

/// Attributes that would let media bypass the relay (ICE, RFC 8839),
/// besides every `ice-*` one.
const ICE_ATTRIBUTES: [&str; 3] = ["candidate", "remote-candidates", "end-of-candidates"];

/// An ICE attribute: `ice-*` (ufrag, pwd, options, lite, pacing,
/// mismatch, ...) or a candidate line.
fn is_ice_attribute(name: &str) -> bool {
    name.get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("ice-"))
        || ICE_ATTRIBUTES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// Rewrites an SDP body for the other leg of a proxied call:
///
/// - `o=`: address type and unicast address replaced by the relay's;
/// - session-level `c=` and `c=` of the first `m=audio` section point at the
///   relay, except `c=` lines with address `0.0.0.0` (RFC 2543 hold), which
///   are kept;
/// - first `m=audio`: port set to `relay.rtp_port` (unless it was 0), any
///   `/<count>` dropped, protocol and fmt list kept verbatim; its
///   `a=rtcp:` becomes `relay.rtp_port + 1` (with the relay address if the
///   original carried one; the line is dropped if the port would overflow);
/// - every other `m=` line: port 0 (stream rejected), its section untouched;
/// - ICE attributes removed from every section (the peer's candidates and
///   password are not the other side's business);
/// - everything else kept byte for byte, in order; blank lines dropped.
///
/// The output uses CRLF line endings and ends with CRLF.
///
/// # Errors
///
/// The same as [`parse`]; nothing is produced for a refused body.
pub fn rewrite(body: &[u8], relay: &Relay) -> Result<Vec<u8>, SdpError> {
    let text = sdp_text(body)?;
    let mut out = String::with_capacity(text.len() + 64);
    let atype = addr_type(relay.addr);
    let addr = relay.addr;

    // `write!` into a `String` cannot fail; its `fmt::Result` is ignored.
    walk(text, |section, line, m| {
        if let Some(m) = m {
            let port = if section == Section::FirstAudio && m.port != 0 {
                relay.rtp_port
            } else {
                0
            };
            let _ = write!(out, "m={} {port}{}\r\n", m.media, m.after_port);
            return;
        }
        let relayed = section != Section::Other;
        if let Some(origin) = line.strip_prefix("o=") {
            let mut f = origin.split_whitespace();
            if let (Some(user), Some(id), Some(version), Some(nettype), Some(_), Some(_)) =
                (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
            {
                let _ = write!(out, "o={user} {id} {version} {nettype} {atype} {addr}\r\n");
                return;
            }
        } else if relayed && line.starts_with("c=") {
            if conn_addr(line) != Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)) {
                let _ = write!(out, "c=IN {atype} {addr}\r\n");
                return;
            }
        } else if let Some((name, value)) = attribute(line) {
            // ICE of any stream: its candidates name the peer's addresses,
            // its password is the peer's; the other side gets neither.
            if is_ice_attribute(name) {
                return;
            }
            {
                if section == Section::FirstAudio && name.eq_ignore_ascii_case("rtcp") {
                    let Some(rtcp) = relay.rtp_port.checked_add(1) else {
                        return;
                    };
                    let _ = if value.split_whitespace().nth(1).is_some() {
                        write!(out, "a=rtcp:{rtcp} IN {atype} {addr}\r\n")
                    } else {
                        write!(out, "a=rtcp:{rtcp}\r\n")
                    };
                    return;
                }
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    })?;
    Ok(out.into_bytes())
}

/// What the first audio stream of an SDP sent to one side says about SRTP
/// ([`set_crypto`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoOut<'a> {
    /// Plain RTP: an SRTP profile turned into its plain one (`RTP/SAVP` to
    /// `RTP/AVP`, `RTP/SAVPF` to `RTP/AVPF`).
    Plain,
    /// These `a=crypto` values, under an SRTP profile (`savp`) or a plain
    /// one (RFC 4568 "best effort": a peer without SRTP still answers).
    Keys { savp: bool, values: &'a [String] },
}

/// Whether `body` may carry an SRTP key: a quick, generous byte scan
/// (`crypto` in any case, anywhere) before any parse.
#[must_use]
pub fn mentions_keys(body: &[u8]) -> bool {
    body.windows(6).any(|w| w.eq_ignore_ascii_case(b"crypto"))
}

/// `body` without any line that carries SDES key material (`inline:` in
/// any case): for a body that is not SDP we can rewrite (multipart, not
/// UTF-8), so no key is passed on even then.
#[must_use]
pub fn strip_key_lines(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|b| *b == b'\n') {
        if !line.windows(7).any(|w| w.eq_ignore_ascii_case(b"inline:")) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The profile `proto` becomes under `savp`: the secure or the plain
/// variant of RTP/AVP(F); any other profile as it is.
fn profile(proto: &str, savp: bool) -> &str {
    let feedback =
        proto.eq_ignore_ascii_case("RTP/AVPF") || proto.eq_ignore_ascii_case("RTP/SAVPF");
    let rtp = feedback || proto.eq_ignore_ascii_case("RTP/AVP") || is_savp(proto);
    match (rtp, savp, feedback) {
        (false, _, _) => proto,
        (true, true, true) => "RTP/SAVPF",
        (true, true, false) => "RTP/SAVP",
        (true, false, true) => "RTP/AVPF",
        (true, false, false) => "RTP/AVP",
    }
}

/// Sets what the first audio stream of `body` says about SRTP: its
/// profile and its `a=crypto` lines (the new ones end the section). The
/// `a=crypto` lines of every stream are dropped: a key is never passed on
/// to the other side. Everything else is kept, in order.
///
/// # Errors
///
/// The same as [`parse`].
pub fn set_crypto(body: &[u8], crypto: CryptoOut<'_>) -> Result<Vec<u8>, SdpError> {
    let text = sdp_text(body)?;
    let mut out = String::with_capacity(text.len() + 128);
    let (savp, values): (bool, &[String]) = match crypto {
        CryptoOut::Plain => (false, &[]),
        CryptoOut::Keys { savp, values } => (savp, values),
    };
    let mut in_audio = false;
    let end_audio = |out: &mut String| {
        for v in values {
            out.push_str("a=crypto:");
            out.push_str(v);
            out.push_str("\r\n");
        }
    };
    walk(text, |section, line, m| {
        if in_audio && section != Section::FirstAudio {
            in_audio = false;
            end_audio(&mut out);
        }
        if let Some(m) = m {
            if section == Section::FirstAudio {
                in_audio = true;
                let _ = write!(
                    out,
                    "m={} {} {}{}\r\n",
                    m.media,
                    m.port,
                    profile(m.proto, savp),
                    m.fmts
                );
                return;
            }
        } else if attribute(line).is_some_and(|(n, _)| n.eq_ignore_ascii_case("crypto")) {
            // Keys of any stream: never passed on (the relay's own, for
            // the first audio stream, follow).
            return;
        }
        out.push_str(line);
        out.push_str("\r\n");
    })?;
    if in_audio {
        end_audio(&mut out);
    }
    Ok(out.into_bytes())
}

/// An SDP offer from the relay itself (PCMU, PCMA, telephone-event) on
/// `addr`:`port`; `session` is the o= session id.
pub fn relay_offer(addr: IpAddr, port: u16, session: u64) -> String {
    let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=ShardPBX {session} 1 IN {ip} {addr}\r\ns=ShardPBX\r\nc=IN {ip} {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// An SDP answer from the relay itself to `offer` on `addr`:`port`: the
/// offer's first codec, and telephone-event when offered. None when the
/// offer has no codec.
pub fn relay_answer(offer: &AudioStream, addr: IpAddr, port: u16, session: u64) -> Option<Vec<u8>> {
    let ip = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let first = *offer.payload_types.first()?;
    let mut pts = vec![first];
    let dtmf = offer
        .rtpmaps
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case("telephone-event"))
        .map(|m| m.pt);
    pts.extend(dtmf.filter(|d| *d != first));
    let fmts: Vec<String> = pts.iter().map(u8::to_string).collect();
    let mut out = format!(
        "v=0\r\no=ShardPBX {session} 1 IN {ip} {addr}\r\ns=ShardPBX\r\nc=IN {ip} {addr}\r\nt=0 0\r\nm=audio {port} {} {}\r\n",
        offer.proto,
        fmts.join(" ")
    );
    for pt in pts {
        if let Some(m) = offer.rtpmaps.iter().find(|m| m.pt == pt) {
            let ch = if m.channels > 1 {
                format!("/{}", m.channels)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "a=rtpmap:{pt} {}/{}{ch}\r\n",
                m.name, m.clock_rate
            ));
        }
    }
    out.push_str("a=sendrecv\r\n");
    Some(out.into_bytes())
}

#[path = "sdp_codecs.rs"]
mod codecs;
pub use codecs::{add_codecs, set_codecs, CodecLine};

#[path = "sdp_webrtc.rs"]
mod webrtc_sdp;
pub use webrtc_sdp::{is_webrtc, to_plain, to_webrtc, WEBRTC_PROTO};

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sdp_crypto_tests.rs"]
mod crypto_tests;
