//! The SIP endpoint one shard runs: what happens to each message it owns.
//! Malformed input gets 400 or is dropped (counted), retransmissions get the
//! cached answer, stateless checks run, then OPTIONS and REGISTER are
//! answered here; new INVITEs go to `invite` (and from there to the router,
//! `router_calls`), BYE/CANCEL outside a dialog get 481. Requests that wait
//! for a remote user backend are parked in `remote_users`.

mod identity;
mod invite;
pub mod register;
mod remote_users;
mod resolve;
mod router_calls;
pub mod settings;
pub mod stateless;
pub mod txcache;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::{credentials_for_realm, AuthConfig, AuthOutcome, Authenticator, Step};
use crate::call::engine::{CallEngine, EngineConfig, Target};
use crate::call::ids::IdGen;
use crate::control_link::{ControlRequest, ControlSender};
use crate::media::relay::{MediaInput, MediaOutput, SocketOp};
use crate::registrar::ChangeError;
use crate::routing::{RoutingSnapshot, SelectState};
use crate::runtime::inbox::CallCommand;
use crate::runtime::owner::{call_id_hash, owner_of};
use crate::runtime::{
    Output, RegisterFailure, ShardContext, ShardGauges, ShardLogic, ShardMsg, ShardStats,
};
use crate::security::{SourceGuard, Verdict};
use crate::sip::{HeaderName, Message, Method, Writer};
use crate::time::Now;
use crate::transaction::{self, Action, Event, Received, TransactionTable, TxId};

use register::RegisterStep;
pub use settings::EndpointSettings;
use stateless::{ACCEPT, ALLOW, SUPPORTED};
use txcache::{Seen, TxCache};

/// Completed transactions remembered per shard.
const TX_CACHE_CAPACITY: usize = 65_536;
/// Drops are logged at most this often per shard (ms).
const DROP_LOG_INTERVAL_MS: u64 = 10_000;

/// A REGISTER waiting for the store writer.
struct PendingRegister {
    request: Vec<u8>,
    src: SocketAddr,
    key: Vec<u8>,
}

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
    ctx: ShardContext,
    settings: Arc<EndpointSettings>,
    control: ControlSender,
    auth: Authenticator,
    txs: TxCache,
    /// RFC 3261 transactions of calls (INVITE, ACK, CANCEL, BYE, in-dialog).
    table: TransactionTable,
    calls: CallEngine,
    actions: Vec<Action>,
    /// Transactions whose timer B/F/H/L fired, for the call layer.
    timeouts: Vec<TxId>,
    /// The route and trunk tables; replaced whole when they are reloaded.
    routing: Arc<RoutingSnapshot>,
    select: SelectState,
    pending: HashMap<u64, PendingRegister>,
    /// Remote (HTTP) user backends' answers this shard has.
    user_cache: crate::users::RemoteCache,
    /// Requests waiting for a remote backend's answer, by question.
    parked: HashMap<crate::users::RemoteKey, Vec<remote_users::Parked>>,
    /// INVITEs waiting for the HTTP router, by token.
    parked_routes: HashMap<u64, router_calls::ParkedInvite>,
    /// Server transactions of `spam` calls, dropped silently at this time
    /// (ms): until then they absorb the caller's retransmissions.
    spam: Vec<(TxId, u64)>,
    next_token: u64,
    buf: Vec<u8>,
    last_drop_log: u64,
    drops_since_log: u64,
}

impl SipEndpoint {
    pub fn new(
        ctx: ShardContext,
        settings: Arc<EndpointSettings>,
        control: ControlSender,
    ) -> Result<Self, String> {
        let auth = Authenticator::new(
            settings.nonce_key,
            AuthConfig {
                algorithms: settings.digest_algorithms.clone(),
                nonce_lifetime: settings.nonce_ttl_secs,
                ..AuthConfig::default()
            },
        )
        .map_err(|e| format!("proxy.digest_algorithms: {e:?}"))?;
        let ids = IdGen::from_os(ctx.id, ctx.shards)
            .map_err(|e| format!("no randomness from the OS for SIP ids: {e}"))?;
        let calls = CallEngine::new(
            EngineConfig {
                host: settings.sip_host.clone(),
                port: settings.sip_port,
                max_ring_ms: settings.max_ring_ms,
                server_name: settings.server_name.clone(),
                max_flow_bytes: settings.max_flow_bytes,
                max_forks: settings.max_forks.max(1),
            },
            ids,
        );
        let mut calls = calls;
        calls.media = settings
            .media
            .clone()
            .map(|cfg| {
                let mut seed = [0u8; 32];
                getrandom::getrandom(&mut seed)
                    .map_err(|e| format!("no randomness from the OS for media ports: {e}"))?;
                Ok::<_, String>(crate::media::relay::MediaRelay::new(
                    cfg, ctx.id, ctx.shards, seed,
                ))
            })
            .transpose()?;
        let routing = settings.routing.clone();
        Ok(SipEndpoint {
            media_reported: Default::default(),
            tx_evicted_reported: 0,
            acl: settings.acl.clone(),
            guard: SourceGuard::new(&settings.security),
            ctx,
            settings,
            control,
            auth,
            txs: TxCache::new(TX_CACHE_CAPACITY),
            table: TransactionTable::new(transaction::Config::default()),
            calls,
            actions: Vec::new(),
            timeouts: Vec::new(),
            routing,
            select: SelectState::new(),
            pending: HashMap::new(),
            user_cache: Default::default(),
            parked: HashMap::new(),
            parked_routes: HashMap::new(),
            spam: Vec::new(),
            next_token: 1,
            buf: Vec::with_capacity(2048),
            last_drop_log: 0,
            drops_since_log: 0,
        })
    }

    fn stats(&self) -> &ShardStats {
        &self.ctx.stats
    }

    /// Requests waiting for a webhook's answer (user backend, router).
    pub(super) fn parked_count(&self) -> usize {
        self.parked.values().map(Vec::len).sum::<usize>() + self.parked_routes.len()
    }

    /// Tells the ban book a digest failed from `src` (not for trusted ones).
    fn report_auth_failure(&self, src: SocketAddr) {
        let Some(tx) = &self.settings.security.auth_failures else {
            return;
        };
        if !self.guard.is_trusted(src) && tx.try_send(src.ip()).is_ok() {
            ShardStats::add(&self.ctx.stats.auth_failures_reported, 1);
        }
    }

    /// Counts a dropped message; logs once per interval.
    fn drop_message(&mut self, now: Now, src: SocketAddr, why: &str) {
        ShardStats::add(&self.ctx.stats.dropped, 1);
        self.drops_since_log += 1;
        if now.mono_ms >= self.last_drop_log + DROP_LOG_INTERVAL_MS || self.last_drop_log == 0 {
            tracing::warn!(shard = self.ctx.id, %src, dropped = self.drops_since_log, "dropped SIP message: {why}");
            self.last_drop_log = now.mono_ms.max(1);
            self.drops_since_log = 0;
        }
    }

    /// Sends a final (or provisional) response to `msg`: through its server
    /// transaction, or statelessly remembering finals under a cache key.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        code: u16,
        reason: Option<&str>,
        headers: &[(&str, String)],
        answer: Answer<'_>,
        out: &mut Output,
    ) {
        let tag = to_tag(msg);
        let mut w = Writer::response_to(&mut self.buf, msg, code, reason, Some(&tag), Some(src));
        w.header("Server", &self.settings.server_name);
        for (name, value) in headers {
            w.header(name, value);
        }
        w.finish(b"");
        match answer {
            Answer::Tx(tx) => {
                let _ = self
                    .table
                    .respond(now.mono_ms, tx, &self.buf, &mut self.actions);
            }
            Answer::Cached(key) => {
                // UDP responses go back where the request came from (RFC 3581
                // symmetric response); the top Via carries received/rport.
                out.sends.push(src, &self.buf);
                if code >= 200 {
                    self.txs.answered(now.mono_ms, key, &self.buf, src);
                }
            }
            Answer::Stateless => out.sends.push(src, &self.buf),
        }
        if code == 400 {
            ShardStats::add(&self.ctx.stats.bad_requests, 1);
        }
    }

    fn handle(&mut self, now: Now, data: &[u8], src: SocketAddr, out: &mut Output) {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                if !is_keepalive(data) {
                    ShardStats::add(&self.ctx.stats.parse_errors, 1);
                    self.drop_message(now, src, &e.to_string());
                }
                return;
            }
        };
        if !msg.is_request() {
            if msg.check().is_err() {
                ShardStats::add(&self.ctx.stats.parse_errors, 1);
                self.drop_message(now, src, "malformed response");
                return;
            }
            self.calls.capture(now.unix_ms, true, src, data);
            match self
                .table
                .receive(now.mono_ms, &msg, src, false, &mut self.actions)
            {
                Received::Response(tx) => {
                    self.calls
                        .on_response(now, &mut self.table, tx, &msg, &mut self.actions);
                }
                Received::Absorbed => {}
                Received::WrongSource => {
                    ShardStats::add(&self.ctx.stats.sip_spoofed_responses, 1);
                    self.drop_message(
                        now,
                        src,
                        "response from another address than its request went to",
                    );
                }
                _ => self.drop_message(now, src, "response without a client transaction"),
            }
            self.flush_calls(out);
            return;
        }
        if !(self.acl)(src.ip()) {
            self.drop_message(now, src, "source denied by proxy.acl_rules");
            return;
        }
        if let Err(e) = msg.check() {
            ShardStats::add(&self.ctx.stats.parse_errors, 1);
            match e.status() {
                Some(code) => {
                    let warning = format!("399 shardpbx \"{}\"", e.to_string().replace('"', "'"));
                    self.respond(
                        now,
                        &msg,
                        src,
                        code,
                        None,
                        &[("Warning", warning)],
                        Answer::Stateless,
                        out,
                    );
                }
                None => self.drop_message(now, src, &e.to_string()),
            }
            return;
        }
        let Some(method) = msg.method() else { return };
        if self.is_call_request(&msg, &method) {
            self.calls.capture(now.unix_ms, true, src, data);
            self.handle_call_request(now, &msg, &method, src, out);
            self.flush_calls(out);
            return;
        }
        let key = tx_key(&msg, &method);
        match self.txs.check(now.mono_ms, &key) {
            Seen::New => {}
            Seen::Pending => {
                ShardStats::add(&self.ctx.stats.retransmissions, 1);
                return;
            }
            Seen::Answered(bytes, dst) => {
                ShardStats::add(&self.ctx.stats.retransmissions, 1);
                out.sends.push(dst, bytes);
                return;
            }
        }
        if matches!(method, Method::Ack) {
            // ACK of a non-2xx final we sent: absorbed by the transaction.
            self.txs.forget(&key);
            return;
        }
        if let Some(reject) = stateless::inspect(&msg) {
            self.respond(
                now,
                &msg,
                src,
                reject.code,
                None,
                &reject.headers,
                Answer::Cached(&key),
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
                    now,
                    &msg,
                    src,
                    200,
                    None,
                    &headers,
                    Answer::Cached(&key),
                    out,
                );
            }
            Method::Register => self.on_register(now, &msg, data, src, key, out),
            _ => self.respond(
                now,
                &msg,
                src,
                405,
                None,
                &[("Allow", ALLOW.to_string())],
                Answer::Cached(&key),
                out,
            ),
        }
    }

    /// Digest auth for REGISTER (401) and INVITE (407).
    fn authenticate(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        realm: &str,
        proxy: bool,
    ) -> remote_users::Authn {
        use crate::users::Lookup;
        use remote_users::Authn;
        let header = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let values: Vec<&str> = msg.headers_named(header).map(|h| h.raw_value).collect();
        let value =
            credentials_for_realm(values.iter().copied(), realm).or(values.first().copied());
        let binding = msg.call_id().unwrap_or_default();
        let method = msg.method().map(|m| m.as_str()).unwrap_or_default();
        let pending = match self.auth.begin(now.unix, value, realm, binding) {
            Step::Done(outcome) => return Authn::Outcome(outcome),
            Step::Lookup(pending) => pending,
        };
        let record =
            match self
                .settings
                .users
                .resolve(pending.username(), realm, &self.user_cache, now.unix)
            {
                Lookup::Found(r) => Some(r),
                Lookup::Unknown => None,
                Lookup::Forbidden(reason) => return Authn::Refused(403, reason),
                Lookup::Unavailable => {
                    return Authn::Refused(503, "User Backend Unavailable".into())
                }
                Lookup::Pending(key) => return Authn::Pending(key),
            };
        Authn::Outcome(self.auth.finish(
            now.unix,
            method,
            pending,
            record.as_ref().map(|r| r.secret()),
        ))
    }

    /// Answers an auth outcome that is not Ok; returns the username when Ok.
    /// A request that waits for a remote user backend is parked (and
    /// handled again once the answer is in).
    #[allow(clippy::too_many_arguments)]
    fn require_auth(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        realm: &str,
        proxy: bool,
        answer: Answer<'_>,
        out: &mut Output,
    ) -> Option<String> {
        let outcome = match self.authenticate(now, msg, realm, proxy) {
            remote_users::Authn::Outcome(o) => o,
            remote_users::Authn::Refused(code, reason) => {
                ShardStats::add(&self.ctx.stats.auth_failures, 1);
                let extra: Vec<(&str, String)> = if code == 503 {
                    vec![("Retry-After", "5".into())]
                } else {
                    Vec::new()
                };
                self.respond(now, msg, src, code, Some(&reason), &extra, answer, out);
                return None;
            }
            remote_users::Authn::Pending(key) => {
                self.park(now, msg, src, answer, key, out);
                return None;
            }
        };
        match outcome {
            AuthOutcome::Ok { username, .. } => Some(username),
            AuthOutcome::Challenge { stale, .. } => {
                ShardStats::add(&self.ctx.stats.auth_challenges, 1);
                // A challenge is stateless: nothing is kept for it (a
                // retransmitted request gets a fresh one).
                let answer = match answer {
                    Answer::Cached(key) => {
                        self.txs.forget(key);
                        Answer::Stateless
                    }
                    other => other,
                };
                let binding = msg.call_id().unwrap_or_default().to_string();
                let name = if proxy {
                    "Proxy-Authenticate"
                } else {
                    "WWW-Authenticate"
                };
                let headers: Vec<(&str, String)> = self
                    .auth
                    .challenge_headers(now.unix, realm, &binding, stale)
                    .into_iter()
                    .map(|v| (name, v))
                    .collect();
                let code = if proxy { 407 } else { 401 };
                self.respond(now, msg, src, code, None, &headers, answer, out);
                None
            }
            // Unknown user, wrong password and replays look the same.
            AuthOutcome::Failed { .. } | AuthOutcome::Replay { .. } => {
                ShardStats::add(&self.ctx.stats.auth_failures, 1);
                self.report_auth_failure(src);
                self.respond(now, msg, src, 403, None, &[], answer, out);
                None
            }
        }
    }

    fn on_register(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        data: &[u8],
        src: SocketAddr,
        key: Vec<u8>,
        out: &mut Output,
    ) {
        ShardStats::add(&self.ctx.stats.registers, 1);
        let to_host = msg
            .to()
            .ok()
            .and_then(|t| t.uri.host.map(|h| h.to_string()))
            .unwrap_or_default();
        let ruri_local = msg
            .request_uri()
            .ok()
            .and_then(|u| u.host.map(|h| self.settings.is_local_host(&h.to_string())))
            .unwrap_or(false);
        if !ruri_local {
            self.respond(
                now,
                msg,
                src,
                403,
                Some("Domain not served here"),
                &[],
                Answer::Cached(&key),
                out,
            );
            return;
        }
        let settings = self.settings.clone();
        let realm = settings.realm_for(&to_host).to_string();
        let Some(username) =
            self.require_auth(now, msg, src, &realm, false, Answer::Cached(&key), out)
        else {
            return;
        };
        match register::plan(&settings, now, msg, src, &username) {
            RegisterStep::Answer(code, reason, headers) => {
                let headers: Vec<(&str, String)> = headers.into_iter().collect();
                self.respond(
                    now,
                    msg,
                    src,
                    code,
                    reason,
                    &headers,
                    Answer::Cached(&key),
                    out,
                );
            }
            RegisterStep::Store(change) => {
                let token = self.next_token;
                self.next_token += 1;
                let sent = self.control.send(ControlRequest::ApplyBindings {
                    shard: self.ctx.id,
                    token,
                    change,
                });
                if sent.is_err() {
                    self.respond(
                        now,
                        msg,
                        src,
                        500,
                        Some("Store unavailable"),
                        &[],
                        Answer::Cached(&key),
                        out,
                    );
                    return;
                }
                self.pending.insert(
                    token,
                    PendingRegister {
                        request: data.to_vec(),
                        src,
                        key,
                    },
                );
            }
        }
    }

    fn on_registered(
        &mut self,
        now: Now,
        token: u64,
        result: Result<crate::registrar::ChangeOutcome, RegisterFailure>,
        out: &mut Output,
    ) {
        let Some(p) = self.pending.remove(&token) else {
            return;
        };
        let Ok(msg) = Message::parse(&p.request) else {
            return;
        };
        match result {
            Ok(outcome) => {
                ShardStats::add(&self.ctx.stats.registrations_ok, 1);
                let headers: Vec<(&str, String)> =
                    register::contact_lines(&outcome.bindings, now.unix)
                        .into_iter()
                        .map(|c| ("Contact", c))
                        .collect();
                self.respond(
                    now,
                    &msg,
                    p.src,
                    200,
                    None,
                    &headers,
                    Answer::Cached(&p.key),
                    out,
                );
            }
            Err(RegisterFailure::Refused(ChangeError::OutOfOrder)) => {
                self.respond(
                    now,
                    &msg,
                    p.src,
                    500,
                    Some("CSeq out of order"),
                    &[("Retry-After", "1".into())],
                    Answer::Cached(&p.key),
                    out,
                );
            }
            // [proxy] max_contacts_per_aor (registrar/binding.rs).
            Err(RegisterFailure::Refused(ChangeError::TooManyContacts)) => {
                self.respond(
                    now,
                    &msg,
                    p.src,
                    403,
                    Some("Too many contacts"),
                    &[],
                    Answer::Cached(&p.key),
                    out,
                );
            }
            Err(RegisterFailure::Store(e)) => {
                tracing::error!(
                    call_id = msg.call_id().unwrap_or_default(),
                    "registration not stored: {e}"
                );
                self.respond(
                    now,
                    &msg,
                    p.src,
                    500,
                    Some("Store error"),
                    &[("Retry-After", "5".into())],
                    Answer::Cached(&p.key),
                    out,
                );
            }
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
        src: SocketAddr,
        out: &mut Output,
    ) {
        // A new INVITE without credentials is challenged before it costs a
        // transaction: one 407 per INVITE, nothing retransmitted toward an
        // address that may be spoofed.
        if matches!(method, Method::Invite)
            && msg.to().is_ok_and(|t| t.tag().is_none())
            && self.challenge_statelessly(now, msg, src, out)
        {
            return;
        }
        let tx = match self
            .table
            .receive(now.mono_ms, msg, src, false, &mut self.actions)
        {
            Received::Request(tx) => tx,
            Received::Absorbed | Received::Ack(_) => {
                ShardStats::add(
                    &self.ctx.stats.retransmissions,
                    u64::from(matches!(method, Method::Invite)),
                );
                return;
            }
            Received::Full => {
                self.respond(
                    now,
                    msg,
                    src,
                    503,
                    Some("Busy"),
                    &[("Retry-After", "5".into())],
                    Answer::Stateless,
                    out,
                );
                return;
            }
            Received::Invalid(_) => {
                self.respond(now, msg, src, 400, None, &[], Answer::Stateless, out);
                return;
            }
            Received::Response(_) | Received::Stray | Received::WrongSource => return,
        };
        let in_dialog = msg.to().is_ok_and(|t| t.tag().is_some());
        if matches!(method, Method::Cancel) {
            // An INVITE still waiting for the router: 487 for it, 200 here.
            if let Some(invite) = self.table.cancel_target_of(tx) {
                if self.cancel_parked_route(now, invite, out) {
                    self.respond(now, msg, src, 200, None, &[], Answer::Tx(tx), out);
                    return;
                }
            }
        }
        if matches!(method, Method::Cancel) || in_dialog {
            if !self
                .calls
                .on_request(now, &mut self.table, tx, msg, &mut self.actions)
            {
                self.respond(now, msg, src, 481, None, &[], Answer::Tx(tx), out);
            }
            return;
        }
        if !matches!(method, Method::Invite) {
            // BYE (or another request) outside any dialog.
            self.respond(now, msg, src, 481, None, &[], Answer::Tx(tx), out);
            return;
        }
        if self.looped(msg) {
            self.respond(now, msg, src, 482, None, &[], Answer::Tx(tx), out);
            return;
        }
        if self.call_id_taken(msg) {
            // A new INVITE may not reuse the Call-ID of a call we have or had:
            // it would take over that call's dialog, flow and record.
            self.respond(
                now,
                msg,
                src,
                482,
                Some("Call-ID In Use"),
                &[],
                Answer::Tx(tx),
                out,
            );
            return;
        }
        if let Some(reject) = stateless::inspect(msg) {
            self.respond(
                now,
                msg,
                src,
                reject.code,
                None,
                &reject.headers,
                Answer::Tx(tx),
                out,
            );
            return;
        }
        self.on_invite(now, msg, src, tx, out);
    }

    /// Loop detection (RFC 3261 16.3 step 4): an INVITE that already went
    /// through us carries a Via we wrote.
    pub(super) fn looped(&self, msg: &Message<'_>) -> bool {
        let ours = format!("{}:{}", self.settings.sip_host, self.settings.sip_port);
        msg.vias().filter_map(Result::ok).any(|v| {
            format!("{}:{}", v.host, v.port_or_default()).eq_ignore_ascii_case(&ours)
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

    /// The stored bindings of a local user: those under `host` first, else
    /// under any of our realms (they are aliases of one domain).
    fn local_bindings(&self, user: &str, host: &str, now: Now) -> Vec<crate::registrar::Binding> {
        let host_lc = host.to_ascii_lowercase();
        let mut bindings = Vec::new();
        if let Some(store) = &self.settings.store {
            let hosts = std::iter::once(host_lc.as_str())
                .chain(self.settings.realms.iter().map(String::as_str));
            for h in hosts {
                bindings = store
                    .bindings(&format!("sip:{user}@{h}"))
                    .unwrap_or_default();
                if bindings.iter().any(|b| b.expires_at > now.unix) {
                    break;
                }
            }
        }
        bindings.retain(|b| b.expires_at > now.unix);
        bindings
    }

    /// A CDR for an INVITE that reached routing and ended there.
    #[allow(clippy::too_many_arguments)]
    fn record_cdr(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        code: u16,
        direction: &str,
        status: &str,
        hangup: &str,
        route: Option<String>,
        trunk: Option<String>,
    ) {
        let caller = msg
            .from()
            .map(|f| f.uri.as_str().to_string())
            .unwrap_or_default();
        let callee = msg
            .to()
            .map(|t| t.uri.as_str().to_string())
            .unwrap_or_default();
        let user = |u: &str| {
            let rest = u.split_once(':').map(|(_, r)| r).unwrap_or(u);
            rest.split('@').next().unwrap_or_default().to_string()
        };
        let at = crate::cdr::time_fmt::rfc3339_ms(now.unix_ms);
        let cdr = crate::cdr::Cdr {
            call_id: msg.call_id().unwrap_or_default().to_string(),
            start_time: at.clone(),
            ring_time: None,
            answer_time: None,
            end_time: at,
            duration_secs: 0,
            from_number: user(&caller),
            to_number: msg
                .request_uri()
                .ok()
                .and_then(|u| u.user)
                .unwrap_or_default()
                .to_string(),
            caller,
            callee,
            direction: direction.to_string(),
            status: status.into(),
            status_code: code,
            hangup_reason: hangup.into(),
            sip_trunk_id: trunk,
            route_id: route,
            auth_user: self.authenticated_user(msg, src),
            recorder: Vec::new(),
            recording_url: None,
            metadata: Default::default(),
        };
        self.count_call(&cdr.status);
        let _ = self.control.send(ControlRequest::StoreCdr(Box::new(cdr)));
    }

    /// Counts a call by its final status (for /metrics).
    fn count_call(&self, status: &str) {
        let s = &self.ctx.stats;
        let counter = match status {
            "completed" => &s.calls_completed,
            "missed" => &s.calls_missed,
            "rejected" => &s.calls_rejected,
            "spam" => &s.calls_spam,
            _ => &s.calls_failed,
        };
        ShardStats::add(counter, 1);
    }

    /// Moves what the call layer produced into the shard's output.
    fn flush_calls(&mut self, out: &mut Output) {
        let unix_ms = Now::read().unix_ms;
        for a in self.actions.drain(..) {
            match a {
                Action::Send { dest, data, .. } => {
                    self.calls.capture(unix_ms, false, dest, &data);
                    out.sends.push(dest, &data);
                }
                Action::Event { tx, event } => match event {
                    Event::Timeout(_) => self.timeouts.push(tx),
                    Event::Terminated => self.calls.forget_tx(tx),
                    _ => {}
                },
            }
        }
        for (dest, data) in std::mem::take(&mut self.calls.direct) {
            self.calls.capture(unix_ms, false, dest, &data);
            out.sends.push(dest, &data);
        }
        let refused = std::mem::take(&mut self.calls.refused);
        ShardStats::add(&self.ctx.stats.sip_dialog_mismatch, refused.dialog_mismatch);
        ShardStats::add(
            &self.ctx.stats.sip_cseq_out_of_order,
            refused.cseq_out_of_order,
        );
        ShardStats::add(&self.ctx.stats.sdp_address_refused, refused.media_address);
        for (call_id, json) in self.calls.finished_flows.drain(..) {
            let _ = self.control.send(ControlRequest::StoreFlow(call_id, json));
        }
        for cdr in std::mem::take(&mut self.calls.finished) {
            self.count_call(&cdr.status);
            let _ = self.control.send(ControlRequest::StoreCdr(Box::new(cdr)));
        }
        if let Some(now) = self.calls.media.as_ref().map(|m| m.counters) {
            let (was, stats) = (self.media_reported, &self.ctx.stats);
            ShardStats::add(&stats.rtp_lost, now.lost - was.lost);
            ShardStats::add(
                &stats.rtp_foreign_source,
                now.foreign_source - was.foreign_source,
            );
            ShardStats::add(
                &stats.rtp_unlatched_source,
                now.unlatched_source - was.unlatched_source,
            );
            ShardStats::add(&stats.rtp_malformed, now.malformed - was.malformed);
            self.media_reported = now;
        }
        let evicted = self.table.evicted();
        ShardStats::add(
            &self.ctx.stats.tx_evicted,
            evicted - self.tx_evicted_reported,
        );
        self.tx_evicted_reported = evicted;
        // Levels for AMI health and the drain of a graceful shutdown.
        let gauges = &self.ctx.stats.gauges;
        ShardGauges::set(&gauges.active_calls, self.calls.active_calls() as u64);
        ShardGauges::set(
            &gauges.rtp_sessions,
            self.calls.media.as_ref().map_or(0, |m| m.sessions()) as u64,
        );
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

impl ShardLogic for SipEndpoint {
    fn on_datagram(
        &mut self,
        now: Now,
        data: &[u8],
        src: SocketAddr,
        handed_off: bool,
        out: &mut Output,
    ) {
        if !handed_off {
            // Bans and the flood limit, before anything is parsed.
            let request = !data.starts_with(b"SIP/2.0 ");
            match self.guard.check(now.unix, now.mono_ms, src, request) {
                Verdict::Pass => {}
                Verdict::Banned => {
                    ShardStats::add(&self.ctx.stats.banned_dropped, 1);
                    return;
                }
                Verdict::Flood => {
                    ShardStats::add(&self.ctx.stats.flood_dropped, 1);
                    return;
                }
            }
        }
        if !handed_off && self.ctx.shards > 1 {
            // Cheap owner lookup: the parse is lazy, Call-ID is one header.
            if let Ok(msg) = Message::parse(data) {
                if let Some(cid) = msg.call_id() {
                    let owner = owner_of(cid.trim().as_bytes(), self.ctx.shards);
                    if owner != self.ctx.id {
                        out.handoffs.push((owner, data.to_vec(), src));
                        return;
                    }
                }
            }
        }
        ShardStats::add(&self.stats().handled, 1);
        self.handle(now, data, src, out);
    }

    fn on_message(&mut self, now: Now, msg: ShardMsg, out: &mut Output) {
        match msg {
            ShardMsg::Registered { token, result } => self.on_registered(now, token, result, out),
            // The atomic swap: calls already routed keep what they decided.
            ShardMsg::Routing(snapshot) => self.routing = snapshot,
            ShardMsg::CallCommand {
                call_id,
                command,
                reply,
            } => {
                let result = match command {
                    CallCommand::Transfer { target } => self
                        .calls
                        .transfer_check(&call_id)
                        .and_then(|()| {
                            self.resolve_target(now, &target)
                                .map_err(crate::call::CommandError::BadRequest)
                        })
                        .and_then(|t| {
                            self.calls.transfer(
                                now,
                                &mut self.table,
                                &call_id,
                                t,
                                &mut self.actions,
                            )
                        }),
                    CallCommand::Accept { sdp } => {
                        self.calls
                            .accept(now, &mut self.table, &call_id, sdp, &mut self.actions)
                    }
                    CallCommand::Hangup { reason } => {
                        self.calls
                            .hangup(now, &mut self.table, &call_id, reason, &mut self.actions)
                    }
                    CallCommand::Mute { track } => self.calls.set_muted(&call_id, &track, true),
                    CallCommand::Unmute { track } => self.calls.set_muted(&call_id, &track, false),
                };
                let _ = reply.try_send(result);
                self.flush_calls(out);
            }
            ShardMsg::Acl(acl) => self.acl = acl.0,
            ShardMsg::Ban { ip, until } => self.guard.ban(ip, until),
            ShardMsg::Unban(ip) => self.guard.lift(ip),
            ShardMsg::UserAnswer {
                key,
                answer,
                ttl_secs,
            } => self.on_user_answer(now, key, answer, ttl_secs, out),
            ShardMsg::RouteAnswer { token, decision } => {
                self.on_route_answer(now, token, decision, out)
            }
            ShardMsg::Originate { from, to, reply } => {
                let result = self.originate(now, &from, &to);
                let _ = reply.try_send(result);
                self.flush_calls(out);
            }
            ShardMsg::ListDialogs { reply } => {
                let _ = reply.try_send(self.calls.dialogs_summary(now));
            }
            ShardMsg::ListCalls { reply } => {
                let _ = reply.try_send(self.calls.calls_summary(self.ctx.id));
            }
            ShardMsg::Datagram { .. } | ShardMsg::Stop => {}
        }
    }

    fn on_tick(&mut self, now: Now, out: &mut Output) {
        self.expire_parked(now, out);
        self.expire_routes(now, out);
        let table = &mut self.table;
        self.spam.retain(|(tx, at)| {
            let keep = *at > now.mono_ms;
            if !keep {
                table.abandon(*tx);
            }
            keep
        });
        self.txs.expire(now.mono_ms);
        self.auth.sweep(now.unix);
        self.table.handle_timeout(now.mono_ms, &mut self.actions);
        self.flush_calls(out);
        for tx in std::mem::take(&mut self.timeouts) {
            self.calls
                .on_timeout(now, &mut self.table, tx, &mut self.actions);
        }
        self.calls.on_timer(now, &mut self.table, &mut self.actions);
        self.calls
            .on_media_tick(now, &mut self.table, &mut self.actions);
        self.flush_calls(out);
    }

    fn on_stop(&mut self, now: Now, out: &mut Output) {
        let active = self.calls.active_calls();
        if active > 0 {
            tracing::info!(
                shard = self.ctx.id,
                active,
                "stopping: hanging up calls still up"
            );
            self.calls
                .hangup_all(now, &mut self.table, "shutdown", &mut self.actions);
        }
        self.flush_calls(out);
        self.calls.flush_flows(now.mono_ms, true);
        self.flush_calls(out);
    }

    fn on_media(
        &mut self,
        now: Now,
        port: u16,
        src: SocketAddr,
        packet: &mut [u8],
    ) -> Option<(u16, SocketAddr)> {
        let relay = self.calls.media.as_mut()?;
        relay
            .on_packet(now, port, src, packet)
            .map(|f| (f.out_port, f.dest))
    }

    /// The relay's outputs: socket work goes to the runtime, recording to
    /// the writer, and a call whose media port could not be bound is hung
    /// up (its CDR says so).
    fn poll_socket_op(&mut self, now: Now, out: &mut Output) -> Option<SocketOp> {
        loop {
            match self.calls.media.as_mut()?.poll_output()? {
                MediaOutput::Socket(op) => return Some(op),
                MediaOutput::Recording(cmd) => {
                    if let Some(tx) = &self.settings.recorder {
                        let _ = tx.send(cmd);
                    }
                }
                MediaOutput::SessionFailed { call_id, .. } => {
                    let reason = Some("no media port".to_string());
                    let hung = self.calls.hangup(
                        now,
                        &mut self.table,
                        &call_id,
                        reason,
                        &mut self.actions,
                    );
                    if hung.is_err() {
                        tracing::debug!(call_id = %call_id, "media failed for a call already ending");
                    }
                    self.flush_calls(out);
                }
            }
        }
    }

    fn on_socket_event(&mut self, event: MediaInput) {
        if let Some(relay) = self.calls.media.as_mut() {
            relay.handle(event);
        }
    }

    fn next_tick_ms(&self) -> u64 {
        if self.table.is_empty() && self.calls.active_calls() == 0 {
            1000
        } else {
            20
        }
    }
}

/// A binding registered from behind NAT: its Contact names an IP that is
/// not the one its REGISTER came from.
fn binding_natted(b: &crate::registrar::Binding) -> bool {
    let Ok(source) = b.source.parse::<SocketAddr>() else {
        return false;
    };
    crate::sip::Uri::parse(&b.uri)
        .ok()
        .and_then(|u| u.host.and_then(|h| h.ip()))
        .is_some_and(|ip| ip != source.ip())
}

/// Where a call to a binding goes: its Contact's address when that is the
/// address the REGISTER came from or a public one; the source address when
/// the Contact names a private address other than the source (the phone is
/// behind NAT) or a host name (no DNS on a shard).
fn binding_dest(b: &crate::registrar::Binding) -> Option<SocketAddr> {
    let source: SocketAddr = b.source.parse().ok()?;
    let Ok(uri) = crate::sip::Uri::parse(&b.uri) else {
        return Some(source);
    };
    let Some(ip) = uri.host.and_then(|h| h.ip()) else {
        return Some(source);
    };
    let port = uri.port.unwrap_or(5060);
    let private = match ip {
        std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    };
    if ip == source.ip() || !private {
        Some(SocketAddr::new(ip, port))
    } else {
        Some(source)
    }
}

/// `ip:port` / `[v6]:port` / `ip` (port 5060) of a trunk destination; host
/// names are not resolved on a shard.
/// The host and (unescaped) user of a request's Request-URI.
fn dialled(msg: &Message<'_>) -> (String, String) {
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

/// A local AOR's live bindings as targets, and whether one looks NATed.
fn binding_targets(bindings: &[crate::registrar::Binding], now: Now) -> (Vec<Target>, bool) {
    let live = || bindings.iter().filter(|b| b.expires_at > now.unix);
    let natted = live().any(binding_natted);
    let targets = live()
        .filter_map(|b| binding_dest(b).map(|dest| Target::new(b.uri.clone(), dest)))
        .collect();
    (targets, natted)
}

/// A call's direction (API.md 2.1): from a trunk, or from an extension to
/// a local user or elsewhere.
fn direction_of(from_trunk: bool, to_local: bool) -> &'static str {
    match (from_trunk, to_local) {
        (true, _) => "inbound",
        (false, true) => "internal",
        (false, false) => "outbound",
    }
}

fn parse_host_port(hp: &str) -> Option<SocketAddr> {
    if let Ok(a) = hp.parse::<SocketAddr>() {
        return Some(a);
    }
    let bare = hp.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 5060))
}

/// A CRLF keep-alive (RFC 5626 3.5.1) or empty datagram: not an error.
fn is_keepalive(data: &[u8]) -> bool {
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

/// The server transaction key (RFC 3261 17.2.3): branch + sent-by + method
/// with the magic cookie; else the RFC 2543 fields (17.2.3's fallback).
fn tx_key(msg: &Message<'_>, method: &Method<'_>) -> Vec<u8> {
    // ACK matches the INVITE transaction it acknowledges.
    let method = match method {
        Method::Ack => "INVITE",
        m => m.as_str(),
    };
    let mut key = Vec::with_capacity(128);
    match msg.top_via() {
        Ok(via) if via.is_rfc3261() => {
            key.extend_from_slice(via.branch().unwrap_or_default().as_bytes());
            key.push(0);
            key.extend_from_slice(via.host.to_string().as_bytes());
            key.extend_from_slice(&via.port_or_default().to_be_bytes());
            key.push(0);
            key.extend_from_slice(method.as_bytes());
        }
        via => {
            key.extend_from_slice(b"2543\0");
            key.extend_from_slice(msg.request_uri_str().unwrap_or_default().as_bytes());
            key.push(0);
            key.extend_from_slice(msg.call_id().unwrap_or_default().as_bytes());
            key.push(0);
            if let Ok(from) = msg.from() {
                key.extend_from_slice(from.tag().unwrap_or_default().as_bytes());
            }
            key.push(0);
            if let Ok(cseq) = msg.cseq() {
                key.extend_from_slice(&cseq.seq.to_be_bytes());
            }
            key.extend_from_slice(method.as_bytes());
            key.push(0);
            if let Ok(v) = via {
                key.extend_from_slice(v.as_str().as_bytes());
            }
        }
    }
    key
}

#[cfg(test)]
mod tests;
