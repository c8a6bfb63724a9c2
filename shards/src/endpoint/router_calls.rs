//! New INVITEs and the HTTP router (API.md 2.1). An admitted INVITE (it
//! passed digest auth or came from a trunk) is parked while the control
//! core asks the router; the caller already has its 100 Trying and the
//! transaction its timers. The decision continues the INVITE where static
//! routing would have started: forward, reject, abort, spam, or static
//! routes (`not_handled`, and failures when `fallback_to_static`).

use crate::transport::Peer;

use super::invite::Refusal;
use super::parked::{Parked, Waits};
use super::{Answer, Reply, Req, SipEndpoint};
use crate::call::{CallExtras, MediaPolicy, NewCall};
use crate::cdr::Direction;
use crate::routing::http_router::{request_json, Forward, RouterDecision, RouterQuery};
use crate::runtime::Output;
use crate::sip::Message;
use crate::time::Now;
use crate::transaction::TxId;

/// How long a `spam` INVITE's transaction absorbs retransmissions (64*T1).
const SPAM_LINGER_MS: u64 = 32_000;

impl SipEndpoint {
    /// Asks the router about this INVITE (`direction` as API.md 2.1 says).
    pub(super) fn ask_router(
        &mut self,
        req: Req<'_, '_>,
        tx: TxId,
        direction: Direction,
        out: &mut Output,
    ) {
        let Req { now, msg, src } = req;
        let Some(link) = self.settings.router.clone() else {
            return self.route_invite(req, tx, false, None, out);
        };
        let token = self.parked.next_token();
        let query = RouterQuery {
            shard: self.ctx.id,
            token,
            request: request_json(
                msg,
                src.addr,
                direction.as_str(),
                self.authenticated_user(msg, src).as_deref(),
            ),
        };
        if !self.parked.has_room() || link.queries.try_send(query).is_err() {
            let failed = RouterDecision::Failed("router queue full".into());
            return self.route_invite(req, tx, false, Some(failed), out);
        }
        // Late when more than `wait_ms` has passed.
        let deadline = now.mono_ms + link.wait_ms + 1;
        let parked = Parked {
            request: msg.as_bytes().to_vec(),
            src,
            waits: Waits::Router { tx },
        };
        // Room was checked above; the token is the one the query carries.
        let _ = self.parked.insert(deadline, parked);
    }

    pub(super) fn on_route_answer(
        &mut self,
        now: Now,
        token: u64,
        decision: RouterDecision,
        out: &mut Output,
    ) {
        // Only an INVITE waiting for the router takes its answer.
        let waits_for_router = self
            .parked
            .get(token)
            .is_some_and(|p| matches!(p.waits, Waits::Router { .. }));
        if !waits_for_router {
            return;
        }
        let Some(p) = self.parked.take(token) else {
            return;
        };
        let Waits::Router { tx } = p.waits else {
            return;
        };
        self.resume_route(now, &p.request, p.src, tx, decision, out);
    }

    /// An INVITE the router did not answer in time: a failure, like a
    /// timeout.
    pub(super) fn router_late(
        &mut self,
        now: Now,
        request: Vec<u8>,
        src: Peer,
        tx: TxId,
        out: &mut Output,
    ) {
        let failed = RouterDecision::Failed("no answer in time".into());
        self.resume_route(now, &request, src, tx, failed, out);
    }

    /// Routes a parked INVITE with the router's decision, unless the caller
    /// gave up meanwhile (CANCEL, timer).
    fn resume_route(
        &mut self,
        now: Now,
        request: &[u8],
        src: Peer,
        tx: TxId,
        decision: RouterDecision,
        out: &mut Output,
    ) {
        if !self.calls.is_proceeding(tx) {
            return;
        }
        if let Ok(msg) = Message::parse(request) {
            self.route_invite(Req::new(now, &msg, src), tx, false, Some(decision), out);
        }
        self.flush_calls(out);
    }

    /// A CANCEL for an INVITE still waiting for a webhook (the router, the
    /// user backend): 487 for it, and it is not resumed.
    pub(super) fn cancel_parked_invite(
        &mut self,
        now: Now,
        invite_tx: TxId,
        out: &mut Output,
    ) -> bool {
        let Some(token) = self.parked.find(|p| p.is_invite(invite_tx)) else {
            return false;
        };
        if let Some(p) = self.parked.take(token) {
            if let Ok(msg) = Message::parse(&p.request) {
                let req = Req::new(now, &msg, p.src);
                self.respond(req, Answer::Tx(invite_tx), Reply::new(487), out);
            }
        }
        true
    }

    /// Carries out the router's decision; false: static routing goes on.
    pub(super) fn apply_router(
        &mut self,
        req: Req<'_, '_>,
        tx: TxId,
        decision: RouterDecision,
        direction: Direction,
        from_trunk: Option<String>,
        out: &mut Output,
    ) -> bool {
        let fallback = self
            .settings
            .router
            .as_ref()
            .is_some_and(|l| l.fallback_to_static);
        match decision {
            RouterDecision::NotHandled => false,
            RouterDecision::Failed(why) => {
                tracing::debug!(
                    call_id = req.msg.call_id().unwrap_or_default(),
                    "router failed: {why}"
                );
                if fallback {
                    return false;
                }
                let r = Refusal::failed(503, direction, from_trunk);
                self.refuse(req, tx, r.reason("Router Unavailable").retry(), out);
                true
            }
            RouterDecision::Reject { status, reason } => {
                let mut r = Refusal::rejected(status, direction, from_trunk);
                if let Some(reason) = reason.as_deref() {
                    r = r.reason(reason);
                }
                self.refuse(req, tx, r, out);
                true
            }
            RouterDecision::Abort { status } => {
                let r = Refusal::failed(status, direction, from_trunk);
                self.refuse(req, tx, r, out);
                true
            }
            RouterDecision::Spam => {
                // No final response at all. The transaction absorbs the
                // caller's retransmissions until timer H would have ended
                // it, then goes without a word.
                let _ = self.spam.insert(req.now.mono_ms + SPAM_LINGER_MS, tx);
                self.record_cdr(req, Refusal::spam(direction, from_trunk));
                true
            }
            RouterDecision::Forward(f) => {
                self.forward(req, tx, f, direction, from_trunk, out);
                true
            }
        }
    }

    /// Starts the call the router forwards to its targets (480 when none is
    /// usable).
    fn forward(
        &mut self,
        req: Req<'_, '_>,
        tx: TxId,
        f: Forward,
        direction: Direction,
        from_trunk: Option<String>,
        out: &mut Output,
    ) {
        let Req { now, msg, src } = req;
        let mut targets = Vec::new();
        let mut callee_natted = false;
        let resolver = self.resolver(now);
        for t in &f.targets {
            let (found, natted) = resolver.router_target(t);
            callee_natted |= natted;
            targets.extend(found);
        }
        if targets.is_empty() {
            let r = Refusal::failed(480, direction, from_trunk);
            self.refuse(req, tx, r.reason("No Valid Target"), out);
            return;
        }
        let settings = self.settings.clone();
        let timeout_ms = f.timeout_secs.map(|s| s.saturating_mul(1000));
        let sequential = !f.parallel;
        let media = MediaPolicy {
            mode: f.media_proxy.unwrap_or(settings.media_mode),
            record: f.record.unwrap_or(settings.record_all),
            callee_natted,
            via_trunk: from_trunk.is_some(),
        };
        let call = NewCall {
            sequential,
            per_target_ms: if sequential { timeout_ms } else { None },
            ring_ms: if sequential { None } else { timeout_ms },
            trunk: from_trunk,
            extras: CallExtras {
                headers: f.headers,
                metadata: f.extensions,
                max_duration_ms: f.max_duration_secs.map(|s| s.saturating_mul(1000)),
            },
            auth_user: self.authenticated_user(msg, src),
            ..NewCall::new(msg, src, tx, targets, direction, media)
        };
        self.place(now, call, out);
    }
}
