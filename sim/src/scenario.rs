//! Scenario files: a reproducible cluster, its jobs, its faults and what must come out.
//!
//! The format is documented for users in `docs/scenarios.md`. Times are durations from the
//! start of the run (`"10 s"`); a range (`"5 s..15 s"`) is drawn from the run's seed, so one file
//! covers many fault timings across seeds. Node names are `jm`, `tm-0`, `tm-1`, ...; `any-tm`
//! picks a live TaskManager when the fault fires, `busy-tm` a live one that holds a slot.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use weir_core::config::units::parse_duration;
use weir_core::job::JobGraph;
use weir_core::protocol::JobStatus;
use weir_core::rng::Rng;
use weir_core::time::Duration;

/// A scenario problem, naming the file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ScenarioError {
    /// The scenario file.
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

/// A parsed, checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name, for reports.
    pub name: String,
    /// What the scenario proves.
    pub description: String,
    /// Virtual time the run may take at most.
    pub run_for: Duration,
    /// TaskManagers and slots.
    pub cluster: Cluster,
    /// Configuration keys of the cluster.
    pub config: BTreeMap<String, String>,
    /// Link behaviour.
    pub network: NetworkSpec,
    /// Jobs to submit.
    pub jobs: Vec<JobSpec>,
    /// Scheduled faults.
    pub faults: Vec<FaultSpec>,
    /// Random faults drawn from the seed, if any.
    pub nemesis: Option<Nemesis>,
    /// How real tasks run: the cost of a record, the input files.
    pub data: DataSpec,
    /// Whether the code's fault points (`weir_core::buggify`) may take their rare paths.
    pub buggify: bool,
}

/// The data plane of real tasks (jobs with `tasks = "real"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSpec {
    /// Virtual CPU time a task spends per record it processes.
    pub record_cost: Duration,
    /// Files on the simulated storage when the run starts.
    pub files: Vec<InputFile>,
}

/// A generated input file: `words` words from a vocabulary of `vocabulary` words, `per_line` a
/// line, drawn from its own `seed` (not the run's), so every run reads the same text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// Where it lies on the simulated storage.
    pub path: String,
    /// Words in the file.
    pub words: u64,
    /// Words per line.
    #[serde(default = "eight")]
    pub per_line: u64,
    /// Distinct words.
    #[serde(default = "hundred")]
    pub vocabulary: u64,
    /// Seed of the text.
    #[serde(default = "one_u64")]
    pub seed: u64,
}

fn eight() -> u64 {
    8
}
fn hundred() -> u64 {
    100
}
fn one_u64() -> u64 {
    1
}

impl InputFile {
    /// The file's bytes.
    pub fn contents(&self) -> Vec<u8> {
        let mut rng = Rng::new(self.seed);
        let mut text = String::new();
        for index in 0..self.words {
            let word = rng.below(self.vocabulary.max(1));
            text.push_str(&format!("w{word}"));
            let line_end = (index + 1) % self.per_line.max(1) == 0 || index + 1 == self.words;
            text.push(if line_end { '\n' } else { ' ' });
        }
        text.into_bytes()
    }
}

/// What a job's committed output must be, compared with a run of the scenario without faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCheck {
    /// The same lines, each as often: nothing lost, nothing duplicated.
    ExactlyOnce,
    /// Every line of the fault-free output at least once (duplicates allowed).
    AtLeastOnce,
    /// Not compared.
    Unchecked,
}

/// Random faults: kinds, how often, how long, drawn from each run's seed.
#[derive(Debug, Clone)]
pub struct Nemesis {
    /// The fault kinds to draw from ([`NEMESIS_KINDS`]).
    pub kinds: Vec<String>,
    /// Time between two faults.
    pub interval: TimeSpec,
    /// No fault before this time.
    pub from: Duration,
    /// No fault after this time; every cut link heals then (the liveness phase follows).
    pub until: Duration,
    /// How long a crashed node stays down.
    pub restart_after: TimeSpec,
    /// How long an isolation, a partition or any other fault with a duration lasts.
    pub duration: TimeSpec,
    /// The extra latency of latency spikes and slow links, the widest extra delay of
    /// reordering, the extra time of slow fsyncs, and the size of clock jumps.
    pub latency: TimeSpec,
    /// Each seed uses a random non-empty subset of `kinds` (swarm testing).
    pub swarm: bool,
    /// Whether the JobManager may be hit too (`all`) or only TaskManagers (`tm`).
    pub include_job_manager: bool,
}

/// The simulated cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// TaskManager processes.
    pub task_managers: u32,
    /// Slots per TaskManager.
    #[serde(default = "one")]
    pub slots: u32,
    /// JobManager processes. With two or more the cluster runs highly available: the JobManagers
    /// `jm-0`, `jm-1`, … campaign for a lease in a simulated store node (`store`), the leader acts,
    /// standbys wait; TaskManagers and the client find the leader through the store.
    #[serde(default = "one")]
    pub job_managers: u32,
    /// The largest clock drift of a JobManager against the store, in parts per million; each
    /// JobManager draws its own drift (either way) and clock offset from the seed.
    #[serde(default)]
    pub clock_drift_ppm: u32,
}

impl Cluster {
    /// Whether the JobManagers elect a leader through the store.
    pub fn highly_available(&self) -> bool {
        self.job_managers >= 2
    }
}

fn one() -> u32 {
    1
}

/// Latency, loss and duplication of every link.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    /// Minimum one-way latency.
    pub latency: Duration,
    /// Extra latency drawn uniformly in `0..=jitter` per message (reorders messages).
    pub jitter: Duration,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Whether messages on one link may overtake each other (a link is FIFO by default).
    pub reorder: bool,
}

/// A job to submit.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The job graph.
    pub graph: JobGraph,
    /// Submission time.
    pub submit_at: TimeSpec,
    /// Default parallelism (the CLI's `-p`).
    pub parallelism: Option<u32>,
    /// How long each source subtask runs in the simulated task model; `None` runs until cancelled.
    pub source_runtime: Option<Duration>,
    /// When to cancel it, if at all.
    pub cancel_at: Option<TimeSpec>,
    /// When to stop it with a savepoint (under `/savepoints`), if at all.
    pub stop_with_savepoint_at: Option<TimeSpec>,
    /// Submit it from the savepoint of that earlier job's stop, once taken (instead of at
    /// `submit_at`).
    pub from_savepoint_of: Option<usize>,
    /// The status the job must end in.
    pub expect_status: Option<JobStatus>,
    /// A text the job's failure must contain.
    pub expect_failure: Option<String>,
    /// The exact number of restarts the job must see.
    pub expect_restarts: Option<u32>,
    /// The least number of restarts the job must see (proves a fault really hit it).
    pub min_restarts: Option<u32>,
    /// The least number of checkpoints the job must complete.
    pub min_checkpoints: Option<u32>,
    /// The least number of checkpoints that must fail (expire, be declined) while it runs.
    pub min_failed_checkpoints: Option<u32>,
    /// The least number of checkpoints the JobMaster must drop as unreadable (disk faults).
    pub min_dropped_checkpoints: Option<u32>,
    /// Whether its tasks run the real operators (`tasks = "real"`) or the task model.
    pub real_tasks: bool,
    /// What its committed file-sink output must be (real tasks only).
    pub output: OutputCheck,
}

/// A time or a range of times drawn from the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpec {
    /// Earliest.
    pub low: Duration,
    /// Latest (equal to `low` for a fixed time).
    pub high: Duration,
}

impl TimeSpec {
    /// Exactly `at`.
    pub fn fixed(at: Duration) -> TimeSpec {
        TimeSpec { low: at, high: at }
    }

    /// A time drawn from `rng` within the range.
    pub fn draw(&self, rng: &mut Rng) -> Duration {
        if self.high <= self.low {
            return self.low;
        }
        Duration(self.low.0 + rng.below(self.high.0 - self.low.0 + 1))
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The node's process dies (volatile state lost); restarts after `restart_after` if given.
    Crash {
        /// Delay until the node starts again, fresh.
        restart_after: Option<TimeSpec>,
    },
    /// The node is cut off from every other node; heals after `duration` if given.
    Isolate {
        /// How long.
        duration: Option<TimeSpec>,
    },
    /// The node and `peer` cannot reach each other (with `one_way`, only the node's messages to
    /// `peer` are lost); heals after `duration` if given.
    Partition {
        /// The other side.
        peer: String,
        /// How long.
        duration: Option<TimeSpec>,
        /// Only the direction from the node to `peer` is cut.
        one_way: bool,
    },
    /// The cluster splits into two halves drawn from the seed (the HA store stays with the
    /// first); no link crosses them until `duration` ends.
    Split {
        /// How long.
        duration: Option<TimeSpec>,
    },
    /// A link fault for `duration` on the node's links (every link when the node is empty, only
    /// those to `peer` when given): see [`LinkFault`].
    Link {
        /// Which link fault.
        fault: LinkFault,
        /// Only the links between the node and this one.
        peer: Option<String>,
        /// How long.
        duration: TimeSpec,
        /// The extra latency (a spike, a slow link) or the widest extra delay (reordering).
        latency: TimeSpec,
        /// Duplication: the probability a message arrives twice, in parts per million.
        probability_ppm: u32,
        /// A slow link: bytes per second its data connections carry.
        rate: Option<u64>,
    },
    /// The node's clock jumps forward by `jump` and/or drifts by `drift_ppm` from then on.
    Clock {
        /// A forward jump.
        jump: Option<TimeSpec>,
        /// The new drift, in parts per million.
        drift_ppm: Option<i32>,
    },
    /// The shared storage is full for `duration`: state files, `_metadata` and part files fail
    /// to write (checkpoints are declined, sinks fail their tasks).
    DiskFull {
        /// How long.
        duration: TimeSpec,
    },
    /// Every fsync (state files, `_metadata`) takes `latency` longer for `duration`.
    SlowFsync {
        /// How long.
        duration: TimeSpec,
        /// The extra time per fsync.
        latency: TimeSpec,
    },
    /// The TaskManager's CPU is `factor` times slower for `duration` (every record its real tasks
    /// process costs that much more); for the rest of the run without `duration`.
    SlowTaskManager {
        /// How long.
        duration: Option<TimeSpec>,
        /// How many times slower.
        factor: u32,
    },
    /// Every partition heals.
    Heal,
    /// The node's process is stopped (SIGSTOP) for `duration`: it handles nothing, and the step
    /// it was in the middle of sends its outputs only when it wakes (a zombie).
    Pause {
        /// How long.
        duration: TimeSpec,
    },
    /// The store answers every request `latency` late, for `duration`.
    Slow {
        /// How long.
        duration: TimeSpec,
        /// The extra delay per request.
        latency: TimeSpec,
    },
    /// A disk fault damages one task state file of the newest completed checkpoint.
    DamageCheckpoint {
        /// Flip a byte or cut the file short.
        damage: crate::disk::Damage,
    },
}

/// What a [`FaultKind::Link`] does to its links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// Every message and buffer takes `latency` longer.
    LatencySpike,
    /// Messages and buffers between two nodes take `latency` longer, and data connections carry
    /// at most `rate` bytes per second.
    SlowLink,
    /// RPC messages arrive twice with the given probability.
    Duplicate,
    /// Each RPC message gets an extra delay drawn in `0..=latency`, so messages overtake each other.
    Reorder,
}

impl LinkFault {
    /// The fault kind's name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            LinkFault::LatencySpike => "latency-spike",
            LinkFault::SlowLink => "slow-link",
            LinkFault::Duplicate => "duplicate",
            LinkFault::Reorder => "reorder",
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    /// When.
    pub at: TimeSpec,
    /// Which node (`jm`, `tm-N`, `any-tm`); unused for `heal`.
    pub node: String,
    /// What.
    pub kind: FaultKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    run_for: String,
    cluster: Cluster,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    job: Vec<RawJob>,
    #[serde(default)]
    fault: Vec<RawFault>,
    nemesis: Option<RawNemesis>,
    #[serde(default)]
    data: RawData,
    #[serde(default)]
    buggify: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawData {
    record_cost: Option<String>,
    #[serde(default)]
    file: Vec<InputFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNemesis {
    kinds: Vec<String>,
    interval: String,
    #[serde(default)]
    from: Option<String>,
    until: String,
    #[serde(default)]
    restart_after: Option<String>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    latency: Option<String>,
    #[serde(default)]
    swarm: bool,
    #[serde(default)]
    targets: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    latency: Option<String>,
    jitter: Option<String>,
    loss: Option<f64>,
    duplicate: Option<f64>,
    #[serde(default)]
    reorder: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    file: String,
    #[serde(default)]
    submit_at: Option<String>,
    parallelism: Option<u32>,
    source_runtime: Option<String>,
    cancel_at: Option<String>,
    stop_with_savepoint_at: Option<String>,
    from_savepoint_of: Option<usize>,
    expect: Option<String>,
    expect_failure: Option<String>,
    expect_restarts: Option<u32>,
    min_restarts: Option<u32>,
    min_checkpoints: Option<u32>,
    min_failed_checkpoints: Option<u32>,
    min_dropped_checkpoints: Option<u32>,
    tasks: Option<String>,
    output: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: String,
    at: String,
    #[serde(default)]
    node: String,
    peer: Option<String>,
    restart_after: Option<String>,
    duration: Option<String>,
    latency: Option<String>,
    #[serde(default)]
    one_way: bool,
    probability: Option<f64>,
    rate: Option<u64>,
    jump: Option<String>,
    drift_ppm: Option<i32>,
    factor: Option<u32>,
}

/// Reads a scenario file; job files it names are read relative to the scenario's folder.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let origin = path.display().to_string();
    let fail = |message: String| ScenarioError { origin: origin.clone(), message };
    let text = std::fs::read_to_string(path).map_err(|error| fail(format!("cannot read: {error}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&origin, &text, &|name| {
        let job_path = base.join(name);
        std::fs::read_to_string(&job_path)
            .map_err(|error| format!("cannot read job file {}: {error}", job_path.display()))
    })
}

/// Parses scenario text; `read_job` returns the text of a job file named in it.
pub fn parse(
    origin: &str,
    text: &str,
    read_job: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Scenario, ScenarioError> {
    let fail = |message: String| ScenarioError { origin: origin.to_string(), message };
    let raw: RawScenario = toml::from_str(text).map_err(|error| fail(error.to_string().trim().to_string()))?;
    if raw.cluster.task_managers == 0 || raw.cluster.slots == 0 {
        return Err(fail("cluster.task_managers and cluster.slots must be at least 1".into()));
    }
    let network = network(&raw.network).map_err(fail)?;
    let mut jobs = Vec::new();
    for (position, job) in raw.job.iter().enumerate() {
        jobs.push(job_spec(job, read_job).map_err(|message| fail(format!("job[{position}]: {message}")))?);
        if job.from_savepoint_of.is_some_and(|root| root >= position) {
            return Err(fail(format!("job[{position}]: `from_savepoint_of` must name an earlier job")));
        }
    }
    let mut faults = Vec::new();
    for (position, fault) in raw.fault.iter().enumerate() {
        let spec = fault_spec(fault, &raw.cluster);
        faults.push(spec.map_err(|message| fail(format!("fault[{position}]: {message}")))?);
    }
    let config = raw.config.iter().map(|(key, value)| (key.clone(), toml_text(value))).collect();
    let nemesis =
        raw.nemesis.as_ref().map(nemesis).transpose().map_err(|message| fail(format!("nemesis: {message}")))?;
    let data = DataSpec {
        record_cost: duration("data.record_cost", raw.data.record_cost.as_deref().unwrap_or("10 us")).map_err(fail)?,
        files: raw.data.file.clone(),
    };
    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        run_for: duration("run_for", &raw.run_for).map_err(fail)?,
        cluster: raw.cluster,
        config,
        network,
        jobs,
        faults,
        nemesis,
        data,
        buggify: raw.buggify,
    })
}

fn nemesis(raw: &RawNemesis) -> Result<Nemesis, String> {
    if raw.kinds.is_empty() {
        return Err("`kinds` lists no fault kind".to_string());
    }
    if let Some(kind) = raw.kinds.iter().find(|kind| !NEMESIS_KINDS.contains(&kind.as_str())) {
        return Err(format!("unknown fault kind {kind:?}; use {}", NEMESIS_KINDS.join(", ")));
    }
    let interval = time_spec("interval", &raw.interval)?;
    if interval.low == Duration::ZERO {
        return Err("`interval` must be longer than zero".to_string());
    }
    let include_job_manager = match raw.targets.as_deref() {
        None | Some("tm") => false,
        Some("all") => true,
        Some(other) => return Err(format!("unknown targets {other:?}; use tm or all")),
    };
    Ok(Nemesis {
        kinds: raw.kinds.clone(),
        interval,
        from: duration("from", raw.from.as_deref().unwrap_or("1 s"))?,
        until: duration("until", &raw.until)?,
        restart_after: time_spec("restart_after", raw.restart_after.as_deref().unwrap_or("1 s..10 s"))?,
        duration: time_spec("duration", raw.duration.as_deref().unwrap_or("2 s..10 s"))?,
        latency: time_spec("latency", raw.latency.as_deref().unwrap_or("20 ms..500 ms"))?,
        swarm: raw.swarm,
        include_job_manager,
    })
}

impl Nemesis {
    /// The faults of one run, drawn from `rng`: a schedule of crashes, isolations and
    /// partitions between `from` and `until`, then a heal of everything at `until`.
    pub fn draw(&self, rng: &mut Rng, task_managers: u32) -> Vec<FaultSpec> {
        let kinds = self.kinds_of_this_run(rng);
        let mut faults = Vec::new();
        let mut at = self.from.0 + self.interval.draw(rng).0;
        while at < self.until.0 {
            let kind = &kinds[rng.below(kinds.len() as u64) as usize];
            let node = self.victim(rng, task_managers);
            let time = TimeSpec { low: Duration(at), high: Duration(at) };
            let (duration, latency) = (self.duration, self.latency);
            let mut node = node;
            let fault = match kind.as_str() {
                "crash" => FaultKind::Crash { restart_after: Some(self.restart_after) },
                "isolate" => FaultKind::Isolate { duration: Some(duration) },
                "partition" | "one-way-partition" | "slow-link" => {
                    let mut peer = self.victim(rng, task_managers);
                    while peer == node && task_managers + u32::from(self.include_job_manager) > 1 {
                        peer = self.victim(rng, task_managers);
                    }
                    match kind.as_str() {
                        "slow-link" => {
                            let rate = Some(100_000 + rng.below(10_000_000));
                            let peer = Some(peer);
                            FaultKind::Link {
                                fault: LinkFault::SlowLink,
                                peer,
                                duration,
                                latency,
                                probability_ppm: 0,
                                rate,
                            }
                        }
                        one_way => FaultKind::Partition {
                            peer,
                            duration: Some(duration),
                            one_way: one_way == "one-way-partition",
                        },
                    }
                }
                "split" => FaultKind::Split { duration: Some(duration) },
                "pause" => FaultKind::Pause { duration },
                "latency-spike" | "duplicate" | "reorder" => {
                    node = String::new(); // every link
                    let fault = match kind.as_str() {
                        "latency-spike" => LinkFault::LatencySpike,
                        "duplicate" => LinkFault::Duplicate,
                        _ => LinkFault::Reorder,
                    };
                    let probability_ppm =
                        if fault == LinkFault::Duplicate { 100_000 + rng.below(400_000) as u32 } else { 0 };
                    FaultKind::Link { fault, peer: None, duration, latency, probability_ppm, rate: None }
                }
                "clock" => FaultKind::Clock { jump: Some(latency), drift_ppm: Some(rng.between(-1_000, 1_000) as i32) },
                "disk-full" => {
                    node = String::new();
                    FaultKind::DiskFull { duration }
                }
                "slow-fsync" => {
                    node = String::new();
                    FaultKind::SlowFsync { duration, latency }
                }
                _ => FaultKind::SlowTaskManager { duration: Some(duration), factor: 2 + rng.below(9) as u32 },
            };
            faults.push(FaultSpec { at: time, node, kind: fault });
            at += self.interval.draw(rng).0;
        }
        faults.push(FaultSpec {
            at: TimeSpec { low: self.until, high: self.until },
            node: String::new(),
            kind: FaultKind::Heal,
        });
        faults
    }

    fn kinds_of_this_run(&self, rng: &mut Rng) -> Vec<String> {
        if !self.swarm {
            return self.kinds.clone();
        }
        loop {
            let subset: Vec<String> = self.kinds.iter().filter(|_| rng.chance(0.5)).cloned().collect();
            if !subset.is_empty() {
                return subset;
            }
        }
    }

    fn victim(&self, rng: &mut Rng, task_managers: u32) -> String {
        let choices = task_managers as u64 + u64::from(self.include_job_manager);
        match rng.below(choices) {
            n if n < task_managers as u64 => format!("tm-{n}"),
            _ => "jm".to_string(),
        }
    }
}

fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn duration(field: &str, text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|reason| format!("`{field}`: bad duration {text:?}: {reason}"))
}

fn time_spec(field: &str, text: &str) -> Result<TimeSpec, String> {
    match text.split_once("..") {
        Some((low, high)) => {
            let (low, high) = (duration(field, low)?, duration(field, high)?);
            if high < low {
                return Err(format!("`{field}`: range {text:?} ends before it starts"));
            }
            Ok(TimeSpec { low, high })
        }
        None => {
            let at = duration(field, text)?;
            Ok(TimeSpec { low: at, high: at })
        }
    }
}

fn optional(field: &str, text: &Option<String>) -> Result<Option<TimeSpec>, String> {
    text.as_deref().map(|text| time_spec(field, text)).transpose()
}

fn network(raw: &RawNetwork) -> Result<NetworkSpec, String> {
    let probability = |field: &str, value: Option<f64>| match value {
        Some(p) if !(0.0..=1.0).contains(&p) => Err(format!("network.{field} must lie in 0..1, got {p}")),
        other => Ok(other.unwrap_or(0.0)),
    };
    Ok(NetworkSpec {
        latency: duration("network.latency", raw.latency.as_deref().unwrap_or("1 ms"))?,
        jitter: duration("network.jitter", raw.jitter.as_deref().unwrap_or("2 ms"))?,
        loss: probability("loss", raw.loss)?,
        duplicate: probability("duplicate", raw.duplicate)?,
        reorder: raw.reorder,
    })
}

fn job_spec(raw: &RawJob, read_job: &dyn Fn(&str) -> Result<String, String>) -> Result<JobSpec, String> {
    let text = read_job(&raw.file)?;
    let job = weir_core::job::file::parse_job_file(&raw.file, &text).map_err(|errors| errors.to_string())?;
    let expect_status = match raw.expect.as_deref() {
        None => None,
        Some(name) => Some(
            JobStatus::ALL
                .into_iter()
                .find(|status| status.name().eq_ignore_ascii_case(name))
                .ok_or_else(|| format!("`expect`: unknown job status {name:?}"))?,
        ),
    };
    let source_runtime = match raw.source_runtime.as_deref() {
        None | Some("unbounded") => None,
        Some(text) => Some(duration("source_runtime", text)?),
    };
    Ok(JobSpec {
        graph: job.graph,
        submit_at: time_spec("submit_at", raw.submit_at.as_deref().unwrap_or("0 s"))?,
        parallelism: raw.parallelism,
        source_runtime,
        cancel_at: optional("cancel_at", &raw.cancel_at)?,
        stop_with_savepoint_at: optional("stop_with_savepoint_at", &raw.stop_with_savepoint_at)?,
        from_savepoint_of: raw.from_savepoint_of,
        expect_status,
        expect_failure: raw.expect_failure.clone(),
        expect_restarts: raw.expect_restarts,
        min_restarts: raw.min_restarts,
        min_checkpoints: raw.min_checkpoints,
        min_failed_checkpoints: raw.min_failed_checkpoints,
        min_dropped_checkpoints: raw.min_dropped_checkpoints,
        real_tasks: match raw.tasks.as_deref() {
            None | Some("modelled") => false,
            Some("real") => true,
            Some(other) => return Err(format!("`tasks`: unknown {other:?}; use real or modelled")),
        },
        output: match raw.output.as_deref() {
            None | Some("exactly-once") => OutputCheck::ExactlyOnce,
            Some("at-least-once") => OutputCheck::AtLeastOnce,
            Some("unchecked") => OutputCheck::Unchecked,
            Some(other) => {
                return Err(format!("`output`: unknown {other:?}; use exactly-once, at-least-once or unchecked"));
            }
        },
    })
}

fn check_node(name: &str, cluster: &Cluster) -> Result<(), String> {
    let task_managers = cluster.task_managers;
    let ha = cluster.highly_available();
    let job_manager = |name: &str| {
        name.strip_prefix("jm-").and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n < cluster.job_managers)
    };
    let known = if ha { name == "leader" || name == "store" || job_manager(name) } else { name == "jm" };
    let known = known
        || name == "any-tm"
        || name == "busy-tm"
        || name.strip_prefix("tm-").and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n < task_managers);
    if known {
        Ok(())
    } else {
        let job_managers =
            if ha { format!("leader, store, jm-0..jm-{}", cluster.job_managers - 1) } else { "jm".into() };
        Err(format!("unknown node {name:?}; nodes are {job_managers}, any-tm, busy-tm, tm-0..tm-{}", task_managers - 1))
    }
}

fn fault_spec(raw: &RawFault, cluster: &Cluster) -> Result<FaultSpec, String> {
    let at = time_spec("at", &raw.at)?;
    let kind = match raw.kind.as_str() {
        "crash" => FaultKind::Crash { restart_after: optional("restart_after", &raw.restart_after)? },
        "isolate" => FaultKind::Isolate { duration: optional("duration", &raw.duration)? },
        "partition" => {
            let peer = raw.peer.clone().ok_or("a partition needs `peer`, the node on the other side")?;
            check_node(&peer, cluster)?;
            FaultKind::Partition { peer, duration: optional("duration", &raw.duration)?, one_way: raw.one_way }
        }
        "split" => FaultKind::Split { duration: optional("duration", &raw.duration)? },
        "latency-spike" | "slow-link" | "duplicate" | "reorder" => link_fault(raw, cluster)?,
        "clock" => {
            let jump = optional("jump", &raw.jump)?;
            if jump.is_none() && raw.drift_ppm.is_none() {
                return Err("a clock fault needs `jump` (a forward jump) or `drift_ppm`, or both".to_string());
            }
            if raw.drift_ppm.is_some_and(|ppm| ppm.unsigned_abs() >= 1_000_000) {
                return Err("`drift_ppm` must lie strictly between -1000000 and 1000000".to_string());
            }
            FaultKind::Clock { jump, drift_ppm: raw.drift_ppm }
        }
        "disk-full" => FaultKind::DiskFull { duration: required("duration", &raw.duration)? },
        "slow-fsync" => FaultKind::SlowFsync {
            duration: required("duration", &raw.duration)?,
            latency: required("latency", &raw.latency)?,
        },
        "slow-tm" => {
            let factor = raw.factor.ok_or("a slow-tm fault needs `factor`, how many times slower")?;
            if factor < 2 {
                return Err("`factor` must be at least 2".to_string());
            }
            FaultKind::SlowTaskManager { duration: optional("duration", &raw.duration)?, factor }
        }
        "heal" => FaultKind::Heal,
        "pause" => FaultKind::Pause { duration: time_spec("duration", raw.duration.as_deref().unwrap_or(""))? },
        "slow" => FaultKind::Slow {
            duration: time_spec("duration", raw.duration.as_deref().unwrap_or(""))?,
            latency: time_spec("latency", raw.latency.as_deref().unwrap_or(""))?,
        },
        "corrupt-checkpoint" => FaultKind::DamageCheckpoint { damage: crate::disk::Damage::Corrupt },
        "truncate-checkpoint" => FaultKind::DamageCheckpoint { damage: crate::disk::Damage::Truncate },
        other => {
            return Err(format!("unknown fault kind {other:?}; use {}", FAULT_KINDS.join(", ")));
        }
    };
    let needs_node = match &kind {
        FaultKind::Heal | FaultKind::Split { .. } | FaultKind::DiskFull { .. } | FaultKind::SlowFsync { .. } => false,
        FaultKind::DamageCheckpoint { .. } => !raw.node.is_empty(),
        FaultKind::Link { fault, .. } => *fault == LinkFault::SlowLink || !raw.node.is_empty(),
        _ => true,
    };
    if needs_node {
        check_node(&raw.node, cluster)?;
    }
    Ok(FaultSpec { at, node: raw.node.clone(), kind })
}

/// Every fault kind a nemesis may draw.
pub const NEMESIS_KINDS: &[&str] = &[
    "crash",
    "isolate",
    "partition",
    "one-way-partition",
    "split",
    "pause",
    "latency-spike",
    "slow-link",
    "duplicate",
    "reorder",
    "clock",
    "disk-full",
    "slow-fsync",
    "slow-tm",
];

/// Every fault kind a `[[fault]]` table may name.
pub const FAULT_KINDS: &[&str] = &[
    "crash",
    "isolate",
    "partition",
    "split",
    "heal",
    "pause",
    "slow",
    "latency-spike",
    "slow-link",
    "duplicate",
    "reorder",
    "clock",
    "disk-full",
    "slow-fsync",
    "slow-tm",
    "corrupt-checkpoint",
    "truncate-checkpoint",
];

fn required(field: &str, text: &Option<String>) -> Result<TimeSpec, String> {
    time_spec(field, text.as_deref().ok_or_else(|| format!("this fault kind needs `{field}`"))?)
}

fn link_fault(raw: &RawFault, cluster: &Cluster) -> Result<FaultKind, String> {
    let fault = match raw.kind.as_str() {
        "latency-spike" => LinkFault::LatencySpike,
        "slow-link" => LinkFault::SlowLink,
        "duplicate" => LinkFault::Duplicate,
        _ => LinkFault::Reorder,
    };
    if let Some(peer) = &raw.peer {
        check_node(peer, cluster)?;
    }
    if fault == LinkFault::SlowLink && raw.peer.is_none() {
        return Err("a slow-link fault needs `node` and `peer`, the two ends of the link".to_string());
    }
    let probability = raw.probability.unwrap_or(if fault == LinkFault::Duplicate { 0.5 } else { 0.0 });
    if !(0.0..=1.0).contains(&probability) {
        return Err(format!("`probability` must lie in 0..1, got {probability}"));
    }
    let latency = match fault {
        LinkFault::Duplicate => TimeSpec::fixed(Duration::ZERO),
        _ => required("latency", &raw.latency)?,
    };
    if raw.rate == Some(0) {
        return Err("`rate` must be at least 1 byte per second".to_string());
    }
    Ok(FaultKind::Link {
        fault,
        peer: raw.peer.clone(),
        duration: required("duration", &raw.duration)?,
        latency,
        probability_ppm: (probability * 1_000_000.0).round() as u32,
        rate: raw.rate,
    })
}

fn render_time(spec: &TimeSpec) -> String {
    let one = |duration: Duration| format!("{} us", duration.0);
    if spec.low == spec.high { one(spec.low) } else { format!("{}..{}", one(spec.low), one(spec.high)) }
}

/// The faults as `[[fault]]` tables of a scenario file.
pub fn render_faults(faults: &[FaultSpec]) -> String {
    let mut text = String::new();
    for fault in faults {
        text.push_str("[[fault]]\n");
        let (kind, extra) = match &fault.kind {
            FaultKind::Crash { restart_after } => {
                ("crash", restart_after.map(|t| format!("restart_after = \"{}\"\n", render_time(&t))))
            }
            FaultKind::Isolate { duration } => {
                ("isolate", duration.map(|t| format!("duration = \"{}\"\n", render_time(&t))))
            }
            FaultKind::Partition { peer, duration, one_way } => {
                let duration = duration.map(|t| format!("duration = \"{}\"\n", render_time(&t))).unwrap_or_default();
                let one_way = if *one_way { "one_way = true\n" } else { "" };
                ("partition", Some(format!("peer = \"{peer}\"\n{duration}{one_way}")))
            }
            FaultKind::Split { duration } => {
                ("split", duration.map(|t| format!("duration = \"{}\"\n", render_time(&t))))
            }
            FaultKind::Link { fault, peer, duration, latency, probability_ppm, rate } => {
                let mut extra = format!("duration = \"{}\"\n", render_time(duration));
                if *fault != LinkFault::Duplicate {
                    extra.push_str(&format!("latency = \"{}\"\n", render_time(latency)));
                } else {
                    extra.push_str(&format!("probability = {}\n", *probability_ppm as f64 / 1_000_000.0));
                }
                if let Some(peer) = peer {
                    extra.push_str(&format!("peer = \"{peer}\"\n"));
                }
                if let Some(rate) = rate {
                    extra.push_str(&format!("rate = {rate}\n"));
                }
                (fault.name(), Some(extra))
            }
            FaultKind::Clock { jump, drift_ppm } => {
                let mut extra = String::new();
                if let Some(jump) = jump {
                    extra.push_str(&format!("jump = \"{}\"\n", render_time(jump)));
                }
                if let Some(ppm) = drift_ppm {
                    extra.push_str(&format!("drift_ppm = {ppm}\n"));
                }
                ("clock", Some(extra))
            }
            FaultKind::DiskFull { duration } => {
                ("disk-full", Some(format!("duration = \"{}\"\n", render_time(duration))))
            }
            FaultKind::SlowFsync { duration, latency } => (
                "slow-fsync",
                Some(format!("duration = \"{}\"\nlatency = \"{}\"\n", render_time(duration), render_time(latency))),
            ),
            FaultKind::SlowTaskManager { duration, factor } => {
                let duration = duration.map(|t| format!("duration = \"{}\"\n", render_time(&t))).unwrap_or_default();
                ("slow-tm", Some(format!("factor = {factor}\n{duration}")))
            }
            FaultKind::Heal => ("heal", None),
            FaultKind::Pause { duration } => ("pause", Some(format!("duration = \"{}\"\n", render_time(duration)))),
            FaultKind::Slow { duration, latency } => (
                "slow",
                Some(format!("duration = \"{}\"\nlatency = \"{}\"\n", render_time(duration), render_time(latency))),
            ),
            FaultKind::DamageCheckpoint { damage: crate::disk::Damage::Corrupt } => ("corrupt-checkpoint", None),
            FaultKind::DamageCheckpoint { damage: crate::disk::Damage::Truncate } => ("truncate-checkpoint", None),
        };
        text.push_str(&format!("kind = \"{kind}\"\nat = \"{}\"\n", render_time(&fault.at)));
        if !fault.node.is_empty() {
            text.push_str(&format!("node = \"{}\"\n", fault.node));
        }
        text.push_str(&extra.unwrap_or_default());
        text.push('\n');
    }
    text
}

/// The scenario text without its `[nemesis]` and `[[fault]]` tables.
pub fn without_faults(text: &str) -> String {
    let mut kept = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let header = line.trim_start();
        if header.starts_with('[') {
            skipping = header.starts_with("[[fault]]") || header.starts_with("[nemesis]");
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "name = \"j\"\n[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = 5\n\
                       [[operator]]\nid = \"d\"\ntype = \"discard\"\ninput = \"s\"\n";

    fn read(_: &str) -> Result<String, String> {
        Ok(JOB.to_string())
    }

    #[test]
    fn a_full_scenario_parses() {
        let text = r#"
name = "x"
run_for = "2 min"
[cluster]
task_managers = 3
slots = 2
[config]
"heartbeat.timeout" = "5 s"
"restart-strategy.fixed-delay.attempts" = 3
[network]
jitter = "5 ms"
loss = 0.01
[[job]]
file = "job.toml"
parallelism = 4
source_runtime = "30 s"
expect = "finished"
[[fault]]
kind = "crash"
node = "any-tm"
at = "5 s..20 s"
restart_after = "10 s"
"#;
        let scenario = parse("s.toml", text, &read).unwrap();
        assert_eq!(scenario.cluster.slots, 2);
        assert_eq!(scenario.config["restart-strategy.fixed-delay.attempts"], "3");
        assert_eq!(scenario.jobs[0].expect_status, Some(JobStatus::Finished));
        assert_eq!(scenario.faults[0].at, TimeSpec { low: Duration::from_secs(5), high: Duration::from_secs(20) });
    }

    #[test]
    fn the_new_fault_kinds_parse_render_and_refuse_what_is_missing() {
        let base = "name = \"x\"\nrun_for = \"1 s\"\n[cluster]\ntask_managers = 2\n";
        let fault = |body: &str| parse("s.toml", &format!("{base}[[fault]]\nat = \"1 s\"\n{body}"), &read);
        let slow = fault(concat!(
            "kind = \"slow-link\"\nnode = \"tm-0\"\npeer = \"tm-1\"\n",
            "duration = \"2 s\"\nlatency = \"5 ms\"\nrate = 1000\n",
        ));
        let slow = slow.unwrap();
        assert!(matches!(&slow.faults[0].kind, FaultKind::Link { fault: LinkFault::SlowLink, rate: Some(1000), .. }));
        let rendered = render_faults(&slow.faults);
        let again = parse("s.toml", &format!("{base}{rendered}"), &read).unwrap();
        assert_eq!(again.faults, slow.faults, "rendered faults parse back the same");
        let one_way = fault("kind = \"partition\"\nnode = \"jm\"\npeer = \"tm-1\"\none_way = true\n").unwrap();
        assert!(matches!(&one_way.faults[0].kind, FaultKind::Partition { one_way: true, .. }));
        for (body, problem) in [
            (
                "kind = \"slow-link\"\nnode = \"tm-0\"\nduration = \"1 s\"\nlatency = \"1 ms\"\n",
                "needs `node` and `peer`",
            ),
            ("kind = \"clock\"\nnode = \"tm-0\"\n", "needs `jump`"),
            ("kind = \"disk-full\"\n", "needs `duration`"),
            ("kind = \"slow-tm\"\nnode = \"tm-0\"\nfactor = 1\n", "at least 2"),
            ("kind = \"duplicate\"\nduration = \"1 s\"\nprobability = 2.0\n", "must lie in 0..1"),
        ] {
            let error = fault(body).unwrap_err().to_string();
            assert!(error.contains(problem), "{error}");
        }
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let base = "name = \"x\"\nrun_for = \"1 s\"\n[cluster]\ntask_managers = 1\n";
        let error =
            parse("s.toml", &format!("{base}[[fault]]\nkind = \"explode\"\nat = \"1 s\"\nnode = \"jm\"\n"), &read);
        assert!(error.unwrap_err().to_string().contains("s.toml: fault[0]: unknown fault kind \"explode\""));
        let error =
            parse("s.toml", &format!("{base}[[fault]]\nkind = \"crash\"\nat = \"1 s\"\nnode = \"tm-4\"\n"), &read);
        assert!(error.unwrap_err().to_string().contains("unknown node \"tm-4\""));
        let error = parse("s.toml", &format!("{base}bogus = 1\n"), &read).unwrap_err();
        assert!(error.to_string().contains("bogus"), "{error}");
    }
}
