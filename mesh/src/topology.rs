//! Topology of an indexed mesh: open and non-manifold edges, winding
//! consistency, and shells (groups of faces joined through shared edges).
//!
//! Edges are found by sorting, not hashing: every face contributes three
//! directed edges keyed by their two vertex ids, a parallel sort brings the
//! uses of one edge together, and one pass over the runs classifies them. The
//! result does not depend on face order, unlike hash-table edge matching.

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
    /// Faces that repeat a vertex after welding (zero-length edges).
    pub degenerate_faces: u64,
}

impl Topology {
    pub fn of(mesh: &IndexedMesh) -> Self {
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

        let mut shells = UnionFind::new(mesh.faces.len());
        let mut boundary_edges = 0;
        let mut nonmanifold_edges = 0;
        let mut winding_consistent = true;
        for run in edges.chunk_by(|x, y| x.0 == y.0) {
            match run {
                [_] => boundary_edges += 1,
                [(_, first), (_, second)] => {
                    winding_consistent &= (first & 1) != (second & 1);
                    shells.union(first >> 1, second >> 1);
                }
                [(_, first), rest @ ..] => {
                    nonmanifold_edges += 1;
                    for (_, other) in rest {
                        shells.union(first >> 1, other >> 1);
                    }
                }
                [] => unreachable!("chunk_by yields non-empty runs"),
            }
        }
        let degenerate_faces = mesh.faces.par_iter().filter(|[a, b, c]| a == b || b == c || a == c).count() as u64;
        Self {
            boundary_edges,
            nonmanifold_edges,
            watertight: boundary_edges == 0 && nonmanifold_edges == 0,
            winding_consistent,
            shells: shells.count_roots(),
            degenerate_faces,
        }
    }
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

    fn count_roots(&self) -> u64 {
        self.parent.iter().enumerate().filter(|&(i, &p)| i as u32 == p).count() as u64
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
                degenerate_faces: 0
            }
        );
    }

    #[test]
    fn removing_a_face_opens_three_edges() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        triangles.pop();
        let t = Topology::of(&IndexedMesh::weld(&triangles));
        assert_eq!((t.boundary_edges, t.watertight), (3, false));
    }

    #[test]
    fn disjoint_parts_are_separate_shells() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        triangles.extend(shifted(&triangles.clone(), 5.0));
        assert_eq!(Topology::of(&IndexedMesh::weld(&triangles)).shells, 2);
    }

    #[test]
    fn one_flipped_face_breaks_winding_consistency() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        let [a, b, c] = triangles[0];
        triangles[0] = [a, c, b];
        let t = Topology::of(&IndexedMesh::weld(&triangles));
        assert!(t.watertight);
        assert!(!t.winding_consistent);
    }
}
