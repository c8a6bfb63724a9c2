//! The server non-INVITE transaction (RFC 3261 17.2.2): Trying, Proceeding,
//! Completed with timer J; retransmitted requests get the latest response.

use crate::transport::Peer;

use super::timers::{Deadline, Timer};
use super::{send, Action, Bytes, Config, State, TxError, TxId};

pub(crate) struct ServerNonInvite {
    id: TxId,
    dest: Peer,
    reliable: bool,
    state: State,
    /// The latest response the TU sent.
    last: Option<Bytes>,
    /// Timer J.
    end: Deadline,
}

impl ServerNonInvite {
    /// Where its responses go: the peer its request came from.
    pub(crate) fn reply_to(&self) -> Peer {
        self.dest
    }

    /// A new request arrived from `dest`: Trying.
    pub(crate) fn new(id: TxId, dest: Peer, reliable: bool) -> Self {
        ServerNonInvite {
            id,
            dest,
            reliable,
            state: State::Trying,
            last: None,
            end: Deadline::default(),
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        self.end.at()
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
            (State::Trying | State::Proceeding, 100..=199) => self.state = State::Proceeding,
            (State::Trying | State::Proceeding, _) => {
                if self.reliable {
                    self.state = State::Terminated;
                } else {
                    self.state = State::Completed;
                    self.end.set(now, cfg.timeout_ms(), Timer::J);
                }
            }
            _ => return Err(TxError::WrongState),
        }
        send(out, self.id, self.dest, &data);
        self.last = Some(data);
        Ok(())
    }

    /// The request arrived again: nothing while Trying, else the latest
    /// response again.
    pub(crate) fn on_retransmission(&mut self, out: &mut Vec<Action>) {
        if let (State::Proceeding | State::Completed, Some(last)) = (self.state, &self.last) {
            send(out, self.id, self.dest, last);
        }
    }

    /// Fires the timers due at `now`.
    pub(crate) fn on_timeout(&mut self, now: u64) {
        if self.end.take_due(now).is_some() {
            self.state = State::Terminated;
        }
    }
}
