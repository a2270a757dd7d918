//! The rules: from what was measured to a verdict per (rule, subject), with the facts its
//! event reports. Pure, so each rule is tested without a database.

use serde_json::{Map, Value, json};

use super::hours::{is_open, open_minutes_between};
use crate::reports::property_tz;
use crate::storage::{CallActivity, PoolCounts, WatchedProperty};
use crate::time::{Millis, to_datetime};

/// Exhaustion events this recent keep a pool's exhaustion alert firing.
pub const EXHAUSTION_WINDOW_MS: Millis = 15 * 60_000;
/// The missed-call rate is over the calls of this long.
pub const MISSED_CALLS_WINDOW_MS: Millis = 60 * 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    PoolUtilisation,
    Exhaustion,
    MissedCalls,
    NoCalls,
}

impl Rule {
    pub const ALL: [Rule; 4] = [
        Rule::PoolUtilisation,
        Rule::Exhaustion,
        Rule::MissedCalls,
        Rule::NoCalls,
    ];

    /// As stored, in events' `rule`, and in the settings.
    pub fn name(self) -> &'static str {
        match self {
            Rule::PoolUtilisation => "pool_utilisation",
            Rule::Exhaustion => "exhaustion",
            Rule::MissedCalls => "missed_calls",
            Rule::NoCalls => "no_calls",
        }
    }

    /// The webhook event a firing alert sends.
    pub fn event_type(self) -> &'static str {
        match self {
            Rule::PoolUtilisation => "alert.pool_utilisation",
            Rule::Exhaustion => "alert.pool_exhausted",
            Rule::MissedCalls => "alert.missed_calls",
            Rule::NoCalls => "alert.no_calls",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The condition holds: fire, or keep firing.
    Breached,
    /// It does not (or the rule is off): a firing alert starts to clear.
    Clear,
    /// No change either way (no calls, but outside business hours).
    Hold,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub rule: Rule,
    /// The pool for the pool rules, the property for the others.
    pub subject: String,
    pub verdict: Verdict,
    /// What the event reports besides the rule, the property and the times: `value`,
    /// `threshold`, `window`, the pool, and the rule's own figures.
    pub facts: Map<String, Value>,
}

/// A session pool's counts, and how many of its numbers are leased now.
#[derive(Debug, Clone)]
pub struct PoolReading {
    pub pool: PoolCounts,
    pub leased: u64,
}

fn window(from: Millis, to: Millis) -> Value {
    json!({"from": to_datetime(from), "to": to_datetime(to)})
}

fn facts(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn verdict(enabled: bool, breached: bool) -> Verdict {
    if enabled && breached {
        Verdict::Breached
    } else {
        Verdict::Clear
    }
}

/// Every rule's verdict for a property, from its pools and calls at `now`.
pub fn observe(
    property: &WatchedProperty,
    pools: &[PoolReading],
    calls: &CallActivity,
    now: Millis,
) -> Vec<Observation> {
    let s = &property.settings;
    let mut out = Vec::with_capacity(2 * pools.len() + 2);
    for PoolReading { pool, leased } in pools {
        let about = json!({"id": pool.id, "name": pool.name});
        let threshold = s.pool_utilisation.threshold;
        let share = match pool.live_numbers {
            0 => 0.0,
            live => *leased as f64 / live as f64,
        };
        out.push(Observation {
            rule: Rule::PoolUtilisation,
            subject: pool.id.clone(),
            verdict: verdict(
                s.pool_utilisation.enabled,
                threshold.reached_by(*leased, pool.live_numbers),
            ),
            facts: facts(json!({
                "pool": about,
                "value": share,
                "threshold": threshold,
                "leased": leased,
                "numbers": pool.live_numbers,
                "window": window(now, now),
            })),
        });
        out.push(Observation {
            rule: Rule::Exhaustion,
            subject: pool.id.clone(),
            verdict: verdict(s.exhaustion.enabled, pool.exhaustions > 0),
            facts: facts(json!({
                "pool": about,
                "value": pool.exhaustions,
                "threshold": 1,
                "window": window(now - EXHAUSTION_WINDOW_MS, now),
            })),
        });
    }
    let missed = &s.missed_calls;
    out.push(Observation {
        rule: Rule::MissedCalls,
        subject: property.id.clone(),
        verdict: verdict(
            missed.enabled,
            calls.ended >= u64::from(missed.min_calls)
                && missed.threshold.reached_by(calls.missed, calls.ended),
        ),
        facts: facts(json!({
            "value": (calls.ended > 0).then(|| calls.missed as f64 / calls.ended as f64),
            "threshold": missed.threshold,
            "calls": calls.ended,
            "missed": calls.missed,
            "min_calls": missed.min_calls,
            "window": window(now - MISSED_CALLS_WINDOW_MS, now),
        })),
    });
    out.push(no_calls(property, calls, now));
    out
}

/// Quiet time counts from the latest call, or from the property's creation if it never had one.
fn no_calls(property: &WatchedProperty, calls: &CallActivity, now: Millis) -> Observation {
    let rule = &property.settings.no_calls;
    let mut observation = Observation {
        rule: Rule::NoCalls,
        subject: property.id.clone(),
        verdict: Verdict::Clear,
        facts: facts(json!({"threshold": rule.after_minutes})),
    };
    if !rule.enabled {
        return observation;
    }
    let tz = property_tz(&property.timezone);
    let hours = &rule.business_hours;
    let quiet_from = calls.last_call_at.unwrap_or(0).max(property.created_at);
    let quiet = open_minutes_between(hours, tz, quiet_from, now);
    observation.verdict = if quiet < i64::from(rule.after_minutes) {
        Verdict::Clear
    } else if is_open(hours, tz, now) {
        Verdict::Breached
    } else {
        Verdict::Hold
    };
    observation.facts = facts(json!({
        "value": quiet,
        "threshold": rule.after_minutes,
        "last_call_at": calls.last_call_at.map(to_datetime),
        "business_hours": hours,
        "timezone": tz.name(),
        "window": window(quiet_from, now),
    }));
    observation
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertSettings, Share};

    const HOUR: Millis = 3_600_000;
    /// Monday 2026-06-01, 10:00 in New York.
    const MONDAY_10: Millis = 1_780_322_400_000;

    fn property(settings: AlertSettings) -> WatchedProperty {
        WatchedProperty {
            id: "prop".into(),
            account_id: "acct".into(),
            name: "Acme".into(),
            timezone: "America/New_York".into(),
            created_at: MONDAY_10 - 24 * 7 * HOUR,
            settings,
        }
    }

    fn pool(live: u64, leased: u64, exhaustions: u64) -> PoolReading {
        PoolReading {
            pool: PoolCounts {
                id: "pool".into(),
                name: "Paid".into(),
                live_numbers: live,
                exhaustions,
            },
            leased,
        }
    }

    fn verdicts(
        p: &WatchedProperty,
        pools: &[PoolReading],
        calls: &CallActivity,
        now: Millis,
    ) -> Vec<(Rule, Verdict)> {
        observe(p, pools, calls, now)
            .into_iter()
            .map(|o| (o.rule, o.verdict))
            .collect()
    }

    fn calls(ended: u64, missed: u64, last: Option<Millis>) -> CallActivity {
        CallActivity {
            ended,
            missed,
            last_call_at: last,
        }
    }

    #[test]
    fn rules_fire_at_their_thresholds() {
        let p = property(AlertSettings::default());
        let quiet = calls(0, 0, Some(MONDAY_10 - HOUR));
        assert_eq!(
            verdicts(&p, &[pool(4, 2, 0)], &quiet, MONDAY_10),
            [
                (Rule::PoolUtilisation, Verdict::Clear),
                (Rule::Exhaustion, Verdict::Clear),
                (Rule::MissedCalls, Verdict::Clear),
                (Rule::NoCalls, Verdict::Clear),
            ]
        );
        let busy = verdicts(&p, &[pool(4, 3, 2)], &calls(5, 2, None), MONDAY_10);
        assert_eq!(
            busy[0],
            (Rule::PoolUtilisation, Verdict::Breached),
            "3 of 4 is 75%"
        );
        assert_eq!(busy[1], (Rule::Exhaustion, Verdict::Breached));
        assert_eq!(
            busy[2],
            (Rule::MissedCalls, Verdict::Breached),
            "2 of 5 is over 30%"
        );
        // One missed call of two does not page anyone: fewer than min_calls.
        assert_eq!(
            verdicts(&p, &[], &calls(2, 1, None), MONDAY_10)[0],
            (Rule::MissedCalls, Verdict::Clear)
        );
        // A pool without live numbers is never over its threshold.
        assert_eq!(
            verdicts(&p, &[pool(0, 0, 0)], &quiet, MONDAY_10)[0].1,
            Verdict::Clear
        );
    }

    #[test]
    fn disabled_rules_are_clear() {
        let mut s = AlertSettings::default();
        s.pool_utilisation.enabled = false;
        s.exhaustion.enabled = false;
        s.missed_calls.enabled = false;
        s.pool_utilisation.threshold = Share::from_ppm(1);
        let v = verdicts(
            &property(s),
            &[pool(4, 4, 9)],
            &calls(9, 9, None),
            MONDAY_10,
        );
        assert!(v.iter().all(|(_, v)| *v == Verdict::Clear), "{v:?}");
    }

    #[test]
    fn no_calls_counts_business_minutes_and_fires_only_in_business_hours() {
        let mut s = AlertSettings::default();
        s.no_calls.enabled = true;
        s.no_calls.after_minutes = 60;
        let p = property(s);
        let no_calls = |last: Millis, now: Millis| {
            let o = observe(&p, &[], &calls(0, 0, Some(last)), now)
                .pop()
                .unwrap();
            assert_eq!(o.rule, Rule::NoCalls);
            (o.verdict, o.facts["value"].as_i64().unwrap())
        };
        assert_eq!(
            no_calls(MONDAY_10 - HOUR / 2, MONDAY_10),
            (Verdict::Clear, 30)
        );
        assert_eq!(
            no_calls(MONDAY_10 - HOUR, MONDAY_10),
            (Verdict::Breached, 60)
        );
        // A call on Friday at 16:30; at Monday 09:15 only 45 minutes of opening time passed.
        let friday_1630 = MONDAY_10 - 3 * 24 * HOUR + 6 * HOUR + HOUR / 2;
        assert_eq!(
            no_calls(friday_1630, MONDAY_10 - 3 * HOUR / 4),
            (Verdict::Clear, 45)
        );
        assert_eq!(
            no_calls(friday_1630, MONDAY_10 - HOUR / 2),
            (Verdict::Breached, 60)
        );
        // Quiet long enough, but Monday 18:00 is after hours: no change either way.
        assert_eq!(
            no_calls(MONDAY_10 - HOUR, MONDAY_10 + 8 * HOUR).0,
            Verdict::Hold
        );
        // A property that never had a call counts from its creation.
        let o = observe(&p, &[], &calls(0, 0, None), MONDAY_10)
            .pop()
            .unwrap();
        assert_eq!(o.verdict, Verdict::Breached);
    }

    #[test]
    fn rule_names_round_trip() {
        for r in Rule::ALL {
            assert_eq!(Rule::parse(r.name()), Some(r));
        }
        assert_eq!(Rule::parse("nope"), None);
    }
}
