//! Twilio's webhooks. The voice webhook answers from the in-memory routing table and the local
//! spool, never the database, so calls ring through when it (or Redis) is down. Callbacks are
//! spooled the same way and merged into the call behind the request.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use secrecy::ExposeSecret;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::json::ApiBody;
use crate::domain::{PhoneNumber, Whisper};
use crate::storage::{CallEvent, RouteRow};
use crate::telephony::twilio::{self, Callback, Params};
use crate::telephony::{twilio_signature, twiml};

fn twiml_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/xml; charset=utf-8")
        .body(body)
}

/// Every Twilio request is signed.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Never built: it describes the header `verified_params` reads.
struct TwilioSignature {
    /// Twilio's signature of the public URL and the form.
    #[param(rename = "X-Twilio-Signature")]
    signature: String,
}

/// What any Twilio webhook answers when it refuses a request.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it describes `verified_params`' errors.
enum TwilioRefused {
    /// No `X-Twilio-Signature`, or a required field is missing.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The signature does not match, or no auth token is known for the request.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// What the `status` and `recording` callbacks answer (and `TwilioRefused`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Never built: it describes `spool_callback`'s answers.
enum CallbackKept {
    /// Kept (an empty TwiML `<Response/>`).
    #[response(status = 200, content_type = "application/xml")]
    Kept(String),
    /// The event could not be kept; Twilio retries.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The form fields of Twilio's voice webhook that the service reads (Twilio sends more, and
/// every one is signed).
#[derive(utoipa::ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct TwilioVoiceForm {
    /// The call's id.
    CallSid: String,
    /// The tracking number called.
    To: String,
    /// The caller's number.
    From: Option<String>,
    /// Picks the auth token of an account that connected its own Twilio account.
    AccountSid: Option<String>,
    CallStatus: Option<String>,
    CallerName: Option<String>,
    FromCity: Option<String>,
    FromState: Option<String>,
    FromZip: Option<String>,
    FromCountry: Option<String>,
}

/// The form fields of Twilio's callbacks (`status`, `dial`, `recording`) that the service reads.
#[derive(utoipa::ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct TwilioCallbackForm {
    CallSid: String,
    /// Set on the leg to the business: the caller's call.
    ParentCallSid: Option<String>,
    AccountSid: Option<String>,
    To: Option<String>,
    From: Option<String>,
    CallStatus: Option<String>,
    CallDuration: Option<String>,
    DialCallStatus: Option<String>,
    DialCallDuration: Option<String>,
    RecordingStatus: Option<String>,
    RecordingUrl: Option<String>,
    RecordingSid: Option<String>,
    RecordingDuration: Option<String>,
    SequenceNumber: Option<String>,
    Timestamp: Option<String>,
}

/// The form fields of the whisper request (Twilio's answered-leg request) that the service reads.
#[derive(utoipa::ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct TwilioWhisperForm {
    CallSid: Option<String>,
    AccountSid: Option<String>,
}

/// The URL Twilio called, as it signed it: the public URL, the path and the query.
fn public_url_of(state: &AppState, req: &HttpRequest) -> String {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    format!("{}{path}", public_base(state))
}

fn public_base(state: &AppState) -> &str {
    state.settings.public_url.as_str().trim_end_matches('/')
}

/// A verified Twilio request: its parameters, and the accounts whose own Twilio token signed
/// it (None: the service-wide `TWILIO_AUTH_TOKEN` did).
struct Verified {
    params: Params,
    accounts: Option<Vec<String>>,
}

impl Verified {
    /// The route of a tracking number, if this request may see it: a request signed with an
    /// account's own Twilio token reaches that account's numbers only.
    async fn route(&self, state: &AppState, number: &str) -> Option<RouteRow> {
        route_of(state, number)
            .await
            .filter(|r| self.may_reach(&r.account_id))
    }

    fn may_reach(&self, account_id: &str) -> bool {
        self.accounts
            .as_ref()
            .is_none_or(|accounts| accounts.iter().any(|a| a == account_id))
    }

    /// The account a callback that names no known number is limited to (None: any, for the
    /// service-wide token). Several accounts that connected one Twilio account with the same
    /// token share it; the first of them is taken.
    fn scope(&self) -> Option<&str> {
        self.accounts.as_ref()?.first().map(String::as_str)
    }
}

/// Checks `X-Twilio-Signature` against the public URL Twilio called and the form parameters:
/// with the service-wide token first (what it signs is the operator's, whatever an account
/// connected), then with the token of each account that connected the request's `AccountSid`.
/// An account's claim on a Twilio account therefore never takes a request away from the
/// operator or from another account that connected it.
async fn verified_params(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Verified, ApiError> {
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
    let params = Params(url::form_urlencoded::parse(body).into_owned().collect());
    let url = public_url_of(state, req);
    let signed_with =
        |token: &str| twilio_signature::verify(token.as_bytes(), &url, &params.0, signature);
    let operator = state.settings.twilio_auth_token.as_ref();
    if operator.is_some_and(|t| signed_with(t.expose_secret())) {
        return Ok(Verified {
            params,
            accounts: None,
        });
    }
    let connected = match params.get("AccountSid") {
        Some(sid) => {
            state
                .credentials
                .resolve_twilio_account(sid, &state.storage)
                .await
        }
        None => Vec::new(),
    };
    if connected.is_empty() && operator.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "twilio_not_configured",
            "no Twilio auth token is known for this request's AccountSid, and the service has no TWILIO_AUTH_TOKEN",
        ));
    }
    let accounts: Vec<String> = connected
        .into_iter()
        .filter(|c| c.twilio_auth_token.as_deref().is_some_and(signed_with))
        .map(|c| c.account_id)
        .collect();
    if accounts.is_empty() {
        tracing::warn!(
            path = req.path(),
            "a Twilio webhook failed signature verification"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "X-Twilio-Signature does not match this request",
        ));
    }
    Ok(Verified {
        params,
        accounts: Some(accounts),
    })
}

/// The route of a tracking number as the carrier wrote it (from memory, else the database).
async fn route_of(state: &AppState, number: &str) -> Option<RouteRow> {
    let number = PhoneNumber::parse("To", number).ok()?;
    state.routes.resolve(number.as_str(), &state.storage).await
}

/// A callback URL that carries the tracking number, so that a callback about a call this
/// service has not stored yet can still be routed to its account.
fn callback_url(state: &AppState, kind: &str, tracking_number: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("tn", tracking_number)
        .finish();
    format!("{}/v1/telephony/twilio/{kind}?{query}", public_base(state))
}

#[utoipa::path(
    tag = "twilio",
    params(TwilioSignature),
    request_body(content = TwilioVoiceForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML: `<Dial>` to the property's `forward_to`, or, for a number the service does not know, `<Say>` and `<Hangup/>`", content_type = "application/xml", body = String),
        TwilioRefused,
    )
)]
#[post("/v1/telephony/twilio/voice")]
pub async fn twilio_voice(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiBody(body): ApiBody,
) -> Result<HttpResponse, ApiError> {
    let verified = verified_params(&state, &req, &body).await?;
    let params = &verified.params;
    let to = params.get("To").ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", "`To` is required").with_field("To")
    })?;
    let call_sid = params.get("CallSid").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "`CallSid` is required",
        )
        .with_field("CallSid")
    })?;
    let Some(route) = verified.route(&state, to).await else {
        tracing::warn!(to, call_sid, "a call to a number the service does not know");
        return Ok(twiml_response(twiml::not_in_service()));
    };
    tracing::info!(call_sid, property_id = %route.property_id, "routing a call");
    let call = twilio::started_call(params, &route, state.clock.now_ms());
    let caller = params.get("From").map(str::to_owned);
    // On disk before Twilio hears back; if even that fails the call still rings through.
    if let Err(e) = state.calls.record(CallEvent::Started(call)).await {
        tracing::error!(error = %e, call_sid, "a call could not be spooled; it rings through unrecorded");
    }
    let whisper = (route.settings.whisper != Whisper::Off).then(|| {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("call", call_sid)
            .append_pair("tn", &route.number)
            .finish();
        format!(
            "{}/v1/telephony/twilio/whisper?{query}",
            public_base(&state)
        )
    });
    let callbacks = twiml::Callbacks {
        dial: callback_url(&state, "dial", &route.number),
        status: callback_url(&state, "status", &route.number),
        recording: callback_url(&state, "recording", &route.number),
        whisper,
    };
    Ok(twiml_response(twiml::forward(
        &route.forward_to,
        caller.as_deref(),
        &route.number,
        &route.settings,
        &callbacks,
    )))
}

/// Verifies and spools a callback; answers only once it is on disk, so Twilio retries what
/// was not kept.
async fn spool_callback(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    kind: Callback,
) -> Result<(), ApiError> {
    let verified = verified_params(state, req, body).await?;
    let params = &verified.params;
    if params.call_sid().is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "`CallSid` is required",
        )
        .with_field("CallSid"));
    }
    let tracking = web::Query::<TrackingQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().tn)
        .or_else(|| params.get("To").map(str::to_owned));
    let route = match tracking.as_deref() {
        Some(n) => verified.route(state, n).await,
        None => None,
    };
    let Some(event) = twilio::progress(
        kind,
        params,
        route.as_ref(),
        verified.scope(),
        state.clock.now_ms(),
    ) else {
        return Ok(());
    };
    let call_sid = event.call.provider_call_id.clone();
    state
        .calls
        .record(CallEvent::Progress(event))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, call_sid, "a call callback could not be spooled");
            ApiError::unavailable(e)
        })?;
    Ok(())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TrackingQuery {
    /// The tracking number, set by the service in the callback URL.
    tn: Option<String>,
}

#[utoipa::path(
    tag = "twilio",
    params(TwilioSignature, TrackingQuery),
    request_body(content = TwilioCallbackForm, content_type = "application/x-www-form-urlencoded"),
    responses(CallbackKept, TwilioRefused)
)]
#[post("/v1/telephony/twilio/status")]
pub async fn twilio_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiBody(body): ApiBody,
) -> Result<HttpResponse, ApiError> {
    spool_callback(&state, &req, &body, Callback::Status).await?;
    Ok(twiml_response(twiml::empty()))
}

/// `<Dial action>`: the dial to the business is over, and so is the call.
#[utoipa::path(
    tag = "twilio",
    params(TwilioSignature, TrackingQuery),
    request_body(content = TwilioCallbackForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML `<Hangup/>` (also when the event could not be kept: the caller must not wait)", content_type = "application/xml", body = String),
        TwilioRefused,
    )
)]
#[post("/v1/telephony/twilio/dial")]
pub async fn twilio_dial(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiBody(body): ApiBody,
) -> Result<HttpResponse, ApiError> {
    // Even if the event cannot be kept, the caller must not be left on the line.
    if let Err(e) = spool_callback(&state, &req, &body, Callback::Dial).await
        && e.status() != StatusCode::SERVICE_UNAVAILABLE
    {
        return Err(e);
    }
    Ok(twiml_response(twiml::hangup()))
}

#[utoipa::path(
    tag = "twilio",
    params(TwilioSignature, TrackingQuery),
    request_body(content = TwilioCallbackForm, content_type = "application/x-www-form-urlencoded"),
    responses(CallbackKept, TwilioRefused)
)]
#[post("/v1/telephony/twilio/recording")]
pub async fn twilio_recording(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiBody(body): ApiBody,
) -> Result<HttpResponse, ApiError> {
    spool_callback(&state, &req, &body, Callback::Recording).await?;
    Ok(twiml_response(twiml::empty()))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct WhisperQuery {
    /// The caller's call id, set by the service in the whisper URL.
    call: Option<String>,
    /// The tracking number called (the call's account), set by the service in the whisper URL.
    tn: Option<String>,
}

/// What the business hears when it answers, before the caller is connected: the call's
/// channel or campaign. Attribution is a moment old by then; if it is not ready within a
/// second, the business hears a plain announcement rather than waiting.
#[utoipa::path(
    tag = "twilio",
    params(TwilioSignature, WhisperQuery),
    request_body(content = TwilioWhisperForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML `<Say>`: the call's channel or campaign, or a plain announcement", content_type = "application/xml", body = String),
        TwilioRefused,
    )
)]
#[post("/v1/telephony/twilio/whisper")]
pub async fn twilio_whisper(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiBody(body): ApiBody,
) -> Result<HttpResponse, ApiError> {
    let verified = verified_params(&state, &req, &body).await?;
    let query = web::Query::<WhisperQuery>::from_query(req.query_string())
        .ok()
        .map(web::Query::into_inner);
    let fallback = "Incoming call from your website.";
    // A call id is unique within its account: the tracking number says which account's call
    // (whisper URLs without one, from before calls were keyed so, hear the announcement).
    let Some((call, number)) = query.and_then(|q| Some((q.call?, q.tn?))) else {
        return Ok(twiml_response(twiml::say(fallback)));
    };
    let lookup = async {
        let account = verified.route(&state, &number).await?.account_id;
        let row = state
            .storage
            .call_by_provider_id(&account, twilio::PROVIDER, &call)
            .await
            .ok()??;
        let attribution = match row.attribution.clone() {
            Some(a) => a,
            None => state
                .attributor
                .attribute(&row, state.clock.now_ms())
                .await
                .ok()??,
        };
        let route = state
            .routes
            .resolve(&row.call.tracking_number, &state.storage)
            .await;
        Some((attribution, route))
    };
    let text = match tokio::time::timeout(Duration::from_secs(1), lookup).await {
        Ok(Some((a, route))) => {
            let by_campaign = route.is_some_and(|r| r.settings.whisper == Whisper::Campaign);
            match (&a.campaign, by_campaign) {
                (Some(campaign), true) => format!("Call from campaign {campaign}."),
                _ => format!("Call from {}.", a.channel),
            }
        }
        _ => fallback.to_owned(),
    };
    Ok(twiml_response(twiml::say(&text)))
}

/// What the generic endpoint answers to `call.updated`, once the event is kept.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub accepted: bool,
}

/// What the generic endpoint answers to `call.started`: where to send the call.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RoutingAnswer {
    pub call_id: String,
    /// `forward`, or `reject` for a number the service does not know.
    pub action: &'static str,
    pub forward_to: String,
    pub timeout_s: u32,
    pub record: bool,
    /// The number to show the business.
    pub caller_id: Option<String>,
}

/// Other providers' calls, in the same model as Twilio's: `call.started` is answered with the
/// routing decision, `call.updated` is accepted once spooled. Signed with
/// `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the raw body>` under the account's
/// calls secret.
#[utoipa::path(
    tag = "telephony",
    params(("X-Switchboard-Signature" = String, Header, description = "`sha256=<hex HMAC-SHA256 of the raw body>` under the account's calls secret")),
    request_body = crate::telephony::generic::GenericEvent,
    responses(
        (status = 200, description = "call.started: the routing answer", body = RoutingAnswer),
        (status = 202, description = "call.updated: accepted (`{\"accepted\": true}`)", body = Accepted),
        (status = 400, body = ErrorBody),
        (status = 403, description = "No `X-Switchboard-Signature` match, or the account has no calls secret", body = ErrorBody),
        (status = 404, description = "The tracking number is unknown", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "A `call.updated` event could not be kept; retry", body = ErrorBody),
    )
)]
#[post("/v1/telephony/calls")]
pub async fn generic_call(
    state: web::Data<AppState>,
    req: HttpRequest,
    ApiBody(body): ApiBody,
) -> Result<HttpResponse, ApiError> {
    use crate::domain::CallerId;
    use crate::telephony::generic::{self, Addressed, GenericEvent};

    let signature = req
        .headers()
        .get("x-switchboard-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_signature",
                "X-Switchboard-Signature is required",
            )
        })?;
    // The tracking number names the account, whose secret signs the body.
    let addressed: Addressed = super::json::parse(&body)?;
    let route = route_of(&state, &addressed.to).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_number",
            "the number called is not a tracking number of this service",
        )
        .with_field("to")
    })?;
    let secret = state
        .credentials
        .resolve_account(&route.account_id, &state.storage)
        .await
        .and_then(|c| c.calls_secret)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "calls_secret_not_set",
                "the account has no calls secret; create one with POST /v1/account/telephony/calls-secret",
            )
        })?;
    if !generic::verify(secret.as_bytes(), &body, signature) {
        tracing::warn!("a generic call event failed signature verification");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "X-Switchboard-Signature does not match this body",
        ));
    }
    let event: GenericEvent = super::json::parse(&body)?;
    let call_event = event.into_call_event(&route, state.clock.now_ms())?;
    let call_id = call_event.provider_call_id().to_owned();
    let started = matches!(call_event, CallEvent::Started(_));
    let caller = match &call_event {
        CallEvent::Started(c) => c.caller_number.clone(),
        CallEvent::Progress(_) => None,
    };
    if let Err(e) = state.calls.record(call_event).await {
        tracing::error!(error = %e, call_id, "a call event could not be spooled");
        if !started {
            return Err(ApiError::unavailable(e));
        }
    }
    if !started {
        return Ok(HttpResponse::Accepted().json(Accepted { accepted: true }));
    }
    let caller_id = match route.settings.caller_id {
        CallerId::Caller => caller,
        CallerId::TrackingNumber => Some(route.number.clone()),
    };
    Ok(HttpResponse::Ok().json(RoutingAnswer {
        call_id,
        action: "forward",
        forward_to: route.forward_to.clone(),
        timeout_s: route.settings.ring_timeout_s,
        record: route.settings.record,
        caller_id,
    }))
}
