//! Model formats: each file's format is found from its bytes (never its
//! name), and its reader hands the triangles over a chunk at a time.
//!
//! Detection, in order:
//! 1. a binary STL, when the size is exactly what the triangle count in its
//!    header says (even when the header starts with `solid`, as many CAD
//!    tools write it);
//! 2. 3MF, when the file starts with a zip local-file header (`PK\3\4`);
//! 3. OBJ, when the first kilobyte is text whose first statement is an OBJ
//!    keyword (`v`, `f`, `o`, `g`, `vt`, `mtllib`...) or only comments;
//! 4. otherwise STL: ASCII when it reads as text starting with `solid`, and
//!    binary (refused as truncated, or with trailing bytes) when not.

mod obj;
mod threemf;

use std::io::Read;

use crate::read::{self, Triangle};
use crate::{Limits, ReadError, ReadErrorKind, ReadWarning, Units};

/// How the model was encoded. `as_str` gives the names clients see in the
/// `format` field: `binary` and `ascii` (STL, as they always were), `3mf`
/// and `obj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// Binary STL.
    Binary,
    /// ASCII STL.
    Ascii,
    /// 3D Manufacturing Format: a zip package of XML parts.
    ThreeMf,
    /// Wavefront OBJ.
    Obj,
}

impl ModelFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFormat::Binary => "binary",
            ModelFormat::Ascii => "ascii",
            ModelFormat::ThreeMf => "3mf",
            ModelFormat::Obj => "obj",
        }
    }

    /// The format says which unit its numbers are in (3MF does; STL and
    /// OBJ do not), and the reader has already converted them to mm.
    pub fn declares_units(self) -> bool {
        self == ModelFormat::ThreeMf
    }
}

/// One object of a file that has several (3MF build items, OBJ `o` or `g`
/// groups): a name, and the run of triangles that are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRange {
    pub name: String,
    /// Index of its first triangle, in the order the triangles were handed over.
    pub first_triangle: u64,
    pub triangles: u64,
}

/// What a read found, besides the triangles it handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub format: ModelFormat,
    pub triangles: u64,
    pub warnings: Vec<ReadWarning>,
    /// The objects, for formats that have them (empty for STL).
    pub objects: Vec<ObjectRange>,
    /// The unit the file declares (3MF); its triangles were handed over in mm.
    pub units: Option<Units>,
}

impl ModelInfo {
    pub(crate) fn stl(format: ModelFormat, triangles: u64, warnings: Vec<ReadWarning>) -> Self {
        Self { format, triangles, warnings, objects: Vec::new(), units: None }
    }
}

/// Triangles handed to the caller at a time by the 3MF and OBJ readers.
pub(crate) const CHUNK_TRIANGLES: usize = 64 * 1024;

/// Reads `len` bytes of a model in any format from `reader`, handing its
/// triangles to `visit` a chunk at a time, with the format and the total
/// number of triangles to expect. Binary STL and OBJ stream; a 3MF package
/// is held whole (its zip directory is at the end), its XML is inflated and
/// parsed as a stream.
pub fn read_model_chunked<R: Read>(
    mut reader: R,
    len: u64,
    limits: &Limits,
    mut visit: impl FnMut(ModelFormat, &[Triangle], u64),
) -> Result<ModelInfo, ReadError> {
    let limits = &limits.indexable();
    let prefix = read::read_prefix(&mut reader, len, limits)?;
    match detect(&prefix, len) {
        Detected::Stl => {
            read::read_stl_after_prefix(reader, prefix, len, limits, |format, chunk, total| visit(format, chunk, total))
        }
        Detected::ThreeMf => {
            let mut bytes = prefix;
            let already = bytes.len();
            bytes.resize(len as usize, 0);
            read::read_exact(&mut reader, &mut bytes[already..], len)?;
            threemf::read(&bytes, limits, |chunk, total| visit(ModelFormat::ThreeMf, chunk, total))
        }
        Detected::Obj => obj::read(std::io::Cursor::new(prefix).chain(reader.take(len)), limits, |chunk, total| {
            visit(ModelFormat::Obj, chunk, total)
        }),
    }
}

/// Checks a model held in memory, in any format, without keeping its
/// triangles: the format, the triangle count, the objects and the warnings,
/// or the reason it cannot be read. What the API runs on an upload.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<ModelInfo, ReadError> {
    let info = read_model_chunked(bytes, bytes.len() as u64, limits, |_, _, _| {})?;
    if info.triangles == 0 {
        return Err(ReadError::new(ReadErrorKind::Empty));
    }
    Ok(info)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detected {
    Stl,
    ThreeMf,
    Obj,
}

fn detect(prefix: &[u8], len: u64) -> Detected {
    if read::binary_size_matches(prefix, len) {
        return Detected::Stl;
    }
    if prefix.starts_with(b"PK\x03\x04") {
        return Detected::ThreeMf;
    }
    if read::looks_like_text(prefix) && obj::looks_like_obj(prefix) {
        return Detected::Obj;
    }
    Detected::Stl
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cuboid, write_binary_stl};

    #[test]
    fn formats_are_told_apart_by_content() {
        let stl = write_binary_stl(&cuboid([1.0; 3]));
        assert_eq!(detect(&stl[..1024.min(stl.len())], stl.len() as u64), Detected::Stl);
        assert_eq!(detect(b"PK\x03\x04rest of a zip", 100), Detected::ThreeMf);
        assert_eq!(detect(b"# exported\nv 0 0 0\nv 1 0 0\n", 27), Detected::Obj);
        assert_eq!(detect(b"o cube\r\nv 0 0 0\r\n", 17), Detected::Obj);
        assert_eq!(detect(b"solid x\nfacet normal 0 0 1\n", 27), Detected::Stl);
        assert_eq!(detect(b"hello world", 11), Detected::Stl);
    }

    #[test]
    fn the_names_clients_see_do_not_change_for_stl() {
        let names: Vec<&str> = [ModelFormat::Binary, ModelFormat::Ascii, ModelFormat::ThreeMf, ModelFormat::Obj]
            .map(ModelFormat::as_str)
            .into();
        assert_eq!(names, ["binary", "ascii", "3mf", "obj"]);
    }
}
