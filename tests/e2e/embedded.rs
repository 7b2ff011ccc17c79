//! `farm serve` with no configuration: SQLite, a local model folder and an
//! in-process queue, all in one process.

use crate::helpers::{Api, FarmProcess, mint_key, path_str, price_reference_cube};

#[tokio::test]
async fn serve_with_no_configuration_prices_a_model_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let token = mint_key("seller", "e2e", &["--data-dir", &path_str(data.path())], &[]);
    let mut farm = FarmProcess::spawn(&["serve", "--data-dir", &path_str(data.path()), "--listen", "127.0.0.1:0"], &[]);
    let api = Api::new(&farm.wait_for_listening(), &token);

    let job = price_reference_cube(&api, &farm).await;
    assert_eq!(job["quote"]["watertight"], true);

    let (status, ready) = api.get("/readyz").await;
    assert_eq!((status, &ready["checks"]["database"]), (200, &serde_json::json!("ok")));
    assert!(data.path().join("farm.db").exists(), "the embedded database lives in the data directory");
    let model_id = job["model_id"].as_str().unwrap();
    assert!(data.path().join(format!("models/{model_id}.stl")).exists(), "the model lives in the data directory");

    let metrics = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("farm_jobs_submitted_total"), "{metrics}");
    assert!(metrics.contains("farm_jobs_total{lane=\"fast\",outcome=\"succeeded\"}"), "{metrics}");

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
    let token = mint_key("seller", "e2e", &["--data-dir", &dir], &[]);
    let mut farm = FarmProcess::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"], &[]);
    let api = Api::new(&farm.wait_for_listening(), &token);
    let (_, model) = api.upload(bytes).await;
    let model_id = model["model_id"].as_str().unwrap().to_string();
    assert_eq!(farm.terminate(), 0);

    // What a crash leaves behind: a queued job whose outbox row was already
    // relayed into the (now vanished) in-process queue.
    let url = format!("sqlite://{}", data.path().join("farm.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let job_id = "00000000-0000-7000-8000-00000000c0de";
    // Its owner: the key the job view is read with.
    let owner = token.split_once('.').unwrap().0.trim_start_matches("farm_seller_").to_string();
    sqlx::query(
        "INSERT INTO pricing_jobs (job_id, model_id, material, quantity, status, created_at_ms, updated_at_ms, \
                                   owner_key_id) \
         VALUES ($1, $2, 'pla', 2, 'queued', 1, 1, $3)",
    )
    .bind(job_id)
    .bind(&model_id)
    .bind(&owner)
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
    let api = Api::new(&farm.wait_for_listening(), &token);
    let job = api.wait_for_job(job_id, &farm).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["quote"]["quantity"], 2);
    assert_eq!(farm.terminate(), 0);
}

/// A quote is the same document whichever way it is asked for: the farm's
/// workers and `farm quote` use the same price book, profile and code.
#[tokio::test]
async fn the_served_quote_is_the_cli_quote_under_a_shop_profile() {
    let data = tempfile::tempdir().unwrap();
    let profile = data.path().join("shop.ini");
    std::fs::write(&profile, "layer_height = 0.2\nfill_density = 35%\nperimeters = 2\nseam_position = rear\n").unwrap();
    let profile = path_str(&profile);
    let dir = path_str(&data.path().join("farm"));
    let env = [("FARM_FDM_PROFILE", profile.clone())];
    let token = mint_key("seller", "e2e", &["--data-dir", &dir], &[]);
    let mut farm = FarmProcess::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"], &env);
    let api = Api::new(&farm.wait_for_listening(), &token);

    let (bytes, _) = crate::helpers::reference_cube();
    let file = data.path().join("cube.stl");
    std::fs::write(&file, &bytes).unwrap();
    let (_, model) = api.upload(bytes).await;
    let (status, accepted) = api.submit(model["model_id"].as_str().unwrap(), "pla").await;
    assert_eq!(status, 202, "{accepted}");
    let job = api.wait_for_job(accepted["job_id"].as_str().unwrap(), &farm).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(farm.terminate(), 0);

    let out = crate::helpers::farm_command()
        .args(["quote", &path_str(&file), "--profile", &profile, "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let local: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["quote"], local, "the served quote differs from `farm quote`");
    assert_eq!(local["ignored_profile_keys"], serde_json::json!(["seam_position"]), "{local}");
    assert_eq!(local["layers"], 100, "0.2 mm layers from the profile: {local}");
}
