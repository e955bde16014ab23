//! [`RemoteEnvironment`]: a built job submitted to a running cluster's REST API as a job graph
//! (`POST /jobs` with `{"graph": …}`), followed by polling `GET /jobs/:id` as `weir run` does.

use super::JobOutcome;
use crate::cli::http::{Endpoint, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir_core::ids::JobId;
use weir_core::job::validate::ValidatedJob;
use weir_core::protocol::JobStatus;

/// How often [`RemoteEnvironment::wait`] asks for the job's state.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Submits jobs to a running cluster (Flink's `RemoteEnvironment`): `weir local`, `weir
/// jobmanager` with its TaskManagers, or anything else that serves weir's REST API. Such a
/// cluster has no Rust operators; a job with some is refused and the error says so.
#[derive(Clone, Debug)]
pub struct RemoteEnvironment {
    endpoint: Endpoint,
    address: String,
    config: BTreeMap<String, String>,
}

impl RemoteEnvironment {
    /// The cluster whose REST API is at `address` (`host:port`, `http://` allowed).
    pub fn new(address: &str) -> Result<RemoteEnvironment, String> {
        let endpoint = Endpoint::new(address)?;
        Ok(RemoteEnvironment { endpoint, address: address.to_string(), config: BTreeMap::new() })
    }

    /// Sets a configuration key for the jobs submitted from here (`-D` of `weir run`).
    pub fn with_config(mut self, key: &str, value: &str) -> RemoteEnvironment {
        self.config.insert(key.to_string(), value.to_string());
        self
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response, String> {
        let bytes = body.map(|body| body.to_string().into_bytes());
        self.endpoint.request(method, path, bytes.as_deref())
    }

    /// Submits `job` with the default parallelism `parallelism`; returns its id once the
    /// cluster accepted it, or the cluster's reason for refusing it.
    pub fn submit(&self, job: &ValidatedJob, parallelism: Option<u32>) -> Result<JobId, String> {
        let graph = serde_json::to_value(&job.graph).map_err(|error| format!("cannot encode the job: {error}"))?;
        let mut body = json!({ "graph": graph, "config": self.config });
        if let Some(parallelism) = parallelism {
            body["parallelism"] = json!(parallelism);
        }
        let response = self.call("POST", "/v1/jobs", Some(&body))?;
        let refused =
            |reason: String| format!("the cluster at {} refused job {:?}: {reason}", self.address, job.graph.name);
        match (response.status, response.json()["jobid"].as_str()) {
            (200 | 202, Some(id)) => id.parse().map_err(|error| refused(format!("it answered a bad job id: {error}"))),
            (status, _) => Err(refused(format!("{} ({status})", response.error_message()))),
        }
    }

    /// Waits until job `job_id` ended, at most `timeout` when one is given.
    pub fn wait(&self, job_id: JobId, timeout: Option<Duration>) -> Result<JobOutcome, String> {
        let started = Instant::now();
        loop {
            let response = self.call("GET", &format!("/v1/jobs/{job_id}"), None)?;
            if response.status != 200 {
                return Err(format!("job {job_id}: {} ({})", response.error_message(), response.status));
            }
            let detail = response.json();
            let state = detail["state"].as_str().unwrap_or_default();
            let status = JobStatus::ALL.into_iter().find(|status| status.name() == state);
            let Some(status) = status else {
                return Err(format!("job {job_id}: the cluster answered an unknown state {state:?}"));
            };
            if status.is_terminal() {
                let failure = detail["failure"].as_str().map(str::to_string);
                return Ok(JobOutcome { job_id, status, failure, checkpoints: None, restarts: None });
            }
            if timeout.is_some_and(|timeout| started.elapsed() >= timeout) {
                return Err(format!("job {job_id} is still {status} after {:.1} s", started.elapsed().as_secs_f64()));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Submits `job` and waits until it ended.
    pub fn execute(&self, job: &ValidatedJob, parallelism: Option<u32>) -> Result<JobOutcome, String> {
        let job_id = self.submit(job, parallelism)?;
        self.wait(job_id, None)
    }
}
