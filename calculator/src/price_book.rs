//! The price book: materials, machine rates and fees, versioned so a quote can
//! say which prices produced it.

use crate::PricingError;

/// The printing process a material runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Technology {
    /// Fused deposition: filament through a nozzle.
    Fdm,
    /// Resin cured by light.
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

/// A material the shop sells.
#[derive(Debug, Clone, PartialEq)]
pub struct Material {
    pub name: String,
    pub technology: Technology,
    pub density_g_cm3: f64,
    pub price_per_kg: f64,
    /// Share of the solid volume that is actually deposited (walls plus infill).
    pub fill_fraction: f64,
}

/// Prices and process constants. One version prices every quote it produces.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceBook {
    pub version: String,
    pub currency: String,
    pub materials: Vec<Material>,
    pub machine_rate_per_hour: f64,
    pub setup_fee: f64,
    pub minimum_order: f64,
    pub max_quantity: u32,
    /// Average volumetric deposition rate of the printer, mm³/s.
    pub deposition_mm3_per_s: f64,
    pub layer_height_mm: f64,
    /// Time spent per layer on moves that deposit nothing, seconds.
    pub layer_change_s: f64,
}

impl PriceBook {
    pub fn material(&self, name: &str) -> Result<&Material, PricingError> {
        self.materials.iter().find(|m| m.name.eq_ignore_ascii_case(name)).ok_or_else(|| PricingError::UnknownMaterial {
            material: name.to_string(),
            offered: self.materials.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

impl Default for PriceBook {
    /// The built-in book used when no price book file is configured. Densities
    /// are the usual datasheet values; prices are typical retail per kg.
    fn default() -> Self {
        let fdm = |name: &str, density_g_cm3: f64, price_per_kg: f64| Material {
            name: name.into(),
            technology: Technology::Fdm,
            density_g_cm3,
            price_per_kg,
            fill_fraction: 0.45,
        };
        Self {
            version: "builtin-2026.11".into(),
            currency: "EUR".into(),
            materials: vec![
                fdm("pla", 1.24, 25.0),
                fdm("petg", 1.27, 28.0),
                fdm("abs", 1.04, 27.0),
                fdm("tpu", 1.21, 45.0),
            ],
            machine_rate_per_hour: 4.0,
            setup_fee: 5.0,
            minimum_order: 10.0,
            max_quantity: 10_000,
            deposition_mm3_per_s: 8.0,
            layer_height_mm: 0.2,
            layer_change_s: 1.5,
        }
    }
}
