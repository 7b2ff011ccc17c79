//! Issue 16: quotes that hold for a shop's own presets. Each newly read
//! profile key moves the estimate the way PrusaSlicer's setting would,
//! 100 % infill, one orientation per quote, supports never vanishing
//! silently, `profile import` on a real vendor bundle, and `calibrate` on
//! observations whose true correction is known.

use calculator::bundle::{Bundle, BundleLimits};
use calculator::calibration::{self, Observation};
use calculator::{
    FdmProfile, LoadedProfile, PriceBook, PrintSettings, ProcessEstimate, QuoteRequest, QuoteWarning, SupportPolicy,
    analysis_options, fdm, quote, turn_needed,
};
use mesh::{AnalysisOptions, Triangle, analyze_triangles, cuboid, uv_sphere};

fn moved(triangles: Vec<Triangle>, by: [f32; 3]) -> Vec<Triangle> {
    triangles.into_iter().map(|t| t.map(|v| [v[0] + by[0], v[1] + by[1], v[2] + by[2]])).collect()
}

/// A 10 x 10 x 20 column under a 40 x 10 x 5 bar: overhangs, a bridge,
/// thin and wide sections.
fn t_shape() -> Vec<Triangle> {
    let mut t = moved(cuboid([10.0, 10.0, 20.0]), [15.0, 0.0, 0.0]);
    t.extend(moved(cuboid([40.0, 10.0, 5.0]), [0.0, 0.0, 20.0]));
    t
}

fn estimate(triangles: &[Triangle], profile: &FdmProfile) -> ProcessEstimate {
    let options = AnalysisOptions {
        layering: Some(fdm::layering(profile)),
        overhang_angle_deg: fdm::support_angle_deg(profile),
        support: fdm::support_shape(profile),
        ..AnalysisOptions::default()
    };
    fdm::estimate(&analyze_triangles(triangles.to_vec(), &options), profile).unwrap()
}

fn profile(ini: &str) -> FdmProfile {
    FdmProfile::from_ini(ini).unwrap().profile
}

/// How a change of one key moves (time, material): +1 up, -1 down, 0 either.
#[test]
fn each_newly_read_key_moves_the_estimate_the_right_way() {
    let base = "layer_height = 0.2\nfirst_layer_height = 0.2\nfill_density = 20%\nfill_pattern = rectilinear\n\
                perimeters = 2\nslowdown_below_layer_time = 0\n\
                gcode_flavor = marlin2\n";
    let block = cuboid([30.0, 30.0, 12.0]);
    let cases: &[(&str, &str, &str, i32, i32)] = &[
        ("perimeter_extrusion_width", "0.45", "0.7", -1, 0),
        ("infill_extrusion_width", "0.45", "0.7", -1, 0),
        ("solid_infill_extrusion_width", "0.45", "0.7", -1, 0),
        ("top_infill_extrusion_width", "0.4", "0.6", -1, 0),
        ("extrusion_width", "0.45", "0.7", -1, 0),
        ("first_layer_extrusion_width", "0.42", "0.8", -1, 0),
        ("external_perimeter_extrusion_width", "0.45", "0.8", -1, 0),
        ("slowdown_below_layer_time", "0", "60", 1, 0),
        ("filament_max_volumetric_speed", "0", "2", 1, 0),
        ("max_volumetric_speed", "0", "2", 1, 0),
        ("machine_max_acceleration_extruding", "2000", "300", 1, 0),
        ("default_acceleration", "0", "300", 1, 0),
        // Per-role accelerations apply only under a default acceleration.
        ("infill_acceleration", "0\ndefault_acceleration = 1000", "200\ndefault_acceleration = 1000", 1, 0),
        ("machine_max_jerk_x", "10", "2", 1, 0),
        ("retract_length", "0.8", "6", 1, 0),
        ("retract_speed", "60", "10", 1, 0),
        ("retract_lift", "0", "1", 1, 0),
        ("travel_speed_z", "12", "2", 1, 0),
        ("infill_every_layers", "1", "2", -1, 0),
        ("solid_infill_every_layers", "0", "3", 1, 1),
        ("solid_infill_below_area", "0", "2000", 1, 1),
        ("top_solid_min_thickness", "0", "3", 1, 1),
        ("bottom_solid_min_thickness", "0", "3", 1, 1),
        ("skirts", "0", "3", 1, 1),
        ("skirt_distance", "2", "20", 1, 1),
        ("min_skirt_length", "0", "500", 1, 1),
        ("brim_width", "0", "8", 1, 1),
        ("raft_layers", "0", "3", 1, 1),
        ("raft_first_layer_density", "50%\nraft_layers = 3", "100%\nraft_layers = 3", 1, 1),
        ("raft_first_layer_expansion", "0\nraft_layers = 3", "6\nraft_layers = 3", 1, 1),
        ("raft_expansion", "0\nraft_layers = 3", "5\nraft_layers = 3", 1, 1),
        ("extrusion_multiplier", "1", "1.1", 0, 1),
        ("infill_speed", "80", "200", -1, 0),
        ("fill_pattern", "rectilinear", "gyroid", 1, 0),
    ];
    for (key, from, to, time_dir, material_dir) in cases {
        let a = estimate(&block, &profile(&format!("{base}{key} = {from}\n")));
        let b = estimate(&block, &profile(&format!("{base}{key} = {to}\n")));
        let check = |dir: i32, before: f64, after: f64, what: &str| match dir {
            1 => assert!(after > before, "{key} {from} -> {to}: {what} should rise, {before} -> {after}"),
            -1 => assert!(after < before, "{key} {from} -> {to}: {what} should fall, {before} -> {after}"),
            _ => {}
        };
        check(*time_dir, a.print_time_s, b.print_time_s, "time");
        check(*material_dir, a.material_cm3, b.material_cm3, "material");
        assert!(
            *time_dir != 0
                || *material_dir != 0
                || a.print_time_s != b.print_time_s
                || a.material_cm3 != b.material_cm3,
            "{key} {from} -> {to} changed nothing"
        );
    }
    // The cooling floor matters only while a layer is slowed down: a small
    // part with a long minimum layer time prints faster with a higher floor.
    let small = cuboid([10.0, 10.0, 10.0]);
    let cooled = |min_speed: &str| {
        let ini = format!(
            "layer_height = 0.2\nfirst_layer_height = 0.2\nslowdown_below_layer_time = 60\nmin_print_speed = {min_speed}\n"
        );
        estimate(&small, &profile(&ini)).print_time_s
    };
    assert!(cooled("30") < cooled("5"), "min_print_speed 5 -> 30: {} -> {}", cooled("5"), cooled("30"));

    // A box has no slopes; on a sphere's, the slivers narrower than a line
    // are filled only when the vertical shells are kept thick.
    let sphere = uv_sphere(15.0, 64, 32);
    let shells = |on: &str| estimate(&sphere, &profile(&format!("{base}ensure_vertical_shell_thickness = {on}\n")));
    let (thin, thick) = (shells("0"), shells("1"));
    assert!(thick.material_cm3 > thin.material_cm3, "{} -> {}", thin.material_cm3, thick.material_cm3);

    // Supports: their pattern, spacing, interface and build-plate-only rule.
    let t = t_shape();
    let on = format!("{base}support_material = 1\n");
    let support = |extra: &str| estimate(&t, &profile(&format!("{on}{extra}"))).support_cm3;
    assert!(support("support_material_spacing = 1\n") > support("support_material_spacing = 4\n"));
    assert!(support("support_material_pattern = rectilinear-grid\n") > support(""));
    assert!(support("support_material_interface_layers = 5\n") > support("support_material_interface_layers = 1\n"));
    assert_eq!(support("support_material_auto = 0\n"), 0.0, "no enforcers in an STL: no supports");
    assert!(
        support("support_material_contact_distance = 0.4\n") < support("support_material_contact_distance = 0.1\n")
    );
}

/// PrusaSlicer's skirt (`Print::_make_skirt`): loops until the first layer
/// has used `min_skirt_length` mm of filament, round the hull of every layer
/// the skirt is printed on.
#[test]
fn the_skirt_is_as_long_as_prusaslicer_makes_it() {
    let skirt_mm3 = |triangles: &[Triangle], extra: &str| {
        let ini = format!("layer_height = 0.2\nfirst_layer_height = 0.2\nskirts = 1\nskirt_distance = 2\n{extra}");
        let estimate = estimate(triangles, &profile(&ini));
        estimate.breakdown.iter().find(|c| c.feature == "skirt and brim").unwrap().material_cm3 * 1000.0
    };
    let cube = cuboid([10.0, 10.0, 10.0]);
    // 4 mm of 1.75 mm filament is 9.6 mm³, more than one loop round a
    // 10 mm cube holds: a second loop follows.
    let one_loop = skirt_mm3(&cube, "min_skirt_length = 0\nskirt_height = 1\n");
    assert!(one_loop < 9.0, "one loop: {one_loop} mm³");
    let long = skirt_mm3(&cube, "min_skirt_length = 4\nfilament_diameter = 1.75\nskirt_height = 1\n");
    assert!(long >= 4.0 * std::f64::consts::PI / 4.0 * 1.75 * 1.75, "min_skirt_length = 4: {long} mm³");
    assert!(long < 3.0 * one_loop, "no more loops than needed: {long} mm³");
    // A part on a small foot: printed on two layers, the skirt goes round
    // the part above the foot on both.
    let mut footed = moved(cuboid([4.0, 4.0, 0.2]), [8.0, 8.0, 0.0]);
    footed.extend(moved(cuboid([20.0, 20.0, 10.0]), [0.0, 0.0, 0.2]));
    let (low, high) = (skirt_mm3(&footed, "skirt_height = 1\n"), skirt_mm3(&footed, "skirt_height = 2\n"));
    assert!(high > 3.0 * low, "skirt_height 1 -> 2: {low} -> {high} mm³");
}

/// The skirt is printed with the layers it goes round, and PrusaSlicer's
/// cooling slows it with them: on a small part whose layers are slowed to a
/// minimum time, the skirt takes the time cooling would otherwise have
/// added, rather than coming on top of it.
#[test]
fn the_skirt_is_slowed_with_the_layer_it_goes_round() {
    let cube = cuboid([5.0, 5.0, 2.0]);
    let run = |skirts: u32| {
        let ini = format!(
            "layer_height = 0.2\nfirst_layer_height = 0.2\nskirts = {skirts}\nskirt_distance = 2\nskirt_height = 1\n\
             min_skirt_length = 0\nslowdown_below_layer_time = 30\nmin_print_speed = 1\n"
        );
        estimate(&cube, &profile(&ini))
    };
    let (with, without) = (run(3), run(0));
    let skirt_s = time_of(&with, &["skirt and brim"]);
    assert!(skirt_s > 2.0, "three loops round the cube take a while at full speed: {skirt_s} s");
    let added = with.print_time_s - without.print_time_s;
    assert!(added < 0.25 * skirt_s, "the skirt fills the slowed first layer: {added} s added, {skirt_s} s on its own");
}

/// Every key the issue names is read, not ignored.
#[test]
fn no_key_the_estimate_depends_on_is_ignored() {
    let keys = [
        "extrusion_width",
        "first_layer_extrusion_width",
        "perimeter_extrusion_width",
        "external_perimeter_extrusion_width",
        "infill_extrusion_width",
        "solid_infill_extrusion_width",
        "top_infill_extrusion_width",
        "support_material_extrusion_width",
        "slowdown_below_layer_time",
        "min_feature_size",
        "min_print_speed",
        "max_print_speed",
        "filament_max_volumetric_speed",
        "max_volumetric_speed",
        "perimeter_acceleration",
        "infill_acceleration",
        "bridge_acceleration",
        "first_layer_acceleration",
        "default_acceleration",
        "machine_max_acceleration_extruding",
        "machine_max_acceleration_travel",
        "machine_max_acceleration_x",
        "machine_max_feedrate_x",
        "machine_limits_usage",
        "machine_max_jerk_x",
        "machine_max_jerk_y",
        "retract_length",
        "retract_speed",
        "retract_lift",
        "retract_before_travel",
        "retract_layer_change",
        "travel_speed_z",
        "infill_every_layers",
        "solid_infill_every_layers",
        "solid_infill_below_area",
        "fill_angle",
        "top_fill_pattern",
        "bottom_fill_pattern",
        "top_solid_min_thickness",
        "bottom_solid_min_thickness",
        "ensure_vertical_shell_thickness",
        "thin_walls",
        "gap_fill_enabled",
        "skirts",
        "skirt_distance",
        "skirt_height",
        "brim_width",
        "raft_layers",
        "support_material_pattern",
        "support_material_spacing",
        "support_material_contact_distance",
        "support_material_interface_layers",
        "support_material_buildplate_only",
        "support_material_auto",
        "extrusion_multiplier",
        "filament_density",
        "filament_cost",
    ];
    for key in keys {
        assert!(calculator::READ_KEYS.contains(&key), "`{key}` is not read");
    }
}

#[test]
fn a_hundred_percent_infill_is_solid_at_the_infill_speed() {
    let block = cuboid([30.0, 30.0, 12.0]);
    let base = "layer_height = 0.2\nfirst_layer_height = 0.2\nfill_pattern = rectilinear\n";
    let full = estimate(&block, &profile(&format!("{base}fill_density = 100%\n")));
    let sparse = estimate(&block, &profile(&format!("{base}fill_density = 20%\n")));
    // Solid: about the part's volume of plastic.
    assert!(full.material_cm3 > 0.95 * 10.8 && full.material_cm3 < 1.1 * 10.8, "{full:?}");
    // At the infill speed (80 mm/s), not the solid infill's 20 mm/s: well
    // under four times the sparse part's time.
    assert!(full.print_time_s < 3.0 * sparse.print_time_s, "{} vs {}", full.print_time_s, sparse.print_time_s);
    // PrusaSlicer refuses a crossing pattern at 100 %.
    let stars = profile(&format!("{base}fill_density = 100%\nfill_pattern = stars\n"));
    assert!(fdm::check(&stars).is_err());
}

fn priced(triangles: Vec<Triangle>, book: &PriceBook, settings: &PrintSettings) -> calculator::Quote {
    let request = QuoteRequest::new("pla", 1);
    let options = analysis_options(&request, book, settings, AnalysisOptions::default()).unwrap();
    let mut report = analyze_triangles(triangles.clone(), &options);
    if let Some(up_axis) = turn_needed(&report, &request, book) {
        report = analyze_triangles(triangles, &AnalysisOptions { up_axis, ..options });
    }
    quote(&report, &request, book, settings).unwrap()
}

#[test]
fn one_orientation_per_quote() {
    let book = PriceBook::builtin();
    let settings = PrintSettings::default();
    // A 30 x 200 x 240 panel: as the file stands (240 mm tall) it fits only
    // the 350 mm machine; lying on its face it would fit the cheaper 250 mm
    // one, but the estimate slices it as it stands, so it is priced standing
    // on the 350, and the reason names the machine it did not take.
    let panel = priced(cuboid([30.0, 200.0, 240.0]), &book, &settings);
    assert_eq!((panel.machine.name.as_str(), panel.orientation.up_axis), ("fdm-350", 2), "{:?}", panel.orientation);
    assert!(panel.orientation.reason.contains("fdm-250"), "{}", panel.orientation.reason);
    assert_eq!(panel.estimate.layers, 800, "240 mm at 0.3 mm after a 0.35 mm first layer, as it stands");
    // A 400 mm rod lies across the 350 mm bed's diagonal as the file has it:
    // no turn, a rotation about the vertical.
    let rod = priced(cuboid([400.0, 20.0, 20.0]), &book, &settings);
    assert_eq!((rod.machine.name.as_str(), rod.orientation.up_axis), ("fdm-350", 2), "{:?}", rod.orientation);
    assert!(rod.orientation.rotation_deg != 0.0, "{:?}", rod.orientation);
    // A 360 x 200 x 20 plate fits no bed as it lies; standing on its long
    // edge (the file's y axis up, 200 mm tall) it fits the 350 turned
    // across the diagonal: it is estimated standing, and says why.
    let plate = priced(cuboid([360.0, 200.0, 20.0]), &book, &settings);
    assert_eq!((plate.machine.name.as_str(), plate.orientation.up_axis), ("fdm-350", 1), "{:?}", plate.orientation);
    assert!(plate.orientation.reason.contains("turned"), "{}", plate.orientation.reason);
    assert!(plate.estimate.layers > 600, "estimated standing: {}", plate.estimate.layers);
    assert!(
        plate.warnings.iter().all(|w| !matches!(w, QuoteWarning::FitsOnlyOnItsSide { .. })),
        "{:?}",
        plate.warnings
    );
}

#[test]
fn supports_never_vanish_silently() {
    let settings = PrintSettings::default();
    let profile_book = PriceBook { supports: SupportPolicy::Profile, ..PriceBook::builtin() };
    let off = priced(t_shape(), &profile_book, &settings);
    assert_eq!(off.estimate.support_cm3, 0.0);
    let warned = off.warnings.iter().find_map(|w| match w {
        QuoteWarning::UnsupportedOverhangs { area_mm2 } => Some(*area_mm2),
        _ => None,
    });
    assert!(warned.is_some_and(|a| a > 250), "the 300 mm² under the bar is named: {:?}", off.warnings);
    let auto = priced(t_shape(), &PriceBook::builtin(), &settings);
    assert!(auto.estimate.support_cm3 > 0.0 && auto.supports.as_ref().is_some_and(|s| s.priced && !s.profile_on));
    assert!(auto.warnings.iter().any(|w| matches!(w, QuoteWarning::SupportsAdded { .. })), "{:?}", auto.warnings);
    // Priced: more plastic and more time than without them (the total may
    // sit at the minimum order either way for so small a part).
    assert!(auto.estimate.material_cm3 > off.estimate.material_cm3);
    assert!(auto.estimate.print_time_s > off.estimate.print_time_s);
    // A cube needs none: no warning either way.
    let cube = priced(cuboid([20.0; 3]), &profile_book, &settings);
    assert!(cube.warnings.is_empty(), "{:?}", cube.warnings);
}

/// `farm profile import` of the MK3S preset from PrusaSlicer's own bundle
/// gives the flat preset the harness slices with, byte for byte.
#[test]
fn profile_import_flattens_a_vendor_bundle() {
    let bundle_text = include_str!("../../benches/slicer/vendor/PrusaResearch.ini");
    let bundle = Bundle::parse(bundle_text, BundleLimits::default()).unwrap();
    let flat = bundle
        .import(
            "Original Prusa i3 MK3S & MK3S+",
            Some("0.20mm QUALITY @MK3"),
            Some("Generic PLA"),
            BundleLimits::default(),
        )
        .unwrap();
    let expected = include_str!("../../benches/slicer/presets/prusa_mk3s_020_quality.ini");
    assert_eq!(flat.to_ini(), expected);
    let loaded = FdmProfile::from_ini(&flat.to_ini()).unwrap();
    let p = &loaded.profile;
    assert_eq!((p.layer_height, p.nozzle_diameter, p.fill_pattern.as_str()), (0.2, 0.4, "gyroid"));
    assert_eq!(p.slowdown_below_layer_time, 15.0);
    assert!(p.machine_limits_apply() && p.perimeter_acceleration == 800.0, "{p:?}");
    // What stays ignored is what the estimate does not model (seams, wall
    // transitions, anchors, bridging angles, ...); no print host or
    // multi-material key is among them.
    assert!(loaded.ignored_keys.len() <= 30, "most keys are read or irrelevant: {:?}", loaded.ignored_keys);
    for key in ["octoprint_host", "serial_port", "interface_shells", "support_material_synchronize_layers"] {
        assert!(loaded.irrelevant_keys.iter().any(|k| k == key), "{key} is irrelevant: {:?}", loaded.ignored_keys);
    }
    // Defaults: the printer's own print and filament.
    assert!(bundle.import("Original Prusa i3 MK3S & MK3S+", None, None, BundleLimits::default()).is_ok());
}

/// Observations made from known corrections: calibrate finds them, and
/// the cross-validated error falls to almost nothing.
#[test]
fn calibrate_recovers_a_known_correction() {
    let truth_time = [1.25, 0.85, 1.1, 1.0, 1.4, 1.0];
    let truth_material = [1.05, 0.95, 1.0, 1.0, 1.0, 1.0];
    let base = profile("layer_height = 0.2\nfirst_layer_height = 0.2\n");
    let mut observations = Vec::new();
    for (i, size) in [
        [20.0, 20.0, 10.0],
        [40.0, 10.0, 15.0],
        [30.0, 30.0, 5.0],
        [12.0, 12.0, 30.0],
        [50.0, 20.0, 8.0],
        [25.0, 25.0, 25.0],
        [8.0, 8.0, 20.0],
        [60.0, 40.0, 4.0],
        [15.0, 35.0, 12.0],
        [45.0, 45.0, 10.0],
    ]
    .into_iter()
    .enumerate()
    {
        for density in ["15%", "40%"] {
            let p = profile(&format!("layer_height = 0.2\nfirst_layer_height = 0.2\nfill_density = {density}\n"));
            let _ = &base;
            let e = estimate(&cuboid(size), &p);
            let mut truth = e.clone();
            let mut time = 0.0;
            let mut material = 0.0;
            for c in &mut truth.breakdown {
                let k = fdm::FEATURE_CLASSES.iter().position(|(_, f)| f.contains(&c.feature)).unwrap();
                time += c.time_s * truth_time[k];
                material += c.material_cm3 * truth_material[k];
            }
            observations.push(Observation {
                name: format!("{i}-{density}"),
                estimate: e,
                time_s: time,
                material_cm3: material,
            });
        }
    }
    let c = calibration::fit(&observations, 5, "fingerprint").unwrap();
    assert!(c.fit.time_before > 0.05, "the observations differ from the estimate: {:?}", c.fit);
    assert!(c.fit.time_after_cv < 0.02 && c.fit.material_after_cv < 0.02, "{:?}", c.fit);
    for (k, class) in calibration::CLASSES.iter().enumerate() {
        if ["perimeters", "infill"].contains(class) {
            assert!((c.time[k] - truth_time[k]).abs() < 0.12, "{class}: {} vs {}", c.time[k], truth_time[k]);
        }
    }
    // Travel is a few per cent of these blocks' time: the ridge keeps it
    // near 1, but it moves the right way.
    let travel = calibration::CLASSES.iter().position(|c| *c == "travel").unwrap();
    assert!(c.time[travel] > 1.0 && c.time[travel] <= truth_time[travel], "travel: {}", c.time[travel]);
    // The file reads back, and a quote with it says it was calibrated.
    let back = calibration::Calibration::from_toml(&c.to_toml()).unwrap();
    assert_eq!(back.time.map(|v| (v * 1e4).round()), c.time.map(|v| (v * 1e4).round()));
    let settings = PrintSettings { calibration: Some(back), ..PrintSettings::fdm(LoadedProfile::defaults()) };
    let q = priced(cuboid([20.0; 3]), &PriceBook::builtin(), &settings);
    assert!(q.calibrated);
    assert!(q.warnings.iter().any(|w| matches!(w, QuoteWarning::CalibrationForAnotherProfile)));
    assert!(calibration::fit(&observations[..2], 5, "x").is_err(), "too few to cross-validate");
}

/// A square tube `side` mm across, `wall` mm thick, `height` tall, wound
/// outward.
fn square_tube(side: f32, wall: f32, height: f32) -> Vec<Triangle> {
    let outer = [[0.0, 0.0], [side, 0.0], [side, side], [0.0, side]];
    let (near, far) = (wall, side - wall);
    let inner = [[near, near], [far, near], [far, far], [near, far]];
    let at = |p: [f32; 2], z: f32| [p[0], p[1], z];
    let mut t = Vec::new();
    for i in 0..4 {
        let j = (i + 1) % 4;
        let (oi, oj, ii, ij) = (outer[i], outer[j], inner[i], inner[j]);
        // Outer wall out, inner wall in, the top ring up, the bottom ring down.
        t.push([at(oi, 0.0), at(oj, 0.0), at(oj, height)]);
        t.push([at(oi, 0.0), at(oj, height), at(oi, height)]);
        t.push([at(ii, 0.0), at(ij, height), at(ij, 0.0)]);
        t.push([at(ii, 0.0), at(ii, height), at(ij, height)]);
        t.push([at(oi, height), at(oj, height), at(ij, height)]);
        t.push([at(oi, height), at(ij, height), at(ii, height)]);
        t.push([at(oi, 0.0), at(ij, 0.0), at(oj, 0.0)]);
        t.push([at(oi, 0.0), at(ii, 0.0), at(ij, 0.0)]);
    }
    t
}

fn material_of(estimate: &ProcessEstimate, features: &[&str]) -> f64 {
    estimate.breakdown.iter().filter(|c| features.contains(&c.feature)).map(|c| c.material_cm3).sum()
}

fn time_of(estimate: &ProcessEstimate, features: &[&str]) -> f64 {
    estimate.breakdown.iter().filter(|c| features.contains(&c.feature)).map(|c| c.time_s).sum()
}

/// PrusaSlicer's G-code for a 2 mm wall with two loops a side is all
/// perimeters under Arachne (its beads widen over the core), gap fill under
/// the classic generator, and a 3 mm wall keeps a core of sparse infill.
#[test]
fn a_wall_core_narrower_than_a_line_is_in_the_perimeters() {
    let base = "layer_height = 0.2\nfirst_layer_height = 0.2\nfill_density = 15%\nperimeters = 2\n\
                top_solid_layers = 0\nbottom_solid_layers = 0\n";
    let infill = ["solid infill", "top solid infill", "bridge infill", "sparse infill"];
    let thin = square_tube(30.0, 2.0, 10.0);
    let volume_cm3 = (30.0 * 30.0 - 26.0 * 26.0) * 10.0 / 1000.0;

    let arachne = estimate(&thin, &profile(base));
    assert_eq!(material_of(&arachne, &infill), 0.0, "{arachne:?}");
    let loops = material_of(&arachne, &["external perimeters", "perimeters"]);
    assert!(loops > 0.9 * volume_cm3 && loops < 1.1 * volume_cm3, "{loops} cm³ of loops for {volume_cm3} cm³");

    let classic = estimate(&thin, &profile(&format!("{base}perimeter_generator = classic\n")));
    assert!(material_of(&classic, &["gap fill"]) > 0.0, "{classic:?}");
    assert_eq!(material_of(&classic, &infill), 0.0, "{classic:?}");

    let thick = estimate(&square_tube(30.0, 3.0, 10.0), &profile(base));
    assert!(material_of(&thick, &["sparse infill"]) > 0.0, "{thick:?}");
    assert_eq!(material_of(&thick, &["solid infill"]), 0.0, "{thick:?}");
}

/// A wall too thin for its loops is a whole number of beads under Arachne,
/// widened to fill it. PrusaSlicer prints a 1.6 mm tube wall with 0.68 mm
/// lines and two loops a side as two beads, both external perimeters, where
/// filling the wall with loops at their spacing would lay 30 % more path.
#[test]
fn a_thin_tube_wall_is_two_outer_beads_under_arachne() {
    let ini = "nozzle_diameter = 0.6\nlayer_height = 0.3\nfirst_layer_height = 0.3\nperimeters = 2\n\
               extrusion_width = 0.68\nfirst_layer_extrusion_width = 0.68\nexternal_perimeter_extrusion_width = 0.68\n\
               perimeter_extrusion_width = 0.68\nfill_density = 15%\ntop_solid_layers = 0\nbottom_solid_layers = 0\n\
               perimeter_speed = 20\nexternal_perimeter_speed = 20\nsmall_perimeter_speed = 20\nfirst_layer_speed = 20\n\
               cooling = 0\nskirts = 0\n";
    let (side, wall, height) = (30.0, 1.6, 9.0);
    let tube = estimate(&square_tube(side, wall, height), &profile(ini));
    let volume_cm3 = f64::from(side * side - (side - 2.0 * wall).powi(2)) * f64::from(height) / 1000.0;
    let outer = material_of(&tube, &["external perimeters"]);
    assert!(outer > 0.9 * volume_cm3 && outer < 1.1 * volume_cm3, "{outer} cm³ of outer beads for {volume_cm3} cm³");
    assert_eq!(material_of(&tube, &["perimeters", "sparse infill", "solid infill"]), 0.0, "{tube:?}");
    // Two beads a layer, each along the wall's middle, at 20 mm/s.
    let middle = 4.0 * f64::from(side - wall);
    let layers = f64::from(height) / 0.3;
    let expected_s = 2.0 * middle * layers / 20.0;
    let loops_s: f64 = tube.breakdown.iter().filter(|c| c.feature.contains("perimeters")).map(|c| c.time_s).sum();
    assert!((loops_s / expected_s - 1.0).abs() < 0.1, "loops {loops_s} s, two beads {expected_s} s");

    // A narrower bead minimum than the default 85 % of the nozzle lets a
    // third bead into the 0.3 mm left between the two.
    let thin_beads = estimate(&square_tube(side, wall, height), &profile(&format!("{ini}min_bead_width = 0.3\n")));
    let three_s: f64 = thin_beads.breakdown.iter().filter(|c| c.feature.contains("perimeters")).map(|c| c.time_s).sum();
    assert!((three_s / loops_s - 1.5).abs() < 0.1, "three beads {three_s} s, two {loops_s} s");
}

/// Sparse lines are anchored along the perimeter by about the gap between
/// them, whatever the density: in a narrow core the anchors are most of the
/// plastic, so doubling the density far from doubles it; in a wide block it
/// nearly does.
#[test]
fn anchors_weigh_most_in_a_narrow_core() {
    let sparse_at = |triangles: &[Triangle], density: &str| {
        let ini = format!(
            "layer_height = 0.2\nfirst_layer_height = 0.2\nperimeters = 2\nfill_pattern = rectilinear\n\
             fill_density = {density}\ntop_solid_layers = 0\nbottom_solid_layers = 0\n"
        );
        material_of(&estimate(triangles, &profile(&ini)), &["sparse infill"])
    };
    let tube = square_tube(30.0, 3.0, 10.0);
    let block = cuboid([60.0, 60.0, 10.0]);
    let tube_ratio = sparse_at(&tube, "30%") / sparse_at(&tube, "15%");
    let block_ratio = sparse_at(&block, "30%") / sparse_at(&block, "15%");
    assert!(tube_ratio < 1.6, "{tube_ratio}");
    assert!(block_ratio > 1.8 && block_ratio < 2.0, "{block_ratio}");
}

/// In a narrow core every sparse line ends in an anchor move, and both are
/// too short to reach the feed rate. PrusaSlicer 2.5's G-code for the
/// harness's 2.5 mm square tube (30 × 30 × 20) at 0.2 mm, 15 % and two
/// perimeters lays its core's infill as 5,640 moves of 1.74 mm on average:
/// 123 s at their feed rates. Its estimate of the whole part is 293 s above
/// its moves' feed time, most of it in those short moves. The farm's infill
/// must take well over its feed time, and no more than that whole excess on
/// top of it (it took 114 s when the anchors were a share of density).
#[test]
fn a_narrow_core_is_a_zig_zag_of_short_moves() {
    let ini = "layer_height = 0.2\nfirst_layer_height = 0.2\nfill_density = 15%\nperimeters = 2\n";
    let tube = estimate(&square_tube(30.0, 2.5, 20.0), &profile(ini));
    let sparse_s = time_of(&tube, &["sparse infill"]);
    let (feed_s, excess_s) = (123.0, 293.0);
    assert!(sparse_s > 1.5 * feed_s && sparse_s < feed_s + excess_s, "sparse infill {sparse_s} s");
}

/// A long island thinner than its loops (a wing's airfoil, a blade) is laid
/// by Arachne as open lines, each ending in a retracted travel: PrusaSlicer's
/// G-code for the held-out wing retracts about five times a layer with three
/// perimeters. A 40 × 1.6 mm fin with three perimeters must spend at least
/// two more retractions a layer travelling than a 40 × 10 mm block, whose
/// loops close (and whose longer hops alone would make it the slower one).
#[test]
fn a_thin_fin_retracts_at_the_end_of_each_open_line() {
    let ini = "layer_height = 0.2\nfirst_layer_height = 0.2\nperimeters = 3\nretract_length = 2\n\
               retract_speed = 40\nretract_before_travel = 1\nwipe = 0\nretract_lift = 0\n";
    let travel_s = |size: [f32; 3]| time_of(&estimate(&cuboid(size), &profile(ini)), &["travel and retraction"]);
    let (fin, block) = (travel_s([40.0, 1.6, 10.0]), travel_s([40.0, 10.0, 10.0]));
    // 50 layers; a retraction and its restart take at least 2 × 2 mm at 40 mm/s.
    let two_retractions_a_layer_s = 2.0 * 50.0 * (2.0 * 2.0 / 40.0);
    assert!(fin - block > two_retractions_a_layer_s, "fin {fin} s, block {block} s");
}

/// Arachne prints nothing of a part of a layer thinner than
/// `min_feature_size` (25 % of the nozzle): a sliver island, a broken mesh's
/// knife edge, gets no loops and no travel to reach it. Before, being long
/// and thinner than its loops, it also counted as a thin island whose open
/// lines each end in a retraction.
#[test]
fn a_sliver_thinner_than_the_smallest_feature_is_not_printed() {
    let ini = "layer_height = 0.2\nfirst_layer_height = 0.2\nperimeters = 3\nslowdown_below_layer_time = 0\n\
               skirts = 0\nretract_length = 2\nretract_speed = 40\nretract_before_travel = 1\nwipe = 0\n";
    let mut with_sliver = cuboid([20.0, 20.0, 10.0]);
    // 0.05 mm thick, 30 mm beside the block: its own island on every layer.
    with_sliver.extend(moved(cuboid([40.0, 0.05, 10.0]), [0.0, 50.0, 0.0]));
    let walls = ["external perimeters", "perimeters"];
    let travel = |e: &ProcessEstimate| time_of(e, &["travel and retraction"]);
    let dropped = estimate(&with_sliver, &profile(ini));
    // A smallest feature below the sliver's width lets it through.
    let printed = estimate(&with_sliver, &profile(&format!("{ini}min_feature_size = 0.04\n")));
    // Its loops fill it: most of its 0.02 cm³.
    let sliver_cm3 = 40.0 * 0.05 * 10.0 / 1000.0;
    let walls_added = material_of(&printed, &walls) - material_of(&dropped, &walls);
    assert!(walls_added > sliver_cm3 / 2.0, "{walls_added} cm³");
    // 50 layers of a travel to it and three open lines, each a 2 mm
    // retraction and restart at 40 mm/s.
    let retractions_s = 50.0 * 3.0 * (2.0 * 2.0 / 40.0);
    assert!(travel(&printed) - travel(&dropped) > retractions_s, "{} -> {}", travel(&dropped), travel(&printed));
}

/// A square frustum: 30 mm square at the foot, 10 mm at the top, 16 mm
/// high, so each flank rises at 58° and a 0.2 mm layer leaves a 0.125 mm
/// ledge.
fn frustum() -> Vec<Triangle> {
    let b = [[0.0, 0.0, 0.0], [30.0, 0.0, 0.0], [30.0, 30.0, 0.0], [0.0, 30.0, 0.0]];
    let t = [[10.0, 10.0, 16.0], [20.0, 10.0, 16.0], [20.0, 20.0, 16.0], [10.0, 20.0, 16.0]];
    let mut faces = vec![[b[0], b[3], b[2]], [b[0], b[2], b[1]], [t[0], t[1], t[2]], [t[0], t[2], t[3]]];
    for i in 0..4 {
        let j = (i + 1) % 4;
        faces.push([b[i], b[j], t[j]]);
        faces.push([b[i], t[j], t[i]]);
    }
    faces
}

#[test]
fn a_slopes_shell_is_solid_only_where_prusaslicers_opening_leaves_it() {
    let shells = |ini: &str| {
        let solid = |ensure: u8| {
            let p = profile(&format!("{ini}ensure_vertical_shell_thickness = {ensure}\n"));
            material_of(&estimate(&frustum(), &p), &["solid infill", "top solid infill", "bridge infill"])
        };
        (solid(1), solid(0))
    };
    let common = "perimeters = 2\nfill_density = 20%\nfill_pattern = rectilinear\n";
    // A 0.4 mm nozzle at 0.2 mm, 5 top layers: the band is four 0.125 mm
    // ledges, wider than an opened line (1.05 x 0.41 mm): solid.
    let (kept, without) = shells(&format!(
        "{common}nozzle_diameter = 0.4\nlayer_height = 0.2\nfirst_layer_height = 0.2\n\
         top_solid_layers = 5\nbottom_solid_layers = 5\n"
    ));
    assert!(kept > 1.3 * without, "the band is filled: {kept} against {without} without the setting");
    // A 0.8 mm nozzle at 0.4 mm, 4 top layers: three 0.25 mm ledges, under
    // an opened line (1.05 x 0.81 mm): no shell, as without the setting.
    let (dropped, without) = shells(&format!(
        "{common}nozzle_diameter = 0.8\nlayer_height = 0.4\nfirst_layer_height = 0.4\n\
         top_solid_layers = 4\nbottom_solid_layers = 4\n"
    ));
    assert!(dropped < 1.1 * without, "the band is opened away: {dropped} against {without} without the setting");
}

/// A careless preset's absurd minimum shell thickness makes every layer
/// solid, and never an overflowing layer count.
#[test]
fn an_absurd_minimum_shell_thickness_is_all_solid_not_a_panic() {
    let block = cuboid([20.0, 20.0, 10.0]);
    let ini = "layer_height = 0.2\nfirst_layer_height = 0.2\nfill_density = 20%\nfill_pattern = rectilinear\n\
               ensure_vertical_shell_thickness = 1\n";
    let solid = profile(&format!("{ini}fill_density = 100%\n"));
    for key in ["top_solid_min_thickness", "bottom_solid_min_thickness"] {
        let absurd = estimate(&block, &profile(&format!("{ini}{key} = 1e308\n")));
        let all_solid = estimate(&block, &solid);
        let infill = |e: &ProcessEstimate| material_of(e, &["sparse infill"]);
        assert_eq!(infill(&absurd), 0.0, "{key}: no sparse infill left");
        assert!(absurd.material_cm3.is_finite() && absurd.material_cm3 > 0.5 * all_solid.material_cm3, "{key}");
    }
}

/// The brim's loops are summed in closed form, so a careless 10⁹ mm brim
/// (2.5 billion loops, which the old per-loop sum walked one by one) is
/// priced at once; its plastic still grows as the square of its width, the
/// loops' count times their mean length.
#[test]
fn a_huge_brim_is_priced_in_closed_form() {
    let block = cuboid([20.0, 20.0, 5.0]);
    let brim = |width: &str| {
        let p = profile(&format!("layer_height = 0.2\nfirst_layer_height = 0.2\nskirts = 0\nbrim_width = {width}\n"));
        material_of(&estimate(&block, &p), &["skirt and brim"])
    };
    let (wide, huge) = (brim("1e4"), brim("1e9"));
    let squared = huge / wide / 1e10;
    assert!(huge.is_finite() && (squared - 1.0).abs() < 0.01, "{wide} -> {huge}");
}
