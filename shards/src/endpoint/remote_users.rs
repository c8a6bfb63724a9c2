//! Requests that wait for a remote (HTTP) user backend. The first request
//! for a (backend, user, realm) sends one question to the control core;
//! every request for it is parked with what it needs to go on. When the
//! answer comes back (`ShardMsg::UserAnswer`) it goes into the shard's
//! cache and the parked requests are handled again: a REGISTER from the
//! start, an INVITE from its auth step on its still-open transaction. No
//! answer in time: 503 with Retry-After. An INVITE for a callee without a
//! binding whom only a remote backend may know waits the same way, to tell
//! 480 from 404.

use std::net::SocketAddr;

use super::{Answer, SipEndpoint};
use crate::auth::AuthOutcome;
use crate::runtime::Output;
use crate::sip::Message;
use crate::time::Now;
use crate::transaction::TxId;
use crate::users::{RemoteAnswer, RemoteKey, UserQuery};

/// How auth ended for one request.
pub(super) enum Authn {
    Outcome(AuthOutcome),
    /// The user backend refused (403, its reason) or failed (503).
    Refused(u16, String),
    /// A remote backend must answer first.
    Pending(RemoteKey),
}

/// A parked request.
pub(super) struct Parked {
    data: Vec<u8>,
    src: SocketAddr,
    resume: Resume,
    since_ms: u64,
}

/// Where a parked request goes on.
enum Resume {
    /// A REGISTER, answered statelessly under this key.
    Register { key: Vec<u8> },
    /// An INVITE on this server transaction, from its auth step.
    Invite { tx: TxId },
    /// An admitted INVITE for a callee with no binding: routed again (as a
    /// guest's call when it was one), now that the backend said whether the
    /// callee exists (480 or 404).
    Route { tx: TxId, guest: bool },
}

const UNAVAILABLE: &str = "User Backend Unavailable";

impl SipEndpoint {
    pub(super) fn park(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        answer: Answer<'_>,
        key: RemoteKey,
        out: &mut Output,
    ) {
        let resume = match answer {
            Answer::Tx(tx) => Resume::Invite { tx },
            Answer::Cached(k) => Resume::Register { key: k.to_vec() },
            Answer::Stateless => return self.unavailable(now, msg, src, answer, out),
        };
        self.park_as(now, msg, src, resume, key, out);
    }

    /// Parks an admitted INVITE until a remote backend says whether its
    /// callee exists.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn park_for_callee(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        tx: TxId,
        guest: bool,
        key: RemoteKey,
        out: &mut Output,
    ) {
        self.park_as(now, msg, src, Resume::Route { tx, guest }, key, out);
    }

    fn park_as(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        resume: Resume,
        key: RemoteKey,
        out: &mut Output,
    ) {
        if self.parked_count() >= self.settings.max_parked {
            let answer = match &resume {
                Resume::Register { key } => Answer::Cached(key),
                Resume::Invite { tx } | Resume::Route { tx, .. } => Answer::Tx(*tx),
            };
            return self.unavailable(now, msg, src, answer, out);
        }
        if !self.parked.contains_key(&key) {
            let asked = self.settings.user_queries.as_ref().is_some_and(|q| {
                q.try_send(UserQuery {
                    shard: self.ctx.id,
                    key: key.clone(),
                })
                .is_ok()
            });
            if !asked {
                let answer = match &resume {
                    Resume::Register { key } => Answer::Cached(key),
                    Resume::Invite { tx } | Resume::Route { tx, .. } => Answer::Tx(*tx),
                };
                return self.unavailable(now, msg, src, answer, out);
            }
        }
        self.parked.entry(key).or_default().push(Parked {
            data: msg.as_bytes().to_vec(),
            src,
            resume,
            since_ms: now.mono_ms,
        });
    }

    pub(super) fn on_user_answer(
        &mut self,
        now: Now,
        key: RemoteKey,
        answer: RemoteAnswer,
        ttl_secs: u64,
        out: &mut Output,
    ) {
        // Even an answer that is not to be kept decides the requests parked
        // for it: it stays for the rest of this second.
        self.user_cache
            .put(key.clone(), answer, ttl_secs.max(1), now.unix);
        for p in self.parked.remove(&key).unwrap_or_default() {
            match p.resume {
                Resume::Register { key } => {
                    self.txs.forget(&key);
                    if let Ok(msg) = Message::parse(&p.data) {
                        self.handle(now, &msg, p.src, out);
                    }
                }
                Resume::Invite { tx } | Resume::Route { tx, .. } => {
                    // The transaction may have ended meanwhile (timer,
                    // eviction): then there is nobody to answer.
                    if !self.calls.is_proceeding(tx) {
                        continue;
                    }
                    if let Ok(msg) = Message::parse(&p.data) {
                        match p.resume {
                            Resume::Route { guest, .. } => {
                                self.route_invite(now, &msg, p.src, tx, guest, None, out)
                            }
                            _ => self.on_invite(now, &msg, p.src, tx, out),
                        }
                    }
                    self.flush_calls(out);
                }
            }
        }
    }

    /// 503 for requests whose answer did not come in time.
    pub(super) fn expire_parked(&mut self, now: Now, out: &mut Output) {
        let limit = self.settings.user_query_timeout_ms;
        let late: Vec<RemoteKey> = self
            .parked
            .iter()
            .filter(|(_, list)| {
                list.first()
                    .is_some_and(|p| now.mono_ms.saturating_sub(p.since_ms) > limit)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in late {
            for p in self.parked.remove(&key).unwrap_or_default() {
                let Ok(msg) = Message::parse(&p.data) else {
                    continue;
                };
                match &p.resume {
                    Resume::Register { key } => {
                        self.unavailable(now, &msg, p.src, Answer::Cached(key), out)
                    }
                    Resume::Invite { tx } | Resume::Route { tx, .. } => {
                        if self.calls.is_proceeding(*tx) {
                            self.unavailable(now, &msg, p.src, Answer::Tx(*tx), out);
                            self.flush_calls(out);
                        }
                    }
                }
            }
        }
    }

    fn unavailable(
        &mut self,
        now: Now,
        msg: &Message<'_>,
        src: SocketAddr,
        answer: Answer<'_>,
        out: &mut Output,
    ) {
        let retry = [("Retry-After", "5".to_string())];
        self.respond(now, msg, src, 503, Some(UNAVAILABLE), &retry, answer, out);
    }
}
