//! The REST API's read side: pure functions of [`ClusterState`] that build Flink's JSON.
//!
//! Field names and value spellings are Flink 2.3's (`flink/rest-examples/` in the shared notes):
//! times are milliseconds since the Unix epoch (`-1` for "not yet"), states are Flink's
//! upper-case names, counts per state list every state (zeros included). A view of a job that
//! does not exist is `None`, which the handler turns into a 404.
//!
//! What weir cannot know is left out or approximated, as documented in `docs/rest.md`: a job
//! that has ended has no JobMaster any more, so its detail shows no vertices and an empty plan;
//! a vertex's start time is the job's first RUNNING (weir keeps no per-attempt timestamps).

use super::ClusterState;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use weir_core::dataflow::task::TaskMetrics;
use weir_core::ids::{AttemptNumber, JobId, ResourceId, SubtaskIndex, VertexIndex};
use weir_core::job_master::JobMaster;
use weir_core::plan::{JobPlan, JobVertex};
use weir_core::protocol::{ExecutionState, JobStatus, JobSummary};
use weir_core::resource_manager::{SlotState, TaskManagerView};
use weir_core::time::Time;

/// weir's version, reported where Flink reports its own.
pub const WEIR_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The revision reported as `flink-commit` / `flink-revision`.
const WEIR_REVISION: &str = concat!("weir ", env!("CARGO_PKG_VERSION"));
/// Flink's value for "no time yet".
pub(crate) const NO_TIME: i64 = -1;

/// Milliseconds since the Unix epoch of core time `time`.
pub fn epoch_ms(state: &ClusterState<'_>, time: Time) -> i64 {
    (state.epoch_ms_at_zero + time.as_millis()) as i64
}

/// `GET /overview`: TaskManagers, slots and jobs by outcome.
pub fn overview(state: &ClusterState<'_>) -> Value {
    let resource_manager = state.job_manager.resource_manager();
    let jobs = state.job_manager.dispatcher().jobs();
    let count = |wanted: fn(JobStatus) -> bool| jobs.values().filter(|job| wanted(job.status)).count();
    json!({
        "taskmanagers": resource_manager.task_managers().len(),
        "slots-total": resource_manager.slots_total(),
        "slots-available": resource_manager.slots_free(),
        "jobs-running": count(|status| !status.is_terminal()),
        "jobs-finished": count(|status| status == JobStatus::Finished),
        "jobs-cancelled": count(|status| status == JobStatus::Canceled),
        "jobs-failed": count(|status| status == JobStatus::Failed),
        "flink-version": WEIR_VERSION,
        "flink-commit": WEIR_REVISION,
    })
}

/// `GET /config`: the web UI's settings (no state needed).
pub fn config() -> Value {
    json!({
        "refresh-interval": 3000,
        "timezone-name": "Coordinated Universal Time",
        "timezone-offset": 0,
        "flink-version": WEIR_VERSION,
        "flink-revision": WEIR_REVISION,
        "features": {"web-submit": false, "web-cancel": true, "web-rescale": false, "web-history": false},
    })
}

/// `GET /jobs`: every job's id and status.
pub fn jobs(state: &ClusterState<'_>) -> Value {
    let jobs: Vec<Value> = state
        .job_manager
        .dispatcher()
        .jobs()
        .values()
        .map(|job| json!({"id": job.job_id.to_string(), "status": job.status.name()}))
        .collect();
    json!({ "jobs": jobs })
}

/// `GET /jobs/overview`: one row per job, newest first.
pub fn jobs_overview(state: &ClusterState<'_>) -> Value {
    let mut jobs: Vec<&JobSummary> = state.job_manager.dispatcher().jobs().values().collect();
    jobs.sort_by_key(|job| (std::cmp::Reverse(job.start_time), job.job_id));
    let rows: Vec<Value> = jobs.into_iter().map(|job| job_row(state, job)).collect();
    json!({ "jobs": rows })
}

/// `GET /jobs/:id/status`: `{"status": "RUNNING"}`.
pub fn job_status(state: &ClusterState<'_>, job_id: JobId) -> Option<Value> {
    let job = state.job_manager.dispatcher().jobs().get(&job_id)?;
    Some(json!({ "status": job.status.name() }))
}

/// `GET /jobs/:id/plan`: the plan document `weir info --json` prints (Flink's `{"plan": …}`
/// plus weir's slot fields); an ended job's plan has no nodes.
pub fn job_plan(state: &ClusterState<'_>, job_id: JobId) -> Option<Value> {
    let job = state.job_manager.dispatcher().jobs().get(&job_id)?;
    Some(match state.job_manager.job_master(job_id) {
        Some(job_master) => plan_document(job_master.plan(), job_id),
        None => json!({ "plan": empty_plan(job) }),
    })
}

/// `GET /jobs/:id`: the job with its vertices, counts per state and plan.
pub fn job_detail(state: &ClusterState<'_>, job_id: JobId) -> Option<Value> {
    let job = state.job_manager.dispatcher().jobs().get(&job_id)?;
    let job_master = state.job_manager.job_master(job_id);
    let (start, end, duration) = times(state, job);
    let counts = task_counts(job, job_master);
    let vertices: Vec<Value> = match job_master {
        Some(job_master) => {
            job_master.plan().vertices.iter().map(|vertex| vertex_detail(state, job_master, vertex)).collect()
        }
        None => Vec::new(),
    };
    let plan = match job_master {
        Some(job_master) => plan_document(job_master.plan(), job_id)["plan"].take(),
        None => empty_plan(job),
    };
    let mut detail = json!({
        "jid": job_id.to_string(),
        "name": job.name,
        "isStoppable": false,
        "state": job.status.name(),
        "job-type": "STREAMING",
        "schedulerType": "Default",
        "start-time": start,
        "end-time": end,
        "duration": duration,
        "maxParallelism": -1,
        "now": epoch_ms(state, state.now),
        "timestamps": status_timestamps(state, job, job_master),
        "vertices": vertices,
        "status-counts": upper_counts(&counts),
        "plan": plan,
        "pending-operators": 0,
    });
    if let (Some(failure), Some(object)) = (&job.failure, detail.as_object_mut()) {
        object.insert("failure".to_string(), json!(failure)); // weir's: the root cause
    }
    Some(detail)
}

/// `GET /taskmanagers`: every registered TaskManager with its slots.
pub fn task_managers(state: &ClusterState<'_>) -> Value {
    let mut assigned: BTreeMap<ResourceId, u32> = BTreeMap::new();
    for job_master in state.job_manager.job_masters().values() {
        for execution in job_master.executions().filter(|execution| !execution.state.is_terminal()) {
            if let Some(location) = execution.location {
                *assigned.entry(location.resource_id).or_default() += 1;
            }
        }
    }
    let rows: Vec<Value> = state
        .job_manager
        .resource_manager()
        .task_managers()
        .iter()
        .map(|task_manager| task_manager_row_with(state, task_manager, &assigned))
        .collect();
    json!({ "taskmanagers": rows })
}

/// One `/taskmanagers` row.
pub(crate) fn task_manager_row(state: &ClusterState<'_>, task_manager: &TaskManagerView) -> Value {
    let mut assigned: BTreeMap<ResourceId, u32> = BTreeMap::new();
    for job_master in state.job_manager.job_masters().values() {
        for execution in job_master.executions().filter(|execution| !execution.state.is_terminal()) {
            if execution.location.is_some_and(|location| location.resource_id == task_manager.resource_id) {
                *assigned.entry(task_manager.resource_id).or_default() += 1;
            }
        }
    }
    task_manager_row_with(state, task_manager, &assigned)
}

fn task_manager_row_with(
    state: &ClusterState<'_>,
    task_manager: &TaskManagerView,
    assigned: &BTreeMap<ResourceId, u32>,
) -> Value {
    let address = state.task_manager_addresses.get(&task_manager.resource_id);
    // The data port is where the TaskManager accepts data channels (from its slot offers), not
    // its RPC port.
    let data_port = state
        .task_manager_data_addresses
        .get(&task_manager.resource_id)
        .and_then(|address| address.rsplit_once(':')?.1.parse::<u16>().ok());
    let slots = task_manager.slots.len() as u64;
    let free = task_manager.slots.iter().filter(|slot| **slot == SlotState::Free).count() as u64;
    let managed_mb = task_manager.resources.managed_memory_bytes / (1024 * 1024);
    json!({
        "id": task_manager.resource_id.to_string(),
        "path": address.cloned().unwrap_or_else(|| "embedded".to_string()),
        "dataPort": data_port.map_or(-1, i64::from),
        "jmxPort": -1,
        "timeSinceLastHeartbeat": epoch_ms(state, task_manager.last_heartbeat_at),
        "slotsNumber": slots,
        "freeSlots": free,
        "assignedTasks": assigned.get(&task_manager.resource_id).copied().unwrap_or(0),
        "totalResource": {"managedMemory": managed_mb},
        "freeResource": {"managedMemory": managed_mb * free / slots.max(1)},
    })
}

fn job_row(state: &ClusterState<'_>, job: &JobSummary) -> Value {
    let job_master = state.job_manager.job_master(job.job_id);
    let (start, end, duration) = times(state, job);
    let last_modification = match (job_master, job.end_time) {
        (_, Some(end_time)) => epoch_ms(state, end_time),
        (Some(job_master), None) => {
            let latest = job_master.status_timestamps().into_values().max().unwrap_or(job.start_time);
            epoch_ms(state, latest)
        }
        (None, None) => start,
    };
    let counts = task_counts(job, job_master);
    let mut tasks = Map::new();
    for state in ExecutionState::ALL {
        let count = counts.get(&state).copied().unwrap_or(0);
        tasks.insert(state.name().to_lowercase(), json!(count));
    }
    tasks.insert("total".to_string(), json!(counts.values().sum::<u32>()));
    json!({
        "jid": job.job_id.to_string(),
        "name": job.name,
        "jobType": "STREAMING",
        "schedulerType": "Default",
        "start-time": start,
        "end-time": end,
        "duration": duration,
        "state": job.status.name(),
        "last-modification": last_modification,
        "tasks": tasks,
        "pending-operators": 0,
    })
}

/// Start, end (`-1` while running) and duration (until now while running), in ms.
fn times(state: &ClusterState<'_>, job: &JobSummary) -> (i64, i64, i64) {
    let start = epoch_ms(state, job.start_time);
    let end = job.end_time.map_or(NO_TIME, |end| epoch_ms(state, end));
    let until = if end == NO_TIME { epoch_ms(state, state.now) } else { end };
    (start, end, (until - start).max(0))
}

/// The live counts while a JobMaster runs the job, else the Dispatcher's last report.
fn task_counts(job: &JobSummary, job_master: Option<&JobMaster>) -> BTreeMap<ExecutionState, u32> {
    job_master.map_or_else(|| job.tasks.clone(), |job_master| job_master.task_counts())
}

fn upper_counts(counts: &BTreeMap<ExecutionState, u32>) -> Value {
    let map: Map<String, Value> = ExecutionState::ALL
        .iter()
        .map(|state| (state.name().to_string(), json!(counts.get(state).copied().unwrap_or(0))))
        .collect();
    Value::Object(map)
}

/// Every status with the time the job first entered it, 0 for never (as Flink).
fn status_timestamps(state: &ClusterState<'_>, job: &JobSummary, job_master: Option<&JobMaster>) -> Value {
    let entered: BTreeMap<JobStatus, Time> = match job_master {
        Some(job_master) => job_master.status_timestamps(),
        None => {
            let mut known = BTreeMap::from([(JobStatus::Initializing, job.start_time)]);
            if let Some(end_time) = job.end_time {
                known.insert(job.status, end_time);
            }
            known
        }
    };
    let map: Map<String, Value> = JobStatus::ALL
        .iter()
        .map(|status| (status.name().to_string(), json!(entered.get(status).map_or(0, |at| epoch_ms(state, *at)))))
        .collect();
    Value::Object(map)
}

fn vertex_detail(state: &ClusterState<'_>, job_master: &JobMaster, vertex: &JobVertex) -> Value {
    let counts = job_master.vertex_task_counts(vertex.index).unwrap_or_default();
    let status = vertex_status(&counts, vertex.parallelism);
    let started = job_master.status_timestamps().get(&JobStatus::Running).copied();
    let start = match (status, started) {
        (ExecutionState::Created, _) | (_, None) => NO_TIME,
        (_, Some(at)) => epoch_ms(state, at),
    };
    let duration = if start == NO_TIME { NO_TIME } else { (epoch_ms(state, state.now) - start).max(0) };
    json!({
        "id": vertex.id.to_string(),
        "name": vertex.name,
        "maxParallelism": vertex.max_parallelism,
        "parallelism": vertex.parallelism,
        "status": status.name(),
        "start-time": start,
        "end-time": NO_TIME,
        "duration": duration,
        "tasks": upper_counts(&counts),
        "metrics": vertex_metrics(state, job_master.job_id(), vertex),
    })
}

/// Flink's aggregate state of a vertex's subtasks: a failure, a cancellation or initialization
/// wins; running if any runs or only some finished; FINISHED when all did; else CREATED.
fn vertex_status(counts: &BTreeMap<ExecutionState, u32>, parallelism: u32) -> ExecutionState {
    use ExecutionState::*;
    let count = |state: ExecutionState| counts.get(&state).copied().unwrap_or(0);
    for state in [Failed, Canceling, Canceled, Initializing, Running] {
        if count(state) > 0 {
            return state;
        }
    }
    match count(Finished) {
        0 => Created,
        finished if finished == parallelism => Finished,
        _ => Running,
    }
}

/// The newest reported attempt of every subtask of `vertex`, by subtask.
pub(crate) fn newest_metrics(
    state: &ClusterState<'_>,
    job_id: JobId,
    vertex: VertexIndex,
) -> BTreeMap<SubtaskIndex, (AttemptNumber, TaskMetrics)> {
    let mut newest: BTreeMap<SubtaskIndex, (AttemptNumber, TaskMetrics)> = BTreeMap::new();
    let of_vertex = state.task_metrics.iter().filter(|(id, _)| id.job == job_id && id.vertex == vertex);
    for (execution, metrics) in of_vertex {
        let entry = newest.entry(execution.subtask).or_insert((execution.attempt, *metrics));
        if execution.attempt >= entry.0 {
            *entry = (execution.attempt, *metrics);
        }
    }
    newest
}

/// Sums of the newest attempt of every subtask of `vertex`; `*-complete` when every subtask
/// has reported.
fn vertex_metrics(state: &ClusterState<'_>, job_id: JobId, vertex: &JobVertex) -> Value {
    let newest = newest_metrics(state, job_id, vertex.index);
    let mut sum = TaskMetrics::default();
    for (_, metrics) in newest.values() {
        sum.records_in += metrics.records_in;
        sum.records_out += metrics.records_out;
        sum.bytes_in += metrics.bytes_in;
        sum.bytes_out += metrics.bytes_out;
        sum.busy = weir_core::time::Duration(sum.busy.0 + metrics.busy.0);
        sum.idle = weir_core::time::Duration(sum.idle.0 + metrics.idle.0);
        sum.backpressured = weir_core::time::Duration(sum.backpressured.0 + metrics.backpressured.0);
    }
    metrics_json(&sum, newest.len() as u32 == vertex.parallelism)
}

/// Flink's `metrics` object of a vertex or subtask.
pub(crate) fn metrics_json(metrics: &TaskMetrics, complete: bool) -> Value {
    json!({
        "read-bytes": metrics.bytes_in,
        "read-bytes-complete": complete,
        "write-bytes": metrics.bytes_out,
        "write-bytes-complete": complete,
        "read-records": metrics.records_in,
        "read-records-complete": complete,
        "write-records": metrics.records_out,
        "write-records-complete": complete,
        "accumulated-backpressured-time": metrics.backpressured.as_millis(),
        "accumulated-idle-time": metrics.idle.as_millis(),
        "accumulated-busy-time": metrics.busy.as_micros() as f64 / 1000.0,
    })
}

fn plan_document(plan: &JobPlan, job_id: JobId) -> Value {
    serde_json::to_value(plan.to_document(job_id)).unwrap_or_else(|error| json!({"errors": [error.to_string()]}))
}

fn empty_plan(job: &JobSummary) -> Value {
    json!({"jid": job.job_id.to_string(), "name": job.name, "type": "STREAMING", "nodes": []})
}

mod checkpoints;
mod vertices;

pub use checkpoints::{checkpoint_config, checkpoints, exceptions, job_config_view as job_config};
pub use vertices::{job_manager_config, task_manager, vertex};

#[cfg(test)]
mod tests;
