//! Geometry of a triangle soup: bounding box, signed volume, surface area and
//! centroid, summed in f64 in parallel.

use nalgebra::Vector3;
use rayon::prelude::*;

use crate::read::Triangle;

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
}

/// Per-chunk running sums, merged by rayon's reduce.
#[derive(Clone, Copy)]
struct Sums {
    bounding_box: BoundingBox,
    six_volume: f64,
    double_area: f64,
    volume_moment: Vector3<f64>,
    area_moment: Vector3<f64>,
    zero_area: u64,
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
        }
    }

    fn add(mut self, t: &Triangle) -> Self {
        let [a, b, c] = t.map(|v| Vector3::new(f64::from(v[0]), f64::from(v[1]), f64::from(v[2])));
        // Volume of the tetrahedron (origin, a, b, c), times six.
        let six_volume = a.dot(&b.cross(&c));
        let double_area = (b - a).cross(&(c - a)).norm();
        let corner_sum = a + b + c;
        self.six_volume += six_volume;
        self.double_area += double_area;
        self.volume_moment += corner_sum * six_volume;
        self.area_moment += corner_sum * double_area;
        self.zero_area += u64::from(double_area == 0.0);
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
        }
    }
}

impl Geometry {
    /// Measures `triangles`; an empty slice gives zeros and an inverted box.
    pub fn measure(triangles: &[Triangle]) -> Self {
        let sums = triangles.par_iter().with_min_len(4096).fold(Sums::zero, Sums::add).reduce(Sums::zero, Sums::merge);
        let signed_volume = sums.six_volume / 6.0;
        // A tetrahedron's centroid is (0 + a + b + c) / 4, weighted by its volume.
        let centroid = if sums.six_volume.abs() > f64::EPSILON {
            sums.volume_moment / (4.0 * sums.six_volume)
        } else if sums.double_area > 0.0 {
            sums.area_moment / (3.0 * sums.double_area)
        } else {
            Vector3::zeros()
        };
        Self {
            bounding_box: sums.bounding_box,
            signed_volume,
            surface_area: sums.double_area / 2.0,
            centroid: [centroid.x, centroid.y, centroid.z],
            zero_area_triangles: sums.zero_area,
        }
    }
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
    fn inverted_winding_gives_negative_volume() {
        let inverted: Vec<Triangle> = cuboid([2.0, 2.0, 2.0]).into_iter().map(|[a, b, c]| [a, c, b]).collect();
        assert_eq!(Geometry::measure(&inverted).signed_volume, -8.0);
    }
}
