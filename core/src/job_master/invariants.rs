//! The JobMaster's invariants, checked as a whole (the simulator calls this after every event).
//!
//! O(subtasks): a recount of everything the JobMaster keeps incrementally.

use super::JobMaster;
use super::exceptions::EXCEPTION_HISTORY_SIZE;
use crate::protocol::{ExecutionState, JobStatus};

/// Checks every invariant of the module doc; returns the first broken one.
pub(super) fn check(job_master: &JobMaster) -> Result<(), String> {
    job_master.executions.check_invariants()?;
    job_master.pool.check_invariants()?;
    check_scheduled(job_master)?;
    check_deployed(job_master)?;
    check_status(job_master)?;
    check_restart(job_master)?;
    if job_master.exceptions.len() > EXCEPTION_HISTORY_SIZE {
        return Err(format!("{} exceptions kept, at most {EXCEPTION_HISTORY_SIZE}", job_master.exceptions.len()));
    }
    Ok(())
}

/// The SCHEDULED set is exactly the SCHEDULED executions, and the pool counts them per slot.
fn check_scheduled(job_master: &JobMaster) -> Result<(), String> {
    let executions = &job_master.executions;
    if job_master.scheduled.len() as u32 != executions.count(ExecutionState::Scheduled) {
        return Err(format!(
            "{} executions in the scheduled set, {} SCHEDULED",
            job_master.scheduled.len(),
            executions.count(ExecutionState::Scheduled)
        ));
    }
    let mut waiting = vec![0u32; job_master.pool.len()];
    for &ordinal in &job_master.scheduled {
        if executions.state(ordinal) != ExecutionState::Scheduled {
            return Err(format!("execution {ordinal} is in the scheduled set but {}", executions.state(ordinal)));
        }
        waiting[job_master.position_of(ordinal).index()] += 1;
    }
    for (index, &count) in waiting.iter().enumerate() {
        let counted = job_master.pool.scheduled(super::slots::SlotPosition(index as u32));
        if counted != count {
            return Err(format!("slot {index}: {count} executions wait for it, the pool counts {counted}"));
        }
    }
    Ok(())
}

/// Every deployed, running attempt sits in the slot held for its position on a live TaskManager.
fn check_deployed(job_master: &JobMaster) -> Result<(), String> {
    let executions = &job_master.executions;
    for ordinal in 0..executions.len() {
        let state = executions.state(ordinal);
        let in_slot = matches!(
            state,
            ExecutionState::Deploying
                | ExecutionState::Initializing
                | ExecutionState::Running
                | ExecutionState::Canceling
        );
        if !in_slot {
            continue;
        }
        let Some(location) = executions.location(ordinal) else {
            return Err(format!("execution {ordinal} is {state} without a location"));
        };
        let held = job_master.pool.held(job_master.position_of(ordinal));
        if held.is_none_or(|held| held.allocation != location.allocation || held.resource_id != location.resource_id) {
            return Err(format!("execution {ordinal} is {state} in allocation {} not held", location.allocation));
        }
        if !job_master.pool.knows(location.resource_id) {
            return Err(format!("execution {ordinal} is {state} on lost TaskManager {}", location.resource_id));
        }
    }
    Ok(())
}

fn check_status(job_master: &JobMaster) -> Result<(), String> {
    let status = job_master.status;
    let reading = matches!(job_master.savepoint, Some(super::savepoints::SavepointRestore::Reading { .. }));
    if matches!(status, JobStatus::Initializing | JobStatus::Created) && !(reading && status == JobStatus::Initializing)
    {
        return Err(format!("the job is still {status} after construction"));
    }
    if reading && status != JobStatus::Initializing {
        return Err(format!("the job is {status} while it reads the savepoint it restores from"));
    }
    if status.is_globally_terminal() {
        let pool = &job_master.pool;
        if !pool.held_slots().is_empty() || pool.pending_requests() > 0 || pool.task_managers().next().is_some() {
            return Err(format!("the {status} job still holds or requests slots"));
        }
        if job_master.executions.non_terminal() > 0 {
            return Err(format!("the {status} job has attempts that did not stop"));
        }
    }
    if matches!(status, JobStatus::Failing | JobStatus::Failed) && job_master.failure.is_none() {
        return Err(format!("the job is {status} without a failure"));
    }
    if !matches!(status, JobStatus::Running | JobStatus::Restarting) && !job_master.scheduled.is_empty() {
        return Err(format!("the {status} job has executions waiting for deployment"));
    }
    Ok(())
}

fn check_restart(job_master: &JobMaster) -> Result<(), String> {
    let restart = &job_master.restart;
    if restart.is_pending() != (job_master.status == JobStatus::Restarting) {
        return Err(format!("job {} with a pending restart: {}", job_master.status, restart.is_pending()));
    }
    let live = restart.members().iter().filter(|&&ordinal| !job_master.executions.state(ordinal).is_terminal()).count();
    if live as u64 != restart.live() {
        return Err(format!("the pending restart counts {} live members, {live} are", restart.live()));
    }
    Ok(())
}
