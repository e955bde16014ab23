use super::*;
use crate::ids::SubtaskIndex;
use std::collections::BTreeMap;

const MAX_PARALLELISM: u32 = 128;

/// A backend the tests run against: each behaviour test runs for both (see [`both`]).
trait Backend: KeyedStateBackend + Sized {
    fn make(max_parallelism: u32, range: KeyGroupRange) -> Self;
}

impl Backend for HeapKeyedStateBackend {
    fn make(max_parallelism: u32, range: KeyGroupRange) -> Self {
        HeapKeyedStateBackend::new(max_parallelism, range)
    }
}

impl Backend for StoreKeyedStateBackend {
    /// A cache of three entries: most accesses miss it, so reads and write-backs go through
    /// the store.
    fn make(max_parallelism: u32, range: KeyGroupRange) -> Self {
        StoreKeyedStateBackend::with_cache_capacity(max_parallelism, range, Box::new(MemoryStateStore::new()), 3)
    }
}

/// Runs the generic check `$name` as one test per backend.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[test]
            fn heap() {
                super::$name::<HeapKeyedStateBackend>();
            }

            #[test]
            fn store() {
                super::$name::<StoreKeyedStateBackend>();
            }
        }
    };
}

fn backend<B: Backend>(parallelism: u32, subtask: u32) -> B {
    let range = KeyGroupRange::for_subtask(MAX_PARALLELISM, parallelism, SubtaskIndex(subtask));
    B::make(MAX_PARALLELISM, range)
}

/// The subtask of `parallelism` that owns `key`.
fn owner(key: &Value, parallelism: u32) -> u32 {
    subtask_for_key_group(MAX_PARALLELISM, parallelism, key_group_of(key, MAX_PARALLELISM)).0
}

struct States {
    count: ValueState<i64>,
    seen: ListState<String>,
    tags: MapState<String, i64>,
    total: ReducingState<i64>,
}

fn register(backend: &mut impl KeyedStateBackend) -> States {
    let add: ReduceFn<i64> = Box::new(|sum, value| {
        *sum += value;
        Ok(())
    });
    States {
        count: backend.register_value("count", SerdeCodec),
        seen: backend.register_list("seen", SerdeCodec),
        tags: backend.register_map("tags", MapCodecs { keys: Box::new(SerdeCodec), values: Box::new(SerdeCodec) }),
        total: backend.register_reducing("total", Reducer { codec: Box::new(SerdeCodec), reduce: add }),
    }
}

fn window(start: i64, end: i64) -> Namespace {
    Namespace::Window(TimeWindow { start, end })
}

#[test]
fn key_group_ranges_match_flink_and_cover_every_group_once() {
    assert_eq!(KeyGroupRange::for_subtask(128, 3, SubtaskIndex(0)), KeyGroupRange::new(0, 43));
    assert_eq!(KeyGroupRange::for_subtask(128, 3, SubtaskIndex(1)), KeyGroupRange::new(43, 86));
    assert_eq!(KeyGroupRange::for_subtask(128, 3, SubtaskIndex(2)), KeyGroupRange::new(86, 128));
    for parallelism in [1u32, 2, 3, 5, 7, 64, 128] {
        let mut next = 0;
        for subtask in 0..parallelism {
            let range = KeyGroupRange::for_subtask(128, parallelism, SubtaskIndex(subtask));
            assert_eq!(range.start, next, "p={parallelism}");
            for key_group in range.iter() {
                assert_eq!(subtask_for_key_group(128, parallelism, key_group), SubtaskIndex(subtask));
            }
            next = range.end;
        }
        assert_eq!(next, 128);
    }
}

#[test]
fn state_and_partitioner_agree_on_every_key_group() {
    let partition = crate::dataflow::partition::key_group_of;
    for key in [Value::str("page-3"), Value::Int(-7), Value::List(vec![Value::Int(1), Value::str("a")].into())] {
        for max_parallelism in [1u32, 3, 128, 4096, 32_768] {
            assert_eq!(key_group_of(&key, max_parallelism), partition(&key, max_parallelism));
        }
    }
}

fn the_backend_files_every_key_under_key_group_of_whatever_the_max_parallelism<B: Backend>() {
    for max_parallelism in [1u32, 3, 100, 128, 4096, 32_768] {
        let mut state = B::make(max_parallelism, KeyGroupRange::new(0, max_parallelism));
        let count = state.register_value::<i64>("count", SerdeCodec);
        for key in (-500..500).map(Value::Int).chain((0..50).map(|n| Value::str(&format!("k{n}")))) {
            state.set_current_key(key.clone()).unwrap();
            state.set_value(count, Namespace::Global, 1).unwrap();
            let snapshot = state.snapshot().unwrap();
            let expected = key_group_of(&key, max_parallelism);
            assert_eq!(snapshot.groups.iter().map(|group| group.key_group).collect::<Vec<_>>(), [expected]);
            state.take_value(count, Namespace::Global).unwrap();
        }
    }
}

both!(the_backend_files_every_key_under_key_group_of_whatever_the_max_parallelism);

fn value_list_map_and_reducing_state_are_per_key_and_namespace<B: Backend>() {
    let mut state: B = backend(1, 0);
    let handles = register(&mut state);
    state.set_current_key(Value::str("a")).unwrap();
    state.set_value(handles.count, Namespace::Global, 5).unwrap();
    *state.entry(handles.count, window(0, 10), || 0).unwrap() += 2;
    state.list_add(handles.seen, Namespace::Global, "x".to_string()).unwrap();
    state.list_add(handles.seen, Namespace::Global, "y".to_string()).unwrap();
    state.map_put(handles.tags, Namespace::Global, ("t".to_string(), 1)).unwrap();
    state.reducing_add(handles.total, Namespace::Global, 3).unwrap();
    state.reducing_add(handles.total, Namespace::Global, 4).unwrap();
    state.set_current_key(Value::str("b")).unwrap();
    assert_eq!(state.value(handles.count, Namespace::Global).unwrap(), None);
    assert!(state.list(handles.seen, Namespace::Global).unwrap().is_empty());
    state.set_current_key(Value::str("a")).unwrap();
    assert_eq!(state.value(handles.count, Namespace::Global).unwrap(), Some(&5));
    assert_eq!(state.value(handles.count, window(0, 10)).unwrap(), Some(&2));
    assert_eq!(state.list(handles.seen, Namespace::Global).unwrap(), ["x".to_string(), "y".to_string()]);
    assert_eq!(state.map_get(handles.tags, Namespace::Global, &"t".to_string()).unwrap(), Some(&1));
    assert_eq!(state.reducing_get(handles.total, Namespace::Global).unwrap(), Some(&7));
    let mut namespaces = Vec::new();
    state.namespaces(handles.count, &mut namespaces).unwrap();
    assert_eq!(namespaces, vec![Namespace::Global, window(0, 10)]);
    assert_eq!(state.map_remove(handles.tags, Namespace::Global, &"t".to_string()).unwrap(), Some(1));
    assert_eq!(state.map(handles.tags, Namespace::Global).unwrap(), None, "an emptied map is dropped");
    assert_eq!(state.take_value(handles.count, Namespace::Global).unwrap(), Some(5));
    assert_eq!(state.entry_count().unwrap(), 3);
}

both!(value_list_map_and_reducing_state_are_per_key_and_namespace);

fn storing_state_for_a_key_outside_the_owned_groups_is_refused<B: Backend>() {
    let mut state: B = backend(4, 1);
    let handles = register(&mut state);
    let foreign = (0..).map(Value::Int).find(|key| owner(key, 4) != 1).unwrap();
    state.set_current_key(foreign).unwrap();
    assert_eq!(state.value(handles.count, Namespace::Global).unwrap(), None, "a foreign key reads as empty");
    let refused = state.set_value(handles.count, Namespace::Global, 1);
    assert!(matches!(refused, Err(StateError::KeyOutOfRange { .. })), "{refused:?}");
    assert!(matches!(state.current_key_group(), Err(StateError::KeyOutOfRange { .. })));
    assert_eq!(state.entry_count().unwrap(), 0);
}

both!(storing_state_for_a_key_outside_the_owned_groups_is_refused);

/// Fills the backend of subtask `subtask` of `parallelism` with every key it owns among `keys`.
fn fill<B: Backend>(parallelism: u32, subtask: u32, keys: &[Value]) -> KeyedSnapshot {
    let mut state: B = backend(parallelism, subtask);
    let handles = register(&mut state);
    for key in keys.iter().filter(|key| owner(key, parallelism) == subtask) {
        let Value::Int(n) = key else { unreachable!() };
        state.set_current_key(key.clone()).unwrap();
        state.set_value(handles.count, Namespace::Global, *n).unwrap();
        state.set_value(handles.count, window(*n, n + 10), n * 2).unwrap();
        state.list_add(handles.seen, Namespace::Global, format!("k{n}")).unwrap();
        state.reducing_add(handles.total, window(0, 1), *n).unwrap();
    }
    state.snapshot().unwrap()
}

fn state_snapshotted_at_four_subtasks_restores_at_two_and_three_with_every_key_once<B: Backend>() {
    let keys: Vec<Value> = (0..500).map(Value::Int).collect();
    let snapshots: Vec<KeyedSnapshot> = (0..4).map(|subtask| fill::<B>(4, subtask, &keys)).collect();
    let references: Vec<&KeyedSnapshot> = snapshots.iter().collect();
    for parallelism in [2u32, 3, 1, 5] {
        let mut found: BTreeMap<i64, u32> = BTreeMap::new();
        for subtask in 0..parallelism {
            let mut state: B = backend(parallelism, subtask);
            let handles = register(&mut state);
            state.restore(&references).unwrap();
            state
                .for_each_value(handles.count, &mut |key, namespace, value| {
                    let Value::Int(n) = key else { panic!("unexpected key {key}") };
                    if namespace == Namespace::Global {
                        assert_eq!(value, n);
                        *found.entry(*n).or_default() += 1;
                    } else {
                        assert_eq!((namespace, *value), (window(*n, n + 10), n * 2));
                    }
                })
                .unwrap();
            for key in keys.iter().filter(|key| owner(key, parallelism) == subtask) {
                let Value::Int(n) = key else { unreachable!() };
                state.set_current_key(key.clone()).unwrap();
                assert_eq!(state.list(handles.seen, Namespace::Global).unwrap(), [format!("k{n}")]);
                assert_eq!(state.reducing_get(handles.total, window(0, 1)).unwrap(), Some(n));
            }
        }
        assert_eq!(found.len(), keys.len(), "p={parallelism}: every key restored");
        assert!(found.values().all(|&count| count == 1), "p={parallelism}: no key restored twice");
    }
}

both!(state_snapshotted_at_four_subtasks_restores_at_two_and_three_with_every_key_once);

fn snapshots_are_ordered_and_repeatable<B: Backend>() {
    let keys: Vec<Value> = (0..100).map(Value::Int).collect();
    let first = fill::<B>(1, 0, &keys);
    let second = fill::<B>(1, 0, &keys);
    assert_eq!(first, second);
    assert!(first.groups.windows(2).all(|pair| pair[0].key_group < pair[1].key_group));
}

both!(snapshots_are_ordered_and_repeatable);

fn restore_refuses_bad_snapshots_with_typed_errors<B: Backend>() {
    let keys: Vec<Value> = (0..50).map(Value::Int).collect();
    let snapshot = fill::<B>(1, 0, &keys);
    let restore = |snapshots: &[&KeyedSnapshot]| {
        let mut state: B = backend(1, 0);
        register(&mut state);
        state.restore(snapshots)
    };
    assert!(matches!(restore(&[&snapshot, &snapshot]), Err(StateError::DuplicateKeyGroup { .. })));
    let mut other_max = snapshot.clone();
    other_max.max_parallelism = 256;
    assert!(matches!(restore(&[&other_max]), Err(StateError::MaxParallelismMismatch { .. })));
    let mut moved = snapshot.clone();
    moved.groups[0].key_group = (moved.groups[0].key_group + 1) % MAX_PARALLELISM;
    moved.groups.sort_by_key(|group| group.key_group);
    moved.groups.dedup_by_key(|group| group.key_group);
    assert!(matches!(restore(&[&moved]), Err(StateError::Corrupt { .. })));
    for cut in [0, 1, 5, 17] {
        let mut truncated = snapshot.clone();
        let bytes = &mut truncated.groups[0].bytes;
        bytes.truncate(bytes.len().saturating_sub(cut + 1));
        assert!(matches!(restore(&[&truncated]), Err(StateError::Corrupt { .. })), "cut {cut}");
    }
    let mut unregistered: B = backend(1, 0);
    unregistered.register_value::<i64>("count", SerdeCodec);
    assert!(matches!(unregistered.restore(&[&snapshot]), Err(StateError::UnknownState { .. })));
}

both!(restore_refuses_bad_snapshots_with_typed_errors);

fn garbage_bytes_never_panic_on_restore<B: Backend>() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for length in 0..200usize {
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (seed >> 56) as u8
            })
            .collect();
        let snapshot = KeyedSnapshot {
            max_parallelism: MAX_PARALLELISM,
            key_group_range: KeyGroupRange::new(0, MAX_PARALLELISM),
            groups: vec![KeyGroupSnapshot { key_group: 3, bytes }],
            native: None,
        };
        let mut state: B = backend(1, 0);
        register(&mut state);
        let _ = state.restore(&[&snapshot]);
    }
}

both!(garbage_bytes_never_panic_on_restore);

fn restore_into_a_backend_with_state_is_refused<B: Backend>() {
    let keys: Vec<Value> = (0..10).map(Value::Int).collect();
    let snapshot = fill::<B>(1, 0, &keys);
    let mut state: B = backend(1, 0);
    let handles = register(&mut state);
    state.set_current_key(Value::Int(1)).unwrap();
    state.set_value(handles.count, Namespace::Global, 1).unwrap();
    assert_eq!(state.restore(&[&snapshot]), Err(StateError::NotEmpty { entries: 1 }));
}

both!(restore_into_a_backend_with_state_is_refused);

mod table_index {
    use super::super::table::{Probe, Table};
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Put(i64, i64, i64),
        Remove(i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0i64..40, 0i64..3, any::<i64>()).prop_map(|(key, window, value)| Op::Put(key, window, value)),
            2 => (0i64..40, 0i64..3).prop_map(|(key, window)| Op::Remove(key, window)),
        ]
    }

    proptest! {
        /// The hash-indexed table behaves as an ordered map of `(key, namespace)`, its index
        /// stays consistent through growth and backward-shift deletions, and it iterates in
        /// key-group then key order whatever the history.
        #[test]
        fn the_table_behaves_as_an_ordered_map(ops in proptest::collection::vec(op(), 0..300)) {
            let mut table: Table<i64> = Table::new("t", Box::new(SerdeCodec), None);
            let mut model: BTreeMap<(u32, Value, Namespace), i64> = BTreeMap::new();
            for op in ops {
                let (key, window) = match &op {
                    Op::Put(key, window, _) | Op::Remove(key, window) => (Value::Int(*key), *window),
                };
                let hash = crate::expr::stable_hash(&key);
                // Few bits of hash: many collisions in the probe sequences.
                let probe = Probe { hash: hash % 7, key: &key };
                let key_group = (hash % 4) as u32;
                let at = if window == 0 { Namespace::Global } else { super::window(window, window + 1) };
                let model_key = (key_group, key.clone(), at);
                match op {
                    Op::Put(_, _, value) => {
                        let put = table.insert(probe, at, || Ok(key_group), value).unwrap();
                        prop_assert_eq!(put, model.insert(model_key, value));
                    }
                    Op::Remove(..) => prop_assert_eq!(table.remove(probe, at), model.remove(&model_key)),
                }
                table.check_index();
                prop_assert_eq!(table.len(), model.len());
            }
            let mut listed: Vec<(u32, Value, Namespace, i64)> = Vec::new();
            for entry in table.sorted() {
                for (namespace, value) in entry.values.entries() {
                    listed.push((entry.key_group, entry.key.clone(), *namespace, *value));
                }
            }
            let expected: Vec<(u32, Value, Namespace, i64)> =
                model.into_iter().map(|((group, key, ns), value)| (group, key, ns, value)).collect();
            prop_assert_eq!(listed, expected);
        }
    }
}

#[test]
#[should_panic(expected = "used with another type")]
fn a_handle_of_another_backend_and_type_is_refused_before_any_cast() {
    let mut ints: HeapKeyedStateBackend = backend(1, 0);
    let _count: ValueState<i64> = ints.register_value("count", SerdeCodec);
    let mut texts: HeapKeyedStateBackend = backend(1, 0);
    let names: ValueState<String> = texts.register_value("names", SerdeCodec);
    ints.set_current_key(Value::Int(1)).unwrap();
    let _ = ints.set_value(names, Namespace::Global, "x".to_string());
}

mod heap_and_store_agree {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Key(i64),
        Set(i64, i64),
        Add(i64, i64),
        Take(i64),
        Push(String),
        TakeList,
        Put(String, i64),
        RemoveFromMap(String),
        Reduce(i64),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        let text = "[a-c]{1,2}";
        prop_oneof![
            3 => (0i64..30).prop_map(Op::Key),
            3 => (0i64..4, any::<i32>()).prop_map(|(window, value)| Op::Set(window, value as i64)),
            3 => (0i64..4, -5i64..5).prop_map(|(window, value)| Op::Add(window, value)),
            2 => (0i64..4).prop_map(Op::Take),
            2 => text.prop_map(Op::Push),
            1 => Just(Op::TakeList),
            2 => (text, any::<i16>()).prop_map(|(key, value)| Op::Put(key, value as i64)),
            1 => text.prop_map(Op::RemoveFromMap),
            2 => (-100i64..100).prop_map(Op::Reduce),
            1 => Just(Op::Snapshot),
        ]
    }

    fn at(window: i64) -> Namespace {
        if window == 0 { Namespace::Global } else { super::window(window * 10, window * 10 + 10) }
    }

    /// Applies `op` and returns what an operator would observe, as text.
    fn apply(state: &mut impl KeyedStateBackend, handles: &States, op: &Op) -> String {
        let seen = match op {
            Op::Key(key) => format!("{:?}", state.set_current_key(Value::Int(*key))),
            Op::Set(window, value) => format!("{:?}", state.set_value(handles.count, at(*window), *value)),
            Op::Add(window, delta) => format!(
                "{:?}",
                state.entry(handles.count, at(*window), || 100).map(|value| {
                    *value += delta;
                    *value
                })
            ),
            Op::Take(window) => format!("{:?}", state.take_value(handles.count, at(*window))),
            Op::Push(item) => format!("{:?}", state.list_add(handles.seen, Namespace::Global, item.clone())),
            Op::TakeList => format!("{:?}", state.list_take(handles.seen, Namespace::Global)),
            Op::Put(key, value) => {
                format!("{:?}", state.map_put(handles.tags, Namespace::Global, (key.clone(), *value)))
            }
            Op::RemoveFromMap(key) => format!("{:?}", state.map_remove(handles.tags, Namespace::Global, key)),
            Op::Reduce(value) => format!("{:?}", state.reducing_add(handles.total, Namespace::Global, *value)),
            Op::Snapshot => format!("{:?}", state.snapshot()),
        };
        let mut namespaces = Vec::new();
        let listed = state.namespaces(handles.count, &mut namespaces);
        let map = state.map(handles.tags, Namespace::Global).map(|map| map.cloned());
        let total = state.reducing_get(handles.total, Namespace::Global).map(|total| total.copied());
        let list = state.list(handles.seen, Namespace::Global).map(|list| list.to_vec());
        format!("{seen} | {listed:?} {namespaces:?} | {map:?} | {total:?} | {list:?}")
    }

    proptest! {
        /// The store backend, whose tiny cache sends most accesses to the store, answers every
        /// operation as the heap backend does, takes byte-identical snapshots, and each restores
        /// the other's snapshot (at two subtasks) to the same state.
        #[test]
        fn the_store_backend_behaves_as_the_heap_backend(ops in proptest::collection::vec(op(), 0..200)) {
            let mut heap: HeapKeyedStateBackend = backend(1, 0);
            let mut store: StoreKeyedStateBackend = backend(1, 0);
            let (heap_handles, store_handles) = (register(&mut heap), register(&mut store));
            for op in &ops {
                prop_assert_eq!(apply(&mut heap, &heap_handles, op), apply(&mut store, &store_handles, op), "{:?}", op);
            }
            prop_assert_eq!(heap.entry_count().unwrap(), store.entry_count().unwrap());
            let (heap_snapshot, store_snapshot) = (heap.snapshot().unwrap(), store.snapshot().unwrap());
            prop_assert_eq!(&heap_snapshot, &store_snapshot);
            for subtask in 0..2 {
                let mut from_store: HeapKeyedStateBackend = backend(2, subtask);
                let mut from_heap: StoreKeyedStateBackend = backend(2, subtask);
                register(&mut from_store);
                register(&mut from_heap);
                from_store.restore(&[&store_snapshot]).unwrap();
                from_heap.restore(&[&heap_snapshot]).unwrap();
                prop_assert_eq!(from_store.snapshot().unwrap(), from_heap.snapshot().unwrap());
            }
        }
    }
}
