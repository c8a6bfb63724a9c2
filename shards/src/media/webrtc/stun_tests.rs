//! STUN against the RFC 5769 test vectors, and hostile input (every
//! truncation, every flipped bit) never panics nor passes.

use std::net::SocketAddr;

use super::stun::{binding_request, check_request, success_response, Writer, BINDING_REQUEST};

const PWD: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const TXID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];
const SOFTWARE: u16 = 0x8022;

/// RFC 5769 2.1: sample request (USERNAME "evtj:h6vY", padded with spaces).
const SAMPLE_REQUEST: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
];

/// RFC 5769 2.2: sample IPv4 response (192.0.2.1:32853).
const SAMPLE_IPV4_RESPONSE: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
];

/// RFC 5769 2.3: sample IPv6 response
/// ([2001:db8:1234:5678:11:2233:4455:6677]:32853).
const SAMPLE_IPV6_RESPONSE: [u8; 92] = [
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
];

fn check(buf: &[u8]) -> Option<super::stun::Request> {
    check_request(buf, b"evtj:h6vY", PWD.as_bytes())
}

#[test]
fn rfc5769_sample_request_verifies() {
    let req = check(&SAMPLE_REQUEST).expect("the RFC 5769 request is valid");
    assert_eq!(req.txid, TXID);
    // It carries ICE-CONTROLLED and no USE-CANDIDATE.
    assert!(!req.controlling);
    assert!(!req.use_candidate);
}

#[test]
fn wrong_password_or_username_is_refused() {
    assert!(check_request(&SAMPLE_REQUEST, b"evtj:h6vY", b"VOkJxbRl1RmTxUk/WvJxBu").is_none());
    assert!(check_request(&SAMPLE_REQUEST, b"evtj:h6vZ", PWD.as_bytes()).is_none());
    assert!(check_request(&SAMPLE_REQUEST, b"evtj", PWD.as_bytes()).is_none());
    assert!(check_request(&SAMPLE_REQUEST, b"", PWD.as_bytes()).is_none());
}

#[test]
fn every_flipped_bit_is_refused() {
    for i in 0..SAMPLE_REQUEST.len() {
        for bit in 0..8 {
            let mut req = SAMPLE_REQUEST;
            req[i] ^= 1 << bit;
            assert!(check(&req).is_none(), "byte {i} bit {bit}");
        }
    }
}

#[test]
fn every_truncation_is_refused_without_panic() {
    for n in 0..SAMPLE_REQUEST.len() {
        assert!(check(&SAMPLE_REQUEST[..n]).is_none(), "length {n}");
        // The same with the header's length made to agree, so that the
        // attribute walk runs into the cut.
        if n >= 20 {
            let mut cut = SAMPLE_REQUEST[..n].to_vec();
            cut[2..4].copy_from_slice(&u16::try_from(n - 20).unwrap().to_be_bytes());
            assert!(check(&cut).is_none(), "length {n}, length field patched");
        }
    }
    // Garbage after a valid request, and attribute lengths pointing past
    // the end, are refused too.
    let mut long = SAMPLE_REQUEST.to_vec();
    long.extend_from_slice(&[0; 4]);
    assert!(check(&long).is_none());
    for at in (20..SAMPLE_REQUEST.len() - 4).step_by(4) {
        let mut req = SAMPLE_REQUEST;
        req[at + 2] = 0xff;
        req[at + 3] = 0xff;
        assert!(check(&req).is_none(), "attribute length at {at}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut state = 0x1234_5678u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for len in 0..200 {
        for _ in 0..50 {
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 8 {
                // Mostly well-formed headers, so the walk goes deeper.
                buf[0] = 0;
                buf[1] = 1;
                buf[2..4].copy_from_slice(&u16::try_from(len.max(20) - 20).unwrap().to_be_bytes());
                buf[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            }
            assert!(check(&buf).is_none());
        }
    }
}

/// Our encoder, given the SOFTWARE attribute the vectors carry (padded
/// with a space, as they are), reproduces them byte for byte: the
/// XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY and FINGERPRINT.
fn sample_response(addr: &str) -> Vec<u8> {
    let mut w = Writer::new(0x0101, &TXID);
    w.attr(SOFTWARE, b"test vector", b' ');
    w.xor_mapped_address(addr.parse().unwrap());
    w.integrity(PWD.as_bytes());
    w.finish()
}

#[test]
fn rfc5769_ipv4_response_encodes() {
    assert_eq!(sample_response("192.0.2.1:32853"), SAMPLE_IPV4_RESPONSE);
}

#[test]
fn rfc5769_ipv6_response_encodes() {
    assert_eq!(
        sample_response("[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
        SAMPLE_IPV6_RESPONSE
    );
}

#[test]
fn success_response_layout() {
    let v4: SocketAddr = "192.0.2.1:32853".parse().unwrap();
    let resp = success_response(&TXID, v4, PWD.as_bytes());
    // Header, XOR-MAPPED-ADDRESS (the vector's), MESSAGE-INTEGRITY,
    // FINGERPRINT.
    assert_eq!(resp.len(), 20 + 12 + 24 + 8);
    assert_eq!(&resp[..2], &[0x01, 0x01]);
    assert_eq!(&resp[2..4], &[0, 44]);
    assert_eq!(&resp[8..20], &TXID);
    assert_eq!(&resp[20..32], &SAMPLE_IPV4_RESPONSE[36..48]);
    assert_eq!(&resp[32..36], &[0x00, 0x08, 0x00, 0x14]);
    assert_eq!(&resp[56..60], &[0x80, 0x28, 0x00, 0x04]);
    let crc = crc32fast::hash(&resp[..56]) ^ 0x5354_554e;
    assert_eq!(&resp[60..], &crc.to_be_bytes());

    let v6: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
        .parse()
        .unwrap();
    let resp = success_response(&TXID, v6, PWD.as_bytes());
    assert_eq!(&resp[20..44], &SAMPLE_IPV6_RESPONSE[36..60]);

    // A dual-stack socket's view of an IPv4 peer is answered as IPv4.
    let mapped: SocketAddr = "[::ffff:192.0.2.1]:32853".parse().unwrap();
    let resp = success_response(&TXID, mapped, PWD.as_bytes());
    assert_eq!(&resp[20..32], &SAMPLE_IPV4_RESPONSE[36..48]);
}

#[test]
fn test_builder_requests_verify() {
    let req = binding_request(&TXID, "ours:theirs", "0123456789abcdefghijkl", true, true);
    assert_eq!(&req[..2], &BINDING_REQUEST.to_be_bytes());
    let got = check_request(&req, b"ours:theirs", b"0123456789abcdefghijkl").unwrap();
    assert!(got.controlling && got.use_candidate);
    assert_eq!(got.txid, TXID);
    let req = binding_request(&TXID, "ours:theirs", "0123456789abcdefghijkl", false, false);
    let got = check_request(&req, b"ours:theirs", b"0123456789abcdefghijkl").unwrap();
    assert!(!got.controlling && !got.use_candidate);
    // Signed with another password: refused.
    assert!(check_request(&req, b"ours:theirs", b"0123456789abcdefghijkL").is_none());
}
