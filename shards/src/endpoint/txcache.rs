//! Server transactions of non-INVITE requests and of INVITEs we answer
//! statelessly (RFC 3261 17.2): a request seen again within 64*T1 is a
//! retransmission and gets the cached final response (or nothing while the
//! answer is still pending). Time is an input.

use crate::transport::Peer;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::sip::{Host, Message, Method};

/// How long a completed transaction answers retransmissions (64 * T1).
pub const TIMER_J_MS: u64 = 32_000;

/// The server transaction key (RFC 3261 17.2.3): branch + sent-by + method
/// with the magic cookie; else the RFC 2543 fields (17.2.3's fallback).
pub(super) fn tx_key(msg: &Message<'_>, method: &Method<'_>) -> Vec<u8> {
    // ACK matches the INVITE transaction it acknowledges.
    let method = match method {
        Method::Ack => "INVITE",
        m => m.as_str(),
    };
    let mut key = Vec::with_capacity(128);
    match msg.top_via() {
        Ok(via) if via.is_rfc3261() => {
            key.extend_from_slice(via.branch().unwrap_or_default().as_bytes());
            key.push(0);
            // Names as written, addresses by value (no text to format).
            match via.host {
                Host::Name(name) => {
                    key.push(b'n');
                    key.extend_from_slice(name.as_bytes());
                }
                Host::V4(ip) => {
                    key.push(b'4');
                    key.extend_from_slice(&ip.octets());
                }
                Host::V6(ip) => {
                    key.push(b'6');
                    key.extend_from_slice(&ip.octets());
                }
            }
            key.extend_from_slice(&via.port_or_default().to_be_bytes());
            key.push(0);
            key.extend_from_slice(method.as_bytes());
        }
        via => {
            key.extend_from_slice(b"2543\0");
            key.extend_from_slice(msg.request_uri_str().unwrap_or_default().as_bytes());
            key.push(0);
            key.extend_from_slice(msg.call_id().unwrap_or_default().as_bytes());
            key.push(0);
            if let Ok(from) = msg.from() {
                key.extend_from_slice(from.tag().unwrap_or_default().as_bytes());
            }
            key.push(0);
            if let Ok(cseq) = msg.cseq() {
                key.extend_from_slice(&cseq.seq.to_be_bytes());
            }
            key.extend_from_slice(method.as_bytes());
            key.push(0);
            if let Ok(v) = via {
                key.extend_from_slice(v.as_str().as_bytes());
            }
        }
    }
    key
}

/// What to do with a request whose key was seen before.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// First time: handle it.
    New,
    /// Still being answered: absorb.
    Pending,
    /// Answered: send this again.
    Answered(&'a [u8], Peer),
}

enum Entry {
    Pending,
    Answered(Vec<u8>, Peer),
}

/// The cache, bounded in size; oldest entries go first. A key is stored
/// once, shared by its entry and its records in `order`.
pub struct TxCache {
    entries: HashMap<Rc<[u8]>, (u64, Entry)>,
    order: VecDeque<(u64, Rc<[u8]>)>,
    capacity: usize,
}

impl TxCache {
    pub fn new(capacity: usize) -> Self {
        TxCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Looks `key` up; a new key is recorded as pending.
    pub fn check(&mut self, now_ms: u64, key: &[u8]) -> Seen<'_> {
        self.expire(now_ms);
        if self.entries.contains_key(key) {
            return match self.entries.get(key) {
                Some((_, Entry::Answered(bytes, dst))) => Seen::Answered(bytes, *dst),
                _ => Seen::Pending,
            };
        }
        self.make_room();
        let until = now_ms + TIMER_J_MS;
        let key: Rc<[u8]> = Rc::from(key);
        self.entries.insert(key.clone(), (until, Entry::Pending));
        self.order.push_back((until, key));
        Seen::New
    }

    /// At capacity, drops the oldest answered transaction. A pending one (its
    /// answer is still being made) is never dropped: forgetting it would turn
    /// its retransmission into a second request.
    fn make_room(&mut self) {
        let mut budget = self.order.len();
        while self.entries.len() >= self.capacity && budget > 0 {
            budget -= 1;
            let Some((until, key)) = self.order.pop_front() else {
                break;
            };
            match self.entries.get(&key) {
                Some((u, Entry::Pending)) if *u == until => self.order.push_back((until, key)),
                Some((u, _)) if *u == until => {
                    self.entries.remove(&key);
                }
                _ => {} // a record superseded by a later one
            }
        }
    }

    /// Records the final response sent for `key`.
    pub fn answered(&mut self, now_ms: u64, key: &[u8], response: &[u8], dst: Peer) {
        let Some(shared) = self.entries.get_key_value(key).map(|(k, _)| k.clone()) else {
            return;
        };
        let until = now_ms + TIMER_J_MS;
        if let Some(e) = self.entries.get_mut(key) {
            *e = (until, Entry::Answered(response.to_vec(), dst));
        }
        self.order.push_back((until, shared));
    }

    /// Forgets `key` (a request that was dropped, so a retransmission is new).
    pub fn forget(&mut self, key: &[u8]) {
        self.entries.remove(key);
    }

    /// Drops entries whose time ran out.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some((until, _)) = self.order.front() {
            if *until > now_ms {
                break;
            }
            if let Some((until, key)) = self.order.pop_front() {
                // Only the entry's latest record removes it.
                if self.entries.get(&key).is_some_and(|(u, _)| *u == until) {
                    self.entries.remove(&key);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(via: &str, method: &str) -> Vec<u8> {
        let text = format!(
            "{method} sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bKq\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n"
        );
        let msg = Message::parse(text.as_bytes()).unwrap();
        tx_key(&msg, &msg.method().unwrap())
    }

    #[test]
    fn keys_tell_sent_by_and_method_apart_and_match_an_ack_to_its_invite() {
        let base = key_of("192.0.2.1:5060", "INVITE");
        assert_eq!(key_of("192.0.2.1", "INVITE"), base, "default port");
        assert_eq!(key_of("192.0.2.1:5060", "ACK"), base);
        for other in [
            key_of("192.0.2.2:5060", "INVITE"),
            key_of("192.0.2.1:5062", "INVITE"),
            key_of("[2001:db8::1]:5060", "INVITE"),
            key_of("host.example:5060", "INVITE"),
            key_of("192.0.2.1:5060", "REGISTER"),
        ] {
            assert_ne!(other, base);
        }
        assert_ne!(
            key_of("Host.example", "OPTIONS"),
            key_of("host.example", "OPTIONS"),
            "names as written"
        );
    }

    #[test]
    fn retransmissions_get_the_cached_answer_until_timer_j() {
        let dst: Peer = Peer::udp("127.0.0.1:5060".parse().unwrap());
        let mut c = TxCache::new(10);
        assert_eq!(c.check(0, b"k"), Seen::New);
        assert_eq!(c.check(10, b"k"), Seen::Pending);
        c.answered(20, b"k", b"SIP/2.0 200 OK", dst);
        assert_eq!(c.check(30, b"k"), Seen::Answered(b"SIP/2.0 200 OK", dst));
        assert_eq!(
            c.check(20 + TIMER_J_MS - 1, b"k"),
            Seen::Answered(b"SIP/2.0 200 OK", dst)
        );
        assert_eq!(c.check(20 + TIMER_J_MS, b"k"), Seen::New);
    }

    #[test]
    fn capacity_never_evicts_a_pending_transaction() {
        let dst: Peer = Peer::udp("127.0.0.1:5060".parse().unwrap());
        let mut c = TxCache::new(2);
        assert_eq!(c.check(0, b"pending"), Seen::New);
        assert_eq!(c.check(1, b"done"), Seen::New);
        c.answered(2, b"done", b"r", dst);
        assert_eq!(c.check(3, b"new"), Seen::New);
        assert_eq!(c.check(4, b"pending"), Seen::Pending, "still remembered");
        assert_eq!(c.check(5, b"done"), Seen::New, "the answered one made room");
    }

    #[test]
    fn a_superseded_record_does_not_drop_the_refreshed_entry() {
        let dst: Peer = Peer::udp("127.0.0.1:5060".parse().unwrap());
        let mut c = TxCache::new(10);
        assert_eq!(c.check(0, b"k"), Seen::New);
        c.answered(1000, b"k", b"r", dst);
        c.expire(TIMER_J_MS + 500);
        assert_eq!(c.check(TIMER_J_MS + 500, b"k"), Seen::Answered(b"r", dst));
    }

    #[test]
    fn capacity_evicts_oldest() {
        let dst: Peer = Peer::udp("127.0.0.1:5060".parse().unwrap());
        let mut c = TxCache::new(2);
        assert_eq!(c.check(0, b"a"), Seen::New);
        c.answered(0, b"a", b"r", dst);
        assert_eq!(c.check(1, b"b"), Seen::New);
        c.answered(1, b"b", b"r", dst);
        assert_eq!(c.check(2, b"c"), Seen::New);
        assert_eq!(c.len(), 2);
        assert_eq!(c.check(3, b"a"), Seen::New, "a was evicted");
    }
}
