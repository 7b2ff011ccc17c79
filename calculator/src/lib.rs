//! Pricing: turns the mesh engine's facts, a print profile and a price book
//! into an itemised quote.
//!
//! Pure computation, like `mesh`: no IO, no async runtime. The flow is
//! [`analysis_options`] (what the material's process needs measured: layers,
//! overhangs, the fit in each machine), then [`turn_needed`] (whether the
//! part fits only on another side, so it must be analysed turned), then
//! [`quote`]: pick the machine, run the process model ([`fdm`], [`sla`],
//! [`sls`]), apply the shop's [`calibration`], and price what it predicts
//! with the [`PriceBook`].

pub mod bundle;
pub mod calibration;
pub mod fdm;
pub mod fitted;
pub mod order;
mod price_book;
mod process;
mod profile;
pub mod sla;
pub mod sls;

pub use calibration::Calibration;
pub use price_book::{
    BUILTIN_PRICE_BOOK, Machine, MachineProcess, Material, MaterialPrice, MaterialProcess, PostProcess, Powder,
    PriceBook, PriceBookError, QuantityBreak, Resin, Rounding, RoundingMode, SlaMachine, SlsMachine, SupportPolicy,
    Technology,
};
pub use process::{Component, ProcessEstimate};
pub use profile::{FdmProfile, LoadedProfile, MachineLimitsUsage, ProfileError, READ_KEYS, Speed, Width};
pub use sla::{LoadedSlaProfile, SlaProfile};

/// Everything besides the price book that a quote prints with: the FDM
/// profile, the SLA profile (when the shop has one) and the shop's
/// calibration of the FDM estimate (when it has made one).
#[derive(Debug, Clone, PartialEq)]
pub struct PrintSettings {
    pub fdm: LoadedProfile,
    pub sla: Option<LoadedSlaProfile>,
    pub calibration: Option<Calibration>,
}

impl Default for PrintSettings {
    /// PrusaSlicer's default FDM profile, the price book's SLA constants, no
    /// calibration.
    fn default() -> Self {
        Self { fdm: LoadedProfile::defaults(), sla: None, calibration: None }
    }
}

impl PrintSettings {
    pub fn fdm(fdm: LoadedProfile) -> Self {
        Self { fdm, ..Self::default() }
    }
}

/// The fingerprint of an FDM profile: a calibration names the profile it
/// was fitted with, and a quote with another says so.
pub fn profile_fingerprint(profile: &FdmProfile) -> String {
    Sha256::digest(profile.to_ini().as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

use mesh::{Fit, MeshReport};
use sha2::{Digest, Sha256};

/// What the customer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRequest {
    pub material: String,
    pub quantity: u32,
    /// One of the material's colours; `None` leaves it to the shop.
    pub colour: Option<String>,
}

impl QuoteRequest {
    pub fn new(material: impl Into<String>, quantity: u32) -> Self {
        Self { material: material.into(), quantity, colour: None }
    }
}

/// Why a quote could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    #[error("unknown material `{material}`; the price book offers: {offered}")]
    UnknownMaterial { material: String, offered: String },
    #[error("quantity must be between 1 and {max}, got {quantity}")]
    InvalidQuantity { quantity: u32, max: u32 },
    #[error("`{material}` does not come in `{colour}`; it comes in: {offered}")]
    UnknownColour { material: String, colour: String, offered: String },
    #[error("the FDM estimate needs the model sliced at {layer_height} mm layers")]
    NotSliced { layer_height: f64 },
    /// A profile PrusaSlicer itself would refuse to slice with.
    #[error("the print profile cannot print: {0}")]
    UnprintableProfile(String),
    /// An FDM material whose price or density neither the price book nor
    /// the profile gives.
    #[error(
        "material `{material}` has no {what}: set `{book_key}` in the price book or `{profile_key}` in the profile"
    )]
    MissingMaterialFact { material: String, what: &'static str, book_key: &'static str, profile_key: &'static str },
    /// Every triangle is degenerate: no volume and no area, so no price
    /// but the minimum order could be given, and that would be a guess.
    #[error("the model has no volume and no surface area ({triangles} triangles, all degenerate): nothing to print")]
    NothingToPrint { triangles: u64 },
    /// The estimate or the price came out infinite or as no number: a
    /// setting is beyond anything a printer does (a raft expansion of
    /// 1e308 mm, say). Refused rather than quoted as "inf EUR".
    #[error("the {what} is not a finite number: a profile or price-book setting is out of range")]
    OutOfRange { what: &'static str },
}

/// One priced line with the inputs that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    pub label: String,
    /// Human-readable inputs, such as "12.30 g x 3 x 25.00 EUR/kg".
    pub basis: String,
    pub amount: f64,
}

/// Something the customer or operator should look at before trusting the price.
#[derive(Debug, Clone, PartialEq)]
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
    /// No machine of the material's technology holds the part in any
    /// orientation; it was priced on the largest, and needs splitting.
    TooBigForEveryMachine { machine: String },
    /// Keys of the print profile the estimate does not use.
    IgnoredProfileKeys { keys: Vec<String> },
    /// The profile prints without supports (and the price book's
    /// `supports` setting did not turn them on), but this much of the
    /// part's underside (mm², rounded) hangs steeper than the profile's
    /// support threshold over nothing: the price holds no support material,
    /// and the print may fail without it.
    UnsupportedOverhangs { area_mm2: u64 },
    /// The part fits the machine (and every machine of its material) only
    /// with another of its axes up, while the estimate slices it as
    /// uploaded: time and supports are for that orientation. A caller that
    /// analyses the part turned first ([`turn_needed`]) never sees this.
    FitsOnlyOnItsSide { machine: String, up_axis: usize },
    /// The profile leaves supports off, but the part needs them, and the
    /// price book's `supports` setting turned them on for this quote.
    SupportsAdded { area_mm2: f64, angle_deg: f64, policy: &'static str },
    /// The calibration was fitted with another profile than the quote's.
    CalibrationForAnotherProfile,
}

/// Overhang smaller than this (mm²) is no warning: a chamfer's edge or a
/// facet of a rounded corner, which a printer bridges.
pub const UNSUPPORTED_OVERHANG_WARNING_MM2: f64 = 1.0;

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
            QuoteWarning::TooBigForEveryMachine { machine } => write!(
                f,
                "the part fits no machine in any orientation; priced on `{machine}`, the largest, but it must be split"
            ),
            QuoteWarning::IgnoredProfileKeys { keys } => {
                write!(f, "the estimate ignores these profile keys: {}", keys.join(", "))
            }
            QuoteWarning::FitsOnlyOnItsSide { machine, up_axis } => write!(
                f,
                "the part fits `{machine}` only with its {} axis up, but it is estimated as uploaded (z up): \
                 re-orient the model to price the print as it will be made",
                ["x", "y", "z"].get(*up_axis).copied().unwrap_or("z")
            ),
            QuoteWarning::UnsupportedOverhangs { area_mm2 } => write!(
                f,
                "supports are off in the print profile, but {area_mm2} mm² of the part overhangs past the support \
                 threshold; the price includes no support material"
            ),
            QuoteWarning::SupportsAdded { area_mm2, angle_deg, policy } => write!(
                f,
                "the part overhangs {area_mm2:.0} mm² beyond {angle_deg:.0}°; the profile leaves supports off, \
                 but the price book (`supports = \"{policy}\"`) prices them"
            ),
            QuoteWarning::CalibrationForAnotherProfile => {
                write!(f, "the calibration was fitted with another print profile; its corrections may not hold")
            }
        }
    }
}

/// The machine a quote is priced on, and how the part fits it.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineChoice {
    pub name: String,
    pub hourly_rate: f64,
    pub build_volume_mm: [f64; 3],
    /// How the part fits, when the analysis checked it.
    pub fit: Option<Fit>,
}

/// The orientation a quote estimates the part in, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Orientation {
    /// The file's axis that stands up: 0 = x, 1 = y, 2 = z (as the file stands).
    pub up_axis: usize,
    /// The turn about the vertical that fits the footprint, degrees.
    pub rotation_deg: f64,
    pub reason: String,
}

/// Supports as the quote prices them.
#[derive(Debug, Clone, PartialEq)]
pub struct SupportsChoice {
    /// The price book's setting.
    pub policy: SupportPolicy,
    /// What the profile said.
    pub profile_on: bool,
    /// What the estimate printed.
    pub priced: bool,
    /// Overhang the supports hold up (or would), mm², at `angle_deg`.
    pub needed_area_mm2: f64,
    pub angle_deg: f64,
}

/// A priced order line: one model, one material, a quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub material: String,
    pub colour: Option<String>,
    pub technology: Technology,
    pub quantity: u32,
    /// Volume of the part, mm³ (the magnitude of the corrected signed volume).
    pub volume_mm3: f64,
    /// Material for one part, cm³ and grams: the part as printed (walls and
    /// infill, or solid), its supports and any waste.
    pub material_cm3: f64,
    pub material_g: f64,
    /// Filament for one part, mm (FDM only).
    pub filament_mm: Option<f64>,
    /// Machine time for one part, seconds.
    pub print_time_s: f64,
    /// Machine time for the whole quantity, seconds.
    pub machine_time_s: f64,
    pub estimate: ProcessEstimate,
    pub machine: MachineChoice,
    pub line_items: Vec<LineItem>,
    /// Sum of the line items, raised to the minimum order price and rounded
    /// as the price book says.
    pub total: f64,
    pub currency: String,
    pub price_book_version: String,
    /// How long the price holds once given, days (the price book's
    /// `quote_valid_days`).
    pub valid_days: u32,
    /// Profile keys the estimate did not use (FDM, or SLA with a preset).
    pub ignored_profile_keys: Vec<String>,
    /// The orientation the estimate is for.
    pub orientation: Orientation,
    /// Supports, for FDM.
    pub supports: Option<SupportsChoice>,
    /// The shop's calibration was applied (FDM).
    pub calibrated: bool,
    pub warnings: Vec<QuoteWarning>,
}

/// How to analyse a model for `request`: `base` (limits, units, weld) plus
/// what the material's process needs: the fit in each of its machines, and
/// for FDM the profile's layers and support angle. A part that fits none of
/// the machines is refused by the analysis as soon as it is read
/// ([`mesh::AnalyzeError::FitsNoBuildVolume`]), before any slicing: a 29 m
/// needle is answered as too big, not sliced into 100,000 layers.
pub fn analysis_options(
    request: &QuoteRequest,
    book: &PriceBook,
    settings: &PrintSettings,
    base: mesh::AnalysisOptions,
) -> Result<mesh::AnalysisOptions, PricingError> {
    let material = validate_request(request, book)?;
    let build_volumes = book.machines_for(material).iter().map(|m| m.build_volume_mm).collect();
    let base = mesh::AnalysisOptions { require_fit: true, ..base };
    let profile = &settings.fdm.profile;
    Ok(match material.technology {
        Technology::Fdm => {
            fdm::check(profile)?;
            mesh::AnalysisOptions {
                layering: Some(fdm::layering(profile)),
                overhang_angle_deg: fdm::support_angle_deg(profile),
                support: fdm::support_shape(profile),
                build_volumes,
                ..base
            }
        }
        // A preset's layers give each layer's area, for its tilt.
        Technology::Sla => mesh::AnalysisOptions {
            layering: settings.sla.as_ref().map(|s| mesh::Layering::uniform(s.profile.layer_height)),
            build_volumes,
            ..base
        },
        Technology::Sls => mesh::AnalysisOptions { build_volumes, ..base },
    })
}

/// After a first analysis as the file stands: the axis to stand up instead
/// when the part fits no machine as it stands but fits one on another side.
/// The caller analyses it again with [`mesh::AnalysisOptions::up_axis`] set,
/// and the quote then estimates it in that orientation (and says so).
pub fn turn_needed(report: &MeshReport, request: &QuoteRequest, book: &PriceBook) -> Option<usize> {
    let material = validate_request(request, book).ok()?;
    let machines = book.machines_for(material);
    if report.fits.len() != machines.len() || report.up_axis != 2 {
        return None;
    }
    if report.fits.iter().any(|f| f.fits && f.up_axis == 2) {
        return None;
    }
    // The cheapest machine that takes it on another side.
    machines
        .iter()
        .zip(&report.fits)
        .filter(|(_, f)| f.fits)
        .min_by(|a, b| a.0.hourly_rate.total_cmp(&b.0.hourly_rate))
        .map(|(_, f)| f.up_axis)
}

/// Raised whenever the estimator's model changes the figures it gives for the
/// same inputs, so the quote cache never serves a quote an older estimator
/// made. 2: skins also from the facing surfaces between layers. 3: a quote
/// warns of overhangs that a profile without supports leaves unsupported,
/// and an FDM part is put on a machine it fits as sliced when there is one.
/// 4: the mesh engine's default weld closes edges left open by rounding
/// (issue 17). 5: every profile key of issue 16 read, the price book's
/// supports policy, a part turned when it fits only on its side, SLA
/// presets, calibration.
pub const ESTIMATOR_REVISION: u32 = 5;

/// The key under which a quote for `model_id` and `request` may be reused.
/// It covers everything a quote depends on besides the model's bytes (named
/// by their hash): the estimator's revision, the request, the price book's
/// version and content, and for FDM the print profile, so new prices,
/// settings or estimates never serve an old quote.
pub fn quote_cache_key(model_id: &str, request: &QuoteRequest, book: &PriceBook, settings: &PrintSettings) -> String {
    let technology = book.material(&request.material).map(|m| m.technology).ok();
    let mut hash = Sha256::new();
    hash.update(ESTIMATOR_REVISION.to_le_bytes());
    for part in [model_id, &request.material.to_ascii_lowercase(), request.colour.as_deref().unwrap_or("")] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(request.quantity.to_le_bytes());
    hash.update(book.fingerprint.as_bytes());
    match technology {
        Some(Technology::Fdm) => {
            hash.update(settings.fdm.profile.to_ini().as_bytes());
            if let Some(calibration) = &settings.calibration {
                hash.update(b"\0calibration\0");
                hash.update(calibration.cache_text().as_bytes());
            }
        }
        Some(Technology::Sla) => {
            if let Some(sla) = &settings.sla {
                hash.update(b"\0sla\0");
                hash.update(sla.profile.cache_text().as_bytes());
            }
        }
        _ => {}
    }
    let digest: String = hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}:{digest}", book.version)
}

/// Checks a request against the price book: a material it offers, in one
/// of its colours, and a quantity within its limit.
pub fn validate_request<'b>(request: &QuoteRequest, book: &'b PriceBook) -> Result<&'b Material, PricingError> {
    let material = book.material(&request.material)?;
    if request.quantity == 0 || request.quantity > book.max_quantity {
        return Err(PricingError::InvalidQuantity { quantity: request.quantity, max: book.max_quantity });
    }
    if let Some(colour) = &request.colour
        && !material.colours.iter().any(|c| c.eq_ignore_ascii_case(colour))
    {
        return Err(PricingError::UnknownColour {
            material: material.name.clone(),
            colour: colour.clone(),
            offered: material.colours.join(", "),
        });
    }
    Ok(material)
}

/// The machine a quote is priced on, how the part fits it, and the
/// orientation the estimate is for.
struct Choice<'b> {
    machine: &'b Machine,
    fit: Option<Fit>,
    fits: bool,
    orientation: Orientation,
}

const AXES: [&str; 3] = ["x", "y", "z"];

/// One orientation per quote: the part is estimated as it was sliced, and
/// the machine is the cheapest that takes it that way. With `sliced` (FDM,
/// or SLA with a preset: the estimate is built from the part's layers as
/// analysed), a part fits a machine "that way" only standing as analysed
/// (turned about the vertical if need be); a part that fits only on another
/// side should be analysed turned first ([`turn_needed`]). When the caller
/// did not, the cheapest machine it fits on its side is the fallback, and
/// the quote warns that the two differ ([`QuoteWarning::FitsOnlyOnItsSide`]).
/// Without `sliced` (the process models place the part as it fits), the
/// cheapest machine it fits in any orientation. When it fits no machine at
/// all, the largest is used, with a warning. `report.fits` is in the order
/// of `machines` when the report was analysed with [`analysis_options`];
/// without fits, the cheapest machine.
fn choose_machine<'b>(report: &MeshReport, machines: &[&'b Machine], sliced: bool) -> Choice<'b> {
    let fits: Vec<Option<Fit>> = if report.fits.len() == machines.len() {
        report.fits.iter().copied().map(Some).collect()
    } else {
        vec![None; machines.len()]
    };
    let rate =
        |a: &(&&Machine, &Option<Fit>), b: &(&&Machine, &Option<Fit>)| a.0.hourly_rate.total_cmp(&b.0.hourly_rate);
    let standing = |f: &Option<Fit>| f.is_none_or(|f| f.fits && f.up_axis == 2);
    let any_side = |f: &Option<Fit>| f.is_none_or(|f| f.fits);
    let turned = report.up_axis != 2;
    let axis = AXES[report.up_axis.min(2)];
    let rotation = |fit: &Option<Fit>| fit.map_or(0.0, |f| f.rotation_deg);
    if !sliced {
        if let Some((machine, fit)) = machines.iter().zip(&fits).filter(|(_, f)| any_side(f)).min_by(rate) {
            let side = fit.map_or(2, |f| f.up_axis);
            let reason = format!(
                "the cheapest machine that takes the part in any orientation: `{}`, with its {} axis up; the \
                 process model places the part as it fits",
                machine.name, AXES[side]
            );
            // The fit's axis is the analysed part's; as analysed is the file's `report.up_axis`.
            let up_axis = if side == 2 { report.up_axis } else { side };
            let orientation = Orientation { up_axis, rotation_deg: rotation(fit), reason };
            return Choice { machine, fit: *fit, fits: true, orientation };
        }
    } else if let Some((machine, fit)) = machines.iter().zip(&fits).filter(|(_, f)| standing(f)).min_by(rate) {
        let cheaper_on_its_side = machines
            .iter()
            .zip(&fits)
            .filter(|(m, f)| f.is_some_and(|f| f.fits && f.up_axis != 2) && m.hourly_rate < machine.hourly_rate)
            .min_by(rate);
        let reason = match (turned, cheaper_on_its_side) {
            (true, _) => format!(
                "turned to stand the file's {axis} axis up: the part fits no machine as the file stands, \
                 and fits `{}` this way",
                machine.name
            ),
            (false, Some((cheaper, f))) => format!(
                "as the file stands, which is how the slicer builds it; it fits `{}` that way (`{}` would take it \
                 only with its {} axis up, which the estimate does not slice)",
                machine.name,
                cheaper.name,
                AXES[f.map_or(2, |f| f.up_axis)]
            ),
            (false, None) => {
                format!("as the file stands, which is how the slicer builds it; it fits `{}` that way", machine.name)
            }
        };
        let orientation = Orientation { up_axis: report.up_axis, rotation_deg: rotation(fit), reason };
        return Choice { machine, fit: *fit, fits: true, orientation };
    } else if let Some((machine, fit)) = machines.iter().zip(&fits).filter(|(_, f)| any_side(f)).min_by(rate) {
        let side = AXES[fit.map_or(2, |f| f.up_axis)];
        let reason = format!(
            "estimated as the file stands ({axis} axis up), though it fits `{}` only with its {side} axis up: \
             it was not analysed turned",
            machine.name
        );
        let orientation = Orientation { up_axis: report.up_axis, rotation_deg: 0.0, reason };
        return Choice { machine, fit: *fit, fits: true, orientation };
    }
    let volume = |m: &Machine| m.build_volume_mm.iter().product::<f64>();
    let (machine, fit) = machines
        .iter()
        .zip(fits)
        .max_by(|a, b| volume(a.0).total_cmp(&volume(b.0)))
        .expect("every material has a machine (the price book checks it)");
    let reason =
        format!("as the file stands; it fits no machine in any orientation, so it is priced on `{}`", machine.name);
    Choice {
        machine,
        fit,
        fits: false,
        orientation: Orientation { up_axis: report.up_axis, rotation_deg: 0.0, reason },
    }
}

/// The profile the estimate prints with once the price book's supports
/// policy is applied, what it decided, and the warning to give.
fn supports_for(
    report: &MeshReport,
    profile: &FdmProfile,
    book: &PriceBook,
) -> (FdmProfile, SupportsChoice, Option<QuoteWarning>) {
    let p = &report.printability;
    let area = p.overhang_area;
    let angle = p.overhang_angle_deg;
    let needs = area >= book.supports_min_area_mm2 && p.support_column_volume > 0.0;
    let profile_on = profile.support_material && profile.support_material_auto;
    let turn_on = match book.supports {
        SupportPolicy::Profile => false,
        SupportPolicy::Auto => needs && !profile_on,
        SupportPolicy::Always => !profile_on,
    };
    let mut printed = profile.clone();
    if turn_on {
        printed.support_material = true;
        printed.support_material_auto = true;
    }
    let priced = profile_on || turn_on;
    let warning = if !priced && area >= UNSUPPORTED_OVERHANG_WARNING_MM2 {
        Some(QuoteWarning::UnsupportedOverhangs { area_mm2: area.round() as u64 })
    } else if turn_on && area > 0.0 {
        Some(QuoteWarning::SupportsAdded { area_mm2: area, angle_deg: angle, policy: book.supports.as_str() })
    } else {
        None
    };
    let choice = SupportsChoice { policy: book.supports, profile_on, priced, needed_area_mm2: area, angle_deg: angle };
    (printed, choice, warning)
}

/// Prices `report` for `request` with `book` and the shop's print
/// settings. The report should come from [`analysis_options`] (and, when
/// [`turn_needed`] says so, be analysed turned).
pub fn quote(
    report: &MeshReport,
    request: &QuoteRequest,
    book: &PriceBook,
    settings: &PrintSettings,
) -> Result<Quote, PricingError> {
    let material = validate_request(request, book)?;
    // Less than a thousandth of a square millimetre in all: a part made of
    // zero-area faces (200,000 of them were priced at the minimum order).
    if report.geometry.surface_area < 1e-3 && report.volume.abs() < 1e-3 {
        return Err(PricingError::NothingToPrint { triangles: report.triangles });
    }
    let sliced = match material.technology {
        Technology::Fdm => true,
        Technology::Sla => settings.sla.is_some(),
        Technology::Sls => false,
    };
    let Choice { machine, fit, fits, orientation } = choose_machine(report, &book.machines_for(material), sliced);
    let mut warnings = mesh_warnings(report);
    let mut supports = None;
    let mut calibrated = false;
    let mut ignored_profile_keys = Vec::new();
    let (estimate, material_g, filament_mm) = match (&material.process, &machine.process) {
        (MaterialProcess::Sla(resin), MachineProcess::Sla(sla)) => {
            let (estimate, density) = match &settings.sla {
                Some(preset) => {
                    ignored_profile_keys = preset.ignored_keys.clone();
                    let density = (preset.profile.material_density > 0.0).then_some(preset.profile.material_density);
                    (sla::estimate_with_profile(report, &preset.profile, resin, fit.as_ref()), density)
                }
                None => {
                    let platform = [machine.build_volume_mm[0], machine.build_volume_mm[1]];
                    (sla::estimate(report, sla, resin, fit.as_ref(), platform), None)
                }
            };
            let grams = estimate.material_cm3 * material.density_g_cm3.or(density).unwrap_or(1.0);
            (estimate, grams, None)
        }
        (MaterialProcess::Sls(powder), MachineProcess::Sls(sls)) => {
            let density = material.density_g_cm3.unwrap_or(1.0);
            let (estimate, grams) = sls::estimate(report, sls, powder, density, fit.as_ref(), machine.build_volume_mm);
            (estimate, grams, None)
        }
        _ => {
            let loaded = &settings.fdm;
            let (p, choice, warning) = supports_for(report, &loaded.profile, book);
            supports = Some(choice);
            warnings.extend(warning);
            let mut estimate = fdm::estimate(report, &p)?;
            if let Some(calibration) = &settings.calibration {
                calibration.apply(&mut estimate);
                calibrated = true;
                if calibration.profile_fingerprint != profile_fingerprint(&loaded.profile) {
                    warnings.push(QuoteWarning::CalibrationForAnotherProfile);
                }
            }
            ignored_profile_keys = loaded.ignored_keys.clone();
            let density = material.density_g_cm3.or((p.filament_density > 0.0).then_some(p.filament_density)).ok_or(
                PricingError::MissingMaterialFact {
                    material: material.name.clone(),
                    what: "density",
                    book_key: "density_g_cm3",
                    profile_key: "filament_density",
                },
            )?;
            let filament_area = std::f64::consts::PI / 4.0 * p.filament_diameter * p.filament_diameter;
            let filament_mm = estimate.material_cm3 * 1000.0 / filament_area;
            let grams = estimate.material_cm3 * density;
            (estimate, grams, Some(filament_mm))
        }
    };
    let quantity = request.quantity;
    let machine_time_s = estimate.machine_time_s(quantity);
    let line_items =
        price_lines(book, material, machine, &estimate, material_g, machine_time_s, &settings.fdm, quantity)?;
    let sum: f64 = line_items.iter().map(|item| item.amount).sum();
    let total = book.rounding.apply(sum.max(book.minimum_order));
    for (what, value) in [
        ("print time", estimate.print_time_s),
        ("material", estimate.material_cm3),
        ("machine time", machine_time_s),
        ("total", total),
    ] {
        if !value.is_finite() {
            return Err(PricingError::OutOfRange { what });
        }
    }

    if !fits {
        warnings.push(QuoteWarning::TooBigForEveryMachine { machine: machine.name.clone() });
    }
    if let Some(f) = fit.filter(|f| sliced && f.fits && f.up_axis != 2) {
        warnings.push(QuoteWarning::FitsOnlyOnItsSide { machine: machine.name.clone(), up_axis: f.up_axis });
    }
    if !ignored_profile_keys.is_empty() {
        warnings.push(QuoteWarning::IgnoredProfileKeys { keys: ignored_profile_keys.clone() });
    }
    Ok(Quote {
        material: material.name.clone(),
        colour: request.colour.clone(),
        technology: material.technology,
        quantity,
        volume_mm3: report.enclosed_volume_mm3(),
        material_cm3: estimate.material_cm3,
        material_g,
        filament_mm,
        print_time_s: estimate.print_time_s,
        machine_time_s,
        machine: MachineChoice {
            name: machine.name.clone(),
            hourly_rate: machine.hourly_rate,
            build_volume_mm: machine.build_volume_mm,
            fit,
        },
        estimate,
        line_items,
        total,
        currency: book.currency.clone(),
        price_book_version: book.version.clone(),
        valid_days: book.quote_valid_days,
        ignored_profile_keys,
        orientation,
        supports,
        calibrated,
        warnings,
    })
}

/// The line items: costs, then the discount, the margin, the setup fee and
/// the minimum order. Each amount is rounded to cents; the total's own
/// rounding comes after.
#[allow(clippy::too_many_arguments)]
fn price_lines(
    book: &PriceBook,
    material: &Material,
    machine: &Machine,
    estimate: &ProcessEstimate,
    material_g: f64,
    machine_time_s: f64,
    profile: &LoadedProfile,
    quantity: u32,
) -> Result<Vec<LineItem>, PricingError> {
    let currency = &book.currency;
    let q = f64::from(quantity);
    let missing_price = || PricingError::MissingMaterialFact {
        material: material.name.clone(),
        what: "price",
        book_key: "price_per_kg",
        profile_key: "filament_cost",
    };
    let price = match material.price {
        Some(price) => price,
        None if material.technology == Technology::Fdm && profile.profile.filament_cost > 0.0 => {
            MaterialPrice::PerKg(profile.profile.filament_cost)
        }
        None => return Err(missing_price()),
    };
    let mut lines = Vec::new();
    let mut line = |label: &str, basis: String, amount: f64| {
        lines.push(LineItem { label: label.into(), basis, amount: round_cents(amount) });
    };
    match price {
        MaterialPrice::PerKg(per_kg) => line(
            "material",
            format!("{material_g:.2} g x {quantity} x {per_kg:.2} {currency}/kg"),
            material_g / 1000.0 * per_kg * q,
        ),
        MaterialPrice::PerLitre(per_litre) => {
            let ml = estimate.material_cm3;
            line(
                "material",
                format!("{ml:.2} ml x {quantity} x {per_litre:.2} {currency}/l"),
                ml / 1000.0 * per_litre * q,
            )
        }
    }
    let hours = machine_time_s / 3600.0;
    let builds =
        if estimate.parts_per_build > 1 { format!(", {} per build", estimate.parts_per_build) } else { String::new() };
    line(
        "machine time",
        format!("{hours:.3} h on {}{builds} x {:.2} {currency}/h", machine.name, machine.hourly_rate),
        hours * machine.hourly_rate,
    );
    for post in &book.post_processing {
        let applies = post.technology.is_none_or(|t| t == material.technology)
            && (!post.only_with_supports || estimate.support_cm3 > 0.0);
        if applies {
            line(&post.name, format!("{quantity} x {:.2} {currency}", post.per_part), post.per_part * q);
        }
    }
    let cost: f64 = lines.iter().map(|l| l.amount).sum();
    let mut discounted = cost;
    if let Some(b) = book.quantity_break(quantity) {
        let off = cost * b.discount;
        discounted -= off;
        lines.push(LineItem {
            label: "quantity discount".into(),
            basis: format!("{:.0}% off {cost:.2} {currency} for {} or more", b.discount * 100.0, b.min_quantity),
            amount: -round_cents(off),
        });
    }
    if book.margin > 0.0 {
        lines.push(LineItem {
            label: "margin".into(),
            basis: format!("{:.0}% of {discounted:.2} {currency}", book.margin * 100.0),
            amount: round_cents(discounted * book.margin),
        });
    }
    lines.push(LineItem {
        label: order::SETUP_LINE.into(),
        basis: "once per order".into(),
        amount: round_cents(book.setup_fee),
    });
    let sum: f64 = lines.iter().map(|l| l.amount).sum();
    if sum < book.minimum_order {
        lines.push(LineItem {
            label: order::MINIMUM_ORDER_LINE.into(),
            basis: format!("raised from {sum:.2} to the minimum order of {:.2} {currency}", book.minimum_order),
            amount: round_cents(book.minimum_order - sum),
        });
    }
    Ok(lines)
}

fn mesh_warnings(report: &MeshReport) -> Vec<QuoteWarning> {
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
    warnings
}

fn round_cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh::{analyze, cuboid, write_binary_stl};

    fn default_profile() -> PrintSettings {
        PrintSettings::default()
    }

    fn report_for(triangles: &[mesh::Triangle], request: &QuoteRequest, book: &PriceBook) -> MeshReport {
        let options =
            analysis_options(request, book, &PrintSettings::default(), mesh::AnalysisOptions::default()).unwrap();
        analyze(&write_binary_stl(triangles), &options).unwrap()
    }

    fn priced(side: f32, request: &QuoteRequest, book: &PriceBook) -> Quote {
        quote(&report_for(&cuboid([side; 3]), request, book), request, book, &default_profile()).unwrap()
    }

    fn amount(q: &Quote, label: &str) -> f64 {
        q.line_items.iter().find(|l| l.label == label).map_or(0.0, |l| l.amount)
    }

    #[test]
    fn a_model_of_zero_area_faces_is_refused_not_priced_at_the_minimum() {
        let book = PriceBook::builtin();
        let request = QuoteRequest::new("pla", 1);
        // Each face's corners on one line: no area, however many there are.
        let flat: Vec<mesh::Triangle> = (0..2_000)
            .map(|n| n as f32 * 0.05)
            .map(|x| [[x, 0.0, 0.0], [x + 0.01, 0.0, 0.0], [x + 0.02, 0.0, 0.0]])
            .collect();
        let report = report_for(&flat, &request, &book);
        let refused = quote(&report, &request, &book, &default_profile()).unwrap_err();
        assert_eq!(refused, PricingError::NothingToPrint { triangles: 2_000 });
        assert!(refused.to_string().contains("nothing to print"));
    }

    #[test]
    fn an_estimate_that_overflows_is_refused_not_priced_at_infinity() {
        let book = PriceBook::builtin();
        let request = QuoteRequest::new("pla", 1);
        let report = report_for(&cuboid([20.0; 3]), &request, &book);
        let mut settings = default_profile();
        settings.fdm.profile.raft_layers = 3;
        assert!(quote(&report, &request, &book, &settings).unwrap().total.is_finite());
        // A raft reaching 1e308 mm out covers an infinite area.
        settings.fdm.profile.raft_expansion = 1e308;
        let refused = quote(&report, &request, &book, &settings).unwrap_err();
        assert!(matches!(refused, PricingError::OutOfRange { .. }), "{refused:?}");
        assert!(refused.to_string().contains("not a finite number"), "{refused}");
    }

    #[test]
    fn an_fdm_quote_prices_the_estimate_with_the_book() {
        let book = PriceBook::builtin();
        let q = priced(20.0, &QuoteRequest::new("pla", 1), &book);
        assert_eq!((q.technology, q.machine.name.as_str(), q.estimate.layers), (Technology::Fdm, "fdm-250", 67));
        assert!(q.machine.fit.is_some_and(|f| f.fits));
        // Grams are the estimate's volume at PLA's density, priced per kg.
        assert!((q.material_g - q.material_cm3 * 1.24).abs() < 1e-9);
        assert_eq!(amount(&q, "material"), round_cents(q.material_g / 1000.0 * 25.0));
        assert_eq!(amount(&q, "machine time"), round_cents(q.print_time_s / 3600.0 * 4.0));
        let filament_area = std::f64::consts::PI / 4.0 * 1.75 * 1.75;
        assert!((q.filament_mm.unwrap() - q.material_cm3 * 1000.0 / filament_area).abs() < 1e-6);
        let sum: f64 = q.line_items.iter().map(|l| l.amount).sum();
        assert_eq!(q.total, book.rounding.apply(sum.max(book.minimum_order)));
        assert!(q.warnings.is_empty(), "{:?}", q.warnings);
    }

    #[test]
    fn a_quote_priced_as_an_order_of_one_part_keeps_its_total_and_two_pay_setup_once() {
        let book = PriceBook::builtin();
        for size in [2.0, 20.0, 40.0] {
            let q = priced(size, &QuoteRequest::new("pla", 3), &book);
            let terms = order::OrderTerms::of(&book);
            let alone = order::price_order(std::slice::from_ref(&q.line_items), &terms);
            assert_eq!(alone.total, q.total, "{size} mm: {:?}", q.line_items);
            let two = order::price_order(&[q.line_items.clone(), q.line_items.clone()], &terms);
            let own = alone.part_subtotals[0];
            let expected = book.rounding.apply((2.0 * own + book.setup_fee).max(book.minimum_order));
            assert_eq!(two.total, expected, "{size} mm");
        }
    }

    #[test]
    fn a_tiny_part_is_raised_to_the_minimum_order() {
        let book = PriceBook::builtin();
        let q = priced(2.0, &QuoteRequest::new("pla", 1), &book);
        assert!(amount(&q, "minimum order") > 0.0, "{:?}", q.line_items);
        assert_eq!(q.total, book.minimum_order);
    }

    #[test]
    fn quantity_breaks_discount_the_variable_cost_and_margin_applies_after() {
        let book = PriceBook { minimum_order: 0.0, ..PriceBook::builtin() };
        let nine = priced(30.0, &QuoteRequest::new("pla", 9), &book);
        let ten = priced(30.0, &QuoteRequest::new("pla", 10), &book);
        assert_eq!(amount(&nine, "quantity discount"), 0.0);
        let cost = amount(&ten, "material") + amount(&ten, "machine time");
        assert!((amount(&ten, "quantity discount") + cost * 0.05).abs() < 0.011, "{:?}", ten.line_items);
        assert!((amount(&ten, "margin") - cost * 0.95 * book.margin).abs() < 0.011);
        assert_eq!(amount(&ten, "setup"), book.setup_fee, "once per order");
        assert!(ten.total / 10.0 < nine.total / 9.0, "per part, ten cost less than nine");
    }

    #[test]
    fn the_material_picks_the_process_model_and_its_units() {
        let book = PriceBook::builtin();
        let resin = priced(20.0, &QuoteRequest::new("standard-resin", 1), &book);
        assert_eq!((resin.technology, resin.machine.name.as_str()), (Technology::Sla, "sla-145"));
        assert!(resin.line_items[0].basis.contains("ml") && resin.line_items[0].basis.contains("/l"));
        assert!(resin.line_items.iter().any(|l| l.label == "wash and cure"));
        // A solid resin part uses at least its volume.
        assert!(resin.material_cm3 >= 8.0 && resin.filament_mm.is_none());
        let powder = priced(20.0, &QuoteRequest::new("pa12", 1), &book);
        assert_eq!((powder.technology, powder.machine.name.as_str()), (Technology::Sls, "sls-300"));
        assert!(powder.material_g > 8.0 * 1.01, "the part plus refreshed powder: {}", powder.material_g);
    }

    #[test]
    fn a_part_too_big_for_the_small_machine_goes_to_the_large_one_and_beyond_that_is_refused_unsliced() {
        let book = PriceBook::builtin();
        let request = QuoteRequest::new("pla", 1);
        let long = report_for(&cuboid([400.0, 20.0, 20.0]), &request, &book);
        let q = quote(&long, &request, &book, &default_profile()).unwrap();
        assert_eq!(q.machine.name, "fdm-350");
        assert!(q.warnings.is_empty(), "{:?}", q.warnings);
        // 29 m tall: answered as too big before a layer is cut, which would
        // take 96,667 of them.
        let options = analysis_options(&request, &book, &PrintSettings::default(), mesh::AnalysisOptions::default());
        let needle = write_binary_stl(&cuboid([2.0, 2.0, 29_000.0]));
        let err = analyze(&needle, &options.unwrap()).unwrap_err();
        assert!(matches!(err, mesh::AnalyzeError::FitsNoBuildVolume { volumes: 2, .. }), "{err}");
        assert!(err.to_string().contains("29000.0") && err.to_string().contains("350 x 350"), "{err}");
        // A caller that analyses with the fits but lets unfit parts through
        // gets them priced on the largest machine, with the warning.
        let options = analysis_options(&request, &book, &PrintSettings::default(), mesh::AnalysisOptions::default());
        let lenient = mesh::AnalysisOptions { require_fit: false, ..options.unwrap() };
        let huge = analyze(&write_binary_stl(&cuboid([600.0, 20.0, 20.0])), &lenient).unwrap();
        let q = quote(&huge, &request, &book, &default_profile()).unwrap();
        assert_eq!(q.machine.name, "fdm-350");
        assert_eq!(q.warnings, vec![QuoteWarning::TooBigForEveryMachine { machine: "fdm-350".into() }]);
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        let book = PriceBook::builtin();
        let report = report_for(&cuboid([5.0; 3]), &QuoteRequest::new("pla", 1), &book);
        let err = quote(&report, &QuoteRequest::new("unobtainium", 1), &book, &default_profile()).unwrap_err();
        assert!(matches!(err, PricingError::UnknownMaterial { .. }));
        let err = quote(&report, &QuoteRequest::new("pla", 0), &book, &default_profile()).unwrap_err();
        assert!(matches!(err, PricingError::InvalidQuantity { quantity: 0, .. }));
        let mauve = QuoteRequest { colour: Some("mauve".into()), ..QuoteRequest::new("pla", 1) };
        let err = quote(&report, &mauve, &book, &default_profile()).unwrap_err();
        assert!(err.to_string().contains("black"), "{err}");
        let black = QuoteRequest { colour: Some("Black".into()), ..QuoteRequest::new("pla", 1) };
        assert!(quote(&report, &black, &book, &default_profile()).is_ok());
    }

    #[test]
    fn an_fdm_material_may_take_its_price_and_density_from_the_profile() {
        let mut book = PriceBook::builtin();
        let pla = book.materials.iter_mut().find(|m| m.name == "pla").unwrap();
        (pla.price, pla.density_g_cm3) = (None, None);
        let request = QuoteRequest::new("pla", 1);
        let report = report_for(&cuboid([20.0; 3]), &request, &book);
        let err = quote(&report, &request, &book, &default_profile()).unwrap_err();
        assert!(err.to_string().contains("filament_density"), "{err}");
        let shop = FdmProfile { filament_density: 1.3, filament_cost: 40.0, ..FdmProfile::default() };
        let q = quote(
            &report,
            &request,
            &book,
            &PrintSettings::fdm(LoadedProfile { profile: shop, ..LoadedProfile::defaults() }),
        )
        .unwrap();
        assert!((q.material_g - q.material_cm3 * 1.3).abs() < 1e-9);
        assert!(q.line_items[0].basis.contains("40.00 EUR/kg"), "{:?}", q.line_items[0]);
    }

    #[test]
    fn open_and_inverted_meshes_and_ignored_keys_are_flagged() {
        let book = PriceBook::builtin();
        let request = QuoteRequest::new("pla", 1);
        let mut triangles: Vec<_> = cuboid([10.0; 3]).into_iter().map(|[a, b, c]| [a, c, b]).collect();
        triangles.pop();
        let report = report_for(&triangles, &request, &book);
        let profile =
            PrintSettings::fdm(LoadedProfile { ignored_keys: vec!["wipe_tower".into()], ..LoadedProfile::defaults() });
        let q = quote(&report, &request, &book, &profile).unwrap();
        assert!(q.volume_mm3 > 0.0);
        // An open shell has no inside to turn it by, so its faces keep
        // their winding: the top, facing down, overhangs, and the built-in
        // book (`supports = "auto"`) adds supports under it, and says so.
        let added = |w: &QuoteWarning| matches!(w, QuoteWarning::SupportsAdded { area_mm2, .. } if *area_mm2 >= 99.0);
        assert!(q.warnings.iter().any(added), "{:?}", q.warnings);
        let warnings: Vec<_> = q.warnings.iter().filter(|w| !added(w)).cloned().collect();
        assert_eq!(
            warnings,
            vec![
                QuoteWarning::OpenMesh { boundary_edges: 3 },
                QuoteWarning::InvertedShells,
                QuoteWarning::IgnoredProfileKeys { keys: vec!["wipe_tower".into()] }
            ]
        );
        // A book that prices exactly what the profile says warns instead.
        let as_profile = PriceBook { supports: SupportPolicy::Profile, ..book.clone() };
        let q = quote(&report, &request, &as_profile, &profile).unwrap();
        assert!(q.warnings.contains(&QuoteWarning::UnsupportedOverhangs { area_mm2: 100 }), "{:?}", q.warnings);
        // Resin has no print profile, so nothing of it is ignored.
        let resin = QuoteRequest::new("standard-resin", 1);
        let q = quote(&report_for(&triangles, &resin, &book), &resin, &book, &profile).unwrap();
        assert!(q.ignored_profile_keys.is_empty());
    }

    #[test]
    fn overhangs_without_supports_are_flagged_with_their_area() {
        // A T of two touching boxes: a 40 x 10 mm bar 20 mm above the plate
        // on a 10 x 10 mm column. The bar's whole underside faces down (the
        // column's top is another shell's face), 400 mm².
        let mut t: Vec<mesh::Triangle> =
            cuboid([10.0, 10.0, 20.0]).into_iter().map(|tri| tri.map(|v| [v[0] + 15.0, v[1], v[2]])).collect();
        t.extend(cuboid([40.0, 10.0, 5.0]).into_iter().map(|tri| tri.map(|v| [v[0], v[1], v[2] + 20.0])));
        // A book that prices exactly what the profile says.
        let book = PriceBook { supports: SupportPolicy::Profile, ..PriceBook::builtin() };
        let pla = QuoteRequest::new("pla", 1);
        let report = report_for(&t, &pla, &book);
        let off = quote(&report, &pla, &book, &default_profile()).unwrap();
        let flagged: Vec<_> =
            off.warnings.iter().filter(|w| matches!(w, QuoteWarning::UnsupportedOverhangs { .. })).collect();
        let [QuoteWarning::UnsupportedOverhangs { area_mm2 }] = flagged[..] else { panic!("{:?}", off.warnings) };
        assert_eq!(*area_mm2, 400, "the bar's underside");
        assert_eq!(off.estimate.support_cm3, 0.0);
        assert!(off.warnings.iter().any(|w| w.to_string().contains("supports are off")));
        assert!(off.supports.as_ref().is_some_and(|s| !s.priced && !s.profile_on));

        // The built-in book (`supports = "auto"`) prices them where the
        // slicer's auto-detection would, and says so.
        let builtin = PriceBook::builtin();
        let auto = quote(&report, &pla, &builtin, &default_profile()).unwrap();
        assert!(auto.estimate.support_cm3 > 0.0);
        assert!(auto.warnings.iter().any(|w| matches!(w, QuoteWarning::SupportsAdded { .. })), "{:?}", auto.warnings);
        assert!(auto.warnings.iter().all(|w| !matches!(w, QuoteWarning::UnsupportedOverhangs { .. })));

        // Supports on in the profile: they are priced, and there is nothing to warn of.
        let on = PrintSettings::fdm(LoadedProfile {
            profile: FdmProfile { support_material: true, ..FdmProfile::default() },
            ..LoadedProfile::defaults()
        });
        let supported = quote(&report, &pla, &book, &on).unwrap();
        assert!(supported.estimate.support_cm3 > 0.0);
        assert!(
            supported
                .warnings
                .iter()
                .all(|w| !matches!(w, QuoteWarning::UnsupportedOverhangs { .. } | QuoteWarning::SupportsAdded { .. })),
            "{:?}",
            supported.warnings
        );
        // A cube has nothing overhanging; resin is not printed with this profile.
        assert!(priced(20.0, &pla, &book).warnings.is_empty());
        let resin = QuoteRequest::new("standard-resin", 1);
        let q = quote(&report_for(&t, &resin, &book), &resin, &book, &default_profile()).unwrap();
        assert!(q.warnings.iter().all(|w| !matches!(w, QuoteWarning::UnsupportedOverhangs { .. })), "{:?}", q.warnings);
    }

    #[test]
    fn an_fdm_part_goes_on_a_machine_it_fits_as_sliced() {
        let book = PriceBook::builtin();
        let pla = QuoteRequest::new("pla", 1);
        // A 30 x 200 x 240 mm panel fits the cheaper fdm-250 only lying on
        // its face, and fdm-350 standing, as it is sliced: fdm-350, no
        // warning.
        let panel = report_for(&cuboid([30.0, 200.0, 240.0]), &pla, &book);
        let q = quote(&panel, &pla, &book, &default_profile()).unwrap();
        assert_eq!(q.machine.name, "fdm-350");
        assert_eq!(q.machine.fit.map(|f| (f.fits, f.up_axis)), Some((true, 2)));
        assert!(q.warnings.is_empty(), "{:?}", q.warnings);
        // Resin does not slice by the profile: the cheapest fit stands.
        let resin = QuoteRequest::new("standard-resin", 1);
        let small = quote(&report_for(&cuboid([20.0; 3]), &resin, &book), &resin, &book, &default_profile()).unwrap();
        assert!(small.machine.fit.is_some_and(|f| f.fits));

        // A 400 mm post fits no machine upright, and fdm-350 lying down:
        // priced there, with a warning that the estimate is for upright.
        let post = quote(&report_for(&cuboid([20.0, 20.0, 400.0]), &pla, &book), &pla, &book, &default_profile());
        let post = post.unwrap();
        assert_eq!(post.machine.name, "fdm-350");
        assert!(
            post.warnings.iter().any(|w| matches!(w, QuoteWarning::FitsOnlyOnItsSide { up_axis, .. } if *up_axis != 2)),
            "{:?}",
            post.warnings
        );
        assert_eq!(post.orientation.up_axis, 2, "estimated as the file stands");

        // Analysed turned, as the services and `farm quote` do: one
        // orientation, and no warning.
        let post_report = report_for(&cuboid([20.0, 20.0, 400.0]), &pla, &book);
        let up_axis = turn_needed(&post_report, &pla, &book).expect("fits only on its side");
        assert_ne!(up_axis, 2);
        let options = analysis_options(&pla, &book, &default_profile(), mesh::AnalysisOptions::default()).unwrap();
        let turned =
            analyze(&write_binary_stl(&cuboid([20.0, 20.0, 400.0])), &mesh::AnalysisOptions { up_axis, ..options })
                .unwrap();
        assert_eq!(turn_needed(&turned, &pla, &book), None);
        let q = quote(&turned, &pla, &book, &default_profile()).unwrap();
        assert_eq!(q.machine.name, "fdm-350");
        assert_eq!((q.orientation.up_axis, q.estimate.layers < post.estimate.layers), (up_axis, true));
        assert!(q.orientation.reason.contains("turned"), "{}", q.orientation.reason);
        assert!(q.warnings.iter().all(|w| !matches!(w, QuoteWarning::FitsOnlyOnItsSide { .. })), "{:?}", q.warnings);
        // The panel needs no turn: it stands on fdm-350.
        assert_eq!(turn_needed(&panel, &pla, &book), None);
    }

    #[test]
    fn the_cache_key_changes_with_everything_a_quote_depends_on() {
        let book = PriceBook::builtin();
        let profile = PrintSettings::default();
        let pla = QuoteRequest::new("pla", 1);
        let key = quote_cache_key("m1", &pla, &book, &profile);
        assert!(key.starts_with(&format!("{}:", book.version)), "{key}");
        assert_eq!(key, quote_cache_key("m1", &QuoteRequest::new("PLA", 1), &book, &profile));
        let other_book = PriceBook { fingerprint: "edited".into(), ..book.clone() };
        let finer = PrintSettings::fdm(LoadedProfile {
            profile: FdmProfile { layer_height: 0.2, ..FdmProfile::default() },
            ..LoadedProfile::defaults()
        });
        for other in [
            quote_cache_key("m2", &pla, &book, &profile),
            quote_cache_key("m1", &QuoteRequest::new("pla", 2), &book, &profile),
            quote_cache_key("m1", &QuoteRequest { colour: Some("red".into()), ..pla.clone() }, &book, &profile),
            quote_cache_key("m1", &pla, &other_book, &profile),
            quote_cache_key("m1", &pla, &book, &finer),
        ] {
            assert_ne!(key, other);
        }
        // The FDM profile does not touch a resin quote.
        let resin = QuoteRequest::new("standard-resin", 1);
        assert_eq!(quote_cache_key("m1", &resin, &book, &profile), quote_cache_key("m1", &resin, &book, &finer));
    }
}
