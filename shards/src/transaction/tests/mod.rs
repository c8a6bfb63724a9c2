//! Transaction tests with injected time: a [`Harness`] around a table, message
//! builders, and a timeline of what fired when.

mod client;
mod matching;
mod server;
mod table;

use super::{Action, Config, Event, Received, TransactionTable, TxError, TxId};
use crate::sip::{Message, Writer};

pub(super) const T1: u64 = 500;
pub(super) const T2: u64 = 4000;
pub(super) const T4: u64 = 5000;
pub(super) const T64: u64 = 64 * T1;

/// The peer every test talks to.
pub(super) fn peer() -> crate::transport::Peer {
    "192.0.2.50:5060".parse().unwrap()
}

/// A request with a top Via of `sent_by` and `branch`.
pub(super) fn request_from(method: &str, sent_by: &str, branch: &str, cseq: u32) -> Vec<u8> {
    format!(
        "{method} sip:bob@192.0.2.50 SIP/2.0\r\n\
Via: SIP/2.0/UDP {sent_by};branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: call-{branch}\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A request we send (our Via).
pub(super) fn request(method: &str, branch: &str) -> Vec<u8> {
    request_from(method, "192.0.2.10:5060", branch, 1)
}

/// A request the peer sends us.
pub(super) fn incoming(method: &str, branch: &str) -> Vec<u8> {
    request_from(method, "192.0.2.50:5060", branch, 1)
}

/// A response to `req` with To tag `to_tag` (none when empty).
pub(super) fn response(req: &[u8], code: u16, to_tag: &str) -> Vec<u8> {
    let req = Message::parse(req).unwrap();
    let mut out = Vec::new();
    let tag = (!to_tag.is_empty()).then_some(to_tag);
    Writer::response_to(&mut out, &req, code, None, tag, None).finish(b"");
    out
}

/// `text` with the first `from` replaced by `to` (which must be there).
pub(super) fn edit(text: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = std::str::from_utf8(text).unwrap();
    assert!(s.contains(from), "{from:?} not in {s}");
    s.replacen(from, to, 1).into_bytes()
}

/// What an action looks like in a timeline: `send <start line>` or the event.
pub(super) fn show(a: &Action) -> String {
    match a {
        Action::Send { data, .. } => {
            let text = String::from_utf8_lossy(data);
            format!("send {}", text.lines().next().unwrap_or(""))
        }
        Action::Event { event, .. } => format!("{event:?}"),
    }
}

/// A table and its action buffer.
pub(super) struct Harness {
    pub(super) table: TransactionTable,
    pub(super) out: Vec<Action>,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self::with(Config::default())
    }

    pub(super) fn with(cfg: Config) -> Self {
        Harness {
            table: TransactionTable::new(cfg),
            out: Vec::new(),
        }
    }

    /// Receives `bytes` from the peer over UDP.
    pub(super) fn recv(&mut self, now: u64, bytes: &[u8]) -> Received {
        self.recv_on(now, bytes, false)
    }

    pub(super) fn recv_on(&mut self, now: u64, bytes: &[u8], reliable: bool) -> Received {
        let msg = Message::parse(bytes).unwrap();
        self.table
            .receive(now, &msg, peer(), reliable, &mut self.out)
    }

    /// Sends a request to the peer over UDP.
    pub(super) fn send(&mut self, now: u64, bytes: &[u8]) -> TxId {
        self.send_on(now, bytes, false)
    }

    pub(super) fn send_on(&mut self, now: u64, bytes: &[u8], reliable: bool) -> TxId {
        self.table
            .send_request(now, bytes, peer(), reliable, &mut self.out)
            .unwrap()
    }

    pub(super) fn respond(&mut self, now: u64, tx: TxId, bytes: &[u8]) -> Result<(), TxError> {
        self.table.respond(now, tx, bytes, &mut self.out)
    }

    /// The actions so far, shown, and cleared.
    pub(super) fn take(&mut self) -> Vec<String> {
        self.out.drain(..).map(|a| show(&a)).collect()
    }

    /// The actions so far, raw, and cleared.
    pub(super) fn take_raw(&mut self) -> Vec<Action> {
        self.out.drain(..).collect()
    }

    /// Fires every deadline up to `until` at its exact time; the timeline.
    pub(super) fn run(&mut self, until: u64) -> Vec<(u64, String)> {
        let mut log = Vec::new();
        while let Some(at) = self.table.poll_timeout() {
            if at > until {
                break;
            }
            self.table.handle_timeout(at, &mut self.out);
            log.extend(self.out.drain(..).map(|a| (at, show(&a))));
        }
        log
    }
}

/// A timeline written as `(time, what)` pairs, for comparisons.
pub(super) fn line(items: &[(u64, &str)]) -> Vec<(u64, String)> {
    items.iter().map(|&(t, s)| (t, s.to_string())).collect()
}

/// `n` entries `(t, what)` at each time in `times`.
pub(super) fn at_each(times: &[u64], what: &str) -> Vec<(u64, String)> {
    times.iter().map(|&t| (t, what.to_string())).collect()
}

pub(super) const TERMINATED: &str = "Terminated";

pub(super) fn timeout(t: super::Timer) -> String {
    format!("{:?}", Event::Timeout(t))
}
