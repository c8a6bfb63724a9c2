//! Where a call command's target goes (a blind transfer's `target`, a
//! click-to-dial's `to`): a number or URI through the static routes to a
//! trunk, else a local extension's registered contact, else a SIP URI with
//! an IP address as given. Host names are not resolved on a shard. Also
//! starts click-to-dial calls.

use std::net::SocketAddr;

use super::{binding_dest, parse_host_port, SipEndpoint};
use crate::call::CommandError;
use crate::call::{Handled, Input, Originate, Target};
use crate::cdr::Direction;
use crate::routing::{MatchKey, Outcome as RouteOutcome, RequestFields, SOURCE_EXTENSION};
use crate::sip::{escape_user, is_dialable_user, unescape};
use crate::time::Now;

impl SipEndpoint {
    /// The one leg a transfer to `target` rings, or why there is none
    /// (a message starting with `target:`).
    pub(super) fn resolve_target(&mut self, now: Now, target: &str) -> Result<Target, String> {
        let target = target.trim();
        let (user, host, uri_text) = match target.split_once(':') {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") =>
            {
                let rest = rest.split([';', '?']).next().unwrap_or(rest);
                let (user, hostport) = rest.split_once('@').unwrap_or(("", rest));
                (user.to_string(), hostport.to_string(), target.to_string())
            }
            _ if !target.is_empty() && !target.contains(['@', ' ', '<']) => {
                let realm = self
                    .settings
                    .realms
                    .first()
                    .cloned()
                    .unwrap_or_else(|| self.settings.sip_host.clone());
                (
                    target.to_string(),
                    realm.clone(),
                    format!("sip:{target}@{realm}"),
                )
            }
            _ => return Err(format!("target: '{target}' is not a number or a sip: URI")),
        };
        // Routes see the decoded number, and it must be one they can read.
        let user = String::from_utf8_lossy(&unescape(&user)).into_owned();
        if !user.is_empty() && !is_dialable_user(user.as_bytes()) {
            return Err(format!("target: '{target}' is not a dialable number"));
        }
        let bare_host = hostport_host(&host);
        let local = self.settings.is_local_host(bare_host);
        let routing = self.routing.clone();
        let fields = RequestFields {
            from_user: None,
            from_host: None,
            to_user: Some(&user),
            to_host: Some(bare_host),
            request_uri_user: Some(&user),
            request_uri_host: Some(bare_host),
            source: Some(SOURCE_EXTENSION),
            headers: &[],
        };
        if let Some(decision) = routing.routes.decide(&fields, &mut self.select) {
            return match decision.outcome {
                RouteOutcome::Reject { code, .. } => Err(format!(
                    "target: refused by route '{}' ({code})",
                    decision.route
                )),
                RouteOutcome::Forward { targets, .. } => {
                    let mut dial = user.clone();
                    for (key, value) in &decision.rewrites {
                        if matches!(key, MatchKey::RequestUriUser | MatchKey::ToUser) {
                            dial = value.clone();
                        }
                    }
                    for name in &targets {
                        let Some(trunk) = routing.trunks.by_name(name) else {
                            continue;
                        };
                        let (Some(uri), Some(dest)) = (
                            trunk.request_uri(&escape_user(&dial)),
                            trunk.dest_host_port().and_then(parse_host_port),
                        ) else {
                            continue;
                        };
                        let Ok(permit) = trunk.try_start_call(now.mono_ms) else {
                            continue;
                        };
                        return Ok(Target {
                            to: Some(format!("<{uri}>")),
                            uri,
                            dest,
                            credentials: (!trunk.username.is_empty())
                                .then(|| (trunk.username.clone(), trunk.password.clone())),
                            permit: Some(permit),
                        });
                    }
                    Err(format!(
                        "target: no trunk of route '{}' can take the call",
                        decision.route
                    ))
                }
            };
        }
        if local {
            let bindings = self.local_bindings(&user, bare_host, now);
            return bindings
                .iter()
                .find_map(|b| binding_dest(b).map(|dest| (b.uri.clone(), dest)))
                .map(|(uri, dest)| {
                    let mut t = Target::new(uri, dest);
                    t.to = Some(format!("<{uri_text}>"));
                    t
                })
                .ok_or_else(|| format!("target: {user} has no registered contact"));
        }
        let dest: SocketAddr = parse_host_port(&host).ok_or_else(|| {
            format!("target: host '{host}' is not an IP address (no DNS on a shard)")
        })?;
        let mut t = Target::new(uri_text.clone(), dest);
        t.to = Some(format!("<{uri_text}>"));
        Ok(t)
    }
}

impl SipEndpoint {
    /// Click-to-dial: `from` is a local extension (rung first), `to` any
    /// target `resolve_target` takes.
    pub(super) fn originate(
        &mut self,
        now: Now,
        from: &str,
        to: &str,
    ) -> Result<String, CommandError> {
        let realm = self
            .settings
            .realms
            .first()
            .cloned()
            .unwrap_or_else(|| self.settings.sip_host.clone());
        let first = self
            .local_bindings(from, &realm, now)
            .iter()
            .find_map(|b| binding_dest(b).map(|dest| Target::new(b.uri.clone(), dest)))
            .ok_or_else(|| {
                CommandError::BadRequest(format!(
                    "from: extension {from} has no registered contact"
                ))
            })?;
        let target = self
            .resolve_target(now, to)
            .map_err(|e| CommandError::BadRequest(e.replacen("target:", "to:", 1)))?;
        let to_user = to
            .trim()
            .trim_start_matches("sips:")
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or(to)
            .to_string();
        let trunk = target.permit.as_ref().map(|_| "trunk".to_string());
        let direction = if trunk.is_some() {
            Direction::Outbound
        } else {
            Direction::Internal
        };
        let record = self.settings.record_all;
        let input = Input::Originate(Originate {
            first,
            from_user: from.to_string(),
            targets: vec![target],
            to_user,
            realm,
            direction,
            route: None,
            trunk: None,
            record,
        });
        match self.calls.handle(now, input, self.relay.as_mut()) {
            Handled::Originated(result) => result,
            _ => Err(CommandError::Unavailable("the call was not placed".into())),
        }
    }
}

/// The host of `host[:port]` / `[v6]:port`.
fn hostport_host(hp: &str) -> &str {
    if let Some(rest) = hp.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    hp.split(':').next().unwrap_or(hp)
}
