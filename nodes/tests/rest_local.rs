//! The REST API of `weir local` and the CLI over it, from the real binary: Flink's paths and
//! field names, Flink-style errors, a job submitted over REST that runs to its exactly-once
//! result, and `weir run -d`, `weir list`, `weir cancel` against the running cluster.

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::{committed_lines, expected_counts};

/// Longest wait for anything in these tests.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// A job that runs until cancelled: 200 records a second into a discard sink.
const ENDLESS_JOB: &str = "name = \"endless\"\n\
    [[operator]]\nid = \"numbers\"\ntype = \"sequence\"\nto = 999_999_999\nrate = 200\n\
    [[operator]]\nid = \"sink\"\ntype = \"discard\"\ninput = \"numbers\"\n";

fn weir_command() -> Command {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.current_dir(workspace);
    command
}

fn weir(args: &[&str]) -> Output {
    weir_command().args(args).output().expect("weir runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-rest-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `weir local` in the background, killed when dropped.
struct LocalCluster {
    child: Child,
    /// `127.0.0.1:port` of its REST API.
    address: String,
    /// The rest of its standard output, line by line.
    stdout_lines: Receiver<String>,
}

impl LocalCluster {
    fn start(job: &Path, args: &[&str]) -> LocalCluster {
        let mut command = weir_command();
        command.arg("local").arg(job).args(["-D", "rest.port=0"]).args(args);
        command.stderr(Stdio::inherit());
        let (child, lines) = support::spawn_with_stdout_lines(&mut command);
        let mut cluster = LocalCluster { child, address: String::new(), stdout_lines: lines };
        let deadline = Instant::now() + WAIT_MAX;
        while cluster.address.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = cluster.stdout_lines.recv_timeout(left).expect("weir local prints its REST address in time");
            if let Some(address) = line.strip_prefix("REST API at http://") {
                cluster.address = address.to_string();
            }
        }
        cluster
    }

    fn get(&self, path: &str) -> (u16, Value) {
        request(&self.address, "GET", path, None)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; returns the status and the body as JSON (`Null` if it is not).
fn request(address: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).expect("the REST endpoint accepts");
    stream.set_read_timeout(Some(WAIT_MAX)).expect("timeout");
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("request sent");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("response read");
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "JSON answers have a length");
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status code");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Polls `probe` until it gives a value, for at most [`WAIT_MAX`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn job_state(cluster: &LocalCluster, job_id: &str) -> Option<String> {
    let (_, overview) = cluster.get("/jobs/overview");
    let jobs = overview["jobs"].as_array()?.clone();
    jobs.iter().find(|job| job["jid"] == job_id).and_then(|job| job["state"].as_str().map(String::from))
}

fn assert_errors(answer: &Value) {
    let errors = answer["errors"].as_array().unwrap_or_else(|| panic!("no errors array in {answer}"));
    assert!(!errors.is_empty() && errors.iter().all(Value::is_string), "{answer}");
}

fn assert_time(value: &Value, what: &str) {
    assert!(value.as_i64().is_some_and(|ms| ms > 1_600_000_000_000), "{what} is not ms since the epoch: {value}");
}

#[test]
fn weir_local_serves_flinks_rest_api_and_the_cli_controls_jobs_over_it() {
    let dir = temp_dir("api");
    let job = dir.join("endless.toml");
    std::fs::write(&job, ENDLESS_JOB).expect("job file");
    let cluster = LocalCluster::start(&job, &["-D", "taskmanager.numberOfTaskSlots=4"]);
    let job_id = wait_for("the first job to run", || {
        let (_, overview) = cluster.get("/jobs/overview");
        let job = overview["jobs"].as_array()?.first()?.clone();
        // The job turns RUNNING when it is scheduled; its task only once deployed.
        let running = job["state"] == "RUNNING" && job["tasks"]["running"] == 1;
        running.then(|| job["jid"].as_str().map(String::from)).flatten()
    });
    assert_eq!(job_id.len(), 32);

    check_overview_and_job_views(&cluster, &job_id);
    check_errors(&cluster, &job_id);
    check_submission_runs_to_its_result(&cluster, &dir);
    check_cli_run_list_cancel(&cluster, &dir, &job_id);
}

fn check_overview_and_job_views(cluster: &LocalCluster, job_id: &str) {
    let (status, overview) = cluster.get("/overview");
    assert_eq!(status, 200);
    assert_eq!(overview["taskmanagers"], 1);
    assert_eq!(overview["slots-total"], 4);
    assert_eq!(overview["slots-available"], 3, "the endless job holds one slot");
    assert_eq!(overview["jobs-running"], 1);
    for key in ["jobs-finished", "jobs-cancelled", "jobs-failed"] {
        assert_eq!(overview[key], 0, "{key}");
    }
    assert!(overview["flink-version"].is_string());

    // Flink's CLI sends a body `{}` on GETs, under /v1.
    let (status, jobs) = request(&cluster.address, "GET", "/v1/jobs/overview", Some("{}"));
    assert_eq!(status, 200);
    let row = &jobs["jobs"][0];
    assert_eq!(row["jid"], job_id);
    assert_eq!(row["name"], "endless");
    assert_eq!(row["end-time"], -1);
    assert_time(&row["start-time"], "start-time");
    assert_time(&row["last-modification"], "last-modification");
    assert!(row["duration"].is_i64());
    assert_eq!(row["tasks"]["total"], 1);
    assert_eq!(row["tasks"]["running"], 1);

    let (status, detail) = cluster.get(&format!("/jobs/{job_id}"));
    assert_eq!(status, 200);
    assert_eq!((detail["jid"].as_str(), detail["state"].as_str()), (Some(job_id), Some("RUNNING")));
    assert_time(&detail["now"], "now");
    assert_time(&detail["timestamps"]["RUNNING"], "timestamps.RUNNING");
    assert_eq!(detail["status-counts"]["RUNNING"], 1);
    let vertex = &detail["vertices"][0];
    assert_eq!(vertex["name"], "Source: Sequence -> Sink: Discard");
    assert_eq!((vertex["parallelism"].as_u64(), vertex["status"].as_str()), (Some(1), Some("RUNNING")));
    assert_eq!(vertex["tasks"]["RUNNING"], 1);
    assert_time(&vertex["start-time"], "vertex start-time");
    for metric in ["read-records", "write-records", "read-bytes", "write-bytes"] {
        assert!(vertex["metrics"][metric].is_u64(), "{metric}: {vertex}");
    }
    assert_eq!(detail["plan"]["nodes"][0]["id"], vertex["id"]);

    let (status, plan) = cluster.get(&format!("/v1/jobs/{job_id}/plan"));
    assert_eq!(status, 200);
    assert_eq!(plan["plan"], detail["plan"]);
    assert_eq!(plan["plan"]["type"], "STREAMING");

    let (status, task_managers) = cluster.get("/taskmanagers");
    assert_eq!(status, 200);
    let task_manager = &task_managers["taskmanagers"][0];
    assert_eq!(task_manager["id"].as_str().map(str::len), Some(32));
    assert!(task_manager["path"].is_string());
    assert_eq!((task_manager["slotsNumber"].as_u64(), task_manager["freeSlots"].as_u64()), (Some(4), Some(3)));
}

fn check_errors(cluster: &LocalCluster, running_job: &str) {
    let (status, answer) = cluster.get("/jobs/0123456789abcdef0123456789abcdef");
    assert_eq!(status, 404);
    assert_errors(&answer);
    let (status, answer) = cluster.get("/v1/jobs/not-a-job-id");
    assert_eq!(status, 400);
    assert_errors(&answer);
    let (status, answer) = request(&cluster.address, "POST", "/jobs", Some("{\"job\": {\"name\": \"x\"}}"));
    assert_eq!(status, 400, "a job without operators is refused: {answer}");
    assert_errors(&answer);
    let job: Value = toml::from_str(ENDLESS_JOB).expect("TOML");
    let reused = json!({ "job": job, "jobId": running_job }).to_string();
    let (status, answer) = request(&cluster.address, "POST", "/jobs", Some(&reused));
    assert_eq!(status, 400, "a job id in use is refused: {answer}");
    assert_errors(&answer);
    assert_eq!(job_state(cluster, running_job).as_deref(), Some("RUNNING"), "the running job is untouched");
    let (status, _) = cluster.get(&format!("/jobs/{running_job}"));
    assert_eq!(status, 200);
    let (status, answer) = cluster.get("/no/such/path");
    assert_eq!(status, 404);
    assert_errors(&answer);
}

/// wordcount posted as JSON, checkpointing every 20 ms, must commit every running count once.
fn check_submission_runs_to_its_result(cluster: &LocalCluster, dir: &Path) {
    let words: Vec<String> = (0..5_000u64).map(|i| format!("w{}", (i * 7919) % 97)).collect();
    let input: String = words.chunks(10).map(|line| line.join(" ") + "\n").collect();
    std::fs::write(dir.join("words.txt"), &input).expect("input");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wordcount.toml");
    let job = std::fs::read_to_string(example)
        .expect("example")
        .replace("/tmp/words.txt", &dir.join("words.txt").display().to_string())
        .replace("/tmp/wordcount-out", &dir.join("out").display().to_string());
    let job: Value = toml::from_str(&job).expect("the example is TOML");
    let config = json!({
        "execution.checkpointing.interval": "20 ms",
        "execution.checkpointing.dir": dir.join("checkpoints").display().to_string(),
    });
    let body = json!({ "job": job, "config": config }).to_string();
    let (status, answer) = request(&cluster.address, "POST", "/v1/jobs", Some(&body));
    assert_eq!(status, 202, "{answer}");
    let job_id = answer["jobid"].as_str().expect("jobid").to_string();
    assert_eq!(job_id.len(), 32);
    assert_eq!(answer["jobUrl"], format!("/jobs/{job_id}"));
    let state = wait_for("wordcount to end", || job_state(cluster, &job_id).filter(|state| state != "RUNNING"));
    assert_eq!(state, "FINISHED");
    assert_eq!(committed_lines(&dir.join("out")), expected_counts(&input));
}

fn check_cli_run_list_cancel(cluster: &LocalCluster, dir: &Path, first_job: &str) {
    let job = dir.join("endless.toml");
    let output = weir(&["run", "-d", job.to_str().expect("utf-8"), "-m", &cluster.address]);
    assert!(output.status.success(), "{}", text(&output));
    let printed = text(&output);
    let job_id = printed
        .lines()
        .find_map(|line| line.strip_prefix("Job has been submitted with JobID "))
        .unwrap_or_else(|| panic!("no job id in {printed}"))
        .to_string();
    wait_for("the second endless job to run", || job_state(cluster, &job_id).filter(|state| state == "RUNNING"));

    let output = weir(&["list", "-m", &cluster.address]);
    assert!(output.status.success(), "{}", text(&output));
    let listed = text(&output);
    for id in [first_job, job_id.as_str()] {
        assert!(listed.contains(&format!(" : {id} : endless (RUNNING)")), "{id} not listed: {listed}");
    }
    assert!(listed.contains("Terminated Jobs") && listed.contains(": wordcount (FINISHED)"), "{listed}");

    let output = weir(&["cancel", &job_id, "-m", &cluster.address]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains(&format!("Cancelled job {job_id}.")));
    // CANCELLING comes first, until every task reported CANCELED.
    let ended = |state: &String| ["CANCELED", "FAILED", "FINISHED"].contains(&state.as_str());
    let state = wait_for("the cancelled job to end", || job_state(cluster, &job_id).filter(ended));
    assert_eq!(state, "CANCELED");
    assert_eq!(job_state(cluster, first_job).as_deref(), Some("RUNNING"), "only the cancelled job ended");

    let output = weir(&["list", "--json", "-m", &cluster.address]);
    let overview: Value = serde_json::from_slice(&output.stdout).expect("list --json prints JSON");
    assert_eq!(overview["jobs"].as_array().map(Vec::len), Some(3));
    let output = weir(&["cancel", "0123456789abcdef0123456789abcdef", "-m", &cluster.address]);
    assert_eq!(output.status.code(), Some(1), "an unknown job: {}", text(&output));
    assert!(text(&output).contains("not found"), "{}", text(&output));
}

#[test]
fn cli_commands_against_a_dead_port_say_so_and_fail() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    drop(listener);
    let dir = temp_dir("dead");
    let job = dir.join("endless.toml");
    std::fs::write(&job, ENDLESS_JOB).expect("job file");
    let commands: [Vec<&str>; 3] = [
        vec!["list", "-m", &address],
        vec!["cancel", "0123456789abcdef0123456789abcdef", "-m", &address],
        vec!["run", job.to_str().expect("utf-8"), "-m", &address],
    ];
    for args in commands {
        let output = weir(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", text(&output));
        let expected = format!("cannot reach the JobManager at http://{address}: connection refused");
        assert!(String::from_utf8_lossy(&output.stderr).contains(&expected), "{args:?}: {}", text(&output));
    }
    let output = weir(&["cancel", "not-an-id", "-m", &address]);
    assert_eq!(output.status.code(), Some(2), "a malformed id is bad input: {}", text(&output));
}

#[test]
fn a_busy_rest_port_is_a_warning_and_the_job_still_runs() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let dir = temp_dir("busy");
    let job = dir.join("short.toml");
    std::fs::write(&job, ENDLESS_JOB.replace("to = 999_999_999\nrate = 200", "to = 999")).expect("job file");
    let port_key = format!("rest.port={port}");
    let output = weir(&["local", job.to_str().expect("utf-8"), "-D", &port_key]);
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: cannot bind the REST endpoint") && stderr.contains("REST API is off"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("REST API at"), "{}", text(&output));
    assert!(text(&output).contains("job \"endless\" FINISHED"), "{}", text(&output));
    drop(listener);
}
