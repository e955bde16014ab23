//! The high-availability section (`high-availability.*`).
//!
//! Flink's backends are ZooKeeper and Kubernetes; weir's are a lease file in the storage
//! directory (`file`) and etcd (`etcd`). The lease timing keys are weir's own, with the values of
//! Flink's Kubernetes lease (15 s lease, 5 s retry period).

use super::read::{Reader, choice, duration, list, text};
use super::{ConfigError, Listing};
use crate::time::Duration;

/// Which leader election and recovery store the cluster uses (`high-availability.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaType {
    /// No high availability: a lost JobManager loses its jobs.
    None,
    /// A lease file in `high-availability.storageDir` (a shared file system).
    File,
    /// An etcd cluster at `high-availability.etcd.endpoints`.
    Etcd,
}

impl HaType {
    const NAMES: [(&str, HaType); 3] = [("none", HaType::None), ("file", HaType::File), ("etcd", HaType::Etcd)];

    /// The type's name as the key spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            HaType::None => "none",
            HaType::File => "file",
            HaType::Etcd => "etcd",
        }
    }
}

/// Parses `high-availability.type`, saying so when a Flink backend weir lacks is named.
fn ha_type(value: &str) -> Result<HaType, String> {
    choice(&HaType::NAMES)(value).map_err(|expected| {
        let name = value.trim().to_ascii_lowercase();
        if name == "zookeeper" || name == "kubernetes" {
            format!("{expected} (weir has no {name} backend; `etcd` plays its part)")
        } else {
            expected
        }
    })
}

/// High availability of the JobManager (`high-availability.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaConfig {
    /// Which backend, if any.
    pub kind: HaType,
    /// Directory for job graphs and checkpoint metadata; required unless `kind` is `None`.
    pub storage_dir: Option<String>,
    /// Name of this cluster in the store.
    pub cluster_id: String,
    /// etcd endpoints; at least one when `kind` is `Etcd`.
    pub etcd_endpoints: Vec<String>,
    /// How long a leader lease lasts without renewal (weir's key).
    pub lease_duration: Duration,
    /// How often the leader renews its lease; shorter than `lease_duration` (weir's key).
    pub renew_interval: Duration,
    /// How long before its lease could expire a leader stops acting: covers clock drift between
    /// the leader and the store (weir's key). `lease_duration - lease_margin` must exceed
    /// `renew_interval`, so a leader renews before it would fence itself.
    pub lease_margin: Duration,
}

impl HaConfig {
    pub(super) fn read(reader: &Reader) -> Result<HaConfig, ConfigError> {
        let config = HaConfig {
            kind: reader.value("high-availability.type", ha_type)?,
            storage_dir: reader.optional("high-availability.storageDir", text)?,
            cluster_id: reader.value("high-availability.cluster-id", text)?,
            etcd_endpoints: reader.optional("high-availability.etcd.endpoints", list)?.unwrap_or_default(),
            lease_duration: reader.value("high-availability.lease-duration", duration)?,
            renew_interval: reader.value("high-availability.renew-interval", duration)?,
            lease_margin: reader.value("high-availability.lease-margin", duration)?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let needed_by = format!("required when `high-availability.type` is `{}`", self.kind.as_str());
        if self.kind != HaType::None && self.storage_dir.is_none() {
            let key = "high-availability.storageDir".to_string();
            return Err(ConfigError::MissingKey { key, reason: needed_by });
        }
        if self.kind == HaType::Etcd && self.etcd_endpoints.is_empty() {
            let key = "high-availability.etcd.endpoints".to_string();
            return Err(ConfigError::MissingKey { key, reason: needed_by });
        }
        if self.renew_interval == Duration::ZERO {
            return Err(ConfigError::invalid("high-availability.renew-interval", "0 ms", "a duration above zero"));
        }
        if self.lease_duration <= self.renew_interval {
            return Err(ConfigError::invalid(
                "high-availability.lease-duration",
                self.lease_duration.to_string(),
                format!("a duration longer than `high-availability.renew-interval` ({})", self.renew_interval),
            ));
        }
        let acting = Duration(self.lease_duration.0.saturating_sub(self.lease_margin.0));
        if acting <= self.renew_interval {
            return Err(ConfigError::invalid(
                "high-availability.lease-margin",
                self.lease_margin.to_string(),
                format!(
                    "a margin that leaves more than `high-availability.renew-interval` ({}) of the lease ({})",
                    self.renew_interval, self.lease_duration
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn list(&self, listing: &mut Listing) {
        listing.put("high-availability.type", self.kind.as_str());
        listing.put_optional("high-availability.storageDir", self.storage_dir.as_ref());
        listing.put("high-availability.cluster-id", &self.cluster_id);
        let endpoints = Some(self.etcd_endpoints.join(";")).filter(|joined| !joined.is_empty());
        listing.put_optional("high-availability.etcd.endpoints", endpoints);
        listing.put("high-availability.lease-duration", self.lease_duration);
        listing.put("high-availability.renew-interval", self.renew_interval);
        listing.put("high-availability.lease-margin", self.lease_margin);
    }
}
