//! Requests inside a call: a CANCEL of the caller's INVITE, BYE from
//! either side, and every other in-dialog request (re-INVITE, UPDATE,
//! INFO, REFER...) relayed to the other leg of an answered call, its
//! answer relayed back. A request must match its dialog (Call-ID, both
//! tags, a rising CSeq): else 481 or 500.

use super::dialog::DialogMatch;
use super::engine::{CallEngine, Cx, TxRole};
use super::media::{keys_only_over_tls, BadAddress};
use super::model::{Leg, Phase};
use super::record::Ending;
use crate::cdr::HangupReason;
use crate::media::relay::{SdpOrigin, Side};
use crate::sip::{HeaderName, Message, Method, Writer};
use crate::transaction::TxId;

impl CallEngine {
    /// A CANCEL of the INVITE of `call`: 200, and 487 for the INVITE
    /// while it rings.
    pub(super) fn on_cancel(&mut self, cx: &mut Cx<'_>, tx: TxId, msg: &Message<'_>, call: u64) {
        self.respond_plain(cx, tx, msg, 200);
        if self
            .calls
            .get(&call)
            .is_some_and(|c| c.phase == Phase::Ringing)
        {
            self.respond_caller(cx, call, 487, None, None);
            self.cancel_others(cx, call, None);
            self.end(cx, call, Ending::missed(HangupReason::Canceled));
        }
    }

    /// A request inside one of our dialogs. False when it names no call
    /// of ours, or does not match the dialog its Call-ID names (the
    /// endpoint answers 481).
    pub(super) fn on_request(&mut self, cx: &mut Cx<'_>, tx: TxId, msg: &Message<'_>) -> bool {
        let Some(method) = msg.method() else {
            return false;
        };
        let Some(&(call, leg)) = msg.call_id().and_then(|cid| self.by_call_id.get(cid)) else {
            return false;
        };
        let admitted = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.dialog_mut(leg))
            .map_or(DialogMatch::Unknown, |d| d.admit(msg));
        match admitted {
            DialogMatch::InOrder => {}
            DialogMatch::Unknown => {
                self.refused.dialog_mismatch += 1;
                return false;
            }
            DialogMatch::OutOfOrder => {
                self.refused.cseq_out_of_order += 1;
                self.respond_plain(cx, tx, msg, 500);
                return true;
            }
        }
        let phase = self.calls.get(&call).map(|c| c.phase);
        if matches!(method, Method::Bye) {
            self.respond_plain(cx, tx, msg, 200);
            self.on_bye(cx, call, leg, phase);
            return true;
        }
        // Relay to the other leg of an answered call.
        let other = match (phase, leg) {
            (Some(Phase::Answered(w)), Leg::Caller) => Leg::Callee(w),
            (Some(Phase::Answered(_)), Leg::Callee(_)) => Leg::Caller,
            _ => {
                self.respond_plain(cx, tx, msg, 491);
                return true;
            }
        };
        self.relay_request(cx, call, tx, other, msg);
        true
    }

    /// A BYE on `leg` of `call` (already answered 200).
    fn on_bye(&mut self, cx: &mut Cx<'_>, call: u64, leg: Leg, phase: Option<Phase>) {
        match (phase, leg) {
            (Some(Phase::Answered(w)), Leg::Caller) => {
                self.send_bye(cx, call, Leg::Callee(w));
                // A transfer target still ringing goes too.
                self.cancel_others(cx, call, Some(w));
                self.end(cx, call, Ending::completed(HangupReason::ByCaller));
            }
            (Some(Phase::Answered(w)), Leg::Callee(_)) => {
                self.send_bye(cx, call, Leg::Caller);
                self.cancel_others(cx, call, Some(w));
                self.end(cx, call, Ending::completed(HangupReason::ByCallee));
            }
            (Some(Phase::Accepted), Leg::Caller) => {
                self.end(cx, call, Ending::completed(HangupReason::ByCaller));
            }
            (Some(Phase::Ringing), Leg::Caller) => {
                // The first party of a click-to-dial call hung up before
                // the target answered.
                self.cancel_others(cx, call, None);
                self.end(cx, call, Ending::missed(HangupReason::ByCaller));
            }
            _ => {}
        }
    }

    /// Answers a request of ours with a bare `code` (its server
    /// transaction is already in the call's flow: `on_sip`).
    pub(super) fn respond_plain(
        &mut self,
        cx: &mut Cx<'_>,
        tx: TxId,
        msg: &Message<'_>,
        code: u16,
    ) {
        let mut w = Writer::response_to(&mut self.buf, msg, code, None, None, None);
        w.header("Server", &self.cfg.server_name);
        w.finish(b"");
        let _ = self
            .table
            .respond(cx.now.mono_ms, tx, &self.buf, &mut self.actions);
    }

    /// Sends `msg` on to the dialog of `to`; its answer comes back to
    /// the server transaction `server`.
    fn relay_request(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        server: TxId,
        to: Leg,
        msg: &Message<'_>,
    ) {
        let method = msg
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let Some(to_peer) = self.calls.get(&call).and_then(|c| c.peer_of(to)) else {
            return;
        };
        let via = self.via(to_peer);
        let contact = self.contact(to_peer);
        let Some(from) = self.calls.get(&call).map(|c| match to {
            Leg::Caller => c.leg_of_side(Side::Callee),
            Leg::Callee(_) => Leg::Caller,
        }) else {
            return;
        };
        let origin = SdpOrigin::Renegotiation;
        let arrived = self.table.reply_to(server);
        let body = match self.media_sdp(cx, call, from, msg, origin, BadAddress::Refuse, arrived) {
            Ok(body) => body,
            Err(refused) => {
                tracing::debug!(call, reason = refused.reason(), "offer refused");
                self.respond_plain(cx, server, msg, 488);
                return;
            }
        };
        let Some(d) = self.calls.get_mut(&call).and_then(|c| c.dialog_mut(to)) else {
            return;
        };
        let Some(dest) = d.dest else { return };
        let max_forwards = msg
            .max_forwards()
            .ok()
            .flatten()
            .unwrap_or(70)
            .saturating_sub(1);
        let mut w = d.next_request(&mut self.buf, &method, &via, max_forwards);
        w.header("Contact", &contact);
        for name in [
            HeaderName::ContentType,
            HeaderName::Event,
            HeaderName::ReferTo,
            HeaderName::SessionExpires,
        ] {
            if let Some(v) = msg.header(name) {
                w.header(name.as_str(), v.trim());
            }
        }
        match body {
            Some(body) => w.finish(&body),
            None => w.finish(&keys_only_over_tls(msg.body(), dest)),
        };
        if let Ok(tx) = self.table.send_request(
            cx.now.mono_ms,
            &self.buf,
            dest,
            dest.is_reliable(),
            &mut self.actions,
        ) {
            self.watch_tx(tx, call, TxRole::Relay { server, to });
            self.flow_tx(tx, call, to);
            self.relayed.insert(server, msg.as_bytes().to_vec());
        }
    }

    /// A bare final `code` for the relayed request that server transaction
    /// `server` holds (its onward transaction timed out).
    pub(super) fn answer_relayed(&mut self, cx: &mut Cx<'_>, server: TxId, code: u16) {
        let Some(request) = self.relayed.remove(&server) else {
            return;
        };
        if let Ok(req) = Message::parse(&request) {
            self.respond_plain(cx, server, &req, code);
        }
    }

    /// The answer to a request we relayed, back to its sender.
    pub(super) fn relay_response(
        &mut self,
        cx: &mut Cx<'_>,
        call: u64,
        server: TxId,
        code: u16,
        resp: &Message<'_>,
        from: Side,
    ) {
        let origin = SdpOrigin::Renegotiation;
        let Some(from_leg) = self.calls.get(&call).map(|c| c.leg_of_side(from)) else {
            return;
        };
        let body = self
            .media_sdp(cx, call, from_leg, resp, origin, BadAddress::Ignore, None)
            .ok()
            .flatten();
        // The answer goes back the way the request came: no key unless
        // that is TLS.
        let reply_to = self.table.reply_to(server);
        let req_bytes = if code >= 200 {
            self.relayed.remove(&server)
        } else {
            self.relayed.get(&server).cloned()
        };
        let Some(req_bytes) = req_bytes else {
            tracing::debug!(call, code, "relayed response for a request no longer known");
            return;
        };
        let Ok(req) = Message::parse(&req_bytes) else {
            return;
        };
        let Some(back) = self
            .calls
            .get(&call)
            .and_then(|c| c.peer_of_side(from.other()))
        else {
            return;
        };
        let contact = self.contact(back);
        let mut w = Writer::response_to(&mut self.buf, &req, code, resp.reason(), None, None);
        w.header("Contact", &contact);
        if let Some(ct) = resp.header(HeaderName::ContentType) {
            w.header("Content-Type", ct.trim());
        }
        let to = reply_to.unwrap_or(back);
        match body {
            Some(body) => w.finish(&keys_only_over_tls(&body, to)),
            None => w.finish(&keys_only_over_tls(resp.body(), to)),
        };
        let _ = self
            .table
            .respond(cx.now.mono_ms, server, &self.buf, &mut self.actions);
    }
}
