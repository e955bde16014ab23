//! Real tasks inside the simulator: every subtask of a job with `tasks = "real"` is a
//! [`TaskRunner`] (the step function the TaskManagers run), so every record, barrier and crash
//! happens in virtual time.
//!
//! The data plane is a driver like a TaskManager's: the world hands it the TaskExecutor's task
//! commands and the buffers that arrive; it answers with [`Effect`]s the world schedules
//! (reports, steps, buffers to send through the simulated network, state files to write).
//!
//! - **Time**: a step of a task processes up to [`STEP_BUDGET_RECORDS`] records and costs the
//!   scenario's `record_cost` per record processed; the task steps again when that time has
//!   passed, when input arrives, or at its own next deadline (buffer timeout, timers, rates).
//! - **Channels**: a buffer goes from a producer attempt to the consumer attempt with the same
//!   attempt number (a pipelined region restarts as a whole, so a region's attempts share their
//!   numbers); a buffer for an attempt that has not started yet waits for it, one for an attempt
//!   that is gone is dropped. Data links are reliable and FIFO (TCP); a cut link fails the tasks
//!   on it, as a broken connection does.
//! - **Credit**: a producer with [`CREDIT_BUFFERS`] buffers sent but not yet taken by their
//!   consumers stops stepping until they are taken, as Flink's credit-based flow control holds
//!   a producer back instead of growing memory.
//! - **State**: a snapshot becomes a state file on the simulated storage; the acknowledgement
//!   goes out only once the file is durable, and a crash before that loses it.

pub mod connectors;

use crate::disk::{SharedDisk, lock};
use crate::network::NodeIndex;
use connectors::SimConnectors;
use std::collections::{BTreeMap, VecDeque};
use weir_core::checkpoint::storage;
use weir_core::config::Config;
use weir_core::dataflow::Barrier;
use weir_core::dataflow::buffer::Buffer;
use weir_core::dataflow::partition::ChannelIndex;
use weir_core::dataflow::task::{StepStatus, TaskOutput, TaskRunner, TaskSetup};
use weir_core::ids::{AttemptNumber, CheckpointId, JobId, SubtaskIndex};
use weir_core::plan::JobPlan;
use weir_core::protocol::{
    CheckpointOutcome, ExecutionId, ExecutionState, TaskCheckpointReport, TaskDeployment, TaskReport,
};
use weir_core::rng::Rng;
use weir_core::time::{Duration, Time};

/// Records a task processes per step at most.
pub const STEP_BUDGET_RECORDS: usize = 1024;
/// Buffers a producer may have sent that their consumers have not taken yet.
pub const CREDIT_BUFFERS: u32 = 32;

/// A buffer on its way from a producer attempt to a consumer attempt.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The producer attempt.
    pub producer: ExecutionId,
    /// The consumer attempt.
    pub consumer: ExecutionId,
    /// The plan edge.
    pub edge: usize,
    /// The elements.
    pub buffer: Buffer,
}

/// What the world must do for the data plane.
#[derive(Debug)]
pub enum Effect {
    /// The TaskManager's driver reports a task's state at `at`.
    Report {
        /// When.
        at: Time,
        /// The TaskManager.
        node: NodeIndex,
        /// The report.
        report: TaskReport,
    },
    /// The TaskManager's driver reports a checkpoint answer (a decline) at once.
    CheckpointReport {
        /// The TaskManager.
        node: NodeIndex,
        /// The report.
        report: TaskCheckpointReport,
    },
    /// The TaskManager's driver reports at once that a task waits for its final checkpoint.
    FinalCheckpointAwaited {
        /// The TaskManager.
        node: NodeIndex,
        /// The task.
        execution: ExecutionId,
        /// The newest checkpoint it took before its input ended.
        checkpoint_latest: Option<CheckpointId>,
    },
    /// Step the task at `at`.
    Step {
        /// When.
        at: Time,
        /// The task.
        execution: ExecutionId,
    },
    /// Send a buffer from node `from` to node `to`.
    Data {
        /// The producer's node.
        from: NodeIndex,
        /// The consumer's node.
        to: NodeIndex,
        /// The buffer.
        packet: Packet,
    },
    /// Write a state file durably, then acknowledge with `report`.
    StateFile {
        /// The writing TaskManager.
        node: NodeIndex,
        /// The file's path.
        path: String,
        /// Its bytes.
        bytes: Vec<u8>,
        /// The acknowledgement to make once durable.
        report: TaskCheckpointReport,
    },
    /// A task broke one of its invariants.
    Violation(String),
}

/// A job whose tasks run for real.
struct RealJob {
    plan: JobPlan,
    config: Config,
}

struct RealTask {
    node: NodeIndex,
    runner: TaskRunner,
    /// Buffers that arrived but the task's input queue refused, per channel, with their producer.
    waiting: BTreeMap<ChannelIndex, VecDeque<(ExecutionId, Buffer)>>,
    /// The earliest step already scheduled.
    step_at: Option<Time>,
    /// Whether it stopped stepping for lack of credit.
    credit_blocked: bool,
}

/// Every real task of the cluster.
pub struct DataPlane {
    jobs: BTreeMap<JobId, RealJob>,
    tasks: BTreeMap<ExecutionId, RealTask>,
    /// Buffers for consumer attempts that have not started yet.
    parked: BTreeMap<ExecutionId, Vec<Packet>>,
    /// Buffers each producer sent that were not taken yet.
    outstanding: BTreeMap<ExecutionId, u32>,
    /// Checkpoint directories, as the triggers named them.
    locations: BTreeMap<(JobId, CheckpointId), String>,
    disk: SharedDisk,
    record_cost: Duration,
    /// Slow TaskManagers: until when, and how many times a record costs more on them.
    slow: BTreeMap<NodeIndex, (Time, u64)>,
}

impl DataPlane {
    /// A data plane over `disk` where a record costs `record_cost` of virtual time.
    pub fn new(disk: SharedDisk, record_cost: Duration) -> DataPlane {
        DataPlane {
            jobs: BTreeMap::new(),
            tasks: BTreeMap::new(),
            parked: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            locations: BTreeMap::new(),
            disk,
            record_cost,
            slow: BTreeMap::new(),
        }
    }

    /// Until `until`, every record a task on `node` processes costs `factor` times as much (a
    /// slow TaskManager: a busy host, a throttled CPU).
    pub fn slow_down(&mut self, node: NodeIndex, until: Time, factor: u64) {
        self.slow.insert(node, (until, factor.max(1)));
    }

    fn record_cost_on(&self, node: NodeIndex, now: Time) -> u64 {
        match self.slow.get(&node) {
            Some(&(until, factor)) if now < until => self.record_cost.0.saturating_mul(factor),
            _ => self.record_cost.0,
        }
    }

    /// Registers a job whose tasks run for real, as the Dispatcher planned it.
    pub fn add_job(&mut self, job_id: JobId, plan: JobPlan, config: Config) {
        self.jobs.insert(job_id, RealJob { plan, config });
    }

    /// Whether `job_id`'s tasks run here.
    pub fn runs(&self, job_id: JobId) -> bool {
        self.jobs.contains_key(&job_id)
    }

    /// Whether `execution` runs on `node`.
    pub fn hosts(&self, node: NodeIndex, execution: &ExecutionId) -> bool {
        self.tasks.get(execution).is_some_and(|task| task.node == node)
    }

    /// The node a task runs on.
    pub fn node_of(&self, execution: &ExecutionId) -> Option<NodeIndex> {
        self.tasks.get(execution).map(|task| task.node)
    }

    /// The directories the file sinks of `job_id` write.
    pub fn sink_directories(&self, job_id: JobId) -> Vec<String> {
        let Some(job) = self.jobs.get(&job_id) else { return Vec::new() };
        let operators = job.plan.job.graph.operators.iter();
        operators
            .filter_map(|operator| match &operator.kind {
                weir_core::job::OperatorKind::FileSink { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    /// The TaskExecutor on `node` starts a task.
    pub fn start(&mut self, now: Time, node: NodeIndex, deployment: &TaskDeployment, rng: &mut Rng) -> Vec<Effect> {
        let execution = deployment.execution;
        let initializing = now.after(Duration::from_millis(1 + rng.below(3)));
        let running = initializing.after(Duration::from_millis(1 + rng.below(5)));
        let mut effects = vec![report_at(initializing, node, execution, ExecutionState::Initializing, None)];
        let runner = match self.build(deployment) {
            Ok(runner) => runner,
            Err((error, unreadable)) => {
                let mut failed = report_at(running, node, execution, ExecutionState::Failed, Some(error));
                if let (Effect::Report { report, .. }, true) = (&mut failed, unreadable) {
                    report.unreadable_checkpoint = deployment.restore.as_ref().map(|restore| restore.checkpoint);
                }
                effects.push(failed);
                return effects;
            }
        };
        self.forget_older_attempts(&execution);
        let task = RealTask { node, runner, waiting: BTreeMap::new(), step_at: None, credit_blocked: false };
        self.tasks.insert(execution, task);
        effects.push(report_at(running, node, execution, ExecutionState::Running, None));
        for packet in self.parked.remove(&execution).unwrap_or_default() {
            self.enqueue(packet);
        }
        self.schedule_step(running, execution, &mut effects);
        effects
    }

    /// The task's runner, or why it cannot run and whether that is unreadable restored state.
    fn build(&mut self, deployment: &TaskDeployment) -> Result<TaskRunner, (String, bool)> {
        let execution = deployment.execution;
        let Some(job) = self.jobs.get(&execution.job) else {
            return Err(("the simulator does not know the job".into(), false));
        };
        let mut files = Vec::new();
        if let Some(restore) = &deployment.restore {
            let disk = lock(&self.disk);
            for handle in &restore.states {
                let path = format!("{}/{}", restore.location, handle.file);
                match disk.read(&path) {
                    Some(bytes) => files.push(bytes.to_vec()),
                    None => return Err((format!("restore: state file {path} is missing"), true)),
                }
            }
        }
        let mut connectors = SimConnectors { disk: self.disk.clone() };
        let setup = TaskSetup {
            execution,
            plan: &job.plan,
            config: &job.config,
            restore: files.iter().map(Vec::as_slice).collect(),
            restore_finished: deployment.restore.as_ref().is_some_and(|restore| restore.finished),
            connectors: &mut connectors,
            seed: u64::from(execution.vertex.0) << 32 | u64::from(execution.subtask.0),
            wait_for_final_checkpoint: job.config.checkpoint.interval.is_some(),
        };
        TaskRunner::new(setup).map_err(|error| (error.to_string(), error.is_unreadable_state()))
    }

    /// Drops what waits for attempts of the same subtask older than `execution`.
    fn forget_older_attempts(&mut self, execution: &ExecutionId) {
        let low = ExecutionId { attempt: AttemptNumber(0), ..*execution };
        let stale: Vec<ExecutionId> = self.parked.range(low..*execution).map(|(id, _)| *id).collect();
        for id in stale {
            for packet in self.parked.remove(&id).unwrap_or_default() {
                self.taken(&packet.producer);
            }
        }
    }

    /// The TaskExecutor cancels a task: it reports CANCELED shortly after.
    pub fn cancel(&mut self, now: Time, execution: ExecutionId, rng: &mut Rng) -> Vec<Effect> {
        let Some(mut task) = self.tasks.remove(&execution) else { return Vec::new() };
        task.runner.cancel();
        let at = now.after(Duration::from_millis(rng.below(3)));
        vec![report_at(at, task.node, execution, ExecutionState::Canceled, None)]
    }

    /// A checkpoint barrier is injected at a task (a source, or one whose input ended).
    pub fn trigger(&mut self, now: Time, execution: ExecutionId, barrier: Barrier, location: String) -> Vec<Effect> {
        self.locations.insert((execution.job, barrier.checkpoint), location);
        let mut effects = Vec::new();
        let Some(task) = self.tasks.get_mut(&execution) else { return effects };
        task.runner.trigger_checkpoint(barrier);
        self.drain(now, execution, &mut effects);
        self.schedule_step(now, execution, &mut effects);
        effects
    }

    /// A checkpoint completed or was aborted.
    pub fn notify(
        &mut self,
        now: Time,
        execution: ExecutionId,
        checkpoint: CheckpointId,
        complete: bool,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(task) = self.tasks.get_mut(&execution) else { return effects };
        task.runner.notify_checkpoint(checkpoint, complete);
        self.drain(now, execution, &mut effects);
        self.schedule_step(now, execution, &mut effects);
        effects
    }

    /// A buffer arrived at its consumer's node.
    pub fn deliver(&mut self, now: Time, packet: Packet) -> Vec<Effect> {
        let consumer = packet.consumer;
        let mut effects = Vec::new();
        if !self.tasks.contains_key(&consumer) {
            self.taken(&packet.producer);
            self.wake_if_credit(now, packet.producer, &mut effects);
            return effects;
        }
        self.enqueue(packet);
        self.schedule_step(now, consumer, &mut effects);
        effects
    }

    fn enqueue(&mut self, packet: Packet) {
        let Some(task) = self.tasks.get_mut(&packet.consumer) else { return };
        match task.runner.input_channel(packet.edge, packet.producer.subtask) {
            Some(channel) => task.waiting.entry(channel).or_default().push_back((packet.producer, packet.buffer)),
            // Not a channel of this task: the buffer cannot be placed; count it as taken.
            None => self.taken(&packet.producer),
        }
    }

    /// A task's step is due.
    pub fn step(&mut self, now: Time, execution: ExecutionId) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(task) = self.tasks.get_mut(&execution) else { return effects };
        if task.step_at.is_some_and(|at| at > now) {
            return effects; // an earlier wake-up than the one now scheduled: stale
        }
        task.step_at = None;
        self.feed_waiting(now, execution, &mut effects);
        if self.outstanding.get(&execution).copied().unwrap_or(0) >= CREDIT_BUFFERS {
            if let Some(task) = self.tasks.get_mut(&execution) {
                task.credit_blocked = true;
            }
            return effects;
        }
        let Some(task) = self.tasks.get_mut(&execution) else { return effects };
        let before = task.runner.metrics();
        let status = task.runner.step(now, STEP_BUDGET_RECORDS);
        let after = task.runner.metrics();
        let processed = (after.records_in - before.records_in).max(after.records_out - before.records_out);
        if let Err(message) = task.runner.check_invariants() {
            effects.push(Effect::Violation(format!("task {execution}: {message}")));
        }
        let timeout = task.runner.poll_timeout();
        let node = task.node;
        let busy_until = now.after(Duration(self.record_cost_on(node, now).saturating_mul(processed.max(1))));
        self.drain(now, execution, &mut effects);
        match status {
            StepStatus::Progress | StepStatus::Blocked => self.schedule_step(busy_until, execution, &mut effects),
            StepStatus::Idle => {
                if let Some(at) = timeout {
                    self.schedule_step(at.max(busy_until), execution, &mut effects);
                }
            }
            StepStatus::Finished | StepStatus::Failed | StepStatus::Canceled => {}
        }
        effects
    }

    /// Hands a task the buffers waiting for its channels, in order, until one is refused.
    fn feed_waiting(&mut self, now: Time, execution: ExecutionId, effects: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get_mut(&execution) else { return };
        let mut taken = Vec::new();
        for (channel, queue) in task.waiting.iter_mut() {
            while let Some((producer, buffer)) = queue.pop_front() {
                match task.runner.push_buffer(*channel, buffer) {
                    Ok(()) => taken.push(producer),
                    Err(refused) => {
                        queue.push_front((producer, refused.item));
                        break;
                    }
                }
            }
        }
        for producer in taken {
            self.taken(&producer);
            self.wake_if_credit(now, producer, effects);
        }
    }

    fn taken(&mut self, producer: &ExecutionId) {
        if let Some(count) = self.outstanding.get_mut(producer) {
            *count = count.saturating_sub(1);
        }
    }

    fn wake_if_credit(&mut self, now: Time, producer: ExecutionId, effects: &mut Vec<Effect>) {
        let below = self.outstanding.get(&producer).copied().unwrap_or(0) < CREDIT_BUFFERS;
        let Some(task) = self.tasks.get_mut(&producer) else { return };
        if below && task.credit_blocked {
            task.credit_blocked = false;
            self.schedule_step(now, producer, effects);
        }
    }

    fn schedule_step(&mut self, at: Time, execution: ExecutionId, effects: &mut Vec<Effect>) {
        let Some(task) = self.tasks.get_mut(&execution) else { return };
        if task.step_at.is_none_or(|scheduled| at < scheduled) {
            task.step_at = Some(at);
            effects.push(Effect::Step { at, execution });
        }
    }

    /// Carries out everything a task put out.
    fn drain(&mut self, now: Time, execution: ExecutionId, effects: &mut Vec<Effect>) {
        loop {
            let Some(task) = self.tasks.get_mut(&execution) else { return };
            let node = task.node;
            let Some(output) = task.runner.poll_output() else { return };
            match output {
                TaskOutput::Buffer { edge, consumer, buffer } => {
                    self.send(execution, node, edge, consumer, buffer, effects)
                }
                TaskOutput::Snapshot { checkpoint, bytes, metrics, .. } => {
                    let Some(job) = self.jobs.get(&execution.job) else { return };
                    let location = self.locations.get(&(execution.job, checkpoint)).cloned().unwrap_or_else(|| {
                        storage::checkpoint_location(job.config.checkpoint.dir.as_deref(), execution.job, checkpoint)
                    });
                    let vertex = job.plan.vertex(execution.vertex).id;
                    let file = storage::state_file_name(vertex, execution.subtask, execution.attempt);
                    let handle = storage::handle_for(file.clone(), &bytes);
                    let outcome = CheckpointOutcome::Acknowledged { state: Some(handle), metrics };
                    let report = TaskCheckpointReport { execution, checkpoint, outcome };
                    effects.push(Effect::StateFile { node, path: format!("{location}/{file}"), bytes, report });
                }
                TaskOutput::Decline { checkpoint, reason } => {
                    let outcome = CheckpointOutcome::Declined(reason);
                    effects.push(Effect::CheckpointReport {
                        node,
                        report: TaskCheckpointReport { execution, checkpoint, outcome },
                    });
                }
                TaskOutput::AwaitingFinalCheckpoint { checkpoint_latest } => {
                    effects.push(Effect::FinalCheckpointAwaited { node, execution, checkpoint_latest });
                }
                TaskOutput::Finished => {
                    self.tasks.remove(&execution);
                    effects.push(report_at(now, node, execution, ExecutionState::Finished, None));
                }
                TaskOutput::Failed { error } => {
                    self.tasks.remove(&execution);
                    effects.push(report_at(now, node, execution, ExecutionState::Failed, Some(error.to_string())));
                }
            }
        }
    }

    fn send(
        &mut self,
        producer: ExecutionId,
        node: NodeIndex,
        edge: usize,
        consumer: SubtaskIndex,
        buffer: Buffer,
        effects: &mut Vec<Effect>,
    ) {
        let Some(job) = self.jobs.get(&producer.job) else { return };
        let Some(target) = job.plan.edges.get(edge).map(|edge| edge.target) else { return };
        let consumer = ExecutionId { job: producer.job, vertex: target, subtask: consumer, attempt: producer.attempt };
        *self.outstanding.entry(producer).or_default() += 1;
        let packet = Packet { producer, consumer, edge, buffer };
        match self.tasks.get(&consumer) {
            Some(task) => effects.push(Effect::Data { from: node, to: task.node, packet }),
            None => self.parked.entry(consumer).or_default().push(packet),
        }
    }

    /// A task failed from outside (its connection broke): it reports FAILED at once.
    pub fn fail(&mut self, now: Time, execution: ExecutionId, reason: String) -> Vec<Effect> {
        let Some(mut task) = self.tasks.remove(&execution) else { return Vec::new() };
        task.runner.cancel();
        vec![report_at(now, task.node, execution, ExecutionState::Failed, Some(reason))]
    }

    /// A TaskManager crashed: its tasks vanish without a word, and the tasks elsewhere that
    /// exchange data with them see their connections close and fail, as Flink's do.
    pub fn crash(&mut self, now: Time, node: NodeIndex, name: &str) -> Vec<Effect> {
        let jobs: std::collections::BTreeSet<JobId> =
            self.tasks.iter().filter(|(_, task)| task.node == node).map(|(id, _)| id.job).collect();
        self.tasks.retain(|_, task| task.node != node);
        let peers: Vec<ExecutionId> = self.tasks.keys().filter(|id| jobs.contains(&id.job)).copied().collect();
        let reason = format!("the data connection to {name} closed: its TaskManager died");
        peers.into_iter().flat_map(|peer| self.fail(now, peer, reason.clone())).collect()
    }
}

fn report_at(
    at: Time,
    node: NodeIndex,
    execution: ExecutionId,
    state: ExecutionState,
    error: Option<String>,
) -> Effect {
    Effect::Report { at, node, report: TaskReport { execution, state, error, unreadable_checkpoint: None } }
}
