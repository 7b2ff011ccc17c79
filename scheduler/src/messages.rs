//! The messages that travel on the queues, and their JSON encoding.
//!
//! A job message names the model by its id, never carries its bytes:
//! models can be hundreds of megabytes and live in object storage. A result
//! message carries the job id, so the API can apply it idempotently.

use serde::{Deserialize, Serialize};

use crate::broker::Lane;
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
    #[serde(default)]
    pub lane: Lane,
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
    Started {
        /// Which worker (host and process), for the logs and the job view.
        #[serde(default)]
        worker: String,
        /// Earlier deliveries of this job (a worker died, or released it).
        #[serde(default)]
        deliveries: u64,
        /// The worker waits for the API's word ([`Control::Proceed`]) before
        /// it computes: the job was delivered before, and its first runner
        /// may still be at it (a lost connection, not a dead worker).
        #[serde(default)]
        claim: bool,
    },
    /// How far the job got; also the heartbeat that tells a slow job from a
    /// dead one, sent at least every heartbeat interval.
    Progress {
        stage: Stage,
        percent: u8,
        /// Which worker: only the job's runner keeps the job alive. Absent
        /// from older workers, whose word is taken for the runner's.
        #[serde(default)]
        worker: String,
    },
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
    /// The job was cancelled before or while it ran.
    Cancelled,
    /// The worker handed the job back to the queue unfinished (its shutdown
    /// grace ran out): the next worker may take it at once, without waiting
    /// for this one to go silent.
    Released {
        #[serde(default)]
        worker: String,
    },
}

/// Where a job is in its journey through a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Fetching,
    Parsing,
    Analysing,
    Slicing,
    Pricing,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Fetching => "fetching",
            Stage::Parsing => "parsing",
            Stage::Analysing => "analysing",
            Stage::Slicing => "slicing",
            Stage::Pricing => "pricing",
        }
    }

    /// The stage's span of the whole job, in percent: where a stage starts
    /// and how far it reaches, so progress only ever grows.
    pub fn span(self) -> (u8, u8) {
        match self {
            Stage::Fetching => (0, 10),
            Stage::Parsing => (10, 50),
            Stage::Analysing => (50, 75),
            Stage::Slicing => (75, 95),
            Stage::Pricing => (95, 100),
        }
    }

    /// The job's percentage when `done` of this stage is complete.
    pub fn percent(self, done: f64) -> u8 {
        let (from, to) = self.span();
        (f64::from(from) + f64::from(to - from) * done.clamp(0.0, 1.0)).round() as u8
    }

    fn from_index(index: u8) -> Self {
        match index {
            0 => Stage::Fetching,
            1 => Stage::Parsing,
            2 => Stage::Analysing,
            3 => Stage::Slicing,
            _ => Stage::Pricing,
        }
    }

    pub(crate) fn index(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_mesh(stage: mesh::Stage) -> Self {
        match stage {
            mesh::Stage::Parsing => Stage::Parsing,
            mesh::Stage::Analysing => Stage::Analysing,
            mesh::Stage::Slicing => Stage::Slicing,
        }
    }

    /// Packs a stage and a percentage into one word, for an atomic.
    pub(crate) fn pack(self, percent: u8) -> u16 {
        (u16::from(self.index()) << 8) | u16::from(percent)
    }

    pub(crate) fn unpack(word: u16) -> (Self, u8) {
        (Self::from_index((word >> 8) as u8), (word & 0xff) as u8)
    }
}

/// Why a job failed, in a form the API can show to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl JobFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// The stable, machine-readable class of a failure, as sent and stored
/// (`invalid_model`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Unreadable bytes, an empty model, a file over a size limit.
    InvalidModel,
    /// More work or memory than the analysis limits allow; the message names
    /// the figure and the limit.
    OverLimit,
    /// No model is stored under the job's key.
    ModelMissing,
    /// The request cannot be priced (no machine of the material holds it).
    Pricing,
    /// The lane's deadline passed.
    DeadlineExceeded,
    /// The analysis was stopped (a cancellation or a deadline).
    Stopped,
    /// A dependency stayed down through every retry.
    Unavailable,
    /// It ended its worker on every delivery until the queue gave up.
    DeadLettered,
    Internal,
    /// A kind this build does not know (a newer worker's); the message
    /// still says what happened.
    #[serde(other)]
    Other,
}

impl FailureKind {
    pub const ALL: [FailureKind; 10] = [
        FailureKind::InvalidModel,
        FailureKind::OverLimit,
        FailureKind::ModelMissing,
        FailureKind::Pricing,
        FailureKind::DeadlineExceeded,
        FailureKind::Stopped,
        FailureKind::Unavailable,
        FailureKind::DeadLettered,
        FailureKind::Internal,
        FailureKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::InvalidModel => "invalid_model",
            FailureKind::OverLimit => "over_limit",
            FailureKind::ModelMissing => "model_missing",
            FailureKind::Pricing => "pricing",
            FailureKind::DeadlineExceeded => "deadline_exceeded",
            FailureKind::Stopped => "stopped",
            FailureKind::Unavailable => "unavailable",
            FailureKind::DeadLettered => "dead_lettered",
            FailureKind::Internal => "internal",
            FailureKind::Other => "other",
        }
    }

    /// The kind `text` names, as stored; one this build does not know is
    /// [`FailureKind::Other`].
    pub fn parse(text: &str) -> Self {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text).unwrap_or(FailureKind::Other)
    }
}

/// A message to every worker, on the control exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    /// Stop the job if it runs, and skip it if it is delivered later.
    Cancel { job_id: String },
    /// Only for `worker`: stop this delivery of the job and acknowledge it
    /// without a result, because the job has already finished (an earlier
    /// delivery's result is recorded).
    Yield { job_id: String, worker: String },
    /// Only for `worker`: compute the job. The answer to a start that
    /// claims it, when no other worker is running it (or the one that was
    /// has stopped reporting).
    Proceed { job_id: String, worker: String },
    /// Only for `worker`: another worker (`runner`) is running the job and
    /// reporting. Do not compute it; hold the delivery and claim again
    /// later, until the job ends (then [`Control::Yield`]) or its runner
    /// goes silent (then [`Control::Proceed`]).
    Wait { job_id: String, worker: String, runner: String },
}

/// Milliseconds since the Unix epoch, the one clock format on the wire.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_are_sent_and_stored_by_their_names_and_an_unknown_one_is_other() {
        for kind in FailureKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str(), "{kind:?} is sent as it is stored");
            assert_eq!(serde_json::from_value::<FailureKind>(json).unwrap(), kind);
            assert_eq!(FailureKind::parse(kind.as_str()), kind);
        }
        let newer: JobFailure = serde_json::from_str(r#"{"kind": "gpu_melted", "message": "hot"}"#).unwrap();
        assert_eq!((newer.kind, newer.message.as_str()), (FailureKind::Other, "hot"));
        assert_eq!(FailureKind::parse("gpu_melted"), FailureKind::Other);
    }

    #[test]
    fn result_events_are_tagged() {
        let message = ResultMessage {
            job_id: "j1".into(),
            event: ResultEvent::Failed { error: JobFailure::new(FailureKind::InvalidModel, "empty") },
            at_ms: 5,
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"job_id": "j1", "event": "failed", "at_ms": 5,
                                "error": {"kind": "invalid_model", "message": "empty"}})
        );
        assert_eq!(serde_json::from_value::<ResultMessage>(json).unwrap(), message);
        let progress = ResultMessage {
            job_id: "j1".into(),
            event: ResultEvent::Progress { stage: Stage::Slicing, percent: 80, worker: String::new() },
            at_ms: 6,
        };
        let json = serde_json::to_value(&progress).unwrap();
        assert_eq!(json["stage"], "slicing");
        assert_eq!(serde_json::from_value::<ResultMessage>(json).unwrap(), progress);
        // An older worker's events: no claim, no worker on progress.
        let older: ResultMessage =
            serde_json::from_str(r#"{"job_id": "j1", "event": "started", "at_ms": 7, "worker": "w1"}"#).unwrap();
        assert_eq!(older.event, ResultEvent::Started { worker: "w1".into(), deliveries: 0, claim: false });
        let older: ResultMessage = serde_json::from_str(
            r#"{"job_id": "j1", "event": "progress", "at_ms": 8, "stage": "parsing", "percent": 3}"#,
        )
        .unwrap();
        assert_eq!(older.event, ResultEvent::Progress { stage: Stage::Parsing, percent: 3, worker: String::new() });
    }

    #[test]
    fn progress_only_grows_through_the_stages() {
        let mut last = 0;
        for stage in [Stage::Fetching, Stage::Parsing, Stage::Analysing, Stage::Slicing, Stage::Pricing] {
            for done in [0.0, 0.5, 1.0] {
                let p = stage.percent(done);
                assert!(p >= last, "{stage:?} {done}");
                last = p;
                assert_eq!(Stage::unpack(stage.pack(p)), (stage, p));
            }
        }
        assert_eq!(last, 100);
    }

    #[test]
    fn a_job_message_without_a_lane_is_a_fast_one() {
        let old = r#"{"job_id":"j","model_id":"m","material":"pla","quantity":1,"submitted_at_ms":1}"#;
        assert_eq!(serde_json::from_str::<JobMessage>(old).unwrap().lane, Lane::Fast);
    }
}
