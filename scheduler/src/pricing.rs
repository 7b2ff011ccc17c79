//! Everything a quote depends on besides the model (the price book, the
//! FDM and SLA profiles and the shop's calibration, loaded once at start)
//! and the pure path from a model to a quote document, shared by the worker
//! and `farm quote`.

use calculator::{PriceBook, PrintSettings, QuoteRequest};

use crate::messages::{FailureKind, JobFailure};
use crate::report::QuoteDoc;

/// The prices and print settings every quote of this process uses.
#[derive(Debug, Clone)]
pub struct Pricing {
    pub book: PriceBook,
    /// The FDM profile (with the keys of its file the estimate ignores), the
    /// SLA preset and the calibration, when the shop has them.
    pub settings: PrintSettings,
}

impl Default for Pricing {
    /// The built-in price book and PrusaSlicer's default profile.
    fn default() -> Self {
        Self { book: PriceBook::builtin(), settings: PrintSettings::default() }
    }
}

impl Pricing {
    /// How to analyse a model for `request`: `base` (limits, units, weld)
    /// plus what the material's process needs measured.
    pub fn analysis_options(
        &self,
        request: &QuoteRequest,
        base: mesh::AnalysisOptions,
    ) -> Result<mesh::AnalysisOptions, JobFailure> {
        calculator::analysis_options(request, &self.book, &self.settings, base).map_err(pricing_failure)
    }

    /// Analyses and prices one model. Pure and synchronous: the worker runs
    /// it on its compute pool.
    pub fn price_bytes(
        &self,
        bytes: &[u8],
        request: &QuoteRequest,
        base: mesh::AnalysisOptions,
    ) -> Result<QuoteDoc, JobFailure> {
        self.price_observed(bytes, request, base, &mesh::Unobserved)
    }

    /// The report to price: `report`, or when the part fits a machine only
    /// on another side, the model analysed again standing that way, so the
    /// quote estimates the orientation it prices.
    fn turned_if_needed<F>(
        &self,
        report: mesh::MeshReport,
        request: &QuoteRequest,
        options: &mesh::AnalysisOptions,
        analyse: F,
    ) -> Result<mesh::MeshReport, JobFailure>
    where
        F: Fn(&mesh::AnalysisOptions) -> Result<mesh::MeshReport, JobFailure>,
    {
        match calculator::turn_needed(&report, request, &self.book) {
            Some(up_axis) => analyse(&mesh::AnalysisOptions { up_axis, ..options.clone() }),
            None => Ok(report),
        }
    }

    /// [`Pricing::price_bytes`], with an observer that sees the analysis's
    /// progress and may stop it; a stopped analysis is a `stopped` failure
    /// (see [`analysis_failure`] for the others).
    pub fn price_observed(
        &self,
        bytes: &[u8],
        request: &QuoteRequest,
        base: mesh::AnalysisOptions,
        observer: &dyn mesh::Observer,
    ) -> Result<QuoteDoc, JobFailure> {
        let options = self.analysis_options(request, base)?;
        let analyse = |options: &mesh::AnalysisOptions| {
            mesh::analyze_observed(bytes, bytes.len() as u64, options, observer).map_err(analysis_failure)
        };
        let report = self.turned_if_needed(analyse(&options)?, request, &options, analyse)?;
        self.price(&report, request)
    }

    /// Prices a model analysed with [`Pricing::analysis_options`] (and,
    /// when [`calculator::turn_needed`] says so, turned).
    pub fn price(&self, report: &mesh::MeshReport, request: &QuoteRequest) -> Result<QuoteDoc, JobFailure> {
        let quote = calculator::quote(report, request, &self.book, &self.settings).map_err(pricing_failure)?;
        Ok(QuoteDoc::new(report, &quote))
    }

    /// The axis to stand up before pricing, when the part fits a machine
    /// only on another side (see [`calculator::turn_needed`]).
    pub fn turn_needed(&self, report: &mesh::MeshReport, request: &QuoteRequest) -> Option<usize> {
        calculator::turn_needed(report, request, &self.book)
    }

    /// The key under which a quote for `model_id` and `request` may be
    /// reused: it names the price book's version, the profiles and the
    /// calibration, so new prices or settings never serve an old quote.
    pub fn cache_key(&self, model_id: &str, request: &QuoteRequest) -> String {
        calculator::quote_cache_key(model_id, request, &self.book, &self.settings)
    }

    /// Publishes which price book this process prices with, as the gauge
    /// `farm_price_book_info{version, fingerprint} 1`: an alert sees two
    /// versions serving at once during a half-done rollout.
    pub fn announce(&self) {
        let fingerprint: String = self.book.fingerprint.chars().take(12).collect();
        metrics::gauge!("farm_price_book_info", "version" => self.book.version.clone(), "fingerprint" => fingerprint)
            .set(1.0);
    }
}

/// Why an analysis failed, as the job's failure: `stopped` (a deadline or a
/// cancellation), `over_limit` (more work or memory than the limits allow:
/// the message names the figure and the limit), `pricing` (no machine of
/// the material holds the part), `invalid_model` (unreadable, empty).
pub fn analysis_failure(error: mesh::AnalyzeError) -> JobFailure {
    let kind = match &error {
        mesh::AnalyzeError::Stopped => FailureKind::Stopped,
        mesh::AnalyzeError::OverLimit(_) => FailureKind::OverLimit,
        mesh::AnalyzeError::FitsNoBuildVolume { .. } => FailureKind::Pricing,
        _ => FailureKind::InvalidModel,
    };
    JobFailure::new(kind, error.to_string())
}

fn pricing_failure(error: calculator::PricingError) -> JobFailure {
    JobFailure::new(FailureKind::Pricing, error.to_string())
}
