use super::*;
use crate::config::{Config, RawConfig};
use crate::ids::{AttemptNumber, Hex128, SubtaskIndex, VertexIndex};
use crate::protocol::{
    JobMasterMessage, ResourceManagerMessage, SlotOffer, SlotStatus, TaskCommand, TaskDeployment, WorkerResources,
};

const RESOURCE: ResourceId = ResourceId(Hex128(0x7e));
const LEADER: Epoch = Epoch(3);

pub(super) fn config(slots: u32) -> TaskExecutorConfig {
    let mut raw = RawConfig::new();
    raw.set("taskmanager.numberOfTaskSlots", slots.to_string());
    TaskExecutorConfig::from_config(&Config::from_raw(&raw).unwrap()).unwrap()
}

pub(super) fn job(n: u128) -> JobId {
    JobId(Hex128(n))
}

pub(super) fn allocation(n: u128) -> AllocationId {
    AllocationId(Hex128(0xa000 + n))
}

pub(super) fn execution(job: JobId, vertex: u32, subtask: u32) -> ExecutionId {
    ExecutionId { job, vertex: VertexIndex(vertex), subtask: SubtaskIndex(subtask), attempt: AttemptNumber(0) }
}

pub(super) fn deployment(execution: ExecutionId, allocation: AllocationId) -> TaskDeployment {
    TaskDeployment {
        execution,
        allocation,
        vertex_name: "map".to_string(),
        parallelism: 2,
        restore: None,
        job: None,
        placement: None,
    }
}

fn ms(millis: u64) -> Time {
    Time(millis * 1_000)
}

fn secs(secs: u64) -> Time {
    Time(secs * 1_000_000)
}

/// A TaskExecutor driven by hand: each step feeds one input and returns what came out.
struct Driver {
    executor: TaskExecutor,
    now: Time,
}

impl Driver {
    fn new(slots: u32) -> Driver {
        let executor = TaskExecutor::new(RESOURCE, config(slots), Time::ZERO);
        let mut driver = Driver { executor, now: Time::ZERO };
        let outputs = driver.drain();
        assert!(matches!(sends(&outputs)[..], [(Address::ResourceManager, _)]), "{outputs:?}");
        driver
    }

    /// Registered with the leader of epoch `LEADER`.
    fn registered(slots: u32) -> Driver {
        let mut driver = Driver::new(slots);
        driver.rm_sends(TaskExecutorMessage::RegistrationAccepted);
        assert!(driver.executor.is_registered());
        driver
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.executor.poll_output()).collect()
    }

    fn step(&mut self, at: Time, input: Input) -> Vec<Output> {
        self.now = at;
        self.executor.handle(at, input);
        self.executor.check_invariants().unwrap();
        self.drain()
    }

    fn tick(&mut self, at: Time) -> Vec<Output> {
        self.step(at, Input::Tick)
    }

    fn message(&mut self, from: Address, epoch: Epoch, message: TaskExecutorMessage) -> Vec<Output> {
        self.step(self.now, Input::Message { from, epoch, message })
    }

    fn rm_sends(&mut self, message: TaskExecutorMessage) -> Vec<Output> {
        self.message(Address::ResourceManager, LEADER, message)
    }

    fn jm_sends(&mut self, job: JobId, message: TaskExecutorMessage) -> Vec<Output> {
        self.message(Address::JobMaster(job), LEADER, message)
    }

    fn report(&mut self, execution: ExecutionId, state: ExecutionState) -> Vec<Output> {
        self.step(
            self.now,
            Input::TaskReport(TaskReport { execution, state, error: None, unreadable_checkpoint: None }),
        )
    }

    /// Slot `slot` allocated to `job` under `allocation` and accepted by its JobMaster.
    fn accepted_slot(&mut self, slot: u32, job: JobId, allocation: AllocationId) {
        let outputs =
            self.rm_sends(TaskExecutorMessage::RequestSlot { slot: SlotIndex(slot), job_id: job, allocation });
        assert!(slot_request_accepted(&outputs), "{outputs:?}");
        let result = TaskExecutorMessage::SlotOfferResult { job_id: job, accepted: vec![allocation], rejected: vec![] };
        assert!(self.jm_sends(job, result).is_empty());
    }

    /// `slots` slots registered; job 1's first task RUNNING in slot `slot` (allocation 1).
    fn with_running_task(slots: u32, slot: u32) -> (Driver, JobId, AllocationId, ExecutionId) {
        let mut driver = Driver::registered(slots);
        let (job, allocation) = (job(1), allocation(1));
        driver.accepted_slot(slot, job, allocation);
        let task = execution(job, 0, 0);
        driver.running_task(task, allocation);
        (driver, job, allocation, task)
    }

    /// `execution` deployed into `allocation` and reported RUNNING.
    fn running_task(&mut self, execution: ExecutionId, allocation: AllocationId) {
        let outputs = self.jm_sends(execution.job, TaskExecutorMessage::DeployTask(deployment(execution, allocation)));
        assert!(matches!(&outputs[..], [Output::Task(TaskCommand::Start(_))]), "{outputs:?}");
        self.report(execution, ExecutionState::Running);
    }
}

fn sends(outputs: &[Output]) -> Vec<(Address, Message)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(envelope) => Some((envelope.to, envelope.message.clone())),
            _ => None,
        })
        .collect()
}

fn task_commands(outputs: &[Output]) -> Vec<TaskCommand> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Task(command) => Some(command.clone()),
            _ => None,
        })
        .collect()
}

fn slot_request_accepted(outputs: &[Output]) -> bool {
    sends(outputs).iter().any(|(_, message)| {
        matches!(message, Message::ResourceManager(ResourceManagerMessage::SlotRequestResult { accepted: true, .. }))
    })
}

fn is_registration(message: &Message) -> bool {
    matches!(message, Message::ResourceManager(ResourceManagerMessage::RegisterTaskExecutor { .. }))
}

fn freed(outputs: &[Output]) -> Vec<AllocationId> {
    sends(outputs)
        .into_iter()
        .filter_map(|(_, message)| match message {
            Message::ResourceManager(ResourceManagerMessage::SlotFreed { allocation, .. }) => Some(allocation),
            _ => None,
        })
        .collect()
}

fn task_states(outputs: &[Output]) -> Vec<(ExecutionId, ExecutionState, Option<String>)> {
    sends(outputs)
        .into_iter()
        .filter_map(|(_, message)| match message {
            Message::JobMaster(JobMasterMessage::TaskStateChanged { execution, state, error, .. }) => {
                Some((execution, state, error))
            }
            _ => None,
        })
        .collect()
}

fn offers(outputs: &[Output]) -> Vec<(Address, Vec<SlotOffer>)> {
    sends(outputs)
        .into_iter()
        .filter_map(|(to, message)| match message {
            Message::JobMaster(JobMasterMessage::OfferSlots { offers, .. }) => Some((to, offers)),
            _ => None,
        })
        .collect()
}

#[test]
fn registration_retries_with_doubling_backoff_until_accepted_then_heartbeats_are_answered() {
    let mut driver = Driver::new(2);
    assert!(!driver.executor.is_registered());
    assert_eq!(driver.executor.leader_epoch(), Epoch(0));
    let mut attempts = Vec::new();
    let mut now = Time::ZERO;
    while now < secs(120) {
        now = driver.executor.poll_timeout().unwrap();
        assert!(driver.tick(Time(now.0 - 1)).is_empty(), "an early tick does nothing");
        let outputs = driver.tick(now);
        assert!(matches!(&sends(&outputs)[..], [(Address::ResourceManager, m)] if is_registration(m)));
        attempts.push(now.as_millis());
    }
    // Timeouts 100 ms doubling: 100, 200, 400, ..., 25.6 s, then capped at 30 s.
    assert_eq!(attempts, [100, 300, 700, 1_500, 3_100, 6_300, 12_700, 25_500, 51_100, 81_100, 111_100, 141_100]);

    driver.rm_sends(TaskExecutorMessage::RegistrationAccepted);
    assert!(driver.executor.is_registered());
    assert_eq!(driver.executor.leader_epoch(), LEADER);
    let outputs = driver.rm_sends(TaskExecutorMessage::ResourceManagerHeartbeat);
    let Output::Send(envelope) = &outputs[0] else { panic!("{outputs:?}") };
    assert_eq!(envelope.epoch, LEADER, "the TaskExecutor speaks in the epoch it follows");
    assert_eq!(envelope.from, Address::TaskExecutor(RESOURCE));
    let expected = ResourceManagerMessage::TaskExecutorHeartbeat {
        resource_id: RESOURCE,
        slot_report: vec![
            SlotStatus { slot: SlotIndex(0), allocation: None },
            SlotStatus { slot: SlotIndex(1), allocation: None },
        ],
    };
    assert_eq!(envelope.message, Message::ResourceManager(expected));
}

#[test]
fn first_registration_reports_resources_and_free_slots() {
    let mut executor = TaskExecutor::new(RESOURCE, config(3), Time::ZERO);
    let Some(Output::Send(envelope)) = executor.poll_output() else { panic!("no registration") };
    assert_eq!((envelope.to, envelope.epoch), (Address::ResourceManager, Epoch(0)));
    let Message::ResourceManager(ResourceManagerMessage::RegisterTaskExecutor { resource_id, resources, slot_report }) =
        envelope.message
    else {
        panic!("not a registration")
    };
    assert_eq!(resource_id, RESOURCE);
    assert_eq!(resources, WorkerResources { slots: 3, managed_memory_bytes: config(3).managed_memory_bytes });
    assert_eq!(slot_report.len(), 3);
    assert!(slot_report.iter().all(|status| status.allocation.is_none()));
}

#[test]
fn refused_registration_waits_ten_seconds_and_restarts_the_backoff() {
    let mut driver = Driver::new(1);
    driver.tick(ms(100));
    driver.tick(ms(300));
    let outputs = driver.rm_sends(TaskExecutorMessage::RegistrationRejected { reason: "full".to_string() });
    assert!(outputs.is_empty());
    assert_eq!(driver.executor.poll_timeout(), Some(ms(10_300)));
    assert!(driver.tick(ms(10_299)).is_empty());
    assert!(is_registration(&sends(&driver.tick(ms(10_300)))[0].1));
    assert_eq!(driver.executor.poll_timeout(), Some(ms(10_400)), "the backoff starts over at 100 ms");
}

#[test]
fn silent_resource_manager_means_registering_again_with_the_slots_held() {
    let (mut driver, job, allocation, task) = Driver::with_running_task(2, 1);
    // The JobMaster keeps talking; the ResourceManager is silent for the heartbeat timeout.
    driver.tick(secs(30));
    driver.jm_sends(job, TaskExecutorMessage::JobMasterHeartbeat { job_id: job });
    assert!(driver.tick(ms(49_999)).is_empty());
    let outputs = driver.tick(secs(50));
    assert!(!driver.executor.is_registered());
    let [(Address::ResourceManager, Message::ResourceManager(register))] = &sends(&outputs)[..] else {
        panic!("{outputs:?}")
    };
    let ResourceManagerMessage::RegisterTaskExecutor { slot_report, .. } = register else { panic!("{register:?}") };
    assert_eq!(slot_report[1], SlotStatus { slot: SlotIndex(1), allocation: Some((allocation, job)) });
    assert_eq!(driver.executor.tasks().get(&task), Some(&ExecutionState::Running), "tasks belong to JobMasters");
}

#[test]
fn disconnect_from_the_resource_manager_means_registering_again() {
    let mut driver = Driver::registered(1);
    let outputs = driver.rm_sends(TaskExecutorMessage::DisconnectResourceManager { reason: "unknown".to_string() });
    assert!(is_registration(&sends(&outputs)[0].1));
    assert!(!driver.executor.is_registered());
}

#[test]
fn slot_request_is_offered_accepted_deployed_and_task_reports_reach_the_job_master() {
    let mut driver = Driver::registered(2);
    let (job, allocation) = (job(1), allocation(1));
    let request = TaskExecutorMessage::RequestSlot { slot: SlotIndex(0), job_id: job, allocation };
    let outputs = driver.rm_sends(request);
    let expected_offer = vec![(Address::JobMaster(job), vec![SlotOffer { allocation, slot: SlotIndex(0) }])];
    assert!(slot_request_accepted(&outputs));
    assert_eq!(offers(&outputs), expected_offer);
    let state = SlotState::Allocated { allocation, job, accepted: false };
    assert_eq!(driver.executor.slots()[0].state, state);

    let result = TaskExecutorMessage::SlotOfferResult { job_id: job, accepted: vec![allocation], rejected: vec![] };
    driver.jm_sends(job, result);
    assert_eq!(driver.executor.slots()[0].state, SlotState::Allocated { allocation, job, accepted: true });

    let task = execution(job, 2, 1);
    let outputs = driver.jm_sends(job, TaskExecutorMessage::DeployTask(deployment(task, allocation)));
    assert_eq!(task_commands(&outputs), [TaskCommand::Start(deployment(task, allocation))]);
    assert!(sends(&outputs).is_empty(), "DEPLOYING is the JobMaster's own state");
    assert_eq!(driver.executor.tasks().get(&task), Some(&ExecutionState::Deploying));
    for state in [ExecutionState::Initializing, ExecutionState::Running, ExecutionState::Finished] {
        let outputs = driver.report(task, state);
        assert_eq!(task_states(&outputs), [(task, state, None)]);
        assert_eq!(sends(&outputs)[0].0, Address::JobMaster(job));
    }
    assert!(driver.executor.tasks().is_empty(), "a finished task leaves its slot");
    assert_eq!(driver.executor.slots()[0].state, SlotState::Allocated { allocation, job, accepted: true });
}

#[test]
fn a_task_that_cannot_read_its_state_names_the_checkpoint_to_its_job_master() {
    let (mut driver, _, _, task) = Driver::with_running_task(2, 0);
    let checkpoint = Some(crate::ids::CheckpointId(4));
    let error = Some("restore: state file: checksum mismatch".to_string());
    let report =
        TaskReport { execution: task, state: ExecutionState::Failed, error, unreadable_checkpoint: checkpoint };
    let outputs = driver.step(driver.now, Input::TaskReport(report));
    let forwarded = sends(&outputs).into_iter().find_map(|(_, message)| match message {
        Message::JobMaster(JobMasterMessage::TaskStateChanged { unreadable_checkpoint, .. }) => {
            Some(unreadable_checkpoint)
        }
        _ => None,
    });
    assert_eq!(forwarded, Some(checkpoint));
}

#[test]
fn a_running_task_waiting_for_its_final_checkpoint_is_reported_and_an_unknown_one_is_not() {
    let (mut driver, job, _, task) = Driver::with_running_task(2, 0);
    let checkpoint_latest = Some(crate::ids::CheckpointId(3));
    let outputs = driver.step(driver.now, Input::FinalCheckpointAwaited { execution: task, checkpoint_latest });
    let expected = JobMasterMessage::FinalCheckpointAwaited { execution: task, checkpoint_latest };
    assert_eq!(sends(&outputs), [(Address::JobMaster(job), Message::JobMaster(expected))]);
    let gone = execution(job, 0, 1); // never deployed here (or already let go of)
    let outputs = driver.step(driver.now, Input::FinalCheckpointAwaited { execution: gone, checkpoint_latest });
    assert!(sends(&outputs).is_empty(), "a stale report is dropped");
}

#[test]
fn deploying_into_a_foreign_or_unknown_slot_fails_the_task_with_the_reason() {
    let mut driver = Driver::registered(3);
    let (ours, theirs) = (job(1), job(2));
    driver.accepted_slot(0, theirs, allocation(1));
    let request = TaskExecutorMessage::RequestSlot { slot: SlotIndex(1), job_id: ours, allocation: allocation(2) };
    driver.rm_sends(request);
    let cases = [
        (allocation(1), format!("belongs to job {theirs}, not to job {ours}")),
        (allocation(9), "is not held by this TaskManager".to_string()),
    ];
    for (subtask, (allocation, reason)) in cases.into_iter().enumerate() {
        let task = execution(ours, 0, subtask as u32);
        let outputs = driver.jm_sends(ours, TaskExecutorMessage::DeployTask(deployment(task, allocation)));
        assert!(task_commands(&outputs).is_empty(), "{outputs:?}");
        let [(execution, ExecutionState::Failed, Some(error))] = &task_states(&outputs)[..] else {
            panic!("{outputs:?}")
        };
        assert_eq!(*execution, task);
        assert!(error.contains(&reason), "{error:?} lacks {reason:?}");
    }
    assert!(driver.executor.tasks().is_empty());
}

#[test]
fn a_deployment_overtaking_the_offer_acceptance_activates_the_slot() {
    let mut driver = Driver::registered(1);
    let (job, allocation) = (job(1), allocation(1));
    driver.rm_sends(TaskExecutorMessage::RequestSlot { slot: SlotIndex(0), job_id: job, allocation });
    let task = execution(job, 0, 0);
    let outputs = driver.jm_sends(job, TaskExecutorMessage::DeployTask(deployment(task, allocation)));
    assert_eq!(task_commands(&outputs).len(), 1, "the task starts: {outputs:?}");
    assert_eq!(driver.executor.slots()[0].state, SlotState::Allocated { allocation, job, accepted: true });
}

#[test]
fn a_full_slot_refuses_more_tasks() {
    let mut driver = Driver::registered(1);
    let (job, allocation) = (job(1), allocation(1));
    driver.accepted_slot(0, job, allocation);
    for vertex in 0..TASKS_PER_SLOT_MAX as u32 {
        let outputs =
            driver.jm_sends(job, TaskExecutorMessage::DeployTask(deployment(execution(job, vertex, 0), allocation)));
        assert_eq!(task_commands(&outputs).len(), 1);
    }
    let extra = execution(job, TASKS_PER_SLOT_MAX as u32, 0);
    let outputs = driver.jm_sends(job, TaskExecutorMessage::DeployTask(deployment(extra, allocation)));
    let [(_, ExecutionState::Failed, Some(error))] = &task_states(&outputs)[..] else { panic!("{outputs:?}") };
    assert!(error.contains("already holds"), "{error}");
    assert_eq!(driver.executor.tasks().len(), TASKS_PER_SLOT_MAX);
}

#[test]
fn silent_job_master_loses_its_tasks_and_slots() {
    let mut driver = Driver::registered(3);
    let (lost, alive) = (job(1), job(2));
    driver.accepted_slot(0, lost, allocation(1));
    driver.accepted_slot(1, lost, allocation(2));
    driver.accepted_slot(2, alive, allocation(3));
    let tasks = [execution(lost, 0, 0), execution(lost, 0, 1)];
    driver.running_task(tasks[0], allocation(1));
    driver.running_task(tasks[1], allocation(2));
    driver.running_task(execution(alive, 0, 0), allocation(3));
    for at in [10, 20, 30, 40] {
        driver.tick(secs(at));
        driver.rm_sends(TaskExecutorMessage::ResourceManagerHeartbeat);
        driver.jm_sends(alive, TaskExecutorMessage::JobMasterHeartbeat { job_id: alive });
    }
    assert!(driver.tick(ms(49_999)).is_empty(), "lost's JobMaster was last heard at 0 s");
    assert_eq!(driver.executor.tasks().len(), 3);
    let outputs = driver.tick(secs(50));
    let cancels: Vec<_> = tasks.iter().map(|task| TaskCommand::Cancel(*task)).collect();
    assert_eq!(task_commands(&outputs), cancels);
    assert_eq!(freed(&outputs), [allocation(1), allocation(2)]);
    assert!(sends(&outputs).iter().all(|(to, _)| *to == Address::ResourceManager), "{outputs:?}");
    assert_eq!(driver.executor.tasks().keys().copied().collect::<Vec<_>>(), [execution(alive, 0, 0)]);
    assert_eq!(driver.executor.slots()[0].state, SlotState::Free);
    assert_eq!(driver.executor.slots()[1].state, SlotState::Free);
    // Late reports of the canceled tasks are not forwarded: the TaskExecutor let go of them.
    assert!(driver.report(tasks[0], ExecutionState::Canceled).is_empty());
    // A JobMaster that asks later learns they were canceled.
    let outputs = driver.jm_sends(lost, TaskExecutorMessage::CancelTask { execution: tasks[1] });
    assert_eq!(task_states(&outputs), [(tasks[1], ExecutionState::Canceled, None)]);
}

#[test]
fn job_master_heartbeats_are_answered_with_the_jobs_allocations_and_keep_its_slots() {
    let mut driver = Driver::registered(3);
    let job = job(1);
    driver.accepted_slot(0, job, allocation(1));
    driver.accepted_slot(2, job, allocation(2));
    for at in [20, 40, 60, 80] {
        driver.tick(secs(at));
        let outputs = driver.jm_sends(job, TaskExecutorMessage::JobMasterHeartbeat { job_id: job });
        let expected = JobMasterMessage::TaskExecutorHeartbeat {
            resource_id: RESOURCE,
            allocations: vec![allocation(1), allocation(2)],
            executions: Vec::new(),
        };
        assert_eq!(sends(&outputs), [(Address::JobMaster(job), Message::JobMaster(expected))]);
    }
    assert_eq!(driver.executor.slots().iter().filter(|s| s.state != SlotState::Free).count(), 2);
}

#[test]
fn stale_epoch_messages_are_ignored_and_change_nothing() {
    let (mut driver, job, allocation, task) = Driver::with_running_task(2, 0);
    let slots = driver.executor.slots();
    let timeout = driver.executor.poll_timeout();
    let stale = Epoch(LEADER.0 - 1);
    let messages = [
        (Address::ResourceManager, TaskExecutorMessage::DisconnectResourceManager { reason: "old".to_string() }),
        (Address::ResourceManager, TaskExecutorMessage::RegistrationRejected { reason: "old".to_string() }),
        (Address::ResourceManager, TaskExecutorMessage::ResourceManagerHeartbeat),
        (
            Address::ResourceManager,
            TaskExecutorMessage::RequestSlot { slot: SlotIndex(1), job_id: job, allocation: self::allocation(2) },
        ),
        (Address::JobMaster(job), TaskExecutorMessage::CancelTask { execution: task }),
        (Address::JobMaster(job), TaskExecutorMessage::FreeSlot { job_id: job, allocation }),
        (Address::JobMaster(job), TaskExecutorMessage::DisconnectJobMaster { job_id: job, reason: "old".to_string() }),
        (Address::JobMaster(job), TaskExecutorMessage::JobMasterHeartbeat { job_id: job }),
        (Address::JobMaster(job), TaskExecutorMessage::DeployTask(deployment(execution(job, 1, 0), allocation))),
    ];
    for (from, message) in messages {
        driver.tick(driver.now.after(Duration::from_secs(1)));
        let outputs = driver.message(from, stale, message);
        assert!(outputs.is_empty(), "{outputs:?}");
        assert_eq!(driver.executor.slots(), slots);
        assert_eq!(driver.executor.leader_epoch(), LEADER);
        assert!(driver.executor.is_registered());
        assert_eq!(driver.executor.poll_timeout(), timeout, "not even a timer is refreshed");
    }
}

#[test]
fn a_higher_epoch_is_a_new_leader_to_register_with_and_the_old_leaders_jobs_are_released() {
    let (mut driver, _, allocation, task) = Driver::with_running_task(1, 0);
    let next = Epoch(LEADER.0 + 1);
    let outputs = driver.message(Address::ResourceManager, next, TaskExecutorMessage::ResourceManagerHeartbeat);
    assert_eq!(driver.executor.leader_epoch(), next);
    assert!(!driver.executor.is_registered());
    // The deposed leader's JobMasters are gone: their tasks are cancelled and slots freed, so
    // the new leader's recovered jobs get slots at once.
    assert_eq!(task_commands(&outputs), [TaskCommand::Cancel(task)]);
    assert_eq!(freed(&outputs), [allocation]);
    assert_eq!(driver.executor.slots()[0].state, SlotState::Free);
    let sent = sends(&outputs);
    let registration = sent.iter().find(|(_, message)| is_registration(message));
    assert!(registration.is_some(), "{sent:?}");
    assert!(outputs.iter().all(|o| !matches!(o, Output::Send(e) if e.epoch != next)), "{outputs:?}");
    // The old leader is now fenced off, the new one's acceptance completes the registration.
    assert!(driver.rm_sends(TaskExecutorMessage::RegistrationAccepted).is_empty());
    assert!(!driver.executor.is_registered());
    driver.message(Address::ResourceManager, next, TaskExecutorMessage::RegistrationAccepted);
    assert!(driver.executor.is_registered());
}

#[test]
fn duplicate_slot_request_is_accepted_again_and_offered_again_until_accepted() {
    let mut driver = Driver::registered(2);
    let (job, allocation) = (job(1), allocation(1));
    let request = TaskExecutorMessage::RequestSlot { slot: SlotIndex(1), job_id: job, allocation };
    driver.rm_sends(request.clone());
    let slots = driver.executor.slots();
    let outputs = driver.rm_sends(request.clone());
    assert!(slot_request_accepted(&outputs));
    assert_eq!(offers(&outputs), [(Address::JobMaster(job), vec![SlotOffer { allocation, slot: SlotIndex(1) }])]);
    assert_eq!(driver.executor.slots(), slots);
    let result = TaskExecutorMessage::SlotOfferResult { job_id: job, accepted: vec![allocation], rejected: vec![] };
    driver.jm_sends(job, result);
    let outputs = driver.rm_sends(request);
    assert!(slot_request_accepted(&outputs));
    assert!(offers(&outputs).is_empty(), "an accepted slot is not offered again");
}

#[test]
fn slot_requests_for_busy_or_missing_slots_or_a_placed_allocation_are_refused() {
    let mut driver = Driver::registered(2);
    driver.rm_sends(TaskExecutorMessage::RequestSlot { slot: SlotIndex(0), job_id: job(1), allocation: allocation(1) });
    let slots = driver.executor.slots();
    let refused = [
        (SlotIndex(0), job(2), allocation(2)),
        (SlotIndex(0), job(2), allocation(1)),
        (SlotIndex(1), job(1), allocation(1)),
        (SlotIndex(2), job(1), allocation(3)),
        (SlotIndex(u32::MAX), job(1), allocation(3)),
    ];
    for (slot, job_id, allocation) in refused {
        let outputs = driver.rm_sends(TaskExecutorMessage::RequestSlot { slot, job_id, allocation });
        let result = ResourceManagerMessage::SlotRequestResult { resource_id: RESOURCE, allocation, accepted: false };
        assert_eq!(sends(&outputs), [(Address::ResourceManager, Message::ResourceManager(result))]);
        assert_eq!(driver.executor.slots(), slots);
    }
}

#[test]
fn a_rejected_offer_frees_the_slot_and_tells_the_resource_manager() {
    let mut driver = Driver::registered(1);
    let (job, allocation) = (job(1), allocation(1));
    driver.rm_sends(TaskExecutorMessage::RequestSlot { slot: SlotIndex(0), job_id: job, allocation });
    let result = TaskExecutorMessage::SlotOfferResult { job_id: job, accepted: vec![], rejected: vec![allocation] };
    let outputs = driver.jm_sends(self::job(2), result.clone());
    assert!(outputs.is_empty(), "another job's JobMaster cannot reject it");
    let outputs = driver.jm_sends(job, result);
    assert_eq!(freed(&outputs), [allocation]);
    assert_eq!(driver.executor.slots()[0].state, SlotState::Free);
    assert_eq!(driver.executor.poll_timeout(), Some(secs(50)), "only the ResourceManager is watched now");
}

#[test]
fn unanswered_offers_are_sent_again_in_one_batch_and_expire_after_the_slot_timeout() {
    let mut driver = Driver::registered(3);
    let job = job(1);
    driver.rm_sends(TaskExecutorMessage::RequestSlot { slot: SlotIndex(0), job_id: job, allocation: allocation(1) });
    driver.tick(ms(400));
    driver.rm_sends(TaskExecutorMessage::RequestSlot { slot: SlotIndex(2), job_id: job, allocation: allocation(2) });
    assert_eq!(driver.executor.poll_timeout(), Some(secs(1)));
    let outputs = driver.tick(secs(1));
    assert_eq!(
        offers(&outputs),
        [(Address::JobMaster(job), vec![SlotOffer { allocation: allocation(1), slot: SlotIndex(0) }])]
    );
    // From 1.4 s on both are due at the same ticks: one message offers both.
    let outputs = driver.tick(secs(2));
    let both = vec![
        SlotOffer { allocation: allocation(1), slot: SlotIndex(0) },
        SlotOffer { allocation: allocation(2), slot: SlotIndex(2) },
    ];
    assert_eq!(offers(&outputs), [(Address::JobMaster(job), both)]);
    for second in 3..10 {
        assert_eq!(offers(&driver.tick(secs(second))).len(), 1);
    }
    let outputs = driver.tick(secs(10));
    assert_eq!(freed(&outputs), [allocation(1)], "allocated at 0 s, never accepted");
    let outputs = driver.tick(ms(10_400));
    assert_eq!(freed(&outputs), [allocation(2)]);
    assert!(driver.executor.slots().iter().all(|slot| slot.state == SlotState::Free));
}

#[test]
fn cancel_moves_a_task_to_canceling_once_and_an_unknown_task_is_answered_canceled() {
    let (mut driver, job, allocation, task) = Driver::with_running_task(1, 0);
    let outputs = driver.jm_sends(job, TaskExecutorMessage::CancelTask { execution: task });
    assert_eq!(task_commands(&outputs), [TaskCommand::Cancel(task)]);
    assert_eq!(driver.executor.tasks()[&task], ExecutionState::Canceling);
    assert!(driver.jm_sends(job, TaskExecutorMessage::CancelTask { execution: task }).is_empty());
    assert!(driver.report(task, ExecutionState::Running).is_empty(), "RUNNING after CANCELING is stale");
    assert_eq!(driver.executor.tasks()[&task], ExecutionState::Canceling);
    assert_eq!(task_states(&driver.report(task, ExecutionState::Canceled)), [(task, ExecutionState::Canceled, None)]);

    let unknown = execution(job, 5, 0);
    let outputs = driver.jm_sends(job, TaskExecutorMessage::CancelTask { execution: unknown });
    assert_eq!(task_states(&outputs), [(unknown, ExecutionState::Canceled, None)]);
    let late = driver.jm_sends(job, TaskExecutorMessage::DeployTask(deployment(unknown, allocation)));
    assert!(late.is_empty(), "a deployment that arrives after its cancel does not start: {late:?}");
}

#[test]
fn duplicate_deployments_start_a_task_once() {
    let (mut driver, job, allocation, task) = Driver::with_running_task(1, 0);
    let deploy = TaskExecutorMessage::DeployTask(deployment(task, allocation));
    assert!(driver.jm_sends(job, deploy.clone()).is_empty());
    driver.report(task, ExecutionState::Finished);
    assert!(driver.jm_sends(job, deploy).is_empty(), "a finished attempt never runs again");
    assert!(driver.executor.tasks().is_empty());
}

#[test]
fn free_slot_cancels_its_tasks_but_only_for_the_owning_job() {
    let (mut driver, job, allocation, task) = Driver::with_running_task(2, 0);
    assert!(
        driver.jm_sends(self::job(2), TaskExecutorMessage::FreeSlot { job_id: self::job(2), allocation }).is_empty()
    );
    assert!(
        driver.jm_sends(job, TaskExecutorMessage::FreeSlot { job_id: job, allocation: self::allocation(7) }).is_empty()
    );
    let outputs = driver.jm_sends(job, TaskExecutorMessage::FreeSlot { job_id: job, allocation });
    assert_eq!(task_commands(&outputs), [TaskCommand::Cancel(task)]);
    assert_eq!(freed(&outputs), [allocation]);
    assert_eq!(driver.executor.slots()[0].state, SlotState::Free);
    assert!(driver.jm_sends(job, TaskExecutorMessage::FreeSlot { job_id: job, allocation }).is_empty());
}

#[test]
fn disconnected_job_master_loses_its_slots_and_tasks() {
    let mut driver = Driver::registered(2);
    let job = job(1);
    driver.accepted_slot(0, job, allocation(1));
    driver.accepted_slot(1, job, allocation(2));
    let task = execution(job, 0, 0);
    driver.running_task(task, allocation(2));
    let message = TaskExecutorMessage::DisconnectJobMaster { job_id: job, reason: "job finished".to_string() };
    let outputs = driver.message(Address::Dispatcher, LEADER, message);
    assert_eq!(task_commands(&outputs), [TaskCommand::Cancel(task)]);
    assert_eq!(freed(&outputs), [allocation(1), allocation(2)]);
    assert!(driver.executor.tasks().is_empty());
}

#[test]
fn messages_from_the_wrong_sender_are_ignored() {
    let mut driver = Driver::new(1);
    let (job, allocation) = (job(1), allocation(1));
    let wrong = [
        (Address::Client(1), TaskExecutorMessage::RegistrationAccepted),
        (Address::JobMaster(job), TaskExecutorMessage::RegistrationAccepted),
        (Address::TaskExecutor(RESOURCE), TaskExecutorMessage::ResourceManagerHeartbeat),
        (Address::JobMaster(job), TaskExecutorMessage::RequestSlot { slot: SlotIndex(0), job_id: job, allocation }),
        (Address::ResourceManager, TaskExecutorMessage::JobMasterHeartbeat { job_id: job }),
        (Address::JobMaster(self::job(2)), TaskExecutorMessage::FreeSlot { job_id: job, allocation }),
        (Address::Client(1), TaskExecutorMessage::DisconnectJobMaster { job_id: job, reason: String::new() }),
    ];
    for (from, message) in wrong {
        assert!(driver.message(from, Epoch(9), message).is_empty());
        assert!(!driver.executor.is_registered());
        assert_eq!(driver.executor.leader_epoch(), Epoch(0), "nonsense does not move the epoch");
    }
}

#[test]
fn nonsense_task_reports_are_ignored() {
    let (mut driver, job, _, task) = Driver::with_running_task(1, 0);
    for state in
        [ExecutionState::Created, ExecutionState::Deploying, ExecutionState::Canceling, ExecutionState::Initializing]
    {
        assert!(driver.report(task, state).is_empty());
    }
    assert!(driver.report(execution(job, 9, 9), ExecutionState::Running).is_empty());
    assert_eq!(driver.executor.tasks()[&task], ExecutionState::Running);
}

#[test]
fn a_new_leader_refusing_the_registration_ends_the_old_one() {
    let mut driver = Driver::registered(1);
    let next = Epoch(LEADER.0 + 1);
    let refusal = TaskExecutorMessage::RegistrationRejected { reason: "unknown".to_string() };
    assert!(driver.message(Address::ResourceManager, next, refusal).is_empty());
    assert_eq!(driver.executor.leader_epoch(), next);
    assert!(!driver.executor.is_registered());
    assert_eq!(driver.executor.poll_timeout(), Some(secs(10)));
    let outputs = driver.tick(secs(10));
    assert_eq!(outputs.len(), 1);
    assert!(outputs.iter().all(|o| matches!(o, Output::Send(e) if e.epoch == next && is_registration(&e.message))));
}

#[test]
fn check_invariants_catches_broken_bookkeeping() {
    let mut driver = Driver::registered(2);
    let (job, allocation) = (job(1), allocation(1));
    driver.accepted_slot(0, job, allocation);
    driver.running_task(execution(job, 0, 0), allocation);

    let mut watching_a_stranger = driver.executor.clone();
    watching_a_stranger.job_masters_heard_at.insert(self::job(5), Time::ZERO);
    assert!(watching_a_stranger.check_invariants().unwrap_err().contains("watched JobMasters"));

    let mut task_in_unaccepted_slot = driver.executor.clone();
    task_in_unaccepted_slot.slots.get_mut(SlotIndex(0)).unwrap().accepted = false;
    assert!(task_in_unaccepted_slot.check_invariants().unwrap_err().contains("never accepted"));

    let mut running_and_ended = driver.executor.clone();
    running_and_ended.ended.record(execution(job, 0, 0), ExecutionState::Finished);
    assert!(running_and_ended.check_invariants().unwrap_err().contains("recorded as ended"));
}

#[test]
fn a_conflicting_deployment_of_a_running_task_is_refused_and_leaves_it_running() {
    let (mut driver, job, _, task) = Driver::with_running_task(2, 0);
    driver.rm_sends(TaskExecutorMessage::RequestSlot {
        slot: SlotIndex(1),
        job_id: job,
        allocation: self::allocation(2),
    });
    let outputs = driver.jm_sends(job, TaskExecutorMessage::DeployTask(deployment(task, self::allocation(2))));
    let [(_, ExecutionState::Failed, Some(error))] = &task_states(&outputs)[..] else { panic!("{outputs:?}") };
    assert!(error.contains("already runs in slot 0"), "{error}");
    assert_eq!(driver.executor.tasks()[&task], ExecutionState::Running);
}
