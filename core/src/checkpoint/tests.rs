//! Scenario tests of the checkpoint coordinator, one rule each, through a small harness.

use super::storage::{self, decode_metadata};
use super::*;
use crate::config::{CheckpointConfig, CheckpointRetention, Config};
use crate::ids::{AttemptNumber, Hex128};
use crate::time::Duration;

pub(super) const JOB: JobId = JobId(Hex128(0x00ab_cdef_0000_0000_0000_0000_0000_0001));

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) fn at(n: u64) -> Time {
    Time(secs(n).as_micros())
}

/// Flink's defaults with checkpoints every 10 s, a 60 s timeout and directories configured.
pub(super) fn config() -> CheckpointConfig {
    let mut config = Config::default().checkpoint;
    config.interval = Some(secs(10));
    config.timeout = secs(60);
    config.dir = Some("/chk".to_string());
    config.savepoint_dir = Some("/sp".to_string());
    config
}

/// A source vertex (parallelism 2) feeding a map vertex (parallelism 2).
pub(super) fn vertices() -> Vec<CheckpointVertex> {
    let vertex = |index: u32, is_source: bool| CheckpointVertex {
        index: VertexIndex(index),
        id: VertexId(Hex128(0x5000 + u128::from(index))),
        parallelism: 2,
        max_parallelism: 128,
        is_source,
    };
    vec![vertex(0, true), vertex(1, false)]
}

/// The source feeds the map all-to-all.
pub(super) fn edges() -> Vec<crate::plan::execution::ExecutionEdge> {
    vec![crate::plan::execution::ExecutionEdge {
        source: VertexIndex(0),
        target: VertexIndex(1),
        source_parallelism: 2,
        target_parallelism: 2,
        pattern: crate::plan::DistributionPattern::AllToAll,
    }]
}

pub(super) fn executions(attempt: u32) -> Vec<ExecutionId> {
    let mut all = Vec::new();
    for vertex in 0..2 {
        for subtask in 0..2 {
            all.push(ExecutionId {
                job: JOB,
                vertex: VertexIndex(vertex),
                subtask: SubtaskIndex(subtask),
                attempt: AttemptNumber(attempt),
            });
        }
    }
    all
}

pub(super) fn setup(seed: u64) -> CoordinatorSetup {
    CoordinatorSetup {
        job: JOB,
        vertices: vertices(),
        executions: executions(0),
        edges: edges(),
        checkpoint_id_next: CheckpointId(1),
        recovered: Vec::new(),
        seed,
    }
}

pub(super) fn state_of(execution: ExecutionId, checkpoint: CheckpointId) -> TaskStateHandle {
    let vertex = VertexId(Hex128(0x5000 + u128::from(execution.vertex.0)));
    let file = storage::state_file_name(vertex, execution.subtask, execution.attempt);
    TaskStateHandle { file, size_bytes: 100 + checkpoint.0, crc32: checkpoint.0 as u32, shared: Vec::new() }
}

fn request(n: u128) -> SavepointRequestId {
    SavepointRequestId(Hex128(0x9000 + n))
}

/// Drives one coordinator with a virtual clock; checks the invariants after every input.
struct Harness {
    coordinator: CheckpointCoordinator,
    now: Time,
    attempt: u32,
}

impl Harness {
    fn new(config: &CheckpointConfig) -> Harness {
        Harness::with_setup(config, setup(7))
    }

    fn with_setup(config: &CheckpointConfig, setup: CoordinatorSetup) -> Harness {
        let coordinator = CheckpointCoordinator::new(config, setup);
        coordinator.check_invariants().unwrap();
        Harness { coordinator, now: Time::ZERO, attempt: 0 }
    }

    /// A harness whose tasks are running, at time zero.
    fn running(config: &CheckpointConfig) -> Harness {
        let mut harness = Harness::new(config);
        harness.handle(Input::TasksRunning(executions(0)));
        harness
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.coordinator.poll_output()).collect()
    }

    fn handle(&mut self, input: Input) -> Vec<Output> {
        self.coordinator.handle(self.now, input);
        self.coordinator.check_invariants().unwrap();
        self.drain()
    }

    fn advance_to(&mut self, time: Time) -> Vec<Output> {
        assert!(time >= self.now);
        self.now = time;
        self.handle(Input::Tick)
    }

    /// Ticks at every timer until a checkpoint triggers; returns its id and trigger time.
    fn next_trigger(&mut self) -> (CheckpointId, Time) {
        for _ in 0..100 {
            let due = self.coordinator.poll_timeout().expect("a timer is armed");
            let outputs = self.advance_to(due.max(self.now));
            if let Some(id) = triggered(&outputs).first() {
                return (*id, self.now);
            }
        }
        panic!("no checkpoint triggered");
    }

    fn ack(&mut self, execution: ExecutionId, checkpoint: CheckpointId) -> Vec<Output> {
        let metrics =
            AckMetrics { alignment_duration: Duration::from_millis(5), processed_bytes: 10, persisted_bytes: 1 };
        self.handle(Input::Acknowledge { execution, checkpoint, state: Some(state_of(execution, checkpoint)), metrics })
    }

    fn ack_all(&mut self, checkpoint: CheckpointId) -> Vec<Output> {
        let mut outputs = Vec::new();
        for execution in executions(self.attempt) {
            outputs.extend(self.ack(execution, checkpoint));
        }
        outputs
    }

    fn persisted(&mut self, checkpoint: CheckpointId) -> Vec<Output> {
        self.handle(Input::MetadataPersisted { checkpoint })
    }

    /// Acknowledges every task and persists the metadata: the checkpoint completes.
    fn complete(&mut self, checkpoint: CheckpointId) -> Vec<Output> {
        let mut outputs = self.ack_all(checkpoint);
        assert!(outputs.iter().any(|o| matches!(o, Output::PersistMetadata { checkpoint: c, .. } if *c == checkpoint)));
        outputs.extend(self.persisted(checkpoint));
        outputs
    }

    fn savepoint(&mut self, n: u128, stop: bool) -> Vec<Output> {
        self.handle(Input::TriggerSavepoint { request_id: request(n), target: None, stop, drain: false })
    }
}

fn triggered(outputs: &[Output]) -> Vec<CheckpointId> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::TriggerAtSources { checkpoint, .. } => Some(*checkpoint),
            _ => None,
        })
        .collect()
}

fn failures(outputs: &[Output]) -> Vec<(CheckpointId, FailureReason)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Failed { checkpoint, reason } => Some((*checkpoint, reason.clone())),
            _ => None,
        })
        .collect()
}

fn discarded(outputs: &[Output]) -> Vec<CheckpointId> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Discard { checkpoint, .. } => Some(*checkpoint),
            _ => None,
        })
        .collect()
}

fn fail_job(outputs: &[Output]) -> Option<String> {
    outputs.iter().find_map(|output| match output {
        Output::FailJob { reason } => Some(reason.clone()),
        _ => None,
    })
}

fn savepoint_results(outputs: &[Output]) -> Vec<(SavepointRequestId, Result<String, FailureReason>)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::SavepointDone { request_id, result } => Some((*request_id, result.clone())),
            _ => None,
        })
        .collect()
}

fn notified_complete(outputs: &[Output]) -> Vec<CheckpointId> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::NotifyComplete { checkpoint, .. } => Some(*checkpoint),
            _ => None,
        })
        .collect()
}

#[test]
fn first_trigger_comes_after_a_seeded_random_delay_within_min_pause_and_interval() {
    let mut config = config();
    config.min_pause = secs(4);
    let mut delays = Vec::new();
    for seed in 0..40 {
        let mut harness = Harness::with_setup(&config, setup(seed));
        harness.handle(Input::TasksRunning(executions(0)));
        let delay = harness.coordinator.poll_timeout().unwrap();
        assert!(delay >= at(4) && delay <= at(10), "delay {delay} outside [min-pause, interval]");
        let mut again = Harness::with_setup(&config, setup(seed));
        again.handle(Input::TasksRunning(executions(0)));
        assert_eq!(again.coordinator.poll_timeout(), Some(delay), "the same seed gives the same delay");
        delays.push(delay);
    }
    delays.sort();
    delays.dedup();
    assert!(delays.len() > 20, "the delay is drawn, not fixed");
}

#[test]
fn periodic_checkpoints_trigger_every_interval_at_the_source_attempts_only() {
    let mut harness = Harness::running(&config());
    let (first, first_at) = harness.next_trigger();
    assert_eq!(first, CheckpointId(1));
    harness.complete(first);
    let outputs = harness.advance_to(first_at.after(secs(10)));
    let sources: Vec<ExecutionId> = executions(0).into_iter().filter(|e| e.vertex == VertexIndex(0)).collect();
    match &outputs[..] {
        [Output::TriggerAtSources { checkpoint, timestamp, kind, sources: at_sources, location, .. }] => {
            assert_eq!(*checkpoint, CheckpointId(2));
            assert_eq!(*timestamp, first_at.after(secs(10)));
            assert_eq!(*kind, BarrierKind::Checkpoint);
            assert_eq!(at_sources, &sources);
            assert_eq!(location, &format!("/chk/{JOB}/chk-2"));
        }
        other => panic!("expected one trigger, got {other:?}"),
    }
    harness.complete(CheckpointId(2));
    assert!(triggered(&harness.advance_to(Time(first_at.after(secs(20)).0 - 1))).is_empty());
    let later = harness.advance_to(first_at.after(secs(20)));
    assert_eq!(triggered(&later), vec![CheckpointId(3)], "fixed rate: exactly one interval later");
}

#[test]
fn a_checkpoint_completes_only_after_every_ack_and_the_persisted_metadata() {
    let mut harness = Harness::running(&config());
    let (id, triggered_at) = harness.next_trigger();
    let all = executions(0);
    for execution in &all[..3] {
        assert!(harness.ack(*execution, id).is_empty(), "no output before the last acknowledgement");
    }
    let outputs = harness.ack(all[3], id);
    let [Output::PersistMetadata { checkpoint, location, bytes }] = &outputs[..] else {
        panic!("expected PersistMetadata, got {outputs:?}");
    };
    assert_eq!((*checkpoint, location.as_str()), (id, format!("/chk/{JOB}/chk-1").as_str()));
    let metadata = decode_metadata(bytes).unwrap();
    assert_eq!((metadata.job, metadata.checkpoint, metadata.triggered_at), (JOB, id, triggered_at));
    assert_eq!(metadata.tasks.len(), 4);
    assert_eq!(metadata.vertices.values().map(|v| v.max_parallelism).collect::<Vec<_>>(), vec![128, 128]);
    assert!(harness.coordinator.latest_completed().is_none(), "not complete before the metadata is durable");
    harness.now = harness.now.after(secs(1));
    let outputs = harness.persisted(id);
    assert_eq!(notified_complete(&outputs), vec![id]);
    let completed = harness.coordinator.latest_completed().unwrap();
    assert_eq!(completed.checkpoint, id);
    assert_eq!(completed.completed_at, triggered_at.after(secs(1)));
    for execution in all {
        assert_eq!(completed.state_of(execution.vertex, execution.subtask), Some(&state_of(execution, id)));
    }
}

#[test]
fn a_timed_out_checkpoint_is_aborted_and_later_ones_complete() {
    let mut config = config();
    config.timeout = secs(15);
    config.tolerable_failed = 1;
    let mut harness = Harness::running(&config);
    let (first, first_at) = harness.next_trigger();
    let just_before = harness.advance_to(Time(first_at.after(secs(15)).0 - 1));
    assert!(failures(&just_before).is_empty(), "not expired before the timeout");
    let outputs = harness.advance_to(first_at.after(secs(15)));
    assert_eq!(failures(&outputs), vec![(first, FailureReason::Expired)]);
    assert!(outputs.iter().any(|o| matches!(o, Output::NotifyAborted { checkpoint, .. } if *checkpoint == first)));
    assert_eq!(discarded(&outputs), vec![first]);
    assert_eq!(harness.coordinator.failure_count(), 1);
    // The periodic request of +10 s waited in the queue and starts as the slot frees.
    let second = CheckpointId(2);
    assert_eq!(triggered(&outputs), vec![second]);
    let outputs = harness.complete(second);
    assert_eq!(notified_complete(&outputs), vec![second]);
    assert_eq!(harness.coordinator.failure_count(), 0, "a completion resets the count");
    assert_eq!(harness.coordinator.stats().counts.failed, 1);
}

#[test]
fn exceeding_tolerable_failed_checkpoints_fails_the_job() {
    let mut config = config();
    config.timeout = secs(5);
    config.tolerable_failed = 2;
    let mut harness = Harness::running(&config);
    for expected_count in 1..=2 {
        let (_, triggered_at) = harness.next_trigger();
        let outputs = harness.advance_to(triggered_at.after(secs(5)));
        assert_eq!(fail_job(&outputs), None, "{expected_count} failures are tolerated");
        assert_eq!(harness.coordinator.failure_count(), expected_count);
    }
    let (third, triggered_at) = harness.next_trigger();
    let outputs = harness.advance_to(triggered_at.after(secs(5)));
    let reason = fail_job(&outputs).expect("the third failure exceeds the threshold");
    assert!(reason.starts_with("Exceeded checkpoint tolerable failure threshold."), "{reason}");
    assert!(reason.contains(&third.to_string()) && reason.contains("expired"), "{reason}");
    assert_eq!(harness.coordinator.failure_count(), 0, "the count starts again after failing the job");
}

#[test]
fn declines_count_only_for_counting_reasons() {
    let mut config = config();
    config.tolerable_failed = 0;
    let mut harness = Harness::running(&config);
    let task = executions(0)[2];
    for reason in [DeclineReason::TaskNotReady, DeclineReason::TaskClosing, DeclineReason::Subsumed] {
        let (id, _) = harness.next_trigger();
        let outputs = harness.handle(Input::Decline { execution: task, checkpoint: id, reason: reason.clone() });
        assert_eq!(failures(&outputs), vec![(id, FailureReason::Declined { execution: task, reason })]);
        assert_eq!(fail_job(&outputs), None);
    }
    let (id, _) = harness.next_trigger();
    let reason = DeclineReason::AsyncSnapshotFailed("disk full".to_string());
    let outputs = harness.handle(Input::Decline { execution: task, checkpoint: id, reason });
    assert!(fail_job(&outputs).is_some(), "a failed snapshot counts; tolerable is 0");
}

#[test]
fn declines_from_foreign_attempts_or_for_unknown_checkpoints_are_ignored() {
    let mut harness = Harness::running(&config());
    let (id, _) = harness.next_trigger();
    let mut stranger = executions(0)[0];
    stranger.attempt = AttemptNumber(9);
    let reason = DeclineReason::SnapshotFailed("boom".to_string());
    assert!(harness.handle(Input::Decline { execution: stranger, checkpoint: id, reason: reason.clone() }).is_empty());
    let known = executions(0)[0];
    let late = Input::Decline { execution: known, checkpoint: CheckpointId(77), reason };
    assert!(harness.handle(late).is_empty());
    assert_eq!(harness.coordinator.pending().collect::<Vec<_>>(), vec![id]);
}

#[test]
fn failures_older_than_the_last_success_do_not_count() {
    let mut config = config();
    config.tolerable_failed = 0;
    config.max_concurrent = 2;
    let mut harness = Harness::running(&config);
    harness.savepoint(1, false);
    let savepoint = CheckpointId(1);
    let (checkpoint, _) = harness.next_trigger();
    assert!(checkpoint > savepoint);
    harness.complete(checkpoint);
    assert_eq!(harness.coordinator.pending().collect::<Vec<_>>(), vec![savepoint], "a savepoint is not subsumed");
    let reason = DeclineReason::SnapshotFailed("late".to_string());
    let outputs = harness.handle(Input::Decline { execution: executions(0)[1], checkpoint: savepoint, reason });
    assert_eq!(failures(&outputs).len(), 1);
    assert_eq!(fail_job(&outputs), None, "savepoint 1 is older than the successful checkpoint 2");
}

#[test]
fn min_pause_is_respected_exactly() {
    let mut config = config();
    config.min_pause = secs(8);
    let mut harness = Harness::running(&config);
    let (first, first_at) = harness.next_trigger();
    harness.advance_to(first_at.after(secs(5)));
    harness.complete(first);
    // The periodic trigger at +10 s comes 5 s after the completion: dropped, moved to +13 s.
    let outputs = harness.advance_to(first_at.after(secs(10)));
    assert!(triggered(&outputs).is_empty(), "only 5 s since the last completion");
    assert_eq!(harness.coordinator.poll_timeout(), Some(first_at.after(secs(13))));
    let just_before = harness.advance_to(Time(first_at.after(secs(13)).0 - 1));
    assert!(triggered(&just_before).is_empty(), "1 µs before min-pause elapsed");
    let outputs = harness.advance_to(first_at.after(secs(13)));
    assert_eq!(triggered(&outputs), vec![CheckpointId(2)], "exactly min-pause after the completion");
}

#[test]
fn max_concurrent_checkpoints_is_respected_exactly_and_queued_requests_run_when_a_slot_frees() {
    let mut config = config();
    config.max_concurrent = 2;
    let mut harness = Harness::running(&config);
    let (first, first_at) = harness.next_trigger();
    let (second, _) = harness.next_trigger();
    for step in 2..5 {
        let outputs = harness.advance_to(first_at.after(secs(10 * step)));
        assert!(triggered(&outputs).is_empty(), "two are pending: no third");
    }
    assert_eq!(harness.coordinator.pending().count(), 2);
    let outputs = harness.complete(second);
    // Completing 2 subsumes 1, and a queued periodic request starts at once (min-pause 0).
    assert_eq!(failures(&outputs), vec![(first, FailureReason::Subsumed)]);
    let started = triggered(&outputs);
    assert_eq!(started, vec![CheckpointId(3), CheckpointId(4)], "both free slots are used by queued requests");
    assert_eq!(harness.coordinator.pending().count(), 2);
}

#[test]
fn a_completed_checkpoint_subsumes_older_pending_ones_without_counting() {
    let mut config = config();
    config.max_concurrent = 3;
    config.tolerable_failed = 0;
    let mut harness = Harness::running(&config);
    let (first, _) = harness.next_trigger();
    let (second, _) = harness.next_trigger();
    let (third, _) = harness.next_trigger();
    harness.ack(executions(0)[0], first);
    let outputs = harness.complete(second);
    assert_eq!(failures(&outputs), vec![(first, FailureReason::Subsumed)]);
    assert!(discarded(&outputs).contains(&first), "a subsumed checkpoint's partial state is discarded");
    assert_eq!(fail_job(&outputs), None);
    assert_eq!(harness.coordinator.pending().collect::<Vec<_>>(), vec![third], "newer ones stay pending");
}

#[test]
fn only_the_newest_num_retained_checkpoints_are_kept() {
    let mut config = config();
    config.retained = 2;
    let mut harness = Harness::running(&config);
    let mut all_discarded = Vec::new();
    for expected in 1..=4 {
        let (id, _) = harness.next_trigger();
        assert_eq!(id, CheckpointId(expected));
        all_discarded.extend(discarded(&harness.complete(id)));
    }
    assert_eq!(all_discarded, vec![CheckpointId(1), CheckpointId(2)]);
    let retained: Vec<CheckpointId> = harness.coordinator.retained().map(|c| c.checkpoint).collect();
    assert_eq!(retained, vec![CheckpointId(3), CheckpointId(4)]);
    let history = &harness.coordinator.stats().history;
    let flag = |id: u64| history.iter().find(|e| e.checkpoint == CheckpointId(id)).unwrap().discarded;
    assert!(flag(1) && flag(2) && !flag(3) && !flag(4));
}

#[test]
fn late_and_unknown_acknowledgements_are_ignored_and_their_state_discarded() {
    let mut config = config();
    config.timeout = secs(5);
    let mut harness = Harness::running(&config);
    let (expired, expired_at) = harness.next_trigger();
    harness.advance_to(expired_at.after(secs(5)));
    let task = executions(0)[1];
    let outputs = harness.ack(task, expired);
    let expected = Output::DiscardTaskState {
        checkpoint: expired,
        location: format!("/chk/{JOB}/chk-1"),
        execution: task,
        state: state_of(task, expired),
    };
    assert_eq!(outputs, vec![expected], "late ack for an expired checkpoint");
    let outputs = harness.ack(task, CheckpointId(999));
    assert!(matches!(&outputs[..], [Output::DiscardTaskState { checkpoint: CheckpointId(999), .. }]));
    let (id, _) = harness.next_trigger();
    let mut stranger = task;
    stranger.attempt = AttemptNumber(5);
    let outputs = harness.ack(stranger, id);
    assert!(matches!(&outputs[..], [Output::DiscardTaskState { execution, .. }] if *execution == stranger));
    assert!(harness.ack(task, id).is_empty());
    assert!(harness.ack(task, id).is_empty(), "a duplicate ack of a pending checkpoint changes nothing");
    harness.complete(id);
    assert!(harness.ack(task, id).is_empty(), "a duplicate ack of a retained checkpoint keeps its file");
    assert_eq!(harness.coordinator.latest_completed().unwrap().checkpoint, id);
}

#[test]
fn failover_aborts_every_pending_checkpoint_without_counting() {
    let mut config = config();
    config.tolerable_failed = 0;
    config.max_concurrent = 2;
    let mut harness = Harness::running(&config);
    let (first, _) = harness.next_trigger();
    let (second, _) = harness.next_trigger();
    let outputs = harness.handle(Input::Failover);
    assert_eq!(failures(&outputs), vec![(first, FailureReason::JobFailover), (second, FailureReason::JobFailover)]);
    assert_eq!(fail_job(&outputs), None);
    assert_eq!(harness.coordinator.failure_count(), 0);
    assert_eq!(harness.coordinator.pending().count(), 0);
}

#[test]
fn a_task_failure_aborts_the_checkpoints_it_has_not_acknowledged_without_counting() {
    let mut config = config();
    config.tolerable_failed = 0;
    config.max_concurrent = 2;
    let mut harness = Harness::running(&config);
    let (first, _) = harness.next_trigger();
    let (second, _) = harness.next_trigger();
    let task = executions(0)[3];
    harness.ack(task, first);
    let outputs = harness.handle(Input::TaskFailed { execution: task });
    assert_eq!(failures(&outputs), vec![(second, FailureReason::TaskFailure { execution: task })]);
    assert_eq!(fail_job(&outputs), None);
    assert_eq!(harness.coordinator.pending().collect::<Vec<_>>(), vec![first]);
}

#[test]
fn a_savepoint_completes_at_its_target_and_is_never_retained_subsumed_or_discarded() {
    let mut config = config();
    config.retained = 1;
    let mut harness = Harness::running(&config);
    let outputs = harness.savepoint(1, false);
    let [Output::TriggerAtSources { checkpoint: savepoint, kind, location, alignment, .. }] = &outputs[..] else {
        panic!("a savepoint triggers at once: {outputs:?}");
    };
    let (savepoint, location) = (*savepoint, location.clone());
    assert_eq!(*kind, BarrierKind::Savepoint { stop: false, drain: false });
    assert_eq!(*alignment, Alignment::Aligned);
    assert!(location.starts_with(&format!("/sp/savepoint-{}-", &JOB.to_string()[..6])), "{location}");
    let outputs = harness.complete(savepoint);
    assert_eq!(savepoint_results(&outputs), vec![(request(1), Ok(location.clone()))]);
    assert!(notified_complete(&outputs).is_empty(), "a plain savepoint commits nothing");
    assert!(harness.coordinator.latest_completed().is_none(), "savepoints are not restored from");
    let mut all_discarded = discarded(&outputs);
    for _ in 0..3 {
        let (id, _) = harness.next_trigger();
        all_discarded.extend(discarded(&harness.complete(id)));
    }
    assert!(!all_discarded.contains(&savepoint), "a savepoint is never discarded");
    assert_eq!(harness.coordinator.stats().latest_savepoint.as_ref().unwrap().checkpoint, savepoint);
}

#[test]
fn savepoint_requests_that_cannot_start_fail_at_once_without_an_id() {
    let mut config = config();
    config.savepoint_dir = None;
    let mut harness = Harness::new(&config);
    let outputs = harness.savepoint(1, false);
    assert_eq!(savepoint_results(&outputs), vec![(request(1), Err(FailureReason::TasksNotRunning))]);
    harness.handle(Input::TasksRunning(executions(0)));
    let outputs = harness.savepoint(2, false);
    assert_eq!(savepoint_results(&outputs), vec![(request(2), Err(FailureReason::NoSavepointDirectory))]);
    assert_eq!(harness.coordinator.checkpoint_id_next(), CheckpointId(1), "no id was used");
    let target = Some("/mine".to_string());
    let outputs = harness.handle(Input::TriggerSavepoint { request_id: request(3), target, stop: false, drain: true });
    assert_eq!(triggered(&outputs), vec![CheckpointId(1)]);
}

#[test]
fn savepoints_pass_max_concurrent_unless_unaligned_checkpoints_are_on() {
    for (unaligned, passes) in [(false, true), (true, false)] {
        let mut config = config();
        config.unaligned = unaligned;
        let mut harness = Harness::running(&config);
        let (checkpoint, _) = harness.next_trigger();
        let outputs = harness.savepoint(1, false);
        assert_eq!(!triggered(&outputs).is_empty(), passes, "unaligned {unaligned}");
        if !passes {
            let outputs = harness.complete(checkpoint);
            assert_eq!(triggered(&outputs).len(), 1, "the queued savepoint starts when the slot frees");
        }
    }
}

#[test]
fn stop_with_savepoint_suspends_checkpointing_and_commits() {
    let mut harness = Harness::running(&config());
    let (pending, _) = harness.next_trigger();
    let outputs = harness.savepoint(1, true);
    assert_eq!(failures(&outputs), vec![(pending, FailureReason::Suspended)]);
    let savepoint = triggered(&outputs)[0];
    assert!(!harness.coordinator.is_periodic_scheduling());
    let outputs = harness.complete(savepoint);
    assert_eq!(notified_complete(&outputs), vec![savepoint], "a stop-with-savepoint commits");
    assert!(matches!(&savepoint_results(&outputs)[..], [(_, Ok(_))]));
    assert_eq!(harness.coordinator.poll_timeout(), None, "no more periodic checkpoints");
}

#[test]
fn a_stop_with_savepoint_declined_by_a_task_fails_the_job_at_once() {
    let mut config = config();
    config.tolerable_failed = 100;
    let mut harness = Harness::running(&config);
    let savepoint = triggered(&harness.savepoint(1, true))[0];
    let task = executions(0)[0];
    let outputs =
        harness.handle(Input::Decline { execution: task, checkpoint: savepoint, reason: DeclineReason::TaskNotReady });
    let reason = fail_job(&outputs).expect("a failed stop-with-savepoint on a task fails the job");
    assert!(reason.contains("Stop-with-savepoint"), "{reason}");
    assert!(matches!(&savepoint_results(&outputs)[..], [(_, Err(FailureReason::Declined { .. }))]));
}

#[test]
fn a_stop_with_savepoint_that_expires_reports_and_resumes_checkpointing() {
    let mut config = config();
    config.timeout = secs(5);
    config.tolerable_failed = 0;
    let mut harness = Harness::running(&config);
    let savepoint = triggered(&harness.savepoint(1, true))[0];
    let outputs = harness.advance_to(at(5));
    assert_eq!(savepoint_results(&outputs), vec![(request(1), Err(FailureReason::Expired))]);
    assert_eq!(fail_job(&outputs), None, "a coordinator-side savepoint failure does not count");
    assert!(harness.coordinator.is_periodic_scheduling(), "checkpointing resumes");
    let (next, _) = harness.next_trigger();
    assert!(next > savepoint);
}

#[test]
fn tasks_not_running_stops_triggering_and_aborts_pending_checkpoints() {
    let mut harness = Harness::running(&config());
    let (id, _) = harness.next_trigger();
    let outputs = harness.handle(Input::TasksNotRunning);
    assert_eq!(failures(&outputs), vec![(id, FailureReason::Suspended)]);
    assert_eq!(harness.coordinator.poll_timeout(), None);
    assert!(triggered(&harness.advance_to(at(1_000))).is_empty());
    harness.handle(Input::TasksRunning(executions(0)));
    let (next, _) = harness.next_trigger();
    assert_eq!(next, CheckpointId(id.0 + 1));
}

#[test]
fn a_restart_restores_the_latest_checkpoint_by_subtask_and_bumps_no_id() {
    let mut harness = Harness::running(&config());
    let (id, _) = harness.next_trigger();
    harness.complete(id);
    let (pending, _) = harness.next_trigger();
    harness.handle(Input::Failover);
    harness.handle(Input::TasksNotRunning);
    let next_before = harness.coordinator.checkpoint_id_next();
    let restored = harness.coordinator.restore_latest(harness.now).unwrap();
    assert_eq!(restored.checkpoint, id);
    assert_eq!(harness.coordinator.checkpoint_id_next(), next_before, "restoring uses no id");
    for execution in executions(1) {
        let state = restored.state_of(execution.vertex, execution.subtask).unwrap();
        let mut old = execution;
        old.attempt = AttemptNumber(0);
        assert_eq!(state, &state_of(old, id), "the new attempt finds its subtask's state");
    }
    harness.attempt = 1;
    harness.handle(Input::TasksRunning(executions(1)));
    let (next, _) = harness.next_trigger();
    assert_eq!(next, CheckpointId(pending.0 + 1), "ids are never reused");
    let outputs = harness.complete(next);
    let Some(Output::NotifyComplete { tasks, .. }) =
        outputs.iter().find(|o| matches!(o, Output::NotifyComplete { .. }))
    else {
        panic!("no completion");
    };
    assert_eq!(tasks, &executions(1));
    assert_eq!(harness.coordinator.stats().counts.restored, 1);
}

#[test]
fn recovered_checkpoints_resume_the_counter_and_are_trimmed_to_num_retained() {
    let recovered = |id: u64| CompletedCheckpoint {
        checkpoint: CheckpointId(id),
        kind: BarrierKind::Checkpoint,
        location: format!("/chk/{JOB}/chk-{id}"),
        triggered_at: Time(id),
        completed_at: Time(id),
        states: BTreeMap::new(),
        finished: BTreeSet::new(),
    };
    let mut setup = setup(1);
    setup.recovered = vec![recovered(5), recovered(3)];
    setup.checkpoint_id_next = CheckpointId(9);
    let mut harness = Harness::with_setup(&config(), setup);
    assert_eq!(discarded(&harness.drain()), vec![CheckpointId(3)]);
    assert_eq!(harness.coordinator.latest_completed().unwrap().checkpoint, CheckpointId(5));
    harness.handle(Input::TasksRunning(executions(0)));
    assert_eq!(harness.next_trigger().0, CheckpointId(9));
}

#[test]
fn a_failed_metadata_write_aborts_without_counting_and_a_late_write_is_discarded() {
    let mut config = config();
    config.tolerable_failed = 0;
    let mut harness = Harness::running(&config);
    let (id, _) = harness.next_trigger();
    harness.ack_all(id);
    let outputs = harness.handle(Input::MetadataPersistFailed { checkpoint: id, error: "EIO".to_string() });
    assert_eq!(failures(&outputs), vec![(id, FailureReason::FinalizeFailed("EIO".to_string()))]);
    assert_eq!(fail_job(&outputs), None);
    let (second, _) = harness.next_trigger();
    harness.ack_all(second);
    harness.handle(Input::Failover);
    let outputs = harness.persisted(second);
    assert_eq!(discarded(&outputs), vec![second], "metadata written after the abort is discarded again");
    assert!(harness.coordinator.latest_completed().is_none());
}

#[test]
fn shutdown_discards_retained_checkpoints_as_the_retention_says_and_then_ignores_input() {
    let cases = [
        (CheckpointRetention::DeleteOnCancellation, JobStatus::Canceled, true),
        (CheckpointRetention::DeleteOnCancellation, JobStatus::Failed, false),
        (CheckpointRetention::DeleteOnCancellation, JobStatus::Suspended, false),
        (CheckpointRetention::RetainOnCancellation, JobStatus::Canceled, false),
        (CheckpointRetention::RetainOnCancellation, JobStatus::Finished, true),
        (CheckpointRetention::NoExternalizedCheckpoints, JobStatus::Failed, true),
    ];
    for (retention, job_status, discards) in cases {
        let mut config = config();
        config.retention = retention;
        let mut harness = Harness::running(&config);
        let (id, _) = harness.next_trigger();
        harness.complete(id);
        let (pending, _) = harness.next_trigger();
        let outputs = harness.handle(Input::Shutdown { job_status });
        assert_eq!(failures(&outputs), vec![(pending, FailureReason::Shutdown)]);
        assert_eq!(discarded(&outputs).contains(&id), discards, "{retention:?} {job_status:?}");
        assert!(harness.savepoint(1, false).is_empty(), "input after shutdown is ignored");
        assert_eq!(harness.coordinator.poll_timeout(), None);
    }
}

#[test]
fn statistics_count_and_summarize_like_flink() {
    let mut config = config();
    config.timeout = secs(8);
    let mut harness = Harness::running(&config);
    let (failed, failed_at) = harness.next_trigger();
    harness.advance_to(failed_at.after(secs(8)));
    for duration in [1, 3] {
        let (id, triggered_at) = harness.next_trigger();
        harness.ack_all(id);
        harness.now = triggered_at.after(secs(duration));
        harness.persisted(id);
    }
    let (in_progress, _) = harness.next_trigger();
    harness.ack(executions(0)[0], in_progress);
    let stats = harness.coordinator.stats();
    assert_eq!(
        (stats.counts.triggered, stats.counts.completed, stats.counts.failed, stats.counts.in_progress),
        (4, 2, 1, 1)
    );
    let entry = &stats.history[0];
    assert_eq!(
        (entry.checkpoint, entry.status, entry.acknowledged_subtasks, entry.total_subtasks),
        (in_progress, stats::CheckpointStatus::InProgress, 1, 4)
    );
    assert_eq!(stats.latest_failed.as_ref().unwrap().checkpoint, failed);
    let durations = stats.summary.end_to_end_duration_micros;
    assert_eq!(
        (durations.min, durations.max, durations.avg()),
        (secs(1).as_micros(), secs(3).as_micros(), secs(2).as_micros())
    );
    let sizes = stats.summary.state_size_bytes;
    assert_eq!((sizes.min, sizes.max), (4 * 102, 4 * 103), "the sum of the tasks' state sizes");
    let completed = stats.latest_completed.as_ref().unwrap();
    assert_eq!((completed.processed_bytes, completed.alignment_duration_max), (40, Duration::from_millis(5)));
    for _ in 0..12 {
        let (id, _) = harness.next_trigger();
        harness.complete(id);
    }
    assert_eq!(harness.coordinator.stats().history.len(), stats::HISTORY_SIZE);
}

#[test]
fn barriers_follow_flinks_checkpoint_options() {
    let cases = [
        (crate::config::CheckpointingMode::AtLeastOnce, true, Duration::ZERO, Alignment::AtLeastOnce),
        (crate::config::CheckpointingMode::ExactlyOnce, false, Duration::ZERO, Alignment::Aligned),
        (crate::config::CheckpointingMode::ExactlyOnce, true, Duration::ZERO, Alignment::Unaligned),
        (crate::config::CheckpointingMode::ExactlyOnce, true, secs(2), Alignment::AlignedWithTimeout(secs(2))),
    ];
    for (mode, unaligned, timeout, expected) in cases {
        let mut config = config();
        config.mode = mode;
        config.unaligned = unaligned;
        config.aligned_checkpoint_timeout = timeout;
        let mut harness = Harness::running(&config);
        let due = harness.coordinator.poll_timeout().unwrap();
        let outputs = harness.advance_to(due);
        let Output::TriggerAtSources { alignment, .. } = &outputs[0] else { panic!("{outputs:?}") };
        assert_eq!(*alignment, expected);
        let barrier = outputs[0].barrier().unwrap();
        assert_eq!(barrier.unaligned, expected == Alignment::Unaligned);
    }
}

#[test]
fn new_attempts_replace_the_task_set_and_abort_what_waited_for_the_old_ones() {
    let mut harness = Harness::running(&config());
    let (id, _) = harness.next_trigger();
    let outputs = harness.handle(Input::TasksRunning(executions(1)));
    assert_eq!(failures(&outputs), vec![(id, FailureReason::JobFailover)]);
    let old = executions(0)[0];
    let outputs = harness.ack(old, id);
    assert!(matches!(&outputs[..], [Output::DiscardTaskState { .. }]), "an old attempt's ack is late");
}

#[test]
fn a_completed_checkpoint_is_rebuilt_from_its_metadata_for_jobmanager_recovery() {
    let mut harness = Harness::running(&config());
    let (id, _) = harness.next_trigger();
    let outputs = harness.ack_all(id);
    let Some(Output::PersistMetadata { bytes, location, .. }) = outputs.last() else { panic!("{outputs:?}") };
    let metadata = decode_metadata(bytes).unwrap();
    let (bytes, location) = (bytes.clone(), location.clone());
    harness.persisted(id);
    let rebuilt = CompletedCheckpoint::from_metadata(&metadata, location, &vertices()).unwrap();
    let completed = harness.coordinator.latest_completed().unwrap();
    assert_eq!(rebuilt, CompletedCheckpoint { completed_at: completed.triggered_at, ..completed.clone() });
    assert_eq!(storage::encode_metadata(&completed.metadata(JOB, &harness.coordinator.vertices)), bytes);
    let mut fewer = vertices();
    fewer[1].parallelism = 1;
    let unmatched = CompletedCheckpoint::from_metadata(&metadata, String::new(), &fewer).unwrap_err();
    assert_eq!(unmatched.subtask, SubtaskIndex(1));
}

/// Completes the next checkpoint with every task referencing the shared files `f<id-1>` and
/// `f<id>`; returns the shared files the coordinator asked to delete.
fn complete_with_shared(harness: &mut Harness) -> Vec<String> {
    let (checkpoint, _) = harness.next_trigger();
    let shared = vec![format!("f{:03}", checkpoint.0 - 1), format!("f{:03}", checkpoint.0)];
    let mut outputs = Vec::new();
    for execution in executions(harness.attempt) {
        let state = TaskStateHandle { shared: shared.clone(), ..state_of(execution, checkpoint) };
        let metrics = AckMetrics::default();
        outputs.extend(harness.handle(Input::Acknowledge { execution, checkpoint, state: Some(state), metrics }));
    }
    outputs.extend(harness.persisted(checkpoint));
    let mut deleted = Vec::new();
    for output in outputs {
        if let Output::DiscardSharedFiles { location, files } = output {
            assert!(location.ends_with(&format!("{JOB}/shared")), "{location}");
            deleted.extend(files);
        }
    }
    deleted
}

#[test]
fn a_shared_file_is_deleted_once_no_retained_checkpoint_references_it_also_after_recovery() {
    let mut config = config();
    config.retained = 2;
    let mut harness = Harness::running(&config);
    let deleted: Vec<String> = (0..4).flat_map(|_| complete_with_shared(&mut harness)).collect();
    // Checkpoints 3 and 4 are retained: f002..f004 stay; f000 went with 1, f001 with 2.
    assert_eq!(deleted, ["f000", "f001"]);
    // A new JobManager recovers the retained checkpoints and rebuilds the counts from them.
    let mut setup = setup(1);
    setup.recovered = harness.coordinator.retained().cloned().collect();
    setup.checkpoint_id_next = CheckpointId(5);
    let mut recovered = Harness::with_setup(&config, setup);
    recovered.handle(Input::TasksRunning(executions(0)));
    // Checkpoint 5 (f004, f005) retires 3: f002 was only its; f003 is still checkpoint 4's.
    assert_eq!(complete_with_shared(&mut recovered), ["f002"]);
}
