//! The calls API: a property's calls with their attribution, one call with the visit's page
//! views, and erasing a caller.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::properties::not_found;
use crate::attribution::Confidence;
use crate::attribution::view::{AttributionView, CallView, ConversionView, PageViewView};
use crate::domain::{
    CallOutcome, CallStatus, FieldError, NewConversion, OutcomePatch, PhoneNumber, from_micros,
};
use crate::storage::CallFilter;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    /// Calls that started at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Calls that started before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// A channel name, e.g. `Paid Search` or `Unattributed`.
    pub channel: Option<String>,
    /// The attribution's confidence.
    #[param(value_type = Option<crate::attribution::Confidence>)]
    pub confidence: Option<String>,
    /// The call's status.
    #[param(value_type = Option<crate::domain::CallStatus>)]
    pub status: Option<String>,
    #[param(value_type = Option<crate::domain::Outcome>)]
    pub outcome: Option<String>,
    /// At most this many calls (1-500; default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    #[param(pattern = r"^-?[0-9]{1,18}\.")]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CallList {
    /// Newest first.
    pub calls: Vec<CallView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next: Option<String>,
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<i64>, FieldError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc).timestamp_millis())
                .map_err(|_| {
                    FieldError::new(
                        field,
                        "must be an RFC 3339 time such as 2026-11-23T00:00:00Z",
                    )
                })
        })
        .transpose()
}

impl CallsQuery {
    fn filter(&self) -> Result<CallFilter, FieldError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(FieldError::new("limit", "must be between 1 and 500"));
        }
        if let Some(c) = &self.confidence
            && Confidence::parse(c).is_none()
        {
            return Err(FieldError::new(
                "confidence",
                "must be one of source, exact, shared, overflow, expired, repeat, none",
            ));
        }
        // Exactly as documented (the webhooks' parser also takes Twilio's other spellings).
        let status = match &self.status {
            Some(s) => Some(
                CallStatus::ALL
                    .into_iter()
                    .find(|c| c.as_str() == s)
                    .ok_or_else(|| FieldError::new("status", "is not a call status"))?
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        if let Some(o) = &self.outcome
            && o != "answered"
            && o != "missed"
        {
            return Err(FieldError::new("outcome", "must be answered or missed"));
        }
        let before = match &self.cursor {
            Some(c) => {
                Some(decode_cursor(c).ok_or_else(|| FieldError::new("cursor", "is not a cursor"))?)
            }
            None => None,
        };
        Ok(CallFilter {
            from: parse_time("from", self.from.as_deref())?,
            to: parse_time("to", self.to.as_deref())?,
            channel: self.channel.clone(),
            confidence: self.confidence.clone(),
            status,
            outcome: self.outcome.clone(),
            before,
            limit,
        })
    }
}

fn encode_cursor(started_at: i64, id: &str) -> String {
    format!("{started_at}.{id}")
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let (t, id) = c.split_once('.')?;
    Some((t.parse().ok()?, id.to_owned()))
}

#[utoipa::path(
    tag = "calls",
    params(("id" = String, Path, description = "Property id"), CallsQuery),
    responses(
        (status = 200, description = "A page of calls, newest first", body = CallList),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/calls")]
pub async fn list_calls(
    state: web::Data<AppState>,
    account: AuthedAccount,
    property_id: web::Path<String>,
    query: web::Query<CallsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    let property = state
        .storage
        .property(account.id(), &property_id)
        .await
        .map_err(not_found("property"))?;
    let rows = state.storage.list_calls(&property.id, &filter).await?;
    let next = (rows.len() as i64 == filter.limit)
        .then(|| rows.last().map(|r| encode_cursor(r.call.started_at, &r.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(CallList {
        calls: rows.iter().map(CallView::from).collect(),
        next,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct CallDetail {
    #[serde(flatten)]
    pub call: CallView,
    /// The attributed visit's page views, in order.
    pub page_views: Vec<PageViewView>,
    /// For a repeat caller: the attribution of their first call (first touch), beside this
    /// call's own (last touch).
    pub first_touch: Option<AttributionView>,
    pub conversions: Vec<ConversionView>,
    /// The sum of the conversions' values, in the property's currency.
    pub revenue: f64,
}

#[utoipa::path(
    tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, description = "The call", body = CallDetail), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
#[get("/v1/calls/{id}")]
pub async fn get_call(
    state: web::Data<AppState>,
    account: AuthedAccount,
    call_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = state
        .storage
        .call(account.id(), &call_id)
        .await
        .map_err(not_found("call"))?;
    Ok(HttpResponse::Ok().json(detail(&state, &account, row).await?))
}

async fn detail(
    state: &AppState,
    account: &AuthedAccount,
    row: crate::storage::CallRow,
) -> Result<CallDetail, ApiError> {
    let page_views = match row
        .attribution
        .as_ref()
        .and_then(|a| a.session_id.as_deref())
    {
        Some(sid) => state
            .storage
            .page_views(sid)
            .await?
            .iter()
            .map(PageViewView::from)
            .collect(),
        None => Vec::new(),
    };
    let first_touch = match &row.first_call_id {
        Some(first) => state
            .storage
            .call(account.id(), first)
            .await
            .ok()
            .and_then(|f| f.attribution.as_ref().map(AttributionView::from)),
        None => None,
    };
    let conversions = state.storage.conversions_of_call(&row.id).await?;
    let revenue = from_micros(conversions.iter().map(|c| c.value_micros).sum());
    Ok(CallDetail {
        call: CallView::from(&row),
        page_views,
        first_touch,
        conversions: conversions.iter().map(ConversionView::from).collect(),
        revenue,
    })
}

/// What an erasure changed, place by place (each count is of this account's records only).
#[derive(Serialize, ToSchema)]
pub struct Erased {
    /// Calls from which the caller's number, name, ZIP code and recordings were removed.
    pub erased_calls: u64,
    /// Outbound webhook deliveries naming the caller (queued, or kept for the delivery
    /// history) rewritten without the number: queued ones are sent that way.
    pub webhook_deliveries: u64,
    /// GA4 events naming the number, rewritten without it (they carry no caller number, so
    /// this is 0 unless a campaign or source spelled it).
    pub ga4_events: u64,
    /// Call events in the spool of the instance that answered that named the caller: stored
    /// erased and cut from the file. Other instances cut theirs within a second or two.
    pub spool_events: u64,
}

/// Erases a caller (GDPR) from everything the service keeps of the account: their number,
/// name, ZIP code and recording references leave every call, queued and past webhook
/// deliveries and GA4 events, and the call spool; call events still on their way land erased.
/// Other accounts' calls from the same number are untouched. Reports keep counting the calls,
/// and the caller once.
#[utoipa::path(
    tag = "calls",
    params(("e164" = super::formats::E164, Path, description = "The caller's number (the `+` percent-encoded as `%2B`)")),
    responses((status = 200, description = "Erased", body = Erased), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
#[delete("/v1/callers/{e164}")]
pub async fn erase_caller(
    state: web::Data<AppState>,
    account: AuthedAccount,
    number: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let number = PhoneNumber::parse("e164", &number)?;
    let erased = state
        .storage
        .erase_caller(account.id(), number.as_str(), state.clock.now_ms())
        .await?;
    let spool_events = state
        .calls
        .forget_caller(&state.storage, account.id(), number.as_str())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(
        account_id = %account.id(),
        erased_calls = erased.calls,
        webhook_deliveries = erased.webhook_deliveries,
        ga4_events = erased.ga4_events,
        spool_events,
        "a caller was erased"
    );
    Ok(HttpResponse::Ok().json(Erased {
        erased_calls: erased.calls,
        webhook_deliveries: erased.webhook_deliveries,
        ga4_events: erased.ga4_events,
        spool_events: spool_events as u64,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversionRequest {
    /// What the call led to, e.g. `sale` or `booking`.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// Its value in the property's currency (0 for a conversion without one).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub value: f64,
    /// Must be the property's currency when given.
    #[schema(value_type = Option<super::formats::Currency>)]
    pub currency: Option<String>,
    /// When it happened; defaults to now.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversionCreated {
    pub call_id: String,
    #[serde(flatten)]
    pub conversion: ConversionView,
}

/// A call of the account with its property (404 for another account's call).
async fn call_and_property(
    state: &AppState,
    account: &AuthedAccount,
    call_id: &str,
) -> Result<(crate::storage::CallRow, crate::storage::Property), ApiError> {
    let row = state
        .storage
        .call(account.id(), call_id)
        .await
        .map_err(not_found("call"))?;
    let property = state
        .storage
        .property(account.id(), &row.call.property_id)
        .await
        .map_err(not_found("property"))?;
    Ok((row, property))
}

async fn convert(
    state: &AppState,
    account: &AuthedAccount,
    call_id: &str,
    body: &ConversionRequest,
) -> Result<HttpResponse, ApiError> {
    let (row, property) = call_and_property(state, account, call_id).await?;
    let new = NewConversion::parse(
        &body.name,
        body.value,
        body.currency.as_deref(),
        body.at,
        &property.currency,
    )?;
    let now = state.clock.now_ms();
    let conversion = state
        .storage
        .add_conversion(
            &row,
            &new.name,
            new.value_micros,
            new.at.unwrap_or(now),
            now,
        )
        .await?;
    tracing::info!(call_id = %row.id, name = %new.name, "conversion recorded");
    Ok(HttpResponse::Created().json(ConversionCreated {
        call_id: row.id,
        conversion: ConversionView::from(&conversion),
    }))
}

/// Records a conversion of a call; a call may have several, and revenue sums them.
#[utoipa::path(
    tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    request_body = ConversionRequest,
    responses((status = 201, description = "Recorded", body = ConversionCreated), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
#[post("/v1/calls/{id}/conversion")]
pub async fn add_conversion(
    state: web::Data<AppState>,
    account: AuthedAccount,
    call_id: web::Path<String>,
    super::json::ApiJson(body): super::json::ApiJson<ConversionRequest>,
) -> Result<HttpResponse, ApiError> {
    convert(&state, &account, &call_id, &body).await
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    /// How many conversions were removed.
    pub deleted: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UndoQuery {
    /// Only conversions of this name (default: all of the call's).
    pub name: Option<String>,
}

/// Undoes a call's conversions (all, or those of one name).
#[utoipa::path(
    tag = "calls",
    params(("id" = String, Path, description = "Call id"), UndoQuery),
    responses((status = 200, description = "Undone", body = Deleted), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
#[delete("/v1/calls/{id}/conversion")]
pub async fn undo_conversion(
    state: web::Data<AppState>,
    account: AuthedAccount,
    call_id: web::Path<String>,
    query: web::Query<UndoQuery>,
) -> Result<HttpResponse, ApiError> {
    let row = state
        .storage
        .call(account.id(), &call_id)
        .await
        .map_err(not_found("call"))?;
    let deleted = state
        .storage
        .delete_conversions(
            account.id(),
            &row.id,
            query.name.as_deref(),
            state.clock.now_ms(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(Deleted { deleted }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerConversionRequest {
    /// The caller's number, as the CRM knows it.
    #[schema(value_type = super::formats::PhoneNumber)]
    pub caller: String,
    /// When the CRM saw the call (or the sale); the caller's latest call at or before it,
    /// within 30 days, is credited.
    pub at: DateTime<Utc>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub value: f64,
    #[schema(value_type = Option<super::formats::Currency>)]
    pub currency: Option<String>,
}

/// Records a conversion for the caller's latest call, for CRMs that do not know our call ids.
#[utoipa::path(
    tag = "calls",
    params(("id" = String, Path, description = "Property id")),
    request_body = CallerConversionRequest,
    responses((status = 201, description = "Recorded on the caller's latest call", body = ConversionCreated), (status = 404, description = "No call of that caller", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
#[post("/v1/properties/{id}/conversions")]
pub async fn add_conversion_by_caller(
    state: web::Data<AppState>,
    account: AuthedAccount,
    property_id: web::Path<String>,
    super::json::ApiJson(body): super::json::ApiJson<CallerConversionRequest>,
) -> Result<HttpResponse, ApiError> {
    let property = state
        .storage
        .property(account.id(), &property_id)
        .await
        .map_err(not_found("property"))?;
    let caller = PhoneNumber::parse("caller", &body.caller)?;
    let at = body.at.timestamp_millis();
    let call_id = state
        .storage
        .call_of_caller(
            account.id(),
            &property.id,
            caller.as_str(),
            at,
            30 * 86_400_000,
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                actix_web::http::StatusCode::NOT_FOUND,
                "no_matching_call",
                "no call from that number to this property in the 30 days before `at`",
            )
        })?;
    let request = ConversionRequest {
        name: body.name,
        value: body.value,
        currency: body.currency,
        at: Some(body.at),
    };
    convert(&state, &account, &call_id, &request).await
}

/// Sets the business's outcome of a call: disposition, lead score, CSAT, tags.
#[utoipa::path(
    tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    request_body = OutcomePatch,
    responses((status = 200, description = "The call, updated", body = CallDetail), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
#[patch("/v1/calls/{id}")]
pub async fn update_call(
    state: web::Data<AppState>,
    account: AuthedAccount,
    call_id: web::Path<String>,
    super::json::ApiJson(body): super::json::ApiJson<OutcomePatch>,
) -> Result<HttpResponse, ApiError> {
    let (row, property) = call_and_property(&state, &account, &call_id).await?;
    let next: CallOutcome = row.business.patched(&body, &property.dispositions)?;
    state
        .storage
        .set_call_outcome(account.id(), &row.id, &next, state.clock.now_ms())
        .await
        .map_err(not_found("call"))?;
    let row = state
        .storage
        .call(account.id(), &row.id)
        .await
        .map_err(not_found("call"))?;
    Ok(HttpResponse::Ok().json(detail(&state, &account, row).await?))
}
