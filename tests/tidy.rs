//! Policy as tests: the architecture invariants and house rules that a
//! machine can check, in the spirit of rust-analyzer's `tidy`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// The modules of a crate's `src/` by path (`orders::routes`; the crate
/// root is ``), each with the text that counts for its imports: its own
/// code, without its unit tests and comments.
fn crate_modules(src: &Path) -> BTreeMap<String, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests sit at the end of a file, in `#[cfg(test)] mod tests`.
            let code = text.split("\n#[cfg(test)]").next().unwrap();
            let code: Vec<&str> = code.lines().filter(|line| !line.trim_start().starts_with("//")).collect();
            (parts.join("::"), code.join("\n"))
        })
        .collect()
}

/// The path that follows `at` in `text` (`a::b::{c, d::e}`), as the full
/// paths it names, relative to what precedes it.
fn expand_path(text: &str) -> Vec<Vec<String>> {
    let text = text.trim();
    let (head, group) = match text.find('{') {
        Some(open) => {
            let mut depth = 0;
            let close = text[open..]
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(text.len(), |(i, _)| open + i);
            (&text[..open], Some(&text[open + 1..close]))
        }
        None => (text, None),
    };
    let head: Vec<String> =
        head.split("::").map(str::trim).filter(|p| !p.is_empty() && *p != "self").map(str::to_string).collect();
    let Some(group) = group else { return vec![head] };
    // Split the group at its top-level commas.
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(|item| {
            let item = item.split(" as ").next().unwrap();
            expand_path(item).into_iter().map(|tail| head.iter().cloned().chain(tail).collect())
        })
        .collect()
}

/// What each module of the crate imports from its siblings: every
/// `crate::…` and `super::…` path (in `use` or in code) and every path
/// through one of its own child modules, resolved to the longest module it
/// names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = crate_modules(src);
    let resolve = |path: &[String]| {
        (0..=path.len()).rev().map(|n| path[..n].join("::")).find(|candidate| modules.contains_key(candidate))
    };
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut graph = BTreeMap::new();
    for (module, code) in &modules {
        let me: Vec<String> = module.split("::").filter(|p| !p.is_empty()).map(str::to_string).collect();
        let children: Vec<&str> = code
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let rest = line
                    .strip_prefix("pub(crate) mod ")
                    .or(line.strip_prefix("pub mod "))
                    .or(line.strip_prefix("mod "))?;
                rest.strip_suffix(';')
            })
            .collect();
        let mut edges = BTreeSet::new();
        for (start, _) in code.char_indices() {
            if start > 0 && (is_ident(code[..start].chars().next_back().unwrap()) || code[..start].ends_with("::")) {
                continue;
            }
            let rest = &code[start..];
            let word: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            if !rest[word.len()..].starts_with("::") || word.is_empty() {
                continue;
            }
            let base: Vec<String> = match word.as_str() {
                "crate" => Vec::new(),
                "super" => me[..me.len().saturating_sub(1)].to_vec(),
                child if children.contains(&child) => me.clone(),
                _ => continue,
            };
            let after = if word == "crate" || word == "super" { &rest[word.len() + 2..] } else { rest };
            // Up to the end of the path: a `;`, or a character no path holds.
            let end = after
                .char_indices()
                .scan(0i32, |depth, (i, c)| {
                    *depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    Some((i, c, *depth))
                })
                .find(|&(_, c, depth)| depth < 0 || (depth == 0 && !(is_ident(c) || ":{} ,".contains(c))))
                .map_or(after.len(), |(i, _, _)| i);
            let mut text = &after[..end];
            if !text.contains('{') {
                text = text.split([' ', ',']).next().unwrap();
            }
            let mut supers = 0;
            while let Some(tail) = text.strip_prefix("super::") {
                supers += 1;
                text = tail;
            }
            let base = base[..base.len().saturating_sub(supers)].to_vec();
            for path in expand_path(text) {
                let full: Vec<String> = base.iter().cloned().chain(path).collect();
                if let Some(target) = resolve(&full).filter(|target| target != module) {
                    edges.insert(target);
                }
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

/// A cycle through `start`'s strongly connected modules, if any: the
/// modules in order, the first repeated at the end.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Architecture invariant: `api`'s modules form no import cycle. The state
/// is a leaf that everything imports; routes and consumers are adapters over
/// the services, and neither imports the other.
#[test]
fn api_modules_form_no_import_cycle() {
    let graph = module_graph(&workspace_root().join("api/src"));
    // The graph is read right: these imports are there today.
    for (from, to) in [
        ("orders::routes", "orders::service"),
        ("orders::intake", "orders::service"),
        ("store::settle", "orders"),
        ("web::session", "web::session_store"),
        ("orders", "orders::accounts"),
        ("web", "web::hub"),
    ] {
        assert!(graph[from].contains(to), "{from} imports {to}: {:?}", graph[from]);
    }
    assert_eq!(find_cycle(&graph), None, "an import cycle among api's modules");
    // The check can fail.
    let mut cyclic = graph.clone();
    cyclic.get_mut("state").unwrap().insert("orders::routes".into());
    assert!(find_cycle(&cyclic).is_some_and(|cycle| cycle.contains(&"state".to_string())), "{cyclic:?}");
}

/// `api`'s modules that speak HTTP or AMQP: routes, extractors, the error
/// type that is a response, consumers, publishers, the server.
const API_TRANSPORT: &[&str] = &[
    "caller",
    "consume",
    "contract",
    "dead_letters",
    "error",
    "events_relay",
    "letters",
    "orders::intake",
    "orders::routes",
    "relay",
    "results",
    "routes",
    "serve",
    "startup",
    "web::assets",
    "web::live",
    "web::reference_route",
    "web::session",
    "webhooks::deliver",
    "webhooks::routes",
];

/// `api`'s domain modules: the services, the stores and what they compute.
const API_DOMAIN: &[&str] = &[
    "auth",
    "events",
    "orders",
    "orders::accounts",
    "orders::cache",
    "orders::facets",
    "orders::list_facts",
    "orders::moves",
    "orders::parts",
    "numbers",
    "orders::reprice",
    "orders::service",
    "orders::status",
    "orders::store",
    "pricing",
    "quota",
    "redis_client",
    "store",
    "store::column",
    "store::dead_letters",
    "store::jobs",
    "store::keys",
    "store::migrations",
    "store::models",
    "store::outbox",
    "store::settle",
    "text",
    "web::hub",
    "web::reference",
    "web::session_store",
    "web::settings",
    "webhooks",
    "webhooks::signature",
    "webhooks::store",
    "webhooks::target",
];

/// Architecture invariant: a domain module never imports a transport module
/// (HTTP or AMQP). Every module of `api` is named one or the other, or is
/// glue (the state, telemetry, uploads), so a new module must be placed.
#[test]
fn api_domain_modules_import_no_transport_module() {
    let graph = module_graph(&workspace_root().join("api/src"));
    let glue = ["", "state", "telemetry", "upload", "monitor", "web"];
    let unplaced: Vec<_> = graph
        .keys()
        .filter(|m| {
            !API_TRANSPORT.contains(&m.as_str()) && !API_DOMAIN.contains(&m.as_str()) && !glue.contains(&m.as_str())
        })
        .collect();
    assert!(unplaced.is_empty(), "place these modules in API_TRANSPORT, API_DOMAIN or glue: {unplaced:?}");
    let missing: Vec<_> = API_TRANSPORT.iter().chain(API_DOMAIN).filter(|m| !graph.contains_key(**m)).collect();
    assert!(missing.is_empty(), "named but not modules: {missing:?}");
    let offences: Vec<String> = API_DOMAIN
        .iter()
        .flat_map(|domain| {
            graph[*domain]
                .iter()
                .filter(|to| API_TRANSPORT.contains(&to.as_str()))
                .map(move |to| format!("{domain} → {to}"))
        })
        .collect();
    assert!(offences.is_empty(), "domain modules importing transport modules: {offences:#?}");
}

/// Every path ARCHITECTURE.md's codemap names exists: a crate's section
/// names paths inside that crate, `Elsewhere` paths from the root.
#[test]
fn every_path_in_the_codemap_exists() {
    let text = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    let output = Command::new("git").args(["ls-files"]).current_dir(workspace_root()).output().expect("git ls-files");
    let tracked: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect();
    let codemap = text.split("\n## Codemap").nth(1).expect("a codemap").split("\n## ").next().unwrap();
    let (mut section, mut named, mut missing) = (None::<String>, 0, Vec::new());
    for line in codemap.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            section = Some(match heading.split('`').nth(1) {
                Some(dir) if heading.starts_with('`') => dir.trim_end_matches('/').to_string(),
                _ => String::new(),
            });
            continue;
        }
        let Some(dir) = &section else { continue };
        for (i, token) in line.split('`').enumerate() {
            let extension = token.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
            // URL paths (`/console/`), generated folders and bare
            // extensions are not files of the repository.
            let a_path = i % 2 == 1
                && !token.is_empty()
                && !token.starts_with(['/', '.'])
                && !token.starts_with("target/")
                && token.chars().all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
                && (token.ends_with('/')
                    || ["rs", "toml", "js", "sh", "md", "css", "html", "ini", "py"].contains(&extension));
            if !a_path {
                continue;
            }
            named += 1;
            let within = |file: &String| -> Option<String> {
                if dir.is_empty() {
                    Some(file.clone())
                } else {
                    file.strip_prefix(&format!("{dir}/")).map(str::to_string)
                }
            };
            let names = |file: &str| {
                file == token
                    || file.ends_with(&format!("/{token}"))
                    || (token.ends_with('/') && (file.starts_with(token) || file.contains(&format!("/{token}"))))
            };
            // Inside the section's crate, or from the root.
            let found = tracked.iter().filter_map(within).any(|file| names(&file))
                || tracked.iter().any(|file| file == token || (token.ends_with('/') && file.starts_with(token)));
            if !found {
                missing.push(format!("{dir}/: `{token}`"));
            }
        }
    }
    assert!(named > 80, "the codemap names paths: {named}");
    assert!(missing.is_empty(), "the codemap names paths that do not exist: {missing:#?}");
}

/// Architecture invariant: every write of an order's status comes from the
/// state machine (`orders::status::next`, through `fixed_move` for the
/// moves the farm makes itself) or is the initial status. The SQL that
/// writes `orders.status` binds it (`status = $n`), never spells it, and the
/// functions that hold such SQL are listed here: a new one is reviewed.
#[test]
fn every_order_status_write_comes_from_the_state_machine() {
    let src = workspace_root().join("api/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut writers = BTreeSet::new();
    let mut spelled = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.strip_prefix(&src).unwrap().display().to_string();
        for start in
            text.match_indices("UPDATE orders SET").chain(text.match_indices("INSERT INTO orders (")).map(|(i, _)| i)
        {
            // The statement runs to the end of its string literal.
            let rest = &text[start..];
            let end = rest
                .char_indices()
                .find(|&(i, c)| c == '"' && !rest[..i].ends_with('\\'))
                .map_or(rest.len(), |(i, _)| i);
            let sql = &rest[..end];
            let written = sql.split(" WHERE ").next().unwrap();
            let writes_status = written.contains("status =") || written.contains(" status,");
            if !writes_status {
                continue;
            }
            let literal = [
                "'CREATED'",
                "'PRICING'",
                "'PRICED'",
                "'PRICING_FAILED'",
                "'MANUFACTURING",
                "'SHIPPED'",
                "'CANCELLED'",
            ]
            .iter()
            .any(|status| written.contains(status));
            if literal || (written.contains("status =") && !written.contains("status = $")) {
                spelled.push(format!("{file}: {sql}"));
            }
            let before = &text[..start];
            let fn_at = before.rfind("fn ").expect("SQL inside a function");
            let name: String = before[fn_at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            // The function ends where the next one starts, or its block does.
            let starts_a_fn = |line: &str| {
                let line = line.trim_start();
                let line =
                    ["pub(crate) ", "pub(super) ", "pub "].iter().find_map(|v| line.strip_prefix(v)).unwrap_or(line);
                line.strip_prefix("async ").unwrap_or(line).starts_with("fn ")
            };
            let next_fn = text[start..]
                .match_indices('\n')
                .map(|(i, _)| start + i + 1)
                .find(|&line_start| starts_a_fn(text[line_start..].lines().next().unwrap_or_default()));
            let block_end = text[start..].find("\n}\n").map(|i| start + i);
            let body_end = next_fn.into_iter().chain(block_end).min().unwrap_or(text.len());
            let body = &text[fn_at..body_end];
            let decided = ["status::next(", "fixed_move(", "OrderStatus::INITIAL"].iter().any(|way| body.contains(way));
            assert!(decided, "{file}: `{name}` writes orders.status without the state machine deciding it");
            writers.insert(format!("{file}::{name}"));
        }
    }
    assert!(spelled.is_empty(), "SQL that spells the status it writes to an order: {spelled:#?}");
    let expected: BTreeSet<String> = [
        "store.rs::apply_crm_event",
        "store.rs::insert_new_order",
        "store.rs::start_move",
        "store.rs::reprice_failed_orders_of_job",
        "store.rs::set_status",
        "store.rs::settle_orders_of_job",
        "parts.rs::replay_parts_of_job",
        "parts.rs::settle_order_of_parts",
    ]
    .iter()
    .map(|name| format!("orders/{name}"))
    .collect();
    assert_eq!(writers, expected, "the functions that write an order's status");
}
