//! A shop's calibration: what its printers really did (hours and grams per
//! model) against what the estimate said, turned into a small correction
//! per feature class (perimeters, infill, skins, supports, travel, other),
//! cross-validated, and applied to every quote after.
//!
//! The fit is a ridge regression on relative errors: each observation's
//! measured time is modelled as the sum of its estimate's feature classes,
//! each scaled by its correction, and the corrections are pulled towards 1
//! (no change) so a class the observations barely exercise stays as it was.
//! Corrections are bounded to [`MIN_CORRECTION`, `MAX_CORRECTION`]: a
//! calibration adjusts the model, it does not replace it. Material is fitted
//! the same way, separately.
//!
//! Pure: the caller analyses the models and reads and writes the file.

use std::fmt::Write as _;

use serde::Deserialize;

use crate::ProcessEstimate;
use crate::fdm::FEATURE_CLASSES;

/// The feature classes, in the order their corrections are stored.
pub const CLASSES: [&str; 6] = ["perimeters", "infill", "skins", "supports", "travel", "other"];
pub const MIN_CORRECTION: f64 = 0.5;
pub const MAX_CORRECTION: f64 = 2.0;
/// How strongly corrections are pulled towards 1, against the observations'
/// squared relative errors (per observation): a class that makes up about
/// 4.5 % of the observed time (RMS) is half pulled to 1; the infill of
/// ordinary parts (15-30 %) hardly. At 0.02 even the infill of twenty
/// blocks stayed within 2 % of 1 when the truth was 0.85.
const RIDGE: f64 = 0.002;
/// Observations a calibration needs: fewer cannot be cross-validated.
pub const MIN_OBSERVATIONS: usize = 4;

/// What a printer did with one part, and what the uncalibrated estimate said.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub name: String,
    pub estimate: ProcessEstimate,
    /// Measured print time for one part, seconds.
    pub time_s: f64,
    /// Measured material for one part, cm³.
    pub material_cm3: f64,
}

/// Corrections per feature class, for time and material, with where they
/// came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub time: [f64; 6],
    pub material: [f64; 6],
    /// The profile's fingerprint ([`crate::profile_fingerprint`]) the
    /// observations were printed with.
    pub profile_fingerprint: String,
    /// The estimator revision the corrections were fitted against.
    pub estimator_revision: u32,
    pub observations: usize,
    pub fit: FitReport,
}

/// The errors before and after, as median absolute relative errors (0.05
/// is 5 %). `after_cv` predicts each observation from corrections fitted
/// without it (k-fold cross-validation); `after_in_sample` from the final
/// corrections, fitted on all.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FitReport {
    pub folds: usize,
    pub time_before: f64,
    pub time_after_cv: f64,
    pub time_after_in_sample: f64,
    pub material_before: f64,
    pub material_after_cv: f64,
    pub material_after_in_sample: f64,
}

/// Why a calibration could not be made or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    #[error("a calibration needs at least {MIN_OBSERVATIONS} observations, got {0}")]
    TooFew(usize),
    #[error("observation `{name}`: {what}")]
    BadObservation { name: String, what: String },
    #[error("the calibration file is not valid: {0}")]
    File(String),
}

/// One line of a shop's observations file: what printing a model took.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    /// The line it came from, for errors.
    pub line: usize,
    /// The model's path as written (relative paths are the caller's to
    /// resolve).
    pub model: String,
    /// Hours and grams for the whole `quantity`.
    pub hours: f64,
    pub grams: f64,
    pub quantity: u32,
}

/// Most lines an observations file may have.
pub const MAX_OBSERVATIONS: usize = 10_000;

/// Reads an observations CSV: a header naming the columns `model`, `hours`
/// and `grams` (any order, any case; `quantity` optional, default 1), then
/// one line per print. Blank lines and lines starting with `#` are skipped;
/// a field may be quoted.
pub fn parse_observations(text: &str) -> Result<Vec<ObservationRow>, CalibrationError> {
    let bad = |line: usize, what: String| CalibrationError::BadObservation { name: format!("line {line}"), what };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (header_index, header) = lines.next().ok_or(CalibrationError::TooFew(0))?;
    let columns: Vec<String> = split_csv(header).iter().map(|c| c.to_ascii_lowercase()).collect();
    let column = |name: &str| columns.iter().position(|c| c == name);
    let (Some(model), Some(hours), Some(grams)) = (column("model"), column("hours"), column("grams")) else {
        return Err(bad(
            header_index + 1,
            format!("the header must name `model`, `hours` and `grams` columns, got `{}`", header.trim()),
        ));
    };
    let quantity = column("quantity");
    let mut rows = Vec::new();
    for (index, line) in lines {
        let n = index + 1;
        if rows.len() >= MAX_OBSERVATIONS {
            return Err(bad(n, format!("more than {MAX_OBSERVATIONS} observations")));
        }
        let fields = split_csv(line);
        let field =
            |i: usize, name: &str| fields.get(i).map(String::as_str).ok_or_else(|| bad(n, format!("no `{name}`")));
        let number = |i: usize, name: &str| -> Result<f64, CalibrationError> {
            let text = field(i, name)?;
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| bad(n, format!("`{name}` must be a positive number, got `{text}`")))
        };
        let model_path = field(model, "model")?.to_string();
        if model_path.is_empty() {
            return Err(bad(n, "`model` is empty".into()));
        }
        let quantity = match quantity {
            None => 1,
            Some(i) => {
                let text = field(i, "quantity")?;
                text.parse::<u32>()
                    .ok()
                    .filter(|q| *q > 0)
                    .ok_or_else(|| bad(n, format!("`quantity` must be a whole number of at least 1, got `{text}`")))?
            }
        };
        rows.push(ObservationRow {
            line: n,
            model: model_path,
            hours: number(hours, "hours")?,
            grams: number(grams, "grams")?,
            quantity,
        });
    }
    Ok(rows)
}

/// A CSV line's fields, trimmed, with surrounding double quotes removed
/// (a quoted field may hold commas; `""` is a quote).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

/// Seconds and cm³ of an estimate per feature class.
fn by_class(estimate: &ProcessEstimate) -> ([f64; 6], [f64; 6]) {
    let mut time = [0.0; 6];
    let mut material = [0.0; 6];
    for component in &estimate.breakdown {
        if let Some(k) = FEATURE_CLASSES.iter().position(|(_, features)| features.contains(&component.feature)) {
            time[k] += component.time_s;
            material[k] += component.material_cm3;
        }
    }
    (time, material)
}

/// Fits corrections to `observations`, cross-validated over `folds` folds
/// (at most one per observation).
pub fn fit(
    observations: &[Observation],
    folds: usize,
    profile_fingerprint: &str,
) -> Result<Calibration, CalibrationError> {
    if observations.len() < MIN_OBSERVATIONS {
        return Err(CalibrationError::TooFew(observations.len()));
    }
    for o in observations {
        let bad = |what: &str| CalibrationError::BadObservation { name: o.name.clone(), what: what.to_string() };
        if !(o.time_s.is_finite() && o.time_s > 0.0) {
            return Err(bad("the measured time must be positive"));
        }
        if !(o.material_cm3.is_finite() && o.material_cm3 > 0.0) {
            return Err(bad("the measured material must be positive"));
        }
        if !(o.estimate.print_time_s > 0.0 && o.estimate.material_cm3 > 0.0) {
            return Err(bad("the estimate is empty (is it an FDM estimate of a real part?)"));
        }
    }
    let samples: Vec<([f64; 6], [f64; 6], f64, f64)> = observations
        .iter()
        .map(|o| {
            let (t, m) = by_class(&o.estimate);
            (t, m, o.time_s, o.material_cm3)
        })
        .collect();
    let time_rows: Vec<([f64; 6], f64)> = samples.iter().map(|s| (s.0, s.2)).collect();
    let material_rows: Vec<([f64; 6], f64)> = samples.iter().map(|s| (s.1, s.3)).collect();
    let folds = folds.clamp(2, observations.len());

    let cross_validate = |rows: &[([f64; 6], f64)]| -> f64 {
        let mut errors = Vec::with_capacity(rows.len());
        for fold in 0..folds {
            let train: Vec<([f64; 6], f64)> =
                rows.iter().enumerate().filter(|(i, _)| i % folds != fold).map(|(_, r)| *r).collect();
            let c = solve(&train);
            errors.extend(rows.iter().enumerate().filter(|(i, _)| i % folds == fold).map(|(_, r)| relative(&c, r)));
        }
        median(&mut errors)
    };
    let time = solve(&time_rows);
    let material = solve(&material_rows);
    let ones = [1.0; 6];
    let median_of = |c: &[f64; 6], rows: &[([f64; 6], f64)]| {
        let mut e: Vec<f64> = rows.iter().map(|r| relative(c, r)).collect();
        median(&mut e)
    };
    let report = FitReport {
        folds,
        time_before: median_of(&ones, &time_rows),
        time_after_cv: cross_validate(&time_rows),
        time_after_in_sample: median_of(&time, &time_rows),
        material_before: median_of(&ones, &material_rows),
        material_after_cv: cross_validate(&material_rows),
        material_after_in_sample: median_of(&material, &material_rows),
    };
    Ok(Calibration {
        time,
        material,
        profile_fingerprint: profile_fingerprint.to_string(),
        estimator_revision: crate::ESTIMATOR_REVISION,
        observations: observations.len(),
        fit: report,
    })
}

/// |prediction - measured| / measured.
fn relative(c: &[f64; 6], (x, y): &([f64; 6], f64)) -> f64 {
    let predicted: f64 = c.iter().zip(x).map(|(c, x)| c * x).sum();
    (predicted - y).abs() / y
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) }
}

/// Ridge regression on relative errors, towards 1, then bounded:
/// minimises Σ ((Σ c_k x_k - y) / y)² + RIDGE · n · Σ (c_k - 1)².
fn solve(rows: &[([f64; 6], f64)]) -> [f64; 6] {
    let n = rows.len().max(1) as f64;
    let mut a = [[0.0f64; 6]; 6];
    let mut b = [0.0f64; 6];
    for (x, y) in rows {
        let w = 1.0 / (y * y);
        for i in 0..6 {
            b[i] += w * x[i] * y;
            for j in 0..6 {
                a[i][j] += w * x[i] * x[j];
            }
        }
    }
    for i in 0..6 {
        a[i][i] += RIDGE * n;
        b[i] += RIDGE * n;
    }
    gauss(a, b).map(|c| c.map(|v| v.clamp(MIN_CORRECTION, MAX_CORRECTION))).unwrap_or([1.0; 6])
}

/// Gaussian elimination with partial pivoting; `None` if singular.
fn gauss(mut a: [[f64; 6]; 6], mut b: [f64; 6]) -> Option<[f64; 6]> {
    for col in 0..6 {
        let pivot = (col..6).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..6 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 6];
    for row in (0..6).rev() {
        let tail: f64 = (row + 1..6).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

impl Calibration {
    /// Scales an estimate's features by their class's correction.
    pub fn apply(&self, estimate: &mut ProcessEstimate) {
        for component in &mut estimate.breakdown {
            if let Some(k) = FEATURE_CLASSES.iter().position(|(_, features)| features.contains(&component.feature)) {
                component.time_s *= self.time[k];
                component.material_cm3 *= self.material[k];
            }
        }
        let support_share =
            if estimate.material_cm3 > 0.0 { estimate.support_cm3 / estimate.material_cm3 } else { 0.0 };
        estimate.print_time_s = estimate.breakdown.iter().map(|c| c.time_s).sum();
        estimate.material_cm3 = estimate.breakdown.iter().map(|c| c.material_cm3).sum();
        estimate.support_cm3 = support_share * estimate.material_cm3;
    }

    /// The calibration file: TOML, with the fit's figures as comments and
    /// values a shop can read.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let r = &self.fit;
        let _ = writeln!(out, "# farm calibrate: corrections to the FDM estimate per feature class.");
        let _ = writeln!(out, "# Fitted on {} observations, {}-fold cross-validated.", self.observations, r.folds);
        let _ = writeln!(
            out,
            "# Median |time error|: {:.1} % before, {:.1} % after (cross-validated), {:.1} % in sample.",
            r.time_before * 100.0,
            r.time_after_cv * 100.0,
            r.time_after_in_sample * 100.0
        );
        let _ = writeln!(
            out,
            "# Median |material error|: {:.1} % before, {:.1} % after (cross-validated), {:.1} % in sample.",
            r.material_before * 100.0,
            r.material_after_cv * 100.0,
            r.material_after_in_sample * 100.0
        );
        let _ = writeln!(out, "profile_fingerprint = \"{}\"", self.profile_fingerprint);
        let _ = writeln!(out, "estimator_revision = {}", self.estimator_revision);
        let _ = writeln!(out, "observations = {}", self.observations);
        for (table, values) in [("time", &self.time), ("material", &self.material)] {
            let _ = writeln!(out, "\n[{table}]");
            for (class, value) in CLASSES.iter().zip(values) {
                let _ = writeln!(out, "{class} = {value:.4}");
            }
        }
        let _ = writeln!(out, "\n[fit]");
        for (key, value) in [
            ("folds", r.folds as f64),
            ("time_before", r.time_before),
            ("time_after_cv", r.time_after_cv),
            ("time_after_in_sample", r.time_after_in_sample),
            ("material_before", r.material_before),
            ("material_after_cv", r.material_after_cv),
            ("material_after_in_sample", r.material_after_in_sample),
        ] {
            let _ = writeln!(out, "{key} = {value}");
        }
        out
    }

    /// Reads a calibration file. Every correction must be within the
    /// bounds a fit can produce.
    pub fn from_toml(text: &str) -> Result<Self, CalibrationError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            profile_fingerprint: String,
            estimator_revision: u32,
            observations: usize,
            time: Classes,
            material: Classes,
            #[serde(default)]
            fit: Option<RawFit>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Classes {
            perimeters: f64,
            infill: f64,
            skins: f64,
            supports: f64,
            travel: f64,
            other: f64,
        }
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct RawFit {
            folds: f64,
            time_before: f64,
            time_after_cv: f64,
            time_after_in_sample: f64,
            material_before: f64,
            material_after_cv: f64,
            material_after_in_sample: f64,
        }
        let raw: Raw =
            toml::from_str(text).map_err(|e| CalibrationError::File(e.to_string().trim_end().to_string()))?;
        let classes = |c: &Classes, table: &str| -> Result<[f64; 6], CalibrationError> {
            let values = [c.perimeters, c.infill, c.skins, c.supports, c.travel, c.other];
            for (class, v) in CLASSES.iter().zip(values) {
                if !(v.is_finite() && (MIN_CORRECTION..=MAX_CORRECTION).contains(&v)) {
                    return Err(CalibrationError::File(format!(
                        "`{table}.{class}` must be between {MIN_CORRECTION} and {MAX_CORRECTION}, got {v}"
                    )));
                }
            }
            Ok(values)
        };
        let fit = raw.fit.unwrap_or_default();
        Ok(Calibration {
            time: classes(&raw.time, "time")?,
            material: classes(&raw.material, "material")?,
            profile_fingerprint: raw.profile_fingerprint,
            estimator_revision: raw.estimator_revision,
            observations: raw.observations,
            fit: FitReport {
                folds: fit.folds as usize,
                time_before: fit.time_before,
                time_after_cv: fit.time_after_cv,
                time_after_in_sample: fit.time_after_in_sample,
                material_before: fit.material_before,
                material_after_cv: fit.material_after_cv,
                material_after_in_sample: fit.material_after_in_sample,
            },
        })
    }

    /// What the quote-cache key takes from it.
    pub fn cache_text(&self) -> String {
        format!("{:?}{:?}{}{}", self.time, self.material, self.profile_fingerprint, self.estimator_revision)
    }
}
