//! The routing table: tracking number → where its calls go, held in memory so a call is
//! answered without the database. Loaded at start, refreshed in the background, and kept as
//! it is while the database cannot be reached (a stale route rings through; no route does not).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::storage::{RouteRow, Storage};

pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct RoutingTable {
    routes: RwLock<Arc<HashMap<String, RouteRow>>>,
}

impl RoutingTable {
    pub fn route(&self, number: &str) -> Option<RouteRow> {
        self.routes.read().expect("lock").get(number).cloned()
    }

    pub fn len(&self) -> usize {
        self.routes.read().expect("lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reloads every route; on a database error the table keeps what it had.
    pub async fn refresh(&self, storage: &Storage) -> bool {
        match storage.routes().await {
            Ok(rows) => {
                let table: HashMap<String, RouteRow> =
                    rows.into_iter().map(|r| (r.number.clone(), r)).collect();
                *self.routes.write().expect("lock") = Arc::new(table);
                true
            }
            Err(e) => {
                tracing::warn!(error = ?e, routes = self.len(), "routing table not refreshed; keeping the last one");
                false
            }
        }
    }
}
