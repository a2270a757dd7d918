//! Configuration changes reach every instance within a second. Each instance keeps pools,
//! routes and carrier credentials in memory (calls ring through without the database); a change
//! made through one instance is applied there at once, then announced over Redis pub/sub after
//! it is committed, and every other instance applies it when the message arrives. Messages are
//! coalesced: a burst of changes costs one refresh per table.
//!
//! The periodic reload stays as the safety net for a message lost while Redis was away, and it
//! is cheap: each announcement also counts a revision in the database (`config_revisions`), and
//! every `REFRESH_EVERY` an instance reads those counters (one small read) and reloads a table
//! only when its counter moved, or in any case every `FULL_RELOAD_EVERY` (a change whose
//! instance died between its commit and its announcement). A miss in a table asks the database
//! in the meantime.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::dni::service::Dni;
use crate::redis_client::RedisEndpoint;
use crate::relay::{Handler, Relay, TaskNames};
use crate::storage::Storage;
use crate::supervise::Supervisor;
use crate::telephony::credentials::CredentialsTable;
use crate::telephony::routing::RoutingTable;

/// The Redis pub/sub channel of configuration changes.
const CHANNEL: &str = "sb:changes";
/// The safety net reloads the tables whole at least this often, whatever the revisions say.
pub const FULL_RELOAD_EVERY: Duration = Duration::from_secs(300);
/// The revision counters' names in `config_revisions`.
const ROUTES_REVISION: &str = "routes";
const CREDENTIALS_REVISION: &str = "credentials";

/// What changed. On the wire, one line each: `routes`, `credentials`, `property <id>`,
/// `pool <id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// Numbers bought or retired, `forward_to` or call settings: the routing table.
    Routes,
    /// An account's carrier credentials.
    Credentials,
    /// A property's settings or pools: its cached configuration on the page-view path.
    Property(String),
    /// A pool's numbers: the cached configuration of the property that has it.
    Pool(String),
}

impl Change {
    fn encode(&self) -> String {
        match self {
            Change::Routes => "routes".to_owned(),
            Change::Credentials => "credentials".to_owned(),
            Change::Property(id) => format!("property {id}"),
            Change::Pool(id) => format!("pool {id}"),
        }
    }

    fn decode(line: &str) -> Option<Self> {
        match line.split_once(' ') {
            None if line == "routes" => Some(Change::Routes),
            None if line == "credentials" => Some(Change::Credentials),
            Some(("property", id)) if !id.is_empty() => Some(Change::Property(id.to_owned())),
            Some(("pool", id)) if !id.is_empty() => Some(Change::Pool(id.to_owned())),
            _ => None,
        }
    }
}

/// What an instance refreshes when told of changes.
pub struct Appliers {
    pub storage: Storage,
    pub routes: Arc<RoutingTable>,
    pub credentials: Arc<CredentialsTable>,
    pub dni: Arc<Dni>,
}

impl Appliers {
    async fn apply(&self, changes: &HashSet<Change>) {
        if changes.contains(&Change::Routes) {
            self.routes.refresh(&self.storage).await;
        }
        if changes.contains(&Change::Credentials) {
            self.credentials.refresh(&self.storage).await;
        }
        for change in changes {
            match change {
                Change::Property(id) => self.dni.property_changed(id),
                Change::Pool(id) => self.dni.pool_config_changed(id),
                Change::Routes | Change::Credentials => {}
            }
        }
    }
}

/// Changes heard from other instances, waiting for the applier task.
#[derive(Default)]
struct Inbox {
    changes: Mutex<HashSet<Change>>,
    notify: Notify,
}

/// The revisions the last safety-net check read, and when the tables were last reloaded whole.
struct Revisions {
    seen: Option<HashMap<String, i64>>,
    full_at: Instant,
}

impl Default for Revisions {
    fn default() -> Self {
        Self {
            seen: None,
            full_at: Instant::now(),
        }
    }
}

pub struct ChangeBus {
    appliers: Arc<Appliers>,
    relay: Option<Relay>,
    applier: Option<JoinHandle<()>>,
    revisions: tokio::sync::Mutex<Revisions>,
}

impl ChangeBus {
    /// Changes made here apply here only (one instance, or no Redis).
    pub fn local(appliers: Appliers) -> Self {
        Self {
            appliers: Arc::new(appliers),
            relay: None,
            applier: None,
            revisions: Default::default(),
        }
    }

    /// Changes made anywhere apply everywhere. Redis down is not an error here: the relay
    /// keeps trying in the background, and the periodic reload covers the gap.
    pub async fn with_redis(
        endpoint: &RedisEndpoint,
        appliers: Appliers,
        supervisor: &Arc<Supervisor>,
    ) -> Result<Self, redis::RedisError> {
        let appliers = Arc::new(appliers);
        let inbox = Arc::new(Inbox::default());
        let handler: Handler = {
            let inbox = inbox.clone();
            Arc::new(move |payload: &str| {
                let mut changes = inbox.changes.lock().expect("inbox lock");
                changes.extend(payload.lines().filter_map(Change::decode));
                drop(changes);
                inbox.notify.notify_one();
            })
        };
        let names = TaskNames {
            listener: "configuration changes relay listener",
            publisher: "configuration changes relay publisher",
        };
        let relay = Relay::start(endpoint, CHANNEL, handler, supervisor, names).await?;
        let applier = {
            let appliers = appliers.clone();
            supervisor.watch("configuration changes applier", move || {
                tokio::spawn(apply_heard(inbox.clone(), appliers.clone()))
            })
        };
        Ok(Self {
            appliers,
            relay: Some(relay),
            applier: Some(applier),
            revisions: Default::default(),
        })
    }

    /// Applies committed changes on this instance now, and tells the others.
    pub async fn announce(&self, changes: &[Change]) {
        let set: HashSet<Change> = changes.iter().cloned().collect();
        let revisions: Vec<&str> = [
            (Change::Routes, ROUTES_REVISION),
            (Change::Credentials, CREDENTIALS_REVISION),
        ]
        .into_iter()
        .filter(|(change, _)| set.contains(change))
        .map(|(_, name)| name)
        .collect();
        if !revisions.is_empty()
            && let Err(e) = self
                .appliers
                .storage
                .bump_config_revisions(&revisions)
                .await
        {
            tracing::warn!(error = %e, "a change's revision was not counted; other instances \
                reload it whole within FULL_RELOAD_EVERY if its announcement is lost too");
        }
        self.appliers.apply(&set).await;
        if let Some(relay) = &self.relay {
            let message: Vec<String> = changes.iter().map(Change::encode).collect();
            if !relay.send(&message.join("\n")) {
                tracing::warn!(
                    ?changes,
                    "a change could not be announced; other instances see it at their next reload"
                );
            }
        }
    }

    /// The safety net, run every `REFRESH_EVERY`: reloads the tables whose revision moved since
    /// the last check (all of them every `FULL_RELOAD_EVERY`). With the database away, the tables
    /// stay as they are. Returns what was reloaded.
    pub async fn reload_if_changed(&self) -> Vec<Change> {
        let mut revisions = self.revisions.lock().await;
        // Read before reloading: a change committed meanwhile moves its counter again, and the
        // next check reloads once more rather than missing it.
        let current: HashMap<String, i64> = match self.appliers.storage.config_revisions().await {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                tracing::debug!(error = %e, "configuration revisions unreadable; tables kept");
                return Vec::new();
            }
        };
        let whole = revisions.full_at.elapsed() >= FULL_RELOAD_EVERY;
        let moved = |name: &str| {
            revisions
                .seen
                .as_ref()
                .is_none_or(|seen| seen.get(name) != current.get(name))
        };
        let mut reload = Vec::new();
        if whole || moved(ROUTES_REVISION) {
            reload.push(Change::Routes);
        }
        if whole || moved(CREDENTIALS_REVISION) {
            reload.push(Change::Credentials);
        }
        revisions.seen = Some(current);
        if whole {
            revisions.full_at = Instant::now();
        }
        self.appliers.apply(&reload.iter().cloned().collect()).await;
        reload
    }

    pub fn stop(&self) {
        if let Some(relay) = &self.relay {
            relay.stop();
        }
        if let Some(applier) = &self.applier {
            applier.abort();
        }
    }
}

/// Applies what other instances announce, as it arrives.
async fn apply_heard(inbox: Arc<Inbox>, appliers: Arc<Appliers>) {
    loop {
        inbox.notify.notified().await;
        // Everything heard so far, in one pass; what arrives meanwhile waits for the next (the
        // permit `notify_one` leaves wakes it at once).
        let changes = std::mem::take(&mut *inbox.changes.lock().expect("inbox lock"));
        if !changes.is_empty() {
            tracing::debug!(?changes, "applying changes made on another instance");
            appliers.apply(&changes).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_back_as_written_and_nonsense_is_ignored() {
        for change in [
            Change::Routes,
            Change::Credentials,
            Change::Property("p1".into()),
            Change::Pool("pool 2".into()),
        ] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        for nonsense in ["", "route", "property", "property ", "pools x", "routes x"] {
            assert_eq!(Change::decode(nonsense), None, "{nonsense:?}");
        }
    }
}
