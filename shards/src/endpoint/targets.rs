//! Where a call goes, as [`Target`]s, built on [`sip::Uri`](crate::sip::Uri):
//! the one place that turns a static route's trunks, a REST command's target
//! (a transfer's `target`, a click-to-dial's `to`), an HTTP router's target
//! URI and a local AOR's bindings into legs to ring. Host names are not
//! resolved on a shard: a destination must be an IP address (port 5060 when
//! none is given). Reads the store's bindings; sends nothing.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::EndpointSettings;
use crate::call::Target;
use crate::media::secure::SrtpPolicy;
use crate::registrar::Binding;
use crate::routing::{
    Decision, MatchKey, Outcome, RequestFields, RoutingSnapshot, SelectState, Trunk,
    SOURCE_EXTENSION,
};
use crate::sip::{escape_user, is_dialable_user, unescape, Host, Message, Scheme, Uri};
use crate::store::StoreError;
use crate::time::Now;
use crate::transport::{Link, Peer, StreamKind};

/// Port of a destination that names none (UDP, whatever the scheme).
const DEFAULT_PORT: u16 = 5060;

/// What the resolver reads: settings (realms, our port, the store),
/// the routing tables, and the time.
pub(super) struct Resolver<'a> {
    pub(super) settings: &'a EndpointSettings,
    pub(super) routing: &'a RoutingSnapshot,
    pub(super) now: Now,
}

/// The trunks of a route's `forward` that can take a call now.
#[derive(Default)]
pub(super) struct TrunkTargets {
    /// One per usable trunk, in the route's order, each holding its permit.
    pub(super) targets: Vec<Target>,
    /// A trunk was skipped for its `max_calls` / `max_cps`.
    pub(super) limited: bool,
    /// The first trunk that took the call (CDR `sipTrunkId`).
    pub(super) trunk: Option<String>,
}

/// Why a REST command's target rings nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetError {
    /// Neither a number nor a `sip:`/`sips:` URI.
    Unreadable(String),
    /// A user the dial plan cannot read.
    NotDialable(String),
    /// A route rejects it: (route, status).
    Refused(String, u16),
    /// The route's trunks are all unusable (limits, no IP address).
    NoTrunk(String),
    /// A local user without a registered contact.
    NotRegistered(String),
    /// A host that is not an IP address.
    NotAnAddress(String),
}

impl TargetError {
    /// The message, naming the request field the target came from.
    pub(crate) fn describe(&self, field: &str) -> String {
        match self {
            TargetError::Unreadable(t) => {
                format!("{field}: '{t}' is not a number or a sip: URI")
            }
            TargetError::NotDialable(t) => format!("{field}: '{t}' is not a dialable number"),
            TargetError::Refused(route, code) => {
                format!("{field}: refused by route '{route}' ({code})")
            }
            TargetError::NoTrunk(route) => {
                format!("{field}: no trunk of route '{route}' can take the call")
            }
            TargetError::NotRegistered(user) => {
                format!("{field}: {user} has no registered contact")
            }
            TargetError::NotAnAddress(host) => {
                format!("{field}: host '{host}' is not an IP address (no DNS on a shard)")
            }
        }
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("target"))
    }
}

impl<'a> Resolver<'a> {
    /// The trunks of a `forward` route to `user` (as decoded; the route's
    /// user rewrite applies), each with a permit taken now. Trunks without
    /// an IP destination are skipped (logged), as are trunks at their limit.
    pub(super) fn route_trunks(&self, decision: &Decision, user: &str) -> TrunkTargets {
        let mut found = TrunkTargets::default();
        let Outcome::Forward { targets, .. } = &decision.outcome else {
            return found;
        };
        let dial = dial_user(decision, user);
        for name in targets {
            let Some(trunk) = self.routing.trunks.by_name(name) else {
                continue;
            };
            match self.trunk_target(trunk, &dial) {
                Ok(t) => {
                    found.trunk.get_or_insert_with(|| trunk.name.to_string());
                    found.targets.push(t);
                }
                Err(TrunkSkip::Limited) => found.limited = true,
                Err(TrunkSkip::NoAddress) => {
                    tracing::warn!(trunk = %trunk.name, "trunk destination is not an IP address; skipped (no DNS on a shard)");
                }
            }
        }
        found
    }

    /// One trunk's leg to `dial` (already rewritten, decoded), with a permit.
    fn trunk_target(&self, trunk: &Trunk, dial: &str) -> Result<Target, TrunkSkip> {
        let uri = trunk
            .request_uri(&escape_user(dial))
            .ok_or(TrunkSkip::NoAddress)?;
        let addr = trunk.dest_addr().ok_or(TrunkSkip::NoAddress)?;
        let dest = Peer {
            addr,
            link: match trunk.transport {
                crate::routing::Transport::Udp => Link::Udp,
                crate::routing::Transport::Tcp => Link::Dial(StreamKind::Tcp),
                crate::routing::Transport::Tls => Link::Dial(StreamKind::Tls),
            },
        };
        let permit = trunk
            .try_start_call(self.now.mono_ms)
            .map_err(|_| TrunkSkip::Limited)?;
        Ok(Target {
            uri,
            dest,
            credentials: (!trunk.username.is_empty())
                .then(|| (trunk.username.clone(), trunk.password.clone())),
            permit: Some(permit),
            to: None,
            trunk: Some(trunk.name.to_string()),
            srtp: trunk.srtp,
        })
    }

    /// The one leg a REST command's `target` rings: a number (at our first
    /// realm) or a `sip:`/`sips:` URI, through the static routes to the
    /// first trunk that takes it, else a local user's first registered
    /// contact, else the URI's IP address as given.
    pub(super) fn command_target(
        &self,
        target: &str,
        select: &mut SelectState,
    ) -> Result<Target, TargetError> {
        let target = target.trim();
        let unreadable = || TargetError::Unreadable(target.to_string());
        let is_sip = target.split_once(':').is_some_and(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
        });
        let number_uri;
        let (uri, text) = if is_sip {
            (Uri::parse(target).map_err(|_| unreadable())?, target)
        } else if !target.is_empty() && !target.contains(['@', ' ', '<']) {
            // A number: it must be one the dial plan can read (so it also
            // reads as the user of a URI).
            if !is_dialable_user(&unescape(target)) {
                return Err(TargetError::NotDialable(target.to_string()));
            }
            number_uri = format!("sip:{target}@{}", self.first_realm());
            let uri = Uri::parse(&number_uri)
                .map_err(|_| TargetError::NotDialable(target.to_string()))?;
            (uri, number_uri.as_str())
        } else {
            return Err(unreadable());
        };
        // Routes see the decoded number, and it must be one they can read.
        let user = uri
            .user_unescaped()
            .map(|u| String::from_utf8_lossy(&u).into_owned())
            .unwrap_or_default();
        if !user.is_empty() && !is_dialable_user(user.as_bytes()) {
            return Err(TargetError::NotDialable(target.to_string()));
        }
        let host = uri.host.map(bare_host).unwrap_or_default();
        let fields = RequestFields {
            from_user: None,
            from_host: None,
            to_user: Some(&user),
            to_host: Some(&host),
            request_uri_user: Some(&user),
            request_uri_host: Some(&host),
            source: Some(SOURCE_EXTENSION),
            headers: &[],
        };
        if let Some(decision) = self.routing.routes.decide(&fields, select) {
            let route = decision.route.to_string();
            return match &decision.outcome {
                Outcome::Reject { code, .. } => Err(TargetError::Refused(route, *code)),
                Outcome::Forward { targets, .. } => {
                    let dial = dial_user(&decision, &user);
                    targets
                        .iter()
                        .filter_map(|name| self.routing.trunks.by_name(name))
                        .find_map(|trunk| self.trunk_target(trunk, &dial).ok())
                        .map(|mut t| {
                            t.to = Some(format!("<{}>", t.uri));
                            t
                        })
                        .ok_or(TargetError::NoTrunk(route))
                }
            };
        }
        if self.settings.is_local_host(&host) {
            return self
                .first_binding(&user, &host)
                .map(|mut t| {
                    t.to = Some(format!("<{text}>"));
                    t
                })
                .ok_or(TargetError::NotRegistered(user));
        }
        let dest = socket_addr(&uri).ok_or_else(|| TargetError::NotAnAddress(host_port(&uri)))?;
        let mut t = Target::new(text.to_string(), dest.into());
        t.to = Some(format!("<{text}>"));
        Ok(t)
    }

    /// An HTTP router's target URI: a local AOR (our host, our port or
    /// none) rings every binding it has; another host is dialled as given.
    /// Returns the targets and whether a binding looks NATed.
    pub(super) fn router_target(&self, target: &str) -> (Vec<Target>, bool) {
        let target = target.trim();
        let uri = match Uri::parse(target) {
            Ok(u) if matches!(u.scheme, Scheme::Sip | Scheme::Sips) => u,
            _ => {
                tracing::debug!(target, "router target is not a sip: URI; skipped");
                return (Vec::new(), false);
            }
        };
        let to = format!("<{target}>");
        let host = uri.host.map(bare_host).unwrap_or_default();
        let user = uri.user.unwrap_or_default();
        // Our own address with another port is another server.
        let ours = uri.port.is_none_or(|p| p == self.settings.sip_port);
        if ours && self.settings.is_local_host(&host) && !user.is_empty() {
            let srtp = self.settings.srtp.of(user);
            let (mut targets, natted) = binding_targets(&self.local_bindings(user, &host), srtp);
            for t in &mut targets {
                t.to = Some(to.clone());
            }
            return (targets, natted);
        }
        match socket_addr(&uri) {
            Some(dest) => {
                let mut t = Target::new(target.to_string(), dest.into());
                t.to = Some(to);
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

    /// A local user's first live binding as a target (click-to-dial's
    /// first leg, a transfer to an extension).
    pub(super) fn first_binding(&self, user: &str, host: &str) -> Option<Target> {
        let srtp = self.settings.srtp.of(user);
        self.local_bindings(user, host)
            .iter()
            .find_map(|b| binding_target(b, srtp))
    }

    /// The stored live bindings of a local user: those under `host` first,
    /// else under any of our realms (they are aliases of one domain). None
    /// read when the store cannot be read just now (see
    /// [`Resolver::try_local_bindings`]).
    pub(super) fn local_bindings(&self, user: &str, host: &str) -> Vec<Binding> {
        self.try_local_bindings(user, host).unwrap_or_default()
    }

    /// [`Resolver::local_bindings`], or `Err` when the store could not be
    /// read (its writer is growing the map): "not known right now", which
    /// is not "not registered".
    pub(super) fn try_local_bindings(
        &self,
        user: &str,
        host: &str,
    ) -> Result<Vec<Binding>, StoreError> {
        let now = self.now.unix;
        let host_lc = host.to_ascii_lowercase();
        let mut bindings = Vec::new();
        if let Some(store) = &self.settings.store {
            let hosts = std::iter::once(host_lc.as_str())
                .chain(self.settings.realms.iter().map(String::as_str));
            for h in hosts {
                bindings = store.bindings(&format!("sip:{user}@{h}"))?;
                if bindings.iter().any(|b| b.expires_at > now) {
                    break;
                }
            }
        }
        bindings.retain(|b| b.expires_at > now);
        Ok(bindings)
    }

    /// The realm a bare number is dialled at: our first, else our host.
    pub(super) fn first_realm(&self) -> String {
        self.settings
            .realms
            .first()
            .cloned()
            .unwrap_or_else(|| self.settings.sip_host.clone())
    }
}

/// Why a trunk of a route takes no leg.
enum TrunkSkip {
    /// Its destination is a host name.
    NoAddress,
    /// Its `max_calls` / `max_cps` is reached.
    Limited,
}

/// The user a route dials: `user` unless the route rewrites the
/// Request-URI's or To's user.
fn dial_user(decision: &Decision, user: &str) -> String {
    decision
        .rewrites
        .iter()
        .rev()
        .find(|(key, _)| matches!(key, MatchKey::RequestUriUser | MatchKey::ToUser))
        .map_or_else(|| user.to_string(), |(_, value)| value.clone())
}

/// The host and (decoded) user of a request's Request-URI, empty when
/// there is none.
pub(super) fn dialled(msg: &Message<'_>) -> (String, String) {
    let ruri = msg.request_uri().ok();
    let host = ruri
        .and_then(|u| u.host.map(|h| h.to_string()))
        .unwrap_or_default();
    let user = ruri
        .and_then(|u| u.user_unescaped())
        .map(|u| String::from_utf8_lossy(&u).into_owned())
        .unwrap_or_default();
    (host, user)
}

/// A host as routes and local users see it: an IPv6 address without `[]`.
fn bare_host(host: Host<'_>) -> String {
    match host {
        Host::V6(a) => a.to_string(),
        h => h.to_string(),
    }
}

/// `host[:port]` of a URI, as written in messages.
fn host_port(uri: &Uri<'_>) -> String {
    let host = uri.host.map(|h| h.to_string()).unwrap_or_default();
    match uri.port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// Where a URI's requests go: its IP address and port (5060 when none);
/// `None` for a host name.
fn socket_addr(uri: &Uri<'_>) -> Option<SocketAddr> {
    let ip = uri.host?.ip()?;
    Some(SocketAddr::new(ip, uri.port.unwrap_or(DEFAULT_PORT)))
}

/// Live bindings of an extension whose SRTP policy is `srtp` as targets,
/// and whether one looks NATed.
pub(super) fn binding_targets(bindings: &[Binding], srtp: SrtpPolicy) -> (Vec<Target>, bool) {
    let natted = bindings.iter().any(binding_natted);
    let targets = bindings
        .iter()
        .filter_map(|b| binding_target(b, srtp))
        .collect();
    (targets, natted)
}

/// A binding of an extension whose SRTP policy is `srtp` as a target.
fn binding_target(b: &Binding, srtp: SrtpPolicy) -> Option<Target> {
    let dest = binding_dest(b)?;
    Some(Target {
        srtp,
        ..Target::new(b.uri.clone(), dest)
    })
}

/// A binding registered from behind NAT: its Contact names an IP that is
/// not the one its REGISTER came from.
fn binding_natted(b: &Binding) -> bool {
    let Ok(source) = b.source.parse::<SocketAddr>() else {
        return false;
    };
    contact_ip(b).is_some_and(|ip| ip != source.ip())
}

/// The IP address a binding's Contact names, if it names one.
fn contact_ip(b: &Binding) -> Option<IpAddr> {
    Uri::parse(&b.uri).ok()?.host?.ip()
}

/// Where a call to a binding goes: its Contact's address when that is the
/// address the REGISTER came from or a public one; the source address when
/// the Contact names a private address other than the source (the phone is
/// behind NAT) or a host name (no DNS on a shard).
pub(super) fn binding_dest(b: &Binding) -> Option<Peer> {
    let source: SocketAddr = b.source.parse().ok()?;
    if let Some(conn) = b.conn {
        // Over the very connection it registered on, whatever its
        // Contact says (RFC 5626 section 5.3, RFC 5923).
        let kind = StreamKind::from_token(&b.transport).unwrap_or(StreamKind::Tcp);
        return Some(Peer::stream(source, conn, kind));
    }
    udp_binding_dest(b, source).map(Peer::udp)
}

fn udp_binding_dest(b: &Binding, source: SocketAddr) -> Option<SocketAddr> {
    let Ok(uri) = Uri::parse(&b.uri) else {
        return Some(source);
    };
    let Some(ip) = uri.host.and_then(|h| h.ip()) else {
        return Some(source);
    };
    if ip == source.ip() || !crate::addr::contact_behind_nat(ip) {
        Some(SocketAddr::new(ip, uri.port.unwrap_or(DEFAULT_PORT)))
    } else {
        Some(source)
    }
}

#[cfg(test)]
#[path = "targets_tests.rs"]
mod tests;
