//! `weir bench schedule --tasks N`: scheduling at scale, in one process.
//!
//! Builds a job of two vertices of N/2 subtasks joined all-to-all (more vertices when N/2 would
//! exceed Flink's per-vertex limit of 32,768 subtasks), starts a JobManager and
//! enough TaskExecutors (1,000 slots each) in this process, connects them with zero-latency
//! in-memory delivery, submits the job and times each phase until every task is RUNNING. Tasks
//! do no work: the driver reports RUNNING as soon as a TaskExecutor starts one. Peak memory is
//! the process's high-water mark of resident memory (`VmHWM`).

use super::CliError;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;
use weir_core::config::RawConfig;
use weir_core::dispatcher::{ClusterMode, prepare};
use weir_core::ids::{Epoch, Hex128, ResourceId, stable_hash128};
use weir_core::job::MAX_PARALLELISM_LIMIT;
use weir_core::job::builder::StreamEnvironment;
use weir_core::job_manager::{self, JobManager};
use weir_core::protocol::{
    Address, DispatcherMessage, Envelope, Event, ExecutionState, JobSubmission, Message, Output, Role, TaskCommand,
    TaskReport,
};
use weir_core::task_executor::{self, TaskExecutor, TaskExecutorConfig};
use weir_core::time::Time;

const SLOTS_PER_TASK_MANAGER: u32 = 1_000;

/// The phases of one scheduling run, in milliseconds.
#[derive(Serialize)]
struct ScheduleReport {
    tasks: u64,
    vertices: u32,
    task_managers: u32,
    plan_ms: f64,
    slots_ms: f64,
    deploy_ms: f64,
    running_ms: f64,
    total_ms: f64,
    peak_rss_mb: Option<f64>,
}

/// Runs the benchmark and prints the report.
pub fn schedule(tasks: u32, json: bool) -> Result<(), CliError> {
    if tasks < 2 || !tasks.is_multiple_of(2) {
        return Err(CliError::input(format!("--tasks must be an even number of at least 2, got {tasks}")));
    }
    let report = run_schedule(tasks)?;
    if json {
        let text = serde_json::to_string(&report).map_err(|error| CliError::failed(error.to_string()))?;
        println!("{text}");
    } else {
        println!(
            "{} tasks in {} vertices on {} TaskManagers: plan {:.1} ms, slots {:.1} ms, deploy {:.1} ms, \
             running {:.1} ms; total {:.1} ms; peak RSS {}",
            report.tasks,
            report.vertices,
            report.task_managers,
            report.plan_ms,
            report.slots_ms,
            report.deploy_ms,
            report.running_ms,
            report.total_ms,
            report.peak_rss_mb.map(|mb| format!("{mb:.1} MB")).unwrap_or_else(|| "unknown".into())
        );
    }
    Ok(())
}

/// The fewest vertices (at least two) that split `tasks` evenly within the parallelism limit.
fn vertex_count(tasks: u32) -> Option<u32> {
    (2..=tasks).find(|vertices| tasks.is_multiple_of(*vertices) && tasks / vertices <= MAX_PARALLELISM_LIMIT)
}

fn wide_job(vertices: u32, parallelism: u32) -> weir_core::job::JobGraph {
    let env = StreamEnvironment::new("wide");
    let mut stream = env.sequence(0, parallelism as i64 * 10).set_parallelism(parallelism);
    for _ in 2..vertices {
        stream = stream.rebalance().map(&[("x", "x")]).set_parallelism(parallelism);
    }
    stream.rebalance().discard().set_parallelism(parallelism);
    match env.build() {
        Ok(job) => job.graph,
        Err(errors) => unreachable!("the benchmark's job is valid: {errors:?}"),
    }
}

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1_000.0
}

fn run_schedule(tasks: u32) -> Result<ScheduleReport, CliError> {
    let vertices = vertex_count(tasks)
        .ok_or_else(|| CliError::input(format!("{tasks} tasks cannot be split evenly into vertices")))?;
    let parallelism = tasks / vertices;
    let graph = wide_job(vertices, parallelism);
    let mut raw = RawConfig::new();
    raw.set("taskmanager.numberOfTaskSlots", SLOTS_PER_TASK_MANAGER.to_string());
    let started = Instant::now();
    prepare(&raw, graph.clone(), &BTreeMap::new(), None).map_err(CliError::failed)?;
    let plan_ms = elapsed_ms(started);
    let task_managers = parallelism.div_ceil(SLOTS_PER_TASK_MANAGER);
    let mut cluster = DirectCluster::new(raw, task_managers)?;
    cluster.settle();
    let submitted = Instant::now();
    let submission = JobSubmission { job_id: None, graph, parallelism: None, config: BTreeMap::new(), savepoint: None };
    let message = Message::Dispatcher(DispatcherMessage::Submit { request: 1, submission: Box::new(submission) });
    cluster.queue.push_back(Envelope { from: Address::Client(1), to: Address::Dispatcher, epoch: Epoch(0), message });
    let marks = cluster.run_until_running(tasks as u64);
    let total_ms = elapsed_ms(submitted);
    let [first_deploy, all_started, all_running] =
        marks.map(|mark| mark.map(|at| (at - submitted).as_secs_f64() * 1e3));
    let (Some(slots_ms), Some(started_ms), Some(running_ms)) = (first_deploy, all_started, all_running) else {
        return Err(CliError::failed(format!("the job did not reach RUNNING: {}", cluster.diagnosis())));
    };
    Ok(ScheduleReport {
        tasks: tasks as u64,
        vertices,
        task_managers,
        plan_ms,
        slots_ms,
        deploy_ms: started_ms - slots_ms,
        running_ms: running_ms - started_ms,
        total_ms,
        peak_rss_mb: peak_rss_mb(),
    })
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A JobManager and TaskExecutors joined by instant in-memory delivery.
struct DirectCluster {
    job_manager: JobManager,
    task_executors: BTreeMap<ResourceId, TaskExecutor>,
    queue: VecDeque<Envelope>,
    reports: VecDeque<(ResourceId, TaskReport)>,
    deployed: u64,
    running: u64,
}

impl DirectCluster {
    fn new(raw: RawConfig, task_managers: u32) -> Result<DirectCluster, CliError> {
        let config = weir_core::config::Config::from_raw(&raw).map_err(|error| CliError::failed(error.to_string()))?;
        let te_config =
            TaskExecutorConfig::from_config(&config).map_err(|error| CliError::failed(error.to_string()))?;
        let job_manager = JobManager::new(raw, ClusterMode::Session, Epoch(1), 1).map_err(CliError::failed)?;
        let mut task_executors = BTreeMap::new();
        for index in 0..task_managers {
            let id = ResourceId(Hex128(stable_hash128(&[b"bench-tm", &index.to_le_bytes()])));
            task_executors.insert(id, TaskExecutor::new(id, te_config.clone(), Time::ZERO));
        }
        Ok(DirectCluster {
            job_manager,
            task_executors,
            queue: VecDeque::new(),
            reports: VecDeque::new(),
            deployed: 0,
            running: 0,
        })
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.job_manager.poll_output() {
            self.output(None, output);
        }
        let ids: Vec<ResourceId> = self.task_executors.keys().copied().collect();
        for id in ids {
            while let Some(output) = self.task_executors.get_mut(&id).and_then(|te| te.poll_output()) {
                self.output(Some(id), output);
            }
        }
    }

    fn output(&mut self, from: Option<ResourceId>, output: Output) {
        match output {
            Output::Send(envelope) => self.queue.push_back(envelope),
            Output::Task(TaskCommand::Start(deployment)) => {
                self.deployed += 1;
                let id = from.unwrap_or_default();
                for state in [ExecutionState::Initializing, ExecutionState::Running] {
                    let report =
                        TaskReport { execution: deployment.execution, state, error: None, unreadable_checkpoint: None };
                    self.reports.push_back((id, report));
                }
            }
            // The benchmark's job does not checkpoint: nothing to store, no barriers to answer.
            Output::Task(_) | Output::Storage(_) => {}
            Output::Event(Event::ExecutionStateChanged { to: ExecutionState::Running, .. }) => self.running += 1,
            Output::Event(_) => {}
        }
    }

    /// Delivers one pending envelope or report; false when nothing is pending.
    fn step(&mut self) -> bool {
        self.drain_outputs();
        if let Some(envelope) = self.queue.pop_front() {
            match envelope.to {
                Address::TaskExecutor(id) => {
                    if let (Some(te), Message::TaskExecutor(message)) =
                        (self.task_executors.get_mut(&id), envelope.message)
                    {
                        let input =
                            task_executor::Input::Message { from: envelope.from, epoch: envelope.epoch, message };
                        te.handle(Time::ZERO, input);
                    }
                }
                Address::Client(_) => {}
                _ => self.job_manager.handle(Time::ZERO, job_manager::Input::Message(envelope)),
            }
            return true;
        }
        if let Some((id, report)) = self.reports.pop_front() {
            if let Some(te) = self.task_executors.get_mut(&id) {
                te.handle(Time::ZERO, task_executor::Input::TaskReport(report));
            }
            return true;
        }
        false
    }

    /// Registers every TaskExecutor before the clock starts.
    fn settle(&mut self) {
        while self.step() {}
    }

    /// Runs until `tasks` are RUNNING; returns when deployment began, ended, and all ran.
    fn run_until_running(&mut self, tasks: u64) -> [Option<Instant>; 3] {
        let mut marks = [None; 3];
        loop {
            let progressed = self.step();
            if self.deployed > 0 && marks[0].is_none() {
                marks[0] = Some(Instant::now());
            }
            if self.deployed == tasks && marks[1].is_none() {
                marks[1] = Some(Instant::now());
            }
            if self.running >= tasks {
                marks[2] = Some(Instant::now());
                break;
            }
            if !progressed {
                break;
            }
        }
        marks
    }

    fn diagnosis(&self) -> String {
        format!("{} tasks deployed, {} running", self.deployed, self.running)
    }
}
