//! Page-view throughput and latency against the real server, as ratios to the same server's
//! trivial endpoint (`/health/ping`) measured in the same run (these machines are noisy).
//!
//!   cargo bench --bench dni                       # SQLite + in-process leases
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench dni   # PostgreSQL + Redis
//!
//! Options (environment): BENCH_SECONDS (per phase, default 5), BENCH_CONNECTIONS (default 32).
//! Each phase is closed-loop (every connection sends its next request when the last answers);
//! the last phase is open-loop at half the returning-session peak, for its p99.

mod common;

use std::sync::Arc;

use serde_json::{Value, json};

use common::{Load, alternating_pairs, answered, closed_loop, env_num, format_ratios, open_loop};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// A page view, as the snippet sends it.
#[derive(Clone)]
enum Request {
    NewSession {
        key: String,
    },
    Returning {
        key: String,
        sessions: Arc<Vec<String>>,
    },
}

struct PageViews {
    base: String,
    req: Request,
}

impl Load for PageViews {
    async fn send(&self, client: &reqwest::Client, i: usize) -> bool {
        let body = match &self.req {
            Request::NewSession { key } => {
                json!({"key": key, "url": "https://www.acme.example/?utm_source=google&utm_medium=cpc", "referrer": ""})
            }
            Request::Returning { key, sessions } => {
                let sid = &sessions[i % sessions.len()];
                json!({"key": key, "session": sid, "url": "https://www.acme.example/pricing"})
            }
        };
        answered(
            client
                .post(format!("{}/v1/dni/session", self.base))
                .header("content-type", "text/plain")
                .header("origin", "https://www.acme.example")
                .header("user-agent", UA)
                .body(body.to_string())
                .send()
                .await,
        )
        .await
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_num("BENCH_SECONDS", 5);
    let connections = env_num("BENCH_CONNECTIONS", 32) as usize;
    let dir = tempfile::tempdir()?;
    let (database, database_url) = common::database(dir.path()).await?;
    let (redis, stack) = common::lease_store(database);
    let mut pairs = vec![
        ("database_url", database_url.as_str()),
        ("new_sessions_per_ip_per_minute", "100000000"),
        // Thousands of new sessions a second into one pool: no real site's rate, so no budget.
        ("pool_new_leases_per_minute", "0"),
    ];
    if let Some(r) = &redis {
        pairs.push(("redis_url", r.as_str()));
    }
    let (base, state) = common::serve(&pairs).await?;
    let storage = state.storage.clone();

    // A property with a 5 000-number session pool (sharing once exhausted).
    let (key, property) = common::account_and_property(&base, &storage, json!({})).await?;
    let client = reqwest::Client::new();
    let pid = property["id"].as_str().unwrap();
    let public_key = property["public_key"].as_str().unwrap().to_owned();
    let mut pool_id = None;
    for chunk in 0..5u32 {
        let numbers: Vec<String> = (0..1000u32)
            .map(|i| format!("+1212{:07}", 2_000_000 + chunk * 1000 + i))
            .collect();
        match &pool_id {
            None => {
                let pool: Value = client
                    .post(format!("{base}/v1/properties/{pid}/pools"))
                    .bearer_auth(&key)
                    .json(&json!({"name": "All", "kind": "session", "numbers": numbers}))
                    .send()
                    .await?
                    .json()
                    .await?;
                pool_id = Some(pool["id"].as_str().unwrap().to_owned());
            }
            Some(id) => {
                let res = client
                    .post(format!("{base}/v1/pools/{id}/numbers"))
                    .bearer_auth(&key)
                    .json(&json!({"numbers": numbers}))
                    .send()
                    .await?;
                anyhow::ensure!(
                    res.status().is_success(),
                    "adding numbers: {}",
                    res.text().await?
                );
            }
        }
    }
    // 2 000 returning visitors.
    let mut sessions = Vec::new();
    for _ in 0..2000 {
        let body = json!({"key": public_key, "url": "https://www.acme.example/"});
        let a: Value = client
            .post(format!("{base}/v1/dni/session"))
            .header("content-type", "text/plain")
            .header("user-agent", UA)
            .body(body.to_string())
            .send()
            .await?
            .json()
            .await?;
        sessions.push(a["session"].as_str().unwrap().to_owned());
    }
    let sessions = Arc::new(sessions);

    // Warm up, then measure. Each phase starts with the write-behind ledger drained, so none
    // pays for the last. Trivial and returning phases alternate three times: each ratio
    // compares neighbours in time, and the median pair is reported (the machine's speed drifts).
    let page_views = |req: Request| {
        Arc::new(PageViews {
            base: base.clone(),
            req,
        })
    };
    let ping = Arc::new(common::Ping { base: base.clone() });
    closed_loop("warm-up", &ping, connections, 1).await;
    let drain = async || state.dni.ledger().flush().await;
    let returning_req = page_views(Request::Returning {
        key: public_key.clone(),
        sessions: sessions.clone(),
    });
    let (ratios, ping, returning) = alternating_pairs(
        "returning session",
        &base,
        &returning_req,
        connections,
        seconds,
        drain,
    )
    .await;
    drain().await;
    let half = open_loop(
        "returning at half of peak (open loop)",
        &returning_req,
        returning.rps / 2.0,
        seconds,
    )
    .await;
    drain().await;
    let new = closed_loop(
        "new session",
        &page_views(Request::NewSession {
            key: public_key.clone(),
        }),
        connections,
        seconds,
    )
    .await;

    println!(
        "\nstack: {stack}; {connections} connections, {seconds} s per phase; client and server share this machine"
    );
    println!(
        "returning/trivial ratios of three alternating pairs: {} (the median pair is shown)",
        format_ratios(&ratios)
    );
    common::print_table(&ping, &[&ping, &returning, &new, &half]);
    Ok(())
}
