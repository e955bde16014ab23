use super::*;
use crate::ids::{Hex128, ResourceId, SlotIndex};
use crate::job::builder::StreamEnvironment;
use crate::protocol::{
    DispatcherMessage, JobMasterMessage, JobStatus, JobSubmission, SlotOffer, SlotStatus, WorkerResources,
};
use proptest::prelude::*;

const EPOCH: Epoch = Epoch(3);

fn job_manager() -> JobManager {
    let mut raw = RawConfig::new();
    raw.set("heartbeat.interval", "1 s");
    raw.set("heartbeat.timeout", "5 s");
    JobManager::new(raw, ClusterMode::Session, EPOCH, 9).expect("valid configuration")
}

fn drain(job_manager: &mut JobManager) -> Vec<Output> {
    std::iter::from_fn(|| job_manager.poll_output()).collect()
}

fn tm(n: u128) -> ResourceId {
    ResourceId(Hex128(n))
}

fn register(n: u128, epoch: Epoch) -> Envelope {
    let message = ResourceManagerMessage::RegisterTaskExecutor {
        resource_id: tm(n),
        resources: WorkerResources { slots: 2, managed_memory_bytes: 0 },
        slot_report: vec![
            SlotStatus { slot: SlotIndex(0), allocation: None },
            SlotStatus { slot: SlotIndex(1), allocation: None },
        ],
    };
    Envelope {
        from: Address::TaskExecutor(tm(n)),
        to: Address::ResourceManager,
        epoch,
        message: Message::ResourceManager(message),
    }
}

fn sent_to(outputs: &[Output], to: Address) -> Vec<&Message> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(envelope) if envelope.to == to => Some(&envelope.message),
            _ => None,
        })
        .collect()
}

fn small_submission(parallelism: u32) -> JobSubmission {
    let env = StreamEnvironment::new("small");
    env.sequence(0, 9).discard();
    let graph = env.build().expect("valid").graph;
    JobSubmission { job_id: None, graph, parallelism: Some(parallelism), config: Default::default(), savepoint: None }
}

#[test]
fn a_registration_is_accepted_before_the_task_executor_knows_the_epoch() {
    let mut job_manager = job_manager();
    job_manager.handle(Time(1), Input::Message(register(1, Epoch(0))));
    let outputs = drain(&mut job_manager);
    let replies = sent_to(&outputs, Address::TaskExecutor(tm(1)));
    assert_eq!(replies, [&Message::TaskExecutor(TaskExecutorMessage::RegistrationAccepted)]);
    assert!(
        outputs.iter().all(|output| !matches!(output, Output::Send(e) if e.epoch != EPOCH)),
        "every envelope carries the epoch"
    );
}

#[test]
fn task_executor_messages_from_another_epoch_are_dropped() {
    let mut job_manager = job_manager();
    job_manager.handle(Time(1), Input::Message(register(1, Epoch(0))));
    drain(&mut job_manager);
    let stale = Envelope {
        from: Address::TaskExecutor(tm(1)),
        to: Address::ResourceManager,
        epoch: Epoch(2),
        message: Message::ResourceManager(ResourceManagerMessage::DisconnectTaskExecutor {
            resource_id: tm(1),
            reason: "stale".into(),
        }),
    };
    job_manager.handle(Time(2), Input::Message(stale));
    assert!(job_manager.resource_manager().is_registered(tm(1)), "a stale disconnect changes nothing");
}

#[test]
fn nobody_outside_speaks_for_the_job_managers_roles() {
    let mut job_manager = job_manager();
    let forged = Envelope {
        from: Address::Dispatcher,
        to: Address::ResourceManager,
        epoch: EPOCH,
        message: Message::ResourceManager(ResourceManagerMessage::DisconnectJobMaster { job_id: JobId(Hex128(1)) }),
    };
    job_manager.handle(Time(1), Input::Message(forged));
    assert!(drain(&mut job_manager).is_empty());
}

#[test]
fn offers_to_a_job_that_is_gone_are_refused_so_the_slots_are_freed() {
    let mut job_manager = job_manager();
    let job_id = JobId(Hex128(77));
    let allocation = crate::ids::AllocationId(Hex128(5));
    let offer = Envelope {
        from: Address::TaskExecutor(tm(1)),
        to: Address::JobMaster(job_id),
        epoch: EPOCH,
        message: Message::JobMaster(JobMasterMessage::OfferSlots {
            resource_id: tm(1),
            offers: vec![SlotOffer { allocation, slot: SlotIndex(0) }],
            data_address: String::new(),
        }),
    };
    job_manager.handle(Time(1), Input::Message(offer));
    let outputs = drain(&mut job_manager);
    let expected = Message::TaskExecutor(TaskExecutorMessage::SlotOfferResult {
        job_id,
        accepted: Vec::new(),
        rejected: vec![allocation],
    });
    assert_eq!(sent_to(&outputs, Address::TaskExecutor(tm(1))), [&expected]);
}

#[test]
fn a_submitted_job_gets_a_job_master_that_asks_for_slots() {
    let mut job_manager = job_manager();
    let submission = small_submission(2);
    let message = Message::Dispatcher(DispatcherMessage::Submit { request: 1, submission: Box::new(submission) });
    let envelope = Envelope { from: Address::Client(1), to: Address::Dispatcher, epoch: Epoch(0), message };
    job_manager.handle(Time(1), Input::Message(envelope));
    drain(&mut job_manager);
    assert_eq!(job_manager.job_masters().len(), 1);
    let pending = job_manager.resource_manager().pending_request_count();
    assert_eq!(pending, 2, "two shared slots requested from the ResourceManager, inside the process");
    job_manager.check_invariants().unwrap();
}

/// Every role's whole state: the ResourceManager, the Dispatcher, then each JobMaster by job.
fn role_states(job_manager: &JobManager) -> Vec<(Option<JobId>, String)> {
    let mut states =
        vec![(None, format!("{:?}", job_manager.resource_manager)), (None, format!("{:?}", job_manager.dispatcher))];
    states
        .extend(job_manager.job_masters.iter().map(|(job_id, job_master)| (Some(*job_id), format!("{job_master:?}"))));
    states
}

proptest! {
    #[test]
    fn random_envelopes_never_panic_or_break_invariants(
        steps in prop::collection::vec((0u8..6, 0u128..3, 0u64..5, 0u64..3_000_000), 1..80),
    ) {
        let mut job_manager = job_manager();
        job_manager.check_reached_invariants().expect("a new JobManager is consistent");
        let mut now = Time(0);
        for (kind, n, epoch, advance) in steps {
            now = now.after(crate::time::Duration(advance));
            let input = match kind {
                0 => Input::Message(register(n, Epoch(epoch))),
                1 => Input::Tick,
                2 => Input::Message(Envelope {
                    from: Address::TaskExecutor(tm(n)),
                    to: Address::ResourceManager,
                    epoch: Epoch(epoch),
                    message: Message::ResourceManager(ResourceManagerMessage::TaskExecutorHeartbeat {
                        resource_id: tm(n),
                        slot_report: Vec::new(),
                    }),
                }),
                3 => {
                    let submission = Box::new(small_submission(1));
                    let submit = DispatcherMessage::Submit { request: n as u64, submission };
                    Input::Message(Envelope {
                        from: Address::Client(1),
                        to: Address::Dispatcher,
                        epoch: Epoch(0),
                        message: Message::Dispatcher(submit),
                    })
                }
                4 => Input::Message(Envelope {
                    from: Address::TaskExecutor(tm(n)),
                    to: Address::JobMaster(JobId(Hex128(n))),
                    epoch: Epoch(epoch),
                    message: Message::TaskExecutor(TaskExecutorMessage::RegistrationAccepted),
                }),
                _ => Input::Message(Envelope {
                    from: Address::Client(2),
                    to: Address::Dispatcher,
                    epoch: Epoch(epoch),
                    message: Message::Dispatcher(DispatcherMessage::List { request: 1 }),
                }),
            };
            let before = role_states(&job_manager);
            job_manager.handle(now, input);
            drain(&mut job_manager);
            prop_assert!(job_manager.check_invariants().is_ok(), "{:?}", job_manager.check_invariants());
            // The cheap check skips the roles the input did not reach: they must be unchanged.
            let reached = &job_manager.reached;
            for (role, state) in before.iter().zip(role_states(&job_manager)).filter_map(|(old, new)| {
                let skipped = match old.0 {
                    None if old.1.starts_with("ResourceManager") => !reached.resource_manager,
                    None => !reached.dispatcher,
                    Some(job_id) => !reached.job_masters.contains(&job_id),
                };
                (skipped && old.0 == new.0).then_some((old.0, (old.1.clone(), new.1)))
            }) {
                prop_assert_eq!(&state.0, &state.1, "{:?} changed but was not marked reached", role);
            }
            prop_assert!(job_manager.check_reached_invariants().is_ok());
            prop_assert!(job_manager.reached.job_masters.is_empty() && !job_manager.reached.resource_manager);
            if kind == 1 {
                // A tick handles everything due: no timer is left due, so a driver cannot spin.
                prop_assert!(job_manager.poll_timeout().is_none_or(|deadline| deadline > now));
            }
        }
    }
}

#[test]
fn a_submission_from_a_savepoint_reads_its_metadata_through_the_driver_and_fails_clearly_without_it() {
    let mut job_manager = job_manager();
    let mut submission = small_submission(1);
    submission.savepoint = Some("/sp/savepoint-1".to_string());
    let submit = Envelope {
        from: Address::Client(1),
        to: Address::Dispatcher,
        epoch: Epoch(0),
        message: Message::Dispatcher(DispatcherMessage::Submit { request: 1, submission: Box::new(submission) }),
    };
    job_manager.handle(Time(1), Input::Message(submit));
    let outputs = drain(&mut job_manager);
    let read = outputs.iter().find_map(|output| match output {
        Output::Storage(crate::protocol::StorageRequest::ReadMetadata { job_id, location }) => {
            Some((*job_id, location.clone()))
        }
        _ => None,
    });
    let Some((job_id, location)) = read else { panic!("the metadata is read first: {outputs:?}") };
    assert_eq!(location, "/sp/savepoint-1");
    assert_eq!(job_manager.dispatcher().jobs()[&job_id].status, JobStatus::Initializing);
    job_manager.check_invariants().unwrap_or_else(|broken| panic!("{broken}"));
    let reply = crate::protocol::StorageReply::MetadataRead { job_id, location, result: Err("not found".to_string()) };
    job_manager.handle(Time(2), Input::Storage(reply));
    drain(&mut job_manager);
    let job = &job_manager.dispatcher().jobs()[&job_id];
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.failure.as_deref().is_some_and(|failure| failure.contains("not found")), "{:?}", job.failure);
    assert!(job_manager.job_masters().is_empty());
    job_manager.check_invariants().unwrap_or_else(|broken| panic!("{broken}"));
}

fn submit_envelope(submission: JobSubmission) -> Envelope {
    let message = Message::Dispatcher(DispatcherMessage::Submit { request: 1, submission: Box::new(submission) });
    Envelope { from: Address::Client(1), to: Address::Dispatcher, epoch: Epoch(0), message }
}

fn ha_writes(job_manager: &mut JobManager) -> Vec<crate::ha::HaWrite> {
    std::iter::from_fn(|| job_manager.poll_ha_write()).collect()
}

#[test]
fn a_new_leader_resumes_the_recorded_jobs_and_not_the_finished_ones() {
    use crate::ha::{HaRecord, RecordStore};
    let mut leader = job_manager();
    leader.recover(Time(0), &Default::default());
    leader.handle(Time(1), Input::Message(submit_envelope(small_submission(1))));
    let mut store = RecordStore::new();
    let writes = ha_writes(&mut leader);
    assert!(matches!(writes.first().map(|w| &w.record), Some(HaRecord::JobGraph(_))), "graph first: {writes:?}");
    assert!(writes.iter().all(|write| write.epoch == EPOCH));
    for write in writes {
        store.apply(write).expect("the leader's epoch is current");
    }
    let job_id = *store.records().jobs.keys().next().expect("recorded");
    // A second job, already ended, is in the records too.
    let mut ended = small_submission(1);
    ended.job_id = Some(JobId(Hex128(77)));
    store.apply(crate::ha::HaWrite { epoch: EPOCH, record: HaRecord::JobGraph(Box::new(ended)) }).unwrap();
    let result = HaRecord::JobResult { job_id: JobId(Hex128(77)), status: JobStatus::Finished };
    store.apply(crate::ha::HaWrite { epoch: EPOCH, record: result }).unwrap();
    store
        .apply(crate::ha::HaWrite {
            epoch: EPOCH,
            record: HaRecord::CheckpointCounter { job_id, next: crate::ids::CheckpointId(9) },
        })
        .unwrap();

    let mut raw = RawConfig::new();
    raw.set("heartbeat.interval", "1 s");
    let mut successor = JobManager::new(raw, ClusterMode::Session, Epoch(EPOCH.0 + 1), 5).unwrap();
    store.observe_epoch(successor.epoch());
    successor.recover(Time(10), store.records());
    assert_eq!(successor.dispatcher().jobs().keys().copied().collect::<Vec<_>>(), vec![job_id]);
    assert!(successor.job_masters().contains_key(&job_id), "running again under the new leader");
    assert!(drain(&mut successor).iter().all(|output| !matches!(output, Output::Send(e) if e.to == RECOVERY_CLIENT)));
    // The deposed leader's late write is refused.
    leader.handle(Time(2), Input::Message(submit_envelope(small_submission(1))));
    for write in ha_writes(&mut leader) {
        assert!(store.apply(write).is_err(), "a stale epoch's write is refused");
    }
}
