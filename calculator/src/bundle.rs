//! PrusaSlicer vendor bundles (`profiles/VENDOR.ini`): their presets, with
//! `inherits` resolved, flattened into the one `.ini` a shop's quotes load.
//!
//! A bundle holds `[printer:NAME]`, `[print:NAME]`, `[filament:NAME]`,
//! `[sla_print:NAME]` and `[sla_material:NAME]` sections. `inherits = A; B`
//! names parents of the same kind, applied in order (a later parent overrides
//! an earlier one), and the section's own keys override them all; names in
//! `*stars*` are abstract parents a user never picks. A flat preset is the
//! printer, the print and the filament (or the SLA print and material),
//! each resolved this way, in one file that `prusa-slicer --load` and
//! `farm quote --profile` both read.
//!
//! Pure: the caller reads the bundle and writes the result.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The kinds of preset a bundle holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PresetKind {
    Printer,
    Print,
    Filament,
    SlaPrint,
    SlaMaterial,
}

impl PresetKind {
    pub const ALL: [PresetKind; 5] =
        [PresetKind::Printer, PresetKind::Print, PresetKind::Filament, PresetKind::SlaPrint, PresetKind::SlaMaterial];

    /// The section prefix, as the bundle writes it (`[print:NAME]`).
    pub fn section(self) -> &'static str {
        match self {
            PresetKind::Printer => "printer",
            PresetKind::Print => "print",
            PresetKind::Filament => "filament",
            PresetKind::SlaPrint => "sla_print",
            PresetKind::SlaMaterial => "sla_material",
        }
    }

    fn from_section(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.section() == name)
    }
}

/// Keys that only make sense inside a bundle (how presets relate to each
/// other), left out of a flat preset.
const BUNDLE_ONLY_KEYS: &[&str] = &[
    "inherits",
    "compatible_printers",
    "compatible_printers_condition",
    "compatible_prints",
    "compatible_prints_condition",
    "renamed_from",
    "alias",
];

/// How deep `inherits` chains may go, and how large a bundle may be: a
/// bundle is a file a user hands us, so its work is bounded before it is
/// parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
}

impl Default for BundleLimits {
    fn default() -> Self {
        // PrusaResearch.ini, the largest bundle PrusaSlicer ships, is 376 kB
        // with chains 5 deep.
        Self { max_bytes: 16 * 1024 * 1024, max_depth: 32 }
    }
}

/// Why a bundle or a preset in it could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("the bundle is {bytes} bytes, over the limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error("bundle line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("no {kind} preset `{name}` in the bundle{hint}")]
    UnknownPreset { kind: &'static str, name: String, hint: String },
    #[error("{kind} preset `{name}` inherits from itself (through {chain})")]
    InheritanceCycle { kind: &'static str, name: String, chain: String },
    #[error("{kind} preset `{name}` inherits more than {max} levels deep")]
    TooDeep { kind: &'static str, name: String, max: usize },
    #[error("printer `{printer}` is {technology}; {what}")]
    WrongTechnology { printer: String, technology: &'static str, what: String },
}

/// One `[kind:name]` section: its keys in file order (a repeated key keeps
/// its last value, as PrusaSlicer does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Section {
    keys: Vec<(String, String)>,
}

/// A parsed vendor bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// `[vendor] name` and `config_version`, when present.
    pub vendor: Option<String>,
    pub config_version: Option<String>,
    sections: BTreeMap<(PresetKind, String), Section>,
}

/// A flat preset, ready to be written to a `.ini`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatPreset {
    /// `fff` or `sla`.
    pub technology: &'static str,
    /// Every key, resolved, in alphabetical order.
    pub keys: BTreeMap<String, String>,
    /// Comment lines saying where it came from.
    pub provenance: Vec<String>,
}

impl FlatPreset {
    /// The preset as PrusaSlicer `.ini` text: provenance comments, then
    /// `key = value` lines in alphabetical order.
    pub fn to_ini(&self) -> String {
        let mut out = String::new();
        for line in &self.provenance {
            let _ = writeln!(out, "# {line}");
        }
        for (key, value) in &self.keys {
            let _ = writeln!(out, "{key} = {value}");
        }
        out
    }
}

impl Bundle {
    /// Parses a bundle. Sections other than presets (`[vendor]`,
    /// `[printer_model:…]`, `[obsolete_presets]`) are read for the vendor's
    /// name only; a line that is neither a section, a comment nor
    /// `key = value` is an error naming it.
    pub fn parse(text: &str, limits: BundleLimits) -> Result<Self, BundleError> {
        if text.len() > limits.max_bytes {
            return Err(BundleError::TooLarge { bytes: text.len(), max: limits.max_bytes });
        }
        let mut bundle = Bundle { vendor: None, config_version: None, sections: BTreeMap::new() };
        let mut current: Option<(PresetKind, String)> = None;
        let mut in_vendor = false;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let header = header.strip_suffix(']').ok_or_else(|| BundleError::Syntax {
                    line: index + 1,
                    message: format!("a section header must end with `]`: `{line}`"),
                })?;
                in_vendor = header == "vendor";
                current = header.split_once(':').and_then(|(kind, name)| {
                    PresetKind::from_section(kind.trim()).map(|k| (k, name.trim().to_string()))
                });
                if let Some(key) = &current {
                    bundle.sections.entry(key.clone()).or_default();
                }
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| BundleError::Syntax {
                line: index + 1,
                message: format!("expected `key = value`, got `{}`", truncate(line, 80)),
            })?;
            let (key, value) = (key.trim(), value.trim());
            if in_vendor {
                match key {
                    "name" => bundle.vendor = Some(value.to_string()),
                    "config_version" => bundle.config_version = Some(value.to_string()),
                    _ => {}
                }
            }
            if let Some(section) = current.as_ref().and_then(|k| bundle.sections.get_mut(k)) {
                match section.keys.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value.to_string(),
                    None => section.keys.push((key.to_string(), value.to_string())),
                }
            }
        }
        Ok(bundle)
    }

    /// The presets of `kind` a user can pick (not the `*abstract*` ones), in
    /// name order.
    pub fn presets(&self, kind: PresetKind) -> Vec<&str> {
        self.sections
            .keys()
            .filter(|(k, name)| *k == kind && !is_abstract(name))
            .map(|(_, name)| name.as_str())
            .collect()
    }

    /// The preset `name` of `kind` with its `inherits` chain applied.
    pub fn resolve(
        &self,
        kind: PresetKind,
        name: &str,
        limits: BundleLimits,
    ) -> Result<BTreeMap<String, String>, BundleError> {
        let mut chain = Vec::new();
        self.resolve_into(kind, name, limits, &mut chain, &mut BTreeMap::new())
    }

    /// Resolves `name`, remembering every preset resolved on the way, so a
    /// bundle whose parents share ancestors (or one built so they all do)
    /// costs one pass per preset, not one per path.
    fn resolve_into(
        &self,
        kind: PresetKind,
        name: &str,
        limits: BundleLimits,
        chain: &mut Vec<String>,
        done: &mut BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, String>, BundleError> {
        if let Some(resolved) = done.get(name) {
            return Ok(resolved.clone());
        }
        let section = self.sections.get(&(kind, name.to_string())).ok_or_else(|| BundleError::UnknownPreset {
            kind: kind.section(),
            name: name.to_string(),
            hint: self.hint(kind, name),
        })?;
        if chain.iter().any(|n| n == name) {
            chain.push(name.to_string());
            return Err(BundleError::InheritanceCycle {
                kind: kind.section(),
                name: chain[0].clone(),
                chain: chain.join(" → "),
            });
        }
        if chain.len() >= limits.max_depth {
            return Err(BundleError::TooDeep { kind: kind.section(), name: chain[0].clone(), max: limits.max_depth });
        }
        chain.push(name.to_string());
        let mut resolved = BTreeMap::new();
        if let Some((_, parents)) = section.keys.iter().find(|(k, _)| k == "inherits") {
            for parent in parents.split(';').map(|p| p.trim().trim_matches('"').trim()).filter(|p| !p.is_empty()) {
                resolved.extend(self.resolve_into(kind, parent, limits, chain, done)?);
            }
        }
        chain.pop();
        resolved.extend(section.keys.iter().cloned());
        done.insert(name.to_string(), resolved.clone());
        Ok(resolved)
    }

    /// A printer, a print and a filament (or, for a resin printer, an SLA
    /// print and material) as one flat preset. A print or material left out
    /// is the printer's default (`default_print_profile`,
    /// `default_filament_profile`), as PrusaSlicer's wizard picks them.
    pub fn import(
        &self,
        printer: &str,
        print: Option<&str>,
        material: Option<&str>,
        limits: BundleLimits,
    ) -> Result<FlatPreset, BundleError> {
        let printer_keys = self.resolve(PresetKind::Printer, printer, limits)?;
        let sla = printer_keys.get("printer_technology").is_some_and(|t| t.eq_ignore_ascii_case("SLA"));
        let default = |key: &str, what: &str| {
            printer_keys.get(key).map(|v| v.trim_matches('"').to_string()).ok_or_else(|| BundleError::UnknownPreset {
                kind: "default",
                name: what.to_string(),
                hint: format!(" (printer `{printer}` names no `{key}`; name one)"),
            })
        };
        let (print, material) = match (print, material, sla) {
            (Some(p), Some(m), _) => (p.to_string(), m.to_string()),
            (p, m, false) => (
                p.map_or_else(|| default("default_print_profile", "print"), |p| Ok(p.to_string()))?,
                m.map_or_else(|| default("default_filament_profile", "filament"), |m| Ok(m.to_string()))?,
            ),
            (p, m, true) => (
                p.map_or_else(|| default("default_sla_print_profile", "sla_print"), |p| Ok(p.to_string()))?,
                m.map_or_else(|| default("default_sla_material_profile", "sla_material"), |m| Ok(m.to_string()))?,
            ),
        };
        let (print, material) = (print.as_str(), material.as_str());
        let (print_kind, material_kind, technology) = if sla {
            (PresetKind::SlaPrint, PresetKind::SlaMaterial, "sla")
        } else {
            (PresetKind::Print, PresetKind::Filament, "fff")
        };
        let wrong = |kind: PresetKind, name: &str| {
            let other = match kind {
                PresetKind::Print => PresetKind::SlaPrint,
                PresetKind::SlaPrint => PresetKind::Print,
                PresetKind::Filament => PresetKind::SlaMaterial,
                PresetKind::SlaMaterial => PresetKind::Filament,
                PresetKind::Printer => PresetKind::Printer,
            };
            self.sections.contains_key(&(other, name.to_string())).then(|| BundleError::WrongTechnology {
                printer: printer.to_string(),
                technology: if sla { "a resin (SLA) printer" } else { "a filament (FFF) printer" },
                what: format!("`{name}` is a {} preset; it needs a {} preset", other.section(), kind.section()),
            })
        };
        let print_keys = self.resolve(print_kind, print, limits).map_err(|e| match e {
            BundleError::UnknownPreset { .. } => wrong(print_kind, print).unwrap_or(e),
            other => other,
        })?;
        let material_keys = self.resolve(material_kind, material, limits).map_err(|e| match e {
            BundleError::UnknownPreset { .. } => wrong(material_kind, material).unwrap_or(e),
            other => other,
        })?;
        let mut keys = BTreeMap::new();
        for part in [printer_keys, print_keys, material_keys] {
            keys.extend(part.into_iter().filter(|(k, _)| !BUNDLE_ONLY_KEYS.contains(&k.as_str())));
        }
        let vendor = match (&self.vendor, &self.config_version) {
            (Some(v), Some(c)) => format!("{v} bundle, config_version {c}"),
            (Some(v), None) => format!("{v} bundle"),
            _ => "a PrusaSlicer vendor bundle".to_string(),
        };
        let provenance = vec![
            format!("flattened by `farm profile import` from the {vendor}"),
            format!("{} = {printer}", PresetKind::Printer.section()),
            format!("{} = {print}", print_kind.section()),
            format!("{} = {material}", material_kind.section()),
        ];
        Ok(FlatPreset { technology, keys, provenance })
    }

    /// A few presets of `kind` whose names contain the words of `name`, to
    /// suggest when a name is mistyped.
    fn hint(&self, kind: PresetKind, name: &str) -> String {
        let words: Vec<String> = name.split_whitespace().map(str::to_ascii_lowercase).collect();
        let mut close: Vec<(usize, &str)> = self
            .presets(kind)
            .into_iter()
            .map(|p| {
                let lower = p.to_ascii_lowercase();
                (words.iter().filter(|w| lower.contains(w.as_str())).count(), p)
            })
            .filter(|(score, _)| *score > 0)
            .collect();
        close.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let names: Vec<String> = close.iter().take(5).map(|(_, p)| format!("`{p}`")).collect();
        if names.is_empty() { String::new() } else { format!("; did you mean {}?", names.join(", ")) }
    }
}

fn is_abstract(name: &str) -> bool {
    name.starts_with('*') && name.ends_with('*')
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = "\
# A small bundle in PrusaSlicer's format.
[vendor]
name = Acme
config_version = 1.2.3

[printer_model:A1]
name = Acme One

[print:*common*]
layer_height = 0.2
perimeters = 2
fill_density = 15%
compatible_printers_condition = printer_model==\"A1\"

[print:*fine*]
layer_height = 0.1

[print:0.10mm FINE @A1]
inherits = *common*; *fine*
perimeters = 3

[printer:*base*]
nozzle_diameter = 0.4
machine_max_acceleration_extruding = 1000,800

[printer:Acme One]
inherits = *base*
printer_model = A1

[filament:Acme PLA]
filament_density = 1.24
filament_cost = 20

[printer:Acme Resin]
printer_technology = SLA
display_width = 120
default_sla_print_profile = 0.05 Normal
default_sla_material_profile = Grey @0.05

[sla_print:0.05 Normal]
layer_height = 0.05

[sla_material:Grey @0.05]
exposure_time = 2
";

    fn bundle() -> Bundle {
        Bundle::parse(BUNDLE, BundleLimits::default()).unwrap()
    }

    #[test]
    fn parents_apply_in_order_and_the_section_overrides_them() {
        let b = bundle();
        assert_eq!((b.vendor.as_deref(), b.config_version.as_deref()), (Some("Acme"), Some("1.2.3")));
        let print = b.resolve(PresetKind::Print, "0.10mm FINE @A1", BundleLimits::default()).unwrap();
        assert_eq!(print["layer_height"], "0.1", "the later parent wins");
        assert_eq!(print["perimeters"], "3", "the section wins");
        assert_eq!(print["fill_density"], "15%");
        assert_eq!(b.presets(PresetKind::Print), vec!["0.10mm FINE @A1"], "abstract presets are not offered");
    }

    #[test]
    fn import_flattens_printer_print_and_filament_without_bundle_keys() {
        let flat =
            bundle().import("Acme One", Some("0.10mm FINE @A1"), Some("Acme PLA"), BundleLimits::default()).unwrap();
        assert_eq!(flat.technology, "fff");
        let ini = flat.to_ini();
        for line in ["layer_height = 0.1\n", "nozzle_diameter = 0.4\n", "filament_density = 1.24\n"] {
            assert!(ini.contains(line), "{line:?} missing from\n{ini}");
        }
        assert!(!ini.contains("inherits") && !ini.contains("compatible_printers_condition"), "{ini}");
        assert!(ini.starts_with("# flattened by `farm profile import` from the Acme bundle, config_version 1.2.3\n"));
        // The flat file reads back as the profile it describes.
        let loaded = crate::FdmProfile::from_ini(&ini).unwrap();
        assert_eq!((loaded.profile.layer_height, loaded.profile.perimeters), (0.1, 3));
    }

    #[test]
    fn a_resin_printer_takes_an_sla_print_and_material() {
        let b = bundle();
        let flat = b.import("Acme Resin", None, None, BundleLimits::default()).unwrap();
        assert_eq!(flat.technology, "sla");
        assert_eq!(flat.keys["exposure_time"], "2");
        let err =
            b.import("Acme Resin", Some("0.10mm FINE @A1"), Some("Grey @0.05"), BundleLimits::default()).unwrap_err();
        assert!(matches!(err, BundleError::WrongTechnology { .. }), "{err}");
        let err = b.import("Acme One", Some("0.05 Normal"), Some("Acme PLA"), BundleLimits::default()).unwrap_err();
        assert!(err.to_string().contains("needs a print preset"), "{err}");
    }

    #[test]
    fn unknown_names_cycles_and_deep_chains_are_typed_errors() {
        let b = bundle();
        let err = b.import("Acme One", Some("0.10mm fine"), Some("Acme PLA"), BundleLimits::default()).unwrap_err();
        assert!(err.to_string().contains("did you mean `0.10mm FINE @A1`"), "{err}");
        let err = b.import("Acme One", None, Some("Acme PLA"), BundleLimits::default()).unwrap_err();
        assert!(err.to_string().contains("default_print_profile"), "{err}");
        let cycle = "[print:a]\ninherits = b\n[print:b]\ninherits = a\n";
        let err = Bundle::parse(cycle, BundleLimits::default())
            .unwrap()
            .resolve(PresetKind::Print, "a", BundleLimits::default())
            .unwrap_err();
        assert!(matches!(err, BundleError::InheritanceCycle { .. }), "{err}");
        let mut deep = String::from("[print:p0]\nlayer_height = 0.2\n");
        for i in 1..50 {
            deep.push_str(&format!("[print:p{i}]\ninherits = p{}\n", i - 1));
        }
        let err = Bundle::parse(&deep, BundleLimits::default())
            .unwrap()
            .resolve(PresetKind::Print, "p49", BundleLimits::default())
            .unwrap_err();
        assert!(matches!(err, BundleError::TooDeep { .. }), "{err}");
        // Every level inherits its parent twice: resolved once each, not 2^40 times.
        let mut diamond = String::from("[print:q0]\nlayer_height = 0.2\n");
        for i in 1..40 {
            diamond.push_str(&format!("[print:q{i}]\ninherits = q{0}; q{0}\n", i - 1));
        }
        let limits = BundleLimits { max_depth: 64, ..BundleLimits::default() };
        let resolved = Bundle::parse(&diamond, limits).unwrap().resolve(PresetKind::Print, "q39", limits).unwrap();
        assert_eq!(resolved["layer_height"], "0.2");
        let limits = BundleLimits { max_bytes: 10, ..BundleLimits::default() };
        assert!(matches!(Bundle::parse(BUNDLE, limits), Err(BundleError::TooLarge { .. })));
        let err = Bundle::parse("[print:x]\nnot a line\n", BundleLimits::default()).unwrap_err();
        assert_eq!(err, BundleError::Syntax { line: 2, message: "expected `key = value`, got `not a line`".into() });
    }
}
