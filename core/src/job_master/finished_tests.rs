//! The JobMaster with finished tasks (Flink's checkpoints after tasks finish): it keeps
//! checkpointing while some tasks are FINISHED, triggers where the barriers must start, and
//! deploys a subtask finished in the restored checkpoint as finished.

use super::tests::{Cluster, fixed_delay, tm, two_vertex_plan};
use super::*;
use crate::config::FailoverStrategy;
use crate::ids::CheckpointId;
use crate::protocol::{ExecutionId, StorageRequest, TaskDeployment};

/// Checkpoints every second, full restarts.
fn checkpointing_config() -> Config {
    let mut config = super::tests::config(fixed_delay(3), FailoverStrategy::Full);
    config.checkpoint.interval = Some(Duration::from_secs(1));
    config.checkpoint.dir = Some("/chk".to_string());
    config
}

/// `sequence(2) -> rebalance -> map(2)` on two TaskManagers, every task RUNNING.
fn running() -> Cluster {
    let mut cluster = Cluster::new(two_vertex_plan(2, true), &checkpointing_config());
    cluster.offer(tm(0), 1);
    cluster.offer(tm(1), 1);
    cluster.run_deployed();
    cluster
}

/// The (attempt, checkpoint) of every TriggerCheckpoint sent from message `from` on.
fn triggers(cluster: &Cluster, from: usize) -> Vec<(ExecutionId, CheckpointId)> {
    let sent = cluster.sent[from..].iter().filter_map(|envelope| match &envelope.message {
        Message::TaskExecutor(TaskExecutorMessage::TriggerCheckpoint { execution, barrier, .. }) => {
            Some((*execution, barrier.checkpoint))
        }
        _ => None,
    });
    sent.collect()
}

/// The attempts told that `checkpoint` completed.
fn notified(cluster: &Cluster, checkpoint: CheckpointId) -> Vec<ExecutionId> {
    let sent = cluster.sent.iter().filter_map(|envelope| match &envelope.message {
        Message::TaskExecutor(TaskExecutorMessage::NotifyCheckpoint { execution, checkpoint: c, complete: true })
            if *c == checkpoint =>
        {
            Some(*execution)
        }
        _ => None,
    });
    sent.collect()
}

/// Runs until a checkpoint is triggered; returns where.
fn next_triggers(cluster: &mut Cluster) -> Vec<(ExecutionId, CheckpointId)> {
    let from = cluster.sent.len();
    for _ in 0..20 {
        cluster.run_for(Duration::from_millis(500));
        let sent = triggers(cluster, from);
        if !sent.is_empty() {
            return sent;
        }
    }
    panic!("no checkpoint triggered");
}

/// `view`'s TaskManager acknowledges `checkpoint` with a state file.
fn acknowledge(cluster: &mut Cluster, view: ExecutionView, checkpoint: CheckpointId) {
    let resource_id = view.location.unwrap_or_else(|| panic!("deployed")).resource_id;
    let state = crate::checkpoint::TaskStateHandle {
        file: format!("state-{}", view.id),
        size_bytes: 10,
        crc32: 1,
        shared: Vec::new(),
    };
    let metrics = crate::checkpoint::AckMetrics::default();
    let message =
        JobMasterMessage::AcknowledgeCheckpoint { execution: view.id, checkpoint, state: Some(state), metrics };
    cluster.message(Address::TaskExecutor(resource_id), message);
}

/// Answers the metadata write of `checkpoint`: it completes.
fn persist(cluster: &mut Cluster, checkpoint: CheckpointId) {
    let asked = cluster.stored.iter().any(|request| match request {
        StorageRequest::WriteMetadata { checkpoint: c, .. } => *c == checkpoint,
        _ => false,
    });
    assert!(asked, "the metadata of {checkpoint} is written once every running task acknowledged");
    cluster.input(Input::Storage(StorageReply::MetadataWritten { job_id: super::tests::JOB, checkpoint }));
}

#[test]
fn after_the_sources_finish_checkpoints_start_at_the_maps_and_the_job_finishes() {
    let mut cluster = running();
    let sources = [cluster.view(0, 0), cluster.view(0, 1)];
    let maps = [cluster.view(1, 0), cluster.view(1, 1)];
    let sent = next_triggers(&mut cluster);
    assert_eq!(sent.iter().map(|(execution, _)| *execution).collect::<Vec<_>>(), [sources[0].id, sources[1].id]);
    for source in sources {
        cluster.report(source, ExecutionState::Finished, None);
    }
    assert_eq!(cluster.jm.status(), JobStatus::Running);
    let sent = next_triggers(&mut cluster);
    let at: Vec<ExecutionId> = sent.iter().map(|(execution, _)| *execution).collect();
    assert_eq!(at, [maps[0].id, maps[1].id], "every producer of each map finished: the barrier starts there");
    let checkpoint = sent[0].1;
    for map in maps {
        acknowledge(&mut cluster, map, checkpoint);
    }
    persist(&mut cluster, checkpoint);
    assert_eq!(notified(&cluster, checkpoint), [maps[0].id, maps[1].id], "the running tasks commit");
    let completed = cluster.jm.checkpoint_coordinator().and_then(|c| c.latest_completed().cloned());
    let completed = completed.unwrap_or_else(|| panic!("a completed checkpoint"));
    assert!(
        completed.is_finished(VertexIndex(0), SubtaskIndex(0))
            && completed.is_finished(VertexIndex(0), SubtaskIndex(1))
    );
    for map in maps {
        cluster.report(map, ExecutionState::Finished, None);
    }
    cluster.assert_ended(JobStatus::Finished);
}

#[test]
fn a_restart_deploys_the_subtasks_finished_in_the_checkpoint_as_finished() {
    let mut cluster = running();
    for subtask in 0..2 {
        let source = cluster.view(0, subtask);
        cluster.report(source, ExecutionState::Finished, None);
    }
    let sent = next_triggers(&mut cluster);
    let checkpoint = sent[0].1;
    for subtask in 0..2 {
        let map = cluster.view(1, subtask);
        acknowledge(&mut cluster, map, checkpoint);
    }
    persist(&mut cluster, checkpoint);
    let deployed_before = cluster.deployments().len();
    let map = cluster.view(1, 0);
    cluster.report(map, ExecutionState::Failed, Some("boom"));
    cluster.complete_cancellations();
    cluster.run_for(Duration::from_secs(2));
    cluster.offer(tm(0), 1);
    cluster.offer(tm(1), 1);
    let deployments: Vec<TaskDeployment> =
        cluster.deployments()[deployed_before..].iter().map(|d| (*d).clone()).collect();
    assert_eq!(deployments.len(), 4, "a full restart");
    for deployment in deployments {
        let restore = deployment.restore.unwrap_or_else(|| panic!("restores from checkpoint {checkpoint}"));
        assert_eq!(restore.checkpoint, checkpoint);
        let is_source = deployment.execution.vertex == VertexIndex(0);
        assert_eq!(restore.finished, is_source, "{}", deployment.execution);
        assert_eq!(restore.states.is_empty(), is_source, "a finished subtask has no state");
    }
}
