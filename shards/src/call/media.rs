//! A call's SDP through the shard's relay: whether a new call's media is
//! proxied, what each side signalled (told to the relay), and the body
//! rewritten to the relay's address for the other side. Addresses the
//! relay must not send to are refused or ignored here.

use std::net::IpAddr;

use super::engine::{CallEngine, Cx};
use super::model::{Leg, Phase};
use crate::media::bridge;
use crate::media::relay::{
    is_private, media_address_allowed, MediaRelay, SdpOrigin, Side, Signalled, WebRtcLocal,
};
use crate::media::sdp::{self, CryptoOut};
use crate::media::secure::{self, Accept, OfferMode, Refusal};
use crate::media::srtp::{sdes, MasterKey};
use crate::media::webrtc;
use crate::sip::{HeaderName, Message, Method};
use crate::transport::{Peer, StreamKind};

/// What [`CallEngine::media_sdp`] does with an SDP it cannot use (an
/// address the relay must not send to, SRTP it cannot do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BadAddress {
    /// Refuse the offer (488): an INVITE or re-INVITE.
    Refuse,
    /// Keep the message: an answer in a response, which cannot be
    /// refused. A bad address is dropped from what the relay learns (the
    /// side is learnt from its SIP source only); SRTP that cannot be done
    /// ends the call once this turn is over.
    Ignore,
}

/// Why an SDP offer was refused (the 488's reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    Address,
    Srtp(Refusal),
    /// A WebRTC SDP without usable ICE or DTLS parameters.
    WebRtc,
}

impl Refused {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Refused::Address => "Media Address Not Acceptable",
            Refused::Srtp(r) => r.reason(),
            Refused::WebRtc => "WebRTC Parameters Not Acceptable",
        }
    }
}

/// An address an endpoint put in its SDP that says it is behind NAT: a
/// private one, or not the one its signalling came from.
pub(super) fn looks_natted(conn: Option<IpAddr>, signalling: IpAddr) -> bool {
    let Some(ip) = conn else { return false };
    !ip.is_unspecified() && (is_private(ip) || ip != signalling)
}

/// Whether a new call's media must go through the relay for what only it
/// does, leg by leg: SRTP (the caller's offer carries keys or takes SRTP
/// only, or a callee is to be offered SRTP) or WebRTC (the caller is a
/// browser, or a callee is reached over a WebSocket). Then it is proxied
/// whatever `media_proxy` says.
pub(super) fn needs_relay(offer: &sdp::AudioStream, targets: &[super::model::Target]) -> bool {
    offer.is_savp()
        || !offer.crypto.is_empty()
        || sdp::is_webrtc(&offer.proto)
        || targets.iter().any(|t| {
            is_browser(t.dest)
                || secure::offer_mode(t.srtp, t.dest.is_tls()) != Ok(OfferMode::Plain)
        })
}

/// A peer reached over a WebSocket is a browser: its media is WebRTC.
pub(super) fn is_browser(peer: Peer) -> bool {
    peer.stream_kind().is_some_and(StreamKind::is_websocket)
}

/// `local` as the SDP writer takes it.
fn local_params(local: &WebRtcLocal) -> webrtc::LocalParams<'_> {
    webrtc::LocalParams {
        creds: &local.creds,
        fingerprint: &local.fingerprint,
        setup: local.setup,
        mid: local.mid.as_deref(),
        candidate: local.candidate,
    }
}

/// `body` (rewritten to the relay) as it goes to the WebRTC side `side`.
pub(super) fn for_browser(
    relay: &mut MediaRelay,
    now_ms: u64,
    call: u64,
    side: Side,
    body: &[u8],
) -> Result<Vec<u8>, Refused> {
    let local = relay
        .webrtc_local(now_ms, call, side)
        .map_err(|_| Refused::WebRtc)?;
    sdp::to_webrtc(body, &local_params(&local)).map_err(|_| Refused::WebRtc)
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
    /// Tells the relay what `from` signalled in `msg` (its addresses, its
    /// SRTP key) and gives the SDP rewritten to the relay for the other
    /// side (None: no SDP, or media not proxied), with what that side is
    /// to know of SRTP: our key in an answer to it or a re-offer, nothing
    /// in the first offer to the callees (each leg's INVITE adds its own,
    /// [`CallEngine::leg_body`]). An address the relay must not send to
    /// ([`media_address_allowed`]) or SRTP that cannot be done is refused
    /// with `Refuse`, or handled as [`BadAddress::Ignore`] says. `arrived`:
    /// the peer the message came from, when it may not be the leg's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn media_sdp(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        from: Leg,
        msg: &Message<'_>,
        origin: SdpOrigin,
        bad_address: BadAddress,
        arrived: Option<Peer>,
    ) -> Result<Option<Vec<u8>>, Refused> {
        let side = match from {
            Leg::Caller => Side::Caller,
            Leg::Callee(_) => Side::Callee,
        };
        let Some(c) = self.calls.get(&call).filter(|c| c.proxied) else {
            return Ok(None);
        };
        if let (Leg::Callee(i), Phase::Answered(w)) = (from, c.phase) {
            if i != w && c.transfer_leg != Some(i) {
                // A fork that lost (a late 18x or 200): its SDP says
                // nothing about the call's media. (A transfer target's
                // does: it takes the callee side over.)
                return Ok(None);
            }
        }
        // Our ICE credentials given to this callee leg alone, if any.
        let leg_ice = match from {
            Leg::Callee(i) => c.legs.get(i).and_then(|l| l.ice.clone()),
            Leg::Caller => None,
        };
        // Our keys offered to this callee leg alone, if any.
        let leg_keys = match from {
            Leg::Callee(i) => c
                .legs
                .get(i)
                .map(|l| l.srtp_keys.clone())
                .unwrap_or_default(),
            Leg::Caller => Vec::new(),
        };
        let leg_ip = match (origin, side) {
            (SdpOrigin::Setup(ip), _) => Some(ip),
            (SdpOrigin::Renegotiation, Side::Caller) => Some(c.caller_addr.ip()),
            (SdpOrigin::Renegotiation, Side::Callee) => match c.phase {
                Phase::Answered(w) => c.legs.get(w).map(|l| l.target.dest.ip()),
                _ => None,
            },
        };
        // Keys count as private only if the message itself came over TLS
        // (an in-dialog request may arrive another way than the dialog's).
        let (policy, dialog_tls) = c.srtp_of(from);
        let tls = dialog_tls && arrived.is_none_or(|p| p.is_tls());
        let first_offer = from == Leg::Caller
            && matches!(origin, SdpOrigin::Setup(_))
            && msg.method() == Some(Method::Invite);
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
        let browser = sdp::is_webrtc(&audio.proto);
        if browser {
            // Where a browser's media comes from is what ICE selects, its
            // keys what DTLS gives: its SDP names neither.
            let params = std::str::from_utf8(msg.body())
                .ok()
                .and_then(|text| webrtc::parse_remote(text).ok());
            if let Some(creds) = leg_ice {
                relay.webrtc_set_local(call, side, creds);
            }
            let made = params.map(|p| relay.webrtc_remote(cx.now.mono_ms, call, side, p));
            if !matches!(made, Some(Ok(()))) {
                tracing::warn!(call, ?made, "WebRTC SDP refused");
                match bad_address {
                    BadAddress::Refuse => return Err(Refused::WebRtc),
                    BadAddress::Ignore => relay.fail_session(call, "webrtc_sdp"),
                }
            }
            sig.rtp = None;
            sig.rtcp = None;
        } else {
            relay.webrtc_clear(call, side);
        }
        let allowed = match (audio.conn, leg_ip) {
            _ if browser => true,
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
                BadAddress::Refuse => return Err(Refused::Address),
                BadAddress::Ignore => {
                    sig.rtp = None;
                    sig.rtcp = None;
                }
            }
        }
        match secure::accept(policy, tls, audio) {
            // DTLS-SRTP: the keys come with the transport.
            _ if browser => {}
            Ok(Accept::Plain) => relay.set_srtp(call, side, None, None),
            Ok(Accept::Srtp { tag, key, savp }) => {
                let ours = leg_keys.iter().find(|k| k.suite() == key.suite()).cloned();
                relay.set_srtp(call, side, Some((tag, key, savp)), ours);
            }
            Err(refusal) => {
                tracing::warn!(call, ?refusal, "SRTP refused");
                self.refused.srtp += 1;
                match bad_address {
                    // A refused offer changes nothing (RFC 3264: the
                    // session stays as it was).
                    BadAddress::Refuse => return Err(Refused::Srtp(refusal)),
                    BadAddress::Ignore => {
                        relay.set_srtp(call, side, None, None);
                        relay.fail_session(call, refusal.reason());
                    }
                }
            }
        }
        relay.signalled(call, side, sig, origin);
        let Some(port) = relay.port_of(call, side.other()) else {
            return Ok(None);
        };
        let addr = relay.advertise();
        let rewritten = sdp::rewrite(
            msg.body(),
            &sdp::Relay {
                addr,
                rtp_port: port,
            },
        )
        .and_then(|body| {
            if browser {
                sdp::to_plain(&body)
            } else {
                Ok(body)
            }
        });
        // What the other side learns of SRTP: its own key when it uses
        // SRTP (an answer, a re-offer); nothing in the first offer.
        let answer = if first_offer {
            None
        } else {
            relay.srtp_answer(call, side.other())
        };
        let line = answer.as_ref().map(|a| [sdes::format(a.tag, &a.key)]);
        let crypto = match (&answer, &line) {
            (Some(a), Some(values)) => Some(CryptoOut::Keys {
                savp: a.savp,
                values,
            }),
            // A plain SDP to a plain side stays as it is.
            _ if !audio.is_savp() && !sdp::mentions_keys(msg.body()) => None,
            _ => Some(CryptoOut::Plain),
        };
        let body = match crypto {
            Some(crypto) => rewritten.and_then(|body| sdp::set_crypto(&body, crypto)),
            None => rewritten,
        };
        let body = body.and_then(|body| {
            codecs_for_other_side(relay, call, from, first_offer, origin, msg, audio, body)
        });
        // To a browser (not the first offer: each callee leg's INVITE
        // makes its own, [`CallEngine::leg_body`]).
        let body = match body {
            Ok(body) if !first_offer && relay.is_webrtc(call, side.other()) => {
                match for_browser(relay, cx.now.mono_ms, call, side.other(), &body) {
                    Ok(body) => Ok(body),
                    Err(refused) => {
                        return match bad_address {
                            BadAddress::Refuse => Err(refused),
                            BadAddress::Ignore => {
                                relay.fail_session(call, "webrtc_sdp");
                                Ok(None)
                            }
                        };
                    }
                }
            }
            other => other,
        };
        match body {
            Ok(body) => Ok(Some(body)),
            Err(e) => {
                tracing::warn!(call, "SDP not rewritten: {e}");
                Ok(None)
            }
        }
    }

    /// The body of the INVITE of callee leg `index`: the call's offer,
    /// with our keys when the leg's policy and transport call for SRTP.
    /// `Err` when the leg cannot be called (SRTP required, no TLS).
    pub(super) fn leg_body(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        index: usize,
    ) -> Result<Vec<u8>, Refusal> {
        let Some(c) = self.calls.get_mut(&call) else {
            return Ok(Vec::new());
        };
        let (policy, tls) = c.srtp_of(Leg::Callee(index));
        let Some(leg) = c.legs.get_mut(index) else {
            return Ok(c.body.clone());
        };
        if is_browser(leg.target.dest) {
            // A browser's leg: WebRTC (DTLS-SRTP), whatever the policy,
            // with ICE credentials of its own.
            let Some(relay) = cx.relay.as_deref_mut().filter(|_| c.proxied) else {
                return Err(Refusal::NoWebRtc);
            };
            let creds = leg
                .ice
                .get_or_insert_with(|| relay.webrtc_fresh_creds())
                .clone();
            relay.webrtc_set_local(call, Side::Callee, creds);
            return for_browser(relay, cx.now.mono_ms, call, Side::Callee, &c.body)
                .map_err(|_| Refusal::NoWebRtc);
        }
        // The leg's mode once chosen (a 488 to best effort turns it to
        // RTP/SAVP, see the callee responses).
        let mode = match leg.srtp_mode {
            Some(mode) => mode,
            None => secure::offer_mode(policy, tls)?,
        };
        leg.srtp_mode = Some(mode);
        let relay = cx.relay.as_deref_mut().filter(|_| c.proxied);
        let (OfferMode::BestEffort | OfferMode::Savp, Some(relay)) = (mode, relay) else {
            return Ok(c.body.clone());
        };
        // Keys of this leg's own (kept when its INVITE is sent again with
        // credentials): a fork or a failover target never learns the key
        // another callee is sent with.
        if leg.srtp_keys.is_empty() {
            leg.srtp_keys = secure::OFFER_ORDER
                .iter()
                .map(|suite| relay.srtp_fresh_key(*suite))
                .collect();
        }
        Ok(offer_with_keys(mode, &leg.srtp_keys, &c.body).unwrap_or_else(|| c.body.clone()))
    }

    /// An SDP answer from the relay itself to the caller's offer: the
    /// caller-side port, the offer's first codec (and telephone-event).
    pub(super) fn relay_answer(&self, cx: &mut Cx<'_>, call: u64) -> Option<Vec<u8>> {
        let c = self.calls.get(&call)?;
        let relay = cx.relay.as_deref_mut()?;
        let invite = Message::parse(c.invite()?).ok()?;
        let audio = sdp_of(&invite)?.audio?;
        let port = relay.port_of(call, Side::Caller)?;
        let body = sdp::relay_answer(&audio, relay.advertise(), port, call)?;
        answer_keys(relay, cx.now.mono_ms, call, Side::Caller, &body).ok()
    }
}

/// The codecs the other side is told of: the first offer gains what we
/// can transcode to (G.711 to an Opus-only offer); the callee's answer at
/// set-up, when it chose a codec the caller did not offer, starts
/// transcoding and is told to the caller with the caller's own codec.
#[allow(clippy::too_many_arguments)]
fn codecs_for_other_side(
    relay: &mut MediaRelay,
    call: u64,
    from: Leg,
    first_offer: bool,
    origin: SdpOrigin,
    msg: &Message<'_>,
    audio: &sdp::AudioStream,
    body: Vec<u8>,
) -> Result<Vec<u8>, sdp::SdpError> {
    if first_offer {
        let extra = bridge::offer_extra(audio);
        return if extra.is_empty() {
            Ok(body)
        } else {
            sdp::add_codecs(&body, &extra)
        };
    }
    let setup_answer = matches!(from, Leg::Callee(_))
        && msg.method().is_none()
        && matches!(origin, SdpOrigin::Setup(_));
    if !setup_answer {
        return Ok(body);
    }
    let pair = bridge::transcode_pair(&relay.codecs_of(call, Side::Caller), audio);
    match pair {
        Some((caller, _)) if relay.set_transcoding(call, pair) => {
            sdp::set_codecs(&body, &[bridge::answer_line(caller)], &[])
        }
        Some(_) => Ok(body),
        None => {
            relay.set_transcoding(call, None);
            Ok(body)
        }
    }
}

/// `body`, an SDP answer to `side` of session `call`, saying what that
/// side is to know of SRTP: our ICE-lite and DTLS end when it is a
/// browser, our key under its tag when it uses SDES, else no key at all.
pub(super) fn answer_keys(
    relay: &mut MediaRelay,
    now_ms: u64,
    call: u64,
    side: Side,
    body: &[u8],
) -> Result<Vec<u8>, sdp::SdpError> {
    if relay.is_webrtc(call, side) {
        let plain = sdp::set_crypto(body, CryptoOut::Plain)?;
        return for_browser(relay, now_ms, call, side, &plain).map_err(|_| sdp::SdpError::NoWebRtc);
    }
    match relay.srtp_answer(call, side) {
        None => sdp::set_crypto(body, CryptoOut::Plain),
        Some(a) => {
            let values = [sdes::format(a.tag, &a.key)];
            let keys = CryptoOut::Keys {
                savp: a.savp,
                values: &values,
            };
            sdp::set_crypto(body, keys)
        }
    }
}

/// `body`, an offer, with `keys` (tags 1, 2, ... in their order), under
/// `RTP/SAVP` or best effort as `mode` says.
pub(super) fn offer_with_keys(mode: OfferMode, keys: &[MasterKey], body: &[u8]) -> Option<Vec<u8>> {
    let values: Vec<String> = (1..)
        .zip(keys)
        .map(|(tag, key)| sdes::format(tag, key))
        .collect();
    let keys = CryptoOut::Keys {
        savp: mode == OfferMode::Savp,
        values: &values,
    };
    sdp::set_crypto(body, keys).ok()
}

/// `body` as it may go to `to`: SRTP keys never go to a peer that is not
/// on TLS, so they are taken out for such a peer. For SDP passed on as it
/// is (a call whose media is not proxied, a body the relay could not
/// rewrite).
pub(super) fn keys_only_over_tls(body: &[u8], to: Peer) -> std::borrow::Cow<'_, [u8]> {
    if to.is_tls() || !sdp::mentions_keys(body) {
        return std::borrow::Cow::Borrowed(body);
    }
    // Fail closed: a body we cannot rewrite loses its key lines.
    std::borrow::Cow::Owned(
        sdp::set_crypto(body, CryptoOut::Plain).unwrap_or_else(|_| sdp::strip_key_lines(body)),
    )
}
