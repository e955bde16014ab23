//! The TaskExecutor's side of the ResourceManager connection: following the leader, registering
//! with backoff, and answering and watching heartbeats.

use super::{Registration, TaskExecutor};
use crate::ids::Epoch;
use crate::protocol::{Address, Message, ResourceManagerMessage, TaskExecutorMessage, WorkerResources};
use crate::time::Duration;

impl TaskExecutor {
    /// Adopts a higher leader epoch: a new leader means registering again. Its answer to a
    /// registration needs no new attempt: an acceptance completes it, a refusal schedules the next.
    pub(super) fn follow_leader(&mut self, epoch: Epoch, message: Option<&TaskExecutorMessage>) {
        assert!(epoch > self.leader_epoch, "the followed epoch only grows: {epoch} after {}", self.leader_epoch);
        let deposed = self.leader_epoch != Epoch(0);
        self.leader_epoch = epoch;
        if deposed {
            // The old leader's JobMasters are gone; the new leader recovers their jobs from
            // checkpoints with slots of its own. Holding the old slots would only delay that
            // until the JobMaster heartbeat timeout.
            for job in self.slots.jobs() {
                self.release_job(job);
            }
        }
        match message {
            Some(TaskExecutorMessage::RegistrationAccepted) => {}
            Some(TaskExecutorMessage::RegistrationRejected { .. }) => {
                let next_timeout = self.config.registration_timeout_initial;
                self.registration = Registration::Unregistered { retry_at: self.now, next_timeout };
            }
            _ => self.start_registration(),
        }
    }

    /// Registers from scratch: an attempt now with the initial timeout. Slots and tasks are kept.
    pub(super) fn start_registration(&mut self) {
        self.attempt_registration(self.config.registration_timeout_initial);
    }

    /// Sends a registration that counts as unanswered after `timeout`; the next one waits twice as long.
    fn attempt_registration(&mut self, timeout: Duration) {
        let next_timeout = timeout.saturating_mul(2).min(self.config.registration_timeout_max);
        self.registration = Registration::Unregistered { retry_at: self.now.after(timeout), next_timeout };
        let resources =
            WorkerResources { slots: self.config.slots, managed_memory_bytes: self.config.managed_memory_bytes };
        let message = ResourceManagerMessage::RegisterTaskExecutor {
            resource_id: self.resource_id,
            resources,
            slot_report: self.slots.report(),
        };
        self.send(Address::ResourceManager, Message::ResourceManager(message));
    }

    pub(super) fn on_registration_accepted(&mut self) {
        self.registration = Registration::Registered { heard_at: self.now };
    }

    pub(super) fn on_registration_rejected(&mut self) {
        if let Registration::Unregistered { .. } = self.registration {
            self.registration = Registration::Unregistered {
                retry_at: self.now.after(self.config.registration_refused_delay),
                next_timeout: self.config.registration_timeout_initial,
            };
        }
        // Registered: the answer to an earlier attempt, overtaken by an acceptance; ignored.
    }

    pub(super) fn on_resource_manager_heartbeat(&mut self) {
        if let Registration::Registered { heard_at } = &mut self.registration {
            *heard_at = self.now;
        }
        let message = ResourceManagerMessage::TaskExecutorHeartbeat {
            resource_id: self.resource_id,
            slot_report: self.slots.report(),
        };
        self.send(Address::ResourceManager, Message::ResourceManager(message));
    }

    /// Registers again when the ResourceManager went silent, or retries a due registration.
    pub(super) fn check_resource_manager(&mut self) {
        match self.registration {
            Registration::Registered { heard_at } => {
                // Fault point: the ResourceManager is suspected at half the heartbeat timeout.
                let mut timeout = self.config.heartbeat_timeout;
                if crate::buggify::fires("task_executor.resource_manager_timeout.early", 0.01) {
                    timeout = crate::time::Duration::from_micros(timeout.as_micros() / 2);
                }
                if heard_at.after(timeout) <= self.now {
                    self.start_registration();
                }
            }
            Registration::Unregistered { retry_at, next_timeout } => {
                if retry_at <= self.now {
                    self.attempt_registration(next_timeout);
                }
            }
        }
    }

    pub(super) fn check_registration(&self) -> Result<(), String> {
        match self.registration {
            Registration::Registered { heard_at } if heard_at > self.now => {
                Err(format!("ResourceManager heard at {heard_at}, in the future of {}", self.now))
            }
            Registration::Unregistered { next_timeout, .. }
                if next_timeout < self.config.registration_timeout_initial
                    || next_timeout > self.config.registration_timeout_max =>
            {
                Err(format!("registration timeout {next_timeout} outside its configured range"))
            }
            _ => Ok(()),
        }
    }
}
