//! `weir bench state --keys N --records M`: keyed state on the heap and in RocksDB, side by side.
//!
//! Each backend gets the same work, as a keyed running sum does it: M records spread over N keys
//! (a fixed pseudo-random sequence), each one `set_current_key` and an update of the key's sum,
//! with a full snapshot after every M/K of them (`--snapshots K`, as a checkpoint would take one),
//! timed separately: the snapshot times' median and 99th percentile are the backend's share of a
//! checkpoint's duration. The RocksDB backend runs as tasks do: one database
//! with a slot's share of managed memory (`taskmanager.memory.managed.size` over
//! `taskmanager.numberOfTaskSlots`, from `-D` or the defaults), behind the store backend's cache.

use super::CliError;
use crate::runtime::rocks_state::RocksState;
use serde::Serialize;
use std::time::Instant;
use weir_core::config::{Config, RawConfig};
use weir_core::dataflow::operators::OperatorContext;
use weir_core::dataflow::state::{
    HeapKeyedStateBackend, KeyGroupRange, KeyedStateBackend, Namespace, SerdeCodec, StoreKeyedStateBackend,
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

/// Both backends and their ratios.
#[derive(Serialize)]
struct StateReport {
    keys: u64,
    records: u64,
    heap: BackendReport,
    rocksdb: BackendReport,
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
    let store = rocks.open(AllocationId(Hex128(1)), &operator).map_err(CliError::failed)?;
    let rocksdb = run("rocksdb", StoreKeyedStateBackend::new(MAX_PARALLELISM, range, store), work);
    let _ = std::fs::remove_dir_all(&dir);
    let rocksdb = rocksdb?;
    let report = StateReport {
        keys: work.keys,
        records: work.records,
        throughput_ratio: rocksdb.records_per_second / heap.records_per_second,
        snapshot_ratio: rocksdb.snapshot_ms / heap.snapshot_ms.max(f64::MIN_POSITIVE),
        heap,
        rocksdb,
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
    }
    Ok(())
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
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut updating = std::time::Duration::ZERO;
    let mut snapshot_ms = Vec::with_capacity(work.snapshots as usize);
    let mut snapshot_bytes = 0;
    let mut record = 0;
    for round in 1..=u64::from(work.snapshots) {
        // Rounds split the records evenly; the last one takes the remainder.
        let until = work.records * round / u64::from(work.snapshots);
        let started = Instant::now();
        while record < until {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            backend.set_current_key(Value::Int((seed % work.keys) as i64)).map_err(failed)?;
            *backend.entry(sums, Namespace::Global, || 0).map_err(failed)? += (record % 101) as i64;
            record += 1;
        }
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
