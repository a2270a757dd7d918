//! `/health` reports each component; `/health/ping` says only that the process answers.
//!
//! `/health` answers 200 even when a component is down: calls still route from memory when the
//! database or Redis is out, so a load balancer must not pull every instance because of them.
//! Use `/health/ping` for liveness and read `status` (`ok` / `degraded`) for alerting.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::geo::GeoStatus;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// A worker that panicked this recently makes `/health` degraded.
const RECENT_PANIC: Duration = Duration::from_secs(600);
/// A call that waits this long for attribution means attribution is not keeping up.
const ATTRIBUTION_STUCK: Duration = Duration::from_secs(300);

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every configured component works, else `degraded`.
    pub status: &'static str,
    pub version: &'static str,
    pub components: Components,
}

#[derive(Serialize, ToSchema)]
pub struct Components {
    pub database: Component,
    pub lease_store: Component,
    pub geo: Component,
    /// Call routing: the routes held in memory and the call events waiting in the spool.
    pub telephony: Component,
    /// Calls waiting for attribution (every instance's), and how long the oldest has waited:
    /// an error when it has waited longer than `ATTRIBUTION_STUCK`.
    pub attribution: Component,
    /// The background workers: an error when one panicked (and was started again) within
    /// `RECENT_PANIC`, or stopped.
    pub workers: Component,
    /// The shards of shared background work (alerts, session recovery, rollups) this instance
    /// holds, among how many live instances: an error when it cannot renew its leases.
    pub shared_work: Component,
}

#[derive(Serialize, ToSchema)]
pub struct Component {
    /// `ok`, `error`, or `disabled` (not configured).
    pub status: &'static str,
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

async fn timed<E: std::fmt::Display>(
    backend: &str,
    check: impl std::future::Future<Output = Result<(), E>>,
) -> Component {
    let start = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, check).await;
    let latency_ms = Some((start.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0);
    let (status, message) = match outcome {
        Ok(Ok(())) => ("ok", None),
        Ok(Err(e)) => ("error", Some(e.to_string())),
        Err(_) => ("error", Some(format!("no answer within {CHECK_TIMEOUT:?}"))),
    };
    Component {
        status,
        backend: backend.to_owned(),
        latency_ms,
        message,
    }
}

#[utoipa::path(tag = "operations", responses((status = 200, description = "Each component's state; 200 even when one is down (read `status`)", body = Health)))]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (database, lease_store) = tokio::join!(
        timed(state.storage.backend().as_str(), async {
            state.storage.ping().await.map_err(|e| {
                // The database error's own text can include host names; keep it short.
                format!(
                    "{e}: {}",
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                )
            })
        }),
        timed(state.leases.backend_name(), state.leases.ping()),
    );
    // Page views written behind the request wait in the ledger while the database is away.
    let mut database = database;
    let ledger = state.dni.ledger().stats();
    let held = ledger.pending.load(std::sync::atomic::Ordering::Relaxed);
    let dropped: u64 = ledger.dropped().iter().map(|(_, n)| n).sum();
    if held > 0 || dropped > 0 {
        let note = format!(
            "the ledger holds {held} rows for the database; {dropped} given up since start"
        );
        database.message = Some(match database.message.take() {
            Some(m) => format!("{m}; {note}"),
            None => note,
        });
    }
    let geo = match state.geo.status() {
        GeoStatus::Disabled => Component {
            status: "disabled",
            backend: "maxmind".into(),
            latency_ms: None,
            message: Some("SWITCHBOARD_GEOIP_DB is not set; visitor cities are unknown".into()),
        },
        GeoStatus::Ready { database_type } => Component {
            status: "ok",
            backend: database_type.clone(),
            latency_ms: None,
            message: None,
        },
        GeoStatus::Broken { reason } => Component {
            status: "error",
            backend: "maxmind".into(),
            latency_ms: None,
            message: Some(reason.clone()),
        },
    };
    let telephony = match state.calls.pending_events().await {
        Ok(waiting) => Component {
            // Events waiting while the database answers are merely in flight.
            status: if waiting > 0 && database.status == "error" {
                "error"
            } else {
                "ok"
            },
            backend: "spool".into(),
            latency_ms: None,
            message: Some(format!(
                "{} numbers routed from memory; {waiting} call events waiting for the database",
                state.routes.len()
            )),
        },
        Err(e) => Component {
            status: "error",
            backend: "spool".into(),
            latency_ms: None,
            message: Some(format!("the call spool cannot be read: {e}")),
        },
    };
    let attribution =
        match tokio::time::timeout(CHECK_TIMEOUT, state.storage.attribution_backlog()).await {
            Ok(Ok((waiting, oldest))) => {
                let waited_s = oldest.map_or(0, |at| (state.clock.now_ms() - at).max(0) / 1000);
                Component {
                    status: if waited_s as u64 > ATTRIBUTION_STUCK.as_secs() {
                        "error"
                    } else {
                        "ok"
                    },
                    backend: "calls".into(),
                    latency_ms: None,
                    message: Some(format!(
                        "{waiting} calls waiting for attribution; the oldest for {waited_s} s"
                    )),
                }
            }
            // The database's own component says why.
            _ => Component {
                status: "error",
                backend: "calls".into(),
                latency_ms: None,
                message: Some("the attribution backlog cannot be read".into()),
            },
        };
    let workers = {
        let all = state.supervisor.workers();
        let mut troubles = Vec::new();
        let mut bad = false;
        for (name, w) in &all {
            if w.stopped {
                bad = true;
                troubles.push(format!("{name} stopped"));
            }
            if let Some((at, message)) = &w.last_panic {
                bad |= at.elapsed() < RECENT_PANIC;
                troubles.push(format!(
                    "{name} restarted {} times, last {} s ago: {message}",
                    w.restarts,
                    at.elapsed().as_secs()
                ));
            }
        }
        Component {
            status: if bad { "error" } else { "ok" },
            backend: "supervisor".into(),
            latency_ms: None,
            message: Some(if troubles.is_empty() {
                format!("{} background workers running, none restarted", all.len())
            } else {
                format!("{} background workers; {}", all.len(), troubles.join("; "))
            }),
        }
    };
    let shared_work = {
        let status = state.work.status();
        let held: Vec<String> = status
            .held
            .iter()
            .map(|(job, held, all)| format!("{job} {held}/{all}"))
            .collect();
        Component {
            status: if status.current { "ok" } else { "error" },
            backend: "work_leases".into(),
            latency_ms: None,
            message: Some(if status.current {
                format!(
                    "instance {} of {} live holds {}",
                    status.instance,
                    status.instances,
                    held.join(", ")
                )
            } else {
                format!(
                    "instance {} cannot renew its leases (is the database down?); \
                     it does no shared background work until it can",
                    status.instance
                )
            }),
        }
    };
    let all_ok = [
        &database,
        &lease_store,
        &geo,
        &telephony,
        &attribution,
        &workers,
        &shared_work,
    ]
    .iter()
    .all(|c| c.status != "error");
    HttpResponse::Ok().json(Health {
        status: if all_ok { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        components: Components {
            database,
            lease_store,
            geo,
            telephony,
            attribution,
            workers,
            shared_work,
        },
    })
}

#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "`pong`: the process answers", content_type = "text/plain", body = String))
)]
#[get("/health/ping")]
pub async fn ping() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("pong")
}
