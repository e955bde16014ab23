//! Keyed state in RocksDB (`state.backend.type: rocksdb`): one database per keyed operator
//! instance, in a directory of its own that is deleted when the instance ends.
//!
//! Memory follows Flink's model. A TaskManager's managed memory
//! (`taskmanager.memory.managed.size`) is split evenly between its slots, and every RocksDB
//! instance of a slot shares that slot's budget: one LRU block cache and one write-buffer
//! manager charged to that cache, so memtables and cached blocks together stay within the
//! slot's share. As in Flink, the cache gets `(3 - r) / 3` of the budget and the write buffers
//! `2r / 3`, where `r` is `state.backend.rocksdb.memory.write-buffer-ratio`. A slot is known
//! here by the allocation the task runs in: one allocation is one slot.
//!
//! Durability comes from checkpoints, not from RocksDB's write-ahead log (Flink turns it off
//! too): a task that fails restores from its last checkpoint into a fresh database.

#[cfg(not(madsim))]
pub use rocks::{RocksState, RocksStateStore, SlotMemory};

/// Where a task's RocksDB instances put and find the immutable files of incremental checkpoints
/// (`execution.checkpointing.incremental`), see [`super::rocks_incremental`].
#[derive(Clone, Debug, Default)]
pub struct SharedDirs {
    /// The job's shared directory new files are uploaded to; `None`: checkpoints are full.
    pub upload: Option<std::path::PathBuf>,
    /// The shared directory of the checkpoint being restored, if any.
    pub download: Option<std::path::PathBuf>,
}

/// Under `--cfg madsim` there is no RocksDB (its threads and files would sit outside the
/// simulation): a job that asks for the `rocksdb` backend fails with this explanation.
#[cfg(madsim)]
#[derive(Clone)]
pub struct RocksState;

#[cfg(madsim)]
impl RocksState {
    /// The madsim build's RocksState.
    pub fn new(_data_dir: &std::path::Path, _config: &weir_core::config::Config) -> RocksState {
        RocksState
    }

    /// Always refused: this build has no RocksDB.
    pub fn open(
        &self,
        _allocation: weir_core::ids::AllocationId,
        _operator: &weir_core::dataflow::operators::OperatorContext,
        _shared: &SharedDirs,
    ) -> Result<Box<dyn weir_core::dataflow::state::StateStore>, String> {
        Err("this build runs under madsim and has no RocksDB: use `state.backend.type: hashmap`".to_string())
    }
}

#[cfg(not(madsim))]
mod rocks {
    use super::SharedDirs;
    use crate::runtime::rocks_incremental::{self as incremental, Uploaded};
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, Weak};
    use weir_core::config::Config;
    use weir_core::dataflow::operators::OperatorContext;
    use weir_core::dataflow::state::{NativeError, NativeSnapshot, StateStore, WriteBatch};
    use weir_core::ids::AllocationId;

    /// The managed memory of one slot, shared by every RocksDB instance running in it.
    pub struct SlotMemory {
        /// Bytes of managed memory the slot has.
        pub budget: usize,
        /// Bytes of the block cache (which the write buffers are charged to).
        pub cache_capacity: usize,
        cache: rocksdb::Cache,
        write_buffers: rocksdb::WriteBufferManager,
    }

    impl SlotMemory {
        fn new(budget: usize, write_buffer_ratio: f64) -> SlotMemory {
            let cache_capacity = ((3.0 - write_buffer_ratio) * budget as f64 / 3.0) as usize;
            let write_buffer_capacity = (2.0 * write_buffer_ratio * budget as f64 / 3.0) as usize;
            let cache = rocksdb::Cache::new_lru_cache(cache_capacity);
            let write_buffers = rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
                write_buffer_capacity,
                false,
                cache.clone(),
            );
            SlotMemory { budget, cache_capacity, cache, write_buffers }
        }

        /// Bytes of memtables of the slot's instances now.
        pub fn write_buffer_usage(&self) -> usize {
            self.write_buffers.get_usage()
        }

        /// Bytes the write buffers may take.
        pub fn write_buffer_capacity(&self) -> usize {
            self.write_buffers.get_buffer_size()
        }
    }

    /// The RocksDB side of a TaskManager: where instances live and each slot's memory.
    #[derive(Clone)]
    pub struct RocksState {
        inner: Arc<Inner>,
    }

    struct Inner {
        /// Directory holding one subdirectory per instance.
        dir: PathBuf,
        per_slot_budget: usize,
        write_buffer_ratio: f64,
        /// Live slots' memory; an entry whose instances all ended is dropped on the next lookup.
        slots: Mutex<BTreeMap<AllocationId, Weak<SlotMemory>>>,
        /// Numbers instance directories, so no two instances share one.
        next_instance: AtomicU64,
    }

    impl RocksState {
        /// The RocksDB side of a TaskManager whose data directory is `data_dir` and that runs
        /// under `config` (its managed memory, slot count and RocksDB keys).
        pub fn new(data_dir: &Path, config: &Config) -> RocksState {
            let slots = u64::from(config.task_manager.slots.max(1));
            let per_slot_budget =
                usize::try_from(config.task_manager.managed_memory_bytes / slots).unwrap_or(usize::MAX);
            let dir = match &config.state_backend.rocksdb_local_dir {
                Some(dir) => PathBuf::from(dir),
                None => data_dir.join("rocksdb"),
            };
            remove_stale_instances(&dir);
            let inner = Inner {
                dir,
                per_slot_budget,
                write_buffer_ratio: config.state_backend.write_buffer_ratio,
                slots: Mutex::new(BTreeMap::new()),
                next_instance: AtomicU64::new(0),
            };
            RocksState { inner: Arc::new(inner) }
        }

        /// The memory of the slot `allocation` runs in, shared with the slot's other instances.
        pub fn slot_memory(&self, allocation: AllocationId) -> Arc<SlotMemory> {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            slots.retain(|_, memory| memory.strong_count() > 0);
            if let Some(memory) = slots.get(&allocation).and_then(Weak::upgrade) {
                return memory;
            }
            let memory = Arc::new(SlotMemory::new(self.inner.per_slot_budget, self.inner.write_buffer_ratio));
            slots.insert(allocation, Arc::downgrade(&memory));
            memory
        }

        /// A fresh database for keyed operator instance `operator` of a task in `allocation`,
        /// checkpointing incrementally into `shared` when it names an upload directory.
        pub fn open(
            &self,
            allocation: AllocationId,
            operator: &OperatorContext,
            shared: &SharedDirs,
        ) -> Result<Box<dyn StateStore>, String> {
            let mut store = self.open_store(allocation, operator)?;
            store.shared = shared.clone();
            Ok(Box::new(store))
        }

        fn open_store(&self, allocation: AllocationId, operator: &OperatorContext) -> Result<RocksStateStore, String> {
            let memory = self.slot_memory(allocation);
            let instance = self.inner.next_instance.fetch_add(1, Ordering::Relaxed);
            let name = format!(
                "{}-{}-a{}-{}-{instance}",
                sanitize(&operator.uid),
                operator.subtask.0,
                operator.attempt,
                std::process::id()
            );
            RocksStateStore::open(&self.inner.dir.join(name), memory, &[])
        }
    }

    /// Deletes the instance directories of processes that no longer run (a TaskManager killed with
    /// `kill -9` cannot delete its own): names end in `-<pid>-<instance>`.
    fn remove_stale_instances(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.rsplit('-').nth(1).and_then(|pid| pid.parse::<u32>().ok());
            let Some(pid) = pid else { continue };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                tracing::info!("deleting the RocksDB state of ended process {pid}: {}", entry.path().display());
                if let Err(error) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!("cannot delete {}: {error}", entry.path().display());
                }
            }
        }
    }

    /// A file name made of the uid's letters, digits, `-` and `_` only.
    fn sanitize(uid: &str) -> String {
        let name: String =
            uid.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        name.chars().take(64).collect()
    }

    /// One keyed operator instance's RocksDB database; deleted from disk when dropped. The
    /// database lives in `<dir>/db`; `<dir>` also holds the scratch directories of checkpoints
    /// and restores.
    pub struct RocksStateStore {
        dir: PathBuf,
        /// `None` only while being dropped or replaced.
        db: Option<rocksdb::DB>,
        write_options: rocksdb::WriteOptions,
        /// Keeps the slot's cache and write-buffer manager alive as long as the database.
        memory: Arc<SlotMemory>,
        /// Where incremental checkpoints upload to and restore from.
        shared: SharedDirs,
        /// The files of the last checkpoint, already in the shared directory, by local name.
        uploaded: Uploaded,
        /// Numbers scratch directories.
        scratch_next: u64,
    }

    impl RocksStateStore {
        /// Opens a database in `<dir>/db` after clearing `dir`; `files` are written into the
        /// database directory first (a restored checkpoint's).
        fn open(dir: &Path, memory: Arc<SlotMemory>, files: &[(String, Vec<u8>)]) -> Result<RocksStateStore, String> {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|error| format!("{}: cannot clear: {error}", dir.display()))?;
            }
            let db = Self::open_db(&dir.join("db"), &memory, files)?;
            let mut write_options = rocksdb::WriteOptions::default();
            write_options.disable_wal(true);
            Ok(RocksStateStore {
                dir: dir.to_path_buf(),
                db: Some(db),
                write_options,
                memory,
                shared: SharedDirs::default(),
                uploaded: Uploaded::default(),
                scratch_next: 0,
            })
        }

        /// Opens the database in `db_dir`, which is created holding `files` and nothing else.
        fn open_db(db_dir: &Path, memory: &SlotMemory, files: &[(String, Vec<u8>)]) -> Result<rocksdb::DB, String> {
            if db_dir.exists() {
                std::fs::remove_dir_all(db_dir)
                    .map_err(|error| format!("{}: cannot clear: {error}", db_dir.display()))?;
            }
            std::fs::create_dir_all(db_dir).map_err(|error| format!("{}: cannot create: {error}", db_dir.display()))?;
            for (name, bytes) in files {
                let path = db_dir.join(name);
                std::fs::write(&path, bytes).map_err(|error| format!("{}: cannot write: {error}", path.display()))?;
            }
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&memory.cache);
            // Index and filter blocks count against the slot's budget too.
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            let mut options = rocksdb::Options::default();
            options.create_if_missing(true);
            options.set_block_based_table_factory(&table);
            options.set_write_buffer_manager(&memory.write_buffers);
            options.set_keep_log_file_num(1);
            options.set_max_background_jobs(2);
            rocksdb::DB::open(&options, db_dir)
                .map_err(|error| format!("{}: cannot open RocksDB: {error}", db_dir.display()))
        }

        /// A fresh scratch directory under the instance's.
        fn scratch(&mut self, what: &str) -> PathBuf {
            self.scratch_next += 1;
            self.dir.join(format!("{what}-{}", self.scratch_next))
        }

        fn db(&self) -> &rocksdb::DB {
            match &self.db {
                Some(db) => db,
                None => unreachable!("the database is closed only in drop"),
            }
        }

        /// The slot memory this database draws on.
        pub fn memory(&self) -> &Arc<SlotMemory> {
            &self.memory
        }

        /// Where the database lives.
        pub fn dir(&self) -> &Path {
            &self.dir
        }

        fn error(&self, what: &str, error: rocksdb::Error) -> String {
            format!("RocksDB at {}: cannot {what}: {error}", self.dir.display())
        }
    }

    impl StateStore for RocksStateStore {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            self.db().get(key).map_err(|error| self.error("read", error))
        }

        fn write(&mut self, batch: &WriteBatch) -> Result<(), String> {
            let mut write = rocksdb::WriteBatch::default();
            for (key, value) in batch {
                match value {
                    Some(value) => write.put(key, value),
                    None => write.delete(key),
                }
            }
            self.db().write_opt(write, &self.write_options).map_err(|error| self.error("write", error))
        }

        fn scan(&mut self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), String> {
            let mut read_options = rocksdb::ReadOptions::default();
            read_options.set_iterate_upper_bound(to.to_vec());
            // A full scan (snapshots, restores) should not push the hot blocks out of the cache.
            read_options.fill_cache(false);
            let mode = rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward);
            for item in self.db().iterator_opt(mode, read_options) {
                let (key, value) = item.map_err(|error| self.error("scan", error))?;
                if !visit(&key, &value) {
                    break;
                }
            }
            Ok(())
        }

        fn native_checkpoint(&mut self) -> Result<Option<NativeSnapshot>, NativeError> {
            let Some(upload) = self.shared.upload.clone() else { return Ok(None) };
            let scratch = self.scratch("checkpoint");
            let db = self.db();
            db.flush().map_err(|error| NativeError::Store(self.error("flush", error)))?;
            let checkpoint = rocksdb::checkpoint::Checkpoint::new(db)
                .and_then(|checkpoint| checkpoint.create_checkpoint(&scratch))
                .map_err(|error| NativeError::Store(self.error("take a checkpoint", error)));
            let result = checkpoint.and_then(|()| incremental::upload(&scratch, &upload, &mut self.uploaded));
            let _ = std::fs::remove_dir_all(&scratch);
            result.map(Some)
        }

        fn adopt_native(&mut self, snapshot: &NativeSnapshot) -> Result<(), NativeError> {
            let download = self.shared.download.clone().ok_or(NativeError::Unsupported)?;
            let files = incremental::download(snapshot, &download)?;
            drop(self.db.take()); // the empty database goes; the checkpoint's takes its place
            let db = Self::open_db(&self.dir.join("db"), &self.memory, &files).map_err(NativeError::Store)?;
            self.db = Some(db);
            // Files of another job's shared directory (a resumed retained checkpoint) are not in
            // this job's: upload them again rather than name files that are not there.
            self.uploaded = match self.shared.upload.as_ref() == Some(&download) {
                true => incremental::seed(snapshot),
                false => Uploaded::default(),
            };
            Ok(())
        }

        fn open_native(&mut self, snapshot: &NativeSnapshot) -> Result<Box<dyn StateStore>, NativeError> {
            let download = self.shared.download.clone().ok_or(NativeError::Unsupported)?;
            let files = incremental::download(snapshot, &download)?;
            let scratch = self.scratch("restore");
            let store = RocksStateStore::open(&scratch, self.memory.clone(), &files).map_err(NativeError::Store)?;
            Ok(Box::new(store))
        }
    }

    impl Drop for RocksStateStore {
        fn drop(&mut self) {
            drop(self.db.take()); // closes the database before its files go
            if !self.dir.exists() {
                return;
            }
            if let Err(error) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!("cannot delete the RocksDB state at {}: {error}", self.dir.display());
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use weir_core::config::RawConfig;
        use weir_core::dataflow::state::{
            KeyGroupRange, KeyedStateBackend, Namespace, SerdeCodec, StateError, StoreKeyedStateBackend, ValueState,
        };
        use weir_core::ids::{Hex128, SubtaskIndex};
        use weir_core::row::Value;

        fn scratch(name: &str) -> PathBuf {
            let dir = std::env::temp_dir().join(format!("weir-rocks-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            dir
        }

        fn config(pairs: &[(&str, &str)]) -> Config {
            let mut raw = RawConfig::new();
            for (key, value) in pairs {
                raw.set(*key, *value);
            }
            Config::from_raw(&raw).expect("config")
        }

        fn operator(uid: &str, subtask: u32) -> OperatorContext {
            OperatorContext {
                uid: uid.to_string(),
                subtask: SubtaskIndex(subtask),
                parallelism: 4,
                max_parallelism: 128,
                attempt: 0,
            }
        }

        #[test]
        fn managed_memory_is_split_evenly_between_slots_and_shared_within_one() {
            let dir = scratch("memory");
            let config =
                config(&[("taskmanager.memory.managed.size", "120 mb"), ("taskmanager.numberOfTaskSlots", "4")]);
            let rocks = RocksState::new(&dir, &config);
            let (first, second) = (AllocationId(Hex128(1)), AllocationId(Hex128(2)));
            let a = rocks.open_store(first, &operator("window", 0)).expect("open");
            let b = rocks.open_store(first, &operator("sum", 0)).expect("open");
            let c = rocks.open_store(second, &operator("window", 1)).expect("open");
            assert_eq!(a.memory().budget, 30 << 20, "120 MB over 4 slots");
            assert!(Arc::ptr_eq(a.memory(), b.memory()), "instances of one slot share its memory");
            assert!(!Arc::ptr_eq(a.memory(), c.memory()), "slots do not share");
            // write-buffer-ratio 0.5: the cache gets 5/6 of the budget, the write buffers 1/3.
            assert_eq!(a.memory().cache_capacity, 25 << 20);
            assert_eq!(a.memory().write_buffer_capacity(), 10 << 20);
            let (a_dir, c_dir) = (a.dir().to_path_buf(), c.dir().to_path_buf());
            assert!(a_dir.starts_with(dir.join("rocksdb")) && a_dir != b.dir() && a_dir != c_dir);
            drop((a, b, c));
            assert!(!a_dir.exists() && !c_dir.exists(), "an instance's files go with it");
            assert!(rocks.inner.slots.lock().unwrap().values().all(|memory| memory.strong_count() == 0));
            let _ = std::fs::remove_dir_all(&dir);
        }

        /// A backend over a store of `rocks` owning `range`, checkpointing incrementally into
        /// (and restoring from) `shared`.
        fn incremental_backend(
            rocks: &RocksState,
            shared: &Path,
            range: KeyGroupRange,
        ) -> (StoreKeyedStateBackend, weir_core::dataflow::state::ValueState<i64>) {
            let dirs = SharedDirs { upload: Some(shared.to_path_buf()), download: Some(shared.to_path_buf()) };
            let store = rocks.open(AllocationId(Hex128(1)), &operator("sums", range.start), &dirs).expect("open");
            let mut backend = StoreKeyedStateBackend::with_cache_capacity(128, range, store, 256);
            let sums = backend.register_value::<i64>("sums", SerdeCodec);
            backend.set_native_snapshots(true);
            (backend, sums)
        }

        fn put(backend: &mut StoreKeyedStateBackend, sums: ValueState<i64>, keys: std::ops::Range<i64>, add: i64) {
            for key in keys {
                backend.set_current_key(Value::Int(key)).unwrap();
                *backend.entry(sums, Namespace::Global, || 0).unwrap() += key + add;
            }
        }

        fn sum_of(backend: &mut StoreKeyedStateBackend, sums: ValueState<i64>, key: i64) -> Option<i64> {
            backend.set_current_key(Value::Int(key)).unwrap();
            backend.value(sums, Namespace::Global).unwrap().copied()
        }

        #[test]
        fn incremental_checkpoints_upload_each_file_once_and_restore_at_any_parallelism() {
            let dir = scratch("incremental");
            let shared = dir.join("shared");
            let rocks = RocksState::new(&dir, &config(&[("taskmanager.memory.managed.size", "32 mb")]));
            let all = KeyGroupRange::new(0, 128);
            let (mut backend, sums) = incremental_backend(&rocks, &shared, all);
            put(&mut backend, sums, 0..50_000, 0);
            let first = backend.snapshot().unwrap();
            let first_native = first.native.clone().expect("an incremental snapshot");
            assert!(first.groups.is_empty() && !first_native.shared.is_empty());
            assert_eq!(first_native.state_names, ["sums"]);
            put(&mut backend, sums, 0..100, 1); // a small change
            let second = backend.snapshot().unwrap();
            let second_native = second.native.clone().expect("an incremental snapshot");
            let names = |native: &NativeSnapshot| -> std::collections::BTreeSet<String> {
                native.shared.iter().map(|file| file.shared.clone()).collect()
            };
            let reused = names(&second_native).intersection(&names(&first_native)).count();
            assert_eq!(reused, first_native.shared.len(), "the first checkpoint's files are referenced again");
            let uploaded: usize = std::fs::read_dir(&shared).unwrap().count();
            assert_eq!(uploaded, names(&first_native).union(&names(&second_native)).count(), "each file once");
            let new_bytes: u64 = second_native
                .shared
                .iter()
                .filter(|file| !names(&first_native).contains(&file.shared))
                .map(|file| file.size_bytes)
                .sum();
            assert!(new_bytes * 10 < first_native.state_bytes(), "{new_bytes} new of {}", first_native.state_bytes());

            // Same key groups: the files become the new instance's database.
            let (mut same, sums_same) = incremental_backend(&rocks, &shared, all);
            same.restore(&[&second]).unwrap();
            assert_eq!(same.entry_count().unwrap(), 50_000);
            assert_eq!(
                (sum_of(&mut same, sums_same, 7), sum_of(&mut same, sums_same, 49_999)),
                (Some(15), Some(49_999))
            );
            // It goes on checkpointing incrementally, reusing the restored files.
            put(&mut same, sums_same, 0..10, 0);
            let third = same.snapshot().unwrap().native.expect("incremental");
            assert!(names(&third).intersection(&names(&second_native)).count() > 0);

            // Rescaled to two subtasks: each reads its key groups out of the files.
            let mut total = 0;
            for half in [KeyGroupRange::new(0, 64), KeyGroupRange::new(64, 128)] {
                let (mut part, sums_part) = incremental_backend(&rocks, &shared, half);
                part.restore(&[&second]).unwrap();
                total += part.entry_count().unwrap();
                let owned = (0..50_000i64)
                    .filter(|key| half.contains(weir_core::dataflow::partition::key_group_of(&Value::Int(*key), 128)));
                for key in owned.step_by(97) {
                    let expected = if key < 100 { 2 * key + 1 } else { key };
                    assert_eq!(sum_of(&mut part, sums_part, key), Some(expected), "key {key}");
                }
            }
            assert_eq!(total, 50_000);

            // A corrupt shared file makes the checkpoint unreadable, with a clear error.
            let victim = shared.join(&second_native.shared[0].shared);
            let mut bytes = std::fs::read(&victim).unwrap();
            bytes[10] ^= 0xff;
            std::fs::write(&victim, bytes).unwrap();
            let (mut broken, _) = incremental_backend(&rocks, &shared, all);
            let error = broken.restore(&[&second]).unwrap_err();
            assert!(matches!(&error, StateError::NativeFiles { message } if message.contains("corrupt")), "{error}");
            std::fs::remove_file(&victim).unwrap();
            let (mut missing, _) = incremental_backend(&rocks, &shared, KeyGroupRange::new(0, 64));
            let error = missing.restore(&[&second]).unwrap_err();
            assert!(
                matches!(&error, StateError::NativeFiles { message } if message.contains("cannot read")),
                "{error}"
            );
            drop((backend, same, broken, missing));
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn without_an_upload_directory_snapshots_stay_canonical() {
            let dir = scratch("canonical");
            let rocks = RocksState::new(&dir, &config(&[]));
            let store = rocks.open(AllocationId(Hex128(1)), &operator("sums", 0), &SharedDirs::default()).unwrap();
            let mut backend = StoreKeyedStateBackend::new(128, KeyGroupRange::new(0, 128), store);
            let sums = backend.register_value::<i64>("sums", SerdeCodec);
            backend.set_native_snapshots(true);
            put(&mut backend, sums, 0..100, 0);
            let snapshot = backend.snapshot().unwrap();
            assert!(snapshot.native.is_none() && !snapshot.groups.is_empty());
            drop(backend);
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn instances_of_ended_processes_are_deleted_at_start_and_live_ones_kept() {
            let dir = scratch("stale");
            let instances = dir.join("rocksdb");
            let dead = instances.join(format!("window-0-a0-{}-3", u32::MAX - 1));
            let live = instances.join(format!("window-0-a0-{}-4", std::process::id()));
            let other = instances.join("not-an-instance");
            for path in [&dead, &live, &other] {
                std::fs::create_dir_all(path).unwrap();
            }
            let _rocks = RocksState::new(&dir, &config(&[]));
            assert!(!dead.exists() && live.exists() && other.exists());
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn keyed_state_round_trips_through_rocksdb_and_stays_within_the_slot_budget() {
            let dir = scratch("state");
            let config = config(&[("taskmanager.memory.managed.size", "16 mb"), ("state.backend.type", "rocksdb")]);
            let rocks = RocksState::new(&dir, &config);
            let store = rocks.open_store(AllocationId(Hex128(7)), &operator("counts", 0)).expect("open");
            let memory = store.memory().clone();
            let range = KeyGroupRange::new(0, 128);
            let mut state = StoreKeyedStateBackend::with_cache_capacity(128, range, Box::new(store), 64);
            let counts = state.register_value::<Vec<u8>>("counts", SerdeCodec);
            // 40 MB of values through a 16 MB slot: most of it must live in RocksDB's files.
            for key in 0..20_000i64 {
                state.set_current_key(Value::Int(key)).unwrap();
                state.set_value(counts, Namespace::Global, vec![(key % 251) as u8; 2_000]).unwrap();
            }
            for key in (0..20_000i64).step_by(997) {
                state.set_current_key(Value::Int(key)).unwrap();
                let value = state.value(counts, Namespace::Global).unwrap().cloned();
                assert_eq!(value, Some(vec![(key % 251) as u8; 2_000]), "key {key}");
            }
            assert_eq!(state.entry_count().unwrap(), 20_000);
            assert!(
                memory.write_buffer_usage() <= memory.budget,
                "{} > {}",
                memory.write_buffer_usage(),
                memory.budget
            );
            let snapshot = state.snapshot().unwrap();
            let mut restored = StoreKeyedStateBackend::new(
                128,
                KeyGroupRange::new(0, 64),
                Box::new(rocks.open_store(AllocationId(Hex128(8)), &operator("counts", 0)).expect("open")),
            );
            let counts = restored.register_value::<Vec<u8>>("counts", SerdeCodec);
            restored.restore(&[&snapshot]).unwrap();
            let owned =
                (0..20_000i64).filter(|key| weir_core::dataflow::partition::key_group_of(&Value::Int(*key), 128) < 64);
            assert_eq!(restored.entry_count().unwrap(), owned.clone().count());
            for key in owned.step_by(101) {
                restored.set_current_key(Value::Int(key)).unwrap();
                assert_eq!(restored.value(counts, Namespace::Global).unwrap().map(Vec::len), Some(2_000));
            }
            drop((state, restored));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
