//! `weir bench schedule`, `weir sim run` and `weir sim explore` from the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    Command::new(env!("CARGO_BIN_EXE_weir")).args(args).current_dir(workspace).output().expect("weir runs")
}

#[test]
fn bench_schedule_deploys_every_task_and_reports_each_phase() {
    let output = weir(&["bench", "schedule", "--tasks", "400", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(report["tasks"], 400);
    assert_eq!(report["vertices"], 2);
    for phase in ["plan_ms", "slots_ms", "deploy_ms", "running_ms", "total_ms"] {
        assert!(report[phase].as_f64().is_some_and(|ms| ms >= 0.0), "{phase}: {report}");
    }
}

#[test]
fn bench_state_runs_both_backends_on_the_same_work_and_they_snapshot_the_same_bytes() {
    let output = weir(&["bench", "state", "--keys", "2000", "--records", "20000", "--snapshots", "3", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    let (heap, rocksdb) = (&report["heap"], &report["rocksdb"]);
    assert_eq!((heap["backend"].as_str(), rocksdb["backend"].as_str()), (Some("heap"), Some("rocksdb")));
    assert!(heap["snapshot_bytes"].as_u64().is_some_and(|bytes| bytes > 2000), "{report}");
    assert_eq!(heap["snapshot_bytes"], rocksdb["snapshot_bytes"], "the same state, the same snapshot");
    for figure in ["records_per_second", "snapshot_ms"] {
        assert!(rocksdb[figure].as_f64().is_some_and(|value| value > 0.0), "{figure}: {report}");
    }
    assert!(report["throughput_ratio"].as_f64().is_some(), "{report}");
    for backend in [heap, rocksdb] {
        assert_eq!(backend["snapshots"], 3, "{report}");
        let (p50, p99) = (backend["snapshot_ms_p50"].as_f64(), backend["snapshot_ms_p99"].as_f64());
        assert!(p50.zip(p99).is_some_and(|(p50, p99)| 0.0 < p50 && p50 <= p99), "{report}");
    }
    for refused in [["--keys", "0"], ["--snapshots", "0"]] {
        let refused = weir(&["bench", "state", refused[0], refused[1]]);
        assert_eq!(refused.status.code(), Some(2));
    }
    let incremental = &report["rocksdb_incremental"];
    let figure = |name: &str| incremental[name].as_u64().unwrap_or_else(|| panic!("{name}: {report}"));
    assert!(figure("first_uploaded_bytes") > 0, "{report}");
    assert!(figure("second_uploaded_bytes") < figure("second_state_bytes"), "only new files go up: {report}");
}

#[test]
fn bench_schedule_refuses_an_odd_task_count() {
    let output = weir(&["bench", "schedule", "--tasks", "3"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn sim_run_reports_json_with_the_trace_hash_and_replays_identically() {
    let run = || weir(&["sim", "run", "scenarios/tm-crash.toml", "--seed", "5", "--json"]);
    let (first, second) = (run(), run());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stdout));
    let parse = |output: &Output| -> serde_json::Value { serde_json::from_slice(&output.stdout).expect("JSON") };
    let (a, b) = (parse(&first), parse(&second));
    for field in ["seed", "events", "virtual_ms", "wall_ms", "trace_hash", "jobs", "violations"] {
        assert!(a.get(field).is_some(), "missing {field}");
    }
    assert_eq!(a["trace_hash"], b["trace_hash"]);
    assert_eq!(a["jobs"][0]["status"], "FINISHED");
}

#[test]
fn sim_run_fails_with_the_replay_command_when_an_expectation_is_unmet() {
    let dir = std::env::temp_dir().join(format!("weir-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("jobs")).expect("temp dir");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    std::fs::copy(workspace.join("scenarios/jobs/two-vertices.toml"), dir.join("jobs/two-vertices.toml"))
        .expect("copy");
    let scenario = std::fs::read_to_string(workspace.join("scenarios/happy-path.toml")).expect("read");
    let wrong = scenario.replace("expect = \"FINISHED\"", "expect = \"CANCELED\"");
    let path = dir.join("wrong.toml");
    std::fs::write(&path, wrong).expect("write");
    let output = weir(&["sim", "run", path.to_str().expect("utf-8"), "--seed", "3"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--seed 3") && stderr.contains("weir sim run"), "{stderr}");
}

#[test]
fn sim_replay_proves_a_recording_and_dumps_states_at_an_event() {
    let record = std::env::temp_dir().join(format!("weir-record-{}.json", std::process::id()));
    let recorded =
        weir(&["sim", "run", "scenarios/happy-path.toml", "--seed", "2", "--record", record.to_str().expect("utf-8")]);
    assert!(recorded.status.success());
    let replayed = weir(&["sim", "replay", "--trace", record.to_str().expect("utf-8")]);
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stderr));
    assert!(String::from_utf8_lossy(&replayed.stdout).contains("(identical)"));
    let mut recording: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("recording")).expect("JSON");
    recording["trace_hash"] = serde_json::Value::String("0000000000000000".into());
    std::fs::write(&record, recording.to_string()).expect("tamper");
    let tampered = weir(&["sim", "replay", "--trace", record.to_str().expect("utf-8")]);
    assert_eq!(tampered.status.code(), Some(1), "a different trace is caught");
    let dump = weir(&[
        "sim",
        "replay",
        "scenarios/happy-path.toml",
        "--seed",
        "2",
        "--until",
        "50",
        "--node",
        "tm-0",
        "--json",
    ]);
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let document: serde_json::Value = serde_json::from_slice(&dump.stdout).expect("JSON");
    assert_eq!(document["event"], 50);
    assert!(document["nodes"]["tm-0"].as_str().is_some_and(|state| state.contains("TaskExecutor")));
    assert!(document["nodes"].get("jm").is_none(), "--node keeps one node");
}

#[test]
fn sim_explore_summarises_passing_seeds_and_names_each_failing_one_with_its_replay_command() {
    let good = weir(&["sim", "explore", "scenarios/tm-crash.toml", "--seeds", "20", "--jobs", "2"]);
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    let summary = String::from_utf8_lossy(&good.stdout);
    assert!(summary.contains("explored 20 seeds of 1 scenario(s) on 2 thread(s)"), "{summary}");
    assert!(summary.contains("events/s") && summary.contains("; 0 failing"), "{summary}");

    // sim/tests/shrink.rs's deliberately wrong configuration: no restarts under a nemesis.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let dir = std::env::temp_dir().join(format!("weir-explore-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("jobs")).expect("temporary directory");
    std::fs::copy(workspace.join("scenarios/jobs/two-vertices.toml"), dir.join("jobs/two-vertices.toml")).expect("job");
    let text = std::fs::read_to_string(workspace.join("scenarios/nemesis-swarm.toml")).expect("scenario");
    let wrong = text
        .replace("\"restart-strategy.fixed-delay.attempts\" = 1000", "\"restart-strategy.fixed-delay.attempts\" = 0");
    assert_ne!(wrong, text, "the wrong configuration was planted");
    let path = dir.join("wrong.toml");
    std::fs::write(&path, wrong).expect("scenario written");
    let path = path.to_str().expect("a UTF-8 path");
    let bad = weir(&["sim", "explore", path, "--seeds", "20", "--jobs", "2"]);
    assert_eq!(bad.status.code(), Some(1), "explore fails when a seed fails");
    let (stdout, stderr) = (String::from_utf8_lossy(&bad.stdout), String::from_utf8_lossy(&bad.stderr));
    assert!(!stdout.contains("; 0 failing"), "{stdout}");
    let replay = stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("replay: weir "))
        .unwrap_or_else(|| panic!("no replay command in {stderr}"));
    assert!(stderr.contains("FAILED nemesis-swarm seed "), "{stderr}");
    let args: Vec<&str> = replay.split_whitespace().collect();
    assert_eq!(&args[..3], ["sim", "run", path], "{replay}");
    let replayed = weir(&args);
    assert_eq!(replayed.status.code(), Some(1), "the printed command replays the failure: {replay}");
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}
