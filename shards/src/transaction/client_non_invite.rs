//! The client non-INVITE transaction (RFC 3261 17.1.2): Trying, Proceeding,
//! Completed with timers E (retransmission), F (timeout) and K.

use crate::transport::Peer;

use crate::sip::Message;

use super::timers::{earliest, Deadline, Retransmit, Timer};
use super::{event, send, Action, Bytes, Config, Event, State, TxId};

pub(crate) struct ClientNonInvite {
    id: TxId,
    pub(crate) dest: Peer,
    reliable: bool,
    state: State,
    /// What Trying and Proceeding resend; dropped in Completed, which only
    /// absorbs response retransmissions.
    request: Option<Bytes>,
    /// Timer E.
    retransmit: Retransmit,
    /// Timer F, then K.
    end: Deadline,
}

impl ClientNonInvite {
    /// Sends the request and enters Trying.
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
        let mut tx = ClientNonInvite {
            id,
            dest,
            reliable,
            state: State::Trying,
            request: Some(request),
            retransmit: Retransmit::default(),
            end: Deadline::default(),
        };
        if !reliable {
            tx.retransmit.start(now, cfg.t1_ms);
        }
        tx.end.set(now, cfg.timeout_ms(), Timer::F);
        tx
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn request(&self) -> Option<&Bytes> {
        self.request.as_ref()
    }

    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        earliest(self.retransmit.at(), self.end.at())
    }

    /// A response matched this transaction. Returns whether the TU sees it.
    pub(crate) fn on_response(&mut self, now: u64, cfg: &Config, msg: &Message<'_>) -> bool {
        let Some(code) = msg.status_code() else {
            return false;
        };
        match (self.state, code) {
            (State::Trying | State::Proceeding, 100..=199) => {
                // Timer E keeps running; once it fires it repeats every T2.
                self.state = State::Proceeding;
                true
            }
            (State::Trying | State::Proceeding, _) => {
                self.retransmit.stop();
                if self.reliable {
                    self.end.clear();
                    self.state = State::Terminated;
                } else {
                    self.state = State::Completed;
                    self.end.set(now, cfg.t4_ms, Timer::K);
                }
                self.request = None;
                true
            }
            // Completed absorbs retransmitted responses.
            _ => false,
        }
    }

    /// Fires the timers due at `now`.
    pub(crate) fn on_timeout(&mut self, now: u64, cfg: &Config, out: &mut Vec<Action>) {
        if let Some(timer) = self.end.take_due(now) {
            if timer == Timer::F {
                event(out, self.id, Event::Timeout(Timer::F));
            }
            self.state = State::Terminated;
            return;
        }
        if self.retransmit.is_due(now) {
            match self.state {
                State::Trying => {
                    if let Some(request) = &self.request {
                        send(out, self.id, self.dest, request);
                    }
                    self.retransmit.back_off(now, cfg.t2_ms);
                }
                State::Proceeding => {
                    if let Some(request) = &self.request {
                        send(out, self.id, self.dest, request);
                    }
                    self.retransmit.start(now, cfg.t2_ms);
                }
                _ => self.retransmit.stop(),
            }
        }
    }
}
