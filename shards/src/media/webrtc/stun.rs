//! Minimal STUN (RFC 5389) for an ICE-lite agent (RFC 8445 section 2.5):
//! owns checking a peer's Binding request (the message structure, every
//! length bounded, FINGERPRINT, USERNAME `<our ufrag>:<their ufrag>`,
//! MESSAGE-INTEGRITY keyed with our ice-pwd; USE-CANDIDATE and
//! ICE-CONTROLLING noted) and building the success response
//! (XOR-MAPPED-ADDRESS of the request's source, MESSAGE-INTEGRITY,
//! FINGERPRINT). A lite agent never sends requests of its own, so there is
//! no client side here; anything that is not a valid, authenticated Binding
//! request gets no answer at all.

use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The STUN header: type, length, magic cookie, transaction id.
const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// Binding request and Binding success response (RFC 5389 section 6).
pub(super) const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;

const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
#[cfg(test)]
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;
#[cfg(test)]
const ATTR_ICE_CONTROLLED: u16 = 0x8029;
const ATTR_ICE_CONTROLLING: u16 = 0x802a;

/// FINGERPRINT is the CRC-32 of the message XOR this (RFC 5389 15.5).
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// Length of the HMAC-SHA1 in MESSAGE-INTEGRITY.
const INTEGRITY_LEN: usize = 20;
/// Longest request looked at: a browser's checks are about 100 octets.
const MAX_REQUEST_LEN: usize = 1024;
/// Most attributes walked in one request.
const MAX_ATTRS: usize = 32;

/// A STUN transaction id.
pub(super) type TransactionId = [u8; 12];

/// What a valid, authenticated Binding request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Request {
    /// To echo in the response.
    pub(super) txid: TransactionId,
    /// USE-CANDIDATE: the peer nominates the pair (RFC 8445 7.3.1.5).
    pub(super) use_candidate: bool,
    /// ICE-CONTROLLING: the peer is the controlling agent (a lite agent is
    /// always controlled, so only such a peer may nominate).
    pub(super) controlling: bool,
}

/// Where the attributes of interest are in a request.
#[derive(Default)]
struct Attrs<'a> {
    username: Option<&'a [u8]>,
    /// Offset of the MESSAGE-INTEGRITY attribute and its value.
    integrity: Option<(usize, &'a [u8])>,
    /// Offset of the FINGERPRINT attribute and its value.
    fingerprint: Option<(usize, &'a [u8])>,
    use_candidate: bool,
    controlling: bool,
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    match b.get(at..at + 2)? {
        &[x, y] => Some(usize::from(u16::from_be_bytes([x, y]))),
        _ => None,
    }
}

/// `n` rounded up to a multiple of 4 (attribute padding).
fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// The header and attribute walk of a Binding request: `None` unless the
/// structure is sound (type, length = the datagram's, magic cookie, every
/// attribute inside the message, FINGERPRINT last if present).
fn parse(buf: &[u8]) -> Option<(TransactionId, Attrs<'_>)> {
    if buf.len() > MAX_REQUEST_LEN || be16(buf, 0)? != usize::from(BINDING_REQUEST) {
        return None;
    }
    let len = be16(buf, 2)?;
    if len % 4 != 0 || HEADER_LEN + len != buf.len() || buf.get(4..8)? != MAGIC_COOKIE {
        return None;
    }
    let txid: TransactionId = buf.get(8..HEADER_LEN)?.try_into().ok()?;
    let mut attrs = Attrs::default();
    let mut at = HEADER_LEN;
    for _ in 0..MAX_ATTRS {
        if at == buf.len() {
            return Some((txid, attrs));
        }
        if attrs.fingerprint.is_some() {
            // FINGERPRINT must be the last attribute.
            return None;
        }
        let typ = u16::try_from(be16(buf, at)?).ok()?;
        let vlen = be16(buf, at + 2)?;
        let value = buf.get(at + 4..at + 4 + vlen)?;
        let next = at + 4 + padded(vlen);
        if next > buf.len() {
            return None;
        }
        match typ {
            ATTR_FINGERPRINT if vlen == 4 => attrs.fingerprint = Some((at, value)),
            ATTR_FINGERPRINT => return None,
            // RFC 5389 15.4: what follows MESSAGE-INTEGRITY (but
            // FINGERPRINT) is not covered by it and is ignored.
            _ if attrs.integrity.is_some() => {}
            ATTR_MESSAGE_INTEGRITY if vlen == INTEGRITY_LEN => {
                attrs.integrity = Some((at, value));
            }
            ATTR_MESSAGE_INTEGRITY => return None,
            ATTR_USERNAME if attrs.username.is_none() => attrs.username = Some(value),
            ATTR_USE_CANDIDATE => attrs.use_candidate = true,
            ATTR_ICE_CONTROLLING => attrs.controlling = true,
            _ => {}
        }
        at = next;
    }
    None
}

/// The CRC-32 FINGERPRINT value of `msg` (everything before the attribute).
fn fingerprint_of(msg: &[u8]) -> u32 {
    crc32fast::hash(msg) ^ FINGERPRINT_XOR
}

/// HMAC-SHA1 keyed with `key` over `msg[..at]` (a message whose
/// MESSAGE-INTEGRITY attribute starts at `at`), with the header's length
/// field set as if the message ended right after that attribute.
fn integrity_mac(msg: &[u8], at: usize, key: &[u8]) -> Option<Hmac<Sha1>> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).ok()?;
    let len = u16::try_from(at + 4 + INTEGRITY_LEN - HEADER_LEN).ok()?;
    mac.update(msg.get(..2)?);
    mac.update(&len.to_be_bytes());
    mac.update(msg.get(4..at)?);
    Some(mac)
}

/// Checks a datagram as a Binding request to us: structure, FINGERPRINT,
/// USERNAME equal to `username` (`<our ufrag>:<their ufrag>`) and
/// MESSAGE-INTEGRITY keyed with `pwd` (our ice-pwd), compared in constant
/// time. `None` for anything else; the caller must then not answer (no
/// amplification, and no oracle for what was wrong).
pub(super) fn check_request(buf: &[u8], username: &[u8], pwd: &[u8]) -> Option<Request> {
    let (txid, attrs) = parse(buf)?;
    let (fp_at, fp) = attrs.fingerprint?;
    if fp != fingerprint_of(buf.get(..fp_at)?).to_be_bytes() {
        return None;
    }
    if attrs.username? != username {
        return None;
    }
    let (mi_at, mi) = attrs.integrity?;
    integrity_mac(buf, mi_at, pwd)?.verify_slice(mi).ok()?;
    Some(Request {
        txid,
        use_candidate: attrs.use_candidate,
        controlling: attrs.controlling,
    })
}

/// The success response to a request `txid` that came from `src`,
/// authenticated with `pwd` (our ice-pwd).
pub(super) fn success_response(txid: &TransactionId, src: SocketAddr, pwd: &[u8]) -> Vec<u8> {
    let mut w = Writer::new(BINDING_SUCCESS, txid);
    w.xor_mapped_address(src);
    w.integrity(pwd);
    w.finish()
}

/// Builds a STUN message attribute by attribute.
pub(super) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A message of `msg_type` with no attributes yet.
    pub(super) fn new(msg_type: u16, txid: &TransactionId) -> Writer {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&msg_type.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE);
        buf.extend_from_slice(txid);
        Writer { buf }
    }

    /// Sets the header's length field to the current body length plus
    /// `extra` octets.
    fn set_len(&mut self, extra: usize) {
        let len = self.buf.len() + extra - HEADER_LEN;
        let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        if let Some(field) = self.buf.get_mut(2..4) {
            field.copy_from_slice(&len);
        }
    }

    /// Appends an attribute, padded to 4 octets with `pad` (zero, except
    /// to reproduce a peer's padding in tests). `value` is at most a few
    /// hundred octets here.
    pub(super) fn attr(&mut self, typ: u16, value: &[u8], pad: u8) {
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        let value = value.get(..usize::from(len)).unwrap_or(value);
        self.buf.extend_from_slice(&typ.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value);
        let padding = padded(value.len()) - value.len();
        self.buf.extend(std::iter::repeat_n(pad, padding));
    }

    /// XOR-MAPPED-ADDRESS (RFC 5389 15.2) of `addr`; an IPv4-mapped IPv6
    /// address (a dual-stack socket's view of an IPv4 peer) as the IPv4
    /// address it is.
    pub(super) fn xor_mapped_address(&mut self, addr: SocketAddr) {
        let port = addr.port() ^ u16::from_be_bytes([MAGIC_COOKIE[0], MAGIC_COOKIE[1]]);
        let mut value = vec![0, 0];
        value.extend_from_slice(&port.to_be_bytes());
        let mut key = MAGIC_COOKIE.to_vec();
        key.extend_from_slice(self.buf.get(8..HEADER_LEN).unwrap_or_default());
        match addr.ip().to_canonical() {
            IpAddr::V4(ip) => {
                value[1] = 0x01;
                value.extend(ip.octets().iter().zip(&key).map(|(a, k)| a ^ k));
            }
            IpAddr::V6(ip) => {
                value[1] = 0x02;
                value.extend(ip.octets().iter().zip(&key).map(|(a, k)| a ^ k));
            }
        }
        self.attr(ATTR_XOR_MAPPED_ADDRESS, &value, 0);
    }

    /// MESSAGE-INTEGRITY (RFC 5389 15.4), keyed with `key` (short-term
    /// credentials: the ice-pwd as is).
    pub(super) fn integrity(&mut self, key: &[u8]) {
        let at = self.buf.len();
        self.set_len(4 + INTEGRITY_LEN);
        let mac = integrity_mac(&self.buf, at, key)
            .map(|m| m.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        let mut value = [0u8; INTEGRITY_LEN];
        if let Some(src) = mac.get(..INTEGRITY_LEN) {
            value.copy_from_slice(src);
        }
        self.attr(ATTR_MESSAGE_INTEGRITY, &value, 0);
    }

    /// Appends FINGERPRINT (RFC 5389 15.5) and returns the message.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.set_len(8);
        let fp = fingerprint_of(&self.buf);
        self.attr(ATTR_FINGERPRINT, &fp.to_be_bytes(), 0);
        self.buf
    }
}

/// Test helper: a Binding request as a browser's ICE agent sends it
/// (USERNAME, PRIORITY, ICE-CONTROLLING or ICE-CONTROLLED, USE-CANDIDATE
/// if asked, MESSAGE-INTEGRITY keyed with `pwd`, FINGERPRINT).
#[cfg(test)]
pub(super) fn binding_request(
    txid: &TransactionId,
    username: &str,
    pwd: &str,
    controlling: bool,
    use_candidate: bool,
) -> Vec<u8> {
    let mut w = Writer::new(BINDING_REQUEST, txid);
    w.attr(ATTR_USERNAME, username.as_bytes(), 0);
    w.attr(ATTR_PRIORITY, &0x6e00_01ffu32.to_be_bytes(), 0);
    let role = if controlling {
        ATTR_ICE_CONTROLLING
    } else {
        ATTR_ICE_CONTROLLED
    };
    w.attr(role, &[7; 8], 0);
    if use_candidate {
        w.attr(ATTR_USE_CANDIDATE, &[], 0);
    }
    w.integrity(pwd.as_bytes());
    w.finish()
}
