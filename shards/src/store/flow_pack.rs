//! How a SIP flow is kept on disk: an LZ4 block behind a tag. A call's
//! messages repeat themselves (Via, From, To, Call-ID, the two legs' copies
//! of one SDP), so a flow shrinks to about a third, and the store's disk
//! budget holds about three times the calls. Flows stored before the tag
//! existed are read as they are.

/// The tag of a compressed flow; an uncompressed one starts with the flow's
/// own magic (`SPF1`) or `[` (the JSON of older stores).
const TAG: &[u8; 4] = b"SPZ1";

/// The most a stored flow may expand to. Flows are capped per call
/// (`[callrecord] max_flow_bytes`, at most a few MB): a larger size
/// prefix is corruption, not a flow, and is not allocated.
const MAX_PLAIN: usize = 64 << 20;

/// The stored form of `raw`.
pub fn pack(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TAG.len() + 4 + raw.len() / 2);
    out.extend_from_slice(TAG);
    out.extend_from_slice(&lz4_flex::compress_prepend_size(raw));
    out
}

/// What [`pack`] was given (an untagged value as it is); `None` when the
/// stored bytes are corrupt.
pub fn unpack(stored: &[u8]) -> Option<Vec<u8>> {
    let Some(block) = stored.strip_prefix(TAG) else {
        return Some(stored.to_vec());
    };
    let size = u32::from_le_bytes(block.get(..4)?.try_into().ok()?) as usize;
    if size > MAX_PLAIN {
        return None;
    }
    let out = lz4_flex::decompress_size_prepended(block).ok()?;
    (out.len() == size).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow_like(n: usize) -> Vec<u8> {
        let mut raw = b"SPF1".to_vec();
        for i in 0..n {
            raw.extend_from_slice(
                format!(
                    "INVITE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{i}\r\nFrom: <sip:1001@127.0.0.1>;tag=abc\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: 42-{i}@127.0.0.1\r\nCSeq: {i} INVITE\r\nContent-Length: 0\r\n\r\n"
                )
                .as_bytes(),
            );
        }
        raw
    }

    #[test]
    fn a_flow_comes_back_as_it_went_and_smaller() {
        let raw = flow_like(14);
        let stored = pack(&raw);
        assert!(
            stored.len() * 2 < raw.len(),
            "{} -> {}",
            raw.len(),
            stored.len()
        );
        assert_eq!(unpack(&stored).as_deref(), Some(&raw[..]));
        assert_eq!(unpack(&pack(b"")).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn flows_stored_before_compression_read_as_they_are() {
        let old = flow_like(2);
        assert_eq!(unpack(&old).as_deref(), Some(&old[..]));
        assert_eq!(
            unpack(b"[{\"ts\":1}]").as_deref(),
            Some(&b"[{\"ts\":1}]"[..])
        );
    }

    #[test]
    fn corrupt_or_oversized_blocks_are_refused_without_allocating() {
        let mut huge = TAG.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 16]);
        assert_eq!(unpack(&huge), None);
        assert_eq!(unpack(b"SPZ1"), None);
        assert_eq!(unpack(b"SPZ1\x05\0\0\0"), None);
        let mut cut = pack(&flow_like(4));
        cut.truncate(cut.len() / 2);
        assert_eq!(unpack(&cut), None);
    }
}
