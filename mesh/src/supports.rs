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

use rayon::prelude::*;

use crate::geometry::BoundingBox;
use crate::read::Triangles;

/// Rays per axis across the larger side of the part's footprint.
const RAYS_ACROSS: f64 = 400.0;
/// At least this many cells per support margin, so the margin's disk is
/// round enough; and at most this many, so it stays cheap.
const CELLS_PER_MARGIN: f64 = 8.0;

/// How a slicer shapes its supports, in the mesh's units.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SupportShape {
    /// Support reaches this far around each overhang: a slicer grows its
    /// contact areas, so a narrow overhang (a letter engraved in a wall, a
    /// thread) gets a column much wider than itself.
    pub margin: f64,
    /// Air gaps shorter than this get no support: the overhang is printed
    /// on the layer below.
    pub min_gap: f64,
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

#[derive(Clone, Copy)]
struct Crossing {
    cell: u32,
    z: f32,
    /// Up-facing (the ray leaves the part), down-facing, or a down-facing
    /// overhang that needs support.
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Up,
    Down,
    Overhang,
}

/// The stretches of air along one ray, bottom up: (floor, ceiling, whether
/// the ceiling is an overhang). The last one is open to the sky.
fn air_gaps(ray: &[Crossing], plate: f64) -> Vec<(f64, f64, bool)> {
    let (mut floor, mut inside, mut gaps) = (plate, 0u32, Vec::new());
    for crossing in ray {
        let z = f64::from(crossing.z);
        match crossing.kind {
            Kind::Up => {
                inside = inside.saturating_sub(1);
                if inside == 0 {
                    floor = z;
                }
            }
            Kind::Down | Kind::Overhang => {
                if inside == 0 {
                    gaps.push((floor, z, crossing.kind == Kind::Overhang));
                }
                inside += 1;
            }
        }
    }
    if inside == 0 {
        gaps.push((floor, f64::INFINITY, false));
    }
    gaps
}

/// Casts the rays; `flipped` and `in_cavity` are per face, as the shell pass
/// found them; `threshold_nz` is the unit normal's z below which a
/// down-facing face needs support.
pub(crate) fn columns<T: Triangles + ?Sized>(
    triangles: &T,
    flipped: &[bool],
    in_cavity: &[bool],
    bbox: &BoundingBox,
    threshold_nz: f64,
    shape: SupportShape,
) -> SupportColumns {
    let size = bbox.size();
    let margin = shape.margin.max(0.0);
    let mut cell = size[0].max(size[1]) / RAYS_ACROSS;
    if margin > 0.0 {
        cell = cell.max(margin / CELLS_PER_MARGIN);
    }
    if !(cell.is_finite() && cell > 0.0) || size[2] <= 0.0 {
        return SupportColumns::default();
    }
    // The grid reaches a margin beyond the part, where grown supports stand.
    let reach = (margin / cell).ceil() as i64;
    let nx = ((size[0] / cell).ceil() as usize).max(1) + 2 * reach as usize;
    let ny = ((size[1] / cell).ceil() as usize).max(1) + 2 * reach as usize;
    // A ray through a shared edge or vertex would meet both faces, or
    // neither: nudge the grid off the round numbers models are drawn on.
    let x0 = bbox.min[0] - reach as f64 * cell + cell * 0.500_123_4;
    let y0 = bbox.min[1] - reach as f64 * cell + cell * 0.500_371_9;

    let mut crossings: Vec<Crossing> = (0..triangles.count())
        .into_par_iter()
        .with_min_len(4096)
        .fold(Vec::new, |mut out, index| {
            let [a, b, c] = triangles.triangle(index).map(|v| v.map(f64::from));
            let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
            let mut n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
            if flipped.get(index).copied().unwrap_or(false) {
                n = n.map(|x| -x);
            }
            let length = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            // Vertical faces (and slivers) are met by no vertical ray.
            if length == 0.0 || n[2].abs() < 1e-12 * length {
                return out;
            }
            let kind = if n[2] > 0.0 {
                Kind::Up
            } else if n[2] / length < threshold_nz && !in_cavity.get(index).copied().unwrap_or(false) {
                Kind::Overhang
            } else {
                Kind::Down
            };
            let lo_x = a[0].min(b[0]).min(c[0]);
            let hi_x = a[0].max(b[0]).max(c[0]);
            let lo_y = a[1].min(b[1]).min(c[1]);
            let hi_y = a[1].max(b[1]).max(c[1]);
            let first = |lo: f64, origin: f64| ((lo - origin) / cell).ceil().max(0.0) as i64;
            let last = |hi: f64, origin: f64, n: usize| (((hi - origin) / cell).floor() as i64).min(n as i64 - 1);
            // Edge functions of the triangle's projection, signed so the
            // inside is positive whichever way it winds in the plane.
            let sign = ((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])).signum();
            let edge = |p: [f64; 3], q: [f64; 3], x: f64, y: f64| {
                sign * ((q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0]))
            };
            for j in first(lo_y, y0)..=last(hi_y, y0, ny) {
                let y = y0 + j as f64 * cell;
                for i in first(lo_x, x0)..=last(hi_x, x0, nx) {
                    let x = x0 + i as f64 * cell;
                    if edge(a, b, x, y) >= 0.0 && edge(b, c, x, y) >= 0.0 && edge(c, a, x, y) >= 0.0 {
                        // The plane through the face, at (x, y).
                        let z = a[2] - (n[0] * (x - a[0]) + n[1] * (y - a[1])) / n[2];
                        let cell = j as usize * nx + i as usize;
                        out.push(Crossing { cell: cell as u32, z: z as f32, kind });
                    }
                }
            }
            out
        })
        .reduce(Vec::new, |mut a, mut b| {
            if a.len() < b.len() {
                std::mem::swap(&mut a, &mut b);
            }
            a.extend(b);
            a
        });
    crossings.par_sort_unstable_by(|p, q| {
        p.cell.cmp(&q.cell).then(p.z.total_cmp(&q.z)).then((p.kind as u8).cmp(&(q.kind as u8)))
    });
    // Where each cell's crossings start.
    let mut starts = vec![0u32; nx * ny + 1];
    for c in &crossings {
        starts[c.cell as usize + 1] += 1;
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let ray = |cell: usize| &crossings[starts[cell] as usize..starts[cell + 1] as usize];

    let plate = bbox.min[2];
    // Gaps thinner than this are the seam between touching faces, not air.
    let hair = (size[2].max(size[0]).max(size[1]) * 1e-6).max(shape.min_gap);
    // The overhangs each ray holds up: the tops of its air gaps that need support.
    let tops: Vec<Vec<f64>> = (0..nx * ny)
        .into_par_iter()
        .map(|cell| {
            air_gaps(ray(cell), plate)
                .into_iter()
                .filter(|&(floor, ceiling, overhang)| overhang && ceiling - floor > hair)
                .map(|(_, ceiling, _)| ceiling)
                .collect()
        })
        .collect();
    // A disk of the margin's radius, in cells.
    let disk: Vec<(i64, i64)> = (-reach..=reach)
        .flat_map(|di| (-reach..=reach).map(move |dj| (di, dj)))
        .filter(|&(di, dj)| ((di * di + dj * dj) as f64) * cell * cell <= margin * margin + 1e-12)
        .collect();
    // Each ray's air gaps hold a column up to the highest overhang within
    // the margin that lies in the gap.
    let rays: Vec<(f64, u32, u32)> = (0..nx * ny)
        .into_par_iter()
        .map(|cell| {
            let (i, j) = ((cell % nx) as i64, (cell / nx) as i64);
            let near: Vec<f64> = disk
                .iter()
                .filter_map(|&(di, dj)| {
                    let (x, y) = (i + di, j + dj);
                    (x >= 0 && y >= 0 && x < nx as i64 && y < ny as i64).then(|| y as usize * nx + x as usize)
                })
                .flat_map(|other| tops[other].iter().copied())
                .collect();
            if near.is_empty() {
                return (0.0, 0, 0);
            }
            let (mut length, mut count, mut on_part) = (0.0, 0u32, 0u32);
            for (floor, ceiling, _) in air_gaps(ray(cell), plate) {
                let top =
                    near.iter().copied().filter(|&t| t > floor + hair && t <= ceiling + hair).fold(f64::NAN, f64::max);
                if top.is_finite() {
                    length += top.min(ceiling) - floor;
                    count += 1;
                    on_part += u32::from(floor > plate + hair);
                }
            }
            (length, count, on_part)
        })
        .collect();
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
    SupportColumns {
        volume: column_length * cell_area,
        contact_area: count as f64 * cell_area,
        on_part_area: on_part as f64 * cell_area,
        side_area: side_length * cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::cuboid;

    fn moved(triangles: Vec<crate::Triangle>, by: [f32; 3]) -> Vec<crate::Triangle> {
        triangles.into_iter().map(|t| t.map(|v| [v[0] + by[0], v[1] + by[1], v[2] + by[2]])).collect()
    }

    fn measure(triangles: &[crate::Triangle]) -> SupportColumns {
        let bbox = crate::Geometry::measure(triangles).bounding_box;
        let none = vec![false; triangles.len()];
        columns(triangles, &none, &none, &bbox, -(45f64.to_radians().cos()), SupportShape::default())
    }

    #[test]
    fn a_margin_grows_a_narrow_overhang_into_a_wide_column() {
        // A 1 mm ledge sticking out of a wall, 10 mm up: grown by 2 mm it
        // is held by a column 2 mm wider on each free side.
        let mut shape = cuboid([10.0, 10.0, 20.0]);
        shape.extend(moved(cuboid([1.0, 4.0, 1.0]), [10.0, 3.0, 10.0]));
        let none = vec![false; shape.len()];
        let bbox = BoundingBox { min: [0.0; 3], max: [11.0, 10.0, 20.0] };
        let narrow = columns(&shape, &none, &none, &bbox, -0.7, SupportShape::default());
        let grown = columns(&shape, &none, &none, &bbox, -0.7, SupportShape { margin: 2.0, min_gap: 0.0 });
        assert!((narrow.volume - 40.0).abs() < 40.0 * 0.05, "{narrow:?}");
        // Roughly (1 + 2) x (4 + 4) plus the rounded corners, 10 mm tall;
        // nothing grows into the wall, which has no air below the ledge.
        assert!(grown.volume > 5.0 * narrow.volume && grown.volume < 300.0, "{grown:?}");
        let short = columns(&shape, &none, &none, &bbox, -0.7, SupportShape { margin: 0.0, min_gap: 11.0 });
        assert_eq!(short.volume, 0.0, "a gap under the minimum is printed without support");
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
