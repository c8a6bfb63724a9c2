//! A call's SDP through the shard's relay: whether a new call's media is
//! proxied, what each side signalled (told to the relay), and the body
//! rewritten to the relay's address for the other side. Addresses the
//! relay must not send to are refused or ignored here.

use std::net::IpAddr;

use super::engine::{CallEngine, Cx};
use super::model::Phase;
use crate::media::relay::{is_private, media_address_allowed, SdpOrigin, Side, Signalled};
use crate::media::sdp;
use crate::sip::{HeaderName, Message};

/// What [`CallEngine::media_sdp`] does with an SDP address the relay must
/// not send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadAddress {
    /// Refuse the offer (488): an INVITE or re-INVITE.
    Refuse,
    /// Keep the message, learn the side from its SIP source only: an
    /// answer in a response, which cannot be refused.
    Ignore,
}

/// An SDP whose media address was refused.
#[derive(Debug)]
pub(super) struct RefusedAddress;

/// An address an endpoint put in its SDP that says it is behind NAT: a
/// private one, or not the one its signalling came from.
pub(super) fn looks_natted(conn: Option<IpAddr>, signalling: IpAddr) -> bool {
    let Some(ip) = conn else { return false };
    !ip.is_unspecified() && (is_private(ip) || ip != signalling)
}

/// The SDP of a message, when it carries one.
pub(super) fn sdp_of(msg: &Message<'_>) -> Option<sdp::Sdp> {
    let ct = msg.header(HeaderName::ContentType)?;
    if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
        || msg.body().is_empty()
    {
        return None;
    }
    sdp::parse(msg.body()).ok()
}

impl CallEngine {
    /// Tells the relay what `from` signalled in `msg` and gives the SDP
    /// rewritten to the relay (None: no SDP, or media not proxied). An
    /// address the relay must not send to ([`media_address_allowed`]) is
    /// refused with `Refuse`, or dropped from what the relay learns with
    /// `Ignore` (the side is then learnt from its SIP source alone).
    pub(super) fn media_sdp(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        from: Side,
        msg: &Message<'_>,
        origin: SdpOrigin,
        bad_address: BadAddress,
    ) -> Result<Option<Vec<u8>>, RefusedAddress> {
        let Some(c) = self.calls.get(&call).filter(|c| c.proxied) else {
            return Ok(None);
        };
        let leg_ip = match (origin, from) {
            (SdpOrigin::Setup(ip), _) => Some(ip),
            (SdpOrigin::Renegotiation, Side::Caller) => Some(c.caller_addr.ip()),
            (SdpOrigin::Renegotiation, Side::Callee) => match c.phase {
                Phase::Answered(w) => c.legs.get(w).map(|l| l.target.dest.ip()),
                _ => None,
            },
        };
        let Some(relay) = cx.relay.as_deref_mut() else {
            return Ok(None);
        };
        let Some(parsed) = sdp_of(msg) else {
            return Ok(None);
        };
        let Some(audio) = parsed.audio.as_ref() else {
            return Ok(None);
        };
        let mut sig = Signalled::from_audio(audio);
        let allowed = match (audio.conn, leg_ip) {
            (Some(conn), Some(leg_ip)) => media_address_allowed(
                conn,
                leg_ip,
                |ip| relay.is_own(ip),
                matches!(origin, SdpOrigin::Setup(_)),
            ),
            _ => true,
        };
        if !allowed {
            tracing::warn!(call, conn = ?audio.conn, "SDP media address refused");
            self.refused.media_address += 1;
            match bad_address {
                BadAddress::Refuse => return Err(RefusedAddress),
                BadAddress::Ignore => {
                    sig.rtp = None;
                    sig.rtcp = None;
                }
            }
        }
        relay.signalled(call, from, sig, origin);
        let Some(port) = relay.port_of(call, from.other()) else {
            return Ok(None);
        };
        let addr = relay.advertise();
        match sdp::rewrite(
            msg.body(),
            &sdp::Relay {
                addr,
                rtp_port: port,
            },
        ) {
            Ok(body) => Ok(Some(body)),
            Err(e) => {
                tracing::warn!(call, "SDP not rewritten: {e}");
                Ok(None)
            }
        }
    }

    /// An SDP answer from the relay itself to the caller's offer: the
    /// caller-side port, the offer's first codec (and telephone-event).
    pub(super) fn relay_answer(&self, cx: &Cx<'_>, call: u64) -> Option<Vec<u8>> {
        let c = self.calls.get(&call)?;
        let relay = cx.relay.as_deref()?;
        let invite = Message::parse(c.invite()?).ok()?;
        let audio = sdp_of(&invite)?.audio?;
        let port = relay.port_of(call, Side::Caller)?;
        sdp::relay_answer(&audio, relay.advertise(), port, call)
    }
}
