//! WebRTC media transport for one leg of the relay, sans-IO (no sockets,
//! no clock: time comes in as `now_ms`, a monotonic millisecond count):
//! an ICE-lite agent (RFC 8445 section 2.5; STUN of RFC 5389) and
//! DTLS-SRTP (RFC 5763/5764) over `dimpl`, yielding the SRTP master keys
//! that `media::srtp` protects the media with.
//!
//! - `demux`: which protocol a datagram on the shared port is (RFC 7983).
//! - `stun`: checking the peer's Binding requests, answering them.
//! - `dtls`: our certificate ([`Identity`]), the DTLS association, the
//!   fingerprint check and the key export.
//! - `sdp`: the WebRTC attributes of the peer's SDP and of ours.
//! - `transport`: [`Transport`], one leg tying them together.

mod demux;
mod dtls;
mod sdp;
mod stun;
mod transport;

#[cfg(test)]
mod sdp_tests;
#[cfg(test)]
mod stun_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_peer;

pub use demux::{classify, Kind};
pub use dtls::{Identity, Role};
pub use sdp::{
    parse_remote, write_media, write_session, Fingerprint, IceCreds, LocalParams, ParamsError,
    RemoteParams, Setup,
};
pub use transport::{
    Error, Event, Failure, State, Transmit, Transport, CONSENT_TIMEOUT_MS, DTLS_TIMEOUT_MS,
    ICE_TIMEOUT_MS,
};
