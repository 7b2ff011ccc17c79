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
                ("material used", format!("{:.2} g ({:.2} cm³) per part", doc.material_g, doc.material_cm3)),
                ("support", format!("{:.2} cm³ of it", doc.support_cm3)),
                ("layers", doc.layers.to_string()),
                ("machine", machine_line(doc)),
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

/// One row per model: a JSON array of quotes (each with its `file`, or an
/// `error` in its place), or an aligned table with a totals line.
pub(crate) fn quotes(
    models: &[std::path::PathBuf],
    results: &[anyhow::Result<QuoteDoc>],
    format: Format,
) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Entry<'a> {
        Priced {
            file: String,
            #[serde(flatten)]
            quote: &'a QuoteDoc,
        },
        Failed {
            file: String,
            error: String,
        },
    }
    let name = |path: &std::path::Path| path.display().to_string();
    match format {
        Format::Json => {
            let entries: Vec<Entry<'_>> = models
                .iter()
                .zip(results)
                .map(|(path, result)| match result {
                    Ok(quote) => Entry::Priced { file: name(path), quote },
                    Err(e) => Entry::Failed { file: name(path), error: format!("{e:#}") },
                })
                .collect();
            print_json(&entries)
        }
        Format::Table => {
            let mut rows = vec![[
                "file".to_string(),
                "triangles".into(),
                "volume cm³".into(),
                "print time".into(),
                "material".into(),
                "total".into(),
                "warnings".into(),
            ]];
            let (mut total, mut seconds, mut currency) = (0.0, 0.0, String::new());
            for (path, result) in models.iter().zip(results) {
                rows.push(match result {
                    Ok(q) => {
                        total += q.total;
                        seconds += q.print_time_s * f64::from(q.quantity);
                        currency.clone_from(&q.currency);
                        [
                            name(path),
                            q.triangles.to_string(),
                            format!("{:.2}", q.volume_mm3 / 1000.0),
                            hours_minutes(q.print_time_s),
                            format!("{:.1} g", q.material_g),
                            format!("{:.2} {}", q.total, q.currency),
                            q.warnings.len().to_string(),
                        ]
                    }
                    Err(e) => [
                        name(path),
                        format!("error: {e:#}"),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ],
                });
            }
            let priced = results.iter().filter(|r| r.is_ok()).count();
            rows.push([
                format!("{priced} of {} priced", models.len()),
                String::new(),
                String::new(),
                hours_minutes(seconds),
                String::new(),
                format!("{total:.2} {currency}"),
                String::new(),
            ]);
            print_table(&rows)
        }
    }
}

fn machine_line(doc: &QuoteDoc) -> String {
    let m = &doc.machine;
    let fit = match &m.fit {
        Some(f) if f.fits && f.up_axis == "z" && f.rotation_deg == 0.0 => ", fits as it stands".to_string(),
        Some(f) if f.fits => format!(", fits {} up, turned {:.1}°", f.up_axis, f.rotation_deg),
        Some(_) => ", does NOT fit".to_string(),
        None => String::new(),
    };
    let [x, y, z] = m.build_volume_mm;
    format!("{} ({x}x{y}x{z} mm{fit}), {}", m.name, hours_minutes(doc.machine_time_s))
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
                (
                    "vertices",
                    match doc.nearby_merged_vertices {
                        0 => format!("{} (weld: {})", doc.vertices, doc.weld),
                        n => format!("{} (weld: {}, {n} merged to close open edges)", doc.vertices, doc.weld),
                    },
                ),
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
                (
                    "support columns",
                    format!(
                        "{:.3} {unit}³ under {:.3} {unit}² of overhang",
                        doc.support_column_volume_mm3, doc.support_contact_area_mm2
                    ),
                ),
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

/// Dead letters, without their messages (`farm dead-letters show ID`).
pub(crate) fn dead_letters(letters: &[api::store::DeadLetterRow]) -> anyhow::Result<()> {
    let mut rows = vec![[
        "id".to_string(),
        "job id".into(),
        "queue".into(),
        "reason".into(),
        "received".into(),
        "replayed as".into(),
    ]];
    for l in letters {
        rows.push([
            l.id.to_string(),
            l.job_id.clone().unwrap_or_else(|| "-".into()),
            l.queue.clone(),
            l.reason.clone(),
            l.received_at_ms.to_string(),
            match (&l.replay_job_id, l.replayed_at_ms) {
                (Some(job), _) => job.clone(),
                (None, Some(_)) => "(by hand)".into(),
                (None, None) => "-".into(),
            },
        ]);
    }
    print_table(&rows)
}

/// Keys without their secrets.
pub(crate) fn keys(keys: &[api::store::KeyRow]) -> anyhow::Result<()> {
    let mut rows = vec![["key id".to_string(), "kind".into(), "name".into(), "created".into(), "revoked".into()]];
    for k in keys {
        rows.push([
            k.key_id.clone(),
            k.kind.clone(),
            k.name.clone(),
            k.created_at_ms.to_string(),
            k.revoked_at_ms.map_or_else(|| "-".to_string(), |t| t.to_string()),
        ]);
    }
    print_table(&rows)
}

/// The order accounts, a line per source.
pub(crate) fn audit(stats: &serde_json::Value) -> anyhow::Result<()> {
    let fields =
        ["received", "pricing", "priced", "pricing_failed", "in_production", "shipped", "cancelled", "dead_lettered"];
    let mut header = vec!["source".to_string()];
    header.extend(fields.iter().map(|f| f.replace('_', " ")));
    let mut rows = vec![header];
    for source in ["api", "queue"] {
        let mut row = vec![source.to_string()];
        row.extend(fields.iter().map(|f| stats[source][f].as_i64().unwrap_or(0).to_string()));
        rows.push(row);
    }
    let mut out = std::io::stdout().lock();
    for row in &rows {
        writeln!(out, "{}", row.iter().map(|c| format!("{c:>15}")).collect::<Vec<_>>().join(""))?;
    }
    writeln!(out, "unaccounted orders: {}", stats["unaccounted"])?;
    writeln!(out, "orders still pricing after their job ended: {}", stats["pricing_with_ended_job"])?;
    let window = &stats["window"];
    for (kind, what) in [("unaccounted", "unaccounted"), ("stuck", "still pricing after their job ended")] {
        let ids: Vec<&str> = stats["ids"][kind].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        if !ids.is_empty() {
            writeln!(
                out,
                "{what}, created from {} to {} (Unix ms), first {} at most:",
                window["since_ms"], window["until_ms"], stats["ids_limit"]
            )?;
            for id in ids {
                writeln!(out, "  {id}")?;
            }
        }
    }
    Ok(())
}

pub(crate) fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    print_json(value)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    // serde_json wraps a write error in its own; unwrap it so a closed pipe
    // is still recognised as one.
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
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

/// Columns padded to their widest cell; a failed row's message runs on.
fn print_table<const N: usize>(rows: &[[String; N]]) -> anyhow::Result<()> {
    let mut widths = [0usize; N];
    for row in rows.iter().filter(|r| !r[1].starts_with("error: ")) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', pad));
        }
        writeln!(out, "{}", line.trim_end())?;
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

/// A capacity plan: per lane, the workers and KEDA settings, the queueing
/// model's waits, and the simulations that check it.
pub(crate) fn plan(plan: &scheduler::capacity::Plan) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for lane in &plan.lanes {
        writeln!(
            out,
            "{} lane: {:.0} jobs/h, p99 wait target {:.0} s",
            lane.lane, lane.arrivals_per_hour, lane.target_p99_wait_s
        )?;
        if let Some(service) = &lane.service {
            writeln!(
                out,
                "  service: mean {:.1} s, max {:.0} s, SCV {:.2}; {:.2} % would pass the {:.0} s deadline",
                service.mean_s,
                service.max_s,
                service.scv,
                service.share_over_deadline * 100.0,
                service.deadline_s
            )?;
        }
        writeln!(out, "  workers: {} of {} slot(s)", lane.workers, lane.slots)?;
        let keda = &lane.keda;
        writeln!(
            out,
            "  KEDA: minReplicaCount {}, maxReplicaCount {}, value {}, cooldownPeriod {} s, pollingInterval {:.0} s",
            keda.min_replica_count, keda.max_replica_count, keda.value, keda.cooldown_period_s, keda.polling_interval_s
        )?;
        if let Some(model) = &lane.model {
            writeln!(
                out,
                "  M/G/c: wait p50 {:.1} s, p99 {:.1} s, mean {:.1} s; P(wait) {:.3}; utilisation {:.2}",
                model.wait_p50_s, model.wait_p99_s, model.wait_mean_s, model.prob_wait, model.utilisation
            )?;
        }
        if let Some(sim) = &lane.simulated_fixed {
            writeln!(
                out,
                "  simulated, {} workers fixed: wait p50 {:.1} s, p99 {:.1} s (± {:.1}), utilisation {:.2}, {} jobs",
                lane.workers, sim.wait.p50, sim.wait.p99, sim.wait_p99_standard_error, sim.utilisation, sim.jobs
            )?;
        }
        if let Some(sim) = &lane.simulated_keda {
            writeln!(
                out,
                "  simulated with KEDA: wait p50 {:.1} s, p99 {:.1} s; {:.1} replicas on average, {} at most",
                sim.wait.p50, sim.wait.p99, sim.mean_replicas, sim.max_replicas
            )?;
        }
        if let Some(agreement) = &lane.agreement {
            writeln!(
                out,
                "  model against simulation: p99 {:.1} s vs {:.1} s ({:+.1} %): {}",
                agreement.model_p99_s,
                agreement.simulated_p99_s,
                agreement.relative_difference * 100.0,
                if agreement.agrees { "agree" } else { "DISAGREE" }
            )?;
        }
        for note in &lane.notes {
            writeln!(out, "  note: {note}")?;
        }
    }
    writeln!(out, "assumptions:")?;
    for assumption in &plan.assumptions {
        writeln!(out, "  - {assumption}")?;
    }
    Ok(())
}

/// The model's replay of each benchmark run beside the run's own waits.
pub(crate) fn bench_checks(checks: &[crate::planning::BenchCheck]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nthe benchmark's runs replayed through the model (same arrivals, same compute times):")?;
    for check in checks {
        writeln!(
            out,
            "{} lane: dispatch overhead {:.1} ms, fitted on the fewest workers",
            check.lane,
            check.overhead_s * 1e3
        )?;
        for run in &check.runs {
            let (measured, replayed) = (&run.comparison.measured, &run.comparison.replayed);
            writeln!(
                out,
                "  {} worker(s), {} jobs{}: wait p50 {:.3} s measured, {:.3} s modelled; p99 {:.3} s measured, {:.3} s modelled",
                run.servers,
                run.jobs,
                if run.held_out { "" } else { " (fitted)" },
                measured.p50,
                replayed.p50,
                measured.p99,
                replayed.p99
            )?;
        }
    }
    Ok(())
}
