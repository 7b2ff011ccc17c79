//! Pricing as a service, for every way a job is asked for (a job, an order,
//! a repricing): what a job may ask for, which lane a model goes to, and
//! the quote cache that answers a model priced before under the same book
//! without queueing it.

use calculator::QuoteRequest;
use scheduler::Lane;

use crate::orders::reprice::SlowLane;
use crate::quota::{OverQuota, QuotaError};
use crate::state::{ApiSettings, AppState};
use crate::store::{JobRow, ModelRow, StoreError};
use crate::text;

/// What a pricing job asks for; material and colour already normalised.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobAsk<'a> {
    pub(crate) model_id: &'a str,
    pub(crate) material: &'a str,
    pub(crate) quantity: u32,
    pub(crate) colour: Option<&'a str>,
    /// How many jobs are asked for at once, this one among them (the parts
    /// of one order): the key's quota must hold them all.
    pub(crate) jobs_at_once: u32,
}

/// Why a job cannot be priced as asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PricingError {
    /// Well-formed but unacceptable: an unknown material, an over-long name.
    #[error("{0}")]
    Invalid(String),
    /// The model is not there, or not the caller's.
    #[error("model `{0}` does not exist")]
    ModelNotFound(String),
    #[error(transparent)]
    OverQuota(#[from] OverQuota),
    /// More jobs at once than the key's quota could ever hold.
    #[error("{0}")]
    NeverFits(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<QuotaError> for PricingError {
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::Over(over) => PricingError::OverQuota(over),
            never @ QuotaError::NeverFits { .. } => PricingError::NeverFits(never.to_string()),
            QuotaError::Store(e) => PricingError::Store(e),
        }
    }
}

/// A job checked and built, not yet written, with the quote the cache
/// holds for it (the quote and its key), if any.
#[derive(Debug)]
pub(crate) struct PreparedJob {
    pub(crate) job: JobRow,
    pub(crate) cached: Option<(String, String)>,
}

/// Checks what a job asks for (its fields and the caller's `more_fields`,
/// the price book, that `owner` may price the model, the quota of
/// `key_id`), then builds the job on its lane, asks the quote cache, and
/// writes nothing: the caller writes it with whatever else it needs.
pub(crate) async fn prepare_job(
    state: &AppState,
    ask: JobAsk<'_>,
    more_fields: &[(&str, Option<&str>, usize)],
    owner: &str,
    key_id: Option<&str>,
    now_ms: i64,
) -> Result<PreparedJob, PricingError> {
    let fields = [
        ("model_id", Some(ask.model_id), text::MAX_ID_CHARS),
        ("material", Some(ask.material), text::MAX_NAME_CHARS),
        ("colour", ask.colour, text::MAX_NAME_CHARS),
    ];
    if let Some(why) = text::first_refusal(&fields).or_else(|| text::first_refusal(more_fields)) {
        return Err(PricingError::Invalid(why));
    }
    let request = QuoteRequest {
        material: ask.material.to_string(),
        quantity: ask.quantity,
        colour: ask.colour.map(str::to_string),
    };
    calculator::validate_request(&request, &state.services.pricing.book)
        .map_err(|e| PricingError::Invalid(e.to_string()))?;
    let model = state.services.store.model(ask.model_id).await?;
    let Some(model) = model.filter(|m| crate::quota::usable_by(m, owner)) else {
        return Err(PricingError::ModelNotFound(ask.model_id.to_string()));
    };
    if let Some(key_id) = key_id {
        crate::quota::check_jobs(&state.services.store, &state.settings.quotas, key_id, ask.jobs_at_once).await?;
    }
    let lane = lane_for(&model, &state.settings);
    let mut job = JobRow::queued(
        uuid::Uuid::now_v7().to_string(),
        model.model_id,
        request.material.clone(),
        i64::from(ask.quantity),
        lane,
        now_ms,
    );
    job.colour = request.colour.clone();
    job.owner_key_id = key_id.map(str::to_string);
    job.in_flight_quota = key_id.map(|_| state.settings.quotas.jobs_in_flight);
    let cached = cached_quote(state, &job, &request).await?;
    Ok(PreparedJob { job, cached })
}

/// The quote a succeeded job holds under this job's cache key, if any, and
/// the key; counts the hit or the miss.
async fn cached_quote(
    state: &AppState,
    job: &JobRow,
    request: &QuoteRequest,
) -> Result<Option<(String, String)>, StoreError> {
    // The same model, material and quantity under the same price book and
    // profile was priced before: answer with that quote, queue nothing.
    let key = state.services.pricing.cache_key(&job.model_id, request);
    let cached = state.services.store.cached_quote(&key).await?;
    let lane = job.lane.as_str();
    if cached.is_some() {
        metrics::counter!("farm_quote_cache_hits_total").increment(1);
        metrics::counter!("farm_jobs_submitted_total", "lane" => lane, "cached" => "true").increment(1);
    } else {
        metrics::counter!("farm_quote_cache_misses_total").increment(1);
        metrics::counter!("farm_jobs_submitted_total", "lane" => lane, "cached" => "false").increment(1);
    }
    Ok(cached.map(|quote| (quote, key)))
}

/// The lane for a model: slow when its size says it will take long.
pub(crate) fn lane_for(model: &ModelRow, settings: &ApiSettings) -> Lane {
    slow_lane(settings).lane(model)
}

pub(crate) fn slow_lane(settings: &ApiSettings) -> SlowLane {
    SlowLane { triangles: settings.slow_lane_triangles, bytes: settings.slow_lane_bytes }
}
