//! 3MF and OBJ, read from bytes whose answers are known exactly: files are
//! generated here, so every figure below follows from their numbers.

use std::io::Write;

use mesh::{AnalysisOptions, AnalyzeError, Limits, ModelFormat, ReadErrorKind, Units, analyze, inspect};

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
 <Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>
</Relationships>"#;

/// A zip package of these parts, deflated.
fn package(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in parts {
        zip.start_file(*name, options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn three_mf(model: &str) -> Vec<u8> {
    package(&[("_rels/.rels", RELS), ("3D/3dmodel.model", model)])
}

/// An axis-aligned box from the origin as a 3MF `<mesh>`: 8 vertices, 12
/// triangles wound outwards.
fn box_mesh(x: f64, y: f64, z: f64) -> String {
    let mut out = String::from("<mesh><vertices>");
    for i in 0..8 {
        let p = [if i & 1 == 0 { 0.0 } else { x }, if i & 2 == 0 { 0.0 } else { y }, if i & 4 == 0 { 0.0 } else { z }];
        out += &format!(r#"<vertex x="{}" y="{}" z="{}"/>"#, p[0], p[1], p[2]);
    }
    out += "</vertices><triangles>";
    for [a, b, c, d] in [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]] {
        out += &format!(r#"<triangle v1="{a}" v2="{b}" v3="{c}"/><triangle v1="{a}" v2="{c}" v3="{d}"/>"#);
    }
    out + "</triangles></mesh>"
}

fn model(unit: &str, resources: &str, build: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<model unit="{unit}" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">
 <resources>{resources}</resources>
 <build>{build}</build>
</model>"#
    )
}

fn translate(x: f64, y: f64, z: f64) -> String {
    format!("1 0 0 0 1 0 0 0 1 {x} {y} {z}")
}

fn read_error(bytes: &[u8], limits: Limits) -> ReadErrorKind {
    match analyze(bytes, &AnalysisOptions { limits, ..Default::default() }) {
        Err(AnalyzeError::Read(e)) => e.kind().clone(),
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn a_3mf_with_several_objects_and_translated_build_items() {
    let resources = format!(
        r#"<object id="1" name="cube" type="model">{}</object><object id="2" name="slab" type="model">{}</object>"#,
        box_mesh(10.0, 10.0, 10.0),
        box_mesh(20.0, 10.0, 5.0)
    );
    let build = format!(
        r#"<item objectid="1" transform="{}"/><item objectid="2"/><item objectid="1" transform="{}"/>"#,
        translate(100.0, 0.0, 0.0),
        translate(0.0, 50.0, 2.5)
    );
    let bytes = three_mf(&model("millimeter", &resources, &build));
    let report = analyze(&bytes, &AnalysisOptions::default()).unwrap();
    assert_eq!(report.format, ModelFormat::ThreeMf);
    assert_eq!(report.format.as_str(), "3mf");
    assert_eq!(report.triangles, 36);
    assert_eq!(report.vertices, 24);
    assert_eq!(report.volume, 3000.0);
    assert_eq!(report.geometry.surface_area, 600.0 + 700.0 + 600.0);
    assert!(report.topology.watertight);
    assert_eq!(report.topology.shells, 3);
    assert_eq!(report.geometry.bounding_box.min, [0.0, 0.0, 0.0]);
    assert_eq!(report.geometry.bounding_box.max, [110.0, 60.0, 12.5]);
    assert_eq!(report.units_applied, Some(Units::Millimetre));
    let names: Vec<&str> = report.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["cube", "slab", "cube"]);
    for o in &report.objects {
        assert_eq!((o.triangles, o.shells, o.watertight), (12, 1, true), "{o:?}");
        // Summed about the whole part's centre, as the part's volume is.
        assert!((o.volume - 1000.0).abs() < 1e-9, "{o:?}");
    }
    for (o, area) in report.objects.iter().zip([600.0, 700.0, 600.0]) {
        assert!((o.surface_area - area).abs() < 1e-9, "{o:?}");
    }
    assert_eq!(report.objects[0].bounding_box.min, [100.0, 0.0, 0.0]);
    assert_eq!(report.objects[2].bounding_box.max, [10.0, 60.0, 12.5]);
    // What the API stores: the same format and count, no triangles kept.
    let info = inspect(&bytes, &Limits::default()).unwrap();
    assert_eq!((info.format, info.triangles, info.objects.len()), (ModelFormat::ThreeMf, 36, 3));
}

#[test]
fn a_3mf_in_inches_is_measured_in_mm() {
    let resources = format!(r#"<object id="7">{}</object>"#, box_mesh(1.0, 2.0, 0.5));
    let bytes = three_mf(&model("inch", &resources, r#"<item objectid="7"/>"#));
    // Asking for another unit changes nothing: the file declares its own.
    let asked = AnalysisOptions { units: Some(Units::Metre), ..Default::default() };
    for options in [AnalysisOptions::default(), asked] {
        let report = analyze(&bytes, &options).unwrap();
        assert_eq!(report.units_applied, Some(Units::Inch));
        let mm = |inches: f64| f64::from((inches * 25.4) as f32);
        assert_eq!(report.geometry.bounding_box.max, [mm(1.0), mm(2.0), mm(0.5)]);
        let exact = mm(1.0) * mm(2.0) * mm(0.5);
        assert!((report.volume - exact).abs() <= 1e-12 * exact, "{} vs {exact}", report.volume);
        assert!((report.volume - 16_387.064).abs() < 0.01, "one cubic inch is 16387.064 mm³");
        assert_eq!(report.objects[0].name, "object 7");
    }
}

#[test]
fn components_place_objects_and_a_mirror_keeps_the_volume_positive() {
    // Object 3 is an assembly: the cube, and the cube mirrored in x and
    // moved to sit beside it. A build item lifts the assembly by 5.
    let resources = format!(
        r#"<object id="1" type="model">{}</object>
           <object id="3" name="pair"><components>
             <component objectid="1"/>
             <component objectid="1" transform="-1 0 0 0 1 0 0 0 1 30 0 0"/>
           </components></object>
           <object id="4" type="support">{}</object>"#,
        box_mesh(10.0, 10.0, 10.0),
        box_mesh(1.0, 1.0, 1.0)
    );
    let build = format!(r#"<item objectid="3" transform="{}"/><item objectid="4"/>"#, translate(0.0, 0.0, 5.0));
    let report = analyze(&three_mf(&model("millimeter", &resources, &build)), &AnalysisOptions::default()).unwrap();
    assert_eq!(report.triangles, 24);
    assert_eq!(report.volume, 2000.0);
    assert_eq!(report.geometry.signed_volume, 2000.0);
    assert_eq!(report.shells.inverted, 0);
    assert_eq!(report.geometry.bounding_box.min, [0.0, 0.0, 5.0]);
    assert_eq!(report.geometry.bounding_box.max, [30.0, 10.0, 15.0]);
    assert_eq!(report.objects.len(), 1);
    assert_eq!((report.objects[0].name.as_str(), report.objects[0].shells), ("pair", 2));
    assert_eq!(report.warnings.len(), 1, "the support object is left out: {:?}", report.warnings);
}

#[test]
fn component_fan_outs_cost_what_they_emit_not_their_instances() {
    // Ten components per level, nine levels: a billion instances of an
    // object with no triangles, from a file of a few kilobytes. Nothing is
    // walked for them: the file holds no triangles.
    let mut resources = String::from(r#"<object id="1"><mesh><vertices/><triangles/></mesh></object>"#);
    for level in 2..=10 {
        resources += &format!(r#"<object id="{level}"><components>"#);
        for i in 0..10 {
            resources +=
                &format!(r#"<component objectid="{}" transform="{}"/>"#, level - 1, translate(f64::from(i), 0.0, 0.0));
        }
        resources += "</components></object>";
    }
    let bytes = three_mf(&model("millimeter", &resources, r#"<item objectid="10"/>"#));
    assert!(bytes.len() < 4096, "{} bytes", bytes.len());
    assert_eq!(read_error(&bytes, Limits::default()), ReadErrorKind::Empty);

    // A triangle of an object listing 5,000 vertices, placed 400 times: the
    // triangles are placed corner by corner, not the whole list each time.
    let mut vertices = String::new();
    for i in 0..5_000 {
        vertices += &format!(r#"<vertex x="{i}" y="0" z="0"/>"#);
    }
    let sliver = format!(
        r#"<object id="1"><mesh><vertices>{vertices}<vertex x="0" y="1" z="0"/></vertices><triangles><triangle v1="0" v2="1" v3="5000"/></triangles></mesh></object>"#
    );
    let mut row = String::from(r#"<object id="2"><components>"#);
    for i in 0..20 {
        row += &format!(r#"<component objectid="1" transform="{}"/>"#, translate(0.0, 0.0, f64::from(i)));
    }
    row += r#"</components></object><object id="3"><components>"#;
    for i in 0..20 {
        row += &format!(r#"<component objectid="2" transform="{}"/>"#, translate(0.0, 10.0 * f64::from(i), 0.0));
    }
    row += "</components></object>";
    let bytes = three_mf(&model("millimeter", &format!("{sliver}{row}"), r#"<item objectid="3"/>"#));
    let report = analyze(&bytes, &AnalysisOptions::default()).unwrap();
    assert_eq!(report.triangles, 400);
    assert_eq!(report.geometry.bounding_box.min, [0.0, 0.0, 0.0]);
    assert_eq!(report.geometry.bounding_box.max, [1.0, 191.0, 19.0]);
}

#[test]
fn a_component_in_another_part_is_followed() {
    // As Bambu Studio writes it: the root part places an object whose
    // component lives in 3D/Objects/object_1.model.
    let root = model(
        "millimeter",
        r#"<object id="2"><components><component xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06" p:path="/3D/Objects/object_1.model" objectid="1"/></components></object>"#,
        r#"<item objectid="2"/>"#,
    );
    let part = model("millimeter", &format!(r#"<object id="1">{}</object>"#, box_mesh(4.0, 5.0, 6.0)), "");
    let bytes = package(&[("_rels/.rels", RELS), ("3D/3dmodel.model", &root), ("3D/Objects/object_1.model", &part)]);
    let report = analyze(&bytes, &AnalysisOptions::default()).unwrap();
    assert_eq!((report.triangles, report.volume), (12, 120.0));
}

#[test]
fn broken_3mf_gives_typed_errors() {
    let cube = box_mesh(1.0, 1.0, 1.0);
    let bad_index = cube.replace(r#"v3="3""#, r#"v3="8""#);
    let cases = [
        model("millimeter", &format!(r#"<object id="1">{bad_index}</object>"#), r#"<item objectid="1"/>"#),
        model("millimeter", &format!(r#"<object id="1">{cube}</object>"#), r#"<item objectid="9"/>"#),
        model("parsec", &format!(r#"<object id="1">{cube}</object>"#), r#"<item objectid="1"/>"#),
        model(
            "millimeter",
            r#"<object id="1"><components><component objectid="2"/></components></object>
               <object id="2"><components><component objectid="1"/></components></object>"#,
            r#"<item objectid="1"/>"#,
        ),
        model("millimeter", &format!(r#"<object id="1">{cube}</object>"#), r#"<item objectid="1" transform="1 0 0"/>"#),
        "<model><resources><object id=\"1\"><mesh><vertices><vertex x=\"1\"".to_string(),
    ];
    for (i, text) in cases.iter().enumerate() {
        let kind = read_error(&three_mf(text), Limits::default());
        assert!(matches!(kind, ReadErrorKind::ThreeMf { .. }), "case {i}: {kind:?}");
    }
    let no_model = package(&[("_rels/.rels", RELS)]);
    assert!(matches!(read_error(&no_model, Limits::default()), ReadErrorKind::ThreeMf { .. }));
    let not_a_zip = b"PK\x03\x04 and then nothing a zip reader could use".to_vec();
    assert!(matches!(read_error(&not_a_zip, Limits::default()), ReadErrorKind::Zip { .. }));
}

#[test]
fn zip_bombs_are_refused_before_and_while_inflating() {
    let resources = format!(r#"<object id="1">{}</object>"#, box_mesh(1.0, 1.0, 1.0));
    let good = three_mf(&model("millimeter", &resources, r#"<item objectid="1"/>"#));
    // Too many entries: the directory is checked before anything is read.
    let few = Limits { max_zip_entries: 1, ..Limits::default() };
    assert!(matches!(read_error(&good, few), ReadErrorKind::ZipLimit { what: "the number of entries", value: 2, .. }));
    // More than the budget, by the sizes the directory declares.
    let small = Limits { max_unzipped_bytes: 500, ..Limits::default() };
    assert!(matches!(read_error(&good, small), ReadErrorKind::ZipLimit { what: "the declared inflated size", .. }));
    // A high ratio: 8 MiB of spaces deflate about a thousand times.
    let padded = model("millimeter", &resources, r#"<item objectid="1"/>"#).replace("<build>", &" ".repeat(8 << 20));
    let bomb = three_mf(&padded);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    assert!(matches!(
        read_error(&bomb, Limits::default()),
        ReadErrorKind::ZipLimit { what: "an entry's compression ratio", .. }
    ));
    // A header that lies: the model part declares 100 bytes and inflates to
    // more. The zip reader stops at its declared size (our own reader,
    // under it, stops at the budget: see the unit test in threemf.rs).
    let mut lying = good.clone();
    let real = model("millimeter", &resources, r#"<item objectid="1"/>"#).len() as u32;
    let mut patched = 0;
    for at in 0..lying.len() - 4 {
        if lying[at..at + 4] == real.to_le_bytes() {
            lying[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "the local and the central header");
    let kind = read_error(&lying, Limits::default());
    let stopped = match &kind {
        ReadErrorKind::ZipLimit { what, value, limit } => {
            (*what, *value, *limit) == ("the bytes an entry inflates to", 101, 100)
        }
        ReadErrorKind::Zip { message } => message.contains("larger than its declared uncompressed size"),
        _ => false,
    };
    assert!(stopped, "{kind:?}");
    assert!(analyze(&good, &AnalysisOptions::default()).is_ok());
}

const OBJ_CUBE: &str = "# a 2 mm cube: quads, negative indices, every corner form, CRLF\r
mtllib cube.mtl\r
o first\r
v 0 0 0\r
v 2 0 0\r
v 2 2 0\r
v 0 2 0\r
v 0 0 2\r
v 2 0 2\r
v 2 2 2\r
v 0 2 2\r
vt 0 0\r
vt 1 0\r
vt 1 1\r
vn 0 0 -1\r
usemtl grey\r
s off\r
f 1/1/1 4/2/1 3/3/1 2/1/1\r
f -4//1 -3//1 -2//1 -1//1\r
f 1/1 2/2 6/3 5/1\r
g sides\r
f 4 8 7 3\r
f 1 5 \\\r
  8 4\r
f -7 -6 -2 -3\r
";

#[test]
fn an_obj_with_quads_negative_indices_and_every_corner_form() {
    let report = analyze(OBJ_CUBE.as_bytes(), &AnalysisOptions::default()).unwrap();
    assert_eq!(report.format, ModelFormat::Obj);
    assert_eq!((report.triangles, report.vertices), (12, 8));
    assert!(report.topology.watertight && report.topology.winding_consistent);
    assert_eq!(report.volume, 8.0);
    assert_eq!(report.geometry.signed_volume, 8.0);
    assert_eq!(report.geometry.surface_area, 24.0);
    assert_eq!(report.units_applied, None);
    // `o first` holds the first three faces; with an `o` in the file, `g`
    // does not start an object.
    let objects: Vec<(&str, u64)> = report.objects.iter().map(|o| (o.name.as_str(), o.triangles)).collect();
    assert_eq!(objects, [("first", 12)]);
}

#[test]
fn obj_groups_are_objects_when_there_is_no_o() {
    let two = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\ng a\nf 1 3 2\nf 1 2 4\ng b\nf 1 4 3\nf 2 3 4\n";
    let report = analyze(two.as_bytes(), &AnalysisOptions::default()).unwrap();
    let objects: Vec<(&str, u64)> = report.objects.iter().map(|o| (o.name.as_str(), o.triangles)).collect();
    assert_eq!(objects, [("a", 2), ("b", 2)]);
    let info = inspect(two.as_bytes(), &Limits::default()).unwrap();
    let ranges: Vec<(u64, u64)> = info.objects.iter().map(|o| (o.first_triangle, o.triangles)).collect();
    assert_eq!(ranges, [(0, 2), (2, 2)]);
    assert!(report.topology.watertight);
    assert_eq!(report.volume, 1.0 / 6.0);
}

#[test]
fn broken_obj_gives_typed_errors() {
    let cases: [(&str, u64); 5] = [
        ("v 0 0 0\nv 1 0 0\nf 1 2\n", 3),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 0\n", 4),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -1 -2 -4\n", 4),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", 4),
        ("v 0 0 0\nv 1 zero 0\n", 2),
    ];
    for (text, line) in cases {
        let kind = read_error(text.as_bytes(), Limits::default());
        assert!(matches!(kind, ReadErrorKind::ObjSyntax { line: l, .. } if l == line), "{text:?}: {kind:?}");
    }
    let big = format!("v 0 0 0\nv 1 0 0\nv 0 1 0\nf {}\n", "1 2 3 ".repeat(10));
    let limits = Limits { max_polygon_vertices: 16, ..Limits::default() };
    assert!(matches!(read_error(big.as_bytes(), limits), ReadErrorKind::PolygonTooLarge { line: 4, vertices: 17, .. }));
    let long = format!("v 0 0 0 {}\n", "0".repeat(5000));
    let limits = Limits { max_line_bytes: 1000, ..Limits::default() };
    assert!(matches!(read_error(long.as_bytes(), limits), ReadErrorKind::LineTooLong { line: 1, .. }));
    let limits = Limits { max_vertices: 2, ..Limits::default() };
    assert!(matches!(read_error(b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", limits), ReadErrorKind::TooManyVertices { .. }));
}

#[test]
fn the_format_comes_from_the_bytes_not_the_name() {
    // The same bytes, whatever a caller calls them: a 3MF named .stl, an
    // OBJ named .3mf. Only the bytes reach the engine.
    let resources = format!(r#"<object id="1">{}</object>"#, box_mesh(1.0, 1.0, 1.0));
    let tmf = three_mf(&model("millimeter", &resources, r#"<item objectid="1"/>"#));
    assert_eq!(inspect(&tmf, &Limits::default()).unwrap().format, ModelFormat::ThreeMf);
    assert_eq!(inspect(OBJ_CUBE.as_bytes(), &Limits::default()).unwrap().format, ModelFormat::Obj);
    let stl = mesh::write_binary_stl(&mesh::cuboid([1.0; 3]));
    assert_eq!(inspect(&stl, &Limits::default()).unwrap().format, ModelFormat::Binary);
}

#[test]
fn hostile_obj_and_3mf_get_typed_errors_and_bounded_work() {
    // A face names vertex 4 before any vertex is read, and the file ends
    // with three: refused, not an index out of bounds.
    let kind = read_error(b"f 1 2 4\nv 0 0 0\nv 1 0 0\nv 0 1 0\n", Limits::default());
    assert!(matches!(kind, ReadErrorKind::ObjSyntax { line: 1, .. }), "{kind:?}");
    // A hundred thousand empty groups cost one entry.
    let groups = format!("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n{}", "g\n".repeat(100_000));
    let report = analyze(groups.as_bytes(), &AnalysisOptions::default()).unwrap();
    assert_eq!((report.triangles, report.objects.len()), (1, 1));

    let cube = format!(r#"<object id="1">{}</object>"#, box_mesh(1.0, 1.0, 1.0));
    // Every number finite, the placed corners beyond f32.
    let huge = r#"<item objectid="1" transform="1e300 0 0 0 1e300 0 0 0 1e300 0 0 0"/>"#;
    let kind = read_error(&three_mf(&model("millimeter", &cube, huge)), Limits::default());
    assert!(matches!(kind, ReadErrorKind::NonFiniteCoordinate { .. }), "{kind:?}");
    // Unclosed elements, and elements nested past any model's depth.
    let unclosed = format!("{}{}", model("millimeter", &cube, r#"<item objectid="1"/>"#), "<a>".repeat(10));
    assert!(matches!(read_error(&three_mf(&unclosed), Limits::default()), ReadErrorKind::ThreeMf { .. }));
    let deep =
        model("millimeter", &format!("{cube}{}{}", "<a>".repeat(100), "</a>".repeat(100)), r#"<item objectid="1"/>"#);
    let kind = read_error(&three_mf(&deep), Limits::default());
    assert!(format!("{kind:?}").contains("nest deeper"), "{kind:?}");
    // What the parts hold is held to the memory budget, printed or not.
    let tight = Limits { memory_budget: 200, ..Limits::default() };
    let err = inspect(&three_mf(&model("millimeter", &cube, r#"<item objectid="1"/>"#)), &tight).unwrap_err();
    assert!(err.to_string().contains("memory budget"), "{err}");

    // One part named in two spellings is one part, read once.
    let root = model(
        "millimeter",
        r#"<object id="2"><components xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06">
             <component p:path="/3D/Part.model" objectid="1"/>
             <component p:path="/3d/PART.MODEL" objectid="1" transform="1 0 0 0 1 0 0 0 1 5 0 0"/>
           </components></object>"#,
        r#"<item objectid="2"/>"#,
    );
    let part = model("millimeter", &cube, "");
    let bytes = package(&[("_rels/.rels", RELS), ("3D/3dmodel.model", &root), ("3D/Part.model", &part)]);
    let report = analyze(&bytes, &AnalysisOptions::default()).unwrap();
    assert_eq!((report.triangles, report.volume), (24, 2.0));
}
