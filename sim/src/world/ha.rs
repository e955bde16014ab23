//! High availability in the simulator: a linearizable store node (`store`) holding the leader
//! lease and the HA records, JobManager nodes that campaign through [`LeaderElection`], and
//! leader retrieval for TaskManagers and the client.
//!
//! A JobManager node is a candidate; it runs a [`JobManager`] only while it leads and has read
//! the records (`Machine::JobManager`), else it is `Machine::Standby`. Before it handles any
//! input it asks its election, at its own clock's reading, whether it still leads; if not it
//! drops its JobManager first (self-fencing). Each JobManager node's clock is offset and drifts
//! against the store's (the simulation's time); the JobManager's own timers use the
//! simulation's time, only the lease uses the local clock.
//!
//! Invariants checked after every event: at most one JobManager acts (leads at its own clock and
//! is not paused) and it acts in the store's newest epoch; the store accepts no write from an
//! epoch below the newest lease; completed-checkpoint pointers only grow per job.

use super::{Action, Machine, Node, World};
use crate::clock::Clock;
use crate::network::NodeIndex;
use std::collections::BTreeMap;
use weir_core::dispatcher::ClusterMode;
use weir_core::ha::{HaRecord, HaRecords, HaWrite, RecordStore};
use weir_core::ids::{CheckpointId, Epoch, JobId};
use weir_core::job_manager::JobManager;
use weir_core::leader::store::LeaseStore;
use weir_core::leader::{
    ElectionOutput, ElectionTiming, LeaderElection, LeaderRole, LeaseView, StoreReply, StoreRequest,
};
use weir_core::protocol::Role;
use weir_core::task_executor;
use weir_core::time::{Duration, Time};

/// A JobManager node's candidacy.
#[derive(Debug)]
pub(super) struct HaSide {
    pub(super) election: LeaderElection,
    pub(super) clock: Clock,
    /// The last record write it sent (a paused process re-sends it when it wakes).
    last_write: Option<HaWrite>,
}

/// The store node: lease and records, answering after `slow_latency` while slow.
#[derive(Debug, Default)]
pub(super) struct StoreNode {
    lease: LeaseStore,
    records: RecordStore,
    slow_until: Time,
    slow_latency: Duration,
    /// Writes refused for a stale epoch.
    pub(super) refused: u64,
    newest_pointer: BTreeMap<JobId, CheckpointId>,
}

/// What reaches the store.
#[derive(Clone, Debug)]
pub(super) enum StoreMessage {
    Lease(StoreRequest),
    Write(HaWrite),
    ReadRecords { epoch: Epoch },
    Retrieve,
}

/// What the store answers.
#[derive(Clone, Debug)]
pub(super) enum StoreAnswer {
    Lease(StoreReply),
    Records {
        epoch: Epoch,
        records: Box<HaRecords>,
    },
    Leader(LeaseView),
    /// The write was accepted.
    Written(HaWrite),
}

/// Something a paused node had ready to send when it stopped.
#[derive(Debug)]
pub(super) enum Held {
    Envelope(weir_core::protocol::Envelope),
    Store(StoreMessage),
}

impl World<'_> {
    pub(super) fn is_ha(&self) -> bool {
        self.scenario.cluster.highly_available()
    }

    pub(super) fn timing(&self) -> ElectionTiming {
        ElectionTiming::from_config(&self.config.ha)
    }

    /// A JobManager node starting: a standby that campaigns at once.
    pub(super) fn start_candidate(&mut self, node: NodeIndex, incarnation: u32) -> Machine {
        let drift_max = i64::from(self.scenario.cluster.clock_drift_ppm);
        let offset = Duration(self.rng.below(10_000_000));
        let drift_ppm = if drift_max == 0 { 0 } else { self.rng.below(2 * drift_max as u64 + 1) as i64 - drift_max };
        let clock = Clock::new(offset, drift_ppm);
        let name = self.nodes[node].name.clone();
        let candidate = format!("{name}#{incarnation}");
        let election = LeaderElection::new(candidate, name, self.timing(), clock.local(self.now));
        self.nodes[node].set_ha(HaSide { election, clock, last_write: None });
        Machine::Standby
    }

    /// The node of the store, when the cluster is highly available.
    pub(super) fn store_node(&self) -> Option<NodeIndex> {
        self.nodes.iter().position(|node| matches!(node.machine(), Machine::Store(_)))
    }

    /// The node a lease holder's address names.
    fn node_named(&self, address: &str) -> Option<NodeIndex> {
        self.nodes.iter().position(|node| node.name == address)
    }

    /// Whom the client reaches: the live lease holder, as the store shows it now.
    pub(super) fn client_leader(&self) -> Option<NodeIndex> {
        let store = self.store_node()?;
        let Machine::Store(store) = self.nodes[store].machine() else { return None };
        let view = store.lease.view(self.now);
        view.holder.filter(|_| view.live).and_then(|holder| self.node_named(&holder.address))
    }

    /// Self-fencing before any input: ticks the election at the node's clock and drops the
    /// JobManager unless it still leads in the JobManager's epoch.
    pub(super) fn gate(&mut self, node: NodeIndex) {
        let now = self.now;
        let Some(ha) = self.nodes[node].ha_mut() else { return };
        let local = ha.clock.local(now);
        ha.election.handle_tick(local);
        self.drain_election(node);
        self.fence_unless_leading(node);
    }

    fn fence_unless_leading(&mut self, node: NodeIndex) {
        let now = self.now;
        let entry = &mut self.nodes[node];
        let (Some(ha), Machine::JobManager(job_manager)) = (entry.ha(), entry.machine()) else { return };
        if ha.election.leading(ha.clock.local(now)) != Some(job_manager.epoch()) {
            let epoch = job_manager.epoch();
            entry.set_machine(Machine::Standby);
            self.faults_fired.push(format!("{now} {} stops acting in epoch {epoch}", self.nodes[node].name));
        }
    }

    /// Carries out the election's requests and role changes.
    pub(super) fn drain_election(&mut self, node: NodeIndex) {
        loop {
            let Some(ha) = self.nodes[node].ha_mut() else { return };
            let Some(output) = ha.election.poll_output() else { break };
            match output {
                ElectionOutput::Store(request) => self.send_to_store(node, StoreMessage::Lease(request)),
                ElectionOutput::Role(LeaderRole::Leading { epoch }) => {
                    self.send_to_store(node, StoreMessage::ReadRecords { epoch });
                }
                ElectionOutput::Role(_) => self.fence_unless_leading(node),
            }
        }
    }

    /// The next time the election needs a tick, in simulation time.
    pub(super) fn election_timeout(&self, node: NodeIndex) -> Option<Time> {
        let ha = self.nodes[node].ha()?;
        ha.election.poll_timeout().map(|local| ha.clock.global(local))
    }

    /// Sends the JobManager's record writes to the store, before its envelopes.
    pub(super) fn drain_ha_writes(&mut self, node: NodeIndex) {
        loop {
            let Machine::JobManager(job_manager) = self.nodes[node].machine_mut() else { return };
            let Some(write) = job_manager.poll_ha_write() else { return };
            if let Some(ha) = self.nodes[node].ha_mut() {
                ha.last_write = Some(write.clone());
            }
            self.send_to_store(node, StoreMessage::Write(write));
        }
    }

    /// Sends `message` from `node` to the store over the network (partitions and loss apply).
    pub(super) fn send_to_store(&mut self, node: NodeIndex, message: StoreMessage) {
        if let Some(held) = &mut self.nodes[node].held {
            held.push(Held::Store(message));
            return;
        }
        let Some(store) = self.store_node() else { return };
        let incarnation = self.nodes[node].incarnation;
        for at in self.network.arrivals(&mut self.rng, self.now, node, store) {
            self.schedule(at, Action::ToStore { from: node, incarnation, message: message.clone() });
        }
    }

    /// The store handles one message atomically and answers over the network.
    pub(super) fn store_received(&mut self, from: NodeIndex, incarnation: u32, message: StoreMessage) {
        let Some(store_index) = self.store_node() else { return };
        if self.network.is_blocked(from, store_index) {
            return; // cut while in flight
        }
        let now = self.now;
        let Machine::Store(store) = self.nodes[store_index].machine_mut() else { return };
        let extra = if now < store.slow_until { store.slow_latency } else { Duration::ZERO };
        let answer = match message {
            StoreMessage::Lease(request) => {
                let reply = store.lease.apply(now, request);
                if let StoreReply::Granted { epoch, .. } = reply {
                    store.records.observe_epoch(epoch);
                }
                Some(StoreAnswer::Lease(reply))
            }
            StoreMessage::Write(write) => {
                let acknowledgement = write.clone();
                let epoch = write.epoch;
                let pointer = match &write.record {
                    HaRecord::CompletedCheckpoint { job_id, checkpoint, .. } => Some((*job_id, *checkpoint)),
                    _ => None,
                };
                match store.records.apply(write) {
                    Ok(()) if epoch < store.lease.epoch() => {
                        let message = format!(
                            "the store accepted a write of epoch {epoch} after granting {}",
                            store.lease.epoch()
                        );
                        self.violation(message);
                        None
                    }
                    Ok(()) => {
                        let answer = Some(StoreAnswer::Written(acknowledgement));
                        if let Some((job_id, checkpoint)) = pointer {
                            let grew = store.newest_pointer.get(&job_id).is_none_or(|newest| checkpoint > *newest);
                            if grew {
                                store.newest_pointer.insert(job_id, checkpoint);
                            }
                            if grew {
                                // The linearization point: the checkpoint is complete now.
                                self.checkpoint_completed(job_id, checkpoint);
                            }
                        }
                        answer
                    }
                    Err(_) => {
                        store.refused += 1;
                        None
                    }
                }
            }
            StoreMessage::ReadRecords { epoch } => {
                Some(StoreAnswer::Records { epoch, records: Box::new(store.records.records().clone()) })
            }
            StoreMessage::Retrieve => Some(StoreAnswer::Leader(store.lease.view(now))),
        };
        let Some(answer) = answer else { return };
        for at in self.network.arrivals(&mut self.rng, now, store_index, from) {
            let action = Action::FromStore { to: from, incarnation, answer: answer.clone() };
            self.schedule(at.after(extra), action);
        }
    }

    /// A store answer reached `node`.
    pub(super) fn store_answered(&mut self, node: NodeIndex, incarnation: u32, answer: StoreAnswer) {
        let Some(store) = self.store_node() else { return };
        if self.nodes[node].incarnation != incarnation || self.network.is_blocked(store, node) {
            return;
        }
        match answer {
            StoreAnswer::Lease(reply) => {
                let now = self.now;
                let Some(ha) = self.nodes[node].ha_mut() else { return };
                ha.election.handle_reply(ha.clock.local(now), reply);
                self.drain_election(node);
                self.fence_unless_leading(node);
                self.after_input(node);
            }
            StoreAnswer::Records { epoch, records } => self.take_over(node, epoch, &records),
            StoreAnswer::Leader(view) => self.leader_found(node, view),
            StoreAnswer::Written(write) => {
                self.gate(node);
                if let Machine::JobManager(job_manager) = self.nodes[node].machine_mut() {
                    job_manager.ha_acknowledged(&write);
                    self.after_input(node);
                }
            }
        }
    }

    /// A new leader read the records: its JobManager starts and resumes every unfinished job.
    fn take_over(&mut self, node: NodeIndex, epoch: Epoch, records: &HaRecords) {
        self.gate(node);
        let now = self.now;
        let Some(ha) = self.nodes[node].ha() else { return };
        let leading = ha.election.leading(ha.clock.local(now)) == Some(epoch);
        if !leading || !matches!(self.nodes[node].machine(), Machine::Standby) {
            return;
        }
        let seed = self.rng.next_u64();
        match JobManager::new(self.cluster_config.clone(), ClusterMode::Session, epoch, seed) {
            Ok(mut job_manager) => {
                // A new leader's JobMaster starts the job's status life over (INITIALIZING).
                for job_id in records.jobs.keys() {
                    self.seen_jobs.remove(job_id);
                }
                job_manager.recover(self.nodes[node].clock.local(now), records);
                let name = &self.nodes[node].name;
                let jobs = records.recoveries().len();
                self.faults_fired.push(format!("{now} {name} leads in epoch {epoch}, resuming {jobs} jobs"));
                self.nodes[node].set_machine(Machine::JobManager(Box::new(job_manager)));
            }
            Err(message) => self.violation(format!("a new leader cannot start: {message}")),
        }
        self.after_input(node);
    }

    /// Leader retrieval on a TaskManager: follow a live holder with a higher epoch.
    fn leader_found(&mut self, node: NodeIndex, view: LeaseView) {
        let holder = view.holder.as_ref().filter(|_| view.live).and_then(|holder| self.node_named(&holder.address));
        if let Some(leader) = holder {
            let entry = &mut self.nodes[node];
            let local = entry.clock.local(self.now); // the TaskManager's own clock
            if entry.leader.is_none_or(|(_, known)| known < view.epoch) {
                entry.leader = Some((leader, view.epoch));
                if let Machine::TaskManager(task_executor) = entry.machine_mut() {
                    task_executor.handle(local, task_executor::Input::LeaderFound { epoch: view.epoch });
                    self.after_input(node);
                }
            }
        }
    }

    /// A TaskManager asks the store who leads, now and every renew interval.
    pub(super) fn retrieve(&mut self, node: NodeIndex, incarnation: u32) {
        if self.nodes[node].incarnation != incarnation || !matches!(self.nodes[node].machine(), Machine::TaskManager(_))
        {
            return;
        }
        self.send_to_store(node, StoreMessage::Retrieve);
        let next = self.now.after(self.timing().renew_interval);
        self.schedule(next, Action::Retrieve { node, incarnation });
    }

    /// A pause: the node stops for `duration`; what its current step sends is held until it wakes.
    pub(super) fn pause(&mut self, node: NodeIndex, duration: Duration) {
        let until = self.now.after(duration);
        self.nodes[node].held = Some(Vec::new());
        // The step it was in when stopped: a tick, its outputs produced but not yet sent.
        if matches!(self.nodes[node].machine(), Machine::JobManager(_)) {
            self.feed(node, super::NodeInput::Tick);
            let last = self.nodes[node].ha().and_then(|ha| ha.last_write.clone());
            if let (Some(write), Some(held)) = (last, &mut self.nodes[node].held) {
                held.push(Held::Store(StoreMessage::Write(write))); // a write queued, not yet sent
            }
        }
        self.nodes[node].paused_until = Some(until);
        self.schedule(until, Action::Resume { node });
    }

    /// The paused node wakes: first its held outputs leave (stale, if its lease ran out), then
    /// it handles what arrived meanwhile, fencing itself first.
    pub(super) fn resume(&mut self, node: NodeIndex) {
        self.nodes[node].paused_until = None;
        let held = self.nodes[node].held.take().unwrap_or_default();
        for item in held {
            match item {
                Held::Envelope(envelope) => self.send(node, envelope),
                Held::Store(message) => self.send_to_store(node, message),
            }
        }
        self.gate(node);
        self.after_input(node);
    }

    /// A slow store: every answer `latency` late until `duration` passed.
    pub(super) fn slow_store(&mut self, duration: Duration, latency: Duration) {
        let now = self.now;
        let Some(store) = self.store_node() else { return };
        if let Machine::Store(store) = self.nodes[store].machine_mut() {
            store.slow_until = now.after(duration);
            store.slow_latency = latency;
        }
    }

    /// At most one JobManager acts, in the store's newest epoch.
    pub(super) fn check_leaders(nodes: &[Node], now: Time) -> Vec<String> {
        let newest = nodes.iter().find_map(|node| match node.machine() {
            Machine::Store(store) => Some(store.lease.epoch()),
            _ => None,
        });
        let acting: Vec<(&str, Epoch)> = nodes
            .iter()
            .filter(|node| node.paused_until.is_none())
            .filter_map(|node| match (node.machine(), node.ha()) {
                (Machine::JobManager(job_manager), Some(ha)) => ha
                    .election
                    .leading(ha.clock.local(now))
                    .filter(|epoch| *epoch == job_manager.epoch())
                    .map(|epoch| (node.name.as_str(), epoch)),
                _ => None,
            })
            .collect();
        let mut problems = Vec::new();
        if acting.len() > 1 {
            problems.push(format!("two JobManagers act at once: {acting:?}"));
        }
        for (name, epoch) in &acting {
            if newest.is_some_and(|newest| newest != *epoch) {
                problems.push(format!("{name} acts in epoch {epoch} but the store granted {newest:?}"));
            }
        }
        problems
    }

    /// Writes the store refused for a stale epoch.
    pub(super) fn stale_writes_refused(&self) -> u64 {
        self.nodes.iter().map(|node| if let Machine::Store(store) = node.machine() { store.refused } else { 0 }).sum()
    }

    /// The store node's initial machine.
    pub(super) fn new_store() -> Machine {
        Machine::Store(Box::default())
    }
}
