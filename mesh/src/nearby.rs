//! The second step of the default weld: close the edges the exact weld left
//! open by matching their vertices within a tolerance, as admesh's and
//! PrusaSlicer's nearby check do.
//!
//! CAD exporters that compute a shared point once per facet (a pole, the
//! seam of a revolved patch) write copies that differ in the last digits.
//! The exact weld keeps them apart and the part reads as open. Here each
//! open edge looks for another open edge whose ends lie within the
//! tolerance of its own (walked the other way, or the same way when the
//! neighbour is wound against it); matched ends become one vertex.
//!
//! Only vertices on open edges move, and only when a whole edge pairs up,
//! so a closed mesh is never touched and a thin wall is not zipped to
//! itself. A merge that would collapse a face (two of its corners becoming
//! one vertex) or give an edge a third face is undone for its whole cluster. Work is bounded: each vertex
//! looks at a fixed number of candidates, whatever the file does.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::contours::{find, union};
use crate::weld::IndexedMesh;

/// The tolerance is this share of the part's bounding-box diagonal...
const DIAGONAL_SHARE: f64 = 1e-5;
/// ...but at least this share of its largest coordinate (about eight units
/// in the last place of an `f32`), so a part far from the origin, whose
/// copies differ by rounding at that magnitude, still closes.
const MAGNITUDE_SHARE: f64 = 1.0 / (1u64 << 20) as f64;
/// Open edges an edge examines around one of its ends: a bound on the work
/// for a file built to put every open edge in one cell.
const MAX_EXAMINED: usize = 256;

/// An edge used by exactly one face, in that face's winding direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenEdge {
    pub(crate) face: u32,
    pub(crate) from: u32,
    pub(crate) to: u32,
}

/// What the nearby step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearbyWeld {
    /// Vertices within this distance (the mesh's units) could be matched.
    pub tolerance: f64,
    /// Open edges the exact weld left, before this step.
    pub open_edges_before: u64,
    /// Vertices merged into another: the vertex count went down by this.
    pub merged_vertices: u64,
}

/// The tolerance for a part with these bounds: scaled to the model.
pub(crate) fn tolerance_for(min: [f64; 3], max: [f64; 3]) -> f64 {
    let diagonal = (0..3).map(|i| (max[i] - min[i]).powi(2)).sum::<f64>().sqrt();
    let magnitude = (0..3).map(|i| min[i].abs().max(max[i].abs())).fold(0.0, f64::max);
    let t = (diagonal * DIAGONAL_SHARE).max(magnitude * MAGNITUDE_SHARE);
    if t.is_finite() && t > 0.0 { t } else { f64::MIN_POSITIVE }
}

/// Matches open edges within `tolerance` and merges their ends in `mesh`.
/// Returns how many vertices were merged (0 leaves `mesh` as it was).
pub(crate) fn close_open_edges(mesh: &mut IndexedMesh, open: &[OpenEdge], tolerance: f64) -> u64 {
    if open.len() < 2 {
        return 0;
    }
    let mut ends: Vec<u32> = open.iter().flat_map(|e| [e.from, e.to]).collect();
    ends.sort_unstable();
    ends.dedup();
    let position = |v: u32| mesh.vertices[v as usize].map(f64::from);
    let distance = |a: u32, b: u32| {
        let (p, q) = (position(a), position(b));
        ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2)).sqrt()
    };
    let cell = |v: u32| position(v).map(|c| (c / tolerance).floor() as i64);
    // Both ends of every open edge, filed by grid cell.
    let mut by_cell: HashMap<[i64; 3], Vec<u32>> = HashMap::with_capacity(open.len());
    for (index, e) in open.iter().enumerate() {
        by_cell.entry(cell(e.from)).or_default().push(index as u32);
        if cell(e.to) != cell(e.from) {
            by_cell.entry(cell(e.to)).or_default().push(index as u32);
        }
    }
    let by_cell = &by_cell;
    let around = |v: u32| {
        let c = cell(v);
        (0..27).filter_map(move |k: i64| {
            let key =
                [c[0].saturating_add(k % 3 - 1), c[1].saturating_add(k / 3 % 3 - 1), c[2].saturating_add(k / 9 - 1)];
            by_cell.get(&key)
        })
    };
    let crowd = |v: u32| around(v).map(Vec::len).sum::<usize>();

    let mut parent: Vec<u32> = (0..ends.len() as u32).collect();
    let slot = |v: u32| ends.binary_search(&v).expect("an end of an open edge") as u32;
    let mut matched = vec![false; open.len()];
    for (index, e) in open.iter().enumerate() {
        if matched[index] {
            continue;
        }
        // Candidates come from around the end with fewer open edges near
        // it: the exact end, when one end is exact.
        let pivot = if crowd(e.from) <= crowd(e.to) { e.from } else { e.to };
        // (score, same direction, partner, this edge's `from` pairs with, `to` with)
        let mut best: Option<(f64, bool, u32, u32, u32)> = None;
        for &other in around(pivot).flatten().take(MAX_EXAMINED) {
            let o = open[other as usize];
            if other as usize == index || matched[other as usize] || o.face == e.face {
                continue;
            }
            // The neighbour walks the edge the other way (consistent
            // winding), or the same way (wound against it).
            for (same, a, b) in [(false, o.to, o.from), (true, o.from, o.to)] {
                if (a, b) == (e.from, e.to) || a == b {
                    continue;
                }
                let score = distance(e.from, a).max(distance(e.to, b));
                if score > tolerance {
                    continue;
                }
                let better = best.is_none_or(|(s, was_same, p, _, _)| (score, same, other) < (s, was_same, p));
                if better {
                    best = Some((score, same, other, a, b));
                }
            }
        }
        if let Some((_, _, other, a, b)) = best {
            matched[index] = true;
            matched[other as usize] = true;
            union(&mut parent, slot(e.from), slot(a));
            union(&mut parent, slot(e.to), slot(b));
        }
    }

    // Each cluster's vertex becomes its lowest id: `union` keeps the lower
    // slot as the root, and slots are in vertex order.
    let representative: Vec<u32> = (0..ends.len() as u32).map(|s| ends[find(&mut parent, s) as usize]).collect();
    if representative.iter().zip(&ends).all(|(r, v)| r == v) {
        return 0;
    }
    let mut remap: Vec<u32> = (0..mesh.vertices.len() as u32).collect();
    for (&v, &r) in ends.iter().zip(&representative) {
        remap[v as usize] = r;
    }
    let undone = harmful_clusters(&mesh.faces, &remap, &ends);
    if !undone.is_empty() {
        for &v in &ends {
            if undone.contains(&remap[v as usize]) {
                remap[v as usize] = v;
            }
        }
    }
    // Compact: survivors keep their order, merged vertices are dropped.
    let mut new_id = vec![u32::MAX; mesh.vertices.len()];
    let mut vertices = Vec::with_capacity(mesh.vertices.len());
    for (v, &r) in remap.iter().enumerate() {
        if r as usize == v {
            new_id[v] = vertices.len() as u32;
            vertices.push(mesh.vertices[v]);
        }
    }
    let merged = (mesh.vertices.len() - vertices.len()) as u64;
    if merged == 0 {
        return 0;
    }
    mesh.faces.par_iter_mut().with_min_len(4096).for_each(|f| *f = f.map(|v| new_id[remap[v as usize] as usize]));
    mesh.vertices = vertices;
    merged
}

/// The clusters (named by their representative) whose merge would do harm:
/// fold a face onto itself (two of its corners become one vertex), or give
/// an edge a third use (a non-manifold edge that was not there before).
/// Undoing such a cluster only splits edges, so one round is enough.
fn harmful_clusters(faces: &[[u32; 3]], remap: &[u32], ends: &[u32]) -> HashSet<u32> {
    let mut clustered = vec![false; remap.len()];
    for &v in ends {
        let r = remap[v as usize];
        if r != v {
            clustered[v as usize] = true;
            clustered[r as usize] = true;
        }
    }
    let touched: Vec<[u32; 3]> =
        faces.par_iter().with_min_len(4096).filter(|f| f.iter().any(|&v| clustered[v as usize])).copied().collect();
    let mut harmful = HashSet::new();
    // Per merged edge: its uses, and whether any of them moved.
    let mut uses: HashMap<(u32, u32), (u32, bool)> = HashMap::with_capacity(touched.len() * 3);
    for f in &touched {
        let m = f.map(|v| remap[v as usize]);
        for (i, j) in [(0, 1), (1, 2), (2, 0)] {
            if m[i] == m[j] {
                if f[i] != f[j] {
                    harmful.insert(m[i]);
                }
                continue;
            }
            let entry = uses.entry((m[i].min(m[j]), m[i].max(m[j]))).or_insert((0, false));
            entry.0 += 1;
            entry.1 |= (f[i], f[j]) != (m[i], m[j]);
        }
    }
    for ((a, b), (count, moved)) in uses {
        if count > 2 && moved {
            harmful.insert(a);
            harmful.insert(b);
        }
    }
    harmful
}
