//! The routing table: tracking number → where its calls go, held in memory so a call is
//! answered without the database. Loaded at start, refreshed in the background, and kept as
//! it is while the database cannot be reached (a stale route rings through; no route does not).
//!
//! Every refresh that changes the table also writes it to a snapshot file on local disk
//! (`<spool_dir>/routes.json`), atomically, so that an instance (re)started while the database is
//! down still routes calls: at start, when the database cannot be read, the table comes from the
//! snapshot.
//!
//! Other instances change routes too: each change is announced (see `crate::changes`) and
//! every instance refreshes on the message, within a second; the periodic refresh is the safety
//! net. A number the table does not know is looked up in the database before the caller hears
//! "not in service" (see [`MissLookups`]). Refreshes carry a generation, so one that started
//! earlier never installs its older table over a newer one.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::misses::MissLookups;
use crate::domain::CallSettings;
use crate::storage::{RouteRow, Storage};

pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The snapshot's file name, in the spool folder (this instance's own local disk).
pub const SNAPSHOT_FILE: &str = "routes.json";

type Table = Arc<HashMap<String, RouteRow>>;

#[derive(Default)]
pub struct RoutingTable {
    routes: RwLock<Installed>,
    /// Refreshes started so far; each refresh's generation is its number in this count.
    started: AtomicU64,
    /// Routes found in the database after a miss, with the count of refreshes started when
    /// they were found: a table from a refresh started later has them (or knows they are gone).
    learned: RwLock<HashMap<String, (RouteRow, u64)>>,
    misses: MissLookups,
    /// Where the snapshot is kept (none: not kept), and the table it holds now. Writes are
    /// serialised by this lock and always write the table as it is when the write starts, so
    /// the file never ends behind the table.
    snapshot: Option<tokio::sync::Mutex<Snapshot>>,
}

#[derive(Default)]
struct Installed {
    table: Table,
    /// The generation of the refresh that loaded `table` (0: none yet).
    generation: u64,
}

struct Snapshot {
    path: PathBuf,
    written: Table,
}

impl RoutingTable {
    /// A table that keeps its snapshot at `path`.
    pub fn with_snapshot(path: PathBuf) -> Self {
        Self {
            snapshot: Some(tokio::sync::Mutex::new(Snapshot {
                path,
                written: Table::default(),
            })),
            ..Self::default()
        }
    }

    /// The route of a number, from memory only.
    pub fn route(&self, number: &str) -> Option<RouteRow> {
        if let Some(route) = self.routes.read().expect("lock").table.get(number) {
            return Some(route.clone());
        }
        let learned = self.learned.read().expect("lock");
        learned.get(number).map(|(route, _)| route.clone())
    }

    /// The route of a number: from memory, else from the database (a number added through
    /// another instance a moment ago), else none.
    pub async fn resolve(&self, number: &str, storage: &Storage) -> Option<RouteRow> {
        if let Some(route) = self.route(number) {
            return Some(route);
        }
        let route = self
            .misses
            .ask("route", number, storage.route_of(number))
            .await?;
        let started = self.started.load(Ordering::SeqCst);
        tracing::info!(
            number = %route.number,
            "a route not yet in this instance's table was found in the database"
        );
        self.learned
            .write()
            .expect("lock")
            .insert(number.to_owned(), (route.clone(), started));
        Some(route)
    }

    pub fn len(&self) -> usize {
        self.routes.read().expect("lock").table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table at start: from the database when it can be read (`database_reachable` says
    /// whether it answered at all), else from the snapshot the last process left.
    pub async fn load(&self, storage: &Storage, database_reachable: bool) {
        if database_reachable && self.refresh(storage).await {
            return;
        }
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let mut snapshot = snapshot.lock().await;
        match read_snapshot(&snapshot.path) {
            Ok(Some(table)) => {
                let table = Arc::new(table);
                tracing::warn!(
                    path = %snapshot.path.display(),
                    routes = table.len(),
                    "the database cannot be read: routing calls from the last snapshot"
                );
                self.routes.write().expect("lock").table = table.clone();
                snapshot.written = table;
            }
            Ok(None) => tracing::warn!(
                path = %snapshot.path.display(),
                "the database cannot be read and there is no routing snapshot: no call routes until it can"
            ),
            Err(e) => tracing::error!(
                path = %snapshot.path.display(),
                error = %e,
                "the database cannot be read and the routing snapshot is unreadable: no call routes until it can"
            ),
        }
    }

    /// Reloads every route; on a database error the table keeps what it had. A changed table
    /// is written to the snapshot (a failed write is logged; the table in memory still serves).
    /// A refresh that finishes after a later-started one installs nothing.
    pub async fn refresh(&self, storage: &Storage) -> bool {
        let generation = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        match storage.routes().await {
            Ok(rows) => {
                let table = rows.into_iter().map(|r| (r.number.clone(), r)).collect();
                if self.install(generation, table) {
                    self.save_snapshot().await;
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = ?e, routes = self.len(), "routing table not refreshed; keeping the last one");
                false
            }
        }
    }

    /// Installs the table a refresh read, unless a refresh started later installed its own
    /// already. Whether the table changed.
    fn install(&self, generation: u64, table: HashMap<String, RouteRow>) -> bool {
        let mut current = self.routes.write().expect("lock");
        if current.generation > generation {
            return false;
        }
        current.generation = generation;
        // Routes learned before this refresh started are in its table (or gone from it).
        self.learned
            .write()
            .expect("lock")
            .retain(|_, (_, learned_at)| *learned_at >= generation);
        self.misses.forget();
        let changed = *current.table != table;
        if changed {
            current.table = Arc::new(table);
        }
        changed
    }

    /// Writes the table as it is now, unless the snapshot already holds it.
    async fn save_snapshot(&self) {
        let Some(snapshot) = &self.snapshot else {
            return;
        };
        let mut snapshot = snapshot.lock().await;
        let table = self.routes.read().expect("lock").table.clone();
        if Arc::ptr_eq(&table, &snapshot.written) || *table == *snapshot.written {
            return;
        }
        let path = snapshot.path.clone();
        let to_write = table.clone();
        let written = tokio::task::spawn_blocking(move || write_snapshot(&path, &to_write))
            .await
            .map_err(io::Error::other)
            .and_then(|r| r);
        match written {
            Ok(()) => snapshot.written = table,
            Err(e) => tracing::error!(
                path = %snapshot.path.display(),
                error = %e,
                "the routing snapshot could not be written; a restart with the database down would route from an older one"
            ),
        }
    }
}

/// The snapshot file's content. Its own shape (not `RouteRow`), so the file format changes only
/// on purpose.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    version: u32,
    routes: Vec<SnapshotRoute>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotRoute {
    number: String,
    account_id: String,
    property_id: String,
    pool_id: String,
    forward_to: String,
    /// Absent in snapshots written before per-property settings: the defaults then.
    #[serde(default)]
    settings: CallSettings,
}

const SNAPSHOT_VERSION: u32 = 1;

/// Replaces the snapshot so that a crash leaves the old or the new one whole: a temporary file
/// (mode 0600: it names customers' numbers) is written and synced, renamed over the snapshot,
/// and the folder is synced so the rename itself survives.
fn write_snapshot(path: &Path, table: &HashMap<String, RouteRow>) -> io::Result<()> {
    let mut routes: Vec<SnapshotRoute> = table
        .values()
        .map(|r| SnapshotRoute {
            number: r.number.clone(),
            account_id: r.account_id.clone(),
            property_id: r.property_id.clone(),
            pool_id: r.pool_id.clone(),
            forward_to: r.forward_to.clone(),
            settings: r.settings.clone(),
        })
        .collect();
    routes.sort_by(|a, b| a.number.cmp(&b.number));
    let content = serde_json::to_vec(&SnapshotFile {
        version: SNAPSHOT_VERSION,
        routes,
    })?;
    write_private_file(path, &content)
}

/// Replaces a small file of this instance's own (mode 0600) so that a crash leaves the old or
/// the new content whole.
pub(crate) fn write_private_file(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::private_files::create_private_dir(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        // Set on the open file, so a temporary file left by a crash is tightened too.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The snapshot's table, or `None` when there is none.
fn read_snapshot(path: &Path) -> io::Result<Option<HashMap<String, RouteRow>>> {
    let content = match std::fs::read(path) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file: SnapshotFile = serde_json::from_slice(&content)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if file.version != SNAPSHOT_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "snapshot version {} is not {SNAPSHOT_VERSION}",
                file.version
            ),
        ));
    }
    Ok(Some(
        file.routes
            .into_iter()
            .map(|r| {
                let row = RouteRow {
                    number: r.number,
                    account_id: r.account_id,
                    property_id: r.property_id,
                    pool_id: r.pool_id,
                    forward_to: r.forward_to,
                    settings: r.settings,
                };
                (row.number.clone(), row)
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewPool, NewProperty, PoolInput, PoolKind, PropertyInput};

    fn route(number: &str, forward_to: &str) -> RouteRow {
        RouteRow {
            number: number.into(),
            account_id: "acc".into(),
            property_id: "prop".into(),
            pool_id: "pool".into(),
            forward_to: forward_to.into(),
            settings: CallSettings::default(),
        }
    }

    fn table(rows: &[RouteRow]) -> HashMap<String, RouteRow> {
        rows.iter().map(|r| (r.number.clone(), r.clone())).collect()
    }

    #[test]
    fn an_older_refresh_never_replaces_a_newer_table_and_learned_routes_last_until_a_newer_one() {
        let routes = RoutingTable::default();
        let older = table(&[route("+14155550110", "+14155550101")]);
        let newer = table(&[route("+14155550110", "+14155550199")]);
        // Refresh 2 started after refresh 1 but finished first.
        assert!(routes.install(2, newer.clone()));
        assert!(!routes.install(1, older));
        assert_eq!(
            routes.route("+14155550110").unwrap().forward_to,
            "+14155550199"
        );

        // A route learned after refresh 2 (started count 2) outlives a refresh that started
        // before it was learned, and goes with the first one that started after.
        routes.learned.write().unwrap().insert(
            "+14155550111".into(),
            (route("+14155550111", "+14155550101"), 2),
        );
        assert!(!routes.install(2, newer.clone()));
        assert!(routes.route("+14155550111").is_some());
        routes.install(3, newer);
        assert!(routes.route("+14155550111").is_none(), "retired since");
    }

    #[test]
    fn a_snapshot_reads_back_the_table_it_was_written_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(SNAPSHOT_FILE);
        assert!(read_snapshot(&path).unwrap().is_none(), "none yet");

        let first = table(&[
            route("+14155550110", "+14155550101"),
            route("+14155550111", "+14155550101"),
        ]);
        write_snapshot(&path, &first).unwrap();
        assert_eq!(read_snapshot(&path).unwrap().unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only this user reads customers' numbers");

        // Replaced whole; no temporary file is left behind.
        let second = table(&[route("+14155550112", "+14155550199")]);
        write_snapshot(&path, &second).unwrap();
        assert_eq!(read_snapshot(&path).unwrap().unwrap(), second);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [SNAPSHOT_FILE]);

        // A damaged snapshot is an error, not an empty table.
        std::fs::write(&path, b"{\"version\":1,\"rou").unwrap();
        assert!(read_snapshot(&path).is_err());
    }

    #[tokio::test]
    async fn refreshes_keep_the_snapshot_and_a_start_without_the_database_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::migrated_sqlite_in(dir.path()).await;
        let path = dir.path().join("spool").join(SNAPSHOT_FILE);

        // An empty database: the refresh succeeds, nothing changed, nothing written.
        let routes = RoutingTable::with_snapshot(path.clone());
        routes.load(&storage, true).await;
        assert!(routes.is_empty());
        assert!(!path.exists());

        let account = storage.create_account("A", 0).await.unwrap().account;
        let property = NewProperty::parse(PropertyInput {
            name: "Acme",
            domains: &["acme.example".to_owned()],
            default_number: "+14155550100",
            forward_to: Some("+14155550101"),
            timezone: None,
            currency: None,
            call_settings: None,
        })
        .unwrap();
        let property = storage
            .create_property(&account.id, &property, 0)
            .await
            .unwrap();
        let pool = NewPool::parse(PoolInput {
            name: "Paid",
            kind: PoolKind::Session,
            matcher: None,
            lease_minutes: None,
            exhaustion: None,
            overflow_number: None,
            numbers: &["+14155550110".to_owned()],
            monthly_cost: None,
        })
        .unwrap();
        storage
            .create_pool(&account.id, &property.id, &pool, 0, 0)
            .await
            .unwrap();
        assert!(routes.refresh(&storage).await);
        let written = read_snapshot(&path).unwrap().unwrap();
        assert_eq!(written["+14155550110"].forward_to, "+14155550101");

        // A later instance whose database is down routes from the snapshot.
        storage.close().await;
        let restarted = RoutingTable::with_snapshot(path.clone());
        restarted.load(&storage, true).await;
        assert_eq!(
            restarted.route("+14155550110"),
            routes.route("+14155550110")
        );
        let unreachable = RoutingTable::with_snapshot(path);
        unreachable.load(&storage, false).await;
        assert_eq!(unreachable.len(), 1);
    }
}
