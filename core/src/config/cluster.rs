//! Sections for the cluster's processes: endpoints, TaskManager resources, pipeline defaults,
//! heartbeats and resource manager timeouts.

use super::read::{Reader, boolean, duration, size, text, whole};
use super::units::format_size;
use super::{ConfigError, Listing};
use crate::time::Duration;

/// The JobManager's RPC endpoint (`jobmanager.rpc.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcConfig {
    /// Host name that TaskManagers use to reach the JobManager.
    pub address: String,
    /// Port of the RPC endpoint (0 lets the system pick one).
    pub port: u16,
}

/// The REST endpoint (`rest.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestConfig {
    /// Host name that clients use to reach the endpoint.
    pub address: String,
    /// Address the endpoint binds; loopback unless configured.
    pub bind_address: String,
    /// Port of the endpoint (0 lets the system pick one).
    pub port: u16,
}

/// Shared-secret authentication (`security.*`, weir's own keys).
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Token every cluster process and client must present; `None` turns the check off.
    pub token: Option<String>,
}

/// What one TaskManager offers (`taskmanager.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskManagerConfig {
    /// Slots offered to the ResourceManager (`taskmanager.numberOfTaskSlots`), at least 1.
    pub slots: u32,
    /// Managed memory in bytes, split evenly between the slots.
    pub managed_memory_bytes: u64,
    /// Size of a network buffer in bytes: a power of two, at least [`SEGMENT_BYTES_MIN`].
    pub segment_bytes: u64,
    /// Exclusive buffers of each input channel.
    pub buffers_per_channel: u32,
    /// Buffers each input gate shares among its channels.
    pub floating_buffers_per_gate: u32,
    /// Host name others reach this TaskManager at (`taskmanager.host`).
    pub host: String,
    /// RPC port (`taskmanager.rpc.port`); 0 picks a free one.
    pub rpc_port: u16,
    /// Data channel port (`taskmanager.data.port`); 0 picks a free one.
    pub data_port: u16,
    /// A fixed resource id (`taskmanager.resource-id`), when configured.
    pub resource_id: Option<String>,
    /// Port of the Prometheus `/metrics` endpoint (`metrics.port`); 0 picks a free one.
    pub metrics_port: u16,
}

/// Smallest accepted network buffer, as Flink's smallest memory page.
pub const SEGMENT_BYTES_MIN: u64 = 4 * 1024;

/// Defaults for jobs (`parallelism.default`, `pipeline.*`, `execution.buffer-timeout.interval`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Parallelism of operators that do not set one, at least 1.
    pub parallelism_default: u32,
    /// Number of key groups; `None` derives it from the parallelism.
    pub max_parallelism: Option<u32>,
    /// Whether forward-connected operators are chained into one task.
    pub operator_chaining: bool,
    /// Time between periodic watermarks; zero turns them off.
    pub auto_watermark_interval: Duration,
    /// Longest time a partly filled network buffer waits; zero flushes after every record.
    pub buffer_timeout: Duration,
}

/// Largest max-parallelism (number of key groups), as Flink's `UPPER_BOUND_MAX_PARALLELISM`.
pub const MAX_PARALLELISM_LIMIT: u32 = 1 << 15;

/// Liveness checks between the cluster's processes (`heartbeat.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Time between heartbeat requests; more than zero.
    pub interval: Duration,
    /// Silence after which a target is declared dead; longer than `interval`.
    pub timeout: Duration,
    /// Consecutive failed heartbeat RPCs that declare a target dead; `None` disables the rule.
    pub rpc_failure_threshold: Option<u32>,
}

/// Slot and TaskManager timeouts (`slot.request.timeout`, `resourcemanager.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceManagerConfig {
    /// A JobMaster's slot request not fulfilled within this time fails.
    pub slot_request_timeout: Duration,
    /// An idle TaskManager is released after this long.
    pub task_manager_timeout: Duration,
}

impl RpcConfig {
    pub(super) fn read(reader: &Reader) -> Result<RpcConfig, ConfigError> {
        Ok(RpcConfig {
            address: reader.value("jobmanager.rpc.address", text)?,
            port: reader.value("jobmanager.rpc.port", whole(0, u16::MAX))?,
        })
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("jobmanager.rpc.address", &self.address);
        listing.put("jobmanager.rpc.port", self.port);
    }
}

impl RestConfig {
    pub(super) fn read(reader: &Reader) -> Result<RestConfig, ConfigError> {
        Ok(RestConfig {
            address: reader.value("rest.address", text)?,
            bind_address: reader.value("rest.bind-address", text)?,
            port: reader.value("rest.port", whole(0, u16::MAX))?,
        })
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("rest.address", &self.address);
        listing.put("rest.bind-address", &self.bind_address);
        listing.put("rest.port", self.port);
    }
}

/// What listings print instead of a secret, as Flink hides sensitive values.
pub const HIDDEN_VALUE: &str = "******";

impl SecurityConfig {
    pub(super) fn read(reader: &Reader) -> Result<SecurityConfig, ConfigError> {
        Ok(SecurityConfig { token: reader.optional("security.token", text)? })
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put_optional("security.token", self.token.as_ref().map(|_| HIDDEN_VALUE));
    }
}

impl std::fmt::Debug for SecurityConfig {
    /// Hides the token, so a logged configuration does not leak it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.as_ref().map(|_| HIDDEN_VALUE);
        f.debug_struct("SecurityConfig").field("token", &token).finish()
    }
}

/// A daemon's journal of its state machine's inputs (`journal.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// Whether to keep one (`journal.enabled`).
    pub enabled: bool,
    /// Its directory (`journal.dir`); `None`: the daemon's data directory.
    pub dir: Option<String>,
    /// Segment size (`journal.segment-size`), at least [`JOURNAL_SEGMENT_BYTES_MIN`].
    pub segment_bytes: u64,
    /// Segments kept (`journal.segments`), 1 to [`JOURNAL_SEGMENTS_MAX`].
    pub segments: u32,
    /// Longest a record waits unwritten (`journal.flush-interval`), above zero.
    pub flush_interval: Duration,
}

/// Smallest journal segment.
pub const JOURNAL_SEGMENT_BYTES_MIN: u64 = 1024;
/// Most journal segments kept.
pub const JOURNAL_SEGMENTS_MAX: u32 = 10_000;

impl JournalConfig {
    pub(super) fn read(reader: &Reader) -> Result<JournalConfig, ConfigError> {
        let config = JournalConfig {
            enabled: reader.value("journal.enabled", boolean)?,
            dir: reader.optional("journal.dir", text)?,
            segment_bytes: reader.value("journal.segment-size", size)?,
            segments: reader.value("journal.segments", whole(1, JOURNAL_SEGMENTS_MAX))?,
            flush_interval: reader.value("journal.flush-interval", duration)?,
        };
        if config.segment_bytes < JOURNAL_SEGMENT_BYTES_MIN {
            let size = format_size(config.segment_bytes);
            return Err(ConfigError::invalid("journal.segment-size", size, "at least 1 kb"));
        }
        if config.flush_interval.as_micros() == 0 {
            return Err(ConfigError::invalid("journal.flush-interval", "0", "a duration above zero"));
        }
        Ok(config)
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("journal.enabled", self.enabled);
        listing.put_optional("journal.dir", self.dir.as_ref());
        listing.put("journal.segment-size", format_size(self.segment_bytes));
        listing.put("journal.segments", self.segments);
        listing.put("journal.flush-interval", self.flush_interval);
    }
}

impl TaskManagerConfig {
    pub(super) fn read(reader: &Reader) -> Result<TaskManagerConfig, ConfigError> {
        let config = TaskManagerConfig {
            slots: reader.value("taskmanager.numberOfTaskSlots", whole(1, u32::MAX))?,
            managed_memory_bytes: reader.value("taskmanager.memory.managed.size", size)?,
            segment_bytes: reader.value("taskmanager.memory.segment-size", size)?,
            buffers_per_channel: reader.value("taskmanager.network.memory.buffers-per-channel", whole(0, u32::MAX))?,
            floating_buffers_per_gate: reader
                .value("taskmanager.network.memory.floating-buffers-per-gate", whole(0, u32::MAX))?,
            host: reader.value("taskmanager.host", text)?,
            rpc_port: reader.value("taskmanager.rpc.port", whole(0, u16::MAX))?,
            data_port: reader.value("taskmanager.data.port", whole(0, u16::MAX))?,
            resource_id: reader.optional("taskmanager.resource-id", text)?,
            metrics_port: reader.value("metrics.port", whole(0, u16::MAX))?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.segment_bytes < SEGMENT_BYTES_MIN || !self.segment_bytes.is_power_of_two() {
            return Err(ConfigError::invalid(
                "taskmanager.memory.segment-size",
                format_size(self.segment_bytes),
                "a power of two of at least 4 kb",
            ));
        }
        if self.buffers_per_channel == 0 && self.floating_buffers_per_gate == 0 {
            return Err(ConfigError::invalid(
                "taskmanager.network.memory.floating-buffers-per-gate",
                "0",
                "at least 1 when `taskmanager.network.memory.buffers-per-channel` is 0 \
                 (a channel without buffers never receives)",
            ));
        }
        Ok(())
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("taskmanager.numberOfTaskSlots", self.slots);
        listing.put("taskmanager.memory.managed.size", format_size(self.managed_memory_bytes));
        listing.put("taskmanager.memory.segment-size", format_size(self.segment_bytes));
        listing.put("taskmanager.network.memory.buffers-per-channel", self.buffers_per_channel);
        listing.put("taskmanager.network.memory.floating-buffers-per-gate", self.floating_buffers_per_gate);
        listing.put("taskmanager.host", &self.host);
        listing.put("taskmanager.rpc.port", self.rpc_port);
        listing.put("taskmanager.data.port", self.data_port);
        listing.put_optional("taskmanager.resource-id", self.resource_id.as_ref());
        listing.put("metrics.port", self.metrics_port);
    }
}

impl PipelineConfig {
    pub(super) fn read(reader: &Reader) -> Result<PipelineConfig, ConfigError> {
        let config = PipelineConfig {
            parallelism_default: reader.value("parallelism.default", whole(1, u32::MAX))?,
            max_parallelism: reader.optional("pipeline.max-parallelism", whole(1, MAX_PARALLELISM_LIMIT))?,
            operator_chaining: reader.value("pipeline.operator-chaining.enabled", boolean)?,
            auto_watermark_interval: reader.value("pipeline.auto-watermark-interval", duration)?,
            buffer_timeout: reader.value("execution.buffer-timeout.interval", duration)?,
        };
        let too_small = config.max_parallelism.filter(|max| *max < config.parallelism_default);
        if let Some(max_parallelism) = too_small {
            return Err(ConfigError::invalid(
                "pipeline.max-parallelism",
                max_parallelism.to_string(),
                format!(
                    "at least `parallelism.default` ({}), since a job cannot have more subtasks \
                     than key groups",
                    config.parallelism_default
                ),
            ));
        }
        Ok(config)
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("parallelism.default", self.parallelism_default);
        listing.put_optional("pipeline.max-parallelism", self.max_parallelism);
        listing.put("pipeline.operator-chaining.enabled", self.operator_chaining);
        listing.put("pipeline.auto-watermark-interval", self.auto_watermark_interval);
        listing.put("execution.buffer-timeout.interval", self.buffer_timeout);
    }
}

impl HeartbeatConfig {
    pub(super) fn read(reader: &Reader) -> Result<HeartbeatConfig, ConfigError> {
        let interval = reader.value("heartbeat.interval", duration)?;
        let timeout = reader.value("heartbeat.timeout", duration)?;
        let rpc_failure_threshold = reader.value("heartbeat.rpc-failure-threshold", rpc_failure_threshold)?;
        if interval == Duration::ZERO {
            return Err(ConfigError::invalid("heartbeat.interval", "0 ms", "a duration above zero"));
        }
        if timeout <= interval {
            return Err(ConfigError::invalid(
                "heartbeat.timeout",
                timeout.to_string(),
                format!("a duration longer than `heartbeat.interval` ({interval})"),
            ));
        }
        Ok(HeartbeatConfig { interval, timeout, rpc_failure_threshold })
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("heartbeat.interval", self.interval);
        listing.put("heartbeat.timeout", self.timeout);
        let threshold = self.rpc_failure_threshold.map_or(-1, i64::from);
        listing.put("heartbeat.rpc-failure-threshold", threshold);
    }
}

/// Parses a failed-RPC count of at least 1, or -1 (no such rule).
fn rpc_failure_threshold(text: &str) -> Result<Option<u32>, String> {
    let expected = || "a whole number of at least 1, or -1 to disable the rule".to_string();
    match whole(-1, i32::MAX)(text) {
        Ok(-1) => Ok(None),
        Ok(count) => u32::try_from(count).ok().filter(|count| *count >= 1).map(Some).ok_or_else(expected),
        Err(_) => Err(expected()),
    }
}

impl ResourceManagerConfig {
    pub(super) fn read(reader: &Reader) -> Result<ResourceManagerConfig, ConfigError> {
        Ok(ResourceManagerConfig {
            slot_request_timeout: reader.value("slot.request.timeout", duration)?,
            task_manager_timeout: reader.value("resourcemanager.taskmanager-timeout", duration)?,
        })
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("slot.request.timeout", self.slot_request_timeout);
        listing.put("resourcemanager.taskmanager-timeout", self.task_manager_timeout);
    }
}
