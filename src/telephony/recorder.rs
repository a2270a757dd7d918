//! Records calls without the database on the webhook's path: the webhook appends the call to
//! the local spool (on disk before Twilio hears back), and a background task replays the spool
//! into the database, retrying while it is away. At start, whatever an earlier process left in
//! the spool (a crash, a database outage) is replayed first.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::spool::Spool;
use crate::storage::{NewCall, Storage};

pub struct CallRecorder {
    spool: Arc<Spool<NewCall>>,
    wake: Notify,
}

impl CallRecorder {
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            spool: Arc::new(Spool::open(dir)?),
            wake: Notify::new(),
        })
    }

    /// Appends the call to the spool and waits for the disk (on a blocking thread).
    pub async fn record(&self, call: NewCall) -> std::io::Result<u64> {
        let spool = self.spool.clone();
        let seq = tokio::task::spawn_blocking(move || spool.append(&call))
            .await
            .map_err(std::io::Error::other)??;
        self.wake.notify_one();
        Ok(seq)
    }

    /// Stores what the spool holds; returns how many records were stored.
    pub async fn replay(&self, storage: &Storage) -> anyhow::Result<usize> {
        let spool = self.spool.clone();
        let pending = tokio::task::spawn_blocking(move || spool.pending()).await??;
        let Some(last) = pending.last().map(|r| r.seq) else {
            return Ok(0);
        };
        let calls: Vec<(u64, NewCall)> = pending.into_iter().map(|r| (r.seq, r.event)).collect();
        storage.record_calls(&calls).await?;
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || spool.acknowledge(last)).await??;
        Ok(calls.len())
    }

    /// Replays whenever a call is recorded, and every second regardless (to retry after an
    /// outage), backing off while the database is away.
    pub fn start(self: &Arc<Self>, storage: Storage) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                match me.replay(&storage).await {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(calls = n, "calls recorded from the spool");
                        }
                        failures = 0;
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_power_of_two() {
                            tracing::warn!(
                                error = format!("{e:#}"),
                                failures,
                                "calls wait in the spool: the database is unavailable"
                            );
                        }
                    }
                }
                let pause = Duration::from_secs(u64::from(failures.min(5)).max(1));
                let _ = tokio::time::timeout(pause, me.wake.notified()).await;
            }
        })
    }
}
