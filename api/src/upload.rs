//! Model uploads, spooled to disk as they arrive: the body is never held
//! whole in memory, whatever its size, so the memory an upload costs is one
//! network frame, and the concurrent-upload limit bounds disk, not RAM.
//! The file is then checked and hashed in one pass on the compute pool, and
//! sent to the blob store from disk.

use std::io::Read;
use std::path::Path;

use axum::body::Body;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::AppError;

/// An upload on disk; the file is removed when this is dropped.
pub(crate) struct Spooled {
    pub(crate) path: tempfile::TempPath,
    pub(crate) size: u64,
}

/// Writes `body` to a new file in `dir`, refusing it (413) as soon as it
/// passes `limit` bytes.
pub(crate) async fn spool(body: Body, dir: &Path, limit: u64) -> Result<Spooled, AppError> {
    let file = tempfile::Builder::new().prefix("upload-").tempfile_in(dir).map_err(AppError::internal)?;
    let (file, path) = file.into_parts();
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::from_std(file));
    let mut frames = body.into_data_stream();
    let mut size = 0u64;
    while let Some(frame) = frames.next().await {
        let chunk = frame.map_err(|e| AppError::BadRequest(format!("the body could not be read: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        out.write_all(&chunk).await.map_err(AppError::internal)?;
    }
    out.flush().await.map_err(AppError::internal)?;
    Ok(Spooled { path, size })
}

/// What one pass over a spooled upload found: the file's facts and the
/// SHA-256 of every byte, hex.
pub(crate) struct Checked {
    pub(crate) info: mesh::ModelInfo,
    pub(crate) content_sha256: String,
}

/// Reads the spooled file once: finds its format from the bytes, decodes it
/// to validate and count (without keeping the triangles: the worker analyses
/// the model later) and hashes every byte on the way, including any the
/// decoder does not need. CPU work: call it on the compute pool.
pub(crate) fn check(path: &Path, size: u64, limits: &mesh::Limits) -> Result<Checked, CheckError> {
    let file = std::fs::File::open(path).map_err(CheckError::Io)?;
    let mut reader = Hashing { inner: std::io::BufReader::with_capacity(256 * 1024, file), hasher: Sha256::new() };
    let info = mesh::read_model_chunked(&mut reader, size, limits, |_, _, _| {}).map_err(CheckError::Model)?;
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(CheckError::Io)?;
    let content_sha256 = reader.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Checked { info, content_sha256 })
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    #[error("{0}")]
    Model(mesh::ReadError),
    #[error("cannot read the spooled upload: {0}")]
    Io(std::io::Error),
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_sha256(bytes: &[u8]) -> String {
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_check_hashes_every_byte_of_the_file_and_counts_its_triangles() {
        let dir = tempfile::tempdir().unwrap();
        let limits = mesh::Limits::default();
        for (name, bytes) in [
            ("binary", mesh::write_binary_stl(&mesh::cuboid([10.0; 3]))),
            // Bytes past the facets the header declares: the parser stops
            // before them, the hash must not.
            ("binary-tail", [mesh::write_binary_stl(&mesh::cuboid([10.0; 3])), b"trailing bytes".to_vec()].concat()),
            ("ascii", b"solid c\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid c\n".to_vec()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let checked = check(&path, bytes.len() as u64, &limits).unwrap();
            assert_eq!(checked.content_sha256, hex_sha256(&bytes), "{name}");
            assert!(checked.info.triangles >= 1, "{name}");
        }
        let path = dir.path().join("junk");
        std::fs::write(&path, b"not a model at all").unwrap();
        assert!(matches!(check(&path, 18, &limits), Err(CheckError::Model(_))));
        assert!(matches!(check(&dir.path().join("gone"), 1, &limits), Err(CheckError::Io(_))));
    }
}
