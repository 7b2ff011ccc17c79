//! A client for one farm's HTTP API, calling with one key: the typed test
//! client (in the zero2prod `TestApp` style) the integration tests, the
//! end-to-end tests and the bench harness share.

use std::time::Duration;

use serde_json::Value;

use crate::FarmProcess;

/// How long one request may take before it fails: a request the farm never
/// answers fails the test (or the bench run) instead of holding it.
const REQUEST_PATIENCE: Duration = Duration::from_secs(120);

/// The farm at `base` (`http://host:port`), called with `token`.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
}

impl ApiClient {
    /// A client of the farm listening at `addr` (`host:port`, or a whole
    /// `http://…` base).
    pub fn new(addr: &str, token: &str) -> Self {
        let http = reqwest::Client::builder().timeout(REQUEST_PATIENCE).build().expect("an HTTP client");
        let base = if addr.contains("://") { addr.trim_end_matches('/').to_string() } else { format!("http://{addr}") };
        Self { base, http, token: token.to_string() }
    }

    /// The same farm, called with another key (the connection pool is shared).
    pub fn with_token(&self, token: &str) -> Self {
        Self { base: self.base.clone(), http: self.http.clone(), token: token.to_string() }
    }

    /// A request with `token` (`None`: anonymous) and a JSON (`json`) or raw
    /// body: its status and its body as JSON (`null` when it is not JSON).
    pub async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<reqwest::Body>,
        json: bool,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if json {
            request = request.header("content-type", "application/json");
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// [`try_send`](Self::try_send), for a test: a request that cannot be
    /// sent fails it.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<reqwest::Body>,
        json: bool,
    ) -> (u16, Value) {
        let what = format!("{method} {path}");
        self.try_send(method, path, token, body, json).await.unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Some(&self.token), None, false).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(&self.token), Some(body.to_string().into()), true).await
    }

    /// `POST /v1/models` with the model's bytes.
    pub async fn upload(&self, bytes: Vec<u8>) -> (u16, Value) {
        self.send(reqwest::Method::POST, "/v1/models", Some(&self.token), Some(bytes.into()), false).await
    }

    /// `POST /v1/pricing-jobs` for one part of `model_id` in `material`.
    pub async fn submit(&self, model_id: &str, material: &str) -> (u16, Value) {
        let body = serde_json::json!({ "model_id": model_id, "material": material, "quantity": 1 });
        self.post("/v1/pricing-jobs", &body).await
    }

    /// Polls the job until it reaches a final state; fails the test with
    /// `process`'s log when it has not within a minute.
    pub async fn wait_for_job(&self, job_id: &str, process: &impl AsRef<FarmProcess>) -> Value {
        let process = process.as_ref();
        let path = format!("/v1/pricing-jobs/{job_id}");
        let ended = crate::wait_until(Duration::from_secs(60), || async {
            let (status, job) = self.get(&path).await;
            assert_eq!(status, 200, "{job}");
            matches!(job["status"].as_str(), Some("succeeded" | "failed" | "cancelled")).then_some(job)
        })
        .await;
        ended.unwrap_or_else(|| panic!("job {job_id} never ended; log:\n{}", process.logs()))
    }
}
