//! Stored SIP flows: `decode` and `to_json` (what `GET .../sip-flow` serves
//! from the store) never panic on any stored bytes, agree on the number of
//! messages, and what `Flow::push` + `into_stored` write decodes to what was pushed.

use std::net::SocketAddr;

use shards::call::flow::{
    decode, to_json, EntryKind, Flow, DEFAULT_MAX_BYTES, MAX_MESSAGES, MAX_MESSAGE_BYTES,
};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

fn run(data: &[u8]) {
    // As stored bytes.
    let decoded = decode(data);
    let json = to_json(data);
    if let Some((_, dropped, entries)) = &decoded {
        let json = json.expect("a decodable flow has a JSON form");
        let messages = json["messages"].as_array().expect("messages array");
        assert_eq!(messages.len(), entries.len());
        assert_eq!(json["dropped"].as_u64(), Some(*dropped));
    }
    // As pushes: each chunk of the input is one message.
    let mut flow = Flow::new(DEFAULT_MAX_BYTES, "198.51.100.1:5060");
    let mut pushed = Vec::new();
    for (i, chunk) in data.split(|&b| b == 0xff).enumerate() {
        let ms = u64::from_le_bytes(
            chunk
                .iter()
                .chain([0u8; 8].iter())
                .take(8)
                .copied()
                .collect::<Vec<_>>()
                .try_into()
                .expect("8 bytes"),
        );
        let inbound = i % 2 == 0;
        let leg = if i % 3 == 0 { "callee" } else { "caller" };
        let peer: SocketAddr = if i % 2 == 0 {
            SocketAddr::from(([192, 0, 2, chunk.len() as u8], 5060))
        } else {
            SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, chunk.len() as u16], 5061))
        };
        flow.push(ms, inbound, peer, leg, chunk);
        if pushed.len() < MAX_MESSAGES {
            pushed.push((ms, inbound, peer.to_string(), leg, chunk.len()));
        }
    }
    let stored = flow.into_stored();
    let (local, dropped, entries) = decode(&stored).expect("our own flow decodes");
    assert_eq!(local, "198.51.100.1:5060");
    // Every push is kept or counted; a flow past its byte cap ends with one
    // truncation marker, which is no message.
    let markers = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Truncated)
        .count();
    assert!(markers <= 1);
    let messages: Vec<_> = entries
        .iter()
        .filter(|e| e.kind != EntryKind::Truncated)
        .collect();
    assert_eq!(
        messages.len() as u64 + dropped,
        data.split(|&b| b == 0xff).count() as u64
    );
    for (e, p) in messages.iter().zip(&pushed) {
        assert_eq!(
            (e.unix_ms, e.kind == EntryKind::Inbound, e.peer.as_str(), e.leg),
            (p.0, p.1, p.2.as_str(), p.3)
        );
        // The text is kept up to the size cap (plus a "cut" note). Counted
        // in characters: a byte that is not UTF-8 is shown as U+FFFD, three
        // bytes of text for one byte stored.
        assert!(e.text.chars().count() <= MAX_MESSAGE_BYTES + 64);
    }
    let json = to_json(&stored).expect("our own flow has a JSON form");
    assert_eq!(
        json["messages"].as_array().map(Vec::len),
        Some(entries.len())
    );
}
