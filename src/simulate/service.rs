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

/// A running service as the snippet and Twilio see it, and the clock that the driver sets to
/// each event's time.
pub struct Target {
    pub client: reqwest::Client,
    /// The service's public URL, without the trailing slash (Twilio signs over it).
    pub base: String,
    /// The property's key, as the snippet sends it.
    pub public_key: String,
    /// Twilio's auth token, which signs the webhooks.
    pub twilio_token: String,
    /// The property's `forward_to`: the business leg's `To`.
    pub forward_to: String,
    pub clock: Arc<ManualClock>,
}

/// Where the service `state` belongs to answers: its public URL without the trailing slash.
pub fn base_url(state: &AppState) -> String {
    state
        .settings
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}

/// Makes `settings` fit a service that this process drives: its public URL is the address it
/// binds (the webhooks are signed over it), the loopback is a trusted proxy (each visitor's
/// address comes in `X-Forwarded-For`), and Twilio's auth token is the configured one or a
/// random one. Returns the token.
pub fn driven(settings: &mut Settings) -> anyhow::Result<String> {
    settings.public_url_configured = false;
    settings.trusted_proxies = vec!["127.0.0.0/8".parse()?, "::1/128".parse()?];
    Ok(match &settings.twilio_auth_token {
        Some(t) => t.expose_secret().to_owned(),
        None => {
            let token = format!("{:032x}", rand::random::<u128>());
            settings.twilio_auth_token = Some(SecretString::from(token.clone()));
            token
        }
    })
}

impl Target {
    /// The running service `state` belongs to, for its property with `public_key`.
    pub fn new(
        state: &AppState,
        public_key: &str,
        twilio_token: &str,
        forward_to: &str,
        clock: Arc<ManualClock>,
    ) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base_url(state),
            public_key: public_key.to_owned(),
            twilio_token: twilio_token.to_owned(),
            forward_to: forward_to.to_owned(),
            clock,
        }
    }

    /// Posts a form as Twilio does (signed with the auth token over the URL and the sorted
    /// parameters); returns the TwiML.
    pub async fn twilio(&self, url: &str, params: &[(&str, String)]) -> anyhow::Result<String> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let signature = twilio_signature::compute(self.twilio_token.as_bytes(), url, &params);
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
}

/// The service under simulation and the means to talk to it.
pub(super) struct Service {
    pub(super) state: actix_web::web::Data<AppState>,
    pub(super) target: Target,
    api_key: String,
    property_id: String,
    pool_id: String,
    numbers: Vec<String>,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

const DEFAULT_NUMBER: &str = "+14155550100";
const FORWARD_TO: &str = "+14155550101";
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
        // A folder the service creates itself (0700), inside the temporary one.
        let data = dir.path().join("data");
        if settings.database_url.expose_secret() == DEFAULT_DATABASE_URL {
            settings.database_url =
                SecretString::from(format!("sqlite://{}", data.join("sim.db").display()));
        }
        settings.migrate_on_start = true;
        settings.spool_dir = data.join("spool");
        settings.bind = "127.0.0.1:0".parse()?;
        let token = driven(&mut settings)?;
        let clock = ManualClock::new(START_MS);
        let app = Application::build_with_clock(settings, clock.clone() as SharedClock).await?;
        let state = app.state();
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let created = state
            .storage
            .create_account("Switchboard simulation", START_MS)
            .await?;
        let target = Target::new(&state, "", &token, FORWARD_TO, clock);
        let mut service = Self {
            state,
            target,
            api_key: created.api_key.expose_secret().to_owned(),
            property_id: String::new(),
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
        self.target.public_key = property["public_key"]
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
            .target
            .client
            .post(format!("{}{path}", self.target.base))
            .bearer_auth(&self.api_key)
            .json(&body);
        answer(request, &format!("POST {path}")).await
    }

    async fn api_get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self
            .target
            .client
            .get(format!("{}{path}", self.target.base))
            .bearer_auth(&self.api_key);
        answer(request, &format!("GET {path}")).await
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

    /// Every call of the property, by CallSid, once each is attributed (or after 30 s).
    pub(super) async fn all_calls(
        &self,
        expected: usize,
    ) -> anyhow::Result<BTreeMap<String, Observed>> {
        let calls = settled_calls(
            &self.state,
            &self.target.client,
            &self.api_key,
            &self.property_id,
            Duration::from_secs(30),
            |calls| calls.len() >= expected && calls.iter().all(|c| !c["attribution"].is_null()),
        )
        .await?;
        Ok(calls
            .iter()
            .filter_map(|c| Some((c["provider_call_id"].as_str()?.to_owned(), observed(c))))
            .collect())
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
            target,
            handle,
            server,
            _dir,
            ..
        } = self;
        // The ledger drains once every handle on the application is gone: ours first. Keep-alive
        // connections go with the client, so the graceful stop has nothing to wait for.
        drop(state);
        drop(target);
        handle.stop(true).await;
        let _ = server.await;
        drop(_dir);
    }
}

/// Every call of a property, read page by page from the calls API of the service `state`
/// belongs to, as soon as `done` holds for them (the service attributes and completes calls
/// behind the webhooks) or `wait` has passed. The call replayer is woken before each read, as a
/// webhook would wake it.
pub async fn settled_calls(
    state: &AppState,
    client: &reqwest::Client,
    api_key: &str,
    property_id: &str,
    wait: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> anyhow::Result<Vec<Value>> {
    let base = base_url(state);
    let deadline = Instant::now() + wait;
    loop {
        state.calls.wake();
        let mut calls = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/properties/{property_id}/calls?limit=500");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let request = client.get(format!("{base}{path}")).bearer_auth(api_key);
            let page = answer(request, &format!("GET {path}")).await?;
            calls.extend(page["calls"].as_array().into_iter().flatten().cloned());
            cursor = page["next"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        if done(&calls) || Instant::now() >= deadline {
            return Ok(calls);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
