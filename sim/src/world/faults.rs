//! Faults striking the world: which node a fault names, and what each kind does.

use super::{Action, Machine, NodeIndex, World};
use crate::network::Impairment;
use crate::scenario::{FaultKind, FaultSpec, LinkFault, TimeSpec};
use weir_core::task_executor::SlotState;
use weir_core::time::{Duration, Time};

impl World<'_> {
    /// Notes a fault as it fired (times, victims and durations resolved), for shrinking.
    pub(super) fn record_plan(&mut self, node: String, kind: FaultKind) {
        let at = TimeSpec::fixed(self.now.since(Time::ZERO));
        self.fault_plan.push(FaultSpec { at, node, kind });
    }

    /// A node by name; `any-tm` is a live TaskManager and `busy-tm` one holding a slot, chosen
    /// by the seed.
    pub(super) fn pick_node(&mut self, name: &str) -> Option<NodeIndex> {
        if name == "any-tm" || name == "busy-tm" {
            let busy_only = name == "busy-tm";
            let live: Vec<NodeIndex> = (1..self.nodes.len())
                .filter(|&node| match self.nodes[node].machine() {
                    Machine::TaskManager(task_executor) => {
                        !busy_only || task_executor.slots().iter().any(|slot| slot.state != SlotState::Free)
                    }
                    _ => false,
                })
                .collect();
            if live.is_empty() {
                return None;
            }
            return Some(live[self.rng.below(live.len() as u64) as usize]);
        }
        if name == "leader" {
            return self.client_leader();
        }
        self.nodes.iter().position(|node| node.name == name)
    }

    pub(super) fn fault(&mut self, fault: usize) {
        let spec = self.faults[fault].clone();
        if self.cluster_fault(&spec) {
            return;
        }
        if let FaultKind::Link { fault, peer: None, duration, latency, probability_ppm, rate } = &spec.kind
            && spec.node.is_empty()
        {
            let kind = FaultKind::Link {
                fault: *fault,
                peer: None,
                duration: *duration,
                latency: *latency,
                probability_ppm: *probability_ppm,
                rate: *rate,
            };
            return self.link_fault(None, None, kind);
        }
        let Some(node) = self.pick_node(&spec.node) else {
            self.faults_fired.push(format!("{} {:?} skipped: no live node", self.now, spec.kind));
            return;
        };
        let name = self.nodes[node].name.clone();
        match spec.kind.clone() {
            FaultKind::Crash { restart_after } => {
                self.faults_fired.push(format!("{} crash {name}", self.now));
                let entry = &mut self.nodes[node];
                entry.set_machine(Machine::Down);
                entry.incarnation += 1;
                entry.wake_at = None;
                self.tasks.crash(node);
                let effects = self.dataplane.crash(self.now, node, &name);
                self.apply(effects);
                let delay = restart_after.map(|delay| delay.draw(&mut self.rng));
                self.record_plan(name.clone(), FaultKind::Crash { restart_after: delay.map(TimeSpec::fixed) });
                if let Some(delay) = delay {
                    self.schedule(self.now.after(delay), Action::Restart { node });
                }
            }
            FaultKind::Isolate { duration } => {
                self.faults_fired.push(format!("{} isolate {name}", self.now));
                for other in 0..self.nodes.len() {
                    self.network.cut(node, other);
                }
                let duration = duration.map(|duration| duration.draw(&mut self.rng));
                self.record_plan(name.clone(), FaultKind::Isolate { duration: duration.map(TimeSpec::fixed) });
                if let Some(duration) = duration {
                    self.schedule(self.now.after(duration), Action::Restore { a: node, b: None });
                }
            }
            FaultKind::Partition { peer, duration, one_way } => {
                let Some(peer) = self.pick_node(&peer) else { return };
                let arrow = if one_way { "-/->" } else { "|" };
                self.faults_fired.push(format!("{} partition {name} {arrow} {}", self.now, self.nodes[peer].name));
                let duration = duration.map(|duration| duration.draw(&mut self.rng));
                let peer_name = self.nodes[peer].name.clone();
                let kind = FaultKind::Partition { peer: peer_name, duration: duration.map(TimeSpec::fixed), one_way };
                self.record_plan(name.clone(), kind);
                if one_way {
                    self.network.cut_one_way(node, peer);
                    if let Some(duration) = duration {
                        self.schedule(self.now.after(duration), Action::Uncut { cuts: vec![(node, peer)] });
                    }
                } else {
                    self.network.cut(node, peer);
                    if let Some(duration) = duration {
                        self.schedule(self.now.after(duration), Action::Restore { a: node, b: Some(peer) });
                    }
                }
            }
            FaultKind::Pause { duration } => {
                let duration = duration.draw(&mut self.rng);
                self.faults_fired.push(format!("{} pause {name} for {duration}", self.now));
                self.record_plan(name.clone(), FaultKind::Pause { duration: TimeSpec::fixed(duration) });
                self.pause(node, duration);
            }
            FaultKind::Slow { duration, latency } => {
                let (duration, latency) = (duration.draw(&mut self.rng), latency.draw(&mut self.rng));
                self.faults_fired.push(format!("{} slow {name}: +{latency} for {duration}", self.now));
                let kind = FaultKind::Slow { duration: TimeSpec::fixed(duration), latency: TimeSpec::fixed(latency) };
                self.record_plan(name.clone(), kind);
                self.slow_store(duration, latency);
            }
            FaultKind::Link { fault, peer, duration, latency, probability_ppm, rate } => {
                let peer = match peer {
                    Some(peer) => match self.pick_node(&peer) {
                        Some(peer) => Some(peer),
                        None => return,
                    },
                    None => None,
                };
                let kind = FaultKind::Link { fault, peer: None, duration, latency, probability_ppm, rate };
                self.link_fault(Some(node), peer, kind);
            }
            FaultKind::Clock { jump, drift_ppm } => {
                let jump = jump.map(|jump| jump.draw(&mut self.rng));
                let now = self.now;
                let entry = &mut self.nodes[node];
                let clocks = entry.clocks_mut();
                for clock in clocks.into_iter().flatten() {
                    if let Some(jump) = jump {
                        clock.jump(now, jump);
                    }
                    if let Some(ppm) = drift_ppm {
                        clock.set_drift(now, i64::from(ppm));
                    }
                }
                let jump_text = jump.map(|jump| format!(" jumps {jump}")).unwrap_or_default();
                let drift_text = drift_ppm.map(|ppm| format!(" drifts {ppm} ppm")).unwrap_or_default();
                self.faults_fired.push(format!("{} clock of {name}{jump_text}{drift_text}", self.now));
                self.record_plan(name, FaultKind::Clock { jump: jump.map(TimeSpec::fixed), drift_ppm });
                // Its deadlines moved: wake it to take them at its new reading.
                let incarnation = self.nodes[node].incarnation;
                self.nodes[node].wake_at = None;
                self.schedule(self.now, Action::Wake { node, incarnation });
            }
            FaultKind::SlowTaskManager { duration, factor } => {
                let duration = duration.map(|duration| duration.draw(&mut self.rng));
                let until = duration.map_or(Time(u64::MAX), |duration| self.now.after(duration));
                let lasting = duration.map(|duration| format!(" for {duration}")).unwrap_or_default();
                self.faults_fired.push(format!("{} {name} runs {factor}x slower{lasting}", self.now));
                self.record_plan(name, FaultKind::SlowTaskManager { duration: duration.map(TimeSpec::fixed), factor });
                self.dataplane.slow_down(node, until, u64::from(factor));
            }
            FaultKind::Heal
            | FaultKind::DamageCheckpoint { .. }
            | FaultKind::Split { .. }
            | FaultKind::DiskFull { .. }
            | FaultKind::SlowFsync { .. } => unreachable!("cluster-wide faults are handled above"),
        }
    }

    /// The faults that hit the cluster rather than one node; false for any other.
    fn cluster_fault(&mut self, spec: &FaultSpec) -> bool {
        match spec.kind.clone() {
            FaultKind::DamageCheckpoint { damage } => {
                self.record_plan(String::new(), spec.kind.clone());
                let damaged = self.damage_newest_checkpoint(damage);
                self.damage_armed = Some((self.now.after(Duration::from_millis(100)), damage));
                self.faults_fired.push(format!(
                    "{} {damage:?} {}",
                    self.now,
                    damaged.as_deref().unwrap_or("nothing (no checkpoint)")
                ));
                if !spec.node.is_empty() {
                    // The node crashes at once, so the damaged checkpoint is the one restored.
                    let restart_after = Some(TimeSpec::fixed(Duration::from_millis(500)));
                    let node = spec.node.clone();
                    self.faults.push(FaultSpec { at: spec.at, node, kind: FaultKind::Crash { restart_after } });
                    self.fault(self.faults.len() - 1);
                }
            }
            FaultKind::Heal => {
                self.record_plan(String::new(), FaultKind::Heal);
                self.faults_fired.push(format!("{} heal", self.now));
                self.network.heal();
            }
            FaultKind::Split { duration } => self.split(duration),
            FaultKind::DiskFull { duration } => {
                let duration = duration.draw(&mut self.rng);
                self.faults_fired.push(format!("{} disk full for {duration}", self.now));
                self.record_plan(String::new(), FaultKind::DiskFull { duration: TimeSpec::fixed(duration) });
                crate::disk::lock(&self.disk).set_full(true);
                self.schedule(self.now.after(duration), Action::DiskFreed);
            }
            FaultKind::SlowFsync { duration, latency } => {
                let (duration, latency) = (duration.draw(&mut self.rng), latency.draw(&mut self.rng));
                self.faults_fired.push(format!("{} fsync +{latency} for {duration}", self.now));
                let kind =
                    FaultKind::SlowFsync { duration: TimeSpec::fixed(duration), latency: TimeSpec::fixed(latency) };
                self.record_plan(String::new(), kind);
                self.slow_fsync = Some((self.now.after(duration), latency));
            }
            _ => return false,
        }
        true
    }

    /// The cluster splits in two halves drawn from the seed; the HA store stays with the first.
    fn split(&mut self, duration: Option<TimeSpec>) {
        let mut members: Vec<NodeIndex> =
            (0..self.nodes.len()).filter(|&node| !matches!(self.nodes[node].machine(), Machine::Store(_))).collect();
        for index in (1..members.len()).rev() {
            members.swap(index, self.rng.below(index as u64 + 1) as usize);
        }
        let (first, second) = members.split_at(members.len() / 2);
        let mut cuts = Vec::new();
        for &a in first {
            for &b in second {
                self.network.cut(a, b);
                cuts.extend([(a, b), (b, a)]);
            }
        }
        if let Some(store) = self.store_node() {
            for &b in second {
                self.network.cut(store, b);
                cuts.extend([(store, b), (b, store)]);
            }
        }
        let names =
            |half: &[NodeIndex]| half.iter().map(|&n| self.nodes[n].name.as_str()).collect::<Vec<_>>().join(",");
        self.faults_fired.push(format!("{} split {} | {}", self.now, names(first), names(second)));
        let duration = duration.map(|duration| duration.draw(&mut self.rng));
        self.record_plan(String::new(), FaultKind::Split { duration: duration.map(TimeSpec::fixed) });
        if let Some(duration) = duration {
            self.schedule(self.now.after(duration), Action::Uncut { cuts });
        }
    }

    /// A link fault on the links of `node` (every link when `None`), or between it and `peer`.
    fn link_fault(&mut self, node: Option<NodeIndex>, peer: Option<NodeIndex>, kind: FaultKind) {
        let FaultKind::Link { fault, duration, latency, probability_ppm, rate, .. } = kind else { return };
        let (duration, latency) = (duration.draw(&mut self.rng), latency.draw(&mut self.rng));
        let mut impairment = Impairment {
            a: node,
            b: peer,
            until: self.now.after(duration),
            latency: Duration::ZERO,
            reorder: Duration::ZERO,
            duplicate: 0.0,
            rate: None,
        };
        match fault {
            LinkFault::LatencySpike => impairment.latency = latency,
            LinkFault::SlowLink => {
                impairment.latency = latency;
                impairment.rate = rate;
            }
            LinkFault::Duplicate => impairment.duplicate = f64::from(probability_ppm) / 1_000_000.0,
            LinkFault::Reorder => impairment.reorder = latency,
        }
        let name = |node: Option<NodeIndex>| node.map_or("every node".to_string(), |n| self.nodes[n].name.clone());
        let between = match peer {
            Some(_) => format!("{} <-> {}", name(node), name(peer)),
            None => name(node),
        };
        self.faults_fired.push(format!("{} {} on {between} for {duration} ({latency})", self.now, fault.name()));
        let plan_node = node.map(|n| self.nodes[n].name.clone()).unwrap_or_default();
        let plan_peer = peer.map(|n| self.nodes[n].name.clone());
        let kind = FaultKind::Link {
            fault,
            peer: plan_peer,
            duration: TimeSpec::fixed(duration),
            latency: TimeSpec::fixed(latency),
            probability_ppm,
            rate,
        };
        self.record_plan(plan_node, kind);
        self.network.impair(self.now, impairment);
    }

    /// The time an fsync started now finishes: a few milliseconds, more under a slow-fsync fault.
    pub(super) fn fsync_done(&mut self) -> Time {
        let mut base = self.now.after(Duration::from_millis(1 + self.rng.below(5)));
        // Fault point of the driver: an fsync stalls up to 200 ms (a busy disk).
        if weir_core::buggify::fires("sim.fsync.stall", 0.05) {
            base = base.after(Duration(weir_core::buggify::below(200_000)));
        }
        match self.slow_fsync {
            Some((until, latency)) if self.now < until => base.after(latency),
            _ => base,
        }
    }
}
