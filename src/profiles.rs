//! `farm profile import` and `farm calibrate`: the file edges of the
//! calculator's bundle importer and calibration (reading bundles, models and
//! observations, writing presets and calibration files).

use std::fmt::Write as _;

use anyhow::{Context, bail};
use calculator::bundle::{Bundle, BundleLimits, PresetKind};
use calculator::calibration::{self, Observation};
use calculator::{FdmProfile, fdm};
use rayon::prelude::*;

use crate::cli::{CalibrateArgs, LogFormat, ProfileImportArgs};
use crate::{output, telemetry, wiring};

pub(crate) fn import(args: &ProfileImportArgs) -> anyhow::Result<()> {
    let limits = BundleLimits::default();
    let path = &args.bundle;
    let size = std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?.len();
    if size > limits.max_bytes as u64 {
        bail!("`{}` is {size} bytes, over the limit of {} bytes for a bundle", path.display(), limits.max_bytes);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let bundle = Bundle::parse(&text, limits).with_context(|| format!("in `{}`", path.display()))?;
    if let Some(kind) = &args.list {
        let Some(kind) = PresetKind::ALL.into_iter().find(|k| k.section() == kind) else {
            bail!("unknown preset kind `{kind}`; use printer, print, filament, sla_print or sla_material");
        };
        return output::text(&bundle.presets(kind).iter().map(|name| format!("{name}\n")).collect::<String>());
    }
    let Some(printer) = &args.printer else {
        bail!("--printer is needed (or --list KIND)");
    };
    let flat = bundle
        .import(printer, args.print.as_deref(), args.filament.as_deref(), limits)
        .with_context(|| format!("in `{}`", path.display()))?;
    let ini = flat.to_ini();
    match &args.out {
        None => output::text(&ini),
        Some(out) => std::fs::write(out, ini).with_context(|| format!("cannot write `{}`", out.display())),
    }
}

/// `farm calibrate`: estimates every observed model with the profile, fits
/// the corrections (in the calculator), prints the before and after, and
/// writes the calibration file.
pub(crate) fn calibrate(args: &CalibrateArgs) -> anyhow::Result<()> {
    telemetry::init_logs(LogFormat::Auto, "warn");
    let profile = match &args.profile {
        None => FdmProfile::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            FdmProfile::from_ini(&text).with_context(|| format!("invalid profile `{}`", path.display()))?.profile
        }
    };
    let density = match args.density {
        Some(d) if d.is_finite() && d > 0.0 => d,
        Some(d) => bail!("--density must be a positive number, got {d}"),
        None if profile.filament_density > 0.0 => profile.filament_density,
        None => 1.24,
    };
    let path = &args.observations;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let rows = calibration::parse_observations(&text).with_context(|| format!("in `{}`", path.display()))?;
    let folder = path.parent().unwrap_or(std::path::Path::new("."));
    let options = mesh::AnalysisOptions {
        layering: Some(fdm::layering(&profile)),
        overhang_angle_deg: fdm::support_angle_deg(&profile),
        support: fdm::support_shape(&profile),
        ..wiring::read_options(&args.read)?
    };
    let observations: Vec<Observation> = rows
        .par_iter()
        .map(|row| {
            let model = folder.join(&row.model);
            let report = wiring::analyze_file(&model, &options)
                .with_context(|| format!("line {} of `{}`", row.line, path.display()))?;
            let estimate = fdm::estimate(&report, &profile)
                .with_context(|| format!("cannot estimate `{}` (line {})", model.display(), row.line))?;
            let quantity = f64::from(row.quantity);
            Ok(Observation {
                name: row.model.clone(),
                estimate,
                time_s: row.hours * 3600.0 / quantity,
                material_cm3: row.grams / quantity / density,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let fingerprint = calculator::profile_fingerprint(&profile);
    let calibration = calibration::fit(&observations, args.folds, &fingerprint)?;

    let mut report = String::new();
    let _ = writeln!(
        report,
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "model", "hours", "estimate", "calibr.", "grams", "estimate", "calibr."
    );
    for o in &observations {
        let mut calibrated = o.estimate.clone();
        calibration.apply(&mut calibrated);
        let _ = writeln!(
            report,
            "{:<40} {:>9.2} {:>9.2} {:>9.2} {:>9.1} {:>9.1} {:>9.1}",
            truncate(&o.name, 40),
            o.time_s / 3600.0,
            o.estimate.print_time_s / 3600.0,
            calibrated.print_time_s / 3600.0,
            o.material_cm3 * density,
            o.estimate.material_cm3 * density,
            calibrated.material_cm3 * density
        );
    }
    let r = calibration.fit;
    let _ = writeln!(report);
    let _ = writeln!(
        report,
        "median |time error|:     {:5.1} % before, {:5.1} % after ({}-fold cross-validated), {:5.1} % in sample",
        r.time_before * 100.0,
        r.time_after_cv * 100.0,
        r.folds,
        r.time_after_in_sample * 100.0
    );
    let _ = writeln!(
        report,
        "median |material error|: {:5.1} % before, {:5.1} % after ({}-fold cross-validated), {:5.1} % in sample",
        r.material_before * 100.0,
        r.material_after_cv * 100.0,
        r.folds,
        r.material_after_in_sample * 100.0
    );
    let _ = writeln!(report, "\n{:<12} {:>8} {:>9}", "class", "time", "material");
    for (k, class) in calibration::CLASSES.iter().enumerate() {
        let _ = writeln!(report, "{class:<12} {:>8.3} {:>9.3}", calibration.time[k], calibration.material[k]);
    }
    std::fs::write(&args.out, calibration.to_toml())
        .with_context(|| format!("cannot write `{}`", args.out.display()))?;
    let _ = writeln!(report, "\nwritten to {} (quote with --calibration {})", args.out.display(), args.out.display());
    output::text(&report)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep: String = text.chars().rev().take(max - 1).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{keep}")
}
