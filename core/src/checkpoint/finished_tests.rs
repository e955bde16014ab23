//! Checkpoints after tasks finish (Flink's FLIP-147): where barriers start, who acknowledges,
//! what a completed checkpoint records, and what happens to a checkpoint whose task finished.
//! The job is the one of `tests.rs`: sources 0 and 1 feed maps 0 and 1 all-to-all.

use super::storage::decode_metadata;
use super::tests::{JOB, config, executions, setup, state_of, vertices};
use super::*;
use crate::time::Duration;

/// One coordinator, its clock, and the invariants checked after every input.
struct Driver {
    coordinator: CheckpointCoordinator,
    now: Time,
}

impl Driver {
    fn new() -> Driver {
        Driver { coordinator: CheckpointCoordinator::new(&config(), setup(7)), now: Time::ZERO }
    }

    fn handle(&mut self, input: Input) -> Vec<Output> {
        self.coordinator.handle(self.now, input);
        self.coordinator.check_invariants().unwrap_or_else(|problem| panic!("{problem}"));
        std::iter::from_fn(|| self.coordinator.poll_output()).collect()
    }

    /// Reports the tasks at these positions of [`executions`] FINISHED, the rest RUNNING.
    fn finished(&mut self, positions: &[usize]) -> Vec<Output> {
        let executions = executions(0);
        let finished = positions.iter().map(|&position| executions[position]).collect();
        self.handle(Input::TasksRunningOrFinished { executions, finished })
    }

    /// Ticks until a checkpoint triggers: its id and the attempts it was triggered at.
    fn next_trigger(&mut self) -> (CheckpointId, Vec<ExecutionId>) {
        for _ in 0..100 {
            let due = self.coordinator.poll_timeout().unwrap_or_else(|| panic!("no timer armed"));
            self.now = due.max(self.now);
            for output in self.handle(Input::Tick) {
                if let Output::TriggerAtSources { checkpoint, sources, .. } = output {
                    return (checkpoint, sources);
                }
            }
        }
        panic!("no checkpoint triggered");
    }

    fn ack(&mut self, position: usize, checkpoint: CheckpointId) -> Vec<Output> {
        let execution = executions(0)[position];
        let state = Some(state_of(execution, checkpoint));
        self.handle(Input::Acknowledge { execution, checkpoint, state, metrics: AckMetrics::default() })
    }
}

fn failures(outputs: &[Output]) -> Vec<(CheckpointId, FailureReason)> {
    let failed = outputs.iter().filter_map(|output| match output {
        Output::Failed { checkpoint, reason } => Some((*checkpoint, reason.clone())),
        _ => None,
    });
    failed.collect()
}

fn subtask(vertex: u32, subtask: u32) -> (VertexIndex, SubtaskIndex) {
    (VertexIndex(vertex), SubtaskIndex(subtask))
}

#[test]
fn with_one_source_finished_barriers_start_at_the_other_source_only() {
    let mut driver = Driver::new();
    driver.finished(&[0]);
    let (_, sources) = driver.next_trigger();
    // Each map still reads the running source 1 (all-to-all): its barrier reaches them from there.
    assert_eq!(sources, vec![executions(0)[1]]);
}

#[test]
fn with_every_source_finished_barriers_start_at_the_maps_and_only_they_acknowledge() {
    let mut driver = Driver::new();
    driver.finished(&[0, 1]);
    let (id, sources) = driver.next_trigger();
    assert_eq!(sources, executions(0)[2..].to_vec(), "the running tasks whose producers all finished");
    let outputs = driver.ack(2, id);
    assert!(!outputs.iter().any(|o| matches!(o, Output::PersistMetadata { .. })), "map 1 has not acknowledged");
    let outputs = driver.ack(3, id);
    let Some(Output::PersistMetadata { bytes, .. }) = outputs.last() else { panic!("{outputs:?}") };
    let metadata = decode_metadata(bytes).unwrap_or_else(|error| panic!("{error}"));
    let source_id = vertices()[0].id;
    let finished = [(source_id, SubtaskIndex(0)), (source_id, SubtaskIndex(1))].into_iter().collect();
    assert_eq!(metadata.finished, finished, "the metadata records the finished sources");
    assert_eq!(metadata.tasks.len(), 2, "state of the two maps only");
    let outputs = driver.handle(Input::MetadataPersisted { checkpoint: id });
    let notified = outputs.iter().find_map(|output| match output {
        Output::NotifyComplete { tasks, .. } => Some(tasks.clone()),
        _ => None,
    });
    assert_eq!(notified, Some(executions(0)[2..].to_vec()), "finished tasks are not notified");
    let completed = driver.coordinator.latest_completed().unwrap_or_else(|| panic!("completed"));
    assert_eq!(completed.checkpoint, id);
    assert!(completed.is_finished(VertexIndex(0), SubtaskIndex(1)));
    assert!(!completed.is_finished(VertexIndex(1), SubtaskIndex(0)));
    assert_eq!(completed.state_of(VertexIndex(0), SubtaskIndex(0)), None, "a finished task has no state");
    let location = completed.location.clone();
    let rebuilt = CompletedCheckpoint::from_metadata(&metadata, location, &vertices());
    let rebuilt = rebuilt.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(rebuilt.finished, [subtask(0, 0), subtask(0, 1)].into_iter().collect());
}

#[test]
fn a_task_finishing_without_acknowledging_aborts_the_checkpoint_at_once_without_counting() {
    let mut driver = Driver::new();
    driver.handle(Input::TasksRunning(executions(0)));
    let (id, _) = driver.next_trigger();
    driver.ack(0, id);
    // Source 0 acknowledged before it finished: the checkpoint still completes with its state.
    let outputs = driver.finished(&[0]);
    assert!(failures(&outputs).is_empty(), "{outputs:?}");
    // Source 1 finished without acknowledging: it never will.
    let outputs = driver.finished(&[0, 1]);
    assert_eq!(failures(&outputs), vec![(id, FailureReason::TasksNotRunning)]);
    assert_eq!(driver.coordinator.failure_count(), 0);
    assert_eq!(driver.coordinator.pending().count(), 0, "not left to expire");
    // The next one waits for the maps only and completes.
    let (next, _) = driver.next_trigger();
    driver.ack(2, next);
    driver.ack(3, next);
    driver.handle(Input::MetadataPersisted { checkpoint: next });
    let completed = driver.coordinator.latest_completed().unwrap_or_else(|| panic!("completed"));
    assert_eq!((completed.checkpoint, completed.states.len(), completed.finished.len()), (next, 2, 2));
}

#[test]
fn a_checkpoint_acknowledged_before_its_task_finished_records_that_task_with_state() {
    let mut driver = Driver::new();
    driver.finished(&[0]);
    let (id, _) = driver.next_trigger();
    driver.ack(1, id);
    driver.finished(&[0, 1]);
    driver.ack(2, id);
    driver.ack(3, id);
    driver.handle(Input::MetadataPersisted { checkpoint: id });
    let completed = driver.coordinator.latest_completed().unwrap_or_else(|| panic!("completed"));
    assert_eq!(completed.finished, [subtask(0, 0)].into_iter().collect(), "finished when it was triggered");
    assert!(completed.state_of(VertexIndex(0), SubtaskIndex(1)).is_some(), "source 1 acknowledged with state");
}

#[test]
fn when_every_task_finished_checkpointing_stops() {
    let mut driver = Driver::new();
    driver.finished(&[0, 1]);
    let (id, _) = driver.next_trigger();
    let outputs = driver.finished(&[0, 1, 2, 3]);
    assert_eq!(failures(&outputs), vec![(id, FailureReason::TasksNotRunning)]);
    assert!(!driver.coordinator.is_periodic_scheduling());
    assert_eq!(driver.coordinator.poll_timeout(), None);
    driver.now = driver.now.after(Duration::from_secs(100));
    assert!(driver.handle(Input::Tick).is_empty());
}

#[test]
fn metadata_of_format_version_one_decodes_with_nothing_finished() {
    let mut driver = Driver::new();
    driver.handle(Input::TasksRunning(executions(0)));
    let (id, _) = driver.next_trigger();
    let outputs: Vec<Output> = (0..4).flat_map(|position| driver.ack(position, id)).collect();
    let Some(Output::PersistMetadata { bytes, .. }) = outputs.last() else { panic!("{outputs:?}") };
    let current = decode_metadata(bytes).unwrap_or_else(|error| panic!("{error}"));
    let old = storage::encode_metadata_version(&current, 1);
    let metadata = decode_metadata(&old).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((metadata.checkpoint, metadata.tasks.len(), metadata.finished.len()), (id, 4, 0));
    assert_eq!(metadata.job, JOB);
}

#[test]
fn finished_subtasks_round_trip_and_inconsistent_ones_are_typed_decode_errors() {
    let mut driver = Driver::new();
    driver.finished(&[0, 1]);
    let (id, _) = driver.next_trigger();
    driver.ack(2, id);
    let outputs = driver.ack(3, id);
    let Some(Output::PersistMetadata { bytes, .. }) = outputs.last() else { panic!("{outputs:?}") };
    let metadata = decode_metadata(bytes).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(storage::encode_metadata(&metadata), *bytes, "canonical");
    let (source, map) = (vertices()[0].id, vertices()[1].id);
    let unknown = crate::ids::VertexId(crate::ids::Hex128(0xdead));
    let forged = [
        (unknown, SubtaskIndex(0), "unknown vertex"),
        (source, SubtaskIndex(2), "beyond its parallelism"),
        (map, SubtaskIndex(0), "has state"),
    ];
    for (vertex, subtask, expected) in forged {
        let mut bad = metadata.clone();
        bad.finished.insert((vertex, subtask));
        let problem = decode_metadata(&storage::encode_metadata(&bad)).map(|_| ()).unwrap_err().problem;
        let storage::StorageProblem::Undecodable { reason, .. } = &problem else { panic!("{problem:?}") };
        assert!(reason.contains(expected), "{reason}");
    }
}
