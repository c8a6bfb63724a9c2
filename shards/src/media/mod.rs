//! Media: the RTP relay a shard runs for the calls it owns. SDP offer/answer
//! inspection and rewriting, RTP/RTCP packet views and per-stream statistics,
//! the per-call relay state (latching, mute, timeouts) and the port allocator
//! of the shard's share of `[media] rtp_port_start..rtp_port_end`.

pub mod ports;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod stats;
