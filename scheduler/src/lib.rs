//! The pricing job's journey: from a message on a queue to a quote on a queue.
//!
//! This crate owns the queue topology and message formats ([`messages`],
//! [`broker`]), fetching models from object storage ([`blob`]), and the worker
//! pool that runs the pure `mesh` and `calculator` crates on a rayon pool
//! ([`worker`], [`pricing`]), and the trace context that follows a job through
//! the queue ([`trace`]). It knows nothing of HTTP or the database: the API publishes
//! jobs and consumes results through the same [`broker::Broker`] seam.

pub mod blob;
pub mod broker;
pub mod capacity;
pub mod compute;
pub mod faults;
pub mod messages;
pub mod pricing;
pub mod report;
pub mod trace;
pub mod worker;

pub use blob::{BlobError, BlobSettings, BlobStore};
pub use broker::{Broker, BrokerError, Consumer, Delivery, Lane, Outgoing, Topology};
pub use faults::FaultInjection;
pub use messages::{Control, FailureKind, JobFailure, JobMessage, ResultEvent, ResultMessage, Stage};
pub use pricing::Pricing;
pub use worker::{RetryPolicy, Worker, WorkerSettings};
