//! The in-process queue of the embedded default: FIFO queues in memory, with
//! the same delivery limit and dead-lettering as the RabbitMQ topology.
//!
//! It has no durability: the API's outbox re-publishes unfinished jobs when
//! the process starts again (see `Broker::is_durable`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast};

use super::{Acker, Death, Delivery, Outgoing, QueueStats, Topology};

#[derive(Debug)]
struct Message {
    payload: Vec<u8>,
    message_id: Option<String>,
    headers: Vec<(String, String)>,
    redelivered: bool,
    delivery_count: u64,
    death: Option<Death>,
}

#[derive(Debug, Default)]
struct Queue {
    messages: Mutex<VecDeque<Message>>,
    arrived: Notify,
    consumers: AtomicU64,
    /// Delivered and not yet acknowledged, handed back or dead-lettered.
    unsettled: AtomicU64,
}

impl Queue {
    fn push(&self, message: Message, front: bool) {
        let mut messages = self.messages.lock().expect("queue lock poisoned");
        if front {
            messages.push_front(message);
        } else {
            messages.push_back(message);
        }
        drop(messages);
        self.arrived.notify_one();
    }
}

#[derive(Debug)]
struct Shared {
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    /// Where rejected and over-delivered messages go, and after how many
    /// deliveries; `None` drops them.
    dead_letters: Option<(String, u32)>,
    control: broadcast::Sender<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBroker {
    /// Queues with no dead-lettering: a rejected message is dropped.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// Queues that dead-letter like `topology`'s RabbitMQ queues.
    pub fn with_topology(topology: &Topology) -> Self {
        Self::build(Some((topology.dead_letters.clone(), topology.delivery_limit)))
    }

    fn build(dead_letters: Option<(String, u32)>) -> Self {
        let (control, _) = broadcast::channel(1024);
        Self { shared: Arc::new(Shared { queues: Mutex::new(HashMap::new()), dead_letters, control }) }
    }

    fn queue(&self, name: &str) -> Arc<Queue> {
        self.shared.queues.lock().expect("queues lock poisoned").entry(name.to_string()).or_default().clone()
    }

    pub(super) fn publish(&self, queue: &str, message: &Outgoing) {
        let message = Message {
            payload: message.payload.clone(),
            message_id: message.message_id.clone(),
            headers: message.headers.clone(),
            redelivered: false,
            delivery_count: 0,
            death: None,
        };
        self.queue(queue).push(message, false);
    }

    pub(super) fn broadcast(&self, payload: &[u8]) {
        // No subscriber is not an error: a broadcast is best effort.
        let _ = self.shared.control.send(payload.to_vec());
    }

    pub(super) fn consume(&self, queue: &str) -> MemoryConsumer {
        let queue_ref = self.queue(queue);
        queue_ref.consumers.fetch_add(1, Ordering::Relaxed);
        MemoryConsumer { name: queue.to_string(), queue: queue_ref, broker: self.clone(), active: true }
    }

    pub(super) fn subscribe(&self) -> BroadcastConsumer {
        BroadcastConsumer { receiver: self.shared.control.subscribe() }
    }

    pub(super) fn queue_stats(&self, queue: &str) -> QueueStats {
        let queue = self.queue(queue);
        let messages = queue.messages.lock().expect("queue lock poisoned").len() as u64;
        QueueStats { messages, consumers: queue.consumers.load(Ordering::Relaxed) }
    }

    /// Messages of `queue` delivered and not yet settled: what a consumer
    /// holds.
    pub fn unsettled(&self, queue: &str) -> u64 {
        self.queue(queue).unsettled.load(Ordering::Relaxed)
    }

    /// Messages waiting in `queue`.
    pub fn depth(&self, queue: &str) -> usize {
        self.queue(queue).messages.lock().expect("queue lock poisoned").len()
    }

    fn dead_letter(&self, from: &str, mut message: Message, reason: &str) {
        let Some((target, _)) = &self.shared.dead_letters else { return };
        let count = message.death.as_ref().map_or(0, |d| d.count) + 1;
        message.death = Some(Death { reason: reason.into(), queue: from.into(), count });
        message.redelivered = false;
        self.queue(target).push(message, false);
    }
}

#[derive(Debug)]
pub struct MemoryConsumer {
    name: String,
    queue: Arc<Queue>,
    broker: MemoryBroker,
    active: bool,
}

impl MemoryConsumer {
    pub(super) async fn next(&mut self) -> Option<Delivery> {
        if !self.active {
            return None;
        }
        loop {
            // Register interest before looking, so a publish between the look
            // and the wait still wakes us.
            let arrived = self.queue.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let next = self.queue.messages.lock().expect("queue lock poisoned").pop_front();
            if let Some(m) = next {
                self.queue.unsettled.fetch_add(1, Ordering::Relaxed);
                return Some(Delivery {
                    payload: m.payload,
                    redelivered: m.redelivered,
                    delivery_count: m.delivery_count,
                    message_id: m.message_id,
                    headers: m.headers,
                    death: m.death,
                    acker: Acker::Memory(MemoryAcker {
                        queue: self.queue.clone(),
                        name: self.name.clone(),
                        broker: self.broker.clone(),
                    }),
                });
            }
            arrived.await;
        }
    }

    pub(super) fn cancel(&mut self) {
        if std::mem::replace(&mut self.active, false) {
            self.queue.consumers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[derive(Debug)]
pub(super) struct MemoryAcker {
    queue: Arc<Queue>,
    name: String,
    broker: MemoryBroker,
}

impl MemoryAcker {
    pub(super) fn settle(self) {
        self.settled();
    }

    fn settled(&self) {
        self.queue.unsettled.fetch_sub(1, Ordering::Relaxed);
    }

    /// Back to the front of the queue, unless it has now been delivered as
    /// often as the limit allows: then it is dead-lettered, as RabbitMQ does.
    pub(super) fn requeue(
        self,
        payload: Vec<u8>,
        message_id: Option<String>,
        headers: Vec<(String, String)>,
        delivery_count: u64,
    ) {
        self.settled();
        let message = Message { payload, message_id, headers, redelivered: true, delivery_count, death: None };
        match &self.broker.shared.dead_letters {
            Some((_, limit)) if delivery_count >= u64::from(*limit) => {
                self.broker.dead_letter(&self.name, message, "delivery_limit");
            }
            _ => self.queue.push(message, true),
        }
    }

    pub(super) fn dead_letter(
        self,
        payload: Vec<u8>,
        message_id: Option<String>,
        headers: Vec<(String, String)>,
        reason: &str,
    ) {
        self.settled();
        let message = Message { payload, message_id, headers, redelivered: false, delivery_count: 0, death: None };
        self.broker.dead_letter(&self.name, message, reason);
    }
}

/// Control broadcasts, from the moment of subscribing.
#[derive(Debug)]
pub struct BroadcastConsumer {
    receiver: broadcast::Receiver<Vec<u8>>,
}

impl BroadcastConsumer {
    pub(super) async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self.receiver.recv().await {
                Ok(payload) => {
                    return Some(Delivery {
                        payload,
                        redelivered: false,
                        delivery_count: 0,
                        message_id: None,
                        headers: Vec::new(),
                        death: None,
                        acker: Acker::None,
                    });
                }
                // A slow subscriber misses old broadcasts, as with RabbitMQ's
                // transient control queue; it keeps the new ones.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Broker;
    use super::*;

    fn text(payload: &[u8]) -> Outgoing {
        Outgoing::new(payload.to_vec())
    }

    #[tokio::test]
    async fn messages_arrive_in_order_and_released_ones_come_back_first() {
        let broker = Broker::Memory(MemoryBroker::new());
        let mut consumer = broker.consume("q", 1).await.unwrap();
        broker.publish("q", &text(b"one")).await.unwrap();
        broker.publish("q", &text(b"two")).await.unwrap();
        let first = consumer.next().await.unwrap().unwrap();
        assert_eq!((first.payload.as_slice(), first.redelivered), (&b"one"[..], false));
        first.release().await.unwrap();
        let again = consumer.next().await.unwrap().unwrap();
        assert_eq!((again.payload.as_slice(), again.redelivered, again.delivery_count), (&b"one"[..], true, 1));
        again.ack().await.unwrap();
        assert_eq!(consumer.next().await.unwrap().unwrap().payload, b"two");
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_on_publish() {
        let broker = Broker::Memory(MemoryBroker::new());
        let mut consumer = broker.consume("q", 1).await.unwrap();
        let waiting = tokio::spawn(async move { consumer.next().await.unwrap().unwrap().payload });
        broker.publish("q", &text(b"late")).await.unwrap();
        assert_eq!(waiting.await.unwrap(), b"late");
    }

    #[tokio::test]
    async fn rejected_and_over_delivered_messages_are_dead_lettered_with_their_reason() {
        let topology = Topology { delivery_limit: 2, ..Topology::with_prefix("t") };
        let broker = Broker::Memory(MemoryBroker::with_topology(&topology));
        let mut jobs = broker.consume(&topology.fast, 1).await.unwrap();
        let mut dead = broker.consume(&topology.dead_letters, 1).await.unwrap();
        broker.publish(&topology.fast, &text(b"bad")).await.unwrap();
        jobs.next().await.unwrap().unwrap().reject().await.unwrap();
        let d = dead.next().await.unwrap().unwrap();
        assert_eq!(
            d.death.as_ref().map(|d| (d.reason.as_str(), d.queue.as_str())),
            Some(("rejected", "t.pricing.jobs.fast"))
        );
        d.ack().await.unwrap();

        broker.publish(&topology.fast, &text(b"crashy")).await.unwrap();
        jobs.next().await.unwrap().unwrap().release().await.unwrap();
        jobs.next().await.unwrap().unwrap().release().await.unwrap();
        let d = dead.next().await.unwrap().unwrap();
        assert_eq!((d.payload.as_slice(), d.death.unwrap().reason.as_str()), (&b"crashy"[..], "delivery_limit"));
        assert_eq!(broker.queue_stats(&topology.fast).await.unwrap(), QueueStats { messages: 0, consumers: 1 });
    }

    #[tokio::test]
    async fn broadcasts_reach_every_subscriber() {
        let broker = Broker::Memory(MemoryBroker::new());
        let (mut a, mut b) = (broker.subscribe().await.unwrap(), broker.subscribe().await.unwrap());
        broker.broadcast(b"cancel j1").await.unwrap();
        assert_eq!(a.next().await.unwrap().unwrap().payload, b"cancel j1");
        assert_eq!(b.next().await.unwrap().unwrap().payload, b"cancel j1");
    }
}
