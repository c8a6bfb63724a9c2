//! Requests that wait for a remote (HTTP) user backend. The first request
//! for a (backend, user, realm) sends one question to the control core;
//! every request for it is parked with what it needs to go on. When the
//! answer comes back (`ShardMsg::UserAnswer`) it goes into the shard's
//! cache and the parked requests are handled again: a REGISTER from the
//! start, an INVITE from its auth step on its still-open transaction. No
//! answer in time: 503 with Retry-After. An INVITE for a callee without a
//! binding whom only a remote backend may know waits the same way, to tell
//! 480 from 404.

use super::parked::{Parked, Waits};
use super::{Answer, Reply, Req, SipEndpoint};
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

/// Where a request parked for a user backend goes on.
pub(super) enum Resume {
    /// A REGISTER, answered statelessly under this key.
    Register { key: Vec<u8> },
    /// An INVITE on this server transaction, from its auth step.
    Invite { tx: TxId },
    /// An admitted INVITE for a callee with no binding: routed again (as a
    /// guest's call when it was one), now that the backend said whether the
    /// callee exists (480 or 404).
    Route { tx: TxId, guest: bool },
}

impl Resume {
    /// How the request is answered when it cannot wait.
    fn answer(&self) -> Answer<'_> {
        match self {
            Resume::Register { key } => Answer::Cached(key),
            Resume::Invite { tx } | Resume::Route { tx, .. } => Answer::Tx(*tx),
        }
    }
}

const UNAVAILABLE: &str = "User Backend Unavailable";

impl SipEndpoint {
    pub(super) fn park(
        &mut self,
        req: Req<'_, '_>,
        answer: Answer<'_>,
        key: RemoteKey,
        out: &mut Output,
    ) {
        let resume = match answer {
            Answer::Tx(tx) => Resume::Invite { tx },
            Answer::Cached(k) => Resume::Register { key: k.to_vec() },
            Answer::Stateless => return self.unavailable(req, answer, out),
        };
        self.park_as(req, resume, key, out);
    }

    /// Parks an admitted INVITE until a remote backend says whether its
    /// callee exists.
    pub(super) fn park_for_callee(
        &mut self,
        req: Req<'_, '_>,
        tx: TxId,
        guest: bool,
        key: RemoteKey,
        out: &mut Output,
    ) {
        self.park_as(req, Resume::Route { tx, guest }, key, out);
    }

    fn park_as(&mut self, req: Req<'_, '_>, resume: Resume, key: RemoteKey, out: &mut Output) {
        if !self.parked.has_room() {
            return self.unavailable(req, resume.answer(), out);
        }
        if !self.parked.any(|p| p.is_user(&key)) {
            let asked = self.settings.user_queries.as_ref().is_some_and(|q| {
                q.try_send(UserQuery {
                    shard: self.ctx.id,
                    key: key.clone(),
                })
                .is_ok()
            });
            if !asked {
                return self.unavailable(req, resume.answer(), out);
            }
        }
        // Late when more than the timeout has passed.
        let deadline = req.now.mono_ms + self.settings.user_query_timeout_ms + 1;
        let parked = Parked {
            request: req.msg.as_bytes().to_vec(),
            src: req.src,
            waits: Waits::User { key, resume },
        };
        // Room was checked above.
        let _ = self.parked.insert(deadline, parked);
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
        for p in self.parked.take_where(|p| p.is_user(&key)) {
            let Waits::User { resume, .. } = p.waits else {
                continue;
            };
            match resume {
                Resume::Register { key } => {
                    self.txs.forget(&key);
                    if let Ok(mut msg) = Message::parse(&p.request) {
                        let checked = msg.check_and_keep();
                        self.handle(now, &msg, checked, p.src, out);
                    }
                }
                Resume::Invite { tx } | Resume::Route { tx, .. } => {
                    // The transaction may have ended meanwhile (timer,
                    // eviction): then there is nobody to answer.
                    if !self.calls.is_proceeding(tx) {
                        continue;
                    }
                    if let Ok(msg) = Message::parse(&p.request) {
                        let req = Req::new(now, &msg, p.src);
                        match resume {
                            Resume::Route { guest, .. } => {
                                self.route_invite(req, tx, guest, None, out);
                            }
                            _ => self.on_invite(req, tx, out),
                        }
                    }
                    self.flush_calls(out);
                }
            }
        }
    }

    /// 503 for a request whose answer did not come in time.
    pub(super) fn user_backend_late(&mut self, now: Now, p: Parked, out: &mut Output) {
        let Waits::User { resume, .. } = p.waits else {
            return;
        };
        let Ok(msg) = Message::parse(&p.request) else {
            return;
        };
        let req = Req::new(now, &msg, p.src);
        match resume {
            Resume::Register { .. } => self.unavailable(req, resume.answer(), out),
            Resume::Invite { tx } | Resume::Route { tx, .. } => {
                if self.calls.is_proceeding(tx) {
                    self.unavailable(req, resume.answer(), out);
                    self.flush_calls(out);
                }
            }
        }
    }

    fn unavailable(&mut self, req: Req<'_, '_>, answer: Answer<'_>, out: &mut Output) {
        let retry = [("Retry-After", "5".to_string())];
        let reply = Reply::new(503).reason(UNAVAILABLE).headers(&retry);
        self.respond(req, answer, reply, out);
    }
}
