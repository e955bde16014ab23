//! The real daemons as separate processes on 127.0.0.1: a JobManager and TaskManagers started
//! from the `weir` binary, a wordcount job over a generated text of more than 10 MB with
//! checkpoints every 200 ms, and `kill -9` of a TaskManager or of the JobManager in the middle
//! of it. After each, the committed output must equal the expected counts exactly: every word's
//! running count appears once for each value 1..=n and never beyond.
//!
//! The same on RocksDB with incremental checkpoints: a checkpoint's own directory is much
//! smaller than its state, and the files in `shared/` are referenced by consecutive checkpoints.
//!
//! Also: garbage and oversized frames on the RPC and data ports are logged and change nothing,
//! a TaskManager with the wrong cluster token is refused and says why, and a second JobManager
//! on a live one's metadata directory exits with the RocksDB lock error.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, get, get_with_token};

fn temp_dir(name: &str) -> PathBuf {
    support::temp_dir("daemons-test", name)
}

fn wait_for(done: impl FnMut() -> bool, what: &str) {
    support::wait_for(done, what, WAIT_MAX)
}

/// Longest wait for a job to end.
const JOB_WAIT_MAX: Duration = Duration::from_secs(180);
/// Longest wait for anything else.
const WAIT_MAX: Duration = Duration::from_secs(30);
/// Words of the generated text.
const VOCABULARY: u64 = 1000;

/// A text of at least `bytes` bytes of words `w0..w999` drawn by a fixed generator; returns the
/// count of each word.
fn write_text(path: &Path, bytes: usize) -> BTreeMap<String, u64> {
    write_text_of(path, bytes, VOCABULARY)
}

/// [`write_text`] over `vocabulary` words.
fn write_text_of(path: &Path, bytes: usize, vocabulary: u64) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let mut text = String::with_capacity(bytes + 100);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    while text.len() < bytes {
        for index in 0..12 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let word = format!("w{}", (state >> 33) % vocabulary);
            if index > 0 {
                text.push(' ');
            }
            text.push_str(&word);
            *counts.entry(word).or_insert(0) += 1;
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
    counts
}

fn wordcount_job(dir: &Path, input: &Path) -> PathBuf {
    let job = format!(
        "name = \"wordcount\"\nparallelism = 2\n\n[config]\n\"execution.checkpointing.interval\" = \"200 ms\"\n\
         \"restart-strategy.type\" = \"fixed-delay\"\n\"restart-strategy.fixed-delay.delay\" = \"200 ms\"\n\n\
         [[operator]]\nid = \"lines\"\ntype = \"file_source\"\npath = \"{}\"\nformat = \"text\"\nparallelism = 1\n\n\
         [[operator]]\nid = \"words\"\ntype = \"flat_map\"\ninput = \"lines\"\nexpr = \"split(line, ' ')\"\nas = \"word\"\n\n\
         [[operator]]\nid = \"by-word\"\ntype = \"key_by\"\ninput = \"words\"\nkey = \"word\"\n\n\
         [[operator]]\nid = \"counts\"\ntype = \"aggregate\"\ninput = \"by-word\"\naggregates = {{ count = \"count()\" }}\n\n\
         [[operator]]\nid = \"out\"\ntype = \"file_sink\"\ninput = \"counts\"\npath = \"{}\"\nformat = \"csv\"\n",
        input.display(),
        dir.join("out").display()
    );
    let path = dir.join("wordcount.toml");
    std::fs::write(&path, job).unwrap();
    path
}

/// Every committed `word,count` line under `out`: each word's counts must be exactly 1..=n.
fn check_exactly_once(out: &Path, expected: &BTreeMap<String, u64>) {
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("part-") {
            continue; // pending or in-progress parts are not committed output
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let (word, count) = line.rsplit_once(',').unwrap_or_else(|| panic!("{name}: bad line {line:?}"));
            seen.entry(word.to_string()).or_default().push(count.parse().unwrap());
        }
    }
    assert_eq!(seen.len(), expected.len(), "words in the output");
    for (word, n) in expected {
        let mut counts = seen.remove(word).unwrap_or_default();
        counts.sort_unstable();
        let wanted: Vec<u64> = (1..=*n).collect();
        assert!(counts == wanted, "{word}: {} counts, expected 1..={n} once each", counts.len());
    }
}

/// A daemon process, killed (SIGKILL) when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until this JobManager recorded a completed checkpoint of the job: it logs the
    /// checkpoint once the record's synced write returned.
    fn wait_checkpoint(&self, job_id: &str) {
        let line = format!("checkpoint completed job={job_id}");
        wait_for(|| self.log().contains(&line), "a completed checkpoint");
    }

    /// Waits until the process ended; whether it succeeded.
    fn wait_exit(&mut self) -> bool {
        let mut status = None;
        wait_for(
            || {
                status = self.child.try_wait().ok().flatten();
                status.is_some()
            },
            "the process to end",
        );
        status.is_some_and(|status| status.success())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A JobManager's settings shared by every process of one test cluster.
struct Cluster {
    dir: PathBuf,
    rest: String,
    /// The cluster's `security.token`, sent with REST calls.
    token: Option<String>,
    settings: Vec<String>,
    started: usize,
}

impl Cluster {
    fn new(name: &str, extra: &[&str]) -> Cluster {
        let dir = temp_dir(name);
        let (rpc, rest) = (free_port(), free_port());
        let mut settings = vec![
            format!("jobmanager.rpc.address=127.0.0.1"),
            format!("jobmanager.rpc.port={rpc}"),
            format!("rest.port={rest}"),
            format!("rest.address=127.0.0.1"),
            "taskmanager.host=127.0.0.1".to_string(),
            format!("high-availability.storageDir={}", dir.join("ha").display()),
            format!("execution.checkpointing.dir={}", dir.join("checkpoints").display()),
            "heartbeat.interval=1 s".to_string(),
            "heartbeat.timeout=5 s".to_string(),
            format!("journal.dir={}", dir.join("journal").display()),
            "metrics.port=0".to_string(),
        ];
        settings.extend(extra.iter().map(|text| text.to_string()));
        let token = extra.iter().find_map(|text| text.strip_prefix("security.token=")).map(String::from);
        Cluster { dir, rest: format!("127.0.0.1:{rest}"), token, settings, started: 0 }
    }

    fn spawn(&mut self, role: &str, extra: &[&str]) -> Daemon {
        self.started += 1;
        let log = self.dir.join(format!("{role}-{}.log", self.started));
        let settings = self.settings.iter().map(String::as_str).chain(extra.iter().copied());
        let child = support::spawn_weir(role, &self.dir, settings, &log);
        Daemon { child, log }
    }

    fn job_manager(&mut self) -> Daemon {
        let daemon = self.spawn("jobmanager", &[]);
        wait_for(|| self.get("/overview").is_some(), "the JobManager's REST API");
        daemon
    }

    fn task_manager(&mut self, extra: &[&str]) -> Daemon {
        let daemon = self.spawn("taskmanager", &[&["taskmanager.numberOfTaskSlots=1"], extra].concat());
        wait_for(|| daemon.log().contains(" started: rpc "), "a TaskManager to start");
        daemon
    }

    fn task_managers_registered(&self) -> usize {
        self.get("/taskmanagers").and_then(|body| body["taskmanagers"].as_array().map(Vec::len)).unwrap_or(0)
    }

    /// GET over REST with the cluster's token.
    fn get(&self, path: &str) -> Option<serde_json::Value> {
        get_with_token(&self.rest, path, self.token.as_deref())
    }

    fn submit(&self, job: &Path) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command.args(["run", "-d", "-m", &self.rest]).arg(job).env_remove("WEIR_TOKEN");
        if let Some(token) = &self.token {
            command.env("WEIR_TOKEN", token);
        }
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
        text.split_whitespace().find(|word| word.len() == 32).expect("a job id").to_string()
    }

    fn job_state(&self, job_id: &str) -> Option<String> {
        self.get(&format!("/jobs/{job_id}")).and_then(|body| body["state"].as_str().map(str::to_string))
    }

    fn wait_finished(&self, job_id: &str) {
        let started = Instant::now();
        loop {
            match self.job_state(job_id).as_deref() {
                Some("FINISHED") => return,
                Some(state @ ("FAILED" | "CANCELED")) => panic!("the job ended {state}"),
                _ => {}
            }
            assert!(started.elapsed() < JOB_WAIT_MAX, "the job did not finish in {JOB_WAIT_MAX:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `/taskmanagers` shows each TaskManager's data port (from its slot offer), not its RPC port.
fn check_data_ports(cluster: &Cluster, task_managers: &[&Daemon]) {
    let rows = cluster.get("/taskmanagers").expect("/taskmanagers")["taskmanagers"].clone();
    let rows = rows.as_array().expect("rows").clone();
    for daemon in task_managers {
        let log = daemon.log();
        let line = log.lines().find(|line| line.contains(" started: rpc ")).expect("the start line");
        let port = |after: &str| -> i64 {
            let address = line.split(after).nth(1).and_then(|rest| rest.split([',', ' ']).next()).expect("address");
            address.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).expect("port")
        };
        let (rpc, data) = (port("rpc "), port("data "));
        let row = rows
            .iter()
            .find(|row| row["path"].as_str().is_some_and(|path| path.ends_with(&format!(":{rpc}"))))
            .unwrap_or_else(|| panic!("no row with RPC port {rpc}: {rows:?}"));
        assert_eq!(row["dataPort"].as_i64(), Some(data), "{row}");
    }
}

/// A TaskManager's own `/metrics` (at the address it printed) shows its slot and its tasks.
fn check_task_manager_metrics(daemon: &Daemon) {
    let log = daemon.log();
    let url = log.lines().find_map(|line| line.strip_prefix("Metrics at http://")).expect("the metrics line");
    let address = url.trim_end_matches("/metrics");
    let mut stream = TcpStream::connect(address).expect("the metrics endpoint accepts");
    stream.set_read_timeout(Some(WAIT_MAX)).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/plain; version=0.0.4"), "{text}");
    for expected in [
        "weir_slots 1\n",
        "weir_slots_free 0\n",
        "weir_task_records_out_total{job_id=\"",
        "weir_process_resident_memory_bytes ",
    ] {
        assert!(text.contains(expected), "no {expected:?} in {text}");
    }
}

/// The TaskManagers report their tasks' counters to the JobManager (about once a second), so
/// its `/jobs/:id` shows records moving through the job.
fn check_job_manager_task_metrics(cluster: &Cluster, job_id: &str) {
    wait_for(
        || {
            let detail = cluster.get(&format!("/jobs/{job_id}")).unwrap_or_default();
            let vertices = detail["vertices"].as_array().cloned().unwrap_or_default();
            vertices.iter().any(|vertex| vertex["metrics"]["write-records"].as_u64().is_some_and(|records| records > 0))
        },
        "the JobManager to show the tasks' records",
    );
}

#[test]
fn a_task_manager_killed_mid_job_and_restarted_leaves_the_committed_output_exact() {
    let mut cluster = Cluster::new("tm-kill", &[]);
    let expected = write_text(&cluster.dir.join("words.txt"), 10 << 20);
    let job = wordcount_job(&cluster.dir, &cluster.dir.join("words.txt"));
    let job_manager = cluster.job_manager();
    let _first = cluster.task_manager(&[]);
    let mut second = cluster.task_manager(&[]);
    wait_for(|| cluster.task_managers_registered() == 2, "two registered TaskManagers");
    let job_id = cluster.submit(&job);
    job_manager.wait_checkpoint(&job_id);
    assert_eq!(cluster.job_state(&job_id).as_deref(), Some("RUNNING"), "killed mid-run");
    check_data_ports(&cluster, &[&_first, &second]);
    check_task_manager_metrics(&_first);
    check_job_manager_task_metrics(&cluster, &job_id);
    second.kill9();
    let _restarted = cluster.task_manager(&[]);
    cluster.wait_finished(&job_id);
    check_exactly_once(&cluster.dir.join("out"), &expected);
}

/// Bytes of every file under `dir` (recursively); `None` if it vanished while being read.
fn tree_bytes(dir: &Path) -> Option<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        match path.is_dir() {
            true => files.extend(tree_bytes(&path)?),
            false => files.push((path.clone(), std::fs::read(&path).ok()?)),
        }
    }
    Some(files)
}

/// The newest two completed checkpoints of `job_dir`: (their total bytes, the names of the
/// shared files their state files reference), newest first.
fn newest_two_checkpoints(job_dir: &Path, shared: &[String]) -> Option<[(u64, Vec<String>); 2]> {
    let mut ids: Vec<u64> = std::fs::read_dir(job_dir)
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().strip_prefix("chk-").and_then(|id| id.parse().ok()))
        .filter(|id| job_dir.join(format!("chk-{id}")).join("_metadata").exists())
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let read = |id: u64| -> Option<(u64, Vec<String>)> {
        let files = tree_bytes(&job_dir.join(format!("chk-{id}")))?;
        let bytes: u64 = files.iter().map(|(_, bytes)| bytes.len() as u64).sum();
        let contains = |name: &String| files.iter().any(|(_, b)| b.windows(name.len()).any(|w| w == name.as_bytes()));
        Some((bytes, shared.iter().filter(|name| contains(name)).cloned().collect()))
    };
    Some([read(*ids.first()?)?, read(*ids.get(1)?)?])
}

#[test]
fn incremental_rocksdb_checkpoints_reuse_shared_files_and_a_killed_task_manager_restores_exactly_once() {
    let settings = [
        "state.backend.type=rocksdb",
        "execution.checkpointing.incremental=true",
        "execution.checkpointing.num-retained=3",
    ];
    let mut cluster = Cluster::new("incremental", &settings);
    // 200 000 distinct words: keyed state of megabytes, of which each checkpoint changes little.
    let expected = write_text_of(&cluster.dir.join("words.txt"), 10 << 20, 200_000);
    let job = wordcount_job(&cluster.dir, &cluster.dir.join("words.txt"));
    let _job_manager = cluster.job_manager();
    let _first = cluster.task_manager(&[]);
    let mut second = cluster.task_manager(&[]);
    wait_for(|| cluster.task_managers_registered() == 2, "two registered TaskManagers");
    let job_id = cluster.submit(&job);
    let job_dir = cluster.dir.join("checkpoints").join(&job_id);
    let shared_dir = job_dir.join("shared");
    let mut report = String::new();
    // Files come and go while the job runs: look until two checkpoints read whole show it.
    wait_for(
        || {
            let shared: Vec<(String, u64)> = std::fs::read_dir(&shared_dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter_map(|entry| {
                            let name = entry.file_name().to_string_lossy().into_owned();
                            let size = entry.metadata().ok()?.len();
                            (!name.starts_with(".tmp-")).then_some((name, size))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let names: Vec<String> = shared.iter().map(|(name, _)| name.clone()).collect();
            let Some([(newest_bytes, newest), (_, previous)]) = newest_two_checkpoints(&job_dir, &names) else {
                return false;
            };
            let state_bytes: u64 = shared.iter().filter(|(name, _)| newest.contains(name)).map(|(_, size)| size).sum();
            let reused = newest.iter().filter(|name| previous.contains(name)).count();
            report = format!(
                "checkpoint {newest_bytes} bytes, state {state_bytes} bytes in {} shared files, {reused} reused",
                newest.len()
            );
            reused > 0 && newest_bytes * 5 < state_bytes
        },
        "a checkpoint much smaller than its state that reuses the previous one's files",
    );
    println!("{report}");
    assert_eq!(cluster.job_state(&job_id).as_deref(), Some("RUNNING"), "killed mid-run");
    second.kill9();
    let _restarted = cluster.task_manager(&[]);
    cluster.wait_finished(&job_id);
    check_exactly_once(&cluster.dir.join("out"), &expected);
}

#[test]
fn the_job_manager_killed_mid_job_and_restarted_resumes_from_its_latest_checkpoint_exactly_once() {
    let mut cluster = Cluster::new("jm-kill", &[]);
    let expected = write_text(&cluster.dir.join("words.txt"), 10 << 20);
    let job = wordcount_job(&cluster.dir, &cluster.dir.join("words.txt"));
    let mut job_manager = cluster.job_manager();
    let _first = cluster.task_manager(&[]);
    let _second = cluster.task_manager(&[]);
    wait_for(|| cluster.task_managers_registered() == 2, "two registered TaskManagers");
    let job_id = cluster.submit(&job);
    job_manager.wait_checkpoint(&job_id);
    assert_eq!(cluster.job_state(&job_id).as_deref(), Some("RUNNING"), "killed mid-run");
    job_manager.kill9();
    let restarted = cluster.job_manager();
    cluster.wait_finished(&job_id);
    let log = restarted.log();
    assert!(log.contains(&format!("recovering job {job_id} from ")), "{log}");
    assert!(log.contains("leader epoch 2"), "{log}");
    check_exactly_once(&cluster.dir.join("out"), &expected);
}

#[test]
fn garbage_and_oversized_frames_are_logged_and_the_daemons_keep_serving() {
    let mut cluster = Cluster::new("garbage", &[]);
    let job_manager = cluster.job_manager();
    let task_manager = cluster.task_manager(&["taskmanager.numberOfTaskSlots=2"]);
    let rpc = cluster.settings[1].trim_start_matches("jobmanager.rpc.port=").to_string();
    let data = task_manager.log();
    let data = data.split(", data ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap().to_string();
    for address in [format!("127.0.0.1:{rpc}"), data.clone()] {
        let mut garbage = TcpStream::connect(&address).unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\n\r\nthis is not weir").unwrap();
        let mut oversized = TcpStream::connect(&address).unwrap();
        // A frame header announcing 1 GiB.
        oversized.write_all(&(1u32 << 30).to_be_bytes()).unwrap();
        oversized.write_all(&[0u8; 4]).unwrap();
        let mut buffer = [0u8; 16];
        oversized.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The daemon closes the connection (end of stream or reset), it does not wait for 1 GiB.
        assert!(matches!(oversized.read(&mut buffer), Ok(0) | Err(_)));
    }
    wait_for(|| job_manager.log().contains("closed an incoming connection"), "the JobManager's log line");
    wait_for(|| task_manager.log().contains("refused a data connection"), "the TaskManager's log line");
    // Both still serve: the TaskManager registered and a job runs on it.
    wait_for(|| cluster.task_managers_registered() == 1, "the TaskManager registered");
    let input = cluster.dir.join("words.txt");
    let expected = write_text(&input, 10_000);
    let job = wordcount_job(&cluster.dir, &input);
    let job_id = cluster.submit(&job);
    cluster.wait_finished(&job_id);
    check_exactly_once(&cluster.dir.join("out"), &expected);
}

#[test]
fn a_task_manager_with_the_wrong_token_is_refused_and_says_why() {
    let mut cluster = Cluster::new("token", &["security.token=right-token"]);
    let _job_manager = cluster.job_manager();
    let wrong = cluster.task_manager(&["security.token=wrong-token"]);
    wait_for(|| wrong.log().contains("wrong cluster token"), "the refusal in the TaskManager's log");
    assert_eq!(cluster.task_managers_registered(), 0);
    let _right = cluster.task_manager(&["security.token=right-token"]);
    wait_for(|| cluster.task_managers_registered() == 1, "the TaskManager with the right token");
    assert!(get(&cluster.rest, "/taskmanagers").is_none(), "REST without the token is refused");
}

#[test]
fn run_application_runs_its_job_on_its_own_task_managers_and_ends_with_it() {
    let cluster = Cluster::new("application", &[]);
    let input = cluster.dir.join("words.txt");
    let expected = write_text(&input, 200_000);
    let job = wordcount_job(&cluster.dir, &input);
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.arg("run-application").arg(&job).args(["--task-managers", "2"]).current_dir(&cluster.dir);
    for setting in &cluster.settings {
        command.arg("-D").arg(setting);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < JOB_WAIT_MAX, "run-application did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("application finished"), "{stdout}");
    check_exactly_once(&cluster.dir.join("out"), &expected);
    // The cluster ended with its job: nothing answers on its REST port any more.
    assert!(get(&cluster.rest, "/overview").is_none());
}

#[test]
fn cluster_start_waits_for_its_workers_and_cluster_stop_ends_them() {
    let cluster = Cluster::new("standalone", &["taskmanager.numberOfTaskSlots=2"]);
    let workers = cluster.dir.join("workers");
    std::fs::write(&workers, "# two workers on this host\nlocalhost\n127.0.0.1\n").unwrap();
    let state = cluster.dir.join("cluster");
    let weir = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command.args(args).current_dir(&cluster.dir);
        for setting in &cluster.settings {
            command.arg("-D").arg(setting);
        }
        command.output().unwrap()
    };
    let started = weir(&["cluster", "start", "--dir", state.to_str().unwrap(), "--workers", workers.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&started.stdout).to_string();
    assert!(started.status.success(), "{text}{}", String::from_utf8_lossy(&started.stderr));
    assert!(text.contains("2 TaskManager(s)"), "{text}");
    assert_eq!(cluster.task_managers_registered(), 2);
    let pids: Vec<i32> = ["jobmanager", "taskmanager-0", "taskmanager-1"]
        .iter()
        .map(|name| std::fs::read_to_string(state.join(format!("{name}.pid"))).unwrap().trim().parse().unwrap())
        .collect();
    let again = weir(&["cluster", "start", "--dir", state.to_str().unwrap()]);
    assert!(!again.status.success(), "a second start over running pid files is refused");
    let input = cluster.dir.join("words.txt");
    let expected = write_text(&input, 100_000);
    let job_id = cluster.submit(&wordcount_job(&cluster.dir, &input));
    cluster.wait_finished(&job_id);
    check_exactly_once(&cluster.dir.join("out"), &expected);
    let stopped = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["cluster", "stop", "--dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("stopped 3 process(es)"));
    wait_for(
        || pids.iter().all(|pid| !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(*pid)),
        "the cluster's processes to end",
    );
    assert!(get(&cluster.rest, "/overview").is_none());
}

#[test]
fn a_cluster_start_whose_job_manager_cannot_start_fails_at_once_and_leaves_nothing_running() {
    let cluster = Cluster::new("standalone-fails", &[]);
    let rpc_port = cluster.settings.iter().find_map(|text| text.strip_prefix("jobmanager.rpc.port=")).unwrap();
    let _taken = std::net::TcpListener::bind(format!("127.0.0.1:{rpc_port}")).expect("the RPC port taken");
    let state = cluster.dir.join("cluster");
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.args(["cluster", "start", "--dir", state.to_str().unwrap()]);
    for setting in &cluster.settings {
        command.arg("-D").arg(setting);
    }
    let started = Instant::now();
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("jobmanager exited"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "failed without waiting for the ready timeout");
    let pid_files: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "pid"))
        .collect();
    assert!(pid_files.is_empty(), "no pid file claims a cluster: {pid_files:?}");
    let marker = cluster.dir.to_string_lossy().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&marker) && cmdline.contains("taskmanager"))
        .collect();
    assert!(left.is_empty(), "no TaskManager of the failed start is left running: {left:?}");
}

/// Whether `pid` ended and waits for its parent to reap it.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z "))
}

#[test]
fn a_second_job_manager_on_the_same_storage_dir_exits_with_a_clear_lock_error() {
    let mut cluster = Cluster::new("jm-lock", &[]);
    let _job_manager = cluster.job_manager();
    let (rpc, rest) = (format!("jobmanager.rpc.port={}", free_port()), format!("rest.port={}", free_port()));
    let mut second = cluster.spawn("jobmanager", &[&rpc, &rest]);
    assert!(!second.wait_exit(), "the second JobManager must fail");
    let log = second.log();
    assert!(log.contains("is in use by another JobManager (RocksDB lock)"), "{log}");
    assert!(get(&cluster.rest, "/overview").is_some(), "the first JobManager keeps serving");
}
