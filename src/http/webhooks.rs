//! `/v1/webhooks`: the account's outbound webhook endpoints and their recent deliveries.

use actix_web::{HttpResponse, delete, get, post, web};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::properties::not_found;
use crate::storage::{WebhookDelivery, WebhookEndpoint};
use crate::webhooks::{NewWebhookEndpoint, loggable_url};

/// How many deliveries `GET /v1/webhooks/{id}/deliveries` shows, newest first.
const RECENT_DELIVERIES: i64 = 50;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where events are POSTed: an `http://` or `https://` URL without user name or password,
    /// on the public internet (loopback, private, link-local and other internal addresses are
    /// refused, as is a name that resolves to one).
    #[schema(value_type = super::formats::HttpUrl)]
    pub url: String,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// A new endpoint, with its signing secret: shown this once, keep it.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// `whsec_...`: the HMAC-SHA256 key of `Switchboard-Signature`. Never shown again.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookEndpoint>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<WebhookDelivery>,
}

#[utoipa::path(
    tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created; the only answer that shows the secret", body = CreatedWebhook),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/v1/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    account: AuthedAccount,
    ApiJson(body): ApiJson<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewWebhookEndpoint::parse(&body.url, body.description.as_deref())?;
    // Never into the operator's network (checked again as each delivery connects).
    state
        .webhooks
        .outbound()
        .check_saved("url", &new.url)
        .await?;
    let created = state
        .storage
        .create_webhook_endpoint(account.id(), &new, state.clock.now_ms())
        .await?;
    tracing::info!(
        endpoint_id = %created.endpoint.id,
        account_id = %account.id(),
        url = %loggable_url(&created.endpoint.url),
        "webhook endpoint created"
    );
    Ok(HttpResponse::Created().json(CreatedWebhook {
        secret: created.secret.expose_secret().to_owned(),
        endpoint: created.endpoint,
    }))
}

#[utoipa::path(
    tag = "webhooks",
    responses(
        (status = 200, description = "The account's endpoints, without their secrets", body = WebhookList),
        (status = 401, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    account: AuthedAccount,
) -> Result<HttpResponse, ApiError> {
    let webhooks = state.storage.list_webhook_endpoints(account.id()).await?;
    Ok(HttpResponse::Ok().json(WebhookList { webhooks }))
}

#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook endpoint id")),
    responses(
        (status = 204, description = "Deleted: it receives nothing more; pending deliveries are failed"),
        (status = 404, description = "No such endpoint in this account", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/v1/webhooks/{id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .storage
        .delete_webhook_endpoint(account.id(), &id, state.clock.now_ms())
        .await
        .map_err(not_found("webhook"))?;
    tracing::info!(endpoint_id = %id, account_id = %account.id(), "webhook endpoint deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "Webhook endpoint id")),
    responses(
        (status = 200, description = "The 50 most recent deliveries, newest first", body = DeliveryList),
        (status = 404, description = "No such endpoint in this account", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/webhooks/{id}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let deliveries = state
        .storage
        .list_webhook_deliveries(account.id(), &id, RECENT_DELIVERIES)
        .await
        .map_err(not_found("webhook"))?;
    Ok(HttpResponse::Ok().json(DeliveryList { deliveries }))
}
