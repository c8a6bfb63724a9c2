//! One side of a call's media as the relay sees it: which side ([`Side`]),
//! what it signalled in SDP ([`Signalled`], [`SdpOrigin`]), and the address
//! rules of the relay: where its media may come from ([`expected_ip`],
//! [`from_expected_ip`]) and
//! where the relay may send it ([`media_address_allowed`], [`is_private`]).

use std::net::{IpAddr, SocketAddr};

use super::sdp::AudioStream;

/// One side of a call's media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Caller = 0,
    Callee = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    /// The track id of the REST API (`audio-0` caller, `audio-1` callee).
    pub fn track_id(self) -> &'static str {
        match self {
            Side::Caller => "audio-0",
            Side::Callee => "audio-1",
        }
    }

    pub fn from_track(track: &str) -> Option<Side> {
        match track {
            "audio-0" => Some(Side::Caller),
            "audio-1" => Some(Side::Callee),
            _ => None,
        }
    }
}

/// What a side signalled in its last SDP.
#[derive(Clone, Debug, Default)]
pub struct Signalled {
    pub rtp: Option<SocketAddr>,
    pub rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub hold: bool,
    /// (payload type, encoding name, clock rate).
    pub codecs: Vec<(u8, String, u32)>,
}

/// Where a side's SDP came from: what the relay may learn from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpOrigin {
    /// The side's offer or answer while the call is set up; its SIP came
    /// from this IP. A latch stays unless the signalled address changed.
    Setup(IpAddr),
    /// A re-INVITE or UPDATE inside the dialog: the side may have moved,
    /// so it is learnt again.
    Renegotiation,
}

pub use crate::addr::is_private;

/// The IP a side's media must come from: the one its SDP names, or the
/// one its SIP came from when the SDP names none or a private one.
pub fn expected_ip(sdp: Option<IpAddr>, sip: Option<IpAddr>) -> Option<IpAddr> {
    match sdp.map(canonical) {
        Some(ip) if !is_private(ip) => Some(ip),
        sdp => sip.map(canonical).or(sdp),
    }
}

/// Whether media from `ip` may be a side's whose expected IP is `expect`:
/// the same IP, or, for a side on this host (it signalled loopback or one
/// of our addresses, `own`), one of our own addresses (a phone here that
/// signalled 127.0.0.1 sends to our advertised address, and the kernel
/// gives its packets that address as their source). Another loopback
/// address is still foreign.
pub fn from_expected_ip(expect: Option<IpAddr>, ip: IpAddr, own: impl Fn(IpAddr) -> bool) -> bool {
    let ip = canonical(ip);
    let Some(expect) = expect else {
        return false;
    };
    expect == ip || ((expect.is_loopback() || own(expect)) && own(ip))
}

/// Whether the relay may send a side's media to `conn`, the address in its
/// SDP: never to a multicast or broadcast address, nor to loopback or one
/// of our own addresses (`own`) unless the side's SIP (`leg_ip`) is local
/// too; the unspecified address only outside `setup` (RFC 2543 hold in a
/// re-INVITE). Anything else would let a caller point the relay at a
/// group, at itself or at a service on this host.
pub fn media_address_allowed(
    conn: IpAddr,
    leg_ip: IpAddr,
    own: impl Fn(IpAddr) -> bool,
    setup: bool,
) -> bool {
    let conn = canonical(conn);
    let leg_ip = canonical(leg_ip);
    if conn.is_unspecified() {
        return !setup;
    }
    let broadcast = matches!(conn, IpAddr::V4(v4) if v4.is_broadcast());
    if conn.is_multicast() || broadcast {
        return false;
    }
    let local_leg = leg_ip.is_loopback() || own(leg_ip);
    local_leg || !(conn.is_loopback() || own(conn))
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl Signalled {
    /// The media description of one side's SDP.
    pub fn from_audio(a: &AudioStream) -> Signalled {
        let ip = a.conn.filter(|ip| !ip.is_unspecified());
        let rtp = ip
            .filter(|_| a.port != 0)
            .map(|ip| SocketAddr::new(ip, a.port));
        let rtcp = ip
            .filter(|_| a.port != 0)
            .map(|ip| SocketAddr::new(ip, a.rtcp_port.unwrap_or(a.port.saturating_add(1))));
        let codecs = a
            .payload_types
            .iter()
            .filter_map(|pt| {
                a.codec_of(*pt)
                    .map(|(name, clock)| (*pt, name.to_string(), clock))
            })
            .collect();
        Signalled {
            rtp,
            rtcp,
            rtcp_mux: a.rtcp_mux,
            hold: a.is_hold(),
            codecs,
        }
    }
}
