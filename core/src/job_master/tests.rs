//! Scenario tests: a JobMaster driven through a scripted ResourceManager, TaskExecutors and
//! Dispatcher, with its invariants checked after every input.

use super::*;
use crate::config::{FailoverStrategy, RestartStrategy};
use crate::ids::{AllocationId, Hex128, SlotIndex};
use crate::job::builder::StreamEnvironment;
use crate::plan::{PlanOptions, plan};
use crate::protocol::{ExecutionId, SlotOffer, TaskDeployment};

pub(super) const JOB: JobId = JobId(Hex128(0x10b));
pub(super) const EPOCH: Epoch = Epoch(1);

pub(super) fn tm(n: u128) -> ResourceId {
    ResourceId(Hex128(0x7e00 + n))
}

/// `sequence(p) -> map -> discard`, the map's input partitioned by `rescale` (pointwise: one
/// region per subtask pair) or `rebalance` (all-to-all: one region).
pub(super) fn two_vertex_plan(parallelism: u32, all_to_all: bool) -> JobPlan {
    let env = StreamEnvironment::new("two-vertices");
    env.set_parallelism(parallelism);
    let source = env.sequence(0, 99);
    let exchange = if all_to_all { source.rebalance() } else { source.rescale() };
    exchange.map(&[("y", "x + 1")]).discard();
    let job = env.build().unwrap_or_else(|errors| panic!("{errors:?}"));
    plan(&job, &PlanOptions::default()).unwrap_or_else(|error| panic!("{error}"))
}

pub(super) fn config(restart: RestartStrategy, failover: FailoverStrategy) -> Config {
    Config { restart_strategy: restart, failover_strategy: failover, ..Config::default() }
}

pub(super) fn fixed_delay(attempts: u32) -> RestartStrategy {
    RestartStrategy::FixedDelay { attempts, delay: Duration::from_secs(1) }
}

/// A JobMaster with scripted peers and a record of everything it sent.
pub(super) struct Cluster {
    pub jm: JobMaster,
    pub now: Time,
    /// Slot requests not yet offered, cancelled or failed, in request order.
    pub requested: Vec<AllocationId>,
    /// Every message sent, in order.
    pub sent: Vec<Envelope>,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Every storage request, in order.
    pub stored: Vec<crate::protocol::StorageRequest>,
    /// Next free slot index per TaskManager.
    next_slot: BTreeMap<ResourceId, u32>,
}

impl Cluster {
    pub fn new(plan: JobPlan, config: &Config) -> Cluster {
        Cluster::with(JobMaster::new(JOB, plan, config, EPOCH, 42, Time::ZERO))
    }

    /// The harness around a JobMaster made at time zero.
    pub fn with(jm: JobMaster) -> Cluster {
        let mut cluster = Cluster {
            jm,
            now: Time::ZERO,
            requested: Vec::new(),
            sent: Vec::new(),
            events: Vec::new(),
            stored: Vec::new(),
            next_slot: BTreeMap::new(),
        };
        cluster.drain();
        cluster
    }

    /// Takes the JobMaster's outputs into the record; returns how many messages were sent.
    fn drain(&mut self) -> usize {
        self.jm.check_invariants().unwrap_or_else(|broken| panic!("invariant broken: {broken}"));
        let before = self.sent.len();
        while let Some(output) = self.jm.poll_output() {
            match output {
                Output::Send(envelope) => {
                    assert_eq!((envelope.from, envelope.epoch), (Address::JobMaster(JOB), EPOCH));
                    match &envelope.message {
                        Message::ResourceManager(ResourceManagerMessage::RequestSlot { allocation, .. }) => {
                            self.requested.push(*allocation);
                        }
                        Message::ResourceManager(ResourceManagerMessage::CancelSlotRequest { allocation, .. }) => {
                            self.requested.retain(|requested| requested != allocation);
                        }
                        _ => {}
                    }
                    self.sent.push(envelope);
                }
                Output::Event(event) => self.events.push(event),
                Output::Task(command) => panic!("a JobMaster never runs tasks: {command:?}"),
                Output::Storage(request) => self.stored.push(request),
            }
        }
        self.sent.len() - before
    }

    pub fn input(&mut self, input: Input) -> usize {
        self.jm.handle(self.now, input);
        self.drain()
    }

    pub fn message(&mut self, from: Address, message: JobMasterMessage) -> usize {
        self.input(Input::Message { from, epoch: EPOCH, message })
    }

    /// Moves time forward by `span` and ticks.
    pub fn advance(&mut self, span: Duration) {
        self.now = self.now.after(span);
        self.input(Input::Tick);
    }

    /// Ticks at every deadline the JobMaster asks for up to `span` from now, then at the end.
    pub fn run_for(&mut self, span: Duration) {
        let end = self.now.after(span);
        while let Some(deadline) = self.jm.poll_timeout().filter(|&deadline| deadline <= end) {
            self.now = self.now.max(deadline);
            self.input(Input::Tick);
        }
        self.now = end;
        self.input(Input::Tick);
    }

    /// Offers the first `count` outstanding requests from `resource_id`.
    pub fn offer(&mut self, resource_id: ResourceId, count: usize) -> usize {
        let allocations: Vec<AllocationId> = self.requested.drain(..count.min(self.requested.len())).collect();
        let next = self.next_slot.entry(resource_id).or_insert(0);
        let offers = allocations
            .iter()
            .map(|&allocation| {
                *next += 1;
                SlotOffer { allocation, slot: SlotIndex(*next - 1) }
            })
            .collect();
        self.message(
            Address::TaskExecutor(resource_id),
            JobMasterMessage::OfferSlots { resource_id, offers, data_address: String::new() },
        )
    }

    /// Reports `state` for every current attempt in `from_states`, from the TaskManager it runs on.
    pub fn report_all(&mut self, from_states: &[ExecutionState], state: ExecutionState) {
        let targets: Vec<ExecutionView> =
            self.jm.executions().filter(|view| from_states.contains(&view.state)).collect();
        for view in targets {
            self.report(view, state, None);
        }
    }

    pub fn report(&mut self, view: ExecutionView, state: ExecutionState, error: Option<&str>) {
        let location = view.location.expect("a reported attempt was deployed");
        let message = JobMasterMessage::TaskStateChanged {
            execution: view.id,
            state,
            error: error.map(str::to_string),
            unreadable_checkpoint: None,
        };
        self.message(Address::TaskExecutor(location.resource_id), message);
    }

    /// Every CANCELING attempt reports CANCELED.
    pub fn complete_cancellations(&mut self) {
        self.report_all(&[ExecutionState::Canceling], ExecutionState::Canceled);
    }

    /// Brings every deployed attempt to RUNNING.
    pub fn run_deployed(&mut self) {
        self.report_all(&[ExecutionState::Deploying], ExecutionState::Initializing);
        self.report_all(&[ExecutionState::Initializing], ExecutionState::Running);
    }

    pub fn deployments(&self) -> Vec<&TaskDeployment> {
        self.sent
            .iter()
            .filter_map(|envelope| match &envelope.message {
                Message::TaskExecutor(TaskExecutorMessage::DeployTask(deployment)) => Some(deployment),
                _ => None,
            })
            .collect()
    }

    pub fn count_sent(&self, kind: &str) -> usize {
        self.sent.iter().filter(|envelope| envelope.message.kind() == kind).count()
    }

    pub fn dispatcher_statuses(&self) -> Vec<JobStatus> {
        self.sent
            .iter()
            .filter_map(|envelope| match &envelope.message {
                Message::Dispatcher(DispatcherMessage::JobStatusChanged { status, .. }) => Some(*status),
                _ => None,
            })
            .collect()
    }

    pub fn view(&self, vertex: u32, subtask: u32) -> ExecutionView {
        self.jm.execution(VertexIndex(vertex), SubtaskIndex(subtask)).expect("the subtask exists")
    }

    pub fn count(&self, state: ExecutionState) -> u32 {
        self.jm.task_counts()[&state]
    }

    pub fn restart_delays(&self) -> Vec<Option<u64>> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::RestartDecision { delay_ms, .. } => Some(*delay_ms),
                _ => None,
            })
            .collect()
    }

    /// Asserts the job ended in `status` with no slot held or requested.
    pub fn assert_ended(&self, status: JobStatus) {
        assert_eq!(self.jm.status(), status);
        assert!(self.jm.held_slots().is_empty(), "a {status} job holds no slots");
        assert_eq!(self.jm.pending_slot_requests(), 0);
        assert_eq!(self.jm.poll_timeout(), None, "an ended job wants no tick");
        assert_eq!(self.dispatcher_statuses().last(), Some(&status));
        let last_rm = self.sent.iter().rev().find(|envelope| envelope.to == Address::ResourceManager);
        assert!(matches!(
            last_rm.map(|envelope| &envelope.message),
            Some(Message::ResourceManager(ResourceManagerMessage::DisconnectJobMaster { job_id: JOB }))
        ));
    }
}

/// A pointwise job of parallelism 2 on two TaskManagers (slot i on TM i), every task RUNNING.
fn running_pointwise(config: &Config) -> Cluster {
    let mut cluster = Cluster::new(two_vertex_plan(2, false), config);
    cluster.offer(tm(0), 1);
    cluster.offer(tm(1), 1);
    cluster.run_deployed();
    assert_eq!(cluster.count(ExecutionState::Running), 4);
    cluster
}

#[test]
fn attempts_of_a_later_leader_are_numbered_apart_from_its_predecessors() {
    assert_eq!(super::first_attempt(Epoch(0)), crate::ids::AttemptNumber(0));
    assert_eq!(super::first_attempt(Epoch(1)), crate::ids::AttemptNumber(0));
    assert_eq!(super::first_attempt(Epoch(3)), crate::ids::AttemptNumber(2 * super::ATTEMPTS_PER_EPOCH));
    assert_eq!(super::first_attempt(Epoch(u64::MAX)), crate::ids::AttemptNumber(u32::MAX));
}

#[test]
fn deployments_say_where_every_subtask_runs() {
    let mut cluster = Cluster::new(two_vertex_plan(2, true), &Config::default());
    cluster.offer(tm(0), 1);
    cluster.offer(tm(1), 1);
    let deployments = cluster.deployments();
    assert_eq!(deployments.len(), 4);
    let placement = deployments[0].placement.clone().expect("a deployment carries the placement");
    assert_eq!(placement.task_managers.len(), 2);
    for deployment in &deployments {
        assert_eq!(deployment.placement.as_deref(), Some(&*placement), "one placement per bulk");
        let execution = deployment.execution;
        let here = placement.location(execution.vertex, execution.subtask).map(|at| at.resource_id);
        assert!(here.is_some(), "{execution} placed");
    }
    // Shared slot i hosts subtask i of every vertex: both vertices' subtask i are together.
    for subtask in 0..2 {
        let first = placement.location(VertexIndex(0), SubtaskIndex(subtask)).map(|at| at.resource_id);
        assert_eq!(first, placement.location(VertexIndex(1), SubtaskIndex(subtask)).map(|at| at.resource_id));
    }
}

#[test]
fn happy_path_deploys_in_bulk_and_finishes_freeing_every_slot() {
    let mut cluster = Cluster::new(two_vertex_plan(2, true), &Config::default());
    assert_eq!(cluster.jm.status(), JobStatus::Running);
    assert_eq!(cluster.dispatcher_statuses(), [JobStatus::Created, JobStatus::Running]);
    assert_eq!(cluster.requested.len(), 2, "two vertices of parallelism 2 share 2 slots");
    assert_eq!(cluster.count(ExecutionState::Scheduled), 4);

    cluster.offer(tm(0), 1);
    assert!(cluster.deployments().is_empty(), "a streaming job deploys only when every slot is held");
    cluster.offer(tm(1), 1);
    let deployments = cluster.deployments();
    assert_eq!(deployments.len(), 4);
    assert!(deployments.iter().all(|deployment| deployment.restore.is_none() && deployment.parallelism == 2));
    assert_eq!(cluster.count(ExecutionState::Deploying), 4);

    cluster.run_deployed();
    cluster.report_all(&[ExecutionState::Running], ExecutionState::Finished);
    cluster.assert_ended(JobStatus::Finished);
    assert_eq!(cluster.count_sent("FreeSlot"), 2);
    let timestamps = cluster.jm.status_timestamps();
    let entered: Vec<JobStatus> = timestamps.keys().copied().collect();
    assert_eq!(entered, [JobStatus::Initializing, JobStatus::Created, JobStatus::Running, JobStatus::Finished]);
    assert!(cluster.jm.exceptions().next().is_none());
}

#[test]
fn shared_slot_i_hosts_subtask_i_of_every_vertex() {
    let mut cluster = Cluster::new(two_vertex_plan(3, true), &Config::default());
    cluster.offer(tm(0), 3);
    for subtask in 0..3 {
        let (source, sink) = (cluster.view(0, subtask), cluster.view(1, subtask));
        assert_eq!(source.location, sink.location);
        assert!(source.location.is_some());
    }
    let allocations: BTreeSet<_> = cluster.deployments().iter().map(|deployment| deployment.allocation).collect();
    assert_eq!(allocations.len(), 3);
}

#[test]
fn taskmanager_loss_restarts_only_the_affected_region_under_region_failover() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Region));
    let lost = JobMasterMessage::TaskManagerLost { resource_id: tm(1), reason: "worker killed".to_string() };
    cluster.message(Address::ResourceManager, lost);

    assert_eq!(cluster.jm.status(), JobStatus::Restarting);
    assert_eq!(
        (cluster.view(0, 0).state, cluster.view(1, 0).state),
        (ExecutionState::Running, ExecutionState::Running)
    );
    assert_eq!((cluster.view(0, 1).state, cluster.view(1, 1).state), (ExecutionState::Failed, ExecutionState::Failed));
    let entry = cluster.jm.exceptions().next().expect("the failure is recorded").clone();
    assert_eq!(entry.exception, format!("TaskManager {} lost: worker killed", tm(1)));
    assert_eq!(entry.location, Some(tm(1)));
    assert_eq!(cluster.count_sent("CancelTask"), 0, "the other region keeps running");
    assert!(cluster.requested.is_empty(), "nothing waits for the lost slot yet");

    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.jm.status(), JobStatus::Running);
    assert_eq!(cluster.requested.len(), 1, "the restart requests the lost slot again");
    assert_eq!(cluster.view(0, 1).id.attempt.0, 1);
    assert_eq!(cluster.view(0, 0).id.attempt.0, 0);
    cluster.offer(tm(2), 1);
    assert_eq!(cluster.deployments().len(), 6);
    cluster.run_deployed();
    cluster.report_all(&[ExecutionState::Running], ExecutionState::Finished);
    cluster.assert_ended(JobStatus::Finished);
    assert_eq!(cluster.jm.restarts(), 1);
}

#[test]
fn taskmanager_loss_restarts_everything_under_full_failover() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Full));
    let lost = JobMasterMessage::DisconnectTaskExecutor { resource_id: tm(1), reason: "shutting down".to_string() };
    cluster.message(Address::TaskExecutor(tm(1)), lost);

    assert_eq!(cluster.jm.status(), JobStatus::Restarting);
    assert_eq!(cluster.count(ExecutionState::Canceling), 2, "the healthy region is cancelled too");
    assert_eq!(cluster.count_sent("CancelTask"), 2);
    cluster.run_for(Duration::from_secs(5));
    assert_eq!(cluster.jm.status(), JobStatus::Restarting, "the restart waits for the cancellations");
    cluster.report_all(&[ExecutionState::Canceling], ExecutionState::Canceled);
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.jm.status(), JobStatus::Running);
    assert!(cluster.jm.executions().all(|view| view.id.attempt.0 == 1));
    assert_eq!(cluster.deployments().len(), 4, "the held slot waits for the lost one: bulk deployment");
    cluster.offer(tm(2), 1);
    assert_eq!(cluster.deployments().len(), 8);
    cluster.run_deployed();
    cluster.report_all(&[ExecutionState::Running], ExecutionState::Finished);
    cluster.assert_ended(JobStatus::Finished);
}

#[test]
fn fixed_delay_exhaustion_fails_the_job_with_the_root_cause() {
    let mut cluster = running_pointwise(&config(fixed_delay(1), FailoverStrategy::Region));
    cluster.report(cluster.view(1, 0), ExecutionState::Failed, Some("ArithmeticException: / by zero"));
    assert_eq!(cluster.jm.status(), JobStatus::Restarting);
    cluster.complete_cancellations();
    cluster.run_for(Duration::from_secs(1));
    cluster.run_deployed();
    assert_eq!(cluster.count(ExecutionState::Running), 4);

    cluster.report(cluster.view(1, 0), ExecutionState::Failed, Some("ArithmeticException: / by zero, again"));
    assert_eq!(cluster.jm.status(), JobStatus::Failing);
    assert_eq!(cluster.count_sent("CancelTask"), 1 + 3, "one in the restart, then everything still running");
    cluster.report_all(&[ExecutionState::Canceling], ExecutionState::Canceled);
    cluster.assert_ended(JobStatus::Failed);
    assert_eq!(cluster.jm.failure(), Some("ArithmeticException: / by zero, again"));
    assert_eq!(cluster.restart_delays(), [Some(1000), None]);
    let final_report = cluster.sent.iter().rev().find_map(|envelope| match &envelope.message {
        Message::Dispatcher(DispatcherMessage::JobStatusChanged { failure, .. }) => Some(failure.clone()),
        _ => None,
    });
    assert_eq!(final_report, Some(Some("ArithmeticException: / by zero, again".to_string())));
    let texts: Vec<&str> = cluster.jm.exceptions().map(|entry| entry.exception.as_str()).collect();
    assert_eq!(texts, ["ArithmeticException: / by zero, again", "ArithmeticException: / by zero"]);
    assert_eq!(
        cluster.jm.exceptions().next().and_then(|entry| entry.task_name.clone()).as_deref(),
        Some("Map -> Sink: Discard (1/2)")
    );
}

#[test]
fn exponential_delays_in_the_job_match_flinks_example() {
    let strategy = RestartStrategy::ExponentialDelay {
        initial_backoff: Duration::from_millis(4),
        max_backoff: Duration::from_millis(300),
        backoff_multiplier: 2.3,
        reset_backoff_threshold: Duration::from_secs(3600),
        jitter_factor: 0.0,
        attempts_before_reset_backoff: u32::MAX,
    };
    let mut cluster = running_pointwise(&config(strategy, FailoverStrategy::Region));
    for _ in 0..3 {
        cluster.report(cluster.view(0, 1), ExecutionState::Failed, Some("flaky"));
        cluster.complete_cancellations();
        cluster.run_for(Duration::from_secs(1));
        cluster.run_deployed();
        assert_eq!(cluster.count(ExecutionState::Running), 4);
    }
    assert_eq!(cluster.restart_delays(), [Some(4), Some(9), Some(21)]);
    assert_eq!(cluster.jm.restarts(), 3);
}

#[test]
fn failure_rate_tolerates_failures_spread_wider_than_the_interval() {
    let strategy = RestartStrategy::FailureRate {
        max_failures_per_interval: 1,
        failure_rate_interval: Duration::from_secs(10),
        delay: Duration::from_secs(1),
    };
    let mut cluster = running_pointwise(&config(strategy, FailoverStrategy::Region));
    for _ in 0..3 {
        cluster.report(cluster.view(0, 0), ExecutionState::Failed, Some("flaky"));
        cluster.complete_cancellations();
        cluster.run_for(Duration::from_secs(1));
        cluster.run_deployed();
        cluster.advance(Duration::from_secs(10));
    }
    assert_eq!(cluster.jm.status(), JobStatus::Running);
    cluster.report(cluster.view(0, 0), ExecutionState::Failed, Some("flaky"));
    cluster.complete_cancellations();
    cluster.run_for(Duration::from_secs(1));
    cluster.run_deployed();
    cluster.report(cluster.view(0, 0), ExecutionState::Failed, Some("too often"));
    assert_eq!(cluster.jm.status(), JobStatus::Failing);
    assert_eq!(cluster.restart_delays(), [Some(1000), Some(1000), Some(1000), Some(1000), None]);
}

#[test]
fn slot_request_timeout_fails_the_job_with_no_resource_available() {
    let mut cluster = Cluster::new(two_vertex_plan(2, true), &config(fixed_delay(1), FailoverStrategy::Region));
    cluster.offer(tm(0), 1);
    let reason = "slot request timed out after 5 min";
    let failed = |allocation| JobMasterMessage::SlotRequestFailed { allocation, reason: reason.to_string() };
    let waiting = cluster.requested.remove(0);
    cluster.message(Address::ResourceManager, failed(waiting));
    assert_eq!(cluster.jm.status(), JobStatus::Restarting);
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.jm.status(), JobStatus::Running);
    assert_eq!(cluster.requested.len(), 1, "the restart requests the missing slot again");
    assert_ne!(cluster.requested[0], waiting);
    assert!(cluster.deployments().is_empty());

    cluster.message(Address::ResourceManager, failed(cluster.requested[0]));
    let expected = format!("NoResourceAvailableException: could not acquire the minimum required resources: {reason}");
    cluster.assert_ended(JobStatus::Failed);
    assert_eq!(cluster.jm.failure(), Some(expected.as_str()));
    assert_eq!(cluster.count_sent("FreeSlot"), 1, "the slot it had is given back");
}

#[test]
fn unanswered_slot_requests_fail_after_the_backstop() {
    let mut cluster = Cluster::new(two_vertex_plan(1, true), &config(RestartStrategy::None, FailoverStrategy::Region));
    let timeout = Config::default().resource_manager.slot_request_timeout;
    cluster.run_for(timeout);
    assert_eq!(cluster.jm.status(), JobStatus::Running, "the ResourceManager's timeout answers first");
    cluster.run_for(timeout);
    cluster.assert_ended(JobStatus::Failed);
    assert!(cluster.jm.failure().is_some_and(|failure| failure.starts_with("NoResourceAvailableException")));
    assert_eq!(cluster.count_sent("CancelSlotRequest"), 1);
}

#[test]
fn cancel_while_running_ends_canceled_with_no_slots_held() {
    let mut cluster = running_pointwise(&Config::default());
    cluster.message(Address::Dispatcher, JobMasterMessage::Cancel);
    assert_eq!(cluster.jm.status(), JobStatus::Cancelling);
    assert_eq!(cluster.count_sent("CancelTask"), 4);
    cluster.report_all(&[ExecutionState::Canceling], ExecutionState::Canceled);
    cluster.assert_ended(JobStatus::Canceled);
    assert_eq!(cluster.count_sent("FreeSlot"), 2);

    let sent = cluster.sent.len();
    cluster.message(Address::Dispatcher, JobMasterMessage::Cancel);
    assert_eq!(cluster.sent.len(), sent, "cancelling a cancelled job does nothing");
}

#[test]
fn cancel_before_slots_arrive_drops_the_pending_requests() {
    let mut cluster = Cluster::new(two_vertex_plan(2, true), &Config::default());
    cluster.offer(tm(0), 1);
    cluster.message(Address::Dispatcher, JobMasterMessage::Cancel);
    cluster.assert_ended(JobStatus::Canceled);
    assert_eq!(cluster.count_sent("CancelSlotRequest"), 1);
    assert!(cluster.requested.is_empty());
    assert_eq!(cluster.count_sent("FreeSlot"), 1);
}

#[test]
fn cancel_while_restarting_ends_canceled_with_no_slots_held() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Full));
    cluster.report(cluster.view(0, 0), ExecutionState::Failed, Some("boom"));
    assert_eq!(cluster.jm.status(), JobStatus::Restarting);
    assert_eq!(cluster.count(ExecutionState::Canceling), 3);
    cluster.message(Address::Dispatcher, JobMasterMessage::Cancel);
    assert_eq!(cluster.jm.status(), JobStatus::Cancelling);
    cluster.run_for(Duration::from_secs(2));
    assert_eq!(cluster.jm.status(), JobStatus::Cancelling, "no restart once cancelled");
    cluster.report_all(&[ExecutionState::Canceling], ExecutionState::Canceled);
    cluster.assert_ended(JobStatus::Canceled);
    assert!(cluster.jm.executions().all(|view| view.id.attempt.0 == 0));
}

#[test]
fn stale_attempt_and_misaddressed_reports_are_ignored() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Region));
    let old = cluster.view(1, 1);
    cluster.report(old, ExecutionState::Failed, Some("boom"));
    cluster.complete_cancellations();
    cluster.run_for(Duration::from_secs(1));
    cluster.run_deployed();
    let current = cluster.view(1, 1);
    assert_eq!(current.id.attempt.0, 1);

    let sent = cluster.sent.len();
    let events = cluster.events.len();
    cluster.report(old, ExecutionState::Failed, Some("late news about attempt 0"));
    let failed = ExecutionState::Failed;
    let wrong_sender = JobMasterMessage::TaskStateChanged {
        execution: current.id,
        state: failed,
        error: None,
        unreadable_checkpoint: None,
    };
    cluster.message(Address::TaskExecutor(tm(9)), wrong_sender.clone());
    cluster.input(Input::Message { from: Address::TaskExecutor(tm(1)), epoch: Epoch(0), message: wrong_sender });
    let made_up = ExecutionId { subtask: SubtaskIndex(7), ..current.id };
    cluster.message(
        Address::TaskExecutor(tm(1)),
        JobMasterMessage::TaskStateChanged {
            execution: made_up,
            state: ExecutionState::Failed,
            error: None,
            unreadable_checkpoint: None,
        },
    );
    assert_eq!((cluster.sent.len(), cluster.events.len()), (sent, events), "nothing happened");
    assert_eq!(cluster.view(1, 1).state, ExecutionState::Running);
    assert_eq!(cluster.jm.restarts(), 1);
}

#[test]
fn offers_of_unknown_or_duplicate_allocations_are_rejected() {
    let mut cluster = Cluster::new(two_vertex_plan(1, true), &Config::default());
    let wanted = cluster.requested[0];
    let unknown = AllocationId(Hex128(0xdead));
    let offers = vec![
        SlotOffer { allocation: wanted, slot: SlotIndex(0) },
        SlotOffer { allocation: unknown, slot: SlotIndex(1) },
        SlotOffer { allocation: wanted, slot: SlotIndex(0) },
    ];
    cluster.message(
        Address::TaskExecutor(tm(0)),
        JobMasterMessage::OfferSlots { resource_id: tm(0), offers, data_address: String::new() },
    );
    let elsewhere = vec![SlotOffer { allocation: wanted, slot: SlotIndex(0) }];
    cluster.message(
        Address::TaskExecutor(tm(1)),
        JobMasterMessage::OfferSlots { resource_id: tm(1), offers: elsewhere, data_address: String::new() },
    );
    let results: Vec<(Address, Vec<AllocationId>, Vec<AllocationId>)> = cluster
        .sent
        .iter()
        .filter_map(|envelope| match &envelope.message {
            Message::TaskExecutor(TaskExecutorMessage::SlotOfferResult { accepted, rejected, .. }) => {
                Some((envelope.to, accepted.clone(), rejected.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        [
            (Address::TaskExecutor(tm(0)), vec![wanted], vec![unknown]),
            (Address::TaskExecutor(tm(1)), vec![], vec![wanted]),
        ]
    );
    assert_eq!(cluster.jm.held_slots().len(), 1);
    assert_eq!(cluster.deployments().len(), 2);
}

#[test]
fn heartbeats_go_to_taskmanagers_holding_slots_and_silence_loses_them() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Region));
    let interval = Config::default().heartbeat.interval;
    cluster.run_for(interval);
    assert_eq!(cluster.count_sent("JobMasterHeartbeat"), 2);
    // TM 0 answers with its allocation; TM 1 stays silent.
    let mine: Vec<AllocationId> =
        cluster.jm.held_slots().iter().filter(|slot| slot.resource_id == tm(0)).map(|slot| slot.allocation).collect();
    for _ in 0..5 {
        let executions = running_on(&cluster.jm, tm(0));
        let reply =
            JobMasterMessage::TaskExecutorHeartbeat { resource_id: tm(0), allocations: mine.clone(), executions };
        cluster.message(Address::TaskExecutor(tm(0)), reply);
        cluster.run_for(interval);
    }
    assert_eq!(cluster.jm.task_managers(), [tm(0)]);
    assert!(
        cluster
            .events
            .iter()
            .any(|event| matches!(event, Event::TaskManagerLost { resource_id, .. } if *resource_id == tm(1)))
    );
    let entry = cluster.jm.exceptions().last().expect("a failure").clone();
    assert_eq!(entry.exception, format!("TaskManager {} lost: no heartbeat for 50 s", tm(1)));
    let disconnected = cluster.sent.iter().any(|envelope| {
        envelope.to == Address::TaskExecutor(tm(1))
            && matches!(envelope.message, Message::TaskExecutor(TaskExecutorMessage::DisconnectJobMaster { .. }))
    });
    assert!(disconnected, "a TaskManager declared lost is told to drop the job in case it is alive");
    assert_eq!(cluster.view(0, 0).id.attempt.0, 0, "the other region kept running");
}

#[test]
fn a_heartbeat_lacking_a_held_slot_fails_the_tasks_in_it() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Region));
    let executions = running_on(&cluster.jm, tm(1));
    let reply = JobMasterMessage::TaskExecutorHeartbeat { resource_id: tm(1), allocations: Vec::new(), executions };
    cluster.message(Address::TaskExecutor(tm(1)), reply.clone());
    assert_eq!(cluster.jm.status(), JobStatus::Running, "a report may predate a fresh offer");
    cluster.now = cluster.now.after(Duration::from_secs(50));
    cluster.message(
        Address::TaskExecutor(tm(0)),
        JobMasterMessage::TaskExecutorHeartbeat {
            resource_id: tm(0),
            allocations: cluster.jm.held_slots().iter().map(|slot| slot.allocation).collect(),
            executions: running_on(&cluster.jm, tm(0)),
        },
    );
    cluster.message(Address::TaskExecutor(tm(1)), reply);
    assert_eq!(cluster.jm.status(), JobStatus::Restarting);
    assert_eq!((cluster.view(0, 1).state, cluster.view(1, 1).state), (ExecutionState::Failed, ExecutionState::Failed));
    assert_eq!(cluster.jm.held_slots().len(), 1);
    assert_eq!(cluster.count_sent("FreeSlot"), 1, "the TaskExecutor is told to free it in case it still holds it");
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.requested.len(), 1, "the restart requests it again");
}

#[test]
fn a_task_canceled_without_being_asked_counts_as_failed() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Region));
    cluster.report(cluster.view(0, 0), ExecutionState::Canceled, None);
    assert_eq!(cluster.view(0, 0).state, ExecutionState::Failed);
    assert_eq!(cluster.jm.status(), JobStatus::Restarting);
}

#[test]
fn failures_while_restarting_merge_into_the_pending_restart() {
    let mut cluster = running_pointwise(&config(fixed_delay(1), FailoverStrategy::Region));
    cluster.report(cluster.view(0, 0), ExecutionState::Failed, Some("first"));
    cluster.report(cluster.view(0, 1), ExecutionState::Failed, Some("second"));
    assert_eq!(cluster.jm.status(), JobStatus::Restarting, "one attempt covers both failures");
    assert_eq!(cluster.restart_delays(), [Some(1000)]);
    cluster.report_all(&[ExecutionState::Canceling], ExecutionState::Canceled);
    cluster.run_for(Duration::from_secs(1));
    assert!(cluster.jm.executions().all(|view| view.id.attempt.0 == 1));
    assert_eq!(cluster.jm.exceptions().count(), 2);
}

#[test]
fn twenty_thousand_subtasks_are_scheduled_and_deployed_in_one_bulk() {
    let plan = two_vertex_plan(10_000, true);
    assert_eq!(plan.subtask_count(), 20_000);
    let mut cluster = Cluster::new(plan, &Config::default());
    assert_eq!(cluster.requested.len(), 10_000);
    for worker in 0..100 {
        cluster.offer(tm(worker), 100);
    }
    let deployments = cluster.deployments();
    assert_eq!(deployments.len(), 20_000);
    let distinct: BTreeSet<ExecutionId> = deployments.iter().map(|deployment| deployment.execution).collect();
    assert_eq!(distinct.len(), 20_000);
    assert_eq!(cluster.count(ExecutionState::Deploying), 20_000);
}

/// What a truthful TaskExecutor `resource_id` reports in a heartbeat: the tasks deployed on it.
pub(super) fn running_on(
    jm: &JobMaster,
    resource_id: ResourceId,
) -> Vec<(crate::protocol::ExecutionId, ExecutionState)> {
    jm.executions()
        .filter(|view| view.location.is_some_and(|location| location.resource_id == resource_id))
        .filter(|view| !view.state.is_terminal())
        .map(|view| (view.id, view.state))
        .collect()
}

#[test]
fn a_lost_state_report_is_recovered_from_the_heartbeat() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Region));
    let view = cluster.view(0, 0);
    let resource_id = view.location.expect("deployed").resource_id;
    let allocations: Vec<AllocationId> =
        cluster.jm.held_slots().iter().filter(|s| s.resource_id == resource_id).map(|s| s.allocation).collect();
    let mut executions = running_on(&cluster.jm, resource_id);
    for (id, state) in executions.iter_mut() {
        if *id == view.id {
            *state = ExecutionState::Finished;
        }
    }
    let reply = JobMasterMessage::TaskExecutorHeartbeat { resource_id, allocations, executions };
    cluster.message(Address::TaskExecutor(resource_id), reply);
    assert_eq!(cluster.view(0, 0).state, ExecutionState::Finished);
}

#[test]
fn a_deployment_the_task_manager_never_reports_fails_after_the_heartbeat_timeout() {
    let mut cluster = running_pointwise(&config(fixed_delay(3), FailoverStrategy::Region));
    let resource_id = cluster.view(0, 0).location.expect("deployed").resource_id;
    let allocations: Vec<AllocationId> =
        cluster.jm.held_slots().iter().filter(|s| s.resource_id == resource_id).map(|s| s.allocation).collect();
    let silent = JobMasterMessage::TaskExecutorHeartbeat {
        resource_id,
        allocations: allocations.clone(),
        executions: Vec::new(),
    };
    cluster.message(Address::TaskExecutor(resource_id), silent.clone());
    assert_eq!(cluster.jm.status(), JobStatus::Running, "one report may predate the deployment");
    cluster.now = cluster.now.after(Config::default().heartbeat.timeout);
    cluster.message(Address::TaskExecutor(resource_id), silent);
    assert_eq!(cluster.jm.status(), JobStatus::Restarting);
    let entry = cluster.jm.exceptions().next().expect("a failure").clone();
    assert!(entry.exception.contains("its deployment was lost"), "{}", entry.exception);
}
