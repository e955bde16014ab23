//! Reference counts of the files in a job's `shared/` directory (Flink's SharedStateRegistry).
//!
//! An incremental checkpoint references immutable store files uploaded by it or by an earlier
//! checkpoint of the same store instance. A file may be deleted only once no retained checkpoint
//! references it: each retained checkpoint counts once for each shared file its task states
//! name. The counts are not persisted; a recovering coordinator rebuilds them from the retained
//! checkpoints' handles (which `_metadata` records).
//!
//! Files of aborted checkpoints are not counted and not deleted here: the task that uploaded
//! them references them again in its next checkpoint.

use super::CompletedCheckpoint;
use std::collections::BTreeMap;

/// Counts of shared files over the retained checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedFiles {
    /// File name → number of retained checkpoints referencing it (never zero).
    counts: BTreeMap<String, u32>,
}

impl SharedFiles {
    /// Counts the files `checkpoint` references (it was just retained).
    pub fn retain(&mut self, checkpoint: &CompletedCheckpoint) {
        for name in files_of(checkpoint) {
            *self.counts.entry(name.to_string()).or_insert(0) += 1;
        }
    }

    /// Uncounts the files of `checkpoint` (no longer retained); returns those no retained
    /// checkpoint references any more, sorted.
    pub fn release(&mut self, checkpoint: &CompletedCheckpoint) -> Vec<String> {
        let mut unreferenced = Vec::new();
        for name in files_of(checkpoint) {
            let Some(count) = self.counts.get_mut(name) else {
                unreachable!("shared file {name} of checkpoint {} was never counted", checkpoint.checkpoint)
            };
            *count -= 1;
            if *count == 0 {
                self.counts.remove(name);
                unreferenced.push(name.to_string());
            }
        }
        unreferenced
    }

    /// How many retained checkpoints reference `name`.
    pub fn count(&self, name: &str) -> u32 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Number of files referenced.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no file is referenced.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Whether the counts are exactly those of `retained` (the invariant check).
    pub fn matches<'a>(&self, retained: impl Iterator<Item = &'a CompletedCheckpoint>) -> bool {
        let mut fresh = SharedFiles::default();
        retained.for_each(|checkpoint| fresh.retain(checkpoint));
        fresh == *self
    }
}

/// The distinct shared files of a checkpoint's task states, in order (a checkpoint counts once
/// per file even if two of its tasks named it).
fn files_of(checkpoint: &CompletedCheckpoint) -> std::collections::BTreeSet<&str> {
    checkpoint.states.values().flat_map(|state| state.shared.iter().map(String::as_str)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::TaskStateHandle;
    use crate::dataflow::BarrierKind;
    use crate::ids::{CheckpointId, SubtaskIndex, VertexIndex};
    use crate::time::Time;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, VecDeque};

    fn checkpoint(id: u64, files: &BTreeSet<String>) -> CompletedCheckpoint {
        let handle =
            |shared: Vec<String>| TaskStateHandle { file: format!("task-{id}"), size_bytes: 1, crc32: 0, shared };
        let mut states = BTreeMap::new();
        // Two subtasks: the first holds every file, the second repeats the first half (a
        // checkpoint counts once per file regardless).
        let all: Vec<String> = files.iter().cloned().collect();
        let half = all[..all.len() / 2].to_vec();
        states.insert((VertexIndex(0), SubtaskIndex(0)), handle(all));
        states.insert((VertexIndex(0), SubtaskIndex(1)), handle(half));
        CompletedCheckpoint {
            checkpoint: CheckpointId(id),
            kind: BarrierKind::Checkpoint,
            location: format!("job/chk-{id}"),
            triggered_at: Time::ZERO,
            completed_at: Time::ZERO,
            states,
            finished: BTreeSet::new(),
        }
    }

    /// One step of a store: keep each file of the previous checkpoint or not (compaction drops
    /// files), and upload some new ones.
    fn steps() -> impl Strategy<Value = Vec<(Vec<bool>, u8)>> {
        prop::collection::vec((prop::collection::vec(any::<bool>(), 0..12), 0u8..4), 1..40)
    }

    proptest! {
        #[test]
        fn a_retained_checkpoint_never_loses_a_file_and_unreferenced_ones_go(
            steps in steps(),
            retained_max in 1usize..4,
            recover_at in 0usize..40,
        ) {
            let mut registry = SharedFiles::default();
            let mut retained: VecDeque<CompletedCheckpoint> = VecDeque::new();
            let (mut files, mut deleted, mut ever): (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) =
                Default::default();
            for (id, (keep, new)) in steps.iter().enumerate() {
                let old: Vec<String> = files.iter().cloned().collect();
                files = old.into_iter().zip(keep.iter().chain(std::iter::repeat(&true))).filter(|(_, k)| **k)
                    .map(|(name, _)| name).collect();
                files.extend((0..*new).map(|n| format!("{id}-{n}.sst")));
                prop_assert!(files.is_disjoint(&deleted), "a live store never references a deleted file");
                ever.extend(files.iter().cloned());
                let completed = checkpoint(id as u64 + 1, &files);
                registry.retain(&completed);
                retained.push_back(completed);
                while retained.len() > retained_max {
                    let gone = retained.pop_front().unwrap();
                    deleted.extend(registry.release(&gone));
                }
                if id == recover_at {
                    // A JobManager failover: the counts come back from the retained checkpoints.
                    let mut rebuilt = SharedFiles::default();
                    retained.iter().for_each(|checkpoint| rebuilt.retain(checkpoint));
                    prop_assert_eq!(&rebuilt, &registry);
                    registry = rebuilt;
                }
                let referenced: BTreeSet<String> = retained.iter().flat_map(files_of).map(str::to_string).collect();
                prop_assert!(referenced.is_disjoint(&deleted), "a retained checkpoint's file was deleted");
                let unreferenced: BTreeSet<String> = ever.difference(&referenced).cloned().collect();
                prop_assert_eq!(&unreferenced, &deleted, "every unreferenced file is deleted at once");
                prop_assert!(registry.matches(retained.iter()));
            }
            while let Some(gone) = retained.pop_front() {
                deleted.extend(registry.release(&gone));
            }
            prop_assert!(registry.is_empty());
            prop_assert_eq!(deleted, ever, "once nothing is retained every file is deleted");
        }
    }
}
