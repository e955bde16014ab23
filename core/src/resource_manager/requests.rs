//! Slot requests of JobMasters: the FIFO queue, matching against free slots, and their timeouts.
//!
//! A request is *queued* until a confirmed free slot is matched to it, then *asked* of that slot's
//! TaskExecutor until the TaskExecutor accepts (the request is served and leaves), refuses or does
//! not answer within `heartbeat.timeout` (it goes back to the queue at its old position), or its
//! TaskManager is lost (likewise). It fails with `SlotRequestFailed` once `slot.request.timeout`
//! has passed since its arrival, queued or asked. Matching takes the oldest queued request and the
//! first free slot in (registration order, slot index) order, so it is deterministic and fills one
//! TaskManager before the next; both are ordered sets, so a match costs O(log n).

use super::registry::Slot;
use super::{MAX_PENDING_REQUESTS, PendingRequestView, ResourceManager};
use crate::ids::{AllocationId, JobId, ResourceId, SlotIndex};
use crate::protocol::{Event, JobMasterMessage, TaskExecutorMessage};
use crate::time::Time;

/// Where an outstanding request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// Waiting in the queue for a free slot.
    Queued,
    /// The TaskExecutor was asked for this slot at `asked_at` and has not answered.
    Asked {
        /// The TaskManager asked.
        resource_id: ResourceId,
        /// The slot asked for.
        slot: SlotIndex,
        /// When.
        asked_at: Time,
    },
}

/// An outstanding slot request of a JobMaster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) job_id: JobId,
    /// Arrival number: the position in the queue, kept when the request is re-queued.
    pub(super) seq: u64,
    pub(super) arrived_at: Time,
    /// `slot.request.timeout` after arrival.
    pub(super) deadline: Time,
    pub(super) placement: Placement,
}

impl Request {
    pub(super) fn view(&self, allocation: AllocationId) -> PendingRequestView {
        let asked_of = match self.placement {
            Placement::Queued => None,
            Placement::Asked { resource_id, slot, .. } => Some((resource_id, slot)),
        };
        PendingRequestView {
            allocation,
            job_id: self.job_id,
            arrived_at: self.arrived_at,
            deadline: self.deadline,
            asked_of,
        }
    }
}

impl ResourceManager {
    pub(super) fn on_request_slot(&mut self, job_id: JobId, allocation: AllocationId) {
        let holder = self.requests.get(&allocation).map(|request| request.job_id).or_else(|| {
            let &(resource_id, slot) = self.allocations.get(&allocation)?;
            self.task_managers[&resource_id].state(slot)?.allocation().map(|(_, job_id)| job_id)
        });
        let reason = match holder {
            Some(holder) if holder == job_id => return, // A duplicate of a request already known.
            Some(_) => format!("allocation id {allocation} is already used by another job"),
            None if self.requests.len() >= MAX_PENDING_REQUESTS => {
                format!("too many pending slot requests (the ResourceManager holds at most {MAX_PENDING_REQUESTS})")
            }
            None => return self.enqueue(job_id, allocation),
        };
        self.send_to_job_master(job_id, JobMasterMessage::SlotRequestFailed { allocation, reason });
    }

    fn enqueue(&mut self, job_id: JobId, allocation: AllocationId) {
        let seq = self.request_seq_next;
        self.request_seq_next += 1;
        let deadline = self.now.after(self.timeouts.slot_request);
        let request = Request { job_id, seq, arrived_at: self.now, deadline, placement: Placement::Queued };
        self.requests.insert(allocation, request);
        self.queue.insert(seq, allocation);
        self.request_deadlines.insert((deadline, allocation));
    }

    pub(super) fn on_cancel_slot_request(&mut self, job_id: JobId, allocation: AllocationId) {
        if self.requests.get(&allocation).is_some_and(|request| request.job_id == job_id) {
            self.drop_request(allocation);
        }
    }

    pub(super) fn on_disconnect_job_master(&mut self, job_id: JobId) {
        let dropped: Vec<AllocationId> = self
            .requests
            .iter()
            .filter(|(_, request)| request.job_id == job_id)
            .map(|(allocation, _)| *allocation)
            .collect();
        for allocation in dropped {
            self.drop_request(allocation);
        }
    }

    /// Removes a request and its queue entry and deadlines; the caller settles its slot, if any.
    pub(super) fn take_request(&mut self, allocation: AllocationId) -> Option<Request> {
        let request = self.requests.remove(&allocation)?;
        self.request_deadlines.remove(&(request.deadline, allocation));
        match request.placement {
            Placement::Queued => {
                let removed = self.queue.remove(&request.seq);
                assert_eq!(removed, Some(allocation), "queue out of step with the requests");
            }
            Placement::Asked { asked_at, .. } => {
                self.ask_deadlines.remove(&(asked_at.after(self.timeouts.heartbeat), allocation));
            }
        }
        Some(request)
    }

    /// Drops a request. A slot already asked for is left to the JobMaster/TaskExecutor flow to
    /// free; until its TaskExecutor reports it free, it is not matched again.
    fn drop_request(&mut self, allocation: AllocationId) {
        let Some(request) = self.take_request(allocation) else { return };
        if let Placement::Asked { resource_id, slot, .. } = request.placement {
            self.set_slot(resource_id, slot, Slot::UNCONFIRMED);
        }
    }

    /// Puts an asked request back in the queue at its old position; the caller settles the slot.
    pub(super) fn requeue(&mut self, allocation: AllocationId) {
        let heartbeat_timeout = self.timeouts.heartbeat;
        let Some(request) = self.requests.get_mut(&allocation) else {
            panic!("re-queueing unknown request {allocation}");
        };
        let Placement::Asked { asked_at, .. } = request.placement else {
            panic!("re-queueing request {allocation} that is already queued");
        };
        request.placement = Placement::Queued;
        self.ask_deadlines.remove(&(asked_at.after(heartbeat_timeout), allocation));
        let previous = self.queue.insert(request.seq, allocation);
        assert!(previous.is_none(), "two requests at one queue position");
    }

    pub(super) fn fail_timed_out_request(&mut self, allocation: AllocationId) {
        let Some(job_id) = self.requests.get(&allocation).map(|request| request.job_id) else {
            panic!("deadline of unknown request {allocation}");
        };
        self.drop_request(allocation);
        let reason = format!("could not acquire a slot within slot.request.timeout ({})", self.timeouts.slot_request);
        self.send_to_job_master(job_id, JobMasterMessage::SlotRequestFailed { allocation, reason });
    }

    /// The TaskExecutor did not answer a slot request in time: ask elsewhere.
    pub(super) fn retry_unanswered_ask(&mut self, allocation: AllocationId) {
        let Some(Placement::Asked { resource_id, slot, .. }) =
            self.requests.get(&allocation).map(|request| request.placement)
        else {
            panic!("ask deadline of request {allocation} that is not asked");
        };
        self.requeue(allocation);
        self.set_slot(resource_id, slot, Slot::UNCONFIRMED);
    }

    /// Matches queued requests to confirmed free slots, oldest request to first slot.
    pub(super) fn serve_queue(&mut self) {
        while !self.queue.is_empty() {
            let Some(&(order, slot)) = self.free_slots.first() else { break };
            let Some((_, allocation)) = self.queue.pop_first() else { break };
            let resource_id = self.registration_order[&order];
            let Some(request) = self.requests.get_mut(&allocation) else {
                panic!("queued request {allocation} is unknown");
            };
            let job_id = request.job_id;
            request.placement = Placement::Asked { resource_id, slot, asked_at: self.now };
            self.ask_deadlines.insert((self.now.after(self.timeouts.heartbeat), allocation));
            self.mark_pending(resource_id, slot, allocation, job_id);
            self.send_to_task_executor(resource_id, TaskExecutorMessage::RequestSlot { slot, job_id, allocation });
        }
    }

    /// Emits [`Event::WorkersNeeded`] when more TaskManagers are needed than at the last check.
    ///
    /// The count covers the whole deficit (queued requests minus matchable free slots), in
    /// TaskManagers of the size of the most recently registered one (one slot if none is).
    pub(super) fn check_workers_needed(&mut self) {
        let deficit = (self.queue.len() as u64).saturating_sub(self.free_slots.len() as u64);
        let slots_per_worker = self
            .registration_order
            .last_key_value()
            .map_or(1, |(_, resource_id)| self.task_managers[resource_id].resources.slots.max(1));
        let needed = u32::try_from(deficit.div_ceil(u64::from(slots_per_worker))).unwrap_or(u32::MAX);
        if needed > self.workers_needed_last {
            self.emit(Event::WorkersNeeded { count: needed });
        }
        self.workers_needed_last = needed;
    }
}
