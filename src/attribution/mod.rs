//! Attribution: which visit a call came from. A function of the lease history, the number
//! called and the time the call arrived (invariant 4), so attributing a call again, or after a
//! replay, gives the same answer.
//!
//! The ledger (the `leases` table) is the history. It is written up to a second behind the page
//! views, so the live lease store is asked too: a lease it knows of that the ledger has not
//! written yet makes the call wait for the ledger rather than be attributed without it.

pub mod view;

use std::collections::HashMap;
use std::sync::Arc;

use rand::seq::SliceRandom;

use crate::dni::classify::Channel;
use crate::dni::lease_store::LeaseStore;
use crate::dni::service::Dni;
use crate::domain::PoolKind;
use crate::live::{LiveEvent, LiveHub, LiveKind};
use crate::storage::{
    CLICK_ID_COLUMNS, CallAttribution, CallRow, SessionRow, Storage, StorageError,
};
use crate::time::{Millis, SharedClock};
use crate::webhooks::{CALL_COMPLETED, Webhooks};
use view::CallView;

/// How sure the service is that a call came from the session it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confidence {
    /// A source pool's number: the source is certain, the visit is not tracked.
    Source,
    /// Exactly one session held the number when the call came.
    Exact,
    /// Several sessions shared the number; the most recently active one is named.
    Shared,
    /// The pool's overflow number, shown when every number was leased.
    Overflow,
    /// No lease covered the call; the last session that held the number, within the window.
    Expired,
    /// Nothing to go on: the call is `Unattributed`.
    None,
}

impl Confidence {
    pub const ALL: [Confidence; 6] = [
        Confidence::Source,
        Confidence::Exact,
        Confidence::Shared,
        Confidence::Overflow,
        Confidence::Expired,
        Confidence::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Source => "source",
            Confidence::Exact => "exact",
            Confidence::Shared => "shared",
            Confidence::Overflow => "overflow",
            Confidence::Expired => "expired",
            Confidence::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Confidence::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The channel of calls nothing points to; a report row like any other.
pub const UNATTRIBUTED: &str = "Unattributed";

/// A session whose lease on the number covered the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub session_id: String,
    /// Its last page view at or before the call.
    pub last_active: Millis,
}

/// The verdict for a session pool's number, from the leases around the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub confidence: Confidence,
    pub session_id: Option<String>,
    pub others: Vec<String>,
}

/// Rules 2 and 3: the holders of the number when the call came, else the last session that
/// held it if its lease ended within the window.
pub fn decide(
    mut holders: Vec<Holder>,
    last_ended: Option<(String, Millis)>,
    at: Millis,
    window_ms: Millis,
) -> Verdict {
    // Most recently active first; ties by id, so the answer never depends on query order.
    holders.sort_by(|a, b| {
        b.last_active
            .cmp(&a.last_active)
            .then_with(|| a.session_id.cmp(&b.session_id))
    });
    let mut ids = holders.into_iter().map(|h| h.session_id);
    match ids.next() {
        Some(first) => {
            let others: Vec<String> = ids.collect();
            Verdict {
                confidence: if others.is_empty() {
                    Confidence::Exact
                } else {
                    Confidence::Shared
                },
                session_id: Some(first),
                others,
            }
        }
        None => match last_ended {
            Some((session, ended)) if at - ended <= window_ms => Verdict {
                confidence: Confidence::Expired,
                session_id: Some(session),
                others: Vec::new(),
            },
            _ => Verdict {
                confidence: Confidence::None,
                session_id: None,
                others: Vec::new(),
            },
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AttributionError {
    #[error("storage")]
    Storage(#[from] StorageError),
    #[error("queueing the call.completed webhook: {0}")]
    Webhook(String),
}

pub struct Attributor {
    storage: Storage,
    leases: Arc<LeaseStore>,
    dni: Arc<Dni>,
    clock: SharedClock,
    /// How long after a call to wait before attributing it: long enough for every instance's
    /// ledger to have written the leases that covered it (0 when this instance is the only one).
    settle_ms: Millis,
    /// Attributed and completed calls are announced on the live feed.
    live: Arc<LiveHub>,
}

/// How long a holder's session may stay missing from the database before the call is attributed
/// without it (an instance that died before writing it, and no lease store to recover it from).
const WAIT_FOR_LEDGER_MS: Millis = 60_000;

impl Attributor {
    pub fn new(
        storage: Storage,
        leases: Arc<LeaseStore>,
        dni: Arc<Dni>,
        clock: SharedClock,
        settle_ms: Millis,
        live: Arc<LiveHub>,
    ) -> Self {
        Self {
            storage,
            leases,
            dni,
            clock,
            settle_ms,
            live,
        }
    }

    /// Attributes the calls that are waiting and old enough; returns how many were attributed.
    pub async fn run_pass(&self) -> Result<usize, AttributionError> {
        // This instance's own leases reach the ledger first.
        self.dni.ledger().flush().await;
        let now = self.clock.now_ms();
        let mut done = 0;
        let mut waiting = self
            .storage
            .calls_to_attribute(now - self.settle_ms, 500)
            .await?;
        // Every instance reads the same backlog: each works through it in its own order and
        // skips what another has attributed meanwhile, so the instances share it instead of
        // each attributing every call (an answer depends on the lease history, not the order).
        // The check saves the work of attributing a call another instance has done; the store
        // itself writes only a call that still waits, so two never both store one.
        waiting.shuffle(&mut rand::rng());
        for mut call in waiting {
            if !self.storage.awaits_attribution(&call.id).await? {
                continue;
            }
            if let Some(a) = self.attribute(&call, now).await? {
                if !self.storage.store_attribution(&call, &a, now).await? {
                    continue;
                }
                tracing::info!(
                    call_id = %call.id,
                    confidence = %a.confidence,
                    channel = %a.channel,
                    "call attributed"
                );
                call.attribution = Some(a);
                self.live
                    .publish(&LiveEvent::from_row(LiveKind::Attributed, &call, now));
                done += 1;
            }
        }
        Ok(done)
    }

    /// Completes the calls that ended and are attributed: applies the property's lead rule,
    /// announces `call.completed` to the account's webhooks and queues the call's GA4 event
    /// (both queued before the call is marked, and idempotent by call, so a crash in between
    /// sends each once). Returns how many.
    pub async fn complete_calls(&self, webhooks: &Webhooks) -> Result<usize, AttributionError> {
        let now = self.clock.now_ms();
        let mut completed = 0;
        for mut call in self.storage.calls_to_complete(200).await? {
            let property = match self.storage.property_by_id(&call.call.property_id).await {
                Ok(p) => Some(p),
                Err(StorageError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            let rule = property
                .as_ref()
                .map(|p| p.lead_rule.clone())
                .unwrap_or_default();
            let answered = call.outcome.as_deref() == Some("answered");
            let talk = call.talk_s.or(call.duration_s).unwrap_or(0);
            let qualified = rule.qualifies(answered, talk, call.first_call_id.is_none());
            self.storage.set_qualified(&call.id, qualified, now).await?;
            call.qualified = Some(qualified);
            let payload = serde_json::to_value(CallView::from(&call)).expect("a call serialises");
            webhooks
                .enqueue(
                    &call.call.account_id,
                    CALL_COMPLETED,
                    &format!("{CALL_COMPLETED}:{}", call.id),
                    &payload,
                )
                .await
                .map_err(|e| AttributionError::Webhook(e.to_string()))?;
            if let Some(property) = &property {
                webhooks.enqueue_ga4(property, &call).await?;
            }
            if self.storage.mark_completed(&call.id, now).await? {
                completed += 1;
                self.live
                    .publish(&LiveEvent::from_row(LiveKind::Completed, &call, now));
            }
        }
        Ok(completed)
    }

    /// The attribution of one call, or None when it must wait for the ledger.
    pub async fn attribute(
        &self,
        call: &CallRow,
        now: Millis,
    ) -> Result<Option<CallAttribution>, AttributionError> {
        let c = &call.call;
        let at = c.started_at;
        let Some(pool_id) = c.pool_id.as_deref() else {
            return Ok(Some(unattributed()));
        };
        let (property, pool) = match (
            self.storage.property_by_id(&c.property_id).await,
            self.storage.pool(&c.account_id, pool_id).await,
        ) {
            (Ok(p), Ok(pool)) => (p, pool),
            (Err(StorageError::NotFound), _) | (_, Err(StorageError::NotFound)) => {
                return Ok(Some(unattributed()));
            }
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        let window_ms = i64::from(property.call_settings.attribution_window_hours) * 3_600_000;
        let number = c.tracking_number.as_str();

        // Rule 1 (and the overflow number): numbers shown without a lease. The source is
        // certain; the visit is the last one shown the number, if any.
        let pool_channel = pool
            .matcher
            .channel
            .as_deref()
            .and_then(Channel::parse)
            .map(|ch| ch.as_str().to_owned());
        let lease_ms = pool.lease_minutes * 60_000;
        let unleased = if pool.kind == PoolKind::Source {
            Some((Confidence::Source, window_ms))
        } else if pool.overflow_number.as_deref() == Some(number) {
            Some((Confidence::Overflow, lease_ms))
        } else {
            None
        };
        if let Some((confidence, lookback)) = unleased {
            let session = self
                .storage
                .last_session_shown(&c.property_id, number, at - lookback, at)
                .await?;
            let mut a = match &session {
                Some(s) => from_session(s),
                None => unattributed(),
            };
            a.confidence = confidence.as_str().to_owned();
            // What the pool matches on is certain; fill it over the guess.
            if let Some(ch) = pool_channel {
                a.channel = ch;
            }
            let m = &pool.matcher;
            if confidence == Confidence::Source {
                a.source = m.source.clone().or(a.source);
                a.medium = m.medium.clone().or(a.medium);
                a.campaign = m.campaign.clone().or(a.campaign);
            }
            return Ok(Some(a));
        }

        // Rules 2 and 3: the leases around the call, from the ledger and the live store.
        let mut ids: Vec<String> = self
            .storage
            .leases_covering(pool_id, number, at)
            .await?
            .into_iter()
            .map(|l| l.session_id)
            .collect();
        match self.leases.holders(pool_id, number, at).await {
            Ok(live) => {
                for sid in live {
                    if !ids.contains(&sid) {
                        ids.push(sid);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "lease store not consulted; the ledger alone decides");
            }
        }
        // A holder whose session row is missing: its instance's ledger has not written it yet,
        // or the instance died first and another recovers it from the lease store. Wait for it
        // (a lease row can come first: another instance's page view of the session writes one).
        let mut sessions = HashMap::with_capacity(ids.len());
        for sid in ids {
            match self.storage.session(&sid).await? {
                Some(row) => {
                    sessions.insert(sid, row);
                }
                None if now - at < self.settle_ms + WAIT_FOR_LEDGER_MS => return Ok(None),
                None => {}
            }
        }
        let mut holders = Vec::with_capacity(sessions.len());
        for sid in sessions.keys().cloned() {
            let last_active = self.storage.last_page_view_by(&sid, at).await?.unwrap_or(0);
            holders.push(Holder {
                session_id: sid,
                last_active,
            });
        }
        let last_ended = if holders.is_empty() {
            self.storage
                .last_lease_ended_by(pool_id, number, at)
                .await?
                .map(|l| (l.session_id, l.ends_at))
        } else {
            None
        };
        let verdict = decide(holders, last_ended, at, window_ms);
        let chosen = match &verdict.session_id {
            Some(sid) => match sessions.remove(sid) {
                Some(s) => Some(s),
                // The last lease that ended: its session was not read above.
                None => self.storage.session(sid).await?,
            },
            None => None,
        };
        let mut a = chosen.as_ref().map_or_else(unattributed, from_session);
        a.confidence = verdict.confidence.as_str().to_owned();
        a.candidates = verdict.others;
        Ok(Some(a))
    }
}

fn unattributed() -> CallAttribution {
    CallAttribution {
        confidence: Confidence::None.as_str().to_owned(),
        channel: UNATTRIBUTED.to_owned(),
        ..CallAttribution::default()
    }
}

fn from_session(s: &SessionRow) -> CallAttribution {
    debug_assert_eq!(s.click_ids.len(), CLICK_ID_COLUMNS.len());
    CallAttribution {
        confidence: String::new(),
        session_id: Some(s.id.clone()),
        candidates: Vec::new(),
        channel: s.channel.clone(),
        source: Some(s.source.clone()),
        medium: Some(s.medium.clone()),
        campaign: s.campaign.clone(),
        term: s.term.clone(),
        content: s.content.clone(),
        // Empty for a session recovered from the lease store (its landing page was lost).
        landing_url: (!s.landing_url.is_empty()).then(|| s.landing_url.clone()),
        referrer: s.referrer.clone(),
        click_ids: s.click_ids.clone(),
        visitor_city: s.visitor_city.clone(),
        visitor_region: s.visitor_region.clone(),
        visitor_country: s.visitor_country.clone(),
        ga_client_id: s.ga_client_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Millis = 3_600_000;

    fn holder(id: &str, last_active: Millis) -> Holder {
        Holder {
            session_id: id.into(),
            last_active,
        }
    }

    #[test]
    fn one_holder_is_exact() {
        let v = decide(vec![holder("s1", 10)], None, 100, 24 * H);
        assert_eq!(v.confidence, Confidence::Exact);
        assert_eq!(v.session_id.as_deref(), Some("s1"));
        assert!(v.others.is_empty());
    }

    #[test]
    fn a_shared_number_names_the_most_recently_active_and_keeps_the_others() {
        let v = decide(
            vec![holder("s1", 10), holder("s3", 50), holder("s2", 50)],
            None,
            100,
            24 * H,
        );
        assert_eq!(v.confidence, Confidence::Shared);
        assert_eq!(v.session_id.as_deref(), Some("s2"), "ties break by id");
        assert_eq!(v.others, ["s3", "s1"]);
    }

    #[test]
    fn a_lease_that_ended_within_the_window_is_expired_and_after_it_none() {
        let ended = Some(("s1".to_owned(), 1_000));
        let v = decide(vec![], ended.clone(), 1_000 + 24 * H, 24 * H);
        assert_eq!(v.confidence, Confidence::Expired);
        assert_eq!(v.session_id.as_deref(), Some("s1"));
        let v = decide(vec![], ended, 1_001 + 24 * H, 24 * H);
        assert_eq!(v.confidence, Confidence::None);
        assert_eq!(v.session_id, None);
        assert_eq!(decide(vec![], None, 5, H).confidence, Confidence::None);
    }

    #[test]
    fn confidence_names_round_trip() {
        for c in Confidence::ALL {
            assert_eq!(Confidence::parse(c.as_str()), Some(c));
        }
    }
}
