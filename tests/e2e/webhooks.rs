//! The farm talks back on real services: webhook deliveries through
//! PostgreSQL survive `kill -9` of the API, and the broker's events
//! exchange carries an order's statuses in version order.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};

use crate::helpers::{Api, FarmProcess, mint_key, reference_cube};
use crate::production::{backends, delete_queues};
use crate::receiver::{Receiver, signature_verifies};
use crate::services;

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn deliveries_survive_a_kill_and_the_broker_carries_statuses_in_version_order() {
    let Some(backends) = backends().await else { return };
    let mut env = backends.env.clone();
    env.extend([
        ("FARM_WEBHOOK_ALLOW_PRIVATE", "true".to_string()),
        ("FARM_WEBHOOK_FIRST_BACKOFF_S", "0.2".to_string()),
        ("FARM_WEBHOOK_MAX_BACKOFF_S", "0.5".to_string()),
        ("FARM_EVENT_POLL_S", "0.05".to_string()),
    ]);
    let seller = mint_key("seller", "e2e-hooks", &[], &env);
    let mut api_process = FarmProcess::spawn(&["api", "--listen", "127.0.0.1:0"], &env);
    let api = Api::new(&api_process.wait_for_listening(), &seller);
    let mut worker = FarmProcess::spawn(&["worker", "--listen", "127.0.0.1:0"], &env);
    worker.wait_for_listening();
    // The API declared the events exchange on connecting; bind a queue of
    // the test's own for order statuses, as the CRM would.
    let connection = services::within("connecting to RabbitMQ", async {
        lapin::Connection::connect(&backends.amqp_url, Default::default()).await.unwrap()
    })
    .await;
    let channel = connection.create_channel().await.unwrap();
    let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
    let queue = channel.queue_declare("".into(), exclusive, FieldTable::default()).await.unwrap();
    let exchange = format!("{}.events", backends.prefix);
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            "order.status_changed".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    // The receiver refuses everything at first: the price's delivery is
    // attempted, answered 503, and left pending when the API dies.
    let receiver = Receiver::start(&[503; 10_000]).await;
    let (status, webhook) = api
        .post("/v1/webhooks", &json!({"url": receiver.url, "events": ["pricing.succeeded", "order.status_changed"]}))
        .await;
    assert_eq!(status, 201, "{webhook}");
    let secret = webhook["secret"].as_str().unwrap().to_string();
    let (bytes, _) = reference_cube();
    let (_, model) = api.upload(bytes).await;
    let model_id = model["model_id"].as_str().unwrap();
    let (status, accepted) = api.submit(model_id, "pla").await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_string();
    let is_price = |r: &crate::receiver::Received| r.json()["data"]["job_id"] == job_id.as_str();
    receiver.wait_for("a first attempt at the price", PATIENCE, |r| r.iter().any(is_price)).await;
    api_process.signal("KILL");
    api_process.wait_exit(Duration::from_secs(10)).expect("kill -9 ends the API");

    // A new API process finds the pending delivery in the database.
    receiver.answer_from_now(&[]);
    let mut api_process = FarmProcess::spawn(&["api", "--listen", "127.0.0.1:0"], &env);
    let api = Api::new(&api_process.wait_for_listening(), &seller);
    receiver
        .wait_for("the price, after the restart", PATIENCE, |r| r.iter().any(|r| is_price(r) && r.answered == 200))
        .await;

    // An order moves CREATED, PRICING, PRICED, CANCELLED; each status reaches the
    // broker and the webhook.
    let (status, order) =
        api.post("/v1/orders", &json!({"model_id": model_id, "material": "pla", "quantity": 1})).await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["order_id"].as_str().unwrap().to_string();
    let of_order = |r: &crate::receiver::Received| r.json()["data"]["order_id"] == order_id.as_str();
    receiver
        .wait_for("the order priced", PATIENCE, |r| {
            r.iter().any(|r| of_order(r) && r.json()["data"]["status"] == "PRICED")
        })
        .await;
    let (status, cancelled) = api.post(&format!("/v1/orders/{order_id}/cancel"), &json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    let received = receiver
        .wait_for("the order cancelled", PATIENCE, |r| {
            r.iter().any(|r| of_order(r) && r.json()["data"]["status"] == "CANCELLED" && r.answered == 200)
        })
        .await;

    // Every delivery is signed; every event was accepted exactly once.
    let mut accepted_ids = Vec::new();
    for delivery in &received {
        let signature = delivery.header("farm-signature").expect("signed");
        assert!(signature_verifies(&secret, signature, &delivery.body), "{signature}");
        if delivery.answered == 200 {
            accepted_ids.push(delivery.json()["id"].as_str().unwrap().to_string());
        }
    }
    let distinct: HashSet<&String> = accepted_ids.iter().collect();
    assert_eq!(distinct.len(), accepted_ids.len(), "an event accepted twice: {accepted_ids:?}");
    assert!(received.iter().filter(|r| is_price(r)).count() >= 2, "the price was attempted before and after the kill");

    // The broker: the order's statuses, in version order, each once.
    let mut consumer = channel
        .basic_consume(queue.name().clone(), "e2e".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut statuses: BTreeMap<i64, String> = BTreeMap::new();
    let mut versions = Vec::new();
    let mut seen = HashSet::new();
    services::within("the order's statuses on the broker", async {
        while statuses.values().all(|s| s != "CANCELLED") {
            let delivery = consumer.next().await.expect("the consumer stays open").unwrap();
            let event: Value = serde_json::from_slice(&delivery.data).unwrap();
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            assert_eq!(event["type"], "order.status_changed");
            let id = event["id"].as_str().unwrap().to_string();
            if event["data"]["order_id"] != order_id.as_str() || !seen.insert(id) {
                continue;
            }
            let version = event["data"]["version"].as_i64().unwrap();
            versions.push(version);
            statuses.insert(version, event["data"]["status"].as_str().unwrap().to_string());
        }
    })
    .await;
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "out of version order: {versions:?}");
    let in_order: Vec<&str> = statuses.values().map(String::as_str).collect();
    assert_eq!(in_order, ["CREATED", "PRICING", "PRICED", "CANCELLED"], "{statuses:?}");

    assert_eq!(worker.terminate(), 0);
    assert_eq!(api_process.terminate(), 0);
    delete_queues(&backends.amqp_url, &backends.prefix).await;
}
