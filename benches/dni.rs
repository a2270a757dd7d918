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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard::config::Settings;
use switchboard::startup::Application;
use switchboard::storage::Storage;

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

struct Phase {
    name: &'static str,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[derive(Clone)]
enum Request {
    Ping,
    NewSession {
        key: String,
    },
    Returning {
        key: String,
        sessions: Arc<Vec<String>>,
    },
}

async fn send(client: &reqwest::Client, base: &str, req: &Request, i: usize) -> bool {
    let res = match req {
        Request::Ping => client.get(format!("{base}/health/ping")).send().await,
        Request::NewSession { key } => {
            let body = json!({"key": key, "url": "https://www.acme.example/?utm_source=google&utm_medium=cpc", "referrer": ""});
            client
                .post(format!("{base}/v1/dni/session"))
                .header("content-type", "text/plain")
                .header("origin", "https://www.acme.example")
                .header("user-agent", UA)
                .body(body.to_string())
                .send()
                .await
        }
        Request::Returning { key, sessions } => {
            let sid = &sessions[i % sessions.len()];
            let body =
                json!({"key": key, "session": sid, "url": "https://www.acme.example/pricing"});
            client
                .post(format!("{base}/v1/dni/session"))
                .header("content-type", "text/plain")
                .header("origin", "https://www.acme.example")
                .header("user-agent", UA)
                .body(body.to_string())
                .send()
                .await
        }
    };
    match res {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Closed loop: `connections` workers, each sending back to back for `seconds`.
async fn closed_loop(
    name: &'static str,
    base: &str,
    req: Request,
    connections: usize,
    seconds: u64,
) -> Phase {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..connections {
        let (client, base, req, counter) = (
            client.clone(),
            base.to_owned(),
            req.clone(),
            counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if send(&client, &base, &req, i).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    summarise(name, tasks, start).await
}

/// Open loop: request i is due at start + i/rate, whatever the answers do. A fixed set of
/// workers (one connection each) claims the next due slot; latency counts from the due time,
/// so time spent waiting for a free worker is counted, not hidden (no coordinated omission).
async fn open_loop(name: &'static str, base: &str, req: Request, rate: f64, seconds: u64) -> Phase {
    const WORKERS: usize = 128;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(WORKERS)
        .build()
        .unwrap();
    let total = (rate * seconds as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (client, base, req, next) =
            (client.clone(), base.to_owned(), req.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = start + interval.mul_f64(i as f64);
                tokio::time::sleep_until(due.into()).await;
                if send(&client, &base, &req, i).await {
                    lat.push(due.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    summarise(name, tasks, start).await
}

/// Gathers the workers' latencies and errors into one phase's figures.
async fn summarise(
    name: &'static str,
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    start: Instant,
) -> Phase {
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    Phase {
        name,
        rps: lat.len() as f64 / elapsed,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        errors,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_num("BENCH_SECONDS", 5);
    let connections = env_num("BENCH_CONNECTIONS", 32) as usize;
    let dir = tempfile::tempdir()?;
    let (stack, database_url, redis) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            let name = format!("sb_bench_{}", uuid::Uuid::new_v4().simple());
            let a = Storage::connect(&admin, &Default::default()).await?;
            a.create_database_for_tests(&name).await?;
            a.close().await;
            let mut url = url::Url::parse(&admin)?;
            url.set_path(&name);
            let redis = std::env::var("BENCH_REDIS_URL")
                .ok()
                .filter(|r| !r.is_empty());
            let stack = if redis.is_some() {
                "PostgreSQL + Redis"
            } else {
                "PostgreSQL + in-process"
            };
            (stack, url.to_string(), redis)
        }
        _ => {
            let redis = std::env::var("BENCH_REDIS_URL")
                .ok()
                .filter(|r| !r.is_empty());
            let stack = if redis.is_some() {
                "SQLite + Redis"
            } else {
                "SQLite + in-process"
            };
            (
                stack,
                format!("sqlite://{}/bench.db", dir.path().display()),
                redis,
            )
        }
    };
    let mut pairs = vec![
        ("bind", "127.0.0.1:0".to_owned()),
        ("database_url", database_url),
        ("migrate_on_start", "true".to_owned()),
        ("new_sessions_per_ip_per_minute", "100000000".to_owned()),
    ];
    if let Some(r) = &redis {
        pairs.push(("redis_url", r.clone()));
    }
    let settings = Settings::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))?;
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let storage = state.storage.clone();
    tokio::spawn(app.run_until_stopped());

    // A property with a 5 000-number session pool (sharing once exhausted).
    let account = storage.create_account("bench", 0).await?;
    let key = account.api_key.expose_secret().to_owned();
    let client = reqwest::Client::new();
    let property: Value = client
        .post(format!("{base}/v1/properties"))
        .bearer_auth(&key)
        .json(&json!({"name": "Bench", "domains": ["acme.example"], "default_number": "+14155550100"}))
        .send().await?.json().await?;
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
    closed_loop("warm-up", &base, Request::Ping, connections, 1).await;
    let drain = || async { state.dni.ledger().flush().await };
    let returning_req = Request::Returning {
        key: public_key.clone(),
        sessions: sessions.clone(),
    };
    let mut pairs = Vec::new();
    for _ in 0..3 {
        drain().await;
        let ping = closed_loop(
            "trivial (/health/ping)",
            &base,
            Request::Ping,
            connections,
            seconds,
        )
        .await;
        let returning = closed_loop(
            "returning session",
            &base,
            returning_req.clone(),
            connections,
            seconds,
        )
        .await;
        pairs.push((ping, returning));
    }
    pairs.sort_by(|a, b| (a.1.rps / a.0.rps).total_cmp(&(b.1.rps / b.0.rps)));
    let ratios: Vec<String> = pairs
        .iter()
        .map(|(p, r)| format!("{:.2}", r.rps / p.rps))
        .collect();
    let (ping, returning) = pairs.swap_remove(1);
    drain().await;
    let half = open_loop(
        "returning at half of peak (open loop)",
        &base,
        returning_req,
        returning.rps / 2.0,
        seconds,
    )
    .await;
    drain().await;
    let new = closed_loop(
        "new session",
        &base,
        Request::NewSession {
            key: public_key.clone(),
        },
        connections,
        seconds,
    )
    .await;

    println!(
        "\nstack: {stack}; {connections} connections, {seconds} s per phase; client and server share this machine"
    );
    println!(
        "returning/trivial ratios of three alternating pairs: {} (the median pair is shown)",
        ratios.join(", ")
    );
    println!("| phase | requests/s | ratio to trivial | p50 ms | p99 ms | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for p in [&ping, &returning, &new, &half] {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            p.name,
            p.rps,
            p.rps / ping.rps,
            p.p50_ms,
            p.p99_ms,
            p.errors
        );
    }
    Ok(())
}
