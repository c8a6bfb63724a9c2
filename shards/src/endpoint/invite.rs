//! A new INVITE on its owner shard: who may call (a trunk's hosts, a guest
//! of a local user, anyone else by digest), then where it goes: the HTTP
//! router's decision when there is a router, else the static routes, else
//! a local AOR's bindings (404 unknown, 480 not registered).

use super::identity::caller_user;
use super::targets::{binding_targets, dialled};
use super::{direction_of, stateless, Answer, Reply, Req, SipEndpoint};
use crate::call::record::{self, Ending, RefusedInvite};
use crate::call::{MediaPolicy, NewCall};
use crate::cdr::{CallStatus, Direction, HangupReason};
use crate::control_link::ControlRequest;
use crate::media::secure::SrtpPolicy;
use crate::routing::http_router::RouterDecision;
use crate::routing::{Outcome as RouteOutcome, RequestFields, SOURCE_EXTENSION};
use crate::runtime::Output;
use crate::runtime::ShardStats;
use crate::sip::{is_dialable_user, HeaderName};
use crate::time::Now;
use crate::transaction::TxId;
use crate::users::Lookup;

impl SipEndpoint {
    /// A new INVITE: who may call (digest, 407), then where it goes: a local
    /// AOR rings all its bindings; an unknown user is 404, one without a
    /// binding 480.
    pub(super) fn on_invite(&mut self, req: Req<'_, '_>, tx: TxId, out: &mut Output) {
        let Req { now, msg, src } = req;
        if self
            .settings
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // A graceful shutdown is under way: calls that run go on, new
            // ones go elsewhere.
            self.respond(
                req,
                Answer::Tx(tx),
                Reply::new(503)
                    .reason("Shutting Down")
                    .headers(&[("Retry-After", "30".into())]),
                out,
            );
            return;
        }
        // [store] budget nearly used up: a new call's record might not fit,
        // so it goes elsewhere rather than happen without one (store/space.rs).
        if self.store_full() {
            self.respond(
                req,
                Answer::Tx(tx),
                Reply::new(503)
                    .reason("Store Full")
                    .headers(&[("Retry-After", "300".into())]),
                out,
            );
            return;
        }
        let (host, user) = dialled(msg);
        let settings = self.settings.clone();
        let routing = self.routing.clone();
        let realm = settings.realm_for(&host).to_string();
        // Who may call: a trunk's inbound hosts without auth; a guest (no
        // credentials) only a local user that allows guest calls, and only
        // that user (routes are not consulted); anyone else by digest.
        let from_trunk = routing
            .trunks
            .for_source(src.addr)
            .map(|t| t.name.to_string());
        let guest = from_trunk.is_none()
            && msg.header(HeaderName::ProxyAuthorization).is_none()
            && settings.is_local_host(&host)
            && settings
                .users
                .lookup(&user, &realm, &self.user_cache, now.unix)
                .is_some_and(|u| u.allow_guest_calls);
        if from_trunk.is_none() && !guest {
            let Some(auth_user) = self.require_auth(req, &realm, true, Answer::Tx(tx), out) else {
                return;
            };
            // Who calls is who authenticated: a From naming someone else
            // is refused unless the user may call as that number.
            let may = caller_user(msg).is_some_and(|from| {
                from == auth_user
                    || settings
                        .users
                        .lookup(&auth_user, &realm, &self.user_cache, now.unix)
                        .is_some_and(|u| u.may_call_as(&from))
            });
            if !may {
                ShardStats::add(&self.ctx.stats.caller_id_refused, 1);
                tracing::warn!(
                    call_id = msg.call_id().unwrap_or_default(),
                    %src,
                    auth_user,
                    "INVITE refused: From is not the authenticated user"
                );
                self.respond(
                    req,
                    Answer::Tx(tx),
                    Reply::new(403).reason("Caller ID Not Allowed"),
                    out,
                );
                return;
            }
        }
        // What gets dialled must be a number the dial plan can read: a
        // user outside the user grammar once decoded (`%00`, `@`, spaces,
        // non-ASCII) is refused rather than guessed at.
        let dialable = msg
            .request_uri()
            .ok()
            .and_then(|u| u.user_unescaped())
            .is_none_or(|u| is_dialable_user(&u));
        if !dialable {
            self.respond(req, Answer::Tx(tx), Reply::new(484), out);
            return;
        }
        // Guests reach one local user and never the router.
        if !guest && settings.router.is_some() {
            let dir = direction_of(from_trunk.is_some(), settings.is_local_host(&host));
            self.ask_router(req, tx, dir, out);
            return;
        }
        self.route_invite(req, tx, guest, None, out);
    }

    /// The store's budget is nearly used up: new calls get 503.
    fn store_full(&self) -> bool {
        self.settings
            .store
            .as_ref()
            .is_some_and(|s| s.space().refusing_calls())
    }

    /// New INVITEs get 503 before anything else (a graceful shutdown, a
    /// full store): no challenge first.
    fn refuses_new_calls(&self) -> bool {
        self.settings
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
            || self.store_full()
    }

    /// Answers a new INVITE that carries no credentials and needs them
    /// (not from a trunk, not a guest's) with a 407, statelessly. False
    /// when the INVITE must go the stateful way, which also answers what
    /// comes before auth (a malformed INVITE, a loop, a Call-ID in use).
    pub(super) fn challenge_statelessly(&mut self, req: Req<'_, '_>, out: &mut Output) -> bool {
        let Req { now, msg, src } = req;
        if msg.header(HeaderName::ProxyAuthorization).is_some()
            || self.routing.trunks.for_source(src.addr).is_some()
            || stateless::inspect(msg).is_some()
            || self.looped(msg)
            || self.call_id_taken(msg)
            || self.refuses_new_calls()
        {
            return false;
        }
        let (host, user) = dialled(msg);
        let settings = self.settings.clone();
        let realm = settings.realm_for(&host).to_string();
        let guest = settings.is_local_host(&host)
            && settings
                .users
                .lookup(&user, &realm, &self.user_cache, now.unix)
                .is_some_and(|u| u.allow_guest_calls);
        if guest {
            return false;
        }
        ShardStats::add(&self.ctx.stats.auth_challenges, 1);
        ShardStats::add(&self.ctx.stats.stateless_challenges, 1);
        let binding = msg.call_id().unwrap_or_default().to_string();
        let headers: Vec<(&str, String)> = self
            .auth
            .challenge_headers(now.unix, &realm, &binding, false)
            .into_iter()
            .map(|v| ("Proxy-Authenticate", v))
            .collect();
        self.respond(
            req,
            Answer::Stateless,
            Reply::new(407).headers(&headers),
            out,
        );
        true
    }

    /// Where an admitted INVITE goes: the router's decision when there is
    /// one, else the static routes, else a local AOR's bindings.
    pub(super) fn route_invite(
        &mut self,
        req: Req<'_, '_>,
        tx: TxId,
        guest: bool,
        router: Option<RouterDecision>,
        out: &mut Output,
    ) {
        let Req { now, msg, src } = req;
        let ruri = msg.request_uri().ok();
        let (host, user) = dialled(msg);
        let settings = self.settings.clone();
        let routing = self.routing.clone();
        let realm = settings.realm_for(&host).to_string();
        let from_trunk = routing
            .trunks
            .for_source(src.addr)
            .map(|t| t.name.to_string());
        let local = settings.is_local_host(&host);
        if let Some(decision) = router {
            let dir = direction_of(from_trunk.is_some(), local);
            if self.apply_router(req, tx, decision, dir, from_trunk.clone(), out) {
                return;
            }
        }

        // Static routes first. Users as decoded; the `to.*` keys read the
        // Request-URI, which is what gets dialled: a To that says something
        // else cannot steer routing.
        let from = msg.from().ok();
        let from_user = caller_user(msg);
        let header_pairs: Vec<(&str, std::borrow::Cow<'_, str>)> = msg
            .headers()
            .map(|h| (h.name.as_str(), h.value()))
            .collect();
        let headers: Vec<(&str, &str)> =
            header_pairs.iter().map(|(n, v)| (*n, v.as_ref())).collect();
        let from_host = from.and_then(|f| f.uri.host.map(|h| h.to_string()));
        let ruri_user = ruri.and_then(|u| u.user).map(|_| user.as_str());
        let ruri_host = ruri.and_then(|u| u.host).map(|_| host.as_str());
        let fields = RequestFields {
            from_user: from_user.as_deref(),
            from_host: from_host.as_deref(),
            to_user: ruri_user,
            to_host: ruri_host,
            request_uri_user: ruri_user,
            request_uri_host: ruri_host,
            source: Some(from_trunk.as_deref().unwrap_or(SOURCE_EXTENSION)),
            headers: &headers,
        };
        let direction = |to_local: bool| direction_of(from_trunk.is_some(), to_local);
        let decided = if guest {
            None
        } else {
            routing.routes.decide(&fields, &mut self.select)
        };
        if let Some(decision) = decided {
            let route = Some(decision.route.to_string());
            match decision.outcome {
                RouteOutcome::Reject { code, reason } => {
                    let r = Refusal::rejected(code, direction(local), from_trunk);
                    self.refuse(req, tx, r.reason(&reason).route(route), out);
                }
                RouteOutcome::Forward {
                    ref targets,
                    parallel,
                } => {
                    let found = self.resolver(now).route_trunks(&decision, &user);
                    let (list, trunk_id) = (found.targets, found.trunk);
                    if list.is_empty() {
                        let code = if found.limited { 503 } else { 480 };
                        let r = Refusal::failed(code, direction(false), trunk_id);
                        self.refuse(req, tx, r.retry().route(route), out);
                        return;
                    }
                    let sequential = !parallel;
                    let per_target_ms =
                        sequential.then_some(settings.max_ring_ms / (list.len() as u64).max(1));
                    let media = MediaPolicy {
                        mode: settings.media_mode,
                        record: settings.record_all,
                        callee_natted: false,
                        via_trunk: trunk_id.is_some() || from_trunk.is_some(),
                    };
                    let dir = direction(false);
                    let call = NewCall {
                        sequential,
                        per_target_ms: per_target_ms.filter(|_| targets.len() > 1),
                        route,
                        trunk: trunk_id.or(from_trunk),
                        auth_user: self.authenticated_user(msg, src),
                        ..NewCall::new(msg, src, tx, list, dir, media)
                    };
                    self.place(now, call, out);
                }
            }
            return;
        }

        if !local || user.is_empty() {
            let r = Refusal::failed(404, direction(false), from_trunk);
            self.refuse(req, tx, r.reason("No route"), out);
            return;
        }
        // A local AOR: all its bindings in parallel. Our realms are aliases of
        // one domain: the bindings under the Request-URI host first, else
        // under any realm.
        let bindings = match self.resolver(now).try_local_bindings(&user, &host) {
            Ok(bindings) => bindings,
            Err(e) => {
                // The store is busy for a moment (its map being grown):
                // the caller tries again, rather than hear "not there".
                tracing::debug!(user = %user, "bindings not read: {e}");
                let r = Refusal::failed(503, direction(true), from_trunk);
                self.refuse(req, tx, r.reason("Store Busy").retry(), out);
                return;
            }
        };
        let (targets, callee_natted) = binding_targets(&bindings, settings.srtp.of(&user));
        if targets.is_empty() {
            // Known but not registered is 480, unknown 404. A user only a
            // remote backend may know is asked about first (the INVITE waits
            // and comes back here); a backend that cannot say is not taken
            // for "no such user".
            let known = !bindings.is_empty()
                || match settings
                    .users
                    .resolve(&user, &realm, &self.user_cache, now.unix)
                {
                    Lookup::Unknown => false,
                    Lookup::Pending(key) => {
                        self.park_for_callee(req, tx, guest, key, out);
                        return;
                    }
                    Lookup::Found(_) | Lookup::Forbidden(_) | Lookup::Unavailable => true,
                };
            let code = if known { 480 } else { 404 };
            let r = Refusal::failed(code, direction(true), from_trunk);
            self.refuse(req, tx, r, out);
            return;
        }
        let media = MediaPolicy {
            mode: settings.media_mode,
            record: settings.record_all,
            callee_natted,
            via_trunk: from_trunk.is_some(),
        };
        let dir = direction(true);
        let call = NewCall {
            trunk: from_trunk,
            auth_user: self.authenticated_user(msg, src),
            ..NewCall::new(msg, src, tx, targets, dir, media)
        };
        self.place(now, call, out);
    }

    /// Ends an INVITE that becomes no call: its final response through its
    /// transaction, and its CDR.
    pub(super) fn refuse(&mut self, req: Req<'_, '_>, tx: TxId, r: Refusal<'_>, out: &mut Output) {
        let retry = [("Retry-After", "5".to_string())];
        let headers: &[(&str, String)] = if r.retry_after { &retry } else { &[] };
        let reply = Reply::new(r.code).maybe_reason(r.reason).headers(headers);
        self.respond(req, Answer::Tx(tx), reply, out);
        self.record_cdr(req, r);
    }

    /// A CDR for an INVITE that reached routing and ended there.
    pub(super) fn record_cdr(&mut self, req: Req<'_, '_>, r: Refusal<'_>) {
        let refused = RefusedInvite {
            ending: Ending::new(r.code, r.status, r.hangup),
            direction: r.direction,
            route: r.route,
            trunk: r.trunk,
            auth_user: self.authenticated_user(req.msg, req.src),
        };
        let cdr = record::refused(req.msg, refused, req.now.unix_ms);
        self.count_call(cdr.status);
        let _ = self.control.send(ControlRequest::StoreCdr(Box::new(cdr)));
    }

    /// Hands a routed INVITE to the engine.
    pub(super) fn place(&mut self, now: Now, mut call: NewCall<'_>, out: &mut Output) {
        call.caller_srtp = self.caller_srtp(&call);
        self.calls
            .handle(now, crate::call::Input::Call(call), self.relay.as_mut());
        self.flush_calls(out);
    }
}

impl SipEndpoint {
    /// The SRTP policy of a new call's caller: its trunk's when it comes
    /// from one, else its extension's (the authenticated user, or the From
    /// user of a guest).
    fn caller_srtp(&self, call: &NewCall<'_>) -> SrtpPolicy {
        if let Some(trunk) = self.routing.trunks.for_source(call.src.addr) {
            return trunk.srtp;
        }
        let from_user = caller_user(call.invite);
        match call.auth_user.as_deref().or(from_user.as_deref()) {
            Some(user) => self.settings.srtp.of(user),
            None => self.settings.srtp.default,
        }
    }
}

/// How an INVITE that becomes no call ends (see [`SipEndpoint::refuse`]).
pub(super) struct Refusal<'a> {
    code: u16,
    reason: Option<&'a str>,
    /// With `Retry-After`: the caller may try again soon.
    retry_after: bool,
    direction: Direction,
    /// The CDR's status: failed, rejected or spam.
    status: CallStatus,
    /// The CDR's hangupReason: failed or rejected.
    hangup: HangupReason,
    route: Option<String>,
    trunk: Option<String>,
}

impl<'a> Refusal<'a> {
    /// Nowhere to go (404, 480, 503...): CDR `failed`.
    pub(super) fn failed(code: u16, direction: Direction, trunk: Option<String>) -> Self {
        Refusal::new(
            code,
            direction,
            CallStatus::Failed,
            HangupReason::Failed,
            trunk,
        )
    }

    /// Refused on purpose (a route's or the router's reject): CDR `rejected`.
    pub(super) fn rejected(code: u16, direction: Direction, trunk: Option<String>) -> Self {
        let (status, hangup) = (CallStatus::Rejected, HangupReason::Rejected);
        Refusal::new(code, direction, status, hangup, trunk)
    }

    /// The router's `spam`: no response at all; CDR `spam`, hangupReason
    /// `rejected`, status code 0.
    pub(super) fn spam(direction: Direction, trunk: Option<String>) -> Self {
        let (status, hangup) = (CallStatus::Spam, HangupReason::Rejected);
        Refusal::new(0, direction, status, hangup, trunk)
    }

    fn new(
        code: u16,
        direction: Direction,
        status: CallStatus,
        hangup: HangupReason,
        trunk: Option<String>,
    ) -> Self {
        Refusal {
            code,
            reason: None,
            retry_after: false,
            direction,
            status,
            hangup,
            route: None,
            trunk,
        }
    }

    pub(super) fn reason(self, reason: &'a str) -> Self {
        Refusal {
            reason: Some(reason),
            ..self
        }
    }

    pub(super) fn retry(self) -> Self {
        Refusal {
            retry_after: true,
            ..self
        }
    }

    pub(super) fn route(self, route: Option<String>) -> Self {
        Refusal { route, ..self }
    }
}
