//! The messages that travel on the queues, and their JSON encoding.
//!
//! A job message names the model by content hash, never carries its bytes:
//! models can be hundreds of megabytes and live in object storage. A result
//! message carries the job id, so the API can apply it idempotently.

use serde::{Deserialize, Serialize};

use crate::report::QuoteDoc;

/// A pricing job, as published by the API's outbox relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: String,
    pub model_id: String,
    pub material: String,
    pub quantity: u32,
    /// One of the material's colours, when the customer chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    /// When the API accepted the job, ms since the Unix epoch.
    pub submitted_at_ms: i64,
}

/// What a worker reports about a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMessage {
    pub job_id: String,
    #[serde(flatten)]
    pub event: ResultEvent,
    /// When the worker produced the event, ms since the Unix epoch.
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ResultEvent {
    /// A worker picked the job up.
    Started,
    /// The quote is ready.
    Succeeded {
        quote: Box<QuoteDoc>,
        /// The quote-cache key the worker priced under (its price book's
        /// version and its profile); absent from older workers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quote_key: Option<String>,
    },
    /// The job can never succeed as submitted.
    Failed { error: JobFailure },
}

/// Why a job failed, in a form the API can show to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// Stable, machine-readable class: `invalid_model`, `pricing`,
    /// `model_missing` or `internal`.
    pub kind: String,
    pub message: String,
}

impl JobFailure {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self { kind: kind.into(), message: message.into() }
    }
}

/// Milliseconds since the Unix epoch, the one clock format on the wire.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_events_are_tagged() {
        let message = ResultMessage {
            job_id: "j1".into(),
            event: ResultEvent::Failed { error: JobFailure::new("invalid_model", "empty") },
            at_ms: 5,
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"job_id": "j1", "event": "failed", "at_ms": 5,
                                "error": {"kind": "invalid_model", "message": "empty"}})
        );
        assert_eq!(serde_json::from_value::<ResultMessage>(json).unwrap(), message);
    }
}
