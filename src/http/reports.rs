//! Reports and costs: the attribution and service reports (JSON or CSV), ad spend uploads
//! (JSON rows or CSV), and a property's cost settings.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::NaiveDate;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::properties::{not_found, property_of};
use crate::domain::{FieldError, from_micros, to_micros};
use crate::reports::report::{self, Kind, MAX_DAYS};
use crate::reports::{DayRange, Dimension, property_tz};
use crate::storage::{AdCostRow, CostSettings};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// First day, `YYYY-MM-DD`, in the property's time zone.
    #[param(required = true, value_type = super::formats::LocalDay)]
    pub from: Option<String>,
    /// Last day (inclusive), `YYYY-MM-DD`, not before `from` and at most 365 days after it.
    #[param(required = true, value_type = super::formats::LocalDay)]
    pub to: Option<String>,
    /// The dimension of the rows (default `channel`).
    #[param(value_type = Option<crate::reports::Dimension>)]
    pub group_by: Option<String>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<super::formats::ReportFormat>)]
    pub format: Option<String>,
}

struct ReportArgs {
    from: NaiveDate,
    to: NaiveDate,
    dimension: Dimension,
    csv: bool,
}

impl ReportQuery {
    fn parse(&self) -> Result<ReportArgs, FieldError> {
        let DayRange { from, to } = DayRange::parse(self.from.as_deref(), self.to.as_deref())?;
        if (to - from).num_days() >= MAX_DAYS {
            return Err(FieldError::new(
                "to",
                format!("a report spans at most {MAX_DAYS} days"),
            ));
        }
        let group_by = self.group_by.as_deref().unwrap_or("channel");
        let dimension = Dimension::parse(group_by).ok_or_else(|| {
            let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
            FieldError::new(
                "group_by",
                format!(
                    "`{group_by}` is not a dimension; use one of: {}",
                    names.join(", ")
                ),
            )
        })?;
        let csv = match self.format.as_deref().unwrap_or("json") {
            "json" => false,
            "csv" => true,
            _ => return Err(FieldError::new("format", "must be json or csv")),
        };
        Ok(ReportArgs {
            from,
            to,
            dimension,
            csv,
        })
    }
}

async fn answer_report(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: &str,
    query: &ReportQuery,
    kind: Kind,
) -> Result<HttpResponse, ApiError> {
    let args = query.parse()?;
    let property = property_of(&state, &account, id).await?;
    let summed = report::summarise(
        &state.storage,
        &state.rollups,
        &property,
        args.dimension,
        args.from,
        args.to,
        state.clock.now_ms(),
    )
    .await?;
    if args.csv {
        let name = match kind {
            Kind::Attribution => "attribution",
            Kind::Service => "service",
        };
        Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "content-disposition",
                format!(
                    "attachment; filename=\"{name}-{}-{}-{}.csv\"",
                    args.dimension.as_str(),
                    args.from,
                    args.to
                ),
            ))
            .body(report::to_csv(&summed, kind)))
    } else {
        Ok(HttpResponse::Ok().json(report::to_json(&summed, kind)))
    }
}

/// A report as JSON: its rows, each holding the dimension's value under the dimension's name
/// (`"channel": "Paid Search"`) and the figures, and the totals.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Never built: it describes `report::to_json`.
pub struct AttributionReport {
    property_id: String,
    #[schema(value_type = super::formats::LocalDay)]
    from: String,
    #[schema(value_type = super::formats::LocalDay)]
    to: String,
    #[schema(value_type = crate::reports::Dimension)]
    group_by: String,
    currency: String,
    #[schema(schema_with = report_rows)]
    rows: (),
    #[schema(schema_with = figures)]
    totals: (),
}

/// The service report as JSON: the attribution report's shape, with the industry benchmarks
/// and how the totals stand against them.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Never built: it describes `report::to_json`.
pub struct ServiceReport {
    #[serde(flatten)]
    report: AttributionReport,
    /// Each benchmarked figure's published range.
    benchmarks: std::collections::BTreeMap<String, BenchmarkView>,
    /// Each benchmarked total: `better`, `within` or `worse` than its benchmark.
    standing: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct BenchmarkView {
    low: f64,
    high: f64,
    /// `higher` or `lower`.
    better: String,
    source: String,
}

/// Figures by name: numbers, or `null` where a denominator is 0 (and text for the dimension).
fn figures() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .additional_properties(Some(
            ObjectBuilder::new().schema_type(
                [Type::String, Type::Number, Type::Null]
                    .into_iter()
                    .collect::<SchemaType>(),
            ),
        ))
        .build()
}

fn report_rows() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(figures())
        .build()
}

#[utoipa::path(
    tag = "reports",
    params(("id" = String, Path, description = "Property id"), ReportQuery),
    responses(
        (status = 200, description = "The report: JSON, or with `format=csv` a CSV file (a header, the rows, a `Total` row)", content(
            (AttributionReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/reports/attribution")]
pub async fn attribution_report(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    answer_report(state, account, &id, &query, Kind::Attribution).await
}

#[utoipa::path(
    tag = "reports",
    params(("id" = String, Path, description = "Property id"), ReportQuery),
    responses(
        (status = 200, description = "Call-centre figures per row, with industry benchmarks and the totals' standing: JSON, or with `format=csv` a CSV file (a header, the rows, a `Total` and a `Benchmark` row)", content(
            (ServiceReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/reports/service")]
pub async fn service_report(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    answer_report(state, account, &id, &query, Kind::Service).await
}

/// One day's spend on one source, medium and campaign, in the property's currency.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostRowInput {
    /// `YYYY-MM-DD`, in the property's time zone.
    #[schema(value_type = super::formats::LocalDay)]
    pub date: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub source: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub medium: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub campaign: Option<String>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub amount: f64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostUpload {
    #[schema(min_items = 1, max_items = 50_000)]
    pub rows: Vec<CostRowInput>,
}

#[derive(Serialize, ToSchema)]
pub struct CostUploadResult {
    /// Rows stored (a row for a day, source, medium and campaign sent before replaces it).
    pub upserted: usize,
}

/// Ad spend rows an upload may hold.
const MAX_COST_ROWS: usize = 50_000;
/// A CSV of that many rows fits comfortably.
const MAX_COST_BODY: usize = 4 << 20;

fn cost_row(i: usize, r: &CostRowInput) -> Result<AdCostRow, FieldError> {
    let at = |f: &str| format!("rows[{i}].{f}");
    let day = NaiveDate::parse_from_str(r.date.trim(), "%Y-%m-%d")
        .map_err(|_| FieldError::new(at("date"), "must be a date such as 2026-11-23"))?;
    let text = |f: &str, v: &str, required: bool| -> Result<String, FieldError> {
        let v = v.trim();
        if required && v.is_empty() {
            return Err(FieldError::new(at(f), "must not be empty"));
        }
        if v.chars().count() > 200 {
            return Err(FieldError::new(at(f), "must be at most 200 characters"));
        }
        Ok(v.to_owned())
    };
    if !r.amount.is_finite() || r.amount < 0.0 || r.amount > 1e12 {
        return Err(FieldError::new(
            at("amount"),
            "must be a number from 0 to 1e12",
        ));
    }
    Ok(AdCostRow {
        day: day.format("%Y-%m-%d").to_string(),
        // Sources and mediums are compared as the snippet's classification stores them.
        source: text("source", &r.source, true)?.to_lowercase(),
        medium: text("medium", &r.medium, true)?.to_lowercase(),
        campaign: text("campaign", r.campaign.as_deref().unwrap_or_default(), false)?,
        amount_micros: to_micros(r.amount),
    })
}

/// CSV rows: a header naming `date, source, medium, campaign, amount` (any order; `campaign`
/// optional), then one row per day and campaign.
fn csv_rows(body: &[u8]) -> Result<Vec<CostRowInput>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "malformed_csv", m);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| bad(format!("the header cannot be read: {e}")))?
        .clone();
    let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let need = |name: &str| {
        column(name).ok_or_else(|| {
            bad(format!(
                "the header must name date, source, medium, campaign and amount; `{name}` is missing"
            ))
        })
    };
    let (date, source, medium, amount) = (
        need("date")?,
        need("source")?,
        need("medium")?,
        need("amount")?,
    );
    let campaign = column("campaign");
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        let get = |c: usize| record.get(c).unwrap_or_default().to_owned();
        let amount: f64 = get(amount).parse().map_err(|_| {
            ApiError::from(FieldError::new(
                format!("rows[{i}].amount"),
                "must be a number",
            ))
        })?;
        rows.push(CostRowInput {
            date: get(date),
            source: get(source),
            medium: get(medium),
            campaign: campaign.map(get),
            amount,
        });
    }
    Ok(rows)
}

#[utoipa::path(
    tag = "costs",
    params(("id" = String, Path, description = "Property id")),
    request_body(description = "JSON `{rows:[...]}`, or CSV with a header naming `date,source,medium,campaign,amount` (any order; `campaign` optional)", content(
        (CostUpload = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, description = "Stored", body = CostUploadResult),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/v1/properties/{id}/costs")]
pub async fn upload_costs(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let property = property_of(&state, &account, &id).await?;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("reading the body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_COST_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {MAX_COST_BODY} bytes; upload fewer days at once"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let input = match media {
        "text/csv" => csv_rows(&body)?,
        "" | "application/json" | "text/plain" => super::json::parse::<CostUpload>(&body)?.rows,
        m if m.ends_with("+json") => super::json::parse::<CostUpload>(&body)?.rows,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send JSON (application/json) or CSV (text/csv), not {other}"),
            ));
        }
    };
    if input.is_empty() || input.len() > MAX_COST_ROWS {
        return Err(FieldError::new("rows", format!("must hold 1 to {MAX_COST_ROWS} rows")).into());
    }
    // A day, source, medium and campaign sent twice in one upload: the later row wins.
    let mut rows: std::collections::BTreeMap<(String, String, String, String), AdCostRow> =
        Default::default();
    for (i, r) in input.iter().enumerate() {
        let row = cost_row(i, r)?;
        rows.insert(
            (
                row.day.clone(),
                row.source.clone(),
                row.medium.clone(),
                row.campaign.clone(),
            ),
            row,
        );
    }
    let rows: Vec<AdCostRow> = rows.into_values().collect();
    state
        .storage
        .upsert_ad_costs(account.id(), &property.id, &rows, state.clock.now_ms())
        .await?;
    tracing::info!(property_id = %property.id, rows = rows.len(), "ad spend stored");
    Ok(HttpResponse::Ok().json(CostUploadResult {
        upserted: rows.len(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct CostList {
    pub currency: String,
    pub rows: Vec<CostRowInput>,
}

#[utoipa::path(
    tag = "costs",
    params(("id" = String, Path, description = "Property id"), ReportQuery),
    responses((status = 200, description = "The ad spend rows of the range", body = CostList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/costs")]
pub async fn list_costs(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let args = query.parse()?;
    let property = property_of(&state, &account, &id).await?;
    let rows = state
        .storage
        .ad_costs(
            &property.id,
            &args.from.format("%Y-%m-%d").to_string(),
            &args.to.format("%Y-%m-%d").to_string(),
        )
        .await?
        .into_iter()
        .map(|r| CostRowInput {
            date: r.day,
            source: r.source,
            medium: r.medium,
            campaign: Some(r.campaign).filter(|c| !c.is_empty()),
            amount: from_micros(r.amount_micros),
        })
        .collect();
    Ok(HttpResponse::Ok().json(CostList {
        currency: property.currency,
        rows,
    }))
}

/// What calls cost besides ad spend, in the property's currency.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostSettingsBody {
    /// Per started minute of a call (Twilio bills per started minute). Default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub per_minute_cost: f64,
    /// The property's monthly running cost (staff, software), prorated per day and reported as
    /// `operating_cost_per_call`. Default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub operating_cost_monthly: f64,
}

/// A property's cost settings as the API shows them.
#[derive(Serialize, ToSchema)]
pub struct CostSettingsView {
    pub per_minute_cost: f64,
    pub operating_cost_monthly: f64,
    /// The property's time zone, whose days the operating cost is prorated over.
    pub timezone: String,
}

fn settings_view(s: CostSettings, timezone: &str) -> CostSettingsView {
    CostSettingsView {
        per_minute_cost: from_micros(s.per_minute_cost_micros),
        operating_cost_monthly: from_micros(s.operating_cost_monthly_micros),
        timezone: property_tz(timezone).name().to_owned(),
    }
}

#[utoipa::path(
    tag = "costs",
    params(("id" = String, Path, description = "Property id")),
    responses((status = 200, description = "The property's cost settings", body = CostSettingsView), (status = 404, body = ErrorBody)),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/cost-settings")]
pub async fn get_cost_settings(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let property = property_of(&state, &account, &id).await?;
    let s = state.storage.cost_settings(&property.id).await?;
    Ok(HttpResponse::Ok().json(settings_view(s, &property.timezone)))
}

#[utoipa::path(
    tag = "costs",
    params(("id" = String, Path, description = "Property id")),
    request_body = CostSettingsBody,
    responses((status = 200, description = "The cost settings now in force", body = CostSettingsView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []))
)]
#[put("/v1/properties/{id}/cost-settings")]
pub async fn put_cost_settings(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
    super::json::ApiJson(body): super::json::ApiJson<CostSettingsBody>,
) -> Result<HttpResponse, ApiError> {
    for (field, v) in [
        ("per_minute_cost", body.per_minute_cost),
        ("operating_cost_monthly", body.operating_cost_monthly),
    ] {
        if !v.is_finite() || !(0.0..=1e12).contains(&v) {
            return Err(FieldError::new(field, "must be a number from 0 to 1e12").into());
        }
    }
    let property = property_of(&state, &account, &id).await?;
    let s = CostSettings {
        per_minute_cost_micros: to_micros(body.per_minute_cost),
        operating_cost_monthly_micros: to_micros(body.operating_cost_monthly),
    };
    state
        .storage
        .set_cost_settings(account.id(), &property.id, &s)
        .await
        .map_err(not_found("property"))?;
    Ok(HttpResponse::Ok().json(settings_view(s, &property.timezone)))
}
