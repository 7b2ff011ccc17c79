//! The FDM process model: print time and filament from the part's layer
//! slices and a PrusaSlicer profile, read with PrusaSlicer 2.5's semantics.
//!
//! The model follows what a slicer does to each layer, from the facts the
//! mesh engine gives per layer (area, contour loops, facing surfaces):
//!
//! - **Perimeters:** `perimeters` loops per island and hole, the outermost
//!   at the external width and speed, the rest at the perimeter width, each
//!   one spacing further in; loops shorter than a 6.5 mm radius circle run at
//!   the small-perimeter speed. A section too thin for its loops is filled by
//!   them (Arachne's variable-width walls); with the classic generator a
//!   section thinner than a line is dropped unless `thin_walls`, and the
//!   leftover core of a thin wall is gap fill unless `gap_fill_enabled` is
//!   off.
//! - **Skins:** what lies within `top_solid_layers` (at least
//!   `top_solid_min_thickness`) below an exposed surface, or
//!   `bottom_solid_layers` above one, is solid; exposed slivers narrower than
//!   about a line are dropped, or with `ensure_vertical_shell_thickness`
//!   those whose shell band PrusaSlicer's opening removes. Islands under
//!   `solid_infill_below_area` and every `solid_infill_every_layers`-th
//!   layer are solid throughout. Surfaces over air are bridges (threads of
//!   the nozzle's width, or of the layer's height without `thick_bridges`),
//!   the exposed top at the top width and speed.
//! - **Sparse infill** at `fill_density`, every `infill_every_layers` layers,
//!   `infill_every_layers` thick, plus its anchors: each line ends in an
//!   anchor move along the perimeter, a stop of its own. At 100 % it fills the
//!   whole inner area at the infill speed, as PrusaSlicer does (it refuses
//!   patterns that cannot print at 100 %). Crossing patterns stop at their
//!   crossings, curved ones pay the planner's slowdown, and the lines'
//!   direction (`fill_angle`) against the section's shape sets how many runs
//!   they take.
//! - **Supports** (when on, and `support_material_auto`): the mesh engine's
//!   columns at the density of the pattern and spacing, less the contact gap,
//!   less the columns standing on the part with
//!   `support_material_buildplate_only`; dense interface layers on top and,
//!   for columns on the part, underneath.
//! - **Skirt, brim and raft** on the first layers, and the start and end
//!   G-code's purge lines and moves.
//! - **Travel:** hops per layer and per loop, retracted when longer than
//!   `retract_before_travel`, lifted by `retract_lift`, and a retracted hop
//!   per perimeter where a long thin island's loops are open lines; layer
//!   changes. A retraction's extruder moves accelerate at the retract limit
//!   from the E jerk, a `wipe` runs back along the path while it retracts,
//!   and Z moves keep to the Z axis's acceleration and jerk, as
//!   PrusaSlicer's estimate times them.
//! - **Cooling:** a layer faster than `slowdown_below_layer_time` has its
//!   fastest extrusions slowed to a common feed rate, never below
//!   `min_print_speed`, as PrusaSlicer's cooling buffer does. The skirt
//!   counts with the layers it goes round, and is slowed with them.
//!
//! Speeds are each role's, or the first layer's, with 0 meaning "auto"
//! (`max_print_speed` on the thinnest line), capped by `max_volumetric_speed`
//! and `filament_max_volumetric_speed`, and by the machine's limits when the
//! firmware flavour and `machine_limits_usage` make PrusaSlicer use them.
//! Each role has its acceleration (`perimeter_acceleration`, ...), capped by
//! `machine_max_acceleration_extruding`; every line starts and ends at the
//! machine's jerk speed. Volume follows PrusaSlicer's flow (`h (w - h (1 -
//! π/4))` per mm of line) times `extrusion_multiplier`.
//!
//! Deliberately ignored: seam placement, avoid-crossing-perimeters detours,
//! ironing, fuzzy skin, wipe towers, and a leaning wall's top skin (its facets
//! are too steep to count, and its area does not change). The profile lists
//! what it did not read. The harness in `benches/slicer/` measures what
//! that costs against PrusaSlicer; the fitted constants are in
//! [`crate::fitted`].

use std::f64::consts::PI;

use mesh::{Contour, Layering, MeshReport, Slices};
use rayon::prelude::*;

use crate::fitted::*;
use crate::process::{Component, ProcessEstimate};
use crate::{FdmProfile, PricingError, Technology};

/// Loops whose length is under this run at the small-perimeter speed
/// (PrusaSlicer: a circle of 6.5 mm radius).
const SMALL_PERIMETER_LENGTH_MM: f64 = 2.0 * PI * 6.5;
/// PrusaSlicer's automatic widths, in nozzle diameters: 1.125 for walls and
/// infill, 1 for top skins and supports.
const AUTO_WIDTH_OF_NOZZLE: f64 = 1.125;
/// The width, in solid infill spacings, below which PrusaSlicer's opening
/// removes a vertical shell's band (its `min_perimeter_infill_spacing`
/// factor in `discover_vertical_shells`).
const VERTICAL_SHELL_OPENING_OF_SPACING: f64 = 1.05;
/// PrusaSlicer's gap between bridge threads, mm.
const BRIDGE_EXTRA_SPACING_MM: f64 = 0.05;
/// The built-in limits PrusaSlicer's estimate uses when the profile's
/// machine limits do not apply (the defaults of the `machine_*` keys).
const DEFAULT_ACCELERATION: f64 = 1500.0;
/// Patterns PrusaSlicer accepts at 100 % density (the top-skin patterns).
const SOLID_CAPABLE_PATTERNS: &[&str] = &[
    "rectilinear",
    "monotonic",
    "alignedrectilinear",
    "concentric",
    "hilbertcurve",
    "archimedeanchords",
    "octagramspiral",
];
/// When only travels leaving an island are retracted, the share of the
/// usual retractions left (an assumption: the harness's presets all retract
/// every travel).
const RETRACT_SHARE_CROSSING_ONLY: f64 = 0.5;

/// The layers the estimate needs the mesh sliced into.
pub fn layering(profile: &FdmProfile) -> Layering {
    Layering {
        first_layer_height: profile.first_layer_height_mm(),
        layer_height: profile.layer_height,
        min_skin_width: skin_min_width(profile),
    }
}

/// The narrowest ledge a layer's flank may leave for the slicer to fill it
/// as skin: about a line, or with `ensure_vertical_shell_thickness` the
/// width whose shell band survives PrusaSlicer's opening.
///
/// With that setting PrusaSlicer (`discover_vertical_shells`) makes a
/// slope's shell the ring between a layer's infill area and that of the
/// layer `top_solid_layers - 1` above, so the ring is that many ledges
/// wide. It then opens the ring by half of `VERTICAL_SHELL_OPENING_OF_SPACING`
/// solid spacings, and a ring narrower than that whole width vanishes: a
/// gentle flank keeps its shell, a steep one under a wide nozzle or few
/// top layers has none.
fn skin_min_width(profile: &FdmProfile) -> f64 {
    if !profile.ensure_vertical_shell_thickness {
        return SKIN_MIN_WIDTH_OF_NOZZLE * profile.nozzle_diameter;
    }
    let layers = solid_layers(profile.top_solid_layers, profile.top_solid_min_thickness, profile.layer_height);
    let ledges = layers.saturating_sub(1).max(1) as f64;
    VERTICAL_SHELL_OPENING_OF_SPACING * spacing(solid_width(profile), profile.layer_height) / ledges
}

fn solid_width(profile: &FdmProfile) -> f64 {
    role_width(profile, profile.solid_infill_extrusion_width, AUTO_WIDTH_OF_NOZZLE)
}

/// The overhang angle (degrees from straight down) beyond which the profile
/// puts supports: its threshold, or when that is 0 ("auto"), the slope at
/// which a layer overhangs the one below by half a line width.
pub fn support_angle_deg(profile: &FdmProfile) -> f64 {
    if profile.support_material_threshold > 0.0 {
        return profile.support_material_threshold.min(90.0);
    }
    let half_width = external_width(profile) / 2.0;
    (profile.layer_height / half_width).atan().to_degrees()
}

/// How PrusaSlicer shapes supports: contact areas grown around each
/// overhang, and no support under a gap it can print over.
pub fn support_shape(profile: &FdmProfile) -> mesh::SupportShape {
    mesh::SupportShape { margin: SUPPORT_MARGIN_MM, min_gap: profile.layer_height, ..mesh::SupportShape::default() }
}

/// Checks what PrusaSlicer itself refuses to slice.
pub fn check(profile: &FdmProfile) -> Result<(), PricingError> {
    if profile.fill_density >= 0.999 && !SOLID_CAPABLE_PATTERNS.contains(&profile.fill_pattern.as_str()) {
        return Err(PricingError::UnprintableProfile(format!(
            "fill pattern `{}` does not work at 100% density; use one of: {}",
            profile.fill_pattern,
            SOLID_CAPABLE_PATTERNS.join(", ")
        )));
    }
    Ok(())
}

/// A role's configured width, then `extrusion_width`, then PrusaSlicer's
/// automatic one.
fn role_width(profile: &FdmProfile, width: crate::Width, auto_of_nozzle: f64) -> f64 {
    let nozzle = profile.nozzle_diameter;
    let auto = auto_of_nozzle * nozzle;
    match width {
        crate::Width::Auto => profile.extrusion_width.resolve(nozzle, auto),
        other => other.resolve(nozzle, auto),
    }
}

fn external_width(profile: &FdmProfile) -> f64 {
    role_width(profile, profile.external_perimeter_extrusion_width, AUTO_WIDTH_OF_NOZZLE)
}

/// Centre-to-centre distance of neighbouring lines of `width` at `height`.
fn spacing(width: f64, height: f64) -> f64 {
    (width - height * (1.0 - PI / 4.0)).max(width * 0.1)
}

/// What a printer does in a layer, named as PrusaSlicer's G-code names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feature {
    ExternalPerimeter,
    Perimeter,
    GapFill,
    SolidInfill,
    TopSolidInfill,
    BridgeInfill,
    SparseInfill,
    Support,
    SkirtBrim,
    Raft,
    Travel,
    LayerChange,
    Cooling,
    CustomGcode,
}

impl Feature {
    const ALL: [Feature; 14] = [
        Feature::ExternalPerimeter,
        Feature::Perimeter,
        Feature::GapFill,
        Feature::SolidInfill,
        Feature::TopSolidInfill,
        Feature::BridgeInfill,
        Feature::SparseInfill,
        Feature::Support,
        Feature::SkirtBrim,
        Feature::Raft,
        Feature::Travel,
        Feature::LayerChange,
        Feature::Cooling,
        Feature::CustomGcode,
    ];

    fn label(self) -> &'static str {
        match self {
            Feature::ExternalPerimeter => "external perimeters",
            Feature::Perimeter => "perimeters",
            Feature::GapFill => "gap fill",
            Feature::SolidInfill => "solid infill",
            Feature::TopSolidInfill => "top solid infill",
            Feature::BridgeInfill => "bridge infill",
            Feature::SparseInfill => "sparse infill",
            Feature::Support => "support",
            Feature::SkirtBrim => "skirt and brim",
            Feature::Raft => "raft",
            Feature::Travel => "travel and retraction",
            Feature::LayerChange => "layer changes",
            Feature::Cooling => "cooling slowdown",
            Feature::CustomGcode => "start and end G-code",
        }
    }

    /// Whether PrusaSlicer's cooling may slow it down (every extrusion but
    /// bridges).
    fn adjustable(self) -> bool {
        !matches!(
            self,
            Feature::BridgeInfill | Feature::Travel | Feature::LayerChange | Feature::Cooling | Feature::CustomGcode
        )
    }
}

/// The feature classes a shop's calibration corrects, and which features
/// make each up.
pub const FEATURE_CLASSES: [(&str, &[&str]); 6] = [
    ("perimeters", &["external perimeters", "perimeters", "gap fill"]),
    ("infill", &["sparse infill"]),
    ("skins", &["solid infill", "top solid infill", "bridge infill"]),
    ("supports", &["support", "raft"]),
    ("travel", &["travel and retraction", "layer changes"]),
    ("other", &["skirt and brim", "cooling slowdown", "start and end G-code"]),
];

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
}

/// The roles a layer prints, each with its own width, speed and
/// acceleration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    External,
    Perimeter,
    SmallPerimeter,
    GapFill,
    Sparse,
    Solid,
    Top,
    Bridge,
    Support,
    SupportInterface,
    FirstLayerExtra,
}

/// Speeds, widths and the machine's limits, resolved from a profile.
#[derive(Debug, Clone)]
struct Machine {
    nozzle: f64,
    widths: Widths,
    /// Width of every first-layer line when `first_layer_extrusion_width`
    /// is set.
    first_layer_width: Option<f64>,
    /// The mm³/s automatic (0) speeds run at.
    auto_volumetric: f64,
    acceleration: Accelerations,
    travel_acceleration: f64,
    /// The speed a line starts and ends at, mm/s.
    jerk: f64,
    /// What one turn in each of the mesh's turn bins costs a perimeter
    /// loop, in stops at `jerk` ([`turn_weights`]).
    turn_stops: [f64; 4],
    max_feed_xy: f64,
    min_extruding_rate: f64,
    travel: f64,
    travel_z: f64,
    /// Z moves are limited by the Z axis's own acceleration and jerk.
    z_acceleration: f64,
    z_jerk: f64,
    /// One retraction and its restart: the extruder's moves (accelerated
    /// at the retract limit from and to its jerk) and the wipe, if any.
    retract_s: f64,
    multiplier: f64,
}

#[derive(Debug, Clone, Copy)]
struct Widths {
    external: f64,
    perimeter: f64,
    infill: f64,
    solid: f64,
    top: f64,
    support: f64,
}

#[derive(Debug, Clone, Copy)]
struct Accelerations {
    perimeter: f64,
    infill: f64,
    bridge: f64,
    other: f64,
    first_layer: f64,
}

impl Machine {
    fn new(p: &FdmProfile) -> Self {
        let nozzle = p.nozzle_diameter;
        let widths = Widths {
            external: external_width(p),
            perimeter: role_width(p, p.perimeter_extrusion_width, AUTO_WIDTH_OF_NOZZLE),
            infill: role_width(p, p.infill_extrusion_width, AUTO_WIDTH_OF_NOZZLE),
            solid: solid_width(p),
            top: role_width(p, p.top_infill_extrusion_width, 1.0),
            support: role_width(p, p.support_material_extrusion_width, 1.0),
        };
        let first_layer_width = match p.first_layer_extrusion_width {
            crate::Width::Auto => None,
            w => Some(w.resolve(nozzle, nozzle)),
        };
        // PrusaSlicer's estimate takes the profile's limits only for the
        // Marlin flavours, and its own (the keys' defaults) otherwise.
        let defaults = FdmProfile::default();
        let limits = if p.machine_limits_apply() { p } else { &defaults };
        let max_extruding = positive_or(limits.machine_max_acceleration_extruding, DEFAULT_ACCELERATION);
        let axis_limit =
            positive_or(limits.machine_max_acceleration_x.min(limits.machine_max_acceleration_y), f64::MAX);
        let max_extruding = max_extruding.min(axis_limit);
        let max_travel = if p.machine_limits_apply() && p.gcode_flavor == "marlin" {
            // Legacy Marlin has one acceleration for printing and travel.
            max_extruding
        } else {
            positive_or(limits.machine_max_acceleration_travel, DEFAULT_ACCELERATION).min(axis_limit)
        };
        let role = |own: f64| {
            let chosen = if p.default_acceleration > 0.0 {
                if own > 0.0 { own } else { p.default_acceleration }
            } else {
                max_extruding
            };
            chosen.min(max_extruding)
        };
        let acceleration = Accelerations {
            perimeter: role(p.perimeter_acceleration),
            infill: role(p.infill_acceleration),
            bridge: role(if p.bridge_acceleration > 0.0 { p.bridge_acceleration } else { p.infill_acceleration }),
            other: role(0.0),
            first_layer: role(p.first_layer_acceleration),
        };
        // Travel runs at the default acceleration where one `M204 S` sets
        // both (RepRap and legacy Marlin), at the travel limit otherwise.
        let travel_acceleration = if p.default_acceleration > 0.0 && p.gcode_flavor != "marlin2" {
            p.default_acceleration.min(max_travel)
        } else {
            max_travel
        };
        let jerk = positive_or(limits.machine_max_jerk_x.min(limits.machine_max_jerk_y), 10.0);
        let max_feed_xy = positive_or(limits.machine_max_feedrate_x.min(limits.machine_max_feedrate_y), f64::MAX);
        let max_feed_z = positive_or(limits.machine_max_feedrate_z, 12.0);
        let max_feed_e = positive_or(limits.machine_max_feedrate_e, 120.0);
        let travel = p.travel_speed.min(max_feed_xy);
        let travel_z = if p.travel_speed_z > 0.0 { p.travel_speed_z } else { p.travel_speed }.min(max_feed_z);
        let retract = p.retract_speed.min(max_feed_e).max(1e-3);
        let deretract =
            if p.deretract_speed > 0.0 { p.deretract_speed } else { p.retract_speed }.min(max_feed_e).max(1e-3);
        // The extruder's own moves: PrusaSlicer's estimate accelerates them
        // at the retract limit (capped by the E axis's) from the E jerk, so
        // a short retraction takes twice what its length over its speed says.
        let e_acceleration = positive_or(limits.machine_max_acceleration_retracting, DEFAULT_ACCELERATION)
            .min(positive_or(limits.machine_max_acceleration_e, f64::MAX));
        let e_jerk = positive_or(limits.machine_max_jerk_e, 2.5);
        let e_move = |length: f64, speed: f64| Self::run(length, 1.0, speed, e_acceleration, e_jerk);
        // With `wipe`, what is left after `retract_before_wipe` is drawn in
        // while the nozzle runs back along its last path at 80 % of the
        // travel speed, for as long as the retract speed needs: one short
        // move at the print acceleration, from and to a stop.
        let (standing, wipe_s) = if p.wipe && p.retract_length > 0.0 {
            let wiped = p.retract_length * (1.0 - p.retract_before_wipe.clamp(0.0, 1.0));
            let speed = (0.8 * travel).max(1e-3);
            let distance = wiped / retract * speed;
            (p.retract_length - wiped, Self::run(distance, 1.0, speed, acceleration.other, jerk))
        } else {
            (p.retract_length, 0.0)
        };
        let retract_s =
            e_move(standing, retract) + wipe_s + e_move(p.retract_length + p.retract_restart_extra, deretract);
        let z_acceleration = travel_acceleration.min(positive_or(limits.machine_max_acceleration_z, f64::MAX));
        let z_jerk = positive_or(limits.machine_max_jerk_z, 0.2);
        let mut machine = Self {
            nozzle,
            widths,
            first_layer_width,
            auto_volumetric: 0.0,
            acceleration,
            travel_acceleration,
            jerk,
            turn_stops: turn_weights(p.perimeter_speed / jerk),
            max_feed_xy,
            min_extruding_rate: limits.machine_min_extruding_rate,
            travel,
            travel_z,
            z_acceleration,
            z_jerk,
            retract_s,
            multiplier: p.extrusion_multiplier,
        };
        // Automatic speeds: the thinnest line at `max_print_speed`, as
        // PrusaSlicer sets its volumetric target.
        let h = p.layer_height;
        let thinnest = [widths.external, widths.perimeter, widths.infill, widths.solid, widths.top]
            .iter()
            .map(|w| h * spacing(*w, h))
            .fold(f64::INFINITY, f64::min);
        let mut auto = thinnest * p.max_print_speed;
        if p.max_volumetric_speed > 0.0 {
            auto = auto.min(p.max_volumetric_speed);
        }
        machine.auto_volumetric = auto;
        machine
    }

    /// The width of `role`'s lines on a layer.
    fn width(&self, role: Role, first: bool) -> f64 {
        if first && let Some(w) = self.first_layer_width {
            return w;
        }
        match role {
            Role::External => self.widths.external,
            Role::Perimeter | Role::SmallPerimeter | Role::GapFill | Role::FirstLayerExtra => self.widths.perimeter,
            Role::Sparse => self.widths.infill,
            Role::Solid => self.widths.solid,
            Role::Top => self.widths.top,
            Role::Bridge => self.nozzle,
            Role::Support | Role::SupportInterface => self.widths.support,
        }
    }

    fn acceleration(&self, role: Role, first: bool) -> f64 {
        if first {
            return self.acceleration.first_layer;
        }
        match role {
            Role::External | Role::Perimeter | Role::SmallPerimeter => self.acceleration.perimeter,
            Role::Bridge => self.acceleration.bridge,
            Role::Sparse | Role::Solid | Role::Top => self.acceleration.infill,
            _ => self.acceleration.other,
        }
    }

    /// Time of a Z-only move of `height` mm (a layer change or a lift).
    fn z_move(&self, height: f64) -> f64 {
        Self::run(height, 1.0, self.travel_z, self.z_acceleration, self.z_jerk)
    }

    /// Time to run `length` mm as `lines` separate lines at `speed`, each
    /// starting and ending at `entry` mm/s.
    fn run(length: f64, lines: f64, speed: f64, acceleration: f64, entry: f64) -> f64 {
        if length <= 0.0 || speed <= 0.0 {
            return 0.0;
        }
        let acceleration = acceleration.max(1.0);
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

fn positive_or(value: f64, fallback: f64) -> f64 {
    if value > 0.0 { value } else { fallback }
}

/// The feed rates of a profile's roles, before cooling, mm/s.
#[derive(Debug, Clone)]
struct Speeds<'p> {
    profile: &'p FdmProfile,
    machine: &'p Machine,
}

impl Speeds<'_> {
    /// The configured speed of `role` (0: auto).
    fn nominal(&self, role: Role) -> f64 {
        let p = self.profile;
        let solid = p.solid_infill_speed.resolve(p.infill_speed);
        match role {
            Role::External => p.external_perimeter_speed.resolve(p.perimeter_speed),
            Role::Perimeter | Role::FirstLayerExtra => p.perimeter_speed,
            Role::SmallPerimeter => p.small_perimeter_speed.resolve(p.perimeter_speed),
            Role::GapFill => p.gap_fill_speed,
            Role::Sparse => p.infill_speed,
            Role::Solid => solid,
            Role::Top => p.top_solid_infill_speed.resolve(solid),
            Role::Bridge => p.bridge_speed,
            Role::Support => p.support_material_speed,
            Role::SupportInterface => p.support_material_interface_speed.resolve(p.support_material_speed),
        }
    }

    /// The speed `role` prints at on a layer, given its line's cross-section
    /// (mm³ per mm): the first layer's speed, "auto", the volumetric caps and
    /// the machine's feed-rate limits.
    fn feed(&self, role: Role, mm3_per_mm: f64, first: bool, over_raft: bool) -> f64 {
        let p = self.profile;
        let mut speed = self.nominal(role);
        if first {
            speed = p.first_layer_speed.resolve(speed);
        } else if over_raft {
            speed = p.first_layer_speed_over_raft.resolve(speed);
        }
        let flow = mm3_per_mm.max(1e-9);
        if speed <= 0.0 {
            speed = self.machine.auto_volumetric / flow;
        }
        if p.max_volumetric_speed > 0.0 {
            speed = speed.min(p.max_volumetric_speed / flow);
        }
        if p.filament_max_volumetric_speed > 0.0 {
            speed = speed.min(p.filament_max_volumetric_speed / flow);
        }
        speed.min(self.machine.max_feed_xy).max(self.machine.min_extruding_rate).max(0.1)
    }
}

/// Estimates printing `report`'s part with `profile`. The report must have
/// been sliced with [`layering`]`(profile)`; with supports on, its overhangs
/// should have been measured at [`support_angle_deg`]`(profile)`.
pub fn estimate(report: &MeshReport, profile: &FdmProfile) -> Result<ProcessEstimate, PricingError> {
    check(profile)?;
    let wanted = layering(profile);
    let slices = report
        .slices
        .as_ref()
        .filter(|s| s.layer_height == wanted.layer_height && s.first_layer_height == wanted.first_layer_height)
        .ok_or(PricingError::NotSliced { layer_height: profile.layer_height })?;
    let machine = Machine::new(profile);
    let speeds = Speeds { profile, machine: &machine };
    let shape = Shape::of(report);
    let inner = sections(slices, profile, &machine);
    let (up, down) = exposures(slices, profile);
    let supports = support_per_layer(report, slices, profile, &machine);
    let raft = raft_layers(slices, profile);
    let raft_layer_count = if raft.is_empty() { 0 } else { profile.raft_layers };
    let skirt = skirt(slices, profile, &machine);
    let context =
        Context { slices, inner: &inner, up: &up, down: &down, supports, raft, profile, speeds, shape, skirt };

    // Layers in parallel, summed in layer order: the same part always gets
    // the same estimate, to the last digit (quotes are cached and compared).
    let layers: Vec<Work> = (0..slices.len()).into_par_iter().map(|i| context.layer(i)).collect();
    let mut work = layers.into_iter().fold(Work::default(), Work::add);
    work = work.add(context.first_layer_extras());
    let (custom_s, custom_mm3) = custom_gcode(profile);
    work.record(Feature::CustomGcode, custom_s, custom_mm3);

    let breakdown: Vec<Component> = Feature::ALL
        .iter()
        .map(|&f| Component {
            feature: f.label(),
            time_s: work.time_s[f as usize],
            material_cm3: work.mm3[f as usize] * machine.multiplier / 1000.0,
        })
        .collect();
    let print_time_s = breakdown.iter().map(|c| c.time_s).sum();
    let material_cm3 = breakdown.iter().map(|c| c.material_cm3).sum();
    Ok(ProcessEstimate {
        technology: Technology::Fdm,
        print_time_s,
        material_cm3,
        support_cm3: (work.mm3[Feature::Support as usize] + work.mm3[Feature::Raft as usize]) * machine.multiplier
            / 1000.0,
        waste_cm3: 0.0,
        layers: slices.len() as u64 + u64::from(raft_layer_count),
        parts_per_build: 1,
        breakdown,
    })
}

/// The part's footprint shape: its longer side's direction, for how lines
/// at `fill_angle` cross it.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// The bounding box's X side is the longer one.
    long_along_x: bool,
}

impl Shape {
    fn of(report: &MeshReport) -> Self {
        let size = report.geometry.bounding_box.size();
        Self { long_along_x: size[0] >= size[1] }
    }
}

/// Everything a layer's work depends on.
struct Context<'a> {
    slices: &'a Slices,
    inner: &'a [Section],
    up: &'a [f64],
    down: &'a [f64],
    supports: SupportPerLayer,
    raft: Raft,
    profile: &'a FdmProfile,
    speeds: Speeds<'a>,
    shape: Shape,
    /// Worked out once: every layer it goes round needs it.
    skirt: Option<Skirt>,
}

/// One run of lines of a role in a layer, before cooling.
#[derive(Debug, Clone, Copy)]
struct Run {
    feature: Feature,
    role: Role,
    length: f64,
    lines: f64,
    /// Cross-section of its lines, mm³ per mm.
    flow: f64,
    /// Volume it extrudes, mm³ (a bridge's threads differ from its flow).
    mm3: f64,
    /// The speed lines enter and leave at.
    entry: f64,
}

/// The skirt: loops around everything at the skirt distance (beyond the
/// brim), for `skirt_height` layers, as many as `min_skirt_length`
/// needs. That is a length of filament (PrusaSlicer's `_make_skirt` adds
/// loops until the first layer's extrude that much), not of path: 4 mm
/// of 1.75 mm filament is some 130 mm of first-layer line, more than one
/// loop round a small part.
fn skirt(slices: &Slices, p: &FdmProfile, m: &Machine) -> Option<Skirt> {
    if p.skirts == 0 || slices.is_empty() {
        return None;
    }
    let outline = skirt_outline(slices, p.skirt_height.max(1) as usize);
    if outline <= 0.0 {
        return None;
    }
    let h = slices.thickness(0);
    let line_spacing = spacing(m.width(Role::FirstLayerExtra, true), h);
    let flow = h * line_spacing;
    let brim = if p.brim_width > 0.0 && p.brim_type != "no_brim" { p.brim_width } else { 0.0 };
    let distance = p.skirt_distance + brim;
    let loop_length = |k: u32| outline + 2.0 * PI * (distance + f64::from(k) * line_spacing);
    let filament_area = PI / 4.0 * p.filament_diameter * p.filament_diameter;
    let filament_of = |path: f64| path * flow / filament_area;
    // The loops asked for, summed in closed form: `skirts` may be any u32,
    // and a profile must not buy seconds of work with one number.
    let mut loops = p.skirts;
    let asked = f64::from(loops);
    let mut length = asked * (outline + 2.0 * PI * distance) + PI * line_spacing * asked * (asked - 1.0);
    while filament_of(length) < p.min_skirt_length && loops < 1000 {
        length += loop_length(loops);
        loops += 1;
    }
    Some(Skirt { length, loops, layers: p.skirt_height.max(1).min(slices.len() as u32) })
}

/// The skirt's loops: their length on each layer it goes round, how many,
/// and how many layers.
#[derive(Debug, Clone, Copy)]
struct Skirt {
    length: f64,
    loops: u32,
    layers: u32,
}

impl Context<'_> {
    fn layer(&self, i: usize) -> Work {
        let (slices, p, m) = (self.slices, self.profile, self.speeds.machine);
        let h = slices.thickness(i);
        let first = i == 0 && self.raft.is_empty();
        let over_raft = i == 0 && !first;
        let section = &self.inner[i];
        let area_in = section.inner;
        let n = slices.len();
        let mut runs: Vec<Run> = Vec::with_capacity(12);
        let jerk = m.jerk;
        let push = |runs: &mut Vec<Run>, feature, role, length: f64, lines: f64, flow: f64, entry: f64| {
            if length > 0.0 {
                runs.push(Run { feature, role, length, lines, flow, mm3: length * flow, entry });
            }
        };
        let line = |role: Role| {
            let width = m.width(role, first);
            (width, spacing(width, h))
        };

        // Perimeters: each contour's loops, the outermost at the external
        // speed, any loop shorter than a small circle at the small speed.
        let corners = section.stops;
        let loops = f64::from(p.perimeters.max(1));
        let ((outer, outer_small), (rest, rest_small)) = (section.external_loops, section.inner_loops);
        let (_, external_spacing) = line(Role::External);
        let (_, perimeter_spacing) = line(Role::Perimeter);
        let overhang_share = if p.overhangs { section.overhang_share } else { 0.0 };
        // Arachne's widened beads carry the cores they absorbed.
        let inner_length = rest + rest_small;
        let outer_length = outer + outer_small;
        let widen = |length: f64| if length > 0.0 { section.absorbed * h / length } else { 0.0 };
        let (ext_widen, per_widen) =
            if inner_length > 0.0 { (0.0, widen(inner_length)) } else { (widen(outer_length), 0.0) };
        let ext_flow = h * external_spacing + ext_widen;
        let per_flow = h * perimeter_spacing + per_widen;
        push(
            &mut runs,
            Feature::ExternalPerimeter,
            Role::External,
            outer * (1.0 - overhang_share),
            corners,
            ext_flow,
            jerk,
        );
        push(&mut runs, Feature::ExternalPerimeter, Role::Bridge, outer * overhang_share, corners, ext_flow, jerk);
        push(&mut runs, Feature::ExternalPerimeter, Role::SmallPerimeter, outer_small, corners, ext_flow, jerk);
        let inner_corners = corners * (loops - 1.0);
        push(&mut runs, Feature::Perimeter, Role::Perimeter, rest, inner_corners, per_flow, jerk);
        push(&mut runs, Feature::Perimeter, Role::SmallPerimeter, rest_small, inner_corners, per_flow, jerk);
        // The classic generator's gap fill: the core of thin walls, as
        // short lines.
        if section.gap_fill > 0.0 {
            let length = section.gap_fill / perimeter_spacing;
            push(&mut runs, Feature::GapFill, Role::GapFill, length, length / 2.0, per_flow, jerk);
        }

        // Solid where a surface is exposed within the top or bottom layers;
        // small islands, and every N-th layer, are solid throughout.
        let top_layers = solid_layers(p.top_solid_layers, p.top_solid_min_thickness, p.layer_height);
        let bottom_layers = solid_layers(p.bottom_solid_layers, p.bottom_solid_min_thickness, p.layer_height);
        let from_above: f64 = self.up[i..n.min(i + top_layers)].iter().sum();
        let from_below: f64 = self.down[(i + 1).saturating_sub(bottom_layers)..=i].iter().sum();
        let mut solid = (from_above + from_below + section.small_islands).min(area_in);
        let every = p.solid_infill_every_layers as usize;
        if every > 0 && (i + 1).is_multiple_of(every) {
            solid = area_in;
        }
        // Only a wide exposure is a surface of its own: a narrow ring on a
        // slope rests on the layer next to it and is printed as plain solid.
        let wide = |exposed: f64, at: usize| {
            let perimeter = slices.perimeter[at.min(n - 1)];
            if exposed > WIDE_SURFACE_MM * perimeter { exposed } else { 0.0 }
        };
        let top_surface = wide(self.up[i], i).min(solid);
        let full = p.fill_density >= 0.999;
        // Bridges: skin over air, and the lowest layer of a top skin, which
        // spans the sparse infill below it.
        let over_infill = if top_layers >= 2 && !full {
            self.up.get(i + top_layers - 1).map_or(0.0, |&e| wide(e, i + top_layers - 1))
        } else {
            0.0
        };
        let bridge = if i == 0 { 0.0 } else { (wide(self.down[i], i) + over_infill).min(solid - top_surface) };
        let plain_solid = solid - top_surface - bridge;
        let sparse = area_in - solid;

        // Lines across a region: their count is its extent across the lines'
        // direction over the spacing, from the section's equivalent
        // rectangle and the pattern's angle (alternating by 90° per layer).
        let perimeter = slices.perimeter[i];
        let chord = |region: f64, angle_deg: f64| self.chord(region, perimeter, angle_deg, m.nozzle);
        let angle = p.fill_angle + if i % 2 == 1 { 90.0 } else { 0.0 };
        let lines_for = |region: f64, line_spacing: f64, angle: f64| {
            let length = region / line_spacing;
            (length, length / chord(region, angle))
        };
        let (_, solid_spacing) = line(Role::Solid);
        let (length, lines) = lines_for(plain_solid, solid_spacing, angle);
        push(&mut runs, Feature::SolidInfill, Role::Solid, length, lines, h * solid_spacing, jerk);
        let (_, top_spacing) = if i == 0 { line(Role::Solid) } else { line(Role::Top) };
        let top_role = if i == 0 { Role::Solid } else { Role::Top };
        let (length, lines) = lines_for(top_surface, top_spacing, angle);
        push(&mut runs, Feature::TopSolidInfill, top_role, length, lines, h * top_spacing, jerk);
        // Bridges are round threads of the nozzle's diameter (or flat ones
        // of the layer's height).
        let bridge_d = m.nozzle * p.bridge_flow_ratio.sqrt();
        let (bridge_pitch, thread) = if p.thick_bridges {
            (bridge_d + BRIDGE_EXTRA_SPACING_MM, PI / 4.0 * bridge_d * bridge_d)
        } else {
            (spacing(m.nozzle, h), h * spacing(m.nozzle, h) * p.bridge_flow_ratio)
        };
        let (length, lines) = lines_for(bridge, bridge_pitch, angle);
        push(&mut runs, Feature::BridgeInfill, Role::Bridge, length, lines, thread, jerk);

        // Sparse infill: lines at spacing / density, reaching a little into
        // the perimeters and anchored along them, on every N-th layer at N
        // layers' height; at 100 % the whole inner area at the infill speed.
        // Combined layers stay within the nozzle's height, as PrusaSlicer
        // keeps them.
        let every = (p.infill_every_layers.max(1) as usize).min(((m.nozzle / h + 1e-9).floor() as usize).max(1));
        let combined = (i + 1).is_multiple_of(every) || i + 1 == n;
        if combined && sparse > 0.0 {
            let layers_here = if (i + 1).is_multiple_of(every) { every } else { (i % every) + 1 } as f64;
            let infill_h = h * layers_here;
            let width = m.width(Role::Sparse, first);
            let infill_spacing = spacing(width, infill_h);
            // Each line is anchored, or joined to the next, along the
            // perimeter by about the gap between lines (spacing / density).
            // The plastic: the anchors add spacing / chord to the density, a
            // few percent in a wide region and most of the core's share in a
            // narrow one (a 3 mm wall's core). The time: every line ends in
            // a short anchor move, a stop of its own, so a narrow core's
            // zig-zag is twice as many moves as its lines, each too short to
            // reach the feed rate. PrusaSlicer's connection runs along the
            // perimeter only part of the way at speed, hence the fitted share
            // of the gap in the anchors' path.
            let flow = infill_h * infill_spacing;
            let region_chord = chord(sparse, angle);
            let (density, plastic) = if full {
                (1.0, 1.0)
            } else {
                (p.fill_density, (p.fill_density + infill_spacing / region_chord).min(1.0))
            };
            let length = sparse * density / infill_spacing;
            let (run, _) = infill_motion(&p.fill_pattern, region_chord, full);
            let turn = if full { jerk } else { INFILL_TURN_OF_JERK * jerk };
            let infill = |length: f64, lines: f64, mm3: f64| Run {
                feature: Feature::SparseInfill,
                role: Role::Sparse,
                length,
                lines,
                flow,
                mm3,
                entry: turn,
            };
            runs.push(infill(length, length / run, sparse * plastic / infill_spacing * flow));
            if !full {
                let anchors = INFILL_ANCHOR_OF_GAP * sparse / region_chord;
                runs.push(infill(anchors, length / region_chord, 0.0));
            }
        }

        // Supports: the per-layer share, as short lines at the support speed.
        let s = self.supports;
        if s.base + s.interface > 0.0 {
            let (_, support_spacing) = line(Role::Support);
            let flow = h * support_spacing;
            let base = s.base / flow;
            let interface = s.interface / flow;
            push(&mut runs, Feature::Support, Role::Support, base, base / SUPPORT_BASE_SEGMENT_MM, flow, jerk);
            push(
                &mut runs,
                Feature::Support,
                Role::SupportInterface,
                interface,
                interface / SUPPORT_INTERFACE_SEGMENT_MM,
                flow,
                jerk,
            );
        }

        // The skirt round this layer, if any: printed with it, so cooling
        // counts it and slows it too (PrusaSlicer's cooling buffer sees the
        // whole layer's G-code).
        if self.raft.is_empty()
            && let Some(run) = self.skirt.and_then(|skirt| self.skirt_run(&skirt, i as u32))
        {
            runs.push(run);
        }

        // Time the runs at their feed rates, then let cooling slow the
        // fastest down until the layer takes its minimum time.
        let timed: Vec<(Run, f64, f64)> = runs
            .iter()
            .map(|r| (*r, self.speeds.feed(r.role, r.flow, first, over_raft), m.acceleration(r.role, first)))
            .collect();
        let curved = infill_motion(&p.fill_pattern, 1.0, full).1;
        let mut w = Work::default();

        // Travel: a few short hops per layer, the longer ones retracted
        // (and lifted), and the layer change.
        let hop_length = self.chord(area_in.max(section.perimeters), perimeter, 45.0, m.nozzle).min(50.0) / 2.0;
        let islands_and_holes = if slices.contours.is_empty() {
            contour_complexity(slices.area[i], perimeter).sqrt()
        } else {
            section.contours as f64
        };
        let hops = TRAVELS_PER_LAYER + TRAVELS_PER_CONTOUR * islands_and_holes + section.open_paths;
        let retracted = section.open_paths
            + if hop_length > p.retract_before_travel { RETRACTIONS_PER_CONTOUR * islands_and_holes } else { 0.0 };
        let retracted =
            retracted * if p.only_retract_when_crossing_perimeters { RETRACT_SHARE_CROSSING_ONLY } else { 1.0 };
        let z = slices.z.get(i).copied().unwrap_or(0.0);
        let lifts = p.retract_lift > 0.0
            && z >= p.retract_lift_above
            && (p.retract_lift_below <= 0.0 || z <= p.retract_lift_below);
        let lift_s = if lifts { 2.0 * m.z_move(p.retract_lift) } else { 0.0 };
        let travel_nominal = hops * hop_length / m.travel + retracted * (m.retract_s + lift_s);
        let travel = hops * Machine::run(hop_length, 1.0, m.travel, m.travel_acceleration, jerk)
            + retracted * (m.retract_s + lift_s);
        w.record(Feature::Travel, travel, 0.0);
        let layer_change = m.z_move(h) + if p.retract_layer_change { m.retract_s + lift_s } else { 0.0 };
        w.record(Feature::LayerChange, layer_change, 0.0);

        let time_of = |run: &Run, feed: f64, acceleration: f64| {
            let time = Machine::run(run.length, run.lines, feed, acceleration, run.entry.min(feed));
            if run.feature == Feature::SparseInfill { time + run.length * curved } else { time }
        };
        let mut before = 0.0;
        for (run, feed, acceleration) in &timed {
            let time = time_of(run, *feed, *acceleration);
            before += time;
            w.record(run.feature, time, run.mm3);
        }
        // What cooling adds is its own line, so the features keep their
        // unslowed times.
        if let Some(feeds) = cooled_feeds(&timed, travel_nominal + layer_change, p) {
            let after: f64 = timed.iter().zip(feeds).map(|((run, _, a), feed)| time_of(run, feed, *a)).sum();
            w.record(Feature::Cooling, (after - before).max(0.0), 0.0);
        }
        w
    }

    /// The mean length of a run of lines at `angle_deg` across a region of
    /// `region` mm² in a section of contour length `perimeter`: the region's
    /// area over its extent across the lines, from the rectangle with the
    /// section's area and perimeter, laid along the part's longer side.
    /// Round or ragged sections (no such rectangle) take the mean chord
    /// over all directions (Cauchy: π A / P).
    fn chord(&self, region: f64, perimeter: f64, angle_deg: f64, nozzle: f64) -> f64 {
        let perimeter = perimeter.max(1e-9);
        let cauchy = PI * region / perimeter;
        let half = perimeter / 2.0;
        let discriminant = half * half - 4.0 * region;
        let chord = if discriminant > 0.0 && region > 0.0 {
            let long = (half + discriminant.sqrt()) / 2.0;
            let short = (region / long).max(1e-9);
            let (along_x, along_y) = if self.shape.long_along_x { (long, short) } else { (short, long) };
            let (sin, cos) = angle_deg.to_radians().sin_cos();
            // Lines at the angle cross an extent of |sin| x + |cos| y.
            region / (along_x * sin.abs() + along_y * cos.abs()).max(1e-9)
        } else {
            cauchy
        };
        chord.max(nozzle)
    }

    /// The skirt's lines on `layer`, if it goes round that layer: at the
    /// first layer's width there, the perimeters' above.
    fn skirt_run(&self, skirt: &Skirt, layer: u32) -> Option<Run> {
        if layer >= skirt.layers {
            return None;
        }
        let m = self.speeds.machine;
        let h = self.slices.thickness(layer as usize);
        let width = if layer == 0 { m.width(Role::FirstLayerExtra, true) } else { m.widths.perimeter };
        let flow = h * spacing(width, h);
        Some(Run {
            feature: Feature::SkirtBrim,
            role: Role::FirstLayerExtra,
            length: skirt.length,
            lines: f64::from(skirt.loops),
            flow,
            mm3: skirt.length * flow,
            entry: m.jerk,
        })
    }

    /// Skirt and brim around the first layer, and the raft under it.
    fn first_layer_extras(&self) -> Work {
        let (slices, p, m) = (self.slices, self.profile, self.speeds.machine);
        let mut w = Work::default();
        if slices.is_empty() {
            return w;
        }
        let h = slices.thickness(0);
        let width = m.width(Role::FirstLayerExtra, true);
        let line_spacing = spacing(width, h);
        let flow = h * line_spacing;
        let speed = self.speeds.feed(Role::FirstLayerExtra, flow, true, false);
        let acceleration = m.acceleration(Role::FirstLayerExtra, true);
        let islands = self.inner.first().map_or(1, |s| s.islands.max(1)) as f64;
        // Brim: loops one spacing apart out to the brim's width, around
        // each island's outline (and inside its holes, for the inner types).
        if p.brim_width > 0.0 && p.brim_type != "no_brim" {
            let loops = (p.brim_width / line_spacing).floor();
            let (outer, inner) = brim_outlines(slices);
            // Loop k runs at (k + 1/2) spacings out: summed in closed form
            // (the halves add up to loops² / 2), so a brim metres wide
            // costs no more to price than a narrow one.
            let around = |length: f64, grow: f64| loops * length + grow * PI * line_spacing * loops * loops;
            let mut length = 0.0;
            if p.brim_type != "inner_only" {
                length += around(outer, islands);
            }
            if p.brim_type == "inner_only" || p.brim_type == "outer_and_inner" {
                length += around(inner, -1.0).max(0.0);
            }
            w.record(
                Feature::SkirtBrim,
                Machine::run(length, loops.max(1.0), speed, acceleration, m.jerk),
                length * flow,
            );
        }
        // The skirt is printed with the layers it goes round (`layer`), and
        // slowed with them; with a raft it goes round the raft, timed here.
        if !self.raft.is_empty()
            && let Some(skirt) = self.skirt
        {
            for (layer, run) in (0..skirt.layers).filter_map(|layer| Some((layer, self.skirt_run(&skirt, layer)?))) {
                let v = self.speeds.feed(run.role, run.flow, layer == 0, false);
                let a = m.acceleration(run.role, layer == 0);
                w.record(Feature::SkirtBrim, Machine::run(run.length, run.lines, v, a, run.entry), run.mm3);
            }
        }
        // Raft: PrusaSlicer's layers, bottom up. The first is printed like
        // any first layer (its speed, width and height) at
        // `raft_first_layer_density`, with a loop round it, over the
        // footprint grown by `raft_first_layer_expansion` more; then base
        // layers at the support's density; then interface layers, the last
        // of which (the contact layer) carries the part. Half the layers,
        // rounded up, are interface. Above the first, a raft layer is as
        // thick as the nozzle allows (`0.75 × nozzle`), however thin the
        // part's layers.
        let raft = &self.raft;
        if !raft.is_empty() {
            for (layer, count) in raft_stack(p, h) {
                let count = f64::from(count);
                let width = m.width(Role::Support, layer.first);
                let line_spacing = spacing(width, layer.height);
                let flow = layer.height * line_spacing;
                let density = match layer.role {
                    _ if layer.first => p.raft_first_layer_density,
                    Role::SupportInterface => interface_density(p, line_spacing),
                    _ => support_density(p, line_spacing),
                };
                let grid = p.support_material_spacing.max(0.0) + line_spacing;
                // Snapped to the support grid: the footprint is every cell it
                // touches, half a cell beyond its outline on average, and its
                // holes lose the cells their edges touch.
                let area = raft
                    .area(layer.grow + RAFT_GRID_OVERSHOOT_CELLS * grid, layer.grow + RAFT_HOLE_CLOSING_CELLS * grid);
                let sheath = if layer.first { raft.outline(layer.grow) } else { 0.0 };
                let length = area * density.clamp(0.0, 1.0) / line_spacing + sheath;
                let v = self.speeds.feed(layer.role, flow, layer.first, false);
                let runs = length / SUPPORT_BASE_SEGMENT_MM.max(area.sqrt());
                let time = Machine::run(length, runs.max(1.0), v, m.acceleration(layer.role, layer.first), m.jerk);
                w.record(Feature::Raft, time * count, length * flow * count);
                w.record(Feature::LayerChange, m.z_move(layer.height) * count, 0.0);
            }
        }
        w
    }
}

/// Top or bottom layers: the count, or as many as the minimum thickness
/// needs. No more than a count could say (`u32::MAX`): an absurd thickness
/// would otherwise make `usize::MAX`, and a layer's index plus it overflow.
fn solid_layers(count: u32, min_thickness: f64, layer_height: f64) -> usize {
    let by_thickness =
        if min_thickness > 0.0 && count > 0 { (min_thickness / layer_height - 1e-9).ceil() } else { 0.0 };
    (count as usize).max(by_thickness.min(f64::from(u32::MAX)) as usize)
}

/// The length of the outline a skirt goes round: PrusaSlicer's skirt
/// follows the convex hull of every layer it is printed on
/// (`skirt_height`), so a part that stands on a small foot and widens above
/// it gets the wider loop. The hull of the union is at least the longest of
/// the layers' own.
fn skirt_outline(slices: &Slices, layers: usize) -> f64 {
    (0..layers.min(slices.len())).map(|i| layer_outline(slices, i)).fold(0.0, f64::max)
}

/// The length of a layer's outline as a skirt goes round it: its
/// islands' outlines, but never more than its bounding rectangle's
/// perimeter-like hull (a skirt goes round a plate of parts, not into it).
fn layer_outline(slices: &Slices, layer: usize) -> f64 {
    let outer: f64 = match slices.contours.get(layer) {
        Some(loops) if !loops.is_empty() => loops.iter().filter(|c| !c.is_hole()).map(|c| c.length).sum(),
        _ => slices.perimeter.get(layer).copied().unwrap_or(0.0),
    };
    let area = slices.area.get(layer).copied().unwrap_or(0.0).max(0.0);
    // A convex hull is at least as long as a circle of the same area and no
    // longer than the islands' own outlines.
    outer.max(2.0 * (PI * area).sqrt())
}

/// The first layer's islands' outlines and its holes' outlines, mm.
fn brim_outlines(slices: &Slices) -> (f64, f64) {
    match slices.contours.first() {
        Some(loops) if !loops.is_empty() => (
            loops.iter().filter(|c| !c.is_hole()).map(|c| c.length).sum(),
            loops.iter().filter(|c| c.is_hole()).map(|c| c.length).sum(),
        ),
        _ => (slices.perimeter.first().copied().unwrap_or(0.0), 0.0),
    }
}

/// Slows a layer's adjustable runs to a common feed-rate cap, so the layer
/// takes `slowdown_below_layer_time` by PrusaSlicer's own reckoning (length
/// over feed rate, no acceleration), never below `min_print_speed`. Returns
/// each run's new feed rate, or `None` when the layer is slow enough.
fn cooled_feeds(runs: &[(Run, f64, f64)], fixed_s: f64, p: &FdmProfile) -> Option<Vec<f64>> {
    if !p.cooling || p.slowdown_below_layer_time <= 0.0 || runs.is_empty() {
        return None;
    }
    let target = p.slowdown_below_layer_time;
    let capped = |feed: f64, adjustable: bool, cap: f64| {
        if adjustable && feed > cap { cap.max(p.min_print_speed).min(feed) } else { feed }
    };
    let nominal = |cap: f64| -> f64 {
        fixed_s
            + runs
                .iter()
                .map(|(r, feed, _)| r.length / capped(*feed, r.feature.adjustable(), cap).max(1e-6))
                .sum::<f64>()
    };
    let fastest = runs.iter().map(|(_, f, _)| *f).fold(0.0, f64::max);
    if fastest <= 0.0 || nominal(f64::INFINITY) >= target {
        return None;
    }
    // Bisect for the cap that makes the layer last `target`, or the floor.
    let (mut lo, mut hi) = (p.min_print_speed.max(1e-3), fastest);
    if nominal(lo) <= target {
        hi = lo;
    } else {
        for _ in 0..48 {
            let mid = 0.5 * (lo + hi);
            if nominal(mid) > target { lo = mid } else { hi = mid }
        }
    }
    Some(runs.iter().map(|(r, feed, _)| capped(*feed, r.feature.adjustable(), hi)).collect())
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
            // Untraced, the layer is one loop with a rectangle's corners.
            let single = [Contour { length: slices.perimeter[i], area: slices.area[i], turns: [0, 0, 0, 4] }];
            let loops = match slices.contours.get(i) {
                Some(traced) if !traced.is_empty() => traced.as_slice(),
                _ => &single,
            };
            let below = if i > 0 { slices.area[i - 1].max(0.0) } else { f64::INFINITY };
            Section::of(loops, profile, machine, i == 0, slices.thickness(i), slices.area[i].max(0.0), below)
        })
        .collect()
}

/// What one turn in each of the mesh's bins costs, in stops at the jerk
/// speed, for a head fed at `feed_over_jerk` times its jerk `J`. Keeping
/// the change of its velocity within `J`, it goes through a turn of θ at
/// `J / (2 sin(θ/2))`: the jerk itself at 60° and sharper, at full feed
/// when the turn is gentle enough. A turn costs the square of the share of
/// the feed it sheds, as a stop at `J` does (the time lost braking and
/// speeding up again grows with the square of the speed lost). Each bin
/// counts at its middle angle. Worked out once per profile.
fn turn_weights(feed_over_jerk: f64) -> [f64; 4] {
    let edges = mesh::TURN_BINS_DEG;
    let middles = [(edges[0] + edges[1]) / 2.0, (edges[1] + edges[2]) / 2.0, (edges[2] + edges[3]) / 2.0, edges[3]];
    middles.map(|deg| {
        if deg >= edges[3] || feed_over_jerk <= 1.0 || !feed_over_jerk.is_finite() {
            return 1.0;
        }
        let junction = 1.0 / (2.0 * (deg.to_radians() / 2.0).sin());
        ((feed_over_jerk - junction) / (feed_over_jerk - 1.0)).clamp(0.0, 1.0).powi(2)
    })
}

/// What a loop's turns cost at `weights` ([`turn_weights`]), in stops at
/// the jerk speed: at least one, at its seam.
fn stops(turns: &[u32; 4], weights: &[f64; 4]) -> f64 {
    turns.iter().zip(weights).map(|(&n, w)| f64::from(n) * w).sum::<f64>().max(1.0)
}

/// When Arachne adds a bead, as shares of a bead's spacing: `split` turns
/// an odd middle bead into two, `add` puts a new one between an even
/// count's innermost two (PrusaSlicer derives both from `min_bead_width`).
#[derive(Debug, Clone, Copy)]
struct BeadThresholds {
    split: f64,
    add: f64,
}

/// How many beads Arachne lays across a wall `thickness` wide (its edges'
/// rounding left out): one outer bead, or two at the external spacing, then
/// inner ones at the perimeter spacing, one more where the space left holds
/// the threshold's share of one.
fn arachne_beads(thickness: f64, ext_spacing: f64, per_spacing: f64, thresholds: BeadThresholds) -> u32 {
    if thickness.is_nan() || thickness <= 2.0 * ext_spacing {
        return if thickness > (1.0 + thresholds.split) * ext_spacing { 2 } else { 1 };
    }
    let rest = thickness - 2.0 * ext_spacing;
    // A wall's beads are bounded by its loops; the count cannot overflow.
    let whole = (rest / per_spacing).floor().min(f64::from(u16::MAX));
    let left = rest - whole * per_spacing;
    let whole = whole as u32;
    let threshold = if whole % 2 == 1 { thresholds.split } else { thresholds.add };
    2 + whole + u32::from(left >= threshold * per_spacing)
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
    /// Cores narrower than a line that Arachne's perimeters widen to cover,
    /// mm²: their plastic goes into the loops, which keep their paths.
    absorbed: f64,
    /// The classic generator's gap fill, mm².
    gap_fill: f64,
    /// Islands and holes that are printed.
    contours: usize,
    /// Paths that end inside a thin solid island: Arachne lays such an
    /// island's inner loops as open lines, each ending in a retracted
    /// travel to the next.
    open_paths: f64,
    /// What the loops' turns cost, counted in stops at the jerk speed (at
    /// least one a loop, its seam).
    stops: f64,
    islands: usize,
    /// Length of the outermost loops (at the external perimeter speed) and
    /// of the rest, each split into (normal, small) loops, mm.
    external_loops: (f64, f64),
    inner_loops: (f64, f64),
    /// The share of the outer loop that hangs over air (overhang perimeters).
    overhang_share: f64,
}

impl Section {
    fn of(
        loops: &[Contour],
        profile: &FdmProfile,
        m: &Machine,
        first: bool,
        height: f64,
        area: f64,
        area_below: f64,
    ) -> Self {
        let ext_width = m.width(Role::External, first);
        let width = m.width(Role::Perimeter, first);
        let ext_spacing = spacing(ext_width, height);
        let per_spacing = spacing(width, height);
        let count = profile.perimeters;
        // Loop k's centre: half an external width in, then the mean of the
        // two spacings, then a perimeter spacing each; infill starts half a
        // spacing past the last.
        let offset_of = |k: u32| {
            if k == 0 {
                ext_width / 2.0
            } else {
                ext_width / 2.0 + (ext_spacing + per_spacing) / 2.0 + f64::from(k - 1) * per_spacing
            }
        };
        let band = if count > 0 { offset_of(count - 1) + per_spacing.min(ext_spacing) / 2.0 } else { 0.0 };
        // Infill overlaps the last loop: the island's infill region, for the
        // small-island test, reaches a little further out.
        let infill_band = (band - INFILL_OVERLAP_OF_SPACING * per_spacing).max(0.0);
        let k = OFFSET_CORNER_FACTOR;
        let shrink = |area: f64, length: f64, t: f64| {
            let stripped = area - length * t;
            if stripped > 0.0 { (stripped + k * t * t).min(area) } else { 0.0 }
        };
        let classic = profile.perimeter_generator == "classic";
        let min_feature = profile.min_feature_size.resolve(m.nozzle, 0.0);
        let mut section = Section::default();
        let (mut islands, mut holes, mut holes_infill, mut hole_length) = (Vec::new(), 0.0, 0.0, 0.0);
        let mut total = 0.0;
        for contour in loops {
            let hole = contour.is_hole();
            // The classic generator drops a section thinner than a line
            // unless it detects thin walls; Arachne drops one thinner than
            // its smallest feature (a sliver of a broken mesh, a knife edge).
            // Twice the area over the outline is a long strip's width (half
            // a round island's diameter, so a pin narrower than twice the
            // smallest feature goes too: a few tenths of a millimetre).
            let thinnest = if classic && !profile.thin_walls {
                ext_width
            } else if classic {
                0.0
            } else {
                min_feature
            };
            if !hole && 2.0 * contour.area < thinnest * contour.length {
                continue;
            }
            section.contours += 1;
            total += contour.area;
            section.stops += stops(&contour.turns, &m.turn_stops);
            if hole {
                holes += (-contour.area + contour.length * band + k * band * band).max(0.0);
                holes_infill += (-contour.area + contour.length * infill_band + k * infill_band * infill_band).max(0.0);
                hole_length += contour.length;
            } else {
                section.islands += 1;
                // Long, and thinner than its loops from both sides (a
                // wing's airfoil, a blade): Arachne lays the loops that do
                // not fit as open lines, each ending in a retracted travel
                // (PrusaSlicer's G-code for the wing: about five retractions
                // a layer with three perimeters). A small round island (a
                // screw's shaft) closes its loops instead.
                let long = contour.length * contour.length > THIN_ISLAND_ELONGATION * contour.area;
                if !classic && long && contour.area < band * contour.length {
                    section.open_paths += f64::from(count);
                }
                islands.push((
                    shrink(contour.area, contour.length, band),
                    shrink(contour.area, contour.length, infill_band),
                    contour.length,
                ));
            }
            // The loops themselves, each one spacing further from the contour.
            for loop_index in 0..count {
                let offset = offset_of(loop_index);
                let length = if hole { contour.length + 2.0 * k * offset } else { contour.length - 2.0 * k * offset };
                if length <= 0.0 {
                    break;
                }
                let small = length <= SMALL_PERIMETER_LENGTH_MM;
                let bucket = if loop_index == 0 { &mut section.external_loops } else { &mut section.inner_loops };
                if small { bucket.1 += length } else { bucket.0 += length }
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
        // wall's core, which the slicer leaves as strips it fills solid, or
        // with the classic generator as gap fill). Arachne's perimeters take
        // a core narrower than a line.
        let narrow = NARROW_INFILL_MM;
        let small_area = profile.solid_infill_below_area;
        for island in &islands {
            let is_narrow = 2.0 * island.0 < narrow * island.2;
            // Arachne widens its beads over a core narrower than a line
            // (a 2 mm wall with two loops a side is all perimeters in
            // PrusaSlicer's G-code, at the loops' own paths).
            if !classic && profile.perimeters > 0 && 2.0 * island.0 < per_spacing * island.2 {
                section.absorbed += island.0;
                section.inner -= island.0;
            } else if island.1 < small_area || is_narrow {
                if classic && 2.0 * island.0 < 2.0 * per_spacing * island.2 {
                    if profile.gap_fill_enabled {
                        section.gap_fill += island.0;
                    }
                    section.inner -= island.0;
                } else {
                    section.small_islands += island.0;
                }
            }
        }
        section.inner = section.inner.max(0.0);
        // The rounded edge of the outer loop leaves a sliver no plastic fills.
        let outer_length: f64 = loops.iter().filter(|c| !c.is_hole()).map(|c| c.length).sum();
        let gap = if count > 0 { outer_length * (ext_width - ext_spacing) / 2.0 } else { 0.0 };
        section.perimeters = (total.max(0.0) - section.inner - section.gap_fill - gap).max(0.0);
        // Loops cannot hold more plastic than the band they fill.
        let outer_loops = section.external_loops.0 + section.external_loops.1;
        let inner_loops = section.inner_loops.0 + section.inner_loops.1;
        let loop_length = outer_loops + inner_loops;
        let fits = section.perimeters / per_spacing;
        if loop_length > fits && loop_length > 0.0 {
            // Arachne lays a wall too thin for its loops as a whole number
            // of beads along it, widened to fill it: a 1.6 mm wall with two
            // loops a side and 0.6 mm lines is two beads, both outer ones.
            // Only a wall around a hole (a tube, a cup) is taken to be as
            // thick all along: a solid island thins to its tips (a wing's
            // airfoil), where the beads' mean count is nearer the fraction
            // of loops that fills it.
            let boundary = outer_length + hole_length;
            let beads = if classic || hole_length <= 0.0 {
                None
            } else {
                let min_bead = profile.min_bead_width.resolve(m.nozzle, 0.0);
                let thresholds = BeadThresholds {
                    split: (2.0 * min_bead / ext_width - 1.0).clamp(0.01, 0.99),
                    add: (min_bead / width).clamp(0.01, 0.99),
                };
                // Its thickness across its outline, less the outer beads'
                // rounded edges.
                let thickness = 2.0 * total / boundary - (ext_width - ext_spacing);
                Some(arachne_beads(thickness, ext_spacing, per_spacing, thresholds))
                    .filter(|&b| b < count.saturating_mul(2))
            };
            let (outer_path, inner_path) = match beads {
                Some(beads) => {
                    // Two outer beads, the rest inner ones (outer, with no
                    // inner loop to take them).
                    let outer = if inner_loops > 0.0 { beads.min(2) } else { beads };
                    let along = boundary / 2.0;
                    (f64::from(outer) * along, f64::from(beads - outer) * along)
                }
                None => (outer_loops * fits / loop_length, inner_loops * fits / loop_length),
            };
            for (part, path, now) in [
                (&mut section.external_loops, outer_path, outer_loops),
                (&mut section.inner_loops, inner_path, inner_loops),
            ] {
                let scale = if now > 0.0 { path / now } else { 0.0 };
                part.0 *= scale;
                part.1 *= scale;
            }
            if beads.is_some() {
                // The beads widen (or narrow) to carry the wall's plastic.
                section.absorbed = section.perimeters - outer_path * ext_spacing - inner_path * per_spacing;
            }
        }
        // The outer loop overhangs where this layer reaches past the one
        // below by more than half a line: a share of the loop.
        if area_below.is_finite() && area > area_below && outer_length > 0.0 {
            let reach = (area - area_below) / outer_length;
            section.overhang_share =
                if reach > ext_width / 2.0 { ((reach - ext_width / 2.0) / reach).min(1.0) } else { 0.0 };
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
    let sliver = skin_min_width(profile);
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

/// Support volume per layer (mm³), base and interface.
#[derive(Debug, Clone, Copy, Default)]
struct SupportPerLayer {
    base: f64,
    interface: f64,
}

/// The base's line density: lines one support width wide at
/// `support_material_spacing` apart (the grid crosses twice as many).
fn support_density(p: &FdmProfile, line_spacing: f64) -> f64 {
    let single = line_spacing / (p.support_material_spacing.max(0.0) + line_spacing);
    let crossings = if p.support_material_pattern == "rectilinear" { 1.0 } else { 2.0 };
    (single * crossings).min(1.0)
}

/// Support volume per layer, spread evenly over the layers; zero when
/// supports are off. The mesh engine measures the columns from the surface
/// under each overhang (the plate or the part) up to it, grown by
/// [`support_shape`]'s margin; the base fills a share of them (the pattern
/// at its spacing, and its sheath), less the contact gap under the part;
/// the interface is a few dense layers on top of each column, and under
/// those standing on the part. With `support_material_buildplate_only` the
/// columns standing on the part go.
fn support_per_layer(report: &MeshReport, slices: &Slices, profile: &FdmProfile, m: &Machine) -> SupportPerLayer {
    if !profile.support_material || !profile.support_material_auto || slices.is_empty() {
        return SupportPerLayer::default();
    }
    let p = &report.printability;
    let layers = slices.len() as f64;
    let h = profile.layer_height;
    let support_spacing = spacing(m.widths.support, h);
    let on_part_share =
        if p.support_contact_area > 0.0 { (p.support_on_part_area / p.support_contact_area).min(1.0) } else { 0.0 };
    let (columns, contact, on_part) = if profile.support_material_buildplate_only {
        (p.support_column_volume * (1.0 - on_part_share), p.support_contact_area - p.support_on_part_area, 0.0)
    } else {
        (p.support_column_volume, p.support_contact_area, p.support_on_part_area)
    };
    let gap = contact.max(0.0) * profile.support_material_contact_distance;
    let base = (columns - gap).max(0.0) * support_density(profile, support_spacing) * SUPPORT_BASE_FILL_FACTOR;
    let interface_density = interface_density(profile, support_spacing);
    let top_layers = f64::from(profile.support_material_interface_layers);
    let bottom_layers = if profile.support_material_bottom_interface_layers < 0 {
        top_layers
    } else {
        f64::from(profile.support_material_bottom_interface_layers)
    };
    let interface = (contact.max(0.0) * top_layers + on_part.max(0.0) * bottom_layers)
        * h
        * interface_density
        * SUPPORT_INTERFACE_FILL;
    SupportPerLayer { base: base / layers, interface: interface / layers }
}

/// The dense interface's share of a layer: its lines' spacing over their
/// pitch (`support_material_interface_spacing` apart; 0 is solid). With no
/// interface layers PrusaSlicer prints the interface as base.
fn interface_density(p: &FdmProfile, line_spacing: f64) -> f64 {
    if p.support_material_interface_layers == 0 {
        support_density(p, line_spacing)
    } else if p.support_material_interface_spacing > 0.0 {
        line_spacing / (p.support_material_interface_spacing + line_spacing)
    } else {
        1.0
    }
}

/// The part's first layer, as a raft grows it: its islands, and its holes,
/// which the raft's grid closes from their edges.
#[derive(Debug, Clone, Default)]
struct Raft {
    /// The islands' total area, mm², their outlines' length, mm, and how
    /// many there are.
    island_area: f64,
    island_outline: f64,
    islands: f64,
    /// Each hole's area (positive), mm², and outline, mm.
    holes: Vec<(f64, f64)>,
}

impl Raft {
    fn is_empty(&self) -> bool {
        self.island_area <= 0.0
    }

    /// The footprint with its islands grown by `grow` and its holes closed
    /// by `close` from their edges, mm². Islands grow as convex shapes do
    /// (each gains its outline times the distance and a disk); a hole
    /// shrinks likewise, and is gone once `close` reaches its inner radius
    /// (twice its area over its outline: a disk's radius, a square's half
    /// side).
    fn area(&self, grow: f64, close: f64) -> f64 {
        let grow = grow.max(0.0);
        let islands = self.island_area + self.island_outline * grow + self.islands * PI * grow * grow;
        let holes: f64 = self
            .holes
            .iter()
            .map(|&(area, outline)| {
                let inner_radius = 2.0 * area / outline.max(1e-9);
                if close >= inner_radius { 0.0 } else { (area - outline * close + PI * close * close).max(0.0) }
            })
            .sum();
        (islands - holes).max(0.0)
    }

    /// The islands' outline once grown by `grow`, mm.
    fn outline(&self, grow: f64) -> f64 {
        self.island_outline + self.islands * 2.0 * PI * grow.max(0.0)
    }
}

/// The part's first layer, when the profile prints a raft under it.
fn raft_layers(slices: &Slices, p: &FdmProfile) -> Raft {
    if p.raft_layers == 0 || slices.is_empty() {
        return Raft::default();
    }
    match slices.contours.first() {
        Some(loops) if !loops.is_empty() => {
            let islands = loops.iter().filter(|c| !c.is_hole());
            let holes = loops.iter().filter(|c| c.is_hole());
            Raft {
                island_area: islands.clone().map(|c| c.area).sum::<f64>().max(1e-9),
                island_outline: islands.clone().map(|c| c.length).sum(),
                islands: islands.count().max(1) as f64,
                holes: holes.map(|c| (-c.area, c.length)).collect(),
            }
        }
        _ => Raft {
            island_area: slices.area[0].max(1e-9),
            island_outline: layer_outline(slices, 0),
            islands: 1.0,
            holes: Vec::new(),
        },
    }
}

/// How much further than the contact layer the raft's layers under it
/// reach, mm: PrusaSlicer's `inflate_factor_fine` in `generate_raft_base`.
const RAFT_UNDER_CONTACT_MM: f64 = 0.5;

/// How far past an outline a raft snapped to PrusaSlicer's support grid
/// reaches, in grid cells: the grid keeps every cell the footprint touches,
/// and an outline falls anywhere in a cell, so half a cell on average.
/// Derived, not fitted (on the fitting set's raft rows 0.25 gave the same
/// time and a little more material error).
const RAFT_GRID_OVERSHOOT_CELLS: f64 = 0.5;

/// One layer of a raft: how thick, in which role, how far beyond the part's
/// first layer it reaches, and whether it is the print's first layer.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RaftLayer {
    height: f64,
    role: Role,
    grow: f64,
    first: bool,
}

/// PrusaSlicer's raft (its `SlicingParameters` and `generate_raft_base`),
/// bottom up, each kind of layer with how many of it there are: of
/// `raft_layers`, half rounded up are interface and the rest base, the
/// first layer counted as base and the contact layer as interface. The
/// first layer is `first_layer_height` thick, the others at least `0.75 ×
/// nozzle`. The contact layer covers the part's first layer grown by
/// `raft_expansion`; the layers under it reach half a millimetre further,
/// and the first layer `raft_first_layer_expansion` further. A raft of one
/// layer is only its contact layer. Counted rather than listed, so a
/// careless `raft_layers` of four billion costs no memory.
fn raft_stack(p: &FdmProfile, first_layer_height: f64) -> Vec<(RaftLayer, u32)> {
    let n = p.raft_layers;
    let grow = p.raft_expansion.max(0.0);
    let contact = |height| RaftLayer { height, role: Role::SupportInterface, grow, first: n == 1 };
    match n {
        0 => return Vec::new(),
        1 => return vec![(contact(first_layer_height), 1)],
        _ => {}
    }
    let interface = n.div_ceil(2);
    let base = n - interface;
    let thick = p.layer_height.max(0.75 * p.nozzle_diameter);
    let under = grow + RAFT_UNDER_CONTACT_MM;
    let first_grow = grow + RAFT_UNDER_CONTACT_MM.max(p.raft_first_layer_expansion);
    let layer = |role| RaftLayer { height: thick, role, grow: under, first: false };
    [
        (RaftLayer { height: first_layer_height, role: Role::Support, grow: first_grow, first: true }, 1),
        (layer(Role::Support), base - 1),
        (layer(Role::SupportInterface), interface - 1),
        (contact(thick), 1),
    ]
    .into_iter()
    .filter(|&(_, count)| count > 0)
    .collect()
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
/// mm than its feed rate says. At 100 % every pattern runs chord to chord.
fn infill_motion(pattern: &str, chord: f64, full: bool) -> (f64, f64) {
    match pattern {
        _ if full => (chord, 0.0),
        "rectilinear" | "alignedrectilinear" | "line" | "monotonic" => (chord, 0.0),
        "gyroid" | "honeycomb" | "3dhoneycomb" | "hilbertcurve" | "archimedeanchords" | "octagramspiral"
        | "concentric" | "lightning" => (chord, CURVED_INFILL_S_PER_MM),
        _ => ((chord * 0.9).min(INFILL_RUN_MM), 0.0),
    }
}

/// A tag of PrusaSlicer's template language that opens, switches or closes
/// a conditional block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConditionTag {
    If,
    Elsif,
    Else,
    Endif,
}

impl ConditionTag {
    /// The tag `text` starts with (the text after a `{`), if it is one.
    fn at(text: &str) -> Option<Self> {
        let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
        match &text[..end] {
            "if" => Some(Self::If),
            "elsif" => Some(Self::Elsif),
            "else" => Some(Self::Else),
            "endif" => Some(Self::Endif),
            _ => None,
        }
    }
}

/// The start and end G-code's moves and extrusion, as PrusaSlicer's
/// estimate counts them: each `G0`/`G1` move's length over its feed rate and
/// the filament it extrudes, and `G4` pauses. Lines with placeholders or
/// conditions (`{...}`, `[...]`) cannot be evaluated here and are skipped.
/// Conditions are not evaluated either: of an `{if}` block spread over
/// lines, only its `{else}` branch runs, the default the vendor presets keep
/// there (Prusa's MK3S purges 21.5 mm of filament unless the filament is
/// PA11; running both branches counted 39.5).
fn custom_gcode(profile: &FdmProfile) -> (f64, f64) {
    let filament_area = PI / 4.0 * profile.filament_diameter * profile.filament_diameter;
    let mut time_s = 0.0;
    let mut filament_mm = 0.0;
    for template in [&profile.start_gcode, &profile.end_gcode] {
        let mut position = [0.0f64; 3];
        let mut e = 0.0f64;
        let mut relative_e = false;
        let mut feed = 0.0f64; // mm/min
        // Per open `{if}`, whether the branch the lines are in runs, and how
        // many do not (so a line costs the same however deep the nesting).
        let mut branches: Vec<bool> = Vec::new();
        let mut skipping = 0usize;
        for line in template.split("\\n") {
            for tag in line.match_indices('{').filter_map(|(at, _)| ConditionTag::at(&line[at + 1..])) {
                match tag {
                    ConditionTag::If => {
                        branches.push(false);
                        skipping += 1;
                    }
                    ConditionTag::Elsif | ConditionTag::Else => {
                        let runs = tag == ConditionTag::Else;
                        if let Some(branch) = branches.last_mut() {
                            match (*branch, runs) {
                                (false, true) => skipping -= 1,
                                (true, false) => skipping += 1,
                                _ => {}
                            }
                            *branch = runs;
                        }
                    }
                    ConditionTag::Endif => {
                        if branches.pop() == Some(false) {
                            skipping -= 1;
                        }
                    }
                }
            }
            let code = line.split(';').next().unwrap_or("").trim();
            if code.is_empty() || code.contains('{') || code.contains('[') || skipping > 0 {
                continue;
            }
            let mut words = code.split_whitespace();
            let command = words.next().unwrap_or("").to_ascii_uppercase();
            let value = |w: &str| w.get(1..).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite());
            match command.as_str() {
                "M82" => relative_e = false,
                "M83" => relative_e = true,
                "G92" => {
                    for w in words {
                        if w.starts_with(['E', 'e']) {
                            e = value(w).unwrap_or(0.0);
                        }
                    }
                }
                "G4" => {
                    for w in words {
                        match (w.chars().next(), value(w)) {
                            (Some('S' | 's'), Some(v)) => time_s += v.min(600.0),
                            (Some('P' | 'p'), Some(v)) => time_s += (v / 1000.0).min(600.0),
                            _ => {}
                        }
                    }
                }
                "G0" | "G1" => {
                    let mut next = position;
                    let mut de = 0.0;
                    for w in words {
                        let Some(v) = value(w) else { continue };
                        match w.chars().next().map(|c| c.to_ascii_uppercase()) {
                            Some('X') => next[0] = v,
                            Some('Y') => next[1] = v,
                            Some('Z') => next[2] = v,
                            Some('E') => {
                                de = if relative_e { v } else { v - e };
                                e = if relative_e { e + v } else { v };
                            }
                            Some('F') => feed = v,
                            _ => {}
                        }
                    }
                    let d = position.iter().zip(next).map(|(a, b)| (b - a).powi(2)).sum::<f64>().sqrt();
                    let xy = ((next[0] - position[0]).powi(2) + (next[1] - position[1]).powi(2)).sqrt();
                    let distance = if d > 0.0 { d } else { de.abs() };
                    if feed > 0.0 && distance > 0.0 {
                        time_s += distance / (feed / 60.0);
                    }
                    if de > 0.0 && xy > 0.0 {
                        filament_mm += de;
                    }
                    position = next;
                }
                _ => {}
            }
        }
    }
    (time_s, filament_mm * filament_area)
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
    fn a_raft_is_stacked_as_prusaslicer_stacks_it() {
        let p = FdmProfile { layer_height: 0.2, nozzle_diameter: 0.4, raft_expansion: 1.5, ..FdmProfile::default() };
        let stack = |layers: u32| raft_stack(&FdmProfile { raft_layers: layers, ..p.clone() }, 0.2);
        let first = RaftLayer { height: 0.2, role: Role::Support, grow: 4.5, first: true };
        let nozzles = 0.75 * 0.4;
        let base = RaftLayer { height: nozzles, role: Role::Support, grow: 2.0, first: false };
        let interface = RaftLayer { height: nozzles, role: Role::SupportInterface, grow: 2.0, first: false };
        let contact = RaftLayer { height: nozzles, role: Role::SupportInterface, grow: 1.5, first: false };
        // Half the layers, rounded up, are interface; above the first, a
        // layer is 0.75 of the nozzle thick although the part's are 0.2.
        assert_eq!(stack(3), vec![(first, 1), (interface, 1), (contact, 1)]);
        assert_eq!(stack(5), vec![(first, 1), (base, 1), (interface, 2), (contact, 1)]);
        assert_eq!(stack(2), vec![(first, 1), (contact, 1)]);
        // One layer is the contact layer alone, printed as the first layer.
        assert_eq!(stack(1), vec![(RaftLayer { height: 0.2, grow: 1.5, first: true, ..contact }, 1)]);
        assert_eq!(stack(0), vec![]);
        // Four billion layers are four counts, not four billion entries.
        assert_eq!(stack(u32::MAX).iter().map(|(_, count)| u64::from(*count)).sum::<u64>(), u64::from(u32::MAX));
        // Thick layers stay as thick as the part's.
        let thick = raft_stack(&FdmProfile { raft_layers: 3, layer_height: 0.35, ..p.clone() }, 0.3);
        assert_eq!(thick[1].0.height, 0.35);
    }

    #[test]
    fn a_rafts_grid_narrows_a_wide_hole_and_closes_a_small_one() {
        let circle = |r: f64| (PI * r * r, 2.0 * PI * r);
        let tube = Raft {
            island_area: circle(20.0).0,
            island_outline: circle(20.0).1,
            islands: 1.0,
            holes: vec![circle(18.0)],
        };
        let ring = |outer: f64, inner: f64| PI * (outer * outer - inner * inner);
        assert!((tube.area(0.0, 0.0) - ring(20.0, 18.0)).abs() < 1e-9);
        // Grown by 1.5 mm, its hole closed by 6 mm: a disk's offsets exactly.
        assert!((tube.area(1.5, 6.0) - ring(21.5, 12.0)).abs() < 1e-9);
        // A hole narrower than the closing is gone, and never grows back.
        assert!((tube.area(1.5, 18.0) - ring(21.5, 0.0)).abs() < 1e-9);
        assert!((tube.area(1.5, 40.0) - ring(21.5, 0.0)).abs() < 1e-9);
        assert!((tube.outline(1.5) - 2.0 * PI * 21.5).abs() < 1e-9);
    }

    #[test]
    fn arachne_adds_a_bead_where_the_space_left_holds_its_threshold_share() {
        let thresholds = BeadThresholds { split: 0.5, add: 0.75 };
        let beads = |thickness: f64| arachne_beads(thickness, 0.4, 0.4, thresholds);
        // One bead splits into two past 1.5 spacings.
        assert_eq!((beads(0.2), beads(0.55), beads(0.65)), (1, 1, 2));
        // Two outer beads, then a middle one once 0.75 of a spacing is left.
        assert_eq!((beads(1.05), beads(1.15)), (2, 3));
        // An odd count splits its middle bead once half a spacing is left.
        assert_eq!((beads(1.25), beads(1.45)), (3, 4));
        assert_eq!(beads(f64::NAN), 1, "a section with no thickness gets no more than one bead");
        assert!(beads(f64::INFINITY) <= 3 + u32::from(u16::MAX), "the count is bounded");
    }

    #[test]
    fn a_loop_stops_at_its_sharp_corners_and_its_seam_and_gentle_turns_cost_more_at_a_higher_feed() {
        assert_eq!(stops(&[0; 4], &turn_weights(5.0)), 1.0, "a smooth loop stops at its seam");
        assert_eq!(stops(&[0, 0, 0, 4], &turn_weights(5.0)), 4.0, "a square stops at its corners");
        // Sixteen turns of 22.5°: nothing at twice the jerk, more the faster it is fed.
        let gentle = [16, 0, 0, 0];
        assert_eq!(stops(&gentle, &turn_weights(2.0)), 1.0);
        let (at_5, at_10) = (stops(&gentle, &turn_weights(5.0)), stops(&gentle, &turn_weights(10.0)));
        assert!(1.0 < at_5 && at_5 < at_10 && at_10 < 16.0, "{at_5} {at_10}");
        // A sharper turn never costs less than a gentler one.
        assert!(stops(&[0, 0, 4, 0], &turn_weights(5.0)) > stops(&[0, 4, 0, 0], &turn_weights(5.0)));
        assert_eq!(
            stops(&[4, 4, 4, 4], &turn_weights(f64::INFINITY)),
            16.0,
            "without jerk every counted turn is a stop"
        );
    }

    #[test]
    fn a_retraction_is_timed_with_the_extruders_acceleration_and_its_wipe() {
        // A bowden printer's 5 mm at 60 mm/s, restarted at 40 mm/s, under
        // its own limits: 1,000 mm/s² from an E jerk of 5 mm/s.
        let bowden = FdmProfile {
            gcode_flavor: "marlin2".into(),
            machine_limits_usage: crate::profile::MachineLimitsUsage::TimeEstimateOnly,
            retract_length: 5.0,
            retract_speed: 60.0,
            deretract_speed: 40.0,
            machine_max_acceleration_retracting: 1000.0,
            machine_max_jerk_e: 5.0,
            machine_max_feedrate_e: 100.0,
            ..FdmProfile::default()
        };
        let by_speed_alone = 5.0 / 60.0 + 5.0 / 40.0;
        let accelerated =
            5.0 / 60.0 + 55.0_f64.powi(2) / (1000.0 * 60.0) + 5.0 / 40.0 + 35.0_f64.powi(2) / (1000.0 * 40.0);
        let m = Machine::new(&bowden);
        assert!((m.retract_s - accelerated).abs() < 1e-9, "{} against {accelerated}", m.retract_s);
        assert!(m.retract_s > 1.3 * by_speed_alone);
        // A wipe retracts 30 % standing, the rest while it runs back along
        // the path: 1.5 mm at 60 mm/s is 25 ms at 80 % of 150 mm/s, 3 mm.
        let wiping = FdmProfile { wipe: true, retract_before_wipe: 0.7, travel_speed: 150.0, ..bowden.clone() };
        let w = Machine::new(&wiping);
        let wipe = Machine::run(3.0, 1.0, 120.0, w.acceleration.other, w.jerk);
        let standing = Machine::run(3.5, 1.0, 60.0, 1000.0, 5.0);
        let restart = Machine::run(5.0, 1.0, 40.0, 1000.0, 5.0);
        assert!((w.retract_s - (standing + wipe + restart)).abs() < 1e-9);
        assert!(w.retract_s > m.retract_s, "a wipe at the print acceleration is slower than retracting in place");
        // A lift keeps to the Z axis: 0.4 mm at 12 mm/s takes much longer
        // than 1/30 s at 200 mm/s² from a jerk of 0.4 mm/s.
        let lifted =
            FdmProfile { travel_speed_z: 12.0, machine_max_acceleration_z: 200.0, machine_max_jerk_z: 0.4, ..bowden };
        let z = Machine::new(&lifted).z_move(0.4);
        assert!((z - 2.0 * (f64::sqrt(0.16 + 200.0 * 0.4) - 0.4) / 200.0).abs() < 1e-9, "{z}");
        assert!(z > 2.0 * 0.4 / 12.0);
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
        let classes: Vec<&str> = FEATURE_CLASSES.iter().flat_map(|(_, features)| features.iter().copied()).collect();
        for c in &e.breakdown {
            assert!(classes.contains(&c.feature), "{} belongs to no feature class", c.feature);
        }
    }

    #[test]
    fn the_start_gcode_purge_line_counts() {
        let purge = FdmProfile {
            start_gcode: [
                "M83",
                "G1 Y-3.0 F1000.0",
                "G92 E0.0",
                "{if pa11}",
                "G1 X60 E9 F1000",
                "G1 X100 E9 F1000",
                "{elsif pla}",
                "G1 X60 E50 F1000",
                "{else}",
                "G1 X60.0 E9.0 F1000.0 ; intro line",
                "G1 X100.0 E12.5 F1000.0",
                "{endif}",
                "{if x}G1 X5 E100{endif}",
                "{if y}",
                "G1 X0 E7",
                "{endif}",
            ]
            .join("\\n"),
            ..FdmProfile::default()
        };
        let (time, mm3) = custom_gcode(&purge);
        let area = PI / 4.0 * 1.75 * 1.75;
        assert!((mm3 - 21.5 * area).abs() < 1e-9, "{mm3}");
        assert!((time - (3.0 + 60.0 + 40.0) / (1000.0 / 60.0)).abs() < 1e-9, "{time}");
    }

    #[test]
    fn only_else_branches_run_at_any_depth() {
        let nested = [
            "M83",
            "{if a}",
            "{if b}",
            "G1 X10 E100 F600",
            "{else}",
            "G1 X10 E100 F600",
            "{endif}",
            "{else}",
            "{if c}",
            "G1 X10 E100 F600",
            "{else}",
            "G1 X10 E3 F600",
            "{endif}",
            "{endif}",
        ]
        .join("\\n");
        let deep = format!("M83\\n{}\\nG1 X1 E5\\n{}\\nG1 X2 E1", "{if x}".repeat(10_000), "{endif}".repeat(10_000));
        let area = PI / 4.0 * 1.75 * 1.75;
        for (template, filament_mm) in [(nested, 3.0), (deep, 1.0)] {
            let (_, mm3) = custom_gcode(&FdmProfile { start_gcode: template, ..FdmProfile::default() });
            assert!((mm3 - filament_mm * area).abs() < 1e-9, "{mm3}");
        }
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
        assert!(with.support_cm3 > 0.5 && with.support_cm3 < 4.0, "{with:?}");
        assert!((with.material_cm3 - without.material_cm3 - with.support_cm3).abs() < 1e-9);
        assert!(with.print_time_s > without.print_time_s);
    }
}
