//! The SLA process model: resin cured a layer at a time, every part on the
//! platform at once.
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
//! The part is built in the orientation the fit check found (standing as in
//! the file when that fits), with no tilt: a real operator tilts parts to
//! cut peel forces, which adds layers this model does not count.

use mesh::{Fit, MeshReport};

use crate::process::{Component, ProcessEstimate, build_extent};
use crate::{Resin, SlaMachine, Technology};

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

    let footprint = (extent[0] * extent[1]).max(1e-9);
    let platform = platform_mm[0] * platform_mm[1] * machine.packing;
    let parts_per_build = (platform / footprint).floor().clamp(1.0, f64::from(u32::MAX)) as u32;
    ProcessEstimate {
        technology: Technology::Sla,
        print_time_s: exposure_s + overhead_s,
        material_cm3: part_cm3 + support_cm3 + waste_cm3,
        support_cm3,
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
}
