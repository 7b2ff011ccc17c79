//! Property tests: invariants that must hold for every mesh, not just the
//! ones we thought of, and a reader that never panics on any bytes.

use mesh::{
    AnalysisOptions, Layering, Limits, ModelFormat, Triangle, analyze, analyze_triangles, cuboid, read_stl, uv_sphere,
    write_binary_stl,
};
use proptest::prelude::*;

/// The triangles as an OBJ file: shared corners listed once, faces by
/// 1-based index (relative, negative, when `relative`), in CRLF lines when
/// `crlf`. Rust prints an `f32` in the fewest digits that read back to it,
/// so the text holds the same numbers as the binary file.
fn to_obj(triangles: &[Triangle], relative: bool, crlf: bool) -> Vec<u8> {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut out = format!("# generated{eol}o part{eol}");
    for (n, t) in triangles.iter().enumerate() {
        for v in t {
            out += &format!("v {} {} {}{eol}", v[0], v[1], v[2]);
        }
        let first = 3 * n + 1;
        out += &if relative {
            format!("f -3 -2 -1{eol}")
        } else {
            format!("f {} {} {}{eol}", first, first + 1, first + 2)
        };
    }
    out.into_bytes()
}

/// The triangles as a 3MF package holding one object.
fn to_3mf(triangles: &[Triangle]) -> Vec<u8> {
    use std::io::Write;
    let mut mesh = String::from("<mesh><vertices>");
    for t in triangles {
        for v in t {
            mesh += &format!(r#"<vertex x="{}" y="{}" z="{}"/>"#, v[0], v[1], v[2]);
        }
    }
    mesh += "</vertices><triangles>";
    for n in 0..triangles.len() {
        mesh += &format!(r#"<triangle v1="{}" v2="{}" v3="{}"/>"#, 3 * n, 3 * n + 1, 3 * n + 2);
    }
    mesh += "</triangles></mesh>";
    let model = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<model unit="millimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">
 <resources><object id="1" type="model">{mesh}</object></resources>
 <build><item objectid="1"/></build>
</model>"#
    );
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("3D/3dmodel.model", options).unwrap();
    zip.write_all(model.as_bytes()).unwrap();
    zip.finish().unwrap().into_inner()
}

fn translated(triangles: &[Triangle], d: [f32; 3]) -> Vec<Triangle> {
    triangles.iter().map(|t| t.map(|v| [v[0] + d[0], v[1] + d[1], v[2] + d[2]])).collect()
}

fn closed_shape() -> impl Strategy<Value = Vec<Triangle>> {
    prop_oneof![
        (1u8..=50, 1u8..=50, 1u8..=50).prop_map(|(x, y, z)| cuboid([f32::from(x), f32::from(y), f32::from(z)])),
        (1u8..=40, 3u32..=40, 2u32..=30).prop_map(|(r, s, n)| uv_sphere(f32::from(r), s, n)),
    ]
}

fn options() -> AnalysisOptions {
    AnalysisOptions {
        layering: Some(Layering::uniform(0.7)),
        build_volumes: vec![[200.0, 200.0, 200.0]],
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn translating_a_closed_mesh_keeps_its_volume_area_and_topology(
        shape in closed_shape(),
        d in (-200i16..200, -200i16..200, -200i16..200),
    ) {
        let here = analyze_triangles(shape.clone(), &options());
        let moved = analyze_triangles(translated(&shape, [f32::from(d.0), f32::from(d.1), f32::from(d.2)]), &options());
        prop_assert!(here.topology.watertight && moved.topology.watertight);
        prop_assert!((here.volume - moved.volume).abs() <= 1e-5 * here.volume, "{} vs {}", here.volume, moved.volume);
        let area = here.geometry.surface_area;
        prop_assert!((area - moved.geometry.surface_area).abs() <= 1e-5 * area);
        prop_assert_eq!(here.topology.shells, moved.topology.shells);
        let (a, b) = (here.slices.unwrap(), moved.slices.unwrap());
        prop_assert_eq!(a.z.len(), b.z.len());
    }

    #[test]
    fn the_shells_and_volumes_of_a_disjoint_union_add_up(a in closed_shape(), b in closed_shape()) {
        let first = analyze_triangles(a.clone(), &options());
        // Far enough apart that the parts cannot touch. The second part is
        // measured where it stands in the union: moved by 500 in `f32`, a
        // part 1 mm across loses digits (its volume moves by about 1e-5).
        let b = translated(&b, [500.0, 0.0, 0.0]);
        let second = analyze_triangles(b.clone(), &options());
        let mut union = a;
        union.extend(b);
        let both = analyze_triangles(union, &AnalysisOptions::default());
        prop_assert_eq!(both.topology.shells, first.topology.shells + second.topology.shells);
        let sum = first.volume + second.volume;
        prop_assert!((both.volume - sum).abs() <= 1e-6 * sum, "{} vs {}", both.volume, sum);
        prop_assert_eq!((both.shells.inverted, both.shells.cavities), (0, 0));
    }

    #[test]
    fn sliced_layers_add_up_to_the_volume(shape in closed_shape()) {
        let report = analyze_triangles(shape, &AnalysisOptions { layering: Some(Layering::uniform(0.05)), ..Default::default() });
        let slices = report.slices.unwrap();
        let layered: f64 = slices.area.iter().map(|a| a * slices.layer_height).sum();
        // Midpoint sampling of the sections converges to the volume.
        prop_assert!((layered - report.volume).abs() <= 0.02 * report.volume, "{} vs {}", layered, report.volume);
        // The traced loops are the same segments, grouped: they add up to
        // each layer's totals, and a closed shape's loops are all closed.
        for (i, loops) in slices.contours.iter().enumerate() {
            let area: f64 = loops.iter().map(|c| c.area).sum();
            let length: f64 = loops.iter().map(|c| c.length).sum();
            let scale = slices.perimeter[i].max(1.0);
            prop_assert!((area - slices.area[i]).abs() <= 1e-9 * scale * scale, "layer {}: {} vs {}", i, area, slices.area[i]);
            prop_assert!((length - slices.perimeter[i]).abs() <= 1e-9 * scale, "layer {}", i);
        }
    }

    #[test]
    fn binary_stl_round_trips(shape in closed_shape()) {
        let soup = read_stl(&write_binary_stl(&shape), &Limits::default()).unwrap();
        prop_assert_eq!(soup.triangles, shape);
    }

    #[test]
    fn every_format_of_the_same_triangles_measures_the_same(
        shape in closed_shape(),
        relative in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let stl = analyze(&write_binary_stl(&shape), &options()).unwrap();
        for (bytes, format) in [(to_obj(&shape, relative, crlf), ModelFormat::Obj), (to_3mf(&shape), ModelFormat::ThreeMf)] {
            let other = analyze(&bytes, &options()).unwrap();
            prop_assert_eq!(other.format, format);
            prop_assert_eq!((other.triangles, other.vertices), (stl.triangles, stl.vertices));
            prop_assert_eq!(other.volume.to_bits(), stl.volume.to_bits(), "{:?}: {} vs {}", format, other.volume, stl.volume);
            prop_assert_eq!(&other.topology, &stl.topology);
            prop_assert_eq!(other.slices.as_ref().map(|s| s.z.len()), stl.slices.as_ref().map(|s| s.z.len()));
        }
    }

    #[test]
    fn damaged_obj_and_3mf_give_a_report_or_a_typed_error(
        shape in closed_shape(),
        cut in 0usize..2000,
        flips in proptest::collection::vec((0usize..4000, any::<u8>()), 0..8),
    ) {
        for mut bytes in [to_obj(&shape, false, false), to_3mf(&shape)] {
            for &(at, value) in &flips {
                let len = bytes.len();
                bytes[at % len] = value;
            }
            bytes.truncate(bytes.len().saturating_sub(cut));
            let _ = analyze(&bytes, &options());
        }
    }

    #[test]
    fn any_bytes_give_a_report_or_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = analyze(&bytes, &options());
    }

    #[test]
    fn damaged_stl_gives_a_report_or_a_typed_error(
        shape in closed_shape(),
        cut in 0usize..2000,
        flips in proptest::collection::vec((0usize..4000, any::<u8>()), 0..8),
    ) {
        let mut bytes = write_binary_stl(&shape);
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        bytes.truncate(bytes.len().saturating_sub(cut));
        let _ = analyze(&bytes, &options());
    }
}

/// Inputs that once broke the reader or the analysis (from fuzzing or bug
/// reports) stay here as files and must keep giving a report or an error.
#[test]
fn fuzz_regressions_still_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "stl") {
            let _ = analyze(&std::fs::read(&path).unwrap(), &options());
            count += 1;
        }
    }
    assert!(count > 0, "regression inputs live in {}", dir.display());
}
