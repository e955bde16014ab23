//! Loading configuration and job files from disk: the IO half of `weir_core::config` and
//! `weir_core::job::file`.
//!
//! Precedence, lowest first: Flink's defaults, the configuration file (`--config FILE`, else
//! `./weir.toml` when present), the job file's `[config]` table, then `-D key=value` flags.

use crate::cli::CliError;
use std::path::{Path, PathBuf};
use weir_core::config::{Config, RawConfig};
use weir_core::job::file::parse_job_file;
use weir_core::job::validate::ValidatedJob;
use weir_core::plan::PlanOptions;

/// The name of the configuration file read from the working directory when none is given.
pub const DEFAULT_CONFIG_FILE: &str = "weir.toml";

/// Flags shared by every command that reads configuration.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// Configuration file (default: ./weir.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override a configuration key, e.g. -D parallelism.default=4 (repeatable).
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Reads the configuration file (if any) into raw keys.
pub fn read_config_file(args: &ConfigArgs) -> Result<RawConfig, CliError> {
    let path = match &args.config {
        Some(path) => path.clone(),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => PathBuf::from(DEFAULT_CONFIG_FILE),
        None => return Ok(RawConfig::new()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|error| CliError::input(format!("{}: cannot read configuration: {error}", path.display())))?;
    RawConfig::from_toml_str(&text, &path.display().to_string()).map_err(|error| CliError::input(error.to_string()))
}

/// The cluster's raw configuration: the file, then `-D` (a job's own table is not included).
pub fn load_raw_config(args: &ConfigArgs) -> Result<RawConfig, CliError> {
    let mut raw = read_config_file(args)?;
    for text in &args.overrides {
        let (key, value) = RawConfig::parse_override(text).map_err(|error| CliError::input(error.to_string()))?;
        raw.set(key, value);
    }
    Ok(raw)
}

/// Builds the typed configuration: file, then `job_config` (a job file's table), then `-D`.
pub fn load_config(args: &ConfigArgs, job_config: Option<&RawConfig>) -> Result<Config, CliError> {
    let mut raw = read_config_file(args)?;
    if let Some(job_config) = job_config {
        raw.merge(job_config);
    }
    for text in &args.overrides {
        let (key, value) = RawConfig::parse_override(text).map_err(|error| CliError::input(error.to_string()))?;
        raw.set(key, value);
    }
    let config = Config::from_raw(&raw).map_err(|error| CliError::input(error.to_string()))?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(config)
}

/// Reads and validates a job file.
pub fn load_job(path: &Path) -> Result<ValidatedJob, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::input(format!("{}: cannot read job file: {error}", path.display())))?;
    parse_job_file(&path.display().to_string(), &text).map_err(|errors| CliError::input(errors.to_string()))
}

/// The job file's `[config]` table as raw keys.
pub fn job_config(job: &ValidatedJob) -> RawConfig {
    let mut raw = RawConfig::new();
    for (key, value) in &job.graph.config {
        raw.set(key.clone(), value.clone());
    }
    raw
}

/// Planner settings from the configuration, with `-p` taking precedence.
pub fn plan_options(config: &Config, parallelism: Option<u32>) -> PlanOptions {
    PlanOptions {
        default_parallelism: parallelism.unwrap_or(config.pipeline.parallelism_default),
        max_parallelism: config.pipeline.max_parallelism,
        chaining_enabled: config.pipeline.operator_chaining,
    }
}

/// Where relative checkpoint locations resolve on this host (every process of a host agrees).
pub fn data_dir() -> PathBuf {
    std::env::temp_dir().join("weir-data")
}

/// Where a JobManager keeps its record of jobs: `high-availability.storageDir`, else a
/// directory per RPC port under [`data_dir`].
pub fn metadata_dir(config: &Config) -> PathBuf {
    match &config.ha.storage_dir {
        Some(dir) => PathBuf::from(dir.strip_prefix("file://").unwrap_or(dir)),
        None => data_dir().join(format!("jobmanager-{}", config.rpc.port)),
    }
}
