//! The embedded runtime of `weir local`: every task of a job in this process.
//!
//! Each subtask is a `TaskRunner` (the same step function the simulator and the TaskManagers
//! run); this driver steps them in turn on one thread and moves each output buffer straight to
//! its consumer's input channel, so records cross no socket and no queue per record. A buffer a
//! consumer refuses (its input queue is full) waits in front of that channel, which is how a
//! slow consumer holds back its producers. Progress is printed once a second.

pub mod connectors;

use connectors::LocalConnectors;
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;
use weir_core::config::Config;
use weir_core::dataflow::buffer::Buffer;
use weir_core::dataflow::partition::ChannelIndex;
use weir_core::dataflow::task::{StepStatus, TaskOutput, TaskRunner, TaskSetup};
use weir_core::ids::{AttemptNumber, JobId, SubtaskIndex, VertexIndex};
use weir_core::plan::JobPlan;
use weir_core::protocol::ExecutionId;
use weir_core::time::Time;

/// Records a task processes per turn before the next task gets one.
const STEP_BUDGET_RECORDS: usize = 64 * 1024;

/// How a local run ended.
pub struct LocalOutcome {
    /// Records the source vertices emitted.
    pub source_records: u64,
    /// Wall-clock seconds from the first step to the last task finishing.
    pub seconds: f64,
}

struct Slot {
    runner: TaskRunner,
    /// Buffers its input channels refused, per channel, in order.
    waiting: BTreeMap<ChannelIndex, VecDeque<Buffer>>,
    done: bool,
}

/// Runs every subtask of `plan` to completion; returns an error text when a task fails.
pub fn run(job_id: JobId, plan: &JobPlan, config: &Config) -> Result<LocalOutcome, String> {
    let mut connectors = LocalConnectors;
    let mut tasks: Vec<Slot> = Vec::new();
    let mut index_of: BTreeMap<(VertexIndex, SubtaskIndex), usize> = BTreeMap::new();
    for vertex in &plan.vertices {
        for subtask in 0..vertex.parallelism {
            let execution = ExecutionId {
                job: job_id,
                vertex: vertex.index,
                subtask: SubtaskIndex(subtask),
                attempt: AttemptNumber(0),
            };
            let setup = TaskSetup {
                execution,
                plan,
                config,
                restore: Vec::new(),
                connectors: &mut connectors,
                seed: (vertex.index.0 as u64) << 32 | subtask as u64,
                wait_for_final_checkpoint: false,
                restore_finished: false,
            };
            let runner = TaskRunner::new(setup).map_err(|error| format!("task {execution}: {error}"))?;
            index_of.insert((vertex.index, SubtaskIndex(subtask)), tasks.len());
            tasks.push(Slot { runner, waiting: BTreeMap::new(), done: false });
        }
    }
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let now = Time(started.elapsed().as_micros() as u64);
        let mut progressed = false;
        for position in 0..tasks.len() {
            progressed |= deliver_waiting(&mut tasks[position]);
            if tasks[position].done {
                continue;
            }
            let status = tasks[position].runner.step(now, STEP_BUDGET_RECORDS);
            progressed |= status == StepStatus::Progress;
            progressed |= route_outputs(plan, &mut tasks, &index_of, position)?;
        }
        if tasks.iter().all(|task| task.done) {
            break;
        }
        if last_report.elapsed().as_secs() >= 1 {
            last_report = Instant::now();
            print_progress(plan, &tasks, started.elapsed().as_secs_f64());
        }
        if !progressed {
            let next = tasks.iter().filter(|t| !t.done).filter_map(|t| t.runner.poll_timeout()).min();
            let wait_us = next.map(|at| at.0.saturating_sub(now.0)).unwrap_or(1_000).clamp(50, 1_000);
            std::thread::sleep(std::time::Duration::from_micros(wait_us));
        }
    }
    Ok(LocalOutcome { source_records: source_records(plan, &tasks), seconds: started.elapsed().as_secs_f64() })
}

/// Moves a task's outputs to their consumers; true when anything moved.
fn route_outputs(
    plan: &JobPlan,
    tasks: &mut [Slot],
    index_of: &BTreeMap<(VertexIndex, SubtaskIndex), usize>,
    position: usize,
) -> Result<bool, String> {
    let mut moved = false;
    let producer = tasks[position].runner.execution();
    while let Some(output) = tasks[position].runner.poll_output() {
        moved = true;
        match output {
            TaskOutput::Buffer { edge, consumer, buffer } => {
                let target = plan.edges[edge].target;
                let Some(&consumer_position) = index_of.get(&(target, consumer)) else {
                    return Err(format!("task {producer} sent to a missing subtask {consumer} of vertex {target}"));
                };
                let slot = &mut tasks[consumer_position];
                let Some(channel) = slot.runner.input_channel(edge, producer.subtask) else {
                    return Err(format!("vertex {target} has no input channel from {producer} on edge {edge}"));
                };
                slot.waiting.entry(channel).or_default().push_back(buffer);
                deliver_waiting(slot);
            }
            TaskOutput::Finished => tasks[position].done = true,
            TaskOutput::Failed { error } => return Err(format!("task {producer} failed: {error}")),
            // `weir local` takes no checkpoints yet: nothing triggers them.
            TaskOutput::Snapshot { .. } | TaskOutput::Decline { .. } => {}
        }
    }
    Ok(moved)
}

/// Hands a task the buffers waiting for its channels, in order, until one is refused.
fn deliver_waiting(slot: &mut Slot) -> bool {
    let mut moved = false;
    for (channel, queue) in slot.waiting.iter_mut() {
        while let Some(buffer) = queue.pop_front() {
            match slot.runner.push_buffer(*channel, buffer) {
                Ok(()) => moved = true,
                Err(refused) => {
                    queue.push_front(refused.item);
                    break;
                }
            }
        }
    }
    moved
}

fn source_records(plan: &JobPlan, tasks: &[Slot]) -> u64 {
    tasks
        .iter()
        .filter(|task| plan.vertex(task.runner.execution().vertex).is_source)
        .map(|task| task.runner.metrics().records_out)
        .sum()
}

fn print_progress(plan: &JobPlan, tasks: &[Slot], seconds: f64) {
    let mut per_vertex: BTreeMap<VertexIndex, (u64, u64, u32)> = BTreeMap::new();
    for task in tasks {
        let metrics = task.runner.metrics();
        let entry = per_vertex.entry(task.runner.execution().vertex).or_default();
        entry.0 += metrics.records_in;
        entry.1 += metrics.records_out;
        entry.2 += u32::from(task.done);
    }
    let parts: Vec<String> = per_vertex
        .iter()
        .map(|(vertex, (records_in, records_out, done))| {
            let name = &plan.vertex(*vertex).name;
            format!("[{name}] in {records_in} out {records_out} ({done}/{} done)", plan.vertex(*vertex).parallelism)
        })
        .collect();
    println!("{seconds:6.1} s  {}", parts.join("  "));
}
