//! The slow-model benchmark's PNG chart: latency per lane against workers,
//! and the scaling curve (throughput against workers, beside linear).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::slow_models::BenchReport;

/// Why no chart was drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("no font to label the chart with; looked in {0}")]
    NoFont(String),
    #[error("the benchmark has no runs to chart")]
    Empty,
    #[error("cannot draw the chart: {0}")]
    Draw(String),
}

/// Fonts tried in order: plotters rasterises text with a pure-Rust font
/// library and needs the bytes of a TrueType font; Debian and most images
/// ship DejaVu (fontconfig depends on it). `FARM_BENCH_FONT` names another.
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn register_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let candidates: Vec<String> =
                std::env::var("FARM_BENCH_FONT").into_iter().chain(FONT_PATHS.iter().map(|p| p.to_string())).collect();
            for path in &candidates {
                if let Ok(bytes) = std::fs::read(path) {
                    // plotters keeps the font for the process's life.
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                        return Ok(());
                    }
                }
            }
            Err(candidates.join(", "))
        })
        .clone()
        .map_err(ChartError::NoFont)
}

/// Draws `report` into a PNG at `path`.
pub fn draw(report: &BenchReport, path: &Path) -> Result<(), ChartError> {
    if report.runs.is_empty() {
        return Err(ChartError::Empty);
    }
    register_font()?;
    let draw_error = |e: &dyn std::fmt::Display| ChartError::Draw(e.to_string());
    let root = BitMapBackend::new(path, (1280, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let (left, right) = root.split_horizontally(640);

    let workers: Vec<u32> = report.runs.iter().map(|r| r.workers as u32).collect();
    let max_workers = workers.iter().copied().max().unwrap_or(1);
    let x_range = 0.5f64..f64::from(max_workers) + 0.5;

    // Latency per lane, log scale: a fast job is milliseconds, a slow one
    // minutes.
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for lane in ["fast", "slow"] {
        for (name, pick) in [("p50", 0usize), ("p99", 1)] {
            let points: Vec<(f64, f64)> = report
                .runs
                .iter()
                .filter_map(|run| {
                    let l = run.lanes.iter().find(|l| l.lane == lane)?;
                    let v = if pick == 0 { l.latency.total.p50_ms } else { l.latency.total.p99_ms };
                    Some((run.workers as f64, (v / 1000.0).max(0.001)))
                })
                .collect();
            if !points.is_empty() {
                series.push((format!("{lane} {name}"), points));
            }
        }
    }
    let values = || series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let top = values().fold(0.01f64, f64::max) * 2.0;
    let bottom = values().fold(f64::INFINITY, f64::min).min(top / 4.0) / 2.0;
    let mut latency = ChartBuilder::on(&left)
        .caption("Latency per lane (accepted to priced)", ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.clone(), (bottom..top).log_scale())
        .map_err(|e| draw_error(&e))?;
    latency
        .configure_mesh()
        .x_desc("workers per lane")
        .y_desc("seconds")
        .x_labels(max_workers as usize)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| draw_error(&e))?;
    for (index, (name, points)) in series.iter().enumerate() {
        let colour = Palette99::pick(index).to_rgba();
        latency
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| draw_error(&e))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        latency.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(|e| draw_error(&e))?;
    }
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_error(&e))?;

    // Throughput against workers, beside perfect linear scaling.
    let measured: Vec<(f64, f64)> = report.runs.iter().map(|r| (r.workers as f64, r.jobs_per_minute)).collect();
    let first = report.runs.first().map_or(0.0, |r| r.jobs_per_minute / r.workers.max(1) as f64);
    let linear: Vec<(f64, f64)> = workers.iter().map(|&w| (f64::from(w), first * f64::from(w))).collect();
    let top = measured.iter().chain(&linear).map(|&(_, y)| y).fold(1.0f64, f64::max) * 1.15;
    let mut scaling = ChartBuilder::on(&right)
        .caption("Scaling: throughput against workers", ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, 0f64..top)
        .map_err(|e| draw_error(&e))?;
    scaling
        .configure_mesh()
        .x_desc("workers per lane")
        .y_desc("jobs per minute")
        .x_labels(max_workers as usize)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| draw_error(&e))?;
    let blue = BLUE.to_rgba();
    scaling
        .draw_series(LineSeries::new(measured.clone(), blue.stroke_width(2)))
        .map_err(|e| draw_error(&e))?
        .label("measured")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], blue.stroke_width(2)));
    scaling.draw_series(measured.iter().map(|&p| Circle::new(p, 4, blue.filled()))).map_err(|e| draw_error(&e))?;
    let grey = RGBColor(150, 150, 150).to_rgba();
    scaling
        .draw_series(LineSeries::new(linear, grey.stroke_width(1)))
        .map_err(|e| draw_error(&e))?
        .label("linear from 1 worker")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], grey.stroke_width(1)));
    scaling
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_error(&e))?;
    root.present().map_err(|e| draw_error(&e))?;
    Ok(())
}
