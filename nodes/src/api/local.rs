//! [`LocalEnvironment`]: a job run on an embedded cluster in this process, as `weir local` runs
//! a job file, with the program's Rust operators.

use super::{JobOutcome, Operators, check_registered};
use crate::runtime::cluster::LocalCluster;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weir_core::config::RawConfig;
use weir_core::dispatcher::prepare;
use weir_core::job::validate::ValidatedJob;

/// Runs jobs on an embedded cluster in this process (Flink's `LocalEnvironment`): a JobManager
/// and a TaskExecutor with as many slots as the job needs, each task on its own thread,
/// checkpoints on disk, restarts under the restart strategy, exactly-once file sinks.
#[derive(Clone, Debug)]
pub struct LocalEnvironment {
    config: BTreeMap<String, String>,
    parallelism: Option<u32>,
    data_dir: PathBuf,
}

impl Default for LocalEnvironment {
    fn default() -> LocalEnvironment {
        LocalEnvironment::new()
    }
}

impl LocalEnvironment {
    /// An environment with Flink's defaults; relative checkpoint directories resolve under the
    /// system's temporary directory (`weir-local`), as for `weir local`.
    pub fn new() -> LocalEnvironment {
        LocalEnvironment {
            config: BTreeMap::new(),
            parallelism: None,
            data_dir: std::env::temp_dir().join("weir-local"),
        }
    }

    /// Sets a configuration key, above the job's own (`-D key=value` of `weir local`).
    pub fn with_config(mut self, key: &str, value: &str) -> LocalEnvironment {
        self.config.insert(key.to_string(), value.to_string());
        self
    }

    /// The default parallelism of operators that set none (`-p` of `weir local`).
    pub fn with_parallelism(mut self, parallelism: u32) -> LocalEnvironment {
        self.parallelism = Some(parallelism);
        self
    }

    /// Where relative checkpoint directories resolve.
    pub fn with_data_dir(mut self, dir: &Path) -> LocalEnvironment {
        self.data_dir = dir.to_path_buf();
        self
    }

    /// Runs `job` with the Rust operators of `operators` and returns once it ended. A job that
    /// names an operator `operators` lacks, or that cannot be planned, is refused before it
    /// starts.
    pub fn execute(&self, job: ValidatedJob, operators: &Operators) -> Result<JobOutcome, String> {
        check_registered(&job.graph, operators)?;
        let mut raw = RawConfig::new();
        for (key, value) in &self.config {
            raw.set(key.clone(), value.clone());
        }
        let (plan, config) = prepare(&raw, job.graph.clone(), &self.config, self.parallelism)
            .map_err(|error| format!("job {:?}: {error}", job.graph.name))?;
        let slots = plan.required_slots.max(config.task_manager.slots).max(1);
        let mut cluster = LocalCluster::start_with_operators(raw, slots, &self.data_dir, operators.clone())?;
        let job_id = cluster.submit(job.graph, self.parallelism, self.config.clone())?;
        let end = cluster.run_until_done(job_id, &mut |_| {}, &mut |_| {});
        Ok(JobOutcome {
            job_id,
            status: end.status,
            failure: end.failure,
            checkpoints: Some(end.checkpoints),
            restarts: Some(end.restarts),
        })
    }
}
