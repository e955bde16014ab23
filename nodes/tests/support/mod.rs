//! Helpers the process-level tests share: free ports, scratch directories, bounded waits and a
//! plain HTTP GET. Each test binary uses some of them.
#![allow(dead_code)]

pub mod ha;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|address| address.port()).unwrap()
}

/// A fresh, empty directory for one test of one test binary (`suite`).
pub fn temp_dir(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `done`, failing the test after `bound`.
pub fn wait_for(mut done: impl FnMut() -> bool, what: &str, bound: Duration) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < bound, "waited {bound:?} for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// GET `path` from `address`; the JSON body of a 200 answer.
pub fn get(address: &str, path: &str) -> Option<serde_json::Value> {
    get_with_token(address, path, None)
}

/// GET `path` from `address` with the cluster token as a bearer token; the JSON of a 200 answer.
pub fn get_with_token(address: &str, path: &str, token: Option<&str>) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let authorization = token.map_or(String::new(), |token| format!("Authorization: Bearer {token}\r\n"));
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n").ok()?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    if !status.contains(" 200 ") {
        return None;
    }
    let mut body = String::new();
    reader.read_to_string(&mut body).ok()?;
    let (_, json) = body.split_once("\r\n\r\n")?;
    serde_json::from_str(json).ok()
}

/// Starts `weir ROLE -D SETTING...` in `dir`, its stdout and stderr appended to the file `log`.
pub fn spawn_weir<S: AsRef<std::ffi::OsStr>>(
    role: &str,
    dir: &std::path::Path,
    settings: impl IntoIterator<Item = S>,
    log: &std::path::Path,
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let file = std::fs::File::create(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.arg(role).current_dir(dir);
    for setting in settings {
        command.arg("-D").arg(setting);
    }
    let output = Stdio::from(file.try_clone().unwrap());
    command.stdin(Stdio::null()).stdout(output).stderr(Stdio::from(file)).spawn().unwrap()
}

/// Whether a job's detail (`GET /jobs/:id`) shows it RUNNING with every task RUNNING: a job is
/// RUNNING once scheduled, its tasks only once deployed.
pub fn all_tasks_running(detail: &serde_json::Value) -> bool {
    let Some(counts) = detail["status-counts"].as_object() else { return false };
    let total: u64 = counts.values().filter_map(serde_json::Value::as_u64).sum();
    detail["state"] == "RUNNING"
        && total > 0
        && counts.get("RUNNING").and_then(serde_json::Value::as_u64) == Some(total)
}

/// What wordcount with running counts must commit for `input`: for every word seen n times, the
/// lines `word,1` .. `word,n`, sorted.
pub fn expected_counts(input: &str) -> Vec<String> {
    let mut seen: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    let mut lines = Vec::new();
    for word in input.split(['\n', ' ']).filter(|word| !word.is_empty()) {
        let count = seen.entry(word).or_default();
        *count += 1;
        lines.push(format!("{word},{count}"));
    }
    lines.sort();
    lines
}

/// Every line of the committed parts in `directory`, sorted; no part may be left pending.
pub fn committed_lines(directory: &std::path::Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(directory).expect("output directory").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".pending-"), "a part left pending after the job finished: {name}");
        let content = std::fs::read_to_string(entry.path()).expect("part file");
        lines.extend(content.lines().map(String::from));
    }
    lines.sort();
    lines
}

/// Starts `command` with its standard output piped, and a thread that hands each line of it to
/// the returned receiver (the daemons print their addresses there).
pub fn spawn_with_stdout_lines(
    command: &mut std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = command.stdout(std::process::Stdio::piped()).spawn().expect("the process starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    (child, lines)
}
