//! Publisher confirms, manual acks and redelivery on RabbitMQ quorum queues.

use std::time::Duration;

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use scheduler::broker::AmqpBroker;
use scheduler::{Broker, Topology};

use crate::services;

struct TestBroker {
    broker: Broker,
    topology: Topology,
    url: String,
}

async fn test_broker() -> Option<TestBroker> {
    let url = services::rabbitmq().await?;
    let topology = Topology::with_prefix(&format!("it-{}", uuid::Uuid::new_v4().simple()));
    let broker = AmqpBroker::connect(&url, &topology, Duration::from_secs(5)).await.unwrap();
    Some(TestBroker { broker: Broker::Amqp(broker), topology, url })
}

impl TestBroker {
    /// Messages ready in `queue`, as the broker counts them.
    async fn ready(&self, queue: &str) -> u32 {
        let connection = lapin::Connection::connect(&self.url, Default::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        channel.queue_declare(queue.into(), options, FieldTable::default()).await.unwrap().message_count()
    }

    async fn cleanup(self) {
        let connection = lapin::Connection::connect(&self.url, Default::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        for queue in self.topology.queues() {
            channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_confirmed_message_survives_a_release_and_is_gone_after_an_ack() {
    let Some(t) = test_broker().await else { return };
    let queue = t.topology.jobs.clone();
    t.broker.publish(&queue, b"job-1").await.unwrap();
    assert_eq!(t.ready(&queue).await, 1, "a confirmed publish is in the queue");

    let mut consumer = t.broker.consume(&queue, 1).await.unwrap();
    let first = consumer.next().await.unwrap().unwrap();
    assert_eq!((first.payload.as_slice(), first.redelivered), (&b"job-1"[..], false));
    first.release().await.unwrap();
    let again = consumer.next().await.unwrap().unwrap();
    assert_eq!((again.payload.as_slice(), again.redelivered), (&b"job-1"[..], true));
    again.ack().await.unwrap();
    consumer.cancel().await;
    assert_eq!(t.ready(&queue).await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn unacked_deliveries_return_to_the_queue_when_their_consumer_dies() {
    let Some(t) = test_broker().await else { return };
    let queue = t.topology.jobs.clone();
    for n in 0..3 {
        t.broker.publish(&queue, format!("job-{n}").as_bytes()).await.unwrap();
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
        let delivery = consumer.next().await.unwrap().unwrap();
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
    let Some(t) = test_broker().await else { return };
    let queue = t.topology.jobs.clone();
    for n in 0..4 {
        t.broker.publish(&queue, format!("job-{n}").as_bytes()).await.unwrap();
    }
    let mut greedy = t.broker.consume(&queue, 2).await.unwrap();
    let a = greedy.next().await.unwrap().unwrap();
    let b = greedy.next().await.unwrap().unwrap();
    // With two unacked, the broker holds the rest back for other consumers.
    let mut other = t.broker.consume(&queue, 2).await.unwrap();
    let patience = Duration::from_secs(10);
    let c = tokio::time::timeout(patience, other.next())
        .await
        .expect("job-2 reaches the second consumer")
        .unwrap()
        .unwrap();
    let d = tokio::time::timeout(patience, other.next())
        .await
        .expect("job-3 reaches the second consumer")
        .unwrap()
        .unwrap();
    let mut payloads: Vec<_> = [&a, &b, &c, &d].iter().map(|x| x.payload.clone()).collect();
    payloads.sort();
    assert_eq!(payloads, vec![b"job-0".to_vec(), b"job-1".to_vec(), b"job-2".to_vec(), b"job-3".to_vec()]);
    for delivery in [a, b, c, d] {
        delivery.ack().await.unwrap();
    }
    t.cleanup().await;
}
