//! Traces and logs of the production shape: one trace from the API's request
//! through the outbox and RabbitMQ to the worker and back, exported over
//! OTLP to a collector; JSON log lines that carry the job's id and no secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::helpers::{Api, FarmProcess, mint_key, reference_cube};
use crate::production::backends;

/// A stand-in OpenTelemetry collector: accepts OTLP/HTTP JSON on
/// `/v1/traces` and keeps every span it is sent.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Value,
}

impl Collector {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    // HTTP/1.1 with keep-alive: one request after another.
                    loop {
                        let mut request_line = String::new();
                        if read.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            read.read_line(&mut line).await.unwrap();
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        read.read_exact(&mut body).await.unwrap();
                        assert!(request_line.starts_with("POST /v1/traces "), "{request_line}");
                        let export: Value = serde_json::from_slice(&body).expect("OTLP/HTTP JSON");
                        kept.lock().unwrap().extend(spans_of(&export));
                        write
                            .write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                            )
                            .await
                            .unwrap();
                    }
                });
            }
        });
        Self { endpoint, spans }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

/// The spans of one OTLP `ExportTraceServiceRequest`.
fn spans_of(export: &Value) -> Vec<Span> {
    let mut spans = Vec::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_string();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_string();
                spans.push(Span {
                    service: service.clone(),
                    name: text("name"),
                    trace_id: text("traceId").to_ascii_lowercase(),
                    span_id: text("spanId").to_ascii_lowercase(),
                    parent_span_id: text("parentSpanId").to_ascii_lowercase(),
                    attributes: span["attributes"].clone(),
                });
            }
        }
    }
    spans
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let attribute = span.attributes.as_array()?.iter().find(|a| a["key"] == key)?;
    let value = &attribute["value"];
    value["stringValue"].as_str().map(str::to_string).or_else(|| value["intValue"].as_str().map(str::to_string))
}

/// The one span named `name` in `spans`, or a failure that lists them all.
fn one<'a>(spans: &'a [Span], name: &str, service: &str) -> &'a Span {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name && s.service == service).collect();
    assert_eq!(found.len(), 1, "one `{name}` span from {service} in the trace; the trace has:\n{spans:#?}");
    found[0]
}

#[tokio::test]
async fn one_trace_follows_a_job_from_the_request_through_the_queue_to_the_worker_and_back() {
    let Some(backends) = backends().await else { return };
    let collector = Collector::start().await;
    let mut env = backends.env.clone();
    env.extend([
        ("FARM_OTLP_ENDPOINT", collector.endpoint.clone()),
        ("FARM_OTLP_PROTOCOL", "http/json".to_string()),
        // Export within a tenth of a second instead of five.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ]);
    let token = mint_key("seller", "traces", &[], &env);
    let mut api_process = FarmProcess::spawn(&["api", "--listen", "127.0.0.1:0"], &env);
    let api = Api::new(&api_process.wait_for_listening(), &token);
    let mut worker = FarmProcess::spawn(&["worker", "--listen", "127.0.0.1:0"], &env);
    worker.wait_for_listening();

    let (status, model) = api.upload(reference_cube().0).await;
    assert_eq!(status, 201, "{model}");
    // The caller's own trace: the farm's spans must join it.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = "00f067aa0ba902b7";
    let response = api
        .http
        .post(format!("{}/v1/pricing-jobs", api.base))
        .bearer_auth(&api.token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&serde_json::json!({ "model_id": model["model_id"], "material": "pla", "quantity": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    let job = api.wait_for_job(&job_id, &api_process).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    // Wait on the collector until the last hop (the API storing the
    // worker's success) has arrived.
    let of_this_trace = || -> Vec<Span> { collector.spans().into_iter().filter(|s| s.trace_id == trace_id).collect() };
    let complete = testkit::wait_until(Duration::from_secs(30), || async {
        let trace = of_this_trace();
        let consumed = trace.iter().filter(|s| s.name == "result consumer" && s.service == "farm-api").count();
        // Started, progress and succeeded events: at least two results. The
        // job's own span ends after its last result is sent, so its export
        // may come after them: wait for it too.
        let job_span = trace.iter().any(|s| s.name == "farm.job" && s.service == "farm-worker-fast");
        (consumed >= 2 && job_span && trace.iter().any(|s| s.name == "price")).then_some(trace)
    })
    .await;
    let trace = complete.unwrap_or_else(|| {
        panic!(
            "the trace never completed; it has:\n{:#?}\napi log:\n{}\nworker log:\n{}",
            of_this_trace(),
            api_process.logs(),
            worker.logs()
        )
    });

    let request = one(&trace, "POST /v1/pricing-jobs", "farm-api");
    assert_eq!(request.parent_span_id, caller_span, "the request continues the caller's trace");
    let publish = one(&trace, "outbox.publish", "farm-api");
    assert_eq!(publish.parent_span_id, request.span_id, "the relay publishes as part of the request's trace");
    assert_eq!(attribute(publish, "job_id").as_deref(), Some(job_id.as_str()));
    let job_span = one(&trace, "farm.job", "farm-worker-fast");
    assert_eq!(job_span.parent_span_id, publish.span_id, "the worker continues the trace from the message headers");
    assert_eq!(attribute(job_span, "job_id").as_deref(), Some(job_id.as_str()));
    assert_eq!(attribute(job_span, "outcome").as_deref(), Some("succeeded"));
    for step in ["fetch_model", "price"] {
        assert_eq!(one(&trace, step, "farm-worker-fast").parent_span_id, job_span.span_id, "{step} is part of the job");
    }
    for consumed in trace.iter().filter(|s| s.name == "result consumer") {
        assert_eq!(consumed.parent_span_id, job_span.span_id, "results come back in the job's trace");
    }

    assert_eq!(worker.terminate(), 0);
    assert_eq!(api_process.terminate(), 0);
    crate::production::delete_queues(&backends.amqp_url, &backends.prefix).await;
}

#[tokio::test]
async fn logs_are_json_lines_that_carry_the_job_id_and_never_a_secret() {
    let Some(backends) = backends().await else { return };
    let mut env = backends.env.clone();
    // PostgreSQL here trusts every local user, so any password works: give it
    // one we can look for.
    let password = format!("pw{}", uuid::Uuid::new_v4().simple());
    let database_url = env.iter_mut().find(|(k, _)| *k == "FARM_DATABASE_URL").map(|(_, v)| v).unwrap();
    if let Some((scheme_user, rest)) = database_url.split_once('@')
        && !scheme_user.trim_start_matches("postgres://").contains(':')
    {
        *database_url = format!("{scheme_user}:{password}@{rest}");
    }
    let secrets: Vec<String> = [
        Some(password.clone()),
        env.iter().find(|(k, _)| *k == "AWS_SECRET_ACCESS_KEY").map(|(_, v)| v.clone()),
        env.iter().find(|(k, _)| *k == "FARM_AMQP_URL").map(|(_, v)| v.clone()),
        env.iter().find(|(k, _)| *k == "FARM_DATABASE_URL").map(|(_, v)| v.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let token = mint_key("seller", "logs", &[], &env);
    let mut api_process = FarmProcess::spawn(&["api", "--listen", "127.0.0.1:0"], &env);
    let api = Api::new(&api_process.wait_for_listening(), &token);
    let mut worker = FarmProcess::spawn(&["worker", "--listen", "127.0.0.1:0"], &env);
    worker.wait_for_listening();

    let (_, model) = api.upload(reference_cube().0).await;
    let (status, accepted) = api.submit(model["model_id"].as_str().unwrap(), "pla").await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    assert_eq!(api.wait_for_job(&job_id, &api_process).await["status"], "succeeded");
    // An order: its changes are logged with its id.
    let (status, order) =
        api.post("/v1/orders", &serde_json::json!({ "model_id": model["model_id"], "material": "pla" })).await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let path = format!("/v1/orders/{order_id}");
    let priced = testkit::wait_until(Duration::from_secs(60), || async {
        (api.get(&path).await.1["status"] == "PRICED").then_some(())
    });
    assert!(priced.await.is_some(), "order {order_id} not priced:\n{}", api_process.logs());
    // A forged key: the failure path logs too, and must not echo the key.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, _) =
        Api::new(api.base.trim_start_matches("http://"), &forged).get(&format!("/v1/pricing-jobs/{job_id}")).await;
    assert_eq!(status, 401);
    for process in [&mut worker, &mut api_process] {
        process.signal("TERM");
        assert_eq!(process.wait_exit(Duration::from_secs(30)), Some(0), "{}", process.logs());
    }

    for (process, log) in [("api", api_process.logs()), ("worker", worker.logs())] {
        for line in log.lines() {
            let parsed: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{process}: not JSON ({e}): {line}"));
            assert!(parsed["level"].is_string() && parsed["timestamp"].is_string(), "{process}: {line}");
        }
        for secret in secrets.iter().chain([&token, &forged]) {
            assert!(!log.contains(secret.as_str()), "the {process} log shows a secret ({secret}):\n{log}");
        }
    }
    let priced = api_process.logs().lines().map(|line| serde_json::from_str::<Value>(line).unwrap()).any(|line| {
        line["message"] == "order changed" && line["order_id"] == order_id.as_str() && line["status"] == "PRICED"
    });
    assert!(priced, "the API logs the order's change to PRICED with its id:\n{}", api_process.logs());
    // Every line the worker logged while pricing the job names it.
    let worker_log = worker.logs();
    let job_lines: Vec<Value> = worker_log
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s["name"] == "job")))
        .collect();
    assert!(!job_lines.is_empty(), "the worker logged nothing inside the job:\n{worker_log}");
    for line in &job_lines {
        let job = line["spans"].as_array().unwrap().iter().find(|s| s["name"] == "job").unwrap();
        assert_eq!(job["job_id"], job_id.as_str(), "{line}");
    }
    assert!(
        job_lines.iter().any(|line| line["message"] == "job done" && line["outcome"] == "succeeded"),
        "the job's end is logged:\n{worker_log}"
    );
    crate::production::delete_queues(&backends.amqp_url, &backends.prefix).await;
}
