//! The calls API: a property's calls with their attribution, one call with the visit's page
//! views, and erasing a caller.

use actix_web::{HttpResponse, delete, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::properties::not_found;
use crate::attribution::Confidence;
use crate::attribution::view::{AttributionView, CallView, PageViewView};
use crate::domain::{CallStatus, FieldError, PhoneNumber};
use crate::storage::CallFilter;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    /// Calls that started at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Calls that started before this time (RFC 3339).
    pub to: Option<String>,
    /// A channel name, e.g. `Paid Search` or `Unattributed`.
    pub channel: Option<String>,
    /// `source`, `exact`, `shared`, `overflow`, `expired` or `none`.
    pub confidence: Option<String>,
    /// A provider status, e.g. `completed` or `no-answer`.
    pub status: Option<String>,
    /// `answered` or `missed`.
    pub outcome: Option<String>,
    /// At most this many calls (1-500; default 100).
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
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
                "must be one of source, exact, shared, overflow, expired, none",
            ));
        }
        let status = match &self.status {
            Some(s) => Some(
                CallStatus::parse(s)
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
        (status = 200, body = CallList),
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
}

#[utoipa::path(
    tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = CallDetail), (status = 404, body = ErrorBody)),
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
    Ok(HttpResponse::Ok().json(CallDetail {
        call: CallView::from(&row),
        page_views,
        first_touch,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Erased {
    /// Calls from which the caller's number, name, ZIP code and recordings were removed.
    pub erased_calls: u64,
}

/// Erases a caller (GDPR): their number, name, ZIP code and recording references are removed
/// from every call of the account. Reports keep counting the calls, and the caller once.
#[utoipa::path(
    tag = "calls",
    params(("e164" = String, Path, description = "The caller's number")),
    responses((status = 200, body = Erased), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
#[delete("/v1/callers/{e164}")]
pub async fn erase_caller(
    state: web::Data<AppState>,
    account: AuthedAccount,
    number: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let number = PhoneNumber::parse("e164", &number)?;
    let erased_calls = state
        .storage
        .erase_caller(account.id(), number.as_str())
        .await?;
    tracing::info!(account_id = %account.id(), erased_calls, "a caller was erased");
    Ok(HttpResponse::Ok().json(Erased { erased_calls }))
}
