//! Where keyed state lives (`state.backend.*`) and how it is checkpointed.
//!
//! Flink's two backends: `hashmap` keeps state as objects on the heap and snapshots it whole;
//! `rocksdb` keeps it in an embedded RocksDB per operator instance, whose memory comes out of
//! the slot's share of managed memory, and can checkpoint incrementally
//! (`execution.checkpointing.incremental`), uploading only the files new since the last one.

use super::read::{Reader, boolean, choice, number, text};
use super::{ConfigError, Listing};

/// Which keyed state backend operators use (`state.backend.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateBackendKind {
    /// State as objects on the heap (Flink's `HashMapStateBackend`), the default.
    Heap,
    /// State in an embedded RocksDB (Flink's `EmbeddedRocksDBStateBackend`).
    RocksDb,
}

impl StateBackendKind {
    const NAMES: [(&str, StateBackendKind); 2] =
        [("hashmap", StateBackendKind::Heap), ("rocksdb", StateBackendKind::RocksDb)];

    /// The kind's name as the key spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            StateBackendKind::Heap => "hashmap",
            StateBackendKind::RocksDb => "rocksdb",
        }
    }
}

/// The keyed state backend and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct StateBackendConfig {
    /// Which backend.
    pub kind: StateBackendKind,
    /// Checkpoints upload only the RocksDB files new since the previous checkpoint
    /// (`execution.checkpointing.incremental`; RocksDB only; savepoints are always whole).
    pub incremental: bool,
    /// Directory of the RocksDB instances (`state.backend.rocksdb.localdir`); unset: under the
    /// TaskManager's data directory.
    pub rocksdb_local_dir: Option<String>,
    /// Share of a slot's managed memory RocksDB's write buffers may take
    /// (`state.backend.rocksdb.memory.write-buffer-ratio`).
    pub write_buffer_ratio: f64,
}

impl StateBackendConfig {
    pub(super) fn read(reader: &Reader) -> Result<StateBackendConfig, ConfigError> {
        Ok(StateBackendConfig {
            kind: reader.value("state.backend.type", choice(&StateBackendKind::NAMES))?,
            incremental: reader.value("execution.checkpointing.incremental", boolean)?,
            rocksdb_local_dir: reader.optional("state.backend.rocksdb.localdir", text)?,
            write_buffer_ratio: reader.value("state.backend.rocksdb.memory.write-buffer-ratio", number(0.0, 1.0))?,
        })
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("state.backend.type", self.kind.as_str());
        listing.put("execution.checkpointing.incremental", self.incremental);
        listing.put_optional("state.backend.rocksdb.localdir", self.rocksdb_local_dir.as_ref());
        listing.put("state.backend.rocksdb.memory.write-buffer-ratio", self.write_buffer_ratio);
    }
}
