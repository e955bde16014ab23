//! `weir local JOB`: run a job on an embedded cluster in this process.
//!
//! The cluster is the real thing without sockets (see `crate::runtime::cluster`): a JobManager
//! with its ResourceManager, Dispatcher and JobMaster, a TaskExecutor with as many slots as the
//! job needs, each task on its own thread. Checkpoints run when the job or the configuration
//! sets `execution.checkpointing.interval`, failed tasks restart under the restart strategy, and
//! exactly-once file sinks commit per checkpoint. Progress is printed once a second; the summary
//! names where the results went.
//!
//! The REST API (`docs/rest.md`) is served on `rest.bind-address`:`rest.port` while the job
//! runs, so `weir list`, `weir cancel` and `weir run` work against it; a busy port leaves it off
//! with a warning. The TaskExecutor has the job's slots, or `taskmanager.numberOfTaskSlots` if
//! that is more (room for jobs submitted over REST).

use super::CliError;
use crate::runtime::cluster::{LocalCluster, Progress};
use crate::settings::{self, ConfigArgs};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use weir_core::config::RawConfig;
use weir_core::dispatcher::prepare;
use weir_core::ids::VertexIndex;
use weir_core::job::OperatorKind;
use weir_core::plan::JobPlan;
use weir_core::protocol::JobStatus;

/// Runs the job to its end on an embedded cluster and prints progress and the result location.
pub fn run(path: &Path, parallelism: Option<u32>, config_args: &ConfigArgs) -> Result<(), CliError> {
    let job = settings::load_job(path)?;
    let raw = settings::load_raw_config(config_args)?;
    let overrides = overrides(config_args)?;
    let (plan, config) = prepare(&raw, job.graph.clone(), &overrides, parallelism)
        .map_err(|error| CliError::input(format!("{}: {error}", path.display())))?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let data_dir = std::env::temp_dir().join("weir-local");
    let slots = plan.required_slots.max(config.task_manager.slots).max(1);
    let mut cluster = LocalCluster::start(raw, slots, &data_dir).map_err(CliError::failed)?;
    match cluster.serve_rest(&config.rest.bind_address, config.rest.port) {
        Ok(address) => println!("REST API at http://{address}"),
        Err(error) => eprintln!("warning: {error}; the REST API is off"),
    }
    let started = Instant::now();
    let job_id = cluster.submit(job.graph.clone(), parallelism, overrides).map_err(CliError::failed)?;
    let checkpointing = match config.checkpoint.interval {
        Some(interval) => format!("checkpoints every {interval}"),
        None => "no checkpoints".to_string(),
    };
    println!(
        "weir local: job {:?} ({job_id}): {} vertices, {} tasks in {} slots, {checkpointing}",
        plan.job.graph.name,
        plan.vertices.len(),
        plan.subtask_count(),
        plan.required_slots
    );
    let mut on_progress = |progress: Progress| {
        let at = started.elapsed().as_secs_f64();
        match progress {
            Progress::Status(status) => println!("{at:6.1} s  job {status}"),
            Progress::CheckpointCompleted(checkpoint) => println!("{at:6.1} s  checkpoint {checkpoint} completed"),
            Progress::Restarting(cause) => println!("{at:6.1} s  restarting after: {cause}"),
        }
    };
    let mut every_second = |cluster: &LocalCluster| print_progress(&plan, cluster, job_id, started);
    let end = cluster.run_until_done(job_id, &mut on_progress, &mut every_second);
    let seconds = started.elapsed().as_secs_f64();
    let source_records = source_records(&plan, &cluster, job_id);
    println!(
        "job {:?} {}: {source_records} records from the sources in {seconds:.2} s ({:.1} M records/s), \
         {} checkpoints, {} restarts",
        plan.job.graph.name,
        end.status,
        source_records as f64 / seconds.max(1e-9) / 1e6,
        end.checkpoints,
        end.restarts
    );
    if end.status != JobStatus::Finished {
        let failure = end.failure.unwrap_or_else(|| "no failure recorded".to_string());
        return Err(CliError::failed(format!("job {}: {failure}", end.status)));
    }
    for line in result_locations(&plan) {
        println!("results: {line}");
    }
    Ok(())
}

/// The `-D` keys, applied above the job file's own table.
fn overrides(args: &ConfigArgs) -> Result<BTreeMap<String, String>, CliError> {
    let mut keys = BTreeMap::new();
    for text in &args.overrides {
        let (key, value) = RawConfig::parse_override(text).map_err(|error| CliError::input(error.to_string()))?;
        keys.insert(key, value);
    }
    Ok(keys)
}

fn source_records(plan: &JobPlan, cluster: &LocalCluster, job_id: weir_core::ids::JobId) -> u64 {
    let metrics = cluster.task_metrics(job_id);
    let sources = metrics.iter().filter(|(execution, _)| plan.vertex(execution.vertex).is_source);
    sources.map(|(_, metrics)| metrics.records_out).sum()
}

fn print_progress(plan: &JobPlan, cluster: &LocalCluster, job_id: weir_core::ids::JobId, started: Instant) {
    let mut per_vertex: BTreeMap<VertexIndex, (u64, u64)> = BTreeMap::new();
    for (execution, metrics) in cluster.task_metrics(job_id) {
        let entry = per_vertex.entry(execution.vertex).or_default();
        entry.0 += metrics.records_in;
        entry.1 += metrics.records_out;
    }
    let parts: Vec<String> = per_vertex
        .iter()
        .map(|(vertex, (records_in, records_out))| {
            format!("[{}] in {records_in} out {records_out}", plan.vertex(*vertex).name)
        })
        .collect();
    if !parts.is_empty() {
        println!("{:6.1} s  {}", started.elapsed().as_secs_f64(), parts.join("  "));
    }
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
