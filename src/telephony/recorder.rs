//! Records calls without the database on the webhook's path: each provider event is appended to
//! the local spool (on disk before the provider hears back), and a background task replays the
//! spool into the database, retrying while it is away, then attributes the calls. At start,
//! whatever an earlier process left in the spool (a crash, a database outage) is replayed first.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::replays::{RecentEvents, fingerprint};
use super::spool::Spool;
use crate::attribution::Attributor;
use crate::live::{LiveEvent, LiveHub};
use crate::storage::{CallEvent, NewCall, Storage};
use crate::telemetry::Outage;
use crate::time::{Millis, SharedClock};
use crate::webhooks::Webhooks;

/// A spool line. Lines written before events had kinds hold a bare voice event.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum SpoolEntry {
    Event(CallEvent),
    Legacy(NewCall),
}

impl SpoolEntry {
    fn call(&self) -> &NewCall {
        match self {
            SpoolEntry::Event(e) => e.call(),
            SpoolEntry::Legacy(c) => c,
        }
    }

    fn into_event(self) -> CallEvent {
        match self {
            SpoolEntry::Event(e) => e,
            SpoolEntry::Legacy(c) => CallEvent::Started(c),
        }
    }
}

pub struct CallRecorder {
    spool: Arc<Spool<SpoolEntry>>,
    clock: SharedClock,
    wake: Notify,
    live: Arc<LiveHub>,
    replaying: tokio::sync::Mutex<()>,
    /// Events spooled lately, to skip replays of them.
    recent: RecentEvents,
    /// Stored events whose caller was erased, since the spool was last compacted.
    landed_erased: AtomicUsize,
    /// The last erasure (of any account) this instance compacted its spool for.
    erasures_seen: tokio::sync::Mutex<Option<Millis>>,
}

/// Spooled events stored per database transaction.
const REPLAY_BATCH: usize = 1000;

impl CallRecorder {
    pub fn open(dir: &Path, clock: SharedClock, live: Arc<LiveHub>) -> std::io::Result<Self> {
        Ok(Self {
            spool: Arc::new(Spool::open(dir)?),
            clock,
            wake: Notify::new(),
            live,
            replaying: tokio::sync::Mutex::new(()),
            recent: RecentEvents::default(),
            landed_erased: AtomicUsize::new(0),
            erasures_seen: tokio::sync::Mutex::new(None),
        })
    }

    /// Appends the event to the spool and waits for the disk (on a blocking thread), then tells
    /// the live feed (from memory: the database is not on this path). A replay of an event
    /// spooled lately (`super::replays`) is neither: None.
    pub async fn record(&self, event: CallEvent) -> std::io::Result<Option<u64>> {
        let fingerprint = fingerprint(&event);
        if !self.recent.first_time(fingerprint) {
            tracing::debug!(
                call_id = event.provider_call_id(),
                "a replayed call event was not spooled again"
            );
            return Ok(None);
        }
        let live = LiveEvent::from_call_event(&event, self.clock.now_ms());
        let spool = self.spool.clone();
        let appended = tokio::task::spawn_blocking(move || spool.append(&SpoolEntry::Event(event)))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        let seq = match appended {
            Ok(seq) => seq,
            Err(e) => {
                self.recent.forget(fingerprint);
                return Err(e);
            }
        };
        self.wake.notify_one();
        if let Some(live) = live {
            self.live.publish(&live);
        }
        Ok(Some(seq))
    }

    /// Stores what the spool holds; returns how many records were stored. One replay at a time
    /// (two would store the same records twice over, each waiting on the other's rows), in
    /// transactions of at most `REPLAY_BATCH` records, each acknowledged as it commits: after
    /// an outage the backlog reaches the database, and attribution, a batch at a time instead
    /// of in one long transaction.
    pub async fn replay(&self, storage: &Storage) -> anyhow::Result<usize> {
        let _one_at_a_time = self.replaying.lock().await;
        let spool = self.spool.clone();
        let pending = tokio::task::spawn_blocking(move || spool.pending()).await??;
        let mut stored = 0;
        let mut pending = pending.into_iter().peekable();
        while pending.peek().is_some() {
            let events: Vec<(u64, CallEvent)> = pending
                .by_ref()
                .take(REPLAY_BATCH)
                .map(|r| (r.seq, r.event.into_event()))
                .collect();
            let last = events.last().map_or(0, |(seq, _)| *seq);
            let erased = storage
                .apply_call_events(&events, self.clock.now_ms())
                .await?;
            self.landed_erased.fetch_add(erased, Ordering::Relaxed);
            let spool = self.spool.clone();
            tokio::task::spawn_blocking(move || spool.acknowledge(last)).await??;
            stored += events.len();
        }
        Ok(stored)
    }

    /// Clears the spool of an erased caller (`DELETE /v1/callers/{e164}` on this instance):
    /// stores what waits (it lands erased), then cuts every stored record from the file.
    /// Returns how many records cut named the caller.
    pub async fn forget_caller(
        &self,
        storage: &Storage,
        account_id: &str,
        number: &str,
    ) -> anyhow::Result<usize> {
        self.replay(storage).await?;
        let cut = self.compact().await?;
        Ok(cut
            .iter()
            .filter(|r| {
                let call = r.event.call();
                call.account_id == account_id && call.caller_number.as_deref() == Some(number)
            })
            .count())
    }

    /// After a replay: once any instance erased a caller, or a stored event's caller had been
    /// erased, the stored records are cut from the file at once (they may name the caller).
    async fn forget_erased(&self, storage: &Storage) -> anyhow::Result<()> {
        let last = storage.last_erasure_at().await?;
        let mut seen = self.erasures_seen.lock().await;
        if *seen == last && self.landed_erased.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        self.compact().await?;
        *seen = last;
        Ok(())
    }

    async fn compact(&self) -> anyhow::Result<Vec<super::spool::Record<SpoolEntry>>> {
        let _no_replay_meanwhile = self.replaying.lock().await;
        // Counted before the cut: an event stored after it is cut next time.
        let landed = self.landed_erased.load(Ordering::Relaxed);
        let spool = self.spool.clone();
        let cut = tokio::task::spawn_blocking(move || spool.compact()).await??;
        self.landed_erased.fetch_sub(landed, Ordering::Relaxed);
        if !cut.is_empty() {
            tracing::debug!(
                records = cut.len(),
                "stored call events cut from the spool after an erasure"
            );
        }
        Ok(cut)
    }

    /// Replays whenever an event is recorded, and every second regardless (to retry after an
    /// outage and to attribute calls whose wait for the ledger is over), backing off while the
    /// database is away.
    pub fn start(
        self: &Arc<Self>,
        storage: Storage,
        attributor: Arc<Attributor>,
        webhooks: Arc<Webhooks>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut outage = Outage::default();
            let mut failures = 0;
            loop {
                let pass = async {
                    // After a failure, ask the database before rereading the spool: while it
                    // is away each retry would parse every call waiting there, on the cores
                    // that answer the webhooks.
                    if failures > 0 {
                        storage.ping().await?;
                    }
                    let stored = me.replay(&storage).await?;
                    if stored > 0 {
                        tracing::debug!(events = stored, "call events stored from the spool");
                    }
                    me.forget_erased(&storage).await?;
                    attributor.run_pass().await?;
                    attributor.complete_calls(&webhooks).await?;
                    anyhow::Ok(())
                };
                failures = outage.record(
                    pass.await,
                    "calls wait in the spool: the database is unavailable",
                );
                let pause = Duration::from_secs(u64::from(failures.min(5)).max(1));
                if failures == 0 {
                    let _ = tokio::time::timeout(pause, me.wake.notified()).await;
                } else {
                    // While the database is away, new calls must not wake a replay that would
                    // only fail again (each re-reads the growing spool): wait out the backoff.
                    tokio::time::sleep(pause).await;
                }
            }
        })
    }

    /// How many spooled events wait for the database (counted in memory, never read from the
    /// file: `/health` asks on every probe).
    pub async fn pending_events(&self) -> std::io::Result<usize> {
        Ok(self.spool.pending_count())
    }

    /// The sequence number of the last event spooled.
    pub fn last_spooled(&self) -> u64 {
        self.spool.last_written()
    }

    /// Whether every spooled event is stored in the database.
    pub fn is_drained(&self) -> bool {
        self.spool.is_empty()
    }

    /// Wakes the background task now (a test moved the clock, or a call needs attribution).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
