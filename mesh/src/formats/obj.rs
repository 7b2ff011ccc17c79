//! Wavefront OBJ: vertices (`v`), faces (`f`) and groups (`o`, `g`).
//!
//! Faces may have any number of corners; each corner is `v`, `v/vt`,
//! `v//vn` or `v/vt/vn`, and only the vertex index matters here. Indices
//! count from 1, and a negative index counts back from the last vertex read
//! (`-1` is the latest). Polygons are triangulated: a convex one as a fan,
//! a concave one by ear clipping in the plane it spans, so its area and the
//! volume it bounds are the polygon's own. Lines may end in CRLF and may be
//! continued with a trailing backslash. Texture coordinates, normals,
//! materials, smoothing groups, lines and points are skipped.
//!
//! The text is read as a stream, line by line; the vertices and the corner
//! indices are kept (a face may name a vertex listed after it), then the
//! triangles are handed over a chunk at a time. Every count is checked
//! against [`Limits`] as it grows.

use std::io::{BufRead, BufReader, Read};

use crate::formats::{CHUNK_TRIANGLES, ModelFormat, ModelInfo, ObjectRange};
use crate::read::Triangle;
use crate::{Limits, ReadError, ReadErrorKind, ReadWarning};

/// Statements that mark a text file as OBJ when they come first.
const KEYWORDS: &[&[u8]] = &[
    b"v", b"vt", b"vn", b"vp", b"f", b"o", b"g", b"s", b"l", b"p", b"mtllib", b"usemtl", b"cstype", b"deg", b"curv",
    b"surf",
];

/// The first statement of the text (comments and blank lines skipped) is an
/// OBJ keyword, or the text holds nothing but comments so far.
pub(crate) fn looks_like_obj(prefix: &[u8]) -> bool {
    for line in prefix.split(|&b| b == b'\n') {
        match line.split(|b| b.is_ascii_whitespace()).find(|t| !t.is_empty()) {
            None => continue,
            Some(t) if t.starts_with(b"#") => continue,
            Some(t) => return KEYWORDS.contains(&t),
        }
    }
    prefix.contains(&b'#')
}

/// Parsed state: vertices, polygons as runs of corner indices, and groups.
struct Parsed {
    vertices: Vec<[f32; 3]>,
    corners: Vec<u32>,
    /// Where each polygon's corners start in `corners`; one more at the end.
    polygon_starts: Vec<u32>,
    /// (name, first polygon) for `o` and for `g` statements.
    objects: Vec<(String, usize)>,
    groups: Vec<(String, usize)>,
    triangles: u64,
    skipped: u64,
    first_skipped: Option<String>,
}

pub(crate) fn read<R: Read>(
    reader: R,
    limits: &Limits,
    mut visit: impl FnMut(&[Triangle], u64),
) -> Result<ModelInfo, ReadError> {
    let parsed = parse(BufReader::with_capacity(1 << 16, reader), limits)?;
    let total = parsed.triangles;
    let polygons = parsed.polygon_starts.len() - 1;
    // Triangle index where each polygon's triangles begin, for the groups.
    let mut first_triangle = Vec::with_capacity(polygons + 1);
    let mut chunk: Vec<Triangle> = Vec::with_capacity(CHUNK_TRIANGLES.min(total as usize));
    let mut emitted = 0u64;
    // Ear clipping costs up to the square of a polygon's corners: the
    // whole file's clipping is held to a budget of steps.
    let budget = limits.max_triangles.saturating_mul(CLIP_STEPS_PER_TRIANGLE);
    let mut scratch = Triangulator { work_left: budget, ..Triangulator::default() };
    for p in 0..polygons {
        first_triangle.push(emitted);
        let ring = &parsed.corners[parsed.polygon_starts[p] as usize..parsed.polygon_starts[p + 1] as usize];
        let point = |v: u32| parsed.vertices[v as usize];
        if let &[a, b, c] = ring {
            chunk.push([point(a), point(b), point(c)]);
        } else {
            let points: Vec<[f32; 3]> = ring.iter().map(|&v| point(v)).collect();
            let triangles = scratch
                .triangulate(&points)
                .ok_or_else(|| ReadError::new(ReadErrorKind::TriangulationTooCostly { steps: budget }))?;
            chunk.extend(triangles.into_iter().map(|[a, b, c]| [points[a], points[b], points[c]]));
        }
        emitted += ring.len() as u64 - 2;
        if chunk.len() >= CHUNK_TRIANGLES {
            visit(&chunk, total);
            chunk.clear();
        }
    }
    first_triangle.push(emitted);
    if !chunk.is_empty() {
        visit(&chunk, total);
    }
    debug_assert_eq!(emitted, total);
    // Objects from `o` when the file names any, else from `g`.
    let marks = if parsed.objects.is_empty() { &parsed.groups } else { &parsed.objects };
    let mut objects = Vec::new();
    for (i, (name, first)) in marks.iter().enumerate() {
        let end = marks.get(i + 1).map_or(polygons, |m| m.1);
        let (from, to) = (first_triangle[*first], first_triangle[end]);
        if to > from {
            objects.push(ObjectRange { name: name.clone(), first_triangle: from, triangles: to - from });
        }
    }
    // Faces before the first group belong to an unnamed one.
    if let Some(first) = marks.first().map(|m| first_triangle[m.1]).filter(|&f| f > 0) {
        objects.insert(0, ObjectRange { name: String::new(), first_triangle: 0, triangles: first });
    }
    let mut warnings = Vec::new();
    if let Some(first) = parsed.first_skipped {
        warnings.push(ReadWarning::ObjStatementsSkipped { statements: parsed.skipped, first });
    }
    Ok(ModelInfo { format: ModelFormat::Obj, triangles: total, warnings, objects, units: None })
}

fn parse<R: BufRead>(mut reader: R, limits: &Limits) -> Result<Parsed, ReadError> {
    let mut parsed = Parsed {
        vertices: Vec::new(),
        corners: Vec::new(),
        polygon_starts: vec![0],
        objects: Vec::new(),
        groups: Vec::new(),
        triangles: 0,
        skipped: 0,
        first_skipped: None,
    };
    let mut line = Vec::new();
    let mut piece = Vec::new();
    let mut line_number = 0u64;
    // The largest reference to a vertex not read yet: checked at the end.
    let mut forward: Option<(u64, u64)> = None;
    loop {
        line.clear();
        let start_line = line_number + 1;
        // A line, joined with the next while it ends in a backslash.
        loop {
            piece.clear();
            let limit = limits.max_line_bytes.saturating_sub(line.len() as u64);
            let n = (&mut reader)
                .take(limit.saturating_add(1))
                .read_until(b'\n', &mut piece)
                .map_err(|e| ReadError::new(ReadErrorKind::Io { message: e.to_string() }))?;
            if n == 0 {
                break;
            }
            line_number += 1;
            if piece.len() as u64 > limit && piece.last() != Some(&b'\n') {
                return Err(ReadError::new(ReadErrorKind::LineTooLong {
                    line: line_number,
                    limit: limits.max_line_bytes,
                }));
            }
            while piece.last().is_some_and(|b| b.is_ascii_whitespace()) {
                piece.pop();
            }
            if piece.last() == Some(&b'\\') {
                piece.pop();
                line.extend_from_slice(&piece);
                line.push(b' ');
                continue;
            }
            line.extend_from_slice(&piece);
            break;
        }
        if line.is_empty() && line_number < start_line {
            break;
        }
        let syntax = |message: String| ReadError::new(ReadErrorKind::ObjSyntax { line: start_line, message });
        let text = &line[..line.iter().position(|&b| b == b'#').unwrap_or(line.len())];
        let mut tokens = text.split(|b| b.is_ascii_whitespace()).filter(|t| !t.is_empty());
        let Some(keyword) = tokens.next() else { continue };
        match keyword {
            b"v" => {
                if parsed.vertices.len() as u64 >= limits.max_vertices {
                    return Err(ReadError::new(ReadErrorKind::TooManyVertices {
                        vertices: parsed.vertices.len() as u64 + 1,
                        limit: limits.max_vertices,
                    }));
                }
                let mut p = [0f32; 3];
                for c in &mut p {
                    let token = tokens.next().ok_or_else(|| syntax("a vertex needs 3 coordinates".into()))?;
                    *c = std::str::from_utf8(token).ok().and_then(|t| t.parse::<f32>().ok()).ok_or_else(|| {
                        syntax(format!("`{}` is not a number", String::from_utf8_lossy(&token[..token.len().min(40)])))
                    })?;
                    if !c.is_finite() {
                        return Err(syntax("a vertex has a NaN or infinite coordinate".into()));
                    }
                }
                parsed.vertices.push(p);
            }
            b"f" => {
                let first = parsed.corners.len();
                for token in tokens {
                    let corners = (parsed.corners.len() - first) as u64;
                    if corners >= limits.max_polygon_vertices {
                        return Err(ReadError::new(ReadErrorKind::PolygonTooLarge {
                            line: start_line,
                            vertices: corners + 1,
                            limit: limits.max_polygon_vertices,
                        }));
                    }
                    let index = token.split(|&b| b == b'/').next().unwrap_or_default();
                    let index =
                        std::str::from_utf8(index).ok().and_then(|t| t.parse::<i64>().ok()).ok_or_else(|| {
                            syntax(format!(
                                "`{}` is not a vertex index",
                                String::from_utf8_lossy(&token[..token.len().min(40)])
                            ))
                        })?;
                    let count = parsed.vertices.len() as i64;
                    let resolved = match index {
                        0 => return Err(syntax("vertex index 0 (OBJ counts from 1)".into())),
                        i if i < 0 && -i > count => {
                            return Err(syntax(format!(
                                "vertex index {i} reaches before the first vertex ({count} read)"
                            )));
                        }
                        i if i < 0 => count + i,
                        i => {
                            // The largest such index decides whether the
                            // file ends with enough vertices.
                            if i > count && forward.is_none_or(|(_, seen)| i as u64 > seen) {
                                forward = Some((start_line, i as u64));
                            }
                            i - 1
                        }
                    };
                    if resolved >= i64::from(u32::MAX) || resolved as u64 >= limits.max_vertices {
                        return Err(syntax(format!("vertex index {index} is beyond the vertex limit")));
                    }
                    parsed.corners.push(resolved as u32);
                }
                let corners = parsed.corners.len() - first;
                if corners < 3 {
                    return Err(syntax(format!("a face needs at least 3 corners, this one has {corners}")));
                }
                parsed.triangles += corners as u64 - 2;
                if parsed.triangles > limits.max_triangles {
                    return Err(ReadError::new(ReadErrorKind::TooManyTriangles {
                        triangles: parsed.triangles,
                        limit: limits.max_triangles,
                    }));
                }
                parsed.polygon_starts.push(parsed.corners.len() as u32);
            }
            b"o" | b"g" => {
                let name = String::from_utf8_lossy(text[keyword.len()..].trim_ascii()).into_owned();
                let list = if keyword == b"o" { &mut parsed.objects } else { &mut parsed.groups };
                let at = parsed.polygon_starts.len() - 1;
                // A group with no face yet is renamed, not added: a file of
                // nothing but `g` lines costs nothing per line.
                match list.last_mut() {
                    Some(last) if last.1 == at => last.0 = name,
                    _ => list.push((name, at)),
                }
            }
            b"vt" | b"vn" | b"vp" | b"s" | b"l" | b"p" | b"mtllib" | b"usemtl" => {}
            other => {
                parsed.skipped += 1;
                if parsed.first_skipped.is_none() {
                    parsed.first_skipped = Some(String::from_utf8_lossy(&other[..other.len().min(40)]).into_owned());
                }
            }
        }
    }
    if let Some((line, index)) = forward
        && index > parsed.vertices.len() as u64
    {
        return Err(ReadError::new(ReadErrorKind::ObjSyntax {
            line,
            message: format!("vertex index {index}, but the file has {} vertices", parsed.vertices.len()),
        }));
    }
    Ok(parsed)
}

/// Steps of ear clipping allowed per triangle of the limit
/// ([`Limits::max_triangles`]), for the whole file.
const CLIP_STEPS_PER_TRIANGLE: u64 = 64;

/// Triangulates polygons: fans for convex ones, ear clipping for the rest.
#[derive(Default)]
struct Triangulator {
    flat: Vec<[f64; 2]>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Ear-clipping steps left; when they run out, `triangulate` gives up.
    work_left: u64,
}

impl Triangulator {
    /// Corner-index triples for the polygon `points`, wound as it is; none
    /// when the clipping steps left run out.
    fn triangulate(&mut self, points: &[[f32; 3]]) -> Option<Vec<[usize; 3]>> {
        let n = points.len();
        let fan = || Some((1..n - 1).map(|i| [0, i, i + 1]).collect());
        if n == 3 {
            return Some(vec![[0, 1, 2]]);
        }
        // Project onto the plane the polygon spans (Newell's normal), with
        // the polygon counter-clockwise seen from the normal's side.
        let p = |i: usize| points[i].map(f64::from);
        let mut normal = [0.0f64; 3];
        for i in 0..n {
            let (a, b) = (p(i), p((i + 1) % n));
            normal[0] += (a[1] - b[1]) * (a[2] + b[2]);
            normal[1] += (a[2] - b[2]) * (a[0] + b[0]);
            normal[2] += (a[0] - b[0]) * (a[1] + b[1]);
        }
        let axis = (0..3).max_by(|&i, &j| normal[i].abs().total_cmp(&normal[j].abs())).unwrap_or(2);
        if normal[axis] == 0.0 {
            return fan();
        }
        let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
        let sign = normal[axis].signum();
        self.flat.clear();
        self.flat.extend((0..n).map(|i| [p(i)[u], sign * p(i)[v]]));
        let flat = &self.flat;
        let turn = |a: usize, b: usize, c: usize| {
            (flat[b][0] - flat[a][0]) * (flat[c][1] - flat[a][1])
                - (flat[b][1] - flat[a][1]) * (flat[c][0] - flat[a][0])
        };
        if (0..n).all(|i| turn(i, (i + 1) % n, (i + 2) % n) >= 0.0) {
            return fan();
        }
        // Ear clipping on a doubly linked ring.
        self.next.clear();
        self.prev.clear();
        self.next.extend((0..n).map(|i| (i + 1) % n));
        self.prev.extend((0..n).map(|i| (i + n - 1) % n));
        let (next, prev, work_left) = (&mut self.next, &mut self.prev, &mut self.work_left);
        let mut triangles = Vec::with_capacity(n - 2);
        let mut remaining = n;
        let mut at = 0;
        let mut since_clip = 0;
        while remaining > 3 {
            let (a, b, c) = (prev[at], at, next[at]);
            let is_ear = turn(a, b, c) > 0.0 && {
                // No other remaining corner inside (or on) the triangle.
                let mut k = next[c];
                let mut clear = true;
                while k != a {
                    *work_left = work_left.checked_sub(1)?;
                    if flat[k] != flat[a]
                        && flat[k] != flat[b]
                        && flat[k] != flat[c]
                        && turn(a, b, k) >= 0.0
                        && turn(b, c, k) >= 0.0
                        && turn(c, a, k) >= 0.0
                    {
                        clear = false;
                        break;
                    }
                    k = next[k];
                }
                clear
            };
            if is_ear {
                triangles.push([a, b, c]);
                next[a] = c;
                prev[c] = a;
                remaining -= 1;
                at = c;
                since_clip = 0;
            } else {
                at = c;
                since_clip += 1;
                if since_clip > remaining {
                    // No ear left (a self-crossing or degenerate polygon):
                    // fan what remains.
                    let first = at;
                    let mut k = next[first];
                    while next[k] != first {
                        triangles.push([first, k, next[k]]);
                        k = next[k];
                    }
                    return Some(triangles);
                }
            }
        }
        triangles.push([prev[at], at, next[at]]);
        Some(triangles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlimited() -> Triangulator {
        Triangulator { work_left: u64::MAX, ..Triangulator::default() }
    }

    #[test]
    fn clipping_stops_when_its_steps_run_out() {
        // An L: concave, so it is clipped, not fanned.
        let l = [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [2.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 2.0, 0.0]];
        assert_eq!(Triangulator { work_left: 2, ..Triangulator::default() }.triangulate(&l), None);
        let mut enough = unlimited();
        assert_eq!(enough.triangulate(&l).map(|t| t.len()), Some(4));
        assert!(enough.work_left < u64::MAX, "steps were counted");
    }

    fn area(points: &[[f32; 3]], triangles: &[[usize; 3]]) -> f64 {
        triangles
            .iter()
            .map(|&[a, b, c]| {
                let (a, b, c) = (points[a].map(f64::from), points[b].map(f64::from), points[c].map(f64::from));
                ((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) / 2.0
            })
            .sum()
    }

    #[test]
    fn a_concave_polygon_is_clipped_to_its_own_area() {
        // An L of area 3, wound counter-clockwise, starting at a reflex
        // corner so that a fan from it would leave the polygon.
        let l = [[1.0, 1.0, 0.0], [2.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]];
        let triangles = unlimited().triangulate(&l).unwrap();
        assert_eq!(triangles.len(), 4);
        assert_eq!(area(&l, &triangles), 3.0);
        // Wound clockwise it stays clockwise: the area is negative.
        let mut reversed = l;
        reversed.reverse();
        assert_eq!(area(&reversed, &unlimited().triangulate(&reversed).unwrap()), -3.0);
    }

    #[test]
    fn a_convex_polygon_is_a_fan() {
        let square = [[0.0, 0.0, 5.0], [1.0, 0.0, 5.0], [1.0, 1.0, 5.0], [0.0, 1.0, 5.0]];
        assert_eq!(unlimited().triangulate(&square).unwrap(), vec![[0, 1, 2], [0, 2, 3]]);
    }

    #[test]
    fn obj_is_recognised_from_its_first_statement() {
        assert!(looks_like_obj(b"# Blender\nmtllib x.mtl\no Cube\nv 1 1 1\n"));
        assert!(looks_like_obj(b"v 1 2 3\r\nv 1 2 3\r\n"));
        assert!(!looks_like_obj(b"solid cube\n"));
        assert!(!looks_like_obj(b"hello world\n"));
        assert!(looks_like_obj(b"# only a comment so far"));
    }
}
