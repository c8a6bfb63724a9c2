//! ShardPBX data plane: the shard runtime, the SIP stack, digest
//! authentication, the registrar, the B2BUA, the RTP relay and the LMDB
//! store the shards read.
//!
//! Protocol logic is sans-IO: it takes `(now, input)`, queues what to send
//! and says when it next wants the time. The runtime module is the thin
//! shell that moves bytes between sockets and it, and reads the clocks.
//!
//! # Modules and what each owns
//!
//! | module | owns |
//! | --- | --- |
//! | [`runtime`] | the executors (one per shard, pinned), SIP and media sockets, the inbox between shards and the control core, the timer task that sleeps to the logic's `poll_timeout` |
//! | [`endpoint`] | the shard root ([`endpoint::SipEndpoint`], the [`runtime::ShardLogic`] of a shard): admission of each message (bans, ACL, parse, checks), REGISTER and OPTIONS, who may call and where an INVITE goes; it holds the call engine and the relay side by side |
//! | [`call`] | the B2BUA: [`call::CallEngine`] with its transaction table (surface and poll order on the type) |
//! | [`media`] | the RTP relay (sans-IO: it asks the runtime for sockets with `SocketOp`s and is told `Bound`/`BindFailed`/`Closed`), SDP parsing and writing, RTP/RTCP parsing, port draws, stream statistics |
//! | [`transaction`] | RFC 3261 transactions, sans-IO, with their timers |
//! | [`sip`] | the parser, the writer, URIs, headers |
//! | [`auth`] | digest authentication (server and client), nonces, replay protection |
//! | [`registrar`], [`users`] | bindings and who the users are (memory, LMDB, an HTTP backend) |
//! | [`routing`] | static routes, trunks, the HTTP router's answers |
//! | [`security`] | bans and the flood limit |
//! | [`addr`] | the one place that says which addresses are private (SDP) or behind NAT (Contact) |
//! | [`recording`] | the stereo mixer fed by the relay and the WAV writer that runs off the shards |
//! | [`cdr`] | the call detail record and its enums |
//! | [`store`] | the LMDB environment: what shards read, what the control core writes |
//!
//! # One turn of a shard
//!
//! A datagram is parsed once in `SipEndpoint::on_datagram`, handed to its
//! owner shard if another owns its Call-ID, then admitted by the endpoint;
//! call-layer messages go to the engine (`CallEngine::handle`), whose
//! outputs (`poll_output`: transmits, CDRs, flows) the endpoint moves to
//! the runtime's send queue and to the control core. The runtime's timer
//! task sleeps until `ShardLogic::poll_timeout` (the earliest of the
//! engine's transaction and call deadlines, the endpoint's housekeeping and
//! the relay's upkeep) and is woken sooner when a turn makes an earlier
//! deadline.
//!
//! `testkit` (tests only) runs a caller, a shard's endpoint and engine, and
//! a callee in virtual time through the same `ShardLogic` surface, so call
//! flows are tested in milliseconds without sockets.

pub mod addr;
pub mod auth;
pub mod call;
pub mod cdr;
pub mod control_link;
pub mod endpoint;
pub mod idmap;
pub mod media;
pub mod recording;
pub mod registrar;
pub mod routing;
// The shell around the sans-IO logic: sockets, io_uring, epoll, pinning.
#[allow(unsafe_code)]
pub mod runtime;
pub mod security;
pub mod sip;
// The LMDB environment: opening and resizing its memory map.
#[allow(unsafe_code)]
pub mod store;
#[cfg(test)]
mod testkit;
pub mod time;
pub mod transaction;
pub mod transport;
pub mod users;
