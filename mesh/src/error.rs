//! Typed errors for reading STL input, one kind per way a file can be wrong.

use std::fmt;

/// Why a file could not be read as an STL model.
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
    /// Neither a binary STL nor an ASCII one.
    NotStl { reason: String },
    /// ASCII STL that breaks the grammar at a line.
    AsciiSyntax { line: u64, message: String },
    /// ASCII STL that ends inside a `solid`, `facet` or `loop`.
    Unterminated { line: u64, inside: &'static str },
    /// A coordinate that is NaN or infinite.
    NonFiniteCoordinate { triangle: u64 },
    /// The reader the bytes came from failed.
    Io { message: String },
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
            ReadErrorKind::NotStl { reason } => write!(f, "not an STL file: {reason}"),
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
        }
    }
}

impl std::error::Error for ReadError {}
