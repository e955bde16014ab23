//! `weir bench state --keys N --records M`: keyed state on the heap and in RocksDB, side by side.
//!
//! Each backend gets the same work, as a keyed running sum does it: M records spread over N keys
//! (a fixed pseudo-random sequence), each one `set_current_key` and an update of the key's sum,
//! with a full snapshot after every M/K of them (`--snapshots K`, as a checkpoint would take one),
//! timed separately: the snapshot times' median and 99th percentile are the backend's share of a
//! checkpoint's duration. The RocksDB backend runs as tasks do: one database
//! with a slot's share of managed memory (`taskmanager.memory.managed.size` over
//! `taskmanager.numberOfTaskSlots`, from `-D` or the defaults), behind the store backend's cache.
//!
//! Then RocksDB with incremental checkpoints: the same work, a first checkpoint (every file is
//! new), one record for 1% of the keys, and a second checkpoint, each timed with the bytes it
//! uploaded; a full snapshot would write all the state both times.

use super::CliError;
use crate::runtime::rocks_state::{RocksState, SharedDirs};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Instant;
use weir_core::config::{Config, RawConfig};
use weir_core::dataflow::operators::OperatorContext;
use weir_core::dataflow::state::{
    HeapKeyedStateBackend, KeyGroupRange, KeyedStateBackend, Namespace, SerdeCodec, StoreKeyedStateBackend, ValueState,
};
use weir_core::ids::{AllocationId, Hex128, SubtaskIndex};
use weir_core::row::Value;

const MAX_PARALLELISM: u32 = 128;

/// One backend's figures.
#[derive(Serialize)]
struct BackendReport {
    backend: &'static str,
    records_per_second: f64,
    /// The last snapshot's time (every key present).
    snapshot_ms: f64,
    snapshot_ms_p50: f64,
    snapshot_ms_p99: f64,
    snapshots: u32,
    snapshot_bytes: usize,
}

/// Two incremental checkpoints of RocksDB: after the work, and after a change to 1% of keys.
#[derive(Serialize)]
struct IncrementalReport {
    first_checkpoint_ms: f64,
    first_uploaded_bytes: u64,
    changed_keys: u64,
    second_checkpoint_ms: f64,
    second_uploaded_bytes: u64,
    /// Bytes the second checkpoint references (its whole state).
    second_state_bytes: u64,
}

/// Both backends and their ratios.
#[derive(Serialize)]
struct StateReport {
    keys: u64,
    records: u64,
    heap: BackendReport,
    rocksdb: BackendReport,
    rocksdb_incremental: IncrementalReport,
    /// RocksDB's throughput as a fraction of the heap's.
    throughput_ratio: f64,
    /// RocksDB's snapshot time over the heap's.
    snapshot_ratio: f64,
}

/// Runs the benchmark and prints the report.
pub fn state(keys: u64, records: u64, snapshots: u32, raw: &RawConfig, json: bool) -> Result<(), CliError> {
    if keys == 0 || records == 0 || snapshots == 0 {
        return Err(CliError::input("--keys, --records and --snapshots must be above 0".to_string()));
    }
    let work = Work { keys, records, snapshots };
    let config = Config::from_raw(raw).map_err(|error| CliError::input(error.to_string()))?;
    let range = KeyGroupRange::new(0, MAX_PARALLELISM);
    let heap = run("heap", HeapKeyedStateBackend::new(MAX_PARALLELISM, range), work)?;
    let dir = std::env::temp_dir().join(format!("weir-bench-state-{}", std::process::id()));
    let rocks = RocksState::new(&dir, &config);
    let operator = OperatorContext {
        uid: "bench".to_string(),
        subtask: SubtaskIndex(0),
        parallelism: 1,
        max_parallelism: MAX_PARALLELISM,
        attempt: 0,
    };
    let store = rocks.open(AllocationId(Hex128(1)), &operator, &Default::default()).map_err(CliError::failed)?;
    let rocksdb = run("rocksdb", StoreKeyedStateBackend::new(MAX_PARALLELISM, range, store), work);
    let incremental = rocksdb.and_then(|rocksdb| Ok((rocksdb, incremental(&rocks, &operator, &dir, keys, records)?)));
    let _ = std::fs::remove_dir_all(&dir);
    let (rocksdb, rocksdb_incremental) = incremental?;
    let report = StateReport {
        keys: work.keys,
        records: work.records,
        throughput_ratio: rocksdb.records_per_second / heap.records_per_second,
        snapshot_ratio: rocksdb.snapshot_ms / heap.snapshot_ms.max(f64::MIN_POSITIVE),
        heap,
        rocksdb,
        rocksdb_incremental,
    };
    if json {
        println!("{}", serde_json::to_string(&report).map_err(|error| CliError::failed(error.to_string()))?);
    } else {
        for backend in [&report.heap, &report.rocksdb] {
            println!(
                "{:8} {:>12.0} records/s  snapshot {:>9.1} ms (p50 {:.1} ms, p99 {:.1} ms of {})  {:>11} bytes",
                backend.backend,
                backend.records_per_second,
                backend.snapshot_ms,
                backend.snapshot_ms_p50,
                backend.snapshot_ms_p99,
                backend.snapshots,
                backend.snapshot_bytes
            );
        }
        println!(
            "{} keys, {} records: RocksDB keeps {:.1}% of the heap's throughput; its snapshot takes {:.1}x as long",
            report.keys,
            report.records,
            report.throughput_ratio * 100.0,
            report.snapshot_ratio
        );
        let incremental = &report.rocksdb_incremental;
        println!(
            "incremental: first checkpoint {:.1} ms uploading {} bytes; after {} changed keys, {:.1} ms uploading \
             {} of {} bytes",
            incremental.first_checkpoint_ms,
            incremental.first_uploaded_bytes,
            incremental.changed_keys,
            incremental.second_checkpoint_ms,
            incremental.second_uploaded_bytes,
            incremental.second_state_bytes
        );
    }
    Ok(())
}

/// The incremental part of the benchmark (see the module doc).
fn incremental(
    rocks: &RocksState,
    operator: &OperatorContext,
    dir: &std::path::Path,
    keys: u64,
    records: u64,
) -> Result<IncrementalReport, CliError> {
    let failed = |error: weir_core::dataflow::state::StateError| CliError::failed(format!("incremental: {error}"));
    let shared = dir.join("shared");
    let dirs = SharedDirs { upload: Some(shared.clone()), download: Some(shared) };
    let store = rocks.open(AllocationId(Hex128(2)), operator, &dirs).map_err(CliError::failed)?;
    let range = KeyGroupRange::new(0, MAX_PARALLELISM);
    let mut backend = StoreKeyedStateBackend::new(MAX_PARALLELISM, range, store);
    let sums = backend.register_value::<i64>("sums", SerdeCodec);
    backend.set_native_snapshots(true);
    KeySequence::new(keys).update_until(&mut backend, sums, records).map_err(failed)?;
    let checkpoint = |backend: &mut StoreKeyedStateBackend, known: &BTreeSet<String>| {
        let started = Instant::now();
        let snapshot = backend.snapshot().map_err(failed)?;
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        let native = snapshot.native.ok_or_else(|| CliError::failed("no incremental snapshot".to_string()))?;
        let uploaded = native.shared.iter().filter(|file| !known.contains(&file.shared)).map(|file| file.size_bytes);
        let names = native.shared.iter().map(|file| file.shared.clone()).collect();
        Ok::<_, CliError>((took_ms, uploaded.sum::<u64>(), native.state_bytes(), names))
    };
    let (first_checkpoint_ms, first_uploaded_bytes, _, known) = checkpoint(&mut backend, &BTreeSet::new())?;
    let changed_keys = (keys / 100).max(1);
    for key in 0..changed_keys {
        backend.set_current_key(Value::Int((key * 100 % keys) as i64)).map_err(failed)?;
        *backend.entry(sums, Namespace::Global, || 0).map_err(failed)? += 1;
    }
    let (second_checkpoint_ms, second_uploaded_bytes, second_state_bytes, _) = checkpoint(&mut backend, &known)?;
    Ok(IncrementalReport {
        first_checkpoint_ms,
        first_uploaded_bytes,
        changed_keys,
        second_checkpoint_ms,
        second_uploaded_bytes,
        second_state_bytes,
    })
}

/// The benchmark's records: updates of a running sum over `keys` keys in a fixed pseudo-random
/// order (xorshift), the same for every backend.
struct KeySequence {
    keys: u64,
    seed: u64,
    record: u64,
}

impl KeySequence {
    fn new(keys: u64) -> KeySequence {
        KeySequence { keys, seed: 0x2545_f491_4f6c_dd1d, record: 0 }
    }

    /// Applies the records up to (not including) number `until`.
    fn update_until(
        &mut self,
        backend: &mut impl KeyedStateBackend,
        sums: ValueState<i64>,
        until: u64,
    ) -> Result<(), weir_core::dataflow::state::StateError> {
        while self.record < until {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            backend.set_current_key(Value::Int((self.seed % self.keys) as i64))?;
            *backend.entry(sums, Namespace::Global, || 0)? += (self.record % 101) as i64;
            self.record += 1;
        }
        Ok(())
    }
}

/// The same work for each backend.
#[derive(Clone, Copy)]
struct Work {
    keys: u64,
    records: u64,
    snapshots: u32,
}

fn run(name: &'static str, mut backend: impl KeyedStateBackend, work: Work) -> Result<BackendReport, CliError> {
    let failed = |error: weir_core::dataflow::state::StateError| CliError::failed(format!("{name}: {error}"));
    let sums = backend.register_value::<i64>("sums", SerdeCodec);
    let mut sequence = KeySequence::new(work.keys);
    let mut updating = std::time::Duration::ZERO;
    let mut snapshot_ms = Vec::with_capacity(work.snapshots as usize);
    let mut snapshot_bytes = 0;
    for round in 1..=u64::from(work.snapshots) {
        // Rounds split the records evenly; the last one takes the remainder.
        let until = work.records * round / u64::from(work.snapshots);
        let started = Instant::now();
        sequence.update_until(&mut backend, sums, until).map_err(failed)?;
        updating += started.elapsed();
        let started = Instant::now();
        let snapshot = backend.snapshot().map_err(failed)?;
        snapshot_ms.push(started.elapsed().as_secs_f64() * 1e3);
        snapshot_bytes = snapshot.byte_size();
    }
    let last_ms = snapshot_ms.last().copied().unwrap_or_default();
    snapshot_ms.sort_by(f64::total_cmp);
    Ok(BackendReport {
        backend: name,
        records_per_second: work.records as f64 / updating.as_secs_f64().max(f64::MIN_POSITIVE),
        snapshot_ms: last_ms,
        snapshot_ms_p50: percentile(&snapshot_ms, 0.50),
        snapshot_ms_p99: percentile(&snapshot_ms, 0.99),
        snapshots: work.snapshots,
        snapshot_bytes,
    })
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
