//! Where support material goes: vertical rays on an XY grid through the
//! part, as a slicer's support generator sees it.
//!
//! Each ray (one per grid cell, at the cell's centre) meets the surface at a
//! list of heights. Sorted upwards, a down-facing crossing is where the ray
//! enters the part from the air below, an up-facing one where it leaves. A
//! stretch of air whose top is an overhang (a face steeper than the support
//! angle, and not the ceiling of a closed cavity, which a slicer bridges)
//! needs a support column from the surface below it, the part or the build
//! plate, up to the overhang. Summing the columns gives the support volume;
//! the cells whose columns they are give the area the supports' dense
//! interface layers cover.
//!
//! Unlike the per-face estimate in `printability` (each overhang's footprint
//! times its height above the plate), a column here stops on the part below
//! it, and overhangs stacked above one another are not counted twice.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rayon::prelude::*;

use crate::bounds::{self, OverLimit};
use crate::geometry::BoundingBox;
use crate::observe::{Observer, Stage, Ticker, Watch};
use crate::read::Triangles;
use crate::{AnalyzeError, Limits};

/// Rays per axis across the larger side of the part's footprint, unless
/// the shape asks for another number.
pub(crate) const RAYS_ACROSS: u32 = 400;
/// At least this many cells per support margin, so the margin's disk is
/// round enough and an overhang a twelfth of the margin wide still meets a
/// ray; and at most this many, so it stays cheap. At 8 a cell of a 3.5 mm
/// margin was 0.44 mm, and the thread flanks of an M3 screw met no ray at
/// some margins: its support came and went with the margin's second digit.
/// At 12 and at 16 its columns agree within 2 %. The disk's empty
/// stretches are skipped, so 12 costs a quote about 3 ms more than 8 did
/// on the harness's held-out rows (BENCHMARKS.md).
const CELLS_PER_MARGIN: f64 = 12.0;

/// How a slicer shapes its supports, in the mesh's units, and how finely
/// they are measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SupportShape {
    /// Support reaches this far around each overhang: a slicer grows its
    /// contact areas, so a narrow overhang (a letter engraved in a wall, a
    /// thread) gets a column much wider than itself.
    pub margin: f64,
    /// Air gaps shorter than this get no support: the overhang is printed
    /// on the layer below.
    pub min_gap: f64,
    /// Rays per axis across the larger side of the footprint: the columns'
    /// resolution, and the pass's work (at most its square in rays, for a
    /// part of any size). 400 unless set; a fuzzer sets fewer.
    pub rays_across: u32,
}

impl Default for SupportShape {
    fn default() -> Self {
        Self { margin: 0.0, min_gap: 0.0, rays_across: RAYS_ACROSS }
    }
}

/// The support columns under a part's overhangs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct SupportColumns {
    /// Volume of every column, from the surface below to the overhang.
    pub(crate) volume: f64,
    /// Footprint of the columns' tops: the area of overhang that rests on
    /// support, grown by the margin.
    pub(crate) contact_area: f64,
    /// Footprint of the columns that stand on the part rather than on the
    /// plate (a slicer puts interface layers under those too).
    pub(crate) on_part_area: f64,
    /// Area of the columns' sides: a slicer walls each support region, so
    /// narrow columns cost more than their volume says.
    pub(crate) side_area: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Up,
    Down,
    Overhang,
}

/// One crossing of a ray with the surface, packed into a `u64` that sorts as
/// (height, kind): the height's bits turned so that integer order is float
/// order, then the kind. The ray it is on is where it is stored.
fn pack(z: f32, kind: Kind) -> u64 {
    let bits = z.to_bits();
    // Negative floats sort backwards as integers: flip them, and put every
    // positive one above every negative one.
    let ordered = if bits >> 31 == 1 { !bits } else { bits | 1 << 31 };
    (u64::from(ordered) << 8) | kind as u64
}

fn unpack(packed: u64) -> (f64, Kind) {
    let ordered = (packed >> 8) as u32;
    let bits = if ordered >> 31 == 1 { ordered & !(1 << 31) } else { !ordered };
    let kind = match packed & 0xff {
        0 => Kind::Up,
        1 => Kind::Down,
        _ => Kind::Overhang,
    };
    (f64::from(f32::from_bits(bits)), kind)
}

/// The stretches of air along one ray, bottom up: (floor, ceiling, whether
/// the ceiling is an overhang). The last one is open to the sky.
fn air_gaps(ray: &[u64], plate: f64) -> Vec<(f64, f64, bool)> {
    let mut gaps = Vec::new();
    for_each_air_gap(ray, plate, |floor, ceiling, overhang| gaps.push((floor, ceiling, overhang)));
    gaps
}

/// `air_gaps` without the list: `visit(floor, ceiling, overhang)` for each.
fn for_each_air_gap(ray: &[u64], plate: f64, mut visit: impl FnMut(f64, f64, bool)) {
    let (mut floor, mut inside) = (plate, 0u32);
    for &crossing in ray {
        let (z, kind) = unpack(crossing);
        match kind {
            Kind::Up => {
                inside = inside.saturating_sub(1);
                if inside == 0 {
                    floor = z;
                }
            }
            Kind::Down | Kind::Overhang => {
                if inside == 0 {
                    visit(floor, z, kind == Kind::Overhang);
                }
                inside += 1;
            }
        }
    }
    if inside == 0 {
        visit(floor, f64::INFINITY, false);
    }
}

/// The ray grid over the part's footprint, grown by the margin.
struct Grid {
    cell: f64,
    nx: usize,
    ny: usize,
    x0: f64,
    y0: f64,
}

impl Grid {
    fn cells(&self) -> usize {
        self.nx * self.ny
    }

    /// The first and last column, and the first and last row, of the rays
    /// inside the box of these corners' projection (first > last: none).
    fn span(&self, [a, b, c]: [[f64; 3]; 3]) -> ((i64, i64), (i64, i64)) {
        let (lo_x, hi_x) = (a[0].min(b[0]).min(c[0]), a[0].max(b[0]).max(c[0]));
        let (lo_y, hi_y) = (a[1].min(b[1]).min(c[1]), a[1].max(b[1]).max(c[1]));
        let first = |lo: f64, origin: f64| ceil((lo - origin) / self.cell).max(0);
        let last = |hi: f64, origin: f64, n: usize| floor((hi - origin) / self.cell).min(n as i64 - 1);
        ((first(lo_x, self.x0), last(hi_x, self.x0, self.nx)), (first(lo_y, self.y0), last(hi_y, self.y0, self.ny)))
    }
}

/// `x.floor() as i64`, without the call into libm that `floor` is on
/// x86-64's baseline (no SSE4.1): this pass rounds a few times per face.
/// NaN gives 0 and the infinities saturate, as `as` does.
fn floor(x: f64) -> i64 {
    let truncated = x as i64;
    if (truncated as f64) > x { truncated.saturating_sub(1) } else { truncated }
}

/// `x.ceil() as i64`, as [`floor`].
fn ceil(x: f64) -> i64 {
    let truncated = x as i64;
    if (truncated as f64) < x { truncated.saturating_add(1) } else { truncated }
}

/// A face's normal, twice its area long, turned round when its shell reads
/// it `flipped`.
pub(crate) fn outward_normal([a, b, c]: [[f64; 3]; 3], flipped: bool) -> [f64; 3] {
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    let n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
    if flipped { n.map(|x| -x) } else { n }
}

/// A triangle as the rays see it: its corners, its normal, its kind, and
/// the columns and rows of the rays in its box ([`Grid::span`]).
struct Facet {
    corners: [[f64; 3]; 3],
    normal: [f64; 3],
    kind: Kind,
    span: ((i64, i64), (i64, i64)),
}

impl Facet {
    /// Face `index`, with its corners. `None` for a face no vertical ray
    /// meets (vertical, a sliver, or one whose box holds no ray: most faces
    /// of a finely meshed part, answered before the normal is worked out).
    fn of(
        [a, b, c]: [[f64; 3]; 3],
        index: usize,
        grid: &Grid,
        flipped: &[bool],
        in_cavity: &[bool],
        threshold_nz: f64,
    ) -> Option<Self> {
        let span = grid.span([a, b, c]);
        let (columns, rows) = span;
        if columns.0 > columns.1 || rows.0 > rows.1 {
            return None;
        }
        let n = outward_normal([a, b, c], flipped.get(index).copied().unwrap_or(false));
        let length = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        if length == 0.0 || n[2].abs() < 1e-12 * length || !length.is_finite() {
            return None;
        }
        let kind = if n[2] > 0.0 {
            Kind::Up
        } else if n[2] / length < threshold_nz && !in_cavity.get(index).copied().unwrap_or(false) {
            Kind::Overhang
        } else {
            Kind::Down
        };
        Some(Self { corners: [a, b, c], normal: n, kind, span })
    }

    /// The rays through the face: per grid row it spans, the first and
    /// last column whose centre lies in its projection (the same test,
    /// corner on an edge included, whichever way the face winds).
    fn rows(&self, grid: &Grid, mut visit: impl FnMut(usize, usize, usize)) {
        let [a, b, c] = self.corners;
        let cell = grid.cell;
        // Edge functions of the projection, signed so the inside is
        // positive whichever way it winds in the plane.
        let sign = ((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])).signum();
        let edge =
            |p: [f64; 3], q: [f64; 3], x: f64, y: f64| sign * ((q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0]));
        let inside = |x: f64, y: f64| edge(a, b, x, y) >= 0.0 && edge(b, c, x, y) >= 0.0 && edge(c, a, x, y) >= 0.0;
        let ((i_min, i_max), (j_min, j_max)) = self.span;
        if i_min > i_max {
            return;
        }
        for j in j_min..=j_max {
            let y = grid.y0 + j as f64 * cell;
            let x_at = |i: i64| grid.x0 + i as f64 * cell;
            // Each edge function is linear in x along the row: it bounds the
            // inside from the left or the right.
            let (mut x_lo, mut x_hi) = (f64::NEG_INFINITY, f64::INFINITY);
            for (p, q) in [(a, b), (b, c), (c, a)] {
                let at_zero = edge(p, q, 0.0, y);
                let slope = -sign * (q[1] - p[1]);
                if slope > 0.0 {
                    x_lo = x_lo.max(-at_zero / slope);
                } else if slope < 0.0 {
                    x_hi = x_hi.min(-at_zero / slope);
                } else if at_zero < 0.0 {
                    x_hi = f64::NEG_INFINITY;
                }
            }
            // Empty, or NaN from a degenerate face: no ray meets it.
            if x_lo.partial_cmp(&x_hi).is_none_or(|order| order.is_gt()) {
                continue;
            }
            // The columns those bounds give, clipped to the face's box, then
            // settled by the exact test at each end, so rounding in the
            // bounds never adds or drops a ray.
            let mut from = ceil((x_lo - grid.x0) / cell).clamp(i_min, i_max);
            let mut to = floor((x_hi - grid.x0) / cell).clamp(i_min, i_max);
            while from > i_min && inside(x_at(from - 1), y) {
                from -= 1;
            }
            while from <= to && !inside(x_at(from), y) {
                from += 1;
            }
            while to < i_max && inside(x_at(to + 1), y) {
                to += 1;
            }
            while to >= from && !inside(x_at(to), y) {
                to -= 1;
            }
            if from <= to {
                visit(j as usize, from as usize, to as usize);
            }
        }
    }

    /// The plane through the face, at (x, y).
    fn height_at(&self, x: f64, y: f64) -> f64 {
        let ([a, _, _], n) = (self.corners, self.normal);
        a[2] - (n[0] * (x - a[0]) + n[1] * (y - a[1])) / n[2]
    }
}

/// Per-face sums a caller takes from the rays' counting pass, which fetches
/// every face's corners anyway: one pass over the faces instead of two.
pub(crate) struct FaceSums<'f, S> {
    /// Adds face `index`, with its corners, to a chunk's sums.
    pub(crate) add: &'f AddFace<'f, S>,
    pub(crate) merge: fn(S, S) -> S,
    /// Whether, given the sums, any ray can find a column: when not, the
    /// rays are only counted, never cast.
    pub(crate) rays_wanted: fn(&S) -> bool,
}

/// Adds face `index`, with its corners, to a chunk's sums.
pub(crate) type AddFace<'f, S> = dyn Fn(&mut S, usize, [[f64; 3]; 3]) + Sync + 'f;

/// Faces per chunk of the sums, each chunk summed in order from zero and
/// the chunks merged in order, as [`crate::par::fold_chunks`] does: the same
/// bits on any number of threads.
pub(crate) const SUM_CHUNK: usize = 4096;

/// Casts the rays; `flipped` and `in_cavity` are per face, as the shell pass
/// found them; `threshold_nz` is the unit normal's z below which a
/// down-facing face needs support. Also gives the caller's per-face sums.
///
/// The rays each face meets are counted first, row by row (no crossing is
/// stored), and their total must be within [`Limits::max_ray_crossings`] and
/// the memory budget (with `resident` what the caller holds). Then each
/// crossing is written straight into its ray's slot, and each ray sorted
/// on its own.
#[allow(clippy::too_many_arguments)]
pub(crate) fn columns_with_sums<T: Triangles + ?Sized, S: Default + Send>(
    triangles: &T,
    flipped: &[bool],
    in_cavity: &[bool],
    bbox: &BoundingBox,
    threshold_nz: f64,
    shape: SupportShape,
    (limits, resident): (&Limits, u64),
    observer: &dyn Observer,
    sums: FaceSums<'_, S>,
) -> Result<(S, SupportColumns), AnalyzeError> {
    let face_sums = || {
        crate::par::fold_chunks(
            triangles.count(),
            SUM_CHUNK,
            S::default,
            |mut chunk, index| {
                (sums.add)(&mut chunk, index, triangles.triangle(index).map(|v| v.map(f64::from)));
                chunk
            },
            sums.merge,
        )
    };
    let size = bbox.size();
    let margin = shape.margin.max(0.0);
    let mut cell = size[0].max(size[1]) / f64::from(shape.rays_across.max(1));
    if margin > 0.0 {
        cell = cell.max(margin / CELLS_PER_MARGIN);
    }
    // NaN sizes fail these comparisons too: a part with no extent has no supports.
    let usable = cell.is_finite() && cell > 0.0 && size[2] > 0.0;
    if !usable {
        return Ok((face_sums(), SupportColumns::default()));
    }
    // The grid reaches a margin beyond the part, where grown supports stand.
    let reach = (margin / cell).ceil() as i64;
    let nx = ((size[0] / cell).ceil() as usize).max(1) + 2 * reach as usize;
    let ny = ((size[1] / cell).ceil() as usize).max(1) + 2 * reach as usize;
    // A ray through a shared edge or vertex would meet both faces, or
    // neither: nudge the grid off the round numbers models are drawn on.
    let grid = Grid {
        cell,
        nx,
        ny,
        x0: bbox.min[0] - reach as f64 * cell + cell * 0.500_123_4,
        y0: bbox.min[1] - reach as f64 * cell + cell * 0.500_371_9,
    };
    let cells = grid.cells();
    let facet = |index: usize| {
        let corners = triangles.triangle(index).map(|v| v.map(f64::from));
        Facet::of(corners, index, &grid, flipped, in_cavity, threshold_nz)
    };

    // Count: per ray, by a difference along each row (one slot more per row
    // than it has rays), so a face costs its rows, not its rays.
    let counting = Watch::new(observer, Stage::Analysing, (0.6, 0.65), triangles.count() as u64);
    let row = nx + 1;
    let diff: Vec<AtomicU32> = (0..ny * row).map(|_| AtomicU32::new(0)).collect();
    // The faces that meet a ray, one bit each: on a finely meshed part most
    // meet none, and the fill need not fetch their corners again.
    let meeting: Vec<AtomicU64> = (0..triangles.count().div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
    let faces = triangles.count();
    let per_chunk: Vec<(u64, S)> = (0..faces.div_ceil(SUM_CHUNK))
        .into_par_iter()
        .map_init(
            || Ticker::new(&counting),
            |ticker, chunk| {
                let mut chunk_sums = S::default();
                let mut rays = 0u64;
                for index in chunk * SUM_CHUNK..((chunk + 1) * SUM_CHUNK).min(faces) {
                    if ticker.stopped() {
                        break;
                    }
                    let corners = triangles.triangle(index).map(|v| v.map(f64::from));
                    (sums.add)(&mut chunk_sums, index, corners);
                    let Some(facet) = Facet::of(corners, index, &grid, flipped, in_cavity, threshold_nz) else {
                        ticker.add(1);
                        continue;
                    };
                    let mut face_rays = 0u64;
                    let mut rows = 0u64;
                    facet.rows(&grid, |j, from, to| {
                        diff[j * row + from].fetch_add(1, Ordering::Relaxed);
                        diff[j * row + to + 1].fetch_sub(1, Ordering::Relaxed);
                        face_rays += (to - from + 1) as u64;
                        rows += 1;
                    });
                    ticker.add(1 + rows);
                    if face_rays > 0 {
                        meeting[index / 64].fetch_or(1 << (index % 64), Ordering::Relaxed);
                    }
                    rays += face_rays;
                }
                (rays, chunk_sums)
            },
        )
        .collect();
    counting.finish()?;
    let (needed, face_sums) = per_chunk
        .into_iter()
        .fold((0u64, S::default()), |(needed, all), (rays, chunk)| (needed + rays, (sums.merge)(all, chunk)));
    if !(sums.rays_wanted)(&face_sums) {
        return Ok((face_sums, SupportColumns::default()));
    }
    // Rays index their crossings with 32 bits.
    let limit = limits.max_ray_crossings.min(u64::from(u32::MAX));
    if needed > limit {
        return Err(OverLimit::RayCrossings { needed, limit }.into());
    }
    bounds::check_memory(
        limits,
        "the support columns",
        resident.saturating_add(bounds::supports(needed, cells as u64, triangles.count() as u64)),
    )?;
    // Where each ray's crossings start.
    let mut starts = Vec::with_capacity(cells + 1);
    starts.push(0u32);
    for j in 0..ny {
        let mut on_row = 0u32;
        for i in 0..nx {
            on_row = on_row.wrapping_add(diff[j * row + i].load(Ordering::Relaxed));
            let last = *starts.last().unwrap_or(&0);
            starts.push(last + on_row);
        }
    }
    drop(diff);

    // Fill: each crossing straight into its ray's next slot.
    let filling = Watch::new(observer, Stage::Analysing, (0.65, 0.75), needed + triangles.count() as u64);
    let cursor: Vec<AtomicU32> = starts[..cells].iter().map(|&s| AtomicU32::new(s)).collect();
    let slots: Vec<AtomicU64> = (0..needed).map(|_| AtomicU64::new(0)).collect();
    let meeting: Vec<u64> = meeting.into_iter().map(AtomicU64::into_inner).collect();
    meeting.par_iter().enumerate().with_min_len(16).for_each_init(
        || Ticker::new(&filling),
        |ticker, (word, &meets)| {
            // The faces of this word that meet no ray are done at once.
            let faces = (triangles.count() - word * 64).min(64) as u64;
            ticker.add(faces - u64::from(meets.count_ones()));
            let mut bits = meets;
            while bits != 0 && !ticker.stopped() {
                let index = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(facet) = facet(index) else { continue };
                let mut rays = 0;
                facet.rows(&grid, |j, from, to| {
                    let y = grid.y0 + j as f64 * cell;
                    for i in from..=to {
                        let x = grid.x0 + i as f64 * cell;
                        let at = cursor[j * nx + i].fetch_add(1, Ordering::Relaxed) as usize;
                        slots[at].store(pack(facet.height_at(x, y) as f32, facet.kind), Ordering::Relaxed);
                    }
                    rays += (to - from + 1) as u64;
                });
                ticker.add(1 + rays);
            }
        },
    );
    filling.finish()?;
    drop(cursor);
    let mut crossings: Vec<u64> = slots.into_iter().map(AtomicU64::into_inner).collect();
    // Each ray's crossings bottom up; blocks of whole rays go to threads.
    let mut blocks = Vec::new();
    let mut rest = crossings.as_mut_slice();
    let per_block = (needed as usize / (rayon::current_num_threads() * 8)).max(4096);
    let mut ray = 0;
    while ray < cells {
        let first = ray;
        while ray < cells && (starts[ray + 1] - starts[first]) as usize <= per_block {
            ray += 1;
        }
        ray = ray.max(first + 1);
        let (block, tail) = rest.split_at_mut((starts[ray] - starts[first]) as usize);
        blocks.push((first, ray, block));
        rest = tail;
    }
    blocks.into_par_iter().for_each(|(first, last, block)| {
        let base = starts[first] as usize;
        for ray in first..last {
            block[starts[ray] as usize - base..starts[ray + 1] as usize - base].sort_unstable();
        }
    });
    let ray = |cell: usize| &crossings[starts[cell] as usize..starts[cell + 1] as usize];

    let plate = bbox.min[2];
    // Gaps thinner than this are the seam between touching faces, not air.
    let hair = (size[2].max(size[0]).max(size[1]) * 1e-6).max(shape.min_gap);
    // The overhangs each ray holds up: the tops of its air gaps that need
    // support. Most rays hold none, and their list allocates nothing. (Not
    // collected from `air_gaps`: collecting in place kept every ray's list
    // of gaps allocated, 96 bytes a ray, 15 MB at 400 x 400 for a cube.)
    let tops: Vec<Vec<f64>> = (0..cells)
        .into_par_iter()
        .map(|cell| {
            let mut tops = Vec::new();
            for_each_air_gap(ray(cell), plate, |floor, ceiling, overhang| {
                if overhang && ceiling - floor > hair {
                    tops.push(ceiling);
                }
            });
            tops
        })
        .collect();
    // A disk of the margin's radius, in cells: per row of it (dj), the
    // cells dj rows away and at most `half` columns either side.
    let within = |di: i64, dj: i64| ((di * di + dj * dj) as f64) * cell * cell <= margin * margin + 1e-12;
    let disk: Vec<(i64, i64)> = (-reach..=reach)
        .filter(|&dj| within(0, dj))
        .map(|dj| (dj, (0..=reach).take_while(|&di| within(di, dj)).last().unwrap_or(0)))
        .collect();
    let disk_cells: u64 = disk.iter().map(|&(_, half)| 2 * half as u64 + 1).sum();
    // Per grid row, how many of its cells up to each column hold a top, so
    // a stretch of the disk with none (most of them) costs one subtraction.
    let row_tops: Vec<u32> = (0..ny)
        .flat_map(|j| {
            let tops = &tops;
            std::iter::once(0).chain((0..nx).scan(0u32, move |seen, i| {
                *seen += u32::from(!tops[j * nx + i].is_empty());
                Some(*seen)
            }))
        })
        .collect();
    // Each ray's air gaps hold a column up to the highest overhang within
    // the margin that lies in the gap. The work is the tops within each
    // ray's disk: at most the disk's cells times the crossings.
    let holding = Watch::new(observer, Stage::Analysing, (0.75, 0.9), disk_cells * cells as u64);
    let rays: Vec<(f64, u32, u32)> = (0..cells)
        .into_par_iter()
        .map_init(
            || Ticker::new(&holding),
            |ticker, cell| {
                let (i, j) = ((cell % nx) as i64, (cell / nx) as i64);
                let mut near = Vec::new();
                for &(dj, half) in &disk {
                    // The ray's own column is on the grid, so `from <= to`.
                    let y = j + dj;
                    let (from, to) = ((i - half).max(0), (i + half).min(nx as i64 - 1));
                    if y < 0 || y >= ny as i64 {
                        continue;
                    }
                    let (y, from, to) = (y as usize, from as usize, to as usize);
                    let seen = &row_tops[y * (nx + 1)..(y + 1) * (nx + 1)];
                    if seen[to + 1] == seen[from] {
                        continue;
                    }
                    near.extend((from..=to).flat_map(|x| tops[y * nx + x].iter().copied()));
                }
                if !ticker.add(disk_cells + near.len() as u64) || near.is_empty() {
                    return (0.0, 0, 0);
                }
                let gaps = air_gaps(ray(cell), plate);
                // The highest top within each gap: each top lies in at most
                // one gap (they are disjoint, bottom up).
                let mut highest = vec![f64::NAN; gaps.len()];
                for t in near {
                    let at = gaps.partition_point(|&(floor, _, _)| floor + hair < t);
                    if at > 0 && t <= gaps[at - 1].1 + hair {
                        highest[at - 1] = highest[at - 1].max(t);
                    }
                }
                let (mut length, mut count, mut on_part) = (0.0, 0u32, 0u32);
                for (&(floor, ceiling, _), &top) in gaps.iter().zip(&highest) {
                    if top.is_finite() {
                        length += top.min(ceiling) - floor;
                        count += 1;
                        on_part += u32::from(floor > plate + hair);
                    }
                }
                (length, count, on_part)
            },
        )
        .collect();
    holding.finish()?;
    // Summed in ray order, so the total is the same on any number of threads.
    let (column_length, count, on_part) =
        rays.iter().fold((0.0, 0u64, 0u64), |a, b| (a.0 + b.0, a.1 + u64::from(b.1), a.2 + u64::from(b.2)));
    // Where a column is taller than its neighbour, its side shows.
    let mut side_length = 0.0;
    for j in 0..ny {
        for i in 0..nx {
            let here = rays[j * nx + i].0;
            if i + 1 < nx {
                side_length += (here - rays[j * nx + i + 1].0).abs();
            }
            if j + 1 < ny {
                side_length += (here - rays[(j + 1) * nx + i].0).abs();
            }
        }
    }
    let cell_area = cell * cell;
    let columns = SupportColumns {
        volume: column_length * cell_area,
        contact_area: count as f64 * cell_area,
        on_part_area: on_part as f64 * cell_area,
        side_area: side_length * cell,
    };
    Ok((face_sums, columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::cuboid;

    #[test]
    fn floor_and_ceil_round_as_the_float_functions_do() {
        let values = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.999_999, -2.999_999, 1e15 + 0.5, -1e15 - 0.5, 4.2e-300];
        for x in values {
            assert_eq!(floor(x), x.floor() as i64, "floor {x}");
            assert_eq!(ceil(x), x.ceil() as i64, "ceil {x}");
        }
        // Saturating, as `as` is, where the float functions' results are
        // out of an i64's range.
        assert_eq!((floor(f64::NAN), ceil(f64::NAN)), (0, 0));
        assert_eq!((floor(1e30), ceil(1e30)), (i64::MAX, i64::MAX));
        assert_eq!((floor(-1e30), ceil(-1e30)), (i64::MIN, i64::MIN));
        assert_eq!((floor(f64::NEG_INFINITY), ceil(f64::INFINITY)), (i64::MIN, i64::MAX));
    }

    fn moved(triangles: Vec<crate::Triangle>, by: [f32; 3]) -> Vec<crate::Triangle> {
        triangles.into_iter().map(|t| t.map(|v| [v[0] + by[0], v[1] + by[1], v[2] + by[2]])).collect()
    }

    fn within_defaults(
        triangles: &[crate::Triangle],
        flipped: &[bool],
        in_cavity: &[bool],
        bbox: &BoundingBox,
        threshold_nz: f64,
        shape: SupportShape,
    ) -> SupportColumns {
        let limits = Limits::default();
        let none = FaceSums::<()> { add: &|_, _, _| {}, merge: |_, _| (), rays_wanted: |_| true };
        let bounds = (&limits, 0);
        columns_with_sums(triangles, flipped, in_cavity, bbox, threshold_nz, shape, bounds, &crate::Unobserved, none)
            .unwrap()
            .1
    }

    fn measure(triangles: &[crate::Triangle]) -> SupportColumns {
        let bbox = crate::Geometry::measure(triangles).bounding_box;
        let none = vec![false; triangles.len()];
        within_defaults(triangles, &none, &none, &bbox, -(45f64.to_radians().cos()), SupportShape::default())
    }

    /// A 1 mm ledge sticking out of a 10 x 10 x 20 wall, 10 mm up, and the
    /// bounding box of both: 40 mm³ of support under the ledge.
    fn ledge_on_a_wall() -> (Vec<crate::Triangle>, BoundingBox) {
        let mut shape = cuboid([10.0, 10.0, 20.0]);
        shape.extend(moved(cuboid([1.0, 4.0, 1.0]), [10.0, 3.0, 10.0]));
        (shape, BoundingBox { min: [0.0; 3], max: [11.0, 10.0, 20.0] })
    }

    /// `printability` casts no rays for a part whose only down-facing faces
    /// lie on the plate: the rays would find nothing, margin or not.
    #[test]
    fn faces_on_the_plate_hold_up_no_column() {
        // A box, and a stepped block whose lower step is on the plate too.
        let mut stepped = cuboid([10.0, 10.0, 5.0]);
        stepped.extend(moved(cuboid([5.0, 10.0, 10.0]), [0.0, 0.0, 5.0]));
        for shape in [cuboid([10.0, 20.0, 30.0]), stepped] {
            let bbox = crate::Geometry::measure(&shape[..]).bounding_box;
            let none = vec![false; shape.len()];
            for margin in [0.0, 2.0] {
                let grown = SupportShape { margin, ..SupportShape::default() };
                let found = within_defaults(&shape, &none, &none, &bbox, -0.7, grown);
                assert_eq!(found, SupportColumns::default());
            }
        }
        // And the ledge, which overhangs, does get one.
        let (shape, bbox) = ledge_on_a_wall();
        let none = vec![false; shape.len()];
        assert!(within_defaults(&shape, &none, &none, &bbox, -0.7, SupportShape::default()).volume > 0.0);
    }

    #[test]
    fn a_margin_grows_a_narrow_overhang_into_a_wide_column() {
        // A 1 mm ledge sticking out of a wall, 10 mm up: grown by 2 mm it
        // is held by a column 2 mm wider on each free side.
        let (shape, bbox) = ledge_on_a_wall();
        let none = vec![false; shape.len()];
        let narrow = within_defaults(&shape, &none, &none, &bbox, -0.7, SupportShape::default());
        let grown =
            within_defaults(&shape, &none, &none, &bbox, -0.7, SupportShape { margin: 2.0, ..SupportShape::default() });
        assert!((narrow.volume - 40.0).abs() < 40.0 * 0.05, "{narrow:?}");
        // Roughly (1 + 2) x (4 + 4) plus the rounded corners, 10 mm tall;
        // nothing grows into the wall, which has no air below the ledge.
        assert!(grown.volume > 5.0 * narrow.volume && grown.volume < 300.0, "{grown:?}");
        let short = within_defaults(
            &shape,
            &none,
            &none,
            &bbox,
            -0.7,
            SupportShape { min_gap: 11.0, ..SupportShape::default() },
        );
        assert_eq!(short.volume, 0.0, "a gap under the minimum is printed without support");
    }

    #[test]
    fn an_overhang_narrower_than_the_margin_is_held_whatever_the_margin() {
        // A ledge 0.35 mm deep: the margin sets the grid's cell, and a cell
        // wider than the ledge let it slip between two rows of rays.
        let mut shape = cuboid([10.0, 10.0, 20.0]);
        shape.extend(moved(cuboid([0.35, 4.0, 1.0]), [10.0, 3.0, 10.0]));
        let bbox = BoundingBox { min: [0.0; 3], max: [10.35, 10.0, 20.0] };
        let none = vec![false; shape.len()];
        for step in 0..=16 {
            let margin = 3.0 + 0.05 * f64::from(step);
            let grown = SupportShape { margin, ..SupportShape::default() };
            let found = within_defaults(&shape, &none, &none, &bbox, -0.7, grown);
            assert!(found.volume > 100.0, "margin {margin}: {found:?}");
        }
    }

    #[test]
    fn fewer_rays_measure_the_same_columns_coarser() {
        // The ledge of the test above, 40 mm³ of support: 400 rays across
        // (the default), 32, and 0 (taken as one ray, never a division by 0).
        let (shape, bbox) = ledge_on_a_wall();
        let none = vec![false; shape.len()];
        let with = |rays_across| {
            let shape_of = SupportShape { rays_across, ..SupportShape::default() };
            within_defaults(&shape, &none, &none, &bbox, -0.7, shape_of).volume
        };
        assert_eq!(SupportShape::default().rays_across, RAYS_ACROSS);
        assert!((with(400) - 40.0).abs() < 2.0, "{}", with(400));
        assert!((with(32) - 40.0).abs() < 40.0 * 0.5, "{}", with(32));
        assert!(with(0).is_finite());
    }

    #[test]
    fn a_block_on_the_plate_needs_no_support() {
        let c = measure(&cuboid([10.0, 10.0, 10.0]));
        assert_eq!((c.volume, c.contact_area), (0.0, 0.0));
    }

    #[test]
    fn a_t_needs_columns_under_its_arms_down_to_the_plate() {
        // A 10 x 10 x 20 column under a 40 x 10 x 5 bar: two 15 x 10 arms,
        // 20 mm above the plate.
        let mut t = moved(cuboid([10.0, 10.0, 20.0]), [15.0, 0.0, 0.0]);
        t.extend(moved(cuboid([40.0, 10.0, 5.0]), [0.0, 0.0, 20.0]));
        let c = measure(&t);
        assert!((c.contact_area - 300.0).abs() < 300.0 * 0.02, "{c:?}");
        assert!((c.volume - 6000.0).abs() < 6000.0 * 0.02, "{c:?}");
    }

    #[test]
    fn a_column_stands_on_the_part_below_it_not_on_the_plate() {
        // A 20 x 20 x 5 slab, and 10 mm above it a 20 x 20 x 5 roof held by a
        // 4 x 4 post: the roof's underside is supported from the slab.
        let mut shape = cuboid([20.0, 20.0, 5.0]);
        shape.extend(moved(cuboid([4.0, 4.0, 10.0]), [8.0, 8.0, 5.0]));
        shape.extend(moved(cuboid([20.0, 20.0, 5.0]), [0.0, 0.0, 15.0]));
        let c = measure(&shape);
        let expected_area = 400.0 - 16.0;
        assert!((c.contact_area - expected_area).abs() < expected_area * 0.02, "{c:?}");
        assert!((c.volume - expected_area * 10.0).abs() < expected_area * 10.0 * 0.02, "{c:?}");
    }
}
