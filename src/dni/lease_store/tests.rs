//! One suite, three stores: every test runs on the in-process store, on Redis when
//! `TEST_REDIS_URL` is set, and on a Redis Cluster when `TEST_REDIS_CLUSTER_URLS` (its nodes,
//! comma-separated) is set; CI sets both. Each test uses fresh bucket ids, so runs never collide.

use std::collections::HashSet;
use std::sync::Arc;

use secrecy::SecretString;

use super::*;
use crate::redis_client::RedisEndpoint;

const MIN: Millis = 60_000;
const T0: Millis = 1_780_000_000_000;
const HOLD: Millis = 90 * MIN;

fn redis_endpoint(variable: &str) -> Option<RedisEndpoint> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(if variable == "TEST_REDIS_CLUSTER_URLS" {
            RedisEndpoint::Cluster(
                url.split(',')
                    .map(|u| SecretString::from(u.trim().to_owned()))
                    .collect(),
            )
        } else {
            RedisEndpoint::Single(SecretString::from(url))
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{variable} must be set in CI"
            );
            eprintln!("skipped: {variable} is not set");
            None
        }
    }
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_process() {
                super::$name(std::sync::Arc::new(super::LeaseStore::in_process())).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some(r) = super::redis_endpoint("TEST_REDIS_URL") {
                    super::$name(std::sync::Arc::new(super::LeaseStore::redis(&r).unwrap())).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_cluster() {
                if let Some(r) = super::redis_endpoint("TEST_REDIS_CLUSTER_URLS") {
                    super::$name(std::sync::Arc::new(super::LeaseStore::redis(&r).unwrap())).await;
                }
            }
        }
    )*};
}

on_both_stores!(
    five_sessions_get_five_numbers_and_the_sixth_shares,
    exclusive_pools_report_exhaustion,
    a_returning_session_keeps_its_number,
    an_expired_lease_frees_its_number_and_the_longest_idle_is_chosen,
    a_returning_session_gets_its_old_number_back_when_still_free,
    idle_history_from_the_database_decides_the_first_pick,
    an_unsynced_pool_asks_for_sync_and_unknown_sessions_are_missing,
    retired_numbers_are_not_handed_out,
    static_buckets_remember_sessions_without_leases,
    restored_leases_are_renewed_not_reallocated,
    holders_are_listed_most_recent_first,
    concurrent_new_sessions_use_every_free_number_first,
    sessions_are_listed_by_when_the_store_first_held_them,
    a_pools_new_lease_budget_refuses_new_leases_past_it_not_returning_sessions,
    renewals_alone_hold_a_lease_only_up_to_the_hold_after_the_last_page_view,
    a_renewal_never_takes_a_number,
);

fn bucket() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn numbers(n: usize) -> Vec<(String, Millis)> {
    (0..n)
        .map(|i| (format!("+1415555{:04}", 100 + i), 0))
        .collect()
}

async fn synced(store: &LeaseStore, n: usize) -> String {
    let b = bucket();
    store
        .sync(
            &b,
            &BucketSnapshot {
                numbers: numbers(n),
                leases: vec![],
            },
        )
        .await
        .unwrap();
    b
}

/// A page view of a session, new to the store or not, with a 30-minute lease and no budget.
fn page_view<'a>(b: &'a str, sid: &'a str, mode: Mode, now: Millis) -> Touch<'a> {
    Touch {
        bucket: b,
        session_id: sid,
        mode,
        lease_ms: 30 * MIN,
        now,
        new_session: Some(NewSession {
            meta: r#"{"m":1}"#,
            previous: None,
            page_views: 0,
        }),
        retention_ms: 120 * MIN,
        page_view: true,
        renewal_hold_ms: HOLD,
        new_leases_per_minute: 0,
    }
}

async fn touched(store: &LeaseStore, touch: &Touch<'_>) -> Touched {
    match store.touch(touch).await.unwrap() {
        TouchOutcome::Touched(t) => t,
        other => panic!("{other:?}"),
    }
}

async fn visit(store: &LeaseStore, b: &str, sid: &str, mode: Mode, now: Millis) -> Touched {
    touched(store, &page_view(b, sid, mode, now)).await
}

/// A renewal (not a page view) of a session the store knows.
async fn renew(store: &LeaseStore, b: &str, sid: &str, now: Millis) -> LeaseResult {
    let touch = Touch {
        new_session: None,
        page_view: false,
        ..page_view(b, sid, Mode::Exclusive, now)
    };
    touched(store, &touch).await.lease
}

fn held(t: &Touched) -> &Lease {
    match &t.lease {
        LeaseResult::Held(l) => l,
        other => panic!("expected a lease, got {other:?}"),
    }
}

async fn five_sessions_get_five_numbers_and_the_sixth_shares(store: Arc<LeaseStore>) {
    let b = synced(&store, 5).await;
    let mut seen = HashSet::new();
    for i in 0..5 {
        let t = visit(&store, &b, &format!("s{i}"), Mode::Share, T0 + i).await;
        let l = held(&t);
        assert!(l.fresh && !l.shared && !l.exhausted);
        assert!(
            seen.insert(l.number.clone()),
            "number given twice: {}",
            l.number
        );
    }
    // No number free: the sixth shares the number idle longest (the earliest lease, s0's).
    let t = visit(&store, &b, "s5", Mode::Share, T0 + 10).await;
    let l = held(&t);
    assert!(l.shared && l.exhausted);
    assert_eq!(l.number, "+14155550100");
    assert_eq!(l.shared_with, vec!["s0".to_owned()]);
    let s = store.status(&b, T0 + 10).await.unwrap();
    assert_eq!(
        s,
        BucketStatus {
            numbers: 5,
            busy: 5,
            exhaustions: 1,
            peak: 5,
            limited: 0,
        }
    );
    // s0, on its next page view, learns it now shares.
    let again = visit(&store, &b, "s0", Mode::Share, T0 + 20).await;
    assert!(held(&again).shared);
    assert!(!held(&again).fresh);
}

async fn exclusive_pools_report_exhaustion(store: Arc<LeaseStore>) {
    let b = synced(&store, 2).await;
    visit(&store, &b, "a", Mode::Exclusive, T0).await;
    visit(&store, &b, "b", Mode::Exclusive, T0).await;
    let t = visit(&store, &b, "c", Mode::Exclusive, T0).await;
    assert_eq!(t.lease, LeaseResult::Exhausted);
    assert_eq!(store.status(&b, T0).await.unwrap().exhaustions, 1);
    // When a number frees up, the next page view of "c" gets it.
    let t = visit(&store, &b, "c", Mode::Exclusive, T0 + 31 * MIN).await;
    assert!(held(&t).fresh);
}

async fn a_returning_session_keeps_its_number(store: Arc<LeaseStore>) {
    let b = synced(&store, 3).await;
    let first = visit(&store, &b, "s", Mode::Share, T0).await;
    let l1 = held(&first).clone();
    visit(&store, &b, "other", Mode::Share, T0 + MIN).await;
    let second = visit(&store, &b, "s", Mode::Share, T0 + 20 * MIN).await;
    let l2 = held(&second);
    assert_eq!(l2.number, l1.number);
    assert!(!l2.fresh, "a renewal");
    assert_eq!(l2.started_at, T0);
    assert_eq!(
        l2.ends_at,
        T0 + 50 * MIN,
        "the lease runs from the last activity"
    );
    assert_eq!(second.page_views, 2);
    assert_eq!(second.meta, r#"{"m":1}"#);
}

async fn an_expired_lease_frees_its_number_and_the_longest_idle_is_chosen(store: Arc<LeaseStore>) {
    let b = synced(&store, 2).await;
    let a = held(&visit(&store, &b, "a", Mode::Exclusive, T0).await)
        .number
        .clone();
    let bn = held(&visit(&store, &b, "b", Mode::Exclusive, T0 + MIN).await)
        .number
        .clone();
    assert_ne!(a, bn);
    // a's lease ended at T0+30m, b's at T0+31m: at T0+30m30s only a's number is free.
    let c = visit(&store, &b, "c", Mode::Exclusive, T0 + 30 * MIN + 30_000).await;
    assert_eq!(held(&c).number, a);
    // Later both of c's and b's leases end; b's number has been idle longer, so it goes first.
    let d = visit(&store, &b, "d", Mode::Exclusive, T0 + 120 * MIN).await;
    assert_eq!(held(&d).number, bn);
}

async fn a_returning_session_gets_its_old_number_back_when_still_free(store: Arc<LeaseStore>) {
    let b = synced(&store, 3).await;
    let first = held(&visit(&store, &b, "s", Mode::Share, T0).await)
        .number
        .clone();
    // Its lease ran out an hour ago, but nobody took the number.
    let back = visit(&store, &b, "s", Mode::Share, T0 + 90 * MIN).await;
    assert_eq!(held(&back).number, first);
    assert!(held(&back).fresh, "a new lease");
    assert_eq!(held(&back).started_at, T0 + 90 * MIN);
}

async fn idle_history_from_the_database_decides_the_first_pick(store: Arc<LeaseStore>) {
    let b = bucket();
    let snapshot = BucketSnapshot {
        numbers: vec![
            ("+14155550100".into(), T0 - 10 * MIN),
            ("+14155550101".into(), T0 - 50 * MIN),
            ("+14155550102".into(), T0 - 5 * MIN),
        ],
        leases: vec![],
    };
    store.sync(&b, &snapshot).await.unwrap();
    let order: Vec<String> = [
        visit(&store, &b, "x", Mode::Share, T0).await,
        visit(&store, &b, "y", Mode::Share, T0).await,
        visit(&store, &b, "z", Mode::Share, T0).await,
    ]
    .iter()
    .map(|t| held(t).number.clone())
    .collect();
    assert_eq!(order, ["+14155550101", "+14155550100", "+14155550102"]);
}

async fn an_unsynced_pool_asks_for_sync_and_unknown_sessions_are_missing(store: Arc<LeaseStore>) {
    let b = bucket();
    let touch = Touch {
        bucket: &b,
        session_id: "s",
        mode: Mode::Share,
        lease_ms: MIN,
        now: T0,
        new_session: None,
        retention_ms: 10 * MIN,
        page_view: true,
        renewal_hold_ms: HOLD,
        new_leases_per_minute: 0,
    };
    assert_eq!(store.touch(&touch).await.unwrap(), TouchOutcome::NeedsSync);
    store
        .sync(
            &b,
            &BucketSnapshot {
                numbers: numbers(1),
                leases: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(store.touch(&touch).await.unwrap(), TouchOutcome::Missing);
}

async fn retired_numbers_are_not_handed_out(store: Arc<LeaseStore>) {
    let b = synced(&store, 2).await;
    let s = held(&visit(&store, &b, "s", Mode::Exclusive, T0).await)
        .number
        .clone();
    // The session's number is retired; the other stays.
    let remaining: Vec<(String, Millis)> =
        numbers(2).into_iter().filter(|(n, _)| *n != s).collect();
    store
        .sync(
            &b,
            &BucketSnapshot {
                numbers: remaining.clone(),
                leases: vec![],
            },
        )
        .await
        .unwrap();
    let again = visit(&store, &b, "s", Mode::Exclusive, T0 + MIN).await;
    assert_eq!(
        held(&again).number,
        remaining[0].0,
        "moved off the retired number"
    );
    // Long after, the retired number never comes back.
    for (i, sid) in ["p", "q"].iter().enumerate() {
        let t = visit(&store, &b, sid, Mode::Exclusive, T0 + 200 * MIN + i as i64).await;
        if let LeaseResult::Held(l) = &t.lease {
            assert_ne!(l.number, s);
        }
    }
    assert_eq!(store.status(&b, T0).await.unwrap().numbers, 1);
}

async fn static_buckets_remember_sessions_without_leases(store: Arc<LeaseStore>) {
    let b = bucket();
    let t = visit(&store, &b, "s", Mode::Static, T0).await;
    assert_eq!(t.lease, LeaseResult::Static);
    let touch = Touch {
        bucket: &b,
        session_id: "s",
        mode: Mode::Static,
        lease_ms: 0,
        now: T0 + MIN,
        new_session: None,
        retention_ms: 10 * MIN,
        page_view: true,
        renewal_hold_ms: HOLD,
        new_leases_per_minute: 0,
    };
    match store.touch(&touch).await.unwrap() {
        TouchOutcome::Touched(t) => assert_eq!(t.page_views, 2),
        other => panic!("{other:?}"),
    }
    // Forgotten after the retention time.
    let later = Touch {
        now: T0 + 30 * MIN,
        session_id: "other",
        new_session: Some(NewSession {
            meta: "{}",
            previous: None,
            page_views: 0,
        }),
        ..touch.clone()
    };
    store.touch(&later).await.unwrap();
    let gone = Touch {
        now: T0 + 31 * MIN,
        ..touch
    };
    assert_eq!(store.touch(&gone).await.unwrap(), TouchOutcome::Missing);
}

async fn restored_leases_are_renewed_not_reallocated(store: Arc<LeaseStore>) {
    // After a restart the store is empty; the database knows s holds +14155550101 until T0+20m.
    let b = bucket();
    let snapshot = BucketSnapshot {
        numbers: numbers(3),
        leases: vec![SnapshotLease {
            session_id: "s".into(),
            number: "+14155550101".into(),
            started_at: T0 - 10 * MIN,
            ends_at: T0 + 20 * MIN,
            shared: false,
        }],
    };
    store.sync(&b, &snapshot).await.unwrap();
    let newcomer = visit(&store, &b, "n", Mode::Exclusive, T0).await;
    assert_ne!(
        held(&newcomer).number,
        "+14155550101",
        "a running lease is not free"
    );
    let touch = Touch {
        bucket: &b,
        session_id: "s",
        mode: Mode::Exclusive,
        lease_ms: 30 * MIN,
        now: T0 + MIN,
        new_session: Some(NewSession {
            meta: "{}",
            previous: Some(PreviousLease {
                number: "+14155550101",
                started_at: T0 - 10 * MIN,
                ends_at: T0 + 20 * MIN,
                shared: false,
            }),
            page_views: 4,
        }),
        retention_ms: 120 * MIN,
        page_view: true,
        renewal_hold_ms: HOLD,
        new_leases_per_minute: 0,
    };
    let TouchOutcome::Touched(t) = store.touch(&touch).await.unwrap() else {
        panic!()
    };
    let l = held(&t);
    assert_eq!(
        (l.number.as_str(), l.fresh, l.started_at),
        ("+14155550101", false, T0 - 10 * MIN)
    );
    assert_eq!(t.page_views, 5);
}

async fn holders_are_listed_most_recent_first(store: Arc<LeaseStore>) {
    let b = synced(&store, 1).await;
    visit(&store, &b, "first", Mode::Share, T0).await;
    visit(&store, &b, "second", Mode::Share, T0 + MIN).await;
    visit(&store, &b, "first", Mode::Share, T0 + 2 * MIN).await;
    let h = store
        .holders(&b, "+14155550100", T0 + 3 * MIN)
        .await
        .unwrap();
    assert_eq!(h, ["first", "second"]);
    let later = store
        .holders(&b, "+14155550100", T0 + 31 * MIN + 1)
        .await
        .unwrap();
    assert_eq!(later, ["first"], "second's lease ended at T0+31m");
}

/// Invariant 1 under a burst: 200 sessions arrive at once on 50 numbers, through two store
/// clients (as two service instances would); every free number is used before exhaustion, and
/// no number goes to two sessions.
async fn concurrent_new_sessions_use_every_free_number_first(store: Arc<LeaseStore>) {
    let second = match store.redis_endpoint() {
        Some(r) => Arc::new(LeaseStore::redis(r).unwrap()),
        None => store.clone(),
    };
    let b = synced(&store, 50).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            second.clone()
        };
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            visit(&s, &b, &format!("burst{i}"), Mode::Exclusive, T0).await
        }));
    }
    let mut leased = HashSet::new();
    let mut exhausted = 0;
    for t in tasks {
        match t.await.unwrap().lease {
            LeaseResult::Held(l) => {
                assert!(leased.insert(l.number), "a number went to two sessions")
            }
            LeaseResult::Exhausted => exhausted += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(leased.len(), 50, "every free number was used");
    assert_eq!(exhausted, 150);
}

/// What recovering a session the database never received reads: the sessions first held in a
/// time range, with their meta, lease and last activity.
async fn sessions_are_listed_by_when_the_store_first_held_them(store: Arc<LeaseStore>) {
    let b = synced(&store, 3).await;
    let first = held(&visit(&store, &b, "s1", Mode::Exclusive, T0).await).clone();
    visit(&store, &b, "s2", Mode::Exclusive, T0 + MIN).await;
    // A later page view of s1 changes its last activity, not when it was first held.
    visit(&store, &b, "s1", Mode::Exclusive, T0 + 2 * MIN).await;
    let created = store.created_between(&b, T0, T0 + MIN, 10).await.unwrap();
    assert_eq!(
        created,
        [("s1".to_owned(), T0), ("s2".to_owned(), T0 + MIN)]
    );
    let listed = store.stored_sessions(&b, &created).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2"]);
    let s1 = &listed[0];
    assert_eq!(
        (s1.created_at, s1.last_seen_at, s1.page_views),
        (T0, T0 + 2 * MIN, 2)
    );
    assert_eq!(s1.meta, r#"{"m":1}"#);
    assert_eq!(
        s1.lease,
        Some(StoredLease {
            number: first.number,
            started_at: T0,
            ends_at: T0 + 32 * MIN,
            shared: false,
        })
    );
    let later = store
        .created_between(&b, T0 + 1, T0 + MIN, 10)
        .await
        .unwrap();
    assert_eq!(later, [("s2".to_owned(), T0 + MIN)]);
    assert_eq!(
        store
            .created_between(&b, T0, T0 + MIN, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // A session the store has forgotten is left out.
    let gone = [("never".to_owned(), T0)];
    assert!(store.stored_sessions(&b, &gone).await.unwrap().is_empty());
    // A static bucket's sessions hold no lease.
    let p = bucket();
    visit(&store, &p, "v", Mode::Static, T0).await;
    let created = store.created_between(&p, T0, T0, 10).await.unwrap();
    let listed = store.stored_sessions(&p, &created).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].lease, None);
}

async fn a_pools_new_lease_budget_refuses_new_leases_past_it_not_returning_sessions(
    store: Arc<LeaseStore>,
) {
    // Five numbers, 30-minute leases: ten turnovers a lease is 2 a minute, so the floor (3) rules.
    let b = synced(&store, 5).await;
    let budgeted = |sid: &'static str, now| Touch {
        new_leases_per_minute: 3,
        ..page_view(&b, sid, Mode::Share, now)
    };
    let mut outcomes = Vec::new();
    for (i, sid) in ["v0", "v1", "v2", "v3", "v4"].into_iter().enumerate() {
        outcomes.push(
            touched(&store, &budgeted(sid, T0 + i as Millis))
                .await
                .lease,
        );
    }
    let leased: Vec<&Lease> = outcomes
        .iter()
        .filter_map(|l| match l {
            LeaseResult::Held(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(leased.len(), 3, "{outcomes:?}");
    assert!(leased.iter().all(|l| l.fresh && !l.shared && !l.exhausted));
    // Past the budget, even a sharing pool shares nothing: the visitor gets no number.
    assert_eq!(outcomes[3..], [LeaseResult::Limited, LeaseResult::Limited]);
    let status = store.status(&b, T0 + 10).await.unwrap();
    assert_eq!((status.busy, status.limited, status.exhaustions), (3, 2, 0));

    // A returning session keeps its number, budget spent or not.
    let again = touched(&store, &budgeted("v0", T0 + 10)).await;
    assert_eq!(held(&again).number, leased[0].number);
    assert!(!held(&again).fresh);

    // The budget refills at its rate (one lease every 20 s), for a refused session's next page
    // view as for a new one.
    let refused_again = touched(&store, &budgeted("v3", T0 + 15_000)).await;
    assert_eq!(refused_again.lease, LeaseResult::Limited);
    let later = touched(&store, &budgeted("v3", T0 + 20_004)).await;
    assert!(held(&later).fresh);
    assert_eq!(
        touched(&store, &budgeted("v5", T0 + 20_005)).await.lease,
        LeaseResult::Limited
    );
    assert_eq!(store.status(&b, T0 + 20_005).await.unwrap().limited, 4);
}

async fn renewals_alone_hold_a_lease_only_up_to_the_hold_after_the_last_page_view(
    store: Arc<LeaseStore>,
) {
    let b = synced(&store, 1).await;
    let first = visit(&store, &b, "reader", Mode::Exclusive, T0).await;
    let number = held(&first).number.clone();
    // A page left open: renewals every quarter hour keep the lease a full lease length ahead
    // until the hold (90 minutes after the page view) is near.
    for minute in [15, 30, 45, 60] {
        let LeaseResult::Held(l) = renew(&store, &b, "reader", T0 + minute * MIN).await else {
            panic!("the lease lapsed at minute {minute}");
        };
        assert_eq!(
            (l.number.as_str(), l.ends_at),
            (number.as_str(), T0 + (minute + 30) * MIN)
        );
        assert!(!l.capped && !l.fresh);
    }
    // Then it ends at the hold, no later, however often the client renews.
    for minute in [75, 80, 89] {
        let LeaseResult::Held(l) = renew(&store, &b, "reader", T0 + minute * MIN).await else {
            panic!("the lease lapsed at minute {minute}");
        };
        assert_eq!(l.ends_at, T0 + 90 * MIN);
        assert!(l.capped);
    }
    assert_eq!(
        renew(&store, &b, "reader", T0 + 91 * MIN).await,
        LeaseResult::Lapsed {
            number: number.clone()
        }
    );
    // The number is back in the pool.
    assert_eq!(
        held(&visit(&store, &b, "next", Mode::Exclusive, T0 + 92 * MIN).await).number,
        number
    );

    // A page view restarts the hold.
    let b = synced(&store, 1).await;
    visit(&store, &b, "browser", Mode::Exclusive, T0).await;
    visit(&store, &b, "browser", Mode::Exclusive, T0 + 60 * MIN).await;
    for minute in [85, 110] {
        assert!(matches!(
            renew(&store, &b, "browser", T0 + minute * MIN).await,
            LeaseResult::Held(Lease { capped: false, .. })
        ));
    }
    let LeaseResult::Held(l) = renew(&store, &b, "browser", T0 + 135 * MIN).await else {
        panic!("a page view at minute 60 holds the lease to minute 150");
    };
    assert_eq!(l.ends_at, T0 + 150 * MIN);
    assert!(l.capped);
}

async fn a_renewal_never_takes_a_number(store: Arc<LeaseStore>) {
    let b = synced(&store, 1).await;
    let first = visit(&store, &b, "a", Mode::Exclusive, T0).await;
    let number = held(&first).number.clone();
    assert_eq!(
        visit(&store, &b, "b", Mode::Exclusive, T0 + MIN)
            .await
            .lease,
        LeaseResult::Exhausted
    );
    // a's lease ends unrenewed; neither a (lapsed) nor b (never leased) gets a number by renewing.
    assert_eq!(
        renew(&store, &b, "a", T0 + 31 * MIN).await,
        LeaseResult::Lapsed {
            number: number.clone()
        }
    );
    assert_eq!(
        renew(&store, &b, "b", T0 + 32 * MIN).await,
        LeaseResult::Lapsed {
            number: String::new()
        }
    );
    assert_eq!(store.status(&b, T0 + 32 * MIN).await.unwrap().busy, 0);
    // A page view does: b's takes the free number.
    assert_eq!(
        held(&visit(&store, &b, "b", Mode::Exclusive, T0 + 33 * MIN).await).number,
        number
    );
}
