//! RabbitMQ behind the queue seam, through lapin, with reconnection.
//!
//! Every work queue is a durable quorum queue with an explicit delivery
//! limit and at-least-once dead-lettering into a quorum dead-letter queue;
//! the declaration is the same on RabbitMQ 3.10 and 4.x. Publishing waits
//! for the publisher confirm, and consumers ack manually after the work's
//! effect is safe elsewhere, so a message is never dropped between two
//! owners.
//!
//! **Reconnection.** One connection per process, owned by a supervisor task.
//! When it breaks (a broker restart, a network cut), the supervisor marks the
//! broker unavailable, reconnects with capped exponential backoff and jitter,
//! declares the topology again, and publishes the new session. Publishers
//! wait a moment for it; consumers see their stream end and consume again
//! once [`AmqpBroker::wait_ready`] says so. Nothing spins while the broker is
//! down. Deliveries of the old connection can no longer be settled (lapin's
//! acker answers `Ok(false)`); the broker has requeued them already.
//!
//! lapin's own auto-recovery is not used: its maintainers do not call it
//! production-ready, and a process-level supervisor is simple to reason about.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Notify, watch};

use super::{Acker, BrokerError, Death, Delivery, Outgoing, QueueStats, Topology};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;
/// How long a publish waits for a lost connection to come back.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(5);
/// How often the supervisor looks at a healthy connection.
const HEALTH_CHECK: Duration = Duration::from_secs(1);
/// How long one attempt to connect and declare may take before it is retried.
const SESSION_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// A connection and the confirm-mode channel every publish uses.
struct Session {
    connection: Connection,
    publisher: Channel,
}

impl Session {
    fn healthy(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

struct Inner {
    url: String,
    topology: Topology,
    /// The live session; `None` while reconnecting.
    session: watch::Sender<Option<Arc<Session>>>,
    /// Woken by anyone who saw the session fail, so the supervisor need not
    /// wait for its next look.
    broken: Arc<Notify>,
}

#[derive(Clone)]
pub struct AmqpBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker").field("connected", &self.is_ready()).finish()
    }
}

impl AmqpBroker {
    /// Connects, retrying with capped exponential backoff for up to `patience`
    /// (a broker that starts after us is normal in a cluster), declares the
    /// topology, and starts the supervisor that keeps the connection alive.
    pub async fn connect(url: &str, topology: &Topology, patience: Duration) -> Result<Self, BrokerError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut backoff = BACKOFF_FIRST;
        let session = loop {
            match open_session(url, topology).await {
                Ok(session) => break session,
                Err(e) if tokio::time::Instant::now() + backoff < deadline => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker not reachable yet");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                }
                Err(e) => return Err(BrokerError::Connect(e)),
            }
        };
        let (sender, _) = watch::channel(Some(Arc::new(session)));
        let inner = Arc::new(Inner {
            url: url.to_string(),
            topology: topology.clone(),
            session: sender,
            broken: Arc::default(),
        });
        metrics::gauge!("farm_broker_connected").set(1.0);
        tokio::spawn(supervise(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// The live session, waiting up to `patience` for one.
    async fn session(&self, patience: Duration) -> Result<Arc<Session>, BrokerError> {
        let mut watcher = self.inner.session.subscribe();
        let found = tokio::time::timeout(patience, watcher.wait_for(|s| s.as_ref().is_some_and(|s| s.healthy()))).await;
        match found {
            Ok(Ok(session)) => Ok(session.clone().expect("wait_for checked it is there")),
            _ => Err(BrokerError::Unavailable),
        }
    }

    /// Reports an operation's failure; a failure of the connection wakes the
    /// supervisor.
    fn failed(&self, operation: &'static str) -> impl Fn(lapin::Error) -> BrokerError + '_ {
        move |e| {
            self.inner.broken.notify_one();
            BrokerError::Operation { operation, message: e.to_string() }
        }
    }

    pub(super) async fn publish(&self, queue: &str, message: &Outgoing) -> Result<(), BrokerError> {
        let session = self.session(PUBLISH_PATIENCE).await?;
        let properties = persistent_properties(message);
        let confirm = session
            .publisher
            .basic_publish(
                "".into(),
                queue.into(),
                // Mandatory: an unroutable message (no such queue) comes back
                // instead of vanishing.
                BasicPublishOptions { mandatory: true, immediate: false },
                &message.payload,
                properties,
            )
            .await
            .map_err(self.failed("basic.publish"))?
            .await
            .map_err(self.failed("basic.publish"))?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) | Confirmation::Nack(_) | Confirmation::NotRequested => {
                Err(BrokerError::NotConfirmed { queue: queue.into() })
            }
        }
    }

    pub(super) async fn publish_event(&self, routing_key: &str, message: &Outgoing) -> Result<(), BrokerError> {
        // Not mandatory: an event no queue is bound for yet is simply not
        // wanted, unlike a job with no queue.
        let events = self.inner.topology.events.as_str();
        self.publish_to_exchange(events, routing_key, &message.payload, persistent_properties(message)).await
    }

    pub(super) async fn broadcast(&self, payload: &[u8]) -> Result<(), BrokerError> {
        let properties = BasicProperties::default().with_content_type("application/json".into());
        self.publish_to_exchange(&self.inner.topology.control, "", payload, properties).await
    }

    /// Publishes to an exchange (not mandatory) and waits for the confirm.
    async fn publish_to_exchange(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let session = self.session(PUBLISH_PATIENCE).await?;
        let confirm = session
            .publisher
            .basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), payload, properties)
            .await
            .map_err(self.failed("basic.publish"))?
            .await
            .map_err(self.failed("basic.publish"))?;
        match confirm {
            Confirmation::Ack(_) => Ok(()),
            Confirmation::Nack(_) | Confirmation::NotRequested => {
                Err(BrokerError::NotConfirmed { queue: exchange.to_string() })
            }
        }
    }

    pub(super) async fn consume(&self, queue: &str, prefetch: u16) -> Result<AmqpConsumer, BrokerError> {
        let session = self.session(PUBLISH_PATIENCE).await?;
        let channel = session.connection.create_channel().await.map_err(self.failed("channel.open"))?;
        channel
            .basic_qos(prefetch.max(1), BasicQosOptions { global: false })
            .await
            .map_err(self.failed("basic.qos"))?;
        let consumer = channel
            .basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(self.failed("basic.consume"))?;
        Ok(AmqpConsumer { channel, consumer, acks: true })
    }

    /// A server-named, exclusive queue bound to the control exchange: it
    /// lives as long as this connection, which is what a broadcast needs.
    pub(super) async fn subscribe(&self) -> Result<AmqpConsumer, BrokerError> {
        let session = self.session(PUBLISH_PATIENCE).await?;
        let channel = session.connection.create_channel().await.map_err(self.failed("channel.open"))?;
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let queue = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await
            .map_err(self.failed("queue.declare"))?;
        channel
            .queue_bind(
                queue.name().clone(),
                self.inner.topology.control.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(self.failed("queue.bind"))?;
        let options = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let consumer = channel
            .basic_consume(queue.name().clone(), "".into(), options, FieldTable::default())
            .await
            .map_err(self.failed("basic.consume"))?;
        Ok(AmqpConsumer { channel, consumer, acks: false })
    }

    /// A passive declaration on a channel of its own: asking about a queue
    /// that does not exist closes the channel it was asked on.
    pub(super) async fn queue_stats(&self, queue: &str) -> Result<QueueStats, BrokerError> {
        let session = self.session(PUBLISH_PATIENCE).await?;
        let channel = session.connection.create_channel().await.map_err(self.failed("channel.open"))?;
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let declared = channel.queue_declare(queue.into(), options, FieldTable::default()).await;
        let _ = channel.close(200, "stats read".into()).await;
        let queue =
            declared.map_err(|e| BrokerError::Operation { operation: "queue.declare", message: e.to_string() })?;
        Ok(QueueStats { messages: u64::from(queue.message_count()), consumers: u64::from(queue.consumer_count()) })
    }

    pub(super) fn is_ready(&self) -> bool {
        self.inner.session.borrow().as_ref().is_some_and(|s| s.healthy())
    }

    pub(super) async fn wait_ready(&self, patience: Duration) -> bool {
        self.session(patience).await.is_ok()
    }
}

/// Keeps the connection alive until every handle to the broker is gone.
async fn supervise(inner: Weak<Inner>) {
    loop {
        // Wait for the current session to fail.
        loop {
            let Some(strong) = inner.upgrade() else { return };
            let session = strong.session.borrow().clone();
            if !session.as_ref().is_some_and(|s| s.healthy()) {
                break;
            }
            let mut events = session.as_ref().map(|s| s.connection.events_listener());
            let notify = strong.broken.clone();
            let broken = notify.notified();
            tokio::pin!(broken);
            // Hold no strong reference while waiting, so dropping the last
            // broker handle ends this task.
            drop(strong);
            drop(session);
            tokio::select! {
                _ = tokio::time::sleep(HEALTH_CHECK) => {}
                () = &mut broken => {}
                event = async { events.as_mut().expect("a session").next().await } => {
                    if let Some(lapin::Event::Error(e)) = event {
                        tracing::warn!(error = %e, "broker connection failed");
                    }
                }
            }
        }
        let Some(strong) = inner.upgrade() else { return };
        strong.session.send_replace(None);
        metrics::gauge!("farm_broker_connected").set(0.0);
        tracing::warn!("broker connection lost; reconnecting");
        let (url, topology) = (strong.url.clone(), strong.topology.clone());
        drop(strong);
        let mut backoff = BACKOFF_FIRST;
        let session = loop {
            match open_session(&url, &topology).await {
                Ok(session) => break session,
                Err(e) => {
                    tracing::debug!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker still unreachable");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                    if inner.strong_count() == 0 {
                        return;
                    }
                }
            }
        };
        let Some(strong) = inner.upgrade() else { return };
        strong.session.send_replace(Some(Arc::new(session)));
        metrics::gauge!("farm_broker_connected").set(1.0);
        metrics::counter!("farm_broker_reconnects_total").increment(1);
        tracing::info!("broker connection restored");
    }
}

/// Between 50% and 100% of `delay`, so a fleet of workers that lost the
/// broker together does not come back in lockstep.
fn jittered(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let share = 0.5 + 0.5 * f64::from(nanos % 1000) / 1000.0;
    delay.mul_f64(share)
}

/// One attempt at a session, bounded in time. A broker that accepts the TCP
/// connection but never finishes the handshake or a declare (one still
/// recovering its quorum queues after a restart, say) would otherwise hold
/// the caller forever, silently; bounded, the attempt fails and is retried
/// with a logged warning.
async fn open_session(url: &str, topology: &Topology) -> Result<Session, String> {
    let attempt = async {
        let properties = ConnectionProperties::default().with_connection_name("pricing-farm".into());
        let connection = Connection::connect(url, properties).await?;
        let publisher = connection.create_channel().await?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await?;
        declare(&publisher, topology).await?;
        Ok::<_, lapin::Error>(Session { connection, publisher })
    };
    match tokio::time::timeout(SESSION_ATTEMPT_TIMEOUT, attempt).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s while connecting and declaring the topology",
            SESSION_ATTEMPT_TIMEOUT.as_secs()
        )),
    }
}

/// The whole topology, idempotently: exchanges, the dead-letter queue, and
/// the work queues that dead-letter into it.
/// A persistent JSON message with `message`'s id and headers.
fn persistent_properties(message: &Outgoing) -> BasicProperties {
    let mut properties =
        BasicProperties::default().with_delivery_mode(PERSISTENT).with_content_type("application/json".into());
    if let Some(id) = &message.message_id {
        properties = properties.with_message_id(ShortString::from(id.as_str()));
    }
    if !message.headers.is_empty() {
        let mut headers = FieldTable::default();
        for (key, value) in &message.headers {
            headers.insert(ShortString::from(key.as_str()), AMQPValue::LongString(LongString::from(value.as_str())));
        }
        properties = properties.with_headers(headers);
    }
    properties
}

async fn declare(channel: &Channel, topology: &Topology) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(topology.events.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await?;
    for exchange in [&topology.dead_letter_exchange, &topology.control] {
        channel
            .exchange_declare(exchange.as_str().into(), ExchangeKind::Fanout, durable, FieldTable::default())
            .await?;
    }
    let queue_options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(topology.dead_letters.as_str().into(), queue_options, quorum_arguments()).await?;
    channel
        .queue_bind(
            topology.dead_letters.as_str().into(),
            topology.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for queue in topology.work_queues() {
        let mut arguments = quorum_arguments();
        arguments.insert("x-delivery-limit".into(), AMQPValue::LongInt(topology.delivery_limit as i32));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(topology.dead_letter_exchange.as_str().into()),
        );
        // At-least-once dead-lettering (3.10+): the broker keeps a dead
        // letter until the dead-letter queue confirms it. It requires
        // reject-publish overflow; these queues have no length limit, so that
        // never rejects anything.
        arguments.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
        arguments.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
        channel.queue_declare(queue.into(), queue_options, arguments).await?;
    }
    Ok(())
}

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    arguments
}

pub struct AmqpConsumer {
    channel: Channel,
    consumer: lapin::Consumer,
    /// False for a no-ack subscription (control broadcasts).
    acks: bool,
}

impl std::fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConsumer").field("tag", &self.consumer.tag().as_str()).finish()
    }
}

impl AmqpConsumer {
    pub(super) async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        let delivery = match self.consumer.next().await? {
            Ok(delivery) => delivery,
            Err(e) => {
                let message = e.to_string();
                if message.contains("timed out") || message.contains("PRECONDITION_FAILED") {
                    // The broker's consumer_timeout fired: a job outlived it.
                    // The design relies on the broker's timeout being longer
                    // than every lane's deadline (see deploy/README.md).
                    metrics::counter!("farm_broker_consumer_timeouts_total").increment(1);
                    tracing::error!(error = %message, "the broker closed the channel; is consumer_timeout longer than the slow lane's deadline?");
                }
                return Some(Err(BrokerError::Operation { operation: "basic.deliver", message }));
            }
        };
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let mut strings = Vec::new();
        let mut delivery_count = 0;
        let mut death = None;
        for (key, value) in headers.inner() {
            match (key.as_str(), value) {
                ("x-delivery-count", value) => delivery_count = integer(value).unwrap_or(0),
                ("x-death", AMQPValue::FieldArray(deaths)) => death = deaths.as_slice().first().and_then(read_death),
                (key, AMQPValue::LongString(text)) => strings.push((key.to_string(), text.to_string())),
                (key, AMQPValue::ShortString(text)) => strings.push((key.to_string(), text.to_string())),
                _ => {}
            }
        }
        // `x-first-death-reason` is on 3.10 and 4.x alike; prefer it when
        // `x-death` is absent (4.x can omit it for quorum queues).
        if death.is_none()
            && let Some((_, reason)) = strings.iter().find(|(k, _)| k == "x-first-death-reason")
        {
            let queue = strings.iter().find(|(k, _)| k == "x-first-death-queue").map(|(_, q)| q.clone());
            death = Some(Death { reason: reason.clone(), queue: queue.unwrap_or_default(), count: 1 });
        }
        Some(Ok(Delivery {
            payload: delivery.data,
            redelivered: delivery.redelivered,
            delivery_count,
            message_id: delivery.properties.message_id().as_ref().map(|id| id.to_string()),
            headers: strings,
            death,
            acker: if self.acks { Acker::Amqp(delivery.acker) } else { Acker::None },
        }))
    }

    pub(super) async fn cancel(&mut self) {
        let tag = self.consumer.tag();
        if let Err(e) = self.channel.basic_cancel(tag, BasicCancelOptions::default()).await {
            tracing::debug!(error = %e, "could not cancel the consumer; closing its channel releases its deliveries");
        }
    }
}

fn integer(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

fn read_death(entry: &AMQPValue) -> Option<Death> {
    let AMQPValue::FieldTable(table) = entry else { return None };
    let text = |key: &str| match table.inner().get(key) {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
        _ => None,
    };
    Some(Death {
        reason: text("reason")?,
        queue: text("queue").unwrap_or_default(),
        count: table.inner().get("count").and_then(integer).unwrap_or(1),
    })
}

/// How long settling a delivery may take. An ack is one frame with no
/// answer; when the connection dies while it is being written, lapin may
/// never resolve it, and a consumer awaiting it would stop for good (a
/// fault test once saw the API's result consumer stay silent for minutes
/// after a broker restart). Past this, the delivery counts as unsettled:
/// its channel is gone and the broker redelivers it.
const SETTLE_PATIENCE: Duration = Duration::from_secs(10);

/// Settles a delivery within `SETTLE_PATIENCE` and turns the acker's answer
/// into ours. `Ok(false)` means the channel the delivery came on is gone (a
/// reconnect replaced it): the broker has already requeued the message, so
/// settling it here is impossible.
pub(super) async fn settle(
    answer: impl Future<Output = lapin::Result<bool>>,
    operation: &'static str,
) -> Result<(), BrokerError> {
    match tokio::time::timeout(SETTLE_PATIENCE, answer).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(BrokerError::Operation {
            operation,
            message: "the delivery's channel is closed; the broker will redeliver it".into(),
        }),
        Ok(Err(e)) => Err(BrokerError::Operation { operation, message: e.to_string() }),
        Err(_) => Err(BrokerError::Operation {
            operation,
            message: format!("no answer within {} s; the broker will redeliver it", SETTLE_PATIENCE.as_secs()),
        }),
    }
}
