//! The heap backend: state as Rust objects, one [`Table`] per registered state.
//!
//! Values stay objects between records (no encoding on access, as Flink's heap backend); the
//! codecs run only in `snapshot` and `restore`. Each state is a `Table` of one concrete type
//! behind [`ErasedTable`], so the backend holds states of any types; a typed handle reaches its
//! table through a `TypeId` recorded at registration. `set_current_key` hashes the key once
//! (for its key group), and every access of that record finds the key's entry by that hash.

use super::table::{Current, Entry, Table};
use super::{
    KeyGroupRange, KeyGroupSnapshot, KeyedSnapshot, KeyedStateBackend, ListState, MapCodecs, MapState, Namespace,
    Reducer, ReducingState, StateCodec, StateError, StateKey, StateResult, StateType, ValueState, decode_exact,
    encode_to_vec, key_group_of,
};
use crate::dataflow::partition::KeyGroups;
use crate::expr::stable_hash;
use crate::row::Value;
use serde::{Deserialize, Serialize};
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet};

/// What the backend needs of a table without knowing its type.
trait ErasedTable: Send {
    fn name(&self) -> &str;
    fn as_any(&self) -> &dyn Any;
    fn len(&self) -> usize;
    /// The entries by key group (ascending), each group's in key order.
    fn encode(&self) -> Result<Vec<(u32, Vec<EntryImage>)>, StateError>;
    fn decode_entry(&mut self, current: Current<'_>, namespace: Namespace, bytes: &[u8]) -> Result<(), StateError>;
}

impl<T: StateType> ErasedTable for Table<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn as_any(&self) -> &dyn Any {
        self
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

    fn decode_entry(&mut self, current: Current<'_>, namespace: Namespace, bytes: &[u8]) -> Result<(), StateError> {
        let value = self.codec.decode(bytes)?;
        if self.insert(current, namespace, value).is_some() {
            return Err(StateError::Codec { message: format!("state `{}` holds an entry twice", self.name) });
        }
        Ok(())
    }
}

fn encode_entry<T: StateType>(codec: &dyn StateCodec<T>, entry: &Entry<T>, images: &mut Vec<EntryImage>) -> StateResult<()> {
    for (namespace, value) in entry.values.entries() {
        let mut bytes = Vec::new();
        codec.encode(value, &mut bytes)?;
        images.push(EntryImage { key: entry.key.clone(), namespace: *namespace, value: bytes });
    }
    Ok(())
}

/// One key group as a snapshot stores it.
#[derive(Serialize, Deserialize)]
struct GroupImage {
    states: Vec<StateImage>,
}

#[derive(Serialize, Deserialize)]
struct StateImage {
    name: String,
    entries: Vec<EntryImage>,
}

#[derive(Serialize, Deserialize)]
struct EntryImage {
    key: Value,
    namespace: Namespace,
    value: Vec<u8>,
}

/// Keyed state on the heap, for the key groups of one subtask.
pub struct HeapKeyedStateBackend {
    max_parallelism: u32,
    range: KeyGroupRange,
    current_key: Value,
    current_hash: u64,
    current_group: u32,
    /// Key groups as the partitioner computes them, so a key arrives where its state lives.
    key_groups: KeyGroups,
    tables: Vec<Box<dyn ErasedTable>>,
    /// `TypeId` of the concrete table behind each entry of `tables`, fixed at registration.
    table_types: Vec<TypeId>,
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
        let current_hash = stable_hash(&Value::Null);
        let key_groups = KeyGroups::new(max_parallelism);
        HeapKeyedStateBackend {
            max_parallelism,
            range,
            current_key: Value::Null,
            current_hash,
            current_group: key_groups.of_hash(current_hash),
            key_groups,
            tables: Vec::new(),
            table_types: Vec::new(),
        }
    }

    fn register<T: StateType>(&mut self, name: &str, table: Table<T>) -> u32 {
        assert!(self.tables.iter().all(|table| table.name() != name), "state `{name}` is registered twice");
        self.tables.push(Box::new(table));
        self.table_types.push(TypeId::of::<Table<T>>());
        self.tables.len() as u32 - 1
    }

    /// The key group of a key with stable hash `hash`: [`key_group_of`], with the partitioner's
    /// precomputed division.
    #[inline]
    fn key_group(&self, hash: u64) -> u32 {
        self.key_groups.of_hash(hash)
    }

    fn current(&self) -> Current<'_> {
        Current { hash: self.current_hash, key_group: self.current_group, key: &self.current_key }
    }

    fn table<T: 'static>(&self, id: u32) -> (&Table<T>, Current<'_>) {
        let table = self.tables[id as usize].as_any().downcast_ref::<Table<T>>();
        let table = table.unwrap_or_else(|| panic!("state handle {id} used with another backend or type"));
        (table, self.current())
    }

    /// Table `id` and the current key, without `Any::downcast_mut`'s virtual `type_id` call (whose
    /// result, returned through memory and read back at once, stalls the record path).
    #[inline]
    fn table_mut<T: 'static>(&mut self, id: u32) -> (&mut Table<T>, Current<'_>) {
        let id = id as usize;
        assert!(self.table_types[id] == TypeId::of::<Table<T>>(), "state handle {id} used with another type");
        let erased: *mut dyn ErasedTable = &mut *self.tables[id];
        // SAFETY: `tables[id]` was boxed as a `Table<U>` with `TypeId::of::<Table<U>>()` recorded in
        // `table_types[id]` (both vectors change only in `register`, which pushes to both), and
        // that id equals `TypeId::of::<Table<T>>()`, so `U == T`: this is the cast
        // `Any::downcast_mut` makes once it has compared the same ids.
        let table = unsafe { &mut *(erased as *mut Table<T>) };
        let current = Current { hash: self.current_hash, key_group: self.current_group, key: &self.current_key };
        (table, current)
    }

    fn restore_group(&mut self, key_group: u32, bytes: &[u8]) -> StateResult<()> {
        let corrupt = |message: String| StateError::Corrupt { key_group, message };
        let image: GroupImage = decode_exact(bytes).map_err(corrupt)?;
        for state in image.states {
            let Some(position) = self.tables.iter().position(|table| table.name() == state.name) else {
                return Err(StateError::UnknownState { name: state.name });
            };
            for entry in state.entries {
                let hash = stable_hash(&entry.key);
                let found = self.key_group(hash);
                if found != key_group {
                    return Err(corrupt(format!("key {} belongs to key group {found}", entry.key)));
                }
                let current = Current { hash, key_group, key: &entry.key };
                let table = &mut self.tables[position];
                table.decode_entry(current, entry.namespace, &entry.value).map_err(|e| corrupt(e.to_string()))?;
            }
        }
        Ok(())
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
        let hash = stable_hash(&key);
        let key_group = self.key_group(hash);
        debug_assert_eq!(key_group, key_group_of(&key, self.max_parallelism));
        if !self.range.contains(key_group) {
            return Err(StateError::KeyOutOfRange { key: key.to_string(), key_group, range: self.range });
        }
        (self.current_hash, self.current_group) = (hash, key_group);
        match (&mut self.current_key, &key) {
            // In place: moving a whole `Value` just built stalls store forwarding (see `put` in
            // the operators).
            (Value::Int(current), Value::Int(new)) => *current = *new,
            _ => self.current_key = key,
        }
        Ok(())
    }

    fn current_key(&self) -> &Value {
        &self.current_key
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

    fn value<T: StateType>(&self, state: ValueState<T>, at: Namespace) -> Option<&T> {
        let (table, current) = self.table::<T>(state.id);
        table.get(current, at)
    }

    fn value_mut<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> Option<&mut T> {
        let (table, current) = self.table_mut::<T>(state.id);
        table.get_mut(current, at)
    }

    #[inline]
    fn value_or_init<T: StateType>(&mut self, state: ValueState<T>, at: Namespace, init: impl FnOnce() -> T) -> &mut T {
        let (table, current) = self.table_mut::<T>(state.id);
        table.get_or_insert_with(current, at, init)
    }

    fn set_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace, value: T) -> Option<T> {
        let (table, current) = self.table_mut::<T>(state.id);
        table.insert(current, at, value)
    }

    fn take_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> Option<T> {
        let (table, current) = self.table_mut::<T>(state.id);
        table.remove(current, at)
    }

    fn namespaces<T: StateType>(&self, state: ValueState<T>, out: &mut Vec<Namespace>) {
        out.clear();
        let (table, current) = self.table::<T>(state.id);
        out.extend(table.namespaces(current));
    }

    fn for_each_value<T: StateType>(&self, state: ValueState<T>, visit: &mut dyn FnMut(&Value, Namespace, &T)) {
        let (table, _) = self.table::<T>(state.id);
        for entry in table.sorted() {
            for (namespace, value) in entry.values.entries() {
                visit(&entry.key, *namespace, value);
            }
        }
    }

    fn list_add<T: StateType>(&mut self, state: ListState<T>, at: Namespace, item: T) {
        let (table, current) = self.table_mut::<Vec<T>>(state.id);
        table.get_or_insert_with(current, at, Vec::new).push(item);
    }

    fn list<T: StateType>(&self, state: ListState<T>, at: Namespace) -> &[T] {
        let (table, current) = self.table::<Vec<T>>(state.id);
        table.get(current, at).map(Vec::as_slice).unwrap_or(&[])
    }

    fn list_take<T: StateType>(&mut self, state: ListState<T>, at: Namespace) -> Vec<T> {
        let (table, current) = self.table_mut::<Vec<T>>(state.id);
        table.remove(current, at).unwrap_or_default()
    }

    fn map_put<K: StateKey, V: StateType>(&mut self, map: MapState<K, V>, at: Namespace, key: K, value: V) -> Option<V> {
        let (table, current) = self.table_mut::<BTreeMap<K, V>>(map.id);
        table.get_or_insert_with(current, at, BTreeMap::new).insert(key, value)
    }

    fn map_get<K: StateKey, V: StateType>(&self, state: MapState<K, V>, at: Namespace, key: &K) -> Option<&V> {
        self.map(state, at)?.get(key)
    }

    fn map_remove<K: StateKey, V: StateType>(&mut self, state: MapState<K, V>, at: Namespace, key: &K) -> Option<V> {
        let (table, current) = self.table_mut::<BTreeMap<K, V>>(state.id);
        let map = table.get_mut(current, at)?;
        let removed = map.remove(key);
        if map.is_empty() {
            table.remove(current, at);
        }
        removed
    }

    fn map<K: StateKey, V: StateType>(&self, state: MapState<K, V>, at: Namespace) -> Option<&BTreeMap<K, V>> {
        let (table, current) = self.table::<BTreeMap<K, V>>(state.id);
        table.get(current, at)
    }

    fn reducing_add<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace, value: T) -> StateResult<()> {
        let (table, current) = self.table_mut::<T>(state.id);
        let Some(reduce) = table.reduce.take() else {
            unreachable!("a reducing state handle always names a table with a reduce function");
        };
        let result = match table.get_mut(current, at) {
            Some(reduced) => reduce(reduced, value),
            None => {
                table.insert(current, at, value);
                Ok(())
            }
        };
        table.reduce = Some(reduce);
        result
    }

    fn reducing_get<T: StateType>(&self, state: ReducingState<T>, at: Namespace) -> Option<&T> {
        let (table, current) = self.table::<T>(state.id);
        table.get(current, at)
    }

    fn reducing_take<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace) -> Option<T> {
        let (table, current) = self.table_mut::<T>(state.id);
        table.remove(current, at)
    }

    fn entry_count(&self) -> usize {
        self.tables.iter().map(|table| table.len()).sum()
    }

    fn snapshot(&self) -> StateResult<KeyedSnapshot> {
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
        Ok(KeyedSnapshot { max_parallelism: self.max_parallelism, key_group_range: self.range, groups: snapshots })
    }

    fn restore(&mut self, snapshots: &[&KeyedSnapshot]) -> StateResult<()> {
        let entries = self.entry_count();
        if entries > 0 {
            return Err(StateError::NotEmpty { entries });
        }
        let (mut seen, range) = (BTreeSet::new(), self.range);
        for snapshot in snapshots {
            if snapshot.max_parallelism != self.max_parallelism {
                let found = snapshot.max_parallelism;
                return Err(StateError::MaxParallelismMismatch { expected: self.max_parallelism, found });
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
}

/// A list state's codec: each item's bytes, in a list.
struct ListCodec<T> {
    item: Box<dyn StateCodec<T>>,
}

impl<T: StateType> StateCodec<Vec<T>> for ListCodec<T> {
    fn encode(&self, items: &Vec<T>, out: &mut Vec<u8>) -> Result<(), StateError> {
        let mut parts = Vec::with_capacity(items.len());
        for item in items {
            let mut bytes = Vec::new();
            self.item.encode(item, &mut bytes)?;
            parts.push(bytes);
        }
        out.extend(encode_to_vec(&parts).map_err(|message| StateError::Codec { message })?);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<T>, StateError> {
        let parts: Vec<Vec<u8>> = decode_exact(bytes).map_err(|message| StateError::Codec { message })?;
        parts.iter().map(|part| self.item.decode(part)).collect()
    }
}

/// A map state's codec: the `(key, value)` pairs in key order, each part's bytes.
impl<K: StateKey, V: StateType> StateCodec<BTreeMap<K, V>> for MapCodecs<K, V> {
    fn encode(&self, map: &BTreeMap<K, V>, out: &mut Vec<u8>) -> Result<(), StateError> {
        let mut parts = Vec::with_capacity(map.len());
        for (key, value) in map {
            let (mut key_bytes, mut value_bytes) = (Vec::new(), Vec::new());
            self.keys.encode(key, &mut key_bytes)?;
            self.values.encode(value, &mut value_bytes)?;
            parts.push((key_bytes, value_bytes));
        }
        out.extend(encode_to_vec(&parts).map_err(|message| StateError::Codec { message })?);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<BTreeMap<K, V>, StateError> {
        let parts: Vec<(Vec<u8>, Vec<u8>)> = decode_exact(bytes).map_err(|message| StateError::Codec { message })?;
        let mut map = BTreeMap::new();
        for (key, value) in &parts {
            map.insert(self.keys.decode(key)?, self.values.decode(value)?);
        }
        Ok(map)
    }
}
