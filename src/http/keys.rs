//! `/v1/account/keys`: an account issues, lists and revokes its own API keys. A key is shown
//! once, when issued; only its hash is stored. A revoked key answers `401` at once, on every
//! instance (each request looks its key up), and ends the dashboard sessions it opened.

use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::properties::not_found;
use crate::domain::required_text;
use crate::storage::ApiKeyInfo;

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// What the key is for (`zapier`, `reporting script`), to tell keys apart; 1-100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: String,
    pub name: Option<String>,
    /// The key itself: shown this once, never again.
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKeyInfo>,
}

#[utoipa::path(
    tag = "account",
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The new key, shown once", body = CreatedKey),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/v1/account/keys")]
pub async fn create_key(
    state: web::Data<AppState>,
    account: AuthedAccount,
    ApiJson(body): ApiJson<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = body
        .name
        .as_deref()
        .map(|n| required_text("name", n, 100))
        .transpose()?;
    let (info, key) = state
        .storage
        .create_api_key(account.id(), name.as_deref(), state.clock.now_ms())
        .await?;
    tracing::info!(account_id = %account.id(), key_id = %info.id, "API key issued");
    Ok(HttpResponse::Created().json(CreatedKey {
        id: info.id,
        name: info.name,
        api_key: secrecy::ExposeSecret::expose_secret(&key).to_owned(),
    }))
}

#[utoipa::path(
    tag = "account",
    responses((status = 200, description = "The account's keys (never the keys themselves)", body = KeyList)),
    security(("api_key" = []))
)]
#[get("/v1/account/keys")]
pub async fn list_keys(
    state: web::Data<AppState>,
    account: AuthedAccount,
) -> Result<HttpResponse, ApiError> {
    let keys = state.storage.list_api_keys(account.id()).await?;
    Ok(HttpResponse::Ok().json(KeyList { keys }))
}

#[utoipa::path(
    tag = "account",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key, revoked", body = ApiKeyInfo),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The account's last live key", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/v1/account/keys/{id}")]
pub async fn revoke_key(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let revoked = state
        .storage
        .revoke_api_key(account.id(), &id, state.clock.now_ms())
        .await
        .map_err(not_found("API key"))?;
    tracing::info!(account_id = %account.id(), key_id = %revoked.id, "API key revoked");
    Ok(HttpResponse::Ok().json(revoked))
}
