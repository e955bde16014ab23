//! The simulated work of tasks, until the data plane runs real operators in the simulator.
//!
//! A started task reports INITIALIZING and RUNNING after short random delays. A source subtask
//! then runs for its job's `source_runtime` and finishes (or runs until cancelled when the job
//! is unbounded). Any other subtask finishes shortly after every producer subtask's current
//! attempt has finished, as end-of-input flows through a real job. A cancelled task reports
//! CANCELED. Tasks of a crashed TaskManager vanish without a word, as a killed process's do.
//!
//! Checkpoints: a barrier injected at a source reaches every running task of the job after
//! short delays, as barriers flow with the data; each task acknowledges once (with no state,
//! since the modelled tasks keep none).

use crate::network::NodeIndex;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use weir_core::checkpoint::AckMetrics;
use weir_core::ids::CheckpointId;
use weir_core::ids::{AttemptNumber, JobId, SubtaskIndex, VertexIndex};
use weir_core::plan::execution::ExecutionGraph;
use weir_core::protocol::{CheckpointOutcome, ExecutionId, ExecutionState, TaskCheckpointReport, TaskReport};
use weir_core::rng::Rng;
use weir_core::time::{Duration, Time};

/// What the task model knows about a job.
pub struct JobModel {
    /// Its subtasks and exchanges.
    pub graph: ExecutionGraph,
    /// Whether each vertex is a source.
    pub is_source: Vec<bool>,
    /// How long sources run; `None` is unbounded.
    pub source_runtime: Option<Duration>,
}

/// A task report due at a time on a node.
pub struct DueReport {
    /// When the driver reports it.
    pub at: Time,
    /// The TaskManager node.
    pub node: NodeIndex,
    /// The report.
    pub report: TaskReport,
}

struct SimTask {
    node: NodeIndex,
    state: ExecutionState,
}

type SubtaskKey = (JobId, VertexIndex, SubtaskIndex);

/// A checkpoint acknowledgement due at a time on a node.
pub struct DueAck {
    /// When the driver reports it.
    pub at: Time,
    /// The TaskManager node.
    pub node: NodeIndex,
    /// The report.
    pub report: TaskCheckpointReport,
}

/// Every simulated task in the cluster.
#[derive(Default)]
pub struct Tasks {
    /// Checkpoints each task already acknowledged, so a barrier from every source acks once
    /// (the checkpoint first: most comparisons end at that number).
    acknowledged: BTreeSet<(CheckpointId, ExecutionId)>,
    jobs: BTreeMap<JobId, JobModel>,
    tasks: BTreeMap<ExecutionId, SimTask>,
    /// The newest attempt started for each subtask.
    current: BTreeMap<SubtaskKey, AttemptNumber>,
    /// The newest attempt that finished for each subtask.
    finished: BTreeMap<SubtaskKey, AttemptNumber>,
}

fn report(execution: ExecutionId, state: ExecutionState) -> TaskReport {
    TaskReport { execution, state, error: None, unreadable_checkpoint: None }
}

fn key(execution: &ExecutionId) -> SubtaskKey {
    (execution.job, execution.vertex, execution.subtask)
}

impl Tasks {
    /// Registers a job the model must know to run its tasks.
    pub fn add_job(&mut self, job_id: JobId, model: JobModel) {
        self.jobs.insert(job_id, model);
    }

    /// A TaskManager started a task: INITIALIZING then RUNNING follow.
    pub fn start(&mut self, now: Time, node: NodeIndex, execution: ExecutionId, rng: &mut Rng) -> Vec<DueReport> {
        self.tasks.insert(execution, SimTask { node, state: ExecutionState::Deploying });
        // A stale attempt started late (its deployment held up by a pause) is not the current one.
        let current = self.current.entry(key(&execution)).or_insert(execution.attempt);
        *current = (*current).max(execution.attempt);
        let initializing = now.after(Duration::from_millis(1 + rng.below(3)));
        let running = initializing.after(Duration::from_millis(1 + rng.below(5)));
        vec![
            DueReport { at: initializing, node, report: report(execution, ExecutionState::Initializing) },
            DueReport { at: running, node, report: report(execution, ExecutionState::Running) },
        ]
    }

    /// A TaskManager cancels a task: CANCELED follows unless it already ended.
    pub fn cancel(&mut self, now: Time, execution: ExecutionId, rng: &mut Rng) -> Vec<DueReport> {
        match self.tasks.get(&execution) {
            Some(task) if !task.state.is_terminal() => {
                let at = now.after(Duration::from_millis(rng.below(3)));
                vec![DueReport { at, node: task.node, report: report(execution, ExecutionState::Canceled) }]
            }
            _ => Vec::new(),
        }
    }

    /// Whether a due report still applies: the task exists, lives on `node` and the move is legal.
    pub fn applies(&self, node: NodeIndex, report: &TaskReport) -> bool {
        self.tasks.get(&report.execution).is_some_and(|task| task.node == node && task.state.can_become(report.state))
    }

    /// The driver delivered `report`; returns the reports that follow from it.
    pub fn reported(&mut self, now: Time, report: &TaskReport, rng: &mut Rng) -> Vec<DueReport> {
        let execution = report.execution;
        let Some(task) = self.tasks.get_mut(&execution) else { return Vec::new() };
        task.state = report.state;
        let node = task.node;
        match report.state {
            ExecutionState::Running => self.on_running(now, node, execution, rng),
            ExecutionState::Finished => {
                self.finished.insert(key(&execution), execution.attempt);
                self.tasks.remove(&execution);
                self.consumers_ready(now, execution.job, rng)
            }
            state if state.is_terminal() => {
                self.tasks.remove(&execution);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_running(&mut self, now: Time, node: NodeIndex, execution: ExecutionId, rng: &mut Rng) -> Vec<DueReport> {
        let Some(job) = self.jobs.get(&execution.job) else { return Vec::new() };
        if job.is_source[execution.vertex.index()] {
            return match job.source_runtime {
                Some(runtime) => {
                    let at = now.after(runtime);
                    vec![DueReport { at, node, report: report(execution, ExecutionState::Finished) }]
                }
                None => Vec::new(),
            };
        }
        self.finish_if_inputs_ended(now, execution, rng).into_iter().collect()
    }

    fn producers_finished(&self, execution: &ExecutionId) -> bool {
        let Some(job) = self.jobs.get(&execution.job) else { return false };
        job.graph.edges.iter().filter(|edge| edge.target == execution.vertex).all(|edge| {
            job.graph.producers(edge, execution.subtask).all(|producer| {
                let producer_key = (execution.job, edge.source, SubtaskIndex(producer));
                let current = self.current.get(&producer_key);
                current.is_some() && self.finished.get(&producer_key) == current
            })
        })
    }

    fn finish_if_inputs_ended(&self, now: Time, execution: ExecutionId, rng: &mut Rng) -> Option<DueReport> {
        let task = self.tasks.get(&execution)?;
        if task.state != ExecutionState::Running || !self.producers_finished(&execution) {
            return None;
        }
        let at = now.after(Duration::from_millis(1 + rng.below(2)));
        Some(DueReport { at, node: task.node, report: report(execution, ExecutionState::Finished) })
    }

    fn consumers_ready(&mut self, now: Time, job_id: JobId, rng: &mut Rng) -> Vec<DueReport> {
        let low =
            ExecutionId { job: job_id, vertex: VertexIndex(0), subtask: SubtaskIndex(0), attempt: AttemptNumber(0) };
        let running: Vec<ExecutionId> = self
            .tasks
            .range(low..)
            .take_while(|(execution, _)| execution.job == job_id)
            .map(|(execution, _)| *execution)
            .collect();
        running.into_iter().filter_map(|execution| self.finish_if_inputs_ended(now, execution, rng)).collect()
    }

    /// A barrier reached a source: every running task of the job acknowledges after a delay.
    pub fn barrier(&mut self, now: Time, source: ExecutionId, checkpoint: CheckpointId, rng: &mut Rng) -> Vec<DueAck> {
        let low = ExecutionId {
            job: source.job,
            vertex: VertexIndex(0),
            subtask: SubtaskIndex(0),
            attempt: AttemptNumber(0),
        };
        let running: Vec<(ExecutionId, NodeIndex)> = self
            .tasks
            .range(low..)
            .take_while(|(execution, _)| execution.job == source.job)
            .filter(|(_, task)| task.state == ExecutionState::Running)
            .map(|(execution, task)| (*execution, task.node))
            .collect();
        let mut acks = Vec::new();
        for (execution, node) in running {
            if !self.acknowledged.insert((checkpoint, execution)) {
                continue;
            }
            let at = now.after(Duration::from_millis(1 + rng.below(20)));
            let outcome = CheckpointOutcome::Acknowledged { state: None, metrics: AckMetrics::default() };
            acks.push(DueAck { at, node, report: TaskCheckpointReport { execution, checkpoint, outcome } });
        }
        acks
    }

    /// Whether a due acknowledgement still applies: the task still runs on `node`.
    pub fn ack_applies(&self, node: NodeIndex, report: &TaskCheckpointReport) -> bool {
        self.tasks.get(&report.execution).is_some_and(|task| task.node == node && !task.state.is_terminal())
    }

    /// A TaskManager crashed: its tasks vanish.
    pub fn crash(&mut self, node: NodeIndex) {
        self.tasks.retain(|_, task| task.node != node);
    }
}
