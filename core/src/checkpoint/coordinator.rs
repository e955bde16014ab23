//! [`CheckpointCoordinator`]: Flink's CheckpointCoordinator (with its CheckpointRequestDecider,
//! CheckpointFailureManager and completed checkpoint store) as a sans-IO state machine.
//!
//! **Triggering.** While every task is RUNNING ([`Input::TasksRunning`]) the periodic trigger
//! fires first after a random delay in `[min-pause, interval]`, then every `interval` (fixed
//! rate; missed periods are skipped, not caught up). Each firing queues a periodic request;
//! savepoint requests queue ahead of periodic ones. A queued request starts when fewer than
//! `max-concurrent-checkpoints` are pending (savepoints are *forced* past that limit unless
//! unaligned checkpoints are enabled, as in Flink); a periodic request that would start sooner
//! than `min-pause` after the last completion is dropped and the trigger rescheduled to that
//! moment. `interval` is raised to `min-pause` if smaller. The queue holds at most
//! [`MAX_QUEUED_REQUESTS`]. Ids come from a counter that only grows; a request refused before it
//! starts (tasks not running, no savepoint directory, queue full) uses no id.
//!
//! **Finished tasks** (Flink's checkpoints after tasks finish, FLIP-147). Checkpointing also runs
//! while some tasks are FINISHED and the rest RUNNING ([`Input::TasksRunningOrFinished`]). A
//! checkpoint is then triggered at every running task that is a source or all of whose producer
//! subtasks (on every input edge) finished, since no barrier can reach it from upstream; it waits
//! for the running tasks only and records the finished ones, without state. A task that finishes
//! while a checkpoint still waits for its acknowledgement can no longer give it (a task
//! acknowledges before it finishes): that checkpoint is aborted at once, not left to expire.
//!
//! **Final checkpoint.** Once every task a checkpoint would start at waits for its final
//! checkpoint ([`Input::FinalCheckpointAwaited`]), the periodic trigger fires at once (or when
//! `min-pause` allows) instead of up to an interval later: see `final_trigger.rs`.
//!
//! **Completion.** When every task acknowledged, the coordinator asks the driver to persist
//! `_metadata` ([`Output::PersistMetadata`]); the checkpoint completes on
//! [`Input::MetadataPersisted`]: it joins the retained checkpoints (older ones beyond
//! `num-retained` are discarded, Flink's CheckpointSubsumeHelper), older pending checkpoints are
//! subsumed, and tasks are notified. Savepoints are never retained, subsumed or discarded; a
//! plain savepoint neither subsumes nor notifies, a stop-with-savepoint does both.
//!
//! **Failure.** Timeouts, declines, task failures, failover, suspension and shutdown abort a
//! pending checkpoint (its partial state is discarded, tasks are notified). Failures count toward
//! `tolerable-failed-checkpoints` as `failures.rs` says; failures the coordinator decides on do
//! not count for savepoints, and a stop-with-savepoint that fails on a task fails the job at once.
//! A failed stop-with-savepoint restarts periodic checkpointing if the tasks still run.
//!
//! **Late input.** Acknowledgements for unknown or finished checkpoints, or from attempts a
//! checkpoint does not wait for, are ignored and their state file discarded, unless that very
//! file belongs to a pending or retained checkpoint (a duplicate). Declines for unknown
//! checkpoints or from foreign attempts are ignored.
//!
//! Invariants: see `invariants.rs`.

use super::failures::FailureCounter;
use super::final_trigger::{FinalWait, finishes_tasks};
use super::pending::{Acknowledged, PendingCheckpoint};
use super::shared::SharedFiles;
use super::stats::CheckpointStats;
use super::storage::{self, encode_metadata};
use super::{
    AckMetrics, Alignment, CheckpointVertex, CompletedCheckpoint, CoordinatorSetup, DeclineReason,
    EXCEEDED_TOLERABLE_FAILURES, FailureReason, Input, Output, SavepointRequestId, TaskStateHandle,
};
use crate::config::{CheckpointConfig, CheckpointRetention, CheckpointingMode};
use crate::dataflow::BarrierKind;
use crate::ids::{CheckpointId, JobId, SubtaskIndex, VertexIndex};
use crate::plan::execution::{ExecutionEdge, ExecutionGraph};
use crate::protocol::{ExecutionId, JobStatus};
use crate::rng::Rng;
use crate::time::{Duration, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most trigger requests waiting at once (Flink's `DEFAULT_MAX_QUEUED_REQUESTS`).
pub const MAX_QUEUED_REQUESTS: usize = 1_000;
/// Aborted checkpoints whose location is remembered for late acknowledgements and late metadata.
pub const RECENT_ABORTED_MAX: usize = 16;

/// The checkpoint settings the coordinator works with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Settings {
    /// Base interval, at least `min_pause`; `None`: no periodic checkpoints.
    pub(super) interval: Option<Duration>,
    pub(super) timeout: Duration,
    pub(super) min_pause: Duration,
    pub(super) max_concurrent: usize,
    pub(super) tolerable_failed: u32,
    pub(super) retained: usize,
    mode: CheckpointingMode,
    unaligned: bool,
    aligned_timeout: Duration,
    retention: CheckpointRetention,
    dir: Option<String>,
    savepoint_dir: Option<String>,
}

impl Settings {
    fn from_config(config: &CheckpointConfig) -> Settings {
        assert!(config.max_concurrent >= 1, "config: max-concurrent-checkpoints must be at least 1");
        assert!(config.retained >= 1, "config: num-retained must be at least 1");
        assert!(config.interval.is_none_or(|interval| interval > Duration::ZERO), "config: interval must be positive");
        Settings {
            interval: config.interval.map(|interval| interval.max(config.min_pause)),
            timeout: config.timeout,
            min_pause: config.min_pause,
            max_concurrent: config.max_concurrent as usize,
            tolerable_failed: config.tolerable_failed,
            retained: config.retained as usize,
            mode: config.mode,
            unaligned: config.unaligned,
            aligned_timeout: config.aligned_checkpoint_timeout,
            retention: config.retention,
            dir: config.dir.clone(),
            savepoint_dir: config.savepoint_dir.clone(),
        }
    }

    /// Savepoints pass `max-concurrent-checkpoints` (Flink: forced unless unaligned is enabled).
    fn savepoints_forced(&self) -> bool {
        !self.unaligned
    }

    /// Whether a retained checkpoint is deleted when the job ends in `status`.
    fn discard_on_shutdown(&self, status: JobStatus) -> bool {
        match self.retention {
            CheckpointRetention::NoExternalizedCheckpoints => true,
            CheckpointRetention::DeleteOnCancellation => matches!(status, JobStatus::Finished | JobStatus::Canceled),
            CheckpointRetention::RetainOnCancellation => status == JobStatus::Finished,
        }
    }
}

/// A user's savepoint request while it waits in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SavepointRequest {
    pub(super) request_id: SavepointRequestId,
    target: Option<String>,
    pub(super) stop: bool,
    drain: bool,
}

/// Trigger requests waiting for a free slot: savepoints (first, in arrival order), then periodic
/// requests, which are alike and so only counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct RequestQueue {
    pub(super) savepoints: VecDeque<SavepointRequest>,
    pub(super) periodic: usize,
}

impl RequestQueue {
    pub(super) fn len(&self) -> usize {
        self.savepoints.len() + self.periodic
    }
}

enum Request {
    Periodic,
    Savepoint(SavepointRequest),
}

/// Flink's checkpoint coordinator for one job (see the module doc).
#[derive(Clone, Debug)]
pub struct CheckpointCoordinator {
    pub(super) job: JobId,
    pub(super) settings: Settings,
    pub(super) vertices: BTreeMap<VertexIndex, CheckpointVertex>,
    /// The current attempt of every subtask, sorted.
    pub(super) executions: Vec<ExecutionId>,
    /// Those of the current attempts that are FINISHED.
    pub(super) finished: BTreeSet<ExecutionId>,
    /// The vertices' subtasks and the exchanges between them (who produces for whom).
    graph: ExecutionGraph,
    rng: Rng,
    pub(super) now: Time,
    pub(super) checkpoint_id_next: CheckpointId,
    /// Every task is RUNNING or FINISHED, and not all are FINISHED.
    pub(super) tasks_running: bool,
    /// Periodic checkpointing is on (Flink's `periodicScheduling`).
    pub(super) scheduling: bool,
    /// When the periodic trigger fires next; only while scheduling.
    pub(super) periodic_next: Option<Time>,
    pub(super) queue: RequestQueue,
    pub(super) last_completion: Option<Time>,
    pub(super) pending: BTreeMap<CheckpointId, PendingCheckpoint>,
    /// Completed checkpoints kept for restore, oldest first.
    pub(super) retained: VecDeque<CompletedCheckpoint>,
    /// Reference counts of the shared files the retained checkpoints name.
    pub(super) shared: SharedFiles,
    /// Locations of the latest aborted checkpoints, oldest first.
    pub(super) recent_aborted: VecDeque<(CheckpointId, String)>,
    pub(super) failures: FailureCounter,
    /// Subtasks whose attempt waits for its final checkpoint (at most one report per subtask).
    pub(super) final_awaited: BTreeMap<(VertexIndex, SubtaskIndex), FinalWait>,
    /// The newest checkpoint notified as complete to the current attempts.
    pub(super) notified_latest: Option<CheckpointId>,
    pub(super) stats: CheckpointStats,
    pub(super) shut_down: bool,
    outputs: VecDeque<Output>,
}

impl CheckpointCoordinator {
    /// A coordinator for `setup.job` with nothing pending; periodic checkpointing starts with
    /// the first [`Input::TasksRunning`]. Recovered checkpoints beyond `num-retained` are
    /// discarded at once (the outputs wait in the queue).
    pub fn new(config: &CheckpointConfig, setup: CoordinatorSetup) -> CheckpointCoordinator {
        assert!(setup.checkpoint_id_next.0 >= 1, "checkpoint ids start at 1");
        let vertices: BTreeMap<VertexIndex, CheckpointVertex> =
            setup.vertices.into_iter().map(|vertex| (vertex.index, vertex)).collect();
        assert!(vertices.values().any(|vertex| vertex.is_source), "a job has at least one source");
        let settings = Settings::from_config(config);
        let graph = graph_of(&vertices, setup.edges);
        let mut coordinator = CheckpointCoordinator {
            job: setup.job,
            failures: FailureCounter::new(settings.tolerable_failed),
            settings,
            vertices,
            executions: Vec::new(),
            finished: BTreeSet::new(),
            graph,
            rng: Rng::new(setup.seed),
            now: Time::ZERO,
            checkpoint_id_next: setup.checkpoint_id_next,
            tasks_running: false,
            scheduling: false,
            periodic_next: None,
            queue: RequestQueue::default(),
            last_completion: None,
            pending: BTreeMap::new(),
            retained: VecDeque::new(),
            shared: SharedFiles::default(),
            recent_aborted: VecDeque::new(),
            final_awaited: BTreeMap::new(),
            notified_latest: None,
            stats: CheckpointStats::default(),
            shut_down: false,
            outputs: VecDeque::new(),
        };
        coordinator.executions = coordinator.validated(setup.executions);
        let mut recovered = setup.recovered;
        recovered.sort_by_key(|completed| completed.checkpoint);
        for pair in recovered.windows(2) {
            assert!(pair[0].checkpoint < pair[1].checkpoint, "recovered checkpoint {} twice", pair[0].checkpoint);
        }
        if let Some(newest) = recovered.last() {
            assert!(newest.checkpoint < setup.checkpoint_id_next, "the id counter must be above every used id");
        }
        recovered.iter().for_each(|completed| coordinator.shared.retain(completed));
        coordinator.retained = recovered.into();
        coordinator.subsume();
        coordinator
    }

    /// Feeds one input at time `now` (which never goes backwards).
    pub fn handle(&mut self, now: Time, input: Input) {
        assert!(now >= self.now, "time went backwards: {now} after {}", self.now);
        self.now = now;
        if self.shut_down {
            return;
        }
        match input {
            Input::Tick => self.on_tick(),
            Input::TasksRunning(executions) => self.on_tasks_running(executions, Vec::new()),
            Input::TasksRunningOrFinished { executions, finished } => self.on_tasks_running(executions, finished),
            Input::TasksNotRunning => self.on_tasks_not_running(),
            Input::Acknowledge { execution, checkpoint, state, metrics } => {
                self.on_acknowledge(execution, checkpoint, state, metrics)
            }
            Input::Decline { execution, checkpoint, reason } => self.on_decline(execution, checkpoint, reason),
            Input::FinalCheckpointAwaited { execution, checkpoint_latest } => {
                self.on_final_checkpoint_awaited(execution, checkpoint_latest)
            }
            Input::TaskFailed { execution } => self.on_task_failed(execution),
            Input::Failover => self.abort_all(&FailureReason::JobFailover),
            Input::TriggerSavepoint { request_id, target, stop, drain } => {
                self.on_trigger_savepoint(SavepointRequest { request_id, target, stop, drain })
            }
            Input::MetadataPersisted { checkpoint } => self.on_metadata_persisted(checkpoint),
            Input::MetadataPersistFailed { checkpoint, error } => self.on_metadata_failed(checkpoint, error),
            Input::Shutdown { job_status } => self.on_shutdown(job_status),
        }
        if !self.shut_down {
            self.trigger_final_early();
            // Flink's scheduleTriggerRequest: queued requests run once the input is handled.
            self.execute_queued();
            // A stop-with-savepoint refused just now restarted the scheduler: the final
            // checkpoint may be wanted only now, and no tick is announced for it.
            self.trigger_final_early();
            self.execute_queued();
        }
    }

    /// The next output for the driver, in the order they arose.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest time a [`Input::Tick`] has work: the periodic trigger or an expiry.
    pub fn poll_timeout(&self) -> Option<Time> {
        let expiry = self.pending.values().map(|pending| pending.deadline).min();
        match (self.periodic_next, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The newest retained checkpoint: what a restart restores from.
    pub fn latest_completed(&self) -> Option<&CompletedCheckpoint> {
        self.retained.back()
    }

    /// The newest retained checkpoint, recorded as restored at `now` in the statistics. Ids are
    /// not touched: the next checkpoint still gets a fresh one.
    pub fn restore_latest(&mut self, now: Time) -> Option<CompletedCheckpoint> {
        let latest = self.retained.back()?.clone();
        self.stats.on_restored(&latest, now);
        Some(latest)
    }

    /// Removes a retained checkpoint that turned out to be unreadable (a task could not read its
    /// state file), so no restart restores it again; the previous retained one becomes the
    /// latest. Its files are left in place for inspection (never discarded by the coordinator).
    /// Returns it, or `None` if it is not retained (any more).
    pub fn drop_retained(&mut self, checkpoint: CheckpointId) -> Option<CompletedCheckpoint> {
        let position = self.retained.iter().position(|completed| completed.checkpoint == checkpoint)?;
        let dropped = self.retained.remove(position)?;
        // Uncounted, but its files stay for inspection like the rest of it.
        self.shared.release(&dropped);
        Some(dropped)
    }

    /// Every retained checkpoint, oldest first.
    pub fn retained(&self) -> impl Iterator<Item = &CompletedCheckpoint> + '_ {
        self.retained.iter()
    }

    /// Ids of the checkpoints in progress, ascending.
    pub fn pending(&self) -> impl Iterator<Item = CheckpointId> + '_ {
        self.pending.keys().copied()
    }

    /// The id the next checkpoint gets (for the HA store's checkpoint id counter).
    pub fn checkpoint_id_next(&self) -> CheckpointId {
        self.checkpoint_id_next
    }

    /// Makes the next id at least `floor`: a new leader never reuses an id an earlier leader
    /// recorded as used.
    pub fn raise_checkpoint_id_next(&mut self, floor: CheckpointId) {
        self.checkpoint_id_next = self.checkpoint_id_next.max(floor);
    }

    /// Consecutive counted failures since the last success.
    pub fn failure_count(&self) -> u32 {
        self.failures.count()
    }

    /// Whether periodic checkpointing is on.
    pub fn is_periodic_scheduling(&self) -> bool {
        self.scheduling
    }

    /// Statistics for the REST API.
    pub fn stats(&self) -> &CheckpointStats {
        &self.stats
    }

    /// Checks every invariant (see `invariants.rs`); the simulator calls it after each event.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check()
    }

    /// `executions` sorted, after asserting they are one attempt of every subtask of this job.
    fn validated(&self, mut executions: Vec<ExecutionId>) -> Vec<ExecutionId> {
        executions.sort();
        let mut subtasks = BTreeSet::new();
        for execution in &executions {
            assert_eq!(execution.job, self.job, "attempt {execution} of another job");
            let vertex = self.vertices.get(&execution.vertex);
            assert!(vertex.is_some_and(|v| execution.subtask.0 < v.parallelism), "attempt {execution} of no subtask");
            assert!(subtasks.insert((execution.vertex, execution.subtask)), "two attempts of {execution}'s subtask");
        }
        let expected: u64 = self.vertices.values().map(|vertex| u64::from(vertex.parallelism)).sum();
        assert_eq!(subtasks.len() as u64, expected, "not one attempt per subtask");
        executions
    }

    fn on_tick(&mut self) {
        let overdue: Vec<CheckpointId> =
            self.pending.values().filter(|pending| pending.deadline <= self.now).map(|p| p.checkpoint).collect();
        for checkpoint in overdue {
            self.abort(checkpoint, FailureReason::Expired);
        }
        if let Some(due) = self.periodic_next.filter(|due| *due <= self.now) {
            // Fault point: the periodic trigger comes up to one interval late (a busy timer).
            let interval = self.settings.interval.map_or(0, |interval| interval.as_micros());
            if crate::buggify::fires("checkpoint.trigger.late", 0.2) {
                let late = crate::buggify::below(interval + 1).max(1);
                self.periodic_next = Some(self.now.after(Duration::from_micros(late)));
            } else {
                self.fire_periodic(due);
            }
        }
    }

    pub(super) fn fire_periodic(&mut self, due: Time) {
        let interval = self.settings.interval.expect("the periodic trigger is armed only with an interval");
        let mut next = due.after(interval);
        if next <= self.now {
            let behind = self.now.since(next).as_micros() / interval.as_micros() + 1;
            next = next.after(interval.saturating_mul(behind));
        }
        self.periodic_next = Some(next);
        self.submit(Request::Periodic);
    }

    fn start_scheduler(&mut self) {
        let interval = self.settings.interval.expect("scheduling needs an interval");
        let low = self.settings.min_pause.as_micros();
        let delay = low + self.rng.below((interval.as_micros() - low).saturating_add(1));
        self.scheduling = true;
        self.periodic_next = Some(self.now.after(Duration::from_micros(delay)));
    }

    /// Flink's stopCheckpointScheduler: abort what is queued and pending, then stop the trigger.
    fn stop_scheduler(&mut self, reason: &FailureReason) {
        // Aborts first: a stop-with-savepoint among them restarts the scheduler as it fails.
        self.queue.periodic = 0;
        while let Some(request) = self.queue.savepoints.pop_front() {
            self.refuse(request, reason.clone());
        }
        self.abort_all(reason);
        self.scheduling = false;
        self.periodic_next = None;
        self.queue.periodic = 0;
    }

    fn stop_savepoint_in_progress(&self) -> bool {
        self.pending.values().any(PendingCheckpoint::is_stop_savepoint)
            || self.queue.savepoints.iter().any(|request| request.stop)
    }

    /// After a stop-with-savepoint failed: checkpointing resumes if the tasks still run.
    fn resume_after_failed_stop(&mut self) {
        let can_schedule = self.tasks_running && !self.scheduling && self.settings.interval.is_some();
        if can_schedule && !self.stop_savepoint_in_progress() {
            self.start_scheduler();
        }
    }

    fn on_tasks_running(&mut self, executions: Vec<ExecutionId>, finished: Vec<ExecutionId>) {
        let executions = self.validated(executions);
        let finished: BTreeSet<ExecutionId> = finished.into_iter().collect();
        assert!(finished.iter().all(|e| executions.binary_search(e).is_ok()), "a finished task is not current");
        let executions_changed = executions != self.executions;
        if executions_changed {
            // Checkpoints waiting for replaced attempts can never complete.
            self.abort_all(&FailureReason::JobFailover);
            self.executions = executions;
        }
        // A task acknowledges before it finishes: one that finished without can no longer.
        let orphaned: Vec<CheckpointId> = self
            .pending
            .values()
            .filter(|pending| pending.not_acknowledged.iter().any(|task| finished.contains(task)))
            .map(|pending| pending.checkpoint)
            .collect();
        for checkpoint in orphaned {
            self.abort(checkpoint, FailureReason::TasksNotRunning);
        }
        self.finished = finished;
        self.prune_final_awaited(executions_changed);
        if self.finished.len() == self.executions.len() {
            return self.on_tasks_not_running(); // All finished: the job ends, nothing to take.
        }
        self.tasks_running = true;
        if !self.scheduling && self.settings.interval.is_some() && !self.stop_savepoint_in_progress() {
            self.start_scheduler();
        }
    }

    fn on_tasks_not_running(&mut self) {
        self.tasks_running = false;
        self.stop_scheduler(&FailureReason::Suspended);
    }

    fn on_trigger_savepoint(&mut self, request: SavepointRequest) {
        if request.stop {
            if !self.tasks_running {
                return self.refuse(request, FailureReason::TasksNotRunning);
            }
            // Only the stop-with-savepoint's data may be committed: stop checkpointing first.
            self.stop_scheduler(&FailureReason::Suspended);
        }
        self.submit(Request::Savepoint(request));
    }

    /// Queues a request (Flink's `chooseRequestToExecute(newRequest, ..)`, first half).
    fn submit(&mut self, request: Request) {
        if self.queue.len() >= MAX_QUEUED_REQUESTS {
            match request {
                // The newest periodic request is the last in the queue's order: it drops out.
                Request::Periodic => return,
                Request::Savepoint(savepoint) if self.queue.periodic == 0 => {
                    return self.refuse(savepoint, FailureReason::TooManyRequests);
                }
                Request::Savepoint(_) => self.queue.periodic -= 1,
            }
        }
        match request {
            Request::Periodic => self.queue.periodic += 1,
            Request::Savepoint(savepoint) => self.queue.savepoints.push_back(savepoint),
        }
    }

    fn execute_queued(&mut self) {
        while let Some(request) = self.choose_request() {
            self.start(request);
        }
    }

    /// The queued request to start now, if any (Flink's CheckpointRequestDecider).
    fn choose_request(&mut self) -> Option<Request> {
        if self.queue.len() == 0 {
            return None;
        }
        let first_is_savepoint = !self.queue.savepoints.is_empty();
        if self.pending.len() >= self.settings.max_concurrent {
            if first_is_savepoint && self.settings.savepoints_forced() {
                return self.queue.savepoints.pop_front().map(Request::Savepoint);
            }
            return None;
        }
        if first_is_savepoint {
            return self.queue.savepoints.pop_front().map(Request::Savepoint);
        }
        self.queue.periodic -= 1;
        let earliest = self.last_completion.map(|last| last.after(self.settings.min_pause));
        if let Some(earliest) = earliest.filter(|earliest| *earliest > self.now) {
            // MINIMUM_TIME_BETWEEN_CHECKPOINTS: dropped, not counted; the trigger moves there.
            if self.scheduling {
                self.periodic_next = Some(earliest);
            }
            return None;
        }
        Some(Request::Periodic)
    }

    fn start(&mut self, request: Request) {
        match request {
            Request::Periodic => {
                // PERIODIC_SCHEDULER_SHUTDOWN / NOT_ALL_REQUIRED_TASKS_RUNNING: dropped, not counted.
                if self.scheduling && self.tasks_running {
                    let location =
                        storage::checkpoint_location(self.settings.dir.as_deref(), self.job, self.checkpoint_id_next);
                    self.trigger(BarrierKind::Checkpoint, None, location);
                }
            }
            Request::Savepoint(request) => {
                if !self.tasks_running {
                    return self.refuse(request, FailureReason::TasksNotRunning);
                }
                let Some(target) = request.target.clone().or_else(|| self.settings.savepoint_dir.clone()) else {
                    return self.refuse(request, FailureReason::NoSavepointDirectory);
                };
                let location = storage::savepoint_location(&target, self.job, self.rng.next_u64());
                let kind = BarrierKind::Savepoint { stop: request.stop, drain: request.drain };
                self.trigger(kind, Some(request.request_id), location);
            }
        }
    }

    /// A savepoint request that fails before it started: no id, nothing counted.
    fn refuse(&mut self, request: SavepointRequest, reason: FailureReason) {
        self.outputs.push_back(Output::SavepointDone { request_id: request.request_id, result: Err(reason) });
        if request.stop {
            self.resume_after_failed_stop();
        }
    }

    fn trigger(&mut self, kind: BarrierKind, request: Option<SavepointRequestId>, location: String) {
        let checkpoint = self.checkpoint_id_next;
        self.checkpoint_id_next = CheckpointId(checkpoint.0.checked_add(1).expect("checkpoint ids exhausted"));
        let deadline = self.now.after(self.settings.timeout);
        let running: Vec<ExecutionId> =
            self.executions.iter().filter(|e| !self.finished.contains(e)).copied().collect();
        let finished = self.finished_subtasks();
        let sources = self.barrier_starts();
        self.cover_final_awaited(kind, &sources);
        let mut pending = PendingCheckpoint::new(checkpoint, kind, location.clone(), self.now, deadline, running);
        pending.request = request;
        pending.finished = finished;
        let settings = &self.settings;
        let alignment = Alignment::for_config(kind, settings.mode, settings.unaligned, settings.aligned_timeout);
        self.stats.on_triggered(&pending);
        self.pending.insert(checkpoint, pending);
        let timestamp = self.now;
        self.outputs.push_back(Output::TriggerAtSources { checkpoint, timestamp, kind, alignment, location, sources });
    }

    fn finished_subtasks(&self) -> BTreeSet<(VertexIndex, SubtaskIndex)> {
        self.finished.iter().map(|e| (e.vertex, e.subtask)).collect()
    }

    /// The running tasks a checkpoint triggered now starts at (see `starts_barriers`).
    pub(super) fn barrier_starts(&self) -> Vec<ExecutionId> {
        let finished = self.finished_subtasks();
        let running = self.executions.iter().filter(|e| !self.finished.contains(e));
        running.filter(|e| self.starts_barriers(e, &finished)).copied().collect()
    }

    /// Whether a barrier starts at the running task `execution`: it is a source, or every
    /// producer subtask on each of its input edges (at least one) finished.
    fn starts_barriers(&self, execution: &ExecutionId, finished: &BTreeSet<(VertexIndex, SubtaskIndex)>) -> bool {
        if self.vertices.get(&execution.vertex).is_some_and(|vertex| vertex.is_source) {
            return true;
        }
        let mut inputs = self.graph.edges.iter().filter(|edge| edge.target == execution.vertex).peekable();
        if inputs.peek().is_none() {
            return false;
        }
        inputs.all(|edge| {
            let mut producers = self.graph.producers(edge, execution.subtask);
            producers.all(|producer| finished.contains(&(edge.source, SubtaskIndex(producer))))
        })
    }

    fn on_acknowledge(
        &mut self,
        execution: ExecutionId,
        checkpoint: CheckpointId,
        state: Option<TaskStateHandle>,
        metrics: AckMetrics,
    ) {
        let outcome = match self.pending.get_mut(&checkpoint) {
            Some(pending) => pending.acknowledge(self.now, execution, state, metrics),
            None => Acknowledged::Unknown(state),
        };
        match outcome {
            Acknowledged::Recorded => {
                let pending = &self.pending[&checkpoint];
                self.stats.on_acknowledged(pending);
                if pending.fully_acknowledged() {
                    self.finalize(checkpoint);
                }
            }
            Acknowledged::Duplicate => {}
            Acknowledged::Unknown(state) => self.discard_late(checkpoint, execution, state),
        }
    }

    /// Discards the state of an acknowledgement no pending checkpoint took.
    fn discard_late(&mut self, checkpoint: CheckpointId, execution: ExecutionId, state: Option<TaskStateHandle>) {
        let Some(state) = state else { return };
        let in_pending = self.pending.get(&checkpoint).is_some_and(|pending| pending.holds_file(&state.file));
        let in_retained = self.retained.iter().any(|completed| {
            completed.checkpoint == checkpoint && completed.states.values().any(|s| s.file == state.file)
        });
        if in_pending || in_retained {
            return; // a duplicate of a state some checkpoint holds
        }
        let location = self.location_of(checkpoint);
        self.outputs.push_back(Output::DiscardTaskState { checkpoint, location, execution, state });
    }

    /// Where `checkpoint`'s files are. For an id this coordinator knows nothing of, the periodic
    /// checkpoint directory it would have (never a savepoint's directory).
    fn location_of(&self, checkpoint: CheckpointId) -> String {
        let known = (self.pending.get(&checkpoint).map(|pending| &pending.location))
            .or_else(|| self.retained.iter().find(|c| c.checkpoint == checkpoint).map(|c| &c.location))
            .or_else(|| self.recent_aborted.iter().find(|(id, _)| *id == checkpoint).map(|(_, location)| location));
        match known {
            Some(location) => location.clone(),
            None => storage::checkpoint_location(self.settings.dir.as_deref(), self.job, checkpoint),
        }
    }

    fn finalize(&mut self, checkpoint: CheckpointId) {
        let pending = self.pending.get_mut(&checkpoint).expect("finalizing a pending checkpoint");
        pending.finalizing = true;
        let location = pending.location.clone();
        let bytes = encode_metadata(&pending.metadata(self.job, &self.vertices));
        self.outputs.push_back(Output::PersistMetadata { checkpoint, location, bytes });
    }

    fn on_metadata_persisted(&mut self, checkpoint: CheckpointId) {
        match self.pending.get(&checkpoint) {
            Some(pending) if pending.finalizing => self.complete(checkpoint),
            Some(_) => {} // metadata nobody asked for yet: ignored
            None => {
                // Aborted while its metadata was being written: the now complete directory goes.
                let aborted = self.recent_aborted.iter().find(|(id, _)| *id == checkpoint);
                if let Some((_, location)) = aborted {
                    let location = location.clone();
                    self.outputs.push_back(Output::Discard { checkpoint, location });
                }
            }
        }
    }

    fn on_metadata_failed(&mut self, checkpoint: CheckpointId, error: String) {
        if self.pending.get(&checkpoint).is_some_and(|pending| pending.finalizing) {
            self.abort(checkpoint, FailureReason::FinalizeFailed(error));
        }
    }

    fn complete(&mut self, checkpoint: CheckpointId) {
        let pending = self.pending.remove(&checkpoint).expect("completing a pending checkpoint");
        let completed = pending.complete(self.now);
        self.stats.on_completed(&pending, &completed);
        if !completed.is_savepoint() {
            assert!(
                self.retained.back().is_none_or(|newest| newest.checkpoint < checkpoint),
                "completion out of order"
            );
            self.shared.retain(&completed);
            self.retained.push_back(completed.clone());
            self.subsume();
        }
        self.last_completion = Some(self.now);
        self.failures.on_success(checkpoint);
        let location = completed.location.clone();
        self.outputs.push_back(Output::Completed(completed));
        if let Some(request_id) = pending.request {
            self.outputs.push_back(Output::SavepointDone { request_id, result: Ok(location) });
        }
        if !pending.is_savepoint() || pending.is_stop_savepoint() {
            let subsumed: Vec<CheckpointId> = self
                .pending
                .values()
                .filter(|p| p.checkpoint < checkpoint && !p.is_savepoint())
                .map(|p| p.checkpoint)
                .collect();
            for older in subsumed {
                self.abort(older, FailureReason::Subsumed);
            }
            debug_assert!(finishes_tasks(pending.kind));
            self.notified_latest = self.notified_latest.max(Some(checkpoint));
            self.outputs.push_back(Output::NotifyComplete { checkpoint, tasks: pending.tasks });
        }
    }

    /// Drops retained checkpoints beyond `num-retained` (Flink's CheckpointSubsumeHelper): never
    /// the newest, nor the newest that is not a savepoint; savepoints leave without being
    /// discarded.
    fn subsume(&mut self) {
        let Some(newest) = self.retained.back().map(|completed| completed.checkpoint) else { return };
        let newest_checkpoint = self.retained.iter().rev().find(|c| !c.is_savepoint()).map(|c| c.checkpoint);
        let mut index = 0;
        while self.retained.len() > self.settings.retained && index < self.retained.len() {
            let candidate = &self.retained[index];
            let can_go = candidate.checkpoint != newest
                && (candidate.is_savepoint() || newest_checkpoint != Some(candidate.checkpoint));
            if !can_go {
                index += 1;
                continue;
            }
            let Some(gone) = self.retained.remove(index) else { break };
            match gone.is_savepoint() {
                true => drop(self.shared.release(&gone)), // a savepoint's files are never deleted
                false => self.discard_retained(gone),
            }
        }
    }

    /// Discards a checkpoint that is no longer retained, and the shared files only it named.
    fn discard_retained(&mut self, gone: CompletedCheckpoint) {
        self.stats.on_discarded(gone.checkpoint);
        let files = self.shared.release(&gone);
        if !files.is_empty() {
            let location = storage::shared_location_of(&gone.location);
            self.outputs.push_back(Output::DiscardSharedFiles { location, files });
        }
        self.outputs.push_back(Output::Discard { checkpoint: gone.checkpoint, location: gone.location });
    }

    fn on_decline(&mut self, execution: ExecutionId, checkpoint: CheckpointId, reason: DeclineReason) {
        let Some(pending) = self.pending.get(&checkpoint) else { return }; // late: ignored
        if pending.tasks.binary_search(&execution).is_err() {
            return; // not an attempt this checkpoint waits for: ignored
        }
        self.abort(checkpoint, FailureReason::Declined { execution, reason });
    }

    fn on_task_failed(&mut self, execution: ExecutionId) {
        let unacknowledged: Vec<CheckpointId> = self
            .pending
            .values()
            .filter(|pending| !pending.acknowledged.contains_key(&execution))
            .map(|pending| pending.checkpoint)
            .collect();
        for checkpoint in unacknowledged {
            self.abort(checkpoint, FailureReason::TaskFailure { execution });
        }
    }

    fn abort_all(&mut self, reason: &FailureReason) {
        let all: Vec<CheckpointId> = self.pending.keys().copied().collect();
        for checkpoint in all {
            self.abort(checkpoint, reason.clone());
        }
    }

    /// Aborts a pending checkpoint: notify, discard its partial state, report, count.
    fn abort(&mut self, checkpoint: CheckpointId, reason: FailureReason) {
        let Some(pending) = self.pending.remove(&checkpoint) else { return };
        let location = pending.location.clone();
        self.outputs.push_back(Output::NotifyAborted { checkpoint, tasks: pending.tasks.clone() });
        self.outputs.push_back(Output::Discard { checkpoint, location: location.clone() });
        if self.recent_aborted.len() == RECENT_ABORTED_MAX {
            self.recent_aborted.pop_front();
        }
        self.recent_aborted.push_back((checkpoint, location));
        self.stats.on_failed(&pending, self.now, &reason);
        self.outputs.push_back(Output::Failed { checkpoint, reason: reason.clone() });
        if let Some(request_id) = pending.request {
            self.outputs.push_back(Output::SavepointDone { request_id, result: Err(reason.clone()) });
        }
        self.count_failure(&pending, &reason);
        if pending.is_stop_savepoint() {
            self.resume_after_failed_stop();
        }
    }

    /// Flink's CheckpointFailureManager.handleCheckpointException.
    fn count_failure(&mut self, pending: &PendingCheckpoint, reason: &FailureReason) {
        let checkpoint = pending.checkpoint;
        let task_level = reason.execution().is_some();
        let fail_job = if task_level && pending.is_stop_savepoint() {
            Some(format!("Stop-with-savepoint {checkpoint} failed on a task: {reason}"))
        } else if (task_level || !pending.is_savepoint()) && self.failures.on_failure(checkpoint, reason) {
            Some(format!("{EXCEEDED_TOLERABLE_FAILURES} The latest checkpoint ({checkpoint}) failed due to: {reason}"))
        } else {
            None
        };
        if let Some(reason) = fail_job {
            self.outputs.push_back(Output::FailJob { reason });
        }
    }

    fn on_shutdown(&mut self, job_status: JobStatus) {
        self.tasks_running = false;
        self.stop_scheduler(&FailureReason::Shutdown);
        if job_status.is_globally_terminal() && self.settings.discard_on_shutdown(job_status) {
            let (savepoints, checkpoints): (VecDeque<_>, VecDeque<_>) =
                self.retained.drain(..).partition(CompletedCheckpoint::is_savepoint);
            self.retained = savepoints;
            checkpoints.into_iter().for_each(|gone| self.discard_retained(gone));
        }
        self.shut_down = true;
    }
}

/// The execution graph of `vertices` (indexed 0, 1, ..) joined by `edges`.
fn graph_of(vertices: &BTreeMap<VertexIndex, CheckpointVertex>, edges: Vec<ExecutionEdge>) -> ExecutionGraph {
    let mut offsets = vec![0u64];
    for (position, vertex) in vertices.values().enumerate() {
        assert_eq!(vertex.index.index(), position, "vertices are indexed 0, 1, ..");
        offsets.push(offsets[position] + u64::from(vertex.parallelism));
    }
    let parallelism: Vec<u32> = vertices.values().map(|vertex| vertex.parallelism).collect();
    for edge in &edges {
        let of = |index: VertexIndex| parallelism.get(index.index()).copied();
        assert_eq!(of(edge.source), Some(edge.source_parallelism), "edge {edge:?} from no such vertex");
        assert_eq!(of(edge.target), Some(edge.target_parallelism), "edge {edge:?} to no such vertex");
    }
    ExecutionGraph { parallelism, offsets, edges }
}
