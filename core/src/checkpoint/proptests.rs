//! The coordinator under random input: valid, duplicated, reordered, late and nonsense
//! acknowledgements and declines, task failures, failovers, restarts with new attempts,
//! savepoints, metadata answers and ticks at random times, under random configurations.
//!
//! After every step: no panic, `check_invariants` holds, trigger ids strictly increase, at most
//! `max-concurrent-checkpoints` periodic checkpoints are in flight as seen from outside, nothing
//! retained or any completed savepoint is ever discarded, completion is notified only after the
//! metadata was persisted, an early tick does nothing, and every savepoint request is answered
//! at most once; after a final shutdown every request is answered and every checkpoint ended.
//! With some tasks FINISHED: barriers start at exactly the running sources and the running maps
//! whose producers (both sources) finished, and a completed checkpoint holds state of running
//! tasks only and records exactly the tasks finished when it was triggered.

use super::tests::{executions, setup, state_of};
use super::*;
use crate::config::{CheckpointConfig, Config};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
enum Step {
    Tick {
        advance_ms: u64,
    },
    AckPending {
        pick: usize,
        task: usize,
        stateful: bool,
    },
    /// Every current attempt acknowledges one pending checkpoint, in one go.
    AckAll {
        pick: usize,
    },
    AckAny {
        checkpoint: u64,
        task: usize,
        attempt: u32,
    },
    DeclinePending {
        pick: usize,
        task: usize,
        reason: u8,
    },
    DeclineAny {
        checkpoint: u64,
        task: usize,
        reason: u8,
    },
    TaskFailed {
        task: usize,
        attempt_offset: u32,
    },
    Failover,
    TasksNotRunning,
    /// A task's input ended after checkpoint `latest` (0: none); `attempt_offset` 1 is a stale
    /// or early attempt.
    FinalAwaited {
        task: usize,
        attempt_offset: u32,
        latest: u64,
    },
    TasksRunning {
        new_attempt: bool,
    },
    /// The tasks whose bit is set in `mask` are FINISHED, the others RUNNING.
    TasksFinished {
        mask: u8,
    },
    Savepoint {
        request: u8,
        stop: bool,
        drain: bool,
        target: bool,
    },
    Persist {
        pick: usize,
    },
    PersistFailed {
        pick: usize,
    },
    PersistAny {
        checkpoint: u64,
    },
    Replay {
        pick: usize,
    },
    Shutdown {
        status: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => prop_oneof![3 => 0u64..3_000, 1 => 0u64..40_000].prop_map(|advance_ms| Step::Tick { advance_ms }),
        12 => (any::<usize>(), 0usize..4, prop::bool::weighted(0.8))
            .prop_map(|(pick, task, stateful)| Step::AckPending { pick, task, stateful }),
        10 => any::<usize>().prop_map(|pick| Step::AckAll { pick }),
        2 => (0u64..30, 0usize..5, 0u32..3)
            .prop_map(|(checkpoint, task, attempt)| Step::AckAny { checkpoint, task, attempt }),
        1 => (any::<usize>(), 0usize..4, 0u8..8)
            .prop_map(|(pick, task, reason)| Step::DeclinePending { pick, task, reason }),
        1 => (0u64..30, 0usize..5, 0u8..8)
            .prop_map(|(checkpoint, task, reason)| Step::DeclineAny { checkpoint, task, reason }),
        1 => (0usize..4, 0u32..2).prop_map(|(task, attempt_offset)| Step::TaskFailed { task, attempt_offset }),
        1 => Just(Step::Failover),
        1 => Just(Step::TasksNotRunning),
        3 => (0usize..5, prop_oneof![4 => Just(0u32), 1 => Just(1)], 0u64..30)
            .prop_map(|(task, attempt_offset, latest)| Step::FinalAwaited { task, attempt_offset, latest }),
        2 => any::<bool>().prop_map(|new_attempt| Step::TasksRunning { new_attempt }),
        2 => (0u8..16).prop_map(|mask| Step::TasksFinished { mask }),
        2 => (0u8..6, prop::bool::weighted(0.2), any::<bool>(), any::<bool>())
            .prop_map(|(request, stop, drain, target)| Step::Savepoint { request, stop, drain, target }),
        10 => any::<usize>().prop_map(|pick| Step::Persist { pick }),
        1 => any::<usize>().prop_map(|pick| Step::PersistFailed { pick }),
        1 => (0u64..30).prop_map(|checkpoint| Step::PersistAny { checkpoint }),
        2 => any::<usize>().prop_map(|pick| Step::Replay { pick }),
        1 => (0u8..20).prop_map(|status| Step::Shutdown { status }),
    ]
}

fn arb_config() -> impl Strategy<Value = CheckpointConfig> {
    let durations =
        (prop_oneof![Just(5u64), Just(10)], prop_oneof![Just(0u64), Just(3)], prop_oneof![Just(8u64), Just(30)]);
    (durations, 1u32..4, 0u32..3, 1u32..4, any::<bool>(), any::<bool>()).prop_map(
        |((interval, min_pause, timeout), max_concurrent, tolerable_failed, retained, unaligned, savepoint_dir)| {
            let mut config = Config::default().checkpoint;
            config.interval = Some(Duration::from_secs(interval));
            config.min_pause = Duration::from_secs(min_pause);
            config.timeout = Duration::from_secs(timeout);
            config.max_concurrent = max_concurrent;
            config.tolerable_failed = tolerable_failed;
            config.retained = retained;
            config.unaligned = unaligned;
            config.dir = Some("/chk".to_string());
            config.savepoint_dir = savepoint_dir.then(|| "/sp".to_string());
            config
        },
    )
}

fn decline_reason(n: u8) -> DeclineReason {
    match n {
        0 => DeclineReason::TaskNotReady,
        1 => DeclineReason::TaskClosing,
        2 => DeclineReason::CancellationBarrier,
        3 => DeclineReason::Subsumed,
        4 => DeclineReason::InputEndOfStream,
        5 => DeclineReason::SnapshotFailed("sync".to_string()),
        6 => DeclineReason::AsyncSnapshotFailed("async".to_string()),
        _ => DeclineReason::Io("io".to_string()),
    }
}

/// The driver's view: what it was asked, fed and told.
struct World {
    coordinator: CheckpointCoordinator,
    max_concurrent: usize,
    min_pause: Duration,
    /// When the latest checkpoint or savepoint completed.
    completed_at: Option<Time>,
    now: Time,
    attempt: u32,
    inputs: Vec<Input>,
    /// `PersistMetadata` requests not answered yet.
    persist_asked: Vec<CheckpointId>,
    persisted_fed: BTreeSet<CheckpointId>,
    last_trigger: Option<CheckpointId>,
    /// Periodic checkpoints triggered and not yet completed or failed.
    periodic_in_flight: BTreeSet<CheckpointId>,
    triggered: BTreeSet<CheckpointId>,
    ended: BTreeSet<CheckpointId>,
    savepoint_locations: BTreeSet<String>,
    asked: BTreeMap<SavepointRequestId, u32>,
    answered: BTreeMap<SavepointRequestId, u32>,
    /// A shutdown was fed: later input is ignored.
    shut_down: bool,
    /// The attempts last reported RUNNING or FINISHED, and those of them FINISHED.
    current: Vec<ExecutionId>,
    finished: BTreeSet<ExecutionId>,
    /// The subtasks finished when each checkpoint was triggered.
    finished_at_trigger: BTreeMap<CheckpointId, BTreeSet<(VertexIndex, SubtaskIndex)>>,
}

impl World {
    fn new(config: &CheckpointConfig, seed: u64) -> World {
        let coordinator = CheckpointCoordinator::new(config, setup(seed));
        World {
            coordinator,
            max_concurrent: config.max_concurrent as usize,
            min_pause: config.min_pause,
            completed_at: None,
            now: Time::ZERO,
            attempt: 0,
            inputs: Vec::new(),
            persist_asked: Vec::new(),
            persisted_fed: BTreeSet::new(),
            last_trigger: None,
            periodic_in_flight: BTreeSet::new(),
            triggered: BTreeSet::new(),
            ended: BTreeSet::new(),
            savepoint_locations: BTreeSet::new(),
            asked: BTreeMap::new(),
            answered: BTreeMap::new(),
            shut_down: false,
            current: executions(0),
            finished: BTreeSet::new(),
            finished_at_trigger: BTreeMap::new(),
        }
    }

    fn task(&self, index: usize, attempt: u32) -> ExecutionId {
        let all = executions(attempt);
        match all.get(index) {
            Some(execution) => *execution,
            // A subtask the job does not have.
            None => ExecutionId { subtask: SubtaskIndex(7), ..all[0] },
        }
    }

    fn pick_pending(&self, pick: usize) -> Option<CheckpointId> {
        let pending: Vec<CheckpointId> = self.coordinator.pending().collect();
        (!pending.is_empty()).then(|| pending[pick % pending.len()])
    }

    fn take_persist(&mut self, pick: usize) -> Option<CheckpointId> {
        (!self.persist_asked.is_empty()).then(|| self.persist_asked.remove(pick % self.persist_asked.len()))
    }

    /// The inputs a step stands for now.
    fn inputs(&mut self, step: &Step) -> Vec<Input> {
        let Step::AckAll { pick } = *step else { return self.input(step).into_iter().collect() };
        let Some(checkpoint) = self.pick_pending(pick) else { return Vec::new() };
        let ack = |execution: ExecutionId| Input::Acknowledge {
            execution,
            checkpoint,
            state: Some(state_of(execution, checkpoint)),
            metrics: AckMetrics::default(),
        };
        let running = executions(self.attempt).into_iter().filter(|execution| !self.finished.contains(execution));
        running.map(ack).collect()
    }

    /// The input a step stands for, if it stands for one now.
    fn input(&mut self, step: &Step) -> Option<Input> {
        let input = match *step {
            Step::AckAll { .. } => return None,
            Step::Tick { advance_ms } => {
                self.now = self.now.after(Duration::from_millis(advance_ms));
                Input::Tick
            }
            Step::AckPending { pick, task, stateful } => {
                let checkpoint = self.pick_pending(pick)?;
                let execution = self.task(task, self.attempt);
                let state = stateful.then(|| state_of(execution, checkpoint));
                Input::Acknowledge { execution, checkpoint, state, metrics: AckMetrics::default() }
            }
            Step::AckAny { checkpoint, task, attempt } => {
                let (execution, checkpoint) = (self.task(task, attempt), CheckpointId(checkpoint));
                Input::Acknowledge {
                    execution,
                    checkpoint,
                    state: Some(state_of(execution, checkpoint)),
                    metrics: AckMetrics::default(),
                }
            }
            Step::DeclinePending { pick, task, reason } => {
                let checkpoint = self.pick_pending(pick)?;
                Input::Decline { execution: self.task(task, self.attempt), checkpoint, reason: decline_reason(reason) }
            }
            Step::DeclineAny { checkpoint, task, reason } => Input::Decline {
                execution: self.task(task, self.attempt),
                checkpoint: CheckpointId(checkpoint),
                reason: decline_reason(reason),
            },
            Step::TaskFailed { task, attempt_offset } => {
                Input::TaskFailed { execution: self.task(task, self.attempt + attempt_offset) }
            }
            Step::Failover => Input::Failover,
            Step::TasksNotRunning => Input::TasksNotRunning,
            Step::FinalAwaited { task, attempt_offset, latest } => {
                let attempt = match attempt_offset {
                    0 => self.attempt,
                    _ => self.attempt.checked_sub(1).unwrap_or(self.attempt + 1),
                };
                let checkpoint_latest = (latest > 0).then_some(CheckpointId(latest));
                Input::FinalCheckpointAwaited { execution: self.task(task, attempt), checkpoint_latest }
            }
            Step::TasksRunning { new_attempt } => {
                self.attempt += u32::from(new_attempt);
                Input::TasksRunning(executions(self.attempt))
            }
            Step::TasksFinished { mask } => {
                let executions = executions(self.attempt);
                let finished = executions.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, e)| *e);
                Input::TasksRunningOrFinished { finished: finished.collect(), executions }
            }
            Step::Savepoint { request, stop, drain, target } => Input::TriggerSavepoint {
                request_id: SavepointRequestId(crate::ids::Hex128(u128::from(request))),
                target: target.then(|| "/mine".to_string()),
                stop,
                drain,
            },
            Step::Persist { pick } => Input::MetadataPersisted { checkpoint: self.take_persist(pick)? },
            Step::PersistFailed { pick } => {
                Input::MetadataPersistFailed { checkpoint: self.take_persist(pick)?, error: "EIO".to_string() }
            }
            Step::PersistAny { checkpoint } => Input::MetadataPersisted { checkpoint: CheckpointId(checkpoint) },
            Step::Replay { pick } => {
                let replayable: Vec<&Input> =
                    self.inputs.iter().filter(|i| !matches!(i, Input::Shutdown { .. })).collect();
                (*replayable.get(pick % replayable.len().max(1))?).clone()
            }
            Step::Shutdown { status } => {
                let job_status = [JobStatus::Canceled, JobStatus::Failed, JobStatus::Finished, JobStatus::Suspended];
                if status != 0 {
                    return None; // rare: most draws do nothing
                }
                Input::Shutdown { job_status: job_status[self.inputs.len() % 4] }
            }
        };
        Some(input)
    }

    fn feed(&mut self, input: Input) -> Result<(), TestCaseError> {
        match &input {
            Input::TriggerSavepoint { request_id, .. } if !self.shut_down => {
                *self.asked.entry(*request_id).or_default() += 1;
            }
            Input::Shutdown { .. } => self.shut_down = true,
            _ => {}
        }
        if let Input::MetadataPersisted { checkpoint } = &input {
            self.persisted_fed.insert(*checkpoint);
        }
        match &input {
            Input::TasksRunning(executions) if !self.shut_down => {
                (self.current, self.finished) = (executions.clone(), BTreeSet::new());
            }
            Input::TasksRunningOrFinished { executions, finished } if !self.shut_down => {
                (self.current, self.finished) = (executions.clone(), finished.iter().copied().collect());
            }
            _ => {}
        }
        let early = matches!(input, Input::Tick) && self.coordinator.poll_timeout().is_none_or(|due| due > self.now);
        self.inputs.push(input.clone());
        self.coordinator.handle(self.now, input);
        let outputs: Vec<Output> = std::iter::from_fn(|| self.coordinator.poll_output()).collect();
        prop_assert!(!early || outputs.is_empty(), "an early tick did something: {:?}", outputs);
        self.coordinator.check_invariants().map_err(TestCaseError::fail)?;
        for output in &outputs {
            self.observe(output)?;
        }
        self.check_discards(&outputs)
    }

    fn observe(&mut self, output: &Output) -> Result<(), TestCaseError> {
        match output {
            Output::TriggerAtSources { checkpoint, kind, sources, .. } => {
                prop_assert!(self.last_trigger.is_none_or(|last| *checkpoint > last), "ids must strictly increase");
                self.last_trigger = Some(*checkpoint);
                self.triggered.insert(*checkpoint);
                self.check_trigger(sources)?;
                let finished = self.finished.iter().map(|e| (e.vertex, e.subtask)).collect();
                self.finished_at_trigger.insert(*checkpoint, finished);
                if *kind == BarrierKind::Checkpoint {
                    let earliest = self.completed_at.map(|at| at.after(self.min_pause));
                    prop_assert!(earliest.is_none_or(|earliest| self.now >= earliest), "min-pause not kept");
                    self.periodic_in_flight.insert(*checkpoint);
                    prop_assert!(self.periodic_in_flight.len() <= self.max_concurrent, "max concurrent exceeded");
                }
            }
            Output::PersistMetadata { checkpoint, bytes, .. } => {
                let metadata = storage::decode_metadata(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(metadata.checkpoint, *checkpoint);
                self.persist_asked.push(*checkpoint);
            }
            Output::NotifyComplete { checkpoint, .. } => {
                prop_assert!(
                    self.persisted_fed.contains(checkpoint),
                    "completion notified before the metadata persisted"
                );
            }
            Output::Completed(completed) => {
                prop_assert!(self.triggered.contains(&completed.checkpoint) && self.ended.insert(completed.checkpoint));
                prop_assert_eq!(Some(&completed.finished), self.finished_at_trigger.get(&completed.checkpoint));
                prop_assert!(completed.states.keys().all(|subtask| !completed.finished.contains(subtask)));
                self.periodic_in_flight.remove(&completed.checkpoint);
                self.completed_at = Some(self.now);
                if completed.is_savepoint() {
                    self.savepoint_locations.insert(completed.location.clone());
                }
            }
            Output::Failed { checkpoint, .. } => {
                prop_assert!(self.triggered.contains(checkpoint) && self.ended.insert(*checkpoint));
                self.periodic_in_flight.remove(checkpoint);
            }
            Output::SavepointDone { request_id, .. } => {
                let answered = self.answered.entry(*request_id).or_default();
                *answered += 1;
                prop_assert!(*answered <= self.asked.get(request_id).copied().unwrap_or(0), "answered twice");
            }
            _ => {}
        }
        Ok(())
    }

    /// Barriers start at every running source, and at every running map once both sources
    /// (its producers, all-to-all) finished; nowhere else.
    fn check_trigger(&self, sources: &[ExecutionId]) -> Result<(), TestCaseError> {
        let current = &self.current;
        let sources_finished = current.iter().filter(|e| e.vertex == VertexIndex(0)).all(|e| self.finished.contains(e));
        let expected: Vec<ExecutionId> = current
            .iter()
            .filter(|e| !self.finished.contains(e) && (e.vertex == VertexIndex(0) || sources_finished))
            .copied()
            .collect();
        prop_assert_eq!(sources, &expected[..], "triggered at {:?} with {:?} finished", sources, self.finished);
        Ok(())
    }

    /// Nothing retained (after this step) and no completed savepoint is ever discarded.
    fn check_discards(&self, outputs: &[Output]) -> Result<(), TestCaseError> {
        let retained: Vec<&CompletedCheckpoint> = self.coordinator.retained().collect();
        for output in outputs {
            match output {
                Output::Discard { checkpoint, location } => {
                    prop_assert!(!self.savepoint_locations.contains(location), "a savepoint was discarded");
                    prop_assert!(retained.iter().all(|c| c.checkpoint != *checkpoint && c.location != *location));
                }
                Output::DiscardTaskState { location, state, .. } => {
                    prop_assert!(!self.savepoint_locations.contains(location), "a savepoint's file was discarded");
                    let held =
                        retained.iter().any(|c| c.location == *location && c.states.values().any(|s| s == state));
                    prop_assert!(!held, "a retained checkpoint's state file was discarded");
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Shuts down and checks that nothing was left unanswered or unfinished.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.feed(Input::Shutdown { job_status: JobStatus::Canceled })?;
        prop_assert_eq!(&self.asked, &self.answered, "every savepoint request is answered exactly once");
        prop_assert_eq!(&self.triggered, &self.ended, "every checkpoint completed or failed");
        prop_assert_eq!(self.coordinator.poll_timeout(), None);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_inputs_keep_every_checkpoint_rule(
        config in arb_config(),
        seed in any::<u64>(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let mut world = World::new(&config, seed);
        prop_assert!(world.coordinator.check_invariants().is_ok());
        for step in &steps {
            for input in world.inputs(step) {
                world.feed(input)?;
            }
        }
        world.finish()?;
    }
}
