//! Cost bounds: what each stage of an analysis will cost, worked out before
//! the stage allocates, and checked against the caller's [`Limits`].
//!
//! A 1 MB file can describe work without end: 20,000 needle-thin triangles
//! 29 m tall cross two billion layer planes. Every stage whose cost does not
//! follow from the file's size counts its work first, in a pass that
//! allocates nothing, and refuses with [`OverLimit`] (naming the figure and
//! the limit) when the count is over a limit, or when what it would hold
//! would take the analysis over its memory budget:
//!
//! - reading and welding: at most [`READ_BYTES_PER_FILE_BYTE`] bytes per byte
//!   of the file, whatever the format (checked before the first byte is read);
//! - topology: from the triangles and the welded vertices;
//! - shells: their number (each has its own summary, and the search for
//!   cavities compares shells pairwise);
//! - support columns: the rays each triangle meets on the support grid, counted
//!   row by row before a crossing is stored;
//! - slicing and contours: the triangle–layer crossings, counted from each
//!   triangle's lowest and highest corner; contours are then traced in bands of
//!   layers sized to the budget.
//!
//! The memory figures are upper bounds of the analysis's own allocations,
//! fitted to measured peaks (BENCHMARKS.md, "Bounded work"); the process's own
//! footprint (code, runtime, allocator) comes on top.

use std::fmt;

use crate::Limits;

/// A figure over one of the [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverLimit {
    /// Slicing would cut this many triangles at this many layer planes.
    #[error(
        "slicing needs {} triangle–layer crossings ({} layers), over the limit of {} (max_layer_crossings)",
        Count(*needed),
        Count(*layers),
        Count(*limit)
    )]
    LayerCrossings { needed: u64, layers: u64, limit: u64 },
    /// The support columns would need this many ray–triangle crossings.
    #[error(
        "the support columns need {} ray crossings, over the limit of {} (max_ray_crossings)",
        Count(*needed),
        Count(*limit)
    )]
    RayCrossings { needed: u64, limit: u64 },
    /// The model has more separate shells than the analysis takes.
    #[error("the model has {} separate shells, over the limit of {} (max_shells)", Count(*shells), Count(*limit))]
    Shells { shells: u64, limit: u64 },
    /// A stage would take the analysis over its memory budget.
    #[error("{stage} needs about {}, over the memory budget of {} (memory_budget)", Bytes(*needed), Bytes(*budget))]
    Memory { stage: &'static str, needed: u64, budget: u64 },
}

/// A count with thousands separators: 2,912,000,000.
pub(crate) struct Count(pub(crate) u64);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        f.write_str(&out)
    }
}

/// A size in MiB or GiB.
pub(crate) struct Bytes(pub(crate) u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = self.0 as f64 / f64::from(1 << 20);
        if mib >= 1024.0 { write!(f, "{:.1} GiB", mib / 1024.0) } else { write!(f, "{mib:.0} MiB") }
    }
}

/// Peak bytes per byte of the file while it is read and welded: a binary
/// triangle is 50 bytes of file and costs at most 170 bytes welded (every
/// corner a vertex of its own, the weld's tables growing); an ASCII one is
/// at least 80 bytes of text (streamed a line at a time), plus its weld. A
/// 3MF package is held whole while its parts are read.
pub(crate) const READ_BYTES_PER_FILE_BYTE: u64 = 4;
/// Fixed costs of a read: the chunk buffers (5.6 MB), and the weld's caches
/// and per-range scratch (for a chunk of 64k facets, 8.4 MB at most on two
/// threads, 12.4 MB on eight: 4 MB of them the caches).
const READ_FIXED: u64 = 20 << 20;

/// What the analysis holds from welding to the end: faces, vertices and two
/// flags per face.
pub(crate) fn resident(triangles: u64, vertices: u64) -> u64 {
    14 * triangles + 12 * vertices
}

/// Reading and welding a file of `len` bytes.
pub(crate) fn reading(len: u64) -> u64 {
    READ_BYTES_PER_FILE_BYTE.saturating_mul(len).saturating_add(READ_FIXED)
}

/// The topology pass, beside the mesh: 8-byte edge uses (and their atomic
/// twins while they are filed), per-vertex buckets, the union-find and the
/// per-face labels.
pub(crate) fn topology(triangles: u64, vertices: u64) -> u64 {
    64 * triangles + 16 * vertices
}

/// The nearby weld, per open edge: the edge as the topology pass lists it
/// (12 bytes), its two ends sorted (8), filed in up to two grid cells of a
/// hash map (about 100), the union-find and the representatives (16), the
/// faces it touches copied with their edges in a hash map (about 70).
const NEARBY_PER_OPEN_EDGE: u64 = 210;

/// The nearby weld's per-vertex tables: the remap, the new ids and the
/// compacted vertices.
fn nearby_per_vertex(vertices: u64) -> u64 {
    20 * vertices
}

/// How many open edges the nearby weld may work on, beside `held` bytes
/// (the mesh and the topology pass) within the budget: 0 when there is no
/// room even for its per-vertex tables.
pub(crate) fn nearby_edges_within(limits: &Limits, held: u64, vertices: u64) -> usize {
    let room = limits.memory_budget.saturating_sub(held).saturating_sub(nearby_per_vertex(vertices));
    usize::try_from(room / NEARBY_PER_OPEN_EDGE).unwrap_or(usize::MAX)
}

/// The shell summaries and the per-face flags they produce, beside the mesh
/// and its labels; with few shells, a set of sums per chunk of faces.
pub(crate) fn shells(triangles: u64, shells: u64) -> u64 {
    let chunk_sums = crate::shells::parallel_sums(triangles, shells);
    14 * triangles + 112 * shells + chunk_sums
}

/// The support columns, beside the mesh: 8 bytes per ray crossing and at
/// most half as many overhang tops, per-cell offsets, counts, running
/// counts of the cells holding tops and column lengths, and a bit per face
/// for the faces that meet a ray.
pub(crate) fn supports(ray_crossings: u64, cells: u64, triangles: u64) -> u64 {
    16 * ray_crossings + 64 * cells + triangles.div_ceil(64) * 8
}

/// Slicing, beside the mesh: each triangle's span of layers, the per-chunk
/// partial sums of four per-layer figures, and the five per-layer results.
pub(crate) fn slicing(triangles: u64, layers: u64, chunks: u64) -> u64 {
    8 * triangles + layers * (32 * chunks + 40)
}

/// Contour tracing, on top of the slices: the faces in layer order, one band
/// of crossings bucketed by layer, each thread's working set for its layer
/// (joints with their turns, segments, loops: about 136 bytes per
/// crossing), and the loops themselves, at worst one per crossing. 32 bytes
/// a crossing for the loops was measured when a loop was 16 bytes
/// (BENCHMARKS.md, "Bounded work": 40,000 needles, 45 million crossings,
/// peaked at 1,166 MiB; 16 bytes, the first figure, let that model through
/// a 1 GiB budget); a loop is 32 bytes since it counts its turns, so 48.
pub(crate) fn contours(band_crossings: u64, widest_layer: u64, threads: u64, crossings: u64, layers: u64) -> u64 {
    12 * band_crossings + 136 * widest_layer * threads + 48 * crossings + 24 * layers
}

/// The most crossings a band of layers holds while its contours are traced.
pub(crate) const BAND_CROSSINGS: u64 = 4 << 20;

/// Checks one stage's peak against the budget.
pub(crate) fn check_memory(limits: &Limits, stage: &'static str, needed: u64) -> Result<(), OverLimit> {
    if needed > limits.memory_budget {
        return Err(OverLimit::Memory { stage, needed, budget: limits.memory_budget });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{
        AnalysisOptions, AnalyzeError, Layering, Observer, SliceError, Stage, Triangle, analyze, analyze_observed,
        cuboid, needles, write_binary_stl,
    };

    fn sliced(layer_height: f64, limits: Limits) -> AnalysisOptions {
        AnalysisOptions { layering: Some(Layering::uniform(layer_height)), limits, ..AnalysisOptions::default() }
    }

    /// The model of the issue: 20,000 needles 29 m tall on a 20 mm plate, 1 MB.
    fn the_needle_model() -> Vec<u8> {
        let bytes = write_binary_stl(&needles(20_000, 29_000.0, 20.0));
        assert_eq!(bytes.len(), 1_000_084);
        bytes
    }

    #[test]
    fn the_needle_model_is_refused_by_its_crossings_before_a_layer_is_cut() {
        // 96,667 layers are within max_layers; 20,000 needles crossing each
        // are not within max_layer_crossings.
        let err = analyze(&the_needle_model(), &sliced(0.3, Limits::default())).unwrap_err();
        let AnalyzeError::OverLimit(OverLimit::LayerCrossings { needed, layers, limit }) = err else { panic!("{err}") };
        assert_eq!((layers, limit), (96_667, 100_000_000));
        assert!((1_933_000_000..=1_933_340_000).contains(&needed), "{needed}");
        assert!(err.to_string().contains("over the limit of 100,000,000"), "{err}");
        // A limit above the count lets it through to the next bound: the
        // loops, one per needle per layer, would need 29 GiB.
        let generous = Limits { max_layer_crossings: u64::MAX, ..Limits::default() };
        let err = analyze(&the_needle_model(), &sliced(0.3, generous)).unwrap_err();
        assert!(
            matches!(err, AnalyzeError::OverLimit(OverLimit::Memory { stage: "tracing the contours", .. })),
            "{err}"
        );
    }

    #[test]
    fn variants_of_the_needle_meet_other_bounds() {
        // Taller: 100 m is 333,334 layers.
        let taller = write_binary_stl(&needles(20_000, 100_000.0, 20.0));
        let err = analyze(&taller, &sliced(0.3, Limits::default())).unwrap_err();
        assert!(matches!(err, AnalyzeError::Slice(SliceError::TooManyLayers { limit: 100_000, .. })), "{err}");
        // Denser: 80,000 needles are 80,000 separate shells welded exactly.
        // The default weld zips some neighbours (0.07 mm apart, within the
        // tolerance of a part 29 m tall), and leaves far more than 50,000.
        let denser = write_binary_stl(&needles(80_000, 29_000.0, 20.0));
        let exact = AnalysisOptions { weld: crate::Weld::Exact, ..sliced(0.3, Limits::default()) };
        let err = analyze(&denser, &exact).unwrap_err();
        assert_eq!(err, AnalyzeError::OverLimit(OverLimit::Shells { shells: 80_000, limit: 50_000 }));
        let err = analyze(&denser, &sliced(0.3, Limits::default())).unwrap_err();
        assert!(matches!(err, AnalyzeError::OverLimit(OverLimit::Shells { shells: 60_000.., limit: 50_000 })), "{err}");
        // Shorter, so slicing it is fine, but its loops outgrow a small
        // budget: refused before it is sliced, computed within the default.
        let short = write_binary_stl(&needles(5_000, 300.0, 20.0));
        let small = Limits { memory_budget: 48 << 20, ..Limits::default() };
        let err = analyze(&short, &sliced(0.3, small)).unwrap_err();
        assert!(err.to_string().starts_with("tracing the contours needs about"), "{err}");
        let report = analyze(&short, &sliced(0.3, Limits::default())).unwrap();
        let slices = report.slices.unwrap();
        assert_eq!((slices.len(), slices.contours[500].len()), (1000, 5_000), "one loop per needle per layer");
    }

    #[test]
    fn the_nearby_weld_is_skipped_when_its_open_edges_outgrow_the_budget() {
        // 40,000 loose slivers: every one of their 120,000 edges is open.
        let loose = write_binary_stl(&needles(40_000, 10.0, 20.0));
        let tight =
            AnalysisOptions { limits: Limits { memory_budget: 28 << 20, ..Limits::default() }, ..Default::default() };
        let report = analyze(&loose, &tight).unwrap();
        let nearby = report.nearby.unwrap();
        assert_eq!((nearby.open_edges_before, nearby.merged_vertices), (120_000, 0));
        assert_eq!(report.warnings, [crate::ReadWarning::NearbyWeldSkipped { open_edges: 120_000 }]);
        // Within the default budget the step runs, and finds nothing to
        // close: the slivers stand 0.1 mm apart, farther than the tolerance.
        let report = analyze(&loose, &AnalysisOptions::default()).unwrap();
        assert_eq!(report.nearby.unwrap().open_edges_before, 120_000);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }

    #[test]
    fn a_wide_stack_of_plates_is_refused_by_its_support_rays() {
        // 200 squares 300 mm wide, 0.1 mm apart: every one meets every ray
        // of the support grid.
        let plates: Vec<Triangle> = (0..200)
            .flat_map(|i| {
                let z = i as f32 * 0.1;
                [
                    [[0.0, 0.0, z], [300.0, 300.0, z], [300.0, 0.0, z]],
                    [[0.0, 0.0, z], [0.0, 300.0, z], [300.0, 300.0, z]],
                ]
            })
            .collect();
        let err = analyze(&write_binary_stl(&plates), &AnalysisOptions::default()).unwrap_err();
        let AnalyzeError::OverLimit(OverLimit::RayCrossings { needed, limit }) = err else { panic!("{err}") };
        assert_eq!(limit, 20_000_000);
        assert!(needed > 30_000_000, "{needed}");
        let wider = Limits { max_ray_crossings: 40_000_000, ..Limits::default() };
        let report =
            analyze(&write_binary_stl(&plates), &AnalysisOptions { limits: wider, ..AnalysisOptions::default() });
        assert!(report.is_ok(), "{report:?}");
    }

    #[test]
    fn a_budget_too_small_for_the_file_is_refused_before_reading() {
        let bytes = write_binary_stl(&needles(20_000, 10.0, 20.0));
        let tiny = Limits { memory_budget: 4 << 20, ..Limits::default() };
        let err = analyze(&bytes, &AnalysisOptions { limits: tiny, ..AnalysisOptions::default() }).unwrap_err();
        assert!(err.to_string().starts_with("reading the file needs about 24 MiB"), "{err}");
        // The default budget takes it.
        assert!(analyze(&bytes, &AnalysisOptions::default()).is_ok());
    }

    #[test]
    fn a_part_no_build_volume_holds_is_refused_before_anything_costly() {
        let options = AnalysisOptions {
            build_volumes: vec![[250.0, 210.0, 220.0], [350.0, 350.0, 350.0]],
            require_fit: true,
            ..sliced(0.3, Limits::default())
        };
        let err = analyze(&the_needle_model(), &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the part is 19.9 x 19.7 x 29000.0 and fits none of the 2 build volumes in any orientation (the largest \
             is 350 x 350 x 350)"
        );
        // A part that fits is analysed as before; without `require_fit` an
        // unfit part is only reported.
        assert!(analyze(&write_binary_stl(&cuboid([300.0, 20.0, 20.0])), &options).is_ok());
        let report = analyze(&the_needle_model(), &AnalysisOptions { require_fit: false, layering: None, ..options });
        assert!(report.unwrap().fits.iter().all(|f| !f.fits));
    }

    /// Stops the first time it sees `stage` past `after`, and records how
    /// many calls came after that (none should).
    struct StopAt {
        stage: Stage,
        after: f64,
        stopped: Mutex<Option<usize>>,
    }

    impl Observer for StopAt {
        fn observe(&self, stage: Stage, done: f64) -> bool {
            let mut stopped = self.stopped.lock().unwrap();
            if let Some(later) = stopped.as_mut() {
                *later += 1;
                return false;
            }
            if stage == self.stage && done > self.after {
                *stopped = Some(0);
                return false;
            }
            true
        }
    }

    #[test]
    fn a_stop_is_seen_inside_the_supports_and_the_contours() {
        // Enough work in each pass for several ticks of the observer.
        let mut shape = needles(5_000, 300.0, 20.0);
        shape.extend(cuboid([40.0, 40.0, 2.0]).into_iter().map(|t| t.map(|v| [v[0] - 10.0, v[1] - 10.0, v[2] + 50.0])));
        let bytes = write_binary_stl(&shape);
        for (stage, after) in [(Stage::Analysing, 0.61), (Stage::Analysing, 0.76), (Stage::Slicing, 0.31)] {
            let observer = StopAt { stage, after, stopped: Mutex::new(None) };
            let result = analyze_observed(&bytes[..], bytes.len() as u64, &sliced(0.3, Limits::default()), &observer);
            assert_eq!(result.unwrap_err(), AnalyzeError::Stopped, "{stage:?} after {after}");
            assert_eq!(*observer.stopped.lock().unwrap(), Some(0), "nothing observed after the stop");
        }
    }

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(Count(2_912_000_000).to_string(), "2,912,000,000");
        assert_eq!(Count(999).to_string(), "999");
        assert_eq!(Count(1000).to_string(), "1,000");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
        assert_eq!(Bytes(200 << 20).to_string(), "200 MiB");
        let over = OverLimit::LayerCrossings { needed: 1_933_340_000, layers: 96_667, limit: 100_000_000 };
        assert_eq!(
            over.to_string(),
            "slicing needs 1,933,340,000 triangle–layer crossings (96,667 layers), over the limit of 100,000,000 \
             (max_layer_crossings)"
        );
    }

    #[test]
    fn a_stage_over_the_budget_is_refused_with_both_figures() {
        let limits = Limits { memory_budget: 1 << 30, ..Limits::default() };
        assert!(check_memory(&limits, "slicing", 1 << 30).is_ok());
        let err = check_memory(&limits, "slicing", 3 << 29).unwrap_err();
        assert_eq!(err.to_string(), "slicing needs about 1.5 GiB, over the memory budget of 1.0 GiB (memory_budget)");
    }
}
