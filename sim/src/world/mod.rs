//! The simulated world: nodes, network, clock and the event loop.
//!
//! Events are processed in (time, sequence) order. After each one, the invariants of every node
//! it touched and the cluster-wide ones are checked (see `World::check`). A run
//! ends at the scenario's `run_for`, or once every job has ended and the cluster had time to
//! clean up (a heartbeat timeout), whichever comes first.

mod data;
mod faults;
mod ha;
mod node;
mod queue;
mod timeline;

pub use data::fault_free_output;

use crate::dataplane::{DataPlane, Packet};
use crate::disk::{SharedDisk, lock};
use crate::network::{Network, NodeIndex};
use crate::report::{JobOutcome, RunReport, Violation};
use crate::scenario::{FaultSpec, Scenario};
use crate::tasks::{DueReport, JobModel, Tasks};
use crate::trace::TraceHasher;
use node::Node;
use std::collections::BTreeMap;
use weir_core::config::{Config, RawConfig};
use weir_core::dispatcher::{ClusterMode, prepare};
use weir_core::ids::{Epoch, Hex128, JobId, ResourceId, stable_hash128};
use weir_core::job_manager::{self, JobManager};
use weir_core::plan::execution::ExecutionGraph;
use weir_core::protocol::{
    Address, ClientMessage, DispatcherMessage, Envelope, Event, JobStatus, JobSubmission, Message, Output, Role,
    StorageReply, TaskCheckpointReport, TaskCommand, TaskReport,
};
use weir_core::rng::Rng;
use weir_core::task_executor::{self, SlotState, TaskExecutor, TaskExecutorConfig};
use weir_core::time::{Duration, Time};

/// The node index of the JobManager; TaskManagers follow, then the client.
const JOB_MANAGER: NodeIndex = 0;
/// The scenario's client address.
const CLIENT: Address = Address::Client(0);
/// How often the client asks for a stop-with-savepoint (every 2 s) before it gives up.
const STOP_ATTEMPTS: u32 = 20;

/// Something that happens at a virtual time.
#[derive(Debug)]
enum Action {
    Deliver {
        from: NodeIndex,
        to: NodeIndex,
        envelope: Envelope,
    },
    Wake {
        node: NodeIndex,
        incarnation: u32,
    },
    Report {
        node: NodeIndex,
        incarnation: u32,
        report: TaskReport,
    },
    Ack {
        node: NodeIndex,
        incarnation: u32,
        report: TaskCheckpointReport,
    },
    FinalCheckpointAwaited {
        node: NodeIndex,
        incarnation: u32,
        execution: weir_core::protocol::ExecutionId,
        checkpoint_latest: Option<weir_core::ids::CheckpointId>,
    },
    Stored {
        node: NodeIndex,
        incarnation: u32,
        reply: StorageReply,
        write: Option<(String, Vec<u8>)>,
    },
    ToStore {
        from: NodeIndex,
        incarnation: u32,
        message: ha::StoreMessage,
    },
    FromStore {
        to: NodeIndex,
        incarnation: u32,
        answer: ha::StoreAnswer,
    },
    Retrieve {
        node: NodeIndex,
        incarnation: u32,
    },
    Resume {
        node: NodeIndex,
    },
    ClientRetry {
        envelope: Envelope,
    },
    Step {
        node: NodeIndex,
        incarnation: u32,
        execution: weir_core::protocol::ExecutionId,
    },
    Data {
        from: NodeIndex,
        to: NodeIndex,
        packet: Packet,
    },
    StateWritten {
        node: NodeIndex,
        incarnation: u32,
        path: String,
        bytes: Vec<u8>,
        report: TaskCheckpointReport,
    },
    Submit {
        job: usize,
    },
    Cancel {
        job: usize,
    },
    StopWithSavepoint {
        job: usize,
        attempt: u32,
    },
    Fault {
        fault: usize,
    },
    Restart {
        node: NodeIndex,
    },
    Restore {
        a: NodeIndex,
        b: Option<NodeIndex>,
    },
    /// Cut directions come back (the end of a one-way partition or a split).
    Uncut {
        cuts: Vec<(NodeIndex, NodeIndex)>,
    },
    /// A full disk has space again.
    DiskFreed,
}

enum Machine {
    JobManager(Box<JobManager>),
    TaskManager(Box<TaskExecutor>),
    /// A JobManager that does not lead (or has not read the records yet).
    Standby,
    /// The HA store.
    Store(Box<ha::StoreNode>),
    Down,
}

/// A job of the scenario, as the client sees it.
struct ClientJob {
    /// Checkpoints completed, in order of completion.
    checkpoints: Vec<weir_core::ids::CheckpointId>,
    /// Checkpoints that failed.
    failed_checkpoints: u32,
    /// Checkpoints dropped as unreadable.
    dropped_checkpoints: u32,
    /// The savepoint its stop-with-savepoint took.
    savepoint: Option<String>,
    job_id: Option<JobId>,
    status: Option<JobStatus>,
    rejected: Option<String>,
    restarts: u32,
}

/// One seeded run of a scenario.
pub struct World<'s> {
    scenario: &'s Scenario,
    /// The scenario's scheduled faults, then the nemesis's drawn for this seed.
    faults: Vec<FaultSpec>,
    /// Whether `faults` was given explicitly (a shrunk plan): no nemesis then.
    explicit_faults: bool,
    /// The faults as they actually fired: times, victims and durations resolved.
    fault_plan: Vec<FaultSpec>,
    seed: u64,
    cluster_config: RawConfig,
    config: Config,
    now: Time,
    queue: queue::EventQueue<Action>,
    sequence: u64,
    rng: Rng,
    network: Network,
    nodes: Vec<Node>,
    tasks: Tasks,
    /// Real tasks of jobs with `tasks = "real"`.
    dataplane: DataPlane,
    /// The shared storage: checkpoints, part files, input files.
    disk: SharedDisk,
    /// A fault-free run computing the reference output: no output comparison of its own.
    reference_run: bool,
    /// A checkpoint damage that also hits checkpoints completing until this time (those whose
    /// acknowledgements were all in when the fault struck), with its kind.
    damage_armed: Option<(Time, crate::disk::Damage)>,
    /// A slow-fsync fault: until when, and the extra time of every fsync.
    slow_fsync: Option<(Time, Duration)>,
    jobs: Vec<ClientJob>,
    trace: TraceHasher,
    events: u64,
    violations: Vec<Violation>,
    faults_fired: Vec<String>,
    /// Last status and state seen per job and execution, to check transitions.
    seen_jobs: BTreeMap<JobId, JobStatus>,
    seen_executions: BTreeMap<weir_core::protocol::ExecutionId, weir_core::protocol::ExecutionState>,
    all_ended_at: Option<Time>,
    /// Every event, described, when asked for.
    log: Option<Vec<String>>,
    /// Stop after this event (for dumping states).
    stop_after: Option<u64>,
    /// The fault points reached, as the report lists them.
    buggify_sites: Vec<String>,
    /// The timeline, when asked for (`weir sim replay --html`).
    timeline: Option<Vec<crate::timeline::TimelineEvent>>,
    /// Timeline events left out past its bound.
    timeline_dropped: u64,
}

/// Runs `scenario` with `seed`.
pub fn run(scenario: &Scenario, seed: u64) -> RunReport {
    run_logged(scenario, seed, false)
}

/// Runs `scenario` with `seed`; with `log`, the report lists every event processed.
pub fn run_logged(scenario: &Scenario, seed: u64, log: bool) -> RunReport {
    run_with(scenario, seed, log, None)
}

/// Runs `scenario` with `seed` under exactly `faults` (fixed times and victims) instead of the
/// scenario's schedule and nemesis: how a shrunk run is replayed.
pub fn run_with_faults(scenario: &Scenario, seed: u64, faults: Vec<FaultSpec>) -> RunReport {
    run_with(scenario, seed, false, Some(faults))
}

/// Every node's state after event `until` of a seeded run: `(node, state)` in node order, the
/// report of the run up to there, and the time reached.
pub fn states_at(scenario: &Scenario, seed: u64, until: u64) -> Result<(RunReport, Vec<(String, String)>), String> {
    let mut world = World::new(scenario, seed, None)?;
    world.stop_after = Some(until);
    world.log = Some(Vec::new());
    world.run_to_end();
    let states = world.nodes.iter().map(|node| (node.name.clone(), node.describe())).collect();
    Ok((world.report(), states))
}

/// Runs `scenario` with `seed` and collects its timeline (for `weir sim replay --html`).
pub fn run_timeline(scenario: &Scenario, seed: u64) -> Result<(RunReport, crate::timeline::Timeline), String> {
    let mut world = World::new(scenario, seed, None)?;
    world.timeline = Some(Vec::new());
    world.run_to_end();
    let report = world.report();
    let timeline = world.take_timeline(&report);
    Ok((report, timeline))
}

fn run_with(scenario: &Scenario, seed: u64, log: bool, faults: Option<Vec<FaultSpec>>) -> RunReport {
    match World::new(scenario, seed, faults) {
        Ok(mut world) => {
            world.log = log.then(Vec::new);
            world.run_to_end();
            world.report()
        }
        Err(message) => RunReport {
            scenario: scenario.name.clone(),
            seed,
            events: 0,
            virtual_ms: 0,
            wall_ms: 0,
            trace_hash: String::new(),
            jobs: Vec::new(),
            violations: vec![Violation { event: 0, time_ms: 0, message }],
            unmet: Vec::new(),
            faults: Vec::new(),
            buggify: Vec::new(),
            fault_plan: Vec::new(),
            log: Vec::new(),
        },
    }
}

fn node_name(nodes: &[Node], node: NodeIndex) -> &str {
    nodes.get(node).map(|node| node.name.as_str()).unwrap_or("client")
}

fn describe(action: &Action, nodes: &[Node]) -> String {
    match action {
        Action::Deliver { from, to, envelope } => format!(
            "deliver {} {} -> {}: {:?}",
            envelope.message.kind(),
            node_name(nodes, *from),
            node_name(nodes, *to),
            envelope.message
        ),
        Action::Wake { node, .. } => format!("wake {}", node_name(nodes, *node)),
        Action::Data { from, to, packet } => format!(
            "data {} -> {} ({} -> {}, {} bytes)",
            node_name(nodes, *from),
            node_name(nodes, *to),
            packet.producer,
            packet.consumer,
            packet.buffer.len_bytes()
        ),
        Action::StateWritten { node, path, .. } => format!("state file written on {}: {path}", node_name(nodes, *node)),
        Action::Stored { reply, .. } => format!("metadata stored: {reply:?}"),
        Action::Step { node, execution, .. } => format!("step {execution} on {}", node_name(nodes, *node)),
        Action::Report { node, report, .. } => {
            format!("task report on {}: {} {}", node_name(nodes, *node), report.execution, report.state)
        }
        other => format!("{other:?}"),
    }
}

impl<'s> World<'s> {
    fn new(scenario: &'s Scenario, seed: u64, faults: Option<Vec<FaultSpec>>) -> Result<World<'s>, String> {
        let mut cluster_config = RawConfig::new();
        for (key, value) in &scenario.config {
            cluster_config.set(key.clone(), value.clone());
        }
        cluster_config.set("taskmanager.numberOfTaskSlots", scenario.cluster.slots.to_string());
        let config = Config::from_raw(&cluster_config).map_err(|error| format!("scenario configuration: {error}"))?;
        let disk = data::initial_disk(scenario);
        let mut world = World {
            scenario,
            explicit_faults: faults.is_some(),
            faults: faults.unwrap_or_else(|| scenario.faults.clone()),
            fault_plan: Vec::new(),
            seed,
            cluster_config,
            config,
            now: Time::ZERO,
            queue: queue::EventQueue::new(),
            sequence: 0,
            rng: Rng::new(seed),
            network: Network::new(scenario.network.clone()),
            nodes: Vec::new(),
            tasks: Tasks::default(),
            dataplane: DataPlane::new(disk.clone(), scenario.data.record_cost),
            disk,
            reference_run: false,
            damage_armed: None,
            slow_fsync: None,
            jobs: Vec::new(),
            trace: TraceHasher::default(),
            events: 0,
            violations: Vec::new(),
            faults_fired: Vec::new(),
            seen_jobs: BTreeMap::new(),
            seen_executions: BTreeMap::new(),
            all_ended_at: None,
            log: None,
            stop_after: None,
            buggify_sites: Vec::new(),
            timeline: None,
            timeline_dropped: 0,
        };
        if scenario.cluster.highly_available() {
            for index in 0..scenario.cluster.job_managers {
                world.nodes.push(Node::new(format!("jm-{index}")));
            }
        } else {
            world.nodes.push(Node::new("jm".into()));
        }
        for index in 0..scenario.cluster.task_managers {
            world.nodes.push(Node::new(format!("tm-{index}")));
        }
        // Every process's clock drifts (a JobManager's election clock drifts in `ha.rs`).
        let drift_max = i64::from(scenario.cluster.clock_drift_ppm);
        if drift_max > 0 {
            for node in 0..world.nodes.len() {
                if !(scenario.cluster.highly_available() && world.is_job_manager_node(node)) {
                    let drift = world.rng.between(-drift_max, drift_max);
                    world.nodes[node].clock = crate::clock::Clock::new(Duration::ZERO, drift);
                }
            }
        }
        if scenario.cluster.highly_available() {
            let mut store = Node::new("store".into());
            store.set_machine(World::new_store());
            world.nodes.push(store);
        }
        for node in 0..world.nodes.len() {
            if !matches!(world.nodes[node].machine(), Machine::Store(_)) {
                world.start_node(node)?;
            }
        }
        world.schedule_scenario();
        Ok(world)
    }

    fn schedule(&mut self, at: Time, action: Action) {
        self.sequence += 1;
        self.queue.push(queue::Due { at, sequence: self.sequence, scheduled_at: self.now, action });
    }

    fn schedule_scenario(&mut self) {
        for (job, spec) in self.scenario.jobs.iter().enumerate() {
            self.jobs.push(ClientJob {
                checkpoints: Vec::new(),
                failed_checkpoints: 0,
                dropped_checkpoints: 0,
                savepoint: None,
                job_id: None,
                status: None,
                rejected: None,
                restarts: 0,
            });
            let at = spec.submit_at.draw(&mut self.rng);
            if spec.from_savepoint_of.is_none() {
                self.schedule(Time::ZERO.after(at), Action::Submit { job });
            }
            if let Some(stop) = spec.stop_with_savepoint_at {
                let at = stop.draw(&mut self.rng);
                self.schedule(Time::ZERO.after(at), Action::StopWithSavepoint { job, attempt: 0 });
            }
            if let Some(cancel) = spec.cancel_at {
                let at = cancel.draw(&mut self.rng);
                self.schedule(Time::ZERO.after(at), Action::Cancel { job });
            }
        }
        if let (Some(nemesis), false) = (&self.scenario.nemesis, self.explicit_faults) {
            let drawn = nemesis.draw(&mut self.rng, self.scenario.cluster.task_managers);
            self.faults.extend(drawn);
        }
        for fault in 0..self.faults.len() {
            let at = self.faults[fault].at.draw(&mut self.rng);
            self.schedule(Time::ZERO.after(at), Action::Fault { fault });
        }
    }

    /// Starts (or restarts) a node with fresh state; a TaskManager gets a new resource id.
    fn start_node(&mut self, node: NodeIndex) -> Result<(), String> {
        let incarnation = self.nodes[node].incarnation + 1;
        let machine = if self.is_ha() && self.is_job_manager_node(node) {
            self.start_candidate(node, incarnation)
        } else if node == JOB_MANAGER {
            let epoch = Epoch(incarnation as u64);
            let seed = self.rng.next_u64();
            let job_manager = JobManager::new(self.cluster_config.clone(), ClusterMode::Session, epoch, seed)?;
            Machine::JobManager(Box::new(job_manager))
        } else {
            let name = self.nodes[node].name.clone();
            let bits = stable_hash128(&[b"tm", name.as_bytes(), &incarnation.to_le_bytes(), &self.seed.to_le_bytes()]);
            let resource_id = ResourceId(Hex128(bits));
            self.nodes[node].resource_id = Some(resource_id);
            let config = TaskExecutorConfig::from_config(&self.config).map_err(|error| error.to_string())?;
            let local = self.nodes[node].clock.local(self.now);
            Machine::TaskManager(Box::new(TaskExecutor::new(resource_id, config, local)))
        };
        let entry = &mut self.nodes[node];
        entry.set_machine(machine);
        entry.incarnation = incarnation;
        entry.wake_at = None;
        entry.leader = None;
        if self.is_ha() && matches!(self.nodes[node].machine(), Machine::TaskManager(_)) {
            self.retrieve(node, incarnation);
        }
        self.after_input(node);
        Ok(())
    }

    fn run_to_end(&mut self) {
        // Fault points are on for this run only (and off in a fault-free run nested in another).
        let buggify = match self.scenario.buggify {
            true => weir_core::buggify::enable(self.seed ^ 0xb066_1f7e_5eed_0000),
            false => weir_core::buggify::disable(),
        };
        self.run_events();
        if self.scenario.buggify {
            self.buggify_sites = buggify
                .sites()
                .into_iter()
                .map(|(site, on, fired)| format!("{site}: {}, fired {fired} times", if on { "on" } else { "off" }))
                .collect();
        }
    }

    fn run_events(&mut self) {
        let end = Time::ZERO.after(self.scenario.run_for);
        let settle = self.config.heartbeat.timeout.saturating_mul(2);
        while let Some(next) = self.queue.pop() {
            if self.stop_after.is_some_and(|last| self.events >= last) {
                return;
            }
            if next.at > end || self.all_ended_at.is_some_and(|at| next.at > at.after(settle)) {
                break;
            }
            debug_assert!(next.at >= self.now, "time never goes backwards");
            self.now = next.at;
            self.events += 1;
            self.trace.record(&(next.at.0, next.sequence));
            let faults_before = self.faults_fired.len();
            self.note_action(&next.action, next.scheduled_at);
            self.process(next.action);
            self.note_faults(faults_before);
            self.check(self.events);
        }
        self.final_checks();
    }

    /// The node an action happens on, if it is one that a pause holds back.
    fn target(action: &Action) -> Option<NodeIndex> {
        match action {
            Action::Deliver { to, .. } | Action::Data { to, .. } | Action::FromStore { to, .. } => Some(*to),
            Action::Wake { node, .. }
            | Action::Report { node, .. }
            | Action::Ack { node, .. }
            | Action::FinalCheckpointAwaited { node, .. }
            | Action::Stored { node, .. }
            | Action::Step { node, .. }
            | Action::StateWritten { node, .. }
            | Action::Retrieve { node, .. } => Some(*node),
            _ => None,
        }
    }

    fn process(&mut self, action: Action) {
        if let Some(log) = &mut self.log {
            log.push(format!("#{} {} {}", self.events, self.now, describe(&action, &self.nodes)));
        }
        if let Some(until) = Self::target(&action).and_then(|node| self.nodes.get(node)?.paused_until) {
            self.schedule(until, action); // a stopped process handles nothing until it wakes
            return;
        }
        match action {
            Action::ToStore { from, incarnation, message } => self.store_received(from, incarnation, message),
            Action::FromStore { to, incarnation, answer } => self.store_answered(to, incarnation, answer),
            Action::Retrieve { node, incarnation } => self.retrieve(node, incarnation),
            Action::Resume { node } => self.resume(node),
            Action::ClientRetry { envelope } => self.send(CLIENT_NODE, envelope),
            Action::Deliver { from, to, envelope } => self.deliver(from, to, envelope),
            Action::Wake { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation {
                    self.nodes[node].wake_at = None;
                    self.trace.record(&("wake", node));
                    self.gate(node);
                    self.feed(node, NodeInput::Tick);
                    if matches!(self.nodes[node].machine(), Machine::Standby) {
                        self.after_input(node); // the election's next tick
                    }
                }
            }
            Action::Report { node, incarnation, report } => {
                let live = self.nodes[node].incarnation == incarnation
                    && matches!(self.nodes[node].machine(), Machine::TaskManager(_));
                if live && self.is_real(report.execution.job) {
                    self.trace.record(&report);
                    self.feed(node, NodeInput::Report(report));
                } else if live && self.tasks.applies(node, &report) {
                    self.trace.record(&report);
                    let follow = self.tasks.reported(self.now, &report, &mut self.rng);
                    self.schedule_reports(follow);
                    self.feed(node, NodeInput::Report(report));
                }
            }
            Action::Ack { node, incarnation, report } => {
                let live = self.nodes[node].incarnation == incarnation;
                let real = self.is_real(report.execution.job);
                if live && (real || self.tasks.ack_applies(node, &report)) {
                    self.trace.record(&report);
                    self.feed(node, NodeInput::Ack(report));
                }
            }
            Action::FinalCheckpointAwaited { node, incarnation, execution, checkpoint_latest } => {
                if self.nodes[node].incarnation == incarnation {
                    self.trace.record(&(execution, checkpoint_latest));
                    self.feed(node, NodeInput::FinalCheckpointAwaited { execution, checkpoint_latest });
                }
            }
            Action::Stored { node, incarnation, reply, write } => {
                self.gate(node); // a deposed leader's completion writes nothing
                if self.nodes[node].incarnation == incarnation
                    && matches!(self.nodes[node].machine(), Machine::JobManager(_))
                {
                    let mut reply = reply;
                    if let Some((path, bytes)) = write {
                        let full = lock(&self.disk).is_full();
                        if let (true, StorageReply::MetadataWritten { job_id, checkpoint }) = (full, &reply) {
                            let error = format!("{path}: {}", crate::disk::NO_SPACE);
                            reply =
                                StorageReply::MetadataWriteFailed { job_id: *job_id, checkpoint: *checkpoint, error };
                        } else {
                            lock(&self.disk).write(&path, bytes);
                            self.damage_if_armed();
                        }
                    }
                    self.trace.record(&reply);
                    self.feed(node, NodeInput::Stored(reply));
                }
            }
            Action::Step { node, incarnation, execution } => self.step_task(node, incarnation, execution),
            Action::Data { from, to, packet } => self.deliver_data(from, to, packet),
            Action::StateWritten { node, incarnation, path, bytes, report } => {
                self.state_written(node, incarnation, path, bytes, report)
            }
            Action::Submit { job } => self.submit(job),
            Action::Cancel { job } => self.cancel(job),
            Action::StopWithSavepoint { job, attempt } => self.stop_with_savepoint(job, attempt),
            Action::Fault { fault } => self.fault(fault),
            Action::Restart { node } => {
                self.faults_fired.push(format!("{} restart {}", self.now, self.nodes[node].name));
                if let Err(message) = self.start_node(node) {
                    self.violation(format!("restart of {} failed: {message}", self.nodes[node].name));
                }
            }
            Action::Uncut { cuts } => {
                for (from, to) in cuts {
                    self.network.restore_one_way(from, to);
                }
            }
            Action::DiskFreed => {
                self.faults_fired.push(format!("{} disk has space again", self.now));
                lock(&self.disk).set_full(false);
            }
            Action::Restore { a, b } => match b {
                Some(b) => self.network.restore(a, b),
                None => {
                    for other in 0..self.nodes.len() {
                        self.network.restore(a, other);
                    }
                }
            },
        }
    }
}

/// What a node is fed.
enum NodeInput {
    Message(Envelope),
    Report(TaskReport),
    Ack(TaskCheckpointReport),
    FinalCheckpointAwaited {
        execution: weir_core::protocol::ExecutionId,
        checkpoint_latest: Option<weir_core::ids::CheckpointId>,
    },
    Stored(StorageReply),
    Tick,
}

/// The scenario's client is not a node of the cluster; it reaches the JobManager directly.
const CLIENT_NODE: NodeIndex = usize::MAX;

impl World<'_> {
    fn node_of(&self, address: Address) -> Option<NodeIndex> {
        match address {
            Address::ResourceManager | Address::Dispatcher | Address::JobMaster(_) => Some(JOB_MANAGER),
            Address::Client(_) => Some(CLIENT_NODE),
            Address::TaskExecutor(resource_id) => self.nodes.iter().position(|node| {
                node.resource_id == Some(resource_id) && matches!(node.machine(), Machine::TaskManager(_))
            }),
        }
    }

    fn is_job_manager_node(&self, node: NodeIndex) -> bool {
        self.nodes.get(node).is_some_and(|entry| entry.name == "jm" || entry.name.starts_with("jm-"))
    }

    /// Where an envelope for a JobManager role goes: the one JobManager, or in a highly
    /// available cluster the leader as the sender found it through the store.
    fn job_manager_for(&self, from: NodeIndex) -> Option<NodeIndex> {
        if !self.is_ha() {
            return Some(JOB_MANAGER);
        }
        if from == CLIENT_NODE {
            return self.client_leader();
        }
        self.nodes.get(from).and_then(|node| node.leader).map(|(leader, _)| leader)
    }

    fn send(&mut self, from: NodeIndex, envelope: Envelope) {
        if let Some(held) = self.nodes.get_mut(from).and_then(|node| node.held.as_mut()) {
            held.push(ha::Held::Envelope(envelope));
            return;
        }
        let to = if envelope.to.is_job_manager() { self.job_manager_for(from) } else { self.node_of(envelope.to) };
        let Some(to) = to else {
            if from == CLIENT_NODE {
                // No leader known yet: the client asks again, as Flink's client retries.
                let at = self.now.after(Duration::from_millis(200));
                self.schedule(at, Action::ClientRetry { envelope });
            }
            return;
        };
        if from == CLIENT_NODE || to == CLIENT_NODE {
            let at = self.now.after(Duration::from_millis(1));
            self.schedule(at, Action::Deliver { from, to, envelope });
            return;
        }
        let arrivals = self.network.arrivals(&mut self.rng, self.now, from, to);
        let mut envelope = Some(envelope);
        for (index, &at) in arrivals.iter().enumerate() {
            // The last copy (usually the only one) takes the envelope itself.
            let copy = if index + 1 == arrivals.len() { envelope.take() } else { envelope.clone() };
            if let Some(envelope) = copy {
                self.schedule(at, Action::Deliver { from, to, envelope });
            }
        }
    }

    fn deliver(&mut self, from: NodeIndex, to: NodeIndex, envelope: Envelope) {
        let cut = from != CLIENT_NODE && to != CLIENT_NODE && self.network.is_blocked(from, to);
        if cut {
            return; // the partition started while the message was in flight
        }
        self.trace.record(&envelope);
        if to == CLIENT_NODE {
            if let Message::Client(message) = envelope.message {
                self.client_received(message);
            }
            return;
        }
        // A TaskManager that restarted has a new resource id: mail for the old one is dropped.
        let addressed = if envelope.to.is_job_manager() {
            self.is_job_manager_node(to)
        } else {
            self.node_of(envelope.to) == Some(to)
        };
        if addressed {
            self.feed(to, NodeInput::Message(envelope));
        }
    }

    fn feed(&mut self, node: NodeIndex, input: NodeInput) {
        self.gate(node);
        let now = self.nodes[node].clock.local(self.now);
        match (self.nodes[node].machine_mut(), input) {
            (Machine::JobManager(job_manager), NodeInput::Message(envelope)) => {
                job_manager.handle(now, job_manager::Input::Message(envelope));
            }
            (Machine::JobManager(job_manager), NodeInput::Tick) => job_manager.handle(now, job_manager::Input::Tick),
            (Machine::JobManager(job_manager), NodeInput::Stored(reply)) => {
                job_manager.handle(now, job_manager::Input::Storage(reply));
            }
            (Machine::TaskManager(task_executor), NodeInput::Ack(report)) => {
                task_executor.handle(now, task_executor::Input::CheckpointReport(report));
            }
            (
                Machine::TaskManager(task_executor),
                NodeInput::FinalCheckpointAwaited { execution, checkpoint_latest },
            ) => {
                task_executor
                    .handle(now, task_executor::Input::FinalCheckpointAwaited { execution, checkpoint_latest });
            }
            (Machine::TaskManager(task_executor), NodeInput::Message(envelope)) => {
                let Message::TaskExecutor(message) = envelope.message else { return };
                let input = task_executor::Input::Message { from: envelope.from, epoch: envelope.epoch, message };
                task_executor.handle(now, input);
            }
            (Machine::TaskManager(task_executor), NodeInput::Report(report)) => {
                task_executor.handle(now, task_executor::Input::TaskReport(report));
            }
            (Machine::TaskManager(task_executor), NodeInput::Tick) => {
                task_executor.handle(now, task_executor::Input::Tick)
            }
            _ => return,
        }
        self.after_input(node);
    }

    /// Drains a node's outputs and schedules its next wake-up.
    fn after_input(&mut self, node: NodeIndex) {
        self.drain_ha_writes(node);
        loop {
            let output = match self.nodes[node].machine_mut() {
                Machine::JobManager(job_manager) => job_manager.poll_output(),
                Machine::TaskManager(task_executor) => task_executor.poll_output(),
                _ => None,
            };
            let Some(output) = output else { break };
            match output {
                Output::Send(envelope) => self.send(node, envelope),
                Output::Task(command) => self.task_command(node, command),
                Output::Event(event) => {
                    self.note_event(node, &event);
                    self.observe(event)
                }
                Output::Storage(request) => self.storage(node, request),
            }
        }
        let deadline = match self.nodes[node].machine() {
            Machine::JobManager(job_manager) => job_manager.poll_timeout(),
            Machine::TaskManager(task_executor) => task_executor.poll_timeout(),
            _ => None,
        };
        let deadline = deadline.map(|local| self.nodes[node].clock.global(local));
        let deadline = match (deadline, self.election_timeout(node)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(deadline) = deadline {
            let at = deadline.max(self.now);
            if self.nodes[node].wake_at.is_none_or(|scheduled| at < scheduled) {
                self.nodes[node].wake_at = Some(at);
                let incarnation = self.nodes[node].incarnation;
                self.schedule(at, Action::Wake { node, incarnation });
            }
        }
    }

    fn task_command(&mut self, node: NodeIndex, command: TaskCommand) {
        let job_id = match &command {
            TaskCommand::Start(deployment) => deployment.execution.job,
            TaskCommand::Cancel(execution)
            | TaskCommand::TriggerCheckpoint { execution, .. }
            | TaskCommand::NotifyCheckpoint { execution, .. } => execution.job,
        };
        if self.is_real(job_id) {
            return self.real_task_command(node, command);
        }
        let reports = match command {
            TaskCommand::Start(deployment) => self.tasks.start(self.now, node, deployment.execution, &mut self.rng),
            TaskCommand::Cancel(execution) => self.tasks.cancel(self.now, execution, &mut self.rng),
            TaskCommand::TriggerCheckpoint { execution, barrier, .. } => {
                let acks = self.tasks.barrier(self.now, execution, barrier.checkpoint, &mut self.rng);
                for due in acks {
                    let incarnation = self.nodes[due.node].incarnation;
                    self.schedule(due.at, Action::Ack { node: due.node, incarnation, report: due.report });
                }
                Vec::new()
            }
            TaskCommand::NotifyCheckpoint { .. } => Vec::new(),
        };
        self.schedule_reports(reports);
    }

    fn schedule_reports(&mut self, reports: Vec<DueReport>) {
        for due in reports {
            let incarnation = self.nodes[due.node].incarnation;
            self.schedule(due.at, Action::Report { node: due.node, incarnation, report: due.report });
        }
    }

    fn observe(&mut self, event: Event) {
        match event {
            Event::JobStatusChanged { job_id, from, to } => {
                let previous = self.seen_jobs.insert(job_id, to);
                if previous.is_some_and(|seen| seen != from) || !from.can_become(to) {
                    self.violation(format!("job {job_id}: illegal transition {from} -> {to} (last seen {previous:?})"));
                }
                self.job_status(job_id, to);
            }
            Event::ExecutionStateChanged { execution, from, to } => {
                let previous = self.seen_executions.insert(execution, to);
                if previous.is_some_and(|seen| seen != from) || !from.can_become(to) {
                    self.violation(format!("{execution}: illegal transition {from} -> {to} (last seen {previous:?})"));
                }
            }
            // With HA a checkpoint is complete once the store holds its pointer (see `ha.rs`).
            Event::CheckpointCompleted { job_id, checkpoint, .. } if !self.is_ha() => {
                self.checkpoint_completed(job_id, checkpoint)
            }
            Event::CheckpointDropped { job_id, .. } => {
                if let Some(job) = self.jobs.iter_mut().find(|job| job.job_id == Some(job_id)) {
                    job.dropped_checkpoints += 1;
                }
            }
            Event::CheckpointFailed { job_id, .. } => {
                if let Some(job) = self.jobs.iter_mut().find(|job| job.job_id == Some(job_id)) {
                    job.failed_checkpoints += 1;
                }
            }
            Event::RestartDecision { job_id, delay_ms: Some(_), .. } => {
                if let Some(job) = self.jobs.iter_mut().find(|job| job.job_id == Some(job_id)) {
                    job.restarts += 1;
                }
            }
            _ => {}
        }
    }

    /// A checkpoint completed: completed ids only grow per job, across leaders too.
    fn checkpoint_completed(&mut self, job_id: JobId, checkpoint: weir_core::ids::CheckpointId) {
        let Some(index) = self.jobs.iter().position(|job| job.job_id == Some(job_id)) else { return };
        let last = self.jobs[index].checkpoints.last().copied();
        if last.is_some_and(|last| checkpoint <= last) {
            self.violation(format!("job {job_id}: checkpoint {checkpoint} completed after {last:?}"));
        }
        self.jobs[index].checkpoints.push(checkpoint);
    }

    fn job_status(&mut self, job_id: JobId, status: JobStatus) {
        if let Some(job) = self.jobs.iter_mut().find(|job| job.job_id == Some(job_id)) {
            job.status = Some(status);
        }
        self.update_all_ended();
    }

    fn update_all_ended(&mut self) {
        let ended =
            self.jobs.iter().all(|job| job.rejected.is_some() || job.status.is_some_and(JobStatus::is_terminal));
        if ended && self.all_ended_at.is_none() {
            self.all_ended_at = Some(self.now);
        }
    }

    fn violation(&mut self, message: String) {
        let time_ms = self.now.as_millis();
        self.violations.push(Violation { event: self.events, time_ms, message });
    }
}

impl World<'_> {
    fn client_envelope(&self, message: DispatcherMessage) -> Envelope {
        Envelope { from: CLIENT, to: Address::Dispatcher, epoch: Epoch(0), message: Message::Dispatcher(message) }
    }

    fn submit(&mut self, job: usize) {
        let spec = &self.scenario.jobs[job];
        let submission = JobSubmission {
            job_id: None,
            graph: spec.graph.clone(),
            parallelism: spec.parallelism,
            config: Default::default(),
            savepoint: spec.from_savepoint_of.and_then(|root| self.jobs[root].savepoint.clone()),
        };
        let envelope =
            self.client_envelope(DispatcherMessage::Submit { request: job as u64, submission: Box::new(submission) });
        self.send(CLIENT_NODE, envelope);
    }

    fn cancel(&mut self, job: usize) {
        if let Some(job_id) = self.jobs[job].job_id {
            let envelope = self.client_envelope(DispatcherMessage::Cancel { request: job as u64, job_id });
            self.send(CLIENT_NODE, envelope);
        }
    }

    /// Asks the Dispatcher to stop `job` with a savepoint; retried while the job cannot take one
    /// yet (not running, a checkpoint failed), as a user would.
    fn stop_with_savepoint(&mut self, job: usize, attempt: u32) {
        let Some(job_id) = self.jobs[job].job_id else {
            self.schedule(self.now.after(Duration::from_millis(500)), Action::StopWithSavepoint { job, attempt });
            return;
        };
        if self.jobs[job].status.is_some_and(JobStatus::is_terminal) || attempt >= STOP_ATTEMPTS {
            return;
        }
        let target = Some("/savepoints".to_string());
        let message =
            DispatcherMessage::TriggerSavepoint { request: job as u64, job_id, target, stop: true, drain: false };
        let envelope = self.client_envelope(message);
        self.send(CLIENT_NODE, envelope);
        let retry = self.now.after(Duration::from_secs(2));
        self.schedule(retry, Action::StopWithSavepoint { job, attempt: attempt + 1 });
    }

    fn client_received(&mut self, message: ClientMessage) {
        match message {
            ClientMessage::SavepointDone { request, result: Ok(location), .. } => {
                let job = request as usize;
                if self.jobs.get(job).is_none_or(|client_job| client_job.savepoint.is_some()) {
                    return;
                }
                self.jobs[job].savepoint = Some(location);
                let next = self.now.after(Duration::from_millis(100));
                let dependents: Vec<usize> = (0..self.scenario.jobs.len())
                    .filter(|&other| self.scenario.jobs[other].from_savepoint_of == Some(job))
                    .collect();
                for dependent in dependents {
                    self.schedule(next, Action::Submit { job: dependent });
                }
            }
            ClientMessage::Submitted { request, job_id } => {
                let Some(job) = self.jobs.get_mut(request as usize) else { return };
                job.job_id = Some(job_id);
                if let Some(status) = self.seen_jobs.get(&job_id) {
                    job.status = Some(*status);
                }
                self.add_job_model(request as usize, job_id);
            }
            ClientMessage::Rejected { request, reason } => {
                if let Some(job) = self.jobs.get_mut(request as usize) {
                    job.rejected = Some(reason);
                }
                self.update_all_ended();
            }
            _ => {}
        }
    }

    /// Plans the job the same way the Dispatcher did, for the task model.
    fn add_job_model(&mut self, job: usize, job_id: JobId) {
        let spec = &self.scenario.jobs[job];
        let prepared = prepare(&self.cluster_config, spec.graph.clone(), &Default::default(), spec.parallelism);
        match prepared {
            Ok((plan, config)) if spec.real_tasks => self.dataplane.add_job(job_id, plan, config),
            Ok((plan, _)) => {
                let model = JobModel {
                    graph: ExecutionGraph::new(&plan),
                    is_source: plan.vertices.iter().map(|vertex| vertex.is_source).collect(),
                    source_runtime: spec.source_runtime,
                };
                self.tasks.add_job(job_id, model);
            }
            Err(message) => {
                self.violation(format!("the dispatcher accepted a job the simulator cannot plan: {message}"))
            }
        }
    }
}

impl World<'_> {
    /// The invariants an event may have broken: those of every node it touched, then the
    /// cluster-wide ones.
    ///
    /// A role's and an election's checks read only their own state, and that state changes only
    /// through a borrow that marks the node touched (`node.rs`), so an untouched node still
    /// passes the checks it passed after an earlier event. Within a touched JobManager, only the
    /// roles an input reached are checked, by the same argument one level down
    /// (`JobManager::check_reached_invariants`). `check_cluster` reads only the
    /// TaskManagers' slots and the JobMasters' held slots: a node that went down or stands by
    /// holds none, so only a touched live TaskManager or JobManager can break it.
    /// `check_leaders` reads the elections at the current time and the pauses, which change
    /// without touching a node: it runs after every event (it finds nobody acting without high
    /// availability, so it is skipped there).
    fn check(&mut self, event: u64) {
        let mut problems = Vec::new();
        let (mut task_managers, mut job_managers) = (false, false);
        for node in &mut self.nodes {
            if !node.take_touched() {
                continue;
            }
            task_managers |= matches!(node.machine(), Machine::TaskManager(_));
            job_managers |= matches!(node.machine(), Machine::JobManager(_));
            if let Err(message) = node.check_invariants() {
                problems.push(format!("{}: {message}", node.name));
            }
        }
        if task_managers || job_managers {
            problems.extend(check_cluster(&self.nodes, task_managers, job_managers));
        }
        if self.is_ha() {
            problems.extend(World::check_leaders(&self.nodes, self.now));
        }
        for message in problems {
            if self.violations.len() < 100 {
                self.violations.push(Violation { event, time_ms: self.now.as_millis(), message });
            }
        }
    }

    fn final_checks(&mut self) -> Vec<String> {
        let mut unmet = Vec::new();
        for (index, spec) in self.scenario.jobs.iter().enumerate() {
            let job = &self.jobs[index];
            if let Some(reason) = &job.rejected {
                unmet.push(format!("job {index} ({}) was rejected: {reason}", spec.graph.name));
                continue;
            }
            let status = job.status;
            if let Some(expected) = spec.expect_status
                && status != Some(expected)
            {
                let got = status.map(|s| s.name()).unwrap_or("not started");
                unmet.push(format!("job {index} ({}) ended {got}, expected {expected}", spec.graph.name));
            }
            if let Some(expected) = spec.expect_restarts
                && job.restarts != expected
            {
                unmet.push(format!("job {index} restarted {} times, expected {expected}", job.restarts));
            }
            if let Some(least) = spec.min_restarts
                && job.restarts < least
            {
                unmet.push(format!("job {index} restarted {} times, expected at least {least}", job.restarts));
            }
            if let Some(least) = spec.min_checkpoints
                && (job.checkpoints.len() as u32) < least
            {
                let count = job.checkpoints.len();
                unmet.push(format!("job {index} completed {count} checkpoints, expected at least {least}"));
            }
            if let Some(least) = spec.min_failed_checkpoints
                && job.failed_checkpoints < least
            {
                let count = job.failed_checkpoints;
                unmet.push(format!("job {index}: {count} checkpoints failed, expected at least {least}"));
            }
            if let Some(least) = spec.min_dropped_checkpoints
                && job.dropped_checkpoints < least
            {
                let count = job.dropped_checkpoints;
                unmet.push(format!("job {index}: {count} unreadable checkpoints dropped, expected at least {least}"));
            }
            if let Some(text) = &spec.expect_failure {
                let failure = self.failure_of(job.job_id);
                if !failure.as_deref().is_some_and(|failure| failure.contains(text.as_str())) {
                    unmet.push(format!("job {index} failure {failure:?} does not contain {text:?}"));
                }
            }
        }
        if self.all_ended_at.is_some() {
            unmet.extend(self.leaked_slots());
        }
        unmet.extend(self.output_checks());
        unmet
    }

    fn failure_of(&self, job_id: Option<JobId>) -> Option<String> {
        let job_id = job_id?;
        let newest = self
            .nodes
            .iter()
            .filter_map(|node| match node.machine() {
                Machine::JobManager(job_manager) => Some(job_manager),
                _ => None,
            })
            .max_by_key(|job_manager| job_manager.epoch())?;
        newest.dispatcher().jobs().get(&job_id).and_then(|job| job.failure.clone())
    }

    /// After every job ended and the cluster settled, no TaskManager may hold a slot for one.
    fn leaked_slots(&self) -> Vec<String> {
        let ended: Vec<JobId> = self.jobs.iter().filter_map(|job| job.job_id).collect();
        let mut leaks = Vec::new();
        for node in &self.nodes {
            let Machine::TaskManager(task_executor) = node.machine() else { continue };
            for snapshot in task_executor.slots() {
                if let SlotState::Allocated { allocation, job, .. } = snapshot.state
                    && ended.contains(&job)
                {
                    let slot = snapshot.slot;
                    leaks.push(format!("{} still holds slot {slot} ({allocation}) of ended job {job}", node.name));
                }
            }
        }
        leaks
    }

    fn report(&mut self) -> RunReport {
        let unmet = self.final_checks();
        let jobs = self
            .scenario
            .jobs
            .iter()
            .zip(&self.jobs)
            .map(|(spec, job)| JobOutcome {
                name: spec.graph.name.clone(),
                job_id: job.job_id.map(|id| id.to_string()),
                status: match (&job.rejected, job.status) {
                    (Some(_), _) => "REJECTED".to_string(),
                    (None, Some(status)) => status.name().to_string(),
                    (None, None) => "NOT_STARTED".to_string(),
                },
                failure: job.rejected.clone().or_else(|| self.failure_of(job.job_id)),
                restarts: job.restarts,
                checkpoints: job.checkpoints.len() as u32,
            })
            .collect();
        if self.is_ha() {
            let refused = self.stale_writes_refused();
            self.faults_fired.push(format!("the store refused {refused} writes of a stale epoch"));
        }
        RunReport {
            scenario: self.scenario.name.clone(),
            seed: self.seed,
            events: self.events,
            virtual_ms: self.now.as_millis(),
            wall_ms: 0,
            trace_hash: format!("{:016x}", std::hash::Hasher::finish(&self.trace)),
            jobs,
            violations: std::mem::take(&mut self.violations),
            unmet,
            faults: std::mem::take(&mut self.faults_fired),
            buggify: std::mem::take(&mut self.buggify_sites),
            fault_plan: std::mem::take(&mut self.fault_plan),
            log: self.log.take().unwrap_or_default(),
        }
    }
}

/// Slot safety across the cluster: tasks of one allocation run on one TaskManager only
/// (checked when a TaskManager was touched: only a change of one can make two share an
/// allocation), and no two JobMasters hold the same slot (checked when a JobManager was).
///
/// An allocation id may briefly sit on two TaskManagers: when the ResourceManager's request to
/// one goes unanswered it asks another under the same id, and the JobMaster accepts one offer
/// and refuses the other (which is then freed). What must never happen is tasks running in both.
fn check_cluster(nodes: &[Node], task_managers: bool, job_managers: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if task_managers {
        // A few allocations per TaskManager: a sorted vector finds the ones on two.
        let mut busy: Vec<(weir_core::ids::AllocationId, NodeIndex)> = Vec::with_capacity(16);
        for (index, node) in nodes.iter().enumerate() {
            if let Machine::TaskManager(task_executor) = node.machine() {
                busy.extend(task_executor.busy_allocations().map(|allocation| (allocation, index)));
            }
        }
        busy.sort_unstable();
        for pair in busy.windows(2) {
            if pair[0].0 == pair[1].0 {
                let (first, second) = (&nodes[pair[0].1].name, &nodes[pair[1].1].name);
                problems.push(format!("tasks of allocation {} run on {first} and {second}", pair[0].0));
            }
        }
    }
    if !job_managers {
        return problems;
    }
    for job_manager in nodes.iter().filter_map(|node| match node.machine() {
        Machine::JobManager(job_manager) => Some(job_manager),
        _ => None,
    }) {
        if job_manager.job_masters().len() < 2 {
            continue; // one JobMaster's pool holds a slot once (its own check)
        }
        let mut holders = BTreeMap::new();
        for (job_id, job_master) in job_manager.job_masters() {
            for held in job_master.held_slots() {
                let slot = (held.resource_id, held.slot);
                if let Some(other) = holders.insert(slot, *job_id) {
                    problems.push(format!("slot {} of {} is held by jobs {other} and {job_id}", slot.1, slot.0));
                }
            }
        }
    }
    problems
}
