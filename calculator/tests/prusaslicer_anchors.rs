//! The FDM estimate against PrusaSlicer 2.5's own figures for small parts.
//!
//! The expected values are what `prusa-slicer --export-gcode` printed in
//! its G-code (`; estimated printing time (normal mode)`, `; filament used
//! [cm3]`) for the same shapes, on 2026-11-22, with the profiles below. They
//! are fixed here so the tests need no slicer; `benches/slicer/` runs the
//! full comparison against a live PrusaSlicer. The tolerances are the
//! goal's: 10% on time, 5% on material.

use calculator::{FdmProfile, fdm};
use mesh::{AnalysisOptions, Triangle, analyze_triangles, cuboid};

/// PrusaSlicer's defaults (0.3 mm layers, 20% stars, 3 perimeters).
const DEFAULTS: &str = "";
/// 0.2 mm layers, 15% infill, 2 perimeters.
const FINE_SPARSE: &str = "layer_height = 0.2\nfirst_layer_height = 0.2\nfill_density = 15%\nperimeters = 2\n";
/// 0.2 mm layers, 40% infill.
const FINE_DENSE: &str = "layer_height = 0.2\nfirst_layer_height = 0.2\nfill_density = 40%\n";

fn moved(triangles: Vec<Triangle>, by: [f32; 3]) -> Vec<Triangle> {
    triangles.into_iter().map(|t| t.map(|v| [v[0] + by[0], v[1] + by[1], v[2] + by[2]])).collect()
}

fn box_at(size: [f32; 3], at: [f32; 3]) -> Vec<Triangle> {
    moved(cuboid(size), at)
}

/// A 10 x 10 x 20 column under a 40 x 10 x 5 bar.
fn t_shape() -> Vec<Triangle> {
    let mut t = box_at([10.0, 10.0, 20.0], [15.0, 0.0, 0.0]);
    t.extend(box_at([40.0, 10.0, 5.0], [0.0, 0.0, 20.0]));
    t
}

/// A 30 mm cube with a closed 20 mm void in its middle.
fn hollow_cube() -> Vec<Triangle> {
    let mut t = cuboid([30.0; 3]);
    t.extend(box_at([20.0; 3], [5.0; 3]).into_iter().map(|[a, b, c]| [a, c, b]));
    t
}

fn check(name: &str, triangles: Vec<Triangle>, ini: &str, prusa_time_s: f64, prusa_cm3: f64) {
    let profile = FdmProfile::from_ini(ini).unwrap().profile;
    let options = AnalysisOptions {
        layering: Some(fdm::layering(&profile)),
        overhang_angle_deg: fdm::support_angle_deg(&profile),
        ..AnalysisOptions::default()
    };
    let estimate = fdm::estimate(&analyze_triangles(triangles, &options), &profile).unwrap();
    let time_error = estimate.print_time_s / prusa_time_s - 1.0;
    let material_error = estimate.material_cm3 / prusa_cm3 - 1.0;
    assert!(
        time_error.abs() <= 0.10 && material_error.abs() <= 0.05,
        "{name}: {:.0} s vs PrusaSlicer {prusa_time_s} s ({:+.1}%), {:.2} cm³ vs {prusa_cm3} ({:+.1}%)\n{:#?}",
        estimate.print_time_s,
        time_error * 100.0,
        estimate.material_cm3,
        material_error * 100.0,
        estimate.breakdown
    );
}

#[test]
fn a_20mm_cube() {
    check("cube, defaults", cuboid([20.0; 3]), DEFAULTS, 825.0, 3.59);
    check("cube, 0.2/15%/2", cuboid([20.0; 3]), FINE_SPARSE, 973.0, 2.80);
    check("cube, 0.2/40%/3", cuboid([20.0; 3]), FINE_DENSE, 1423.0, 4.71);
}

#[test]
fn a_flat_box() {
    check("box, defaults", cuboid([40.0, 20.0, 10.0]), DEFAULTS, 943.0, 3.76);
    check("box, 0.2/15%/2", cuboid([40.0, 20.0, 10.0]), FINE_SPARSE, 1050.0, 2.93);
}

#[test]
fn a_tower_small_enough_to_be_solid_and_slowed_for_cooling() {
    // 10 x 10 mm: inside three perimeters less than 70 mm² is left, which
    // PrusaSlicer fills solid; with two, it stays sparse.
    check("tower, defaults", cuboid([10.0, 10.0, 80.0]), DEFAULTS, 4125.0, 8.15);
    check("tower, 0.2/15%/2", cuboid([10.0, 10.0, 80.0]), FINE_SPARSE, 2539.0, 3.59);
}

#[test]
fn a_t_shape_with_a_bridge_on_top_of_its_column() {
    check("T, defaults", t_shape(), DEFAULTS, 1386.0, 3.30);
    check("T, 0.2/40%/3", t_shape(), FINE_DENSE, 1970.0, 3.48);
}

#[test]
fn a_hollow_cube_within_the_outer_limit() {
    // The void's second set of loops and skins costs travel the model only
    // approximates: this shape is held to the goal's worst-case bound.
    let profile = FdmProfile::default();
    let options = AnalysisOptions { layering: Some(fdm::layering(&profile)), ..AnalysisOptions::default() };
    let estimate = fdm::estimate(&analyze_triangles(hollow_cube(), &options), &profile).unwrap();
    assert!((estimate.print_time_s / 2799.0 - 1.0).abs() <= 0.25, "{estimate:#?}");
    assert!((estimate.material_cm3 / 11.09 - 1.0).abs() <= 0.10, "{estimate:#?}");
}
