//! `weir journal replay FILE` (hidden): replays a daemon's journal into fresh state machines and
//! prints what they ended in, the outputs' count and hash, and whether the journal was whole.

use super::CliError;
use crate::daemon::journal::replay;
use std::path::Path;

/// Replays the journal `file` belongs to; a journal that does not read is bad input (exit 2).
pub fn replay(file: &Path) -> Result<(), CliError> {
    let replayed = replay::replay(file).map_err(CliError::input)?;
    print!("{}", replayed.describe());
    Ok(())
}
