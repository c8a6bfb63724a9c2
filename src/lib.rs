//! The `shardpbx` appliance outside the data plane: config, the control core
//! (store writer, HTTP), the CLI subcommands and the `run` wiring. The data
//! plane (shards, SIP stack, registrar) is the `shards` crate.

pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod netif;
pub mod webhooks;
