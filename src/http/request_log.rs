//! The request log: the span every request's log lines carry (and, at debug level, one line per
//! request). Unlike `tracing_actix_web`'s default span it names
//!
//! - the client's address by the rule the DNI uses (`dni::client_ip`): `X-Forwarded-For` counts
//!   only when the peer is one of `trusted_proxies`, so nobody can write the address logged;
//! - no address at all for page views (`/v1/dni/session`, the snippet files): the visitor's
//!   address is never stored, in the logs either;
//! - the route pattern instead of the raw path where the path is a caller's number
//!   (`DELETE /v1/callers/{e164}`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage, web};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

use super::AppState;
use crate::dni::client_ip::client_ip;

/// Paths whose segments after this prefix are a caller's number.
const CALLER_PATH: &str = "/v1/callers/";

pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let route = req.match_pattern().unwrap_or_else(|| "default".to_owned());
        let user_agent = req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %req.method(),
            http.route = %route,
            http.target = %loggable_target(req),
            http.client_ip = %loggable_client_ip(req),
            http.user_agent = %user_agent,
            http.status_code = Empty,
            otel.status_code = Empty,
            request_id = %request_id,
            exception.message = Empty,
            exception.details = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        let _in_request = span.enter();
        tracing::debug!("request served");
    }
}

/// A page view's request: its visitor's address is not logged.
fn is_page_view(path: &str) -> bool {
    path == "/v1/dni/session" || (path.starts_with("/dni") && path.ends_with(".js"))
}

/// The path and query, except where the path names a caller.
fn loggable_target(req: &ServiceRequest) -> String {
    if req.path().starts_with(CALLER_PATH) {
        return format!("{CALLER_PATH}{{e164}}");
    }
    req.uri()
        .path_and_query()
        .map_or_else(String::new, |p| p.as_str().to_owned())
}

/// The client's address as the DNI reads it, or nothing for a page view.
fn loggable_client_ip(req: &ServiceRequest) -> String {
    if is_page_view(req.path()) {
        return String::new();
    }
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.trusted_proxies.as_slice())
        .unwrap_or_default();
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    client_ip(req.peer_addr().map(|a| a.ip()), forwarded, trusted)
        .map(|ip| ip.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_views_are_the_session_route_and_the_snippet_files() {
        for path in ["/v1/dni/session", "/dni.js", "/dni.v3.js"] {
            assert!(is_page_view(path), "{path}");
        }
        for path in ["/v1/properties", "/dashboard", "/v1/dni/sessions"] {
            assert!(!is_page_view(path), "{path}");
        }
    }
}
