//! Fuzz target for the OBJ reader: the input is OBJ text after an `o`
//! statement that makes content detection choose OBJ every time, so the
//! fuzzer's effort goes into statements, corner forms, negative indices,
//! polygons and their triangulation, not into detection (`analyze` covers
//! that). Run it with `RUSTC_BOOTSTRAP=1 cargo fuzz run obj` from `mesh/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod options;

fuzz_target!(|data: &[u8]| {
    let mut text = b"o fuzz\n".to_vec();
    text.extend_from_slice(data);
    let _ = mesh::analyze(&text, &options::small());
});
