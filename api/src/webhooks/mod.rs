//! Webhooks: a seller's or the CRM's key asks for the farm's events at a
//! URL of its own, and the farm POSTs each one there, signed, until the
//! receiver answers 2xx or a day has passed.
//!
//! The journey of an event: written to `farm_events` with the change it
//! reports (`events`), fanned out into one delivery per webhook that may
//! hear of it (`store::fan_out_events`), then sent, retried with backoff and
//! recorded attempt by attempt (`deliver`). Every step is a database row, so
//! a restart loses nothing; a receiver may see an event twice (a crash
//! after its 2xx but before the record) and tells by the event's `id`.

use std::time::Duration;

pub mod deliver;
pub(crate) mod routes;
pub mod signature;
pub mod store;
pub mod target;

/// How deliveries are made, and what a key may ask for.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Let webhooks point at loopback, private and link-local addresses
    /// (tests, and a farm whose receivers are on its own network).
    pub allow_private: bool,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// The pause after the first failed attempt; each next one doubles, up
    /// to `max_backoff`, with jitter so receivers coming back are not hit
    /// by every sender at once.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long after its event a delivery is retried before it is marked
    /// failed.
    pub retry_for: Duration,
    /// Attempts in flight at once, per API process.
    pub concurrency: usize,
    /// Attempts in flight at once for one webhook: a receiver that hangs
    /// holds this many slots, never all of them.
    pub per_webhook_concurrency: usize,
    /// Attempts in flight at once for all the webhooks of one key.
    pub per_key_concurrency: usize,
    /// Deliveries claimed per pass.
    pub batch: i64,
    /// How often the sender looks for due deliveries when idle.
    pub poll: Duration,
    /// Webhooks one key may have.
    pub max_per_key: i64,
    /// Longest target URL, characters.
    pub max_url_chars: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
            retry_for: Duration::from_secs(24 * 3600),
            concurrency: 64,
            per_webhook_concurrency: 4,
            per_key_concurrency: 8,
            batch: 100,
            poll: Duration::from_millis(500),
            max_per_key: 10,
            max_url_chars: 2048,
        }
    }
}

/// The pause before attempt `attempt + 1` after `attempt` failed:
/// `first × 2^(attempt-1)`, capped, then drawn from its upper half (`unit`
/// in [0, 1) is the random draw).
pub fn backoff(settings: &WebhookSettings, attempt: i64, unit: f64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = settings.first_backoff.saturating_mul(2u32.saturating_pow(exponent)).min(settings.max_backoff);
    full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let settings = WebhookSettings::default();
        assert_eq!(backoff(&settings, 1, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(&settings, 1, 0.0), Duration::from_secs(5));
        assert_eq!(backoff(&settings, 2, 1.0), Duration::from_secs(20));
        assert_eq!(backoff(&settings, 4, 1.0), Duration::from_secs(80));
        assert_eq!(backoff(&settings, 40, 1.0), Duration::from_secs(3600));
        assert_eq!(backoff(&settings, i64::MAX, 0.0), Duration::from_secs(1800));
    }
}
