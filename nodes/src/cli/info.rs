//! `weir info JOB`: the plan of a job file, readable or as JSON.

use super::CliError;
use crate::settings::{self, ConfigArgs};
use std::path::Path;
use weir_core::ids::{Hex128, JobId, stable_hash128};
use weir_core::plan::{JobPlan, plan};

/// Loads, validates and plans a job file under the configuration.
pub fn plan_job(path: &Path, parallelism: Option<u32>, config: &ConfigArgs) -> Result<JobPlan, CliError> {
    let job = settings::load_job(path)?;
    let config = settings::load_config(config, Some(&settings::job_config(&job)))?;
    let options = settings::plan_options(&config, parallelism);
    plan(&job, &options).map_err(|error| CliError::input(format!("{}: {error}", path.display())))
}

/// Prints the plan of `path`.
pub fn run(path: &Path, json: bool, parallelism: Option<u32>, config: &ConfigArgs) -> Result<(), CliError> {
    let plan = plan_job(path, parallelism, config)?;
    if json {
        // A job id derived from the job's name, so `info` prints the same document every time.
        let jid = JobId(Hex128(stable_hash128(&[b"job", plan.job.graph.name.as_bytes()])));
        let document = plan.to_document(jid);
        let text = serde_json::to_string_pretty(&document)
            .map_err(|error| CliError::failed(format!("cannot render the plan: {error}")))?;
        println!("{text}");
    } else {
        print!("{}", plan.describe());
    }
    Ok(())
}
