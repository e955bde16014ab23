//! Scenario tests of the ResourceManager, one property each, through a small harness.

use super::*;
use crate::ids::Hex128;
use crate::protocol::SlotStatus;

pub(super) const EPOCH: Epoch = Epoch(3);

pub(super) fn te(n: u128) -> ResourceId {
    ResourceId(Hex128(0x7e00 + n))
}

pub(super) fn job(n: u128) -> JobId {
    JobId(Hex128(0x1b00 + n))
}

pub(super) fn alloc(n: u128) -> AllocationId {
    AllocationId(Hex128(0xa100 + n))
}

fn free_report(slots: u32) -> Vec<SlotStatus> {
    (0..slots).map(|slot| SlotStatus { slot: SlotIndex(slot), allocation: None }).collect()
}

/// Drives one ResourceManager with a virtual clock; checks the invariants after every input.
struct Harness {
    rm: ResourceManager,
    now: Time,
    check_each_step: bool,
}

impl Harness {
    fn new() -> Harness {
        Harness { rm: ResourceManager::new(&Config::default(), EPOCH), now: Time::ZERO, check_each_step: true }
    }

    fn handle(&mut self, input: Input) -> Vec<Output> {
        self.rm.handle(self.now, input);
        if self.check_each_step {
            self.rm.check_invariants().unwrap();
        }
        std::iter::from_fn(|| self.rm.poll_output()).collect()
    }

    fn advance_to(&mut self, time: Time) -> Vec<Output> {
        self.now = time;
        self.handle(Input::Tick)
    }

    fn advance(&mut self, span: Duration) -> Vec<Output> {
        self.advance_to(self.now.after(span))
    }

    fn te_sends(&mut self, resource_id: ResourceId, message: ResourceManagerMessage) -> Vec<Output> {
        self.handle(Input::Message { from: Address::TaskExecutor(resource_id), epoch: EPOCH, message })
    }

    fn jm_sends(&mut self, job_id: JobId, message: ResourceManagerMessage) -> Vec<Output> {
        self.handle(Input::Message { from: Address::JobMaster(job_id), epoch: EPOCH, message })
    }

    fn register_with(&mut self, resource_id: ResourceId, slots: u32, slot_report: Vec<SlotStatus>) -> Vec<Output> {
        let resources = WorkerResources { slots, managed_memory_bytes: 1 << 20 };
        self.te_sends(resource_id, ResourceManagerMessage::RegisterTaskExecutor { resource_id, resources, slot_report })
    }

    fn register(&mut self, resource_id: ResourceId, slots: u32) -> Vec<Output> {
        self.register_with(resource_id, slots, free_report(slots))
    }

    fn heartbeat(&mut self, resource_id: ResourceId, slot_report: Vec<SlotStatus>) -> Vec<Output> {
        self.te_sends(resource_id, ResourceManagerMessage::TaskExecutorHeartbeat { resource_id, slot_report })
    }

    fn request(&mut self, job_id: JobId, allocation: AllocationId) -> Vec<Output> {
        self.jm_sends(job_id, ResourceManagerMessage::RequestSlot { job_id, allocation })
    }

    fn answer(&mut self, resource_id: ResourceId, allocation: AllocationId, accepted: bool) -> Vec<Output> {
        self.te_sends(resource_id, ResourceManagerMessage::SlotRequestResult { resource_id, allocation, accepted })
    }

    fn state(&self, resource_id: ResourceId, slot: u32) -> SlotState {
        self.rm.task_manager(resource_id).unwrap().slots[slot as usize]
    }
}

/// Messages sent to `to`, in order.
fn sent_to(outputs: &[Output], to: Address) -> Vec<Message> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(envelope) if envelope.to == to => Some(envelope.message.clone()),
            _ => None,
        })
        .collect()
}

/// The slot requests sent to TaskExecutors: (TaskManager, slot, job, allocation).
fn slot_requests(outputs: &[Output]) -> Vec<(ResourceId, u32, JobId, AllocationId)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(Envelope {
                to: Address::TaskExecutor(resource_id),
                message: Message::TaskExecutor(TaskExecutorMessage::RequestSlot { slot, job_id, allocation }),
                ..
            }) => Some((*resource_id, slot.0, *job_id, *allocation)),
            _ => None,
        })
        .collect()
}

fn events(outputs: &[Output]) -> Vec<Event> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Event(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn heartbeat_period() -> Duration {
    Config::default().heartbeat.interval
}

fn heartbeat_timeout() -> Duration {
    Config::default().heartbeat.timeout
}

#[test]
fn registration_is_accepted_and_announced() {
    let mut h = Harness::new();
    let outputs = h.register(te(1), 2);
    assert_eq!(
        sent_to(&outputs, Address::TaskExecutor(te(1))),
        vec![Message::TaskExecutor(TaskExecutorMessage::RegistrationAccepted)]
    );
    assert_eq!(events(&outputs), vec![Event::TaskManagerRegistered { resource_id: te(1) }]);
    assert_eq!((h.rm.slots_total(), h.rm.slots_free()), (2, 2));
    assert_eq!(h.rm.task_managers()[0].slots, vec![SlotState::Free, SlotState::Free]);
    for output in &outputs {
        if let Output::Send(envelope) = output {
            assert_eq!((envelope.from, envelope.epoch), (Address::ResourceManager, EPOCH));
        }
    }
}

#[test]
fn registration_without_slots_or_with_too_many_is_rejected() {
    let mut h = Harness::new();
    for slots in [0, MAX_SLOTS_PER_TASK_MANAGER + 1] {
        let outputs = h.register(te(1), slots);
        let replies = sent_to(&outputs, Address::TaskExecutor(te(1)));
        assert!(
            matches!(replies.as_slice(), [Message::TaskExecutor(TaskExecutorMessage::RegistrationRejected { .. })]),
            "{replies:?}"
        );
        assert!(!h.rm.is_registered(te(1)));
    }
}

#[test]
fn registrations_beyond_the_task_manager_bound_are_rejected() {
    let mut h = Harness::new();
    h.check_each_step = false; // O(n) per step would make this quadratic.
    for n in 0..MAX_TASK_MANAGERS as u128 {
        h.register(te(n), 1);
    }
    h.rm.check_invariants().unwrap();
    let outputs = h.register(te(MAX_TASK_MANAGERS as u128), 1);
    let replies = sent_to(&outputs, Address::TaskExecutor(te(MAX_TASK_MANAGERS as u128)));
    assert!(matches!(replies.as_slice(), [Message::TaskExecutor(TaskExecutorMessage::RegistrationRejected { .. })]));
    // A registered TaskManager may still re-register.
    let outputs = h.register(te(0), 1);
    let replies = sent_to(&outputs, Address::TaskExecutor(te(0)));
    assert_eq!(replies, vec![Message::TaskExecutor(TaskExecutorMessage::RegistrationAccepted)]);
    assert_eq!(h.rm.task_managers().len(), MAX_TASK_MANAGERS);
    h.rm.check_invariants().unwrap();
}

#[test]
fn heartbeat_requests_go_to_every_task_manager_every_interval() {
    let mut h = Harness::new();
    h.register(te(1), 1);
    h.register(te(2), 1);
    assert_eq!(h.rm.poll_timeout(), Some(Time::ZERO.after(heartbeat_period())));
    let early = h.advance_to(Time(heartbeat_period().as_micros() - 1));
    assert!(early.is_empty(), "{early:?}");
    for round in 1..=3u64 {
        let outputs = h.advance_to(Time::ZERO.after(heartbeat_period().saturating_mul(round)));
        let heartbeat = Message::TaskExecutor(TaskExecutorMessage::ResourceManagerHeartbeat);
        assert_eq!(sent_to(&outputs, Address::TaskExecutor(te(1))), vec![heartbeat.clone()]);
        assert_eq!(sent_to(&outputs, Address::TaskExecutor(te(2))), vec![heartbeat]);
        h.heartbeat(te(1), free_report(1));
        h.heartbeat(te(2), free_report(1));
    }
}

#[test]
fn answered_heartbeats_keep_a_task_manager_registered() {
    let mut h = Harness::new();
    h.register(te(1), 1);
    for _ in 0..20 {
        h.advance(heartbeat_period());
        h.heartbeat(te(1), free_report(1));
    }
    assert!(h.rm.is_registered(te(1)));
}

#[test]
fn silent_task_manager_is_lost_at_the_heartbeat_timeout_and_not_before() {
    let mut h = Harness::new();
    h.register(te(1), 1);
    h.advance_to(Time(heartbeat_timeout().as_micros() - 1));
    assert!(h.rm.is_registered(te(1)));
    let outputs = h.advance_to(Time::ZERO.after(heartbeat_timeout()));
    assert!(!h.rm.is_registered(te(1)));
    assert!(
        matches!(events(&outputs).as_slice(), [Event::TaskManagerLost { resource_id, .. }] if *resource_id == te(1))
    );
    let told = sent_to(&outputs, Address::TaskExecutor(te(1)));
    assert!(matches!(told.as_slice(), [Message::TaskExecutor(TaskExecutorMessage::DisconnectResourceManager { .. })]));
    assert_eq!((h.rm.slots_total(), h.rm.slots_free()), (0, 0));
    assert_eq!(h.rm.poll_timeout(), None);
}

#[test]
fn lost_task_manager_frees_its_slots_tells_its_jobs_and_requeues_its_requests() {
    let mut h = Harness::new();
    h.register(te(1), 2);
    h.request(job(1), alloc(1));
    h.answer(te(1), alloc(1), true);
    h.request(job(2), alloc(2)); // Asked of te(1) slot 1, never answered.
    h.request(job(3), alloc(3)); // Queued: no slot left.
    assert_eq!(h.state(te(1), 1), SlotState::Pending { allocation: alloc(2), job_id: job(2) });
    h.advance(Duration::from_secs(1));
    h.register(te(2), 2); // alloc(3) is asked of its slot 0.
    assert_eq!(h.state(te(2), 0), SlotState::Pending { allocation: alloc(3), job_id: job(3) });
    // te(2) answers its heartbeats; te(1) stays silent and is lost.
    let mut outputs = Vec::new();
    while h.rm.is_registered(te(1)) {
        outputs = h.advance(heartbeat_period());
        h.heartbeat(te(2), free_report(2));
    }
    let lost = |to: JobId| {
        matches!(
            sent_to(&outputs, Address::JobMaster(to)).as_slice(),
            [Message::JobMaster(JobMasterMessage::TaskManagerLost { resource_id, .. })] if *resource_id == te(1)
        )
    };
    assert!(lost(job(1)) && lost(job(2)), "{outputs:?}");
    assert!(sent_to(&outputs, Address::JobMaster(job(3))).is_empty());
    assert!(h.rm.allocations_of(job(1)).is_empty());
    // alloc(2) went back to the queue and took te(2)'s other slot.
    assert_eq!(slot_requests(&outputs), vec![(te(2), 1, job(2), alloc(2))]);
    assert_eq!(
        h.rm.pending_requests().iter().map(|request| request.allocation).collect::<Vec<_>>(),
        [alloc(2), alloc(3)]
    );
}

#[test]
fn disconnecting_task_executor_is_removed_like_a_lost_one() {
    let mut h = Harness::new();
    h.register(te(1), 1);
    h.request(job(1), alloc(1));
    h.answer(te(1), alloc(1), true);
    let reason = "shutting down".to_string();
    let outputs = h
        .te_sends(te(1), ResourceManagerMessage::DisconnectTaskExecutor { resource_id: te(1), reason: reason.clone() });
    assert!(!h.rm.is_registered(te(1)));
    assert_eq!(events(&outputs), vec![Event::TaskManagerLost { resource_id: te(1), reason: reason.clone() }]);
    assert_eq!(
        sent_to(&outputs, Address::JobMaster(job(1))),
        vec![Message::JobMaster(JobMasterMessage::TaskManagerLost { resource_id: te(1), reason })]
    );
}

#[test]
fn matching_fills_one_task_manager_before_the_next_in_registration_order() {
    let mut h = Harness::new();
    h.register(te(9), 3); // Registered first despite the larger id.
    h.register(te(1), 3);
    let mut asked = Vec::new();
    for n in 0..5 {
        asked.extend(slot_requests(&h.request(job(n % 2), alloc(n))));
    }
    let expected = vec![
        (te(9), 0, job(0), alloc(0)),
        (te(9), 1, job(1), alloc(1)),
        (te(9), 2, job(0), alloc(2)),
        (te(1), 0, job(1), alloc(3)),
        (te(1), 1, job(0), alloc(4)),
    ];
    assert_eq!(asked, expected);
}

#[test]
fn same_inputs_give_the_same_matches() {
    let run = || {
        let mut h = Harness::new();
        let mut outputs = Vec::new();
        for n in 0..4 {
            outputs.extend(h.register(te(7 - n), 2));
        }
        for n in 0..10 {
            outputs.extend(h.request(job(n % 3), alloc(n)));
        }
        slot_requests(&outputs)
    };
    let first = run();
    assert_eq!(first.len(), 8);
    assert_eq!(first, run());
}

#[test]
fn slot_request_fails_exactly_at_the_slot_request_timeout() {
    let mut h = Harness::new();
    h.advance_to(Time(7));
    h.request(job(1), alloc(1));
    let deadline = Time(7).after(Duration::from_secs(300));
    assert_eq!(h.rm.poll_timeout(), Some(deadline));
    assert!(h.advance_to(Time(deadline.0 - 1)).is_empty());
    assert_eq!(h.rm.pending_request_count(), 1);
    let outputs = h.advance_to(deadline);
    let reason = "could not acquire a slot within slot.request.timeout (5 min)".to_string();
    assert_eq!(
        sent_to(&outputs, Address::JobMaster(job(1))),
        vec![Message::JobMaster(JobMasterMessage::SlotRequestFailed { allocation: alloc(1), reason })]
    );
    assert_eq!(h.rm.pending_request_count(), 0);
    assert!(h.advance(Duration::from_secs(600)).is_empty());
}

#[test]
fn refused_slot_request_is_requeued_at_its_place_and_served_elsewhere() {
    let mut h = Harness::new();
    h.register(te(1), 1);
    assert_eq!(slot_requests(&h.request(job(1), alloc(1))), vec![(te(1), 0, job(1), alloc(1))]);
    h.request(job(2), alloc(2)); // Queued behind alloc(1).
    let outputs = h.answer(te(1), alloc(1), false);
    assert!(slot_requests(&outputs).is_empty(), "the refusing slot is not asked again: {outputs:?}");
    assert_eq!(h.state(te(1), 0), SlotState::Free);
    let outputs = h.register(te(2), 1);
    assert_eq!(slot_requests(&outputs), vec![(te(2), 0, job(1), alloc(1))]);
    h.answer(te(2), alloc(1), true);
    assert_eq!(h.rm.allocations_of(job(1)), vec![(te(2), SlotIndex(0), alloc(1))]);
    // te(1)'s next report says its slot is free after all: alloc(2) gets it.
    let outputs = h.heartbeat(te(1), free_report(1));
    assert_eq!(slot_requests(&outputs), vec![(te(1), 0, job(2), alloc(2))]);
}

#[test]
fn unanswered_slot_request_is_asked_elsewhere_after_the_heartbeat_timeout() {
    let mut h = Harness::new();
    h.register(te(1), 1);
    h.register(te(2), 1);
    h.request(job(1), alloc(1));
    h.request(job(2), alloc(2));
    h.answer(te(2), alloc(2), true);
    let held = vec![SlotStatus { slot: SlotIndex(0), allocation: Some((alloc(2), job(2))) }];
    // te(1) answers heartbeats (its reports predate the request) but never the request.
    while h.now < Time::ZERO.after(Duration::from_secs(40)) {
        h.advance(heartbeat_period());
        h.heartbeat(te(1), free_report(1));
        h.heartbeat(te(2), held.clone());
    }
    h.advance_to(Time(heartbeat_timeout().as_micros() - 1));
    assert_eq!(h.rm.pending_requests()[0].asked_of, Some((te(1), SlotIndex(0))));
    h.advance_to(Time::ZERO.after(heartbeat_timeout()));
    assert_eq!(h.rm.pending_requests()[0].asked_of, None, "re-queued after heartbeat.timeout");
    assert!(h.rm.is_registered(te(1)));
    let outputs = free_slot(&mut h, te(2), 0, alloc(2));
    assert_eq!(slot_requests(&outputs), vec![(te(2), 0, job(1), alloc(1))]);
}

fn free_slot(h: &mut Harness, resource_id: ResourceId, slot: u32, allocation: AllocationId) -> Vec<Output> {
    h.te_sends(resource_id, ResourceManagerMessage::SlotFreed { resource_id, slot: SlotIndex(slot), allocation })
}

#[test]
fn freed_slot_serves_the_oldest_waiting_request() {
    let mut h = Harness::new();
    h.register(te(1), 1);
    h.request(job(1), alloc(1));
    h.answer(te(1), alloc(1), true);
    h.request(job(2), alloc(2));
    h.request(job(1), alloc(3));
    assert!(free_slot(&mut h, te(1), 0, alloc(9)).is_empty(), "a SlotFreed for another allocation is stale");
    assert_eq!(h.state(te(1), 0), SlotState::Allocated { allocation: alloc(1), job_id: job(1) });
    let outputs = free_slot(&mut h, te(1), 0, alloc(1));
    assert_eq!(slot_requests(&outputs), vec![(te(1), 0, job(2), alloc(2))]);
}

#[test]
fn unknown_task_executor_is_told_to_register_again() {
    let mut h = Harness::new();
    let messages = [
        ResourceManagerMessage::TaskExecutorHeartbeat { resource_id: te(5), slot_report: free_report(1) },
        ResourceManagerMessage::SlotFreed { resource_id: te(5), slot: SlotIndex(0), allocation: alloc(1) },
        ResourceManagerMessage::SlotRequestResult { resource_id: te(5), allocation: alloc(1), accepted: true },
    ];
    for message in messages {
        let outputs = h.te_sends(te(5), message);
        let replies = sent_to(&outputs, Address::TaskExecutor(te(5)));
        assert!(
            matches!(
                replies.as_slice(),
                [Message::TaskExecutor(TaskExecutorMessage::DisconnectResourceManager { .. })]
            ),
            "{replies:?}"
        );
    }
    assert!(!h.rm.is_registered(te(5)));
}

#[test]
fn messages_of_another_epoch_or_with_a_forged_sender_are_ignored() {
    let mut h = Harness::new();
    let resources = WorkerResources { slots: 1, managed_memory_bytes: 0 };
    let register =
        ResourceManagerMessage::RegisterTaskExecutor { resource_id: te(1), resources, slot_report: free_report(1) };
    let stale = Input::Message { from: Address::TaskExecutor(te(1)), epoch: Epoch(2), message: register.clone() };
    assert!(h.handle(stale).is_empty());
    let forged = Input::Message { from: Address::TaskExecutor(te(2)), epoch: EPOCH, message: register };
    assert!(h.handle(forged).is_empty());
    let request = ResourceManagerMessage::RequestSlot { job_id: job(1), allocation: alloc(1) };
    assert!(h.jm_sends(job(2), request).is_empty());
    assert!(!h.rm.is_registered(te(1)));
    assert_eq!(h.rm.pending_request_count(), 0);
}

#[test]
fn heartbeat_reports_reconcile_the_slot_table() {
    let mut h = Harness::new();
    h.register(te(1), 3);
    let holds = |slot, n| SlotStatus { slot: SlotIndex(slot), allocation: Some((alloc(n), job(n))) };
    let free = |slot| SlotStatus { slot: SlotIndex(slot), allocation: None };
    h.heartbeat(te(1), vec![free(0), holds(1, 1), holds(2, 2)]);
    assert_eq!(h.state(te(1), 1), SlotState::Allocated { allocation: alloc(1), job_id: job(1) });
    assert_eq!(h.rm.allocations_of(job(2)), vec![(te(1), SlotIndex(2), alloc(2))]);
    assert_eq!(h.rm.slots_free(), 1);
    // The TaskExecutor freed slot 1 and moved nothing else; the SlotFreed message got lost.
    h.heartbeat(te(1), vec![free(0), free(1), holds(2, 2)]);
    assert_eq!(h.state(te(1), 1), SlotState::Free);
    assert_eq!(h.rm.slots_free(), 2);
    // A request waiting for its slot is served by a report that shows it held.
    h.request(job(3), alloc(3));
    assert_eq!(h.state(te(1), 0), SlotState::Pending { allocation: alloc(3), job_id: job(3) });
    h.heartbeat(te(1), vec![free(0), free(1), holds(2, 2)]);
    assert_eq!(h.state(te(1), 0), SlotState::Pending { allocation: alloc(3), job_id: job(3) }, "report predates ask");
    h.heartbeat(te(1), vec![holds(0, 3), free(1), holds(2, 2)]);
    assert_eq!(h.state(te(1), 0), SlotState::Allocated { allocation: alloc(3), job_id: job(3) });
    assert_eq!(h.rm.pending_request_count(), 0);
}

#[test]
fn re_registration_replaces_the_slot_table_and_keeps_the_matching_place() {
    let mut h = Harness::new();
    h.register(te(1), 2);
    h.register(te(2), 2);
    h.request(job(1), alloc(1));
    h.answer(te(1), alloc(1), true);
    h.request(job(1), alloc(2)); // Pending on te(1) slot 1.
    // te(1) comes back with three slots: slot 2 holds alloc(2), alloc(1) is gone.
    let report = vec![SlotStatus { slot: SlotIndex(2), allocation: Some((alloc(2), job(1))) }];
    let outputs = h.register_with(te(1), 3, report);
    assert!(sent_to(&outputs, Address::JobMaster(job(1))).is_empty(), "re-registration is not a loss");
    assert_eq!(h.rm.allocations_of(job(1)), vec![(te(1), SlotIndex(2), alloc(2))]);
    assert_eq!(h.rm.pending_request_count(), 0);
    assert_eq!((h.rm.slots_total(), h.rm.slots_free()), (5, 4));
    assert_eq!(slot_requests(&h.request(job(2), alloc(3))), vec![(te(1), 0, job(2), alloc(3))]);
}

#[test]
fn cancel_and_job_master_disconnect_drop_requests() {
    let mut h = Harness::new();
    h.register(te(1), 1);
    h.request(job(1), alloc(1)); // Asked of te(1).
    h.request(job(1), alloc(2));
    h.request(job(2), alloc(3));
    h.jm_sends(job(2), ResourceManagerMessage::CancelSlotRequest { job_id: job(1), allocation: alloc(2) });
    assert_eq!(h.rm.pending_request_count(), 3, "only the requesting job may cancel");
    h.jm_sends(job(1), ResourceManagerMessage::CancelSlotRequest { job_id: job(1), allocation: alloc(2) });
    assert_eq!(h.rm.pending_request_count(), 2);
    h.jm_sends(job(1), ResourceManagerMessage::DisconnectJobMaster { job_id: job(1) });
    let left: Vec<_> = h.rm.pending_requests().iter().map(|request| request.allocation).collect();
    assert_eq!(left, vec![alloc(3)]);
    // The slot asked for alloc(1) waits for te(1) to say it is free before alloc(3) gets it.
    assert_eq!(h.state(te(1), 0), SlotState::Free);
    let outputs = h.heartbeat(te(1), free_report(1));
    assert_eq!(slot_requests(&outputs), vec![(te(1), 0, job(2), alloc(3))]);
}

#[test]
fn duplicate_requests_are_ignored_and_a_foreign_allocation_id_is_refused() {
    let mut h = Harness::new();
    h.register(te(1), 2);
    assert_eq!(slot_requests(&h.request(job(1), alloc(1))).len(), 1);
    assert!(h.request(job(1), alloc(1)).is_empty());
    h.answer(te(1), alloc(1), true);
    assert!(h.request(job(1), alloc(1)).is_empty());
    let outputs = h.request(job(2), alloc(1));
    assert!(matches!(
        sent_to(&outputs, Address::JobMaster(job(2))).as_slice(),
        [Message::JobMaster(JobMasterMessage::SlotRequestFailed { allocation, .. })] if *allocation == alloc(1)
    ));
    assert_eq!(h.rm.pending_request_count(), 0);
}

#[test]
fn requests_beyond_the_pending_bound_fail_at_once() {
    let mut h = Harness::new();
    h.check_each_step = false;
    for n in 0..MAX_PENDING_REQUESTS as u128 {
        h.request(job(1), alloc(n));
    }
    h.rm.check_invariants().unwrap();
    let over = alloc(MAX_PENDING_REQUESTS as u128);
    let outputs = h.request(job(1), over);
    assert!(matches!(
        sent_to(&outputs, Address::JobMaster(job(1))).as_slice(),
        [Message::JobMaster(JobMasterMessage::SlotRequestFailed { allocation, .. })] if *allocation == over
    ));
    assert_eq!(h.rm.pending_request_count(), MAX_PENDING_REQUESTS);
}

#[test]
fn workers_needed_is_emitted_when_the_deficit_grows() {
    let mut h = Harness::new();
    let needed = |outputs: &[Output]| {
        events(outputs)
            .into_iter()
            .filter_map(|event| match event {
                Event::WorkersNeeded { count } => Some(count),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(needed(&h.request(job(1), alloc(1))), vec![1], "one slot per worker when none is registered");
    assert_eq!(needed(&h.request(job(1), alloc(2))), vec![2]);
    h.register(te(1), 2); // Both requests get a slot: the deficit is gone.
    assert!(h.rm.pending_requests().iter().all(|request| request.asked_of.is_some()));
    assert_eq!(needed(&h.request(job(1), alloc(3))), vec![1]);
    assert!(needed(&h.request(job(1), alloc(4))).is_empty(), "two slots per worker: still one worker");
    assert_eq!(needed(&h.request(job(1), alloc(5))), vec![2]);
}

/// Advances second by second to `end`, answering heartbeats with `report`; returns when
/// [`Event::WorkerIdle`] was emitted.
fn idle_reports_until(h: &mut Harness, end: Time, report: &[SlotStatus]) -> Vec<Time> {
    let mut reported = Vec::new();
    while h.now < end {
        let step = Duration::from_secs(1).min(end.since(h.now));
        let outputs = h.advance(step);
        if events(&outputs).iter().any(|event| matches!(event, Event::WorkerIdle { .. })) {
            reported.push(h.now);
        }
        h.heartbeat(te(1), report.to_vec());
    }
    reported
}

#[test]
fn idle_task_manager_is_reported_once_until_it_gets_a_slot_again() {
    let mut h = Harness::new();
    let idle_timeout = Config::default().resource_manager.task_manager_timeout;
    h.register(te(1), 1);
    let reported = idle_reports_until(&mut h, Time::ZERO.after(Duration::from_secs(120)), &free_report(1));
    assert_eq!(reported, vec![Time::ZERO.after(idle_timeout)]);
    h.request(job(1), alloc(1));
    h.answer(te(1), alloc(1), true);
    let held = vec![SlotStatus { slot: SlotIndex(0), allocation: Some((alloc(1), job(1))) }];
    let busy_until = h.now.after(Duration::from_secs(60));
    assert!(idle_reports_until(&mut h, busy_until, &held).is_empty(), "busy TaskManagers are not idle");
    free_slot(&mut h, te(1), 0, alloc(1));
    let freed_at = h.now;
    let reported = idle_reports_until(&mut h, freed_at.after(Duration::from_secs(120)), &free_report(1));
    assert_eq!(reported, vec![freed_at.after(idle_timeout)]);
}

#[test]
fn twenty_thousand_requests_are_matched_to_twenty_thousand_free_slots() {
    let mut h = Harness::new();
    h.check_each_step = false;
    for n in 0..20 {
        h.register(te(n), 1_000);
    }
    let mut asked = 0;
    for n in 0..20_000 {
        asked += slot_requests(&h.request(job(n % 7), alloc(n))).len();
    }
    assert_eq!(asked, 20_000);
    assert_eq!(h.rm.slots_free(), 0);
    for n in 0..20_000u128 {
        let (resource_id, slot) = h.rm.allocations[&alloc(n)];
        assert_eq!((resource_id, slot), (te(n / 1_000), SlotIndex((n % 1_000) as u32)));
        h.answer(resource_id, alloc(n), true);
    }
    assert_eq!(h.rm.pending_request_count(), 0);
    assert_eq!(h.rm.allocations_of(job(0)).len(), 20_000 / 7 + 1);
    h.rm.check_invariants().unwrap();
}
