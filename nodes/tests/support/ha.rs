//! High availability as real processes on 127.0.0.1: two JobManagers on one store (one leads,
//! one stands by), two TaskManagers that find the leader through the same store, and a
//! checkpointing wordcount with an exactly-once file sink. Shared by `ha_file` and `ha_etcd`.

use super::{committed_lines, expected_counts, free_port, get, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for anything but a job's end.
pub const WAIT_MAX: Duration = Duration::from_secs(30);
/// Longest wait for a job's end.
pub const JOB_WAIT_MAX: Duration = Duration::from_secs(120);
pub const LEASE: &str = "2 s";

/// A daemon process, killed (SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|status| status.success()), "kill -{signal}");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal_quietly();
        self.kill9();
    }
}

impl Daemon {
    /// A stopped process must be continued to die cleanly in every case.
    fn signal_quietly(&self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.child.id().to_string()).stderr(Stdio::null()).status();
    }
}

/// A JobManager and its REST address.
pub struct JobManagerProcess {
    pub daemon: Daemon,
    pub rest: String,
}

impl JobManagerProcess {
    /// Whether its REST serves (it leads) rather than answering as a standby.
    pub fn leads(&self) -> bool {
        get(&self.rest, "/overview").is_some()
    }

    pub fn job_state(&self, job_id: &str) -> Option<String> {
        get(&self.rest, &format!("/jobs/{job_id}")).and_then(|body| body["state"].as_str().map(str::to_string))
    }
}

/// Where the cluster's HA store is.
pub enum Store {
    /// `high-availability.type: file`, under the cluster's directory.
    File,
    /// `high-availability.type: etcd` at this client URL.
    Etcd(String),
}

pub struct HaCluster {
    pub dir: PathBuf,
    /// Its `high-availability.cluster-id`: the test's name, so clusters sharing an etcd differ.
    name: String,
    store: Store,
    settings: Vec<String>,
    started: usize,
}

impl HaCluster {
    pub fn new(suite: &str, name: &str, store: Store) -> HaCluster {
        let dir = super::temp_dir(suite, name);
        let mut settings = match &store {
            Store::File => vec!["high-availability.type=file".to_string()],
            Store::Etcd(url) => {
                vec!["high-availability.type=etcd".to_string(), format!("high-availability.etcd.endpoints={url}")]
            }
        };
        settings.extend([
            format!("high-availability.storageDir={}", dir.join("ha").display()),
            format!("high-availability.cluster-id={name}"),
            format!("high-availability.lease-duration={LEASE}"),
            "high-availability.renew-interval=500 ms".to_string(),
            "high-availability.lease-margin=500 ms".to_string(),
            // Nobody listens here: TaskManagers must find the leader in the store.
            "jobmanager.rpc.address=127.0.0.1".to_string(),
            format!("jobmanager.rpc.port={}", free_port()),
            "rest.address=127.0.0.1".to_string(),
            "taskmanager.host=127.0.0.1".to_string(),
            format!("execution.checkpointing.dir={}", dir.join("checkpoints").display()),
            "heartbeat.interval=1 s".to_string(),
            "heartbeat.timeout=5 s".to_string(),
            format!("journal.dir={}", dir.join("journal").display()),
            "metrics.port=0".to_string(),
        ]);
        HaCluster { dir, name: name.to_string(), store, settings, started: 0 }
    }

    /// Adds a `key=value` setting for the daemons started from now on (it wins over earlier ones).
    pub fn set(&mut self, setting: &str) {
        self.settings.push(setting.to_string());
    }

    fn spawn(&mut self, role: &str, extra: &[String]) -> Daemon {
        self.started += 1;
        let log = self.dir.join(format!("{role}-{}.log", self.started));
        let child = super::spawn_weir(role, &self.dir, self.settings.iter().chain(extra), &log);
        Daemon { child, log }
    }

    pub fn job_manager(&mut self) -> JobManagerProcess {
        let rest = format!("127.0.0.1:{}", free_port());
        let extra =
            [format!("jobmanager.rpc.port={}", free_port()), format!("rest.port={}", rest.rsplit(':').next().unwrap())];
        let daemon = self.spawn("jobmanager", &extra);
        wait_for(|| daemon.log().contains("JobManager started"), "a JobManager to start", WAIT_MAX);
        JobManagerProcess { daemon, rest }
    }

    fn task_manager(&mut self) -> Daemon {
        let daemon = self.spawn("taskmanager", &["taskmanager.numberOfTaskSlots=1".to_string()]);
        wait_for(|| daemon.log().contains(" started: rpc "), "a TaskManager to start", WAIT_MAX);
        daemon
    }

    /// The highest epoch the store granted.
    fn epoch(&self) -> serde_json::Value {
        match &self.store {
            Store::File => self.file_state()["lease"]["epoch"].clone(),
            Store::Etcd(url) => etcd_get(url, &format!("/weir/{}/epoch", self.name)),
        }
    }

    /// The records as stored (core's `RecordStore` as JSON).
    pub fn records(&self) -> serde_json::Value {
        match &self.store {
            Store::File => self.file_state()["records"].clone(),
            Store::Etcd(url) => etcd_get(url, &format!("/weir/{}/records", self.name)),
        }
    }

    /// The newest state of the `file` store (`state-<revision>.json`).
    fn file_state(&self) -> serde_json::Value {
        let dir = self.dir.join("ha").join(&self.name);
        let names = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        let newest = names
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("state-"))
            .max();
        let text = newest.and_then(|name| std::fs::read_to_string(dir.join(name)).ok()).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    }

    /// `weir list` with the cluster's settings and no `-m`: the CLI finds the leader in the store.
    pub fn cli_list(&self) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command.arg("list").env_remove("WEIR_TOKEN");
        for setting in &self.settings {
            command.arg("-D").arg(setting);
        }
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
        text
    }

    /// Submits through `rest` with the CLI (a standby's address works: the CLI follows it).
    fn submit(&self, rest: &str, job: &Path) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "-d", "-m", rest])
            .arg(job)
            .env_remove("WEIR_TOKEN")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
        text.split_whitespace().find(|word| word.len() == 32).expect("a job id").to_string()
    }
}

/// Records the job's source emits, and how fast: about ten seconds of work, so the job is still
/// running when its leader is killed or paused and when the standby has taken over.
const RECORDS: u64 = 30_000;
const RATE: u64 = 3_000;
/// Distinct words.
const WORDS: u64 = 500;

/// What the source emits, as the text `expected_counts` reads: word `w{i % WORDS}` for each i.
fn input() -> String {
    (0..RECORDS).map(|index| format!("w{}", index % WORDS)).collect::<Vec<_>>().join("\n")
}

/// Running word counts of a rate-limited generator into an exactly-once file sink, with
/// checkpoints every 200 ms.
fn wordcount_job(dir: &Path) -> PathBuf {
    let job = format!(
        "name = \"wordcount\"\nparallelism = 2\n\n[config]\n\"execution.checkpointing.interval\" = \"200 ms\"\n\
         \"restart-strategy.type\" = \"fixed-delay\"\n\"restart-strategy.fixed-delay.delay\" = \"200 ms\"\n\n\
         [[operator]]\nid = \"words\"\ntype = \"generator\"\ncount = {RECORDS}\nrate = {RATE}\nparallelism = 1\n\
         fields = {{ word = \"concat('w', i % {WORDS})\" }}\n\n\
         [[operator]]\nid = \"by-word\"\ntype = \"key_by\"\ninput = \"words\"\nkey = \"word\"\n\n\
         [[operator]]\nid = \"counts\"\ntype = \"aggregate\"\ninput = \"by-word\"\naggregates = {{ count = \"count()\" }}\n\n\
         [[operator]]\nid = \"out\"\ntype = \"file_sink\"\ninput = \"counts\"\npath = \"{}\"\nformat = \"csv\"\n",
        dir.join("out").display()
    );
    let path = dir.join("wordcount.toml");
    std::fs::write(&path, job).unwrap();
    path
}

/// The committed `word,count` lines must be exactly what running counts over the input give.
pub fn check_exactly_once(dir: &Path, input: &str) {
    let committed: Vec<String> = committed_lines(&dir.join("out"));
    let expected = expected_counts(input);
    assert_eq!(committed.len(), expected.len(), "committed lines");
    assert!(committed == expected, "the committed output differs from the expected counts");
}

/// A running cluster: the leader, the standby, two TaskManagers and a job that has completed a
/// checkpoint under the leader.
pub struct Running {
    pub cluster: HaCluster,
    pub leader: JobManagerProcess,
    pub standby: JobManagerProcess,
    _task_managers: [Daemon; 2],
    pub job_id: String,
    pub input: String,
}

pub fn start(suite: &str, name: &str, store: Store) -> Running {
    let mut cluster = HaCluster::new(suite, name, store);
    let input = input();
    let job = wordcount_job(&cluster.dir);
    let leader = cluster.job_manager();
    wait_for(|| leader.leads(), "the first JobManager to lead", WAIT_MAX);
    let standby = cluster.job_manager();
    wait_for(|| standby.daemon.log().contains("standby: another JobManager leads"), "a standby", WAIT_MAX);
    assert!(!standby.leads(), "the second JobManager must not serve while the first leads");
    let task_managers = [cluster.task_manager(), cluster.task_manager()];
    let registered =
        || get(&leader.rest, "/taskmanagers").and_then(|body| body["taskmanagers"].as_array().map(Vec::len)) == Some(2);
    wait_for(registered, "both TaskManagers to find and register with the leader", WAIT_MAX);
    let job_id = cluster.submit(&standby.rest, &job);
    // Completed means its pointer is in the store (the leader logs completion before that).
    let stored = || cluster.records()["records"]["checkpoints"].as_object().is_some_and(|jobs| !jobs.is_empty());
    wait_for(stored, "a completed checkpoint's pointer in the store", WAIT_MAX);
    assert_eq!(leader.job_state(&job_id).as_deref(), Some("RUNNING"), "taken over mid-run");
    Running { cluster, leader, standby, _task_managers: task_managers, job_id, input }
}

impl Running {
    /// Waits until the standby leads and runs the job again; the time it took from `since`.
    pub fn wait_running_under_standby(&self, since: Instant) -> Duration {
        loop {
            if self.standby.job_state(&self.job_id).as_deref() == Some("RUNNING") {
                return since.elapsed();
            }
            assert!(since.elapsed() < WAIT_MAX, "the standby did not run the job within {WAIT_MAX:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_finished(&self) {
        let started = Instant::now();
        loop {
            match self.standby.job_state(&self.job_id).as_deref() {
                Some("FINISHED") => return,
                Some(state @ ("FAILED" | "CANCELED")) => panic!("the job ended {state}"),
                _ => {}
            }
            assert!(started.elapsed() < JOB_WAIT_MAX, "the job did not finish in {JOB_WAIT_MAX:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The new leader resumed from a checkpoint in epoch 2, and the store recorded the result.
    pub fn check_taken_over(&self) {
        let log = self.standby.daemon.log();
        assert!(log.contains(&format!("recovering job {}", self.job_id)), "{log}");
        assert!(!log.contains(&format!("recovering job {} from its start", self.job_id)), "{log}");
        assert!(log.contains("leader epoch 2"), "{log}");
        assert_eq!(self.cluster.epoch(), 2, "the store's epoch");
        // The result's write follows the status change the test saw over REST.
        let recorded = || {
            let results = self.cluster.records()["records"]["results"].as_object().cloned().unwrap_or_default();
            results.values().any(|status| *status == "Finished")
        };
        wait_for(recorded, "the job's result in the store", WAIT_MAX);
        let records = self.cluster.records();
        assert_eq!(records["epoch_seen"], 2, "{records}");
        assert_eq!(records["records"]["results"].as_object().map(|results| results.len()), Some(1), "{records}");
        assert_eq!(records["records"]["jobs"], serde_json::json!({}), "no unfinished job is left: {records}");
    }
}

/// A key's value in etcd (JSON); `Null` when absent.
fn etcd_get(url: &str, key: &str) -> serde_json::Value {
    let kv = etcd_range(url, key, None);
    let value = kv["value"].as_str().map(|value| weir_nodes::daemon::ha::etcd::base64_decode(value).unwrap());
    value.and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

/// A key as etcd's JSON gateway shows it (`value` base64, revisions as strings), as of
/// `revision` (etcd keeps every version until compacted) or now; `Null` when absent. HTTP/1.0,
/// so the answer is never chunked.
fn etcd_range(url: &str, key: &str, revision: Option<i64>) -> serde_json::Value {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut request = serde_json::json!({ "key": weir_nodes::daemon::ha::etcd::base64_encode(key.as_bytes()) });
    if let Some(revision) = revision {
        request["revision"] = serde_json::json!(revision.to_string());
    }
    let body = request.to_string();
    let mut stream = std::net::TcpStream::connect(address).expect("etcd accepts");
    write!(
        stream,
        "POST /v3/kv/range HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let json: serde_json::Value =
        answer.split_once("\r\n\r\n").and_then(|(_, body)| serde_json::from_str(body).ok()).unwrap_or_default();
    json["kvs"][0].clone()
}

impl HaCluster {
    /// Every version etcd stored of the records since the newest grant (the `epoch` key changes
    /// only when a lease is granted), oldest first: each version's `epoch_seen` is the epoch of
    /// the write that made it.
    pub fn etcd_records_since_newest_grant(&self) -> Vec<serde_json::Value> {
        let Store::Etcd(url) = &self.store else { panic!("not an etcd cluster") };
        let revision =
            |kv: &serde_json::Value, field: &str| kv[field].as_str().and_then(|text| text.parse::<i64>().ok());
        let granted = revision(&etcd_range(url, &format!("/weir/{}/epoch", self.name), None), "mod_revision")
            .expect("an epoch key");
        let key = format!("/weir/{}/records", self.name);
        let mut at = revision(&etcd_range(url, &key, None), "mod_revision").expect("a records key");
        let mut versions = Vec::new();
        // Walk back version by version: the value as of `at - 1` is the one before.
        while at > granted {
            let kv = etcd_range(url, &key, Some(at));
            let bytes = weir_nodes::daemon::ha::etcd::base64_decode(kv["value"].as_str().unwrap_or_default()).unwrap();
            versions.push(serde_json::from_slice(&bytes).unwrap_or_default());
            match revision(&etcd_range(url, &key, Some(at - 1)), "mod_revision") {
                Some(before) => at = before,
                None => break,
            }
        }
        versions.reverse();
        versions
    }
}

/// Kill -9 of the leader → the job RUNNING under the standby, `WEIR_FAILOVER_RUNS` times (5 by
/// default); prints each run and the distribution.
pub fn measure_failover(suite: &str, store: impl Fn() -> Store) {
    let runs: usize = std::env::var("WEIR_FAILOVER_RUNS").ok().and_then(|text| text.parse().ok()).unwrap_or(5);
    let mut times = Vec::new();
    for run in 0..runs {
        let mut running = start(suite, &format!("bench-{run}"), store());
        let killed = Instant::now();
        running.leader.daemon.kill9();
        let took = running.wait_running_under_standby(killed);
        println!("run {run}: {took:?}");
        times.push(took);
        let _ = std::fs::remove_dir_all(&running.cluster.dir);
    }
    times.sort();
    let at = |quantile: f64| times[((times.len() - 1) as f64 * quantile).round() as usize];
    println!(
        "kill -9 -> RUNNING over {runs} runs (lease {LEASE}, renew 500 ms, margin 500 ms): \
         min {:?} p50 {:?} p90 {:?} max {:?}",
        times[0],
        at(0.5),
        at(0.9),
        times[times.len() - 1]
    );
}

/// SIGTERM of the leader: it releases its lease, so the standby leads long before the lease
/// (30 s here) would have expired.
pub fn check_sigterm_hand_over(suite: &str, store: Store) {
    let kind = match store {
        Store::File => "file",
        Store::Etcd(_) => "etcd",
    };
    let mut cluster = HaCluster::new(suite, "term", store);
    cluster.set("high-availability.lease-duration=30 s");
    cluster.set("high-availability.renew-interval=1 s");
    let leader = cluster.job_manager();
    wait_for(|| leader.leads(), "the first JobManager to lead", WAIT_MAX);
    let standby = cluster.job_manager();
    wait_for(|| standby.daemon.log().contains("standby: another JobManager leads"), "a standby", WAIT_MAX);
    let stopped = Instant::now();
    leader.daemon.signal("TERM");
    wait_for(|| standby.leads(), "the standby to lead", WAIT_MAX);
    let took = stopped.elapsed();
    println!("{kind} HA: SIGTERM of the leader -> the standby leads in {took:?} (lease 30 s, renew 1 s)");
    assert!(took < Duration::from_secs(10), "{took:?}: the lease was left to expire");
    assert!(leader.daemon.log().contains("handed the leader lease over"), "{}", leader.daemon.log());
}
