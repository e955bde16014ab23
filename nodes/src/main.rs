//! `weir`: the command-line interface and the daemons.
//!
//! Each subcommand lives in its own module under `cli/`; this file only parses arguments and
//! maps outcomes to exit codes: 0 success, 1 the command ran and failed (a job failed, a check
//! did not hold), 2 bad input (a malformed job file or configuration, a bad flag).

mod cli;
mod local;
mod settings;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
