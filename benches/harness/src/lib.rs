//! The benchmark harness: drives workloads through a real farm (the `farm`
//! binary's own processes, embedded or on real services) and measures what
//! users see: latency per lane, queued against computing, throughput, and
//! the per-job overhead of the queue path.
//!
//! It is a library so the `farm bench` command only wires it, and its pieces
//! (statistics, reports) can be tested on their own.

pub mod chart;
pub mod cpu;
pub mod farm;
pub mod orders;
pub mod scenarios;
pub mod slow_models;
pub mod stats;
pub mod workload;

pub use farm::{Farm, FarmError, Stack};

/// A directory for one run's files, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    pub fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("farm-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
