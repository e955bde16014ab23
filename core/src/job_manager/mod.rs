//! The JobManager process: ResourceManager, Dispatcher and one JobMaster per job, as one machine.
//!
//! The roles stay separate state machines; this owner routes messages between them
//! synchronously and in a fixed order (ResourceManager, Dispatcher, then JobMasters by job id),
//! so the process as a whole is as deterministic as each role. Envelopes for roles of this
//! process never leave it; everything else becomes an output for the driver.
//!
//! Fencing: every envelope leaving carries this JobManager's leader epoch. Envelopes from
//! TaskExecutors must carry the same epoch, except a registration (a TaskExecutor learns the
//! epoch from the registration's answer); others are stale and dropped.
//!
//! Invariants: the roles' own, and a JobMaster exists exactly for the Dispatcher's non-terminal
//! jobs (terminal ones are removed once their last outputs are drained).

use crate::config::{Config, RawConfig};
use crate::dispatcher::{self, ClusterMode, Dispatcher, DispatcherOutput};
use crate::ids::{Epoch, JobId};
use crate::job_master::{self, JobMaster};
use crate::protocol::{
    Address, DispatcherMessage, Envelope, Message, Output, ResourceManagerMessage, Role, TaskExecutorMessage,
};
use crate::resource_manager::{self, ResourceManager};
use crate::rng::Rng;
use crate::time::Time;
use std::collections::{BTreeMap, VecDeque};

mod ha;

/// The client address recovered jobs are resubmitted from; answers to it are dropped.
pub const RECOVERY_CLIENT: Address = Address::Client(u64::MAX);

/// Inputs of the JobManager process.
#[derive(Clone, Debug)]
pub enum Input {
    /// An envelope for one of its roles.
    Message(Envelope),
    /// Time passed.
    Tick,
    /// The driver's answer to a storage request.
    Storage(crate::protocol::StorageReply),
}

/// Ended jobs whose final JobMaster state queries can still read; older ones are forgotten.
pub const ARCHIVED_JOBS_MAX: usize = 32;

/// The JobManager process's roles.
#[derive(Debug)]
pub struct JobManager {
    epoch: Epoch,
    config: Config,
    resource_manager: ResourceManager,
    dispatcher: Dispatcher,
    job_masters: BTreeMap<JobId, JobMaster>,
    /// JobMasters of ended jobs, for queries (Flink's archived execution graphs), oldest first,
    /// at most [`ARCHIVED_JOBS_MAX`].
    archived: VecDeque<(JobId, JobMaster)>,
    seeds: Rng,
    /// Envelopes between roles of this process, delivered before anything else happens.
    internal: VecDeque<Envelope>,
    outputs: VecDeque<Output>,
    /// HA record writing, once [`JobManager::recover`] turned it on.
    ha: Option<ha::HaTracker>,
    /// The roles handed an input since the last [`JobManager::check_reached_invariants`].
    reached: Reached,
}

/// Which roles may have changed: a role's state changes only while it handles an input (its
/// outputs are taken by `poll_output`, which its checks do not read), so a role not listed here
/// still passes the checks it passed before.
#[derive(Debug)]
struct Reached {
    resource_manager: bool,
    dispatcher: bool,
    /// Few at a time (one per job an input reached): a vector beats a set.
    job_masters: Vec<JobId>,
    every_job_master: bool,
}

impl Reached {
    fn everything() -> Reached {
        Reached { resource_manager: true, dispatcher: true, job_masters: Vec::new(), every_job_master: true }
    }

    /// Nothing reached, keeping the list's allocation (this runs after every simulated event).
    fn forget(&mut self) {
        self.job_masters.clear();
        (self.resource_manager, self.dispatcher, self.every_job_master) = (false, false, false);
    }

    fn job_master(&mut self, job_id: JobId) {
        if !self.job_masters.contains(&job_id) {
            self.job_masters.push(job_id);
        }
    }
}

impl JobManager {
    /// A JobManager leading in `epoch`, configured by `raw` (the cluster's keys); `seed` drives
    /// every random choice of its roles.
    pub fn new(raw: RawConfig, mode: ClusterMode, epoch: Epoch, seed: u64) -> Result<JobManager, String> {
        let config = Config::from_raw(&raw).map_err(|error| error.to_string())?;
        let mut seeds = Rng::new(seed);
        let dispatcher = Dispatcher::new(mode, raw, epoch, seeds.next_u64());
        Ok(JobManager {
            epoch,
            resource_manager: ResourceManager::new(&config, epoch),
            config,
            dispatcher,
            job_masters: BTreeMap::new(),
            archived: VecDeque::new(),
            seeds,
            internal: VecDeque::new(),
            outputs: VecDeque::new(),
            ha: None,
            reached: Reached::everything(),
        })
    }

    /// The leader epoch this JobManager acts in.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The cluster configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ResourceManager, for queries.
    pub fn resource_manager(&self) -> &ResourceManager {
        &self.resource_manager
    }

    /// The Dispatcher, for queries.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The running jobs' JobMasters, for queries.
    pub fn job_masters(&self) -> &BTreeMap<JobId, JobMaster> {
        &self.job_masters
    }

    /// The JobMaster of a running job, or the final state of a recently ended one (its vertices,
    /// executions, checkpoint statistics and exceptions as they were when it ended).
    pub fn job_master(&self, job_id: JobId) -> Option<&JobMaster> {
        self.job_masters
            .get(&job_id)
            .or_else(|| self.archived.iter().rev().find(|(id, _)| *id == job_id).map(|(_, job_master)| job_master))
    }

    fn accept_from_outside(&self, envelope: &Envelope) -> bool {
        if envelope.from.is_job_manager() || !envelope.to.is_job_manager() {
            return false; // only this process speaks for its roles
        }
        match envelope.from {
            Address::TaskExecutor(_) => {
                let registering = matches!(
                    envelope.message,
                    Message::ResourceManager(ResourceManagerMessage::RegisterTaskExecutor { .. })
                );
                registering || envelope.epoch == self.epoch
            }
            _ => true,
        }
    }

    fn deliver(&mut self, now: Time, envelope: Envelope) {
        let Envelope { from, to, epoch, message } = envelope;
        match (to, message) {
            (Address::ResourceManager, Message::ResourceManager(message)) => {
                let input = resource_manager::Input::Message { from, epoch, message };
                self.reached.resource_manager = true;
                self.resource_manager.handle(now, input);
            }
            (Address::Dispatcher, Message::Dispatcher(message)) => {
                self.reached.dispatcher = true;
                self.dispatcher.handle(now, dispatcher::Input::Message { from, message });
            }
            (Address::JobMaster(job_id), Message::JobMaster(message)) => match self.job_masters.get_mut(&job_id) {
                Some(job_master) => {
                    self.reached.job_master(job_id);
                    job_master.handle(now, job_master::Input::Message { from, epoch, message });
                }
                None => self.answer_for_absent_job(from, job_id, message),
            },
            _ => {} // a payload for another role than the address: nonsense, dropped
        }
    }

    /// A TaskExecutor offering slots to a job that is gone gets them refused, so it frees them.
    fn answer_for_absent_job(&mut self, from: Address, job_id: JobId, message: crate::protocol::JobMasterMessage) {
        if let crate::protocol::JobMasterMessage::OfferSlots { offers, .. } = message {
            let rejected = offers.iter().map(|offer| offer.allocation).collect();
            let reply = TaskExecutorMessage::SlotOfferResult { job_id, accepted: Vec::new(), rejected };
            let message = Message::TaskExecutor(reply);
            let envelope = Envelope { from: Address::JobMaster(job_id), to: from, epoch: self.epoch, message };
            self.outputs.push_back(Output::Send(envelope));
        }
    }

    /// Moves every role's outputs to their destinations until all roles are quiet.
    fn pump(&mut self, now: Time) {
        loop {
            let mut moved = false;
            while let Some(output) = self.resource_manager.poll_output() {
                self.route(output);
                moved = true;
            }
            while let Some(output) = self.dispatcher.poll_output() {
                match output {
                    DispatcherOutput::Out(output) => self.route(output),
                    DispatcherOutput::StartJobMaster(start) => self.start_job_master(now, start),
                }
                moved = true;
            }
            for job_master in self.job_masters.values_mut() {
                while let Some(output) = job_master.poll_output() {
                    let output = match &mut self.ha {
                        Some(tracker) => tracker.intercept(output),
                        None => Some(output),
                    };
                    if let Some(output) = output {
                        route(self.epoch, &mut self.internal, &mut self.outputs, output);
                    }
                    moved = true;
                }
            }
            while let Some(envelope) = self.internal.pop_front() {
                self.deliver(now, envelope);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        let ended: Vec<JobId> = self
            .job_masters
            .iter()
            .filter(|(_, job_master)| job_master.status().is_globally_terminal())
            .map(|(job_id, _)| *job_id)
            .collect();
        for job_id in ended {
            if let Some(job_master) = self.job_masters.remove(&job_id) {
                self.archived.retain(|(id, _)| *id != job_id);
                self.archived.push_back((job_id, job_master));
            }
        }
        while self.archived.len() > ARCHIVED_JOBS_MAX {
            self.archived.pop_front();
        }
    }

    fn route(&mut self, output: Output) {
        let output = match &mut self.ha {
            Some(tracker) => tracker.intercept(output),
            None => Some(output),
        };
        if let Some(output) = output {
            route(self.epoch, &mut self.internal, &mut self.outputs, output);
        }
    }

    fn start_job_master(&mut self, now: Time, start: dispatcher::JobStart) {
        let seed = self.seeds.next_u64();
        let mut job_master =
            JobMaster::with_savepoint(start.job_id, *start.plan, &start.config, self.epoch, seed, now, start.savepoint);
        job_master.ship(start.artifacts);
        if let Some(floor) = self.ha.as_ref().and_then(|tracker| tracker.floors.get(&start.job_id)) {
            job_master.raise_checkpoint_id_floor(*floor);
        }
        self.reached.job_master(start.job_id);
        self.job_masters.insert(start.job_id, job_master);
    }
}

fn route(epoch: Epoch, internal: &mut VecDeque<Envelope>, outputs: &mut VecDeque<Output>, output: Output) {
    match output {
        Output::Send(mut envelope) if envelope.to.is_job_manager() => {
            envelope.epoch = epoch;
            internal.push_back(envelope);
        }
        Output::Send(envelope) if envelope.to == RECOVERY_CLIENT => {} // nobody waits for it
        Output::Send(mut envelope) => {
            envelope.epoch = epoch;
            outputs.push_back(Output::Send(envelope));
        }
        other => outputs.push_back(other),
    }
}

impl Role for JobManager {
    type Input = Input;

    fn handle(&mut self, now: Time, input: Input) {
        match input {
            Input::Message(mut envelope) => {
                if let (Some(tracker), Message::Dispatcher(DispatcherMessage::Submit { submission, .. })) =
                    (&mut self.ha, &envelope.message)
                {
                    tracker.submission = Some((**submission).clone());
                }
                if self.accept_from_outside(&envelope) {
                    // Fencing is checked here, at the process's border; inside, roles see their
                    // own epoch (a registration arrives before its sender knows the epoch).
                    envelope.epoch = self.epoch;
                    self.deliver(now, envelope);
                }
            }
            Input::Storage(reply) => {
                let job_id = reply.job_id();
                if let Some(job_master) = self.job_masters.get_mut(&job_id) {
                    self.reached.job_master(job_id);
                    job_master.handle(now, job_master::Input::Storage(reply));
                }
            }
            Input::Tick => {
                if self.resource_manager.poll_timeout().is_some_and(|at| at <= now) {
                    self.reached.resource_manager = true;
                    self.resource_manager.handle(now, resource_manager::Input::Tick);
                }
                for (job_id, job_master) in &mut self.job_masters {
                    if job_master.poll_timeout().is_some_and(|at| at <= now) {
                        self.reached.job_master(*job_id);
                        job_master.handle(now, job_master::Input::Tick);
                    }
                }
            }
        }
        self.pump(now);
        self.track_ha();
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        let job_masters = self.job_masters.values().filter_map(|job_master| job_master.poll_timeout());
        self.resource_manager.poll_timeout().into_iter().chain(job_masters).min()
    }

    fn check_invariants(&self) -> Result<(), String> {
        self.check_roles(&Reached::everything())
    }
}

impl JobManager {
    /// The invariants an input since the last call may have broken: those of the roles it
    /// reached, and how JobMasters match the Dispatcher's jobs. Equivalent to
    /// [`Role::check_invariants`] when called after every input (as the simulator does), at a
    /// fraction of the cost: most inputs reach one JobMaster.
    pub fn check_reached_invariants(&mut self) -> Result<(), String> {
        let result = self.check_roles(&self.reached);
        self.reached.forget();
        result
    }

    fn check_roles(&self, reached: &Reached) -> Result<(), String> {
        if reached.resource_manager {
            self.resource_manager.check_invariants().map_err(|error| format!("resource manager: {error}"))?;
        }
        if reached.dispatcher {
            self.dispatcher.check_invariants().map_err(|error| format!("dispatcher: {error}"))?;
        }
        for (job_id, job_master) in &self.job_masters {
            if reached.every_job_master || reached.job_masters.contains(job_id) {
                job_master.check_invariants().map_err(|error| format!("job master {job_id}: {error}"))?;
            }
            let known = self.dispatcher.jobs().get(job_id);
            if known.is_none_or(|job| job.status.is_globally_terminal()) {
                return Err(format!("job master {job_id} runs for a job the dispatcher has ended or never had"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
