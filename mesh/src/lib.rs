//! Mesh engine: reads STL bytes and measures the part they describe.
//!
//! Everything here is pure computation: bytes in, values out. The crate never
//! touches the network, the file system or an async runtime (an architecture
//! invariant checked by `tests/layering.rs` in the workspace root), so the
//! scheduler can run it on a rayon pool and the CLI can run it directly.
//!
//! The pipeline is [`read_stl`] (bytes to a triangle soup), [`IndexedMesh::weld`]
//! (soup to shared vertices) and [`analyze`], which runs both and measures
//! geometry and topology.

mod error;
mod generate;
mod geometry;
mod read;
mod topology;
mod weld;

pub use error::{ReadError, ReadErrorKind};
pub use generate::{cuboid, uv_sphere, write_binary_stl};
pub use geometry::{BoundingBox, Geometry};
pub use read::{ReadWarning, Soup, StlFormat, Triangle, read_stl};
pub use topology::Topology;
pub use weld::IndexedMesh;

/// Limits that keep a hostile or absurd file from exhausting the machine.
///
/// Every limit is a setting; the defaults fit the largest models the farm is
/// expected to price (tens of millions of triangles) on a worker with a few GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files larger than this are refused before parsing.
    pub max_bytes: u64,
    /// Meshes with more triangles than this are refused before allocation.
    pub max_triangles: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: 1 << 30, max_triangles: 20_000_000 }
    }
}

/// Everything the farm knows about a model after analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshReport {
    /// How the bytes were encoded.
    pub format: StlFormat,
    /// Triangles as read from the file.
    pub triangles: u64,
    /// Distinct vertices after welding bit-identical positions.
    pub vertices: u64,
    pub geometry: Geometry,
    pub topology: Topology,
    /// Things the reader tolerated but the caller should know about.
    pub warnings: Vec<ReadWarning>,
}

impl MeshReport {
    /// Volume to price from: the magnitude of the signed volume, so a mesh
    /// whose shells are wound inside out still prices as the solid it encloses.
    pub fn enclosed_volume_mm3(&self) -> f64 {
        self.geometry.signed_volume.abs()
    }
}

/// Reads `bytes` as STL and measures it.
pub fn analyze(bytes: &[u8], limits: &Limits) -> Result<MeshReport, ReadError> {
    let soup = read_stl(bytes, limits)?;
    if soup.triangles.is_empty() {
        return Err(ReadError::new(ReadErrorKind::Empty));
    }
    let geometry = Geometry::measure(&soup.triangles);
    let mesh = IndexedMesh::weld(&soup.triangles);
    let topology = Topology::of(&mesh);
    Ok(MeshReport {
        format: soup.format,
        triangles: soup.triangles.len() as u64,
        vertices: mesh.vertices.len() as u64,
        geometry,
        topology,
        warnings: soup.warnings,
    })
}
