//! The traffic model: who visits, from which channel, for how long, and who calls when. Pure and
//! seeded: one seed gives the same visitors and calls whatever the pool size, so a sweep compares
//! pool sizes on identical traffic.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

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

/// Visits per hour of the (UTC) day, relative to each other: quiet at night, a plateau from late
/// morning to the afternoon, as a local business's site sees. Normalised to a mean of 1.
const DAILY_SHAPE: [f64; 24] = [
    0.15, 0.10, 0.08, 0.07, 0.08, 0.15, 0.35, 0.60, 0.90, 1.10, 1.25, 1.30, 1.30, 1.30, 1.30, 1.25,
    1.20, 1.15, 1.10, 1.05, 0.95, 0.75, 0.50, 0.30,
];

/// The arrival rate's shape over a day: the rate at hour h is `per_day / 24 × weight(h)`.
#[derive(Debug, Clone)]
pub struct DailyCurve {
    weights: [f64; 24],
}

impl DailyCurve {
    /// The default day (busy by day, quiet at night).
    pub fn business_day() -> Self {
        Self::from_shape(DAILY_SHAPE)
    }

    /// The same rate all day (for tests and for a model without a daily cycle).
    pub fn flat() -> Self {
        Self::from_shape([1.0; 24])
    }

    fn from_shape(shape: [f64; 24]) -> Self {
        let mean = shape.iter().sum::<f64>() / 24.0;
        Self {
            weights: shape.map(|w| w / mean),
        }
    }

    /// The weight at a simulated time (hours of the UTC day; the simulation starts at midnight).
    pub fn weight_at(&self, at: Millis) -> f64 {
        self.weights[(at.rem_euclid(DAY_MS) / HOUR_MS) as usize]
    }

    /// The busiest hour's weight: the peak rate over the mean.
    pub fn peak(&self) -> f64 {
        self.weights.iter().copied().fold(0.0, f64::max)
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
}

impl Source {
    pub const ALL: [Source; 6] = [
        Source::Paid,
        Source::Organic,
        Source::Social,
        Source::Email,
        Source::Direct,
        Source::Referral,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Paid => "paid",
            Source::Organic => "organic",
            Source::Social => "social",
            Source::Email => "email",
            Source::Direct => "direct",
            Source::Referral => "referral",
        }
    }

    /// The GA4 channel the service should classify this visit as.
    pub fn channel(self) -> &'static str {
        match self {
            Source::Paid => "Paid Search",
            Source::Organic => "Organic Search",
            Source::Social => "Organic Social",
            Source::Email => "Email",
            Source::Direct => "Direct",
            Source::Referral => "Referral",
        }
    }

    /// The landing URL and the referrer of a visit's first page.
    fn landing(self, rng: &mut StdRng) -> (String, Option<String>) {
        let page = PAGES[rng.random_range(0..PAGES.len())];
        let url = |path: &str| format!("{SITE_ORIGIN}{path}");
        let pick =
            |rng: &mut StdRng, list: &[&str]| list[rng.random_range(0..list.len())].to_owned();
        match self {
            Source::Paid => {
                let (campaign, term) = [
                    ("blocked-drains", "drain+cleaning"),
                    ("water-heaters", "water+heater+repair"),
                    ("emergency", "emergency+plumber"),
                ][rng.random_range(0..3)];
                let gclid: String = (0..24)
                    .map(|_| {
                        char::from(
                            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
                                [rng.random_range(0..64)],
                        )
                    })
                    .collect();
                (
                    url(&format!(
                        "/services/drains?utm_source=google&utm_medium=cpc&utm_campaign={campaign}&utm_term={term}&gclid={gclid}"
                    )),
                    Some("https://www.google.com/".to_owned()),
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
        }
    }
}

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
                    format!("`{name}` is not one of paid, organic, social, email, direct, referral")
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
}

impl CallTiming {
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
    /// Share of visitors who come back for a second visit (with their stored session).
    pub return_share: f64,
    /// Share of visitors whose browser has a Google Analytics `_ga` cookie.
    pub ga_share: f64,
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
            return_share: 0.15,
            ga_share: 0.6,
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
    /// The first visit, and a return visit if any (with the session kept in storage).
    pub visits: Vec<Visit>,
    pub calls: Vec<PlannedCall>,
}

const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];

/// The longest time on one page (a tab left open all day is not a visit).
const MAX_DWELL_MS: Millis = 45 * MINUTE_MS;

impl TrafficModel {
    /// Every visitor of the run, with their visits and calls, from `seed`. Times are simulated
    /// milliseconds from `start` (a midnight).
    pub fn visitors(&self, seed: u64, start: Millis) -> Vec<Visitor> {
        let mut rng = StdRng::seed_from_u64(seed);
        let end = start + Millis::from(self.hours) * HOUR_MS;
        let arrivals = poisson_arrivals(&mut rng, self.visitors_per_day, &self.curve, start, end);
        arrivals
            .into_iter()
            .enumerate()
            .map(|(i, at)| self.visitor(&mut rng, i, at))
            .collect()
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
            if rng.random_bool(self.repeat_share.clamp(0.0, 1.0)) {
                let hours = rng.random_range(1.0..72.0);
                calls.push(self.call(
                    rng,
                    at + (hours * HOUR_MS as f64) as Millis,
                    CallTiming::Repeat,
                ));
            }
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
            ip: IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                (index >> 16) as u16,
                index as u16,
            )),
            user_agent: USER_AGENTS[rng.random_range(0..USER_AGENTS.len())],
            ga_client_id,
            phone: phone_of(index),
            visits,
            calls,
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
        let answered = rng.random_bool(0.85);
        PlannedCall {
            at,
            timing,
            ring_s: if answered {
                rng.random_range(3..18)
            } else {
                20
            },
            talk_s: answered.then(|| lognormal(rng, 150.0, 0.9).clamp(5.0, 3_600.0) as i64),
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
    fn visitor_phones_are_distinct_valid_numbers() {
        let phones: std::collections::HashSet<String> = (0..20_000).map(phone_of).collect();
        assert_eq!(phones.len(), 20_000);
        for p in phones.iter().take(50) {
            crate::domain::PhoneNumber::parse("From", p).expect(p);
        }
    }
}
