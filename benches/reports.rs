//! Reports over 10 million calls: the attribution report (which reads rollups) against a plain
//! `GROUP BY` over the raw calls table, in the same run, on PostgreSQL.
//!
//!   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench reports
//!
//! Options (environment): BENCH_CALLS (default 10 000 000), BENCH_SESSIONS (default half the
//! calls), BENCH_REPEAT (report requests per dimension, default 20). The generator writes the
//! calls, sessions and conversions of one property straight into a new database with SQL
//! (90 days, 8 channels, 20 campaigns, 200 landing pages, 300 cities, a third as many callers
//! as calls, so most callers call again), then marks every hour dirty and times the rollup
//! build, then times the report endpoint over HTTP (the real server, rebuild check included)
//! and the raw query. The database is dropped at the end.

// The load generator goes unused here: only the server and database helpers are.
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use common::env_num;

const DAY_MS: i64 = 86_400_000;
const DAYS: i64 = 90;

/// Channel, source and medium of generated visits (index = g * 31 % 8).
const CHANNELS: &str = "ARRAY['Paid Search','Organic Search','Direct','Paid Social','Referral','Email','Organic Social','Unattributed']";
const SOURCES: &str = "ARRAY['google','google','(direct)','facebook','example.org','newsletter','facebook','(not set)']";
const MEDIUMS: &str =
    "ARRAY['cpc','organic','(none)','paid_social','referral','email','social','(not set)']";

fn calls_sql() -> String {
    format!(
        "INSERT INTO calls (id, account_id, property_id, pool_id, provider, provider_call_id, \
         tracking_number, caller_number, caller_city, caller_state, caller_country, status, \
         status_rank, started_at, spool_seq, origin, updated_at, outcome, answered_at, ended_at, \
         duration_s, talk_s, confidence, channel, source, medium, campaign, landing_url, \
         visitor_city, visitor_region, first_call_id, attributed_at, notified_at, qualified, \
         disposition, csat) \
         SELECT 'bench-' || g, $1, $2, $3, 'twilio', 'CA' || g, \
           '+1212555' || lpad((g % 100)::text, 4, '0'), \
           '+1415' || lpad(((g * 7919) % $4)::text, 7, '0'), 'CITY ' || (g % 300), 'CA', 'US', \
           CASE WHEN g % 10 < 8 THEN 'completed' WHEN g % 10 = 8 THEN 'no-answer' ELSE 'busy' END, 3, \
           $5 + g * $6 / $7, g, 'voice', 0, \
           CASE WHEN g % 10 < 8 THEN 'answered' ELSE 'missed' END, \
           CASE WHEN g % 10 < 8 THEN $5 + g * $6 / $7 + (g % 30) * 1000 END, \
           $5 + g * $6 / $7 + (g % 300) * 1000, g % 300, \
           CASE WHEN g % 10 < 8 THEN g % 280 END, \
           (ARRAY['exact','exact','exact','shared','expired','none','source','exact'])[1 + g % 8], \
           ({CHANNELS})[1 + (g * 31) % 8], ({SOURCES})[1 + (g * 31) % 8], \
           ({MEDIUMS})[1 + (g * 31) % 8], 'campaign-' || (g % 20), \
           'https://www.acme.example/page-' || (g % 200) || '?utm_source=x', 'Town ' || (g % 300), 'ST', \
           CASE WHEN g <= $4 THEN NULL ELSE 'first' END, 0, 0, \
           CASE WHEN g % 10 < 8 AND g % 300 >= 60 THEN 1 ELSE 0 END, \
           CASE WHEN g % 50 = 0 THEN 'spam' WHEN g % 7 = 0 THEN 'appointment' END, \
           CASE WHEN g % 5 = 0 THEN 1 + g % 5 END \
         FROM generate_series($8::bigint, $9::bigint) g"
    )
}

fn sessions_sql() -> String {
    format!(
        "INSERT INTO sessions (id, account_id, property_id, pool_id, assignment, number, \
         landing_url, channel, source, medium, campaign, visitor_city, visitor_region, page_views, \
         first_seen_at, last_seen_at) \
         SELECT 'bench-s-' || g, $1, $2, $3, 'lease', NULL, \
           'https://www.acme.example/page-' || (g % 200), ({CHANNELS})[1 + (g * 31) % 8], \
           ({SOURCES})[1 + (g * 31) % 8], ({MEDIUMS})[1 + (g * 31) % 8], 'campaign-' || (g % 20), \
           'Town ' || (g % 300), 'ST', 3, $5 + g * $6 / $7, $5 + g * $6 / $7 + 60000 \
         FROM generate_series($8::bigint, $9::bigint) g WHERE $4::bigint >= 0"
    )
}

/// The same figures a report row holds, straight from the calls table.
const RAW_SQL: &str = "SELECT channel, COUNT(*) AS calls, COUNT(DISTINCT caller_number) AS callers, \
     SUM(CASE WHEN first_call_id IS NULL THEN 1 ELSE 0 END) AS first_time, \
     SUM(CASE WHEN outcome = 'answered' THEN 1 ELSE 0 END) AS answered, \
     SUM(CASE WHEN outcome = 'missed' THEN 1 ELSE 0 END) AS missed, SUM(qualified) AS qualified, \
     SUM(duration_s) AS duration, SUM(answered_at - started_at) AS answer_ms, \
     SUM(CASE WHEN disposition = 'spam' THEN 1 ELSE 0 END) AS spam \
     FROM calls WHERE property_id = $1 AND started_at >= $2 AND started_at < $3 GROUP BY channel";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut lat: Vec<Duration>) -> (f64, f64, f64) {
    lat.sort();
    let p = |q: f64| ms(lat[((lat.len() - 1) as f64 * q).round() as usize]);
    (p(0.5), p(0.99), ms(*lat.last().unwrap()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let admin = std::env::var("BENCH_DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("set BENCH_DATABASE_URL to a PostgreSQL server"))?;
    let calls = env_num("BENCH_CALLS", 10_000_000) as i64;
    let sessions = env_num("BENCH_SESSIONS", calls as u64 / 2) as i64;
    let repeat = env_num("BENCH_REPEAT", 20) as usize;
    let dir = tempfile::tempdir()?;
    let (_, url) = common::database(dir.path()).await?;
    let spool = dir.path().join("spool").display().to_string();
    let (base, state) =
        common::serve(&[("database_url", url.as_str()), ("spool_dir", &spool)]).await?;
    let storage = state.storage.clone();
    let (key, property) = common::account_and_property(&base, &storage, json!({})).await?;
    let pid = property["id"].as_str().unwrap().to_owned();
    let account_id = storage.property_by_id(&pid).await?.account_id;
    let client = reqwest::Client::new();
    let numbers: Vec<String> = (0..100).map(|i| format!("+1212555{i:04}")).collect();
    let pool: serde_json::Value = client
        .post(format!("{base}/v1/properties/{pid}/pools"))
        .bearer_auth(&key)
        .json(&json!({"name": "All", "kind": "session", "numbers": numbers, "monthly_cost": 1.5}))
        .send()
        .await?
        .json()
        .await?;
    let pool_id = pool["id"].as_str().unwrap().to_owned();

    let now = Utc::now().timestamp_millis();
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let start = today - (DAYS - 1) * DAY_MS;
    let span = now - start;
    let pg = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await?;

    let t = Instant::now();
    let chunk = 1_000_000i64;
    for (sql, total) in [(calls_sql(), calls), (sessions_sql(), sessions)] {
        let mut lo = 1;
        while lo <= total {
            let hi = (lo + chunk - 1).min(total);
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&account_id)
                .bind(&pid)
                .bind(&pool_id)
                .bind((calls / 3).max(1))
                .bind(start)
                .bind(span)
                .bind(total)
                .bind(lo)
                .bind(hi)
                .execute(&pg)
                .await?;
            lo = hi + 1;
        }
    }
    sqlx::query(
        "INSERT INTO conversions (id, account_id, property_id, call_id, name, value_micros, at, created_at) \
         SELECT 'bench-v-' || id, account_id, property_id, id, 'sale', 120000000, started_at, started_at \
         FROM calls WHERE property_id = $1 AND spool_seq % 40 = 0",
    )
    .bind(&pid)
    .execute(&pg)
    .await?;
    sqlx::query("ANALYZE").execute(&pg).await?;
    let generated = t.elapsed();
    println!(
        "generated {calls} calls, {sessions} sessions and {} conversions over {DAYS} days in {:.0} s",
        calls / 40,
        generated.as_secs_f64()
    );

    // Every hour of the property marked dirty, then rebuilt as a report would before reading.
    let t = Instant::now();
    storage.mark_property_dirty(&pid, now).await?;
    let days_built = state
        .rollups
        .refresh(&pid, start - DAY_MS, now + DAY_MS)
        .await?;
    let built = t.elapsed();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_rollups")
        .fetch_one(&pg)
        .await?;
    let repeat_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repeat_rollups")
        .fetch_one(&pg)
        .await?;
    println!(
        "rollups built: {days_built} (day, kind) rebuilds in {:.1} s ({:.2} s per day of {} calls); {rows} call rollup rows, {repeat_rows} repeat rows",
        built.as_secs_f64(),
        built.as_secs_f64() / DAYS as f64,
        calls / DAYS
    );

    let from = chrono::DateTime::from_timestamp_millis(start)
        .unwrap()
        .date_naive();
    let to = chrono::DateTime::from_timestamp_millis(today)
        .unwrap()
        .date_naive();
    println!("\nreport: {from} to {to} ({DAYS} days), {repeat} requests each, over HTTP\n");
    println!("| group_by | rows | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut channel_p50 = 0.0;
    for dim in [
        "channel",
        "campaign",
        "landing_page",
        "caller_city",
        "day",
        "hour",
    ] {
        let path = format!(
            "{base}/v1/properties/{pid}/reports/attribution?from={from}&to={to}&group_by={dim}"
        );
        let mut lat = Vec::new();
        let mut rows = 0;
        for _ in 0..repeat {
            let t = Instant::now();
            let res = client.get(&path).bearer_auth(&key).send().await?;
            anyhow::ensure!(res.status().is_success(), "{dim}: {}", res.status());
            let body: serde_json::Value = res.json().await?;
            lat.push(t.elapsed());
            rows = body["rows"].as_array().map_or(0, |r| r.len());
            anyhow::ensure!(
                body["totals"]["calls"].as_i64().unwrap()
                    + body["totals"]["spam_calls"].as_i64().unwrap()
                    == calls,
                "every call counted once"
            );
        }
        let (p50, p99, max) = summary(lat);
        if dim == "channel" {
            channel_p50 = p50;
        }
        println!("| {dim} | {rows} | {p50:.1} | {p99:.1} | {max:.1} |");
    }

    let mut lat = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let rows = sqlx::query(RAW_SQL)
            .bind(&pid)
            .bind(start)
            .bind(now + 1)
            .fetch_all(&pg)
            .await?;
        lat.push(t.elapsed());
        anyhow::ensure!(rows.len() == 8, "eight channels");
    }
    let (raw_p50, _, raw_max) = summary(lat);
    println!(
        "\nraw GROUP BY channel over the calls table (COUNT, COUNT DISTINCT caller, sums), 3 runs: median {raw_p50:.0} ms, max {raw_max:.0} ms"
    );
    println!(
        "ratio, raw / report by channel (medians, same run): {:.0}x",
        raw_p50 / channel_p50
    );

    pg.close().await;
    storage.close().await;
    // Ten million calls take gigabytes: the bench's database goes when it is done.
    let name = url::Url::parse(&url)?
        .path()
        .trim_start_matches('/')
        .to_owned();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    Ok(())
}
