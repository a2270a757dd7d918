//! GA4 Measurement Protocol: each completed call whose visitor had a Google Analytics client id
//! becomes one event in the property's GA4 stream (`POST {endpoint}?measurement_id=&api_secret=`),
//! queued as the call completes and delivered by the webhook worker: once, retried with the
//! same backoff, never on the path of a provider's webhook.

use reqwest::header::CONTENT_TYPE;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::Webhooks;
use super::worker::{Failure, answer};
use crate::attribution::view::CallView;
use crate::domain::from_micros;
use crate::storage::{CallRow, DueGa4Event, Property, StorageError};

/// GA4 keeps at most this many characters of a text parameter.
const MAX_PARAM_CHARS: usize = 100;

impl Webhooks {
    /// Queues the call's GA4 event if the property sends them and the visitor had a client id;
    /// returns whether one was queued (a call's event is queued once, however often this runs).
    pub async fn enqueue_ga4(
        &self,
        property: &Property,
        call: &CallRow,
    ) -> Result<bool, StorageError> {
        let has_client_id = call
            .attribution
            .as_ref()
            .is_some_and(|a| a.ga_client_id.is_some());
        let Some(settings) = property.ga4.as_ref().filter(|_| has_client_id) else {
            return Ok(false);
        };
        let revenue: i64 = self
            .storage
            .conversions_of_call(&call.id)
            .await?
            .iter()
            .map(|c| c.value_micros)
            .sum();
        let Some(payload) =
            phone_call_event(&settings.event_name, call, revenue, &property.currency)
        else {
            return Ok(false);
        };
        let queued = self
            .storage
            .enqueue_ga4_event(call, &payload, self.clock.now_ms())
            .await?;
        if queued {
            self.wake.notify_one();
        }
        Ok(queued)
    }

    pub(super) async fn send_ga4(&self, event: &DueGa4Event) -> Result<u16, Failure> {
        let Some(target) = &event.target else {
            return Err(Failure {
                status: None,
                error: "the property no longer sends GA4 events".to_owned(),
                detail: None,
                retry: false,
            });
        };
        let mut url = self.permitted_url(&target.endpoint).await?;
        url.query_pairs_mut()
            .append_pair("measurement_id", &target.measurement_id)
            .append_pair("api_secret", target.api_secret.expose_secret());
        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(event.payload.clone())
            .send()
            .await;
        answer(sent).await
    }
}

/// The Measurement Protocol body for a completed call, or None when the visit had no client id.
/// `revenue` (micro-units of `currency`) is sent as the event's value when there is any.
pub fn phone_call_event(
    event_name: &str,
    call: &CallRow,
    revenue: i64,
    currency: &str,
) -> Option<Value> {
    let attribution = call.attribution.as_ref()?;
    let client_id = attribution.ga_client_id.as_deref()?;
    let view = CallView::from(call);
    let flag = |yes: bool| json!(i64::from(yes));
    let mut params = Map::new();
    params.insert("call_id".into(), json!(call.id));
    params.insert("duration_s".into(), json!(view.duration_s.unwrap_or(0)));
    // GA4 has no boolean parameters: 1 or 0 (a custom metric then counts them).
    params.insert(
        "answered".into(),
        flag(view.outcome.as_deref() == Some("answered")),
    );
    params.insert("qualified".into(), flag(call.qualified == Some(true)));
    let text = [
        ("channel", Some(&attribution.channel)),
        ("source", attribution.source.as_ref()),
        ("medium", attribution.medium.as_ref()),
        ("campaign", attribution.campaign.as_ref()),
    ];
    for (name, value) in text {
        if let Some(value) = value {
            let clipped: String = value.chars().take(MAX_PARAM_CHARS).collect();
            params.insert(name.into(), json!(clipped));
        }
    }
    if revenue > 0 {
        params.insert("value".into(), json!(from_micros(revenue)));
        params.insert("currency".into(), json!(currency));
    }
    Some(json!({
        "client_id": client_id,
        "timestamp_micros": call.call.started_at * 1000,
        "events": [{"name": event_name, "params": params}],
    }))
}
