//! A program with operators of its own: a Rust source of numbers, a Rust running sum per key
//! that keeps its sums in the operator and checkpoints them through `Operator::snapshot` /
//! `restore`, and weir's exactly-once file sink, checkpointed every 200 ms.
//!
//! ```text
//! cargo run -p weir-nodes --example custom_operators                   # embedded cluster
//! cargo run -p weir-nodes --example custom_operators -- --application  # its own cluster
//! ```
//!
//! Flags: `--application` (a JobManager in this process and `--task-managers N` TaskManager
//! processes, default 2, that are this program again), `--count N` numbers (default 20000),
//! `--rate N` numbers a second (default 10000), `--output DIR` (default
//! `/tmp/weir-custom-operators`), `--fail-once` (the running sum fails once after the first
//! completed checkpoint: the job restarts from it and the output is still exact), and
//! `-D key=value` for the cluster's configuration.
//!
//! Number `n` has key `n % 10`; each output line is `key,n,sum`, the sum of every number up to
//! `n` with that key. Committed part files are under the output directory.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use weir_core::config::RawConfig;
use weir_core::dataflow::operators::{
    Collector, Operator, OperatorContext, OperatorError, OperatorErrorKind, OperatorSnapshot, PollStatus,
    RestoredState, SourceOperator,
};
use weir_core::dataflow::partition::key_group_of;
use weir_core::ids::CheckpointId;
use weir_core::job::FileFormat;
use weir_core::job::builder::StreamEnvironment;
use weir_core::job::validate::ValidatedJob;
use weir_core::row::{Type, Value};
use weir_core::time::Time;
use weir_nodes::api::{self, ApplicationOptions, JobOutcome, LocalEnvironment, Operators};

/// Keys of the numbers: `n % KEYS`.
const KEYS: i64 = 10;

fn main() -> ExitCode {
    // Reading the flags has no side effects: TaskManager processes are this program started
    // again with the same flags, so they build the same operators before `api::main` makes
    // them TaskManagers.
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    api::main(operators(&args), |operators| run(&args, operators))
}

/// What the command line asks for.
#[derive(Clone, Debug)]
pub struct Args {
    /// Run as an application cluster rather than embedded.
    pub application: bool,
    /// TaskManager processes of the application cluster.
    pub task_managers: u32,
    /// Numbers the source emits: `0..count`.
    pub count: i64,
    /// Numbers a second, over all source subtasks.
    pub rate: u64,
    /// The file sink's directory.
    pub output: PathBuf,
    /// Fail once after the first completed checkpoint.
    pub fail_once: bool,
    /// `-D key=value` settings.
    pub config: Vec<(String, String)>,
}

impl Args {
    /// Reads the flags the module documentation lists.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut parsed = Args {
            application: false,
            task_managers: 2,
            count: 20_000,
            rate: 10_000,
            output: std::env::temp_dir().join("weir-custom-operators"),
            fail_once: false,
            config: Vec::new(),
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            let number = |text: String| text.parse::<u64>().map_err(|error| format!("{flag} {text:?}: {error}"));
            match flag.as_str() {
                "--application" => parsed.application = true,
                "--fail-once" => parsed.fail_once = true,
                "--task-managers" => {
                    parsed.task_managers = u32::try_from(number(value()?)?).map_err(|error| error.to_string())?;
                }
                "--count" => parsed.count = i64::try_from(number(value()?)?).map_err(|error| error.to_string())?,
                "--rate" => parsed.rate = number(value()?)?.max(1),
                "--output" => parsed.output = PathBuf::from(value()?),
                "-D" => parsed.config.push(RawConfig::parse_override(&value()?).map_err(|error| error.to_string())?),
                other => return Err(format!("unknown flag {other:?}; see the example's documentation")),
            }
        }
        Ok(parsed)
    }
}

/// The job: numbers (Rust) -> key by `k` -> running sums (Rust) -> exactly-once CSV files.
pub fn job(args: &Args) -> Result<ValidatedJob, String> {
    let env = StreamEnvironment::new("custom-operators");
    env.set_parallelism(2);
    env.set_config("execution.checkpointing.interval", "200 ms");
    env.set_config("restart-strategy.type", "fixed-delay");
    env.set_config("restart-strategy.fixed-delay.attempts", "3");
    env.set_config("restart-strategy.fixed-delay.delay", "200 ms");
    env.add_source("numbers")
        .uid("numbers")
        .returns(&[("k", Type::Int), ("n", Type::Int)])
        .key_by("k")
        .transform("running-sum")
        .uid("sums")
        .returns(&[("k", Type::Int), ("n", Type::Int), ("sum", Type::Int)])
        .file_sink(&args.output.display().to_string(), FileFormat::Csv)
        .uid("out");
    env.build().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        lines.join("\n")
    })
}

/// Runs the job embedded or as an application cluster, and prints how it ended.
pub fn run(args: &Args, operators: &Operators) -> Result<JobOutcome, String> {
    // Only here, in the process that runs the job, never before `api::main`: TaskManager
    // processes run that code too.
    match std::fs::remove_dir_all(&args.output) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: cannot clear the output: {error}", args.output.display()));
        }
        _ => {}
    }
    let job = job(args)?;
    let outcome = if args.application {
        let mut options = ApplicationOptions::new(args.task_managers);
        for (key, value) in &args.config {
            options = options.with_config(key, value);
        }
        api::run_application(job, operators, options)?
    } else {
        let mut environment = LocalEnvironment::new();
        for (key, value) in &args.config {
            environment = environment.with_config(key, value);
        }
        environment.execute(job, operators)?
    };
    let counts = match (outcome.checkpoints, outcome.restarts) {
        (Some(checkpoints), Some(restarts)) => format!("{checkpoints} checkpoints, {restarts} restarts; "),
        _ => String::new(), // an application cluster does not count them
    };
    println!("job {} {}: {counts}committed part files in {}", outcome.job_id, outcome.status, args.output.display());
    Ok(outcome)
}

/// The program's Rust operators, under the names the job uses, made as `args` say.
pub fn operators(args: &Args) -> Operators {
    let (count, rate, fail_once) = (args.count, args.rate, args.fail_once);
    Operators::new()
        .register("numbers", move |context| Box::new(Numbers::new(context, count, rate)))
        .register("running-sum", move |context| Box::new(RunningSum::new(context, fail_once)))
}

/// What a number source subtask has left: `next`, `next + stride`, ... below `end`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Split {
    next: i64,
    stride: i64,
    end: i64,
}

/// Emits `[n % KEYS, n]` for its share of `0..count`, at its share of the rate; its splits are
/// its checkpointed position.
struct Numbers {
    context: OperatorContext,
    splits: Vec<Split>,
    per_second: u64,
    started: Option<Time>,
    emitted: u64,
    row: Vec<Value>,
}

impl Numbers {
    fn new(context: &OperatorContext, count: i64, rate: u64) -> Numbers {
        let parallelism = i64::from(context.parallelism);
        let first = i64::from(context.subtask.0);
        let splits = vec![Split { next: first, stride: parallelism, end: count }];
        let per_second = (rate / u64::from(context.parallelism)).max(1);
        Numbers { context: context.clone(), splits, per_second, started: None, emitted: 0, row: vec![Value::Null; 2] }
    }

    /// Numbers allowed now: one at the start, then `per_second` a second.
    fn allowance(&mut self, now: Time, wanted: usize) -> usize {
        let started = *self.started.get_or_insert(now);
        let elapsed = u128::from(now.since(started).as_micros());
        let allowed = 1 + elapsed * u128::from(self.per_second) / 1_000_000;
        usize::try_from(allowed.saturating_sub(u128::from(self.emitted))).unwrap_or(usize::MAX).min(wanted)
    }
}

impl SourceOperator for Numbers {
    fn poll(&mut self, now: Time, max_records: usize, out: &mut dyn Collector) -> Result<PollStatus, OperatorError> {
        let budget = self.allowance(now, max_records);
        let mut emitted = 0;
        while emitted < budget {
            let Some(split) = self.splits.first_mut() else { break };
            if split.next >= split.end {
                self.splits.remove(0);
                continue;
            }
            self.row[0] = Value::Int(split.next % KEYS);
            self.row[1] = Value::Int(split.next);
            out.collect(&self.row)?;
            split.next += split.stride;
            emitted += 1;
        }
        self.splits.retain(|split| split.next < split.end);
        self.emitted += emitted as u64;
        Ok(match (self.splits.is_empty(), emitted < max_records) {
            (true, _) => PollStatus::Finished,
            (false, true) => PollStatus::Idle,
            (false, false) => PollStatus::Available,
        })
    }
}

impl Operator for Numbers {
    fn process(&mut self, _: &[Value], _: &mut dyn Collector) -> Result<(), OperatorError> {
        Err(self.context.error(OperatorErrorKind::NotAnInput))
    }

    fn next_timer(&self) -> Option<Time> {
        let started = self.started.filter(|_| !self.splits.is_empty())?;
        let micros = (u128::from(self.emitted) * 1_000_000).div_ceil(u128::from(self.per_second));
        Some(started.after(weir_core::time::Duration(u64::try_from(micros).unwrap_or(u64::MAX))))
    }

    fn snapshot(&mut self, _: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let items = self.splits.iter().map(|split| encode(&self.context, split)).collect::<Result<_, _>>()?;
        Ok(OperatorSnapshot { keyed: None, items, scalars: None })
    }

    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        self.splits = state.items.iter().map(|bytes| decode(&self.context, bytes)).collect::<Result<_, _>>()?;
        (self.started, self.emitted) = (None, 0);
        Ok(())
    }

    fn end_of_input(&mut self, out: &mut dyn Collector) -> Result<(), OperatorError> {
        out.emit_watermark(weir_core::dataflow::EventTime::MAX)
    }

    fn as_source(&mut self) -> Option<&mut dyn SourceOperator> {
        Some(self)
    }
}

/// Adds `[k, n, running sum of k]` to each `[k, n]`; the sums are its state, checkpointed as
/// the operator's scalars and filtered by key group on a restore, so a rescaled job keeps each
/// key's sum in the subtask that now owns the key.
struct RunningSum {
    context: OperatorContext,
    sums: BTreeMap<i64, i64>,
    /// Fail once, after the first completed checkpoint, unless restored (`--fail-once`).
    fail_once: bool,
    checkpoint_completed: bool,
    restored: bool,
    row: Vec<Value>,
}

impl RunningSum {
    fn new(context: &OperatorContext, fail_once: bool) -> RunningSum {
        // Only the first subtask fails, so one failure restarts the job once.
        let fail_once = fail_once && context.subtask.0 == 0;
        RunningSum {
            context: context.clone(),
            sums: BTreeMap::new(),
            fail_once,
            checkpoint_completed: false,
            restored: false,
            row: vec![Value::Null; 3],
        }
    }
}

impl Operator for RunningSum {
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        if self.fail_once && self.checkpoint_completed && !self.restored {
            let message = "the failure --fail-once asked for".to_string();
            return Err(self.context.error(OperatorErrorKind::Record(message)));
        }
        let (Some(Value::Int(key)), Some(Value::Int(n))) = (row.first(), row.get(1)) else {
            let message = format!("expected [key, n] as ints, got {row:?}");
            return Err(self.context.error(OperatorErrorKind::Record(message)));
        };
        let sum = self.sums.entry(*key).or_insert(0);
        *sum += n;
        (self.row[0], self.row[1], self.row[2]) = (Value::Int(*key), Value::Int(*n), Value::Int(*sum));
        out.collect(&self.row)
    }

    fn snapshot(&mut self, _: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let sums: Vec<(i64, i64)> = self.sums.iter().map(|(key, sum)| (*key, *sum)).collect();
        Ok(OperatorSnapshot { keyed: None, items: Vec::new(), scalars: Some(encode(&self.context, &sums)?) })
    }

    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        let owned = self.context.key_group_range();
        self.sums.clear();
        for bytes in &state.scalars {
            let sums: Vec<(i64, i64)> = decode(&self.context, bytes)?;
            let mine = sums
                .into_iter()
                .filter(|(key, _)| owned.contains(key_group_of(&Value::Int(*key), self.context.max_parallelism)));
            self.sums.extend(mine);
        }
        self.restored = true;
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, _: CheckpointId) -> Result<(), OperatorError> {
        self.checkpoint_completed = true;
        Ok(())
    }
}

fn encode<T: Serialize>(context: &OperatorContext, value: &T) -> Result<Vec<u8>, OperatorError> {
    serde_json::to_vec(value).map_err(|error| context.error(OperatorErrorKind::Snapshot(error.to_string())))
}

fn decode<T: serde::de::DeserializeOwned>(context: &OperatorContext, bytes: &[u8]) -> Result<T, OperatorError> {
    serde_json::from_slice(bytes).map_err(|error| context.error(OperatorErrorKind::Snapshot(error.to_string())))
}
