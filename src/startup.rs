//! Building and running the service: `Application::build(settings)` wires every seam and binds
//! the listener (port 0 in tests), `run_until_stopped` serves until SIGINT/SIGTERM and then
//! finishes the requests in flight.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpMessage, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::alerts::Alerts;
use crate::attribution::Attributor;
use crate::changes::{Appliers, ChangeBus};
use crate::config::Settings;
use crate::dni::lease_store::LeaseStore;
use crate::dni::ledger::FLUSH_EVERY as LEDGER_FLUSH_EVERY;
use crate::dni::ledger::{Ledger, LedgerTask};
use crate::dni::recovery::{
    GRACE_MS as RECOVERY_GRACE_MS, LOOK_BACK_MS as RECOVERY_LOOK_BACK_MS, RECOVER_EVERY,
};
use crate::dni::service::Dni;
use crate::geo::Geo;
use crate::http::json::BodyLimit;
use crate::http::{self, AppState, Metrics};
use crate::live::LiveHub;
use crate::outbound::Outbound;
use crate::reports::Rollups;
use crate::sealing::Sealer;
use crate::storage::{PoolSettings, Storage, StorageError};
use crate::supervise::Supervisor;
use crate::telephony::credentials::{CredentialsTable, SNAPSHOT_FILE as CREDENTIALS_SNAPSHOT};
use crate::telephony::recorder::CallRecorder;
use crate::telephony::routing::{
    REFRESH_EVERY as ROUTES_REFRESH_EVERY, RoutingTable, SNAPSHOT_FILE as ROUTES_SNAPSHOT,
};
use crate::time::{Millis, SharedClock, SystemClock};
use crate::webhooks::Webhooks;
use crate::work::{SESSION_RECOVERY, SharedWork, shard_of};

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    ledger_task: LedgerTask,
    pruner: tokio::task::JoinHandle<()>,
    refresher: tokio::task::JoinHandle<()>,
    replayer: tokio::task::JoinHandle<()>,
    webhook_worker: tokio::task::JoinHandle<()>,
    rollup_worker: tokio::task::JoinHandle<()>,
    alert_worker: tokio::task::JoinHandle<()>,
    /// With a shared lease store: recovers sessions a dead instance never wrote.
    recoverer: Option<tokio::task::JoinHandle<()>>,
    /// Renews this instance's leases on shared background work.
    work_leases: tokio::task::JoinHandle<()>,
    /// Checks the schema once a database that was down at start answers.
    schema_check: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As `build`, with an injected clock (tests and the simulator drive time themselves).
    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        // A PostgreSQL server that is down does not stop the start: calls route from the last
        // routing snapshot, and the schema is checked once the database answers.
        let (storage, database_reachable) = Storage::connect_or_defer(
            settings.database_url.expose_secret(),
            &pool_settings(&settings),
        )
        .await
        .with_context(|| format!("connecting to {}", settings.database_url_redacted()))?;
        let sealer = Sealer::from_settings(&settings).context("SWITCHBOARD_SECRETS_KEY")?;
        let storage = storage.with_fingerprint_key(sealer.fingerprint_key());
        let schema_check = if database_reachable {
            check_schema(&storage, settings.migrate_on_start).await?;
            None
        } else {
            tracing::warn!(
                database = %settings.database_url_redacted(),
                "the database cannot be reached: starting without it (calls route from the \
                 routing snapshot); the schema is checked when it answers"
            );
            Some(tokio::spawn(check_schema_later(
                storage.clone(),
                settings.migrate_on_start,
            )))
        };
        let leases = match &settings.redis() {
            Some(redis) => LeaseStore::redis(redis).context("REDIS_URL")?,
            None => LeaseStore::in_process(),
        };
        leases.connect_early().await;
        let geo = match &settings.geoip_db {
            Some(path) => Geo::open(path),
            None => Geo::disabled(),
        };
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("binding SWITCHBOARD_BIND={}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let mut settings = settings;
        if !settings.public_url_configured {
            settings.public_url = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
        }
        tracing::info!(
            bind = %listener.local_addr()?,
            public_url = %settings.public_url,
            database = %settings.database_url_redacted(),
            lease_store = leases.backend_name(),
            geo = ?geo.status(),
            "switchboard starting"
        );
        let leases = Arc::new(leases);
        let geo = Arc::new(geo);
        let (ledger, ledger_task) = Ledger::start(storage.clone());
        let dni = Arc::new(Dni::new(
            storage.clone(),
            leases.clone(),
            ledger,
            geo.clone(),
            clock.clone(),
            crate::dni::service::DniLimits::of(&settings),
        ));
        // Every long-running worker is watched: a panic is logged, shown in /health, and the
        // worker started again.
        let supervisor = Arc::new(Supervisor::default());
        let pruner = {
            let dni = dni.clone();
            supervisor.watch("rate limiter pruner", move || {
                let dni = dni.clone();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(60));
                    loop {
                        every.tick().await;
                        dni.prune_limiter();
                    }
                })
            })
        };
        // Background work every instance would otherwise repeat is sharded between them.
        let work = Arc::new(SharedWork::new(
            storage.clone(),
            Duration::from_secs(settings.work_lease_secs),
        ));
        if let Err(e) = work.turn().await {
            tracing::warn!(error = %e, "shared background work waits for the database");
        }
        let work_leases = {
            let work = work.clone();
            supervisor.watch("shared work leases", move || work.start())
        };
        let recoverer = (leases.backend_name() == "redis").then(|| {
            let (dni, clock, work) = (dni.clone(), clock.clone(), work.clone());
            supervisor.watch("session recovery", move || {
                tokio::spawn(recover_lost_sessions(
                    dni.clone(),
                    clock.clone(),
                    work.clone(),
                ))
            })
        });
        // Calls are routed from memory: load the table now, then keep it fresh in the background.
        let routes = Arc::new(RoutingTable::with_snapshot(
            settings.spool_dir.join(ROUTES_SNAPSHOT),
        ));
        routes.load(&storage, database_reachable).await;
        let credentials = Arc::new(CredentialsTable::with_snapshot(
            settings.spool_dir.join(CREDENTIALS_SNAPSHOT),
            Arc::new(sealer),
        ));
        if database_reachable {
            seal_stored_credentials(&credentials, &storage).await;
        }
        credentials.load(&storage, database_reachable).await;
        // With Redis, live call events are relayed to every instance's subscribers, and
        // configuration changes reach every instance within a second.
        let live = Arc::new(match &settings.redis() {
            Some(redis) => LiveHub::with_redis(redis, &supervisor)
                .await
                .context("REDIS_URL")?,
            None => LiveHub::in_process(),
        });
        let appliers = Appliers {
            storage: storage.clone(),
            routes: routes.clone(),
            credentials: credentials.clone(),
            dni: dni.clone(),
        };
        let changes = Arc::new(match &settings.redis() {
            Some(redis) => ChangeBus::with_redis(redis, appliers, &supervisor)
                .await
                .context("REDIS_URL")?,
            None => ChangeBus::local(appliers),
        });
        let refresher = {
            let changes = changes.clone();
            supervisor.watch("routes and credentials reload", move || {
                let changes = changes.clone();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(ROUTES_REFRESH_EVERY);
                    every.tick().await;
                    loop {
                        every.tick().await;
                        changes.reload_if_changed().await;
                    }
                })
            })
        };
        let calls = Arc::new(
            CallRecorder::open(&settings.spool_dir, clock.clone(), live.clone()).with_context(
                || {
                    format!(
                        "opening the call spool in SWITCHBOARD_SPOOL_DIR={}",
                        settings.spool_dir.display()
                    )
                },
            )?,
        );
        // With a shared lease store, other instances' leases reach the ledger up to a flush
        // later: calls wait that long (twice over) before attribution.
        let settle_ms = if leases.backend_name() == "redis" {
            2 * LEDGER_FLUSH_EVERY.as_millis() as i64 + 500
        } else {
            0
        };
        let attributor = Arc::new(Attributor::new(
            storage.clone(),
            leases.clone(),
            dni.clone(),
            clock.clone(),
            settle_ms,
            live.clone(),
        ));

        let webhooks = Arc::new(
            Webhooks::new(
                storage.clone(),
                clock.clone(),
                Outbound::new(
                    settings.outbound_allow.clone(),
                    settings.outbound_proxy.as_ref(),
                )
                .context("building the outbound client")?,
            )
            .context("building the webhook client")?,
        );
        let webhook_worker = {
            let webhooks = webhooks.clone();
            supervisor.watch("webhook deliveries", move || webhooks.start())
        };
        let replayer = {
            let (calls, storage, attributor, webhooks) = (
                calls.clone(),
                storage.clone(),
                attributor.clone(),
                webhooks.clone(),
            );
            supervisor.watch("call replay and attribution", move || {
                calls.start(storage.clone(), attributor.clone(), webhooks.clone())
            })
        };
        let rollups = Arc::new(Rollups::new(storage.clone(), clock.clone()));
        let rollup_worker = {
            let rollups = rollups.clone();
            let work = work.clone();
            supervisor.watch("report rollups", move || rollups.start(work.clone()))
        };
        let alerts = Arc::new(Alerts::new(
            storage.clone(),
            dni.clone(),
            webhooks.clone(),
            clock.clone(),
        ));
        let alert_worker = {
            let (alerts, every) = (
                alerts.clone(),
                Duration::from_secs(settings.alert_interval_secs),
            );
            let work = work.clone();
            supervisor.watch("alerts", move || alerts.start(every, work.clone()))
        };
        let state = web::Data::new(AppState {
            dni,
            routes,
            credentials,
            calls,
            attributor,
            settings: Arc::new(settings),
            storage,
            leases,
            geo,
            clock,
            metrics: Metrics::new(),
            webhooks,
            rollups,
            alerts,
            live,
            changes,
            supervisor,
            work,
        });
        let server = serve(listener, state.clone())?;
        Ok(Self {
            port,
            server,
            state,
            ledger_task,
            pruner,
            refresher,
            replayer,
            webhook_worker,
            rollup_worker,
            alert_worker,
            recoverer,
            work_leases,
            schema_check,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that stops the server gracefully (as SIGTERM would).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // Live feeds never end by themselves: on SIGTERM they are closed, so that the graceful
        // stop waits for real requests only.
        let closer = {
            let live = self.state.live.clone();
            tokio::spawn(async move {
                stop_signal().await;
                live.close();
            })
        };
        let result = self.server.await;
        closer.abort();
        self.state.live.close();
        self.state.changes.stop();
        // In-flight requests are done: write what the ledger holds, then release the database.
        self.pruner.abort();
        self.refresher.abort();
        self.replayer.abort();
        // A delivery in flight keeps its claim; it expires and another pass sends the event again.
        self.webhook_worker.abort();
        // Rollups are rebuilt from the raw rows: a rebuild cut short is redone by the next one.
        self.rollup_worker.abort();
        // An alert's state change and its event are one transaction: a pass cut short is redone.
        self.alert_worker.abort();
        for task in self.schema_check.iter().chain(&self.recoverer) {
            task.abort();
        }
        // The others take this instance's shards at their next turn, not a lease's life later.
        self.work_leases.abort();
        self.state.work.release_all().await;
        if let Err(e) = self.state.calls.replay(&self.state.storage).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "calls stay in the spool for the next start"
            );
        }
        self.state.dni.ledger().flush().await;
        drop(self.state);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ledger_task.finish()).await;
        tracing::info!("switchboard stopped");
        result
    }
}

/// Seals the carrier secrets stored in clear (or under the previous key) at start; the other
/// instances reload them at their next periodic check (the clear values they hold are the same).
async fn seal_stored_credentials(credentials: &CredentialsTable, storage: &Storage) {
    match credentials.seal_stored(storage).await {
        Ok(0) => {}
        Ok(sealed) => {
            tracing::info!(
                sealed,
                "stored carrier secrets sealed under the current key"
            );
            if let Err(e) = storage.bump_config_revisions(&["credentials"]).await {
                tracing::warn!(error = ?e, "the credentials' revision was not counted");
            }
        }
        Err(e) => {
            tracing::warn!(error = ?e, "stored carrier secrets not sealed; retried at the next start")
        }
    }
}

/// Every `RECOVER_EVERY`, the sessions first held since the last look (up to `GRACE_MS` ago)
/// that the database lacks are written from the lease store (`dni::recovery`), in the buckets
/// of the shards this instance holds.
async fn recover_lost_sessions(dni: Arc<Dni>, clock: SharedClock, work: Arc<SharedWork>) {
    // Where each shard's last look ended. A shard newly held looks back `LOOK_BACK_MS`: its last
    // holder may have died before looking.
    let mut done_to: HashMap<u32, Millis> = HashMap::new();
    let mut every = tokio::time::interval(RECOVER_EVERY);
    loop {
        every.tick().await;
        let held = work.held(SESSION_RECOVERY);
        done_to.retain(|shard, _| held.contains(shard));
        if held.is_empty() {
            continue;
        }
        let now = clock.now_ms();
        let to = now - RECOVERY_GRACE_MS;
        let from: HashMap<u32, Millis> = held
            .iter()
            .map(|s| {
                (
                    *s,
                    done_to
                        .get(s)
                        .copied()
                        .unwrap_or(now - RECOVERY_LOOK_BACK_MS),
                )
            })
            .collect();
        let window = |bucket: &str| {
            let from = *from.get(&shard_of(SESSION_RECOVERY, bucket))?;
            (to > from).then_some((from, to))
        };
        match dni.recover_lost_sessions_in(window).await {
            Ok(_) => done_to.extend(held.iter().map(|s| (*s, to))),
            // The database or Redis is away: the same range is looked at again next time.
            Err(e) => tracing::debug!(error = format!("{e:#}"), "lost sessions not looked for"),
        }
    }
}

/// SIGINT or SIGTERM, the signals on which the server stops gracefully.
async fn stop_signal() {
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

pub async fn connect_storage(settings: &Settings) -> anyhow::Result<Storage> {
    Storage::connect(
        settings.database_url.expose_secret(),
        &pool_settings(settings),
    )
    .await
    .with_context(|| format!("connecting to {}", settings.database_url_redacted()))
}

fn pool_settings(settings: &Settings) -> PoolSettings {
    PoolSettings {
        max_connections: settings.database_max_connections,
        ..PoolSettings::default()
    }
}

/// Applies the migrations (`migrate`), or refuses a schema this build is ahead of.
async fn check_schema(storage: &Storage, migrate: bool) -> anyhow::Result<()> {
    if migrate {
        storage.migrate().await.context("applying migrations")?;
    } else {
        let pending = storage.pending_migrations().await?;
        anyhow::ensure!(
            pending == 0,
            "the database schema is {pending} migration(s) behind: run `switchboard migrate` \
             (or start with SWITCHBOARD_MIGRATE_ON_START=true)"
        );
    }
    Ok(())
}

/// The schema check of a start without the database, once it answers. A schema found behind
/// now cannot stop the start that already happened: it is logged as an error (calls keep
/// routing from memory, and what needs the database fails until `switchboard migrate` runs).
async fn check_schema_later(storage: Storage, migrate: bool) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Err(e) = storage.ping().await {
            tracing::debug!(error = %e, "the database still cannot be reached");
            continue;
        }
        match check_schema(&storage, migrate).await {
            Ok(()) => tracing::info!("the database answers; its schema is up to date"),
            Err(e)
                if e.downcast_ref::<StorageError>()
                    .is_some_and(StorageError::is_unreachable) =>
            {
                continue;
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "the database answers, but its schema cannot be used"
            ),
        }
        return;
    }
}

fn serve(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    let body_limit = web::Data::new(BodyLimit(state.settings.max_body_bytes));
    let shutdown = state.settings.shutdown_timeout_secs;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(body_limit.clone())
            .app_data(web::QueryConfig::default().error_handler(|err, _req| {
                http::error::ApiError::new(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("the query string is invalid: {err}"),
                )
                .into()
            }))
            .configure(http::configure)
            .default_service(web::to(http::fallback))
            // Innermost: HEAD is routed as GET before anything else sees the route.
            .wrap(from_fn(http::head_as_get))
            .wrap(from_fn(http::track_metrics))
            .wrap(from_fn(request_id_header))
            .wrap(TracingLogger::<http::request_log::RequestSpan>::new())
    })
    .listen(listener)?
    .shutdown_timeout(shutdown)
    .client_request_timeout(Duration::from_secs(10))
    .run();
    Ok(server)
}

/// Echoes the request id that `TracingLogger` put on the request's span, so a client can quote it.
async fn request_id_header(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut res = next.call(req).await?;
    if let Some(id) = id
        && let Ok(value) = HeaderValue::from_str(&id.to_string())
    {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}
