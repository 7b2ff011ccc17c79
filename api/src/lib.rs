//! MES order API: HTTP, the database and the job-queue side of pricing.
//!
//! It accepts models and pricing jobs, keeps them in the database ([`store`]),
//! hands jobs to the queue through a transactional outbox ([`relay`]), writes
//! workers' results back ([`results`]), records what the broker gave up on
//! ([`dead_letters`]) and watches the queues ([`monitor`]). The heavy lifting
//! happens in `scheduler` workers; nothing here prices a model.

pub mod auth;
mod caller;
mod consume;
mod contract;
mod dead_letters;
pub mod error;
pub mod events;
mod events_relay;
pub mod letters;
mod monitor;
mod numbers;
pub mod orders;
mod pricing;
pub mod quota;
mod redis_client;
mod relay;
mod results;
mod routes;
pub mod serve;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
mod text;
mod upload;
pub mod web;
pub mod webhooks;

pub use error::AppError;
pub use startup::{Application, StartupError, serve_ops};
pub use state::{ApiSettings, AppState, Services};
pub use store::Store;
