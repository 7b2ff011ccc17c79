//! The job farm in process: lanes, cancellation, deadlines, progress and
//! heartbeats, failures and dead letters, with faults injected into the
//! workers.

use std::time::{Duration, Instant};

use api::ApiSettings;
use scheduler::{FaultInjection, Lane, Outgoing, ResultEvent, ResultMessage, Stage, WorkerSettings};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::helpers::{cube_stl, spawn_farm, test_worker};

fn model_id(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn slowed(lane: Lane, model: &str, by: Duration) -> WorkerSettings {
    WorkerSettings {
        faults: FaultInjection { slow_job: by, slow_model: Some(model.to_string()), ..FaultInjection::default() },
        ..test_worker(lane)
    }
}

fn status(job: &Value) -> &str {
    job["status"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_running_job_reports_its_stage_percentage_and_heartbeat() {
    let slow = cube_stl(12.0);
    let app =
        spawn_farm(ApiSettings::default(), vec![slowed(Lane::Fast, &model_id(&slow), Duration::from_secs(2))]).await;
    let job_id = app.submit(slow).await;
    let running = app.wait_until(&job_id, "reported its analysis", |j| j["stage"] == "analysing").await;
    assert_eq!((status(&running), running["liveness"].as_str()), ("running", Some("alive")), "{running}");
    let percent = running["percent"].as_i64().unwrap();
    assert!((50..=75).contains(&percent), "analysing spans 50-75%: {running}");
    assert!(running["heartbeat_at_ms"].as_i64().unwrap() >= running["started_at_ms"].as_i64().unwrap());
    assert!(running["worker"].as_str().unwrap().starts_with("worker-"), "{running}");
    assert_eq!((running["lane"].as_str(), running["deliveries"].as_i64()), (Some("fast"), Some(1)));
    let done = app.wait_for_job(&job_id).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    assert!(done["compute_ms"].as_i64().unwrap() >= 2000, "the injected 2 s are part of the job: {done}");
    assert_eq!((done["stage"].clone(), done["percent"].as_i64()), (Value::Null, Some(100)));
    app.stop().await;
}

#[tokio::test]
async fn a_running_job_cancelled_stops_within_a_second_and_frees_its_slot() {
    let slow = cube_stl(13.0);
    let worker = WorkerSettings { slots: 1, ..slowed(Lane::Fast, &model_id(&slow), Duration::from_secs(60)) };
    let app = spawn_farm(ApiSettings::default(), vec![worker]).await;
    let job_id = app.submit(slow).await;
    app.wait_until(&job_id, "started", |j| j["stage"] == "analysing").await;
    let (code, cancelled) = app.post(&format!("/v1/pricing-jobs/{job_id}/cancel")).await;
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!((cancelled["status"].as_str(), cancelled["was"].as_str()), (Some("cancelled"), Some("running")));
    let (_, job) = app.get(&format!("/v1/pricing-jobs/{job_id}")).await;
    assert_eq!(status(&job), "cancelled");

    // The only slot is free again well before the 60 s the job would take.
    let stopped = Instant::now();
    let next = app.submit(cube_stl(5.0)).await;
    let done = app.wait_for_job(&next).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    assert!(stopped.elapsed() < Duration::from_secs(10), "the slot took {:?} to free", stopped.elapsed());
    // Cancelling it again, or a finished job, is a conflict that says why.
    let (code, body) = app.post(&format!("/v1/pricing-jobs/{job_id}/cancel")).await;
    assert_eq!((code, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("cancelled"), "{body}");
    let (code, _) = app.post("/v1/pricing-jobs/nope/cancel").await;
    assert_eq!(code, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_queued_job_cancelled_is_never_priced() {
    // No worker for the slow lane: a slow job waits in the queue.
    let settings = ApiSettings { slow_lane_triangles: 100, ..ApiSettings::default() };
    let app = spawn_farm(settings, vec![test_worker(Lane::Fast)]).await;
    let big = mesh::write_binary_stl(&mesh::uv_sphere(10.0, 20, 20));
    let job_id = app.submit(big).await;
    let (_, job) = app.get(&format!("/v1/pricing-jobs/{job_id}")).await;
    assert_eq!((status(&job), job["lane"].as_str()), ("queued", Some("slow")), "{job}");
    let (code, cancelled) = app.post(&format!("/v1/pricing-jobs/{job_id}/cancel")).await;
    assert_eq!((code, cancelled["was"].as_str()), (200, Some("queued")), "{cancelled}");
    assert_eq!(app.store.job_events(&job_id).await.unwrap(), vec!["queued", "cancelled"]);
    app.stop().await;
}

#[tokio::test]
async fn a_full_slow_lane_does_not_delay_the_fast_lane() {
    let settings = ApiSettings { slow_lane_triangles: 100, ..ApiSettings::default() };
    let big = mesh::write_binary_stl(&mesh::uv_sphere(10.0, 20, 20));
    let slow_worker = WorkerSettings { slots: 1, ..slowed(Lane::Slow, &model_id(&big), Duration::from_secs(60)) };
    let app = spawn_farm(settings, vec![test_worker(Lane::Fast), slow_worker]).await;
    let blocking = app.submit(big).await;
    app.wait_until(&blocking, "started", |j| j["status"] == "running").await;
    // The slow lane's only slot is taken for a minute; fast jobs still flow.
    for side in [4.0, 6.0, 8.0] {
        let job = app.submit(cube_stl(side)).await;
        let done = app.wait_for_job(&job).await;
        assert_eq!((status(&done), done["lane"].as_str()), ("succeeded", Some("fast")), "{done}");
    }
    let (_, slow) = app.get(&format!("/v1/pricing-jobs/{blocking}")).await;
    assert_eq!((status(&slow), slow["lane"].as_str()), ("running", Some("slow")), "{slow}");
    app.stop().await;
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_with_deadline_exceeded() {
    let slow = cube_stl(14.0);
    let worker = WorkerSettings {
        deadline: Duration::from_millis(500),
        ..slowed(Lane::Fast, &model_id(&slow), Duration::from_secs(60))
    };
    let app = spawn_farm(ApiSettings::default(), vec![worker]).await;
    let job_id = app.submit(slow).await;
    let job = app.wait_for_job(&job_id).await;
    assert_eq!(status(&job), "failed", "{job}");
    assert_eq!(job["error"]["kind"], "deadline_exceeded");
    assert!(job["error"]["message"].as_str().unwrap().contains("deadline exceeded"), "{job}");
    assert!(job["compute_ms"].as_i64().unwrap() < 5000, "stopped soon after the deadline: {job}");
    app.stop().await;
}

#[tokio::test]
async fn a_panicking_analysis_fails_the_job_at_once_and_the_worker_lives_on() {
    let poison = cube_stl(15.0);
    let worker = WorkerSettings {
        faults: FaultInjection { panic_on_model: Some(model_id(&poison)), ..FaultInjection::default() },
        ..test_worker(Lane::Fast)
    };
    let app = spawn_farm(ApiSettings::default(), vec![worker]).await;
    let job_id = app.submit(poison).await;
    let job = app.wait_for_job(&job_id).await;
    assert_eq!((status(&job), job["error"]["kind"].as_str()), ("failed", Some("internal")), "{job}");
    assert_eq!(job["deliveries"], 1, "no retry: {job}");
    let healthy = app.submit(cube_stl(3.0)).await;
    assert_eq!(status(&app.wait_for_job(&healthy).await), "succeeded");
    app.stop().await;
}

#[tokio::test]
async fn an_unreadable_job_message_is_dead_lettered_and_its_job_failed_with_the_reason() {
    let settings = ApiSettings { slow_lane_triangles: 100, ..ApiSettings::default() };
    let app = spawn_farm(settings, vec![test_worker(Lane::Fast)]).await;
    // A slow job no worker takes, then a corrupt copy of it on the fast lane.
    let job_id = app.submit(mesh::write_binary_stl(&mesh::uv_sphere(10.0, 20, 20))).await;
    let garbage = Outgoing::new(b"{not json".to_vec()).with_id(job_id.clone());
    app.broker.publish(app.topology.jobs(Lane::Fast), &garbage).await.unwrap();
    let job = app.wait_for_job(&job_id).await;
    assert_eq!((status(&job), job["error"]["kind"].as_str()), ("failed", Some("dead_lettered")), "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("could not read"), "{job}");
    assert_eq!(app.store.dead_letter_counts().await.unwrap(), vec![("rejected".to_string(), 1)]);
    // Counted right after the job's row changed: wait for it.
    app.wait_for_metrics(&["farm_dead_letters_total{lane=\"fast\",reason=\"rejected\"}"]).await;
    app.stop().await;
}

#[tokio::test]
async fn a_model_deleted_from_the_store_fails_as_missing_without_retries() {
    let app = spawn_farm(ApiSettings::default(), vec![test_worker(Lane::Fast)]).await;
    let (_, model) = app.post_model(cube_stl(16.0)).await;
    let id = model["model_id"].as_str().unwrap().to_string();
    std::fs::remove_file(app.data_dir().join(format!("models/{id}.stl"))).unwrap();
    let (_, accepted) = app.post_job(serde_json::json!({"model_id": id, "material": "pla"})).await;
    let job = app.wait_for_job(accepted["job_id"].as_str().unwrap()).await;
    assert_eq!((status(&job), job["error"]["kind"].as_str()), ("failed", Some("model_missing")), "{job}");
    app.stop().await;
}

#[tokio::test]
async fn models_built_to_be_expensive_fail_their_jobs_with_the_figures_instead_of_running() {
    let app = crate::helpers::spawn_app().await;
    // The 1 MB needle model (29 m tall), and one that fits a machine
    // but has more shells than the analysis takes.
    let cases = [
        (mesh::needles(20_000, 29_000.0, 20.0), "pricing", "fits none of"),
        (mesh::needles(60_000, 340.0, 20.0), "over_limit", "separate shells"),
    ];
    for (triangles, kind, message) in cases {
        let job_id = app.submit(mesh::write_binary_stl(&triangles)).await;
        let job = app.wait_for_job(&job_id).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["kind"], kind, "{job}");
        assert!(job["error"]["message"].as_str().unwrap().contains(message), "{job}");
        assert_eq!(job["deliveries"], 1, "refused once, not retried: {job}");
    }
    app.stop().await;
}

/// The message the relay sent for `job`, sent once more to `queue`: what a
/// relay that published twice, or a broker's redelivery, looks like.
async fn send_again(app: &crate::helpers::TestApp, job: &Value, queue: &str) {
    let message = scheduler::JobMessage {
        job_id: job["job_id"].as_str().unwrap().to_string(),
        model_id: job["model_id"].as_str().unwrap().to_string(),
        material: job["material"].as_str().unwrap().to_string(),
        quantity: job["quantity"].as_u64().unwrap() as u32,
        colour: None,
        lane: Lane::Fast,
        submitted_at_ms: 0,
    };
    let payload = serde_json::to_vec(&message).unwrap();
    app.broker.publish(queue, &Outgoing::new(payload).with_id(message.job_id.clone())).await.unwrap();
}

#[tokio::test]
async fn a_job_sent_twice_to_a_worker_that_runs_it_is_not_started_a_second_time() {
    let slow = cube_stl(18.0);
    let worker = WorkerSettings { slots: 2, ..slowed(Lane::Fast, &model_id(&slow), Duration::from_secs(2)) };
    let app = spawn_farm(ApiSettings::default(), vec![worker]).await;
    let job_id = app.submit(slow).await;
    let running = app.wait_until(&job_id, "started", |j| j["stage"] == "analysing").await;
    send_again(&app, &running, &app.topology.fast).await;
    app.wait_for_metrics(&["farm_job_duplicates_total{lane=\"fast\"}"]).await;
    let done = app.wait_for_job(&job_id).await;
    assert_eq!((status(&done), done["deliveries"].as_i64()), ("succeeded", Some(1)), "{done}");
    let events = app.store.job_events(&job_id).await.unwrap();
    assert_eq!(events, vec!["queued", "started", "succeeded"], "started once, finished once");
    app.stop().await;
}

#[tokio::test]
async fn a_worker_that_picks_up_a_finished_job_gives_it_up_unfinished() {
    let model = cube_stl(19.0);
    let mut app = spawn_farm(ApiSettings::default(), vec![test_worker(Lane::Fast)]).await;
    let job_id = app.submit(model.clone()).await;
    let done = app.wait_for_job(&job_id).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    // Another worker, one with no memory of the job, gets it again: slow
    // enough that the API's word reaches it while it computes.
    app.add_worker(slowed(Lane::Slow, &model_id(&model), Duration::from_secs(60))).await;
    send_again(&app, &done, &app.topology.slow).await;
    app.wait_for_metrics(&["farm_jobs_started_again_total{while=\"finished\"}"]).await;
    app.wait_for_metrics(&["farm_jobs_total{lane=\"slow\",outcome=\"yielded\"}"]).await;
    let (_, after) = app.get(&format!("/v1/pricing-jobs/{job_id}")).await;
    assert_eq!((status(&after), &after["quote"]), ("succeeded", &done["quote"]), "{after}");
    let events = app.store.job_events(&job_id).await.unwrap();
    assert_eq!(events, vec!["queued", "started", "succeeded"], "the second start changed nothing");
    app.stop().await;
}

#[tokio::test]
async fn twelve_slow_jobs_at_once_on_sqlite_each_run_once() {
    // The row: twelve slow jobs at once on the embedded database
    // made the relay fail with "database is locked" and three jobs ran twice.
    let models: Vec<Vec<u8>> = (0..12).map(|n| cube_stl(30.0 + n as f32)).collect();
    let worker = WorkerSettings {
        slots: 12,
        compute_threads: 12,
        faults: FaultInjection { slow_job: Duration::from_millis(700), ..FaultInjection::default() },
        ..test_worker(Lane::Fast)
    };
    // Twelve uploads at once: more than the default cap of eight.
    let quotas = api::quota::Quotas { concurrent_uploads: 12, ..api::quota::Quotas::default() };
    let app = spawn_farm(ApiSettings { quotas, ..ApiSettings::default() }, vec![worker]).await;
    let submitted = futures_util::future::join_all(models.into_iter().map(|bytes| app.submit(bytes))).await;
    for job_id in &submitted {
        let job = app.wait_for_job(job_id).await;
        assert_eq!((status(&job), job["deliveries"].as_i64()), ("succeeded", Some(1)), "{job}");
        let events = app.store.job_events(job_id).await.unwrap();
        assert_eq!(events, vec!["queued", "started", "succeeded"], "{job_id} ran once");
    }
    app.stop().await;
}

/// Takes the job's delivery off the fast queue as a worker named "ghost"
/// would, and tells the API that it runs the job; then gives the delivery
/// back, as the broker does when a worker's connection dies while the
/// worker goes on computing. The ghost's progress keeps it alive until
/// `silent` fires.
async fn ghost_runs(app: &crate::helpers::TestApp, job_id: &str, silent: CancellationToken) {
    let mut consumer = app.broker.consume(&app.topology.fast, 1).await.unwrap();
    let delivery = consumer.next().await.unwrap().unwrap();
    consumer.cancel().await;
    let started = ResultEvent::Started { worker: "ghost".into(), deliveries: 0, claim: false };
    ghost_says(app, job_id, started).await;
    app.wait_until(job_id, "run by the ghost", |j| j["status"] == "running" && j["worker"] == "ghost").await;
    let (broker, topology, job) = (app.broker.clone(), app.topology.clone(), job_id.to_string());
    tokio::spawn(async move {
        while !silent.is_cancelled() {
            let progress = ResultEvent::Progress { stage: Stage::Analysing, percent: 10, worker: "ghost".into() };
            let message = ResultMessage { job_id: job.clone(), event: progress, at_ms: scheduler::messages::now_ms() };
            let payload = serde_json::to_vec(&message).unwrap();
            let _ = broker.publish(&topology.results, &Outgoing::new(payload)).await;
            tokio::select! {
                _ = silent.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    delivery.release().await.unwrap();
}

async fn ghost_says(app: &crate::helpers::TestApp, job_id: &str, event: ResultEvent) {
    let message = ResultMessage { job_id: job_id.into(), event, at_ms: scheduler::messages::now_ms() };
    let payload = serde_json::to_vec(&message).unwrap();
    app.broker.publish(&app.topology.results, &Outgoing::new(payload).with_id(job_id)).await.unwrap();
}

#[tokio::test]
async fn a_redelivered_job_waits_while_its_first_worker_reports_and_is_given_up_when_that_worker_finishes() {
    let model = cube_stl(21.0);
    let mut app = spawn_farm(ApiSettings::default(), Vec::new()).await;
    let job_id = app.submit(model.clone()).await;
    let silent = CancellationToken::new();
    ghost_runs(&app, &job_id, silent.clone()).await;
    app.add_worker(test_worker(Lane::Fast)).await;
    // The redelivery is held, not computed, for as long as the ghost reports.
    app.wait_for_metrics(&["farm_job_claims_total{lane=\"fast\",answer=\"wait\"}"]).await;
    app.wait_for_metrics(&["farm_jobs_held_back_total{computing=\"no\"}"]).await;
    let job = app.get(&format!("/v1/pricing-jobs/{job_id}")).await.1;
    assert_eq!((status(&job), &job["worker"], &job["deliveries"]), ("running", &Value::from("ghost"), &Value::from(1)));
    // The ghost finishes: the held delivery is given up, never computed.
    let quote = scheduler::Pricing::default()
        .price_bytes(&model, &calculator::QuoteRequest::new("pla", 1), mesh::AnalysisOptions::default())
        .unwrap();
    ghost_says(&app, &job_id, ResultEvent::Succeeded { quote: Box::new(quote), quote_key: None }).await;
    silent.cancel();
    let done = app.wait_for_job(&job_id).await;
    assert_eq!((status(&done), &done["worker"]), ("succeeded", &Value::from("ghost")), "{done}");
    // The API never let it start: a start it allowed is a row of its own.
    let events = app.store.job_events(&job_id).await.unwrap();
    assert_eq!(events, vec!["queued", "started", "succeeded"], "one start, one result");
    assert_given_up(app).await;
}

/// Waits until no delivery of the fast lane is held (the held one was
/// settled), checks that none went back to the queue, and stops the app.
async fn assert_given_up(app: crate::helpers::TestApp) {
    let scheduler::Broker::Memory(broker) = app.broker.clone() else { unreachable!("the tests' queue is in process") };
    let queue = app.topology.fast.clone();
    let settled =
        testkit::wait_until(Duration::from_secs(30), || async { (broker.unsettled(&queue) == 0).then_some(()) });
    assert!(settled.await.is_some(), "a delivery is still held: {} unsettled", broker.unsettled(&queue));
    assert_eq!(broker.depth(&queue), 0, "the held delivery was handed back, not given up");
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_job_is_taken_over_once_its_first_worker_goes_silent() {
    let model = cube_stl(22.0);
    let settings = ApiSettings { heartbeat_stale_after: Duration::from_secs(1), ..ApiSettings::default() };
    let mut app = spawn_farm(settings, Vec::new()).await;
    let job_id = app.submit(model).await;
    let silent = CancellationToken::new();
    ghost_runs(&app, &job_id, silent.clone()).await;
    app.add_worker(test_worker(Lane::Fast)).await;
    app.wait_for_metrics(&["farm_job_claims_total{lane=\"fast\",answer=\"wait\"}"]).await;
    // The ghost dies: a second later its job is the waiting worker's.
    silent.cancel();
    let done = app.wait_for_job(&job_id).await;
    assert_eq!(status(&done), "succeeded", "{done}");
    assert_ne!(done["worker"], "ghost", "{done}");
    app.wait_for_metrics(&["farm_jobs_started_again_total{while=\"running\"}"]).await;
    let events = app.store.job_events(&job_id).await.unwrap();
    assert_eq!(events, vec!["queued", "started", "started", "succeeded"], "taken over once");
    app.stop().await;
}

#[tokio::test]
async fn a_job_sent_twice_is_stopped_on_the_second_worker_while_the_first_runs_it() {
    let model = cube_stl(23.0);
    let first = WorkerSettings { slots: 1, ..slowed(Lane::Fast, &model_id(&model), Duration::from_secs(2)) };
    let mut app = spawn_farm(ApiSettings::default(), vec![first]).await;
    let job_id = app.submit(model.clone()).await;
    let running = app.wait_until(&job_id, "started", |j| j["stage"] == "analysing").await;
    // A second worker that would take a minute over it gets a copy.
    app.add_worker(WorkerSettings { slots: 1, ..slowed(Lane::Fast, &model_id(&model), Duration::from_secs(60)) }).await;
    send_again(&app, &running, &app.topology.fast).await;
    app.wait_for_metrics(&["farm_jobs_held_back_total{computing=\"yes\"}"]).await;
    let done = app.wait_for_job(&job_id).await;
    assert_eq!((status(&done), &done["worker"]), ("succeeded", &running["worker"]), "{done}");
    let events = app.store.job_events(&job_id).await.unwrap();
    assert_eq!(events, vec!["queued", "started", "succeeded"], "started once, finished once");
    // The copy is given up once the first worker's result is in.
    assert_given_up(app).await;
}
