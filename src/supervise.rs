//! Background workers under watch. A worker that panics is logged, counted and started again
//! after a pause, instead of dying silently while the instance keeps answering; `/health`
//! shows every restart. A worker that returns (they loop forever) is logged and left stopped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// The pause before a panicked worker starts again (a worker that panics at once must not
/// spin).
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// A panic message is cut to this many characters (it lands in logs and `/health`).
const MESSAGE_CHARS: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct WorkerState {
    pub restarts: u64,
    /// When the last panic was, and what it said.
    pub last_panic: Option<(Instant, String)>,
    pub stopped: bool,
}

#[derive(Default)]
pub struct Supervisor {
    workers: Mutex<BTreeMap<&'static str, WorkerState>>,
}

/// Aborts the task it holds when dropped: aborting the supervisor's task aborts its worker.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Supervisor {
    /// Runs the worker `start` spawns, and spawns it again each time it panics. Aborting the
    /// returned task stops the worker.
    pub fn watch(
        self: &Arc<Self>,
        name: &'static str,
        start: impl Fn() -> JoinHandle<()> + Send + 'static,
    ) -> JoinHandle<()> {
        self.workers
            .lock()
            .expect("supervisor lock")
            .insert(name, WorkerState::default());
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let mut worker = AbortOnDrop(start());
                match (&mut worker.0).await {
                    Ok(()) => {
                        tracing::error!(worker = name, "a background worker stopped");
                        me.update(name, |w| w.stopped = true);
                        return;
                    }
                    Err(e) if e.is_panic() => {
                        let message = panic_message(e.into_panic());
                        tracing::error!(
                            worker = name,
                            panic = %message,
                            "a background worker panicked; starting it again"
                        );
                        me.update(name, |w| {
                            w.restarts += 1;
                            w.last_panic = Some((Instant::now(), message));
                        });
                        tokio::time::sleep(RESTART_AFTER).await;
                    }
                    // Aborted from outside: shutting down.
                    Err(_) => return,
                }
            }
        })
    }

    /// Every worker watched, by name.
    pub fn workers(&self) -> BTreeMap<&'static str, WorkerState> {
        self.workers.lock().expect("supervisor lock").clone()
    }

    fn update(&self, name: &'static str, change: impl FnOnce(&mut WorkerState)) {
        if let Some(w) = self.workers.lock().expect("supervisor lock").get_mut(name) {
            change(w);
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    text.chars().take(MESSAGE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_panicked_worker_is_counted_and_started_again_and_abort_stops_it() {
        let supervisor = Arc::new(Supervisor::default());
        let starts = Arc::new(AtomicU32::new(0));
        let beats = Arc::new(AtomicU32::new(0));
        let watched = {
            let (starts, beats) = (starts.clone(), beats.clone());
            supervisor.watch("flaky", move || {
                let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
                let beats = beats.clone();
                tokio::spawn(async move {
                    if first {
                        panic!("the first run fails");
                    }
                    loop {
                        beats.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while beats.load(Ordering::SeqCst) < 3 {
            assert!(
                Instant::now() < deadline,
                "the worker was not started again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let state = &supervisor.workers()["flaky"];
        assert_eq!(state.restarts, 1);
        assert_eq!(
            state.last_panic.as_ref().map(|(_, m)| m.as_str()),
            Some("the first run fails")
        );
        assert_eq!(starts.load(Ordering::SeqCst), 2);

        // Aborting the supervisor stops the worker it runs.
        watched.abort();
        let _ = watched.await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stopped_at = beats.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(beats.load(Ordering::SeqCst), stopped_at);
    }
}
