//! What goes into a call's SIP flow, without parsing anything twice: a
//! message that comes in is recorded under the call its Call-ID names
//! (live, or just ended and still lingering); what we send is recorded
//! under the call and leg its transaction belongs to (`flow_of_tx`,
//! registered when the transaction starts or when a request naming the
//! call arrives); the 100 Trying of a new INVITE waits in `fresh` until
//! the INVITE becomes a call. A finished call's flow is handed over when
//! its linger runs out: soon after the call ends when every transaction of
//! the call has its answer, later when one is still waiting.

use crate::transport::Peer;

use super::engine::{CallEngine, Output};
use super::flow::{LINGER_MS, RECHECK_LINGER_MS};
use super::model::Leg;
use super::timers::Deadline;
use crate::sip::Message;
use crate::transaction::TxId;

impl CallEngine {
    /// What the table sends for `tx` belongs to `leg` of `call`.
    pub(super) fn flow_tx(&mut self, tx: TxId, call: u64, leg: Leg) {
        if self.flow_of_tx.insert(tx, (call, leg)).is_none() {
            self.flow_txs.entry(call).or_default().push(tx);
        }
    }

    /// Whether every transaction of `call` is done with its exchange (gone,
    /// or only absorbing retransmissions): nothing more is expected for its
    /// flow but a peer's retransmission.
    fn flow_settled(&self, call: u64) -> bool {
        self.flow_txs
            .get(&call)
            .is_none_or(|txs| txs.iter().all(|&tx| self.table.is_settled(tx)))
    }

    /// A finished call's linger check: its flow is handed over once every
    /// transaction of the call is settled, [`super::flow::SETTLED_LINGER_MS`] after the
    /// call ended (most calls), else checked again every
    /// [`RECHECK_LINGER_MS`] up to [`LINGER_MS`] (a BYE still unanswered,
    /// a final not ACKed: the retransmissions are what the flow is for).
    pub(super) fn flow_linger_due(&mut self, call: u64, now_ms: u64) {
        let Some(ended) = self.closing.get(&call).map(|c| c.ended_ms) else {
            return;
        };
        let last = ended + LINGER_MS;
        if now_ms >= last || self.flow_settled(call) {
            self.hand_over_flow(call);
        } else {
            let next = (now_ms + RECHECK_LINGER_MS).min(last);
            self.timers.push(next, call, Deadline::FlowLinger);
        }
    }

    /// Records a message that came in for one of our calls (or for one
    /// that just ended) in its flow; anything else is ignored.
    pub(super) fn capture_in(&mut self, unix_ms: u64, peer: Peer, msg: &Message<'_>) {
        let Some(cid) = msg.call_id().map(str::trim) else {
            return;
        };
        if let Some(&(call, leg)) = self.by_call_id.get(cid) {
            if let Some(c) = self.calls.get_mut(&call) {
                c.flow.push_checked(unix_ms, peer.addr, leg.label(), msg);
            }
        } else if let Some(call) = self.closing_ids.get(cid) {
            if let Some(c) = self.closing.get_mut(call) {
                let label = if cid == c.call_id { "caller" } else { "callee" };
                c.flow.push_checked(unix_ms, peer.addr, label, msg);
            }
        }
    }

    /// The live or just-ended call (and leg) a message's Call-ID names.
    pub(super) fn flow_owner(&self, msg: &Message<'_>) -> Option<(u64, Leg)> {
        let cid = msg.call_id()?.trim();
        if let Some(&owner) = self.by_call_id.get(cid) {
            return Some(owner);
        }
        let call = *self.closing_ids.get(cid)?;
        let c = self.closing.get(&call)?;
        let leg = if cid == c.call_id {
            Leg::Caller
        } else {
            Leg::Callee(0)
        };
        Some((call, leg))
    }

    /// Records a message we sent on `leg` of `call` in its flow (the call
    /// may have just ended).
    pub(super) fn capture_out(
        &mut self,
        unix_ms: u64,
        call: u64,
        leg: Leg,
        peer: Peer,
        data: &[u8],
    ) {
        let flow = match self.calls.get_mut(&call) {
            Some(c) => &mut c.flow,
            None => match self.closing.get_mut(&call) {
                Some(c) => &mut c.flow,
                None => return,
            },
        };
        flow.push(unix_ms, false, peer.addr, leg.label(), data);
    }

    /// The sends of the new INVITE `tx` before it became `call` (its 100
    /// Trying), for the call's flow.
    pub(super) fn claim_fresh(&mut self, tx: TxId, call: u64) {
        self.flow_tx(tx, call, Leg::Caller);
        let Some((t, sent)) = self.fresh.take() else {
            return;
        };
        if t != tx {
            return;
        }
        for (unix_ms, dest, data) in sent {
            self.capture_out(unix_ms, call, Leg::Caller, dest, &data);
        }
    }

    /// Hands over a finished call's flow (its linger ran out, or the shard stops).
    pub(super) fn hand_over_flow(&mut self, call: u64) {
        self.flow_txs.remove(&call);
        let Some(c) = self.closing.remove(&call) else {
            return;
        };
        self.closing_ids.remove(&c.call_id);
        for l in &c.leg_ids {
            self.closing_ids.remove(l);
        }
        self.records.push(Output::Flow {
            json: c.flow.into_stored(),
            call_id: c.call_id,
        });
    }
}
