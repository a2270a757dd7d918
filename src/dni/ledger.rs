//! The write-behind ledger: the page-view flow records sessions, page views and leases here,
//! off the request path; a background task writes them to the database in batches, at most
//! `FLUSH_EVERY` after they happen (within the design bound of one second), and drains at shutdown.
//! A database outage holds the events in memory and retries; nothing accepted is dropped
//! unless the backlog passes `MAX_BACKLOG`, which is logged as an error.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::storage::{
    ExhaustionRow, LeaseRow, LedgerBatch, PageViewRow, SessionRow, SessionSeen, SharedFrom, Storage,
};

pub const FLUSH_EVERY: Duration = Duration::from_millis(750);
const MAX_BACKLOG: usize = 500_000;

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
    tx: mpsc::UnboundedSender<Message>,
}

pub struct LedgerTask {
    handle: tokio::task::JoinHandle<()>,
}

impl Ledger {
    pub fn start(storage: Storage) -> (Self, LedgerTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = tokio::spawn(run(storage, rx));
        (Self { tx }, LedgerTask { handle })
    }

    pub fn record(&self, event: LedgerEvent) {
        if self.tx.send(Message::Event(event)).is_err() {
            tracing::error!("ledger is stopped; an event was not recorded");
        }
    }

    /// Writes everything recorded so far (tests, and reads that must see the latest).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
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
    count: usize,
}

impl Pending {
    fn add(&mut self, event: LedgerEvent) {
        self.count += 1;
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

    fn take(&mut self) -> LedgerBatch {
        self.count = 0;
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

async fn run(storage: Storage, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut pending = Pending::default();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    loop {
        let closed = tokio::select! {
            msg = rx.recv() => match msg {
                Some(Message::Event(e)) => { pending.add(e); false }
                Some(Message::Flush(done)) => { waiters.push(done); ticker.reset_immediately(); false }
                None => true,
            },
            _ = ticker.tick() => {
                if pending.count > 0 || !waiters.is_empty() {
                    let batch = pending.take();
                    let size = batch.len();
                    match storage.write_ledger(&batch).await {
                        Ok(()) => {
                            failures = 0;
                            tracing::debug!(rows = size, "ledger flushed");
                            for w in waiters.drain(..) { let _ = w.send(()); }
                        }
                        Err(e) => {
                            failures += 1;
                            if failures == 1 || failures.is_power_of_two() {
                                tracing::error!(error = ?e, rows = size, failures, "ledger write failed; will retry");
                            }
                            requeue(batch, &mut pending);
                            if pending.count > MAX_BACKLOG {
                                tracing::error!(backlog = pending.count, "ledger backlog over its limit; dropping page views");
                                pending.page_views.clear();
                            }
                            // Back off while the database is away, up to 5 s.
                            let backoff = FLUSH_EVERY * failures.min(25);
                            tokio::time::sleep(backoff).await;
                        }
                    }
                }
                false
            }
        };
        if closed {
            break;
        }
    }
    // Shutdown: write what is left, retrying briefly.
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
    for w in waiters.drain(..) {
        let _ = w.send(());
    }
}
