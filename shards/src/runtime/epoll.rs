//! The two epoll calls the runtime makes (the shard's park set, the media
//! sockets' set): creating a set and changing what it watches.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A new epoll set (close-on-exec).
pub(super) fn create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned right away.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(op)` of `fd` in `set` for `events`, reported with `tag`.
pub(super) fn ctl(
    set: &OwnedFd,
    op: libc::c_int,
    fd: RawFd,
    events: libc::c_int,
    tag: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: events as u32,
        u64: tag,
    };
    // SAFETY: ev is a valid epoll_event that lives across the call; both
    // fds are open.
    let rc = unsafe { libc::epoll_ctl(set.as_raw_fd(), op, fd, &mut ev) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
