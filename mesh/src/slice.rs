//! Layer slicing: the cross-section area and perimeter of the part at every
//! layer, the raw material of a print-time estimate.
//!
//! No contours are assembled. Each triangle that crosses a layer's plane adds
//! one segment, oriented by the triangle's outward normal, and the segments
//! of a layer sum to its perimeter and (by the shoelace formula) to its area:
//! outer walls add, holes subtract. The work is one parallel pass over the
//! triangles with a per-thread accumulator per layer.

use rayon::prelude::*;

use crate::read::Triangles;

/// Cross-sections at evenly spaced heights.
#[derive(Debug, Clone, PartialEq)]
pub struct Slices {
    pub layer_height: f64,
    /// Height of each layer's cutting plane (the middle of the layer).
    pub z: Vec<f64>,
    /// Cross-section area per layer, file units squared.
    pub area: Vec<f64>,
    /// Total contour length per layer, file units.
    pub perimeter: Vec<f64>,
}

/// Why a mesh could not be sliced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SliceError {
    #[error("the layer height must be a positive number, got {0}")]
    BadLayerHeight(f64),
    #[error("{layers} layers of {layer_height} would exceed the limit of {limit}")]
    TooManyLayers { layers: u64, layer_height: f64, limit: u64 },
}

/// Slices `triangles` between `z_min` and `z_max` at `layer_height`.
/// `flipped[i]` reverses face `i` (its shell is wound inside out).
pub fn slice<T: Triangles + ?Sized>(
    triangles: &T,
    flipped: Option<&[bool]>,
    (z_min, z_max): (f64, f64),
    layer_height: f64,
    max_layers: u64,
) -> Result<Slices, SliceError> {
    if !(layer_height.is_finite() && layer_height > 0.0) {
        return Err(SliceError::BadLayerHeight(layer_height));
    }
    let height = (z_max - z_min).max(0.0);
    let layers_f = (height / layer_height).ceil().max(1.0);
    if layers_f > max_layers as f64 {
        return Err(SliceError::TooManyLayers { layers: layers_f as u64, layer_height, limit: max_layers });
    }
    let layers = layers_f as usize;
    let plane = |i: usize| z_min + (i as f64 + 0.5) * layer_height;
    let zero = || (vec![0.0f64; layers], vec![0.0f64; layers]);
    let (twice_area, perimeter) = (0..triangles.count())
        .into_par_iter()
        .with_min_len(2048)
        .fold(zero, |(mut twice_area, mut perimeter), index| {
            let flip = flipped.is_some_and(|f| f[index]);
            let [a, b, c] = triangles.triangle(index).map(|v| v.map(f64::from));
            let lo = a[2].min(b[2]).min(c[2]);
            let hi = a[2].max(b[2]).max(c[2]);
            // Layers whose plane lies in [lo, hi).
            let first = ((lo - z_min) / layer_height - 0.5).ceil().max(0.0) as usize;
            let normal = cross(sub(b, a), sub(c, a));
            let mut i = first;
            while i < layers && plane(i) < hi {
                if let Some((p, q)) = cut(a, b, c, plane(i)) {
                    // Orient the segment so the part lies to its left: its
                    // right-hand side must face along the outward normal.
                    let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
                    let outward = (dy * normal[0] - dx * normal[1]) * if flip { -1.0 } else { 1.0 };
                    let (p, q) = if outward >= 0.0 { (p, q) } else { (q, p) };
                    twice_area[i] += p[0] * q[1] - q[0] * p[1];
                    perimeter[i] += dx.hypot(dy);
                }
                i += 1;
            }
            (twice_area, perimeter)
        })
        .reduce(zero, |(mut a1, mut p1), (a2, p2)| {
            a1.iter_mut().zip(&a2).for_each(|(x, y)| *x += y);
            p1.iter_mut().zip(&p2).for_each(|(x, y)| *x += y);
            (a1, p1)
        });
    Ok(Slices {
        layer_height,
        z: (0..layers).map(plane).collect(),
        area: twice_area.into_iter().map(|a| a / 2.0).collect(),
        perimeter,
    })
}

/// Where the plane `z` cuts the triangle: the two points on the edges that
/// cross it. A corner counts as above the plane when its z equals the plane,
/// so every crossing is counted once.
fn cut(a: [f64; 3], b: [f64; 3], c: [f64; 3], z: f64) -> Option<([f64; 2], [f64; 2])> {
    let mut points = [[0.0; 2]; 2];
    let mut found = 0;
    for (u, v) in [(a, b), (b, c), (c, a)] {
        if (u[2] >= z) != (v[2] >= z) {
            let t = (z - u[2]) / (v[2] - u[2]);
            if found < 2 {
                points[found] = [u[0] + t * (v[0] - u[0]), u[1] + t * (v[1] - u[1])];
            }
            found += 1;
        }
    }
    (found == 2).then_some((points[0], points[1]))
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(u: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Triangle, cuboid, uv_sphere};

    #[test]
    fn a_box_slices_into_equal_rectangles() {
        let s = slice(&cuboid([10.0, 20.0, 3.0]), None, (0.0, 3.0), 0.2, 1000).unwrap();
        assert_eq!(s.z.len(), 15);
        for (area, perimeter) in s.area.iter().zip(&s.perimeter) {
            assert!((area - 200.0).abs() < 1e-9, "{area}");
            assert!((perimeter - 60.0).abs() < 1e-9, "{perimeter}");
        }
    }

    #[test]
    fn a_hole_subtracts_and_the_layers_sum_to_the_volume() {
        // A 10 mm cube with an inward-wound 4 mm cube inside: a hollow.
        let mut triangles = cuboid([10.0; 3]);
        let inner: Vec<Triangle> =
            cuboid([4.0; 3]).iter().map(|t| t.map(|v| v.map(|c| c + 3.0))).map(|[a, b, c]| [a, c, b]).collect();
        triangles.extend(inner);
        let s = slice(&triangles, None, (0.0, 10.0), 0.5, 1000).unwrap();
        let volume: f64 = s.area.iter().map(|a| a * s.layer_height).sum();
        assert!((volume - (1000.0 - 64.0)).abs() < 1e-9, "{volume}");
        assert!((s.area[10] - 84.0).abs() < 1e-9, "mid-height layer cuts the hollow");
    }

    #[test]
    fn a_sphere_slices_to_circles() {
        let triangles = uv_sphere(10.0, 256, 128);
        let s = slice(&triangles, None, (-10.0, 10.0), 0.2, 1000).unwrap();
        let mid = s.z.len() / 2;
        let r2 = 100.0 - s.z[mid] * s.z[mid];
        let circle = std::f64::consts::PI * r2;
        assert!((s.area[mid] - circle).abs() / circle < 1e-3, "{} vs {circle}", s.area[mid]);
        let volume: f64 = s.area.iter().map(|a| a * s.layer_height).sum();
        let sphere = 4.0 / 3.0 * std::f64::consts::PI * 1000.0;
        assert!((volume - sphere).abs() / sphere < 2e-3, "{volume} vs {sphere}");
    }

    #[test]
    fn limits_and_bad_heights_are_errors() {
        let cube = cuboid([1.0; 3]);
        assert_eq!(slice(&cube, None, (0.0, 1.0), 0.0, 10), Err(SliceError::BadLayerHeight(0.0)));
        assert!(matches!(slice(&cube, None, (0.0, 1.0), 0.01, 10), Err(SliceError::TooManyLayers { .. })));
    }
}
