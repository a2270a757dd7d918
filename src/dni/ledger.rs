//! The write-behind ledger: the page-view flow records sessions, page views and leases here,
//! off the request path; a background task writes them to the database in batches, at most
//! `FLUSH_EVERY` after they happen (within the design bound of one second), and drains at shutdown.
//!
//! A database outage holds the rows in memory and retries, backing off up to `MAX_BACKOFF`;
//! the task keeps taking events while a write is in flight or backing off, so the channel
//! stays short, and it is bounded (`CHANNEL_CAPACITY`) in any case. What is held is bounded
//! too (`MAX_BACKLOG` rows). Past it, rows are given up in this order, and each is counted
//! (`/metrics`: `switchboard_ledger_dropped_rows_total{kind}`) and logged:
//! 1. page views (the per-view rows: reports' page counts and the call page's path);
//! 2. sessions' later activity (`last_seen_at`, page-view counts), kept in the lease store;
//! 3. only then new sessions, leases, shared-number marks and exhaustion events: what attribution
//!    needs to credit a call. With Redis, sessions given up here are written later from the
//!    lease store by session recovery (`recovery.rs`), once the database is back within its
//!    look-back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::storage::{
    ExhaustionRow, LeaseRow, LedgerBatch, PageViewRow, SessionRow, SessionSeen, SharedFrom,
    Storage, StorageResult,
};

pub const FLUSH_EVERY: Duration = Duration::from_millis(750);
/// The longest pause between two writes while the database fails.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Rows held for the database at most (about 1 KB each: some 200 MB).
const MAX_BACKLOG: usize = 200_000;
/// Events on their way to the writer task at most; past it, an event is dropped and counted.
const CHANNEL_CAPACITY: usize = 65_536;

/// What the ledger holds and what it gave up, for `/health` and `/metrics`.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Rows waiting for the database (after coalescing), the write in flight included.
    pub pending: AtomicUsize,
    pub dropped_page_views: AtomicU64,
    pub dropped_activity: AtomicU64,
    /// Sessions, leases, shared marks and exhaustion events given up (the backlog was full of
    /// them), or events dropped because the channel was full.
    pub dropped_essential: AtomicU64,
}

impl LedgerStats {
    pub fn dropped(&self) -> [(&'static str, u64); 3] {
        [
            ("page_view", self.dropped_page_views.load(Ordering::Relaxed)),
            ("activity", self.dropped_activity.load(Ordering::Relaxed)),
            ("essential", self.dropped_essential.load(Ordering::Relaxed)),
        ]
    }
}

#[derive(Debug)]
pub enum LedgerEvent {
    SessionStarted(Box<SessionRow>),
    SessionSeen(SessionSeen),
    PageView(PageViewRow),
    Lease(LeaseRow),
    Shared(SharedFrom),
    Exhaustion(ExhaustionRow),
}

enum Message {
    Event(LedgerEvent),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Message>,
    stats: Arc<LedgerStats>,
}

pub struct LedgerTask {
    handle: tokio::task::JoinHandle<()>,
}

impl Ledger {
    pub fn start(storage: Storage) -> (Self, LedgerTask) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let stats = Arc::new(LedgerStats::default());
        let handle = tokio::spawn(run(storage, rx, stats.clone()));
        (Self { tx, stats }, LedgerTask { handle })
    }

    pub fn record(&self, event: LedgerEvent) {
        match self.tx.try_send(Message::Event(event)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = self.stats.dropped_essential.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::error!(
                        dropped,
                        "the ledger's channel is full; an event was dropped"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("ledger is stopped; an event was not recorded");
            }
        }
    }

    /// Writes everything recorded so far (tests, and reads that must see the latest).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub fn stats(&self) -> &LedgerStats {
        &self.stats
    }
}

impl LedgerTask {
    /// Waits for the writer to drain; call after every `Ledger` handle is dropped.
    pub async fn finish(self) {
        let _ = self.handle.await;
    }
}

/// Events gathered between flushes, coalesced so each key is written once.
#[derive(Default)]
struct Pending {
    sessions: HashMap<String, SessionRow>,
    seen: HashMap<String, SessionSeen>,
    page_views: Vec<PageViewRow>,
    leases: HashMap<String, LeaseRow>,
    shared: Vec<SharedFrom>,
    exhaustions: Vec<ExhaustionRow>,
}

impl Pending {
    fn add(&mut self, event: LedgerEvent) {
        match event {
            LedgerEvent::SessionStarted(row) => {
                self.sessions.insert(row.id.clone(), *row);
            }
            LedgerEvent::SessionSeen(seen) => match self.sessions.get_mut(&seen.id) {
                // Started in this same batch: fold the later view into the insert.
                Some(row) => {
                    // The first client id stays, whichever view brought it.
                    row.ga_client_id = row.ga_client_id.take().or(seen.ga_client_id);
                    if row.last_seen_at <= seen.last_seen_at {
                        row.last_seen_at = seen.last_seen_at;
                        row.page_views = seen.page_views;
                        row.number = seen.number;
                        row.assignment = seen.assignment;
                    }
                }
                None => {
                    let seen = match self.seen.remove(&seen.id) {
                        Some(prev) => merge_seen(prev, seen),
                        None => seen,
                    };
                    self.seen.insert(seen.id.clone(), seen);
                }
            },
            LedgerEvent::PageView(view) => self.page_views.push(view),
            LedgerEvent::Lease(lease) => {
                let id = lease.id();
                match self.leases.get_mut(&id) {
                    Some(prev) => {
                        prev.last_seen_at = prev.last_seen_at.max(lease.last_seen_at);
                        prev.ends_at = prev.ends_at.max(lease.ends_at);
                        prev.shared |= lease.shared;
                    }
                    None => {
                        self.leases.insert(id, lease);
                    }
                }
            }
            LedgerEvent::Shared(shared) => self.shared.push(shared),
            LedgerEvent::Exhaustion(e) => self.exhaustions.push(e),
        }
    }

    /// Rows held (after coalescing).
    fn rows(&self) -> usize {
        self.sessions.len()
            + self.seen.len()
            + self.page_views.len()
            + self.leases.len()
            + self.shared.len()
            + self.exhaustions.len()
    }

    /// Keeps the rows within `limit`, giving up the least needed first (see the module's doc).
    fn shed(&mut self, limit: usize, stats: &LedgerStats) {
        let over = |p: &Self| p.rows().saturating_sub(limit);
        if over(self) == 0 {
            return;
        }
        // Page views go first, the oldest first (the newest say more about a live session).
        let n = over(self).min(self.page_views.len());
        self.page_views.drain(..n);
        stats
            .dropped_page_views
            .fetch_add(n as u64, Ordering::Relaxed);
        let n = over(self).min(self.seen.len());
        let gone: Vec<String> = self.seen.keys().take(n).cloned().collect();
        for id in &gone {
            self.seen.remove(id);
        }
        stats
            .dropped_activity
            .fetch_add(n as u64, Ordering::Relaxed);
        // What attribution needs: new sessions go before leases (a lease names its session,
        // which recovery can rebuild from the lease store; a call cannot be credited without
        // the lease).
        let n = over(self).min(self.sessions.len());
        let gone: Vec<String> = self.sessions.keys().take(n).cloned().collect();
        for id in &gone {
            self.sessions.remove(id);
        }
        let m = over(self).min(self.exhaustions.len());
        self.exhaustions.drain(..m);
        let k = over(self).min(self.shared.len());
        self.shared.drain(..k);
        let l = over(self).min(self.leases.len());
        let gone: Vec<String> = self.leases.keys().take(l).cloned().collect();
        for id in &gone {
            self.leases.remove(id);
        }
        stats
            .dropped_essential
            .fetch_add((n + m + k + l) as u64, Ordering::Relaxed);
    }

    fn take(&mut self) -> LedgerBatch {
        LedgerBatch {
            sessions: std::mem::take(&mut self.sessions).into_values().collect(),
            seen: std::mem::take(&mut self.seen).into_values().collect(),
            page_views: std::mem::take(&mut self.page_views),
            leases: std::mem::take(&mut self.leases).into_values().collect(),
            shared: std::mem::take(&mut self.shared),
            exhaustions: std::mem::take(&mut self.exhaustions),
        }
    }
}

/// Two page views of one session in one batch: the later one's state, and the first client
/// id either brought.
fn merge_seen(earlier: SessionSeen, later: SessionSeen) -> SessionSeen {
    let ga_client_id = earlier.ga_client_id.clone().or(later.ga_client_id.clone());
    let mut kept = if later.last_seen_at >= earlier.last_seen_at {
        later
    } else {
        earlier
    };
    kept.ga_client_id = ga_client_id;
    kept
}

/// Puts a batch that failed to write back in front of the events that arrived meanwhile.
fn requeue(failed: LedgerBatch, pending: &mut Pending) {
    let newer = pending.take();
    for event in events_of(failed).chain(events_of(newer)) {
        pending.add(event);
    }
}

fn events_of(b: LedgerBatch) -> impl Iterator<Item = LedgerEvent> {
    let sessions = b
        .sessions
        .into_iter()
        .map(|r| LedgerEvent::SessionStarted(Box::new(r)));
    sessions
        .chain(b.seen.into_iter().map(LedgerEvent::SessionSeen))
        .chain(b.page_views.into_iter().map(LedgerEvent::PageView))
        .chain(b.leases.into_iter().map(LedgerEvent::Lease))
        .chain(b.shared.into_iter().map(LedgerEvent::Shared))
        .chain(b.exhaustions.into_iter().map(LedgerEvent::Exhaustion))
}

/// The pause before the next write after `failures` failed ones in a row.
fn backoff(failures: u32) -> Duration {
    (FLUSH_EVERY * failures).min(MAX_BACKOFF)
}

type Write = tokio::task::JoinHandle<(LedgerBatch, StorageResult<()>)>;

async fn run(storage: Storage, mut rx: mpsc::Receiver<Message>, stats: Arc<LedgerStats>) {
    let mut pending = Pending::default();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    // Waiters for the write in flight: answered when it succeeds.
    let mut writing_for: Vec<oneshot::Sender<()>> = Vec::new();
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    // One write at a time, off this loop, so events are taken in meanwhile.
    let mut writing: Option<Write> = None;
    let mut in_flight = 0;
    let mut dropped_logged = 0;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Message::Event(e)) => {
                    pending.add(e);
                    if pending.rows() > MAX_BACKLOG {
                        // A tenth below the bound, so that shedding is not paid per event.
                        pending.shed(MAX_BACKLOG - MAX_BACKLOG / 10, &stats);
                        let dropped: u64 = stats.dropped().iter().map(|(_, n)| n).sum();
                        if dropped > dropped_logged {
                            tracing::error!(
                                dropped = ?stats.dropped(),
                                "ledger backlog over its limit: page views given up first"
                            );
                            dropped_logged = dropped.next_power_of_two();
                        }
                    }
                }
                Some(Message::Flush(done)) => {
                    waiters.push(done);
                    if retry_at.is_none() {
                        ticker.reset_immediately();
                    }
                }
                None => break,
            },
            _ = ticker.tick(), if writing.is_none() => {
                let due = retry_at.is_none_or(|at| Instant::now() >= at);
                if due && (pending.rows() > 0 || !waiters.is_empty()) {
                    let batch = pending.take();
                    writing_for = std::mem::take(&mut waiters);
                    in_flight = batch.len();
                    let storage = storage.clone();
                    writing = Some(tokio::spawn(async move {
                        let result = storage.write_ledger(&batch).await;
                        (batch, result)
                    }));
                }
            },
            done = async { writing.as_mut().expect("guarded").await }, if writing.is_some() => {
                writing = None;
                in_flight = 0;
                match done {
                    Ok((batch, Ok(()))) => {
                        failures = 0;
                        retry_at = None;
                        tracing::debug!(rows = batch.len(), "ledger flushed");
                        for w in writing_for.drain(..) { let _ = w.send(()); }
                    }
                    Ok((batch, Err(e))) => {
                        failures += 1;
                        if failures == 1 || failures.is_power_of_two() {
                            tracing::error!(error = ?e, rows = batch.len(), failures, "ledger write failed; will retry");
                        }
                        requeue(batch, &mut pending);
                        pending.shed(MAX_BACKLOG, &stats);
                        waiters.append(&mut writing_for);
                        retry_at = Some(Instant::now() + backoff(failures));
                    }
                    Err(e) => {
                        // A panic inside the write: its rows are lost, the ledger goes on.
                        tracing::error!(error = %e, "ledger write panicked; its rows are lost");
                        waiters.append(&mut writing_for);
                    }
                }
            }
        }
        stats
            .pending
            .store(pending.rows() + in_flight, Ordering::Relaxed);
    }
    // Shutdown: the write in flight, then what is left, retrying briefly.
    if let Some(write) = writing.take()
        && let Ok((batch, Err(_))) = write.await
    {
        requeue(batch, &mut pending);
    }
    for attempt in 0..10 {
        let batch = pending.take();
        if batch.is_empty() {
            break;
        }
        match storage.write_ledger(&batch).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = ?e, attempt, "ledger flush at shutdown failed");
                requeue(batch, &mut pending);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    for w in waiters.drain(..).chain(writing_for.drain(..)) {
        let _ = w.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> SessionRow {
        SessionRow {
            id: id.into(),
            account_id: "a".into(),
            property_id: "p".into(),
            pool_id: Some("pool".into()),
            assignment: "lease".into(),
            number: Some("+14155550100".into()),
            landing_url: "https://shop.example/".into(),
            referrer: None,
            channel: "Direct".into(),
            source: "(direct)".into(),
            medium: "(none)".into(),
            campaign: None,
            term: None,
            content: None,
            click_ids: Default::default(),
            visitor_city: None,
            visitor_region: None,
            visitor_country: None,
            ga_client_id: None,
            page_views: 1,
            first_seen_at: 1,
            last_seen_at: 1,
        }
    }

    fn view(session_id: &str, at: i64) -> PageViewRow {
        PageViewRow {
            session_id: session_id.into(),
            url: "https://shop.example/".into(),
            viewed_at: at,
        }
    }

    #[test]
    fn past_the_bound_page_views_go_first_then_activity_then_sessions() {
        let stats = LedgerStats::default();
        let mut p = Pending::default();
        for i in 0..10 {
            p.add(LedgerEvent::SessionStarted(Box::new(session(&format!(
                "s{i}"
            )))));
            p.add(LedgerEvent::PageView(view(&format!("s{i}"), i)));
        }
        p.shed(15, &stats);
        assert_eq!((p.sessions.len(), p.page_views.len()), (10, 5));
        // The newest page views stay.
        assert_eq!(p.page_views[0].viewed_at, 5);
        p.shed(8, &stats);
        assert_eq!((p.sessions.len(), p.page_views.len()), (8, 0));
        assert_eq!(
            stats.dropped(),
            [("page_view", 10), ("activity", 0), ("essential", 2)]
        );
    }

    #[test]
    fn the_backoff_reaches_five_seconds_and_stays_there() {
        assert_eq!(backoff(1), FLUSH_EVERY);
        assert_eq!(backoff(6), Duration::from_millis(4_500));
        assert_eq!(backoff(7), MAX_BACKOFF);
        assert_eq!(backoff(1_000), MAX_BACKOFF);
    }
}
