//! The SIP endpoint one shard runs, and the shard's root: [`SipEndpoint`]
//! holds the admission logic, the call engine ([`crate::call::CallEngine`],
//! which owns the call transactions) and the RTP relay side by side, and is
//! the runtime's `ShardLogic` (`root.rs`).
//!
//! What happens to each message it owns: malformed input gets 400 or is
//! dropped (counted), retransmissions get the cached answer, stateless
//! checks run, then OPTIONS and REGISTER are answered here; call-layer
//! messages go to the engine, which hands back what is not in a call of
//! its: new INVITEs go to `invite` (and from there to the router,
//! `router_calls`), BYE/CANCEL outside a dialog get 481.
//!
//! Who does what:
//! * `root`: the turn (parse once, owner shard, admission), control-core
//!   messages, deadlines, the relay's socket work, what leaves a turn.
//! * `digest` / `registration`: digest auth; REGISTER up to the store writer.
//! * `invite` / `router_calls` / `resolve`: new INVITEs, the HTTP router,
//!   REST call commands' targets and click-to-dial.
//! * `targets`: the one resolver from a route, a command target, a router
//!   target or a local AOR to legs (`Target`s), on `sip::Uri`.
//! * `pending` / `parked` / `remote_users`: every request held while
//!   something else answers (`Pending`: token, deadline, payload),
//!   their deadlines, and the remote user backend's questions.
//! * `stateless` / `txcache` / `identity`: checks before a transaction,
//!   retransmissions of stateless answers, who the caller is.
//! * `admission`: whether a new INVITE is taken or shed with a stateless
//!   503 (overload: the socket's backlog, the store writer's queue).
//!
//! Handlers get the request as a `Req` (time, parsed message, source) and
//! answer with `SipEndpoint::respond` (a `Reply`, sent as `Answer` says).

pub mod admission;
mod digest;
mod identity;
mod invite;
mod parked;
mod pending;
pub mod register;
mod registration;
mod remote_users;
mod resolve;
mod root;
mod router_calls;
pub mod settings;
pub mod stateless;
mod targets;
pub mod txcache;

use crate::transport::Peer;
use std::sync::Arc;

use crate::auth::{AuthConfig, Authenticator};
use crate::call::ids::IdGen;
use crate::call::{CallEngine, EngineConfig, Handled, Input};
use crate::cdr::Direction;
use crate::control_link::ControlSender;
use crate::media::relay::MediaRelay;
use crate::routing::{RoutingSnapshot, SelectState};
use crate::runtime::owner::call_id_hash;
use crate::runtime::{Output, ShardContext, ShardStats};
use crate::security::SourceGuard;
use crate::sip::{Message, Method, Writer};
use crate::time::Now;
use crate::transaction::TxId;

use parked::Parked;
use pending::Pending;
use registration::PendingRegister;
pub use settings::EndpointSettings;
use stateless::{ACCEPT, ALLOW, SUPPORTED};
use txcache::{tx_key, Seen, TxCache};

/// Completed transactions remembered per shard.
const TX_CACHE_CAPACITY: usize = 65_536;
/// Drops are logged at most this often per shard (ms).
const DROP_LOG_INTERVAL_MS: u64 = 10_000;
/// Why a shard's endpoint could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// `[proxy] digest_algorithms` names what the authenticator refuses.
    DigestAlgorithms(String),
    /// The OS gave no randomness for `what`.
    NoRandomness { what: &'static str, error: String },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::DigestAlgorithms(e) => write!(f, "proxy.digest_algorithms: {e}"),
            StartError::NoRandomness { what, error } => {
                write!(f, "no randomness from the OS for {what}: {error}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// One shard's SIP logic.
pub struct SipEndpoint {
    /// RTP loss already added to the shard's counter.
    /// The relay's counters as last added to the shard's stats.
    media_reported: crate::media::relay::RelayCounters,
    tx_evicted_reported: u64,
    /// `[proxy] acl_rules`, swapped by an AMI reload.
    acl: Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>,
    /// Bans and the flood limit of this shard.
    guard: SourceGuard,
    /// Whether new INVITEs are taken or shed (overload).
    admission: admission::Admission,
    ctx: ShardContext,
    settings: Arc<EndpointSettings>,
    control: ControlSender,
    auth: Authenticator,
    txs: TxCache,
    /// The calls (and their transactions).
    calls: CallEngine,
    /// The shard's RTP relay (None: media always end to end), lent to the
    /// engine for the calls that need it.
    relay: Option<MediaRelay>,
    /// The route and trunk tables; replaced whole when they are reloaded.
    routing: Arc<RoutingSnapshot>,
    select: SelectState,
    /// REGISTERs waiting for the store writer, by `ApplyBindings` token.
    registers: Pending<PendingRegister>,
    /// Remote (HTTP) user backends' answers this shard has.
    user_cache: crate::users::RemoteCache,
    /// Requests waiting for a webhook (a remote user backend, the HTTP
    /// router), by token; at most `[security] max_parked_requests`.
    parked: Pending<Parked>,
    /// Server transactions of `spam` calls, dropped silently at their
    /// deadline: until then they absorb the caller's retransmissions.
    spam: Pending<TxId>,
    /// When the caches were last swept and the relay's next upkeep (mono ms).
    last_housekeeping_ms: u64,
    next_media_ms: u64,
    buf: Vec<u8>,
    last_drop_log: u64,
    drops_since_log: u64,
}

impl SipEndpoint {
    pub fn new(
        ctx: ShardContext,
        settings: Arc<EndpointSettings>,
        control: ControlSender,
    ) -> Result<Self, StartError> {
        let auth = Authenticator::new(
            shard_nonce_key(&settings.nonce_key, ctx.id),
            AuthConfig {
                algorithms: settings.digest_algorithms.clone(),
                nonce_lifetime: settings.nonce_ttl_secs,
                ..AuthConfig::default()
            },
        )
        .map_err(|e| StartError::DigestAlgorithms(format!("{e:?}")))?;
        let ids = IdGen::from_os(ctx.id, ctx.shards).map_err(|e| StartError::NoRandomness {
            what: "SIP ids",
            error: e.to_string(),
        })?;
        let calls = CallEngine::new(
            EngineConfig {
                host: settings.sip_host.clone(),
                port: settings.sip_port,
                tcp_port: settings.sip_tcp_port,
                tls_port: settings.sip_tls_port,
                ws_port: settings.sip_ws_port,
                wss_port: settings.sip_wss_port,
                max_ring_ms: settings.max_ring_ms,
                server_name: settings.server_name.clone(),
                max_flow_bytes: settings.max_flow_bytes,
                max_forks: settings.max_forks.max(1),
            },
            ids,
        );
        let relay = settings
            .media
            .clone()
            .map(|cfg| {
                let mut seed = [0u8; 32];
                getrandom::getrandom(&mut seed).map_err(|e| StartError::NoRandomness {
                    what: "media ports",
                    error: e.to_string(),
                })?;
                Ok::<_, StartError>(MediaRelay::new(cfg, ctx.id, ctx.shards, seed))
            })
            .transpose()?;
        let routing = settings.routing.clone();
        let max_parked = settings.max_parked;
        Ok(SipEndpoint {
            media_reported: Default::default(),
            tx_evicted_reported: 0,
            acl: settings.acl.clone(),
            guard: SourceGuard::new(&settings.security),
            admission: admission::Admission::new(settings.admission),
            ctx,
            settings,
            control,
            auth,
            txs: TxCache::new(TX_CACHE_CAPACITY),
            calls,
            relay,
            routing,
            select: SelectState::new(),
            registers: Pending::unbounded(),
            user_cache: Default::default(),
            parked: Pending::bounded(max_parked),
            spam: Pending::unbounded(),
            last_housekeeping_ms: 0,
            next_media_ms: 0,
            buf: Vec::with_capacity(2048),
            last_drop_log: 0,
            drops_since_log: 0,
        })
    }

    fn stats(&self) -> &ShardStats {
        &self.ctx.stats
    }

    /// Counts a dropped message; logs once per interval.
    fn drop_message(&mut self, now: Now, src: Peer, why: &str) {
        ShardStats::add(&self.ctx.stats.dropped, 1);
        self.drops_since_log += 1;
        if now.mono_ms >= self.last_drop_log + DROP_LOG_INTERVAL_MS || self.last_drop_log == 0 {
            tracing::warn!(shard = self.ctx.id, %src, dropped = self.drops_since_log, "dropped SIP message: {why}");
            self.last_drop_log = now.mono_ms.max(1);
            self.drops_since_log = 0;
        }
    }

    /// Sends a final (or provisional) response to the request: through its
    /// server transaction, or statelessly remembering finals under a cache key.
    fn respond(
        &mut self,
        req: Req<'_, '_>,
        answer: Answer<'_>,
        reply: Reply<'_>,
        out: &mut Output,
    ) {
        let Req { now, msg, src } = req;
        let code = reply.code;
        let tag = to_tag(msg);
        let mut w = Writer::response_to(
            &mut self.buf,
            msg,
            code,
            reply.reason,
            Some(&tag),
            Some(src.addr),
        );
        w.header("Server", &self.settings.server_name);
        for (name, value) in reply.headers {
            w.header(name, value);
        }
        w.finish(b"");
        match answer {
            Answer::Tx(tx) => {
                let input = Input::Answer {
                    tx,
                    response: &self.buf,
                };
                self.calls.handle(now, input, self.relay.as_mut());
                self.flush_calls(out);
            }
            Answer::Cached(key) => {
                // UDP responses go back where the request came from (RFC 3581
                // symmetric response); the top Via carries received/rport.
                out.send(src, &self.buf);
                if code >= 200 {
                    self.txs.answered(now.mono_ms, key, &self.buf, src);
                }
            }
            Answer::Stateless => out.send(src, &self.buf),
        }
        if code == 400 {
            ShardStats::add(&self.ctx.stats.bad_requests, 1);
        }
    }

    /// One message this shard owns, parsed and checked once (in
    /// `on_datagram`; `checked` is what [`Message::check_and_keep`] said).
    fn handle(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        checked: Result<(), crate::sip::ParseError>,
        src: Peer,
        out: &mut Output,
    ) {
        if !msg.is_request() {
            if checked.is_err() {
                ShardStats::add(&self.ctx.stats.parse_errors, 1);
                self.drop_message(now, src, "malformed response");
                return;
            }
            let input = Input::Sip { msg, src };
            match self.calls.handle(now, input, self.relay.as_mut()) {
                Handled::WrongSource => {
                    ShardStats::add(&self.ctx.stats.sip_spoofed_responses, 1);
                    self.drop_message(
                        now,
                        src,
                        "response from another address than its request went to",
                    );
                }
                Handled::Stray => {
                    self.drop_message(now, src, "response without a client transaction");
                }
                _ => {}
            }
            self.flush_calls(out);
            return;
        }
        if !(self.acl)(src.ip()) {
            self.drop_message(now, src, "source denied by proxy.acl_rules");
            return;
        }
        if let Err(e) = checked {
            ShardStats::add(&self.ctx.stats.parse_errors, 1);
            match e.status() {
                Some(code) => {
                    let warning = format!("399 shardpbx \"{}\"", e.to_string().replace('"', "'"));
                    self.respond(
                        Req::new(now, msg, src),
                        Answer::Stateless,
                        Reply::new(code).headers(&[("Warning", warning)]),
                        out,
                    );
                }
                None => self.drop_message(now, src, &e.to_string()),
            }
            return;
        }
        let Some(method) = msg.method() else { return };
        if self.is_call_request(msg, &method) {
            self.handle_call_request(now, msg, &method, src, out);
            self.flush_calls(out);
            return;
        }
        let key = tx_key(msg, &method);
        match self.txs.check(now.mono_ms, &key) {
            Seen::New => {}
            Seen::Pending => {
                ShardStats::add(&self.ctx.stats.retransmissions, 1);
                return;
            }
            Seen::Answered(bytes, dst) => {
                ShardStats::add(&self.ctx.stats.retransmissions, 1);
                out.send(dst, bytes);
                return;
            }
        }
        if matches!(method, Method::Ack) {
            // ACK of a non-2xx final we sent: absorbed by the transaction.
            self.txs.forget(&key);
            return;
        }
        if let Some(reject) = stateless::inspect(msg) {
            self.respond(
                Req::new(now, msg, src),
                Answer::Cached(&key),
                Reply::new(reject.code).headers(&reject.headers),
                out,
            );
            return;
        }
        match method {
            Method::Options => {
                ShardStats::add(&self.ctx.stats.options, 1);
                let headers = [
                    ("Allow", ALLOW.to_string()),
                    ("Accept", ACCEPT.to_string()),
                    ("Supported", SUPPORTED.to_string()),
                ];
                self.respond(
                    Req::new(now, msg, src),
                    Answer::Cached(&key),
                    Reply::new(200).headers(&headers),
                    out,
                );
            }
            Method::Register => self.on_register(Req::new(now, msg, src), key, out),
            _ => self.respond(
                Req::new(now, msg, src),
                Answer::Cached(&key),
                Reply::new(405).headers(&[("Allow", ALLOW.to_string())]),
                out,
            ),
        }
    }

    /// Requests the call layer (transactions + B2BUA) handles: INVITE, ACK,
    /// CANCEL, BYE, and anything inside a dialog of ours.
    fn is_call_request(&self, msg: &Message<'_>, method: &Method<'_>) -> bool {
        match method {
            Method::Invite | Method::Ack | Method::Cancel | Method::Bye => true,
            Method::Register | Method::Options => {
                msg.call_id().is_some_and(|c| self.calls.knows_call_id(c))
            }
            _ => msg.to().is_ok_and(|t| t.tag().is_some()),
        }
    }

    fn handle_call_request(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        method: &Method<'_>,
        src: Peer,
        out: &mut Output,
    ) {
        let req = Req::new(now, msg, src);
        // A new INVITE without credentials is challenged before it costs a
        // transaction: one 407 per INVITE, nothing retransmitted toward an
        // address that may be spoofed.
        if matches!(method, Method::Invite)
            && msg.to().is_ok_and(|t| t.tag().is_none())
            && self.challenge_statelessly(req, out)
        {
            return;
        }
        let input = Input::Sip { msg, src };
        let handled = self.calls.handle(now, input, self.relay.as_mut());
        self.flush_calls(out);
        let tx = match handled {
            Handled::Request(tx) => tx,
            Handled::NoDialog(tx) => {
                self.respond(req, Answer::Tx(tx), Reply::new(481), out);
                return;
            }
            Handled::Retransmission { invite } => {
                ShardStats::add(&self.ctx.stats.retransmissions, u64::from(invite));
                return;
            }
            Handled::Full => {
                self.respond(
                    req,
                    Answer::Stateless,
                    Reply::new(503)
                        .reason("Busy")
                        .headers(&[("Retry-After", "5".into())]),
                    out,
                );
                return;
            }
            Handled::Invalid => {
                self.respond(req, Answer::Stateless, Reply::new(400), out);
                return;
            }
            _ => return,
        };
        if matches!(method, Method::Cancel) {
            // A CANCEL for no call of ours. An INVITE still waiting for the
            // router or the user backend: 487 for it, 200 here; any other: 200.
            let code = match self.calls.cancel_target_of(tx) {
                Some(invite) => {
                    self.cancel_parked_invite(now, invite, out);
                    200
                }
                None => 481,
            };
            self.respond(req, Answer::Tx(tx), Reply::new(code), out);
            return;
        }
        if !matches!(method, Method::Invite) {
            // BYE (or another request) outside any dialog.
            self.respond(req, Answer::Tx(tx), Reply::new(481), out);
            return;
        }
        if self.looped(msg) {
            self.respond(req, Answer::Tx(tx), Reply::new(482), out);
            return;
        }
        if self.call_id_taken(msg) {
            // A new INVITE may not reuse the Call-ID of a call we have or had:
            // it would take over that call's dialog, flow and record.
            self.respond(
                req,
                Answer::Tx(tx),
                Reply::new(482).reason("Call-ID In Use"),
                out,
            );
            return;
        }
        if let Some(reject) = stateless::inspect(msg) {
            self.respond(
                req,
                Answer::Tx(tx),
                Reply::new(reject.code).headers(&reject.headers),
                out,
            );
            return;
        }
        self.on_invite(req, tx, out);
    }

    /// Loop detection (RFC 3261 16.3 step 4): an INVITE that already went
    /// through us carries a Via we wrote.
    pub(super) fn looped(&self, msg: &Message<'_>) -> bool {
        let ours = crate::sip::Host::parse(&self.settings.sip_host).ok();
        msg.vias().filter_map(Result::ok).any(|v| {
            (v.port_or_default() == self.settings.sip_port
                || v.port_or_default() == self.settings.sip_tcp_port
                || v.port_or_default() == self.settings.sip_tls_port
                || v.port_or_default() == self.settings.sip_ws_port
                || v.port_or_default() == self.settings.sip_wss_port)
                && ours.is_some_and(|h| same_host(h, v.host))
                && v.branch().is_some_and(|b| {
                    b.starts_with(crate::call::ids::BRANCH_PREFIX)
                        && b.as_bytes().get(7) == Some(&b'-')
                })
        })
    }

    /// Whether a new INVITE's Call-ID belongs to a live or finished call.
    pub(super) fn call_id_taken(&self, msg: &Message<'_>) -> bool {
        let Some(cid) = msg.call_id() else {
            return false;
        };
        self.calls.had_call_id(cid)
            || self
                .settings
                .store
                .as_ref()
                .is_some_and(|s| s.cdr_exists(cid).unwrap_or(false))
    }

    /// The target resolver over this shard's settings and routing tables.
    fn resolver(&self, now: Now) -> targets::Resolver<'_> {
        targets::Resolver {
            settings: &self.settings,
            routing: &self.routing,
            now,
        }
    }
}

/// The request being handled, parsed once: when it is handled, the message
/// and where it came from. Passed down instead of `(now, msg, src)`.
#[derive(Clone, Copy)]
struct Req<'r, 'm> {
    now: Now,
    msg: &'r Message<'m>,
    src: Peer,
}

impl<'r, 'm> Req<'r, 'm> {
    fn new(now: Now, msg: &'r Message<'m>, src: Peer) -> Self {
        Req { now, msg, src }
    }
}

/// A response to send: status code, reason phrase (the default one when
/// `None`) and extra header lines.
#[derive(Clone, Copy)]
struct Reply<'h> {
    code: u16,
    reason: Option<&'h str>,
    headers: &'h [(&'h str, String)],
}

impl<'h> Reply<'h> {
    /// `code` with its default reason phrase and no extra headers.
    fn new(code: u16) -> Self {
        Reply {
            code,
            reason: None,
            headers: &[],
        }
    }

    fn reason(self, reason: &'h str) -> Self {
        Reply {
            reason: Some(reason),
            ..self
        }
    }

    /// The reason phrase when there is one.
    fn maybe_reason(self, reason: Option<&'h str>) -> Self {
        Reply { reason, ..self }
    }

    fn headers(self, headers: &'h [(&'h str, String)]) -> Self {
        Reply { headers, ..self }
    }
}

/// How a response is sent.
#[derive(Clone, Copy)]
enum Answer<'k> {
    /// Through this server transaction.
    Tx(TxId),
    /// Statelessly, remembered under this key for retransmissions.
    Cached(&'k [u8]),
    /// Statelessly, not remembered.
    Stateless,
}

/// A call's direction (API.md 2.1): from a trunk, or from an extension to
/// a local user or elsewhere.
fn direction_of(from_trunk: bool, to_local: bool) -> Direction {
    match (from_trunk, to_local) {
        (true, _) => Direction::Inbound,
        (false, true) => Direction::Internal,
        (false, false) => Direction::Outbound,
    }
}

/// A CRLF keep-alive (RFC 5626 3.5.1) or empty datagram: not an error.
pub(super) fn is_keepalive(data: &[u8]) -> bool {
    data.iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

/// Our To tag for a request: stable per transaction, so a retransmission
/// answered after the cache forgot it still carries the same tag.
fn to_tag(msg: &Message<'_>) -> String {
    let mut h = call_id_hash(msg.call_id().unwrap_or_default().as_bytes());
    if let Ok(from) = msg.from() {
        h ^= call_id_hash(from.tag().unwrap_or_default().as_bytes()).rotate_left(17);
    }
    if let Ok(cseq) = msg.cseq() {
        h ^= u64::from(cseq.seq).rotate_left(40);
    }
    format!("sp{h:016x}")
}

#[cfg(test)]
mod tests;

/// Whether two hosts are the same: names without regard to case, addresses
/// by value.
fn same_host(a: crate::sip::Host<'_>, b: crate::sip::Host<'_>) -> bool {
    use crate::sip::Host;
    match (a, b) {
        (Host::Name(x), Host::Name(y)) => x.eq_ignore_ascii_case(y),
        _ => a.ip().is_some() && a.ip() == b.ip(),
    }
}

/// This shard's nonce key: derived from the process's, so a nonce is only
/// accepted by the shard that issued it. Each shard's nonce-count table then
/// sees every use of its nonces, wherever a REGISTER arrives (a stream's
/// REGISTER is answered on the connection's shard, not handed to its
/// Call-ID's owner): replay protection without shared state.
fn shard_nonce_key(key: &[u8; 32], shard: usize) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return *key;
    };
    mac.update(b"shardpbx nonce key, shard ");
    mac.update(&(shard as u64).to_be_bytes());
    mac.finalize().into_bytes().into()
}
