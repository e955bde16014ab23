//! The `weir` command line: argument definitions and dispatch.

mod bench;
mod bench_state;
mod daemons;
mod explore;
pub(crate) mod http;
mod info;
mod journal;
mod local;
mod remote;
mod sim;

use crate::settings::ConfigArgs;
use clap::{Parser, Subcommand};
use std::fmt;
use std::path::PathBuf;

/// weir: a stream-processing cluster runtime in the architecture of Apache Flink's.
#[derive(Parser, Debug)]
#[command(name = "weir", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a job's plan: chains, parallelism, slots (Flink's /jobs/:id/plan shape with --json).
    Info {
        /// The job file.
        job: PathBuf,
        /// Print JSON in the shape of Flink's `GET /jobs/:id/plan`, plus weir's fields.
        #[arg(long)]
        json: bool,
        /// Default parallelism for operators that set none.
        #[arg(short = 'p', long)]
        parallelism: Option<u32>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run a job on an embedded cluster in this process.
    Local {
        /// The job file.
        job: PathBuf,
        /// Default parallelism for operators that set none.
        #[arg(short = 'p', long)]
        parallelism: Option<u32>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Submit a job to a running cluster over REST; attached, wait for its end.
    Run {
        /// The job file.
        job: PathBuf,
        /// Print the job id and return at once.
        #[arg(short = 'd', long)]
        detached: bool,
        /// Default parallelism for operators that set none.
        #[arg(short = 'p', long)]
        parallelism: Option<u32>,
        /// The JobManager's REST address (default: rest.address:rest.port).
        #[arg(short = 'm', long = "jobmanager", value_name = "HOST:PORT")]
        jobmanager: Option<String>,
        /// Restore the job from this savepoint (or retained checkpoint) directory.
        #[arg(short = 's', long = "from-savepoint", value_name = "DIR")]
        from_savepoint: Option<String>,
        /// Configuration (`-D` keys are also sent as the job's own).
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List a running cluster's jobs.
    List {
        /// Print Flink's `/jobs/overview` JSON.
        #[arg(long)]
        json: bool,
        /// The JobManager's REST address (default: rest.address:rest.port).
        #[arg(short = 'm', long = "jobmanager", value_name = "HOST:PORT")]
        jobmanager: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Cancel a job on a running cluster.
    Cancel {
        /// The job id (32 hex characters).
        id: String,
        /// The JobManager's REST address (default: rest.address:rest.port).
        #[arg(short = 'm', long = "jobmanager", value_name = "HOST:PORT")]
        jobmanager: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Take a savepoint of a running job and print its path.
    Savepoint {
        /// The job id (32 hex characters).
        id: String,
        /// Target directory (default: execution.checkpointing.savepoint-dir).
        directory: Option<String>,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
        /// The JobManager's REST address (default: rest.address:rest.port).
        #[arg(short = 'm', long = "jobmanager", value_name = "HOST:PORT")]
        jobmanager: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Stop a job with a savepoint (stop-with-savepoint) and print the savepoint's path.
    Stop {
        /// The job id (32 hex characters).
        id: String,
        /// Target directory (default: execution.checkpointing.savepoint-dir).
        #[arg(short = 'p', long = "savepoint-path", value_name = "DIR")]
        savepoint_path: Option<String>,
        /// Advance event time to the end first, so every window fires.
        #[arg(short = 'd', long)]
        drain: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
        /// The JobManager's REST address (default: rest.address:rest.port).
        #[arg(short = 'm', long = "jobmanager", value_name = "HOST:PORT")]
        jobmanager: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run a JobManager (ResourceManager, Dispatcher, JobMasters, REST) until killed.
    Jobmanager {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run a TaskManager that registers with the configured JobManager, until killed.
    Taskmanager {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run a job as an application cluster: a JobManager in application mode with TaskManagers
    /// of its own; everything ends with the job.
    RunApplication {
        /// The job file.
        job: PathBuf,
        /// Default parallelism for operators that set none.
        #[arg(short = 'p', long)]
        parallelism: Option<u32>,
        /// TaskManager processes to start.
        #[arg(long, default_value_t = 1)]
        task_managers: u32,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// A standalone cluster on this host: start or stop it.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The deterministic simulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A daemon's journal of its state machine's inputs (hidden until the simulator replays it).
    #[command(subcommand, hide = true)]
    Journal(JournalCommand),
}

#[derive(Subcommand, Debug)]
enum JournalCommand {
    /// Replay a journal into fresh state machines and print what they ended in.
    Replay {
        /// Any segment file of the journal (`journal-<role>-<id>-NNNNNN.bin`).
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Start a JobManager and one TaskManager per worker in the background; wait until every
    /// TaskManager registered.
    Start {
        /// Where pid files and logs go.
        #[arg(long, default_value = "weir-cluster")]
        dir: PathBuf,
        /// The workers file: one host per line (this host only); default one TaskManager.
        #[arg(long)]
        workers: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Stop the processes `cluster start` started.
    Stop {
        /// Where `cluster start` put its pid files.
        #[arg(long, default_value = "weir-cluster")]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Schedule a two-vertex all-to-all job of N tasks onto in-process TaskManagers.
    Schedule {
        /// Total tasks (two vertices of N/2 subtasks).
        #[arg(long, default_value_t = 20_000)]
        tasks: u32,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Keyed state on the heap and in RocksDB: updates per second and snapshot time.
    State {
        /// Distinct keys.
        #[arg(long, default_value_t = 1_000_000)]
        keys: u64,
        /// Updates (records).
        #[arg(long, default_value_t = 10_000_000)]
        records: u64,
        /// Full snapshots, one after each equal share of the records (their p50 and p99 are reported).
        #[arg(long, default_value_t = 1)]
        snapshots: u32,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Subcommand, Debug)]
enum SimCommand {
    /// Run one seed of a scenario and check its invariants and expectations.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed every random choice of the run flows from.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Print every event of the run.
        #[arg(long)]
        log: bool,
        /// Run the seed twice and fail if the two runs differ in any event.
        #[arg(long)]
        check_determinism: bool,
        /// Write a recording (scenario, seed, events, trace hash) that `sim replay --trace` checks.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    /// Replay a seed: prove a recording identical, or stop at an event and dump every node's state.
    Replay {
        /// The scenario file (not needed with --trace or --journal).
        #[arg(required_unless_present_any = ["trace", "journal"])]
        scenario: Option<PathBuf>,
        /// The seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A recording written by `weir sim run --record`: replay it and compare the trace hash.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["scenario", "until"])]
        trace: Option<PathBuf>,
        /// Stop after this event and print every node's state.
        #[arg(long, value_name = "EVENT")]
        until: Option<u64>,
        /// Only this node's state (jm, tm-0, ...); without --until, only the events that
        /// involve it.
        #[arg(long)]
        node: Option<String>,
        /// Only the events whose description contains this text (a message kind such as
        /// `OfferSlots`, `crash`, `checkpoint`), case-insensitive.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Write the run's timeline as a self-contained HTML page (lanes, messages, faults, job
        /// and checkpoint states).
        #[arg(long, value_name = "OUT.html", conflicts_with_all = ["trace", "until"])]
        html: Option<PathBuf>,
        /// Replay a daemon's flight-recorder journal directory into fresh state machines and
        /// check that they send every message their peers' journals received from them.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["scenario", "trace", "until", "html"])]
        journal: Option<PathBuf>,
    },
    /// Reduce a failing seed's faults to a minimal set that still fails; print the scenario.
    Shrink {
        /// The scenario file.
        scenario: PathBuf,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Write the minimal scenario here instead of printing it (keep it beside the original
        /// so its job files resolve).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run many seeds of one or more scenarios on every core; print each failing seed.
    Explore {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seeds per scenario (default 1000 unless --duration is given).
        #[arg(long, conflicts_with = "duration")]
        seeds: Option<u64>,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Explore for this long per scenario instead, e.g. 30s or 5min.
        #[arg(long)]
        duration: Option<String>,
        /// Worker threads (default: every core).
        #[arg(long)]
        jobs: Option<usize>,
    },
}

/// A command's failure, with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// Bad input from the user: a file, a flag, a value (exit code 2).
    pub fn input(message: String) -> CliError {
        CliError { message, code: 2 }
    }

    /// The command ran and did not succeed (exit code 1).
    pub fn failed(message: String) -> CliError {
        CliError { message, code: 1 }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Info { job, json, parallelism, config } => info::run(&job, json, parallelism, &config),
        Command::Local { job, parallelism, config } => local::run(&job, parallelism, &config),
        Command::Jobmanager { config } => daemons::job_manager(&config),
        Command::Taskmanager { config } => daemons::task_manager(&config),
        Command::RunApplication { job, parallelism, task_managers, config } => {
            daemons::run_application(&job, parallelism, task_managers, &config)
        }
        Command::Cluster(ClusterCommand::Start { dir, workers, config }) => {
            daemons::cluster_start(&dir, workers.as_deref(), &config)
        }
        Command::Cluster(ClusterCommand::Stop { dir }) => daemons::cluster_stop(&dir),
        Command::Run { job, detached, parallelism, jobmanager, from_savepoint, config } => {
            remote::run(&job, detached, parallelism, jobmanager.as_deref(), from_savepoint.as_deref(), &config)
        }
        Command::List { json, jobmanager, config } => remote::list(json, jobmanager.as_deref(), &config),
        Command::Cancel { id, jobmanager, config } => remote::cancel(&id, jobmanager.as_deref(), &config),
        Command::Savepoint { id, directory, json, jobmanager, config } => {
            remote::savepoint(&id, directory.as_deref(), json, jobmanager.as_deref(), &config)
        }
        Command::Stop { id, savepoint_path, drain, json, jobmanager, config } => {
            remote::stop(&id, savepoint_path.as_deref(), drain, json, jobmanager.as_deref(), &config)
        }
        Command::Sim(SimCommand::Run { scenario, seed, json, log, check_determinism, record }) => {
            sim::run(&scenario, seed, json, log, check_determinism, record.as_deref())
        }
        Command::Sim(SimCommand::Replay { scenario, seed, trace, until, node, filter, json, html, journal }) => {
            match (trace, journal, scenario) {
                (Some(trace), _, _) => sim::replay_recording(&trace),
                (None, Some(journal), _) => journal::replay_dir(&journal, node.as_deref(), filter.as_deref()),
                (None, None, Some(scenario)) => match (until, html) {
                    (_, Some(out)) => sim::replay_html(&scenario, seed, &out),
                    (Some(until), None) => {
                        sim::replay_until(&scenario, seed, until, node.as_deref(), filter.as_deref(), json)
                    }
                    (None, None) if node.is_some() || filter.is_some() => {
                        sim::replay_filtered(&scenario, seed, node.as_deref(), filter.as_deref())
                    }
                    (None, None) => sim::run(&scenario, seed, json, false, true, None),
                },
                (None, None, None) => {
                    Err(CliError::input("give a scenario file, --trace FILE or --journal DIR".into()))
                }
            }
        }
        Command::Sim(SimCommand::Shrink { scenario, seed, out }) => sim::shrink(&scenario, seed, out.as_deref()),
        Command::Sim(SimCommand::Explore { scenarios, seeds, first_seed, duration, jobs }) => {
            let budget = match duration {
                Some(text) => {
                    let duration = weir_core::config::units::parse_duration(&text)
                        .map_err(|reason| CliError::input(format!("--duration {text:?}: {reason}")))?;
                    explore::Budget::Duration(std::time::Duration::from_micros(duration.as_micros()))
                }
                None => explore::Budget::Seeds { first: first_seed, count: seeds.unwrap_or(1_000) },
            };
            explore::run(&scenarios, budget, jobs)
        }
        Command::Bench(BenchCommand::Schedule { tasks, json }) => bench::schedule(tasks, json),
        Command::Bench(BenchCommand::State { keys, records, snapshots, json, config }) => {
            bench_state::state(keys, records, snapshots, &crate::settings::load_raw_config(&config)?, json)
        }
        Command::Journal(JournalCommand::Replay { file }) => journal::replay(&file),
    }
}
