//! Exports for ad platforms: files of what calls led to, to import there.

use actix_web::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::properties::not_found;
use crate::reports::days::{DayRange, property_tz};
use crate::reports::google_ads::offline_conversions_csv;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// The first day, in the property's time zone (`YYYY-MM-DD`).
    #[param(required = true, value_type = super::formats::LocalDay)]
    pub from: Option<String>,
    /// The last day, included (`YYYY-MM-DD`), not before `from`.
    #[param(required = true, value_type = super::formats::LocalDay)]
    pub to: Option<String>,
}

impl DaysQuery {
    fn range(&self) -> Result<DayRange, ApiError> {
        Ok(DayRange::parse(self.from.as_deref(), self.to.as_deref())?)
    }
}

/// Google Ads offline conversions (CSV): for the property's calls from Google ad clicks (with a
/// `gclid`) that started on these days, one `qualified_call` row per qualified call and one row
/// per recorded conversion. Calls marked `spam` are left out.
#[utoipa::path(
    tag = "exports",
    params(("id" = String, Path, description = "Property id"), DaysQuery),
    responses(
        (status = 200, description = "Google Ads' offline conversion import file", content_type = "text/csv", body = String),
        (status = 422, description = "A missing or malformed day", body = ErrorBody),
        (status = 404, description = "No such property in this account", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/exports/google-ads")]
pub async fn google_ads(
    state: web::Data<AppState>,
    account: AuthedAccount,
    property_id: web::Path<String>,
    query: web::Query<DaysQuery>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range()?;
    let property = state
        .storage
        .property(account.id(), &property_id)
        .await
        .map_err(not_found("property"))?;
    let tz = property_tz(&property.timezone);
    let (from, to) = range.millis(tz);
    let calls = state
        .storage
        .calls_from_google_clicks(&property.id, from, to)
        .await?;
    let file = format!(
        "attachment; filename=\"google-ads-{}-{}.csv\"",
        range.from, range.to
    );
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((CONTENT_DISPOSITION, file))
        .body(offline_conversions_csv(&calls, tz, &property.currency)))
}
