//! The task runtime: one task runs one operator chain as a step function over its input gate and
//! its output buffers.
//!
//! A [`TaskRunner`] is built from a [`TaskSetup`] (the execution, the planned job, the
//! configuration, the restored state file and the driver's IO) and then driven, in the shape of
//! every role in weir's core:
//! - inputs: [`TaskRunner::push_buffer`] (a buffer that arrived on an input channel; refused when
//!   the channel's queue is full, which is the task's backpressure on its producer),
//!   [`TaskRunner::trigger_checkpoint`] (at a source), [`TaskRunner::notify_checkpoint`] and
//!   [`TaskRunner::cancel`];
//! - [`TaskRunner::step`]`(now, budget)` runs the chain: a source is polled for up to `budget`
//!   records, any other task drains its gate for up to `budget` records (records into the chain
//!   in batches of up to 256, watermarks, checkpoint barriers, the end of input), checking the
//!   output backlog after each batch; processing-time timers due at `now` fire
//!   and writers whose buffer timeout passed are flushed. The [`StepStatus`] says whether to step
//!   again, wait for input, drain the outputs first, or stop;
//! - outputs: [`TaskRunner::poll_output`] until `None` ([`TaskOutput`]: buffers per output edge and
//!   consumer, snapshots as encoded state files, declines, then `Finished` or `Failed`), and
//!   [`TaskRunner::poll_timeout`] for the next deadline (buffer timeouts, timers, rate limits,
//!   the aligned-checkpoint timeout).
//!
//! # Channels
//!
//! Each input channel carries one producer subtask's output on one input edge;
//! [`TaskRunner::input_channel`] maps (plan edge, producer subtask) to the channel. Buffers leave
//! per plan edge and consumer subtask, so a driver routes a producer's `Buffer { edge, consumer }`
//! to `input_channel(edge, producer)` of the consumer `consumer`.
//!
//! # Checkpoints
//!
//! A source snapshots when triggered, between two polls, so the barrier follows exactly the
//! records emitted before it. Any other task snapshots when its gate says so: with aligned
//! barriers every record before the barrier on every channel, and none after, has been processed
//! (exactly-once); unaligned, the records still in flight before the barrier go into the
//! snapshot and are replayed into the chain on restore. The barrier is then sent on every output
//! edge after the records emitted before it. A snapshot that fails is declined, not fatal.
//! [`TaskRunner::notify_checkpoint`] tells the chain (exactly-once sinks commit) or aborts the
//! checkpoint at the gate.
//!
//! # Stop-with-savepoint
//!
//! A savepoint barrier with `stop` (Flink's synchronous savepoint) stops a source right at the
//! barrier: it emits nothing after it until the savepoint completes or is aborted. With `drain`
//! the source first sends the maximum watermark through its chain, so every event-time window
//! fires before the barrier and its output is in the savepoint. When the savepoint completes
//! (`notify_checkpoint(.., true)`, after the chain committed what it covers) a source ends its
//! input and finishes; every task the barrier passed then finishes as soon as its inputs end,
//! without waiting for a final checkpoint, and without `drain` without running the chain's
//! `end_of_input` (what the operators hold is in the savepoint, to be resumed). If the savepoint
//! is aborted instead (or a later checkpoint's barrier arrives, the abort lost), sources resume.
//!
//! # Restoring and rescaling
//!
//! [`TaskSetup::restore`] holds the subtask's own state file, or after a change of parallelism
//! the old subtasks' files that `checkpoint::rescale::reads` assigns to it. Keyed state keeps the
//! key groups of this subtask's range; each old subtask's items (source splits) are dealt out
//! among the new subtasks that read its file so that every item is restored exactly once; scalars
//! (watermarks, a sink's pending parts) are seen by every reader, and each operator merges them
//! (the file sink commits an old subtask's parts in exactly one new subtask). In-flight records
//! of an unaligned checkpoint cannot be rescaled (a typed error). A file that cannot be read is
//! [`TaskError::is_unreadable_state`], which the driver reports so the checkpoint is not tried
//! again.
//!
//! # End of input, cancellation and failure
//!
//! When every input channel ended (or a source is exhausted) the chain's `end_of_input` runs,
//! then the end of input is sent downstream and the task is finished. With checkpointing and
//! [`TaskSetup::wait_for_final_checkpoint`], as Flink's checkpoints after tasks finish, the task
//! first waits for a final checkpoint: it takes barriers triggered at it (its inputs have ended,
//! so it is where the barrier starts) and finishes once one of them completes, so the last
//! records an exactly-once sink wrote are committed. A snapshot records that the input had
//! ended, so a restored task does not run `end_of_input` twice. A subtask that had finished in
//! the checkpoint restored ([`TaskSetup::restore_finished`]) never runs its chain: its input
//! counts as ended, its snapshots hold no operator state (only that the input ended), a source
//! emits nothing, and it finishes like any task whose input ended. An error fails the task: one
//! `Failed` output, then nothing. After `cancel` nothing comes out at all.
//!
//! Invariants ([`TaskRunner::check_invariants`]): the writers have ended exactly when the task
//! finished; a task waiting for its final checkpoint has ended its input; nothing follows
//! `Finished`, `Failed` or a cancel; a task is only `stopped` by a stop-with-savepoint whose
//! barrier passed it.

mod channels;
mod checkpoints;
mod metrics;
mod snapshot;

#[cfg(test)]
mod finished_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod savepoint_tests;
#[cfg(test)]
mod tests;

pub use channels::InputLayout;
pub use metrics::{TaskMetrics, TimeShares};
pub use snapshot::RestoreError;

use crate::checkpoint::{AckMetrics, DeclineReason};
use crate::config::Config;
use crate::dataflow::buffer::Buffer;
use crate::dataflow::gate::{GateError, GateOutput, InputGate, RefusalReason, Refused};
use crate::dataflow::operators::{BuildError, Chain, ChainOptions, Connectors, OperatorError, PollStatus, build_chain};
use crate::dataflow::partition::ChannelIndex;
use crate::ids::{CheckpointId, SubtaskIndex, VertexIndex};
use crate::plan::JobPlan;
use crate::protocol::ExecutionId;
use crate::row::RowBatch;
use crate::time::Time;
use channels::{EdgeOutput, WriterSettings, build_outputs};
use checkpoints::PendingSnapshot;
use metrics::TimeAccount;
use snapshot::TaskIdentity;
use std::collections::VecDeque;

/// Records a source emits per poll of its chain; the output backlog is checked between polls.
const SOURCE_CHUNK_RECORDS: usize = 4096;
/// Records read from the gate between two checks of the output backlog: the most in one batch.
const BACKLOG_CHECK_RECORDS: usize = 256;

/// Everything a task is built from.
pub struct TaskSetup<'a> {
    /// Which attempt of which subtask; the vertex is `execution.vertex`.
    pub execution: ExecutionId,
    /// The planned job.
    pub plan: &'a JobPlan,
    /// The configuration: buffer size, buffer timeout, checkpointing mode, watermark interval,
    /// network buffers (the bounds of the input queues and the output backlog).
    pub config: &'a Config,
    /// The state files to restore from (the bytes of each): none for a fresh start, this
    /// subtask's own file, or after a change of parallelism every old file that overlaps it.
    pub restore: Vec<&'a [u8]>,
    /// The driver's IO for sources and sinks (used while the chain is built).
    pub connectors: &'a mut dyn Connectors,
    /// Seed of the rebalance and shuffle partitioners.
    pub seed: u64,
    /// With checkpointing: wait for a final checkpoint after the end of input before finishing
    /// (Flink's `execution.checkpointing.checkpoints-after-tasks-finish`).
    pub wait_for_final_checkpoint: bool,
    /// The subtask had finished in the checkpoint restored ([`crate::protocol::RestoreSpec`]'s
    /// `finished`; `restore` is then empty): the chain never runs, the input counts as ended.
    pub restore_finished: bool,
}

/// What a step ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStatus {
    /// Stopped at the budget with more work ready: step again.
    Progress,
    /// Nothing to do until input arrives, a checkpoint command comes or `poll_timeout` passes.
    Idle,
    /// The output backlog is at its bound (backpressure): drain `poll_output`, then step again.
    Blocked,
    /// The task has finished.
    Finished,
    /// The task has failed.
    Failed,
    /// The task was cancelled.
    Canceled,
}

/// What a task hands its driver.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOutput {
    /// A buffer for consumer subtask `consumer` on plan edge `edge` (its position in
    /// [`JobPlan::edges`]).
    Buffer {
        /// The plan edge.
        edge: usize,
        /// The consumer subtask.
        consumer: SubtaskIndex,
        /// The elements.
        buffer: Buffer,
    },
    /// A snapshot: `bytes` is an encoded task state file, ready to write and acknowledge.
    Snapshot {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The state file (see `checkpoint::storage`).
        bytes: Vec<u8>,
        /// Files of the job's shared directory the state references, sorted (see
        /// [`crate::checkpoint::TaskStateHandle::shared`]).
        shared: Vec<String>,
        /// What the task measured.
        metrics: AckMetrics,
    },
    /// The task will not take this checkpoint.
    Decline {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: DeclineReason,
    },
    /// The input ended and the task waits for its final checkpoint (once, before any snapshot
    /// taken after the end): the driver tells the JobMaster, which triggers it without waiting
    /// for the next period once every task a checkpoint starts at waits.
    AwaitingFinalCheckpoint {
        /// The newest checkpoint the task had taken (or restored): any newer one is final.
        checkpoint_latest: Option<CheckpointId>,
    },
    /// The task finished; nothing follows.
    Finished,
    /// The task failed; nothing follows.
    Failed {
        /// Why.
        error: TaskError,
    },
}

/// Why a task could not be built, or failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// The execution names no subtask of the plan.
    #[error("the plan has no subtask {subtask} of vertex {vertex}")]
    NoSuchTask {
        /// The vertex.
        vertex: VertexIndex,
        /// The subtask.
        subtask: SubtaskIndex,
    },
    /// The chain could not be built.
    #[error("building the chain: {0}")]
    Build(#[from] BuildError),
    /// An output edge could not be set up (its key or partitioner).
    #[error("output edge {plan_edge}: {message}")]
    Output {
        /// The plan edge.
        plan_edge: usize,
        /// What is wrong.
        message: String,
    },
    /// A vertex whose head is not a source has no input.
    #[error("the chain's head is not a source and nothing feeds it")]
    NoInput,
    /// The restored state file cannot be used.
    #[error("restore: {0}")]
    Restore(#[from] RestoreError),
    /// An operator failed.
    #[error("{0}")]
    Operator(#[from] OperatorError),
    /// An input channel delivered something that cannot be processed.
    #[error("{0}")]
    Gate(#[from] GateError),
    /// A record arrived after the input had ended (as the restored state says).
    #[error("input channel {channel}: a record after the end of input")]
    RecordAfterEnd {
        /// The channel.
        channel: ChannelIndex,
    },
}

impl TaskError {
    /// Whether the task failed because a state file it restores from cannot be read (corrupt,
    /// truncated, of the wrong size or checksum). The driver then reports the checkpoint of its
    /// `RestoreSpec` as `TaskReport::unreadable_checkpoint` (as it does when it cannot read the
    /// file at all), so the JobMaster stops restoring that checkpoint.
    pub fn is_unreadable_state(&self) -> bool {
        use crate::dataflow::operators::OperatorErrorKind;
        use crate::dataflow::state::StateError;
        match self {
            TaskError::Restore(RestoreError::Storage(_)) => true,
            // A missing or corrupt file of an incremental checkpoint.
            TaskError::Restore(RestoreError::Operator(error)) => {
                matches!(error.kind(), OperatorErrorKind::State(StateError::NativeFiles { .. }))
            }
            _ => false,
        }
    }
}

#[derive(Debug)]
enum Phase {
    Running,
    /// The input has ended; finishing once a checkpoint taken now completes.
    AwaitingFinalCheckpoint,
    Finished {
        reported: bool,
    },
    /// The error until it is reported.
    Failed(Option<TaskError>),
    Canceled,
}

/// One running task: its chain, gate and writers (see the module doc).
#[derive(Debug)]
pub struct TaskRunner {
    execution: ExecutionId,
    identity: TaskIdentity,
    chain: Chain,
    is_source: bool,
    layout: InputLayout,
    /// `None` for a source.
    gate: Option<InputGate>,
    outputs: Vec<EdgeOutput>,
    /// The records the gate decoded last (a batch, its slots reused).
    batch: RowBatch,
    phase: Phase,
    /// The chain's `end_of_input` ran (now or before the restored snapshot).
    input_ended: bool,
    /// Deployed as finished: the chain never runs, snapshots hold no operator state.
    finished_on_restore: bool,
    wait_for_final_checkpoint: bool,
    /// The first checkpoint taken while waiting for the final one.
    final_checkpoint: Option<CheckpointId>,
    /// Highest checkpoint snapshotted or declined here.
    checkpoint_latest: Option<CheckpointId>,
    /// An unaligned snapshot waiting for the rest of its in-flight records.
    pending: Option<PendingSnapshot>,
    /// Checkpoints up to this one were aborted by the coordinator: no decline for them.
    aborted_through: Option<CheckpointId>,
    /// A stop-with-savepoint's barrier passed this task and the savepoint has not completed or
    /// been aborted yet: a source emits nothing meanwhile. `(savepoint, drain)`.
    stop_savepoint: Option<(CheckpointId, bool)>,
    /// The stop-with-savepoint completed: the task ends without waiting for a final checkpoint.
    stopped: bool,
    /// Snapshots and declines not yet polled.
    events: VecDeque<TaskOutput>,
    /// Closed output buffers at which the task stops consuming.
    backlog_max_buffers: usize,
    metrics: TaskMetrics,
    clock: TimeAccount,
}

impl TaskRunner {
    /// Builds the chain of `setup.execution`, its gate and writers, and restores its state.
    pub fn new(setup: TaskSetup<'_>) -> Result<TaskRunner, TaskError> {
        let TaskSetup {
            execution,
            plan,
            config,
            restore,
            connectors,
            seed,
            wait_for_final_checkpoint,
            restore_finished,
        } = setup;
        let (vertex, subtask) = (execution.vertex, execution.subtask);
        let job_vertex = match plan.vertices.get(vertex.index()) {
            Some(job_vertex) if subtask.0 < job_vertex.parallelism => job_vertex,
            _ => return Err(TaskError::NoSuchTask { vertex, subtask }),
        };
        let options = ChainOptions { attempt: setup.execution.attempt.0, ..ChainOptions::from_config(config) };
        let mut chain = build_chain(plan, vertex, subtask, &options, connectors)?;
        let identity = TaskIdentity {
            job: execution.job,
            vertex: job_vertex.id,
            subtask,
            attempt: execution.attempt,
            parallelism: job_vertex.parallelism,
            operators: job_vertex.operators.clone(),
            uids: chain.operator_uids().map(str::to_string).collect(),
        };
        let network = &config.task_manager;
        let settings = WriterSettings {
            segment_bytes: usize::try_from(network.segment_bytes).unwrap_or(usize::MAX).max(1),
            buffer_timeout: config.pipeline.buffer_timeout,
            seed,
        };
        let outputs = build_outputs(plan, vertex, subtask, &chain, settings)?;
        let layout = InputLayout::new(plan, vertex, subtask);
        let is_source = chain.is_source();
        if !is_source && layout.channels() == 0 {
            return Err(TaskError::NoInput);
        }
        let (exclusive, floating) = (network.buffers_per_channel as usize, network.floating_buffers_per_gate as usize);
        let queue_limit = exclusive.saturating_add(floating).max(1);
        let gate = (!is_source)
            .then(|| InputGate::from_config(layout.channels(), &config.checkpoint).with_queue_limit(queue_limit));
        let output_channels: usize = outputs.iter().map(|output| output.writer.selector().channels() as usize).sum();
        let backlog_max_buffers = output_channels.saturating_mul(exclusive.max(1)).saturating_add(floating).max(1);
        let checkpointing = config.checkpoint.interval.is_some();
        let mut runner = TaskRunner {
            execution,
            identity,
            chain,
            is_source,
            layout,
            gate,
            outputs,
            batch: RowBatch::new(),
            phase: Phase::Running,
            input_ended: restore_finished,
            finished_on_restore: restore_finished,
            wait_for_final_checkpoint: wait_for_final_checkpoint && checkpointing,
            final_checkpoint: None,
            checkpoint_latest: None,
            pending: None,
            aborted_through: None,
            stop_savepoint: None,
            stopped: false,
            events: VecDeque::new(),
            backlog_max_buffers,
            metrics: TaskMetrics::default(),
            clock: TimeAccount::default(),
        };
        if restore_finished && !restore.is_empty() {
            return Err(RestoreError::FinishedWithState.into());
        }
        runner.restore(&restore)?;
        Ok(runner)
    }

    /// Restores the chain from its state files and replays the in-flight records: the subtask's
    /// own file, or after a change of parallelism the old subtasks' files that overlap it (the
    /// chain keeps its key groups and its share of the items, see `Chain::restore`).
    fn restore(&mut self, files: &[&[u8]]) -> Result<(), TaskError> {
        let mut snapshots = Vec::with_capacity(files.len());
        let mut channels = Vec::with_capacity(files.len());
        for bytes in files {
            let (snapshot, channel) = snapshot::decode(&self.identity, bytes)?;
            snapshots.push(snapshot);
            channels.push(channel);
        }
        let Some(checkpoint) = snapshots.first().map(|snapshot| snapshot.checkpoint) else { return Ok(()) };
        if snapshots.iter().any(|snapshot| snapshot.checkpoint != checkpoint) {
            return Err(RestoreError::Rescale("the state files are of different checkpoints".to_string()).into());
        }
        let own = matches!(snapshots.as_slice(), [only] if only.subtask == self.identity.subtask
            && only.parallelism == self.identity.parallelism);
        if !own && channels.iter().any(|channel| !channel.in_flight.is_empty()) {
            let message = "in-flight records of an unaligned checkpoint cannot be rescaled; restore from a savepoint";
            return Err(RestoreError::Rescale(message.to_string()).into());
        }
        self.chain.restore(&snapshots).map_err(RestoreError::Operator)?;
        // After a rescale only a source whose every old subtask had ended stays ended; other tasks
        // wait for the end of their inputs again (a record may still come from a new producer).
        let all_ended = channels.iter().all(|channel| channel.input_ended);
        self.input_ended = all_ended && (own || self.is_source);
        self.checkpoint_latest = Some(checkpoint);
        let in_flight = channels.into_iter().flat_map(|channel| channel.in_flight);
        for (input, row) in in_flight {
            if input as usize >= self.chain.input_count() {
                let message = format!("in-flight record of input {input} of {}", self.chain.input_count());
                let operator = self.identity.operators[0];
                return Err(RestoreError::Undecodable { operator, what: "channel state", message }.into());
            }
            self.chain.process(input as usize, &row, &mut self.outputs)?;
        }
        Ok(())
    }

    /// The attempt this task runs.
    pub fn execution(&self) -> ExecutionId {
        self.execution
    }

    /// The channel that carries what producer subtask `producer` sends on plan edge `plan_edge`.
    pub fn input_channel(&self, plan_edge: usize, producer: SubtaskIndex) -> Option<ChannelIndex> {
        self.layout.channel(plan_edge, producer)
    }

    /// Where each input channel comes from.
    pub fn input_layout(&self) -> &InputLayout {
        &self.layout
    }

    /// Queues a buffer that arrived on `channel`; refused (and handed back) when the channel's
    /// queue is full (keep it and retry after a step), the channel does not exist or has ended,
    /// or the task is no longer running.
    pub fn push_buffer(&mut self, channel: ChannelIndex, buffer: Buffer) -> Result<(), Refused<Buffer>> {
        let Some(gate) = self.gate.as_mut() else {
            return Err(Refused { channel, reason: RefusalReason::NoSuchChannel, item: buffer });
        };
        if !matches!(self.phase, Phase::Running | Phase::AwaitingFinalCheckpoint) {
            return Err(Refused { channel, reason: RefusalReason::Ended, item: buffer });
        }
        let bytes = buffer.len_bytes() as u64;
        gate.push_buffer(channel, buffer)?;
        self.metrics.bytes_in += bytes;
        Ok(())
    }

    /// Whether a buffer pushed to `channel` now would be taken.
    pub fn can_accept(&self, channel: ChannelIndex) -> bool {
        self.is_live() && self.gate.as_ref().is_some_and(|gate| gate.can_accept(channel))
    }

    /// Cancels the task: nothing more comes out.
    pub fn cancel(&mut self) {
        self.phase = Phase::Canceled;
        self.pending = None;
        self.events.clear();
    }

    /// Runs the chain at `now` for up to `budget_records` records (see the module doc).
    pub fn step(&mut self, now: Time, budget_records: usize) -> StepStatus {
        self.clock.begin(now, &mut self.metrics);
        let status = match self.phase {
            Phase::Running => match self.run(now, budget_records) {
                Ok(status) => status,
                Err(error) => {
                    self.fail(error);
                    StepStatus::Failed
                }
            },
            Phase::AwaitingFinalCheckpoint => {
                self.flush_due(now);
                StepStatus::Idle
            }
            Phase::Finished { .. } => StepStatus::Finished,
            Phase::Failed(_) => StepStatus::Failed,
            Phase::Canceled => StepStatus::Canceled,
        };
        self.clock.end(now, status);
        status
    }

    fn run(&mut self, now: Time, budget: usize) -> Result<StepStatus, TaskError> {
        for output in &mut self.outputs {
            output.now = now;
        }
        if !self.input_ended {
            self.chain.fire_timers(now, &mut self.outputs)?;
        }
        let status = if self.backlog_full() {
            StepStatus::Blocked
        } else if self.is_source {
            self.run_source(now, budget)?
        } else {
            self.run_gate(now, budget)?
        };
        if self.is_live() {
            self.flush_due(now);
        }
        Ok(status)
    }

    fn run_source(&mut self, now: Time, budget: usize) -> Result<StepStatus, TaskError> {
        if self.input_ended {
            return self.end_input(); // Restored after its end.
        }
        if self.stop_savepoint.is_some() {
            return Ok(StepStatus::Idle); // Stopped at a stop-with-savepoint's barrier.
        }
        let mut left = budget;
        while left > 0 {
            let chunk = left.min(SOURCE_CHUNK_RECORDS);
            match self.chain.poll(now, chunk, &mut self.outputs)? {
                PollStatus::Available => left -= chunk,
                PollStatus::Idle => return Ok(StepStatus::Idle),
                PollStatus::Finished => return self.end_input(),
            }
            if self.backlog_full() {
                return Ok(StepStatus::Blocked);
            }
        }
        Ok(StepStatus::Progress)
    }

    fn run_gate(&mut self, now: Time, budget: usize) -> Result<StepStatus, TaskError> {
        let mut left = budget;
        while left > 0 {
            let Some(gate) = self.gate.as_mut() else { unreachable!("a task that is not a source has a gate") };
            let max_records = left.min(BACKLOG_CHECK_RECORDS);
            let Some(output) = gate.poll_batch(now, &mut self.batch, max_records)? else {
                return Ok(StepStatus::Idle);
            };
            let GateOutput::Record { channel, row: () } = output else {
                match self.on_gate_event(output)? {
                    Some(status) => return Ok(status),
                    None => continue,
                }
            };
            if self.input_ended {
                return Err(TaskError::RecordAfterEnd { channel });
            }
            self.chain.process_batch(self.layout.input_of(channel), &self.batch, &mut self.outputs)?;
            left -= self.batch.len();
            if self.backlog_full() {
                return Ok(StepStatus::Blocked);
            }
        }
        Ok(StepStatus::Progress)
    }

    /// Anything the gate hands over but a record; `Some` ends the step with that status.
    fn on_gate_event(&mut self, output: GateOutput<()>) -> Result<Option<StepStatus>, TaskError> {
        match output {
            GateOutput::Record { .. } => unreachable!("records are handled by the caller"),
            // A task deployed as finished never runs its chain.
            GateOutput::Watermark(_) if self.finished_on_restore => {}
            GateOutput::Watermark(watermark) => self.chain.watermark(watermark, &mut self.outputs)?,
            GateOutput::Checkpoint { barrier, in_flight, in_flight_complete, alignment } => {
                self.on_checkpoint(barrier, in_flight, in_flight_complete, alignment);
            }
            GateOutput::CheckpointInFlight { checkpoint, in_flight } => self.on_in_flight(checkpoint, in_flight),
            GateOutput::CheckpointAborted { checkpoint } => self.on_aborted(checkpoint),
            GateOutput::EndOfInput => return self.end_input().map(Some),
        }
        Ok(None)
    }

    /// Every input has ended: flush the chain, then finish or wait for the final checkpoint.
    /// After a stop-with-savepoint (its barrier passed here, and the inputs end only once it
    /// completed) the task finishes at once, and without `drain` the chain is not flushed:
    /// what it holds is in the savepoint (Flink's stop without drain does not finish operators).
    pub(super) fn end_input(&mut self) -> Result<StepStatus, TaskError> {
        let stopping = self.stopped || self.stop_savepoint.is_some();
        let drain = self.stop_savepoint.is_none_or(|(_, drain)| drain);
        if !self.input_ended {
            if !stopping || drain {
                self.chain.end_of_input(&mut self.outputs)?;
            }
            self.input_ended = true;
        }
        if self.wait_for_final_checkpoint && !stopping {
            for output in &mut self.outputs {
                output.writer.flush_all();
            }
            if !matches!(self.phase, Phase::AwaitingFinalCheckpoint) {
                let checkpoint_latest = self.checkpoint_latest;
                self.events.push_back(TaskOutput::AwaitingFinalCheckpoint { checkpoint_latest });
            }
            self.phase = Phase::AwaitingFinalCheckpoint;
            return Ok(StepStatus::Idle);
        }
        self.finish();
        Ok(StepStatus::Finished)
    }

    /// Ends every output edge; the task is finished.
    fn finish(&mut self) {
        for output in &mut self.outputs {
            output.writer.emit_end_of_input();
        }
        self.pending = None;
        self.phase = Phase::Finished { reported: false };
    }

    fn fail(&mut self, error: TaskError) {
        self.pending = None;
        self.events.clear();
        self.phase = Phase::Failed(Some(error));
    }

    fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Running | Phase::AwaitingFinalCheckpoint)
    }

    fn flush_due(&mut self, now: Time) {
        for output in &mut self.outputs {
            output.writer.flush_due(now);
        }
    }

    /// Closed buffers not yet polled.
    fn backlog(&self) -> usize {
        self.outputs.iter().map(|output| output.writer.pending_buffers()).sum()
    }

    #[inline]
    fn backlog_full(&self) -> bool {
        !self.outputs.is_empty() && self.backlog() >= self.backlog_max_buffers
    }

    /// The next output: snapshots and declines, then buffers, then `Finished` (or only
    /// `Failed`); `None` when there is nothing now, and forever after the end.
    pub fn poll_output(&mut self) -> Option<TaskOutput> {
        match &mut self.phase {
            Phase::Canceled => return None,
            Phase::Failed(error) => return error.take().map(|error| TaskOutput::Failed { error }),
            _ => {}
        }
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        for output in &mut self.outputs {
            if let Some((channel, buffer)) = output.writer.poll_buffer() {
                let consumer = SubtaskIndex(output.consumers_start + channel.0);
                return Some(TaskOutput::Buffer { edge: output.plan_edge, consumer, buffer });
            }
        }
        match &mut self.phase {
            Phase::Finished { reported } if !*reported => {
                *reported = true;
                Some(TaskOutput::Finished)
            }
            _ => None,
        }
    }

    /// When the task next wants a step without new input: a buffer timeout, a timer, a rate
    /// limit or an aligned-checkpoint timeout. `None` once it has ended.
    pub fn poll_timeout(&self) -> Option<Time> {
        if !self.is_live() {
            return None;
        }
        let writers = self.outputs.iter().filter_map(|output| output.writer.poll_timeout());
        let timers = if self.input_ended { None } else { self.chain.next_timer() };
        let gate = self.gate.as_ref().and_then(InputGate::poll_timeout);
        writers.chain(timers).chain(gate).min()
    }

    /// Counters: records and bytes in and out, busy, idle and backpressured time.
    pub fn metrics(&self) -> TaskMetrics {
        let mut metrics = self.metrics;
        metrics.records_in = self.gate.as_ref().map_or(0, |gate| gate.metrics().records_in);
        for output in &self.outputs {
            let sent = output.writer.metrics();
            metrics.records_out += sent.records_out;
            metrics.bytes_out += sent.bytes_out;
            metrics.buffers_out += sent.buffers_out;
        }
        metrics
    }

    /// Whether [`TaskRunner::trigger_checkpoint`] would take a barrier now: a running source, or
    /// a task waiting for its final checkpoint (where the coordinator triggers once the tasks
    /// before it finished).
    pub fn accepts_trigger(&self) -> bool {
        match self.phase {
            Phase::Running => self.is_source,
            Phase::AwaitingFinalCheckpoint => true,
            Phase::Finished { .. } | Phase::Failed(_) | Phase::Canceled => false,
        }
    }

    /// Whether the input has ended and the task waits for a final checkpoint to finish.
    pub fn awaits_final_checkpoint(&self) -> bool {
        matches!(self.phase, Phase::AwaitingFinalCheckpoint)
    }

    /// Whether the task has finished, failed or been cancelled.
    pub fn is_terminal(&self) -> bool {
        !self.is_live()
    }

    /// Checks the task's invariants (see the module doc); the simulator calls it after events.
    pub fn check_invariants(&self) -> Result<(), String> {
        let ended = self.outputs.iter().filter(|output| output.writer.is_ended()).count();
        let finished = matches!(self.phase, Phase::Finished { .. });
        if self.is_live() && ended > 0 {
            return Err(format!("{ended} output edges ended while the task runs"));
        }
        if finished && ended != self.outputs.len() {
            return Err(format!("finished with {} of {} output edges ended", ended, self.outputs.len()));
        }
        if matches!(self.phase, Phase::AwaitingFinalCheckpoint) && !self.input_ended {
            return Err("waiting for the final checkpoint before the end of input".to_string());
        }
        if self.stopped && self.stop_savepoint.is_none() {
            return Err("stopped without a stop-with-savepoint's barrier".to_string());
        }
        if self.pending.is_some() && !matches!(self.phase, Phase::Running) {
            return Err("an unaligned snapshot pending outside RUNNING".to_string());
        }
        match &self.gate {
            Some(gate) => gate.check_invariants(),
            None => Ok(()),
        }
    }
}
