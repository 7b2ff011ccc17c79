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

use crate::formats::ObjectRange;
use crate::geometry::{BoundingBox, corner_mean};
use crate::read::Triangles;
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

#[derive(Clone, Copy)]
struct Sums {
    six_volume: f64,
    double_area: f64,
    min: [f64; 3],
    max: [f64; 3],
    open: bool,
}

pub(crate) fn measure<T: Triangles + ?Sized>(
    triangles: &T,
    objects: &[ObjectRange],
    labels: &FaceLabels,
    flipped: &[bool],
) -> Vec<ObjectReport> {
    if objects.is_empty() {
        return Vec::new();
    }
    let origin = corner_mean(triangles);
    objects
        .iter()
        .map(|object| {
            let first = object.first_triangle as usize;
            let count = object.triangles as usize;
            let zero = || Sums {
                six_volume: 0.0,
                double_area: 0.0,
                min: [f64::INFINITY; 3],
                max: [f64::NEG_INFINITY; 3],
                open: false,
            };
            let sums = crate::par::fold_chunks(
                count,
                4096,
                zero,
                |mut s, i| {
                    let face = first + i;
                    let [a, mut b, mut c] =
                        triangles.triangle(face).map(|v| [0, 1, 2].map(|k| f64::from(v[k]) - origin[k]));
                    if flipped[face] {
                        std::mem::swap(&mut b, &mut c);
                    }
                    let cross = [
                        (b[1] - a[1]) * (c[2] - a[2]) - (b[2] - a[2]) * (c[1] - a[1]),
                        (b[2] - a[2]) * (c[0] - a[0]) - (b[0] - a[0]) * (c[2] - a[2]),
                        (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]),
                    ];
                    s.double_area += (cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]).sqrt();
                    s.six_volume += a[0] * (b[1] * c[2] - b[2] * c[1])
                        + a[1] * (b[2] * c[0] - b[0] * c[2])
                        + a[2] * (b[0] * c[1] - b[1] * c[0]);
                    for v in [a, b, c] {
                        for k in 0..3 {
                            s.min[k] = s.min[k].min(v[k] + origin[k]);
                            s.max[k] = s.max[k].max(v[k] + origin[k]);
                        }
                    }
                    s.open |= labels.open[face];
                    s
                },
                |x, y| Sums {
                    six_volume: x.six_volume + y.six_volume,
                    double_area: x.double_area + y.double_area,
                    min: std::array::from_fn(|k| x.min[k].min(y.min[k])),
                    max: std::array::from_fn(|k| x.max[k].max(y.max[k])),
                    open: x.open || y.open,
                },
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
