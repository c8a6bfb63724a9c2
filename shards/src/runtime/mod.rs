//! The shard runtime: executors, batched UDP, inboxes between threads, the
//! beat that paces a busy shard's polling, counters, and the kernel's
//! share of the work where it allows (SIP steering, steady RTP relayed).

pub mod backlog;
mod epoll;
pub mod inbox;
pub mod kernel_rtp;
mod media_io;
pub mod netif;
pub mod owner;
mod pacer;
mod reactor;
pub mod shard;
pub mod stats;
pub mod steer;
mod streams;
pub mod udp_batch;

pub use backlog::Backlog;
pub use inbox::{Inbox, RegisterFailure, ShardMsg};
pub use shard::{Output, Runtime, RuntimeConfig, ShardContext, ShardLogic, StreamListeners};
pub use stats::{ShardGauges, ShardStats};
pub use streams::{CloseReason, StreamConfig};

/// Whether to try a kernel (eBPF) path: `[runtime] steering` for SIP
/// datagrams, `[media] kernel_forwarding` for steady RTP streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelMode {
    /// Load the program when the kernel allows; otherwise do the work in
    /// user space (logged once).
    #[default]
    Auto,
    /// Always in user space.
    Off,
}
