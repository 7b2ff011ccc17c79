//! Criterion benchmarks of the mesh engine's stages: reading, welding,
//! topology, the whole analysis, and slicing, on generated UV spheres and on
//! the corpus's two large composite plates.
//!
//! `cargo bench -p mesh --bench analysis`; set `MESH_BENCH_4M=1` to add the
//! 4M-triangle sphere (a 200 MB file in memory).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mesh::{
    AnalysisOptions, IndexedMesh, Layering, Limits, Topology, analyze, read_stl, slice, uv_sphere, write_binary_stl,
};

fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut sizes = vec![("sphere-100k", 224u32, 224u32), ("sphere-1M", 1000, 501)];
    if std::env::var("MESH_BENCH_4M").is_ok() {
        sizes.push(("sphere-4M", 2000, 1001));
    }
    let mut inputs: Vec<(String, Vec<u8>)> =
        sizes.into_iter().map(|(name, s, r)| (name.to_string(), write_binary_stl(&uv_sphere(20.0, s, r)))).collect();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/corpus/files");
    for plate in ["composite_plate_benchy_robot_disc_gunwale.stl", "composite_plate_m3x10_screw_x33.stl"] {
        let bytes = std::fs::read(corpus.join(plate)).expect("the corpus is part of the repository");
        inputs.push((plate.trim_end_matches(".stl").to_string(), bytes));
    }
    inputs
}

fn stages(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("mesh");
    group.sample_size(10);
    for (name, bytes) in inputs() {
        let soup = read_stl(&bytes, &limits).unwrap();
        let triangles = soup.triangles.len() as u64;
        group.throughput(Throughput::Elements(triangles));
        group.bench_with_input(BenchmarkId::new("read", &name), &bytes, |b, bytes| {
            b.iter(|| read_stl(black_box(bytes), &limits).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("weld", &name), &soup.triangles, |b, t| {
            b.iter(|| IndexedMesh::weld(black_box(t)))
        });
        let indexed = IndexedMesh::weld(&soup.triangles);
        group.bench_with_input(BenchmarkId::new("topology", &name), &indexed, |b, m| {
            b.iter(|| Topology::with_labels(black_box(m)))
        });
        group.bench_with_input(BenchmarkId::new("analyze", &name), &bytes, |b, bytes| {
            b.iter(|| analyze(black_box(bytes), &AnalysisOptions::default()).unwrap())
        });
        let report = analyze(&bytes, &AnalysisOptions::default()).unwrap();
        let z = (report.geometry.bounding_box.min[2], report.geometry.bounding_box.max[2]);
        group.bench_with_input(BenchmarkId::new("slice-0.2mm", &name), &soup.triangles, |b, t| {
            b.iter(|| slice(black_box(t), None, z, Layering::uniform(0.2), 100_000).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
