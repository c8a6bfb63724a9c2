//! Batched UDP I/O on a raw socket fd: `recvmmsg` to drain what the kernel
//! holds, `sendmmsg` to flush what a shard queued. Non-blocking only: the
//! shard awaits readiness through glommio and then calls these.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Preallocated buffers and headers for one `recvmmsg` call.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    iovecs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
}

/// One received datagram.
pub struct Received<'a> {
    pub data: &'a [u8],
    pub src: Option<SocketAddr>,
    /// The datagram was larger than the slot and got cut.
    pub truncated: bool,
}

impl RecvBatch {
    /// `count` datagrams of at most `slot` bytes each.
    pub fn new(count: usize, slot: usize) -> RecvBatch {
        let count = count.max(1);
        RecvBatch {
            buf: vec![0; count * slot],
            slot,
            // SAFETY: plain C structs for which all-zero is a valid value.
            iovecs: (0..count).map(|_| unsafe { zeroed() }).collect(),
            addrs: (0..count).map(|_| unsafe { zeroed() }).collect(),
            hdrs: (0..count).map(|_| unsafe { zeroed() }).collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Receives up to `capacity()` datagrams without blocking. `Ok(0)` when
    /// nothing is waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let base = self.buf.as_mut_ptr();
        for i in 0..self.hdrs.len() {
            self.iovecs[i] = libc::iovec {
                // SAFETY: i * slot < buf.len().
                iov_base: unsafe { base.add(i * self.slot) }.cast(),
                iov_len: self.slot,
            };
            let hdr = &mut self.hdrs[i].msg_hdr;
            hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers owned by self.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last `recv`, writable (the relay rewrites RTP
    /// headers in place): (data, source, truncated).
    pub fn get_mut(&mut self, i: usize) -> (&mut [u8], Option<SocketAddr>, bool) {
        let hdr = &self.hdrs[i];
        let len = (hdr.msg_len as usize).min(self.slot);
        let truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let src = from_storage(&self.addrs[i]);
        (
            &mut self.buf[i * self.slot..i * self.slot + len],
            src,
            truncated,
        )
    }

    /// Datagram `i` of the last `recv`.
    pub fn get(&self, i: usize) -> Received<'_> {
        let hdr = &self.hdrs[i];
        let len = (hdr.msg_len as usize).min(self.slot);
        Received {
            data: &self.buf[i * self.slot..i * self.slot + len],
            src: from_storage(&self.addrs[i]),
            truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        }
    }
}

/// Datagrams queued by a shard, flushed with `sendmmsg`. The `sendmmsg`
/// headers are scratch space kept between flushes, so a flush allocates
/// nothing once the queue has seen its largest batch.
#[derive(Default)]
pub struct SendQueue {
    arena: Vec<u8>,
    items: Vec<(SocketAddr, usize, usize)>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl SendQueue {
    pub fn push(&mut self, dst: SocketAddr, data: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(data);
        self.items.push((dst, start, data.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn clear(&mut self) {
        self.arena.clear();
        self.items.clear();
    }

    /// Datagram `i` and its destination.
    pub fn item(&self, i: usize) -> (SocketAddr, &[u8]) {
        let (dst, start, len) = self.items[i];
        (dst, &self.arena[start..start + len])
    }

    /// Sends items `from..` in batches of `batch` without blocking. Returns the
    /// index of the first item not sent: `len()` when all went, less when the
    /// socket buffer is full (the caller waits and retries). An item the
    /// kernel refuses outright (unreachable, too big) is skipped and counted in
    /// `failed`.
    pub fn send_from(&mut self, fd: RawFd, from: usize, batch: usize, failed: &mut u64) -> usize {
        let batch = batch.max(1);
        let mut next = from;
        let mut addrs = std::mem::take(&mut self.addrs);
        let mut iovecs = std::mem::take(&mut self.iovecs);
        let mut hdrs = std::mem::take(&mut self.hdrs);
        while next < self.items.len() {
            let end = (next + batch).min(self.items.len());
            addrs.clear();
            iovecs.clear();
            hdrs.clear();
            for i in next..end {
                let (dst, data) = self.item(i);
                addrs.push(to_storage(dst).0);
                iovecs.push(libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                });
            }
            for (k, i) in (next..end).enumerate() {
                let (dst, _) = self.item(i);
                // SAFETY: zeroed mmsghdr is valid; pointers set below stay alive
                // until sendmmsg returns (the vectors are not touched meanwhile).
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_name = (&mut addrs[k] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = to_storage(dst).1;
                h.msg_hdr.msg_iov = &mut iovecs[k];
                h.msg_hdr.msg_iovlen = 1;
                hdrs.push(h);
            }
            // SAFETY: headers point into addrs/iovecs/arena, all alive here.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    hdrs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    // The first datagram is refused: skip it, keep the rest.
                    _ => {
                        *failed += 1;
                        next += 1;
                    }
                }
            } else {
                next += n as usize;
            }
        }
        // Keep the scratch space (no dangling pointers matter: every header
        // is rebuilt before the next use).
        hdrs.clear();
        self.addrs = addrs;
        self.iovecs = iovecs;
        self.hdrs = hdrs;
        next
    }
}

/// `SocketAddr` from a kernel address, `None` for other families.
pub fn from_storage(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Kernel address (and its length) for a `SocketAddr`.
pub fn to_storage(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin: &mut libc::sockaddr_in =
                unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            (ss, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above for sockaddr_in6.
            let sin6: &mut libc::sockaddr_in6 =
                unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            (ss, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn send_and_receive_a_batch_over_loopback() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = rx.local_addr().unwrap();
        let mut q = SendQueue::default();
        for i in 0..10u8 {
            q.push(dst, &[i; 100]);
        }
        let mut failed = 0;
        assert_eq!(q.send_from(tx.as_raw_fd(), 0, 4, &mut failed), 10);
        assert_eq!(failed, 0);
        let mut batch = RecvBatch::new(8, 64);
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = batch.recv(rx.as_raw_fd()).unwrap();
            for i in 0..n {
                let r = batch.get(i);
                assert_eq!(r.src, Some(tx.local_addr().unwrap()));
                assert!(r.truncated, "100-byte datagrams in 64-byte slots");
                assert_eq!(r.data.len(), 64);
                got.push(r.data[0]);
            }
            if got.len() == 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(got, (0..10).collect::<Vec<u8>>());
        assert_eq!(batch.recv(rx.as_raw_fd()).unwrap(), 0);
    }

    #[test]
    fn address_conversion_round_trips() {
        for a in ["127.0.0.1:5060", "[::1]:5061", "[fe80::1%2]:7"] {
            let addr: SocketAddr = a.parse().unwrap();
            let (ss, _) = to_storage(addr);
            assert_eq!(from_storage(&ss), Some(addr));
        }
    }
}
