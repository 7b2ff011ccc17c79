//! `farm serve` with no configuration: SQLite, a local model folder and an
//! in-process queue, all in one process.

use crate::helpers::{Api, FarmProcess, path_str, price_reference_cube};

#[tokio::test]
async fn serve_with_no_configuration_prices_a_model_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let mut farm = FarmProcess::spawn(&["serve", "--data-dir", &path_str(data.path()), "--listen", "127.0.0.1:0"], &[]);
    let api = Api::new(&farm.wait_for_listening());

    let job = price_reference_cube(&api, &farm).await;
    assert_eq!(job["quote"]["watertight"], true);

    let (status, ready) = api.get("/readyz").await;
    assert_eq!((status, &ready["checks"]["database"]), (200, &serde_json::json!("ok")));
    assert!(data.path().join("farm.db").exists(), "the embedded database lives in the data directory");
    let model_id = job["model_id"].as_str().unwrap();
    assert!(data.path().join(format!("models/{model_id}.stl")).exists(), "the model lives in the data directory");

    let metrics = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("farm_jobs_submitted_total"), "{metrics}");
    assert!(metrics.contains("farm_worker_jobs_total{outcome=\"succeeded\"}"), "{metrics}");

    assert_eq!(farm.terminate(), 0, "SIGTERM is a clean stop");
}

/// The in-process queue forgets on exit, so a job it held when the process
/// died must be re-queued from the database when the farm starts again.
#[tokio::test]
async fn a_job_lost_with_the_in_process_queue_is_priced_after_a_restart() {
    use sqlx::Connection;

    let data = tempfile::tempdir().unwrap();
    let dir = path_str(data.path());
    let (bytes, _) = crate::helpers::reference_cube();
    let mut farm = FarmProcess::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"], &[]);
    let api = Api::new(&farm.wait_for_listening());
    let (_, model) = api.upload(bytes).await;
    let model_id = model["model_id"].as_str().unwrap().to_string();
    assert_eq!(farm.terminate(), 0);

    // What a crash leaves behind: a queued job whose outbox row was already
    // relayed into the (now vanished) in-process queue.
    let url = format!("sqlite://{}", data.path().join("farm.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let job_id = "00000000-0000-7000-8000-00000000c0de";
    sqlx::query(
        "INSERT INTO pricing_jobs (job_id, model_id, material, quantity, status, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, 'pla', 2, 'queued', 1, 1)",
    )
    .bind(job_id)
    .bind(&model_id)
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox (destination, job_id, payload, created_at_ms, sent_at_ms) VALUES ('jobs', $1, '{}', 1, 2)",
    )
    .bind(job_id)
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();

    let mut farm = FarmProcess::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"], &[]);
    let api = Api::new(&farm.wait_for_listening());
    let job = api.wait_for_job(job_id, &farm).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["quote"]["quantity"], 2);
    assert_eq!(farm.terminate(), 0);
}
