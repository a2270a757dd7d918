//! Background work shared between instances. A job that would otherwise run on every instance
//! for every tenant (alert rules, looking for sessions a dead instance never wrote, rebuilding
//! report rollups) is cut into shards, and each shard is leased to one instance at a time in the
//! database (`work_leases`, a claims table that works on SQLite and PostgreSQL alike).
//!
//! Every `ttl / 3` each instance renews what it holds and its own heartbeat in one statement,
//! reads the live leases, and evens the shards out: it holds at most its fair share (shards
//! divided by live instances, rounded up), gives up any extra so a newcomer can take them, and
//! takes free shards up to its share. An instance that dies stops renewing: its leases expire
//! after `ttl` and the others take its shards at their next turn. So the work done across
//! instances stays the same however many run, and moves when one dies.
//!
//! A lease is an economy, not a lock: the jobs stay correct when two instances briefly work one
//! shard (alerts fire by a conditional write one instance wins, recovered sessions are written
//! idempotently, rollups are rebuilt from raw rows). An instance stops working a shard as soon as
//! it cannot renew it, a third of `ttl` before its lease expires for the others.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::storage::{Storage, StorageResult};
use crate::telemetry::Outage;
use crate::time::{Clock, Millis, SystemClock};

/// A job cut into `shards`; each shard has one holder at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub name: &'static str,
    pub shards: u32,
}

/// Alert rules, sharded by property.
pub const ALERTS: Job = Job {
    name: "alerts",
    shards: 16,
};
/// Looking for sessions a dead instance never wrote, sharded by lease-store bucket.
pub const SESSION_RECOVERY: Job = Job {
    name: "session-recovery",
    shards: 16,
};
/// Rebuilding report rollups: one instance at a time (a pass reads the oldest marks of every
/// property, and reports rebuild what they read on demand anyway).
pub const ROLLUPS: Job = Job {
    name: "rollups",
    shards: 1,
};

pub const JOBS: [Job; 3] = [ALERTS, SESSION_RECOVERY, ROLLUPS];

/// The lease's default life: an instance that dies hands its work over this long after.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);
/// Leases that expired this long ago are deleted (instances long gone).
const SWEEP_AFTER_MS: Millis = 3_600_000;

/// Which shard of `job` a key (a property's or a bucket's id) falls in. FNV-1a: the same on every
/// instance and every build, so instances mid-upgrade agree.
pub fn shard_of(job: Job, key: &str) -> u32 {
    let mut h = fnv::FnvHasher::default();
    h.write(key.as_bytes());
    (h.finish() % u64::from(job.shards)) as u32
}

fn lease_name(job: Job, shard: u32) -> String {
    format!("{}:{shard}", job.name)
}

const INSTANCE_PREFIX: &str = "instance:";

/// What this instance holds, as of its last turn.
#[derive(Debug, Default)]
struct Held {
    shards: HashMap<&'static str, BTreeSet<u32>>,
    /// The holds are trusted until then (renewed a turn ago; the database keeps them a third
    /// of `ttl` longer).
    until: Option<Instant>,
    instances: usize,
    turns: u64,
}

/// What `/health` shows.
#[derive(Debug, Clone)]
pub struct WorkStatus {
    pub instance: String,
    /// Live instances, this one included, as of the last turn.
    pub instances: usize,
    /// `(job, shards held here, shards in all)`.
    pub held: Vec<(&'static str, usize, u32)>,
    /// False when the last turn is too long ago (the database is away): this instance does no
    /// shared work until it renews.
    pub current: bool,
}

pub struct SharedWork {
    storage: Storage,
    /// This instance, as holder of leases: unique per process.
    holder: String,
    ttl: Duration,
    held: Mutex<Held>,
    /// One turn at a time (the background turn and a test's).
    turn: tokio::sync::Mutex<()>,
    halted: AtomicBool,
}

impl SharedWork {
    pub fn new(storage: Storage, ttl: Duration) -> Self {
        Self {
            storage,
            holder: uuid::Uuid::new_v4().to_string(),
            ttl,
            held: Mutex::new(Held::default()),
            turn: tokio::sync::Mutex::new(()),
            halted: AtomicBool::new(false),
        }
    }

    pub fn instance(&self) -> &str {
        &self.holder
    }

    /// The shards of `job` this instance works now (none while it cannot renew).
    pub fn held(&self, job: Job) -> BTreeSet<u32> {
        let held = self.held.lock().expect("work lock");
        match held.until {
            Some(until) if Instant::now() < until => {
                held.shards.get(job.name).cloned().unwrap_or_default()
            }
            _ => BTreeSet::new(),
        }
    }

    /// Whether the shard `key` falls in is this instance's to work now.
    pub fn holds(&self, job: Job, key: &str) -> bool {
        self.held(job).contains(&shard_of(job, key))
    }

    pub fn status(&self) -> WorkStatus {
        let current = {
            let held = self.held.lock().expect("work lock");
            held.until.is_some_and(|u| Instant::now() < u)
        };
        let instances = self.held.lock().expect("work lock").instances;
        WorkStatus {
            instance: self.holder.clone(),
            instances,
            held: JOBS
                .iter()
                .map(|job| (job.name, self.held(*job).len(), job.shards))
                .collect(),
            current,
        }
    }

    /// One turn: renew, read the live leases, even the shards out.
    pub async fn turn(&self) -> StorageResult<()> {
        let _one = self.turn.lock().await;
        if self.halted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let started = Instant::now();
        let now = SystemClock.now_ms();
        let until = now + self.ttl.as_millis() as Millis;
        let mut mine: HashSet<String> = self
            .storage
            .renew_work_leases(&self.holder, now, until)
            .await?
            .into_iter()
            .collect();
        let heartbeat = format!("{INSTANCE_PREFIX}{}", self.holder);
        if !mine.contains(&heartbeat)
            && self
                .storage
                .take_work_lease(&heartbeat, &self.holder, now, until)
                .await?
        {
            mine.insert(heartbeat);
        }
        let live: BTreeMap<String, String> = self
            .storage
            .live_work_leases(now)
            .await?
            .into_iter()
            .collect();
        let instances = live
            .keys()
            .filter(|job| job.starts_with(INSTANCE_PREFIX))
            .count()
            .max(1);
        let mut shards = HashMap::new();
        for job in JOBS {
            let fair = job.shards.div_ceil(instances as u32) as usize;
            let mut kept: BTreeSet<u32> = (0..job.shards)
                .filter(|s| mine.contains(&lease_name(job, *s)))
                .collect();
            // More than a fair share: the extra goes back, for an instance that has too few.
            while kept.len() > fair {
                let extra = kept.pop_last().expect("more than fair");
                self.storage
                    .release_work_lease(&lease_name(job, extra), &self.holder)
                    .await?;
            }
            // Fewer: take free shards, looking from a place of this instance's own so that
            // instances starting together do not all reach for the same ones.
            let start = shard_of(job, &self.holder);
            for s in (0..job.shards).map(|i| (start + i) % job.shards) {
                if kept.len() >= fair {
                    break;
                }
                let name = lease_name(job, s);
                if !live.contains_key(&name)
                    && self
                        .storage
                        .take_work_lease(&name, &self.holder, now, until)
                        .await?
                {
                    kept.insert(s);
                }
            }
            shards.insert(job.name, kept);
        }
        let sweep = {
            let mut held = self.held.lock().expect("work lock");
            held.shards = shards;
            held.until = Some(started + self.ttl * 2 / 3);
            held.instances = instances;
            held.turns += 1;
            held.turns % 100 == 1
        };
        if sweep {
            self.storage.sweep_work_leases(now - SWEEP_AFTER_MS).await?;
        }
        Ok(())
    }

    /// Takes turns every third of `ttl`, for as long as the instance runs.
    pub fn start(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut outage = Outage::default();
            let mut every = tokio::time::interval(me.ttl / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                outage.record(
                    me.turn().await,
                    "shared background work waits for the database",
                );
            }
        })
    }

    /// A graceful stop hands everything over at once, instead of after `ttl`.
    pub async fn release_all(&self) {
        *self.held.lock().expect("work lock") = Held::default();
        if let Err(e) = self.storage.release_work_leases_of(&self.holder).await {
            tracing::warn!(error = %e, "shared work not released; others take it when it expires");
        }
    }

    /// Stops renewing and working shards without telling anyone, as a killed instance would:
    /// the others take its shards when its leases expire (tests).
    pub fn halt(&self) {
        self.halted.store(true, Ordering::Relaxed);
        *self.held.lock().expect("work lock") = Held::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c: a change here would move every tenant's work
        // between instances mid-upgrade.
        assert_eq!(
            shard_of(ALERTS, "a"),
            (0xaf63_dc4c_8601_ec8c_u64 % 16) as u32
        );
        let mut counts = [0u32; 16];
        for _ in 0..1_600 {
            counts[shard_of(ALERTS, &uuid::Uuid::new_v4().to_string()) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
        assert_eq!(shard_of(ROLLUPS, "anything"), 0);
    }
}
