//! Pricing: turns the mesh engine's facts and a price book into a quote.
//!
//! Pure computation, like `mesh`: no IO, no async runtime. The process model
//! here is deliberately simple (material from volume and density, machine time
//! from volume and height, plus a setup fee); it is the seam later process
//! models plug into, and every constant it uses lives in the [`PriceBook`].

mod price_book;
mod profile;

pub use price_book::{Material, PriceBook, Technology};
pub use profile::{FdmProfile, LoadedProfile, ProfileError, Speed};

use mesh::MeshReport;

/// What the customer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRequest {
    pub material: String,
    pub quantity: u32,
}

/// Why a quote could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    #[error("unknown material `{material}`; the price book offers: {offered}")]
    UnknownMaterial { material: String, offered: String },
    #[error("quantity must be between 1 and {max}, got {quantity}")]
    InvalidQuantity { quantity: u32, max: u32 },
}

/// One priced line with the inputs that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    pub label: &'static str,
    /// Human-readable inputs, such as "12.3 g x 25.00/kg".
    pub basis: String,
    pub amount: f64,
}

/// Something the customer or operator should look at before trusting the price.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuoteWarning {
    /// The mesh has holes; the volume is what the open surface encloses.
    OpenMesh { boundary_edges: u64 },
    /// Shells wound inside out; their volume was counted as positive.
    InvertedShells,
    /// The numbers look like another unit than mm, and none was given.
    UnitsGuess { guess: &'static str },
    /// Small shells far from the part: debris, or a misplaced piece.
    StrayShells { count: u64 },
}

impl std::fmt::Display for QuoteWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuoteWarning::OpenMesh { boundary_edges } => {
                write!(f, "the mesh is not watertight ({boundary_edges} open edges); the volume is an estimate")
            }
            QuoteWarning::InvertedShells => {
                write!(f, "the mesh is wound inside out; its volume was taken as positive")
            }
            QuoteWarning::UnitsGuess { guess } => write!(
                f,
                "the model's size suggests it is in {guess}, not mm; it was priced as mm (set the units to rescale)"
            ),
            QuoteWarning::StrayShells { count } => {
                write!(f, "{count} small shells lie far from the part; check for stray facets")
            }
        }
    }
}

/// A priced order line: one model, one material, a quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub material: String,
    pub technology: Technology,
    pub quantity: u32,
    /// Volume the pricing used, mm³ (absolute value of the signed volume).
    pub volume_mm3: f64,
    /// Material for one part, grams.
    pub material_g: f64,
    /// Machine time for one part, seconds.
    pub print_time_s: f64,
    pub line_items: Vec<LineItem>,
    /// Sum of the line items, rounded to the currency's cents and raised to the
    /// minimum order price.
    pub total: f64,
    pub currency: String,
    pub price_book_version: String,
    pub warnings: Vec<QuoteWarning>,
}

/// Prices `report` for `request` with `book`.
pub fn quote(report: &MeshReport, request: &QuoteRequest, book: &PriceBook) -> Result<Quote, PricingError> {
    let material = book.material(&request.material)?;
    if request.quantity == 0 || request.quantity > book.max_quantity {
        return Err(PricingError::InvalidQuantity { quantity: request.quantity, max: book.max_quantity });
    }
    let quantity = f64::from(request.quantity);
    let volume_mm3 = report.enclosed_volume_mm3();
    let height_mm = report.geometry.bounding_box.size()[2];

    // Only part of the solid is printed: walls are solid, the inside is infill.
    let printed_mm3 = volume_mm3 * material.fill_fraction;
    let material_g = printed_mm3 / 1000.0 * material.density_g_cm3;
    let layers = (height_mm / book.layer_height_mm).ceil().max(1.0);
    let print_time_s = printed_mm3 / book.deposition_mm3_per_s + layers * book.layer_change_s;

    let material_cost = material_g / 1000.0 * material.price_per_kg * quantity;
    let machine_hours = print_time_s / 3600.0 * quantity;
    let machine_cost = machine_hours * book.machine_rate_per_hour;
    let line_items = vec![
        LineItem {
            label: "material",
            basis: format!(
                "{:.2} g x {} x {:.2} {}/kg",
                material_g, request.quantity, material.price_per_kg, book.currency
            ),
            amount: round_cents(material_cost),
        },
        LineItem {
            label: "machine time",
            basis: format!("{:.3} h x {:.2} {}/h", machine_hours, book.machine_rate_per_hour, book.currency),
            amount: round_cents(machine_cost),
        },
        LineItem { label: "setup", basis: "once per order".into(), amount: round_cents(book.setup_fee) },
    ];
    let sum: f64 = line_items.iter().map(|item| item.amount).sum();
    let total = round_cents(sum.max(book.minimum_order));

    let mut warnings = Vec::new();
    if !report.topology.watertight {
        warnings.push(QuoteWarning::OpenMesh { boundary_edges: report.topology.boundary_edges });
    }
    if report.shells.inverted > 0 || report.shells.corrected_volume < 0.0 {
        warnings.push(QuoteWarning::InvertedShells);
    }
    if report.units_applied.is_none() && report.units_guess != mesh::Units::Millimetre {
        warnings.push(QuoteWarning::UnitsGuess { guess: report.units_guess.as_str() });
    }
    if report.shells.stray > 0 {
        warnings.push(QuoteWarning::StrayShells { count: report.shells.stray });
    }
    Ok(Quote {
        material: material.name.clone(),
        technology: material.technology,
        quantity: request.quantity,
        volume_mm3,
        material_g,
        print_time_s,
        line_items,
        total,
        currency: book.currency.clone(),
        price_book_version: book.version.clone(),
        warnings,
    })
}

fn round_cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::{AnalysisOptions, analyze, cuboid, write_binary_stl};

    fn cube_report(side: f32) -> MeshReport {
        analyze(&write_binary_stl(&cuboid([side; 3])), &AnalysisOptions::default()).unwrap()
    }

    fn request(material: &str, quantity: u32) -> QuoteRequest {
        QuoteRequest { material: material.into(), quantity }
    }

    #[test]
    fn a_20mm_pla_cube_is_priced_from_its_volume_and_height() {
        let book = PriceBook::default();
        let q = quote(&cube_report(20.0), &request("pla", 1), &book).unwrap();
        let pla = book.material("pla").unwrap();
        // 8 cm³ solid, printed at the fill fraction, at PLA's density.
        let expected_g = 8.0 * pla.fill_fraction * pla.density_g_cm3;
        assert!((q.material_g - expected_g).abs() < 1e-9, "{} vs {expected_g}", q.material_g);
        let layers = (20.0 / book.layer_height_mm).ceil();
        let expected_s = 8000.0 * pla.fill_fraction / book.deposition_mm3_per_s + layers * book.layer_change_s;
        assert!((q.print_time_s - expected_s).abs() < 1e-9);
        let items: f64 = q.line_items.iter().map(|i| i.amount).sum();
        assert!((q.total - round_cents(items.max(book.minimum_order))).abs() < 1e-9);
        assert!(q.warnings.is_empty());
    }

    #[test]
    fn quantity_scales_everything_but_the_setup_fee() {
        let book = PriceBook { minimum_order: 0.0, ..PriceBook::default() };
        let one = quote(&cube_report(30.0), &request("pla", 1), &book).unwrap();
        let ten = quote(&cube_report(30.0), &request("pla", 10), &book).unwrap();
        let variable = one.total - book.setup_fee;
        assert!((ten.total - (book.setup_fee + 10.0 * variable)).abs() < 0.1, "{} vs {}", ten.total, one.total);
    }

    #[test]
    fn the_minimum_order_price_applies_to_tiny_parts() {
        let book = PriceBook::default();
        let q = quote(&cube_report(1.0), &request("pla", 1), &book).unwrap();
        assert_eq!(q.total, book.minimum_order);
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        let book = PriceBook::default();
        let err = quote(&cube_report(5.0), &request("unobtainium", 1), &book).unwrap_err();
        assert!(matches!(err, PricingError::UnknownMaterial { .. }));
        let err = quote(&cube_report(5.0), &request("pla", 0), &book).unwrap_err();
        assert!(matches!(err, PricingError::InvalidQuantity { quantity: 0, .. }));
    }

    #[test]
    fn open_and_inverted_meshes_are_flagged() {
        let mut triangles: Vec<_> = cuboid([10.0; 3]).into_iter().map(|[a, b, c]| [a, c, b]).collect();
        triangles.pop();
        let report = analyze(&write_binary_stl(&triangles), &AnalysisOptions::default()).unwrap();
        let q = quote(&report, &request("pla", 1), &PriceBook::default()).unwrap();
        assert!(q.volume_mm3 > 0.0);
        assert_eq!(q.warnings, vec![QuoteWarning::OpenMesh { boundary_edges: 3 }, QuoteWarning::InvertedShells]);
    }
}
