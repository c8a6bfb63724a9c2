//! [`TransactionTable`]: one shard's transactions (a slab with generation-checked
//! handles), the key index incoming messages are routed by, the deadline queue,
//! and the bound on how many transactions live at once.

use crate::transport::Peer;
use std::collections::VecDeque;

use crate::sip::{HeaderName, Message, Method, Writer};

use super::ack::build_cancel;
use super::client_invite::ClientInvite;
use super::client_non_invite::ClientNonInvite;
use super::index::{KeyIndex, Which};
use super::key::{ack_2xx_view, cancel_target, client_view, server_view};
use super::server_invite::ServerInvite;
use super::server_non_invite::ServerNonInvite;
use super::timers::TimerQueue;
use super::{
    event, Action, Bytes, Config, Event, KeyError, Kind, Received, State, TransactionKey, TxError,
    TxId,
};

/// The four machines, named like [`Kind`].
#[allow(clippy::enum_variant_names)]
enum Machine {
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

impl Machine {
    /// An INVITE transaction whose message was resent without the peer
    /// answering: our INVITE without any response, our final without its
    /// ACK.
    fn stalled(&self) -> bool {
        match self {
            Machine::ClientInvite(t) => t.stalled(),
            Machine::ServerInvite(t) => t.stalled(),
            _ => false,
        }
    }

    fn state(&self) -> State {
        match self {
            Machine::ClientInvite(t) => t.state(),
            Machine::ClientNonInvite(t) => t.state(),
            Machine::ServerInvite(t) => t.state(),
            Machine::ServerNonInvite(t) => t.state(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Machine::ClientInvite(_) => Kind::ClientInvite,
            Machine::ClientNonInvite(_) => Kind::ClientNonInvite,
            Machine::ServerInvite(_) => Kind::ServerInvite,
            Machine::ServerNonInvite(_) => Kind::ServerNonInvite,
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        match self {
            Machine::ClientInvite(t) => t.poll_timeout(),
            Machine::ClientNonInvite(t) => t.poll_timeout(),
            Machine::ServerInvite(t) => t.poll_timeout(),
            Machine::ServerNonInvite(t) => t.poll_timeout(),
        }
    }

    /// Done with its work and only absorbing retransmissions until its
    /// timer (D, I, J, K, L or M): the first to go when the table is full.
    fn lingering(&self) -> bool {
        match self {
            Machine::ClientInvite(t) => matches!(t.state(), State::Completed | State::Accepted),
            Machine::ClientNonInvite(t) => t.state() == State::Completed,
            Machine::ServerInvite(t) => t.lingering(),
            Machine::ServerNonInvite(t) => t.state() == State::Completed,
        }
    }

    fn on_timeout(&mut self, now: u64, cfg: &Config, out: &mut Vec<Action>) {
        match self {
            Machine::ClientInvite(t) => t.on_timeout(now, cfg, out),
            Machine::ClientNonInvite(t) => t.on_timeout(now, cfg, out),
            Machine::ServerInvite(t) => t.on_timeout(now, cfg, out),
            Machine::ServerNonInvite(t) => t.on_timeout(now),
        }
    }
}

struct Entry {
    key: TransactionKey,
    /// A second key that finds this transaction: where an RFC 2543 ACK for our
    /// non-2xx final looks, or the ACK-for-2xx key in Accepted.
    alias: Option<Box<TransactionKey>>,
    machine: Machine,
    /// The deadline this entry has in the timer queue.
    scheduled: Option<u64>,
    /// Queued in `lingering` (see [`Machine::lingering`]).
    lingering: bool,
    /// Counted in `TransactionTable::stalled` (see [`Machine::stalled`]).
    stalled: bool,
}

/// Boxed: a slot costs 16 bytes, and a live transaction exactly its entry
/// (a `Vec` of whole entries keeps up to twice the peak's worth).
struct Slot {
    generation: u32,
    entry: Option<Box<Entry>>,
}

/// One shard's transactions. See the [module docs](super) for the flow.
pub struct TransactionTable {
    cfg: Config,
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
    index: KeyIndex,
    timers: TimerQueue,
    /// Transactions that started lingering, oldest first (some may be gone
    /// since): what a full table evicts to make room for a new one.
    lingering: VecDeque<TxId>,
    /// Lingering transactions evicted early because the table was full.
    evicted: u64,
    /// INVITE transactions resent and still unanswered ([`Self::stalled_invites`]).
    stalled: usize,
    scratch: Vec<u8>,
}

/// The key (or alias) of transaction `id`, for the index's lookups.
fn key_of(slots: &[Slot], id: TxId, which: Which) -> Option<&TransactionKey> {
    let entry = slots
        .get(id.index as usize)
        .filter(|s| s.generation == id.generation)?
        .entry
        .as_deref()?;
    match which {
        Which::Key => Some(&entry.key),
        Which::Alias => entry.alias.as_deref(),
    }
}

fn entry_mut(slots: &mut [Slot], id: TxId) -> Option<&mut Entry> {
    slots
        .get_mut(id.index as usize)
        .filter(|s| s.generation == id.generation)
        .and_then(|s| s.entry.as_deref_mut())
}

impl TransactionTable {
    /// An empty table. T1 is at least 1 ms and T2 at least T1.
    pub fn new(config: Config) -> Self {
        TransactionTable {
            cfg: config.normalized(),
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            index: KeyIndex::new(),
            timers: TimerQueue::default(),
            lingering: VecDeque::new(),
            evicted: 0,
            stalled: 0,
            scratch: Vec::with_capacity(1024),
        }
    }

    /// The timer values in use.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn entry(&self, id: TxId) -> Option<&Entry> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.entry.as_deref())
    }

    /// Routes one received message (parsed, and checked with
    /// `Message::check`, by the caller) that arrived from `source`; `reliable`
    /// is its transport. Retransmissions are absorbed or answered here; see
    /// [`Received`] for what reaches the TU.
    pub fn receive(
        &mut self,
        now_ms: u64,
        msg: &Message<'_>,
        source: Peer,
        reliable: bool,
        out: &mut Vec<Action>,
    ) -> Received {
        if msg.is_request() {
            self.receive_request(now_ms, msg, source, reliable, out)
        } else {
            self.receive_response(now_ms, msg, source, out)
        }
    }

    fn receive_request(
        &mut self,
        now: u64,
        msg: &Message<'_>,
        source: Peer,
        reliable: bool,
        out: &mut Vec<Action>,
    ) -> Received {
        let view = match server_view(msg) {
            Ok(v) => v,
            Err(e) => return Received::Invalid(e),
        };
        let is_ack = msg.method() == Some(Method::Ack);
        let found = match self.find(&view) {
            Some(id) => Some(id),
            // An ACK for a 2xx has a branch of its own: match it by dialog.
            None if is_ack => ack_2xx_view(msg).ok().and_then(|v| self.find(&v)),
            None => None,
        };
        if let Some(id) = found {
            let cfg = self.cfg;
            let result = match entry_mut(&mut self.slots, id).map(|e| &mut e.machine) {
                Some(Machine::ServerInvite(tx)) if is_ack => {
                    if tx.on_ack(now, &cfg) {
                        Received::Ack(Some(id))
                    } else {
                        Received::Absorbed
                    }
                }
                Some(Machine::ServerInvite(tx)) => {
                    tx.on_retransmission(out);
                    Received::Absorbed
                }
                Some(Machine::ServerNonInvite(tx)) => {
                    tx.on_retransmission(out);
                    Received::Absorbed
                }
                _ => Received::Absorbed,
            };
            self.sync(id, out);
            return result;
        }
        if is_ack {
            return Received::Ack(None);
        }
        if !self.make_room(out) {
            return Received::Full;
        }
        let invite = msg.method() == Some(Method::Invite);
        let key = TransactionKey::from_view(&view);
        let id = self.insert(key, |id| {
            if invite {
                Machine::ServerInvite(ServerInvite::new(id, source, reliable))
            } else {
                Machine::ServerNonInvite(ServerNonInvite::new(id, source, reliable))
            }
        });
        if invite && self.cfg.send_100_trying {
            let mut w =
                Writer::response_to(&mut self.scratch, msg, 100, None, None, Some(source.addr));
            if let Some(ts) = msg.header(HeaderName::Timestamp) {
                w.header("Timestamp", &ts);
            }
            w.finish(b"");
            let data = Bytes::from(&self.scratch[..]);
            let cfg = self.cfg;
            if let Some(Machine::ServerInvite(tx)) =
                entry_mut(&mut self.slots, id).map(|e| &mut e.machine)
            {
                let _ = tx.respond(now, &cfg, 100, data, out);
            }
        }
        self.sync(id, out);
        Received::Request(id)
    }

    fn receive_response(
        &mut self,
        now: u64,
        msg: &Message<'_>,
        source: Peer,
        out: &mut Vec<Action>,
    ) -> Received {
        let view = match client_view(msg) {
            Ok(v) => v,
            Err(KeyError::Branch) => return Received::Stray,
            Err(e) => return Received::Invalid(e),
        };
        let Some(id) = self.find(&view) else {
            return Received::Stray;
        };
        let sent_to = match entry_mut(&mut self.slots, id).map(|e| &e.machine) {
            Some(Machine::ClientInvite(tx)) => Some(tx.dest().0),
            Some(Machine::ClientNonInvite(tx)) => Some(tx.dest),
            _ => None,
        };
        if sent_to.is_some_and(|d| !same_address(d, source)) {
            return Received::WrongSource;
        }
        let cfg = self.cfg;
        let (up, cancel_now) = match entry_mut(&mut self.slots, id).map(|e| &mut e.machine) {
            Some(Machine::ClientInvite(tx)) => {
                let up = tx.on_response(now, &cfg, msg, &mut self.scratch, out);
                (up, tx.take_pending_cancel())
            }
            Some(Machine::ClientNonInvite(tx)) => (tx.on_response(now, &cfg, msg), false),
            _ => (false, false),
        };
        if cancel_now {
            if let Ok(cancel) = self.start_cancel(now, id, out) {
                event(out, id, Event::CancelSent { cancel });
            }
        }
        self.sync(id, out);
        if up {
            Received::Response(id)
        } else {
            Received::Absorbed
        }
    }

    /// Starts a client transaction for `request` (built by the TU with a
    /// magic-cookie branch) and sends it to `dest`. INVITE gets an INVITE
    /// client transaction, anything but ACK a non-INVITE one.
    pub fn send_request(
        &mut self,
        now_ms: u64,
        request: &[u8],
        dest: Peer,
        reliable: bool,
        out: &mut Vec<Action>,
    ) -> Result<TxId, TxError> {
        self.start_client(now_ms, Bytes::from(request), dest, reliable, out)
    }

    fn start_client(
        &mut self,
        now: u64,
        data: Bytes,
        dest: Peer,
        reliable: bool,
        out: &mut Vec<Action>,
    ) -> Result<TxId, TxError> {
        let (key, invite, body) = {
            let msg = Message::parse(&data).map_err(|_| TxError::Malformed)?;
            let method = msg.method().ok_or(TxError::Malformed)?;
            if method == Method::Ack {
                return Err(TxError::Ack);
            }
            let view = client_view(&msg).map_err(TxError::Key)?;
            if self.find(&view).is_some() {
                return Err(TxError::Duplicate);
            }
            (
                TransactionKey::from_view(&view),
                method == Method::Invite,
                !msg.body().is_empty(),
            )
        };
        if !self.make_room(out) {
            return Err(TxError::Full);
        }
        let cfg = self.cfg;
        let id = self.insert(key, |id| {
            if invite {
                Machine::ClientInvite(
                    ClientInvite::start(id, now, &cfg, data, dest, reliable, out).with_body(body),
                )
            } else {
                Machine::ClientNonInvite(ClientNonInvite::start(
                    id, now, &cfg, data, dest, reliable, out,
                ))
            }
        });
        self.sync(id, out);
        Ok(id)
    }

    /// Sends the TU's `response` on server transaction `tx` (and keeps it for
    /// retransmissions). A response the state does not allow (a second final,
    /// anything after Completed) is refused and not sent.
    pub fn respond(
        &mut self,
        now_ms: u64,
        tx: TxId,
        response: &[u8],
        out: &mut Vec<Action>,
    ) -> Result<(), TxError> {
        let msg = Message::parse(response).map_err(|_| TxError::Malformed)?;
        let code = msg.status_code().ok_or(TxError::Malformed)?;
        let cfg = self.cfg;
        let entry = entry_mut(&mut self.slots, tx).ok_or(TxError::Unknown)?;
        let data = Bytes::from(response);
        match &mut entry.machine {
            Machine::ServerInvite(t) => {
                t.respond(now_ms, &cfg, code, data, out)?;
                if code >= 200 && entry.alias.is_none() {
                    let alias = if code < 300 {
                        ack_2xx_view(&msg)
                            .ok()
                            .map(|v| TransactionKey::from_view(&v))
                    } else {
                        entry.key.with_to_tag(msg.to_tag())
                    };
                    if let Some(alias) = alias.filter(|a| self.find(&a.view()).is_none()) {
                        if let Some(entry) = entry_mut(&mut self.slots, tx) {
                            entry.alias = Some(Box::new(alias));
                        }
                        self.index_key(tx, Which::Alias);
                    }
                }
            }
            Machine::ServerNonInvite(t) => t.respond(now_ms, &cfg, code, data, out)?,
            _ => return Err(TxError::WrongState),
        }
        self.sync(tx, out);
        Ok(())
    }

    /// Cancels the INVITE of client transaction `invite` (RFC 3261 9.1).
    /// `Ok(Some(cancel))`: the CANCEL went out on its own client transaction.
    /// `Ok(None)`: no provisional response yet; the CANCEL goes out with the
    /// first one ([`Event::CancelSent`]), or never if a final comes first (or
    /// the table is full by then). A second call, or one after a final
    /// response, is [`TxError::WrongState`].
    pub fn cancel(
        &mut self,
        now_ms: u64,
        invite: TxId,
        out: &mut Vec<Action>,
    ) -> Result<Option<TxId>, TxError> {
        let entry = entry_mut(&mut self.slots, invite).ok_or(TxError::Unknown)?;
        let Machine::ClientInvite(tx) = &mut entry.machine else {
            return Err(TxError::WrongState);
        };
        match tx.request_cancel() {
            Ok(true) => {
                let cancel = self.start_cancel(now_ms, invite, out)?;
                self.sync(invite, out);
                Ok(Some(cancel))
            }
            Ok(false) => Ok(None),
            Err(()) => Err(TxError::WrongState),
        }
    }

    /// Builds the CANCEL of client INVITE `invite` and starts its transaction.
    fn start_cancel(
        &mut self,
        now: u64,
        invite: TxId,
        out: &mut Vec<Action>,
    ) -> Result<TxId, TxError> {
        let Some(Machine::ClientInvite(tx)) =
            entry_mut(&mut self.slots, invite).map(|e| &e.machine)
        else {
            return Err(TxError::WrongState);
        };
        let (dest, reliable) = tx.dest();
        let request = Bytes::clone(tx.request());
        let msg = Message::parse(&request).map_err(|_| TxError::Malformed)?;
        build_cancel(&msg, &mut self.scratch).map_err(TxError::Key)?;
        let data = Bytes::from(&self.scratch[..]);
        let cancel = self.start_client(now, data, dest, reliable, out)?;
        let cfg = self.cfg;
        if let Some(Machine::ClientInvite(tx)) =
            entry_mut(&mut self.slots, invite).map(|e| &mut e.machine)
        {
            tx.cancel_sent(now, &cfg);
        }
        Ok(cancel)
    }

    /// Is there a server transaction for this request (a retransmission)?
    /// A lookup without allocation, for the overload check.
    pub fn has_server_tx(&self, msg: &Message<'_>) -> bool {
        server_view(msg).is_ok_and(|v| self.find(&v).is_some())
    }

    /// The transaction with this key, if live (aliases included).
    pub fn lookup(&self, key: &TransactionKey) -> Option<TxId> {
        self.find(&key.view())
    }

    /// Indexes the key (or alias) transaction `id` already holds.
    fn index_key(&mut self, id: TxId, which: Which) {
        let slots = &self.slots;
        if let Some(key) = key_of(slots, id, which) {
            self.index
                .insert(key, id, which, |i, w| key_of(slots, i, w));
        }
    }

    /// The live transaction whose key or alias is `view`.
    fn find(&self, view: &super::key::KeyData<&str>) -> Option<TxId> {
        let slots = &self.slots;
        self.index.get(view, |id, w| key_of(slots, id, w))
    }

    /// The key transaction `tx` was created with.
    pub fn key(&self, tx: TxId) -> Option<&TransactionKey> {
        self.entry(tx).map(|e| &e.key)
    }

    /// The state of transaction `tx` (`None` once it is gone).
    pub fn state(&self, tx: TxId) -> Option<State> {
        self.entry(tx).map(|e| e.machine.state())
    }

    /// Whether `tx` is done with its exchange: gone, or lingering only to
    /// absorb retransmissions (see [`Machine::lingering`]).
    pub fn is_settled(&self, tx: TxId) -> bool {
        self.entry(tx)
            .is_none_or(|e| e.machine.lingering() || e.machine.state() == State::Terminated)
    }

    /// Where a server transaction's responses go: the peer its request
    /// came from (`None` for a client transaction, or once it is gone).
    pub fn reply_to(&self, tx: TxId) -> Option<Peer> {
        match &self.entry(tx)?.machine {
            Machine::ServerInvite(t) => Some(t.reply_to()),
            Machine::ServerNonInvite(t) => Some(t.reply_to()),
            _ => None,
        }
    }

    /// The kind of transaction `tx`.
    pub fn kind(&self, tx: TxId) -> Option<Kind> {
        self.entry(tx).map(|e| e.machine.kind())
    }

    /// The request a client transaction sent (an INVITE's without its body
    /// once a 2xx came; none for a non-INVITE with its final response).
    pub fn request(&self, tx: TxId) -> Option<&[u8]> {
        match &self.entry(tx)?.machine {
            Machine::ClientInvite(t) => Some(t.request()),
            Machine::ClientNonInvite(t) => t.request().map(|r| &r[..]),
            _ => None,
        }
    }

    /// For the server transaction of a CANCEL: the INVITE server transaction
    /// it cancels (RFC 3261 9.2), if live. `None`: answer the CANCEL with 481.
    pub fn cancel_target_of(&self, cancel: TxId) -> Option<TxId> {
        let target = cancel_target(self.key(cancel)?)?;
        let id = self.lookup(&target)?;
        (self.kind(id) == Some(Kind::ServerInvite)).then_some(id)
    }

    /// The earliest timer deadline (ms), if any transaction has one.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.first()
    }

    /// Fires every timer due at `now_ms`, in deadline order.
    pub fn handle_timeout(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let cfg = self.cfg;
        while let Some((_, id)) = self.timers.pop_due(now_ms) {
            let Some(entry) = entry_mut(&mut self.slots, id) else {
                continue;
            };
            entry.scheduled = None;
            entry.machine.on_timeout(now_ms, &cfg, out);
            self.sync(id, out);
        }
    }

    /// The stream connection to `dest` failed: every client transaction
    /// sent there that has no final response yet reports
    /// [`Event::TransportError`] and ends. Scans the table: a failed
    /// connection is rare next to the messages it carries.
    pub fn transport_failed(&mut self, dest: Peer, out: &mut Vec<Action>) {
        let mut failed = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(entry) = &slot.entry else { continue };
            let pending = match &entry.machine {
                Machine::ClientInvite(tx) => {
                    tx.dest().0 == dest && matches!(tx.state(), State::Calling | State::Proceeding)
                }
                Machine::ClientNonInvite(tx) => {
                    tx.dest == dest && matches!(tx.state(), State::Trying | State::Proceeding)
                }
                _ => false,
            };
            if pending {
                failed.push(TxId {
                    index: index as u32,
                    generation: slot.generation,
                });
            }
        }
        for id in failed {
            event(out, id, Event::TransportError);
            self.remove(id, out);
        }
    }

    /// Lingering transactions evicted so far to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// INVITE transactions whose message was resent without the peer
    /// answering: client INVITEs still without any response, finals still
    /// without their ACK (overload admission reads it: the callees or the
    /// callers are not keeping up).
    pub fn stalled_invites(&self) -> usize {
        self.stalled
    }

    /// Whether a new transaction fits: at the limit, the longest-lingering
    /// transaction goes early (it only absorbed retransmissions; a late
    /// retransmission then finds no transaction, as after its timer).
    fn make_room(&mut self, out: &mut Vec<Action>) -> bool {
        while self.len >= self.cfg.max_transactions {
            let Some(id) = self.lingering.pop_front() else {
                return false;
            };
            if self.entry(id).is_some_and(|e| e.lingering) {
                self.remove(id, out);
                self.evicted += 1;
            }
        }
        true
    }

    fn insert(&mut self, key: TransactionKey, make: impl FnOnce(TxId) -> Machine) -> TxId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.slots.get(index as usize).map_or(0, |s| s.generation);
        let id = TxId { index, generation };
        if let Some(slot) = self.slots.get_mut(index as usize) {
            slot.entry = Some(Box::new(Entry {
                key,
                alias: None,
                machine: make(id),
                scheduled: None,
                lingering: false,
                stalled: false,
            }));
        }
        self.index_key(id, Which::Key);
        self.len += 1;
        id
    }

    /// After `id` handled an input: removes it when terminated, else moves its
    /// timer-queue entry to its next deadline.
    fn sync(&mut self, id: TxId, out: &mut Vec<Action>) {
        let Some(entry) = entry_mut(&mut self.slots, id) else {
            return;
        };
        if entry.machine.state() == State::Terminated {
            self.remove(id, out);
            return;
        }
        if !entry.lingering && entry.machine.lingering() {
            entry.lingering = true;
            self.lingering.push_back(id);
        }
        let stalled = entry.machine.stalled();
        if stalled != entry.stalled {
            entry.stalled = stalled;
            if stalled {
                self.stalled += 1;
            } else {
                self.stalled -= 1;
            }
        }
        let next = entry.machine.poll_timeout();
        self.timers.reschedule(id, entry.scheduled, next);
        entry.scheduled = next;
        // Drop the queue's head entries of transactions already gone, so the
        // queue holds about one timer's worth of them, not every one ever.
        while let Some(&head) = self.lingering.front() {
            if self.entry(head).is_some_and(|e| e.lingering) {
                break;
            }
            self.lingering.pop_front();
        }
    }

    /// Drops a transaction without a word: no response, no event (a
    /// router's `spam`: the caller hears nothing more).
    pub fn abandon(&mut self, id: TxId) {
        let mut silent = Vec::new();
        self.remove(id, &mut silent);
    }

    fn remove(&mut self, id: TxId, out: &mut Vec<Action>) {
        let Some(slot) = self
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)
        else {
            return;
        };
        let Some(entry) = slot.entry.take() else {
            return;
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.len -= 1;
        if entry.stalled {
            self.stalled -= 1;
        }
        self.index.remove(&entry.key, id, Which::Key);
        if let Some(alias) = &entry.alias {
            self.index.remove(alias, id, Which::Alias);
        }
        self.timers.reschedule(id, entry.scheduled, None);
        event(out, id, Event::Terminated);
    }

    /// Entries in the key index (keys and aliases) and in the timer queue:
    /// for leak checks.
    #[cfg(test)]
    pub(crate) fn index_sizes(&self) -> (usize, usize) {
        (self.index.len(), self.timers.len())
    }
}

/// Whether a response from `source` comes from where we sent to `dest`: the
/// same link kind, and the same IP (an IPv4-mapped IPv6 address counts as
/// its IPv4) and port.
fn same_address(dest: Peer, source: Peer) -> bool {
    let canon = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    dest.is_reliable() == source.is_reliable()
        && dest.addr.port() == source.addr.port()
        && canon(dest.addr.ip()) == canon(source.addr.ip())
}
