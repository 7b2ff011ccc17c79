//! Per-shell facts: which shells are wound inside out, which are cavities,
//! and which are stray facets far from the part.
//!
//! A closed shell with negative signed volume is either a cavity (it sits
//! inside another shell, and its inward winding subtracts the hollow) or an
//! inverted shell (it sits alone, wound inside out by the exporter). Only the
//! second is an error; we count it and take its volume as positive.

use nalgebra::Vector3;

use crate::geometry::BoundingBox;
use crate::read::{Triangle, Triangles};
use crate::topology::FaceLabels;

/// Share of the surface below which a far-away shell counts as stray.
const STRAY_AREA_SHARE: f64 = 0.01;
/// How far outside the main part's box (as a share of its diagonal) a small
/// shell must sit to count as stray.
const STRAY_GAP_SHARE: f64 = 0.1;

/// Up to this many shells, the sums run in parallel, a set of sums per chunk
/// of faces; beyond it (a soup of loose facets can be a shell per face), one
/// set of sums, in one pass.
const PARALLEL_SHELLS: usize = 256;
/// Faces per chunk of the parallel sums.
const SHELL_CHUNK: usize = 64 * 1024;

/// Bytes the parallel sums hold at once: every chunk's set of sums.
pub(crate) fn parallel_sums(triangles: u64, shells: u64) -> u64 {
    if shells > PARALLEL_SHELLS as u64 {
        return 0;
    }
    let chunks = triangles.div_ceil(SHELL_CHUNK as u64);
    chunks * shells * std::mem::size_of::<ShellAcc>() as u64
}

/// What the shells add to the whole-mesh picture.
#[derive(Debug, Clone, PartialEq)]
pub struct ShellSummary {
    /// Closed shells wound inside out, not inside any other shell.
    pub inverted: u64,
    /// Closed, inward-wound shells inside another shell: hollows.
    pub cavities: u64,
    /// Small shells far outside the main part: stray facets or debris.
    pub stray: u64,
    /// The volume to price: the signed volume with inverted shells flipped.
    pub corrected_volume: f64,
    /// The bounding box without the stray shells.
    pub main_bounding_box: BoundingBox,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ShellAcc {
    pub(crate) six_volume: f64,
    pub(crate) double_area: f64,
    pub(crate) min: [f64; 3],
    pub(crate) max: [f64; 3],
    pub(crate) open: bool,
}

impl ShellAcc {
    pub(crate) fn new() -> Self {
        Self { six_volume: 0.0, double_area: 0.0, min: [f64::INFINITY; 3], max: [f64::NEG_INFINITY; 3], open: false }
    }

    /// Adds triangle `t`, read the other way round when `reversed`. Its
    /// volume is summed about `origin`, so an open part's figure does not
    /// depend on where it sits.
    pub(crate) fn add(&mut self, t: Triangle, origin: &Vector3<f64>, reversed: bool, open: bool) {
        let [a, mut b, mut c] = t.map(|v| [0, 1, 2].map(|i| f64::from(v[i]) - origin[i]));
        if reversed {
            std::mem::swap(&mut b, &mut c);
        }
        let cross = [
            (b[1] - a[1]) * (c[2] - a[2]) - (b[2] - a[2]) * (c[1] - a[1]),
            (b[2] - a[2]) * (c[0] - a[0]) - (b[0] - a[0]) * (c[2] - a[2]),
            (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]),
        ];
        self.double_area += (cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]).sqrt();
        self.six_volume += a[0] * (b[1] * c[2] - b[2] * c[1])
            + a[1] * (b[2] * c[0] - b[0] * c[2])
            + a[2] * (b[0] * c[1] - b[1] * c[0]);
        for v in [a, b, c] {
            for i in 0..3 {
                self.min[i] = self.min[i].min(v[i] + origin[i]);
                self.max[i] = self.max[i].max(v[i] + origin[i]);
            }
        }
        self.open |= open;
    }

    /// Two sums of disjoint runs of triangles, as one.
    pub(crate) fn merge(self, other: Self) -> Self {
        Self {
            six_volume: self.six_volume + other.six_volume,
            double_area: self.double_area + other.double_area,
            min: std::array::from_fn(|k| self.min[k].min(other.min[k])),
            max: std::array::from_fn(|k| self.max[k].max(other.max[k])),
            open: self.open || other.open,
        }
    }

    fn contains(&self, other: &ShellAcc) -> bool {
        (0..3).all(|i| self.min[i] <= other.min[i] && other.max[i] <= self.max[i])
    }
}

/// Summarizes the shells, and says per face whether its winding must be read
/// reversed (its shell is inverted, or the face disagreed with its shell).
pub(crate) fn summarize<T: Triangles + ?Sized>(
    triangles: &T,
    labels: &FaceLabels,
    shells: usize,
    origin: &Vector3<f64>,
) -> (ShellSummary, FaceFlags) {
    let add = |mut acc: Vec<ShellAcc>, index: usize| {
        let shell = labels.shell[index] as usize;
        acc[shell].add(triangles.triangle(index), origin, labels.reoriented[index], labels.open[index]);
        acc
    };
    let faces = labels.shell.len();
    let acc = if shells <= PARALLEL_SHELLS {
        // Fixed chunks, each with a sum per shell, merged in order: the same
        // bits on any number of threads (see `par`).
        crate::par::fold_chunks(
            faces,
            SHELL_CHUNK,
            || vec![ShellAcc::new(); shells],
            add,
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a = a.merge(b));
                a
            },
        )
    } else {
        (0..faces).fold(vec![ShellAcc::new(); shells], add)
    };

    let closed_positive: Vec<&ShellAcc> = acc.iter().filter(|s| !s.open && s.six_volume > 0.0).collect();
    let mut inverted_shell = vec![false; shells];
    let mut cavity_shell = vec![false; shells];
    let (mut inverted, mut cavities) = (0, 0);
    let mut six_volume = 0.0;
    for (id, s) in acc.iter().enumerate() {
        if !s.open && s.six_volume < 0.0 {
            if closed_positive.iter().any(|outer| outer.contains(s)) {
                cavities += 1;
                cavity_shell[id] = true;
            } else {
                inverted += 1;
                inverted_shell[id] = true;
                six_volume -= s.six_volume;
                continue;
            }
        }
        six_volume += s.six_volume;
    }

    let total_area: f64 = acc.iter().map(|s| s.double_area).sum();
    let is_main = |s: &ShellAcc| s.double_area >= STRAY_AREA_SHARE * total_area;
    let mut main = acc.iter().filter(|s| is_main(s)).fold(ShellAcc::new(), union_box);
    if !main.min[0].is_finite() {
        main = acc.iter().fold(ShellAcc::new(), union_box);
    }
    let diagonal = (0..3).map(|i| (main.max[i] - main.min[i]).powi(2)).sum::<f64>().sqrt();
    let reach = STRAY_GAP_SHARE * diagonal;
    let far = |s: &ShellAcc| (0..3).any(|i| s.min[i] > main.max[i] + reach || s.max[i] < main.min[i] - reach);
    let mut stray = 0;
    let mut kept = ShellAcc::new();
    for s in &acc {
        if !is_main(s) && far(s) {
            stray += 1;
        } else {
            kept = union_box(kept, s);
        }
    }
    let summary = ShellSummary {
        inverted,
        cavities,
        stray,
        corrected_volume: six_volume / 6.0,
        main_bounding_box: BoundingBox { min: kept.min, max: kept.max },
    };
    let flipped = labels.shell.iter().zip(&labels.reoriented).map(|(&s, &r)| inverted_shell[s as usize] ^ r).collect();
    // Most parts have no cavity: then no per-face list is kept at all.
    let in_cavity =
        if cavities > 0 { labels.shell.iter().map(|&s| cavity_shell[s as usize]).collect() } else { Vec::new() };
    (summary, FaceFlags { flipped, in_cavity })
}

/// Per-face facts the later passes need from the shell classification.
pub(crate) struct FaceFlags {
    /// The face's shell is wound inside out: read it reversed.
    pub(crate) flipped: Vec<bool>,
    /// The face bounds a closed cavity; empty when the part has none.
    pub(crate) in_cavity: Vec<bool>,
}

fn union_box(mut a: ShellAcc, b: &ShellAcc) -> ShellAcc {
    for i in 0..3 {
        a.min[i] = a.min[i].min(b.min[i]);
        a.max[i] = a.max[i].max(b.max[i]);
    }
    a
}

#[cfg(test)]
mod tests {
    use crate::{AnalysisOptions, analyze_triangles, cuboid};

    fn moved(triangles: &[crate::Triangle], d: [f32; 3], scale: f32) -> Vec<crate::Triangle> {
        triangles.iter().map(|t| t.map(|v| [0, 1, 2].map(|i| v[i] * scale + d[i]))).collect()
    }

    fn inverted(triangles: &[crate::Triangle]) -> Vec<crate::Triangle> {
        triangles.iter().map(|&[a, b, c]| [a, c, b]).collect()
    }

    #[test]
    fn an_inverted_shell_beside_a_good_one_is_flagged_and_counted_positive() {
        let mut triangles = cuboid([10.0; 3]);
        triangles.extend(inverted(&moved(&cuboid([10.0; 3]), [20.0, 0.0, 0.0], 1.0)));
        let report = analyze_triangles(triangles, &AnalysisOptions::default());
        assert_eq!((report.shells.inverted, report.shells.cavities), (1, 0));
        assert!((report.volume - 2000.0).abs() < 1e-9, "{}", report.volume);
        assert!(report.geometry.signed_volume.abs() < 1e-9, "the raw sum cancels");
    }

    #[test]
    fn an_inward_shell_inside_another_is_a_cavity() {
        let mut triangles = cuboid([10.0; 3]);
        triangles.extend(inverted(&moved(&cuboid([4.0; 3]), [3.0, 3.0, 3.0], 1.0)));
        let report = analyze_triangles(triangles, &AnalysisOptions::default());
        assert_eq!((report.shells.inverted, report.shells.cavities), (0, 1));
        assert!((report.volume - (1000.0 - 64.0)).abs() < 1e-9, "{}", report.volume);
    }

    #[test]
    fn many_faces_sum_to_the_same_bits_on_any_number_of_threads() {
        // Two spheres and an inverted one inside, over several chunks of the
        // parallel sums; the same volume, bit for bit, on one thread or three.
        let mut triangles = crate::uv_sphere(10.0, 300, 151);
        triangles.extend(moved(&crate::uv_sphere(10.0, 300, 151), [30.0, 0.0, 0.0], 1.0));
        triangles.extend(inverted(&moved(&crate::uv_sphere(10.0, 300, 151), [0.0, 0.0, 0.0], 0.5)));
        assert!(triangles.len() > 2 * super::SHELL_CHUNK);
        let measure = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| analyze_triangles(triangles.clone(), &AnalysisOptions::default()))
        };
        let (one, three) = (measure(1), measure(3));
        assert_eq!(one.shells.cavities, 1);
        assert_eq!(one.volume.to_bits(), three.volume.to_bits());
        let sphere = one.volume / (2.0 - 0.125);
        assert!((sphere - 4.0 / 3.0 * std::f64::consts::PI * 1000.0).abs() < 5.0, "{sphere}");
    }

    #[test]
    fn a_stray_facet_far_away_is_reported_and_left_out_of_the_main_box() {
        let mut triangles = cuboid([10.0; 3]);
        triangles.push([[500.0, 0.0, 0.0], [500.1, 0.0, 0.0], [500.0, 0.1, 0.0]]);
        let report = analyze_triangles(triangles, &AnalysisOptions::default());
        assert_eq!(report.shells.stray, 1);
        assert_eq!(report.geometry.bounding_box.max[0], 500.1_f32 as f64);
        assert_eq!(report.shells.main_bounding_box.max, [10.0; 3]);
    }
}
