//! Savepoints through the protocol, submission from a savepoint (at any parallelism), and
//! falling back from a checkpoint whose state cannot be read.
//!
//! **Triggering.** The Dispatcher forwards a client's `TriggerSavepoint` (plain or
//! stop-with-savepoint) as [`JobMasterMessage::TriggerSavepoint`]; the JobMaster feeds the
//! checkpoint coordinator with a [`SavepointRequestId`] that encodes the client and its request
//! number, so the coordinator's `SavepointDone` is answered to the client without a table to
//! bound. A job without checkpointing (no `execution.checkpointing.interval`) answers an error.
//! Once a stop-with-savepoint completed, its notification is repeated every heartbeat round to
//! the tasks still RUNNING (`checkpointing.rs`), so a lost one does not leave a source stopped;
//! the tasks finish and the job ends FINISHED.
//!
//! **Restoring from a savepoint.** A job submitted with `savepoint: Some(dir)` stays
//! INITIALIZING while the driver reads `<dir>/_metadata` ([`StorageRequest::ReadMetadata`]). A
//! missing or corrupt file, state of a vertex the job does not have, or a vertex whose max
//! parallelism changed fails the job (INITIALIZING → FAILED) with the reason. Otherwise the
//! coordinator starts with ids above the savepoint's and the job starts; until a checkpoint of
//! its own completes, every new attempt restores from the savepoint. A vertex whose parallelism
//! changed is rescaled: each new subtask gets every old state file whose key-group range overlaps
//! its own (`checkpoint::rescale`), and its task keeps its key groups and its share of the items.
//!
//! **Unreadable state.** A task that fails because it cannot read its state file of checkpoint
//! `c` (truncated, crc mismatch, missing) says so (`unreadable_checkpoint`). If `c` is a
//! retained checkpoint, the coordinator drops it (never restored again, files left for
//! inspection), an [`Event::CheckpointDropped`] and the exception history say why, and the
//! restart the failure causes restores from the previous retained checkpoint, or from the
//! savepoint the job started from, or from the start when neither is left (as Flink does with
//! no checkpoint). If `c` is the savepoint the job was submitted from, the job fails: silently
//! starting without the user's state would be wrong.

use super::JobMaster;
use super::checkpointing::Checkpointing;
use super::exceptions::ExceptionEntry;
use crate::checkpoint::storage::{self, CheckpointMetadata};
use crate::checkpoint::{FailureReason, SavepointRequestId, TaskStateHandle, rescale};
use crate::config::CheckpointConfig;
use crate::ids::{CheckpointId, Hex128, SubtaskIndex, VertexIndex};
use crate::protocol::{Address, ClientMessage, Event, JobStatus, Message, Output, RestoreSpec, StorageRequest};
use std::collections::BTreeMap;

/// A savepoint (or retained checkpoint) the job was submitted from, as its `_metadata` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InitialRestore {
    checkpoint: CheckpointId,
    location: String,
    /// Each vertex of the plan with state in it: its parallelism then, and each old subtask's file.
    vertices: BTreeMap<VertexIndex, OldVertex>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct OldVertex {
    parallelism: u32,
    max_parallelism: u32,
    states: BTreeMap<u32, TaskStateHandle>,
    /// Old subtasks that had finished when the savepoint was taken.
    finished: std::collections::BTreeSet<u32>,
}

/// Where a job submitted from a savepoint is: reading its metadata, or restoring from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SavepointRestore {
    /// Waiting for `_metadata` of `location`; the job starts once it is read.
    Reading { location: String, checkpoint_config: Box<CheckpointConfig>, checkpoint_seed: u64 },
    /// Read: new attempts restore from it until a checkpoint of the job's own completes.
    Restoring(InitialRestore),
}

/// The coordinator's request id for request `request` of client `client`.
fn request_id(client: u64, request: u64) -> SavepointRequestId {
    SavepointRequestId(Hex128(u128::from(client) << 64 | u128::from(request)))
}

/// The client and request number a request id stands for.
fn client_of(request_id: SavepointRequestId) -> (u64, u64) {
    let bits = request_id.0.0;
    ((bits >> 64) as u64, bits as u64)
}

impl JobMaster {
    /// A client's savepoint request, forwarded by the Dispatcher.
    pub(super) fn on_trigger_savepoint(
        &mut self,
        request: u64,
        client: Address,
        target: Option<String>,
        stop: bool,
        drain: bool,
    ) {
        let Address::Client(number) = client else { return }; // only clients are answered
        if self.checkpointing.is_none() {
            let reason = match &self.savepoint {
                Some(SavepointRestore::Reading { .. }) => "the job is still reading the savepoint it restores from",
                _ => "checkpointing is disabled for this job (set execution.checkpointing.interval)",
            };
            return self.answer_savepoint(number, request, Err(reason.to_string()));
        }
        let request_id = request_id(number, request);
        self.feed_coordinator(crate::checkpoint::Input::TriggerSavepoint { request_id, target, stop, drain });
    }

    /// The coordinator's answer to a savepoint request, for the client that asked.
    pub(super) fn savepoint_done(&mut self, request_id: SavepointRequestId, result: Result<String, FailureReason>) {
        let (client, request) = client_of(request_id);
        self.answer_savepoint(client, request, result.map_err(|reason| reason.to_string()));
    }

    fn answer_savepoint(&mut self, client: u64, request: u64, result: Result<String, String>) {
        let message = ClientMessage::SavepointDone { request, job_id: self.job_id, result };
        self.send(Address::Client(client), Message::Client(message));
    }

    /// Starts reading the savepoint's metadata; the job starts when it is read.
    pub(super) fn read_savepoint(&mut self, location: String, checkpoint_config: CheckpointConfig, seed: u64) {
        let request = StorageRequest::ReadMetadata { job_id: self.job_id, location: location.clone() };
        self.outputs.push_back(Output::Storage(request));
        let checkpoint_config = Box::new(checkpoint_config);
        self.savepoint = Some(SavepointRestore::Reading { location, checkpoint_config, checkpoint_seed: seed });
    }

    /// The driver read (or could not read) the savepoint's `_metadata`.
    pub(super) fn on_metadata_read(&mut self, location: String, result: Result<Vec<u8>, String>) {
        let reading = matches!(&self.savepoint, Some(SavepointRestore::Reading { location: l, .. }) if *l == location);
        if !reading || self.status != JobStatus::Initializing {
            return; // not asked for, or answered already
        }
        let Some(SavepointRestore::Reading { checkpoint_config, checkpoint_seed, .. }) = self.savepoint.take() else {
            unreachable!("checked above")
        };
        let restore = result
            .and_then(|bytes| storage::decode_metadata(&bytes).map_err(|error| error.to_string()))
            .and_then(|metadata| self.initial_restore(&metadata, location.clone()));
        match restore {
            Ok(restore) => {
                let next = CheckpointId(restore.checkpoint.0.saturating_add(1)).max(self.checkpoint_id_floor);
                self.checkpointing = Checkpointing::new(&checkpoint_config, self, checkpoint_seed, next);
                self.savepoint = Some(SavepointRestore::Restoring(restore));
                self.start();
            }
            Err(error) => {
                let cause = format!("cannot restore the job from savepoint {location}: {error}");
                self.exceptions.push(ExceptionEntry {
                    timestamp_ms: self.now.as_millis(),
                    exception: cause.clone(),
                    task_name: None,
                    location: None,
                });
                self.failure = Some(cause);
                self.end_before_start(JobStatus::Failed);
            }
        }
    }

    /// Cancelling a job that is still reading its savepoint ends it at once.
    pub(super) fn cancel_while_reading(&mut self) -> bool {
        let reading = matches!(self.savepoint, Some(SavepointRestore::Reading { .. }));
        if reading && self.status == JobStatus::Initializing {
            self.savepoint = None;
            self.end_before_start(JobStatus::Canceled);
        }
        reading
    }

    /// Ends a job that never started: its attempts (all CREATED) are canceled.
    fn end_before_start(&mut self, status: JobStatus) {
        for ordinal in 0..self.executions.len() {
            self.cancel_execution(ordinal);
        }
        self.set_status(status);
    }

    /// Matches the metadata's vertices with the plan's: every vertex with state must exist with
    /// the same max parallelism (Flink refuses other state without `allowNonRestoredState`).
    fn initial_restore(&self, metadata: &CheckpointMetadata, location: String) -> Result<InitialRestore, String> {
        let mut vertices: BTreeMap<VertexIndex, OldVertex> = BTreeMap::new();
        for ((vertex_id, subtask), handle) in &metadata.tasks {
            let Some(vertex) = self.plan.vertices.iter().find(|vertex| vertex.id == *vertex_id) else {
                return Err(format!("it holds state of vertex {vertex_id}, which the job does not have"));
            };
            let Some(old) = metadata.vertices.get(vertex_id) else {
                return Err(format!("vertex {vertex_id} has state but no parallelism recorded"));
            };
            if old.max_parallelism != vertex.max_parallelism {
                return Err(format!(
                    "the max parallelism of vertex `{}` changed from {} to {}; it cannot change for a job's state",
                    vertex.name, old.max_parallelism, vertex.max_parallelism
                ));
            }
            let entry = vertices.entry(vertex.index).or_insert_with(|| OldVertex {
                parallelism: old.parallelism,
                max_parallelism: old.max_parallelism,
                states: BTreeMap::new(),
                finished: Default::default(),
            });
            entry.states.insert(subtask.0, handle.clone());
        }
        for (vertex_id, subtask) in &metadata.finished {
            let Some(vertex) = self.plan.vertices.iter().find(|vertex| vertex.id == *vertex_id) else { continue };
            let Some(old) = metadata.vertices.get(vertex_id) else { continue };
            let entry = vertices.entry(vertex.index).or_insert_with(|| OldVertex {
                parallelism: old.parallelism,
                max_parallelism: old.max_parallelism,
                states: BTreeMap::new(),
                finished: Default::default(),
            });
            entry.finished.insert(subtask.0);
        }
        Ok(InitialRestore { checkpoint: metadata.checkpoint, location, vertices })
    }

    /// What a new attempt of `(vertex, subtask)` restores from the savepoint: its own file, or
    /// after a change of parallelism every old file whose key groups overlap its own.
    ///
    /// A subtask is deployed as finished when its old self had finished at the same parallelism,
    /// or when every old subtask of its vertex had (Flink's fully finished operator).
    pub(super) fn savepoint_restore_spec(&self, vertex: VertexIndex, subtask: SubtaskIndex) -> Option<RestoreSpec> {
        let Some(SavepointRestore::Restoring(restore)) = &self.savepoint else { return None };
        let parallelism = self.plan.vertex(vertex).parallelism;
        let finished = restore.vertices.get(&vertex).is_some_and(|old| {
            let all = old.finished.len() as u32 == old.parallelism;
            all || (old.parallelism == parallelism && old.finished.contains(&subtask.0))
        });
        if finished {
            let location = restore.location.clone();
            return Some(RestoreSpec { checkpoint: restore.checkpoint, location, states: Vec::new(), finished });
        }
        let states = match restore.vertices.get(&vertex) {
            Some(old) => {
                let reads = |old_subtask: &u32| {
                    rescale::reads(*old_subtask, old.parallelism, subtask.0, parallelism, old.max_parallelism)
                };
                old.states.iter().filter(|(old_subtask, _)| reads(old_subtask)).map(|(_, h)| h.clone()).collect()
            }
            None => Vec::new(),
        };
        Some(RestoreSpec { checkpoint: restore.checkpoint, location: restore.location.clone(), states, finished })
    }

    /// A task could not read its state of `checkpoint`: drop that checkpoint so no restart
    /// restores it again. Returns a note for the failure's text, and whether the job must fail
    /// (the unreadable state is the savepoint it was submitted from).
    pub(super) fn on_unreadable_checkpoint(&mut self, checkpoint: CheckpointId) -> (String, bool) {
        if let Some(SavepointRestore::Restoring(restore)) = &self.savepoint
            && restore.checkpoint == checkpoint
        {
            let note = format!(" (the savepoint {} the job restores from cannot be read)", restore.location);
            return (note, true);
        }
        let dropped = self.checkpointing.as_mut().and_then(|c| c.drop_retained(checkpoint));
        let Some(dropped) = dropped else { return (String::new(), false) };
        let fallback = match self.checkpointing.as_ref().and_then(|c| c.coordinator().latest_completed()) {
            Some(previous) => format!("checkpoint {}", previous.checkpoint),
            None if self.savepoint.is_some() => "the savepoint the job was submitted from".to_string(),
            None => "no checkpoint: the job starts afresh".to_string(),
        };
        let reason = format!(
            "checkpoint {checkpoint} at {} has unreadable state and will not be restored again; restoring {fallback}",
            dropped.location
        );
        self.event(Event::CheckpointDropped { job_id: self.job_id, checkpoint, reason: reason.clone() });
        (format!(" ({reason})"), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_round_trip_to_the_client_and_request() {
        for (client, request) in [(0, 0), (7, 42), (u64::MAX, u64::MAX), (1, u64::MAX)] {
            assert_eq!(client_of(request_id(client, request)), (client, request));
        }
    }
}
