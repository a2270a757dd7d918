//! The dashboard's pages. maud escapes every spliced value, so a campaign name or a landing page
//! is always text, never markup.

use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, html};
use serde_json::{Map, Value};

use super::charts;
use super::data::{Shown, TOP_ROWS};
use super::format;
use crate::attribution::view::CallView;
use crate::reports::report::{self, BENCHMARKS, RowSums, SERVICE_FIGURES, Summed};
use crate::reports::rollup::landing_page;
use crate::storage::{Account, Property};

/// The figures in the cards at the top.
const TOTALS: [&str; 10] = [
    "calls",
    "answered",
    "missed",
    "first_time_callers",
    "qualified",
    "conversions",
    "revenue",
    "cost",
    "cost_per_call",
    "avg_duration_s",
];
/// The channel table's columns.
const CHANNEL_COLUMNS: [&str; 8] = [
    "calls",
    "answered",
    "qualified",
    "conversions",
    "revenue",
    "cost",
    "cost_per_call",
    "roi",
];
/// The top campaigns' and landing pages' columns.
const TOP_COLUMNS: [&str; 4] = ["calls", "qualified", "conversions", "cost_per_call"];
/// The calls table's columns (the live feed's script fills the same ones, by `data-col`).
const CALL_COLUMNS: [(&str, &str); 11] = [
    ("time", "Time"),
    ("status", "Status"),
    ("caller", "Caller"),
    ("channel", "Channel"),
    ("source", "Source / medium"),
    ("campaign", "Campaign"),
    ("landing_page", "Landing page"),
    ("confidence", "Confidence"),
    ("visitor_city", "Visitor city"),
    ("duration", "Duration"),
    ("recording", "Recording"),
];

fn layout(title: &str, account: Option<&Account>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Switchboard" }
                // No favicon request (it would be a 404).
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/dashboard/assets/dashboard.css";
            }
            body {
                header.top {
                    a.brand href="/dashboard" { "Switchboard" }
                    @if let Some(account) = account {
                        span.account { (account.name) }
                        form.signout method="post" action="/dashboard/sign-out" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn sign_in(problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            section.panel.narrow {
                h1 { "Sign in" }
                p {
                    "Use one of your account's API keys (" code { "sb_key_…" } "). "
                    "This browser then keeps a session of its own for 12 hours; the key is not stored in it."
                }
                @if let Some(problem) = problem {
                    p.problem role="alert" { (problem) }
                }
                form.signin method="post" action="/dashboard/sign-in" {
                    label for="api_key" { "API key" }
                    input #api_key type="password" name="api_key" autocomplete="off" spellcheck="false" required;
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        None,
        html! {
            section.panel.narrow {
                h1 { (title) }
                p { (text) }
                p { a href="/dashboard" { "Back to the dashboard" } }
            }
        },
    )
}

pub fn no_properties(account: &Account) -> Markup {
    layout(
        "Dashboard",
        Some(account),
        html! {
            section.panel.narrow {
                h1 { "No properties yet" }
                p { "Create a property with " code { "POST /v1/properties" } " (see " a href="/openapi.json" { "the API" } "), then come back." }
            }
        },
    )
}

/// The property and range chooser.
pub struct Picker<'a> {
    pub properties: &'a [Property],
    pub chosen: &'a Property,
    pub from: &'a str,
    pub to: &'a str,
}

fn picker(p: &Picker<'_>) -> Markup {
    html! {
        form.picker method="get" action="/dashboard" {
            label {
                span { "Property" }
                select name="property" {
                    @for property in p.properties {
                        option value=(property.id) selected[property.id == p.chosen.id] { (property.name) }
                    }
                }
            }
            label { span { "From" } input type="date" name="from" value=(p.from) required; }
            label { span { "To" } input type="date" name="to" value=(p.to) required; }
            button type="submit" { "Show" }
        }
    }
}

pub fn bad_range(account: &Account, p: &Picker<'_>, problem: &str) -> Markup {
    layout(
        "Dashboard",
        Some(account),
        html! {
            (picker(p))
            p.problem role="alert" { "The range cannot be shown: " (problem) }
        },
    )
}

pub fn dashboard(account: &Account, p: &Picker<'_>, shown: &Shown<'_>) -> Markup {
    let currency = shown.property.currency.as_str();
    let totals = report::attribution_figures(&shown.channels.totals);
    let channel_names: Vec<String> = shown.channels.rows.iter().map(|(v, _)| v.clone()).collect();
    layout(
        &shown.property.name,
        Some(account),
        html! {
            (picker(p))
            h1 { (shown.property.name) " " small { (shown.range.from) " – " (shown.range.to) " (" (shown.property.timezone) ")" } }
            section #totals .cards {
                @for figure in TOTALS {
                    div.card data-figure=(figure) {
                        div.value { (format::figure(figure, &totals[figure], currency)) }
                        div.label { (format::label(figure)) }
                    }
                }
            }
            div.grid {
                section #over-time .panel.wide {
                    h2 { "Calls by channel, per day" }
                    div.scroll { (charts::channels_over_time(shown.range, &channel_names, &shown.channel_days)) }
                    ul.legend {
                        @for (i, name) in channel_names.iter().enumerate() {
                            li {
                                svg.swatch width="10" height="10" viewBox="0 0 10 10" { rect width="10" height="10" fill=(charts::colour(i)) {} }
                                (name)
                            }
                        }
                    }
                }
                section #channels .panel.wide {
                    h2 { "Channels" }
                    (figure_table("Channel", "channel", &shown.channels, &CHANNEL_COLUMNS, usize::MAX, currency))
                }
                section #campaigns .panel {
                    h2 { "Top campaigns" }
                    (figure_table("Campaign", "campaign", &shown.campaigns, &TOP_COLUMNS, TOP_ROWS, currency))
                }
                section #landing-pages .panel {
                    h2 { "Top landing pages" }
                    (figure_table("Landing page", "landing-page", &shown.landing_pages, &TOP_COLUMNS, TOP_ROWS, currency))
                }
                section #heat .panel.wide {
                    h2 { "Calls by weekday and hour" }
                    div.scroll { (charts::heat_map(&shown.hour_days)) }
                }
                section #recent .panel.wide {
                    h2 { "Recent and live calls " span #live-status .live-status { "connecting…" } }
                    div.scroll {
                        table #calls .data
                            data-feed={ "/v1/properties/" (shown.property.id) "/live" }
                            data-timezone=(shown.property.timezone) {
                            thead { tr { @for (_, title) in CALL_COLUMNS { th scope="col" { (title) } } } }
                            tbody {
                                @for call in &shown.recent { (call_row(call, shown.tz)) }
                            }
                        }
                    }
                    @if shown.recent.is_empty() {
                        p #no-calls .muted { "No calls in this range yet. New calls appear here as they ring." }
                    }
                }
                section #service .panel {
                    h2 { "Call centre" }
                    (service_table(&shown.channels.totals, currency))
                }
                section #pools .panel.wide {
                    h2 { "Pool health (last 24 h)" }
                    (pool_table(shown))
                }
            }
            script src="/dashboard/assets/live.js" defer {}
        },
    )
}

/// A report's rows (at most `limit`) under the given figures, with a total row.
fn figure_table(
    title: &str,
    key: &str,
    summed: &Summed,
    columns: &[&str],
    limit: usize,
    currency: &str,
) -> Markup {
    let figures = |sums: &RowSums| report::attribution_figures(sums);
    let cells = |m: &Map<String, Value>| {
        html! {
            @for figure in columns {
                td.num data-figure=(figure) { (format::figure(figure, &m[*figure], currency)) }
            }
        }
    };
    html! {
        div.scroll {
            table.data data-report=(key) {
                thead { tr { th scope="col" { (title) } @for f in columns { th.num scope="col" { (format::label(f)) } } } }
                tbody {
                    @for (value, sums) in summed.rows.iter().take(limit) {
                        tr data-value=(value) {
                            th scope="row" { (value) }
                            (cells(&figures(sums)))
                        }
                    }
                }
                tfoot { tr.total { th scope="row" { "Total" } (cells(&figures(&summed.totals))) } }
            }
        }
    }
}

fn call_row(call: &CallView, tz: Tz) -> Markup {
    let a = call.attribution.as_ref();
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    let caller = [call.caller.number.as_ref(), call.caller.city.as_ref()]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" · ");
    let source = a
        .map(|a| {
            [a.source.as_ref(), a.medium.as_ref()]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_default();
    let landing = a.and_then(|a| a.landing_page.as_deref());
    let recording = call
        .recording
        .as_ref()
        .map(|r| r.url.as_str())
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    html! {
        tr data-key={ (call.provider) ":" (call.provider_call_id) } {
            td data-col="time" { (call.started_at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S")) }
            td data-col="status" { (call.outcome.as_deref().unwrap_or(&call.status)) }
            td data-col="caller" { (caller) }
            td data-col="channel" { (a.map(|a| a.channel.clone()).unwrap_or_default()) }
            td data-col="source" { (source) }
            td data-col="campaign" { (text(a.and_then(|a| a.campaign.as_ref()))) }
            // Host and path, as the report groups them; the whole URL on hover.
            td data-col="landing_page" title=[landing] {
                @if let Some(url) = landing { (landing_page(Some(url))) }
            }
            td data-col="confidence" { (a.map(|a| a.confidence.clone()).unwrap_or_else(|| "pending".to_owned())) }
            td data-col="visitor_city" { (text(a.and_then(|a| a.visitor_city.as_ref()))) }
            td data-col="duration" { @if let Some(d) = call.duration_s { (d) " s" } }
            td data-col="recording" {
                @if let Some(url) = recording {
                    audio controls preload="none" src=(url) {}
                }
            }
        }
    }
}

fn service_table(totals: &RowSums, currency: &str) -> Markup {
    let figures = report::service_figures(totals);
    html! {
        div.scroll {
            table.data data-report="service" {
                thead { tr { th scope="col" { "Figure" } th.num scope="col" { "Value" } th.num scope="col" { "Benchmark" } th scope="col" { "Standing" } } }
                tbody {
                    @for figure in SERVICE_FIGURES {
                        @let value = &figures[figure];
                        @let bench = BENCHMARKS.iter().find(|(f, _)| *f == figure).map(|(_, b)| b);
                        @let standing = report::standing(figure, value);
                        tr data-figure=(figure) class=[standing] {
                            th scope="row" {
                                @if let Some(b) = bench { abbr title=(b.source) { (format::label(figure)) } }
                                @else { (format::label(figure)) }
                            }
                            td.num data-figure=(figure) { (format::figure(figure, value, currency)) }
                            td.num { @if let Some(b) = bench { (format::benchmark(figure, b)) } }
                            td.standing { (standing.unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

fn pool_table(shown: &Shown<'_>) -> Markup {
    html! {
        @if shown.pools.is_empty() {
            p.muted { "No pools yet." }
        } @else {
            div.scroll {
                table.data data-report="pools" {
                    thead { tr {
                        th scope="col" { "Pool" }
                        th.num scope="col" { "Numbers" }
                        th.num scope="col" { "Leased now" }
                        th.num scope="col" { "Utilisation" }
                        th.num scope="col" { "Peak leased" }
                        th.num scope="col" { "Exhaustions" }
                        th.num scope="col" title="New visitors refused a free number: the pool's budget of new leases for the minute was spent (a burst, or a pool being drained)" { "Over budget" }
                        th.num scope="col" { "Chance of exhaustion" }
                        th.num scope="col" { "Recommended size" }
                    } }
                    tbody {
                        @for (name, h) in &shown.pools {
                            tr data-pool=(name) class=[(h.recommended_size > h.numbers).then_some("worse")] {
                                th scope="row" { (name) }
                                td.num data-figure="numbers" { (h.numbers) }
                                td.num data-figure="leased_now" { (h.leased_now) }
                                td.num data-figure="utilisation" { (format!("{:.0}%", h.utilisation * 100.0)) }
                                td.num data-figure="peak_concurrent_leases" { (h.peak_concurrent_leases) }
                                td.num data-figure="exhaustion_events" { (h.exhaustion_events) }
                                td.num data-figure="budget_refusals" { (h.budget_refusals) }
                                td.num data-figure="exhaustion_probability" { (format!("{:.1}%", h.exhaustion_probability * 100.0)) }
                                td.num data-figure="recommended_size" { (h.recommended_size) }
                            }
                        }
                    }
                }
            }
        }
    }
}
