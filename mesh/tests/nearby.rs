//! The default weld closes what an exporter's rounding opened: a UV sphere
//! whose south pole is computed per facet (sin π is not 0 in floating
//! point, so its 80 copies differ around 1e-15) reads watertight, and with
//! `Weld::Exact` (`--weld-tolerance 0`) it stays open, as before.

use mesh::{AnalysisOptions, Triangle, Weld, analyze, write_binary_stl};

const SEGMENTS: u32 = 80;
const RINGS: u32 = 40;
const RADIUS: f64 = 20.0;

/// Every corner computed from its own (ring, segment), poles included.
fn sphere_with_per_facet_pole() -> Vec<Triangle> {
    let point = |ring: u32, segment: u32| -> [f32; 3] {
        let theta = std::f64::consts::PI * f64::from(ring) / f64::from(RINGS);
        let phi = 2.0 * std::f64::consts::PI * f64::from(segment % SEGMENTS) / f64::from(SEGMENTS);
        [
            (RADIUS * theta.sin() * phi.cos()) as f32,
            (RADIUS * theta.sin() * phi.sin()) as f32,
            (RADIUS * theta.cos()) as f32,
        ]
    };
    let mut triangles = Vec::new();
    for ring in 0..RINGS {
        for segment in 0..SEGMENTS {
            let (a, b) = (point(ring, segment), point(ring, segment + 1));
            let (c, d) = (point(ring + 1, segment), point(ring + 1, segment + 1));
            if ring != 0 {
                triangles.push([a, c, b]);
            }
            if ring != RINGS - 1 {
                triangles.push([b, c, d]);
            }
        }
    }
    triangles
}

#[test]
fn the_per_facet_pole_is_open_to_the_exact_weld() {
    let triangles = sphere_with_per_facet_pole();
    // The north pole (sin 0 = 0) is exact; the south pole's copies are not.
    let poles: std::collections::HashSet<[u32; 3]> =
        triangles.iter().flatten().filter(|v| v[2] < -19.99).map(|v| v.map(f32::to_bits)).collect();
    assert_eq!(poles.len(), SEGMENTS as usize);
    let options = AnalysisOptions { weld: Weld::Exact, ..Default::default() };
    let report = analyze(&write_binary_stl(&triangles), &options).unwrap();
    assert_eq!(report.triangles, u64::from(2 * SEGMENTS * (RINGS - 1)));
    assert_eq!(report.topology.boundary_edges, 160);
    assert_eq!(report.topology.nonmanifold_edges, 0);
    assert!(!report.topology.watertight && report.volume_is_estimate);
    assert_eq!(report.vertices, u64::from(2 + SEGMENTS * (RINGS - 1) + SEGMENTS - 1));
    assert_eq!(report.nearby, None);
}

#[test]
fn the_default_weld_closes_it() {
    let triangles = sphere_with_per_facet_pole();
    let report = analyze(&write_binary_stl(&triangles), &AnalysisOptions::default()).unwrap();
    assert_eq!(report.weld, Weld::Nearby);
    let nearby = report.nearby.unwrap();
    assert_eq!(nearby.open_edges_before, 160);
    assert_eq!(nearby.merged_vertices, u64::from(SEGMENTS - 1));
    assert!(report.topology.watertight && !report.volume_is_estimate);
    assert!(report.topology.winding_consistent);
    assert_eq!((report.topology.boundary_edges, report.topology.shells), (0, 1));
    assert_eq!(report.vertices, u64::from(2 + SEGMENTS * (RINGS - 1)));
    assert_eq!(report.shells.inverted, 0);
    assert!(report.volume > 0.99 * 4.0 / 3.0 * std::f64::consts::PI * RADIUS.powi(3) * 0.99);
}

#[test]
fn the_inside_out_one_is_found_inside_out() {
    let triangles: Vec<Triangle> = sphere_with_per_facet_pole().into_iter().map(|[a, b, c]| [a, c, b]).collect();
    let report = analyze(&write_binary_stl(&triangles), &AnalysisOptions::default()).unwrap();
    assert!(report.topology.watertight);
    assert_eq!(report.nearby.unwrap().merged_vertices, u64::from(SEGMENTS - 1));
    assert_eq!(report.shells.inverted, 1);
    assert!(report.geometry.signed_volume < 0.0 && report.volume > 0.0);
}

#[test]
fn a_closed_mesh_is_left_alone_and_a_real_hole_stays_open() {
    let closed = mesh::uv_sphere(10.0, 40, 20);
    let report = analyze(&write_binary_stl(&closed), &AnalysisOptions::default()).unwrap();
    assert_eq!(report.nearby.unwrap().merged_vertices, 0);
    let exact = analyze(&write_binary_stl(&closed), &AnalysisOptions { weld: Weld::Exact, ..Default::default() });
    assert_eq!(report.volume.to_bits(), exact.unwrap().volume.to_bits(), "the same digits as the exact weld");
    // A missing face is a hole no tolerance should close.
    let mut holed = mesh::cuboid([10.0; 3]);
    holed.pop();
    let report = analyze(&write_binary_stl(&holed), &AnalysisOptions::default()).unwrap();
    assert_eq!((report.topology.boundary_edges, report.nearby.unwrap().merged_vertices), (3, 0));
}

#[test]
fn a_copy_further_than_the_tolerance_stays_apart() {
    // One copy of the pole moved by 0.01 mm, 14 times the tolerance (1e-5
    // of the 69 mm diagonal): its two edges and their two partners stay
    // open; the other 79 copies become one vertex.
    let mut triangles = sphere_with_per_facet_pole();
    let pole = |v: &[f32; 3]| v[2] < -19.99;
    let first = triangles.iter().flatten().find(|v| pole(v)).copied().unwrap();
    for t in &mut triangles {
        for v in t.iter_mut().filter(|v| **v == first) {
            v[0] += 0.01;
        }
    }
    let report = analyze(&write_binary_stl(&triangles), &AnalysisOptions::default()).unwrap();
    let nearby = report.nearby.unwrap();
    assert!(nearby.tolerance < 0.001, "{nearby:?}");
    assert_eq!(nearby.merged_vertices, u64::from(SEGMENTS - 2));
    assert_eq!(report.topology.boundary_edges, 4);
}
