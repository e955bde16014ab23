//! `GET /jobs/:id/vertices/:vid`, `/taskmanagers/:id` and `/jobmanager/config` in Flink 2.3's
//! shapes.
//!
//! weir keeps no per-attempt timestamps: a subtask's start is the job's first RUNNING (as the
//! vertex's in `/jobs/:id`), and Flink's `status-duration` is left out (`docs/rest.md`).

use super::{NO_TIME, epoch_ms, metrics_json, newest_metrics, task_manager_row};
use crate::rest::ClusterState;
use serde_json::{Map, Value, json};
use weir_core::dataflow::task::TaskMetrics;
use weir_core::ids::{JobId, ResourceId, SubtaskIndex, VertexId};
use weir_core::protocol::{ExecutionState, JobStatus};
use weir_core::resource_manager::SlotState;

/// `GET /jobs/:id/vertices/:vid`: the vertex's subtasks; `None` when the job or vertex is not
/// known (an ended job's vertices are gone with its JobMaster).
pub fn vertex(state: &ClusterState<'_>, job_id: JobId, vertex_id: VertexId) -> Option<Value> {
    let job_master = state.job_manager.job_master(job_id)?;
    let vertex = job_master.plan().vertices.iter().find(|vertex| vertex.id == vertex_id)?;
    let metrics = newest_metrics(state, job_id, vertex.index);
    let started = job_master.status_timestamps().get(&JobStatus::Running).copied();
    let now = epoch_ms(state, state.now);
    let mut per_subtask = Vec::new();
    let subtasks: Vec<Value> = (0..vertex.parallelism)
        .filter_map(|subtask| {
            let execution = job_master.execution(vertex.index, SubtaskIndex(subtask))?;
            let start = match (execution.state, started) {
                (ExecutionState::Created | ExecutionState::Scheduled, _) | (_, None) => NO_TIME,
                (_, Some(at)) => epoch_ms(state, at),
            };
            let reported = metrics.get(&SubtaskIndex(subtask)).map(|(_, metrics)| *metrics);
            per_subtask.push(reported.unwrap_or_default());
            let resource_id = execution.location.map(|location| location.resource_id);
            let endpoint = resource_id.map(|resource_id| host_of(state, resource_id));
            Some(json!({
                "subtask": subtask,
                "status": execution.state.name(),
                "attempt": execution.id.attempt.0,
                "endpoint": endpoint,
                "start-time": start,
                "end-time": NO_TIME,
                "duration": if start == NO_TIME { NO_TIME } else { (now - start).max(0) },
                "metrics": metrics_json(&reported.unwrap_or_default(), reported.is_some()),
                "taskmanager-id": resource_id.map(|resource_id| resource_id.to_string()),
                "start_time": start,
            }))
        })
        .collect();
    Some(json!({
        "id": vertex.id.to_string(),
        "name": vertex.name,
        "parallelism": vertex.parallelism,
        "maxParallelism": vertex.max_parallelism,
        "now": now,
        "subtasks": subtasks,
        "aggregated": { "metrics": aggregated(&per_subtask) },
    }))
}

/// The TaskManager's RPC address, or `embedded` in `weir local`.
fn host_of(state: &ClusterState<'_>, resource_id: ResourceId) -> String {
    state.task_manager_addresses.get(&resource_id).cloned().unwrap_or_else(|| "embedded".to_string())
}

/// A metric's name and how to read it from a subtask's numbers.
type Series = (&'static str, fn(&TaskMetrics) -> u64);

/// Flink's `aggregated.metrics`: min, max, avg, sum and percentiles over the subtasks.
fn aggregated(subtasks: &[TaskMetrics]) -> Value {
    let series: [Series; 7] = [
        ("read-bytes", |metrics| metrics.bytes_in),
        ("write-bytes", |metrics| metrics.bytes_out),
        ("read-records", |metrics| metrics.records_in),
        ("write-records", |metrics| metrics.records_out),
        ("accumulated-backpressured-time", |metrics| metrics.backpressured.as_millis()),
        ("accumulated-idle-time", |metrics| metrics.idle.as_millis()),
        ("accumulated-busy-time", |metrics| metrics.busy.as_millis()),
    ];
    let mut out = Map::new();
    for (name, read) in series {
        let mut values: Vec<u64> = subtasks.iter().map(read).collect();
        values.sort_unstable();
        let sum: u64 = values.iter().sum();
        let at = |fraction: f64| -> u64 {
            if values.is_empty() {
                return 0;
            }
            let index = ((values.len() - 1) as f64 * fraction).round() as usize;
            values[index.min(values.len() - 1)]
        };
        out.insert(
            name.to_string(),
            json!({
                "min": values.first().copied().unwrap_or(0),
                "max": values.last().copied().unwrap_or(0),
                "avg": if values.is_empty() { 0 } else { sum / values.len() as u64 },
                "sum": sum,
                "median": at(0.5),
                "p25": at(0.25),
                "p75": at(0.75),
                "p95": at(0.95),
            }),
        );
    }
    Value::Object(out)
}

/// `GET /taskmanagers/:id`: the `/taskmanagers` row plus the slots and what holds them.
pub fn task_manager(state: &ClusterState<'_>, resource_id: ResourceId) -> Option<Value> {
    let resource_manager = state.job_manager.resource_manager();
    let task_manager = resource_manager.task_manager(resource_id)?;
    let mut row = task_manager_row(state, &task_manager);
    let slots: Vec<Value> = task_manager
        .slots
        .iter()
        .enumerate()
        .filter_map(|(index, slot)| match slot {
            SlotState::Free => None,
            SlotState::Pending { allocation, job_id } | SlotState::Allocated { allocation, job_id } => Some(json!({
                "slotIndex": index,
                "jobId": job_id.to_string(),
                "allocationId": allocation.to_string(),
                "pending": matches!(slot, SlotState::Pending { .. }),
                "resource": { "managedMemory": task_manager.resources.managed_memory_bytes
                    / u64::from(task_manager.resources.slots.max(1)) / (1024 * 1024) },
            })),
        })
        .collect();
    if let Some(object) = row.as_object_mut() {
        object.insert("allocatedSlots".to_string(), json!(slots));
    }
    Some(row)
}

/// `GET /jobmanager/config`: every key in effect as `{"key", "value"}` (the token hidden).
pub fn job_manager_config(state: &ClusterState<'_>) -> Value {
    let entries: Vec<Value> = state
        .job_manager
        .config()
        .entries()
        .into_iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    Value::Array(entries)
}
