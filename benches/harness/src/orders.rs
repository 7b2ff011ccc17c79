//! The MES order API under load, at the size the planning documents project
//! (240,000 orders): the operators' list at a fixed request rate, served from
//! the cache and straight from the database, and many operators taking one
//! order at once.
//!
//! One run, on a database of its own:
//!
//! 1. **A fresh database.** Services: a new PostgreSQL database
//!    (`farm_bench_<uuid>`) on the server `FARM_DATABASE_URL` names, dropped
//!    at the end. Embedded: SQLite in the scratch directory. The first
//!    `farm keys create-operator` migrates it, as users do.
//! 2. **Seeding.** Orders go in with batched multi-row INSERTs, in the real
//!    schema and with a realistic mix: most are history (shipped, cancelled),
//!    the newest few percent are in flight, a few thousand of them approved
//!    for manufacturing. Each priced order carries a real quote document
//!    (from `farm quote`), since the database read pays for it. Then the
//!    tables are analysed and checkpointed, so neither autovacuum nor a
//!    checkpoint lands in the middle of a measurement.
//! 3. **The list from the cache.** A fresh `farm api` (or `farm serve`)
//!    rebuilds its cache from the database; once `/readyz` says the cache is
//!    ready, an open-loop generator requests the list at `rate` per second.
//!    Each request is due at `start + i / rate` and its latency runs from
//!    then, not from when it was sent: a stalled server cannot slow the
//!    generator down and hide its own stall (coordinated omission).
//! 4. **Take.** `takers` operators, each with a key and a connection of their
//!    own, take the newest approved order at the same instant. Exactly one
//!    must win, every other must get a 409 naming the winner, the database
//!    must hold exactly one start event, and the order must leave the list.
//!    A broken invariant is an error, never a figure.
//! 5. **The list from the database.** The same load against a fresh API with
//!    `FARM_OPERATOR_CACHE=false`, which reads every page from the database.
//! 6. **The list's SQL alone**, on one connection without HTTP, for scale.
//!
//! Each farm start gets a fresh queue prefix, and the Redis cache lives
//! under it, so a run never reads another run's cache; at the end the run
//! deletes the Redis keys of the namespaces that hold its own orders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Connection, Row};

use crate::farm::{Farm, FarmError, FarmOptions, Stack, mint_key};
use crate::stats::Summary;

mod writes;
pub use writes::{UnderWrites, WriteStats, WriteStep};

/// Settings of the order benchmark.
#[derive(Debug, Clone)]
pub struct OrdersBench {
    /// The `farm` binary.
    pub binary: PathBuf,
    /// `Embedded` (SQLite, in-process cache) or `Services` (PostgreSQL,
    /// Redis when `FARM_REDIS_URL` is set); worker counts are ignored.
    pub stack: Stack,
    /// Orders in the database before measuring.
    pub orders: usize,
    /// Requests per second to the operators' list.
    pub rate: f64,
    /// How long each load phase lasts.
    pub duration: Duration,
    /// The list's page size.
    pub limit: u32,
    /// Operators taking one order at once.
    pub takers: usize,
    /// Writes per second during the write-load phase (0: no such phase).
    pub write_rate: f64,
    /// The list rates of the write-load phase, one step each.
    pub ladder: Vec<f64>,
    /// The worker's niceness (`FarmOptions::worker_niceness`).
    pub worker_niceness: u8,
    /// A directory for the run's files.
    pub scratch: PathBuf,
}

/// What the order benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct OrdersReport {
    pub stack: Stack,
    /// The database engine and its version, e.g. `PostgreSQL 15.20`.
    pub engine: String,
    /// Where the API keeps the list cache: `Redis` or `in-process`.
    pub cache_backend: String,
    /// Orders in the database when measuring started.
    pub orders: usize,
    /// Orders per status, as the database counts them, most first.
    pub status_mix: Vec<StatusCount>,
    /// Seeding, analysing and checkpointing, seconds.
    pub seed_s: f64,
    /// From the API listening to its cache being ready (the rebuild of every
    /// order from the database), seconds.
    pub cache_ready_s: f64,
    /// Requests per second asked for.
    pub rate: f64,
    /// Each load phase, seconds (after the warm-up).
    pub duration_s: f64,
    /// Requests sent and not counted before each load phase, seconds.
    pub warmup_s: f64,
    pub limit: u32,
    /// The list with the cache on.
    pub from_cache: ListRun,
    /// The list with `FARM_OPERATOR_CACHE=false`: every page from the database.
    pub from_database: ListRun,
    /// The list's SQL run by the benchmark itself, one query at a time on
    /// one connection, without HTTP, ms.
    pub sql_alone: Summary,
    /// Database p50 ÷ cache p50.
    pub ratio_p50: f64,
    /// Database p99 ÷ cache p99.
    pub ratio_p99: f64,
    pub take: TakeReport,
    /// The list at a ladder of rates while orders arrive, are priced and are
    /// approved; none when `write_rate` is 0.
    pub under_writes: Option<UnderWrites>,
}

/// Orders in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    pub status: String,
    pub orders: i64,
}

/// One load phase of the operators' list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListRun {
    /// `cache` or `database`: what the phase meant to measure.
    pub mode: String,
    /// Requests sent (after the warm-up).
    pub requests: usize,
    /// Answers per second, from the first request's due time to the last answer.
    pub achieved_rate: f64,
    /// 200 answers, from each request's due time to its last byte, ms.
    pub latency: Summary,
    /// How late the generator itself started each request (its pacing and
    /// the runtime's wake-up), ms: part of `latency`.
    pub send_lag: Summary,
    /// Answers other than 200 with a page, and requests with no answer.
    pub errors: usize,
    /// 200 answers by the page's `served_from`.
    pub served_from: BTreeMap<String, usize>,
    /// Pages shorter than the page size asked for.
    pub short_pages: usize,
    /// How busy the machine's cores were during the phase, percent of all
    /// of them (none where it cannot be read): near 100, every process
    /// waits its turn for a core and the tail shows it.
    pub machine_busy_pct: Option<f64>,
}

/// Many operators taking one order at the same instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TakeReport {
    pub order_id: String,
    pub takers: usize,
    /// 200 answers: must be exactly one.
    pub winners: usize,
    /// The winning operator's name.
    pub winner: String,
    /// 409 answers naming the winner: must be all the others.
    pub conflicts: usize,
    /// Any other answer, by status (0: no answer at all).
    pub other: BTreeMap<u16, usize>,
    /// From the release to the winner's answer, ms.
    pub winner_ms: f64,
    /// From the release to the last answer, ms.
    pub all_answered_ms: f64,
    /// The losers' answers, from the release, ms.
    pub losers: Summary,
    /// `MANUFACTURING_STARTED` events of the order in the database: must be 1.
    pub start_events: i64,
    /// The order's status and assignee afterwards, as the API reads them.
    pub status_after: String,
    pub assignee_after: String,
    /// The order is gone from the first page of the operators' list.
    pub left_list: bool,
    /// Where that page came from.
    pub list_served_from: String,
}

/// The status operators work from.
const APPROVED: &str = "MANUFACTURING_APPROVED";
/// Requests sent before each load phase and not counted: connections open,
/// caches and prepared statements settle.
const WARMUP: Duration = Duration::from_secs(1);
/// Requests waiting for an answer at once; beyond it the generator queues
/// them, and the wait shows in their latency (measured from the due time).
const MAX_IN_FLIGHT: usize = 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the cache may take to rebuild from the database.
const CACHE_PATIENCE: Duration = Duration::from_secs(900);
/// The list's SQL alone: queries measured, after as many again unmeasured.
const SQL_QUERIES: usize = 2000;
/// Orders per INSERT: 27 parameters each stays under SQLite's 32,766.
const ORDER_BATCH: usize = 500;
/// INSERT batches per transaction.
const BATCHES_PER_COMMIT: usize = 20;
/// Distinct models, sellers and operators the seeded orders refer to.
const MODELS: u64 = 200;
const SELLERS: u64 = 40;
const OPERATORS: u64 = 12;
/// Key-minting processes at once.
const MINT_PARALLEL: usize = 4;
/// The newest orders, in percent, that are still in flight; the rest are history.
const RECENT_PERCENT: usize = 12;
/// The seeded orders span a year.
const SPAN_MS: i64 = 365 * 24 * 3600 * 1000;

pub async fn run(settings: &OrdersBench) -> Result<OrdersReport, FarmError> {
    validate(settings)?;
    sqlx::any::install_default_drivers();
    let target = Target::create(settings).await?;
    let outcome = measure(settings, &target).await;
    target.remove().await;
    outcome
}

fn validate(settings: &OrdersBench) -> Result<(), FarmError> {
    let invalid = |message: &str| FarmError::Start { what: "farm bench orders".into(), message: message.into() };
    if !(settings.rate.is_finite() && settings.rate > 0.0) {
        return Err(invalid("--rate must be a positive number of requests per second"));
    }
    if settings.duration.is_zero() {
        return Err(invalid("--seconds must be more than 0"));
    }
    // The API's own bounds (`MAX_PAGE` in api/src/text.rs).
    if settings.limit == 0 || settings.limit > 500 {
        return Err(invalid("--limit must be 1 to 500"));
    }
    if settings.takers == 0 {
        return Err(invalid("--takers must be at least 1"));
    }
    if settings.orders < 100 {
        return Err(invalid("--orders must be at least 100, so some are approved for manufacturing"));
    }
    if !(settings.write_rate.is_finite() && settings.write_rate >= 0.0) {
        return Err(invalid("--write-rate must be 0 (no write phase) or a positive number of writes per second"));
    }
    if settings.ladder.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(invalid("--ladder must list positive request rates"));
    }
    if settings.write_rate > 0.0 && settings.ladder.is_empty() {
        return Err(invalid("--ladder must list at least one rate when --write-rate is above 0"));
    }
    Ok(())
}

/// Seeding, the three measurements and the take, on a created database.
async fn measure(settings: &OrdersBench, target: &Target) -> Result<OrdersReport, FarmError> {
    // Minting the first key opens the database with the farm's own code,
    // which runs the migrations: the schema is the real one.
    let reader = mint_keys(settings, target, "operator", &["bench-lister".to_string()]).await?.remove(0);
    let names: Vec<String> = (1..=settings.takers).map(|n| format!("bench-taker-{n:02}")).collect();
    let takers = mint_keys(settings, target, "operator", &names).await?;
    let crm = mint_keys(settings, target, "crm", &["bench-crm".to_string()]).await?.remove(0);

    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .connect(target.url())
        .await
        .map_err(db_error("the benchmark's database connection"))?;
    let engine = engine_version(&pool, target).await?;
    let template = quote_template(&settings.binary, &settings.scratch)?;
    let plan = SeedPlan::new(settings.orders, now_ms(), &template);
    tracing::info!(orders = settings.orders, engine, "seeding");
    let seeded = seed(&pool, target, &plan).await;
    let outcome = match seeded {
        Ok(seeded) => {
            tracing::info!(seconds = seeded.seconds, "seeded");
            let measured = phases(settings, target, &pool, &reader, &takers, &crm).await;
            if let Some(redis) = redis_url().filter(|_| target.is_services()) {
                forget_cache(&redis, &seeded.probe).await;
            }
            measured.map(|m| OrdersReport {
                stack: settings.stack,
                engine,
                cache_backend: if target.is_services() && redis_url().is_some() { "Redis" } else { "in-process" }
                    .into(),
                orders: settings.orders,
                status_mix: seeded.mix,
                seed_s: seeded.seconds,
                cache_ready_s: m.cache_ready_s,
                rate: settings.rate,
                duration_s: settings.duration.as_secs_f64(),
                warmup_s: WARMUP.as_secs_f64(),
                limit: settings.limit,
                ratio_p50: m.from_database.latency.p50_ms / m.from_cache.latency.p50_ms,
                ratio_p99: m.from_database.latency.p99_ms / m.from_cache.latency.p99_ms,
                from_cache: m.from_cache,
                from_database: m.from_database,
                sql_alone: m.sql_alone,
                take: m.take,
                under_writes: m.under_writes,
            })
        }
        Err(e) => Err(e),
    };
    pool.close().await;
    outcome
}

/// What the farm phases measured.
#[derive(Debug)]
struct Measured {
    cache_ready_s: f64,
    from_cache: ListRun,
    take: TakeReport,
    from_database: ListRun,
    sql_alone: Summary,
    under_writes: Option<UnderWrites>,
}

async fn phases(
    settings: &OrdersBench,
    target: &Target,
    pool: &AnyPool,
    reader: &Operator,
    takers: &[Operator],
    crm: &Operator,
) -> Result<Measured, FarmError> {
    // The cache on, as in production: the list, then the take (whose
    // write-through must take the order off the cached list).
    let (farm, cache_ready) = start_farm(settings, target, &[]).await?;
    let intakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tracing::info!(seconds = cache_ready.as_secs_f64(), "the cache is ready; measuring the list from it");
    let with_cache = async {
        let from_cache = list_under_load(farm.base(), &reader.token, settings.rate, settings, "cache").await?;
        tracing::info!("racing {} operators for one order", takers.len());
        let take = take_race(farm.base(), reader, takers, settings.limit, pool).await?;
        let under_writes = under_writes(&farm, reader, crm, &intakes, pool, settings, "cache").await?;
        Ok::<_, FarmError>((from_cache, take, under_writes))
    }
    .await;
    if with_cache.is_err() {
        tracing::error!(logs = %farm.logs(), "the order benchmark failed");
    }
    farm.stop().await;
    let (from_cache, take, cache_under_writes) = with_cache?;

    // The cache off: the same API reads every page from the database. It
    // still builds its cache in the background; waiting for that keeps the
    // rebuild's work out of the measurement.
    let (farm, _) = start_farm(settings, target, &[("FARM_OPERATOR_CACHE", "false")]).await?;
    tracing::info!("measuring the list from the database");
    let with_database = async {
        let from_database = list_under_load(farm.base(), &reader.token, settings.rate, settings, "database").await?;
        let under_writes = under_writes(&farm, reader, crm, &intakes, pool, settings, "database").await?;
        Ok::<_, FarmError>((from_database, under_writes))
    }
    .await;
    if with_database.is_err() {
        tracing::error!(logs = %farm.logs(), "the order benchmark failed");
    }
    farm.stop().await;
    let (from_database, database_under_writes) = with_database?;
    let under_writes = cache_under_writes.zip(database_under_writes).map(|(cache, database)| UnderWrites {
        write_rate: settings.write_rate,
        worker_niceness: settings.worker_niceness,
        cache_holds: writes::holds(&cache),
        database_holds: writes::holds(&database),
        cache,
        database,
    });

    // With no farm running: the database's own share.
    let sql_alone = sql_alone(target.url(), settings.limit).await?;
    Ok(Measured { cache_ready_s: cache_ready.as_secs_f64(), from_cache, take, from_database, sql_alone, under_writes })
}

/// The write-load ladder on a running farm (none when `write_rate` is 0):
/// the farm's own seller key orders a small model it uploads first.
async fn under_writes(
    farm: &Farm,
    reader: &Operator,
    crm: &Operator,
    intakes: &Arc<std::sync::atomic::AtomicUsize>,
    pool: &AnyPool,
    settings: &OrdersBench,
    mode: &str,
) -> Result<Option<Vec<WriteStep>>, FarmError> {
    if settings.write_rate == 0.0 {
        return Ok(None);
    }
    let model = mesh::write_binary_stl(&mesh::cuboid([20.0, 20.0, 20.0]));
    let model_id = farm.upload(model).await?;
    let seller = Operator { name: "bench".into(), token: farm.token().to_string() };
    let writers = writes::Writers { seller, crm: crm.clone(), model_id, intakes: intakes.clone() };
    tracing::info!(mode, write_rate = settings.write_rate, "the list under writes");
    writes::ladder(farm.base(), reader, &writers, pool, settings, mode).await.map(Some)
}

// ---------------------------------------------------------------------------
// The database of the run

/// The database one run seeds and measures.
#[derive(Debug)]
enum Target {
    Postgres {
        /// The server's maintenance database, to create and drop ours from.
        admin_url: String,
        name: String,
        url: String,
        scratch: PathBuf,
    },
    Sqlite {
        data_dir: PathBuf,
        url: String,
    },
}

impl Target {
    async fn create(settings: &OrdersBench) -> Result<Self, FarmError> {
        match settings.stack {
            Stack::Embedded => {
                let data_dir = settings.scratch.join("orders");
                std::fs::create_dir_all(&data_dir).map_err(|e| FarmError::Start {
                    what: format!("the data directory {}", data_dir.display()),
                    message: e.to_string(),
                })?;
                // The file `farm serve --data-dir` opens (`Store::sqlite_url`).
                let url = format!("sqlite://{}?mode=rwc", data_dir.join("farm.db").display());
                Ok(Self::Sqlite { data_dir, url })
            }
            Stack::Services { .. } => {
                // Farm::start checks these too, but only after the seeding.
                for needed in ["FARM_AMQP_URL", "FARM_S3_ENDPOINT"] {
                    if std::env::var(needed).map_or(true, |v| v.is_empty()) {
                        return Err(FarmError::MissingService(needed));
                    }
                }
                let admin_url = std::env::var("FARM_DATABASE_URL")
                    .ok()
                    .filter(|url| url.starts_with("postgres"))
                    .ok_or(FarmError::MissingService("FARM_DATABASE_URL (PostgreSQL)"))?;
                let name = format!("farm_bench_{}", uuid::Uuid::new_v4().simple());
                let mut url = reqwest::Url::parse(&admin_url)
                    .map_err(|e| FarmError::Start { what: "FARM_DATABASE_URL".into(), message: e.to_string() })?;
                url.set_path(&format!("/{name}"));
                let mut admin = sqlx::AnyConnection::connect(&admin_url)
                    .await
                    .map_err(db_error("PostgreSQL at FARM_DATABASE_URL"))?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .map_err(db_error("CREATE DATABASE"))?;
                let _ = admin.close().await;
                tracing::info!(database = name, "created the benchmark's database");
                Ok(Self::Postgres { admin_url, name, url: url.to_string(), scratch: settings.scratch.clone() })
            }
        }
    }

    fn url(&self) -> &str {
        match self {
            Self::Postgres { url, .. } | Self::Sqlite { url, .. } => url,
        }
    }

    fn is_services(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// Settings for every farm process: our database, not the caller's.
    fn farm_env(&self) -> Vec<(String, String)> {
        match self {
            Self::Postgres { url, .. } => vec![("FARM_DATABASE_URL".into(), url.clone())],
            Self::Sqlite { .. } => Vec::new(),
        }
    }

    /// Where `farm keys` finds the store.
    fn store_args(&self) -> Vec<String> {
        match self {
            Self::Postgres { .. } => Vec::new(),
            Self::Sqlite { data_dir, .. } => vec!["--data-dir".into(), data_dir.to_string_lossy().into_owned()],
        }
    }

    fn data_dir(&self) -> PathBuf {
        match self {
            Self::Postgres { scratch, .. } => scratch.join("unused"),
            Self::Sqlite { data_dir, .. } => data_dir.clone(),
        }
    }

    /// Drops a PostgreSQL database (a seeded one is hundreds of MB); the
    /// SQLite file goes with the scratch directory.
    async fn remove(self) {
        let Self::Postgres { admin_url, name, .. } = self else { return };
        let dropped = async {
            let mut admin = sqlx::AnyConnection::connect(&admin_url).await?;
            // FORCE: a farm process killed after a failure may still hold a connection.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut admin)
                .await?;
            admin.close().await
        }
        .await;
        if let Err(e) = dropped {
            tracing::warn!(database = name, error = %e, "could not drop the benchmark's database");
        }
    }
}

fn db_error(what: &str) -> impl Fn(sqlx::Error) -> FarmError + '_ {
    move |e| FarmError::Start { what: what.to_string(), message: e.to_string() }
}

async fn engine_version(pool: &AnyPool, target: &Target) -> Result<String, FarmError> {
    let (name, sql) = if target.is_services() {
        ("PostgreSQL", "SELECT current_setting('server_version') AS v")
    } else {
        ("SQLite", "SELECT sqlite_version() AS v")
    };
    let row = sqlx::query(sql).fetch_one(pool).await.map_err(db_error("the database's version"))?;
    let version: String = row.try_get("v").map_err(db_error("the database's version"))?;
    Ok(format!("{name} {}", version.split_whitespace().next().unwrap_or_default()))
}

fn redis_url() -> Option<String> {
    std::env::var("FARM_REDIS_URL").ok().filter(|url| !url.is_empty())
}

/// A key's name and bearer token (an operator's, or the CRM's or a seller's).
#[derive(Debug, Clone)]
struct Operator {
    name: String,
    token: String,
}

/// Mints keys of `kind` (`operator`, `seller`, `crm`) with the farm's own
/// `farm keys create-<kind>`, a few processes at a time.
async fn mint_keys(
    settings: &OrdersBench,
    target: &Target,
    kind: &'static str,
    names: &[String],
) -> Result<Vec<Operator>, FarmError> {
    let mut operators = Vec::with_capacity(names.len());
    for chunk in names.chunks(MINT_PARALLEL) {
        let mut minting = Vec::new();
        for name in chunk {
            let (binary, name, stack) = (settings.binary.clone(), name.clone(), settings.stack);
            let (store_args, env) = (target.store_args(), target.farm_env());
            minting.push(tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = store_args.iter().map(String::as_str).collect();
                mint_key(&binary, stack, kind, &name, &args, &env).map(|token| Operator { name, token })
            }));
        }
        for task in minting {
            operators.push(task.await.map_err(join_error)??);
        }
    }
    Ok(operators)
}

fn join_error(e: tokio::task::JoinError) -> FarmError {
    FarmError::Start { what: "a benchmark task".into(), message: e.to_string() }
}

// ---------------------------------------------------------------------------
// Seeding

/// A seeded order's status, as the schema spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum SeedStatus {
    Created,
    Pricing,
    Priced,
    PricingFailed,
    Approved,
    Started,
    Completed,
    Shipped,
    Cancelled,
}

impl SeedStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Pricing => "PRICING",
            Self::Priced => "PRICED",
            Self::PricingFailed => "PRICING_FAILED",
            Self::Approved => APPROVED,
            Self::Started => "MANUFACTURING_STARTED",
            Self::Completed => "MANUFACTURING_COMPLETED",
            Self::Shipped => "SHIPPED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// The order's `version`: one per change on the way to this status
    /// (a cancelled order was priced first).
    fn version(self) -> i64 {
        match self {
            Self::Created => 1,
            Self::Pricing => 2,
            Self::Priced | Self::PricingFailed => 3,
            Self::Approved | Self::Cancelled => 4,
            Self::Started => 5,
            Self::Completed => 6,
            Self::Shipped => 7,
        }
    }

    /// How long after its creation the order reached this status, ms.
    fn reached_after_ms(self) -> i64 {
        const MINUTE: i64 = 60_000;
        match self {
            Self::Created => 0,
            Self::Pricing => 200,
            Self::Priced | Self::PricingFailed => 3_000,
            Self::Approved => 2 * 60 * MINUTE,
            Self::Cancelled => 6 * 60 * MINUTE,
            Self::Started => 24 * 60 * MINUTE,
            Self::Completed => 2 * 24 * 60 * MINUTE,
            Self::Shipped => 4 * 24 * 60 * MINUTE,
        }
    }

    fn priced(self) -> bool {
        !matches!(self, Self::Created | Self::Pricing | Self::PricingFailed)
    }

    fn taken(self) -> bool {
        matches!(self, Self::Started | Self::Completed | Self::Shipped)
    }

    /// The CRM approved (or cancelled) it.
    fn by_crm(self) -> bool {
        matches!(self, Self::Approved | Self::Started | Self::Completed | Self::Shipped | Self::Cancelled)
    }
}

/// The newest orders, per mille: in flight, a sixth approved and waiting
/// for an operator.
const RECENT_MIX: [(SeedStatus, u64); 9] = [
    (SeedStatus::Created, 10),
    (SeedStatus::Pricing, 40),
    (SeedStatus::Priced, 200),
    (SeedStatus::PricingFailed, 20),
    (SeedStatus::Approved, 170),
    (SeedStatus::Started, 80),
    (SeedStatus::Completed, 100),
    (SeedStatus::Shipped, 300),
    (SeedStatus::Cancelled, 80),
];

/// Older orders, per mille: history.
const HISTORY_MIX: [(SeedStatus, u64); 3] =
    [(SeedStatus::Shipped, 920), (SeedStatus::Cancelled, 60), (SeedStatus::PricingFailed, 20)];

/// A well-mixed 64-bit hash (splitmix64's finaliser): the seed is the same
/// mix on every run without a random-number crate.
fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The status of the `index`-th oldest of `orders` orders.
fn status_at(index: usize, orders: usize) -> SeedStatus {
    let recent = index >= orders - orders * RECENT_PERCENT / 100;
    let mix: &[(SeedStatus, u64)] = if recent { &RECENT_MIX } else { &HISTORY_MIX };
    let mut draw = mix64(index as u64) % 1000;
    for &(status, weight) in mix {
        if draw < weight {
            return status;
        }
        draw -= weight;
    }
    mix[0].0
}

/// A material, colour and quantity with its quote document and total.
#[derive(Debug, Clone)]
struct QuoteVariant {
    material: &'static str,
    colour: &'static str,
    quantity: i64,
    total: f64,
    document: String,
    /// What the list shows of the quote, stored beside it as the API does.
    facts: ListFacts,
}

/// The machine, size and print time of a quote (`api::orders::list_facts`).
#[derive(Debug, Clone, Default)]
struct ListFacts {
    machine: Option<String>,
    size_mm: Option<[f64; 3]>,
    print_time_s: Option<f64>,
}

impl ListFacts {
    fn of(quote: &Value) -> Self {
        let size = |i: usize| quote.pointer(&format!("/analysis/bounding_box/size/{i}")).and_then(Value::as_f64);
        Self {
            machine: quote.pointer("/machine/name").and_then(Value::as_str).map(str::to_string),
            size_mm: size(0).zip(size(1)).zip(size(2)).map(|((x, y), z)| [x, y, z]),
            print_time_s: quote["print_time_s"].as_f64(),
        }
    }
}

/// Quotes for a few materials and quantities, made from one real quote
/// document so each stored quote has the size and shape of a real one.
fn quote_variants(template: &Value) -> Vec<QuoteVariant> {
    const CHOICES: [(&str, &str, f64); 7] = [
        ("pla", "black", 1.0),
        ("pla", "white", 1.0),
        ("pla", "grey", 1.0),
        ("petg", "clear", 1.2),
        ("petg", "black", 1.2),
        ("abs", "black", 1.15),
        ("tpu", "black", 1.6),
    ];
    let base = template["total"].as_f64().unwrap_or(10.0).max(10.0);
    let mut variants = Vec::new();
    for (material, colour, factor) in CHOICES {
        for quantity in [1_i64, 2, 3, 5, 10] {
            let total = (base * factor * (1.0 + 0.8 * (quantity - 1) as f64) * 20.0).round() / 20.0;
            let mut document = template.clone();
            document["material"] = material.into();
            document["colour"] = colour.into();
            document["quantity"] = quantity.into();
            document["total"] = total.into();
            let facts = ListFacts::of(&document);
            variants.push(QuoteVariant { material, colour, quantity, total, document: document.to_string(), facts });
        }
    }
    variants
}

/// A real quote: `farm quote` on a generated 20 mm sphere.
fn quote_template(binary: &Path, scratch: &Path) -> Result<Value, FarmError> {
    let failed = |message: String| FarmError::Start { what: "farm quote".into(), message };
    let path = scratch.join("orders-bench-sphere.stl");
    std::fs::write(&path, mesh::write_binary_stl(&mesh::uv_sphere(10.0, 64, 32))).map_err(|e| failed(e.to_string()))?;
    let out = std::process::Command::new(binary)
        .args(["quote", &path.to_string_lossy(), "--format", "json"])
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(String::from_utf8_lossy(&out.stderr).into()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| failed(e.to_string()))
}

/// Everything one seeded order needs, by its index (0 is the oldest).
#[derive(Debug)]
struct SeedPlan {
    orders: usize,
    now_ms: i64,
    models: Vec<String>,
    quotes: Vec<QuoteVariant>,
}

/// One row of `orders`.
#[derive(Debug, Clone)]
struct SeedOrder {
    order_id: String,
    source: &'static str,
    seller: String,
    seller_key_id: Option<String>,
    customer: Option<String>,
    external_id: Option<String>,
    model_id: String,
    material: &'static str,
    colour: &'static str,
    quantity: i64,
    job_id: Option<String>,
    quote: Option<String>,
    facts: ListFacts,
    total: Option<f64>,
    currency: Option<&'static str>,
    status: SeedStatus,
    failure: Option<&'static str>,
    assignee: Option<String>,
    crm_version: Option<i64>,
    crm_event_at_ms: Option<i64>,
    created_at_ms: i64,
    updated_at_ms: i64,
    version: i64,
}

impl SeedPlan {
    fn new(orders: usize, now_ms: i64, template: &Value) -> Self {
        // Model ids are SHA-256 hex, like the farm's; unique per run, so the
        // rows never collide with another run's.
        let run = uuid::Uuid::new_v4().simple().to_string();
        let models = (0..MODELS)
            .map(|k| {
                use sha2::{Digest, Sha256};
                Sha256::digest(format!("bench-model-{run}-{k}")).iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect();
        Self { orders, now_ms, models, quotes: quote_variants(template) }
    }

    /// When the `index`-th order was created: evenly over the last year,
    /// with jitter, oldest first.
    fn created_at_ms(&self, index: usize) -> i64 {
        let step = SPAN_MS as f64 / self.orders as f64;
        let jitter = (mix64(index as u64 ^ 0x7133) % (step as u64).max(1)) as i64;
        (self.now_ms - SPAN_MS + (index as f64 * step) as i64 + jitter).min(self.now_ms - 1000)
    }

    fn order(&self, index: usize) -> SeedOrder {
        let status = status_at(index, self.orders);
        let h = mix64(index as u64 ^ 0x5eed_0bad_cafe);
        let created = self.created_at_ms(index);
        let queue = h % 10 < 3;
        let seller = (h >> 8) % SELLERS;
        let quote = &self.quotes[((h >> 40) % self.quotes.len() as u64) as usize];
        let priced = status.priced();
        SeedOrder {
            order_id: uuid_v7_at(created),
            source: if queue { "queue" } else { "api" },
            seller: format!("seller-{seller:02}"),
            seller_key_id: (!queue).then(|| format!("bench{seller:011}")),
            customer: ((h >> 16) % 10 < 6).then(|| format!("customer-{}", (h >> 20) % 50_000)),
            external_id: queue.then(|| format!("shop-{index}")),
            model_id: self.models[((h >> 32) % MODELS) as usize].clone(),
            material: quote.material,
            colour: quote.colour,
            quantity: quote.quantity,
            job_id: (status != SeedStatus::Created).then(|| uuid_v7_at(created + 5)),
            quote: priced.then(|| quote.document.clone()),
            facts: if priced { quote.facts.clone() } else { ListFacts::default() },
            total: priced.then_some(quote.total),
            currency: priced.then_some("EUR"),
            status,
            failure: (status == SeedStatus::PricingFailed).then_some("the model is not watertight: 14 boundary edges"),
            assignee: status.taken().then(|| format!("operator-{:02}", (h >> 48) % OPERATORS)),
            crm_version: status.by_crm().then_some(if status == SeedStatus::Cancelled { 2 } else { 1 }),
            crm_event_at_ms: status.by_crm().then_some(created + SeedStatus::Approved.reached_after_ms()),
            created_at_ms: created,
            updated_at_ms: (created + status.reached_after_ms()).min(self.now_ms),
            version: status.version(),
        }
    }
}

/// A UUIDv7 (the API's order id) for a moment, ms since the epoch.
fn uuid_v7_at(ms: i64) -> String {
    let ms = ms.max(0) as u64;
    let at = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, (ms % 1000) as u32 * 1_000_000);
    uuid::Uuid::new_v7(at).to_string()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What seeding left in the database.
#[derive(Debug)]
struct Seeded {
    mix: Vec<StatusCount>,
    /// The newest order: it is in every namespace of this run's cache.
    probe: String,
    seconds: f64,
}

async fn seed(pool: &AnyPool, target: &Target, plan: &SeedPlan) -> Result<Seeded, FarmError> {
    let started = Instant::now();
    let error = db_error("seeding the orders");
    let sql = format!(
        "INSERT INTO models (model_id, size_bytes, triangles, format, created_at_ms) {}",
        values_clause(plan.models.len(), &["$", "$", "$", "'binary'", "$"])
    );
    let mut models = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (k, id) in plan.models.iter().enumerate() {
        let triangles = 2_000 + (mix64(k as u64) % 400_000) as i64;
        models = models.bind(id.clone()).bind(84 + 50 * triangles).bind(triangles).bind(plan.now_ms - SPAN_MS - 1000);
    }
    models.execute(pool).await.map_err(&error)?;

    let mut probe = String::new();
    let mut tx = pool.begin().await.map_err(&error)?;
    for (batch, first) in (0..plan.orders).step_by(ORDER_BATCH).enumerate() {
        let rows: Vec<SeedOrder> = (first..(first + ORDER_BATCH).min(plan.orders)).map(|i| plan.order(i)).collect();
        if let Some(last) = rows.last() {
            probe.clone_from(&last.order_id);
        }
        insert_orders(&mut tx, &rows).await.map_err(&error)?;
        if (batch + 1).is_multiple_of(BATCHES_PER_COMMIT) {
            tx.commit().await.map_err(&error)?;
            tx = pool.begin().await.map_err(&error)?;
        }
    }
    tx.commit().await.map_err(&error)?;

    // Statistics for the planner, and the WAL written out, now rather than
    // by autovacuum or a checkpoint in the middle of a measurement.
    let upkeep: &[&'static str] = if target.is_services() {
        &["VACUUM (ANALYZE) models", "VACUUM (ANALYZE) orders", "VACUUM (ANALYZE) order_events", "CHECKPOINT"]
    } else {
        &["ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"]
    };
    for sql in upkeep {
        sqlx::raw_sql(*sql).execute(pool).await.map_err(db_error(sql))?;
    }

    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM orders GROUP BY status")
        .fetch_all(pool)
        .await
        .map_err(&error)?;
    let mut mix = rows
        .iter()
        .map(|r| Ok(StatusCount { status: r.try_get("status")?, orders: r.try_get("n")? }))
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(&error)?;
    mix.sort_by(|a, b| b.orders.cmp(&a.orders).then_with(|| a.status.cmp(&b.status)));
    Ok(Seeded { mix, probe, seconds: started.elapsed().as_secs_f64() })
}

/// One batch of orders, each with its `created` event, so the accounts
/// (`GET /v1/orders/stats`) add up: every order was received once.
async fn insert_orders(tx: &mut sqlx::Transaction<'_, Any>, rows: &[SeedOrder]) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO orders (order_id, source, seller, seller_key_id, customer, external_id, model_id, material, \
         colour, quantity, job_id, quote, total, currency, status, failure, assignee, crm_version, crm_event_at_ms, \
         created_at_ms, updated_at_ms, version, machine, size_x_mm, size_y_mm, size_z_mm, print_time_s) {}",
        values_clause(rows.len(), &{
            // sqlx 0.9's Any driver sends a `None::<f64>` as a float4 NULL
            // (`Null(Double) => Option::<f32>` in sqlx-core's any/arguments.rs),
            // which PostgreSQL refuses next to float8 values: an order without
            // a total is bound as -1 and stored as NULL.
            let mut pattern = ["$"; 27];
            for nullable in [12, 23, 24, 25, 26] {
                pattern[nullable] = "NULLIF($, -1)";
            }
            pattern
        })
    );
    let mut orders = sqlx::query(sqlx::AssertSqlSafe(sql));
    for o in rows {
        orders = orders
            .bind(o.order_id.clone())
            .bind(o.source)
            .bind(o.seller.clone())
            .bind(o.seller_key_id.clone())
            .bind(o.customer.clone())
            .bind(o.external_id.clone())
            .bind(o.model_id.clone())
            .bind(o.material)
            .bind(o.colour)
            .bind(o.quantity)
            .bind(o.job_id.clone())
            .bind(o.quote.clone())
            .bind(o.total.unwrap_or(-1.0))
            .bind(o.currency)
            .bind(o.status.as_str())
            .bind(o.failure)
            .bind(o.assignee.clone())
            .bind(o.crm_version)
            .bind(o.crm_event_at_ms)
            .bind(o.created_at_ms)
            .bind(o.updated_at_ms)
            .bind(o.version)
            .bind(o.facts.machine.clone())
            .bind(o.facts.size_mm.map_or(-1.0, |s| s[0]))
            .bind(o.facts.size_mm.map_or(-1.0, |s| s[1]))
            .bind(o.facts.size_mm.map_or(-1.0, |s| s[2]))
            .bind(o.facts.print_time_s.unwrap_or(-1.0));
    }
    orders.execute(&mut **tx).await?;
    let sql = format!(
        "INSERT INTO order_events (order_id, from_status, to_status, actor, at_ms) {}",
        values_clause(rows.len(), &["$", "NULL", "'CREATED'", "'intake'", "$"])
    );
    let mut events = sqlx::query(sqlx::AssertSqlSafe(sql));
    for o in rows {
        events = events.bind(o.order_id.clone()).bind(o.created_at_ms);
    }
    events.execute(&mut **tx).await?;
    Ok(())
}

/// `VALUES (…), (…)`: `rows` rows of `pattern`, in which each `$` becomes
/// the next numbered parameter and the rest is SQL as it stands. Numbered
/// parameters are the dialect both engines share (`api::Store` writes them
/// too); the Any driver's `QueryBuilder` writes `?`, which PostgreSQL refuses.
fn values_clause(rows: usize, pattern: &[&str]) -> String {
    let mut out = String::from("VALUES ");
    let mut n = 0;
    for row in 0..rows {
        out.push_str(if row == 0 { "(" } else { ", (" });
        for (column, item) in pattern.iter().enumerate() {
            if column > 0 {
                out.push_str(", ");
            }
            for c in item.chars() {
                if c == '$' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
        }
        out.push(')');
    }
    out
}

// ---------------------------------------------------------------------------
// The farm and the list under load

/// Starts a farm on the run's database and waits until its cache is ready;
/// the wait, from the API listening.
async fn start_farm(
    settings: &OrdersBench,
    target: &Target,
    extra: &[(&str, &str)],
) -> Result<(Farm, Duration), FarmError> {
    let mut env = target.farm_env();
    // The write-load phase's seller has hundreds of orders being priced at
    // once: this measures the list under writes, not the per-key quota.
    env.push(("FARM_QUOTA_JOBS_IN_FLIGHT".into(), "1000000".into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let options = FarmOptions {
        binary: settings.binary.clone(),
        stack: settings.stack,
        env,
        data_dir: target.data_dir(),
        worker_niceness: settings.worker_niceness,
    };
    let farm = Farm::start(&options).await?;
    let listening = Instant::now();
    match wait_for_cache(farm.base()).await {
        Ok(()) => Ok((farm, listening.elapsed())),
        Err(e) => {
            tracing::error!(logs = %farm.logs(), "the order cache never became ready");
            farm.stop().await;
            Err(e)
        }
    }
}

/// Polls `/readyz` until it reports the order cache ready.
async fn wait_for_cache(base: &str) -> Result<(), FarmError> {
    let client = http_client()?;
    let deadline = Instant::now() + CACHE_PATIENCE;
    loop {
        let (status, body) = get_json(&client, &format!("{base}/readyz"), None).await?;
        if body["checks"]["order_cache"] == "ok" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(FarmError::Http {
                what: format!("GET /readyz (the order cache not ready after {} s)", CACHE_PATIENCE.as_secs()),
                status,
                body: body.to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn http_client() -> Result<reqwest::Client, FarmError> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| FarmError::Unreachable(e.to_string()))
}

async fn get_json(client: &reqwest::Client, url: &str, token: Option<&str>) -> Result<(u16, Value), FarmError> {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| FarmError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response.json().await.map_err(|e| FarmError::Unreachable(e.to_string()))?;
    Ok((status, body))
}

fn list_url(base: &str, limit: u32) -> String {
    format!("{base}/v1/operator/orders?status={APPROVED}&limit={limit}")
}

/// One checked page, a warm-up, then `duration` at `rate`.
async fn list_under_load(
    base: &str,
    token: &str,
    rate: f64,
    settings: &OrdersBench,
    mode: &str,
) -> Result<ListRun, FarmError> {
    let url = list_url(base, settings.limit);
    let client = http_client()?;
    check_page(&client, &url, token, mode).await?;
    fixed_rate(&client, &url, token, rate, WARMUP).await?;
    let before = crate::cpu::CpuTimes::now();
    let samples = fixed_rate(&client, &url, token, rate, settings.duration).await?;
    let busy = before.zip(crate::cpu::CpuTimes::now()).and_then(|(b, a)| b.busy_percent_until(&a));
    let run = ListRun { machine_busy_pct: busy, ..ListRun::of(mode, &samples, settings.limit as usize) };
    tracing::info!(
        mode,
        p50_ms = run.latency.p50_ms,
        p99_ms = run.latency.p99_ms,
        errors = run.errors,
        machine_busy_pct = run.machine_busy_pct,
        "measured"
    );
    Ok(run)
}

/// The answer being timed must be the right one: approved orders, newest
/// first, from where the phase says.
async fn check_page(client: &reqwest::Client, url: &str, token: &str, mode: &str) -> Result<(), FarmError> {
    let (status, page) = get_json(client, url, Some(token)).await?;
    let orders = page["orders"].as_array().cloned().unwrap_or_default();
    let keys: Vec<(i64, &str)> = orders
        .iter()
        .map(|o| (o["created_at_ms"].as_i64().unwrap_or_default(), o["order_id"].as_str().unwrap_or_default()))
        .collect();
    let newest_first = keys.windows(2).all(|w| w[0] > w[1]);
    let all_approved = orders.iter().all(|o| o["status"] == APPROVED);
    if status != 200 || orders.is_empty() || !newest_first || !all_approved || page["served_from"] != mode {
        return Err(FarmError::Http {
            what: format!("GET {url} (expected approved orders, newest first, served from the {mode})"),
            status,
            body: page.to_string().chars().take(2000).collect(),
        });
    }
    Ok(())
}

/// One request of a load phase.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    /// When it was due, from the phase's start.
    due: Duration,
    /// How late the generator started it.
    lag: Duration,
    /// From its due time to the last byte of the answer.
    latency: Duration,
    answer: Answer,
}

#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// 200 with a page of this many orders.
    Page { served_from: String, orders: usize },
    /// Another status, or a 200 whose body is not a page.
    Status(u16),
    /// No answer: refused, reset or timed out.
    Failed,
}

/// The shape of the list's answer the generator reads: cheap to parse, the
/// orders themselves are skipped.
#[derive(Deserialize)]
struct PageShape {
    served_from: String,
    orders: Vec<serde::de::IgnoredAny>,
}

/// Requests in a phase of `duration` at `rate` per second.
fn planned_requests(rate: f64, duration: Duration) -> usize {
    ((rate * duration.as_secs_f64()).round() as usize).max(1)
}

/// When the `index`-th request is due, from the phase's start.
fn due_at(index: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate)
}

/// What every request of a phase shares.
#[derive(Debug)]
struct ListRequest {
    client: reqwest::Client,
    url: String,
    token: String,
}

/// An open-loop load: request `i` is sent at `start + i / rate` whatever the
/// earlier ones are doing. A pacing thread sleeps to each due time (a tokio
/// timer rounds to whole milliseconds, a thread's sleep is within tens of
/// microseconds) and hands the request to the runtime.
async fn fixed_rate(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    rate: f64,
    duration: Duration,
) -> Result<Vec<Sample>, FarmError> {
    let count = planned_requests(rate, duration);
    let runtime = tokio::runtime::Handle::current();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let request = Arc::new(ListRequest { client: client.clone(), url: url.to_string(), token: token.to_string() });
    let pacer = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        (0..count)
            .map(|i| {
                let due = due_at(i, rate);
                let wait = (start + due).saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                runtime.spawn(send_one(request.clone(), in_flight.clone(), start, due))
            })
            .collect::<Vec<_>>()
    });
    let mut samples = Vec::with_capacity(count);
    for task in pacer.await.map_err(join_error)? {
        samples.push(task.await.map_err(join_error)?);
    }
    Ok(samples)
}

async fn send_one(
    request: Arc<ListRequest>,
    in_flight: Arc<tokio::sync::Semaphore>,
    start: Instant,
    due: Duration,
) -> Sample {
    // The generator's own lateness: the pacer's sleep and the runtime's
    // wake-up. Waiting for a free slot below is the server's doing.
    let started = Instant::now();
    let _permit = in_flight.acquire_owned().await;
    let answer = match request.client.get(&request.url).bearer_auth(&request.token).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            response.bytes().await.map(|body| (status, body)).ok()
        }
        Err(_) => None,
    };
    // The clock stops at the last byte; parsing is the generator's cost.
    let answered = Instant::now();
    let answer = match answer {
        Some((200, body)) => match serde_json::from_slice::<PageShape>(&body) {
            Ok(page) => Answer::Page { served_from: page.served_from, orders: page.orders.len() },
            Err(_) => Answer::Status(200),
        },
        Some((status, _)) => Answer::Status(status),
        None => Answer::Failed,
    };
    let due_instant = start + due;
    Sample {
        due,
        lag: started.saturating_duration_since(due_instant),
        latency: answered.saturating_duration_since(due_instant),
        answer,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl ListRun {
    fn of(mode: &str, samples: &[Sample], limit: usize) -> Self {
        let mut latency = Vec::with_capacity(samples.len());
        let mut served_from = BTreeMap::new();
        let (mut errors, mut short_pages) = (0, 0);
        for sample in samples {
            match &sample.answer {
                Answer::Page { served_from: from, orders } => {
                    latency.push(ms(sample.latency));
                    *served_from.entry(from.clone()).or_insert(0) += 1;
                    short_pages += usize::from(*orders < limit);
                }
                Answer::Status(_) | Answer::Failed => errors += 1,
            }
        }
        let window = samples.iter().map(|s| s.due + s.latency).max().unwrap_or_default();
        let achieved_rate = if window.is_zero() { 0.0 } else { samples.len() as f64 / window.as_secs_f64() };
        Self {
            mode: mode.to_string(),
            requests: samples.len(),
            achieved_rate,
            latency: Summary::of(&latency),
            send_lag: Summary::of(&samples.iter().map(|s| ms(s.lag)).collect::<Vec<_>>()),
            errors,
            served_from,
            short_pages,
            machine_busy_pct: None,
        }
    }
}

/// The list's SQL alone, one query after another: the API's own
/// `Store::list_page` (a status filter, no cursor) on a store of one
/// connection, so what is measured is what the API runs.
async fn sql_alone(url: &str, limit: u32) -> Result<Summary, FarmError> {
    let error = |e: api::store::StoreError| FarmError::Start { what: "the list's SQL".into(), message: e.to_string() };
    let store = api::Store::connect(url, 1).await.map_err(error)?;
    let filter = api::orders::store::OrderFilter {
        status: Some(api::orders::status::OrderStatus::ManufacturingApproved),
        seller: None,
    };
    let mut times = Vec::with_capacity(SQL_QUERIES);
    for i in 0..2 * SQL_QUERIES {
        let started = Instant::now();
        let rows = store.list_page(&filter, None, i64::from(limit)).await.map_err(error)?;
        let elapsed = started.elapsed();
        if rows.is_empty() {
            return Err(FarmError::Start {
                what: "the list's SQL".into(),
                message: "no approved order was listed".into(),
            });
        }
        if i >= SQL_QUERIES {
            times.push(ms(elapsed));
        }
    }
    Ok(Summary::of(&times))
}

// ---------------------------------------------------------------------------
// Take

/// One operator's answer to the take.
#[derive(Debug)]
struct TakeAnswer {
    name: String,
    /// 0: no answer.
    status: u16,
    body: Value,
    answered: Instant,
}

/// The takers take the newest approved order at once; checks that exactly
/// one won, in the answers, the API and the database.
async fn take_race(
    base: &str,
    reader: &Operator,
    takers: &[Operator],
    limit: u32,
    pool: &AnyPool,
) -> Result<TakeReport, FarmError> {
    let client = http_client()?;
    let (_, page) = get_json(&client, &list_url(base, limit), Some(&reader.token)).await?;
    let Some(order_id) = page["orders"][0]["order_id"].as_str().map(str::to_string) else {
        return Err(FarmError::Http {
            what: "GET /v1/operator/orders (an approved order to take)".into(),
            status: 200,
            body: "no approved order: seed more with --orders".into(),
        });
    };
    let order_url = format!("{base}/v1/orders/{order_id}");

    // Everyone first opens a connection of their own and reads the order,
    // then waits; the race measures the take, not TCP set-up.
    let ready = Arc::new(tokio::sync::Barrier::new(takers.len() + 1));
    let (release, _) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(takers.len());
    for operator in takers.iter().cloned() {
        let (ready, mut released, order_url) = (ready.clone(), release.subscribe(), order_url.clone());
        tasks.push(tokio::spawn(async move {
            let client = http_client().ok();
            let warm = match &client {
                Some(client) => get_json(client, &order_url, Some(&operator.token)).await.ok(),
                None => None,
            };
            ready.wait().await;
            let _ = released.wait_for(|go| *go).await;
            let answer = match (client, warm) {
                (Some(client), Some((200, _))) => {
                    match client.post(format!("{order_url}/take")).bearer_auth(&operator.token).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            response.bytes().await.ok().map(|body| (status, body))
                        }
                        Err(_) => None,
                    }
                }
                _ => None,
            };
            let answered = Instant::now();
            let (status, body) = match answer {
                Some((status, body)) => (status, serde_json::from_slice(&body).unwrap_or(Value::Null)),
                None => (0, Value::Null),
            };
            TakeAnswer { name: operator.name, status, body, answered }
        }));
    }
    ready.wait().await;
    let released_at = Instant::now();
    let _ = release.send(true);
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.map_err(join_error)?);
    }

    let winners: Vec<&TakeAnswer> = answers.iter().filter(|a| a.status == 200).collect();
    let winner = winners.first().map(|w| w.name.clone()).unwrap_or_default();
    let mut other = BTreeMap::new();
    let (mut conflicts, mut losers) = (0, Vec::new());
    for answer in answers.iter().filter(|a| a.status != 200) {
        let names_winner = answer.body["error"]["details"]["assignee"] == winner.as_str()
            && answer.body["error"]["message"].as_str().is_some_and(|m| m.contains(&format!("taken by {winner}")));
        if answer.status == 409 && names_winner {
            conflicts += 1;
        } else {
            *other.entry(answer.status).or_insert(0) += 1;
        }
        losers.push(ms(answer.answered - released_at));
    }
    let last = answers.iter().map(|a| a.answered).max().unwrap_or(released_at);

    // What the order looks like now, to the API and in the database.
    let (_, after) = get_json(&client, &order_url, Some(&reader.token)).await?;
    let (_, page) = get_json(&client, &list_url(base, limit), Some(&reader.token)).await?;
    let listed =
        page["orders"].as_array().is_some_and(|orders| orders.iter().any(|o| o["order_id"] == order_id.as_str()));
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM order_events WHERE order_id = $1 AND to_status = 'MANUFACTURING_STARTED'",
    )
    .bind(&order_id)
    .fetch_one(pool)
    .await
    .map_err(db_error("the order's events"))?;
    let start_events: i64 = row.try_get("n").map_err(db_error("the order's events"))?;

    let report = TakeReport {
        order_id: order_id.clone(),
        takers: takers.len(),
        winners: winners.len(),
        winner: winner.clone(),
        conflicts,
        other,
        winner_ms: winners.first().map_or(f64::NAN, |w| ms(w.answered - released_at)),
        all_answered_ms: ms(last - released_at),
        losers: Summary::of(&losers),
        start_events,
        status_after: after["status"].as_str().unwrap_or_default().to_string(),
        assignee_after: after["assignee"].as_str().unwrap_or_default().to_string(),
        left_list: !listed,
        list_served_from: page["served_from"].as_str().unwrap_or_default().to_string(),
    };
    match take_invariant_broken(&report) {
        None => Ok(report),
        Some(broken) => Err(FarmError::Http {
            what: format!("{} operators taking order {order_id} at once", takers.len()),
            status: if report.winners == 1 { 409 } else { 200 },
            body: format!("{broken}; the whole result: {}", serde_json::to_string(&report).unwrap_or_default()),
        }),
    }
}

/// What is wrong with a take, if anything: exactly one winner, all others
/// told who won, one start in the database, and the order off the list.
fn take_invariant_broken(r: &TakeReport) -> Option<String> {
    if r.winners != 1 {
        return Some(format!("{} operators won; exactly one must", r.winners));
    }
    if r.conflicts != r.takers - 1 {
        return Some(format!(
            "{} of {} losers got a 409 naming the winner; the other answers: {:?}",
            r.conflicts,
            r.takers - 1,
            r.other
        ));
    }
    if r.status_after != "MANUFACTURING_STARTED" || r.assignee_after != r.winner {
        return Some(format!("the order is {} for `{}`, not started for the winner", r.status_after, r.assignee_after));
    }
    if r.start_events != 1 {
        return Some(format!("the database holds {} starts of the order", r.start_events));
    }
    if !r.left_list {
        return Some(format!("the order is still on the operators' list (served from {})", r.list_served_from));
    }
    None
}

// ---------------------------------------------------------------------------
// Redis

/// Deletes this run's cache from Redis: every namespace whose versions hash
/// holds the run's newest order (its id is a fresh UUID, so no other run's
/// namespace does). A failure only leaves memory behind: logged, not fatal.
async fn forget_cache(redis_url: &str, probe: &str) {
    let forgotten = async {
        let client = redis::Client::open(redis_url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let mut removed = 0;
        for versions in scan(&mut connection, "*:orders:versions").await? {
            let ours: bool = redis::cmd("HEXISTS").arg(&versions).arg(probe).query_async(&mut connection).await?;
            if !ours {
                continue;
            }
            let namespace = versions.trim_end_matches("versions");
            for keys in scan(&mut connection, &format!("{namespace}*")).await?.chunks(500) {
                redis::cmd("UNLINK").arg(keys).query_async::<()>(&mut connection).await?;
                removed += keys.len();
            }
        }
        Ok::<_, redis::RedisError>(removed)
    }
    .await;
    match forgotten {
        Ok(keys) => tracing::info!(keys, "deleted the run's order cache from Redis"),
        Err(e) => tracing::warn!(error = %e, "could not delete the run's order cache from Redis"),
    }
}

async fn scan(connection: &mut redis::aio::MultiplexedConnection, pattern: &str) -> redis::RedisResult<Vec<String>> {
    let (mut cursor, mut keys) = (0_u64, Vec::new());
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .cursor_arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key twice.
    keys.sort();
    keys.dedup();
    Ok(keys)
}

// ---------------------------------------------------------------------------
// The report

/// The goal of issue #6: p99 of the cached list at 1,000 req/s, ms.
const GOAL_P99_MS: f64 = 5.0;
/// The goal of issue #6: the database read ÷ the cached read.
const GOAL_RATIO: f64 = 10.0;

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

/// Markdown tables of a run: the setup, the list from the cache and from
/// the database side by side, the goals, and the take.
pub fn markdown(report: &OrdersReport) -> String {
    let r = report;
    // `Redis`, or `in-process` (embedded, or services without FARM_REDIS_URL).
    let cache = if r.cache_backend == "Redis" { "in Redis" } else { r.cache_backend.as_str() };
    let stack = match r.stack {
        Stack::Embedded => format!("embedded (`farm serve`, {}, list cache {cache})", r.engine),
        Stack::Services { .. } => format!("services (`farm api`, {}, list cache {cache})", r.engine),
    };
    let mix = r.status_mix.iter().map(|s| format!("{} {}", s.status, thousands(s.orders as usize))).collect::<Vec<_>>();
    let mut out = format!(
        "| setup | |\n|---|---|\n\
         | stack | {stack} |\n\
         | orders | {} (seeded in {:.1} s): {} |\n\
         | cache rebuilt from the database | ready {:.1} s after the API listened |\n\
         | load | `GET /v1/operator/orders?status={APPROVED}&limit={}`, open loop at {} req/s for {} s after {} s of \
         warm-up; latency from each request's due time to its last byte |\n\n",
        thousands(r.orders),
        r.seed_s,
        mix.join(", "),
        r.cache_ready_s,
        r.limit,
        thousands(r.rate.round() as usize),
        r.duration_s,
        r.warmup_s,
    );
    out.push_str(
        "| the list | requests | achieved req/s | p50 ms | p95 ms | p99 ms | max ms | errors | served from |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for (name, run) in
        [("from the cache", &r.from_cache), ("from the database (`FARM_OPERATOR_CACHE=false`)", &r.from_database)]
    {
        let served = run.served_from.iter().map(|(k, v)| format!("{k} {}", thousands(*v))).collect::<Vec<_>>();
        out.push_str(&format!(
            "| {name} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            thousands(run.requests),
            run.achieved_rate,
            run.latency.p50_ms,
            run.latency.p95_ms,
            run.latency.p99_ms,
            run.latency.max_ms,
            run.errors,
            served.join(", "),
        ));
    }
    let sql = &r.sql_alone;
    out.push_str(&format!(
        "| its SQL alone (one connection, one query at a time, no HTTP) | {} | – | {:.2} | {:.2} | {:.2} | {:.2} | 0 | – |\n\n",
        thousands(sql.count),
        sql.p50_ms,
        sql.p95_ms,
        sql.p99_ms,
        sql.max_ms,
    ));
    let lag = |run: &ListRun| format!("p99 {:.2} ms, max {:.2} ms", run.send_lag.p99_ms, run.send_lag.max_ms);
    out.push_str(&format!(
        "The generator itself started requests late by {} (cache phase) and {} (database phase), counted in the \
         latencies above; pages shorter than asked for: {} and {}.\n\n",
        lag(&r.from_cache),
        lag(&r.from_database),
        r.from_cache.short_pages,
        r.from_database.short_pages,
    ));
    let p99 = r.from_cache.latency.p99_ms;
    let rate = thousands(r.rate.round() as usize);
    out.push_str(&format!(
        "| goal | target | measured | |\n|---|---|---|---|\n\
         | p99 of the list from the cache at {rate} req/s | < {GOAL_P99_MS} ms | {p99:.2} ms | {} |\n\
         | the database's latency ÷ the cache's | ≥ {GOAL_RATIO}× | p50 {:.1}×, p99 {:.1}× | {} |\n\n",
        met(p99 < GOAL_P99_MS),
        r.ratio_p50,
        r.ratio_p99,
        met(r.ratio_p50 >= GOAL_RATIO && r.ratio_p99 >= GOAL_RATIO),
    ));
    let t = &r.take;
    let other = if t.other.is_empty() {
        "0".to_string()
    } else {
        t.other.iter().map(|(status, n)| format!("{n}× {status}")).collect::<Vec<_>>().join(", ")
    };
    out.push_str(&format!(
        "| take, all at once | operators | winners | 409 naming the winner | other answers | winner ms | \
         losers p50 / p99 ms | all answered ms |\n|---|--:|--:|--:|--:|--:|--:|--:|\n\
         | `POST /v1/orders/{{id}}/take` | {} | {} ({}) | {} | {} | {:.1} | {:.1} / {:.1} | {:.1} |\n\n\
         Afterwards the order is {} for {}, the database holds {} start event for it, and it is {} the first page \
         of the operators' list (served from the {}).\n",
        t.takers,
        t.winners,
        t.winner,
        t.conflicts,
        other,
        t.winner_ms,
        t.losers.p50_ms,
        t.losers.p99_ms,
        t.all_answered_ms,
        t.status_after,
        t.assignee_after,
        t.start_events,
        if t.left_list { "gone from" } else { "still on" },
        t.list_served_from,
    ));
    if let Some(under) = &r.under_writes {
        out.push('\n');
        out.push_str(&writes::markdown(under, r.limit));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_due_at_the_rate_and_cover_the_phase() {
        assert_eq!(planned_requests(1000.0, Duration::from_secs(10)), 10_000);
        assert_eq!(planned_requests(0.5, Duration::from_secs(3)), 2);
        assert_eq!(planned_requests(1000.0, Duration::from_micros(10)), 1, "a phase sends at least one request");
        assert_eq!(due_at(0, 1000.0), Duration::ZERO);
        assert_eq!(due_at(250, 1000.0), Duration::from_millis(250));
        assert_eq!(due_at(3, 4.0), Duration::from_millis(750));
    }

    fn sample(due_ms: u64, latency_ms: u64, answer: Answer) -> Sample {
        Sample {
            due: Duration::from_millis(due_ms),
            lag: Duration::from_micros(50),
            latency: Duration::from_millis(latency_ms),
            answer,
        }
    }

    #[test]
    fn a_run_times_pages_from_their_due_time_and_counts_the_rest_as_errors() {
        let page = |from: &str, orders| Answer::Page { served_from: from.into(), orders };
        let samples = [
            sample(0, 1, page("cache", 50)),
            sample(250, 3, page("cache", 50)),
            sample(500, 2, page("database", 10)),
            sample(750, 400, Answer::Status(500)),
            sample(999, 1, Answer::Failed),
        ];
        let run = ListRun::of("cache", &samples, 50);
        assert_eq!((run.requests, run.errors, run.short_pages), (5, 2, 1));
        assert_eq!(run.latency.count, 3, "errors are not in the latency");
        assert_eq!((run.latency.p50_ms, run.latency.max_ms), (2.0, 3.0));
        assert_eq!(run.served_from, BTreeMap::from([("cache".into(), 2), ("database".into(), 1)]));
        // Five answers by the last one at 750 + 400 ms.
        assert!((run.achieved_rate - 5.0 / 1.15).abs() < 1e-9, "{}", run.achieved_rate);
        assert!((run.send_lag.max_ms - 0.05).abs() < 1e-9);
    }

    #[test]
    fn the_seed_is_mostly_history_with_a_few_thousand_approved_among_the_newest() {
        let orders = 240_000;
        let mut counts: BTreeMap<SeedStatus, usize> = BTreeMap::new();
        let mut oldest_approved = orders;
        for index in 0..orders {
            let status = status_at(index, orders);
            *counts.entry(status).or_default() += 1;
            if status == SeedStatus::Approved {
                oldest_approved = oldest_approved.min(index);
            }
        }
        let approved = counts[&SeedStatus::Approved];
        assert!((4_000..6_000).contains(&approved), "{approved} approved");
        assert!(counts[&SeedStatus::Shipped] > orders * 3 / 4, "{counts:?}");
        assert_eq!(counts.len(), 9, "every status occurs: {counts:?}");
        assert!(oldest_approved >= orders * (100 - RECENT_PERCENT) / 100, "approved orders are recent");
    }

    #[test]
    fn seeded_orders_are_consistent_with_their_status() {
        let template = serde_json::json!({"total": 12.5, "currency": "EUR", "quantity": 1, "estimate": []});
        let plan = SeedPlan::new(1000, 1_800_000_000_000, &template);
        let mut previous = i64::MIN;
        for index in 0..1000 {
            let o = plan.order(index);
            assert!(o.created_at_ms >= previous && o.created_at_ms < plan.now_ms, "oldest first, in the past");
            previous = o.created_at_ms;
            assert!(o.updated_at_ms >= o.created_at_ms && o.updated_at_ms <= plan.now_ms);
            assert_eq!(o.quote.is_some(), o.status.priced(), "{:?}", o.status);
            assert_eq!(o.assignee.is_some(), o.status.taken(), "{:?}", o.status);
            assert_eq!(o.external_id.is_some(), o.source == "queue");
            if let (Some(quote), Some(total)) = (&o.quote, o.total) {
                let quote: Value = serde_json::from_str(quote).unwrap();
                assert_eq!((quote["total"].as_f64(), quote["quantity"].as_i64()), (Some(total), Some(o.quantity)));
            }
        }
    }

    fn report(cache_p99: f64, database_p50: f64) -> OrdersReport {
        let run = |mode: &str, p50_ms: f64, p99_ms: f64| ListRun {
            mode: mode.into(),
            requests: 10_000,
            achieved_rate: 999.7,
            latency: Summary { count: 10_000, p50_ms, p95_ms: p99_ms, p99_ms, max_ms: p99_ms * 2.0, mean_ms: p50_ms },
            send_lag: Summary::default(),
            errors: 0,
            served_from: BTreeMap::from([(mode.to_string(), 10_000)]),
            short_pages: 0,
            machine_busy_pct: Some(61.5),
        };
        let (from_cache, from_database) = (run("cache", 0.5, cache_p99), run("database", database_p50, 9.0));
        OrdersReport {
            stack: Stack::Services { fast_workers: 0, slow_workers: 0 },
            engine: "PostgreSQL 15.20".into(),
            cache_backend: "Redis".into(),
            orders: 240_000,
            status_mix: vec![StatusCount { status: "SHIPPED".into(), orders: 199_000 }],
            seed_s: 30.0,
            cache_ready_s: 12.0,
            rate: 1000.0,
            duration_s: 10.0,
            warmup_s: 1.0,
            limit: 50,
            ratio_p50: database_p50 / 0.5,
            ratio_p99: 9.0 / cache_p99,
            from_cache,
            from_database,
            sql_alone: Summary { count: 2000, p50_ms: 0.3, ..Summary::default() },
            take: TakeReport {
                order_id: "o-1".into(),
                takers: 50,
                winners: 1,
                winner: "bench-taker-07".into(),
                conflicts: 49,
                other: BTreeMap::new(),
                winner_ms: 4.0,
                all_answered_ms: 20.0,
                losers: Summary::default(),
                start_events: 1,
                status_after: "MANUFACTURING_STARTED".into(),
                assignee_after: "bench-taker-07".into(),
                left_list: true,
                list_served_from: "cache".into(),
            },
            under_writes: None,
        }
    }

    #[test]
    fn the_report_shows_both_lists_and_says_which_goal_is_missed() {
        let good = markdown(&report(0.9, 6.0));
        assert!(good.contains("| services (`farm api`, PostgreSQL 15.20, list cache in Redis) |"), "{good}");
        assert!(good.contains("| 240,000 (seeded in 30.0 s): SHIPPED 199,000 |"), "{good}");
        assert!(good.contains("| from the cache | 10,000 | 1000 | 0.50 | 0.90 | 0.90 | 1.80 | 0 | cache 10,000 |"));
        assert!(good.contains("| from the database (`FARM_OPERATOR_CACHE=false`) | 10,000 | 1000 | 6.00 |"));
        assert!(good.contains("| < 5 ms | 0.90 ms | met |"), "{good}");
        assert!(good.contains("| p50 12.0×, p99 10.0× | met |"), "{good}");
        assert!(good.contains("| 50 | 1 (bench-taker-07) | 49 | 0 |"), "{good}");

        let bad =
            markdown(&OrdersReport { stack: Stack::Embedded, cache_backend: "in-process".into(), ..report(6.0, 2.0) });
        assert!(bad.contains("| embedded (`farm serve`, PostgreSQL 15.20, list cache in-process) |"), "{bad}");
        assert!(bad.contains("| 6.00 ms | **not met** |"), "{bad}");
        assert!(bad.contains("| p50 4.0×, p99 1.5× | **not met** |"), "{bad}");
    }

    #[test]
    fn a_take_with_two_winners_or_a_silent_loser_is_broken() {
        let fine = report(1.0, 1.0).take;
        assert_eq!(take_invariant_broken(&fine), None);
        let two = TakeReport { winners: 2, conflicts: 48, ..fine.clone() };
        assert!(take_invariant_broken(&two).unwrap().contains("2 operators won"));
        let silent = TakeReport { conflicts: 48, other: BTreeMap::from([(500, 1)]), ..fine.clone() };
        assert!(take_invariant_broken(&silent).unwrap().contains("48 of 49"));
        let listed = TakeReport { left_list: false, ..fine };
        assert!(take_invariant_broken(&listed).unwrap().contains("still on the operators' list"));
    }

    #[test]
    fn values_clauses_number_the_parameters_across_rows() {
        assert_eq!(values_clause(2, &["$", "NULL", "$"]), "VALUES ($1, NULL, $2), ($3, NULL, $4)");
        assert_eq!(values_clause(1, &["$", "NULLIF($, -1)"]), "VALUES ($1, NULLIF($2, -1))");
    }

    #[test]
    fn counts_read_with_thousands_separators() {
        assert_eq!(
            (thousands(0), thousands(999), thousands(1000), thousands(240_000)),
            ("0".into(), "999".into(), "1,000".into(), "240,000".into())
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
