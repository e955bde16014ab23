use super::*;
use crate::job::builder::StreamEnvironment;

fn job(n: u8) -> JobId {
    JobId(crate::ids::Hex128(u128::from(n)))
}

fn submission(n: u8) -> JobSubmission {
    let env = StreamEnvironment::new("small");
    env.sequence(0, 9).discard();
    JobSubmission {
        job_id: Some(job(n)),
        graph: env.build().expect("valid").graph,
        parallelism: None,
        config: Default::default(),
        savepoint: None,
    }
}

fn write(epoch: u64, record: HaRecord) -> HaWrite {
    HaWrite { epoch: Epoch(epoch), record }
}

#[test]
fn a_lower_epoch_is_refused_once_a_higher_one_was_seen() {
    let mut store = RecordStore::new();
    store.apply(write(1, HaRecord::JobGraph(Box::new(submission(1))))).unwrap();
    store.observe_epoch(Epoch(2));
    let late = write(1, HaRecord::JobResult { job_id: job(1), status: JobStatus::Canceled });
    assert_eq!(store.apply(late), Err(StaleEpoch { write: Epoch(1), seen: Epoch(2) }));
    assert!(store.records().jobs.contains_key(&job(1)), "the deposed leader's write changed nothing");
    store.apply(write(2, HaRecord::CheckpointCounter { job_id: job(1), next: CheckpointId(4) })).unwrap();
    assert_eq!(store.epoch_seen(), Epoch(2));
}

#[test]
fn recovery_resumes_from_the_newest_checkpoint_above_every_used_id() {
    let mut records = HaRecords::default();
    records.apply(HaRecord::JobGraph(Box::new(submission(1))));
    records.apply(HaRecord::JobGraph(Box::new(submission(2))));
    for id in 1..=5 {
        let location = format!("/chk/{id}");
        records.apply(HaRecord::CompletedCheckpoint { job_id: job(1), checkpoint: CheckpointId(id), location });
    }
    records.apply(HaRecord::CheckpointCounter { job_id: job(1), next: CheckpointId(8) });
    records.apply(HaRecord::CheckpointCounter { job_id: job(1), next: CheckpointId(7) });
    records.apply(HaRecord::JobResult { job_id: job(2), status: JobStatus::Finished });
    let recoveries = records.recoveries();
    assert_eq!(recoveries.len(), 1, "a finished job is not run again");
    assert_eq!(recoveries[0].submission.savepoint.as_deref(), Some("/chk/5"));
    assert_eq!(recoveries[0].checkpoint_id_floor, CheckpointId(8), "the counter never goes back");
    assert_eq!(records.checkpoints[&job(1)].len(), POINTERS_PER_JOB);
    // A graph written again after its result (a late write) does not bring the job back.
    records.apply(HaRecord::JobGraph(Box::new(submission(2))));
    assert_eq!(records.recoveries().len(), 1);
}

#[test]
fn a_job_without_checkpoints_starts_over_above_its_counter() {
    let mut records = HaRecords::default();
    records.apply(HaRecord::JobGraph(Box::new(submission(3))));
    records.apply(HaRecord::CheckpointCounter { job_id: job(3), next: CheckpointId(3) });
    let recovery = &records.recoveries()[0];
    assert_eq!(recovery.submission.savepoint, None);
    assert_eq!(recovery.checkpoint_id_floor, CheckpointId(3));
}
