//! The clock seam: real time in production, a hand-driven clock for tests and the simulator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Milliseconds since the Unix epoch, UTC: the one time representation stored and compared.
pub type Millis = i64;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Millis) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(start)))
    }

    pub fn advance_ms(&self, by: Millis) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }

    pub fn set_ms(&self, to: Millis) {
        self.0.store(to, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// A manual clock until `go_live`, then the system clock: `switchboard demo` plays a past month
/// of traffic on it, then serves in real time. Time never runs back at the handover: it is the
/// later of the system time and the last manual time.
#[derive(Debug)]
pub struct HandoverClock {
    manual: Arc<ManualClock>,
    live: AtomicBool,
}

impl HandoverClock {
    pub fn new(manual: Arc<ManualClock>) -> Arc<Self> {
        Arc::new(Self {
            manual,
            live: AtomicBool::new(false),
        })
    }

    /// From now on, the system clock.
    pub fn go_live(&self) {
        self.live.store(true, Ordering::SeqCst);
    }
}

impl Clock for HandoverClock {
    fn now_ms(&self) -> Millis {
        let manual = self.manual.now_ms();
        if self.live.load(Ordering::SeqCst) {
            SystemClock.now_ms().max(manual)
        } else {
            manual
        }
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub fn to_datetime(ms: Millis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handover_clock_is_manual_until_live_then_the_system_clock_never_behind() {
        let month_ago = SystemClock.now_ms() - 30 * 86_400_000;
        let manual = ManualClock::new(month_ago);
        let clock = HandoverClock::new(manual.clone());
        assert_eq!(clock.now_ms(), month_ago);
        manual.advance_ms(1_000);
        assert_eq!(clock.now_ms(), month_ago + 1_000);
        clock.go_live();
        let live = clock.now_ms();
        assert!((live - SystemClock.now_ms()).abs() < 1_000, "{live}");
        // A manual time ahead of the system's is kept: time does not run back.
        let ahead = SystemClock.now_ms() + 3_600_000;
        manual.set_ms(ahead);
        assert_eq!(clock.now_ms(), ahead);
    }
}
