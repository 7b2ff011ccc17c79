//! The API contract, fuzzed: Schemathesis runs every check against
//! `farm serve`'s own `/v1/openapi.json`, once per key kind, and must find
//! nothing. The document states every limit, list and format the server
//! enforces (`api::contract`), so a schema-valid request is accepted and an
//! invalid one refused with the JSON error shape.
//!
//! Schemathesis comes from PyPI into a repo-local venv
//! (`deploy/dev/tools.sh schemathesis`). The run here is short (CI); the
//! longer one is `FARM_CONTRACT_EXAMPLES=200 cargo test --test e2e contract`
//! (README, "The API contract").

#![allow(clippy::print_stderr)] // the run's banner goes to CI's log, beside Schemathesis's report

use std::process::{Command, Stdio};

use crate::helpers::{Api, FarmProcess, mint_key, path_str, workspace_root};

/// Installs (when missing) and finds Schemathesis; `None` skips the test
/// outside CI when it cannot be had.
fn schemathesis() -> Option<String> {
    let script = workspace_root().join("deploy/dev/tools.sh");
    let output = Command::new(&script).arg("schemathesis").stderr(Stdio::inherit()).output();
    match output {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Ok(out) => crate::services::missing("Schemathesis", &format!("{} exited {}", script.display(), out.status)),
        Err(e) => crate::services::missing("Schemathesis", &format!("{}: {e}", script.display())),
    }
}

#[tokio::test]
async fn schemathesis_finds_nothing_for_any_key_kind() {
    let Some(st) = schemathesis() else { return };
    let data = tempfile::tempdir().unwrap();
    let dir = path_str(data.path());
    let store = ["--data-dir", dir.as_str()];
    let keys = [
        ("seller", mint_key("seller", "contract-seller", &store, &[])),
        ("operator", mint_key("operator", "contract-operator", &store, &[])),
        ("crm", mint_key("crm", "contract-crm", &store, &[])),
    ];
    // Webhook targets on loopback are accepted (the hooks point them at the
    // discard port), so the webhook routes are exercised past their checks.
    let env = [("FARM_WEBHOOK_ALLOW_PRIVATE", "true".to_string())];
    let mut farm = FarmProcess::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"], &env);
    let addr = farm.wait_for_listening();

    // Real ids for the deep paths: a model, and an order with its job.
    let model_file = workspace_root().join("tests/data/corpus/files/trimesh_20mm_xyz_cube.stl");
    let seller = Api::new(&addr, &keys[0].1);
    let (status, model) = seller.upload(std::fs::read(&model_file).unwrap()).await;
    assert_eq!(status, 201, "{model}");
    let model_id = model["model_id"].as_str().unwrap().to_string();
    let (status, order) =
        seller.post("/v1/orders", &serde_json::json!({"model_id": model_id, "material": "pla"})).await;
    assert_eq!(status, 201, "{order}");

    let examples = std::env::var("FARM_CONTRACT_EXAMPLES").unwrap_or_else(|_| "15".into());
    let mut failed = Vec::new();
    for (kind, key) in &keys {
        eprintln!("== schemathesis, {kind} key, {examples} examples per operation");
        let status = Command::new(&st)
            .args(["run", &format!("http://{addr}/v1/openapi.json"), "--checks", "all", "--workers", "2"])
            .args(["--max-examples", &examples, "--seed", "20261202", "--request-timeout", "30"])
            .args(["-H", &format!("Authorization: Bearer {key}")])
            .env("PYTHONPATH", workspace_root().join("tests/contract"))
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("FARM_ST_MODEL_ID", &model_id)
            .env("FARM_ST_MODEL_FILE", &model_file)
            .env("FARM_ST_ORDER_ID", order["order_id"].as_str().unwrap())
            .env("FARM_ST_JOB_ID", order["job_id"].as_str().unwrap_or_default())
            .env("NO_COLOR", "1")
            // Its report goes straight to the terminal: CI's log shows every
            // summary, pass or fail.
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .expect("run schemathesis");
        if !status.success() {
            failed.push(format!("{kind}: {status}"));
        }
    }
    assert!(failed.is_empty(), "schemathesis found failures: {failed:?}\nfarm's log:\n{}", farm.logs());
    assert_eq!(farm.terminate(), 0);
}
