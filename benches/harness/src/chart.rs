//! The slow-model benchmark's SVG chart: latency per lane against workers,
//! and the scaling curve (throughput against workers, beside linear).
//!
//! Written as SVG by hand on purpose: two panels of lines and labels are a
//! few elements, the viewer (a browser, GitHub) renders the text, and no
//! font file, rasteriser or image encoder is linked into the `farm` binary.
//! (A PNG through plotters cost about a dozen crates of build time and
//! needed a TrueType font on the machine.)

use std::fmt::Write as _;
use std::path::Path;

use crate::slow_models::BenchReport;

/// Why no chart was drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the benchmark has no runs to chart")]
    Empty,
    #[error("cannot write the chart: {0}")]
    Write(#[from] std::io::Error),
}

const WIDTH: f64 = 1280.0;
const HEIGHT: f64 = 520.0;
/// One colour per latency series, then the scaling panel's measured line.
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
const GREY: &str = "#969696";

/// Draws `report` into an SVG file at `path`.
pub fn draw(report: &BenchReport, path: &Path) -> Result<(), ChartError> {
    let svg = render(report)?;
    std::fs::write(path, svg)?;
    Ok(())
}

/// The chart of `report` as an SVG document.
pub fn render(report: &BenchReport) -> Result<String, ChartError> {
    if report.runs.is_empty() {
        return Err(ChartError::Empty);
    }
    let max_workers = report.runs.iter().map(|r| r.workers).max().unwrap_or(1).max(1);
    let x_axis = Axis { low: 0.5, high: max_workers as f64 + 0.5, log: false };

    // Latency per lane, log scale: a fast job is milliseconds, a slow one
    // minutes.
    let mut latency: Vec<Series> = Vec::new();
    for lane in ["fast", "slow"] {
        for (name, p99) in [("p50", false), ("p99", true)] {
            let points: Vec<(f64, f64)> = report
                .runs
                .iter()
                .filter_map(|run| {
                    let l = run.lanes.iter().find(|l| l.lane == lane)?;
                    let ms = if p99 { l.latency.total.p99_ms } else { l.latency.total.p50_ms };
                    Some((run.workers as f64, (ms / 1000.0).max(0.001)))
                })
                .collect();
            if !points.is_empty() {
                let colour = COLOURS[latency.len() % COLOURS.len()];
                latency.push(Series { name: format!("{lane} {name}"), points, colour, width: 2.0, dots: true });
            }
        }
    }
    let values = || latency.iter().flat_map(|s| s.points.iter().map(|&(_, y)| y));
    let top = values().fold(0.01f64, f64::max) * 2.0;
    let bottom = values().fold(f64::INFINITY, f64::min).min(top / 4.0) / 2.0;
    let latency_panel = Panel {
        left: 0.0,
        title: "Latency per lane (accepted to priced)",
        x_label: "workers per lane",
        y_label: "seconds",
        x: x_axis,
        y: Axis { low: bottom, high: top, log: true },
    };

    // Throughput against workers, beside perfect linear scaling.
    let measured: Vec<(f64, f64)> = report.runs.iter().map(|r| (r.workers as f64, r.jobs_per_minute)).collect();
    let per_worker = report.runs.first().map_or(0.0, |r| r.jobs_per_minute / r.workers.max(1) as f64);
    let linear: Vec<(f64, f64)> =
        report.runs.iter().map(|r| (r.workers as f64, per_worker * r.workers as f64)).collect();
    let top = measured.iter().chain(&linear).map(|&(_, y)| y).fold(1.0f64, f64::max) * 1.15;
    let scaling = [
        Series { name: "measured".into(), points: measured, colour: COLOURS[0], width: 2.0, dots: true },
        Series { name: "linear from 1 worker".into(), points: linear, colour: GREY, width: 1.0, dots: false },
    ];
    let scaling_panel = Panel {
        left: WIDTH / 2.0,
        title: "Scaling: throughput against workers",
        x_label: "workers per lane",
        y_label: "jobs per minute",
        x: x_axis,
        y: Axis { low: 0.0, high: top, log: false },
    };

    let mut svg = String::new();
    // Writing into a String cannot fail; `let _` keeps the builder terse.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    latency_panel.draw(&mut svg, &latency, max_workers);
    scaling_panel.draw(&mut svg, &scaling, max_workers);
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// One line of the chart.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    colour: &'static str,
    width: f64,
    dots: bool,
}

/// A value range drawn along one side of a panel.
#[derive(Clone, Copy)]
struct Axis {
    low: f64,
    high: f64,
    log: bool,
}

impl Axis {
    /// Where `value` falls along the axis, from 0 (low) to 1 (high).
    fn fraction(&self, value: f64) -> f64 {
        let (low, high, v) = if self.log {
            (self.low.log10(), self.high.log10(), value.max(self.low).log10())
        } else {
            (self.low, self.high, value)
        };
        if high > low { ((v - low) / (high - low)).clamp(0.0, 1.0) } else { 0.5 }
    }

    /// Tick values: powers of ten on a log axis, a 1-2-5 step on a linear one.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let first = self.low.log10().ceil() as i32;
            let last = self.high.log10().floor() as i32;
            return (first..=last).map(|e| 10f64.powi(e)).collect();
        }
        let raw = (self.high - self.low) / 5.0;
        if raw.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return vec![self.low];
        }
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|&s| s >= raw).unwrap_or(raw);
        let mut ticks = Vec::new();
        let mut value = (self.low / step).ceil() * step;
        while value <= self.high && ticks.len() < 12 {
            ticks.push(value);
            value += step;
        }
        ticks
    }
}

/// One half of the chart: a titled plot area with two axes.
struct Panel {
    left: f64,
    title: &'static str,
    x_label: &'static str,
    y_label: &'static str,
    x: Axis,
    y: Axis,
}

impl Panel {
    const MARGIN_LEFT: f64 = 74.0;
    const MARGIN_RIGHT: f64 = 20.0;
    const MARGIN_TOP: f64 = 48.0;
    const MARGIN_BOTTOM: f64 = 54.0;

    fn plot_left(&self) -> f64 {
        self.left + Self::MARGIN_LEFT
    }
    fn plot_width(&self) -> f64 {
        WIDTH / 2.0 - Self::MARGIN_LEFT - Self::MARGIN_RIGHT
    }
    fn plot_height(&self) -> f64 {
        HEIGHT - Self::MARGIN_TOP - Self::MARGIN_BOTTOM
    }
    fn at(&self, (x, y): (f64, f64)) -> (f64, f64) {
        (
            self.plot_left() + self.x.fraction(x) * self.plot_width(),
            Self::MARGIN_TOP + (1.0 - self.y.fraction(y)) * self.plot_height(),
        )
    }

    fn draw(&self, svg: &mut String, series: &[Series], max_workers: usize) {
        let (left, top, width, height) = (self.plot_left(), Self::MARGIN_TOP, self.plot_width(), self.plot_height());
        let bottom = top + height;
        let centre = left + width / 2.0;
        let _ = writeln!(
            svg,
            r#"<text x="{centre}" y="28" text-anchor="middle" font-size="18">{}</text>"#,
            escape(self.title)
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="black"/>"#
        );
        for workers in 1..=max_workers {
            let (x, _) = self.at((workers as f64, self.y.low));
            let _ = writeln!(svg, r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#e6e6e6"/>"##);
            let _ = writeln!(svg, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{workers}</text>"#, bottom + 18.0);
        }
        for value in self.y.ticks() {
            let (_, y) = self.at((self.x.low, value));
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e6e6e6"/>"##,
                left + width
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                left - 6.0,
                y + 4.0,
                number(value)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{centre}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 40.0,
            escape(self.x_label)
        );
        let (label_x, label_y) = (self.left + 18.0, top + height / 2.0);
        let _ = writeln!(
            svg,
            r#"<text x="{label_x}" y="{label_y}" text-anchor="middle" transform="rotate(-90 {label_x} {label_y})">{}</text>"#,
            escape(self.y_label)
        );
        for (index, line) in series.iter().enumerate() {
            let points: Vec<String> = line
                .points
                .iter()
                .map(|&p| {
                    let (x, y) = self.at(p);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline data-series="{}" points="{}" fill="none" stroke="{}" stroke-width="{}"/>"#,
                escape(&line.name),
                points.join(" "),
                line.colour,
                line.width
            );
            if line.dots {
                for &p in &line.points {
                    let (x, y) = self.at(p);
                    let _ = writeln!(svg, r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{}"/>"#, line.colour);
                }
            }
            // The legend, top left inside the plot area.
            let y = top + 18.0 + index as f64 * 18.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="{}"/>"#,
                left + 10.0,
                left + 28.0,
                line.colour,
                line.width
            );
            let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, left + 34.0, y + 4.0, escape(&line.name));
        }
    }
}

/// A tick label: as few digits as the value needs.
fn number(value: f64) -> String {
    if value >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        // 0.05 needs two digits, 0.001 three; the epsilon keeps a power of
        // ten that log10 rounds a hair high from gaining a digit.
        let digits = (-value.log10() - 1e-9).ceil().max(1.0) as usize;
        format!("{value:.digits$}")
    }
}

/// Text for an SVG element: the three characters XML gives meaning to.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_axis_ticks_at_powers_of_ten_and_a_linear_one_in_round_steps() {
        let log = Axis { low: 0.004, high: 300.0, log: true };
        assert_eq!(log.ticks(), [0.01, 0.1, 1.0, 10.0, 100.0]);
        let linear = Axis { low: 0.0, high: 115.0, log: false };
        assert_eq!(linear.ticks(), [0.0, 50.0, 100.0]);
        let small = Axis { low: 0.0, high: 7.0, log: false };
        assert_eq!(small.ticks(), [0.0, 2.0, 4.0, 6.0]);
        assert_eq!(log.fraction(0.004), 0.0);
        assert_eq!(log.fraction(300.0), 1.0);
        assert!((linear.fraction(57.5) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn tick_labels_keep_the_digits_they_need() {
        assert_eq!(number(100.0), "100");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(0.01), "0.01");
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(0.05), "0.05");
        assert_eq!(escape("a<b & c>"), "a&lt;b &amp; c&gt;");
    }

    /// The committed report of a services run (1, 2 and 4 workers) charts as
    /// well-formed SVG with one line per lane and percentile, and the scaling
    /// pair, each with a point per run.
    #[test]
    fn a_committed_report_charts_as_well_formed_svg() {
        let text = include_str!("../../results/slow-models-services.json");
        let report = crate::slow_models::read_baseline(text).expect("the committed report reads");
        let svg = render(&report).expect("a report with runs charts");
        let mut reader = quick_xml::Reader::from_str(&svg);
        let mut lines: Vec<(String, usize)> = Vec::new();
        let mut depth = 0i32;
        loop {
            match reader.read_event().expect("well-formed XML") {
                quick_xml::events::Event::Eof => break,
                quick_xml::events::Event::Start(_) => depth += 1,
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Empty(element) if element.name().as_ref() == "polyline" => {
                    let attribute = |key: &str| {
                        let found = element.try_get_attribute(key).unwrap().expect("the attribute is there");
                        found.value.into_owned()
                    };
                    lines.push((attribute("data-series"), attribute("points").split(' ').count()));
                }
                _ => {}
            }
        }
        assert_eq!(depth, 0, "every element is closed");
        let runs = report.runs.len();
        assert_eq!(runs, 3);
        let expected: Vec<(String, usize)> =
            ["fast p50", "fast p99", "slow p50", "slow p99", "measured", "linear from 1 worker"]
                .into_iter()
                .map(|name| (name.to_string(), runs))
                .collect();
        assert_eq!(lines, expected);
        assert!(matches!(render(&BenchReport { runs: Vec::new(), ..report }), Err(ChartError::Empty)));
    }
}
