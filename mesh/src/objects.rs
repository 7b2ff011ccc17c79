//! Per-object figures, for files that hold several objects (3MF build
//! items, OBJ `o` and `g` groups). The whole file is analysed as one part,
//! as a slicer's plate is; each object's own triangles give its share.
//!
//! Objects can be the shells of one part (a 3MF assembly whose objects meet
//! along welded edges) or separate parts; `shells` and `watertight` tell
//! which. Volumes are summed about the same point as the whole part's and
//! with the same faces read reversed, so closed objects' volumes add up to
//! the part's.

use std::collections::BTreeSet;

use nalgebra::Vector3;

use crate::formats::ObjectRange;
use crate::geometry::BoundingBox;
use crate::read::Triangles;
use crate::shells::ShellAcc;
use crate::topology::FaceLabels;

/// One object's figures, in the same units as the whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectReport {
    pub name: String,
    pub triangles: u64,
    /// The volume it encloses, its inverted shells counted positive.
    pub volume: f64,
    pub surface_area: f64,
    pub bounding_box: BoundingBox,
    /// Shells its faces belong to (a shell can reach into another object).
    pub shells: u64,
    /// None of its faces has an open or non-manifold edge.
    pub watertight: bool,
}

pub(crate) fn measure<T: Triangles + ?Sized>(
    triangles: &T,
    objects: &[ObjectRange],
    labels: &FaceLabels,
    flipped: &[bool],
    origin: &Vector3<f64>,
) -> Vec<ObjectReport> {
    if objects.is_empty() {
        return Vec::new();
    }
    objects
        .iter()
        .map(|object| {
            let first = object.first_triangle as usize;
            let count = object.triangles as usize;
            let sums = crate::par::fold_chunks(
                count,
                4096,
                ShellAcc::new,
                |mut s, i| {
                    let face = first + i;
                    s.add(triangles.triangle(face), origin, flipped[face], labels.open[face]);
                    s
                },
                ShellAcc::merge,
            );
            let shells: BTreeSet<u32> = labels.shell[first..first + count].iter().copied().collect();
            ObjectReport {
                name: object.name.clone(),
                triangles: object.triangles,
                volume: sums.six_volume / 6.0,
                surface_area: sums.double_area / 2.0,
                bounding_box: BoundingBox { min: sums.min, max: sums.max },
                shells: shells.len() as u64,
                watertight: !sums.open,
            }
        })
        .collect()
}
