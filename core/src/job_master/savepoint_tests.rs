//! Savepoints through the JobMaster: triggering and answering clients, stop-with-savepoint to
//! FINISHED, submission from a savepoint (also at another parallelism), and falling back from a
//! checkpoint whose state cannot be read.

use super::tests::{Cluster, EPOCH, JOB, config, fixed_delay, tm, two_vertex_plan};
use super::*;
use crate::checkpoint::storage::{self, CheckpointMetadata, VertexMetadata};
use crate::checkpoint::{AckMetrics, TaskStateHandle};
use crate::config::FailoverStrategy;
use crate::dataflow::BarrierKind;
use crate::ids::{CheckpointId, Hex128};
use crate::protocol::{ClientMessage, ExecutionId, StorageRequest, TaskDeployment};

const CLIENT: Address = Address::Client(5);

fn checkpointing_config(savepoint_dir: Option<&str>) -> Config {
    let mut config = config(fixed_delay(3), FailoverStrategy::Full);
    config.checkpoint.interval = Some(Duration::from_secs(10));
    config.checkpoint.retained = 2;
    config.checkpoint.savepoint_dir = savepoint_dir.map(str::to_string);
    config
}

/// A job of parallelism `parallelism` with every task RUNNING on TaskManager 0.
fn running(cluster: &mut Cluster, parallelism: usize) {
    cluster.offer(tm(0), parallelism);
    cluster.run_deployed();
    assert!(cluster.jm.executions().all(|view| view.state == ExecutionState::Running));
}

fn trigger_savepoint(cluster: &mut Cluster, request: u64, target: Option<&str>, stop: bool, drain: bool) {
    let target = target.map(str::to_string);
    let message = JobMasterMessage::TriggerSavepoint { request, client: CLIENT, target, stop, drain };
    cluster.message(Address::Dispatcher, message);
}

/// The newest barrier sent to the sources.
fn last_trigger(cluster: &Cluster) -> Option<(CheckpointId, BarrierKind)> {
    cluster.sent.iter().rev().find_map(|envelope| match &envelope.message {
        Message::TaskExecutor(TaskExecutorMessage::TriggerCheckpoint { barrier, .. }) => {
            Some((barrier.checkpoint, barrier.kind))
        }
        _ => None,
    })
}

/// Every current attempt acknowledges `checkpoint` with a state file, and its metadata is durable.
fn complete(cluster: &mut Cluster, checkpoint: CheckpointId) {
    let views: Vec<ExecutionView> = cluster.jm.executions().collect();
    for view in views {
        let vertex = cluster.jm.plan().vertex(view.id.vertex).id;
        let file = storage::state_file_name(vertex, view.id.subtask, view.id.attempt);
        let state = Some(TaskStateHandle { file, size_bytes: 100, crc32: 7, shared: Vec::new() });
        let ack = JobMasterMessage::AcknowledgeCheckpoint {
            execution: view.id,
            checkpoint,
            state,
            metrics: AckMetrics::default(),
        };
        cluster.message(Address::TaskExecutor(tm(0)), ack);
    }
    let written = cluster
        .stored
        .iter()
        .any(|request| matches!(request, StorageRequest::WriteMetadata { checkpoint: c, .. } if *c == checkpoint));
    assert!(written, "every task acknowledged: the metadata is written");
    cluster.input(Input::Storage(StorageReply::MetadataWritten { job_id: JOB, checkpoint }));
}

/// A periodic checkpoint, triggered and completed.
fn periodic_checkpoint(cluster: &mut Cluster) -> CheckpointId {
    let before = last_trigger(cluster).map(|(checkpoint, _)| checkpoint);
    cluster.run_for(Duration::from_secs(10));
    let (checkpoint, kind) = last_trigger(cluster).unwrap_or_else(|| panic!("a periodic checkpoint"));
    assert!(Some(checkpoint) != before && kind == BarrierKind::Checkpoint);
    complete(cluster, checkpoint);
    checkpoint
}

fn savepoint_answers(cluster: &Cluster) -> Vec<(u64, Result<String, String>)> {
    let answers = cluster.sent.iter().filter(|envelope| envelope.to == CLIENT);
    answers
        .filter_map(|envelope| match &envelope.message {
            Message::Client(ClientMessage::SavepointDone { request, job_id: JOB, result }) => {
                Some((*request, result.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_savepoint_is_answered_to_the_client_with_its_location() {
    let mut cluster = Cluster::new(two_vertex_plan(2, true), &checkpointing_config(Some("/savepoints")));
    running(&mut cluster, 2);
    trigger_savepoint(&mut cluster, 11, None, false, false);
    let (savepoint, kind) = last_trigger(&cluster).unwrap_or_else(|| panic!("the savepoint's barrier"));
    assert_eq!(kind, BarrierKind::Savepoint { stop: false, drain: false });
    assert!(savepoint_answers(&cluster).is_empty(), "not before it completed");
    complete(&mut cluster, savepoint);
    let answers = savepoint_answers(&cluster);
    assert_eq!(answers.len(), 1);
    let (request, location) = answers[0].clone();
    assert_eq!(request, 11);
    let location = location.unwrap_or_else(|error| panic!("{error}"));
    assert!(location.starts_with("/savepoints/savepoint-"), "{location}");
    assert_eq!(cluster.jm.status(), JobStatus::Running, "a plain savepoint does not stop the job");
    // A target given with the request wins over the configured directory.
    trigger_savepoint(&mut cluster, 12, Some("/elsewhere"), false, false);
    let (second, _) = last_trigger(&cluster).unwrap_or_else(|| panic!("a barrier"));
    complete(&mut cluster, second);
    let answers = savepoint_answers(&cluster);
    assert!(matches!(&answers[1], (12, Ok(location)) if location.starts_with("/elsewhere/savepoint-")));
}

#[test]
fn a_savepoint_without_a_directory_or_without_checkpointing_is_refused_clearly() {
    let mut cluster = Cluster::new(two_vertex_plan(1, true), &checkpointing_config(None));
    running(&mut cluster, 1);
    trigger_savepoint(&mut cluster, 1, None, false, false);
    let answers = savepoint_answers(&cluster);
    assert!(matches!(&answers[..], [(1, Err(reason))] if reason.contains("savepoint directory")), "{answers:?}");
    assert_eq!(last_trigger(&cluster), None, "nothing was triggered");

    let mut cluster = Cluster::new(two_vertex_plan(1, true), &Config::default());
    running(&mut cluster, 1);
    trigger_savepoint(&mut cluster, 2, Some("/sp"), true, false);
    let answers = savepoint_answers(&cluster);
    assert!(matches!(&answers[..], [(2, Err(reason))] if reason.contains("checkpointing is disabled")));
    // Only the Dispatcher forwards requests, and only clients are answered.
    let message = JobMasterMessage::TriggerSavepoint {
        request: 3,
        client: Address::ResourceManager,
        target: None,
        stop: false,
        drain: false,
    };
    assert_eq!(cluster.message(Address::Dispatcher, message.clone()), 0);
    assert_eq!(cluster.message(Address::TaskExecutor(tm(0)), message), 0);
}

#[test]
fn stop_with_savepoint_notifies_the_tasks_and_the_job_ends_finished() {
    let mut cluster = Cluster::new(two_vertex_plan(2, true), &checkpointing_config(Some("/sp")));
    running(&mut cluster, 2);
    trigger_savepoint(&mut cluster, 7, None, true, true);
    let (savepoint, kind) = last_trigger(&cluster).unwrap_or_else(|| panic!("the savepoint's barrier"));
    assert_eq!(kind, BarrierKind::Savepoint { stop: true, drain: true });
    complete(&mut cluster, savepoint);
    assert!(matches!(&savepoint_answers(&cluster)[..], [(7, Ok(_))]));
    let notified = cluster.sent.iter().filter(|envelope| {
        matches!(&envelope.message, Message::TaskExecutor(TaskExecutorMessage::NotifyCheckpoint {
            checkpoint, complete: true, ..
        }) if *checkpoint == savepoint)
    });
    assert_eq!(notified.count(), 4, "every task learns the stop-with-savepoint completed");
    // One notification was lost: the task still RUNNING hears it again with the next heartbeat.
    let views: Vec<ExecutionView> = cluster.jm.executions().collect();
    for view in &views[1..] {
        cluster.report(*view, ExecutionState::Finished, None);
    }
    let sent = cluster.sent.len();
    cluster.run_for(Duration::from_secs(11));
    let repeated: Vec<ExecutionId> = (cluster.sent[sent..].iter())
        .filter_map(|envelope| match &envelope.message {
            Message::TaskExecutor(TaskExecutorMessage::NotifyCheckpoint { execution, checkpoint, complete: true })
                if *checkpoint == savepoint =>
            {
                Some(*execution)
            }
            _ => None,
        })
        .collect();
    assert!(!repeated.is_empty() && repeated.iter().all(|execution| *execution == views[0].id), "{repeated:?}");
    // The tasks finish (their sources stopped at the barrier).
    cluster.report_all(&[ExecutionState::Running], ExecutionState::Finished);
    cluster.assert_ended(JobStatus::Finished);
}

fn metadata_of(plan: &JobPlan, checkpoint: CheckpointId, max_parallelism: Option<u32>) -> CheckpointMetadata {
    let mut metadata = CheckpointMetadata {
        job: JobId(Hex128(0x01d)),
        checkpoint,
        is_savepoint: true,
        triggered_at: Time::ZERO,
        vertices: BTreeMap::new(),
        tasks: BTreeMap::new(),
        finished: Default::default(),
    };
    for vertex in &plan.vertices {
        let max_parallelism = max_parallelism.unwrap_or(vertex.max_parallelism);
        metadata.vertices.insert(vertex.id, VertexMetadata { parallelism: vertex.parallelism, max_parallelism });
        for subtask in (0..vertex.parallelism).map(SubtaskIndex) {
            let file = format!("task-{}-{subtask}", vertex.index);
            metadata
                .tasks
                .insert((vertex.id, subtask), TaskStateHandle { file, size_bytes: 10, crc32: 1, shared: Vec::new() });
        }
    }
    metadata
}

/// A JobMaster for `plan` submitted from savepoint `/sp/1`, answered with `reply`.
fn from_savepoint(plan: JobPlan, reply: Result<Vec<u8>, String>) -> Cluster {
    let config = checkpointing_config(Some("/sp"));
    let jm = JobMaster::with_savepoint(JOB, plan, &config, EPOCH, 42, Time::ZERO, Some("/sp/1".to_string()));
    let mut cluster = Cluster::with(jm);
    assert_eq!(cluster.jm.status(), JobStatus::Initializing, "the job waits for the savepoint's metadata");
    assert!(cluster.requested.is_empty(), "no slot before the metadata is read");
    let read = StorageRequest::ReadMetadata { job_id: JOB, location: "/sp/1".to_string() };
    assert_eq!(cluster.stored, vec![read]);
    let location = "/sp/1".to_string();
    cluster.input(Input::Storage(StorageReply::MetadataRead { job_id: JOB, location, result: reply }));
    cluster
}

fn restored_files(deployment: &TaskDeployment) -> Vec<String> {
    let restore = deployment.restore.as_ref();
    restore.map(|spec| spec.states.iter().map(|state| state.file.clone()).collect()).unwrap_or_default()
}

#[test]
fn a_job_submitted_from_a_savepoint_restores_it_and_continues_its_checkpoint_ids() {
    let old = two_vertex_plan(2, true);
    let bytes = storage::encode_metadata(&metadata_of(&old, CheckpointId(41), None));
    let mut cluster = from_savepoint(two_vertex_plan(2, true), Ok(bytes));
    assert_eq!(cluster.jm.status(), JobStatus::Running);
    running(&mut cluster, 2);
    let deployments = cluster.deployments();
    assert_eq!(deployments.len(), 4);
    for deployment in deployments {
        let spec = deployment.restore.as_ref().unwrap_or_else(|| panic!("every attempt restores"));
        assert_eq!((spec.checkpoint, spec.location.as_str()), (CheckpointId(41), "/sp/1"));
        let execution = deployment.execution;
        assert_eq!(restored_files(deployment), [format!("task-{}-{}", execution.vertex, execution.subtask)]);
    }
    let coordinator = cluster.jm.checkpoint_coordinator().unwrap_or_else(|| panic!("checkpointing is on"));
    assert_eq!(coordinator.checkpoint_id_next(), CheckpointId(42), "ids continue above the savepoint's");
    assert_eq!(periodic_checkpoint(&mut cluster), CheckpointId(42));
}

#[test]
fn a_savepoint_restored_at_another_parallelism_gives_each_subtask_the_overlapping_files() {
    let (two, three) = (two_vertex_plan(2, true), two_vertex_plan(3, true));
    assert_eq!(two.vertices[0].id, three.vertices[0].id, "vertex ids do not depend on the parallelism");
    let bytes = storage::encode_metadata(&metadata_of(&two, CheckpointId(5), None));
    let mut cluster = from_savepoint(three, Ok(bytes));
    running(&mut cluster, 3);
    let files: BTreeMap<(u32, u32), Vec<String>> = cluster
        .deployments()
        .iter()
        .map(|deployment| ((deployment.execution.vertex.0, deployment.execution.subtask.0), restored_files(deployment)))
        .collect();
    // 128 key groups: old [0,64) [64,128); new [0,43) [43,86) [86,128); old j also goes to j mod 3.
    assert_eq!(files[&(0, 0)], ["task-0-0"]);
    assert_eq!(files[&(0, 1)], ["task-0-0", "task-0-1"]);
    assert_eq!(files[&(0, 2)], ["task-0-1"]);
    assert_eq!(files[&(1, 1)], ["task-1-0", "task-1-1"]);
}

#[test]
fn an_unreadable_savepoint_or_a_changed_max_parallelism_fails_the_job_with_the_reason() {
    let plan = two_vertex_plan(2, true);
    let good = storage::encode_metadata(&metadata_of(&plan, CheckpointId(3), None));
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let other_max = storage::encode_metadata(&metadata_of(&plan, CheckpointId(3), Some(64)));
    let cases = [
        (Err("No such file or directory".to_string()), "No such file"),
        (Ok(truncated), "truncated"),
        (Ok(other_max), "max parallelism"),
    ];
    for (reply, expected) in cases {
        let cluster = from_savepoint(two_vertex_plan(2, true), reply);
        assert_eq!(cluster.jm.status(), JobStatus::Failed);
        let failure = cluster.jm.failure().unwrap_or_default();
        assert!(failure.contains("/sp/1") && failure.contains(expected), "{failure}");
        assert_eq!(cluster.dispatcher_statuses(), [JobStatus::Failed]);
        assert!(cluster.requested.is_empty());
    }
}

#[test]
fn cancelling_while_the_savepoint_is_read_ends_the_job_and_a_late_answer_changes_nothing() {
    let config = checkpointing_config(Some("/sp"));
    let plan = two_vertex_plan(1, true);
    let jm = JobMaster::with_savepoint(JOB, plan.clone(), &config, EPOCH, 42, Time::ZERO, Some("/sp/1".to_string()));
    let mut cluster = Cluster::with(jm);
    cluster.message(Address::Dispatcher, JobMasterMessage::Cancel);
    assert_eq!(cluster.jm.status(), JobStatus::Canceled);
    let bytes = storage::encode_metadata(&metadata_of(&plan, CheckpointId(3), None));
    let location = "/sp/1".to_string();
    cluster.input(Input::Storage(StorageReply::MetadataRead { job_id: JOB, location, result: Ok(bytes) }));
    assert_eq!(cluster.jm.status(), JobStatus::Canceled);
    assert!(cluster.requested.is_empty());
}

#[test]
fn an_unreadable_checkpoint_is_dropped_and_the_restart_restores_the_previous_one() {
    let mut cluster = Cluster::new(two_vertex_plan(1, true), &checkpointing_config(None));
    running(&mut cluster, 1);
    let first = periodic_checkpoint(&mut cluster);
    let second = periodic_checkpoint(&mut cluster);
    // A task fails and restarts from the second checkpoint, whose state file it cannot read.
    let view = cluster.view(1, 0);
    cluster.report(view, ExecutionState::Failed, Some("boom"));
    cluster.complete_cancellations();
    cluster.run_for(Duration::from_secs(1));
    cluster.offer(tm(0), 1);
    let restores: Vec<CheckpointId> =
        cluster.deployments().iter().filter_map(|d| d.restore.as_ref()).map(|r| r.checkpoint).collect();
    assert_eq!(restores, [second, second]);
    let view = cluster.view(0, 0);
    let message = JobMasterMessage::TaskStateChanged {
        execution: view.id,
        state: ExecutionState::Failed,
        error: Some("restore: state file: checksum mismatch".to_string()),
        unreadable_checkpoint: Some(second),
    };
    cluster.message(Address::TaskExecutor(tm(0)), message);
    let dropped = cluster
        .events
        .iter()
        .any(|event| matches!(event, Event::CheckpointDropped { checkpoint, .. } if *checkpoint == second));
    assert!(dropped, "an event says the checkpoint was dropped");
    let coordinator = cluster.jm.checkpoint_coordinator().unwrap_or_else(|| panic!("checkpointing is on"));
    assert_eq!(coordinator.latest_completed().map(|c| c.checkpoint), Some(first));
    let entry = cluster.jm.exceptions().next().unwrap_or_else(|| panic!("the failure is recorded")).clone();
    assert!(entry.exception.contains(&format!("checkpoint {second}")), "{}", entry.exception);
    assert!(entry.exception.contains(&format!("restoring checkpoint {first}")), "{}", entry.exception);
    // The restart restores from the previous checkpoint; a repeated report changes nothing more.
    cluster.complete_cancellations();
    cluster.run_for(Duration::from_secs(1));
    cluster.offer(tm(0), 1);
    let restores: Vec<CheckpointId> =
        cluster.deployments().iter().filter_map(|d| d.restore.as_ref()).map(|r| r.checkpoint).collect();
    assert_eq!(&restores[2..], [first, first]);
}
