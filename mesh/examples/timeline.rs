//! Where one analysis spends its time: every checkpoint the analysis passes
//! with the milliseconds since the one before (those of 2 ms or more), on one
//! model, without slicing: `farm analyze`'s work, in process.
//!
//!     cargo run --release -p mesh --example timeline -- MODEL.stl

// A command-line tool: printing is what it is for.
#![allow(clippy::print_stdout, clippy::print_stderr)]
use std::sync::Mutex;
use std::time::Instant;

struct Timeline {
    start: Instant,
    last: Mutex<(f64, String)>,
}

impl mesh::Observer for Timeline {
    fn observe(&self, stage: mesh::Stage, done: f64) -> bool {
        let now = self.start.elapsed().as_secs_f64();
        let mut last = self.last.lock().unwrap();
        if now - last.0 >= 0.002 {
            let here = format!("{stage:?} {done:.3}");
            println!("{:7.1} ms  {:6.1} ms  {} .. {here}", now * 1e3, (now - last.0) * 1e3, last.1);
            *last = (now, here);
        }
        true
    }
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: timeline MODEL");
        std::process::exit(2);
    };
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    let len = file.metadata().map(|m| m.len()).unwrap_or_default();
    let timeline = Timeline { start: Instant::now(), last: Mutex::new((0.0, "start".into())) };
    let report =
        mesh::analyze_observed(std::io::BufReader::new(file), len, &mesh::AnalysisOptions::default(), &timeline);
    let end = timeline.start.elapsed().as_secs_f64();
    let last = timeline.last.lock().unwrap();
    println!("{:7.1} ms  {:6.1} ms  {} .. end; ok {}", end * 1e3, (end - last.0) * 1e3, last.1, report.is_ok());
}
