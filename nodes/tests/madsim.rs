//! The real daemons' code (`weir_nodes::daemon`, `weir_net`) in madsim's deterministic
//! simulation: a JobManager and three TaskManagers on simulated hosts, their RPC and data
//! channels over madsim's TCP, each task a simulated task stepping the same turns as a task
//! thread. One TaskManager is killed in the middle of the job and later restarted; the job must
//! fail over and finish with its committed output exact.
//!
//! Run with: `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim MADSIM_TEST_SEED=1
//! cargo test -p weir-nodes --test madsim` (scripts/test.sh does, over several seeds).
#![cfg(madsim)]

use madsim::runtime::Handle;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_core::config::{Config, RawConfig};
use weir_core::dispatcher::ClusterMode;
use weir_core::job::file::parse_job_file;
use weir_core::protocol::{JobStatus, JobSubmission};
use weir_nodes::api::Operators;
use weir_nodes::daemon::job_manager::{self, JobManagerOptions};
use weir_nodes::daemon::task_manager;

/// Keys, records per key, and the source's rate in records per (virtual) second.
const KEYS: u64 = 10;
const RECORDS: u64 = 4000;
const RATE: u64 = 1000;

fn job(out: &Path) -> JobSubmission {
    let text = format!(
        "name = \"counts\"\nparallelism = 2\n\n[config]\n\"execution.checkpointing.interval\" = \"200 ms\"\n\
         \"restart-strategy.type\" = \"fixed-delay\"\n\"restart-strategy.fixed-delay.delay\" = \"200 ms\"\n\n\
         [[operator]]\nid = \"numbers\"\ntype = \"sequence\"\nto = {}\nrate = {RATE}\nparallelism = 1\n\n\
         [[operator]]\nid = \"keyed\"\ntype = \"map\"\ninput = \"numbers\"\nfields = {{ k = \"x % {KEYS}\" }}\n\n\
         [[operator]]\nid = \"by-key\"\ntype = \"key_by\"\ninput = \"keyed\"\nkey = \"k\"\n\n\
         [[operator]]\nid = \"counts\"\ntype = \"aggregate\"\ninput = \"by-key\"\naggregates = {{ n = \"count()\" }}\n\n\
         [[operator]]\nid = \"out\"\ntype = \"file_sink\"\ninput = \"counts\"\npath = \"{}\"\nformat = \"csv\"\n",
        RECORDS - 1,
        out.display()
    );
    let graph = parse_job_file("counts.toml", &text).expect("a valid job").graph;
    JobSubmission { job_id: None, graph, parallelism: None, config: BTreeMap::new(), savepoint: None }
}

fn raw(dir: &Path, extra: &[(&str, String)]) -> RawConfig {
    let mut raw = RawConfig::new();
    for (key, value) in [
        ("jobmanager.rpc.address", "10.0.0.1".to_string()),
        ("rest.bind-address", "10.0.0.1".to_string()),
        ("heartbeat.interval", "1 s".to_string()),
        ("heartbeat.timeout", "5 s".to_string()),
        ("journal.enabled", "false".to_string()),
        ("execution.checkpointing.dir", dir.join("checkpoints").display().to_string()),
        ("high-availability.storageDir", dir.join("ha").display().to_string()),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    {
        raw.set(key, value);
    }
    raw
}

/// Each key's committed counts must be exactly 1..=RECORDS/KEYS.
fn check_exactly_once(out: &Path) {
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("the sink wrote").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("part-") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let (key, count) = line.rsplit_once(',').unwrap();
            seen.entry(key.to_string()).or_default().push(count.parse().unwrap());
        }
    }
    assert_eq!(seen.len() as u64, KEYS, "{seen:?}");
    for (key, mut counts) in seen {
        counts.sort_unstable();
        let wanted: Vec<u64> = (1..=RECORDS / KEYS).collect();
        assert!(counts == wanted, "key {key}: {} counts, expected 1..={} once each", counts.len(), RECORDS / KEYS);
    }
}

fn temp_dir() -> PathBuf {
    let seed = std::env::var("MADSIM_TEST_SEED").unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("weir-madsim-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[madsim::test]
async fn a_task_manager_killed_mid_job_fails_over_and_the_output_stays_exact() {
    weir_nodes::daemon::init_logging();
    let handle = Handle::current();
    let dir = temp_dir();
    let out = dir.join("out");
    let ended: Arc<Mutex<Option<Result<Option<JobStatus>, String>>>> = Arc::default();
    let (jm_dir, jm_out, jm_ended) = (dir.clone(), out.clone(), ended.clone());
    handle
        .create_node()
        .name("jobmanager")
        .ip("10.0.0.1".parse().unwrap())
        .init(move || {
            let (dir, out, ended) = (jm_dir.clone(), jm_out.clone(), jm_ended.clone());
            async move {
                let raw = raw(&dir, &[]);
                let config = Config::from_raw(&raw).unwrap();
                let options = JobManagerOptions {
                    mode: ClusterMode::Application,
                    data_dir: dir.join("data"),
                    metadata_dir: dir.join("ha"),
                    application: Some(job(&out)),
                };
                let result = job_manager::serve(raw, config, options).await;
                *ended.lock().unwrap() = Some(result);
            }
        })
        .build();
    let mut task_managers = Vec::new();
    for index in 0..3 {
        let tm_dir = dir.clone();
        let node = handle
            .create_node()
            .name(format!("taskmanager-{index}"))
            .ip(format!("10.0.0.{}", index + 2).parse().unwrap())
            .init(move || {
                let dir = tm_dir.clone();
                async move {
                    let host = format!("10.0.0.{}", index + 2);
                    let raw = raw(&dir, &[("taskmanager.host", host), ("taskmanager.numberOfTaskSlots", "1".into())]);
                    let config = Config::from_raw(&raw).unwrap();
                    if let Err(error) = task_manager::serve(raw, config, dir.join("data"), Operators::new()).await {
                        panic!("TaskManager {index}: {error}");
                    }
                }
            })
            .build();
        task_managers.push(node);
    }
    // The source emits RECORDS at RATE per virtual second: the job runs for about 4 s. Kill a
    // TaskManager in the middle, restart it a little later.
    madsim::time::sleep(Duration::from_millis(1500)).await;
    assert!(ended.lock().unwrap().is_none(), "the job ended before the kill");
    // Two of the three TaskManagers: at least one of them runs a task of the job (it needs two
    // slots), whichever the ResourceManager chose.
    handle.kill(task_managers[0].id());
    handle.kill(task_managers[1].id());
    madsim::time::sleep(Duration::from_millis(500)).await;
    handle.restart(task_managers[0].id());
    handle.restart(task_managers[1].id());
    for _ in 0..600 {
        if ended.lock().unwrap().is_some() {
            break;
        }
        madsim::time::sleep(Duration::from_millis(100)).await;
    }
    let result = ended.lock().unwrap().take().expect("the application ended within 60 virtual seconds");
    assert_eq!(result, Ok(Some(JobStatus::Finished)));
    check_exactly_once(&out);
    // Parts of later attempts carry the attempt in their names: the job did fail over.
    let restarted = std::fs::read_dir(&out).unwrap().flatten().any(|entry| {
        let name = entry.file_name().to_string_lossy().to_string();
        name.starts_with("part-") && name.contains("-a")
    });
    assert!(restarted, "no part of a later attempt: the kill hit no task");
    let _ = std::fs::remove_dir_all(&dir);
}
