//! The simulated shared storage: checkpoint directories, part files of file sinks, input files.
//!
//! One store for the whole cluster, as a distributed file system is: every node sees the same
//! files. What makes it a disk of a simulation is when writes land: the world applies a
//! checkpoint write only once its fsync finished (a seeded delay later), and drops it if the
//! writer crashed before, so a crash loses exactly what was not yet synced. Disk faults corrupt
//! or truncate a file that exists.
//!
//! Paths are plain strings; a directory is every path under `dir/`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use weir_core::rng::Rng;

/// The files, by path.
#[derive(Debug, Default)]
pub struct Disk {
    files: BTreeMap<String, Vec<u8>>,
    /// No space left: writes that add bytes fail (a disk-full fault).
    full: bool,
}

/// The error a write to a full disk gets, as the OS reports ENOSPC.
pub const NO_SPACE: &str = "No space left on device (os error 28)";

/// The storage as operators' connectors hold it (they must be `Send`).
pub type SharedDisk = Arc<Mutex<Disk>>;

/// Locks the shared disk; a poisoned lock (a panic elsewhere) still gives the files.
pub fn lock(disk: &SharedDisk) -> MutexGuard<'_, Disk> {
    disk.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a disk fault damages a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// One byte flipped.
    Corrupt,
    /// The end cut off (a torn write).
    Truncate,
}

impl Disk {
    /// Creates or replaces `path`.
    pub fn write(&mut self, path: &str, bytes: Vec<u8>) {
        self.files.insert(path.to_string(), bytes);
    }

    /// Whether the disk is full: writes that add bytes fail with [`NO_SPACE`].
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Fills the disk up (a disk-full fault) or frees it again.
    pub fn set_full(&mut self, full: bool) {
        self.full = full;
    }

    /// Appends to `path`, creating it, unless the disk is full.
    pub fn try_append(&mut self, path: &str, bytes: &[u8]) -> Result<(), String> {
        if self.full && !bytes.is_empty() {
            return Err(format!("{path}: {NO_SPACE}"));
        }
        self.append(path, bytes);
        Ok(())
    }

    /// Appends to `path`, creating it.
    pub fn append(&mut self, path: &str, bytes: &[u8]) {
        self.files.entry(path.to_string()).or_default().extend_from_slice(bytes);
    }

    /// The bytes of `path`.
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Moves `from` to `to` (replacing it); false when `from` does not exist.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        match self.files.remove(from) {
            Some(bytes) => {
                self.files.insert(to.to_string(), bytes);
                true
            }
            None => false,
        }
    }

    /// Deletes `path`; false when it did not exist.
    pub fn remove(&mut self, path: &str) -> bool {
        self.files.remove(path).is_some()
    }

    /// Deletes `path` and everything under `path/`.
    pub fn remove_tree(&mut self, path: &str) {
        self.files.remove(path);
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let doomed: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        for path in doomed {
            self.files.remove(&path);
        }
    }

    /// The names of the files directly in `directory`, sorted.
    pub fn list(&self, directory: &str) -> Vec<String> {
        let prefix = format!("{}/", directory.trim_end_matches('/'));
        self.files
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(path, _)| &path[prefix.len()..])
            .filter(|name| !name.contains('/'))
            .map(String::from)
            .collect()
    }

    /// Every path under `directory/`, at any depth, sorted; every path for `""`.
    pub fn paths_under(&self, directory: &str) -> Vec<String> {
        if directory.is_empty() {
            return self.files.keys().cloned().collect();
        }
        let prefix = format!("{}/", directory.trim_end_matches('/'));
        self.files
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Damages `path`; false when it does not exist or is empty.
    pub fn damage(&mut self, path: &str, damage: Damage, rng: &mut Rng) -> bool {
        let Some(bytes) = self.files.get_mut(path) else { return false };
        if bytes.is_empty() {
            return false;
        }
        let at = rng.below(bytes.len() as u64) as usize;
        match damage {
            Damage::Corrupt => bytes[at] ^= 1 << rng.below(8),
            Damage::Truncate => bytes.truncate(at),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_sees_direct_children_only_and_trees_go_whole() {
        let mut disk = Disk::default();
        disk.write("/c/job/chk-1/_metadata", vec![1]);
        disk.write("/c/job/chk-1/task-a", vec![2]);
        disk.write("/c/job/chk-10/_metadata", vec![3]);
        disk.write("/out/part-0-1", vec![4]);
        assert_eq!(disk.list("/c/job/chk-1"), vec!["_metadata", "task-a"]);
        assert!(disk.list("/c/job").is_empty(), "no file lies directly in /c/job");
        disk.remove_tree("/c/job/chk-1");
        assert_eq!(disk.paths_under("/c"), vec!["/c/job/chk-10/_metadata"]);
    }

    #[test]
    fn damage_changes_the_bytes() {
        let mut disk = Disk::default();
        disk.write("/f", vec![0; 16]);
        let mut rng = Rng::new(3);
        assert!(disk.damage("/f", Damage::Corrupt, &mut rng));
        assert_ne!(disk.read("/f"), Some(&[0u8; 16][..]));
        assert!(disk.damage("/f", Damage::Truncate, &mut rng));
        assert!(disk.read("/f").is_some_and(|bytes| bytes.len() < 16));
        assert!(!disk.damage("/missing", Damage::Corrupt, &mut rng));
    }
}
