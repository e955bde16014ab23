//! What a run reports: the JSON of `weir sim run --json`.

use serde::Serialize;

/// The outcome of one seeded run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end, in ms.
    pub virtual_ms: u64,
    /// Wall-clock time of the run in ms (filled in by the caller: the simulator has no clock).
    pub wall_ms: u64,
    /// Fingerprint of every event in order, as 16 hex characters.
    pub trace_hash: String,
    /// Each job's outcome.
    pub jobs: Vec<JobOutcome>,
    /// Invariants broken, with the event that broke them.
    pub violations: Vec<Violation>,
    /// Expectations of the scenario that did not hold.
    pub unmet: Vec<String>,
    /// The faults that fired, with their times, for reading a failing run.
    pub faults: Vec<String>,
    /// The code's fault points reached in the run (scenarios with `buggify = true`): each site,
    /// whether the seed switched it on, and how often it fired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buggify: Vec<String>,
    /// The same faults with every random choice resolved, for replaying and shrinking.
    #[serde(skip)]
    pub fault_plan: Vec<crate::scenario::FaultSpec>,
    /// Every event processed, described, when the run was asked to log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
}

impl RunReport {
    /// Whether every invariant and expectation held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.unmet.is_empty()
    }
}

/// One job's end.
#[derive(Clone, Debug, Serialize)]
pub struct JobOutcome {
    /// The job's name.
    pub name: String,
    /// Its id, once accepted.
    pub job_id: Option<String>,
    /// Its last known status (`REJECTED` when never accepted).
    pub status: String,
    /// Its failure, if any.
    pub failure: Option<String>,
    /// Restarts decided by its restart strategy.
    pub restarts: u32,
    /// Checkpoints it completed.
    pub checkpoints: u32,
}

/// A broken invariant.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// The event number after which the check failed.
    pub event: u64,
    /// Virtual time in ms.
    pub time_ms: u64,
    /// What broke.
    pub message: String,
}
