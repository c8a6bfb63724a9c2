//! Calls: the B2BUA a shard runs for the calls it owns. For now the
//! identifiers it mints; the call state machine joins here.

pub mod engine;
pub mod ids;

#[cfg(test)]
mod tests;
