//! The embedded cluster of `weir local`: a JobManager (ResourceManager, Dispatcher, JobMasters)
//! and a TaskExecutor in this process, their messages on in-memory channels, each task on its
//! own thread. It is the same cluster the daemons form, minus the sockets: jobs are scheduled
//! onto slots, checkpoints are coordinated and written to disk, failed tasks restart from the
//! latest checkpoint, exactly-once file sinks commit per checkpoint.
//!
//! One control thread owns every role's state machine and feeds them, one input at a time, from
//! one mailbox: envelopes between roles, task threads' reports, and ticks when a role's deadline
//! passes. The task threads only talk to it through that mailbox, and so does the REST API
//! (`crate::rest`): its calls are answered on the control thread, between two inputs.

use super::Clock;
use super::credit::ChannelBuffers;
use super::exchange::Exchange;
use super::host::TaskHost;
use super::operators::Operators;
use super::storage::CheckpointStorage;
use super::task_thread::TaskEvent;
use crate::rest::{ClusterState, RestCall, RestClients};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, SystemTime};
use weir_core::checkpoint::storage::METADATA_FILE;
use weir_core::config::{Config, RawConfig};
use weir_core::dispatcher::ClusterMode;
use weir_core::ids::{Epoch, Hex128, JobId, ResourceId, stable_hash128};
use weir_core::job::JobGraph;
use weir_core::job_manager::{self, JobManager};
use weir_core::protocol::{
    Address, ClientMessage, DispatcherMessage, Envelope, Event, JobStatus, JobSubmission, Message, Output, Role,
    StorageReply, StorageRequest, TaskCommand,
};
use weir_core::task_executor::{self, TaskExecutor, TaskExecutorConfig};

/// The client address of the embedded cluster's own submitter.
const CLIENT: Address = Address::Client(0);
/// Longest wait of the control thread between two looks at the time.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// REST calls queued between the REST thread and the mailbox.
const REST_CALLS_QUEUED_MAX: usize = 64;

/// What reaches the control thread.
enum ControlMail {
    /// A task thread of TaskExecutor `task_manager` reports.
    Task { task_manager: usize, event: TaskEvent },
    /// The REST API asks.
    Rest(RestCall),
}

/// Something that happened to a job, for the caller to print.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The job's status changed.
    Status(JobStatus),
    /// A checkpoint completed.
    CheckpointCompleted(weir_core::ids::CheckpointId),
    /// The job restarts (failover).
    Restarting(String),
}

/// How a job ended on the embedded cluster.
#[derive(Debug)]
pub struct JobEnd {
    /// Its final status.
    pub status: JobStatus,
    /// Its failure, when it failed.
    pub failure: Option<String>,
    /// Checkpoints completed.
    pub checkpoints: u64,
    /// Restarts.
    pub restarts: u64,
}

/// The JobManager, the TaskExecutors and everything the task threads share.
pub struct LocalCluster {
    /// Milliseconds since the Unix epoch at the clock's zero, for the REST API's times.
    epoch_ms_at_zero: u64,
    seed: u64,
    job_manager: JobManager,
    task_executors: Vec<(ResourceId, TaskExecutor)>,
    mailbox: Receiver<ControlMail>,
    sender: Sender<ControlMail>,
    /// Envelopes sent and not yet delivered (delivery is in order, without recursion).
    in_flight: VecDeque<Envelope>,
    client_inbox: VecDeque<ClientMessage>,
    /// REST calls waiting for the Dispatcher's answer (clients 1, 2, ...).
    rest_clients: RestClients,
    /// TaskManager addresses for the REST API: none, the TaskExecutors are in this process.
    task_manager_addresses: BTreeMap<ResourceId, String>,
    /// Jobs given an id here so far (the id's counter).
    jobs_submitted: u64,
    /// The task threads and what they share.
    host: TaskHost,
    progress: VecDeque<(JobId, Progress)>,
    statuses: BTreeMap<JobId, JobStatus>,
    checkpoints: BTreeMap<JobId, u64>,
    restarts: BTreeMap<JobId, u64>,
}

impl LocalCluster {
    /// A cluster with one TaskExecutor of `slots` slots; checkpoints without a directory of their
    /// own go under `data_dir`. It has no Rust operators.
    pub fn start(raw: RawConfig, slots: u32, data_dir: &std::path::Path) -> Result<LocalCluster, String> {
        LocalCluster::start_with_operators(raw, slots, data_dir, Operators::new())
    }

    /// As [`LocalCluster::start`], with the Rust operators a program registered.
    pub fn start_with_operators(
        raw: RawConfig,
        slots: u32,
        data_dir: &std::path::Path,
        operators: Operators,
    ) -> Result<LocalCluster, String> {
        let clock = Clock::start();
        let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let epoch_ms_at_zero = (since_epoch.as_millis() as u64).saturating_sub(clock.now().as_millis());
        let mut raw = raw;
        raw.set("taskmanager.numberOfTaskSlots", slots.to_string());
        let config = Config::from_raw(&raw).map_err(|error| error.to_string())?;
        let seed = u64::from(std::process::id());
        let job_manager = JobManager::new(raw.clone(), ClusterMode::Session, Epoch(1), seed)?;
        let resource_id = ResourceId(Hex128(stable_hash128(&[b"local-tm", &seed.to_le_bytes()])));
        let te_config = TaskExecutorConfig::from_config(&config).map_err(|error| error.to_string())?;
        let task_executor = TaskExecutor::new(resource_id, te_config, clock.now());
        let (sender, mailbox) = channel();
        let exchange = Exchange::local(ChannelBuffers::from_config(&config.task_manager));
        let host = TaskHost::new(&raw, CheckpointStorage::new(data_dir), exchange, clock, operators);
        let mut cluster = LocalCluster {
            epoch_ms_at_zero,
            seed,
            job_manager,
            task_executors: vec![(resource_id, task_executor)],
            mailbox,
            sender,
            in_flight: VecDeque::new(),
            client_inbox: VecDeque::new(),
            rest_clients: RestClients::new(),
            task_manager_addresses: BTreeMap::new(),
            jobs_submitted: 0,
            host,
            progress: VecDeque::new(),
            statuses: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            restarts: BTreeMap::new(),
        };
        cluster.drain_all();
        Ok(cluster)
    }

    /// Submits a job with configuration keys of its own (above the job file's table); returns
    /// its id once the Dispatcher accepted it.
    pub fn submit(
        &mut self,
        graph: JobGraph,
        parallelism: Option<u32>,
        job_config: BTreeMap<String, String>,
    ) -> Result<JobId, String> {
        let job_id = self.next_job_id(&graph.name);
        let submission =
            JobSubmission { job_id: Some(job_id), graph, parallelism, config: job_config, savepoint: None };
        let message = Message::Dispatcher(DispatcherMessage::Submit { request: 0, submission: Box::new(submission) });
        self.in_flight.push_back(Envelope { from: CLIENT, to: Address::Dispatcher, epoch: Epoch(0), message });
        self.drain_all();
        loop {
            match self.client_inbox.pop_front() {
                Some(ClientMessage::Submitted { job_id: accepted, .. }) => return Ok(accepted),
                Some(ClientMessage::Rejected { reason, .. }) => return Err(reason),
                Some(_) => continue,
                None => return Err("the Dispatcher did not answer the submission".to_string()),
            }
        }
    }

    /// Serves the REST API on `bind:port` (0: any free port) from a thread of its own; its
    /// calls are answered while the cluster runs. Returns the bound address.
    pub fn serve_rest(&self, bind: &str, port: u16) -> Result<std::net::SocketAddr, String> {
        let (calls, mut receiver) = tokio::sync::mpsc::channel::<RestCall>(REST_CALLS_QUEUED_MAX);
        let address =
            crate::rest::serve_in_thread(bind, port, calls, self.job_manager.config().security.token.clone())?;
        // The control thread waits on one mailbox; this thread moves REST calls into it.
        let mailbox = self.sender.clone();
        let forward = move || {
            while let Some(call) = receiver.blocking_recv() {
                if mailbox.send(ControlMail::Rest(call)).is_err() {
                    return; // the cluster is gone
                }
            }
        };
        std::thread::Builder::new()
            .name("rest-calls".to_string())
            .spawn(forward)
            .map_err(|error| format!("cannot start the REST call thread: {error}"))?;
        Ok(address)
    }

    /// A fresh job id, derived from the job's name, this process and a counter.
    fn next_job_id(&mut self, name: &str) -> JobId {
        let count = self.jobs_submitted;
        self.jobs_submitted += 1;
        JobId(Hex128(stable_hash128(&[b"local-job", name.as_bytes(), &self.seed.to_le_bytes(), &count.to_le_bytes()])))
    }

    /// Answers a REST call: views from the current state, Dispatcher calls by delivering them.
    fn rest_call(&mut self, call: RestCall) {
        {
            let board = self.host.metrics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let state = ClusterState {
                job_manager: &self.job_manager,
                epoch_ms_at_zero: self.epoch_ms_at_zero,
                now: self.host.clock.now(),
                task_manager_addresses: &self.task_manager_addresses,
                task_manager_data_addresses: &self.task_manager_addresses,
                task_metrics: &board,
            };
            let in_flight = &mut self.in_flight;
            self.rest_clients.answer(call, &state, |envelope| in_flight.push_back(envelope));
        }
        self.drain_all();
    }

    /// The metrics of the newest attempt of every subtask of `job_id` that has run.
    pub fn task_metrics(
        &self,
        job_id: JobId,
    ) -> Vec<(weir_core::protocol::ExecutionId, weir_core::dataflow::task::TaskMetrics)> {
        let board = self.host.metrics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut newest: BTreeMap<_, _> = BTreeMap::new();
        for (execution, metrics) in board.iter().filter(|(execution, _)| execution.job == job_id) {
            newest.insert((execution.vertex, execution.subtask), (*execution, *metrics));
        }
        newest.into_values().collect()
    }

    /// Runs the cluster until `job_id` ends, handing each progress event to `on_progress` and
    /// calling `every_second` about once a second.
    pub fn run_until_done(
        &mut self,
        job_id: JobId,
        on_progress: &mut dyn FnMut(Progress),
        every_second: &mut dyn FnMut(&LocalCluster),
    ) -> JobEnd {
        let mut last_tick = std::time::Instant::now();
        loop {
            while let Some((job, progress)) = self.progress.pop_front() {
                if job == job_id {
                    on_progress(progress);
                }
            }
            if let Some(status) = self.statuses.get(&job_id).copied().filter(|status| status.is_globally_terminal()) {
                let failure = self.job_manager.dispatcher().jobs().get(&job_id).and_then(|job| job.failure.clone());
                let checkpoints = self.checkpoints.get(&job_id).copied().unwrap_or(0);
                let restarts = self.restarts.get(&job_id).copied().unwrap_or(0);
                return JobEnd { status, failure, checkpoints, restarts };
            }
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = std::time::Instant::now();
                every_second(self);
            }
            self.wait_and_handle();
        }
    }

    /// Waits for mail or the next deadline, then handles what came.
    fn wait_and_handle(&mut self) {
        let now = self.host.clock.now();
        let deadline = self.next_deadline();
        let wait =
            deadline.map(|at| Duration::from_micros(at.0.saturating_sub(now.0))).unwrap_or(MAX_WAIT).min(MAX_WAIT);
        match self.mailbox.recv_timeout(wait) {
            Ok(mail) => {
                self.handle_mail(mail);
                while let Ok(mail) = self.mailbox.try_recv() {
                    self.handle_mail(mail);
                }
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
        self.tick_due();
    }

    fn next_deadline(&self) -> Option<weir_core::time::Time> {
        let executors = self.task_executors.iter().filter_map(|(_, executor)| executor.poll_timeout());
        executors.chain(self.job_manager.poll_timeout()).min()
    }

    fn tick_due(&mut self) {
        let now = self.host.clock.now();
        if self.job_manager.poll_timeout().is_some_and(|at| at <= now) {
            self.job_manager.handle(now, job_manager::Input::Tick);
        }
        for (_, executor) in &mut self.task_executors {
            if executor.poll_timeout().is_some_and(|at| at <= now) {
                executor.handle(now, task_executor::Input::Tick);
            }
        }
        self.drain_all();
    }

    fn handle_mail(&mut self, mail: ControlMail) {
        let now = self.host.clock.now();
        let (task_manager, event) = match mail {
            ControlMail::Task { task_manager, event } => (task_manager, event),
            ControlMail::Rest(call) => return self.rest_call(call),
        };
        let Some((_, executor)) = self.task_executors.get_mut(task_manager) else { return };
        match event {
            TaskEvent::State(report) => executor.handle(now, task_executor::Input::TaskReport(report)),
            TaskEvent::Checkpoint(report) => executor.handle(now, task_executor::Input::CheckpointReport(report)),
            TaskEvent::FinalCheckpointAwaited { execution, checkpoint_latest } => {
                executor.handle(now, task_executor::Input::FinalCheckpointAwaited { execution, checkpoint_latest })
            }
        }
        self.drain_all();
    }

    /// Drains every role's outputs and delivers the envelopes, until nothing moves.
    fn drain_all(&mut self) {
        loop {
            let mut moved = false;
            while let Some(output) = self.job_manager.poll_output() {
                moved = true;
                self.job_manager_output(output);
            }
            for index in 0..self.task_executors.len() {
                while let Some(output) = self.task_executors[index].1.poll_output() {
                    moved = true;
                    self.task_executor_output(index, output);
                }
            }
            moved |= !self.in_flight.is_empty();
            self.deliver();
            if !moved {
                return;
            }
        }
    }

    fn deliver(&mut self) {
        while let Some(envelope) = self.in_flight.pop_front() {
            let now = self.host.clock.now();
            match envelope.to {
                Address::ResourceManager | Address::Dispatcher | Address::JobMaster(_) => {
                    self.job_manager.handle(now, job_manager::Input::Message(envelope));
                }
                Address::TaskExecutor(resource_id) => {
                    let target = self.task_executors.iter_mut().find(|(id, _)| *id == resource_id);
                    if let (Some((_, executor)), Message::TaskExecutor(message)) = (target, envelope.message) {
                        let input =
                            task_executor::Input::Message { from: envelope.from, epoch: envelope.epoch, message };
                        executor.handle(now, input);
                    }
                }
                Address::Client(_) => {
                    if let Message::Client(message) = envelope.message {
                        if envelope.to == CLIENT {
                            self.client_inbox.push_back(message);
                        } else {
                            self.rest_clients.deliver(envelope.to, message);
                        }
                    }
                }
            }
        }
    }

    fn job_manager_output(&mut self, output: Output) {
        match output {
            Output::Send(envelope) => self.in_flight.push_back(envelope),
            Output::Storage(request) => self.store(request),
            Output::Event(event) => self.observe(event),
            Output::Task(_) => {}
        }
    }

    fn task_executor_output(&mut self, index: usize, output: Output) {
        match output {
            Output::Send(envelope) => self.in_flight.push_back(envelope),
            Output::Task(command) => self.task_command(index, command),
            Output::Event(event) => self.observe(event),
            Output::Storage(_) => {}
        }
    }

    fn store(&mut self, request: StorageRequest) {
        match request {
            StorageRequest::WriteMetadata { job_id, checkpoint, location, bytes } => {
                let reply = match self.host.storage.write(&location, METADATA_FILE, &bytes) {
                    Ok(()) => StorageReply::MetadataWritten { job_id, checkpoint },
                    Err(error) => StorageReply::MetadataWriteFailed { job_id, checkpoint, error },
                };
                self.job_manager.handle(self.host.clock.now(), job_manager::Input::Storage(reply));
            }
            StorageRequest::ReadMetadata { job_id, location } => {
                let result = self.host.storage.read(&location, METADATA_FILE);
                let reply = StorageReply::MetadataRead { job_id, location, result };
                self.job_manager.handle(self.host.clock.now(), job_manager::Input::Storage(reply));
            }
            StorageRequest::Delete { location, .. } => {
                if let Err(error) = self.host.storage.delete(&location) {
                    eprintln!("warning: {error}");
                }
            }
        }
    }

    fn task_command(&mut self, index: usize, command: TaskCommand) {
        let sender = self.sender.clone();
        let report = Arc::new(move |event| {
            let _ = sender.send(ControlMail::Task { task_manager: index, event });
        });
        if let Some(failed) = self.host.command(command, report) {
            let _ = self.sender.send(ControlMail::Task { task_manager: index, event: TaskEvent::State(failed) });
        }
    }

    fn observe(&mut self, event: Event) {
        match event {
            Event::JobStatusChanged { job_id, to, .. } => {
                if to.is_globally_terminal() {
                    self.host.forget_jobs(|job| job != job_id); // nothing deploys any more
                }
                self.statuses.insert(job_id, to);
                self.progress.push_back((job_id, Progress::Status(to)));
            }
            Event::CheckpointCompleted { job_id, checkpoint, .. } => {
                *self.checkpoints.entry(job_id).or_default() += 1;
                self.progress.push_back((job_id, Progress::CheckpointCompleted(checkpoint)));
            }
            Event::RestartDecision { job_id, delay_ms: Some(_), ref cause, .. } => {
                *self.restarts.entry(job_id).or_default() += 1;
                self.progress.push_back((job_id, Progress::Restarting(cause.clone())));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::job::file::parse_job_file;

    /// A job that never ends by itself: a sequence through a hash exchange into a window.
    const ENDLESS: &str = r#"
name = "endless"
[[operator]]
id = "numbers"
type = "sequence"
from = 0
to = 1_000_000_000_000_000

[[operator]]
id = "by-key"
type = "key_by"
input = "numbers"
key = "x % 16"

[[operator]]
id = "sums"
type = "window"
input = "by-key"
window = { type = "count", size = 1000 }
aggregates = { x = "sum(x)" }

[[operator]]
id = "sink"
type = "discard"
input = "sums"
"#;

    #[test]
    fn a_task_told_its_data_connection_broke_fails_and_so_does_its_job() {
        let job = parse_job_file("endless.toml", ENDLESS).expect("a valid job");
        let mut raw = RawConfig::new();
        raw.set("restart-strategy.type", "none");
        let dir = std::env::temp_dir().join(format!("weir-cluster-test-{}-fail", std::process::id()));
        let mut cluster = LocalCluster::start(raw, 1, &dir).expect("the embedded cluster starts");
        let job_id = cluster.submit(job.graph, Some(1), BTreeMap::new()).expect("submitted");
        let reason = "data connection to 10.0.0.9:6121 lost: the peer closed the connection";
        let mut seconds = 0;
        let end = cluster.run_until_done(job_id, &mut |_| {}, &mut |cluster| {
            seconds += 1;
            assert!(seconds < 30, "the job did not fail within 30 s of its tasks being told to");
            if seconds == 1 {
                for (execution, _) in cluster.task_metrics(job_id) {
                    cluster.host.exchange.post(execution, crate::runtime::exchange::Mail::Fail(reason.to_string()));
                }
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(end.status, JobStatus::Failed);
        let failure = end.failure.unwrap_or_default();
        assert!(failure.contains(reason), "{failure}");
    }
}
