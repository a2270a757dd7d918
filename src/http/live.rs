//! `GET /v1/properties/{id}/live`: the property's calls as they happen, as Server-Sent Events.
//! Each event is one JSON object on a `data:` line (see `crate::live::LiveEvent`); a comment
//! line every 15 s keeps proxies from closing a quiet connection.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, get, web};
use futures_util::stream;

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::properties::property_of;
use crate::live::{Next, Subscription};

const HEARTBEAT: Duration = Duration::from_secs(15);

#[utoipa::path(
    tag = "calls",
    params(("id" = String, Path, description = "Property id")),
    responses(
        (status = 200, description = "Server-Sent Events: one `data:` line of JSON per event, `type` one of `ringing`, `in_progress`, `ended`, `updated`, `attributed`, `completed`; a comment every 15 s", content_type = "text/event-stream", body = String),
        (status = 404, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}/live")]
pub async fn live_feed(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let property = property_of(&state, &account, &id).await?;
    let subscription = state.live.subscribe(&property.id);
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        // nginx would buffer the stream otherwise.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(events(subscription)))
}

/// The SSE body: a first comment (so the client knows it is connected), then events and
/// heartbeats until the instance shuts down or the client leaves.
fn events(
    subscription: Subscription,
) -> impl futures_util::Stream<Item = Result<web::Bytes, Infallible>> {
    let start = tokio::time::Instant::now() + HEARTBEAT;
    let heartbeat = tokio::time::interval_at(start, HEARTBEAT);
    let first = web::Bytes::from_static(b"retry: 3000\n: connected\n\n");
    stream::unfold(
        (subscription, heartbeat, Some(first)),
        |(mut sub, mut heartbeat, first)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, Infallible>(first), (sub, heartbeat, None)));
            }
            let chunk = tokio::select! {
                next = sub.next() => match next {
                    Next::Event(json) => format!("data: {json}\n\n"),
                    Next::Missed(n) => format!(": {n} events missed\n\n"),
                    Next::End => return None,
                },
                _ = heartbeat.tick() => ": heartbeat\n\n".to_owned(),
            };
            Some((Ok(web::Bytes::from(chunk)), (sub, heartbeat, None)))
        },
    )
}
