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
    pub bounding_box: BoxDoc,
    /// Enclosed volume, mm³: the magnitude of the signed volume.
    pub volume_mm3: f64,
    pub signed_volume_mm3: f64,
    /// The signed volume was negative: shells are wound inside out.
    pub inverted: bool,
    pub surface_area_mm2: f64,
    pub centroid: [f64; 3],
    pub watertight: bool,
    pub winding_consistent: bool,
    pub boundary_edges: u64,
    pub nonmanifold_edges: u64,
    pub shells: u64,
    pub degenerate_faces: u64,
    pub zero_area_triangles: u64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxDoc {
    pub min: [f64; 3],
    pub max: [f64; 3],
    pub size: [f64; 3],
}

impl From<&mesh::MeshReport> for AnalysisDoc {
    fn from(r: &mesh::MeshReport) -> Self {
        let b = r.geometry.bounding_box;
        Self {
            format: r.format.as_str().into(),
            triangles: r.triangles,
            vertices: r.vertices,
            bounding_box: BoxDoc { min: b.min, max: b.max, size: b.size() },
            volume_mm3: r.enclosed_volume_mm3(),
            signed_volume_mm3: r.geometry.signed_volume,
            inverted: r.geometry.signed_volume < 0.0,
            surface_area_mm2: r.geometry.surface_area,
            centroid: r.geometry.centroid,
            watertight: r.topology.watertight,
            winding_consistent: r.topology.winding_consistent,
            boundary_edges: r.topology.boundary_edges,
            nonmanifold_edges: r.topology.nonmanifold_edges,
            shells: r.topology.shells,
            degenerate_faces: r.topology.degenerate_faces,
            zero_area_triangles: r.geometry.zero_area_triangles,
            warnings: r.warnings.iter().map(ToString::to_string).collect(),
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
    pub technology: String,
    pub quantity: u32,
    pub line_items: Vec<LineItemDoc>,
    pub price_book_version: String,
    pub warnings: Vec<String>,
    pub analysis: AnalysisDoc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItemDoc {
    pub label: String,
    pub basis: String,
    pub amount: f64,
}

impl QuoteDoc {
    pub fn new(report: &mesh::MeshReport, quote: &calculator::Quote) -> Self {
        let analysis = AnalysisDoc::from(report);
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
            technology: quote.technology.as_str().into(),
            quantity: quote.quantity,
            line_items: quote
                .line_items
                .iter()
                .map(|i| LineItemDoc { label: i.label.into(), basis: i.basis.clone(), amount: i.amount })
                .collect(),
            price_book_version: quote.price_book_version.clone(),
            warnings: quote.warnings.iter().map(ToString::to_string).chain(analysis.warnings.clone()).collect(),
            analysis,
        }
    }
}
