//! Calls: the B2BUA a shard runs for the calls it owns (the engine), the
//! identifiers it mints, what decides a call's media path, and the SIP
//! flow it keeps (credentials redacted, bytes capped).

mod dialog;
pub mod engine;
pub mod flow;
pub mod ids;
pub mod redact;

pub use engine::{CommandError, MediaMode, MediaPolicy};

#[cfg(test)]
mod tests;
