//! The queue seam: publish with confirmation, consume with manual acks.
//!
//! Two implementations sit behind one enum: RabbitMQ ([`amqp`]) for
//! production and an in-process queue ([`memory`]) for the embedded default.
//! Code above the seam (the worker, the API's outbox relay and result
//! consumer) is the same in both modes.

mod amqp;
mod memory;

pub use amqp::AmqpBroker;
pub use memory::MemoryBroker;

/// The queues the farm uses. Every name starts with a prefix, so tests and
/// environments sharing one broker never see each other's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Pricing jobs, API to workers.
    pub jobs: String,
    /// Job events and results, workers to API.
    pub results: String,
}

impl Topology {
    /// ```
    /// let topology = scheduler::Topology::with_prefix("staging");
    /// assert_eq!(topology.jobs, "staging.pricing.jobs");
    /// assert_eq!(topology.results, "staging.pricing.results");
    /// ```
    pub fn with_prefix(prefix: &str) -> Self {
        Self { jobs: format!("{prefix}.pricing.jobs"), results: format!("{prefix}.pricing.results") }
    }

    pub fn queues(&self) -> [&str; 2] {
        [&self.jobs, &self.results]
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error("cannot reach the broker: {0}")]
    Connect(String),
    #[error("the broker refused `{operation}`: {message}")]
    Operation { operation: &'static str, message: String },
    /// The broker answered a publish with a nack: the message is not stored.
    #[error("the broker did not confirm the message on `{queue}`")]
    NotConfirmed { queue: String },
}

/// A message broker, chosen by configuration.
#[derive(Debug, Clone)]
pub enum Broker {
    Amqp(AmqpBroker),
    Memory(MemoryBroker),
}

impl Broker {
    /// Publishes `payload` to `queue` and returns once the broker has taken
    /// responsibility for it (a publisher confirm, for RabbitMQ).
    pub async fn publish(&self, queue: &str, payload: &[u8]) -> Result<(), BrokerError> {
        match self {
            Broker::Amqp(b) => b.publish(queue, payload).await,
            Broker::Memory(b) => {
                b.publish(queue, payload);
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

    /// Whether the broker answers now; for readiness probes.
    pub fn is_ready(&self) -> bool {
        match self {
            Broker::Amqp(b) => b.is_ready(),
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

/// A stream of deliveries from one queue.
#[derive(Debug)]
pub enum Consumer {
    Amqp(Box<amqp::AmqpConsumer>),
    Memory(memory::MemoryConsumer),
}

impl Consumer {
    /// The next delivery; `None` once the consumer is cancelled or its
    /// connection is gone.
    pub async fn next(&mut self) -> Option<Result<Delivery, BrokerError>> {
        match self {
            Consumer::Amqp(c) => c.next().await,
            Consumer::Memory(c) => c.next().await.map(Ok),
        }
    }

    /// Stops new deliveries. Deliveries already handed out stay valid until
    /// acked or released; unacked ones go back to the queue if the
    /// connection closes.
    pub async fn cancel(&mut self) {
        match self {
            Consumer::Amqp(c) => c.cancel().await,
            Consumer::Memory(_) => {}
        }
    }
}

/// One message, to be settled exactly once with [`Delivery::ack`] or
/// [`Delivery::release`].
#[derive(Debug)]
pub struct Delivery {
    pub payload: Vec<u8>,
    /// The broker has delivered this message before (a consumer died or
    /// released it).
    pub redelivered: bool,
    acker: Acker,
}

#[derive(Debug)]
enum Acker {
    Amqp(lapin::Acker),
    Memory(memory::MemoryAcker),
}

impl Delivery {
    /// The message is done with; the broker forgets it.
    pub async fn ack(self) -> Result<(), BrokerError> {
        match self.acker {
            Acker::Amqp(acker) => amqp::settle(acker.ack(Default::default()).await, "basic.ack"),
            Acker::Memory(_) => Ok(()),
        }
    }

    /// Hands the message back to the queue for another consumer.
    pub async fn release(self) -> Result<(), BrokerError> {
        match self.acker {
            Acker::Amqp(acker) => amqp::settle(
                acker.nack(lapin::options::BasicNackOptions { multiple: false, requeue: true }).await,
                "basic.nack",
            ),
            Acker::Memory(acker) => {
                acker.requeue(self.payload);
                Ok(())
            }
        }
    }

    /// Drops a message that can never be processed (it cannot even be parsed).
    pub async fn discard(self) -> Result<(), BrokerError> {
        match self.acker {
            Acker::Amqp(acker) => {
                amqp::settle(acker.reject(lapin::options::BasicRejectOptions { requeue: false }).await, "basic.reject")
            }
            Acker::Memory(_) => Ok(()),
        }
    }
}
