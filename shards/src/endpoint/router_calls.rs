//! New INVITEs and the HTTP router (API.md 2.1). An admitted INVITE (it
//! passed digest auth or came from a trunk) is parked while the control
//! core asks the router; the caller already has its 100 Trying and the
//! transaction its timers. The decision continues the INVITE where static
//! routing would have started: forward, reject, abort, spam, or static
//! routes (`not_handled`, and failures when `fallback_to_static`).

use std::net::SocketAddr;

use super::invite::Refusal;
use super::{binding_targets, parse_host_port, Answer, SipEndpoint};
use crate::call::record::{Ending, RefusedInvite};
use crate::call::{CallExtras, MediaPolicy, NewCall, Target};
use crate::cdr::{CallStatus, Direction, HangupReason};
use crate::routing::http_router::{request_json, Forward, RouterDecision, RouterQuery};
use crate::runtime::Output;
use crate::sip::Message;
use crate::time::Now;
use crate::transaction::TxId;

/// How long a `spam` INVITE's transaction absorbs retransmissions (64*T1).
const SPAM_LINGER_MS: u64 = 32_000;

/// An INVITE waiting for the router.
pub(super) struct ParkedInvite {
    data: Vec<u8>,
    src: SocketAddr,
    tx: TxId,
    since_ms: u64,
}

impl SipEndpoint {
    /// Asks the router about this INVITE (`direction` as API.md 2.1 says).
    pub(super) fn ask_router(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        tx: TxId,
        direction: Direction,
        out: &mut Output,
    ) {
        let Some(link) = self.settings.router.clone() else {
            return self.route_invite(now, msg, src, tx, false, None, out);
        };
        let token = self.next_token;
        self.next_token += 1;
        let query = RouterQuery {
            shard: self.ctx.id,
            token,
            request: request_json(
                msg,
                src,
                direction.as_str(),
                self.authenticated_user(msg, src).as_deref(),
            ),
        };
        if self.parked_count() >= self.settings.max_parked || link.queries.try_send(query).is_err()
        {
            let failed = RouterDecision::Failed("router queue full".into());
            return self.route_invite(now, msg, src, tx, false, Some(failed), out);
        }
        self.parked_routes.insert(
            token,
            ParkedInvite {
                data: msg.as_bytes().to_vec(),
                src,
                tx,
                since_ms: now.mono_ms,
            },
        );
    }

    pub(super) fn on_route_answer(
        &mut self,
        now: Now,
        token: u64,
        decision: RouterDecision,
        out: &mut Output,
    ) {
        let Some(p) = self.parked_routes.remove(&token) else {
            return;
        };
        // The caller may have given up meanwhile (CANCEL, timer).
        if !self.calls.is_proceeding(p.tx) {
            return;
        }
        if let Ok(msg) = Message::parse(&p.data) {
            self.route_invite(now, &msg, p.src, p.tx, false, Some(decision), out);
        }
        self.flush_calls(out);
    }

    /// INVITEs the router did not answer in time: a failure, like a timeout.
    pub(super) fn expire_routes(&mut self, now: Now, out: &mut Output) {
        let Some(wait) = self.settings.router.as_ref().map(|l| l.wait_ms) else {
            return;
        };
        let late: Vec<u64> = self
            .parked_routes
            .iter()
            .filter(|(_, p)| now.mono_ms.saturating_sub(p.since_ms) > wait)
            .map(|(t, _)| *t)
            .collect();
        for token in late {
            let failed = RouterDecision::Failed("no answer in time".into());
            self.on_route_answer(now, token, failed, out);
        }
    }

    /// A CANCEL for an INVITE still waiting for the router: 487 for it.
    pub(super) fn cancel_parked_route(
        &mut self,
        now: Now,
        invite_tx: TxId,
        out: &mut Output,
    ) -> bool {
        let Some(token) = self
            .parked_routes
            .iter()
            .find(|(_, p)| p.tx == invite_tx)
            .map(|(t, _)| *t)
        else {
            return false;
        };
        if let Some(p) = self.parked_routes.remove(&token) {
            if let Ok(msg) = Message::parse(&p.data) {
                self.respond(now, &msg, p.src, 487, None, &[], Answer::Tx(p.tx), out);
            }
        }
        true
    }

    /// Carries out the router's decision; false: static routing goes on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_router(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
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
                    call_id = msg.call_id().unwrap_or_default(),
                    "router failed: {why}"
                );
                if fallback {
                    return false;
                }
                let r = Refusal::failed(503, direction, from_trunk);
                self.refuse(
                    now,
                    msg,
                    src,
                    tx,
                    r.reason("Router Unavailable").retry(),
                    out,
                );
                true
            }
            RouterDecision::Reject { status, reason } => {
                let mut r = Refusal::rejected(status, direction, from_trunk);
                if let Some(reason) = reason.as_deref() {
                    r = r.reason(reason);
                }
                self.refuse(now, msg, src, tx, r, out);
                true
            }
            RouterDecision::Abort { status } => {
                let r = Refusal::failed(status, direction, from_trunk);
                self.refuse(now, msg, src, tx, r, out);
                true
            }
            RouterDecision::Spam => {
                // No final response at all. The transaction absorbs the
                // caller's retransmissions until timer H would have ended
                // it, then goes without a word.
                self.spam.push((tx, now.mono_ms + SPAM_LINGER_MS));
                let record = RefusedInvite {
                    ending: Ending::new(0, CallStatus::Spam, HangupReason::Rejected),
                    direction,
                    route: None,
                    trunk: from_trunk,
                    auth_user: None,
                };
                self.record_cdr(now, msg, src, record);
                true
            }
            RouterDecision::Forward(f) => {
                self.forward(now, msg, src, tx, f, direction, from_trunk, out);
                true
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        tx: TxId,
        f: Forward,
        direction: Direction,
        from_trunk: Option<String>,
        out: &mut Output,
    ) {
        let mut targets = Vec::new();
        let mut callee_natted = false;
        for t in &f.targets {
            let (found, natted) = self.router_target(now, t);
            callee_natted |= natted;
            targets.extend(found);
        }
        if targets.is_empty() {
            let r = Refusal::failed(480, direction, from_trunk);
            self.refuse(now, msg, src, tx, r.reason("No Valid Target"), out);
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

    /// A router target: a local AOR rings every binding it has; a URI with
    /// another host is dialled as given. Returns the targets and whether a
    /// binding looks NATed.
    fn router_target(&mut self, now: Now, target: &str) -> (Vec<Target>, bool) {
        let target = target.trim();
        let Some(rest) = target
            .strip_prefix("sip:")
            .or_else(|| target.strip_prefix("sips:"))
        else {
            tracing::debug!(target, "router target is not a sip: URI; skipped");
            return (Vec::new(), false);
        };
        let rest = rest.split([';', '?']).next().unwrap_or(rest);
        let (user, hostport) = rest.split_once('@').unwrap_or(("", rest));
        let host = hostport
            .strip_prefix('[')
            .and_then(|r| r.split(']').next())
            .unwrap_or_else(|| hostport.split(':').next().unwrap_or(hostport));
        // Our own address with another port is another server.
        let port = hostport
            .rsplit_once(':')
            .filter(|(h, _)| !h.ends_with(']') || hostport.starts_with('['))
            .and_then(|(_, p)| p.parse::<u16>().ok());
        let ours = port.is_none_or(|p| p == self.settings.sip_port);
        if ours && self.settings.is_local_host(host) && !user.is_empty() {
            let bindings = self.local_bindings(user, host, now);
            let (mut targets, natted) = binding_targets(&bindings, now);
            for t in &mut targets {
                t.to = Some(format!("<{target}>"));
            }
            return (targets, natted);
        }
        match parse_host_port(hostport) {
            Some(dest) => {
                let mut t = Target::new(target.to_string(), dest);
                t.to = Some(format!("<{target}>"));
                (vec![t], false)
            }
            None => {
                tracing::debug!(
                    target,
                    "router target host is not an IP address (no DNS on a shard); skipped"
                );
                (Vec::new(), false)
            }
        }
    }
}
