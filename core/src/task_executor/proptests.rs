//! Random message sequences against one TaskExecutor: valid, duplicated, reordered, stale-epoch
//! and nonsense inputs, with ticks at random times. Nothing may panic, the invariants hold after
//! every step, and the promises of the module doc hold over the whole run.

use super::tests::{allocation, config, deployment, execution, job};
use super::*;
use crate::ids::{AttemptNumber, Hex128};
use crate::protocol::{JobMasterMessage, TaskCommand};
use proptest::prelude::*;

const SLOTS: u32 = 3;
const RESOURCE: ResourceId = ResourceId(Hex128(0x7e));

/// The epoch a message carries, relative to the one the TaskExecutor follows when it arrives.
#[derive(Clone, Copy, Debug)]
enum EpochChoice {
    Followed,
    Lower,
    Higher,
    Fixed(u64),
}

#[derive(Clone, Debug)]
enum Step {
    /// A message from its natural sender, or from `sender` when given.
    Message {
        sender: Option<Address>,
        epoch: EpochChoice,
        message: TaskExecutorMessage,
    },
    /// The JobMaster of the `pick`-th allocated slot's job accepts (or rejects) its unanswered offers.
    AnswerOffers {
        pick: usize,
        accept: bool,
    },
    /// A deployment into the `pick`-th allocated slot, of its own job or of `foreign`.
    DeployInto {
        pick: usize,
        task: (u32, u32, u32),
        foreign: Option<JobId>,
    },
    /// The driver reports a state for the `pick`-th task (or a random execution when there is none).
    Report {
        pick: usize,
        fallback: ExecutionId,
        state: ExecutionState,
    },
    /// An earlier message delivered again, with its original epoch: a duplicate or a reordering.
    Replay {
        back: usize,
    },
    Tick,
}

fn job_id() -> impl Strategy<Value = JobId> {
    (1u128..4).prop_map(job)
}

fn allocation_id() -> impl Strategy<Value = AllocationId> {
    (0u128..5).prop_map(allocation)
}

fn execution_id() -> impl Strategy<Value = ExecutionId> {
    (job_id(), 0u32..3, 0u32..2, 0u32..2).prop_map(|(job, vertex, subtask, attempt)| ExecutionId {
        attempt: AttemptNumber(attempt),
        ..execution(job, vertex, subtask)
    })
}

fn state() -> impl Strategy<Value = ExecutionState> {
    prop::sample::select(ExecutionState::ALL.to_vec())
}

fn message() -> impl Strategy<Value = TaskExecutorMessage> {
    use TaskExecutorMessage::*;
    let reason = || Just("reason".to_string());
    let allocations = || prop::collection::vec(allocation_id(), 0..3);
    prop_oneof![
        2 => Just(RegistrationAccepted),
        1 => reason().prop_map(|reason| RegistrationRejected { reason }),
        3 => Just(ResourceManagerHeartbeat),
        1 => reason().prop_map(|reason| DisconnectResourceManager { reason }),
        5 => (0..SLOTS + 1, job_id(), allocation_id())
            .prop_map(|(slot, job_id, allocation)| RequestSlot { slot: SlotIndex(slot), job_id, allocation }),
        3 => job_id().prop_map(|job_id| JobMasterHeartbeat { job_id }),
        2 => (job_id(), allocations(), allocations())
            .prop_map(|(job_id, accepted, rejected)| SlotOfferResult { job_id, accepted, rejected }),
        2 => (execution_id(), allocation_id()).prop_map(|(e, a)| DeployTask(deployment(e, a))),
        2 => execution_id().prop_map(|execution| CancelTask { execution }),
        1 => (job_id(), allocation_id()).prop_map(|(job_id, allocation)| FreeSlot { job_id, allocation }),
        1 => (job_id(), reason()).prop_map(|(job_id, reason)| DisconnectJobMaster { job_id, reason }),
    ]
}

fn epoch_choice() -> impl Strategy<Value = EpochChoice> {
    prop_oneof![
        12 => Just(EpochChoice::Followed),
        2 => Just(EpochChoice::Lower),
        1 => Just(EpochChoice::Higher),
        1 => (0u64..4).prop_map(EpochChoice::Fixed),
    ]
}

fn sender() -> impl Strategy<Value = Option<Address>> {
    prop_oneof![
        12 => Just(None),
        1 => prop_oneof![
            Just(Address::ResourceManager),
            Just(Address::Dispatcher),
            Just(Address::Client(0)),
            Just(Address::TaskExecutor(RESOURCE)),
            job_id().prop_map(Address::JobMaster),
        ]
        .prop_map(Some),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (sender(), epoch_choice(), message())
            .prop_map(|(sender, epoch, message)| Step::Message { sender, epoch, message }),
        3 => (0usize..8, prop::bool::weighted(0.8)).prop_map(|(pick, accept)| Step::AnswerOffers { pick, accept }),
        4 => (0usize..8, (0u32..4, 0u32..2, 0u32..3), prop::option::weighted(0.15, job_id()))
            .prop_map(|(pick, task, foreign)| Step::DeployInto { pick, task, foreign }),
        4 => (0usize..8, execution_id(), state())
            .prop_map(|(pick, fallback, state)| Step::Report { pick, fallback, state }),
        2 => (0usize..64).prop_map(|back| Step::Replay { back }),
        4 => Just(Step::Tick),
    ]
}

fn advance() -> impl Strategy<Value = u64> {
    prop_oneof![6 => Just(0u64), 6 => 0u64..1_500_000, 1 => 0u64..60_000_000]
}

/// Where a message naturally comes from.
fn natural_sender(message: &TaskExecutorMessage) -> Address {
    use TaskExecutorMessage::*;
    match message {
        JobMasterHeartbeat { job_id }
        | SlotOfferResult { job_id, .. }
        | FreeSlot { job_id, .. }
        | DisconnectJobMaster { job_id, .. } => Address::JobMaster(*job_id),
        DeployTask(deployment) => Address::JobMaster(deployment.execution.job),
        CancelTask { execution } => Address::JobMaster(execution.job),
        _ => Address::ResourceManager,
    }
}

/// The run's history and the facts checked across steps.
struct Run {
    executor: TaskExecutor,
    now: Time,
    delivered: Vec<(Address, Epoch, TaskExecutorMessage)>,
    started: BTreeSet<ExecutionId>,
}

impl Run {
    /// The allocation and job of the `pick`-th allocated slot (wrapping around), if any.
    fn allocated(&self, pick: usize) -> Option<(AllocationId, JobId)> {
        let allocated: Vec<(AllocationId, JobId)> = self
            .executor
            .slots()
            .into_iter()
            .filter_map(|slot| match slot.state {
                SlotState::Allocated { allocation, job, .. } => Some((allocation, job)),
                SlotState::Free => None,
            })
            .collect();
        allocated.get(pick % allocated.len().max(1)).copied()
    }

    /// Turns a step into an input, given the TaskExecutor's current state.
    fn input(&mut self, step: Step) -> Input {
        let followed = self.executor.leader_epoch();
        match step {
            Step::Message { sender, epoch, message } => {
                let epoch = match epoch {
                    EpochChoice::Followed => followed,
                    EpochChoice::Lower => Epoch(followed.0.saturating_sub(1)),
                    EpochChoice::Higher => Epoch(followed.0 + 1),
                    EpochChoice::Fixed(epoch) => Epoch(epoch),
                };
                let from = sender.unwrap_or_else(|| natural_sender(&message));
                Input::Message { from, epoch, message }
            }
            Step::AnswerOffers { pick, accept } => {
                let job = self.allocated(pick).map_or(job(1), |(_, job)| job);
                let unanswered = self.executor.slots().into_iter().filter_map(|slot| match slot.state {
                    SlotState::Allocated { allocation, job: owner, accepted: false } if owner == job => {
                        Some(allocation)
                    }
                    _ => None,
                });
                let unanswered: Vec<AllocationId> = unanswered.collect();
                let (accepted, rejected) = if accept { (unanswered, vec![]) } else { (vec![], unanswered) };
                let message = TaskExecutorMessage::SlotOfferResult { job_id: job, accepted, rejected };
                Input::Message { from: Address::JobMaster(job), epoch: followed, message }
            }
            Step::DeployInto { pick, task: (vertex, subtask, attempt), foreign } => {
                let (allocation, owner) = self.allocated(pick).unwrap_or((allocation(0), job(1)));
                let execution = ExecutionId {
                    attempt: AttemptNumber(attempt),
                    ..execution(foreign.unwrap_or(owner), vertex, subtask)
                };
                let message = TaskExecutorMessage::DeployTask(deployment(execution, allocation));
                Input::Message { from: Address::JobMaster(execution.job), epoch: followed, message }
            }
            Step::Report { pick, fallback, state } => {
                let tasks: Vec<ExecutionId> = self.executor.tasks().into_keys().collect();
                let execution = tasks.get(pick % tasks.len().max(1)).copied().unwrap_or(fallback);
                Input::TaskReport(TaskReport {
                    execution,
                    state,
                    error: Some("boom".to_string()),
                    unreadable_checkpoint: None,
                })
            }
            Step::Replay { back } if !self.delivered.is_empty() => {
                let (from, epoch, message) =
                    self.delivered[self.delivered.len() - 1 - back % self.delivered.len()].clone();
                Input::Message { from, epoch, message }
            }
            Step::Replay { .. } | Step::Tick => Input::Tick,
        }
    }
}

/// What must not change when a message is ignored.
#[derive(Debug, PartialEq)]
struct Observable {
    epoch: Epoch,
    registered: bool,
    slots: Vec<SlotSnapshot>,
    timeout: Option<Time>,
}

impl Run {
    fn observe(&self) -> Observable {
        Observable {
            epoch: self.executor.leader_epoch(),
            registered: self.executor.is_registered(),
            slots: self.executor.slots(),
            timeout: self.executor.poll_timeout(),
        }
    }

    /// Feeds one step and checks every promise that one step can break.
    fn step(&mut self, step: Step, advance_us: u64) -> Result<(), TestCaseError> {
        self.now = self.now.after(Duration::from_micros(advance_us));
        let input = self.input(step);
        let before = self.observe();
        let tasks_before = self.executor.tasks();
        let stale = matches!(&input, Input::Message { epoch, .. } if *epoch < before.epoch);
        if let Input::Message { from, epoch, message } = &input {
            self.delivered.push((*from, *epoch, message.clone()));
        }
        let is_tick = input == Input::Tick;
        self.executor.handle(self.now, input);
        let outputs: Vec<Output> = std::iter::from_fn(|| self.executor.poll_output()).collect();
        prop_assert_eq!(self.executor.check_invariants(), Ok(()));
        let after = self.observe();
        prop_assert!(after.epoch >= before.epoch, "the followed epoch went back");
        if stale {
            prop_assert!(outputs.is_empty(), "a stale message caused {:?}", outputs);
            prop_assert_eq!(&after, &before, "a stale message changed the TaskExecutor");
        }
        if is_tick {
            prop_assert!(after.timeout.is_none_or(|at| at > self.now), "a due timer survived its tick");
        }
        let tasks = self.executor.tasks();
        for (execution, state) in &tasks {
            if let Some(previous) = tasks_before.get(execution) {
                prop_assert!(previous == state || previous.can_become(*state), "{} -> {}", previous, state);
            }
        }
        self.check_outputs(&outputs, &tasks)
    }

    fn check_outputs(
        &mut self,
        outputs: &[Output],
        tasks: &BTreeMap<ExecutionId, ExecutionState>,
    ) -> Result<(), TestCaseError> {
        for output in outputs {
            match output {
                Output::Send(envelope) => {
                    prop_assert_eq!(envelope.from, Address::TaskExecutor(RESOURCE));
                    prop_assert_eq!(envelope.epoch, self.executor.leader_epoch(), "sent outside the followed epoch");
                    if let Message::JobMaster(JobMasterMessage::TaskStateChanged { execution, .. }) = &envelope.message
                    {
                        prop_assert_eq!(envelope.to, Address::JobMaster(execution.job));
                    }
                }
                Output::Task(TaskCommand::Start(deployment)) => {
                    prop_assert!(self.started.insert(deployment.execution), "{} started twice", deployment.execution);
                    prop_assert_eq!(tasks.get(&deployment.execution), Some(&ExecutionState::Deploying));
                }
                Output::Task(TaskCommand::Cancel(_)) | Output::Event(_) => {}
                Output::Task(TaskCommand::TriggerCheckpoint { .. } | TaskCommand::NotifyCheckpoint { .. }) => {}
                Output::Storage(request) => prop_assert!(false, "a TaskExecutor stores nothing: {request:?}"),
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_panic_and_keep_every_invariant(
        steps in prop::collection::vec((step(), advance()), 1..250),
    ) {
        let executor = TaskExecutor::new(RESOURCE, config(SLOTS), Time::ZERO);
        let mut run = Run { executor, now: Time::ZERO, delivered: Vec::new(), started: BTreeSet::new() };
        while run.executor.poll_output().is_some() {}
        prop_assert_eq!(run.executor.check_invariants(), Ok(()));
        for (step, advance_us) in steps {
            run.step(step, advance_us)?;
        }
    }
}
