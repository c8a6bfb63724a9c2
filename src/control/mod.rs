//! The control core: plain threads outside the shards that may block. The
//! store writer, the HTTP listener (console REST, AMI, metrics) and the
//! guard every HTTP request passes first.

pub mod ami;
pub mod api_error;
pub mod bans;
pub mod calls;
pub mod console_auth;
pub mod console_store;
pub mod guard;
pub mod http;
pub mod openapi;
pub mod paging;
pub mod records;
pub mod resources;
pub mod resources_store;
pub mod upkeep;
pub mod views;
pub mod writer;
