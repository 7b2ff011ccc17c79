//! The operators' list while the farm is being written to: orders arriving
//! and priced by a worker, and the CRM approving priced orders, at a fixed
//! rate, while the list is asked for at a ladder of rates. The same ladder
//! runs from the cache and from the database; for each, the highest rate
//! whose p99 stays under the goal with no error.
//!
//! Every write is a real request through the API, so each one takes the
//! path production takes: the order's transaction, the outbox, the queue,
//! the worker's result, the CRM event's check, and each change's
//! write-through into the cache.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use sqlx::{AnyPool, Row};

use super::{APPROVED, GOAL_P99_MS, ListRun, Operator, db_error, http_client, join_error, list_under_load, thousands};
use crate::farm::FarmError;
use crate::stats::Summary;

/// Writes waiting for an answer at once; beyond it the writer falls behind,
/// and the report shows its achieved rate.
const MAX_WRITES_IN_FLIGHT: usize = 256;
/// Intake quantities cycle through this many values: each order misses the
/// quote cache, so a worker prices it and its result is a write too.
const QUANTITIES: usize = 5000;

/// The list under writes, from the cache and from the database.
#[derive(Debug, Clone, Serialize)]
pub struct UnderWrites {
    /// Writes per second asked for: half intake, half CRM approvals.
    pub write_rate: f64,
    /// The worker's niceness: 0 shares the CPU with the API as an equal.
    pub worker_niceness: u8,
    pub cache: Vec<WriteStep>,
    pub database: Vec<WriteStep>,
    /// The highest list rate of the ladder held at p99 < the goal with no
    /// error and at least 95 % of the rate achieved; none if even the first
    /// step missed.
    pub cache_holds: Option<f64>,
    pub database_holds: Option<f64>,
}

/// One list rate of the ladder, with the writes going on meanwhile.
#[derive(Debug, Clone, Serialize)]
pub struct WriteStep {
    pub list_rate: f64,
    pub list: ListRun,
    pub writes: WriteStats,
}

/// What the writer sent during one step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteStats {
    /// `POST /v1/orders` answered 201.
    pub intake: usize,
    /// `POST /v1/crm/events` (approved) answered 200.
    pub approvals: usize,
    /// Any other answer, by status (0: no answer).
    pub errors: BTreeMap<u16, usize>,
    /// Answers per second over the step.
    pub achieved_rate: f64,
    /// From each write's due time to its answer, ms.
    pub latency: Summary,
}

/// Who writes, and to what.
#[derive(Debug, Clone)]
pub(super) struct Writers {
    pub seller: Operator,
    pub crm: Operator,
    /// A model the seller uploaded; every intake orders it.
    pub model_id: String,
    /// Intakes so far, across steps and both farms of a run (they share
    /// the database and so its quote cache): each asks for a quantity the
    /// quote cache has not seen lately.
    pub intakes: Arc<AtomicUsize>,
}

/// The ladder at `rates` on the farm at `base`, each step with `write_rate`
/// writes per second going on.
pub(super) async fn ladder(
    base: &str,
    reader: &Operator,
    writers: &Writers,
    pool: &AnyPool,
    settings: &super::OrdersBench,
    mode: &str,
) -> Result<Vec<WriteStep>, FarmError> {
    let mut steps = Vec::new();
    for &list_rate in &settings.ladder {
        // The newest priced orders: approving them puts them near the top
        // of the list being read.
        let approvals_wanted =
            (settings.write_rate / 2.0 * (settings.duration + super::WARMUP).as_secs_f64()).ceil() as i64 + 16;
        let to_approve = priced_orders(pool, approvals_wanted).await?;
        let writer = Writer::start(base, writers, settings.write_rate, to_approve)?;
        let list = list_under_load(base, &reader.token, list_rate, settings, mode).await;
        let writes = writer.stop().await?;
        let list = list?;
        tracing::info!(mode, list_rate, p99_ms = list.latency.p99_ms, writes = writes.achieved_rate, "under writes");
        steps.push(WriteStep { list_rate, list, writes });
    }
    Ok(steps)
}

/// The highest list rate of `steps` that held.
pub(super) fn holds(steps: &[WriteStep]) -> Option<f64> {
    steps
        .iter()
        .filter(|s| {
            s.list.latency.p99_ms < GOAL_P99_MS && s.list.errors == 0 && s.list.achieved_rate >= 0.95 * s.list_rate
        })
        .map(|s| s.list_rate)
        .fold(None, |best, rate| Some(best.map_or(rate, |b: f64| b.max(rate))))
}

async fn priced_orders(pool: &AnyPool, limit: i64) -> Result<Vec<String>, FarmError> {
    let rows = sqlx::query(
        "SELECT order_id FROM orders WHERE status = 'PRICED' ORDER BY created_at_ms DESC, order_id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(db_error("the priced orders to approve"))?;
    rows.iter().map(|r| r.try_get::<String, _>("order_id")).collect::<Result<_, _>>().map_err(db_error("an order id"))
}

/// One write's outcome.
#[derive(Debug)]
struct Written {
    kind: WriteKind,
    status: u16,
    latency_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Intake,
    Approval,
}

/// A writer running in the background until `stop`.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Vec<Written>, Duration)>,
}

impl Writer {
    fn start(base: &str, writers: &Writers, rate: f64, to_approve: Vec<String>) -> Result<Self, FarmError> {
        let client = http_client()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (base, writers, flag) = (base.to_string(), writers.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_WRITES_IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            let start = Instant::now();
            let mut approvals = to_approve.into_iter();
            let mut index = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs_f64(index as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                // Every other write approves a priced order while there are
                // any left; the rest are new orders.
                let approval = if index % 2 == 1 { approvals.next() } else { None };
                let request = match &approval {
                    Some(order_id) => {
                        client.post(format!("{base}/v1/crm/events")).bearer_auth(&writers.crm.token).json(&json!({
                            "event_id": uuid::Uuid::new_v4().to_string(),
                            "order_id": order_id,
                            "type": "approved",
                            "occurred_at_ms": super::now_ms(),
                        }))
                    }
                    None => {
                        let n = writers.intakes.fetch_add(1, Ordering::Relaxed);
                        client.post(format!("{base}/v1/orders")).bearer_auth(&writers.seller.token).json(&json!({
                            "model_id": writers.model_id,
                            "material": if (n / QUANTITIES).is_multiple_of(2) { "pla" } else { "petg" },
                            "quantity": 1 + n % QUANTITIES,
                        }))
                    }
                };
                let kind = if approval.is_some() { WriteKind::Approval } else { WriteKind::Intake };
                let permit = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
                tasks.spawn(async move {
                    let _permit = permit;
                    let status = match request.send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    Written { kind, status, latency_ms: due.elapsed().as_secs_f64() * 1000.0 }
                });
                index += 1;
            }
            let mut written = Vec::with_capacity(index);
            while let Some(done) = tasks.join_next().await {
                if let Ok(w) = done {
                    written.push(w);
                }
            }
            (written, start.elapsed())
        });
        Ok(Self { stop, task })
    }

    async fn stop(self) -> Result<WriteStats, FarmError> {
        self.stop.store(true, Ordering::Relaxed);
        let (written, elapsed) = self.task.await.map_err(join_error)?;
        let mut stats = WriteStats::default();
        for w in &written {
            match (w.kind, w.status) {
                (WriteKind::Intake, 201) => stats.intake += 1,
                (WriteKind::Approval, 200) => stats.approvals += 1,
                (_, status) => *stats.errors.entry(status).or_insert(0) += 1,
            }
        }
        stats.achieved_rate = written.len() as f64 / elapsed.as_secs_f64().max(1e-9);
        stats.latency = Summary::of(&written.iter().map(|w| w.latency_ms).collect::<Vec<_>>());
        Ok(stats)
    }
}

/// The report's section on the list under writes.
pub(super) fn markdown(under: &UnderWrites, limit: u32) -> String {
    let worker = match under.worker_niceness {
        0 => "a worker".to_string(),
        n => format!("a worker at niceness {n}"),
    };
    let mut out = format!(
        "The list under writes: {} writes per second through the API (half `POST /v1/orders`, each priced by \
         {worker} whose result is one more write, half CRM `approved` events on the newest priced orders) while \
         `GET /v1/operator/orders?status={APPROVED}&limit={limit}` runs at each rate below.\n\n\
         | list req/s | cache p50 / p99 ms | cache errors | database p50 / p99 ms | database errors | writes/s \
         achieved (cache, database) | write errors | machine busy % (cache, database) | cache phase's pages \
         from the database |\n|--:|--:|--:|--:|--:|--:|---|--:|--:|\n",
        thousands(under.write_rate.round() as usize),
    );
    let busy = |pct: Option<f64>| pct.map_or("–".to_string(), |p| format!("{p:.0}"));
    for (cache, database) in under.cache.iter().zip(&under.database) {
        let errors = |s: &WriteStats| s.errors.iter().map(|(k, v)| format!("{v}× {k}")).collect::<Vec<_>>();
        let mut write_errors = errors(&cache.writes);
        write_errors.extend(errors(&database.writes));
        out.push_str(&format!(
            "| {} | {:.2} / {:.2} | {} | {:.2} / {:.2} | {} | {:.0}, {:.0} | {} | {}, {} | {} |\n",
            thousands(cache.list_rate.round() as usize),
            cache.list.latency.p50_ms,
            cache.list.latency.p99_ms,
            cache.list.errors,
            database.list.latency.p50_ms,
            database.list.latency.p99_ms,
            database.list.errors,
            cache.writes.achieved_rate,
            database.writes.achieved_rate,
            if write_errors.is_empty() { "0".to_string() } else { write_errors.join(", ") },
            busy(cache.list.machine_busy_pct),
            busy(database.list.machine_busy_pct),
            // The cache turned off (or was slow) for these: they say what
            // the cache's figures are made of.
            thousands(cache.list.served_from.get("database").copied().unwrap_or(0)),
        ));
    }
    let held = |rate: Option<f64>| rate.map_or("none of the ladder".to_string(), |r| format!("{r:.0} req/s"));
    out.push_str(&format!(
        "\nHighest list rate held at p99 < {GOAL_P99_MS} ms under the writes: from the cache {}, from the database {}.\n",
        held(under.cache_holds),
        held(under.database_holds),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, p99: f64, errors: usize, achieved: f64) -> WriteStep {
        let latency = Summary { count: 10, p50_ms: p99 / 2.0, p95_ms: p99, p99_ms: p99, max_ms: p99, mean_ms: p99 };
        WriteStep {
            list_rate: rate,
            list: ListRun {
                mode: "cache".into(),
                requests: 10,
                achieved_rate: achieved,
                latency,
                send_lag: Summary::default(),
                errors,
                served_from: BTreeMap::new(),
                short_pages: 0,
                machine_busy_pct: Some(97.0),
            },
            writes: WriteStats::default(),
        }
    }

    #[test]
    fn the_held_rate_is_the_highest_step_on_time_without_errors() {
        let steps = [
            step(250.0, 1.0, 0, 250.0),
            step(500.0, 2.0, 0, 499.0),
            step(1000.0, 4.0, 3, 1000.0),
            step(2000.0, 9.0, 0, 2000.0),
        ];
        assert_eq!(holds(&steps), Some(500.0));
        assert_eq!(holds(&[step(250.0, 6.0, 0, 250.0)]), None);
        // A step the server could not keep up with does not count, however
        // fast the answers it gave.
        assert_eq!(holds(&[step(250.0, 1.0, 0, 200.0)]), None);
    }

    #[test]
    fn each_step_says_how_busy_the_machine_was_or_that_it_could_not_tell() {
        let mut database = step(1000.0, 30.0, 0, 1000.0);
        database.list.machine_busy_pct = None;
        let mut cache = step(1000.0, 4.0, 0, 1000.0);
        cache.list.served_from = BTreeMap::from([("cache".to_string(), 9_000), ("database".to_string(), 1_200)]);
        let under = UnderWrites {
            write_rate: 200.0,
            worker_niceness: 19,
            cache: vec![cache],
            database: vec![database],
            cache_holds: Some(1000.0),
            database_holds: None,
        };
        let table = markdown(&under, 50);
        let row = table.lines().find(|l| l.starts_with("| 1,000 |")).expect("the step's row");
        assert!(row.ends_with("| 97, – | 1,200 |"), "{row}");
        assert!(table.contains("machine busy % (cache, database)"));
    }
}
