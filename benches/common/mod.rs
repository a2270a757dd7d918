//! The load generator the benches share: closed- and open-loop phases against a running server,
//! with their throughput and latency percentiles. Each bench says what one request is by
//! implementing [`Load`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchboard::config::Settings;
use switchboard::http::AppState;
use switchboard::startup::Application;
use switchboard::storage::Storage;

/// What a phase sends: request number `i` (0, 1, 2, ... across all connections).
pub trait Load: Send + Sync + 'static {
    /// Sends request `i` and reads its answer; false when it failed.
    fn send(&self, client: &reqwest::Client, i: usize) -> impl Future<Output = bool> + Send;
}

pub struct Phase {
    pub name: &'static str,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

pub fn env_num(name: &str, default: u64) -> u64 {
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

/// Closed loop: `connections` workers, each sending back to back for `seconds`.
pub async fn closed_loop<L: Load>(
    name: &'static str,
    load: &Arc<L>,
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
        let (client, load, counter) = (client.clone(), load.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if load.send(&client, i).await {
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
pub async fn open_loop<L: Load>(
    name: &'static str,
    load: &Arc<L>,
    rate: f64,
    seconds: u64,
) -> Phase {
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
        let (client, load, next) = (client.clone(), load.clone(), next.clone());
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
                if load.send(&client, i).await {
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

/// The same server's trivial endpoint, the baseline every ratio is taken against.
pub struct Ping {
    pub base: String,
}

impl Load for Ping {
    async fn send(&self, client: &reqwest::Client, _i: usize) -> bool {
        answered(
            client
                .get(format!("{}/health/ping", self.base))
                .send()
                .await,
        )
        .await
    }
}

/// Whether a request got a 2xx answer whose body could be read whole.
pub async fn answered(res: reqwest::Result<reqwest::Response>) -> bool {
    match res {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Prints the phases as a Markdown table, with each one's throughput as a ratio to `baseline`.
pub fn print_table(baseline: &Phase, phases: &[&Phase]) {
    println!("| phase | requests/s | ratio to trivial | p50 ms | p99 ms | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for p in phases {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            p.name,
            p.rps,
            p.rps / baseline.rps,
            p.p50_ms,
            p.p99_ms,
            p.errors
        );
    }
}

/// The trivial endpoint and `load` alternate three times (`before` runs ahead of each pair);
/// each pair's ratio compares neighbours in time, as the machine's speed drifts. Returns the
/// three ratios, lowest first, and the median pair.
pub async fn alternating_pairs<L: Load>(
    name: &'static str,
    base: &str,
    load: &Arc<L>,
    connections: usize,
    seconds: u64,
    mut before: impl AsyncFnMut(),
) -> (Vec<f64>, Phase, Phase) {
    let ping = Arc::new(Ping {
        base: base.to_owned(),
    });
    let mut pairs = Vec::new();
    for _ in 0..3 {
        before().await;
        let trivial = closed_loop("trivial (/health/ping)", &ping, connections, seconds).await;
        let measured = closed_loop(name, load, connections, seconds).await;
        pairs.push((trivial, measured));
    }
    pairs.sort_by(|a, b| (a.1.rps / a.0.rps).total_cmp(&(b.1.rps / b.0.rps)));
    let ratios = pairs.iter().map(|(t, m)| m.rps / t.rps).collect();
    let (trivial, measured) = pairs.swap_remove(1);
    (ratios, trivial, measured)
}

pub fn format_ratios(ratios: &[f64]) -> String {
    ratios
        .iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fresh database: a new one on `BENCH_DATABASE_URL`'s server, else a SQLite file in `dir`.
/// Returns its kind's name and its URL.
pub async fn database(dir: &std::path::Path) -> anyhow::Result<(&'static str, String)> {
    match std::env::var("BENCH_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            let name = format!("sb_bench_{}", uuid::Uuid::new_v4().simple());
            let a = Storage::connect(&admin, &Default::default()).await?;
            a.create_database_for_tests(&name).await?;
            a.close().await;
            let mut url = url::Url::parse(&admin)?;
            url.set_path(&name);
            Ok(("PostgreSQL", url.to_string()))
        }
        _ => Ok(("SQLite", format!("sqlite://{}/bench.db", dir.display()))),
    }
}

/// The lease store the run uses: Redis at `BENCH_REDIS_URL` when set, else in-process. Returns
/// the Redis URL and the stack's name (`PostgreSQL + Redis`).
#[allow(dead_code)] // the call-webhook bench always runs in-process
pub fn lease_store(database: &str) -> (Option<String>, String) {
    let redis = std::env::var("BENCH_REDIS_URL")
        .ok()
        .filter(|r| !r.is_empty());
    let store = if redis.is_some() {
        "Redis"
    } else {
        "in-process"
    };
    (redis, format!("{database} + {store}"))
}

/// Starts the real server (the same `Application` as `switchboard serve`) on port 0 with
/// these settings; returns its base URL and its state.
pub async fn serve(
    pairs: &[(&str, &str)],
) -> anyhow::Result<(String, actix_web::web::Data<AppState>)> {
    let mut all = vec![("bind", "127.0.0.1:0"), ("migrate_on_start", "true")];
    all.extend_from_slice(pairs);
    let app = Application::build(Settings::from_pairs(all)?).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    Ok((base, state))
}

/// A new account and its property `{"name": "Bench", "domains": ["acme.example"],
/// "default_number": "+14155550100"}` plus `extra` fields; returns the account's API key and
/// the property as the API answered it.
pub async fn account_and_property(
    base: &str,
    storage: &Storage,
    extra: serde_json::Value,
) -> anyhow::Result<(String, serde_json::Value)> {
    use secrecy::ExposeSecret;
    let account = storage.create_account("bench", 0).await?;
    let key = account.api_key.expose_secret().to_owned();
    let mut body = serde_json::json!({"name": "Bench", "domains": ["acme.example"],
                                      "default_number": "+14155550100"});
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let property = reqwest::Client::new()
        .post(format!("{base}/v1/properties"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    Ok((key, property))
}
