//! Prometheus text exposition (format 0.0.4) of a daemon's numbers, served on `/metrics`.
//!
//! Names are `weir_…`; task series carry `job_id`, `vertex_id` and `subtask`, vertex series
//! `job_id` and `vertex_id`. Busy, backpressured and idle time per second are Flink's
//! `busyTimeMsPerSecond` and siblings, taken over the task attempt's life (weir keeps no moving
//! window): each is the share of that time in ms per second.

use super::ClusterState;
use super::views::newest_metrics;
use std::collections::BTreeMap;
use std::fmt::Write;
use weir_core::dataflow::task::TaskMetrics;
use weir_core::ids::{JobId, VertexId, VertexIndex};
use weir_core::protocol::ExecutionId;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Samples grouped by metric, each metric once with its HELP and TYPE (as the format requires).
#[derive(Default)]
pub struct Exposition {
    metrics: BTreeMap<&'static str, (&'static str, &'static str, Vec<String>)>,
}

impl Exposition {
    /// Adds one sample of `name` (a gauge unless its name ends in `_total`).
    pub fn sample(&mut self, name: &'static str, help: &'static str, labels: &[(&str, String)], value: f64) {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let mut line = name.to_string();
        if !labels.is_empty() {
            let pairs: Vec<String> = labels.iter().map(|(key, value)| format!("{key}=\"{}\"", escape(value))).collect();
            let _ = write!(line, "{{{}}}", pairs.join(","));
        }
        let _ = write!(line, " {value}");
        self.metrics.entry(name).or_insert((help, kind, Vec::new())).2.push(line);
    }

    /// The text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (name, (help, kind, lines)) in &self.metrics {
            let _ = writeln!(text, "# HELP {name} {help}");
            let _ = writeln!(text, "# TYPE {name} {kind}");
            for line in lines {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The process's resident set size in bytes, from `/proc/self/statm` (None where there is none).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_size).ok().filter(|size| *size > 0).unwrap_or(4096))
}

/// Adds the process's memory.
pub fn process_metrics(out: &mut Exposition) {
    if let Some(bytes) = resident_bytes() {
        out.sample("weir_process_resident_memory_bytes", "Resident set size of the process.", &[], bytes as f64);
    }
}

/// Adds one task's (or a vertex's summed) numbers under `labels`.
pub fn task_metrics(out: &mut Exposition, prefix: Prefix, labels: &[(&str, String)], metrics: &TaskMetrics) {
    let (records_in, records_out, bytes_in, bytes_out, busy, backpressured, idle) = match prefix {
        Prefix::Task => (
            "weir_task_records_in_total",
            "weir_task_records_out_total",
            "weir_task_bytes_in_total",
            "weir_task_bytes_out_total",
            "weir_task_busy_time_ms_per_second",
            "weir_task_backpressured_time_ms_per_second",
            "weir_task_idle_time_ms_per_second",
        ),
        Prefix::Vertex => (
            "weir_vertex_records_in_total",
            "weir_vertex_records_out_total",
            "weir_vertex_bytes_in_total",
            "weir_vertex_bytes_out_total",
            "weir_vertex_busy_time_ms_per_second",
            "weir_vertex_backpressured_time_ms_per_second",
            "weir_vertex_idle_time_ms_per_second",
        ),
    };
    out.sample(records_in, "Records read from input channels.", labels, metrics.records_in as f64);
    out.sample(records_out, "Records sent on output edges.", labels, metrics.records_out as f64);
    out.sample(bytes_in, "Bytes of buffers read from input channels.", labels, metrics.bytes_in as f64);
    out.sample(bytes_out, "Bytes of buffers sent on output edges.", labels, metrics.bytes_out as f64);
    let total = (metrics.busy.0 + metrics.backpressured.0 + metrics.idle.0).max(1) as f64;
    let per_second = |part: u64| 1000.0 * part as f64 / total;
    let (busy_help, backpressured_help, idle_help) = (
        "Time busy, in ms per second, over the attempt's life.",
        "Time backpressured, in ms per second, over the attempt's life.",
        "Time idle, in ms per second, over the attempt's life.",
    );
    out.sample(busy, busy_help, labels, per_second(metrics.busy.0));
    out.sample(backpressured, backpressured_help, labels, per_second(metrics.backpressured.0));
    out.sample(idle, idle_help, labels, per_second(metrics.idle.0));
    // The counters behind them: `rate(…_total[1m])` is Flink's per-second figure over any window.
    let (busy, backpressured, idle) = match prefix {
        Prefix::Task => {
            ("weir_task_busy_time_ms_total", "weir_task_backpressured_time_ms_total", "weir_task_idle_time_ms_total")
        }
        Prefix::Vertex => (
            "weir_vertex_busy_time_ms_total",
            "weir_vertex_backpressured_time_ms_total",
            "weir_vertex_idle_time_ms_total",
        ),
    };
    let millis = |time: weir_core::time::Duration| time.0 as f64 / 1000.0;
    out.sample(busy, "Time busy, in ms, since the attempt started.", labels, millis(metrics.busy));
    let help = "Time backpressured, in ms, since the attempt started.";
    out.sample(backpressured, help, labels, millis(metrics.backpressured));
    out.sample(idle, "Time idle, in ms, since the attempt started.", labels, millis(metrics.idle));
}

/// Which family of names [`task_metrics`] writes.
#[derive(Clone, Copy)]
pub enum Prefix {
    /// `weir_task_…` per subtask.
    Task,
    /// `weir_vertex_…` per vertex.
    Vertex,
}

/// The JobManager's exposition: slots, jobs' tasks and vertices, checkpoints, process memory.
pub fn job_manager(state: &ClusterState<'_>) -> String {
    let mut out = Exposition::default();
    let resource_manager = state.job_manager.resource_manager();
    out.sample("weir_taskmanagers", "Registered TaskManagers.", &[], resource_manager.task_managers().len() as f64);
    out.sample("weir_slots", "Slots of all TaskManagers.", &[], resource_manager.slots_total() as f64);
    out.sample("weir_slots_free", "Free slots of all TaskManagers.", &[], resource_manager.slots_free() as f64);
    let running = state.job_manager.dispatcher().jobs().values().filter(|job| !job.status.is_terminal()).count();
    out.sample("weir_jobs_running", "Jobs not yet in a terminal state.", &[], running as f64);
    for (job_id, job_master) in state.job_manager.job_masters() {
        for vertex in &job_master.plan().vertices {
            let newest = newest_metrics(state, *job_id, vertex.index);
            let mut sum = TaskMetrics::default();
            for (subtask, (_, metrics)) in &newest {
                let labels = task_labels(*job_id, &vertex.id.to_string(), Some(subtask.0));
                task_metrics(&mut out, Prefix::Task, &labels, metrics);
                add(&mut sum, metrics);
            }
            task_metrics(&mut out, Prefix::Vertex, &task_labels(*job_id, &vertex.id.to_string(), None), &sum);
        }
        if let Some(coordinator) = job_master.checkpoint_coordinator() {
            checkpoint_metrics(&mut out, *job_id, coordinator.stats());
        }
    }
    process_metrics(&mut out);
    out.render()
}

/// Sums `metrics` into `sum`.
pub fn add(sum: &mut TaskMetrics, metrics: &TaskMetrics) {
    sum.records_in += metrics.records_in;
    sum.records_out += metrics.records_out;
    sum.bytes_in += metrics.bytes_in;
    sum.bytes_out += metrics.bytes_out;
    sum.busy.0 += metrics.busy.0;
    sum.idle.0 += metrics.idle.0;
    sum.backpressured.0 += metrics.backpressured.0;
}

/// Labels of a task (`subtask` given) or a vertex.
pub fn task_labels(job_id: JobId, vertex_id: &str, subtask: Option<u32>) -> Vec<(&'static str, String)> {
    let mut labels = vec![("job_id", job_id.to_string()), ("vertex_id", vertex_id.to_string())];
    if let Some(subtask) = subtask {
        labels.push(("subtask", subtask.to_string()));
    }
    labels
}

fn checkpoint_metrics(out: &mut Exposition, job_id: JobId, stats: &weir_core::checkpoint::stats::CheckpointStats) {
    let labels = [("job_id", job_id.to_string())];
    let counts = &stats.counts;
    out.sample("weir_checkpoints_completed_total", "Completed checkpoints.", &labels, counts.completed as f64);
    out.sample("weir_checkpoints_failed_total", "Failed checkpoints.", &labels, counts.failed as f64);
    out.sample("weir_checkpoints_in_progress", "Checkpoints in progress.", &labels, counts.in_progress as f64);
    if let Some(latest) = &stats.latest_completed {
        let duration = latest.end_to_end_duration.as_millis() as f64;
        out.sample(
            "weir_checkpoint_last_duration_ms",
            "End-to-end duration of the latest completed checkpoint.",
            &labels,
            duration,
        );
        let size = latest.state_size_bytes as f64;
        out.sample("weir_checkpoint_last_size_bytes", "State size of the latest completed checkpoint.", &labels, size);
    }
    let durations = stats.summary.end_to_end_duration_micros;
    out.sample(
        "weir_checkpoint_duration_max_ms",
        "Longest completed checkpoint.",
        &labels,
        (durations.max / 1000) as f64,
    );
    out.sample(
        "weir_checkpoint_duration_avg_ms",
        "Average completed checkpoint.",
        &labels,
        (durations.avg() / 1000) as f64,
    );
    let sizes = stats.summary.state_size_bytes;
    out.sample("weir_checkpoint_size_max_bytes", "Largest completed checkpoint.", &labels, sizes.max as f64);
}

/// What a TaskManager's `/metrics` reads besides its tasks' numbers; its control task keeps it
/// current.
#[derive(Clone, Debug, Default)]
pub struct TaskManagerGauges {
    /// Its slots.
    pub slots_total: u64,
    /// Its free slots.
    pub slots_free: u64,
    /// REST ids of the vertices of the jobs planned here.
    pub vertex_ids: BTreeMap<(JobId, VertexIndex), VertexId>,
}

/// A TaskManager's exposition: its tasks (newest attempt of each subtask), slots and memory.
pub fn task_manager(board: &BTreeMap<ExecutionId, TaskMetrics>, gauges: &TaskManagerGauges) -> String {
    let mut out = Exposition::default();
    out.sample("weir_slots", "Slots of this TaskManager.", &[], gauges.slots_total as f64);
    out.sample("weir_slots_free", "Free slots of this TaskManager.", &[], gauges.slots_free as f64);
    let mut newest: BTreeMap<(JobId, VertexIndex, u32), (ExecutionId, TaskMetrics)> = BTreeMap::new();
    for (execution, metrics) in board {
        let key = (execution.job, execution.vertex, execution.subtask.0);
        if newest.get(&key).is_none_or(|(known, _)| known.attempt <= execution.attempt) {
            newest.insert(key, (*execution, *metrics));
        }
    }
    for ((job, vertex, subtask), (_, metrics)) in &newest {
        // A task whose job's plan is already forgotten keeps its index as the vertex label.
        let vertex_id =
            gauges.vertex_ids.get(&(*job, *vertex)).map_or_else(|| vertex.0.to_string(), |id| id.to_string());
        task_metrics(&mut out, Prefix::Task, &task_labels(*job, &vertex_id, Some(*subtask)), metrics);
    }
    process_metrics(&mut out);
    out.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_metric_has_one_help_and_type_and_labels_are_escaped() {
        let mut out = Exposition::default();
        out.sample("weir_a_total", "A.", &[("job_id", "x\"y".to_string())], 3.0);
        out.sample("weir_a_total", "A.", &[("job_id", "z".to_string())], 4.0);
        out.sample("weir_b", "B.", &[], 1.5);
        let text = out.render();
        assert_eq!(text.matches("# TYPE weir_a_total counter").count(), 1);
        assert!(text.contains("weir_a_total{job_id=\"x\\\"y\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE weir_b gauge\nweir_b 1.5\n"), "{text}");
        assert!(resident_bytes().is_some_and(|bytes| bytes > 0));
    }
}
