//! Requests a shard sends to the control core. Sending never blocks (an
//! unbounded crossbeam channel); replies come back through the shard's inbox.

use crate::cdr::Cdr;
use crate::registrar::BindingChange;

/// A request for the control core.
#[derive(Debug)]
pub enum ControlRequest {
    /// Apply a REGISTER's change in the store; reply `ShardMsg::Registered`
    /// with `token` to shard `shard`.
    ApplyBindings {
        shard: usize,
        token: u64,
        change: BindingChange,
    },
    /// Store a finished call's record (no reply: the call is over).
    StoreCdr(Box<Cdr>),
    /// Store a finished call's SIP flow: (callId, JSON array of messages).
    StoreFlow(String, Vec<u8>),
    /// A stream connection closed: the bindings registered over it go.
    ConnClosed(crate::transport::ConnId),
}

/// The sending half shards hold.
pub type ControlSender = crossbeam_channel::Sender<ControlRequest>;
