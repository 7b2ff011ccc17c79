//! The schema's migrations, embedded in the binary: one list per dialect,
//! handed to sqlx's migrator at start.
//!
//! sqlx's `migrate!` macro does the same at compile time, but it is a
//! proc-macro that links sqlx's PostgreSQL and SQLite drivers into the
//! compiler, so a cold build compiled both drivers, and the bundled SQLite's
//! C, twice. The list here is checked against sqlx's own reading of the
//! folders (the test below): same versions, descriptions and checksums, so a
//! database migrated by an earlier build is accepted as it is.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration file: its name (`<version>_<description>.sql`) and text.
type Embedded = (&'static str, &'static str);

/// Both dialects have the same files, one per schema change, each written
/// for its engine: one list of names embeds both folders.
macro_rules! embed {
    ($($file:literal),+ $(,)?) => {
        (
            &[$(($file, include_str!(concat!("../../migrations/postgres/", $file)))),+],
            &[$(($file, include_str!(concat!("../../migrations/sqlite/", $file)))),+],
        )
    };
}

const MIGRATIONS: (&[Embedded], &[Embedded]) = embed!(
    "0001_pricing.sql",
    "0002_job_farm.sql",
    "0003_orders.sql",
    "0004_trace_context.sql",
    "0005_crm_event_body.sql",
    "0006_model_owners.sql",
    "0007_model_analysis.sql",
    "0008_dead_letter_replays.sql",
    "0009_web_sessions.sql",
    "0010_order_list_facts.sql",
    "0011_webhooks.sql",
    "0012_quote_validity.sql",
    "0013_order_parts.sql",
    "0014_jobs_in_flight_by_key.sql",
);

/// The migrator for PostgreSQL's schema.
pub(super) fn postgres() -> Migrator {
    migrator(MIGRATIONS.0)
}

/// The migrator for SQLite's schema.
pub(super) fn sqlite() -> Migrator {
    migrator(MIGRATIONS.1)
}

fn migrator(files: &[Embedded]) -> Migrator {
    Migrator::with_migrations(files.iter().map(|&(name, sql)| migration(name, sql)).collect())
}

/// A file as sqlx's folder reader would make it: the version before the
/// first `_`, the rest without `.sql` and with spaces for underscores, and
/// no transaction when the text starts with `-- no-transaction`.
fn migration(name: &'static str, sql: &'static str) -> Migration {
    // The names are the constants above, so a malformed one is a bug the
    // test below catches, never input.
    let (version, rest) = name.split_once('_').expect("a migration file is named <version>_<description>.sql");
    let version: i64 = version.parse().expect("a migration file's name starts with its version");
    let description = rest.trim_end_matches(".sql").replace('_', " ");
    Migration::new(
        version,
        Cow::Owned(description),
        MigrationType::Simple,
        sql.into_sql_str(),
        sql.starts_with("-- no-transaction"),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// What sqlx's `Migrator::new` reads from `api/migrations/<dialect>`: the
    /// folder, not this file's list, is the schema's source of truth.
    async fn from_folder(dialect: &str) -> Migrator {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect);
        Migrator::new(folder).await.expect("the migrations folder reads")
    }

    fn facts(migrator: &Migrator) -> Vec<(i64, String, Vec<u8>, bool)> {
        migrator.iter().map(|m| (m.version, m.description.to_string(), m.checksum.to_vec(), m.no_tx)).collect()
    }

    #[tokio::test]
    async fn every_migration_file_is_embedded_as_sqlx_reads_it() {
        for (embedded, dialect) in [(postgres(), "postgres"), (sqlite(), "sqlite")] {
            let folder = facts(&from_folder(dialect).await);
            assert!(folder.len() >= 13, "{dialect}: {} migrations found", folder.len());
            // A file added to the folder but not to the list, or a list entry
            // whose text differs, fails here with the version that differs.
            assert_eq!(facts(&embedded), folder, "{dialect}: the embedded list and the folder differ");
        }
    }
}
