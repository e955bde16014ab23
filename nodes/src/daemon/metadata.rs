//! The JobManager's durable record (high-availability type `none`): its leader epoch, every
//! job it was given and not yet finished, and each job's latest completed checkpoint, in a
//! RocksDB database in `metadata/` under `high-availability.storageDir` (DESIGN section 6).
//!
//! Keys: `epoch` (the highest leader epoch, 8 bytes big-endian), `job/<id>/submission` (the
//! bincode of the [`JobSubmission`]) and `job/<id>/latest-checkpoint` (its location, UTF-8).
//! Every write is synced before it returns (`WriteOptions::set_sync`), so a crash after a
//! write keeps it; forgetting a job deletes both its keys in one batch. RocksDB's lock on the
//! database keeps a second JobManager off a directory a live one uses.
//!
//! A restarted JobManager reads it: it leads in a higher epoch than any before it (so
//! TaskManagers drop the old leader's tasks), and resubmits every unfinished job under its id
//! from its latest completed checkpoint, so checkpoint ids go on growing and committed output
//! stays exactly-once. A job that ended is forgotten, so it is not run again. A record that
//! cannot be read is reported and skipped; the other jobs still come back.
//!
//! Under `--cfg madsim` the same records live in memory for the life of the process: RocksDB's
//! threads and files would sit outside the simulation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weir_core::ids::{Epoch, JobId};
use weir_core::protocol::JobSubmission;

/// The database's directory under the metadata directory.
const DATABASE_DIR: &str = "metadata";
const EPOCH_KEY: &[u8] = b"epoch";
/// Every key of a job starts with it: `job/<id>/<field>`.
const JOB_PREFIX: &str = "job/";
const SUBMISSION_FIELD: &str = "submission";
const CHECKPOINT_FIELD: &str = "latest-checkpoint";

/// Keys and their values, in key order.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// A job to recover.
#[derive(Debug)]
pub struct StoredJob {
    /// The job as submitted (its id set).
    pub submission: JobSubmission,
    /// Its latest completed checkpoint's location, if one completed.
    pub latest_checkpoint: Option<String>,
}

/// The record: an open database, held (and locked) until dropped.
pub struct MetadataStore {
    dir: PathBuf,
    database: database::Database,
}

/// A job's raw values as read, before they are decoded.
#[derive(Default)]
struct RawJob {
    submission: Option<Vec<u8>>,
    latest_checkpoint: Option<Vec<u8>>,
}

impl MetadataStore {
    /// Opens (creating if missing) the record under `dir`; refused while another JobManager
    /// holds it.
    pub fn open(dir: &Path) -> Result<MetadataStore, String> {
        let dir = dir.join(DATABASE_DIR);
        std::fs::create_dir_all(&dir).map_err(|error| format!("{}: cannot create: {error}", dir.display()))?;
        let database = database::Database::open(&dir)?;
        Ok(MetadataStore { dir, database })
    }

    /// Where it lives (the database's directory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One more than the highest epoch any JobManager of this record led in, now recorded.
    pub fn next_epoch(&self) -> Result<Epoch, String> {
        let previous = match self.database.get(EPOCH_KEY)? {
            None => 0,
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice()).map(u64::from_be_bytes).map_err(|_| {
                format!("{}: key `epoch`: unreadable leader epoch {bytes:?} (expected 8 bytes)", self.dir.display())
            })?,
        };
        let next =
            previous.checked_add(1).ok_or_else(|| format!("{}: the leader epoch is exhausted", self.dir.display()))?;
        self.database.put(EPOCH_KEY, &next.to_be_bytes())?;
        Ok(Epoch(next))
    }

    /// Records a job before it is submitted.
    pub fn put_job(&self, submission: &JobSubmission) -> Result<(), String> {
        let job_id = submission.job_id.ok_or("a recorded job needs its id")?;
        let bytes = bincode::serde::encode_to_vec(submission, bincode::config::standard())
            .map_err(|error| format!("cannot encode job {job_id}: {error}"))?;
        self.database.put(&job_key(job_id, SUBMISSION_FIELD), &bytes)
    }

    /// Records a job's latest completed checkpoint.
    pub fn put_checkpoint(&self, job_id: JobId, location: &str) -> Result<(), String> {
        debug_assert!(!location.is_empty(), "a completed checkpoint has a location");
        self.database.put(&job_key(job_id, CHECKPOINT_FIELD), location.as_bytes())
    }

    /// Forgets a job (it ended, or its submission was refused): both its keys in one batch.
    pub fn remove_job(&self, job_id: JobId) -> Result<(), String> {
        self.database.delete(&[job_key(job_id, SUBMISSION_FIELD), job_key(job_id, CHECKPOINT_FIELD)])
    }

    /// Every recorded job, in id order; a record that cannot be read is reported and skipped,
    /// not fatal.
    pub fn jobs(&self) -> (Vec<StoredJob>, Vec<String>) {
        let (records, mut problems) = self.database.scan(JOB_PREFIX.as_bytes());
        let mut raw_jobs: BTreeMap<JobId, RawJob> = BTreeMap::new();
        for (key, value) in records {
            let Some((job_id, field)) = parse_job_key(&key) else {
                problems.push(format!("{}: unexpected key `{}`", self.dir.display(), key.escape_ascii()));
                continue;
            };
            let raw = raw_jobs.entry(job_id).or_default();
            match field {
                SUBMISSION_FIELD => raw.submission = Some(value),
                _ => raw.latest_checkpoint = Some(value),
            }
        }
        let mut jobs = Vec::with_capacity(raw_jobs.len());
        for (job_id, raw) in raw_jobs {
            match decode_job(job_id, raw) {
                Ok(job) => jobs.push(job),
                Err(error) => problems.push(format!("{}: job {job_id}: {error}", self.dir.display())),
            }
        }
        (jobs, problems)
    }
}

fn job_key(job_id: JobId, field: &str) -> Vec<u8> {
    format!("{JOB_PREFIX}{job_id}/{field}").into_bytes()
}

/// The job and field of a `job/<id>/<field>` key; `None` for anything else.
fn parse_job_key(key: &[u8]) -> Option<(JobId, &'static str)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(JOB_PREFIX)?;
    let (id, field) = rest.split_once('/')?;
    let field = [SUBMISSION_FIELD, CHECKPOINT_FIELD].into_iter().find(|known| *known == field)?;
    Some((id.parse().ok()?, field))
}

fn decode_job(job_id: JobId, raw: RawJob) -> Result<StoredJob, String> {
    let bytes = raw.submission.ok_or("no submission record (only a latest checkpoint)")?;
    let (mut submission, _): (JobSubmission, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .map_err(|error| format!("unreadable submission record: {error}"))?;
    submission.job_id = Some(job_id);
    let latest_checkpoint = match raw.latest_checkpoint {
        None => None,
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(location) if !location.is_empty() => Some(location),
            _ => return Err("unreadable latest-checkpoint record (expected a location in UTF-8)".to_string()),
        },
    };
    Ok(StoredJob { submission, latest_checkpoint })
}

#[cfg(not(madsim))]
mod database {
    //! The records in RocksDB.

    use rocksdb::{DB, ErrorKind, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};
    use std::path::{Path, PathBuf};

    /// RocksDB's own info logs (`LOG`, `LOG.old.*`) kept in the directory.
    const INFO_LOG_FILES_KEPT: usize = 4;

    pub struct Database {
        dir: PathBuf,
        db: DB,
    }

    impl Database {
        pub fn open(dir: &Path) -> Result<Database, String> {
            let mut options = Options::default();
            options.create_if_missing(true);
            options.set_keep_log_file_num(INFO_LOG_FILES_KEPT);
            match DB::open(&options, dir) {
                Ok(db) => Ok(Database { dir: dir.to_path_buf(), db }),
                Err(error) if is_lock_error(&error) => {
                    Err(format!("{} is in use by another JobManager (RocksDB lock): {error}", dir.display()))
                }
                Err(error) => Err(format!("{}: cannot open the metadata database: {error}", dir.display())),
            }
        }

        pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            self.db.get(key).map_err(|error| self.error("read", key, error))
        }

        /// Returns once the value is on disk.
        pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
            self.db.put_opt(key, value, &synced()).map_err(|error| self.error("write", key, error))
        }

        /// Deletes `keys` in one batch (all or none); returns once that is on disk.
        pub fn delete(&self, keys: &[Vec<u8>]) -> Result<(), String> {
            let mut batch = WriteBatch::default();
            for key in keys {
                batch.delete(key);
            }
            let first = keys.first().map_or(&[][..], Vec::as_slice);
            self.db.write_opt(batch, &synced()).map_err(|error| self.error("delete", first, error))
        }

        /// Every key starting with `prefix` and its value, in key order, and what could not be
        /// read (iteration stops at a read error: RocksDB cannot step past it).
        pub fn scan(&self, prefix: &[u8]) -> (super::Records, Vec<String>) {
            let mut read_options = ReadOptions::default();
            if let Some(upper_bound) = prefix_end(prefix) {
                read_options.set_iterate_upper_bound(upper_bound);
            }
            let mut records = Vec::new();
            let mut problems = Vec::new();
            for item in self.db.iterator_opt(IteratorMode::From(prefix, rocksdb::Direction::Forward), read_options) {
                match item {
                    Ok((key, value)) => records.push((key.into_vec(), value.into_vec())),
                    Err(error) => {
                        problems.push(self.error("read", prefix, error));
                        break;
                    }
                }
            }
            debug_assert!(records.iter().all(|(key, _)| key.starts_with(prefix)));
            (records, problems)
        }

        fn error(&self, what: &str, key: &[u8], error: rocksdb::Error) -> String {
            format!("{}: cannot {what} key `{}`: {error}", self.dir.display(), key.escape_ascii())
        }
    }

    fn synced() -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        options
    }

    /// The first key after every key that starts with `prefix` (`None`: no such key).
    fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
        let mut end = prefix.to_vec();
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                return Some(end);
            }
        }
        None
    }

    /// RocksDB's `LOCK` file is held: by another process ("While lock file: …: Resource
    /// temporarily unavailable") or by this one ("lock hold by current process").
    fn is_lock_error(error: &rocksdb::Error) -> bool {
        let message: &str = error.as_ref();
        error.kind() == ErrorKind::IOError
            && (message.contains("While lock file") || message.contains("lock hold by current process"))
    }
}

#[cfg(madsim)]
mod database {
    //! The records in memory, for the simulation: RocksDB's threads and files would sit
    //! outside it. They last as long as the process.

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Mutex;

    pub struct Database {
        records: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    }

    impl Database {
        pub fn open(_dir: &Path) -> Result<Database, String> {
            Ok(Database { records: Mutex::new(BTreeMap::new()) })
        }

        fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
            self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            Ok(self.records().get(key).cloned())
        }

        pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
            self.records().insert(key.to_vec(), value.to_vec());
            Ok(())
        }

        pub fn delete(&self, keys: &[Vec<u8>]) -> Result<(), String> {
            let mut records = self.records();
            for key in keys {
                records.remove(key);
            }
            Ok(())
        }

        pub fn scan(&self, prefix: &[u8]) -> (super::Records, Vec<String>) {
            let records = self.records();
            let matching = records.range(prefix.to_vec()..).take_while(|(key, _)| key.starts_with(prefix));
            (matching.map(|(key, value)| (key.clone(), value.clone())).collect(), Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::ids::Hex128;
    use weir_core::job::file::parse_job_file;

    fn submission(job_id: JobId) -> JobSubmission {
        let text = r#"
            name = "t"
            [[operator]]
            id = "s"
            type = "sequence"
            from = 0
            to = 9
            [[operator]]
            id = "k"
            type = "discard"
            input = "s"
        "#;
        let graph = parse_job_file("t.toml", text).map(|job| job.graph);
        JobSubmission {
            job_id: Some(job_id),
            graph: graph.expect("a valid job file"),
            parallelism: Some(2),
            config: BTreeMap::from([("a".to_string(), "b".to_string())]),
            savepoint: None,
        }
    }

    /// A fresh directory for one test (tests run in parallel in one process).
    fn fresh_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-metadata-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn epochs_grow_across_restarts_and_jobs_come_back_with_their_latest_checkpoint_until_removed() {
        let dir = fresh_dir("epochs");
        assert_eq!(MetadataStore::open(&dir).unwrap().next_epoch().unwrap(), Epoch(1));
        let store = MetadataStore::open(&dir).unwrap();
        assert_eq!(store.next_epoch().unwrap(), Epoch(2));
        let (first, second) = (JobId(Hex128(1)), JobId(Hex128(2)));
        store.put_job(&submission(second)).unwrap();
        store.put_job(&submission(first)).unwrap();
        store.put_checkpoint(first, "/c/chk-3").unwrap();
        store.put_checkpoint(first, "/c/chk-4").unwrap();
        let (jobs, problems) = store.jobs();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].submission, submission(first));
        assert_eq!(jobs[0].latest_checkpoint.as_deref(), Some("/c/chk-4"));
        assert_eq!(jobs[1].submission, submission(second));
        assert_eq!(jobs[1].latest_checkpoint, None);
        store.remove_job(first).unwrap();
        let (jobs, problems) = store.jobs();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(jobs.iter().map(|job| job.submission.job_id).collect::<Vec<_>>(), [Some(second)]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_survives_close_and_reopen() {
        let dir = fresh_dir("reopen");
        let job_id = JobId(Hex128(7));
        {
            let store = MetadataStore::open(&dir).unwrap();
            assert_eq!(store.next_epoch().unwrap(), Epoch(1));
            store.put_job(&submission(job_id)).unwrap();
            store.put_checkpoint(job_id, "/c/chk-9").unwrap();
        }
        let store = MetadataStore::open(&dir).unwrap();
        assert_eq!(store.next_epoch().unwrap(), Epoch(2));
        let (jobs, problems) = store.jobs();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].submission, submission(job_id));
        assert_eq!(jobs[0].latest_checkpoint.as_deref(), Some("/c/chk-9"));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_value_is_reported_and_skipped_and_the_other_jobs_still_come_back() {
        let dir = fresh_dir("corrupt");
        let store = MetadataStore::open(&dir).unwrap();
        let (good, garbled, orphan) = (JobId(Hex128(1)), JobId(Hex128(2)), JobId(Hex128(3)));
        store.put_job(&submission(good)).unwrap();
        store.put_job(&submission(garbled)).unwrap();
        store.database.put(&job_key(garbled, SUBMISSION_FIELD), b"garbage").unwrap();
        store.put_checkpoint(orphan, "/c/chk-1").unwrap();
        store.database.put(b"job/not-a-job/submission", b"x").unwrap();
        let (jobs, problems) = store.jobs();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].submission, submission(good));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|problem| problem.contains("not-a-job")), "{problems:?}");
        assert!(
            problems.iter().any(|problem| problem.contains(&format!("job {garbled}: unreadable submission record"))),
            "{problems:?}"
        );
        assert!(problems.iter().any(|problem| problem.contains(&format!("job {orphan}: no submission record"))));
        store.database.put(EPOCH_KEY, b"x").unwrap();
        let error = store.next_epoch().unwrap_err();
        assert!(error.contains("unreadable leader epoch"), "{error}");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(not(madsim))]
    #[test]
    fn a_record_held_by_a_live_job_manager_is_refused_with_a_clear_lock_error() {
        let dir = fresh_dir("lock");
        let store = MetadataStore::open(&dir).unwrap();
        let error = MetadataStore::open(&dir).err().expect("the second open is refused");
        assert!(error.contains("is in use by another JobManager (RocksDB lock)"), "{error}");
        assert!(error.contains(&store.dir().display().to_string()), "{error}");
        drop(store);
        assert!(MetadataStore::open(&dir).is_ok(), "the lock goes with the store that held it");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
