//! Fuzz target: any bytes through the readers (STL, 3MF, OBJ, found by
//! content) and the full analysis, with
//! slicing and a fit check, must give a report or a typed error, never a
//! panic, a hang or an unbounded allocation. Run it with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run analyze` from `mesh/`; crashes it finds
//! become regression files in `mesh/tests/fuzz_regressions/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod options;

fuzz_target!(|data: &[u8]| {
    let _ = mesh::analyze(data, &options::small());
});
