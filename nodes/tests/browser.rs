//! The web UI in a real browser: headless Chromium (Debian's `chromium`, installed by
//! scripts/setup.sh), driven over the DevTools protocol, loads the job page of a real cluster
//! (JobManager and TaskManager daemons) running a streaming word count. The job graph must be
//! drawn with every vertex's name, parallelism and state, the TaskManagers page its slots and the
//! overview the job; screenshots are saved under `target/test-output/browser/`; the job is
//! cancelled with the page's own button and the page must then show it CANCELED.

#[path = "browser/cdp.rs"]
mod cdp;
mod support;

use cdp::Browser;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Longest wait for the cluster or the browser.
const WAIT_MAX: Duration = Duration::from_secs(20);
/// A word count that never ends: an endless rate-limited source of numbers mapped to 97
/// distinct words, keyed by word, counted, discarded. Source parallelism 1, the rest 2, so the
/// graph has a FORWARD-breaking edge and a HASH edge.
const STREAMING_WORDCOUNT: &str = r#"
name = "streaming-wordcount"
parallelism = 2

[[operator]]
id = "numbers"
type = "sequence"
to = 999_999_999
rate = 300
parallelism = 1

[[operator]]
id = "words"
type = "map"
input = "numbers"
fields = { word = "x % 97" }

[[operator]]
id = "by-word"
type = "key_by"
input = "words"
key = "word"

[[operator]]
id = "counts"
type = "aggregate"
input = "by-word"
aggregates = { count = "count()" }

[[operator]]
id = "sink"
type = "discard"
input = "counts"
"#;

/// `target/test-output/browser/`, beside the binaries this test runs.
fn output_dir() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_weir"));
    let target = binary.parent().and_then(Path::parent).expect("target directory");
    let dir = target.join("test-output").join("browser");
    std::fs::create_dir_all(&dir).expect("test output directory");
    dir
}

/// Debian's Chromium; the test fails (never skips) without it.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("no `chromium` on PATH: run scripts/setup.sh (it installs Debian's chromium)"))
}

/// A JobManager daemon and one TaskManager with four slots, killed when dropped.
struct Cluster {
    daemons: Vec<Child>,
    /// `127.0.0.1:port` of the JobManager's REST API (and web UI).
    address: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let rest_port = support::free_port();
        let settings = [
            "jobmanager.rpc.address=127.0.0.1".to_string(),
            format!("jobmanager.rpc.port={}", support::free_port()),
            format!("rest.port={rest_port}"),
            "rest.address=127.0.0.1".to_string(),
            "taskmanager.host=127.0.0.1".to_string(),
            "taskmanager.numberOfTaskSlots=4".to_string(),
            format!("high-availability.storageDir={}", dir.join("ha").display()),
            format!("journal.dir={}", dir.join("journal").display()),
            format!("execution.checkpointing.dir={}", dir.join("checkpoints").display()),
        ];
        let mut cluster = Cluster { daemons: Vec::new(), address: format!("127.0.0.1:{rest_port}") };
        for role in ["jobmanager", "taskmanager"] {
            let log = std::fs::File::create(dir.join(format!("{role}.log"))).expect("log file");
            let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
            command.arg(role).current_dir(dir);
            for setting in &settings {
                command.arg("-D").arg(setting);
            }
            let stderr = log.try_clone().expect("log file");
            let child = command.stdin(Stdio::null()).stdout(log).stderr(stderr).spawn().expect("the daemon starts");
            cluster.daemons.push(child);
        }
        let address = cluster.address.clone();
        let started = std::time::Instant::now();
        while !support::get(&address, "/taskmanagers").is_some_and(|body| body["taskmanagers"][0].is_object()) {
            if started.elapsed() > WAIT_MAX {
                let log = |role: &str| std::fs::read_to_string(dir.join(format!("{role}.log"))).unwrap_or_default();
                let (job_manager, task_manager) = (log("jobmanager"), log("taskmanager"));
                let logs = format!("jobmanager:\n{job_manager}\ntaskmanager:\n{task_manager}");
                panic!("no TaskManager registered in {WAIT_MAX:?}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// Submits `job` detached (`weir run -d`); its id.
    fn submit(&self, job: &Path) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "-d", "-m", &self.address])
            .arg(job)
            .output()
            .expect("weir run starts");
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
        printed
            .lines()
            .find_map(|line| line.strip_prefix("Job has been submitted with JobID "))
            .unwrap_or_else(|| panic!("no job id in {printed}"))
            .trim()
            .to_string()
    }

    fn url(&self, fragment: &str) -> String {
        format!("http://{}/#{fragment}", self.address)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

fn job_state(address: &str, job_id: &str) -> Option<String> {
    support::get(address, &format!("/jobs/{job_id}/status"))?["status"].as_str().map(String::from)
}

/// The graph's boxes as the page drew them: (name, parallelism, state) in document order.
const DRAWN_VERTICES: &str = "[...document.querySelectorAll('#job-graph [data-vertex-id]')]\
    .map((box) => [box.dataset.name, box.dataset.parallelism, box.dataset.status])";
const EDGE_LABELS: &str = "[...document.querySelectorAll('#job-graph [data-ship-strategy]')]\
    .map((edge) => edge.dataset.shipStrategy)";
const JOB_STATE: &str = "document.getElementById('job-state')?.dataset.state ?? null";

#[test]
fn the_job_page_draws_the_graph_and_a_cancel_from_the_page_shows_canceled() {
    let chromium = chromium(); // first: without it, fail before starting anything
    let dir = support::temp_dir("browser", "job-page");
    let job = dir.join("streaming-wordcount.toml");
    std::fs::write(&job, STREAMING_WORDCOUNT).expect("job file");
    let cluster = Cluster::start(&dir);
    let mut browser = Browser::start(&chromium, &dir.join("chromium-profile"), 1280, 800);
    let job_id = cluster.submit(&job);
    let running = || {
        support::get(&cluster.address, &format!("/jobs/{job_id}"))
            .is_some_and(|detail| support::all_tasks_running(&detail))
    };
    support::wait_for(running, "the word count's tasks to run", WAIT_MAX);

    check_the_job_graph(&mut browser, &cluster, &job_id);
    check_the_layout(&mut browser);
    check_the_other_pages(&mut browser, &cluster);
    check_cancel_from_the_job_page(&mut browser, &cluster, &job_id);

    drop(browser);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One box per vertex, in plan order, with its name, parallelism and state; edges labelled with
/// their partitioner; every panel of the page; a screenshot.
fn check_the_job_graph(browser: &mut Browser, cluster: &Cluster, job_id: &str) {
    let detail = support::get(&cluster.address, &format!("/jobs/{job_id}")).expect("the job's detail");
    let expected: Vec<Value> = detail["vertices"]
        .as_array()
        .expect("vertices")
        .iter()
        .map(|vertex| json!([vertex["name"], vertex["parallelism"].to_string(), "RUNNING"]))
        .collect();
    assert!(expected.len() >= 2, "the word count has several vertices: {expected:?}");

    browser.navigate(&cluster.url(&format!("/jobs/{job_id}")));
    let drawn = browser.wait_for(DRAWN_VERTICES, "the job graph", WAIT_MAX);
    assert_eq!(drawn, Value::Array(expected.clone()), "the graph's vertices");
    let labels = browser.evaluate(EDGE_LABELS);
    let labels: Vec<&str> = labels.as_array().expect("labels").iter().filter_map(Value::as_str).collect();
    assert_eq!(labels.len(), expected.len() - 1, "a pipeline has one edge fewer than vertices: {labels:?}");
    assert!(labels.contains(&"HASH"), "the keyed edge is labelled HASH: {labels:?}");
    assert_eq!(browser.evaluate(JOB_STATE), "RUNNING");
    // Every panel is there (each with its data or a one-line "not available").
    let panels = browser.evaluate("[...document.querySelectorAll('.panel h2')].map((title) => title.textContent)");
    for title in ["Job graph", "Vertices", "Exceptions", "Checkpoints"] {
        assert!(panels.as_array().expect("titles").iter().any(|panel| panel.as_str() == Some(title)), "{panels}");
    }

    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
    std::fs::write(output_dir().join("job-page.png"), &png).expect("screenshot written");
}

/// The layout, on a graph with a diamond and a longer branch: a vertex's layer is its longest
/// path from a source, and the same plan always gives the same positions.
fn check_the_layout(browser: &mut Browser) {
    let layout = "import('/web/graph.js').then(({ layout }) => { \
        const nodes = [{ id: 'd', inputs: [{ id: 'b' }, { id: 'x' }, { id: 'c' }] }, { id: 'a' }, \
          { id: 'b', inputs: [{ id: 'a' }] }, { id: 'x', inputs: [{ id: 'b' }] }, { id: 'c', inputs: [{ id: 'a' }] }]; \
        const [one, two] = [layout(nodes), layout(nodes)]; \
        const at = (placed, id) => placed.positions.get(id); \
        return nodes.map(({ id }) => [id, at(one, id).layer, \
          at(one, id).x === at(two, id).x && at(one, id).y === at(two, id).y]); })";
    let expected = json!([["d", 3, true], ["a", 0, true], ["b", 1, true], ["x", 2, true], ["c", 1, true]]);
    assert_eq!(browser.evaluate(layout), expected);
}

/// The TaskManagers page draws each slot, filled when in use, as /taskmanagers counts them; the
/// overview and the job list show the job; a TaskManager's own page renders.
fn check_the_other_pages(browser: &mut Browser, cluster: &Cluster) {
    let managers = support::get(&cluster.address, "/taskmanagers").expect("TaskManagers");
    let manager = &managers["taskmanagers"][0];
    let slots = manager["slotsNumber"].as_u64().expect("slots");
    let used = slots - manager["freeSlots"].as_u64().expect("free slots");
    assert!(used > 0, "the running job holds slots: {manager}");
    browser.navigate(&cluster.url("/taskmanagers"));
    let counted = "(() => { const slots = document.querySelectorAll('.slots .slot'); \
        return slots.length ? [slots.length, document.querySelectorAll('.slots .slot.used').length] : null; })()";
    assert_eq!(browser.wait_for(counted, "the TaskManagers page", WAIT_MAX), json!([slots, used]));
    std::fs::write(output_dir().join("taskmanagers.png"), browser.screenshot()).expect("screenshot written");

    browser.navigate(&cluster.url("/overview"));
    let listed = "[...document.querySelectorAll('tr[data-href^=\"#/jobs/\"] a')].map((link) => link.textContent)";
    assert_eq!(browser.wait_for(listed, "the overview's job list", WAIT_MAX), json!(["streaming-wordcount"]));
    std::fs::write(output_dir().join("overview.png"), browser.screenshot()).expect("screenshot written");

    browser.navigate(&cluster.url("/jobs"));
    let listed =
        "document.querySelector('h1').textContent === 'Jobs' && document.querySelectorAll('tr[data-href]').length";
    assert_eq!(browser.wait_for(listed, "the job list", WAIT_MAX), 1);
    let manager_id = manager["id"].as_str().expect("TaskManager id");
    browser.navigate(&cluster.url(&format!("/taskmanagers/{manager_id}")));
    browser.wait_for("document.querySelectorAll('.panel').length === 2", "a TaskManager's panel", WAIT_MAX);
}

/// The page's Cancel button asks first; confirming cancels the job and the page turns CANCELED
/// (the graph as last seen, each vertex CANCELED), as does a fresh load. No script error anywhere.
fn check_cancel_from_the_job_page(browser: &mut Browser, cluster: &Cluster, job_id: &str) {
    browser.navigate(&cluster.url(&format!("/jobs/{job_id}")));
    browser.wait_for("document.getElementById('cancel-job')", "the job page's cancel button", WAIT_MAX);
    browser.evaluate("document.getElementById('cancel-job').click()");
    browser.wait_for("document.getElementById('confirm-dialog').open", "the confirmation", WAIT_MAX);
    let state = || job_state(&cluster.address, job_id);
    assert_eq!(state().as_deref(), Some("RUNNING"), "nothing happens before confirming");
    browser.evaluate("document.querySelector('#confirm-dialog button[value=yes]').click()");
    browser.wait_for(&format!("({JOB_STATE}) === 'CANCELED'"), "the page to show CANCELED", WAIT_MAX);
    assert_eq!(state().as_deref(), Some("CANCELED"), "the cluster cancelled it");
    assert_eq!(browser.evaluate("document.getElementById('cancel-job') === null"), true, "no cancel button once ended");
    let drawn = browser.evaluate(DRAWN_VERTICES);
    let states: Vec<&Value> = drawn.as_array().expect("vertices").iter().map(|vertex| &vertex[2]).collect();
    assert!(!states.is_empty() && states.iter().all(|state| *state == "CANCELED"), "the graph as last seen: {drawn}");
    assert_eq!(browser.errors(), json!([]), "no page had a script error");

    browser.call("Page.reload", json!({}));
    browser.wait_for(&format!("({JOB_STATE}) === 'CANCELED'"), "the reloaded page", WAIT_MAX);
    assert_eq!(browser.errors(), json!([]), "the reloaded page had a script error");
}
