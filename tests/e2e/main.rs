//! End-to-end tests: the real `farm` binary, as a user or an operator runs it.
//!
//! One test binary (faster to link than one per file), with modules per area:
//! the CLI, the embedded farm (`farm serve` with no configuration), and the
//! production shape (`farm api` plus `farm worker` on PostgreSQL, RabbitMQ
//! and S3), and its traces and logs.

use testkit::services;

use testkit::receiver;

mod bench;
mod cli;
mod contract;
mod embedded;
mod helpers;
mod observability;
mod production;
mod runbook;
mod webhooks;
