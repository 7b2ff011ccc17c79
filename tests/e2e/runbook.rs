//! The runbook's commands are checked against the farm that ships: every
//! `farm …` it tells an operator to type names a subcommand and flags the
//! binary has, and every HTTP call it names (`curl`, or `GET /v1/…` in
//! prose) is a route of the OpenAPI document with that method, and every
//! Deployment or ScaledObject a `kubectl` command names is in `k8s/`. The
//! `kubectl` commands themselves need a cluster and are not run here.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{FarmProcess, farm_command, path_str, workspace_root};

/// The runbook's snippets: every `inline` and fenced block, with shell
/// line continuations joined.
fn snippets(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, block) in text.split("```").enumerate() {
        if i % 2 == 1 {
            // A fenced block: its first line names the language.
            let body = block.split_once('\n').map_or("", |(_, rest)| rest);
            found.extend(body.replace("\\\n", " ").lines().map(str::to_string));
        } else {
            let joined = block.replace('\n', " ");
            found.extend(joined.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    found
}

/// A `farm` command of a snippet: its words (subcommands and arguments) and
/// its flags. `farm` as a namespace (`-n farm`) or inside a name is not one.
fn farm_commands(snippet: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let tokens: Vec<&str> = snippet.split_whitespace().collect();
    let mut commands = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let invoked = *token == "farm" && (i == 0 || tokens[i - 1] == "--" || tokens[i - 1] == "exec");
        if !invoked || tokens.get(i.wrapping_sub(1)) == Some(&"-n") {
            continue;
        }
        let rest = tokens[i + 1..].iter().take_while(|t| !matches!(**t, "|" | "#" | "&&" | ";" | "or"));
        let (mut words, mut flags) = (Vec::new(), Vec::new());
        for token in rest {
            let token = token.trim_end_matches([',', ')', '.']);
            if let Some(flag) = token.strip_prefix("--") {
                flags.push(format!("--{}", flag.split('=').next().unwrap_or_default()));
            } else if flags.is_empty() {
                words.push(token.to_string());
            }
        }
        // `farm` alone names the program, not a command to type.
        if !(words.is_empty() && flags.is_empty()) {
            commands.push((words, flags));
        }
    }
    commands
}

/// An HTTP call of a snippet: its method and path.
fn http_calls(snippet: &str) -> Vec<(String, String)> {
    let tokens: Vec<&str> = snippet.split_whitespace().collect();
    let mut calls = Vec::new();
    let curl_method = tokens.windows(2).find(|w| w[0] == "-X").map(|w| w[1].to_string());
    for (i, token) in tokens.iter().enumerate() {
        let Some(start) = token.find("/v1/") else { continue };
        let path: String = token[start..].chars().take_while(|c| !matches!(c, '"' | '\'' | '`' | ',' | ')')).collect();
        let path = path.split('?').next().unwrap_or_default().trim_end_matches(['.', ':']).to_string();
        let prose_method =
            i.checked_sub(1).map(|j| tokens[j]).filter(|m| ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(m));
        let method = prose_method.map(str::to_string).or_else(|| curl_method.clone()).unwrap_or_else(|| "GET".into());
        calls.push((method, path));
    }
    calls
}

/// Whether `path` (placeholders in capitals, `{…}` or `<…>`) is the
/// document's `template`.
fn path_matches(path: &str, template: &str) -> bool {
    let (ours, theirs): (Vec<&str>, Vec<&str>) = (path.split('/').collect(), template.split('/').collect());
    ours.len() == theirs.len()
        && ours.iter().zip(&theirs).all(|(a, b)| {
            let placeholder = |s: &str| {
                (s.starts_with('{') && s.ends_with('}'))
                    || (s.starts_with('<') && s.ends_with('>'))
                    || (!s.is_empty() && s.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            };
            a == b || (placeholder(b) && placeholder(a))
        })
}

/// The Deployments and ScaledObjects a snippet's `kubectl` names
/// (`deploy/NAME`, `scaledobject NAME`).
fn workload_names(snippet: &str) -> Vec<String> {
    let tokens: Vec<&str> = snippet.split_whitespace().collect();
    let mut names = Vec::new();
    if !tokens.contains(&"kubectl") {
        return names;
    }
    for (i, token) in tokens.iter().enumerate() {
        if let Some(name) = token.strip_prefix("deploy/") {
            names.push(name.to_string());
        } else if *token == "scaledobject"
            && let Some(name) = tokens.get(i + 1)
        {
            names.push(name.to_string());
        }
    }
    names.retain(|n| !n.starts_with('-') && !n.is_empty());
    names
}

/// Every `name:` in the manifests under `k8s/`.
fn manifest_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![workspace_root().join("k8s")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                names
                    .extend(text.lines().filter_map(|l| l.trim().strip_prefix("name: ")).map(|n| n.trim().to_string()));
            }
        }
    }
    names
}

/// What is wrong with the runbook's commands, against the binary's help
/// and the served OpenAPI document.
fn offences(text: &str, openapi: &Value) -> Vec<String> {
    let mut wrong = BTreeSet::new();
    let manifests = manifest_names();
    let help = |words: &[String]| {
        let out = farm_command().args(words).arg("--help").output().expect("run farm");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    for snippet in snippets(text) {
        for (words, flags) in farm_commands(&snippet) {
            // The longest run of words that the binary takes as subcommands.
            let mut chain = Vec::new();
            let mut text = help(&chain).unwrap_or_default();
            for word in &words {
                if !word.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                    break;
                }
                chain.push(word.clone());
                match help(&chain) {
                    Some(more) => text = more,
                    None => {
                        chain.pop();
                        break;
                    }
                }
            }
            if chain.is_empty() {
                wrong.insert(format!("`{snippet}`: `farm {}` is no command", words.join(" ")));
                continue;
            }
            for flag in flags {
                if !text.contains(&format!("{flag} ")) && !text.contains(&format!("{flag}\n")) {
                    wrong.insert(format!("`{snippet}`: `farm {}` has no `{flag}`", chain.join(" ")));
                }
            }
        }
        for name in workload_names(&snippet) {
            if !manifests.contains(&name) {
                wrong.insert(format!("`{snippet}`: `{name}` is in no manifest under k8s/"));
            }
        }
        for (method, path) in http_calls(&snippet) {
            let paths = openapi["paths"].as_object().expect("the document has paths");
            let routed = paths.iter().any(|(template, operations)| {
                path_matches(&path, template) && operations.get(method.to_lowercase()).is_some()
            });
            if !routed {
                wrong.insert(format!("`{snippet}`: `{method} {path}` is no documented route"));
            }
        }
    }
    wrong.into_iter().collect()
}

#[tokio::test]
async fn every_farm_command_and_http_call_in_the_runbook_exists() {
    let data = tempfile::tempdir().unwrap();
    let dir = path_str(data.path());
    let mut farm = FarmProcess::spawn(&["serve", "--data-dir", &dir, "--listen", "127.0.0.1:0"], &[]);
    let addr = farm.wait_for_listening();
    let openapi: Value = reqwest::get(format!("http://{addr}/v1/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(farm.terminate(), 0);

    let runbook = std::fs::read_to_string(workspace_root().join("deploy/RUNBOOK.md")).unwrap();
    let found = offences(&runbook, &openapi);
    assert!(found.is_empty(), "the runbook names commands the farm does not have:\n{}", found.join("\n"));
    // It reads what it should: the runbook's own commands are there...
    let commands: usize = snippets(&runbook).iter().map(|s| farm_commands(s).len()).sum();
    let calls: usize = snippets(&runbook).iter().map(|s| http_calls(s).len()).sum();
    assert!(commands >= 8 && calls >= 8, "{commands} farm commands and {calls} HTTP calls read");
    // ...and the check can fail.
    let wrong = "Run `kubectl -n farm exec deploy/mes-apy -- farm dead-letters replay ID --everything`, \
                 `farm no-such-thing`, and\n\n```sh\ncurl -X DELETE https://API/v1/operator/dead-letters/ID \\\n  \
                 -H x\n```\n\nor `POST /v1/orders/ORDER/nowhere`.";
    let found = offences(wrong, &openapi);
    assert_eq!(found.len(), 5, "{found:#?}");
}
