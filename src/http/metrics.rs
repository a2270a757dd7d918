//! Prometheus metrics: request counts and latencies per route, served at `/metrics`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, get, web};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use super::AppState;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Read from the database at each scrape (shared by every instance: any one's answer is
    /// the fleet's).
    attribution_waiting: IntGauge,
    attribution_oldest: Gauge,
    /// Shards of each shared background job this instance holds (`src/work.rs`).
    shared_work_shards: IntGaugeVec,
    /// The ledger's rows waiting for the database, and what it gave up past its bound.
    ledger_pending: IntGauge,
    ledger_dropped: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("switchboard".into()), None)
            .expect("static registry options are valid");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .expect("static metric options are valid");
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ],
            ),
            &["method", "route"],
        )
        .expect("static metric options are valid");
        let attribution_waiting = IntGauge::new(
            "attribution_backlog_calls",
            "Calls waiting for attribution (every instance's)",
        )
        .expect("static metric options are valid");
        let attribution_oldest = Gauge::new(
            "attribution_backlog_oldest_seconds",
            "How long the oldest call waiting for attribution has waited",
        )
        .expect("static metric options are valid");
        let shared_work_shards = IntGaugeVec::new(
            Opts::new(
                "shared_work_shards_held",
                "Shards of each shared background job this instance holds",
            ),
            &["job"],
        )
        .expect("static metric options are valid");
        registry
            .register(Box::new(shared_work_shards.clone()))
            .expect("registered once");
        let ledger_pending = IntGauge::new(
            "ledger_pending_rows",
            "Sessions, page views and leases this instance holds for the database",
        )
        .expect("static metric options are valid");
        // A gauge set from the ledger's own counter (Prometheus' counters only count up by
        // themselves); it never goes down within a process, as a counter.
        let ledger_dropped = IntGaugeVec::new(
            Opts::new(
                "ledger_dropped_rows_total",
                "Rows the ledger gave up past its bound, by kind (page_view, activity, essential)",
            ),
            &["kind"],
        )
        .expect("static metric options are valid");
        registry
            .register(Box::new(ledger_pending.clone()))
            .expect("registered once");
        registry
            .register(Box::new(ledger_dropped.clone()))
            .expect("registered once");
        registry
            .register(Box::new(attribution_waiting.clone()))
            .expect("registered once");
        registry
            .register(Box::new(attribution_oldest.clone()))
            .expect("registered once");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("registered once");
        Self {
            registry,
            requests,
            latency,
            attribution_waiting,
            attribution_oldest,
            shared_work_shards,
            ledger_pending,
            ledger_dropped,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }
}

/// Middleware: counts every request under its route pattern (never the raw path, whose ids
/// would explode the label set).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let registry = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let res = next.call(req).await?;
    if let Some(m) = registry {
        m.observe(
            &method,
            &route,
            res.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
    }
    Ok(res)
}

#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus' text exposition format", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // A database that does not answer leaves the last values (and costs the scrape 1 s).
    if let Ok(Ok((waiting, oldest))) = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        state.storage.attribution_backlog(),
    )
    .await
    {
        let now = state.clock.now_ms();
        state.metrics.attribution_waiting.set(waiting);
        state
            .metrics
            .attribution_oldest
            .set(oldest.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0));
    }
    for (job, held, _) in state.work.status().held {
        state
            .metrics
            .shared_work_shards
            .with_label_values(&[job])
            .set(held as i64);
    }
    let ledger = state.dni.ledger().stats();
    state
        .metrics
        .ledger_pending
        .set(ledger.pending.load(std::sync::atomic::Ordering::Relaxed) as i64);
    for (kind, n) in ledger.dropped() {
        state
            .metrics
            .ledger_dropped
            .with_label_values(&[kind])
            .set(n as i64);
    }
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&state.metrics.registry().gather(), &mut buf) {
        tracing::error!(error = %e, "metrics encoding failed");
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(buf)
}
