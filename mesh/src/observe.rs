//! Watching an analysis: how far it got, and a way to stop it.
//!
//! The engine calls the observer between its chunks of work (each chunk of
//! the file read, each pass over the mesh). A caller reports progress from
//! it and enforces deadlines and cancellation: returning `false` stops the
//! analysis at that point with [`crate::AnalyzeError::Stopped`]. Nothing here
//! knows about clocks or threads; the observer decides.

use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// How much work runs between two looks at the observer: small enough that
/// a stop is seen within a millisecond or two (a unit is one crossing, one
/// triangle or one ray cell: tens of nanoseconds), large enough that looking
/// costs nothing.
pub(crate) const TICK: u64 = 1 << 15;

/// The observer of one pass of parallel work: threads report the units they
/// finished, the observer sees the pass's share of its stage, and once it
/// says stop every thread sees it at its next tick and skips the rest.
///
/// Calls to the observer are serialised and none follows a stop, so the
/// observer sees the same sequence as from sequential work.
pub(crate) struct Watch<'o> {
    observer: &'o dyn Observer,
    stage: Stage,
    /// The part of the stage this pass covers, as shares of it.
    from: f64,
    to: f64,
    total: u64,
    done: AtomicU64,
    stopped: AtomicBool,
    calls: Mutex<()>,
}

impl<'o> Watch<'o> {
    /// A pass of `total` units, covering `from..to` of `stage`.
    pub(crate) fn new(observer: &'o dyn Observer, stage: Stage, (from, to): (f64, f64), total: u64) -> Self {
        Self {
            observer,
            stage,
            from,
            to,
            total,
            done: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            calls: Mutex::new(()),
        }
    }

    /// Records `units` more finished; false once the observer said stop.
    pub(crate) fn tick(&self, units: u64) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        let done = self.done.fetch_add(units, Ordering::Relaxed).saturating_add(units);
        let share = if self.total == 0 { 1.0 } else { (done as f64 / self.total as f64).min(1.0) };
        let _one_at_a_time = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        if !self.observer.observe(self.stage, self.from + (self.to - self.from) * share) {
            self.stopped.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Whether the observer said stop.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// `Err(Stopped)` when the observer said stop during the pass.
    pub(crate) fn finish(&self) -> Result<(), crate::AnalyzeError> {
        if self.stopped() { Err(crate::AnalyzeError::Stopped) } else { Ok(()) }
    }
}

/// A thread's share of a [`Watch`]ed pass: counts units locally and ticks
/// the watch once every [`TICK`] of them, so the threads rarely meet.
pub(crate) struct Ticker<'w, 'o> {
    watch: &'w Watch<'o>,
    pending: u64,
    stopped: bool,
}

impl<'w, 'o> Ticker<'w, 'o> {
    pub(crate) fn new(watch: &'w Watch<'o>) -> Self {
        Self { watch, pending: 0, stopped: watch.stopped() }
    }

    /// Counts `units` of work done; false once the pass must stop.
    pub(crate) fn add(&mut self, units: u64) -> bool {
        if self.stopped {
            return false;
        }
        self.pending += units;
        if self.pending >= TICK {
            self.stopped = !self.watch.tick(std::mem::take(&mut self.pending));
        }
        !self.stopped
    }

    /// Whether the pass must stop.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped
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
