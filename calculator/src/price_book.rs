//! The price book: materials, machines, post-processing, fees and the rules
//! that turn costs into a price. It is a versioned TOML file, loaded and
//! validated once at start; every quote names the version that priced it.
//!
//! The file is read into `raw` structs that mirror it (unknown keys are
//! refused, so a typo is an error, not a silently missing price), then
//! checked and resolved into the typed [`PriceBook`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::PricingError;

/// The built-in price book, as TOML.
pub const BUILTIN_PRICE_BOOK: &str = include_str!("../price-book.toml");

/// The printing process a material runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Technology {
    /// Fused deposition: filament through a nozzle.
    Fdm,
    /// Resin cured by light, layer by layer.
    Sla,
    /// Powder sintered by a laser.
    Sls,
}

impl Technology {
    pub fn as_str(self) -> &'static str {
        match self {
            Technology::Fdm => "fdm",
            Technology::Sla => "sla",
            Technology::Sls => "sls",
        }
    }
}

/// What a shop charges supports for, when the print profile and the part
/// disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SupportPolicy {
    /// Exactly as the profile says; a part that needs supports the profile
    /// leaves off is priced without them, with a warning.
    Profile,
    /// Supports where the slicer's automatic detection would put them:
    /// on when the part overhangs by at least `supports_min_area_mm2`.
    Auto,
    /// Always on (the slicer still only builds them under overhangs).
    Always,
}

impl SupportPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SupportPolicy::Profile => "profile",
            SupportPolicy::Auto => "auto",
            SupportPolicy::Always => "always",
        }
    }
}

/// How a material is bought.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaterialPrice {
    PerKg(f64),
    PerLitre(f64),
}

/// What a material adds to its technology's process model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaterialProcess {
    /// FDM filament: everything else comes from the print profile.
    Fdm,
    Sla(Resin),
    Sls(Powder),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resin {
    /// Support resin as a share of the support column under the overhangs.
    pub support_fill: f64,
    /// Resin lost in the vat, the wash and failed layers, as a share.
    pub waste: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Powder {
    /// Share of the loose powder around a part replaced with fresh powder.
    pub refresh_rate: f64,
    /// Bulk density of the loose powder, g/cm³.
    pub powder_density_g_cm3: f64,
}

/// A material the shop sells.
#[derive(Debug, Clone, PartialEq)]
pub struct Material {
    pub name: String,
    pub technology: Technology,
    /// g/cm³. FDM materials may leave it to the profile's `filament_density`.
    pub density_g_cm3: Option<f64>,
    /// FDM materials may leave it to the profile's `filament_cost` (per kg).
    pub price: Option<MaterialPrice>,
    pub colours: Vec<String>,
    /// The machines that may print it; empty means every machine of its
    /// technology.
    pub machines: Vec<String>,
    pub process: MaterialProcess,
}

/// A machine's process constants, per technology.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MachineProcess {
    /// FDM machines print with the shop's profile.
    Fdm,
    Sla(SlaMachine),
    Sls(SlsMachine),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlaMachine {
    pub layer_height_mm: f64,
    pub exposure_s: f64,
    pub bottom_layers: u32,
    pub bottom_exposure_s: f64,
    /// Peel, lift and settle between layers, seconds.
    pub layer_overhead_s: f64,
    /// Share of the platform parts can occupy.
    pub packing: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlsMachine {
    pub layer_height_mm: f64,
    /// Recoating and heating one layer of the whole bed, seconds.
    pub layer_overhead_s: f64,
    /// Area the laser sinters per second, mm²/s.
    pub scan_mm2_per_s: f64,
    /// Warm-up and cool-down of one build, seconds.
    pub build_overhead_s: f64,
    /// Share of the chamber the nested parts' bounding boxes fill.
    pub packing: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub name: String,
    pub technology: Technology,
    pub hourly_rate: f64,
    pub build_volume_mm: [f64; 3],
    pub process: MachineProcess,
}

/// A per-part finishing step.
#[derive(Debug, Clone, PartialEq)]
pub struct PostProcess {
    pub name: String,
    /// The technology it applies to; `None` for every part.
    pub technology: Option<Technology>,
    pub per_part: f64,
    /// Only for parts printed with supports.
    pub only_with_supports: bool,
}

/// A discount on the variable cost from a quantity on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantityBreak {
    pub min_quantity: u32,
    /// Share taken off, 0 to 1.
    pub discount: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoundingMode {
    Nearest,
    Up,
    Down,
}

/// How a total is rounded: to a multiple of `step`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rounding {
    pub step: f64,
    pub mode: RoundingMode,
}

impl Rounding {
    pub fn apply(self, amount: f64) -> f64 {
        let units = amount / self.step;
        // A hair of tolerance so 12.3 / 0.05 = 245.99999999999997 rounds up
        // to 246 steps, not down to 245.
        let units = match self.mode {
            RoundingMode::Nearest => units.round(),
            RoundingMode::Up => (units - 1e-9).ceil(),
            RoundingMode::Down => (units + 1e-9).floor(),
        };
        // Back to cents, so 0.1 * 3 prints as 0.3.
        (units * self.step * 100.0).round() / 100.0
    }
}

/// Prices and the rules that make a price. One version prices every quote
/// it produces.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceBook {
    pub version: String,
    /// SHA-256 of the file it was read from: changes with any edit, even
    /// one that forgot to bump the version.
    pub fingerprint: String,
    pub currency: String,
    /// Markup on the (discounted) cost of material, machine time and
    /// post-processing.
    pub margin: f64,
    pub setup_fee: f64,
    pub minimum_order: f64,
    pub max_quantity: u32,
    /// How long a quote's price holds once given, days: an order must be
    /// approved within it, or priced again.
    pub quote_valid_days: u32,
    pub rounding: Rounding,
    /// Whether FDM quotes charge supports the profile leaves off.
    pub supports: SupportPolicy,
    /// Overhang area, mm², from which a part needs supports: below it the
    /// slicer bridges or prints over the gap, and nothing is warned about.
    pub supports_min_area_mm2: f64,
    /// Ascending by `min_quantity`.
    pub quantity_breaks: Vec<QuantityBreak>,
    pub machines: Vec<Machine>,
    pub materials: Vec<Material>,
    pub post_processing: Vec<PostProcess>,
}

/// Why a price book was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PriceBookError(String);

impl PriceBook {
    /// The book compiled into the binary.
    pub fn builtin() -> Self {
        Self::from_toml(BUILTIN_PRICE_BOOK).expect("the built-in price book is valid (a unit test checks it)")
    }

    /// Reads and validates a price book. Errors name the key (and, for
    /// syntax, the line) that is wrong.
    pub fn from_toml(text: &str) -> Result<Self, PriceBookError> {
        let raw: raw::Book = toml::from_str(text).map_err(|e| PriceBookError(e.to_string().trim_end().to_string()))?;
        let fingerprint = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        raw.validate(fingerprint)
    }

    pub fn material(&self, name: &str) -> Result<&Material, PricingError> {
        self.materials.iter().find(|m| m.name.eq_ignore_ascii_case(name)).ok_or_else(|| PricingError::UnknownMaterial {
            material: name.to_string(),
            offered: self.materials.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// The machines that can print `material`, in the book's order (by name).
    pub fn machines_for(&self, material: &Material) -> Vec<&Machine> {
        self.machines
            .iter()
            .filter(|m| m.technology == material.technology)
            .filter(|m| material.machines.is_empty() || material.machines.contains(&m.name))
            .collect()
    }

    /// The discount the largest break `quantity` reaches gives.
    pub fn quantity_break(&self, quantity: u32) -> Option<QuantityBreak> {
        self.quantity_breaks.iter().rev().find(|b| quantity >= b.min_quantity).copied()
    }
}

/// The file's shape, as serde reads it.
mod raw {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Book {
        version: String,
        currency: String,
        margin: f64,
        setup_fee: f64,
        minimum_order: f64,
        #[serde(default = "default_max_quantity")]
        max_quantity: u32,
        #[serde(default = "default_quote_valid_days")]
        quote_valid_days: u32,
        #[serde(default = "default_rounding")]
        rounding: Rounding,
        #[serde(default = "default_supports")]
        supports: SupportPolicy,
        #[serde(default = "default_supports_min_area")]
        supports_min_area_mm2: f64,
        #[serde(default)]
        quantity_breaks: Vec<Break>,
        machines: BTreeMap<String, Machine>,
        materials: BTreeMap<String, Material>,
        #[serde(default)]
        post_processing: Vec<Post>,
    }

    fn default_max_quantity() -> u32 {
        10_000
    }

    fn default_quote_valid_days() -> u32 {
        30
    }

    fn default_rounding() -> Rounding {
        Rounding { step: 0.01, mode: RoundingMode::Nearest }
    }

    fn default_supports() -> SupportPolicy {
        SupportPolicy::Auto
    }

    fn default_supports_min_area() -> f64 {
        25.0
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Break {
        min_quantity: u32,
        discount: f64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Machine {
        technology: Technology,
        hourly_rate: f64,
        build_volume_mm: [f64; 3],
        layer_height_mm: Option<f64>,
        exposure_s: Option<f64>,
        bottom_layers: Option<u32>,
        bottom_exposure_s: Option<f64>,
        layer_overhead_s: Option<f64>,
        scan_mm2_per_s: Option<f64>,
        build_overhead_s: Option<f64>,
        packing: Option<f64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Material {
        technology: Technology,
        density_g_cm3: Option<f64>,
        price_per_kg: Option<f64>,
        price_per_litre: Option<f64>,
        #[serde(default)]
        colours: Vec<String>,
        #[serde(default)]
        machines: Vec<String>,
        support_fill: Option<f64>,
        waste: Option<f64>,
        refresh_rate: Option<f64>,
        powder_density_g_cm3: Option<f64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Post {
        name: String,
        technology: Option<Technology>,
        per_part: f64,
        #[serde(default)]
        only_with_supports: bool,
    }

    /// Checks one number: finite and within `range`.
    fn number(
        what: &str,
        value: f64,
        range: impl std::ops::RangeBounds<f64> + std::fmt::Debug,
    ) -> Result<f64, PriceBookError> {
        if value.is_finite() && range.contains(&value) {
            Ok(value)
        } else {
            Err(PriceBookError(format!("`{what}` must be in {range:?}, got {value}")))
        }
    }

    fn positive(what: &str, value: f64) -> Result<f64, PriceBookError> {
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err(PriceBookError(format!("`{what}` must be a positive number, got {value}")))
        }
    }

    fn money(what: &str, value: f64) -> Result<f64, PriceBookError> {
        number(what, value, 0.0..)
    }

    fn required<T>(value: Option<T>, what: String) -> Result<T, PriceBookError> {
        value.ok_or_else(|| PriceBookError(format!("`{what}` is missing")))
    }

    /// A key that only another technology reads must not be set: it would
    /// look like it matters.
    fn absent<T>(value: &Option<T>, what: String, technology: Technology) -> Result<(), PriceBookError> {
        match value {
            Some(_) => Err(PriceBookError(format!("`{what}` does not apply to {}", technology.as_str()))),
            None => Ok(()),
        }
    }

    impl Book {
        pub(super) fn validate(self, fingerprint: String) -> Result<PriceBook, PriceBookError> {
            if self.version.trim().is_empty() {
                return Err(PriceBookError("`version` must not be empty".into()));
            }
            let currency = self.currency.trim();
            if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(PriceBookError(format!(
                    "`currency` must be a three-letter ISO 4217 code such as EUR, got `{}`",
                    self.currency
                )));
            }
            let margin = number("margin", self.margin, 0.0..=10.0)?;
            let setup_fee = money("setup_fee", self.setup_fee)?;
            let minimum_order = money("minimum_order", self.minimum_order)?;
            if self.max_quantity == 0 {
                return Err(PriceBookError("`max_quantity` must be at least 1".into()));
            }
            if !(1..=3650).contains(&self.quote_valid_days) {
                return Err(PriceBookError(format!(
                    "`quote_valid_days` must be 1 to 3650, got {}",
                    self.quote_valid_days
                )));
            }
            let rounding = Rounding { step: positive("rounding.step", self.rounding.step)?, mode: self.rounding.mode };
            let mut quantity_breaks = Vec::with_capacity(self.quantity_breaks.len());
            for (i, b) in self.quantity_breaks.iter().enumerate() {
                let what = format!("quantity_breaks[{i}]");
                let discount = number(&format!("{what}.discount"), b.discount, 0.0..1.0)?;
                if let Some(previous) = quantity_breaks.last().map(|p: &QuantityBreak| p.min_quantity)
                    && b.min_quantity <= previous
                {
                    return Err(PriceBookError(format!(
                        "`{what}.min_quantity` must be larger than the break before it ({previous}), got {}",
                        b.min_quantity
                    )));
                }
                quantity_breaks.push(QuantityBreak { min_quantity: b.min_quantity, discount });
            }

            let mut machines = Vec::with_capacity(self.machines.len());
            for (name, m) in self.machines {
                machines.push(m.validate(name)?);
            }
            let mut materials = Vec::with_capacity(self.materials.len());
            for (name, m) in self.materials {
                let material = m.validate(name, &machines)?;
                materials.push(material);
            }
            if materials.is_empty() {
                return Err(PriceBookError("the price book offers no `materials`".into()));
            }
            let mut post_processing = Vec::with_capacity(self.post_processing.len());
            for (i, p) in self.post_processing.into_iter().enumerate() {
                if p.name.trim().is_empty() {
                    return Err(PriceBookError(format!("`post_processing[{i}].name` must not be empty")));
                }
                let per_part = money(&format!("post_processing[{i}].per_part"), p.per_part)?;
                post_processing.push(PostProcess {
                    name: p.name,
                    technology: p.technology,
                    per_part,
                    only_with_supports: p.only_with_supports,
                });
            }
            Ok(PriceBook {
                version: self.version,
                fingerprint,
                currency: currency.to_string(),
                margin,
                setup_fee,
                minimum_order,
                max_quantity: self.max_quantity,
                quote_valid_days: self.quote_valid_days,
                rounding,
                supports: self.supports,
                supports_min_area_mm2: number("supports_min_area_mm2", self.supports_min_area_mm2, 0.0..)?,
                quantity_breaks,
                machines,
                materials,
                post_processing,
            })
        }
    }

    impl Machine {
        fn validate(self, name: String) -> Result<super::Machine, PriceBookError> {
            let key = |field: &str| format!("machines.{name}.{field}");
            let hourly_rate = money(&key("hourly_rate"), self.hourly_rate)?;
            for (axis, size) in ["x", "y", "z"].iter().zip(self.build_volume_mm) {
                positive(&format!("{} ({axis})", key("build_volume_mm")), size)?;
            }
            let technology = self.technology;
            let process = match technology {
                Technology::Fdm => {
                    absent(&self.layer_height_mm, key("layer_height_mm"), technology)?;
                    absent(&self.exposure_s, key("exposure_s"), technology)?;
                    absent(&self.scan_mm2_per_s, key("scan_mm2_per_s"), technology)?;
                    absent(&self.packing, key("packing"), technology)?;
                    MachineProcess::Fdm
                }
                Technology::Sla => {
                    absent(&self.scan_mm2_per_s, key("scan_mm2_per_s"), technology)?;
                    absent(&self.build_overhead_s, key("build_overhead_s"), technology)?;
                    MachineProcess::Sla(SlaMachine {
                        layer_height_mm: positive(
                            &key("layer_height_mm"),
                            required(self.layer_height_mm, key("layer_height_mm"))?,
                        )?,
                        exposure_s: positive(&key("exposure_s"), required(self.exposure_s, key("exposure_s"))?)?,
                        bottom_layers: self.bottom_layers.unwrap_or(0),
                        bottom_exposure_s: money(&key("bottom_exposure_s"), self.bottom_exposure_s.unwrap_or(0.0))?,
                        layer_overhead_s: money(&key("layer_overhead_s"), self.layer_overhead_s.unwrap_or(0.0))?,
                        packing: number(&key("packing"), self.packing.unwrap_or(0.5), f64::MIN_POSITIVE..=1.0)?,
                    })
                }
                Technology::Sls => {
                    absent(&self.exposure_s, key("exposure_s"), technology)?;
                    absent(&self.bottom_layers, key("bottom_layers"), technology)?;
                    absent(&self.bottom_exposure_s, key("bottom_exposure_s"), technology)?;
                    MachineProcess::Sls(SlsMachine {
                        layer_height_mm: positive(
                            &key("layer_height_mm"),
                            required(self.layer_height_mm, key("layer_height_mm"))?,
                        )?,
                        layer_overhead_s: money(
                            &key("layer_overhead_s"),
                            required(self.layer_overhead_s, key("layer_overhead_s"))?,
                        )?,
                        scan_mm2_per_s: positive(
                            &key("scan_mm2_per_s"),
                            required(self.scan_mm2_per_s, key("scan_mm2_per_s"))?,
                        )?,
                        build_overhead_s: money(&key("build_overhead_s"), self.build_overhead_s.unwrap_or(0.0))?,
                        packing: number(
                            &key("packing"),
                            required(self.packing, key("packing"))?,
                            f64::MIN_POSITIVE..=1.0,
                        )?,
                    })
                }
            };
            Ok(super::Machine { name, technology, hourly_rate, build_volume_mm: self.build_volume_mm, process })
        }
    }

    impl Material {
        fn validate(self, name: String, machines: &[super::Machine]) -> Result<super::Material, PriceBookError> {
            let key = |field: &str| format!("materials.{name}.{field}");
            let technology = self.technology;
            let density_g_cm3 = self.density_g_cm3.map(|d| positive(&key("density_g_cm3"), d)).transpose()?;
            let price = match (self.price_per_kg, self.price_per_litre) {
                (Some(_), Some(_)) => {
                    return Err(PriceBookError(format!(
                        "`{}` and `{}` are both set; a material has one price",
                        key("price_per_kg"),
                        key("price_per_litre")
                    )));
                }
                (Some(kg), None) => Some(MaterialPrice::PerKg(money(&key("price_per_kg"), kg)?)),
                (None, Some(litre)) => Some(MaterialPrice::PerLitre(money(&key("price_per_litre"), litre)?)),
                (None, None) => None,
            };
            // FDM may take its density and price from the print profile
            // (`filament_density`, `filament_cost`); the others have none.
            if technology != Technology::Fdm {
                required(density_g_cm3, key("density_g_cm3"))?;
                required(price, format!("{}` or `{}", key("price_per_kg"), key("price_per_litre")))?;
            }
            if let Some(blank) = self.colours.iter().position(|c| c.trim().is_empty()) {
                return Err(PriceBookError(format!("`{}[{blank}]` must not be empty", key("colours"))));
            }
            for machine in &self.machines {
                match machines.iter().find(|m| &m.name == machine) {
                    None => return Err(PriceBookError(format!("`{}` names no machine `{machine}`", key("machines")))),
                    Some(m) if m.technology != technology => {
                        return Err(PriceBookError(format!(
                            "`{}` names `{machine}`, an {} machine, for an {} material",
                            key("machines"),
                            m.technology.as_str(),
                            technology.as_str()
                        )));
                    }
                    Some(_) => {}
                }
            }
            if !machines.iter().any(|m| m.technology == technology) {
                return Err(PriceBookError(format!(
                    "material `{name}` is {}, but the price book has no {} machine",
                    technology.as_str(),
                    technology.as_str()
                )));
            }
            let process = match technology {
                Technology::Fdm => {
                    for (value, field) in [(&self.support_fill, "support_fill"), (&self.waste, "waste")] {
                        absent(value, key(field), technology)?;
                    }
                    absent(&self.refresh_rate, key("refresh_rate"), technology)?;
                    MaterialProcess::Fdm
                }
                Technology::Sla => {
                    absent(&self.refresh_rate, key("refresh_rate"), technology)?;
                    MaterialProcess::Sla(Resin {
                        support_fill: number(&key("support_fill"), self.support_fill.unwrap_or(0.1), 0.0..=1.0)?,
                        waste: number(&key("waste"), self.waste.unwrap_or(0.0), 0.0..=1.0)?,
                    })
                }
                Technology::Sls => {
                    absent(&self.support_fill, key("support_fill"), technology)?;
                    MaterialProcess::Sls(Powder {
                        refresh_rate: number(
                            &key("refresh_rate"),
                            required(self.refresh_rate, key("refresh_rate"))?,
                            0.0..=1.0,
                        )?,
                        powder_density_g_cm3: positive(
                            &key("powder_density_g_cm3"),
                            self.powder_density_g_cm3.unwrap_or(0.45),
                        )?,
                    })
                }
            };
            Ok(super::Material {
                name,
                technology,
                density_g_cm3,
                price,
                colours: self.colours,
                machines: self.machines,
                process,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_book_is_valid_and_offers_every_technology() {
        let book = PriceBook::builtin();
        assert_eq!(book.currency, "EUR");
        for (material, technology) in
            [("pla", Technology::Fdm), ("standard-resin", Technology::Sla), ("pa12", Technology::Sls)]
        {
            let m = book.material(material).unwrap();
            assert_eq!(m.technology, technology);
            assert!(!book.machines_for(m).is_empty());
        }
        assert_eq!(book.fingerprint.len(), 64);
    }

    #[test]
    fn quantity_breaks_pick_the_largest_reached() {
        let book = PriceBook::builtin();
        assert_eq!(book.quantity_break(9), None);
        assert_eq!(book.quantity_break(10).map(|b| b.discount), Some(0.05));
        assert_eq!(book.quantity_break(249).map(|b| b.discount), Some(0.10));
        assert_eq!(book.quantity_break(10_000).map(|b| b.discount), Some(0.15));
    }

    #[test]
    fn rounding_goes_to_the_step_in_the_mode_asked() {
        let r = |step, mode| Rounding { step, mode };
        assert_eq!(r(0.05, RoundingMode::Nearest).apply(12.32), 12.3);
        assert_eq!(r(0.05, RoundingMode::Nearest).apply(12.33), 12.35);
        assert_eq!(r(0.05, RoundingMode::Up).apply(12.3), 12.3);
        assert_eq!(r(0.05, RoundingMode::Up).apply(12.31), 12.35);
        assert_eq!(r(1.0, RoundingMode::Down).apply(12.99), 12.0);
        assert_eq!(r(0.01, RoundingMode::Nearest).apply(0.1 + 0.2), 0.3);
    }

    fn edited(find: &str, replace: &str) -> Result<PriceBook, PriceBookError> {
        assert!(BUILTIN_PRICE_BOOK.contains(find), "the built-in book has `{find}`");
        PriceBook::from_toml(&BUILTIN_PRICE_BOOK.replacen(find, replace, 1))
    }

    #[test]
    fn mistakes_are_refused_with_the_key_that_is_wrong() {
        for (find, replace, expected) in [
            ("currency = \"EUR\"", "curency = \"EUR\"", "curency"),
            ("currency = \"EUR\"", "currency = \"euro\"", "currency"),
            ("margin = 0.30", "margin = -1", "margin"),
            ("min_quantity = 50", "min_quantity = 5", "quantity_breaks[1].min_quantity"),
            ("discount = 0.05", "discount = 1.5", "quantity_breaks[0].discount"),
            ("price_per_kg = 25.00", "price_per_kg = 25.00\nprice_per_litre = 3.0", "materials.pla.price_per_kg"),
            ("exposure_s = 2.5", "", "machines.sla-145.exposure_s"),
            ("technology = \"sls\"\nhourly_rate", "technology = \"laser\"\nhourly_rate", "laser"),
            (
                "build_volume_mm = [250.0, 210.0, 210.0]",
                "build_volume_mm = [250.0, 0.0, 210.0]",
                "fdm-250.build_volume_mm (y)",
            ),
            ("refresh_rate = 0.5", "refresh_rate = 2", "materials.pa12.refresh_rate"),
            ("version = \"builtin-2026.12\"", "version = \"\"", "version"),
            ("colours = [\"black\"]", "colours = [\"black\"]\nmachines = [\"sla-145\"]", "sla-145"),
            ("margin = 0.30", "margin = 0.30\nmargin = 0.4", "line"),
            ("supports = \"auto\"", "supports = \"sometimes\"", "supports"),
            ("supports_min_area_mm2 = 25.0", "supports_min_area_mm2 = -1", "supports_min_area_mm2"),
        ] {
            let err = edited(find, replace).unwrap_err().to_string();
            assert!(err.contains(expected), "{replace:?}: `{err}` should name `{expected}`");
        }
    }

    #[test]
    fn a_material_without_a_machine_of_its_technology_is_refused() {
        let text = "version = \"v\"\ncurrency = \"EUR\"\nmargin = 0\nsetup_fee = 0\nminimum_order = 0\n\
                    [machines.m]\ntechnology = \"fdm\"\nhourly_rate = 1\nbuild_volume_mm = [1, 1, 1]\n\
                    [materials.resin]\ntechnology = \"sla\"\ndensity_g_cm3 = 1.1\nprice_per_litre = 50\n";
        let err = PriceBook::from_toml(text).unwrap_err().to_string();
        assert!(err.contains("no sla machine"), "{err}");
    }

    #[test]
    fn any_edit_changes_the_fingerprint() {
        let a = PriceBook::builtin();
        let b = edited("price_per_kg = 25.00", "price_per_kg = 26.00").unwrap();
        assert_eq!(a.version, b.version);
        assert_ne!(a.fingerprint, b.fingerprint);
    }
}
