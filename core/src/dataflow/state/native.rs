//! A store's own snapshot format (Flink's incremental RocksDB checkpoints): the files of a
//! store checkpoint instead of the canonical per-key-group images.
//!
//! The immutable data files (RocksDB's SST files) are uploaded once into the job's `shared/`
//! directory under unique names and referenced by every later checkpoint that still holds them;
//! the few small mutable files (RocksDB's MANIFEST, CURRENT, OPTIONS) travel inside the task's
//! state file. The snapshot also records the state names in registration order, because a
//! store key carries the state's registration index, not its name.
//!
//! Only checkpoints take this form: savepoints are always canonical, portable across backends.

use serde::{Deserialize, Serialize};

/// The files of one store checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NativeSnapshot {
    /// The registered states' names, by store state id.
    pub state_names: Vec<String>,
    /// Immutable files in the job's shared directory, sorted by local name.
    pub shared: Vec<SharedFile>,
    /// Small files carried in the state file itself, sorted by local name.
    pub private: Vec<PrivateFile>,
}

/// An immutable file of the store, uploaded once and shared between checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SharedFile {
    /// Its name in the store's directory (e.g. `000012.sst`).
    pub local: String,
    /// Its unique name in the job's shared directory.
    pub shared: String,
    /// Its length.
    pub size_bytes: u64,
    /// crc32 (IEEE) of its bytes, checked when it is downloaded.
    pub crc32: u32,
}

/// A small file of the store carried whole in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrivateFile {
    /// Its name in the store's directory (e.g. `CURRENT`).
    pub local: String,
    /// Its contents.
    pub bytes: Vec<u8>,
}

impl NativeSnapshot {
    /// Bytes of the files this checkpoint references (shared and private).
    pub fn state_bytes(&self) -> u64 {
        let shared: u64 = self.shared.iter().map(|file| file.size_bytes).sum();
        shared + self.private.iter().map(|file| file.bytes.len() as u64).sum::<u64>()
    }
}
