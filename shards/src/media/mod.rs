//! Media: the RTP relay a shard runs for the calls it owns. SDP offer/answer
//! inspection and rewriting, RTP/RTCP packet views and per-stream statistics,
//! the per-call relay state (latching, mute, timeouts; `relay`), one call's
//! session (`session`), the address rules of a side (`side`) and its state
//! (`side_state`), SRTP (`srtp`: the protocol; `secure`: which sides use it;
//! `side_crypto`: a side's keys and contexts), the contract with a forwarder of steady streams such as
//! the kernel's (`fastpath`), and the port allocator of the shard's share of
//! `[media] rtp_port_start..rtp_port_end` (`ports`). No module here owns a
//! socket: the runtime binds what the relay asks for.

pub mod bridge;
pub mod fastpath;
pub mod ports;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod secure;
mod session;
pub mod side;
mod side_crypto;
mod side_state;
pub mod srtp;
pub mod stats;
pub mod transcode;
pub mod webrtc;
