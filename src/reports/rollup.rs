//! Rollups: a day's calls and sessions, counted under every dimension, rebuilt whenever a
//! write marks the day dirty (invariant 5: a call is counted once under each dimension, on its
//! own attribution; `Unattributed` is a value like any other).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;

use super::{NOT_SET, day_bounds, day_string, local_day, property_tz};
use crate::attribution::UNATTRIBUTED;
use crate::storage::{
    Counters, DayCall, DayRollup, DaySession, DirtyMark, HOUR_MS, KIND_CALLS, KIND_SESSIONS,
    RepeatCounts, RepeatKey, RollupKey, Storage, StorageError, StorageResult, counter as c,
};
use crate::telemetry::Outage;
use crate::time::{Millis, SharedClock};
use crate::work::{ROLLUPS, SharedWork};

/// A caller who calls again within this long was not helped the first time (first-call
/// resolution).
const REPEAT_WINDOW_MS: Millis = 7 * 24 * HOUR_MS;
/// A previous call older than this (before the call's day) counts as none: reports span at
/// most 366 days, so it is before any range the call is in.
const PREVIOUS_CALL_DAYS: i64 = 366;
/// After a rebuild of a day that was marked again meanwhile, the background waits this many
/// times the rebuild's own duration before the next one.
const REBUILD_DUTY: Millis = 10;
/// Hours marked more recently than this wait for a later pass, so a burst is rebuilt once
/// (reports rebuild what they read at once, whatever this says).
const SETTLE_MS: Millis = 2_000;
/// An answer within this long meets the service level (the industry's 80/20).
const SERVICE_LEVEL_MS: Millis = 20_000;
/// An unanswered call shorter than this was abandoned by the caller.
const ABANDON_S: i64 = 15;

fn or_not_set(v: Option<&str>) -> String {
    match v.map(str::trim) {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => NOT_SET.to_owned(),
    }
}

/// A landing page without its query and fragment (tagged URLs would make every visit a page).
pub fn landing_page(url: Option<&str>) -> String {
    let Some(raw) = url else {
        return NOT_SET.to_owned();
    };
    match url::Url::parse(raw) {
        Ok(u) => format!("{}{}", u.host_str().unwrap_or_default(), u.path()),
        Err(_) => or_not_set(Some(raw.split(['?', '#']).next().unwrap_or_default())),
    }
}

fn place(city: Option<&str>, region: Option<&str>) -> String {
    match (
        city.filter(|c| !c.is_empty()),
        region.filter(|r| !r.is_empty()),
    ) {
        (Some(city), Some(region)) => format!("{city}, {region}"),
        (Some(city), None) => city.to_owned(),
        _ => NOT_SET.to_owned(),
    }
}

fn hour_value(tz: Tz, at: Millis) -> String {
    let hour = tz.timestamp_millis_opt(at).single().map_or(0, |t| t.hour());
    format!("{hour:02}")
}

/// The dimension values of one call (the rollup's stored dimensions).
fn call_values(call: &DayCall, tz: Tz) -> [(&'static str, String); 11] {
    let channel = match (&call.confidence, &call.channel) {
        (Some(_), Some(ch)) if !ch.is_empty() => ch.clone(),
        _ => UNATTRIBUTED.to_owned(),
    };
    [
        ("channel", channel),
        ("source", or_not_set(call.source.as_deref())),
        ("medium", or_not_set(call.medium.as_deref())),
        ("campaign", or_not_set(call.campaign.as_deref())),
        ("keyword", or_not_set(call.term.as_deref())),
        ("landing_page", landing_page(call.landing_url.as_deref())),
        (
            "visitor_city",
            place(call.visitor_city.as_deref(), call.visitor_region.as_deref()),
        ),
        (
            "caller_city",
            place(call.caller_city.as_deref(), call.caller_state.as_deref()),
        ),
        ("pool", or_not_set(call.pool_id.as_deref())),
        (
            "confidence",
            call.confidence.clone().unwrap_or_else(|| "pending".into()),
        ),
        ("hour", hour_value(tz, call.started_at)),
    ]
}

/// What one call adds to each row it is in.
fn call_counters(call: &DayCall) -> Counters {
    let mut n = Counters::default();
    let ended = call.status_rank >= 3;
    n.0[c::BILLABLE_MINUTES] = if ended {
        (call.duration_s.unwrap_or(0).max(0) + 59) / 60
    } else {
        0
    };
    if call.disposition.as_deref() == Some("spam") {
        // Counted apart, and out of every other figure; its minutes were still paid for.
        n.0[c::SPAM_CALLS] = 1;
        return n;
    }
    let answered = call.outcome.as_deref() == Some("answered");
    n.0[c::CALLS] = 1;
    n.0[c::FIRST_TIME_CALLERS] = i64::from(call.first_call_id.is_none());
    n.0[c::ANSWERED] = i64::from(answered);
    n.0[c::MISSED] = i64::from(call.outcome.as_deref() == Some("missed"));
    n.0[c::QUALIFIED] = i64::from(call.qualified);
    n.0[c::CONVERSIONS] = call.conversions;
    n.0[c::CONVERTED_CALLS] = i64::from(call.conversions > 0);
    n.0[c::REVENUE_MICROS] = call.revenue_micros;
    if let Some(d) = call.duration_s.filter(|_| ended) {
        n.0[c::DURATION_S_SUM] = d;
        n.0[c::DURATION_N] = 1;
    }
    if answered && let Some(at) = call.answered_at {
        let wait = (at - call.started_at).max(0);
        n.0[c::ANSWER_MS_SUM] = wait;
        n.0[c::ANSWER_N] = 1;
        n.0[c::ANSWERED_IN_20S] = i64::from(wait <= SERVICE_LEVEL_MS);
    }
    if answered && let Some(talk) = call.talk_s.or(call.duration_s) {
        n.0[c::TALK_S_SUM] = talk;
        n.0[c::TALK_N] = 1;
    }
    // The caller got no one: their own leg, or the leg to the business, busy or failed.
    let blocked = |s: &str| matches!(s, "busy" | "failed");
    n.0[c::BLOCKED] =
        i64::from(blocked(&call.status) || call.dial_status.as_deref().is_some_and(blocked));
    n.0[c::ABANDONED] = i64::from(ended && !answered && call.duration_s.unwrap_or(0) < ABANDON_S);
    match call.disposition.as_deref() {
        Some("appointment") => n.0[c::APPOINTMENTS] = 1,
        Some("resolved") => n.0[c::RESOLVED] = 1,
        Some("escalated") => n.0[c::ESCALATED] = 1,
        _ => {}
    }
    if let Some(csat) = call.csat {
        n.0[c::CSAT_SUM] = csat;
        n.0[c::CSAT_N] = 1;
        n.0[c::CSAT_SATISFIED] = i64::from(csat >= 4);
    }
    n
}

/// Whether the caller did not call again within the repeat window.
fn no_repeat(call: &DayCall) -> i64 {
    i64::from(
        call.next_at
            .is_none_or(|next| next - call.started_at > REPEAT_WINDOW_MS),
    )
}

/// A day's call rollup rows.
pub fn call_rows(calls: &[DayCall], tz: Tz) -> DayRollup {
    let mut rows: BTreeMap<RollupKey, Counters> = BTreeMap::new();
    let mut repeats: BTreeMap<RepeatKey, RepeatCounts> = BTreeMap::new();
    for call in calls {
        let mut counters = call_counters(call);
        let day = local_day(tz, call.started_at);
        // The previous call's day, if within the year before (older is before any range).
        let prev_day = call
            .prev_at
            .map(|p| local_day(tz, p))
            .filter(|p| (day - *p).num_days() <= PREVIOUS_CALL_DAYS);
        let counted = counters.0[c::CALLS] == 1;
        if counted && prev_day.is_none() {
            counters.0[c::NEW_CALLERS] = 1;
            counters.0[c::NEW_CALLERS_NO_REPEAT] = no_repeat(call);
        }
        let values = call_values(call, tz);
        let channel = values[0].1.clone();
        for (dimension, value) in values {
            if let (true, Some(prev)) = (counted, prev_day) {
                let r = repeats
                    .entry(RepeatKey {
                        dimension,
                        value: value.clone(),
                        prev_day: day_string(prev),
                    })
                    .or_default();
                r.calls += 1;
                r.no_repeat_7d += no_repeat(call);
            }
            rows.entry(RollupKey {
                dimension,
                value,
                channel: channel.clone(),
            })
            .or_default()
            .add(&counters);
        }
    }
    DayRollup {
        calls: rows.into_iter().collect(),
        repeats: repeats.into_iter().collect(),
    }
}

/// A day's session rollup rows.
pub fn session_rows(sessions: &[DaySession], tz: Tz) -> Vec<((&'static str, String), i64)> {
    let mut rows: BTreeMap<(&'static str, String), i64> = BTreeMap::new();
    for s in sessions {
        let values = [
            ("channel", or_not_set(Some(&s.channel))),
            ("source", or_not_set(Some(&s.source))),
            ("medium", or_not_set(Some(&s.medium))),
            ("campaign", or_not_set(s.campaign.as_deref())),
            ("keyword", or_not_set(s.term.as_deref())),
            ("landing_page", landing_page(Some(&s.landing_url))),
            (
                "visitor_city",
                place(s.visitor_city.as_deref(), s.visitor_region.as_deref()),
            ),
            ("pool", or_not_set(s.pool_id.as_deref())),
            ("hour", hour_value(tz, s.first_seen_at)),
        ];
        for key in values {
            *rows.entry(key).or_default() += 1;
        }
    }
    rows.into_iter().collect()
}

/// Keeps rollups fresh: a background pass over dirty hours, and a rebuild of the dirty days a
/// report is about to read (so a report always reflects every write before it).
pub struct Rollups {
    storage: Storage,
    clock: SharedClock,
    /// One rebuild at a time on this instance: a report arriving while the background pass
    /// rebuilds its day waits for it, then finds the mark gone, instead of rebuilding the day
    /// a second time alongside it.
    rebuilding: tokio::sync::Mutex<()>,
}

impl Rollups {
    pub fn new(storage: Storage, clock: SharedClock) -> Self {
        Self {
            storage,
            clock,
            rebuilding: tokio::sync::Mutex::new(()),
        }
    }

    /// Rebuilds the days of hours marked a moment ago or earlier; returns how many days.
    pub async fn run_pass(&self) -> StorageResult<usize> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let marks = self
            .storage
            .dirty_marks(self.clock.now_ms() - SETTLE_MS, 500)
            .await?;
        self.rebuild(marks).await
    }

    /// Rebuilds a property's dirty days within `[from, to)` before a report reads them.
    pub async fn refresh(
        &self,
        property_id: &str,
        from: Millis,
        to: Millis,
    ) -> StorageResult<usize> {
        let _one_at_a_time = self.rebuilding.lock().await;
        let marks = self
            .storage
            .dirty_marks_of_property(property_id, from / HOUR_MS - 1, to / HOUR_MS + 1)
            .await?;
        self.rebuild(marks).await
    }

    async fn rebuild(&self, marks: Vec<DirtyMark>) -> StorageResult<usize> {
        let now = self.clock.now_ms();
        let mut days: BTreeSet<(String, String, NaiveDate)> = BTreeSet::new();
        let mut zones: BTreeMap<String, Option<Tz>> = BTreeMap::new();
        for mark in &marks {
            let tz = match zones.get(&mark.property_id) {
                Some(tz) => *tz,
                None => {
                    let tz = match self.storage.property_by_id(&mark.property_id).await {
                        Ok(p) => Some(property_tz(&p.timezone)),
                        Err(StorageError::NotFound) => None,
                        Err(e) => return Err(e),
                    };
                    zones.insert(mark.property_id.clone(), tz);
                    tz
                }
            };
            let Some(tz) = tz else { continue };
            // An hour can straddle two local days (zones a half hour off UTC).
            for at in [mark.hour * HOUR_MS, (mark.hour + 1) * HOUR_MS - 1] {
                days.insert((
                    mark.property_id.clone(),
                    mark.kind.clone(),
                    local_day(tz, at),
                ));
            }
        }
        let started = std::time::Instant::now();
        for (property_id, kind, day) in &days {
            let tz = zones[property_id].expect("days only for known properties");
            self.rebuild_day(property_id, kind, tz, *day).await?;
        }
        // A day marked again while it was rebuilt waits REBUILD_DUTY times as long as this
        // pass took before the background rebuilds it again, so rebuilding a day that takes
        // calls all day long stays a small share of the database's time (and of the disk the
        // call spool syncs to). Reports rebuild what they read at once regardless.
        let rearm = now + REBUILD_DUTY * started.elapsed().as_millis() as Millis;
        for mark in &marks {
            self.storage.clear_dirty_mark(mark, rearm).await?;
        }
        Ok(days.len())
    }

    /// Recounts one local day of a property from its raw rows.
    pub async fn rebuild_day(
        &self,
        property_id: &str,
        kind: &str,
        tz: Tz,
        day: NaiveDate,
    ) -> StorageResult<()> {
        let (from, to) = day_bounds(tz, day);
        let label = day_string(day);
        if kind == KIND_SESSIONS {
            let sessions = self.storage.sessions_of_day(property_id, from, to).await?;
            self.storage
                .replace_session_rollups(property_id, &label, &session_rows(&sessions, tz))
                .await
        } else {
            debug_assert_eq!(kind, KIND_CALLS);
            let calls = self.storage.calls_of_day(property_id, from, to).await?;
            self.storage
                .replace_call_rollups(property_id, &label, &call_rows(&calls, tz))
                .await
        }
    }

    /// Rebuilds every second on the instance that holds the job (`work::ROLLUPS`), backing off
    /// while the database is away.
    pub fn start(self: &Arc<Self>, work: Arc<SharedWork>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut outage = Outage::default();
            loop {
                let pass = if work.held(ROLLUPS).is_empty() {
                    Ok(0)
                } else {
                    me.run_pass().await
                };
                let failures = outage.record(pass, "report rollups wait for the database");
                tokio::time::sleep(Duration::from_secs(u64::from(failures.min(10)).max(1))).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at: Millis) -> DayCall {
        DayCall {
            pool_id: Some("pool-1".into()),
            status: "completed".into(),
            status_rank: 3,
            outcome: Some("answered".into()),
            dial_status: Some("completed".into()),
            started_at: at,
            answered_at: Some(at + 12_000),
            duration_s: Some(125),
            talk_s: Some(110),
            confidence: Some("exact".into()),
            channel: Some("Paid Search".into()),
            source: Some("google".into()),
            medium: Some("cpc".into()),
            campaign: Some("spring".into()),
            term: None,
            landing_url: Some("https://shop.example/pricing?utm_source=google#top".into()),
            visitor_city: Some("Austin".into()),
            visitor_region: Some("TX".into()),
            caller_city: Some("AUSTIN".into()),
            caller_state: Some("TX".into()),
            first_call_id: None,
            disposition: None,
            csat: Some(5),
            qualified: true,
            prev_at: None,
            next_at: None,
            conversions: 2,
            revenue_micros: 150_000_000,
        }
    }

    #[test]
    fn a_call_counts_once_under_each_dimension() {
        let tz = property_tz("America/Chicago");
        let at = 1_780_000_000_000;
        let rows = call_rows(&[call(at)], tz);
        assert_eq!(rows.calls.len(), 11);
        assert!(rows.repeats.is_empty());
        for (key, counters) in &rows.calls {
            assert_eq!(counters.0[c::CALLS], 1, "{key:?}");
            assert_eq!(counters.0[c::NEW_CALLERS], 1, "{key:?}");
            assert_eq!(key.channel, "Paid Search");
        }
        let value = |d: &str| {
            rows.calls
                .iter()
                .find(|(k, _)| k.dimension == d)
                .unwrap()
                .0
                .value
                .clone()
        };
        assert_eq!(value("landing_page"), "shop.example/pricing");
        assert_eq!(value("keyword"), NOT_SET);
        assert_eq!(value("caller_city"), "AUSTIN, TX");
        let n = rows.calls[0].1;
        assert_eq!(n.0[c::BILLABLE_MINUTES], 3);
        assert_eq!(n.0[c::ANSWERED_IN_20S], 1);
        assert_eq!(n.0[c::ANSWER_MS_SUM], 12_000);
        assert_eq!(n.0[c::TALK_S_SUM], 110);
        assert_eq!(n.0[c::CONVERSIONS], 2);
        assert_eq!(n.0[c::CSAT_SATISFIED], 1);
        assert_eq!(n.0[c::NEW_CALLERS_NO_REPEAT], 1);
    }

    #[test]
    fn a_caller_who_got_a_busy_or_failed_business_line_is_blocked() {
        let at = 1_780_000_000_000;
        let mut busy_line = call(at);
        busy_line.outcome = Some("missed".into());
        busy_line.dial_status = Some("busy".into());
        assert_eq!(call_counters(&busy_line).0[c::BLOCKED], 1);
        busy_line.dial_status = Some("no-answer".into());
        assert_eq!(call_counters(&busy_line).0[c::BLOCKED], 0);
        let mut failed = call(at);
        failed.status = "failed".into();
        failed.dial_status = None;
        assert_eq!(call_counters(&failed).0[c::BLOCKED], 1);
        assert_eq!(call_counters(&call(at)).0[c::BLOCKED], 0);
    }

    #[test]
    fn spam_is_counted_apart_and_repeats_carry_their_previous_day() {
        let tz = property_tz("UTC");
        let day = 86_400_000;
        let at = 1_780_000_000_000;
        let mut spam = call(at);
        spam.disposition = Some("spam".into());
        spam.prev_at = Some(at - day);
        let mut repeat = call(at);
        repeat.prev_at = Some(at - 3 * day);
        repeat.next_at = Some(at + day);
        repeat.first_call_id = Some("first".into());
        let mut ancient = call(at);
        ancient.prev_at = Some(at - 400 * day);
        let mut unattributed = call(at);
        unattributed.confidence = None;
        let rows = call_rows(&[spam, repeat, ancient, unattributed], tz);
        let channel: Vec<_> = rows
            .calls
            .iter()
            .filter(|(k, _)| k.dimension == "channel")
            .collect();
        let sum = |i: usize| channel.iter().map(|(_, n)| n.0[i]).sum::<i64>();
        assert_eq!((sum(c::SPAM_CALLS), sum(c::CALLS)), (1, 3));
        // The repeat is not new; the call after a 400-day gap is.
        assert_eq!(sum(c::NEW_CALLERS), 2);
        assert_eq!(sum(c::FIRST_TIME_CALLERS), 2);
        let prev = day_string(local_day(tz, at - 3 * day));
        let repeats: Vec<_> = rows
            .repeats
            .iter()
            .filter(|(k, _)| k.dimension == "channel")
            .collect();
        assert_eq!(repeats.len(), 1, "spam is not a repeat: {repeats:?}");
        assert_eq!(repeats[0].0.prev_day, prev);
        assert_eq!(
            repeats[0].1,
            RepeatCounts {
                calls: 1,
                no_repeat_7d: 0
            }
        );
        assert!(channel.iter().any(|(k, _)| k.value == UNATTRIBUTED));
        assert!(
            rows.calls
                .iter()
                .any(|(k, _)| k.dimension == "confidence" && k.value == "pending")
        );
    }
}
