//! `switchboard demo`: a newcomer's first look. Starts the real service on a throwaway SQLite
//! database with the in-process lease store, creates a demo account, property and pools through
//! the real HTTP API, plays the last month of a plumber's visits and calls into it on a clock
//! that then hands over to the real one (`month`), and prints where to look, last.

mod month;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::config::Settings;
use crate::simulate::traffic::SITE_DOMAIN;
use crate::simulate::{Target, base_url, driven};
use crate::startup::Application;
use crate::time::{Clock, HandoverClock, ManualClock, SharedClock, SystemClock};

#[derive(Args)]
pub struct DemoArgs {
    /// Where the demo database lives; it is recreated on every run.
    #[arg(long, default_value = "data/demo.db")]
    pub db_file: PathBuf,
    /// Set everything up, print the summary, and exit instead of serving.
    #[arg(long)]
    pub no_serve: bool,
    /// Days of traffic to play, ending now (today's so far included).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=90))]
    pub days: u64,
}

const TIMEZONE: &str = "America/Los_Angeles";
/// The business's own line: the published number, and where every call is forwarded.
const BUSINESS_NUMBER: &str = "+14155550100";
/// The number printed in the newspaper ad (the print pool's).
const PRINTED_NUMBER: &str = "+14155550170";

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let wall = Instant::now();
    // Its own spool beside its database: a demo call never lands in the real service's spool.
    let spool = args.db_file.with_file_name("demo-spool");
    remove_previous(&args.db_file, &spool);
    settings.database_url = SecretString::from(format!("sqlite://{}", args.db_file.display()));
    settings.redis_url = None;
    settings.redis_cluster_urls.clear();
    settings.migrate_on_start = true;
    settings.spool_dir = spool;
    let twilio_token = driven(&mut settings)?;

    // The service lives through the month on a clock the player moves, then on the system's.
    let now = SystemClock.now_ms();
    let tz = crate::reports::property_tz(TIMEZONE);
    let (start, end) = (month::start(tz, now, args.days), now);
    let manual = ManualClock::new(start);
    let clock = HandoverClock::new(manual.clone());
    let app = Application::build_with_clock(settings, clock.clone() as SharedClock).await?;
    let state = app.state();
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    eprintln!(
        "switchboard demo: playing {} of a plumber's visits and calls into {}...",
        month::last_days(args.days),
        args.db_file.display()
    );

    let created = state
        .storage
        .create_account("Acme Plumbing Co.", clock.now_ms())
        .await?;
    let api = Api {
        client: reqwest::Client::new(),
        base: base_url(&state),
        key: created.api_key.expose_secret().to_owned(),
    };
    let property = api
        .send(
            reqwest::Method::POST,
            "/v1/properties",
            json!({
                "name": "Acme Plumbing",
                "domains": ["localhost", SITE_DOMAIN],
                "default_number": BUSINESS_NUMBER,
                "forward_to": BUSINESS_NUMBER,
                "timezone": TIMEZONE,
                "currency": "USD"
            }),
        )
        .await?;
    let property_id = property["id"].as_str().context("property id")?.to_owned();
    let public_key = property["public_key"].as_str().context("public key")?;
    let pools = [
        json!({"name": "Google Ads", "kind": "session", "match": {"channel": "paid search"},
               "lease_minutes": 30, "numbers": numbers(110, 8), "monthly_cost": 1.15}),
        json!({"name": "Facebook Ads", "kind": "session", "match": {"channel": "paid social"},
               "lease_minutes": 30, "numbers": numbers(120, 4), "monthly_cost": 1.15}),
        json!({"name": "Organic", "kind": "session", "match": {"channel": "organic search"},
               "lease_minutes": 30, "numbers": numbers(130, 5), "monthly_cost": 1.15}),
        json!({"name": "Everything else", "kind": "session", "lease_minutes": 30,
               "numbers": numbers(150, 5), "monthly_cost": 1.15}),
        // GA4 groups a print source under Unassigned; the pool says so for calls without a visit.
        json!({"name": "Print ads", "kind": "source",
               "match": {"channel": "unassigned", "source": "print"},
               "numbers": [PRINTED_NUMBER], "monthly_cost": 1.15}),
    ];
    let mut pool_lines = Vec::new();
    for body in pools {
        let path = format!("/v1/properties/{property_id}/pools");
        let pool = api.send(reqwest::Method::POST, &path, body).await?;
        let count = pool["numbers"].as_array().map(Vec::len).unwrap_or(0);
        pool_lines.push(format!(
            "    {:<16} {count} {:<8} ({})",
            pool["name"].as_str().unwrap_or_default(),
            if count == 1 { "number" } else { "numbers" },
            pool["kind"].as_str().unwrap_or_default()
        ));
    }

    let target = Target::new(
        &state,
        public_key,
        &twilio_token,
        BUSINESS_NUMBER,
        manual.clone(),
    );
    let seeded = month::seed(
        &api,
        &state,
        &target,
        &property_id,
        PRINTED_NUMBER,
        (start, end),
    )
    .await?;
    let (from, to) = (
        crate::reports::local_day(tz, start),
        crate::reports::local_day(tz, end),
    );
    let report = api
        .get(&format!(
            "/v1/properties/{property_id}/reports/attribution?from={from}&to={to}&group_by=channel"
        ))
        .await?;
    clock.go_live();

    // Everything is said once, at the end, so that it is not lost in what came before.
    let base = &api.base;
    let mut out = String::new();
    out.push('\n');
    out.push_str(&seeded.summary(wall.elapsed().as_secs_f64()));
    out.push('\n');
    out.push_str(&format!(
        "Channel report, {from} to {to} ({TIMEZONE}), as the dashboard shows it:\n"
    ));
    out.push_str(&channel_table(&report));
    let rows = report["rows"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rows.iter().any(|r| r["channel"] == "Unassigned") {
        out.push_str(
            "  (Unassigned is the newspaper ad, source `print`: GA4 has no channel for print.)\n",
        );
    }
    out.push('\n');
    out.push_str(&format!(
        "Switchboard demo is running at {base} (on the real clock since the month was played)\n"
    ));
    out.push_str(&format!(
        "  database:    {} (recreated each run)\n",
        args.db_file.display()
    ));
    out.push_str(&format!("  account:     {}\n", created.account.name));
    out.push_str(&format!("  API key:     {}\n", api.key));
    out.push_str(&format!(
        "  property:    {property_id} (public key {public_key})\n"
    ));
    out.push_str(&format!(
        "  snippet:     {}\n",
        property["snippet_tag"].as_str().unwrap_or_default()
    ));
    out.push_str("  pools:\n");
    for line in pool_lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("  logs:        warnings only; RUST_LOG=info shows every request\n");
    out.push('\n');
    out.push_str("Try:\n");
    out.push_str(&format!("  curl {base}/health\n"));
    out.push_str(&format!(
        "  curl -H 'Authorization: Bearer {}' '{base}/v1/properties/{property_id}/calls?limit=5'\n",
        api.key
    ));
    out.push_str(&format!("  curl {base}/openapi.json\n"));
    out.push('\n');
    out.push_str(&format!(
        "Dashboard: {base}/dashboard  (sign in with the API key above)\n"
    ));
    if !args.no_serve {
        out.push_str("Press Ctrl-C to stop.\n");
    }
    print!("{out}");

    // The ledger drains once every handle on the application is gone; keep-alive connections
    // go with the clients, so a stop has nothing to wait for.
    drop((state, target, api));
    if args.no_serve {
        handle.stop(true).await;
    }
    server.await??;
    Ok(())
}

/// The previous run's database and spool.
fn remove_previous(db_file: &Path, spool: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db_file.to_path_buf().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
    let _ = std::fs::remove_dir_all(spool);
}

/// The API as the demo account.
pub(crate) struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        answer(request, &format!("GET {path}")).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let what = format!("{method} {path}");
        let request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body);
        answer(request, &what).await
    }
}

/// The channel report as a small text table.
fn channel_table(report: &Value) -> String {
    const COLUMNS: [&str; 8] = [
        "sessions",
        "calls",
        "answered",
        "missed",
        "conversions",
        "revenue",
        "cost",
        "cost_per_call",
    ];
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

/// Sends a request and reads its JSON answer, which must be a success.
pub(crate) async fn answer(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    let value: Value = response.json().await.with_context(|| what.to_owned())?;
    anyhow::ensure!(status.is_success(), "{what} answered {status}: {value}");
    Ok(value)
}
