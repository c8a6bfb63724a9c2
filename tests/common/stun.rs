//! The STUN Binding request a browser's ICE agent sends an ICE-lite peer
//! (RFC 8445, RFC 5389): USERNAME, PRIORITY, ICE-CONTROLLING,
//! USE-CANDIDATE, MESSAGE-INTEGRITY and FINGERPRINT, built here so tests and
//! benches can play the browser without one.

use hmac::Mac;

/// A STUN Binding request as a controlling ICE agent sends it, nominating
/// (USE-CANDIDATE), signed with the receiver's `pwd`; `username` is
/// `<receiver ufrag>:<sender ufrag>`.
pub(crate) fn stun_check(username: &str, pwd: &str, txid: [u8; 12]) -> Vec<u8> {
    fn attr(m: &mut Vec<u8>, kind: u16, value: &[u8]) {
        m.extend_from_slice(&kind.to_be_bytes());
        m.extend_from_slice(&(value.len() as u16).to_be_bytes());
        m.extend_from_slice(value);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
    }
    /// The header's length as if the message ended `extra` bytes later.
    fn set_len(m: &mut [u8], extra: usize) {
        let len = (m.len() - 20 + extra) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
    }
    let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&txid);
    attr(&mut m, 0x0006, username.as_bytes()); // USERNAME
    attr(&mut m, 0x0024, &0x6e00_1eff_u32.to_be_bytes()); // PRIORITY
    attr(&mut m, 0x802a, &[1, 2, 3, 4, 5, 6, 7, 8]); // ICE-CONTROLLING
    attr(&mut m, 0x0025, &[]); // USE-CANDIDATE
    set_len(&mut m, 24);
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(pwd.as_bytes()).unwrap();
    mac.update(&m);
    let tag = mac.finalize().into_bytes();
    attr(&mut m, 0x0008, &tag); // MESSAGE-INTEGRITY
    set_len(&mut m, 8);
    let crc = crc32fast::hash(&m) ^ 0x5354_554e;
    attr(&mut m, 0x8028, &crc.to_be_bytes()); // FINGERPRINT
    m
}
