//! Tests of the checkpoint file format: round trips, every truncation and every flipped byte of
//! small files, forged lengths and payloads, canonical decoding, the restore rule, and property
//! tests over random contents and random corruptions.

use super::*;
use proptest::prelude::*;

fn vertex(n: u128) -> VertexId {
    VertexId(Hex128(0x5000 + n))
}

fn metadata() -> CheckpointMetadata {
    let mut vertices = BTreeMap::new();
    vertices.insert(vertex(0), VertexMetadata { parallelism: 2, max_parallelism: 128 });
    vertices.insert(vertex(1), VertexMetadata { parallelism: 1, max_parallelism: 128 });
    let mut tasks = BTreeMap::new();
    for (v, subtask) in [(0, 0), (0, 1), (1, 0)] {
        let file = state_file_name(vertex(v), SubtaskIndex(subtask), AttemptNumber(3));
        tasks.insert(
            (vertex(v), SubtaskIndex(subtask)),
            // One incremental task, referencing two shared files.
            TaskStateHandle { file, size_bytes: 1_000, crc32: 0xdead, shared: shared_of(subtask) },
        );
    }
    CheckpointMetadata {
        job: JobId(Hex128(0xabc)),
        checkpoint: CheckpointId(42),
        is_savepoint: false,
        triggered_at: Time(1_700_000_000_000_000),
        vertices,
        tasks,
        finished: BTreeSet::new(),
    }
}

fn shared_of(subtask: u32) -> Vec<String> {
    match subtask {
        1 => vec!["0f0f-000009.sst".to_string(), "0f0f-000012.sst".to_string()],
        _ => Vec::new(),
    }
}

fn native() -> NativeSnapshot {
    let shared = |local: &str, size_bytes| SharedFile {
        local: local.to_string(),
        shared: format!("0f0f-{local}"),
        size_bytes,
        crc32: 0xbeef,
    };
    NativeSnapshot {
        state_names: vec!["window-contents".to_string()],
        shared: vec![shared("000009.sst", 4096), shared("000012.sst", 512)],
        private: vec![
            PrivateFile { local: "CURRENT".to_string(), bytes: b"MANIFEST-000013\n".to_vec() },
            PrivateFile { local: "MANIFEST-000013".to_string(), bytes: vec![1, 2, 3] },
        ],
    }
}

fn task_state() -> TaskStateFile {
    TaskStateFile {
        job: JobId(Hex128(0xabc)),
        checkpoint: CheckpointId(42),
        vertex: vertex(0),
        subtask: SubtaskIndex(1),
        attempt: AttemptNumber(3),
        operators: vec![
            OperatorSnapshot {
                native: None,
                operator: OperatorIndex(0),
                operator_state: b"offset=1234".to_vec(),
                channel_state: Vec::new(),
                keyed: Vec::new(),
            },
            OperatorSnapshot {
                native: None,
                operator: OperatorIndex(2),
                operator_state: Vec::new(),
                channel_state: vec![7; 5],
                keyed: vec![(3, b"k3".to_vec()), (64, vec![0; 40])],
            },
            OperatorSnapshot {
                native: Some(native()),
                operator: OperatorIndex(3),
                operator_state: Vec::new(),
                channel_state: Vec::new(),
                keyed: Vec::new(),
            },
        ],
    }
}

#[test]
fn version_two_files_still_read_and_native_state_is_refused_where_it_cannot_be() {
    let current = metadata();
    let mut old = current.clone();
    old.tasks.values_mut().for_each(|handle| handle.shared.clear());
    assert_eq!(decode_metadata(&encode_metadata_version(&current, 2)).unwrap(), old, "v2 has no shared files");
    // Shared names must be plain, ascending and unique.
    for bad in [vec!["b".to_string(), "a".to_string()], vec!["../x".to_string()], vec!["a".into(), "a".into()]] {
        let mut forged = current.clone();
        forged.tasks.values_mut().next().unwrap().shared = bad.clone();
        let problem = decode_metadata(&encode_metadata(&forged)).unwrap_err().problem;
        assert!(matches!(problem, StorageProblem::Undecodable { .. }), "{bad:?}: {problem:?}");
    }
    // Key groups and native state in one operator contradict each other.
    let mut both = task_state();
    both.operators[2].keyed = vec![(1, vec![1])];
    let problem = decode_task_state(&encode_task_state(&both)).unwrap_err().problem;
    assert!(matches!(problem, StorageProblem::Undecodable { .. }), "{problem:?}");
    let mut escaping = task_state();
    escaping.operators[2].native.as_mut().unwrap().private[0].local = "../CURRENT".to_string();
    assert!(decode_task_state(&encode_task_state(&escaping)).is_err());
}

/// A frame of `kind` around `payload` with a correct checksum (a forged but intact file).
fn forged(kind: FileKind, payload: &[u8]) -> Vec<u8> {
    frame(kind, payload)
}

fn problem<T: fmt::Debug>(result: Result<T, StorageError>) -> StorageProblem {
    result.expect_err("must be rejected").problem
}

#[test]
fn metadata_and_task_state_round_trip() {
    let metadata = metadata();
    assert_eq!(decode_metadata(&encode_metadata(&metadata)).unwrap(), metadata);
    let state = task_state();
    assert_eq!(decode_task_state(&encode_task_state(&state)).unwrap(), state);
    let empty = TaskStateFile { operators: Vec::new(), ..task_state() };
    assert_eq!(decode_task_state(&encode_task_state(&empty)).unwrap(), empty);
}

#[test]
fn frames_start_with_magic_version_and_kind_and_end_with_the_crc_of_the_rest() {
    let bytes = encode_metadata(&metadata());
    assert_eq!(&bytes[..4], b"WEIR");
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), FORMAT_VERSION);
    assert_eq!(bytes[6], 1);
    let length = u64::from_le_bytes(bytes[7..15].try_into().unwrap());
    assert_eq!(length as usize, bytes.len() - HEADER_BYTES - TRAILER_BYTES);
    let crc = crc32fast::hash(&bytes[..bytes.len() - 4]);
    assert_eq!(frame_checksum(&bytes), Some(crc));
    assert_eq!(encode_task_state(&task_state())[6], 2);
}

#[test]
fn every_truncation_is_rejected_as_truncated() {
    for bytes in [encode_metadata(&metadata()), encode_task_state(&task_state())] {
        let kind_metadata = bytes[6] == 1;
        for length in 0..bytes.len() {
            let cut = &bytes[..length];
            let problem = if kind_metadata { problem(decode_metadata(cut)) } else { problem(decode_task_state(cut)) };
            let actual_bytes = length as u64;
            match problem {
                StorageProblem::Truncated { actual_bytes: found, expected_bytes } => {
                    assert_eq!(found, actual_bytes);
                    assert!(expected_bytes > actual_bytes);
                }
                other => panic!("cut at {length}: {other:?}"),
            }
        }
    }
}

#[test]
fn every_flipped_byte_is_detected_by_the_right_check() {
    let bytes = encode_metadata(&metadata());
    for position in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[position] ^= mask;
            let problem = problem(decode_metadata(&corrupt));
            let expected_kind = match position {
                0..4 => matches!(problem, StorageProblem::BadMagic { .. }),
                // An older version that is still read fails on the checksum over the header.
                4..6 => matches!(
                    problem,
                    StorageProblem::UnsupportedVersion { .. } | StorageProblem::ChecksumMismatch { .. }
                ),
                6 => matches!(problem, StorageProblem::WrongKind { .. }),
                7..15 => matches!(problem, StorageProblem::Truncated { .. } | StorageProblem::TrailingBytes { .. }),
                _ => matches!(problem, StorageProblem::ChecksumMismatch { .. }),
            };
            assert!(expected_kind, "byte {position} ^ {mask:#x}: {problem:?}");
        }
    }
}

#[test]
fn a_forged_huge_length_is_refused_before_any_allocation() {
    let mut bytes = encode_metadata(&metadata());
    bytes[7..15].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(problem(decode_metadata(&bytes)), StorageProblem::Truncated { expected_bytes: u64::MAX, .. }));
    // Intact frames whose payload claims huge counts and lengths.
    let mut payload = Vec::new();
    payload.extend_from_slice(&[0; 16 + 8 + 1 + 8]);
    payload.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        problem(decode_metadata(&forged(FileKind::Metadata, &payload))),
        StorageProblem::Undecodable { .. }
    ));
    let mut payload = vec![0; 16 + 8 + 16 + 4 + 4];
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&u64::MAX.to_le_bytes());
    payload.extend_from_slice(&[0; 20]);
    let problem = problem(decode_task_state(&forged(FileKind::TaskState, &payload)));
    assert!(
        matches!(&problem, StorageProblem::Undecodable { reason, .. } if reason.contains("operator state")),
        "{problem:?}"
    );
}

#[test]
fn payloads_must_be_canonical_and_consistent() {
    let reject = |metadata: CheckpointMetadata, needle: &str| {
        let problem = problem(decode_metadata(&encode_metadata(&metadata)));
        assert!(
            matches!(&problem, StorageProblem::Undecodable { reason, .. } if reason.contains(needle)),
            "{problem:?}"
        );
    };
    let mut escaping = metadata();
    escaping.tasks.values_mut().next().unwrap().file = "../../etc/passwd".to_string();
    reject(escaping, "plain file name");
    let mut unknown = metadata();
    unknown.vertices.remove(&vertex(1));
    reject(unknown, "unknown vertex");
    let mut beyond = metadata();
    beyond.vertices.get_mut(&vertex(0)).unwrap().parallelism = 1;
    reject(beyond, "beyond its parallelism");
    let mut zero = metadata();
    zero.vertices.get_mut(&vertex(1)).unwrap().parallelism = 0;
    reject(zero, "parallelism 0");
    let mut unsorted = task_state();
    unsorted.operators.swap(0, 1);
    let problem = problem(decode_task_state(&encode_task_state(&unsorted)));
    assert!(matches!(problem, StorageProblem::Undecodable { .. }));
    let mut bool_two = encode_metadata(&metadata());
    bool_two[HEADER_BYTES + 24] = 2;
    let payload = bool_two[HEADER_BYTES..bool_two.len() - TRAILER_BYTES].to_vec();
    assert!(matches!(
        self::problem(decode_metadata(&forged(FileKind::Metadata, &payload))),
        StorageProblem::Undecodable { .. }
    ));
    let mut trailing = encode_metadata(&metadata())[HEADER_BYTES..].to_vec();
    trailing.truncate(trailing.len() - TRAILER_BYTES);
    trailing.push(0);
    let problem = self::problem(decode_metadata(&forged(FileKind::Metadata, &trailing)));
    assert!(
        matches!(&problem, StorageProblem::Undecodable { reason, .. } if reason.contains("left over")),
        "{problem:?}"
    );
}

#[test]
fn a_file_of_the_other_kind_is_refused() {
    let problem = problem(decode_metadata(&encode_task_state(&task_state())));
    assert_eq!(problem, StorageProblem::WrongKind { expected: FileKind::Metadata, found: 2 });
    assert!(matches!(self::problem(decode_metadata(b"{\"json\": true}")), StorageProblem::BadMagic { .. }));
}

#[test]
fn errors_name_the_file_when_given() {
    let error = decode_metadata(b"WE").unwrap_err().in_file("chk-7/_metadata");
    assert_eq!(error.to_string(), "chk-7/_metadata: truncated: expected 19 bytes, found 2");
}

#[test]
fn state_files_are_verified_against_their_handle() {
    let bytes = encode_task_state(&task_state());
    let handle = handle_for("task-x", &bytes);
    assert_eq!(verify_task_state(&handle, &bytes).unwrap(), task_state());
    let short = TaskStateHandle { size_bytes: handle.size_bytes + 1, ..handle.clone() };
    let error = verify_task_state(&short, &bytes).unwrap_err();
    assert!(matches!(error.problem, StorageProblem::SizeMismatch { .. }) && error.file.as_deref() == Some("task-x"));
    let other = encode_task_state(&TaskStateFile { attempt: AttemptNumber(4), ..task_state() });
    let error = verify_task_state(&handle, &other).unwrap_err();
    assert!(matches!(error.problem, StorageProblem::ChecksumMismatch { .. }), "another valid file is not this state");
}

#[test]
fn restore_picks_the_newest_valid_checkpoint_and_reports_every_corrupt_one() {
    let valid = |id: u64| Ok(CheckpointMetadata { checkpoint: CheckpointId(id), ..metadata() });
    let corrupt = || Err(StorageError::new(StorageProblem::Missing).in_file("_metadata"));
    let candidates = vec![
        (CheckpointId(3), valid(3)),
        (CheckpointId(9), corrupt()),
        (CheckpointId(5), valid(5)),
        (CheckpointId(7), valid(6)),
        (CheckpointId(1), corrupt()),
    ];
    let (chosen, warnings) = choose_restore(&candidates);
    assert_eq!(chosen.map(|metadata| metadata.checkpoint), Some(CheckpointId(5)));
    let warned: Vec<CheckpointId> = warnings.iter().map(|warning| warning.checkpoint).collect();
    assert_eq!(warned, vec![CheckpointId(9), CheckpointId(7), CheckpointId(1)]);
    assert!(warnings[1].to_string().contains("metadata of checkpoint 6"), "{}", warnings[1]);
    let (none, warnings) = choose_restore(&candidates[1..2]);
    assert!(none.is_none() && warnings.len() == 1);
    assert_eq!(choose_restore(&[]), (None, Vec::new()));
}

#[test]
fn layout_names_follow_flink() {
    let job = JobId(Hex128(0xabc));
    assert_eq!(checkpoint_location(Some("/data/chk/"), job, CheckpointId(12)), format!("/data/chk/{job}/chk-12"));
    assert_eq!(checkpoint_location(None, job, CheckpointId(1)), format!("{job}/chk-1"));
    assert_eq!(savepoint_location("/sp", job, 0xfff_0123_4567_89ab), "/sp/savepoint-000000-0123456789ab");
    assert_eq!(parse_checkpoint_dir_name("chk-12"), Some(CheckpointId(12)));
    for bad in ["chk-", "chk-012", "chk-1a", "chk-+1", "chk-99999999999999999999", "shared", "taskowned"] {
        assert_eq!(parse_checkpoint_dir_name(bad), None, "{bad}");
    }
    let name = state_file_name(vertex(1), SubtaskIndex(2), AttemptNumber(3));
    assert!(is_plain_file_name(&name) && name.ends_with("-2-3"), "{name}");
}

fn arb_metadata() -> impl Strategy<Value = CheckpointMetadata> {
    let vertex = (0u128..6, 1u32..4, 0u32..200);
    let handle = ("[a-z0-9_.-]{1,24}", any::<u64>(), any::<u32>());
    (any::<u128>(), any::<u64>(), any::<bool>(), any::<u64>(), prop::collection::vec(vertex, 0..4))
        .prop_flat_map(move |(job, checkpoint, is_savepoint, triggered_at, vertex_list)| {
            let vertices: BTreeMap<VertexId, VertexMetadata> = vertex_list
                .iter()
                .map(|(id, parallelism, extra)| {
                    (
                        VertexId(Hex128(*id)),
                        VertexMetadata { parallelism: *parallelism, max_parallelism: parallelism + extra },
                    )
                })
                .collect();
            let slots: Vec<(VertexId, SubtaskIndex)> = vertices
                .iter()
                .flat_map(|(id, v)| (0..v.parallelism).map(move |subtask| (*id, SubtaskIndex(subtask))))
                .collect();
            let handles = prop::collection::vec(prop::option::of(handle), slots.len());
            (Just((job, checkpoint, is_savepoint, triggered_at, vertices, slots)), handles)
        })
        .prop_map(|((job, checkpoint, is_savepoint, triggered_at, vertices, slots), handles)| {
            let tasks = slots
                .into_iter()
                .zip(handles)
                .filter_map(|(slot, handle)| {
                    let (file, size_bytes, crc32) = handle?;
                    let file = if file == "." || file == ".." { "x".to_string() } else { file };
                    Some((slot, TaskStateHandle { file, size_bytes, crc32, shared: Vec::new() }))
                })
                .collect();
            CheckpointMetadata {
                job: JobId(Hex128(job)),
                checkpoint: CheckpointId(checkpoint),
                is_savepoint,
                triggered_at: Time(triggered_at),
                vertices,
                tasks,
                finished: BTreeSet::new(),
            }
        })
}

fn arb_task_state() -> impl Strategy<Value = TaskStateFile> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..40);
    let keyed = prop::collection::btree_map(any::<u32>(), bytes(), 0..4);
    let operator = (bytes(), bytes(), keyed);
    let operators = prop::collection::btree_map(any::<u32>(), operator, 0..4);
    (any::<u128>(), any::<u64>(), any::<u128>(), any::<u32>(), any::<u32>(), operators).prop_map(
        |(job, checkpoint, vertex, subtask, attempt, operators)| TaskStateFile {
            job: JobId(Hex128(job)),
            checkpoint: CheckpointId(checkpoint),
            vertex: VertexId(Hex128(vertex)),
            subtask: SubtaskIndex(subtask),
            attempt: AttemptNumber(attempt),
            operators: operators
                .into_iter()
                .map(|(operator, (operator_state, channel_state, keyed))| OperatorSnapshot {
                    native: None,
                    operator: OperatorIndex(operator),
                    operator_state,
                    channel_state,
                    keyed: keyed.into_iter().collect(),
                })
                .collect(),
        },
    )
}

/// Byte positions and non-zero masks to xor in.
fn arb_corruption() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6)
}

fn corrupt(bytes: &[u8], corruption: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    let mut corrupt = bytes.to_vec();
    for (index, mask) in corruption {
        corrupt[index.index(bytes.len())] ^= mask;
    }
    corrupt
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn metadata_round_trips_and_corruption_never_yields_another_value(
        metadata in arb_metadata(),
        corruption in arb_corruption(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = encode_metadata(&metadata);
        prop_assert_eq!(decode_metadata(&bytes).unwrap(), metadata.clone());
        let corrupted = corrupt(&bytes, &corruption);
        match decode_metadata(&corrupted) {
            Ok(decoded) => prop_assert!(corrupted == bytes && decoded == metadata, "corruption went unnoticed"),
            Err(_) => prop_assert!(corrupted != bytes),
        }
        prop_assert!(decode_metadata(&bytes[..cut.index(bytes.len())]).is_err());
    }

    #[test]
    fn task_state_round_trips_and_corruption_never_yields_another_value(
        state in arb_task_state(),
        corruption in arb_corruption(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = encode_task_state(&state);
        prop_assert_eq!(decode_task_state(&bytes).unwrap(), state.clone());
        let corrupted = corrupt(&bytes, &corruption);
        match decode_task_state(&corrupted) {
            Ok(decoded) => prop_assert!(corrupted == bytes && decoded == state, "corruption went unnoticed"),
            Err(_) => prop_assert!(corrupted != bytes),
        }
        prop_assert!(decode_task_state(&bytes[..cut.index(bytes.len())]).is_err());
    }

    /// Intact frames around arbitrary payloads: decoding never panics, and whatever decodes is
    /// canonical (encodes back to the very same bytes).
    #[test]
    fn arbitrary_payloads_decode_canonically_or_not_at_all(payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let bytes = forged(FileKind::Metadata, &payload);
        if let Ok(metadata) = decode_metadata(&bytes) {
            prop_assert_eq!(encode_metadata(&metadata), bytes);
        }
        let bytes = forged(FileKind::TaskState, &payload);
        if let Ok(state) = decode_task_state(&bytes) {
            prop_assert_eq!(encode_task_state(&state), bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 7 {
            bytes[..4].copy_from_slice(&MAGIC);
            bytes[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        }
        prop_assert!(decode_metadata(&bytes).is_err() || bytes.len() >= HEADER_BYTES + TRAILER_BYTES);
        let _ = decode_task_state(&bytes);
    }
}
