//! `high-availability.type: file`: the lease and the records in a directory shared by the
//! JobManagers of one cluster (`high-availability.storageDir`/`cluster-id`/).
//!
//! Files:
//! - `lock`: empty; every read-modify-write below holds an exclusive `flock` on it (reads a
//!   shared one). The kernel drops the lock when its holder dies, so a `kill -9` never leaves
//!   the store locked (unlike an `O_EXCL` lock file, which would need its own expiry);
//! - `lease.json`: core's [`LeaseStore`] (holder and its addresses, expiry in store time, highest
//!   epoch granted, revision): an acquire is a compare-and-set on the revision, done by
//!   [`LeaseStore::apply`] itself;
//! - `records.json`: core's [`RecordStore`] (job graphs, job results, checkpoint id counters,
//!   completed-checkpoint pointers, highest epoch written).
//!
//! Every change is written to a temporary file, fsynced, renamed over the old one and the
//! directory fsynced, all under the lock: a reader sees the old content or the new, never a
//! part, and a crash leaves one of the two.
//!
//! Why it is safe: lease and records change only under the one lock, so the store is
//! linearizable. A record write is checked against the lease file's epoch under that lock, so
//! once a standby's grant is on disk no write of an older epoch is accepted, however late it
//! arrives (a paused leader waking up). Store time is the wall clock of the process doing the
//! operation: on one host every process reads the same clock; across hosts of a shared file
//! system their clocks must agree to within what `high-availability.lease-margin` leaves, since a
//! leader stops acting `lease-margin` before the lease it renewed could expire.

use super::Backend;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use weir_core::ha::{HaRecords, HaWrite, RecordStore, StaleEpoch};
use weir_core::leader::store::LeaseStore;
use weir_core::leader::{LeaseView, StoreReply, StoreRequest};

/// The lock file's name.
pub const LOCK_FILE: &str = "lock";
/// The lease's file name.
pub const LEASE_FILE: &str = "lease.json";
/// The records' file name.
pub const RECORDS_FILE: &str = "records.json";

/// One process's handle on the directory.
pub struct FileStore {
    dir: PathBuf,
    lock: File,
}

impl FileStore {
    /// Opens (creating it if needed) `storage_dir/cluster_id/` (`/default` is `default`).
    pub fn open(storage_dir: &str, cluster_id: &str) -> Result<FileStore, String> {
        let cluster_id = super::cluster_name(cluster_id)?;
        let dir = Path::new(storage_dir).join(cluster_id);
        std::fs::create_dir_all(&dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        Ok(FileStore { dir, lock })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `work` holding the lock (exclusive, or shared for reads).
    fn locked<T>(&self, exclusive: bool, work: impl FnOnce(&Path) -> Result<T, String>) -> Result<T, String> {
        let operation = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        flock(&self.lock, operation)
            .map_err(|error| format!("cannot lock {}: {error}", self.dir.join(LOCK_FILE).display()))?;
        let result = work(&self.dir);
        let _ = flock(&self.lock, libc::LOCK_UN); // closing the file would release it too
        result
    }
}

/// `flock(2)` on `file`, again when a signal interrupted the wait.
fn flock(file: &File, operation: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock takes a descriptor `file` owns for the whole call and no memory.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// The content of `dir/name`, or the empty value when it does not exist yet.
pub fn load<T: DeserializeOwned + Default>(dir: &Path, name: &str) -> Result<T, String> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|error| format!("{} is malformed: {error}", path.display()))
        }
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(T::default()),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

/// Replaces `dir/name` atomically and durably: temp file, fsync, rename, fsync of the directory.
fn save<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), String> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.tmp"));
    let failed = |error: std::io::Error| format!("cannot write {}: {error}", path.display());
    let bytes = serde_json::to_vec(value).map_err(|error| format!("cannot encode {name}: {error}"))?;
    let mut file = File::create(&temporary).map_err(failed)?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(failed)?;
    std::fs::rename(&temporary, &path).map_err(failed)?;
    File::open(dir).and_then(|directory| directory.sync_all()).map_err(failed)
}

impl Backend for FileStore {
    fn lease(&mut self, request: StoreRequest) -> Result<StoreReply, String> {
        let read_only = matches!(request, StoreRequest::Read { .. });
        self.locked(!read_only, |dir| {
            let mut lease: LeaseStore = load(dir, LEASE_FILE)?;
            let before = lease.clone();
            let reply = lease.apply(super::store_now(), request);
            if lease != before {
                save(dir, LEASE_FILE, &lease)?;
            }
            Ok(reply)
        })
    }

    fn write(&mut self, write: &HaWrite) -> Result<Result<(), StaleEpoch>, String> {
        self.locked(true, |dir| {
            let lease: LeaseStore = load(dir, LEASE_FILE)?;
            let mut records: RecordStore = load(dir, RECORDS_FILE)?;
            records.observe_epoch(lease.epoch()); // the fence: no write below the newest grant
            if let Err(stale) = records.apply(write.clone()) {
                return Ok(Err(stale));
            }
            save(dir, RECORDS_FILE, &records)?;
            Ok(Ok(()))
        })
    }

    fn records(&mut self) -> Result<HaRecords, String> {
        self.locked(false, |dir| load::<RecordStore>(dir, RECORDS_FILE).map(|store| store.records().clone()))
    }

    fn leader(&mut self) -> Result<LeaseView, String> {
        self.locked(false, |dir| load::<LeaseStore>(dir, LEASE_FILE).map(|lease| lease.view(super::store_now())))
    }
}
