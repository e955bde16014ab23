//! The TaskExecutor's settings, taken from the cluster [`Config`] and Flink's fixed defaults.

use crate::config::Config;
use crate::time::Duration;
use thiserror::Error;

/// Most slots one TaskExecutor manages; the slot table is a vector of this length at most.
pub const SLOTS_MAX: u32 = 1024;

/// Flink's `cluster.registration.initial-timeout`: the first registration attempt's timeout.
pub const REGISTRATION_TIMEOUT_INITIAL: Duration = Duration::from_millis(100);
/// Flink's `cluster.registration.max-timeout`: the doubling timeout stops growing here.
pub const REGISTRATION_TIMEOUT_MAX: Duration = Duration::from_secs(30);
/// Flink's `cluster.registration.refused-registration-delay`: the pause after a refusal.
pub const REGISTRATION_REFUSED_DELAY: Duration = Duration::from_secs(10);
/// Longest wait before an unanswered slot offer is sent again.
pub const OFFER_RETRY_INTERVAL_MAX: Duration = Duration::from_secs(1);
/// Flink's `taskmanager.slot.timeout`: a slot allocated but never accepted is freed after this.
pub const SLOT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a TaskExecutor needs to know, in typed units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskExecutorConfig {
    /// Slots of this TaskManager (`taskmanager.numberOfTaskSlots`), `1..=SLOTS_MAX`.
    pub slots: u32,
    /// Managed memory of this TaskManager, split evenly across its slots.
    pub managed_memory_bytes: u64,
    /// The interval at which the ResourceManager and JobMasters send heartbeats.
    pub heartbeat_interval: Duration,
    /// Silence after which the ResourceManager or a JobMaster is considered lost.
    pub heartbeat_timeout: Duration,
    /// Timeout of the first registration attempt; each unanswered attempt doubles it.
    pub registration_timeout_initial: Duration,
    /// Largest registration attempt timeout.
    pub registration_timeout_max: Duration,
    /// Wait after the ResourceManager refused a registration.
    pub registration_refused_delay: Duration,
    /// Wait before an unanswered slot offer is sent again.
    pub offer_retry_interval: Duration,
    /// A slot allocated but not accepted by its JobMaster within this time is freed.
    pub slot_timeout: Duration,
    /// Where this TaskManager accepts data channels (`host:port`), told to JobMasters with its
    /// slot offers; empty where there is no network (the simulator, the embedded cluster).
    pub data_address: String,
}

/// Why a configuration cannot run a TaskExecutor.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TaskExecutorConfigError {
    /// `taskmanager.numberOfTaskSlots` is above what one TaskExecutor manages.
    #[error("`taskmanager.numberOfTaskSlots` is {slots}; expected at most {SLOTS_MAX} slots per TaskManager")]
    TooManySlots {
        /// The configured number.
        slots: u32,
    },
}

impl TaskExecutorConfig {
    /// Reads the TaskExecutor's settings from `config`; the registration and slot timeouts
    /// take Flink's defaults, as weir has no keys for them.
    pub fn from_config(config: &Config) -> Result<TaskExecutorConfig, TaskExecutorConfigError> {
        let slots = config.task_manager.slots;
        if slots > SLOTS_MAX {
            return Err(TaskExecutorConfigError::TooManySlots { slots });
        }
        let heartbeat_interval = config.heartbeat.interval;
        let result = TaskExecutorConfig {
            slots,
            managed_memory_bytes: config.task_manager.managed_memory_bytes,
            heartbeat_interval,
            heartbeat_timeout: config.heartbeat.timeout,
            registration_timeout_initial: REGISTRATION_TIMEOUT_INITIAL,
            registration_timeout_max: REGISTRATION_TIMEOUT_MAX,
            registration_refused_delay: REGISTRATION_REFUSED_DELAY,
            offer_retry_interval: heartbeat_interval.min(OFFER_RETRY_INTERVAL_MAX),
            slot_timeout: SLOT_TIMEOUT,
            data_address: String::new(),
        };
        debug_assert!(result.check().is_ok(), "{:?}", result.check());
        Ok(result)
    }

    /// Checks the relations the TaskExecutor relies on; a violation is a bug of whoever built it.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.slots == 0 || self.slots > SLOTS_MAX {
            return Err(format!("slots {} outside 1..={SLOTS_MAX}", self.slots));
        }
        let positive = [
            ("heartbeat_timeout", self.heartbeat_timeout),
            ("registration_timeout_initial", self.registration_timeout_initial),
            ("offer_retry_interval", self.offer_retry_interval),
            ("slot_timeout", self.slot_timeout),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, span)| *span == Duration::ZERO) {
            return Err(format!("{name} is zero"));
        }
        if self.registration_timeout_max < self.registration_timeout_initial {
            return Err("registration_timeout_max is below registration_timeout_initial".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    #[test]
    fn defaults_follow_flinks_registration_and_slot_timeouts() {
        let config = TaskExecutorConfig::from_config(&Config::default()).unwrap();
        assert_eq!(config.slots, 1);
        assert_eq!(config.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(config.heartbeat_timeout, Duration::from_secs(50));
        assert_eq!(config.registration_timeout_initial, Duration::from_millis(100));
        assert_eq!(config.registration_timeout_max, Duration::from_secs(30));
        assert_eq!(config.registration_refused_delay, Duration::from_secs(10));
        assert_eq!(config.offer_retry_interval, Duration::from_secs(1));
        assert_eq!(config.slot_timeout, Duration::from_secs(10));
    }

    #[test]
    fn offer_retry_follows_a_short_heartbeat_interval() {
        let mut raw = RawConfig::new();
        raw.set("heartbeat.interval", "200 ms");
        raw.set("taskmanager.numberOfTaskSlots", "4");
        let config = TaskExecutorConfig::from_config(&Config::from_raw(&raw).unwrap()).unwrap();
        assert_eq!(config.offer_retry_interval, Duration::from_millis(200));
        assert_eq!(config.slots, 4);
    }

    #[test]
    fn too_many_slots_are_refused_with_the_key_name() {
        let mut raw = RawConfig::new();
        raw.set("taskmanager.numberOfTaskSlots", "5000");
        let error = TaskExecutorConfig::from_config(&Config::from_raw(&raw).unwrap()).unwrap_err();
        assert_eq!(error, TaskExecutorConfigError::TooManySlots { slots: 5000 });
        assert!(error.to_string().contains("taskmanager.numberOfTaskSlots"));
    }
}
