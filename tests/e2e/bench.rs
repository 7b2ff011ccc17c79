//! `farm bench`: the quick preset on the embedded stack writes its JSON,
//! Markdown and chart, and the baseline check fails a run slowed on purpose.

use std::path::Path;

use serde_json::Value;

use crate::helpers::farm_command;

/// Runs `farm` with extra environment; (exit code, stdout, stderr).
fn farm(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = farm_command();
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("run farm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn read_report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("bench.json")).expect("bench.json is written");
    serde_json::from_str(&text).expect("bench.json is JSON")
}

#[test]
fn the_quick_preset_reports_per_lane_and_a_slowed_run_fails_against_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("slowed"));
    // A smaller mix than the preset's, on one worker: the test checks
    // behaviour, BENCHMARKS.md holds the figures.
    let quick = ["bench", "--quick", "--workers", "1", "--jobs", "6", "--seed", "5"];

    // Backends that answer nothing, as a shell under `services.sh run`
    // exports real ones: the embedded stack must not pick them up.
    let elsewhere = [
        ("FARM_DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere"),
        ("FARM_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
        ("FARM_S3_ENDPOINT", "http://127.0.0.1:1"),
        ("FARM_REDIS_URL", "redis://127.0.0.1:1"),
    ];
    let out = first.to_str().unwrap();
    let (code, stdout, stderr) = farm(&[&quick[..], &["--out", out]].concat(), &elsewhere);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let report = read_report(&first);
    assert_eq!(report["format"], 1);
    assert_eq!(report["preset"], "quick");
    assert_eq!(report["jobs"], 6);
    assert!(report["stack"].as_str().unwrap().starts_with("embedded"), "{}", report["stack"]);
    let run = &report["runs"][0];
    assert_eq!(run["workers"], 1);
    assert_eq!(run["failed"], 0, "{run:#}");
    let lanes: Vec<&str> = run["lanes"].as_array().unwrap().iter().map(|l| l["lane"].as_str().unwrap()).collect();
    assert_eq!(lanes, ["fast", "slow"], "the mix has work for both lanes");
    for lane in run["lanes"].as_array().unwrap() {
        let total = &lane["latency"]["total"];
        assert!(total["p50_ms"].as_f64().unwrap() > 0.0 && total["p99_ms"].as_f64() >= total["p50_ms"].as_f64());
        assert!(lane["triangles_per_second"].as_f64().unwrap() > 0.0, "{lane}");
    }
    assert!(!run["slowest"].as_array().unwrap().is_empty());
    let markdown = std::fs::read_to_string(first.join("bench.md")).unwrap();
    assert!(markdown.contains("## Per lane") && markdown.contains("## Scaling"), "{markdown}");
    assert_eq!(stdout, markdown, "the Markdown is also printed");
    let svg = std::fs::read_to_string(first.join("bench.svg")).expect("bench.svg is written");
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"), "an SVG document:\n{svg}");
    for series in ["fast p50", "slow p99", "measured"] {
        assert!(svg.contains(&format!("data-series=\"{series}\"")), "the chart has a {series} line");
    }

    // Every job now takes 1.5 s longer: the same workload is a regression.
    let baseline = first.join("bench.json");
    let out = second.to_str().unwrap();
    let (code, stdout, stderr) = farm(
        &[&quick[..], &["--out", out, "--baseline", baseline.to_str().unwrap()]].concat(),
        &[("FARM_FAULT_SLOW_JOB_MS", "1500")],
    );
    assert_ne!(code, 0, "a slowed run must fail the check:\n{stdout}\n{stderr}");
    assert!(stderr.contains("regression"), "{stderr}");
    assert!(stdout.contains("**REGRESSION**"), "{stdout}");
    assert!(std::fs::read_to_string(second.join("bench.md")).unwrap().contains("**REGRESSION**"));
}

#[test]
fn a_baseline_that_cannot_be_used_fails_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let (code, _, stderr) = farm(&["bench", "--quick", "--baseline", missing.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read"), "{stderr}");
    let foreign = dir.path().join("foreign.json");
    std::fs::write(&foreign, r#"{"format": 99}"#).unwrap();
    let (code, _, stderr) = farm(&["bench", "--quick", "--baseline", foreign.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not a usable baseline"), "{stderr}");
    let (code, _, stderr) = farm(&["bench", "--quick", "--workers", "0"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--workers must be between 1"), "{stderr}");
}

#[test]
fn generate_writes_the_workload_as_readable_stl_files() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = farm(&["bench", "generate", "--quick", "--out", dir.path().to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    let written: Vec<&str> = stdout.lines().collect();
    assert_eq!(written.len(), 9, "five small parts and four slow ones:\n{stdout}");
    for name in ["dense-sphere-60k", "tall-tower-120mm", "lattice-216-shells", "overhang-cones-9"] {
        let path = dir.path().join(format!("{name}.stl"));
        assert!(written.contains(&path.to_str().unwrap()), "{name} in\n{stdout}");
    }
    let tower = dir.path().join("tall-tower-120mm.stl");
    let (code, stdout, stderr) = farm(&["analyze", tower.to_str().unwrap(), "--format", "json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let facts: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(facts["watertight"], true, "{facts}");
    // The same seed writes the same bytes.
    let again = tempfile::tempdir().unwrap();
    assert_eq!(farm(&["bench", "generate", "--quick", "--out", again.path().to_str().unwrap()], &[]).0, 0);
    assert_eq!(std::fs::read(&tower).unwrap(), std::fs::read(again.path().join("tall-tower-120mm.stl")).unwrap());
}

#[test]
fn a_running_farm_is_measured_at_its_url_with_its_key() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_string();
    let key = crate::helpers::mint_key("seller", "bench", &["--data-dir", &dir], &[]);
    let mut serve = crate::helpers::FarmProcess::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"], &[]);
    let url = format!("http://{}", serve.wait_for_listening());
    let out = data.path().join("report");
    let quick = ["bench", "--quick", "--workers", "1", "--jobs", "4", "--seed", "5", "--target", &url];
    let (code, stdout, stderr) = farm(&[&quick[..], &["--key", &key, "--out", out.to_str().unwrap()]].concat(), &[]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let report = read_report(&out);
    assert!(report["stack"].as_str().unwrap().starts_with(&format!("a running farm at {url}")), "{}", report["stack"]);
    assert_eq!((report["jobs"].as_u64(), report["runs"].as_array().unwrap().len()), (Some(4), 1));
    assert_eq!(report["runs"][0]["failed"], 0, "{:#}", report["runs"][0]);
    // The bench started nothing and stopped nothing: the farm still answers.
    let (code, _, stderr) =
        farm(&[&quick[..], &["--key", "farm_seller_wrong.key", "--out", out.to_str().unwrap()]].concat(), &[]);
    assert_eq!(code, 1, "a key the farm refuses: {stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    for (args, expected) in [
        (vec!["--target", "ftp://somewhere", "--key", "k"], "http:// or https://"),
        (vec!["--target", &url, "--key", "k", "--workers", "1,2"], "one --workers N"),
        (vec!["--target", &url, "--key", " ", "--workers", "1"], "needs --key"),
    ] {
        let (code, _, stderr) = farm(&[&["bench", "--quick"][..], &args].concat(), &[]);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = farm(&["bench", "--quick", "--target", &url], &[]);
    assert_eq!(code, 2, "clap refuses --target without --key: {stderr}");
    assert_eq!(serve.terminate(), 0);
}
