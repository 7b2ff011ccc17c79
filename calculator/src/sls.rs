//! The SLS process model: parts nested in a bed of powder, sintered layer by
//! layer by a laser; each part pays its share of the build.
//!
//! - **Share.** A build fills the chamber to its `packing` share with parts'
//!   bounding boxes, so one part takes `box / (chamber × packing)` of a build
//!   (at most all of it).
//! - **Time** is that share of a full build (the chamber's height in layers,
//!   each recoated and heated, plus the warm-up and cool-down) plus the time
//!   the laser spends on the part itself: its volume over the layer height is
//!   the area it sinters, at `scan_mm2_per_s`.
//! - **Powder** is the sintered part's mass plus the fresh powder that
//!   replaces the aged loose powder around it: the part's share of the
//!   chamber, less the part, at the powder's bulk density, times the
//!   material's `refresh_rate`.
//!
//! No supports: the powder carries the part.

use mesh::{Fit, MeshReport};

use crate::process::{Component, ProcessEstimate, build_extent};
use crate::{Powder, SlsMachine, Technology};

/// The estimate, and the powder's mass per part in grams (the powder's bulk
/// density differs from the part's, so volume alone cannot give it).
pub fn estimate(
    report: &MeshReport,
    machine: &SlsMachine,
    powder: &Powder,
    part_density_g_cm3: f64,
    fit: Option<&Fit>,
    chamber_mm: [f64; 3],
) -> (ProcessEstimate, f64) {
    let extent = build_extent(report, fit);
    let chamber_mm3 = chamber_mm.iter().product::<f64>();
    let box_mm3 = extent.iter().product::<f64>();
    let share = (box_mm3 / (chamber_mm3 * machine.packing)).min(1.0);
    let layers = (extent[2] / machine.layer_height_mm).ceil().max(1.0);

    let chamber_layers = (chamber_mm[2] / machine.layer_height_mm).ceil();
    let recoat_s = share * chamber_layers * machine.layer_overhead_s;
    let overhead_s = share * machine.build_overhead_s;
    let volume_mm3 = report.enclosed_volume_mm3();
    let scan_s = volume_mm3 / machine.layer_height_mm / machine.scan_mm2_per_s;

    let part_cm3 = volume_mm3 / 1000.0;
    let loose_cm3 = (share * chamber_mm3 / 1000.0 - part_cm3).max(0.0);
    let fresh_g = loose_cm3 * powder.powder_density_g_cm3 * powder.refresh_rate;
    let part_g = part_cm3 * part_density_g_cm3;
    // Expressed as part-density volume, so material_cm3 × density = grams.
    let fresh_cm3 = fresh_g / part_density_g_cm3;
    let estimate = ProcessEstimate {
        technology: Technology::Sls,
        print_time_s: recoat_s + overhead_s + scan_s,
        material_cm3: part_cm3 + fresh_cm3,
        support_cm3: 0.0,
        waste_cm3: fresh_cm3,
        layers: layers as u64,
        parts_per_build: 1,
        breakdown: vec![
            Component { feature: "sintering", time_s: scan_s, material_cm3: part_cm3 },
            Component { feature: "recoating (share of the build)", time_s: recoat_s, material_cm3: 0.0 },
            Component { feature: "warm-up and cool-down (share)", time_s: overhead_s, material_cm3: 0.0 },
            Component { feature: "refreshed powder", time_s: 0.0, material_cm3: fresh_cm3 },
        ],
    };
    (estimate, part_g + fresh_g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::{AnalysisOptions, analyze_triangles, cuboid};

    const MACHINE: SlsMachine = SlsMachine {
        layer_height_mm: 0.1,
        layer_overhead_s: 10.0,
        scan_mm2_per_s: 1000.0,
        build_overhead_s: 3600.0,
        packing: 0.1,
    };

    #[test]
    fn a_part_pays_its_share_of_the_build_and_of_the_refreshed_powder() {
        let report = analyze_triangles(cuboid([10.0, 10.0, 10.0]), &AnalysisOptions::default());
        let powder = Powder { refresh_rate: 0.5, powder_density_g_cm3: 0.5 };
        let (e, grams) = estimate(&report, &MACHINE, &powder, 1.0, None, [100.0, 100.0, 100.0]);
        // 1000 mm³ of box in 10⁶ mm³ at 10% packing: a hundredth of a build.
        let share = 0.01;
        let expected = share * (1000.0 * 10.0 + 3600.0) + 1000.0 / 0.1 / 1000.0;
        assert!((e.print_time_s - expected).abs() < 1e-9, "{e:?}");
        // The part's 1 g, and half of the 9 cm³ of loose powder in its share at 0.5 g/cm³.
        assert!((grams - (1.0 + 9.0 * 0.5 * 0.5)).abs() < 1e-9, "{grams}");
        assert!((e.material_cm3 - grams).abs() < 1e-9, "at density 1 the volume is the mass");
        assert_eq!((e.layers, e.parts_per_build, e.support_cm3), (100, 1, 0.0));
    }
}
