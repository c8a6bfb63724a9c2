//! The client INVITE transaction (RFC 3261 17.1.1 with the RFC 6026 Accepted
//! state): timers A, B, D, M, the ACK for 300-699 finals, and a CANCEL held back
//! until the first provisional response (RFC 3261 9.1).

use crate::transport::Peer;

use crate::sip::{write_head_only, Message};

use super::ack::build_ack;
use super::timers::{earliest, Deadline, Retransmit, Timer};
use super::{event, send, Action, Bytes, Config, Event, State, TxId};

/// Whether the TU asked to cancel, and how far that got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cancel {
    /// Not asked.
    No,
    /// Asked while Calling: sent when the first provisional arrives.
    Pending,
    /// Sent (or no longer possible).
    Done,
}

pub(crate) struct ClientInvite {
    id: TxId,
    dest: Peer,
    reliable: bool,
    state: State,
    request: Bytes,
    /// Whether `request` still carries a body (`drop_body` has work).
    body: bool,
    ack: Option<Bytes>,
    /// Timer A.
    retransmit: Retransmit,
    /// Timer B, D or M.
    end: Deadline,
    cancel: Cancel,
    /// Times timer A resent the INVITE (saturating).
    resent: u8,
}

impl ClientInvite {
    /// Sends the INVITE and enters Calling.
    pub(crate) fn start(
        id: TxId,
        now: u64,
        cfg: &Config,
        request: Bytes,
        dest: Peer,
        reliable: bool,
        out: &mut Vec<Action>,
    ) -> Self {
        send(out, id, dest, &request);
        let mut tx = ClientInvite {
            id,
            dest,
            reliable,
            state: State::Calling,
            request,
            body: true,
            ack: None,
            retransmit: Retransmit::default(),
            end: Deadline::default(),
            cancel: Cancel::No,
            resent: 0,
        };
        if !reliable {
            tx.retransmit.start(now, cfg.t1_ms);
        }
        tx.end.set(now, cfg.timeout_ms(), Timer::B);
        tx
    }

    /// Says whether the request has a body (so [`ClientInvite::start`]'s
    /// caller, which parsed it, spares `drop_body` a parse when it has none).
    pub(crate) fn with_body(mut self, body: bool) -> Self {
        self.body = body;
        self
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Sent, resent, and still not a word back: the callee (or the way to
    /// it) is not keeping up. A live UA answers 100 or 180 within T1. Only
    /// the first [`super::STALL_RESENDS`] resends count (about 3.5 s): past
    /// them the callee is gone rather than late, and the count follows what
    /// is stalling now, so it falls soon after the load does.
    pub(crate) fn stalled(&self) -> bool {
        self.state == State::Calling && (1..=super::STALL_RESENDS).contains(&self.resent)
    }

    pub(crate) fn request(&self) -> &Bytes {
        &self.request
    }

    pub(crate) fn dest(&self) -> (Peer, bool) {
        (self.dest, self.reliable)
    }

    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        earliest(self.retransmit.at(), self.end.at())
    }

    /// A response matched this transaction. Returns whether the TU sees it.
    pub(crate) fn on_response(
        &mut self,
        now: u64,
        cfg: &Config,
        msg: &Message<'_>,
        scratch: &mut Vec<u8>,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(code) = msg.status_code() else {
            return false;
        };
        match (self.state, code) {
            (State::Calling | State::Proceeding, 100..=199) => {
                if self.state == State::Calling {
                    // Timer B only runs in Calling.
                    self.end.clear();
                }
                self.state = State::Proceeding;
                self.retransmit.stop();
                true
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.retransmit.stop();
                self.cancel = Cancel::Done;
                self.state = State::Accepted;
                self.end.set(now, cfg.timeout_ms(), Timer::M);
                self.drop_body(scratch);
                true
            }
            (State::Calling | State::Proceeding, _) => {
                self.retransmit.stop();
                self.cancel = Cancel::Done;
                self.ack = Message::parse(&self.request)
                    .ok()
                    .and_then(|invite| build_ack(&invite, msg, scratch).ok())
                    .map(|_| Bytes::from(&scratch[..]));
                if let Some(ack) = &self.ack {
                    send(out, self.id, self.dest, ack);
                }
                if self.reliable {
                    self.state = State::Terminated;
                } else {
                    self.state = State::Completed;
                    self.end.set(now, cfg.timer_d_ms, Timer::D);
                    self.drop_body(scratch);
                }
                true
            }
            (State::Completed, 300..) => {
                if let Some(ack) = &self.ack {
                    send(out, self.id, self.dest, ack);
                }
                false
            }
            // Every 2xx reaches the TU, which ACKs it or hangs up (RFC 6026).
            (State::Accepted | State::Completed, 200..=299) => true,
            _ => false,
        }
    }

    /// Accepted (timer M) and Completed (timer D) linger only to ACK
    /// retransmitted finals: the TU's ACK of a 2xx takes the request's
    /// headers, not its body, so the request is kept without the SDP.
    fn drop_body(&mut self, scratch: &mut Vec<u8>) {
        if !std::mem::take(&mut self.body) {
            return;
        }
        if let Ok(msg) = Message::parse(&self.request) {
            write_head_only(scratch, &msg);
            self.request = Bytes::from(&scratch[..]);
        }
    }

    /// Fires the timers due at `now`.
    pub(crate) fn on_timeout(&mut self, now: u64, _cfg: &Config, out: &mut Vec<Action>) {
        if let Some(timer) = self.end.take_due(now) {
            if timer == Timer::B {
                event(out, self.id, Event::Timeout(Timer::B));
            }
            self.state = State::Terminated;
            return;
        }
        if self.retransmit.is_due(now) {
            if self.state == State::Calling {
                send(out, self.id, self.dest, &self.request);
                self.resent = self.resent.saturating_add(1);
                self.retransmit.back_off(now, u64::MAX);
            } else {
                self.retransmit.stop();
            }
        }
    }

    /// The TU wants this INVITE cancelled. `Ok(true)`: send the CANCEL now;
    /// `Ok(false)`: it goes out with the first provisional response.
    pub(crate) fn request_cancel(&mut self) -> Result<bool, ()> {
        match (self.state, self.cancel) {
            (State::Calling, Cancel::No) => {
                self.cancel = Cancel::Pending;
                Ok(false)
            }
            (State::Proceeding, Cancel::No) => {
                self.cancel = Cancel::Done;
                Ok(true)
            }
            _ => Err(()),
        }
    }

    /// Whether a held-back CANCEL must go out now (a provisional arrived).
    pub(crate) fn take_pending_cancel(&mut self) -> bool {
        if self.cancel == Cancel::Pending && self.state == State::Proceeding {
            self.cancel = Cancel::Done;
            true
        } else {
            false
        }
    }

    /// The CANCEL went out: without a final response within 64*T1 the
    /// transaction ends as if timer B fired (RFC 3261 9.1).
    pub(crate) fn cancel_sent(&mut self, now: u64, cfg: &Config) {
        if self.state == State::Proceeding {
            self.end.set(now, cfg.timeout_ms(), Timer::B);
        }
    }
}
