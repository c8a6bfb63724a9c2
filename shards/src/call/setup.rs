//! Placing a call: the caller's INVITE becomes a [`Call`] with callee legs
//! (in parallel or one after the other), the callee legs' answers are
//! relayed to the caller, the first 2xx wins and the others are cancelled
//! or hung up; a carrier's challenge is answered once with the trunk's
//! credentials. Click-to-dial's first party is answered here too.

use crate::transport::Peer;
use std::collections::VecDeque;

use super::dialog::Dialog;
use super::engine::{best_final, CallEngine, Cx, TxRole};
use super::flow::Flow;
use super::media::{keys_only_over_tls, looks_natted, needs_relay, sdp_of, BadAddress};
use super::model::{Call, CalleeLeg, Leg, NewCall, Origin, Phase, Target};
use super::record::{dialled_number, number_of, Ending};
use super::timers::Deadline;
use crate::auth::client;
use crate::media::relay::{SdpOrigin, Side};
use crate::media::secure::OfferMode;
use crate::sip::{escape_user, response_head, unescape, HeaderName, Message, Method, Writer};
use crate::transaction::TxId;

/// Keeps display name and URI of a name-addr, drops a `;tag=` parameter.
fn strip_tag(name_addr: &str) -> String {
    let mut out = String::with_capacity(name_addr.len());
    for (i, part) in name_addr.split(';').enumerate() {
        if i > 0 && part.trim_start().to_ascii_lowercase().starts_with("tag=") {
            continue;
        }
        if i > 0 {
            out.push(';');
        }
        out.push_str(part);
    }
    out.trim().to_string()
}

/// The URI of a message's From or To.
fn uri_of(msg: &Message<'_>, name: HeaderName<'_>) -> String {
    let na = match name {
        HeaderName::From => msg.from().ok(),
        HeaderName::To => msg.to().ok(),
        _ => None,
    };
    na.map(|n| n.uri.as_str().to_string()).unwrap_or_default()
}

/// The URI of a message's first Contact.
pub(super) fn contact_uri(msg: &Message<'_>) -> Option<String> {
    msg.contacts().find_map(|c| match c {
        Ok(crate::sip::Contact::Addr(na)) => Some(na.uri.as_str().to_string()),
        _ => None,
    })
}

/// A request built from a 2xx and the INVITE it answers, outside any
/// dialog state: the ACK of that 2xx (RFC 3261 13.2.2.4), or the BYE of a
/// 2xx no call wants (CSeq one above). From comes from our INVITE, To and
/// Call-ID from the 2xx.
fn write_after_2xx(
    buf: &mut Vec<u8>,
    method: &str,
    target: &str,
    via: &str,
    invite: &Message<'_>,
    resp: &Message<'_>,
    agent: Option<&str>,
) {
    let seq = resp.cseq().map_or(1, |c| c.seq);
    let seq = if method == "ACK" {
        seq
    } else {
        seq.saturating_add(1)
    };
    let mut w = Writer::request(buf, method, target);
    w.header("Via", via);
    w.header("Max-Forwards", "70");
    w.header(
        "From",
        invite.header_raw(HeaderName::From).unwrap_or_default(),
    );
    w.header("To", resp.header_raw(HeaderName::To).unwrap_or_default());
    w.header("Call-ID", resp.call_id().unwrap_or_default().trim());
    w.cseq(seq, method);
    if let Some(agent) = agent {
        w.header("User-Agent", agent);
    }
    w.finish(b"");
}

/// The caller's dialog, as its INVITE sets it up (our server dialog).
fn caller_dialog(invite: &Message<'_>, src: Peer, local_tag: String) -> Dialog {
    let header = |name| invite.header_raw(name).map(strip_tag).unwrap_or_default();
    Dialog {
        call_id: invite.call_id().unwrap_or_default().to_string(),
        local_tag,
        remote_tag: invite
            .from()
            .ok()
            .and_then(|f| f.tag())
            .unwrap_or_default()
            .to_string(),
        local_uri: header(HeaderName::To),
        remote_uri: header(HeaderName::From),
        remote_target: contact_uri(invite).unwrap_or_else(|| uri_of(invite, HeaderName::From)),
        dest: Some(src),
        local_cseq: 0,
        remote_cseq: invite.cseq().ok().map(|c| c.seq),
    }
}

impl CallEngine {
    /// Places a new call: INVITEs to its targets.
    pub(super) fn start(&mut self, cx: &mut Cx<'_>, new: NewCall<'_>) {
        let now = cx.now;
        let invite = new.invite;
        let local_tag = self.ids.tag();
        let mut head = Vec::with_capacity(invite.as_bytes().len().min(1024));
        response_head(&mut head, invite, Some(&local_tag), Some(new.src.addr));
        let caller = caller_dialog(invite, new.src, local_tag);
        let call_id = caller.call_id.clone();
        let caller_uri = uri_of(invite, HeaderName::From);
        let id = self.next_id();
        let mut flow = Flow::new(self.cfg.max_flow_bytes, &self.ours.flow_local);
        flow.push_checked(now.unix_ms, new.src.addr, "caller", invite);
        let call = Call {
            caller_call_id: call_id.clone(),
            caller,
            caller_tx: new.tx,
            origin: Origin::Invite {
                request: invite.as_bytes().to_vec(),
                head,
            },
            caller_addr: new.src,
            legs: Vec::new(),
            pending: VecDeque::new(),
            per_target_ms: new.per_target_ms.filter(|_| new.sequential),
            max_forwards: invite
                .max_forwards()
                .ok()
                .flatten()
                .unwrap_or(70)
                .saturating_sub(1),
            content_type: invite
                .header(HeaderName::ContentType)
                .map(|c| c.trim().to_string()),
            body: invite.body().to_vec(),
            phase: Phase::Ringing,
            ring_deadline_ms: now.mono_ms + new.ring_ms.unwrap_or(self.cfg.max_ring_ms),
            max_end_ms: None,
            start_ms: now.unix_ms,
            ring_ms: None,
            answer_ms: None,
            direction: new.direction,
            route: new.route,
            trunk: new.trunk,
            from_number: number_of(&caller_uri),
            to_number: dialled_number(invite),
            caller_uri,
            callee_uri: uri_of(invite, HeaderName::To),
            proxied: false,
            hangup_message: None,
            transfer_leg: None,
            flow,
            extras: new.extras,
            auth_user: new.auth_user,
            caller_srtp: new.caller_srtp,
        };
        let proxied = sdp_of(invite).and_then(|o| o.audio).is_some_and(|audio| {
            needs_relay(&audio, &new.targets)
                || new.media.proxies(looks_natted(audio.conn, new.src.ip()))
        });
        self.timers.push(call.ring_deadline_ms, id, Deadline::Ring);
        self.calls.insert(id, call);
        self.by_call_id.insert(call_id.clone(), (id, Leg::Caller));
        self.by_tx.insert(new.tx, (id, TxRole::Ignore));
        self.claim_fresh(new.tx, id);
        if proxied && !self.proxy_media(cx, id, invite, new.src, new.media.record) {
            return;
        }
        let mut targets: VecDeque<Target> = new.targets.into();
        if targets.len() > self.cfg.max_forks {
            tracing::warn!(
                call_id = %call_id,
                targets = targets.len(),
                max = self.cfg.max_forks,
                "more targets than [security] max_forks_per_call; the rest are not dialled"
            );
            targets.truncate(self.cfg.max_forks);
        }
        if new.sequential {
            if let Some(first) = targets.pop_front() {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.pending = targets;
                }
                self.add_leg(cx, id, first);
            }
        } else {
            for target in targets {
                self.add_leg(cx, id, target);
            }
        }
        self.check_all_failed(cx, id);
    }

    /// Puts a new call's media on the relay. False when the call ended
    /// here (no ports: 503; a refused SDP address: 488).
    fn proxy_media(
        &mut self,
        cx: &mut Cx<'_>,
        id: u64,
        invite: &Message<'_>,
        src: Peer,
        record: bool,
    ) -> bool {
        let Some(relay) = cx.relay.as_deref_mut() else {
            return true;
        };
        let call_id = invite.call_id().unwrap_or_default();
        if let Err(e) = relay.create(id, call_id, record) {
            tracing::warn!(call_id = %call_id, "no media ports: {e:?}");
            self.respond_caller(cx, id, 503, Some("No Media Ports"), None);
            self.end(cx, id, Ending::failed(503));
            return false;
        }
        if let Some(c) = self.calls.get_mut(&id) {
            c.proxied = true;
        }
        let origin = SdpOrigin::Setup(src.ip());
        match self.media_sdp(
            cx,
            id,
            Leg::Caller,
            invite,
            origin,
            BadAddress::Refuse,
            None,
        ) {
            Ok(Some(body)) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.body = body;
                }
            }
            Err(refused) => {
                self.respond_caller(cx, id, 488, Some(refused.reason()), None);
                self.end(cx, id, Ending::failed(488));
                return false;
            }
            Ok(None) => {
                // Unusable offer: media end to end after all.
                if let Some(c) = self.calls.get_mut(&id) {
                    c.proxied = false;
                }
                if let Some(relay) = cx.relay.as_deref_mut() {
                    relay.close(id, cx.now.mono_ms);
                }
            }
        }
        true
    }

    /// Starts a callee leg to `target`.
    pub(super) fn add_leg(&mut self, cx: &mut Cx<'_>, call: u64, target: Target) {
        let host = self.cfg.host.clone();
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        // Out to a trunk, an authenticated caller is who the carrier sees
        // (From and P-Asserted-Identity, RFC 3325), with our host: never
        // what the caller wrote around its verified user.
        let asserted = c
            .auth_user
            .as_ref()
            .filter(|_| target.permit.is_some())
            .map(|_| {
                let user = String::from_utf8_lossy(&unescape(&c.from_number)).into_owned();
                format!("<sip:{}@{host}>", escape_user(&user))
            });
        let local_uri = asserted
            .clone()
            .unwrap_or_else(|| c.caller.remote_uri.clone());
        let remote_uri = target
            .to
            .clone()
            .unwrap_or_else(|| c.caller.local_uri.clone());
        let deadline_ms = c.per_target_ms.map(|ms| cx.now.mono_ms + ms);
        let dialog = self.new_dialog(local_uri, remote_uri, &target);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let index = c.legs.len();
        self.by_call_id
            .insert(dialog.call_id.clone(), (call, Leg::Callee(index)));
        c.legs.push(CalleeLeg {
            dialog,
            invite_tx: None,
            final_code: None,
            target,
            cseq: 1,
            auth_tried: false,
            deadline_ms,
            asserted,
            srtp_keys: Vec::new(),
            ice: None,
            srtp_mode: None,
            srtp_retried: false,
        });
        if let Some(at) = deadline_ms {
            self.timers.push(at, call, Deadline::Leg(index));
        }
        self.send_leg_invite(cx, call, index, None);
    }

    /// Sends (or, with credentials, re-sends) the INVITE of callee leg `index`.
    fn send_leg_invite(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        index: usize,
        credentials: Option<(&'static str, String)>,
    ) {
        let Some(to) = self
            .calls
            .get(&call)
            .and_then(|c| c.peer_of(Leg::Callee(index)))
        else {
            return;
        };
        let via = self.via(to);
        let contact = self.contact(to);
        let body = self.leg_body(cx, call, index);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(l) = c.legs.get_mut(index) else {
            return;
        };
        let body = match body {
            Ok(body) => body,
            Err(refusal) => {
                tracing::info!(call_id = %c.caller_call_id, ?refusal, "callee leg not started: its SRTP policy cannot be met");
                l.final_code = Some(488);
                return;
            }
        };
        let d = &l.dialog;
        let mut w = Writer::request(&mut self.buf, "INVITE", &l.target.uri);
        w.header("Via", &via);
        w.header_uint("Max-Forwards", u64::from(c.max_forwards));
        w.header_parts("From", &[&d.local_uri, ";tag=", &d.local_tag]);
        w.header("To", &d.remote_uri);
        w.header("Call-ID", &d.call_id);
        w.cseq(l.cseq, "INVITE");
        w.header("Contact", &contact);
        w.header(
            "Allow",
            "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER",
        );
        w.header("User-Agent", &self.cfg.server_name);
        if let Some(identity) = &l.asserted {
            w.header("P-Asserted-Identity", identity);
        }
        for (name, value) in &c.extras.headers {
            w.header(name, value);
        }
        if let Some((name, value)) = &credentials {
            w.header(name, value);
        }
        if let Some(ct) = c.content_type.as_deref().filter(|_| !body.is_empty()) {
            w.header("Content-Type", ct);
        }
        w.finish(&keys_only_over_tls(&body, to));
        match self.table.send_request(
            cx.now.mono_ms,
            &self.buf,
            l.target.dest,
            l.target.dest.is_reliable(),
            &mut self.actions,
        ) {
            Ok(tx) => {
                l.invite_tx = Some(tx);
                self.watch_tx(tx, call, TxRole::CalleeInvite(index));
                self.flow_tx(tx, call, Leg::Callee(index));
            }
            Err(e) => {
                tracing::warn!(call_id = %c.caller_call_id, "callee leg not started: {e:?}");
                l.final_code = Some(503);
            }
        }
    }

    /// After a leg failed: the next target (sequential), or, when every leg
    /// has failed, the best final response to the caller.
    pub(super) fn check_all_failed(&mut self, cx: &mut Cx<'_>, call: u64) {
        loop {
            let Some(c) = self.calls.get_mut(&call) else {
                return;
            };
            if c.phase != Phase::Ringing || !c.legs.iter().all(|l| l.final_code.is_some()) {
                return;
            }
            let Some(next) = c.pending.pop_front() else {
                break;
            };
            self.add_leg(cx, call, next);
        }
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let best = best_final(c.legs.iter().filter_map(|l| l.final_code));
        self.finish_caller(cx, call, best);
        self.end(cx, call, Ending::refused(best));
    }

    /// Tells the caller of a ringing call that it is over: the final
    /// `code` on its INVITE, or (click-to-dial, the first party is up) BYE.
    pub(super) fn finish_caller(&mut self, cx: &mut Cx<'_>, call: u64, code: u16) {
        if self.calls.get(&call).is_some_and(Call::is_click_to_dial) {
            self.send_bye(cx, call, Leg::Caller);
        } else {
            self.respond_caller(cx, call, code, None, None);
        }
    }

    /// A response the transaction table passed up.
    pub(super) fn on_response(&mut self, cx: &mut Cx<'_>, tx: TxId, msg: &Message<'_>, src: Peer) {
        let Some(&(call, role)) = self.by_tx.get(&tx) else {
            self.stray_2xx(cx, tx, msg, src);
            return;
        };
        let Some(code) = msg.status_code() else {
            return;
        };
        match role {
            TxRole::CalleeInvite(i) => self.on_callee_invite_response(cx, call, i, code, msg),
            TxRole::OriginInvite => self.on_origin_response(cx, call, tx, code, msg),
            TxRole::Relay { server, to } => {
                if code >= 200 {
                    self.by_tx.remove(&tx);
                    // A 2xx to a relayed re-INVITE: we ACK it at once; the
                    // caller's own ACK is absorbed on our side.
                    if code < 300 && matches!(msg.cseq().map(|c| c.method), Ok(Method::Invite)) {
                        let request = self.table.request(tx).map(<[u8]>::to_vec);
                        self.ack_2xx(cx, call, msg, request);
                    }
                }
                if code > 100 {
                    let side = match to {
                        Leg::Caller => Side::Caller,
                        Leg::Callee(_) => Side::Callee,
                    };
                    self.relay_response(cx, call, server, code, msg, side);
                }
            }
            TxRole::Ignore => {
                if code >= 200 {
                    self.by_tx.remove(&tx);
                }
            }
        }
    }

    /// A 2xx to an INVITE of ours that no call waits on any more: a
    /// callee's answer that crossed our CANCEL, or came after its call
    /// ended, or a retransmission. Every 2xx is ACKed (RFC 3261 13.2.2.4);
    /// one whose call is gone is also hung up with BYE, once (15), so the
    /// callee does not believe the call is up.
    fn stray_2xx(&mut self, cx: &mut Cx<'_>, tx: TxId, resp: &Message<'_>, src: Peer) {
        let (Some(200..=299), Ok(Method::Invite)) =
            (resp.status_code(), resp.cseq().map(|c| c.method))
        else {
            return;
        };
        let Some(request) = self.table.request(tx).map(<[u8]>::to_vec) else {
            return;
        };
        let Ok(req) = Message::parse(&request) else {
            return;
        };
        let owner = self.flow_owner_of_tx(tx);
        let live = owner.is_some_and(|(call, _)| self.calls.contains_key(&call));
        let target = contact_uri(resp)
            .or_else(|| req.request_uri_str().map(str::to_string))
            .unwrap_or_default();
        let via = self.via(src);
        write_after_2xx(&mut self.buf, "ACK", &target, &via, &req, resp, None);
        let data = self.buf.as_slice().into();
        match owner {
            Some((call, leg)) => self.transmit(cx.now, call, leg, src, data),
            None => self.transmit_outside(src, data),
        }
        if live || self.stray_byes.insert(tx, ()).is_some() {
            return;
        }
        let call_id = resp.call_id().unwrap_or_default().trim();
        tracing::info!(call_id = %call_id, "a 2xx for a call already over: ACK and BYE");
        let via = self.via(src);
        let agent = Some(self.cfg.server_name.as_str());
        write_after_2xx(&mut self.buf, "BYE", &target, &via, &req, resp, agent);
        if let Ok(bye) = self.table.send_request(
            cx.now.mono_ms,
            &self.buf,
            src,
            src.is_reliable(),
            &mut self.actions,
        ) {
            self.by_tx.insert(bye, (0, TxRole::Ignore));
            if let Some((call, leg)) = owner {
                self.flow_tx(bye, call, leg);
            }
        }
    }

    /// A response from the first party of a click-to-dial call.
    fn on_origin_response(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        tx: TxId,
        code: u16,
        msg: &Message<'_>,
    ) {
        if code < 200 {
            return;
        }
        self.by_tx.remove(&tx);
        if code >= 300 {
            self.end(cx, call, Ending::first_party(code));
            return;
        }
        let request = self.table.request(tx).map(<[u8]>::to_vec);
        let ring_deadline = cx.now.mono_ms + self.cfg.max_ring_ms;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Originating {
            // A 2xx retransmission: ACK it again.
            self.ack_2xx(cx, call, msg, request);
            return;
        }
        if let Some(tag) = msg.to().ok().and_then(|t| t.tag()) {
            c.caller.remote_tag = tag.to_string();
        }
        if let Some(target) = contact_uri(msg) {
            c.caller.remote_target = target;
        }
        c.phase = Phase::Ringing;
        c.ring_deadline_ms = ring_deadline;
        let first_ip = c.caller_addr.ip();
        let targets: Vec<Target> = c.pending.drain(..).collect();
        self.timers.push(ring_deadline, call, Deadline::Ring);
        self.ack_2xx(cx, call, msg, request);
        // The first party's answer: the relay learns its side (a refused
        // address is ignored: it answered); nothing is sent on.
        let origin = SdpOrigin::Setup(first_ip);
        let _ = self.media_sdp(cx, call, Leg::Caller, msg, origin, BadAddress::Ignore, None);
        for target in targets {
            self.add_leg(cx, call, target);
        }
        self.check_all_failed(cx, call);
    }

    fn on_callee_invite_response(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        leg: usize,
        code: u16,
        msg: &Message<'_>,
    ) {
        let now = cx.now;
        let request = self
            .calls
            .get(&call)
            .and_then(|c| c.legs.get(leg))
            .and_then(|l| l.invite_tx)
            .and_then(|t| self.table.request(t))
            .map(<[u8]>::to_vec);
        let Some(l) = self.calls.get_mut(&call).and_then(|c| c.legs.get_mut(leg)) else {
            return;
        };
        if let Some(tag) = msg.to().ok().and_then(|t| t.tag()) {
            l.dialog.remote_tag = tag.to_string();
        }
        if let Some(target) = contact_uri(msg) {
            l.dialog.remote_target = target;
        }
        let ct = msg
            .header(HeaderName::ContentType)
            .map(|c| c.trim().to_string());
        let leg_ip = l.target.dest.ip();
        let body = match code {
            101..=299 => self
                .media_sdp(
                    cx,
                    call,
                    Leg::Callee(leg),
                    msg,
                    SdpOrigin::Setup(leg_ip),
                    BadAddress::Ignore,
                    None,
                )
                .ok()
                .flatten(),
            _ => None,
        }
        .unwrap_or_else(|| {
            let caller = self.calls.get(&call).and_then(|c| c.peer_of(Leg::Caller));
            match caller {
                Some(to) => keys_only_over_tls(msg.body(), to).into_owned(),
                None => Vec::new(),
            }
        });
        let typed_body = ct.as_deref().map(|t| (t, &body[..]));
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(l) = c.legs.get_mut(leg) else { return };
        match code {
            100 => {}
            101..=199 => {
                if c.phase == Phase::Ringing {
                    if c.ring_ms.is_none() && (code == 180 || code == 183) {
                        c.ring_ms = Some(now.unix_ms);
                    }
                    self.respond_caller(cx, call, code, msg.reason(), typed_body);
                }
            }
            200..=299 => match c.phase {
                Phase::Ringing => {
                    c.phase = Phase::Answered(leg);
                    c.answer_ms = Some(now.unix_ms);
                    // Of the trunks tried, the CDR names the one that answered.
                    if let Some(t) = &l.target.trunk {
                        c.trunk = Some(t.clone());
                    }
                    l.final_code = Some(code);
                    if let Some(max) = c.extras.max_duration_ms {
                        c.max_end_ms = Some(now.mono_ms + max);
                        self.timers
                            .push(now.mono_ms + max, call, Deadline::MaxDuration);
                    }
                    if c.proxied {
                        if let Some(relay) = cx.relay.as_deref_mut() {
                            relay.answered(call, now.mono_ms);
                        }
                    }
                    self.ack_2xx(cx, call, msg, request);
                    self.respond_caller(cx, call, 200, None, typed_body);
                    self.cancel_others(cx, call, Some(leg));
                }
                Phase::Answered(w) if w == leg => self.ack_2xx(cx, call, msg, request),
                Phase::Answered(old) if c.transfer_leg == Some(leg) => {
                    // The transfer target answered: it replaces the old
                    // callee (media follows through the relay), and from
                    // now on the call is with the target (the listing and
                    // the CDR say so).
                    c.phase = Phase::Answered(leg);
                    c.transfer_leg = None;
                    l.final_code = Some(code);
                    c.callee_uri = l.target.uri.clone();
                    tracing::info!(call, leg, "transfer answered");
                    self.ack_2xx(cx, call, msg, request);
                    self.send_bye(cx, call, Leg::Callee(old));
                }
                _ => {
                    // A second 2xx (another fork): ACK and BYE it.
                    self.ack_2xx(cx, call, msg, request);
                    self.send_bye(cx, call, Leg::Callee(leg));
                }
            },
            401 | 407
                if !l.auth_tried && l.target.credentials.is_some() && c.phase == Phase::Ringing =>
            {
                // The carrier challenges us: answer with the trunk's credentials.
                l.auth_tried = true;
                l.cseq += 1;
                let (header, name) = if code == 401 {
                    (HeaderName::WwwAuthenticate, "Authorization")
                } else {
                    (HeaderName::ProxyAuthenticate, "Proxy-Authorization")
                };
                // Only a qop=auth challenge is answered: without qop the
                // response is a replayable function of the carrier's nonce.
                let cnonce = self.ids.cnonce();
                let answer = msg
                    .header_values(header)
                    .filter_map(|v| client::parse_challenge(&v))
                    .find(|ch| ch.qop_auth)
                    .and_then(|ch| {
                        let (u, p) = l.target.credentials.as_ref()?;
                        client::answer(&ch, u, p, "INVITE", &l.target.uri, &cnonce)
                    });
                match answer {
                    Some(value) => self.send_leg_invite(cx, call, leg, Some((name, value))),
                    None => {
                        l.final_code = Some(code);
                        self.check_all_failed(cx, call);
                    }
                }
            }
            488 if l.srtp_mode == Some(OfferMode::BestEffort)
                && !l.srtp_retried
                && c.phase == Phase::Ringing =>
            {
                // A phone that takes SRTP only refuses a best-effort offer
                // (RTP/AVP with keys): offer it RTP/SAVP once.
                l.srtp_retried = true;
                l.srtp_mode = Some(OfferMode::Savp);
                l.cseq += 1;
                self.send_leg_invite(cx, call, leg, None);
            }
            _ => {
                // A real final wins over a timeout we counted.
                l.final_code = Some(code);
                self.leg_failed(cx, call, leg, code);
            }
        }
    }

    /// ACK for a 2xx from a callee (end to end, RFC 3261 13.2.2.4).
    pub(super) fn ack_2xx(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        resp: &Message<'_>,
        request: Option<Vec<u8>>,
    ) {
        let Some(request) = request else { return };
        let Ok(req) = Message::parse(&request) else {
            return;
        };
        let Some((_, leg)) = resp
            .call_id()
            .and_then(|cid| self.by_call_id.get(cid))
            .copied()
        else {
            return;
        };
        let Some(to) = self.calls.get(&call).and_then(|c| c.peer_of(leg)) else {
            return;
        };
        let via = self.via(to);
        let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(leg)) else {
            return;
        };
        let Some(dest) = d.dest else { return };
        write_after_2xx(
            &mut self.buf,
            "ACK",
            &d.remote_target,
            &via,
            &req,
            resp,
            None,
        );
        let data = self.buf.as_slice().into();
        self.transmit(cx.now, call, leg, dest, data);
    }

    /// CANCELs every callee leg still ringing but `keep`.
    pub(super) fn cancel_others(&mut self, cx: &mut Cx<'_>, call: u64, keep: Option<usize>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let txs: Vec<TxId> = c
            .legs
            .iter()
            .enumerate()
            .filter(|(i, l)| Some(*i) != keep && l.final_code.is_none())
            .filter_map(|(_, l)| l.invite_tx)
            .collect();
        for tx in txs {
            self.cancel_tx(cx, call, tx);
        }
    }

    /// A BYE on one leg's dialog.
    pub(super) fn send_bye(&mut self, cx: &mut Cx<'_>, call: u64, leg: Leg) {
        let Some(to) = self.calls.get(&call).and_then(|c| c.peer_of(leg)) else {
            return;
        };
        let via = self.via(to);
        let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(leg)) else {
            return;
        };
        let Some(dest) = d.dest else { return };
        let mut w = d.next_request(&mut self.buf, "BYE", &via, 70);
        w.header("User-Agent", &self.cfg.server_name);
        w.finish(b"");
        if let Ok(tx) = self.table.send_request(
            cx.now.mono_ms,
            &self.buf,
            dest,
            dest.is_reliable(),
            &mut self.actions,
        ) {
            self.by_tx.insert(tx, (call, TxRole::Ignore));
            self.flow_tx(tx, call, leg);
        }
    }

    /// Answers the caller's INVITE with `code`, copying `body`.
    pub(super) fn respond_caller(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        code: u16,
        reason: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let contact = self.contact(c.caller_addr);
        let Some(head) = c.invite_response_head() else {
            return;
        };
        let mut w = Writer::response_with_head(&mut self.buf, code, reason, head);
        w.header("Server", &self.cfg.server_name);
        if code < 300 {
            w.header("Contact", &contact);
        }
        match body {
            Some((ct, b)) if !b.is_empty() => {
                w.header("Content-Type", ct);
                w.finish(b);
            }
            _ => {
                w.finish(b"");
            }
        }
        let tx = c.caller_tx;
        let _ = self
            .table
            .respond(cx.now.mono_ms, tx, &self.buf, &mut self.actions);
        self.flow_tx(tx, call, Leg::Caller);
    }
}
