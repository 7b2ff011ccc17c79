//! Webhooks through the real router and sender: what a key may make, that
//! every delivery is signed and retried, and that a key hears only of its
//! own jobs and orders.

use std::time::Duration;

use api::ApiSettings;
use api::auth::KeyKind;
use api::webhooks::WebhookSettings;
use scheduler::Lane;
use serde_json::{Value, json};

use crate::helpers::{TestApp, cube_stl, mint, spawn_farm, test_worker};
use crate::receiver::{Receiver, signature_verifies};

const PATIENCE: Duration = Duration::from_secs(30);

/// A farm whose webhooks may point at loopback receivers and retry fast.
async fn farm_with_receivers() -> TestApp {
    let webhooks = WebhookSettings {
        allow_private: true,
        first_backoff: Duration::from_millis(50),
        poll: Duration::from_millis(20),
        ..WebhookSettings::default()
    };
    spawn_farm(ApiSettings { webhooks, ..ApiSettings::default() }, vec![test_worker(Lane::Fast)]).await
}

async fn subscribe(app: &TestApp, token: &str, url: &str, events: &[&str]) -> Value {
    let (status, created) = app.post_as(token, "/v1/webhooks", json!({ "url": url, "events": events })).await;
    assert_eq!(status, 201, "{created}");
    created
}

#[tokio::test]
async fn a_price_is_posted_signed_and_a_500_is_retried_with_the_same_event() {
    let app = farm_with_receivers().await;
    let receiver = Receiver::start(&[500]).await;
    let webhook = subscribe(&app, &app.seller, &receiver.url, &["pricing.succeeded"]).await;
    let secret = webhook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 60, "{webhook}");

    let job_id = app.submit(cube_stl(20.0)).await;
    assert_eq!(app.wait_for_job(&job_id).await["status"], "succeeded");
    let received = receiver.wait_for("a retried delivery", PATIENCE, |r| r.iter().any(|r| r.answered == 200)).await;

    assert_eq!(received.len(), 2, "one 500, then one 200: {received:?}");
    assert_eq!(received[0].answered, 500);
    assert_eq!(received[0].body, received[1].body, "a retry sends the same event");
    for delivery in &received {
        let signature = delivery.header("farm-signature").expect("every delivery is signed");
        assert!(signature_verifies(secret, signature, &delivery.body), "{signature}");
        assert!(!signature_verifies("whsec_wrong", signature, &delivery.body));
        assert_eq!(delivery.header("content-type"), Some("application/json"));
        assert_eq!(delivery.path, "/hooks/farm");
    }
    let event = received[1].json();
    assert_eq!(event["type"], "pricing.succeeded");
    assert_eq!(event["data"]["job_id"], job_id.as_str());
    assert!(event["data"]["total"].as_f64().unwrap() > 0.0, "{event}");
    assert_eq!(received[1].header("farm-event-id"), event["id"].as_str());
    assert_eq!(received[1].header("farm-delivery-attempt"), Some("2"));

    // The owner reads both attempts; the delivery is done.
    let path = format!("/v1/webhooks/{}/deliveries", webhook["webhook_id"].as_str().unwrap());
    let page = wait_for_delivered(&app, &path).await;
    let delivery = &page["deliveries"][0];
    assert_eq!(delivery["event_id"], event["id"]);
    assert_eq!(delivery["attempts"], 2);
    let codes: Vec<&Value> = delivery["attempt_log"].as_array().unwrap().iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(200), &json!(500)], "newest first: {delivery}");

    // The same cube again is answered from the quote cache, and heard of
    // as any other price.
    let (_, model) = app.post_model(cube_stl(20.0)).await;
    let (status, answered) = app.post_job(json!({"model_id": model["model_id"], "material": "pla"})).await;
    assert_eq!((status, answered["status"].as_str()), (201, Some("succeeded")), "{answered}");
    let cached = answered["job_id"].as_str().unwrap().to_string();
    receiver
        .wait_for("the cached price", PATIENCE, |r| r.iter().any(|r| r.json()["data"]["job_id"] == cached.as_str()))
        .await;
    app.stop().await;
}

/// Polls a deliveries page until its newest delivery is delivered.
async fn wait_for_delivered(app: &TestApp, path: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, page) = app.get_as(&app.seller, path).await;
        assert_eq!(status, 200, "{page}");
        if page["deliveries"][0]["status"] == "delivered" {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "never delivered: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_key_hears_only_of_its_own_orders_and_the_crm_of_every_order() {
    let app = farm_with_receivers().await;
    let other_seller = mint(&app, KeyKind::Seller, "globex").await;
    let (mine, theirs, crm) = (Receiver::start(&[]).await, Receiver::start(&[]).await, Receiver::start(&[]).await);
    let all = ["pricing.succeeded", "pricing.failed", "order.status_changed"];
    subscribe(&app, &app.seller, &mine.url, &all).await;
    let their_hook = subscribe(&app, &other_seller, &theirs.url, &all).await;
    subscribe(&app, &app.crm, &crm.url, &["order.status_changed"]).await;

    let (_, model) = app.post_model(cube_stl(15.0)).await;
    let (status, order) = app
        .post_as(&app.seller, "/v1/orders", json!({"model_id": model["model_id"], "material": "pla", "quantity": 2}))
        .await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap();

    let is_priced = |r: &[crate::receiver::Received]| {
        r.iter().any(|r| r.json()["data"]["status"] == "PRICED" && r.json()["data"]["order_id"] == order_id)
    };
    let heard = mine.wait_for("the order priced", PATIENCE, is_priced).await;
    crm.wait_for("the order priced", PATIENCE, is_priced).await;
    let types: Vec<String> = heard.iter().map(|r| r.json()["type"].as_str().unwrap().to_string()).collect();
    assert!(types.contains(&"pricing.succeeded".to_string()), "{types:?}");
    let versions: Vec<i64> = heard
        .iter()
        .map(|r| r.json())
        .filter(|e| e["type"] == "order.status_changed")
        .map(|e| e["data"]["version"].as_i64().unwrap())
        .collect();
    assert!(versions.len() >= 2 && versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");

    // By now every event was fanned out: the other seller got no delivery.
    let path = format!("/v1/webhooks/{}/deliveries", their_hook["webhook_id"].as_str().unwrap());
    let (status, page) = app.get_as(&other_seller, &path).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["deliveries"], json!([]), "another seller's order leaked: {page}");
    assert!(theirs.received().is_empty());
    // Nor can it read or delete another key's webhook.
    let (status, _) = app.get_as(&app.seller, &path).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn webhook_targets_and_requests_are_checked() {
    let settings = ApiSettings {
        webhooks: WebhookSettings { max_per_key: 2, ..WebhookSettings::default() },
        ..ApiSettings::default()
    };
    let app = spawn_farm(settings, vec![]).await;
    let refused = async |token: &str, body: Value| {
        let (status, answer) = app.post_as(token, "/v1/webhooks", body).await;
        (status, answer["error"]["message"].as_str().unwrap_or_default().to_string())
    };
    let events = json!(["pricing.succeeded"]);
    for url in
        ["http://127.0.0.1:8080/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://localhost/"]
    {
        let (status, message) = refused(&app.seller, json!({"url": url, "events": events})).await;
        assert_eq!(status, 422, "{url}: {message}");
        assert!(message.contains("public addresses only"), "{url}: {message}");
    }
    let (status, message) = refused(&app.seller, json!({"url": "file:///etc/passwd", "events": events})).await;
    assert_eq!((status, message.contains("http or https")), (422, true), "{message}");
    let (status, message) = refused(&app.seller, json!({"url": "https://93.184.216.34/", "events": []})).await;
    assert_eq!((status, message.contains("empty")), (422, true), "{message}");
    let (status, message) =
        refused(&app.seller, json!({"url": "https://93.184.216.34/", "events": ["order.shipped"]})).await;
    assert_eq!((status, message.contains("unknown variant `order.shipped`")), (422, true), "{message}");
    let (status, _) =
        refused(&app.seller, json!({"url": "https://93.184.216.34/", "events": events, "extra": 1})).await;
    assert_eq!(status, 422);
    let (status, _) = refused(&app.operator, json!({"url": "https://93.184.216.34/", "events": events})).await;
    assert_eq!(status, 403, "operators have nothing to hear");

    // Up to the limit, then 409; the list never shows a secret.
    let first = subscribe(&app, &app.seller, "https://93.184.216.34/a", &["pricing.failed", "pricing.failed"]).await;
    assert_eq!(first["events"], json!(["pricing.failed"]), "repeats are dropped");
    subscribe(&app, &app.seller, "https://93.184.216.34/b", &["order.status_changed"]).await;
    let (status, message) = refused(&app.seller, json!({"url": "https://93.184.216.34/c", "events": events})).await;
    assert_eq!(status, 409, "{message}");
    let (_, list) = app.get_as(&app.seller, "/v1/webhooks").await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 2, "{list}");
    assert!(!list.to_string().contains("whsec_"), "{list}");

    // Another key cannot delete it; its owner can, once.
    let path = format!("/v1/webhooks/{}", first["webhook_id"].as_str().unwrap());
    let other = mint(&app, KeyKind::Seller, "acme").await;
    assert_eq!(delete(&app, &other, &path).await, 404, "a second key of the same seller has its own webhooks");
    assert_eq!(delete(&app, &app.seller, &path).await, 204);
    assert_eq!(delete(&app, &app.seller, &path).await, 404);
    let (status, _) = app.get_as(&app.seller, "/v1/webhooks/nope%00/deliveries").await;
    assert_eq!(status, 404);
    app.stop().await;
}

async fn delete(app: &TestApp, token: &str, path: &str) -> u16 {
    app.client.send(reqwest::Method::DELETE, path, Some(token), None, false).await.0
}

/// Receivers that never answer hold a few of the sender's slots (per
/// webhook and per key), never all of them: another key's deliveries go
/// on, and the farm still stops at once.
#[tokio::test]
async fn a_receiver_that_hangs_delays_no_one_else_and_not_the_shutdown() {
    let webhooks = WebhookSettings {
        allow_private: true,
        timeout: Duration::from_secs(120),
        concurrency: 4,
        per_webhook_concurrency: 2,
        per_key_concurrency: 3,
        poll: Duration::from_millis(20),
        ..WebhookSettings::default()
    };
    let app = spawn_farm(ApiSettings { webhooks, ..ApiSettings::default() }, vec![test_worker(Lane::Fast)]).await;
    let hanging = Receiver::start(&[crate::receiver::HANG; 1000]).await;
    let prompt = Receiver::start(&[]).await;
    // Two webhooks of one key: two attempts each would take every slot;
    // the key may have three in flight.
    subscribe(&app, &app.crm, &hanging.url, &["order.status_changed"]).await;
    subscribe(&app, &app.crm, &hanging.url, &["order.status_changed"]).await;
    subscribe(&app, &app.seller, &prompt.url, &["order.status_changed"]).await;

    let (_, model) = app.post_model(cube_stl(13.0)).await;
    let mut order_ids = Vec::new();
    for quantity in 1..=4 {
        let body = json!({"model_id": model["model_id"], "material": "pla", "quantity": quantity});
        let (status, order) = app.post_as(&app.seller, "/v1/orders", body).await;
        assert_eq!(status, 201, "{order}");
        order_ids.push(order["order_id"].as_str().unwrap().to_string());
    }
    // Every order's PRICED status reaches the prompt receiver long before
    // the hanging one's attempts could time out (120 s). (A PRICED event
    // that went missing here now and then was lost by the fan-out, not
    // late: see `fan_out_events`.)
    prompt
        .wait_for("every order priced", PATIENCE, |r| {
            order_ids.iter().all(|id| {
                r.iter().any(|r| r.json()["data"]["order_id"] == id.as_str() && r.json()["data"]["status"] == "PRICED")
            })
        })
        .await;
    let hung = hanging.received().len();
    assert!((1..=3).contains(&hung), "at most three attempts of one key in flight: {hung}");
    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("the farm stops without waiting for the hanging receiver");
}
