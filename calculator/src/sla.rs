//! The SLA process model: resin cured a layer at a time, every part on the
//! platform at once.
//!
//! Two ways in. With only the price book's machine constants
//! ([`estimate`]):
//!
//! - **Time** is the layer count times each layer's exposure plus the peel,
//!   lift and settle between layers; the first `bottom_layers` take the longer
//!   bottom exposure that makes the part stick to the platform. Because the
//!   whole layer cures at once, the time does not depend on the part's area:
//!   a build of several parts takes as long as its tallest one, so the
//!   estimate says how many of this part share one build (the platform's
//!   area times its packing share, over the part's footprint).
//! - **Resin** is the part's volume, plus the support structures (a share,
//!   `support_fill`, of the column under the overhangs that need support),
//!   plus the share lost in the vat and the wash (`waste`).
//!
//! With a PrusaSlicer SLA preset ([`SlaProfile`], [`estimate_with_profile`]),
//! as PrusaSlicer 2.5 estimates it:
//!
//! - **Layers:** the part, raised on its supports by
//!   `support_object_elevation` over a pad `pad_wall_thickness` thick, in
//!   `layer_height` layers.
//! - **Time** per layer: the exposure (`initial_exposure_time` for the first
//!   three layers, then fading over `faded_layers` to `exposure_time`), the
//!   tilt (`fast_tilt_time`, or `slow_tilt_time` and a second's delay when
//!   the layer covers more than `area_fill` of the display), and the tower's
//!   move, five seconds per mm of layer.
//! - **Resin** is the part, the supports under every downward surface (the
//!   raised bottom included): heads by the area held, pillars by its area
//!   times its height over the surface below (the elevation added), and the
//!   pad under the footprint; the supports' and pad's size are fitted
//!   ([`crate::fitted`]). Resin lost on the vat is apart from it.
//!
//! The part is built in the orientation the fit check found (standing as in
//! the file when that fits), with no tilt: a real operator tilts parts to
//! cut peel forces, which adds layers this model does not count.

use mesh::{Fit, MeshReport};

use crate::fitted::{SLA_PAD_MARGIN_MM, SLA_SUPPORT_MM3_PER_MM2, SLA_SUPPORT_MM3_PER_MM2_MM};
use crate::process::{Component, ProcessEstimate, build_extent};
use crate::{ProfileError, Resin, SlaMachine, Technology};

pub fn estimate(
    report: &MeshReport,
    machine: &SlaMachine,
    resin: &Resin,
    fit: Option<&Fit>,
    platform_mm: [f64; 2],
) -> ProcessEstimate {
    let extent = build_extent(report, fit);
    let layers = (extent[2] / machine.layer_height_mm).ceil().max(1.0);
    let bottom = layers.min(f64::from(machine.bottom_layers));
    let normal = layers - bottom;
    let exposure_s = bottom * machine.bottom_exposure_s + normal * machine.exposure_s;
    let overhead_s = layers * machine.layer_overhead_s;

    let part_cm3 = report.enclosed_volume_mm3() / 1000.0;
    let support_cm3 = report.printability.support_volume_estimate * resin.support_fill / 1000.0;
    let waste_cm3 = (part_cm3 + support_cm3) * resin.waste;

    let parts_per_build = parts_per_build(extent, platform_mm, machine.packing);
    ProcessEstimate {
        technology: Technology::Sla,
        print_time_s: exposure_s + overhead_s,
        material_cm3: part_cm3 + support_cm3 + waste_cm3,
        support_cm3,
        waste_cm3,
        layers: layers as u64,
        parts_per_build,
        breakdown: vec![
            Component { feature: "bottom layers", time_s: bottom * machine.bottom_exposure_s, material_cm3: 0.0 },
            Component { feature: "exposure", time_s: normal * machine.exposure_s, material_cm3: part_cm3 },
            Component { feature: "peel and lift", time_s: overhead_s, material_cm3: 0.0 },
            Component { feature: "support", time_s: 0.0, material_cm3: support_cm3 },
            Component { feature: "waste", time_s: 0.0, material_cm3: waste_cm3 },
        ],
    }
}

/// How many footprints fit the packed share of the platform.
fn parts_per_build(extent: [f64; 3], platform_mm: [f64; 2], packing: f64) -> u32 {
    let footprint = (extent[0] * extent[1]).max(1e-9);
    let platform = platform_mm[0] * platform_mm[1] * packing;
    (platform / footprint).floor().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// The settings of a PrusaSlicer SLA preset (printer, `sla_print` and
/// `sla_material`, flattened) that PrusaSlicer's time and resin figures
/// depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaProfile {
    pub layer_height: f64,
    pub initial_layer_height: f64,
    /// Seconds.
    pub exposure_time: f64,
    pub initial_exposure_time: f64,
    pub faded_layers: u32,
    pub fast_tilt_time: f64,
    pub slow_tilt_time: f64,
    /// Percent of the display a layer may cover and still tilt fast.
    pub area_fill: f64,
    pub display_width: f64,
    pub display_height: f64,
    pub supports_enable: bool,
    pub support_object_elevation: f64,
    pub pad_enable: bool,
    pub pad_wall_thickness: f64,
    /// The printer's bed, for the parts a build holds (mm).
    pub bed_mm: [f64; 2],
    pub max_print_height: f64,
    /// g/ml; 0 when the material does not say.
    pub material_density: f64,
}

impl Default for SlaProfile {
    /// PrusaSlicer 2.5's defaults for an SLA printer.
    fn default() -> Self {
        Self {
            layer_height: 0.05,
            initial_layer_height: 0.3,
            exposure_time: 10.0,
            initial_exposure_time: 15.0,
            faded_layers: 10,
            fast_tilt_time: 5.0,
            slow_tilt_time: 8.0,
            area_fill: 50.0,
            display_width: 120.0,
            display_height: 68.0,
            supports_enable: true,
            support_object_elevation: 5.0,
            pad_enable: true,
            pad_wall_thickness: 2.0,
            bed_mm: [120.0, 68.0],
            max_print_height: 150.0,
            material_density: 0.0,
        }
    }
}

/// An SLA preset as loaded, with the keys it did not use.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSlaProfile {
    pub profile: SlaProfile,
    pub ignored_keys: Vec<String>,
}

/// The SLA keys read, for the quote's list of what was not.
pub const SLA_READ_KEYS: &[&str] = &[
    "layer_height",
    "initial_layer_height",
    "exposure_time",
    "initial_exposure_time",
    "faded_layers",
    "fast_tilt_time",
    "slow_tilt_time",
    "area_fill",
    "display_width",
    "display_height",
    "supports_enable",
    "support_object_elevation",
    "pad_enable",
    "pad_wall_thickness",
    "bed_shape",
    "max_print_height",
    "material_density",
];

impl SlaProfile {
    /// Whether a flat preset is for a resin printer (`printer_technology =
    /// SLA`).
    pub fn is_sla(text: &str) -> bool {
        text.lines().any(|line| {
            line.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "printer_technology" && v.trim().eq_ignore_ascii_case("SLA"))
        })
    }

    /// Reads a flat SLA preset. The support generator's own settings (head
    /// and pillar sizes, point density) change the resin a little and are
    /// listed as ignored, as is anything else the estimate does not read.
    pub fn from_ini(text: &str) -> Result<LoadedSlaProfile, ProfileError> {
        let mut p = SlaProfile::default();
        let mut ignored = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
                continue;
            }
            let error = |message: String| ProfileError { line: index + 1, message };
            let (key, value) =
                line.split_once('=').ok_or_else(|| error(format!("expected `key = value`, got `{line}`")))?;
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| error(format!("`{key}` needs {what}, got `{value}`"));
            let number = || {
                value
                    .split(',')
                    .next()
                    .and_then(|v| v.trim().trim_end_matches('%').parse::<f64>().ok())
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| bad("a number"))
            };
            let positive = || number().and_then(|n| if n > 0.0 { Ok(n) } else { Err(bad("a positive number")) });
            let flag = || match value {
                "1" => Ok(true),
                "0" => Ok(false),
                _ => Err(bad("0 or 1")),
            };
            match key {
                "layer_height" => p.layer_height = positive()?,
                "initial_layer_height" => p.initial_layer_height = positive()?,
                "exposure_time" => p.exposure_time = number()?,
                "initial_exposure_time" => p.initial_exposure_time = number()?,
                "faded_layers" => p.faded_layers = number()? as u32,
                "fast_tilt_time" => p.fast_tilt_time = number()?,
                "slow_tilt_time" => p.slow_tilt_time = number()?,
                "area_fill" => p.area_fill = number()?,
                "display_width" => p.display_width = positive()?,
                "display_height" => p.display_height = positive()?,
                "supports_enable" => p.supports_enable = flag()?,
                "support_object_elevation" => p.support_object_elevation = number()?,
                "pad_enable" => p.pad_enable = flag()?,
                "pad_wall_thickness" => p.pad_wall_thickness = number()?,
                "max_print_height" => p.max_print_height = positive()?,
                "material_density" => p.material_density = number()?,
                "bed_shape" => p.bed_mm = bed_size(value).ok_or_else(|| bad("points like 0x0,120x0,120x68"))?,
                _ => {
                    if crate::profile::sla_key_matters(key) {
                        ignored.push(key.to_string());
                    }
                }
            }
        }
        Ok(LoadedSlaProfile { profile: p, ignored_keys: ignored })
    }

    /// Every value the estimate reads, as text, for the quote-cache key.
    pub fn cache_text(&self) -> String {
        format!("{self:?}")
    }
}

/// The extent of a bed given as a polygon's points ("0x0,120x0,120x68,0x68").
fn bed_size(value: &str) -> Option<[f64; 2]> {
    let points: Vec<[f64; 2]> = value
        .split(',')
        .map(|p| {
            let (x, y) = p.trim().split_once('x')?;
            Some([x.trim().parse().ok()?, y.trim().parse().ok()?])
        })
        .collect::<Option<_>>()?;
    let span = |axis: usize| {
        let (lo, hi) =
            points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p[axis]), hi.max(p[axis])));
        hi - lo
    };
    let size = [span(0), span(1)];
    (size.iter().all(|s| s.is_finite() && *s > 0.0)).then_some(size)
}

/// Estimates printing `report`'s part with a PrusaSlicer SLA preset, as
/// PrusaSlicer 2.5 does (see the module's header). The report should carry
/// the part's slices at the profile's layer height, for the layers' areas;
/// without them every layer counts as the part's largest.
pub fn estimate_with_profile(
    report: &MeshReport,
    profile: &SlaProfile,
    resin: &Resin,
    fit: Option<&Fit>,
) -> ProcessEstimate {
    let p = profile;
    let extent = build_extent(report, fit);
    let raised = if p.supports_enable { p.support_object_elevation } else { 0.0 };
    let pad = if p.pad_enable && p.supports_enable { p.pad_wall_thickness } else { 0.0 };
    let height = extent[2] + raised + pad;
    let layers = ((height - p.initial_layer_height) / p.layer_height - 1e-9).ceil().max(0.0) + 1.0;
    let layers_n = layers as usize;

    // Exposure: three first layers, then a fade to the normal exposure.
    let fade_step = (p.initial_exposure_time - p.exposure_time) / f64::from(p.faded_layers + 1);
    let mut exposure_s = 0.0;
    let mut fading = p.initial_exposure_time;
    for layer in 0..layers_n {
        exposure_s += if layer < 3 {
            p.initial_exposure_time
        } else if fading > p.exposure_time {
            fading -= fade_step;
            fading
        } else {
            p.exposure_time
        };
    }

    // Tilt: slow for layers covering more than `area_fill` of the display.
    let limit = p.display_width * p.display_height * p.area_fill / 100.0;
    let areas: Vec<f64> = match &report.slices {
        Some(s) if !s.area.is_empty() => s.area.clone(),
        _ => vec![extent[0] * extent[1]],
    };
    let part_layers = ((extent[2] / p.layer_height).ceil() as usize).max(1);
    let slow_part =
        (0..part_layers).filter(|&i| areas[(i * areas.len() / part_layers).min(areas.len() - 1)] > limit).count();
    // The pad lies under the pillars that reach down to it and under the
    // part's bottom (held by pillars when the part is raised, sitting on the
    // pad when it is not): that area seen from above, grown by the margin as
    // a round outline of that area would be.
    let printability = &report.printability;
    let to_pad = (printability.support_contact_area - printability.support_on_part_area).max(0.0)
        + printability.plate_contact_area;
    let footprint = if to_pad > 0.0 {
        to_pad
            + 2.0 * (std::f64::consts::PI * to_pad).sqrt() * SLA_PAD_MARGIN_MM
            + std::f64::consts::PI * SLA_PAD_MARGIN_MM * SLA_PAD_MARGIN_MM
    } else {
        0.0
    };
    let below = layers_n.saturating_sub(part_layers);
    let slow_below =
        if footprint > limit && pad > 0.0 { ((pad / p.layer_height).ceil() as usize).min(below) } else { 0 };
    let slow = (slow_part + slow_below) as f64;
    let tilt_s = (layers - slow) * p.fast_tilt_time + slow * (p.slow_tilt_time + 1.0);
    let tower_s = layers * p.layer_height * 5.0;

    // Resin: the part, supports under every downward surface (the raised
    // bottom too), the pad under the footprint, and the vat's waste.
    let part_cm3 = report.enclosed_volume_mm3() / 1000.0;
    let downward = printability.overhang_area + if raised > 0.0 { printability.plate_contact_area } else { 0.0 };
    // The columns' area × height: from the surface below each overhang,
    // and the elevation under every downward face.
    let columns = printability.support_column_volume + raised * downward;
    let support_cm3 = if p.supports_enable {
        (SLA_SUPPORT_MM3_PER_MM2 * downward + SLA_SUPPORT_MM3_PER_MM2_MM * columns) / 1000.0
    } else {
        0.0
    };
    let pad_cm3 = footprint * pad / 1000.0;
    let waste_cm3 = (part_cm3 + support_cm3 + pad_cm3) * resin.waste;
    let parts_per_build = parts_per_build(extent, p.bed_mm, 0.6);
    ProcessEstimate {
        technology: Technology::Sla,
        print_time_s: exposure_s + tilt_s + tower_s,
        material_cm3: part_cm3 + support_cm3 + pad_cm3 + waste_cm3,
        support_cm3: support_cm3 + pad_cm3,
        waste_cm3,
        layers: layers as u64,
        parts_per_build,
        breakdown: vec![
            Component { feature: "exposure", time_s: exposure_s, material_cm3: part_cm3 },
            Component { feature: "tilt", time_s: tilt_s, material_cm3: 0.0 },
            Component { feature: "tower moves", time_s: tower_s, material_cm3: 0.0 },
            Component { feature: "support", time_s: 0.0, material_cm3: support_cm3 },
            Component { feature: "pad", time_s: 0.0, material_cm3: pad_cm3 },
            Component { feature: "waste", time_s: 0.0, material_cm3: waste_cm3 },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::{AnalysisOptions, analyze_triangles, cuboid};

    const MACHINE: SlaMachine = SlaMachine {
        layer_height_mm: 0.05,
        exposure_s: 2.0,
        bottom_layers: 4,
        bottom_exposure_s: 20.0,
        layer_overhead_s: 5.0,
        packing: 0.5,
    };

    #[test]
    fn time_follows_the_height_and_resin_the_volume() {
        let report = analyze_triangles(cuboid([10.0, 10.0, 10.0]), &AnalysisOptions::default());
        let resin = Resin { support_fill: 0.1, waste: 0.1 };
        let e = estimate(&report, &MACHINE, &resin, None, [100.0, 100.0]);
        assert_eq!(e.layers, 200);
        assert!((e.print_time_s - (4.0 * 20.0 + 196.0 * 2.0 + 200.0 * 5.0)).abs() < 1e-9, "{e:?}");
        // A cube on the plate needs no support: 1 cm³ plus 10% waste.
        assert!((e.material_cm3 - 1.1).abs() < 1e-9 && e.support_cm3 == 0.0, "{e:?}");
        // Half of a 100 x 100 platform holds 50 footprints of 10 x 10.
        assert_eq!(e.parts_per_build, 50);
        assert_eq!(e.machine_time_s(50), e.print_time_s);
        assert_eq!(e.machine_time_s(51), 2.0 * e.print_time_s);
        let twice_as_tall = analyze_triangles(cuboid([10.0, 10.0, 20.0]), &AnalysisOptions::default());
        assert!(estimate(&twice_as_tall, &MACHINE, &resin, None, [100.0, 100.0]).print_time_s > 1.9 * e.print_time_s);
    }

    /// PrusaSlicer 2.5's SL1S at 0.05 mm on a 20 mm cube: 520 layers (20 mm
    /// raised 5 mm over a 1 mm pad), 2,651.9 s (its `.sl1`'s `printTime`).
    #[test]
    fn a_prusaslicer_preset_times_the_raised_part_and_its_pad() {
        let ini = "printer_technology = SLA\nlayer_height = 0.05\ninitial_layer_height = 0.05\n\
                   exposure_time = 2\ninitial_exposure_time = 25\nfast_tilt_time = 2.5\nslow_tilt_time = 5\n\
                   area_fill = 45\ndisplay_width = 128\ndisplay_height = 81\npad_wall_thickness = 1\n\
                   support_pillar_diameter = 1\nbed_shape = 0.5x0.5,127.5x0.5,127.5x80.5,0.5x80.5\n";
        assert!(SlaProfile::is_sla(ini));
        let loaded = SlaProfile::from_ini(ini).unwrap();
        assert_eq!(loaded.ignored_keys, vec!["support_pillar_diameter"]);
        assert_eq!(loaded.profile.bed_mm, [127.0, 80.0]);
        let report = analyze_triangles(cuboid([20.0; 3]), &AnalysisOptions::default());
        let e = estimate_with_profile(&report, &loaded.profile, &Resin { support_fill: 0.0, waste: 0.0 }, None);
        assert_eq!(e.layers, 520);
        assert!((e.print_time_s / 2651.9 - 1.0).abs() < 0.005, "{e:?}");
        assert!(e.material_cm3 > 8.0 && e.support_cm3 > 0.0, "{e:?}");
        let err = SlaProfile::from_ini("exposure_time = fast\n").unwrap_err();
        assert_eq!(err.line, 1);
    }

    #[test]
    fn resin_grows_with_the_supports_elevation_and_pad_and_waste_is_apart() {
        let report = analyze_triangles(cuboid([20.0; 3]), &AnalysisOptions::default());
        let resin = |extra: &str, waste: f64| {
            let ini = format!("printer_technology = SLA\nlayer_height = 0.05\n{extra}");
            let profile = SlaProfile::from_ini(&ini).unwrap().profile;
            estimate_with_profile(&report, &profile, &Resin { support_fill: 0.0, waste }, None)
        };
        let bare = resin("supports_enable = 0\n", 0.0);
        assert!((bare.material_cm3 - 8.0).abs() < 1e-9 && bare.support_cm3 == 0.0, "{bare:?}");
        let raised_5 = resin("support_object_elevation = 5\npad_wall_thickness = 1\n", 0.0);
        let raised_10 = resin("support_object_elevation = 10\npad_wall_thickness = 1\n", 0.0);
        let thick_pad = resin("support_object_elevation = 5\npad_wall_thickness = 2\n", 0.0);
        assert!(bare.material_cm3 < raised_5.material_cm3, "supports and a pad cost resin");
        assert!(raised_5.material_cm3 < raised_10.material_cm3, "longer pillars cost more");
        assert!(raised_5.material_cm3 < thick_pad.material_cm3, "a thicker pad costs more");
        let wasted = resin("support_object_elevation = 5\npad_wall_thickness = 1\n", 0.1);
        assert!((wasted.waste_cm3 - 0.1 * raised_5.material_cm3).abs() < 1e-9, "{wasted:?}");
        assert!((wasted.material_cm3 - raised_5.material_cm3 - wasted.waste_cm3).abs() < 1e-9);
    }
}
