//! The in-process queue of the embedded default: FIFO queues in memory.
//!
//! It has no durability: the API's outbox re-publishes unfinished jobs when
//! the process starts again (see `Broker::is_durable`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{Acker, Delivery};

#[derive(Debug, Default)]
struct Queue {
    messages: Mutex<VecDeque<(Vec<u8>, bool)>>,
    arrived: Notify,
}

impl Queue {
    fn push(&self, payload: Vec<u8>, redelivered: bool, front: bool) {
        let mut messages = self.messages.lock().expect("queue lock poisoned");
        if front {
            messages.push_front((payload, redelivered));
        } else {
            messages.push_back((payload, redelivered));
        }
        drop(messages);
        self.arrived.notify_one();
    }
}

#[derive(Debug, Clone, Default)]
pub struct MemoryBroker {
    queues: Arc<Mutex<HashMap<String, Arc<Queue>>>>,
}

impl MemoryBroker {
    pub fn new() -> Self {
        Self::default()
    }

    fn queue(&self, name: &str) -> Arc<Queue> {
        self.queues.lock().expect("queues lock poisoned").entry(name.to_string()).or_default().clone()
    }

    pub(super) fn publish(&self, queue: &str, payload: &[u8]) {
        self.queue(queue).push(payload.to_vec(), false, false);
    }

    pub(super) fn consume(&self, queue: &str) -> MemoryConsumer {
        MemoryConsumer { queue: self.queue(queue) }
    }

    /// Messages waiting in `queue`.
    pub fn depth(&self, queue: &str) -> usize {
        self.queue(queue).messages.lock().expect("queue lock poisoned").len()
    }
}

#[derive(Debug)]
pub struct MemoryConsumer {
    queue: Arc<Queue>,
}

impl MemoryConsumer {
    pub(super) async fn next(&mut self) -> Option<Delivery> {
        loop {
            // Register interest before looking, so a publish between the look
            // and the wait still wakes us.
            let arrived = self.queue.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let next = self.queue.messages.lock().expect("queue lock poisoned").pop_front();
            if let Some((payload, redelivered)) = next {
                return Some(Delivery {
                    payload,
                    redelivered,
                    acker: Acker::Memory(MemoryAcker { queue: self.queue.clone() }),
                });
            }
            arrived.await;
        }
    }
}

#[derive(Debug)]
pub(super) struct MemoryAcker {
    queue: Arc<Queue>,
}

impl MemoryAcker {
    pub(super) fn requeue(self, payload: Vec<u8>) {
        self.queue.push(payload, true, true);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Broker;
    use super::*;

    #[tokio::test]
    async fn messages_arrive_in_order_and_released_ones_come_back_first() {
        let broker = Broker::Memory(MemoryBroker::new());
        let mut consumer = broker.consume("q", 1).await.unwrap();
        broker.publish("q", b"one").await.unwrap();
        broker.publish("q", b"two").await.unwrap();
        let first = consumer.next().await.unwrap().unwrap();
        assert_eq!((first.payload.as_slice(), first.redelivered), (&b"one"[..], false));
        first.release().await.unwrap();
        let again = consumer.next().await.unwrap().unwrap();
        assert_eq!((again.payload.as_slice(), again.redelivered), (&b"one"[..], true));
        again.ack().await.unwrap();
        assert_eq!(consumer.next().await.unwrap().unwrap().payload, b"two");
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_on_publish() {
        let broker = Broker::Memory(MemoryBroker::new());
        let mut consumer = broker.consume("q", 1).await.unwrap();
        let waiting = tokio::spawn(async move { consumer.next().await.unwrap().unwrap().payload });
        broker.publish("q", b"late").await.unwrap();
        assert_eq!(waiting.await.unwrap(), b"late");
    }
}
