//! The heap backend: state as Rust objects, one [`Table`] per registered state.
//!
//! Values stay objects between records (no encoding on access, as Flink's heap backend); the
//! codecs run only in `snapshot` and `restore`. Each state is a `Table` of one concrete type
//! behind [`ErasedTable`], so the backend holds states of any types; a typed handle reaches its
//! table through a `TypeId` recorded at registration (the one `unsafe` cast of the core, in
//! place of `Any`'s downcast, whose virtual call costs a stall per record). A key's group (its
//! stable hash, which costs more than the rest of a lookup) is computed when state is first
//! stored for it and kept in its entries; a record whose key already has state does not hash it
//! again. [`HeapKeyedStateBackend::for_each_entry`] serves a batch of keys in two passes (every
//! lookup, then every value), so that the lookups' cache misses overlap.

use super::image::{EntryImage, GroupImage, ListCodec, StateImage};
use super::table::{Entry, Probe, Table, probe_hash};
use super::{
    KeyGroupRange, KeyGroupSnapshot, KeyedSnapshot, KeyedStateBackend, ListState, MapCodecs, MapState, Namespace,
    Reducer, ReducingState, StateCodec, StateError, StateKey, StateResult, StateType, ValueState, decode_exact,
    encode_to_vec, key_group_of,
};
use crate::row::Value;
use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};

/// Why the heap backend cannot restore an incremental RocksDB checkpoint (as in Flink, only
/// savepoints move state between backends).
const NATIVE_REFUSED: &str = "this is an incremental checkpoint of the rocksdb backend, which the hashmap \
    backend cannot read: restore it with `state.backend.type: rocksdb`, or take a savepoint to switch backends";

/// What the backend needs of a table without knowing its type.
trait ErasedTable: Send {
    fn name(&self) -> &str;
    fn len(&self) -> usize;
    /// The entries by key group (ascending), each group's in key order.
    fn encode(&self) -> Result<Vec<(u32, Vec<EntryImage>)>, StateError>;
    fn decode_entry(&mut self, key: &Value, key_group: u32, namespace: Namespace, bytes: &[u8]) -> StateResult<()>;
}

impl<T: StateType> ErasedTable for Table<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        Table::len(self)
    }

    fn encode(&self) -> Result<Vec<(u32, Vec<EntryImage>)>, StateError> {
        let mut groups: Vec<(u32, Vec<EntryImage>)> = Vec::new();
        for entry in self.sorted() {
            if groups.last().is_none_or(|(key_group, _)| *key_group != entry.key_group) {
                groups.push((entry.key_group, Vec::new()));
            }
            let Some((_, images)) = groups.last_mut() else { unreachable!("pushed above") };
            encode_entry(self.codec.as_ref(), entry, images)?;
        }
        Ok(groups)
    }

    fn decode_entry(&mut self, key: &Value, key_group: u32, namespace: Namespace, bytes: &[u8]) -> StateResult<()> {
        let value = self.codec.decode(bytes)?;
        let probe = Probe { hash: probe_hash(key), key };
        if self.insert(probe, namespace, || Ok(key_group), value)?.is_some() {
            return Err(StateError::Codec { message: format!("state `{}` holds an entry twice", self.name) });
        }
        Ok(())
    }
}

fn encode_entry<T: StateType>(
    codec: &dyn StateCodec<T>,
    entry: &Entry<T>,
    images: &mut Vec<EntryImage>,
) -> StateResult<()> {
    for (namespace, value) in entry.values.entries() {
        let mut bytes = Vec::new();
        codec.encode(value, &mut bytes)?;
        images.push(EntryImage { key: entry.key.clone(), namespace: *namespace, value: bytes });
    }
    Ok(())
}

/// Keyed state on the heap, for the key groups of one subtask.
pub struct HeapKeyedStateBackend {
    max_parallelism: u32,
    range: KeyGroupRange,
    current: CurrentKey,
    tables: Vec<Box<dyn ErasedTable>>,
    /// `TypeId` of the concrete table behind each entry of `tables`, fixed at registration.
    table_types: Vec<TypeId>,
    /// Scratch of [`HeapKeyedStateBackend::for_each_entry`]: slab positions of a batch's keys.
    positions: Vec<u32>,
}

impl std::fmt::Debug for HeapKeyedStateBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tables.iter().map(|table| table.name()).collect();
        f.debug_struct("HeapKeyedStateBackend")
            .field("max_parallelism", &self.max_parallelism)
            .field("range", &self.range)
            .field("states", &names)
            .finish()
    }
}

impl HeapKeyedStateBackend {
    /// An empty backend owning `range` of `max_parallelism` key groups.
    pub fn new(max_parallelism: u32, range: KeyGroupRange) -> HeapKeyedStateBackend {
        assert!(max_parallelism > 0, "max parallelism must be positive");
        assert!(range.end <= max_parallelism, "range {range:?} beyond {max_parallelism} key groups");
        let current = CurrentKey { key: Value::Null, probe: probe_hash(&Value::Null), key_group: None };
        let (tables, table_types, positions) = (Vec::new(), Vec::new(), Vec::new());
        HeapKeyedStateBackend { max_parallelism, range, current, tables, table_types, positions }
    }

    fn register<T: StateType>(&mut self, name: &str, table: Table<T>) -> u32 {
        assert!(self.tables.iter().all(|table| table.name() != name), "state `{name}` is registered twice");
        self.tables.push(Box::new(table));
        self.table_types.push(TypeId::of::<Table<T>>());
        self.tables.len() as u32 - 1
    }

    fn groups(&self) -> KeyGroups {
        KeyGroups { max_parallelism: self.max_parallelism, range: self.range }
    }

    /// Checks that state `id` holds a `Table<T>`: a handle used with another backend is a bug.
    #[inline]
    fn check_type<T: 'static>(&self, id: usize) {
        assert!(self.table_types[id] == TypeId::of::<Table<T>>(), "state handle {id} used with another type");
    }

    fn table<T: 'static>(&self, id: u32) -> (&Table<T>, Probe<'_>) {
        let id = id as usize;
        self.check_type::<T>(id);
        let erased: *const dyn ErasedTable = &*self.tables[id];
        // SAFETY: as in `table_mut`.
        let table = unsafe { &*(erased as *const Table<T>) };
        (table, self.current.probe())
    }

    /// Table `id`, the current key to probe it with, and what resolves the key's group should an
    /// entry be created. No `Any::downcast_mut`: its virtual `type_id` call returns the id
    /// through memory, and reading it back at once stalls the record path.
    #[inline]
    fn table_mut<T: 'static>(&mut self, id: u32) -> (&mut Table<T>, Probe<'_>, GroupOf<'_>) {
        let id = id as usize;
        self.check_type::<T>(id);
        let erased: *mut dyn ErasedTable = &mut *self.tables[id];
        // SAFETY: `tables[id]` was boxed as a `Table<U>` with `TypeId::of::<Table<U>>()` recorded in
        // `table_types[id]` (both vectors change only in `register`, which pushes to both), and
        // `check_type` found that id equal to `TypeId::of::<Table<T>>()`, so `U == T`: this is the
        // cast `Any::downcast_mut` makes once it has compared the same ids.
        let table = unsafe { &mut *(erased as *mut Table<T>) };
        let groups = KeyGroups { max_parallelism: self.max_parallelism, range: self.range };
        let CurrentKey { key, probe, key_group } = &mut self.current;
        (table, Probe { hash: *probe, key }, GroupOf { key, cached: key_group, groups })
    }

    /// The value of `state` at `at` for each key of `keys` in turn, created by `init` when
    /// absent, handed to `visit` with its key: the same as `set_current_key` and `entry` key by
    /// key, but every key is looked up first, so that the lookups' memory accesses overlap
    /// instead of waiting one after another. The last key is current afterwards.
    ///
    /// A key outside this subtask's key groups ends the batch: the keys before it are visited,
    /// then its error, through `fail`, is returned. `visit` failing stops the batch with that
    /// error; the keys after it may have been given fresh values already (an operator error
    /// fails the task, whose state is then thrown away for the last checkpoint's).
    fn for_each_entry_batched<T: StateType, E>(
        &mut self,
        (state, at): (ValueState<T>, Namespace),
        keys: &[Value],
        mut init: impl FnMut() -> T,
        mut visit: impl FnMut(&Value, &mut T) -> Result<(), E>,
        fail: impl Fn(StateError) -> E,
    ) -> Result<(), E> {
        let mut positions = std::mem::take(&mut self.positions);
        positions.clear();
        let groups = self.groups();
        let (table, _, _) = self.table_mut::<T>(state.id);
        let mut failure = None;
        for key in keys {
            let probe = Probe { hash: probe_hash(key), key };
            match table.locate(probe, at, || groups.owned(key), &mut init) {
                Ok(position) => positions.push(position as u32),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let (mut result, mut visited) = (Ok(()), 0);
        for (key, &position) in keys.iter().zip(&positions) {
            visited += 1;
            result = visit(key, table.value_at(position as usize, at, &mut init));
            if result.is_err() {
                break;
            }
        }
        self.positions = positions;
        if visited > 0 {
            self.set_current_key(keys[visited - 1].clone()).map_err(&fail)?;
        }
        result?;
        failure.map_or(Ok(()), |error| Err(fail(error)))
    }

    /// Entries over all states.
    fn len(&self) -> usize {
        self.tables.iter().map(|table| table.len()).sum()
    }

    fn restore_group(&mut self, key_group: u32, bytes: &[u8]) -> StateResult<()> {
        let corrupt = |message: String| StateError::Corrupt { key_group, message };
        let image: GroupImage = decode_exact(bytes).map_err(corrupt)?;
        let groups = self.groups();
        for state in image.states {
            let Some(position) = self.tables.iter().position(|table| table.name() == state.name) else {
                return Err(StateError::UnknownState { name: state.name });
            };
            for entry in state.entries {
                let found = groups.of(&entry.key);
                if found != key_group {
                    return Err(corrupt(format!("key {} belongs to key group {found}", entry.key)));
                }
                let table = &mut self.tables[position];
                let decoded = table.decode_entry(&entry.key, key_group, entry.namespace, &entry.value);
                decoded.map_err(|error| corrupt(error.to_string()))?;
            }
        }
        Ok(())
    }
}

/// The current key, its probe hash and (once asked) its key group.
struct CurrentKey {
    key: Value,
    probe: u64,
    key_group: Option<u32>,
}

impl CurrentKey {
    fn probe(&self) -> Probe<'_> {
        Probe { hash: self.probe, key: &self.key }
    }
}

/// How keys map to key groups, and which groups are owned.
#[derive(Clone, Copy)]
struct KeyGroups {
    max_parallelism: u32,
    range: KeyGroupRange,
}

impl KeyGroups {
    /// [`key_group_of`]: the partitioner's key groups, with its division precomputed.
    fn of(&self, key: &Value) -> u32 {
        let key_group = crate::dataflow::partition::KeyGroups::new(self.max_parallelism).of(key);
        debug_assert_eq!(key_group, key_group_of(key, self.max_parallelism));
        key_group
    }

    /// The key's group, refused when not owned.
    fn owned(&self, key: &Value) -> StateResult<u32> {
        let key_group = self.of(key);
        if !self.range.contains(key_group) {
            return Err(StateError::KeyOutOfRange { key: key.to_string(), key_group, range: self.range });
        }
        Ok(key_group)
    }
}

/// Resolves the current key's group on demand, once per key.
struct GroupOf<'a> {
    key: &'a Value,
    cached: &'a mut Option<u32>,
    groups: KeyGroups,
}

impl GroupOf<'_> {
    fn resolve(self) -> StateResult<u32> {
        if let Some(key_group) = *self.cached {
            return Ok(key_group);
        }
        let key_group = self.groups.owned(self.key)?;
        *self.cached = Some(key_group);
        Ok(key_group)
    }
}

impl KeyedStateBackend for HeapKeyedStateBackend {
    fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    #[inline]
    fn set_current_key(&mut self, key: Value) -> StateResult<()> {
        let current = &mut self.current;
        current.probe = probe_hash(&key);
        current.key_group = None;
        match (&mut current.key, &key) {
            // In place: moving a whole `Value` just built stalls store forwarding (see `put` in
            // the operators).
            (Value::Int(target), Value::Int(new)) => *target = *new,
            _ => current.key = key,
        }
        Ok(())
    }

    fn current_key(&self) -> &Value {
        &self.current.key
    }

    fn current_key_group(&mut self) -> StateResult<u32> {
        let groups = self.groups();
        let CurrentKey { key, key_group, .. } = &mut self.current;
        GroupOf { key, cached: key_group, groups }.resolve()
    }

    fn register_value<T: StateType>(&mut self, name: &str, codec: impl StateCodec<T>) -> ValueState<T> {
        ValueState::new(self.register(name, Table::<T>::new(name, Box::new(codec), None)))
    }

    fn register_list<T: StateType>(&mut self, name: &str, codec: impl StateCodec<T>) -> ListState<T> {
        let codec = ListCodec { item: Box::new(codec) };
        ListState::new(self.register(name, Table::<Vec<T>>::new(name, Box::new(codec), None)))
    }

    fn register_map<K: StateKey, V: StateType>(&mut self, name: &str, codecs: MapCodecs<K, V>) -> MapState<K, V> {
        MapState::new(self.register(name, Table::<BTreeMap<K, V>>::new(name, Box::new(codecs), None)))
    }

    fn register_reducing<T: StateType>(&mut self, name: &str, reducer: Reducer<T>) -> ReducingState<T> {
        ReducingState::new(self.register(name, Table::<T>::new(name, reducer.codec, Some(reducer.reduce))))
    }

    fn value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<&T>> {
        let (table, probe) = self.table::<T>(state.id);
        Ok(table.get(probe, at))
    }

    fn value_mut<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<&mut T>> {
        let (table, probe, _) = self.table_mut::<T>(state.id);
        Ok(table.get_mut(probe, at))
    }

    #[inline]
    fn entry<T: StateType>(&mut self, of: ValueState<T>, at: Namespace, f: impl FnOnce() -> T) -> StateResult<&mut T> {
        let (table, probe, group) = self.table_mut::<T>(of.id);
        table.get_or_insert_with(probe, at, || group.resolve(), f)
    }

    fn set_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace, value: T) -> StateResult<Option<T>> {
        let (table, probe, group) = self.table_mut::<T>(state.id);
        table.insert(probe, at, || group.resolve(), value)
    }

    fn take_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<T>> {
        let (table, probe, _) = self.table_mut::<T>(state.id);
        Ok(table.remove(probe, at))
    }

    fn namespaces<T: StateType>(&mut self, state: ValueState<T>, out: &mut Vec<Namespace>) -> StateResult<()> {
        out.clear();
        let (table, probe) = self.table::<T>(state.id);
        out.extend(table.namespaces(probe));
        Ok(())
    }

    fn for_each_value<T: StateType>(
        &mut self,
        state: ValueState<T>,
        visit: &mut dyn FnMut(&Value, Namespace, &T),
    ) -> StateResult<()> {
        let (table, _) = self.table::<T>(state.id);
        for entry in table.sorted() {
            for (namespace, value) in entry.values.entries() {
                visit(&entry.key, *namespace, value);
            }
        }
        Ok(())
    }

    fn list_add<T: StateType>(&mut self, state: ListState<T>, at: Namespace, item: T) -> StateResult<()> {
        let (table, probe, group) = self.table_mut::<Vec<T>>(state.id);
        table.get_or_insert_with(probe, at, || group.resolve(), Vec::new)?.push(item);
        Ok(())
    }

    fn list<T: StateType>(&mut self, state: ListState<T>, at: Namespace) -> StateResult<&[T]> {
        let (table, probe) = self.table::<Vec<T>>(state.id);
        Ok(table.get(probe, at).map(Vec::as_slice).unwrap_or(&[]))
    }

    fn list_take<T: StateType>(&mut self, state: ListState<T>, at: Namespace) -> StateResult<Vec<T>> {
        let (table, probe, _) = self.table_mut::<Vec<T>>(state.id);
        Ok(table.remove(probe, at).unwrap_or_default())
    }

    fn map_put<K: StateKey, V: StateType>(&mut self, of: MapState<K, V>, at: Namespace, kv: (K, V)) -> StateResult<()> {
        let (table, probe, group) = self.table_mut::<BTreeMap<K, V>>(of.id);
        table.get_or_insert_with(probe, at, || group.resolve(), BTreeMap::new)?.insert(kv.0, kv.1);
        Ok(())
    }

    fn map_remove<K: StateKey, V: StateType>(
        &mut self,
        state: MapState<K, V>,
        at: Namespace,
        key: &K,
    ) -> StateResult<Option<V>> {
        let (table, probe, _) = self.table_mut::<BTreeMap<K, V>>(state.id);
        let Some(map) = table.get_mut(probe, at) else { return Ok(None) };
        let removed = map.remove(key);
        if map.is_empty() {
            table.remove(probe, at);
        }
        Ok(removed)
    }

    fn map<K: StateKey, V: StateType>(
        &mut self,
        state: MapState<K, V>,
        at: Namespace,
    ) -> StateResult<Option<&BTreeMap<K, V>>> {
        let (table, probe) = self.table::<BTreeMap<K, V>>(state.id);
        Ok(table.get(probe, at))
    }

    fn reducing_add<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace, value: T) -> StateResult<()> {
        let (table, probe, group) = self.table_mut::<T>(state.id);
        let Some(reduce) = table.reduce.take() else {
            unreachable!("a reducing state handle always names a table with a reduce function");
        };
        let result = match table.get_mut(probe, at) {
            Some(reduced) => reduce(reduced, value),
            None => table.insert(probe, at, || group.resolve(), value).map(|_| ()),
        };
        table.reduce = Some(reduce);
        result
    }

    fn reducing_get<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace) -> StateResult<Option<&T>> {
        let (table, probe) = self.table::<T>(state.id);
        Ok(table.get(probe, at))
    }

    fn reducing_take<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace) -> StateResult<Option<T>> {
        let (table, probe, _) = self.table_mut::<T>(state.id);
        Ok(table.remove(probe, at))
    }

    fn entry_count(&mut self) -> StateResult<usize> {
        Ok(self.len())
    }

    fn snapshot(&mut self) -> StateResult<KeyedSnapshot> {
        let mut groups: BTreeMap<u32, Vec<StateImage>> = BTreeMap::new();
        for table in &self.tables {
            for (key_group, entries) in table.encode()? {
                groups.entry(key_group).or_default().push(StateImage { name: table.name().to_string(), entries });
            }
        }
        let mut snapshots = Vec::with_capacity(groups.len());
        for (key_group, states) in groups {
            debug_assert!(self.range.contains(key_group));
            let bytes = encode_to_vec(&GroupImage { states }).map_err(|message| StateError::Codec { message })?;
            snapshots.push(KeyGroupSnapshot { key_group, bytes });
        }
        Ok(KeyedSnapshot {
            max_parallelism: self.max_parallelism,
            key_group_range: self.range,
            groups: snapshots,
            native: None,
        })
    }

    fn restore(&mut self, snapshots: &[&KeyedSnapshot]) -> StateResult<()> {
        let entries = self.len();
        if entries > 0 {
            return Err(StateError::NotEmpty { entries });
        }
        let (mut seen, range) = (BTreeSet::new(), self.range);
        for snapshot in snapshots {
            if snapshot.max_parallelism != self.max_parallelism {
                let found = snapshot.max_parallelism;
                return Err(StateError::MaxParallelismMismatch { expected: self.max_parallelism, found });
            }
            if snapshot.native.is_some() {
                return Err(StateError::Store { message: NATIVE_REFUSED.to_string() });
            }
            for group in snapshot.groups.iter().filter(|group| range.contains(group.key_group)) {
                if !seen.insert(group.key_group) {
                    return Err(StateError::DuplicateKeyGroup { key_group: group.key_group });
                }
                self.restore_group(group.key_group, &group.bytes)?;
            }
        }
        Ok(())
    }

    fn for_each_entry<T: StateType, E>(
        &mut self,
        of: (ValueState<T>, Namespace),
        keys: &[Value],
        init: impl FnMut() -> T,
        visit: impl FnMut(&Value, &mut T) -> Result<(), E>,
        fail: impl Fn(StateError) -> E,
    ) -> Result<(), E> {
        self.for_each_entry_batched(of, keys, init, visit, fail)
    }
}
