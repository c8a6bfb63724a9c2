//! SIP flow capture: every SIP message of both legs of a call, in and out,
//! as the owner shard saw it. Kept with the call while it runs and for a
//! short linger after it ends (the last 200 for BYE, retransmissions), then
//! handed to the control core, which stores it beside the CDR. Credentials
//! are redacted before a message is kept (`redact.rs`), and a flow keeps at
//! most `[callrecord] max_flow_bytes`: past that, one marker entry says it
//! was truncated and later messages are only counted.

use std::net::SocketAddr;

use crate::cdr::time_fmt::rfc3339_ms;
use crate::sip::build::{put_ip, put_uint};
use crate::sip::{HeaderName, Message};

/// Messages kept per call; later ones are counted, not kept.
pub const MAX_MESSAGES: usize = 300;
/// Longest message text kept (a longer one is cut, and says so).
pub const MAX_MESSAGE_BYTES: usize = 8192;
/// The longest a finished call's flow still collects messages, ms: while
/// one of the call's transactions is still waiting for its answer.
pub const LINGER_MS: u64 = 4_000;
/// How long it collects once every transaction of the call has its answer
/// (2*T1: a peer's first retransmission still lands in the flow), ms.
pub const SETTLED_LINGER_MS: u64 = 1_000;
/// Between two checks of a flow still waiting, ms (T1).
pub const RECHECK_LINGER_MS: u64 = 500;
/// Default most bytes of messages kept per call (`[callrecord] max_flow_bytes`).
pub const DEFAULT_MAX_BYTES: usize = 64 << 10;
/// The text of the entry that marks a truncated flow.
pub const TRUNCATED: &str = "[flow truncated: later messages not kept]";

/// What a stored record is (its first flag byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Outbound,
    Inbound,
    /// The marker of a flow cut at its byte cap.
    Truncated,
}

impl EntryKind {
    fn byte(self) -> u8 {
        match self {
            EntryKind::Outbound => 0,
            EntryKind::Inbound => 1,
            EntryKind::Truncated => 2,
        }
    }

    fn from_byte(b: u8) -> Option<EntryKind> {
        match b {
            0 => Some(EntryKind::Outbound),
            1 => Some(EntryKind::Inbound),
            2 => Some(EntryKind::Truncated),
            _ => None,
        }
    }
}

/// Stored flows start with this (older stores hold the JSON itself).
const MAGIC: &[u8; 4] = b"SPF1";

/// The flow of one call, kept as it will be stored: the header (`SPF1 |
/// dropped u64 | local len u8 + text`) is written when the flow is made,
/// and each message is copied once behind it (`unix_ms u64 | kind u8 |
/// leg u8 | peer len u8 + text | message len u32 + bytes`, little-endian),
/// so capturing costs the shard a `memcpy` per message and storing it
/// none ([`Flow::into_stored`]). The JSON the API serves is made when
/// someone asks for it ([`to_json`]), on the control core.
#[derive(Clone, Debug)]
pub struct Flow {
    /// Header, then records.
    records: Vec<u8>,
    /// Bytes of the header.
    header: usize,
    count: usize,
    /// Messages not kept because the flow was full.
    dropped: u64,
    /// Most bytes of `records` (the truncation marker may pass it).
    max_bytes: usize,
    truncated: bool,
}

/// A placeholder left where a flow was taken (holds nothing, allocates
/// nothing; not a flow to store).
impl Default for Flow {
    fn default() -> Flow {
        Flow {
            records: Vec::new(),
            header: 0,
            count: 0,
            dropped: 0,
            max_bytes: 0,
            truncated: false,
        }
    }
}

/// One decoded message (or the truncation marker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    pub unix_ms: u64,
    pub kind: EntryKind,
    /// Where it came from (inbound) or went to (outbound).
    pub peer: String,
    /// `caller` or `callee`.
    pub leg: &'static str,
    pub text: String,
}

impl Flow {
    /// An empty flow that keeps at most `max_bytes` of messages; `local` is
    /// our SIP address (the other end of every message). Room for a
    /// typical call's messages is taken at once, so the buffer is not
    /// copied as it grows.
    pub fn new(max_bytes: usize, local: &str) -> Flow {
        let local = &local.as_bytes()[..local.len().min(255)];
        let mut records = Vec::with_capacity(INITIAL_ROOM.min(max_bytes) + 16 + local.len());
        records.extend_from_slice(MAGIC);
        records.extend_from_slice(&0u64.to_le_bytes());
        records.push(local.len() as u8);
        records.extend_from_slice(local);
        Flow {
            header: records.len(),
            records,
            count: 0,
            dropped: 0,
            max_bytes,
            truncated: false,
        }
    }

    /// The call ended: gives back the spare room of the buffer's doubling
    /// beyond [`LINGER_ROOM`] (a finished flow waits [`LINGER_MS`] before
    /// it is handed over, and at thousands of calls a second that slack
    /// adds up). The linger's few messages then fit without a copy.
    pub fn seal(&mut self) {
        if self.records.capacity() - self.records.len() > 2 * LINGER_ROOM {
            self.records.shrink_to(self.records.len() + LINGER_ROOM);
        }
    }

    /// Keeps `data` (credentials redacted, cut at [`MAX_MESSAGE_BYTES`]),
    /// unless the flow is full: then it is counted as dropped, and the
    /// first message past the byte cap leaves the truncation marker.
    pub fn push(
        &mut self,
        unix_ms: u64,
        inbound: bool,
        peer: SocketAddr,
        leg: &'static str,
        data: &[u8],
    ) {
        if self.takes_more() {
            let data = super::redact::credentials(data);
            self.keep(unix_ms, inbound, peer, leg, &data);
        }
    }

    /// [`Flow::push`] of a message that came in and passed
    /// [`Message::check`]: its header index says whether it holds an
    /// (Proxy-)Authorization header, so one without is kept as it is,
    /// without a scan for credentials. (A checked message has no malformed
    /// header line the index could have missed.)
    pub fn push_checked(
        &mut self,
        unix_ms: u64,
        peer: SocketAddr,
        leg: &'static str,
        msg: &Message<'_>,
    ) {
        let credentials = msg.header_count(HeaderName::Authorization) > 0
            || msg.header_count(HeaderName::ProxyAuthorization) > 0;
        if credentials {
            self.push(unix_ms, true, peer, leg, msg.as_bytes());
        } else if self.takes_more() {
            self.keep(unix_ms, true, peer, leg, msg.as_bytes());
        }
    }

    /// Whether another message may be kept; if not, it is counted as dropped.
    fn takes_more(&mut self) -> bool {
        let full = self.count >= MAX_MESSAGES || self.truncated;
        if full {
            self.dropped += 1;
        }
        !full
    }

    fn keep(
        &mut self,
        unix_ms: u64,
        inbound: bool,
        peer: SocketAddr,
        leg: &'static str,
        data: &[u8],
    ) {
        let kept = &data[..data.len().min(MAX_MESSAGE_BYTES)];
        let cut: &[u8] = if data.len() > MAX_MESSAGE_BYTES {
            b"\r\n[... cut at 8192 bytes]"
        } else {
            b""
        };
        // Record head: time 8, flags 2, peer 1 + up to 47, length 4.
        let size = 8 + 2 + 48 + 4 + kept.len() + cut.len();
        if self.records.len() - self.header + size > self.max_bytes {
            self.truncated = true;
            self.dropped += 1;
            let kind = EntryKind::Truncated;
            self.record(unix_ms, kind, peer, leg, &[TRUNCATED.as_bytes()]);
            return;
        }
        self.count += 1;
        let kind = if inbound {
            EntryKind::Inbound
        } else {
            EntryKind::Outbound
        };
        self.record(unix_ms, kind, peer, leg, &[kept, cut]);
    }

    fn record(
        &mut self,
        unix_ms: u64,
        kind: EntryKind,
        peer: SocketAddr,
        leg: &'static str,
        parts: &[&[u8]],
    ) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let r = &mut self.records;
        r.reserve(len + 64);
        r.extend_from_slice(&unix_ms.to_le_bytes());
        r.push(kind.byte());
        r.push(u8::from(leg == "callee"));
        let len_at = r.len();
        r.push(0);
        push_addr(r, peer);
        r[len_at] = (r.len() - len_at - 1) as u8;
        r.extend_from_slice(&(len as u32).to_le_bytes());
        for p in parts {
            r.extend_from_slice(p);
        }
    }

    /// True once the byte cap cut the flow.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Messages kept.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The bytes to store: the buffer itself, with the dropped count filled in.
    pub fn into_stored(mut self) -> Vec<u8> {
        if let Some(slot) = self.records.get_mut(MAGIC.len()..MAGIC.len() + 8) {
            slot.copy_from_slice(&self.dropped.to_le_bytes());
        }
        self.records
    }
}

/// Room a sealed flow keeps for its linger's messages (the 200 for a BYE,
/// a retransmission or two).
const LINGER_ROOM: usize = 2 << 10;

/// Room a new flow takes at once: a call's INVITE..BYE on two legs, with
/// SDP, is 12-14 messages of 300-900 bytes.
const INITIAL_ROOM: usize = 8 << 10;

/// `ip:port` as `SocketAddr`'s `Display` writes it; an IPv4 address
/// digit by digit (every captured message writes one).
fn push_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            put_ip(out, std::net::IpAddr::V4(*v4.ip()));
            out.push(b':');
            put_uint(out, u64::from(v4.port()));
        }
        SocketAddr::V6(_) => {
            use std::io::Write;
            let _ = write!(out, "{addr}");
        }
    }
}

/// Reads what [`Flow::into_stored`] gave: (local address, dropped, messages in
/// capture order). None when the bytes are not such a flow.
pub fn decode(stored: &[u8]) -> Option<(String, u64, Vec<FlowEntry>)> {
    let mut rd = Reader(stored.strip_prefix(MAGIC)?);
    let dropped = u64::from_le_bytes(rd.take(8)?.try_into().ok()?);
    let local = rd.string()?;
    let mut entries = Vec::new();
    while !rd.0.is_empty() {
        let unix_ms = u64::from_le_bytes(rd.take(8)?.try_into().ok()?);
        let flags = rd.take(2)?;
        let peer = rd.string()?;
        let len = u32::from_le_bytes(rd.take(4)?.try_into().ok()?) as usize;
        let text = String::from_utf8_lossy(rd.take(len)?).into_owned();
        entries.push(FlowEntry {
            unix_ms,
            kind: EntryKind::from_byte(flags[0])?,
            peer,
            leg: if flags[1] != 0 { "callee" } else { "caller" },
            text,
        });
    }
    Some((local, dropped, entries))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn string(&mut self) -> Option<String> {
        let n = usize::from(*self.take(1)?.first()?);
        Some(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// The JSON the REST API returns (API.md section 4, sip-flow) for a stored
/// flow: `{messages: [{ts, direction, src, dst, leg, method | status,
/// summary, raw}], dropped}` in time order. A store written before flows
/// were kept in binary holds that JSON already; it is returned as it is.
pub fn to_json(stored: &[u8]) -> Option<serde_json::Value> {
    if stored.first() == Some(&b'{') {
        return serde_json::from_slice(stored).ok();
    }
    let (local, dropped, mut entries) = decode(stored)?;
    // Stable: the marker stays after the messages of its millisecond.
    entries.sort_by_key(|e| e.unix_ms);
    let truncated = entries.iter().any(|e| e.kind == EntryKind::Truncated);
    let messages: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|e| {
            let inbound = e.kind == EntryKind::Inbound;
            let (src, dst) = if inbound {
                (e.peer.as_str(), local.as_str())
            } else {
                (local.as_str(), e.peer.as_str())
            };
            let first = e.text.lines().next().unwrap_or_default();
            let mut m = serde_json::json!({
                "ts": rfc3339_ms(e.unix_ms),
                "direction": if inbound { "in" } else { "out" },
                "src": src,
                "dst": dst,
                "leg": e.leg,
                "summary": first,
            });
            if e.kind == EntryKind::Truncated {
                m["method"] = "TRUNCATED".into();
                m["truncated"] = true.into();
            } else {
                match first.strip_prefix("SIP/2.0 ") {
                    Some(rest) => {
                        let code: Option<u16> = rest.get(..3).and_then(|c| c.parse().ok());
                        m["status"] = code.into();
                    }
                    None => m["method"] = first.split(' ').next().unwrap_or_default().into(),
                }
            }
            m["raw"] = e.text.into();
            m
        })
        .collect();
    Some(serde_json::json!({
        "messages": messages,
        "dropped": dropped,
        "truncated": truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_caps_size_and_count() {
        let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut f = Flow::new(DEFAULT_MAX_BYTES, "10.0.0.1:5060");
        f.push(20, false, peer, "callee", b"SIP/2.0 200 OK\r\n\r\n");
        f.push(10, true, peer, "caller", b"INVITE sip:a@b SIP/2.0\r\n\r\n");
        f.push(
            30,
            true,
            peer,
            "caller",
            &vec![b'x'; MAX_MESSAGE_BYTES + 10],
        );
        let v = to_json(&f.clone().into_stored()).unwrap();
        let m = &v["messages"];
        assert_eq!(m[0]["summary"], "INVITE sip:a@b SIP/2.0");
        assert_eq!(m[0]["method"], "INVITE");
        assert_eq!(m[0]["src"], "127.0.0.1:5070");
        assert_eq!(m[0]["dst"], "10.0.0.1:5060");
        assert_eq!(m[1]["direction"], "out");
        assert_eq!(m[1]["status"], 200);
        assert!(m[1].get("method").is_none());
        assert!(m[2]["raw"]
            .as_str()
            .unwrap()
            .ends_with("[... cut at 8192 bytes]"));
        for i in 0..MAX_MESSAGES {
            f.push(
                40 + i as u64,
                true,
                peer,
                "caller",
                b"OPTIONS x SIP/2.0\r\n\r\n",
            );
        }
        assert_eq!(f.len(), MAX_MESSAGES);
        let (local, dropped, entries) = decode(&f.into_stored()).unwrap();
        assert_eq!(local, "10.0.0.1:5060");
        assert_eq!(dropped, 3);
        assert_eq!(entries.len(), MAX_MESSAGES);
        assert_eq!(entries[0].peer, "127.0.0.1:5070");
        assert_eq!(entries[0].leg, "callee");
    }

    #[test]
    fn a_sealed_flow_keeps_only_linger_room_and_takes_late_messages_in_place() {
        let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut f = Flow::new(DEFAULT_MAX_BYTES, "10.0.0.1:5060");
        for i in 0..22 {
            f.push(i, true, peer, "caller", &[b'x'; 500]);
        }
        assert!(
            f.records.capacity() - f.records.len() > 2 * LINGER_ROOM,
            "doubling past the first room leaves slack: {} of {}",
            f.records.len(),
            f.records.capacity()
        );
        f.seal();
        assert_eq!(f.records.capacity(), f.records.len() + LINGER_ROOM);
        let (at, room) = (f.records.as_ptr(), f.records.capacity());
        f.push(30, false, peer, "caller", b"SIP/2.0 200 OK\r\n\r\n");
        assert_eq!(
            (f.records.as_ptr(), f.records.capacity()),
            (at, room),
            "no copy"
        );
        let (_, _, entries) = decode(&f.into_stored()).unwrap();
        assert_eq!(entries.len(), 23);
        assert_eq!(entries[22].text, "SIP/2.0 200 OK\r\n\r\n");
        // A typical call's flow fits its first room and keeps it.
        let mut small = Flow::new(DEFAULT_MAX_BYTES, "10.0.0.1:5060");
        for i in 0..12 {
            small.push(i, i % 2 == 0, peer, "callee", &[b'y'; 500]);
        }
        let room = small.records.capacity();
        small.seal();
        assert_eq!(small.records.capacity(), room);
    }

    #[test]
    fn truncated_or_foreign_bytes_do_not_decode() {
        let peer: SocketAddr = "[::1]:5070".parse().unwrap();
        let mut f = Flow::new(DEFAULT_MAX_BYTES, "[::1]:5060");
        f.push(10, true, peer, "caller", b"INVITE sip:a@b SIP/2.0\r\n\r\n");
        let bytes = f.into_stored();
        // Header: magic, dropped, local address.
        let header = 4 + 8 + 1 + "[::1]:5060".len();
        for cut in (0..bytes.len()).filter(|&c| c != header) {
            assert!(decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode(&bytes[..header]).unwrap().2.is_empty());
        assert!(decode(b"not a flow").is_none());
        assert_eq!(decode(&bytes).unwrap().2[0].peer, "[::1]:5070");
    }

    #[test]
    fn credentials_are_redacted_before_they_are_kept() {
        let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut f = Flow::new(DEFAULT_MAX_BYTES, "127.0.0.1:5060");
        let invite = "INVITE sip:1002@pbx SIP/2.0\r\nProxy-Authorization: Digest username=\"1001\", realm=\"pbx\", nonce=\"n1\", uri=\"sip:1002@pbx\", response=\"0123456789abcdef0123456789abcdef\"\r\n\r\n";
        f.push(10, true, peer, "caller", invite.as_bytes());
        let stored = f.into_stored();
        assert!(!stored
            .windows(32)
            .any(|w| w == b"0123456789abcdef0123456789abcdef"));
        let v = to_json(&stored).unwrap();
        let raw = v["messages"][0]["raw"].as_str().unwrap();
        assert!(
            raw.contains("Proxy-Authorization: Digest username=\"1001\", realm=\"pbx\", nonce=\"n1\", uri=\"sip:1002@pbx\", response=\"<redacted>\""),
            "{raw}"
        );
        assert_eq!(v["truncated"], false);
    }

    #[test]
    fn a_checked_message_is_kept_as_the_redacting_push_keeps_it() {
        let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let head = "INVITE sip:1002@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx\r\n\
From: <sip:1001@pbx>;tag=a\r\nTo: <sip:1002@pbx>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n";
        let digest = "Digest username=\"1001\", realm=\"pbx\", nonce=\"n\", uri=\"sip:1002@pbx\", response=\"secret0123\"";
        let extras = [
            String::new(),
            format!("Proxy-Authorization: {digest}\r\n"),
            format!("authorization  : {digest}\r\n"),
            format!("PROXY-AUTHORIZATION:\r\n {digest}\r\n"),
            "Authorization: Bearer tok3n\r\n".to_string(),
            "X-Authorization: response=\"not-a-credential\"\r\nSubject: Authorization\r\n"
                .to_string(),
        ];
        for extra in extras {
            let text = format!("{head}{extra}Content-Length: 0\r\n\r\n");
            let msg = Message::parse(text.as_bytes()).unwrap();
            msg.check().unwrap();
            let mut raw = Flow::new(DEFAULT_MAX_BYTES, "l");
            raw.push(7, true, peer, "caller", msg.as_bytes());
            let mut checked = Flow::new(DEFAULT_MAX_BYTES, "l");
            checked.push_checked(7, peer, "caller", &msg);
            let stored = checked.into_stored();
            assert_eq!(stored, raw.into_stored(), "{extra}");
            assert!(
                !stored.windows(6).any(|w| w == b"secret" || w == b"tok3n\r"),
                "{extra}"
            );
        }
    }

    #[test]
    fn the_byte_cap_truncates_with_one_marker() {
        let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut f = Flow::new(4096, "127.0.0.1:5060");
        let msg = vec![b'y'; 1000];
        for i in 0..10 {
            f.push(100 + i, i % 2 == 0, peer, "caller", &msg);
        }
        assert!(f.is_truncated());
        let stored = f.into_stored();
        assert!(stored.len() < 4096 + 200, "{}", stored.len());
        let (_, dropped, entries) = decode(&stored).unwrap();
        let kept = entries
            .iter()
            .filter(|e| e.kind != EntryKind::Truncated)
            .count();
        assert_eq!(kept, 3, "three 1000-byte messages fit in 4096");
        assert_eq!(dropped, 7);
        assert_eq!(entries.last().unwrap().kind, EntryKind::Truncated);
        assert_eq!(entries.last().unwrap().unix_ms, 103);
        let v = to_json(&stored).unwrap();
        assert_eq!(v["truncated"], true);
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[3]["method"], "TRUNCATED");
        assert_eq!(m[3]["truncated"], true);
        assert_eq!(m[3]["raw"], TRUNCATED);
        assert!(m[..3].iter().all(|x| x.get("truncated").is_none()));
        // A cap that holds everything leaves no marker.
        let mut roomy = Flow::new(1 << 20, "l");
        for i in 0..10 {
            roomy.push(i, true, peer, "callee", &msg);
        }
        assert!(!roomy.is_truncated());
        assert_eq!(decode(&roomy.into_stored()).unwrap().2.len(), 10);
    }

    #[test]
    fn peers_are_written_as_display_writes_them() {
        let mut addrs: Vec<SocketAddr> = ["[::1]:5070", "[2001:db8::7]:0", "0.0.0.0:0"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        for (i, octet) in [0u8, 1, 9, 10, 99, 100, 199, 255].into_iter().enumerate() {
            let port = [0u16, 7, 10, 5060, 65535][i % 5];
            addrs.push(SocketAddr::from(([octet, 255 - octet, 1, octet / 3], port)));
        }
        for addr in addrs {
            let mut out = Vec::new();
            push_addr(&mut out, addr);
            assert_eq!(out, addr.to_string().into_bytes());
        }
    }

    #[test]
    fn a_flow_stored_as_json_is_served_as_it_is() {
        let v = to_json(br#"{"messages":[],"dropped":0}"#).unwrap();
        assert_eq!(v["dropped"], 0);
    }
}
