//! Policy as tests: the architecture invariants and house rules that a
//! machine can check, in the spirit of rust-analyzer's `tidy`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Names of every package `root` depends on (normal dependencies only, all
/// the way down).
fn normal_dependency_closure(metadata: &Value, root: &str) -> BTreeSet<String> {
    let packages: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> =
        metadata["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let root_id = packages.iter().find(|(_, name)| **name == root).map(|(id, _)| *id).expect("package exists");
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(packages[dep_id].to_string()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

/// Architecture invariant: `mesh` and `calculator` are pure computation.
/// Nothing they depend on, directly or not, does async IO, SQL, AMQP, HTTP
/// or AWS.
#[test]
fn mesh_and_calculator_stay_pure() {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let forbidden = |name: &str| {
        ["tokio", "sqlx", "lapin", "axum", "hyper", "reqwest", "aws", "tower", "mio"]
            .iter()
            .any(|family| name == *family || name.starts_with(&format!("{family}-")))
    };
    for pure in ["mesh", "calculator"] {
        let closure = normal_dependency_closure(&metadata, pure);
        assert!(closure.contains("rayon"), "the closure walk works: {pure} uses rayon ({closure:?})");
        let leaks: Vec<_> = closure.iter().filter(|name| forbidden(name)).collect();
        assert!(leaks.is_empty(), "{pure} must not depend on {leaks:?}");
    }
    let api = normal_dependency_closure(&metadata, "api");
    assert!(api.contains("tokio") && forbidden("tokio"), "the check can fail: api does use tokio");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() && !name.starts_with('.') && name != "target" {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn our_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["mesh", "calculator", "scheduler", "api", "src", "tests", "benches"] {
        let dir = workspace_root().join(dir);
        if dir.exists() {
            rust_files(&dir, &mut files);
        }
    }
    assert!(files.len() > 20, "found our sources: {files:?}");
    files
}

/// Every module opens with a `//!` line that says what it is for.
#[test]
fn every_module_says_what_it_is_for() {
    let undocumented: Vec<_> = our_rust_files()
        .into_iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().trim_start().starts_with("//!"))
        .collect();
    assert!(undocumented.is_empty(), "modules without a leading `//!` doc line: {undocumented:?}");
}

/// A test must be able to fail: no ignored tests, no debug leftovers.
#[test]
fn no_ignored_tests_or_debug_leftovers() {
    let banned = [concat!("#[", "ignore"), concat!("dbg", "!("), concat!("todo", "!("), concat!("unimplemented", "!(")];
    let mut offences = Vec::new();
    for path in our_rust_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            if let Some(word) = banned.iter().find(|word| line.contains(*word)) {
                offences.push(format!("{}:{}: {word}", path.display(), number + 1));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}

/// The repository is self-contained: no tracked file reads data from beside
/// the checkout (a user's clone has nothing there). Markdown may mention
/// where the corpus came from; code, scripts and configuration may not
/// reach for it.
#[test]
fn nothing_tracked_reads_outside_the_repository() {
    let output = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(workspace_root())
        .output()
        .expect("run git ls-files (the tidy tests run in a git checkout)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let tracked: Vec<String> =
        String::from_utf8(output.stdout).unwrap().split('\0').filter(|p| !p.is_empty()).map(str::to_string).collect();
    assert!(tracked.iter().any(|p| p == "tests/tidy.rs"), "git ls-files lists our files: {tracked:?}");
    // Spelled in pieces so that this file does not match itself.
    let outside = [concat!("..", "/shared"), concat!("shared/", "stl-corpus"), concat!("\"..\", ", "\"shared\"")];
    let mut offences = Vec::new();
    for path in tracked.iter().filter(|p| !p.ends_with(".md") && !p.starts_with("tests/data/")) {
        let Ok(text) = std::fs::read_to_string(workspace_root().join(path)) else { continue };
        for (number, line) in text.lines().enumerate() {
            if let Some(pattern) = outside.iter().find(|pattern| line.contains(*pattern)) {
                offences.push(format!("{path}:{}: {pattern}", number + 1));
            }
        }
    }
    assert!(offences.is_empty(), "tracked files that read from outside the repository: {offences:#?}");
}

/// Each package of the release `farm` with the features it is built with
/// (`name vX (path) [feature,...]`): normal and build dependencies only, as
/// a release build resolves them (the tests turn faults on through
/// dev-dependencies, which a release build never sees).
fn release_features(extra: &[&str]) -> String {
    let mut tree = Command::new(env!("CARGO"));
    tree.args(["tree", "-p", "pricing-farm", "-e", "normal,build", "--locked", "--prefix", "none"])
        .args(["--format", "{p} [{f}]"])
        .args(extra);
    // What `cargo test` sets for this test must not reach the cargo it runs.
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("CARGO_") && k != "CARGO_HOME") {
        tree.env_remove(name);
    }
    let output = tree.current_dir(workspace_root()).output().expect("run cargo tree");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_release_binary_has_no_fault_injection() {
    let scheduler = |tree: &str| tree.lines().find(|l| l.starts_with("scheduler v")).map(str::to_string);
    let release = release_features(&[]);
    let line = scheduler(&release).expect("the farm is built on the scheduler");
    assert!(!line.contains("fault-injection"), "a release `farm` must not inject faults: {line}");
    assert!(!release.contains("fault-injection"), "{release}");
    // The check can fail: asked for, the feature shows.
    let with_faults = release_features(&["--features", "fault-injection"]);
    assert!(scheduler(&with_faults).is_some_and(|l| l.contains("[fault-injection]")), "{with_faults}");
}
