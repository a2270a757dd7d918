//! The traffic model: who visits, from which channel, for how long, and who calls when. Pure and
//! seeded: one seed gives the same visitors and calls whatever the pool size, so a sweep compares
//! pool sizes on identical traffic.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use chrono::{Datelike, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Serialize;

use crate::time::Millis;

pub const SECOND_MS: Millis = 1_000;
pub const MINUTE_MS: Millis = 60 * SECOND_MS;
pub const HOUR_MS: Millis = 60 * MINUTE_MS;
pub const DAY_MS: Millis = 24 * HOUR_MS;

/// The site the simulated visitors browse (a property domain of the simulated account).
pub const SITE_DOMAIN: &str = "acme-plumbing.example";
pub const SITE_ORIGIN: &str = "https://www.acme-plumbing.example";
const PAGES: [&str; 8] = [
    "/",
    "/services/drains",
    "/services/water-heaters",
    "/emergency",
    "/pricing",
    "/about",
    "/blog/frozen-pipes",
    "/contact",
];

/// Visits per hour of the day, relative to each other: quiet at night, a plateau from late
/// morning to the afternoon, as a local business's site sees. Normalised to a mean of 1.
const DAILY_SHAPE: [f64; 24] = [
    0.15, 0.10, 0.08, 0.07, 0.08, 0.15, 0.35, 0.60, 0.90, 1.10, 1.25, 1.30, 1.30, 1.30, 1.30, 1.25,
    1.20, 1.15, 1.10, 1.05, 0.95, 0.75, 0.50, 0.30,
];

/// Visits per day of the week (Monday first) for a local business: busy on weekdays, quiet on
/// Sundays. Normalised to a mean of 1.
const WEEKLY_SHAPE: [f64; 7] = [1.15, 1.15, 1.1, 1.1, 1.0, 0.65, 0.45];

/// The arrival rate's shape over a week: the rate at hour h of weekday d (local time in `tz`) is
/// `per_day / 24 × weight(h) × weekday(d)`.
#[derive(Debug, Clone)]
pub struct DailyCurve {
    weights: [f64; 24],
    weekdays: [f64; 7],
    tz: Tz,
}

impl DailyCurve {
    /// The default day (busy by day, quiet at night), every day alike, in UTC.
    pub fn business_day() -> Self {
        Self::from_shape(DAILY_SHAPE, [1.0; 7], Tz::UTC)
    }

    /// The business day in a local time zone, busier on weekdays than at the weekend.
    pub fn business_week(tz: Tz) -> Self {
        Self::from_shape(DAILY_SHAPE, WEEKLY_SHAPE, tz)
    }

    /// The same rate all day (for tests and for a model without a daily cycle).
    pub fn flat() -> Self {
        Self::from_shape([1.0; 24], [1.0; 7], Tz::UTC)
    }

    fn from_shape(shape: [f64; 24], week: [f64; 7], tz: Tz) -> Self {
        let mean = shape.iter().sum::<f64>() / 24.0;
        let week_mean = week.iter().sum::<f64>() / 7.0;
        Self {
            weights: shape.map(|w| w / mean),
            weekdays: week.map(|w| w / week_mean),
            tz,
        }
    }

    /// The local weekday (0 is Monday) and hour of a time.
    pub fn local(&self, at: Millis) -> (usize, usize) {
        let local = Utc
            .timestamp_millis_opt(at)
            .single()
            .unwrap_or_default()
            .with_timezone(&self.tz);
        (
            local.weekday().num_days_from_monday() as usize,
            local.hour() as usize,
        )
    }

    /// The weight at a simulated time.
    pub fn weight_at(&self, at: Millis) -> f64 {
        let (day, hour) = self.local(at);
        self.weights[hour] * self.weekdays[day]
    }

    /// The busiest hour's weight: the peak rate over the mean.
    pub fn peak(&self) -> f64 {
        let max = |w: &[f64]| w.iter().copied().fold(0.0, f64::max);
        max(&self.weights) * max(&self.weekdays)
    }
}

/// Arrival times in `[start, end)` of a Poisson process with rate `per_day / DAY × weight(t)`,
/// by thinning: candidates at the peak rate, each kept with probability weight / peak.
pub fn poisson_arrivals(
    rng: &mut StdRng,
    per_day: f64,
    curve: &DailyCurve,
    start: Millis,
    end: Millis,
) -> Vec<Millis> {
    let peak_per_ms = per_day * curve.peak() / DAY_MS as f64;
    let mut arrivals = Vec::new();
    let Ok(gap) = Exp::new(peak_per_ms) else {
        return arrivals;
    };
    let mut t = start as f64;
    loop {
        t += gap.sample(rng);
        if t >= end as f64 {
            return arrivals;
        }
        let at = t as Millis;
        if rng.random::<f64>() * curve.peak() < curve.weight_at(at) {
            arrivals.push(at);
        }
    }
}

/// Where a visit comes from, as the snippet shows it to the service (URL and referrer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A Google ad click: UTM tags and a `gclid`.
    Paid,
    /// A Facebook ad click: UTM tags and an `fbclid`.
    PaidSocial,
    /// A search engine's result page as the referrer.
    Organic,
    /// A social network as the referrer.
    Social,
    /// A newsletter link with UTM tags.
    Email,
    /// No referrer, no tags.
    Direct,
    /// Another site's link.
    Referral,
    /// The address printed in a newspaper ad, with its UTM tags (and, apart from the visits,
    /// the callers who dial the ad's number without visiting: `offline_calls_per_day`).
    Print,
}

impl Source {
    pub const ALL: [Source; 8] = [
        Source::Paid,
        Source::PaidSocial,
        Source::Organic,
        Source::Social,
        Source::Email,
        Source::Direct,
        Source::Referral,
        Source::Print,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Paid => "paid",
            Source::PaidSocial => "paid_social",
            Source::Organic => "organic",
            Source::Social => "social",
            Source::Email => "email",
            Source::Direct => "direct",
            Source::Referral => "referral",
            Source::Print => "print",
        }
    }

    /// The GA4 channel the service should classify this visit as.
    pub fn channel(self) -> &'static str {
        match self {
            Source::Paid => "Paid Search",
            Source::PaidSocial => "Paid Social",
            Source::Organic => "Organic Search",
            Source::Social => "Organic Social",
            Source::Email => "Email",
            Source::Direct => "Direct",
            Source::Referral => "Referral",
            // GA4 has no offline channel: a source and medium it does not know.
            Source::Print => "Unassigned",
        }
    }

    /// The landing URL and the referrer of a visit's first page.
    fn landing(self, rng: &mut StdRng) -> (String, Option<String>) {
        let page = PAGES[rng.random_range(0..PAGES.len())];
        let url = |path: &str| format!("{SITE_ORIGIN}{path}");
        let pick =
            |rng: &mut StdRng, list: &[&str]| list[rng.random_range(0..list.len())].to_owned();
        let click_id = |rng: &mut StdRng| -> String {
            (0..24)
                .map(|_| {
                    char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
                            [rng.random_range(0..64)],
                    )
                })
                .collect()
        };
        match self {
            Source::Paid => {
                let (campaign, term, path) =
                    PAID_CAMPAIGNS[rng.random_range(0..PAID_CAMPAIGNS.len())];
                let gclid = click_id(rng);
                (
                    url(&format!(
                        "{path}?utm_source=google&utm_medium=cpc&utm_campaign={campaign}&utm_term={term}&gclid={gclid}"
                    )),
                    Some("https://www.google.com/".to_owned()),
                )
            }
            Source::PaidSocial => {
                let campaign = SOCIAL_CAMPAIGNS[rng.random_range(0..SOCIAL_CAMPAIGNS.len())];
                let fbclid = click_id(rng);
                (
                    url(&format!(
                        "/offers?utm_source=facebook&utm_medium=paid_social&utm_campaign={campaign}&fbclid={fbclid}"
                    )),
                    Some("https://l.facebook.com/".to_owned()),
                )
            }
            Source::Organic => (
                url(page),
                Some(pick(
                    rng,
                    &[
                        "https://www.google.com/",
                        "https://www.google.com/",
                        "https://www.bing.com/",
                        "https://duckduckgo.com/",
                    ],
                )),
            ),
            Source::Social => (
                url(page),
                Some(pick(
                    rng,
                    &[
                        "https://www.facebook.com/",
                        "https://l.facebook.com/",
                        "https://www.linkedin.com/",
                    ],
                )),
            ),
            Source::Email => (
                url("/offers?utm_source=newsletter&utm_medium=email&utm_campaign=spring"),
                None,
            ),
            Source::Direct => (url(page), None),
            Source::Referral => (
                url(page),
                Some(pick(
                    rng,
                    &[
                        "https://www.neighbourhood-guide.example/best-plumbers",
                        "https://blog.home-repairs.example/frozen-pipes",
                    ],
                )),
            ),
            Source::Print => (
                url(&format!(
                    "/coupon?utm_source=print&utm_medium=offline&utm_campaign={PRINT_CAMPAIGN}"
                )),
                None,
            ),
        }
    }
}

/// Google Ads campaigns: `utm_campaign`, `utm_term` and the ad's landing page.
pub const PAID_CAMPAIGNS: [(&str, &str, &str); 3] = [
    ("blocked-drains", "drain+cleaning", "/services/drains"),
    (
        "water-heaters",
        "water+heater+repair",
        "/services/water-heaters",
    ),
    ("emergency", "emergency+plumber", "/emergency"),
];
/// Facebook Ads campaigns.
pub const SOCIAL_CAMPAIGNS: [&str; 2] = ["spring-tune-up", "neighbours-referral"];
/// The newspaper ad's campaign.
pub const PRINT_CAMPAIGN: &str = "valpak-coupon";

/// How visits divide between sources, as relative weights (`paid=25,organic=35,...`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMix {
    weights: Vec<(Source, f64)>,
}

impl Default for ChannelMix {
    fn default() -> Self {
        Self {
            weights: vec![
                (Source::Paid, 25.0),
                (Source::Organic, 35.0),
                (Source::Social, 8.0),
                (Source::Email, 5.0),
                (Source::Direct, 20.0),
                (Source::Referral, 7.0),
            ],
        }
    }
}

impl FromStr for ChannelMix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not source=weight"))?;
            let source = Source::ALL
                .into_iter()
                .find(|c| c.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Source::ALL.iter().map(|s| s.name()).collect();
                    format!("`{name}` is not one of {}", names.join(", "))
                })?;
            let weight: f64 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| format!("`{weight}` is not a weight (a number, 0 or more)"))?;
            weights.push((source, weight));
        }
        if weights.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
            return Err("the mix needs a weight above 0".to_owned());
        }
        Ok(Self { weights })
    }
}

impl ChannelMix {
    /// Sources and their relative weights.
    pub fn of(weights: &[(Source, f64)]) -> Self {
        Self {
            weights: weights.to_vec(),
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Source {
        let total: f64 = self.weights.iter().map(|(_, w)| w).sum();
        let mut x = rng.random::<f64>() * total;
        for (source, w) in &self.weights {
            if x < *w {
                return *source;
            }
            x -= w;
        }
        self.weights.last().map_or(Source::Direct, |(s, _)| *s)
    }
}

/// When a caller calls, relative to their visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallTiming {
    /// While the page is open.
    DuringVisit,
    /// Minutes after closing the page.
    AfterLeaving,
    /// Hours later, from a number they saved.
    Later,
    /// A caller's second call.
    Repeat,
    /// A call to a printed number, without a visit (the demo's; not scored).
    Offline,
}

impl CallTiming {
    /// The timings the simulator scores (calls from visits).
    pub const ALL: [CallTiming; 4] = [
        CallTiming::DuringVisit,
        CallTiming::AfterLeaving,
        CallTiming::Later,
        CallTiming::Repeat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CallTiming::DuringVisit => "during_visit",
            CallTiming::AfterLeaving => "after_leaving",
            CallTiming::Later => "later",
            CallTiming::Repeat => "repeat",
            CallTiming::Offline => "offline",
        }
    }
}

/// Everything the model can be told (the command's flags fill it).
#[derive(Debug, Clone)]
pub struct TrafficModel {
    /// Mean new visitors per day (the daily curve shapes them over the hours).
    pub visitors_per_day: f64,
    /// How long visitors keep arriving, in hours (calls and returns may come later).
    pub hours: u32,
    pub curve: DailyCurve,
    pub mix: ChannelMix,
    /// Page views per visit: log-normal with this median (at least 1).
    pub pages_median: f64,
    pub pages_sigma: f64,
    /// Seconds on a page before the next (and on the last before leaving): log-normal.
    pub dwell_median_s: f64,
    pub dwell_sigma: f64,
    /// Share of visitors who call at least once.
    pub call_share: f64,
    /// Of first calls: share made during the visit and minutes after it (the rest: hours later).
    pub during_share: f64,
    pub after_share: f64,
    /// Share of callers who call a second time.
    pub repeat_share: f64,
    /// Share of callers who withhold their number: Twilio's `From` is then `+266696687`
    /// ("anonymous"), and the service has no caller to remember.
    pub withheld_share: f64,
    /// Share of visitors who come back for a second visit (with their stored session).
    pub return_share: f64,
    /// Share of visitors whose browser has a Google Analytics `_ga` cookie.
    pub ga_share: f64,
    /// Mean callers a day who dial the printed number without visiting (on the same curve).
    pub offline_calls_per_day: f64,
    /// When the business answers; None: 85% of calls at any hour, the rest ring out.
    pub answering: Option<Answering>,
}

/// How a call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Answered,
    /// It rang until the dial timed out.
    NoAnswer,
    /// The business's line was busy.
    Busy,
    /// The caller hung up while it rang.
    HungUp,
}

/// The business's answering: opening hours (local time of the curve's zone) and the odds of
/// each ending inside and outside them.
#[derive(Debug, Clone)]
pub struct Answering {
    /// Opening hours per weekday, Monday first: from the first hour to before the second;
    /// `(0, 0)` is closed.
    pub hours: [(usize, usize); 7],
    pub open: Odds,
    pub closed: Odds,
}

/// The odds of a call's endings; what is left rings out unanswered.
#[derive(Debug, Clone, Copy)]
pub struct Odds {
    pub answered: f64,
    pub busy: f64,
    pub hung_up: f64,
}

impl Answering {
    /// A plumber's: weekdays 7 to 20, Saturdays 8 to 17, and an emergency phone at other
    /// times that is answered half the time; a busy line and impatient callers now and then.
    pub fn plumber() -> Self {
        let weekday = (7, 20);
        Self {
            hours: [weekday, weekday, weekday, weekday, weekday, (8, 17), (0, 0)],
            open: Odds {
                answered: 0.86,
                busy: 0.04,
                hung_up: 0.04,
            },
            closed: Odds {
                answered: 0.5,
                busy: 0.0,
                hung_up: 0.12,
            },
        }
    }

    fn odds(&self, (day, hour): (usize, usize)) -> Odds {
        let (open, close) = self.hours[day];
        if (open..close).contains(&hour) {
            self.open
        } else {
            self.closed
        }
    }
}

impl Default for TrafficModel {
    fn default() -> Self {
        Self {
            visitors_per_day: 2_000.0,
            hours: 48,
            curve: DailyCurve::business_day(),
            mix: ChannelMix::default(),
            pages_median: 3.0,
            pages_sigma: 0.8,
            dwell_median_s: 45.0,
            dwell_sigma: 1.1,
            call_share: 0.10,
            during_share: 0.5,
            after_share: 0.3,
            repeat_share: 0.15,
            withheld_share: 0.05,
            return_share: 0.15,
            ga_share: 0.6,
            offline_calls_per_day: 0.0,
            answering: None,
        }
    }
}

/// One page load the snippet reports.
#[derive(Debug, Clone)]
pub struct PageView {
    pub at: Millis,
    pub url: String,
    pub referrer: Option<String>,
}

/// One stay on the site: page views, then the tab closes.
#[derive(Debug, Clone)]
pub struct Visit {
    pub views: Vec<PageView>,
    pub leave_at: Millis,
}

#[derive(Debug, Clone)]
pub struct PlannedCall {
    pub at: Millis,
    pub timing: CallTiming,
    /// Seconds the business's phone rings.
    pub ring_s: i64,
    /// Seconds of talk; None: nobody answered.
    pub talk_s: Option<i64>,
    /// Answered exactly when `talk_s` is some.
    pub ending: Ending,
}

#[derive(Debug, Clone)]
pub struct Visitor {
    pub source: Source,
    /// The browser's address (sent as `X-Forwarded-For`): each visitor its own.
    pub ip: IpAddr,
    pub user_agent: &'static str,
    /// The `_ga` cookie's client id, if the browser has one.
    pub ga_client_id: Option<String>,
    /// E.164: the phone the visitor calls from.
    pub phone: String,
    /// Where the phone is, as the carrier tells it (city, state).
    pub city: (&'static str, &'static str),
    /// The first visit, and a return visit if any (with the session kept in storage); none for
    /// a caller who dials a printed number.
    pub visits: Vec<Visit>,
    pub calls: Vec<PlannedCall>,
}

const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];

/// The index of the first caller who dials a printed number (far above any visitor's).
const OFFLINE_CALLERS: usize = 1 << 22;

/// The longest time on one page (a tab left open all day is not a visit).
const MAX_DWELL_MS: Millis = 45 * MINUTE_MS;

impl TrafficModel {
    /// Every visitor of the run, with their visits and calls, from `seed`. Times are simulated
    /// milliseconds from `start` (a midnight).
    pub fn visitors(&self, seed: u64, start: Millis) -> Vec<Visitor> {
        let mut rng = StdRng::seed_from_u64(seed);
        let end = start + Millis::from(self.hours) * HOUR_MS;
        let arrivals = poisson_arrivals(&mut rng, self.visitors_per_day, &self.curve, start, end);
        let mut visitors: Vec<Visitor> = arrivals
            .into_iter()
            .enumerate()
            .map(|(i, at)| self.visitor(&mut rng, i, at))
            .collect();
        if self.offline_calls_per_day > 0.0 {
            // Their own stream and numbers: a later end adds visitors without changing them.
            let mut rng = StdRng::seed_from_u64(seed ^ 0x0ff1_11e5);
            let first = OFFLINE_CALLERS;
            let dialled = poisson_arrivals(
                &mut rng,
                self.offline_calls_per_day,
                &self.curve,
                start,
                end,
            );
            for (i, at) in dialled.into_iter().enumerate() {
                let mut calls = vec![self.call(&mut rng, at, CallTiming::Offline)];
                self.maybe_repeat(&mut rng, at, &mut calls);
                visitors.push(Visitor {
                    source: Source::Print,
                    ip: ip_of(first + i),
                    user_agent: USER_AGENTS[0],
                    ga_client_id: None,
                    phone: self.phone_of(first + i),
                    city: city_of(first + i),
                    visits: Vec::new(),
                    calls,
                });
            }
        }
        visitors
    }

    fn visitor(&self, rng: &mut StdRng, index: usize, arrival: Millis) -> Visitor {
        let source = self.mix.pick(rng);
        let (landing, referrer) = source.landing(rng);
        let first = self.visit(rng, arrival, landing, referrer);
        let mut visits = vec![first];
        if rng.random_bool(self.return_share.clamp(0.0, 1.0)) {
            // Back within a few days, typing the address or from a bookmark.
            let hours_later = lognormal(rng, 18.0, 0.9).clamp(1.0, 96.0);
            let back = visits[0].leave_at + (hours_later * HOUR_MS as f64) as Millis;
            visits.push(self.visit(rng, back, format!("{SITE_ORIGIN}/"), None));
        }
        let mut calls = Vec::new();
        if rng.random_bool(self.call_share.clamp(0.0, 1.0)) {
            let visit = &visits[0];
            let x: f64 = rng.random();
            let (at, timing) = if x < self.during_share {
                let opened = visit.views[0].at + 10 * SECOND_MS;
                let at = if visit.leave_at > opened {
                    rng.random_range(opened..visit.leave_at)
                } else {
                    visit.leave_at
                };
                (at, CallTiming::DuringVisit)
            } else if x < self.during_share + self.after_share {
                let minutes = lognormal(rng, 6.0, 0.8).clamp(0.5, 120.0);
                (
                    visit.leave_at + (minutes * MINUTE_MS as f64) as Millis,
                    CallTiming::AfterLeaving,
                )
            } else {
                let hours = rng.random_range(1.0..30.0);
                (
                    visit.leave_at + (hours * HOUR_MS as f64) as Millis,
                    CallTiming::Later,
                )
            };
            calls.push(self.call(rng, at, timing));
            self.maybe_repeat(rng, at, &mut calls);
        }
        let ga_client_id = rng.random_bool(self.ga_share.clamp(0.0, 1.0)).then(|| {
            format!(
                "{}.{}",
                rng.random_range(100_000_000u64..2_147_483_647),
                1_700_000_000 + rng.random_range(0..50_000_000u64)
            )
        });
        Visitor {
            source,
            ip: ip_of(index),
            user_agent: USER_AGENTS[rng.random_range(0..USER_AGENTS.len())],
            ga_client_id,
            phone: self.phone_of(index),
            city: city_of(index),
            visits,
            calls,
        }
    }

    /// A second call from some callers, hours or days after the first.
    fn maybe_repeat(&self, rng: &mut StdRng, first: Millis, calls: &mut Vec<PlannedCall>) {
        if rng.random_bool(self.repeat_share.clamp(0.0, 1.0)) {
            let hours = rng.random_range(1.0..72.0);
            calls.push(self.call(
                rng,
                first + (hours * HOUR_MS as f64) as Millis,
                CallTiming::Repeat,
            ));
        }
    }

    fn visit(
        &self,
        rng: &mut StdRng,
        arrival: Millis,
        landing: String,
        referrer: Option<String>,
    ) -> Visit {
        let pages = lognormal(rng, self.pages_median, self.pages_sigma)
            .round()
            .clamp(1.0, 40.0) as usize;
        let mut views = vec![PageView {
            at: arrival,
            url: landing,
            referrer,
        }];
        let mut at = arrival;
        for _ in 1..pages {
            at += self.dwell(rng);
            let previous = views.last().map(|v| v.url.clone());
            views.push(PageView {
                at,
                url: format!("{SITE_ORIGIN}{}", PAGES[rng.random_range(0..PAGES.len())]),
                referrer: previous,
            });
        }
        Visit {
            views,
            leave_at: at + self.dwell(rng),
        }
    }

    fn dwell(&self, rng: &mut StdRng) -> Millis {
        let seconds = lognormal(rng, self.dwell_median_s, self.dwell_sigma);
        ((seconds * 1000.0) as Millis).clamp(2 * SECOND_MS, MAX_DWELL_MS)
    }

    fn call(&self, rng: &mut StdRng, at: Millis, timing: CallTiming) -> PlannedCall {
        let ending = match &self.answering {
            None if rng.random_bool(0.85) => Ending::Answered,
            None => Ending::NoAnswer,
            Some(answering) => {
                let odds = answering.odds(self.curve.local(at));
                let x: f64 = rng.random();
                if x < odds.answered {
                    Ending::Answered
                } else if x < odds.answered + odds.busy {
                    Ending::Busy
                } else if x < odds.answered + odds.busy + odds.hung_up {
                    Ending::HungUp
                } else {
                    Ending::NoAnswer
                }
            }
        };
        PlannedCall {
            at,
            timing,
            ring_s: match ending {
                Ending::Answered => rng.random_range(3..18),
                Ending::NoAnswer => 20,
                Ending::Busy => 1,
                Ending::HungUp => rng.random_range(4..14),
            },
            talk_s: (ending == Ending::Answered)
                .then(|| lognormal(rng, 150.0, 0.9).clamp(5.0, 3_600.0) as i64),
            ending,
        }
    }
}

/// A log-normal draw with this median (the median of a log-normal is e^μ).
fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    match LogNormal::new(median.max(f64::MIN_POSITIVE).ln(), sigma.max(0.0)) {
        Ok(d) => d.sample(rng),
        Err(_) => median,
    }
}

/// A distinct documentation address per visitor (2001:db8::/32: no geo database places it),
/// each in its own /64, as each household's network is (the service counts new sessions per
/// /64).
fn ip_of(index: usize) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        (index >> 16) as u16,
        index as u16,
        0,
        0,
        0,
        1,
    ))
}

/// Cities around San Francisco Bay, weighted by how many of the callers live there, as Twilio
/// names them (`FromCity`, `FromState`).
const CITIES: [(&str, &str, u64); 10] = [
    ("SAN FRANCISCO", "CA", 30),
    ("OAKLAND", "CA", 16),
    ("SAN JOSE", "CA", 12),
    ("BERKELEY", "CA", 8),
    ("DALY CITY", "CA", 7),
    ("SAN MATEO", "CA", 7),
    ("FREMONT", "CA", 6),
    ("HAYWARD", "CA", 6),
    ("WALNUT CREEK", "CA", 5),
    ("PALO ALTO", "CA", 3),
];

/// A visitor's phone's city: weighted, and fixed by the index (no draw from the run's stream,
/// so adding it left every seed's traffic as it was).
fn city_of(index: usize) -> (&'static str, &'static str) {
    let total: u64 = CITIES.iter().map(|c| c.2).sum();
    let mut x = ((index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % total;
    for (city, state, weight) in CITIES {
        if x < weight {
            return (city, state);
        }
        x -= weight;
    }
    (CITIES[0].0, CITIES[0].1)
}

impl TrafficModel {
    /// The number a visitor calls from, or Twilio's anonymous `From` for the share who
    /// withhold it; fixed by the index, so every call of a visitor comes from the same phone
    /// (and no draw from the run's stream: adding it left every seed's traffic as it was).
    fn phone_of(&self, index: usize) -> String {
        let draw = ((index as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 40) % 10_000;
        if (draw as f64) < self.withheld_share * 10_000.0 {
            return WITHHELD.to_owned();
        }
        phone_of(index)
    }
}

/// Twilio's `From` for a caller who withholds their number.
const WITHHELD: &str = "+266696687";

/// A distinct, valid US number per visitor (NANP: area code, exchange 200-999, line).
fn phone_of(index: usize) -> String {
    const AREAS: [u32; 6] = [415, 510, 650, 408, 925, 707];
    let area = AREAS[(index / 8_000_000) % AREAS.len()];
    let n = index % 8_000_000;
    format!("+1{area}{:03}{:04}", 200 + n / 10_000, n % 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_arrivals_have_the_configured_mean_and_exponential_gaps() {
        let mut rng = StdRng::seed_from_u64(7);
        let days = 200;
        let arrivals = poisson_arrivals(&mut rng, 480.0, &DailyCurve::flat(), 0, days * DAY_MS);
        let per_day = arrivals.len() as f64 / days as f64;
        // 96 000 expected; the standard deviation is about 310, so 1% is over 3 of them.
        assert!((per_day - 480.0).abs() < 4.8, "{per_day} a day");
        // Exponential gaps: the mean equals the standard deviation (3 minutes here).
        let gaps: Vec<f64> = arrivals.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!(
            (mean - 3.0 * MINUTE_MS as f64).abs() < 0.02 * 3.0 * MINUTE_MS as f64,
            "{mean}"
        );
        assert!((sd / mean - 1.0).abs() < 0.03, "sd/mean {}", sd / mean);
    }

    #[test]
    fn the_daily_curve_keeps_the_daily_total_and_puts_the_day_above_the_night() {
        let mut rng = StdRng::seed_from_u64(11);
        let curve = DailyCurve::business_day();
        let days = 100;
        let arrivals = poisson_arrivals(&mut rng, 1_000.0, &curve, 0, days * DAY_MS);
        let per_day = arrivals.len() as f64 / days as f64;
        assert!((per_day - 1_000.0).abs() < 15.0, "{per_day} a day");
        let in_hour = |h: i64| {
            arrivals
                .iter()
                .filter(|a| (*a).rem_euclid(DAY_MS) / HOUR_MS == h)
                .count() as f64
        };
        let expected = |h: usize| curve.weights[h] * 1_000.0 / 24.0 * days as f64;
        for h in [3usize, 12] {
            let got = in_hour(h as i64);
            assert!(
                (got - expected(h)).abs() < 0.06 * expected(h),
                "hour {h}: {got}"
            );
        }
        assert!(in_hour(12) > 10.0 * in_hour(3));
        assert!((curve.weights.iter().sum::<f64>() / 24.0 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic() {
        let model = TrafficModel {
            hours: 24,
            visitors_per_day: 300.0,
            ..TrafficModel::default()
        };
        let digest = |v: &[Visitor]| -> Vec<(Millis, usize, usize)> {
            v.iter()
                .map(|x| {
                    (
                        x.visits[0].views[0].at,
                        x.visits[0].views.len(),
                        x.calls.len(),
                    )
                })
                .collect()
        };
        let a = model.visitors(1, 0);
        assert_eq!(digest(&a), digest(&model.visitors(1, 0)));
        assert_ne!(digest(&a), digest(&model.visitors(2, 0)));
    }

    #[test]
    fn visits_and_calls_follow_the_model() {
        let model = TrafficModel {
            hours: 24 * 10,
            visitors_per_day: 1_000.0,
            ..TrafficModel::default()
        };
        let visitors = model.visitors(3, 0);
        let n = visitors.len() as f64;
        // Log-normal page counts with median 3: half the visits at 3 pages or fewer.
        let short = visitors
            .iter()
            .filter(|v| v.visits[0].views.len() <= 3)
            .count() as f64;
        assert!((short / n - 0.5).abs() < 0.1, "{}", short / n);
        let callers = visitors.iter().filter(|v| !v.calls.is_empty()).count() as f64;
        assert!(
            (callers / n - model.call_share).abs() < 0.01,
            "{}",
            callers / n
        );
        for v in &visitors {
            let visit = &v.visits[0];
            assert!(visit.views.windows(2).all(|w| w[0].at < w[1].at));
            assert!(visit.leave_at > visit.views.last().unwrap().at);
            for c in &v.calls {
                match c.timing {
                    CallTiming::DuringVisit => {
                        assert!(c.at >= visit.views[0].at && c.at <= visit.leave_at)
                    }
                    _ => assert!(c.at > visit.leave_at),
                }
            }
            // Later pages come from the page before them.
            for w in visit.views.windows(2) {
                assert_eq!(w[1].referrer.as_deref(), Some(w[0].url.as_str()));
            }
        }
        let paid = visitors.iter().filter(|v| v.source == Source::Paid).count() as f64;
        assert!((paid / n - 0.25).abs() < 0.02, "{}", paid / n);
    }

    #[test]
    fn a_mix_parses_and_bad_ones_say_why() {
        let mix: ChannelMix = "paid=1, direct=3".parse().unwrap();
        assert_eq!(
            mix.weights,
            vec![(Source::Paid, 1.0), (Source::Direct, 3.0)]
        );
        for bad in ["paid", "tv=3", "paid=-1", "paid=0", ""] {
            assert!(bad.parse::<ChannelMix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_share_of_callers_withhold_their_number_always_the_same_ones() {
        let model = TrafficModel::default();
        let withheld = (0..20_000)
            .filter(|&i| model.phone_of(i) == WITHHELD)
            .count();
        assert!((800..1_200).contains(&withheld), "{withheld} of 20 000");
        assert_eq!(model.phone_of(12), model.phone_of(12));
        let none = TrafficModel {
            withheld_share: 0.0,
            ..TrafficModel::default()
        };
        assert!((0..20_000).all(|i| none.phone_of(i) != WITHHELD));
    }

    #[test]
    fn visitor_phones_are_distinct_valid_numbers() {
        let phones: std::collections::HashSet<String> = (0..20_000).map(phone_of).collect();
        assert_eq!(phones.len(), 20_000);
        for p in phones.iter().take(50) {
            crate::domain::PhoneNumber::parse("From", p).expect(p);
        }
    }

    #[test]
    fn a_business_week_is_local_busier_on_weekdays_and_by_day() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let curve = DailyCurve::business_week(tz);
        // 2026-03-02T20:00Z is Monday noon in Los Angeles (UTC-8), 08:00Z Monday midnight.
        let monday_noon = 1_772_481_600_000;
        assert_eq!(curve.local(monday_noon), (0, 12));
        assert!(curve.weight_at(monday_noon) > 5.0 * curve.weight_at(monday_noon - 12 * HOUR_MS));
        let sunday_noon = monday_noon - DAY_MS;
        assert_eq!(curve.local(sunday_noon), (6, 12));
        assert!(curve.weight_at(monday_noon) > 2.0 * curve.weight_at(sunday_noon));
        // Over whole weeks the mean rate is still `per_day`.
        let mut rng = StdRng::seed_from_u64(5);
        let weeks = 20;
        let start = monday_noon - 12 * HOUR_MS;
        let arrivals = poisson_arrivals(&mut rng, 500.0, &curve, start, start + weeks * 7 * DAY_MS);
        let per_day = arrivals.len() as f64 / (weeks * 7) as f64;
        assert!((per_day - 500.0).abs() < 10.0, "{per_day} a day");
    }

    #[test]
    fn printed_number_callers_and_opening_hours_shape_the_calls() {
        let tz: Tz = "America/Los_Angeles".parse().unwrap();
        let model = TrafficModel {
            hours: 24 * 28,
            visitors_per_day: 300.0,
            call_share: 0.3,
            curve: DailyCurve::business_week(tz),
            offline_calls_per_day: 5.0,
            answering: Some(Answering::plumber()),
            ..TrafficModel::default()
        };
        let visitors = model.visitors(9, 1_772_438_400_000);
        let offline: Vec<&Visitor> = visitors.iter().filter(|v| v.visits.is_empty()).collect();
        let n = offline.len() as f64 / 28.0;
        assert!((n - 5.0).abs() < 1.5, "{n} printed-number callers a day");
        assert!(
            offline
                .iter()
                .all(|v| v.source == Source::Print && v.calls[0].timing == CallTiming::Offline)
        );
        let calls: Vec<&PlannedCall> = visitors.iter().flat_map(|v| &v.calls).collect();
        let answering = Answering::plumber();
        let share = |open: bool, ending: Ending| {
            let those: Vec<_> = calls
                .iter()
                .filter(|c| {
                    let (day, hour) = model.curve.local(c.at);
                    let (from, to) = answering.hours[day];
                    (from..to).contains(&hour) == open
                })
                .collect();
            those.iter().filter(|c| c.ending == ending).count() as f64 / those.len() as f64
        };
        assert!(
            share(true, Ending::Answered) > 0.78,
            "{}",
            share(true, Ending::Answered)
        );
        assert!(share(false, Ending::Answered) < 0.6);
        assert!(share(true, Ending::Busy) > 0.02);
        assert!(share(true, Ending::HungUp) > 0.02);
        for c in &calls {
            assert_eq!(c.talk_s.is_some(), c.ending == Ending::Answered);
        }
        let cities: std::collections::HashSet<_> = visitors.iter().map(|v| v.city).collect();
        assert!(cities.len() >= 8, "{cities:?}");
    }
}
