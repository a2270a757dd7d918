//! Figures as people read them: percentages, seconds, money in the property's currency.

use serde_json::Value;

use crate::reports::report::Benchmark;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Percent,
    Seconds,
    Money,
    Number,
}

/// How a report figure (named as in the README's "Reports") is read.
fn unit_of(figure: &str) -> Unit {
    if figure.ends_with("_rate")
        || matches!(
            figure,
            "roi" | "service_level" | "first_call_resolution" | "csat"
        )
    {
        Unit::Percent
    } else if figure.contains("cost") || figure.contains("revenue") || figure == "ad_spend" {
        Unit::Money
    } else if figure.ends_with("_s") {
        Unit::Seconds
    } else if matches!(figure, "avg_csat" | "calls_per_100_sessions") {
        Unit::Number
    } else {
        Unit::Count
    }
}

fn number(v: f64, unit: Unit, currency: &str) -> String {
    match unit {
        Unit::Count => format!("{v:.0}"),
        Unit::Percent => format!("{:.1}%", v * 100.0),
        Unit::Seconds => format!("{v:.1} s"),
        Unit::Money => format!("{v:.2} {currency}"),
        Unit::Number => format!("{v:.2}"),
    }
}

/// A figure's value; a figure without a denominator (null) is a dash.
pub fn figure(name: &str, value: &Value, currency: &str) -> String {
    match value.as_f64() {
        Some(v) => number(v, unit_of(name), currency),
        None => "–".to_owned(),
    }
}

/// A benchmark as a range (`5.0%–8.0%`) or a single value.
pub fn benchmark(name: &str, b: &Benchmark) -> String {
    let unit = unit_of(name);
    let (low, high) = (number(b.low, unit, ""), number(b.high, unit, ""));
    let bound = if b.better == "higher" { "≥" } else { "≤" };
    if low == high {
        format!("{bound} {}", low.trim_end())
    } else {
        format!("{}–{}", low.trim_end(), high.trim_end())
    }
}

/// `avg_speed_of_answer_s` → `Avg speed of answer`.
pub fn label(figure: &str) -> String {
    let words = figure
        .strip_suffix("_s")
        .unwrap_or(figure)
        .replace('_', " ");
    let words = words.replace("roi", "ROI").replace("csat", "CSAT");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn figures_read_in_their_units() {
        assert_eq!(figure("calls", &json!(12), "USD"), "12");
        assert_eq!(figure("conversion_rate", &json!(0.025), "USD"), "2.5%");
        assert_eq!(figure("cost_per_call", &json!(4.5), "EUR"), "4.50 EUR");
        assert_eq!(
            figure("avg_speed_of_answer_s", &json!(34.4), "USD"),
            "34.4 s"
        );
        assert_eq!(figure("roi", &Value::Null, "USD"), "–");
        assert_eq!(label("avg_speed_of_answer_s"), "Avg speed of answer");
        assert_eq!(label("csat"), "CSAT");
        let b = Benchmark {
            low: 0.05,
            high: 0.08,
            better: "lower",
            source: "",
        };
        assert_eq!(benchmark("abandonment_rate", &b), "5.0%–8.0%");
    }
}
