//! Who owns a model, and how much one key may ask of the farm: uploads per
//! hour, upload bytes per day, jobs in flight, and uploads at once. Over a
//! quota a request gets 429 with `Retry-After`, never a slower farm for
//! everyone else.

use sha2::{Digest, Sha256};

use crate::auth::{KeyKind, Principal};
use crate::store::{ModelRow, Store, StoreError};

/// The per-key limits. Each is a setting (`FARM_QUOTA_*`).
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// New models one key may upload in an hour.
    pub uploads_per_hour: i64,
    /// Bytes of new models one key may upload in a day.
    pub upload_bytes_per_day: i64,
    /// Pricing jobs of one key queued or running at once (orders included).
    pub jobs_in_flight: i64,
    /// Uploads the whole API reads at once; each is spooled to disk.
    pub concurrent_uploads: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self { uploads_per_hour: 1_000, upload_bytes_per_day: 20 << 30, jobs_in_flight: 200, concurrent_uploads: 8 }
    }
}

/// A request over one of the key's quotas: what it is over, and when to
/// try again (HTTP answers it 429 with `Retry-After`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OverQuota {
    pub message: String,
    pub retry_after_s: u64,
}

/// Why a quota check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(transparent)]
    Over(#[from] OverQuota),
    /// More at once than the quota could ever hold: no retry would pass.
    #[error("this needs {asked} pricing jobs at once, more than this key's quota of {limit} in flight")]
    NeverFits { asked: u32, limit: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Who a model uploaded by `principal` belongs to: a seller's models are
/// shared by every key of that seller; an operator's or the CRM's are theirs.
pub(crate) fn owner_of(principal: &Principal) -> String {
    match principal.kind {
        KeyKind::Seller => principal.name.clone(),
        other => format!("{}:{}", other.as_str(), principal.name),
    }
}

/// The model id `owner` gets for bytes with this SHA-256: the same bytes
/// give the same owner the same id, and another owner a different one, so
/// an id says nothing about anyone else's uploads.
pub(crate) fn model_handle(owner: &str, content_sha256: &str) -> String {
    let digest =
        Sha256::new().chain_update(owner.as_bytes()).chain_update(b"\n").chain_update(content_sha256).finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `owner` may price `model`. Models from before owners existed
/// are open to whoever knows their id, as they were.
pub(crate) fn usable_by(model: &ModelRow, owner: &str) -> bool {
    model.owner.as_deref().is_none_or(|o| o == owner)
}

/// Refuses an upload of `bytes` more when the key is over its hourly count
/// or its daily bytes.
pub(crate) async fn check_upload(
    store: &Store,
    quotas: &Quotas,
    principal: &Principal,
    bytes: u64,
    now_ms: i64,
) -> Result<(), QuotaError> {
    let (uploads, _) = store.uploads_since(&principal.key_id, now_ms - HOUR_MS).await?;
    if uploads >= quotas.uploads_per_hour {
        return Err(OverQuota {
            message: format!(
                "this key uploaded {uploads} models in the last hour; the quota is {}",
                quotas.uploads_per_hour
            ),
            retry_after_s: 60,
        }
        .into());
    }
    let (_, day_bytes) = store.uploads_since(&principal.key_id, now_ms - DAY_MS).await?;
    let wanted = day_bytes.saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX));
    if wanted > quotas.upload_bytes_per_day {
        return Err(OverQuota {
            message: format!(
                "this key uploaded {day_bytes} bytes in the last day, and this model would take it past the quota of {}",
                quotas.upload_bytes_per_day
            ),
            retry_after_s: 3_600,
        }
        .into());
    }
    Ok(())
}

/// When a key over its quota of jobs in flight may try again: a quote takes
/// seconds.
pub(crate) const RETRY_JOBS_AFTER_S: u64 = 5;

/// Refuses `adding` more pricing jobs (an order's parts are asked for at
/// once) when they would take the key past its quota in flight. A quick
/// answer before any work; the transaction that writes the jobs checks
/// again, strictly (`JobRow::in_flight_quota`).
pub(crate) async fn check_jobs(store: &Store, quotas: &Quotas, key_id: &str, adding: u32) -> Result<(), QuotaError> {
    let limit = quotas.jobs_in_flight;
    if i64::from(adding) > limit {
        return Err(QuotaError::NeverFits { asked: adding, limit });
    }
    let in_flight = store.jobs_in_flight(key_id).await?;
    if in_flight.saturating_add(i64::from(adding)) > limit {
        return Err(OverQuota {
            message: format!(
                "this key has {in_flight} pricing jobs queued or running and asks for {adding} more; the quota is \
                 {limit}"
            ),
            retry_after_s: RETRY_JOBS_AFTER_S,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_depends_on_the_owner_and_the_bytes() {
        let a = model_handle("acme", "00ff");
        assert_eq!(a, model_handle("acme", "00ff"), "stable");
        assert_ne!(a, model_handle("globex", "00ff"), "another owner, another id");
        assert_ne!(a, model_handle("acme", "00fe"));
        assert_eq!(a.len(), 64);
    }
}
