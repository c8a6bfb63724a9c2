//! [`CallEngine`]: the B2BUA of one shard, sans-IO. It owns the calls and
//! their transaction table; the endpoint hands it the SIP messages of the
//! call layer, the calls it routed and the commands of the control core.
//!
//! # Surface and poll order
//!
//! ```text
//! match engine.handle(now, Input::Sip { msg, src }, relay) {   // every input
//!     Handled::Request(tx) => /* a new server transaction: the endpoint decides */,
//!     Handled::Done | Handled::Retransmission { .. } => {}
//!     other => /* 503, 400, counted drops */,
//! }
//! engine.handle_timeout(now, relay);        // when poll_timeout() is due
//! while let Some(out) = engine.poll_output() { /* Transmit, Cdr, Flow */ }
//! let wake_at = engine.poll_timeout();      // earliest deadline, mono ms
//! ```
//!
//! After any `handle` or `handle_timeout`, drain `poll_output` before the
//! next input: first the datagrams the input made, in the order they were
//! made, then the records it made (a call's CDR and flow after its last
//! transmits). The relay (`relay`) is the shard's, lent for
//! the call: the engine asks it for ports, tells it what each side
//! signalled and closes its sessions; it never touches a socket.
//!
//! The work is split by concern: `setup.rs` places calls and handles the
//! callee legs' answers, `in_dialog.rs` requests inside a call, `commands.rs`
//! the control core's commands, `media.rs` SDP through the relay,
//! `timers.rs` the deadlines, `record.rs` the CDR, `views.rs` the listings.

use std::collections::{HashMap, VecDeque};

use crate::idmap::IdMap;
use crate::transport::Peer;

use super::dialog::Dialog;
use super::flow::{Flow, SETTLED_LINGER_MS};
use super::ids::IdGen;
use super::model::{Call, Leg, Phase, Target};
use super::ours::Ours;
use super::record::{self, Ending};
use super::timers::{Deadline, Timers};
use crate::cdr::Cdr;
use crate::media::relay::MediaRelay;
use crate::sip::{Message, Method};
use crate::time::Now;
use crate::transaction::{self, Action, Bytes, Event, Received, TransactionTable, TxId, TxMap};

use super::commands::{Command, CommandError};
use super::model::{NewCall, Originate};

/// What the engine needs to know about us.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Host and port we put in Via and Contact.
    pub host: String,
    pub port: u16,
    /// Our SIP TCP port, for Via and Contact toward peers on TCP (0: none).
    pub tcp_port: u16,
    /// Our SIP TLS port, for Via and Contact toward peers on TLS (0: none).
    pub tls_port: u16,
    /// Our SIP WebSocket ports, for Via and Contact toward browsers (0:
    /// none).
    pub ws_port: u16,
    pub wss_port: u16,
    /// Ring timeout of a call with no other, ms.
    pub max_ring_ms: u64,
    pub server_name: String,
    /// Most bytes of a call's stored SIP flow (`[callrecord] max_flow_bytes`).
    pub max_flow_bytes: usize,
    /// Most callee legs one call rings (`[security] max_forks_per_call`);
    /// targets beyond are not dialled.
    pub max_forks: usize,
}

/// What the engine is told.
pub enum Input<'a> {
    /// A SIP message of the call layer: any response; INVITE, ACK, CANCEL,
    /// BYE, or a request inside a dialog. Already parsed and checked.
    Sip { msg: &'a Message<'a>, src: Peer },
    /// A new INVITE the endpoint admitted and routed.
    Call(NewCall<'a>),
    /// Click-to-dial. Answered with [`Handled::Originated`].
    Originate(Originate),
    /// A command on the call whose caller leg has `call_id`. Answered with
    /// [`Handled::Command`].
    Command { call_id: &'a str, command: Command },
    /// The endpoint answers a server transaction it was handed
    /// ([`Handled::Request`]) with `response`.
    Answer { tx: TxId, response: &'a [u8] },
    /// The endpoint drops a server transaction without a word (spam).
    Abandon(TxId),
    /// The relay saw no RTP on this call for its timeout.
    MediaTimeout(u64),
    /// The shard stops: every call is hung up (`bySystem`, `reason`) and
    /// every flow handed over.
    Stop { reason: &'a str },
}

/// What became of an input, when the caller must know at once.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Taken care of: answered, relayed, or counted.
    Done,
    /// A new server transaction outside any call (a new INVITE, a BYE or
    /// CANCEL for nothing of ours): the endpoint decides and answers it
    /// with [`Input::Answer`].
    Request(TxId),
    /// A request inside a dialog that is none of ours, or whose tags are
    /// not those of the dialog its Call-ID names: the endpoint answers 481
    /// on this server transaction.
    NoDialog(TxId),
    /// A retransmission its transaction absorbed.
    Retransmission {
        invite: bool,
    },
    /// No room for another transaction: the endpoint answers 503.
    Full,
    /// Not a request a transaction can take: the endpoint answers 400.
    Invalid,
    /// A response from elsewhere than its request went to (dropped).
    WrongSource,
    /// A response without a client transaction (dropped).
    Stray,
    Command(Result<(), CommandError>),
    /// Click-to-dial placed: the call's id.
    Originated(Result<String, CommandError>),
}

/// What the engine asks of the shard, in the order it was made.
#[derive(Debug)]
pub enum Output {
    /// Put a SIP message on the wire.
    Transmit { dest: Peer, data: Bytes },
    /// A finished call's record, for the store.
    Cdr(Box<Cdr>),
    /// A finished call's SIP flow (JSON), for the store.
    Flow { call_id: String, json: Vec<u8> },
}

/// Counts of requests and SDPs the engine refused, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefusedRequests {
    /// SDP media addresses refused (488) or ignored: unspecified,
    /// multicast, broadcast, or loopback/our own for a leg that is not.
    pub media_address: u64,
    /// SDPs whose SRTP could not be done (488, or hung up after an answer).
    pub srtp: u64,
    /// Tags not those of the dialog the Call-ID names (481).
    pub dialog_mismatch: u64,
    /// CSeq not above the last one of that direction (500).
    pub cseq_out_of_order: u64,
}

/// A datagram sent for a new INVITE before it became a call: (unix ms,
/// where, what).
type FreshSend = (u64, Peer, Bytes);

/// What a transaction the engine waits on is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TxRole {
    /// Our INVITE to callee leg i.
    CalleeInvite(usize),
    /// A request we relayed to `to`; answer the server transaction with its final.
    Relay { server: TxId, to: Leg },
    /// Our INVITE to the first party of a click-to-dial call.
    OriginInvite,
    /// A BYE or CANCEL we sent, or a caller's INVITE: nothing to do with
    /// its answer.
    Ignore,
}

/// A finished call's flow, still collecting late messages.
pub(super) struct Closing {
    pub(super) call_id: String,
    pub(super) leg_ids: Vec<String>,
    pub(super) flow: Flow,
    /// When the call ended, mono ms.
    pub(super) ended_ms: u64,
}

/// The per-input context: the time and the shard's relay, lent.
pub(super) struct Cx<'r> {
    pub(super) now: Now,
    pub(super) relay: Option<&'r mut MediaRelay>,
}

/// The calls of one shard.
pub struct CallEngine {
    pub(super) cfg: EngineConfig,
    pub(super) ids: IdGen,
    /// RFC 3261 transactions of calls (INVITE, ACK, CANCEL, BYE, in-dialog).
    pub(super) table: TransactionTable,
    /// What the table asked for since the last drain.
    pub(super) actions: Vec<Action>,
    pub(super) calls: IdMap<u64, Call>,
    next_call: u64,
    /// Caller and callee Call-IDs -> (call, leg).
    pub(super) by_call_id: HashMap<String, (u64, Leg)>,
    /// Client and server transactions we wait on -> (call, role).
    pub(super) by_tx: TxMap<(u64, TxRole)>,
    /// The `by_tx` entries of each call that end with it (not `Ignore`).
    pub(super) txs_of: IdMap<u64, Vec<TxId>>,
    /// Requests we relayed, by the server transaction that answers them.
    pub(super) relayed: TxMap<Vec<u8>>,
    /// The call and leg each of our transactions belongs to, so that what
    /// the table sends (retransmissions too) lands in the call's flow
    /// without parsing it again.
    pub(super) flow_of_tx: TxMap<(u64, Leg)>,
    /// The same, by call: what decides when a finished call's flow is
    /// complete ([`CallEngine::flow_settled`]).
    pub(super) flow_txs: IdMap<u64, Vec<TxId>>,
    /// INVITEs of ours whose stray 2xx we hung up with BYE (one BYE each).
    pub(super) stray_byes: TxMap<()>,
    /// What the table sent for the last new INVITE before it became a call
    /// (its 100 Trying): the call's flow takes it when it starts.
    pub(super) fresh: Option<(TxId, Vec<FreshSend>)>,
    /// Flows of finished calls that still collect messages, by call.
    pub(super) closing: IdMap<u64, Closing>,
    /// Call-IDs of both legs of those calls -> call.
    pub(super) closing_ids: HashMap<String, u64>,
    pub(super) timers: Timers,
    out: VecDeque<Output>,
    /// Records (CDRs, flows) made during the input being handled: they
    /// follow its transmits in `out`.
    pub(super) records: Vec<Output>,
    pub(super) buf: Vec<u8>,
    pub(super) refused: RefusedRequests,
    /// Our Contact and Via per transport, our address in flows.
    pub(super) ours: Ours,
}

impl CallEngine {
    pub fn new(cfg: EngineConfig, ids: IdGen) -> CallEngine {
        CallEngine {
            ids,
            table: TransactionTable::new(transaction::Config::default()),
            actions: Vec::new(),
            calls: IdMap::default(),
            next_call: 1,
            by_call_id: HashMap::new(),
            by_tx: TxMap::default(),
            txs_of: IdMap::default(),
            relayed: TxMap::default(),
            flow_of_tx: TxMap::default(),
            flow_txs: IdMap::default(),
            fresh: None,
            stray_byes: TxMap::default(),
            closing: IdMap::default(),
            closing_ids: HashMap::new(),
            timers: Timers::default(),
            out: VecDeque::new(),
            records: Vec::new(),
            buf: Vec::with_capacity(2048),
            refused: RefusedRequests::default(),
            ours: Ours::new(&cfg),
            cfg,
        }
    }

    /// Feeds one input; see the module doc for the poll order.
    pub fn handle(
        &mut self,
        now: Now,
        input: Input<'_>,
        relay: Option<&mut MediaRelay>,
    ) -> Handled {
        let mut cx = Cx { now, relay };
        let handled = match input {
            Input::Sip { msg, src } => self.on_sip(&mut cx, msg, src),
            Input::Call(new) => {
                self.start(&mut cx, new);
                Handled::Done
            }
            Input::Originate(o) => Handled::Originated(self.originate(&mut cx, o)),
            Input::Command { call_id, command } => {
                Handled::Command(self.command(&mut cx, call_id, command))
            }
            Input::Answer { tx, response } => {
                let _ = self
                    .table
                    .respond(now.mono_ms, tx, response, &mut self.actions);
                Handled::Done
            }
            Input::Abandon(tx) => {
                self.table.abandon(tx);
                Handled::Done
            }
            Input::MediaTimeout(call) => {
                let up = self
                    .calls
                    .get(&call)
                    .filter(|c| c.phase.is_up())
                    .map(|c| c.caller_call_id.clone());
                if let Some(call_id) = up {
                    tracing::info!(call, "no RTP for rtp_timeout: hanging up");
                    let _ = self.hangup(&mut cx, &call_id, Some("rtp timeout".into()));
                }
                Handled::Done
            }
            Input::Stop { reason } => {
                let ids: Vec<String> = self
                    .calls
                    .values()
                    .map(|c| c.caller_call_id.clone())
                    .collect();
                for id in ids {
                    let _ = self.hangup(&mut cx, &id, Some(reason.to_string()));
                }
                self.drain_actions(&mut cx);
                let all: Vec<u64> = self.closing.keys().copied().collect();
                for call in all {
                    self.hand_over_flow(call);
                }
                Handled::Done
            }
        };
        self.drain_actions(&mut cx);
        self.out.extend(self.records.drain(..));
        handled
    }

    /// Fires every deadline that is due at `now`: transaction timers, ring
    /// timeouts, a router's max duration, the linger of finished flows.
    pub fn handle_timeout(&mut self, now: Now, relay: Option<&mut MediaRelay>) {
        let mut cx = Cx { now, relay };
        self.table.handle_timeout(now.mono_ms, &mut self.actions);
        self.drain_actions(&mut cx);
        while let Some((call, what)) = self.timers.pop_due(now.mono_ms) {
            self.on_deadline(&mut cx, call, what);
            self.drain_actions(&mut cx);
        }
        self.out.extend(self.records.drain(..));
        let live = self.calls.len() + self.closing.len();
        let calls = &self.calls;
        let closing = &self.closing;
        self.timers.compact(live, |call, _| {
            calls.contains_key(&call) || closing.contains_key(&call)
        });
    }

    /// The stream connection to `dest` closed: requests still waiting for a
    /// final response there fail as if answered 503 (a trunk's failover
    /// goes on at once instead of after timer B).
    pub fn transport_failed(&mut self, now: Now, dest: Peer, relay: Option<&mut MediaRelay>) {
        let mut cx = Cx { now, relay };
        self.table.transport_failed(dest, &mut self.actions);
        self.drain_actions(&mut cx);
        self.out.extend(self.records.drain(..));
    }

    /// The next output, in the order they were made.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest deadline (mono ms) at which [`Self::handle_timeout`]
    /// has work, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.table.poll_timeout(), self.timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A deadline came due; it may be stale (the call moved on).
    fn on_deadline(&mut self, cx: &mut Cx<'_>, call: u64, what: Deadline) {
        let now = cx.now.mono_ms;
        match what {
            Deadline::FlowLinger => self.flow_linger_due(call, now),
            Deadline::Ring => {
                let due = self
                    .calls
                    .get(&call)
                    .filter(|c| c.phase.is_ringing() && c.ring_deadline_ms <= now)
                    .map(|c| (c.phase, c.caller_tx));
                match due {
                    Some((Phase::Originating, caller_tx)) => {
                        // The first party of a click-to-dial call never answered.
                        self.cancel_tx(cx, call, caller_tx);
                        self.end(cx, call, Ending::no_answer());
                    }
                    Some(_) => {
                        self.cancel_others(cx, call, None);
                        self.finish_caller(cx, call, 408);
                        self.end(cx, call, Ending::no_answer());
                    }
                    None => {}
                }
            }
            Deadline::Leg(leg) => self.on_leg_deadline(cx, call, leg),
            Deadline::MaxDuration => {
                let overdue = self
                    .calls
                    .get(&call)
                    .filter(|c| {
                        matches!(c.phase, Phase::Answered(_))
                            && c.max_end_ms.is_some_and(|at| at <= now)
                    })
                    .map(|c| c.caller_call_id.clone());
                if let Some(call_id) = overdue {
                    let _ = self.hangup(cx, &call_id, Some("max_duration".into()));
                }
            }
        }
    }

    /// A callee leg rang past its own deadline: a transfer target (the
    /// call stays) or one target of a sequential fork (the next one rings).
    fn on_leg_deadline(&mut self, cx: &mut Cx<'_>, call: u64, leg: usize) {
        let now = cx.now.mono_ms;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let transfer = c.transfer_leg == Some(leg);
        if !transfer && c.phase != Phase::Ringing {
            return;
        }
        let Some(l) = c.legs.get_mut(leg) else { return };
        if l.final_code.is_some() || l.deadline_ms.is_none_or(|d| d > now) {
            return;
        }
        let tx = l.invite_tx;
        if let Some(tx) = tx {
            self.cancel_tx(cx, call, tx);
        }
        self.leg_failed(cx, call, leg, 408);
    }

    /// Callee leg `leg` of `call` ended without an answer (`code`: its
    /// final, a timeout): its trunk slot goes; a transfer target leaves
    /// the call as it was; any other leg may let the next target ring or
    /// end the call.
    pub(super) fn leg_failed(&mut self, cx: &mut Cx<'_>, call: u64, leg: usize, code: u16) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(l) = c.legs.get_mut(leg) {
            l.fail(code);
        }
        if c.transfer_leg == Some(leg) {
            tracing::info!(
                call,
                code,
                "transfer target failed; the call stays as it was"
            );
            c.transfer_leg = None;
            return;
        }
        self.check_all_failed(cx, call);
    }

    /// A SIP message of the call layer.
    fn on_sip(&mut self, cx: &mut Cx<'_>, msg: &Message<'_>, src: Peer) -> Handled {
        let now = cx.now;
        self.fresh = None;
        self.capture_in(now.unix_ms, src, msg);
        if !msg.is_request() {
            return match self.table.receive(
                now.mono_ms,
                msg,
                src,
                src.is_reliable(),
                &mut self.actions,
            ) {
                Received::Response(tx) => {
                    self.on_response(cx, tx, msg, src);
                    Handled::Done
                }
                Received::WrongSource => Handled::WrongSource,
                Received::Absorbed => Handled::Done,
                _ => Handled::Stray,
            };
        }
        let Some(method) = msg.method() else {
            return Handled::Invalid;
        };
        let tx =
            match self
                .table
                .receive(now.mono_ms, msg, src, src.is_reliable(), &mut self.actions)
            {
                Received::Request(tx) => tx,
                Received::Absorbed | Received::Ack(_) => {
                    return Handled::Retransmission {
                        invite: matches!(method, Method::Invite),
                    }
                }
                Received::Full => return Handled::Full,
                Received::Invalid(_) => return Handled::Invalid,
                Received::Response(_) | Received::Stray | Received::WrongSource => {
                    return Handled::Done
                }
            };
        // Whatever answers this request (the engine, or the endpoint through
        // `Input::Answer`) goes into the flow of the call its Call-ID names.
        if let Some((call, leg)) = self.flow_owner(msg) {
            self.flow_tx(tx, call, leg);
        }
        if matches!(method, Method::Cancel) {
            let ours = self
                .table
                .cancel_target_of(tx)
                .and_then(|invite| self.by_tx.get(&invite))
                .map(|&(call, _)| call);
            return match ours {
                Some(call) => {
                    self.on_cancel(cx, tx, msg, call);
                    Handled::Done
                }
                None => Handled::Request(tx),
            };
        }
        let in_dialog = msg.to().is_ok_and(|t| t.tag().is_some());
        if in_dialog && !self.on_request(cx, tx, msg) {
            return Handled::NoDialog(tx);
        }
        if in_dialog {
            return Handled::Done;
        }
        if matches!(method, Method::Invite) {
            self.fresh = Some((tx, Vec::new()));
        }
        Handled::Request(tx)
    }

    /// Moves what the table asked for into outputs (capturing each message
    /// in its call's flow) and gives the table's news to the calls, until
    /// nothing is left.
    pub(super) fn drain_actions(&mut self, cx: &mut Cx<'_>) {
        while !self.actions.is_empty() {
            let actions = std::mem::take(&mut self.actions);
            // A CANCEL the table sent late (when the INVITE's first
            // provisional came) belongs to the INVITE's call and leg; its
            // send is in this same batch, before the news of it.
            for a in &actions {
                if let Action::Event {
                    tx,
                    event: Event::CancelSent { cancel },
                } = a
                {
                    if let Some(&(call, leg)) = self.flow_of_tx.get(tx) {
                        self.flow_tx(*cancel, call, leg);
                        self.by_tx.insert(*cancel, (call, TxRole::Ignore));
                    }
                }
            }
            for a in actions {
                match a {
                    Action::Send { tx, dest, data } => {
                        match self.flow_of_tx.get(&tx) {
                            Some(&(call, leg)) => {
                                self.capture_out(cx.now.unix_ms, call, leg, dest, &data);
                            }
                            None => match &mut self.fresh {
                                Some((t, sent)) if *t == tx => {
                                    sent.push((cx.now.unix_ms, dest, data.clone()));
                                }
                                _ => {}
                            },
                        }
                        self.out.push_back(Output::Transmit { dest, data });
                    }
                    Action::Event { tx, event } => match event {
                        Event::Timeout(_) => self.on_tx_timeout(cx, tx, 408),
                        Event::TransportError => self.on_tx_timeout(cx, tx, 503),
                        Event::Terminated => self.forget_tx(tx),
                        _ => {}
                    },
                }
            }
        }
    }

    /// Queues a datagram outside any transaction (an ACK for a 2xx) of
    /// `leg` of `call`, and records it in the call's flow.
    pub(super) fn transmit(&mut self, now: Now, call: u64, leg: Leg, dest: Peer, data: Bytes) {
        self.capture_out(now.unix_ms, call, leg, dest, &data);
        self.out.push_back(Output::Transmit { dest, data });
    }

    /// A transaction ended in the table: nothing more will come for it.
    fn forget_tx(&mut self, tx: TxId) {
        // A call's list of its transactions keeps only those still alive,
        // so a long call with many in-dialog requests does not grow it.
        if let Some(&(call, _)) = self.flow_of_tx.get(&tx) {
            if let Some(txs) = self.txs_of.get_mut(&call) {
                txs.retain(|t| *t != tx);
            }
            if let Some(txs) = self.flow_txs.get_mut(&call) {
                txs.retain(|t| *t != tx);
            }
        }
        self.by_tx.remove(&tx);
        self.relayed.remove(&tx);
        self.flow_of_tx.remove(&tx);
        self.stray_byes.remove(&tx);
    }

    /// The call and leg a transaction of ours belongs to, if any.
    pub(super) fn flow_owner_of_tx(&self, tx: TxId) -> Option<(u64, Leg)> {
        self.flow_of_tx.get(&tx).copied()
    }

    /// Queues a datagram that belongs to no call (ACK of a stray 2xx).
    pub(super) fn transmit_outside(&mut self, dest: Peer, data: Bytes) {
        self.out.push_back(Output::Transmit { dest, data });
    }

    /// A transaction's timer B/F/H/L fired.
    /// A client transaction got no final response: it timed out (`code`
    /// 408) or its connection failed (503, RFC 3261 8.1.3.1).
    fn on_tx_timeout(&mut self, cx: &mut Cx<'_>, tx: TxId, code: u16) {
        let Some(&(call, role)) = self.by_tx.get(&tx) else {
            return;
        };
        self.by_tx.remove(&tx);
        if let TxRole::CalleeInvite(leg) = role {
            // A callee INVITE that timed out (timer B) counts as 408; one
            // whose connection failed as 503 (the next trunk is tried).
            self.leg_failed(cx, call, leg, code);
            return;
        }
        if let TxRole::Relay { server, .. } = role {
            // The other leg never answered a request we relayed: its
            // sender gets 408 (RFC 3261 16.8) instead of silence.
            self.answer_relayed(cx, server, code);
            return;
        }
        // Timer L/H on the caller's INVITE: our 2xx was never ACKed, so the
        // caller is gone; hang up the callee too (RFC 3261 13.3.1.4).
        let phase = self
            .calls
            .get(&call)
            .filter(|c| c.caller_tx == tx)
            .map(|c| c.phase);
        match phase {
            Some(Phase::Answered(w)) => {
                self.send_bye(cx, call, Leg::Callee(w));
                self.end(cx, call, Ending::completed_by_system());
            }
            Some(Phase::Accepted) => self.end(cx, call, Ending::completed_by_system()),
            Some(Phase::Originating) => self.end(cx, call, Ending::no_answer()),
            _ => {}
        }
    }

    /// A new call's id.
    pub(super) fn next_id(&mut self) -> u64 {
        let id = self.next_call;
        self.next_call += 1;
        id
    }

    /// Waits on `tx` for `call`; the entry goes when the call ends.
    pub(super) fn watch_tx(&mut self, tx: TxId, call: u64, role: TxRole) {
        self.by_tx.insert(tx, (call, role));
        self.txs_of.entry(call).or_default().push(tx);
    }

    /// Cancels our INVITE `tx` of `call` (its CANCEL's answer is ignored).
    pub(super) fn cancel_tx(&mut self, cx: &mut Cx<'_>, call: u64, tx: TxId) {
        if let Ok(Some(cancel)) = self.table.cancel(cx.now.mono_ms, tx, &mut self.actions) {
            self.by_tx.insert(cancel, (call, TxRole::Ignore));
            let leg = self
                .flow_of_tx
                .get(&tx)
                .map_or(Leg::Caller, |&(_, leg)| leg);
            self.flow_tx(cancel, call, leg);
        }
    }

    /// Ends a call: its CDR is queued, its ids are forgotten, its flow
    /// lingers for late messages.
    pub(super) fn end(&mut self, cx: &mut Cx<'_>, call: u64, ending: Ending) {
        let now = cx.now;
        let Some(mut c) = self.calls.remove(&call) else {
            return;
        };
        self.by_call_id.remove(&c.caller_call_id);
        for l in &c.legs {
            self.by_call_id.remove(&l.dialog.call_id);
        }
        let leg_ids: Vec<String> = c.legs.iter().map(|l| l.dialog.call_id.clone()).collect();
        self.closing_ids.insert(c.caller_call_id.clone(), call);
        for l in &leg_ids {
            self.closing_ids.insert(l.clone(), call);
        }
        self.closing.insert(
            call,
            Closing {
                call_id: c.caller_call_id.clone(),
                leg_ids,
                flow: {
                    let mut flow = std::mem::take(&mut c.flow);
                    flow.seal();
                    flow
                },
                ended_ms: now.mono_ms,
            },
        );
        self.timers
            .push(now.mono_ms + SETTLED_LINGER_MS, call, Deadline::FlowLinger);
        for tx in self.txs_of.remove(&call).unwrap_or_default() {
            if self
                .by_tx
                .get(&tx)
                .is_some_and(|(id, role)| *id == call && !matches!(role, TxRole::Ignore))
            {
                self.by_tx.remove(&tx);
            }
        }
        let media = cx
            .relay
            .as_deref_mut()
            .filter(|_| c.proxied)
            .and_then(|r| r.close(call, now.mono_ms));
        let cdr = record::finished(c, ending, now.unix_ms, media);
        self.records.push(Output::Cdr(Box::new(cdr)));
    }

    /// How many calls are up or ringing.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Is this Call-ID one of our calls (either leg)?
    pub fn knows_call_id(&self, call_id: &str) -> bool {
        self.by_call_id.contains_key(call_id)
    }

    /// Is this request a retransmission of one a transaction of ours has?
    pub fn has_transaction(&self, msg: &Message<'_>) -> bool {
        self.table.has_server_tx(msg)
    }

    /// INVITE transactions resent without the peer answering (overload
    /// admission).
    pub fn stalled_invites(&self) -> usize {
        self.table.stalled_invites()
    }

    /// Is this Call-ID one of our live calls, or of one that just ended
    /// (its record may not be stored yet)?
    pub fn had_call_id(&self, call_id: &str) -> bool {
        self.knows_call_id(call_id) || self.closing_ids.contains_key(call_id)
    }

    /// The INVITE a CANCEL server transaction cancels (RFC 3261 9.2).
    pub fn cancel_target_of(&self, cancel: TxId) -> Option<TxId> {
        self.table.cancel_target_of(cancel)
    }

    /// Whether a server INVITE transaction still waits for its final
    /// response (not answered, not cancelled, not timed out).
    pub fn is_proceeding(&self, tx: TxId) -> bool {
        matches!(self.table.state(tx), Some(transaction::State::Proceeding))
    }

    /// Transactions evicted from the full table so far.
    pub fn tx_evicted(&self) -> u64 {
        self.table.evicted()
    }

    /// Requests and SDPs refused since the last call (the counts restart).
    pub fn take_refused(&mut self) -> RefusedRequests {
        std::mem::take(&mut self.refused)
    }

    /// Our Contact in a message that goes to `to` (its transport).
    pub(super) fn contact(&self, to: Peer) -> String {
        self.ours.contact(to)
    }

    /// A Via of ours with a new branch, for a request that goes to `to`.
    pub(super) fn via(&mut self, to: Peer) -> String {
        let prefix = self.ours.via_prefix(to);
        let mut via = String::with_capacity(prefix.len() + 32);
        via.push_str(prefix);
        self.ids.push_branch(&mut via);
        via.push_str(";rport");
        via
    }

    /// A fresh caller-side dialog of a click-to-dial call or callee leg.
    pub(super) fn new_dialog(
        &mut self,
        local_uri: String,
        remote_uri: String,
        target: &Target,
    ) -> Dialog {
        Dialog {
            call_id: self.ids.call_id(&self.cfg.host),
            local_tag: self.ids.tag(),
            remote_tag: String::new(),
            local_uri,
            remote_uri,
            remote_target: target.uri.clone(),
            dest: Some(target.dest),
            local_cseq: 1,
            remote_cseq: None,
        }
    }
}

/// RFC 3261 16.7 step 6: 6xx wins, else the lowest class, 408 counting as 4xx.
pub fn best_final(codes: impl Iterator<Item = u16>) -> u16 {
    let codes: Vec<u16> = codes.collect();
    if let Some(c) = codes.iter().find(|c| (600..700).contains(*c)) {
        return *c;
    }
    codes
        .into_iter()
        .min_by_key(|c| (c / 100, *c == 408 || *c == 503))
        .unwrap_or(480)
}
