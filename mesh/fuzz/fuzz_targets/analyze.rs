//! Fuzz target: any bytes through the readers (STL, 3MF, OBJ, found by
//! content) and the full analysis, with
//! slicing and a fit check, must give a report or a typed error, never a
//! panic, a hang or an unbounded allocation. Run it with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run analyze` from `mesh/`; crashes it finds
//! become regression files in `mesh/tests/fuzz_regressions/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = mesh::AnalysisOptions {
        // Small limits keep every run fast; the limits themselves are part of
        // what is being tested.
        limits: mesh::Limits { max_bytes: 1 << 20, max_triangles: 20_000, max_layers: 2_000, ..mesh::Limits::default() },
        layering: Some(mesh::Layering { first_layer_height: 0.7, layer_height: 0.5 }),
        build_volumes: vec![[100.0, 100.0, 100.0]],
        ..mesh::AnalysisOptions::default()
    };
    let _ = mesh::analyze(data, &options);
});
