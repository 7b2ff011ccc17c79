//! Criterion benchmarks of the FDM estimate: the layer model alone on an
//! already sliced part, and the whole local quote path (analysis with
//! slicing, then the estimate) that `farm quote` runs per model.
//!
//! `cargo bench -p calculator --bench estimate`

use std::hint::black_box;

use calculator::{FdmProfile, fdm};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mesh::{AnalysisOptions, analyze, cuboid, uv_sphere, write_binary_stl};

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("sphere-20k", write_binary_stl(&uv_sphere(20.0, 100, 100))),
        ("sphere-1M", write_binary_stl(&uv_sphere(20.0, 1000, 501))),
        // 2000 layers of 0.1 mm: the per-layer model dominates.
        ("tower-200mm-0.1mm", write_binary_stl(&cuboid([20.0, 20.0, 200.0]))),
    ]
}

fn estimate(c: &mut Criterion) {
    let mut group = c.benchmark_group("fdm");
    group.sample_size(10);
    for (name, bytes) in inputs() {
        let ini = if name.starts_with("tower") { "layer_height = 0.1\nfirst_layer_height = 0.1\n" } else { "" };
        let profile = FdmProfile::from_ini(ini).unwrap().profile;
        let options = AnalysisOptions {
            layering: Some(fdm::layering(&profile)),
            overhang_angle_deg: fdm::support_angle_deg(&profile),
            ..AnalysisOptions::default()
        };
        let report = analyze(&bytes, &options).unwrap();
        group.throughput(Throughput::Elements(report.slices.as_ref().map_or(0, |s| s.len() as u64)));
        group.bench_with_input(BenchmarkId::new("estimate", name), &report, |b, report| {
            b.iter(|| fdm::estimate(black_box(report), &profile).unwrap())
        });
        group.throughput(Throughput::Elements(report.triangles));
        group.bench_with_input(BenchmarkId::new("analyze+estimate", name), &bytes, |b, bytes| {
            b.iter(|| fdm::estimate(&analyze(black_box(bytes), &options).unwrap(), &profile).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, estimate);
criterion_main!(benches);
