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
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

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
/// A chunk is welded in two steps, both split among the threads:
/// - each thread first thins a contiguous range of the chunk's corners
///   through a small cache of recent vertices, which stays in the CPU's
///   cache: on the files users upload, a vertex repeats a few triangles
///   later, so most corners are answered there. The rest are listed.
/// - each thread then owns the vertices whose hash falls in its partition,
///   with a large table of its own, and numbers its share of the listed
///   corners, range by range.
///
/// Before, every thread read and hashed every corner of the chunk to pick
/// out its partition's share, so two threads welded only 1.23× faster than
/// one. A partition still numbers its vertices in the order they were first
/// seen in the file, so the result is the same as it was.
#[derive(Debug)]
pub struct Welder {
    parts: Parts,
    /// Per corner: the owning partition in the top bits, its local id below.
    faces: Vec<[u32; 3]>,
}

#[derive(Debug)]
enum Parts {
    Exact(Tables<[u32; 3]>),
    Grid(f64, Tables<[i64; 3]>),
}

/// The partitions' tables, and the ranges' scratch, kept between chunks so
/// their allocations are reused.
#[derive(Debug)]
struct Tables<K> {
    parts: Vec<Part<K>>,
    ranges: Vec<Range<K>>,
}

impl<K: std::hash::Hash + Eq + Copy + Default + Send> Tables<K> {
    fn new(partitions: usize) -> Self {
        Self {
            parts: (0..partitions).map(|_| Part::new()).collect(),
            ranges: (0..partitions).map(|_| Range::default()).collect(),
        }
    }

    fn reserve(&mut self, triangles: usize) {
        // A closed mesh has about half as many vertices as triangles.
        let per_part = triangles / 2 / self.parts.len().max(1) + 16;
        self.parts.iter_mut().for_each(|p| p.reserve(per_part));
    }

    fn vertex_counts(&self) -> Vec<usize> {
        self.parts.iter().map(|p| p.vertices.len()).collect()
    }

    fn into_vertices(self) -> Vec<[f32; 3]> {
        self.parts.into_iter().flat_map(|p| p.vertices).collect()
    }
}

/// One thread's contiguous range of a chunk, thinned on its own: a corner
/// that repeats one of the range's recent vertices is answered here, the
/// rest are listed for the partitions. A vertex may be listed twice (when
/// the small cache forgot it); the partitions' tables still give it one id.
#[derive(Debug, Default)]
struct Range<K> {
    /// Direct-mapped by hash: a recent key and its index in `listed`.
    recent: Vec<(K, u32)>,
    /// Corners the cache did not answer, in file order: key, hash, coordinates.
    listed: Vec<(K, u64, [f32; 3])>,
    /// Per corner of the range, its index in `listed`.
    corners: Vec<u32>,
    /// Per listed corner, its packed id, written by the owning partition.
    ids: Vec<AtomicU32>,
}

impl<K: std::hash::Hash + Eq + Copy + Default> Range<K> {
    fn thin(&mut self, triangles: &[Triangle], key: &impl Fn([f32; 3]) -> K) {
        self.recent.clear();
        self.recent.resize(1 << RECENT_BITS, (K::default(), u32::MAX));
        self.listed.clear();
        self.corners.clear();
        for corner in triangles.iter().flatten() {
            let corner = corner.map(|c| c + 0.0);
            let k = key(corner);
            let hash = vertex_hash(&k);
            let slot = &mut self.recent[(hash >> (64 - RECENT_BITS)) as usize];
            let local = if slot.1 != u32::MAX && slot.0 == k {
                slot.1
            } else {
                let local = self.listed.len() as u32;
                self.listed.push((k, hash, corner));
                *slot = (k, local);
                local
            };
            self.corners.push(local);
        }
        self.ids.clear();
        self.ids.resize_with(self.listed.len(), || AtomicU32::new(0));
    }
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
            Weld::Exact | Weld::Nearby => Parts::Exact(Tables::new(partitions)),
            Weld::Tolerance(pitch) => {
                let pitch = if pitch.is_finite() && pitch > 0.0 { pitch } else { f64::MIN_POSITIVE };
                Parts::Grid(pitch, Tables::new(partitions))
            }
        };
        Self { parts, faces: Vec::new() }
    }

    /// Makes room for `triangles` more triangles up front, so the tables and
    /// the face list never grow by copying (which costs time, and memory
    /// while old and new copies coexist).
    pub fn reserve(&mut self, triangles: usize) {
        self.faces.reserve_exact(triangles);
        match &mut self.parts {
            Parts::Exact(tables) => tables.reserve(triangles),
            Parts::Grid(_, tables) => tables.reserve(triangles),
        }
    }

    /// Welds the next triangles. A long slice is welded a chunk at a time,
    /// which bounds the ranges' scratch tables.
    pub fn push(&mut self, triangles: &[Triangle]) {
        for chunk in triangles.chunks(CHUNK_TRIANGLES) {
            match &mut self.parts {
                Parts::Exact(tables) => push_chunk(tables, &mut self.faces, chunk, |c| c.map(f32::to_bits)),
                Parts::Grid(pitch, tables) => {
                    let pitch = *pitch;
                    push_chunk(tables, &mut self.faces, chunk, move |c| {
                        c.map(|x| (f64::from(x) / pitch).round() as i64)
                    })
                }
            }
        }
    }

    pub fn finish(self) -> IndexedMesh {
        let sizes = match &self.parts {
            Parts::Exact(tables) => tables.vertex_counts(),
            Parts::Grid(_, tables) => tables.vertex_counts(),
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
            Parts::Exact(tables) => tables.into_vertices(),
            Parts::Grid(_, tables) => tables.into_vertices(),
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

/// The most triangles welded in one step: the ranges' tables then hold at
/// most a chunk's corners between them, a few MB.
const CHUNK_TRIANGLES: usize = 64 * 1024;

fn push_chunk<K>(
    tables: &mut Tables<K>,
    faces: &mut Vec<[u32; 3]>,
    triangles: &[Triangle],
    key: impl Fn([f32; 3]) -> K + Sync,
) where
    K: std::hash::Hash + Eq + Copy + Default + Send + Sync,
{
    let Tables { parts, ranges } = tables;
    let per_range = triangles.len().div_ceil(ranges.len()).max(1);
    let range_of = |index: usize| {
        &triangles[(index * per_range).min(triangles.len())..((index + 1) * per_range).min(triangles.len())]
    };
    ranges.par_iter_mut().enumerate().for_each(|(index, range)| range.thin(range_of(index), &key));

    let ranges = &*ranges;
    let partitions = parts.len() as u64;
    parts.par_iter_mut().enumerate().for_each(|(part, state)| {
        let tag = (part as u32) << LOCAL_BITS;
        for range in ranges {
            for (&(k, hash, corner), id_slot) in range.listed.iter().zip(&range.ids) {
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
                id_slot.store(tag | id, Relaxed);
            }
        }
    });

    let start = faces.len();
    faces.resize(start + triangles.len(), [0; 3]);
    faces[start..].par_chunks_mut(per_range).zip(ranges.par_iter()).for_each(|(out, range)| {
        for (face, corners) in out.iter_mut().zip(range.corners.chunks_exact(3)) {
            *face = [0, 1, 2].map(|i| range.ids[corners[i] as usize].load(Relaxed));
        }
    });
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

    /// Numbers each distinct corner in the order first seen: what the weld
    /// must give, up to the order of its partitions.
    fn reference(triangles: &[Triangle]) -> (Vec<[f32; 3]>, Vec<[usize; 3]>) {
        let mut ids = HashMap::new();
        let mut vertices = Vec::new();
        let faces = triangles
            .iter()
            .map(|t| {
                t.map(|corner| {
                    let corner = corner.map(|c| c + 0.0);
                    *ids.entry(corner.map(f32::to_bits)).or_insert_with(|| {
                        vertices.push(corner);
                        vertices.len() - 1
                    })
                })
            })
            .collect();
        (vertices, faces)
    }

    #[test]
    fn a_weld_over_many_chunks_and_threads_matches_a_plain_one() {
        // Several chunks, ranges and partitions; corners repeating near by
        // (a grid of quads), far away (a second copy), and at random (a
        // permuted third copy), so the ranges' small caches both answer and
        // forget, and some vertices are listed more than once.
        let n = 150usize;
        let at = |i: usize, j: usize| [i as f32 * 0.5, j as f32 * 0.25, ((i * j) % 7) as f32 - 0.0];
        let mut triangles: Vec<Triangle> = Vec::new();
        for i in 0..n {
            for j in 0..n {
                triangles.push([at(i, j), at(i + 1, j), at(i + 1, j + 1)]);
                triangles.push([at(i, j), at(i + 1, j + 1), at(i, j + 1)]);
            }
        }
        let first = triangles.len();
        triangles.extend_from_within(..first);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let permuted: Vec<Triangle> = (0..first)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                triangles[state as usize % first]
            })
            .collect();
        triangles.extend(permuted);
        assert!(triangles.len() > 2 * CHUNK_TRIANGLES);
        let (want_vertices, want_faces) = reference(&triangles);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mesh = pool.install(|| IndexedMesh::weld(&triangles));
            assert_eq!(mesh.vertices.len(), want_vertices.len(), "{threads} threads");
            assert_eq!(mesh.faces.len(), triangles.len());
            // Every face names its own corners, and no two vertices are the same.
            for (face, triangle) in mesh.faces.iter().zip(&triangles) {
                assert_eq!(face.map(|v| mesh.vertices[v as usize]), triangle.map(|c| c.map(|x| x + 0.0)));
            }
            let distinct: std::collections::HashSet<[u32; 3]> =
                mesh.vertices.iter().map(|v| v.map(f32::to_bits)).collect();
            assert_eq!(distinct.len(), mesh.vertices.len(), "{threads} threads");
            // Each partition numbers its vertices in the order first seen, so
            // the order first seen falls only where one partition ends.
            let first_seen: HashMap<[u32; 3], usize> =
                want_vertices.iter().enumerate().map(|(i, v)| (v.map(f32::to_bits), i)).collect();
            let order: Vec<usize> = mesh.vertices.iter().map(|v| first_seen[&v.map(f32::to_bits)]).collect();
            let falls = order.windows(2).filter(|w| w[1] < w[0]).count();
            assert!(falls < threads, "{threads} threads: the order first seen falls {falls} times");
            if threads == 1 {
                assert_eq!(mesh.vertices, want_vertices);
                let faces: Vec<[usize; 3]> = mesh.faces.iter().map(|f| f.map(|v| v as usize)).collect();
                assert_eq!(faces, want_faces);
            }
        }
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
