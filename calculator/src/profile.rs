//! FDM print settings that a print shop already has: read from a PrusaSlicer
//! `.ini` export (or a flat vendor preset, see [`crate::bundle`]), and
//! written back in the same format.
//!
//! Every key the estimate depends on is read with PrusaSlicer's semantics:
//! a speed may be a percentage of another speed, a width a percentage of the
//! nozzle, and 0 often means "auto". A missing key takes PrusaSlicer 2.5's
//! own default (`prusa-slicer --save` with no profile loaded), so an empty
//! file means "what PrusaSlicer would do".
//!
//! Every other key is sorted into one of two lists: keys that cannot change
//! a part's time or material (temperatures, fans, names, notes, G-code
//! templates without moves, multi-material and host settings), and keys that
//! could but are not modelled. Only the second list is shown in a quote.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A speed that is either absolute or a percentage of another speed, as
/// PrusaSlicer writes them (`external_perimeter_speed = 50%`). For the keys
/// that allow it, 0 mm/s means "auto": as fast as the volumetric limits let.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    MmPerS(f64),
    Percent(f64),
}

impl Speed {
    /// The speed in mm/s, given the speed a percentage refers to.
    pub fn resolve(self, base_mm_s: f64) -> f64 {
        match self {
            Speed::MmPerS(v) => v,
            Speed::Percent(p) => base_mm_s * p / 100.0,
        }
    }

    fn to_ini(self) -> String {
        match self {
            Speed::MmPerS(v) => format_number(v),
            Speed::Percent(p) => format!("{}%", format_number(p)),
        }
    }
}

/// An extrusion width: automatic (0), in mm, or a percentage of the nozzle
/// diameter, as PrusaSlicer 2.5 reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Width {
    Auto,
    Mm(f64),
    PercentOfNozzle(f64),
}

impl Width {
    /// The width in mm: `auto` when the key says auto.
    pub fn resolve(self, nozzle: f64, auto: f64) -> f64 {
        match self {
            Width::Auto => auto,
            Width::Mm(w) => w,
            Width::PercentOfNozzle(p) => nozzle * p / 100.0,
        }
    }

    fn to_ini(self) -> String {
        match self {
            Width::Auto => "0".into(),
            Width::Mm(w) => format_number(w),
            Width::PercentOfNozzle(p) => format!("{}%", format_number(p)),
        }
    }
}

/// Whether the printer's limits (`machine_max_*`) bound the time estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineLimitsUsage {
    /// Written to the G-code and used for the estimate.
    EmitToGcode,
    /// Used for the estimate only.
    TimeEstimateOnly,
    /// Neither: PrusaSlicer's built-in limits apply to the estimate.
    Ignore,
}

impl MachineLimitsUsage {
    fn as_str(self) -> &'static str {
        match self {
            MachineLimitsUsage::EmitToGcode => "emit_to_gcode",
            MachineLimitsUsage::TimeEstimateOnly => "time_estimate_only",
            MachineLimitsUsage::Ignore => "ignore",
        }
    }
}

/// The FDM settings the print-time and material estimate depends on. Field
/// names are PrusaSlicer's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct FdmProfile {
    // Layers and shells.
    pub layer_height: f64,
    /// Absolute, or a percentage of `layer_height`.
    pub first_layer_height: Speed,
    pub perimeters: u32,
    pub top_solid_layers: u32,
    pub bottom_solid_layers: u32,
    /// Top and bottom skins are at least this thick, mm (0: off).
    pub top_solid_min_thickness: f64,
    pub bottom_solid_min_thickness: f64,
    pub ensure_vertical_shell_thickness: bool,
    /// `arachne` (variable-width walls) or `classic`.
    pub perimeter_generator: String,
    /// Arachne's narrowest bead (mm, or a percentage of the nozzle): with
    /// the widths, it decides how many beads a thin wall gets.
    pub min_bead_width: Width,
    /// Arachne's thinnest feature (mm, or a percentage of the nozzle): a
    /// part of a layer thinner than this is not printed at all.
    pub min_feature_size: Width,
    /// Thin walls and gap fill only matter to the classic generator.
    pub thin_walls: bool,
    pub gap_fill_enabled: bool,
    /// Perimeters over air run at the bridge speed.
    pub overhangs: bool,
    /// Nozzle-thick bridge threads (1), or layer-high ones (0).
    pub thick_bridges: bool,
    pub bridge_flow_ratio: f64,

    // Infill.
    /// Sparse infill density, 0 to 1.
    pub fill_density: f64,
    pub fill_pattern: String,
    pub top_fill_pattern: String,
    pub bottom_fill_pattern: String,
    /// Degrees.
    pub fill_angle: f64,
    /// Sparse infill is printed every N layers, N layers thick.
    pub infill_every_layers: u32,
    /// Every N-th layer is solid (0: never).
    pub solid_infill_every_layers: u32,
    /// Islands smaller than this are filled solid, mm².
    pub solid_infill_below_area: f64,

    // Extrusion widths (0 = auto; a percentage is of the nozzle).
    pub extrusion_width: Width,
    pub first_layer_extrusion_width: Width,
    pub perimeter_extrusion_width: Width,
    pub external_perimeter_extrusion_width: Width,
    pub infill_extrusion_width: Width,
    pub solid_infill_extrusion_width: Width,
    pub top_infill_extrusion_width: Width,
    pub support_material_extrusion_width: Width,

    // Speeds, mm/s (0 = auto where PrusaSlicer allows it).
    pub perimeter_speed: f64,
    /// Of `perimeter_speed` when a percentage.
    pub external_perimeter_speed: Speed,
    pub small_perimeter_speed: Speed,
    pub infill_speed: f64,
    /// Of `infill_speed` when a percentage.
    pub solid_infill_speed: Speed,
    /// Of the solid infill speed when a percentage.
    pub top_solid_infill_speed: Speed,
    pub support_material_speed: f64,
    /// Of `support_material_speed` when a percentage.
    pub support_material_interface_speed: Speed,
    pub bridge_speed: f64,
    pub gap_fill_speed: f64,
    pub travel_speed: f64,
    /// Vertical travel; 0 uses `travel_speed` (bounded by the machine's Z).
    pub travel_speed_z: f64,
    /// Of the speed it replaces when a percentage.
    pub first_layer_speed: Speed,
    pub first_layer_speed_over_raft: Speed,
    /// The ceiling of automatic (0) speeds, mm/s.
    pub max_print_speed: f64,
    /// mm³/s; 0 = no limit.
    pub max_volumetric_speed: f64,
    pub filament_max_volumetric_speed: f64,

    // Cooling: layers faster than this are slowed down, not below the
    // minimum speed.
    pub cooling: bool,
    pub slowdown_below_layer_time: f64,
    pub min_print_speed: f64,

    // Accelerations, mm/s² (0 = the default acceleration, or the machine's).
    pub default_acceleration: f64,
    pub perimeter_acceleration: f64,
    pub infill_acceleration: f64,
    pub bridge_acceleration: f64,
    pub first_layer_acceleration: f64,

    // The machine's limits ("normal,silent": the estimate uses normal).
    pub gcode_flavor: String,
    pub machine_limits_usage: MachineLimitsUsage,
    pub machine_max_acceleration_extruding: f64,
    pub machine_max_acceleration_retracting: f64,
    pub machine_max_acceleration_travel: f64,
    pub machine_max_acceleration_x: f64,
    pub machine_max_acceleration_y: f64,
    pub machine_max_acceleration_z: f64,
    pub machine_max_acceleration_e: f64,
    pub machine_max_feedrate_x: f64,
    pub machine_max_feedrate_y: f64,
    pub machine_max_feedrate_z: f64,
    pub machine_max_feedrate_e: f64,
    pub machine_max_jerk_x: f64,
    pub machine_max_jerk_y: f64,
    pub machine_max_jerk_z: f64,
    pub machine_max_jerk_e: f64,
    pub machine_min_extruding_rate: f64,
    pub machine_min_travel_rate: f64,

    // Retraction and z-hop.
    pub retract_length: f64,
    pub retract_speed: f64,
    /// 0: the retract speed.
    pub deretract_speed: f64,
    pub retract_restart_extra: f64,
    /// Travels shorter than this are not retracted, mm.
    pub retract_before_travel: f64,
    pub retract_layer_change: bool,
    /// Z-hop height, mm.
    pub retract_lift: f64,
    pub retract_lift_above: f64,
    pub retract_lift_below: f64,
    pub only_retract_when_crossing_perimeters: bool,
    /// Wipe along the last path while retracting.
    pub wipe: bool,
    /// The share of a wiped retraction made standing still, before the
    /// wipe (the rest is made while wiping).
    pub retract_before_wipe: f64,

    // Skirt, brim and raft.
    pub skirts: u32,
    pub skirt_distance: f64,
    pub skirt_height: u32,
    pub min_skirt_length: f64,
    pub brim_width: f64,
    /// `no_brim`, `outer_only`, `inner_only` or `outer_and_inner`.
    pub brim_type: String,
    pub raft_layers: u32,
    pub raft_contact_distance: f64,
    pub raft_expansion: f64,
    /// The first raft layer's fill, as a share.
    pub raft_first_layer_density: f64,
    /// How much further than the raft's other layers its first layer
    /// reaches, mm.
    pub raft_first_layer_expansion: f64,

    // Supports.
    pub support_material: bool,
    /// Supports where PrusaSlicer's detection finds overhangs (1), or only
    /// under enforcers (0, none from an STL).
    pub support_material_auto: bool,
    /// Overhang angle that needs support, degrees from horizontal (0: auto).
    pub support_material_threshold: f64,
    pub support_material_buildplate_only: bool,
    pub support_material_pattern: String,
    /// Between base lines, mm.
    pub support_material_spacing: f64,
    pub support_material_contact_distance: f64,
    pub support_material_interface_layers: u32,
    /// -1: as many as on top.
    pub support_material_bottom_interface_layers: i32,
    /// Between interface lines, mm (0: solid).
    pub support_material_interface_spacing: f64,

    // Filament.
    pub nozzle_diameter: f64,
    pub filament_diameter: f64,
    pub extrusion_multiplier: f64,
    /// g/cm³; 0 means unknown.
    pub filament_density: f64,
    /// Money per kg; 0 means unknown.
    pub filament_cost: f64,

    /// The printer's start and end G-code: their purge lines and moves
    /// count, as PrusaSlicer's estimate counts them.
    pub start_gcode: String,
    pub end_gcode: String,
}

impl Default for FdmProfile {
    fn default() -> Self {
        Self {
            layer_height: 0.3,
            first_layer_height: Speed::MmPerS(0.35),
            perimeters: 3,
            top_solid_layers: 3,
            bottom_solid_layers: 3,
            top_solid_min_thickness: 0.0,
            bottom_solid_min_thickness: 0.0,
            ensure_vertical_shell_thickness: false,
            perimeter_generator: "arachne".into(),
            min_bead_width: Width::PercentOfNozzle(85.0),
            min_feature_size: Width::PercentOfNozzle(25.0),
            thin_walls: true,
            gap_fill_enabled: true,
            overhangs: true,
            thick_bridges: true,
            bridge_flow_ratio: 1.0,
            fill_density: 0.2,
            fill_pattern: "stars".into(),
            top_fill_pattern: "monotonic".into(),
            bottom_fill_pattern: "monotonic".into(),
            fill_angle: 45.0,
            infill_every_layers: 1,
            solid_infill_every_layers: 0,
            solid_infill_below_area: 70.0,
            extrusion_width: Width::Auto,
            first_layer_extrusion_width: Width::PercentOfNozzle(200.0),
            perimeter_extrusion_width: Width::Auto,
            external_perimeter_extrusion_width: Width::Auto,
            infill_extrusion_width: Width::Auto,
            solid_infill_extrusion_width: Width::Auto,
            top_infill_extrusion_width: Width::Auto,
            support_material_extrusion_width: Width::Auto,
            perimeter_speed: 60.0,
            external_perimeter_speed: Speed::Percent(50.0),
            small_perimeter_speed: Speed::MmPerS(15.0),
            infill_speed: 80.0,
            solid_infill_speed: Speed::MmPerS(20.0),
            top_solid_infill_speed: Speed::MmPerS(15.0),
            support_material_speed: 60.0,
            support_material_interface_speed: Speed::Percent(100.0),
            bridge_speed: 60.0,
            gap_fill_speed: 20.0,
            travel_speed: 130.0,
            travel_speed_z: 0.0,
            first_layer_speed: Speed::MmPerS(30.0),
            first_layer_speed_over_raft: Speed::MmPerS(30.0),
            max_print_speed: 80.0,
            max_volumetric_speed: 0.0,
            filament_max_volumetric_speed: 0.0,
            cooling: true,
            slowdown_below_layer_time: 5.0,
            min_print_speed: 10.0,
            default_acceleration: 0.0,
            perimeter_acceleration: 0.0,
            infill_acceleration: 0.0,
            bridge_acceleration: 0.0,
            first_layer_acceleration: 0.0,
            gcode_flavor: "reprap".into(),
            machine_limits_usage: MachineLimitsUsage::TimeEstimateOnly,
            machine_max_acceleration_extruding: 1500.0,
            machine_max_acceleration_retracting: 1500.0,
            machine_max_acceleration_travel: 1500.0,
            machine_max_acceleration_x: 9000.0,
            machine_max_acceleration_y: 9000.0,
            machine_max_acceleration_z: 500.0,
            machine_max_acceleration_e: 10000.0,
            machine_max_feedrate_x: 500.0,
            machine_max_feedrate_y: 500.0,
            machine_max_feedrate_z: 12.0,
            machine_max_feedrate_e: 120.0,
            machine_max_jerk_x: 10.0,
            machine_max_jerk_y: 10.0,
            machine_max_jerk_z: 0.2,
            machine_max_jerk_e: 2.5,
            machine_min_extruding_rate: 0.0,
            machine_min_travel_rate: 0.0,
            retract_length: 2.0,
            retract_speed: 40.0,
            deretract_speed: 0.0,
            retract_restart_extra: 0.0,
            retract_before_travel: 2.0,
            retract_layer_change: false,
            retract_lift: 0.0,
            retract_lift_above: 0.0,
            retract_lift_below: 0.0,
            only_retract_when_crossing_perimeters: false,
            wipe: false,
            retract_before_wipe: 0.0,
            skirts: 1,
            skirt_distance: 6.0,
            skirt_height: 1,
            min_skirt_length: 0.0,
            brim_width: 0.0,
            brim_type: "outer_only".into(),
            raft_layers: 0,
            raft_contact_distance: 0.1,
            raft_expansion: 1.5,
            raft_first_layer_density: 0.9,
            raft_first_layer_expansion: 3.0,
            support_material: false,
            support_material_auto: true,
            support_material_threshold: 0.0,
            support_material_buildplate_only: false,
            support_material_pattern: "rectilinear".into(),
            support_material_spacing: 2.5,
            support_material_contact_distance: 0.2,
            support_material_interface_layers: 3,
            support_material_bottom_interface_layers: -1,
            support_material_interface_spacing: 0.0,
            nozzle_diameter: 0.4,
            filament_diameter: 1.75,
            extrusion_multiplier: 1.0,
            filament_density: 0.0,
            filament_cost: 0.0,
            start_gcode: "G28 ; home all axes\\nG1 Z5 F5000 ; lift nozzle\\n".into(),
            end_gcode: "M104 S0 ; turn off temperature\\nG28 X0  ; home X axis\\nM84     ; disable motors\\n".into(),
        }
    }
}

/// A profile as loaded, with the keys it did not use.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedProfile {
    pub profile: FdmProfile,
    /// Keys that may change time or material but are not modelled.
    pub ignored_keys: Vec<String>,
    /// Keys that cannot change a part's time or material (temperatures,
    /// fans, names, notes, multi-material and host settings, G-code
    /// templates without moves).
    pub irrelevant_keys: Vec<String>,
}

impl LoadedProfile {
    /// PrusaSlicer's defaults, with nothing ignored.
    pub fn defaults() -> Self {
        Self { profile: FdmProfile::default(), ignored_keys: Vec::new(), irrelevant_keys: Vec::new() }
    }
}

/// A line of the `.ini` that could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("profile line {line}: {message}")]
pub struct ProfileError {
    pub line: usize,
    pub message: String,
}

/// Readers and writers for each kind of value a key holds.
mod kinds {
    use super::{MachineLimitsUsage, Speed, Width, first_number, format_number};

    /// PrusaSlicer stores per-extruder and per-mode values as lists
    /// ("1250,1000": normal, silent); the first is the one that prints.
    pub(super) mod number {
        pub(in super::super) fn parse(value: &str) -> Result<f64, String> {
            super::first_number(value).filter(|n| n.is_finite() && *n >= 0.0).ok_or_else(|| "a number".to_string())
        }
        pub(in super::super) fn write(value: &f64) -> String {
            super::format_number(*value)
        }
    }

    pub(super) mod positive {
        pub(in super::super) fn parse(value: &str) -> Result<f64, String> {
            super::number::parse(value)?;
            super::first_number(value).filter(|n| *n > 0.0).ok_or_else(|| "a positive number".to_string())
        }
        pub(in super::super) fn write(value: &f64) -> String {
            super::format_number(*value)
        }
    }

    pub(super) mod count {
        pub(in super::super) fn parse(value: &str) -> Result<u32, String> {
            value.split(',').next().unwrap_or("").trim().parse().map_err(|_| "a whole number".to_string())
        }
        pub(in super::super) fn write(value: &u32) -> String {
            value.to_string()
        }
    }

    pub(super) mod signed_count {
        pub(in super::super) fn parse(value: &str) -> Result<i32, String> {
            value.trim().parse().map_err(|_| "a whole number".to_string())
        }
        pub(in super::super) fn write(value: &i32) -> String {
            value.to_string()
        }
    }

    pub(super) mod flag {
        pub(in super::super) fn parse(value: &str) -> Result<bool, String> {
            match value.split(',').next().unwrap_or("").trim() {
                "1" => Ok(true),
                "0" => Ok(false),
                _ => Err("0 or 1".to_string()),
            }
        }
        pub(in super::super) fn write(value: &bool) -> String {
            u8::from(*value).to_string()
        }
    }

    pub(super) mod text {
        pub(in super::super) fn parse(value: &str) -> Result<String, String> {
            Ok(value.trim().to_string())
        }
        pub(in super::super) fn write(value: &str) -> String {
            value.to_string()
        }
    }

    /// A percentage from 0% to 100%, stored as a share.
    pub(super) mod share {
        pub(in super::super) fn parse(value: &str) -> Result<f64, String> {
            // Per-extruder lists ("70%,70%"): the first extruder prints.
            let value = value.split(',').next().unwrap_or("").trim();
            let percent = value.strip_suffix('%').unwrap_or(value).trim();
            percent
                .parse::<f64>()
                .ok()
                .filter(|d| (0.0..=100.0).contains(d))
                .map(|d| d / 100.0)
                .ok_or_else(|| "a percentage from 0% to 100%".to_string())
        }
        pub(in super::super) fn write(value: &f64) -> String {
            format!("{}%", super::format_number(*value * 100.0))
        }
    }

    /// A speed in mm/s or a percentage; 0 is "auto".
    pub(super) mod speed {
        use super::Speed;
        pub(in super::super) fn parse(value: &str) -> Result<Speed, String> {
            let bad = || "mm/s or a percentage".to_string();
            match value.trim().strip_suffix('%') {
                Some(p) => p.trim().parse().ok().filter(|p: &f64| p.is_finite() && *p > 0.0).map(Speed::Percent),
                None => value.trim().parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0).map(Speed::MmPerS),
            }
            .ok_or_else(bad)
        }
        pub(in super::super) fn write(value: &Speed) -> String {
            value.to_ini()
        }
    }

    pub(super) mod width {
        use super::Width;
        pub(in super::super) fn parse(value: &str) -> Result<Width, String> {
            let bad = || "mm or a percentage of the nozzle".to_string();
            let value = value.trim();
            if let Some(p) = value.strip_suffix('%') {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                return match p {
                    p if p.is_finite() && p > 0.0 => Ok(Width::PercentOfNozzle(p)),
                    0.0 => Ok(Width::Auto),
                    _ => Err(bad()),
                };
            }
            match value.parse::<f64>() {
                Ok(0.0) => Ok(Width::Auto),
                Ok(w) if w.is_finite() && w > 0.0 => Ok(Width::Mm(w)),
                _ => Err(bad()),
            }
        }
        pub(in super::super) fn write(value: &Width) -> String {
            value.to_ini()
        }
    }

    pub(super) mod limits_usage {
        use super::MachineLimitsUsage;
        pub(in super::super) fn parse(value: &str) -> Result<MachineLimitsUsage, String> {
            match value.trim() {
                "emit_to_gcode" => Ok(MachineLimitsUsage::EmitToGcode),
                "time_estimate_only" => Ok(MachineLimitsUsage::TimeEstimateOnly),
                "ignore" => Ok(MachineLimitsUsage::Ignore),
                _ => Err("emit_to_gcode, time_estimate_only or ignore".to_string()),
            }
        }
        pub(in super::super) fn write(value: &MachineLimitsUsage) -> String {
            value.as_str().to_string()
        }
    }
}

/// Declares every key the estimate reads: its field, how its value is read
/// and written, and so the list of read keys, the reader and the writer
/// cannot disagree.
macro_rules! read_keys {
    ($( $key:ident : $kind:ident ),* $(,)?) => {
        /// Every key the estimate reads.
        pub const READ_KEYS: &[&str] = &[$( stringify!($key) ),*];

        fn set_key(profile: &mut FdmProfile, key: &str, value: &str) -> Option<Result<(), String>> {
            match key {
                $( stringify!($key) => Some(kinds::$kind::parse(value).map(|v| profile.$key = v)), )*
                _ => None,
            }
        }

        fn write_keys(profile: &FdmProfile) -> Vec<(&'static str, String)> {
            vec![$( (stringify!($key), kinds::$kind::write(&profile.$key)) ),*]
        }
    };
}

read_keys! {
    layer_height: positive,
    first_layer_height: speed,
    perimeters: count,
    top_solid_layers: count,
    bottom_solid_layers: count,
    top_solid_min_thickness: number,
    bottom_solid_min_thickness: number,
    ensure_vertical_shell_thickness: flag,
    perimeter_generator: text,
    min_bead_width: width,
    min_feature_size: width,
    thin_walls: flag,
    gap_fill_enabled: flag,
    overhangs: flag,
    thick_bridges: flag,
    bridge_flow_ratio: positive,
    fill_density: share,
    fill_pattern: text,
    top_fill_pattern: text,
    bottom_fill_pattern: text,
    fill_angle: number,
    infill_every_layers: count,
    solid_infill_every_layers: count,
    solid_infill_below_area: number,
    extrusion_width: width,
    first_layer_extrusion_width: width,
    perimeter_extrusion_width: width,
    external_perimeter_extrusion_width: width,
    infill_extrusion_width: width,
    solid_infill_extrusion_width: width,
    top_infill_extrusion_width: width,
    support_material_extrusion_width: width,
    perimeter_speed: number,
    external_perimeter_speed: speed,
    small_perimeter_speed: speed,
    infill_speed: number,
    solid_infill_speed: speed,
    top_solid_infill_speed: speed,
    support_material_speed: number,
    support_material_interface_speed: speed,
    bridge_speed: number,
    gap_fill_speed: number,
    travel_speed: positive,
    travel_speed_z: number,
    first_layer_speed: speed,
    first_layer_speed_over_raft: speed,
    max_print_speed: positive,
    max_volumetric_speed: number,
    filament_max_volumetric_speed: number,
    cooling: flag,
    slowdown_below_layer_time: number,
    min_print_speed: number,
    default_acceleration: number,
    perimeter_acceleration: number,
    infill_acceleration: number,
    bridge_acceleration: number,
    first_layer_acceleration: number,
    gcode_flavor: text,
    machine_limits_usage: limits_usage,
    machine_max_acceleration_extruding: number,
    machine_max_acceleration_retracting: number,
    machine_max_acceleration_travel: number,
    machine_max_acceleration_x: number,
    machine_max_acceleration_y: number,
    machine_max_acceleration_z: number,
    machine_max_acceleration_e: number,
    machine_max_feedrate_x: number,
    machine_max_feedrate_y: number,
    machine_max_feedrate_z: number,
    machine_max_feedrate_e: number,
    machine_max_jerk_x: number,
    machine_max_jerk_y: number,
    machine_max_jerk_z: number,
    machine_max_jerk_e: number,
    machine_min_extruding_rate: number,
    machine_min_travel_rate: number,
    retract_length: number,
    retract_speed: number,
    deretract_speed: number,
    retract_restart_extra: number,
    retract_before_travel: number,
    retract_layer_change: flag,
    retract_lift: number,
    retract_lift_above: number,
    retract_lift_below: number,
    only_retract_when_crossing_perimeters: flag,
    wipe: flag,
    retract_before_wipe: share,
    skirts: count,
    skirt_distance: number,
    skirt_height: count,
    min_skirt_length: number,
    brim_width: number,
    brim_type: text,
    raft_layers: count,
    raft_contact_distance: number,
    raft_expansion: number,
    raft_first_layer_density: share,
    raft_first_layer_expansion: number,
    support_material: flag,
    support_material_auto: flag,
    support_material_threshold: number,
    support_material_buildplate_only: flag,
    support_material_pattern: text,
    support_material_spacing: number,
    support_material_contact_distance: number,
    support_material_interface_layers: count,
    support_material_bottom_interface_layers: signed_count,
    support_material_interface_spacing: number,
    nozzle_diameter: positive,
    filament_diameter: positive,
    extrusion_multiplier: positive,
    filament_density: number,
    filament_cost: number,
    start_gcode: text,
    end_gcode: text,
}

/// Keys that cannot change one part's print time or material: names and
/// notes, temperatures and fans, the bed and its textures, print hosts,
/// multi-material and wipe-tower settings (a single-material part never
/// runs them), arrangement, and output formatting.
const IRRELEVANT_KEYS: &[&str] = &[
    "bed_custom_model",
    "bed_custom_texture",
    "bed_shape",
    "bed_temperature",
    "binary_gcode",
    "bridge_fan_speed",
    "chamber_temperature",
    "clip_multipart_objects",
    "color_change_gcode",
    "colorprint_heights",
    "complete_objects",
    "cooling_tube_length",
    "cooling_tube_retraction",
    "default_filament_profile",
    "default_print_profile",
    "default_sla_material_profile",
    "default_sla_print_profile",
    "disable_fan_first_layers",
    "duplicate_distance",
    "elefant_foot_compensation",
    "extra_loading_move",
    "extruder_clearance_height",
    "extruder_clearance_radius",
    "extruder_colour",
    "extruder_offset",
    "extrusion_axis",
    "fan_always_on",
    "fan_below_layer_time",
    "filament_colour",
    "filament_cooling_final_speed",
    "filament_cooling_initial_speed",
    "filament_cooling_moves",
    "filament_load_time",
    "filament_loading_speed",
    "filament_loading_speed_start",
    "filament_minimal_purge_on_wipe_tower",
    "filament_notes",
    "filament_ramming_parameters",
    "filament_settings_id",
    "filament_soluble",
    "filament_spool_weight",
    "filament_toolchange_delay",
    "filament_type",
    "filament_unload_time",
    "filament_unloading_speed",
    "filament_unloading_speed_start",
    "filament_vendor",
    "first_layer_bed_temperature",
    "first_layer_temperature",
    "full_fan_speed_layer",
    "gcode_comments",
    "gcode_label_objects",
    "gcode_resolution",
    "gcode_substitutions",
    "high_current_on_filament_swap",
    "host_type",
    "idle_temperature",
    "infill_extruder",
    "infill_first",
    // Solid shells between volumes of different materials: none in one part.
    "interface_shells",
    "max_fan_speed",
    "max_layer_height",
    "max_print_height",
    "min_fan_speed",
    "min_layer_height",
    "mmu_segmented_region_max_width",
    "notes",
    // The print host under its older names, and a USB printer's port.
    "octoprint_apikey",
    "octoprint_cafile",
    "octoprint_host",
    "ooze_prevention",
    "output_filename_format",
    "parking_pos_retraction",
    "pause_print_gcode",
    "perimeter_extruder",
    "post_process",
    "print_host",
    "print_settings_id",
    "printer_model",
    "printer_notes",
    "printer_settings_id",
    "printer_technology",
    "printer_variant",
    "printer_vendor",
    "printhost_apikey",
    "printhost_cafile",
    "printhost_password",
    "printhost_port",
    "printhost_user",
    "remaining_times",
    "resolution",
    "retract_length_toolchange",
    "retract_restart_extra_toolchange",
    "serial_port",
    "serial_speed",
    "silent_mode",
    "single_extruder_multi_material",
    "single_extruder_multi_material_priming",
    "slice_closing_radius",
    "slicing_mode",
    "solid_infill_extruder",
    "standby_temperature_delta",
    "support_material_extruder",
    "support_material_interface_extruder",
    // Supports in step with a wipe tower's layers (soluble supports only).
    "support_material_synchronize_layers",
    "temperature",
    "thumbnails",
    "thumbnails_format",
    "threads",
    "use_firmware_retraction",
    "use_relative_e_distances",
    "use_volumetric_e",
    "variable_layer_height",
    "wipe_into_infill",
    "wipe_into_objects",
    "wipe_tower",
    "wipe_tower_bridging",
    "wipe_tower_brim_width",
    "wipe_tower_extruder",
    "wipe_tower_no_sparse_layers",
    "wipe_tower_rotation_angle",
    "wipe_tower_width",
    "wipe_tower_x",
    "wipe_tower_y",
    "wiping_volumes_extruders",
    "wiping_volumes_matrix",
    "xy_size_compensation",
    "z_offset",
];

/// G-code templates other than start and end: they only matter when they
/// move the head or the extruder.
const GCODE_TEMPLATES: &[&str] = &[
    "before_layer_gcode",
    "between_objects_gcode",
    "end_filament_gcode",
    "layer_gcode",
    "start_filament_gcode",
    "template_custom_gcode",
    "toolchange_gcode",
];

/// Keys that only matter when a switch is on: the ironing settings with
/// ironing off, the fuzzy-skin ones with it off, the Arachne wall settings
/// with the classic generator.
fn irrelevant_while_off(key: &str, values: &BTreeMap<String, String>) -> bool {
    let off = |switch: &str, off_value: &str| values.get(switch).is_none_or(|v| v.trim() == off_value);
    (key.starts_with("ironing_") && off("ironing", "0"))
        || (key.starts_with("fuzzy_skin_") && off("fuzzy_skin", "none"))
        || (key.starts_with("wall_") && values.get("perimeter_generator").is_some_and(|v| v.trim() == "classic"))
}

/// Whether an unread key of an SLA preset may change its time or resin: the
/// support generator's and pad's settings, hollowing, and the scaling
/// corrections.
pub(crate) fn sla_key_matters(key: &str) -> bool {
    key.starts_with("support_")
        || key.starts_with("pad_")
        || key.starts_with("hollowing_")
        || key.ends_with("_correction")
        || key == "material_print_speed"
}

/// Whether a G-code template moves the head or the extruder (ignoring
/// comments): `G0`/`G1`/`G2`/`G3`/`G28` commands.
fn template_moves(template: &str) -> bool {
    template.split("\\n").any(|line| {
        let code = line.split(';').next().unwrap_or("").trim_start();
        let word = code.split_whitespace().next().unwrap_or("");
        matches!(word, "G0" | "G1" | "G2" | "G3" | "G00" | "G01" | "G02" | "G03")
    })
}

impl FdmProfile {
    /// Reads a PrusaSlicer `.ini` (a plain export or a flat vendor preset;
    /// `[section]` headers are skipped). Keys the estimate does not read are
    /// sorted into ignored and irrelevant; a key it reads with a value that
    /// makes no sense is an error naming its line.
    pub fn from_ini(text: &str) -> Result<LoadedProfile, ProfileError> {
        let mut profile = FdmProfile::default();
        let mut unread: BTreeMap<String, String> = BTreeMap::new();
        let mut order = Vec::new();
        let mut lines: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
                continue;
            }
            let error = |message: String| ProfileError { line: index + 1, message };
            let (key, value) =
                line.split_once('=').ok_or_else(|| error(format!("expected `key = value`, got `{line}`")))?;
            let (key, value) = (key.trim(), value.trim());
            match set_key(&mut profile, key, value) {
                Some(Ok(())) => {
                    if let Some(k) = READ_KEYS.iter().find(|k| **k == key) {
                        lines.insert(k, index + 1);
                    }
                }
                Some(Err(what)) => return Err(error(format!("`{key}` needs {what}, got `{value}`"))),
                None => {
                    if !unread.contains_key(key) {
                        order.push(key.to_string());
                    }
                    unread.insert(key.to_string(), value.to_string());
                }
            }
        }
        profile.validate().map_err(|(key, message)| ProfileError {
            line: lines.get(key).copied().unwrap_or(0),
            message: format!("`{key}` {message}"),
        })?;
        let (mut ignored_keys, mut irrelevant_keys) = (Vec::new(), Vec::new());
        for key in order {
            let value = &unread[&key];
            let irrelevant = IRRELEVANT_KEYS.contains(&key.as_str())
                || (GCODE_TEMPLATES.contains(&key.as_str()) && !template_moves(value))
                || irrelevant_while_off(&key, &unread);
            if irrelevant { irrelevant_keys.push(key) } else { ignored_keys.push(key) }
        }
        Ok(LoadedProfile { profile, ignored_keys, irrelevant_keys })
    }

    /// Values that parse but cannot print: the key and what is wrong.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let height = self.first_layer_height_mm();
        if !(height.is_finite() && height > 0.0) {
            return Err(("first_layer_height", format!("must be a positive height, got {height} mm")));
        }
        if self.layer_height > 10.0 * self.nozzle_diameter {
            return Err((
                "layer_height",
                format!("{} mm is more than ten nozzles ({} mm) high", self.layer_height, self.nozzle_diameter),
            ));
        }
        if self.infill_every_layers == 0 {
            return Err(("infill_every_layers", "must be at least 1".into()));
        }
        if self.perimeter_speed == 0.0 && self.infill_speed == 0.0 && self.max_print_speed <= 0.0 {
            return Err(("max_print_speed", "must be positive when speeds are automatic (0)".into()));
        }
        Ok(())
    }

    /// The profile as PrusaSlicer `.ini` lines, keys in alphabetical order
    /// like PrusaSlicer's own exports. It holds every key the estimate
    /// reads, so two profiles that estimate alike write alike.
    pub fn to_ini(&self) -> String {
        let mut lines = write_keys(self);
        lines.sort_by_key(|(key, _)| *key);
        let mut out = String::new();
        for (key, value) in lines {
            let _ = writeln!(out, "{key} = {value}");
        }
        out
    }

    /// The first layer's height in mm.
    pub fn first_layer_height_mm(&self) -> f64 {
        self.first_layer_height.resolve(self.layer_height)
    }

    /// Whether PrusaSlicer 2.5's time estimate takes the profile's machine
    /// limits (Marlin flavours that do not ignore them) or its own built-in
    /// ones, which are the defaults of every `machine_*` key.
    pub fn machine_limits_apply(&self) -> bool {
        matches!(self.gcode_flavor.as_str(), "marlin" | "marlin2")
            && self.machine_limits_usage != MachineLimitsUsage::Ignore
    }
}

/// PrusaSlicer stores per-mode values as "normal,silent"; the first is used.
fn first_number(value: &str) -> Option<f64> {
    value.split(',').next()?.trim().parse().ok()
}

fn format_number(value: f64) -> String {
    // Shortest form that reads back exactly: 0.3, not 0.30000000000000004.
    let text = format!("{value}");
    if text.contains('e') { format!("{value:.6}") } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_prusaslicers_defaults() {
        let loaded = FdmProfile::from_ini("").unwrap();
        assert_eq!(loaded.profile, FdmProfile::default());
        assert!(loaded.ignored_keys.is_empty() && loaded.irrelevant_keys.is_empty());
        assert_eq!(loaded.profile.first_layer_height_mm(), 0.35);
        assert_eq!(loaded.profile.external_perimeter_speed.resolve(loaded.profile.perimeter_speed), 30.0);
    }

    #[test]
    fn a_shop_profile_overrides_and_unread_keys_are_sorted() {
        let ini = "# generated by PrusaSlicer 2.5.0\n\
                   layer_height = 0.2\nfirst_layer_height = 150%\nperimeters = 2\nfill_density = 15%\n\
                   support_material = 1\nmachine_max_acceleration_extruding = 1250,1000\n\
                   filament_density = 1.24\nbed_temperature = 60\nironing = 1\nironing_speed = 15\n\
                   seam_position = rear\nlayer_gcode = ;AFTER_LAYER_CHANGE\\n;[layer_z]\n\
                   before_layer_gcode = G1 X0 Y0\\n\nfuzzy_skin_thickness = 0.3\n\
                   extrusion_width = 0.45\nperimeter_extrusion_width = 110%\n";
        let loaded = FdmProfile::from_ini(ini).unwrap();
        let p = &loaded.profile;
        assert_eq!((p.layer_height, p.perimeters, p.support_material), (0.2, 2, true));
        assert!((p.first_layer_height_mm() - 0.3).abs() < 1e-12);
        assert!((p.fill_density - 0.15).abs() < 1e-12);
        assert_eq!((p.machine_max_acceleration_extruding, p.filament_density), (1250.0, 1.24));
        assert_eq!((p.extrusion_width, p.perimeter_extrusion_width), (Width::Mm(0.45), Width::PercentOfNozzle(110.0)));
        // Ironing is on, so its speed matters; a layer template that only
        // writes comments does not, one that moves the head does.
        assert_eq!(loaded.ignored_keys, vec!["ironing", "ironing_speed", "seam_position", "before_layer_gcode"]);
        assert_eq!(loaded.irrelevant_keys, vec!["bed_temperature", "layer_gcode", "fuzzy_skin_thickness"]);
    }

    #[test]
    fn the_ini_round_trips_every_read_key() {
        let mut profile = FdmProfile { layer_height: 0.15, fill_density: 0.4, ..FdmProfile::default() };
        profile.solid_infill_speed = Speed::Percent(80.0);
        profile.infill_extrusion_width = Width::PercentOfNozzle(112.5);
        profile.machine_limits_usage = MachineLimitsUsage::EmitToGcode;
        profile.support_material_bottom_interface_layers = 2;
        let ini = profile.to_ini();
        let loaded = FdmProfile::from_ini(&ini).unwrap();
        assert_eq!(loaded.profile, profile);
        assert!(loaded.ignored_keys.is_empty() && loaded.irrelevant_keys.is_empty());
        assert!(ini.contains("fill_density = 40%\n"));
        assert_eq!(ini.lines().count(), READ_KEYS.len(), "one line per read key");
    }

    #[test]
    fn nonsense_values_name_their_line() {
        for (ini, line) in [
            ("layer_height = 0.2\nlayer_height = -1\n", 2),
            ("fill_density = 150%\n", 1),
            ("perimeters = two\n", 1),
            ("\n\njust some words\n", 3),
            ("travel_speed = 0\n", 1),
            ("extrusion_width = wide\n", 1),
            ("machine_limits_usage = sometimes\n", 1),
            ("layer_height = 0.2\n\ninfill_every_layers = 0\n", 3),
            ("nozzle_diameter = 0.4\nlayer_height = 9\n", 2),
        ] {
            let err = FdmProfile::from_ini(ini).unwrap_err();
            assert_eq!(err.line, line, "{ini:?}: {err}");
        }
    }
}
