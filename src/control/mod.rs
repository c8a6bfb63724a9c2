//! The control core: plain threads outside the shards that may block. The
//! store writer, the HTTP listener (console REST, AMI, metrics) and the
//! guard every HTTP request passes first.
//!
//! Shared by the HTTP handlers: `api_error.rs` (the one error reply),
//! `paging.rs` (the one paging of list endpoints) and `views.rs` (the JSON
//! of what the shards report: live calls, dialogs).

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
pub mod phone;
pub mod records;
pub mod resources;
pub mod resources_store;
pub mod upkeep;
pub mod views;
pub mod writer;
