//! High availability with `high-availability.type: etcd`, against a real etcd (Debian's
//! `etcd-server`, installed by scripts/setup.sh) that the test starts on 127.0.0.1 free ports
//! with a scratch data directory. The cluster is the one of `support/ha.rs`:
//!
//! - `kill -9` of the leader mid-job: the standby takes over and the committed output is exact;
//! - `kill -STOP` of the leader past its lease, then `kill -CONT`: the old leader exits (code 3)
//!   on waking, and the store accepted no write from it once the new epoch began: every version
//!   of the records etcd kept since the grant of epoch 2 (its MVCC history) was written in
//!   epoch 2;
//! - SIGTERM of the leader: it releases its lease and the standby leads at once.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Instant;
use support::ha::{LEASE, Store, check_exactly_once, start};
use support::{free_port, temp_dir, wait_for};

const SUITE: &str = "ha-etcd-test";

/// An etcd server for one test, killed when dropped.
struct Etcd {
    child: Child,
    url: String,
}

impl Etcd {
    fn start(name: &str) -> Etcd {
        let dir = temp_dir(SUITE, &format!("{name}-etcd"));
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", "weir-test", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("weir-test={peer_url}")])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("etcd runs (scripts/setup.sh installs etcd-server)");
        let etcd = Etcd { child, url };
        let healthy =
            || support::get(&format!("127.0.0.1:{client}"), "/health").is_some_and(|body| body["health"] == "true");
        wait_for(healthy, "etcd to be healthy", std::time::Duration::from_secs(30));
        etcd
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_standby_takes_over_after_kill_9_of_the_leader_and_the_output_is_exact() {
    let etcd = Etcd::start("kill");
    let mut running = start(SUITE, "kill", Store::Etcd(etcd.url.clone()));
    let killed = Instant::now();
    running.leader.daemon.kill9();
    let took = running.wait_running_under_standby(killed);
    println!("etcd HA: kill -9 of the leader -> job RUNNING under the standby in {took:?} (lease {LEASE})");
    running.wait_finished();
    running.check_taken_over();
    check_exactly_once(&running.cluster.dir, &running.input);
}

#[test]
fn a_leader_paused_past_its_lease_steps_down_without_an_accepted_write() {
    let etcd = Etcd::start("pause");
    let mut running = start(SUITE, "pause", Store::Etcd(etcd.url.clone()));
    running.leader.daemon.signal("STOP");
    running.wait_running_under_standby(Instant::now());
    // The new leader writes in epoch 2 from its first record on.
    wait_for(|| running.cluster.records()["epoch_seen"] == 2, "a record of epoch 2", support::ha::WAIT_MAX);
    running.leader.daemon.signal("CONT");
    let leader = &mut running.leader;
    let mut status = None;
    wait_for(
        || {
            status = leader.daemon.child.try_wait().ok().flatten();
            status.is_some()
        },
        "the old leader to exit",
        support::ha::WAIT_MAX,
    );
    let log = leader.daemon.log();
    assert_eq!(status.and_then(|status| status.code()), Some(3), "{log}");
    assert!(log.contains("JobManager lost its leadership"), "{log}");
    // Nothing of epoch 1 was accepted after epoch 2 began: every version of the records
    // written since the grant of epoch 2 was written in epoch 2.
    let versions = running.cluster.etcd_records_since_newest_grant();
    assert!(!versions.is_empty(), "the new leader wrote records");
    for version in &versions {
        assert_eq!(version["epoch_seen"], 2, "a write accepted after the grant of epoch 2: {version}");
    }
    leader.daemon.kill9();
    let standby = &running.standby;
    let finished = || standby.job_state(&running.job_id).as_deref() == Some("FINISHED");
    wait_for(finished, "the job to finish under the new leader", support::ha::JOB_WAIT_MAX);
    running.check_taken_over();
    check_exactly_once(&running.cluster.dir, &running.input);
}

#[test]
fn a_leader_stopped_with_sigterm_hands_its_lease_over_at_once() {
    let etcd = Etcd::start("term");
    support::ha::check_sigterm_hand_over(SUITE, Store::Etcd(etcd.url.clone()));
}

#[test]
#[ignore = "a measurement: WEIR_FAILOVER_RUNS=20 ... -- --ignored --nocapture"]
fn failover_distribution() {
    let etcd = Etcd::start("bench");
    let url = etcd.url.clone();
    // One etcd for every run: each run's cluster id is its own.
    support::ha::measure_failover(SUITE, || Store::Etcd(url.clone()));
}
