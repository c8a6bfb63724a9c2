//! Digest authentication of a request on its shard (RFC 3261 22): the
//! credentials for the realm, the user's secret from the user directory (a
//! remote backend's answer may have to be waited for: the request is
//! parked), and the answer when auth does not pass (401/407 challenge, 403,
//! the backend's 403/503).

use crate::transport::Peer;

use super::{remote_users, Answer, Reply, Req, SipEndpoint};
use crate::auth::{credentials_for_realm, AuthOutcome, Step};
use crate::runtime::{Output, ShardStats};
use crate::sip::{HeaderName, Message};
use crate::time::Now;

impl SipEndpoint {
    /// Tells the ban book a digest failed from `src` (not for trusted ones).
    fn report_auth_failure(&self, src: Peer) {
        let Some(tx) = &self.settings.security.auth_failures else {
            return;
        };
        if !self.guard.is_trusted(src.addr) && tx.try_send(src.ip()).is_ok() {
            ShardStats::add(&self.ctx.stats.auth_failures_reported, 1);
        }
    }

    /// Digest auth for REGISTER (401) and INVITE (407).
    pub(super) fn authenticate(
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
        let first = msg.headers_named(header).next().map(|h| h.raw_value);
        // One header (the usual case) is the one whatever its realm, so it
        // is parsed once, by `begin`; of several, the one for our realm.
        let value = if msg.header_count(header) > 1 {
            credentials_for_realm(msg.headers_named(header).map(|h| h.raw_value), realm).or(first)
        } else {
            first
        };
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
    pub(super) fn require_auth(
        &mut self,
        req: Req<'_, '_>,
        realm: &str,
        proxy: bool,
        answer: Answer<'_>,
        out: &mut Output,
    ) -> Option<String> {
        let Req { now, msg, src } = req;
        let outcome = match self.authenticate(now, msg, realm, proxy) {
            remote_users::Authn::Outcome(o) => o,
            remote_users::Authn::Refused(code, reason) => {
                ShardStats::add(&self.ctx.stats.auth_failures, 1);
                let extra: Vec<(&str, String)> = if code == 503 {
                    vec![("Retry-After", "5".into())]
                } else {
                    Vec::new()
                };
                self.respond(
                    req,
                    answer,
                    Reply::new(code).reason(&reason).headers(&extra),
                    out,
                );
                return None;
            }
            remote_users::Authn::Pending(key) => {
                self.park(req, answer, key, out);
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
                self.respond(req, answer, Reply::new(code).headers(&headers), out);
                None
            }
            // Unknown user, wrong password and replays look the same.
            AuthOutcome::Failed { .. } | AuthOutcome::Replay { .. } => {
                ShardStats::add(&self.ctx.stats.auth_failures, 1);
                self.report_auth_failure(src);
                self.respond(req, answer, Reply::new(403), out);
                None
            }
        }
    }
}
