//! Requests parked while a webhook answers for them (a remote user
//! backend, `remote_users`; the HTTP router, `router_calls`), and the one
//! place their deadlines, and those of `spam` transactions, are acted on.

use crate::transport::Peer;

use super::remote_users::Resume;
use super::SipEndpoint;
use crate::runtime::Output;
use crate::time::Now;
use crate::transaction::TxId;
use crate::users::RemoteKey;

/// A request waiting for a webhook: its bytes, where it came from and
/// what it waits for.
pub(super) struct Parked {
    pub(super) request: Vec<u8>,
    pub(super) src: Peer,
    pub(super) waits: Waits,
}

/// What a parked request waits for.
pub(super) enum Waits {
    /// A remote user backend's answer to `key`, then goes on as `resume`.
    User { key: RemoteKey, resume: Resume },
    /// The HTTP router's decision for the INVITE on this transaction.
    Router { tx: TxId },
}

impl Parked {
    /// Waits for the user backend's answer to `key`.
    pub(super) fn is_user(&self, key: &RemoteKey) -> bool {
        matches!(&self.waits, Waits::User { key: k, .. } if k == key)
    }

    /// The INVITE on this server transaction, waiting for the router or
    /// for the user backend.
    pub(super) fn is_invite(&self, tx: TxId) -> bool {
        match &self.waits {
            Waits::Router { tx: t } => *t == tx,
            Waits::User { resume, .. } => matches!(
                resume,
                Resume::Invite { tx: t } | Resume::Route { tx: t, .. } if *t == tx
            ),
        }
    }
}

impl SipEndpoint {
    /// Acts on every deadline passed: parked requests the webhook did not
    /// answer in time, `spam` transactions that absorbed long enough.
    pub(super) fn expire_pending(&mut self, now: Now, out: &mut Output) {
        for (_, p) in self.parked.expire(now.mono_ms) {
            match p.waits {
                Waits::User { ref key, .. } => {
                    // One question, one deadline: requests parked later for
                    // the same question end with the first.
                    let key = key.clone();
                    let same = self.parked.take_where(|q| q.is_user(&key));
                    for q in std::iter::once(p).chain(same) {
                        self.user_backend_late(now, q, out);
                    }
                }
                Waits::Router { tx } => self.router_late(now, p.request, p.src, tx, out),
            }
        }
        for (_, tx) in self.spam.expire(now.mono_ms) {
            self.calls
                .handle(now, crate::call::Input::Abandon(tx), self.relay.as_mut());
        }
    }
}
