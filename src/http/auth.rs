//! `Authorization: Bearer <api key>` → the caller's account. Every management handler takes
//! an [`AuthedAccount`] and passes its id to storage, which scopes every query by it.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use secrecy::SecretString;

use super::AppState;
use super::error::ApiError;
use crate::domain::looks_like_api_key;
use crate::storage::Account;

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
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let key = match header {
                None => {
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
            match state.storage.account_for_api_key(&key).await? {
                Some(account) => Ok(AuthedAccount(account)),
                None => Err(unauthorized("invalid_api_key", "the API key is not valid")),
            }
        })
    }
}
