//! The snippet, served by the service: `GET /dni.js` (cached a day, revalidated by `ETag`) and
//! the content-addressed `GET /dni.v<version>.js` (immutable, cached a year, for pages that pin
//! it with Subresource Integrity). The built file is embedded at compile time, so `cargo build`
//! needs no Node; `.ci/run` checks that the built file matches its sources.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256, Sha384};

use super::error::{ApiError, ErrorBody};

pub const SNIPPET_JS: &str = include_str!("../../js-snippet/dist/dni.js");

pub struct SnippetInfo {
    /// A short content hash: the version in `/dni.v<version>.js`.
    pub version: String,
    /// `sha384-…`, for the `integrity` attribute.
    pub integrity: String,
    etag: String,
}

pub static SNIPPET: LazyLock<SnippetInfo> = LazyLock::new(|| {
    let sha256 = hex::encode(Sha256::digest(SNIPPET_JS.as_bytes()));
    SnippetInfo {
        version: sha256[..12].to_owned(),
        integrity: format!(
            "sha384-{}",
            STANDARD.encode(Sha384::digest(SNIPPET_JS.as_bytes()))
        ),
        etag: format!("\"{}\"", &sha256[..32]),
    }
});

impl SnippetInfo {
    pub fn path(&self) -> String {
        format!("/dni.v{}.js", self.version)
    }

    /// The tag a marketer pastes, pinned to this build by SRI.
    pub fn tag(&self, base_url: &str, public_key: &str) -> String {
        format!(
            "<script async src=\"{}{}\" integrity=\"{}\" crossorigin=\"anonymous\" data-key=\"{public_key}\"></script>",
            base_url.trim_end_matches('/'),
            self.path(),
            self.integrity
        )
    }
}

fn javascript(cache_control: &'static str) -> HttpResponse {
    let mut res = HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .body(SNIPPET_JS);
    let headers = res.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(etag) = HeaderValue::from_str(&SNIPPET.etag) {
        headers.insert(header::ETAG, etag);
    }
    // Any page may load the script; with `crossorigin` (needed for SRI) it must say so.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

/// The latest snippet, for pages that prefer updates to pinning.
#[utoipa::path(
    tag = "dni",
    params(("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer")),
    responses(
        (status = 200, description = "The snippet, cached a day (`ETag`)", content_type = "application/javascript", body = String),
        (status = 304, description = "The `ETag` is current"),
    ),
)]
#[get("/dni.js")]
pub async fn latest(req: HttpRequest) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == SNIPPET.etag || t.trim() == "*")
        });
    if fresh {
        let mut res = HttpResponse::NotModified().finish();
        if let Ok(etag) = HeaderValue::from_str(&SNIPPET.etag) {
            res.headers_mut().insert(header::ETAG, etag);
        }
        return res;
    }
    javascript("public, max-age=86400, stale-while-revalidate=604800")
}

/// This build's snippet, pinned by its content hash (the `integrity` of the property's
/// `snippet_tag` holds for it).
#[utoipa::path(
    tag = "dni",
    params(("version" = String, Path, description = "The content hash of this build's snippet", pattern = "^[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The snippet, immutable, cached a year", content_type = "application/javascript", body = String),
        (status = 404, description = "Not this build's version", body = ErrorBody),
    ),
)]
#[get("/dni.v{version}.js")]
pub async fn pinned(version: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if *version != SNIPPET.version {
        return Err(ApiError::not_found("this snippet version"));
    }
    Ok(javascript("public, max-age=31536000, immutable"))
}
