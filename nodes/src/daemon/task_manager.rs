//! `weir taskmanager`: a TaskExecutor driven over the network.
//!
//! One tokio runtime; one control task owns the TaskExecutor and feeds it, one input at a time,
//! the JobManager's envelopes (from the RPC listener), its task threads' reports and ticks when
//! its deadline passes. Its envelopes go to the JobManager's RPC address. Each task runs on its
//! own thread (as in Flink): a task is one operator chain stepping a `TaskRunner`, and per-record
//! work between threads is what makes stream processing slow, so a thread per task keeps a
//! chain's records on one core. Buffers to consumers in other TaskManagers travel on the data
//! channels (`runtime::exchange`), with credit-based flow control.
//!
//! A closed connection from the JobManager means it died: the TaskExecutor is told its
//! ResourceManager disconnected, so it registers again at once, with whichever JobManager
//! answers at that address (a restarted one leads in a higher epoch, and the deposed one's jobs
//! are released).
//!
//! With high availability (`file`, `etcd`) the JobManager's address is not configured but
//! retrieved: a thread reads the lease from the store twice per renew interval, and a live
//! leader of a higher epoch than any seen becomes the address envelopes go to, with
//! `LeaderFound` fed to the TaskExecutor so it registers there at once.

use super::journal::{self, Journal, JournalSettings};
use super::{Endpoint, init_logging, resolve_listen};
use crate::rest::metrics::TaskManagerGauges;
use crate::runtime::Clock;
use crate::runtime::credit::ChannelBuffers;
use crate::runtime::exchange::Exchange;
use crate::runtime::host::TaskHost;
use crate::runtime::operators::Operators;
use crate::runtime::storage::CheckpointStorage;
use crate::runtime::task_thread::MetricsBoard;
use crate::runtime::task_thread::TaskEvent;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use weir_core::config::{Config, RawConfig};
use weir_core::ids::{Epoch, Hex128, JobId, ResourceId, stable_hash128};
use weir_core::leader::LeaseView;
use weir_core::protocol::{Address, Envelope, Event, Message, Output, Role, TaskCommand, TaskExecutorMessage};
use weir_core::task_executor::{self, TaskExecutor, TaskExecutorConfig};
use weir_net::data::DataConfig;
use weir_net::handshake::{Hello, PROTOCOL_VERSION, PeerRole};
use weir_net::rpc::{Peers, RpcEvent};

/// Envelopes and task reports waiting for the control task.
const INBOX: usize = 4096;

/// What reaches the control task.
enum Inbox {
    Rpc(RpcEvent),
    Task(TaskEvent),
    /// Leader retrieval read the HA store's lease.
    Leader(LeaseView),
}

/// Runs a TaskManager until the process is killed.
pub fn run(raw: RawConfig, data_dir: std::path::PathBuf) -> Result<(), String> {
    run_with_operators(raw, data_dir, Operators::new())
}

/// As [`run`], with the Rust operators of the program this process runs.
pub fn run_with_operators(raw: RawConfig, data_dir: std::path::PathBuf, operators: Operators) -> Result<(), String> {
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
    runtime.block_on(serve(raw, config, data_dir, operators))
}

/// The TaskManager on the current runtime (a madsim node in simulation tests), with the Rust
/// operators of the program this process runs.
pub async fn serve(
    raw: RawConfig,
    config: Config,
    data_dir: std::path::PathBuf,
    operators: Operators,
) -> Result<(), String> {
    let host = config.task_manager.host.clone();
    let (rpc_listener, rpc_address) = resolve_listen(&host, config.task_manager.rpc_port).await?;
    let (data_listener, data_address) = resolve_listen(&host, config.task_manager.data_port).await?;
    let resource_id = match &config.task_manager.resource_id {
        Some(text) => text.parse().map_err(|_| format!("taskmanager.resource-id {text:?} is not 32 hex digits"))?,
        None => fresh_resource_id(&rpc_address),
    };
    let job_manager = Endpoint::job_manager(&config);
    let token = config.security.token.clone();
    let mut te_config = TaskExecutorConfig::from_config(&config).map_err(|error| error.to_string())?;
    te_config.data_address = data_address.clone();
    let journal_settings = JournalSettings::from_raw(&raw, &data_dir)?;
    let clock = Clock::start();
    let started_at = clock.now();
    let executor = TaskExecutor::new(resource_id, te_config, started_at);
    let journal =
        Journal::open(&journal_settings, journal::Header::task_manager(&raw, resource_id, &data_address, started_at));
    journal.spawn_upkeep();
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: PeerRole::TaskManager,
        name: resource_id.to_string(),
        listen: Some(rpc_address.clone()),
        token: token.clone(),
    };
    let peers = Peers::new(hello, weir_net::frame::DEFAULT_MAX_FRAME_BYTES);
    let (inbox, mut receiver) = mpsc::channel(INBOX);
    super::serve_rpc(rpc_listener, token.clone(), inbox.clone(), Inbox::Rpc);
    let data = DataConfig { token, ..DataConfig::default() };
    let buffers = ChannelBuffers::from_config(&config.task_manager);
    let exchange = Exchange::remote(data_address.clone(), tokio::runtime::Handle::current(), data, buffers);
    tokio::spawn(exchange.serve(data_listener));
    tracing::info!(%resource_id, rpc = %rpc_address, data = %data_address, job_manager = %job_manager.address,
        slots = config.task_manager.slots, "TaskManager started");
    println!("TaskManager {resource_id} started: rpc {rpc_address}, data {data_address}");
    let host = TaskHost::new(&raw, CheckpointStorage::new(data_dir), exchange, clock, operators);
    let gauges = Arc::new(Mutex::new(TaskManagerGauges::default()));
    serve_metrics(&config, host.metrics.clone(), gauges.clone()).await;
    // With HA the leader's address comes from the store, and a new leader's is followed.
    if let Some(backend) = super::ha::open(&config.ha)? {
        let leaders = inbox.clone();
        let found = Box::new(move |view| leaders.blocking_send(Inbox::Leader(view)).is_ok());
        super::ha::spawn_retrieval(backend, super::ha::retrieval_interval(&config.ha), found)?;
    }
    let mut driver = Driver {
        clock,
        resource_id,
        executor,
        job_manager: job_manager.address,
        leader_epoch: Epoch(0),
        peers,
        inbox,
        host,
        journal,
        gauges,
    };
    driver.drain();
    let mut metrics_reported = driver.clock.now();
    loop {
        let now = driver.clock.now();
        let next_report = metrics_reported.after(METRICS_REPORT_INTERVAL);
        let wake = driver.executor.poll_timeout().map_or(next_report, |at| at.min(next_report));
        let wait = super::wait_until(Some(wake), now);
        match tokio::time::timeout(wait, receiver.recv()).await {
            Ok(Some(mail)) => driver.handle(mail),
            Ok(None) => return Ok(()),
            Err(_) => {}
        }
        let now = driver.clock.now();
        if driver.executor.poll_timeout().is_some_and(|at| at <= now) {
            driver.feed(now, task_executor::Input::Tick);
        }
        driver.drain();
        driver.prune();
        if now >= next_report {
            driver.report_metrics();
            metrics_reported = now;
        }
    }
}

/// How often a TaskManager sends its tasks' counters to the JobManager (Flink's web UI
/// refreshes its metrics about as often).
const METRICS_REPORT_INTERVAL: weir_core::time::Duration = weir_core::time::Duration::from_millis(1000);

/// Serves `/metrics` on `taskmanager.host`:`metrics.port` and prints where; a port that cannot
/// be bound (another TaskManager on this machine has 9249) is a warning, not a failure.
#[cfg(not(madsim))]
async fn serve_metrics(config: &Config, board: MetricsBoard, gauges: Arc<Mutex<TaskManagerGauges>>) {
    let (host, port) = (&config.task_manager.host, config.task_manager.metrics_port);
    let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("warning: cannot bind the metrics endpoint to {host}:{port}: {error}; /metrics is off");
            return;
        }
    };
    match listener.local_addr() {
        Ok(address) => println!("Metrics at http://{address}/metrics"),
        Err(error) => eprintln!("warning: the metrics endpoint: {error}"),
    }
    let render = move || {
        let board = board.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let gauges = gauges.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        crate::rest::metrics::task_manager(&board, &gauges)
    };
    tokio::spawn(crate::rest::serve_metrics(listener, config.security.token.clone(), Arc::new(render)));
}

/// Under madsim there is no metrics endpoint (axum cannot take a simulated listener).
#[cfg(madsim)]
async fn serve_metrics(config: &Config, board: MetricsBoard, gauges: Arc<Mutex<TaskManagerGauges>>) {
    let _ = (config, board, gauges);
}

/// A resource id unique to this process start.
fn fresh_resource_id(rpc_address: &str) -> ResourceId {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let pid = std::process::id();
    ResourceId(Hex128(stable_hash128(&[
        b"taskmanager",
        rpc_address.as_bytes(),
        &pid.to_le_bytes(),
        &nanos.to_le_bytes(),
    ])))
}

struct Driver {
    clock: Clock,
    resource_id: ResourceId,
    executor: TaskExecutor,
    job_manager: String,
    /// The highest leader epoch leader retrieval found (HA only).
    leader_epoch: Epoch,
    peers: Peers,
    inbox: mpsc::Sender<Inbox>,
    /// The tasks running here.
    host: TaskHost,
    /// Every input the TaskExecutor is fed, for replay.
    journal: Journal,
    /// What `/metrics` shows besides the tasks' numbers.
    gauges: Arc<Mutex<TaskManagerGauges>>,
}

impl Driver {
    /// Journals `input`, then feeds it to the TaskExecutor.
    fn feed(&mut self, now: weir_core::time::Time, input: task_executor::Input) {
        self.journal.record(now, &input);
        self.executor.handle(now, input);
    }

    fn handle(&mut self, mail: Inbox) {
        let now = self.clock.now();
        match mail {
            Inbox::Rpc(RpcEvent::Message(incoming)) => {
                let Envelope { from, to, epoch, message } = incoming.envelope;
                match (to, message) {
                    (Address::TaskExecutor(id), Message::TaskExecutor(message)) if id == self.resource_id => {
                        tracing::debug!(?from, %epoch, ?message, "in");
                        self.feed(now, task_executor::Input::Message { from, epoch, message });
                    }
                    (to, _) => tracing::warn!(peer = %incoming.peer.name, ?to, "ignored an envelope not for us"),
                }
            }
            Inbox::Rpc(RpcEvent::Closed { peer, reason }) if peer.role == PeerRole::JobManager => {
                tracing::warn!(peer = %peer.name, %reason, "lost the JobManager's connection; registering again");
                let epoch = self.executor.leader_epoch();
                let message = TaskExecutorMessage::DisconnectResourceManager { reason };
                self.feed(now, task_executor::Input::Message { from: Address::ResourceManager, epoch, message });
            }
            Inbox::Rpc(RpcEvent::Closed { .. }) => {}
            Inbox::Task(TaskEvent::State(report)) => {
                self.feed(now, task_executor::Input::TaskReport(report));
            }
            Inbox::Task(TaskEvent::Checkpoint(report)) => {
                self.feed(now, task_executor::Input::CheckpointReport(report));
            }
            Inbox::Task(TaskEvent::FinalCheckpointAwaited { execution, checkpoint_latest }) => {
                self.feed(now, task_executor::Input::FinalCheckpointAwaited { execution, checkpoint_latest });
            }
            Inbox::Leader(view) => self.leader_found(now, &view),
        }
    }

    /// Follows a live leader of a higher epoch than any seen: its RPC address from now on, and
    /// the TaskExecutor registers with it at once (a lower epoch is never followed).
    fn leader_found(&mut self, now: weir_core::time::Time, view: &LeaseView) {
        let Some((leader, epoch)) = super::ha::LeaderAddress::of_view(view) else { return };
        if epoch <= self.leader_epoch {
            return;
        }
        tracing::info!(leader = %leader.rpc, %epoch, "leader retrieval found a new leader");
        self.leader_epoch = epoch;
        self.job_manager = leader.rpc;
        self.feed(now, task_executor::Input::LeaderFound { epoch });
    }

    fn drain(&mut self) {
        while let Some(output) = self.executor.poll_output() {
            match output {
                Output::Send(envelope) => {
                    tracing::debug!(to = ?envelope.to, epoch = %envelope.epoch, message = ?envelope.message, "out");
                    if !self.peers.send(&self.job_manager, envelope) {
                        tracing::warn!("the queue to the JobManager is full; an envelope was dropped");
                    }
                }
                Output::Task(command) => self.task_command(command),
                Output::Event(event) => log_event(&event),
                Output::Storage(_) => {}
            }
        }
    }

    fn task_command(&mut self, command: TaskCommand) {
        let inbox = self.inbox.clone();
        let report = Arc::new(move |event| {
            // A full inbox blocks the task thread briefly rather than losing a state report.
            #[cfg(not(madsim))]
            let _ = inbox.blocking_send(Inbox::Task(event));
            // A simulated task runs on the runtime, where it must not block.
            #[cfg(madsim)]
            if inbox.try_send(Inbox::Task(event)).is_err() {
                tracing::error!("the TaskManager's inbox is full; a task report was lost");
            }
        });
        if let Some(failed) = self.host.command(command, report) {
            let _ = self.inbox.try_send(Inbox::Task(TaskEvent::State(failed)));
        }
    }

    /// Sends the latest counters of the tasks running here to the JobManager, for its REST API
    /// and `/metrics`. Nothing is sent while no task runs or none has registered with it.
    fn report_metrics(&mut self) {
        let board = self.host.metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if board.is_empty() || self.executor.leader_epoch().0 == 0 {
            return;
        }
        let tasks = board.iter().map(|(execution, metrics)| (*execution, *metrics)).collect();
        drop(board);
        let message = Message::Metrics(weir_core::protocol::TaskMetricsReport { tasks });
        let (from, epoch) = (Address::TaskExecutor(self.resource_id), self.executor.leader_epoch());
        let envelope = Envelope { from, to: Address::ResourceManager, epoch, message };
        if !self.peers.send(&self.job_manager, envelope) {
            tracing::debug!("the queue to the JobManager is full; a metrics report was skipped");
        }
    }

    /// Forgets the plans and channels of jobs that hold no slot here any more.
    fn prune(&mut self) {
        let holding: std::collections::BTreeSet<JobId> = self
            .executor
            .slots()
            .iter()
            .filter_map(|slot| match slot.state {
                task_executor::SlotState::Allocated { job, .. } => Some(job),
                _ => None,
            })
            .collect();
        self.host.forget_jobs(|job| holding.contains(&job));
        let slots = self.executor.slots();
        let free = slots.iter().filter(|slot| slot.state == task_executor::SlotState::Free).count();
        let vertex_ids = self.host.plans.vertex_ids().into_iter().map(|(job, index, id)| ((job, index), id)).collect();
        let gauges = TaskManagerGauges { slots_total: slots.len() as u64, slots_free: free as u64, vertex_ids };
        *self.gauges.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = gauges;
    }
}

fn log_event(event: &Event) {
    tracing::debug!(?event, "event");
}
