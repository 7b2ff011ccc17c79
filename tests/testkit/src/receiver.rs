//! A webhook receiver for tests: a bare HTTP/1.1 server on a free loopback
//! port that keeps every request it is sent and answers each with the next
//! status of its script (200 once the script runs out).
//!
//! It speaks only as much HTTP as a delivery needs (one request per
//! connection, a `Content-Length` body), so the tests need no web framework.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request as it arrived.
/// A "status" that makes the receiver read the request and never answer.
pub const HANG: u16 = 0;

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a delivery's body is JSON")
    }
}

#[derive(Debug, Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<u16>>,
    arrived: Notify,
}

#[derive(Debug)]
pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver that answers with `script`'s statuses first, then 200.
    pub async fn start(script: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}/hooks/farm", listener.local_addr().unwrap());
        let shared = Arc::new(Shared { script: Mutex::new(script.iter().copied().collect()), ..Shared::default() });
        let task = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, shared.clone()));
                }
            }
        });
        Self { url, shared, task }
    }

    /// Answers the next requests with these statuses (before any left).
    pub fn answer_next(&self, statuses: &[u16]) {
        let mut script = self.shared.script.lock().unwrap();
        for status in statuses.iter().rev() {
            script.push_front(*status);
        }
    }

    /// Answers every request from now on with `statuses`, then 200.
    pub fn answer_from_now(&self, statuses: &[u16]) {
        *self.shared.script.lock().unwrap() = statuses.iter().copied().collect();
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until what has arrived satisfies `done`, and returns it; fails
    /// naming `what` after `patience`.
    pub async fn wait_for(&self, what: &str, patience: Duration, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received();
            if done(&received) {
                return received;
            }
            let summary: Vec<String> =
                received.iter().map(|r| format!("{} {}", r.answered, String::from_utf8_lossy(&r.body))).collect();
            assert!(tokio::time::Instant::now() < deadline, "the receiver never got {what}; it got {summary:#?}");
            let _ = tokio::time::timeout_at(deadline, arrived).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
        if data.len() > 1 << 20 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while data.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
    let body = data[head_end..head_end + length].to_vec();
    let answered = shared.script.lock().unwrap().pop_front().unwrap_or(200);
    shared.received.lock().unwrap().push(Received { path, headers, body, answered });
    shared.arrived.notify_waiters();
    if answered == HANG {
        // Never answers: holds the connection until the sender gives up.
        std::future::pending::<()>().await;
    }
    let answer = format!("HTTP/1.1 {answered} Answer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Checks a `Farm-Signature` header the way a receiver would, with nothing
/// of the farm's: `t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature_verifies(secret: &str, header: &str, body: &[u8]) -> bool {
    use hmac::{KeyInit, Mac};
    let mut time = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => time = Some(t.to_string()),
            Some(("v1", s)) => v1 = Some(s.to_string()),
            _ => {}
        }
    }
    let (Some(time), Some(v1)) = (time, v1) else { return false };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(time.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    expected == v1
}
