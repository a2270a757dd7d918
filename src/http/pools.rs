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
    #[schema(value_type = super::formats::Name)]
    pub name: String,
    pub kind: PoolKind,
    /// Which visits the pool serves; omitted or empty makes it the property's default pool.
    #[serde(default, rename = "match")]
    pub matcher: Option<PoolMatch>,
    /// Minutes a session keeps its number after its last activity (1-1440, default 30).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1440)]
    pub lease_minutes: Option<i64>,
    /// What happens when every number is leased (default `share`).
    #[serde(default)]
    pub exhaustion: Option<ExhaustionPolicy>,
    /// Required with `exhaustion: overflow`.
    #[serde(default)]
    #[schema(value_type = Option<super::formats::PhoneNumber>)]
    pub overflow_number: Option<String>,
    /// Tracking numbers, each listed once; a number may belong to one pool only, and a
    /// `source` pool has one.
    #[serde(default)]
    #[schema(schema_with = super::formats::phone_numbers::<0>)]
    pub numbers: Vec<String>,
    /// What each number costs per month, in the property's currency.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub monthly_cost: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNumbersRequest {
    /// Tracking numbers, each listed once.
    #[schema(schema_with = super::formats::phone_numbers::<1>)]
    pub numbers: Vec<String>,
    /// What each number costs per month, in the property's currency.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000)]
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
        (status = 201, description = "Created", body = Pool),
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
    check_owned(&state, account.id(), &new.numbers).await?;
    let pool = state
        .storage
        .create_pool(
            account.id(),
            &property_id,
            &new,
            state.clock.now_ms(),
            state.settings.number_quarantine_ms(),
        )
        .await
        .map_err(not_found("property"))?;
    tracing::info!(pool_id = %pool.id, numbers = pool.numbers.len(), "pool created");
    state
        .numbers_changed(Some(&pool.property_id), &pool.id)
        .await;
    Ok(HttpResponse::Created().json(pool))
}

#[utoipa::path(
    tag = "pools",
    params(("id" = String, Path, description = "Property id")),
    responses((status = 200, description = "The property's pools", body = PoolList), (status = 404, body = ErrorBody)),
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
    responses((status = 200, description = "The pool", body = Pool), (status = 404, body = ErrorBody)),
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
    responses((status = 200, description = "The pool's numbers, retired ones included", body = NumberList), (status = 404, body = ErrorBody)),
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
    check_owned(&state, account.id(), &numbers).await?;
    let added = state
        .storage
        .add_numbers(
            account.id(),
            &pool_id,
            &numbers,
            monthly_cost,
            (state.clock.now_ms(), state.settings.number_quarantine_ms()),
        )
        .await
        .map_err(not_found("pool"))?;
    state.numbers_changed(None, &pool_id).await;
    Ok(HttpResponse::Created().json(NumberList { numbers: added }))
}

#[utoipa::path(
    tag = "pools",
    params(
        ("id" = String, Path, description = "Pool id"),
        ("e164" = super::formats::PathNumber, Path, description = "The number"),
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
    state.numbers_changed(None, &pool_id).await;
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// Acceptable chance that an arriving visitor finds no free number (default 0.01).
    #[param(exclusive_minimum = 0, exclusive_maximum = 1)]
    pub target: Option<f64>,
    /// Hours of history to learn from (default 24, at most 720).
    #[param(minimum = 1, maximum = 720)]
    pub window_hours: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct PoolHealth {
    pub pool: String,
    pub numbers: u64,
    pub leased_now: u64,
    /// `leased_now / numbers`.
    pub utilisation: f64,
    /// The most numbers leased at once in the window.
    pub peak_concurrent_leases: u64,
    pub exhaustion_events: i64,
    /// Of `exhaustion_events`, visitors refused a free number because the pool's budget of new
    /// leases for the minute was spent (`SWITCHBOARD_POOL_NEW_LEASES_PER_MINUTE`).
    pub budget_refusals: i64,
    pub window_hours: i64,
    /// New sessions routed to this pool per hour, over the window.
    pub arrivals_per_hour: f64,
    /// Mean time a session holds its number (first view to last activity plus the lease).
    pub mean_hold_minutes: f64,
    /// Offered load in erlangs over the whole window: arrivals per minute times the mean hold.
    pub offered_load_erlangs: f64,
    /// Offered load of the busy hour in erlangs: numbers leased on average during the busiest
    /// hour of the day (each hour of the day averaged over the window's days). The pool is
    /// sized for this.
    pub busy_hour_load_erlangs: f64,
    pub target_exhaustion_probability: f64,
    /// Erlang B at the current size and the busy hour's load.
    pub exhaustion_probability: f64,
    /// The smallest size whose Erlang B at the busy hour's load is within the target.
    pub recommended_size: u64,
    pub formula: &'static str,
}

#[utoipa::path(
    tag = "pools",
    params(("id" = String, Path, description = "Pool id"), HealthQuery),
    responses((status = 200, description = "The pool's health and recommended size", body = PoolHealth), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
#[get("/v1/pools/{id}/health")]
pub async fn pool_health(
    state: web::Data<AppState>,
    account: AuthedAccount,
    pool_id: web::Path<String>,
    query: web::Query<HealthQuery>,
) -> Result<HttpResponse, ApiError> {
    use crate::domain::FieldError;

    let target = query.target.unwrap_or(0.01);
    if !(target > 0.0 && target < 1.0) {
        return Err(FieldError::new("target", "must be a probability between 0 and 1").into());
    }
    let window_hours = query.window_hours.unwrap_or(24);
    if !(1..=720).contains(&window_hours) {
        return Err(FieldError::new("window_hours", "must be between 1 and 720").into());
    }
    let pool = state
        .storage
        .pool(account.id(), &pool_id)
        .await
        .map_err(not_found("pool"))?;
    Ok(HttpResponse::Ok().json(health_of(&state, pool, target, window_hours).await?))
}

/// A pool's health over the last `window_hours`, sized for an exhaustion chance of `target`
/// (the API's answer, and the dashboard's pool table).
pub(super) async fn health_of(
    state: &AppState,
    pool: Pool,
    target: f64,
    window_hours: i64,
) -> Result<PoolHealth, ApiError> {
    use crate::dni::advice::{busy_hour_load, erlang_b, peak_overlap, recommended_size};

    state.dni.ledger().flush().await;
    let now = state.clock.now_ms();
    let from = now - window_hours * 3_600_000;
    let live = pool
        .numbers
        .iter()
        .filter(|n| n.retired_at.is_none())
        .count() as u64;
    let leases = state
        .storage
        .pool_leases_between(&pool.id, from, now)
        .await?;
    let counts = state
        .storage
        .pool_counts_between(&pool.id, from, now)
        .await?;
    let leased_now = state.dni.leased_now(&pool.id, now).await?;
    let holds: Vec<f64> = leases
        .iter()
        .map(|l| (l.ends_at.min(now) - l.started_at) as f64 / 60_000.0)
        .filter(|m| *m > 0.0)
        .collect();
    let mean_hold_minutes = if holds.is_empty() {
        pool.lease_minutes as f64
    } else {
        holds.iter().sum::<f64>() / holds.len() as f64
    };
    let arrivals_per_minute = counts.arrivals as f64 / (window_hours as f64 * 60.0);
    let load = arrivals_per_minute * mean_hold_minutes;
    let peak = peak_overlap(
        leases
            .iter()
            .map(|l| (l.started_at.max(from), l.ends_at.min(now))),
    );
    let busy_load = busy_hour_load(leases.iter().map(|l| (l.started_at, l.ends_at)), from, now);
    Ok(PoolHealth {
        pool: pool.id,
        numbers: live,
        leased_now,
        utilisation: if live == 0 {
            0.0
        } else {
            leased_now as f64 / live as f64
        },
        peak_concurrent_leases: peak.max(leased_now),
        exhaustion_events: counts.exhaustions,
        budget_refusals: counts.budget_refusals,
        window_hours,
        arrivals_per_hour: arrivals_per_minute * 60.0,
        mean_hold_minutes,
        offered_load_erlangs: load,
        busy_hour_load_erlangs: busy_load,
        target_exhaustion_probability: target,
        exhaustion_probability: erlang_b(live, busy_load),
        recommended_size: recommended_size(busy_load, target),
        formula: "Erlang B: B(0)=1, B(n)=A*B(n-1)/(n+A*B(n-1)); A = the busy hour's load (numbers leased on average in the busiest hour of the day, averaged over the window's days); recommended = smallest n with B(n) <= target",
    })
}

/// With `SWITCHBOARD_NUMBERS_MUST_BE_OWNED`, an account adds only numbers its own Twilio account
/// owns (the operator's, for an account without one), as Twilio's API says: nobody can put
/// into a pool, and so take the calls of, a number that is someone else's.
async fn check_owned(
    state: &AppState,
    account_id: &str,
    numbers: &[crate::domain::PhoneNumber],
) -> Result<(), ApiError> {
    use futures_util::{StreamExt, TryStreamExt};
    use secrecy::ExposeSecret;

    use crate::telephony::twilio_api::{Proof, owns_number};

    let (true, Some(api_base)) = (
        state.settings.numbers_must_be_owned,
        &state.settings.twilio_api_base,
    ) else {
        return Ok(());
    };
    let own = state
        .credentials
        .resolve_account(account_id, &state.storage)
        .await
        .and_then(|c| Some((c.twilio_account_sid?, c.twilio_auth_token?)));
    let (sid, token) = match (
        own,
        &state.settings.twilio_account_sid,
        &state.settings.twilio_auth_token,
    ) {
        (Some(pair), _, _) => pair,
        (None, Some(sid), Some(token)) => {
            (sid.as_str().to_owned(), token.expose_secret().to_owned())
        }
        (None, _, _) => {
            return Err(crate::domain::FieldError::new(
                "numbers",
                "this service takes only numbers a Twilio account of yours owns: connect it \
                 first (PUT /v1/account/telephony)",
            )
            .into());
        }
    };
    futures_util::stream::iter(numbers.iter().enumerate())
        .map(|(i, number)| {
            let (sid, token) = (&sid, &token);
            async move {
                match owns_number(api_base, sid, token, number.as_str()).await {
                    Proof::Owned => Ok(()),
                    Proof::Refused => Err(crate::domain::FieldError::new(
                        format!("numbers[{i}]"),
                        format!("{number} is not a number of the Twilio account {sid}"),
                    )
                    .into()),
                    Proof::Unknown(why) => {
                        tracing::warn!(why, "Twilio's API could not say who owns a number");
                        Err(ApiError::new(
                            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                            "twilio_unreachable",
                            "Twilio's API could not confirm who owns the numbers; nothing was \
                             added, retry shortly",
                        ))
                    }
                }
            }
        })
        .buffered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
