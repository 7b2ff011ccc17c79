//! Finds the real services (PostgreSQL, RabbitMQ, S3) for tests that need
//! them. `deploy/dev/services.sh up` starts them and prints their `FARM_*`
//! variables; without those variables the loopback defaults it uses apply.
//!
//! A missing service skips the test with a loud notice, except under
//! `CI=true`, where it fails the test: CI must exercise the real services.

// The notice of a skipped test goes to stderr on purpose: it must be seen.
#![allow(clippy::print_stderr)]

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use sqlx::Connection;

/// How long a probe or a test's own call to a service may take. A service
/// that accepts the connection and then never answers (a wedged broker, say)
/// must fail the test with its name, not hold the whole suite until CI's
/// time runs out.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `future`, or a failure naming `what` once [`PATIENCE`] has passed.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {} s", PATIENCE.as_secs()),
    }
}

pub use crate::in_ci;

/// Reports a missing service: panics under CI, otherwise prints a notice the
/// person running the tests cannot miss and returns `None`.
pub fn missing<T>(service: &str, detail: &str) -> Option<T> {
    let message =
        format!("{service} is not available ({detail}); start it with `eval \"$(deploy/dev/services.sh up)\"`");
    if in_ci() {
        panic!("CI=true and {message}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n");
    None
}

/// A problem outside what the test checks (its cleanup, say), printed so the
/// person reading the output cannot miss it.
pub fn warn(message: &str) {
    eprintln!("\n!!!!!!!! WARNING: {message} !!!!!!!!\n");
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

pub fn postgres_admin_url() -> String {
    env_or("FARM_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
}

pub fn amqp_url() -> String {
    env_or("FARM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

/// S3 endpoint and credentials, as `services.sh` sets them up.
#[derive(Debug, Clone)]
pub struct S3Env {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub fn s3_env() -> S3Env {
    S3Env {
        endpoint: env_or("FARM_S3_ENDPOINT", "http://127.0.0.1:8333"),
        region: env_or("FARM_S3_REGION", "us-east-1"),
        access_key_id: env_or("AWS_ACCESS_KEY_ID", "farmdev"),
        secret_access_key: env_or("AWS_SECRET_ACCESS_KEY", "farmdev-secret"),
    }
}

/// A new, empty PostgreSQL database for one test; its URL.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin_url = postgres_admin_url();
    let mut admin = match tokio::time::timeout(PATIENCE, sqlx::PgConnection::connect(&admin_url)).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => return missing("PostgreSQL", &e.to_string()),
        Err(_) => return missing("PostgreSQL", &format!("no answer within {} s", PATIENCE.as_secs())),
    };
    drop_old_test_databases(&mut admin).await;
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let name = format!("farm_test_{now_s}_{}", uuid::Uuid::new_v4().simple());
    within("CREATE DATABASE", sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin))
        .await
        .expect("CREATE DATABASE on a reachable server");
    let (base, _) = admin_url.rsplit_once('/').expect("a database URL has a path");
    Some(format!("{base}/{name}"))
}

/// Test databases are left behind when their test ends (a test does not
/// know when its farm has let go of them); those over two hours old are
/// dropped by the next test that makes one. Best effort: one still in use
/// stays.
async fn drop_old_test_databases(admin: &mut sqlx::PgConnection) {
    // Once per test process: the list does not change in a test run's time.
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    const OLD_S: u64 = 2 * 3600;
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let names: Vec<String> =
        match sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'farm\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
        {
            Ok(names) => names,
            Err(e) => return warn(&format!("cannot list old test databases: {e}")),
        };
    for name in names {
        // `farm_test_<unix seconds>_<uuid>`; an older form has no time.
        let made_s = name.trim_start_matches("farm_test_").split('_').next().and_then(|t| t.parse::<u64>().ok());
        if made_s.is_some_and(|made| now_s.saturating_sub(made) < OLD_S) {
            continue;
        }
        let drop = format!("DROP DATABASE IF EXISTS {name}");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut *admin).await;
    }
}

/// The RabbitMQ URL, once a connection to it has succeeded.
pub async fn rabbitmq() -> Option<String> {
    let url = amqp_url();
    let connect = lapin::Connection::connect(&url, lapin::ConnectionProperties::default());
    match tokio::time::timeout(PATIENCE, connect).await {
        Ok(Ok(connection)) => {
            let _ = tokio::time::timeout(PATIENCE, connection.close(200, "probe done".into())).await;
            Some(url)
        }
        Ok(Err(e)) => missing("RabbitMQ", &e.to_string()),
        Err(_) => missing("RabbitMQ", &format!("no AMQP handshake within {} s", PATIENCE.as_secs())),
    }
}

/// The S3 settings, once the endpoint accepts TCP connections.
pub fn s3() -> Option<S3Env> {
    let env = s3_env();
    let authority = env.endpoint.trim_start_matches("http://").trim_start_matches("https://");
    let authority = authority.split('/').next().unwrap_or(authority);
    let reachable = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    if reachable { Some(env) } else { missing("S3", &format!("nothing answers at {}", env.endpoint)) }
}

/// Deletes what a farm with queue prefix `prefix` declared on the broker:
/// its queues (quorum queues are Raft groups each, and left behind they
/// pile up run after run) and its exchanges. Cleanup, not a check: a
/// failure is reported loudly and does not fail the test.
pub async fn delete_broker_objects(amqp_url: &str, prefix: &str) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    const QUEUES: [&str; 6] = [
        "pricing.jobs.fast",
        "pricing.jobs.slow",
        "pricing.results",
        "pricing.dead-letters",
        "orders.incoming",
        "crm.events",
    ];
    const EXCHANGES: [&str; 3] = ["pricing.dead", "pricing.control", "events"];
    let cleanup = async {
        let connection = lapin::Connection::connect(amqp_url, Default::default()).await?;
        let channel = connection.create_channel().await?;
        for suffix in QUEUES {
            let queue = format!("{prefix}.{suffix}");
            channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
        }
        for suffix in EXCHANGES {
            let exchange = format!("{prefix}.{suffix}");
            channel.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await?;
        }
        Ok::<_, lapin::Error>(())
    };
    match tokio::time::timeout(PATIENCE, cleanup).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn(&format!("could not delete the broker objects of {prefix}: {error}")),
        Err(_) => warn(&format!("deleting the broker objects of {prefix} took over {} s", PATIENCE.as_secs())),
    }
}
