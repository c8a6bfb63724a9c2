//! The control core's commands on live calls (API.md section 4): hang up,
//! answer ourselves (`accept`), blind transfer, mute a track, and
//! click-to-dial (`originate`), which places a call from our side.

use super::dialog::Dialog;
use super::engine::{CallEngine, Cx, TxRole};
use super::flow::Flow;
use super::media::{answer_keys, keys_only_over_tls, offer_with_keys};
use super::model::{Call, CallExtras, Leg, Origin, Originate, Phase, Target};
use super::record::Ending;
use super::timers::Deadline;
use crate::cdr::HangupReason;
use crate::media::relay::{SdpOrigin, Side, Signalled};
use crate::media::sdp;
use crate::media::secure::{self, OfferMode};
use crate::sip::Writer;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

/// A command on the call whose caller leg has the given Call-ID.
#[derive(Debug)]
pub enum Command {
    /// BYE both legs (answered) or 487 + CANCEL (ringing); the CDR says
    /// `bySystem`, with `reason` in its metadata.
    Hangup { reason: Option<String> },
    /// Answer a ringing call ourselves, with `sdp` or the relay's own.
    Accept { sdp: Option<String> },
    /// Blind transfer of an answered call to `target` (see
    /// [`CallEngine::transfer_check`] first).
    Transfer { target: Target },
    /// Mute or unmute a track (`audio-0` caller, `audio-1` callee).
    Mute { track: String, muted: bool },
}

/// Why a call command could not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    NotFound,
    Conflict(String),
    BadRequest(String),
    /// No resources now (ports, sockets): 503.
    Unavailable(String),
}

impl CallEngine {
    pub(super) fn command(
        &mut self,
        cx: &mut Cx<'_>,
        call_id: &str,
        command: Command,
    ) -> Result<(), CommandError> {
        match command {
            Command::Hangup { reason } => self.hangup(cx, call_id, reason),
            Command::Accept { sdp } => self.accept(cx, call_id, sdp),
            Command::Transfer { target } => self.transfer(cx, call_id, target),
            Command::Mute { track, muted } => self.set_muted(cx, call_id, &track, muted),
        }
    }

    /// The call whose caller leg has this Call-ID.
    fn call_of(&self, call_id: &str) -> Result<(u64, &Call), CommandError> {
        let Some(&(call, Leg::Caller)) = self.by_call_id.get(call_id) else {
            return Err(CommandError::NotFound);
        };
        let c = self.calls.get(&call).ok_or(CommandError::NotFound)?;
        Ok((call, c))
    }

    fn set_muted(
        &mut self,
        cx: &mut Cx<'_>,
        call_id: &str,
        track: &str,
        muted: bool,
    ) -> Result<(), CommandError> {
        let (call, c) = self.call_of(call_id)?;
        let side = Side::from_track(track).ok_or_else(|| {
            CommandError::BadRequest(format!(
                "track_id: unknown track '{track}' (audio-0 or audio-1)"
            ))
        })?;
        match cx.relay.as_deref_mut() {
            Some(relay) if c.proxied => {
                relay.set_muted(call, side, muted);
                Ok(())
            }
            _ => Err(CommandError::Conflict(
                "the call's media is not proxied".into(),
            )),
        }
    }

    /// May the call whose caller leg has this Call-ID be transferred now?
    pub fn transfer_check(&self, call_id: &str) -> Result<(), CommandError> {
        let (_, c) = self.call_of(call_id)?;
        if !matches!(c.phase, Phase::Answered(_)) {
            return Err(CommandError::Conflict("the call is not answered".into()));
        }
        if c.transfer_leg.is_some() {
            return Err(CommandError::Conflict(
                "a transfer is already under way".into(),
            ));
        }
        if !c.proxied {
            return Err(CommandError::Conflict(
                "transfer needs the call's media proxied (media_proxy)".into(),
            ));
        }
        Ok(())
    }

    /// Blind transfer of an answered call: a new callee leg to `target`; when
    /// it answers, the old callee gets BYE and the caller stays, its audio
    /// re-anchored on the relay (so media must be proxied). If the target
    /// does not answer within the ring timeout or refuses, the call stays.
    fn transfer(
        &mut self,
        cx: &mut Cx<'_>,
        call_id: &str,
        target: Target,
    ) -> Result<(), CommandError> {
        self.transfer_check(call_id)?;
        let (call, _) = self.call_of(call_id)?;
        let deadline = cx.now.mono_ms + self.cfg.max_ring_ms;
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(CommandError::NotFound);
        };
        let leg = c.legs.len();
        c.transfer_leg = Some(leg);
        self.add_leg(cx, call, target);
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(CommandError::NotFound);
        };
        if let Some(l) = c.legs.get_mut(leg) {
            l.deadline_ms = Some(deadline);
            if l.final_code.is_some() {
                // Could not even be sent.
                c.transfer_leg = None;
                return Err(CommandError::Conflict(
                    "the transfer target is unreachable".into(),
                ));
            }
            self.timers.push(deadline, call, Deadline::Leg(leg));
        }
        Ok(())
    }

    /// Click-to-dial: rings `first` (an extension's contact) with an offer
    /// from the relay; when it answers, dials `targets` like any call and
    /// bridges the two through the relay. Returns the call's id (the first
    /// party's Call-ID, which we mint).
    pub(super) fn originate(
        &mut self,
        cx: &mut Cx<'_>,
        o: Originate,
    ) -> Result<String, CommandError> {
        let now = cx.now;
        // The first party is offered SRTP as its policy and transport say.
        let mode = secure::offer_mode(o.first.srtp, o.first.dest.is_tls()).map_err(|_| {
            CommandError::Conflict(format!(
                "extension {} requires SRTP and is not registered over TLS",
                o.from_user
            ))
        })?;
        let relay = cx.relay.as_deref_mut().ok_or(CommandError::Conflict(
            "click-to-dial needs the media relay".into(),
        ))?;
        let id = self.next_id();
        let call_id = self.ids.call_id(&self.cfg.host);
        let (a_port, b_port) = relay
            .create(id, &call_id, o.record)
            .map_err(|_| CommandError::Unavailable("no media ports left".into()))?;
        let addr = relay.advertise();
        let dialog = Dialog {
            call_id: call_id.clone(),
            local_tag: self.ids.tag(),
            remote_tag: String::new(),
            local_uri: format!("<sip:{}@{}>", o.to_user, o.realm),
            remote_uri: format!("<sip:{}@{}>", o.from_user, o.realm),
            remote_target: o.first.uri.clone(),
            dest: Some(o.first.dest),
            local_cseq: 1,
            remote_cseq: None,
        };
        let plain = sdp::relay_offer(addr, a_port, id).into_bytes();
        let offer_a = match mode {
            // The first party is a browser: WebRTC, whatever the policy.
            _ if super::media::is_browser(o.first.dest) => {
                match super::media::for_browser(relay, now.mono_ms, id, Side::Caller, &plain) {
                    Ok(offer) => offer,
                    Err(_) => {
                        relay.close(id, now.mono_ms);
                        return Err(CommandError::Unavailable(
                            "no WebRTC end for the browser".into(),
                        ));
                    }
                }
            }
            OfferMode::Plain => plain,
            mode => {
                // The caller side has this one party: the side's own keys.
                let keys: Vec<_> = secure::OFFER_ORDER
                    .iter()
                    .filter_map(|suite| relay.srtp_local_key(id, Side::Caller, *suite))
                    .collect();
                offer_with_keys(mode, &keys, &plain).unwrap_or(plain)
            }
        };
        let via = self.via(o.first.dest);
        let contact = self.contact(o.first.dest);
        let mut w = Writer::request(&mut self.buf, "INVITE", &o.first.uri);
        w.header("Via", &via);
        w.header("Max-Forwards", "70");
        w.header(
            "From",
            &format!("{};tag={}", dialog.local_uri, dialog.local_tag),
        );
        w.header("To", &dialog.remote_uri);
        w.header("Call-ID", &call_id);
        w.header("CSeq", "1 INVITE");
        w.header("Contact", &contact);
        w.header("User-Agent", &self.cfg.server_name);
        w.header("Content-Type", "application/sdp");
        w.finish(&offer_a);
        let tx = match self.table.send_request(
            now.mono_ms,
            &self.buf,
            o.first.dest,
            o.first.dest.is_reliable(),
            &mut self.actions,
        ) {
            Ok(tx) => tx,
            Err(e) => {
                if let Some(r) = cx.relay.as_deref_mut() {
                    r.close(id, now.mono_ms);
                }
                return Err(CommandError::Unavailable(format!(
                    "cannot send the INVITE: {e:?}"
                )));
            }
        };
        let flow = Flow::new(self.cfg.max_flow_bytes, &self.ours.flow_local);
        let ring_deadline_ms = now.mono_ms + self.cfg.max_ring_ms;
        self.calls.insert(
            id,
            Call {
                caller_call_id: call_id.clone(),
                caller: dialog,
                caller_tx: tx,
                origin: Origin::ClickToDial,
                caller_addr: o.first.dest,
                legs: Vec::new(),
                pending: VecDeque::from(o.targets),
                per_target_ms: None,
                max_forwards: 70,
                content_type: Some("application/sdp".into()),
                body: sdp::relay_offer(addr, b_port, id).into_bytes(),
                phase: Phase::Originating,
                ring_deadline_ms,
                max_end_ms: None,
                start_ms: now.unix_ms,
                ring_ms: None,
                answer_ms: None,
                direction: o.direction,
                route: o.route,
                trunk: o.trunk,
                caller_uri: format!("sip:{}@{}", o.from_user, o.realm),
                callee_uri: format!("sip:{}@{}", o.to_user, o.realm),
                from_number: o.from_user,
                to_number: o.to_user,
                proxied: true,
                hangup_message: None,
                transfer_leg: None,
                flow,
                extras: CallExtras::default(),
                auth_user: None,
                caller_srtp: o.first.srtp,
            },
        );
        self.timers.push(ring_deadline_ms, id, Deadline::Ring);
        self.by_call_id.insert(call_id.clone(), (id, Leg::Caller));
        self.watch_tx(tx, id, TxRole::OriginInvite);
        self.flow_tx(tx, id, Leg::Caller);
        Ok(call_id)
    }

    /// Answers a ringing call ourselves (REST `accept`) with `sdp`, or with
    /// the relay's own SDP when none is given; every callee leg is
    /// cancelled. With proxied media a given SDP is treated as the callee
    /// side's (its address is where the caller's audio goes).
    fn accept(
        &mut self,
        cx: &mut Cx<'_>,
        call_id: &str,
        sdp_text: Option<String>,
    ) -> Result<(), CommandError> {
        let (call, c) = self.call_of(call_id)?;
        if c.phase != Phase::Ringing {
            return Err(CommandError::Conflict("the call is not ringing".into()));
        }
        let proxied = c.proxied;
        let bad_sdp = |e: sdp::SdpError| CommandError::BadRequest(format!("sdp: {e}"));
        let body = match (sdp_text, proxied) {
            (Some(text), false) => {
                sdp::parse(text.as_bytes()).map_err(bad_sdp)?;
                match c.peer_of(Leg::Caller) {
                    Some(to) => keys_only_over_tls(text.as_bytes(), to).into_owned(),
                    None => text.into_bytes(),
                }
            }
            (Some(text), true) => {
                let parsed = sdp::parse(text.as_bytes()).map_err(bad_sdp)?;
                let relay = cx
                    .relay
                    .as_deref_mut()
                    .ok_or(CommandError::Conflict("no relay".into()))?;
                if let Some(audio) = parsed.audio.as_ref() {
                    // The operator's SDP: media comes from where it says.
                    let from = audio.conn.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                    relay.signalled(
                        call,
                        Side::Callee,
                        Signalled::from_audio(audio),
                        SdpOrigin::Setup(from),
                    );
                }
                // The operator's media is plain RTP; the caller is
                // answered with our key when it uses SRTP, and never with
                // a key the operator's SDP carried.
                relay.set_srtp(call, Side::Callee, None, None);
                let port = relay.port_of(call, Side::Caller).unwrap_or(0);
                let body = sdp::rewrite(
                    text.as_bytes(),
                    &sdp::Relay {
                        addr: relay.advertise(),
                        rtp_port: port,
                    },
                )
                .map_err(bad_sdp)?;
                answer_keys(relay, cx.now.mono_ms, call, Side::Caller, &body).map_err(bad_sdp)?
            }
            (None, true) => self.relay_answer(cx, call).ok_or(CommandError::Conflict(
                "the caller's offer has no audio to answer".into(),
            ))?,
            (None, false) => {
                return Err(CommandError::Conflict(
                    "the call's media is not proxied: accept needs an sdp".into(),
                ))
            }
        };
        self.cancel_others(cx, call, None);
        if let Some(c) = self.calls.get_mut(&call) {
            c.phase = Phase::Accepted;
            c.answer_ms = Some(cx.now.unix_ms);
        }
        if proxied {
            if let Some(relay) = cx.relay.as_deref_mut() {
                relay.answered(call, cx.now.mono_ms);
            }
        }
        self.respond_caller(cx, call, 200, None, Some(("application/sdp", &body)));
        Ok(())
    }

    /// Hangs up the call whose caller leg has this Call-ID: BYE to both legs
    /// when answered; while ringing, 487 to the caller and CANCEL to every
    /// callee leg. The CDR says `bySystem`, with `reason` in its metadata.
    pub(super) fn hangup(
        &mut self,
        cx: &mut Cx<'_>,
        call_id: &str,
        reason: Option<String>,
    ) -> Result<(), CommandError> {
        let (call, _) = self.call_of(call_id)?;
        let Some(c) = self.calls.get_mut(&call) else {
            return Err(CommandError::NotFound);
        };
        c.hangup_message = Some(reason.unwrap_or_else(|| "hangup requested".into()));
        match c.phase {
            Phase::Answered(w) => {
                self.send_bye(cx, call, Leg::Caller);
                self.send_bye(cx, call, Leg::Callee(w));
                self.cancel_others(cx, call, Some(w));
                self.end(cx, call, Ending::completed_by_system());
            }
            Phase::Accepted => {
                self.send_bye(cx, call, Leg::Caller);
                self.end(cx, call, Ending::completed_by_system());
            }
            Phase::Ringing => {
                self.cancel_others(cx, call, None);
                self.finish_caller(cx, call, 487);
                self.end(cx, call, Ending::missed(HangupReason::BySystem));
            }
            Phase::Originating => {
                let tx = c.caller_tx;
                self.cancel_tx(cx, call, tx);
                self.end(cx, call, Ending::missed(HangupReason::BySystem));
            }
        }
        Ok(())
    }
}
