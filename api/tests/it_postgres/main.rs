//! The API's route tests again, with the farm on a fresh PostgreSQL
//! database per test: the modules of `it` (but its store tests, which run
//! on both engines already), so every route is checked on the production
//! database too. Outside CI, without a reachable server, they run on
//! SQLite after a loud warning; with `CI=true` that fails.

use testkit::services;

use testkit::receiver;

#[path = "../it/cache.rs"]
mod cache;
#[path = "../it/helpers.rs"]
mod helpers;
#[path = "../it/http.rs"]
mod http;
#[path = "../it/jobs.rs"]
mod jobs;
#[path = "../it/letters.rs"]
mod letters;
#[path = "../it/orders.rs"]
mod orders;
#[path = "../it/parts.rs"]
mod parts;
#[path = "../it/web.rs"]
mod web;
#[path = "../it/webhooks.rs"]
mod webhooks;

/// The farm's database is PostgreSQL here.
pub(crate) const ON_POSTGRES: bool = true;
