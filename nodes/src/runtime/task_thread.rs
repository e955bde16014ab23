//! One task on its own thread, as Flink runs each task: the thread owns a `TaskRunner` (the same
//! step function the simulator runs), reads its mailbox (buffers, triggers, notifications,
//! cancel, and failure when a data connection to another TaskManager broke), steps the chain,
//! sends buffers to their consumers through the [`Exchange`] under per-channel credit, writes its
//! snapshots to checkpoint storage and reports to its TaskExecutor through a callback.

use super::Clock;
use super::connectors::LocalConnectors;
use super::credit::{Credit, Receipt};
use super::exchange::{Channel, Exchange, Mail};
use super::operators::Operators;
use super::rocks_state::{RocksState, SharedDirs};
use super::storage::CheckpointStorage;
use std::collections::{BTreeMap, VecDeque};
#[cfg(not(madsim))]
use std::sync::mpsc::RecvTimeoutError;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_core::checkpoint::{DeclineReason, storage as format};
use weir_core::config::Config;
use weir_core::dataflow::buffer::Buffer;
use weir_core::dataflow::partition::ChannelIndex;
use weir_core::dataflow::task::{StepStatus, TaskMetrics, TaskOutput, TaskRunner, TaskSetup};
use weir_core::ids::{CheckpointId, JobId};
use weir_core::plan::JobPlan;
use weir_core::protocol::{
    CheckpointOutcome, ExecutionId, ExecutionState, TaskCheckpointReport, TaskDeployment, TaskReport,
};

/// Records a task processes per step before it looks at its mailbox again.
const STEP_BUDGET_RECORDS: usize = 64 * 1024;
/// Longest sleep of an idle task between two looks at its mailbox.
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// How long a producer waits for a credit before it looks at its mailbox (for a cancel).
#[cfg(not(madsim))]
const CREDIT_WAIT: Duration = Duration::from_millis(5);

/// What a task thread tells its TaskExecutor.
#[derive(Debug)]
pub enum TaskEvent {
    /// A new state.
    State(TaskReport),
    /// A checkpoint answer.
    Checkpoint(TaskCheckpointReport),
    /// The task's input ended and it waits for its final checkpoint.
    FinalCheckpointAwaited {
        /// The attempt.
        execution: ExecutionId,
        /// The newest checkpoint it took before its input ended.
        checkpoint_latest: Option<CheckpointId>,
    },
}

/// Checkpoint directories by (job, checkpoint), as the triggers named them; tasks that are not
/// sources learn a checkpoint only from its barrier, so they look the directory up here.
pub type Locations = Arc<Mutex<BTreeMap<(JobId, CheckpointId), String>>>;

/// The latest metrics of every task thread of the process, for progress and summaries.
pub type MetricsBoard = Arc<Mutex<BTreeMap<ExecutionId, TaskMetrics>>>;

/// Everything a task thread needs.
pub struct TaskContext {
    /// What to run.
    pub deployment: TaskDeployment,
    /// The job's plan.
    pub plan: Arc<JobPlan>,
    /// The job's configuration.
    pub config: Arc<Config>,
    /// Where snapshots go.
    pub storage: CheckpointStorage,
    /// The process's running tasks.
    pub exchange: Exchange,
    /// Checkpoint directories.
    pub locations: Locations,
    /// The process clock.
    pub clock: Clock,
    /// Reports to the TaskExecutor.
    pub report: Arc<dyn Fn(TaskEvent) + Send + Sync>,
    /// Where the task publishes its metrics.
    pub metrics: MetricsBoard,
    /// The Rust operators of this process.
    pub operators: Operators,
    /// Where keyed state of the `rocksdb` backend lives.
    pub rocks: RocksState,
}

/// Starts the task's thread; its mailbox is registered before this returns.
pub fn spawn(context: TaskContext) -> Result<(), String> {
    let (sender, mailbox) = channel();
    let execution = context.deployment.execution;
    context.exchange.register(execution, sender);
    let exchange = context.exchange.clone();
    #[cfg(madsim)]
    {
        // madsim runs no system threads: the task is a simulated task of its node, stepped by
        // the same turns, its waits virtual.
        let _ = exchange;
        tokio::spawn(async move { TaskThread::new(context, mailbox).run_simulated().await });
        Ok(())
    }
    #[cfg(not(madsim))]
    {
        let spawned = std::thread::Builder::new().name(format!("task {execution}")).spawn(move || {
            let mut task = TaskThread::new(context, mailbox);
            task.run();
        });
        spawned.map(|_| ()).map_err(|error| {
            exchange.deregister(&execution);
            format!("cannot start a thread for task {execution}: {error}")
        })
    }
}

/// What one turn of a task's loop came to.
enum Turn {
    /// It did work; turn again at once.
    Busy,
    /// Nothing to do for at most this long (or until mail comes).
    Idle(Duration),
    /// A buffer waits for its channel's credit.
    Blocked,
    /// The task ended.
    Ended(Ended),
}

struct TaskThread {
    context: TaskContext,
    execution: ExecutionId,
    mailbox: Receiver<Mail>,
    /// Mail read while waiting for credit, handled next.
    stash: VecDeque<Mail>,
    /// Buffers the task's input queues refused, per channel, with their receipts.
    waiting: BTreeMap<ChannelIndex, VecDeque<(Buffer, Receipt)>>,
    /// Credit of each channel to a consumer.
    credits: BTreeMap<ExecutionId, Arc<Credit>>,
    cancelled: bool,
    /// Why the task must fail, told by the exchange (a data connection broke).
    failure: Option<String>,
    /// A buffer waiting for its channel's credit: (edge, consumer, buffer, the channel's credit).
    blocked: Option<(usize, ExecutionId, Buffer, Arc<Credit>)>,
}

impl TaskThread {
    fn new(context: TaskContext, mailbox: Receiver<Mail>) -> TaskThread {
        let execution = context.deployment.execution;
        TaskThread {
            context,
            execution,
            mailbox,
            stash: VecDeque::new(),
            waiting: BTreeMap::new(),
            credits: BTreeMap::new(),
            cancelled: false,
            failure: None,
            blocked: None,
        }
    }

    fn state(&self, state: ExecutionState, error: Option<String>) {
        let report = TaskReport { execution: self.execution, state, error, unreadable_checkpoint: None };
        (self.context.report)(TaskEvent::State(report));
    }

    #[cfg(not(madsim))]
    fn run(&mut self) {
        let Some(mut runner) = self.start() else { return };
        let ended = self.drive(&mut runner);
        // The chain's resources (RocksDB instances and their files) go before the final
        // report, after which the process may exit.
        drop(runner);
        self.finish(ended);
    }

    /// The task under madsim: the same turns, waiting in virtual time.
    #[cfg(madsim)]
    async fn run_simulated(mut self) {
        /// Longest virtual wait between two looks at the mailbox.
        const POLL: Duration = Duration::from_millis(2);
        let Some(mut runner) = self.start() else { return };
        let ended = loop {
            match self.turn(&mut runner, Duration::ZERO) {
                Turn::Busy => tokio::task::yield_now().await,
                Turn::Idle(wait) => tokio::time::sleep(wait.clamp(Duration::from_micros(1), POLL)).await,
                Turn::Blocked => tokio::time::sleep(POLL).await,
                Turn::Ended(ended) => break ended,
            }
        };
        drop(runner);
        self.finish(ended);
    }

    /// Reports INITIALIZING, builds the runner and reports RUNNING; `None` (reported FAILED)
    /// when it cannot run.
    fn start(&mut self) -> Option<TaskRunner> {
        self.state(ExecutionState::Initializing, None);
        match self.build() {
            Ok(runner) => {
                self.state(ExecutionState::Running, None);
                Some(runner)
            }
            Err((error, unreadable)) => {
                self.context.exchange.deregister(&self.execution);
                let restored = self.context.deployment.restore.as_ref().map(|restore| restore.checkpoint);
                let unreadable_checkpoint = restored.filter(|_| unreadable);
                let state = ExecutionState::Failed;
                let report = TaskReport { execution: self.execution, state, error: Some(error), unreadable_checkpoint };
                (self.context.report)(TaskEvent::State(report));
                None
            }
        }
    }

    /// Leaves the exchange, gives back every credit it holds, and reports how the task ended.
    fn finish(&mut self, ended: Ended) {
        self.context.exchange.deregister(&self.execution);
        self.blocked = None; // its credit was never taken
        self.waiting.clear(); // their receipts give their credit back
        while let Ok(mail) = self.mailbox.try_recv() {
            drop(mail);
        }
        match ended {
            Ended::Finished => self.state(ExecutionState::Finished, None),
            Ended::Failed(error) => self.state(ExecutionState::Failed, Some(error)),
            Ended::Canceled => self.state(ExecutionState::Canceled, None),
        }
    }

    /// The task's runner, or why it cannot run and whether that is unreadable restored state.
    fn build(&self) -> Result<TaskRunner, (String, bool)> {
        let mut files = Vec::new();
        if let Some(restore) = &self.context.deployment.restore {
            for handle in &restore.states {
                files.push(self.context.storage.read(&restore.location, &handle.file).map_err(|e| (e, true))?);
            }
        }
        let (operators, rocks) = (self.context.operators.clone(), self.context.rocks.clone());
        let shared = self.shared_dirs();
        let mut connectors = LocalConnectors::new(operators, rocks, self.context.deployment.allocation, shared);
        let setup = TaskSetup {
            execution: self.execution,
            plan: &self.context.plan,
            config: &self.context.config,
            restore: files.iter().map(Vec::as_slice).collect(),
            restore_finished: self.context.deployment.restore.as_ref().is_some_and(|restore| restore.finished),
            connectors: &mut connectors,
            seed: u64::from(self.execution.vertex.0) << 32 | u64::from(self.execution.subtask.0),
            wait_for_final_checkpoint: self.context.config.checkpoint.interval.is_some(),
        };
        TaskRunner::new(setup).map_err(|error| (error.to_string(), error.is_unreadable_state()))
    }

    /// The job's shared directory for incremental checkpoints (when they are on), and that of
    /// the checkpoint restored.
    fn shared_dirs(&self) -> SharedDirs {
        let (config, storage) = (&self.context.config, &self.context.storage);
        let upload = config
            .state_backend
            .incremental
            .then(|| storage.resolve(&format::shared_location(config.checkpoint.dir.as_deref(), self.execution.job)));
        let restore = self.context.deployment.restore.as_ref();
        let download = restore.map(|restore| storage.resolve(&format::shared_location_of(&restore.location)));
        SharedDirs { upload, download }
    }

    /// Runs the task until it ends, blocking its thread while it waits.
    #[cfg(not(madsim))]
    fn drive(&mut self, runner: &mut TaskRunner) -> Ended {
        loop {
            match self.turn(runner, CREDIT_WAIT) {
                Turn::Busy | Turn::Blocked => {}
                Turn::Idle(wait) => {
                    if !wait.is_zero() {
                        self.wait_for_mail(wait);
                    }
                }
                Turn::Ended(ended) => return ended,
            }
        }
    }

    /// One turn: read the mail, send a buffer that waited for credit (waiting at most
    /// `credit_wait` for it), feed the inputs, step the chain, carry out its outputs. Never waits
    /// otherwise, so a thread and a simulated task drive the same turns.
    fn turn(&mut self, runner: &mut TaskRunner, credit_wait: Duration) -> Turn {
        self.read_mail(runner);
        if let Some(ended) = self.stopped() {
            runner.cancel();
            return Turn::Ended(ended);
        }
        if !self.send_blocked(credit_wait) {
            return Turn::Blocked;
        }
        self.feed_waiting(runner);
        if let Some(turn) = self.carry_out(runner) {
            return turn;
        }
        let status = runner.step(self.context.clock.now(), STEP_BUDGET_RECORDS);
        self.publish(runner);
        if let Some(turn) = self.carry_out(runner) {
            return turn;
        }
        if status != StepStatus::Idle {
            return Turn::Busy;
        }
        let wait = runner
            .poll_timeout()
            .map(|at| Duration::from_micros(at.0.saturating_sub(self.context.clock.now().0)))
            .unwrap_or(IDLE_WAIT)
            .min(IDLE_WAIT);
        Turn::Idle(wait)
    }

    fn publish(&self, runner: &TaskRunner) {
        let mut board = self.context.metrics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        board.insert(self.execution, runner.metrics());
    }

    #[cfg(not(madsim))]
    fn wait_for_mail(&mut self, wait: Duration) {
        if !self.stash.is_empty() {
            return;
        }
        match self.mailbox.recv_timeout(wait) {
            Ok(mail) => self.stash.push_back(mail),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.cancelled = true,
        }
    }

    /// Handles every mail there is.
    fn read_mail(&mut self, runner: &mut TaskRunner) {
        while let Some(mail) = self.stash.pop_front().or_else(|| self.mailbox.try_recv().ok()) {
            match mail {
                Mail::Buffer { producer, edge, buffer, receipt } => {
                    match runner.input_channel(edge, producer.subtask) {
                        Some(channel) => self.waiting.entry(channel).or_default().push_back((buffer, receipt)),
                        None => receipt.give_back(),
                    }
                }
                Mail::Trigger(barrier, location) => {
                    self.remember_location(barrier.checkpoint, location);
                    runner.trigger_checkpoint(barrier);
                }
                Mail::Notify(checkpoint, complete) => runner.notify_checkpoint(checkpoint, complete),
                Mail::Cancel => self.cancelled = true,
                Mail::Fail(reason) => {
                    self.failure.get_or_insert(reason);
                }
            }
        }
    }

    /// How the task ends when it was cancelled or told to fail; a failure wins.
    fn stopped(&mut self) -> Option<Ended> {
        match self.failure.take() {
            Some(reason) => Some(Ended::Failed(reason)),
            None => self.cancelled.then_some(Ended::Canceled),
        }
    }

    fn remember_location(&self, checkpoint: CheckpointId, location: String) {
        let mut locations = self.context.locations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        locations.insert((self.execution.job, checkpoint), location);
    }

    fn feed_waiting(&mut self, runner: &mut TaskRunner) {
        for (channel, queue) in self.waiting.iter_mut() {
            while let Some((buffer, receipt)) = queue.pop_front() {
                match runner.push_buffer(*channel, buffer) {
                    Ok(()) => receipt.give_back(),
                    Err(refused) => {
                        queue.push_front((refused.item, receipt));
                        break;
                    }
                }
            }
        }
    }

    /// Carries out the task's outputs; `Some` once it ended or a buffer waits for credit.
    fn carry_out(&mut self, runner: &mut TaskRunner) -> Option<Turn> {
        while let Some(output) = runner.poll_output() {
            match output {
                TaskOutput::Buffer { edge, consumer, buffer } => {
                    let Some(target) = self.context.plan.edges.get(edge).map(|edge| edge.target) else { continue };
                    let consumer = ExecutionId { vertex: target, subtask: consumer, ..self.execution };
                    let exchange = &self.context.exchange;
                    let credit = self.credits.entry(consumer).or_insert_with(|| exchange.credit()).clone();
                    self.blocked = Some((edge, consumer, buffer, credit));
                    if !self.send_blocked(Duration::ZERO) {
                        return Some(Turn::Blocked);
                    }
                }
                TaskOutput::Snapshot { checkpoint, bytes, shared, metrics } => {
                    self.store_snapshot(checkpoint, &bytes, shared, metrics)
                }
                TaskOutput::Decline { checkpoint, reason } => {
                    self.checkpoint_report(checkpoint, CheckpointOutcome::Declined(reason));
                }
                TaskOutput::AwaitingFinalCheckpoint { checkpoint_latest } => {
                    let execution = self.execution;
                    (self.context.report)(TaskEvent::FinalCheckpointAwaited { execution, checkpoint_latest });
                }
                TaskOutput::Finished => {
                    self.publish(runner);
                    return Some(Turn::Ended(Ended::Finished));
                }
                TaskOutput::Failed { error } => {
                    self.publish(runner);
                    return Some(Turn::Ended(Ended::Failed(error.to_string())));
                }
            }
        }
        None
    }

    /// Sends the buffer that waits for its channel's credit, waiting at most `wait` for one;
    /// true when nothing waits any more.
    fn send_blocked(&mut self, wait: Duration) -> bool {
        let Some((edge, consumer, buffer, credit)) = self.blocked.take() else { return true };
        let Some(backlog) = credit.take(wait) else {
            self.blocked = Some((edge, consumer, buffer, credit));
            return false;
        };
        let channel = Channel { producer: self.execution, consumer, edge, credit: &credit };
        self.context.exchange.send(channel, buffer, backlog);
        true
    }

    fn store_snapshot(
        &self,
        checkpoint: CheckpointId,
        bytes: &[u8],
        shared: Vec<String>,
        metrics: weir_core::checkpoint::AckMetrics,
    ) {
        let job = self.execution.job;
        let location = {
            let locations = self.context.locations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            locations.get(&(job, checkpoint)).cloned()
        };
        let location = location.unwrap_or_else(|| {
            format::checkpoint_location(self.context.config.checkpoint.dir.as_deref(), job, checkpoint)
        });
        let vertex = self.context.plan.vertex(self.execution.vertex).id;
        let file = format::state_file_name(vertex, self.execution.subtask, self.execution.attempt);
        let outcome = match self.context.storage.write(&location, &file, bytes) {
            Ok(()) => {
                let state = weir_core::checkpoint::TaskStateHandle { shared, ..format::handle_for(file, bytes) };
                CheckpointOutcome::Acknowledged { state: Some(state), metrics }
            }
            Err(error) => CheckpointOutcome::Declined(DeclineReason::Io(error)),
        };
        self.checkpoint_report(checkpoint, outcome);
    }

    fn checkpoint_report(&self, checkpoint: CheckpointId, outcome: CheckpointOutcome) {
        let report = TaskCheckpointReport { execution: self.execution, checkpoint, outcome };
        (self.context.report)(TaskEvent::Checkpoint(report));
    }
}

enum Ended {
    Finished,
    Failed(String),
    Canceled,
}
