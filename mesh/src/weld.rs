//! Welding: turns a triangle soup into an indexed mesh with shared vertices.
//!
//! The default weld is bit-exact: two corners share a vertex only when their
//! coordinates are the same floats (with -0.0 read as 0.0). That is what
//! admesh's exact mode does, and what a watertight CAD export needs. A weld
//! within a tolerance snaps coordinates to a grid of that pitch first, the way
//! trimesh merges vertices (it rounds to 8 decimals, a pitch of 1e-8); it
//! closes the hairline gaps some CAD exporters leave between patches.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::read::{Triangle, Triangles};

/// How corners become shared vertices.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Weld {
    /// Only bit-identical coordinates are one vertex.
    #[default]
    Exact,
    /// Coordinates that round to the same multiple of the pitch (in file
    /// units) are one vertex.
    Tolerance(f64),
}

/// Vertices and the faces that index them.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedMesh {
    pub vertices: Vec<[f32; 3]>,
    pub faces: Vec<[u32; 3]>,
}

type VertexMap<K> = HashMap<K, u32, BuildHasherDefault<VertexHasher>>;

impl IndexedMesh {
    /// Welds bit-identical corners.
    pub fn weld(triangles: &[Triangle]) -> Self {
        Self::weld_with(triangles, Weld::Exact)
    }

    pub fn weld_with(triangles: &[Triangle], weld: Weld) -> Self {
        match weld {
            Weld::Exact => weld_by_key(triangles, |corner| corner.map(|c| (c + 0.0).to_bits())),
            Weld::Tolerance(pitch) => {
                let pitch = if pitch.is_finite() && pitch > 0.0 { pitch } else { f64::MIN_POSITIVE };
                weld_by_key(triangles, move |corner| corner.map(|c| (f64::from(c) / pitch).round() as i64))
            }
        }
    }
}

/// Slots in the cache of recently seen vertices: 2^14, a few hundred KiB,
/// which stays in the CPU's L2 cache.
const RECENT_BITS: u32 = 14;

fn vertex_hash<K: std::hash::Hash>(key: &K) -> u64 {
    let mut hasher = VertexHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

/// Welds in parallel: corners are split among the threads by hash, so each
/// thread owns a disjoint set of vertices and a table of its own. Every thread
/// reads all corners (a cheap sequential scan) and handles only its share.
fn weld_by_key<K>(triangles: &[Triangle], key: impl Fn([f32; 3]) -> K + Sync) -> IndexedMesh
where
    K: std::hash::Hash + Eq + Copy + Default + Send,
{
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    let partitions = rayon::current_num_threads().clamp(1, 8);
    let part_of = |hash: u64| ((hash >> 20) % partitions as u64) as usize;
    let corner_ids: Vec<AtomicU32> = (0..triangles.len() * 3).map(|_| AtomicU32::new(0)).collect();
    let parts: Vec<Vec<[f32; 3]>> = (0..partitions)
        .into_par_iter()
        .map(|part| {
            let expected = triangles.len() / 2 / partitions + 3;
            let mut index: VertexMap<K> = HashMap::with_capacity_and_hasher(expected, BuildHasherDefault::default());
            // Exporters write neighbouring triangles near each other, so most
            // corners repeat a vertex seen a few hundred triangles ago. A small
            // direct-mapped cache answers those without touching the large
            // table, whose lookups are cache misses and dominate the weld.
            let mut recent: Vec<(K, u32)> = vec![(K::default(), u32::MAX); 1 << RECENT_BITS];
            let mut vertices = Vec::with_capacity(expected);
            for (corner_index, corner) in triangles.iter().flatten().enumerate() {
                let corner = corner.map(|c| c + 0.0);
                let k = key(corner);
                let hash = vertex_hash(&k);
                if part_of(hash) != part {
                    continue;
                }
                let slot = (hash >> (64 - RECENT_BITS)) as usize;
                let (cached, cached_id) = recent[slot];
                let id = if cached_id != u32::MAX && cached == k {
                    cached_id
                } else {
                    let id = *index.entry(k).or_insert_with(|| {
                        vertices.push(corner);
                        (vertices.len() - 1) as u32
                    });
                    recent[slot] = (k, id);
                    id
                };
                corner_ids[corner_index].store(id, Relaxed);
            }
            vertices
        })
        .collect();
    // Local ids become global ones: each partition's vertices follow the
    // previous partitions'.
    let mut offsets = Vec::with_capacity(partitions);
    let mut total = 0u32;
    for part in &parts {
        offsets.push(total);
        total += part.len() as u32;
    }
    let faces = triangles
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .map(|(t, triangle)| {
            std::array::from_fn(|c| {
                let hash = vertex_hash(&key(triangle[c].map(|x| x + 0.0)));
                corner_ids[3 * t + c].load(Relaxed) + offsets[part_of(hash)]
            })
        })
        .collect();
    IndexedMesh { vertices: parts.concat(), faces }
}

impl Triangles for IndexedMesh {
    fn count(&self) -> usize {
        self.faces.len()
    }

    fn triangle(&self, index: usize) -> Triangle {
        self.faces[index].map(|v| self.vertices[v as usize])
    }
}

/// A multiply-rotate hasher for vertex keys. The default SipHash is built to
/// resist hash flooding, which costs a third of the weld on large meshes; a
/// model file cannot choose our table size, so the worst it can do is make a
/// job slow, which the job deadline already bounds.
#[derive(Default, Clone, Copy)]
struct VertexHasher(u64);

impl Hasher for VertexHasher {
    fn finish(&self) -> u64 {
        // A final avalanche, so the table's low bits depend on every input bit.
        let mut h = self.0;
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^ (h >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_i64(&mut self, word: i64) {
        self.write_u64(word as u64);
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
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

    #[test]
    fn a_tolerance_weld_closes_hairline_gaps() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        // Nudge one corner of one face by a millionth.
        triangles[0][0][0] += 1e-6;
        assert_eq!(IndexedMesh::weld(&triangles).vertices.len(), 9);
        assert_eq!(IndexedMesh::weld_with(&triangles, Weld::Tolerance(1e-4)).vertices.len(), 8);
    }
}
