//! The realistic mix (issue 8) against the built `switchboard` binary, run as its own process
//! so that its peak memory (VmHWM) is the service's alone: 90% returning page views, 9% new
//! sessions (each from its own address, through a trusted proxy), 1% signed Twilio call
//! webhooks (a call's voice webhook, then its `completed` status callback). Throughput and
//! p50/p99 of the mix alternate with the same server's trivial endpoint (`/health/ping`), three
//! pairs, and are reported as ratios; then the mix at half its peak rate (open loop), for a p99
//! that is not queueing.
//!
//!   cargo bench --bench load                      # SQLite + in-process leases
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench load   # PostgreSQL + Redis
//!
//! Options (environment): BENCH_SECONDS (per phase, default 5), BENCH_CONNECTIONS (default 32),
//! BENCH_POOL (session-pool numbers, default 5000), BENCH_RETURNING (returning visitors,
//! default 2000).

// The in-process server helpers are for the other benches: this one runs the binary.
#[allow(dead_code)]
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::telephony::twilio_signature;

use common::{Load, alternating_pairs, answered, closed_loop, env_num, format_ratios, open_loop};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const PUBLIC: &str = "https://calls.example.com";
const TOKEN: &str = "bench-twilio-token-0123456789";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
const ORIGIN: &str = "https://www.acme.example";

/// Landing pages of new visitors, as campaigns and referrers spread them.
const LANDINGS: [(&str, &str); 6] = [
    (
        "https://www.acme.example/?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=Cj0KCQ",
        "https://www.google.com/",
    ),
    ("https://www.acme.example/", "https://www.google.co.uk/"),
    ("https://www.acme.example/pricing", ""),
    (
        "https://www.acme.example/?utm_source=facebook&utm_medium=paid_social",
        "https://m.facebook.com/",
    ),
    (
        "https://www.acme.example/blog/leaks?utm_source=newsletter&utm_medium=email",
        "",
    ),
    ("https://www.acme.example/contact", "https://www.bing.com/"),
];
const PAGES: [&str; 4] = [
    "https://www.acme.example/pricing",
    "https://www.acme.example/services/drains",
    "https://www.acme.example/contact",
    "https://www.acme.example/",
];

/// The service under test, as its own process.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    /// Starts `switchboard serve`, logging warnings and errors only (to `log`): the in-process
    /// benches log nothing, and a line per request would measure the logger.
    fn start(env: &[(&str, String)], log: &std::path::Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(log)?;
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env_clear()
            .env("SWITCHBOARD_BIND", format!("127.0.0.1:{port}"))
            .env("SWITCHBOARD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(Self {
            child: cmd.spawn()?,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn wait_until_up(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(format!("{}/health/ping", self.base))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the service exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the service did not come up")
    }

    /// A line of `/proc/<pid>/status`, in MiB (`VmHWM`: peak resident set; `VmRSS`: now).
    fn memory_mib(&self, field: &str) -> f64 {
        proc_status_kib(&format!("/proc/{}/status", self.child.id()), field) / 1024.0
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SIGTERM: the service writes its ledger out and stops.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

fn proc_status_kib(path: &str, field: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// The three kinds of request in the mix.
#[derive(Clone, Copy)]
enum Kind {
    Returning,
    NewSession,
    CallWebhook,
}

const KINDS: [Kind; 3] = [Kind::Returning, Kind::NewSession, Kind::CallWebhook];

impl Kind {
    /// Request `i`'s kind: 90 / 9 / 1 in every hundred, spread by a hash so that kinds do not
    /// arrive in lockstep.
    fn of(i: usize) -> Kind {
        match spread(i) % 100 {
            0..90 => Kind::Returning,
            90..99 => Kind::NewSession,
            _ => Kind::CallWebhook,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Returning => "returning page view (90%)",
            Kind::NewSession => "new session (9%)",
            Kind::CallWebhook => "call webhook (1%)",
        }
    }
}

/// A fixed scramble of `i` (splitmix64), the same in every run.
fn spread(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Mix {
    base: String,
    key: String,
    sessions: Vec<String>,
    numbers: Vec<String>,
    /// Call webhooks sent so far: even ones start call n/2, odd ones complete it.
    webhooks: AtomicUsize,
    /// Latencies by kind, across every phase the mix runs in.
    latencies: [Mutex<Vec<Duration>>; 3],
}

impl Mix {
    async fn page_view(&self, client: &reqwest::Client, body: Value, ip: Option<String>) -> bool {
        let mut req = client
            .post(format!("{}/v1/dni/session", self.base))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", ORIGIN)
            .header("user-agent", UA)
            .body(body.to_string());
        if let Some(ip) = ip {
            req = req.header("x-forwarded-for", ip);
        }
        answered(req.send().await).await
    }

    async fn call_webhook(&self, client: &reqwest::Client) -> bool {
        let n = self.webhooks.fetch_add(1, Ordering::Relaxed);
        let call = n / 2;
        let sid = format!("CA{call:032x}");
        let to = &self.numbers[spread(call) as usize % self.numbers.len()];
        let caller = format!("+1415555{:04}", call % 10_000);
        let (path, mut params) = if n.is_multiple_of(2) {
            (
                "/v1/telephony/twilio/voice",
                vec![("CallStatus", "ringing")],
            )
        } else {
            (
                "/v1/telephony/twilio/status",
                vec![
                    ("CallStatus", "completed"),
                    ("CallDuration", "42"),
                    ("SequenceNumber", "3"),
                ],
            )
        };
        params.extend([
            ("CallSid", sid.as_str()),
            ("AccountSid", ACCOUNT_SID),
            ("From", caller.as_str()),
            ("To", to.as_str()),
            ("Direction", "inbound"),
            ("FromCity", "SAN FRANCISCO"),
            ("FromState", "CA"),
            ("FromCountry", "US"),
        ]);
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let signature =
            twilio_signature::compute(TOKEN.as_bytes(), &format!("{PUBLIC}{path}"), &params);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        answered(
            client
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(body)
                .send()
                .await,
        )
        .await
    }
}

impl Load for Mix {
    async fn send(&self, client: &reqwest::Client, i: usize) -> bool {
        let kind = Kind::of(i);
        let r = spread(i.wrapping_add(1 << 40)) as usize;
        let started = Instant::now();
        let ok = match kind {
            Kind::Returning => {
                let sid = &self.sessions[r % self.sessions.len()];
                let url = PAGES[r % PAGES.len()];
                let body = json!({"key": self.key, "session": sid, "url": url,
                                  "referrer": "https://www.acme.example/"});
                self.page_view(client, body, None).await
            }
            Kind::NewSession => {
                let (url, referrer) = LANDINGS[r % LANDINGS.len()];
                let body = json!({"key": self.key, "url": url, "referrer": referrer});
                // Each newcomer from an address of its own, as through a load balancer.
                let ip = format!("10.{}.{}.{}", (r >> 16) as u8, (r >> 8) as u8, r as u8);
                self.page_view(client, body, Some(ip)).await
            }
            Kind::CallWebhook => self.call_webhook(client).await,
        };
        if ok {
            self.latencies[kind as usize]
                .lock()
                .unwrap()
                .push(started.elapsed());
        }
        ok
    }
}

fn ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs `switchboard account create` against the service's database; returns the API key.
fn create_account(env: &[(&str, String)]) -> anyhow::Result<String> {
    let mut cmd = Command::new(BIN);
    cmd.args(["account", "create", "--name", "Load", "--json"])
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "account create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout)?;
    Ok(created["api_key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no api_key in {created}"))?
        .to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_num("BENCH_SECONDS", 5);
    let connections = env_num("BENCH_CONNECTIONS", 32) as usize;
    let pool_size = env_num("BENCH_POOL", 5000) as u32;
    let returning = env_num("BENCH_RETURNING", 2000) as usize;
    let dir = tempfile::tempdir()?;
    let (database, database_url) = common::database(dir.path()).await?;
    let (redis, stack) = common::lease_store(database);
    let mut env: Vec<(&str, String)> = vec![
        ("DATABASE_URL", database_url),
        ("SWITCHBOARD_MIGRATE_ON_START", "true".into()),
        ("SWITCHBOARD_PUBLIC_URL", PUBLIC.into()),
        ("TWILIO_AUTH_TOKEN", TOKEN.into()),
        ("SWITCHBOARD_TRUSTED_PROXIES", "127.0.0.1/32".into()),
        // Hundreds of new sessions a second into one pool: no real site's rate, so no budget.
        ("SWITCHBOARD_POOL_NEW_LEASES_PER_MINUTE", "0".into()),
        (
            "SWITCHBOARD_SPOOL_DIR",
            dir.path().join("spool").display().to_string(),
        ),
    ];
    if let Some(r) = &redis {
        env.push(("REDIS_URL", r.clone()));
    }
    let log = dir.path().join("service.log");
    let mut service = Service::start(&env, &log)?;
    if let Err(e) = service.wait_until_up().await {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        anyhow::bail!("{e}; its log:\n{tail}");
    }
    let base = service.base.clone();
    let api_key = create_account(&env)?;
    let client = reqwest::Client::new();

    // A property with one session pool of `pool_size` numbers.
    let property: Value = client
        .post(format!("{base}/v1/properties"))
        .bearer_auth(&api_key)
        .json(&json!({"name": "Load", "domains": ["acme.example"],
                      "default_number": "+14155550100", "forward_to": "+14155550101"}))
        .send()
        .await?
        .json()
        .await?;
    let pid = property["id"].as_str().unwrap().to_owned();
    let key = property["public_key"].as_str().unwrap().to_owned();
    let all_numbers: Vec<String> = (0..pool_size)
        .map(|i| format!("+1212{:07}", 2_000_000 + i))
        .collect();
    let mut pool_id: Option<String> = None;
    for chunk in all_numbers.chunks(1000) {
        let res = match &pool_id {
            None => {
                client
                    .post(format!("{base}/v1/properties/{pid}/pools"))
                    .bearer_auth(&api_key)
                    .json(&json!({"name": "Web", "kind": "session", "numbers": chunk}))
                    .send()
                    .await?
            }
            Some(id) => {
                client
                    .post(format!("{base}/v1/pools/{id}/numbers"))
                    .bearer_auth(&api_key)
                    .json(&json!({"numbers": chunk}))
                    .send()
                    .await?
            }
        };
        anyhow::ensure!(res.status().is_success(), "pool: {}", res.text().await?);
        let body: Value = res.json().await?;
        pool_id.get_or_insert_with(|| body["id"].as_str().unwrap_or_default().to_owned());
    }
    // Returning visitors: sessions opened before the run, from addresses of their own.
    let mut sessions = Vec::with_capacity(returning);
    for i in 0..returning {
        let a: Value = client
            .post(format!("{base}/v1/dni/session"))
            .header("content-type", "text/plain")
            .header("user-agent", UA)
            .header("x-forwarded-for", format!("172.16.{}.{}", i / 250, i % 250))
            .body(json!({"key": key, "url": "https://www.acme.example/"}).to_string())
            .send()
            .await?
            .json()
            .await?;
        sessions.push(
            a["session"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("no session: {a}"))?
                .to_owned(),
        );
    }
    let idle_mib = service.memory_mib("VmRSS");

    let mix = Arc::new(Mix {
        base: base.clone(),
        key,
        sessions,
        numbers: all_numbers,
        webhooks: AtomicUsize::new(0),
        latencies: Default::default(),
    });
    let ping = Arc::new(common::Ping { base: base.clone() });
    closed_loop("warm-up", &ping, connections, 1).await;
    let (ratios, trivial, peak) =
        alternating_pairs("the mix", &base, &mix, connections, seconds, async || {}).await;
    let half = open_loop(
        "the mix at half of peak (open loop)",
        &mix,
        peak.rps / 2.0,
        seconds,
    )
    .await;
    let peak_mib = service.memory_mib("VmHWM");
    let end_mib = service.memory_mib("VmRSS");
    let generator_mib = proc_status_kib("/proc/self/status", "VmHWM") / 1024.0;

    println!(
        "\nstack: {stack}; {connections} connections, {seconds} s per phase; pool of {pool_size} numbers, {returning} returning visitors; client and service share this machine"
    );
    println!(
        "mix/trivial ratios of three alternating pairs: {} (the median pair is shown)",
        format_ratios(&ratios)
    );
    common::print_table(&trivial, &[&trivial, &peak, &half]);
    println!("\nby kind, over every mix phase (closed and open loop):\n");
    println!("| request | count | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: |");
    for kind in KINDS {
        let mut lat = mix.latencies[kind as usize].lock().unwrap().clone();
        lat.sort();
        println!(
            "| {} | {} | {:.2} | {:.2} |",
            kind.name(),
            lat.len(),
            ms(&lat, 0.5),
            ms(&lat, 0.99)
        );
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let warnings = logged.lines().filter(|l| l.contains("WARN")).count();
    let errors = logged.lines().filter(|l| l.contains("ERROR")).count();
    println!("\nthe service logged {warnings} warnings and {errors} errors");
    println!(
        "service memory: {idle_mib:.1} MiB resident after setup, {end_mib:.1} MiB at the end, peak (VmHWM) {peak_mib:.1} MiB; the load generator's own peak {generator_mib:.1} MiB"
    );
    Ok(())
}
