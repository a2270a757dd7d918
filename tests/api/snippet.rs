//! The snippet as the service serves it: cache headers, ETag, the pinned version, SRI.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha384};
use switchboard::http::snippet::{SNIPPET, SNIPPET_JS};

use crate::helpers::{Backend, spawn_app};

#[tokio::test]
async fn dni_js_is_served_cached_revalidated_and_pinned() {
    let app = spawn_app(Backend::Sqlite).await;
    let res = app.client.get(app.url("/dni.js")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/javascript")
    );
    assert!(
        h["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=86400")
    );
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.text().await.unwrap(), SNIPPET_JS);

    let res = app
        .client
        .get(app.url("/dni.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = app
        .client
        .get(app.url("/dni.js"))
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let pinned = app
        .client
        .get(app.url(&SNIPPET.path()))
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), StatusCode::OK);
    assert_eq!(
        pinned.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(pinned.headers()["access-control-allow-origin"], "*");
    let body = pinned.bytes().await.unwrap();
    let integrity = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(&body))
    );
    assert_eq!(
        integrity, SNIPPET.integrity,
        "the SRI hash matches what is served"
    );

    let stale = app
        .client
        .get(app.url("/dni.v000000000000.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_property_answers_the_tag_to_paste() {
    let app = spawn_app(Backend::Sqlite).await;
    let p: Value = app.create_property(&app.api_key).await;
    let tag = p["snippet_tag"].as_str().unwrap();
    let key = p["public_key"].as_str().unwrap();
    let src = format!("<script async src=\"{}{}\"", app.address, SNIPPET.path());
    assert!(tag.starts_with(&src), "{tag}");
    assert!(tag.contains(&format!("integrity=\"{}\"", SNIPPET.integrity)));
    assert!(tag.contains("crossorigin=\"anonymous\""));
    assert!(tag.contains(&format!("data-key=\"{key}\"")));
}

/// README.md prints the current tag's SRI hash: a rebuilt snippet must update it.
#[test]
fn the_readme_prints_the_current_sri_hash() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&SNIPPET.integrity) && readme.contains(&SNIPPET.path()),
        "README.md must show {} and {}",
        SNIPPET.path(),
        SNIPPET.integrity
    );
}
