//! REGISTER on its shard: the domain check, digest auth, the binding
//! change `register::plan` builds, and the wait for the store writer (a
//! `Pending` entry until `ShardMsg::Registered` comes back).

use crate::transport::Peer;

use super::pending::NEVER;
use super::register::{self, RegisterStep};
use super::{Answer, Reply, Req, SipEndpoint};
use crate::control_link::ControlRequest;
use crate::registrar::ChangeError;
use crate::runtime::{Output, RegisterFailure, ShardStats};
use crate::sip::Message;
use crate::time::Now;

/// A REGISTER waiting for the store writer.
pub(super) struct PendingRegister {
    request: Vec<u8>,
    src: Peer,
    /// Its answer is cached under this transaction key.
    key: Vec<u8>,
}

impl SipEndpoint {
    pub(super) fn on_register(&mut self, req: Req<'_, '_>, key: Vec<u8>, out: &mut Output) {
        let Req { now, msg, src } = req;
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
                req,
                Answer::Cached(&key),
                Reply::new(403).reason("Domain not served here"),
                out,
            );
            return;
        }
        let settings = self.settings.clone();
        let realm = settings.realm_for(&to_host).to_string();
        let Some(username) = self.require_auth(req, &realm, false, Answer::Cached(&key), out)
        else {
            return;
        };
        match register::plan(&settings, now, msg, src, &username) {
            RegisterStep::Answer(code, reason, headers) => {
                let headers: Vec<(&str, String)> = headers.into_iter().collect();
                self.respond(
                    req,
                    Answer::Cached(&key),
                    Reply::new(code).maybe_reason(reason).headers(&headers),
                    out,
                );
            }
            RegisterStep::Store(change) => {
                let token = self.registers.next_token();
                let sent = self.control.send(ControlRequest::ApplyBindings {
                    shard: self.ctx.id,
                    token,
                    change,
                });
                if sent.is_err() {
                    self.respond(
                        req,
                        Answer::Cached(&key),
                        Reply::new(500).reason("Store unavailable"),
                        out,
                    );
                    return;
                }
                // The store writer always answers: no deadline.
                let parked = PendingRegister {
                    request: msg.as_bytes().to_vec(),
                    src,
                    key,
                };
                let _ = self.registers.insert(NEVER, parked);
            }
        }
    }

    pub(super) fn on_registered(
        &mut self,
        now: Now,
        token: u64,
        result: Result<crate::registrar::ChangeOutcome, RegisterFailure>,
        out: &mut Output,
    ) {
        let Some(p) = self.registers.take(token) else {
            return;
        };
        let Ok(msg) = Message::parse(&p.request) else {
            return;
        };
        let req = Req::new(now, &msg, p.src);
        match result {
            Ok(outcome) => {
                ShardStats::add(&self.ctx.stats.registrations_ok, 1);
                let headers: Vec<(&str, String)> =
                    register::contact_lines(&outcome.bindings, now.unix)
                        .into_iter()
                        .map(|c| ("Contact", c))
                        .collect();
                self.respond(
                    req,
                    Answer::Cached(&p.key),
                    Reply::new(200).headers(&headers),
                    out,
                );
            }
            Err(RegisterFailure::Refused(ChangeError::OutOfOrder)) => {
                self.respond(
                    req,
                    Answer::Cached(&p.key),
                    Reply::new(500)
                        .reason("CSeq out of order")
                        .headers(&[("Retry-After", "1".into())]),
                    out,
                );
            }
            // [proxy] max_contacts_per_aor (registrar/binding.rs).
            Err(RegisterFailure::Refused(ChangeError::TooManyContacts)) => {
                self.respond(
                    req,
                    Answer::Cached(&p.key),
                    Reply::new(403).reason("Too many contacts"),
                    out,
                );
            }
            Err(RegisterFailure::Store(e)) => {
                tracing::error!(
                    call_id = msg.call_id().unwrap_or_default(),
                    "registration not stored: {e}"
                );
                self.respond(
                    req,
                    Answer::Cached(&p.key),
                    Reply::new(500)
                        .reason("Store error")
                        .headers(&[("Retry-After", "5".into())]),
                    out,
                );
            }
        }
    }
}
