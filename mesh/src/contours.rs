//! Per-layer contours: which crossing segments join into closed loops, so a
//! layer is known as its islands and holes, each with its own length and
//! area, and not only as totals.
//!
//! A slicer treats every loop on its own: a hole's perimeters grow outward
//! while an island's shrink, a small loop runs at the small-perimeter speed,
//! each island decides alone whether it is too small for sparse infill, and
//! every island costs a travel. The totals cannot tell one 40 mm square from
//! four 10 mm ones; the loops can.
//!
//! Segments join where they cut the same mesh edge: both faces along an edge
//! compute their crossing on it, so the edge's two vertex indices name the
//! joint exactly, with no floating-point matching. Each layer is a small
//! union-find over those joints, and the layers run in parallel.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rayon::prelude::*;

use crate::slice::Slices;
use crate::weld::{IndexedMesh, VertexHasher};

/// One closed loop of a layer's section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contour {
    /// Loop length, file units.
    pub length: f64,
    /// Enclosed area, positive for an island's outline and negative for a
    /// hole, file units squared.
    pub area: f64,
}

impl Contour {
    pub fn is_hole(&self) -> bool {
        self.area < 0.0
    }
}

/// The loops of every layer of `slices`, cut from `mesh` at the same planes.
/// `flipped[i]` reverses face `i`, as for slicing.
pub(crate) fn trace(mesh: &IndexedMesh, flipped: &[bool], slices: &Slices) -> Vec<Vec<Contour>> {
    let planes = &slices.z;
    let layers = planes.len();
    let z = |v: u32| f64::from(mesh.vertices[v as usize][2]);
    // The layers a face crosses: planes in (lo, hi], as `slice` counts them.
    let span = |face: &[u32; 3]| {
        let [a, b, c] = face.map(z);
        let (lo, hi) = (a.min(b).min(c), a.max(b).max(c));
        planes.partition_point(|&p| p <= lo)..planes.partition_point(|&p| p <= hi)
    };

    // Bucket the faces by layer: counts, offsets, then one fill pass.
    let mut offsets = vec![0usize; layers + 1];
    for face in &mesh.faces {
        for layer in span(face) {
            offsets[layer + 1] += 1;
        }
    }
    for i in 0..layers {
        offsets[i + 1] += offsets[i];
    }
    let mut cursor = offsets.clone();
    let mut by_layer = vec![0u32; offsets[layers]];
    for (index, face) in mesh.faces.iter().enumerate() {
        for layer in span(face) {
            by_layer[cursor[layer]] = index as u32;
            cursor[layer] += 1;
        }
    }

    (0..layers)
        .into_par_iter()
        .map(|layer| {
            let faces = &by_layer[offsets[layer]..offsets[layer + 1]];
            layer_loops(mesh, flipped, faces, planes[layer])
        })
        .collect()
}

type JointMap = HashMap<u64, u32, BuildHasherDefault<VertexHasher>>;

fn layer_loops(mesh: &IndexedMesh, flipped: &[bool], faces: &[u32], plane: f64) -> Vec<Contour> {
    let mut joints = JointMap::default();
    let mut parent: Vec<u32> = Vec::new();
    // Per segment: its first joint, length and twice its shoelace area term.
    let mut segments: Vec<(u32, f64, f64)> = Vec::with_capacity(faces.len());
    let mut joint = |key: u64, parent: &mut Vec<u32>| {
        *joints.entry(key).or_insert_with(|| {
            parent.push(parent.len() as u32);
            parent.len() as u32 - 1
        })
    };
    for &index in faces {
        let face = mesh.faces[index as usize];
        let corners = face.map(|v| mesh.vertices[v as usize].map(f64::from));
        let Some(((p, key_p), (q, key_q))) = crossing(face, corners, plane) else { continue };
        // Orient as `slice` does: the part lies to the segment's left.
        let [a, b, c] = corners;
        let normal = cross(sub(b, a), sub(c, a));
        let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
        let flip = if flipped.get(index as usize).copied().unwrap_or(false) { -1.0 } else { 1.0 };
        let (p, q) = if (dy * normal[0] - dx * normal[1]) * flip >= 0.0 { (p, q) } else { (q, p) };
        let (jp, jq) = (joint(key_p, &mut parent), joint(key_q, &mut parent));
        union(&mut parent, jp, jq);
        segments.push((jp, dx.hypot(dy), p[0] * q[1] - q[0] * p[1]));
    }
    let mut loops: HashMap<u32, Contour> = HashMap::new();
    for (first, length, twice_area) in segments {
        let root = find(&mut parent, first);
        let contour = loops.entry(root).or_insert(Contour { length: 0.0, area: 0.0 });
        contour.length += length;
        contour.area += twice_area / 2.0;
    }
    let mut loops: Vec<Contour> = loops.into_values().filter(|c| c.length > 0.0).collect();
    // Largest first, so the order does not depend on hashing.
    loops.sort_by(|x, y| y.area.abs().total_cmp(&x.area.abs()).then(y.length.total_cmp(&x.length)));
    loops
}

/// A point where a layer's plane cuts a mesh edge, and the edge's key (its
/// two vertex indices, lower first).
type Joint = ([f64; 2], u64);

/// Where the plane cuts the face: two points, each named by the mesh edge
/// it lies on. A corner on the plane counts as above it, like `slice::cut`.
fn crossing(face: [u32; 3], corners: [[f64; 3]; 3], z: f64) -> Option<(Joint, Joint)> {
    let mut found: [Joint; 2] = [([0.0; 2], 0); 2];
    let mut count = 0;
    for (i, j) in [(0, 1), (1, 2), (2, 0)] {
        let (u, v) = (corners[i], corners[j]);
        if (u[2] >= z) != (v[2] >= z) {
            let t = (z - u[2]) / (v[2] - u[2]);
            let (lo, hi) = (face[i].min(face[j]), face[i].max(face[j]));
            if count < 2 {
                found[count] =
                    ([u[0] + t * (v[0] - u[0]), u[1] + t * (v[1] - u[1])], (u64::from(lo) << 32) | u64::from(hi));
            }
            count += 1;
        }
    }
    (count == 2).then_some((found[0], found[1]))
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb) as usize] = ra.min(rb);
    }
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(u: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
}

#[cfg(test)]
mod tests {
    use crate::{AnalysisOptions, Layering, Triangle, analyze_triangles, cuboid};

    fn moved(t: Vec<Triangle>, by: [f32; 3]) -> Vec<Triangle> {
        t.into_iter().map(|f| f.map(|v| [v[0] + by[0], v[1] + by[1], v[2] + by[2]])).collect()
    }

    fn layered(triangles: Vec<Triangle>) -> crate::Slices {
        let options = AnalysisOptions { layering: Some(Layering::uniform(1.0)), ..AnalysisOptions::default() };
        analyze_triangles(triangles, &options).slices.unwrap()
    }

    #[test]
    fn four_separate_boxes_are_four_islands() {
        let mut t = Vec::new();
        for (x, y) in [(0.0, 0.0), (30.0, 0.0), (0.0, 30.0), (30.0, 30.0)] {
            t.extend(moved(cuboid([15.0, 15.0, 5.0]), [x, y, 0.0]));
        }
        let s = layered(t);
        for loops in &s.contours {
            assert_eq!(loops.len(), 4, "{loops:?}");
            for c in loops {
                assert!((c.length - 60.0).abs() < 1e-9 && (c.area - 225.0).abs() < 1e-9, "{c:?}");
            }
        }
    }

    #[test]
    fn a_hollow_box_has_an_island_and_a_hole_where_the_void_is() {
        let mut t = cuboid([30.0; 3]);
        t.extend(moved(cuboid([20.0; 3]), [5.0; 3]).into_iter().map(|[a, b, c]| [a, c, b]));
        let s = layered(t);
        assert_eq!(s.contours[2].len(), 1, "below the void: {:?}", s.contours[2]);
        let middle = &s.contours[15];
        assert_eq!(middle.len(), 2, "{middle:?}");
        assert!((middle[0].area - 900.0).abs() < 1e-9 && (middle[0].length - 120.0).abs() < 1e-9);
        assert!(middle[1].is_hole() && (middle[1].area + 400.0).abs() < 1e-9 && (middle[1].length - 80.0).abs() < 1e-9);
        // The loops add up to the layer's totals.
        let area: f64 = middle.iter().map(|c| c.area).sum();
        assert!((area - s.area[15]).abs() < 1e-9);
    }
}
