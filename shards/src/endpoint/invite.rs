//! A new INVITE on its owner shard: who may call (a trunk's hosts, a guest
//! of a local user, anyone else by digest), then where it goes: the HTTP
//! router's decision when there is a router, else the static routes, else
//! a local AOR's bindings (404 unknown, 480 not registered).

use std::net::SocketAddr;

use super::{binding_targets, dialled, direction_of, parse_host_port, Answer, SipEndpoint};
use crate::call::engine::{MediaPolicy, NewCall, Target};
use crate::routing::http_router::RouterDecision;
use crate::routing::{MatchKey, Outcome as RouteOutcome, RequestFields};
use crate::runtime::Output;
use crate::sip::{HeaderName, Message};
use crate::time::Now;
use crate::transaction::TxId;
use crate::users::Lookup;

impl SipEndpoint {
    /// A new INVITE: who may call (digest, 407), then where it goes: a local
    /// AOR rings all its bindings; an unknown user is 404, one without a
    /// binding 480.
    pub(super) fn on_invite(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        tx: TxId,
        out: &mut Output,
    ) {
        if self
            .settings
            .draining
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // A graceful shutdown is under way: calls that run go on, new
            // ones go elsewhere.
            self.respond(
                now,
                msg,
                src,
                503,
                Some("Shutting Down"),
                &[("Retry-After", "30".into())],
                Answer::Tx(tx),
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
        let from_trunk = routing.trunks.for_source(src).map(|t| t.name.to_string());
        let guest = from_trunk.is_none()
            && msg.header(HeaderName::ProxyAuthorization).is_none()
            && settings.is_local_host(&host)
            && settings
                .users
                .lookup(&user, &realm, &self.user_cache, now.unix)
                .is_some_and(|u| u.allow_guest_calls);
        if from_trunk.is_none()
            && !guest
            && self
                .require_auth(now, msg, src, &realm, true, Answer::Tx(tx), out)
                .is_none()
        {
            return;
        }
        // Guests reach one local user and never the router.
        if !guest && settings.router.is_some() {
            let dir = direction_of(from_trunk.is_some(), settings.is_local_host(&host));
            self.ask_router(now, msg, src, tx, dir, out);
            return;
        }
        self.route_invite(now, msg, src, tx, guest, None, out);
    }

    /// Where an admitted INVITE goes: the router's decision when there is
    /// one, else the static routes, else a local AOR's bindings.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_invite(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        tx: TxId,
        guest: bool,
        router: Option<RouterDecision>,
        out: &mut Output,
    ) {
        let ruri = msg.request_uri().ok();
        let (host, user) = dialled(msg);
        let settings = self.settings.clone();
        let routing = self.routing.clone();
        let realm = settings.realm_for(&host).to_string();
        let from_trunk = routing.trunks.for_source(src).map(|t| t.name.to_string());
        let local = settings.is_local_host(&host);
        if let Some(decision) = router {
            let dir = direction_of(from_trunk.is_some(), local);
            if self.apply_router(now, msg, src, tx, decision, dir, from_trunk.clone(), out) {
                return;
            }
        }

        // Static routes first.
        let from = msg.from().ok();
        let to = msg.to().ok();
        let header_pairs: Vec<(&str, std::borrow::Cow<'_, str>)> = msg
            .headers()
            .map(|h| (h.name.as_str(), h.value()))
            .collect();
        let headers: Vec<(&str, &str)> =
            header_pairs.iter().map(|(n, v)| (*n, v.as_ref())).collect();
        let from_host = from.and_then(|f| f.uri.host.map(|h| h.to_string()));
        let to_host = to.and_then(|t| t.uri.host.map(|h| h.to_string()));
        let fields = RequestFields {
            from_user: from.and_then(|f| f.uri.user),
            from_host: from_host.as_deref(),
            to_user: to.and_then(|t| t.uri.user),
            to_host: to_host.as_deref(),
            request_uri_user: ruri.and_then(|u| u.user),
            request_uri_host: ruri.and_then(|u| u.host).map(|_| host.as_str()),
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
                    self.respond(now, msg, src, code, Some(&reason), &[], Answer::Tx(tx), out);
                    self.record_cdr(
                        now,
                        msg,
                        code,
                        direction(local),
                        "rejected",
                        "rejected",
                        route,
                        from_trunk,
                    );
                }
                RouteOutcome::Forward { targets, parallel } => {
                    let mut dial_user = user.clone();
                    for (key, value) in &decision.rewrites {
                        if matches!(key, MatchKey::RequestUriUser | MatchKey::ToUser) {
                            dial_user = value.clone();
                        }
                    }
                    let mut limited = false;
                    let mut list = Vec::new();
                    let mut trunk_id = None;
                    for name in &targets {
                        let Some(trunk) = routing.trunks.by_name(name) else {
                            continue;
                        };
                        let (Some(uri), Some(dest)) = (
                            trunk.request_uri(&dial_user),
                            trunk.dest_host_port().and_then(parse_host_port),
                        ) else {
                            tracing::warn!(trunk = %trunk.name, "trunk destination is not an IP address; skipped (no DNS on a shard)");
                            continue;
                        };
                        let permit = match trunk.try_start_call(now.mono_ms) {
                            Ok(p) => p,
                            Err(_) => {
                                limited = true;
                                continue;
                            }
                        };
                        trunk_id.get_or_insert_with(|| trunk.name.to_string());
                        list.push(Target {
                            uri,
                            dest,
                            credentials: (!trunk.username.is_empty())
                                .then(|| (trunk.username.clone(), trunk.password.clone())),
                            permit: Some(permit),
                            to: None,
                        });
                    }
                    if list.is_empty() {
                        let code = if limited { 503 } else { 480 };
                        self.respond(
                            now,
                            msg,
                            src,
                            code,
                            None,
                            &[("Retry-After", "5".into())],
                            Answer::Tx(tx),
                            out,
                        );
                        self.record_cdr(
                            now,
                            msg,
                            code,
                            direction(false),
                            "failed",
                            "failed",
                            route,
                            trunk_id,
                        );
                        return;
                    }
                    let sequential = !parallel;
                    let per_target_ms =
                        sequential.then_some(settings.max_ring_ms / (list.len() as u64).max(1));
                    self.calls.start(
                        now,
                        &mut self.table,
                        NewCall {
                            invite: msg,
                            src,
                            tx,
                            targets: list,
                            sequential,
                            per_target_ms: per_target_ms.filter(|_| targets.len() > 1),
                            direction: direction(false),
                            ring_ms: None,
                            route,
                            media: MediaPolicy {
                                mode: settings.media_mode,
                                record: settings.record_all,
                                callee_natted: false,
                                via_trunk: trunk_id.is_some() || from_trunk.is_some(),
                            },
                            trunk: trunk_id.or(from_trunk),
                            extras: Default::default(),
                        },
                        &mut self.actions,
                    );
                }
            }
            return;
        }

        if !local || user.is_empty() {
            self.respond(
                now,
                msg,
                src,
                404,
                Some("No route"),
                &[],
                Answer::Tx(tx),
                out,
            );
            self.record_cdr(
                now,
                msg,
                404,
                direction(false),
                "failed",
                "failed",
                None,
                from_trunk,
            );
            return;
        }
        // A local AOR: all its bindings in parallel. Our realms are aliases of
        // one domain: the bindings under the Request-URI host first, else
        // under any realm.
        let bindings = self.local_bindings(&user, &host, now);
        let (targets, callee_natted) = binding_targets(&bindings, now);
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
                        self.park_for_callee(now, msg, src, tx, guest, key, out);
                        return;
                    }
                    Lookup::Found(_) | Lookup::Forbidden(_) | Lookup::Unavailable => true,
                };
            let code = if known { 480 } else { 404 };
            self.respond(now, msg, src, code, None, &[], Answer::Tx(tx), out);
            self.record_cdr(
                now,
                msg,
                code,
                direction(true),
                "failed",
                "failed",
                None,
                from_trunk,
            );
            return;
        }
        self.calls.start(
            now,
            &mut self.table,
            NewCall {
                invite: msg,
                src,
                tx,
                targets,
                sequential: false,
                per_target_ms: None,
                direction: direction(true),
                ring_ms: None,
                route: None,
                media: MediaPolicy {
                    mode: settings.media_mode,
                    record: settings.record_all,
                    callee_natted,
                    via_trunk: from_trunk.is_some(),
                },
                trunk: from_trunk,
                extras: Default::default(),
            },
            &mut self.actions,
        );
    }
}
