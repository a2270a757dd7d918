//! A property's alert rules. The alerts themselves arrive through the account's outbound
//! webhooks (`alert.*` events).

use actix_web::{HttpResponse, get, put, web};

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::properties::not_found;
use crate::domain::{AlertSettings, AlertSettingsInput};

#[utoipa::path(
    tag = "alerts",
    params(("id" = String, Path, description = "Property id")),
    responses((status = 200, description = "The property's alert rules", body = AlertSettings), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/alerts")]
pub async fn get_alerts(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let settings = state
        .storage
        .alert_settings(account.id(), &id)
        .await
        .map_err(not_found("property"))?;
    Ok(HttpResponse::Ok().json(settings))
}

/// Replaces the property's alert rules: every field is optional, and one left out takes its
/// default.
#[utoipa::path(
    tag = "alerts",
    params(("id" = String, Path, description = "Property id")),
    request_body = AlertSettingsInput,
    responses(
        (status = 200, description = "The rules now in force", body = AlertSettings),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[put("/v1/properties/{id}/alerts")]
pub async fn put_alerts(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
    ApiJson(body): ApiJson<AlertSettingsInput>,
) -> Result<HttpResponse, ApiError> {
    let settings = AlertSettings::parse(&body)?;
    state
        .storage
        .set_alert_settings(account.id(), &id, &settings, state.clock.now_ms())
        .await
        .map_err(not_found("property"))?;
    tracing::info!(property_id = %id, "alert settings changed");
    Ok(HttpResponse::Ok().json(settings))
}
