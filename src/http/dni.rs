//! `POST /v1/dni/session`, called by the snippet on the customer's pages.
//!
//! A CORS *simple* request: the snippet sends JSON as `text/plain`, so browsers send no
//! preflight. Only the property's own domains (and their subdomains) get
//! `Access-Control-Allow-Origin`; a page elsewhere gets 403.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, options, post, web};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use crate::dni::client_ip::client_ip;
use crate::dni::directory::PropertyConfig;
use crate::dni::service::{VisitAnswer, VisitContext, VisitError, VisitRequest};

fn origin(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|o| o != "null")
}

/// Checks the page's origin against the property's domains. No `Origin` (not a browser) is
/// let through without CORS headers.
fn check_origin(config: &PropertyConfig, origin: Option<&str>) -> Result<(), ApiError> {
    match origin {
        Some(o) if !config.allows_origin(o) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!("{o} is not one of this property's domains"),
        )),
        _ => Ok(()),
    }
}

fn with_cors(mut res: HttpResponse, origin: Option<&str>) -> HttpResponse {
    let headers = res.headers_mut();
    if let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl From<VisitError> for ApiError {
    fn from(e: VisitError) -> Self {
        match e {
            VisitError::UnknownKey => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_key",
                "no property has this key; check the snippet's data-key",
            )
            .with_field("key"),
            VisitError::InvalidUrl => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "`url` must be the page's absolute http(s) URL",
            )
            .with_field("url"),
            VisitError::Unavailable(source) => ApiError::unavailable(source),
        }
    }
}

#[utoipa::path(
    tag = "dni",
    request_body(content = VisitRequest, description = "JSON, sent as `text/plain` (a CORS simple request: no preflight) or `application/json`"),
    responses(
        (status = 200, description = "The number this visitor sees", body = VisitAnswer),
        (status = 403, description = "The page is not on the property's domains", body = ErrorBody),
        (status = 404, description = "Unknown key", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "The property could not be looked up: the database is unavailable and the key is not cached", body = ErrorBody),
    )
)]
#[post("/v1/dni/session")]
pub async fn session(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiJson(body): ApiJson<VisitRequest>,
) -> Result<HttpResponse, ApiError> {
    let origin = origin(&req);
    let config = state.dni.property_for_key(&body.key).await?;
    check_origin(&config, origin.as_deref())?;
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let ctx = VisitContext {
        client_ip: client_ip(
            req.peer_addr().map(|a| a.ip()),
            forwarded,
            &state.settings.trusted_proxies,
        ),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let answer = state.dni.visit(&config, &body, &ctx).await?;
    Ok(with_cors(
        HttpResponse::Ok().json(answer),
        origin.as_deref(),
    ))
}

/// Answers a preflight, for snippets or integrations that send `application/json`.
#[utoipa::path(
    tag = "dni",
    params(("Origin" = Option<String>, Header, description = "The page's origin, echoed in `Access-Control-Allow-Origin`")),
    responses((status = 204, description = "CORS preflight: `POST` with `Content-Type` allowed for a day")),
)]
#[options("/v1/dni/session")]
pub async fn preflight(req: HttpRequest) -> HttpResponse {
    let mut res = with_cors(HttpResponse::NoContent().finish(), origin(&req).as_deref());
    let headers = res.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    res
}
