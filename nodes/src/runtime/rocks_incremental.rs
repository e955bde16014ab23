//! The files of incremental RocksDB checkpoints (Flink's `RocksIncrementalSnapshotStrategy`).
//!
//! A checkpoint of an instance is a RocksDB checkpoint (hard links to its live files, taken
//! after a flush) whose SST files, immutable once written, are copied into the job's `shared/`
//! directory the first time the instance checkpoints them, under `<token>-<local name>` (the
//! token is random per instance, so two instances, or two attempts, never pick the same name).
//! Later checkpoints reference the copies again instead of uploading them. The small mutable
//! files (MANIFEST, CURRENT, OPTIONS) travel inside the task's state file. A shared file is
//! written under a temporary name, fsynced and renamed, like every checkpoint file; its size and
//! crc32 are recorded and checked when it is downloaded for a restore, so a missing or corrupt
//! file is reported as an unreadable checkpoint (recovery then falls back to an older one).
//! The JobManager deletes shared files once no retained checkpoint references them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::Path;
use weir_core::dataflow::state::{NativeError, NativeSnapshot, PrivateFile, SharedFile};

/// What an instance has in the shared directory: its naming token and, by local name, the
/// files of its last checkpoint.
#[derive(Debug)]
pub struct Uploaded {
    token: String,
    files: BTreeMap<String, SharedFile>,
}

impl Default for Uploaded {
    /// Nothing uploaded yet, with a fresh random token.
    fn default() -> Uploaded {
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        Uploaded { token: format!("{random:016x}"), files: BTreeMap::new() }
    }
}

/// The native snapshot of the RocksDB checkpoint in `checkpoint_dir`: SST files not yet in
/// `upload_dir` are copied there (and remembered in `uploaded`), the rest read whole.
pub fn upload(
    checkpoint_dir: &Path,
    upload_dir: &Path,
    uploaded: &mut Uploaded,
) -> Result<NativeSnapshot, NativeError> {
    let store = |what: &str, path: &Path, error: std::io::Error| {
        NativeError::Store(format!("{}: cannot {what}: {error}", path.display()))
    };
    fs::create_dir_all(upload_dir).map_err(|e| store("create", upload_dir, e))?;
    let entries = fs::read_dir(checkpoint_dir).map_err(|e| store("list", checkpoint_dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| store("list", checkpoint_dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let (mut snapshot, mut files) = (NativeSnapshot::default(), BTreeMap::new());
    for local in names {
        let path = checkpoint_dir.join(&local);
        if !local.ends_with(".sst") {
            let bytes = fs::read(&path).map_err(|e| store("read", &path, e))?;
            snapshot.private.push(PrivateFile { local, bytes });
            continue;
        }
        let file = match uploaded.files.get(&local) {
            Some(file) => file.clone(),
            None => {
                let bytes = fs::read(&path).map_err(|e| store("read", &path, e))?;
                let shared = format!("{}-{local}", uploaded.token);
                write_durably(&upload_dir.join(&shared), &bytes).map_err(NativeError::Store)?;
                let (size_bytes, crc32) = (bytes.len() as u64, crc32fast::hash(&bytes));
                SharedFile { local: local.clone(), shared, size_bytes, crc32 }
            }
        };
        files.insert(local, file.clone());
        snapshot.shared.push(file);
    }
    // Files compacted away are forgotten here; older checkpoints still reference their copies.
    uploaded.files = files;
    Ok(snapshot)
}

/// What a restored instance has in the shared directory: the snapshot's files (its token stays
/// fresh, so what it uploads next cannot collide with the old instance's names).
pub fn seed(snapshot: &NativeSnapshot) -> Uploaded {
    let files = snapshot.shared.iter().map(|file| (file.local.clone(), file.clone())).collect();
    Uploaded { files, ..Uploaded::default() }
}

/// The files of `snapshot`, by local name, the shared ones read from `download_dir` and checked
/// against their recorded size and crc32.
pub fn download(snapshot: &NativeSnapshot, download_dir: &Path) -> Result<Vec<(String, Vec<u8>)>, NativeError> {
    let mut files = Vec::with_capacity(snapshot.shared.len() + snapshot.private.len());
    for file in &snapshot.shared {
        let path = download_dir.join(&file.shared);
        let bytes = fs::read(&path).map_err(|error| {
            NativeError::Unreadable(format!("shared file {}: cannot read: {error}", path.display()))
        })?;
        let crc32 = crc32fast::hash(&bytes);
        if bytes.len() as u64 != file.size_bytes || crc32 != file.crc32 {
            return Err(NativeError::Unreadable(format!(
                "shared file {} is corrupt: {} bytes with crc32 {crc32:08x}, expected {} bytes with crc32 {:08x}",
                path.display(),
                bytes.len(),
                file.size_bytes,
                file.crc32
            )));
        }
        files.push((file.local.clone(), bytes));
    }
    files.extend(snapshot.private.iter().map(|file| (file.local.clone(), file.bytes.clone())));
    Ok(files)
}

/// Writes `bytes` as `path` under a temporary name, fsynced, then renamed.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |what: &str, path: &Path, error: std::io::Error| format!("{}: cannot {what}: {error}", path.display());
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".tmp-{name}"));
    let mut file = File::create(&temporary).map_err(|e| fail("create", &temporary, e))?;
    file.write_all(bytes).map_err(|e| fail("write", &temporary, e))?;
    file.sync_all().map_err(|e| fail("fsync", &temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| fail("rename", &temporary, e))
}
