//! Shape generators and an STL writer, for samples, tests and benchmarks.

use crate::read::Triangle;

/// An axis-aligned box from the origin to `size`, wound counter-clockwise
/// seen from outside.
pub fn cuboid(size: [f32; 3]) -> Vec<Triangle> {
    let [x, y, z] = size;
    let p = |i: usize| {
        [if i & 1 == 0 { 0.0 } else { x }, if i & 2 == 0 { 0.0 } else { y }, if i & 4 == 0 { 0.0 } else { z }]
    };
    // Each quad lists its corners counter-clockwise seen from outside.
    const QUADS: [[usize; 4]; 6] = [
        [0, 2, 3, 1], // bottom, z = 0
        [4, 5, 7, 6], // top
        [0, 1, 5, 4], // front, y = 0
        [2, 6, 7, 3], // back
        [0, 4, 6, 2], // left, x = 0
        [1, 3, 7, 5], // right
    ];
    QUADS.iter().flat_map(|&[a, b, c, d]| [[p(a), p(b), p(c)], [p(a), p(c), p(d)]]).collect()
}

/// A closed UV sphere centred on the origin, with `segments` around and
/// `rings` from pole to pole: `2 * segments * (rings - 1)` triangles.
pub fn uv_sphere(radius: f32, segments: u32, rings: u32) -> Vec<Triangle> {
    let segments = segments.max(3);
    let rings = rings.max(2);
    let point = |ring: u32, segment: u32| -> [f32; 3] {
        if ring == 0 {
            return [0.0, 0.0, radius];
        }
        if ring == rings {
            return [0.0, 0.0, -radius];
        }
        let theta = std::f64::consts::PI * f64::from(ring) / f64::from(rings);
        let phi = 2.0 * std::f64::consts::PI * f64::from(segment % segments) / f64::from(segments);
        let r = f64::from(radius);
        [(r * theta.sin() * phi.cos()) as f32, (r * theta.sin() * phi.sin()) as f32, (r * theta.cos()) as f32]
    };
    let mut triangles = Vec::with_capacity((2 * segments * (rings - 1)) as usize);
    for ring in 0..rings {
        for segment in 0..segments {
            let (a, b) = (point(ring, segment), point(ring, segment + 1));
            let (c, d) = (point(ring + 1, segment), point(ring + 1, segment + 1));
            if ring != 0 {
                triangles.push([a, c, b]);
            }
            if ring != rings - 1 {
                triangles.push([b, c, d]);
            }
        }
    }
    triangles
}

/// `count` needle-thin triangles `height` tall, standing in a grid on a
/// square plate `plate` wide: each a sliver 0.01 wide at its foot, none
/// touching another. Cheap to read (50 bytes a triangle), expensive to slice:
/// every needle crosses every layer. The issue that bounded the work used
/// 20,000 needles 29 m tall on a 20 mm plate, a 1 MB file.
pub fn needles(count: u32, height: f32, plate: f32) -> Vec<Triangle> {
    let across = (f64::from(count).sqrt().ceil() as u32).max(1);
    let pitch = plate / across as f32;
    let width = 0.01f32.min(pitch / 2.0);
    (0..count)
        .map(|n| {
            let (x, y) = ((n % across) as f32 * pitch, (n / across) as f32 * pitch);
            [[x, y, 0.0], [x + width, y, 0.0], [x + width / 2.0, y + width / 2.0, height]]
        })
        .collect()
}

/// Encodes triangles as a binary STL, with normals computed from the winding.
pub fn write_binary_stl(triangles: &[Triangle]) -> Vec<u8> {
    let mut out = Vec::with_capacity(84 + 50 * triangles.len());
    let facets = triangles.iter().map(|&[a, b, c]| {
        let (u, v) = (sub(b, a), sub(c, a));
        let n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
        let length = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        let n = if length > 0.0 { n.map(|c| c / length) } else { n };
        stl_io::Triangle { normal: stl_io::Vector::new(n), vertices: [a, b, c].map(stl_io::Vector::new) }
    });
    stl_io::write_stl(&mut out, facets).expect("writing to a Vec cannot fail");
    out
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnalysisOptions, analyze};

    #[test]
    fn sphere_is_closed_and_close_to_the_analytic_volume() {
        let triangles = uv_sphere(10.0, 64, 32);
        assert_eq!(triangles.len(), 2 * 64 * 31);
        let report = analyze(&write_binary_stl(&triangles), &AnalysisOptions::default()).unwrap();
        assert!(report.topology.watertight);
        assert!(report.topology.winding_consistent);
        assert!(report.geometry.signed_volume > 0.0);
        let analytic = 4.0 / 3.0 * std::f64::consts::PI * 1000.0;
        let relative = (report.geometry.signed_volume - analytic).abs() / analytic;
        assert!(relative < 0.01, "volume {} vs {analytic}", report.geometry.signed_volume);
    }

    #[test]
    fn stl_io_reads_what_we_write() {
        let bytes = write_binary_stl(&cuboid([1.0, 2.0, 3.0]));
        let mesh = stl_io::read_stl(&mut std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(mesh.faces.len(), 12);
        assert_eq!(mesh.vertices.len(), 8);
    }
}
