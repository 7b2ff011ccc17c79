//! What a process model predicts for one part: the common shape of the FDM,
//! SLA and SLS estimates, so pricing does not care which produced it.

use crate::Technology;

/// The predicted cost drivers of printing one part.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessEstimate {
    pub technology: Technology,
    /// Machine time for one part, seconds: printed alone (FDM, SLA), or its
    /// share of a packed build (SLS).
    pub print_time_s: f64,
    /// Material one part consumes, cm³: the part, its supports and any waste.
    pub material_cm3: f64,
    /// The share of `material_cm3` that is support material.
    pub support_cm3: f64,
    /// The share of `material_cm3` that is used up without being built:
    /// resin left on the vat and lost in the wash (SLA), powder refreshed
    /// (SLS); none for FDM. A slicer's figure for the print leaves it out.
    pub waste_cm3: f64,
    /// Layers the part is built in.
    pub layers: u64,
    /// How many parts one build of `print_time_s` makes (SLA cures a whole
    /// platform at once); 1 when parts are built one after another, or when
    /// `print_time_s` is already a share of a build.
    pub parts_per_build: u32,
    /// How time and material divide between features (perimeters, infill,
    /// supports, travel, ...), so a quote can explain itself.
    pub breakdown: Vec<Component>,
}

impl ProcessEstimate {
    /// Machine time for `quantity` parts, seconds.
    pub fn machine_time_s(&self, quantity: u32) -> f64 {
        let builds = quantity.div_ceil(self.parts_per_build.max(1));
        f64::from(builds) * self.print_time_s
    }
}

/// One feature's share of an estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub feature: &'static str,
    pub time_s: f64,
    pub material_cm3: f64,
}

/// The part's extent as it will be built (x, y, z in mm): the orientation
/// the fit check found, else as it sits in the file.
pub(crate) fn build_extent(report: &mesh::MeshReport, fit: Option<&mesh::Fit>) -> [f64; 3] {
    match fit {
        Some(f) if f.fits => f.extent,
        _ => report.geometry.bounding_box.size(),
    }
}
