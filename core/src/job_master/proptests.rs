//! The JobMaster under random input: offers of real, stale and made-up allocations, reports about
//! current, stale, future and made-up attempts from the right and wrong TaskManagers, heartbeats
//! with missing slots, lost and disconnecting TaskManagers, failed requests, cancels, replays of
//! earlier messages, stale epochs and ticks at random times. It must never panic, and its
//! invariants must hold after every step (the harness checks them after each input).

use super::tests::{Cluster, EPOCH, config, fixed_delay, tm, two_vertex_plan};
use super::*;
use crate::config::{FailoverStrategy, RestartStrategy};
use crate::ids::{AllocationId, AttemptNumber, CheckpointId, Hex128, SlotIndex};
use crate::protocol::{ExecutionId, SlotOffer};
use proptest::collection::vec;
use proptest::prelude::*;

const TASK_MANAGERS: u8 = 4;

#[derive(Clone, Debug)]
enum Step {
    Offer { tm: u8, picks: Vec<u16>, slot: u8 },
    Report { pick: u16, state: u8, attempt: i8, sender: Option<u8> },
    Heartbeat { tm: u8, keep: u8, extra: Option<u16> },
    TaskManagerLost { tm: u8 },
    Disconnect { tm: u8 },
    RequestFailed { pick: u16 },
    Cancel,
    Replay { pick: u16 },
    Tick { ms: u32 },
    Savepoint { stop: bool, drain: bool, target: bool },
    Acknowledge { pick: u16 },
    Stored { ok: bool },
}

/// How a message step is delivered: as is, from a stale epoch, or from the wrong sender.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    Normal,
    StaleEpoch,
    WrongSender,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..TASK_MANAGERS, vec(any::<u16>(), 1..4), 0..4u8)
            .prop_map(|(tm, picks, slot)| Step::Offer { tm, picks, slot }),
        6 => (any::<u16>(), report_state(), attempt_offset(), proptest::option::weighted(0.2, 0..TASK_MANAGERS))
            .prop_map(|(pick, state, attempt, sender)| Step::Report { pick, state, attempt, sender }),
        2 => (0..TASK_MANAGERS, any::<u8>(), proptest::option::weighted(0.2, any::<u16>()))
            .prop_map(|(tm, keep, extra)| Step::Heartbeat { tm, keep, extra }),
        1 => (0..TASK_MANAGERS).prop_map(|tm| Step::TaskManagerLost { tm }),
        1 => (0..TASK_MANAGERS).prop_map(|tm| Step::Disconnect { tm }),
        1 => any::<u16>().prop_map(|pick| Step::RequestFailed { pick }),
        1 => any::<u16>().prop_map(|pick| Step::Replay { pick }),
        4 => prop_oneof![0..2_000u32, 0..120_000u32].prop_map(|ms| Step::Tick { ms }),
        1 => (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(stop, drain, target)| Step::Savepoint { stop, drain, target }),
        3 => any::<u16>().prop_map(|pick| Step::Acknowledge { pick }),
        1 => any::<bool>().prop_map(|ok| Step::Stored { ok }),
    ]
}

/// Mostly the states TaskExecutors report, sometimes one they never do.
fn report_state() -> impl Strategy<Value = u8> {
    let reported = [ExecutionState::Initializing, ExecutionState::Running, ExecutionState::Finished];
    let reported = reported.map(|state| state as u8);
    let stopped = [ExecutionState::Failed as u8, ExecutionState::Canceled as u8];
    prop_oneof![
        6 => proptest::sample::select(reported.to_vec()),
        2 => proptest::sample::select(stopped.to_vec()),
        1 => 0..10u8,
    ]
}

/// Mostly the current attempt, sometimes the one before or after it.
fn attempt_offset() -> impl Strategy<Value = i8> {
    prop_oneof![4 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)]
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![18 => Just(Delivery::Normal), 1 => Just(Delivery::StaleEpoch), 1 => Just(Delivery::WrongSender)]
}

fn restart_strategy(kind: u8) -> RestartStrategy {
    match kind {
        0 => RestartStrategy::None,
        1 => fixed_delay(3),
        2 => RestartStrategy::FailureRate {
            max_failures_per_interval: 2,
            failure_rate_interval: Duration::from_secs(60),
            delay: Duration::from_millis(500),
        },
        _ => RestartStrategy::ExponentialDelay {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            backoff_multiplier: 2.0,
            reset_backoff_threshold: Duration::from_secs(60),
            jitter_factor: 0.1,
            attempts_before_reset_backoff: 5,
        },
    }
}

/// Every allocation the JobMaster ever requested, plus two it never did.
fn allocations(cluster: &Cluster) -> Vec<AllocationId> {
    let mut known: Vec<AllocationId> = cluster
        .sent
        .iter()
        .filter_map(|envelope| match &envelope.message {
            Message::ResourceManager(ResourceManagerMessage::RequestSlot { allocation, .. }) => Some(*allocation),
            _ => None,
        })
        .collect();
    known.extend([AllocationId(Hex128(0xbad)), AllocationId(Hex128(0xbad2))]);
    known
}

fn pick<T: Copy>(items: &[T], index: u16) -> T {
    items[index as usize % items.len()]
}

/// The input a step stands for, given what the cluster has done so far.
fn input_for(cluster: &Cluster, step: &Step, history: &[Input]) -> Option<Input> {
    let message = |from, message| Some(Input::Message { from, epoch: EPOCH, message });
    match step {
        Step::Offer { tm: n, picks, slot } => {
            let known = allocations(cluster);
            let offers = picks
                .iter()
                .enumerate()
                .map(|(i, &index)| SlotOffer {
                    allocation: pick(&known, index),
                    slot: SlotIndex(*slot as u32 + i as u32),
                })
                .collect();
            message(
                Address::TaskExecutor(tm(*n as u128)),
                JobMasterMessage::OfferSlots { resource_id: tm(*n as u128), offers, data_address: String::new() },
            )
        }
        Step::Report { pick: index, state, attempt, sender } => report(cluster, *index, *state, *attempt, *sender),
        Step::Heartbeat { tm: n, keep, extra } => {
            let resource_id = tm(*n as u128);
            let held = cluster.jm.held_slots().into_iter().filter(|slot| slot.resource_id == resource_id);
            let mut allocations: Vec<AllocationId> =
                held.enumerate().filter(|(i, _)| keep & (1 << (i % 8)) != 0).map(|(_, slot)| slot.allocation).collect();
            allocations.extend(extra.map(|index| pick(&self::allocations(cluster), index)));
            message(
                Address::TaskExecutor(resource_id),
                JobMasterMessage::TaskExecutorHeartbeat {
                    resource_id,
                    allocations,
                    executions: super::tests::running_on(&cluster.jm, resource_id),
                },
            )
        }
        Step::TaskManagerLost { tm: n } => {
            let lost = JobMasterMessage::TaskManagerLost { resource_id: tm(*n as u128), reason: "lost".to_string() };
            message(Address::ResourceManager, lost)
        }
        Step::Disconnect { tm: n } => {
            let resource_id = tm(*n as u128);
            let disconnect = JobMasterMessage::DisconnectTaskExecutor { resource_id, reason: "bye".to_string() };
            message(Address::TaskExecutor(resource_id), disconnect)
        }
        Step::RequestFailed { pick: index } => {
            let allocation = pick(&allocations(cluster), *index);
            message(
                Address::ResourceManager,
                JobMasterMessage::SlotRequestFailed { allocation, reason: "timeout".to_string() },
            )
        }
        Step::Cancel => message(Address::Dispatcher, JobMasterMessage::Cancel),
        Step::Savepoint { stop, drain, target } => {
            let target = target.then(|| "/savepoints".to_string());
            let (stop, drain, client) = (*stop, *drain, Address::Client(1));
            message(Address::Dispatcher, JobMasterMessage::TriggerSavepoint { request: 1, client, target, stop, drain })
        }
        Step::Acknowledge { pick: index } => acknowledge(cluster, *index),
        Step::Stored { ok } => {
            let checkpoint = cluster.stored.iter().rev().find_map(|request| match request {
                crate::protocol::StorageRequest::WriteMetadata { checkpoint, .. } => Some(*checkpoint),
                _ => None,
            })?;
            let job_id = super::tests::JOB;
            Some(Input::Storage(match ok {
                true => StorageReply::MetadataWritten { job_id, checkpoint },
                false => StorageReply::MetadataWriteFailed { job_id, checkpoint, error: "disk full".to_string() },
            }))
        }
        Step::Replay { pick: index } => (!history.is_empty()).then(|| pick_input(history, *index)),
        Step::Tick { .. } => Some(Input::Tick),
    }
}

/// An acknowledgement of the newest triggered checkpoint (or of one before it) by a current
/// attempt, from its TaskManager.
fn acknowledge(cluster: &Cluster, index: u16) -> Option<Input> {
    let newest = cluster.sent.iter().rev().find_map(|envelope| match &envelope.message {
        Message::TaskExecutor(TaskExecutorMessage::TriggerCheckpoint { barrier, .. }) => Some(barrier.checkpoint),
        _ => None,
    })?;
    let checkpoint = CheckpointId(newest.0.saturating_sub(u64::from(index.is_multiple_of(5))));
    let views: Vec<ExecutionView> = cluster.jm.executions().collect();
    let view = pick(&views, index);
    let location = view.location?;
    let file = format!("task-{}-{}-{}", view.id.vertex, view.id.subtask, view.id.attempt);
    let state = Some(crate::checkpoint::TaskStateHandle { file, size_bytes: 10, crc32: 1, shared: Vec::new() });
    let metrics = crate::checkpoint::AckMetrics::default();
    Some(Input::Message {
        from: Address::TaskExecutor(location.resource_id),
        epoch: EPOCH,
        message: JobMasterMessage::AcknowledgeCheckpoint { execution: view.id, checkpoint, state, metrics },
    })
}

fn pick_input(history: &[Input], index: u16) -> Input {
    history[index as usize % history.len()].clone()
}

/// A report about a current (`attempt` 0), older (-1) or newer (+1) attempt of a real subtask,
/// or of a subtask that does not exist, from its TaskManager or from `sender`.
fn report(cluster: &Cluster, index: u16, state: u8, attempt: i8, sender: Option<u8>) -> Option<Input> {
    let views: Vec<ExecutionView> = cluster.jm.executions().collect();
    let view = pick(&views, index);
    let mut execution =
        ExecutionId { attempt: AttemptNumber(view.id.attempt.0.saturating_add_signed(attempt as i32)), ..view.id };
    if index.is_multiple_of(17) {
        execution.subtask = SubtaskIndex(1_000);
    }
    let from = match (sender, view.location) {
        (None, Some(location)) => location.resource_id,
        (sender, _) => tm(sender.unwrap_or(0) as u128),
    };
    let state = ExecutionState::ALL[state as usize % ExecutionState::ALL.len()];
    let error = (state == ExecutionState::Failed).then(|| "random failure".to_string());
    // Sometimes the task could not read its state of some checkpoint (real, dropped or never).
    let unreadable_checkpoint = index.is_multiple_of(5).then_some(CheckpointId(u64::from(index % 4)));
    Some(Input::Message {
        from: Address::TaskExecutor(from),
        epoch: EPOCH,
        message: JobMasterMessage::TaskStateChanged { execution, state, error, unreadable_checkpoint },
    })
}

fn deliver(cluster: &mut Cluster, input: Input, delivery: Delivery) -> Input {
    let input = match (input, delivery) {
        (Input::Message { from, message, .. }, Delivery::StaleEpoch) => {
            Input::Message { from, epoch: Epoch(EPOCH.0 - 1), message }
        }
        (Input::Message { epoch, message, .. }, Delivery::WrongSender) => {
            Input::Message { from: Address::Client(7), epoch, message }
        }
        (input, _) => input,
    };
    cluster.input(input.clone());
    input
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn job_master_survives_random_input_and_keeps_its_invariants(
        parallelism in 1..4u32,
        all_to_all in any::<bool>(),
        full in any::<bool>(),
        restart in 0..4u8,
        steps in vec((step(), delivery()), 1..120),
        cancel_at in proptest::option::of(0..120usize),
        checkpointing in any::<bool>(),
    ) {
        let failover = if full { FailoverStrategy::Full } else { FailoverStrategy::Region };
        let plan = two_vertex_plan(parallelism, all_to_all);
        let mut config = config(restart_strategy(restart), failover);
        if checkpointing {
            config.checkpoint.interval = Some(Duration::from_secs(5));
            config.checkpoint.timeout = Duration::from_secs(30);
        }
        let mut cluster = Cluster::new(plan, &config);
        let mut history = Vec::new();
        for (index, (step, delivery)) in steps.into_iter().enumerate() {
            if let Step::Tick { ms } = step {
                cluster.now = cluster.now.after(Duration::from_millis(ms as u64));
            }
            let step = if cancel_at == Some(index) { Step::Cancel } else { step };
            let Some(input) = input_for(&cluster, &step, &history) else { continue };
            let delivered = deliver(&mut cluster, input, delivery);
            if matches!(delivered, Input::Message { .. }) && history.len() < 64 {
                history.push(delivered);
            }
        }
        if cluster.jm.status().is_globally_terminal() {
            prop_assert!(cluster.jm.held_slots().is_empty());
            prop_assert_eq!(cluster.jm.poll_timeout(), None);
        } else {
            prop_assert!(cluster.jm.poll_timeout().is_some());
        }
    }

    #[test]
    fn job_master_finishes_after_random_faults_once_the_cluster_behaves(
        parallelism in 1..4u32,
        all_to_all in any::<bool>(),
        steps in vec((step(), Just(Delivery::Normal)), 1..60),
    ) {
        let strategy = RestartStrategy::FixedDelay { attempts: u32::MAX, delay: Duration::from_millis(100) };
        let plan = two_vertex_plan(parallelism, all_to_all);
        let mut cluster = Cluster::new(plan, &config(strategy, FailoverStrategy::Region));
        for (step, delivery) in steps {
            if matches!(step, Step::Cancel | Step::Replay { .. }) {
                continue;
            }
            if let Step::Tick { ms } = step {
                cluster.now = cluster.now.after(Duration::from_millis(ms as u64));
            }
            if let Some(input) = input_for(&cluster, &step, &[]) {
                deliver(&mut cluster, input, delivery);
            }
        }
        heal(&mut cluster);
        prop_assert_eq!(cluster.jm.status(), JobStatus::Finished);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever the driver reads as the savepoint's metadata (random bytes, a valid file with a
    /// flipped byte or cut short, or an IO error), the job starts or fails with a reason.
    #[test]
    fn a_job_from_any_savepoint_bytes_starts_or_fails_with_a_reason(
        noise in vec(any::<u8>(), 0..200),
        flip in proptest::option::of(any::<usize>()),
        cut in proptest::option::of(any::<usize>()),
        kind in 0..3u8,
        old_parallelism in 1..4u32,
        parallelism in 1..4u32,
    ) {
        use crate::checkpoint::storage::{CheckpointMetadata, VertexMetadata, encode_metadata};
        let old = two_vertex_plan(old_parallelism, true);
        let mut metadata = CheckpointMetadata {
            job: JobId(Hex128(1)),
            checkpoint: crate::ids::CheckpointId(9),
            is_savepoint: true,
            triggered_at: Time::ZERO,
            vertices: BTreeMap::new(),
            tasks: BTreeMap::new(),
            finished: Default::default(),
        };
        for vertex in &old.vertices {
            let meta = VertexMetadata { parallelism: vertex.parallelism, max_parallelism: vertex.max_parallelism };
            metadata.vertices.insert(vertex.id, meta);
            for subtask in (0..vertex.parallelism).map(SubtaskIndex) {
                let file = format!("f{subtask}");
                let handle = crate::checkpoint::TaskStateHandle { file, size_bytes: 1, crc32: 0 , shared: Vec::new() };
                metadata.tasks.insert((vertex.id, subtask), handle);
            }
        }
        let mut bytes = encode_metadata(&metadata);
        if let Some(at) = flip {
            let len = bytes.len();
            bytes[at % len] ^= 0x20;
        }
        if let Some(at) = cut {
            bytes.truncate(at % (bytes.len() + 1));
        }
        let result = match kind {
            0 => Ok(bytes),
            1 => Ok(noise),
            _ => Err("permission denied".to_string()),
        };
        let location = "/sp/x".to_string();
        let plan = two_vertex_plan(parallelism, true);
        let savepoint = Some(location.clone());
        let config = Config::default();
        let jm = JobMaster::with_savepoint(super::tests::JOB, plan, &config, EPOCH, 1, Time::ZERO, savepoint);
        let mut cluster = Cluster::with(jm);
        let job_id = super::tests::JOB;
        cluster.input(Input::Storage(StorageReply::MetadataRead { job_id, location, result }));
        match cluster.jm.status() {
            JobStatus::Running => prop_assert_eq!(kind, 0, "only a real metadata file starts the job"),
            JobStatus::Failed => prop_assert!(cluster.jm.failure().is_some_and(|failure| failure.contains("/sp/x"))),
            other => prop_assert!(false, "the job is {other}"),
        }
    }
}

/// Liveness with the faults healed: a fresh TaskManager answers every request, tasks run and
/// finish, cancellations complete; a job that can restart forever must then finish.
fn heal(cluster: &mut Cluster) {
    let healthy = tm(100);
    for _ in 0..50 {
        if cluster.jm.status().is_globally_terminal() {
            return;
        }
        cluster.report_all(&[ExecutionState::Canceling], ExecutionState::Canceled);
        cluster.run_for(Duration::from_secs(1));
        let outstanding = cluster.requested.len();
        cluster.offer(healthy, outstanding);
        cluster.run_deployed();
        let heartbeat = JobMasterMessage::TaskExecutorHeartbeat {
            executions: super::tests::running_on(&cluster.jm, healthy),
            resource_id: healthy,
            allocations: cluster
                .jm
                .held_slots()
                .iter()
                .filter(|slot| slot.resource_id == healthy)
                .map(|slot| slot.allocation)
                .collect(),
        };
        cluster.message(Address::TaskExecutor(healthy), heartbeat);
        cluster.report_all(&[ExecutionState::Running], ExecutionState::Finished);
    }
}
