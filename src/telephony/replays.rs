//! Telling a replayed provider request from news, before it is spooled. A signed webhook
//! carries no timestamp, so the same request can be sent again (by the carrier retrying, or
//! by anyone who saw it); storing it again changes nothing (merging is monotone), but each
//! copy would take a spool write and reach the live feed. The voice webhook is still answered
//! each time (the caller is on the line); only the recording is skipped.
//!
//! In memory, per instance: a fingerprint of each event spooled in the last `REMEMBER_FOR`
//! (at most `REMEMBER_AT_MOST`, the oldest forgotten first). A replay that reaches another
//! instance, or comes later, is spooled again, and storing it changes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::storage::CallEvent;

pub const REMEMBER_FOR: Duration = Duration::from_secs(3600);
pub const REMEMBER_AT_MOST: usize = 100_000;

type Fingerprint = [u8; 16];

/// What makes an event news: a voice event is one per call (in its account); a later event
/// is news when anything it says differs, apart from when it arrived.
pub fn fingerprint(event: &CallEvent) -> Fingerprint {
    let identity = match event {
        CallEvent::Started(c) => {
            serde_json::json!(["started", c.account_id, c.provider, c.provider_call_id])
        }
        CallEvent::Progress(p) => {
            let mut p = p.clone();
            // Times taken from arrival (no `Timestamp`) differ between copies; merging keeps
            // the earliest anyway.
            p.at = 0;
            p.call.started_at = 0;
            p.answered_at = None;
            serde_json::json!(["progress", p])
        }
    };
    let digest = Sha256::digest(identity.to_string().as_bytes());
    digest[..16].try_into().expect("16 of 32 bytes")
}

#[derive(Default)]
pub struct RecentEvents {
    inner: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    seen: HashMap<Fingerprint, Instant>,
    /// In the order they were first seen, to forget the oldest.
    order: VecDeque<(Fingerprint, Instant)>,
}

impl RecentEvents {
    /// Whether this is the first time the event is seen lately (and remembers it if so).
    pub fn first_time(&self, fingerprint: Fingerprint) -> bool {
        let now = Instant::now();
        let mut recent = self.inner.lock().expect("replays lock");
        while let Some(&(oldest, at)) = recent.order.front() {
            if now.duration_since(at) < REMEMBER_FOR && recent.order.len() < REMEMBER_AT_MOST {
                break;
            }
            recent.order.pop_front();
            if recent.seen.get(&oldest) == Some(&at) {
                recent.seen.remove(&oldest);
            }
        }
        if recent.seen.contains_key(&fingerprint) {
            return false;
        }
        recent.seen.insert(fingerprint, now);
        recent.order.push_back((fingerprint, now));
        true
    }

    /// Forgets an event that could not be spooled after all: its retry is news.
    pub fn forget(&self, fingerprint: Fingerprint) {
        self.inner
            .lock()
            .expect("replays lock")
            .seen
            .remove(&fingerprint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telephony::test_params as params;
    use crate::telephony::test_route;
    use crate::telephony::twilio::{self, Callback};

    fn started(account: &str, now: i64) -> Fingerprint {
        let mut route = test_route();
        route.account_id = account.to_owned();
        let call = twilio::started_call(&params(&[("CallSid", "CA1")]), &route, now);
        fingerprint(&CallEvent::Started(call))
    }

    fn status(call_status: &str, now: i64) -> Fingerprint {
        let p = params(&[("CallSid", "CA1"), ("CallStatus", call_status)]);
        let event = twilio::progress(Callback::Status, &p, Some(&test_route()), None, now);
        fingerprint(&CallEvent::Progress(event.expect("a status callback")))
    }

    #[test]
    fn a_replay_is_seen_once_and_news_is_not_a_replay() {
        let recent = RecentEvents::default();
        assert!(recent.first_time(started("a", 1)));
        assert!(!recent.first_time(started("a", 2)), "the same call, again");
        assert!(recent.first_time(started("b", 1)), "another account's call");
        assert!(recent.first_time(status("in-progress", 5)));
        assert!(!recent.first_time(status("in-progress", 9)));
        assert!(recent.first_time(status("completed", 9)), "a new status");
        let f = status("busy", 1);
        assert!(recent.first_time(f));
        recent.forget(f);
        assert!(recent.first_time(f));
    }
}
