//! The control core: plain threads outside the shards that may block. The
//! store writer, the HTTP listener (metrics and active-call commands now;
//! the rest of REST and AMI later).

pub mod ami;
pub mod calls;
pub mod console_auth;
pub mod console_store;
pub mod http;
pub mod openapi;
pub mod records;
pub mod resources;
pub mod resources_store;
pub mod upkeep;
pub mod writer;
