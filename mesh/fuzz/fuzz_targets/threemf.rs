//! Fuzz target for the 3MF reader's XML and package logic: the input is the
//! text of the root model part (and, after a NUL byte, of a second part at
//! `/3D/Objects/object_1.model` that components may name), stored in a
//! valid zip here, so every run reaches the XML parser, the object graph,
//! the transforms and the limits instead of stopping at a broken zip. The
//! zip layer itself is fuzzed by `analyze`, seeded with 3MF files. Run it
//! with `RUSTC_BOOTSTRAP=1 cargo fuzz run threemf` from `mesh/`.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

mod options;

const RELS: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
 <Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>
</Relationships>"#;

fn package(root: &[u8], other: Option<&[u8]>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut parts = vec![("_rels/.rels", RELS), ("3D/3dmodel.model", root)];
    parts.extend(other.map(|other| ("3D/Objects/object_1.model", other)));
    for (name, bytes) in parts {
        zip.start_file(name, stored).expect("a fixed name");
        zip.write_all(bytes).expect("writing to memory");
    }
    zip.finish().expect("writing to memory").into_inner()
}

fuzz_target!(|data: &[u8]| {
    let mut split = data.splitn(2, |&b| b == 0);
    let root = split.next().unwrap_or_default();
    let bytes = package(root, split.next());
    let _ = mesh::analyze(&bytes, &options::small());
});
