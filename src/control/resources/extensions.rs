//! The extension handlers of the resource API (`/console/extensions`):
//! console extensions are stored by `resources_store.rs`; the `memory` users
//! of the config are listed beside them, read-only (`file:` ids).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;

use super::input::{extension_input, object, ExtensionInput};
use super::listing::{extension_view, file_user_view, list_query, page_of};
use super::{blocking, internal, not_found, read_only, Reply, FILE_ID};
use crate::control::api_error::ApiError;
use crate::control::http::HttpState;
use crate::control::resources_store::{Extension, Replaced};
pub(super) async fn list_extensions(
    State(state): State<Arc<HttpState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    let lq = list_query(query)?;
    let st = state.clone();
    let stored = blocking(move || st.resources.store.extensions().map_err(internal)).await?;
    let mut items: Vec<(String, Value)> = stored
        .iter()
        .map(|e| (e.username.clone(), extension_view(e)))
        .collect();
    items.extend(
        state
            .resources
            .file_users
            .iter()
            .map(|u| (u.username.clone(), file_user_view(u))),
    );
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(page_of(items.into_iter().map(|(_, v)| v).collect(), &lq))
}

/// 409 when the config file has a user `username`.
fn file_user_clash(state: &HttpState, username: &str) -> Result<(), ApiError> {
    match state.resources.file_user(username) {
        Some(_) => Err(ApiError::conflict(format!(
            "username: {username:?} is a user of the config file"
        ))
        .with_field("username")),
        None => Ok(()),
    }
}

fn taken(username: &str) -> ApiError {
    ApiError::conflict(format!("username: extension {username:?} exists")).with_field("username")
}

/// The stored form of a body (id and, on PUT, password filled in by the store).
fn extension_of(input: ExtensionInput) -> (Extension, Option<String>) {
    let ext = Extension {
        id: String::new(),
        username: input.username,
        password: String::new(),
        ha1: Default::default(),
        display_name: input.display_name,
        email: input.email,
        enabled: input.enabled,
        allow_guest_calls: input.allow_guest_calls,
        allowed_caller_ids: input.allowed_caller_ids,
    };
    (ext, input.password)
}

pub(super) async fn create_extension(State(state): State<Arc<HttpState>>, body: Bytes) -> Reply {
    let input = extension_input(&object(&body)?)?;
    file_user_clash(&state, &input.username)?;
    let (ext, password) = extension_of(input);
    let Some(password) = password else {
        return Err(ApiError::invalid("password", "required"));
    };
    let ext = Extension { password, ..ext };
    let username = ext.username.clone();
    let st = state.clone();
    let added = blocking(move || st.resources.store.add_extension(ext).map_err(internal)).await?;
    let e = added.ok_or_else(|| taken(&username))?;
    tracing::info!(id = %e.id, username = %e.username, "extension created");
    Ok((StatusCode::CREATED, Json(extension_view(&e))).into_response())
}

pub(super) async fn get_extension(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Reply {
    if let Some(name) = id.strip_prefix(FILE_ID) {
        let u = state
            .resources
            .file_user(name)
            .ok_or_else(|| not_found("extension", &id))?;
        return Ok(Json(file_user_view(u)).into_response());
    }
    let st = state.clone();
    let wanted = id.clone();
    let found = blocking(move || st.resources.store.extension(&wanted).map_err(internal)).await?;
    let e = found.ok_or_else(|| not_found("extension", &id))?;
    Ok(Json(extension_view(&e)).into_response())
}

/// For a `file:` id: 409 when the config has that user, else 404.
fn refuse_file_extension(state: &HttpState, id: &str) -> Result<(), ApiError> {
    match id.strip_prefix(FILE_ID) {
        None => Ok(()),
        Some(name) if state.resources.file_user(name).is_some() => {
            Err(read_only("extension", id, "the config file"))
        }
        Some(_) => Err(not_found("extension", id)),
    }
}

pub(super) async fn replace_extension(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    refuse_file_extension(&state, &id)?;
    let input = extension_input(&object(&body)?)?;
    file_user_clash(&state, &input.username)?;
    let (ext, password) = extension_of(input);
    let username = ext.username.clone();
    let st = state.clone();
    let wanted = id.clone();
    let replaced = blocking(move || {
        st.resources
            .store
            .replace_extension(&wanted, ext, password)
            .map_err(internal)
    })
    .await?;
    match replaced {
        Replaced::Done(e) => {
            tracing::info!(id = %e.id, username = %e.username, "extension replaced");
            Ok(Json(extension_view(&e)).into_response())
        }
        Replaced::Missing => Err(not_found("extension", &id)),
        Replaced::Taken => Err(taken(&username)),
        Replaced::NeedsPassword => Err(ApiError::invalid(
            "password",
            "required when the username changes (the stored digest secrets hash the old name)",
        )),
    }
}

pub(super) async fn delete_extension(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Reply {
    refuse_file_extension(&state, &id)?;
    let st = state.clone();
    let wanted = id.clone();
    let removed = blocking(move || {
        st.resources
            .store
            .remove_extension(&wanted)
            .map_err(internal)
    })
    .await?;
    if !removed {
        return Err(not_found("extension", &id));
    }
    tracing::info!(%id, "extension deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
