//! Mesh engine: reads a model's bytes (binary or ASCII STL, 3MF, OBJ) and
//! measures the part they describe.
//!
//! Everything here is pure computation: bytes in, values out. The crate never
//! touches the network, the file system or an async runtime (an architecture
//! invariant checked by `tests/tidy.rs` in the workspace root), so the
//! scheduler can run it on a rayon pool and the CLI can run it directly.
//!
//! The pipeline: [`read_model_chunked`] (the format found from the bytes,
//! triangles handed over a chunk at a time), [`IndexedMesh`] (welding, then
//! the open edges closed within a tolerance), [`Topology`] (edges and
//! shells), shell classification, per-object figures, printability and
//! optional [`slice`]ing, all driven by [`analyze`]. Every stage's cost is
//! known before it allocates and held to the [`Limits`] (see the `bounds`
//! module).
//!
//! ```
//! let stl = mesh::write_binary_stl(&mesh::cuboid([20.0, 20.0, 20.0]));
//! let report = mesh::analyze(&stl, &mesh::AnalysisOptions::default()).unwrap();
//! assert_eq!(report.volume, 8000.0);
//! assert!(report.topology.watertight);
//! ```

mod bounds;
mod contours;
mod error;
mod formats;
mod generate;
mod geometry;
mod nearby;
mod objects;
mod observe;
mod par;
mod printability;
mod read;
mod shells;
mod slice;
mod supports;
mod topology;
mod weld;

pub use bounds::OverLimit;
pub use contours::{Contour, TURN_BINS_DEG};
pub use error::{ReadError, ReadErrorKind};
pub use formats::{ModelFormat, ModelInfo, ObjectRange, inspect, read_model_chunked};
pub use generate::{cuboid, needles, uv_sphere, write_binary_stl};
pub use geometry::{BoundingBox, Geometry};
pub use nearby::NearbyWeld;
pub use objects::ObjectReport;
pub use observe::{Observer, Stage, Unobserved};
pub use printability::{Fit, Printability, Units, fit};
pub use read::{ReadWarning, Soup, Triangle, Triangles, read_stl, read_stl_chunked};
pub use shells::ShellSummary;
pub use slice::{Layering, SliceError, Slices, slice, slice_with};
pub use supports::SupportShape;
pub use topology::{FaceLabels, Topology};
pub use weld::{IndexedMesh, Weld, Welder};

/// Limits that keep a hostile or absurd file from exhausting the machine.
///
/// Every limit is a setting. A file's size says little about the work it
/// asks for (20,000 needle-thin triangles 29 m tall are 1 MB, and cross two
/// billion layer planes), so besides the size of the input, the work of
/// each stage that does not follow from it is counted before the stage
/// allocates, and refused over its limit with [`OverLimit`]. The defaults
/// take every model the farm is expected to price (a few million triangles,
/// thousands of layers) within a worker slot's 1 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files larger than this are refused before parsing.
    pub max_bytes: u64,
    /// Meshes with more triangles than this are refused before allocation.
    /// Values above 2^31 - 1 act as 2^31 - 1, the most the topology pass can
    /// index.
    pub max_triangles: u64,
    /// Slicing into more layers than this is refused.
    pub max_layers: u64,
    /// Slicing and contour tracing: the sum over the triangles of the layer
    /// planes each one crosses.
    pub max_layer_crossings: u64,
    /// Support columns: the sum over the triangles of the grid rays each one
    /// meets (the grid is at most about 420 rays square).
    pub max_ray_crossings: u64,
    /// Separate shells: each is summarised, and closed inward shells are
    /// matched against closed outward ones, pair by pair.
    pub max_shells: u64,
    /// The bytes one analysis may hold at once: its own allocations, worked
    /// out before each stage allocates. One worker slot's share of a machine.
    pub memory_budget: u64,
    /// Vertices a 3MF or OBJ file may list (each costs memory before any
    /// triangle uses it).
    pub max_vertices: u64,
    /// Entries in a 3MF package, checked in its zip directory before
    /// anything is inflated.
    pub max_zip_entries: u64,
    /// Bytes the entries of a 3MF package may inflate to, all together:
    /// checked against the sizes the directory declares before inflating,
    /// and against the bytes actually inflated while reading (declared
    /// sizes can lie).
    pub max_unzipped_bytes: u64,
    /// Inflated ÷ compressed size of any entry over 1 MiB inflated. Model
    /// XML deflates 3 to 20 times; a zip bomb a thousand.
    pub max_zip_ratio: u64,
    /// Corners of one OBJ polygon (triangulating a concave one costs the
    /// square of its corners).
    pub max_polygon_vertices: u64,
    /// Bytes of one line of an OBJ file.
    pub max_line_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            max_triangles: 20_000_000,
            max_layers: 100_000,
            max_layer_crossings: 100_000_000,
            max_ray_crossings: 20_000_000,
            max_shells: 50_000,
            memory_budget: 1 << 30,
            max_vertices: 30_000_000,
            max_zip_entries: 10_000,
            max_unzipped_bytes: 4 << 30,
            max_zip_ratio: 200,
            max_polygon_vertices: 4096,
            max_line_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// These limits, with the triangle limit no higher than the topology
    /// pass can index.
    pub(crate) fn indexable(&self) -> Self {
        Self { max_triangles: self.max_triangles.min(read::MAX_INDEXABLE_TRIANGLES), ..*self }
    }
}

/// What to compute, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisOptions {
    pub limits: Limits,
    pub weld: Weld,
    /// Scale the file's numbers from this unit to mm before measuring. Never
    /// applied unless asked: the guess is only reported.
    pub units: Option<Units>,
    /// Faces steeper than this from vertical-down need support, degrees.
    pub overhang_angle_deg: f64,
    /// How the support columns under the overhangs are shaped.
    pub support: SupportShape,
    /// Slice into these layers (mm), when set.
    pub layering: Option<Layering>,
    /// Check the fit in each of these build volumes (mm): one per machine
    /// that could print the part.
    pub build_volumes: Vec<[f64; 3]>,
    /// Refuse a part that fits none of `build_volumes` in any orientation
    /// ([`AnalyzeError::FitsNoBuildVolume`]), right after reading it: before
    /// the topology, the supports and the slicing.
    pub require_fit: bool,
    /// Which of the file's axes stands up (0 = x, 1 = y, 2 = z, as the file
    /// stands): the part is turned before anything is measured, by a cyclic
    /// swap of axes so every face keeps its winding.
    pub up_axis: usize,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            weld: Weld::default(),
            units: None,
            overhang_angle_deg: 45.0,
            support: SupportShape::default(),
            layering: None,
            build_volumes: Vec::new(),
            require_fit: false,
            up_axis: 2,
        }
    }
}

/// Why a model could not be analysed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Slice(SliceError),
    /// The observer stopped the analysis (a deadline, a cancellation).
    #[error("the analysis was stopped")]
    Stopped,
    /// The work or the memory a stage needs is over a limit.
    #[error(transparent)]
    OverLimit(#[from] OverLimit),
    /// [`AnalysisOptions::require_fit`], and the part fits none of the
    /// build volumes.
    #[error(
        "the part is {:.1} x {:.1} x {:.1} and fits none of the {volumes} build volumes in any orientation \
         (the largest is {:.0} x {:.0} x {:.0})",
        size[0], size[1], size[2], largest[0], largest[1], largest[2]
    )]
    FitsNoBuildVolume { size: [f64; 3], volumes: usize, largest: [f64; 3] },
}

impl From<SliceError> for AnalyzeError {
    fn from(error: SliceError) -> Self {
        match error {
            SliceError::Stopped => AnalyzeError::Stopped,
            SliceError::OverLimit(over) => AnalyzeError::OverLimit(over),
            other => AnalyzeError::Slice(other),
        }
    }
}

/// Everything the farm knows about a model after analysis. Lengths are in
/// the file's units, or in mm when [`AnalysisOptions::units`] was given.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshReport {
    /// How the bytes were encoded.
    pub format: ModelFormat,
    /// Triangles as read from the file.
    pub triangles: u64,
    /// Distinct vertices after welding.
    pub vertices: u64,
    pub weld: Weld,
    /// What the nearby step of the default weld did ([`Weld::Nearby`] only).
    pub nearby: Option<NearbyWeld>,
    pub geometry: Geometry,
    pub topology: Topology,
    pub shells: ShellSummary,
    /// The volume to price: the signed volume with inverted shells flipped,
    /// as a magnitude.
    pub volume: f64,
    /// The mesh is open, so `volume` is what its surface encloses when each
    /// hole is capped by a cone to the part's centre: an estimate.
    pub volume_is_estimate: bool,
    pub printability: Printability,
    pub units_guess: Units,
    pub units_applied: Option<Units>,
    /// The fit in each of [`AnalysisOptions::build_volumes`], in order.
    pub fits: Vec<Fit>,
    /// The file's axis that was turned to stand up ([`AnalysisOptions::up_axis`]).
    pub up_axis: usize,
    pub slices: Option<Slices>,
    /// Things the reader tolerated but the caller should know about.
    pub warnings: Vec<ReadWarning>,
    /// Per object, for files that have several (3MF build items, OBJ
    /// groups); empty for STL.
    pub objects: Vec<ObjectReport>,
}

impl MeshReport {
    /// Volume to price from, in mm³ when the file is in mm.
    pub fn enclosed_volume_mm3(&self) -> f64 {
        self.volume
    }
}

/// Reads `bytes` as a model in any format and measures it.
pub fn analyze(bytes: &[u8], options: &AnalysisOptions) -> Result<MeshReport, AnalyzeError> {
    analyze_reader(bytes, bytes.len() as u64, options)
}

/// Reads `len` bytes of a model from `reader` and measures them. An STL
/// (binary or ASCII) or OBJ is decoded and welded a chunk at a time and never
/// held whole, so a
/// large model costs its vertices and faces, not its file size plus a soup.
pub fn analyze_reader<R: std::io::Read>(
    reader: R,
    len: u64,
    options: &AnalysisOptions,
) -> Result<MeshReport, AnalyzeError> {
    analyze_observed(reader, len, options, &Unobserved)
}

/// [`analyze_reader`], with an [`Observer`] that sees each chunk of work and
/// may stop the analysis between them.
pub fn analyze_observed<R: std::io::Read>(
    reader: R,
    len: u64,
    options: &AnalysisOptions,
    observer: &dyn Observer,
) -> Result<MeshReport, AnalyzeError> {
    // Known from the file's length alone: refused before a byte is read.
    bounds::check_memory(&options.limits, "reading the file", bounds::reading(len))?;
    let mut reader = observe::ObservedReader { inner: reader, len, read: 0, observer, stopped: false };
    let mut welder = Welder::new(options.weld);
    let scale = options.units.map_or(1.0, |u| u.to_mm() as f32);
    let up = options.up_axis.min(2);
    let mut scaled: Vec<Triangle> = Vec::new();
    let mut reserved = false;
    let info = read_model_chunked(&mut reader, len, &options.limits, |format, chunk, total| {
        if !reserved {
            welder.reserve(total as usize);
            reserved = true;
        }
        let scale = if format.declares_units() { 1.0 } else { scale };
        if scale == 1.0 && up == 2 {
            welder.push(chunk);
        } else {
            scaled.clear();
            scaled.extend(chunk.iter().map(|t| t.map(|v| stand(v, up).map(|c| c * scale))));
            welder.push(&scaled);
        }
    });
    if reader.stopped {
        return Err(AnalyzeError::Stopped);
    }
    let mut info = info?;
    if info.triangles == 0 {
        return Err(ReadError::new(ReadErrorKind::Empty).into());
    }
    if let (Some(declared), Some(asked)) = (info.units, options.units) {
        info.warnings.push(ReadWarning::DeclaredUnits { declared, ignored: asked });
    }
    let mesh = welder.finish();
    analyze_mesh(mesh, info, options, observer)
}

/// Measures a soup already read.
pub fn analyze_soup(soup: Soup, options: &AnalysisOptions) -> Result<MeshReport, AnalyzeError> {
    if soup.triangles.is_empty() {
        return Err(ReadError::new(ReadErrorKind::Empty).into());
    }
    let mut triangles = soup.triangles;
    if let Some(units) = options.units {
        let scale = units.to_mm() as f32;
        triangles.iter_mut().for_each(|t| *t = t.map(|v| v.map(|c| c * scale)));
    }
    let up = options.up_axis.min(2);
    if up != 2 {
        triangles.iter_mut().for_each(|t| *t = t.map(|v| stand(v, up)));
    }
    let mesh = IndexedMesh::weld_with(&triangles, options.weld);
    let info = ModelInfo::stl(soup.format, triangles.len() as u64, soup.warnings);
    drop(triangles);
    analyze_mesh(mesh, info, options, &Unobserved)
}

/// A vertex with the file's axis `up` standing up: a cyclic swap of axes
/// (x, y, z to y, z, x or z, x, y), a rotation, so faces keep their winding.
fn stand(v: [f32; 3], up: usize) -> [f32; 3] {
    [v[(up + 1) % 3], v[(up + 2) % 3], v[up]]
}

/// Measures triangles already in memory (generated shapes, tests).
///
/// # Panics
/// When slicing was asked for with a bad layer height, or there are no
/// triangles; [`analyze`] reports those as errors instead.
pub fn analyze_triangles(triangles: Vec<Triangle>, options: &AnalysisOptions) -> MeshReport {
    analyze_soup(Soup { format: ModelFormat::Binary, triangles, warnings: Vec::new() }, options)
        .expect("valid triangles and slicing options")
}

/// Everything after welding: geometry, topology, shells, printability, fit
/// and slices, all from the indexed mesh.
fn analyze_mesh(
    mesh: IndexedMesh,
    info: ModelInfo,
    options: &AnalysisOptions,
    observer: &dyn Observer,
) -> Result<MeshReport, AnalyzeError> {
    let checkpoint =
        |stage: Stage, done: f64| if observer.observe(stage, done) { Ok(()) } else { Err(AnalyzeError::Stopped) };
    let limits = &options.limits;
    let (triangles, vertices) = (mesh.faces.len() as u64, mesh.vertices.len() as u64);
    let resident = bounds::resident(triangles, vertices);
    checkpoint(Stage::Analysing, 0.0)?;
    let mut mesh = mesh;
    // Every sum of volume is taken about the mean corner (see `geometry`).
    let mut origin = geometry::corner_mean(&mesh);
    let mut geometry = Geometry::measure_about(&mesh, &origin);
    // The fit needs only the corners: a part no machine holds is answered
    // before anything costly.
    let fit_all = |mesh: &IndexedMesh, geometry: &Geometry| -> Vec<Fit> {
        options.build_volumes.iter().map(|&volume| fit(&mesh.vertices, &geometry.bounding_box, volume)).collect()
    };
    let mut fits = fit_all(&mesh, &geometry);
    if options.require_fit && !fits.is_empty() && !fits.iter().any(|f| f.fits) {
        let volume = |v: &[f64; 3]| v.iter().product::<f64>();
        let largest =
            options.build_volumes.iter().copied().max_by(|a, b| volume(a).total_cmp(&volume(b))).unwrap_or_default();
        return Err(AnalyzeError::FitsNoBuildVolume {
            size: geometry.bounding_box.size(),
            volumes: fits.len(),
            largest,
        });
    }
    checkpoint(Stage::Analysing, 0.2)?;
    let topology_bytes = resident + bounds::topology(triangles, vertices);
    bounds::check_memory(limits, "the topology", topology_bytes)?;
    // The nearby step runs when the open edges it would work on fit in what
    // the budget leaves; a soup of loose triangles, every edge open, may not.
    let nearby_wanted = options.weld == Weld::Nearby;
    let max_open = if nearby_wanted { bounds::nearby_edges_within(limits, topology_bytes, vertices) } else { 0 };
    // The topology pass is the longest without a word on millions of faces:
    // it reports between its passes, within the analysis's 0.2 to 0.5.
    let between = |share: f64| observer.observe(Stage::Analysing, 0.2 + 0.3 * share);
    let (mut topology, mut labels, open_edges) =
        Topology::with_open_edges(&mesh, max_open, &between).ok_or(AnalyzeError::Stopped)?;
    let mut nearby = None;
    let mut warnings = info.warnings;
    if nearby_wanted {
        let tolerance = nearby::tolerance_for(geometry.bounding_box.min, geometry.bounding_box.max);
        let open_edges_before = topology.boundary_edges;
        let merged = if open_edges_before > max_open as u64 {
            warnings.push(ReadWarning::NearbyWeldSkipped { open_edges: open_edges_before });
            0
        } else {
            nearby::close_open_edges(&mut mesh, &open_edges, tolerance)
        };
        drop(open_edges);
        if merged > 0 {
            let again = |_: f64| observer.observe(Stage::Analysing, 0.5);
            (topology, labels, _) = Topology::with_open_edges(&mesh, 0, &again).ok_or(AnalyzeError::Stopped)?;
            origin = geometry::corner_mean(&mesh);
            geometry = Geometry::measure_about(&mesh, &origin);
            fits = fit_all(&mesh, &geometry);
        }
        nearby = Some(NearbyWeld { tolerance, open_edges_before, merged_vertices: merged });
    }
    if topology.shells > limits.max_shells {
        return Err(OverLimit::Shells { shells: topology.shells, limit: limits.max_shells }.into());
    }
    bounds::check_memory(limits, "the shells", resident + bounds::shells(triangles, topology.shells))?;
    checkpoint(Stage::Analysing, 0.5)?;
    let (shells, faces) = shells::summarize(&mesh, &labels, topology.shells as usize, &origin);
    checkpoint(Stage::Analysing, 0.6)?;
    let flipped = faces.flipped;
    let objects = objects::measure(&mesh, &info.objects, &labels, &flipped, &origin);
    drop(labels);
    let printability = printability::measure(
        &mesh,
        &flipped,
        &faces.in_cavity,
        &geometry.bounding_box,
        options.overhang_angle_deg,
        options.support,
        (limits, resident),
        observer,
    )?;
    checkpoint(Stage::Analysing, 1.0)?;
    let slices = match options.layering {
        None => None,
        Some(layering) => {
            checkpoint(Stage::Slicing, 0.0)?;
            let z = (geometry.bounding_box.min[2], geometry.bounding_box.max[2]);
            let plan = slice::Plan::new(mesh.faces.len(), z, layering, limits, resident)?;
            let spans = plan.spans(&mesh, limits, observer)?;
            // Both stages are checked before either runs: a model whose
            // loops would not fit is refused before it is sliced.
            let held = resident + 8 * triangles + 40 * plan.layers() as u64;
            let loops = contours::Plan::new(&spans, plan.layers(), limits, held)?;
            let mut slices = plan.measure(&mesh, Some(&flipped), &spans, observer)?;
            checkpoint(Stage::Slicing, 0.3)?;
            slices.contours = contours::trace(&mesh, &flipped, &slices, &spans, &loops, observer)?;
            checkpoint(Stage::Slicing, 1.0)?;
            Some(slices)
        }
    };
    Ok(MeshReport {
        format: info.format,
        triangles: info.triangles,
        vertices: mesh.vertices.len() as u64,
        weld: options.weld,
        nearby,
        volume: shells.corrected_volume.abs(),
        volume_is_estimate: !topology.watertight,
        units_guess: Units::guess(&geometry.bounding_box),
        units_applied: info.units.or(options.units),
        geometry,
        topology,
        shells,
        printability,
        fits,
        up_axis: options.up_axis.min(2),
        slices,
        warnings,
        objects,
    })
}
