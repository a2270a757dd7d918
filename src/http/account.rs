//! The account's telephony settings: its own Twilio account, and the secret for the generic
//! call endpoint.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, put, web};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use crate::domain::{FieldError, TwilioAccountSid};
use crate::telephony::credentials::{CALLS_SECRET, TWILIO_AUTH_TOKEN};
use crate::telephony::twilio_api::{self, Proof};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwilioCredentialsRequest {
    /// `AC` followed by 32 hex digits.
    #[schema(pattern = r"^\s*AC[0-9A-Fa-f]{32}\s*$")]
    pub twilio_account_sid: String,
    /// 16-128 characters.
    #[schema(pattern = r"^\s*\S[\s\S]{14,126}\S\s*$")]
    pub twilio_auth_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct TelephonySettings {
    pub twilio_account_sid: Option<String>,
    /// Whether an auth token is stored (it is never shown again).
    pub twilio_auth_token_set: bool,
    pub calls_secret_set: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CallsSecret {
    /// Signs requests to `POST /v1/telephony/calls`. Shown once.
    pub calls_secret: String,
}

/// What the database holds (another instance may have made the last change).
async fn settings_of(state: &AppState, account_id: &str) -> Result<TelephonySettings, ApiError> {
    let creds = state.storage.credentials_of_account(account_id).await?;
    Ok(TelephonySettings {
        twilio_account_sid: creds.as_ref().and_then(|c| c.twilio_account_sid.clone()),
        twilio_auth_token_set: creds
            .as_ref()
            .is_some_and(|c| c.twilio_auth_token.is_some()),
        calls_secret_set: creds.is_some_and(|c| c.calls_secret.is_some()),
    })
}

#[utoipa::path(
    tag = "account",
    responses((status = 200, description = "The account's telephony settings", body = TelephonySettings)),
    security(("api_key" = []))
)]
#[get("/v1/account/telephony")]
pub async fn get_telephony(
    state: web::Data<AppState>,
    account: AuthedAccount,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(settings_of(&state, account.id()).await?))
}

/// Connects the account's own Twilio account: its calls are verified with its auth token,
/// and reach only this account's numbers. The token is proven with Twilio's API first (unless
/// the operator turned that off); the operator's own Twilio account cannot be connected.
#[utoipa::path(
    tag = "account",
    request_body = TwilioCredentialsRequest,
    responses(
        (status = 200, description = "Connected", body = TelephonySettings),
        (status = 422, description = "A malformed field; `twilio_account_sid` is the service's own Twilio account; or Twilio refused the `twilio_auth_token`", body = ErrorBody),
        (status = 503, description = "Twilio's API could not confirm the token (not reached, or no clear answer); nothing was stored, retry", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[put("/v1/account/telephony")]
pub async fn put_telephony(
    state: web::Data<AppState>,
    account: AuthedAccount,
    ApiJson(body): ApiJson<TwilioCredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let sid = TwilioAccountSid::parse("twilio_account_sid", &body.twilio_account_sid)?;
    let token = body.twilio_auth_token.trim();
    if token.len() < 16 || token.len() > 128 {
        return Err(FieldError::new("twilio_auth_token", "must be 16-128 characters").into());
    }
    if state.settings.twilio_account_sid.as_ref() == Some(&sid) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "operator_twilio_account",
            "`twilio_account_sid` is this service's own Twilio account; its calls are verified with the service's token",
        )
        .with_field("twilio_account_sid"));
    }
    if let Some(api_base) = &state.settings.twilio_api_base {
        match twilio_api::prove_ownership(api_base, &sid, token).await {
            Proof::Owned => {}
            Proof::Refused => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "twilio_credentials_refused",
                    "Twilio refused this `twilio_auth_token` for `twilio_account_sid`",
                )
                .with_field("twilio_auth_token"));
            }
            Proof::Unknown(why) => {
                tracing::warn!(account_id = %account.id(), twilio_account_sid = %sid, why, "Twilio credentials could not be proven");
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "twilio_unreachable",
                    "Twilio's API could not confirm the credentials; nothing was stored, retry shortly",
                ));
            }
        }
    }
    let sealed = state
        .credentials
        .sealer()
        .seal(account.id(), TWILIO_AUTH_TOKEN, token);
    state
        .storage
        .set_twilio_credentials(account.id(), sid.as_str(), &sealed)
        .await?;
    state.credentials_changed().await;
    tracing::info!(account_id = %account.id(), twilio_account_sid = %sid, "Twilio account connected");
    Ok(HttpResponse::Ok().json(settings_of(&state, account.id()).await?))
}

/// Creates (or replaces) the secret that signs the account's generic call events.
#[utoipa::path(
    tag = "account",
    responses((status = 201, description = "The new secret, shown this once", body = CallsSecret)),
    security(("api_key" = []))
)]
#[post("/v1/account/telephony/calls-secret")]
pub async fn rotate_calls_secret(
    state: web::Data<AppState>,
    account: AuthedAccount,
) -> Result<HttpResponse, ApiError> {
    let secret = format!(
        "sbcs_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let sealed = state
        .credentials
        .sealer()
        .seal(account.id(), CALLS_SECRET, &secret);
    state
        .storage
        .set_calls_secret(account.id(), &sealed)
        .await?;
    state.credentials_changed().await;
    tracing::info!(account_id = %account.id(), "calls secret rotated");
    Ok(HttpResponse::Created().json(CallsSecret {
        calls_secret: secret,
    }))
}
