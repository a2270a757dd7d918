//! The storage story: every method of the storage seam, run against SQLite and PostgreSQL.

use secrecy::{ExposeSecret, SecretString};
use switchboard::domain::{
    ExhaustionPolicy, NewPool, NewProperty, PhoneNumber, PoolInput, PoolKind, PoolMatch,
    PropertyInput,
};
use switchboard::storage::{Storage, StorageError};

use crate::helpers::{Backend, TestDb, test_db};

fn property() -> NewProperty {
    NewProperty::parse(PropertyInput {
        name: "Acme",
        domains: &["acme.example".to_owned()],
        default_number: "+14155550100",
        forward_to: None,
        timezone: Some("Europe/London"),
        currency: Some("GBP"),
        call_settings: None,
    })
    .unwrap()
}

fn pool(kind: PoolKind, numbers: &[&str]) -> NewPool {
    let numbers: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
    NewPool::parse(PoolInput {
        name: "Pool",
        kind,
        matcher: Some(PoolMatch {
            channel: Some("Paid Search".into()),
            ..PoolMatch::default()
        }),
        lease_minutes: Some(20),
        exhaustion: Some(ExhaustionPolicy::Default),
        overflow_number: None,
        numbers: &numbers,
        monthly_cost: Some(1.5),
    })
    .unwrap()
}

fn number(n: &str) -> PhoneNumber {
    PhoneNumber::parse("n", n).unwrap()
}

async fn storage_for(db: &TestDb) -> Storage {
    let storage = Storage::connect(&db.url, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        storage.pending_migrations().await.unwrap(),
        Storage::known_migrations(),
        "fresh database"
    );
    assert!(Storage::known_migrations() >= 2);
    storage.migrate().await.unwrap();
    storage.migrate().await.unwrap();
    assert_eq!(
        storage.pending_migrations().await.unwrap(),
        0,
        "migrate is idempotent"
    );
    storage
}

async fn story(db: TestDb) {
    let s = storage_for(&db).await;
    s.ping().await.unwrap();
    let t0 = 1_780_000_000_000;

    // Accounts and keys: the key works, its hash is what is stored, a wrong key finds nothing.
    let a = s.create_account("A", t0).await.unwrap();
    let b = s.create_account("B", t0).await.unwrap();
    let found = s.account_for_api_key(&a.api_key).await.unwrap().unwrap();
    assert_eq!(found.id, a.account.id);
    assert_eq!(found.created_at.timestamp_millis(), t0);
    let hashes = s.api_key_hashes(&a.account.id).await.unwrap();
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], a.api_key.expose_secret().to_owned());
    assert!(!hashes[0].contains(a.api_key.expose_secret()));
    assert!(
        s.account_for_api_key(&SecretString::from("sb_key_unknown"))
            .await
            .unwrap()
            .is_none()
    );
    let second_key = s.issue_api_key(&a.account.id, t0 + 1).await.unwrap();
    assert_eq!(
        s.account_for_api_key(&second_key)
            .await
            .unwrap()
            .unwrap()
            .id,
        a.account.id
    );

    // Properties are scoped by account.
    let p = s
        .create_property(&a.account.id, &property(), t0)
        .await
        .unwrap();
    assert_eq!(p.timezone, "Europe/London");
    assert_eq!(p.currency, "GBP");
    assert_eq!(p.forward_to, "+14155550100");
    let p2 = s
        .create_property(&a.account.id, &property(), t0 + 5)
        .await
        .unwrap();
    let listed = s.list_properties(&a.account.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|p| &p.id).collect::<Vec<_>>(),
        [&p.id, &p2.id]
    );
    assert!(s.list_properties(&b.account.id).await.unwrap().is_empty());
    assert_eq!(
        s.property(&a.account.id, &p.id).await.unwrap().domains,
        ["acme.example"]
    );
    assert!(matches!(
        s.property(&b.account.id, &p.id).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(
        s.property_by_public_key(&p.public_key).await.unwrap().id,
        p.id
    );
    assert!(matches!(
        s.property_by_public_key("pk_nope").await,
        Err(StorageError::NotFound)
    ));

    // Pools with numbers, atomic on conflict.
    let session = s
        .create_pool(
            &a.account.id,
            &p.id,
            &pool(PoolKind::Session, &["+14155550110", "+14155550111"]),
            t0,
            QUARANTINE,
        )
        .await
        .unwrap();
    assert_eq!(session.numbers.len(), 2);
    assert_eq!(session.matcher.channel.as_deref(), Some("paid search"));
    assert!(matches!(
        s.create_pool(
            &b.account.id,
            &p.id,
            &pool(PoolKind::Session, &[]),
            t0,
            QUARANTINE
        )
        .await,
        Err(StorageError::NotFound)
    ));
    let taken = s
        .create_pool(
            &a.account.id,
            &p2.id,
            &pool(PoolKind::Session, &["+14155550199", "+14155550111"]),
            t0,
            QUARANTINE,
        )
        .await;
    assert!(
        matches!(taken, Err(StorageError::NumberTaken(ref n)) if n == "+14155550111"),
        "{taken:?}"
    );
    assert!(
        s.list_pools(&a.account.id, &p2.id)
            .await
            .unwrap()
            .is_empty(),
        "rolled back"
    );

    let fetched = s.pool(&a.account.id, &session.id).await.unwrap();
    assert_eq!(fetched.lease_minutes, 20);
    assert_eq!(fetched.exhaustion, ExhaustionPolicy::Default);
    assert_eq!(fetched.numbers[0].monthly_cost, Some(1.5));
    assert!(matches!(
        s.pool(&b.account.id, &session.id).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(s.list_pools(&a.account.id, &p.id).await.unwrap().len(), 1);
    assert!(matches!(
        s.list_pools(&b.account.id, &p.id).await,
        Err(StorageError::NotFound)
    ));

    // Numbers: add (all or none), retire, re-add elsewhere after retirement.
    let added = s
        .add_numbers(
            &a.account.id,
            &session.id,
            &[number("+14155550112")],
            None,
            (t0 + 10, QUARANTINE),
        )
        .await
        .unwrap();
    assert_eq!(added[0].monthly_cost, None);
    let conflict = s
        .add_numbers(
            &a.account.id,
            &session.id,
            &[number("+14155550113"), number("+14155550110")],
            None,
            (t0, QUARANTINE),
        )
        .await;
    assert!(matches!(conflict, Err(StorageError::NumberTaken(_))));
    assert_eq!(
        s.pool(&a.account.id, &session.id)
            .await
            .unwrap()
            .numbers
            .len(),
        3
    );
    assert!(matches!(
        s.add_numbers(
            &b.account.id,
            &session.id,
            &[number("+14155550114")],
            None,
            (t0, QUARANTINE)
        )
        .await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        s.retire_number(&b.account.id, &session.id, &number("+14155550110"), t0)
            .await,
        Err(StorageError::NotFound)
    ));
    let retired = s
        .retire_number(&a.account.id, &session.id, &number("+14155550110"), t0 + 20)
        .await
        .unwrap();
    assert_eq!(retired.retired_at.unwrap().timestamp_millis(), t0 + 20);
    let after = s.pool(&a.account.id, &session.id).await.unwrap();
    assert_eq!(after.numbers.last().unwrap().number, "+14155550110");
    // Another account cannot take it during the quarantine (its callers would reach them);
    // the account that retired it can, and anyone can after.
    let bp = s
        .create_property(&b.account.id, &property(), t0)
        .await
        .unwrap();
    let too_soon = s
        .create_pool(
            &b.account.id,
            &bp.id,
            &pool(PoolKind::Session, &["+14155550110"]),
            t0 + 30,
            QUARANTINE,
        )
        .await;
    assert!(
        matches!(too_soon, Err(StorageError::NumberQuarantined(ref n)) if n == "+14155550110"),
        "{too_soon:?}"
    );
    let moved = s
        .create_pool(
            &b.account.id,
            &bp.id,
            &pool(PoolKind::Session, &["+14155550110"]),
            t0 + 20 + QUARANTINE + 1,
            QUARANTINE,
        )
        .await
        .unwrap();
    assert_eq!(moved.numbers[0].number, "+14155550110");

    // A source pool holds one live number.
    let source = s
        .create_pool(
            &a.account.id,
            &p.id,
            &pool(PoolKind::Source, &["+14155550120"]),
            t0,
            QUARANTINE,
        )
        .await
        .unwrap();
    assert!(matches!(
        s.add_numbers(
            &a.account.id,
            &source.id,
            &[number("+14155550121")],
            None,
            (t0, QUARANTINE)
        )
        .await,
        Err(StorageError::SourcePoolFull)
    ));

    s.close().await;
}

/// How long a retired number stays with its account, in these stories.
const QUARANTINE: i64 = 86_400_000;

#[tokio::test]
async fn storage_story_sqlite() {
    story(test_db(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn storage_story_postgres() {
    if let Some(db) = test_db(Backend::Postgres).await {
        story(db).await;
    }
}

#[tokio::test]
async fn sqlite_uses_wal_and_creates_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/deeper/sb.db", dir.path().display());
    let s = Storage::connect(&url, &Default::default()).await.unwrap();
    s.migrate().await.unwrap();
    s.create_account("A", 0).await.unwrap();
    assert!(dir.path().join("deeper/sb.db").exists());
    assert!(
        dir.path().join("deeper/sb.db-wal").exists(),
        "journal_mode=WAL"
    );
    s.close().await;
}

/// Attribution's batch: claims keep instances off each other's calls and expire; a released
/// claim is taken again when its time comes; storing a batch writes each waiting call once,
/// names each caller's first call, and leaves a call another instance stored alone.
async fn attribution_claims_story(db: TestDb) {
    use switchboard::storage::{CallAttribution, CallEvent, ClaimPhase, NewCall};

    let s = storage_for(&db).await;
    let account = s.create_account("A", 0).await.unwrap().account;
    let p = s
        .create_property(&account.id, &property(), 0)
        .await
        .unwrap();
    let call = |n: usize, caller: &str| NewCall {
        account_id: account.id.clone(),
        property_id: p.id.clone(),
        pool_id: None,
        provider: "twilio".into(),
        provider_call_id: format!("CA{n}"),
        tracking_number: "+14155550110".into(),
        caller_number: Some(caller.into()),
        caller_name: None,
        caller_city: None,
        caller_state: None,
        caller_zip: None,
        caller_country: None,
        status: "ringing".into(),
        started_at: 1_000 * n as i64,
    };
    let events: Vec<(u64, CallEvent)> = (1..=5)
        .map(|n| {
            let caller = if n % 2 == 0 {
                "+14155559998"
            } else {
                "+14155559999"
            };
            (n as u64, CallEvent::Started(call(n, caller)))
        })
        .collect();
    s.apply_call_events(&events, 10_000).await.unwrap();
    assert_eq!(s.attribution_backlog().await.unwrap(), (5, Some(1_000)));

    // Started by 4 000: four calls; two instances claim two each, never the same one.
    let a = s
        .claim_calls(ClaimPhase::Attribution, 4_000, 100, 200, 2)
        .await
        .unwrap();
    let b = s
        .claim_calls(ClaimPhase::Attribution, 4_000, 100, 200, 10)
        .await
        .unwrap();
    let ids = |calls: &[switchboard::storage::CallRow]| -> Vec<String> {
        calls
            .iter()
            .map(|c| c.call.provider_call_id.clone())
            .collect()
    };
    assert_eq!(ids(&a), ["CA1", "CA2"], "oldest first");
    assert_eq!(ids(&b), ["CA3", "CA4"]);
    assert!(
        s.claim_calls(ClaimPhase::Attribution, 4_000, 150, 300, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A claim that expired (its instance died) is taken again.
    let again = s
        .claim_calls(ClaimPhase::Attribution, 4_000, 201, 300, 10)
        .await
        .unwrap();
    assert_eq!(ids(&again), ["CA1", "CA2", "CA3", "CA4"]);
    // Released until 500: not before (the other two are free again at 400).
    let released: Vec<String> = a.iter().map(|c| c.id.clone()).collect();
    s.release_claims(&released, 500).await.unwrap();
    assert_eq!(
        ids(&s
            .claim_calls(ClaimPhase::Attribution, 4_000, 400, 600, 10)
            .await
            .unwrap()),
        ["CA3", "CA4"]
    );
    assert_eq!(
        ids(&s
            .claim_calls(ClaimPhase::Attribution, 4_000, 501, 600, 10)
            .await
            .unwrap()),
        ["CA1", "CA2"]
    );

    // Stored once, whoever stores second; each caller's first call is named.
    let attribution = |channel: &str| CallAttribution {
        confidence: "none".into(),
        channel: channel.into(),
        ..CallAttribution::default()
    };
    let all = s
        .claim_calls(ClaimPhase::Attribution, 10_000, 10_000, 20_000, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&all),
        ["CA1", "CA2", "CA3", "CA4", "CA5"],
        "every claim expired"
    );
    let everything = s.calls_of_property(&p.id).await.unwrap();
    let decided: Vec<_> = everything
        .iter()
        .map(|c| (c, attribution("Direct")))
        .collect();
    let mut stored = s.store_attributions(&decided, 11_000).await.unwrap();
    stored.sort();
    let mut expected: Vec<String> = everything.iter().map(|c| c.id.clone()).collect();
    expected.sort();
    assert_eq!(stored, expected);
    let late: Vec<_> = everything
        .iter()
        .map(|c| (c, attribution("Paid Search")))
        .collect();
    assert!(
        s.store_attributions(&late, 12_000)
            .await
            .unwrap()
            .is_empty()
    );
    let after = s.calls_of_property(&p.id).await.unwrap();
    for c in &after {
        let a = c.attribution.as_ref().expect("attributed");
        assert_eq!(a.channel, "Direct", "the first store stays");
    }
    let first_of = |caller: &str| {
        after
            .iter()
            .filter(|c| c.call.caller_number.as_deref() == Some(caller))
            .map(|c| (c.call.provider_call_id.clone(), c.first_call_id.clone()))
            .collect::<Vec<_>>()
    };
    let ca = |n: &str| {
        after
            .iter()
            .find(|c| c.call.provider_call_id == n)
            .unwrap()
            .id
            .clone()
    };
    assert_eq!(
        first_of("+14155559999"),
        [
            ("CA1".to_owned(), None),
            ("CA3".to_owned(), Some(ca("CA1"))),
            ("CA5".to_owned(), Some(ca("CA1")))
        ]
    );
    assert_eq!(
        first_of("+14155559998"),
        [
            ("CA2".to_owned(), None),
            ("CA4".to_owned(), Some(ca("CA2")))
        ]
    );
    assert_eq!(s.attribution_backlog().await.unwrap(), (0, None));
    s.close().await;
}

#[tokio::test]
async fn attribution_claims_story_sqlite() {
    attribution_claims_story(test_db(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn attribution_claims_story_postgres() {
    if let Some(db) = test_db(Backend::Postgres).await {
        attribution_claims_story(db).await;
    }
}
