//! The stream framer (`transport::Framer`): the input is a byte stream cut
//! into reads (`len`, bytes) at advancing times. Whatever arrives, the
//! framer never holds more than one message at its limits plus one read,
//! every message it hands out is a head ending in CRLF CRLF plus exactly the
//! Content-Length it declares, and the same bytes fed in one read frame the
//! same messages (framing does not depend on how the stream was cut).

use shards::transport::{Frame, FrameError, Framer, Limits};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

fn limits() -> Limits {
    Limits {
        max_head: 2048,
        max_body: 4096,
        partial_ms: 1_000,
    }
}

/// Frames of the stream cut as `reads` says: messages, pings, the error.
fn frame(reads: &[&[u8]]) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut f = Framer::new(limits());
    let mut out = Vec::new();
    let mut now = 0u64;
    for read in reads {
        now += 7;
        f.push(now, read);
        assert!(
            f.buffered() <= limits().max_head + limits().max_body + read.len(),
            "buffered {} after a read of {}",
            f.buffered(),
            read.len()
        );
        loop {
            match f.poll(now) {
                Ok(Some(Frame::Message(m))) => {
                    let head = m
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .expect("a message has a head")
                        + 4;
                    assert!(head <= limits().max_head);
                    assert!(m.len() - head <= limits().max_body);
                    out.push(m.to_vec());
                }
                Ok(Some(Frame::Ping)) => out.push(b"PING".to_vec()),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn run(data: &[u8]) {
    let mut reads = Vec::new();
    let mut rest = data;
    while let [len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        reads.push(&tail[..n]);
        rest = &tail[n..];
    }
    let cut = frame(&reads);
    let whole: Vec<u8> = reads.concat();
    let (all, err) = frame(&[&whole]);
    // A stream cut into reads frames what the whole stream frames, up to the
    // point where either gave up (a limit may trip earlier on the whole).
    if err.is_none() && cut.1.is_none() {
        assert_eq!(cut.0, all);
    }
}
