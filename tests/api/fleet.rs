//! Several real service processes (the built binary) on one PostgreSQL database and one Redis,
//! and a load driver that talks to them at random as the snippet and Twilio would, keeping what
//! each request was acknowledged with (a 2xx answer), so a test can check afterwards that
//! nothing acknowledged was lost or doubled.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard::storage::{CallRow, PoolSettings, Storage};

use crate::cli::{free_port, switchboard, wait_until_up};
use crate::helpers::{BROWSER_UA, ORIGIN, numbers, property_body, signed_twilio_request};

pub const PUBLIC: &str = "https://calls.example.com";
pub const TOKEN: &str = "twilio-test-token-0123456789";
pub const VOICE: &str = "/v1/telephony/twilio/voice";
/// `property_body()`'s `forward_to`.
pub const FORWARD_TO: &str = "+14155550101";

/// A running binary; killed if the test ends (or fails) with it still up.
pub struct Instance {
    pub child: Child,
    pub base: String,
    log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- {} (last lines) ---", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Starts the binary on `port` (0: a free one) with its own spool folder `spool`, on the
/// database `db_url`, with `env` added (Redis, mostly); logs to `dir/serve-NAME.log`.
pub async fn serve(
    dir: &Path,
    name: &str,
    port: u16,
    db_url: &str,
    spool: &Path,
    env: &[(&str, &str)],
) -> Instance {
    let port = if port == 0 { free_port() } else { port };
    let bind = format!("127.0.0.1:{port}");
    let spool = spool.display().to_string();
    let log = dir.join(format!("serve-{name}.log"));
    let mut vars = vec![
        ("DATABASE_URL", db_url),
        ("SWITCHBOARD_BIND", bind.as_str()),
        ("SWITCHBOARD_PUBLIC_URL", PUBLIC),
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("SWITCHBOARD_SPOOL_DIR", spool.as_str()),
        // Every simulated visitor comes from 127.0.0.1.
        ("SWITCHBOARD_NEW_SESSIONS_PER_IP_PER_MINUTE", "1000000"),
        // Load tests start sessions faster than any site: no budget of new leases per pool.
        ("SWITCHBOARD_POOL_NEW_LEASES_PER_MINUTE", "0"),
        ("SWITCHBOARD_ALERT_INTERVAL_SECS", "3600"),
    ];
    vars.extend_from_slice(env);
    let child = switchboard(dir, &vars)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut instance = Instance {
        child,
        base: format!("http://{bind}"),
        log,
    };
    wait_until_up(port, &mut instance.child).await;
    instance
}

/// How many sessions the instances logging in `dir` recovered from the lease store.
pub fn sessions_recovered(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("recovered from the lease store"))
        {
            // Text logs colour their fields: `sessions`, escapes, `=`, escapes, the count.
            let mut parts = line.split('\x1b');
            let mut plain = parts.next().unwrap_or_default().to_owned();
            for part in parts {
                plain.push_str(part.split_once('m').map_or(part, |(_, rest)| rest));
            }
            total += plain
                .split_once("sessions=")
                .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// SIGKILL (no shutdown code runs), and wait until the process is gone.
pub fn sigkill(mut instance: Instance) {
    instance.child.kill().unwrap();
    instance.child.wait().unwrap();
}

/// Polls (up to `within`) until `done` holds.
pub async fn eventually(within: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until each instance (by its spool folder) routes `number`: another instance learns a
/// new pool from the database within the routing table's refresh, and writes its snapshot.
pub async fn wait_until_routed(spools: &[PathBuf], number: &str) {
    eventually(
        Duration::from_secs(15),
        "every instance routes the pool's numbers",
        async || {
            spools.iter().all(|spool| {
                std::fs::read_to_string(spool.join("routes.json")).is_ok_and(|r| r.contains(number))
            })
        },
    )
    .await;
}

/// A migrated database with an account; returns a direct connection and the API key.
pub async fn prepared_database(db_url: &str) -> (Storage, String) {
    let direct = Storage::connect(db_url, &PoolSettings::default())
        .await
        .expect("the test database");
    direct.migrate().await.unwrap();
    let key = direct
        .create_account("Fleet", 1_780_000_000_000)
        .await
        .unwrap()
        .api_key
        .expose_secret()
        .to_owned();
    (direct, key)
}

/// A property from `property_body()`, created through `base`; returns its JSON.
pub async fn create_property(client: &reqwest::Client, base: &str, key: &str) -> Value {
    let res = client
        .post(format!("{base}/v1/properties"))
        .bearer_auth(key)
        .json(&property_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// A property whose one session pool (exhaustion: the default number) holds `pool_size`
/// numbers from +1 415 555 `first`, created through `base`.
#[derive(Debug, Clone)]
pub struct Site {
    pub property_id: String,
    pub public_key: String,
    pub numbers: HashSet<String>,
}

impl Site {
    /// Any one of the pool's numbers (all are routed together).
    pub fn a_number(&self) -> &str {
        self.numbers.iter().next().expect("a pool has numbers")
    }

    pub async fn create(
        client: &reqwest::Client,
        base: &str,
        key: &str,
        first: u32,
        pool_size: u32,
    ) -> Self {
        let property = create_property(client, base, key).await;
        let property_id = property["id"].as_str().unwrap().to_owned();
        let pool_numbers = numbers(first, pool_size);
        let res = client
            .post(format!("{base}/v1/properties/{property_id}/pools"))
            .bearer_auth(key)
            .json(
                &json!({"name": "All visits", "kind": "session", "lease_minutes": 30,
                          "exhaustion": "default", "numbers": pool_numbers}),
            )
            .send()
            .await
            .unwrap();
        let status = res.status();
        let pool: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{pool}");
        Self {
            property_id,
            public_key: property["public_key"].as_str().unwrap().to_owned(),
            numbers: pool_numbers.into_iter().collect(),
        }
    }
}

/// Calls a run makes at least (it goes on past its duration for them).
pub const MIN_CALLS: usize = 20;

/// A call acknowledged with TwiML that forwards it, and the session that truly held the number.
#[derive(Debug, Clone)]
pub struct AckedCall {
    pub call_sid: String,
    pub to: String,
    pub true_session: String,
}

/// What was sent and what was acknowledged.
#[derive(Debug, Default)]
pub struct Record {
    pub sent: u64,
    pub acknowledged: u64,
    /// Answers other than 2xx (and refused connections: an instance that is down).
    pub refused: u64,
    pub server_errors: u64,
    /// Acknowledged new sessions: session id -> the number shown.
    pub sessions: HashMap<String, String>,
    /// Page views of a session that held a pool number and were shown another pool number.
    pub leases_lost: Vec<String>,
    /// Page views answered with the default number while Redis was away.
    pub degraded_views: u64,
    pub calls: Vec<AckedCall>,
    /// Call webhooks that did not answer with forwarding TwiML (a 2xx without it included).
    pub calls_not_routed: u64,
    pub slowest_view: Duration,
    pub slowest_call: Duration,
}

impl Record {
    /// Sessions shown a pool number, and the numbers held twice (must be none: the pool is
    /// exclusive and leases outlive the test).
    pub fn leased(&self, site: &Site) -> (usize, Vec<String>) {
        let mut held: HashMap<&str, &str> = HashMap::new();
        let mut doubled = Vec::new();
        for (sid, number) in &self.sessions {
            if site.numbers.contains(number)
                && let Some(other) = held.insert(number, sid)
            {
                doubled.push(format!("{number}: {other} and {sid}"));
            }
        }
        (held.len(), doubled)
    }
}

/// How the driver splits its requests.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub new_sessions: u32,
    pub page_views: u32,
    pub calls: u32,
    /// New sessions stop at this count (so the pool is never exhausted unless a test wants it).
    pub max_sessions: usize,
}

pub struct Driver {
    client: reqwest::Client,
    site: Site,
    /// The instances' base URLs; `None` while one is down (the driver still tries it, as a load
    /// balancer that has not noticed yet would, and counts the refusals).
    targets: Vec<String>,
    record: Mutex<Record>,
    calls_made: std::sync::atomic::AtomicU64,
}

impl Driver {
    pub fn new(site: &Site, targets: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            site: site.clone(),
            targets,
            record: Mutex::default(),
            calls_made: Default::default(),
        })
    }

    /// `workers` concurrent clients for `duration`, and on (up to three times as long) until
    /// `MIN_CALLS` calls were acknowledged: a machine busy with other work still gives a test
    /// enough calls to check.
    pub async fn run(self: &Arc<Self>, workers: usize, duration: Duration, mix: Mix) {
        let (until, at_most) = (Instant::now() + duration, Instant::now() + 3 * duration);
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let driver = self.clone();
                tokio::spawn(async move {
                    loop {
                        let now = Instant::now();
                        let few = driver.with_record(|r| r.calls.len() < MIN_CALLS);
                        if now >= at_most || now >= until && !few {
                            break;
                        }
                        driver.step(mix).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }

    pub fn take_record(&self) -> Record {
        std::mem::take(&mut *self.record.lock().unwrap())
    }

    pub fn with_record<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.record.lock().unwrap())
    }

    fn target(&self) -> &str {
        &self.targets[rand::random_range(0..self.targets.len())]
    }

    async fn step(&self, mix: Mix) {
        let (sessions, leased) = {
            let r = self.record.lock().unwrap();
            let leased: Vec<(String, String)> = r
                .sessions
                .iter()
                .filter(|(_, n)| self.site.numbers.contains(*n))
                .map(|(s, n)| (s.clone(), n.clone()))
                .collect();
            (r.sessions.len(), leased)
        };
        let total = mix.new_sessions + mix.page_views + mix.calls;
        let roll = rand::random_range(0..total);
        if roll < mix.new_sessions && sessions < mix.max_sessions || leased.is_empty() {
            self.new_session().await;
        } else if roll < mix.new_sessions + mix.page_views {
            let (sid, number) = &leased[rand::random_range(0..leased.len())];
            self.page_view(sid, number).await;
        } else {
            let (sid, number) = &leased[rand::random_range(0..leased.len())];
            self.call(sid, number).await;
        }
    }

    /// Sends a page view; returns the answer's body when it was a 200.
    async fn visit(&self, session: Option<&str>) -> Option<Value> {
        let mut body = json!({"key": self.site.public_key,
                              "url": "https://www.acme.example/?utm_source=google&utm_medium=cpc"});
        if let Some(s) = session {
            body["session"] = json!(s);
        }
        let started = Instant::now();
        let res = self
            .client
            .post(format!("{}/v1/dni/session", self.target()))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("user-agent", BROWSER_UA)
            .header("origin", ORIGIN)
            .body(body.to_string())
            .send()
            .await;
        let (status, body) = match res {
            Ok(res) => (Some(res.status()), res.json::<Value>().await.ok()),
            Err(_) => (None, None),
        };
        let took = started.elapsed();
        let mut r = self.record.lock().unwrap();
        r.sent += 1;
        r.slowest_view = r.slowest_view.max(took);
        match (status, body) {
            (Some(StatusCode::OK), Some(body)) => {
                r.acknowledged += 1;
                Some(body)
            }
            (status, _) => {
                r.refused += 1;
                if status.is_some_and(|s| s.is_server_error()) {
                    r.server_errors += 1;
                }
                None
            }
        }
    }

    pub async fn new_session(&self) {
        if let Some(body) = self.visit(None).await
            && let (Some(sid), Some(number)) = (body["session"].as_str(), body["number"].as_str())
        {
            let mut r = self.record.lock().unwrap();
            if !self.site.numbers.contains(number) {
                r.degraded_views += 1;
            }
            r.sessions.insert(sid.to_owned(), number.to_owned());
        }
    }

    async fn page_view(&self, sid: &str, number: &str) {
        if let Some(body) = self.visit(Some(sid)).await {
            let shown = body["number"].as_str().unwrap_or_default();
            let mut r = self.record.lock().unwrap();
            if shown == number {
                return;
            }
            if self.site.numbers.contains(shown) || body["session"].as_str() != Some(sid) {
                r.leases_lost
                    .push(format!("{sid} held {number}, was shown {shown}"));
            } else {
                r.degraded_views += 1;
            }
        }
    }

    /// A signed voice webhook for a new call to `number`; now and then Twilio's retry of it
    /// too, to the other instance (recorded once all the same).
    async fn call(&self, sid: &str, number: &str) {
        let n = self
            .calls_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call_sid = format!("CA{:032x}", uuid::Uuid::new_v4().as_u128() ^ n as u128);
        let params: Vec<(String, String)> = [
            ("CallSid", call_sid.as_str()),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("From", &format!("+1415666{:04}", n % 10_000)),
            ("To", number),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let tries = if rand::random_ratio(1, 10) { 2 } else { 1 };
        let mut acked = false;
        for _ in 0..tries {
            let started = Instant::now();
            let res =
                signed_twilio_request(&self.client, self.target(), PUBLIC, TOKEN, VOICE, &params)
                    .send()
                    .await;
            // No answer (an instance down, or killed mid-request) is a refusal, as Twilio sees it.
            let (status, twiml) = match res {
                Ok(res) => (Some(res.status()), res.text().await.unwrap_or_default()),
                Err(_) => (None, String::new()),
            };
            let took = started.elapsed();
            let mut r = self.record.lock().unwrap();
            r.sent += 1;
            r.slowest_call = r.slowest_call.max(took);
            let routed = twiml.contains("<Dial") && twiml.contains(FORWARD_TO);
            let success = status.is_some_and(|s| s.is_success());
            if success && routed {
                r.acknowledged += 1;
                acked = true;
            } else {
                r.refused += 1;
                if status.is_some_and(|s| s.is_server_error()) {
                    r.server_errors += 1;
                }
                if success {
                    r.calls_not_routed += 1;
                }
            }
        }
        if acked {
            self.record.lock().unwrap().calls.push(AckedCall {
                call_sid,
                to: number.to_owned(),
                true_session: sid.to_owned(),
            });
        }
    }
}

/// Waits until every acknowledged call is recorded and attributed, then checks each is recorded
/// exactly once and attributed, `exact`, to the session that held its number. Returns
/// (calls recorded, doubled, lost, wrongly attributed).
async fn check_calls(direct: &Storage, site: &Site, calls: &[AckedCall]) -> CallFigures {
    // Generous: a machine busy with other work attributes slowly (speed is measured in
    // benches/); this waits for the answers, not for a time.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = direct.calls_of_property(&site.property_id).await;
        let (recorded, attributed) = rows.as_ref().map_or((0, 0), |rows| {
            let attributed = rows.iter().filter(|c| c.attribution.is_some()).count();
            (rows.len(), attributed)
        });
        if attributed >= calls.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "of {} acknowledged calls, {recorded} recorded and {attributed} attributed",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A little longer: a late replay must not add a second row.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows = direct.calls_of_property(&site.property_id).await.unwrap();
    let mut by_sid: HashMap<&str, Vec<&CallRow>> = HashMap::new();
    for row in &rows {
        by_sid
            .entry(row.call.provider_call_id.as_str())
            .or_default()
            .push(row);
    }
    let mut figures = CallFigures {
        recorded: rows.len(),
        ..CallFigures::default()
    };
    for call in calls {
        match by_sid.get(call.call_sid.as_str()).map(Vec::as_slice) {
            None | Some([]) => figures.lost.push(call.call_sid.clone()),
            Some([row]) => {
                let a = row.attribution.as_ref();
                let right = a.is_some_and(|a| {
                    a.confidence == "exact" && a.session_id.as_deref() == Some(&call.true_session)
                });
                if !right || row.call.tracking_number != call.to {
                    figures.misattributed.push(format!(
                        "{} to {}: expected {}, got {:?}",
                        call.call_sid,
                        call.to,
                        call.true_session,
                        a.map(|a| (&a.confidence, &a.session_id, &a.channel))
                    ));
                }
            }
            Some(more) => figures
                .doubled
                .push(format!("{} x{}", call.call_sid, more.len())),
        }
    }
    let acked: HashSet<&str> = calls.iter().map(|c| c.call_sid.as_str()).collect();
    figures.unacknowledged_recorded = by_sid.keys().filter(|s| !acked.contains(*s)).count();
    figures
}

#[derive(Debug, Default)]
pub struct CallFigures {
    pub recorded: usize,
    pub lost: Vec<String>,
    pub doubled: Vec<String>,
    pub misattributed: Vec<String>,
    /// Calls the database holds that no client saw acknowledged (an answer lost with a killed
    /// instance): allowed, since Twilio retries such a call, but counted.
    pub unacknowledged_recorded: usize,
}

/// Every acknowledged session is in the database and, when it was shown a pool number, its
/// last lease is on that number (waiting a while: a session a killed instance never wrote is
/// recovered from the lease store some seconds later). Returns the sessions missing or wrong.
async fn check_sessions(direct: &Storage, site: &Site, record: &Record) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut wrong = Vec::new();
        for (sid, number) in &record.sessions {
            let leased = site.numbers.contains(number);
            match direct.session_with_last_lease(sid).await.unwrap() {
                None => wrong.push(format!("{sid}: not in the database")),
                Some((_, lease)) if leased && lease.as_ref().map(|l| &l.number) != Some(number) => {
                    wrong.push(format!("{sid}: shown {number}, its lease {lease:?}"))
                }
                Some(_) => {}
            }
        }
        if wrong.is_empty() || Instant::now() > deadline {
            return wrong;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What a run came to: the driver's record, and what the database holds of it.
pub struct Outcome {
    pub record: Record,
    pub calls: CallFigures,
    /// Acknowledged sessions missing from the database, or with another lease.
    pub sessions: Vec<String>,
}

impl Outcome {
    /// Checks the database against what `driver` had acknowledged, and prints the figures.
    pub async fn of(
        name: &str,
        driver: &Driver,
        direct: &Storage,
        site: &Site,
        held_for: Duration,
    ) -> Self {
        let record = driver.take_record();
        let calls = check_calls(direct, site, &record.calls).await;
        let sessions = check_sessions(direct, site, &record).await;
        print_figures(name, &record, &calls, held_for);
        Self {
            record,
            calls,
            sessions,
        }
    }

    /// Nothing acknowledged was lost, doubled or misattributed, and no answer was a 5xx.
    pub fn assert_nothing_lost(&self, site: &Site) {
        let (record, calls) = (&self.record, &self.calls);
        assert_eq!(record.server_errors, 0);
        let (_, doubled) = record.leased(site);
        assert!(doubled.is_empty(), "numbers leased twice: {doubled:?}");
        assert!(
            record.leases_lost.is_empty(),
            "leases lost: {:?}",
            record.leases_lost
        );
        assert!(calls.lost.is_empty(), "calls lost: {:?}", calls.lost);
        assert!(
            calls.doubled.is_empty(),
            "calls doubled: {:?}",
            calls.doubled
        );
        assert!(calls.misattributed.is_empty(), "{:?}", calls.misattributed);
        assert!(
            self.sessions.is_empty(),
            "sessions lost: {:?}",
            self.sessions
        );
        assert!(
            record.calls.len() >= MIN_CALLS,
            "too little load: {record:?}"
        );
    }
}

/// One line of figures, printed for BENCHMARKS.md.
fn print_figures(name: &str, record: &Record, calls: &CallFigures, held_for: Duration) {
    println!(
        "{name}: sent {} requests, acknowledged {}, refused {} ({} 5xx), load held {:.0} req/s \
         over {:.1} s; sessions {} ({} shown the default number while degraded), calls \
         acknowledged {}, recorded {} ({} not acknowledged); lost: {} calls, {} leases; \
         doubled: {} calls; misattributed: {}; slowest page view {:?}, slowest call {:?}",
        record.sent,
        record.acknowledged,
        record.refused,
        record.server_errors,
        record.sent as f64 / held_for.as_secs_f64(),
        held_for.as_secs_f64(),
        record.sessions.len(),
        record.degraded_views,
        record.calls.len(),
        calls.recorded,
        calls.unacknowledged_recorded,
        calls.lost.len(),
        record.leases_lost.len(),
        calls.doubled.len(),
        calls.misattributed.len(),
        record.slowest_view,
        record.slowest_call,
    );
}
