//! Call webhooks against the real server: Twilio's voice webhook (signed, a unique CallSid each,
//! spooled and synced before the answer), as ratios to the same server's trivial endpoint
//! (`/health/ping`) measured in the same run; then the same with the database down; and the raw
//! cost of the spool append the webhook waits for.
//!
//!   cargo bench --bench telephony                 # SQLite
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench telephony
//!
//! Options (environment): BENCH_SECONDS (per phase, default 5), BENCH_CONNECTIONS (default 32),
//! BENCH_CALL_RATE (calls per second of the fixed-rate open-loop phases, default 200: already
//! far more calls than a large deployment takes). Leases play no part in a call, so the lease
//! store is the in-process one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::storage::NewCall;
use switchboard::telephony::spool::Spool;
use switchboard::telephony::twilio_signature;

use common::{Load, Phase, alternating_pairs, answered, env_num, format_ratios, open_loop};

const PUBLIC: &str = "https://calls.example.com";
const TOKEN: &str = "bench-twilio-token-0123456789";
const VOICE: &str = "/v1/telephony/twilio/voice";
const NUMBERS: u32 = 100;
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Distinct caller numbers the calls come from, in turn.
const CALLERS: usize = 50_000;

const STATUS: &str = "/v1/telephony/twilio/status";

/// What one unit of load is: the webhooks of one call, sent in order on one connection, timed
/// together.
#[derive(Clone, Copy)]
enum Mode {
    /// The call's voice webhook.
    Voice,
    /// The call's voice webhook, then its `completed` status callback (the number's own status
    /// callback URL, as set in Twilio's console): the whole life of a short call.
    VoiceAndStatus,
}

struct Calls {
    base: String,
    mode: Mode,
    numbers: Vec<String>,
}

/// Calls made so far in this run: every call gets a new CallSid (the database is new too).
static CALLS: AtomicUsize = AtomicUsize::new(0);

impl Calls {
    /// The (path, form parameters) of the next call's webhooks.
    fn webhooks(&self) -> Vec<(&'static str, Vec<(String, String)>)> {
        let i = CALLS.fetch_add(1, Ordering::Relaxed);
        let call_sid = format!("CA{i:032x}");
        let to = &self.numbers[i % self.numbers.len()];
        // Callers as at a real business: most call once, some again (CALLERS distinct numbers).
        let from = format!("+1415{}", 2_000_000 + i % CALLERS);
        let voice = (
            VOICE,
            params(&[
                ("CallSid", &call_sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", &from),
                ("To", to),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
                ("FromCity", "SAN FRANCISCO"),
                ("FromState", "CA"),
                ("FromCountry", "US"),
            ]),
        );
        match self.mode {
            Mode::Voice => vec![voice],
            Mode::VoiceAndStatus => vec![
                voice,
                (
                    STATUS,
                    params(&[
                        ("CallSid", &call_sid),
                        ("AccountSid", ACCOUNT_SID),
                        ("From", &from),
                        ("To", to),
                        ("CallStatus", "completed"),
                        ("CallDuration", "42"),
                        ("Direction", "inbound"),
                        ("SequenceNumber", "3"),
                        ("Timestamp", "Tue, 01 Dec 2026 13:00:42 +0000"),
                    ]),
                ),
            ],
        }
    }
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Load for Calls {
    async fn send(&self, client: &reqwest::Client, _i: usize) -> bool {
        for (path, params) in self.webhooks() {
            let signature =
                twilio_signature::compute(TOKEN.as_bytes(), &format!("{PUBLIC}{path}"), &params);
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish();
            let sent = client
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(body)
                .send()
                .await;
            if !answered(sent).await {
                return false;
            }
        }
        true
    }
}

/// One call's event as the spool holds it.
fn spooled_call(i: usize) -> NewCall {
    NewCall {
        account_id: "0195f3a0-0000-7000-8000-000000000001".into(),
        property_id: "0195f3a0-0000-7000-8000-000000000002".into(),
        pool_id: Some("0195f3a0-0000-7000-8000-000000000003".into()),
        provider: "twilio".into(),
        provider_call_id: format!("CA{i:032x}"),
        tracking_number: "+12125550100".into(),
        caller_number: Some("+14155559999".into()),
        caller_name: None,
        caller_city: Some("SAN FRANCISCO".into()),
        caller_state: Some("CA".into()),
        caller_zip: None,
        caller_country: Some("US".into()),
        status: "ringing".into(),
        started_at: 1_780_000_000_000,
    }
}

fn millis(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The spool alone, in a folder on the same disk: appends one after another (each waits for its
/// own sync), then `threads` appending at once for `seconds`.
fn spool_appends(dir: &std::path::Path, threads: usize, seconds: u64) -> anyhow::Result<()> {
    let one_by_one = dir.join("one-by-one");
    let spool: Spool<NewCall> = Spool::open(&one_by_one)?;
    let mut lat = Vec::new();
    for i in 0..2000 {
        let call = spooled_call(i);
        let t = Instant::now();
        spool.append(&call)?;
        lat.push(t.elapsed());
    }
    let mean = lat.iter().sum::<Duration>().as_secs_f64() * 1000.0 / lat.len() as f64;
    lat.sort();
    println!(
        "spool append, one at a time (2000): mean {mean:.3} ms, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        millis(&lat, 0.5),
        millis(&lat, 0.99),
        millis(&lat, 1.0)
    );

    let spool: Arc<Spool<NewCall>> = Arc::new(Spool::open(&dir.join("concurrent"))?);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (spool, next) = (spool.clone(), next.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let call = spooled_call(next.fetch_add(1, Ordering::Relaxed));
                    let t = Instant::now();
                    spool.append(&call).expect("append");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "spool append, {threads} threads at once: {:.0} appends/s, p50 {:.3} ms, p99 {:.3} ms, {:.1} appends per fdatasync",
        lat.len() as f64 / elapsed,
        millis(&lat, 0.5),
        millis(&lat, 0.99),
        lat.len() as f64 / spool.syncs().max(1) as f64,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_num("BENCH_SECONDS", 5);
    let connections = env_num("BENCH_CONNECTIONS", 32) as usize;
    let call_rate = env_num("BENCH_CALL_RATE", 200) as f64;
    let dir = tempfile::tempdir()?;
    let (stack, database_url) = common::database(dir.path()).await?;
    let spool_dir = dir.path().join("spool").display().to_string();
    let (base, state) = common::serve(&[
        ("database_url", database_url.as_str()),
        ("public_url", PUBLIC),
        ("twilio_auth_token", TOKEN),
        ("spool_dir", spool_dir.as_str()),
    ])
    .await?;
    let storage = state.storage.clone();

    // A property whose calls go to one business number, with a pool of tracking numbers.
    let (key, property) =
        common::account_and_property(&base, &storage, json!({"forward_to": "+14155550101"}))
            .await?;
    let client = reqwest::Client::new();
    let pid = property["id"].as_str().unwrap();
    let numbers: Vec<String> = (0..NUMBERS)
        .map(|i| format!("+1212{:07}", 3_000_000 + i))
        .collect();
    let res = client
        .post(format!("{base}/v1/properties/{pid}/pools"))
        .bearer_auth(&key)
        .json(&json!({"name": "All", "kind": "session", "numbers": numbers}))
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "pool: {}", res.text().await?);
    anyhow::ensure!(state.routes.len() == NUMBERS as usize, "the numbers route");

    let calls = |mode: Mode| {
        Arc::new(Calls {
            base: base.clone(),
            mode,
            numbers: numbers.clone(),
        })
    };
    // Between peak phases: the spool's replay keeps up, so none pays for the last one's appends.
    let settle = async || {
        for _ in 0..100 {
            if state.calls.replay(&storage).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Before a latency phase: finish everything the last phase left behind it (store, attribute
    // and complete its calls, rebuild its report rollups), so the phase measures a service
    // keeping up with its calls rather than one digesting a backlog. Returns how long it took.
    let drain = async || {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(90);
        while Instant::now() < deadline {
            let drained = async {
                let stored = state.calls.replay(&storage).await?;
                let attributed = state.attributor.run_pass().await?;
                let completed = state.attributor.complete_calls(&state.webhooks).await?;
                if stored + attributed + completed > 0 {
                    return anyhow::Ok(false);
                }
                // Rollups last: rebuilding a day while its calls are still being attributed
                // would only be done again.
                let rebuilt = state.rollups.refresh(pid, 0, i64::MAX / 2).await?;
                anyhow::Ok(rebuilt == 0)
            };
            if matches!(drained.await, Ok(true)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "note: the background had not caught up after 90 s; the next phase shares the machine with it"
            );
        }
        started.elapsed()
    };
    common::closed_loop("warm-up", &calls(Mode::Voice), connections, 1).await;
    drain().await;

    // Database up. Latency first: calls at a fixed rate, and one at a time, each phase on a
    // service with nothing left to digest.
    let voice = calls(Mode::Voice);
    // The latency floor of an open loop on this machine (timer wake-ups, idle threads waking).
    let ping_fixed = open_loop(
        "trivial at BENCH_CALL_RATE (open loop)",
        &Arc::new(common::Ping { base: base.clone() }),
        call_rate,
        seconds,
    )
    .await;
    let voice_fixed = open_loop(
        "voice webhook at BENCH_CALL_RATE (open loop)",
        &voice,
        call_rate,
        seconds,
    )
    .await;
    drain().await;
    let ping_single = common::closed_loop(
        "trivial, 1 connection",
        &Arc::new(common::Ping { base: base.clone() }),
        1,
        seconds,
    )
    .await;
    let voice_single = common::closed_loop("voice webhook, 1 connection", &voice, 1, seconds).await;
    drain().await;
    let pairs = calls(Mode::VoiceAndStatus);
    let pair_fixed = open_loop(
        "voice + status pairs at BENCH_CALL_RATE (open loop)",
        &pairs,
        call_rate,
        seconds,
    )
    .await;
    drain().await;

    // Then throughput: back to back, the spool absorbing what the background cannot yet store.
    let (ratios, ping, voice_peak) =
        alternating_pairs("voice webhook", &base, &voice, connections, seconds, settle).await;
    let backlog = storage.calls_of_property(pid).await?.len();
    let (caught_up, (waiting, _)) = (drain().await, storage.attribution_backlog().await?);
    println!(
        "background after the peak phases: {backlog} calls stored; {:.1} s later {waiting} still waited for attribution",
        caught_up.as_secs_f64()
    );
    let voice_half = open_loop(
        "voice webhook at half of peak (open loop)",
        &voice,
        voice_peak.rps / 2.0,
        seconds,
    )
    .await;
    settle().await;
    // A whole call: voice webhook then its completed status callback (a unit is the pair).
    let (pair_ratios, pair_ping, pair_peak) = alternating_pairs(
        "voice + status pairs",
        &base,
        &pairs,
        connections,
        seconds,
        settle,
    )
    .await;
    settle().await;
    let recorded = storage.calls_of_property(pid).await?.len();

    // Database down: this instance's connections are closed; every query fails from now on,
    // and calls wait in the spool.
    storage.close().await;
    let voice_down = calls(Mode::Voice);
    let (ratios_down, ping_down, voice_down_peak) = alternating_pairs(
        "voice webhook, database down",
        &base,
        &voice_down,
        connections,
        seconds,
        async || {},
    )
    .await;
    let voice_down_half = open_loop(
        "voice webhook, database down, at half of peak (open loop)",
        &voice_down,
        voice_down_peak.rps / 2.0,
        seconds,
    )
    .await;
    let voice_down_fixed = open_loop(
        "voice webhook, database down, at BENCH_CALL_RATE (open loop)",
        &voice_down,
        call_rate,
        seconds,
    )
    .await;
    // One call at a time: the latency of one call with nothing queued, database down.
    let voice_down_single = common::closed_loop(
        "voice webhook, database down, 1 connection",
        &voice_down,
        1,
        seconds,
    )
    .await;
    let pairs_down = calls(Mode::VoiceAndStatus);
    let pair_down_peak = common::closed_loop(
        "voice + status pairs, database down",
        &pairs_down,
        connections,
        seconds,
    )
    .await;
    let pair_down_fixed = open_loop(
        "voice + status pairs, database down, at BENCH_CALL_RATE (open loop)",
        &pairs_down,
        call_rate,
        seconds,
    )
    .await;

    println!(
        "\nstack: {stack} + in-process leases; {connections} connections, {seconds} s per phase; client and server share this machine"
    );
    println!(
        "voice/trivial ratios of three alternating pairs, database up: {}; down: {} (the median pairs are shown)",
        format_ratios(&ratios),
        format_ratios(&ratios_down)
    );
    println!(
        "pairs/trivial ratios (a pair is two webhooks), database up: {} (webhooks/s at the median: {:.0}, ratio {:.2})",
        format_ratios(&pair_ratios),
        2.0 * pair_peak.rps,
        2.0 * pair_peak.rps / pair_ping.rps
    );
    println!(
        "BENCH_CALL_RATE = {call_rate} calls/s; calls recorded while the database was up: {recorded}"
    );
    println!("\ndatabase up:");
    common::print_table(
        &ping,
        &[
            &ping,
            &voice_peak,
            &voice_half,
            &ping_fixed,
            &voice_fixed,
            &ping_single,
            &voice_single,
            &pair_ping,
            &pair_peak,
            &pair_fixed,
        ],
    );
    println!("\ndatabase down:");
    let down: [&Phase; 7] = [
        &ping_down,
        &voice_down_peak,
        &voice_down_half,
        &voice_down_fixed,
        &voice_down_single,
        &pair_down_peak,
        &pair_down_fixed,
    ];
    common::print_table(&ping_down, &down);
    println!();
    spool_appends(&dir.path().join("spool-bench"), connections, seconds)?;
    Ok(())
}
