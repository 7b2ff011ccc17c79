//! What the tests and the bench harness share: a `farm` process with its
//! log ([`FarmProcess`]), waiting on state ([`wait_until`]), whether this
//! run is CI's ([`in_ci`]), the real services a test needs ([`services`]),
//! a webhook receiver ([`receiver`]), and a client of the farm's HTTP API
//! ([`ApiClient`]).
//!
//! It is a library of its own, not a module included by path, so each
//! piece is written once and compiled once; the bench harness (which ships
//! in `farm bench`) uses the same process handling as the tests.

mod client;
mod process;
pub mod receiver;
pub mod services;
mod wait;

pub use client::ApiClient;
pub use process::{FarmProcess, NotListening};
pub use wait::{wait_until, wait_until_blocking};

/// Whether this run is CI's (`CI=true` or `CI=1`): there, a test that needs
/// a missing service fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
