//! The lease store in this process's memory: the embedded default. A line-for-line port of
//! `touch.lua` and `sync.lua` over ordered sets, so both stores agree to the tie-break (equal
//! scores order by number, as Redis orders equal-score members).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use super::{
    BucketSnapshot, BucketStatus, Lease, LeaseResult, Mode, NEW_LEASE_TURNOVER, StoredSession,
    Touch, TouchOutcome, Touched, format_state, last_view, parse_state, running_holders,
};
use crate::time::Millis;

/// A sorted set with Redis's ordering: by score, then by member.
#[derive(Default)]
struct ZSet {
    ordered: BTreeSet<(Millis, String)>,
    scores: HashMap<String, Millis>,
}

impl ZSet {
    fn add(&mut self, member: &str, score: Millis) {
        self.remove(member);
        self.ordered.insert((score, member.to_owned()));
        self.scores.insert(member.to_owned(), score);
    }

    fn remove(&mut self, member: &str) -> bool {
        match self.scores.remove(member) {
            Some(old) => {
                self.ordered.remove(&(old, member.to_owned()));
                true
            }
            None => false,
        }
    }

    fn score(&self, member: &str) -> Option<Millis> {
        self.scores.get(member).copied()
    }

    fn first(&self) -> Option<String> {
        self.ordered.first().map(|(_, m)| m.clone())
    }

    /// Members with score <= max, in order.
    fn up_to(&self, max: Millis) -> Vec<(String, Millis)> {
        self.ordered
            .iter()
            .take_while(|(s, _)| *s <= max)
            .map(|(s, m)| (m.clone(), *s))
            .collect()
    }

    /// Members with `from <= score <= to`, in order.
    fn between(&self, from: Millis, to: Millis) -> impl Iterator<Item = (&str, Millis)> {
        self.ordered
            .range((from, String::new())..)
            .take_while(move |(s, _)| *s <= to)
            .map(|(s, m)| (m.as_str(), *s))
    }

    fn remove_up_to(&mut self, max: Millis) {
        for (member, _) in self.up_to(max) {
            self.remove(&member);
        }
    }

    fn len(&self) -> usize {
        self.ordered.len()
    }
}

#[derive(Default)]
struct Bucket {
    synced: bool,
    state: HashMap<String, String>,
    meta: HashMap<String, String>,
    free: ZSet,
    busy: ZSet,
    holders: HashMap<String, Vec<String>>,
    numbers: HashSet<String>,
    exhaustions: u64,
    peak: u64,
    limited: u64,
    /// The new-lease budget's next admission time (GCRA), as `admit_at` in `touch.lua`.
    admit_at: Millis,
    seen: ZSet,
    created: ZSet,
}

impl Bucket {
    /// The pool's budget of new leases (GCRA over a minute), as `within_budget` in `touch.lua`:
    /// true, and counted, when this one is within it.
    fn within_budget(&mut self, t: &Touch<'_>) -> bool {
        if t.new_leases_per_minute == 0 {
            return true;
        }
        let turnover = NEW_LEASE_TURNOVER * self.numbers.len() as u64 * 60_000;
        let per_minute = t
            .new_leases_per_minute
            .max(turnover.div_ceil(t.lease_ms.max(1) as u64));
        let interval = (60_000 / per_minute).max(1) as Millis;
        let at = self.admit_at.max(t.now);
        if at + interval - t.now > 60_000 {
            return false;
        }
        self.admit_at = at + interval;
        true
    }
}

#[derive(Default)]
pub struct InProcessStore {
    buckets: RwLock<HashMap<String, Arc<Mutex<Bucket>>>>,
}

impl InProcessStore {
    fn bucket(&self, id: &str) -> Arc<Mutex<Bucket>> {
        if let Some(b) = self.buckets.read().expect("lock").get(id) {
            return b.clone();
        }
        self.buckets
            .write()
            .expect("lock")
            .entry(id.to_owned())
            .or_default()
            .clone()
    }

    pub fn touch(&self, t: &Touch<'_>) -> TouchOutcome {
        let bucket = self.bucket(t.bucket);
        let mut b = bucket.lock().expect("lock");
        if t.mode != Mode::Static && !b.synced {
            return TouchOutcome::NeedsSync;
        }
        let (meta, raw) = match (b.state.get(t.session_id), &t.new_session) {
            (Some(raw), _) => (
                b.meta.get(t.session_id).cloned().unwrap_or_default(),
                raw.clone(),
            ),
            (None, Some(new)) => {
                b.meta.insert(t.session_id.to_owned(), new.meta.to_owned());
                (new.meta.to_owned(), new.initial_state())
            }
            (None, None) => return TouchOutcome::Missing,
        };
        let (mut n, mut s, mut e, mut sh, pv) =
            parse_state(&raw).unwrap_or((String::new(), 0, 0, false, 0));
        let pv = pv + i64::from(t.page_view);
        let now = t.now;
        let lv = if t.page_view {
            now
        } else {
            last_view(&raw, s, now)
        };

        let created = t.new_session.is_some() && !b.state.contains_key(t.session_id);
        let mut lease = LeaseResult::Static;
        if t.mode != Mode::Static {
            let mut fresh = false;
            let mut shared_with = Vec::new();
            let mut exhausted = false;
            let mut held = false;
            let mut lapsed = false;
            let mut capped = false;
            if !n.is_empty() && e > now && b.busy.score(&n).is_some() && b.numbers.contains(&n) {
                held = true;
            } else if !t.page_view {
                // A renewal alone never takes a number, nor takes back a lapsed one.
                (held, lapsed) = (true, true);
                lease = LeaseResult::Lapsed { number: n.clone() };
            } else {
                for (num, ended_at) in b.busy.up_to(now) {
                    b.busy.remove(&num);
                    b.holders.remove(&num);
                    if b.numbers.contains(&num) {
                        b.free.add(&num, ended_at);
                    }
                }
                if !n.is_empty() && b.free.score(&n).is_some() {
                    b.free.remove(&n);
                    (held, fresh, s, sh) = (true, true, now, false);
                }
            }
            if !held {
                let pick = b.free.first();
                if pick.is_some() && !b.within_budget(t) {
                    b.limited += 1;
                    (n, s, e, sh) = (String::new(), 0, 0, false);
                    lease = LeaseResult::Limited;
                } else if let Some(pick) = pick {
                    b.free.remove(&pick);
                    (n, s, sh, fresh) = (pick, now, false, true);
                } else {
                    b.exhaustions += 1;
                    exhausted = true;
                    let victim = match t.mode {
                        Mode::Share => b.busy.first(),
                        _ => None,
                    };
                    match victim {
                        Some(v) => {
                            shared_with = b.holders.get(&v).cloned().unwrap_or_default();
                            for other in &shared_with {
                                if let Some(ost) = b.state.get(other)
                                    && let Some((on, os, oe, _, opv)) = parse_state(ost)
                                {
                                    let olv = last_view(ost, os, now);
                                    let updated = format_state(&on, os, oe, true, opv, olv);
                                    b.state.insert(other.clone(), updated);
                                }
                            }
                            (n, s, sh, fresh) = (v, now, true, true);
                        }
                        None => {
                            (n, s, e, sh) = (String::new(), 0, 0, false);
                            lease = LeaseResult::Exhausted;
                        }
                    }
                }
            }
            if !n.is_empty() && !lapsed {
                let mut want = now + t.lease_ms;
                if !t.page_view && want > lv + t.renewal_hold_ms {
                    (want, capped) = (lv + t.renewal_hold_ms, true);
                }
                // A renewal never shortens the lease it extends.
                if t.page_view || want > e {
                    e = want;
                }
                if b.busy.score(&n).is_none_or(|cur| cur < e) {
                    b.busy.add(&n, e);
                }
                if fresh {
                    let holders = b.holders.entry(n.clone()).or_default();
                    if !holders.iter().any(|h| h == t.session_id) {
                        holders.push(t.session_id.to_owned());
                    }
                    let busy = b.busy.len() as u64;
                    b.peak = b.peak.max(busy);
                }
                lease = LeaseResult::Held(Lease {
                    number: n.clone(),
                    started_at: s,
                    ends_at: e,
                    shared: sh,
                    fresh,
                    shared_with,
                    exhausted,
                    capped,
                });
            }
        }

        b.state
            .insert(t.session_id.to_owned(), format_state(&n, s, e, sh, pv, lv));
        b.seen.add(t.session_id, now);
        if created {
            b.created.add(t.session_id, now);
            b.created.remove_up_to(now - t.retention_ms);
            let forget: Vec<String> = b
                .seen
                .up_to(now - t.retention_ms)
                .into_iter()
                .take(16)
                .map(|(sid, _)| sid)
                .collect();
            for sid in forget {
                b.state.remove(&sid);
                b.meta.remove(&sid);
                b.seen.remove(&sid);
            }
        }
        TouchOutcome::Touched(Touched {
            meta,
            page_views: pv,
            lease,
        })
    }

    pub fn sync(&self, bucket: &str, snapshot: &BucketSnapshot) {
        let bucket = self.bucket(bucket);
        let mut b = bucket.lock().expect("lock");
        let live: HashSet<&str> = snapshot.numbers.iter().map(|(n, _)| n.as_str()).collect();
        let gone: Vec<String> = b
            .numbers
            .iter()
            .filter(|n| !live.contains(n.as_str()))
            .cloned()
            .collect();
        for n in gone {
            b.numbers.remove(&n);
            b.free.remove(&n);
        }
        for l in &snapshot.leases {
            if b.busy.score(&l.number).is_none_or(|cur| cur < l.ends_at) {
                b.busy.add(&l.number, l.ends_at);
            }
            b.free.remove(&l.number);
            let holders = b.holders.entry(l.number.clone()).or_default();
            if !holders.contains(&l.session_id) {
                holders.push(l.session_id.clone());
            }
        }
        for (n, idle_since) in &snapshot.numbers {
            b.numbers.insert(n.clone());
            if b.busy.score(n).is_none() && b.free.score(n).is_none() {
                b.free.add(n, *idle_since);
            }
        }
        b.synced = true;
    }

    pub fn created_between(
        &self,
        bucket: &str,
        from: Millis,
        to: Millis,
        limit: usize,
    ) -> Vec<(String, Millis)> {
        let bucket = self.bucket(bucket);
        let b = bucket.lock().expect("lock");
        b.created
            .between(from, to)
            .take(limit)
            .map(|(sid, at)| (sid.to_owned(), at))
            .collect()
    }

    pub fn stored_sessions(
        &self,
        bucket: &str,
        created: &[(String, Millis)],
    ) -> Vec<StoredSession> {
        let bucket = self.bucket(bucket);
        let b = bucket.lock().expect("lock");
        created
            .iter()
            .filter_map(|(sid, at)| {
                StoredSession::of(
                    sid.clone(),
                    *at,
                    b.seen.score(sid).unwrap_or(*at),
                    b.state.get(sid)?,
                    b.meta.get(sid)?.clone(),
                )
            })
            .collect()
    }

    pub fn status(&self, bucket: &str, now: Millis) -> BucketStatus {
        let bucket = self.bucket(bucket);
        let b = bucket.lock().expect("lock");
        BucketStatus {
            numbers: b.numbers.len() as u64,
            busy: b.busy.ordered.iter().filter(|(end, _)| *end > now).count() as u64,
            exhaustions: b.exhaustions,
            peak: b.peak,
            limited: b.limited,
        }
    }

    pub fn holders(&self, bucket: &str, number: &str, now: Millis) -> Vec<String> {
        let bucket = self.bucket(bucket);
        let b = bucket.lock().expect("lock");
        let holders = b.holders.get(number).into_iter().flatten();
        running_holders(
            number,
            now,
            holders.map(|sid| (sid.clone(), b.state.get(sid).map(String::as_str))),
        )
    }
}
