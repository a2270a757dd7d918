use reqwest::{Response, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard::config::Settings;
use switchboard::startup::Application;
use switchboard::storage::{PoolSettings, Storage};
use switchboard::time::{ManualClock, SharedClock};
use tempfile::TempDir;

/// Runs each named story (an `async fn(TestApp)`) once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($story:ident),* $(,)?) => {$(
        mod $story {
            #[tokio::test]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                super::$story(app).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(app) = $crate::helpers::spawn_postgres_app().await {
                    super::$story(app).await;
                }
            }
        }
    )*};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test: a SQLite file in a temp folder, or a new PostgreSQL database.
pub struct TestDb {
    pub url: String,
    _dir: Option<TempDir>,
}

pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // CI always sets it: there, a missing database is a failure, never a skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "TEST_DATABASE_URL must be set in CI"
            );
            eprintln!("skipped: TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)");
            None
        }
    }
}

pub async fn test_db(backend: Backend) -> Option<TestDb> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            Some(TestDb {
                url: format!("sqlite://{}/switchboard.db", dir.path().display()),
                _dir: Some(dir),
            })
        }
        Backend::Postgres => {
            let admin = postgres_admin_url()?;
            let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
            let admin_storage = Storage::connect(&admin, &PoolSettings::default())
                .await
                .expect("TEST_DATABASE_URL must reach PostgreSQL");
            admin_storage
                .create_database_for_tests(&name)
                .await
                .expect("create test database");
            admin_storage.close().await;
            let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            Some(TestDb {
                url: url.to_string(),
                _dir: None,
            })
        }
    }
}

pub struct TestApp {
    pub clock: std::sync::Arc<ManualClock>,
    pub db_url: String,
    pub address: String,
    pub backend: Backend,
    pub storage: Storage,
    pub client: reqwest::Client,
    /// The API key of a first account, created for every test.
    pub api_key: String,
    pub account_id: String,
    pub handle: actix_web::dev::ServerHandle,
    pub state: actix_web::web::Data<switchboard::http::AppState>,
    _spool: TempDir,
    _db: Option<TestDb>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[])
        .await
        .expect("sqlite is always available")
}

pub async fn spawn_postgres_app() -> Option<TestApp> {
    spawn_app_with(Backend::Postgres, &[]).await
}

/// Spawns the real application with extra settings (`("redis_url", "...")`, ...).
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let db = test_db(backend).await?;
    let mut app = start_app(&db.url, backend, extra, None).await;
    let created = app
        .storage
        .create_account("Account A", 1_780_000_000_000)
        .await
        .expect("account");
    app.api_key = created.api_key.expose_secret().to_owned();
    app.account_id = created.account.id;
    app._db = Some(db);
    Some(app)
}

/// Another instance of the service on the same database (and the same clock, if given).
pub async fn spawn_sibling(app: &TestApp, extra: &[(&str, &str)]) -> TestApp {
    let mut sibling = start_app(&app.db_url, app.backend, extra, Some(app.clock.clone())).await;
    sibling.api_key = app.api_key.clone();
    sibling.account_id = app.account_id.clone();
    sibling
}

pub async fn start_app(
    db_url: &str,
    backend: Backend,
    extra: &[(&str, &str)],
    clock: Option<std::sync::Arc<ManualClock>>,
) -> TestApp {
    // Each instance has its own spool folder, as on real hosts (unless the test names one).
    let spool = tempfile::tempdir().expect("temp dir");
    let spool_path = spool.path().display().to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("bind", "127.0.0.1:0"),
        ("database_url", db_url),
        ("migrate_on_start", "true"),
        ("spool_dir", &spool_path),
        // Alert passes run when a test asks (`tests/api/alerts.rs`), so no other test's
        // receiver ever sees an alert.
        ("alert_interval_secs", "3600"),
        // No test reaches Twilio: the tests of the ownership proof name their own fake Twilio.
        ("twilio_api_base", "off"),
        // Test receivers listen on loopback, which outbound requests may not reach by default;
        // `tests/api/outbound.rs` sets this to "" to see them refused.
        ("outbound_allow", "127.0.0.0/8,::1"),
    ];
    pairs.extend_from_slice(extra);
    let settings = Settings::from_pairs(pairs).expect("test settings are valid");
    let clock = clock.unwrap_or_else(|| ManualClock::new(1_780_000_000_000));
    let app = Application::build_with_clock(settings, clock.clone() as SharedClock)
        .await
        .expect("application builds");
    let port = app.port();
    let state = app.state();
    let storage = state.storage.clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        clock,
        db_url: db_url.to_owned(),
        address: format!("http://127.0.0.1:{port}"),
        backend,
        storage,
        client: reqwest::Client::new(),
        api_key: String::new(),
        account_id: String::new(),
        handle,
        state,
        _spool: spool,
        _db: None,
    }
}

impl TestApp {
    /// Stops this instance gracefully (its ledger is written out first).
    pub async fn stop(&self) {
        // Open live feeds end first, as on SIGTERM.
        self.state.live.close();
        self.handle.stop(true).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    /// This instance's spool folder.
    pub fn spool_dir(&self) -> &std::path::Path {
        self._spool.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn new_account_key(&self, name: &str) -> String {
        let created = self
            .storage
            .create_account(name, 1_780_000_000_000)
            .await
            .expect("account");
        created.api_key.expose_secret().to_owned()
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put(&self, path: &str, key: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, key: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    /// Creates a property for `key` and returns its JSON.
    pub async fn create_property(&self, key: &str) -> Value {
        let res = self.post("/v1/properties", key, &property_body()).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }

    /// Creates a session pool with the given numbers and returns its JSON.
    pub async fn create_pool(&self, key: &str, property_id: &str, numbers: &[&str]) -> Value {
        let res = self
            .post(
                &format!("/v1/properties/{property_id}/pools"),
                key,
                &json!({"name": "Paid", "kind": "session", "match": {"channel": "Paid Search"},
                        "lease_minutes": 30, "numbers": numbers}),
            )
            .await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

pub fn property_body() -> Value {
    json!({
        "name": "Acme Plumbing",
        "domains": ["acme.example"],
        "default_number": "+1 (415) 555-0100",
        "forward_to": "+14155550101",
        "timezone": "America/New_York",
        "currency": "USD"
    })
}

/// Reads an error answer and checks its shape: `{"error":{"code","message"}}`.
pub async fn error_of(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let body: Value = res.json().await.expect("error bodies are JSON");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, body["error"].clone())
}

/// Runs each named story on SQLite + in-process leases, PostgreSQL + in-process leases, and
/// PostgreSQL + Redis (the production stack).
#[macro_export]
macro_rules! on_every_stack {
    ($($story:ident),* $(,)?) => {$(
        mod $story {
            #[tokio::test]
            async fn sqlite_in_process() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                super::$story(app).await;
            }
            #[tokio::test]
            async fn postgres_in_process() {
                if let Some(app) = $crate::helpers::spawn_postgres_app().await {
                    super::$story(app).await;
                }
            }
            #[tokio::test]
            async fn postgres_redis() {
                let Some(redis) = $crate::helpers::redis_url() else { return };
                if let Some(app) = $crate::helpers::spawn_app_with(
                    $crate::helpers::Backend::Postgres,
                    &[("redis_url", &redis)],
                ).await {
                    super::$story(app).await;
                }
            }
        }
    )*};
}

pub fn redis_url() -> Option<String> {
    service_url("TEST_REDIS_URL")
}

/// The nodes of the test Redis Cluster (`.ci/redis-cluster` starts one), comma-separated.
pub fn redis_cluster_urls() -> Option<String> {
    service_url("TEST_REDIS_CLUSTER_URLS")
}

/// A test service's address from `variable`; None (the test skips) when it is unset, which CI
/// never allows.
fn service_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{variable} must be set in CI"
            );
            eprintln!("skipped: {variable} is not set (the tests that need it run in CI)");
            None
        }
    }
}

pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
pub const ORIGIN: &str = "https://www.acme.example";

/// A page view as the snippet sends it: JSON as text/plain, from the property's site.
pub struct Visit<'a> {
    pub key: &'a str,
    pub session: Option<&'a str>,
    pub url: &'a str,
    pub referrer: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub user_agent: &'a str,
    pub forwarded_for: Option<&'a str>,
    pub renew: bool,
    /// The Google Analytics client id the snippet read from the `_ga` cookie (any JSON).
    pub ga_client_id: Option<Value>,
}

impl<'a> Visit<'a> {
    pub fn new(key: &'a str) -> Self {
        Self {
            key,
            session: None,
            url: "https://www.acme.example/",
            referrer: None,
            origin: Some(ORIGIN),
            user_agent: BROWSER_UA,
            forwarded_for: None,
            renew: false,
            ga_client_id: None,
        }
    }
}

impl TestApp {
    pub async fn visit(&self, v: &Visit<'_>) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut body = json!({"key": v.key, "url": v.url});
        if let Some(s) = v.session {
            body["session"] = json!(s);
        }
        if let Some(r) = v.referrer {
            body["referrer"] = json!(r);
        }
        if v.renew {
            body["renew"] = json!(true);
        }
        if let Some(id) = &v.ga_client_id {
            body["ga_client_id"] = id.clone();
        }
        let mut req = self
            .client
            .post(self.url("/v1/dni/session"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("user-agent", v.user_agent)
            .body(body.to_string());
        if let Some(o) = v.origin {
            req = req.header("origin", o);
        }
        if let Some(f) = v.forwarded_for {
            req = req.header("x-forwarded-for", f);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// A new visitor's answer, asserting success.
    pub async fn new_visitor(&self, key: &str, url: &str) -> Value {
        let (status, _, body) = self
            .visit(&Visit {
                url,
                ..Visit::new(key)
            })
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn returning_visitor(&self, key: &str, session: &str) -> Value {
        let (status, _, body) = self
            .visit(&Visit {
                session: Some(session),
                url: "https://www.acme.example/pricing",
                ..Visit::new(key)
            })
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Creates a pool from a JSON body and returns it.
    pub async fn pool_with(&self, property_id: &str, body: Value) -> Value {
        let res = self
            .post(
                &format!("/v1/properties/{property_id}/pools"),
                &self.api_key,
                &body,
            )
            .await;
        let status = res.status();
        let pool: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{pool}");
        pool
    }

    /// Writes the ledger out now, so the database shows every page view so far.
    pub async fn flush_ledger(&self) {
        self.state.dni.ledger().flush().await;
    }

    pub fn clock_now(&self) -> i64 {
        use switchboard::time::Clock;
        self.clock.now_ms()
    }

    pub fn advance_minutes(&self, minutes: i64) {
        self.clock.advance_ms(minutes * 60_000);
    }
}

/// `count` fictional numbers from +1 415 555 01xx.
pub fn numbers(from: u32, count: u32) -> Vec<String> {
    (from..from + count)
        .map(|n| format!("+1415555{n:04}"))
        .collect()
}

/// A TCP proxy in front of the test PostgreSQL that a test can cut — every connection through
/// it dropped, new ones refused (its port is closed) — and restore on the same port. The tests
/// that make the database "go down" do it here, so PostgreSQL itself, shared by every test,
/// never stops.
pub struct DbProxy {
    /// The database's URL, through the proxy.
    pub url: String,
    listen: std::net::SocketAddr,
    target: String,
    running: std::sync::Arc<std::sync::Mutex<ProxyTasks>>,
}

#[derive(Default)]
struct ProxyTasks {
    acceptor: Option<tokio::task::JoinHandle<()>>,
    connections: Vec<tokio::task::JoinHandle<()>>,
}

impl DbProxy {
    /// A proxy to the database of `db_url` (its host and port), on a free local port.
    pub async fn start(db_url: &str) -> Self {
        let mut url = url::Url::parse(db_url).expect("a database URL");
        let target = format!(
            "{}:{}",
            url.host_str().expect("the database URL names a host"),
            url.port().unwrap_or(5432)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(listen.port())).unwrap();
        let proxy = Self {
            url: url.to_string(),
            listen,
            target,
            running: Default::default(),
        };
        proxy.accept_on(listener);
        proxy
    }

    fn accept_on(&self, listener: tokio::net::TcpListener) {
        let (target, running) = (self.target.clone(), self.running.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut running = running.lock().unwrap();
                running.connections.retain(|c| !c.is_finished());
                running.connections.push(connection);
            }
        });
        self.running.lock().unwrap().acceptor = Some(acceptor);
    }

    /// The database "goes down": open connections are dropped and the port is closed. Returns
    /// once both are done.
    pub async fn cut(&self) {
        let (acceptor, connections) = {
            let mut running = self.running.lock().unwrap();
            (
                running.acceptor.take(),
                std::mem::take(&mut running.connections),
            )
        };
        for task in acceptor.into_iter().chain(connections) {
            task.abort();
            let _ = task.await; // dropped: its sockets are closed
        }
    }

    /// The database "comes back" on the same address.
    pub async fn restore(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.listen).await {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("proxy: rebinding {}: {e}; retrying", self.listen);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("the proxy cannot listen on {} again: {e}", self.listen),
            }
        };
        self.accept_on(listener);
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap();
        for task in running
            .acceptor
            .take()
            .into_iter()
            .chain(running.connections.drain(..))
        {
            task.abort();
        }
    }
}

/// A form POST as a browser sends one (reqwest's `form` needs a feature this crate leaves off).
pub fn post_form(
    client: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// Posts a Twilio webhook form to `base` + `path`, signed with `token` as Twilio signs it: over
/// `public_url` + `path` and the parameters.
pub async fn post_signed_twilio(
    client: &reqwest::Client,
    base: &str,
    public_url: &str,
    token: &str,
    path: &str,
    params: &[(String, String)],
) -> Response {
    signed_twilio_request(client, base, public_url, token, path, params)
        .send()
        .await
        .expect("request")
}

/// The request `post_signed_twilio` sends, for a caller that expects it may fail.
pub fn signed_twilio_request(
    client: &reqwest::Client,
    base: &str,
    public_url: &str,
    token: &str,
    path: &str,
    params: &[(String, String)],
) -> reqwest::RequestBuilder {
    let signature = switchboard::telephony::twilio_signature::compute(
        token.as_bytes(),
        &format!("{public_url}{path}"),
        params,
    );
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    client
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
}
