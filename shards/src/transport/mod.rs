//! How a SIP message reached the shard and how a peer is reached again:
//! [`Peer`] (an address and the link it is on: a UDP socket or one stream
//! connection) and the sans-IO [`framer`] that cuts messages out of a
//! stream (RFC 3261 section 18.3, RFC 5626 keep-alives).
//!
//! A stream connection belongs to the shard that accepted (or opened) it;
//! [`ConnId`] names it across shards (the owning shard, the connection's
//! slot there and the slot's generation, so a closed connection's id never
//! reaches a new one). A message for a connection of another shard goes to
//! that shard's inbox, as every other message between shards does.

pub mod framer;
pub mod tls;
pub mod websocket;

use std::net::SocketAddr;

use crate::sip::Transport;

pub use framer::{Frame, FrameError, Framer, Limits, PONG};

/// One stream connection, named across shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ConnId {
    /// The shard whose loop owns the socket.
    pub shard: u16,
    /// The connection's slot in that shard's table.
    pub slot: u32,
    /// The slot's generation when the connection was made.
    pub generation: u32,
}

/// The link a peer is reached on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// The shards' UDP socket.
    Udp,
    /// An accepted stream connection of this kind.
    Conn(ConnId, StreamKind),
    /// The shard's own connection of this kind (TCP or TLS) to this
    /// address (a trunk), dialled when there is none yet; a TLS one is
    /// verified as the trunk's [`tls::TlsDial`] says.
    Dial(StreamKind),
}

/// The kinds of stream connection: SIP over TCP and TLS (RFC 3261 section
/// 18), and over WebSocket, plain and secure (RFC 7118).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl StreamKind {
    /// Over TLS (TLS or WSS): what is sent on it is private.
    pub fn is_secure(self) -> bool {
        matches!(self, StreamKind::Tls | StreamKind::Wss)
    }

    /// Carried in WebSocket messages.
    pub fn is_websocket(self) -> bool {
        matches!(self, StreamKind::Ws | StreamKind::Wss)
    }

    /// The transport token for Via and Contact.
    pub fn transport(self) -> Transport<'static> {
        match self {
            StreamKind::Tcp => Transport::Tcp,
            StreamKind::Tls => Transport::Tls,
            StreamKind::Ws => Transport::Ws,
            StreamKind::Wss => Transport::Wss,
        }
    }

    /// The kind whose transport token is `token` (any case).
    pub fn from_token(token: &str) -> Option<StreamKind> {
        match Transport::parse(token) {
            Transport::Tcp => Some(StreamKind::Tcp),
            Transport::Tls => Some(StreamKind::Tls),
            Transport::Ws => Some(StreamKind::Ws),
            Transport::Wss => Some(StreamKind::Wss),
            _ => None,
        }
    }
}

/// Where a message came from, or where one goes: the peer's address and
/// the link to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub link: Link,
}

impl Peer {
    /// A peer reached over UDP.
    pub const fn udp(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            link: Link::Udp,
        }
    }

    /// A peer on plain TCP connection `conn`.
    pub const fn tcp(addr: SocketAddr, conn: ConnId) -> Peer {
        Peer::stream(addr, conn, StreamKind::Tcp)
    }

    /// A peer on stream connection `conn` of `kind`.
    pub const fn stream(addr: SocketAddr, conn: ConnId, kind: StreamKind) -> Peer {
        Peer {
            addr,
            link: Link::Conn(conn, kind),
        }
    }

    /// The peer's IP address.
    pub fn ip(&self) -> std::net::IpAddr {
        self.addr.ip()
    }

    /// The peer's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// This shard's own connection to `addr` of `kind` (a trunk), dialled
    /// when there is none.
    pub const fn dial(addr: SocketAddr, kind: StreamKind) -> Peer {
        Peer {
            addr,
            link: Link::Dial(kind),
        }
    }

    /// The kind of stream the peer is on, `None` over UDP.
    pub fn stream_kind(&self) -> Option<StreamKind> {
        match self.link {
            Link::Udp => None,
            Link::Conn(_, kind) | Link::Dial(kind) => Some(kind),
        }
    }

    /// The transport token for Via and Contact.
    pub fn transport(&self) -> Transport<'static> {
        self.stream_kind()
            .map_or(Transport::Udp, StreamKind::transport)
    }

    /// On TLS (or WSS): what is sent to it is private (SRTP keys may go).
    pub fn is_tls(&self) -> bool {
        self.stream_kind().is_some_and(StreamKind::is_secure)
    }

    /// Connection-oriented: nothing is retransmitted (RFC 3261 17).
    pub fn is_reliable(&self) -> bool {
        !matches!(self.link, Link::Udp)
    }

    /// The stream connection, if the peer is on one.
    pub fn conn(&self) -> Option<ConnId> {
        match self.link {
            Link::Udp | Link::Dial(_) => None,
            Link::Conn(c, _) => Some(c),
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Peer {
        Peer::udp(addr)
    }
}

/// `ip:port`: a UDP peer (a stream peer's connection cannot be written
/// down).
impl std::str::FromStr for Peer {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Peer, Self::Err> {
        s.parse().map(Peer::udp)
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.stream_kind() {
            None => write!(f, "{}", self.addr),
            Some(kind) => write!(
                f,
                "{}:{}",
                kind.transport().as_str().to_ascii_lowercase(),
                self.addr
            ),
        }
    }
}
