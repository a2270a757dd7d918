//! The dashboard's session: the cookie is HttpOnly and SameSite, authorises GET requests only
//! (the pages, the API's reads, the live feed), and a wrong, expired or signed-out cookie leads
//! back to the sign-in.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

use crate::calls::{property, twilio_app};
use crate::helpers::{Backend, TestApp, error_of, post_form};
use crate::live::{Auth, Feed};

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Posts the sign-in form, from `origin` when given.
async fn post_sign_in(app: &TestApp, key: &str, origin: Option<&str>) -> reqwest::Response {
    let mut req = post_form(
        &browser(),
        &app.url("/dashboard/sign-in"),
        &[("api_key", key)],
    );
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    req.send().await.unwrap()
}

/// Signs in with `key`; returns the `name=value` pair to send back, and the whole Set-Cookie.
async fn sign_in(app: &TestApp, key: &str) -> (String, String) {
    let res = post_sign_in(app, key, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/dashboard");
    let cookie = set_cookie(res.headers());
    let pair = cookie.split(';').next().unwrap().to_owned();
    (pair, cookie)
}

async fn get_with(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    browser()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn the_cookie_authorises_reading_never_writing(app: TestApp) {
    let property_id = property(&app).await;
    let (cookie, set) = sign_in(&app, &app.api_key).await;
    let attributes: Vec<String> = set.split(';').map(|a| a.trim().to_lowercase()).collect();
    assert!(cookie.starts_with("sb_session=sb_sess_"), "{set}");
    assert!(attributes.contains(&"httponly".to_owned()), "{set}");
    assert!(attributes.contains(&"samesite=lax".to_owned()), "{set}");
    assert!(attributes.contains(&"path=/".to_owned()), "{set}");
    assert!(
        !attributes.contains(&"secure".to_owned()),
        "plain http: {set}"
    );
    // Only the token's hash is stored.
    let token = cookie.split_once('=').unwrap().1;
    let now = app.clock_now();
    let lookup = |t: String| {
        let storage = app.storage.clone();
        async move {
            storage
                .account_for_dashboard_session(&t, now)
                .await
                .unwrap()
        }
    };
    assert!(lookup(token.to_owned()).await.is_none());
    let by_hash = lookup(switchboard::domain::hash_api_key(token)).await;
    assert_eq!(by_hash.unwrap().id, app.account_id);

    // GET: the dashboard, the API's reads, the live feed.
    let page = get_with(&app, "/dashboard", &cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("Acme Plumbing"), "{html}");
    assert!(html.contains(&format!("/v1/properties/{property_id}/live")));
    let res = get_with(&app, "/v1/properties", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["properties"].as_array().unwrap().len(), 1);
    let today = "2026-05-28";
    let res = get_with(
        &app,
        &format!("/v1/properties/{property_id}/reports/attribution?from={today}&to={today}"),
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    Feed::open(&app, &property_id, Auth::Cookie(&cookie)).await;

    // Anything else: the cookie is not even looked at.
    let attempts = [
        (reqwest::Method::POST, "/v1/properties".to_owned()),
        (
            reqwest::Method::PATCH,
            format!("/v1/properties/{property_id}"),
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/properties/{property_id}/cost-settings"),
        ),
        (reqwest::Method::POST, "/v1/webhooks".to_owned()),
        (
            reqwest::Method::DELETE,
            "/v1/callers/+14155559999".to_owned(),
        ),
    ];
    for (method, path) in attempts {
        let res = browser()
            .request(method.clone(), app.url(&path))
            .header("cookie", &cookie)
            .json(
                &json!({"name": "x", "domains": ["x.example"], "default_number": "+14155550100",
                          "url": "https://hooks.example/x", "per_minute_cost": 1}),
            )
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(error["code"], "missing_api_key", "{method} {path}");
    }
    let list = app.storage.list_properties(&app.account_id).await.unwrap();
    assert_eq!(list.len(), 1, "nothing was created");

    // Another account's property answers 404, on the page and in the API.
    let theirs = app.new_account_key("Other").await;
    let their_property = app.create_property(&theirs).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = get_with(
        &app,
        &format!("/dashboard?property={their_property}"),
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(!res.text().await.unwrap().contains(&their_property));
    let res = get_with(
        &app,
        &format!("/v1/properties/{their_property}/live"),
        &cookie,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Signing out ends the session on the server, not only in the browser.
    let res = browser()
        .post(app.url("/dashboard/sign-out"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(res.headers()).contains("Max-Age=0"));
    let res = get_with(&app, "/v1/properties", &cookie).await;
    let (status, error) = error_of(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["code"], "invalid_session");
}

async fn a_wrong_or_expired_cookie_leads_to_the_sign_in(app: TestApp) {
    property(&app).await;
    // No cookie, a made-up one: the sign-in form (and the made-up cookie is cleared).
    let page = get_with(&app, "/dashboard", "other=1").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("name=\"api_key\""));
    let forged = "sb_session=sb_sess_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let page = get_with(&app, "/dashboard", forged).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(set_cookie(page.headers()).contains("Max-Age=0"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Your session has ended"), "{html}");
    assert!(html.contains("name=\"api_key\""));
    let (status, error) = error_of(get_with(&app, "/v1/properties", forged).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["code"], "invalid_session");

    // A wrong key opens nothing, and the key is not echoed back.
    let wrong = "sb_key_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let res = post_sign_in(&app, wrong, None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(res.headers()).is_empty());
    assert!(!res.text().await.unwrap().contains(wrong));

    // A sign-in form posted from another site is refused.
    let res = post_sign_in(&app, &app.api_key, Some("https://evil.example")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(res.headers()).is_empty());

    // A session lasts 12 hours.
    let (cookie, _) = sign_in(&app, &app.api_key).await;
    app.advance_minutes(11 * 60);
    assert_eq!(
        get_with(&app, "/v1/properties", &cookie).await.status(),
        StatusCode::OK
    );
    app.advance_minutes(61);
    let page = get_with(&app, "/dashboard", &cookie).await;
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Your session has ended")
    );
    let (status, _) = error_of(get_with(&app, "/v1/properties", &cookie).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

crate::on_both_backends!(
    the_cookie_authorises_reading_never_writing,
    a_wrong_or_expired_cookie_leads_to_the_sign_in,
);

/// With an https public URL the cookie is Secure and `__Host-` prefixed.
#[tokio::test]
async fn over_https_the_cookie_is_secure() {
    let app = twilio_app(Backend::Sqlite, None).await.unwrap();
    let (cookie, set) = sign_in(&app, &app.api_key).await;
    assert!(cookie.starts_with("__Host-sb_session="), "{set}");
    assert!(set.to_lowercase().contains("; secure"), "{set}");
    assert_eq!(
        get_with(&app, "/v1/properties", &cookie).await.status(),
        StatusCode::OK
    );
}
