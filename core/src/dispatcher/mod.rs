//! The Dispatcher: accepts jobs, starts a JobMaster for each, answers clients, keeps results.
//!
//! A submission is validated, configured (cluster keys, then the job's own) and planned before
//! anything starts; a bad one is rejected with the reason and leaves no trace. Accepted jobs get
//! an id (the client's, or one drawn from the Dispatcher's seeded generator) and a JobMaster, which
//! the owning JobManager creates when it drains [`DispatcherOutput::StartJobMaster`]. JobMasters
//! report status changes back; the Dispatcher keeps every job's summary, and the results of
//! finished, cancelled and failed jobs (the newest [`MAX_RETAINED_RESULTS`]).
//!
//! In application mode the cluster runs exactly one job and ends with it
//! ([`Event::ApplicationEnded`]).
//!
//! Invariants: at most [`MAX_RUNNING_JOBS`] non-terminal jobs; a job id is used once; a summary's
//! status only moves along `JobStatus::can_become`.

use crate::config::{Config, RawConfig};
use crate::ids::{Epoch, Hex128, JobId};
use crate::job::validate::validate;
use crate::plan::{JobPlan, PlanOptions, plan};
use crate::protocol::{
    Address, ClientMessage, DispatcherMessage, Envelope, Event, JobMasterMessage, JobStatus, JobSubmission, JobSummary,
    Message, Output,
};
use crate::rng::Rng;
use crate::time::Time;
use std::collections::{BTreeMap, VecDeque};

/// Jobs that may run at once.
pub const MAX_RUNNING_JOBS: usize = 1_000;
/// Terminal jobs whose results are kept (Flink's job store keeps them for an hour by default).
pub const MAX_RETAINED_RESULTS: usize = 1_000;

/// Session clusters run many jobs; application clusters one, and end with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterMode {
    /// Many jobs, submitted over time.
    Session,
    /// One job; the cluster ends when it does.
    Application,
}

/// What the Dispatcher asks its owner to do.
#[derive(Debug)]
pub enum DispatcherOutput {
    /// A message or an event.
    Out(Output),
    /// Create the JobMaster of an accepted job.
    StartJobMaster(JobStart),
}

/// Everything a JobMaster needs to start.
#[derive(Debug)]
pub struct JobStart {
    /// The job's id.
    pub job_id: JobId,
    /// The planned job.
    pub plan: Box<JobPlan>,
    /// The job's effective configuration.
    pub config: Box<Config>,
    /// The savepoint (or retained checkpoint) directory to restore from, if any.
    pub savepoint: Option<String>,
    /// The job as submitted, for TaskManagers to plan it.
    pub artifacts: std::sync::Arc<crate::protocol::JobArtifacts>,
}

/// The Dispatcher's inputs.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message from a client or a JobMaster.
    Message {
        /// Sender.
        from: Address,
        /// The payload.
        message: DispatcherMessage,
    },
}

/// The Dispatcher.
#[derive(Debug)]
pub struct Dispatcher {
    mode: ClusterMode,
    epoch: Epoch,
    cluster_config: RawConfig,
    jobs: BTreeMap<JobId, JobSummary>,
    /// Terminal jobs in the order they ended, for evicting the oldest.
    ended: VecDeque<JobId>,
    ids: Rng,
    outputs: VecDeque<DispatcherOutput>,
}

/// Validates, configures and plans a job: the cluster's keys, then the job's own (its file's
/// `[config]` table, then the submission's), then `parallelism` as the default parallelism.
pub fn prepare(
    cluster_config: &RawConfig,
    graph: crate::job::JobGraph,
    job_config: &BTreeMap<String, String>,
    parallelism: Option<u32>,
) -> Result<(JobPlan, Config), String> {
    let job = validate(graph).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|error| error.to_string()).collect();
        format!("invalid job: {}", lines.join("; "))
    })?;
    let mut raw = cluster_config.clone();
    for (key, value) in job.graph.config.iter().chain(job_config) {
        raw.set(key.clone(), value.clone());
    }
    let config = Config::from_raw(&raw).map_err(|error| format!("invalid configuration: {error}"))?;
    let options = PlanOptions {
        default_parallelism: parallelism.unwrap_or(config.pipeline.parallelism_default),
        max_parallelism: config.pipeline.max_parallelism,
        chaining_enabled: config.pipeline.operator_chaining,
    };
    let plan = plan(&job, &options).map_err(|error| format!("cannot plan the job: {error}"))?;
    Ok((plan, config))
}

impl Dispatcher {
    /// A Dispatcher with the cluster's raw configuration; `seed` drives job id assignment.
    pub fn new(mode: ClusterMode, cluster_config: RawConfig, epoch: Epoch, seed: u64) -> Dispatcher {
        Dispatcher {
            mode,
            epoch,
            cluster_config,
            jobs: BTreeMap::new(),
            ended: VecDeque::new(),
            ids: Rng::new(seed),
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one input.
    pub fn handle(&mut self, now: Time, input: Input) {
        let Input::Message { from, message } = input;
        match message {
            DispatcherMessage::Submit { request, submission } => self.submit(now, from, request, *submission),
            DispatcherMessage::Cancel { request, job_id } => self.cancel(from, request, job_id),
            DispatcherMessage::List { request } => {
                let mut jobs: Vec<JobSummary> = self.jobs.values().cloned().collect();
                jobs.sort_by_key(|job| (job.start_time, job.job_id));
                self.reply(from, ClientMessage::Jobs { request, jobs });
            }
            DispatcherMessage::Status { request, job_id } => match self.jobs.get(&job_id) {
                Some(job) => self.reply(from, ClientMessage::Job { request, job: job.clone() }),
                None => self.reply(from, ClientMessage::NotFound { request, job_id }),
            },
            DispatcherMessage::TriggerSavepoint { request, job_id, target, stop, drain } => {
                self.trigger_savepoint(from, request, job_id, target, stop, drain);
            }
            DispatcherMessage::JobStatusChanged { job_id, status, tasks, failure } => {
                if from == Address::JobMaster(job_id) {
                    self.job_status_changed(now, job_id, status, tasks, failure);
                }
            }
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<DispatcherOutput> {
        self.outputs.pop_front()
    }

    /// Every job the Dispatcher knows, by id.
    pub fn jobs(&self) -> &BTreeMap<JobId, JobSummary> {
        &self.jobs
    }

    /// The cluster mode.
    pub fn mode(&self) -> ClusterMode {
        self.mode
    }

    fn reply(&mut self, to: Address, message: ClientMessage) {
        let envelope = Envelope { from: Address::Dispatcher, to, epoch: self.epoch, message: Message::Client(message) };
        self.outputs.push_back(DispatcherOutput::Out(Output::Send(envelope)));
    }

    fn running_jobs(&self) -> usize {
        self.jobs.values().filter(|job| !job.status.is_terminal()).count()
    }

    fn submit(&mut self, now: Time, from: Address, request: u64, submission: JobSubmission) {
        match self.accept(now, submission) {
            Ok(start) => {
                let job_id = start.job_id;
                self.reply(from, ClientMessage::Submitted { request, job_id });
                self.outputs.push_back(DispatcherOutput::StartJobMaster(start));
            }
            Err(reason) => self.reply(from, ClientMessage::Rejected { request, reason }),
        }
    }

    /// Checks, configures and plans a submission; nothing is recorded unless all succeed.
    fn accept(&mut self, now: Time, submission: JobSubmission) -> Result<JobStart, String> {
        if self.mode == ClusterMode::Application && !self.jobs.is_empty() {
            return Err("this application cluster runs exactly one job and has it already".to_string());
        }
        if self.running_jobs() >= MAX_RUNNING_JOBS {
            return Err(format!("the cluster already runs {MAX_RUNNING_JOBS} jobs, its limit"));
        }
        let job_id = match submission.job_id {
            Some(job_id) if self.jobs.contains_key(&job_id) => {
                return Err(format!("a job with id {job_id} was already submitted"));
            }
            Some(job_id) => job_id,
            None => self.fresh_job_id(),
        };
        if submission.savepoint.as_deref().is_some_and(|path| path.trim().is_empty()) {
            return Err("the savepoint path is empty".to_string());
        }
        let savepoint = submission.savepoint;
        let artifacts = crate::protocol::JobArtifacts {
            graph: submission.graph.clone(),
            cluster_config: self
                .cluster_config
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            job_config: submission.config.clone(),
            parallelism: submission.parallelism,
        };
        let (plan, config) =
            prepare(&self.cluster_config, submission.graph, &submission.config, submission.parallelism)?;
        let summary = JobSummary {
            job_id,
            name: plan.job.graph.name.clone(),
            status: JobStatus::Initializing,
            start_time: now,
            end_time: None,
            tasks: BTreeMap::new(),
            failure: None,
        };
        self.jobs.insert(job_id, summary);
        let artifacts = std::sync::Arc::new(artifacts);
        Ok(JobStart { job_id, plan: Box::new(plan), config: Box::new(config), savepoint, artifacts })
    }

    fn fresh_job_id(&mut self) -> JobId {
        loop {
            let bits = (self.ids.next_u64() as u128) << 64 | self.ids.next_u64() as u128;
            let job_id = JobId(Hex128(bits));
            if !self.jobs.contains_key(&job_id) {
                return job_id;
            }
        }
    }

    fn cancel(&mut self, from: Address, request: u64, job_id: JobId) {
        let Some(job) = self.jobs.get(&job_id) else {
            self.reply(from, ClientMessage::NotFound { request, job_id });
            return;
        };
        if !job.status.is_terminal() {
            let envelope = Envelope {
                from: Address::Dispatcher,
                to: Address::JobMaster(job_id),
                epoch: self.epoch,
                message: Message::JobMaster(JobMasterMessage::Cancel),
            };
            self.outputs.push_back(DispatcherOutput::Out(Output::Send(envelope)));
        }
        self.reply(from, ClientMessage::CancelAccepted { request, job_id });
    }

    /// Forwards a savepoint request to the job's JobMaster, which answers the client itself.
    /// An unknown job is [`ClientMessage::NotFound`]; a job that has ended, or a request from
    /// something that is not a client, is [`ClientMessage::Rejected`].
    fn trigger_savepoint(
        &mut self,
        from: Address,
        request: u64,
        job_id: JobId,
        target: Option<String>,
        stop: bool,
        drain: bool,
    ) {
        let Some(job) = self.jobs.get(&job_id) else {
            self.reply(from, ClientMessage::NotFound { request, job_id });
            return;
        };
        if !matches!(from, Address::Client(_)) {
            let reason = "savepoints are triggered by clients".to_string();
            self.reply(from, ClientMessage::Rejected { request, reason });
            return;
        }
        if job.status.is_terminal() {
            let reason = format!("job {job_id} is {}: no savepoint can be taken", job.status);
            self.reply(from, ClientMessage::Rejected { request, reason });
            return;
        }
        let message = JobMasterMessage::TriggerSavepoint { request, client: from, target, stop, drain };
        let envelope = Envelope {
            from: Address::Dispatcher,
            to: Address::JobMaster(job_id),
            epoch: self.epoch,
            message: Message::JobMaster(message),
        };
        self.outputs.push_back(DispatcherOutput::Out(Output::Send(envelope)));
    }

    fn job_status_changed(
        &mut self,
        now: Time,
        job_id: JobId,
        status: JobStatus,
        tasks: BTreeMap<crate::protocol::ExecutionState, u32>,
        failure: Option<String>,
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
        if job.status.is_terminal() {
            return; // a late report after the end changes nothing
        }
        job.tasks = tasks;
        if job.status != status {
            if !job.status.can_become(status) {
                return; // not a transition a JobMaster makes: ignore rather than record it
            }
            job.status = status;
        }
        if failure.is_some() {
            job.failure = failure;
        }
        if status.is_terminal() {
            job.end_time = Some(now);
            self.ended.push_back(job_id);
            if self.mode == ClusterMode::Application {
                self.outputs
                    .push_back(DispatcherOutput::Out(Output::Event(Event::ApplicationEnded { job_id, status })));
            }
            self.evict_old_results();
        }
    }

    fn evict_old_results(&mut self) {
        while self.ended.len() > MAX_RETAINED_RESULTS {
            if let Some(oldest) = self.ended.pop_front() {
                self.jobs.remove(&oldest);
            }
        }
    }

    /// Checks the Dispatcher's invariants.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.running_jobs() > MAX_RUNNING_JOBS {
            return Err(format!("{} running jobs exceed the limit", self.running_jobs()));
        }
        if self.ended.len() > MAX_RETAINED_RESULTS {
            return Err("retained results exceed their bound".to_string());
        }
        if self.mode == ClusterMode::Application && self.jobs.len() > 1 {
            return Err("an application cluster holds more than one job".to_string());
        }
        for job_id in &self.ended {
            match self.jobs.get(job_id) {
                Some(job) if job.status.is_terminal() => {}
                _ => return Err(format!("ended job {job_id} is not terminal")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
