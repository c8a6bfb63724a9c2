//! SIP flow capture: every SIP message of both legs of a call, in and out,
//! as the owner shard saw it. Kept with the call while it runs and for a
//! short linger after it ends (the last 200 for BYE, retransmissions), then
//! handed to the control core, which stores it beside the CDR.

use std::net::SocketAddr;

use crate::cdr::time_fmt::rfc3339_ms;

/// Messages kept per call; later ones are counted, not kept.
pub const MAX_MESSAGES: usize = 300;
/// Longest message text kept (a longer one is cut, and says so).
pub const MAX_MESSAGE_BYTES: usize = 8192;
/// How long a finished call's flow still collects messages, ms.
pub const LINGER_MS: u64 = 4_000;

/// One captured message.
#[derive(Clone, Debug)]
pub struct FlowEntry {
    pub unix_ms: u64,
    pub inbound: bool,
    /// Where it came from (inbound) or went to (outbound).
    pub peer: SocketAddr,
    /// `caller` or `callee`.
    pub leg: &'static str,
    pub text: String,
}

/// The flow of one call.
#[derive(Clone, Debug, Default)]
pub struct Flow {
    pub entries: Vec<FlowEntry>,
    /// Messages not kept because the flow was full.
    pub dropped: u64,
}

impl Flow {
    pub fn push(
        &mut self,
        unix_ms: u64,
        inbound: bool,
        peer: SocketAddr,
        leg: &'static str,
        data: &[u8],
    ) {
        if self.entries.len() >= MAX_MESSAGES {
            self.dropped += 1;
            return;
        }
        let cut = data.len() > MAX_MESSAGE_BYTES;
        let mut text =
            String::from_utf8_lossy(&data[..data.len().min(MAX_MESSAGE_BYTES)]).into_owned();
        if cut {
            text.push_str("\r\n[... cut at 8192 bytes]");
        }
        self.entries.push(FlowEntry {
            unix_ms,
            inbound,
            peer,
            leg,
            text,
        });
    }

    /// The JSON the REST API returns (API.md section 4, sip-flow):
    /// `{messages: [{ts, direction, src, dst, leg, method | status, summary,
    /// raw}], dropped}` in time order. `local` is our SIP address.
    pub fn to_json(&self, local: &str) -> Vec<u8> {
        let mut entries: Vec<&FlowEntry> = self.entries.iter().collect();
        entries.sort_by_key(|e| e.unix_ms);
        let messages: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let peer = e.peer.to_string();
                let (src, dst) = if e.inbound {
                    (peer.as_str(), local)
                } else {
                    (local, peer.as_str())
                };
                let first = e.text.lines().next().unwrap_or_default();
                let mut m = serde_json::json!({
                    "ts": rfc3339_ms(e.unix_ms),
                    "direction": if e.inbound { "in" } else { "out" },
                    "src": src,
                    "dst": dst,
                    "leg": e.leg,
                    "summary": first,
                    "raw": e.text,
                });
                match first.strip_prefix("SIP/2.0 ") {
                    Some(rest) => {
                        let code: Option<u16> = rest.get(..3).and_then(|c| c.parse().ok());
                        m["status"] = code.into();
                    }
                    None => m["method"] = first.split(' ').next().unwrap_or_default().into(),
                }
                m
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "messages": messages,
            "dropped": self.dropped,
        }))
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_caps_size_and_count() {
        let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let mut f = Flow::default();
        f.push(20, false, peer, "callee", b"SIP/2.0 200 OK\r\n\r\n");
        f.push(10, true, peer, "caller", b"INVITE sip:a@b SIP/2.0\r\n\r\n");
        f.push(
            30,
            true,
            peer,
            "caller",
            &vec![b'x'; MAX_MESSAGE_BYTES + 10],
        );
        let v: serde_json::Value = serde_json::from_slice(&f.to_json("10.0.0.1:5060")).unwrap();
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
        assert_eq!(f.entries.len(), MAX_MESSAGES);
        assert_eq!(f.dropped, 3);
    }
}
