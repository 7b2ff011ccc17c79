//! Wire documents for analyses and quotes.
//!
//! The core crates keep their types free of serde (serialization happens at
//! the edge). These documents are that edge: the worker sends them on the
//! results queue, the API returns them verbatim, and `farm quote --format json`
//! prints the same document, so all three agree key for key.

use serde::{Deserialize, Serialize};

/// The mesh engine's findings, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisDoc {
    pub format: String,
    pub triangles: u64,
    pub vertices: u64,
    /// `nearby:<tolerance>` (the default: exact, then the edges left open
    /// closed by matching vertices within that distance), `exact`, or
    /// `tolerance:<pitch>` (a grid weld).
    pub weld: String,
    /// Vertices the nearby step of the default weld merged.
    #[serde(default)]
    pub nearby_merged_vertices: u64,
    /// The units lengths are in: `mm` when units were applied, otherwise
    /// the file's own (`file`).
    pub units: String,
    /// What the size suggests the file's units are: `mm`, `inch` or `m`.
    pub units_guess: String,
    pub bounding_box: BoxDoc,
    /// The bounding box without stray shells.
    pub main_bounding_box: BoxDoc,
    /// The volume to price: signed volume with inverted shells flipped.
    pub volume_mm3: f64,
    /// True when the mesh is open and the volume is an estimate.
    pub volume_is_estimate: bool,
    pub signed_volume_mm3: f64,
    pub surface_area_mm2: f64,
    pub centroid: [f64; 3],
    pub watertight: bool,
    pub winding_consistent: bool,
    pub boundary_edges: u64,
    pub nonmanifold_edges: u64,
    pub shells: u64,
    pub inverted_shells: u64,
    pub cavities: u64,
    pub stray_shells: u64,
    pub degenerate_faces: u64,
    pub zero_area_faces: u64,
    pub duplicate_faces: u64,
    /// Faces read with reversed winding so each shell is consistent.
    pub reoriented_faces: u64,
    pub overhang_angle_deg: f64,
    pub overhang_area_mm2: f64,
    pub support_volume_estimate_mm3: f64,
    /// The support columns from the surface below each overhang up to it.
    pub support_column_volume_mm3: f64,
    /// The overhang area those columns hold up.
    pub support_contact_area_mm2: f64,
    /// The part of it whose columns stand on the part, not the plate.
    pub support_on_part_area_mm2: f64,
    /// Area of the columns' sides.
    pub support_side_area_mm2: f64,
    pub plate_contact_area_mm2: f64,
    pub fit: Option<FitDoc>,
    pub slices: Option<SlicesDoc>,
    pub warnings: Vec<String>,
    /// Per object, for files that hold several (3MF build items, OBJ
    /// groups); absent for STL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectDoc>,
}

/// One object of a 3MF or OBJ file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectDoc {
    pub name: String,
    pub triangles: u64,
    pub volume_mm3: f64,
    pub surface_area_mm2: f64,
    pub bounding_box: BoxDoc,
    pub shells: u64,
    pub watertight: bool,
}

impl From<&mesh::ObjectReport> for ObjectDoc {
    fn from(o: &mesh::ObjectReport) -> Self {
        Self {
            name: o.name.clone(),
            triangles: o.triangles,
            volume_mm3: o.volume,
            surface_area_mm2: o.surface_area,
            bounding_box: o.bounding_box.into(),
            shells: o.shells,
            watertight: o.watertight,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxDoc {
    pub min: [f64; 3],
    pub max: [f64; 3],
    pub size: [f64; 3],
}

impl From<mesh::BoundingBox> for BoxDoc {
    fn from(b: mesh::BoundingBox) -> Self {
        Self { min: b.min, max: b.max, size: b.size() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitDoc {
    pub build_volume_mm: [f64; 3],
    pub fits: bool,
    /// `x`, `y` or `z`: the part's axis that stands up.
    pub up_axis: String,
    pub rotation_deg: f64,
    pub extent_mm: [f64; 3],
}

impl From<&mesh::Fit> for FitDoc {
    fn from(f: &mesh::Fit) -> Self {
        Self {
            build_volume_mm: f.build_volume,
            fits: f.fits,
            up_axis: ["x", "y", "z"][f.up_axis].into(),
            rotation_deg: f.rotation_deg,
            extent_mm: f.extent,
        }
    }
}

/// The layers. The per-layer lists are left out of quotes (empty), where
/// thousands of layers would swell every stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlicesDoc {
    pub layer_height_mm: f64,
    pub first_layer_height_mm: f64,
    pub layers: usize,
    pub max_area_mm2: f64,
    pub max_perimeter_mm: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub z_mm: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub area_mm2: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perimeter_mm: Vec<f64>,
}

impl From<&mesh::MeshReport> for AnalysisDoc {
    fn from(r: &mesh::MeshReport) -> Self {
        let mut warnings: Vec<String> = r.warnings.iter().map(ToString::to_string).collect();
        if !r.topology.watertight {
            warnings.push(format!(
                "the mesh is open ({} boundary and {} non-manifold edges); the volume is an estimate",
                r.topology.boundary_edges, r.topology.nonmanifold_edges
            ));
        }
        if r.topology.reoriented_faces > 0 {
            warnings.push(format!(
                "{} faces were wound against their neighbours; read reversed",
                r.topology.reoriented_faces
            ));
        }
        if r.shells.inverted > 0 {
            warnings.push(format!("{} shells are wound inside out; counted as positive", r.shells.inverted));
        }
        if r.shells.stray > 0 {
            warnings.push(format!("{} small shells lie far from the part (stray facets?)", r.shells.stray));
        }
        if r.units_applied.is_none() && r.units_guess != mesh::Units::Millimetre {
            warnings.push(format!(
                "its size suggests the file is in {}, not mm; nothing was rescaled",
                r.units_guess.as_str()
            ));
        }
        if !r.fits.is_empty() && r.fits.iter().all(|f| !f.fits) {
            let volumes: Vec<String> = r.fits.iter().map(|f| format!("{:?}", f.build_volume)).collect();
            warnings
                .push(format!("the part does not fit the build volume {} in any orientation", volumes.join(" or ")));
        }
        let p = r.printability;
        Self {
            format: r.format.as_str().into(),
            triangles: r.triangles,
            vertices: r.vertices,
            weld: match (r.weld, r.nearby) {
                (mesh::Weld::Nearby, Some(n)) => format!("nearby:{}", n.tolerance),
                (mesh::Weld::Exact | mesh::Weld::Nearby, _) => "exact".into(),
                (mesh::Weld::Tolerance(pitch), _) => format!("tolerance:{pitch}"),
            },
            nearby_merged_vertices: r.nearby.map_or(0, |n| n.merged_vertices),
            units: r.units_applied.map_or("file", |_| "mm").into(),
            units_guess: r.units_guess.as_str().into(),
            bounding_box: r.geometry.bounding_box.into(),
            main_bounding_box: r.shells.main_bounding_box.into(),
            volume_mm3: r.volume,
            volume_is_estimate: r.volume_is_estimate,
            signed_volume_mm3: r.geometry.signed_volume,
            surface_area_mm2: r.geometry.surface_area,
            centroid: r.geometry.centroid,
            watertight: r.topology.watertight,
            winding_consistent: r.topology.winding_consistent,
            boundary_edges: r.topology.boundary_edges,
            nonmanifold_edges: r.topology.nonmanifold_edges,
            shells: r.topology.shells,
            inverted_shells: r.shells.inverted,
            cavities: r.shells.cavities,
            stray_shells: r.shells.stray,
            degenerate_faces: r.geometry.degenerate_triangles,
            zero_area_faces: r.geometry.zero_area_triangles,
            duplicate_faces: r.topology.duplicate_faces,
            reoriented_faces: r.topology.reoriented_faces,
            overhang_angle_deg: p.overhang_angle_deg,
            overhang_area_mm2: p.overhang_area,
            support_volume_estimate_mm3: p.support_volume_estimate,
            support_column_volume_mm3: p.support_column_volume,
            support_contact_area_mm2: p.support_contact_area,
            support_on_part_area_mm2: p.support_on_part_area,
            support_side_area_mm2: p.support_side_area,
            plate_contact_area_mm2: p.plate_contact_area,
            fit: r.fits.first().map(FitDoc::from),
            slices: r.slices.as_ref().map(|s| SlicesDoc {
                layer_height_mm: s.layer_height,
                first_layer_height_mm: s.first_layer_height,
                layers: s.z.len(),
                max_area_mm2: s.area.iter().copied().fold(0.0, f64::max),
                max_perimeter_mm: s.perimeter.iter().copied().fold(0.0, f64::max),
                z_mm: s.z.clone(),
                area_mm2: s.area.clone(),
                perimeter_mm: s.perimeter.clone(),
            }),
            warnings,
            objects: r.objects.iter().map(ObjectDoc::from).collect(),
        }
    }
}

/// A quote, as JSON. The first eight keys are the stable contract shared by
/// the CLI and the API; the rest explain the price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteDoc {
    pub triangles: u64,
    pub volume_mm3: f64,
    pub surface_area_mm2: f64,
    pub watertight: bool,
    /// Machine time for one part, seconds.
    pub print_time_s: f64,
    /// Material for one part, grams.
    pub material_g: f64,
    pub total: f64,
    pub currency: String,
    pub material: String,
    pub colour: Option<String>,
    pub technology: String,
    pub quantity: u32,
    /// Material for one part, cm³: the part as printed, its supports and
    /// any waste.
    pub material_cm3: f64,
    /// The support material within `material_cm3`.
    pub support_cm3: f64,
    /// Filament for one part, mm (FDM only).
    pub filament_mm: Option<f64>,
    pub layers: u64,
    /// Parts one build makes (SLA platforms hold several).
    pub parts_per_build: u32,
    /// Machine time for the whole quantity, seconds.
    pub machine_time_s: f64,
    pub machine: MachineDoc,
    /// How the estimate's time and material divide between features.
    pub estimate: Vec<ComponentDoc>,
    pub line_items: Vec<LineItemDoc>,
    pub price_book_version: String,
    /// How long the price holds once given, days; an order's
    /// `quote_valid_until_ms` counts from when it was priced. Documents
    /// stored before it existed read as the default, 30.
    #[serde(default = "default_valid_days")]
    pub valid_days: u32,
    /// Keys of the print profile the estimate did not use (those that could
    /// change time or material; temperatures, fans and the like are not
    /// listed).
    pub ignored_profile_keys: Vec<String>,
    pub warnings: Vec<String>,
    pub analysis: AnalysisDoc,
    /// The orientation the estimate is for, and why.
    #[serde(default)]
    pub orientation: OrientationDoc,
    /// Supports as priced (FDM).
    #[serde(default)]
    pub supports: Option<SupportsDoc>,
    /// The shop's calibration was applied to the estimate.
    #[serde(default)]
    pub calibrated: bool,
    /// Resin the print of one part uses, ml (SLA): the part, its supports
    /// and pad, as PrusaSlicer's `usedMaterial` counts it. The vat's waste is
    /// `waste_ml`, priced on top.
    #[serde(default)]
    pub material_ml: Option<f64>,
    /// Resin lost on the vat and in the wash for one part, ml (SLA).
    #[serde(default)]
    pub waste_ml: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OrientationDoc {
    /// `x`, `y` or `z`: the file's axis that stands up (`z` as the file stands).
    pub up_axis: String,
    pub rotation_deg: f64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupportsDoc {
    /// The price book's `supports`: `profile`, `auto` or `always`.
    pub policy: String,
    /// What the profile said.
    pub profile_on: bool,
    /// What the estimate printed and the price charges.
    pub priced: bool,
    /// Overhang beyond `angle_deg` that needs (or got) supports, mm².
    pub overhang_area_mm2: f64,
    pub angle_deg: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineDoc {
    pub name: String,
    pub hourly_rate: f64,
    pub build_volume_mm: [f64; 3],
    pub fit: Option<FitDoc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentDoc {
    pub feature: String,
    pub time_s: f64,
    pub material_cm3: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItemDoc {
    pub label: String,
    pub basis: String,
    pub amount: f64,
}

impl QuoteDoc {
    pub fn new(report: &mesh::MeshReport, quote: &calculator::Quote) -> Self {
        let mut analysis = AnalysisDoc::from(report);
        if let Some(slices) = &mut analysis.slices {
            slices.z_mm.clear();
            slices.area_mm2.clear();
            slices.perimeter_mm.clear();
        }
        // The quote checks the fit per machine; the analysis's own "fits no
        // build volume" line would repeat the quote's warning.
        analysis.fit = quote.machine.fit.as_ref().map(FitDoc::from);
        analysis.warnings.retain(|w| !w.starts_with("the part does not fit"));
        let estimate = &quote.estimate;
        Self {
            triangles: report.triangles,
            volume_mm3: quote.volume_mm3,
            surface_area_mm2: report.geometry.surface_area,
            watertight: report.topology.watertight,
            print_time_s: quote.print_time_s,
            material_g: quote.material_g,
            total: quote.total,
            currency: quote.currency.clone(),
            material: quote.material.clone(),
            colour: quote.colour.clone(),
            technology: quote.technology.as_str().into(),
            quantity: quote.quantity,
            material_cm3: quote.material_cm3,
            support_cm3: estimate.support_cm3,
            filament_mm: quote.filament_mm,
            layers: estimate.layers,
            parts_per_build: estimate.parts_per_build,
            machine_time_s: quote.machine_time_s,
            machine: MachineDoc {
                name: quote.machine.name.clone(),
                hourly_rate: quote.machine.hourly_rate,
                build_volume_mm: quote.machine.build_volume_mm,
                fit: quote.machine.fit.as_ref().map(FitDoc::from),
            },
            estimate: estimate
                .breakdown
                .iter()
                .map(|c| ComponentDoc { feature: c.feature.into(), time_s: c.time_s, material_cm3: c.material_cm3 })
                .collect(),
            line_items: quote
                .line_items
                .iter()
                .map(|i| LineItemDoc { label: i.label.clone(), basis: i.basis.clone(), amount: i.amount })
                .collect(),
            price_book_version: quote.price_book_version.clone(),
            valid_days: quote.valid_days,
            ignored_profile_keys: quote.ignored_profile_keys.clone(),
            warnings: quote.warnings.iter().map(ToString::to_string).collect(),
            analysis,
            orientation: OrientationDoc {
                up_axis: ["x", "y", "z"][quote.orientation.up_axis.min(2)].into(),
                rotation_deg: quote.orientation.rotation_deg,
                reason: quote.orientation.reason.clone(),
            },
            supports: quote.supports.as_ref().map(|s| SupportsDoc {
                policy: s.policy.as_str().into(),
                profile_on: s.profile_on,
                priced: s.priced,
                overhang_area_mm2: s.needed_area_mm2,
                angle_deg: s.angle_deg,
            }),
            calibrated: quote.calibrated,
            material_ml: (quote.technology == calculator::Technology::Sla)
                .then_some(quote.material_cm3 - quote.estimate.waste_cm3),
            waste_ml: (quote.technology == calculator::Technology::Sla).then_some(quote.estimate.waste_cm3),
        }
    }
}

fn default_valid_days() -> u32 {
    30
}
