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
    pub address: String,
    pub backend: Backend,
    pub storage: Storage,
    pub client: reqwest::Client,
    /// The API key of a first account, created for every test.
    pub api_key: String,
    pub account_id: String,
    _db: TestDb,
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
    let mut pairs: Vec<(&str, &str)> = vec![
        ("bind", "127.0.0.1:0"),
        ("database_url", &db.url),
        ("migrate_on_start", "true"),
    ];
    pairs.extend_from_slice(extra);
    let settings = Settings::from_pairs(pairs).expect("test settings are valid");
    let clock = ManualClock::new(1_780_000_000_000);
    let app = Application::build_with_clock(settings, clock as SharedClock)
        .await
        .expect("application builds");
    let port = app.port();
    let storage = app.state().storage.clone();
    tokio::spawn(app.run_until_stopped());
    let created = storage
        .create_account("Account A", 1_780_000_000_000)
        .await
        .expect("account");
    Some(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        backend,
        storage,
        client: reqwest::Client::new(),
        api_key: created.api_key.expose_secret().to_owned(),
        account_id: created.account.id,
        _db: db,
    })
}

impl TestApp {
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
