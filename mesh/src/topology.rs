//! Topology of an indexed mesh: open and non-manifold edges, winding
//! consistency, duplicate faces, and shells (groups of faces joined through
//! shared edges).
//!
//! Edges are found by sorting, not hashing: every face contributes three
//! directed edges keyed by their two vertex ids, a parallel sort brings the
//! uses of one edge together, and one pass over the runs classifies them. The
//! result does not depend on face order, unlike hash-table edge matching.
//!
//! Shells follow trimesh's rule: two faces are joined when they share an edge
//! that exactly two faces use. A non-manifold edge (three or more faces) joins
//! nothing, so parts that merely touch along an edge stay separate.

use rayon::prelude::*;

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
        let edges = sorted_edges(mesh);

        let faces = mesh.faces.len();
        let mut shells = UnionFind::new(faces);
        let mut open = vec![false; faces];
        let mut boundary_edges = 0;
        let mut nonmanifold_edges = 0;
        let mut winding_consistent = true;
        for run in edges.chunk_by(|x, y| x.0 == y.0) {
            match run {
                [(_, only)] => {
                    boundary_edges += 1;
                    open[(only >> 1) as usize] = true;
                }
                [(_, first), (_, second)] => {
                    winding_consistent &= (first & 1) != (second & 1);
                    shells.union(first >> 1, second >> 1);
                }
                _ => {
                    nonmanifold_edges += 1;
                    for (_, face) in run {
                        open[(face >> 1) as usize] = true;
                    }
                }
            }
        }
        drop(edges);
        let reoriented = if winding_consistent { vec![false; faces] } else { reorient(mesh) };
        let reoriented_faces = reoriented.iter().filter(|&&r| r).count() as u64;
        let (shell_count, shell) = shells.dense_labels();
        let topology = Topology {
            boundary_edges,
            nonmanifold_edges,
            watertight: boundary_edges == 0 && nonmanifold_edges == 0,
            winding_consistent,
            shells: shell_count,
            duplicate_faces: duplicate_faces(mesh),
            reoriented_faces,
        };
        (topology, FaceLabels { shell, open, reoriented })
    }
}

/// Every face's three directed edges, sorted so the uses of one edge are
/// adjacent: (undirected edge key, face id << 1 | direction bit).
fn sorted_edges(mesh: &IndexedMesh) -> Vec<(u64, u32)> {
    let mut edges: Vec<(u64, u32)> = mesh
        .faces
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .flat_map_iter(|(face, &[a, b, c])| {
            [(a, b), (b, c), (c, a)].into_iter().filter(|(from, to)| from != to).map(move |(from, to)| {
                // The key names the undirected edge; the low bit of the
                // payload remembers which way this face walks it.
                let key = (u64::from(from.min(to)) << 32) | u64::from(from.max(to));
                (key, ((face as u32) << 1) | u32::from(from < to))
            })
        })
        .collect();
    edges.par_sort_unstable();
    edges
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
    for run in sorted_edges(mesh).chunk_by(|x, y| x.0 == y.0) {
        if let [(_, first), (_, second)] = run {
            let disagree = (first & 1) == (second & 1);
            pairs.push((first >> 1, second >> 1, disagree));
            pairs.push((second >> 1, first >> 1, disagree));
        }
    }
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

fn duplicate_faces(mesh: &IndexedMesh) -> u64 {
    let mut sorted: Vec<[u32; 3]> = mesh
        .faces
        .par_iter()
        .map(|face| {
            let mut f = *face;
            f.sort_unstable();
            f
        })
        .collect();
    sorted.par_sort_unstable();
    sorted.windows(2).filter(|pair| pair[0] == pair[1]).count() as u64
}

/// Disjoint sets over face ids, with path halving and union by size.
struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self { parent: (0..n as u32).collect(), size: vec![1; n] }
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
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
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
