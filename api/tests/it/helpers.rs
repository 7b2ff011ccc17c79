//! `spawn_app`: the API plus an in-process worker on a fresh SQLite database,
//! a temporary model folder and an in-process queue, on a free port.

use std::sync::Arc;
use std::time::Duration;

use api::{ApiSettings, Application, Services, Store};
use scheduler::broker::MemoryBroker;
use scheduler::{BlobSettings, BlobStore, Broker, Pricing, Topology, Worker, WorkerSettings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    data: tempfile::TempDir,
}

pub(crate) fn cube_stl(side: f32) -> Vec<u8> {
    mesh::write_binary_stl(&mesh::cuboid([side; 3]))
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(ApiSettings::default()).await
}

pub(crate) async fn spawn_app_with(settings: ApiSettings) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(data.path()), 5).await.unwrap();
    let broker = Broker::Memory(MemoryBroker::new());
    let blobs = BlobStore::open(&BlobSettings::Local { dir: data.path().into() }).await.unwrap();
    let topology = Topology::with_prefix("test");
    let pricing = Arc::new(Pricing::default());
    let worker = Worker::new(
        broker.clone(),
        blobs.clone(),
        topology.clone(),
        pricing.clone(),
        WorkerSettings { compute_threads: 1, ..WorkerSettings::default() },
    )
    .unwrap();
    let settings = ApiSettings { listen: "127.0.0.1:0".parse().unwrap(), ..settings };
    let services = Services { store, broker, blobs, topology, pricing };
    let app = Application::build(settings, services).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let shutdown = CancellationToken::new();
    let tasks = vec![
        tokio::spawn({
            let stop = shutdown.clone();
            async move { worker.run(stop).await.unwrap() }
        }),
        tokio::spawn({
            let stop = shutdown.clone();
            async move { app.run_until_stopped(stop).await.unwrap() }
        }),
    ];
    TestApp { base, http: reqwest::Client::new(), shutdown, tasks, data }
}

impl TestApp {
    pub(crate) async fn post_model(&self, bytes: Vec<u8>) -> (u16, Value) {
        let response = self.http.post(format!("{}/v1/models", self.base)).body(bytes).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub(crate) async fn post_job(&self, body: Value) -> (u16, Value) {
        let response = self.http.post(format!("{}/v1/pricing-jobs", self.base)).json(&body).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn wait_for_job(&self, job_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, job) = self.get(&format!("/v1/pricing-jobs/{job_id}")).await;
            if matches!(job["status"].as_str(), Some("succeeded" | "failed")) {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job stuck: {job}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the app and its worker, as SIGTERM would, and waits for both.
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}
