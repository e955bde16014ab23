//! The world's side of real tasks: carrying out the data plane's effects, routing buffers
//! through the simulated network, the simulated storage, and the output invariant.
//!
//! The output invariant: when a job with real tasks ends FINISHED, the committed lines of its
//! file sinks are compared with those of the same scenario run without any fault (computed once
//! per scenario and process, with seed 0). Exactly-once: the same lines, each as often.
//! At-least-once: every fault-free line at least once. The job must therefore produce an output
//! that does not depend on timing (no processing-time windows, no count windows fed by several
//! producers), which the scenario's author guarantees.

use super::{Action, Machine, NodeInput, World};
use crate::dataplane::connectors::committed_lines;
use crate::dataplane::{Effect, Packet};
use crate::disk::{Damage, Disk, SharedDisk, lock};
use crate::network::NodeIndex;
use crate::scenario::{OutputCheck, Scenario};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use weir_core::checkpoint::{DeclineReason, storage};
use weir_core::ids::{JobId, stable_hash128};
use weir_core::protocol::{JobStatus, StorageReply, StorageRequest, TaskCommand};
use weir_core::time::Duration;

/// The committed output of each job of a fault-free run, by job.
type Reference = Arc<Result<Vec<Option<Vec<String>>>, String>>;

/// Fault-free outputs already computed, by scenario fingerprint.
fn references() -> &'static Mutex<BTreeMap<u128, Reference>> {
    static REFERENCES: OnceLock<Mutex<BTreeMap<u128, Reference>>> = OnceLock::new();
    REFERENCES.get_or_init(Default::default)
}

/// The storage at the start of a run: the scenario's input files.
pub(super) fn initial_disk(scenario: &Scenario) -> SharedDisk {
    let mut disk = Disk::default();
    for file in &scenario.data.files {
        disk.write(&file.path, file.contents());
    }
    Arc::new(Mutex::new(disk))
}

impl World<'_> {
    /// Whether a job's tasks run for real.
    pub(super) fn is_real(&self, job_id: JobId) -> bool {
        self.dataplane.runs(job_id)
    }

    /// A task command for a job with real tasks.
    pub(super) fn real_task_command(&mut self, node: NodeIndex, command: TaskCommand) {
        let now = self.now;
        let effects = match command {
            TaskCommand::Start(deployment) => self.dataplane.start(now, node, &deployment, &mut self.rng),
            TaskCommand::Cancel(execution) => self.dataplane.cancel(now, execution, &mut self.rng),
            TaskCommand::TriggerCheckpoint { execution, barrier, location } => {
                self.dataplane.trigger(now, execution, barrier, location)
            }
            TaskCommand::NotifyCheckpoint { execution, checkpoint, complete } => {
                self.dataplane.notify(now, execution, checkpoint, complete)
            }
        };
        self.apply(effects);
    }

    /// Carries out the data plane's effects.
    pub(super) fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Report { at, node, report } => {
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule(at.max(self.now), Action::Report { node, incarnation, report });
                }
                Effect::CheckpointReport { node, report } => {
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule(self.now, Action::Ack { node, incarnation, report });
                }
                Effect::FinalCheckpointAwaited { node, execution, checkpoint_latest } => {
                    let incarnation = self.nodes[node].incarnation;
                    let action = Action::FinalCheckpointAwaited { node, incarnation, execution, checkpoint_latest };
                    self.schedule(self.now, action);
                }
                Effect::Step { at, execution } => {
                    let Some(node) = self.dataplane.node_of(&execution) else { continue };
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule(at.max(self.now), Action::Step { node, incarnation, execution });
                }
                Effect::Data { from, to, packet } => self.send_data(from, to, packet),
                Effect::StateFile { node, path, bytes, report } => {
                    let at = self.fsync_done();
                    let incarnation = self.nodes[node].incarnation;
                    self.schedule(at, Action::StateWritten { node, incarnation, path, bytes, report });
                }
                Effect::Violation(message) => self.violation(message),
            }
        }
    }

    /// A buffer leaves its producer: local channels skip the network; remote ones are reliable
    /// and FIFO unless the link is cut, which breaks the connection and fails the producer.
    fn send_data(&mut self, from: NodeIndex, to: NodeIndex, packet: Packet) {
        if from == to {
            self.schedule(self.now, Action::Data { from, to, packet });
            return;
        }
        // TCP needs both directions: a one-way cut breaks the connection too.
        if self.network.is_blocked(from, to) || self.network.is_blocked(to, from) {
            let reason = format!("lost the data connection to {}", self.nodes[to].name);
            let effects = self.dataplane.fail(self.now, packet.producer, reason);
            self.apply(effects);
            return;
        }
        let bytes = packet.buffer.len_bytes();
        let at = self.network.data_arrival(&mut self.rng, self.now, from, to, bytes);
        self.schedule(at, Action::Data { from, to, packet });
    }

    /// A buffer reaches its consumer's node.
    pub(super) fn deliver_data(&mut self, from: NodeIndex, to: NodeIndex, packet: Packet) {
        if from != to && (self.network.is_blocked(from, to) || self.network.is_blocked(to, from)) {
            // The connection broke while the buffer was in flight: both ends fail.
            let now = self.now;
            let reason = |node: &str| format!("lost the data connection to {node}");
            let (producer, consumer) = (packet.producer, packet.consumer);
            let mut effects = self.dataplane.fail(now, consumer, reason(&self.nodes[from].name));
            effects.extend(self.dataplane.fail(now, producer, reason(&self.nodes[to].name)));
            self.apply(effects);
            return;
        }
        if !matches!(self.nodes[to].machine(), Machine::TaskManager(_)) {
            return;
        }
        let effects = self.dataplane.deliver(self.now, packet);
        self.apply(effects);
    }

    /// A task's step is due on a live node.
    pub(super) fn step_task(&mut self, node: NodeIndex, incarnation: u32, execution: weir_core::protocol::ExecutionId) {
        if self.nodes[node].incarnation != incarnation || !self.dataplane.hosts(node, &execution) {
            return;
        }
        let effects = self.dataplane.step(self.now, execution);
        self.apply(effects);
    }

    /// A state file's fsync finished: unless its writer crashed first, it is durable and the
    /// task acknowledges.
    pub(super) fn state_written(
        &mut self,
        node: NodeIndex,
        incarnation: u32,
        path: String,
        bytes: Vec<u8>,
        report: weir_core::protocol::TaskCheckpointReport,
    ) {
        if self.nodes[node].incarnation != incarnation {
            return; // the process died before the write was synced: the file is lost
        }
        let mut report = report;
        if lock(&self.disk).is_full() {
            // The write failed: the task declines the checkpoint with the IO error, as Flink's
            // asynchronous snapshot part does.
            let reason = format!("{path}: {}", crate::disk::NO_SPACE);
            report.outcome = weir_core::protocol::CheckpointOutcome::Declined(DeclineReason::Io(reason));
        } else {
            lock(&self.disk).write(&path, bytes);
        }
        self.trace.record(&report);
        self.feed(node, NodeInput::Ack(report));
    }

    /// The JobManager's storage: `_metadata` is durable after a short seeded delay (lost if the
    /// JobManager dies first); deletes happen at once.
    pub(super) fn storage(&mut self, node: super::NodeIndex, request: StorageRequest) {
        match request {
            StorageRequest::WriteMetadata { job_id, checkpoint, location, bytes } => {
                let at = self.fsync_done();
                let incarnation = self.nodes[node].incarnation;
                let path =
                    format!("{}/{}", location.trim_end_matches('/'), weir_core::checkpoint::storage::METADATA_FILE);
                let reply = StorageReply::MetadataWritten { job_id, checkpoint };
                self.schedule(at, Action::Stored { node, incarnation, reply, write: Some((path, bytes)) });
            }
            StorageRequest::ReadMetadata { job_id, location } => {
                let at = self.now.after(Duration::from_millis(1 + self.rng.below(5)));
                let incarnation = self.nodes[node].incarnation;
                let path = format!("{}/{}", location.trim_end_matches('/'), storage::METADATA_FILE);
                let result = match lock(&self.disk).read(&path) {
                    Some(bytes) => Ok(bytes.to_vec()),
                    None => Err(format!("{path}: no such file")),
                };
                let reply = StorageReply::MetadataRead { job_id, location, result };
                self.schedule(at, Action::Stored { node, incarnation, reply, write: None });
            }
            StorageRequest::Delete { location, .. } => lock(&self.disk).remove_tree(&location),
        }
    }

    /// Damages the checkpoint whose `_metadata` was just written when a damage fault is armed:
    /// the disk fault hits every checkpoint that completes right after it, so the damaged one
    /// is the one a restart restores.
    pub(super) fn damage_if_armed(&mut self) {
        let Some((until, damage)) = self.damage_armed else { return };
        if self.now > until {
            self.damage_armed = None;
            return;
        }
        if let Some(path) = self.damage_newest_checkpoint(damage) {
            self.faults_fired.push(format!("{} {damage:?} {path}", self.now));
        }
    }

    /// Damages one task state file of the newest checkpoint that has `_metadata`; its path.
    pub(super) fn damage_newest_checkpoint(&mut self, damage: Damage) -> Option<String> {
        let mut disk = lock(&self.disk);
        let metadata = format!("/{}", storage::METADATA_FILE);
        let newest = disk
            .paths_under("")
            .into_iter()
            .filter_map(|path| path.strip_suffix(&metadata).map(String::from))
            .filter_map(|dir| {
                let name = dir.rsplit('/').next().unwrap_or(&dir);
                storage::parse_checkpoint_dir_name(name).map(|id| (id, dir.clone()))
            })
            .max()?;
        let files: Vec<String> =
            disk.list(&newest.1).into_iter().filter(|name| name != storage::METADATA_FILE).collect();
        if files.is_empty() {
            return None;
        }
        let path = format!("{}/{}", newest.1, files[self.rng.below(files.len() as u64) as usize]);
        disk.damage(&path, damage, &mut self.rng).then_some(path)
    }

    /// The committed output of every job with real tasks, by scenario job; `None` for a job
    /// that did not finish or does not run real tasks.
    fn outputs(&self) -> Vec<Option<Vec<String>>> {
        self.jobs
            .iter()
            .map(|job| {
                let job_id = job.job_id?;
                if !self.is_real(job_id) || job.status != Some(JobStatus::Finished) {
                    return None;
                }
                Some(committed_lines(&self.disk, &self.dataplane.sink_directories(job_id)))
            })
            .collect()
    }

    /// The output invariant of every finished job with real tasks.
    pub(super) fn output_checks(&self) -> Vec<String> {
        let outputs = self.outputs();
        let wanted = self.scenario.jobs.iter().any(|spec| spec.real_tasks && spec.output != OutputCheck::Unchecked);
        if self.reference_run || !wanted || outputs.iter().all(Option::is_none) {
            return Vec::new();
        }
        let reference = reference_outputs(self.scenario);
        let reference = match reference.as_ref() {
            Ok(reference) => reference,
            Err(message) => return vec![message.clone()],
        };
        let mut problems = Vec::new();
        for (index, (spec, output)) in self.scenario.jobs.iter().zip(&outputs).enumerate() {
            let Some(output) = output else { continue };
            let Some(Some(expected)) = reference.get(index) else {
                problems
                    .push(format!("job {index}: the fault-free run did not finish, so there is nothing to compare"));
                continue;
            };
            let problem = match spec.output {
                OutputCheck::ExactlyOnce => compare_exactly(expected, output),
                OutputCheck::AtLeastOnce => compare_at_least(expected, output),
                OutputCheck::Unchecked => None,
            };
            if let Some(problem) = problem {
                problems.push(format!("job {index} ({}): {problem}", spec.graph.name));
            }
        }
        problems
    }
}

/// The committed output of each job of `scenario` run without faults (`None` for a job that did
/// not finish or runs modelled tasks), computed once per process.
pub fn fault_free_output(scenario: &Scenario) -> Result<Vec<Option<Vec<String>>>, String> {
    reference_outputs(scenario).as_ref().clone()
}

/// The fault-free outputs of `scenario`, computed once per process.
fn reference_outputs(scenario: &Scenario) -> Reference {
    let fingerprint = u128::from_le_bytes(
        stable_hash128(&[
            format!("{:?}", (&scenario.jobs, &scenario.config, &scenario.data, &scenario.cluster)).as_bytes()
        ])
        .to_le_bytes(),
    );
    if let Some(found) = references().lock().unwrap_or_else(|p| p.into_inner()).get(&fingerprint) {
        return found.clone();
    }
    let computed = Arc::new(compute_reference(scenario));
    references().lock().unwrap_or_else(|p| p.into_inner()).insert(fingerprint, computed.clone());
    computed
}

/// Runs the scenario without faults, without stops and without the jobs resubmitted from a
/// stop's savepoint: such a job's reference is its first job's uninterrupted output.
fn compute_reference(scenario: &Scenario) -> Result<Vec<Option<Vec<String>>>, String> {
    let mut quiet = scenario.clone();
    quiet.faults.clear();
    quiet.nemesis = None;
    quiet.buggify = false;
    quiet.jobs.retain(|job| job.from_savepoint_of.is_none());
    for job in &mut quiet.jobs {
        job.stop_with_savepoint_at = None;
    }
    let mut world = World::new(&quiet, 0, Some(Vec::new()))?;
    world.reference_run = true;
    world.run_to_end();
    if !world.violations.is_empty() {
        let first = &world.violations[0];
        return Err(format!("the fault-free reference run broke an invariant: {}", first.message));
    }
    let quiet_outputs = world.outputs();
    let mut quiet_index = Vec::new();
    let mut kept = 0;
    for job in &scenario.jobs {
        quiet_index.push(kept);
        kept += usize::from(job.from_savepoint_of.is_none());
    }
    let root = |mut job: usize| {
        while let Some(earlier) = scenario.jobs[job].from_savepoint_of {
            job = earlier;
        }
        job
    };
    Ok((0..scenario.jobs.len()).map(|job| quiet_outputs.get(quiet_index[root(job)]).cloned().flatten()).collect())
}

fn counts(lines: &[String]) -> BTreeMap<&str, i64> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Exactly-once: the same multiset of lines. Names the first few differences.
fn compare_exactly(expected: &[String], got: &[String]) -> Option<String> {
    if expected == got {
        return None;
    }
    let (want, have) = (counts(expected), counts(got));
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (line, count) in &want {
        let found = have.get(line).copied().unwrap_or(0);
        if found < *count {
            missing.push(format!("{line:?} x{}", count - found));
        }
    }
    for (line, count) in &have {
        let wanted = want.get(line).copied().unwrap_or(0);
        if *count > wanted {
            extra.push(format!("{line:?} x{}", count - wanted));
        }
    }
    Some(format!(
        "committed output differs from the fault-free run ({} lines, {} expected): {} missing {:?}, {} extra {:?}",
        got.len(),
        expected.len(),
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    ))
}

/// At-least-once: every line of the fault-free output appears.
fn compare_at_least(expected: &[String], got: &[String]) -> Option<String> {
    let have = counts(got);
    let missing: Vec<&String> = expected.iter().filter(|line| !have.contains_key(line.as_str())).collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "committed output lacks {} lines of the fault-free run, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        let mut lines: Vec<String> = text.iter().map(|line| line.to_string()).collect();
        lines.sort();
        lines
    }

    #[test]
    fn exactly_once_catches_a_duplicate_and_a_loss() {
        let expected = lines(&["a,1", "b,1", "b,2"]);
        assert_eq!(compare_exactly(&expected, &expected), None);
        let duplicated = lines(&["a,1", "a,1", "b,1", "b,2"]);
        assert!(compare_exactly(&expected, &duplicated).is_some_and(|problem| problem.contains("1 extra")));
        let lost = lines(&["a,1", "b,2"]);
        assert!(compare_exactly(&expected, &lost).is_some_and(|problem| problem.contains("1 missing")));
    }

    #[test]
    fn at_least_once_allows_duplicates_but_not_losses() {
        let expected = lines(&["a,1", "b,1"]);
        assert_eq!(compare_at_least(&expected, &lines(&["a,1", "a,1", "b,1"])), None);
        assert!(compare_at_least(&expected, &lines(&["a,1"])).is_some());
    }
}
