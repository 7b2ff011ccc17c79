//! Faults a test or a benchmark injects into a worker, to show what the
//! farm does when a job is slow, panics or kills its process.
//!
//! Compiled in only with the `fault-injection` feature, which the tests
//! enable (dev-dependencies) and release builds do not: without it the
//! settings exist but nothing reads them, `from_env` reads no variable,
//! and no job can be slowed, panicked or aborted on purpose. A tidy test
//! checks that the release `farm` does not enable the feature.

use std::time::Duration;

/// Whether this build can inject faults at all.
pub const ENABLED: bool = cfg!(feature = "fault-injection");

/// What to inject; all off by default. `farm worker` reads it from the
/// `FARM_FAULT_*` variables when the feature is on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultInjection {
    /// Extra time a job spends analysing, cancellable like real work.
    pub slow_job: Duration,
    /// Only jobs for this model (by the SHA-256 of its bytes) are slowed;
    /// every job when `None`.
    pub slow_model: Option<String>,
    /// The analysis of this model (by the SHA-256 of its bytes) panics.
    pub panic_on_model: Option<String>,
    /// The analysis of this model (by the SHA-256 of its bytes) aborts the
    /// process, as an out-of-memory kill would.
    pub abort_on_model: Option<String>,
}

/// What the faults do to one job, worked out once its bytes are fetched.
#[derive(Debug, Clone, Default)]
pub(crate) struct Armed {
    /// Extra analysing time for this job.
    pub(crate) slow_job: Duration,
    #[cfg(feature = "fault-injection")]
    strike: Option<Strike>,
}

#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone)]
enum Strike {
    Panic(String),
    Abort(String),
}

impl FaultInjection {
    /// The faults the `FARM_FAULT_*` variables ask for (none without the
    /// feature): `FARM_FAULT_SLOW_JOB_MS`, `FARM_FAULT_SLOW_MODEL`,
    /// `FARM_FAULT_PANIC_MODEL`, `FARM_FAULT_ABORT_MODEL`.
    pub fn from_env() -> Self {
        #[cfg(feature = "fault-injection")]
        {
            let text = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let slow_ms = text("FARM_FAULT_SLOW_JOB_MS").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            Self {
                slow_job: Duration::from_millis(slow_ms),
                slow_model: text("FARM_FAULT_SLOW_MODEL"),
                panic_on_model: text("FARM_FAULT_PANIC_MODEL"),
                abort_on_model: text("FARM_FAULT_ABORT_MODEL"),
            }
        }
        #[cfg(not(feature = "fault-injection"))]
        Self::default()
    }

    /// The faults for a job whose model has these bytes.
    #[cfg_attr(not(feature = "fault-injection"), allow(unused_variables))]
    pub(crate) fn arm(&self, bytes: &[u8]) -> Armed {
        #[cfg(feature = "fault-injection")]
        {
            let named = self.slow_model.is_some() || self.panic_on_model.is_some() || self.abort_on_model.is_some();
            // Hashed only when a fault names a model: tests know a model by
            // its bytes before the API gives the upload its id.
            let sha256: String = if named {
                <sha2::Sha256 as sha2::Digest>::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
            } else {
                String::new()
            };
            let slowed = self.slow_model.as_deref().is_none_or(|m| m == sha256);
            let strike = if self.abort_on_model.as_deref() == Some(sha256.as_str()) {
                Some(Strike::Abort(sha256))
            } else if self.panic_on_model.as_deref() == Some(sha256.as_str()) {
                Some(Strike::Panic(sha256))
            } else {
                None
            };
            Armed { slow_job: if slowed { self.slow_job } else { Duration::ZERO }, strike }
        }
        #[cfg(not(feature = "fault-injection"))]
        Armed::default()
    }
}

impl Armed {
    /// Panics or aborts the process, if this job's model is the one named.
    pub(crate) fn strike(&self) {
        #[cfg(feature = "fault-injection")]
        match &self.strike {
            Some(Strike::Abort(model)) => {
                tracing::error!(%model, "fault injection: aborting the process");
                std::process::abort();
            }
            Some(Strike::Panic(model)) => panic!("fault injection: the analysis of {model} panics"),
            None => {}
        }
    }
}
