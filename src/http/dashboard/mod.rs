//! `GET /dashboard`: the marketer's dashboard, server-rendered (maud escapes every value) with
//! server-side SVG charts, and one small script of our own for the live feed. Signed in with an
//! API key (a form POST) into a server-side session (see `super::session`).

mod charts;
mod data;
mod format;
mod pages;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, get, post, web};
use chrono::Duration;
use maud::Markup;
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::json::ApiBody;
use super::session;
use crate::domain::looks_like_api_key;
use crate::reports::report::MAX_DAYS;
use crate::reports::{DayRange, local_day, property_tz};
use crate::storage::Account;

/// Only our own files: the stylesheet and the live feed's script are served from here, and
/// recordings play from the provider's https URLs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     media-src 'self' https:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Days shown when the URL names no range.
const DEFAULT_DAYS: i64 = 30;

fn html(status: StatusCode, markup: Markup) -> HttpResponse {
    page_response(status).body(markup.into_string())
}

fn page_response(status: StatusCode) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    res
}

fn see_other(to: &str) -> HttpResponseBuilder {
    let mut res = HttpResponse::SeeOther();
    res.insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    res
}

enum Visitor {
    SignedIn(Account),
    /// No cookie.
    Anonymous,
    /// A cookie whose session expired, was signed out, or never was.
    Stale,
}

async fn visitor(state: &AppState, req: &HttpRequest) -> Result<Visitor, ApiError> {
    let Some(token) = session::token_of(req, &state.settings) else {
        return Ok(Visitor::Anonymous);
    };
    Ok(match session::account_of(state, &token).await? {
        Some(account) => Visitor::SignedIn(account),
        None => Visitor::Stale,
    })
}

/// A form posted from another site (login CSRF, or signing someone out) is refused: browsers
/// send `Origin` with every POST, and it must name this host. Clients that send no `Origin`
/// are not browsers acting for another site.
fn same_origin(req: &HttpRequest) -> bool {
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return false;
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        });
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

fn cross_site() -> HttpResponse {
    html(
        StatusCode::FORBIDDEN,
        pages::message(
            "Not allowed",
            "This form must be sent from the dashboard itself.",
        ),
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// A property of the account (default: its first).
    property: Option<String>,
    /// The first day, `YYYY-MM-DD` (default: 29 days before `to`).
    from: Option<String>,
    /// The last day, included (default: today in the property's time zone).
    to: Option<String>,
}

/// The range the URL names, or the last 30 days of the property's calendar.
fn range_of(query: &PageQuery, today: chrono::NaiveDate) -> Result<DayRange, String> {
    if query.from.is_none() && query.to.is_none() {
        return Ok(DayRange {
            from: today - Duration::days(DEFAULT_DAYS - 1),
            to: today,
        });
    }
    let range = DayRange::parse(query.from.as_deref(), query.to.as_deref())
        .map_err(|e| format!("`{}` {}", e.field, e.message))?;
    if (range.to - range.from).num_days() >= MAX_DAYS {
        return Err(format!("a range spans at most {MAX_DAYS} days"));
    }
    Ok(range)
}

/// The dashboard's page: a sign-in form, or (with the session cookie) the chosen property's
/// reports, calls and pools.
#[utoipa::path(
    tag = "dashboard",
    params(PageQuery),
    responses(
        (status = 200, description = "The sign-in form, or the dashboard", content_type = "text/html", body = String),
        (status = 404, description = "No such property in the account", content_type = "text/html", body = String),
        (status = 422, description = "The range is not a range of days (at most 366)", content_type = "text/html", body = String),
        (status = 503, body = ErrorBody),
    ),
)]
#[get("/dashboard")]
pub async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let account = match visitor(&state, &req).await? {
        Visitor::SignedIn(account) => account,
        Visitor::Anonymous => return Ok(html(StatusCode::OK, pages::sign_in(None))),
        Visitor::Stale => {
            return Ok(page_response(StatusCode::OK)
                .cookie(session::removal_cookie(&state.settings))
                .body(
                    pages::sign_in(Some("Your session has ended. Sign in again.")).into_string(),
                ));
        }
    };
    let properties = state.storage.list_properties(&account.id).await?;
    let chosen = match &query.property {
        // Another account's property is not among this account's: 404, as in the API.
        Some(id) => match properties.iter().find(|p| &p.id == id) {
            Some(p) => p,
            None => {
                return Ok(html(
                    StatusCode::NOT_FOUND,
                    pages::message("Not found", "There is no such property in your account."),
                ));
            }
        },
        None => match properties.first() {
            Some(p) => p,
            None => return Ok(html(StatusCode::OK, pages::no_properties(&account))),
        },
    };
    let today = local_day(property_tz(&chosen.timezone), state.clock.now_ms());
    let range = match range_of(&query, today) {
        Ok(range) => range,
        Err(problem) => {
            let picker = pages::Picker {
                properties: &properties,
                chosen,
                from: query.from.as_deref().unwrap_or_default(),
                to: query.to.as_deref().unwrap_or_default(),
            };
            return Ok(html(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::bad_range(&account, &picker, &problem),
            ));
        }
    };
    let shown = data::gather(&state, &account, chosen, range).await?;
    let (from, to) = (range.from.to_string(), range.to.to_string());
    let picker = pages::Picker {
        properties: &properties,
        chosen,
        from: &from,
        to: &to,
    };
    Ok(html(
        StatusCode::OK,
        pages::dashboard(&account, &picker, &shown),
    ))
}

/// The sign-in form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SignInForm {
    api_key: String,
}

/// The form's fields, read by hand so that nothing about the key reaches an error message.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The sign-in form's POST: opens a session for 12 hours.
#[utoipa::path(
    tag = "dashboard",
    request_body(content = SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: the session cookie is set, and the browser goes to `/dashboard`"),
        (status = 401, description = "The API key is not valid (the form again)", content_type = "text/html", body = String),
        (status = 403, description = "The form was posted from another site", content_type = "text/html", body = String),
        (status = 503, body = ErrorBody),
    ),
)]
#[post("/dashboard/sign-in")]
pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiBody(body): ApiBody,
) -> Result<HttpResponse, ApiError> {
    if !same_origin(&req) {
        return Ok(cross_site());
    }
    let key = SecretString::from(form_field(&body, "api_key").unwrap_or_default());
    let refused = || {
        html(
            StatusCode::UNAUTHORIZED,
            pages::sign_in(Some("That API key is not valid.")),
        )
    };
    if !looks_like_api_key(&key) {
        return Ok(refused());
    }
    let token = session::new_token();
    let now = state.clock.now_ms();
    let opened = state
        .storage
        .open_dashboard_session(
            &key,
            &session::token_hash(&token),
            now,
            now + session::SESSION_MS,
        )
        .await?;
    let Some(account) = opened else {
        return Ok(refused());
    };
    tracing::info!(account_id = %account.id, "dashboard sign-in");
    Ok(see_other("/dashboard")
        .cookie(session::session_cookie(&state.settings, &token))
        .finish())
}

/// Ends the session of the cookie, if any.
#[utoipa::path(
    tag = "dashboard",
    responses(
        (status = 303, description = "Signed out: the cookie is removed, and the browser goes to `/dashboard`"),
        (status = 403, description = "The form was posted from another site", content_type = "text/html", body = String),
        (status = 503, body = ErrorBody),
    ),
)]
#[post("/dashboard/sign-out")]
pub async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !same_origin(&req) {
        return Ok(cross_site());
    }
    if let Some(token) = session::token_of(&req, &state.settings) {
        state
            .storage
            .close_dashboard_session(&session::token_hash(&token))
            .await?;
    }
    Ok(see_other("/dashboard")
        .cookie(session::removal_cookie(&state.settings))
        .finish())
}

/// The stylesheet and the live feed's script, compiled in.
const ASSETS: [(&str, &str, &str); 2] = [
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("assets/dashboard.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    ),
];

/// The files `asset` serves (the names of `ASSETS`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum AssetName {
    #[schema(rename = "dashboard.css")]
    DashboardCss,
    #[schema(rename = "live.js")]
    LiveJs,
}

/// The dashboard's stylesheet and script.
#[utoipa::path(
    tag = "dashboard",
    params(("name" = AssetName, Path, description = "The file")),
    responses(
        (status = 200, description = "`dashboard.css` or `live.js`", content((String = "text/css"), (String = "text/javascript"))),
        (status = 404, description = "No such file", body = ErrorBody),
    ),
)]
#[get("/dashboard/assets/{name}")]
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name.as_str())
        .ok_or_else(|| ApiError::not_found("asset"))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *content_type))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(*body))
}
