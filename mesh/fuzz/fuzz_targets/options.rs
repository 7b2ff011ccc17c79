//! The analysis options every fuzz target runs with: small limits keep each
//! run fast, and the limits themselves are part of what is tested. The
//! supports pass casts 32 × 32 rays instead of 400 × 400: the same code,
//! at a cost that leaves the fuzzer time for the readers (with 400, a tiny
//! part took about 50 ms under the sanitizer, and a run did 17 a second).

pub fn small() -> mesh::AnalysisOptions {
    mesh::AnalysisOptions {
        limits: mesh::Limits { max_bytes: 1 << 20, max_triangles: 20_000, max_layers: 2_000, ..mesh::Limits::default() },
        layering: Some(mesh::Layering { first_layer_height: 0.7, ..mesh::Layering::uniform(0.5) }),
        build_volumes: vec![[100.0, 100.0, 100.0]],
        support: mesh::SupportShape { margin: 0.8, min_gap: 0.2, rays_across: 32 },
        ..mesh::AnalysisOptions::default()
    }
}
