//! The final checkpoint of a bounded input triggers as soon as every task a checkpoint starts
//! at waits for it, not at the next period; `min-pause`, `max-concurrent` and stale reports.
//! The job is the one of `tests.rs`: sources 0 and 1 feed maps 2 and 3 all-to-all.

use super::tests::{config, executions, setup, state_of};
use super::*;
use crate::config::CheckpointConfig;
use crate::time::Duration;

struct Driver {
    coordinator: CheckpointCoordinator,
    now: Time,
}

impl Driver {
    /// Tasks running at time zero, checkpoints every 10 s (periodic trigger not before 1 s).
    fn new(config: &CheckpointConfig) -> Driver {
        let mut driver = Driver { coordinator: CheckpointCoordinator::new(config, setup(7)), now: Time::ZERO };
        driver.handle(Input::TasksRunning(executions(0)));
        driver
    }

    fn handle(&mut self, input: Input) -> Vec<Output> {
        self.coordinator.handle(self.now, input);
        self.coordinator.check_invariants().unwrap_or_else(|problem| panic!("{problem}"));
        std::iter::from_fn(|| self.coordinator.poll_output()).collect()
    }

    fn at(&mut self, micros: u64) -> Vec<Output> {
        self.now = Time(micros);
        self.handle(Input::Tick)
    }

    fn awaits(&mut self, position: usize, checkpoint_latest: Option<u64>) -> Vec<Output> {
        let execution = executions(0)[position];
        self.handle(Input::FinalCheckpointAwaited { execution, checkpoint_latest: checkpoint_latest.map(CheckpointId) })
    }

    /// Acknowledges at these positions and persists the metadata: `checkpoint` completes.
    fn complete(&mut self, checkpoint: CheckpointId, positions: &[usize]) -> Vec<Output> {
        for &position in positions {
            let execution = executions(0)[position];
            let state = Some(state_of(execution, checkpoint));
            self.handle(Input::Acknowledge { execution, checkpoint, state, metrics: AckMetrics::default() });
        }
        self.handle(Input::MetadataPersisted { checkpoint })
    }

    fn finished(&mut self, positions: &[usize]) -> Vec<Output> {
        let executions = executions(0);
        let finished = positions.iter().map(|&position| executions[position]).collect();
        self.handle(Input::TasksRunningOrFinished { executions, finished })
    }
}

fn triggers(outputs: &[Output]) -> Vec<(CheckpointId, Vec<ExecutionId>)> {
    let triggers = outputs.iter().filter_map(|output| match output {
        Output::TriggerAtSources { checkpoint, sources, .. } => Some((*checkpoint, sources.clone())),
        _ => None,
    });
    triggers.collect()
}

/// The periodic trigger is far away: whatever triggers before it is the early final one.
fn slow_config() -> CheckpointConfig {
    let mut config = config();
    config.interval = Some(Duration::from_secs(3_600));
    config.min_pause = Duration::from_secs(1);
    config
}

#[test]
fn once_every_source_waits_the_final_checkpoint_triggers_at_once_and_then_at_the_maps() {
    let mut driver = Driver::new(&slow_config());
    assert!(driver.coordinator.poll_timeout().is_some_and(|due| due >= Time(1_000_000)));
    assert_eq!(triggers(&driver.awaits(0, None)), vec![], "source 1 still reads its input");
    let outputs = driver.awaits(1, None);
    assert_eq!(triggers(&outputs), vec![(CheckpointId(1), executions(0)[..2].to_vec())]);
    assert_eq!(triggers(&driver.awaits(1, None)), vec![], "a repeated report triggers nothing");
    driver.now = Time(2_000_000);
    driver.complete(CheckpointId(1), &[0, 1, 2, 3]);
    driver.finished(&[0, 1]);
    assert_eq!(triggers(&driver.awaits(2, Some(1))), vec![]);
    let outputs = driver.awaits(3, Some(1));
    assert_eq!(triggers(&outputs), vec![], "min-pause: not before 1 s after the completion");
    assert_eq!(driver.coordinator.poll_timeout(), Some(Time(3_000_000)), "the trigger moved to the end of min-pause");
    assert_eq!(triggers(&driver.at(2_999_999)), vec![]);
    assert_eq!(triggers(&driver.at(3_000_000)), vec![(CheckpointId(2), executions(0)[2..].to_vec())]);
}

/// A driver with a 10 s interval and no min-pause whose first periodic checkpoint is pending.
fn one_periodic_checkpoint_pending() -> (Driver, CheckpointId) {
    let mut config = slow_config();
    config.interval = Some(Duration::from_secs(10));
    config.min_pause = Duration::ZERO;
    let mut driver = Driver::new(&config);
    let due = driver.coordinator.poll_timeout().unwrap_or_else(|| panic!("armed"));
    let (id, _) = triggers(&driver.at(due.0))[0].clone();
    (driver, id)
}

#[test]
fn a_pending_checkpoint_the_task_takes_after_its_end_is_its_final_one_and_none_is_added() {
    let (mut driver, id) = one_periodic_checkpoint_pending();
    // Both reports come after the trigger and name an older checkpoint: `id` reaches them after
    // their end, so it finishes them.
    driver.awaits(0, None);
    assert_eq!(triggers(&driver.awaits(1, None)), vec![]);
    assert_eq!(triggers(&driver.complete(id, &[0, 1, 2, 3])), vec![]);
}

#[test]
fn a_final_checkpoint_waits_for_max_concurrent_behind_one_taken_before_the_end() {
    let (mut driver, id) = one_periodic_checkpoint_pending();
    // The sources took `id` before their input ended: it does not finish them.
    driver.awaits(0, Some(id.0));
    assert_eq!(triggers(&driver.awaits(1, Some(id.0))), vec![], "max-concurrent 1: `id` is still pending");
    let outputs = driver.complete(id, &[0, 1, 2, 3]);
    assert_eq!(triggers(&outputs), vec![(CheckpointId(id.0 + 1), executions(0)[..2].to_vec())]);
}

#[test]
fn a_failed_final_checkpoint_is_left_to_the_periodic_trigger() {
    let mut driver = Driver::new(&slow_config());
    driver.awaits(0, None);
    assert_eq!(triggers(&driver.awaits(1, None)).len(), 1);
    let execution = executions(0)[2];
    let reason = DeclineReason::SnapshotFailed("disk".to_string());
    let outputs = driver.handle(Input::Decline { execution, checkpoint: CheckpointId(1), reason });
    assert!(outputs.iter().any(|output| matches!(output, Output::Failed { .. })));
    assert_eq!(triggers(&outputs), vec![], "not retried at once");
    assert!(driver.coordinator.poll_timeout().is_some_and(|due| due > Time(1_000_000)));
}

#[test]
fn reports_of_old_attempts_and_of_finished_tasks_are_ignored() {
    let mut driver = Driver::new(&slow_config());
    driver.handle(Input::Failover);
    driver.handle(Input::TasksRunning(executions(1)));
    for position in 0..2 {
        assert_eq!(triggers(&driver.awaits(position, None)), vec![], "attempt 0 is gone");
    }
    let current = executions(1);
    driver.handle(Input::FinalCheckpointAwaited { execution: current[0], checkpoint_latest: None });
    let outputs = driver.handle(Input::FinalCheckpointAwaited { execution: current[1], checkpoint_latest: None });
    assert_eq!(triggers(&outputs), vec![(CheckpointId(1), current[..2].to_vec())]);
}

#[test]
fn a_report_before_the_coordinator_knows_its_attempt_counts_once_the_attempt_runs() {
    let mut driver = Driver::new(&slow_config());
    driver.handle(Input::TasksNotRunning);
    let next = executions(1);
    for execution in &next[..2] {
        driver.handle(Input::FinalCheckpointAwaited { execution: *execution, checkpoint_latest: None });
    }
    let outputs = driver.handle(Input::TasksRunning(next.clone()));
    assert_eq!(triggers(&outputs), vec![(CheckpointId(1), next[..2].to_vec())]);
}
