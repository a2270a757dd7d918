//! Alerts: each property's rules (pool utilisation, pool exhaustion, missed calls, no calls in
//! business hours), evaluated every few seconds and announced through the account's outbound
//! webhooks. Properties are sharded across instances (`work::ALERTS`): each instance's
//! background pass evaluates the properties of the shards it holds.
//!
//! An alert is announced once per episode: its state is kept in the database, it fires with a
//! conditional write that one instance wins, and its event is queued in the same transaction,
//! keyed by the episode (so retries and other instances add nothing). Once its condition has
//! stayed clear for [`RESOLVE_AFTER_MS`], an `alert.resolved` event ends the episode and the
//! rule is armed again; a condition that flickers back within that time stays one episode.

pub mod hours;
pub mod rules;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::dni::service::Dni;
use crate::storage::{AlertKey, AlertState, Storage, StorageError, WatchedProperty};
use crate::telemetry::Outage;
use crate::time::{Millis, SharedClock, to_datetime};
use crate::webhooks::{EnqueueError, Webhooks};
use crate::work::{ALERTS, SharedWork, shard_of};
use rules::{Observation, PoolReading, Rule, Verdict};

/// The event that ends an episode, whatever its rule.
pub const RESOLVED: &str = "alert.resolved";
/// How long a firing alert's condition must stay clear before it is resolved.
pub const RESOLVE_AFTER_MS: Millis = 10 * 60_000;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Event(#[from] EnqueueError),
}

pub struct Alerts {
    storage: Storage,
    dni: Arc<Dni>,
    webhooks: Arc<Webhooks>,
    clock: SharedClock,
    /// One pass at a time on this instance: `evaluate_now` returns once every event of a pass
    /// under way when it was called is queued (tests rely on it).
    pass: Mutex<()>,
    evaluated: AtomicU64,
}

impl Alerts {
    pub fn new(
        storage: Storage,
        dni: Arc<Dni>,
        webhooks: Arc<Webhooks>,
        clock: SharedClock,
    ) -> Self {
        Self {
            storage,
            dni,
            webhooks,
            clock,
            pass: Mutex::new(()),
            evaluated: AtomicU64::new(0),
        }
    }

    /// Evaluates every property's rules at the clock's time and queues the events of the
    /// alerts this instance fired or resolved; returns how many.
    pub async fn evaluate_now(&self) -> Result<usize, AlertError> {
        self.evaluate_where(|_| true).await
    }

    /// The background pass: the properties whose shard this instance holds.
    pub async fn evaluate_shared(&self, work: &SharedWork) -> Result<usize, AlertError> {
        let held = work.held(ALERTS);
        if held.is_empty() {
            return Ok(0);
        }
        self.evaluate_where(|id| held.contains(&shard_of(ALERTS, id)))
            .await
    }

    /// Properties evaluated by this instance since it started (`/metrics`, tests).
    pub fn properties_evaluated(&self) -> u64 {
        self.evaluated.load(Ordering::Relaxed)
    }

    async fn evaluate_where(&self, mine: impl Fn(&str) -> bool) -> Result<usize, AlertError> {
        let _one_pass = self.pass.lock().await;
        // This instance's page views reach the ledger first (exhaustion events, leases).
        self.dni.ledger().flush().await;
        let now = self.clock.now_ms();
        let mut announced = 0;
        for property in self.storage.watched_properties().await? {
            if mine(&property.id) {
                announced += self.evaluate(&property, now).await?;
                self.evaluated.fetch_add(1, Ordering::Relaxed);
            }
        }
        if announced > 0 {
            self.webhooks.queued();
        }
        Ok(announced)
    }

    /// Runs a pass over this instance's shards every `every`, backing off while the database
    /// is away.
    pub fn start(
        self: &Arc<Self>,
        every: Duration,
        work: Arc<SharedWork>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut outage = Outage::default();
            let mut failures = 0;
            loop {
                tokio::time::sleep(every * failures.clamp(1, 5)).await;
                failures = outage.record(
                    me.evaluate_shared(&work).await,
                    "alert rules wait: the database is unavailable",
                );
            }
        })
    }

    async fn evaluate(&self, property: &WatchedProperty, now: Millis) -> Result<usize, AlertError> {
        let counts = self
            .storage
            .session_pool_counts(&property.id, now - rules::EXHAUSTION_WINDOW_MS)
            .await?;
        let mut pools = Vec::with_capacity(counts.len());
        for pool in counts {
            let leased = self.dni.leased_now(&pool.id, now).await?;
            pools.push(PoolReading { pool, leased });
        }
        let calls = self
            .storage
            .call_activity(&property.id, now - rules::MISSED_CALLS_WINDOW_MS)
            .await?;
        let observations = rules::observe(property, &pools, &calls, now);
        let states = self.storage.alert_states(&property.id).await?;
        let mut announced = 0;
        for o in &observations {
            let state = states
                .iter()
                .find(|s| s.rule == o.rule.name() && s.subject == o.subject);
            announced += usize::from(self.step(property, o, state, now).await?);
        }
        // A firing alert nothing observes any more (its pool was removed): its condition is gone.
        for state in states.iter().filter(|s| s.firing) {
            let observed = observations
                .iter()
                .any(|o| o.rule.name() == state.rule && o.subject == state.subject);
            if let (false, Some(rule)) = (observed, Rule::parse(&state.rule)) {
                let mut gone = Observation {
                    rule,
                    subject: state.subject.clone(),
                    verdict: Verdict::Clear,
                    facts: Default::default(),
                };
                if matches!(rule, Rule::PoolUtilisation | Rule::Exhaustion) {
                    gone.facts
                        .insert("pool".into(), json!({"id": state.subject}));
                }
                announced += usize::from(self.step(property, &gone, Some(state), now).await?);
            }
        }
        Ok(announced)
    }

    /// Moves one alert along: fires it, notes its condition clearing (or holding again), or
    /// resolves it. True when this instance announced an event.
    async fn step(
        &self,
        property: &WatchedProperty,
        o: &Observation,
        state: Option<&AlertState>,
        now: Millis,
    ) -> Result<bool, AlertError> {
        let key = AlertKey {
            property_id: &property.id,
            rule: o.rule.name(),
            subject: &o.subject,
        };
        let firing = state.filter(|s| s.firing);
        match (firing, o.verdict) {
            (None, Verdict::Breached) => {
                let data = payload(property, o, "firing", now, None);
                let id = format!("{}:{}:{now}", o.rule.event_type(), o.subject);
                let event = Webhooks::event(&property.account_id, o.rule.event_type(), &id, &data)?;
                let fired = self.storage.fire_alert(key, now, &event).await?;
                if fired {
                    tracing::info!(property_id = %property.id, rule = o.rule.name(), subject = %o.subject, "alert fired");
                }
                Ok(fired)
            }
            (Some(s), Verdict::Breached) if s.clear_since.is_some() => {
                self.storage.mark_alert_clear(key, None).await?;
                Ok(false)
            }
            (Some(s), Verdict::Clear) => match s.clear_since {
                None => {
                    self.storage.mark_alert_clear(key, Some(now)).await?;
                    Ok(false)
                }
                Some(clear) if now - clear >= RESOLVE_AFTER_MS => {
                    let data = payload(property, o, "resolved", s.since, Some(now));
                    let id = format!("{RESOLVED}:{}:{}:{}", o.rule.name(), o.subject, s.since);
                    let event = Webhooks::event(&property.account_id, RESOLVED, &id, &data)?;
                    let resolved = self
                        .storage
                        .resolve_alert(key, s.since, now - RESOLVE_AFTER_MS, now, &event)
                        .await?;
                    if resolved {
                        tracing::info!(property_id = %property.id, rule = o.rule.name(), subject = %o.subject, "alert resolved");
                    }
                    Ok(resolved)
                }
                Some(_) => Ok(false),
            },
            _ => Ok(false),
        }
    }
}

/// An alert event's `data`: the rule, the property, the episode's times and what was measured.
fn payload(
    property: &WatchedProperty,
    o: &Observation,
    state: &str,
    started_at: Millis,
    resolved_at: Option<Millis>,
) -> Value {
    let mut data = o.facts.clone();
    data.insert("rule".into(), json!(o.rule.name()));
    data.insert("state".into(), json!(state));
    data.insert(
        "property".into(),
        json!({"id": property.id, "name": property.name}),
    );
    data.insert("started_at".into(), json!(to_datetime(started_at)));
    if let Some(at) = resolved_at {
        data.insert("resolved_at".into(), json!(to_datetime(at)));
    }
    Value::Object(data)
}
