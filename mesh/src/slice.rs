//! Layer slicing: the cross-section area and perimeter of the part at every
//! layer, the raw material of a print-time estimate.
//!
//! No contours are assembled. Each triangle that crosses a layer's plane adds
//! one segment, oriented by the triangle's outward normal, and the segments
//! of a layer sum to its perimeter and (by the shoelace formula) to its area:
//! outer walls add, holes subtract. The same pass adds each upward- and
//! downward-facing triangle's area, seen from above, to the gaps between
//! planes it spans: where the skins of a print go. The work is one parallel
//! pass over the triangles with a per-thread accumulator per layer.
//!
//! The work is counted before it is done: a first pass finds the planes each
//! triangle crosses (from its lowest and highest corner, no cutting), and
//! their sum, the triangle–layer crossings, must be within
//! [`Limits::max_layer_crossings`]. The same spans tell the contour tracer
//! which faces each layer cuts.

use rayon::prelude::*;

use crate::Limits;
use crate::bounds::{self, OverLimit};
use crate::contours::Contour;
use crate::observe::{Observer, Stage, Ticker, Unobserved, Watch};
use crate::read::Triangles;

/// How a part is cut into layers: a first layer of its own height (printers
/// lay a thicker first layer for adhesion), then layers of one height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layering {
    pub first_layer_height: f64,
    pub layer_height: f64,
    /// A facet counts towards a layer's exposed skin only when a layer's
    /// height of it is at least this wide seen from above (a slicer ignores
    /// the thin ledges a steep flank leaves on each layer); 0 counts every
    /// facet that is not vertical.
    pub min_skin_width: f64,
}

impl Layering {
    /// Every layer, the first included, of the same height.
    pub fn uniform(layer_height: f64) -> Self {
        Self { first_layer_height: layer_height, layer_height, min_skin_width: 0.0 }
    }
}

/// Cross-sections at evenly spaced heights above a first layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Slices {
    pub layer_height: f64,
    pub first_layer_height: f64,
    /// Height of each layer's cutting plane (the middle of the layer, as
    /// slicers cut), from the bottom of the part.
    pub z: Vec<f64>,
    /// Cross-section area per layer, file units squared.
    pub area: Vec<f64>,
    /// Total contour length per layer, file units.
    pub perimeter: Vec<f64>,
    /// Each layer's loops (islands and holes), when traced: the analysis
    /// traces them, a bare [`slice`] leaves this empty.
    pub contours: Vec<Vec<Contour>>,
    /// Upward-facing surface between the cutting planes of layer `i` and
    /// layer `i + 1` (above the last plane, for the last), seen from above,
    /// file units squared. Unlike the difference of two layers' areas, it
    /// does not cancel where one part of a layer ends as another begins.
    pub up_facing: Vec<f64>,
    /// Downward-facing surface between the planes of layer `i` and `i + 1`,
    /// likewise.
    pub down_facing: Vec<f64>,
}

/// Why a mesh could not be sliced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SliceError {
    #[error("layer heights must be positive numbers, got {0}")]
    BadLayerHeight(f64),
    #[error("{layers} layers of {layer_height} would exceed the limit of {limit}")]
    TooManyLayers { layers: u64, layer_height: f64, limit: u64 },
    /// The crossings or the memory the slices need are over a limit.
    #[error(transparent)]
    OverLimit(#[from] OverLimit),
    /// The observer stopped the slicing.
    #[error("the slicing was stopped")]
    Stopped,
}

impl Slices {
    /// How thick layer `i` is.
    pub fn thickness(&self, i: usize) -> f64 {
        if i == 0 { self.first_layer_height } else { self.layer_height }
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.z.len()
    }

    pub fn is_empty(&self) -> bool {
        self.z.is_empty()
    }
}

/// Slices `triangles` between `z_min` and `z_max` as `layering` says.
/// `flipped[i]` reverses face `i` (its shell is wound inside out). The other
/// limits are the defaults; see [`slice_with`].
pub fn slice<T: Triangles + ?Sized>(
    triangles: &T,
    flipped: Option<&[bool]>,
    z: (f64, f64),
    layering: Layering,
    max_layers: u64,
) -> Result<Slices, SliceError> {
    slice_with(triangles, flipped, z, layering, &Limits { max_layers, ..Limits::default() })
}

/// [`slice`], within `limits`: the layers, the triangle–layer crossings and
/// the memory of the slices themselves.
pub fn slice_with<T: Triangles + ?Sized>(
    triangles: &T,
    flipped: Option<&[bool]>,
    z: (f64, f64),
    layering: Layering,
    limits: &Limits,
) -> Result<Slices, SliceError> {
    let plan = Plan::new(triangles.count(), z, layering, limits, 0)?;
    let spans = plan.spans(triangles, limits, &Unobserved)?;
    plan.measure(triangles, flipped, &spans, &Unobserved)
}

/// Where a slicing stands before it cuts: its planes, and what it costs.
pub(crate) struct Plan {
    layering: Layering,
    z_min: f64,
    layers: usize,
}

/// The planes each face crosses: `first..last`, counted as
/// [`Plan::planes_up_to`] counts them (a corner on a plane is above it).
pub(crate) type Spans = Vec<[u32; 2]>;

impl Plan {
    /// Checks the heights and the number of layers; `resident` is what the
    /// caller already holds, for the memory check.
    pub(crate) fn new(
        triangles: usize,
        (z_min, z_max): (f64, f64),
        layering: Layering,
        limits: &Limits,
        resident: u64,
    ) -> Result<Self, SliceError> {
        let Layering { first_layer_height: first, layer_height, .. } = layering;
        for h in [first, layer_height] {
            if !(h.is_finite() && h > 0.0) {
                return Err(SliceError::BadLayerHeight(h));
            }
        }
        let height = (z_max - z_min).max(0.0);
        let layers_f = 1.0 + ((height - first) / layer_height).ceil().max(0.0);
        // Spans index layers with 32 bits.
        let limit = limits.max_layers.min(u64::from(u32::MAX));
        if layers_f > limit as f64 || !layers_f.is_finite() {
            return Err(SliceError::TooManyLayers {
                layers: layers_f.min(u64::MAX as f64) as u64,
                layer_height,
                limit,
            });
        }
        let plan = Self { layering, z_min, layers: layers_f as usize };
        let own = bounds::slicing(triangles as u64, plan.layers as u64, plan.chunks(triangles) as u64);
        bounds::check_memory(limits, "slicing", resident.saturating_add(own))?;
        Ok(plan)
    }

    pub(crate) fn layers(&self) -> usize {
        self.layers
    }

    /// Layer 0 spans [0, first); layer i >= 1 spans [first + (i-1)h,
    /// first + ih); each is cut in its middle.
    fn plane(&self, i: usize) -> f64 {
        let Layering { first_layer_height: first, layer_height, .. } = self.layering;
        if i == 0 { self.z_min + first / 2.0 } else { self.z_min + first + (i as f64 - 0.5) * layer_height }
    }

    /// How many planes lie at or below `z`: the band between two planes
    /// that `z` is in, counted from 1. The division only finds where to
    /// start looking: rounding may put it a layer off, so it is corrected
    /// with the same comparison the cut uses.
    fn planes_up_to(&self, z: f64) -> usize {
        let Layering { first_layer_height: first, layer_height, .. } = self.layering;
        let guess = ((z - self.z_min - first) / layer_height + 0.5).floor();
        let mut n = if self.plane(0) > z { 0 } else { guess.clamp(1.0, self.layers as f64) as usize };
        while n > 0 && self.plane(n - 1) > z {
            n -= 1;
        }
        while n < self.layers && self.plane(n) <= z {
            n += 1;
        }
        n
    }

    /// At most 32 partial sums per layer: each chunk holds four arrays of
    /// `layers` floats. Fixed by the triangle count alone, so the sums are
    /// the same on any number of threads.
    fn chunks(&self, triangles: usize) -> usize {
        triangles.div_ceil(Self::chunk(triangles))
    }

    fn chunk(triangles: usize) -> usize {
        triangles.div_ceil(32).max(2048)
    }

    /// Each face's planes, and their sum checked against the limit: a pass
    /// over the corners that cuts nothing.
    pub(crate) fn spans<T: Triangles + ?Sized>(
        &self,
        triangles: &T,
        limits: &Limits,
        observer: &dyn Observer,
    ) -> Result<Spans, SliceError> {
        let watch = Watch::new(observer, Stage::Slicing, (0.0, 0.05), triangles.count() as u64);
        let spans: Spans = (0..triangles.count())
            .into_par_iter()
            .with_min_len(4096)
            .map_init(
                || Ticker::new(&watch),
                |ticker, index| {
                    if !ticker.add(1) {
                        return [0, 0];
                    }
                    let [a, b, c] = triangles.triangle(index).map(|v| f64::from(v[2]));
                    let (lo, hi) = (a.min(b).min(c), a.max(b).max(c));
                    [self.planes_up_to(lo) as u32, self.planes_up_to(hi) as u32]
                },
            )
            .collect();
        if watch.stopped() {
            return Err(SliceError::Stopped);
        }
        let needed: u64 = spans.par_iter().map(|&[first, last]| u64::from(last - first)).sum();
        if needed > limits.max_layer_crossings {
            return Err(OverLimit::LayerCrossings {
                needed,
                layers: self.layers as u64,
                limit: limits.max_layer_crossings,
            }
            .into());
        }
        Ok(spans)
    }

    /// Cuts every face at the planes of its span.
    pub(crate) fn measure<T: Triangles + ?Sized>(
        &self,
        triangles: &T,
        flipped: Option<&[bool]>,
        spans: &[[u32; 2]],
        observer: &dyn Observer,
    ) -> Result<Slices, SliceError> {
        let layers = self.layers;
        let Layering { first_layer_height: first, layer_height, min_skin_width } = self.layering;
        let plane = |i: usize| self.plane(i);
        let crossings: u64 = spans.iter().map(|&[f, l]| u64::from(l - f)).sum();
        let watch =
            Watch::new(observer, Stage::Slicing, (0.05, 0.3), crossings.saturating_add(triangles.count() as u64));
        let zero = || Sums {
            twice_area: vec![0.0; layers],
            perimeter: vec![0.0; layers],
            up: vec![0.0; layers],
            down: vec![0.0; layers],
            ticker: Ticker::new(&watch),
        };
        let sums = crate::par::fold_chunks(
            triangles.count(),
            Self::chunk(triangles.count()),
            zero,
            |mut sums, index| {
                let [first_band, last_band] = spans[index].map(|s| s as usize);
                if !sums.ticker.add(1 + (last_band - first_band) as u64) {
                    return sums;
                }
                let flip = flipped.is_some_and(|f| f[index]);
                let [a, b, c] = triangles.triangle(index).map(|v| v.map(f64::from));
                let lo = a[2].min(b[2]).min(c[2]);
                let hi = a[2].max(b[2]).max(c[2]);
                let normal = cross(sub(b, a), sub(c, a));
                let Sums { twice_area, perimeter, up, down, .. } = &mut sums;
                // A corner on a plane counts as above it (see `cut`), so the
                // triangle crosses exactly the planes in (lo, hi].
                for i in first_band..last_band {
                    if let Some((p, q)) = cut(a, b, c, plane(i)) {
                        // Orient the segment so the part lies to its left: its
                        // right-hand side must face along the outward normal.
                        let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
                        let outward = (dy * normal[0] - dx * normal[1]) * if flip { -1.0 } else { 1.0 };
                        let (p, q) = if outward >= 0.0 { (p, q) } else { (q, p) };
                        twice_area[i] += p[0] * q[1] - q[0] * p[1];
                        perimeter[i] += dx.hypot(dy);
                    }
                }
                let facing = normal[2] * if flip { -1.0 } else { 1.0 };
                // A layer's height of the facet is layer_height * |nz| / |nxy|
                // wide seen from above (compared squared: no root per triangle).
                let wide_enough = (layer_height * normal[2]).powi(2)
                    >= min_skin_width * min_skin_width * (normal[0] * normal[0] + normal[1] * normal[1]);
                if facing != 0.0 && wide_enough {
                    let skin = if facing > 0.0 { up } else { down };
                    let projected = normal[2].abs() / 2.0;
                    if first_band == last_band {
                        if first_band > 0 {
                            skin[first_band - 1] += projected;
                        }
                    } else {
                        // Spread over the bands it spans, by height.
                        for band in first_band.max(1)..=last_band {
                            let bottom = plane(band - 1).max(lo);
                            let top = if band < layers { plane(band).min(hi) } else { hi };
                            skin[band - 1] += projected * (top - bottom).max(0.0) / (hi - lo);
                        }
                    }
                }
                sums
            },
            |mut left, right| {
                for (into, from) in [
                    (&mut left.twice_area, &right.twice_area),
                    (&mut left.perimeter, &right.perimeter),
                    (&mut left.up, &right.up),
                    (&mut left.down, &right.down),
                ] {
                    into.iter_mut().zip(from).for_each(|(x, y)| *x += y);
                }
                left
            },
        );
        if watch.stopped() {
            return Err(SliceError::Stopped);
        }
        Ok(Slices {
            layer_height,
            first_layer_height: first,
            z: (0..layers).map(plane).collect(),
            area: sums.twice_area.into_iter().map(|a| a / 2.0).collect(),
            perimeter: sums.perimeter,
            contours: Vec::new(),
            up_facing: sums.up,
            down_facing: sums.down,
        })
    }
}

/// One chunk's running totals per layer.
struct Sums<'w, 'o> {
    twice_area: Vec<f64>,
    perimeter: Vec<f64>,
    up: Vec<f64>,
    down: Vec<f64>,
    ticker: Ticker<'w, 'o>,
}

/// Where the plane `z` cuts the triangle: the two points on the edges that
/// cross it. A corner counts as above the plane when its z equals the plane,
/// so every crossing is counted once.
fn cut(a: [f64; 3], b: [f64; 3], c: [f64; 3], z: f64) -> Option<([f64; 2], [f64; 2])> {
    let mut points = [[0.0; 2]; 2];
    let mut found = 0;
    for (u, v) in [(a, b), (b, c), (c, a)] {
        if (u[2] >= z) != (v[2] >= z) {
            let t = (z - u[2]) / (v[2] - u[2]);
            if found < 2 {
                points[found] = [u[0] + t * (v[0] - u[0]), u[1] + t * (v[1] - u[1])];
            }
            found += 1;
        }
    }
    (found == 2).then_some((points[0], points[1]))
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(u: [f64; 3], v: [f64; 3]) -> [f64; 3] {
    [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Triangle, cuboid, uv_sphere};

    #[test]
    fn a_box_slices_into_equal_rectangles() {
        let s = slice(&cuboid([10.0, 20.0, 3.0]), None, (0.0, 3.0), Layering::uniform(0.2), 1000).unwrap();
        assert_eq!(s.z.len(), 15);
        for (area, perimeter) in s.area.iter().zip(&s.perimeter) {
            assert!((area - 200.0).abs() < 1e-9, "{area}");
            assert!((perimeter - 60.0).abs() < 1e-9, "{perimeter}");
        }
    }

    #[test]
    fn a_thicker_first_layer_shifts_the_planes_above_it() {
        let layering = Layering { first_layer_height: 0.35, layer_height: 0.3, min_skin_width: 0.0 };
        let s = slice(&cuboid([10.0, 10.0, 2.0]), None, (0.0, 2.0), layering, 1000).unwrap();
        // 0.35 + 6 x 0.3 = 2.15 covers 2 mm: seven layers, cut mid-layer.
        assert_eq!(s.len(), 7);
        assert!((s.z[0] - 0.175).abs() < 1e-12 && (s.z[1] - 0.5).abs() < 1e-12, "{:?}", s.z);
        assert!((s.z[6] - 2.0).abs() < 1e-12 || s.area[6] == 0.0, "{:?}", s.z);
        assert_eq!((s.thickness(0), s.thickness(3)), (0.35, 0.3));
        assert!(s.area[..6].iter().all(|a| (a - 100.0).abs() < 1e-9), "{:?}", s.area);
    }

    #[test]
    fn a_vertex_ring_exactly_on_a_plane_is_cut_once() {
        // A T: a 10 x 10 column up to z = 20, a 40 x 10 bar on top of it.
        // With 0.35 mm then 0.3 mm layers, plane 66 sits at 20 (give or take
        // a rounding), exactly where the bar starts.
        let mut t = cuboid([10.0, 10.0, 20.0]);
        t.iter_mut().for_each(|f| f.iter_mut().for_each(|v| v[0] += 15.0));
        let bar: Vec<Triangle> =
            cuboid([40.0, 10.0, 5.0]).iter().map(|f| f.map(|v| [v[0], v[1], v[2] + 20.0])).collect();
        t.extend(bar);
        let layering = Layering { first_layer_height: 0.35, layer_height: 0.3, min_skin_width: 0.0 };
        let s = slice(&t, None, (0.0, 25.0), layering, 1000).unwrap();
        assert!((s.z[66] - 20.0).abs() < 1e-9, "{}", s.z[66]);
        for (i, area) in s.area.iter().enumerate().take(s.len() - 1) {
            let expected = if s.z[i] < 20.0 - 1e-9 { 100.0 } else { 400.0 };
            assert!((area - expected).abs() < 1e-6 || (i == 66 && (area - 100.0).abs() < 1e-6), "layer {i}: {area}");
        }
    }

    #[test]
    fn a_hole_subtracts_and_the_layers_sum_to_the_volume() {
        // A 10 mm cube with an inward-wound 4 mm cube inside: a hollow.
        let mut triangles = cuboid([10.0; 3]);
        let inner: Vec<Triangle> =
            cuboid([4.0; 3]).iter().map(|t| t.map(|v| v.map(|c| c + 3.0))).map(|[a, b, c]| [a, c, b]).collect();
        triangles.extend(inner);
        let s = slice(&triangles, None, (0.0, 10.0), Layering::uniform(0.5), 1000).unwrap();
        let volume: f64 = s.area.iter().map(|a| a * s.layer_height).sum();
        assert!((volume - (1000.0 - 64.0)).abs() < 1e-9, "{volume}");
        assert!((s.area[10] - 84.0).abs() < 1e-9, "mid-height layer cuts the hollow");
    }

    #[test]
    fn a_sphere_slices_to_circles() {
        let triangles = uv_sphere(10.0, 256, 128);
        let s = slice(&triangles, None, (-10.0, 10.0), Layering::uniform(0.2), 1000).unwrap();
        let mid = s.z.len() / 2;
        let r2 = 100.0 - s.z[mid] * s.z[mid];
        let circle = std::f64::consts::PI * r2;
        assert!((s.area[mid] - circle).abs() / circle < 1e-3, "{} vs {circle}", s.area[mid]);
        let volume: f64 = s.area.iter().map(|a| a * s.layer_height).sum();
        let sphere = 4.0 / 3.0 * std::f64::consts::PI * 1000.0;
        assert!((volume - sphere).abs() / sphere < 2e-3, "{volume} vs {sphere}");
    }

    #[test]
    fn facing_surfaces_are_measured_between_planes_even_where_areas_cancel() {
        // A 10 mm column up to z = 10 and a second beside it from 10 to 20:
        // every layer's area is 100 mm², yet the band across z = 10 holds
        // the first's top and the second's bottom.
        let mut stairs = cuboid([10.0, 10.0, 10.0]);
        stairs.extend(cuboid([10.0, 10.0, 10.0]).iter().map(|f| f.map(|v| [v[0] + 20.0, v[1], v[2] + 10.0])));
        let s = slice(&stairs, None, (0.0, 20.0), Layering::uniform(0.5), 1000).unwrap();
        assert!(s.area.iter().all(|a| (a - 100.0).abs() < 1e-9), "{:?}", s.area);
        // Planes at 0.25, 0.75, ...: z = 10 lies between layers 19 and 20.
        let band =
            |sums: &[f64]| sums.iter().enumerate().filter(|(_, a)| **a > 0.0).map(|(i, a)| (i, *a)).collect::<Vec<_>>();
        assert_eq!(band(&s.up_facing), vec![(19, 100.0), (39, 100.0)], "tops: the step and the last layer");
        assert_eq!(band(&s.down_facing), vec![(19, 100.0)], "the bottom below the first plane is not between planes");
    }

    #[test]
    fn steep_flanks_leave_no_skin_when_a_minimum_width_is_set() {
        let sphere = uv_sphere(10.0, 256, 128);
        let measure = |min_skin_width| {
            let layering = Layering { min_skin_width, ..Layering::uniform(0.2) };
            let s = slice(&sphere, None, (-10.0, 10.0), layering, 1000).unwrap();
            s.up_facing.iter().sum::<f64>()
        };
        // Every upward facet: the upper hemisphere seen from above, π r².
        let all = measure(0.0);
        assert!((all - std::f64::consts::PI * 100.0).abs() < 1.0, "{all}");
        // A layer's height of a facet is 0.2 mm · cot(slope) wide: at least
        // 0.3 mm only where the slope is under atan(2/3), the cap of radius
        // r · sin(atan(2/3)) = 10 · 0.5547.
        let cap = std::f64::consts::PI * (10.0f64 * 0.5547).powi(2);
        let wide = measure(0.3);
        assert!((wide - cap).abs() / cap < 0.03, "{wide} vs {cap}");
    }

    #[test]
    fn limits_and_bad_heights_are_errors() {
        let cube = cuboid([1.0; 3]);
        assert_eq!(slice(&cube, None, (0.0, 1.0), Layering::uniform(0.0), 10), Err(SliceError::BadLayerHeight(0.0)));
        let bad_first = Layering { first_layer_height: -0.1, layer_height: 0.2, min_skin_width: 0.0 };
        assert_eq!(slice(&cube, None, (0.0, 1.0), bad_first, 10), Err(SliceError::BadLayerHeight(-0.1)));
        let many = Layering::uniform(0.01);
        assert!(matches!(slice(&cube, None, (0.0, 1.0), many, 10), Err(SliceError::TooManyLayers { .. })));
    }
}
