//! Checkpoint storage on the local file system (DESIGN section 6): every file is written under a
//! temporary name, fsynced, then renamed into place, and the directory is fsynced, so a crash
//! leaves either the whole file or none; `_metadata` is written last by the JobManager, after
//! every task's state file is durable, so a checkpoint directory without it is incomplete.
//!
//! Locations from the core are either absolute paths (with `execution.checkpointing.dir` set,
//! a `file://` prefix allowed) or relative ones, resolved under the process's data directory.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Where checkpoints of this process go.
#[derive(Clone, Debug)]
pub struct CheckpointStorage {
    data_dir: PathBuf,
}

impl CheckpointStorage {
    /// Storage resolving relative locations under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> CheckpointStorage {
        CheckpointStorage { data_dir: data_dir.into() }
    }

    /// The directory relative locations resolve under.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory a location names.
    pub fn resolve(&self, location: &str) -> PathBuf {
        let path = location.strip_prefix("file://").unwrap_or(location);
        let path = Path::new(path);
        if path.is_absolute() { path.to_path_buf() } else { self.data_dir.join(path) }
    }

    /// Writes `bytes` as `<location>/<name>` durably (temporary name, fsync, rename, fsync dir).
    pub fn write(&self, location: &str, name: &str, bytes: &[u8]) -> Result<(), String> {
        let directory = self.resolve(location);
        let fail =
            |what: &str, path: &Path, error: std::io::Error| format!("{}: cannot {what}: {error}", path.display());
        fs::create_dir_all(&directory).map_err(|e| fail("create", &directory, e))?;
        let temporary = directory.join(format!(".tmp-{name}"));
        let target = directory.join(name);
        let mut file = File::create(&temporary).map_err(|e| fail("create", &temporary, e))?;
        file.write_all(bytes).map_err(|e| fail("write", &temporary, e))?;
        file.sync_all().map_err(|e| fail("fsync", &temporary, e))?;
        fs::rename(&temporary, &target).map_err(|e| fail("rename", &temporary, e))?;
        if let Ok(dir) = File::open(&directory) {
            dir.sync_all().map_err(|e| fail("fsync", &directory, e))?;
        }
        Ok(())
    }

    /// The bytes of `<location>/<name>`.
    pub fn read(&self, location: &str, name: &str) -> Result<Vec<u8>, String> {
        let path = self.resolve(location).join(name);
        fs::read(&path).map_err(|error| format!("{}: cannot read: {error}", path.display()))
    }

    /// Deletes a checkpoint directory (or file) and everything in it; a missing one is fine.
    pub fn delete(&self, location: &str) -> Result<(), String> {
        let path = self.resolve(location);
        let result = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        match result {
            Err(error) if error.kind() != ErrorKind::NotFound => {
                Err(format!("{}: cannot delete: {error}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_whole_under_relative_and_absolute_locations() {
        let root = std::env::temp_dir().join(format!("weir-storage-test-{}", std::process::id()));
        let storage = CheckpointStorage::new(&root);
        storage.write("job/chk-1", "task-a", b"state").expect("write");
        assert_eq!(storage.read("job/chk-1", "task-a").expect("read"), b"state");
        let absolute = root.join("abs").display().to_string();
        storage.write(&format!("file://{absolute}"), "_metadata", b"m").expect("write absolute");
        assert_eq!(fs::read(root.join("abs/_metadata")).expect("there"), b"m");
        assert!(!root.join("job/chk-1/.tmp-task-a").exists(), "no temporary file is left");
        storage.delete("job/chk-1").expect("delete");
        storage.delete("job/chk-1").expect("deleting twice is fine");
        assert!(storage.read("job/chk-1", "task-a").is_err());
        let _ = fs::remove_dir_all(root);
    }
}
