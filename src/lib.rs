//! The `shardpbx` appliance outside the data plane: config, the control core
//! (store writer, HTTP), the CLI subcommands, the `run` wiring and what it
//! keeps private on disk (`private_files`). The data
//! plane (shards, SIP stack, registrar) is the `shards` crate.

pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod netif;
pub mod os;
pub mod private_files;
pub mod tls_files;
pub mod webhooks;
