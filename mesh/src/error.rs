//! Typed errors for reading model files (STL, 3MF, OBJ), one kind per way a
//! file can be wrong.

use std::fmt;

/// Why a file could not be read as a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    kind: ReadErrorKind,
}

impl ReadError {
    pub(crate) fn new(kind: ReadErrorKind) -> Self {
        Self { kind }
    }

    pub fn kind(&self) -> &ReadErrorKind {
        &self.kind
    }
}

/// The ways input can be malformed. Each carries enough context for a person
/// to find the problem in their file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The file has no bytes, or no triangles.
    Empty,
    /// Larger than the configured byte limit.
    TooLarge { bytes: u64, limit: u64 },
    /// More triangles than the configured triangle limit.
    TooManyTriangles { triangles: u64, limit: u64 },
    /// A binary file shorter than its header's triangle count requires. We
    /// refuse rather than price a model with triangles missing.
    Truncated { declared_triangles: u64, expected_bytes: u64, actual_bytes: u64 },
    /// Not a model file in any format we read (binary or ASCII STL, 3MF, OBJ).
    UnknownFormat { reason: String },
    /// ASCII STL that breaks the grammar at a line.
    AsciiSyntax { line: u64, message: String },
    /// ASCII STL that ends inside a `solid`, `facet` or `loop`.
    Unterminated { line: u64, inside: &'static str },
    /// A coordinate that is NaN or infinite.
    NonFiniteCoordinate { triangle: u64 },
    /// The reader the bytes came from failed.
    Io { message: String },
    /// More vertices than the configured vertex limit (3MF, OBJ).
    TooManyVertices { vertices: u64, limit: u64 },
    /// A 3MF package that is not a readable zip archive.
    Zip { message: String },
    /// A 3MF package past one of the zip-bomb guards: too many entries,
    /// too many bytes once inflated, or too high a compression ratio.
    ZipLimit { what: &'static str, value: u64, limit: u64 },
    /// A 3MF package whose parts or model break the 3MF core specification.
    ThreeMf { part: String, message: String },
    /// An OBJ statement that cannot be read, at a line.
    ObjSyntax { line: u64, message: String },
    /// A polygon with more corners than the configured limit (OBJ).
    PolygonTooLarge { line: u64, vertices: u64, limit: u64 },
    /// A text line longer than the configured limit (OBJ, ASCII STL).
    LineTooLong { line: u64, limit: u64 },
    /// Triangulating the OBJ's concave polygons needs more steps than the
    /// budget the triangle limit gives.
    TriangulationTooCostly { steps: u64 },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ReadErrorKind::Empty => write!(f, "the file holds no triangles"),
            ReadErrorKind::TooLarge { bytes, limit } => {
                write!(f, "the file is {bytes} bytes, over the limit of {limit} bytes")
            }
            ReadErrorKind::TooManyTriangles { triangles, limit } => {
                write!(f, "the model has {triangles} triangles, over the limit of {limit}")
            }
            ReadErrorKind::Truncated { declared_triangles, expected_bytes, actual_bytes } => write!(
                f,
                "binary STL is truncated: its header declares {declared_triangles} triangles \
                 ({expected_bytes} bytes) but the file has {actual_bytes} bytes"
            ),
            ReadErrorKind::UnknownFormat { reason } => {
                write!(f, "not a model file (binary or ASCII STL, 3MF or OBJ): {reason}")
            }
            ReadErrorKind::AsciiSyntax { line, message } => {
                write!(f, "ASCII STL syntax error at line {line}: {message}")
            }
            ReadErrorKind::Unterminated { line, inside } => {
                write!(f, "ASCII STL ends at line {line} inside an unclosed {inside}")
            }
            ReadErrorKind::NonFiniteCoordinate { triangle } => {
                write!(f, "triangle {triangle} has a NaN or infinite coordinate")
            }
            ReadErrorKind::Io { message } => write!(f, "cannot read the model: {message}"),
            ReadErrorKind::TooManyVertices { vertices, limit } => {
                write!(f, "the model has {vertices} vertices, over the limit of {limit}")
            }
            ReadErrorKind::Zip { message } => write!(f, "the 3MF package is not a readable zip archive: {message}"),
            ReadErrorKind::ZipLimit { what, value, limit } => {
                write!(
                    f,
                    "the 3MF package is refused as a possible zip bomb: {what} is {value}, over the limit of {limit}"
                )
            }
            ReadErrorKind::ThreeMf { part, message } => write!(f, "invalid 3MF ({part}): {message}"),
            ReadErrorKind::ObjSyntax { line, message } => write!(f, "OBJ error at line {line}: {message}"),
            ReadErrorKind::TriangulationTooCostly { steps } => write!(
                f,
                "triangulating the OBJ's concave polygons needs more than {steps} steps (64 per triangle of the \
                 triangle limit)"
            ),
            ReadErrorKind::PolygonTooLarge { line, vertices, limit } => {
                write!(f, "OBJ face at line {line} has {vertices} corners, over the limit of {limit}")
            }
            ReadErrorKind::LineTooLong { line, limit } => {
                write!(f, "line {line} is longer than the limit of {limit} bytes")
            }
        }
    }
}

impl std::error::Error for ReadError {}
