//! Printing analyses and quotes: aligned text for people, JSON for programs.

use std::io::Write;

use scheduler::report::{AnalysisDoc, QuoteDoc};

use crate::cli::Format;

pub(crate) fn quote(doc: &QuoteDoc, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(doc),
        Format::Table => {
            let mut rows = vec![
                ("material", format!("{} ({})", doc.material, doc.technology)),
                ("quantity", doc.quantity.to_string()),
                ("triangles", doc.triangles.to_string()),
                ("volume", format!("{:.2} mm³", doc.volume_mm3)),
                ("surface area", format!("{:.2} mm²", doc.surface_area_mm2)),
                ("watertight", yes_no(doc.watertight)),
                ("print time", format!("{} per part", hours_minutes(doc.print_time_s))),
                ("material used", format!("{:.2} g per part", doc.material_g)),
            ];
            for item in &doc.line_items {
                rows.push((item.label.as_str(), format!("{:>10.2} {}  ({})", item.amount, doc.currency, item.basis)));
            }
            rows.push(("total", format!("{:>10.2} {}", doc.total, doc.currency)));
            rows.push(("price book", doc.price_book_version.clone()));
            for warning in &doc.warnings {
                rows.push(("warning", warning.clone()));
            }
            print_rows(&rows)
        }
    }
}

pub(crate) fn analysis(doc: &AnalysisDoc, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(doc),
        Format::Table => {
            let [x, y, z] = doc.bounding_box.size;
            let unit = if doc.units == "mm" { "mm" } else { "units" };
            let estimate = if doc.volume_is_estimate { " (estimate: open mesh)" } else { "" };
            let mut rows = vec![
                ("format", doc.format.clone()),
                ("triangles", doc.triangles.to_string()),
                ("vertices", format!("{} (weld: {})", doc.vertices, doc.weld)),
                ("size", format!("{x:.3} x {y:.3} x {z:.3} {unit} (looks like {})", doc.units_guess)),
                ("volume", format!("{:.3} {unit}³{estimate}", doc.volume_mm3)),
                ("surface area", format!("{:.3} {unit}²", doc.surface_area_mm2)),
                ("watertight", yes_no(doc.watertight)),
                ("winding consistent", yes_no(doc.winding_consistent)),
                ("open edges", doc.boundary_edges.to_string()),
                ("non-manifold edges", doc.nonmanifold_edges.to_string()),
                (
                    "shells",
                    format!(
                        "{} ({} inverted, {} cavities, {} stray)",
                        doc.shells, doc.inverted_shells, doc.cavities, doc.stray_shells
                    ),
                ),
                ("degenerate faces", doc.degenerate_faces.to_string()),
                ("duplicate faces", doc.duplicate_faces.to_string()),
                ("overhang", format!("{:.3} {unit}² beyond {}°", doc.overhang_area_mm2, doc.overhang_angle_deg)),
                ("support estimate", format!("{:.3} {unit}³", doc.support_volume_estimate_mm3)),
                ("on the plate", format!("{:.3} {unit}²", doc.plate_contact_area_mm2)),
            ];
            if let Some(fit) = &doc.fit {
                let verdict = if fit.fits {
                    format!("yes, {} up, turned {:.1}°", fit.up_axis, fit.rotation_deg)
                } else {
                    "no".into()
                };
                rows.push(("fits build volume", verdict));
            }
            if let Some(slices) = &doc.slices {
                rows.push((
                    "layers",
                    format!(
                        "{} of {} mm; largest section {:.3} {unit}², longest perimeter {:.3} {unit}",
                        slices.layers, slices.layer_height_mm, slices.max_area_mm2, slices.max_perimeter_mm
                    ),
                ));
            }
            for warning in &doc.warnings {
                rows.push(("warning", warning.clone()));
            }
            print_rows(&rows)
        }
    }
}

/// Prints text as it is.
pub(crate) fn text(text: &str) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_rows(rows: &[(&str, String)]) -> anyhow::Result<()> {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (key, value) in rows {
        writeln!(out, "{key:<width$}  {value}")?;
    }
    Ok(())
}

fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.into()
}

fn hours_minutes(seconds: f64) -> String {
    let minutes = (seconds / 60.0).round() as u64;
    format!("{}h{:02}m", minutes / 60, minutes % 60)
}
