//! `weir`: the command-line interface and the daemons.
//!
//! Each subcommand lives in its own module under `cli/`; this file only parses arguments and
//! maps outcomes to exit codes: 0 success, 1 the command ran and failed (a job failed, a check
//! did not hold), 2 bad input (a malformed job file or configuration, a bad flag).

use clap::Parser;
use std::process::ExitCode;
use weir_nodes::cli;

fn main() -> ExitCode {
    restore_default_sigpipe();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Rust ignores SIGPIPE, so writing to a closed pipe (`weir sim run --log | head`) would panic;
/// the default action ends the process quietly instead, as other command-line tools do.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; it only resets one
    // signal's disposition to the system default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
