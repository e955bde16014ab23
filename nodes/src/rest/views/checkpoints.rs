//! `GET /jobs/:id/checkpoints`, `/jobs/:id/checkpoints/config`, `/jobs/:id/config` and
//! `/jobs/:id/exceptions`: the JobMaster's checkpoint statistics, settings and exception history
//! in Flink 2.3's shapes.
//!
//! A job that has ended has no JobMaster: its checkpoint statistics are all zero and its
//! exception history holds at most the Dispatcher's root cause (documented in `docs/rest.md`).

use super::{NO_TIME, epoch_ms};
use crate::rest::ClusterState;
use serde_json::{Value, json};
use weir_core::checkpoint::stats::{CheckpointStats, CheckpointStatsEntry, MinMaxAvg};
use weir_core::config::{CheckpointConfig, CheckpointRetention, Config, StateBackendKind};
use weir_core::ids::JobId;

/// Flink's interval of a job without periodic checkpoints (`Long.MAX_VALUE`).
const NO_INTERVAL: i64 = i64::MAX;

/// `GET /jobs/:id/checkpoints`.
pub fn checkpoints(state: &ClusterState<'_>, job_id: JobId) -> Option<Value> {
    state.job_manager.dispatcher().jobs().get(&job_id)?;
    let empty = CheckpointStats::default();
    let stats = state
        .job_manager
        .job_master(job_id)
        .and_then(|job_master| job_master.checkpoint_coordinator())
        .map_or(&empty, |coordinator| coordinator.stats());
    let entry = |entry: &CheckpointStatsEntry| checkpoint_entry(state, entry);
    let restored = stats.latest_restored.as_ref().map(|restored| {
        json!({
            "id": restored.checkpoint.0,
            "restore_timestamp": epoch_ms(state, restored.restored_at),
            "is_savepoint": restored.is_savepoint,
            "external_path": restored.location,
        })
    });
    let summary = &stats.summary;
    Some(json!({
        "counts": {
            "restored": stats.counts.restored,
            "total": stats.counts.triggered,
            "in_progress": stats.counts.in_progress,
            "completed": stats.counts.completed,
            "failed": stats.counts.failed,
        },
        "summary": {
            "checkpointed_size": min_max_avg(summary.state_size_bytes, 1),
            "state_size": min_max_avg(summary.state_size_bytes, 1),
            "end_to_end_duration": min_max_avg(summary.end_to_end_duration_micros, 1000),
            "alignment_buffered": min_max_avg(summary.processed_bytes, 1),
            "processed_data": min_max_avg(summary.processed_bytes, 1),
            "persisted_data": min_max_avg(summary.persisted_bytes, 1),
        },
        "latest": {
            "completed": stats.latest_completed.as_ref().map(entry),
            "savepoint": stats.latest_savepoint.as_ref().map(entry),
            "failed": stats.latest_failed.as_ref().map(entry),
            "restored": restored,
        },
        "history": stats.history.iter().map(entry).collect::<Vec<_>>(),
    }))
}

/// Flink's summary of one quantity. weir keeps min, max and average only, so every percentile
/// is reported as the average (documented); `divisor` turns the kept unit into the shown one.
fn min_max_avg(value: MinMaxAvg, divisor: u64) -> Value {
    let avg = value.avg() / divisor;
    let percentile = avg as f64;
    json!({
        "min": value.min / divisor, "max": value.max / divisor, "avg": avg,
        "p50": percentile, "p90": percentile, "p95": percentile, "p99": percentile, "p999": percentile,
    })
}

fn checkpoint_entry(state: &ClusterState<'_>, entry: &CheckpointStatsEntry) -> Value {
    let class_name = match entry.status.as_str() {
        "COMPLETED" => "completed",
        "FAILED" => "failed",
        _ => "in_progress",
    };
    let mut value = json!({
        "className": class_name,
        "id": entry.checkpoint.0,
        "status": entry.status.as_str(),
        "is_savepoint": entry.is_savepoint(),
        "savepointFormat": if entry.is_savepoint() { json!("CANONICAL") } else { Value::Null },
        "trigger_timestamp": epoch_ms(state, entry.triggered_at),
        "latest_ack_timestamp": entry.latest_ack_at.map_or(NO_TIME, |at| epoch_ms(state, at)),
        "checkpointed_size": entry.state_size_bytes,
        "state_size": entry.state_size_bytes,
        "end_to_end_duration": entry.end_to_end_duration.as_millis(),
        "alignment_buffered": entry.processed_bytes,
        "processed_data": entry.processed_bytes,
        "persisted_data": entry.persisted_bytes,
        "num_subtasks": entry.total_subtasks,
        "num_acknowledged_subtasks": entry.acknowledged_subtasks,
        "checkpoint_type": checkpoint_type(entry),
        "tasks": {},
        "external_path": entry.location,
        "discarded": entry.discarded,
        "alignment_duration_max": entry.alignment_duration_max.as_millis(), // weir's
    });
    if let Some(object) = value.as_object_mut() {
        if let Some(failed_at) = entry.failed_at {
            object.insert("failure_timestamp".to_string(), json!(epoch_ms(state, failed_at)));
        }
        if let Some(failure) = &entry.failure {
            object.insert("failure_message".to_string(), json!(failure));
        }
    }
    value
}

fn checkpoint_type(entry: &CheckpointStatsEntry) -> &'static str {
    match entry.kind {
        weir_core::dataflow::BarrierKind::Checkpoint => "CHECKPOINT",
        weir_core::dataflow::BarrierKind::Savepoint { stop: false, .. } => "SAVEPOINT",
        weir_core::dataflow::BarrierKind::Savepoint { stop: true, .. } => "SYNC_SAVEPOINT",
    }
}

/// The configuration a job runs with: its JobMaster's (running or archived), else the cluster's.
fn job_config<'a>(state: &'a ClusterState<'_>, job_id: JobId) -> &'a Config {
    match state.job_manager.job_master(job_id) {
        Some(job_master) => job_master.config(),
        None => state.job_manager.config(),
    }
}

/// `GET /jobs/:id/checkpoints/config`.
pub fn checkpoint_config(state: &ClusterState<'_>, job_id: JobId) -> Option<Value> {
    state.job_manager.dispatcher().jobs().get(&job_id)?;
    let job = job_config(state, job_id);
    let config: &CheckpointConfig = &job.checkpoint;
    let retention = config.retention;
    let state_backend = match job.state_backend.kind {
        StateBackendKind::Heap => "HashMapStateBackend",
        StateBackendKind::RocksDb => "EmbeddedRocksDBStateBackend",
    };
    Some(json!({
        "mode": config.mode.as_str().to_lowercase(),
        "interval": config.interval.map_or(NO_INTERVAL, |interval| interval.as_millis() as i64),
        "timeout": config.timeout.as_millis(),
        "min_pause": config.min_pause.as_millis(),
        "max_concurrent": config.max_concurrent,
        "externalization": {
            "enabled": retention != CheckpointRetention::NoExternalizedCheckpoints,
            "delete_on_cancellation": retention == CheckpointRetention::DeleteOnCancellation,
        },
        "state_backend": state_backend,
        "checkpoint_storage": "FileSystemCheckpointStorage",
        "unaligned_checkpoints": config.unaligned,
        "tolerable_failed_checkpoints": config.tolerable_failed,
        "aligned_checkpoint_timeout": config.aligned_checkpoint_timeout.as_millis(),
        "checkpoints_after_tasks_finish": true,
        "state_changelog_enabled": false,
        "changelog_storage": "memory",
    }))
}

/// `GET /jobs/:id/config`: Flink's execution config, every key in effect as `user-config`.
pub fn job_config_view(state: &ClusterState<'_>, job_id: JobId) -> Option<Value> {
    let job = state.job_manager.dispatcher().jobs().get(&job_id)?;
    let config = job_config(state, job_id);
    let entries = config.entries();
    let value_of = |key: &str| entries.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone());
    let parallelism = state.job_manager.job_master(job_id).map_or(-1, |job_master| {
        job_master.plan().vertices.iter().map(|vertex| i64::from(vertex.parallelism)).max().unwrap_or(-1)
    });
    let user_config: serde_json::Map<String, Value> =
        entries.iter().map(|(key, value)| (key.clone(), json!(value))).collect();
    Some(json!({
        "jid": job_id.to_string(),
        "name": job.name,
        "execution-config": {
            "execution-mode": "PIPELINED",
            "restart-strategy": value_of("restart-strategy.type").unwrap_or_else(|| "none".to_string()),
            "job-parallelism": parallelism,
            "object-reuse-mode": false,
            "user-config": user_config,
        },
    }))
}

/// `GET /jobs/:id/exceptions`: Flink 2.x's `exceptionHistory`, newest first.
pub fn exceptions(state: &ClusterState<'_>, job_id: JobId) -> Option<Value> {
    let job = state.job_manager.dispatcher().jobs().get(&job_id)?;
    let entries: Vec<Value> = match state.job_manager.job_master(job_id) {
        Some(job_master) => job_master
            .exceptions()
            .map(|entry| {
                let endpoint = entry.location.and_then(|resource_id| state.task_manager_addresses.get(&resource_id));
                exception_entry(
                    &entry.exception,
                    (state.epoch_ms_at_zero + entry.timestamp_ms) as i64,
                    entry.task_name.as_deref(),
                    endpoint.map(String::as_str),
                    entry.location.map(|resource_id| resource_id.to_string()),
                )
            })
            .collect(),
        None => match (&job.failure, job.end_time) {
            (Some(failure), Some(end)) => vec![exception_entry(failure, epoch_ms(state, end), None, None, None)],
            _ => Vec::new(),
        },
    };
    Some(json!({ "exceptionHistory": { "entries": entries, "truncated": false } }))
}

fn exception_entry(
    text: &str,
    timestamp: i64,
    task_name: Option<&str>,
    endpoint: Option<&str>,
    task_manager_id: Option<String>,
) -> Value {
    let name = text.split(':').next().unwrap_or(text).trim();
    json!({
        "exceptionName": name,
        "stacktrace": text,
        "timestamp": timestamp,
        "taskName": task_name,
        "endpoint": endpoint,
        "taskManagerId": task_manager_id,
        "failureLabels": {},
        "concurrentExceptions": [],
    })
}
