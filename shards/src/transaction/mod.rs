//! SIP transactions (RFC 3261 section 17, with the RFC 6026 fixes): sans-IO
//! client and server state machines and the per-shard [`TransactionTable`] that
//! owns them.
//!
//! # Shape
//!
//! Nothing here touches a socket or reads a clock. Every call takes `now_ms` (the
//! shard's monotonic milliseconds, [`crate::time::Now::mono_ms`]) and appends what
//! must happen to a caller-provided `Vec<Action>`: datagrams to send
//! ([`Action::Send`]) and events for the transaction user ([`Action::Event`]).
//! Timers are deadlines: [`TransactionTable::poll_timeout`] gives the earliest one,
//! [`TransactionTable::handle_timeout`] fires everything due.
//!
//! ```text
//! // an incoming datagram (parsed and `check`ed by the caller)
//! match table.receive(now.mono_ms, &msg, src, false, &mut actions) {
//!     Received::Request(tx) => tu.new_request(tx, &msg),   // answer with table.respond(..)
//!     Received::Response(tx) => tu.response(tx, &msg),     // 1xx, first final, every 2xx
//!     Received::Ack(tx) => tu.ack(tx, &msg),               // ACK for a 2xx (dialog layer)
//!     Received::Stray => tu.stray_response(&msg),          // no client transaction
//!     Received::WrongSource => count_and_drop(),           // not from where the request went
//!     Received::Absorbed => {}                             // retransmission, handled here
//!     Received::Full => answer_503_statelessly(),
//!     Received::Invalid(e) => drop_or_400(e),
//! }
//! // the TU's own sends
//! let tx = table.send_request(now.mono_ms, &invite_bytes, dest, false, &mut actions)?;
//! table.respond(now.mono_ms, server_tx, &response_bytes, &mut actions)?;
//! // timers
//! if let Some(at) = table.poll_timeout() { wake_up_at(at) }
//! table.handle_timeout(now.mono_ms, &mut actions);
//! // then move the bytes
//! for a in actions.drain(..) {
//!     match a {
//!         Action::Send { dest, data, .. } => sends.push(dest, &data),
//!         Action::Event { tx, event } => tu.event(tx, event),  // Timeout(B/F/H/L), Terminated, ...
//!     }
//! }
//! ```
//!
//! The first request and every response the TU must see are reported by the
//! return value of [`TransactionTable::receive`] rather than as an [`Action`]: the
//! caller already holds the parsed [`Message`](crate::sip::Message), so nothing is
//! copied. Timer-driven news (timeouts, termination) arrive as [`Event`]s.
//!
//! # What the transactions do
//!
//! * **Client INVITE** (17.1.1): Calling retransmits on timer A (T1, doubling) until
//!   timer B (64*T1) reports [`Event::Timeout`]; a 1xx moves to Proceeding (no
//!   retransmission, no timeout: the TU runs its ring timers); a 300-699 final is
//!   ACKed here ([`build_ack`]) and Completed absorbs its retransmissions by
//!   resending the ACK until timer D; a 2xx moves to Accepted (RFC 6026) where
//!   every 2xx (retransmissions, other forks) is passed up until timer M. The TU
//!   ACKs 2xx end to end.
//! * **Client non-INVITE** (17.1.2): timer E retransmits (T1 doubling, capped at
//!   T2; every T2 once Proceeding), F (64*T1) times out, K (T4) absorbs response
//!   retransmissions after the final.
//! * **Server INVITE** (17.2.1): Proceeding resends the latest provisional on a
//!   retransmitted INVITE (a 100 Trying is sent at once when
//!   [`Config::send_100_trying`]); a 300-699 final is retransmitted on timer G (T1
//!   doubling, capped at T2) until the ACK (Confirmed, timer I = T4 absorbs more
//!   ACKs) or timer H (64*T1, [`Event::Timeout`]). A 2xx moves to Accepted (RFC
//!   6026, timer L = 64*T1): a retransmitted INVITE gets the 2xx again; with
//!   [`Config::retransmit_2xx`] the 2xx is also retransmitted (RFC 3261 13.3.1.4)
//!   until its ACK arrives (matched by Call-ID, CSeq number, From and To tags) and
//!   L reports [`Event::Timeout`] when it never did.
//! * **Server non-INVITE** (17.2.2): Trying absorbs retransmissions, Proceeding
//!   resends the provisional, Completed resends the final until timer J (64*T1).
//! * Over a reliable transport (the `reliable` flag of each transaction) nothing is
//!   retransmitted (no A, E, G) and D, I, J, K are zero.
//!
//! # Matching
//!
//! [`TransactionKey`]: RFC 3261 17.2.3 for requests whose branch has the magic
//! cookie (branch, sent-by, method; ACK matches INVITE, CANCEL has its own key),
//! RFC 2543 rules otherwise (Request-URI, To tag, From tag, Call-ID, CSeq number,
//! top Via, method; an RFC 2543 ACK matches the INVITE whose final response's To
//! tag it carries), 17.1.3 for responses (branch, CSeq method).
//! [`cancel_target`] / [`TransactionTable::cancel_target_of`] find the INVITE a
//! CANCEL cancels (RFC 3261 9.2). Lookups do not allocate.
//!
//! Responses of server transactions go back to the source address of the request
//! (symmetric response, RFC 3581; the Via carries `received`/`rport`), like the
//! rest of the endpoint.

mod ack;
mod client_invite;
mod client_non_invite;
mod index;
mod key;
mod server_invite;
mod server_non_invite;
mod table;
mod timers;
mod txmap;

#[cfg(test)]
mod tests;

use crate::transport::Peer;
use std::fmt;
use std::sync::Arc;

pub use ack::{build_ack, build_cancel};
pub use key::{cancel_target, KeyError, TransactionKey};
pub use table::TransactionTable;
pub use timers::Timer;
pub use txmap::TxMap;

/// Bytes handed to the transport. Shared, so a retransmission is a reference
/// count, not a copy.
pub type Bytes = Arc<[u8]>;

/// Timer values (RFC 3261 17.1.1.1 and table 4). All in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// T1, the RTT estimate: first retransmission interval; 64*T1 is timers B,
    /// F, H, J, L, M. Default 500.
    pub t1_ms: u64,
    /// T2, the cap of non-INVITE and final-response retransmission intervals.
    /// Default 4000.
    pub t2_ms: u64,
    /// T4, how long the network keeps a message: timers I and K. Default 5000.
    pub t4_ms: u64,
    /// Timer D over unreliable transports (at least 32 s). Default 32000.
    pub timer_d_ms: u64,
    /// At most this many transactions live in one table. At the limit the
    /// one lingering longest (done, only absorbing retransmissions) goes
    /// early; when none lingers, new ones are refused ([`Received::Full`],
    /// [`TxError::Full`]). Default 65536.
    pub max_transactions: usize,
    /// Send 100 Trying as soon as an INVITE creates a server transaction (the TU
    /// may then skip it). Default true.
    pub send_100_trying: bool,
    /// Retransmit a 2xx to an INVITE on T1 doubling up to T2 until its ACK
    /// arrives (RFC 3261 13.3.1.4, a TU duty done here); timer L then reports a
    /// missing ACK. Default true.
    pub retransmit_2xx: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            timer_d_ms: 32_000,
            max_transactions: 65_536,
            send_100_trying: true,
            retransmit_2xx: true,
        }
    }
}

impl Config {
    /// The same config with intervals that cannot stall the timer loop: T1 at
    /// least 1 ms, T2 at least T1.
    fn normalized(mut self) -> Self {
        self.t1_ms = self.t1_ms.max(1);
        self.t2_ms = self.t2_ms.max(self.t1_ms);
        self
    }

    /// 64*T1: timers B, F, H, J, L, M.
    pub fn timeout_ms(&self) -> u64 {
        self.t1_ms.saturating_mul(64)
    }
}

/// A transaction handle. Handles are never reused for another transaction
/// (a slot's generation changes), so a stale handle finds nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId {
    index: u32,
    generation: u32,
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}.{}", self.index, self.generation)
    }
}

/// The four kinds of transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// We sent an INVITE (17.1.1).
    ClientInvite,
    /// We sent another request (17.1.2).
    ClientNonInvite,
    /// We received an INVITE (17.2.1).
    ServerInvite,
    /// We received another request (17.2.2).
    ServerNonInvite,
}

/// An INVITE transaction counts as stalled (see
/// [`TransactionTable::stalled_invites`]) from its first resend without an
/// answer through this many: T1 to about 8 T1 (3.5 s with the default T1).
pub(crate) const STALL_RESENDS: u8 = 3;

/// Transaction states (RFC 3261 figures 5-8, RFC 6026 Accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Client INVITE: request sent, nothing heard yet.
    Calling,
    /// Non-INVITE (client and server): no response yet.
    Trying,
    /// A provisional response was received (client) or sent (server).
    Proceeding,
    /// A final response (300-699 for INVITE) was received or sent.
    Completed,
    /// Server INVITE: the ACK for our 300-699 arrived.
    Confirmed,
    /// INVITE: a 2xx went through (RFC 6026).
    Accepted,
    /// Done; the table removes it.
    Terminated,
}

/// Something for the shard loop to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Put `data` on the wire to `dest` (over the transaction's connection when
    /// it is reliable).
    Send {
        /// The transaction sending.
        tx: TxId,
        /// Where to.
        dest: Peer,
        /// One whole SIP message.
        data: Bytes,
    },
    /// Tell the transaction user.
    Event {
        /// The transaction concerned.
        tx: TxId,
        /// What happened.
        event: Event,
    },
}

/// News for the transaction user that no incoming message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A timeout: [`Timer::B`] / [`Timer::F`] (no final response: act as if a 408
    /// arrived; also B 64*T1 after a CANCEL that got the INVITE no final),
    /// [`Timer::H`] (no ACK for our 300-699), [`Timer::L`] (no ACK for our 2xx,
    /// with [`Config::retransmit_2xx`]: RFC 3261 13.3.1.4 says end the session).
    /// [`Event::Terminated`] follows.
    Timeout(Timer),
    /// A CANCEL asked for while the INVITE was still Calling went out when its
    /// first provisional response arrived; `cancel` is its client transaction.
    CancelSent {
        /// The CANCEL's client transaction.
        cancel: TxId,
    },
    /// The connection the request went over failed before a final
    /// response came (connect refused, TLS verification failed, closed):
    /// act as if a 503 arrived (RFC 3261 8.1.3.1). [`Event::Terminated`]
    /// follows.
    TransportError,
    /// The transaction is gone from the table; its handle is now stale.
    Terminated,
}

/// What [`TransactionTable::receive`] made of a message.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A new request (not ACK) created this server transaction; the TU answers
    /// it with [`TransactionTable::respond`]. For a CANCEL, see
    /// [`TransactionTable::cancel_target_of`].
    Request(TxId),
    /// A response of this client transaction that the TU must see: every 1xx,
    /// the first final, and every 2xx to an INVITE.
    Response(TxId),
    /// An ACK the transactions do not absorb: the ACK for a 2xx (end to end, for
    /// the dialog layer). `Some` when it matched the INVITE server transaction
    /// whose 2xx it acknowledges (its 2xx retransmission stops), `None` when it
    /// matched nothing.
    Ack(Option<TxId>),
    /// A retransmission, handled here (an answer may be in the actions).
    Absorbed,
    /// A response that matches no client transaction.
    Stray,
    /// A response that matches a client transaction but comes from another
    /// address than the one its request went to: dropped, it changes nothing
    /// (someone who learnt or guessed the branch cannot answer for the peer).
    WrongSource,
    /// A new request, but the table is full: no transaction was created.
    Full,
    /// Cannot be matched: what the message lacks.
    Invalid(KeyError),
}

/// Why a TU call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// No such transaction (terminated, or never existed).
    Unknown,
    /// The table holds [`Config::max_transactions`] transactions.
    Full,
    /// Not a SIP message of the expected kind (a request for `send_request`, a
    /// response for `respond`).
    Malformed,
    /// ACK is not a transaction: send the ACK for a 2xx directly.
    Ack,
    /// The request lacks what matching needs.
    Key(KeyError),
    /// A live transaction has the same key (a reused branch).
    Duplicate,
    /// Not possible in the transaction's kind or state (a second final
    /// response, a CANCEL after the final, ...).
    WrongState,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::Unknown => f.write_str("no such transaction"),
            TxError::Full => f.write_str("transaction table full"),
            TxError::Malformed => f.write_str("not a SIP message of the expected kind"),
            TxError::Ack => f.write_str("ACK is not a transaction"),
            TxError::Key(e) => write!(f, "cannot match the message: {e}"),
            TxError::Duplicate => f.write_str("a transaction with this key exists"),
            TxError::WrongState => f.write_str("not possible in this transaction state"),
        }
    }
}

impl std::error::Error for TxError {}

/// Appends a send action.
fn send(out: &mut Vec<Action>, tx: TxId, dest: Peer, data: &Bytes) {
    out.push(Action::Send {
        tx,
        dest,
        data: Arc::clone(data),
    });
}

/// Appends an event action.
fn event(out: &mut Vec<Action>, tx: TxId, event: Event) {
    out.push(Action::Event { tx, event });
}
