//! `high-availability.type: file`: the lease and the records in a directory shared by the
//! JobManagers of one cluster (`high-availability.storageDir`/`cluster-id`/).
//!
//! The store is one sequence of states, `state-<revision>.json`, each holding core's
//! [`LeaseStore`] (holder and its addresses, expiry in store time, highest epoch granted) and
//! [`RecordStore`] (job graphs, job results, checkpoint id counters, completed-checkpoint
//! pointers, highest epoch written). The state with the highest revision is the store.
//!
//! A change is a compare-and-swap without any lock: read the newest state (revision `n`),
//! apply the lease request or the fenced record write to it, write the result to a private
//! temporary file, fsync it, then `link(2)` it to `state-<n+1>.json`, which fails when another
//! process got there first (then read again and retry), and fsync the directory. A link is
//! atomic and never replaces a file, so at most one change follows each state, every state file
//! is complete before it has its name, and a crash leaves the last linked state.
//!
//! Why no lock: a process holding a lock while it is paused (`SIGSTOP`, a long GC-like stall,
//! a slow disk) would stop every other process of the cluster, the standby included, until it
//! woke; with compare-and-swap a paused process only loses its own race. The oldest states are
//! removed as new ones come ([`KEPT_STATES`] stay, for readers that listed the directory just
//! before).
//!
//! Why it is safe: lease and records change in one sequence of states, so the store is
//! linearizable. A record write is checked against the lease's epoch in the state it follows,
//! so once a standby's grant is linked no write of an older epoch is accepted, however late it
//! arrives (a paused leader waking up). Store time is the wall clock of the process doing the
//! operation: on one host every process reads the same clock; across hosts of a shared file
//! system their clocks must agree to within what `high-availability.lease-margin` leaves, since a
//! leader stops acting `lease-margin` before the lease it renewed could expire.

use super::Backend;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use weir_core::ha::{HaRecords, HaWrite, RecordStore, StaleEpoch};
use weir_core::leader::store::LeaseStore;
use weir_core::leader::{LeaseView, StoreReply, StoreRequest};

/// The prefix of a state file's name (`state-<revision, 20 digits>.json`).
pub const STATE_PREFIX: &str = "state-";
/// States kept besides the newest.
pub const KEPT_STATES: u64 = 16;
/// How often a reader retries when the state it listed was removed before it read it.
const READ_ATTEMPTS: u32 = 16;

/// One state of the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The leader lease.
    pub lease: LeaseStore,
    /// The records, fenced by epoch.
    pub records: RecordStore,
}

/// One process's handle on the directory.
pub struct FileStore {
    dir: PathBuf,
    /// Names this handle's temporary files apart from other processes' and handles'.
    unique: String,
    /// Temporary files written so far.
    written: u64,
}

impl FileStore {
    /// Opens (creating it if needed) `storage_dir/cluster_id/` (`/default` is `default`).
    pub fn open(storage_dir: &str, cluster_id: &str) -> Result<FileStore, String> {
        let cluster_id = super::cluster_name(cluster_id)?;
        let dir = Path::new(storage_dir).join(cluster_id);
        std::fs::create_dir_all(&dir).map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let unique = format!("{}-{nanos}", std::process::id());
        Ok(FileStore { dir, unique, written: 0 })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The newest state and its revision (0 and the empty state before the first change).
    pub fn newest(&self) -> Result<(u64, State), String> {
        for _ in 0..READ_ATTEMPTS {
            let Some(revision) = newest_revision(&self.dir)? else { return Ok((0, State::default())) };
            match load(&state_path(&self.dir, revision)) {
                Ok(Some(state)) => return Ok((revision, state)),
                Ok(None) => continue, // removed meanwhile: newer states exist
                Err(error) => return Err(error),
            }
        }
        Err(format!("the states in {} change faster than they can be read", self.dir.display()))
    }

    /// Applies `change` to the newest state until its result is linked as the next one;
    /// `change` returns what to answer and whether the state changed.
    fn swap<T>(&mut self, mut change: impl FnMut(&mut State) -> Result<T, String>) -> Result<T, String> {
        loop {
            let (revision, before) = self.newest()?;
            let mut state = before.clone();
            let answer = change(&mut state)?;
            if state == before {
                return Ok(answer);
            }
            if self.link(revision + 1, &state)? {
                self.remove_old(revision + 1);
                return Ok(answer);
            }
        }
    }

    /// Writes `state` durably under a private name and links it as revision `revision`; false
    /// when another process linked that revision first.
    fn link(&mut self, revision: u64, state: &State) -> Result<bool, String> {
        self.written += 1;
        let temporary = self.dir.join(format!(".tmp-{}-{}", self.unique, self.written));
        let target = state_path(&self.dir, revision);
        let failed = |error: std::io::Error| format!("cannot write {}: {error}", target.display());
        let bytes = serde_json::to_vec(state).map_err(|error| format!("cannot encode the HA state: {error}"))?;
        let written = File::create(&temporary)
            .and_then(|mut file| file.write_all(&bytes).and_then(|()| file.sync_all()))
            .and_then(|()| std::fs::hard_link(&temporary, &target));
        let _ = std::fs::remove_file(&temporary);
        match written {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(error) => return Err(failed(error)),
        }
        File::open(&self.dir).and_then(|directory| directory.sync_all()).map_err(failed)?;
        Ok(true)
    }

    /// Removes the states more than [`KEPT_STATES`] older than `newest` (best effort: another
    /// process may be removing them too).
    fn remove_old(&self, newest: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if revision_of(&name.to_string_lossy()).is_some_and(|revision| revision + KEPT_STATES < newest) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn state_path(dir: &Path, revision: u64) -> PathBuf {
    dir.join(format!("{STATE_PREFIX}{revision:020}.json"))
}

/// The revision a state file's name says, if it is one.
fn revision_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(STATE_PREFIX)?.strip_suffix(".json")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

fn newest_revision(dir: &Path) -> Result<Option<u64>, String> {
    let entries = std::fs::read_dir(dir).map_err(|error| format!("cannot list {}: {error}", dir.display()))?;
    let mut newest = None;
    for entry in entries {
        let entry = entry.map_err(|error| format!("cannot list {}: {error}", dir.display()))?;
        if let Some(revision) = revision_of(&entry.file_name().to_string_lossy()) {
            newest = newest.max(Some(revision));
        }
    }
    Ok(newest)
}

/// The content of `path`; `None` when it does not exist.
fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| format!("{} is malformed: {error}", path.display())),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

impl Backend for FileStore {
    fn lease(&mut self, request: StoreRequest) -> Result<StoreReply, String> {
        if matches!(request, StoreRequest::Read { .. }) {
            let (_, mut state) = self.newest()?;
            return Ok(state.lease.apply(super::store_now(), request));
        }
        self.swap(|state| Ok(state.lease.apply(super::store_now(), request.clone())))
    }

    fn write(&mut self, write: &HaWrite) -> Result<Result<(), StaleEpoch>, String> {
        self.swap(|state| {
            let mut records = state.records.clone();
            records.observe_epoch(state.lease.epoch()); // the fence: no write below the newest grant
            let applied = records.apply(write.clone());
            if applied.is_ok() {
                state.records = records;
            }
            Ok(applied)
        })
    }

    fn records(&mut self) -> Result<HaRecords, String> {
        self.newest().map(|(_, state)| state.records.records().clone())
    }

    fn leader(&mut self) -> Result<LeaseView, String> {
        self.newest().map(|(_, state)| state.lease.view(super::store_now()))
    }
}
