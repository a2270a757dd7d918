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
    if args.no_serve {
        handle.stop(true).await;
    } else {
        println!("Press Ctrl-C to stop.");
    }
    server.await??;
    Ok(())
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
    let response = client
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .with_context(|| format!("POST {url}"))?;
    anyhow::ensure!(status.is_success(), "POST {url} answered {status}: {value}");
    Ok(value)
}
