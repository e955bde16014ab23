//! Application clusters: a JobManager in application mode in this process, running one job
//! and ending with it, and TaskManager processes of its own, stopped when the job ended.
//!
//! `weir run-application` and a program's [`run_application`] share
//! [`run_application_cluster`]; they differ only in how a TaskManager process starts. The
//! `weir` binary starts `weir taskmanager` with its configuration flags; a program starts
//! itself again (`std::env::current_exe()`, with its own arguments) with [`TASK_MANAGER_ENV`]
//! holding the cluster's configuration, so its TaskManagers run the same code and build the
//! same Rust operators; its `main` hands control to [`super::main`], which sees the variable
//! and serves as a TaskManager.
//!
//! TaskManager processes are killed when the call ends, however it ends (a guard), and on
//! Linux also when the thread that started them dies, so a JobManager killed with `kill -9`
//! leaves no TaskManager behind.

use super::{JobOutcome, Operators, check_registered};
use crate::daemon::job_manager::{self, JobManagerOptions};
use crate::daemon::task_manager;
use crate::settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use weir_core::config::{Config, RawConfig};
use weir_core::dispatcher::ClusterMode;
use weir_core::ids::{Hex128, JobId, stable_hash128};
use weir_core::job::validate::ValidatedJob;
use weir_core::protocol::{JobStatus, JobSubmission};

/// Set in a TaskManager process that [`run_application`] started: the cluster's configuration
/// as JSON. [`super::main`] runs such a process as a TaskManager.
pub const TASK_MANAGER_ENV: &str = "WEIR_APPLICATION_TASK_MANAGER";

/// Makes the command of one TaskManager process of an application cluster.
pub(crate) type TaskManagerLauncher<'a> = &'a dyn Fn() -> Command;

/// What a TaskManager process started by [`run_application`] is told, in [`TASK_MANAGER_ENV`].
#[derive(Serialize, Deserialize)]
struct Launch {
    /// The cluster's configuration keys.
    config: BTreeMap<String, String>,
    /// Where relative checkpoint locations resolve.
    data_dir: PathBuf,
}

/// How [`run_application`] runs a program as its own application cluster.
#[derive(Clone, Debug)]
pub struct ApplicationOptions {
    task_managers: u32,
    parallelism: Option<u32>,
    config: BTreeMap<String, String>,
    data_dir: PathBuf,
}

impl ApplicationOptions {
    /// `task_managers` TaskManager processes, Flink's defaults otherwise (JobManager RPC on
    /// port 6123, REST on 8081, one slot per TaskManager).
    pub fn new(task_managers: u32) -> ApplicationOptions {
        ApplicationOptions { task_managers, parallelism: None, config: BTreeMap::new(), data_dir: settings::data_dir() }
    }

    /// Sets a configuration key of the cluster, for the JobManager and every TaskManager
    /// (`-D key=value` of `weir run-application`).
    pub fn with_config(mut self, key: &str, value: &str) -> ApplicationOptions {
        self.config.insert(key.to_string(), value.to_string());
        self
    }

    /// The default parallelism of operators that set none.
    pub fn with_parallelism(mut self, parallelism: u32) -> ApplicationOptions {
        self.parallelism = Some(parallelism);
        self
    }

    /// Where relative checkpoint directories resolve, for every process of the cluster.
    pub fn with_data_dir(mut self, dir: &Path) -> ApplicationOptions {
        self.data_dir = dir.to_path_buf();
        self
    }
}

/// Runs `job` on an application cluster of this program: this process becomes its JobManager,
/// and `options`' TaskManagers are this program started again with the same arguments (its
/// `main` must build its operators from them without side effects, then call [`super::main`]).
/// Returns once the job ended and the TaskManagers are stopped; checkpoints and restarts are
/// not counted, and the failure's cause is in the JobManager's log.
pub fn run_application(
    job: ValidatedJob,
    operators: &Operators,
    options: ApplicationOptions,
) -> Result<JobOutcome, String> {
    check_registered(&job.graph, operators)?;
    let program = std::env::current_exe().map_err(|error| format!("cannot find this program to start: {error}"))?;
    let launch = Launch { config: options.config.clone(), data_dir: options.data_dir.clone() };
    let launch = serde_json::to_string(&launch).map_err(|error| format!("cannot encode the configuration: {error}"))?;
    let task_manager = || {
        let mut command = Command::new(&program);
        command.args(std::env::args_os().skip(1)).env(TASK_MANAGER_ENV, &launch);
        command
    };
    let mut raw = RawConfig::new();
    for (key, value) in &options.config {
        raw.set(key.clone(), value.clone());
    }
    let job_id = fresh_job_id(&job.graph.name);
    let submission = JobSubmission {
        job_id: Some(job_id),
        graph: job.graph,
        parallelism: options.parallelism,
        config: BTreeMap::new(),
        savepoint: None,
    };
    let status = run_application_cluster(raw, submission, options.task_managers, &options.data_dir, &task_manager)?
        .ok_or_else(|| "the JobManager stopped before its job ended".to_string())?;
    Ok(JobOutcome { job_id, status, failure: None, checkpoints: None, restarts: None })
}

/// A job id unique to this run of the program.
fn fresh_job_id(name: &str) -> JobId {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let pid = std::process::id();
    JobId(Hex128(stable_hash128(&[b"application", name.as_bytes(), &pid.to_le_bytes(), &nanos.to_le_bytes()])))
}

/// Serves as the TaskManager that `launch` (the value of [`TASK_MANAGER_ENV`]) describes.
pub(super) fn serve_task_manager(launch: &OsStr, operators: Operators) -> Result<(), String> {
    let text = launch.to_str().ok_or_else(|| format!("{TASK_MANAGER_ENV} is not UTF-8"))?;
    let launch: Launch = serde_json::from_str(text)
        .map_err(|error| format!("{TASK_MANAGER_ENV} is not a launch description: {error}"))?;
    let mut raw = RawConfig::new();
    for (key, value) in launch.config {
        raw.set(key, value);
    }
    task_manager::run_with_operators(raw, launch.data_dir, operators)
}

/// The application cluster of one job: starts `task_managers` TaskManager processes with
/// `launch`, runs this process's JobManager in application mode until `submission`'s job ended,
/// then stops the TaskManagers. Returns the job's final status (`None`: the JobManager stopped
/// first).
pub(crate) fn run_application_cluster(
    raw: RawConfig,
    submission: JobSubmission,
    task_managers: u32,
    data_dir: &Path,
    launch: TaskManagerLauncher<'_>,
) -> Result<Option<JobStatus>, String> {
    let config = Config::from_raw(&raw).map_err(|error| error.to_string())?;
    let mut workers = Workers(Vec::new());
    for number in 1..=task_managers {
        let mut command = launch();
        command.stdin(Stdio::null()).stdout(Stdio::null());
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|error| format!("cannot start a TaskManager: {error}"))?;
        println!("application: TaskManager {number} of {task_managers} started (pid {})", child.id());
        workers.0.push(child);
    }
    let options = JobManagerOptions {
        mode: ClusterMode::Application,
        data_dir: data_dir.to_path_buf(),
        metadata_dir: settings::metadata_dir(&config),
        application: Some(submission),
    };
    job_manager::run(raw, options)
}

/// The TaskManager processes of an application cluster, killed and reaped when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

/// Has the kernel kill the child when the thread that started it ends (Linux), so a JobManager
/// that dies without its guard running leaves no TaskManager behind.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec; it only calls prctl(2),
    // which is async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}
