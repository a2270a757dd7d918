//! The HTTP surface: routes, extractors, and the error shape.

mod account;
mod alerts;
pub mod auth;
mod calls;
mod dashboard;
mod dni;
pub mod error;
mod exports;
pub(crate) mod formats;
mod health;
pub mod json;
mod keys;
mod live;
mod methods;
mod metrics;
pub mod openapi;
mod pools;
mod properties;
mod reports;
pub mod request_log;
pub mod session;
pub mod snippet;
mod telephony;
mod webhooks;

use std::sync::Arc;

use actix_web::web;
use utoipa_actix_web::service_config::ServiceConfig;

pub use methods::{fallback, head_as_get};
pub use metrics::Metrics;

use crate::config::Settings;
use crate::dni::lease_store::LeaseStore;
use crate::geo::Geo;
use crate::storage::Storage;
use crate::time::SharedClock;

/// Everything a handler may use. Cheap to clone (all shared).
pub struct AppState {
    pub dni: Arc<crate::dni::service::Dni>,
    pub routes: Arc<crate::telephony::routing::RoutingTable>,
    pub credentials: Arc<crate::telephony::credentials::CredentialsTable>,
    pub calls: Arc<crate::telephony::recorder::CallRecorder>,
    pub attributor: Arc<crate::attribution::Attributor>,
    pub settings: Arc<Settings>,
    pub storage: Storage,
    pub leases: Arc<LeaseStore>,
    pub geo: Arc<Geo>,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// Outbound webhooks: `webhooks.enqueue(...)` queues an event for the account's endpoints.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Report rollups: rebuilt in the background, and for the days a report reads.
    pub rollups: Arc<crate::reports::Rollups>,
    /// Alert rules: evaluated in the background (`alerts.evaluate_now()` runs a pass at once).
    pub alerts: Arc<crate::alerts::Alerts>,
    /// Calls as they happen, for `GET /v1/properties/{id}/live` and the dashboard.
    pub live: Arc<crate::live::LiveHub>,
    /// Configuration changes, applied here and announced to the other instances.
    pub changes: Arc<crate::changes::ChangeBus>,
    /// The background workers, watched (restarted after a panic).
    pub supervisor: Arc<crate::supervise::Supervisor>,
    /// Which shards of the shared background work this instance holds.
    pub work: Arc<crate::work::SharedWork>,
}

/// Every route of the service. Each handler is registered and documented in one call (its
/// `#[utoipa::path]` is required to register it), so `/openapi.json`, the `Allow` header of a
/// 405 and HEAD handling (`methods`) all follow this one table.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health::health)
        .service(health::ping)
        .service(metrics::metrics)
        .service(openapi::openapi_json)
        .service(properties::create_property)
        .service(properties::list_properties)
        .service(properties::get_property)
        .service(properties::update_property)
        .service(pools::create_pool)
        .service(pools::list_pools)
        .service(pools::get_pool)
        .service(pools::list_numbers)
        .service(pools::add_numbers)
        .service(pools::retire_number)
        .service(pools::pool_health)
        .service(dni::session)
        .service(dni::preflight)
        .service(snippet::latest)
        .service(snippet::pinned)
        .service(telephony::twilio_voice)
        .service(telephony::twilio_status)
        .service(telephony::twilio_dial)
        .service(telephony::twilio_recording)
        .service(telephony::twilio_whisper)
        .service(telephony::generic_call)
        .service(account::get_telephony)
        .service(account::put_telephony)
        .service(account::rotate_calls_secret)
        .service(keys::create_key)
        .service(keys::list_keys)
        .service(keys::revoke_key)
        .service(calls::list_calls)
        .service(calls::get_call)
        .service(calls::update_call)
        .service(calls::add_conversion)
        .service(calls::undo_conversion)
        .service(calls::add_conversion_by_caller)
        .service(calls::erase_caller)
        .service(exports::google_ads)
        .service(webhooks::create_webhook)
        .service(webhooks::list_webhooks)
        .service(webhooks::delete_webhook)
        .service(webhooks::list_deliveries)
        .service(reports::attribution_report)
        .service(reports::service_report)
        .service(reports::upload_costs)
        .service(reports::list_costs)
        .service(reports::get_cost_settings)
        .service(reports::put_cost_settings)
        .service(alerts::get_alerts)
        .service(alerts::put_alerts)
        .service(live::live_feed)
        .service(dashboard::page)
        .service(dashboard::sign_in)
        .service(dashboard::sign_out)
        .service(dashboard::asset);
}

/// The routes on a plain actix `ServiceConfig` (what `App::configure` hands over).
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes(&mut ServiceConfig::new(cfg));
}

pub use metrics::track as track_metrics;

use crate::changes::Change;

impl AppState {
    /// A pool or its numbers changed: leases, page views and call routes follow at once, on
    /// every instance. `property_id`: a new pool's property (no cache holds the pool yet).
    pub async fn numbers_changed(&self, property_id: Option<&str>, pool_id: &str) {
        self.dni.pool_changed(pool_id).await;
        let mut changes = vec![Change::Routes, Change::Pool(pool_id.to_owned())];
        changes.extend(property_id.map(|id| Change::Property(id.to_owned())));
        self.changes.announce(&changes).await;
    }

    /// An account's telephony credentials changed: every instance verifies with the new ones.
    pub async fn credentials_changed(&self) {
        self.changes.announce(&[Change::Credentials]).await;
    }
}
