//! A shard's inbox: the one way other threads (shards, the control core) talk
//! to it. A lock-free queue plus a doorbell: an eventfd that wakes the
//! shard's loop only when it is parked waiting for one, so a busy shard
//! takes many messages per wake-up and pays no syscall per message.

use crate::transport::Peer;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_queue::SegQueue;

use crate::registrar::{ChangeError, ChangeOutcome};

/// A message for a shard.
#[derive(Debug)]
pub enum ShardMsg {
    /// A SIP message another shard received for a call this shard owns.
    Datagram { data: Vec<u8>, src: Peer },
    /// A message for one of this shard's stream connections, from the
    /// shard that owns the call or transaction it belongs to.
    StreamSend {
        conn: crate::transport::ConnId,
        data: Vec<u8>,
    },
    /// A new certificate (an AMI reload): new TLS sessions take it.
    TlsConfig(std::sync::Arc<rustls::ServerConfig>),
    /// The writer applied a REGISTER's change (token from the request).
    Registered {
        token: u64,
        result: Result<ChangeOutcome, RegisterFailure>,
    },
    /// New route and trunk tables (a reload): swap them in.
    Routing(std::sync::Arc<crate::routing::RoutingSnapshot>),
    /// A command for a call this shard owns (mute, unmute, ...); the answer
    /// goes back on `reply`.
    CallCommand {
        call_id: String,
        command: CallCommand,
        reply: crossbeam_channel::Sender<Result<(), crate::call::CommandError>>,
    },
    /// New `[proxy] acl_rules` (an AMI reload): swap them in.
    Acl(AclCheck),
    /// The control core banned this source address until `until` (unix s):
    /// drop what it sends, unanswered.
    Ban { ip: std::net::IpAddr, until: u64 },
    /// The ban of this address was lifted (AMI).
    Unban(std::net::IpAddr),
    /// Click-to-dial: ring extension `from`, then call `to` and bridge them;
    /// the new call's id (or why not) goes back on `reply`.
    Originate {
        from: String,
        to: String,
        reply: crossbeam_channel::Sender<Result<String, crate::call::CommandError>>,
    },
    /// The shard's dialogs (AMI `GET /dialogs`), as data.
    ListDialogs {
        reply: crossbeam_channel::Sender<Vec<crate::call::DialogSummary>>,
    },
    /// The shard's live calls (`GET /console/calls/active`), as data.
    ListCalls {
        reply: crossbeam_channel::Sender<Vec<crate::call::CallSummary>>,
    },
    /// A remote user backend's answer to this shard's [`crate::users::UserQuery`]:
    /// keep it `ttl_secs` (0: use once).
    UserAnswer {
        key: crate::users::RemoteKey,
        answer: crate::users::RemoteAnswer,
        ttl_secs: u64,
    },
    /// The HTTP router's decision for the INVITE parked under `token`.
    RouteAnswer {
        token: u64,
        decision: crate::routing::http_router::RouterDecision,
    },
    /// Answered (with nothing) once the shard has handled every message
    /// queued before it: how the control core waits until a change it sent
    /// (routing, ACL) is in force before it says so.
    Sync {
        reply: crossbeam_channel::Sender<Vec<()>>,
    },
    /// Stop the shard.
    Stop,
}

/// An ACL as the shards apply it: may this source talk to us?
#[derive(Clone)]
pub struct AclCheck(pub std::sync::Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>);

impl std::fmt::Debug for AclCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AclCheck")
    }
}

/// What a call command asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallCommand {
    Hangup {
        reason: Option<String>,
    },
    /// Blind transfer of the callee side to `target` (number or sip: URI).
    Transfer {
        target: String,
    },
    /// Answer a ringing call with this SDP (None: the relay's own).
    Accept {
        sdp: Option<String>,
    },
    Mute {
        track: String,
    },
    Unmute {
        track: String,
    },
}

/// Why the writer could not apply a change.
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterFailure {
    Refused(ChangeError),
    Store(String),
}

/// The receiving side lives on the shard; senders share the `Inbox` by `Arc`.
pub struct Inbox {
    queue: SegQueue<ShardMsg>,
    len: AtomicUsize,
    /// Set by the shard right before it parks on the doorbell.
    needs_wake: AtomicBool,
    /// Non-blocking eventfd: written to ring, read by the shard to drain.
    bell: OwnedFd,
}

/// Handed-off datagrams beyond this many waiting are dropped (the peer
/// retransmits); control messages are never dropped.
pub const MAX_WAITING_DATAGRAMS: usize = 65_536;

impl Inbox {
    pub fn new() -> std::io::Result<Inbox> {
        // SAFETY: plain syscall; the fd is owned right away.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Inbox {
            queue: SegQueue::new(),
            len: AtomicUsize::new(0),
            needs_wake: AtomicBool::new(true),
            // SAFETY: a fresh fd nobody else owns.
            bell: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The doorbell's fd, readable when it rang (the shard's park waits on it).
    pub fn doorbell_fd(&self) -> RawFd {
        self.bell.as_raw_fd()
    }

    /// Shard side: silences the doorbell (reads what rang it).
    pub fn drain_doorbell(&self) {
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into a u64; non-blocking.
        let _ = unsafe {
            libc::read(
                self.bell.as_raw_fd(),
                (&mut n as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Queues `msg` and wakes the shard if it sleeps. Returns false when a
    /// datagram was dropped because the shard is too far behind.
    pub fn push(&self, msg: ShardMsg) -> bool {
        if matches!(msg, ShardMsg::Datagram { .. })
            && self.len.load(Ordering::Relaxed) >= MAX_WAITING_DATAGRAMS
        {
            return false;
        }
        self.len.fetch_add(1, Ordering::Relaxed);
        self.queue.push(msg);
        self.wake();
        true
    }

    fn wake(&self) {
        if self.needs_wake.swap(false, Ordering::AcqRel) {
            let one = 1u64;
            // SAFETY: writes 8 bytes from a u64; non-blocking (a counter
            // near overflow means the shard has rings to read anyway).
            let _ = unsafe {
                libc::write(
                    self.bell.as_raw_fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
    }

    /// Takes the next message (shard side).
    pub fn pop(&self) -> Option<ShardMsg> {
        let msg = self.queue.pop()?;
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(msg)
    }

    /// Shard side, after waking: no doorbell needed while it runs (it looks
    /// at the queue every pass).
    pub fn disarm(&self) {
        self.needs_wake.store(false, Ordering::SeqCst);
    }

    /// Shard side, before parking: asks for a doorbell and reports whether
    /// messages arrived meanwhile (then it must not park).
    pub fn arm(&self) -> bool {
        self.needs_wake.store(true, Ordering::SeqCst);
        if self.queue.is_empty() {
            true
        } else {
            self.needs_wake.store(false, Ordering::SeqCst);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the doorbell rang (and silences it).
    fn rang(inbox: &Inbox) -> bool {
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into a u64; non-blocking.
        let r = unsafe {
            libc::read(
                inbox.doorbell_fd(),
                (&mut n as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        r == 8 && n > 0
    }

    #[test]
    fn doorbell_rings_once_until_rearmed() {
        let inbox = Inbox::new().unwrap();
        assert!(inbox.push(ShardMsg::Stop));
        assert!(inbox.push(ShardMsg::Stop));
        assert!(rang(&inbox));
        assert!(!rang(&inbox), "second push must not ring");
        assert!(inbox.pop().is_some());
        assert!(!inbox.arm(), "one message still waits");
        assert!(inbox.pop().is_some());
        assert!(inbox.arm());
        assert!(inbox.push(ShardMsg::Stop));
        assert!(rang(&inbox));
        // Disarmed (the shard runs): pushes do not ring.
        assert!(inbox.pop().is_some());
        assert!(inbox.arm());
        inbox.disarm();
        assert!(inbox.push(ShardMsg::Stop));
        assert!(!rang(&inbox));
    }
}
