//! A call as the API and the outbound webhooks show it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::from_micros;
use crate::storage::{
    CLICK_ID_COLUMNS, CallAttribution, CallRow, ConversionRow, NewCall, PageViewRow,
};
use crate::time::{Millis, to_datetime};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallView {
    pub id: String,
    pub property_id: String,
    pub pool_id: Option<String>,
    pub provider: String,
    pub provider_call_id: String,
    pub tracking_number: String,
    pub caller: CallerView,
    /// The provider's status: `queued`, `ringing`, `in-progress`, `completed`, `busy`,
    /// `no-answer`, `failed` or `canceled`.
    pub status: String,
    /// `answered` or `missed` once known.
    pub outcome: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The whole call, in seconds.
    pub duration_s: Option<i64>,
    /// Seconds the caller and the business were connected.
    pub talk_s: Option<i64>,
    /// Seconds from the call's arrival to the answer.
    pub answer_s: Option<i64>,
    pub recording: Option<RecordingView>,
    /// A caller's first call in the account (by their number).
    pub first_time: bool,
    /// The caller's first call, when this one is a repeat.
    pub first_call_id: Option<String>,
    /// Null while the call waits for attribution (a second or two).
    pub attribution: Option<AttributionView>,
    /// Whether the completed call met the property's lead rule (null until it completes).
    pub qualified: Option<bool>,
    /// One of the property's dispositions, set by the business.
    pub disposition: Option<String>,
    pub lead_score: Option<i64>,
    /// Customer satisfaction, 1-5.
    pub csat: Option<i64>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CallerView {
    /// E.164; null when withheld or erased.
    pub number: Option<String>,
    pub name: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    /// True once the caller was erased (`DELETE /v1/callers/{e164}`).
    pub erased: bool,
}

impl CallerView {
    pub fn of(c: &NewCall, erased: bool) -> Self {
        Self {
            number: c.caller_number.clone(),
            name: c.caller_name.clone(),
            city: c.caller_city.clone(),
            state: c.caller_state.clone(),
            zip: c.caller_zip.clone(),
            country: c.caller_country.clone(),
            erased,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordingView {
    pub url: String,
    pub sid: Option<String>,
    pub duration_s: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttributionView {
    /// `source`, `exact`, `shared`, `overflow`, `expired` or `none`.
    pub confidence: String,
    pub session_id: Option<String>,
    /// Other sessions that held the number when the call came (confidence `shared`).
    pub other_candidates: Vec<String>,
    /// GA4 channel group, or `Unattributed`.
    pub channel: String,
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub keyword: Option<String>,
    pub content: Option<String>,
    pub landing_page: Option<String>,
    pub referrer: Option<String>,
    /// Ad click ids the visit carried (gclid, msclkid, fbclid, ...).
    pub click_ids: BTreeMap<String, String>,
    pub visitor_city: Option<String>,
    pub visitor_region: Option<String>,
    pub visitor_country: Option<String>,
    /// The visitor's Google Analytics client id (from the `_ga` cookie), when the snippet saw one.
    pub ga_client_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversionView {
    pub id: String,
    pub name: String,
    /// In the property's currency.
    pub value: f64,
    pub at: DateTime<Utc>,
}

impl From<&ConversionRow> for ConversionView {
    fn from(c: &ConversionRow) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            value: from_micros(c.value_micros),
            at: to_datetime(c.at),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PageViewView {
    pub url: String,
    pub viewed_at: DateTime<Utc>,
}

impl From<&PageViewRow> for PageViewView {
    fn from(p: &PageViewRow) -> Self {
        Self {
            url: p.url.clone(),
            viewed_at: to_datetime(p.viewed_at),
        }
    }
}

impl From<&CallAttribution> for AttributionView {
    fn from(a: &CallAttribution) -> Self {
        Self {
            confidence: a.confidence.clone(),
            session_id: a.session_id.clone(),
            other_candidates: a.candidates.clone(),
            channel: a.channel.clone(),
            source: a.source.clone(),
            medium: a.medium.clone(),
            campaign: a.campaign.clone(),
            keyword: a.term.clone(),
            content: a.content.clone(),
            landing_page: a.landing_url.clone(),
            referrer: a.referrer.clone(),
            click_ids: CLICK_ID_COLUMNS
                .iter()
                .zip(&a.click_ids)
                .filter_map(|(name, v)| v.clone().map(|v| ((*name).to_owned(), v)))
                .collect(),
            visitor_city: a.visitor_city.clone(),
            visitor_region: a.visitor_region.clone(),
            visitor_country: a.visitor_country.clone(),
            ga_client_id: a.ga_client_id.clone(),
        }
    }
}

impl From<&CallRow> for CallView {
    fn from(r: &CallRow) -> Self {
        let c = &r.call;
        let time = |t: Option<Millis>| t.map(to_datetime);
        Self {
            id: r.id.clone(),
            property_id: c.property_id.clone(),
            pool_id: c.pool_id.clone(),
            provider: c.provider.clone(),
            provider_call_id: c.provider_call_id.clone(),
            tracking_number: c.tracking_number.clone(),
            caller: CallerView::of(c, r.erased),
            status: c.status.clone(),
            outcome: r.outcome.clone(),
            started_at: to_datetime(c.started_at),
            answered_at: time(r.answered_at),
            ended_at: time(r.ended_at),
            // Twilio reports the whole call's duration only to a number's own status
            // callback; without it, the time from arrival to the end stands in.
            duration_s: r
                .duration_s
                .or_else(|| r.ended_at.map(|end| ((end - c.started_at) / 1000).max(0))),
            talk_s: r.talk_s,
            answer_s: r.answered_at.map(|a| ((a - c.started_at) / 1000).max(0)),
            recording: r.recording_url.clone().map(|url| RecordingView {
                url,
                sid: r.recording_sid.clone(),
                duration_s: r.recording_duration_s,
            }),
            first_time: r.first_call_id.is_none(),
            first_call_id: r.first_call_id.clone(),
            attribution: r.attribution.as_ref().map(AttributionView::from),
            qualified: r.qualified,
            disposition: r.business.disposition.clone(),
            lead_score: r.business.lead_score,
            csat: r.business.csat,
            tags: r.business.tags.clone(),
        }
    }
}
