//! The SIP endpoint one shard runs: what happens to each message it owns.
//! Malformed input gets 400 or is dropped (counted), retransmissions get the
//! cached answer, stateless checks run, then OPTIONS and REGISTER are
//! answered here; INVITEs are challenged, BYE/CANCEL outside a dialog get 481.

pub mod register;
pub mod settings;
pub mod stateless;
pub mod txcache;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::{credentials_for_realm, AuthConfig, AuthOutcome, Authenticator, Step};
use crate::control_link::{ControlRequest, ControlSender};
use crate::registrar::ChangeError;
use crate::runtime::owner::{call_id_hash, owner_of};
use crate::runtime::{Output, RegisterFailure, ShardContext, ShardLogic, ShardMsg, ShardStats};
use crate::sip::{HeaderName, Message, Method, Writer};
use crate::time::Now;

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
    ctx: ShardContext,
    settings: Arc<EndpointSettings>,
    control: ControlSender,
    auth: Authenticator,
    txs: TxCache,
    pending: HashMap<u64, PendingRegister>,
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
        Ok(SipEndpoint {
            ctx,
            settings,
            control,
            auth,
            txs: TxCache::new(TX_CACHE_CAPACITY),
            pending: HashMap::new(),
            next_token: 1,
            buf: Vec::with_capacity(2048),
            last_drop_log: 0,
            drops_since_log: 0,
        })
    }

    fn stats(&self) -> &ShardStats {
        &self.ctx.stats
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

    /// Sends a final (or provisional) response to `msg`, remembering finals
    /// under `key` for retransmissions.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        code: u16,
        reason: Option<&str>,
        headers: &[(&str, String)],
        key: Option<&[u8]>,
        out: &mut Output,
    ) {
        let tag = to_tag(msg);
        let mut w = Writer::response_to(&mut self.buf, msg, code, reason, Some(&tag), Some(src));
        w.header("Server", &self.settings.server_name);
        for (name, value) in headers {
            w.header(name, value);
        }
        w.finish(b"");
        // UDP responses go back where the request came from (RFC 3581
        // symmetric response); the top Via carries received/rport.
        out.sends.push(src, &self.buf);
        if code >= 200 {
            if let Some(key) = key {
                self.txs.answered(now.mono_ms, key, &self.buf, src);
            }
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
            // No client transactions yet: a response has nowhere to go.
            if msg.check().is_err() {
                ShardStats::add(&self.ctx.stats.parse_errors, 1);
            }
            self.drop_message(now, src, "response without a client transaction");
            return;
        }
        if !(self.settings.acl)(src.ip()) {
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
                        None,
                        out,
                    );
                }
                None => self.drop_message(now, src, &e.to_string()),
            }
            return;
        }
        let Some(method) = msg.method() else { return };
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
            let headers: Vec<(&str, String)> = reject
                .headers
                .iter()
                .map(|(n, v)| (*n, v.clone()))
                .collect();
            self.respond(now, &msg, src, reject.code, None, &headers, Some(&key), out);
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
                self.respond(now, &msg, src, 200, None, &headers, Some(&key), out);
            }
            Method::Register => self.on_register(now, &msg, data, src, key, out),
            Method::Invite => self.on_invite(now, &msg, src, &key, out),
            // No dialogs or INVITE transactions exist to match.
            Method::Bye | Method::Cancel => {
                self.respond(now, &msg, src, 481, None, &[], Some(&key), out)
            }
            _ => self.respond(
                now,
                &msg,
                src,
                405,
                None,
                &[("Allow", ALLOW.to_string())],
                Some(&key),
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
    ) -> AuthOutcome {
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
        match self.auth.begin(now.unix, value, realm, binding) {
            Step::Done(outcome) => outcome,
            Step::Lookup(pending) => {
                let record = self.settings.users.lookup(pending.username(), realm);
                self.auth.finish(
                    now.unix,
                    method,
                    pending,
                    record.as_ref().map(|r| r.secret()),
                )
            }
        }
    }

    /// Answers an auth outcome that is not Ok; returns the username when Ok.
    #[allow(clippy::too_many_arguments)]
    fn require_auth(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        realm: &str,
        proxy: bool,
        key: &[u8],
        out: &mut Output,
    ) -> Option<String> {
        match self.authenticate(now, msg, realm, proxy) {
            AuthOutcome::Ok { username, .. } => Some(username),
            AuthOutcome::Challenge { stale, .. } => {
                ShardStats::add(&self.ctx.stats.auth_challenges, 1);
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
                self.respond(now, msg, src, code, None, &headers, Some(key), out);
                None
            }
            // Unknown user, wrong password and replays look the same.
            AuthOutcome::Failed { .. } | AuthOutcome::Replay { .. } => {
                ShardStats::add(&self.ctx.stats.auth_failures, 1);
                self.respond(now, msg, src, 403, None, &[], Some(key), out);
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
                Some(&key),
                out,
            );
            return;
        }
        let settings = self.settings.clone();
        let realm = settings.realm_for(&to_host).to_string();
        let Some(username) = self.require_auth(now, msg, src, &realm, false, &key, out) else {
            return;
        };
        match register::plan(&settings, now, msg, src, &username) {
            RegisterStep::Answer(code, reason, headers) => {
                let headers: Vec<(&str, String)> = headers.into_iter().collect();
                self.respond(now, msg, src, code, reason, &headers, Some(&key), out);
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
                        Some(&key),
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
                self.respond(now, &msg, p.src, 200, None, &headers, Some(&p.key), out);
            }
            Err(RegisterFailure::Refused(ChangeError::OutOfOrder)) => {
                self.respond(
                    now,
                    &msg,
                    p.src,
                    500,
                    Some("CSeq out of order"),
                    &[("Retry-After", "1".into())],
                    Some(&p.key),
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
                    Some(&p.key),
                    out,
                );
            }
        }
    }

    /// INVITE: who may call is checked here (digest, 407). Calls are placed by
    /// the B2BUA, which is not part of this build: an authenticated INVITE is
    /// answered for its target as the registrar sees it.
    fn on_invite(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        key: &[u8],
        out: &mut Output,
    ) {
        let host = msg
            .request_uri()
            .ok()
            .and_then(|u| u.host.map(|h| h.to_string()))
            .unwrap_or_default();
        let settings = self.settings.clone();
        let realm = settings.realm_for(&host).to_string();
        if self
            .require_auth(now, msg, src, &realm, true, key, out)
            .is_none()
        {
            return;
        }
        self.respond(
            now,
            msg,
            src,
            480,
            Some("Calls not enabled"),
            &[],
            Some(key),
            out,
        );
    }
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
        if let ShardMsg::Registered { token, result } = msg {
            self.on_registered(now, token, result, out);
        }
    }

    fn on_tick(&mut self, now: Now, _out: &mut Output) {
        self.txs.expire(now.mono_ms);
        self.auth.sweep(now.unix);
    }
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
