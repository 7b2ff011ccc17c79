//! Welding: turns a triangle soup into an indexed mesh with shared vertices.
//!
//! The welder is bit-exact: two corners share a vertex only when their
//! coordinates are the same floats (with -0.0 read as 0.0). That is what
//! admesh's exact mode does, and what a watertight CAD export needs. The
//! default analysis then closes the edges left open by matching vertices
//! within a tolerance scaled to the model (`nearby.rs`), as slicers do. A
//! weld within a given pitch instead snaps coordinates to a grid of that
//! pitch first, the way trimesh merges vertices (it rounds to 8 decimals, a
//! pitch of 1e-8).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::read::{Triangle, Triangles};

/// How corners become shared vertices.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Weld {
    /// Only bit-identical coordinates are one vertex (`--weld-tolerance 0`).
    Exact,
    /// Exact first; then the edges left open are closed by matching their
    /// vertices within a tolerance scaled to the model, as admesh's and
    /// PrusaSlicer's nearby check do. The default.
    #[default]
    Nearby,
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
        let mut welder = Welder::new(weld);
        welder.reserve(triangles.len());
        welder.push(triangles);
        welder.finish()
    }
}

/// Welds triangles handed over in chunks, so a large file never needs to be
/// held as a whole soup: only the vertices and faces it welds to.
///
/// Corners are split among the threads by hash, so each thread owns a
/// disjoint set of vertices and a table of its own; every thread reads each
/// chunk (a cheap sequential scan) and handles only its share.
#[derive(Debug)]
pub struct Welder {
    parts: Parts,
    /// Per corner: the owning partition in the top bits, its local id below.
    faces: Vec<[u32; 3]>,
}

#[derive(Debug)]
enum Parts {
    Exact(Vec<Part<[u32; 3]>>),
    Grid(f64, Vec<Part<[i64; 3]>>),
}

/// Local ids use the low bits of a face entry; the partition the top three.
const LOCAL_BITS: u32 = 29;
const MAX_PARTITIONS: usize = 1 << (32 - LOCAL_BITS);

#[derive(Debug)]
struct Part<K> {
    index: VertexMap<K>,
    /// Exporters write neighbouring triangles near each other, so most
    /// corners repeat a vertex seen a few hundred triangles ago. This small
    /// direct-mapped cache answers those without touching the large table,
    /// whose lookups are cache misses and dominate the weld.
    recent: Vec<(K, u32)>,
    vertices: Vec<[f32; 3]>,
}

impl<K: std::hash::Hash + Eq + Copy + Default + Send> Part<K> {
    fn reserve(&mut self, vertices: usize) {
        self.index.reserve(vertices);
        self.vertices.reserve(vertices);
    }

    fn new() -> Self {
        Self {
            index: VertexMap::default(),
            recent: vec![(K::default(), u32::MAX); 1 << RECENT_BITS],
            vertices: Vec::new(),
        }
    }
}

impl Welder {
    pub fn new(weld: Weld) -> Self {
        let partitions = rayon::current_num_threads().clamp(1, MAX_PARTITIONS);
        let parts = match weld {
            Weld::Exact | Weld::Nearby => Parts::Exact((0..partitions).map(|_| Part::new()).collect()),
            Weld::Tolerance(pitch) => {
                let pitch = if pitch.is_finite() && pitch > 0.0 { pitch } else { f64::MIN_POSITIVE };
                Parts::Grid(pitch, (0..partitions).map(|_| Part::new()).collect())
            }
        };
        Self { parts, faces: Vec::new() }
    }

    /// Makes room for `triangles` more triangles up front, so the tables and
    /// the face list never grow by copying (which costs time, and memory
    /// while old and new copies coexist).
    pub fn reserve(&mut self, triangles: usize) {
        self.faces.reserve_exact(triangles);
        // A closed mesh has about half as many vertices as triangles.
        let per_part = |n: usize| triangles / 2 / n.max(1) + 16;
        match &mut self.parts {
            Parts::Exact(parts) => {
                let n = parts.len();
                parts.iter_mut().for_each(|p| p.reserve(per_part(n)));
            }
            Parts::Grid(_, parts) => {
                let n = parts.len();
                parts.iter_mut().for_each(|p| p.reserve(per_part(n)));
            }
        }
    }

    /// Welds the next chunk of triangles.
    pub fn push(&mut self, triangles: &[Triangle]) {
        match &mut self.parts {
            Parts::Exact(parts) => push_chunk(parts, &mut self.faces, triangles, |c| c.map(f32::to_bits)),
            Parts::Grid(pitch, parts) => {
                let pitch = *pitch;
                push_chunk(parts, &mut self.faces, triangles, move |c| c.map(|x| (f64::from(x) / pitch).round() as i64))
            }
        }
    }

    pub fn finish(self) -> IndexedMesh {
        let sizes: Vec<usize> = match &self.parts {
            Parts::Exact(parts) => parts.iter().map(|p| p.vertices.len()).collect(),
            Parts::Grid(_, parts) => parts.iter().map(|p| p.vertices.len()).collect(),
        };
        let offsets: Vec<u32> = sizes
            .iter()
            .scan(0u32, |total, &size| {
                let offset = *total;
                *total += size as u32;
                Some(offset)
            })
            .collect();
        let mut faces = self.faces;
        let local_mask = (1u32 << LOCAL_BITS) - 1;
        faces.par_iter_mut().with_min_len(4096).for_each(|face| {
            *face = face.map(|packed| offsets[(packed >> LOCAL_BITS) as usize] + (packed & local_mask));
        });
        let vertices = match self.parts {
            Parts::Exact(parts) => parts.into_iter().flat_map(|p| p.vertices).collect(),
            Parts::Grid(_, parts) => parts.into_iter().flat_map(|p| p.vertices).collect(),
        };
        IndexedMesh { vertices, faces }
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

fn push_chunk<K>(
    parts: &mut [Part<K>],
    faces: &mut Vec<[u32; 3]>,
    triangles: &[Triangle],
    key: impl Fn([f32; 3]) -> K + Sync,
) where
    K: std::hash::Hash + Eq + Copy + Default + Send,
{
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    let partitions = parts.len() as u64;
    let corner_ids: Vec<AtomicU32> = (0..triangles.len() * 3).map(|_| AtomicU32::new(0)).collect();
    parts.par_iter_mut().enumerate().for_each(|(part, state)| {
        let tag = (part as u32) << LOCAL_BITS;
        for (corner_index, corner) in triangles.iter().flatten().enumerate() {
            let corner = corner.map(|c| c + 0.0);
            let k = key(corner);
            let hash = vertex_hash(&k);
            if (hash >> 20) % partitions != part as u64 {
                continue;
            }
            let slot = (hash >> (64 - RECENT_BITS)) as usize;
            let (cached, cached_id) = state.recent[slot];
            let id = if cached_id != u32::MAX && cached == k {
                cached_id
            } else {
                let vertices = &mut state.vertices;
                let id = *state.index.entry(k).or_insert_with(|| {
                    vertices.push(corner);
                    (vertices.len() - 1) as u32
                });
                state.recent[slot] = (k, id);
                id
            };
            corner_ids[corner_index].store(tag | id, Relaxed);
        }
    });
    faces.extend(corner_ids.chunks_exact(3).map(|c| [0, 1, 2].map(|i| c[i].load(Relaxed))));
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
pub(crate) struct VertexHasher(u64);

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
