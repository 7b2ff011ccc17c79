//! Starting chromedriver and headless chromium, and waiting on a page's
//! state through them.

#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::helpers::workspace_root;
use crate::services::missing;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long any one page state may take to appear.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A chromedriver process; browsers are sessions on it.
pub(crate) struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver, or `None` (a loud skip; a failure under CI)
    /// when Debian's chromium or chromedriver is not installed.
    pub(crate) fn start() -> Option<Self> {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(tool).exists() {
                return missing(
                    tool,
                    "install it with `deploy/dev/browser.sh` (Debian's chromium and chromium-driver)",
                );
            }
        }
        let port = free_port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // It says when it listens.
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("started successfully") {
                    let _ = sender.send(());
                }
            }
        });
        started.recv_timeout(PATIENCE).expect("chromedriver did not start");
        Some(Self { child, url: format!("http://127.0.0.1:{port}"), profiles: tempfile::tempdir().unwrap() })
    }

    /// A new headless browser with an empty profile, preferring `language`.
    pub(crate) async fn browser(&self, name: &str, language: &str) -> Client {
        let profile = self.profiles.path().join(name);
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            // WebGL from the CPU, so the 3D preview renders with no GPU.
            "--enable-unsafe-swiftshader".into(),
            "--use-angle=swiftshader".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1400,1000".into(),
            format!("--lang={language}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args, "prefs": { "intl.accept_languages": language } }),
        );
        ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot start chromium through chromedriver: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `expression` (JavaScript) in the page until it is truthy; returns
/// its value. Polls the page's own state, no fixed sleep.
pub(crate) async fn wait_for(client: &Client, what: &str, expression: &str) -> Value {
    let started = Instant::now();
    let script = format!("try {{ return ({expression}); }} catch (e) {{ return null; }}");
    loop {
        let value = client.execute(&script, vec![]).await.unwrap_or(Value::Null);
        let truthy = match &value {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return value;
        }
        if started.elapsed() > PATIENCE {
            let shot = screenshot(client, &format!("timeout-{}", what.replace(' ', "-"))).await;
            panic!("waited {PATIENCE:?} for {what} (`{expression}`); the page is in {}", shot.display());
        }
        tokio::task::yield_now().await;
    }
}

/// Evaluates `expression` once.
pub(crate) async fn eval(client: &Client, expression: &str) -> Value {
    client.execute(&format!("return ({expression});"), vec![]).await.expect("run a script in the page")
}

/// Saves a screenshot under `target/browser/` and returns its path.
pub(crate) async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let dir = output_dir();
    let path = dir.join(format!("{name}.png"));
    match client.screenshot().await {
        Ok(png) => std::fs::write(&path, png).expect("write a screenshot"),
        Err(e) => eprintln!("no screenshot {name}: {e}"),
    }
    path
}

/// `target/browser/`, where the screenshots and timings go.
pub(crate) fn output_dir() -> PathBuf {
    let dir = workspace_root().join("target/browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    dir
}

/// Adds `key: value` to `target/browser/timings.json`.
pub(crate) fn record_timing(key: &str, value: Value) {
    let path = output_dir().join("timings.json");
    let mut timings: Value =
        std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(json!({}));
    timings[key] = value;
    std::fs::write(&path, serde_json::to_vec_pretty(&timings).unwrap()).expect("write timings");
    eprintln!("timing {key}: {}", timings[key]);
}

/// A script that is true when the element `selector` finds is drawn: not
/// only without a `hidden` attribute, but not hidden by a style either.
pub(crate) fn shown(selector: &str) -> String {
    format!("(e => !!e && getComputedStyle(e).display !== 'none')(document.querySelector({selector:?}))")
}

/// Signs in on the page open in `client` with `key`, through the form.
pub(crate) async fn sign_in(client: &Client, key: &str) {
    use fantoccini::Locator;
    wait_for(client, "the sign-in form", &shown("section.sign-in")).await;
    client.find(Locator::Css("input[name=key]")).await.unwrap().send_keys(key).await.unwrap();
    client.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
}
