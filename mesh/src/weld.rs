//! Welding: turns a triangle soup into an indexed mesh with shared vertices.
//!
//! The default weld is bit-exact: two corners share a vertex only when their
//! coordinates are the same floats (with -0.0 read as 0.0). This is what
//! admesh's exact mode does and what a watertight CAD export needs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::read::Triangle;

/// Vertices and the faces that index them.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedMesh {
    pub vertices: Vec<[f32; 3]>,
    pub faces: Vec<[u32; 3]>,
}

impl IndexedMesh {
    /// Welds bit-identical corners.
    pub fn weld(triangles: &[Triangle]) -> Self {
        let mut index: HashMap<[u32; 3], u32, BuildHasherDefault<VertexHasher>> =
            HashMap::with_capacity_and_hasher(triangles.len() / 2 + 3, BuildHasherDefault::default());
        let mut vertices = Vec::with_capacity(triangles.len() / 2 + 3);
        let faces = triangles
            .iter()
            .map(|triangle| {
                triangle.map(|corner| {
                    let corner = corner.map(|c| c + 0.0);
                    *index.entry(corner.map(f32::to_bits)).or_insert_with(|| {
                        vertices.push(corner);
                        (vertices.len() - 1) as u32
                    })
                })
            })
            .collect();
        Self { vertices, faces }
    }
}

/// A multiply-rotate hasher for vertex keys. The default SipHash is built to
/// resist hash flooding, which costs a third of the weld on large meshes; a
/// model file cannot choose our table size, so the risk is a slow job, which
/// the job deadline already bounds.
#[derive(Default, Clone, Copy)]
struct VertexHasher(u64);

impl Hasher for VertexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }

    fn write_u32(&mut self, word: u32) {
        self.0 = (self.0.rotate_left(26) ^ u64::from(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, _length: usize) {
        // Array keys hash their length first; it is always 3 here.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuboid;

    #[test]
    fn cuboid_welds_to_eight_vertices() {
        let mesh = IndexedMesh::weld(&cuboid([1.0, 1.0, 1.0]));
        assert_eq!(mesh.vertices.len(), 8);
        assert_eq!(mesh.faces.len(), 12);
    }

    #[test]
    fn negative_zero_welds_with_zero() {
        let t =
            [[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[-0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]];
        assert_eq!(IndexedMesh::weld(&t).vertices.len(), 4);
    }
}
