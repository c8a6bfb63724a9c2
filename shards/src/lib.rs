//! ShardPBX data plane: the shard runtime, the SIP stack (parser, serializer),
//! digest authentication, the registrar and the LMDB store the shards read.
//!
//! Protocol logic is sans-IO: it takes `(now, input)` and returns what to send.
//! The runtime module is the thin shell that moves bytes between sockets and it.

pub mod auth;
pub mod call;
pub mod cdr;
pub mod control_link;
pub mod endpoint;
pub mod media;
pub mod recording;
pub mod registrar;
pub mod routing;
pub mod runtime;
pub mod security;
pub mod sip;
pub mod store;
#[cfg(test)]
mod testkit;
pub mod time;
pub mod transaction;
pub mod users;
