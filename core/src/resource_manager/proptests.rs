//! The ResourceManager under random input: valid, duplicated, reordered, stale-epoch, forged and
//! nonsense messages, with ticks at random times. It never panics, keeps its invariants after
//! every step, answers only in its own epoch, and an early tick changes nothing.

use super::tests::{EPOCH, alloc, job, te};
use super::*;
use crate::protocol::SlotStatus;
use proptest::prelude::*;

/// A slot report entry over a small universe, so reports collide with requests and each other.
type ReportEntry = (u32, Option<(u8, u8)>);

#[derive(Clone, Debug)]
enum Step {
    Register {
        te: u8,
        slots: u32,
        report: Vec<ReportEntry>,
    },
    Heartbeat {
        te: u8,
        report: Vec<ReportEntry>,
    },
    /// A heartbeat that reports the table as the ResourceManager sees it (pending slots free).
    HonestHeartbeat {
        te: u8,
    },
    /// Answers one of the slot requests the ResourceManager sent so far.
    Answer {
        pick: usize,
        accepted: bool,
    },
    /// Frees one of the allocated slots, as its TaskExecutor would.
    FreeAllocated {
        pick: usize,
    },
    SlotFreed {
        te: u8,
        slot: u32,
        allocation: u8,
    },
    SlotRequestResult {
        te: u8,
        allocation: u8,
        accepted: bool,
    },
    DisconnectTaskExecutor {
        te: u8,
    },
    RequestSlot {
        job: u8,
        allocation: u8,
    },
    CancelSlotRequest {
        job: u8,
        allocation: u8,
    },
    DisconnectJobMaster {
        job: u8,
    },
    /// Sends an earlier input again (a duplicate, and reordered against what followed it).
    Replay {
        pick: usize,
    },
    /// A message in another leader's epoch.
    StaleEpoch {
        job: u8,
        allocation: u8,
    },
    /// A message whose sender is not the TaskExecutor it names.
    Forged {
        te: u8,
        from: u8,
    },
    Tick {
        advance_ms: u64,
    },
}

fn report() -> impl Strategy<Value = Vec<ReportEntry>> {
    prop::collection::vec((0u32..5, prop::option::weighted(0.4, (0u8..8, 0u8..2))), 0..5)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0u8..3, 0u32..5, report()).prop_map(|(te, slots, report)| Step::Register { te, slots, report }),
        1 => (0u8..4, report()).prop_map(|(te, report)| Step::Heartbeat { te, report }),
        3 => (0u8..3).prop_map(|te| Step::HonestHeartbeat { te }),
        4 => (any::<usize>(), prop::bool::weighted(0.7)).prop_map(|(pick, accepted)| Step::Answer { pick, accepted }),
        2 => any::<usize>().prop_map(|pick| Step::FreeAllocated { pick }),
        1 => (0u8..4, 0u32..5, 0u8..8).prop_map(|(te, slot, allocation)| Step::SlotFreed { te, slot, allocation }),
        1 => (0u8..4, 0u8..8, any::<bool>())
            .prop_map(|(te, allocation, accepted)| Step::SlotRequestResult { te, allocation, accepted }),
        1 => (0u8..4).prop_map(|te| Step::DisconnectTaskExecutor { te }),
        5 => (0u8..2, 0u8..8).prop_map(|(job, allocation)| Step::RequestSlot { job, allocation }),
        1 => (0u8..2, 0u8..8).prop_map(|(job, allocation)| Step::CancelSlotRequest { job, allocation }),
        1 => (0u8..2).prop_map(|job| Step::DisconnectJobMaster { job }),
        2 => any::<usize>().prop_map(|pick| Step::Replay { pick }),
        1 => (0u8..2, 0u8..8).prop_map(|(job, allocation)| Step::StaleEpoch { job, allocation }),
        1 => (0u8..3, 0u8..3).prop_map(|(te, from)| Step::Forged { te, from }),
        4 => prop_oneof![0u64..2_000, 0u64..60_000, 0u64..400_000].prop_map(|advance_ms| Step::Tick { advance_ms }),
    ]
}

fn slot_report(entries: &[ReportEntry]) -> Vec<SlotStatus> {
    entries
        .iter()
        .map(|(slot, held)| SlotStatus {
            slot: SlotIndex(*slot),
            allocation: held.map(|(allocation, owner)| (alloc(allocation.into()), job(owner.into()))),
        })
        .collect()
}

fn from_te(resource_id: ResourceId, message: ResourceManagerMessage) -> Input {
    Input::Message { from: Address::TaskExecutor(resource_id), epoch: EPOCH, message }
}

fn from_jm(job_id: JobId, message: ResourceManagerMessage) -> Input {
    Input::Message { from: Address::JobMaster(job_id), epoch: EPOCH, message }
}

/// The world around the ResourceManager: the clock, what it asked of TaskExecutors, what it was fed.
struct World {
    rm: ResourceManager,
    now: Time,
    asked: Vec<(ResourceId, AllocationId)>,
    inputs: Vec<Input>,
}

impl World {
    /// The report a TaskExecutor that did everything it was told would send.
    fn honest_report(&self, resource_id: ResourceId) -> Vec<SlotStatus> {
        let Some(view) = self.rm.task_manager(resource_id) else { return Vec::new() };
        let held = |state: SlotState| match state {
            SlotState::Allocated { allocation, job_id } => Some((allocation, job_id)),
            _ => None,
        };
        view.slots
            .iter()
            .enumerate()
            .map(|(slot, state)| SlotStatus { slot: SlotIndex(slot as u32), allocation: held(*state) })
            .collect()
    }

    fn allocated(&self) -> Vec<(ResourceId, SlotIndex, AllocationId)> {
        (0..2).flat_map(|n| self.rm.allocations_of(job(n))).collect()
    }

    /// The input a step stands for, or `None` when it picks from an empty list.
    fn input(&self, step: &Step) -> Option<Input> {
        use ResourceManagerMessage as M;
        Some(match step.clone() {
            Step::Register { te: n, slots, report } => {
                let resources = WorkerResources { slots, managed_memory_bytes: 0 };
                from_te(
                    te(n.into()),
                    M::RegisterTaskExecutor { resource_id: te(n.into()), resources, slot_report: slot_report(&report) },
                )
            }
            Step::Heartbeat { te: n, report } => from_te(
                te(n.into()),
                M::TaskExecutorHeartbeat { resource_id: te(n.into()), slot_report: slot_report(&report) },
            ),
            Step::HonestHeartbeat { te: n } => {
                let slot_report = self.honest_report(te(n.into()));
                from_te(te(n.into()), M::TaskExecutorHeartbeat { resource_id: te(n.into()), slot_report })
            }
            Step::Answer { pick, accepted } => {
                let &(resource_id, allocation) = self.asked.get(pick % self.asked.len().max(1))?;
                from_te(resource_id, M::SlotRequestResult { resource_id, allocation, accepted })
            }
            Step::FreeAllocated { pick } => {
                let allocated = self.allocated();
                let &(resource_id, slot, allocation) = allocated.get(pick % allocated.len().max(1))?;
                from_te(resource_id, M::SlotFreed { resource_id, slot, allocation })
            }
            Step::SlotFreed { te: n, slot, allocation } => {
                let resource_id = te(n.into());
                from_te(
                    resource_id,
                    M::SlotFreed { resource_id, slot: SlotIndex(slot), allocation: alloc(allocation.into()) },
                )
            }
            Step::SlotRequestResult { te: n, allocation, accepted } => {
                let resource_id = te(n.into());
                from_te(
                    resource_id,
                    M::SlotRequestResult { resource_id, allocation: alloc(allocation.into()), accepted },
                )
            }
            Step::DisconnectTaskExecutor { te: n } => {
                let resource_id = te(n.into());
                from_te(resource_id, M::DisconnectTaskExecutor { resource_id, reason: "random".into() })
            }
            Step::RequestSlot { job: n, allocation } => {
                from_jm(job(n.into()), M::RequestSlot { job_id: job(n.into()), allocation: alloc(allocation.into()) })
            }
            Step::CancelSlotRequest { job: n, allocation } => from_jm(
                job(n.into()),
                M::CancelSlotRequest { job_id: job(n.into()), allocation: alloc(allocation.into()) },
            ),
            Step::DisconnectJobMaster { job: n } => {
                from_jm(job(n.into()), M::DisconnectJobMaster { job_id: job(n.into()) })
            }
            Step::Replay { pick } => self.inputs.get(pick % self.inputs.len().max(1))?.clone(),
            Step::StaleEpoch { job: n, allocation } => Input::Message {
                from: Address::JobMaster(job(n.into())),
                epoch: Epoch(EPOCH.0 - 1),
                message: M::RequestSlot { job_id: job(n.into()), allocation: alloc(allocation.into()) },
            },
            Step::Forged { te: n, from } => Input::Message {
                from: Address::TaskExecutor(te(from.into())),
                epoch: EPOCH,
                message: M::DisconnectTaskExecutor { resource_id: te(n.into()), reason: "forged".into() },
            },
            Step::Tick { .. } => Input::Tick,
        })
    }

    /// Feeds one step and checks what must hold after it.
    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        if let Step::Tick { advance_ms } = step {
            self.now = self.now.after(Duration::from_millis(*advance_ms));
        }
        let Some(input) = self.input(step) else { return Ok(()) };
        let early_tick = input == Input::Tick && self.rm.poll_timeout().is_none_or(|deadline| self.now < deadline);
        // An early tick may only move the clock.
        let mut expected = self.rm.clone();
        expected.now = self.now;
        let before = format!("{expected:?}");
        self.rm.handle(self.now, input.clone());
        if !matches!(step, Step::Tick { .. } | Step::Replay { .. }) {
            self.inputs.push(input.clone());
        }
        let outputs: Vec<Output> = std::iter::from_fn(|| self.rm.poll_output()).collect();
        if let Err(violation) = self.rm.check_invariants() {
            return Err(TestCaseError::fail(format!("after {input:?}: {violation}")));
        }
        if early_tick {
            prop_assert!(outputs.is_empty(), "an early tick produced {outputs:?}");
            prop_assert_eq!(before, format!("{:?}", self.rm), "an early tick changed the state");
        }
        if input == Input::Tick {
            prop_assert!(self.rm.poll_timeout().is_none_or(|deadline| deadline > self.now), "a due timer was left");
        }
        self.observe(&outputs)
    }

    fn observe(&mut self, outputs: &[Output]) -> Result<(), TestCaseError> {
        for output in outputs {
            let Output::Send(envelope) = output else { continue };
            prop_assert_eq!((envelope.from, envelope.epoch), (Address::ResourceManager, EPOCH));
            if let Message::TaskExecutor(TaskExecutorMessage::RequestSlot { allocation, job_id, slot }) =
                envelope.message
            {
                let Address::TaskExecutor(resource_id) = envelope.to else {
                    return Err(TestCaseError::fail("a slot request went to a non-TaskExecutor"));
                };
                let state = self.rm.task_manager(resource_id).map(|view| view.slots[slot.index()]);
                prop_assert_eq!(state, Some(SlotState::Pending { allocation, job_id }));
                self.asked.push((resource_id, allocation));
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_break_the_invariants(steps in prop::collection::vec(step(), 1..120)) {
        let rm = ResourceManager::new(&Config::default(), EPOCH);
        let mut world = World { rm, now: Time::ZERO, asked: Vec::new(), inputs: Vec::new() };
        for step in &steps {
            world.step(step)?;
        }
    }
}
