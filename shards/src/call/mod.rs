//! Calls: the B2BUA a shard runs for the calls it owns (the engine), the
//! identifiers it mints, and what decides a call's media path.

pub mod engine;
pub mod flow;
pub mod ids;

pub use engine::{CommandError, MediaMode, MediaPolicy};

#[cfg(test)]
mod tests;
