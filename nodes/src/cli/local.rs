//! `weir local JOB`: the embedded cluster.
//!
//! The runtime that executes tasks arrives with the data-plane and daemon work; until then this
//! command validates and plans the job, prints the plan, and says plainly that it did not run it.

use super::CliError;
use crate::settings::ConfigArgs;
use std::path::Path;

/// Plans the job and reports that execution is not available yet.
pub fn run(path: &Path, parallelism: Option<u32>, config: &ConfigArgs) -> Result<(), CliError> {
    let plan = super::info::plan_job(path, parallelism, config)?;
    print!("{}", plan.describe());
    println!();
    println!("weir local: the job is valid and planned, but NOT run: this build has no task runtime yet.");
    println!("            (the embedded cluster that runs it comes with the data-plane and daemon work)");
    Ok(())
}
