//! Integration tests of the API crate: the real router, relay and result
//! consumer, in process, on fresh backends per test.

#[path = "../../../tests/support/services.rs"]
mod services;

#[path = "../../../tests/support/receiver.rs"]
mod receiver;

mod cache;
mod helpers;
mod http;
mod jobs;
mod letters;
mod orders;
mod store;
mod web;
mod webhooks;
