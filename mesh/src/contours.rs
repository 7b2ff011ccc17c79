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
//!
//! Memory is bounded: the faces are bucketed by layer one band of layers at
//! a time (a few million crossings), and what the tracing holds is worked
//! out from the slicing's spans and checked against the budget before it
//! starts.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rayon::prelude::*;

use crate::bounds;
use crate::observe::{Observer, Stage, Ticker, Watch};
use crate::slice::Slices;
use crate::weld::{IndexedMesh, VertexHasher};
use crate::{AnalyzeError, Limits};

/// One closed loop of a layer's section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contour {
    /// Loop length, file units.
    pub length: f64,
    /// Enclosed area, positive for an island's outline and negative for a
    /// hole, file units squared.
    pub area: f64,
    /// The loop's joints by how sharply it turns there: `turns[k]` counts the
    /// turns from `TURN_BINS_DEG[k]` up to the next bin's edge (the last bin
    /// has no upper edge). Gentler turns, such as a tessellated circle's,
    /// are not counted. A printer's head slows down at a turn, the more the
    /// sharper it is; what that costs depends on the feed and the jerk,
    /// which are the process model's business, not the mesh's.
    pub turns: [u32; 4],
}

/// The lower edges of [`Contour::turns`]' bins, degrees.
pub const TURN_BINS_DEG: [f64; 4] = [15.0, 30.0, 45.0, 60.0];

impl Contour {
    pub fn is_hole(&self) -> bool {
        self.area < 0.0
    }
}

/// How the contours of a slicing will be traced: the crossings per layer
/// (from the spans alone) and the band size, with their memory checked.
pub(crate) struct Plan {
    per_layer: Vec<u64>,
    total: u64,
    band: u64,
}

impl Plan {
    /// Counts each layer's crossings from `spans` (the planes each face
    /// crosses) and checks what the tracing will hold: one band of at most
    /// [`bounds::BAND_CROSSINGS`] crossings (a layer with more is a band of
    /// its own), each thread's layer, and the loops, at worst one per
    /// crossing; `resident` is what the caller already holds.
    pub(crate) fn new(spans: &[[u32; 2]], layers: usize, limits: &Limits, resident: u64) -> Result<Self, AnalyzeError> {
        // A difference array: +1 where a face's span starts, -1 where it ends.
        let mut per_layer = vec![0i64; layers + 1];
        for &[first, last] in spans {
            per_layer[first as usize] += 1;
            per_layer[last as usize] -= 1;
        }
        let mut running = 0i64;
        let per_layer: Vec<u64> = per_layer[..layers]
            .iter()
            .map(|d| {
                running += d;
                running as u64
            })
            .collect();
        let total: u64 = per_layer.iter().sum();
        let widest = per_layer.iter().copied().max().unwrap_or(0);
        let band = bounds::BAND_CROSSINGS.max(widest).min(total);
        let threads = rayon::current_num_threads() as u64;
        let needed = resident.saturating_add(bounds::contours(band, widest, threads, total, layers as u64));
        bounds::check_memory(limits, "tracing the contours", needed)?;
        Ok(Self { per_layer, total, band })
    }
}

/// The loops of every layer of `slices`, cut from `mesh` at the same planes.
/// `flipped[i]` reverses face `i`, as for slicing; `spans[i]` are the planes
/// face `i` crosses, as slicing found them.
///
/// Layers are traced in bands (see [`Plan`]), so what is held at once is one
/// band's faces, not every face–layer pair.
pub(crate) fn trace(
    mesh: &IndexedMesh,
    flipped: &[bool],
    slices: &Slices,
    spans: &[[u32; 2]],
    plan: &Plan,
    observer: &dyn Observer,
) -> Result<Vec<Vec<Contour>>, AnalyzeError> {
    let planes = &slices.z;
    let layers = planes.len();
    let Plan { per_layer, total, band } = plan;
    let (total, band) = (*total, *band);
    let watch = Watch::new(observer, Stage::Slicing, (0.3, 1.0), total.saturating_add(mesh.faces.len() as u64));
    let mut contours = Vec::with_capacity(layers);
    let mut start = 0;
    while start < layers {
        // The band: layers from `start` while their crossings fit.
        let mut end = start + 1;
        let mut crossings = per_layer[start];
        while end < layers && crossings + per_layer[end] <= band {
            crossings += per_layer[end];
            end += 1;
        }
        // Bucket the band's faces by layer, in face order: offsets, then
        // one fill pass over the faces.
        let mut offsets = vec![0usize; end - start + 1];
        for layer in start..end {
            offsets[layer - start + 1] = offsets[layer - start] + per_layer[layer] as usize;
        }
        let mut cursor = offsets.clone();
        let mut by_layer = vec![0u32; offsets[end - start]];
        for (index, &[first, last]) in spans.iter().enumerate() {
            for layer in (first as usize).max(start)..(last as usize).min(end) {
                by_layer[cursor[layer - start]] = index as u32;
                cursor[layer - start] += 1;
            }
        }
        if !watch.tick(mesh.faces.len() as u64) {
            break;
        }
        let traced: Vec<Vec<Contour>> = (start..end)
            .into_par_iter()
            .map_init(
                || Ticker::new(&watch),
                |ticker, layer| {
                    let faces = &by_layer[offsets[layer - start]..offsets[layer - start + 1]];
                    layer_loops(mesh, flipped, faces, planes[layer], ticker)
                },
            )
            .collect();
        contours.extend(traced);
        if watch.stopped() {
            break;
        }
        start = end;
    }
    watch.finish()?;
    Ok(contours)
}

type JointMap = HashMap<u64, u32, BuildHasherDefault<VertexHasher>>;

/// One layer's loops; an empty list once `ticker` says stop.
fn layer_loops(
    mesh: &IndexedMesh,
    flipped: &[bool],
    faces: &[u32],
    plane: f64,
    ticker: &mut Ticker<'_, '_>,
) -> Vec<Contour> {
    let mut joints = JointMap::default();
    let mut parent: Vec<u32> = Vec::new();
    // Per joint: the unit direction of the segment that ends there and of
    // the one that starts there (NaN until seen), for the turn it makes.
    let mut turns: Vec<[f32; 4]> = Vec::new();
    // Per segment: its first joint, length and twice its shoelace area term.
    let mut segments: Vec<(u32, f64, f64)> = Vec::with_capacity(faces.len());
    let mut joint = |key: u64, parent: &mut Vec<u32>, turns: &mut Vec<[f32; 4]>| {
        *joints.entry(key).or_insert_with(|| {
            parent.push(parent.len() as u32);
            turns.push([f32::NAN; 4]);
            parent.len() as u32 - 1
        })
    };
    for &index in faces {
        if !ticker.add(1) {
            return Vec::new();
        }
        let face = mesh.faces[index as usize];
        let corners = face.map(|v| mesh.vertices[v as usize].map(f64::from));
        let Some(((p, key_p), (q, key_q))) = crossing(face, corners, plane) else { continue };
        // Orient as `slice` does: the part lies to the segment's left.
        let [a, b, c] = corners;
        let normal = cross(sub(b, a), sub(c, a));
        let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
        let flip = if flipped.get(index as usize).copied().unwrap_or(false) { -1.0 } else { 1.0 };
        let ((p, key_p), (q, key_q)) = if (dy * normal[0] - dx * normal[1]) * flip >= 0.0 {
            ((p, key_p), (q, key_q))
        } else {
            ((q, key_q), (p, key_p))
        };
        let (jp, jq) = (joint(key_p, &mut parent, &mut turns), joint(key_q, &mut parent, &mut turns));
        union(&mut parent, jp, jq);
        let length = dx.hypot(dy);
        if length > 0.0 {
            let (ux, uy) = (((q[0] - p[0]) / length) as f32, ((q[1] - p[1]) / length) as f32);
            turns[jp as usize][2..].copy_from_slice(&[ux, uy]);
            turns[jq as usize][..2].copy_from_slice(&[ux, uy]);
        }
        segments.push((jp, length, p[0] * q[1] - q[0] * p[1]));
    }
    let mut loops: HashMap<u32, Contour> = HashMap::new();
    for (first, length, twice_area) in segments {
        let root = find(&mut parent, first);
        let contour = loops.entry(root).or_insert(Contour { length: 0.0, area: 0.0, turns: [0; 4] });
        contour.length += length;
        contour.area += twice_area / 2.0;
    }
    // The turn between the directions in and out of each joint; a joint
    // with a direction missing (a zero-length segment, an open end) turns
    // by none. A hair of slack, so a hexagon's 60° turns land in the 60°
    // bin whatever the rounding.
    let edges = TURN_BINS_DEG.map(|deg| deg.to_radians().cos() as f32 + 1e-4);
    for (joint, [in_x, in_y, out_x, out_y]) in turns.into_iter().enumerate() {
        let cos = in_x * out_x + in_y * out_y;
        if let Some(bin) = edges.iter().rposition(|&edge| cos <= edge) {
            let root = find(&mut parent, joint as u32);
            if let Some(contour) = loops.get_mut(&root) {
                contour.turns[bin] += 1;
            }
        }
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

/// The root of `x` in a union-find over `parent`, halving the path.
pub(crate) fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

/// Joins the sets of `a` and `b`; the lower root stays the root.
pub(crate) fn union(parent: &mut [u32], a: u32, b: u32) {
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

    /// A prism over a polygon that is star-shaped about the origin, listed
    /// counter-clockwise: side walls and fan caps, wound outward.
    fn prism(outline: &[[f32; 2]], height: f32) -> Vec<Triangle> {
        let mut t = Vec::new();
        for (i, a) in outline.iter().enumerate() {
            let b = outline[(i + 1) % outline.len()];
            let (a0, b0, a1, b1) = ([a[0], a[1], 0.0], [b[0], b[1], 0.0], [a[0], a[1], height], [b[0], b[1], height]);
            t.extend([[a0, b0, b1], [a0, b1, a1], [[0.0, 0.0, 0.0], b0, a0], [[0.0, 0.0, height], a1, b1]]);
        }
        t
    }

    fn ring(points: usize, radius: impl Fn(usize) -> f32) -> Vec<[f32; 2]> {
        (0..points)
            .map(|i| {
                let angle = i as f32 * std::f32::consts::TAU / points as f32;
                [radius(i) * angle.cos(), radius(i) * angle.sin()]
            })
            .collect()
    }

    #[test]
    fn turns_are_binned_by_angle_and_a_tessellated_circle_has_none() {
        let corners = |triangles: Vec<Triangle>| {
            let s = layered(triangles);
            let middle = &s.contours[s.contours.len() / 2];
            assert_eq!(middle.len(), 1, "{middle:?}");
            middle[0].turns
        };
        assert_eq!(corners(cuboid([20.0, 10.0, 5.0])), [0, 0, 0, 4]);
        assert_eq!(corners(prism(&ring(6, |_| 10.0), 5.0)), [0, 0, 0, 6], "a hexagon turns 60° at each corner");
        assert_eq!(corners(prism(&ring(8, |_| 10.0), 5.0)), [0, 0, 8, 0], "an octagon turns 45°");
        assert_eq!(corners(prism(&ring(16, |_| 10.0), 5.0)), [16, 0, 0, 0], "a 16-gon turns 22.5°");
        assert_eq!(corners(prism(&ring(128, |_| 10.0), 5.0)), [0; 4], "a 128-gon turns under 3°");
        // A 12-pointed star: every tip and every notch is a sharp corner.
        assert_eq!(corners(prism(&ring(24, |i| if i % 2 == 0 { 15.0 } else { 6.0 }), 5.0)), [0, 0, 0, 24]);
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
