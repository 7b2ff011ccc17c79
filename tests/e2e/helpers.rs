//! Spawning `farm` processes and talking to them over HTTP.

// Shared with the fault tests, which use parts the end-to-end tests do not.
#![allow(clippy::print_stderr, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

pub(crate) fn farm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_farm")
}

/// `farm` with none of the caller's `FARM_*` or `AWS_*` variables (nor
/// `RUST_LOG`): under `deploy/dev/services.sh run` they name the shared
/// services, and a test that means the embedded farm, or a database of its
/// own, must not reach them by accident.
pub(crate) fn farm_command() -> Command {
    let mut command = Command::new(farm_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("FARM_") || key.starts_with("AWS_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The model the acceptance check prices: the corpus's 20 mm calibration
/// cube, whose volume trimesh gives as 7938.68 mm³.
pub(crate) fn reference_cube() -> (Vec<u8>, f64) {
    let path = workspace_root().join("tests/data/corpus/files/trimesh_20mm_xyz_cube.stl");
    (std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())), 7938.68)
}

/// A running `farm` process (testkit's), with the tests' patience: each
/// step that does not happen fails the test with the process's log.
/// Dropping it kills the process.
pub(crate) struct FarmProcess(testkit::FarmProcess);

impl AsRef<testkit::FarmProcess> for FarmProcess {
    fn as_ref(&self) -> &testkit::FarmProcess {
        &self.0
    }
}

impl FarmProcess {
    /// Starts `farm ARGS` with `env` and none of the caller's `FARM_*` or
    /// `AWS_*` variables, so a test controls exactly which backends it gets.
    pub(crate) fn spawn(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = farm_command();
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        // A test keeps the whole log: it is shown when the test fails.
        Self(testkit::FarmProcess::spawn(command, usize::MAX).expect("spawn farm"))
    }

    /// The address from the process's "listening" log line.
    pub(crate) fn wait_for_listening(&mut self) -> String {
        // Generous: a process may be retrying a broker that is still
        // recovering from an earlier test's restart (its patience is set by
        // FARM_BROKER_CONNECT_PATIENCE_S).
        let listening = self.0.wait_for_listening(Duration::from_secs(180));
        listening.unwrap_or_else(|e| panic!("{e}\nthe whole log:\n{}", self.logs()))
    }

    pub(crate) fn logs(&self) -> String {
        self.0.logs()
    }

    /// Sends SIGTERM and returns the exit code once the process is gone.
    pub(crate) fn terminate(mut self) -> i32 {
        match self.0.terminate(Duration::from_secs(30)) {
            Some(code) => code,
            None => panic!("farm ignored SIGTERM; log:\n{}", self.logs()),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Sends a signal by name (`TERM`, `KILL`).
    pub(crate) fn signal(&self, name: &str) {
        assert!(self.0.signal(name), "kill -{name} failed");
    }

    /// The exit code, once the process has exited; a death by signal is -1.
    pub(crate) fn exited(&mut self) -> Option<i32> {
        self.0.exited()
    }

    /// Waits up to `patience` for the process to exit.
    pub(crate) fn wait_exit(&mut self, patience: Duration) -> Option<i32> {
        self.0.wait_exit(patience)
    }

    /// CPU time the process has used so far, seconds (Linux).
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
        ticks / 100.0
    }
}

/// Mints a key with `farm keys create-<kind> --name <name> STORE_ARGS…`
/// against the database that `env` (or the arguments) name; its token, the
/// command's last line.
pub(crate) fn mint_key(kind: &str, name: &str, store_args: &[&str], env: &[(&str, String)]) -> String {
    let mut command = farm_command();
    command.args(["keys", &format!("create-{kind}"), "--name", name]).args(store_args);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("run farm keys");
    assert!(out.status.success(), "farm keys: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().expect("a token line").trim().to_string();
    assert!(token.starts_with(&format!("farm_{kind}_")), "{stdout}");
    token
}

/// A client for one farm's HTTP API, calling with one key (the testkit's).
pub(crate) use testkit::ApiClient as Api;

/// Uploads the reference cube, prices it, and checks the quote's contract.
pub(crate) async fn price_reference_cube(api: &Api, process: &FarmProcess) -> Value {
    let (bytes, expected_volume) = reference_cube();
    let (status, model) = api.upload(bytes.clone()).await;
    assert_eq!(status, 201, "{model}");
    let model_id = model["model_id"].as_str().unwrap().to_string();
    let (status, again) = api.upload(bytes).await;
    assert_eq!((status, again["model_id"].as_str()), (201, Some(model_id.as_str())), "same bytes, same id");
    assert_eq!(again["created"], false);

    let (status, accepted) = api.submit(&model_id, "pla").await;
    assert_eq!(status, 202, "{accepted}");
    let job = api.wait_for_job(accepted["job_id"].as_str().unwrap(), process).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let quote = &job["quote"];
    for key in
        ["triangles", "volume_mm3", "surface_area_mm2", "watertight", "print_time_s", "material_g", "total", "currency"]
    {
        assert!(!quote[key].is_null(), "quote lacks `{key}`: {quote}");
    }
    let volume = quote["volume_mm3"].as_f64().unwrap();
    assert!(
        (volume - expected_volume).abs() / expected_volume < 1e-4,
        "volume {volume} is not {expected_volume} within 0.01%"
    );
    job
}

pub(crate) fn path_str(path: &Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_string()
}
