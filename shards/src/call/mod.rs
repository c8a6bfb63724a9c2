//! Calls: the B2BUA a shard runs for the calls it owns.
//!
//! | module | owns |
//! | --- | --- |
//! | `engine` | [`CallEngine`]: the surface (`handle`, `handle_timeout`, `poll_output`, `poll_timeout`; poll order on the type), its transaction table, the end of a call |
//! | `model` | the data: [`NewCall`], [`Originate`], [`Target`], [`MediaPolicy`], the engine's `Call` with its legs, phase and origin |
//! | `setup` | placing a call: callee legs, forking, their answers, a carrier's challenge, click-to-dial's first party |
//! | `in_dialog` | CANCEL, BYE, and requests relayed between the legs of an answered call |
//! | `commands` | the control core's commands: hangup, accept, transfer, mute, click-to-dial |
//! | `media` | a call's SDP through the shard's relay (rewriting, refused addresses) |
//! | `timers` | the deadlines (a min-heap; no scan of calls per tick) |
//! | `record` | the one CDR builder ([`Ending`]) |
//! | `views` | listings for the control core |
//! | `dialog`, `ids`, `flow`, `redact` | dialog matching, the ids we mint, the SIP flow a call keeps |

mod capture;
mod commands;
mod dialog;
pub mod engine;
pub mod flow;
pub mod ids;
mod in_dialog;
mod media;
mod model;
mod ours;
pub mod record;
pub mod redact;
mod setup;
mod timers;
pub mod views;

pub use commands::{Command, CommandError};
pub use engine::{CallEngine, EngineConfig, Handled, Input, Output, RefusedRequests};
pub use model::{CallExtras, MediaMode, MediaPolicy, NewCall, Originate, Target};
pub use record::Ending;
pub use views::{CallSummary, DialogState, DialogSummary};

#[cfg(test)]
mod tests;
