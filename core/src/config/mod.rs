//! weir's configuration: Flink's key names and defaults, read from text into typed sections.
//!
//! This module owns turning configuration text into a checked [`Config`]; it reads no files
//! (the binaries do, and hand over the text). The flow is:
//!
//! 1. each source becomes a [`RawConfig`] (flattened key → value text): a `weir.toml` through
//!    [`RawConfig::from_toml_str`], `-D key=value` overrides through [`RawConfig::parse_override`]
//!    and [`RawConfig::set`]; sources are layered with [`RawConfig::merge`], the later winning;
//! 2. [`Config::from_raw`] types every known key, filling in defaults, and checks each value and
//!    the relations between keys. It refuses bad values with a [`ConfigError`] that names the key,
//!    the value and what was expected, and reports unknown or renamed keys as warnings (Flink
//!    ignores unknown keys, so weir does not refuse them).
//!
//! [`known_keys`] is the single table of key names, old names, defaults and descriptions: the
//! defaults in effect are parsed from it, and [`Config::entries`] lists the same keys.
//! The value syntax (durations, sizes) lives in [`units`] for other text formats to share.
//!
//! Invariants of a [`Config`]: every duration and count is within the range its key documents,
//! `heartbeat.timeout > heartbeat.interval`, `high-availability.lease-duration >
//! high-availability.renew-interval`, and the keys a chosen backend or strategy needs are set.

mod checkpoint;
mod cluster;
mod error;
mod ha;
mod keys;
mod raw;
mod read;
mod restart;
mod state;
pub mod units;

#[cfg(test)]
mod tests;

pub use checkpoint::{CHECKPOINT_TIME_MIN, CheckpointConfig, CheckpointRetention, CheckpointingMode};
pub use cluster::{
    HIDDEN_VALUE, HeartbeatConfig, JOURNAL_SEGMENT_BYTES_MIN, JOURNAL_SEGMENTS_MAX, JournalConfig,
    MAX_PARALLELISM_LIMIT, PipelineConfig, ResourceManagerConfig, RestConfig, RpcConfig, SEGMENT_BYTES_MIN,
    SecurityConfig, TaskManagerConfig,
};
pub use error::ConfigError;
pub use ha::{HaConfig, HaType};
pub use keys::{KeyDoc, UNSET, ValueKind, known_keys};
pub use raw::{LIST_SEPARATOR, RawConfig};
pub use restart::{FailoverStrategy, RestartStrategy};
pub use state::{StateBackendConfig, StateBackendKind};

use read::Reader;
use std::fmt::Display;

/// The whole typed configuration of a weir cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The JobManager's RPC endpoint.
    pub rpc: RpcConfig,
    /// The REST endpoint.
    pub rest: RestConfig,
    /// Shared-secret authentication.
    pub security: SecurityConfig,
    /// A daemon's journal of inputs.
    pub journal: JournalConfig,
    /// What one TaskManager offers.
    pub task_manager: TaskManagerConfig,
    /// Defaults for jobs.
    pub pipeline: PipelineConfig,
    /// Liveness checks between processes.
    pub heartbeat: HeartbeatConfig,
    /// Slot request and idle TaskManager timeouts.
    pub resource_manager: ResourceManagerConfig,
    /// Checkpointing of jobs.
    pub checkpoint: CheckpointConfig,
    /// Where keyed state lives.
    pub state_backend: StateBackendConfig,
    /// Whether and when a failed job restarts.
    pub restart_strategy: RestartStrategy,
    /// What restarts after a task failure.
    pub failover_strategy: FailoverStrategy,
    /// High availability of the JobManager.
    pub ha: HaConfig,
    /// Keys that were ignored or renamed, and settings without effect, for the operator to see.
    pub warnings: Vec<String>,
}

impl Config {
    /// Types and checks `raw`; unset keys take Flink's defaults (weir's for weir's own keys).
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let reader = Reader::new(raw);
        let checkpoint = CheckpointConfig::read(&reader)?;
        let mut warnings = keys::key_warnings(raw);
        warnings.extend(checkpoint.warnings());
        let state_backend = StateBackendConfig::read(&reader)?;
        if state_backend.incremental && state_backend.kind != state::StateBackendKind::RocksDb {
            warnings.push(
                "`execution.checkpointing.incremental` applies to the rocksdb state backend only: with hashmap \
                 every checkpoint is a full snapshot"
                    .to_string(),
            );
        }
        Ok(Config {
            rpc: RpcConfig::read(&reader)?,
            rest: RestConfig::read(&reader)?,
            security: SecurityConfig::read(&reader)?,
            task_manager: TaskManagerConfig::read(&reader)?,
            journal: JournalConfig::read(&reader)?,
            pipeline: PipelineConfig::read(&reader)?,
            heartbeat: HeartbeatConfig::read(&reader)?,
            resource_manager: ResourceManagerConfig::read(&reader)?,
            restart_strategy: RestartStrategy::read(&reader, checkpoint.enabled())?,
            failover_strategy: FailoverStrategy::read(&reader)?,
            ha: HaConfig::read(&reader)?,
            state_backend,
            checkpoint,
            warnings,
        })
    }

    /// Every key in effect with its value as text, sorted by key, for `/jobmanager/config`.
    ///
    /// Values print as the key table's defaults do (`10 s`, `32 kb`); unset keys print as
    /// [`UNSET`]; `security.token` prints as [`HIDDEN_VALUE`]. Parameters of restart strategies
    /// other than the chosen one are left out, as they have no effect.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut listing = Listing { entries: Vec::new() };
        self.rpc.list(&mut listing);
        self.rest.list(&mut listing);
        self.security.list(&mut listing);
        self.task_manager.list(&mut listing);
        self.journal.list(&mut listing);
        self.pipeline.list(&mut listing);
        self.heartbeat.list(&mut listing);
        self.resource_manager.list(&mut listing);
        self.checkpoint.list(&mut listing);
        self.restart_strategy.list(&mut listing);
        self.failover_strategy.list(&mut listing);
        self.ha.list(&mut listing);
        self.state_backend.list(&mut listing);
        listing.entries.sort();
        debug_assert!(listing.entries.windows(2).all(|pair| pair[0].0 < pair[1].0));
        listing.entries
    }
}

impl Default for Config {
    /// The configuration of an empty [`RawConfig`]: every key at its default.
    fn default() -> Config {
        match Config::from_raw(&RawConfig::new()) {
            Ok(config) => config,
            Err(error) => panic!("the default configuration is invalid: {error}"),
        }
    }
}

/// Collects `(key, value text)` pairs for [`Config::entries`].
struct Listing {
    entries: Vec<(String, String)>,
}

impl Listing {
    fn put(&mut self, key: &str, value: impl Display) {
        debug_assert!(keys::key_doc(key).is_some(), "listed key `{key}` is not in the key table");
        self.entries.push((key.to_string(), value.to_string()));
    }

    fn put_under(&mut self, prefix: &str, name: &str, value: impl Display) {
        self.put(&format!("{prefix}.{name}"), value);
    }

    fn put_optional(&mut self, key: &str, value: Option<impl Display>) {
        match value {
            Some(value) => self.put(key, value),
            None => self.put(key, UNSET),
        }
    }
}
