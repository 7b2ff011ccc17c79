//! Geometry of a triangle soup: bounding box, signed volume, surface area and
//! centroid, summed in f64 in parallel.
//!
//! The volume is integrated about the mean of all corners, not the origin.
//! For a closed mesh the two agree exactly; for an open one the result no
//! longer depends on where the part sits, and it equals what trimesh reports
//! (the hole is, in effect, capped by a cone to that point). Working near the
//! part also avoids cancellation when a model sits far from the origin.

use nalgebra::Vector3;

use crate::read::{Triangle, Triangles};

/// Axis-aligned bounds, in the file's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub min: [f64; 3],
    pub max: [f64; 3],
}

impl BoundingBox {
    pub fn size(&self) -> [f64; 3] {
        [self.max[0] - self.min[0], self.max[1] - self.min[1], self.max[2] - self.min[2]]
    }

    fn empty() -> Self {
        Self { min: [f64::INFINITY; 3], max: [f64::NEG_INFINITY; 3] }
    }

    fn include(mut self, p: &[f32; 3]) -> Self {
        for ((min, max), &c) in self.min.iter_mut().zip(&mut self.max).zip(p) {
            *min = min.min(f64::from(c));
            *max = max.max(f64::from(c));
        }
        self
    }

    fn union(self, other: Self) -> Self {
        Self {
            min: std::array::from_fn(|axis| self.min[axis].min(other.min[axis])),
            max: std::array::from_fn(|axis| self.max[axis].max(other.max[axis])),
        }
    }
}

/// Size and mass facts of a mesh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub bounding_box: BoundingBox,
    /// Signed volume by the divergence theorem. Negative when the shells are
    /// wound inside out; meaningful only for closed meshes.
    pub signed_volume: f64,
    pub surface_area: f64,
    /// Centre of the enclosed volume, or of the surface when the volume is
    /// zero (a flat or open sheet).
    pub centroid: [f64; 3],
    /// Triangles with exactly zero area.
    pub zero_area_triangles: u64,
    /// Triangles thinner than [`DEGENERATE_HEIGHT`]: slivers and needles
    /// (trimesh's definition, so counts compare with its reports).
    pub degenerate_triangles: u64,
}

/// A triangle whose smallest height is below this (file units) is degenerate.
pub(crate) const DEGENERATE_HEIGHT: f64 = 1e-8;

/// Per-chunk running sums, merged by rayon's reduce.
#[derive(Clone, Copy)]
struct Sums {
    bounding_box: BoundingBox,
    six_volume: f64,
    double_area: f64,
    volume_moment: Vector3<f64>,
    area_moment: Vector3<f64>,
    zero_area: u64,
    degenerate: u64,
}

impl Sums {
    fn zero() -> Self {
        Self {
            bounding_box: BoundingBox::empty(),
            six_volume: 0.0,
            double_area: 0.0,
            volume_moment: Vector3::zeros(),
            area_moment: Vector3::zeros(),
            zero_area: 0,
            degenerate: 0,
        }
    }

    fn add(mut self, t: &Triangle, origin: &Vector3<f64>) -> Self {
        let [a, b, c] = t.map(|v| Vector3::new(f64::from(v[0]), f64::from(v[1]), f64::from(v[2])) - origin);
        // Volume of the tetrahedron (origin, a, b, c), times six.
        let six_volume = a.dot(&b.cross(&c));
        let double_area = (b - a).cross(&(c - a)).norm();
        let corner_sum = a + b + c;
        self.six_volume += six_volume;
        self.double_area += double_area;
        self.volume_moment += corner_sum * six_volume;
        self.area_moment += corner_sum * double_area;
        self.zero_area += u64::from(double_area == 0.0);
        // Height over the longest side = twice the area over that side.
        let longest = (b - a).norm().max((c - b).norm()).max((a - c).norm());
        self.degenerate += u64::from(longest == 0.0 || double_area / longest < DEGENERATE_HEIGHT);
        self.bounding_box = t.iter().fold(self.bounding_box, BoundingBox::include);
        self
    }

    fn merge(self, other: Self) -> Self {
        Self {
            bounding_box: self.bounding_box.union(other.bounding_box),
            six_volume: self.six_volume + other.six_volume,
            double_area: self.double_area + other.double_area,
            volume_moment: self.volume_moment + other.volume_moment,
            area_moment: self.area_moment + other.area_moment,
            zero_area: self.zero_area + other.zero_area,
            degenerate: self.degenerate + other.degenerate,
        }
    }
}

impl Geometry {
    /// Measures `triangles`; an empty slice gives zeros and an inverted box.
    pub fn measure<T: Triangles + ?Sized>(triangles: &T) -> Self {
        Self::measure_about(triangles, &corner_mean(triangles))
    }

    /// Measures `triangles` about `origin`, their [`corner_mean`], which the
    /// caller has worked out once for every pass that sums about it (a pass
    /// over all corners of a large mesh is not free).
    pub(crate) fn measure_about<T: Triangles + ?Sized>(triangles: &T, origin: &Vector3<f64>) -> Self {
        let origin = *origin;
        let sums = crate::par::fold_chunks(
            triangles.count(),
            4096,
            Sums::zero,
            |sums, i| sums.add(&triangles.triangle(i), &origin),
            Sums::merge,
        );
        let signed_volume = sums.six_volume / 6.0;
        // A tetrahedron's centroid is (origin + a + b + c) / 4, weighted by its volume.
        let centroid = if sums.six_volume.abs() > f64::EPSILON {
            sums.volume_moment / (4.0 * sums.six_volume)
        } else if sums.double_area > 0.0 {
            sums.area_moment / (3.0 * sums.double_area)
        } else {
            Vector3::zeros()
        } + origin;
        Self {
            bounding_box: sums.bounding_box,
            signed_volume,
            surface_area: sums.double_area / 2.0,
            centroid: [centroid.x, centroid.y, centroid.z],
            zero_area_triangles: sums.zero_area,
            degenerate_triangles: sums.degenerate,
        }
    }
}

/// The mean of all triangle corners (each vertex counted once per use).
pub(crate) fn corner_mean<T: Triangles + ?Sized>(triangles: &T) -> Vector3<f64> {
    let n = triangles.count();
    if n == 0 {
        return Vector3::zeros();
    }
    let sum = crate::par::fold_chunks(
        n,
        8192,
        Vector3::zeros,
        |acc, i| {
            triangles
                .triangle(i)
                .iter()
                .fold(acc, |acc, v| acc + Vector3::new(f64::from(v[0]), f64::from(v[1]), f64::from(v[2])))
        },
        |a, b| a + b,
    );
    sum / (3.0 * n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuboid;

    #[test]
    fn cuboid_measures_exactly() {
        let g = Geometry::measure(&cuboid([10.0, 20.0, 30.0]));
        assert_eq!(g.signed_volume, 6000.0);
        assert_eq!(g.surface_area, 2.0 * (200.0 + 600.0 + 300.0));
        assert_eq!(g.bounding_box.size(), [10.0, 20.0, 30.0]);
        for (got, want) in g.centroid.iter().zip([5.0, 10.0, 15.0]) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn an_open_mesh_has_the_same_volume_wherever_it_sits() {
        let mut triangles = cuboid([10.0, 10.0, 10.0]);
        triangles.pop();
        let here = Geometry::measure(&triangles).signed_volume;
        let moved: Vec<Triangle> =
            triangles.iter().map(|t| t.map(|[x, y, z]| [x + 500.0, y - 300.0, z + 70.0])).collect();
        let there = Geometry::measure(&moved).signed_volume;
        assert!((here - there).abs() < 1e-9 * here.abs(), "{here} vs {there}");
        assert!(here > 0.0 && here < 1000.0, "{here}");
    }

    #[test]
    fn slivers_are_degenerate() {
        let sliver = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 1e-12, 0.0]];
        let g = Geometry::measure(&vec![sliver, [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]);
        assert_eq!(g.degenerate_triangles, 1);
    }

    #[test]
    fn inverted_winding_gives_negative_volume() {
        let inverted: Vec<Triangle> = cuboid([2.0, 2.0, 2.0]).into_iter().map(|[a, b, c]| [a, c, b]).collect();
        assert_eq!(Geometry::measure(&inverted).signed_volume, -8.0);
    }
}
