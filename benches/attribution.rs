//! Attribution behind a burst of calls, against the real server: page views lease every number
//! of a session pool, then `BENCH_BURST` signed Twilio voice webhooks from as many callers arrive
//! on 32 connections as fast as the service takes them (a TV spot's minute). Measured: how long
//! the webhooks took, and when the last call was attributed, after the first webhook and after
//! the last; the rate, over the time from the first call's settle time (the wait for other
//! instances' ledgers) to the last attribution. The background does the work, as in production.
//!
//! Baseline in the same run: sequential database round trips (`Storage::ping`) per second. The
//! ratio of calls attributed per second to round trips per second says how many calls one round
//! trip's time attributes, which is what a machine's speed cancels out of.
//!
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres BENCH_REDIS_URL=redis://127.0.0.1:6379 \
//!     cargo bench --bench attribution
//!   cargo bench --bench attribution                # SQLite + in-process leases
//!
//! Then the backlog: BENCH_BACKLOG (default 10 000) more calls to the same numbers, already
//! settled, stored in one transaction (the background sees all of them at once), timed from the
//! commit to the last attribution: attribution's own pace, without the webhooks' or the spool's.
//!
//! Options (environment): BENCH_BURST (calls, default 3 000), BENCH_NUMBERS (the pool's numbers
//! and the sessions leasing them, default 300), BENCH_CONNECTIONS (default 32).

// This bench uses a few of the shared helpers only.
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard::telephony::twilio_signature;

use common::{answered, env_num};

const PUBLIC: &str = "https://calls.example.com";
const TOKEN: &str = "bench-twilio-token-0123456789";
const VOICE: &str = "/v1/telephony/twilio/voice";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let burst = env_num("BENCH_BURST", 3_000) as usize;
    let pool_size = env_num("BENCH_NUMBERS", 300) as usize;
    let connections = env_num("BENCH_CONNECTIONS", 32) as usize;
    let dir = tempfile::tempdir()?;
    let (database, database_url) = common::database(dir.path()).await?;
    let (redis, stack) = common::lease_store(database);
    let spool_dir = dir.path().join("spool").display().to_string();
    let mut pairs = vec![
        ("database_url", database_url.as_str()),
        ("public_url", PUBLIC),
        ("twilio_auth_token", TOKEN),
        ("spool_dir", spool_dir.as_str()),
        ("new_sessions_per_ip_per_minute", "100000000"),
        ("pool_new_leases_per_minute", "0"),
        ("alert_interval_secs", "3600"),
    ];
    if let Some(r) = &redis {
        pairs.push(("redis_url", r.as_str()));
    }
    let (base, state) = common::serve(&pairs).await?;
    let storage = state.storage.clone();
    let client = reqwest::Client::new();

    let (key, property) =
        common::account_and_property(&base, &storage, json!({"forward_to": "+14155550101"}))
            .await?;
    let pid = property["id"].as_str().unwrap();
    let public_key = property["public_key"].as_str().unwrap();
    let numbers: Vec<String> = (0..pool_size)
        .map(|i| format!("+1212{:07}", 3_000_000 + i))
        .collect();
    let res = client
        .post(format!("{base}/v1/properties/{pid}/pools"))
        .bearer_auth(&key)
        .json(&json!({"name": "All", "kind": "session", "lease_minutes": 60, "numbers": numbers}))
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "pool: {}", res.text().await?);

    // One visitor per number: every number is leased, so every call has a session to find.
    let mut leased = Vec::with_capacity(pool_size);
    for i in 0..pool_size {
        let body =
            json!({"key": public_key, "url": format!("https://www.acme.example/?gclid=bench{i}")});
        let answer: Value = client
            .post(format!("{base}/v1/dni/session"))
            .header("content-type", "text/plain")
            .header("origin", "https://www.acme.example")
            .header("user-agent", UA)
            .body(body.to_string())
            .send()
            .await?
            .json()
            .await?;
        let number = answer["number"].as_str().unwrap_or_default().to_owned();
        anyhow::ensure!(numbers.contains(&number), "visit {i} got {answer}");
        leased.push(number);
    }
    state.dni.ledger().flush().await;

    // The baseline: sequential database round trips.
    let started = Instant::now();
    let mut round_trips = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        storage.ping().await?;
        round_trips += 1;
    }
    let round_trips_per_s = f64::from(round_trips) / started.elapsed().as_secs_f64();

    // The burst.
    let leased = Arc::new(leased);
    let next = Arc::new(AtomicUsize::new(0));
    let first_sent = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..connections {
        let (client, base, leased, next) =
            (client.clone(), base.clone(), leased.clone(), next.clone());
        senders.push(tokio::spawn(async move {
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= burst {
                    return failed;
                }
                let params: Vec<(String, String)> = [
                    ("CallSid", format!("CA{i:032x}")),
                    (
                        "AccountSid",
                        "AC0123456789abcdef0123456789abcdef".to_owned(),
                    ),
                    ("From", format!("+1415{}", 2_000_000 + i)),
                    ("To", leased[i % leased.len()].clone()),
                    ("CallStatus", "ringing".to_owned()),
                    ("Direction", "inbound".to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                let signature = twilio_signature::compute(
                    TOKEN.as_bytes(),
                    &format!("{PUBLIC}{VOICE}"),
                    &params,
                );
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&params)
                    .finish();
                let sent = client
                    .post(format!("{base}{VOICE}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-twilio-signature", signature)
                    .body(body)
                    .send()
                    .await;
                if !answered(sent).await {
                    failed += 1;
                }
            }
        }));
    }
    let mut failed = 0;
    for s in senders {
        failed += s.await?;
    }
    let last_acked = first_sent.elapsed();
    anyhow::ensure!(failed == 0, "{failed} webhooks failed");

    // Until every call is stored and attributed (the background does it, as in production),
    // noting the backlog as it drains.
    let limit = Duration::from_secs(600);
    let mut samples: Vec<(Duration, i64)> = Vec::new();
    let all_attributed = loop {
        let (waiting, _) = storage.attribution_backlog().await?;
        samples.push((first_sent.elapsed(), waiting));
        if waiting == 0 && state.calls.is_drained() {
            let stored = storage.calls_of_property(pid).await?;
            if stored.len() == burst && stored.iter().all(|c| c.attribution.is_some()) {
                break first_sent.elapsed();
            }
        }
        anyhow::ensure!(
            first_sent.elapsed() < limit,
            "not attributed within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let calls = storage.calls_of_property(pid).await?;
    let exact = calls
        .iter()
        .filter(|c| {
            c.attribution
                .as_ref()
                .is_some_and(|a| a.confidence == "exact")
        })
        .count();

    // The backlog: calls stored at once (one transaction, so the background sees all or none),
    // already settled; timed from the commit to the last attribution: attribution's own pace.
    let backlog = env_num("BENCH_BACKLOG", 10_000) as usize;
    let template = calls[0].call.clone();
    let now = state.clock.now_ms();
    let events: Vec<(u64, switchboard::storage::CallEvent)> = (0..backlog)
        .map(|i| {
            let mut call = template.clone();
            call.provider_call_id = format!("CB{i:032x}");
            call.caller_number = Some(format!("+1415{}", 5_000_000 + i));
            call.tracking_number = leased[i % leased.len()].clone();
            call.started_at = now - 5_000 + (i as i64 % 1_000);
            (
                1_000_000 + i as u64,
                switchboard::storage::CallEvent::Started(call),
            )
        })
        .collect();
    storage.apply_call_events(&events, now).await?;
    let stored_at = Instant::now();
    loop {
        if storage.attribution_backlog().await?.0 == 0 {
            break;
        }
        anyhow::ensure!(
            stored_at.elapsed() < limit,
            "backlog not attributed within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let backlog_took = stored_at.elapsed();

    let settle = if redis.is_some() {
        Duration::from_millis(2 * 750 + 500)
    } else {
        Duration::ZERO
    };
    // The drain: once every call has arrived and settled, what waits is attributed at the
    // pass's own pace, without waiting for calls to come in.
    let settled = last_acked + settle;
    let drain = samples
        .iter()
        .find(|(at, _)| *at >= settled)
        .map(|(at, waiting)| (*at, *waiting));
    let working = all_attributed.saturating_sub(settle).as_secs_f64();
    let rate = burst as f64 / working;
    println!(
        "stack: {stack}; {burst} calls from {burst} callers to {pool_size} leased numbers, {connections} connections"
    );
    println!(
        "webhooks: all {burst} answered {:.2} s after the first ({:.0}/s)",
        last_acked.as_secs_f64(),
        burst as f64 / last_acked.as_secs_f64()
    );
    println!(
        "attributed: the last {:.2} s after the first webhook, {:.2} s after the last; {exact} of {burst} exact",
        all_attributed.as_secs_f64(),
        all_attributed.saturating_sub(last_acked).as_secs_f64()
    );
    println!(
        "rate: {rate:.0} calls/s over {working:.2} s (from the first call's settle time, {:.1} s, to the last attribution)",
        settle.as_secs_f64()
    );
    println!(
        "backlog: {backlog} settled calls stored in one transaction were attributed in {:.2} s: {:.0} calls/s ({:.3} per round trip's time)",
        backlog_took.as_secs_f64(),
        backlog as f64 / backlog_took.as_secs_f64(),
        backlog as f64 / backlog_took.as_secs_f64() / round_trips_per_s
    );
    match drain {
        Some((from, waiting)) if waiting > 0 => {
            let drain_rate = waiting as f64 / (all_attributed - from).as_secs_f64();
            println!(
                "drain: {waiting} calls waiting {:.2} s after the first webhook (all arrived and settled) were attributed in {:.2} s: {drain_rate:.0} calls/s",
                from.as_secs_f64(),
                (all_attributed - from).as_secs_f64()
            );
            println!(
                "baseline: {round_trips_per_s:.0} sequential database round trips/s; ratios {:.3} (rate) and {:.3} (drain) calls per round trip's time",
                rate / round_trips_per_s,
                drain_rate / round_trips_per_s
            );
        }
        _ => println!(
            "baseline: {round_trips_per_s:.0} sequential database round trips/s; ratio {:.3} calls per round trip's time (nothing left to drain once all had settled)",
            rate / round_trips_per_s
        ),
    }
    Ok(())
}
