//! The Rust API end to end: the example program's job (a Rust source, a Rust running sum per
//! key with its state in the operator, weir's exactly-once file sink, one injected failure) on
//! an embedded cluster and as its own application cluster of three processes; a job whose Rust
//! operator nobody registered; a built job submitted to `weir local` over REST as a graph, and
//! one with Rust operators that such a cluster refuses.

#[path = "../examples/custom_operators.rs"]
#[allow(dead_code)]
mod example;

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use support::free_port;
use weir_core::config::RawConfig;
use weir_core::job::FileFormat;
use weir_core::job::builder::StreamEnvironment;
use weir_core::protocol::JobStatus;
use weir_nodes::api::{LocalEnvironment, Operators, RemoteEnvironment};
use weir_nodes::runtime::cluster::LocalCluster;

fn temp_dir(name: &str) -> PathBuf {
    support::temp_dir("api-test", name)
}

/// Longest wait for a job or a process.
const WAIT_MAX: Duration = Duration::from_secs(120);
/// Numbers the example's source emits in these tests, and how fast: two seconds, so the first
/// checkpoint completes, and the injected failure strikes, well before the source ends.
const COUNT: u64 = 6_000;
const RATE: u64 = 3_000;

fn example_args(output: &Path, extra: &[&str]) -> example::Args {
    let mut args: Vec<String> = ["--count", &COUNT.to_string(), "--rate", &RATE.to_string(), "--fail-once"]
        .iter()
        .map(|text| text.to_string())
        .collect();
    args.extend(["--output".to_string(), output.display().to_string()]);
    args.extend(extra.iter().map(|text| text.to_string()));
    example::Args::parse(args).expect("valid flags")
}

/// The lines a run without failures writes: `k,n,sum` for every number, the sum of the numbers
/// up to `n` with key `k`, in no particular order.
fn expected_lines(count: u64) -> Vec<String> {
    let mut sums = BTreeMap::new();
    let mut lines: Vec<String> = (0..count as i64)
        .map(|n| {
            let sum = sums.entry(n % 10).or_insert(0);
            *sum += n;
            format!("{},{n},{sum}", n % 10)
        })
        .collect();
    lines.sort();
    lines
}

/// Every line of the committed part files under `dir`, sorted, and the attempt suffixes of
/// those files (`part-<subtask>-<n>-a<attempt>`; none for attempt 0).
fn committed(dir: &Path) -> (Vec<String>, BTreeSet<Option<String>>) {
    let mut lines = Vec::new();
    let mut attempts = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("the output directory").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("part-") {
            continue; // pending parts are not committed output
        }
        attempts.insert(name.split('-').nth(3).map(str::to_string));
        let text = std::fs::read_to_string(entry.path()).expect("a part file");
        lines.extend(text.lines().map(str::to_string));
    }
    lines.sort();
    (lines, attempts)
}

fn assert_exactly_once(dir: &Path) {
    let (lines, attempts) = committed(dir);
    let expected = expected_lines(COUNT);
    assert_eq!(lines.len(), expected.len(), "committed lines, from attempts {attempts:?}");
    assert!(lines == expected, "the committed lines differ from a run without failures");
    assert!(attempts.len() >= 2, "parts of the attempt before the failure and after: {attempts:?}");
}

#[test]
fn local_environment_runs_rust_operators_through_a_failure_to_the_exact_output() {
    let dir = temp_dir("local");
    let args = example_args(&dir.join("out"), &[]);
    let environment = LocalEnvironment::new().with_data_dir(&dir);
    let outcome = environment.execute(example::job(&args).expect("a valid job"), &example::operators(&args));
    let outcome = outcome.expect("the job runs");
    assert_eq!(outcome.status, JobStatus::Finished, "{:?}", outcome.failure);
    assert_eq!(outcome.restarts, Some(1), "the injected failure restarts the job once");
    assert!(outcome.checkpoints.is_some_and(|count| count >= 1), "{outcome:?}");
    assert_exactly_once(&dir.join("out"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_job_naming_an_unregistered_rust_operator_is_refused_before_it_starts() {
    let dir = temp_dir("unregistered");
    let args = example_args(&dir.join("out"), &[]);
    let only_source = Operators::new().register("numbers", |_| unreachable!("the job never starts"));
    let refused = LocalEnvironment::new().execute(example::job(&args).expect("a valid job"), &only_source);
    let error = refused.expect_err("refused");
    assert_eq!(error, "operator `sums`: no Rust operator is registered as `running-sum`");
    assert!(!dir.join("out").exists(), "nothing ran");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_task_whose_rust_operator_is_missing_fails_its_job_with_cores_message() {
    let dir = temp_dir("missing");
    let args = example_args(&dir.join("out"), &[]);
    let job = example::job(&args).expect("a valid job");
    let mut cluster = LocalCluster::start(RawConfig::new(), 2, &dir).expect("the embedded cluster starts");
    let no_restarts = BTreeMap::from([("restart-strategy.type".to_string(), "none".to_string())]);
    let job_id = cluster.submit(job.graph, None, no_restarts).expect("submitted");
    let started = Instant::now();
    let end = cluster.run_until_done(job_id, &mut |_| {}, &mut |_| {
        assert!(started.elapsed() < WAIT_MAX, "the job did not fail within {WAIT_MAX:?}");
    });
    assert_eq!(end.status, JobStatus::Failed);
    let failure = end.failure.unwrap_or_default();
    assert!(failure.contains("no Rust operator is registered as `"), "{failure}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `weir local` in the background with spare slots, killed when dropped.
struct WeirLocal {
    child: Child,
    address: String,
    /// Its standard output, kept open: `weir local` prints progress every second and would die
    /// of SIGPIPE if nobody read it.
    stdout: Receiver<String>,
}

impl WeirLocal {
    fn start(dir: &Path) -> WeirLocal {
        let job = dir.join("endless.toml");
        let endless = "name = \"endless\"\n[[operator]]\nid = \"numbers\"\ntype = \"sequence\"\nto = 999_999_999\n\
                       rate = 100\n[[operator]]\nid = \"sink\"\ntype = \"discard\"\ninput = \"numbers\"\n";
        std::fs::write(&job, endless).expect("job file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("local")
            .arg(&job)
            .args(["-D", "rest.port=0", "-D", "taskmanager.numberOfTaskSlots=3"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("weir local starts");
        let lines = lines_of(child.stdout.take().expect("piped"));
        // Killed when dropped, even if it never says where its REST API is.
        let mut local = WeirLocal { child, address: String::new(), stdout: lines };
        let deadline = Instant::now() + WAIT_MAX;
        while local.address.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = local.stdout.recv_timeout(left).expect("weir local prints its REST address in time");
            if let Some(address) = line.strip_prefix("REST API at http://") {
                local.address = address.to_string();
            }
        }
        local
    }
}

impl Drop for WeirLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `output`, as they come, from a thread of their own.
fn lines_of(output: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

#[test]
fn remote_environment_runs_a_built_job_on_weir_local_and_is_told_it_lacks_rust_operators() {
    let dir = temp_dir("remote");
    let local = WeirLocal::start(&dir);
    let remote = RemoteEnvironment::new(&local.address).expect("an address");
    let out = dir.join("out");
    let env = StreamEnvironment::new("built-over-rest");
    env.sequence(0, 999)
        .map(&[("k", "x % 7"), ("x", "x")])
        .key_by("k")
        .aggregate(&[("n", "count()")])
        .file_sink(&out.display().to_string(), FileFormat::Csv);
    let job = env.build().expect("a valid job");
    let job_id = remote.submit(&job, Some(1)).expect("accepted");
    let outcome = remote.wait(job_id, Some(WAIT_MAX)).expect("the job ends");
    assert_eq!((outcome.job_id, outcome.status), (job_id, JobStatus::Finished), "{:?}", outcome.failure);
    let (lines, _) = committed(&out);
    let mut expected: Vec<String> =
        (0..7).flat_map(|k| (1..=(1000 - k + 6) / 7).map(move |n| format!("{k},{n}"))).collect();
    expected.sort();
    assert_eq!(lines, expected, "every key's running count, once each");

    let args = example_args(&dir.join("rust-out"), &[]);
    let error = remote.submit(&example::job(&args).expect("a valid job"), None).expect_err("refused");
    assert!(error.contains("this cluster has no Rust operators"), "{error}");
    assert!(error.contains("`numbers` (registered as `numbers`), `sums` (registered as `running-sum`)"), "{error}");
    drop(local);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example program, built now (cargo only checks when it is fresh, about a second): a
/// `cargo test --test api` does not build examples, and a stale binary would test old code.
fn example_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "weir-nodes", "--example", "custom_operators"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the example builds");
    let weir = Path::new(env!("CARGO_BIN_EXE_weir"));
    weir.parent().expect("target dir").join("examples").join("custom_operators")
}

/// Whether process `pid` is gone (or ended and waits to be reaped).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.contains(") Z "),
        Err(_) => true,
    }
}

#[test]
fn the_example_as_its_own_application_cluster_writes_exactly_once_and_leaves_no_task_manager() {
    let dir = temp_dir("application");
    let (rpc, rest) = (free_port(), free_port());
    let settings = [
        "jobmanager.rpc.address=127.0.0.1".to_string(),
        format!("jobmanager.rpc.port={rpc}"),
        "rest.address=127.0.0.1".to_string(),
        format!("rest.port={rest}"),
        "taskmanager.host=127.0.0.1".to_string(),
        format!("high-availability.storageDir={}", dir.join("ha").display()),
        format!("execution.checkpointing.dir={}", dir.join("checkpoints").display()),
    ];
    let mut command = Command::new(example_binary());
    command.args(["--application", "--task-managers", "2", "--fail-once"]);
    command.args(["--count", &COUNT.to_string(), "--rate", &RATE.to_string()]);
    command.arg("--output").arg(dir.join("out"));
    for setting in &settings {
        command.arg("-D").arg(setting);
    }
    let log = std::fs::File::create(dir.join("stderr.log")).expect("log file");
    let mut child = command.current_dir(&dir).stdout(Stdio::piped()).stderr(log).spawn().expect("the example starts");
    let lines = lines_of(child.stdout.take().expect("piped"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > WAIT_MAX {
            let _ = child.kill();
            panic!("the application did not end within {WAIT_MAX:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout: Vec<String> = lines.iter().collect();
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(status.success(), "{}\n{stderr}", stdout.join("\n"));
    let pids: Vec<u32> = stdout
        .iter()
        .filter(|line| line.starts_with("application: TaskManager "))
        .filter_map(|line| line.split("(pid ").nth(1)?.trim_end_matches(')').parse().ok())
        .collect();
    assert_eq!(pids.len(), 2, "{}", stdout.join("\n"));
    assert!(stdout.iter().any(|line| line.contains(" FINISHED: ")), "{}", stdout.join("\n"));
    assert_exactly_once(&dir.join("out"));
    assert!(pids.iter().all(|pid| is_gone(*pid)), "TaskManagers {pids:?} outlived their application");
    let _ = std::fs::remove_dir_all(&dir);
}
