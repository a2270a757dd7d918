//! The schema's migrations, embedded in the binary.
//!
//! Listed here rather than embedded by `sqlx::migrate!`: that macro needs sqlx's `macros`
//! feature, which builds both database drivers a second time for the compiler, SQLite's C
//! source included (about a fifth of a clean build). The test below holds this list to the
//! `migrations/` folder exactly as sqlx's own resolver reads it (versions, descriptions,
//! checksums), so a database migrated by either agrees, and a new file cannot be forgotten.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

macro_rules! embed {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../../migrations/", $file)))),*]
    };
}

/// `(file name, SQL)`, in order.
const FILES: &[(&str, &str)] = embed![
    "0001_spine.sql",
    "0002_sessions_and_leases.sql",
    "0003_calls.sql",
    "0004_call_lifecycle_and_attribution.sql",
    "0005_outbound_webhooks.sql",
    "0006_conversions_and_outcomes.sql",
    "0007_reports.sql",
    "0008_ga4_client_id.sql",
    "0009_alerts.sql",
    "0010_dashboard_sessions.sql",
    "0011_call_path_lookups_and_claims.sql",
    "0012_shared_work.sql",
    "0013_tenant_call_isolation.sql",
    "0014_number_quarantine.sql",
    "0015_outbound_errors_as_status_lines.sql",
    "0016_api_key_names.sql",
    "0017_caller_erasures.sql",
];

pub(super) static MIGRATOR: LazyLock<Migrator> =
    LazyLock::new(|| Migrator::with_migrations(FILES.iter().map(migration).collect()));

/// A migration as sqlx reads `<version>_<description>.sql` from a folder.
fn migration(&(file, sql): &(&str, &'static str)) -> Migration {
    let (version, rest) = file
        .split_once('_')
        .expect("migration files are named <version>_<description>.sql");
    let version = version.parse().expect("a migration's version is a number");
    let description = rest.trim_end_matches(".sql").replace('_', " ");
    Migration::new(
        version,
        Cow::Owned(description),
        MigrationType::Simple,
        AssertSqlSafe(sql).into_sql_str(),
        sql.starts_with("-- no-transaction"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_migrations_are_the_folder_as_sqlx_reads_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let from_folder = sqlx::migrate::resolve_blocking(&dir).expect("migrations folder");
        let shape = |m: &Migration| {
            (
                m.version,
                m.description.to_string(),
                m.migration_type,
                m.checksum.to_vec(),
                m.no_tx,
            )
        };
        let embedded: Vec<_> = MIGRATOR.iter().map(shape).collect();
        let folder: Vec<_> = from_folder.iter().map(|(m, _)| shape(m)).collect();
        assert_eq!(embedded, folder);
    }
}
