//! Attribution: which visit a call came from. A function of the lease history, the number
//! called and the time the call arrived (invariant 4), so attributing a call again, or after a
//! replay, gives the same answer.
//!
//! The ledger (the `leases` table) is the history. It is written up to a second behind the page
//! views, so the live lease store is asked too: a lease it knows of that the ledger has not
//! written yet makes the call wait for the ledger rather than be attributed without it.

pub mod view;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::dni::classify::Channel;
use crate::dni::lease_store::LeaseStore;
use crate::dni::service::Dni;
use crate::domain::PoolKind;
use crate::live::{LiveEvent, LiveHub, LiveKind};
use crate::storage::{
    AttributionKey as Key, CLICK_ID_COLUMNS, CallAttribution, CallRow, ClaimPhase, Pool, Property,
    SessionRow, Storage, StorageError,
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
    /// The caller called this number before, and that call was attributed to a visit: they
    /// most likely redialled it from their phone's history, so the call goes to that visit,
    /// whoever holds the number now (named among the other candidates).
    Repeat,
    /// Nothing to go on: the call is `Unattributed`.
    None,
}

impl Confidence {
    pub const ALL: [Confidence; 7] = [
        Confidence::Source,
        Confidence::Exact,
        Confidence::Shared,
        Confidence::Overflow,
        Confidence::Expired,
        Confidence::Repeat,
        Confidence::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Source => "source",
            Confidence::Exact => "exact",
            Confidence::Shared => "shared",
            Confidence::Overflow => "overflow",
            Confidence::Expired => "expired",
            Confidence::Repeat => "repeat",
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

/// How far back a caller's earlier calls count as their history.
pub const HISTORY_MS: Millis = 90 * 86_400_000;

/// The caller's history decides before the leases do: a caller who called this number before,
/// from a visit, is calling back from their phone's history (`Repeat`), unless that visit's
/// session holds the number now (then the leases' verdict stands: it is the same visit).
pub fn with_history(verdict: Verdict, holders: &[String], earlier: Option<&str>) -> Verdict {
    let Some(earlier) = earlier else {
        return verdict;
    };
    if verdict.confidence == Confidence::Exact && verdict.session_id.as_deref() == Some(earlier) {
        return verdict;
    }
    let mut others: Vec<String> = holders.iter().filter(|h| *h != earlier).cloned().collect();
    if let Some(named) = verdict
        .session_id
        .filter(|s| s != earlier && !others.contains(s))
    {
        others.push(named);
    }
    Verdict {
        confidence: Confidence::Repeat,
        session_id: Some(earlier.to_owned()),
        others,
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
/// How much longer than the settle time a call that no session held waits before the ledger's
/// past alone decides it (`expired` or `none`), when several instances share the work.
const NO_HOLDER_GRACE_MS: Millis = 5_000;
/// Calls claimed at once.
const BATCH: i64 = 500;
/// How long a claim keeps other instances off a batch: far longer than a batch takes, and short
/// enough that a dead instance's batch is soon taken by another.
const CLAIM_MS: Millis = 30_000;
/// When a call that waits for the ledger is tried again.
const RETRY_WAITING_MS: Millis = 500;
/// How long one pass attributes before the spool's replay gets its turn.
const PASS_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

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

    /// Attributes the calls that are waiting and old enough, a claimed batch at a time, until
    /// none is left or the pass has run for `PASS_LIMIT` (the spool's replay runs between
    /// passes); returns how many were attributed.
    pub async fn run_pass(&self) -> Result<usize, AttributionError> {
        // This instance's own leases reach the ledger first.
        self.dni.ledger().flush().await;
        self.in_claimed_batches(Work::Attribute, self.settle_ms)
            .await
    }

    /// Claims batches of calls due for `work` (started at least `settle_ms` ago) and does it,
    /// until none is left or `PASS_LIMIT` has passed; a batch whose work fails is released at
    /// once for another pass (or instance). Returns how many calls were done.
    async fn in_claimed_batches(
        &self,
        work: Work<'_>,
        settle_ms: Millis,
    ) -> Result<usize, AttributionError> {
        let phase = match work {
            Work::Attribute => ClaimPhase::Attribution,
            Work::Complete(_) => ClaimPhase::Completion,
        };
        let started = std::time::Instant::now();
        let mut done = 0;
        loop {
            let now = self.clock.now_ms();
            let wall = wall_clock_ms();
            let batch = self
                .storage
                .claim_calls(phase, now - settle_ms, wall, wall + CLAIM_MS, BATCH)
                .await?;
            if batch.is_empty() {
                break;
            }
            let full = batch.len() as i64 == BATCH;
            let result = match work {
                Work::Attribute => self.attribute_batch_and_store(&batch, now).await,
                Work::Complete(webhooks) => self.complete_batch(&batch, webhooks, now).await,
            };
            match result {
                Ok(n) => done += n,
                Err(e) => {
                    let ids: Vec<String> = batch.iter().map(|c| c.id.clone()).collect();
                    let _ = self.storage.release_claims(&ids, 0).await;
                    return Err(e);
                }
            }
            if !full || started.elapsed() >= PASS_LIMIT {
                break;
            }
        }
        Ok(done)
    }

    /// Decides a claimed batch, stores what is decided and announces it; calls that must wait
    /// for the ledger step aside until `RETRY_WAITING_MS` from now. Returns how many were stored.
    async fn attribute_batch_and_store(
        &self,
        batch: &[CallRow],
        now: Millis,
    ) -> Result<usize, AttributionError> {
        let decisions = self.attribute_batch(batch, now).await?;
        let mut decided = Vec::with_capacity(batch.len());
        let mut waiting = Vec::new();
        for (call, decision) in batch.iter().zip(decisions) {
            match decision {
                Some(a) => decided.push((call, a)),
                None => waiting.push(call.id.clone()),
            }
        }
        if !waiting.is_empty() {
            tracing::debug!(calls = waiting.len(), "calls wait for the ledger");
            self.storage
                .release_claims(&waiting, wall_clock_ms() + RETRY_WAITING_MS)
                .await?;
        }
        let stored: std::collections::HashSet<String> = self
            .storage
            .store_attributions(&decided, now)
            .await?
            .into_iter()
            .collect();
        for (call, a) in decided {
            if !stored.contains(&call.id) {
                continue;
            }
            tracing::info!(
                call_id = %call.id,
                confidence = %a.confidence,
                channel = %a.channel,
                "call attributed"
            );
            let mut call = call.clone();
            call.attribution = Some(a);
            self.live
                .publish(&LiveEvent::from_row(LiveKind::Attributed, &call, now));
        }
        Ok(stored.len())
    }

    /// Completes the calls that ended and are attributed, a claimed batch at a time: applies
    /// the property's lead rule, announces `call.completed` to the account's webhooks and
    /// queues the call's GA4 event (both queued before the calls are marked, and idempotent by
    /// call, so a crash in between sends each once), then marks the batch in one statement.
    /// Returns how many.
    pub async fn complete_calls(&self, webhooks: &Webhooks) -> Result<usize, AttributionError> {
        // Every ended call is due, however recent.
        self.in_claimed_batches(Work::Complete(webhooks), Millis::MIN / 2)
            .await
    }

    async fn complete_batch(
        &self,
        batch: &[CallRow],
        webhooks: &Webhooks,
        now: Millis,
    ) -> Result<usize, AttributionError> {
        let property_ids: BTreeSet<String> =
            batch.iter().map(|c| c.call.property_id.clone()).collect();
        let properties: HashMap<String, Property> = self
            .storage
            .properties_by_ids(&property_ids)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let mut decided = Vec::with_capacity(batch.len());
        for call in batch {
            let property = properties.get(&call.call.property_id);
            let rule = property.map(|p| p.lead_rule.clone()).unwrap_or_default();
            let answered = call.outcome.as_deref() == Some("answered");
            let talk = call.talk_s.or(call.duration_s).unwrap_or(0);
            let qualified = rule.qualifies(answered, talk, call.first_call_id.is_none());
            let mut call = call.clone();
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
            if let Some(property) = property {
                webhooks.enqueue_ga4(property, &call).await?;
            }
            decided.push((call, qualified));
        }
        let rows: Vec<(&CallRow, bool)> = decided.iter().map(|(c, q)| (c, *q)).collect();
        let done: std::collections::HashSet<String> = self
            .storage
            .store_completions(&rows, now)
            .await?
            .into_iter()
            .collect();
        for (call, _) in &decided {
            if done.contains(&call.id) {
                self.live
                    .publish(&LiveEvent::from_row(LiveKind::Completed, call, now));
            }
        }
        Ok(done.len())
    }

    /// The attribution of one call, or None when it must wait for the ledger.
    pub async fn attribute(
        &self,
        call: &CallRow,
        now: Millis,
    ) -> Result<Option<CallAttribution>, AttributionError> {
        let mut decided = self
            .attribute_batch(std::slice::from_ref(call), now)
            .await?;
        Ok(decided.pop().flatten())
    }

    /// The attributions of a batch of calls, in order (None: the call must wait for the
    /// ledger). What the rules need is read for the whole batch in a handful of statements.
    pub async fn attribute_batch(
        &self,
        calls: &[CallRow],
        now: Millis,
    ) -> Result<Vec<Option<CallAttribution>>, AttributionError> {
        let property_ids: BTreeSet<String> = calls
            .iter()
            .filter(|c| c.call.pool_id.is_some())
            .map(|c| c.call.property_id.clone())
            .collect();
        let pool_ids: BTreeSet<String> = calls
            .iter()
            .filter_map(|c| c.call.pool_id.clone())
            .collect();
        let properties: HashMap<String, Property> = self
            .storage
            .properties_by_ids(&property_ids)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let pools: HashMap<String, Pool> = self
            .storage
            .pools_by_ids(&pool_ids)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();

        // Each call's rule, and what it asks of the ledger.
        let mut plans = Vec::with_capacity(calls.len());
        let mut shown_asks = Vec::new();
        let mut lease_asks = Vec::new();
        for (k, call) in calls.iter().enumerate() {
            let c = &call.call;
            let k = k as Key;
            let (Some(pool), Some(property)) = (
                c.pool_id.as_deref().and_then(|id| pools.get(id)),
                properties.get(&c.property_id),
            ) else {
                plans.push(Plan::Unattributed);
                continue;
            };
            // A pool of another account is none of this call's business.
            if pool.account_id != c.account_id || property.account_id != c.account_id {
                plans.push(Plan::Unattributed);
                continue;
            }
            let window_ms = i64::from(property.call_settings.attribution_window_hours) * 3_600_000;
            let number = c.tracking_number.as_str();
            let at = c.started_at;
            // Rule 1 (and the overflow number): numbers shown without a lease.
            let unleased = if pool.kind == PoolKind::Source {
                Some((Confidence::Source, window_ms))
            } else if pool.overflow_number.as_deref() == Some(number) {
                Some((Confidence::Overflow, pool.lease_minutes * 60_000))
            } else {
                None
            };
            match unleased {
                Some((confidence, lookback)) => {
                    shown_asks.push((k, c.property_id.as_str(), number, at - lookback, at));
                    plans.push(Plan::Unleased { pool, confidence });
                }
                None => {
                    lease_asks.push((k, pool.id.as_str(), number, at));
                    plans.push(Plan::Leased { window_ms });
                }
            }
        }

        // The callers' history: each caller's latest earlier call to the same number.
        let history_asks: Vec<_> = plans
            .iter()
            .enumerate()
            .filter(|(_, plan)| matches!(plan, Plan::Leased { .. }))
            .filter_map(|(k, _)| {
                let c = &calls[k].call;
                let caller = c.caller_number.as_deref()?;
                Some((
                    k as Key,
                    c.account_id.as_str(),
                    c.property_id.as_str(),
                    c.tracking_number.as_str(),
                    caller,
                    c.started_at - HISTORY_MS,
                    c.started_at,
                ))
            })
            .collect();
        let history: HashMap<Key, (String, Millis)> = self
            .storage
            .caller_history_each(&history_asks)
            .await?
            .into_iter()
            .map(|(k, sid, at)| (k, (sid, at)))
            .collect();

        // Rules 2 and 3: the leases around each call, from the ledger and the live store.
        let shown = self.storage.last_session_shown_each(&shown_asks).await?;
        let mut holder_ids: HashMap<Key, Vec<String>> = HashMap::new();
        for (k, sid) in self.storage.leases_covering_each(&lease_asks).await? {
            holder_ids.entry(k).or_default().push(sid);
        }
        let live = futures_util::future::join_all(
            lease_asks.iter().map(|(k, pool, number, at)| async move {
                (*k, self.leases.holders(pool, number, *at).await)
            }),
        )
        .await;
        for (k, found) in live {
            match found {
                Ok(sids) => {
                    let ids = holder_ids.entry(k).or_default();
                    for sid in sids {
                        if !ids.contains(&sid) {
                            ids.push(sid);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "lease store not consulted; the ledger alone decides");
                }
            }
        }
        let wanted: BTreeSet<String> = holder_ids
            .values()
            .flatten()
            .cloned()
            .chain(shown.iter().map(|(_, sid)| sid.clone()))
            .chain(history.values().map(|(sid, _)| sid.clone()))
            .collect();
        let mut sessions: HashMap<String, SessionRow> = self
            .storage
            .sessions_by_ids(&wanted)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();

        // A holder whose session row is missing: its instance's ledger has not written it yet,
        // or the instance died first and another recovers it from the lease store. The call
        // waits for it (a lease row can come first: another instance's page view of the
        // session writes one), up to a limit.
        let mut waits = vec![false; calls.len()];
        let mut activity_asks = Vec::new();
        let mut ended_asks = Vec::new();
        for &(k, pool, number, at) in &lease_asks {
            let ids = holder_ids.get(&k).map(Vec::as_slice).unwrap_or_default();
            if ids.iter().any(|sid| !sessions.contains_key(sid))
                && now - at < self.settle_ms + WAIT_FOR_LEDGER_MS
            {
                waits[k as usize] = true;
                continue;
            }
            let present: Vec<&String> = ids
                .iter()
                .filter(|sid| sessions.contains_key(*sid))
                .collect();
            if present.is_empty() {
                // No holder anywhere. With several instances another's ledger may be later
                // than the settle time allows (a machine under load, a lease store that just
                // restarted empty): the ledger's past alone decides only after a while more.
                if self.settle_ms > 0 && now - at < self.settle_ms + NO_HOLDER_GRACE_MS {
                    waits[k as usize] = true;
                    continue;
                }
                ended_asks.push((k, pool, number, at));
            }
            for sid in present {
                activity_asks.push((k, sid.as_str(), at));
            }
        }
        // Keyed by position in `activity_asks`, so each (call, holder) has its own answer.
        let keyed: Vec<(Key, &str, Millis)> = activity_asks
            .iter()
            .enumerate()
            .map(|(n, (_, sid, at))| (n as Key, *sid, *at))
            .collect();
        let mut last_active: HashMap<Key, Millis> = HashMap::new();
        for (n, last) in self.storage.last_page_view_each(&keyed).await? {
            last_active.insert(n, last);
        }
        let mut holders: HashMap<Key, Vec<Holder>> = HashMap::new();
        for (n, (k, sid, _)) in activity_asks.iter().enumerate() {
            holders.entry(*k).or_default().push(Holder {
                session_id: (*sid).to_owned(),
                last_active: last_active.get(&(n as Key)).copied().unwrap_or(0),
            });
        }
        let ended: HashMap<Key, (String, Millis)> = self
            .storage
            .last_lease_ended_each(&ended_asks)
            .await?
            .into_iter()
            .map(|(k, sid, ends_at)| (k, (sid, ends_at)))
            .collect();
        let unread: BTreeSet<String> = ended
            .values()
            .map(|(sid, _)| sid.clone())
            .filter(|sid| !sessions.contains_key(sid))
            .collect();
        sessions.extend(
            self.storage
                .sessions_by_ids(&unread)
                .await?
                .into_iter()
                .map(|s| (s.id.clone(), s)),
        );
        let shown: HashMap<Key, String> = shown.into_iter().collect();

        // Decided in call order, so that a caller's earlier call in this same batch is their
        // history for the later one.
        let mut order: Vec<usize> = (0..calls.len()).collect();
        order.sort_by_key(|&k| (calls[k].call.started_at, k));
        let mut in_batch: HashMap<(&str, &str, &str), (String, Millis)> = HashMap::new();
        let mut decided: Vec<Option<CallAttribution>> = vec![None; calls.len()];
        let mut plans: Vec<Option<Plan>> = plans.into_iter().map(Some).collect();
        for k in order {
            let key = k as Key;
            let c = &calls[k].call;
            let at = c.started_at;
            decided[k] = match plans[k].take().expect("each plan once") {
                Plan::Unattributed => Some(unattributed()),
                Plan::Unleased { pool, confidence } => Some(unleased_attribution(
                    pool,
                    confidence,
                    shown.get(&key).and_then(|sid| sessions.get(sid)),
                )),
                Plan::Leased { .. } if waits[k] => None,
                Plan::Leased { window_ms } => {
                    let holders = holders.remove(&key).unwrap_or_default();
                    let holder_ids: Vec<String> =
                        holders.iter().map(|h| h.session_id.clone()).collect();
                    let verdict = decide(holders, ended.get(&key).cloned(), at, window_ms);
                    let caller_key = c
                        .caller_number
                        .as_deref()
                        .map(|caller| (c.property_id.as_str(), c.tracking_number.as_str(), caller));
                    let earlier = [
                        history.get(&key),
                        caller_key.as_ref().and_then(|ck| in_batch.get(ck)),
                    ]
                    .into_iter()
                    .flatten()
                    .filter(|(sid, _)| sessions.contains_key(sid))
                    .max_by_key(|(_, at)| *at)
                    .map(|(sid, _)| sid.clone());
                    let verdict = with_history(verdict, &holder_ids, earlier.as_deref());
                    if let (Some(ck), Some(sid)) = (caller_key, &verdict.session_id) {
                        in_batch.insert(ck, (sid.clone(), at));
                    }
                    let chosen = verdict
                        .session_id
                        .as_ref()
                        .and_then(|sid| sessions.get(sid));
                    let mut a = chosen.map_or_else(unattributed, from_session);
                    a.confidence = verdict.confidence.as_str().to_owned();
                    a.candidates = verdict.others;
                    Some(a)
                }
            };
        }
        Ok(decided)
    }
}

/// What a pass does with the calls it claims.
#[derive(Clone, Copy)]
enum Work<'w> {
    Attribute,
    Complete(&'w Webhooks),
}

/// How one call of a batch is decided.
enum Plan<'p> {
    /// No pool, or its pool or property is gone.
    Unattributed,
    /// A source pool's number or a pool's overflow number: shown without a lease.
    Unleased {
        pool: &'p Pool,
        confidence: Confidence,
    },
    /// A session pool's number: the leases around the call decide.
    Leased { window_ms: Millis },
}

/// Rule 1: the source is certain; the visit is the last one shown the number, if any.
fn unleased_attribution(
    pool: &Pool,
    confidence: Confidence,
    session: Option<&SessionRow>,
) -> CallAttribution {
    let mut a = session.map_or_else(unattributed, from_session);
    a.confidence = confidence.as_str().to_owned();
    // What the pool matches on is certain; fill it over the guess.
    if let Some(ch) = pool
        .matcher
        .channel
        .as_deref()
        .and_then(Channel::parse)
        .map(|ch| ch.as_str().to_owned())
    {
        a.channel = ch;
    }
    let m = &pool.matcher;
    if confidence == Confidence::Source {
        a.source = m.source.clone().or(a.source);
        a.medium = m.medium.clone().or(a.medium);
        a.campaign = m.campaign.clone().or(a.campaign);
    }
    a
}

/// Milliseconds since the epoch by the machine's clock: claims are about instances' real
/// time, not the service clock calls are stamped with (a test's clock stands still).
fn wall_clock_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
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
    fn the_callers_history_decides_unless_their_visit_holds_the_number_alone() {
        let now = 10 * H;
        let holding = |ids: &[&str]| -> (Verdict, Vec<String>) {
            let holders: Vec<Holder> = ids.iter().map(|id| holder(id, now - 60_000)).collect();
            let names = ids.iter().map(|id| (*id).to_owned()).collect();
            (decide(holders, None, now, 24 * H), names)
        };
        // No history: the leases' verdict.
        let (v, ids) = holding(&["b"]);
        assert_eq!(with_history(v.clone(), &ids, None), v);
        // The caller's own visit still holds the number alone: the same visit, `exact`.
        let (v, ids) = holding(&["a"]);
        assert_eq!(with_history(v.clone(), &ids, Some("a")), v);
        // The number passed to b: the caller's visit, b the other candidate.
        let (v, ids) = holding(&["b"]);
        let r = with_history(v, &ids, Some("a"));
        assert_eq!(r.confidence, Confidence::Repeat);
        assert_eq!(r.session_id.as_deref(), Some("a"));
        assert_eq!(r.others, ["b"]);
        // Shared by a and c: the history picks a out.
        let (v, ids) = holding(&["a", "c"]);
        let r = with_history(v, &ids, Some("a"));
        assert_eq!(
            (r.confidence, r.session_id.as_deref()),
            (Confidence::Repeat, Some("a"))
        );
        assert_eq!(r.others, ["c"]);
        // Nobody holds it; the last holder was someone else: named as the other candidate.
        let v = decide(Vec::new(), Some(("d".into(), now - H)), now, 24 * H);
        let r = with_history(v, &[], Some("a"));
        assert_eq!(
            (r.confidence, r.session_id.as_deref()),
            (Confidence::Repeat, Some("a"))
        );
        assert_eq!(r.others, ["d"]);
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
