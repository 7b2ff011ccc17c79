//! The MES order API over HTTP, in process: orders and their pricing,
//! tenancy and keys, idempotency, the status machine, CRM events, the
//! operators' list and taking an order, the accounts, the queue intake,
//! and the OpenAPI document.

use std::time::Duration;

use api::ApiSettings;
use scheduler::{Lane, Outgoing};
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

async fn order(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post_as(token, "/v1/orders", body).await
}

async fn priced_order(app: &TestApp, side: f32) -> String {
    let model_id = model(app, side).await;
    let (status, created) = order(app, &app.seller, json!({"model_id": model_id, "material": "pla"})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["order_id"].as_str().unwrap().to_string();
    wait_for_status(app, &id, "PRICED").await;
    id
}

#[tokio::test]
async fn an_order_whose_pricing_failed_is_priced_again_once_the_cause_is_fixed() {
    let app = farm().await;
    let model_id = model(&app, 13.0).await;
    // The model's file goes missing: its job fails, and the order with it.
    let blob = app.data_dir().join(format!("models/{model_id}.stl"));
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();
    let (_, created) = order(&app, &app.seller, json!({"model_id": model_id, "material": "pla"})).await;
    let id = created["order_id"].as_str().unwrap().to_string();
    let failed = wait_for_status(&app, &id, "PRICING_FAILED").await;
    assert!(failed["failure"].as_str().is_some(), "{failed}");
    let retry = format!("/v1/orders/{id}/retry-pricing");
    // Another seller cannot see it; the CRM may not retry.
    let other = crate::helpers::mint(&app, api::auth::KeyKind::Seller, "globex").await;
    let (status, _) = app.post_as(&other, &retry, json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = app.post_as(&app.crm, &retry, json!({})).await;
    assert_eq!(status, 403);

    // Fixed, and retried: a new job, and the order is priced.
    std::fs::write(&blob, bytes).unwrap();
    let (status, retried) = app.post_as(&app.seller, &retry, json!({})).await;
    assert_eq!(status, 202, "{retried}");
    assert_ne!(retried["job_id"], failed["job_id"]);
    assert!(retried["failure"].is_null(), "{retried}");
    let priced = wait_for_status(&app, &id, "PRICED").await;
    assert_eq!(priced["job_id"], retried["job_id"]);
    assert!(priced["total"].as_f64().unwrap() > 0.0, "{priced}");
    // A priced order is not retried.
    let (status, refused) = app.post_as(&app.operator, &retry, json!({})).await;
    assert_eq!((status, refused["error"]["details"]["status"].as_str()), (409, Some("PRICED")), "{refused}");
    let history: Vec<(Option<String>, String, String)> = app.store.order_history(&id).await.unwrap();
    let moves: Vec<&str> = history.iter().map(|(_, to, _)| to.as_str()).collect();
    assert_eq!(moves, ["CREATED", "PRICING", "PRICING_FAILED", "PRICING", "PRICED"], "{history:?}");
    app.stop().await;
}

async fn crm(app: &TestApp, event_id: &str, order_id: &str, kind: &str, version: i64) -> (u16, Value) {
    let body = json!({"event_id": event_id, "order_id": order_id, "type": kind, "version": version, "occurred_at_ms": version});
    app.post_as(&app.crm, "/v1/crm/events", body).await
}

#[tokio::test]
async fn an_order_is_priced_on_its_own_and_its_seller_alone_sees_it() {
    let app = farm().await;
    let model_id = model(&app, 10.0).await;
    let (status, created) =
        order(&app, &app.seller, json!({"model_id": model_id, "material": "pla", "quantity": 3, "customer": "Bob"}))
            .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["status"].as_str(), created["seller"].as_str()), (Some("PRICING"), Some("acme")));
    let id = created["order_id"].as_str().unwrap().to_string();
    let priced = wait_for_status(&app, &id, "PRICED").await;
    assert_eq!(priced["quote"]["quantity"], 3);
    assert_eq!(priced["total"], priced["quote"]["total"]);
    let history: Vec<String> = app.store.order_history(&id).await.unwrap().into_iter().map(|(_, to, _)| to).collect();
    assert_eq!(history, ["CREATED", "PRICING", "PRICED"]);

    // Another seller's order is not there for them, on any route.
    let other = mint(&app, api::auth::KeyKind::Seller, "globex").await;
    let (status, body) = app.get_as(&other, &format!("/v1/orders/{id}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, _) = app.post_as(&other, &format!("/v1/orders/{id}/cancel"), json!({})).await;
    assert_eq!(status, 404);
    let job = priced["job_id"].as_str().unwrap();
    let (status, _) = app.get_as(&other, &format!("/v1/pricing-jobs/{job}")).await;
    assert_eq!(status, 404, "nor is its pricing job");
    let (_, mine) = app.get_as(&app.seller, "/v1/orders").await;
    let (_, theirs) = app.get_as(&other, "/v1/orders").await;
    assert_eq!((mine["orders"].as_array().unwrap().len(), theirs["orders"].as_array().unwrap().len()), (1, 0));
    app.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_order_and_creates_no_other() {
    let app = farm().await;
    let model_id = model(&app, 11.0).await;
    let body = json!({"model_id": model_id, "material": "petg", "quantity": 2});
    let send = |body: Value| {
        let request = app.http.post(format!("{}/v1/orders", app.base)).bearer_auth(&app.seller);
        request.header("Idempotency-Key", "order-77").json(&body).send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status().as_u16(), 200, "a retry");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["order_id"], first["order_id"]);
    let different = send(json!({"model_id": model_id, "material": "petg", "quantity": 5})).await.unwrap();
    assert_eq!(different.status().as_u16(), 409, "a reused key with another body");
    let (_, list) = app.get_as(&app.seller, "/v1/orders").await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 1, "{list}");
    app.stop().await;
}

#[tokio::test]
async fn keys_are_required_checked_and_scoped_to_their_kind() {
    let app = farm().await;
    let (status, body) = app.client.send(reqwest::Method::GET, "/v1/orders", None, None, false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    let (status, _) = app.get_as("farm_seller_0000.nope", "/v1/orders").await;
    assert_eq!(status, 401, "an unknown key");
    let forged = format!("{}x", app.seller);
    let (status, _) = app.get_as(&forged, "/v1/orders").await;
    assert_eq!(status, 401, "a wrong secret");
    let (status, body) = app.get_as(&app.seller, "/v1/operator/orders").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, _) = app.post_as(&app.operator, "/v1/orders", json!({"model_id": "m", "material": "pla"})).await;
    assert_eq!(status, 403, "only sellers create orders");
    let (status, _) = app.post_as(&app.seller, "/v1/crm/events", json!({})).await;
    assert_eq!(status, 403, "only the CRM sends its events");

    // A revoked key stops working.
    let doomed = mint(&app, api::auth::KeyKind::Seller, "initech").await;
    let key_id = doomed.split_once('.').unwrap().0.rsplit('_').next().unwrap().to_string();
    assert!(app.store.revoke_key(&key_id, 2).await.unwrap());
    let (status, _) = app.get_as(&doomed, "/v1/orders").await;
    assert_eq!(status, 401);

    // Every body has a limit.
    let big = json!({"model_id": "x".repeat(100_000), "material": "pla"});
    let (status, body) = app.post_as(&app.seller, "/v1/orders", big).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn illegal_moves_answer_409_and_say_why() {
    let app = farm().await;
    let id = priced_order(&app, 12.0).await;
    let (status, body) = app.post_as(&app.operator, &format!("/v1/orders/{id}/take"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("not approved"), "{body}");
    let (status, body) = app.post_as(&app.operator, &format!("/v1/orders/{id}/ship"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["status"], "PRICED");
    app.stop().await;
}

#[tokio::test]
async fn crm_events_apply_once_in_order_and_an_order_is_cancelled_only_before_manufacturing() {
    let app = farm().await;
    let id = priced_order(&app, 13.0).await;
    let (status, body) = crm(&app, "e1", &id, "approved", 5).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("applied")), "{body}");
    assert_eq!(body["order"]["status"], "MANUFACTURING_APPROVED");
    let (_, again) = crm(&app, "e1", &id, "approved", 5).await;
    assert_eq!(again["outcome"], "duplicate");
    // A cancellation older than the approval arrives late: ignored.
    let (_, late) = crm(&app, "e0", &id, "cancelled", 4).await;
    assert_eq!(late["outcome"], "stale", "{late}");
    let (status, taken) = app.post_as(&app.operator, &format!("/v1/orders/{id}/take"), json!({})).await;
    assert_eq!((status, taken["assignee"].as_str()), (200, Some("Ada")), "{taken}");
    let (status, refused) = crm(&app, "e2", &id, "cancelled", 6).await;
    assert_eq!(status, 409, "manufacturing has started: {refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("manufacturing has already started"));
    let (status, _) = crm(&app, "e3", "no-such-order", "approved", 1).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post_as(
            &app.crm,
            "/v1/crm/events",
            json!({"event_id": "e4", "order_id": id, "type": "paid", "occurred_at_ms": 1}),
        )
        .await;
    assert_eq!(status, 422, "an unknown event type");

    // The rest of the way: only the assignee completes it.
    let other = mint(&app, api::auth::KeyKind::Operator, "Grace").await;
    let (status, _) = app.post_as(&other, &format!("/v1/orders/{id}/complete"), json!({})).await;
    assert_eq!(status, 403);
    let (status, _) = app.post_as(&app.operator, &format!("/v1/orders/{id}/complete"), json!({})).await;
    assert_eq!(status, 200);
    let (status, shipped) = app.post_as(&other, &format!("/v1/orders/{id}/ship"), json!({})).await;
    assert_eq!((status, shipped["status"].as_str()), (200, Some("SHIPPED")));
    app.stop().await;
}

#[tokio::test]
async fn a_crm_event_refused_while_the_order_is_pricing_applies_when_sent_again_once_it_is_priced() {
    // No worker yet: the order waits for its price.
    let mut app = spawn_farm(ApiSettings::default(), vec![]).await;
    let model_id = model(&app, 15.0).await;
    let (status, created) = order(&app, &app.seller, json!({"model_id": model_id, "material": "pla"})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["order_id"].as_str().unwrap().to_string();
    let (status, refused) = crm(&app, "approve-early", &id, "approved", 1).await;
    assert_eq!(status, 409, "not priced yet: {refused}");
    let (status, unknown) = crm(&app, "approve-unknown", "no-such-order", "approved", 1).await;
    assert_eq!(status, 404, "{unknown}");

    app.add_worker(test_worker(Lane::Fast)).await;
    wait_for_status(&app, &id, "PRICED").await;
    let (status, applied) = crm(&app, "approve-early", &id, "approved", 1).await;
    assert_eq!((status, applied["outcome"].as_str()), (200, Some("applied")), "the retry applies: {applied}");
    assert_eq!(applied["order"]["status"], "MANUFACTURING_APPROVED");
    let (status, again) = crm(&app, "approve-early", &id, "approved", 1).await;
    assert_eq!((status, again["outcome"].as_str()), (200, Some("duplicate")), "{again}");
    let (status, reused) = crm(&app, "approve-early", &id, "cancelled", 2).await;
    assert_eq!(status, 409, "an event id reused with another body: {reused}");
    assert!(reused["error"]["message"].as_str().unwrap().contains("another body"), "{reused}");
    let (_, order) = app.get_as(&app.operator, &format!("/v1/orders/{id}")).await;
    assert_eq!(order["status"], "MANUFACTURING_APPROVED", "the reused id changed nothing: {order}");
    app.stop().await;
}

#[tokio::test]
async fn only_the_key_that_created_a_job_cancels_it_and_an_orders_job_ends_with_its_order() {
    // No worker: every job stays queued while the keys try it.
    let app = spawn_farm(ApiSettings::default(), vec![]).await;
    let model_id = model(&app, 16.0).await;
    let (status, accepted) = app.post_job(json!({"model_id": model_id, "material": "pla"})).await;
    assert_eq!(status, 202, "{accepted}");
    let job = format!("/v1/pricing-jobs/{}", accepted["job_id"].as_str().unwrap());
    let cancel = format!("{job}/cancel");

    let same_seller = mint(&app, api::auth::KeyKind::Seller, "acme").await;
    let other_seller = mint(&app, api::auth::KeyKind::Seller, "globex").await;
    assert_eq!(app.get_as(&app.operator, &job).await.0, 200, "operators read every job");
    assert_eq!(app.get_as(&same_seller, &job).await.0, 200, "a seller reads the jobs of its other keys");
    assert_eq!(app.get_as(&other_seller, &job).await.0, 404);
    assert_eq!(app.get_as(&app.crm, &job).await.0, 404, "the CRM reads only jobs it created");
    for (token, expected, who) in [
        (&app.operator, 403, "an operator"),
        (&same_seller, 403, "another key of the same seller"),
        (&other_seller, 404, "another seller"),
        (&app.crm, 404, "the CRM"),
    ] {
        let (status, body) = app.post_as(token, &cancel, json!({})).await;
        assert_eq!(status, expected, "{who}: {body}");
    }
    let (status, body) = app.post_as(&app.seller, &cancel, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")), "its creator: {body}");

    // An order's job: refused on its own, cancelled with the order.
    let (status, created) = order(&app, &app.seller, json!({"model_id": model_id, "material": "pla"})).await;
    assert_eq!(status, 201, "{created}");
    let order_id = created["order_id"].as_str().unwrap().to_string();
    let order_job = format!("/v1/pricing-jobs/{}", created["job_id"].as_str().unwrap());
    let (status, refused) = app.post_as(&app.seller, &format!("{order_job}/cancel"), json!({})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["details"]["order_id"].as_str(), Some(order_id.as_str()), "{refused}");
    let (status, _) = app.post_as(&app.operator, &format!("{order_job}/cancel"), json!({})).await;
    assert_eq!(status, 403);
    let (_, still) = app.get_as(&app.seller, &format!("/v1/orders/{order_id}")).await;
    assert_eq!(still["status"], "PRICING", "{still}");
    let (status, cancelled) = app.post_as(&app.seller, &format!("/v1/orders/{order_id}/cancel"), json!({})).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("CANCELLED")), "{cancelled}");
    let (_, ended) = app.get_as(&app.seller, &order_job).await;
    assert_eq!(ended["status"], "cancelled", "the order took its job with it: {ended}");
    let queue = &app.topology.orders_incoming;
    let audit = api::orders::audit(&app.store, queue, 0, i64::MAX).await.unwrap();
    assert_eq!(
        (audit["unaccounted"].as_i64(), audit["pricing_with_ended_job"].as_i64()),
        (Some(0), Some(0)),
        "{audit}"
    );
    assert_eq!(audit["ids"], json!({"stuck": [], "unaccounted": []}), "{audit}");

    // Were an order's job cancelled behind the API's back, the audit says so,
    // and names it, when it was created in the window asked for.
    let (_, stranded) = order(&app, &app.seller, json!({"model_id": model_id, "material": "pla", "quantity": 2})).await;
    let stranded_job = stranded["job_id"].as_str().unwrap();
    app.store.cancel_job(stranded_job, "{}", 1).await.unwrap();
    let audit = api::orders::audit(&app.store, queue, 0, i64::MAX).await.unwrap();
    assert_eq!(audit["pricing_with_ended_job"].as_i64(), Some(1), "{audit}");
    assert_eq!(audit["ids"]["stuck"], json!([stranded["order_id"]]), "{audit}");
    let created_ms = app.get_as(&app.seller, &format!("/v1/orders/{}", stranded["order_id"].as_str().unwrap())).await.1
        ["created_at_ms"]
        .as_i64()
        .unwrap();
    for (since, until) in [(0, created_ms), (created_ms + 1, i64::MAX)] {
        let outside = api::orders::audit(&app.store, queue, since, until).await.unwrap();
        assert_eq!(outside["ids"]["stuck"], json!([]), "[{since}, {until}): {outside}");
        assert_eq!(outside["pricing_with_ended_job"].as_i64(), Some(1), "the counts are of every order");
    }
    app.stop().await;
}

#[tokio::test]
async fn control_characters_and_over_long_text_are_refused_naming_the_field() {
    let app = farm().await;
    let model_id = model(&app, 17.0).await;
    for (body, field) in [
        (json!({"model_id": model_id, "material": "pla", "customer": "Bo\u{0}b"}), "customer"),
        (json!({"model_id": model_id, "material": "pla", "customer": "x".repeat(201)}), "customer"),
        (json!({"model_id": format!("{model_id}\u{7}"), "material": "pla"}), "model_id"),
        (json!({"model_id": model_id, "material": "pla", "colour": "red\u{1b}[0m"}), "colour"),
    ] {
        let (status, refused) = order(&app, &app.seller, body).await;
        assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("unprocessable")), "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(&format!("`{field}`")), "{refused}");
    }
    let (status, refused) =
        app.post_as(&app.seller, "/v1/pricing-jobs", json!({"model_id": model_id, "material": "p\u{0}la"})).await;
    assert_eq!(status, 422, "{refused}");
    let crm_body = json!({"event_id": "e\u{0}", "order_id": "o", "type": "approved", "occurred_at_ms": 1});
    let (status, refused) = app.post_as(&app.crm, "/v1/crm/events", crm_body).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("`event_id`"), "{refused}");
    let (status, missing) = app.get_as(&app.seller, "/v1/orders/abc%00def").await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_found")), "{missing}");
    let (status, missing) = app.get_as(&app.seller, "/v1/pricing-jobs/abc%00def").await;
    assert_eq!(status, 404, "{missing}");
    let (status, refused) = app.get_as(&app.seller, "/v1/orders?cursor=1:a%00b").await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("`cursor`"), "{refused}");

    // Names are taken as the price book spells them.
    let (status, created) = order(&app, &app.seller, json!({"model_id": model_id, "material": " PLA "})).await;
    assert_eq!((status, created["material"].as_str()), (201, Some("pla")), "{created}");
    app.stop().await;
}

#[tokio::test]
async fn the_api_serves_the_metrics_its_alerts_read() {
    let app = farm().await;
    let id = priced_order(&app, 18.0).await;
    assert!(!id.is_empty());
    // The monitor writes the gauges every 100 ms here; the latency is
    // recorded when the price comes in. Wait for all of them.
    let wanted = [
        "farm_pricing_latency_seconds_bucket{lane=\"fast\",le=\"60\"}",
        "farm_orders_pricing_oldest_age_seconds{lane=\"fast\"}",
        "farm_orders_pricing_oldest_age_seconds{lane=\"slow\"}",
        "farm_orders_unaccounted ",
        "farm_operator_cache_ready ",
        "farm_price_book_info{version=\"builtin-",
    ];
    app.wait_for_metrics(&wanted).await;
    app.stop().await;
}

#[tokio::test]
async fn exactly_one_of_fifty_operators_takes_an_order_and_it_leaves_the_list_at_once() {
    let app = farm().await;
    let id = priced_order(&app, 14.0).await;
    let (_, approved) = crm(&app, "approve-1", &id, "approved", 1).await;
    assert_eq!(approved["outcome"], "applied");
    let (_, list) = app.get_as(&app.operator, "/v1/operator/orders?status=MANUFACTURING_APPROVED").await;
    assert_eq!(list["served_from"], "cache", "{list}");
    assert_eq!(list["orders"][0]["order_id"].as_str(), Some(id.as_str()));

    let mut operators = Vec::new();
    for n in 0..50 {
        operators.push(mint(&app, api::auth::KeyKind::Operator, &format!("operator-{n}")).await);
    }
    let path = format!("/v1/orders/{id}/take");
    let attempts = operators.iter().map(|token| app.post_as(token, &path, json!({})));
    let answers = futures_util::future::join_all(attempts).await;
    let winners: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {answers:?}");
    let winner = winners[0]["assignee"].as_str().unwrap();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["error"]["details"]["assignee"].as_str(), Some(winner), "the others learn who took it");
        assert!(body["error"]["message"].as_str().unwrap().contains(winner), "{body}");
    }
    let (_, list) = app.get_as(&app.operator, "/v1/operator/orders?status=MANUFACTURING_APPROVED").await;
    assert_eq!(list["orders"].as_array().unwrap().len(), 0, "it left the available list: {list}");
    let (_, started) = app.get_as(&app.operator, "/v1/operator/orders?status=MANUFACTURING_STARTED").await;
    assert_eq!(started["orders"][0]["assignee"].as_str(), Some(winner));
    app.stop().await;
}

#[tokio::test]
async fn the_operators_list_pages_newest_first_from_the_cache_and_matches_the_database() {
    let app = farm().await;
    let mut ids = Vec::new();
    for side in [3.0, 4.0, 5.0, 6.0, 7.0] {
        ids.push(priced_order(&app, side).await);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/operator/orders?status=PRICED&limit=2&cursor={c}"),
            None => "/v1/operator/orders?status=PRICED&limit=2".into(),
        };
        let (status, page) = app.get_as(&app.operator, &path).await;
        assert_eq!((status, page["served_from"].as_str()), (200, Some("cache")), "{page}");
        seen.extend(page["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, every order once");
    let (_, from_db) = app.get_as(&app.seller, "/v1/orders?status=PRICED&limit=10").await;
    let db_ids: Vec<&str> =
        from_db["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap()).collect();
    assert_eq!(db_ids, ids.iter().map(String::as_str).collect::<Vec<_>>(), "the database agrees");
    let (status, _) = app.get_as(&app.operator, "/v1/operator/orders?status=SOLD").await;
    assert_eq!(status, 400);
    let (status, _) = app.get_as(&app.operator, "/v1/operator/orders?limit=0").await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn orders_from_the_queue_are_deduplicated_and_bad_ones_dead_lettered_and_counted() {
    let app = farm().await;
    let model_id = model(&app, 15.0).await;
    let incoming = &app.topology.orders_incoming;
    let message = json!({"external_id": "shop-1", "seller": "acme", "model_id": model_id, "material": "pla"});
    for _ in 0..3 {
        app.broker.publish(incoming, &Outgoing::new(message.to_string().into_bytes())).await.unwrap();
    }
    app.broker.publish(incoming, &Outgoing::new(b"{not an order".to_vec())).await.unwrap();
    let unknown = json!({"external_id": "shop-2", "seller": "acme", "model_id": model_id, "material": "gold"});
    app.broker.publish(incoming, &Outgoing::new(unknown.to_string().into_bytes())).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let (_, stats) = app.get_as(&app.operator, "/v1/orders/stats").await;
        if stats["queue"]["dead_lettered"] == 2 && stats["queue"]["priced"] == 1 {
            break stats;
        }
        assert!(tokio::time::Instant::now() < deadline, "the intake never settled: {stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(stats["queue"]["received"], 1, "three copies, one order: {stats}");
    assert_eq!(stats["unaccounted"], 0);
    let reasons = app.store.dead_letter_counts().await.unwrap();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|(r, _)| r.contains("not an order")), "{reasons:?}");
    assert!(reasons.iter().any(|(r, _)| r.contains("unknown material")), "{reasons:?}");
    // The queue's order is the seller's.
    let (_, mine) = app.get_as(&app.seller, "/v1/orders").await;
    assert_eq!(mine["orders"][0]["source"], "queue");
    assert_eq!(mine["orders"][0]["external_id"], "shop-1");

    // CRM events arrive on their queue too.
    let order_id = mine["orders"][0]["order_id"].as_str().unwrap().to_string();
    let event = json!({"event_id": "q-1", "order_id": order_id, "type": "approved", "occurred_at_ms": 1});
    app.broker.publish(&app.topology.crm_events, &Outgoing::new(event.to_string().into_bytes())).await.unwrap();
    wait_for_status(&app, &order_id, "MANUFACTURING_APPROVED").await;
    // One the farm refuses is not remembered as seen: it goes to the dead
    // letters with its reason, where an operator can send it again.
    let lost = json!({"event_id": "q-2", "order_id": "no-such-order", "type": "approved", "occurred_at_ms": 1});
    app.broker.publish(&app.topology.crm_events, &Outgoing::new(lost.to_string().into_bytes())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reasons = app.store.dead_letter_counts().await.unwrap();
        if reasons.iter().any(|(r, _)| r.contains("no order `no-such-order`")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the refused CRM event was not dead-lettered: {reasons:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_error_body() {
    let app = farm().await;
    let (status, doc) = app.client.send(reqwest::Method::GET, "/v1/openapi.json", None, None, false).await;
    assert_eq!(status, 200);
    // The rules no single operation states: keys, limits, quotas, errors.
    let rules = doc["info"]["description"].as_str().unwrap();
    for needle in ["*operator*", "*CRM*", "Only the key that created a pricing job", "429", "Retry-After", "413"] {
        assert!(rules.contains(needle), "the document says `{needle}`: {rules}");
    }
    let upload = &doc["paths"]["/v1/models"]["post"]["responses"];
    assert!(upload["429"].is_object() && upload["413"].is_object(), "{upload}");
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        "/v1/models",
        "/v1/models/{model_id}",
        "/v1/models/{model_id}/analysis",
        "/v1/pricing-jobs",
        "/v1/pricing-jobs/{job_id}",
        "/v1/pricing-jobs/{job_id}/cancel",
        "/v1/orders",
        "/v1/orders/stats",
        "/v1/orders/{order_id}",
        "/v1/orders/{order_id}/cancel",
        "/v1/orders/{order_id}/retry-pricing",
        "/v1/orders/{order_id}/take",
        "/v1/orders/{order_id}/complete",
        "/v1/orders/{order_id}/ship",
        "/v1/operator/orders",
        "/v1/operator/dead-letters",
        "/v1/operator/dead-letters/{id}",
        "/v1/operator/dead-letters/{id}/replay",
        "/v1/crm/events",
        "/v1/orders/{order_id}/release",
        "/v1/orders/{order_id}/reprice",
        "/v1/orders/{order_id}/quotes",
        "/v1/operator/orders/reprice",
        "/v1/webhooks",
        "/v1/webhooks/{webhook_id}",
        "/v1/webhooks/{webhook_id}/deliveries",
        "/v1/session",
        "/v1/reference",
        "/v1/events",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort_unstable();
    let mut wanted = expected.to_vec();
    wanted.sort_unstable();
    assert_eq!(documented, wanted);
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            // Every error answer is the one error body.
            for (code, response) in operation["responses"].as_object().unwrap() {
                if code.starts_with('4') || code.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    if !(path == "/readyz" && code == "503") {
                        assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {code}");
                    }
                }
            }
            // Every documented operation is a real route: with ids filled in,
            // it answers from a handler (a JSON body), not the router's 404.
            if path == "/v1/events" {
                // A stream never ends on its own; the web tests read it.
                continue;
            }
            let concrete = path.replace("{job_id}", "nope").replace("{order_id}", "nope").replace("{model_id}", "nope");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = app.client.send(method.clone(), &concrete, Some(&app.operator), None, false).await;
            assert!(status != 405, "{method} {path} is documented but not routed");
            if status == 404 {
                assert_eq!(body["error"]["code"], "not_found", "{method} {path} answered the router's 404");
            }
        }
    }
    app.stop().await;
}

/// A quote holds for the price book's `quote_valid_days`; after that the
/// CRM's approval is refused until the order is repriced, and the old quote
/// stays in the order's history.
#[tokio::test]
async fn an_expired_quote_is_refused_approval_until_the_order_is_repriced() {
    use api::orders::store::{CrmEvent, CrmOutcome};
    let app = farm().await;
    let model_id = model(&app, 14.0).await;
    let (_, created) = order(&app, &app.seller, json!({"model_id": model_id, "material": "pla", "quantity": 1})).await;
    let order_id = created["order_id"].as_str().unwrap().to_string();
    let priced = wait_for_status(&app, &order_id, "PRICED").await;
    let days = priced["quote"]["valid_days"].as_i64().unwrap();
    assert_eq!(days, 30, "the built-in book's validity: {priced}");
    let until = priced["quote_valid_until_ms"].as_i64().unwrap();
    let priced_at = priced["updated_at_ms"].as_i64().unwrap();
    assert_eq!(until, priced_at + days * 86_400_000, "{priced}");

    // A day after the quote ran out, the CRM's approval is refused and not
    // remembered.
    let approval = |event_id: &str| CrmEvent {
        event_id: event_id.into(),
        order_id: order_id.clone(),
        approve: true,
        version: None,
        occurred_at_ms: priced_at,
    };
    let late = until + 86_400_000;
    match app.store.apply_crm_event(&approval("crm-late"), late).await.unwrap() {
        CrmOutcome::Illegal { error, .. } => assert!(error.to_string().contains("expired"), "{error}"),
        other => panic!("an expired quote was approved: {other:?}"),
    }

    // Repricing: another seller cannot; an unpriced order cannot be; its
    // seller can, and the old quote is kept.
    let other = mint(&app, api::auth::KeyKind::Seller, "globex").await;
    let (status, _) = app.post_as(&other, &format!("/v1/orders/{order_id}/reprice"), json!({})).await;
    assert_eq!(status, 404);
    let (status, again) = app.post_as(&app.seller, &format!("/v1/orders/{order_id}/reprice"), json!({})).await;
    assert_eq!((status, again["status"].as_str()), (202, Some("PRICING")), "{again}");
    assert!(again["quote"].is_null() && again["quote_valid_until_ms"].is_null(), "{again}");
    let repriced = wait_for_status(&app, &order_id, "PRICED").await;
    assert_ne!(repriced["job_id"], priced["job_id"]);
    let (status, quotes) = app.get_as(&app.seller, &format!("/v1/orders/{order_id}/quotes")).await;
    assert_eq!(status, 200, "{quotes}");
    assert_eq!(quotes["previous"].as_array().unwrap().len(), 1, "{quotes}");
    assert_eq!(quotes["previous"][0]["job_id"], priced["job_id"]);
    assert_eq!(quotes["previous"][0]["quote"]["total"], priced["quote"]["total"]);
    assert_eq!(quotes["current"]["total"], repriced["quote"]["total"]);

    // The new quote holds from its own pricing: the approval applies now.
    let now = repriced["updated_at_ms"].as_i64().unwrap();
    let outcome = app.store.apply_crm_event(&approval("crm-after"), now).await.unwrap();
    assert!(matches!(outcome, CrmOutcome::Applied(_)), "{outcome:?}");
    // Approved, it is repriced no more. (Asked while it was PRICING, the
    // answer would race the in-process worker.)
    let (status, refused) = app.post_as(&app.seller, &format!("/v1/orders/{order_id}/reprice"), json!({})).await;
    assert_eq!(status, 409, "only a priced order is repriced: {refused}");
    app.stop().await;
}

/// The bulk reprice takes orders priced under another book than the one
/// named, and refuses to run under a book the farm does not price with.
#[tokio::test]
async fn orders_priced_under_another_book_are_repriced_in_bulk() {
    let app = farm().await;
    let model_id = model(&app, 11.0).await;
    let (_, created) = order(&app, &app.seller, json!({"model_id": model_id, "material": "pla", "quantity": 3})).await;
    let order_id = created["order_id"].as_str().unwrap().to_string();
    let priced = wait_for_status(&app, &order_id, "PRICED").await;
    let current = priced["quote"]["price_book_version"].as_str().unwrap().to_string();

    let (status, refused) =
        app.post_as(&app.operator, "/v1/operator/orders/reprice", json!({"before_version": "not-this-one"})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["details"]["price_book_version"], current.as_str());
    let (status, _) = app.post_as(&app.seller, "/v1/operator/orders/reprice", json!({"before_version": current})).await;
    assert_eq!(status, 403);
    let (status, none) =
        app.post_as(&app.operator, "/v1/operator/orders/reprice", json!({"before_version": current})).await;
    assert_eq!((status, none["repriced"].clone()), (202, json!([])), "priced under the current book: {none}");

    // Under a newer book (by name), the order is stale and is repriced.
    let stale = app.store.orders_priced_under_other_books("builtin-next", 10).await.unwrap();
    assert_eq!(stale.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), [order_id.as_str()]);
    let slow = api::orders::reprice::SlowLane { triangles: 1_000_000, bytes: 1 << 26 };
    let next = calculator::PriceBook { version: "builtin-next".into(), ..calculator::PriceBook::builtin() };
    let terms = calculator::order::OrderTerms::of(&next);
    let repriced = api::orders::reprice::reprice_under(&app.store, &terms, slow, 10, "test", 1).await.unwrap();
    assert_eq!(repriced.len(), 1);
    assert_eq!(repriced[0].order_id, order_id);
    let back = wait_for_status(&app, &order_id, "PRICED").await;
    assert_eq!(back["job_id"], repriced[0].job_id.as_str());
    assert_eq!(back["quote"]["total"], priced["quote"]["total"], "the same book gives the same price");
    app.stop().await;
}
