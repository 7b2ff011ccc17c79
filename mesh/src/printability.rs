//! Printability facts from face orientations: overhangs that need support,
//! the area resting on the build plate, units, and whether the part fits a
//! machine's build volume.

use crate::geometry::BoundingBox;
use crate::read::Triangles;

/// Downward-facing facts, for supports and bed adhesion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Printability {
    /// Faces steeper than this from vertical-down need support, degrees.
    pub overhang_angle_deg: f64,
    /// Area of the faces that need support, excluding the faces on the plate
    /// and the ceilings of closed cavities: a slicer bridges those (a closed
    /// void is anchored all round), and support inside a closed part could
    /// never be taken out.
    pub overhang_area: f64,
    /// Upper estimate of support material: each overhanging face's footprint
    /// times its height above the plate.
    pub support_volume_estimate: f64,
    /// The support columns a slicer would build: from the surface below each
    /// overhang (the part or the plate) up to it, by vertical rays.
    pub support_column_volume: f64,
    /// The overhang area those columns hold up, as seen from above.
    pub support_contact_area: f64,
    /// The part of it whose columns stand on the part, not the plate.
    pub support_on_part_area: f64,
    /// Area of the columns' sides.
    pub support_side_area: f64,
    /// Area of the downward faces lying on the lowest plane.
    pub plate_contact_area: f64,
}

#[derive(Clone, Copy, Default)]
struct Sums {
    overhang_area: f64,
    support_volume: f64,
    plate_area: f64,
}

/// Measures overhangs for the part as it sits: the build plate is its lowest z.
// The faces, their two flag sets, and the pass's settings, bounds and
// observer: one internal call site passes them straight through.
#[allow(clippy::too_many_arguments)]
pub(crate) fn measure<T: Triangles + ?Sized>(
    triangles: &T,
    flipped: &[bool],
    in_cavity: &[bool],
    bbox: &BoundingBox,
    angle_deg: f64,
    support: crate::SupportShape,
    bounds: (&crate::Limits, u64),
    observer: &dyn crate::Observer,
) -> Result<Printability, crate::AnalyzeError> {
    let z_min = bbox.min[2];
    // A face lies on the plate when all its corners are within a hair of the
    // lowest z; the hair scales with the part so any unit works.
    let size = bbox.size().iter().fold(0.0f64, |m, &s| m.max(s));
    let on_plate_tolerance = size * 1e-6;
    // A face overhangs when its outward normal points down more steeply than
    // the angle allows: n.z < -cos(angle).
    let threshold = -angle_deg.to_radians().cos();
    let add = |sums: &mut Sums, index: usize, [a, b, c]: [[f64; 3]; 3]| {
        let n = crate::supports::outward_normal([a, b, c], flipped.get(index).copied().unwrap_or(false));
        let double_area = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        if double_area == 0.0 {
            return;
        }
        let nz = n[2] / double_area;
        let area = double_area / 2.0;
        let on_plate = [a, b, c].iter().all(|p| p[2] - z_min <= on_plate_tolerance);
        if on_plate && nz < -0.999 {
            sums.plate_area += area;
        } else if nz < threshold && !in_cavity.get(index).copied().unwrap_or(false) {
            sums.overhang_area += area;
            let height = (a[2] + b[2] + c[2]) / 3.0 - z_min;
            sums.support_volume += area * -nz * height;
        }
    };
    // The sums come from the rays' counting pass, which fetches every face
    // anyway. The rays find a column only under a face they see as an
    // overhang and that is not on the plate (a plate face's gap is under the
    // hair they ignore). The sums classify faces the same way: with no such
    // face, every ray would come back empty, and none is cast.
    let face_sums = crate::supports::FaceSums {
        add: &add,
        merge: |x: Sums, y: Sums| Sums {
            overhang_area: x.overhang_area + y.overhang_area,
            support_volume: x.support_volume + y.support_volume,
            plate_area: x.plate_area + y.plate_area,
        },
        rays_wanted: |sums: &Sums| sums.overhang_area > 0.0,
    };
    let (sums, columns) = crate::supports::columns_with_sums(
        triangles, flipped, in_cavity, bbox, threshold, support, bounds, observer, face_sums,
    )?;
    Ok(Printability {
        overhang_angle_deg: angle_deg,
        overhang_area: sums.overhang_area,
        support_volume_estimate: sums.support_volume,
        support_column_volume: columns.volume,
        support_contact_area: columns.contact_area,
        support_on_part_area: columns.on_part_area,
        support_side_area: columns.side_area,
        plate_contact_area: sums.plate_area,
    })
}

/// The unit a file's numbers are probably in. STL carries none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    Millimetre,
    Inch,
    Metre,
    /// 3MF's `micron`.
    Micron,
    Centimetre,
    Foot,
}

impl Units {
    pub fn to_mm(self) -> f64 {
        match self {
            Units::Millimetre => 1.0,
            Units::Inch => 25.4,
            Units::Metre => 1000.0,
            Units::Micron => 0.001,
            Units::Centimetre => 10.0,
            Units::Foot => 304.8,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Units::Millimetre => "mm",
            Units::Inch => "inch",
            Units::Metre => "m",
            Units::Micron => "micron",
            Units::Centimetre => "cm",
            Units::Foot => "ft",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "mm" | "millimetre" | "millimeter" => Some(Units::Millimetre),
            "in" | "inch" | "inches" => Some(Units::Inch),
            "m" | "metre" | "meter" => Some(Units::Metre),
            "micron" | "um" | "µm" => Some(Units::Micron),
            "cm" | "centimetre" | "centimeter" => Some(Units::Centimetre),
            "ft" | "foot" | "feet" => Some(Units::Foot),
            _ => None,
        }
    }

    /// A guess from the largest dimension. Printed parts are mostly 6 to
    /// 600 mm across; a part whose numbers say 0.5 to 6 is far likelier an
    /// inch part (13 to 150 mm) than a speck, and one under 0.5 a part in
    /// metres. The guess is reported, never applied on its own.
    pub fn guess(bbox: &BoundingBox) -> Self {
        let largest = bbox.size().iter().fold(0.0f64, |m, &s| m.max(s));
        if largest >= 6.0 {
            Units::Millimetre
        } else if largest >= 0.5 {
            Units::Inch
        } else {
            Units::Metre
        }
    }
}

/// How the part fits a machine's build volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub build_volume: [f64; 3],
    pub fits: bool,
    /// Which of the part's axes stands up (0 = x, 1 = y, 2 = z) in the
    /// orientation found.
    pub up_axis: usize,
    /// Rotation about the vertical axis that made the footprint fit, degrees
    /// (0 when an axis-aligned orientation fits).
    pub rotation_deg: f64,
    /// The part's extent in the orientation found (or as it sits, when
    /// nothing fits).
    pub extent: [f64; 3],
}

/// Tries the part as it stands first (a slicer prints it that way), square
/// to the bed and then turned about the vertical axis, and only then on its
/// other sides. Turns follow each edge of the footprint's convex hull (where
/// the tightest enclosing rectangles lie) and every half degree (a long part
/// may fit only across the bed's diagonal).
pub fn fit(vertices: &[[f32; 3]], bbox: &BoundingBox, build_volume: [f64; 3]) -> Fit {
    let size = bbox.size();
    let [bx, by, bz] = build_volume;
    for up in [2, 0, 1] {
        let (h, w, d) = (size[up], size[(up + 1) % 3], size[(up + 2) % 3]);
        if h <= bz && ((w <= bx && d <= by) || (w <= by && d <= bx)) {
            return Fit { build_volume, fits: true, up_axis: up, rotation_deg: 0.0, extent: [w, d, h] };
        }
        if up == 2
            && let Some(turned) = turned_fit(vertices, size, up, build_volume)
        {
            return turned;
        }
    }
    for up in [0, 1] {
        if let Some(turned) = turned_fit(vertices, size, up, build_volume) {
            return turned;
        }
    }
    Fit { build_volume, fits: false, up_axis: 2, rotation_deg: 0.0, extent: size }
}

/// The part with axis `up` standing, turned about the vertical until its
/// footprint fits, if any turn does.
fn turned_fit(vertices: &[[f32; 3]], size: [f64; 3], up: usize, build_volume: [f64; 3]) -> Option<Fit> {
    let [bx, by, bz] = build_volume;
    if size[up] > bz {
        return None;
    }
    let footprint: Vec<[f64; 2]> =
        vertices.iter().map(|v| [f64::from(v[(up + 1) % 3]), f64::from(v[(up + 2) % 3])]).collect();
    hull_rectangles(&footprint).into_iter().find(|&(_, w, d)| (w <= bx && d <= by) || (w <= by && d <= bx)).map(
        |(angle, w, d)| Fit {
            build_volume,
            fits: true,
            up_axis: up,
            rotation_deg: angle.to_degrees(),
            extent: [w, d, size[up]],
        },
    )
}

/// Candidate footprint rotations and the rectangle each gives: (angle,
/// width, depth). Only the convex hull matters, which keeps this cheap.
fn hull_rectangles(points: &[[f64; 2]]) -> Vec<(f64, f64, f64)> {
    let hull = convex_hull(points);
    let n = hull.len();
    if n < 3 {
        return Vec::new();
    }
    let edge_angles = (0..n).map(|i| {
        let (p, q) = (hull[i], hull[(i + 1) % n]);
        (q[1] - p[1]).atan2(q[0] - p[0])
    });
    let sampled = (1..180).map(|half_degrees| f64::from(half_degrees).to_radians() / 2.0);
    edge_angles
        .chain(sampled)
        .map(|angle| {
            let (sin, cos) = angle.sin_cos();
            let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
            for h in &hull {
                let x = h[0] * cos + h[1] * sin;
                let y = -h[0] * sin + h[1] * cos;
                lo = [lo[0].min(x), lo[1].min(y)];
                hi = [hi[0].max(x), hi[1].max(y)];
            }
            (angle, hi[0] - lo[0], hi[1] - lo[1])
        })
        .collect()
}

/// Andrew's monotone chain, counter-clockwise, without collinear points.
fn convex_hull(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let turn = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(2 * pts.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f64; 2]>> =
            if pass == 0 { Box::new(pts.iter()) } else { Box::new(pts.iter().rev()) };
        for &p in iter {
            while hull.len() >= start + 2 && turn(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Geometry;
    use crate::{IndexedMesh, Triangle, cuboid};

    fn t_shape() -> Vec<Triangle> {
        // A 10x10x10 stem with a 30x10x5 bar on top: the bar's underside
        // overhangs by 2 x (10 x 10) = 200 mm².
        let stem = cuboid([10.0, 10.0, 10.0]);
        let bar: Vec<Triangle> =
            cuboid([30.0, 10.0, 5.0]).iter().map(|t| t.map(|[x, y, z]| [x - 10.0, y, z + 10.0])).collect();
        stem.into_iter().chain(bar).collect()
    }

    #[test]
    fn the_sums_from_the_rays_pass_have_the_same_bits_on_any_number_of_threads() {
        // A sphere of many chunks of faces, its lower half overhanging.
        let triangles = crate::uv_sphere(10.0, 300, 151);
        assert!(triangles.len() > 8 * crate::supports::SUM_CHUNK);
        let bbox = Geometry::measure(&triangles).bounding_box;
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| at_45_degrees(&triangles, &bbox))
        };
        let (one, three) = (run(1), run(3));
        assert_eq!(one, three);
        assert_eq!(one.overhang_area.to_bits(), three.overhang_area.to_bits());
        // The cap below 45 degrees from straight down: 2 pi r^2 (1 - cos 45).
        let cap = 2.0 * std::f64::consts::PI * 100.0 * (1.0 - std::f64::consts::FRAC_1_SQRT_2);
        // Whole faces count, so the ring across 45 degrees adds a little.
        assert!((one.overhang_area - cap).abs() < 0.02 * cap, "{} vs {cap}", one.overhang_area);
        assert!(one.support_column_volume > 0.0);
    }

    /// Printability at a 45-degree support angle, no face flipped, no cavity.
    fn at_45_degrees(triangles: &[Triangle], bbox: &BoundingBox) -> Printability {
        let (none, limits) = (vec![false; triangles.len()], crate::Limits::default());
        let shape = crate::SupportShape::default();
        measure(triangles, &none, &[], bbox, 45.0, shape, (&limits, 0), &crate::Unobserved).unwrap()
    }

    #[test]
    fn a_t_shape_overhangs_under_its_bar_and_rests_on_its_stem() {
        let triangles = t_shape();
        let bbox = Geometry::measure(&triangles).bounding_box;
        let p = at_45_degrees(&triangles, &bbox);
        // The bar's whole underside faces down (300 mm²), the plate is the
        // stem's bottom (100 mm²).
        assert!((p.overhang_area - 300.0).abs() < 1e-9, "{p:?}");
        assert!((p.plate_contact_area - 100.0).abs() < 1e-9, "{p:?}");
        assert!((p.support_volume_estimate - 3000.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn a_closed_cavity_needs_no_support() {
        // A 30 mm cube with a 20 mm void: the void's ceiling faces down, but
        // a slicer bridges it, and support could never come out.
        let mut triangles = cuboid([30.0; 3]);
        let void = cuboid([20.0; 3]).into_iter().map(|t| t.map(|v| v.map(|c| c + 5.0))).map(|[a, b, c]| [a, c, b]);
        triangles.extend(void);
        let report = crate::analyze_triangles(triangles, &crate::AnalysisOptions::default());
        assert_eq!(report.shells.cavities, 1);
        assert_eq!(report.printability.overhang_area, 0.0, "{:?}", report.printability);
        assert_eq!(report.printability.support_volume_estimate, 0.0);
    }

    #[test]
    fn units_are_guessed_from_size() {
        let bbox = |s: f64| BoundingBox { min: [0.0; 3], max: [s, s / 2.0, s / 3.0] };
        assert_eq!(Units::guess(&bbox(20.0)), Units::Millimetre);
        assert_eq!(Units::guess(&bbox(3.937)), Units::Inch);
        assert_eq!(Units::guess(&bbox(0.07)), Units::Metre);
    }

    #[test]
    fn a_long_part_fits_lying_down_or_turned_diagonally() {
        let rod = cuboid([10.0, 10.0, 250.0]);
        let mesh = IndexedMesh::weld(&rod);
        let bbox = Geometry::measure(&rod).bounding_box;
        let lying = fit(&mesh.vertices, &bbox, [300.0, 300.0, 200.0]);
        assert!(lying.fits && lying.up_axis != 2 && lying.rotation_deg == 0.0, "{lying:?}");
        // A 250 x 10 plate fits a 200 x 200 bed only on the diagonal.
        let plate = cuboid([250.0, 10.0, 5.0]);
        let mesh = IndexedMesh::weld(&plate);
        let bbox = Geometry::measure(&plate).bounding_box;
        let turned = fit(&mesh.vertices, &bbox, [200.0, 200.0, 200.0]);
        assert!(turned.fits && turned.rotation_deg != 0.0, "{turned:?}");
        assert!(!fit(&mesh.vertices, &bbox, [100.0, 100.0, 100.0]).fits);
    }

    #[test]
    fn a_part_that_fits_as_it_stands_is_not_laid_on_its_side() {
        // A 250 x 10 x 30 plate fits a 200 x 200 x 260 volume on its edge
        // (its 250 mm side up) and also across the diagonal as it lies: it
        // stays as it lies, which is how the slicer prints it.
        let plate = cuboid([250.0, 10.0, 30.0]);
        let mesh = IndexedMesh::weld(&plate);
        let bbox = Geometry::measure(&plate).bounding_box;
        let f = fit(&mesh.vertices, &bbox, [200.0, 200.0, 260.0]);
        assert!(f.fits && f.up_axis == 2 && f.rotation_deg != 0.0, "{f:?}");
    }

    #[test]
    fn a_turned_analysis_stands_the_asked_axis_up() {
        let options = crate::AnalysisOptions { up_axis: 0, ..crate::AnalysisOptions::default() };
        let report = crate::analyze_triangles(cuboid([30.0, 20.0, 10.0]), &options);
        assert_eq!(report.geometry.bounding_box.size(), [20.0, 10.0, 30.0]);
        assert_eq!(report.up_axis, 0);
        assert!(report.topology.winding_consistent && report.shells.corrected_volume > 0.0, "{report:?}");
    }
}
