//! The checkpointing section (`execution.checkpointing.*` and its Flink 1 names).

use super::read::{Reader, boolean, choice, duration, text, whole};
use super::{ConfigError, Listing};
use crate::time::Duration;

/// The guarantee checkpoints give (`execution.checkpointing.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointingMode {
    /// Barriers are aligned: every record is reflected in state exactly once.
    ExactlyOnce,
    /// Barriers are not aligned: after a restore, some records may be reflected twice.
    AtLeastOnce,
}

impl CheckpointingMode {
    const NAMES: [(&str, CheckpointingMode); 2] =
        [("EXACTLY_ONCE", CheckpointingMode::ExactlyOnce), ("AT_LEAST_ONCE", CheckpointingMode::AtLeastOnce)];

    /// The mode's name as Flink spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointingMode::ExactlyOnce => "EXACTLY_ONCE",
            CheckpointingMode::AtLeastOnce => "AT_LEAST_ONCE",
        }
    }
}

/// What happens to the latest checkpoint when its job is cancelled
/// (`execution.checkpointing.externalized-checkpoint-retention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointRetention {
    /// Checkpoints are deleted when the job is cancelled (kept when it fails).
    DeleteOnCancellation,
    /// Checkpoints are kept when the job is cancelled.
    RetainOnCancellation,
    /// Checkpoints are not kept beyond the job.
    NoExternalizedCheckpoints,
}

impl CheckpointRetention {
    const NAMES: [(&str, CheckpointRetention); 3] = [
        ("DELETE_ON_CANCELLATION", CheckpointRetention::DeleteOnCancellation),
        ("RETAIN_ON_CANCELLATION", CheckpointRetention::RetainOnCancellation),
        ("NO_EXTERNALIZED_CHECKPOINTS", CheckpointRetention::NoExternalizedCheckpoints),
    ];

    /// The retention's name as Flink spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointRetention::DeleteOnCancellation => "DELETE_ON_CANCELLATION",
            CheckpointRetention::RetainOnCancellation => "RETAIN_ON_CANCELLATION",
            CheckpointRetention::NoExternalizedCheckpoints => "NO_EXTERNALIZED_CHECKPOINTS",
        }
    }
}

/// Shortest checkpoint interval and timeout, as Flink's `MINIMAL_CHECKPOINT_TIME`.
pub const CHECKPOINT_TIME_MIN: Duration = Duration::from_millis(10);

/// Checkpointing of jobs (`execution.checkpointing.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Time between checkpoint triggers; `None` turns checkpointing off.
    pub interval: Option<Duration>,
    /// A checkpoint not completed within this time is aborted.
    pub timeout: Duration,
    /// Shortest time between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    /// Most checkpoints in progress at once, at least 1.
    pub max_concurrent: u32,
    /// Consecutive counted failures tolerated before the job fails.
    pub tolerable_failed: u32,
    /// Completed checkpoints kept, at least 1.
    pub retained: u32,
    /// The guarantee checkpoints give.
    pub mode: CheckpointingMode,
    /// Whether barriers overtake buffered records (exactly-once only).
    pub unaligned: bool,
    /// With `unaligned`: how long to try aligned first; zero starts unaligned.
    pub aligned_checkpoint_timeout: Duration,
    /// What happens to the latest checkpoint on cancellation.
    pub retention: CheckpointRetention,
    /// Directory for checkpoint data and metadata; `None` when not configured.
    pub dir: Option<String>,
    /// Default directory for savepoints; `None` when not configured.
    pub savepoint_dir: Option<String>,
}

impl CheckpointConfig {
    /// Whether checkpoints are taken at all.
    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    pub(super) fn read(reader: &Reader) -> Result<CheckpointConfig, ConfigError> {
        let config = CheckpointConfig {
            interval: reader.optional("execution.checkpointing.interval", duration)?,
            timeout: reader.value("execution.checkpointing.timeout", duration)?,
            min_pause: reader.value("execution.checkpointing.min-pause", duration)?,
            max_concurrent: reader.value("execution.checkpointing.max-concurrent-checkpoints", whole(1, u32::MAX))?,
            tolerable_failed: reader
                .value("execution.checkpointing.tolerable-failed-checkpoints", whole(0, u32::MAX))?,
            retained: reader.value("execution.checkpointing.num-retained", whole(1, u32::MAX))?,
            mode: reader.value("execution.checkpointing.mode", choice(&CheckpointingMode::NAMES))?,
            unaligned: reader.value("execution.checkpointing.unaligned.enabled", boolean)?,
            aligned_checkpoint_timeout: reader.value("execution.checkpointing.aligned-checkpoint-timeout", duration)?,
            retention: reader.value(
                "execution.checkpointing.externalized-checkpoint-retention",
                choice(&CheckpointRetention::NAMES),
            )?,
            dir: reader.optional("execution.checkpointing.dir", text)?,
            savepoint_dir: reader.optional("execution.checkpointing.savepoint-dir", text)?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let expected = format!("a duration of at least {CHECKPOINT_TIME_MIN}");
        if let Some(interval) = self.interval.filter(|interval| *interval < CHECKPOINT_TIME_MIN) {
            let key = "execution.checkpointing.interval";
            return Err(ConfigError::invalid(key, interval.to_string(), expected));
        }
        if self.timeout < CHECKPOINT_TIME_MIN {
            let key = "execution.checkpointing.timeout";
            return Err(ConfigError::invalid(key, self.timeout.to_string(), expected));
        }
        Ok(())
    }

    /// Warnings about settings that have no effect.
    pub(super) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.unaligned && self.mode == CheckpointingMode::AtLeastOnce {
            warnings
                .push("`execution.checkpointing.unaligned.enabled` has no effect in AT_LEAST_ONCE mode".to_string());
        }
        warnings
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put_optional("execution.checkpointing.interval", self.interval);
        listing.put("execution.checkpointing.timeout", self.timeout);
        listing.put("execution.checkpointing.min-pause", self.min_pause);
        listing.put("execution.checkpointing.max-concurrent-checkpoints", self.max_concurrent);
        listing.put("execution.checkpointing.tolerable-failed-checkpoints", self.tolerable_failed);
        listing.put("execution.checkpointing.num-retained", self.retained);
        listing.put("execution.checkpointing.mode", self.mode.as_str());
        listing.put("execution.checkpointing.unaligned.enabled", self.unaligned);
        listing.put("execution.checkpointing.aligned-checkpoint-timeout", self.aligned_checkpoint_timeout);
        listing.put("execution.checkpointing.externalized-checkpoint-retention", self.retention.as_str());
        listing.put_optional("execution.checkpointing.dir", self.dir.as_ref());
        listing.put_optional("execution.checkpointing.savepoint-dir", self.savepoint_dir.as_ref());
    }
}
