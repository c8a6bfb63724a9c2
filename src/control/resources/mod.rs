//! The console's resources (API.md section 4, "Resources"; guide 2.2): CRUD
//! of extensions (`/console/extensions`), SIP trunks (`/console/sip-trunk`)
//! and routes (`/console/routing`), stored by `resources_store.rs`.
//!
//! * Extensions are SIP users at once: the shards read them from LMDB on
//!   each lookup. Passwords are write-only; a PUT without `password` keeps
//!   the stored one (a client that read the object cannot send it back).
//! * A trunk or route change is validated together with the file entries
//!   under the `Reloader` lock, stored, and the new snapshot is sent to every
//!   shard, as an AMI reload does: the next call routes with it. A refused
//!   change stores nothing and the snapshot in force stays. Trunk passwords
//!   are write-only like extension passwords (absent on PUT = kept).
//! * File entries (trunk and route files, `memory` users of the config) are
//!   listed with `"source": "file"` and id `file:<name>`; they are read-only
//!   here (409 on PUT/DELETE). A name that a file entry or another console
//!   entry already has is refused with 409.
//! * Errors: 400 for a body that is not JSON, 422 naming the `field` for a
//!   missing or invalid value, 404, 409; `{"error", "message", "field"}`
//!   ([`ApiError`]).
//!
//! This module owns the state, the routes and the shared replies; the
//! request bodies are read in `input.rs`, list queries and the JSON views
//! are in `listing.rs`, the extension handlers in `extensions.rs`, the trunk
//! and route handlers (validated and installed under the `Reloader` lock)
//! in `routing.rs`.

mod extensions;
mod input;
mod listing;
mod routing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use shards::store::{Store, StoreError};

use super::api_error::ApiError;
use super::http::HttpState;
use super::resources_store::{ResourcesStore, StoredRoute, StoredTrunk};
use crate::config::routes_files::RoutingSource;
use crate::config::{Config, UserBackend};
use extensions::{
    create_extension, delete_extension, get_extension, list_extensions, replace_extension,
};
use routing::{
    create_route, create_trunk, delete_route, delete_trunk, get_route, get_trunk, list_routes,
    list_trunks, replace_route, replace_trunk,
};

/// How console entries are named in routing errors (and in start-up errors).
pub const CONSOLE_LABEL: &str = "console";
/// The id prefix of file entries.
const FILE_ID: &str = "file:";

/// What the resource handlers read.
pub struct ResourcesState {
    pub store: ResourcesStore,
    /// The `memory` users of the config, listed as read-only extensions.
    pub file_users: Vec<FileUser>,
}

/// A `memory` user of the config as the extensions API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileUser {
    pub username: String,
    pub display_name: Option<String>,
    pub allowed_caller_ids: Vec<String>,
}

impl ResourcesState {
    /// Opens the resource databases; `cfg` gives the file users.
    pub fn open(store: &Store, cfg: &Config) -> Result<ResourcesState, StoreError> {
        let mut file_users: Vec<FileUser> = Vec::new();
        for b in &cfg.proxy.user_backends {
            if let UserBackend::Memory(users) = b.backend() {
                for u in users {
                    if !file_users.iter().any(|f| f.username == u.username) {
                        file_users.push(FileUser {
                            username: u.username,
                            display_name: u.display_name,
                            allowed_caller_ids: u.allowed_caller_ids,
                        });
                    }
                }
            }
        }
        Ok(ResourcesState {
            store: ResourcesStore::open(store, &cfg.proxy.realms)?,
            file_users,
        })
    }

    /// The stored console trunks and routes as a routing source.
    pub fn console_source(&self) -> Result<RoutingSource, StoreError> {
        Ok(console_source(&self.store.trunks()?, &self.store.routes()?))
    }

    pub(super) fn file_user(&self, username: &str) -> Option<&FileUser> {
        self.file_users.iter().find(|u| u.username == username)
    }
}

/// Console trunks and routes (in creation order) as a routing source.
pub fn console_source(trunks: &[StoredTrunk], routes: &[StoredRoute]) -> RoutingSource {
    RoutingSource::managed(
        CONSOLE_LABEL,
        trunks
            .iter()
            .map(|t| (t.name.clone(), t.spec.clone()))
            .collect(),
        routes.iter().map(|r| r.spec.clone()).collect(),
    )
}

/// The routes of this module, merged into the control core's router.
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route(
            "/console/extensions",
            get(list_extensions).post(create_extension),
        )
        .route(
            "/console/extensions/{id}",
            get(get_extension)
                .put(replace_extension)
                .delete(delete_extension),
        )
        .route("/console/sip-trunk", get(list_trunks).post(create_trunk))
        .route(
            "/console/sip-trunk/{id}",
            get(get_trunk).put(replace_trunk).delete(delete_trunk),
        )
        .route("/console/routing", get(list_routes).post(create_route))
        .route(
            "/console/routing/{id}",
            get(get_route).put(replace_route).delete(delete_route),
        )
}

// ---- replies ----

type Reply = Result<Response, ApiError>;

fn internal(what: impl std::fmt::Display) -> ApiError {
    tracing::error!("console resources: {what}");
    ApiError::internal(what.to_string())
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("no {what} {id}"))
}

fn read_only(what: &str, id: &str, file: &str) -> ApiError {
    ApiError::conflict(format!(
        "{what} {id} comes from {file} and is read-only here; edit the file instead"
    ))
}

/// Runs store work on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(internal(format!("task failed: {e}"))),
    }
}
