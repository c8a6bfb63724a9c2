//! The WebSocket opening handshake of a SIP connection (RFC 6455 section
//! 4.2, RFC 7118 section 4): the client's HTTP/1.1 Upgrade request is
//! checked (method, Upgrade and Connection tokens, key, version 13, the
//! `sip` subprotocol, the Origin against [`OriginPolicy`]) and answered
//! with `101 Switching Protocols`, or refused with the HTTP status that
//! says why. Pure: bytes in, bytes out.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID of RFC 6455 section 1.3, appended to the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Headers one handshake may carry.
const MAX_HEADERS: usize = 64;

/// Which pages (by their Origin) may open a SIP WebSocket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Allowed origins, lower case, without a trailing slash.
    origins: Vec<String>,
    /// `*` was listed: any origin.
    any: bool,
}

impl OriginPolicy {
    /// The policy of `ws_origins`: `*` = any; empty = same host (the
    /// Origin's host is the host the browser connected to).
    pub fn new(origins: &[String]) -> OriginPolicy {
        OriginPolicy {
            any: origins.iter().any(|o| o.trim() == "*"),
            origins: origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| o != "*")
                .collect(),
        }
    }

    /// Whether a page of `origin` may connect, the browser having asked
    /// for `host`. A request without Origin (not sent by a browser's page)
    /// is taken: the policy guards against other sites' pages, and a
    /// client that is not a browser can forge any Origin anyway.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if !self.origins.is_empty() {
            return self.origins.contains(&origin);
        }
        match (origin_host(&origin), host.map(host_only)) {
            (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
            _ => false,
        }
    }
}

/// The host of `scheme://host[:port]`, without the port.
fn origin_host(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    Some(host_only(rest))
}

/// `host[:port]` (or `[v6]:port`) without the port.
fn host_only(host_port: &str) -> &str {
    let host_port = host_port.trim();
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    host_port.split(':').next().unwrap_or(host_port)
}

/// Why a handshake was refused: the HTTP status sent back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a WebSocket upgrade we can read (400).
    BadRequest,
    /// The subprotocol `sip` was not asked for (400).
    NoSipProtocol,
    /// A WebSocket version other than 13 (426, naming 13).
    Version,
    /// The page's Origin is not allowed (403).
    Origin,
}

impl Refusal {
    /// A short reason for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadRequest => "not a WebSocket upgrade",
            Refusal::NoSipProtocol => "subprotocol sip not requested",
            Refusal::Version => "WebSocket version is not 13",
            Refusal::Origin => "origin not allowed",
        }
    }

    /// The HTTP response that refuses the handshake.
    pub fn response(self) -> &'static [u8] {
        match self {
            Refusal::BadRequest | Refusal::NoSipProtocol => {
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            }
            Refusal::Version => b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            Refusal::Origin => {
                b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            }
        }
    }
}

/// Checks the request head (up to and with its empty line) and returns
/// the `101` response that accepts it.
pub fn accept(head: &[u8], policy: &OriginPolicy) -> Result<Vec<u8>, Refusal> {
    let head = std::str::from_utf8(head).map_err(|_| Refusal::BadRequest)?;
    let mut lines = head.split("\r\n");
    let request = lines.next().ok_or(Refusal::BadRequest)?;
    let mut parts = request.split(' ');
    let (Some("GET"), Some(_path), Some("HTTP/1.1"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest);
    };
    let mut h = Headers::default();
    for (i, line) in lines.take_while(|l| !l.is_empty()).enumerate() {
        if i >= MAX_HEADERS {
            return Err(Refusal::BadRequest);
        }
        let (name, value) = line.split_once(':').ok_or(Refusal::BadRequest)?;
        h.take(name.trim(), value.trim());
    }
    if !h.upgrade || !h.connection {
        return Err(Refusal::BadRequest);
    }
    if h.version != Some("13") {
        return Err(Refusal::Version);
    }
    let key = h.key.ok_or(Refusal::BadRequest)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| Refusal::BadRequest)?;
    if raw.len() != 16 {
        return Err(Refusal::BadRequest);
    }
    if !h.sip {
        return Err(Refusal::NoSipProtocol);
    }
    if !policy.allows(h.origin, h.host) {
        return Err(Refusal::Origin);
    }
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
    )
    .into_bytes())
}

/// What the handshake's headers said.
#[derive(Default)]
struct Headers<'a> {
    upgrade: bool,
    connection: bool,
    sip: bool,
    key: Option<&'a str>,
    version: Option<&'a str>,
    origin: Option<&'a str>,
    host: Option<&'a str>,
}

impl<'a> Headers<'a> {
    fn take(&mut self, name: &str, value: &'a str) {
        let has_token = |token: &str| {
            value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if name.eq_ignore_ascii_case("upgrade") {
            self.upgrade |= has_token("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            self.connection |= has_token("upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            self.sip |= has_token("sip");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            self.key = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            self.version = Some(value);
        } else if name.eq_ignore_ascii_case("origin") {
            self.origin = Some(value);
        } else if name.eq_ignore_ascii_case("host") {
            self.host = Some(value);
        }
    }
}
