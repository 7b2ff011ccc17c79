//! STL decoding: tells binary from ASCII by content and yields a triangle soup.
//!
//! Format detection never trusts the first five bytes alone: many CAD tools
//! write binary files whose 80-byte header starts with `solid`. A file is
//! binary when its size matches the triangle count in its header; otherwise it
//! is ASCII when it reads as text that starts with `solid`.
//!
//! Stored facet normals are ignored on purpose. Real files often carry zero
//! normals or normals that contradict the vertex winding, so every quantity we
//! derive comes from the vertices and their order.

use std::io::{BufRead, BufReader, Read};

use rayon::prelude::*;

use crate::formats::{ModelFormat, ModelInfo};
use crate::{Limits, ReadError, ReadErrorKind};

/// One triangle as three vertices in file order (counter-clockwise seen from
/// outside, when the file is well formed).
pub type Triangle = [[f32; 3]; 3];

/// Anything that can hand out triangles by index: a soup as read, or an
/// indexed mesh (which lets the soup be freed once it is welded).
pub trait Triangles: Sync {
    fn count(&self) -> usize;
    fn triangle(&self, index: usize) -> Triangle;
}

impl Triangles for [Triangle] {
    fn count(&self) -> usize {
        self.len()
    }

    fn triangle(&self, index: usize) -> Triangle {
        self[index]
    }
}

impl Triangles for Vec<Triangle> {
    fn count(&self) -> usize {
        self.len()
    }

    fn triangle(&self, index: usize) -> Triangle {
        self[index]
    }
}

const HEADER_BYTES: usize = 80;
/// The most triangles the later passes can index: the weld gives vertex ids
/// 29 bits (three corners per triangle), the topology pass face ids 31.
pub(crate) const MAX_INDEXABLE_TRIANGLES: u64 = (1 << 29) / 3;
/// Facets decoded per chunk when streaming: 3.2 MB of file at a time.
const CHUNK_FACETS: usize = 64 * 1024;
const BINARY_PREFIX_BYTES: usize = HEADER_BYTES + 4;
const BINARY_FACET_BYTES: usize = 50;
/// Below this many triangles the rayon fork/join costs more than it saves.
const PARALLEL_THRESHOLD: usize = 16 * 1024;

/// Something unusual the reader accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadWarning {
    /// Bytes after the last triangle the header declares; they are ignored.
    TrailingBytes { bytes: u64 },
    /// An ASCII file with more than one `solid` block; all blocks are joined.
    MultipleSolids { solids: u64 },
    /// The file declares its unit (3MF), so the unit asked for was not applied.
    DeclaredUnits { declared: crate::Units, ignored: crate::Units },
    /// 3MF objects that are not printed parts (`support`, `surface` or
    /// `other`) were left out.
    ObjectsLeftOut { objects: u64, kind: String },
    /// OBJ statements this reader does not use (curves, surfaces...) were
    /// skipped.
    ObjStatementsSkipped { statements: u64, first: String },
    /// The exact weld left more open edges than the memory budget lets the
    /// nearby step match, so it did not run: the mesh is welded exactly.
    NearbyWeldSkipped { open_edges: u64 },
}

impl std::fmt::Display for ReadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadWarning::TrailingBytes { bytes } => {
                write!(f, "{bytes} bytes after the last declared triangle were ignored")
            }
            ReadWarning::MultipleSolids { solids } => {
                write!(f, "the ASCII file holds {solids} solids; they were joined")
            }
            ReadWarning::DeclaredUnits { declared, ignored } => write!(
                f,
                "the file declares its unit ({}); it was converted to mm and {} was not applied",
                declared.as_str(),
                ignored.as_str()
            ),
            ReadWarning::ObjectsLeftOut { objects, kind } => {
                write!(f, "{objects} objects of type `{kind}` are not printed parts and were left out")
            }
            ReadWarning::ObjStatementsSkipped { statements, first } => {
                write!(f, "{statements} OBJ statements this reader does not use were skipped (the first: `{first}`)")
            }
            ReadWarning::NearbyWeldSkipped { open_edges } => write!(
                f,
                "{open_edges} edges are open after the exact weld, more than the memory budget lets the nearby weld \
                 match; only identical vertices were welded"
            ),
        }
    }
}

/// The triangles of a file, before any welding.
#[derive(Debug, Clone, PartialEq)]
pub struct Soup {
    pub format: ModelFormat,
    pub triangles: Vec<Triangle>,
    pub warnings: Vec<ReadWarning>,
}

/// Decodes an STL file held in memory.
pub fn read_stl(bytes: &[u8], limits: &Limits) -> Result<Soup, ReadError> {
    let mut triangles = Vec::new();
    let info = read_stl_chunked(bytes, bytes.len() as u64, limits, |chunk, total| {
        // `total` is 0 while an ASCII file's count is not known yet.
        triangles.reserve_exact((total as usize).saturating_sub(triangles.len()));
        triangles.extend_from_slice(chunk);
    })?;
    Ok(Soup { format: info.format, triangles, warnings: info.warnings })
}

/// Decodes `len` bytes of STL from `reader`, handing the triangles to
/// `visit` a chunk at a time, so a binary file is never held whole: only one
/// chunk of it (3.2 MB) is in memory at once; an ASCII file streams a line
/// at a time. `visit` also gets the total number of triangles to expect
/// (binary), or 0 (ASCII, whose count is known only at the end). For any
/// format, use [`crate::read_model_chunked`].
pub fn read_stl_chunked<R: Read>(
    mut reader: R,
    len: u64,
    limits: &Limits,
    mut visit: impl FnMut(&[Triangle], u64),
) -> Result<ModelInfo, ReadError> {
    let limits = &limits.indexable();
    let prefix = read_prefix(&mut reader, len, limits)?;
    read_stl_after_prefix(reader, prefix, len, limits, |_, chunk, total| visit(chunk, total))
}

/// Refuses an empty file or one over the size limit, then reads the first
/// bytes (up to [`PREFIX_BYTES`]) that tell the formats apart.
pub(crate) fn read_prefix<R: Read>(reader: &mut R, len: u64, limits: &Limits) -> Result<Vec<u8>, ReadError> {
    if len == 0 {
        return Err(ReadError::new(ReadErrorKind::Empty));
    }
    if len > limits.max_bytes {
        return Err(ReadError::new(ReadErrorKind::TooLarge { bytes: len, limit: limits.max_bytes }));
    }
    let mut prefix = vec![0u8; len.min(PREFIX_BYTES as u64) as usize];
    read_exact(reader, &mut prefix, len)?;
    Ok(prefix)
}

/// Bytes read first to tell the formats apart.
pub(crate) const PREFIX_BYTES: usize = 1024;

/// The size is exactly what a binary STL with the header's count needs.
pub(crate) fn binary_size_matches(prefix: &[u8], len: u64) -> bool {
    prefix.len() >= BINARY_PREFIX_BYTES
        && BINARY_PREFIX_BYTES as u64 + BINARY_FACET_BYTES as u64 * declared_triangles(prefix) == len
}

/// STL, once the first bytes (`prefix`, up to [`PREFIX_BYTES`]) are read.
pub(crate) fn read_stl_after_prefix<R: Read>(
    reader: R,
    prefix: Vec<u8>,
    len: u64,
    limits: &Limits,
    mut visit: impl FnMut(ModelFormat, &[Triangle], u64),
) -> Result<ModelInfo, ReadError> {
    let starts_like_ascii = starts_with_solid(&prefix);
    if prefix.len() >= BINARY_PREFIX_BYTES {
        let declared = declared_triangles(&prefix);
        let expected = BINARY_PREFIX_BYTES as u64 + BINARY_FACET_BYTES as u64 * declared;
        if expected == len || !(starts_like_ascii && looks_like_text(&prefix)) {
            return read_binary(reader, &prefix, len, declared, expected, limits, |chunk, total| {
                visit(ModelFormat::Binary, chunk, total)
            });
        }
    } else if !starts_like_ascii {
        return Err(ReadError::new(ReadErrorKind::UnknownFormat {
            reason: format!(
                "{len} bytes is shorter than a binary STL header ({BINARY_PREFIX_BYTES} bytes), \
                 the text does not start with `solid`, and it is neither a zip (3MF) nor OBJ"
            ),
        }));
    }
    // ASCII streams line by line, handing triangles over a chunk at a time
    // like binary; how many there are is known only at the end (0 until then).
    let rest = len - prefix.len() as u64;
    let text = BufReader::with_capacity(1 << 16, std::io::Cursor::new(prefix).chain(reader.take(rest)));
    let (triangles, warnings, consumed) = read_ascii(text, limits, |chunk| visit(ModelFormat::Ascii, chunk, 0))?;
    if consumed < len {
        return Err(ReadError::new(ReadErrorKind::Io { message: format!("the input ended before its {len} bytes") }));
    }
    Ok(ModelInfo::stl(ModelFormat::Ascii, triangles, warnings))
}

/// Fills `buffer`; a reader that ends early means the file is shorter than
/// its size said, which reads as truncation.
pub(crate) fn read_exact<R: Read>(reader: &mut R, buffer: &mut [u8], len: u64) -> Result<(), ReadError> {
    reader.read_exact(buffer).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            ReadError::new(ReadErrorKind::Io { message: format!("the input ended before its {len} bytes") })
        }
        _ => ReadError::new(ReadErrorKind::Io { message: e.to_string() }),
    })
}

fn declared_triangles(bytes: &[u8]) -> u64 {
    let count: [u8; 4] = bytes[HEADER_BYTES..BINARY_PREFIX_BYTES].try_into().expect("4 bytes");
    u64::from(u32::from_le_bytes(count))
}

fn starts_with_solid(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    bytes[start..].len() >= 5 && bytes[start..start + 5].eq_ignore_ascii_case(b"solid")
}

/// Binary STL is full of NUL and high bytes; ASCII STL has none in its first
/// kilobyte. Checking a bounded prefix keeps detection O(1).
pub(crate) fn looks_like_text(bytes: &[u8]) -> bool {
    let prefix = &bytes[..bytes.len().min(1024)];
    prefix.iter().all(|&b| b == b'\t' || b == b'\n' || b == b'\r' || (0x20..0x7f).contains(&b))
}

fn read_binary<R: Read>(
    mut reader: R,
    prefix: &[u8],
    len: u64,
    declared: u64,
    expected: u64,
    limits: &Limits,
    mut visit: impl FnMut(&[Triangle], u64),
) -> Result<ModelInfo, ReadError> {
    if declared > limits.max_triangles {
        return Err(ReadError::new(ReadErrorKind::TooManyTriangles {
            triangles: declared,
            limit: limits.max_triangles,
        }));
    }
    if len < expected {
        return Err(ReadError::new(ReadErrorKind::Truncated {
            declared_triangles: declared,
            expected_bytes: expected,
            actual_bytes: len,
        }));
    }
    let mut warnings = Vec::new();
    if len > expected {
        warnings.push(ReadWarning::TrailingBytes { bytes: len - expected });
    }
    // The prefix already holds the first facets' bytes; later chunks come
    // from the reader into the same buffer.
    let mut buffer: Vec<u8> = prefix[BINARY_PREFIX_BYTES..].to_vec();
    let mut triangles: Vec<Triangle> = Vec::with_capacity(CHUNK_FACETS.min(declared as usize));
    let mut done = 0u64;
    while done < declared {
        let facets = (declared - done).min(CHUNK_FACETS as u64) as usize;
        let need = facets * BINARY_FACET_BYTES;
        let have = buffer.len().min(need);
        let carry = buffer.split_off(have);
        buffer.resize(need, 0);
        read_exact(&mut reader, &mut buffer[have..], len)?;
        triangles.clear();
        if facets >= PARALLEL_THRESHOLD {
            buffer.par_chunks_exact(BINARY_FACET_BYTES).map(decode_facet).collect_into_vec(&mut triangles);
        } else {
            triangles.extend(buffer.chunks_exact(BINARY_FACET_BYTES).map(decode_facet));
        }
        check_finite(&triangles, done)?;
        visit(&triangles, declared);
        done += facets as u64;
        buffer.clear();
        buffer.extend_from_slice(&carry);
    }
    Ok(ModelInfo::stl(ModelFormat::Binary, declared, warnings))
}

/// A facet is a normal (skipped), three vertices and a 2-byte attribute field.
fn decode_facet(facet: &[u8]) -> Triangle {
    let f = |i: usize| {
        let at = 12 + 4 * i;
        f32::from_le_bytes(facet[at..at + 4].try_into().expect("4 bytes"))
    };
    [[f(0), f(1), f(2)], [f(3), f(4), f(5)], [f(6), f(7), f(8)]]
}

fn check_finite(triangles: &[Triangle], first_index: u64) -> Result<(), ReadError> {
    let bad = |t: &Triangle| t.iter().flatten().any(|c| !c.is_finite());
    let first_bad = if triangles.len() >= PARALLEL_THRESHOLD {
        triangles.par_iter().position_first(bad)
    } else {
        triangles.iter().position(bad)
    };
    match first_bad {
        Some(index) => Err(ReadError::new(ReadErrorKind::NonFiniteCoordinate { triangle: first_index + index as u64 })),
        None => Ok(()),
    }
}

/// Where the ASCII grammar is, between keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AsciiState {
    /// Before `solid`, or after `endsolid`.
    Outside,
    /// Inside `solid`, between facets.
    InSolid,
    /// After `facet normal …`, before `outer loop`.
    InFacet,
    /// Inside `outer loop`, collecting vertices.
    InLoop,
    /// After `endloop`, before `endfacet`.
    LoopClosed,
}

/// A line-oriented parser that accepts the variants real exporters write:
/// upper- or lower-case keywords, CRLF, tabs, scientific notation, and several
/// `solid` blocks in one file.
///
/// Reads `text` a line at a time (no line over `max_line_bytes`) and hands
/// the triangles to `emit` a chunk at a time; returns how many there were,
/// the warnings, and the bytes read.
fn read_ascii<R: BufRead>(
    mut text: R,
    limits: &Limits,
    mut emit: impl FnMut(&[Triangle]),
) -> Result<(u64, Vec<ReadWarning>, u64), ReadError> {
    let mut triangles: Vec<Triangle> = Vec::with_capacity(CHUNK_FACETS);
    let mut count = 0u64;
    let mut consumed = 0u64;
    let mut state = AsciiState::Outside;
    let mut solids = 0u64;
    let mut loop_vertices: Vec<[f32; 3]> = Vec::with_capacity(3);
    let mut line_number = 0u64;
    let mut state_opened_at = 0u64;
    let mut raw_line = Vec::new();
    loop {
        raw_line.clear();
        let read = (&mut text)
            .take(limits.max_line_bytes.saturating_add(1))
            .read_until(b'\n', &mut raw_line)
            .map_err(|e| ReadError::new(ReadErrorKind::Io { message: e.to_string() }))?;
        if read == 0 {
            break;
        }
        consumed += read as u64;
        line_number += 1;
        if read as u64 > limits.max_line_bytes && raw_line.last() != Some(&b'\n') {
            return Err(ReadError::new(ReadErrorKind::LineTooLong { line: line_number, limit: limits.max_line_bytes }));
        }
        let mut tokens = raw_line.split(|b| b.is_ascii_whitespace()).filter(|t| !t.is_empty());
        let Some(keyword) = tokens.next() else { continue };
        let syntax = |message: String| ReadError::new(ReadErrorKind::AsciiSyntax { line: line_number, message });
        let keyword_is = |k: &[u8]| keyword.eq_ignore_ascii_case(k);
        match state {
            AsciiState::Outside if keyword_is(b"solid") => {
                solids += 1;
                state = AsciiState::InSolid;
                state_opened_at = line_number;
            }
            AsciiState::InSolid if keyword_is(b"facet") => {
                if count >= limits.max_triangles {
                    return Err(ReadError::new(ReadErrorKind::TooManyTriangles {
                        triangles: count + 1,
                        limit: limits.max_triangles,
                    }));
                }
                state = AsciiState::InFacet;
                state_opened_at = line_number;
            }
            AsciiState::InSolid if keyword_is(b"endsolid") => state = AsciiState::Outside,
            AsciiState::InFacet if keyword_is(b"outer") => {
                loop_vertices.clear();
                state = AsciiState::InLoop;
            }
            AsciiState::InLoop if keyword_is(b"vertex") => {
                if loop_vertices.len() == 3 {
                    return Err(syntax("a facet loop has more than 3 vertices".into()));
                }
                let mut coordinate = [0f32; 3];
                for c in &mut coordinate {
                    let token = tokens.next().ok_or_else(|| syntax("a vertex needs 3 coordinates".into()))?;
                    *c = parse_coordinate(token)
                        .ok_or_else(|| syntax(format!("`{}` is not a number", String::from_utf8_lossy(token))))?;
                    if !c.is_finite() {
                        return Err(ReadError::new(ReadErrorKind::NonFiniteCoordinate { triangle: count }));
                    }
                }
                loop_vertices.push(coordinate);
            }
            AsciiState::InLoop if keyword_is(b"endloop") => {
                if loop_vertices.len() != 3 {
                    return Err(syntax(format!("a facet loop has {} vertices, not 3", loop_vertices.len())));
                }
                state = AsciiState::LoopClosed;
            }
            AsciiState::LoopClosed if keyword_is(b"endfacet") => {
                triangles.push([loop_vertices[0], loop_vertices[1], loop_vertices[2]]);
                count += 1;
                if triangles.len() == CHUNK_FACETS {
                    emit(&triangles);
                    triangles.clear();
                }
                state = AsciiState::InSolid;
            }
            _ => {
                let word = String::from_utf8_lossy(&keyword[..keyword.len().min(40)]).into_owned();
                return Err(syntax(format!("unexpected `{word}` {}", expectation(state))));
            }
        }
    }
    let inside = match state {
        AsciiState::Outside => None,
        AsciiState::InSolid => Some("solid"),
        AsciiState::InFacet | AsciiState::LoopClosed => Some("facet"),
        AsciiState::InLoop => Some("loop"),
    };
    if let Some(inside) = inside {
        return Err(ReadError::new(ReadErrorKind::Unterminated { line: state_opened_at, inside }));
    }
    if !triangles.is_empty() {
        emit(&triangles);
    }
    let mut warnings = Vec::new();
    if solids > 1 {
        warnings.push(ReadWarning::MultipleSolids { solids });
    }
    Ok((count, warnings, consumed))
}

fn expectation(state: AsciiState) -> &'static str {
    match state {
        AsciiState::Outside => "where `solid` was expected",
        AsciiState::InSolid => "where `facet` or `endsolid` was expected",
        AsciiState::InFacet => "where `outer loop` was expected",
        AsciiState::InLoop => "where `vertex` or `endloop` was expected",
        AsciiState::LoopClosed => "where `endfacet` was expected",
    }
}

fn parse_coordinate(token: &[u8]) -> Option<f32> {
    std::str::from_utf8(token).ok()?.parse::<f32>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cuboid, write_binary_stl};

    fn ascii_cube_facet(keyword_case: fn(&str) -> String, eol: &str) -> String {
        let k = keyword_case;
        [
            format!("{} cube", k("solid")),
            format!("  {} {} 0 0 -1", k("facet"), k("normal")),
            format!("    {} {}", k("outer"), k("loop")),
            format!("\t{} 0 0 0", k("vertex")),
            format!("\t{} 1.0E+01 0 0", k("vertex")),
            format!("\t{} 0 1e1 0", k("vertex")),
            format!("    {}", k("endloop")),
            format!("  {}", k("endfacet")),
            format!("{} cube", k("endsolid")),
        ]
        .join(eol)
    }

    #[test]
    fn ascii_variants_parse_to_the_same_triangle() {
        let expected = vec![[[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]]];
        for text in [ascii_cube_facet(|s| s.to_string(), "\n"), ascii_cube_facet(|s| s.to_uppercase(), "\r\n")] {
            let soup = read_stl(text.as_bytes(), &Limits::default()).unwrap();
            assert_eq!(soup.format, ModelFormat::Ascii);
            assert_eq!(soup.triangles, expected);
        }
    }

    #[test]
    fn several_solids_are_joined_with_a_warning() {
        let one = ascii_cube_facet(|s| s.to_string(), "\n");
        let text = format!("{one}\n{one}\n");
        let soup = read_stl(text.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(soup.triangles.len(), 2);
        assert_eq!(soup.warnings, vec![ReadWarning::MultipleSolids { solids: 2 }]);
    }

    #[test]
    fn binary_with_solid_header_is_read_as_binary() {
        let mut bytes = write_binary_stl(&cuboid([1.0, 2.0, 3.0]));
        bytes[..12].copy_from_slice(b"solid part  ");
        let soup = read_stl(&bytes, &Limits::default()).unwrap();
        assert_eq!(soup.format, ModelFormat::Binary);
        assert_eq!(soup.triangles.len(), 12);
    }

    #[test]
    fn truncated_binary_is_refused() {
        let bytes = write_binary_stl(&cuboid([1.0, 1.0, 1.0]));
        let err = read_stl(&bytes[..bytes.len() - 30], &Limits::default()).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::Truncated { declared_triangles: 12, .. }), "{err}");
    }

    #[test]
    fn unclosed_ascii_is_refused() {
        let text = "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\n";
        let err = read_stl(text.as_bytes(), &Limits::default()).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::Unterminated { inside: "loop", .. }), "{err}");
        let err = read_stl(b"solid x\n", &Limits::default()).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::Unterminated { inside: "solid", .. }), "{err}");
    }

    #[test]
    fn nan_coordinates_are_refused() {
        let mut triangles = cuboid([1.0, 1.0, 1.0]);
        triangles[5][1][2] = f32::NAN;
        let err = read_stl(&write_binary_stl(&triangles), &Limits::default()).unwrap_err();
        assert_eq!(err.kind(), &ReadErrorKind::NonFiniteCoordinate { triangle: 5 });
    }

    #[test]
    fn limits_are_enforced_before_allocation() {
        let mut header = vec![0u8; 84];
        header[80..84].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_stl(&header, &Limits::default()).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::TooManyTriangles { .. }), "{err}");
        let limits = Limits { max_bytes: 10, ..Limits::default() };
        let err = read_stl(&header, &limits).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::TooLarge { bytes: 84, limit: 10 }), "{err}");
    }

    /// Hands out at most 7 bytes a call, as a slow pipe might.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(7).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_file_larger_than_one_chunk_streams_in_order_from_any_reader() {
        let triangles = crate::uv_sphere(10.0, 300, 120);
        assert!(triangles.len() > CHUNK_FACETS);
        let mut bytes = write_binary_stl(&triangles);
        bytes.extend_from_slice(b"trailing");
        let mut chunks = Vec::new();
        let mut seen = Vec::new();
        let info = read_stl_chunked(Trickle(&bytes), bytes.len() as u64, &Limits::default(), |chunk, total| {
            assert_eq!(total as usize, triangles.len());
            chunks.push(chunk.len());
            seen.extend_from_slice(chunk);
        })
        .unwrap();
        assert_eq!(chunks, vec![CHUNK_FACETS, triangles.len() - CHUNK_FACETS]);
        assert_eq!(seen, triangles);
        assert_eq!(info.warnings, vec![ReadWarning::TrailingBytes { bytes: 8 }]);
    }

    #[test]
    fn a_reader_shorter_than_its_stated_length_is_an_error() {
        let bytes = write_binary_stl(&cuboid([1.0; 3]));
        let err = read_stl_chunked(&bytes[..300], bytes.len() as u64, &Limits::default(), |_, _| {}).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::Io { .. }), "{err}");
    }

    #[test]
    fn an_ascii_file_streams_a_chunk_at_a_time_and_is_checked_to_its_length() {
        let triangles = crate::uv_sphere(10.0, 300, 120);
        let mut text = String::from("solid sphere\n");
        for t in &triangles {
            text += "facet normal 0 0 0\nouter loop\n";
            for v in t {
                text += &format!("vertex {} {} {}\n", v[0], v[1], v[2]);
            }
            text += "endloop\nendfacet\n";
        }
        text += "endsolid sphere\n";
        let bytes = text.as_bytes();
        let mut chunks = Vec::new();
        let mut seen = Vec::new();
        let info = read_stl_chunked(Trickle(bytes), bytes.len() as u64, &Limits::default(), |chunk, total| {
            assert_eq!(total, 0, "not known before the end");
            chunks.push(chunk.len());
            seen.extend_from_slice(chunk);
        })
        .unwrap();
        assert_eq!(chunks, vec![CHUNK_FACETS, triangles.len() - CHUNK_FACETS]);
        assert!(seen == triangles, "the triangles as written, in order");
        assert_eq!((info.triangles, info.format), (triangles.len() as u64, ModelFormat::Ascii));
        // A reader that ends before the stated length, and a line past the limit.
        let err = read_stl_chunked(&bytes[..1000], bytes.len() as u64, &Limits::default(), |_, _| {}).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::Io { .. }), "{err}");
        let long = format!("solid x\nfacet normal {}\n", "0 ".repeat(2000));
        let limits = Limits { max_line_bytes: 1000, ..Limits::default() };
        let err = read_stl(long.as_bytes(), &limits).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::LineTooLong { line: 2, limit: 1000 }), "{err}");
    }

    #[test]
    fn garbage_is_not_stl() {
        let err = read_stl(b"hello world", &Limits::default()).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::UnknownFormat { .. }), "{err}");
        let err = read_stl(b"solid but then nonsense\nfoo bar\n", &Limits::default()).unwrap_err();
        assert!(matches!(err.kind(), ReadErrorKind::AsciiSyntax { line: 2, .. }), "{err}");
    }
}
