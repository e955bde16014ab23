//! `weir local`: jobs run to the end on the embedded cluster, from the real binary.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{committed_lines, expected_counts};

fn weir(args: &[&str]) -> Output {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    Command::new(env!("CARGO_BIN_EXE_weir")).args(args).current_dir(workspace).output().expect("weir runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-local-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn windowed_sum_runs_to_the_end_and_counts_its_records() {
    let dir = temp_dir("windowed-sum");
    let job = dir.join("job.toml");
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/windowed-sum.toml"))
        .expect("example");
    std::fs::write(&job, source.replace("to = 99_999_999", "to = 199_999")).expect("write job");
    let output = weir(&["local", job.to_str().expect("utf-8"), "-p", "2"]);
    assert!(output.status.success(), "{}", text(&output));
    let printed = text(&output);
    assert!(printed.contains("FINISHED: 200000 records from the sources"), "{printed}");
    assert!(printed.contains("job RUNNING"), "{printed}");
}

#[test]
fn wordcount_with_checkpoints_commits_every_count_exactly_once() {
    run_wordcount_with_checkpoints("wordcount", &[]);
}

/// The same with keyed state in RocksDB at parallelism 2: the counts are the heap's, and every
/// RocksDB instance's files are gone once the job ends.
#[test]
fn wordcount_on_rocksdb_state_commits_the_same_counts_and_leaves_no_instance_behind() {
    let rocks = temp_dir("wordcount-rocks-instances");
    let local_dir = format!("state.backend.rocksdb.localdir={}", rocks.display());
    run_wordcount_with_checkpoints(
        "wordcount-rocks",
        &["-D", "state.backend.type=rocksdb", "-D", &local_dir, "-p", "2"],
    );
    let left: Vec<_> = std::fs::read_dir(&rocks).expect("the instances' directory").collect();
    assert!(left.is_empty(), "RocksDB instances left behind: {left:?}");
}

fn run_wordcount_with_checkpoints(name: &str, extra: &[&str]) {
    let dir = temp_dir(name);
    let words: Vec<String> = (0..30_000u64).map(|i| format!("w{}", (i * 7919) % 211)).collect();
    let input: String = words.chunks(10).map(|line| line.join(" ") + "\n").collect();
    std::fs::write(dir.join("words.txt"), &input).expect("input");
    let job = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wordcount.toml"))
        .expect("example")
        .replace("/tmp/words.txt", &dir.join("words.txt").display().to_string())
        .replace("/tmp/wordcount-out", &dir.join("out").display().to_string())
        .replace("\"execution.checkpointing.interval\" = \"1 s\"", "\"execution.checkpointing.interval\" = \"20 ms\"");
    let job_path = dir.join("wordcount.toml");
    std::fs::write(&job_path, job).expect("job");
    let checkpoints = dir.join("checkpoints");
    let checkpoint_dir = format!("execution.checkpointing.dir={}", checkpoints.display());
    let mut args = vec!["local", job_path.to_str().expect("utf-8"), "-D", &checkpoint_dir];
    args.extend(extra);
    let output = weir(&args);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(committed_lines(&dir.join("out")), expected_counts(&input));
}

#[test]
fn a_malformed_job_file_is_refused_with_its_position() {
    let dir = temp_dir("malformed");
    let job = dir.join("bad.toml");
    std::fs::write(&job, "name = \"x\"\n[[operator]]\nid = \"s\"\ntype = \"sequense\"\n").expect("write");
    let output = weir(&["local", job.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("bad.toml:4"), "{}", text(&output));
}
