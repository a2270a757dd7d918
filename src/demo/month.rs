//! The demo's month: a plumber's site and phone line over the last 30 days, played through
//! the real paths by the simulator (each page view posted to `/v1/dni/session` as the snippet
//! posts it, each call as Twilio's signed webhooks), then what the business does through the
//! API: dispositions and satisfaction scores on answered calls, conversions for the jobs won,
//! and the ad spend uploaded.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Datelike, Days, SecondsFormat};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{Value, json};

use super::Api;
use crate::http::AppState;
use crate::reports::{day_bounds, day_string, local_day};
use crate::simulate::traffic::{
    Answering, ChannelMix, DailyCurve, Ending, HOUR_MS, MINUTE_MS, PAID_CAMPAIGNS, PRINT_CAMPAIGN,
    SOCIAL_CAMPAIGNS, Source, TrafficModel,
};
use crate::simulate::{Played, Target, play, settled_calls};
use crate::time::{Millis, to_datetime};

/// The traffic's seed: runs on the same day play the same visitors (up to the time each ends).
const SEED: u64 = 20_260_301;

/// The first local midnight of `days` local days ending with today.
pub fn start(tz: Tz, now: Millis, days: u64) -> Millis {
    day_bounds(tz, local_day(tz, now) - Days::new(days.max(1) - 1)).0
}

/// The plumber's traffic: about 120 visitors a day, busiest on weekday afternoons (local
/// time), a tenth of them calling, and a few callers a day dialling the newspaper ad's number.
fn traffic(tz: Tz, (start, end): (Millis, Millis)) -> TrafficModel {
    TrafficModel {
        visitors_per_day: 120.0,
        hours: u32::try_from((end - start + HOUR_MS - 1) / HOUR_MS).unwrap_or(u32::MAX),
        curve: DailyCurve::business_week(tz),
        mix: ChannelMix::of(&[
            (Source::Paid, 30.0),
            (Source::PaidSocial, 10.0),
            (Source::Organic, 32.0),
            (Source::Social, 2.0),
            (Source::Email, 4.0),
            (Source::Direct, 14.0),
            (Source::Referral, 6.0),
            (Source::Print, 2.0),
        ]),
        pages_median: 2.0,
        call_share: 0.10,
        offline_calls_per_day: 2.0,
        answering: Some(Answering::plumber()),
        ..TrafficModel::default()
    }
}

/// What the month put into the service.
pub struct Seeded {
    days: u64,
    visitors: usize,
    played: Played,
    dispositions: usize,
    spam: usize,
    scores: usize,
    conversions: usize,
    spend_days: usize,
    seconds: f64,
}

/// Plays the month on `target` (whose clock must stand at `start`) and follows it up; leaves
/// the clock at `end`.
pub async fn seed(
    api: &Api,
    state: &AppState,
    target: &Target,
    property_id: &str,
    printed_number: &str,
    (start, end): (Millis, Millis),
) -> anyhow::Result<Seeded> {
    let wall = Instant::now();
    let tz = crate::reports::property_tz(super::TIMEZONE);
    let visitors = traffic(tz, (start, end)).visitors(SEED, start);
    let played = play(target, &visitors, SEED, (start, end), Some(printed_number)).await?;
    target.clock.set_ms(end);

    let routed = played.calls.iter().filter(|c| c.routed).count();
    let done =
        |calls: &[Value]| calls.len() >= routed && calls.iter().all(|c| !c["qualified"].is_null());
    let calls = settled_calls(
        state,
        &api.client,
        &api.key,
        property_id,
        Duration::from_secs(60),
        done,
    )
    .await?;
    anyhow::ensure!(
        done(&calls),
        "{} of the month's {routed} calls were attributed and completed within a minute",
        calls.iter().filter(|c| !c["qualified"].is_null()).count()
    );
    let ids: HashMap<&str, &str> = calls
        .iter()
        .filter_map(|c| Some((c["provider_call_id"].as_str()?, c["id"].as_str()?)))
        .collect();

    let mut rng = StdRng::seed_from_u64(SEED ^ 0xb05);
    let (mut dispositions, mut spam, mut scores, mut conversions) = (0, 0, 0, 0);
    for call in played.calls.iter().filter(|c| c.ending == Ending::Answered) {
        let Some(id) = ids.get(call.sid.as_str()) else {
            continue;
        };
        let after = handled(&mut rng, call.talk_s.unwrap_or(0));
        let mut patch = json!({});
        if let Some(d) = after.disposition {
            patch["disposition"] = json!(d);
            dispositions += 1;
            spam += usize::from(d == "spam");
        }
        if let Some(csat) = after.csat {
            patch["csat"] = json!(csat);
            scores += 1;
        }
        if patch != json!({}) {
            let path = format!("/v1/calls/{id}");
            api.send(reqwest::Method::PATCH, &path, patch).await?;
        }
        if let Some((name, value, later)) = after.conversion {
            let at = (call.started + later).min(end - MINUTE_MS);
            let body = json!({
                "name": name,
                "value": value,
                "at": to_datetime(at).to_rfc3339_opts(SecondsFormat::Secs, true),
            });
            let path = format!("/v1/calls/{id}/conversion");
            api.send(reqwest::Method::POST, &path, body).await?;
            conversions += 1;
        }
    }

    api.send(
        reqwest::Method::PUT,
        &format!("/v1/properties/{property_id}/cost-settings"),
        // Twilio's inbound minute and the forwarded leg's; a share of the office's running cost.
        json!({"per_minute_cost": 0.022, "operating_cost_monthly": 2800}),
    )
    .await?;
    let rows = spend(&mut rng, tz, (start, end));
    let spend_days = rows.len() / DAILY_SPEND.len();
    if !rows.is_empty() {
        api.send(
            reqwest::Method::POST,
            &format!("/v1/properties/{property_id}/costs"),
            json!({ "rows": rows }),
        )
        .await
        .context("uploading the month's ad spend")?;
    }

    Ok(Seeded {
        days: (local_day(tz, end) - local_day(tz, start)).num_days() as u64 + 1,
        visitors: visitors
            .iter()
            .filter(|v| v.visits.first().is_some_and(|f| f.views[0].at <= end))
            .count(),
        played,
        dispositions,
        spam,
        scores,
        conversions,
        spend_days,
        seconds: wall.elapsed().as_secs_f64(),
    })
}

/// What the business made of an answered call.
#[derive(Debug, PartialEq)]
struct Handled {
    disposition: Option<&'static str>,
    csat: Option<i64>,
    /// A job won: its name, value, and how long after the call it was booked.
    conversion: Option<(&'static str, f64, Millis)>,
}

/// Dispositions of answered calls (what is left gets none).
const DISPOSITIONS: [(&str, f64); 5] = [
    ("appointment", 0.36),
    ("resolved", 0.22),
    ("follow_up", 0.16),
    ("sale", 0.08),
    ("escalated", 0.06),
];
/// Satisfaction scores, 5 to 1, of the callers who answer the survey.
const CSAT: [f64; 5] = [0.46, 0.32, 0.12, 0.06, 0.04];

/// The business's follow-up of an answered call: short ones are often robocalls (spam); the rest
/// get a disposition, half a satisfaction score, and appointments, sales and some follow-ups
/// become a job with a value, hours or days later.
fn handled(rng: &mut StdRng, talk_s: i64) -> Handled {
    if talk_s < 30 && rng.random_bool(0.35) {
        return Handled {
            disposition: Some("spam"),
            csat: None,
            conversion: None,
        };
    }
    let mut x: f64 = rng.random();
    let mut disposition = None;
    for (name, share) in DISPOSITIONS {
        if x < share {
            disposition = Some(name);
            break;
        }
        x -= share;
    }
    let csat = rng.random_bool(0.5).then(|| {
        if disposition == Some("escalated") {
            rng.random_range(1..=3)
        } else {
            let mut x: f64 = rng.random();
            let mut score = 1;
            for (i, share) in CSAT.iter().enumerate() {
                if x < *share {
                    score = 5 - i as i64;
                    break;
                }
                x -= share;
            }
            score
        }
    });
    let job = match disposition {
        Some("appointment") if rng.random_bool(0.65) => Some(("job", 340.0)),
        Some("sale") => Some(("installation", 1_400.0)),
        Some("follow_up") if rng.random_bool(0.25) => Some(("job", 340.0)),
        _ => None,
    };
    let conversion = job.map(|(name, median)| {
        let v = LogNormal::new(f64::ln(median), 0.5).map_or(median, |d| d.sample(rng));
        let value = ((v / 5.0).round() * 5.0).clamp(95.0, 6_000.0);
        (name, value, rng.random_range(2 * HOUR_MS..96 * HOUR_MS))
    });
    Handled {
        disposition,
        csat,
        conversion,
    }
}

/// The daily budgets: source, medium, campaign (the campaigns the visitors come from), amount.
const DAILY_SPEND: [(&str, &str, usize, f64); 6] = [
    ("google", "cpc", 0, 26.0),
    ("google", "cpc", 1, 20.0),
    ("google", "cpc", 2, 34.0),
    ("facebook", "paid_social", 0, 11.0),
    ("facebook", "paid_social", 1, 7.0),
    // The newspaper's coupon mailer, its price spread over its days.
    ("print", "offline", 0, 18.0),
];

/// Each day's ad spend through yesterday (today's comes with tomorrow's export), as the ad
/// platforms report it: lower at the weekend, and never quite the budget.
fn spend(rng: &mut StdRng, tz: Tz, (start, end): (Millis, Millis)) -> Vec<Value> {
    let today = local_day(tz, end);
    let mut rows = Vec::new();
    for day in local_day(tz, start).iter_days().take_while(|d| *d < today) {
        let weekend = day.weekday().number_from_monday() >= 6;
        for (source, medium, campaign, budget) in DAILY_SPEND {
            let campaign = match source {
                "google" => PAID_CAMPAIGNS[campaign].0,
                "facebook" => SOCIAL_CAMPAIGNS[campaign],
                _ => PRINT_CAMPAIGN,
            };
            let paced = if weekend && source != "print" {
                0.6
            } else {
                1.0
            };
            let amount = budget * paced * rng.random_range(0.8..1.1);
            rows.push(json!({
                "date": day_string(day),
                "source": source,
                "medium": medium,
                "campaign": campaign,
                "amount": (amount * 100.0).round() / 100.0,
            }));
        }
    }
    rows
}

impl Seeded {
    /// What was played and done, in a few lines.
    pub fn summary(&self, total_seconds: f64) -> String {
        let calls = &self.played.calls;
        let count = |ending: Ending| calls.iter().filter(|c| c.ending == ending).count();
        let r = &self.played.requests;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Switchboard demo: {} of Acme Plumbing's site and phone line, played through the \
             real paths in {:.1} s ({total_seconds:.1} s in all):",
            last_days(self.days),
            self.seconds
        );
        let _ = writeln!(
            out,
            "  {} visitors' {} page views posted to /v1/dni/session as the snippet posts them;",
            self.visitors,
            r.page_views + r.renewals
        );
        let _ = writeln!(
            out,
            "  {} calls as {} signed Twilio webhooks: {} answered, {} rang out, {} found the line \
             busy, {} hung up while it rang;",
            calls.len(),
            r.twilio_webhooks,
            count(Ending::Answered),
            count(Ending::NoAnswer),
            count(Ending::Busy),
            count(Ending::HungUp)
        );
        let _ = writeln!(
            out,
            "  then, through the API, {} dispositions ({} of them spam, which the reports leave \
             out), {} satisfaction scores, {} conversions, {} days of ad spend and the cost \
             settings.",
            self.dispositions, self.spam, self.scores, self.conversions, self.spend_days
        );
        out
    }
}

/// "the last 30 days", "the last day".
pub fn last_days(days: u64) -> String {
    if days == 1 {
        "the last day".to_owned()
    } else {
        format!("the last {days} days")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_month_ends_today_and_begins_at_a_local_midnight() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        // 2026-03-20T17:00Z is 10:00 in Los Angeles (after the switch to summer time).
        let now = 1_774_026_000_000;
        let start = start(tz, now, 30);
        assert_eq!(day_string(local_day(tz, start)), "2026-02-19");
        assert_eq!(day_bounds(tz, local_day(tz, start)).0, start);
        assert_eq!(day_string(local_day(tz, now)), "2026-03-20");
    }

    #[test]
    fn answered_calls_get_dispositions_scores_and_some_jobs() {
        let mut rng = StdRng::seed_from_u64(1);
        let all: Vec<Handled> = (0..4_000)
            .map(|i| handled(&mut rng, if i % 10 == 0 { 20 } else { 200 }))
            .collect();
        let share = |f: &dyn Fn(&Handled) -> bool| {
            all.iter().filter(|h| f(h)).count() as f64 / all.len() as f64
        };
        let spam = share(&|h| h.disposition == Some("spam"));
        assert!((0.02..0.05).contains(&spam), "{spam}");
        assert!(
            all.iter()
                .filter(|h| h.disposition == Some("spam"))
                .all(|h| h.csat.is_none() && h.conversion.is_none())
        );
        let scored = share(&|h| h.csat.is_some());
        assert!((0.4..0.55).contains(&scored), "{scored}");
        let won = share(&|h| h.conversion.is_some());
        assert!((0.25..0.45).contains(&won), "{won}");
        for h in &all {
            if let Some((_, value, later)) = h.conversion {
                assert!((95.0..=6_000.0).contains(&value));
                assert!((2 * HOUR_MS..96 * HOUR_MS).contains(&later));
            }
        }
    }

    #[test]
    fn spend_is_uploaded_for_each_day_before_today() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let now = 1_774_026_000_000;
        let rows = spend(&mut StdRng::seed_from_u64(2), tz, (start(tz, now, 30), now));
        assert_eq!(rows.len(), 29 * DAILY_SPEND.len());
        assert_eq!(rows[0]["date"], "2026-02-19");
        assert_eq!(rows.last().unwrap()["date"], "2026-03-19");
        assert!(rows.iter().all(|r| r["amount"].as_f64().unwrap() > 0.0));
    }
}
