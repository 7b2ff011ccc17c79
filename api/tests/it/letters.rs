//! The operators' dead-letter routes: list, read and replay, once.

use api::ApiSettings;
use api::store::DeadLetter;
use serde_json::json;

use crate::helpers::{cube_stl, spawn_farm, test_worker, wait_for_status};

#[tokio::test]
async fn a_dead_letter_is_replayed_once_through_the_outbox_and_its_new_job_is_priced() {
    // No worker yet: the job waits, and is dead-lettered by hand.
    let mut app = spawn_farm(ApiSettings::default(), vec![]).await;
    let (_, model) = app.post_model(cube_stl(10.0)).await;
    let body = json!({"model_id": model["model_id"], "material": "pla", "quantity": 2, "colour": "red"});
    let (status, accepted) = app.post_job(body).await;
    assert_eq!(status, 202, "{accepted}");
    let dead_job = accepted["job_id"].as_str().unwrap().to_string();
    let letter = DeadLetter {
        job_id: Some(dead_job.clone()),
        queue: "test.pricing.slow".into(),
        reason: "delivery_limit".into(),
        payload: "{}".into(),
    };
    app.store.record_dead_letter(&letter, 1).await.unwrap();
    let lost_result = DeadLetter { job_id: None, queue: "test.pricing.results".into(), ..letter };
    app.store.record_dead_letter(&lost_result, 2).await.unwrap();
    let (_, failed) = app.get(&format!("/v1/pricing-jobs/{dead_job}")).await;
    assert_eq!((failed["status"].as_str(), failed["error"]["kind"].as_str()), (Some("failed"), Some("dead_lettered")));

    // Operators only.
    let (status, _) = app.get_as(&app.seller, "/v1/operator/dead-letters").await;
    assert_eq!(status, 403);
    let (status, page) = app.get_as(&app.operator, "/v1/operator/dead-letters").await;
    assert_eq!(status, 200, "{page}");
    let letters = page["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "{page}");
    let id = letters.iter().find(|l| l["job_id"] == dead_job.as_str()).unwrap()["id"].as_i64().unwrap();
    let result_id = letters.iter().find(|l| l["job_id"].is_null()).unwrap()["id"].as_i64().unwrap();
    let (status, one) = app.get_as(&app.operator, &format!("/v1/operator/dead-letters/{id}")).await;
    assert_eq!((status, one["reason"].as_str(), one["replay_job_id"].is_null()), (200, Some("delivery_limit"), true));

    // The first replay queues a job with the same inputs; the next ones
    // answer with it and queue nothing.
    let replay = format!("/v1/operator/dead-letters/{id}/replay");
    let (status, first) = app.post_as(&app.operator, &replay, json!({})).await;
    assert_eq!((status, first["queued"].as_bool()), (202, Some(true)), "{first}");
    let new_job = first["job_id"].as_str().unwrap().to_string();
    assert_ne!(new_job, dead_job);
    for _ in 0..2 {
        let (status, again) = app.post_as(&app.operator, &replay, json!({})).await;
        assert_eq!(
            (status, again["queued"].as_bool(), again["job_id"].as_str()),
            (200, Some(false), Some(new_job.as_str()))
        );
    }
    let (status, refused) =
        app.post_as(&app.operator, &format!("/v1/operator/dead-letters/{result_id}/replay"), json!({})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("conflict")), "{refused}");
    let (status, _) = app.post_as(&app.operator, "/v1/operator/dead-letters/999999/replay", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = app.post_as(&app.seller, &replay, json!({})).await;
    assert_eq!(status, 403);

    // Only the letter of the lost result is still open; all=true shows both.
    let (_, open) = app.get_as(&app.operator, "/v1/operator/dead-letters").await;
    assert_eq!(open["dead_letters"].as_array().unwrap().len(), 1, "{open}");
    let (_, all) = app.get_as(&app.operator, "/v1/operator/dead-letters?all=true").await;
    let replayed = all["dead_letters"].as_array().unwrap().iter().find(|l| l["id"] == id).unwrap().clone();
    assert_eq!(replayed["replay_job_id"], new_job.as_str());

    // A worker prices the replayed job; the seller who owned the dead one
    // sees it, with the same inputs.
    app.add_worker(test_worker(scheduler::Lane::Fast)).await;
    let priced = app.wait_for_job(&new_job).await;
    assert_eq!(priced["status"], "succeeded", "{priced}");
    assert_eq!((priced["quantity"].as_i64(), priced["colour"].as_str()), (Some(2), Some("red")));
    assert_eq!(priced["model_id"], model["model_id"]);
    app.stop().await;
}

/// An order whose job was dead-lettered fails with it; replaying the letter
/// once the cause is fixed prices the order too, through its new job.
#[tokio::test]
async fn replaying_an_orders_dead_letter_prices_the_order_again() {
    let mut app = spawn_farm(ApiSettings::default(), vec![]).await;
    let (_, model) = app.post_model(cube_stl(12.0)).await;
    let (status, order) = app
        .post_as(&app.seller, "/v1/orders", json!({"model_id": model["model_id"], "material": "pla", "quantity": 1}))
        .await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let dead_job = order["job_id"].as_str().unwrap().to_string();
    let letter = DeadLetter {
        job_id: Some(dead_job.clone()),
        queue: "test.pricing.fast".into(),
        reason: "delivery_limit".into(),
        payload: "{}".into(),
    };
    app.store.record_dead_letter(&letter, 1).await.unwrap();
    let (_, failed) = app.get_as(&app.seller, &format!("/v1/orders/{order_id}")).await;
    assert_eq!(failed["status"], "PRICING_FAILED", "{failed}");

    let (_, page) = app.get_as(&app.operator, "/v1/operator/dead-letters").await;
    let id = page["dead_letters"][0]["id"].as_i64().unwrap();
    let (status, replayed) =
        app.post_as(&app.operator, &format!("/v1/operator/dead-letters/{id}/replay"), json!({})).await;
    assert_eq!(status, 202, "{replayed}");
    let new_job = replayed["job_id"].as_str().unwrap();
    let (_, pricing) = app.get_as(&app.seller, &format!("/v1/orders/{order_id}")).await;
    assert_eq!((pricing["status"].as_str(), pricing["job_id"].as_str()), (Some("PRICING"), Some(new_job)), "{pricing}");

    app.add_worker(test_worker(scheduler::Lane::Fast)).await;
    let now = wait_for_status(&app, &order_id, "PRICED").await;
    assert!(now["quote"]["total"].as_f64().unwrap() > 0.0, "{now}");
    let history = app.store.order_history(&order_id).await.unwrap();
    let statuses: Vec<&str> = history.iter().map(|(_, to, _)| to.as_str()).collect();
    assert_eq!(statuses, ["CREATED", "PRICING", "PRICING_FAILED", "PRICING", "PRICED"]);
    app.stop().await;
}
