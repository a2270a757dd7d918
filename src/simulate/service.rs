//! The service under simulation: the real application in this process, on port 0 with the
//! manual clock, and the API calls the simulator makes to it (set-up, Twilio's signed posts,
//! reading attributions and pool health).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::driver::{Exhaustion, START_MS, SimConfig};
use super::score::Observed;
use super::traffic::SITE_DOMAIN;
use crate::config::{DEFAULT_DATABASE_URL, Settings};
use crate::demo::answer;
use crate::http::AppState;
use crate::startup::Application;
use crate::telephony::twilio_signature;
use crate::time::{ManualClock, Millis, SharedClock, to_datetime};

/// The pool advisor's answer (`GET /v1/pools/{id}/health`), as the run read it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Advice {
    pub window_hours: i64,
    pub arrivals_per_hour: f64,
    pub mean_hold_minutes: f64,
    pub offered_load_erlangs: f64,
    pub busy_hour_load_erlangs: f64,
    pub exhaustion_probability: f64,
    pub recommended_size: u64,
    pub peak_concurrent_leases: u64,
    pub exhaustion_events: i64,
}

/// The service under simulation and the means to talk to it.
pub(super) struct Service {
    pub(super) state: actix_web::web::Data<AppState>,
    pub(super) clock: Arc<ManualClock>,
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    token: String,
    api_key: String,
    property_id: String,
    pub(super) public_key: String,
    pool_id: String,
    numbers: Vec<String>,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

const DEFAULT_NUMBER: &str = "+14155550100";
pub(super) const FORWARD_TO: &str = "+14155550101";
const OVERFLOW_NUMBER: &str = "+14155550102";

/// Fictional tracking numbers (555-0100 to 555-0199 in one area code after another).
fn tracking_numbers(count: usize) -> Vec<String> {
    const AREAS: [u32; 12] = [510, 628, 650, 408, 925, 707, 831, 209, 530, 559, 661, 805];
    (0..count)
        .map(|i| format!("+1{}5550{}", AREAS[(i / 100) % AREAS.len()], 100 + i % 100))
        .collect()
}

impl Service {
    /// Starts the service on port 0 with the manual clock: SQLite in a temporary folder unless a
    /// database is configured (then it and Redis, if configured, are used as they are).
    pub(super) async fn start(settings: &Settings, config: &SimConfig) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a temporary folder for the simulation")?;
        let mut settings = settings.clone();
        if settings.database_url.expose_secret() == DEFAULT_DATABASE_URL {
            settings.database_url =
                SecretString::from(format!("sqlite://{}", dir.path().join("sim.db").display()));
        }
        settings.migrate_on_start = true;
        settings.spool_dir = dir.path().join("spool");
        settings.bind = "127.0.0.1:0".parse()?;
        settings.public_url_configured = false;
        // Visitors' addresses come in X-Forwarded-For from this process, as behind a proxy.
        settings.trusted_proxies = vec!["127.0.0.0/8".parse()?, "::1/128".parse()?];
        let token = match &settings.twilio_auth_token {
            Some(t) => t.expose_secret().to_owned(),
            None => {
                let token = format!("{:032x}", rand::random::<u128>());
                settings.twilio_auth_token = Some(SecretString::from(token.clone()));
                token
            }
        };
        let clock = ManualClock::new(START_MS);
        let app = Application::build_with_clock(settings, clock.clone() as SharedClock).await?;
        let state = app.state();
        let base = state
            .settings
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let created = state
            .storage
            .create_account("Switchboard simulation", START_MS)
            .await?;
        let mut service = Self {
            state,
            clock,
            client: reqwest::Client::new(),
            base,
            token,
            api_key: created.api_key.expose_secret().to_owned(),
            property_id: String::new(),
            public_key: String::new(),
            pool_id: String::new(),
            numbers: tracking_numbers(config.pool_size),
            handle,
            server,
            _dir: dir,
        };
        service.set_up(config).await?;
        Ok(service)
    }

    /// The property and its one session pool, through the API.
    async fn set_up(&mut self, config: &SimConfig) -> anyhow::Result<()> {
        let property = self
            .api_post(
                "/v1/properties",
                json!({
                    "name": "Acme Plumbing (simulated)",
                    "domains": [SITE_DOMAIN],
                    "default_number": DEFAULT_NUMBER,
                    "forward_to": FORWARD_TO,
                    "timezone": "UTC",
                    "currency": "USD",
                }),
            )
            .await?;
        self.property_id = property["id"].as_str().context("property id")?.to_owned();
        self.public_key = property["public_key"]
            .as_str()
            .context("public key")?
            .to_owned();
        let mut pool = json!({
            "name": "Every visitor",
            "kind": "session",
            "lease_minutes": config.lease_minutes,
            "exhaustion": config.exhaustion.as_str(),
            "numbers": self.numbers,
            "monthly_cost": 1.15,
        });
        if config.exhaustion == Exhaustion::Overflow {
            pool["overflow_number"] = json!(OVERFLOW_NUMBER);
        }
        let pool = self
            .api_post(&format!("/v1/properties/{}/pools", self.property_id), pool)
            .await?;
        self.pool_id = pool["id"].as_str().context("pool id")?.to_owned();
        Ok(())
    }

    async fn api_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.api_key)
            .json(&body);
        answer(request, &format!("POST {path}")).await
    }

    async fn api_get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.api_key);
        answer(request, &format!("GET {path}")).await
    }

    /// Posts a form as Twilio does (signed with the auth token over the URL and the sorted
    /// parameters); returns the TwiML.
    pub(super) async fn twilio(
        &self,
        url: &str,
        params: &[(&str, String)],
    ) -> anyhow::Result<String> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let signature = twilio_signature::compute(self.token.as_bytes(), url, &params);
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let response = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .header("user-agent", "TwilioProxy/1.1")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "{url} answered {status}: {text}");
        Ok(text)
    }

    /// Waits (in wall time, with simulated time standing still) for a call's attribution.
    pub(super) async fn attributed(&self, sid: &str, started: Millis) -> anyhow::Result<Observed> {
        let at = to_datetime(started);
        let path = format!(
            "/v1/properties/{}/calls?from={}&to={}&limit=50",
            self.property_id,
            rfc3339(at - chrono::Duration::milliseconds(1)),
            rfc3339(at + chrono::Duration::milliseconds(1)),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.state.calls.wake();
            let list = self.api_get(&path).await?;
            let found = list["calls"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["provider_call_id"] == sid);
            if let Some(c) = found
                && !c["attribution"].is_null()
            {
                return Ok(observed(c));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "call {sid} was not attributed within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every call of the property, by CallSid, read page by page from the calls API.
    pub(super) async fn all_calls(
        &self,
        expected: usize,
    ) -> anyhow::Result<BTreeMap<String, Observed>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.state.calls.wake();
            let mut seen = BTreeMap::new();
            let mut pending = 0;
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/v1/properties/{}/calls?limit=500", self.property_id);
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let page = self.api_get(&path).await?;
                for c in page["calls"].as_array().into_iter().flatten() {
                    pending += usize::from(c["attribution"].is_null());
                    if let Some(sid) = c["provider_call_id"].as_str() {
                        seen.insert(sid.to_owned(), observed(c));
                    }
                }
                cursor = page["next"].as_str().map(str::to_owned);
                if cursor.is_none() {
                    break;
                }
            }
            if (seen.len() >= expected && pending == 0) || Instant::now() >= deadline {
                return Ok(seen);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The pool advisor over the last `window_hours`.
    pub(super) async fn health(&self, window_hours: i64, target: f64) -> anyhow::Result<Advice> {
        let h = self
            .api_get(&format!(
                "/v1/pools/{}/health?window_hours={window_hours}&target={target}",
                self.pool_id
            ))
            .await?;
        Ok(Advice {
            window_hours,
            arrivals_per_hour: h["arrivals_per_hour"].as_f64().unwrap_or_default(),
            mean_hold_minutes: h["mean_hold_minutes"].as_f64().unwrap_or_default(),
            offered_load_erlangs: h["offered_load_erlangs"].as_f64().unwrap_or_default(),
            busy_hour_load_erlangs: h["busy_hour_load_erlangs"].as_f64().unwrap_or_default(),
            exhaustion_probability: h["exhaustion_probability"].as_f64().unwrap_or_default(),
            recommended_size: h["recommended_size"].as_u64().unwrap_or_default(),
            peak_concurrent_leases: h["peak_concurrent_leases"].as_u64().unwrap_or_default(),
            exhaustion_events: h["exhaustion_events"].as_i64().unwrap_or_default(),
        })
    }

    /// Stops the service as SIGTERM would (the ledger drains) and waits for it.
    pub(super) async fn stop(self) {
        let Self {
            state,
            client,
            handle,
            server,
            _dir,
            ..
        } = self;
        // The ledger drains once every handle on the application is gone: ours first. Keep-alive
        // connections go with the client, so the graceful stop has nothing to wait for.
        drop(state);
        drop(client);
        handle.stop(true).await;
        let _ = server.await;
        drop(_dir);
    }
}

fn observed(call: &Value) -> Observed {
    let a = &call["attribution"];
    Observed {
        confidence: a["confidence"].as_str().map(str::to_owned),
        session: a["session_id"].as_str().map(str::to_owned),
        channel: a["channel"].as_str().map(str::to_owned),
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace('+', "%2B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_numbers_are_distinct_valid_and_fictional() {
        let numbers = tracking_numbers(250);
        let distinct: std::collections::HashSet<_> = numbers.iter().collect();
        assert_eq!(distinct.len(), 250);
        for n in &numbers {
            assert!(n.contains("55501"), "{n}");
            crate::domain::PhoneNumber::parse("numbers", n).expect(n);
        }
    }
}
