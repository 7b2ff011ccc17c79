//! Integration tests of the API crate: the real router, relay and result
//! consumer, in process, on fresh backends per test.

use testkit::services;

use testkit::receiver;

mod cache;
mod helpers;
mod http;
mod jobs;
mod letters;
mod orders;
mod parts;
mod store;
mod web;
mod webhooks;

/// This binary runs the farm on SQLite; `it_postgres` runs the same route
/// tests on PostgreSQL.
pub(crate) const ON_POSTGRES: bool = false;
