//! Publisher confirms, manual acks, redelivery, dead letters and broadcasts
//! on a real RabbitMQ. Each test declares its own uniquely named topology and
//! deletes it at the end.

use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use scheduler::broker::{AmqpBroker, QueueStats};
use scheduler::{Broker, Lane, Outgoing, Topology};

use crate::services;

struct TestBroker {
    broker: Broker,
    topology: Topology,
    url: String,
}

async fn test_broker(delivery_limit: u32) -> Option<TestBroker> {
    let url = services::rabbitmq().await?;
    let prefix = format!("it-{}", uuid::Uuid::new_v4().simple());
    let topology = Topology { delivery_limit, ..Topology::with_prefix(&prefix) };
    let broker = AmqpBroker::connect(&url, &topology, Duration::from_secs(5)).await.unwrap();
    Some(TestBroker { broker: Broker::Amqp(broker), topology, url })
}

fn text(payload: &str) -> Outgoing {
    Outgoing::new(payload.as_bytes().to_vec())
}

const PATIENCE: Duration = Duration::from_secs(20);

impl TestBroker {
    /// Messages ready in `queue`, as the broker counts them.
    async fn ready(&self, queue: &str) -> u64 {
        self.broker.queue_stats(queue).await.unwrap().messages
    }

    async fn cleanup(self) {
        services::within("deleting the test's queues", async {
            let connection = lapin::Connection::connect(&self.url, Default::default()).await.unwrap();
            let channel = connection.create_channel().await.unwrap();
            for queue in self.topology.work_queues().into_iter().chain([self.topology.dead_letters.as_str()]) {
                channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.unwrap();
            }
            for exchange in [&self.topology.control, &self.topology.dead_letter_exchange] {
                channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await.unwrap();
            }
        })
        .await;
    }
}

#[tokio::test]
async fn the_lanes_are_quorum_queues_with_an_explicit_delivery_limit_and_a_dead_letter_queue() {
    let Some(t) = test_broker(7).await else { return };
    let connection = lapin::Connection::connect(&t.url, Default::default()).await.unwrap();
    // Declaring a queue with other arguments than it has is refused, so a
    // declaration with exactly ours (and one with the limit changed) tells
    // what the broker holds.
    let declare = |queue: String, limit: i32| {
        let connection = &connection;
        let dead = t.topology.dead_letter_exchange.clone();
        async move {
            let channel = connection.create_channel().await.unwrap();
            let mut arguments = FieldTable::default();
            arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
            arguments.insert("x-delivery-limit".into(), AMQPValue::LongInt(limit));
            arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dead.as_str().into()));
            arguments.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
            arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
            let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
            channel.queue_declare(queue.as_str().into(), options, arguments).await.is_ok()
        }
    };
    for lane in Lane::ALL {
        let queue = t.topology.jobs(lane).to_string();
        assert!(declare(queue.clone(), 7).await, "{queue} has our arguments");
        assert!(!declare(queue.clone(), 20).await, "{queue} has an explicit delivery limit of 7, not 20");
    }
    assert_eq!(t.broker.queue_stats(&t.topology.dead_letters).await.unwrap(), QueueStats::default());
    t.cleanup().await;
}

#[tokio::test]
async fn a_confirmed_message_survives_a_release_and_is_gone_after_an_ack() {
    let Some(t) = test_broker(5).await else { return };
    let queue = t.topology.fast.clone();
    t.broker.publish(&queue, &text("job-1").with_id("j1")).await.unwrap();
    assert_eq!(t.ready(&queue).await, 1, "a confirmed publish is in the queue");

    let mut consumer = t.broker.consume(&queue, 1).await.unwrap();
    let first = consumer.next().await.unwrap().unwrap();
    assert_eq!((first.payload.as_slice(), first.redelivered), (&b"job-1"[..], false));
    assert_eq!(first.message_id.as_deref(), Some("j1"));
    first.release().await.unwrap();
    let again = consumer.next().await.unwrap().unwrap();
    assert_eq!((again.payload.as_slice(), again.redelivered), (&b"job-1"[..], true));
    assert_eq!(again.delivery_count, 1, "quorum queues count deliveries");
    again.ack().await.unwrap();
    consumer.cancel().await;
    assert_eq!(t.ready(&queue).await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn unacked_deliveries_return_to_the_queue_when_their_consumer_dies() {
    let Some(t) = test_broker(5).await else { return };
    let queue = t.topology.slow.clone();
    for n in 0..3 {
        t.broker.publish(&queue, &text(&format!("job-{n}"))).await.unwrap();
    }
    {
        // A separate connection stands in for a worker that is killed while
        // holding a delivery: closing it without an ack requeues the message.
        let dying = AmqpBroker::connect(&t.url, &t.topology, Duration::from_secs(5)).await.unwrap();
        let mut consumer = Broker::Amqp(dying).consume(&queue, 1).await.unwrap();
        let held = consumer.next().await.unwrap().unwrap();
        assert_eq!(held.payload, b"job-0");
    }
    let mut consumer = t.broker.consume(&queue, 3).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let delivery = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
        seen.push((String::from_utf8(delivery.payload.clone()).unwrap(), delivery.redelivered));
        delivery.ack().await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, vec![("job-0".to_string(), true), ("job-1".to_string(), false), ("job-2".to_string(), false)]);
    consumer.cancel().await;
    t.cleanup().await;
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries_per_consumer() {
    let Some(t) = test_broker(5).await else { return };
    let queue = t.topology.fast.clone();
    for n in 0..4 {
        t.broker.publish(&queue, &text(&format!("job-{n}"))).await.unwrap();
    }
    let mut greedy = t.broker.consume(&queue, 2).await.unwrap();
    let a = greedy.next().await.unwrap().unwrap();
    let b = greedy.next().await.unwrap().unwrap();
    // With two unacked, the broker holds the rest back for other consumers.
    let mut other = t.broker.consume(&queue, 2).await.unwrap();
    let c = tokio::time::timeout(PATIENCE, other.next())
        .await
        .expect("job-2 reaches the second consumer")
        .unwrap()
        .unwrap();
    let d = tokio::time::timeout(PATIENCE, other.next())
        .await
        .expect("job-3 reaches the second consumer")
        .unwrap()
        .unwrap();
    let mut payloads: Vec<_> = [&a, &b, &c, &d].iter().map(|x| x.payload.clone()).collect();
    payloads.sort();
    assert_eq!(payloads, vec![b"job-0".to_vec(), b"job-1".to_vec(), b"job-2".to_vec(), b"job-3".to_vec()]);
    let stats = t.broker.queue_stats(&queue).await.unwrap();
    assert_eq!(stats, QueueStats { messages: 0, consumers: 2 }, "delivered, unacked messages are not ready");
    for delivery in [a, b, c, d] {
        delivery.ack().await.unwrap();
    }
    t.cleanup().await;
}

#[tokio::test]
async fn a_rejected_message_and_one_past_the_delivery_limit_are_dead_lettered_with_their_reason() {
    let Some(t) = test_broker(2).await else { return };
    let queue = t.topology.fast.clone();
    let mut jobs = t.broker.consume(&queue, 1).await.unwrap();
    let mut dead = t.broker.consume(&t.topology.dead_letters, 1).await.unwrap();

    t.broker.publish(&queue, &text("unreadable").with_id("bad")).await.unwrap();
    jobs.next().await.unwrap().unwrap().reject().await.unwrap();
    let letter = tokio::time::timeout(PATIENCE, dead.next()).await.unwrap().unwrap().unwrap();
    let death = letter.death.clone().expect("a dead letter says why");
    assert_eq!((death.reason.as_str(), death.queue.as_str()), ("rejected", queue.as_str()));
    assert_eq!(letter.message_id.as_deref(), Some("bad"));
    letter.ack().await.unwrap();

    // A job that keeps losing its worker: every delivery ends unacked.
    t.broker.publish(&queue, &text("crashy")).await.unwrap();
    for _ in 0..=2 {
        let delivery = tokio::time::timeout(PATIENCE, jobs.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(delivery.payload, b"crashy");
        delivery.release().await.unwrap();
    }
    let letter =
        tokio::time::timeout(PATIENCE, dead.next()).await.expect("dead-lettered past the limit").unwrap().unwrap();
    assert_eq!(
        (letter.payload.as_slice(), letter.death.as_ref().unwrap().reason.as_str()),
        (&b"crashy"[..], "delivery_limit")
    );
    letter.ack().await.unwrap();
    assert_eq!(t.ready(&queue).await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn a_broadcast_reaches_every_subscriber() {
    let Some(t) = test_broker(5).await else { return };
    let other = Broker::Amqp(AmqpBroker::connect(&t.url, &t.topology, Duration::from_secs(5)).await.unwrap());
    let mut a = t.broker.subscribe().await.unwrap();
    let mut b = other.subscribe().await.unwrap();
    t.broker.broadcast(br#"{"control":"cancel","job_id":"j9"}"#).await.unwrap();
    for subscriber in [&mut a, &mut b] {
        let message = tokio::time::timeout(PATIENCE, subscriber.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(message.payload, br#"{"control":"cancel","job_id":"j9"}"#);
        // No-ack subscriptions settle nothing; acking is harmless.
        message.ack().await.unwrap();
    }
    t.cleanup().await;
}
