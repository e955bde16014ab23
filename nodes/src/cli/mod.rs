//! The `weir` command line: argument definitions and dispatch.

mod bench;
mod info;
mod local;
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
    /// The deterministic simulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
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
        Command::Sim(SimCommand::Run { scenario, seed, json, log }) => sim::run(&scenario, seed, json, log),
        Command::Bench(BenchCommand::Schedule { tasks, json }) => bench::schedule(tasks, json),
    }
}
