//! RabbitMQ behind the queue seam, through lapin.
//!
//! Every queue is a durable quorum queue (replicated, declared once with
//! `x-queue-type=quorum`). Publishing waits for the publisher confirm, and
//! consumers ack manually after the work's effect is safe elsewhere, so a
//! message is never dropped between two owners.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use super::{Acker, BrokerError, Delivery, Topology};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

#[derive(Clone)]
pub struct AmqpBroker {
    connection: Arc<Connection>,
    publisher: Channel,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker").field("connected", &self.is_ready()).finish()
    }
}

impl AmqpBroker {
    /// Connects, retrying with capped exponential backoff for up to `patience`
    /// (a broker that starts after us is normal in a cluster), then declares
    /// the topology's queues.
    pub async fn connect(url: &str, topology: &Topology, patience: Duration) -> Result<Self, BrokerError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut backoff = Duration::from_millis(200);
        let connection = loop {
            let properties = ConnectionProperties::default().with_connection_name("pricing-farm".into());
            match Connection::connect(url, properties).await {
                Ok(connection) => break connection,
                Err(e) if tokio::time::Instant::now() + backoff < deadline => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker not reachable yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(BrokerError::Connect(e.to_string())),
            }
        };
        let publisher = connection.create_channel().await.map_err(op("channel.open"))?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(op("confirm.select"))?;
        for queue in topology.queues() {
            declare_quorum_queue(&publisher, queue).await?;
        }
        Ok(Self { connection: Arc::new(connection), publisher })
    }

    pub(super) async fn publish(&self, queue: &str, payload: &[u8]) -> Result<(), BrokerError> {
        let properties =
            BasicProperties::default().with_delivery_mode(PERSISTENT).with_content_type("application/json".into());
        let confirm = self
            .publisher
            .basic_publish(
                "".into(),
                queue.into(),
                // Mandatory: an unroutable message (no such queue) comes back
                // instead of vanishing.
                BasicPublishOptions { mandatory: true, immediate: false },
                payload,
                properties,
            )
            .await
            .map_err(op("basic.publish"))?
            .await
            .map_err(op("basic.publish"))?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) | Confirmation::Nack(_) | Confirmation::NotRequested => {
                Err(BrokerError::NotConfirmed { queue: queue.into() })
            }
        }
    }

    pub(super) async fn consume(&self, queue: &str, prefetch: u16) -> Result<AmqpConsumer, BrokerError> {
        let channel = self.connection.create_channel().await.map_err(op("channel.open"))?;
        channel.basic_qos(prefetch.max(1), BasicQosOptions { global: false }).await.map_err(op("basic.qos"))?;
        let consumer = channel
            .basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(op("basic.consume"))?;
        Ok(AmqpConsumer { channel, consumer })
    }

    pub(super) fn is_ready(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

async fn declare_quorum_queue(channel: &Channel, queue: &str) -> Result<(), BrokerError> {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    channel
        .queue_declare(queue.into(), QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() }, arguments)
        .await
        .map(drop)
        .map_err(op("queue.declare"))
}

pub struct AmqpConsumer {
    channel: Channel,
    consumer: lapin::Consumer,
}

impl std::fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConsumer").field("tag", &self.consumer.tag().as_str()).finish()
    }
}

impl AmqpConsumer {
    pub(super) async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let delivery = self.consumer.next().await?;
        Some(delivery.map_err(op("basic.deliver")).map(|d| Delivery {
            payload: d.data,
            redelivered: d.redelivered,
            acker: Acker::Amqp(d.acker),
        }))
    }

    pub(super) async fn cancel(&mut self) {
        let tag = self.consumer.tag();
        if let Err(e) = self.channel.basic_cancel(tag, BasicCancelOptions::default()).await {
            tracing::warn!(error = %e, "could not cancel the consumer; closing its channel releases its deliveries");
        }
    }
}

/// Turns an acker's answer into ours. `Ok(false)` means the channel the
/// delivery came on is gone (a reconnect replaced it): the broker has already
/// requeued the message, so settling it here is impossible.
pub(super) fn settle(result: lapin::Result<bool>, operation: &'static str) -> Result<(), BrokerError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(BrokerError::Operation {
            operation,
            message: "the delivery's channel is closed; the broker will redeliver it".into(),
        }),
        Err(e) => Err(BrokerError::Operation { operation, message: e.to_string() }),
    }
}

fn op(operation: &'static str) -> impl Fn(lapin::Error) -> BrokerError {
    move |e| BrokerError::Operation { operation, message: e.to_string() }
}
