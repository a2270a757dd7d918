//! The dashboard's sign-in session: a random token in an HttpOnly, SameSite=Lax cookie (Secure,
//! and named with the `__Host-` prefix, when the public URL is https). Only the token's SHA-256
//! is stored. The cookie authorises GET and HEAD requests only (see `auth`): a browser attaches
//! it to requests that other sites make it send, so it must never change anything.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::Method;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use super::AppState;
use crate::config::Settings;
use crate::domain::hash_api_key;
use crate::storage::{Account, StorageResult};
use crate::time::Millis;

/// How long a sign-in lasts.
pub const SESSION_MS: Millis = 12 * 3_600_000;

fn secure(settings: &Settings) -> bool {
    settings.public_url.scheme() == "https"
}

/// `__Host-` makes the browser refuse the cookie unless it is Secure, for `/`, with no Domain:
/// no subdomain can plant or overwrite it. It needs https, so plain http keeps a plain name.
pub fn cookie_name(settings: &Settings) -> &'static str {
    if secure(settings) {
        "__Host-sb_session"
    } else {
        "sb_session"
    }
}

/// Whether a request may be authorised by the cookie: one that changes nothing.
pub fn cookie_may_authorise(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The session token the request's cookie carries, if any.
pub fn token_of(req: &HttpRequest, settings: &Settings) -> Option<SecretString> {
    req.cookie(cookie_name(settings))
        .map(|c| SecretString::from(c.value().to_owned()))
        .filter(|t| !t.expose_secret().is_empty())
}

/// What is stored for a token (a token carries 256 random bits: a fast hash is enough).
pub fn token_hash(token: &SecretString) -> String {
    hash_api_key(token.expose_secret())
}

pub fn new_token() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("sb_sess_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn cookie(settings: &Settings, value: String, max_age: time::Duration) -> Cookie<'static> {
    Cookie::build(cookie_name(settings), value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure(settings))
        .max_age(max_age)
        .finish()
}

pub fn session_cookie(settings: &Settings, token: &SecretString) -> Cookie<'static> {
    cookie(
        settings,
        token.expose_secret().to_owned(),
        time::Duration::milliseconds(SESSION_MS),
    )
}

/// Tells the browser to forget the cookie.
pub fn removal_cookie(settings: &Settings) -> Cookie<'static> {
    cookie(settings, String::new(), time::Duration::ZERO)
}

/// The account a token signs in, if its session is live.
pub async fn account_of(state: &AppState, token: &SecretString) -> StorageResult<Option<Account>> {
    state
        .storage
        .account_for_dashboard_session(&token_hash(token), state.clock.now_ms())
        .await
}
