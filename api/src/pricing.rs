//! Pricing as a service, for every way a job is asked for (a job, an order,
//! a repricing): which lane a model goes to, and the quote cache that
//! answers a model priced before under the same book without queueing it.

use calculator::QuoteRequest;
use scheduler::Lane;

use crate::orders::reprice::SlowLane;
use crate::state::{ApiSettings, AppState};
use crate::store::{JobRow, ModelRow, StoreError};

/// The quote a succeeded job holds under this job's cache key, if any, and
/// the key; counts the hit or the miss.
pub(crate) async fn cached_quote(
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
