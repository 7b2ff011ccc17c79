//! The storage seam: one SQL store over PostgreSQL (production) or SQLite
//! (embedded default), through sqlx's `Any` driver.
//!
//! The queries are written once in the SQL both engines share (`$n`
//! parameters, `ON CONFLICT`, `RETURNING`). The one place they differ is the
//! outbox claim, where PostgreSQL uses `FOR UPDATE SKIP LOCKED` so several API
//! replicas can relay at once without publishing the same row twice.

use std::path::Path;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use self::dead_letters::{DeadLetter, DeadLetterRow, Replay};
pub use self::jobs::{Applied, Cancelled, JobRow, JobStatus};
use self::jobs::{JOB_COLUMNS, insert_event, job_from_row};
pub(crate) use self::jobs::{insert_answered_job_tx, insert_job_tx};
pub use self::keys::KeyRow;
pub use self::models::ModelRow;
use self::outbox::insert_outbox;
pub use self::outbox::{CONTROL_DESTINATION, OutboxBatch, OutboxRow, jobs_destination};

pub mod column;
mod dead_letters;
mod jobs;
mod keys;
mod migrations;
mod models;
mod outbox;
mod settle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An optimistic update (read, then write only if nothing changed)
    /// lost to concurrent changes every time it was tried.
    #[error("{what} kept changing under {attempts} attempts to update it")]
    Contended { what: String, attempts: u32 },
    /// A new job would take its key past its quota of jobs in flight; found
    /// inside the writing transaction, which wrote nothing.
    #[error("this key has {in_flight} pricing jobs queued or running and asks for more; the quota is {quota}")]
    OverQuota { in_flight: i64, quota: i64 },
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Database(sqlx::Error::Migrate(Box::new(e)))
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    engine: Engine,
}

impl Store {
    /// Connects to a `postgres://` or `sqlite://` URL and runs the engine's
    /// migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") { Engine::Sqlite } else { Engine::Postgres };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        let store = Self { pool, engine };
        match engine {
            Engine::Postgres => migrations::postgres().run(&store.pool).await?,
            Engine::Sqlite => {
                // WAL lets readers run while the relay or result consumer writes.
                sqlx::query("PRAGMA journal_mode = WAL").execute(&store.pool).await?;
                migrations::sqlite().run(&store.pool).await?;
            }
        }
        Ok(store)
    }

    /// Whether the database at `url` holds a farm's tables, creating and
    /// changing nothing. The commands that read an existing farm (`farm
    /// orders audit`, `farm keys list` and `revoke`) ask first, so a wrong
    /// database URL is refused instead of answered from a new, empty farm.
    pub async fn holds_a_farm(url: &str) -> Result<bool, StoreError> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(url).await?;
        let applied = sqlx::query("SELECT 1 FROM _sqlx_migrations LIMIT 1").fetch_optional(&mut connection).await;
        let _ = connection.close().await;
        Ok(matches!(applied, Ok(Some(_))))
    }

    /// The embedded database file inside `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("farm.db").display())
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), waiting up to the busy timeout for it: a
    /// deferred transaction that read first and then writes fails at once
    /// with "database is locked" when another connection wrote in between,
    /// because SQLite cannot wait on that upgrade.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.pool.begin().await,
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
