//! `farm quote` and `farm analyze`: local pricing with no services.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{farm_bin, farm_command, workspace_root};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = farm_command().args(args).output().expect("run farm");
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn sample() -> String {
    workspace_root().join("tests/data/cube_20mm.stl").to_str().unwrap().to_string()
}

#[test]
fn quote_json_has_the_contract_keys() {
    let (code, stdout, stderr) =
        run(&["quote", &sample(), "--material", "petg", "--quantity", "3", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let quote: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(quote["triangles"], 12);
    assert_eq!(quote["volume_mm3"], 8000.0);
    assert_eq!(quote["surface_area_mm2"], 2400.0);
    assert_eq!(quote["watertight"], true);
    assert_eq!((quote["material"].as_str(), quote["quantity"].as_u64()), (Some("petg"), Some(3)));
    assert!(quote["print_time_s"].as_f64().unwrap() > 0.0);
    assert!(quote["material_g"].as_f64().unwrap() > 0.0);
    assert!(quote["total"].as_f64().unwrap() > 0.0);
    assert_eq!(quote["currency"], "EUR");
}

#[test]
fn quote_table_is_readable() {
    let (code, stdout, _) = run(&["quote", &sample()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("volume") && stdout.contains("8000.00 mm³"), "{stdout}");
    assert!(stdout.contains("total"), "{stdout}");
}

#[test]
fn analyze_json_prints_the_mesh_facts() {
    let (code, stdout, stderr) = run(&["analyze", &sample(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let analysis: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(analysis["shells"], 1);
    assert_eq!(analysis["bounding_box"]["size"], serde_json::json!([20.0, 20.0, 20.0]));
    assert!(analysis.get("total").is_none(), "analyze prints no price");
}

#[test]
fn the_format_comes_from_the_bytes_whatever_the_file_is_called() {
    // A 3MF saved as .obj and an OBJ saved as .stl: each is read as what it is.
    let dir = tempfile::tempdir().unwrap();
    let data = workspace_root().join("tests/data");
    let tmf = dir.path().join("cube.obj");
    let obj = dir.path().join("cube.stl");
    std::fs::copy(data.join("cube_20mm.3mf"), &tmf).unwrap();
    std::fs::copy(data.join("cube_20mm.obj"), &obj).unwrap();
    for (path, format) in [(&tmf, "3mf"), (&obj, "obj")] {
        let (code, stdout, stderr) = run(&["analyze", path.to_str().unwrap(), "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        let a: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(a["format"], format);
        assert_eq!((a["triangles"].as_u64(), a["volume_mm3"].as_f64()), (Some(12), Some(8000.0)), "{a}");
        assert_eq!(a["watertight"], true);
        assert_eq!(a["objects"][0]["name"], "cube");
        assert!(a["weld"].as_str().unwrap().starts_with("nearby:"), "{a}");
        let (code, stdout, stderr) = run(&["quote", path.to_str().unwrap(), "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        let q: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(q["volume_mm3"], 8000.0);
    }
    // The 3MF declares mm and places its cube at (10, 10, 0).
    let (_, stdout, _) = run(&["analyze", tmf.to_str().unwrap(), "--format", "json"]);
    let a: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(a["units"], "mm");
    assert_eq!(a["bounding_box"]["min"], serde_json::json!([10.0, 10.0, 0.0]));
    // A directory walk picks up every model file.
    let (code, stdout, stderr) = run(&["quote", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap().as_array().map(Vec::len), Some(2));
    // --weld-tolerance 0 keeps the exact weld.
    let (code, stdout, stderr) = run(&["analyze", &sample(), "--format", "json", "--weld-tolerance", "0"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["weld"], "exact");
}

#[test]
fn analyze_slices_checks_the_fit_and_applies_units_only_when_asked() {
    let (code, stdout, stderr) =
        run(&["analyze", &sample(), "--format", "json", "--layer-height", "0.2", "--build-volume", "250,210,220"]);
    assert_eq!(code, 0, "{stderr}");
    let a: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(a["slices"]["layers"], 100);
    assert!((a["slices"]["max_area_mm2"].as_f64().unwrap() - 400.0).abs() < 1e-6, "{}", a["slices"]);
    assert_eq!(a["fit"]["fits"], true);
    assert_eq!((a["units"].as_str(), a["units_guess"].as_str()), (Some("file"), Some("mm")));
    assert_eq!(a["plate_contact_area_mm2"], 400.0);

    let (_, stdout, _) =
        run(&["analyze", &sample(), "--format", "json", "--units", "inch", "--build-volume", "250,210,220"]);
    let inches: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(inches["units"], "mm");
    assert!((inches["volume_mm3"].as_f64().unwrap() - 8000.0 * 25.4f64.powi(3)).abs() < 1.0, "{inches}");
    assert_eq!(inches["fit"]["fits"], false, "a 508 mm cube does not fit");

    let (code, _, stderr) = run(&["analyze", &sample(), "--layer-height", "0.0001", "--max-layers", "1000"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("layers"), "{stderr}");
    let (code, _, stderr) = run(&["analyze", &sample(), "--units", "furlong"]);
    assert_eq!(code, 2, "clap rejects a bad value: {stderr}");
    assert!(stderr.contains("furlong"), "{stderr}");
}

#[test]
fn bad_input_gets_a_message_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cube = std::fs::read(sample()).unwrap();
    let truncated = dir.path().join("truncated.stl");
    std::fs::write(&truncated, &cube[..cube.len() - 20]).unwrap();
    let empty = dir.path().join("empty.stl");
    std::fs::write(&empty, b"").unwrap();
    let sample = sample();
    let cases = [
        (vec!["quote", truncated.to_str().unwrap()], "truncated"),
        (vec!["analyze", empty.to_str().unwrap()], "no triangles"),
        (vec!["quote", "/nonexistent/model.stl"], "cannot read"),
        (vec!["quote", &sample, "--material", "unobtainium"], "unknown material"),
        (vec!["quote", &sample, "--max-model-bytes", "100"], "over the limit"),
    ];
    for (args, expected) in cases {
        assert_refused(&args, expected);
    }
}

/// `farm args` exits 1, prints nothing on stdout, and says `expected` in
/// an `error: ` line, without a panic.
fn assert_refused(args: &[&str], expected: &str) {
    let (code, stdout, stderr) = run(args);
    assert_eq!(code, 1, "{args:?}: {stderr}");
    assert!(stdout.is_empty(), "{args:?} printed {stdout}");
    assert!(stderr.starts_with("error: ") && stderr.contains(expected), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The order cache's limits are checked at start even when no Redis is
/// set, before anything is opened: a bad value waits for no one to set
/// FARM_REDIS_URL one day.
#[test]
fn the_order_caches_limits_are_checked_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for (flag, value) in [("--operator-cache-read-timeout-s", "0"), ("--operator-cache-write-timeout-s", "-1")] {
        let set = format!("{flag}={value}");
        assert_refused(&["serve", "--data-dir", data, &set], &format!("{flag} must be a positive number"));
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing was opened");
}

#[test]
fn api_and_worker_refuse_to_run_without_a_shared_broker() {
    for role in ["api", "worker"] {
        let out = farm_command().arg(role).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("FARM_AMQP_URL"));
    }
}

#[test]
fn profile_show_prints_prusaslicer_defaults_and_applies_a_shop_profile() {
    let (code, stdout, stderr) = run(&["profile", "show", "--format", "ini"]);
    assert_eq!(code, 0, "{stderr}");
    for line in ["layer_height = 0.3\n", "first_layer_height = 0.35\n", "fill_density = 20%\n", "perimeters = 3\n"] {
        assert!(stdout.contains(line), "{line:?} missing from\n{stdout}");
    }
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop.ini");
    std::fs::write(&shop, "layer_height = 0.2\nfill_density = 35%\nseam_position = rear\n").unwrap();
    let (code, stdout, stderr) = run(&["profile", "show", "--profile", shop.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("layer_height = 0.2\n") && stdout.contains("fill_density = 35%\n"), "{stdout}");
    assert!(stderr.contains("seam_position"), "ignored keys are named: {stderr}");
    std::fs::write(&shop, "fill_density = lots\n").unwrap();
    let (code, _, stderr) = run(&["profile", "show", "--profile", shop.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("line 1") && stderr.contains("fill_density"), "{stderr}");
}

#[test]
fn a_shop_profile_drives_the_fdm_estimate_and_its_unused_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop.ini");
    std::fs::write(&shop, "layer_height = 0.2\nfirst_layer_height = 0.2\nperimeters = 2\nseam_position = rear\n")
        .unwrap();
    let (code, stdout, stderr) = run(&["quote", &sample(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let default: Value = serde_json::from_str(&stdout).unwrap();
    let (code, stdout, stderr) = run(&["quote", &sample(), "--profile", shop.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let shop: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((default["layers"].as_u64(), shop["layers"].as_u64()), (Some(67), Some(100)), "{shop}");
    assert_eq!(shop["ignored_profile_keys"], serde_json::json!(["seam_position"]));
    assert!(shop["warnings"].to_string().contains("seam_position"), "{}", shop["warnings"]);
    // Finer layers take longer; two perimeters instead of three use less.
    assert!(shop["print_time_s"].as_f64() > default["print_time_s"].as_f64(), "{shop}");
    assert!(shop["material_cm3"].as_f64() < default["material_cm3"].as_f64(), "{shop}");
    // PrusaSlicer 2.5 estimates this cube at 13m45s and 3.59 cm³ with its defaults.
    let (time, cm3) = (default["print_time_s"].as_f64().unwrap(), default["material_cm3"].as_f64().unwrap());
    assert!((time / 825.0 - 1.0).abs() < 0.10 && (cm3 / 3.59 - 1.0).abs() < 0.05, "{time} s, {cm3} cm³");
}

#[test]
fn many_files_and_directories_are_priced_into_one_json_array() {
    let dir = tempfile::tempdir().unwrap();
    let cube = std::fs::read(sample()).unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir_all(parts.join("nested")).unwrap();
    std::fs::write(parts.join("a.stl"), &cube).unwrap();
    std::fs::write(parts.join("nested/b.STL"), &cube).unwrap();
    std::fs::write(parts.join("notes.txt"), b"not a model").unwrap();
    let (code, stdout, stderr) = run(&["quote", parts.to_str().unwrap(), &sample(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let quotes: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let files: Vec<&str> = quotes.iter().map(|q| q["file"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files[0].ends_with("a.stl") && files[1].ends_with("nested/b.STL") && files[2].ends_with("cube_20mm.stl"));
    assert!(quotes.iter().all(|q| q["volume_mm3"] == 8000.0 && q["total"].as_f64().unwrap() > 0.0), "{stdout}");

    // One bad file does not stop the batch, but it fails the command.
    std::fs::write(parts.join("broken.stl"), b"solid x\nfacet normal 0 0 1\n").unwrap();
    let (code, stdout, stderr) = run(&["quote", parts.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("1 of 3 models could not be priced"), "{stderr}");
    let quotes: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let broken = quotes.iter().find(|q| q["file"].as_str().unwrap().ends_with("broken.stl")).unwrap();
    assert!(broken["error"].as_str().unwrap().contains("broken.stl"), "{broken}");
    assert_eq!(quotes.iter().filter(|q| q.get("error").is_none()).count(), 2);

    let (code, stdout, _) = run(&["quote", parts.join("a.stl").to_str().unwrap(), &sample()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("a.stl") && stdout.contains("cube_20mm.stl") && stdout.contains("2 of 2 priced"),
        "{stdout}"
    );
}

#[test]
fn a_price_book_file_sets_the_prices_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, book, stderr) = run(&["price-book", "show"]);
    assert_eq!(code, 0, "{stderr}");
    let custom = book.replacen(&format!("version = \"{}\"", builtin_version(&book)), "version = \"shop-7\"", 1);
    let path = dir.path().join("book.toml");
    std::fs::write(&path, &custom).unwrap();
    let (code, stdout, stderr) = run(&["quote", &sample(), "--price-book", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let quote: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(quote["price_book_version"], "shop-7");

    std::fs::write(&path, custom.replacen("currency", "curency", 1)).unwrap();
    let (code, stdout, stderr) = run(&["quote", &sample(), "--price-book", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty() && stderr.contains("book.toml") && stderr.contains("curency"), "{stderr}");
}

fn builtin_version(book: &str) -> String {
    let line = book.lines().find(|l| l.starts_with("version")).expect("a version line");
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn the_material_picks_the_technology() {
    for (material, technology) in [("pla", "fdm"), ("standard-resin", "sla"), ("pa12", "sls")] {
        let (code, stdout, stderr) = run(&["quote", &sample(), "--material", material, "--format", "json"]);
        assert_eq!(code, 0, "{material}: {stderr}");
        let quote: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(quote["technology"], technology, "{quote}");
        assert!(quote["print_time_s"].as_f64().unwrap() > 0.0 && quote["total"].as_f64().unwrap() > 0.0);
        if technology == "sla" {
            // `material_ml` is the print's resin, as a slicer counts it; the
            // vat's waste is apart from it, and both are priced.
            let (printed, waste) = (quote["material_ml"].as_f64().unwrap(), quote["waste_ml"].as_f64().unwrap());
            assert!(waste > 0.0 && waste < printed, "{quote}");
            assert!((printed + waste - quote["material_cm3"].as_f64().unwrap()).abs() < 1e-9, "{quote}");
        } else {
            assert!(quote["material_ml"].is_null() && quote["waste_ml"].is_null(), "{quote}");
        }
    }
}

#[test]
fn keys_are_minted_listed_and_revoked_from_the_command_line_and_secrets_never_shown_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = run(&["keys", "create-seller", "--name", "acme", "--data-dir", data]);
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.lines().last().unwrap();
    assert!(token.starts_with("farm_seller_"), "the secret is on the last line: {stdout}");
    let (_, secret) = token.split_once('.').unwrap();
    let key_id = token.split_once('.').unwrap().0.trim_start_matches("farm_seller_");
    for kind in ["operator", "crm"] {
        let (code, stdout, _) = run(&["keys", &format!("create-{kind}"), "--name", "x", "--data-dir", data]);
        assert_eq!(code, 0);
        assert!(stdout.lines().last().unwrap().starts_with(&format!("farm_{kind}_")));
    }
    let (code, listed, _) = run(&["keys", "list", "--data-dir", data]);
    assert_eq!(code, 0);
    assert!(listed.contains(key_id) && listed.contains("acme") && listed.contains("seller"), "{listed}");
    assert!(!listed.contains(secret), "list never shows a secret");
    let (code, _, stderr) = run(&["keys", "revoke", key_id, "--data-dir", data]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&["keys", "revoke", key_id, "--data-dir", data]);
    assert_eq!(code, 1, "revoked already");
    assert!(stderr.contains(key_id), "{stderr}");
    let (code, _, stderr) = run(&["keys", "create-seller", "--name", " ", "--data-dir", data]);
    assert_eq!(code, 1, "{stderr}");

    let (code, audit, stderr) = run(&["orders", "audit", "--data-dir", data]);
    assert_eq!(code, 0, "{stderr}");
    assert!(audit.contains("unaccounted orders: 0"), "{audit}");
    let (code, json, _) = run(&["orders", "audit", "--data-dir", data, "--format", "json"]);
    assert_eq!(code, 0);
    let stats: Value = serde_json::from_str(&json).unwrap();
    assert_eq!((stats["api"]["received"].as_i64(), stats["queue"]["received"].as_i64()), (Some(0), Some(0)));

    let (code, windowed, stderr) = run(&["orders", "audit", "--data-dir", data, "--since", "24h", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let windowed: Value = serde_json::from_str(&windowed).unwrap();
    let window = &windowed["window"];
    let span = window["until_ms"].as_i64().unwrap() - window["since_ms"].as_i64().unwrap();
    assert!((span - 86_400_000).abs() < 60_000, "{window}");
    assert_eq!(windowed["ids"], serde_json::json!({"stuck": [], "unaccounted": []}));
    assert_refused(&["orders", "audit", "--data-dir", data, "--since", "1h", "--until", "2h"], "further back");
    assert_refused(&["orders", "audit", "--data-dir", data, "--since", "soon"], "--since");

    // A mistyped --data-dir is refused, and nothing is created there.
    let wrong = dir.path().join("typo");
    let wrong_arg = wrong.to_str().unwrap();
    assert_refused(&["orders", "audit", "--data-dir", wrong_arg], "no farm in");
    assert_refused(&["keys", "list", "--data-dir", wrong_arg], "no farm in");
    assert_refused(&["keys", "revoke", key_id, "--data-dir", wrong_arg], "no farm in");
    assert!(!wrong.exists(), "the refusal created {wrong_arg}");
}

#[test]
fn a_model_built_to_be_expensive_is_refused_with_its_figures_not_computed() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, triangles: Vec<mesh::Triangle>| {
        let path = dir.path().join(name);
        std::fs::write(&path, mesh::write_binary_stl(&triangles)).unwrap();
        path.to_str().unwrap().to_string()
    };
    // The 1 MB file: 20,000 needles 29 m tall. Taller than every
    // machine, so it is answered as such before anything is sliced.
    let needle = write("needle.stl", mesh::needles(20_000, 29_000.0, 20.0));
    // Needles that fit a machine: too many shells, or (with a bound set
    // lower) too many crossings.
    let crowded = write("crowded.stl", mesh::needles(120_000, 340.0, 20.0));
    let dense = write("dense.stl", mesh::needles(40_000, 340.0, 20.0));
    let cases = [
        (vec!["quote", &needle], "fits none of"),
        (vec!["quote", &crowded], "120,000 separate shells"),
        (vec!["quote", &dense, "--max-layer-crossings", "10000000"], "triangle–layer crossings"),
    ];
    for (args, expected) in cases {
        assert_refused(&args, expected);
    }
}

/// A coordinate as a careless or hostile exporter might write it.
fn any_coordinate() -> impl proptest::strategy::Strategy<Value = f32> {
    use proptest::prelude::*;
    prop_oneof![
        4 => -300.0f32..300.0,
        1 => prop::sample::select(vec![
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]),
        1 => -1e7f32..1e7,
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, failure_persistence: None, ..Default::default() })]

    /// Small meshes with extreme coordinates, priced by `farm quote` in a
    /// process whose address space is capped at 2 GiB: every one ends with
    /// a quote or a typed error, never an abort, a panic or a signal.
    #[test]
    fn random_meshes_with_extreme_coordinates_never_abort_under_a_memory_limit(
        corners in proptest::collection::vec([any_coordinate(), any_coordinate(), any_coordinate()], 3..90),
    ) {
        let triangles: Vec<mesh::Triangle> = corners.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extreme.stl");
        std::fs::write(&path, mesh::write_binary_stl(&triangles)).unwrap();
        let out = Command::new("prlimit")
            .arg(format!("--as={}", 2u64 << 30))
            .arg(farm_bin())
            .args(["quote", path.to_str().unwrap(), "--format", "json"])
            // One malloc arena per thread would reserve address space the
            // cap is not about.
            .env("MALLOC_ARENA_MAX", "2")
            .output()
            .expect("run prlimit (util-linux)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        proptest::prop_assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{:?} for {triangles:?}: {stderr}",
            out.status
        );
        proptest::prop_assert!(!stderr.contains("panicked") && !stderr.contains("memory allocation"), "{stderr}");
        if out.status.code() == Some(1) {
            proptest::prop_assert!(stderr.starts_with("error: "), "a typed message: {stderr}");
        }
    }
}

#[test]
fn farm_plan_gives_the_closed_form_for_an_m_m_1_lane_and_refuses_bad_input() {
    // λ = 0.8/s, exponential service of mean 1 s, one slot: P(wait) = 0.8
    // and the p99 wait is ln(80) / 0.2 = 21.9 s.
    let args = [
        "plan",
        "--arrivals-per-hour",
        "2880",
        "--class",
        "all=1,fast,exp:1s",
        "--slots",
        "1",
        "--target-p99",
        "fast=25s",
        "--max-utilisation",
        "0.95",
        "--days",
        "0.5",
        "--format",
        "json",
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let fast = &plan["lanes"][0];
    assert_eq!((fast["lane"].as_str(), fast["workers"].as_u64()), (Some("fast"), Some(1)), "{fast}");
    let p99 = fast["model"]["wait_p99_s"].as_f64().unwrap();
    assert!((p99 - 80f64.ln() / 0.2).abs() < 1e-6, "{p99}");
    assert!((fast["model"]["prob_wait"].as_f64().unwrap() - 0.8).abs() < 1e-9);
    assert_eq!(plan["lanes"][1]["workers"], 0, "no job comes to the slow lane");
    let (code, _, table) = run(&["plan", "--arrivals-per-hour", "100", "--class", "a=1,fast,2m-3m"]);
    assert_eq!(code, 0, "{table}");
    for (bad, says) in [
        (vec!["plan", "--arrivals-per-hour", "100", "--class", "a=1,medium,2m"], "not a lane"),
        (vec!["plan", "--arrivals-per-hour", "0", "--class", "a=1,fast,2m"], "arrival rate"),
        (vec!["plan", "--arrivals-per-hour", "100", "--class", "a=1,fast,3m-2m"], "backwards"),
    ] {
        assert_refused(&bad, says);
    }
}

#[test]
fn farm_plan_takes_service_times_from_a_bench_report_and_replays_its_runs() {
    let report_path = workspace_root().join("benches/results/slow-models-services.json");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let report_arg = report_path.to_str().unwrap();
    let (code, stdout, stderr) =
        run(&["plan", "--bench", report_arg, "--arrivals-per-hour", "420", "--days", "0.2", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();

    // The service times are the 1-worker run's compute times, lane by lane.
    let one_worker = report["runs"].as_array().unwrap().iter().find(|r| r["workers"] == 1).unwrap();
    for (index, lane) in ["fast", "slow"].into_iter().enumerate() {
        let computing: Vec<f64> = one_worker["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["lane"] == lane && r["status"] == "succeeded")
            .map(|r| (r["finished_at_ms"].as_i64().unwrap() - r["started_at_ms"].as_i64().unwrap()) as f64 / 1000.0)
            .collect();
        let mean = computing.iter().sum::<f64>() / computing.len() as f64;
        let planned = &plan["lanes"][index];
        assert_eq!(planned["lane"], lane);
        let service_mean = planned["service"]["mean_s"].as_f64().unwrap();
        assert!((service_mean - mean).abs() < 1e-9, "{lane}: {service_mean} vs {mean}");
    }
    // 84 of the 96 jobs are fast: 420 an hour splits the same way.
    assert!((plan["lanes"][0]["arrivals_per_hour"].as_f64().unwrap() - 420.0 * 84.0 / 96.0).abs() < 1e-9);

    // Every run replayed; the overhead is fitted on the 1-worker run only.
    let checks = plan["bench_check"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{checks:#?}");
    for check in checks {
        let runs = check["runs"].as_array().unwrap();
        let servers: Vec<u64> = runs.iter().map(|r| r["servers"].as_u64().unwrap()).collect();
        assert_eq!(servers, [1, 2, 4], "{check}");
        let held_out: Vec<bool> = runs.iter().map(|r| r["held_out"].as_bool().unwrap()).collect();
        assert_eq!(held_out, [false, true, true]);
    }
    // The slow lane's held-out runs: the replay's p99 wait is within 10 %
    // of the measured one.
    let slow = checks.iter().find(|c| c["lane"] == "slow").unwrap();
    for run in slow["runs"].as_array().unwrap() {
        let (measured, replayed) = (run["measured"]["p99"].as_f64().unwrap(), run["replayed"]["p99"].as_f64().unwrap());
        assert!((replayed - measured).abs() <= 0.10 * measured, "{run}");
    }

    let (code, table, stderr) = run(&["plan", "--bench", report_arg, "--arrivals-per-hour", "420", "--days", "0.2"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(table.contains("replayed through the model") && table.contains("4 worker(s), 12 jobs"), "{table}");
    // Measured or assumed service times, not both: a usage error.
    let (code, _, stderr) = run(&["plan", "--bench", report_arg, "--arrivals-per-hour", "9", "--class", "a=1,fast,2m"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let not_a_report = workspace_root().join("Cargo.toml");
    for (bad, says) in [
        (vec!["plan", "--bench", report_arg, "--arrivals-per-hour", "9", "--bench-workers", "3"], "has no run with 3"),
        (
            vec!["plan", "--bench", not_a_report.to_str().unwrap(), "--arrivals-per-hour", "9"],
            "not a `farm bench` report",
        ),
        (vec!["plan", "--bench", "/nonexistent/bench.json", "--arrivals-per-hour", "9"], "cannot read"),
    ] {
        assert_refused(&bad, says);
    }
}

#[test]
fn dead_letters_are_listed_shown_and_replayed_once_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, _, stderr) = run(&["keys", "create-operator", "--name", "ops", "--data-dir", data]);
    assert_eq!(code, 0, "{stderr}");
    // A job the broker gave up on, and a result that could not be applied.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dead_job = runtime.block_on(async {
        let store = api::Store::connect(&api::Store::sqlite_url(dir.path()), 1).await.unwrap();
        let model = api::store::ModelRow {
            model_id: "m1".into(),
            size_bytes: 684,
            triangles: 12,
            format: "binary".into(),
            created_at_ms: 1,
            owner: Some("acme".into()),
            uploader_key_id: None,
        };
        store.insert_model(&model).await.unwrap();
        let job = api::store::JobRow::queued("j1".into(), "m1".into(), "pla".into(), 3, scheduler::Lane::Slow, 2);
        store.create_job(&job, &job.message()).await.unwrap();
        let letter = api::store::DeadLetter {
            job_id: Some("j1".into()),
            queue: "farm.pricing.slow".into(),
            reason: "delivery_limit".into(),
            payload: job.message(),
        };
        store.record_dead_letter(&letter, 3).await.unwrap();
        let result = api::store::DeadLetter { job_id: None, queue: "farm.pricing.results".into(), ..letter };
        store.record_dead_letter(&result, 4).await.unwrap();
        drop(store);
        job
    });

    let (code, table, stderr) = run(&["dead-letters", "list", "--data-dir", data]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table.contains("j1") && table.contains("delivery_limit") && table.contains("farm.pricing.results"),
        "{table}"
    );
    let (_, json, _) = run(&["dead-letters", "list", "--data-dir", data, "--format", "json"]);
    let letters: Value = serde_json::from_str(&json).unwrap();
    let id_of = |job: Value| letters.as_array().unwrap().iter().find(|l| l["job_id"] == job).unwrap()["id"].to_string();
    let (id, result_id) = (id_of("j1".into()), id_of(Value::Null));
    let (code, shown, _) = run(&["dead-letters", "show", &id, "--data-dir", data]);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["payload"], dead_job.message());

    let (code, replayed, stderr) = run(&["dead-letters", "replay", &id, "--data-dir", data]);
    assert_eq!(code, 0, "{stderr}");
    let new_job = replayed.trim().rsplit(' ').next().unwrap().to_string();
    assert!(replayed.contains("queued job") && new_job != "j1", "{replayed}");
    let (code, again, _) = run(&["dead-letters", "replay", &id, "--data-dir", data]);
    assert_eq!(code, 0);
    assert!(again.contains(&format!("replayed before, as job {new_job}")), "{again}");
    // --all replays what is open: only the lost result, which names no job.
    let (code, all, stderr) = run(&["dead-letters", "replay", "--all", "--data-dir", data]);
    assert_eq!(code, 0, "the lost result has no job and is skipped: {stderr}");
    assert!(all.is_empty(), "{all}");
    assert_refused(&["dead-letters", "replay", &result_id, "--data-dir", data], "could not be replayed");
    assert_refused(&["dead-letters", "replay", "999", "--data-dir", data], "could not be replayed");
    assert_refused(&["dead-letters", "show", "999", "--data-dir", data], "no dead letter has the id 999");
    let wrong = dir.path().join("typo");
    assert_refused(&["dead-letters", "list", "--data-dir", wrong.to_str().unwrap()], "no farm in");

    // The new job has the dead one's inputs and waits in the outbox for the
    // relay of a running API.
    runtime.block_on(async {
        let store = api::Store::connect(&api::Store::sqlite_url(dir.path()), 1).await.unwrap();
        let job = store.job(&new_job).await.unwrap().expect("the replayed job");
        assert_eq!(
            (job.status.as_str(), job.model_id.as_str(), job.quantity, job.lane),
            ("queued", "m1", 3, scheduler::Lane::Slow)
        );
        let batch = store.claim_outbox(10).await.unwrap();
        assert!(batch.rows.iter().any(|row| row.job_id == new_job), "its message is in the outbox");
    });
}

/// `farm profile import` flattens a vendor bundle's printer, print and
/// filament into the preset the slicer harness uses; `farm calibrate` fits
/// synthetic observations (every model printed 20 % slower than estimated,
/// to the gram) and a quote with its corrections says it was calibrated.
#[test]
fn profile_import_and_calibrate_make_a_calibrated_shop_preset() {
    let dir = tempfile::tempdir().unwrap();
    let root = workspace_root();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let bundle = path(&root.join("benches/slicer/vendor/PrusaResearch.ini"));
    let preset = dir.path().join("mk3s.ini");
    let (code, _, stderr) = run(&[
        "profile",
        "import",
        "--bundle",
        &bundle,
        "--printer",
        "Original Prusa i3 MK3S & MK3S+",
        "--print",
        "0.20mm QUALITY @MK3",
        "--filament",
        "Generic PLA",
        "--out",
        &path(&preset),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let expected = std::fs::read_to_string(root.join("benches/slicer/presets/prusa_mk3s_020_quality.ini")).unwrap();
    assert_eq!(std::fs::read_to_string(&preset).unwrap(), expected);
    let (code, _, stderr) = run(&["profile", "import", "--bundle", &bundle, "--printer", "No Such Printer"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("No Such Printer"), "{stderr}");

    // Supports exactly as the profile says, so the quote is the profile's estimate.
    let book = path(&root.join("benches/slicer/price-book.toml"));
    let quote = |model: &str, extra: &[&str]| -> Value {
        let mut args = vec!["quote", model, "--profile", preset.to_str().unwrap(), "--price-book", &book];
        args.extend_from_slice(&["--format", "json"]);
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let models: Vec<String> = [
        "tests/data/cube_20mm.stl",
        "tests/data/corpus/files/trimesh_20mm_xyz_cube.stl",
        "tests/data/corpus/files/prusaslicer_m3x10_screw.stl",
        "tests/data/corpus/files/dcast78_bunny_lowpoly.stl",
        "tests/data/corpus/files/trimesh_angle_block.stl",
    ]
    .iter()
    .map(|m| path(&root.join(m)))
    .collect();
    let mut csv = String::from("model,hours,grams\n");
    let mut quoted = Vec::new();
    for model in &models {
        let q = quote(model, &[]);
        assert_eq!(q["calibrated"], false, "{q}");
        let (time, grams) = (q["print_time_s"].as_f64().unwrap(), q["material_g"].as_f64().unwrap());
        csv.push_str(&format!("{model},{},{grams}\n", time * 1.2 / 3600.0));
        quoted.push(time);
    }
    let observations = dir.path().join("prints.csv");
    std::fs::write(&observations, csv).unwrap();
    let calibration = dir.path().join("calibration.toml");
    let (code, stdout, stderr) = run(&[
        "calibrate",
        "--profile",
        &path(&preset),
        "--observations",
        &path(&observations),
        "--out",
        &path(&calibration),
        "--folds",
        "5",
    ]);
    assert_eq!(code, 0, "{stderr}");
    // "median |time error|:  16.7 % before,   x.x % after (5-fold cross-validated), ..."
    let line = stdout.lines().find(|l| l.starts_with("median |time error|")).expect(&stdout);
    let numbers: Vec<f64> =
        line.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter_map(|w| w.parse().ok()).collect();
    let (before, after) = (numbers[0], numbers[1]);
    assert!((before - 16.7).abs() < 0.2, "{line}");
    assert!(after < 5.0, "the cross-validated error falls: {line}");
    let q = quote(&models[0], &["--calibration", &path(&calibration)]);
    assert_eq!(q["calibrated"], true, "{q}");
    let ratio = q["print_time_s"].as_f64().unwrap() / quoted[0];
    assert!(ratio > 1.1 && ratio < 1.3, "calibrated time over the estimate: {ratio}");
}

#[test]
fn reprice_runs_only_under_the_book_the_farm_prices_with() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (_, book, _) = run(&["price-book", "show"]);
    let current = builtin_version(&book);
    let missing = dir.path().join("no-farm-here");
    assert_refused(&["reprice", "--before-version", &current, "--data-dir", missing.to_str().unwrap()], "no-farm-here");
    let (code, _, stderr) = run(&["keys", "create-operator", "--name", "ops", "--data-dir", data]);
    assert_eq!(code, 0, "{stderr}");
    assert_refused(&["reprice", "--before-version", "shop-1999.01", "--data-dir", data], "not `shop-1999.01`");
    let (code, stdout, stderr) = run(&["reprice", "--before-version", &current, "--data-dir", data]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("0 orders repriced under price book `{current}`")), "{stdout}");
}
