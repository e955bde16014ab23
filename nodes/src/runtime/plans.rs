//! The plans of the jobs whose tasks run in this process, made from their deployments.
//!
//! A deployment carries the job as submitted (`JobArtifacts`); planning it with
//! `dispatcher::prepare`, as the JobManager did, gives the same plan, so a TaskManager in another
//! process needs nothing else. The plan is made once per job and dropped when the job's last
//! slot here is gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use weir_core::config::{Config, RawConfig};
use weir_core::dispatcher::prepare;
use weir_core::ids::JobId;
use weir_core::plan::JobPlan;
use weir_core::protocol::TaskDeployment;

/// A job's plan and effective configuration, shared by its task threads.
pub type Planned = (Arc<JobPlan>, Arc<Config>);

/// The plans of this process's jobs.
pub struct JobPlans {
    /// This process's own `taskmanager.*` keys, which win over the JobManager's for its tasks.
    own: RawConfig,
    plans: BTreeMap<JobId, Planned>,
}

impl JobPlans {
    /// Plans under this process's configuration `own` (only its `taskmanager.*` keys count).
    pub fn new(own: &RawConfig) -> JobPlans {
        let mut local = RawConfig::new();
        for (key, value) in own.iter().filter(|(key, _)| key.starts_with("taskmanager.")) {
            local.set(key.to_string(), value.to_string());
        }
        JobPlans { own: local, plans: BTreeMap::new() }
    }

    /// The plan of the deployment's job, made the first time.
    pub fn of(&mut self, deployment: &TaskDeployment) -> Result<Planned, String> {
        let job = deployment.execution.job;
        if let Some(known) = self.plans.get(&job) {
            return Ok(known.clone());
        }
        let artifacts =
            deployment.job.as_ref().ok_or_else(|| format!("the deployment of job {job} does not carry the job"))?;
        let mut cluster = RawConfig::new();
        for (key, value) in &artifacts.cluster_config {
            cluster.set(key.clone(), value.clone());
        }
        cluster.merge(&self.own);
        let (plan, config) = prepare(&cluster, artifacts.graph.clone(), &artifacts.job_config, artifacts.parallelism)
            .map_err(|error| format!("cannot plan job {job} here: {error}"))?;
        let planned = (Arc::new(plan), Arc::new(config));
        self.plans.insert(job, planned.clone());
        Ok(planned)
    }

    /// Every vertex of every planned job, with its REST id.
    pub fn vertex_ids(&self) -> Vec<(JobId, weir_core::ids::VertexIndex, weir_core::ids::VertexId)> {
        let mut ids = Vec::new();
        for (job, (plan, _)) in &self.plans {
            ids.extend(plan.vertices.iter().map(|vertex| (*job, vertex.index, vertex.id)));
        }
        ids
    }

    /// Drops the plans of jobs `keep` rejects; returns those jobs.
    pub fn retain(&mut self, keep: impl Fn(JobId) -> bool) -> Vec<JobId> {
        let gone: Vec<JobId> = self.plans.keys().filter(|job| !keep(**job)).copied().collect();
        for job in &gone {
            self.plans.remove(job);
        }
        gone
    }
}
