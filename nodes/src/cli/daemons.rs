//! `weir jobmanager`, `weir taskmanager`, `weir run-application` and `weir cluster start|stop`:
//! the standalone deployment.
//!
//! `cluster start` launches a JobManager and one TaskManager per line of the workers file as
//! background processes of this host (Flink's `start-cluster.sh` reaches other hosts by ssh;
//! weir starts local workers only and says so for any other host), each with its log file and
//! pid file under the cluster directory, and waits until every TaskManager has registered.
//! `cluster stop` ends them by their pid files.

use super::CliError;
use crate::api;
use crate::daemon::job_manager::{self, JobManagerOptions};
use crate::daemon::task_manager;
use crate::settings::{self, ConfigArgs, data_dir, metadata_dir};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir_core::config::{Config, RawConfig};
use weir_core::dispatcher::ClusterMode;
use weir_core::protocol::{JobStatus, JobSubmission};

/// How long `cluster start` waits for every TaskManager to register.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn typed(raw: &RawConfig) -> Result<Config, CliError> {
    Config::from_raw(raw).map_err(|error| CliError::input(error.to_string()))
}

/// `weir jobmanager`: runs a session JobManager until killed.
pub fn job_manager(config_args: &ConfigArgs) -> Result<(), CliError> {
    let raw = settings::load_raw_config(config_args)?;
    let config = typed(&raw)?;
    let options = JobManagerOptions {
        mode: ClusterMode::Session,
        data_dir: data_dir(),
        metadata_dir: metadata_dir(&config),
        application: None,
    };
    job_manager::run(raw, options).map(|_| ()).map_err(CliError::failed)
}

/// `weir taskmanager`: runs a TaskManager until killed.
pub fn task_manager(config_args: &ConfigArgs) -> Result<(), CliError> {
    let raw = settings::load_raw_config(config_args)?;
    typed(&raw)?;
    task_manager::run(raw, data_dir()).map_err(CliError::failed)
}

/// `weir run-application JOB`: a JobManager in application mode that runs `job` and ends with
/// it, with `task_managers` TaskManager processes of its own (`weir taskmanager`).
pub fn run_application(
    job: &Path,
    parallelism: Option<u32>,
    task_managers: u32,
    config_args: &ConfigArgs,
) -> Result<(), CliError> {
    let validated = settings::load_job(job)?;
    let raw = settings::load_raw_config(config_args)?;
    typed(&raw)?;
    let submission = JobSubmission {
        job_id: None,
        graph: validated.graph,
        parallelism,
        config: Default::default(),
        savepoint: None,
    };
    let launch = || weir_command("taskmanager", config_args);
    let ended = api::run_application_cluster(raw, submission, task_managers, &data_dir(), &launch);
    match ended.map_err(CliError::failed)? {
        Some(JobStatus::Finished) => {
            println!("application finished");
            Ok(())
        }
        Some(status) => Err(CliError::failed(format!("the application's job ended {status}"))),
        None => Err(CliError::failed("the JobManager stopped before its job ended".to_string())),
    }
}

/// `weir` itself with `command` and the caller's configuration flags.
fn weir_command(command: &str, config_args: &ConfigArgs) -> Command {
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("weir"));
    let mut process = Command::new(program);
    process.arg(command);
    if let Some(file) = &config_args.config {
        process.arg("--config").arg(file);
    }
    for text in &config_args.overrides {
        process.arg("-D").arg(text);
    }
    process
}

/// The hosts of a workers file: one per line, `#` comments and blank lines skipped.
fn workers(file: Option<&Path>) -> Result<Vec<String>, CliError> {
    let Some(file) = file else { return Ok(vec!["localhost".to_string()]) };
    let text = std::fs::read_to_string(file)
        .map_err(|error| CliError::input(format!("{}: cannot read the workers file: {error}", file.display())))?;
    let hosts: Vec<String> = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim().to_string())
        .filter(|line| !line.is_empty())
        .collect();
    for host in &hosts {
        if !matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1") {
            return Err(CliError::input(format!(
                "{}: worker {host:?} is another host; `weir cluster start` starts workers on this host only \
                 (start `weir taskmanager` there yourself)",
                file.display()
            )));
        }
    }
    Ok(hosts)
}

fn spawn_logged(command: &str, config_args: &ConfigArgs, dir: &Path, name: &str) -> Result<Child, CliError> {
    let log_dir = dir.join("log");
    std::fs::create_dir_all(&log_dir)
        .map_err(|error| CliError::failed(format!("{}: cannot create: {error}", log_dir.display())))?;
    let log_path = log_dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|error| CliError::failed(format!("{}: cannot create: {error}", log_path.display())))?;
    let err = log.try_clone().map_err(|error| CliError::failed(error.to_string()))?;
    let child = weir_command(command, config_args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|error| CliError::failed(format!("cannot start {name}: {error}")))?;
    let pid_path = dir.join(format!("{name}.pid"));
    std::fs::write(&pid_path, child.id().to_string())
        .map_err(|error| CliError::failed(format!("{}: cannot write: {error}", pid_path.display())))?;
    Ok(child)
}

/// `weir cluster start`: a JobManager and the workers' TaskManagers in the background.
pub fn cluster_start(dir: &Path, workers_file: Option<&Path>, config_args: &ConfigArgs) -> Result<(), CliError> {
    let raw = settings::load_raw_config(config_args)?;
    let config = typed(&raw)?;
    let hosts = workers(workers_file)?;
    if dir.join("jobmanager.pid").exists() {
        return Err(CliError::failed(format!(
            "{} already holds a running cluster's pid files; `weir cluster stop --dir {}` first",
            dir.display(),
            dir.display()
        )));
    }
    let started = Instant::now();
    let mut children = Vec::new();
    let ready = start_and_wait(dir, &hosts, config_args, &config, &mut children);
    if ready.is_err() {
        // A half-started cluster is no cluster: stop what this call started, so no daemon is left
        // behind holding ports and no pid file claims a cluster that is not there.
        for (name, mut child) in children {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(dir.join(format!("{name}.pid")));
        }
        return ready;
    }
    let rest = format!("{}:{}", config.rest.address, config.rest.port);
    println!(
        "cluster started in {:.2} s: JobManager (REST http://{rest}) and {} TaskManager(s); logs in {}",
        started.elapsed().as_secs_f64(),
        hosts.len(),
        dir.join("log").display()
    );
    Ok(())
}

/// Starts the JobManager and one TaskManager per host (each pushed onto `children`) and waits
/// until every TaskManager has registered; fails at once when a daemon exits.
fn start_and_wait(
    dir: &Path,
    hosts: &[String],
    config_args: &ConfigArgs,
    config: &Config,
    children: &mut Vec<(String, Child)>,
) -> Result<(), CliError> {
    let started = Instant::now();
    children.push(("jobmanager".to_string(), spawn_logged("jobmanager", config_args, dir, "jobmanager")?));
    for index in 0..hosts.len() {
        let name = format!("taskmanager-{index}");
        children.push((name.clone(), spawn_logged("taskmanager", config_args, dir, &name)?));
    }
    let rest = format!("{}:{}", config.rest.address, config.rest.port);
    let wanted = hosts.len();
    loop {
        let registered = super::remote::registered_task_managers(&rest).unwrap_or(0);
        if registered >= wanted {
            return Ok(());
        }
        for (name, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(CliError::failed(format!(
                    "{name} exited ({status}) before the cluster was ready; see {}",
                    dir.join("log").join(format!("{name}.log")).display()
                )));
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(CliError::failed(format!(
                "only {registered} of {wanted} TaskManagers registered within {} s; see {}",
                READY_TIMEOUT.as_secs(),
                dir.join("log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `weir cluster stop`: ends the processes named by the pid files under `dir`.
pub fn cluster_stop(dir: &Path) -> Result<(), CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| CliError::failed(format!("{}: no cluster here: {error}", dir.display())))?;
    let mut stopped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|extension| extension != "pid") {
            continue;
        }
        let pid = std::fs::read_to_string(&path).ok().and_then(|text| text.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|pid| *pid > 0) {
            // SAFETY: kill(2) with a positive pid read from our own pid file and SIGTERM.
            let result = unsafe { libc::kill(pid, libc::SIGTERM) };
            if result == 0 {
                stopped += 1;
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    println!("stopped {stopped} process(es)");
    Ok(())
}
