//! The attribution report and the call-centre (service) report: the rollups of a range of local
//! days, summed per value of one dimension, with costs shared out (see `costs`), as rows and
//! totals. Every figure is defined once, in `README.md` ("Reports"), and computed here.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::costs::{self, CallWeights};
use super::csv::{Cell, CsvWriter};
use super::{Dimension, Rollups, day_bounds, day_string, local_day, property_tz, weekday_name};
use crate::storage::{CallSums, Counters, Property, Storage, StorageResult, counter as c};
use crate::time::Millis;

/// The longest range a report covers (unique callers are exact within it).
pub const MAX_DAYS: i64 = 366;

/// One row's sums before figures are derived.
#[derive(Debug, Clone, Default)]
pub struct RowSums {
    pub counters: Counters,
    pub unique_callers: i64,
    pub unique_no_repeat_7d: i64,
    /// None where sessions have no value under the dimension (a caller's city).
    pub sessions: Option<i64>,
    pub ad_spend_micros: f64,
    pub telephony_micros: f64,
    pub operating_micros: f64,
}

impl RowSums {
    fn add(&mut self, o: &RowSums) {
        self.counters.add(&o.counters);
        self.unique_callers += o.unique_callers;
        self.unique_no_repeat_7d += o.unique_no_repeat_7d;
        self.sessions = match (self.sessions, o.sessions) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.ad_spend_micros += o.ad_spend_micros;
        self.telephony_micros += o.telephony_micros;
        self.operating_micros += o.operating_micros;
    }
}

/// A report's rows (value, sums) in display order, and its totals.
#[derive(Debug, Clone)]
pub struct Summed {
    pub property_id: String,
    pub currency: String,
    pub dimension: Dimension,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub rows: Vec<(String, RowSums)>,
    pub totals: RowSums,
}

/// Reads and sums a range (rebuilding its dirty days first, so every earlier write shows).
pub async fn summarise(
    storage: &Storage,
    rollups: &Rollups,
    property: &Property,
    dimension: Dimension,
    from: NaiveDate,
    to: NaiveDate,
    now: Millis,
) -> StorageResult<Summed> {
    let tz = property_tz(&property.timezone);
    let (start, _) = day_bounds(tz, from);
    let (_, end) = day_bounds(tz, to);
    rollups.refresh(&property.id, start, end).await?;

    let (stored, by_day) = dimension.stored();
    let (from_s, to_s) = (day_string(from), day_string(to));
    let label = |v: String| -> String {
        match dimension {
            Dimension::Weekday => NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                .map(|d| weekday_name(d).to_owned())
                .unwrap_or(v),
            _ => v,
        }
    };

    let mut rows: BTreeMap<String, RowSums> = BTreeMap::new();
    let mut weights = CallWeights::default();
    let mut minutes: BTreeMap<String, i64> = BTreeMap::new();
    for s in storage
        .call_sums(&property.id, stored, by_day, &from_s, &to_s)
        .await?
    {
        let CallSums {
            value,
            channel,
            counters,
        } = s;
        let value = label(value);
        weights.add(&value, &channel, counters.0[c::CALLS]);
        *minutes.entry(value.clone()).or_default() += counters.0[c::BILLABLE_MINUTES];
        rows.entry(value).or_default().add(&RowSums {
            unique_callers: counters.0[c::NEW_CALLERS],
            unique_no_repeat_7d: counters.0[c::NEW_CALLERS_NO_REPEAT],
            counters,
            ..Default::default()
        });
    }
    // Repeat callers whose previous call was before the range are first in it too.
    for (value, n) in storage
        .repeat_sums(&property.id, stored, by_day, &from_s, &to_s)
        .await?
    {
        rows.entry(label(value)).or_default().add(&RowSums {
            unique_callers: n.calls,
            unique_no_repeat_7d: n.no_repeat_7d,
            ..Default::default()
        });
    }
    // Every session has exactly one value under each dimension sessions have, so their sum is
    // the total; only a calls-only dimension needs the total read apart.
    let total_sessions: i64 = if dimension.has_sessions() {
        let mut total = 0;
        for (value, n) in storage
            .session_sums(&property.id, stored, by_day, &from_s, &to_s)
            .await?
        {
            total += n;
            rows.entry(label(value)).or_default().add(&RowSums {
                sessions: Some(n),
                ..Default::default()
            });
        }
        total
    } else {
        storage
            .session_sums(&property.id, "channel", false, &from_s, &to_s)
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum()
    };

    // Costs accrue for days that have begun.
    let today = local_day(tz, now);
    let days: Vec<NaiveDate> = from
        .iter_days()
        .take_while(|d| *d <= to.min(today))
        .collect();
    let settings = storage.cost_settings(&property.id).await?;
    let ads = costs::ad_spend(&storage.ad_costs(&property.id, &from_s, &to_s).await?);
    let pools = storage
        .list_pools(&property.account_id, &property.id)
        .await?;
    let rental = costs::number_rental(&pools, tz, &days);
    let operating = costs::prorated(settings.operating_cost_monthly_micros, &days);
    let rate = settings.per_minute_cost_micros as f64;
    for (value, micros) in costs::allocate(&ads, dimension, &weights) {
        rows.entry(value).or_default().ad_spend_micros += micros;
    }
    for (value, micros) in costs::allocate(&rental, dimension, &weights) {
        rows.entry(value).or_default().telephony_micros += micros;
    }
    for (value, m) in minutes {
        rows.entry(value).or_default().telephony_micros += m as f64 * rate;
    }
    for (value, micros) in weights.share_all(operating) {
        rows.entry(value).or_default().operating_micros += micros;
    }

    let mut totals = RowSums::default();
    for r in rows.values() {
        totals.add(r);
    }
    totals.sessions = Some(total_sessions);
    if !dimension.has_sessions() {
        for r in rows.values_mut() {
            r.sessions = None;
        }
    } else {
        for r in rows.values_mut() {
            r.sessions.get_or_insert(0);
        }
    }
    // The operating cost is there even when no call is.
    totals.operating_micros = operating;
    let mut rows: Vec<(String, RowSums)> = rows.into_iter().collect();
    sort_rows(dimension, &mut rows);
    Ok(Summed {
        property_id: property.id.clone(),
        currency: property.currency.clone(),
        dimension,
        from,
        to,
        rows,
        totals,
    })
}

/// Weekdays in report order (Monday first).
pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn sort_rows(dimension: Dimension, rows: &mut [(String, RowSums)]) {
    match dimension {
        // Time reads in its own order.
        Dimension::Day | Dimension::Hour => rows.sort_by(|a, b| a.0.cmp(&b.0)),
        Dimension::Weekday => {
            rows.sort_by_key(|(v, _)| WEEKDAYS.iter().position(|w| w == v).unwrap_or(7))
        }
        // The rest by calls, most first.
        _ => rows.sort_by(|a, b| {
            b.1.counters.0[c::CALLS]
                .cmp(&a.1.counters.0[c::CALLS])
                .then_with(|| a.0.cmp(&b.0))
        }),
    }
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den)
}

fn round(v: Option<f64>, places: i32) -> Value {
    match v {
        Some(v) if v.is_finite() => {
            let f = 10f64.powi(places);
            json!((v * f).round() / f)
        }
        _ => Value::Null,
    }
}

fn money(micros: f64) -> f64 {
    micros / 1_000_000.0
}

/// The attribution report's figures, in column order.
pub const ATTRIBUTION_FIGURES: [&str; 26] = [
    "sessions",
    "calls",
    "unique_callers",
    "first_time_callers",
    "answered",
    "missed",
    "qualified",
    "conversions",
    "conversion_rate",
    "revenue",
    "cost",
    "cost_per_call",
    "cost_per_qualified_call",
    "cost_per_conversion",
    "revenue_per_call",
    "roi",
    "avg_duration_s",
    "avg_answer_s",
    "calls_per_100_sessions",
    "spam_calls",
    "ad_spend",
    "telephony_cost",
    "operating_cost",
    "operating_cost_per_call",
    "converted_calls",
    "cost_per_unique_caller",
];

pub fn attribution_figures(r: &RowSums) -> Map<String, Value> {
    let n = |i: usize| r.counters.0[i] as f64;
    let calls = n(c::CALLS);
    let cost = money(r.ad_spend_micros + r.telephony_micros);
    let revenue = money(n(c::REVENUE_MICROS));
    let values: [Value; 26] = [
        r.sessions.map_or(Value::Null, |s| json!(s)),
        json!(r.counters.0[c::CALLS]),
        json!(r.unique_callers),
        json!(r.counters.0[c::FIRST_TIME_CALLERS]),
        json!(r.counters.0[c::ANSWERED]),
        json!(r.counters.0[c::MISSED]),
        json!(r.counters.0[c::QUALIFIED]),
        json!(r.counters.0[c::CONVERSIONS]),
        round(ratio(n(c::CONVERSIONS), calls), 4),
        round(Some(revenue), 2),
        round(Some(cost), 2),
        round(ratio(cost, calls), 2),
        round(ratio(cost, n(c::QUALIFIED)), 2),
        round(ratio(cost, n(c::CONVERSIONS)), 2),
        round(ratio(revenue, calls), 2),
        round(ratio(revenue - cost, cost), 4),
        round(ratio(n(c::DURATION_S_SUM), n(c::DURATION_N)), 1),
        round(ratio(n(c::ANSWER_MS_SUM) / 1000.0, n(c::ANSWER_N)), 1),
        round(r.sessions.and_then(|s| ratio(100.0 * calls, s as f64)), 2),
        json!(r.counters.0[c::SPAM_CALLS]),
        round(Some(money(r.ad_spend_micros)), 2),
        round(Some(money(r.telephony_micros)), 2),
        round(Some(money(r.operating_micros)), 2),
        round(ratio(money(r.operating_micros), calls), 2),
        json!(r.counters.0[c::CONVERTED_CALLS]),
        round(ratio(cost, r.unique_callers as f64), 2),
    ];
    ATTRIBUTION_FIGURES
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The service report's figures, in column order.
pub const SERVICE_FIGURES: [&str; 19] = [
    "calls",
    "answered",
    "completion_rate",
    "blocked_rate",
    "missed_call_rate",
    "abandonment_rate",
    "service_level",
    "avg_speed_of_answer_s",
    "avg_handle_time_s",
    "avg_duration_s",
    "first_call_resolution",
    "appointment_rate",
    "resolution_rate",
    "escalation_rate",
    "avg_csat",
    "csat",
    "conversion_rate",
    "revenue_per_successful_call",
    "unique_callers",
];

pub fn service_figures(r: &RowSums) -> Map<String, Value> {
    let n = |i: usize| r.counters.0[i] as f64;
    let calls = n(c::CALLS);
    let answered = n(c::ANSWERED);
    let values: [Value; 19] = [
        json!(r.counters.0[c::CALLS]),
        json!(r.counters.0[c::ANSWERED]),
        round(ratio(answered, calls), 4),
        round(ratio(n(c::BLOCKED), calls), 4),
        round(ratio(n(c::MISSED), calls), 4),
        round(ratio(n(c::ABANDONED), calls), 4),
        round(ratio(n(c::ANSWERED_IN_20S), calls), 4),
        round(ratio(n(c::ANSWER_MS_SUM) / 1000.0, n(c::ANSWER_N)), 1),
        round(ratio(n(c::TALK_S_SUM), n(c::TALK_N)), 1),
        round(ratio(n(c::DURATION_S_SUM), n(c::DURATION_N)), 1),
        round(
            ratio(r.unique_no_repeat_7d as f64, r.unique_callers as f64),
            4,
        ),
        round(ratio(n(c::APPOINTMENTS), answered), 4),
        round(ratio(n(c::RESOLVED), answered), 4),
        round(ratio(n(c::ESCALATED), answered), 4),
        round(ratio(n(c::CSAT_SUM), n(c::CSAT_N)), 2),
        round(ratio(n(c::CSAT_SATISFIED), n(c::CSAT_N)), 4),
        round(ratio(n(c::CONVERSIONS), calls), 4),
        round(ratio(money(n(c::REVENUE_MICROS)), answered), 2),
        json!(r.unique_callers),
    ];
    SERVICE_FIGURES
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// A published industry benchmark for one figure.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Benchmark {
    pub low: f64,
    pub high: f64,
    /// Whether more is better ("higher") or less ("lower").
    pub better: &'static str,
    pub source: &'static str,
}

/// Published industry benchmarks by figure (figures are defined in the README).
pub const BENCHMARKS: [(&str, Benchmark); 8] = [
    (
        "service_level",
        Benchmark {
            low: 0.80,
            high: 0.80,
            better: "higher",
            source: "80% of calls answered within 20 s (industry standard service level)",
        },
    ),
    (
        "avg_speed_of_answer_s",
        Benchmark {
            low: 34.4,
            high: 34.4,
            better: "lower",
            source: "average speed of answer across industries, 34.4 s",
        },
    ),
    (
        "abandonment_rate",
        Benchmark {
            low: 0.05,
            high: 0.08,
            better: "lower",
            source: "call abandonment 5-8%",
        },
    ),
    (
        "first_call_resolution",
        Benchmark {
            low: 0.70,
            high: 0.75,
            better: "higher",
            source: "first-call resolution 70-75%",
        },
    ),
    (
        "csat",
        Benchmark {
            low: 0.75,
            high: 0.80,
            better: "higher",
            source: "customer satisfaction (share of 4 and 5 ratings) 75-80%",
        },
    ),
    (
        "escalation_rate",
        Benchmark {
            low: 0.10,
            high: 0.10,
            better: "lower",
            source: "escalation rate about 10%",
        },
    ),
    (
        "conversion_rate",
        Benchmark {
            low: 0.0235,
            high: 0.0235,
            better: "higher",
            source: "average conversion rate 2.35%",
        },
    ),
    (
        "avg_duration_s",
        Benchmark {
            low: 302.0,
            high: 302.0,
            better: "lower",
            source: "average call length 302 s",
        },
    ),
];

/// Where a figure stands against its benchmark: `better`, `within` or `worse`.
pub fn standing(figure: &str, value: &Value) -> Option<&'static str> {
    let (_, b) = BENCHMARKS.iter().find(|(f, _)| *f == figure)?;
    let v = value.as_f64()?;
    let (good, bad) = if b.better == "higher" {
        (v > b.high, v < b.low)
    } else {
        (v < b.low, v > b.high)
    };
    Some(if good {
        "better"
    } else if bad {
        "worse"
    } else {
        "within"
    })
}

/// Which report: attribution (money and volume) or service (the call centre's figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Attribution,
    Service,
}

impl Kind {
    fn figures(self) -> &'static [&'static str] {
        match self {
            Kind::Attribution => &ATTRIBUTION_FIGURES,
            Kind::Service => &SERVICE_FIGURES,
        }
    }

    fn row(self, r: &RowSums) -> Map<String, Value> {
        match self {
            Kind::Attribution => attribution_figures(r),
            Kind::Service => service_figures(r),
        }
    }
}

/// `{"from","to","group_by","currency","rows":[...],"totals":{...}}`, plus benchmarks and the
/// totals' standing against them in the service report.
pub fn to_json(s: &Summed, kind: Kind) -> Value {
    let name = s.dimension.as_str();
    let rows: Vec<Value> = s
        .rows
        .iter()
        .map(|(value, sums)| {
            let mut row = Map::new();
            row.insert(name.to_owned(), json!(value));
            row.extend(kind.row(sums));
            Value::Object(row)
        })
        .collect();
    let totals = kind.row(&s.totals);
    let mut out = json!({
        "property_id": s.property_id,
        "from": day_string(s.from),
        "to": day_string(s.to),
        "group_by": name,
        "currency": s.currency,
        "rows": rows,
    });
    if kind == Kind::Service {
        let benchmarks: Map<String, Value> = BENCHMARKS
            .iter()
            .map(|(f, b)| (f.to_string(), json!(b)))
            .collect();
        let standing: Map<String, Value> = totals
            .iter()
            .filter_map(|(f, v)| standing(f, v).map(|st| (f.clone(), json!(st))))
            .collect();
        out["benchmarks"] = Value::Object(benchmarks);
        out["standing"] = Value::Object(standing);
    }
    out["totals"] = Value::Object(totals);
    out
}

fn csv_cell(v: &Value) -> Cell<'_> {
    match v {
        Value::Null => Cell::empty(),
        Value::String(s) => Cell::text(s),
        other => Cell::number(other.to_string()),
    }
}

/// The same as CSV: a header, the rows, a `Total` row, and in the service report a `Benchmark`
/// row (`low-high`).
pub fn to_csv(s: &Summed, kind: Kind) -> Vec<u8> {
    let figures = kind.figures();
    let mut out = CsvWriter::new();
    out.row(
        std::iter::once(s.dimension.as_str())
            .chain(figures.iter().copied())
            .map(Cell::text),
    );
    let mut line = |label: &str, m: &Map<String, Value>| {
        out.row(std::iter::once(Cell::text(label)).chain(figures.iter().map(|f| csv_cell(&m[*f]))));
    };
    for (value, sums) in &s.rows {
        line(value, &kind.row(sums));
    }
    line("Total", &kind.row(&s.totals));
    if kind == Kind::Service {
        let bench: Map<String, Value> = BENCHMARKS
            .iter()
            .map(|(f, b)| {
                let text = if b.low == b.high {
                    b.low.to_string()
                } else {
                    format!("{}-{}", b.low, b.high)
                };
                (f.to_string(), json!(text))
            })
            .collect();
        let row: Map<String, Value> = figures
            .iter()
            .map(|f| (f.to_string(), bench.get(*f).cloned().unwrap_or(Value::Null)))
            .collect();
        line("Benchmark", &row);
    }
    out.into_bytes()
}
