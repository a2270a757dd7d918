//! HTTP method semantics for every route, from the one route table (the OpenAPI document built
//! from `super::routes`): `HEAD` answers as `GET` without a body, and a method a known path does
//! not support answers `405` with `Allow`, not `404`.

use std::sync::LazyLock;

use actix_web::body::{BodySize, BodyStream, BoxBody, MessageBody};
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::stream;

use super::error::ApiError;

/// Each route's path pattern and the methods it answers, `HEAD` included where `GET` is.
static ROUTES: LazyLock<Vec<(ResourceDef, String)>> = LazyLock::new(|| {
    super::openapi::path_methods()
        .into_iter()
        .map(|(path, methods)| {
            let mut allow: Vec<&str> = methods.clone();
            if methods.contains(&"GET") {
                allow.insert(1, "HEAD");
            }
            (ResourceDef::new(path), allow.join(", "))
        })
        .collect()
});

/// The `Allow` value of the route a path matches, if any.
pub fn allowed(path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .find(|(def, _)| def.is_match(path))
        .map(|(_, allow)| allow.as_str())
}

/// Middleware: a `HEAD` request is routed as `GET`, and its answer keeps `GET`'s status and
/// headers but no body. A sized body is left for actix to drop (it writes no body for `HEAD`
/// and keeps `Content-Length`); a stream, such as the live feed, is ended at once.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() != Method::HEAD {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    req.head_mut().method = Method::GET;
    req.extensions_mut().insert(Head);
    let res = next.call(req).await?;
    Ok(res.map_body(|_, body| match body.size() {
        BodySize::Stream => BodyStream::new(stream::empty::<Result<_, std::io::Error>>()).boxed(),
        _ => body.boxed(),
    }))
}

/// Marks a request that came as `HEAD`.
struct Head;

/// What no route answers: `405` with `Allow` for a known path, `404` otherwise.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    match allowed(req.path()) {
        Some(allow) => {
            let method = match req.extensions().get::<Head>() {
                Some(Head) => Method::HEAD,
                None => req.method().clone(),
            };
            let mut res = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not supported here; use {allow}"),
            )
            .error_response();
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            res
        }
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; see /openapi.json",
        )
        .error_response(),
    }
}
