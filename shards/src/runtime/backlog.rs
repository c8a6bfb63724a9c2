//! How far behind a shard's SIP socket is: after each `recvmmsg` batch, the
//! loop tells the logic whether it drained the socket or left datagrams
//! waiting, and then how long the last datagram it took had waited in the
//! kernel (its receive timestamp, `SIOCGSTAMPNS`). A batch that was not
//! full drained the queue: no syscall is made then, so an idle or keeping-up
//! shard pays nothing for this.

use std::os::fd::RawFd;

/// What a `recvmmsg` batch says about the socket's receive queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backlog {
    /// The batch was not full: nothing was left waiting.
    Drained,
    /// The batch was full; the last datagram of it was received by the
    /// kernel at this wall-clock time (unix ms). What is still queued came
    /// after it.
    Behind { stamp_unix_ms: u64 },
    /// The batch was full but the kernel gave no receive time.
    Unknown,
}

/// `SIOCGSTAMPNS` (linux/sockios.h): the receive time of the last datagram
/// read from the socket, as a `timespec` of CLOCK_REALTIME. Not in `libc`.
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

/// Turns the socket's receive timestamps on (the first `SIOCGSTAMPNS` on a
/// socket does): call it before the first datagram is read, or what is
/// queued before the first full batch has no time. An error means the
/// kernel keeps no receive times here: every full batch is then `Unknown`.
pub fn enable(fd: RawFd) -> std::io::Result<()> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a read-only ioctl filling a timespec we own.
    let rc = unsafe { libc::ioctl(fd, SIOCGSTAMPNS as _, &mut ts as *mut libc::timespec) };
    let err = std::io::Error::last_os_error();
    // ENOENT: on, but nothing received yet.
    if rc == 0 || err.raw_os_error() == Some(libc::ENOENT) {
        Ok(())
    } else {
        Err(err)
    }
}

/// The backlog of a batch of `got` datagrams out of `capacity` from `fd`.
pub fn probe(fd: RawFd, got: usize, capacity: usize) -> Backlog {
    if got < capacity {
        return Backlog::Drained;
    }
    let Some(ts) = last_stamp(fd) else {
        return Backlog::Unknown;
    };
    let ms = (ts.tv_sec as u64)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec.max(0) as u64 / 1_000_000);
    Backlog::Behind { stamp_unix_ms: ms }
}

/// The receive time of the last datagram read from `fd`.
fn last_stamp(fd: RawFd) -> Option<libc::timespec> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a read-only ioctl filling a timespec we own.
    let rc = unsafe { libc::ioctl(fd, SIOCGSTAMPNS as _, &mut ts as *mut libc::timespec) };
    (rc == 0 && ts.tv_sec > 0).then_some(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn a_batch_that_was_not_full_drained_the_socket_without_a_syscall() {
        assert_eq!(probe(-1, 3, 4), Backlog::Drained);
    }

    #[test]
    fn a_full_batch_reports_when_its_last_datagram_arrived() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 16];
        let now_ms = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
        };
        enable(rx.as_raw_fd()).unwrap();
        // The kernel turns stamping on in a work item, not at once.
        std::thread::sleep(std::time::Duration::from_millis(100));
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        let sent = now_ms();
        // The datagram waits 300 ms in the socket before it is read.
        std::thread::sleep(std::time::Duration::from_millis(300));
        rx.recv_from(&mut buf).unwrap();
        let now = now_ms();
        match probe(rx.as_raw_fd(), 1, 1) {
            Backlog::Behind { stamp_unix_ms } => {
                let age = now.saturating_sub(stamp_unix_ms);
                assert!(
                    stamp_unix_ms + 5 >= sent && (290..5_000).contains(&age),
                    "stamp {stamp_unix_ms}, sent {sent}, read {now}"
                );
            }
            other => panic!("no receive time: {other:?}"),
        }
        assert_eq!(probe(-1, 1, 1), Backlog::Unknown, "a bad fd has no time");
        assert!(enable(-1).is_err());
    }
}
