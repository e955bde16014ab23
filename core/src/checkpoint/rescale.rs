//! Which old subtasks' state a new subtask reads after a change of parallelism.
//!
//! Flink's rule (`StateAssignmentOperation`): keyed state moves by key group, so a new subtask
//! reads every old subtask's state whose key-group range (`KeyGroupRangeAssignment`, see
//! `dataflow::partition`) overlaps its own, and keeps only the groups in its range. Non-keyed
//! operator state travels in the same files: the items of old subtask `i` are dealt out evenly
//! among the new subtasks that read `i`'s file ([`share_of_items`]), so over all new subtasks
//! every item is restored exactly once. A new subtask `k` also reads old subtask `j`'s file when
//! `j mod p = k` (see [`reads`]). At the same parallelism a subtask reads only its own file. The
//! max parallelism (the number of key groups) never changes.

use crate::dataflow::partition::{key_group_range, subtask_of_key_group};
use std::ops::Range;

/// The new subtasks (of `new_parallelism`) whose key-group range overlaps old subtask
/// `old_subtask`'s (of `old_parallelism`); never empty. Both parallelisms are at least 1 and at
/// most `max_parallelism`.
pub fn readers_of(old_subtask: u32, old_parallelism: u32, new_parallelism: u32, max_parallelism: u32) -> Range<u32> {
    assert!(old_parallelism >= 1 && new_parallelism >= 1, "parallelism is at least 1");
    assert!(old_subtask < old_parallelism, "old subtask {old_subtask} of {old_parallelism}");
    assert!(old_parallelism.max(new_parallelism) <= max_parallelism, "parallelism above the max parallelism");
    let range = key_group_range(old_subtask, old_parallelism, max_parallelism);
    if range.is_empty() {
        return 0..0;
    }
    let first = subtask_of_key_group(range.start, new_parallelism, max_parallelism);
    let last = subtask_of_key_group(range.end - 1, new_parallelism, max_parallelism);
    first..last + 1
}

/// Whether new subtask `new_subtask` reads old subtask `old_subtask`'s state file: its key groups
/// overlap, or `old_subtask mod new_parallelism == new_subtask` (the subtask that cleans up what
/// old subtask `old_subtask` left behind, such as a file sink's uncommitted parts, must see what
/// its snapshot records).
pub fn reads(old_subtask: u32, old_parallelism: u32, new_subtask: u32, new_parallelism: u32, max: u32) -> bool {
    if old_parallelism == new_parallelism {
        return old_subtask == new_subtask;
    }
    old_subtask % new_parallelism == new_subtask
        || readers_of(old_subtask, old_parallelism, new_parallelism, max).contains(&new_subtask)
}

/// The positions, among `count` items of old subtask `old_subtask`'s file, that new subtask
/// `new_subtask` restores: an even share among the file's readers (empty if it is not one).
pub fn share_of_items(
    count: usize,
    old_subtask: u32,
    old_parallelism: u32,
    new_subtask: u32,
    new_parallelism: u32,
    max_parallelism: u32,
) -> Range<usize> {
    if old_parallelism == new_parallelism {
        return if old_subtask == new_subtask { 0..count } else { 0..0 };
    }
    let readers = readers_of(old_subtask, old_parallelism, new_parallelism, max_parallelism);
    if !readers.contains(&new_subtask) {
        return 0..0;
    }
    let (position, readers) = ((new_subtask - readers.start) as usize, readers.len());
    position * count / readers..(position + 1) * count / readers
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_to_three_readers_follow_the_key_group_ranges() {
        // 128 key groups: old [0,64) [64,128); new [0,43) [43,86) [86,128).
        assert_eq!(readers_of(0, 2, 3, 128), 0..2);
        assert_eq!(readers_of(1, 2, 3, 128), 1..3);
        assert_eq!(readers_of(2, 3, 2, 128), 1..2);
        assert!(reads(0, 3, 0, 2, 128) && !reads(0, 3, 1, 2, 128));
        // Old subtask 2 leaves part files that subtask 2 mod 2 = 0 cleans up: it reads the file.
        assert!(reads(2, 3, 0, 2, 128) && reads(2, 3, 1, 2, 128));
    }

    proptest! {
        #[test]
        fn every_item_is_restored_by_exactly_one_new_subtask(
            old in 1u32..12, new in 1u32..12, max in 12u32..200, count in 0usize..40,
        ) {
            for old_subtask in 0..old {
                let mut taken = vec![0u32; count];
                for new_subtask in 0..new {
                    let share = share_of_items(count, old_subtask, old, new_subtask, new, max);
                    if !share.is_empty() {
                        prop_assert!(reads(old_subtask, old, new_subtask, new, max));
                    }
                    for position in share {
                        taken[position] += 1;
                    }
                }
                prop_assert!(taken.iter().all(|&times| times == 1), "{taken:?}");
            }
        }

        #[test]
        fn every_key_group_is_read_from_the_file_that_holds_it(
            old in 1u32..12, new in 1u32..12, max in 12u32..200,
        ) {
            for group in 0..max {
                let owner = subtask_of_key_group(group, old, max);
                let reader = subtask_of_key_group(group, new, max);
                prop_assert!(reads(owner, old, reader, new, max));
            }
        }
    }
}
