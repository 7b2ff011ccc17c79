//! The production shape: `farm api` and `farm worker` as separate processes
//! on PostgreSQL, RabbitMQ and S3. Each test gets its own database, queue
//! prefix and bucket, so tests never see each other's data.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};

use crate::helpers::{Api, FarmProcess, mint_key, price_reference_cube, reference_cube};
use crate::services;

pub(crate) struct Backends {
    pub(crate) env: Vec<(&'static str, String)>,
    pub(crate) amqp_url: String,
    pub(crate) prefix: String,
}

pub(crate) async fn backends() -> Option<Backends> {
    let database_url = services::fresh_postgres_database().await?;
    let amqp_url = services::rabbitmq().await?;
    let s3 = services::s3()?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("e2e-{}", &id[..12]);
    let env = vec![
        ("FARM_DATABASE_URL", database_url),
        ("FARM_AMQP_URL", amqp_url.clone()),
        ("FARM_QUEUE_PREFIX", prefix.clone()),
        ("FARM_S3_ENDPOINT", s3.endpoint),
        ("FARM_S3_BUCKET", format!("farm-e2e-{}", &id[..12])),
        ("FARM_S3_REGION", s3.region),
        ("AWS_ACCESS_KEY_ID", s3.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key),
    ];
    Some(Backends { env, amqp_url, prefix })
}

/// `farm api` on the backends, and a client with a seller's key.
fn seller_api(backends: &Backends) -> (FarmProcess, Api) {
    let token = mint_key("seller", "e2e", &[], &backends.env);
    let mut process = FarmProcess::spawn(&["api", "--listen", "127.0.0.1:0"], &backends.env);
    let api = Api::new(&process.wait_for_listening(), &token);
    (process, api)
}

/// The farm's queues, by suffix.
const QUEUES: [&str; 4] = ["pricing.jobs.fast", "pricing.jobs.slow", "pricing.results", "pricing.dead-letters"];

/// The queue exists, and declaring it as a classic queue is refused: the
/// broker refuses a declaration whose arguments differ from the queue's, so
/// it is a quorum queue. (`scheduler`'s tests check every argument.)
async fn assert_durable_quorum(connection: &lapin::Connection, queue: &str) {
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    assert!(channel.queue_declare(queue.into(), passive, FieldTable::default()).await.is_ok(), "{queue} exists");
    let channel = connection.create_channel().await.unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("classic".into()));
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    assert!(channel.queue_declare(queue.into(), durable, arguments).await.is_err(), "{queue} must not be classic");
}

/// Removes the test's queues and exchanges (see
/// `services::delete_broker_objects`).
pub(crate) async fn delete_queues(amqp_url: &str, prefix: &str) {
    services::delete_broker_objects(amqp_url, prefix).await;
}

#[tokio::test]
async fn api_and_worker_price_a_model_through_postgres_rabbitmq_and_s3() {
    let Some(backends) = backends().await else { return };
    let (api_process, api) = seller_api(&backends);
    let mut worker = FarmProcess::spawn(&["worker", "--listen", "127.0.0.1:0"], &backends.env);
    worker.wait_for_listening();

    let job = price_reference_cube(&api, &api_process).await;
    assert_eq!(job["quote"]["material"], "pla");
    // The file streams back from S3 as it was uploaded, and its analysis is
    // the one its quote measured.
    let model_id = job["model_id"].as_str().unwrap();
    let response = api.http.get(format!("{}/v1/models/{model_id}", api.base)).bearer_auth(&api.token).send().await;
    let response = response.unwrap();
    assert_eq!((response.status().as_u16(), response.headers()["content-type"].to_str().unwrap()), (200, "model/stl"));
    assert_eq!(response.bytes().await.unwrap(), reference_cube().0);
    let (status, analysis) = api.get(&format!("/v1/models/{model_id}/analysis")).await;
    assert_eq!((status, &analysis["analysis"]), (200, &job["quote"]["analysis"]), "{analysis}");
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["broker"], "ok");

    let connection = lapin::Connection::connect(&backends.amqp_url, Default::default()).await.unwrap();
    for suffix in QUEUES {
        assert_durable_quorum(&connection, &format!("{}.{suffix}", backends.prefix)).await;
    }

    assert_eq!(worker.terminate(), 0, "worker stops cleanly on SIGTERM");
    assert_eq!(api_process.terminate(), 0, "api stops cleanly on SIGTERM");
    delete_queues(&backends.amqp_url, &backends.prefix).await;
}

/// Jobs submitted while no worker runs wait in the durable queue, and a
/// worker started later prices them all, and so an order of three parts,
/// one job per part.
#[tokio::test]
async fn jobs_wait_in_the_queue_until_a_worker_starts() {
    let Some(backends) = backends().await else { return };
    let (api_process, api) = seller_api(&backends);
    let (bytes, _) = crate::helpers::reference_cube();
    let (_, model) = api.upload(bytes).await;
    let model_id = model["model_id"].as_str().unwrap();
    let mut job_ids = Vec::new();
    for material in ["pla", "petg", "abs"] {
        let (status, accepted) = api.submit(model_id, material).await;
        assert_eq!(status, 202);
        job_ids.push(accepted["job_id"].as_str().unwrap().to_string());
    }
    for job_id in &job_ids {
        let (_, job) = api.get(&format!("/v1/pricing-jobs/{job_id}")).await;
        assert_eq!(job["status"], "queued", "no worker yet: {job}");
    }
    let parts = serde_json::json!({"items": [
        {"model_id": model_id, "material": "pla"},
        {"model_id": model_id, "material": "petg", "quantity": 2},
        {"model_id": model_id, "material": "abs", "quantity": 3},
    ]});
    let (status, order) = api.post("/v1/orders", &parts).await;
    assert_eq!((status, order["part_count"].as_i64()), (201, Some(3)), "{order}");
    let order_path = format!("/v1/orders/{}", order["order_id"].as_str().unwrap());

    let mut worker = FarmProcess::spawn(&["worker", "--listen", "127.0.0.1:0"], &backends.env);
    worker.wait_for_listening();
    for job_id in &job_ids {
        let job = api.wait_for_job(job_id, &api_process).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let priced = testkit::wait_until(Duration::from_secs(60), || async {
        let (_, order) = api.get(&order_path).await;
        (order["status"] == "PRICED").then_some(order)
    })
    .await;
    let priced = priced.unwrap_or_else(|| panic!("the order of parts was never priced; log:\n{}", api_process.logs()));
    let parts = priced["parts"].as_array().unwrap();
    assert!(parts.iter().all(|p| p["status"] == "priced"), "{priced}");
    let alone: f64 = parts.iter().map(|p| p["total"].as_f64().unwrap()).sum();
    assert!(priced["total"].as_f64().unwrap() < alone, "the setup fee is charged once: {priced}");
    assert_eq!(worker.terminate(), 0);
    assert_eq!(api_process.terminate(), 0);
    delete_queues(&backends.amqp_url, &backends.prefix).await;
}

/// PostgreSQL refuses NUL in text with an error of its own (a 500 before
/// the API checked text itself): on this stack, as on SQLite, such input is
/// a client error naming the field.
#[tokio::test]
async fn control_characters_are_client_errors_on_postgresql_too() {
    let Some(backends) = backends().await else { return };
    let (api_process, api) = seller_api(&backends);
    let (bytes, _) = crate::helpers::reference_cube();
    let (_, model) = api.upload(bytes).await;
    let order = serde_json::json!({"model_id": model["model_id"], "material": "pla", "customer": "Bo\u{0}b"});
    let (status, refused) = api.post("/v1/orders", &order).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("`customer`"), "{refused}");
    let (status, missing) = api.get("/v1/orders/abc%00def").await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_found")), "{missing}");
    let (status, missing) = api.get("/v1/pricing-jobs/abc%00def").await;
    assert_eq!(status, 404, "{missing}");
    let (status, refused) = api.get("/v1/orders?cursor=1:a%00b").await;
    assert_eq!(status, 400, "{refused}");
    assert!(!api_process.logs().contains("request failed"), "no 5xx was logged:\n{}", api_process.logs());
    assert_eq!(api_process.terminate(), 0);
    delete_queues(&backends.amqp_url, &backends.prefix).await;
}

#[tokio::test]
async fn the_audit_refuses_a_database_that_holds_no_farm_and_leaves_it_untouched() {
    let Some(database_url) = services::fresh_postgres_database().await else { return };
    let audit = || {
        crate::helpers::farm_command()
            .args(["orders", "audit", "--database-url", &database_url])
            .output()
            .expect("run farm orders audit")
    };
    for _ in 0..2 {
        // Twice: the first refusal must not have made it a farm.
        let out = audit();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("holds no farm"), "{stderr}");
    }
    // Once the farm has used it, the same audit runs.
    mint_key("seller", "audit", &[], &[("FARM_DATABASE_URL", database_url.clone())]);
    let out = audit();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
