use super::file::FileStore;
use super::{Backend, LeaderAddress};
use weir_core::ha::{HaRecord, HaWrite};
use weir_core::ids::{Epoch, Hex128, JobId};
use weir_core::leader::{StoreReply, StoreRequest};
use weir_core::protocol::JobStatus;
use weir_core::time::Duration;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-ha-unit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn acquire(store: &mut FileStore, candidate: &str, ttl: Duration, expected_revision: u64) -> StoreReply {
    let address = LeaderAddress { rpc: format!("{candidate}:1"), rest: format!("{candidate}:2") }.encode();
    let request = StoreRequest::Acquire { request: 1, candidate: candidate.into(), address, ttl, expected_revision };
    store.lease(request).unwrap()
}

#[test]
fn leader_addresses_round_trip_and_garbage_is_refused() {
    let address = LeaderAddress { rpc: "127.0.0.1:6123".into(), rest: "127.0.0.1:8081".into() };
    assert_eq!(LeaderAddress::parse(&address.encode()), Some(address));
    for garbage in ["", "rpc=a", "rest=b rpc=a", "rpc= rest=x", "rpc=a rest=b c"] {
        assert_eq!(LeaderAddress::parse(garbage), None, "{garbage:?}");
    }
}

#[test]
fn two_handles_on_one_directory_share_one_lease_and_the_epoch_grows() {
    let dir = scratch("lease");
    let mut first = FileStore::open(dir.to_str().unwrap(), "cluster").unwrap();
    let mut second = FileStore::open(dir.to_str().unwrap(), "cluster").unwrap();
    let short = Duration::from_millis(200);
    assert!(matches!(acquire(&mut first, "a", short, 0), StoreReply::Granted { epoch: Epoch(1), revision: 1, .. }));
    let StoreReply::Refused { view, .. } = acquire(&mut second, "b", short, 1) else { panic!("a live lease") };
    assert!(view.live);
    let (leader, epoch) = LeaderAddress::of_view(&second.leader().unwrap()).unwrap();
    assert_eq!((leader.rpc.as_str(), epoch), ("a:1", Epoch(1)));
    std::thread::sleep(std::time::Duration::from_millis(250));
    assert!(!second.leader().unwrap().live, "expired");
    assert!(matches!(acquire(&mut second, "b", short, 0), StoreReply::Refused { .. }), "stale revision");
    assert!(matches!(acquire(&mut second, "b", short, 1), StoreReply::Granted { epoch: Epoch(2), .. }));
    let renew = StoreRequest::Renew { request: 2, candidate: "a".into(), epoch: Epoch(1), ttl: short };
    assert!(matches!(first.lease(renew).unwrap(), StoreReply::Refused { .. }), "a lost it");
}

#[test]
fn a_write_from_below_the_newest_grant_is_refused_and_records_survive_reopening() {
    let dir = scratch("records");
    let mut store = FileStore::open(dir.to_str().unwrap(), "cluster").unwrap();
    let job_id = JobId(Hex128(7));
    let counter =
        |epoch| HaWrite { epoch: Epoch(epoch), record: HaRecord::JobResult { job_id, status: JobStatus::Finished } };
    let short = Duration::from_millis(50);
    assert!(matches!(acquire(&mut store, "a", short, 0), StoreReply::Granted { epoch: Epoch(1), .. }));
    assert_eq!(store.write(&counter(1)).unwrap(), Ok(()));
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert!(matches!(acquire(&mut store, "b", short, 1), StoreReply::Granted { epoch: Epoch(2), .. }));
    let refused = store.write(&counter(1)).unwrap().unwrap_err();
    assert_eq!((refused.write, refused.seen), (Epoch(1), Epoch(2)));
    assert_eq!(store.write(&counter(2)).unwrap(), Ok(()));
    let mut reopened = FileStore::open(dir.to_str().unwrap(), "cluster").unwrap();
    assert_eq!(reopened.records().unwrap().results.get(&job_id), Some(&JobStatus::Finished));
}

#[test]
fn concurrent_writers_lose_no_change_and_a_stalled_one_blocks_nobody() {
    let dir = scratch("race");
    // A process stopped halfway through a change: its temporary file is written, never linked.
    let stalled = FileStore::open(dir.to_str().unwrap(), "cluster").unwrap();
    std::fs::write(stalled.dir().join(".tmp-stalled-1"), b"{}").unwrap();
    let mut writers = Vec::new();
    for writer in 0..4u64 {
        let dir = dir.clone();
        writers.push(std::thread::spawn(move || {
            let mut store = FileStore::open(dir.to_str().unwrap(), "cluster").unwrap();
            for round in 0..25u64 {
                let job_id = JobId(Hex128(u128::from(writer * 100 + round)));
                let record = HaRecord::JobResult { job_id, status: JobStatus::Finished };
                store.write(&HaWrite { epoch: Epoch(0), record }).unwrap().unwrap();
            }
        }));
    }
    for writer in writers {
        writer.join().unwrap();
    }
    let store = FileStore::open(dir.to_str().unwrap(), "cluster").unwrap();
    let (revision, state) = store.newest().unwrap();
    assert_eq!(revision, 100, "every one of the 100 changes got its own revision");
    assert_eq!(state.records.records().results.len(), 100, "and none was lost");
    let states = std::fs::read_dir(store.dir()).unwrap().flatten();
    let kept = states.filter(|entry| entry.file_name().to_string_lossy().starts_with("state-")).count() as u64;
    assert!(kept <= super::file::KEPT_STATES + 4, "old states are removed ({kept} left)");
}

#[test]
fn malformed_files_and_bad_cluster_ids_are_errors_not_panics() {
    assert!(FileStore::open("/tmp", "../x").is_err());
    assert!(FileStore::open("/tmp", "/").is_err());
    assert_eq!(super::cluster_name("/default"), Ok("default"));
    let dir = scratch("malformed");
    let mut store = FileStore::open(dir.to_str().unwrap(), "cluster").unwrap();
    std::fs::write(store.dir().join(format!("{}{:020}.json", super::file::STATE_PREFIX, 1)), b"{not json").unwrap();
    let error = store.leader().unwrap_err();
    assert!(error.contains("state-00000000000000000001.json is malformed"), "{error}");
}

#[test]
fn base64_round_trips_and_matches_known_encodings() {
    use super::etcd::{base64_decode, base64_encode};
    for (plain, encoded) in
        [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("/weir/x/leader", "L3dlaXIveC9sZWFkZXI=")]
    {
        assert_eq!(base64_encode(plain.as_bytes()), encoded);
        assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
    }
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
    assert!(base64_decode("a*b").is_err());
}
