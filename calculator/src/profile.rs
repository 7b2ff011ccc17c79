//! FDM print settings that a print shop already has: read from a PrusaSlicer
//! `.ini` export, and written back in the same format.
//!
//! Only the keys the estimator uses are kept; every other key is listed as
//! ignored, so a quote can say what it did not take into account. A missing
//! key takes PrusaSlicer 2.5's own default (`prusa-slicer --save` with no
//! profile loaded), so an empty file means "what PrusaSlicer would do".

use std::fmt::Write as _;

/// A speed that is either absolute or a percentage of another speed, as
/// PrusaSlicer writes them (`external_perimeter_speed = 50%`).
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

/// The FDM settings the print-time and material estimate depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct FdmProfile {
    pub layer_height: f64,
    /// Absolute, or a percentage of `layer_height`.
    pub first_layer_height: Speed,
    pub perimeters: u32,
    pub top_solid_layers: u32,
    pub bottom_solid_layers: u32,
    /// Sparse infill density, 0 to 1.
    pub fill_density: f64,
    pub fill_pattern: String,
    pub support_material: bool,
    /// Overhang angle that needs support, degrees from horizontal (0: auto).
    pub support_material_threshold: f64,
    pub nozzle_diameter: f64,
    pub filament_diameter: f64,
    /// g/cm³; 0 means unknown.
    pub filament_density: f64,
    /// Money per kg; 0 means unknown.
    pub filament_cost: f64,
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
    pub bridge_speed: f64,
    pub gap_fill_speed: f64,
    pub travel_speed: f64,
    /// Of the speed it replaces when a percentage.
    pub first_layer_speed: Speed,
    /// mm/s²; PrusaSlicer stores "normal,silent" and the estimate uses normal.
    pub machine_max_acceleration_extruding: f64,
    pub machine_max_acceleration_travel: f64,
}

impl Default for FdmProfile {
    fn default() -> Self {
        Self {
            layer_height: 0.3,
            first_layer_height: Speed::MmPerS(0.35),
            perimeters: 3,
            top_solid_layers: 3,
            bottom_solid_layers: 3,
            fill_density: 0.2,
            fill_pattern: "stars".into(),
            support_material: false,
            support_material_threshold: 0.0,
            nozzle_diameter: 0.4,
            filament_diameter: 1.75,
            filament_density: 0.0,
            filament_cost: 0.0,
            perimeter_speed: 60.0,
            external_perimeter_speed: Speed::Percent(50.0),
            small_perimeter_speed: Speed::MmPerS(15.0),
            infill_speed: 80.0,
            solid_infill_speed: Speed::MmPerS(20.0),
            top_solid_infill_speed: Speed::MmPerS(15.0),
            support_material_speed: 60.0,
            bridge_speed: 60.0,
            gap_fill_speed: 20.0,
            travel_speed: 130.0,
            first_layer_speed: Speed::MmPerS(30.0),
            machine_max_acceleration_extruding: 1500.0,
            machine_max_acceleration_travel: 1500.0,
        }
    }
}

/// A profile as loaded, with the keys it did not use.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedProfile {
    pub profile: FdmProfile,
    pub ignored_keys: Vec<String>,
}

/// A line of the `.ini` that could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("profile line {line}: {message}")]
pub struct ProfileError {
    pub line: usize,
    pub message: String,
}

impl FdmProfile {
    /// Reads a PrusaSlicer `.ini` (a plain export; `[section]` headers of a
    /// bundle are skipped). Unknown keys are ignored and listed; a known key
    /// with a value that makes no sense is an error naming its line.
    pub fn from_ini(text: &str) -> Result<LoadedProfile, ProfileError> {
        let mut profile = FdmProfile::default();
        let mut ignored_keys = Vec::new();
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
            let number = || first_number(value).filter(|n| n.is_finite() && *n >= 0.0).ok_or_else(|| bad("a number"));
            let positive = || number().and_then(|n| if n > 0.0 { Ok(n) } else { Err(bad("a positive number")) });
            let count = || value.parse::<u32>().map_err(|_| bad("a whole number"));
            let speed = || parse_speed(value).ok_or_else(|| bad("mm/s or a percentage"));
            match key {
                "layer_height" => profile.layer_height = positive()?,
                "first_layer_height" => profile.first_layer_height = speed()?,
                "perimeters" => profile.perimeters = count()?,
                "top_solid_layers" => profile.top_solid_layers = count()?,
                "bottom_solid_layers" => profile.bottom_solid_layers = count()?,
                "fill_density" => {
                    let percent = value.strip_suffix('%').unwrap_or(value).trim();
                    let density = percent.parse::<f64>().ok().filter(|d| (0.0..=100.0).contains(d));
                    profile.fill_density = density.ok_or_else(|| bad("a percentage from 0% to 100%"))? / 100.0;
                }
                "fill_pattern" => profile.fill_pattern = value.to_string(),
                "support_material" => profile.support_material = value == "1",
                "support_material_threshold" => profile.support_material_threshold = number()?,
                "nozzle_diameter" => profile.nozzle_diameter = positive()?,
                "filament_diameter" => profile.filament_diameter = positive()?,
                "filament_density" => profile.filament_density = number()?,
                "filament_cost" => profile.filament_cost = number()?,
                "perimeter_speed" => profile.perimeter_speed = positive()?,
                "external_perimeter_speed" => profile.external_perimeter_speed = speed()?,
                "small_perimeter_speed" => profile.small_perimeter_speed = speed()?,
                "infill_speed" => profile.infill_speed = positive()?,
                "solid_infill_speed" => profile.solid_infill_speed = speed()?,
                "top_solid_infill_speed" => profile.top_solid_infill_speed = speed()?,
                "support_material_speed" => profile.support_material_speed = positive()?,
                "bridge_speed" => profile.bridge_speed = positive()?,
                "gap_fill_speed" => profile.gap_fill_speed = positive()?,
                "travel_speed" => profile.travel_speed = positive()?,
                "first_layer_speed" => profile.first_layer_speed = speed()?,
                "machine_max_acceleration_extruding" => profile.machine_max_acceleration_extruding = positive()?,
                "machine_max_acceleration_travel" => profile.machine_max_acceleration_travel = positive()?,
                _ => ignored_keys.push(key.to_string()),
            }
        }
        Ok(LoadedProfile { profile, ignored_keys })
    }

    /// The profile as PrusaSlicer `.ini` lines, keys in alphabetical order
    /// like PrusaSlicer's own exports.
    pub fn to_ini(&self) -> String {
        let mut lines: Vec<(&str, String)> = vec![
            ("bottom_solid_layers", self.bottom_solid_layers.to_string()),
            ("bridge_speed", format_number(self.bridge_speed)),
            ("external_perimeter_speed", self.external_perimeter_speed.to_ini()),
            ("filament_cost", format_number(self.filament_cost)),
            ("filament_density", format_number(self.filament_density)),
            ("filament_diameter", format_number(self.filament_diameter)),
            ("fill_density", format!("{}%", format_number(self.fill_density * 100.0))),
            ("fill_pattern", self.fill_pattern.clone()),
            ("first_layer_height", self.first_layer_height.to_ini()),
            ("first_layer_speed", self.first_layer_speed.to_ini()),
            ("gap_fill_speed", format_number(self.gap_fill_speed)),
            ("infill_speed", format_number(self.infill_speed)),
            ("layer_height", format_number(self.layer_height)),
            ("machine_max_acceleration_extruding", format_number(self.machine_max_acceleration_extruding)),
            ("machine_max_acceleration_travel", format_number(self.machine_max_acceleration_travel)),
            ("nozzle_diameter", format_number(self.nozzle_diameter)),
            ("perimeter_speed", format_number(self.perimeter_speed)),
            ("perimeters", self.perimeters.to_string()),
            ("small_perimeter_speed", self.small_perimeter_speed.to_ini()),
            ("solid_infill_speed", self.solid_infill_speed.to_ini()),
            ("support_material", u8::from(self.support_material).to_string()),
            ("support_material_speed", format_number(self.support_material_speed)),
            ("support_material_threshold", format_number(self.support_material_threshold)),
            ("top_solid_infill_speed", self.top_solid_infill_speed.to_ini()),
            ("top_solid_layers", self.top_solid_layers.to_string()),
            ("travel_speed", format_number(self.travel_speed)),
        ];
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
}

/// PrusaSlicer stores per-mode values as "normal,silent"; the first is used.
fn first_number(value: &str) -> Option<f64> {
    value.split(',').next()?.trim().parse().ok()
}

fn parse_speed(value: &str) -> Option<Speed> {
    match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse().ok().filter(|p: &f64| p.is_finite() && *p > 0.0).map(Speed::Percent),
        None => value.parse().ok().filter(|v: &f64| v.is_finite() && *v > 0.0).map(Speed::MmPerS),
    }
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
        assert!(loaded.ignored_keys.is_empty());
        assert_eq!(loaded.profile.first_layer_height_mm(), 0.35);
        assert_eq!(loaded.profile.external_perimeter_speed.resolve(loaded.profile.perimeter_speed), 30.0);
    }

    #[test]
    fn a_shop_profile_overrides_and_unknown_keys_are_listed() {
        let ini = "# generated by PrusaSlicer 2.5.0\n\
                   layer_height = 0.2\nfirst_layer_height = 150%\nperimeters = 2\nfill_density = 15%\n\
                   support_material = 1\nmachine_max_acceleration_extruding = 1250,1000\n\
                   filament_density = 1.24\nbed_temperature = 60\nwipe_tower = 1\n";
        let loaded = FdmProfile::from_ini(ini).unwrap();
        let p = &loaded.profile;
        assert_eq!((p.layer_height, p.perimeters, p.support_material), (0.2, 2, true));
        assert!((p.first_layer_height_mm() - 0.3).abs() < 1e-12);
        assert!((p.fill_density - 0.15).abs() < 1e-12);
        assert_eq!((p.machine_max_acceleration_extruding, p.filament_density), (1250.0, 1.24));
        assert_eq!(loaded.ignored_keys, vec!["bed_temperature", "wipe_tower"]);
    }

    #[test]
    fn the_ini_round_trips() {
        let mut profile = FdmProfile { layer_height: 0.15, fill_density: 0.4, ..FdmProfile::default() };
        profile.solid_infill_speed = Speed::Percent(80.0);
        let loaded = FdmProfile::from_ini(&profile.to_ini()).unwrap();
        assert_eq!(loaded.profile, profile);
        assert!(loaded.ignored_keys.is_empty());
        assert!(profile.to_ini().contains("fill_density = 40%\n"));
    }

    #[test]
    fn nonsense_values_name_their_line() {
        for (ini, line) in [
            ("layer_height = 0.2\nlayer_height = -1\n", 2),
            ("fill_density = 150%\n", 1),
            ("perimeters = two\n", 1),
            ("\n\njust some words\n", 3),
            ("travel_speed = 0\n", 1),
        ] {
            let err = FdmProfile::from_ini(ini).unwrap_err();
            assert_eq!(err.line, line, "{ini:?}: {err}");
        }
    }
}
