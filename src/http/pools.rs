use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::properties::not_found;
use crate::domain::{
    ExhaustionPolicy, NewPool, PhoneNumber, PoolInput, PoolKind, PoolMatch, parse_cost,
    parse_numbers,
};
use crate::storage::{Pool, TrackingNumber};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePoolRequest {
    pub name: String,
    pub kind: PoolKind,
    /// Which visits the pool serves; omitted or empty makes it the property's default pool.
    #[serde(default, rename = "match")]
    pub matcher: Option<PoolMatch>,
    /// Minutes a session keeps its number after its last activity (1-1440, default 30).
    #[serde(default)]
    pub lease_minutes: Option<i64>,
    /// What happens when every number is leased (default `share`).
    #[serde(default)]
    pub exhaustion: Option<ExhaustionPolicy>,
    /// Required with `exhaustion: overflow`.
    #[serde(default)]
    pub overflow_number: Option<String>,
    /// Tracking numbers (E.164); each may belong to one pool only.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// What each number costs per month, in the property's currency.
    #[serde(default)]
    pub monthly_cost: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNumbersRequest {
    pub numbers: Vec<String>,
    #[serde(default)]
    pub monthly_cost: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct PoolList {
    pub pools: Vec<Pool>,
}

#[derive(Serialize, ToSchema)]
pub struct NumberList {
    pub numbers: Vec<TrackingNumber>,
}

#[utoipa::path(
    tag = "pools",
    params(("id" = String, Path, description = "Property id")),
    request_body = CreatePoolRequest,
    responses(
        (status = 201, body = Pool),
        (status = 404, body = ErrorBody),
        (status = 409, description = "A number is already in a pool", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/v1/properties/{id}/pools")]
pub async fn create_pool(
    state: web::Data<AppState>,
    account: AuthedAccount,
    property_id: web::Path<String>,
    ApiJson(body): ApiJson<CreatePoolRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewPool::parse(PoolInput {
        name: &body.name,
        kind: body.kind,
        matcher: body.matcher,
        lease_minutes: body.lease_minutes,
        exhaustion: body.exhaustion,
        overflow_number: body.overflow_number.as_deref(),
        numbers: &body.numbers,
        monthly_cost: body.monthly_cost,
    })?;
    let pool = state
        .storage
        .create_pool(account.id(), &property_id, &new, state.clock.now_ms())
        .await
        .map_err(not_found("property"))?;
    tracing::info!(pool_id = %pool.id, numbers = pool.numbers.len(), "pool created");
    Ok(HttpResponse::Created().json(pool))
}

#[utoipa::path(
    tag = "pools",
    params(("id" = String, Path, description = "Property id")),
    responses((status = 200, body = PoolList), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/pools")]
pub async fn list_pools(
    state: web::Data<AppState>,
    account: AuthedAccount,
    property_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let pools = state
        .storage
        .list_pools(account.id(), &property_id)
        .await
        .map_err(not_found("property"))?;
    Ok(HttpResponse::Ok().json(PoolList { pools }))
}

#[utoipa::path(
    tag = "pools",
    params(("id" = String, Path, description = "Pool id")),
    responses((status = 200, body = Pool), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
#[get("/v1/pools/{id}")]
pub async fn get_pool(
    state: web::Data<AppState>,
    account: AuthedAccount,
    pool_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let pool = state
        .storage
        .pool(account.id(), &pool_id)
        .await
        .map_err(not_found("pool"))?;
    Ok(HttpResponse::Ok().json(pool))
}

#[utoipa::path(
    tag = "pools",
    params(("id" = String, Path, description = "Pool id")),
    responses((status = 200, body = NumberList), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
#[get("/v1/pools/{id}/numbers")]
pub async fn list_numbers(
    state: web::Data<AppState>,
    account: AuthedAccount,
    pool_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let pool = state
        .storage
        .pool(account.id(), &pool_id)
        .await
        .map_err(not_found("pool"))?;
    Ok(HttpResponse::Ok().json(NumberList {
        numbers: pool.numbers,
    }))
}

#[utoipa::path(
    tag = "pools",
    params(("id" = String, Path, description = "Pool id")),
    request_body = AddNumbersRequest,
    responses(
        (status = 201, description = "The numbers added", body = NumberList),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/v1/pools/{id}/numbers")]
pub async fn add_numbers(
    state: web::Data<AppState>,
    account: AuthedAccount,
    pool_id: web::Path<String>,
    ApiJson(body): ApiJson<AddNumbersRequest>,
) -> Result<HttpResponse, ApiError> {
    let numbers = parse_numbers("numbers", &body.numbers)?;
    if numbers.is_empty() {
        return Err(
            crate::domain::FieldError::new("numbers", "must list at least one number").into(),
        );
    }
    let monthly_cost = parse_cost(body.monthly_cost)?;
    let added = state
        .storage
        .add_numbers(
            account.id(),
            &pool_id,
            &numbers,
            monthly_cost,
            state.clock.now_ms(),
        )
        .await
        .map_err(not_found("pool"))?;
    Ok(HttpResponse::Created().json(NumberList { numbers: added }))
}

#[utoipa::path(
    tag = "pools",
    params(
        ("id" = String, Path, description = "Pool id"),
        ("e164" = String, Path, description = "The number, E.164 (`+` may be written %2B)"),
    ),
    responses(
        (status = 200, description = "The retired number", body = TrackingNumber),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[delete("/v1/pools/{id}/numbers/{e164}")]
pub async fn retire_number(
    state: web::Data<AppState>,
    account: AuthedAccount,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (pool_id, raw) = path.into_inner();
    let number = PhoneNumber::parse("e164", &path_number(&raw))?;
    let retired = state
        .storage
        .retire_number(account.id(), &pool_id, &number, state.clock.now_ms())
        .await
        .map_err(not_found("live number in this pool"))?;
    Ok(HttpResponse::Ok().json(retired))
}

/// A number in a URL path: `+` may arrive percent-encoded, or be left out entirely.
fn path_number(raw: &str) -> String {
    let decoded = raw.replace("%2B", "+").replace("%2b", "+");
    if decoded.chars().all(|c| c.is_ascii_digit()) {
        format!("+{decoded}")
    } else {
        decoded
    }
}
