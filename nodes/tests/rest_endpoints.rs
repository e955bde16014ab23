//! Every REST endpoint of weir issue 6 against one real `weir local` cluster that requires a
//! token: field names and types as Flink 2.3's responses (`flink/rest-examples/`) have them, for
//! a running, a finished and a cancelled job; 401 without the token (and nothing changes);
//! savepoints and stop-with-savepoint through REST and through the CLI, then a resubmission
//! from the savepoint that finishes with exactly-once output.

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::committed_lines;

/// Longest wait for anything in these tests.
const WAIT_MAX: Duration = Duration::from_secs(60);
/// The cluster's token.
const TOKEN: &str = "s3cret-token";
/// A job that runs until stopped or cancelled.
const ENDLESS_JOB: &str = "name = \"endless\"\n\
    [[operator]]\nid = \"numbers\"\ntype = \"sequence\"\nto = 999_999_999\nrate = 200\n\
    [[operator]]\nid = \"sink\"\ntype = \"discard\"\ninput = \"numbers\"\n";
/// Numbers counted in the job that is stopped and resumed.
const COUNTED: u64 = 3_000;

fn weir_command() -> Command {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.current_dir(workspace).env_remove("WEIR_TOKEN");
    command
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `weir local` in the background, killed when dropped.
struct Cluster {
    child: Child,
    address: String,
    _stdout: Receiver<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    fn start(job: &Path, dir: &Path) -> Cluster {
        let checkpoints = format!("execution.checkpointing.dir={}", dir.join("checkpoints").display());
        let savepoints = format!("execution.checkpointing.savepoint-dir={}", dir.join("savepoints").display());
        let token = format!("security.token={TOKEN}");
        let mut command = weir_command();
        command
            .arg("local")
            .arg(job)
            .args(["-D", "rest.port=0", "-D", "taskmanager.numberOfTaskSlots=8", "-D", &token])
            .args(["-D", "execution.checkpointing.interval=100 ms", "-D", &checkpoints, "-D", &savepoints]);
        command.stderr(Stdio::inherit());
        let (child, lines) = support::spawn_with_stdout_lines(&mut command);
        let deadline = Instant::now() + WAIT_MAX;
        let address = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).expect("weir local prints its REST address in time");
            if let Some(address) = line.strip_prefix("REST API at http://") {
                break address.to_string();
            }
        };
        Cluster { child, address, _stdout: lines }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        request(&self.address, "GET", path, None, Some(TOKEN)).0
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        request(&self.address, "POST", path, Some(&body.to_string()), Some(TOKEN)).0
    }

    /// Waits until the job and all its tasks run (a savepoint needs every task running).
    fn wait_running(&self, job_id: &str) {
        wait_for("the job's tasks to run", || {
            let (_, detail) = self.get(&format!("/jobs/{job_id}"));
            support::all_tasks_running(&detail).then_some(())
        });
    }

    fn state(&self, job_id: &str) -> String {
        self.get(&format!("/jobs/{job_id}/status")).1["status"].as_str().unwrap_or("UNKNOWN").to_string()
    }
}

/// One HTTP/1.1 request; the status and the body as JSON (`Null` if it is not), and the text.
fn request(address: &str, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> ((u16, Value), String) {
    let mut stream = TcpStream::connect(address).expect("the REST endpoint accepts");
    stream.set_read_timeout(Some(WAIT_MAX)).expect("timeout");
    let body = body.unwrap_or("");
    let authorization = token.map_or(String::new(), |token| format!("Authorization: Bearer {token}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{authorization}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("request sent");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("response read");
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status code");
    ((status, serde_json::from_str(body).unwrap_or(Value::Null)), body.to_string())
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts `value` has every field of `fields` with the JSON type named: `s` string, `i`
/// integer, `n` number, `b` boolean, `o` object, `a` array, `?` anything (null included).
fn assert_fields(value: &Value, fields: &[(&str, char)], what: &str) {
    for (name, kind) in fields {
        let field = &value[*name];
        let ok = match kind {
            's' => field.is_string(),
            'i' => field.is_i64() || field.is_u64(),
            'n' => field.is_number(),
            'b' => field.is_boolean(),
            'o' => field.is_object(),
            'a' => field.is_array(),
            _ => value.get(*name).is_some(),
        };
        assert!(ok, "{what}: field {name:?} should be of kind {kind:?}: {value}");
    }
}

fn assert_error(answer: &(u16, Value), status: u16, what: &str) {
    assert_eq!(answer.0, status, "{what}: {}", answer.1);
    let errors = answer.1["errors"].as_array().unwrap_or_else(|| panic!("{what}: no errors array in {}", answer.1));
    assert!(!errors.is_empty() && errors.iter().all(Value::is_string), "{what}: {}", answer.1);
}

fn submit(cluster: &Cluster, job: &str) -> String {
    let job: Value = toml::from_str(job).expect("TOML");
    let (status, answer) = cluster.post("/jobs", &json!({ "job": job }));
    assert_eq!(status, 202, "{answer}");
    answer["jobid"].as_str().expect("jobid").to_string()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("file written");
    path
}

#[test]
fn every_endpoint_savepoints_and_the_token_on_one_cluster() {
    let dir = support::temp_dir("rest-endpoints", "all");
    let job = write(&dir, "endless.toml", ENDLESS_JOB);
    let cluster = Cluster::start(&job, &dir);
    let running = wait_for("the endless job to run", || {
        let (_, jobs) = cluster.get("/jobs/overview");
        let job = jobs["jobs"].as_array()?.first()?.clone();
        (job["state"] == "RUNNING").then(|| job["jid"].as_str().map(String::from)).flatten()
    });
    cluster.wait_running(&running);

    check_token(&cluster, &running);
    check_running_job(&cluster, &running);
    let finished = submit(&cluster, &ENDLESS_JOB.replace("to = 999_999_999\nrate = 200", "to = 99"));
    wait_for("the short job to finish", || (cluster.state(&finished) == "FINISHED").then_some(()));
    check_ended_job(&cluster, &finished, "FINISHED");
    let cancelled = submit(&cluster, ENDLESS_JOB);
    wait_for("the job to cancel to run", || (cluster.state(&cancelled) == "RUNNING").then_some(()));
    let ((status, _), _) =
        request(&cluster.address, "PATCH", &format!("/jobs/{cancelled}?mode=cancel"), None, Some(TOKEN));
    assert_eq!(status, 202);
    wait_for("the cancelled job to end", || (cluster.state(&cancelled) == "CANCELED").then_some(()));
    check_ended_job(&cluster, &cancelled, "CANCELED");
    check_cluster_endpoints(&cluster);
    check_errors(&cluster, &running);
    check_rest_savepoint_and_stop(&cluster, &running, &dir);
    check_cli_savepoint_stop_and_resume(&cluster, &dir);
}

/// Without the token: 401 and nothing happens; with it: 200.
fn check_token(cluster: &Cluster, running: &str) {
    let before = cluster.get("/jobs").1["jobs"].as_array().map(Vec::len);
    let ((status, body), _) = request(&cluster.address, "GET", "/overview", None, None);
    assert_error(&(status, body), 401, "GET without token");
    let ((status, _), _) = request(&cluster.address, "GET", "/overview", None, Some(TOKEN));
    assert_eq!(status, 200);
    let wrong = request(&cluster.address, "GET", "/v1/jobs/overview", None, Some("wrong")).0;
    assert_error(&wrong, 401, "a wrong token");
    let job: Value = toml::from_str(ENDLESS_JOB).expect("TOML");
    let post = request(&cluster.address, "POST", "/jobs", Some(&json!({ "job": job }).to_string()), None).0;
    assert_error(&post, 401, "POST /jobs without token");
    let cancel = request(&cluster.address, "PATCH", &format!("/jobs/{running}?mode=cancel"), Some("{}"), None).0;
    assert_error(&cancel, 401, "PATCH cancel without token");
    let stop = request(&cluster.address, "POST", &format!("/jobs/{running}/stop"), Some("{}"), None).0;
    assert_error(&stop, 401, "POST stop without token");
    let metrics = request(&cluster.address, "GET", "/metrics", None, None).0;
    assert_error(&metrics, 401, "GET /metrics without token");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cluster.get("/jobs").1["jobs"].as_array().map(Vec::len), before, "no job was submitted");
    assert_eq!(cluster.state(running), "RUNNING", "the job was neither cancelled nor stopped");
}

fn check_running_job(cluster: &Cluster, job_id: &str) {
    let (status, detail) = cluster.get(&format!("/jobs/{job_id}"));
    assert_eq!(status, 200);
    assert_fields(
        &detail,
        &[("jid", 's'), ("name", 's'), ("state", 's'), ("start-time", 'i'), ("end-time", 'i'), ("duration", 'i')],
        "/jobs/:id",
    );
    let vertex = &detail["vertices"][0];
    assert_fields(
        vertex,
        &[
            ("id", 's'),
            ("name", 's'),
            ("parallelism", 'i'),
            ("maxParallelism", 'i'),
            ("status", 's'),
            ("start-time", 'i'),
            ("end-time", 'i'),
            ("duration", 'i'),
            ("tasks", 'o'),
            ("metrics", 'o'),
        ],
        "vertex of /jobs/:id",
    );
    assert_eq!(vertex["status"], "RUNNING");
    assert_eq!(vertex["tasks"]["RUNNING"], 1);
    for metric in ["read-bytes", "write-bytes", "read-records", "write-records"] {
        assert!(vertex["metrics"][metric].is_u64(), "{metric}: {vertex}");
        assert!(vertex["metrics"][format!("{metric}-complete")].is_boolean(), "{metric}-complete: {vertex}");
    }

    // A checkpoint completes every 100 ms.
    let checkpoints = wait_for("a completed checkpoint", || {
        let (_, checkpoints) = cluster.get(&format!("/jobs/{job_id}/checkpoints"));
        (checkpoints["counts"]["completed"].as_u64() >= Some(1)).then_some(checkpoints)
    });
    check_checkpoints_shape(&checkpoints);
    let latest = &checkpoints["latest"]["completed"];
    assert_fields(
        latest,
        &[
            ("className", 's'),
            ("id", 'i'),
            ("status", 's'),
            ("is_savepoint", 'b'),
            ("trigger_timestamp", 'i'),
            ("latest_ack_timestamp", 'i'),
            ("checkpointed_size", 'i'),
            ("state_size", 'i'),
            ("end_to_end_duration", 'i'),
            ("num_subtasks", 'i'),
            ("num_acknowledged_subtasks", 'i'),
            ("checkpoint_type", 's'),
            ("external_path", 's'),
            ("discarded", 'b'),
        ],
        "latest completed checkpoint",
    );
    assert_eq!(
        (latest["status"].as_str(), latest["checkpoint_type"].as_str()),
        (Some("COMPLETED"), Some("CHECKPOINT"))
    );
    assert!(checkpoints["history"].as_array().is_some_and(|history| !history.is_empty()));

    let (status, config) = cluster.get(&format!("/jobs/{job_id}/checkpoints/config"));
    assert_eq!(status, 200);
    assert_fields(
        &config,
        &[
            ("mode", 's'),
            ("interval", 'i'),
            ("timeout", 'i'),
            ("min_pause", 'i'),
            ("max_concurrent", 'i'),
            ("externalization", 'o'),
            ("unaligned_checkpoints", 'b'),
            ("tolerable_failed_checkpoints", 'i'),
        ],
        "checkpoints/config",
    );
    assert_eq!((config["mode"].as_str(), config["interval"].as_i64()), (Some("exactly_once"), Some(100)));

    check_job_config_and_exceptions(cluster, job_id);

    let vertex_id = vertex["id"].as_str().expect("vertex id");
    let (status, detail) = cluster.get(&format!("/jobs/{job_id}/vertices/{vertex_id}"));
    assert_eq!(status, 200);
    assert_fields(
        &detail,
        &[("id", 's'), ("name", 's'), ("parallelism", 'i'), ("maxParallelism", 'i'), ("now", 'i'), ("subtasks", 'a')],
        "vertex detail",
    );
    let subtask = &detail["subtasks"][0];
    assert_fields(
        subtask,
        &[
            ("subtask", 'i'),
            ("status", 's'),
            ("attempt", 'i'),
            ("endpoint", 's'),
            ("start-time", 'i'),
            ("end-time", 'i'),
            ("duration", 'i'),
            ("metrics", 'o'),
            ("taskmanager-id", 's'),
        ],
        "subtask",
    );
    assert_eq!(subtask["status"], "RUNNING");
    let aggregated = &detail["aggregated"]["metrics"]["write-records"];
    assert_fields(aggregated, &[("min", 'i'), ("max", 'i'), ("avg", 'i'), ("sum", 'i'), ("median", 'i')], "aggregated");
}

fn check_checkpoints_shape(checkpoints: &Value) {
    assert_fields(
        &checkpoints["counts"],
        &[("restored", 'i'), ("total", 'i'), ("in_progress", 'i'), ("completed", 'i'), ("failed", 'i')],
        "counts",
    );
    for quantity in ["checkpointed_size", "state_size", "end_to_end_duration", "processed_data", "persisted_data"] {
        assert_fields(
            &checkpoints["summary"][quantity],
            &[("min", 'i'), ("max", 'i'), ("avg", 'i'), ("p50", 'n'), ("p99", 'n')],
            quantity,
        );
    }
    assert_fields(
        &checkpoints["latest"],
        &[("completed", '?'), ("savepoint", '?'), ("failed", '?'), ("restored", '?')],
        "latest",
    );
    assert!(checkpoints["history"].is_array());
}

fn check_job_config_and_exceptions(cluster: &Cluster, job_id: &str) {
    let (status, config) = cluster.get(&format!("/jobs/{job_id}/config"));
    assert_eq!(status, 200);
    assert_eq!(config["jid"], job_id);
    let execution = &config["execution-config"];
    assert_fields(
        execution,
        &[
            ("execution-mode", 's'),
            ("restart-strategy", 's'),
            ("job-parallelism", 'i'),
            ("object-reuse-mode", 'b'),
            ("user-config", 'o'),
        ],
        "execution-config",
    );
    assert_eq!(execution["user-config"]["security.token"], "******", "the token is not shown: {execution}");

    let (status, exceptions) = cluster.get(&format!("/jobs/{job_id}/exceptions"));
    assert_eq!(status, 200);
    assert_fields(&exceptions["exceptionHistory"], &[("entries", 'a'), ("truncated", 'b')], "exceptionHistory");
}

fn check_ended_job(cluster: &Cluster, job_id: &str, state: &str) {
    let (status, detail) = cluster.get(&format!("/jobs/{job_id}"));
    assert_eq!(status, 200);
    assert_eq!(detail["state"], state);
    assert!(detail["end-time"].as_i64().is_some_and(|end| end > 1_600_000_000_000), "{detail}");
    let (status, checkpoints) = cluster.get(&format!("/jobs/{job_id}/checkpoints"));
    assert_eq!(status, 200);
    check_checkpoints_shape(&checkpoints);
    let (status, config) = cluster.get(&format!("/jobs/{job_id}/checkpoints/config"));
    assert_eq!((status, config["mode"].as_str()), (200, Some("exactly_once")));
    check_job_config_and_exceptions(cluster, job_id);
    // An ended job is archived as it ended: its vertices and subtasks stay readable.
    let vertices = detail["vertices"].as_array().expect("vertices");
    assert!(!vertices.is_empty(), "an ended job keeps its vertices: {detail}");
    for vertex in vertices {
        assert_eq!(vertex["status"], state, "{vertex}");
        let id = vertex["id"].as_str().expect("vertex id");
        let (status, found) = cluster.get(&format!("/jobs/{job_id}/vertices/{id}"));
        assert_eq!(status, 200, "vertex {id} of an ended job: {found}");
        let subtasks = found["subtasks"].as_array().expect("subtasks");
        assert!(subtasks.iter().all(|subtask| subtask["status"] == state), "{found}");
    }
    let (status, plan) = cluster.get(&format!("/jobs/{job_id}/plan"));
    assert_eq!(status, 200);
    assert!(plan["plan"]["nodes"].as_array().is_some_and(|nodes| !nodes.is_empty()), "{plan}");
    let vertex = cluster.get(&format!("/jobs/{job_id}/vertices/0123456789abcdef0123456789abcdef"));
    assert_error(&vertex, 404, "an unknown vertex of an ended job");
    let savepoint = cluster.post(&format!("/jobs/{job_id}/savepoints"), &json!({}));
    assert_eq!(savepoint.0, 202, "the trigger is accepted; its status says why it failed");
    let trigger = savepoint.1["request-id"].as_str().expect("request-id").to_string();
    let status = wait_for("the refused savepoint's status", || {
        let (_, status) = cluster.get(&format!("/jobs/{job_id}/savepoints/{trigger}"));
        (status["status"]["id"] == "COMPLETED").then_some(status)
    });
    assert!(status["operation"]["failure-cause"]["stack-trace"].is_string(), "{status}");
}

fn check_cluster_endpoints(cluster: &Cluster) {
    let (_, task_managers) = cluster.get("/taskmanagers");
    let id = task_managers["taskmanagers"][0]["id"].as_str().expect("a TaskManager").to_string();
    let (status, detail) = cluster.get(&format!("/taskmanagers/{id}"));
    assert_eq!(status, 200);
    assert_fields(
        &detail,
        &[
            ("id", 's'),
            ("path", 's'),
            ("dataPort", 'i'),
            ("jmxPort", 'i'),
            ("timeSinceLastHeartbeat", 'i'),
            ("slotsNumber", 'i'),
            ("freeSlots", 'i'),
            ("assignedTasks", 'i'),
            ("totalResource", 'o'),
            ("freeResource", 'o'),
            ("allocatedSlots", 'a'),
        ],
        "/taskmanagers/:id",
    );
    assert_eq!(detail["slotsNumber"], 8);
    assert_eq!(detail["allocatedSlots"].as_array().map(Vec::len), Some(1), "the endless job holds one slot: {detail}");

    let (status, config) = cluster.get("/jobmanager/config");
    assert_eq!(status, 200);
    let entries = config.as_array().expect("a list of entries");
    assert!(entries.iter().all(|entry| entry["key"].is_string() && entry["value"].is_string()));
    let value = |key: &str| entries.iter().find(|entry| entry["key"] == key).map(|entry| entry["value"].clone());
    assert_eq!(value("taskmanager.numberOfTaskSlots"), Some(json!("8")));
    assert_eq!(value("security.token"), Some(json!("******")), "the token is hidden");

    let ((status, _), text) = request(&cluster.address, "GET", "/metrics", None, Some(TOKEN));
    assert_eq!(status, 200);
    for name in [
        "# TYPE weir_slots gauge",
        "weir_slots 8",
        "weir_task_records_out_total{job_id=",
        "weir_vertex_busy_time_ms_per_second{job_id=",
        "weir_task_busy_time_ms_total{job_id=",
        "weir_vertex_idle_time_ms_total{job_id=",
        "weir_checkpoints_completed_total{job_id=",
        "weir_process_resident_memory_bytes ",
    ] {
        assert!(text.contains(name), "/metrics lacks {name:?}:\n{text}");
    }
}

fn check_errors(cluster: &Cluster, running: &str) {
    let unknown = "0123456789abcdef0123456789abcdef";
    for path in
        ["exceptions", "checkpoints", "checkpoints/config", "config", "vertices/0123456789abcdef0123456789abcdef"]
    {
        assert_error(&cluster.get(&format!("/jobs/{unknown}/{path}")), 404, path);
        assert_error(&cluster.get(&format!("/jobs/not-an-id/{path}")), 400, path);
    }
    assert_error(&cluster.get(&format!("/taskmanagers/{unknown}")), 404, "unknown TaskManager");
    assert_error(&cluster.get("/taskmanagers/tm-0"), 400, "malformed TaskManager id");
    assert_error(&cluster.post(&format!("/jobs/{unknown}/savepoints"), &json!({})), 404, "savepoint of no job");
    assert_error(&cluster.post(&format!("/jobs/{unknown}/stop"), &json!({})), 404, "stop of no job");
    assert_error(&cluster.get(&format!("/jobs/{running}/savepoints/{unknown}")), 404, "unknown trigger");
    let bad_body =
        request(&cluster.address, "POST", &format!("/jobs/{running}/stop"), Some("{\"drain\": 1}"), Some(TOKEN)).0;
    assert_error(&bad_body, 400, "a malformed stop body");
    assert_eq!(cluster.state(running), "RUNNING");
}

/// A savepoint of the running job, then stop-with-savepoint, both over REST.
fn check_rest_savepoint_and_stop(cluster: &Cluster, job_id: &str, dir: &Path) {
    let target = dir.join("rest-savepoints");
    let body =
        json!({ "target-directory": target.display().to_string(), "cancel-job": false, "formatType": "CANONICAL" });
    let (status, answer) = cluster.post(&format!("/jobs/{job_id}/savepoints"), &body);
    assert_eq!(status, 202, "{answer}");
    let location = wait_for_location(cluster, job_id, answer["request-id"].as_str().expect("request-id"));
    assert!(location.starts_with(&target.display().to_string()), "{location}");
    assert!(Path::new(&location).join("_metadata").is_file(), "{location} has its metadata");
    assert_eq!(cluster.state(job_id), "RUNNING", "a plain savepoint leaves the job running");
    let checkpoints = cluster.get(&format!("/jobs/{job_id}/checkpoints")).1;
    assert_eq!(checkpoints["latest"]["savepoint"]["is_savepoint"], true, "{checkpoints}");

    // weir local exits once the job it was started with ends: stop another one.
    let stopped = submit(cluster, ENDLESS_JOB);
    cluster.wait_running(&stopped);
    let (status, answer) = cluster.post(&format!("/jobs/{stopped}/stop"), &json!({ "drain": false }));
    assert_eq!(status, 202, "{answer}");
    let location = wait_for_location(cluster, &stopped, answer["request-id"].as_str().expect("request-id"));
    let configured = dir.join("savepoints").display().to_string();
    assert!(location.starts_with(&configured), "the configured directory: {location}");
    wait_for("the stopped job to finish", || (cluster.state(&stopped) == "FINISHED").then_some(()));
    assert_eq!(cluster.state(job_id), "RUNNING");
}

fn wait_for_location(cluster: &Cluster, job_id: &str, trigger: &str) -> String {
    assert_eq!(trigger.len(), 32);
    let status = wait_for("the savepoint", || {
        let (code, status) = cluster.get(&format!("/jobs/{job_id}/savepoints/{trigger}"));
        assert_eq!(code, 200, "{status}");
        let id = status["status"]["id"].as_str().expect("status.id").to_string();
        assert!(id == "IN_PROGRESS" || id == "COMPLETED", "{status}");
        (id == "COMPLETED").then_some(status)
    });
    status["operation"]["location"].as_str().unwrap_or_else(|| panic!("no location in {status}")).to_string()
}

/// `weir savepoint` and `weir stop` (token from `-D` and from `WEIR_TOKEN`), then `weir run -s`
/// of the stopped job, which must finish with every number exactly once.
fn check_cli_savepoint_stop_and_resume(cluster: &Cluster, dir: &Path) {
    let out = dir.join("counted-out");
    let job = format!(
        "name = \"counted\"\n[[operator]]\nid = \"numbers\"\ntype = \"sequence\"\nfrom = 1\nto = {COUNTED}\nrate = 1000\n\
         [[operator]]\nid = \"out\"\ntype = \"file_sink\"\ninput = \"numbers\"\npath = \"{}\"\nformat = \"csv\"\n",
        out.display()
    );
    let job = write(dir, "counted.toml", &job);
    let job = job.to_str().expect("utf-8");
    let token_flag = format!("security.token={TOKEN}");

    let output = weir_command().args(["run", "-d", job, "-m", &cluster.address]).output().expect("weir runs");
    assert_eq!(output.status.code(), Some(1), "without a token the submission is refused: {}", text(&output));
    let output = weir_command()
        .args(["run", "-d", job, "-m", &cluster.address])
        .env("WEIR_TOKEN", TOKEN)
        .output()
        .expect("weir runs");
    assert!(output.status.success(), "{}", text(&output));
    let printed = text(&output);
    let job_id = printed
        .lines()
        .find_map(|line| line.strip_prefix("Job has been submitted with JobID "))
        .unwrap_or_else(|| panic!("no job id in {printed}"))
        .to_string();
    cluster.wait_running(&job_id);

    let target = dir.join("cli-savepoints");
    let target = target.to_str().expect("utf-8");
    let output = weir_command()
        .args(["savepoint", &job_id, target, "--json", "-m", &cluster.address, "-D", &token_flag])
        .output()
        .expect("weir runs");
    assert!(output.status.success(), "{}", text(&output));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("savepoint --json prints JSON");
    let location = answer["savepoint"].as_str().expect("savepoint path");
    assert!(location.starts_with(target) && Path::new(location).join("_metadata").is_file(), "{answer}");

    let output = weir_command()
        .args(["stop", &job_id, "--savepoint-path", target, "-m", &cluster.address])
        .env("WEIR_TOKEN", TOKEN)
        .output()
        .expect("weir runs");
    assert!(output.status.success(), "{}", text(&output));
    let printed = text(&output);
    let stopped_at = printed
        .lines()
        .find_map(|line| line.strip_prefix("Savepoint completed. Path: "))
        .unwrap_or_else(|| panic!("no savepoint path in {printed}"))
        .to_string();
    wait_for("the stopped job to finish", || (cluster.state(&job_id) == "FINISHED").then_some(()));
    let before = committed_lines(&out).len();
    assert!(before > 0 && (before as u64) < COUNTED, "stopped midway: {before} numbers committed");

    let output = weir_command()
        .args(["run", job, "-s", &stopped_at, "-m", &cluster.address])
        .env("WEIR_TOKEN", TOKEN)
        .output()
        .expect("weir runs");
    assert!(output.status.success(), "the resumed job finishes: {}", text(&output));
    let mut expected: Vec<String> = (1..=COUNTED).map(|number| number.to_string()).collect();
    expected.sort();
    assert_eq!(committed_lines(&out), expected, "every number exactly once across the stop and the resume");

    let output = weir_command().args(["stop", "not-an-id", "-m", &cluster.address]).output().expect("weir runs");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = weir_command()
        .args(["savepoint", "0123456789abcdef0123456789abcdef", "-m", &cluster.address, "-D", &token_flag])
        .output()
        .expect("weir runs");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("not found"), "{}", text(&output));
}
