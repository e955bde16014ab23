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

/// `weir sim replay --journal DIR`: replays every journal in `dir` and checks, journal against
/// journal, that each replayed machine sends every message its peers received from it. With
/// `node` (a journal's role or id, as in its file name) or `filter` (an input kind), only the
/// matching journals are printed; the check covers them all.
pub fn replay_dir(dir: &Path, node: Option<&str>, filter: Option<&str>) -> Result<(), CliError> {
    let replays = replay::replay_dir(dir).map_err(CliError::input)?;
    let checks = replay::cross_check(&replays);
    let mut differing = 0;
    let mut broken = 0;
    for (replayed, check) in replays.iter().zip(&checks) {
        let stem = replayed.header.stem();
        broken += u64::from(replayed.invariant_violation.is_some());
        differing += check.unmatched - check.unmatched_after_cut;
        if node.is_some_and(|node| !stem.contains(node)) {
            continue;
        }
        if let Some(filter) = filter
            && !replayed.inputs.keys().any(|kind| kind.contains(filter))
        {
            continue;
        }
        println!("===== {stem} =====");
        print!("{}", replayed.describe());
        println!(
            "messages received from replayed peers: {} sent again by their replay, {} not{}; {} from processes \
             without a journal here",
            check.matched,
            check.unmatched,
            if check.unmatched_after_cut > 0 {
                format!(" ({} past a sender's cut-short journal)", check.unmatched_after_cut)
            } else {
                String::new()
            },
            check.unknown_sender
        );
        if check.connection_closed > 0 {
            println!("disconnects made by this daemon when a peer's connection closed: {}", check.connection_closed);
        }
        if !check.unmatched_kinds.is_empty() {
            println!("not sent again by the replay: {}", check.unmatched_kinds.join(", "));
        }
    }
    let matched: u64 = checks.iter().map(|check| check.matched).sum();
    if differing > 0 || broken > 0 {
        return Err(CliError::failed(format!(
            "{} journals replayed: {differing} messages peers received were not sent by the replay, {broken} \
             replays broke an invariant",
            replays.len()
        )));
    }
    println!("{} journals replayed: the same decisions ({matched} messages between them sent again)", replays.len());
    Ok(())
}
