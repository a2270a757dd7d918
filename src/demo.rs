//! `switchboard demo`: a newcomer's first look. Starts the real service on a throwaway SQLite
//! database with the in-process lease store, creates a demo account, property and pools through
//! the real HTTP API, and prints where to look.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::startup::Application;
use crate::time::{Clock, SystemClock};

#[derive(Args)]
pub struct DemoArgs {
    /// Where the demo database lives; it is recreated on every run.
    #[arg(long, default_value = "data/demo.db")]
    pub db_file: PathBuf,
    /// Set everything up, print the summary, and exit instead of serving.
    #[arg(long)]
    pub no_serve: bool,
}

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = args.db_file.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
    settings.database_url = SecretString::from(format!("sqlite://{}", args.db_file.display()));
    settings.redis_url = None;
    settings.redis_cluster_urls.clear();
    settings.migrate_on_start = true;
    let app = Application::build_with_clock(settings, Arc::new(SystemClock)).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());

    let created = state
        .storage
        .create_account("Demo Plumbing Co.", SystemClock.now_ms())
        .await?;
    let key = created.api_key.expose_secret().to_owned();
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{base}{path}");

    let property = post(
        &client,
        &api("/v1/properties"),
        &key,
        json!({
            "name": "Demo Plumbing",
            "domains": ["localhost", "demo-plumbing.example"],
            "default_number": "+14155550100",
            "forward_to": "+14155550100",
            "timezone": "America/Los_Angeles",
            "currency": "USD"
        }),
    )
    .await?;
    let property_id = property["id"].as_str().context("property id")?.to_owned();
    let pools = [
        json!({"name": "Google Ads", "kind": "session", "match": {"channel": "paid search"},
               "lease_minutes": 30, "numbers": numbers(110, 8), "monthly_cost": 1.15}),
        json!({"name": "Organic", "kind": "session", "match": {"channel": "organic search"},
               "lease_minutes": 30, "numbers": numbers(130, 5), "monthly_cost": 1.15}),
        json!({"name": "Everything else", "kind": "session", "lease_minutes": 30,
               "numbers": numbers(150, 5), "monthly_cost": 1.15}),
        json!({"name": "Print ads", "kind": "source", "match": {"source": "newspaper"},
               "numbers": numbers(170, 1), "monthly_cost": 1.15}),
    ];
    let mut pool_lines = Vec::new();
    for body in pools {
        let pool = post(
            &client,
            &api(&format!("/v1/properties/{property_id}/pools")),
            &key,
            body,
        )
        .await?;
        pool_lines.push(format!(
            "    {:<16} {} numbers  ({})",
            pool["name"].as_str().unwrap_or_default(),
            pool["numbers"].as_array().map(Vec::len).unwrap_or(0),
            pool["kind"].as_str().unwrap_or_default()
        ));
    }

    println!();
    println!("Switchboard demo is running at {base}");
    println!(
        "  database:    {} (recreated each run)",
        args.db_file.display()
    );
    println!("  account:     {}", created.account.name);
    println!("  API key:     {key}");
    println!(
        "  property:    {property_id} (public key {})",
        property["public_key"].as_str().unwrap_or_default()
    );
    println!(
        "  snippet:     {}",
        property["snippet_tag"].as_str().unwrap_or_default()
    );
    println!("  pools:");
    for line in pool_lines {
        println!("{line}");
    }
    println!();
    println!("Try:");
    println!("  curl {base}/health");
    println!("  curl -H 'Authorization: Bearer {key}' {base}/v1/properties/{property_id}/pools");
    println!("  curl {base}/openapi.json");

    let demo = Demo {
        client: &client,
        base: &base,
        key: &key,
        property_id: &property_id,
        public_key: property["public_key"].as_str().unwrap_or_default(),
    };
    let placed = demo.place_calls().await?;
    let report = demo.channel_report().await?;
    println!();
    println!("Channel report for today ({placed} demo calls, placed through the real call path):");
    print!("{}", channel_table(&report));
    println!();
    println!("Dashboard: {base}/dashboard  (sign in with the API key above)");
    if args.no_serve {
        handle.stop(true).await;
    } else {
        println!("Press Ctrl-C to stop.");
    }
    server.await??;
    Ok(())
}

/// Visits from three channels, each followed by a call to the number it was shown.
const VISITS: [(&str, Option<&str>, i64); 3] = [
    (
        "http://localhost/drains?utm_source=google&utm_medium=cpc&utm_campaign=blocked-drains&gclid=demo",
        None,
        95,
    ),
    (
        "http://localhost/water-heaters",
        Some("https://www.google.com/"),
        240,
    ),
    (
        "http://localhost/offer?utm_source=facebook&utm_medium=paid_social&utm_campaign=winter",
        None,
        30,
    ),
];

struct Demo<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    key: &'a str,
    property_id: &'a str,
    public_key: &'a str,
}

impl Demo<'_> {
    /// A visit per channel and a call to the number each was shown, through the snippet's
    /// endpoint and the signed generic call endpoint; waits until the calls are completed.
    async fn place_calls(&self) -> anyhow::Result<usize> {
        let secret = post(
            self.client,
            &format!("{}/v1/account/telephony/calls-secret", self.base),
            self.key,
            json!({}),
        )
        .await?;
        let secret = secret["calls_secret"].as_str().context("calls secret")?;
        for (i, (url, referrer, seconds)) in VISITS.iter().enumerate() {
            let mut view = json!({"key": self.public_key, "url": url});
            if let Some(r) = referrer {
                view["referrer"] = json!(r);
            }
            let shown: Value = self
                .client
                .post(format!("{}/v1/dni/session", self.base))
                .header("content-type", "text/plain")
                .header("origin", "http://localhost")
                .header("user-agent", "Mozilla/5.0 (switchboard demo) Chrome/130.0")
                .body(view.to_string())
                .send()
                .await?
                .json()
                .await?;
            let number = shown["number"].as_str().context("a tracking number")?;
            let call_id = format!("demo-{i}");
            let caller = format!("+1415555{:04}", 9001 + i);
            let started = json!({"event": "call.started", "provider": "demo", "call_id": call_id,
                                 "to": number, "from": caller});
            let ended = json!({"event": "call.updated", "provider": "demo", "call_id": call_id,
                               "to": number, "status": "completed", "answered": true,
                               "duration_s": seconds, "talk_s": seconds - 5, "sequence": 2});
            for event in [started, ended] {
                let body = event.to_string();
                let response = self
                    .client
                    .post(format!("{}/v1/telephony/calls", self.base))
                    .header("content-type", "application/json")
                    .header(
                        "x-switchboard-signature",
                        crate::telephony::generic::sign(secret.as_bytes(), body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "a demo call answered {}",
                    response.status()
                );
            }
        }
        // Attribution and completion run behind the webhooks, within a second or two.
        let calls_path = format!("/v1/properties/{}/calls", self.property_id);
        for _ in 0..100 {
            let calls = self.get(&calls_path).await?;
            let calls = calls["calls"].as_array().cloned().unwrap_or_default();
            if calls.len() == VISITS.len() && calls.iter().all(|c| !c["qualified"].is_null()) {
                return Ok(calls.len());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::bail!("the demo calls were not completed within 10 s")
    }

    /// Today's attribution report by channel (today in the property's time zone).
    async fn channel_report(&self) -> anyhow::Result<Value> {
        let property = self
            .get(&format!("/v1/properties/{}", self.property_id))
            .await?;
        let tz = crate::reports::property_tz(property["timezone"].as_str().unwrap_or("UTC"));
        let today = crate::reports::local_day(tz, SystemClock.now_ms());
        self.get(&format!(
            "/v1/properties/{}/reports/attribution?from={today}&to={today}&group_by=channel",
            self.property_id
        ))
        .await
    }

    /// A GET of the API, as the demo account.
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.key);
        answer(request, &format!("GET {path}")).await
    }
}

/// The channel report as a small text table.
fn channel_table(report: &Value) -> String {
    const COLUMNS: [&str; 5] = ["calls", "answered", "qualified", "cost", "cost_per_call"];
    let cell = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    };
    let mut lines: Vec<Vec<String>> = vec![
        std::iter::once("channel".to_owned())
            .chain(COLUMNS.iter().map(|c| (*c).to_owned()))
            .collect(),
    ];
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    for row in rows.iter().chain(std::iter::once(&report["totals"])) {
        let name = row["channel"].as_str().unwrap_or("Total").to_owned();
        lines.push(
            std::iter::once(name)
                .chain(COLUMNS.iter().map(|c| cell(&row[*c])))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..=COLUMNS.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Fictional US numbers (555-01xx is reserved for fiction).
fn numbers(start: u32, count: u32) -> Vec<String> {
    (start..start + count)
        .map(|n| format!("+1415555{n:04}"))
        .collect()
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: Value,
) -> anyhow::Result<Value> {
    answer(
        client.post(url).bearer_auth(key).json(&body),
        &format!("POST {url}"),
    )
    .await
}

/// Sends a request and reads its JSON answer, which must be a success.
pub(crate) async fn answer(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    let value: Value = response.json().await.with_context(|| what.to_owned())?;
    anyhow::ensure!(status.is_success(), "{what} answered {status}: {value}");
    Ok(value)
}
