//! The operators' order list, served from a cache that every status change
//! keeps current: in-process in the embedded farm, Redis in production.
//!
//! - **Write-through, by event.** A status change is committed to the
//!   database first; then the changed order is applied to the cache. There is
//!   no TTL: an entry changes exactly when its order does.
//! - **Versions.** Every order carries a version the database bumps on each
//!   change. The cache applies a change only if it is newer than what it
//!   holds (atomically, in a Redis script), so changes arriving out of order
//!   from several API replicas can never leave an older status in place.
//! - **Cold or lost.** Until a rebuild from the database has finished (at
//!   start, after Redis lost its data), the list is read from the database.
//!   One rebuild runs at a time, in this process (a lock) and across replicas
//!   (a Redis lock): no stampede.
//! - **Redis outage.** A change that cannot reach Redis, an error on a read,
//!   or Redis not answering its pings for a while turns the cache off for
//!   this replica, and reads go to the database. When Redis answers again,
//!   the replica first invalidates the shared cache (it may have missed
//!   writes), then rebuilds it; only then is the cache used again. It falls
//!   back to the database, never to stale data.
//! - **A slow moment is not an outage.** A page that Redis is slow to give
//!   is read from the database that once, and the cache stays on: a read
//!   cannot make it stale, and turning it off means a rebuild of every order
//!   (seconds of work) on a machine that is already busy. A write-through
//!   waits longer than a read before it gives up, for the same reason.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::status::OrderStatus;
use super::store::{Cursor, OrderFilter, OrderRow};
use crate::store::Store;

/// One line of the operators' list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderSummary {
    pub order_id: String,
    pub source: String,
    pub seller: String,
    pub customer: Option<String>,
    /// The model to print: `GET /v1/models/{model_id}` downloads it. Empty
    /// in a summary cached before list rows carried it.
    #[serde(default)]
    pub model_id: String,
    pub material: String,
    pub colour: Option<String>,
    pub quantity: i64,
    pub status: OrderStatus,
    pub total: Option<f64>,
    pub currency: Option<String>,
    pub assignee: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub version: i64,
    /// The machine it was priced for, its size (mm) and print time (s),
    /// from its quote: what an operator plans with.
    #[serde(default)]
    pub machine: Option<String>,
    #[serde(default)]
    pub size_mm: Option<[f64; 3]>,
    #[serde(default)]
    pub print_time_s: Option<f64>,
    /// Parts: 1, or more for an order of several (its first part is the
    /// model, material and quantity shown; `GET /v1/orders/{id}` lists all).
    #[serde(default = "one_part")]
    pub part_count: i64,
}

/// What a summary cached before orders had parts holds.
fn one_part() -> i64 {
    1
}

impl From<&OrderRow> for OrderSummary {
    fn from(o: &OrderRow) -> Self {
        Self {
            part_count: o.part_count,
            machine: o.machine.clone(),
            size_mm: o.size_mm,
            print_time_s: o.print_time_s,
            order_id: o.order_id.clone(),
            source: o.source.clone(),
            seller: o.seller.clone(),
            customer: o.customer.clone(),
            model_id: o.model_id.clone(),
            material: o.material.clone(),
            colour: o.colour.clone(),
            quantity: o.quantity,
            status: o.status,
            total: o.total,
            currency: o.currency.clone(),
            assignee: o.assignee.clone(),
            created_at_ms: o.created_at_ms,
            updated_at_ms: o.updated_at_ms,
            version: o.version,
        }
    }
}

/// Where a page was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Cache,
    /// The cache was not ready (cold, rebuilding, or off after an error).
    Database,
}

/// The newest-first key of an order in its status's index.
type Position = (std::cmp::Reverse<i64>, std::cmp::Reverse<String>);

fn position(created_at_ms: i64, order_id: &str) -> Position {
    (std::cmp::Reverse(created_at_ms), std::cmp::Reverse(order_id.to_string()))
}

/// The in-process index: per status, orders newest first; and each order.
#[derive(Debug, Default)]
struct MemoryIndex {
    by_status: HashMap<OrderStatus, BTreeSet<Position>>,
    orders: HashMap<String, OrderSummary>,
}

impl MemoryIndex {
    fn apply(&mut self, summary: &OrderSummary) -> bool {
        if let Some(held) = self.orders.get(&summary.order_id) {
            if held.version >= summary.version {
                return false;
            }
            let old = position(held.created_at_ms, &held.order_id);
            if let Some(set) = self.by_status.get_mut(&held.status) {
                set.remove(&old);
            }
        }
        self.by_status.entry(summary.status).or_default().insert(position(summary.created_at_ms, &summary.order_id));
        self.orders.insert(summary.order_id.clone(), summary.clone());
        true
    }

    fn page(&self, status: OrderStatus, cursor: Option<&Cursor>, limit: usize) -> Vec<OrderSummary> {
        let Some(set) = self.by_status.get(&status) else { return Vec::new() };
        let entries: Box<dyn Iterator<Item = &Position>> = match cursor {
            None => Box::new(set.iter()),
            Some(c) => {
                use std::ops::Bound::{Excluded, Unbounded};
                Box::new(set.range((Excluded(position(c.created_at_ms, &c.order_id)), Unbounded)))
            }
        };
        entries.take(limit).filter_map(|(_, id)| self.orders.get(&id.0).cloned()).collect()
    }
}

/// Applies a change if it is newer than the held version; moves the order
/// between the status sets. KEYS: versions, docs, the new status set, then
/// every status set. ARGV: id, version, score, document.
const APPLY_SCRIPT: &str = r"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and tonumber(held) >= tonumber(ARGV[2]) then return 0 end
for i = 4, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// A page, newest first, after (cursor score, cursor id); nothing but
/// 'cold' when the cache is not ready. KEYS: ready, the status set, docs.
/// ARGV: max score ('+inf' or the cursor's), the cursor's id ('' for
/// none), limit.
const PAGE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'cold'} end
local limit = tonumber(ARGV[3])
local ids = {}
local offset = 0
while #ids < limit do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[1], '-inf', 'WITHSCORES', 'LIMIT', offset, limit)
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    local id = batch[i]
    local skip = ARGV[2] ~= '' and batch[i + 1] == ARGV[1] and id >= ARGV[2]
    if not skip and #ids < limit then table.insert(ids, id) end
  end
  offset = offset + #batch / 2
end
if #ids == 0 then return {'ok'} end
local docs = redis.call('HMGET', KEYS[3], unpack(ids))
table.insert(docs, 1, 'ok')
return docs
";

/// How long the Redis cache waits, and how many silences make an outage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheTimeouts {
    /// A page (or a ping) not given within this is read from the database
    /// instead; the cache stays on.
    pub read: Duration,
    /// A write-through not done within this turns the cache off: the change
    /// is committed already, and giving up costs a rebuild.
    pub write: Duration,
    /// Pings in a row that go unanswered (each within `read`, half a second
    /// apart) before a replica that writes nothing calls it an outage.
    pub pings_to_outage: u32,
}

impl Default for CacheTimeouts {
    fn default() -> Self {
        Self { read: Duration::from_millis(250), write: Duration::from_secs(1), pings_to_outage: 3 }
    }
}

/// Orders read from the database per page during a rebuild.
const REBUILD_PAGE: usize = 5000;

/// Orders written to Redis per pipeline during a rebuild: one round trip
/// each, and a reply small enough to stay within the connection's timeout.
const REBUILD_PIPELINE: usize = 500;

struct RedisCache {
    connection: redis::aio::ConnectionManager,
    client: redis::Client,
    namespace: String,
    apply: redis::Script,
    page: redis::Script,
    timeouts: CacheTimeouts,
}

impl RedisCache {
    fn key(&self, name: &str) -> String {
        // One hash tag for every key, so a Redis Cluster keeps them on one
        // node and the scripts may touch them all.
        format!("{{{}}}:orders:{name}", self.namespace)
    }

    fn status_key(&self, status: OrderStatus) -> String {
        self.key(&format!("status:{}", status.as_str()))
    }

    /// The apply script for one summary and its JSON `document`.
    fn apply_invocation<'a>(&'a self, summary: &OrderSummary, document: &str) -> redis::ScriptInvocation<'a> {
        let mut invocation = self.apply.prepare_invoke();
        invocation.key(self.key("versions")).key(self.key("docs")).key(self.status_key(summary.status));
        for status in OrderStatus::ALL {
            invocation.key(self.status_key(status));
        }
        invocation.arg(&summary.order_id).arg(summary.version).arg(summary.created_at_ms).arg(document);
        invocation
    }
}

enum Backend {
    Memory(std::sync::Mutex<MemoryIndex>),
    Redis(Box<RedisCache>),
}

/// The operators' list cache.
pub struct OrderCache {
    backend: Backend,
    /// A rebuild has finished and no error has been seen since.
    ready: AtomicBool,
    /// Counts the times the cache was lost: a rebuild during which it
    /// changed missed a change, and must not declare the cache ready.
    losses: AtomicU64,
    /// One rebuild at a time in this process.
    rebuilding: Mutex<()>,
}

impl std::fmt::Debug for OrderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("OrderCache").field("backend", &kind).field("ready", &self.is_ready()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot use the order cache: {0}")]
pub struct CacheError(String);

/// Why Redis gave no page: slow (the database answers this once) or failed
/// (the cache goes off).
#[derive(Debug)]
enum PageError {
    TimedOut,
    Failed(String),
}

impl OrderCache {
    /// The in-process cache of the embedded farm.
    pub fn memory() -> Arc<Self> {
        Arc::new(Self {
            backend: Backend::Memory(std::sync::Mutex::new(MemoryIndex::default())),
            ready: AtomicBool::new(false),
            losses: AtomicU64::new(0),
            rebuilding: Mutex::new(()),
        })
    }

    /// A cache in Redis at `url`, its keys under `namespace` (the queue
    /// prefix, so environments sharing a Redis stay apart).
    pub async fn redis(url: &str, namespace: &str, timeouts: CacheTimeouts) -> Result<Arc<Self>, CacheError> {
        let client = crate::redis_client::open(url).map_err(|e| CacheError(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            redis::aio::ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| CacheError(format!("no answer from {url}")))?
        .map_err(|e| CacheError(e.to_string()))?;
        let cache = RedisCache {
            connection,
            client,
            namespace: namespace.to_string(),
            apply: redis::Script::new(APPLY_SCRIPT),
            page: redis::Script::new(PAGE_SCRIPT),
            timeouts,
        };
        Ok(Arc::new(Self {
            backend: Backend::Redis(Box::new(cache)),
            ready: AtomicBool::new(false),
            losses: AtomicU64::new(0),
            rebuilding: Mutex::new(()),
        }))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Write-through: applies a committed change. A failure turns the cache
    /// off until it has been rebuilt (the supervisor does that).
    pub async fn apply(&self, order: &OrderRow) {
        let summary = OrderSummary::from(order);
        match &self.backend {
            Backend::Memory(index) => {
                index.lock().expect("cache lock").apply(&summary);
            }
            Backend::Redis(redis) => {
                if let Err(e) = self.redis_apply(redis, &summary).await {
                    self.lost(&format!("could not apply order {}: {e}", summary.order_id));
                }
            }
        }
    }

    async fn redis_apply(&self, redis: &RedisCache, summary: &OrderSummary) -> Result<(), String> {
        let document = serde_json::to_string(summary).expect("summaries always serialize");
        let invocation = redis.apply_invocation(summary, &document);
        let mut connection = redis.connection.clone();
        tokio::time::timeout(redis.timeouts.write, invocation.invoke_async::<i64>(&mut connection))
            .await
            .map_err(|_| "timed out".to_string())?
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// A page of `status`, newest first, or `None` when the cache cannot
    /// answer (the caller reads the database).
    pub async fn page(&self, status: OrderStatus, cursor: Option<&Cursor>, limit: usize) -> Option<Vec<OrderSummary>> {
        if !self.is_ready() {
            return None;
        }
        match &self.backend {
            Backend::Memory(index) => Some(index.lock().expect("cache lock").page(status, cursor, limit)),
            Backend::Redis(redis) => match self.redis_page(redis, status, cursor, limit).await {
                Ok(Some(page)) => Some(page),
                Ok(None) => {
                    // Lost its data, or another replica invalidated it.
                    self.ready.store(false, Ordering::Release);
                    None
                }
                Err(PageError::TimedOut) => {
                    metrics::counter!("farm_operator_cache_slow_reads_total").increment(1);
                    None
                }
                Err(PageError::Failed(e)) => {
                    self.lost(&format!("could not read a page: {e}"));
                    None
                }
            },
        }
    }

    async fn redis_page(
        &self,
        redis: &RedisCache,
        status: OrderStatus,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Option<Vec<OrderSummary>>, PageError> {
        let mut invocation = redis.page.prepare_invoke();
        invocation.key(redis.key("ready")).key(redis.status_key(status)).key(redis.key("docs"));
        match cursor {
            Some(c) => invocation.arg(c.created_at_ms).arg(&c.order_id),
            None => invocation.arg("+inf").arg(""),
        };
        invocation.arg(limit);
        let mut connection = redis.connection.clone();
        let reply: Vec<Option<String>> =
            tokio::time::timeout(redis.timeouts.read, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| PageError::TimedOut)?
                .map_err(|e| PageError::Failed(e.to_string()))?;
        match reply.first().and_then(|m| m.as_deref()) {
            Some("ok") => {}
            _ => return Ok(None),
        }
        let mut page = Vec::with_capacity(reply.len().saturating_sub(1));
        for document in reply.into_iter().skip(1) {
            // An id without its document means a change is half applied:
            // not an answer to trust.
            let Some(document) = document else { return Ok(None) };
            page.push(serde_json::from_str(&document).map_err(|e| PageError::Failed(e.to_string()))?);
        }
        Ok(Some(page))
    }

    /// Turns the cache off after an error; reads go to the database until a
    /// rebuild succeeds.
    fn lost(&self, why: &str) {
        self.losses.fetch_add(1, Ordering::AcqRel);
        if self.ready.swap(false, Ordering::AcqRel) {
            tracing::warn!(reason = why, "the order cache is off; reading orders from the database");
        }
        metrics::counter!("farm_operator_cache_errors_total").increment(1);
    }

    /// Rebuilds the cache from the database unless it is ready; one rebuild
    /// at a time here, and (with Redis) across replicas. Returns once the
    /// cache is ready or the attempt failed.
    pub async fn rebuild(&self, store: &Store) -> Result<(), CacheError> {
        if self.is_ready() {
            return Ok(());
        }
        let Ok(_guard) = self.rebuilding.try_lock() else { return Ok(()) };
        // A change that fails to reach the cache while it is rebuilt is
        // missing from what the rebuild read before it: such a rebuild must
        // not make the cache ready (the supervisor starts another).
        let losses = self.losses.load(Ordering::Acquire);
        match &self.backend {
            Backend::Memory(index) => {
                for_each_page(store, |orders| {
                    let mut index = index.lock().expect("cache lock");
                    for order in orders {
                        index.apply(&OrderSummary::from(order));
                    }
                    async { Ok(()) }
                })
                .await?;
            }
            Backend::Redis(redis) => self.redis_rebuild(redis, store, losses).await?,
        }
        self.no_change_missed_since(losses)?;
        self.ready.store(true, Ordering::Release);
        metrics::counter!("farm_operator_cache_rebuilds_total").increment(1);
        Ok(())
    }

    /// An error if the cache was lost (a change failed to reach it) since
    /// `losses` was read.
    fn no_change_missed_since(&self, losses: u64) -> Result<(), CacheError> {
        if self.losses.load(Ordering::Acquire) == losses {
            Ok(())
        } else {
            Err(CacheError("a change could not reach the cache during its rebuild".into()))
        }
    }

    async fn redis_rebuild(&self, redis: &RedisCache, store: &Store, losses: u64) -> Result<(), CacheError> {
        use redis::AsyncCommands;
        let err = |e: redis::RedisError| CacheError(e.to_string());
        let mut connection = redis.connection.clone();
        if connection.exists::<_, bool>(redis.key("ready")).await.map_err(err)? {
            return Ok(());
        }
        let lock = redis.key("rebuild-lock");
        let token = uuid::Uuid::new_v4().to_string();
        let acquired: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(120_000)
            .query_async(&mut connection)
            .await
            .map_err(err)?;
        if acquired.is_none() {
            // Another replica rebuilds; ours reads the database meanwhile.
            return Err(CacheError("another replica is rebuilding".into()));
        }
        let mut doomed: Vec<String> = OrderStatus::ALL.iter().map(|&s| redis.status_key(s)).collect();
        doomed.extend([redis.key("docs"), redis.key("versions")]);
        let _: () = connection.del(&doomed).await.map_err(err)?;
        // A pipeline runs the script by its hash (EVALSHA), so load it first.
        redis.apply.prepare_invoke().load_async(&mut connection).await.map_err(err)?;
        // Changes applied from here on are kept: the snapshot's older
        // versions lose against them. Each page of the database goes to
        // Redis as pipelines of REBUILD_PIPELINE scripts: one round trip per
        // pipeline instead of one per order.
        let mut rebuilt = 0usize;
        for_each_page(store, |orders| {
            rebuilt += orders.len();
            let mut connection = redis.connection.clone();
            let documents: Vec<(OrderSummary, String)> = orders
                .iter()
                .map(|order| {
                    let summary = OrderSummary::from(order);
                    let document = serde_json::to_string(&summary).expect("summaries always serialize");
                    (summary, document)
                })
                .collect();
            async move {
                for chunk in documents.chunks(REBUILD_PIPELINE) {
                    let invocations: Vec<_> = chunk.iter().map(|(s, d)| redis.apply_invocation(s, d)).collect();
                    let mut pipeline = redis::pipe();
                    for invocation in &invocations {
                        pipeline.invoke_script(invocation).ignore();
                    }
                    let _: () = pipeline.query_async(&mut connection).await.map_err(err)?;
                }
                Ok(())
            }
        })
        .await?;
        if let Err(missed) = self.no_change_missed_since(losses) {
            // Not ready for anyone: the shared copy lacks that change.
            let _: () = connection.del(&lock).await.map_err(err)?;
            return Err(missed);
        }
        let _: () = connection.set(redis.key("ready"), "1").await.map_err(err)?;
        let _: () = connection.del(&lock).await.map_err(err)?;
        tracing::info!(orders = rebuilt, "the order cache was rebuilt from the database");
        Ok(())
    }

    /// For a Redis cache: after an error, waits for Redis, invalidates the
    /// shared cache (this replica may have missed writes) and rebuilds. For
    /// the memory cache: the first build. Runs until `shutdown`.
    pub async fn supervise(self: Arc<Self>, store: Store, shutdown: tokio_util::sync::CancellationToken) {
        let mut was_lost = false;
        let mut unanswered = 0u32;
        loop {
            // A replica that writes nothing still learns of an outage: a
            // Redis that stops answering turns this cache off too, so it
            // cannot come back serving what it missed. One late answer on a
            // busy machine is not an outage.
            if self.is_ready()
                && let Backend::Redis(redis) = &self.backend
            {
                unanswered = if redis_ping(redis).await { 0 } else { unanswered + 1 };
                if unanswered >= redis.timeouts.pings_to_outage.max(1) {
                    unanswered = 0;
                    self.lost("Redis stopped answering");
                }
            }
            if !self.is_ready() {
                if let Backend::Redis(redis) = &self.backend {
                    let alive = redis_ping(redis).await;
                    if alive && was_lost {
                        // This replica may have missed writes: nobody may
                        // trust the shared copy until it is rebuilt.
                        if redis_invalidate(redis).await.is_ok() {
                            was_lost = false;
                        }
                    }
                    if alive
                        && !was_lost
                        && let Err(e) = self.rebuild(&store).await
                    {
                        tracing::debug!(error = %e, "the order cache is not rebuilt yet");
                    }
                } else if let Err(e) = self.rebuild(&store).await {
                    tracing::warn!(error = %e, "cannot build the order cache");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if !self.is_ready() {
                was_lost = true;
            }
        }
    }
}

async fn redis_ping(redis: &RedisCache) -> bool {
    let mut connection = redis.connection.clone();
    let ping = redis::cmd("PING");
    matches!(tokio::time::timeout(redis.timeouts.read, ping.query_async::<String>(&mut connection)).await, Ok(Ok(_)))
}

async fn redis_invalidate(redis: &RedisCache) -> Result<(), redis::RedisError> {
    let _ = &redis.client;
    let mut connection = redis.connection.clone();
    redis::cmd("DEL").arg(redis.key("ready")).query_async::<()>(&mut connection).await
}

/// Reads every order a page at a time, newest first, and hands each page to
/// `apply`: a rebuild never holds the whole table (quotes included) at once.
async fn for_each_page<F, Fut>(store: &Store, mut apply: F) -> Result<(), CacheError>
where
    F: FnMut(&[OrderRow]) -> Fut,
    Fut: std::future::Future<Output = Result<(), CacheError>>,
{
    let mut cursor = None;
    loop {
        let page = store
            .list_page(&OrderFilter::default(), cursor.as_ref(), REBUILD_PAGE as i64)
            .await
            .map_err(|e| CacheError(e.to_string()))?;
        let Some(last) = page.last() else { return Ok(()) };
        cursor = Some(Cursor { created_at_ms: last.created_at_ms, order_id: last.order_id.clone() });
        apply(&page).await?;
        if page.len() < REBUILD_PAGE {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, status: OrderStatus, created: i64, version: i64) -> OrderSummary {
        OrderSummary {
            order_id: id.into(),
            source: "api".into(),
            seller: "s".into(),
            customer: None,
            model_id: "m".into(),
            material: "pla".into(),
            colour: None,
            quantity: 1,
            status,
            total: None,
            currency: None,
            assignee: None,
            created_at_ms: created,
            updated_at_ms: created,
            version,
            machine: None,
            size_mm: None,
            print_time_s: None,
            part_count: 1,
        }
    }

    #[test]
    fn the_index_moves_orders_between_statuses_and_never_goes_back_a_version() {
        let mut index = MemoryIndex::default();
        assert!(index.apply(&summary("a", OrderStatus::Priced, 10, 2)));
        assert!(index.apply(&summary("b", OrderStatus::Priced, 20, 2)));
        assert!(index.apply(&summary("a", OrderStatus::ManufacturingApproved, 10, 3)));
        // A late, older change is ignored.
        assert!(!index.apply(&summary("a", OrderStatus::Priced, 10, 2)));
        let ids = |page: Vec<OrderSummary>| page.into_iter().map(|o| o.order_id).collect::<Vec<_>>();
        assert_eq!(ids(index.page(OrderStatus::Priced, None, 10)), vec!["b"]);
        assert_eq!(ids(index.page(OrderStatus::ManufacturingApproved, None, 10)), vec!["a"]);
    }

    #[test]
    fn pages_run_newest_first_and_resume_after_the_cursor_even_at_equal_times() {
        let mut index = MemoryIndex::default();
        for (id, created) in [("a", 1), ("b", 2), ("c", 2), ("d", 3)] {
            index.apply(&summary(id, OrderStatus::Priced, created, 1));
        }
        let page = index.page(OrderStatus::Priced, None, 2);
        assert_eq!(page.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), ["d", "c"]);
        let cursor = Cursor { created_at_ms: 2, order_id: "c".into() };
        let next = index.page(OrderStatus::Priced, Some(&cursor), 10);
        assert_eq!(next.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
    }
}
