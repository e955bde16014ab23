//! The job's exception history, as Flink's REST `/jobs/:id/exceptions` shows it.
//!
//! Each failure that drives a failover (or fails the job) is one entry: when, what, which task
//! and where. The history keeps the newest [`EXCEPTION_HISTORY_SIZE`] entries (Flink's
//! `web.exception-history-size`), and each text is cut at [`EXCEPTION_TEXT_MAX_BYTES`], since the
//! text comes from TaskManagers.
//!
//! Invariants: at most [`EXCEPTION_HISTORY_SIZE`] entries, oldest first inside, timestamps
//! non-decreasing.

use crate::ids::ResourceId;
use std::collections::VecDeque;

/// Entries kept (Flink's `web.exception-history-size` default).
pub const EXCEPTION_HISTORY_SIZE: usize = 16;

/// Longest exception text kept, in bytes; longer texts are cut at a character boundary.
pub const EXCEPTION_TEXT_MAX_BYTES: usize = 16 * 1024;

/// One failure of the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionEntry {
    /// When the JobMaster handled the failure, in ms since the driver's epoch.
    pub timestamp_ms: u64,
    /// The failure's text.
    pub exception: String,
    /// The failed task as Flink names it (`vertex name (i/n)`), if one task failed.
    pub task_name: Option<String>,
    /// The TaskManager the task ran on, if it was deployed.
    pub location: Option<ResourceId>,
}

/// The newest failures of a job.
#[derive(Clone, Debug, Default)]
pub struct ExceptionHistory {
    entries: VecDeque<ExceptionEntry>,
}

impl ExceptionHistory {
    /// Records a failure, dropping the oldest entry when the history is full.
    pub fn push(&mut self, mut entry: ExceptionEntry) {
        if let Some(last) = self.entries.back() {
            debug_assert!(last.timestamp_ms <= entry.timestamp_ms, "time went backwards");
        }
        truncate(&mut entry.exception, EXCEPTION_TEXT_MAX_BYTES);
        if self.entries.len() == EXCEPTION_HISTORY_SIZE {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The entries, newest first (the REST order).
    pub fn newest_first(&self) -> impl Iterator<Item = &ExceptionEntry> + '_ {
        self.entries.iter().rev()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no failure was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Cuts `text` to at most `max_bytes`, at a character boundary.
pub(super) fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(timestamp_ms: u64) -> ExceptionEntry {
        ExceptionEntry { timestamp_ms, exception: format!("failure {timestamp_ms}"), task_name: None, location: None }
    }

    #[test]
    fn history_keeps_the_newest_sixteen_newest_first() {
        let mut history = ExceptionHistory::default();
        for ms in 0..40 {
            history.push(entry(ms));
        }
        assert_eq!(history.len(), EXCEPTION_HISTORY_SIZE);
        let times: Vec<u64> = history.newest_first().map(|entry| entry.timestamp_ms).collect();
        assert_eq!(times, (24..40).rev().collect::<Vec<_>>());
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        let mut history = ExceptionHistory::default();
        let mut long = entry(0);
        long.exception = "é".repeat(EXCEPTION_TEXT_MAX_BYTES);
        history.push(long);
        let kept = &history.newest_first().next().expect("one entry").exception;
        assert!(kept.len() <= EXCEPTION_TEXT_MAX_BYTES);
        assert_eq!(kept.len() % 2, 0, "only whole two-byte characters remain");
    }
}
