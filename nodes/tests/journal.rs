//! The daemons' journals, from the real `weir` binary on 127.0.0.1: a JobManager and a
//! TaskManager run a small wordcount to FINISHED and are stopped, and `weir journal replay`
//! rebuilds each state machine from its journal alone.
//!
//! - The JobManager (whose flush interval is an hour, so nothing but its shutdown writes its
//!   records out) ends by SIGTERM: it flushes its journal and then dies of that signal; the
//!   replayed JobManager saw the job FINISHED and then the killed TaskManager leave, and the
//!   journal ends on a whole record.
//! - The TaskManager is killed with SIGKILL, once its journal (flushed on an interval, never on
//!   shutdown here) shows every deployed task finished and every slot free again.
//! - A journal with a flipped byte is refused (exit code 2) with the offset of the damage.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};
use support::{free_port, get, wait_for};

fn temp_dir(name: &str) -> PathBuf {
    support::temp_dir("journal-daemons", name)
}

/// Longest wait for the job to end.
const JOB_WAIT_MAX: Duration = Duration::from_secs(120);
/// Longest wait for anything else.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// A daemon process, killed (SIGKILL) when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: sends a signal to our own child process, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal})");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < WAIT_MAX, "the daemon did not exit in {WAIT_MAX:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, role: &str, settings: &[String]) -> Daemon {
    let log = dir.join(format!("{role}.log"));
    let child = support::spawn_weir(role, dir, settings, &log);
    Daemon { child, log }
}

fn wordcount_job(dir: &Path) -> PathBuf {
    let input = dir.join("words.txt");
    let line = "the quick brown fox jumps over the lazy dog\n";
    std::fs::write(&input, line.repeat(2_000)).unwrap();
    let job = format!(
        "name = \"wordcount\"\nparallelism = 2\n\n\
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

/// The one segment `000000` of `role`'s journal in `dir`.
fn first_segment(dir: &Path, role: &str) -> PathBuf {
    let prefix = format!("journal-{role}-");
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with("-000000.bin")
        })
        .collect();
    assert_eq!(found.len(), 1, "one {role} journal in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

fn replay(journal: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir")).args(["journal", "replay"]).arg(journal).output().unwrap()
}

fn replay_text(journal: &Path) -> String {
    let output = replay(journal);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    text
}

/// How many records of `kind` the replay summary counts (`segments: …; kind n, kind n`).
fn inputs_of(summary: &str, kind: &str) -> u64 {
    let line = summary.lines().find(|line| line.starts_with("segments: ")).unwrap_or_default();
    let counts = line.rsplit("; ").next().unwrap_or_default();
    counts
        .split(", ")
        .filter_map(|entry| entry.rsplit_once(' '))
        .find(|(name, _)| *name == kind)
        .map_or(0, |(_, count)| count.parse().unwrap())
}

#[test]
fn journals_of_a_finished_wordcount_replay_to_the_same_end() {
    let dir = temp_dir("wordcount");
    let journals = dir.join("journal");
    let (rpc, rest) = (free_port(), free_port());
    let rest_address = format!("127.0.0.1:{rest}");
    let settings = vec![
        "jobmanager.rpc.address=127.0.0.1".to_string(),
        format!("jobmanager.rpc.port={rpc}"),
        format!("rest.port={rest}"),
        "rest.address=127.0.0.1".to_string(),
        "taskmanager.host=127.0.0.1".to_string(),
        "taskmanager.numberOfTaskSlots=2".to_string(),
        format!("high-availability.storageDir={}", dir.join("ha").display()),
        "heartbeat.interval=1 s".to_string(),
        "heartbeat.timeout=5 s".to_string(),
        format!("journal.dir={}", journals.display()),
    ];
    let job_manager_settings = [&settings[..], &["journal.flush-interval=1 h".to_string()]].concat();
    let mut job_manager = spawn(&dir, "jobmanager", &job_manager_settings);
    wait_for(|| get(&rest_address, "/overview").is_some(), "the JobManager's REST API", WAIT_MAX);
    let mut task_manager = spawn(&dir, "taskmanager", &settings);
    let registered =
        || get(&rest_address, "/taskmanagers").and_then(|body| body["taskmanagers"].as_array().map(Vec::len));
    wait_for(|| registered() == Some(1), "the TaskManager to register", WAIT_MAX);
    assert!(!job_manager.log().contains("unknown key `journal."), "{}", job_manager.log());

    let job = wordcount_job(&dir);
    let output =
        Command::new(env!("CARGO_BIN_EXE_weir")).args(["run", "-d", "-m", &rest_address]).arg(&job).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    let job_id = text.split_whitespace().find(|word| word.len() == 32).expect("a job id").to_string();
    let state =
        || get(&rest_address, &format!("/jobs/{job_id}")).and_then(|body| body["state"].as_str().map(str::to_string));
    wait_for(|| state().as_deref() == Some("FINISHED"), "the job to finish", JOB_WAIT_MAX);

    // The TaskManager's journal reaches the job's end while it runs (its interval flush), so a
    // SIGKILL, which flushes nothing, loses none of it.
    let executor_journal = first_segment(&journals, "taskmanager");
    wait_for(
        || {
            let summary = replay_text(&executor_journal);
            let deployed = inputs_of(&summary, "deployment");
            deployed > 0
                && inputs_of(&summary, "task finished") == deployed
                && summary.lines().filter(|line| line.ends_with(": free")).count() == 2
        },
        "the TaskManager's journal to show every task finished and both slots free",
        WAIT_MAX,
    );
    task_manager.signal(libc::SIGKILL);
    task_manager.wait_exit();
    let summary = replay_text(&executor_journal);
    assert!(summary.contains("registered: yes; leader epoch 1"), "{summary}");
    assert!(summary.contains("invariants: held after every record"), "{summary}");

    wait_for(|| registered() == Some(0), "the JobManager to notice the TaskManager is gone", WAIT_MAX);
    job_manager.signal(libc::SIGTERM);
    let status = job_manager.wait_exit();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "the JobManager dies of SIGTERM after flushing: {status:?}");
    let job_manager_journal = first_segment(&journals, "jobmanager");
    let summary = replay_text(&job_manager_journal);
    assert!(summary.contains(&format!("job {job_id} \"wordcount\": FINISHED")), "{summary}");
    assert!(summary.contains("machine: JobManager (Session mode, leader epoch 1"), "{summary}");
    assert!(summary.contains("tail: whole"), "{summary}");
    assert!(summary.contains("invariants: held after every record"), "{summary}");
    // The TaskManager died first: its closed connection disconnected it, and that is journaled too.
    assert!(summary.contains("task managers: 0; slots: 0, free 0"), "{summary}");

    // Both journals together: each replayed machine sends every message the other received
    // (the disconnect the JobManager's glue made when the connection closed apart).
    let output = Command::new(env!("CARGO_BIN_EXE_weir")).args(["sim", "replay", "--journal"]).arg(&journals).output();
    let output = output.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("2 journals replayed: the same decisions"), "{text}");

    let broken = dir.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let copy = broken.join(job_manager_journal.file_name().unwrap());
    let mut bytes = std::fs::read(&job_manager_journal).unwrap();
    bytes[12 + 8 + 2] ^= 0x01; // a byte of the segment start's payload, after the preamble and frame header
    std::fs::write(&copy, bytes).unwrap();
    let output = replay(&copy);
    let error = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(error.contains("corrupt record at offset 12"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
