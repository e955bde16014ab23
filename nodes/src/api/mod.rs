//! Running jobs built in Rust, from a program that links weir: Flink's `LocalEnvironment`,
//! `RemoteEnvironment` and application mode.
//!
//! A program builds its job with [`weir_core::job::builder::StreamEnvironment`], registers the
//! Rust operators the job names in an [`Operators`] registry, and runs it:
//!
//! - [`LocalEnvironment::execute`]: on an embedded cluster in this process (the one `weir local`
//!   runs), returning when the job ends;
//! - [`RemoteEnvironment`]: submitted to a running cluster's REST API as a job graph (built-in
//!   operators only: a cluster of `weir` processes has no Rust operators, and refuses a job
//!   that uses some);
//! - [`run_application`]: the program becomes its own application cluster, a JobManager for
//!   this one job and TaskManager processes that are the same program started again with the
//!   same arguments, so they build the same operators. For that, `main` hands control to
//!   [`main`] first, which runs the process as a TaskManager when [`TASK_MANAGER_ENV`] says it
//!   is one.
//!
//! A job that names a Rust operator nobody registered is refused before it starts here; on a
//! TaskManager that lacks it (a different build), its tasks fail with core's message naming
//! the operator.

mod application;
mod local;
mod remote;

pub use crate::runtime::operators::{OperatorFactory, Operators};
pub(crate) use application::run_application_cluster;
pub use application::{ApplicationOptions, TASK_MANAGER_ENV, run_application};
pub use local::LocalEnvironment;
pub use remote::RemoteEnvironment;

use std::process::ExitCode;
use weir_core::ids::JobId;
use weir_core::job::{JobGraph, OperatorKind};
use weir_core::protocol::JobStatus;

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOutcome {
    /// The job.
    pub job_id: JobId,
    /// Its final status (FINISHED, FAILED, CANCELED; SUSPENDED on a cluster that lost its lead).
    pub status: JobStatus,
    /// The root cause, when it failed and the cluster said.
    pub failure: Option<String>,
    /// Checkpoints completed, where the driver counts them (the embedded cluster).
    pub checkpoints: Option<u64>,
    /// Restarts after failures, where the driver counts them (the embedded cluster).
    pub restarts: Option<u64>,
}

impl JobOutcome {
    /// Whether the job FINISHED.
    pub fn is_finished(&self) -> bool {
        self.status == JobStatus::Finished
    }
}

/// The entry point of a program that runs jobs with Rust operators: call it first in `main`.
///
/// In a TaskManager that [`run_application`] started (the same program, with
/// [`TASK_MANAGER_ENV`] set), it serves as that TaskManager with `operators` until it is
/// stopped, and never calls `program`. Otherwise it runs `program`, which builds and runs the
/// job, and exits 0 when the job FINISHED and 1 otherwise, printing why.
pub fn main(operators: Operators, program: impl FnOnce(&Operators) -> Result<JobOutcome, String>) -> ExitCode {
    if let Some(launch) = std::env::var_os(TASK_MANAGER_ENV) {
        return match application::serve_task_manager(&launch, operators) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: TaskManager: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match program(&operators) {
        Ok(outcome) if outcome.is_finished() => ExitCode::SUCCESS,
        Ok(outcome) => {
            let failure = outcome.failure.as_deref().unwrap_or("no failure recorded");
            eprintln!("error: job {} ended {}: {failure}", outcome.job_id, outcome.status);
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Refuses a job that names Rust operators `operators` lacks, in core's words, one line each.
fn check_registered(graph: &JobGraph, operators: &Operators) -> Result<(), String> {
    let missing: Vec<String> = (graph.operators.iter())
        .filter_map(|operator| match &operator.kind {
            OperatorKind::Custom { name, .. } if !operators.contains(name) => {
                Some(format!("operator `{}`: no Rust operator is registered as `{name}`", operator.uid))
            }
            _ => None,
        })
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(missing.join("\n")) }
}
