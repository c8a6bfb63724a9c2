//! In-process test kit: a caller, the shard logic and a callee on a virtual
//! network in virtual time, so call flows that otherwise need the binary,
//! real sockets and sleeps run in milliseconds.
//!
//! * [`clock`]: the virtual clock and the `Now` the logic is given.
//! * [`ua`]: a tiny scripted SIP user agent (caller or callee).
//! * [`fault`]: drop, duplicate or delay chosen datagrams.
//! * [`harness`]: the driver; owns the logic through `ShardLogic` only.
//! * [`endpoint`]: the SIP endpoint built in memory, routing to the callee,
//!   with or without the RTP relay.
//! * [`media`]: the virtual media sockets and the UAs' RTP streams.
//!
//! Test-only (`cfg(test)`): nothing outside this crate's unit tests uses it,
//! so it adds nothing to the public surface.
//!
//! ```text
//! let mut h = testkit::endpoint(Setup::default());
//! h.ua_mut(CALLER).invite("2000");
//! h.run_for(1_000);
//! assert_eq!(h.ua(CALLER).responses("INVITE"), [180, 200]);
//! ```

pub(crate) mod clock;
pub(crate) mod endpoint;
pub(crate) mod fault;
pub(crate) mod harness;
pub(crate) mod media;
pub(crate) mod ua;

mod media_tests;
mod tests;

pub(crate) use endpoint::{endpoint, Media, Setup, CALLEE, CALLER};
pub(crate) use fault::Fault;
pub(crate) use harness::Harness;
pub(crate) use ua::{Answering, Tweak};
