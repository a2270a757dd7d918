//! Twilio's voice webhook: verify the signature, answer from the in-memory routing table.
//! Recording the call, its status callbacks and attribution come next (issue 5); this answer
//! already never waits on the database, so calls ring through when it is down.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use secrecy::ExposeSecret;

use super::AppState;
use super::error::ApiError;
use crate::domain::PhoneNumber;
use crate::storage::NewCall;
use crate::telephony::{twilio_signature, twiml};

/// How long the business's phone rings before Twilio gives up.
const RING_SECONDS: u32 = 20;

fn twiml_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// Checks `X-Twilio-Signature` against the public URL Twilio called and the form parameters.
fn verified_params(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let signature = req
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_signature",
                "X-Twilio-Signature is required",
            )
        })?;
    let token = state.settings.twilio_auth_token.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "twilio_not_configured",
            "this service has no TWILIO_AUTH_TOKEN to verify Twilio's requests with",
        )
    })?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let url = format!(
        "{}{path}",
        state.settings.public_url.as_str().trim_end_matches('/')
    );
    if !twilio_signature::verify(token.expose_secret().as_bytes(), &url, &params, signature) {
        tracing::warn!(%url, "a Twilio webhook failed signature verification");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "X-Twilio-Signature does not match this request",
        ));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[post("/v1/telephony/twilio/voice")]
pub async fn twilio_voice(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let params = verified_params(&state, &req, &body)?;
    let to = param(&params, "To").ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", "`To` is required").with_field("To")
    })?;
    let route = PhoneNumber::parse("To", to)
        .ok()
        .and_then(|n| state.routes.route(n.as_str()));
    let Some(route) = route else {
        tracing::warn!(to, "a call to a number the service does not know");
        return Ok(twiml_response(twiml::not_in_service()));
    };
    let caller = param(&params, "From").filter(|f| !f.is_empty());
    let call_sid = param(&params, "CallSid").unwrap_or_default();
    tracing::info!(call_sid, property_id = %route.property_id, "routing a call");
    let owned = |name: &str| {
        param(&params, name)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let call = NewCall {
        account_id: route.account_id.clone(),
        property_id: route.property_id.clone(),
        pool_id: Some(route.pool_id.clone()),
        provider: "twilio".to_owned(),
        provider_call_id: call_sid.to_owned(),
        tracking_number: route.number.clone(),
        caller_number: caller
            .and_then(|c| PhoneNumber::parse("From", c).ok())
            .map(|n| n.to_string())
            .or_else(|| caller.map(str::to_owned)),
        caller_name: owned("CallerName"),
        caller_city: owned("FromCity"),
        caller_state: owned("FromState"),
        caller_zip: owned("FromZip"),
        caller_country: owned("FromCountry"),
        status: owned("CallStatus").unwrap_or_else(|| "ringing".to_owned()),
        started_at: state.clock.now_ms(),
    };
    // On disk before Twilio hears back; if even that fails the call still rings through.
    if let Err(e) = state.calls.record(call).await {
        tracing::error!(error = %e, call_sid, "a call could not be spooled; it rings through unrecorded");
    }
    Ok(twiml_response(twiml::forward(
        &route.forward_to,
        caller,
        RING_SECONDS,
    )))
}
