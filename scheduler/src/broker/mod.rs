//! The queue seam: publish with confirmation, consume with manual acks,
//! dead letters, a broadcast for control messages, and reconnection.
//!
//! Two implementations sit behind one enum: RabbitMQ ([`amqp`]) for
//! production and an in-process queue ([`memory`]) for the embedded default.
//! Code above the seam (the worker, the API's outbox relay and consumers) is
//! the same in both modes.

mod amqp;
mod memory;

use std::time::Duration;

pub use amqp::AmqpBroker;
pub use memory::MemoryBroker;
use serde::{Deserialize, Serialize};

/// A job queue. The API routes each job by its estimated cost, so a model
/// that takes half an hour never waits in front of one that takes seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    #[default]
    Fast,
    Slow,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Fast, Lane::Slow];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Fast => "fast",
            Lane::Slow => "slow",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fast" => Some(Lane::Fast),
            "slow" => Some(Lane::Slow),
            _ => None,
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The queues and exchanges the farm uses. Every name starts with a prefix,
/// so tests and environments sharing one broker never see each other's
/// messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Pricing jobs of the fast lane, API to workers.
    pub fast: String,
    /// Pricing jobs of the slow lane.
    pub slow: String,
    /// Job events and results, workers to API.
    pub results: String,
    /// Where the broker moves a message that can never be processed: one
    /// rejected as unreadable, or one delivered `delivery_limit` times (a job
    /// that keeps killing its worker). The API records each one.
    pub dead_letters: String,
    /// The exchange the queues dead-letter into; it routes to `dead_letters`.
    pub dead_letter_exchange: String,
    /// A fanout exchange for control messages (cancellations) to every
    /// worker.
    pub control: String,
    /// Orders from the old integration, for the API.
    pub orders_incoming: String,
    /// Status events from the CRM, for the API.
    pub crm_events: String,
    /// A durable topic exchange of the farm's own events (a price, a failed
    /// price, an order's new status), routed by their type, for the CRM
    /// and the shop to bind their queues to.
    pub events: String,
    /// Deliveries of one message before the broker dead-letters it. Set
    /// explicitly: RabbitMQ 3.x has no default and 4.x drops the message
    /// after 20 unless a dead-letter exchange exists.
    pub delivery_limit: u32,
}

/// RabbitMQ's redeliveries before a job is dead-lettered, by default.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

impl Topology {
    /// ```
    /// let topology = scheduler::Topology::with_prefix("staging");
    /// assert_eq!(topology.jobs(scheduler::Lane::Fast), "staging.pricing.jobs.fast");
    /// assert_eq!(topology.results, "staging.pricing.results");
    /// assert_eq!(topology.dead_letters, "staging.pricing.dead-letters");
    /// ```
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            fast: format!("{prefix}.pricing.jobs.fast"),
            slow: format!("{prefix}.pricing.jobs.slow"),
            results: format!("{prefix}.pricing.results"),
            dead_letters: format!("{prefix}.pricing.dead-letters"),
            dead_letter_exchange: format!("{prefix}.pricing.dead"),
            control: format!("{prefix}.pricing.control"),
            orders_incoming: format!("{prefix}.orders.incoming"),
            crm_events: format!("{prefix}.crm.events"),
            events: format!("{prefix}.events"),
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
        }
    }

    pub fn jobs(&self, lane: Lane) -> &str {
        match lane {
            Lane::Fast => &self.fast,
            Lane::Slow => &self.slow,
        }
    }

    /// The lane a job queue belongs to.
    pub fn lane_of(&self, queue: &str) -> Option<Lane> {
        Lane::ALL.into_iter().find(|&lane| self.jobs(lane) == queue)
    }

    /// The queues that dead-letter into `dead_letters`.
    pub fn work_queues(&self) -> [&str; 5] {
        [&self.fast, &self.slow, &self.results, &self.orders_incoming, &self.crm_events]
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error("cannot reach the broker: {0}")]
    Connect(String),
    /// The connection is down and did not come back in time; worth
    /// retrying later.
    #[error("the broker is unavailable")]
    Unavailable,
    #[error("the broker refused `{operation}`: {message}")]
    Operation { operation: &'static str, message: String },
    /// The broker answered a publish with a nack: the message is not stored.
    #[error("the broker did not confirm the message on `{queue}`")]
    NotConfirmed { queue: String },
}

/// A message to publish: its body and the headers that travel with it
/// (trace context, for one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub payload: Vec<u8>,
    /// The broker-level id of the message; job messages carry their job id.
    pub message_id: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Outgoing {
    pub fn new(payload: impl Into<Vec<u8>>) -> Self {
        Self { payload: payload.into(), ..Self::default() }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }
}

/// How full a queue is, as the broker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages ready for delivery (not counting those delivered but unacked).
    pub messages: u64,
    pub consumers: u64,
}

/// Why and from where a message was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// `rejected`, `delivery_limit`, `expired` or `maxlen`.
    pub reason: String,
    /// The queue it died in.
    pub queue: String,
    /// How many times it died there.
    pub count: u64,
}

/// A message broker, chosen by configuration.
#[derive(Debug, Clone)]
pub enum Broker {
    Amqp(AmqpBroker),
    Memory(MemoryBroker),
}

impl Broker {
    /// Publishes to `queue` and returns once the broker has taken
    /// responsibility for it (a publisher confirm, for RabbitMQ). While the
    /// connection is down it waits a moment for it to come back, then fails
    /// with [`BrokerError::Unavailable`].
    pub async fn publish(&self, queue: &str, message: &Outgoing) -> Result<(), BrokerError> {
        match self {
            Broker::Amqp(b) => b.publish(queue, message).await,
            Broker::Memory(b) => {
                b.publish(queue, message);
                Ok(())
            }
        }
    }

    /// Publishes one of the farm's events to the events exchange under
    /// `routing_key` and returns once the broker confirms it. A message no
    /// queue is bound for is not an error: nobody has asked for it yet. The
    /// in-process broker has no one to tell and drops it.
    pub async fn publish_event(&self, routing_key: &str, message: &Outgoing) -> Result<(), BrokerError> {
        match self {
            Broker::Amqp(b) => b.publish_event(routing_key, message).await,
            Broker::Memory(_) => Ok(()),
        }
    }

    /// Sends `payload` to every subscriber of the control exchange. Best
    /// effort: a subscriber that is not running misses it.
    pub async fn broadcast(&self, payload: &[u8]) -> Result<(), BrokerError> {
        match self {
            Broker::Amqp(b) => b.broadcast(payload).await,
            Broker::Memory(b) => {
                b.broadcast(payload);
                Ok(())
            }
        }
    }

    /// Starts consuming `queue` with at most `prefetch` unacked deliveries.
    pub async fn consume(&self, queue: &str, prefetch: u16) -> Result<Consumer, BrokerError> {
        match self {
            Broker::Amqp(b) => b.consume(queue, prefetch).await.map(|c| Consumer::Amqp(Box::new(c))),
            Broker::Memory(b) => Ok(Consumer::Memory(b.consume(queue))),
        }
    }

    /// Receives the control broadcasts from now on.
    pub async fn subscribe(&self) -> Result<Consumer, BrokerError> {
        match self {
            Broker::Amqp(b) => b.subscribe().await.map(|c| Consumer::Amqp(Box::new(c))),
            Broker::Memory(b) => Ok(Consumer::Broadcast(b.subscribe())),
        }
    }

    /// How full `queue` is.
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats, BrokerError> {
        match self {
            Broker::Amqp(b) => b.queue_stats(queue).await,
            Broker::Memory(b) => Ok(b.queue_stats(queue)),
        }
    }

    /// Whether the broker answers now; for readiness probes.
    pub fn is_ready(&self) -> bool {
        match self {
            Broker::Amqp(b) => b.is_ready(),
            Broker::Memory(_) => true,
        }
    }

    /// Resolves once the broker is connected, or after `patience`;
    /// returns whether it is connected. Consumers call it after their
    /// connection was lost, so they never spin while the broker is down.
    pub async fn wait_ready(&self, patience: Duration) -> bool {
        match self {
            Broker::Amqp(b) => b.wait_ready(patience).await,
            Broker::Memory(_) => true,
        }
    }

    /// Whether published messages survive a restart of this process. The
    /// in-process queue does not; the API then re-publishes unfinished jobs
    /// from the database at start.
    pub fn is_durable(&self) -> bool {
        matches!(self, Broker::Amqp(_))
    }
}

/// A stream of deliveries from one queue, or of control broadcasts.
#[derive(Debug)]
pub enum Consumer {
    Amqp(Box<amqp::AmqpConsumer>),
    Memory(memory::MemoryConsumer),
    Broadcast(memory::BroadcastConsumer),
}

impl Consumer {
    /// The next delivery; `None` once the consumer is cancelled or its
    /// connection is gone (the caller waits for the broker and consumes
    /// again).
    pub async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        match self {
            Consumer::Amqp(c) => c.next().await,
            Consumer::Memory(c) => c.next().await.map(Ok),
            Consumer::Broadcast(c) => c.next().await.map(Ok),
        }
    }

    /// Stops new deliveries. Deliveries already handed out stay valid until
    /// settled; unacked ones go back to the queue if the connection closes.
    pub async fn cancel(&mut self) {
        match self {
            Consumer::Amqp(c) => c.cancel().await,
            Consumer::Memory(c) => c.cancel(),
            Consumer::Broadcast(_) => {}
        }
    }
}

/// One message, to be settled exactly once with [`Delivery::ack`],
/// [`Delivery::release`] or [`Delivery::reject`].
#[derive(Debug)]
pub struct Delivery {
    pub payload: Vec<u8>,
    /// The broker has delivered this message before (a consumer died or
    /// released it).
    pub redelivered: bool,
    /// Earlier deliveries of this message, when the queue counts them
    /// (quorum queues do): 0 on the first.
    pub delivery_count: u64,
    pub message_id: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Set on a message read from the dead-letter queue.
    pub death: Option<Death>,
    acker: Acker,
}

#[derive(Debug)]
enum Acker {
    Amqp(lapin::Acker),
    Memory(memory::MemoryAcker),
    None,
}

impl Delivery {
    /// The message is done with; the broker forgets it.
    pub async fn ack(self) -> Result<(), BrokerError> {
        match self.acker {
            Acker::Amqp(acker) => amqp::settle(acker.ack(Default::default()), "basic.ack").await,
            Acker::Memory(acker) => {
                acker.settle();
                Ok(())
            }
            Acker::None => Ok(()),
        }
    }

    /// Hands the message back to the queue for another try. It counts as a
    /// delivery towards the delivery limit.
    pub async fn release(self) -> Result<(), BrokerError> {
        match self.acker {
            Acker::Amqp(acker) => {
                amqp::settle(
                    acker.nack(lapin::options::BasicNackOptions { multiple: false, requeue: true }),
                    "basic.nack",
                )
                .await
            }
            Acker::Memory(acker) => {
                acker.requeue(self.payload, self.message_id, self.headers, self.delivery_count + 1);
                Ok(())
            }
            Acker::None => Ok(()),
        }
    }

    /// Refuses a message that can never be processed: the broker moves it
    /// to the dead-letter queue.
    pub async fn reject(self) -> Result<(), BrokerError> {
        match self.acker {
            Acker::Amqp(acker) => {
                amqp::settle(acker.reject(lapin::options::BasicRejectOptions { requeue: false }), "basic.reject").await
            }
            Acker::Memory(acker) => {
                acker.dead_letter(self.payload, self.message_id, self.headers, "rejected");
                Ok(())
            }
            Acker::None => Ok(()),
        }
    }
}
