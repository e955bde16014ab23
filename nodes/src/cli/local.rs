//! `weir local JOB`: run a job on an embedded cluster in this process.
//!
//! Every task runs in this process on the same step functions the TaskManagers run (see
//! `crate::local`); there is no JobManager, REST endpoint or checkpointing yet in this mode, so
//! the job runs once from start to end. The summary names where the results went.

use super::CliError;
use crate::settings::{self, ConfigArgs};
use std::path::Path;
use weir_core::ids::{Hex128, JobId, stable_hash128};
use weir_core::job::OperatorKind;
use weir_core::plan::{JobPlan, plan};

/// Plans the job, runs every task to the end, and prints progress and the result location.
pub fn run(path: &Path, parallelism: Option<u32>, config_args: &ConfigArgs) -> Result<(), CliError> {
    let job = settings::load_job(path)?;
    let mut config = settings::load_config(config_args, Some(&settings::job_config(&job)))?;
    if config.checkpoint.interval.take().is_some() {
        // Without a coordinator nothing would trigger them, and an exactly-once sink would wait
        // forever to commit; run the job once through instead, committing at end of input.
        eprintln!("note: weir local does not take checkpoints yet; file sinks commit at the end of the job");
    }
    let options = settings::plan_options(&config, parallelism);
    let plan = plan(&job, &options).map_err(|error| CliError::input(format!("{}: {error}", path.display())))?;
    let nonce = std::process::id().to_le_bytes();
    let job_id = JobId(Hex128(stable_hash128(&[b"local", plan.job.graph.name.as_bytes(), &nonce])));
    println!(
        "weir local: job {:?} ({job_id}): {} vertices, {} tasks",
        plan.job.graph.name,
        plan.vertices.len(),
        plan.subtask_count()
    );
    let outcome =
        crate::local::run(job_id, &plan, &config).map_err(|error| CliError::failed(format!("job failed: {error}")))?;
    let rate = outcome.source_records as f64 / outcome.seconds.max(1e-9);
    println!(
        "job {:?} FINISHED: {} records from the sources in {:.2} s ({:.1} M records/s)",
        plan.job.graph.name,
        outcome.source_records,
        outcome.seconds,
        rate / 1e6
    );
    for line in result_locations(&plan) {
        println!("results: {line}");
    }
    Ok(())
}

/// Where each sink of the job wrote.
fn result_locations(plan: &JobPlan) -> Vec<String> {
    plan.job
        .graph
        .operators
        .iter()
        .filter_map(|operator| match &operator.kind {
            OperatorKind::FileSink { path, .. } => {
                Some(format!("{} wrote committed part files to {path}", operator.uid))
            }
            OperatorKind::Print { .. } => Some(format!("{} printed to standard output", operator.uid)),
            OperatorKind::Discard => Some(format!("{} discarded its records", operator.uid)),
            _ => None,
        })
        .collect()
}
