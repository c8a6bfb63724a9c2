//! The media sockets of one shard: the RTP/RTCP sockets its relay binds,
//! registered in one epoll set. One task per shard polls the set without
//! blocking (`epoll_wait` with a zero timeout), drains every ready socket
//! with `recvmmsg`, lets the relay decide each datagram's way, and sends
//! them with one `sendmmsg` per outgoing socket. When nothing is ready it
//! sleeps one poll interval on a glommio timer, so under load one wake
//! serves every packet that arrived meanwhile, across all calls.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::udp_batch::{RecvBatch, SendQueue};

/// The largest RTP/RTCP datagram relayed.
const MAX_MEDIA_DATAGRAM: usize = 2048;
/// Datagrams per `recvmmsg`/`sendmmsg`.
const MEDIA_BATCH: usize = 32;
/// Ready sockets taken from epoll at once.
const MAX_EVENTS: usize = 256;
/// How long the poller sleeps when no socket is ready: the most a relayed
/// packet waits in the kernel (RTP jitter buffers are tens of ms).
pub const MEDIA_POLL: Duration = Duration::from_millis(1);

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollCounts {
    pub received: u64,
    pub relayed: u64,
    /// Relayed datagrams the kernel did not take (buffer full, refused).
    pub failed: u64,
}

pub struct MediaIo {
    epfd: OwnedFd,
    sockets: HashMap<u16, StdUdpSocket>,
    events: Vec<libc::epoll_event>,
    rx: RecvBatch,
    /// Relayed datagrams of the batch at hand, by the socket they leave from.
    out: Vec<(RawFd, SendQueue)>,
    /// Emptied queues kept for the next batch (no allocation per packet).
    spare: Vec<SendQueue>,
}

impl MediaIo {
    pub fn new() -> io::Result<MediaIo> {
        // SAFETY: plain syscall; the fd is owned right away.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(MediaIo {
            // SAFETY: a fresh fd nobody else owns.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            sockets: HashMap::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
            rx: RecvBatch::new(MEDIA_BATCH, MAX_MEDIA_DATAGRAM),
            out: Vec::new(),
            spare: Vec::new(),
        })
    }

    pub fn is_idle(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Starts reading `socket` (bound to `port`).
    pub fn open(&mut self, port: u16, socket: StdUdpSocket) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: u64::from(port),
        };
        // SAFETY: both fds are open; ev lives across the call.
        let rc = unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // A socket of a port closed but not yet reopened is replaced here.
        self.sockets.insert(port, socket);
        Ok(())
    }

    /// Stops reading `port` and closes its socket (which leaves the epoll set).
    pub fn close(&mut self, port: u16) {
        self.sockets.remove(&port);
    }

    /// Drains every ready socket once. `relay(port, src, datagram)` says
    /// where a datagram goes (it may rewrite it in place).
    pub fn poll(
        &mut self,
        mut relay: impl FnMut(u16, SocketAddr, &mut [u8]) -> Option<(RawFd, SocketAddr)>,
    ) -> PollCounts {
        let mut counts = PollCounts::default();
        // SAFETY: events has MAX_EVENTS slots; zero timeout: never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                0,
            )
        };
        for i in 0..n.max(0) as usize {
            let port = self.events[i].u64 as u16;
            let Some(fd) = self.sockets.get(&port).map(AsRawFd::as_raw_fd) else {
                continue;
            };
            loop {
                let got = self.rx.recv(fd).unwrap_or(0);
                for k in 0..got {
                    let (data, src, truncated) = self.rx.get_mut(k);
                    let Some(src) = src.filter(|_| !truncated) else {
                        continue;
                    };
                    let Some((out_fd, dest)) = relay(port, src, data) else {
                        continue;
                    };
                    counts.relayed += 1;
                    match self.out.iter_mut().find(|(f, _)| *f == out_fd) {
                        Some((_, q)) => q.push(dest, data),
                        None => {
                            let mut q = self.spare.pop().unwrap_or_default();
                            q.push(dest, data);
                            self.out.push((out_fd, q));
                        }
                    }
                }
                counts.received += got as u64;
                if got < self.rx.capacity() {
                    break;
                }
            }
        }
        for (out_fd, mut q) in self.out.drain(..) {
            // RTP is not retransmitted: what the socket buffer cannot take
            // now is dropped and counted.
            let sent = q.send_from(out_fd, 0, MEDIA_BATCH, &mut counts.failed);
            counts.failed += (q.len() - sent) as u64;
            q.clear();
            self.spare.push(q);
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_ready_sockets_and_forgets_closed_ones() {
        let mut io = MediaIo::new().unwrap();
        let a = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let b = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        let b_fd = b.as_raw_fd();
        io.open(pa, a).unwrap();
        io.open(pb, b).unwrap();
        let peer = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let sink_addr = sink.local_addr().unwrap();
        for i in 0..40u8 {
            peer.send_to(&[i; 20], ("127.0.0.1", pa)).unwrap();
        }
        // Everything that came in on a goes out of b to the sink.
        let mut seen = 0;
        for _ in 0..100 {
            let c = io.poll(|port, _, _| (port == pa).then_some((b_fd, sink_addr)));
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
        io.close(pa);
        peer.send_to(&[1; 20], ("127.0.0.1", pa)).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(io.poll(|_, _, _| None), PollCounts::default());
        io.close(pb);
        assert!(io.is_idle());
    }
}
