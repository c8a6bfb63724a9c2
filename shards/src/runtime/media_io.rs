//! The media sockets of one shard: the RTP/RTCP sockets its relay asks for
//! ([`SocketOp`]), bound, owned and closed here only, registered in one
//! epoll set. The relay names ports, never fds: a datagram goes out of the
//! socket its port maps to while this poll runs, and one for a port without
//! a socket is dropped and counted, so no fd is used after its socket
//! closed. The shard's loop polls the set without
//! blocking (`epoll_wait` with a zero timeout) on every pass and on a beat
//! while the set is not empty, so under load one wake serves every packet
//! that arrived meanwhile, across all calls.
//!
//! Each socket carries one packet per ptime, so a `recvmmsg`/`sendmmsg` per
//! socket would still cost two system calls per relayed packet. Instead one
//! pass puts a receive for every ready socket into the shard's own io_uring
//! and submits them with one `io_uring_enter`, lets the relay decide each
//! datagram's way, and submits all the sends with one more. Every operation
//! carries `MSG_DONTWAIT`, so it completes inside the submitting call (data
//! or `EAGAIN`) and the shard never waits in the kernel.

use std::collections::HashMap;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use io_uring::{opcode, types, IoUring};

use super::udp_batch::{from_storage, to_storage};
use crate::media::relay::{MediaInput, SocketOp};

/// The largest RTP/RTCP datagram relayed.
const MAX_MEDIA_DATAGRAM: usize = 2048;
/// Ready sockets taken from epoll (and datagrams moved) in one pass.
const MAX_EVENTS: usize = 256;
/// How long the poller sleeps when no socket is ready: the most a relayed
/// packet waits in the kernel (RTP jitter buffers are tens of ms).
pub(super) const MEDIA_POLL: Duration = Duration::from_millis(1);

/// The relay's answer to a bind or read that did (or did not) work.
fn answer(port: u16, done: io::Result<()>) -> MediaInput {
    match done {
        Ok(()) => MediaInput::Bound { port },
        Err(e) => {
            tracing::debug!(port, "media socket not opened: {e}");
            MediaInput::BindFailed {
                port,
                error: e.kind(),
            }
        }
    }
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PollCounts {
    pub received: u64,
    pub relayed: u64,
    /// Relayed datagrams the kernel did not take (buffer full, refused).
    pub failed: u64,
    /// Datagrams whose way out is a port without a socket (not counted in
    /// `relayed`).
    pub no_socket: u64,
}

/// One datagram in flight: its buffer and the kernel structures that point
/// at it. Slots live in a boxed slice that never moves while the ring uses
/// them.
struct Slot {
    buf: [u8; MAX_MEDIA_DATAGRAM],
    iov: libc::iovec,
    hdr: libc::msghdr,
    addr: libc::sockaddr_storage,
    port: u16,
    len: usize,
}

pub(super) struct MediaIo {
    epfd: OwnedFd,
    ring: IoUring,
    /// Every socket the relay has, by port, and whether it is read (in the
    /// epoll set); spares are bound but not read.
    sockets: HashMap<u16, (StdUdpSocket, bool)>,
    /// Sockets in the epoll set.
    reading: usize,
    events: Vec<libc::epoll_event>,
    slots: Box<[Slot]>,
}

impl MediaIo {
    pub(super) fn new() -> io::Result<MediaIo> {
        let epfd = super::epoll::create()?;
        let slots: Box<[Slot]> = (0..MAX_EVENTS)
            .map(|_| Slot {
                buf: [0; MAX_MEDIA_DATAGRAM],
                // SAFETY: plain C structs for which all-zero is valid.
                iov: unsafe { zeroed() },
                hdr: unsafe { zeroed() },
                addr: unsafe { zeroed() },
                port: 0,
                len: 0,
            })
            .collect();
        Ok(MediaIo {
            epfd,
            ring: IoUring::new(MAX_EVENTS as u32)?,
            sockets: HashMap::new(),
            reading: 0,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
            slots,
        })
    }

    /// No socket is read (spares may be held).
    pub(super) fn is_idle(&self) -> bool {
        self.reading == 0
    }

    /// The epoll set of the read sockets: readable when any of them is.
    pub(super) fn ready_fd(&self) -> std::os::fd::RawFd {
        self.epfd.as_raw_fd()
    }

    /// Does what the relay asked; the answer goes back to it.
    pub(super) fn apply(&mut self, op: SocketOp) -> MediaInput {
        match op {
            SocketOp::Bind { port, addr } => {
                let bound = StdUdpSocket::bind(addr).and_then(|s| {
                    self.sockets.insert(port, (s, false));
                    self.read(port)
                });
                answer(port, bound)
            }
            SocketOp::Reserve { port, addr } => {
                let bound = StdUdpSocket::bind(addr).map(|s| {
                    self.sockets.insert(port, (s, false));
                });
                answer(port, bound)
            }
            SocketOp::Read { port } => {
                let read = self.read(port);
                answer(port, read)
            }
            SocketOp::Close { port } => {
                self.close(port);
                MediaInput::Closed { port }
            }
            SocketOp::Send { port, dest, data } => {
                if let Some((socket, _)) = self.sockets.get(&port) {
                    // Non-blocking; a datagram the socket cannot take now
                    // is lost, as any may be (STUN and DTLS resend).
                    let sock = socket2::SockRef::from(socket);
                    let sent = sock.send_to_with_flags(&data, &dest.into(), libc::MSG_DONTWAIT);
                    if let Err(e) = sent {
                        tracing::debug!(port, %dest, "media send failed: {e}");
                    }
                }
                MediaInput::Sent { port }
            }
        }
    }

    /// Starts reading the socket of `port`; on error the socket is
    /// dropped (closed) here.
    fn read(&mut self, port: u16) -> io::Result<()> {
        let Some((socket, reading)) = self.sockets.get_mut(&port) else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        if *reading {
            return Ok(());
        }
        let added = super::epoll::ctl(
            &self.epfd,
            libc::EPOLL_CTL_ADD,
            socket.as_raw_fd(),
            libc::EPOLLIN,
            u64::from(port),
        );
        if let Err(e) = added {
            self.sockets.remove(&port);
            return Err(e);
        }
        *reading = true;
        self.reading += 1;
        Ok(())
    }

    /// Stops reading `port` and closes its socket (which leaves the epoll set).
    fn close(&mut self, port: u16) {
        if let Some((_, true)) = self.sockets.remove(&port) {
            self.reading -= 1;
        }
    }

    /// Submits the `n` entries pushed so far and reaps their completions;
    /// `on_done(slot, result)` for each.
    fn run_batch(&mut self, n: usize, mut on_done: impl FnMut(&mut Slot, i32)) {
        if n == 0 {
            return;
        }
        // MSG_DONTWAIT: every entry completes within this call.
        if let Err(e) = self.ring.submit_and_wait(n) {
            tracing::warn!("media io_uring submit failed: {e}");
        }
        let slots = &mut self.slots;
        for cqe in self.ring.completion() {
            if let Some(slot) = slots.get_mut(cqe.user_data() as usize) {
                on_done(slot, cqe.result());
            }
        }
    }

    /// Moves one datagram from every ready socket. `relay(port, src, buf,
    /// len)` says out of which port and to where the datagram `buf[..len]`
    /// goes, and how long it is then (it may rewrite it in place, and grow
    /// it into the rest of `buf`).
    pub(super) fn poll(
        &mut self,
        mut relay: impl FnMut(u16, SocketAddr, &mut [u8], usize) -> Option<(u16, SocketAddr, usize)>,
    ) -> PollCounts {
        let mut counts = PollCounts::default();
        // SAFETY: events has MAX_EVENTS slots; zero timeout: never blocks.
        let ready = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                0,
            )
        };
        let mut pushed = 0;
        for i in 0..ready.max(0) as usize {
            let port = self.events[i].u64 as u16;
            let Some(fd) = self.sockets.get(&port).map(|(s, _)| s.as_raw_fd()) else {
                continue;
            };
            let slot = &mut self.slots[pushed];
            slot.port = port;
            slot.len = 0;
            slot.iov = libc::iovec {
                iov_base: slot.buf.as_mut_ptr().cast(),
                iov_len: MAX_MEDIA_DATAGRAM,
            };
            slot.hdr.msg_name = (&mut slot.addr as *mut libc::sockaddr_storage).cast();
            slot.hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            slot.hdr.msg_iov = &mut slot.iov;
            slot.hdr.msg_iovlen = 1;
            slot.hdr.msg_control = std::ptr::null_mut();
            slot.hdr.msg_controllen = 0;
            slot.hdr.msg_flags = 0;
            let entry = opcode::RecvMsg::new(types::Fd(fd), &mut slot.hdr)
                .flags(libc::MSG_DONTWAIT as u32)
                .build()
                .user_data(pushed as u64);
            // SAFETY: the slot (buffer, iovec, header, address) stays put and
            // untouched until run_batch has reaped this entry.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                break;
            }
            pushed += 1;
        }
        let mut received = 0u64;
        self.run_batch(pushed, |slot, res| {
            if res > 0 && slot.hdr.msg_flags & libc::MSG_TRUNC == 0 {
                slot.len = res as usize;
                received += 1;
            }
        });
        counts.received = received;

        let mut sends = 0;
        for i in 0..pushed {
            let slot = &mut self.slots[i];
            if slot.len == 0 {
                continue;
            }
            let Some(src) = from_storage(&slot.addr) else {
                slot.len = 0;
                continue;
            };
            let Some((out_port, dest, len)) = relay(slot.port, src, &mut slot.buf, slot.len) else {
                slot.len = 0;
                continue;
            };
            slot.len = len.min(MAX_MEDIA_DATAGRAM);
            let Some(out_fd) = self.sockets.get(&out_port).map(|(s, _)| s.as_raw_fd()) else {
                slot.len = 0;
                counts.no_socket += 1;
                continue;
            };
            let (storage, addr_len) = to_storage(dest);
            slot.addr = storage;
            slot.iov.iov_len = slot.len;
            slot.hdr.msg_namelen = addr_len;
            slot.hdr.msg_flags = 0;
            let entry = opcode::SendMsg::new(types::Fd(out_fd), &slot.hdr)
                .flags(libc::MSG_DONTWAIT as u32)
                .build()
                .user_data(i as u64);
            // SAFETY: as above, the slot stays put until reaped.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                counts.failed += 1;
                continue;
            }
            counts.relayed += 1;
            sends += 1;
        }
        let mut failed = 0u64;
        self.run_batch(sends, |_, res| {
            // RTP is not retransmitted: a send the socket cannot take now is
            // dropped and counted.
            if res < 0 {
                failed += 1;
            }
        });
        counts.failed += failed;
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nobody holds right now.
    fn free_port() -> u16 {
        let s = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    }

    fn bind(io: &mut MediaIo, port: u16) -> MediaInput {
        io.apply(SocketOp::Bind {
            port,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    #[test]
    fn binds_relays_by_port_and_forgets_closed_ones() {
        let mut io = MediaIo::new().unwrap();
        let (pa, pb) = (free_port(), free_port());
        assert_eq!(bind(&mut io, pa), MediaInput::Bound { port: pa });
        assert_eq!(bind(&mut io, pb), MediaInput::Bound { port: pb });
        // A port another program holds is reported, not opened.
        let held = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let ph = held.local_addr().unwrap().port();
        assert_eq!(
            bind(&mut io, ph),
            MediaInput::BindFailed {
                port: ph,
                error: io::ErrorKind::AddrInUse
            }
        );
        let peer = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let sink_addr = sink.local_addr().unwrap();
        for i in 0..40u8 {
            peer.send_to(&[i; 20], ("127.0.0.1", pa)).unwrap();
        }
        // Everything that came in on a goes out of b to the sink.
        let mut seen = 0;
        for _ in 0..100 {
            let c = io.poll(|port, _, _, len| (port == pa).then_some((pb, sink_addr, len)));
            seen += c.relayed;
            if seen == 40 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(seen, 40);
        sink.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = sink.recv_from(&mut buf).unwrap();
        assert_eq!((n, from.port()), (20, pb));
        // Out of a port without a socket (the one that failed): dropped
        // and counted, whatever fd once had a number.
        let mut counts = PollCounts::default();
        peer.send_to(&[9; 20], ("127.0.0.1", pa)).unwrap();
        for _ in 0..100 {
            counts = io.poll(|_, _, _, len| Some((ph, sink_addr, len)));
            if counts.received > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            counts,
            PollCounts {
                received: 1,
                relayed: 0,
                failed: 0,
                no_socket: 1
            }
        );
        assert_eq!(
            io.apply(SocketOp::Close { port: pa }),
            MediaInput::Closed { port: pa }
        );
        peer.send_to(&[1; 20], ("127.0.0.1", pa)).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(io.poll(|_, _, _, _| None), PollCounts::default());
        assert!(!io.is_idle());
        io.apply(SocketOp::Close { port: pb });
        assert!(io.is_idle());
        // Closed means closed: the port can be bound again.
        assert_eq!(bind(&mut io, pa), MediaInput::Bound { port: pa });
    }

    #[test]
    fn a_reserved_socket_is_held_but_read_only_when_asked() {
        let mut io = MediaIo::new().unwrap();
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(
            io.apply(SocketOp::Reserve { port, addr }),
            MediaInput::Bound { port }
        );
        // Held: nobody else can bind it; not read: the poller may sleep.
        assert!(StdUdpSocket::bind(addr).is_err());
        assert!(io.is_idle());
        assert_eq!(
            io.apply(SocketOp::Read { port }),
            MediaInput::Bound { port }
        );
        assert!(!io.is_idle());
        let peer = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(&[7; 12], addr).unwrap();
        let mut got = 0;
        for _ in 0..100 {
            got += io.poll(|_, _, _, _| None).received;
            if got > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got, 1);
        // Reading a port without a socket is refused.
        let other = free_port();
        assert_eq!(
            io.apply(SocketOp::Read { port: other }),
            MediaInput::BindFailed {
                port: other,
                error: io::ErrorKind::NotFound
            }
        );
        io.apply(SocketOp::Close { port });
        assert!(io.is_idle());
        StdUdpSocket::bind(addr).expect("closed");
    }
}
