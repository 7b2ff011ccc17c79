//! The FDM estimate against PrusaSlicer 2.5's own figures for small parts.
//!
//! The expected values are what `prusa-slicer --export-gcode` printed in
//! its G-code (`; estimated printing time (normal mode)`, `; filament used
//! [cm3]`) for the same shapes, on 2026-11-22, with the profiles below. They
//! are fixed here so the tests need no slicer; `benches/slicer/` runs the
//! full comparison against a live PrusaSlicer. The medians are held to the
//! issue-4 goal (10 % on time, 5 % on material) and each row to twice that.

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

/// One shape under one profile, and PrusaSlicer's time (s) and material
/// (cm³) for it.
struct Row {
    name: &'static str,
    triangles: Vec<Triangle>,
    ini: &'static str,
    prusa_time_s: f64,
    prusa_cm3: f64,
}

fn rows() -> Vec<Row> {
    let row = |name, triangles, ini, prusa_time_s, prusa_cm3| Row { name, triangles, ini, prusa_time_s, prusa_cm3 };
    vec![
        row("cube, defaults", cuboid([20.0; 3]), DEFAULTS, 825.0, 3.59),
        row("cube, 0.2/15%/2", cuboid([20.0; 3]), FINE_SPARSE, 973.0, 2.80),
        row("cube, 0.2/40%/3", cuboid([20.0; 3]), FINE_DENSE, 1423.0, 4.71),
        row("box, defaults", cuboid([40.0, 20.0, 10.0]), DEFAULTS, 943.0, 3.76),
        row("box, 0.2/15%/2", cuboid([40.0, 20.0, 10.0]), FINE_SPARSE, 1050.0, 2.93),
        // 10 x 10 mm: inside three perimeters less than 70 mm² is left,
        // which PrusaSlicer fills solid; with two, it stays sparse.
        row("tower, defaults", cuboid([10.0, 10.0, 80.0]), DEFAULTS, 4125.0, 8.15),
        row("tower, 0.2/15%/2", cuboid([10.0, 10.0, 80.0]), FINE_SPARSE, 2539.0, 3.59),
        row("T, defaults", t_shape(), DEFAULTS, 1386.0, 3.30),
        row("T, 0.2/40%/3", t_shape(), FINE_DENSE, 1970.0, 3.48),
    ]
}

/// The estimate's (time, material) errors against PrusaSlicer's, as shares.
fn errors(row: &Row) -> (f64, f64) {
    let profile = FdmProfile::from_ini(row.ini).unwrap().profile;
    let options = AnalysisOptions {
        layering: Some(fdm::layering(&profile)),
        overhang_angle_deg: fdm::support_angle_deg(&profile),
        ..AnalysisOptions::default()
    };
    let estimate = fdm::estimate(&analyze_triangles(row.triangles.clone(), &options), &profile).unwrap();
    (estimate.print_time_s / row.prusa_time_s - 1.0, estimate.material_cm3 / row.prusa_cm3 - 1.0)
}

/// Every row of a shape within twice the goal's medians (10 % on time, 5 %
/// on material): a row may miss the median goal, as the issue-4 goal allows
/// (it bounds single rows at 25 %), but not by much.
fn check(shape: &str) {
    for row in rows().iter().filter(|r| r.name.starts_with(shape)) {
        let (time, material) = errors(row);
        assert!(
            time.abs() <= 0.20 && material.abs() <= 0.10,
            "{}: time {:+.1} %, material {:+.1} %",
            row.name,
            time * 100.0,
            material * 100.0
        );
    }
}

#[test]
fn the_medians_are_within_the_goal() {
    let (mut time, mut material): (Vec<f64>, Vec<f64>) =
        rows().iter().map(errors).map(|(t, m)| (t.abs(), m.abs())).unzip();
    time.sort_by(f64::total_cmp);
    material.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    assert!(median(&time) <= 0.10 && median(&material) <= 0.05, "time {time:?}, material {material:?}");
}

#[test]
fn a_20mm_cube() {
    check("cube");
}

#[test]
fn a_flat_box() {
    check("box");
}

#[test]
fn a_tower_small_enough_to_be_solid_and_slowed_for_cooling() {
    check("tower");
}

#[test]
fn a_t_shape_with_a_bridge_on_top_of_its_column() {
    check("T");
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
