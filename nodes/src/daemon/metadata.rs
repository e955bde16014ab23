//! The JobManager's durable record (high-availability type `none`): its leader epoch, every
//! job it was given and not yet finished, and each job's latest completed checkpoint, under
//! `high-availability.storageDir` (DESIGN section 6 asks for RocksDB here; these few small
//! records are written as files with the checkpoint storage's discipline instead: temporary
//! name, fsync, rename, fsync of the directory, so a crash leaves the old record or the new one).
//!
//! A restarted JobManager reads it: it leads in a higher epoch than any before it (so
//! TaskManagers drop the old leader's tasks), and resubmits every unfinished job under its id
//! from its latest completed checkpoint, so checkpoint ids go on growing and committed output
//! stays exactly-once. A job that ended is forgotten, so it is not run again.

use crate::runtime::storage::CheckpointStorage;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weir_core::ids::{Epoch, JobId};
use weir_core::protocol::JobSubmission;

const EPOCH_FILE: &str = "epoch";
const JOBS_DIR: &str = "jobs";
const SUBMISSION_FILE: &str = "submission";
const CHECKPOINT_FILE: &str = "latest-checkpoint";

/// A job to recover.
#[derive(Debug)]
pub struct StoredJob {
    /// The job as submitted (its id set).
    pub submission: JobSubmission,
    /// Its latest completed checkpoint's location, if one completed.
    pub latest_checkpoint: Option<String>,
}

/// The record's directory.
pub struct MetadataStore {
    dir: PathBuf,
    files: CheckpointStorage,
}

impl MetadataStore {
    /// The record under `dir`.
    pub fn new(dir: &Path) -> MetadataStore {
        MetadataStore { dir: dir.to_path_buf(), files: CheckpointStorage::new(dir) }
    }

    /// Where it lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One more than the highest epoch any JobManager of this record led in, now recorded.
    pub fn next_epoch(&self) -> Result<Epoch, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|error| format!("{}: cannot create: {error}", self.dir.display()))?;
        let previous = match self.files.read("", EPOCH_FILE) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                text.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{}: unreadable epoch {text:?}", self.path(EPOCH_FILE)))?
            }
            Err(_) if !self.dir.join(EPOCH_FILE).exists() => 0,
            Err(error) => return Err(error),
        };
        let next = previous + 1;
        self.files.write("", EPOCH_FILE, next.to_string().as_bytes())?;
        Ok(Epoch(next))
    }

    /// Records a job before it is submitted.
    pub fn put_job(&self, submission: &JobSubmission) -> Result<(), String> {
        let job_id = submission.job_id.ok_or("a recorded job needs its id")?;
        let bytes = bincode::serde::encode_to_vec(submission, bincode::config::standard())
            .map_err(|error| format!("cannot encode job {job_id}: {error}"))?;
        self.files.write(&job_dir(job_id), SUBMISSION_FILE, &bytes)
    }

    /// Records a job's latest completed checkpoint.
    pub fn put_checkpoint(&self, job_id: JobId, location: &str) -> Result<(), String> {
        self.files.write(&job_dir(job_id), CHECKPOINT_FILE, location.as_bytes())
    }

    /// Forgets a job (it ended, or its submission was refused).
    pub fn remove_job(&self, job_id: JobId) -> Result<(), String> {
        self.files.delete(&job_dir(job_id))
    }

    /// Every recorded job; a record that cannot be read is reported and skipped, not fatal.
    pub fn jobs(&self) -> (Vec<StoredJob>, Vec<String>) {
        let mut jobs = BTreeMap::new();
        let mut problems = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join(JOBS_DIR)) else { return (Vec::new(), problems) };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let Ok(job_id) = name.parse::<JobId>() else { continue };
            match self.job(job_id) {
                Ok(job) => {
                    jobs.insert(job_id, job);
                }
                Err(error) => problems.push(error),
            }
        }
        (jobs.into_values().collect(), problems)
    }

    fn job(&self, job_id: JobId) -> Result<StoredJob, String> {
        let bytes = self.files.read(&job_dir(job_id), SUBMISSION_FILE)?;
        let (mut submission, _): (JobSubmission, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .map_err(|error| format!("job {job_id}: unreadable submission record: {error}"))?;
        submission.job_id = Some(job_id);
        let latest_checkpoint = self
            .files
            .read(&job_dir(job_id), CHECKPOINT_FILE)
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
            .filter(|location| !location.is_empty());
        Ok(StoredJob { submission, latest_checkpoint })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn job_dir(job_id: JobId) -> String {
    format!("{JOBS_DIR}/{job_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::ids::Hex128;
    use weir_core::job::file::parse_job_file;

    fn submission(job_id: JobId) -> JobSubmission {
        let text = "name = \"t\"\n[[operator]]\nid = \"n\"\ntype = \"sequence\"\nto = 9\n\n\
                    [[operator]]\nid = \"k\"\ntype = \"discard\"\ninput = \"n\"\n";
        let graph = parse_job_file("t.toml", text).map(|job| job.graph);
        JobSubmission {
            job_id: Some(job_id),
            graph: graph.expect("a valid job file"),
            parallelism: Some(2),
            config: BTreeMap::from([("a".to_string(), "b".to_string())]),
            savepoint: None,
        }
    }

    #[test]
    fn epochs_grow_across_restarts_and_jobs_come_back_with_their_latest_checkpoint_until_removed() {
        let dir = std::env::temp_dir().join(format!("weir-metadata-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = MetadataStore::new(&dir);
        assert_eq!(store.next_epoch().unwrap(), Epoch(1));
        assert_eq!(MetadataStore::new(&dir).next_epoch().unwrap(), Epoch(2));
        let (first, second) = (JobId(Hex128(1)), JobId(Hex128(2)));
        store.put_job(&submission(first)).unwrap();
        store.put_job(&submission(second)).unwrap();
        store.put_checkpoint(first, "/c/chk-3").unwrap();
        store.put_checkpoint(first, "/c/chk-4").unwrap();
        std::fs::write(dir.join("jobs").join("not-a-job"), b"x").unwrap();
        let (jobs, problems) = MetadataStore::new(&dir).jobs();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].submission, submission(first));
        assert_eq!(jobs[0].latest_checkpoint.as_deref(), Some("/c/chk-4"));
        assert_eq!(jobs[1].latest_checkpoint, None);
        store.remove_job(first).unwrap();
        std::fs::write(dir.join("jobs").join(second.to_string()).join(SUBMISSION_FILE), b"garbage").unwrap();
        let (jobs, problems) = store.jobs();
        assert!(jobs.is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
