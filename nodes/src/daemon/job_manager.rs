//! `weir jobmanager`: the ResourceManager, the Dispatcher and a JobMaster per job, driven over
//! the network.
//!
//! One tokio runtime; one control task owns the `JobManager` and feeds it, one input at a time,
//! envelopes from TaskManagers (RPC listener), REST calls, storage completions and ticks. Its
//! envelopes to a TaskManager go to the RPC address that TaskManager introduced itself with.
//! A TaskManager whose connection closes is disconnected at once (the ResourceManager and its
//! JobMasters fail over its tasks without waiting for the heartbeat timeout), as Flink notices
//! a dead TaskManager's closed connection.
//!
//! Durability (high-availability type `none`, see [`super::metadata`]): jobs are recorded before
//! the Dispatcher sees them, each completed checkpoint's location after it completes, and a
//! restarted JobManager resubmits what it finds, in a higher leader epoch.
//!
//! High availability (`file`, `etcd`, see [`super::ha`]): the process campaigns as a standby
//! first (REST answers with the leader's address, nothing from TaskManagers is taken), then
//! starts its JobManager in the epoch it won and resumes the jobs of the HA records
//! (`JobManager::recover`). The JobManager's record writes go to the store before the step's
//! envelopes, their acknowledgements come back as input, and before every input the process
//! checks it still leads in its epoch, exiting at once when not.

use super::ha::candidate::{Candidacy, Step};
use super::ha::standby::Gate;
use super::ha::{self, HaAnswer, LeaderAddress};
use super::journal::{self, Journal, JournalSettings};
use super::metadata::MetadataStore;
use super::{init_logging, resolve_listen};
use crate::rest::{ClusterState, RestCall, RestClients};
use crate::runtime::Clock;
use crate::runtime::storage::CheckpointStorage;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use tokio::sync::mpsc;
use weir_core::checkpoint::storage::METADATA_FILE;
use weir_core::config::{Config, RawConfig};
use weir_core::dispatcher::ClusterMode;
use weir_core::ids::{Epoch, Hex128, JobId, ResourceId, stable_hash128};
use weir_core::job_manager::{self, JobManager};
use weir_core::leader::ElectionTiming;
use weir_core::protocol::{
    Address, ClientMessage, DispatcherMessage, Envelope, Event, JobMasterMessage, JobStatus, Message, Output,
    ResourceManagerMessage, Role, StorageReply, StorageRequest,
};
use weir_net::handshake::{Hello, PROTOCOL_VERSION, PeerRole};
use weir_net::rpc::{Peers, RpcEvent};

/// Envelopes, calls and completions waiting for the control task.
const INBOX: usize = 4096;
/// REST calls waiting for the control task.
const REST_CALLS: usize = 256;
/// The client address the JobManager resubmits recovered jobs from.
const RECOVERY: Address = Address::Client(u64::MAX);

/// What reaches the control task.
enum Inbox {
    Rpc(RpcEvent),
    Rest(RestCall),
    Storage(StorageReply),
    /// An answer of the HA store.
    Ha(HaAnswer),
}

/// How the JobManager runs.
pub struct JobManagerOptions {
    /// Session (many jobs) or application (one job; the process ends with it).
    pub mode: ClusterMode,
    /// Where relative checkpoint locations resolve.
    pub data_dir: PathBuf,
    /// Where its record of jobs lives (`high-availability.storageDir`, else under `data_dir`).
    pub metadata_dir: PathBuf,
    /// Application mode: the job to run, submitted at start.
    pub application: Option<weir_core::protocol::JobSubmission>,
}

/// Runs a JobManager until the process is killed (session) or its application ends.
pub fn run(raw: RawConfig, options: JobManagerOptions) -> Result<Option<JobStatus>, String> {
    init_logging();
    let config = Config::from_raw(&raw).map_err(|error| error.to_string())?;
    for warning in config.warnings.iter() {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    runtime.block_on(serve(raw, config, options))
}

/// Where a JobManager's jobs and epoch come from.
enum Start {
    /// High-availability `none`: the local record, and the epoch after its last.
    Local(MetadataStore, Epoch),
    /// `file` or `etcd`: the store, once this process wins its lease.
    Ha(Box<dyn ha::Backend>),
}

/// The JobManager on the current runtime (a madsim node in simulation tests).
pub async fn serve(raw: RawConfig, config: Config, options: JobManagerOptions) -> Result<Option<JobStatus>, String> {
    // Without HA the local record tells the epoch; with HA the lease does.
    let start = match ha::open(&config.ha)? {
        Some(backend) => Start::Ha(backend),
        None => {
            let metadata = MetadataStore::open(&options.metadata_dir)?;
            let epoch = metadata.next_epoch()?;
            Start::Local(metadata, epoch)
        }
    };
    let (rpc_listener, rpc_address) = resolve_listen(&config.rpc.address, config.rpc.port).await?;
    let token = config.security.token.clone();
    let (inbox, mut receiver) = mpsc::channel(INBOX);
    let gate = if matches!(start, Start::Ha(_)) { Gate::new() } else { Gate::open() };
    let rest_address = start_rest(&config, inbox.clone(), gate.clone()).await?;
    let clock = Clock::start();
    let (epoch, metadata, candidacy, records) = match start {
        Start::Local(metadata, epoch) => (epoch, Some(metadata), None, None),
        Start::Ha(backend) => {
            let address = LeaderAddress { rpc: rpc_address.clone(), rest: rest_address.clone() };
            println!(
                "JobManager started as a standby: rpc {rpc_address}, REST API at http://{rest_address}, \
                 high-availability {}",
                config.ha.kind.as_str()
            );
            let (epoch, candidacy, records) =
                campaign(&config, backend, &address, gate, &clock, &inbox, &mut receiver).await?;
            hand_over_on_termination(&config.ha, candidacy.candidate().to_string(), epoch);
            (epoch, None, Some(candidacy), Some(records))
        }
    };
    let seed = journal::job_manager_seed(epoch);
    let journal_settings = JournalSettings::from_raw(&raw, &options.data_dir)?;
    let job_manager = JobManager::new(raw.clone(), options.mode, epoch, seed)?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: PeerRole::JobManager,
        name: format!("jobmanager@{rpc_address}"),
        listen: Some(rpc_address.clone()),
        token: token.clone(),
    };
    super::serve_rpc(rpc_listener, token, inbox.clone(), Inbox::Rpc);
    let stored = metadata
        .as_ref()
        .map_or_else(|| format!("high-availability {}", config.ha.kind.as_str()), |m| m.dir().display().to_string());
    tracing::info!(rpc = %rpc_address, rest = %rest_address, %epoch, metadata = %stored, "JobManager started");
    println!("JobManager started: rpc {rpc_address}, REST API at http://{rest_address}, leader epoch {epoch}");
    let journal =
        Journal::open(&journal_settings, journal::Header::job_manager(&raw, options.mode, epoch, seed, clock.now()));
    journal.spawn_upkeep();
    let epoch_ms_at_zero =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut driver = Driver {
        clock,
        epoch_ms_at_zero,
        job_manager,
        peers: Peers::new(hello, weir_net::frame::DEFAULT_MAX_FRAME_BYTES),
        inbox,
        addresses: BTreeMap::new(),
        data_addresses: BTreeMap::new(),
        rest_clients: RestClients::new(),
        in_flight: VecDeque::new(),
        storage: CheckpointStorage::new(&options.data_dir),
        metadata,
        candidacy,
        metrics: BTreeMap::new(),
        application: None,
        application_status: None,
        journal,
    };
    match records {
        Some(records) => driver.take_over(&records),
        None => driver.recover(),
    }
    driver.drain(); // the Dispatcher knows the recovered jobs before an application is submitted
    if let Some(submission) = options.application {
        driver.submit_application(submission)?;
    }
    driver.drain();
    loop {
        if let Some(status) = driver.application_status {
            // Let the last envelopes (slot frees, cancellations) leave before the process ends.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            driver.journal.flush();
            return Ok(Some(status));
        }
        let now = driver.clock.now();
        let deadline = driver.job_manager.poll_timeout();
        let deadline = match driver.candidacy.as_ref().and_then(Candidacy::poll_timeout) {
            Some(election) => Some(deadline.map_or(election, |at| at.min(election))),
            None => deadline,
        };
        let wait = super::wait_until(deadline, now);
        let mail = match tokio::time::timeout(wait, receiver.recv()).await {
            Ok(Some(mail)) => Some(mail),
            Ok(None) => return Ok(None),
            Err(_) => None,
        };
        let now = driver.clock.now();
        driver.check_leading(now); // self-fencing comes before any input
        if let Some(mail) = mail {
            driver.handle(mail);
        }
        let now = driver.clock.now();
        if driver.job_manager.poll_timeout().is_some_and(|at| at <= now) {
            driver.feed(now, job_manager::Input::Tick);
        }
        driver.drain();
    }
}

/// On SIGTERM or SIGINT the leader releases its lease, so a standby takes over within a renew
/// interval instead of after the lease expired (Flink's JobManager revokes its leadership on a
/// clean shutdown too). Anything it still does before the process ends is fenced by the
/// standby's newer epoch.
fn hand_over_on_termination(ha: &weir_core::config::HaConfig, candidate: String, epoch: Epoch) {
    let ha = ha.clone();
    super::termination::on_termination(move || {
        let release = weir_core::leader::StoreRequest::Release { request: u64::MAX, candidate, epoch };
        let released = ha::open(&ha)
            .and_then(|backend| backend.ok_or_else(|| "high availability is off".to_string()))
            .and_then(|mut backend| backend.lease(release));
        match released {
            Ok(reply) => tracing::info!(%epoch, ?reply, "stopping: handed the leader lease over"),
            Err(error) => tracing::warn!(%epoch, %error, "stopping: cannot release the leader lease; it expires"),
        }
    });
}

/// Campaigns until this process leads and has read the HA records. Meanwhile REST answers as a
/// standby and nothing from TaskManagers is taken (they connect to the leader they retrieve).
async fn campaign(
    config: &Config,
    backend: Box<dyn ha::Backend>,
    address: &LeaderAddress,
    gate: Gate,
    clock: &Clock,
    inbox: &mpsc::Sender<Inbox>,
    receiver: &mut mpsc::Receiver<Inbox>,
) -> Result<(Epoch, Candidacy, Box<weir_core::ha::HaRecords>), String> {
    let answers = inbox.clone();
    let records = ha::open(&config.ha)?.ok_or("high availability is off")?;
    let post = Box::new(move |answer| answers.blocking_send(Inbox::Ha(answer)).is_ok());
    let service = ha::Service::start(backend, records, post);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let candidate = format!("jobmanager@{}#{}-{nanos}", address.rpc, std::process::id());
    let timing = ElectionTiming::from_config(&config.ha);
    let mut candidacy = Candidacy::new(candidate, address, timing, service, gate, clock.now());
    loop {
        candidacy.tick(clock.now());
        let wait = super::wait_until(candidacy.poll_timeout(), clock.now());
        match tokio::time::timeout(wait, receiver.recv()).await {
            Ok(Some(Inbox::Ha(answer))) => {
                if let Step::Lead { epoch, records } = candidacy.answer(clock.now(), answer) {
                    return Ok((epoch, candidacy, records));
                }
            }
            Ok(Some(_)) => {} // not leading: no JobManager takes it
            Ok(None) => return Err("the JobManager's inbox closed".to_string()),
            Err(_) => {}
        }
    }
}

/// Starts REST on `rest.bind-address`:`rest.port`; its calls reach the control task.
async fn start_rest(config: &Config, inbox: mpsc::Sender<Inbox>, gate: Gate) -> Result<String, String> {
    let (listener, _) = resolve_listen(&config.rest.bind_address, config.rest.port).await?;
    let bound = listener.local_addr().map_err(|error| error.to_string())?;
    let (calls, receiver) = mpsc::channel::<RestCall>(REST_CALLS);
    super::forward(receiver, inbox, Inbox::Rest);
    tokio::spawn(crate::rest::serve_gated(listener, calls, config.security.token.clone(), gate));
    Ok(bound.to_string())
}

struct Driver {
    clock: Clock,
    epoch_ms_at_zero: u64,
    job_manager: JobManager,
    peers: Peers,
    inbox: mpsc::Sender<Inbox>,
    /// RPC addresses of TaskManagers, as they introduced themselves.
    addresses: BTreeMap<ResourceId, String>,
    /// Data-channel addresses of TaskManagers, from their slot offers (REST's `dataPort`).
    data_addresses: BTreeMap<ResourceId, String>,
    rest_clients: RestClients,
    /// Envelopes for roles of this process (REST's Dispatcher calls), delivered in order.
    in_flight: VecDeque<Envelope>,
    storage: CheckpointStorage,
    /// The local record of jobs (high-availability `none`).
    metadata: Option<MetadataStore>,
    /// The election and the HA store (high-availability `file`).
    candidacy: Option<Candidacy>,
    metrics: BTreeMap<weir_core::protocol::ExecutionId, weir_core::dataflow::task::TaskMetrics>,
    /// Application mode: the one job, and how it ended.
    application: Option<JobId>,
    application_status: Option<JobStatus>,
    /// Every input the JobManager is fed, for replay.
    journal: Journal,
}

impl Driver {
    /// Journals `input`, then feeds it to the JobManager.
    fn feed(&mut self, now: weir_core::time::Time, input: job_manager::Input) {
        self.journal.record(now, &input);
        self.job_manager.handle(now, input);
    }

    fn handle(&mut self, mail: Inbox) {
        let now = self.clock.now();
        match mail {
            Inbox::Rpc(RpcEvent::Message(incoming)) => {
                let envelope = incoming.envelope;
                if !envelope.to.is_job_manager() {
                    tracing::warn!(peer = %incoming.peer.name, to = ?envelope.to, "ignored an envelope not for us");
                    return;
                }
                if let (Address::TaskExecutor(resource_id), Some(listen)) = (envelope.from, &incoming.peer.listen)
                    && incoming.peer.role == PeerRole::TaskManager
                    && incoming.peer.name == resource_id.to_string()
                {
                    self.addresses.insert(resource_id, listen.clone());
                }
                if let Message::Metrics(report) = envelope.message {
                    self.take_metrics(report);
                    return; // for REST and `/metrics` only: no state machine takes it
                }
                if let (
                    Address::TaskExecutor(resource_id),
                    Message::JobMaster(JobMasterMessage::OfferSlots { data_address, .. }),
                ) = (envelope.from, &envelope.message)
                    && !data_address.is_empty()
                {
                    self.data_addresses.insert(resource_id, data_address.clone());
                }
                self.feed(now, job_manager::Input::Message(envelope));
            }
            Inbox::Rpc(RpcEvent::Closed { peer, reason }) if peer.role == PeerRole::TaskManager => {
                let Ok(resource_id) = peer.name.parse::<ResourceId>() else { return };
                self.data_addresses.remove(&resource_id);
                if self.addresses.remove(&resource_id).is_none() {
                    return;
                }
                tracing::warn!(%resource_id, %reason, "a TaskManager's connection closed; disconnecting it");
                let reason = format!("the connection to TaskManager {resource_id} closed: {reason}");
                let message =
                    Message::ResourceManager(ResourceManagerMessage::DisconnectTaskExecutor { resource_id, reason });
                let epoch = self.job_manager.epoch();
                let envelope =
                    Envelope { from: Address::TaskExecutor(resource_id), to: Address::ResourceManager, epoch, message };
                self.feed(now, job_manager::Input::Message(envelope));
            }
            Inbox::Rpc(RpcEvent::Closed { .. }) => {}
            Inbox::Rest(call) => self.rest_call(call),
            Inbox::Storage(reply) => self.feed(now, job_manager::Input::Storage(reply)),
            Inbox::Ha(answer) => {
                let Some(candidacy) = &mut self.candidacy else { return };
                let step = candidacy.answer(now, answer);
                self.check_leading(now); // a reply may have fenced it: nothing acts after that
                if let Step::Written(write) = step {
                    self.job_manager.ha_acknowledged(&write);
                }
            }
        }
    }

    /// With HA: exits the process unless it still leads in its JobManager's epoch.
    fn check_leading(&mut self, now: weir_core::time::Time) {
        let epoch = self.job_manager.epoch();
        if let Some(candidacy) = &mut self.candidacy {
            candidacy.check_leading(now, epoch);
        }
    }

    /// A new leader resumes every unfinished job of the HA records, and from now on records
    /// what a successor needs; REST reaches it from now on.
    fn take_over(&mut self, records: &weir_core::ha::HaRecords) {
        let now = self.clock.now();
        for recovery in records.recoveries() {
            let job_id = recovery.submission.job_id.map(|id| id.to_string()).unwrap_or_default();
            let from = recovery.submission.savepoint.clone().unwrap_or_else(|| "its start".to_string());
            tracing::info!(job = %job_id, %from, floor = %recovery.checkpoint_id_floor, "recovering a job");
            println!("recovering job {job_id} from {from}");
        }
        self.check_leading(now);
        self.job_manager.recover(now, records);
        if let Some(candidacy) = &self.candidacy {
            candidacy.gate().lead();
        }
    }

    fn rest_call(&mut self, call: RestCall) {
        let call = match call {
            RestCall::Dispatcher { message: DispatcherMessage::Submit { request, mut submission }, reply } => {
                let job_id = *submission.job_id.get_or_insert_with(|| self.fresh_job_id(&submission.graph.name));
                if let Some(Err(error)) = self.metadata.as_ref().map(|metadata| metadata.put_job(&submission)) {
                    let reason = format!("cannot record job {job_id}: {error}");
                    let _ = reply.send(ClientMessage::Rejected { request, reason });
                    return;
                }
                RestCall::Dispatcher { message: DispatcherMessage::Submit { request, submission }, reply }
            }
            other => other,
        };
        let state = ClusterState {
            job_manager: &self.job_manager,
            epoch_ms_at_zero: self.epoch_ms_at_zero,
            now: self.clock.now(),
            task_manager_addresses: &self.addresses,
            task_manager_data_addresses: &self.data_addresses,
            task_metrics: &self.metrics,
        };
        let in_flight = &mut self.in_flight;
        self.rest_clients.answer(call, &state, |envelope| in_flight.push_back(envelope));
    }

    fn fresh_job_id(&self, name: &str) -> JobId {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let epoch = self.job_manager.epoch().0;
        JobId(Hex128(stable_hash128(&[b"job", name.as_bytes(), &nanos.to_le_bytes(), &epoch.to_le_bytes()])))
    }

    /// Keeps a TaskManager's latest task counters, and forgets those of jobs the Dispatcher no
    /// longer knows (so the map stays as bounded as the Dispatcher's list of jobs).
    fn take_metrics(&mut self, report: weir_core::protocol::TaskMetricsReport) {
        self.metrics.extend(report.tasks);
        let jobs = self.job_manager.dispatcher().jobs();
        self.metrics.retain(|execution, _| jobs.contains_key(&execution.job));
    }

    /// Resubmits every recorded job from its latest completed checkpoint.
    fn recover(&mut self) {
        let Some(metadata) = &self.metadata else { return };
        let (jobs, problems) = metadata.jobs();
        for problem in problems {
            tracing::error!("{problem}; that job is not recovered");
        }
        for stored in jobs {
            let mut submission = stored.submission;
            let job_id = submission.job_id;
            if let Some(location) = stored.latest_checkpoint {
                submission.savepoint = Some(location);
            }
            tracing::info!(job = ?job_id, from = ?submission.savepoint, "recovering a job");
            println!(
                "recovering job {} from {}",
                job_id.map(|id| id.to_string()).unwrap_or_default(),
                submission.savepoint.as_deref().unwrap_or("its start")
            );
            let message =
                Message::Dispatcher(DispatcherMessage::Submit { request: 0, submission: Box::new(submission) });
            let epoch = Epoch(0);
            self.in_flight.push_back(Envelope { from: RECOVERY, to: Address::Dispatcher, epoch, message });
        }
    }

    /// Application mode: records and submits the one job.
    fn submit_application(&mut self, mut submission: weir_core::protocol::JobSubmission) -> Result<(), String> {
        if let Some((job_id, _)) = self.job_manager.dispatcher().jobs().iter().next() {
            // Recovered from the record: the application's job is already running again.
            self.application = Some(*job_id);
            return Ok(());
        }
        let job_id = *submission.job_id.get_or_insert_with(|| self.fresh_job_id(&submission.graph.name));
        if let Some(metadata) = &self.metadata {
            metadata.put_job(&submission)?;
        }
        self.application = Some(job_id);
        let message = Message::Dispatcher(DispatcherMessage::Submit { request: 0, submission: Box::new(submission) });
        self.in_flight.push_back(Envelope { from: RECOVERY, to: Address::Dispatcher, epoch: Epoch(0), message });
        Ok(())
    }

    /// Drains the JobManager's outputs and delivers local envelopes, until nothing moves.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some(envelope) = self.in_flight.pop_front() {
                moved = true;
                self.feed(self.clock.now(), job_manager::Input::Message(envelope));
            }
            // Record writes leave before the step's envelopes (core's order for HA).
            while let Some(write) = self.job_manager.poll_ha_write() {
                if let Some(candidacy) = &self.candidacy {
                    candidacy.write(write);
                }
            }
            while let Some(output) = self.job_manager.poll_output() {
                moved = true;
                match output {
                    Output::Send(envelope) => self.send(envelope),
                    Output::Storage(request) => self.store(request),
                    Output::Event(event) => self.observe(event),
                    Output::Task(_) => {}
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn send(&mut self, envelope: Envelope) {
        match envelope.to {
            Address::TaskExecutor(resource_id) => match self.addresses.get(&resource_id) {
                Some(address) => {
                    if !self.peers.send(address, envelope) {
                        tracing::warn!(%resource_id, "the queue to a TaskManager is full; an envelope was dropped");
                    }
                }
                None => tracing::debug!(%resource_id, "no address for a TaskManager; an envelope was dropped"),
            },
            Address::Client(_)
                if envelope.from == Address::Dispatcher || matches!(envelope.from, Address::JobMaster(_)) =>
            {
                if let Message::Client(message) = envelope.message {
                    self.client_message(envelope.to, message);
                }
            }
            _ => self.in_flight.push_back(envelope),
        }
    }

    fn client_message(&mut self, to: Address, message: ClientMessage) {
        if let ClientMessage::Rejected { reason, .. } = &message {
            tracing::warn!(?to, %reason, "a submission was refused");
        }
        if to == RECOVERY {
            return;
        }
        if let ClientMessage::Rejected { .. } = &message {
            // A refused submission is not a job: forget its record (unless it names a job
            // that exists, whose record is that job's).
            self.forget_unknown_jobs();
        }
        self.rest_clients.deliver(to, message);
    }

    /// Removes records of jobs the Dispatcher does not know (refused submissions).
    fn forget_unknown_jobs(&mut self) {
        let Some(metadata) = &self.metadata else { return };
        let (jobs, _) = metadata.jobs();
        for stored in jobs {
            let Some(job_id) = stored.submission.job_id else { continue };
            if !self.job_manager.dispatcher().jobs().contains_key(&job_id) {
                let _ = metadata.remove_job(job_id);
            }
        }
    }

    /// Carries out a storage request off the control task; its completion comes back as input.
    fn store(&mut self, request: StorageRequest) {
        let storage = self.storage.clone();
        let inbox = self.inbox.clone();
        let work = move || {
            if let Some(reply) = carry_out(&storage, request) {
                // A completion must not be lost (its checkpoint would never complete).
                #[cfg(not(madsim))]
                let _ = inbox.blocking_send(Inbox::Storage(reply));
                #[cfg(madsim)]
                let _ = inbox.try_send(Inbox::Storage(reply));
            }
        };
        // Files are written on the blocking pool; madsim has none, so there they are written
        // in place (the simulation's time stands still meanwhile).
        #[cfg(not(madsim))]
        tokio::task::spawn_blocking(work);
        #[cfg(madsim)]
        work();
    }

    fn observe(&mut self, event: Event) {
        match &event {
            Event::JobStatusChanged { job_id, to, .. } => {
                tracing::info!(job = %job_id, status = %to, "job status");
                if to.is_globally_terminal() {
                    if let Some(Err(error)) = self.metadata.as_ref().map(|metadata| metadata.remove_job(*job_id)) {
                        tracing::error!(job = %job_id, "cannot forget an ended job: {error}");
                    }
                    if self.application == Some(*job_id) {
                        self.application_status = Some(*to);
                    }
                }
            }
            Event::CheckpointCompleted { job_id, checkpoint, .. } => {
                let location = self
                    .job_manager
                    .job_masters()
                    .get(job_id)
                    .and_then(|master| master.checkpoint_coordinator())
                    .and_then(|coordinator| coordinator.latest_completed())
                    .filter(|completed| completed.checkpoint == *checkpoint)
                    .map(|completed| completed.location.clone());
                if let (Some(location), Some(metadata)) = (location, &self.metadata)
                    && let Err(error) = metadata.put_checkpoint(*job_id, &location)
                {
                    tracing::error!(job = %job_id, "cannot record checkpoint {checkpoint}: {error}");
                }
                tracing::info!(job = %job_id, %checkpoint, "checkpoint completed");
            }
            Event::TaskManagerRegistered { .. } | Event::TaskManagerLost { .. } | Event::RestartDecision { .. } => {
                tracing::info!(?event, "cluster event");
            }
            _ => tracing::debug!(?event, "event"),
        }
    }
}

/// Does what a storage request asks; the reply, if the request has one.
fn carry_out(storage: &CheckpointStorage, request: StorageRequest) -> Option<StorageReply> {
    match request {
        StorageRequest::WriteMetadata { job_id, checkpoint, location, bytes } => {
            Some(match storage.write(&location, METADATA_FILE, &bytes) {
                Ok(()) => StorageReply::MetadataWritten { job_id, checkpoint },
                Err(error) => StorageReply::MetadataWriteFailed { job_id, checkpoint, error },
            })
        }
        StorageRequest::ReadMetadata { job_id, location } => {
            let result = storage.read(&location, METADATA_FILE);
            Some(StorageReply::MetadataRead { job_id, location, result })
        }
        StorageRequest::Delete { location, .. } => {
            if let Err(error) = storage.delete(&location) {
                tracing::warn!("{error}");
            }
            None
        }
    }
}
