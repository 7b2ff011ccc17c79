//! The operators' cache on a real Redis: write-through with versions, a
//! rebuild from the database that only one replica runs, and an outage
//! that falls back to the database and never serves stale data. The outage
//! is a TCP proxy in front of Redis that the test cuts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api::Store;
use api::orders::cache::{CacheTimeouts, OrderCache};
use api::orders::status::{OrderEvent, OrderStatus};
use api::orders::store::{Created, OrderRow, Pricing, Transitioned};
use api::store::JobRow;
use scheduler::Lane;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::services;

/// Forwards connections to Redis until cut; a cut also drops the open ones.
/// Stalled, it holds Redis's answers back (as a busy machine might) until
/// resumed.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
    stalled: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (stalled, stall) = tokio::sync::watch::channel(false);
        let (target, flag, signal) = (target.to_string(), up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let (target, signal, stall) = (target.clone(), signal.clone(), stall.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else { return };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let answers = async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut stall = stall;
                        let mut buffer = vec![0u8; 64 * 1024];
                        loop {
                            let Ok(n @ 1..) = server_read.read(&mut buffer).await else { return };
                            if stall.wait_for(|stalled| !stalled).await.is_err() {
                                return;
                            }
                            if client_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
                        () = answers => {}
                        () = signal.notified() => {}
                    }
                });
            }
        });
        Self { port, up, cut, stalled }
    }

    fn stall(&self, on: bool) {
        self.stalled.send_replace(on);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn redis_target() -> Option<String> {
    let url = std::env::var("FARM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let authority = url.trim_start_matches("redis://").trim_end_matches('/').to_string();
    match TcpStream::connect(&authority).await {
        Ok(_) => Some(authority),
        Err(e) => services::missing("Redis", &e.to_string()),
    }
}

/// A test's own namespace in the shared Redis, reached through a proxy the
/// test can cut or stall. `None` (after a loud skip) without Redis.
struct RedisUnderTest {
    target: String,
    proxy: Proxy,
    namespace: String,
}

impl RedisUnderTest {
    async fn start() -> Option<Self> {
        let target = redis_target().await?;
        let proxy = Proxy::start(&target).await;
        Some(Self { target, proxy, namespace: format!("test-{}", uuid::Uuid::new_v4().simple()) })
    }

    /// A cache replica on this namespace, through the proxy.
    async fn cache(&self) -> std::sync::Arc<OrderCache> {
        OrderCache::redis(&self.proxy.url(), &self.namespace, CacheTimeouts::default()).await.unwrap()
    }

    /// Deletes the namespace's keys, so runs leave nothing behind.
    async fn forget(&self) {
        forget_namespace(&self.target, &self.namespace).await;
    }
}

fn newest_first(orders: &[OrderRow]) -> Vec<String> {
    orders.iter().rev().map(|o| o.order_id.clone()).collect()
}

async fn store_with_orders(n: usize) -> (tempfile::TempDir, Store, Vec<OrderRow>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(dir.path()), 4).await.unwrap();
    store.insert_model(&crate::helpers::model_row("m", 1)).await.unwrap();
    let mut orders = Vec::new();
    for i in 0..n {
        let now = 1_000 + i as i64;
        let order = crate::helpers::new_order(&format!("order-{i:04}"), "m", now);
        let job = JobRow::queued(format!("job-{i:04}"), "m".into(), "pla".into(), 1, Lane::Fast, now);
        let pricing = Pricing::Answered {
            job,
            quote: "{}".into(),
            quote_key: format!("k{i}"),
            total: 10.0,
            currency: "EUR".into(),
        };
        let Created::New(row) = store.create_order(&order, pricing).await.unwrap() else { panic!("a new order") };
        orders.push(row);
    }
    (dir, store, orders)
}

async fn ids(cache: &OrderCache, status: OrderStatus) -> Option<Vec<String>> {
    cache.page(status, None, 100).await.map(|page| page.into_iter().map(|o| o.order_id).collect())
}

async fn wait_ready(cache: &OrderCache) {
    let ready = testkit::wait_until(Duration::from_secs(20), || async { cache.is_ready().then_some(()) }).await;
    assert!(ready.is_some(), "the cache never became ready");
}

#[tokio::test]
async fn a_redis_cache_is_rebuilt_once_kept_current_and_falls_back_to_the_database_when_redis_is_cut() {
    let Some(redis) = RedisUnderTest::start().await else { return };
    let proxy = &redis.proxy;
    let (_dir, store, orders) = store_with_orders(5).await;
    let cache = redis.cache().await;
    // A second replica sharing the Redis.
    let other = redis.cache().await;
    assert_eq!(ids(&cache, OrderStatus::Priced).await, None, "cold: the database answers");

    let stop = CancellationToken::new();
    tokio::spawn(cache.clone().supervise(store.clone(), stop.clone()));
    tokio::spawn(other.clone().supervise(store.clone(), stop.clone()));
    wait_ready(&cache).await;
    wait_ready(&other).await;
    assert_eq!(ids(&cache, OrderStatus::Priced).await, Some(newest_first(&orders)));
    assert_eq!(ids(&other, OrderStatus::Priced).await, Some(newest_first(&orders)), "one rebuild serves both");

    // Write-through: the database first, then the cache, seen by both.
    let Transitioned::Done(approved) =
        store.transition_order("order-0002", OrderEvent::Approve, "crm", 5_000).await.unwrap()
    else {
        panic!("approved")
    };
    cache.apply(&approved).await;
    assert_eq!(ids(&other, OrderStatus::ManufacturingApproved).await, Some(vec!["order-0002".to_string()]));
    // A late, older change of the same order is ignored.
    cache.apply(&orders[2]).await;
    assert_eq!(ids(&other, OrderStatus::ManufacturingApproved).await, Some(vec!["order-0002".to_string()]));

    // Redis goes away: a change cannot reach it, so this replica stops
    // using the cache; reads go to the database.
    proxy.cut();
    let Transitioned::Done(cancelled) =
        store.transition_order("order-0002", OrderEvent::Cancel, "ops", 6_000).await.unwrap()
    else {
        panic!("cancelled")
    };
    cache.apply(&cancelled).await;
    assert!(!cache.is_ready());
    assert_eq!(ids(&cache, OrderStatus::ManufacturingApproved).await, None, "never the stale copy");
    // The other replica wrote nothing, but notices the outage too.
    let noticed = testkit::wait_until(Duration::from_secs(10), || async { (!other.is_ready()).then_some(()) }).await;
    assert!(noticed.is_some(), "the other replica never noticed the outage");

    // Redis comes back: the shared copy missed a write, so it is
    // invalidated for everyone, rebuilt, and then right.
    proxy.restore();
    wait_ready(&cache).await;
    let back = testkit::wait_until(Duration::from_secs(20), || async {
        // Until its rebuild, the other replica reads the database (None);
        // after it, the truth. Never the order as approved.
        match ids(&other, OrderStatus::ManufacturingApproved).await {
            Some(ids) if ids.is_empty() => Some(()),
            Some(stale) => panic!("the other replica served stale data: {stale:?}"),
            None => None,
        }
    })
    .await;
    assert!(back.is_some(), "the other replica never came back");
    assert_eq!(ids(&cache, OrderStatus::Cancelled).await, Some(vec!["order-0002".to_string()]));
    stop.cancel();
    redis.forget().await;
}

#[tokio::test]
async fn a_page_redis_is_slow_to_give_is_read_from_the_database_that_once_and_the_cache_stays_on() {
    let Some(redis) = RedisUnderTest::start().await else { return };
    let proxy = &redis.proxy;
    let (_dir, store, orders) = store_with_orders(3).await;
    let cache = redis.cache().await;
    cache.rebuild(&store).await.unwrap();
    assert_eq!(ids(&cache, OrderStatus::Priced).await, Some(newest_first(&orders)));

    proxy.stall(true);
    assert_eq!(ids(&cache, OrderStatus::Priced).await, None, "too slow: the caller reads the database");
    assert!(cache.is_ready(), "a slow read cannot make the cache stale, so it stays on");
    proxy.stall(false);
    let back = testkit::wait_until(Duration::from_secs(5), || async { ids(&cache, OrderStatus::Priced).await }).await;
    assert_eq!(back, Some(newest_first(&orders)), "served from the cache again, without a rebuild");
    redis.forget().await;
}

/// Deletes a test's keys from the shared Redis (every key of a namespace
/// shares its `{namespace}` hash tag), so runs leave nothing behind.
async fn forget_namespace(authority: &str, namespace: &str) {
    let client = redis::Client::open(format!("redis://{authority}/")).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{{{namespace}}}:*")).query_async(&mut connection).await.unwrap();
    if !keys.is_empty() {
        redis::cmd("UNLINK").arg(&keys).query_async::<()>(&mut connection).await.unwrap();
    }
}

#[tokio::test]
async fn the_memory_cache_builds_from_the_database_and_pages_like_it() {
    let (_dir, store, orders) = store_with_orders(7).await;
    let cache = OrderCache::memory();
    assert_eq!(ids(&cache, OrderStatus::Priced).await, None);
    cache.rebuild(&store).await.unwrap();
    assert_eq!(ids(&cache, OrderStatus::Priced).await, Some(newest_first(&orders)));
    assert_eq!(cache.backend(), "memory");
}
