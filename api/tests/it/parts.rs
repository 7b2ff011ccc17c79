//! Orders of several parts over HTTP: each part priced by its own job, one
//! total with the setup fee and the minimum order once, a failed part and
//! its retry, cancelling, repricing with history, the quote cache, and the
//! refusals of a malformed or oversized order.

use api::ApiSettings;
use calculator::PriceBook;
use calculator::order::{MINIMUM_ORDER_LINE, SETUP_LINE};
use scheduler::Lane;
use serde_json::{Value, json};

use crate::helpers::{TestApp, cube_stl, mint, spawn_farm, test_worker, wait_for_status};

async fn farm() -> TestApp {
    spawn_farm(ApiSettings::default(), vec![test_worker(Lane::Fast)]).await
}

async fn model(app: &TestApp, side: f32) -> String {
    let (status, model) = app.post_model(cube_stl(side)).await;
    assert_eq!(status, 201, "{model}");
    model["model_id"].as_str().unwrap().to_string()
}

async fn order(app: &TestApp, body: Value) -> (u16, Value) {
    app.post_as(&app.seller, "/v1/orders", body).await
}

fn id_of(order: &Value) -> String {
    order["order_id"].as_str().unwrap().to_string()
}

/// A part's own costs: its quote's lines without the setup fee and the
/// minimum order.
fn own_costs(quote: &Value) -> f64 {
    let lines = quote["line_items"].as_array().unwrap();
    let own = lines.iter().filter(|l| l["label"] != SETUP_LINE && l["label"] != MINIMUM_ORDER_LINE);
    let sum: f64 = own.map(|l| l["amount"].as_f64().unwrap()).sum();
    (sum * 100.0).round() / 100.0
}

fn part_jobs(order: &Value) -> Vec<String> {
    order["parts"].as_array().unwrap().iter().map(|p| p["job_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn an_order_of_two_parts_is_priced_when_both_are_and_pays_the_setup_fee_once() {
    let app = farm().await;
    let (small, large) = (model(&app, 10.0).await, model(&app, 24.0).await);
    let body = json!({"items": [
        {"model_id": small, "material": "pla", "quantity": 3},
        {"model_id": large, "material": "PETG", "quantity": 1, "colour": "Black"},
    ], "customer": "Bob"});
    let (status, created) = order(&app, body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["status"].as_str(), created["part_count"].as_i64()), (Some("PRICING"), Some(2)));
    // The order shows its first part; each part has a job of its own.
    assert_eq!(created["model_id"].as_str(), Some(small.as_str()));
    let jobs = part_jobs(&created);
    assert_eq!(jobs.len(), 2);
    assert_ne!(jobs[0], jobs[1]);
    assert!(created["job_id"].is_null(), "{created}");
    assert_eq!(created["parts"][1]["material"], "petg", "names are normalised: {created}");

    let id = id_of(&created);
    let priced = wait_for_status(&app, &id, "PRICED").await;
    let parts = priced["parts"].as_array().unwrap();
    assert!(parts.iter().all(|p| p["status"] == "priced"), "{priced}");
    assert_eq!((parts[0]["quote"]["quantity"].as_i64(), parts[1]["quote"]["quantity"].as_i64()), (Some(3), Some(1)));

    // One total: each part's own costs, then the setup fee and the minimum
    // order once, rounded as the book says.
    let book = PriceBook::builtin();
    let own: Vec<f64> = parts.iter().map(|p| own_costs(&p["quote"])).collect();
    let expected = book.rounding.apply((own.iter().sum::<f64>() + book.setup_fee).max(book.minimum_order));
    assert_eq!(priced["total"].as_f64(), Some(expected), "{priced}");
    assert_eq!(priced["quote"]["total"].as_f64(), Some(expected));
    let alone: f64 = parts.iter().map(|p| p["total"].as_f64().unwrap()).sum();
    assert!(expected < alone, "ordered together, {expected} is less than the parts alone, {alone}");
    let labels: Vec<&str> =
        priced["quote"]["line_items"].as_array().unwrap().iter().map(|l| l["label"].as_str().unwrap()).collect();
    assert_eq!(labels.iter().filter(|l| **l == SETUP_LINE).count(), 1, "{labels:?}");
    assert_eq!(&labels[..2], ["part 1", "part 2"]);
    assert!(priced["quote_valid_until_ms"].as_i64().is_some(), "{priced}");
    let history: Vec<String> = app.store.order_history(&id).await.unwrap().into_iter().map(|(_, to, _)| to).collect();
    assert_eq!(history, ["CREATED", "PRICING", "PRICED"]);

    // The list shows the order once, with its part count.
    let (_, listed) = app.get_as(&app.seller, "/v1/orders").await;
    let rows = listed["orders"].as_array().unwrap();
    assert_eq!((rows.len(), rows[0]["part_count"].as_i64()), (1, Some(2)), "{listed}");
    assert!(rows[0].get("parts").is_none(), "a list row carries no parts: {listed}");

    // The same parts again are answered from the quote cache: the new
    // order is priced before it is answered, at the same total.
    let again = json!({"items": [
        {"model_id": small, "material": "pla", "quantity": 3},
        {"model_id": large, "material": "petg", "colour": "black"},
    ]});
    let (status, cached) = order(&app, again).await;
    assert_eq!((status, cached["status"].as_str()), (201, Some("PRICED")), "{cached}");
    assert_eq!(cached["total"], priced["total"]);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_part_fails_its_order_and_a_retry_prices_only_that_part_again() {
    let app = farm().await;
    let (good, lost) = (model(&app, 12.0).await, model(&app, 13.0).await);
    let blob = app.data_dir().join(format!("models/{lost}.stl"));
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();
    let body = json!({"items": [{"model_id": good, "material": "pla"}, {"model_id": lost, "material": "pla"}]});
    let (status, created) = order(&app, body).await;
    assert_eq!(status, 201, "{created}");
    let id = id_of(&created);
    let failed = wait_for_status(&app, &id, "PRICING_FAILED").await;
    let failure = failed["failure"].as_str().unwrap();
    assert!(failure.starts_with("part 2 ") && failure.contains(&lost), "{failure}");
    assert_eq!(failed["parts"][1]["status"], "failed", "{failed}");

    std::fs::write(&blob, bytes).unwrap();
    let (status, retried) = app.post_as(&app.seller, &format!("/v1/orders/{id}/retry-pricing"), json!({})).await;
    assert_eq!((status, retried["status"].as_str()), (202, Some("PRICING")), "{retried}");
    let (before, after) = (part_jobs(&failed), part_jobs(&retried));
    // The first part may still be pricing when the second fails; either
    // way it keeps its job, and only the failed part gets a new one.
    assert_eq!(before[0], after[0], "the part that did not fail keeps its job");
    assert_ne!(before[1], after[1], "the failed part is priced by a new job");
    let priced = wait_for_status(&app, &id, "PRICED").await;
    assert!(priced["failure"].is_null() && priced["total"].as_f64().unwrap() > 0.0, "{priced}");
    let history: Vec<String> = app.store.order_history(&id).await.unwrap().into_iter().map(|(_, to, _)| to).collect();
    assert_eq!(history, ["CREATED", "PRICING", "PRICING_FAILED", "PRICING", "PRICED"]);
    app.stop().await;
}

/// A part whose job was dead-lettered fails its order; replaying the letter
/// hands the part a new job and the order goes back to pricing.
#[tokio::test]
async fn replaying_a_parts_dead_letter_prices_its_order_again() {
    let mut app = spawn_farm(ApiSettings::default(), Vec::new()).await;
    let (a, b) = (model(&app, 10.0).await, model(&app, 12.0).await);
    let body = json!({"items": [{"model_id": a, "material": "pla"}, {"model_id": b, "material": "pla"}]});
    let (_, created) = order(&app, body).await;
    let id = id_of(&created);
    let jobs = part_jobs(&created);
    let letter = api::store::DeadLetter {
        job_id: Some(jobs[1].clone()),
        queue: "test.pricing.fast".into(),
        reason: "delivery_limit".into(),
        payload: "{}".into(),
    };
    app.store.record_dead_letter(&letter, 1).await.unwrap();
    let (_, failed) = app.get_as(&app.seller, &format!("/v1/orders/{id}")).await;
    assert_eq!(failed["status"], "PRICING_FAILED", "{failed}");
    assert!(failed["failure"].as_str().unwrap().starts_with("part 2 "), "{failed}");

    let (_, page) = app.get_as(&app.operator, "/v1/operator/dead-letters").await;
    let letter_id = page["dead_letters"][0]["id"].as_i64().unwrap();
    let replay = format!("/v1/operator/dead-letters/{letter_id}/replay");
    let (status, replayed) = app.post_as(&app.operator, &replay, json!({})).await;
    assert_eq!(status, 202, "{replayed}");
    let (_, pricing) = app.get_as(&app.seller, &format!("/v1/orders/{id}")).await;
    assert_eq!(pricing["status"], "PRICING", "{pricing}");
    assert_eq!(part_jobs(&pricing), [jobs[0].clone(), replayed["job_id"].as_str().unwrap().to_string()]);

    app.add_worker(test_worker(Lane::Fast)).await;
    let priced = wait_for_status(&app, &id, "PRICED").await;
    assert!(priced["total"].as_f64().unwrap() > 0.0, "{priced}");
    app.stop().await;
}

#[tokio::test]
async fn cancelling_an_order_of_parts_cancels_every_part_still_pricing() {
    // No worker: the parts wait in the queue.
    let app = spawn_farm(ApiSettings::default(), Vec::new()).await;
    let (a, b) = (model(&app, 10.0).await, model(&app, 11.0).await);
    let body = json!({"items": [{"model_id": a, "material": "pla"}, {"model_id": b, "material": "pla"}]});
    let (_, created) = order(&app, body.clone()).await;
    let id = id_of(&created);
    // A part's job is the order's: it is cancelled with the order, not alone.
    let first_job = &part_jobs(&created)[0];
    let (status, refused) = app.post_as(&app.seller, &format!("/v1/pricing-jobs/{first_job}/cancel"), json!({})).await;
    assert_eq!((status, refused["error"]["details"]["order_id"].as_str()), (409, Some(id.as_str())), "{refused}");
    let (status, cancelled) = app.post_as(&app.seller, &format!("/v1/orders/{id}/cancel"), json!({})).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("CANCELLED")), "{cancelled}");
    // The answer shows the parts, each ended with the order.
    let parts = cancelled["parts"].as_array().unwrap();
    assert!(parts.len() == 2 && parts.iter().all(|p| p["status"] == "cancelled"), "{cancelled}");
    for job in part_jobs(&created) {
        let (_, job) = app.get(&format!("/v1/pricing-jobs/{job}")).await;
        assert_eq!(job["status"], "cancelled", "{job}");
    }

    // Were a part's job cancelled behind the API's back, the order is not
    // stuck while another part still prices; once every job has ended and
    // the order still waits, the audit names it.
    let (_, stranded) = order(&app, body).await;
    let jobs = part_jobs(&stranded);
    let queue = &app.topology.orders_incoming;
    app.store.cancel_job(&jobs[0], "{}", 1).await.unwrap();
    let audit = api::orders::audit(&app.store, queue, 0, i64::MAX).await.unwrap();
    assert_eq!((audit["pricing_with_ended_job"].as_i64(), &audit["ids"]["stuck"]), (Some(0), &json!([])), "{audit}");
    app.store.cancel_job(&jobs[1], "{}", 1).await.unwrap();
    let audit = api::orders::audit(&app.store, queue, 0, i64::MAX).await.unwrap();
    assert_eq!(audit["pricing_with_ended_job"].as_i64(), Some(1), "{audit}");
    assert_eq!(audit["ids"]["stuck"], json!([stranded["order_id"]]), "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn repricing_an_order_of_parts_prices_every_part_again_and_keeps_the_old_quote() {
    let app = farm().await;
    let (a, b) = (model(&app, 14.0).await, model(&app, 15.0).await);
    let body =
        json!({"items": [{"model_id": a, "material": "pla"}, {"model_id": b, "material": "pla", "quantity": 2}]});
    let (_, created) = order(&app, body).await;
    let id = id_of(&created);
    let priced = wait_for_status(&app, &id, "PRICED").await;
    let (status, again) = app.post_as(&app.seller, &format!("/v1/orders/{id}/reprice"), json!({})).await;
    assert_eq!((status, again["status"].as_str()), (202, Some("PRICING")), "{again}");
    assert!(again["quote"].is_null(), "{again}");
    let repriced = wait_for_status(&app, &id, "PRICED").await;
    let (old, new) = (part_jobs(&priced), part_jobs(&repriced));
    assert!(old.iter().zip(&new).all(|(o, n)| o != n), "every part has a new job: {old:?} {new:?}");
    let (status, quotes) = app.get_as(&app.seller, &format!("/v1/orders/{id}/quotes")).await;
    assert_eq!(status, 200, "{quotes}");
    assert_eq!(quotes["previous"].as_array().unwrap().len(), 1, "{quotes}");
    assert_eq!(quotes["previous"][0]["quote"]["total"], priced["quote"]["total"]);
    assert_eq!(repriced["total"], priced["total"], "the same book prices the same");
    app.stop().await;
}

#[tokio::test]
async fn an_order_of_parts_is_refused_whole_when_it_is_malformed_or_too_big() {
    let settings = ApiSettings { max_order_parts: 3, ..ApiSettings::default() };
    let app = spawn_farm(settings, vec![test_worker(Lane::Fast)]).await;
    let m = model(&app, 10.0).await;
    let part = json!({"model_id": m, "material": "pla"});
    let refusals = [
        (json!({"items": [part, part], "model_id": m, "material": "pla"}), "not both"),
        (json!({"items": [part, part], "colour": "red"}), "not both"),
        (json!({"items": [part, part], "quantity": 4}), "not both"),
        (json!({"items": []}), "at least one part"),
        (json!({"items": [part, part, part, part]}), "at most 3 parts"),
        (json!({"items": [part, {"model_id": m, "material": "unobtainium"}]}), "part 2: "),
        (json!({"items": [part, {"model_id": m, "material": "pla", "quantity": 0}]}), "part 2: "),
        (json!({"customer": "Bob"}), "`model_id` and `material` are required"),
    ];
    for (body, why) in refusals {
        let (status, refused) = order(&app, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(why), "{body} -> {refused}");
    }
    // A part the seller may not price is not found, as a single part is.
    let other = mint(&app, api::auth::KeyKind::Seller, "globex").await;
    let upload = Some(cube_stl(9.0).into());
    let (status, theirs) = app.client.send(reqwest::Method::POST, "/v1/models", Some(&other), upload, false).await;
    assert_eq!(status, 201);
    let (status, _) = order(&app, json!({"items": [part, {"model_id": theirs["model_id"], "material": "pla"}]})).await;
    assert_eq!(status, 404);
    let (_, listed) = app.get_as(&app.seller, "/v1/orders").await;
    assert_eq!(listed["orders"].as_array().unwrap().len(), 0, "nothing was created: {listed}");
    // One item is an order of one part, as the single form makes it.
    let (status, single) = order(&app, json!({"items": [part]})).await;
    assert_eq!((status, single["part_count"].as_i64()), (201, Some(1)), "{single}");
    assert!(single["job_id"].is_string() && single.get("parts").is_none(), "{single}");
    app.stop().await;
}

/// Repricing prices every part again: the new jobs count against the key's
/// quota of jobs in flight like a new order's, and a refusal leaves the
/// order as it was.
#[tokio::test]
async fn a_reprice_past_the_keys_quota_in_flight_is_refused_and_changes_nothing() {
    let quotas = api::quota::Quotas { jobs_in_flight: 2, ..api::quota::Quotas::default() };
    // Only a fast worker: a model past the slow lane's threshold stays
    // queued, and holds one of the key's two jobs in flight.
    let settings = ApiSettings { quotas, slow_lane_triangles: 100, ..ApiSettings::default() };
    let app = spawn_farm(settings, vec![test_worker(Lane::Fast)]).await;
    let (a, b) = (model(&app, 14.0).await, model(&app, 15.0).await);
    let body = json!({"items": [{"model_id": a, "material": "pla"}, {"model_id": b, "material": "pla"}]});
    let (status, created) = order(&app, body).await;
    assert_eq!(status, 201, "{created}");
    let id = id_of(&created);
    let priced = wait_for_status(&app, &id, "PRICED").await;
    let (status, slow) = app.post_model(mesh::write_binary_stl(&mesh::uv_sphere(10.0, 24, 12))).await;
    assert_eq!(status, 201, "{slow}");
    let (status, held) = order(&app, json!({"model_id": slow["model_id"], "material": "pla"})).await;
    assert_eq!((status, held["status"].as_str()), (201, Some("PRICING")), "{held}");

    let (status, refused) = app.post_as(&app.seller, &format!("/v1/orders/{id}/reprice"), json!({})).await;
    assert_eq!(status, 429, "two more jobs with one in flight exceed the quota of two: {refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("quota"), "{refused}");
    let (status, after) = app.get_as(&app.seller, &format!("/v1/orders/{id}")).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        (&after["status"], &after["quote"], &after["version"]),
        (&priced["status"], &priced["quote"], &priced["version"])
    );
    app.stop().await;
}

#[tokio::test]
async fn the_parts_of_one_order_count_against_the_key_quota_together() {
    let quotas = api::quota::Quotas { jobs_in_flight: 3, ..api::quota::Quotas::default() };
    // No worker: jobs stay in flight.
    let app = spawn_farm(ApiSettings { quotas, ..ApiSettings::default() }, Vec::new()).await;
    let m = model(&app, 10.0).await;
    let part = json!({"model_id": m, "material": "pla"});
    // More parts than the quota could ever hold: not a 429 to retry.
    let (status, refused) = order(&app, json!({"items": [part, part, part, part]})).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("quota of 3"), "{refused}");
    let keyed = |body: Value| {
        let request = app.http.post(format!("{}/v1/orders", app.base)).bearer_auth(&app.seller);
        request.header("Idempotency-Key", "parts-1").json(&body).send()
    };
    let two = json!({"items": [part, part]});
    let created = keyed(two.clone()).await.unwrap();
    assert_eq!(created.status(), 201, "two fit");
    let created: Value = created.json().await.unwrap();
    let (status, refused) = order(&app, two.clone()).await;
    assert_eq!(status, 429, "two more exceed the quota of three with two in flight: {refused}");
    let (status, one) = order(&app, json!({"model_id": m, "material": "pla"})).await;
    assert_eq!(status, 201, "one more fits: {one}");
    // The quota is full; a repeat of the first request still learns its
    // order exists.
    let repeated = keyed(two).await.unwrap();
    assert_eq!(repeated.status(), 200, "a repeat is not refused for the quota");
    let repeated: Value = repeated.json().await.unwrap();
    assert_eq!(repeated["order_id"], created["order_id"]);
    app.stop().await;
}
