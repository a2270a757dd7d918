//! The lease store in Redis, for several instances. Each page view is one `EVALSHA` of
//! `touch.lua` (one round trip); all of a bucket's keys carry the `{bucket}` hash tag, so the
//! script's keys live in one Redis Cluster slot.

use redis::{Script, Value};
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::OnceCell;

use super::{
    BucketSnapshot, BucketStatus, Lease, LeaseResult, LeaseStoreError, NEW_LEASE_TURNOVER,
    StoredSession, Touch, TouchOutcome, Touched, running_holders,
};
use crate::redis_client::{Limits, RedisClient, RedisConnection, RedisEndpoint};
use crate::time::Millis;

static TOUCH: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("touch.lua")));
static SYNC: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("sync.lua")));

pub struct RedisStore {
    endpoint: RedisEndpoint,
    client: RedisClient,
    /// Set once connected; the connection reconnects by itself after that.
    conn: OnceCell<RedisConnection>,
    /// When the last attempt to connect failed (ms since the epoch; 0: never). Page views
    /// within `RETRY_AFTER` of it answer at once instead of waiting on a dead Redis.
    failed_at: AtomicI64,
}

const RETRY_AFTER: Millis = 1_000;

/// The nine keys of a bucket, in the order the scripts name them.
fn keys(bucket: &str) -> [String; 9] {
    [
        "state", "meta", "free", "busy", "holders", "numbers", "stats", "seen", "created",
    ]
    .map(|k| format!("sb:{{{bucket}}}:{k}"))
}

impl RedisStore {
    pub fn new(endpoint: &RedisEndpoint) -> Result<Self, redis::RedisError> {
        Ok(Self {
            endpoint: endpoint.clone(),
            client: RedisClient::open(endpoint, Limits::default())?,
            conn: OnceCell::new(),
            failed_at: AtomicI64::new(0),
        })
    }

    pub fn endpoint(&self) -> &RedisEndpoint {
        &self.endpoint
    }

    async fn connection(&self) -> Result<RedisConnection, LeaseStoreError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let wall = chrono::Utc::now().timestamp_millis();
        if wall - self.failed_at.load(Ordering::Relaxed) < RETRY_AFTER {
            return Err(LeaseStoreError::Protocol(
                "redis was unreachable a moment ago; not retrying yet".into(),
            ));
        }
        let conn = self
            .conn
            .get_or_try_init(|| self.client.connect(Limits::default()))
            .await
            .map_err(|e| {
                self.failed_at.store(wall, Ordering::Relaxed);
                LeaseStoreError::Unavailable(e)
            })?;
        Ok(conn.clone())
    }

    pub async fn ping(&self) -> Result<(), LeaseStoreError> {
        let mut conn = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(LeaseStoreError::Unavailable)?;
        Ok(())
    }

    pub async fn touch(&self, t: &Touch<'_>) -> Result<TouchOutcome, LeaseStoreError> {
        let mut conn = self.connection().await?;
        let (meta, state) = match &t.new_session {
            Some(new) => (new.meta.to_owned(), new.initial_state()),
            None => (String::new(), String::new()),
        };
        let mut invocation = TOUCH.prepare_invoke();
        for key in keys(t.bucket) {
            invocation.key(key);
        }
        invocation
            .arg(t.session_id)
            .arg(t.now)
            .arg(t.lease_ms)
            .arg(t.mode.as_str())
            .arg(meta)
            .arg(state)
            .arg(t.retention_ms)
            .arg(if t.page_view { 1 } else { 0 })
            .arg(t.renewal_hold_ms)
            .arg(t.new_leases_per_minute)
            .arg(NEW_LEASE_TURNOVER);
        let reply: Vec<Value> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(LeaseStoreError::Unavailable)?;
        parse_reply(&reply)
    }

    pub async fn sync(
        &self,
        bucket: &str,
        snapshot: &BucketSnapshot,
    ) -> Result<(), LeaseStoreError> {
        let mut conn = self.connection().await?;
        let mut invocation = SYNC.prepare_invoke();
        for key in keys(bucket) {
            invocation.key(key);
        }
        invocation.arg(snapshot.numbers.len());
        for (number, idle_since) in &snapshot.numbers {
            invocation.arg(number).arg(*idle_since);
        }
        for l in &snapshot.leases {
            invocation
                .arg(&l.session_id)
                .arg(&l.number)
                .arg(l.started_at)
                .arg(l.ends_at)
                .arg(if l.shared { 1 } else { 0 });
        }
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(LeaseStoreError::Unavailable)?;
        Ok(())
    }

    pub async fn status(&self, bucket: &str, now: Millis) -> Result<BucketStatus, LeaseStoreError> {
        let mut conn = self.connection().await?;
        let k = keys(bucket);
        let (numbers, busy, stats): (u64, u64, std::collections::HashMap<String, u64>) =
            redis::pipe()
                .scard(&k[5])
                .zcount(&k[3], format!("({now}"), "+inf")
                .hgetall(&k[6])
                .query_async(&mut conn)
                .await
                .map_err(LeaseStoreError::Unavailable)?;
        Ok(BucketStatus {
            numbers,
            busy,
            exhaustions: stats.get("exhaustions").copied().unwrap_or(0),
            peak: stats.get("peak").copied().unwrap_or(0),
            limited: stats.get("limited").copied().unwrap_or(0),
        })
    }

    pub async fn holders(
        &self,
        bucket: &str,
        number: &str,
        now: Millis,
    ) -> Result<Vec<String>, LeaseStoreError> {
        let mut conn = self.connection().await?;
        let k = keys(bucket);
        let sids: Option<String> = redis::cmd("HGET")
            .arg(&k[4])
            .arg(number)
            .query_async(&mut conn)
            .await
            .map_err(LeaseStoreError::Unavailable)?;
        let sids: Vec<String> = sids
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if sids.is_empty() {
            return Ok(Vec::new());
        }
        let states: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&k[0])
            .arg(&sids)
            .query_async(&mut conn)
            .await
            .map_err(LeaseStoreError::Unavailable)?;
        Ok(running_holders(
            number,
            now,
            sids.into_iter().zip(states.iter().map(|st| st.as_deref())),
        ))
    }
}

impl RedisStore {
    pub async fn created_between(
        &self,
        bucket: &str,
        from: Millis,
        to: Millis,
        limit: usize,
    ) -> Result<Vec<(String, Millis)>, LeaseStoreError> {
        let mut conn = self.connection().await?;
        redis::cmd("ZRANGEBYSCORE")
            .arg(&keys(bucket)[8])
            .arg(from)
            .arg(to)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(LeaseStoreError::Unavailable)
    }

    pub async fn stored_sessions(
        &self,
        bucket: &str,
        created: &[(String, Millis)],
    ) -> Result<Vec<StoredSession>, LeaseStoreError> {
        if created.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection().await?;
        let k = keys(bucket);
        let sids: Vec<&str> = created.iter().map(|(sid, _)| sid.as_str()).collect();
        // One slot (the bucket's), so one pipeline on a cluster too.
        type Texts = Vec<Option<String>>;
        let (states, metas, seen): (Texts, Texts, Vec<Option<Millis>>) = redis::pipe()
            .cmd("HMGET")
            .arg(&k[0])
            .arg(&sids)
            .cmd("HMGET")
            .arg(&k[1])
            .arg(&sids)
            .cmd("ZMSCORE")
            .arg(&k[7])
            .arg(&sids)
            .query_async(&mut conn)
            .await
            .map_err(LeaseStoreError::Unavailable)?;
        Ok(created
            .iter()
            .zip(states.into_iter().zip(metas).zip(seen))
            .filter_map(|((sid, at), ((state, meta), seen))| {
                StoredSession::of(
                    sid.clone(),
                    *at,
                    seen.unwrap_or(*at),
                    state.as_deref()?,
                    meta?,
                )
            })
            .collect())
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Nil => Some(String::new()),
        _ => None,
    }
}

fn parse_reply(reply: &[Value]) -> Result<TouchOutcome, LeaseStoreError> {
    let fields: Vec<String> = reply
        .iter()
        .map(text)
        .collect::<Option<_>>()
        .ok_or_else(|| LeaseStoreError::Protocol(format!("{reply:?}")))?;
    let bad = || LeaseStoreError::Protocol(fields.join("|"));
    match fields.first().map(String::as_str) {
        Some("SYNC") => return Ok(TouchOutcome::NeedsSync),
        Some("MISSING") => return Ok(TouchOutcome::Missing),
        _ => {}
    }
    let [outcome, number, start, end, shared, pv, meta, co, capped] = fields.as_slice() else {
        return Err(bad());
    };
    let page_views = pv.parse().map_err(|_| bad())?;
    let lease = match outcome.as_str() {
        "static" => LeaseResult::Static,
        "exhausted" => LeaseResult::Exhausted,
        "limited" => LeaseResult::Limited,
        "lapsed" => LeaseResult::Lapsed {
            number: number.clone(),
        },
        "renewed" | "leased" | "shared" => LeaseResult::Held(Lease {
            number: number.clone(),
            started_at: start.parse().map_err(|_| bad())?,
            ends_at: end.parse().map_err(|_| bad())?,
            shared: shared == "1",
            fresh: outcome != "renewed",
            shared_with: co.split_whitespace().map(str::to_owned).collect(),
            exhausted: outcome == "shared",
            capped: capped == "1",
        }),
        _ => return Err(bad()),
    };
    Ok(TouchOutcome::Touched(Touched {
        meta: meta.clone(),
        page_views,
        lease,
    }))
}
