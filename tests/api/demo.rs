//! `switchboard demo` as an operator runs it: a month of a plumber's traffic played through the
//! real paths into a throwaway service, quiet logs, the summary printed last; then the service on
//! the real clock, read through the API and the dashboard with the printed key.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{dashboard_of, free_port, switchboard, terminate};

/// The value printed after `label` on a line of the summary.
fn printed<'a>(summary: &'a str, label: &str) -> &'a str {
    summary
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("no `{label}` in: {summary}"))
}

async fn get(base: &str, key: &str, path: &str) -> Value {
    let res = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "GET {path}: {}", res.status());
    res.json().await.unwrap()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_default()
}

#[tokio::test]
async fn demo_plays_a_month_through_the_real_paths_and_prints_its_summary_last() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = switchboard(dir.path(), &[("SWITCHBOARD_BIND", bind.as_str())])
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, from_demo) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // Read as it comes, so that a chatty log cannot fill the pipe and stall the demo.
    let mut stderr = child.stderr.take().unwrap();
    let logged = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    // Everything up to "Press Ctrl-C to stop.", which the demo prints as it starts serving.
    let mut summary = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match from_demo.recv_timeout(left) {
            Ok(line) => {
                summary.push_str(&line);
                summary.push('\n');
                if line == "Press Ctrl-C to stop." {
                    break;
                }
            }
            Err(e) => panic!("no end of the summary ({e}): {summary}"),
        }
    }
    eprintln!(
        "the demo served after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The summary opens with the month and closes with the dashboard, nothing in between but it.
    assert!(
        summary
            .trim_start()
            .starts_with("Switchboard demo: the last 30 days"),
        "{summary}"
    );
    let closing: Vec<&str> = summary.trim_end().lines().rev().take(2).collect();
    assert_eq!(closing[0], "Press Ctrl-C to stop.");
    assert!(
        closing[1].starts_with(&format!("Dashboard: http://{bind}/dashboard")),
        "{summary}"
    );
    for expected in [
        "Google Ads       8 numbers",
        "Print ads        1 number ",
        "<script async src=\"http://127.0.0.1:",
        "signed Twilio webhooks",
        "RUST_LOG=info",
    ] {
        assert!(summary.contains(expected), "{expected}: {summary}");
    }
    let key = printed(&summary, "API key:");
    let property = printed(&summary, "property:");
    assert!(key.starts_with("sb_key_"), "{summary}");
    let (from, to) = {
        let line = summary
            .lines()
            .find(|l| l.starts_with("Channel report, "))
            .unwrap_or_else(|| panic!("no channel report: {summary}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        (words[2].to_owned(), words[4].to_owned())
    };

    // The month, as the API reports it: every day of it has visits, calls come from most
    // channels, some are missed, some converted, and the costs are there.
    let base = format!("http://{bind}");
    let report = |group_by: &str| {
        format!(
            "/v1/properties/{property}/reports/attribution?from={from}&to={to}&group_by={group_by}"
        )
    };
    let days = get(&base, key, &report("day")).await;
    let days_with_sessions = days["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| int(&r["sessions"]) > 0)
        .count();
    assert!(days_with_sessions >= 25, "{days}");
    let channels = get(&base, key, &report("channel")).await;
    let with_calls: Vec<&str> = channels["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| int(&r["calls"]) > 0 && r["channel"] != "Unattributed")
        .map(|r| r["channel"].as_str().unwrap())
        .collect();
    assert!(with_calls.len() >= 5, "{with_calls:?}");
    for channel in ["Paid Search", "Organic Search", "Paid Social", "Direct"] {
        assert!(with_calls.contains(&channel), "{channel}: {with_calls:?}");
    }
    let totals = &channels["totals"];
    assert!(int(&totals["sessions"]) >= 1_000, "{totals}");
    assert!(int(&totals["calls"]) >= 150, "{totals}");
    assert!(int(&totals["missed"]) > 0, "{totals}");
    assert!(
        int(&totals["answered"]) > int(&totals["missed"]),
        "{totals}"
    );
    assert!(int(&totals["conversions"]) > 0, "{totals}");
    assert!(totals["revenue"].as_f64().unwrap() > 0.0, "{totals}");
    assert!(totals["ad_spend"].as_f64().unwrap() > 0.0, "{totals}");
    assert!(totals["telephony_cost"].as_f64().unwrap() > 0.0, "{totals}");
    assert!(totals["operating_cost"].as_f64().unwrap() > 0.0, "{totals}");
    // The printed report is the service's.
    let printed_total = summary
        .lines()
        .find(|l| l.trim_start().starts_with("Total "))
        .unwrap_or_else(|| panic!("no total row: {summary}"));
    assert_eq!(
        printed_total.split_whitespace().nth(2),
        Some(totals["calls"].to_string().as_str()),
        "{printed_total}"
    );
    // Calls come by day more than by night, and on weekdays more than on Sundays.
    let hours = get(&base, key, &report("hour")).await;
    let calls_at = |hours_of_day: std::ops::Range<u32>| -> i64 {
        hours["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| hours_of_day.contains(&r["hour"].as_str().unwrap().parse().unwrap()))
            .map(|r| int(&r["calls"]))
            .sum()
    };
    assert!(calls_at(0..6) > 0, "a few night calls: {hours}");
    assert!(calls_at(9..17) > 2 * calls_at(0..8), "{hours}");
    let weekdays = get(&base, key, &report("weekday")).await;
    let on = |day: &str| {
        weekdays["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["weekday"] == day)
            .map_or(0, |r| int(&r["sessions"]))
    };
    assert!(on("Tuesday") > on("Sunday"), "{weekdays}");
    // The call centre: dispositions and satisfaction scores were set.
    let service = get(
        &base,
        key,
        &format!("/v1/properties/{property}/reports/service?from={from}&to={to}"),
    )
    .await;
    let service = &service["totals"];
    for figure in [
        "avg_csat",
        "appointment_rate",
        "avg_duration_s",
        "avg_speed_of_answer_s",
        "abandonment_rate",
    ] {
        assert!(
            service[figure].as_f64().is_some_and(|v| v > 0.0),
            "{figure}: {service}"
        );
    }
    // Pools were busy in the last day (the advisor's window ends on the real clock).
    let pools = get(&base, key, &format!("/v1/properties/{property}/pools")).await;
    let mut peak = 0;
    for pool in pools["pools"].as_array().unwrap() {
        let health = get(
            &base,
            key,
            &format!("/v1/pools/{}/health", pool["id"].as_str().unwrap()),
        )
        .await;
        peak = peak.max(int(&health["peak_concurrent_leases"]));
    }
    assert!(peak >= 2, "{pools}");
    // And the dashboard shows it to the key's holder.
    let (_, page) = dashboard_of(&base, key).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("id=\"heat\""), "{page}");
    assert!(!page.contains("No calls in this range yet"), "{page}");

    // Stopped, it printed nothing after the summary, and logged no INFO line.
    let status = terminate(&mut child);
    assert!(status.success(), "{status}");
    let after: Vec<String> = from_demo.iter().collect();
    assert!(after.is_empty(), "printed after the summary: {after:?}");
    let stderr = logged.join().unwrap();
    assert!(!stderr.contains("INFO"), "{stderr}");

    // Run again, a day's traffic without serving: the database is recreated, so the numbers
    // never collide.
    let again = switchboard(dir.path(), &[("SWITCHBOARD_BIND", "127.0.0.1:0")])
        .args(["demo", "--no-serve", "--days", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let last = stdout.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("Dashboard: http://127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("Switchboard demo: the last day of"),
        "{stdout}"
    );
}
