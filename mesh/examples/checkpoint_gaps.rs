//! How long the analysis goes without asking its observer whether to go on:
//! the gaps over 50 ms between checkpoints, on one model, sliced at 0.2 mm.
//! A cancellation or a yield is heard only at a checkpoint.
//!
//!     cargo run --release -p mesh --example checkpoint_gaps -- MODEL.stl

// A command-line tool: printing is what it is for.
#![allow(clippy::print_stdout, clippy::print_stderr)]
use std::sync::Mutex;
use std::time::Instant;

struct Gaps {
    start: Instant,
    last: Mutex<(f64, String)>,
    worst: Mutex<Vec<(f64, String, String)>>,
}

impl mesh::Observer for Gaps {
    fn observe(&self, stage: mesh::Stage, done: f64) -> bool {
        let now = self.start.elapsed().as_secs_f64();
        let here = format!("{stage:?} {done:.3}");
        let mut last = self.last.lock().unwrap();
        let gap = now - last.0;
        if gap > 0.05 {
            self.worst.lock().unwrap().push((gap, last.1.clone(), here.clone()));
        }
        *last = (now, here);
        true
    }
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: checkpoint_gaps MODEL");
        std::process::exit(2);
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let options = mesh::AnalysisOptions {
        layering: Some(mesh::Layering::uniform(0.2)),
        limits: mesh::Limits { memory_budget: 8 << 30, ..mesh::Limits::default() },
        ..mesh::AnalysisOptions::default()
    };
    let gaps = Gaps { start: Instant::now(), last: Mutex::new((0.0, "start".into())), worst: Mutex::new(Vec::new()) };
    let report = mesh::analyze_observed(&bytes[..], bytes.len() as u64, &options, &gaps);
    println!("total {:.2} s, ok {}", gaps.start.elapsed().as_secs_f64(), report.is_ok());
    for (gap, from, to) in gaps.worst.lock().unwrap().iter() {
        println!("{gap:.3} s from {from} to {to}");
    }
}
