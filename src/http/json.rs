//! `ApiJson<T>`: a JSON body extractor whose every failure is a clear `{"error":...}` naming the
//! field at fault, with a size limit enforced while reading.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest body accepted, set per app from `max_body_bytes`.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = body_limit(req);
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let mut payload = payload.take();
        Box::pin(async move {
            // text/plain is accepted so browsers can POST without a CORS preflight.
            if let Some(ct) = content_type.as_deref()
                && !(ct == "application/json" || ct.ends_with("+json") || ct == "text/plain")
            {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("send a JSON body (Content-Type: application/json), not {ct}"),
                ));
            }
            let body = read_limited(&mut payload, limit).await?;
            parse(&body).map(ApiJson)
        })
    }
}

/// A raw body (a provider's form or signed JSON) read up to the app's `max_body_bytes`, so an
/// oversized or unreadable one gets the API's JSON error rather than actix's plain-text one.
pub struct ApiBody(pub web::Bytes);

impl FromRequest for ApiBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = body_limit(req);
        let mut payload = payload.take();
        Box::pin(async move {
            read_limited(&mut payload, limit)
                .await
                .map(|b| ApiBody(b.freeze()))
        })
    }
}

fn body_limit(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<BodyLimit>>()
        .map_or(64 * 1024, |l| l.0)
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
async fn read_limited(payload: &mut Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", e.to_string())
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

/// Parses JSON, reporting the path of the field that failed.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body is empty; send a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("the body is not valid JSON: {message}"),
                )
            }
            _ if message.starts_with("unknown field") => {
                // The path already ends with the unknown key; fall back to serde's backticked name.
                let field = if path == "." {
                    message.split('`').nth(1).unwrap_or_default().to_owned()
                } else {
                    path
                };
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_field", message.clone())
                    .with_field(field)
            }
            _ if path == "." => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
            }
            _ => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("`{path}`: {message}"),
            )
            .with_field(path),
        }
    })
}
