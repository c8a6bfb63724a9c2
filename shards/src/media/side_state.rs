//! One side of a relay session ([`SideState`]): what it signalled, the
//! only IP its media is taken from and the address it is latched to, mute,
//! the renumbering that hides our own drops, its receive statistics, and
//! its SRTP state, what a fast path needs to continue its stream ([`SideState::handover`])
//! or reports back ([`SideState::absorb`]).

use std::net::{IpAddr, SocketAddr};

use super::fastpath::{Handover, Progress};
use super::relay::WebRtcSide;
use super::relay::LATCH_PACKETS;
use super::side::Signalled;
use super::side_crypto::SideCrypto;
use super::stats::{Renumber, StreamStats};
use super::transcode::{Budget, Transcoder};
use crate::recording::Codec;

pub(super) struct SideState {
    /// The RTP port of this side's pair (RTCP is the next one).
    pub(super) port: u16,
    pub(super) sig: Signalled,
    /// The IP its SIP last came from (setup).
    pub(super) sip_ip: Option<IpAddr>,
    /// The only IP its media is taken from ([`expected_ip`]).
    pub(super) expect_ip: Option<IpAddr>,
    pub(super) latched_rtp: Option<SocketAddr>,
    pub(super) latched_rtcp: Option<SocketAddr>,
    /// The address and SSRC that is becoming the latch, and its packets
    /// in a row.
    pub(super) candidate: Option<(SocketAddr, u32, u8)>,
    pub(super) muted: bool,
    pub(super) renumber: Renumber,
    pub(super) stats: StreamStats,
    pub(super) rtcp_packets: u64,
    /// Payload type of the last RTP packet.
    pub(super) last_pt: u8,
    /// What it sends is relayed by the fast path: the progress already
    /// accounted.
    pub(super) handed: Option<Progress>,
    /// Not offered to the fast path before this (it refused), ms.
    pub(super) hand_over_after_ms: u64,
    /// Its SRTP keys and contexts.
    pub(super) crypto: SideCrypto,
    /// Its WebRTC end (ICE-lite, DTLS-SRTP), when it is a browser's.
    pub(super) webrtc: Option<Box<WebRtcSide>>,
    /// What it sends is transcoded for the other side (they share no
    /// codec).
    pub(super) transcode: Option<Box<Transcoder>>,
    /// How many of its packets may still be transcoded now.
    pub(super) transcode_budget: Budget,
}

impl SideState {
    pub(super) fn new(port: u16) -> SideState {
        SideState {
            port,
            sig: Signalled::default(),
            sip_ip: None,
            expect_ip: None,
            latched_rtp: None,
            latched_rtcp: None,
            candidate: None,
            muted: false,
            renumber: Renumber::default(),
            stats: StreamStats::default(),
            rtcp_packets: 0,
            last_pt: 0,
            handed: None,
            hand_over_after_ms: 0,
            crypto: SideCrypto::default(),
            webrtc: None,
            transcode: None,
            transcode_budget: Budget::default(),
        }
    }

    /// What a forwarder needs to relay this side's RTP to `to`, when the
    /// stream is steady: latched, unmuted, statistics and renumbering in
    /// step, IPv4 both ways, plain RTP both ways (SRTP is decrypted and
    /// encrypted again here).
    pub(super) fn handover(&self, to: &SideState) -> Option<Handover> {
        if self.muted
            || self.crypto.active.is_some()
            || to.crypto.active.is_some()
            || self.webrtc.is_some()
            || to.webrtc.is_some()
            || self.transcode.is_some()
        {
            return None;
        }
        let SocketAddr::V4(from) = self.latched_rtp? else {
            return None;
        };
        let SocketAddr::V4(dest) = to.rtp_dest()? else {
            return None;
        };
        let steady = self.stats.steady()?;
        let seq_offset = self.renumber.steady_offset()?;
        let (_, clock_rate) = self.clock_of(self.last_pt);
        Some(Handover {
            from,
            to: dest,
            out_port: to.port,
            ssrc: steady.ssrc,
            payload_type: self.last_pt,
            clock_rate,
            seq_offset,
            last_seq: steady.last_seq,
            last_ts: steady.last_ts,
            last_ms: steady.last_ms,
            jitter: steady.jitter,
        })
    }

    /// Accounts what the fast path relayed for this side since it was
    /// last read; returns how many packets that was.
    pub(super) fn absorb(&mut self, now: Progress) -> u64 {
        let was = self.handed.unwrap_or_default();
        let packets = now.packets.saturating_sub(was.packets);
        if packets > 0 {
            self.stats.absorb(
                packets,
                now.bytes.saturating_sub(was.bytes),
                (now.last_seq, now.last_ts, now.last_ms),
                now.jitter,
            );
            self.renumber.forward(now.last_seq);
        }
        self.handed = Some(now);
        packets
    }

    /// May a packet from `src` (RTP with `ssrc`, or RTCP) come from this
    /// side? `ip_ok`: its IP is the side's expected one (the relay knows
    /// which addresses are this host's). Learns the latch on the way.
    pub(super) fn admit(&mut self, src: SocketAddr, ssrc: Option<u32>, ip_ok: bool) -> Admit {
        if !ip_ok {
            return Admit::ForeignSource;
        }
        let Some(ssrc) = ssrc else {
            // RTCP: the first from the expected IP sets where RTCP goes.
            return match self.latched_rtcp {
                Some(l) if l != src => Admit::UnlatchedSource,
                _ => {
                    self.latched_rtcp = Some(src);
                    Admit::Relay
                }
            };
        };
        if let Some(l) = self.latched_rtp {
            return if l == src {
                Admit::Relay
            } else {
                Admit::UnlatchedSource
            };
        }
        let count = match self.candidate {
            Some((a, s, n)) if a == src && s == ssrc => n.saturating_add(1),
            _ => 1,
        };
        self.candidate = Some((src, ssrc, count));
        if count >= LATCH_PACKETS {
            self.latched_rtp = Some(src);
            self.candidate = None;
        }
        Admit::Relay
    }

    /// Where RTP (or RTCP) for this side goes.
    pub(super) fn rtp_dest(&self) -> Option<SocketAddr> {
        if self.sig.rtp.is_none() && self.latched_rtp.is_none() {
            return None;
        }
        self.latched_rtp.or(self.sig.rtp)
    }

    /// Out of which of our ports, and to where, RTCP for this side goes.
    pub(super) fn rtcp_dest(&self) -> Option<(u16, SocketAddr)> {
        if self.sig.rtcp_mux {
            return self.rtp_dest().map(|d| (self.port, d));
        }
        let dest = self.latched_rtcp.or(self.sig.rtcp).or_else(|| {
            self.latched_rtp
                .map(|a| SocketAddr::new(a.ip(), a.port().saturating_add(1)))
        })?;
        Some((self.port + 1, dest))
    }

    pub(super) fn clock_of(&self, pt: u8) -> (Option<Codec>, u32) {
        match self.sig.codecs.iter().find(|(p, _, _)| *p == pt) {
            Some((_, name, clock)) => (Codec::from_name(name), *clock),
            None => match pt {
                0 => (Some(Codec::Pcmu), 8000),
                8 => (Some(Codec::Pcma), 8000),
                _ => (None, 8000),
            },
        }
    }
}

impl SideState {
    /// Its track in the CDR's `metadata.tracks`: statistics, where its
    /// media was latched, its SRTP suite, its WebRTC state, what it was
    /// transcoded from and to.
    pub(super) fn track_report(&self, side: super::side::Side) -> serde_json::Value {
        serde_json::json!({
            "trackId": side.track_id(),
            "rtp": self.stats.summary(),
            "rtcpPackets": self.rtcp_packets,
            "latched": self.latched_rtp.map(|a| a.to_string()),
            "srtp": self.crypto.suite().map(super::srtp::Suite::name),
            "webrtc": self.webrtc_state(),
            "transcode": self.transcode.as_ref().map(|t| {
                let (from, to) = t.codecs();
                format!("{from}->{to}")
            }),
        })
    }
}

/// What [`SideState::admit`] says of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admit {
    Relay,
    ForeignSource,
    UnlatchedSource,
}
