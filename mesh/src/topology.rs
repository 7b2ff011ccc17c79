//! Topology of an indexed mesh: open and non-manifold edges, winding
//! consistency, duplicate faces, and shells (groups of faces joined through
//! shared edges).
//!
//! Edges are found by bucketing, not hashing: every face's three directed
//! edges are filed under their lower vertex (a counting pass and a parallel
//! scatter), each vertex's few entries are sorted, and one pass over the runs
//! classifies them. The result does not depend on face order, unlike
//! hash-table edge matching.
//!
//! Shells follow trimesh's rule: two faces are joined when they share an edge
//! that exactly two faces use. A non-manifold edge (three or more faces) joins
//! nothing, so parts that merely touch along an edge stay separate.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use rayon::prelude::*;

use crate::nearby::OpenEdge;
use crate::weld::IndexedMesh;

/// Edge and connectivity facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// Edges used by exactly one face: holes.
    pub boundary_edges: u64,
    /// Edges used by more than two faces.
    pub nonmanifold_edges: u64,
    /// Every edge is used by exactly two faces.
    pub watertight: bool,
    /// Every edge shared by two faces is traversed in opposite directions by
    /// them, so normals agree across it.
    pub winding_consistent: bool,
    /// Connected components, joined through shared edges.
    pub shells: u64,
    /// Faces that repeat another face's three vertices (in any order).
    pub duplicate_faces: u64,
    /// Faces whose winding disagreed with their shell's and is read reversed
    /// (admesh's "fix normal directions"; zero when the winding is consistent).
    pub reoriented_faces: u64,
}

/// Per-face facts that later passes (shell volumes, printability) need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceLabels {
    /// Dense shell id, `0..shells`, per face.
    pub shell: Vec<u32>,
    /// The face has at least one boundary or non-manifold edge.
    pub open: Vec<bool>,
    /// Read this face's winding reversed, so its shell is wound consistently.
    pub reoriented: Vec<bool>,
}

impl Topology {
    pub fn of(mesh: &IndexedMesh) -> Self {
        Self::with_labels(mesh).0
    }

    pub fn with_labels(mesh: &IndexedMesh) -> (Self, FaceLabels) {
        Self::with_open_edges(mesh, 0, &|_| true)
            .map(|(topology, labels, _)| (topology, labels))
            .expect("never stopped")
    }

    /// [`Topology::with_labels`], and the edges only one face uses (for the
    /// nearby weld): all of them when there are at most `max_open`, none
    /// otherwise (the caller, seeing more boundary edges than that, skips the
    /// step whose memory they would overrun).
    ///
    /// `checkpoint(share)` is called between the passes, each a fraction of
    /// a second on millions of faces, so a cancellation is heard within one;
    /// `false` stops the work (`None`).
    pub(crate) fn with_open_edges(
        mesh: &IndexedMesh,
        max_open: usize,
        checkpoint: &dyn Fn(f64) -> bool,
    ) -> Option<(Self, FaceLabels, Vec<OpenEdge>)> {
        let edges = EdgeUses::of(mesh, checkpoint)?;
        if !checkpoint(0.5) {
            return None;
        }
        let mut open_edges = Vec::new();

        let faces = mesh.faces.len();
        let mut shells = UnionFind::new(faces);
        let mut open = vec![false; faces];
        let mut boundary_edges = 0;
        let mut nonmanifold_edges = 0;
        let mut winding_consistent = true;
        edges.for_each_edge(|lo, run| match run {
            [only] => {
                boundary_edges += 1;
                let face = ((only & USE_MASK) >> 1) as u32;
                open[face as usize] = true;
                if open_edges.len() < max_open {
                    let hi = (only >> 32) as u32;
                    let (from, to) = if only & 1 == 1 { (lo, hi) } else { (hi, lo) };
                    open_edges.push(OpenEdge { face, from, to });
                }
            }
            [first, second] => {
                winding_consistent &= (first & 1) != (second & 1);
                shells.union(((first & USE_MASK) >> 1) as u32, ((second & USE_MASK) >> 1) as u32);
            }
            _ => {
                nonmanifold_edges += 1;
                for face in run {
                    open[((face & USE_MASK) >> 1) as usize] = true;
                }
            }
        });
        let point_faces = edges.point_faces;
        drop(edges);
        if boundary_edges > max_open as u64 {
            open_edges = Vec::new();
        }
        if !checkpoint(0.7) {
            return None;
        }
        let reoriented = if winding_consistent { vec![false; faces] } else { reorient(mesh) };
        if !checkpoint(0.8) {
            return None;
        }
        let reoriented_faces = reoriented.iter().filter(|&&r| r).count() as u64;
        let (shell_count, shell) = shells.dense_labels();
        let duplicate_faces = if nonmanifold_edges == 0 && point_faces < 2 {
            duplicates_in_pillows(mesh, &shell, shell_count)
        } else {
            duplicate_faces(mesh, &|share| checkpoint(0.8 + 0.2 * share))?
        };
        if !checkpoint(1.0) {
            return None;
        }
        let topology = Topology {
            boundary_edges,
            nonmanifold_edges,
            watertight: boundary_edges == 0 && nonmanifold_edges == 0,
            winding_consistent,
            shells: shell_count,
            duplicate_faces,
            reoriented_faces,
        };
        Some((topology, FaceLabels { shell, open, reoriented }, open_edges))
    }
}

/// Every use of every edge, grouped by edge: for each vertex `lo`, the uses
/// of edges `(lo, hi)` with `hi > lo`, sorted by `hi`. An entry is
/// `hi << 32 | face << 1 | direction`, 8 bytes per use: half of what a global
/// sort of (edge, use) pairs needs, and each vertex's few entries are sorted
/// in cache.
struct EdgeUses {
    start: Vec<u32>,
    entries: Vec<u64>,
    /// Faces whose three corners are one vertex: they have no edge.
    point_faces: u64,
}

impl EdgeUses {
    /// `checkpoint` as for [`Topology::with_open_edges`], between its three
    /// passes (counting, filing, sorting).
    fn of(mesh: &IndexedMesh, checkpoint: &dyn Fn(f64) -> bool) -> Option<Self> {
        let vertices = mesh.vertices.len();
        let directed = |&[a, b, c]: &[u32; 3]| [(a, b), (b, c), (c, a)].into_iter().filter(|(x, y)| x != y);
        let counts: Vec<AtomicU32> = (0..vertices).map(|_| AtomicU32::new(0)).collect();
        let point_faces = mesh
            .faces
            .par_iter()
            .with_min_len(4096)
            .map(|face| {
                let mut edges = 0;
                for (from, to) in directed(face) {
                    counts[from.min(to) as usize].fetch_add(1, Relaxed);
                    edges += 1;
                }
                u64::from(edges == 0)
            })
            .sum();
        if !checkpoint(0.1) {
            return None;
        }
        let (start, cursor, slots) = buckets(counts);
        mesh.faces.par_iter().enumerate().with_min_len(4096).for_each(|(index, face)| {
            for (from, to) in directed(face) {
                let (lo, hi) = (from.min(to), from.max(to));
                let at = cursor[lo as usize].fetch_add(1, Relaxed) as usize;
                let payload = ((index as u64) << 1) | u64::from(from < to);
                slots[at].store((u64::from(hi) << 32) | payload, Relaxed);
            }
        });
        if !checkpoint(0.25) {
            return None;
        }
        let mut entries: Vec<u64> = slots.into_iter().map(AtomicU64::into_inner).collect();
        // Sort each vertex's entries; blocks of whole vertices go to threads.
        let mut blocks = Vec::new();
        let mut rest = entries.as_mut_slice();
        let mut offset = 0usize;
        let per_block = (start[vertices] as usize / (rayon::current_num_threads() * 8)).max(4096);
        let mut v = 0;
        while v < vertices {
            let first = v;
            while v < vertices && (start[v + 1] as usize - offset) < per_block {
                v += 1;
            }
            v = (v + 1).min(vertices).max(first + 1);
            let end = start[v] as usize;
            let (block, tail) = rest.split_at_mut(end - offset);
            blocks.push((first, v, block));
            rest = tail;
            offset = end;
        }
        blocks.into_par_iter().for_each(|(first, last, block)| {
            let base = start[first] as usize;
            for v in first..last {
                block[start[v] as usize - base..start[v + 1] as usize - base].sort_unstable();
            }
        });
        Some(Self { start, entries, point_faces })
    }

    /// Each edge's lower vertex and its uses, as `hi << 32 | face << 1 |
    /// direction` values, one slice per edge.
    fn for_each_edge(&self, mut visit: impl FnMut(u32, &[u64])) {
        for v in 0..self.start.len() - 1 {
            let bucket = &self.entries[self.start[v] as usize..self.start[v + 1] as usize];
            for run in bucket.chunk_by(|x, y| x >> 32 == y >> 32) {
                visit(v as u32, run);
            }
        }
    }
}

const USE_MASK: u64 = 0xFFFF_FFFF;

/// The buckets of a counting sort by vertex, from each vertex's count: where
/// each vertex's entries start in one flat array (the total last), a cursor
/// per vertex to file entries in parallel, and the slots they are filed into.
fn buckets(counts: Vec<AtomicU32>) -> (Vec<u32>, Vec<AtomicU32>, Vec<AtomicU64>) {
    let vertices = counts.len();
    let mut start = Vec::with_capacity(vertices + 1);
    let mut total = 0u32;
    start.push(0);
    for count in counts {
        total += count.into_inner();
        start.push(total);
    }
    let cursor = start[..vertices].iter().map(|&s| AtomicU32::new(s)).collect();
    let slots = (0..total).map(|_| AtomicU64::new(0)).collect();
    (start, cursor, slots)
}

/// Chooses, per face, whether to read its winding reversed, so that faces
/// sharing a manifold edge walk it in opposite directions. A breadth-first
/// walk over the manifold edges propagates one orientation through each
/// shell; each shell then keeps whichever orientation most of its faces had,
/// so the fewest faces change. Only runs on meshes that need it.
fn reorient(mesh: &IndexedMesh) -> Vec<bool> {
    let faces = mesh.faces.len();
    // Adjacency in compressed rows: neighbour face and "walks the shared edge
    // the same way" (they disagree).
    let mut pairs: Vec<(u32, u32, bool)> = Vec::new();
    EdgeUses::of(mesh, &|_| true).expect("never stopped").for_each_edge(|_, run| {
        if let [first, second] = run {
            let disagree = (first & 1) == (second & 1);
            let (a, b) = (((first & USE_MASK) >> 1) as u32, ((second & USE_MASK) >> 1) as u32);
            pairs.push((a, b, disagree));
            pairs.push((b, a, disagree));
        }
    });
    pairs.sort_unstable_by_key(|p| p.0);
    let mut start = vec![0usize; faces + 1];
    for p in &pairs {
        start[p.0 as usize + 1] += 1;
    }
    for i in 0..faces {
        start[i + 1] += start[i];
    }
    let mut flip = vec![false; faces];
    let mut seen = vec![false; faces];
    let mut queue = std::collections::VecDeque::new();
    let mut component = Vec::new();
    for root in 0..faces {
        if seen[root] {
            continue;
        }
        seen[root] = true;
        queue.push_back(root);
        component.clear();
        while let Some(face) = queue.pop_front() {
            component.push(face);
            for &(_, neighbour, disagree) in &pairs[start[face]..start[face + 1]] {
                let neighbour = neighbour as usize;
                if !seen[neighbour] {
                    seen[neighbour] = true;
                    flip[neighbour] = flip[face] ^ disagree;
                    queue.push_back(neighbour);
                }
            }
        }
        let flipped = component.iter().filter(|&&f| flip[f]).count();
        if flipped * 2 > component.len() {
            component.iter().for_each(|&f| flip[f] = !flip[f]);
        }
    }
    flip
}

/// The duplicate faces of a mesh with no non-manifold edge and at most one
/// face without edges, from its shells alone, without filing every face.
///
/// Two faces on the same three distinct vertices both use each of the three
/// edges; with no edge used by more than two faces, no other face uses them,
/// so the two make a shell of their own (a "pillow"). Two faces on two
/// vertices use their one edge four times, which is non-manifold. So such a
/// mesh's duplicates are the pillows whose two faces share their corners,
/// and only the shells of two faces need a look.
fn duplicates_in_pillows(mesh: &IndexedMesh, shell: &[u32], shells: u64) -> u64 {
    let mut sizes = vec![0u32; shells as usize];
    for &s in shell {
        sizes[s as usize] += 1;
    }
    if !sizes.contains(&2) {
        return 0;
    }
    let sorted = |face: usize| {
        let mut f = mesh.faces[face];
        f.sort_unstable();
        f
    };
    // Per two-face shell, its first face.
    let mut first = vec![u32::MAX; shells as usize];
    let mut duplicates = 0;
    for (face, &s) in shell.iter().enumerate() {
        if sizes[s as usize] != 2 {
            continue;
        }
        match first[s as usize] {
            u32::MAX => first[s as usize] = face as u32,
            other => duplicates += u64::from(sorted(other as usize) == sorted(face)),
        }
    }
    duplicates
}

fn duplicate_faces(mesh: &IndexedMesh, checkpoint: &dyn Fn(f64) -> bool) -> Option<u64> {
    // Two faces with the same corners have the same lowest corner: faces are
    // filed by it (a counting sort, as for the edges), and each vertex's few
    // are compared. Every pass is linear and parallel, with a checkpoint
    // between passes; one global sort of the faces was neither.
    let corners = |face: &[u32; 3]| {
        let mut f = *face;
        f.sort_unstable();
        f
    };
    let vertices = mesh.vertices.len();
    let counts: Vec<AtomicU32> = (0..vertices).map(|_| AtomicU32::new(0)).collect();
    mesh.faces.par_iter().with_min_len(4096).for_each(|face| {
        counts[corners(face)[0] as usize].fetch_add(1, Relaxed);
    });
    if !checkpoint(0.3) {
        return None;
    }
    let (start, cursor, slots) = buckets(counts);
    mesh.faces.par_iter().with_min_len(4096).for_each(|face| {
        let [lo, mid, hi] = corners(face);
        let at = cursor[lo as usize].fetch_add(1, Relaxed) as usize;
        slots[at].store((u64::from(mid) << 32) | u64::from(hi), Relaxed);
    });
    drop(cursor);
    if !checkpoint(0.6) {
        return None;
    }
    let others: Vec<u64> = slots.into_iter().map(AtomicU64::into_inner).collect();
    // Within a vertex's faces, each one equal to an earlier one is a
    // duplicate: m equal faces count m - 1. A crowded vertex (a fan of
    // thousands) is sorted rather than compared pairwise.
    let duplicates = (0..vertices)
        .into_par_iter()
        .with_min_len(4096)
        .map(|v| {
            let faces = &others[start[v] as usize..start[v + 1] as usize];
            if faces.len() <= 32 {
                (1..faces.len()).filter(|&i| faces[..i].contains(&faces[i])).count() as u64
            } else {
                let mut sorted = faces.to_vec();
                sorted.sort_unstable();
                sorted.windows(2).filter(|pair| pair[0] == pair[1]).count() as u64
            }
        })
        .sum();
    Some(duplicates)
}

/// Disjoint sets over face ids, with path halving and union by rank. A
/// rank is at most log2 of the faces, so a byte holds it: this lives beside
/// the edge uses at the analysis's peak, where a `u32` size per face cost
/// 3 MB more per million faces.
struct UnionFind {
    parent: Vec<u32>,
    rank: Vec<u8>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self { parent: (0..n as u32).collect(), rank: vec![0; n] }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grandparent = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.rank[a as usize] < self.rank[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        if self.rank[a as usize] == self.rank[b as usize] {
            self.rank[a as usize] += 1;
        }
    }

    /// Numbers the sets `0..count` in order of their first element.
    fn dense_labels(mut self) -> (u64, Vec<u32>) {
        let n = self.parent.len();
        let mut label_of_root = vec![u32::MAX; n];
        let mut labels = Vec::with_capacity(n);
        let mut count = 0u32;
        for x in 0..n as u32 {
            let root = self.find(x) as usize;
            if label_of_root[root] == u32::MAX {
                label_of_root[root] = count;
                count += 1;
            }
            labels.push(label_of_root[root]);
        }
        (u64::from(count), labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cuboid, read::Triangle};

    fn shifted(triangles: &[Triangle], dx: f32) -> Vec<Triangle> {
        triangles.iter().map(|t| t.map(|[x, y, z]| [x + dx, y, z])).collect()
    }

    #[test]
    fn the_topology_pass_asks_between_its_passes_and_stops_when_told() {
        let mesh = IndexedMesh::weld(&crate::uv_sphere(10.0, 64, 32));
        let asked = std::sync::Mutex::new(Vec::new());
        let stopped = Topology::with_open_edges(&mesh, 0, &|share| {
            asked.lock().unwrap().push(share);
            share < 0.5
        });
        assert!(stopped.is_none());
        assert_eq!(*asked.lock().unwrap(), vec![0.1, 0.25, 0.5], "stopped at the first word after the edges");
        let asked = std::sync::Mutex::new(Vec::new());
        let whole = Topology::with_open_edges(&mesh, 0, &|share| {
            asked.lock().unwrap().push(share);
            true
        });
        assert_eq!(whole.map(|(topology, ..)| topology), Some(Topology::of(&mesh)));
        let asked = asked.into_inner().unwrap();
        // A clean mesh's duplicates come from its shells, with no pass of their own.
        assert!(asked.len() >= 6 && asked.is_sorted() && asked.last() == Some(&1.0), "{asked:?}");
    }

    #[test]
    fn duplicate_faces_count_each_copy_after_the_first_in_any_corner_order() {
        let cube = cuboid([1.0, 1.0, 1.0]);
        let mut triangles = cube.clone();
        // The first face twice more (rotated corners), the second once more.
        let [a, b, c] = cube[0];
        triangles.extend([[b, c, a], [c, a, b], cube[1]]);
        let t = Topology::of(&IndexedMesh::weld(&triangles));
        assert_eq!(t.duplicate_faces, 3);
        // A crowded corner (over 32 faces) is counted the same way.
        let fan: Vec<Triangle> = (0..40)
            .map(|i| {
                let angle = i as f32 * 0.1;
                [[0.0, 0.0, 0.0], [angle.cos(), angle.sin(), 0.0], [angle.cos(), angle.sin(), 1.0]]
            })
            .collect();
        let mut crowded = fan.clone();
        crowded.extend_from_slice(&fan[..5]);
        assert_eq!(Topology::of(&IndexedMesh::weld(&crowded)).duplicate_faces, 5);
    }

    #[test]
    fn duplicates_found_from_the_shells_are_those_filing_every_face_finds() {
        let cube = cuboid([1.0, 1.0, 1.0]);
        let [a, b, c] = cube[0];
        let far = |t: Triangle| t.map(|[x, y, z]| [x + 10.0, y, z]);
        let point = [[5.0, 5.0, 5.0]; 3];
        let cases: Vec<(Vec<Triangle>, u64)> = vec![
            // A pillow: a face and its reverse, a closed shell of two faces.
            ([cube.clone(), vec![far([a, b, c]), far([a, c, b])]].concat(), 1),
            // Two faces on the same corners, wound alike: a shell of two too.
            ([cube.clone(), vec![far([a, b, c]), far([b, c, a])]].concat(), 1),
            // A pillow of two different faces (a sliver's two sides) is none.
            ([cube.clone(), vec![far([a, b, c]), far([a, c, [0.5, 0.5, 0.0]])]].concat(), 0),
            // Faces without edges: one is nothing, two are a duplicate.
            ([cube.clone(), vec![point]].concat(), 0),
            ([cube.clone(), vec![point, point]].concat(), 1),
        ];
        for (index, (triangles, want)) in cases.into_iter().enumerate() {
            let mesh = IndexedMesh::weld(&triangles);
            let t = Topology::of(&mesh);
            assert_eq!(t.duplicate_faces, want, "case {index}");
            assert_eq!(duplicate_faces(&mesh, &|_| true), Some(want), "case {index}");
        }
    }

    #[test]
    fn on_random_small_soups_both_ways_of_counting_duplicates_agree() {
        // Faces drawn from five points, so pillows, repeats, degenerate and
        // point faces all come up; the shortcut must never differ.
        let points = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as usize
        };
        let mut shortcut_taken = 0;
        for _ in 0..3000 {
            let faces = 1 + next(8);
            let triangles: Vec<Triangle> =
                (0..faces).map(|_| [points[next(5)], points[next(5)], points[next(5)]]).collect();
            let mesh = IndexedMesh::weld(&triangles);
            let t = Topology::of(&mesh);
            assert_eq!(Some(t.duplicate_faces), duplicate_faces(&mesh, &|_| true), "{triangles:?}");
            shortcut_taken += usize::from(t.nonmanifold_edges == 0);
        }
        assert!(shortcut_taken > 300, "{shortcut_taken}");
    }

    #[test]
    fn closed_cuboid_is_watertight_with_one_shell() {
        let t = Topology::of(&IndexedMesh::weld(&cuboid([1.0, 2.0, 3.0])));
        assert_eq!(
            t,
            Topology {
                boundary_edges: 0,
                nonmanifold_edges: 0,
                watertight: true,
                winding_consistent: true,
                shells: 1,
                duplicate_faces: 0,
                reoriented_faces: 0,
            }
        );
    }

    #[test]
    fn removing_a_face_opens_three_edges() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        triangles.pop();
        let (t, labels) = Topology::with_labels(&IndexedMesh::weld(&triangles));
        assert_eq!((t.boundary_edges, t.watertight), (3, false));
        assert_eq!(labels.open.iter().filter(|&&o| o).count(), 3, "the three faces around the hole");
    }

    #[test]
    fn disjoint_parts_are_separate_shells() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        triangles.extend(shifted(&triangles.clone(), 5.0));
        let (t, labels) = Topology::with_labels(&IndexedMesh::weld(&triangles));
        assert_eq!(t.shells, 2);
        assert_eq!(labels.shell[..12], [0; 12]);
        assert_eq!(labels.shell[12..], [1; 12]);
    }

    #[test]
    fn one_flipped_face_breaks_winding_consistency() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        let [a, b, c] = triangles[0];
        triangles[0] = [a, c, b];
        let (t, labels) = Topology::with_labels(&IndexedMesh::weld(&triangles));
        assert!(t.watertight);
        assert!(!t.winding_consistent);
        assert_eq!(t.reoriented_faces, 1);
        assert!(labels.reoriented[0] && labels.reoriented[1..].iter().all(|&r| !r));
    }

    #[test]
    fn a_repeated_face_is_a_duplicate_and_makes_edges_non_manifold() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        let [a, b, c] = triangles[3];
        triangles.push([b, c, a]);
        let t = Topology::of(&IndexedMesh::weld(&triangles));
        assert_eq!((t.duplicate_faces, t.nonmanifold_edges, t.watertight), (1, 3, false));
    }
}
