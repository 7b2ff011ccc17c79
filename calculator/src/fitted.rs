//! Every constant of the process models that was fitted to PrusaSlicer 2.5
//! rather than read from it: its value, where it came from, and the rows it
//! was fitted on. Nothing else in the crate holds a fitted number.
//!
//! The harness in `benches/slicer/` splits its rows before anything is
//! fitted (`benches/slicer/split.toml`; `NARROW_INFILL_MM`,
//! `RETRACTIONS_PER_CONTOUR`, the sparse infill's anchors and turns,
//! `THIN_ISLAND_ELONGATION` and the SLA constants have been fitted on its
//! fitting sets, each says where it comes from): the **fitting set** is the models
//! and presets marked `fit`, the **held-out set** those marked `held-out`,
//! and a held-out row shares neither its model nor its preset with a fitting
//! row. BENCHMARKS.md reports the held-out figures as the result. "Issue 4
//! harness" means the 119 rows (17 models × 7 variants of PrusaSlicer's
//! defaults) the estimator was first fitted on; those rows are all in the
//! fitting set of the split.

/// A fitted constant and its provenance, so the docs can list them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fitted {
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
    /// What it stands for in the model.
    pub meaning: &'static str,
    /// The rows it was fitted on.
    pub fitted_on: &'static str,
}

macro_rules! fitted {
    ($( $(#[$doc:meta])* $name:ident = $value:expr, $unit:expr, $meaning:expr, $on:expr; )*) => {
        $( $(#[$doc])* pub const $name: f64 = $value; )*
        /// Every fitted constant, in declaration order.
        pub const ALL: &[Fitted] = &[
            $( Fitted { name: stringify!($name), value: $value, unit: $unit, meaning: $meaning, fitted_on: $on }, )*
        ];
    };
}

const ISSUE_4: &str = "issue 4 harness (119 rows, PrusaSlicer defaults and six variants; all in the fitting set)";
/// Not refitted on the fitting set of `benches/slicer/split.toml`: of the
/// FDM constants only `NARROW_INFILL_MM`, `RETRACTIONS_PER_CONTOUR`,
/// `INFILL_ANCHOR_OF_GAP`, `INFILL_TURN_OF_JERK` and `THIN_ISLAND_ELONGATION`
/// have been so far (BENCHMARKS.md).
const DERIVED_ISSUE_4: &str =
    "derived from issue 4's base fill (0.15) over the default pattern's line density (0.124); not refitted";
/// The fitting set of `benches/slicer/split.toml` (BENCHMARKS.md, issue 16).
const SPLIT_FIT: &str = "fitting set of benches/slicer/split.toml (382 rows compared of 414), issue 16";
/// The same fitting set with the four thin-walled models added on 2026-12-05
/// (BENCHMARKS.md, issue 16).
const SPLIT_FIT_GROWN: &str =
    "fitting set of benches/slicer/split.toml with its thin-walled models (478 rows compared of 518), issue 16";
/// The same fitting set with its raft variants added on 2026-12-05
/// (twenty-first session; BENCHMARKS.md, issue 16).
const SPLIT_FIT_RAFT: &str = "fitting set of benches/slicer/split.toml with its raft variants (v_fit_raft*), issue 16";
/// The SLA fitting set of `benches/slicer/split.toml` (BENCHMARKS.md, issue 16).
const SLA_SPLIT_FIT: &str = "SLA fitting set of benches/slicer/split.toml (24 rows: 8 models × 3 SL1/SL1S presets) \
     by benches/slicer/fit_sla.py, issue 16";

fitted! {
    /// How far a raft's grid closes the holes of the part's first layer, in
    /// grid cells (the support spacing plus a line) beyond the raft's own
    /// expansion. PrusaSlicer fills every cell of its support grid that the
    /// footprint touches, and the contact layers of the fitting set's Ø40
    /// and Ø50 tubes lose about two cells across each hole's edge. On the
    /// fitting set's 60 raft rows 0, 1, 2 and 3 cells gave a median
    /// material error of 3.00 / 2.18 / 1.59 / 1.59 % (MK3S, 3 layers) and
    /// 5.29 / 4.32 / 3.65 / 3.61 % (0.6 mm nozzle, 5 layers).
    RAFT_HOLE_CLOSING_CELLS = 2.0, "cells", "a raft's grid closing the first layer's holes", SPLIT_FIT_RAFT;
    /// Share of the support columns the base fills, over the density the
    /// support pattern's spacing gives (the sheath and the grid's walls).
    SUPPORT_BASE_FILL_FACTOR = 1.2, "", "support base volume over its line density", DERIVED_ISSUE_4;
    /// Volume of the dense interface layers over their nominal volume.
    SUPPORT_INTERFACE_FILL = 1.1, "", "support interface volume over nominal", ISSUE_4;
    /// PrusaSlicer grows each overhang's contact area and closes gaps between
    /// nearby ones, so a narrow overhang is held by a wide column.
    SUPPORT_MARGIN_MM = 3.5, "mm", "margin of a support column around its overhang", ISSUE_4;
    /// Typical straight runs of support lines before a turn.
    SUPPORT_BASE_SEGMENT_MM = 5.0, "mm", "run of a support base line", ISSUE_4;
    SUPPORT_INTERFACE_SEGMENT_MM = 2.5, "mm", "run of a support interface line", ISSUE_4;
    /// Moves between features in a layer: to the seam, loop to loop,
    /// perimeters to infill, between infill runs.
    TRAVELS_PER_LAYER = 1.0, "", "travel moves per layer", ISSUE_4;
    TRAVELS_PER_CONTOUR = 5.3, "", "travel moves per island or hole and layer", ISSUE_4;
    /// 3.2 from issue 4, when a retraction cost its length over its speed
    /// and nothing else. Once retractions were timed as PrusaSlicer's
    /// estimate times them (accelerated at the retract limit, the wipe, Z
    /// lifts at the Z axis's limits), refitted on the split's fitting set
    /// (382 rows) by trying 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5 and 3.2:
    /// median time error 3.88 % at 0.75, 3.66 % at 1.0, 4.02 % at 1.25 and
    /// 4.92 % at 3.2. It agrees with PrusaSlicer's G-code: a one-contour
    /// part (the fitting set's cube20 and tower10x80) retracts about twice a
    /// layer, once for its travels and once at the layer change.
    RETRACTIONS_PER_CONTOUR = 1.0, "", "retracted travels per island or hole and layer", SPLIT_FIT;
    /// Every sparse-infill line ends in an anchor move along the perimeter,
    /// a stop of its own: the anchors' path is this share of the gap
    /// between lines (spacing / density) per line. It replaced a fitted
    /// 0.025 of extra density (issue 4) on 2026-12-05, refitted with
    /// `INFILL_TURN_OF_JERK` on the grown fitting set (478 rows), median
    /// time error (rows beyond 20 %): 0.025 of density and 2 jerks before,
    /// 3.62 % (22); share 1.0 at 2, 3, 4 jerks 4.07, 4.33, 4.62 %; 0.5 at
    /// 1.0, 1.25, 1.5, 2.5 jerks 3.77, 3.69, 3.68, 4.07 %; 0.75 at 1.25
    /// 3.96 %; 0.3 at 0.75, **1.0**, 1.5 jerks 3.57, **3.53 % (16)**,
    /// 3.62 %; 0.2 at 0.75, 1.0 3.54, 3.56 %; 0.1 at 1.0 3.59 %.
    /// `INFILL_RUN_MM` was tried again beside them (5, 7.5, 10, 12.5, 15 mm:
    /// 3.75, 3.53, 3.49, 3.64, 3.68 %) and left at 7.5.
    INFILL_ANCHOR_OF_GAP = 0.3, "", "anchor path of a sparse-infill line over the gap between lines", SPLIT_FIT_GROWN;
    /// Infill reaches this share of a line spacing into the innermost loop.
    INFILL_OVERLAP_OF_SPACING = 0.25, "", "infill overlap into the last perimeter", ISSUE_4;
    /// Typical run of a crossing sparse-infill pattern between stops.
    INFILL_RUN_MM = 7.5, "mm", "run of crossing sparse infill between stops", ISSUE_4;
    /// What a curved sparse pattern's constant turning adds per mm.
    CURVED_INFILL_S_PER_MM = 0.0135, "s/mm", "gyroid's planner slowdown", ISSUE_4;
    /// Exposed skins narrower than this many nozzle widths are not filled.
    SKIN_MIN_WIDTH_OF_NOZZLE = 0.75, "nozzles", "narrowest skin the slicer keeps", ISSUE_4;
    /// Exposed skin wider than this on average (area over contour length) is
    /// a top surface or a bridge; narrower rings are plain solid infill.
    WIDE_SURFACE_MM = 2.0, "mm", "narrowest exposure that is a surface of its own", ISSUE_4;
    /// Sparse infill's lines and anchors start and end at this speed, in
    /// multiples of the machine's XY jerk: about the jerk itself, where the
    /// zig-zag turns sharply. 2.0 from issue 4, when the anchors were extra
    /// density rather than moves; refitted with `INFILL_ANCHOR_OF_GAP`.
    INFILL_TURN_OF_JERK = 1.0, "jerks", "speed of sparse infill at its turns", SPLIT_FIT_GROWN;
    /// An island whose infill region is narrower than this on average (twice
    /// its area over its contours' length) is filled solid. 2.5 from issue
    /// 4; refitted on the split's fitting set (382 rows) by trying 2.5, 2.0,
    /// 1.5, 1.2 and 0.8: rows beyond 20 % 38, 33, 30, 30, 30; 1.5 was the
    /// largest value on the plateau (medians 4.3 % time, 2.4 % material).
    /// Refitted again once Arachne's perimeters took the cores narrower than
    /// a line, on the fitting set grown by four thin-walled models (478 rows
    /// compared): median time error 3.77 % at 0 (never), 3.77 % at 0.45,
    /// **3.72 % at 0.6**, 3.77 % at 0.75, 3.87 % at 0.9, 1.2 and 1.5; 0.6 also
    /// has the lowest material median (2.59 %) and 29 rows beyond 20 %
    /// (28-33 for the others). PrusaSlicer's G-code fills a square tube's
    /// 0.8 mm core with sparse infill, not solid.
    NARROW_INFILL_MM = 0.6, "mm", "narrowest island that gets sparse infill", SPLIT_FIT_GROWN;
    /// An island thinner than its loops is long, and lays its inner loops
    /// as open lines, when its outline squared exceeds this many times its
    /// area (a rectangle about 6:1; a circle is 4π). Tried on the fitting
    /// set (478 rows) with the open lines' retractions: any thin island
    /// (no bound) 3.60 %, with the M3 screw's round shaft 12 to 37 points
    /// over; **32: 3.53 %**; 64: 3.55 % (the DC-DC case's thin ribs move).
    THIN_ISLAND_ELONGATION = 32.0, "", "outline squared over area of a long thin island", SPLIT_FIT_GROWN;
    /// Between π (round contours) and 4 (square ones): how an offset loop
    /// shortens at the corners.
    OFFSET_CORNER_FACTOR = 3.6, "", "corner term of an inward offset", ISSUE_4;
    // The three SLA constants were a first guess from one slice of a 20 mm
    // cube (3.0 mm, 0.3, 0.125) until they were fitted together on a grid by
    // the lowest mean |resin error| (each row's capped at 20 %): fitting rows'
    // median 1.7 % before, 1.0 % after (BENCHMARKS.md).
    /// How far PrusaSlicer's SLA pad reaches beyond the area its pillars hold.
    SLA_PAD_MARGIN_MM = 4.5, "mm", "SLA pad margin around the pillars", SLA_SPLIT_FIT;
    /// SLA support resin per mm² held: the heads, whatever the height.
    SLA_SUPPORT_MM3_PER_MM2 = 0.64, "mm³/mm²", "SLA support resin per mm² supported", SLA_SPLIT_FIT;
    /// SLA support resin per mm² held and mm of pillar under it.
    SLA_SUPPORT_MM3_PER_MM2_MM = 0.05, "mm³/mm²/mm", "SLA support resin per mm² and mm of pillar", SLA_SPLIT_FIT;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constant_is_listed_once_with_its_provenance() {
        let mut names: Vec<&str> = ALL.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.iter().all(|f| f.value.is_finite() && !f.meaning.is_empty() && !f.fitted_on.is_empty()));
    }
}
