//! The deployment files pass their offline checks, and the checks catch
//! broken files: runs `deploy/check.sh` and `deploy/check.sh --self-test`.
//!
//! The script installs its tools into `deploy/.tools/` on first use. When it
//! cannot (exit status 3: no registry, no python3, node or apt-get), the test
//! is skipped with a loud notice, except under `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

/// The two tests share `deploy/.tools/`; they run one after the other.
static TOOLS: Mutex<()> = Mutex::new(());

/// check.sh's exit status when a tool cannot be installed.
const TOOL_MISSING: i32 = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `deploy/check.sh ARGS`; `None` when its tools cannot be installed
/// here (after the notice, or a panic under CI).
#[allow(clippy::print_stderr)]
fn check_sh(args: &[&str]) -> Option<(i32, String)> {
    let _serial = TOOLS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let output: Output = Command::new("bash")
        .arg(root().join("deploy/check.sh"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run bash deploy/check.sh");
    let code = output.status.code().unwrap_or(-1);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if code == TOOL_MISSING {
        let message = format!("deploy/check.sh cannot install its tools here:\n{text}");
        if testkit::in_ci() {
            panic!("CI=true and {message}");
        }
        eprintln!("\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n");
        return None;
    }
    Some((code, text))
}

/// The number in "summary: N passed, M failed".
fn summary(text: &str) -> Option<(usize, usize)> {
    let line = text.lines().rev().find(|line| line.starts_with("summary: "))?;
    let mut numbers = line.split(|c: char| !c.is_ascii_digit()).filter(|part| !part.is_empty());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

#[test]
fn the_committed_deployment_files_pass_every_check() {
    let Some((code, text)) = check_sh(&[]) else { return };
    assert_eq!(code, 0, "deploy/check.sh failed:\n{text}");
    let (passed, failed) = summary(&text).unwrap_or_else(|| panic!("no summary line in:\n{text}"));
    assert_eq!(failed, 0, "{text}");
    assert!(passed >= 20, "every check ran (yamllint, hadolint, compose, promtool, dashboard, 2 overlays): {text}");
    for check in ["yamllint", "hadolint", "compose config", "promtool test rules", "kubernetes-validate prod"] {
        assert!(text.lines().any(|line| line.starts_with(&format!("ok   {check}"))), "{check} passed:\n{text}");
    }
    // The rendered prod overlay: one API group and two separately scaled worker groups.
    let prod = text
        .lines()
        .find(|line| line.trim_start().starts_with("prod: API group and worker groups:"))
        .unwrap_or_else(|| panic!("no prod summary in:\n{text}"));
    for group in ["mes-api (HPA", "worker-fast (KEDA", "worker-slow (KEDA 0.."] {
        assert!(prod.contains(group), "prod renders {group}…: {prod}");
    }
}

#[test]
fn the_checks_catch_every_broken_copy() {
    let Some((code, text)) = check_sh(&["--self-test"]) else { return };
    let verdict = text
        .lines()
        .rev()
        .find(|line| line.starts_with("self-test: ") && line.contains("broken copies caught"))
        .unwrap_or_else(|| panic!("no self-test verdict in:\n{text}"));
    let numbers: Vec<usize> = verdict
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [caught, cases, missed] = numbers[..] else { panic!("unexpected verdict {verdict:?}") };
    assert_eq!(code, 0, "the self-test failed:\n{text}");
    assert!(cases >= 10, "the self-test breaks the files in many ways: {verdict}");
    assert_eq!((caught, missed), (cases, 0), "{text}");
    assert_eq!(text.lines().filter(|line| line.starts_with("caught: ")).count(), cases, "{text}");
}
