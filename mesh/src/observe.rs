//! Watching an analysis: how far it got, and a way to stop it.
//!
//! The engine calls the observer between its chunks of work (each chunk of
//! the file read, each pass over the mesh). A caller reports progress from
//! it and enforces deadlines and cancellation: returning `false` stops the
//! analysis at that point with [`crate::AnalyzeError::Stopped`]. Nothing here
//! knows about clocks or threads; the observer decides.

use std::io::Read;

/// What the analysis is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Reading, decoding and welding the file.
    Parsing,
    /// Geometry, topology, shells, overhangs, supports and fit.
    Analysing,
    /// Cutting layers and tracing their loops.
    Slicing,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Parsing => "parsing",
            Stage::Analysing => "analysing",
            Stage::Slicing => "slicing",
        }
    }
}

/// Sees an analysis between its chunks of work.
pub trait Observer: Sync {
    /// `done` is the share of `stage` completed, from 0 to 1. Returning
    /// `false` stops the analysis.
    fn observe(&self, stage: Stage, done: f64) -> bool;
}

/// The observer of an analysis nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl Observer for Unobserved {
    fn observe(&self, _: Stage, _: f64) -> bool {
        true
    }
}

/// A reader that reports how much of `len` bytes it has read, and fails
/// once the observer says stop (the reader's caller turns that into an IO
/// error; `stopped` tells the two apart).
pub(crate) struct ObservedReader<'o, R> {
    pub(crate) inner: R,
    pub(crate) len: u64,
    pub(crate) read: u64,
    pub(crate) observer: &'o dyn Observer,
    pub(crate) stopped: bool,
}

impl<R: Read> Read for ObservedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let done = if self.len == 0 { 0.0 } else { self.read as f64 / self.len as f64 };
        if !self.observer.observe(Stage::Parsing, done.min(1.0)) {
            self.stopped = true;
            return Err(std::io::Error::other("the analysis was stopped"));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{AnalysisOptions, AnalyzeError, Layering, analyze_observed, uv_sphere, write_binary_stl};

    /// Records every call; stops at the `stop_at`-th one.
    struct Recorder {
        calls: Mutex<Vec<(Stage, f64)>>,
        stop_at: usize,
    }

    impl Observer for Recorder {
        fn observe(&self, stage: Stage, done: f64) -> bool {
            let mut calls = self.calls.lock().unwrap();
            calls.push((stage, done));
            calls.len() < self.stop_at
        }
    }

    #[test]
    fn the_observer_sees_every_stage_in_order_and_can_stop_at_any_point() {
        let bytes = write_binary_stl(&uv_sphere(20.0, 200, 100));
        let options = AnalysisOptions { layering: Some(Layering::uniform(0.5)), ..AnalysisOptions::default() };
        let all = Recorder { calls: Mutex::new(Vec::new()), stop_at: usize::MAX };
        analyze_observed(&bytes[..], bytes.len() as u64, &options, &all).unwrap();
        let calls = all.calls.into_inner().unwrap();
        let stages: Vec<Stage> = calls.iter().map(|c| c.0).collect();
        let first = |s: Stage| stages.iter().position(|&x| x == s).unwrap();
        assert!(first(Stage::Parsing) < first(Stage::Analysing) && first(Stage::Analysing) < first(Stage::Slicing));
        assert!(calls.iter().all(|&(_, done)| (0.0..=1.0).contains(&done)), "{calls:?}");
        for stop_at in [1, 2, calls.len() - 1, calls.len()] {
            let stopper = Recorder { calls: Mutex::new(Vec::new()), stop_at };
            let result = analyze_observed(&bytes[..], bytes.len() as u64, &options, &stopper);
            assert_eq!(result.unwrap_err(), AnalyzeError::Stopped, "stopping at call {stop_at}");
            assert_eq!(stopper.calls.lock().unwrap().len(), stop_at, "nothing runs after the stop");
        }
    }
}
