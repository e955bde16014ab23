//! `weir info`: the plan of a job file, from the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    Command::new(env!("CARGO_BIN_EXE_weir")).args(args).current_dir(workspace).output().expect("weir runs")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "weir failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("valid JSON on stdout")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

#[test]
fn windowed_sum_has_two_vertices_joined_by_one_hash_input() {
    let document = json(&weir(&["info", "examples/windowed-sum.toml", "--json", "-p", "2"]));
    let nodes = document["plan"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    assert!(nodes[0].get("inputs").is_none(), "the source vertex has no inputs");
    let inputs = nodes[1]["inputs"].as_array().expect("inputs");
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0]["ship_strategy"], "HASH");
    assert_eq!(inputs[0]["id"], nodes[0]["id"]);
    assert_eq!(nodes[0]["operators"], serde_json::json!(["Source: Sequence", "Map"]));
    assert_eq!(nodes[1]["operators"], serde_json::json!(["Window(Count 1000)", "Sink: Discard"]));
    assert_eq!(document["required_slots"], 2, "required slots equal the job's parallelism");
    for node in nodes {
        assert_eq!(node["id"].as_str().expect("id").len(), 32);
        assert_eq!(node["parallelism"], 2);
        assert_eq!(node["slot_sharing_group"], "default");
    }
}

#[test]
fn chaining_off_makes_every_operator_a_vertex() {
    let document =
        json(&weir(&["info", "examples/windowed-sum.toml", "--json", "-D", "pipeline.operator-chaining=false"]));
    let nodes = document["plan"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 4);
    let strategies: Vec<&str> =
        nodes[1..].iter().map(|n| n["inputs"][0]["ship_strategy"].as_str().unwrap_or("")).collect();
    assert_eq!(strategies, ["FORWARD", "HASH", "FORWARD"]);
}

#[test]
fn two_slot_sharing_groups_of_3_and_2_need_5_slots() {
    let job = temp_file(
        "groups.toml",
        r#"name = "groups"
[[operator]]
id = "numbers"
type = "sequence"
to = 100
parallelism = 3
[[operator]]
id = "by-x"
type = "key_by"
input = "numbers"
key = "x % 10"
[[operator]]
id = "counts"
type = "aggregate"
input = "by-x"
aggregates = { n = "count()" }
parallelism = 2
slot_sharing_group = "counting"
[[operator]]
id = "out"
type = "print"
input = "counts"
"#,
    );
    let document = json(&weir(&["info", job.to_str().expect("utf-8 path"), "--json"]));
    assert_eq!(document["required_slots"], 5);
    assert_eq!(document["slots_per_group"], serde_json::json!({"counting": 2, "default": 3}));
}

#[test]
fn malformed_job_file_exits_2_with_one_line_naming_file_line_and_field() {
    let job = temp_file("bad.toml", "name = \"bad\"\n[[operator]]\nid = \"s\"\ntype = \"sequence\"\nto = \"many\"\n");
    let output = weir(&["info", job.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("bad.toml:5:"), "names file and line: {stderr}");
    assert!(stderr.contains("`operator `s`.to`"), "names the field: {stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn missing_job_file_and_bad_override_are_clear_errors() {
    let output = weir(&["info", "no/such/job.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no/such/job.toml: cannot read job file"));
    let output = weir(&["info", "examples/windowed-sum.toml", "-D", "heartbeat.timeout=soon"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("heartbeat.timeout") && stderr.contains("soon"), "{stderr}");
}

#[test]
fn local_runs_the_job_and_commits_exactly_the_expected_output() {
    let out = std::env::temp_dir().join(format!("weir-local-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let job = temp_file(
        "sums.toml",
        &format!(
            r#"name = "sums"
[[operator]]
id = "numbers"
type = "sequence"
to = 9999
[[operator]]
id = "pairs"
type = "map"
input = "numbers"
fields = {{ k = "x % 10", v = "x" }}
[[operator]]
id = "by-k"
type = "key_by"
input = "pairs"
key = "k"
[[operator]]
id = "sums"
type = "window"
input = "by-k"
window = {{ type = "count", size = 100 }}
aggregates = {{ total = "sum(v)" }}
[[operator]]
id = "out"
type = "file_sink"
input = "sums"
path = "{}"
format = "csv"
"#,
            out.display()
        ),
    );
    let output = weir(&["local", job.to_str().expect("utf-8 path"), "-p", "2"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FINISHED: 10000 records"), "{stdout}");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&out).expect("the sink's directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        assert!(!name.starts_with(".pending"), "every part is committed: {name}");
        lines.extend(std::fs::read_to_string(&path).expect("part").lines().map(String::from));
    }
    assert_eq!(lines.len(), 100, "10 keys x 10 windows of 100 records");
    let total: i64 =
        lines.iter().map(|line| line.split(',').nth(1).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0)).sum();
    assert_eq!(total, (0..10_000).sum::<i64>(), "every record counted exactly once");
}
