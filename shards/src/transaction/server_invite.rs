//! The server INVITE transaction (RFC 3261 17.2.1 with the RFC 6026 Accepted
//! state): provisional and final responses resent on INVITE retransmissions,
//! timers G, H, I, L, and the 2xx retransmission until its ACK (RFC 3261
//! 13.3.1.4, with [`Config::retransmit_2xx`]).

use crate::transport::Peer;

use super::timers::{earliest, Deadline, Retransmit, Timer};
use super::{event, send, Action, Bytes, Config, Event, State, TxError, TxId};

pub(crate) struct ServerInvite {
    id: TxId,
    dest: Peer,
    reliable: bool,
    state: State,
    /// The latest response the TU sent.
    last: Option<Bytes>,
    /// Timer G, or the 2xx retransmission.
    retransmit: Retransmit,
    /// Timer H, I or L.
    end: Deadline,
    /// Accepted: waiting for the ACK of the 2xx (retransmit_2xx).
    awaiting_ack: bool,
    /// Times the final response was resent (saturating).
    resent: u8,
}

impl ServerInvite {
    /// Where its responses go: the peer its request came from.
    pub(crate) fn reply_to(&self) -> Peer {
        self.dest
    }

    /// A new INVITE arrived from `dest`: Proceeding.
    pub(crate) fn new(id: TxId, dest: Peer, reliable: bool) -> Self {
        ServerInvite {
            id,
            dest,
            reliable,
            state: State::Proceeding,
            last: None,
            retransmit: Retransmit::default(),
            end: Deadline::default(),
            awaiting_ack: false,
            resent: 0,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// The final response was resent and its ACK has still not come: the
    /// caller (or the way to it) is not keeping up. Only the first
    /// [`super::STALL_RESENDS`] resends count, as for a client INVITE.
    pub(crate) fn stalled(&self) -> bool {
        (1..=super::STALL_RESENDS).contains(&self.resent)
            && match self.state {
                State::Completed => true,
                State::Accepted => self.awaiting_ack,
                _ => false,
            }
    }

    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        earliest(self.retransmit.at(), self.end.at())
    }

    /// The TU sends a response with status `code`.
    pub(crate) fn respond(
        &mut self,
        now: u64,
        cfg: &Config,
        code: u16,
        data: Bytes,
        out: &mut Vec<Action>,
    ) -> Result<(), TxError> {
        match (self.state, code) {
            (State::Proceeding, 100..=199) => {}
            (State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.end.set(now, cfg.timeout_ms(), Timer::L);
                self.awaiting_ack = cfg.retransmit_2xx;
                if cfg.retransmit_2xx && !self.reliable {
                    self.retransmit.start(now, cfg.t1_ms);
                }
            }
            (State::Proceeding, _) => {
                self.state = State::Completed;
                if !self.reliable {
                    self.retransmit.start(now, cfg.t1_ms);
                }
                self.end.set(now, cfg.timeout_ms(), Timer::H);
            }
            // The TU may retransmit its 2xx itself.
            (State::Accepted, 200..=299) => {}
            _ => return Err(TxError::WrongState),
        }
        send(out, self.id, self.dest, &data);
        self.last = Some(data);
        Ok(())
    }

    /// The INVITE arrived again: resend the latest response, if any.
    pub(crate) fn on_retransmission(&mut self, out: &mut Vec<Action>) {
        if let (State::Proceeding | State::Completed | State::Accepted, Some(last)) =
            (self.state, &self.last)
        {
            send(out, self.id, self.dest, last);
        }
    }

    /// An ACK matched. Returns whether the TU sees it (the ACK of a 2xx).
    /// Only absorbing retransmissions now: confirmed, or accepted with its
    /// ACK in.
    pub(crate) fn lingering(&self) -> bool {
        match self.state {
            State::Confirmed => true,
            State::Accepted => !self.awaiting_ack,
            _ => false,
        }
    }

    pub(crate) fn on_ack(&mut self, now: u64, cfg: &Config) -> bool {
        match self.state {
            State::Completed => {
                self.retransmit.stop();
                // Confirmed only absorbs ACKs: the final is not sent again.
                self.last = None;
                if self.reliable {
                    self.end.clear();
                    self.state = State::Terminated;
                } else {
                    self.state = State::Confirmed;
                    self.end.set(now, cfg.t4_ms, Timer::I);
                }
                false
            }
            State::Accepted => {
                self.retransmit.stop();
                self.awaiting_ack = false;
                // The caller has the 2xx: lingering until timer L needs
                // only the key, not a copy of the response.
                self.last = None;
                true
            }
            // Confirmed absorbs ACK retransmissions; an ACK before any final
            // response is meaningless.
            _ => false,
        }
    }

    /// Fires the timers due at `now`.
    pub(crate) fn on_timeout(&mut self, now: u64, cfg: &Config, out: &mut Vec<Action>) {
        if let Some(timer) = self.end.take_due(now) {
            if timer == Timer::H || (timer == Timer::L && self.awaiting_ack) {
                event(out, self.id, Event::Timeout(timer));
            }
            self.retransmit.stop();
            self.state = State::Terminated;
            return;
        }
        if self.retransmit.is_due(now) {
            match (self.state, &self.last) {
                (State::Completed | State::Accepted, Some(last)) => {
                    send(out, self.id, self.dest, last);
                    self.resent = self.resent.saturating_add(1);
                    self.retransmit.back_off(now, cfg.t2_ms);
                }
                _ => self.retransmit.stop(),
            }
        }
    }
}
