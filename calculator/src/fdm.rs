//! The FDM process model: print time and filament from the part's layer
//! slices and a PrusaSlicer-style profile.
//!
//! The model follows what a slicer does to each layer, from the two facts the
//! mesh engine gives per layer (cross-section area and contour length):
//!
//! - **Perimeters:** `perimeters` loops, each offset one line spacing further
//!   in and so a little shorter. The outer one runs at the external perimeter
//!   speed, the rest at the perimeter speed; loops shorter than a 6.5 mm
//!   radius circle run at the small-perimeter speed. In a section too thin for
//!   all its loops, the loops fill it.
//! - **Solid infill:** what lies within `top_solid_layers` below an upward
//!   surface or `bottom_solid_layers` above a downward one, found from how the
//!   inner area shrinks or grows between layers; regions under
//!   `solid_infill_below_area` are solid too. Surfaces over air are bridges,
//!   the exposed top surface runs at the top-solid speed.
//! - **Sparse infill:** the rest of the inner area at `fill_density`.
//! - **Supports** (when on): the mesh engine's support columns (from the
//!   surface below each overhang up to it, grown by PrusaSlicer's margin) at
//!   the density of the support pattern, plus dense interface layers.
//! - **Travel, retraction and layer changes:** a few moves per layer and per
//!   infill line, each with a retraction.
//!
//! Extruded volume follows PrusaSlicer's flow model: a line of width `w` and
//! height `h` has the cross-section `h (w - h (1 - π/4))`, and lines sit one
//! such spacing apart, so a solid region of area `A` takes `A h`.
//!
//! Time is length over speed plus a trapezoidal acceleration model: every
//! line starts and ends at the jerk speed and accelerates at the profile's
//! extruding acceleration, so short infill lines never reach full speed.
//! Layers faster than `slowdown_below_layer_time` are slowed down to it (not
//! below the minimum print speed), as PrusaSlicer's cooling logic does.
//!
//! Deliberately ignored: thin-wall and gap-fill details, seam placement,
//! avoid-crossing-perimeters detours, ironing, wipe towers, multiple
//! islands' separate `solid_infill_below_area` checks, and a leaning wall's
//! top skin (its facets are too steep to count, and its area does not
//! change). The
//! harness in `benches/slicer/` measures what that costs against PrusaSlicer.

use std::f64::consts::PI;

use mesh::{Contour, Layering, MeshReport, Slices};
use rayon::prelude::*;

use crate::process::{Component, ProcessEstimate};
use crate::{FdmProfile, PricingError, Technology};

/// Loops whose length is under this run at the small-perimeter speed
/// (PrusaSlicer: a circle of 6.5 mm radius).
const SMALL_PERIMETER_LENGTH_MM: f64 = 2.0 * PI * 6.5;
/// PrusaSlicer's defaults for settings the profile does not carry.
const FIRST_LAYER_WIDTH_OF_NOZZLE: f64 = 2.0;
const AUTO_WIDTH_OF_NOZZLE: f64 = 1.125;
const SOLID_INFILL_BELOW_AREA_MM2: f64 = 70.0;
const SLOWDOWN_BELOW_LAYER_TIME_S: f64 = 5.0;
const MIN_PRINT_SPEED_MM_S: f64 = 10.0;
const JERK_MM_S: f64 = 10.0;
const RETRACT_LENGTH_MM: f64 = 2.0;
const RETRACT_SPEED_MM_S: f64 = 40.0;
const MAX_FEEDRATE_Z_MM_S: f64 = 12.0;
const SKIRT_DISTANCE_MM: f64 = 6.0;
const SUPPORT_INTERFACE_LAYERS: f64 = 3.0;
/// PrusaSlicer's gap between bridge threads, mm.
const BRIDGE_EXTRA_SPACING_MM: f64 = 0.05;
/// Share of the support columns the base fills, and of the interface
/// layers' volume: fitted to PrusaSlicer 2.5's grid supports on the
/// harness's support rows (`benches/slicer/`).
const SUPPORT_BASE_FILL: f64 = 0.15;
const SUPPORT_INTERFACE_FILL: f64 = 1.1;
/// PrusaSlicer grows each overhang's contact area and closes gaps between
/// nearby ones (`support_material_closing_radius`), so a narrow overhang is
/// held by a wide column: the margin that matches its volumes, mm.
const SUPPORT_MARGIN_MM: f64 = 3.5;
/// Typical straight runs of support lines before a turn, mm.
const SUPPORT_BASE_SEGMENT_MM: f64 = 5.0;
const SUPPORT_INTERFACE_SEGMENT_MM: f64 = 2.5;
/// Moves between features in a layer: to the seam, loop to loop, perimeters
/// to infill, between infill runs (PrusaSlicer 2.5 makes about six on simple
/// parts, half of them retracted).
const TRAVELS_PER_LAYER: f64 = 1.0;
const TRAVELS_PER_CONTOUR: f64 = 5.3;
const RETRACTIONS_PER_CONTOUR: f64 = 3.2;
/// Sparse infill overlaps the perimeters and is anchored along them: it
/// extrudes as if it were this much denser (fitted to PrusaSlicer 2.5 at
/// 15 to 40%).
const SPARSE_ANCHOR_DENSITY: f64 = 0.025;
/// Infill reaches this share of a line spacing into the innermost loop.
const INFILL_OVERLAP_OF_SPACING: f64 = 0.25;
/// Typical run of a crossing sparse-infill pattern between stops, mm.
const INFILL_RUN_MM: f64 = 7.5;
/// What a curved sparse pattern's constant turning adds, s per mm.
const CURVED_INFILL_S_PER_MM: f64 = 0.0135;
/// Exposed skins narrower than this many nozzle widths are not solid-filled.
const SKIN_MIN_WIDTH_OF_NOZZLE: f64 = 0.75;
/// Exposed skin wider than this on average (area over contour length, mm)
/// is a top surface or a bridge; narrower rings are plain solid infill.
const WIDE_SURFACE_MM: f64 = 2.0;
/// Sparse infill turns at its anchors without coming to a stop: the speed
/// it keeps through a turn, mm/s (fitted to PrusaSlicer 2.5's estimates).
const INFILL_TURN_SPEED_MM_S: f64 = 20.0;
/// An island whose infill region is narrower than this on average (twice
/// its area over its contours' length, mm) is filled solid.
const NARROW_INFILL_MM: f64 = 2.5;

/// Between π (round contours) and 4 (square ones); see [`inner_areas`].
const OFFSET_CORNER_FACTOR: f64 = 3.6;

/// Sharp corners per perimeter loop where the head slows to the jerk speed.
const CORNERS_PER_LOOP: f64 = 4.0;

/// The layers the estimate needs the mesh sliced into.
pub fn layering(profile: &FdmProfile) -> Layering {
    Layering {
        first_layer_height: profile.first_layer_height_mm(),
        layer_height: profile.layer_height,
        min_skin_width: SKIN_MIN_WIDTH_OF_NOZZLE * profile.nozzle_diameter,
    }
}

/// The overhang angle (degrees from straight down) beyond which the profile
/// puts supports: its threshold, or when that is 0 ("auto"), the slope at
/// which a layer overhangs the one below by half a line width.
pub fn support_angle_deg(profile: &FdmProfile) -> f64 {
    if profile.support_material_threshold > 0.0 {
        return profile.support_material_threshold.min(90.0);
    }
    let half_width = AUTO_WIDTH_OF_NOZZLE * profile.nozzle_diameter / 2.0;
    (profile.layer_height / half_width).atan().to_degrees()
}

/// How PrusaSlicer shapes supports: contact areas grown around each
/// overhang, and no support under a gap it can print over.
pub fn support_shape(profile: &FdmProfile) -> mesh::SupportShape {
    mesh::SupportShape { margin: SUPPORT_MARGIN_MM, min_gap: profile.layer_height }
}

/// Speeds and flows resolved from a profile, in mm/s and mm.
#[derive(Debug, Clone, Copy)]
struct Machine {
    perimeter: f64,
    external_perimeter: f64,
    small_perimeter: f64,
    infill: f64,
    solid_infill: f64,
    top_solid_infill: f64,
    bridge: f64,
    support: f64,
    travel: f64,
    first_layer: f64,
    acceleration: f64,
    travel_acceleration: f64,
    width: f64,
    top_width: f64,
    first_layer_width: f64,
    nozzle: f64,
}

impl Machine {
    fn new(p: &FdmProfile) -> Self {
        let solid_infill = p.solid_infill_speed.resolve(p.infill_speed);
        Self {
            perimeter: p.perimeter_speed,
            external_perimeter: p.external_perimeter_speed.resolve(p.perimeter_speed),
            small_perimeter: p.small_perimeter_speed.resolve(p.perimeter_speed),
            infill: p.infill_speed,
            solid_infill,
            top_solid_infill: p.top_solid_infill_speed.resolve(solid_infill),
            bridge: p.bridge_speed,
            support: p.support_material_speed,
            travel: p.travel_speed,
            first_layer: p.first_layer_speed.resolve(p.perimeter_speed),
            acceleration: p.machine_max_acceleration_extruding,
            travel_acceleration: p.machine_max_acceleration_travel,
            width: AUTO_WIDTH_OF_NOZZLE * p.nozzle_diameter,
            top_width: p.nozzle_diameter,
            first_layer_width: FIRST_LAYER_WIDTH_OF_NOZZLE * p.nozzle_diameter,
            nozzle: p.nozzle_diameter,
        }
    }

    /// Centre-to-centre distance of neighbouring lines of `width` at `height`.
    fn spacing(width: f64, height: f64) -> f64 {
        (width - height * (1.0 - PI / 4.0)).max(width * 0.1)
    }

    /// Time to run `length` mm as `lines` separate lines at `speed`, each
    /// starting and ending at the jerk speed.
    fn run(&self, length: f64, lines: f64, speed: f64, acceleration: f64) -> f64 {
        Self::run_from(length, lines, speed, acceleration, JERK_MM_S)
    }

    /// [`Machine::run`], with lines entered and left at `entry` mm/s.
    fn run_from(length: f64, lines: f64, speed: f64, acceleration: f64, entry: f64) -> f64 {
        if length <= 0.0 || speed <= 0.0 {
            return 0.0;
        }
        let lines = lines.max(1.0);
        let each = length / lines;
        let entry = entry.min(speed);
        let ramp = (speed * speed - entry * entry) / (2.0 * acceleration);
        let per_line = if each >= 2.0 * ramp {
            each / speed + (speed - entry).powi(2) / (acceleration * speed)
        } else {
            // Never reaches full speed: accelerate half way, brake the rest.
            let peak = (entry * entry + acceleration * each).sqrt();
            2.0 * (peak - entry) / acceleration
        };
        per_line * lines
    }
}

/// What a printer does in a layer, named as PrusaSlicer's G-code names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feature {
    ExternalPerimeter,
    Perimeter,
    SolidInfill,
    TopSolidInfill,
    BridgeInfill,
    SparseInfill,
    Support,
    Skirt,
    Travel,
    LayerChange,
    Cooling,
}

impl Feature {
    const ALL: [Feature; 11] = [
        Feature::ExternalPerimeter,
        Feature::Perimeter,
        Feature::SolidInfill,
        Feature::TopSolidInfill,
        Feature::BridgeInfill,
        Feature::SparseInfill,
        Feature::Support,
        Feature::Skirt,
        Feature::Travel,
        Feature::LayerChange,
        Feature::Cooling,
    ];

    fn label(self) -> &'static str {
        match self {
            Feature::ExternalPerimeter => "external perimeters",
            Feature::Perimeter => "perimeters",
            Feature::SolidInfill => "solid infill",
            Feature::TopSolidInfill => "top solid infill",
            Feature::BridgeInfill => "bridge infill",
            Feature::SparseInfill => "sparse infill",
            Feature::Support => "support",
            Feature::Skirt => "skirt",
            Feature::Travel => "travel and retraction",
            Feature::LayerChange => "layer changes",
            Feature::Cooling => "cooling slowdown",
        }
    }
}

/// Time (s) and extruded volume (mm³) per feature, for a layer or a part.
#[derive(Debug, Clone, Copy, Default)]
struct Work {
    time_s: [f64; Feature::ALL.len()],
    mm3: [f64; Feature::ALL.len()],
}

impl Work {
    fn add(mut self, other: Self) -> Self {
        self.time_s.iter_mut().zip(other.time_s).for_each(|(a, b)| *a += b);
        self.mm3.iter_mut().zip(other.mm3).for_each(|(a, b)| *a += b);
        self
    }

    fn record(&mut self, feature: Feature, time_s: f64, mm3: f64) {
        self.time_s[feature as usize] += time_s;
        self.mm3[feature as usize] += mm3;
    }

    fn time(&self, features: &[Feature]) -> f64 {
        features.iter().map(|f| self.time_s[*f as usize]).sum()
    }

    fn extruded_mm3(&self) -> f64 {
        self.mm3.iter().sum()
    }
}

/// Estimates printing `report`'s part with `profile`. The report must have
/// been sliced with [`layering`]`(profile)`; with supports on, its overhangs
/// should have been measured at [`support_angle_deg`]`(profile)`.
pub fn estimate(report: &MeshReport, profile: &FdmProfile) -> Result<ProcessEstimate, PricingError> {
    let wanted = layering(profile);
    let slices = report
        .slices
        .as_ref()
        .filter(|s| s.layer_height == wanted.layer_height && s.first_layer_height == wanted.first_layer_height)
        .ok_or(PricingError::NotSliced { layer_height: profile.layer_height })?;
    let machine = Machine::new(profile);
    let inner = sections(slices, profile, &machine);
    let (up, down) = exposures(slices, profile);
    let supports = support_per_layer(report, slices, profile);

    // Layers in parallel, summed in layer order: the same part always gets
    // the same estimate, to the last digit (quotes are cached and compared).
    let layers: Vec<Work> = (0..slices.len())
        .into_par_iter()
        .map(|i| layer_work(i, slices, &inner, (&up, &down), supports, profile, &machine))
        .collect();
    let work = layers.into_iter().fold(Work::default(), Work::add);

    let breakdown: Vec<Component> = Feature::ALL
        .iter()
        .map(|&f| Component {
            feature: f.label(),
            time_s: work.time_s[f as usize],
            material_cm3: work.mm3[f as usize] / 1000.0,
        })
        .collect();
    let print_time_s = breakdown.iter().map(|c| c.time_s).sum();
    let material_cm3 = breakdown.iter().map(|c| c.material_cm3).sum();
    Ok(ProcessEstimate {
        technology: Technology::Fdm,
        print_time_s,
        material_cm3,
        support_cm3: work.mm3[Feature::Support as usize] / 1000.0,
        layers: slices.len() as u64,
        parts_per_build: 1,
        breakdown,
    })
}

/// Per layer: how the slicer divides the section between perimeter loops,
/// infill, and islands too small for sparse infill.
///
/// Each loop's perimeters sit half an external width in from the contour,
/// then one spacing apart, and infill starts half a spacing past the last
/// one: a band of thickness `t`. Offsetting an island's outline of length
/// `L` inward by `t` leaves `A - L t + K t²` (`K` = π for a circle, 4 for a
/// square; the model takes a value between); a hole grows by `L t + K t²`.
/// Holes are charged to the largest island, which is where they are on
/// almost every real part. Without traced loops the layer counts as one
/// island.
fn sections(slices: &Slices, profile: &FdmProfile, machine: &Machine) -> Vec<Section> {
    (0..slices.len())
        .into_par_iter()
        .map(|i| {
            let single = [Contour { length: slices.perimeter[i], area: slices.area[i] }];
            let loops = match slices.contours.get(i) {
                Some(traced) if !traced.is_empty() => traced.as_slice(),
                _ => &single,
            };
            Section::of(loops, profile, machine, i == 0, slices.thickness(i))
        })
        .collect()
}

/// A layer's section as the slicer divides it.
#[derive(Debug, Clone, Default)]
struct Section {
    /// Inside the perimeter loops, mm².
    inner: f64,
    /// Covered by the perimeter loops, mm².
    perimeters: f64,
    /// Inner area of islands too small for sparse infill, mm².
    small_islands: f64,
    /// Islands and holes.
    contours: usize,
    /// Length of the outermost loops (at the external perimeter speed) and
    /// of the rest, each split into (normal, small) loops, mm.
    external_loops: (f64, f64),
    inner_loops: (f64, f64),
}

impl Section {
    fn of(loops: &[Contour], profile: &FdmProfile, m: &Machine, first: bool, height: f64) -> Self {
        let width = if first { m.first_layer_width } else { m.width };
        let spacing = Machine::spacing(width, height);
        let count = profile.perimeters;
        let band = if count > 0 { width / 2.0 + (f64::from(count) - 0.5) * spacing } else { 0.0 };
        // Infill overlaps the last loop: the island's infill region, for the
        // small-island test, reaches a little further out.
        let infill_band = (band - INFILL_OVERLAP_OF_SPACING * spacing).max(0.0);
        let k = OFFSET_CORNER_FACTOR;
        let shrink = |area: f64, length: f64, t: f64| {
            let stripped = area - length * t;
            if stripped > 0.0 { (stripped + k * t * t).min(area) } else { 0.0 }
        };
        let mut section = Section { contours: loops.len(), ..Section::default() };
        let (mut islands, mut holes, mut holes_infill, mut hole_length) = (Vec::new(), 0.0, 0.0, 0.0);
        let mut total = 0.0;
        for contour in loops {
            total += contour.area;
            let hole = contour.is_hole();
            if hole {
                holes += (-contour.area + contour.length * band + k * band * band).max(0.0);
                holes_infill += (-contour.area + contour.length * infill_band + k * infill_band * infill_band).max(0.0);
                hole_length += contour.length;
            } else {
                islands.push((
                    shrink(contour.area, contour.length, band),
                    shrink(contour.area, contour.length, infill_band),
                    contour.length,
                ));
            }
            // The loops themselves, each one spacing further from the contour.
            let mut offset = width / 2.0;
            for loop_index in 0..count {
                let length = if hole { contour.length + 2.0 * k * offset } else { contour.length - 2.0 * k * offset };
                if length <= 0.0 {
                    break;
                }
                let small = length <= SMALL_PERIMETER_LENGTH_MM;
                let bucket = if loop_index == 0 { &mut section.external_loops } else { &mut section.inner_loops };
                if small {
                    bucket.1 += length
                } else {
                    bucket.0 += length
                }
                offset += spacing;
            }
        }
        // Holes are charged to the largest island.
        islands.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some(largest) = islands.first_mut() {
            largest.0 = (largest.0 - holes).max(0.0);
            largest.1 = (largest.1 - holes_infill).max(0.0);
            largest.2 += hole_length;
        }
        section.inner = islands.iter().map(|i| i.0).sum();
        // Too small for sparse infill: a small island, or a narrow one (a
        // wall's core, which the slicer leaves as strips it fills solid).
        let narrow = NARROW_INFILL_MM;
        section.small_islands =
            islands.iter().filter(|i| i.1 < SOLID_INFILL_BELOW_AREA_MM2 || 2.0 * i.0 < narrow * i.2).map(|i| i.0).sum();
        // The rounded edge of the outer loop leaves a sliver no plastic fills.
        let outer_length: f64 = loops.iter().filter(|c| !c.is_hole()).map(|c| c.length).sum();
        let gap = if count > 0 { outer_length * (width - spacing) / 2.0 } else { 0.0 };
        section.perimeters = (total.max(0.0) - section.inner - gap).max(0.0);
        // Loops cannot hold more plastic than the band they fill.
        let loop_length =
            section.external_loops.0 + section.external_loops.1 + section.inner_loops.0 + section.inner_loops.1;
        let fits = section.perimeters / spacing;
        if loop_length > fits && loop_length > 0.0 {
            let scale = fits / loop_length;
            for part in [&mut section.external_loops, &mut section.inner_loops] {
                part.0 *= scale;
                part.1 *= scale;
            }
        }
        section
    }
}

/// Per layer, the skin a surface exposes: `up[i]` is the area of layer `i`
/// with nothing above it, `down[i]` the area with nothing below (the whole
/// first layer). A slicer drops exposed slivers narrower than about a line,
/// so a gently sloping flank gets no skin while a flat top does.
///
/// Two measures, and the larger wins. The change of area between layers
/// sees a layer's exposure as a whole; the facing surfaces the mesh engine
/// measured between the two layers' planes also see a top that ends where a
/// ledge begins in the same layer, which the change of area cancels out (a
/// case's ribs and bosses do this all the time).
fn exposures(slices: &Slices, profile: &FdmProfile) -> (Vec<f64>, Vec<f64>) {
    let sliver = SKIN_MIN_WIDTH_OF_NOZZLE * profile.nozzle_diameter;
    let n = slices.len();
    let area = |i: usize| slices.area[i].max(0.0);
    let skin = |i: usize, exposed: f64| if exposed > sliver * slices.perimeter[i] { exposed } else { 0.0 };
    let facing = |sums: &[f64], i: usize| sums.get(i).copied().unwrap_or(0.0).min(area(i));
    let up = (0..n)
        .map(|i| {
            let change = skin(i, area(i) - if i + 1 < n { area(i + 1) } else { 0.0 });
            change.max(facing(&slices.up_facing, i))
        })
        .collect();
    let down = (0..n)
        .map(|i| {
            if i == 0 {
                return area(0);
            }
            skin(i, area(i) - area(i - 1)).max(facing(&slices.down_facing, i - 1))
        })
        .collect();
    (up, down)
}

/// Support volume per layer (mm³), base and interface, spread evenly over
/// the layers; zero when supports are off. The mesh engine measures the
/// columns from the surface under each overhang (the plate or the part) up
/// to it, grown by [`support_shape`]'s margin; the base fills a share of them
/// (the rectilinear grid and its sheath), and the interface is a few dense
/// layers on top of each column, and under those standing on the part.
fn support_per_layer(report: &MeshReport, slices: &Slices, profile: &FdmProfile) -> (f64, f64) {
    if !profile.support_material || slices.is_empty() {
        return (0.0, 0.0);
    }
    let p = &report.printability;
    let layers = slices.len() as f64;
    let base = p.support_column_volume * SUPPORT_BASE_FILL;
    // Dense interface layers on top of every column, and under the ones
    // that stand on the part.
    let interface = (p.support_contact_area + p.support_on_part_area)
        * SUPPORT_INTERFACE_LAYERS
        * profile.layer_height
        * SUPPORT_INTERFACE_FILL;
    (base / layers, interface / layers)
}

fn layer_work(
    i: usize,
    slices: &Slices,
    inner: &[Section],
    exposure: (&[f64], &[f64]),
    (support_base, support_interface): (f64, f64),
    profile: &FdmProfile,
    m: &Machine,
) -> Work {
    let h = slices.thickness(i);
    let first = i == 0;
    let section = &inner[i];
    let (area_in, band) = (section.inner, section.perimeters);
    let perimeter = slices.perimeter[i];
    let (up, down) = exposure;
    let n = slices.len();

    // Solid where a surface is exposed within `top_solid_layers` above or
    // `bottom_solid_layers` below; small regions are solid throughout.
    let top_layers = profile.top_solid_layers as usize;
    let bottom_layers = profile.bottom_solid_layers as usize;
    let from_above: f64 = up[i..n.min(i + top_layers)].iter().sum();
    let from_below: f64 = down[(i + 1).saturating_sub(bottom_layers)..=i].iter().sum();
    let mut solid = (from_above + from_below + section.small_islands).min(area_in);
    if profile.fill_density >= 0.999 {
        solid = area_in;
    }
    // Only a wide exposure is a surface of its own: a narrow ring on a
    // slope rests on the layer next to it and is printed as plain solid.
    let wide = |exposed: f64, at: usize| {
        let perimeter = slices.perimeter[at.min(n - 1)];
        if exposed > WIDE_SURFACE_MM * perimeter { exposed } else { 0.0 }
    };
    let top_surface = wide(up[i], i).min(solid);
    // Bridges: skin over air, and the lowest layer of a top skin, which
    // spans the sparse infill below it.
    let over_infill = if top_layers >= 2 && profile.fill_density < 0.999 {
        up.get(i + top_layers - 1).map_or(0.0, |&e| wide(e, i + top_layers - 1))
    } else {
        0.0
    };
    let bridge = if first { 0.0 } else { (wide(down[i], i) + over_infill).min(solid - top_surface) };
    let plain_solid = solid - top_surface - bridge;
    let sparse = area_in - solid;

    let width = if first { m.first_layer_width } else { m.width };
    let spacing = Machine::spacing(width, h);
    let top_spacing = if first { spacing } else { Machine::spacing(m.top_width, h) };
    let speed = |s: f64| if first { m.first_layer } else { s };
    let a = m.acceleration;
    let mut w = Work::default();

    // Perimeters: each contour's loops, the outermost at the external
    // speed, any loop shorter than a small circle at the small speed.
    let corners = CORNERS_PER_LOOP * section.contours as f64;
    let loops = f64::from(profile.perimeters.max(1));
    let to_mm3 = |length: f64| length * h * spacing;
    let ((outer, outer_small), (rest, rest_small)) = (section.external_loops, section.inner_loops);
    let time = m.run(outer, corners, speed(m.external_perimeter), a)
        + m.run(outer_small, corners, speed(m.small_perimeter), a);
    w.record(Feature::ExternalPerimeter, time, to_mm3(outer + outer_small));
    let inner_corners = corners * (loops - 1.0);
    let time = m.run(rest, inner_corners, speed(m.perimeter), a)
        + m.run(rest_small, inner_corners, speed(m.small_perimeter), a);
    w.record(Feature::Perimeter, time, to_mm3(rest + rest_small));

    // Solid infill as parallel lines across the region: their count is the
    // length over the region's mean chord (Cauchy: π A / P).
    let chord = |region: f64| (PI * region / perimeter.max(1e-9)).max(m.nozzle);
    let lines_for = |region: f64, line_spacing: f64| {
        let length = region / line_spacing;
        (length, length / chord(region))
    };
    let (length, lines) = lines_for(plain_solid, spacing);
    w.record(Feature::SolidInfill, m.run(length, lines, speed(m.solid_infill), a), plain_solid * h);
    let (length, lines) = lines_for(top_surface, top_spacing);
    w.record(Feature::TopSolidInfill, m.run(length, lines, speed(m.top_solid_infill), a), top_surface * h);
    // Bridges are round threads of the nozzle's diameter.
    let (length, lines) = lines_for(bridge, m.nozzle + BRIDGE_EXTRA_SPACING_MM);
    let thread = PI / 4.0 * m.nozzle * m.nozzle;
    w.record(Feature::BridgeInfill, m.run(length, lines, speed(m.bridge), a), length * thread);

    // Sparse infill: lines at spacing / density, reaching a little into the
    // perimeters and anchored along them, and broken where the pattern's
    // directions cross.
    let sparse_length = sparse * (profile.fill_density + SPARSE_ANCHOR_DENSITY) / spacing;
    let (run, curve_s_per_mm) = infill_motion(&profile.fill_pattern, chord(sparse));
    let turn = INFILL_TURN_SPEED_MM_S;
    let sparse_s = Machine::run_from(sparse_length, sparse_length / run, speed(m.infill), a, turn)
        + sparse_length * curve_s_per_mm;
    w.record(Feature::SparseInfill, sparse_s, to_mm3(sparse_length));

    // Supports: the per-layer share, as short lines at the support speed.
    if support_base + support_interface > 0.0 {
        let support_spacing = Machine::spacing(m.nozzle, h);
        let base = support_base / (h * support_spacing);
        let interface = support_interface / (h * support_spacing);
        let time = m.run(base, base / SUPPORT_BASE_SEGMENT_MM, speed(m.support), a)
            + m.run(interface, interface / SUPPORT_INTERFACE_SEGMENT_MM, speed(m.support), a);
        w.record(Feature::Support, time, support_base + support_interface);
    }

    // The skirt: one loop around the first layer, a skirt distance out.
    if first && perimeter > 0.0 {
        let length = perimeter + 2.0 * PI * SKIRT_DISTANCE_MM;
        w.record(Feature::Skirt, m.run(length, 1.0, m.first_layer, a), to_mm3(length));
    }

    // Travel: a few short hops per layer, half of them with a retraction
    // and its reversal.
    let hop_length = chord(area_in.max(band)).min(50.0) / 2.0;
    let islands_and_holes = if slices.contours.is_empty() {
        contour_complexity(slices.area[i], perimeter).sqrt()
    } else {
        section.contours as f64
    };
    let hops = TRAVELS_PER_LAYER + TRAVELS_PER_CONTOUR * islands_and_holes;
    let retraction = 2.0 * RETRACT_LENGTH_MM / RETRACT_SPEED_MM_S;
    let travel = hops * m.run(hop_length, 1.0, m.travel, m.travel_acceleration)
        + RETRACTIONS_PER_CONTOUR * islands_and_holes * retraction;
    w.record(Feature::Travel, travel, 0.0);
    w.record(Feature::LayerChange, h / MAX_FEEDRATE_Z_MM_S.min(m.travel), 0.0);

    // Cooling: a layer faster than the minimum layer time is slowed down,
    // but no extrusion goes below the minimum print speed.
    use Feature::*;
    let extruding =
        w.time(&[ExternalPerimeter, Perimeter, SolidInfill, TopSolidInfill, BridgeInfill, SparseInfill, Support]);
    let other = w.time(&[Skirt, Travel, LayerChange]);
    if extruding > 0.0 && extruding + other < SLOWDOWN_BELOW_LAYER_TIME_S {
        let slowest = w.extruded_mm3() / (h * spacing) / MIN_PRINT_SPEED_MM_S;
        let stretched = (SLOWDOWN_BELOW_LAYER_TIME_S - other).min(slowest).max(extruding);
        w.record(Cooling, stretched - extruding, 0.0);
    }
    w
}

/// How much more contour a section has than one square of its area:
/// 1 for a single compact island, more with holes, several islands or
/// ragged outlines, each of which costs travel and retraction. Capped, so a
/// thin wall does not count as dozens of islands.
fn contour_complexity(area: f64, perimeter: f64) -> f64 {
    if area <= 0.0 {
        return 1.0;
    }
    (perimeter * perimeter / (16.0 * area)).clamp(1.0, 10.0)
}

/// How sparse infill moves: the run between stops, and the time a curved
/// pattern adds per mm.
///
/// Straight patterns run chord to chord; crossing ones (PrusaSlicer's stars,
/// grid, cubic, ...) stop at their anchors and crossings, about every
/// `INFILL_RUN_MM` in a wide region. Curved ones (gyroid, honeycomb, ...) are
/// written as sub-millimetre segments whose every turn the planner slows for:
/// PrusaSlicer 2.5 estimates gyroid at about `CURVED_INFILL_S_PER_MM` more per
/// mm than its feed rate says.
fn infill_motion(pattern: &str, chord: f64) -> (f64, f64) {
    match pattern {
        "rectilinear" | "alignedrectilinear" | "line" | "monotonic" => (chord, 0.0),
        "gyroid" | "honeycomb" | "3dhoneycomb" | "hilbertcurve" | "archimedeanchords" | "octagramspiral"
        | "concentric" | "lightning" => (chord, CURVED_INFILL_S_PER_MM),
        _ => ((chord * 0.9).min(INFILL_RUN_MM), 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::{AnalysisOptions, analyze, cuboid, write_binary_stl};

    fn sliced_cube(side: f32, profile: &FdmProfile) -> MeshReport {
        let options = AnalysisOptions { layering: Some(layering(profile)), ..AnalysisOptions::default() };
        analyze(&write_binary_stl(&cuboid([side; 3])), &options).unwrap()
    }

    #[test]
    fn an_unsliced_report_is_refused() {
        let report = analyze(&write_binary_stl(&cuboid([10.0; 3])), &AnalysisOptions::default()).unwrap();
        let err = estimate(&report, &FdmProfile::default()).unwrap_err();
        assert!(matches!(err, PricingError::NotSliced { .. }), "{err}");
    }

    #[test]
    fn the_breakdown_sums_to_the_totals() {
        let profile = FdmProfile::default();
        let e = estimate(&sliced_cube(20.0, &profile), &profile).unwrap();
        let time: f64 = e.breakdown.iter().map(|c| c.time_s).sum();
        let material: f64 = e.breakdown.iter().map(|c| c.material_cm3).sum();
        assert!((time - e.print_time_s).abs() < 1e-9 && (material - e.material_cm3).abs() < 1e-12);
        assert_eq!(e.layers, 67, "0.35 mm, then 0.3 mm layers up to 20 mm");
    }

    #[test]
    fn denser_infill_and_more_perimeters_cost_more() {
        let base = FdmProfile::default();
        let report = sliced_cube(30.0, &base);
        let e0 = estimate(&report, &base).unwrap();
        for profile in [FdmProfile { fill_density: 0.5, ..base.clone() }, FdmProfile { perimeters: 5, ..base.clone() }]
        {
            let e = estimate(&report, &profile).unwrap();
            assert!(e.material_cm3 > e0.material_cm3 && e.print_time_s > e0.print_time_s, "{e:?} vs {e0:?}");
        }
    }

    #[test]
    fn a_top_that_ends_where_another_part_begins_still_gets_its_skin() {
        // Two 20 mm columns side by side, one from 0 to 10 mm, the other
        // from 10 to 20 mm: every layer has the same area as one 20 mm
        // column, but at 10 mm one part's top and the other's bottom need
        // solid layers that the change of area alone does not see.
        let profile = FdmProfile::default();
        let mut stairs = cuboid([20.0, 20.0, 10.0]);
        stairs.extend(cuboid([20.0, 20.0, 10.0]).into_iter().map(|tri| tri.map(|v| [v[0] + 30.0, v[1], v[2] + 10.0])));
        let column = cuboid([20.0, 20.0, 20.0]);
        let options = AnalysisOptions { layering: Some(layering(&profile)), ..AnalysisOptions::default() };
        let priced = |triangles: &[mesh::Triangle]| {
            let report = analyze(&write_binary_stl(triangles), &options).unwrap();
            estimate(&report, &profile).unwrap()
        };
        let (stairs, column) = (priced(&stairs), priced(&column));
        // 400 mm² of skin on each side of the step, a few solid layers deep.
        let extra = stairs.material_cm3 - column.material_cm3;
        assert!(extra > 0.3 && extra < 1.5, "{extra} cm³ more: {stairs:?} vs {column:?}");
        assert!(stairs.print_time_s > column.print_time_s);
    }

    #[test]
    fn supports_add_material_only_when_on() {
        let off = FdmProfile::default();
        let report = sliced_cube(20.0, &off);
        assert_eq!(estimate(&report, &off).unwrap().support_cm3, 0.0);

        // A T: two 15 x 10 arms 20 mm above the plate.
        let mut t: Vec<mesh::Triangle> =
            cuboid([10.0, 10.0, 20.0]).into_iter().map(|tri| tri.map(|v| [v[0] + 15.0, v[1], v[2]])).collect();
        t.extend(cuboid([40.0, 10.0, 5.0]).into_iter().map(|tri| tri.map(|v| [v[0], v[1], v[2] + 20.0])));
        let on = FdmProfile { support_material: true, ..FdmProfile::default() };
        let options = AnalysisOptions {
            layering: Some(layering(&on)),
            overhang_angle_deg: support_angle_deg(&on),
            support: support_shape(&on),
            ..AnalysisOptions::default()
        };
        let report = analyze(&write_binary_stl(&t), &options).unwrap();
        let (with, without) = (estimate(&report, &on).unwrap(), estimate(&report, &off).unwrap());
        // The columns under the arms (300 mm² x 20 mm, grown by the margin)
        // at the base's fill, plus interface layers.
        let base_floor = 6000.0 * SUPPORT_BASE_FILL / 1000.0;
        assert!(with.support_cm3 > base_floor && with.support_cm3 < 4.0 * base_floor, "{with:?}");
        assert!((with.material_cm3 - without.material_cm3 - with.support_cm3).abs() < 1e-9);
        assert!(with.print_time_s > without.print_time_s);
    }
}
