//! `Authorization: Bearer <api key>` → the caller's account. Every management handler takes
//! an [`AuthedAccount`] and passes its id to storage, which scopes every query by it.
//!
//! Without the header, a GET or HEAD request may be authorised by the dashboard's session
//! cookie (the dashboard's pages, the live feed, the reports it reads). Never any other
//! method: a browser sends the cookie with requests other sites make it send (CSRF), so the
//! cookie is not even looked at on a POST, PUT, PATCH or DELETE.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use secrecy::SecretString;

use super::error::ApiError;
use super::{AppState, session};
use crate::domain::looks_like_api_key;
use crate::storage::{Account, LAST_USED_EVERY_MS};

pub struct AuthedAccount(pub Account);

impl AuthedAccount {
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

impl FromRequest for AuthedAccount {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        let cookie_token = match (&state, &header) {
            (Some(state), None) if session::cookie_may_authorise(req.method()) => {
                session::token_of(req, &state.settings)
            }
            _ => None,
        };
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let key = match header {
                None => {
                    if let Some(token) = cookie_token {
                        return match session::account_of(&state, &token).await? {
                            Some(account) => Ok(AuthedAccount(account)),
                            None => Err(unauthorized(
                                "invalid_session",
                                "the dashboard session has expired or was signed out; sign in again at /dashboard",
                            )),
                        };
                    }
                    return Err(unauthorized(
                        "missing_api_key",
                        "send your API key as `Authorization: Bearer <key>`",
                    ));
                }
                Some(Err(_)) => {
                    return Err(unauthorized("invalid_api_key", "the API key is not valid"));
                }
                Some(Ok(value)) => {
                    let mut parts = value.splitn(2, ' ');
                    match (parts.next(), parts.next()) {
                        (Some(scheme), Some(key)) if scheme.eq_ignore_ascii_case("bearer") => {
                            SecretString::from(key.trim().to_owned())
                        }
                        _ => {
                            return Err(unauthorized(
                                "missing_api_key",
                                "use the Bearer scheme: `Authorization: Bearer <key>`",
                            ));
                        }
                    }
                }
            };
            if !looks_like_api_key(&key) {
                return Err(unauthorized("invalid_api_key", "the API key is not valid"));
            }
            match state.storage.api_key_in_use(&key).await? {
                Some((account, key_id, last_used)) => {
                    // Noted off the request path, at most once a minute per key.
                    let now = state.clock.now_ms();
                    if last_used.is_none_or(|at| now - at >= LAST_USED_EVERY_MS) {
                        let storage = state.storage.clone();
                        tokio::spawn(async move {
                            if let Err(e) = storage.note_api_key_used(&key_id, now).await {
                                tracing::debug!(error = %e, "an API key's last use was not noted");
                            }
                        });
                    }
                    Ok(AuthedAccount(account))
                }
                None => Err(unauthorized("invalid_api_key", "the API key is not valid")),
            }
        })
    }
}
