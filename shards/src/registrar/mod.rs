//! The registrar: binding rules (pure) and the REGISTER handler a shard runs.

pub mod binding;

pub use binding::{apply, Binding, BindingChange, BindingOp, ChangeError, ChangeOutcome};
