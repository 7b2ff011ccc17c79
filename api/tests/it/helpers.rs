//! `spawn_app`: the API plus in-process workers (one per lane) on a fresh
//! database (SQLite; PostgreSQL in the `it_postgres` binary), a temporary
//! model folder and an in-process queue, on a free port. `spawn_farm`
//! chooses the workers.

use std::sync::Arc;
use std::time::Duration;

use api::{ApiSettings, Application, Services, Store};
use scheduler::broker::MemoryBroker;
use scheduler::{BlobSettings, BlobStore, Broker, Pricing, Topology, Worker, WorkerSettings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// How long a test waits for the farm to reach a state it expects.
const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    /// The shared test client, calling as the seller unless told otherwise.
    pub(crate) client: testkit::ApiClient,
    pub(crate) broker: Broker,
    pub(crate) topology: Topology,
    pub(crate) store: Store,
    /// Bearer tokens of a seller (the default caller), an operator and the CRM.
    pub(crate) seller: String,
    pub(crate) operator: String,
    pub(crate) crm: String,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    data: tempfile::TempDir,
}

/// A stored model's row, for tests that write to the store directly: a
/// 12-triangle binary STL, no owner.
pub(crate) fn model_row(model_id: &str, size_bytes: i64) -> api::store::ModelRow {
    api::store::ModelRow {
        model_id: model_id.into(),
        size_bytes,
        triangles: 12,
        format: "binary".into(),
        created_at_ms: 1,
        owner: None,
        uploader_key_id: None,
    }
}

/// A seller's order of one `model_id` in PLA, as the store takes it.
pub(crate) fn new_order(order_id: &str, model_id: &str, now_ms: i64) -> api::orders::store::NewOrder {
    api::orders::store::NewOrder {
        order_id: order_id.into(),
        source: "api",
        seller: "acme".into(),
        seller_key_id: None,
        customer: None,
        external_id: None,
        idempotency_key: None,
        request_sha256: None,
        model_id: model_id.into(),
        material: "pla".into(),
        colour: None,
        quantity: 1,
        now_ms,
    }
}

pub(crate) fn cube_stl(side: f32) -> Vec<u8> {
    mesh::write_binary_stl(&mesh::cuboid([side; 3]))
}

/// A new key of `kind` for `name`, straight into the app's database.
pub(crate) async fn mint(app: &TestApp, kind: api::auth::KeyKind, name: &str) -> String {
    let minted = api::auth::mint(kind, name, 1);
    app.store.insert_key(&minted.row).await.unwrap();
    minted.token
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(ApiSettings::default()).await
}

pub(crate) async fn spawn_app_with(settings: ApiSettings) -> TestApp {
    let workers = scheduler::Lane::ALL.iter().map(|&lane| test_worker(lane)).collect();
    spawn_farm(settings, workers).await
}

/// A worker for `lane` that fits a test: one compute thread, quick
/// heartbeats, a short grace.
pub(crate) fn test_worker(lane: scheduler::Lane) -> WorkerSettings {
    WorkerSettings {
        compute_threads: 1,
        heartbeat: Duration::from_millis(100),
        claim_recheck: Duration::from_millis(100),
        grace: Duration::from_secs(5),
        ..WorkerSettings::for_lane(lane)
    }
}

/// The API with these workers, on an in-process queue that dead-letters as
/// RabbitMQ would.
pub(crate) async fn spawn_farm(settings: ApiSettings, workers: Vec<WorkerSettings>) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let postgres = if crate::ON_POSTGRES { crate::services::fresh_postgres_database().await } else { None };
    let url = postgres.unwrap_or_else(|| Store::sqlite_url(data.path()));
    let store = Store::connect(&url, 5).await.unwrap();
    let topology = Topology { delivery_limit: 3, ..Topology::with_prefix("test") };
    let broker = Broker::Memory(MemoryBroker::with_topology(&topology));
    let blobs = BlobStore::open(&BlobSettings::Local { dir: data.path().into() }).await.unwrap();
    let pricing = Arc::new(Pricing::default());
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for settings in workers {
        let worker = Worker::new(broker.clone(), blobs.clone(), topology.clone(), pricing.clone(), settings).unwrap();
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(async move { worker.run(stop).await.unwrap() }));
    }
    let settings = ApiSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        monitor_interval: Duration::from_millis(100),
        ..settings
    };
    let cache = api::orders::cache::OrderCache::memory();
    let services =
        Services { store: store.clone(), broker: broker.clone(), blobs, topology: topology.clone(), pricing, cache };
    let mint = async |kind, name: &str| {
        let minted = api::auth::mint(kind, name, 1);
        store.insert_key(&minted.row).await.unwrap();
        minted.token
    };
    let seller = mint(api::auth::KeyKind::Seller, "acme").await;
    let operator = mint(api::auth::KeyKind::Operator, "Ada").await;
    let crm = mint(api::auth::KeyKind::Crm, "crm").await;
    let app = Application::build(settings, services).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    tasks.push(tokio::spawn({
        let stop = shutdown.clone();
        async move { app.run_until_stopped(stop).await.unwrap() }
    }));
    let client = testkit::ApiClient::new(&base, &seller);
    TestApp {
        base,
        http: client.http.clone(),
        client,
        broker,
        topology,
        store,
        seller,
        operator,
        crm,
        shutdown,
        tasks,
        data,
    }
}

impl TestApp {
    pub(crate) async fn post_as(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.client.send(reqwest::Method::POST, path, Some(token), Some(body.to_string().into()), true).await
    }

    pub(crate) async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        self.client.send(reqwest::Method::GET, path, Some(token), None, false).await
    }

    pub(crate) async fn post_model(&self, bytes: Vec<u8>) -> (u16, Value) {
        self.client.send(reqwest::Method::POST, "/v1/models", Some(&self.seller), Some(bytes.into()), false).await
    }

    pub(crate) async fn post_job(&self, body: Value) -> (u16, Value) {
        self.post_as(&self.seller, "/v1/pricing-jobs", body).await
    }

    pub(crate) async fn post(&self, path: &str) -> (u16, Value) {
        self.client.send(reqwest::Method::POST, path, Some(&self.seller), None, false).await
    }

    /// Uploads a model and submits a job for it; the job's id.
    pub(crate) async fn submit(&self, bytes: Vec<u8>) -> String {
        let (_, model) = self.post_model(bytes).await;
        let (status, accepted) =
            self.post_job(serde_json::json!({"model_id": model["model_id"], "material": "pla"})).await;
        assert_eq!(status, 202, "{accepted}");
        accepted["job_id"].as_str().unwrap().to_string()
    }

    /// Polls the job until `ready` holds, and returns it.
    pub(crate) async fn wait_until(&self, job_id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let path = format!("/v1/pricing-jobs/{job_id}");
        let probe = || async {
            let (_, job) = self.get(&path).await;
            ready(&job).then_some(job)
        };
        match testkit::wait_until(PATIENCE, probe).await {
            Some(job) => job,
            None => panic!("job never {what}: {}", self.get(&path).await.1),
        }
    }

    pub(crate) async fn metrics(&self) -> String {
        self.http.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap()
    }

    /// Polls `/metrics` until a line starts with each of `lines`, and fails
    /// naming the missing ones after 30 s.
    pub(crate) async fn wait_for_metrics(&self, lines: &[&str]) {
        let missing = |text: &str| -> Vec<String> {
            lines.iter().filter(|w| !text.lines().any(|l| l.starts_with(*w))).map(|w| w.to_string()).collect()
        };
        let served =
            testkit::wait_until(PATIENCE, || async { missing(&self.metrics().await).is_empty().then_some(()) });
        if served.await.is_none() {
            let text = self.metrics().await;
            panic!("never served {:?}:\n{text}", missing(&text));
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(&self.seller, path).await
    }

    pub(crate) async fn wait_for_job(&self, job_id: &str) -> Value {
        self.wait_until(job_id, "ended", |job| {
            matches!(job["status"].as_str(), Some("succeeded" | "failed" | "cancelled"))
        })
        .await
    }

    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// Starts one more worker, on the app's queue and model folder: for a
    /// test that needs an order to wait in PRICING first.
    pub(crate) async fn add_worker(&mut self, settings: WorkerSettings) {
        let blobs = BlobStore::open(&BlobSettings::Local { dir: self.data.path().into() }).await.unwrap();
        let pricing = Arc::new(Pricing::default());
        let worker = Worker::new(self.broker.clone(), blobs, self.topology.clone(), pricing, settings).unwrap();
        let stop = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move { worker.run(stop).await.unwrap() }));
    }

    /// Stops the app and its workers, as SIGTERM would, and waits for them.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Polls an order until it has `status`.
pub(crate) async fn wait_for_status(app: &TestApp, order_id: &str, status: &str) -> Value {
    let path = format!("/v1/orders/{order_id}");
    let probe = || async {
        let (_, order) = app.get_as(&app.operator, &path).await;
        (order["status"] == status).then_some(order)
    };
    match testkit::wait_until(PATIENCE, probe).await {
        Some(order) => order,
        None => panic!("order never became {status}: {}", app.get_as(&app.operator, &path).await.1),
    }
}
