//! Browser tests: the operators' console and the instant-quote page in a
//! real browser (Debian's chromium, driven through chromedriver), against
//! the real `farm serve`.
//!
//! `deploy/dev/browser.sh` installs chromium and chromedriver from Debian
//! (never a downloaded browser build). Without them the tests skip with a
//! loud notice, and fail under `CI=true`. They wait on page state, never on
//! a fixed sleep. Screenshots go to `target/browser/`, and the timings the
//! issue asks for (the first page after sign-in, a take reaching another
//! console) to `target/browser/timings.json`: they are reported in
//! BENCHMARKS.md, not asserted.

// The timings and the renderer go to the test log, beside the screenshots.
#![allow(clippy::print_stderr)]

use testkit::services;

#[path = "../e2e/helpers.rs"]
mod helpers;

mod console;
mod driver;
mod quote;
mod seed;
