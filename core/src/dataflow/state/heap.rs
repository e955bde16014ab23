//! The heap backend: state as Rust objects in ordered maps, one map per state and key group.
//!
//! Values stay objects between records (no encoding on access, as Flink's heap backend); the
//! codecs run only in `snapshot` and `restore`. Each state is a [`Table`] of one concrete type
//! behind [`ErasedTable`], so the backend holds states of any types and a typed handle reaches
//! its table with one downcast.

use super::{
    KeyGroupRange, KeyGroupSnapshot, KeyedSnapshot, KeyedStateBackend, ListState, MapCodecs, MapState, Namespace,
    ReduceFn, Reducer, ReducingState, StateCodec, StateError, StateKey, StateResult, StateType, ValueState,
    decode_exact, encode_to_vec, key_group_of,
};
use crate::row::Value;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

type Entries<T> = BTreeMap<(Value, Namespace), T>;

/// One state: its entries per owned key group, its codec and (reducing states) its function.
struct Table<T> {
    name: String,
    groups: Vec<Entries<T>>,
    codec: Box<dyn StateCodec<T>>,
    reduce: Option<ReduceFn<T>>,
}

/// What the backend needs of a table without knowing its type.
trait ErasedTable: Send {
    fn name(&self) -> &str;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn len(&self) -> usize;
    fn encode_group(&self, group: usize) -> Result<Vec<EntryImage>, StateError>;
    fn decode_entry(&mut self, group: usize, entry: EntryImage) -> Result<(), StateError>;
}

impl<T: StateType> ErasedTable for Table<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn len(&self) -> usize {
        self.groups.iter().map(BTreeMap::len).sum()
    }

    fn encode_group(&self, group: usize) -> Result<Vec<EntryImage>, StateError> {
        let mut images = Vec::with_capacity(self.groups[group].len());
        for ((key, namespace), value) in &self.groups[group] {
            let mut bytes = Vec::new();
            self.codec.encode(value, &mut bytes)?;
            images.push(EntryImage { key: key.clone(), namespace: *namespace, value: bytes });
        }
        Ok(images)
    }

    fn decode_entry(&mut self, group: usize, entry: EntryImage) -> Result<(), StateError> {
        let value = self.codec.decode(&entry.value)?;
        if self.groups[group].insert((entry.key, entry.namespace), value).is_some() {
            return Err(StateError::Codec { message: format!("state `{}` holds an entry twice", self.name) });
        }
        Ok(())
    }
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
    /// Index of the current key's group in each table's `groups`.
    current_group: usize,
    tables: Vec<Box<dyn ErasedTable>>,
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
        HeapKeyedStateBackend { max_parallelism, range, current_key: Value::Null, current_group: 0, tables: Vec::new() }
    }

    fn register<T: StateType>(
        &mut self,
        name: &str,
        codec: Box<dyn StateCodec<T>>,
        reduce: Option<ReduceFn<T>>,
    ) -> u32 {
        assert!(self.tables.iter().all(|table| table.name() != name), "state `{name}` is registered twice");
        let groups = (0..self.range.len()).map(|_| BTreeMap::new()).collect();
        self.tables.push(Box::new(Table { name: name.to_string(), groups, codec, reduce }));
        self.tables.len() as u32 - 1
    }

    fn table<T: 'static>(&self, id: u32) -> &Table<T> {
        let table = self.tables[id as usize].as_any().downcast_ref::<Table<T>>();
        table.unwrap_or_else(|| panic!("state handle {id} used with another backend or type"))
    }

    fn table_mut<T: 'static>(&mut self, id: u32) -> &mut Table<T> {
        let table = self.tables[id as usize].as_any_mut().downcast_mut::<Table<T>>();
        table.unwrap_or_else(|| panic!("state handle {id} used with another backend or type"))
    }

    /// The current key's entries of table `id`, and the lookup key for `namespace`.
    fn entries<T: 'static>(&self, id: u32, namespace: Namespace) -> (&Entries<T>, (Value, Namespace)) {
        let group = self.current_group;
        (&self.table::<T>(id).groups[group], (self.current_key.clone(), namespace))
    }

    fn entries_mut<T: 'static>(&mut self, id: u32, namespace: Namespace) -> (&mut Entries<T>, (Value, Namespace)) {
        let (group, lookup) = (self.current_group, (self.current_key.clone(), namespace));
        (&mut self.table_mut::<T>(id).groups[group], lookup)
    }

    fn encode_group(&self, group: usize) -> Result<Option<Vec<u8>>, StateError> {
        let mut states = Vec::new();
        for table in &self.tables {
            let entries = table.encode_group(group)?;
            if !entries.is_empty() {
                states.push(StateImage { name: table.name().to_string(), entries });
            }
        }
        if states.is_empty() {
            return Ok(None);
        }
        encode_to_vec(&GroupImage { states }).map(Some).map_err(|message| StateError::Codec { message })
    }

    fn restore_group(&mut self, key_group: u32, bytes: &[u8]) -> Result<(), StateError> {
        let corrupt = |message: String| StateError::Corrupt { key_group, message };
        let image: GroupImage = decode_exact(bytes).map_err(corrupt)?;
        let group = (key_group - self.range.start) as usize;
        for state in image.states {
            let Some(table) = self.tables.iter_mut().find(|table| table.name() == state.name) else {
                return Err(StateError::UnknownState { name: state.name });
            };
            for entry in state.entries {
                let found = key_group_of(&entry.key, self.max_parallelism);
                if found != key_group {
                    return Err(corrupt(format!("key {} belongs to key group {found}", entry.key)));
                }
                table.decode_entry(group, entry).map_err(|error| corrupt(error.to_string()))?;
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
        let key_group = key_group_of(&key, self.max_parallelism);
        if !self.range.contains(key_group) {
            return Err(StateError::KeyOutOfRange { key: key.to_string(), key_group, range: self.range });
        }
        self.current_group = (key_group - self.range.start) as usize;
        self.current_key = key;
        Ok(())
    }

    fn current_key(&self) -> &Value {
        &self.current_key
    }

    fn register_value<T: StateType>(&mut self, name: &str, codec: impl StateCodec<T>) -> ValueState<T> {
        ValueState::new(self.register::<T>(name, Box::new(codec), None))
    }

    fn register_list<T: StateType>(&mut self, name: &str, codec: impl StateCodec<T>) -> ListState<T> {
        let codec = ListCodec { item: Box::new(codec) };
        ListState::new(self.register::<Vec<T>>(name, Box::new(codec), None))
    }

    fn register_map<K: StateKey, V: StateType>(&mut self, name: &str, codecs: MapCodecs<K, V>) -> MapState<K, V> {
        MapState::new(self.register::<BTreeMap<K, V>>(name, Box::new(codecs), None))
    }

    fn register_reducing<T: StateType>(&mut self, name: &str, reducer: Reducer<T>) -> ReducingState<T> {
        ReducingState::new(self.register::<T>(name, reducer.codec, Some(reducer.reduce)))
    }

    fn value<T: StateType>(&self, state: ValueState<T>, at: Namespace) -> Option<&T> {
        let (entries, lookup) = self.entries::<T>(state.id, at);
        entries.get(&lookup)
    }

    fn value_mut<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> Option<&mut T> {
        let (entries, lookup) = self.entries_mut::<T>(state.id, at);
        entries.get_mut(&lookup)
    }

    #[inline]
    fn value_or_init<T: StateType>(&mut self, state: ValueState<T>, at: Namespace, init: impl FnOnce() -> T) -> &mut T {
        let (entries, lookup) = self.entries_mut::<T>(state.id, at);
        entries.entry(lookup).or_insert_with(init)
    }

    fn set_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace, value: T) -> Option<T> {
        let (entries, lookup) = self.entries_mut::<T>(state.id, at);
        entries.insert(lookup, value)
    }

    fn take_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> Option<T> {
        let (entries, lookup) = self.entries_mut::<T>(state.id, at);
        entries.remove(&lookup)
    }

    fn namespaces<T: StateType>(&self, state: ValueState<T>, out: &mut Vec<Namespace>) {
        out.clear();
        let (entries, (key, _)) = self.entries::<T>(state.id, Namespace::Global);
        let from = (key.clone(), Namespace::Global);
        out.extend(entries.range(from..).take_while(|((entry_key, _), _)| *entry_key == key).map(|((_, ns), _)| *ns));
    }

    fn for_each_value<T: StateType>(&self, state: ValueState<T>, visit: &mut dyn FnMut(&Value, Namespace, &T)) {
        for group in &self.table::<T>(state.id).groups {
            for ((key, namespace), value) in group {
                visit(key, *namespace, value);
            }
        }
    }

    fn list_add<T: StateType>(&mut self, state: ListState<T>, at: Namespace, item: T) {
        let (entries, lookup) = self.entries_mut::<Vec<T>>(state.id, at);
        entries.entry(lookup).or_default().push(item);
    }

    fn list<T: StateType>(&self, state: ListState<T>, at: Namespace) -> &[T] {
        let (entries, lookup) = self.entries::<Vec<T>>(state.id, at);
        entries.get(&lookup).map(Vec::as_slice).unwrap_or(&[])
    }

    fn list_take<T: StateType>(&mut self, state: ListState<T>, at: Namespace) -> Vec<T> {
        let (entries, lookup) = self.entries_mut::<Vec<T>>(state.id, at);
        entries.remove(&lookup).unwrap_or_default()
    }

    fn map_put<K: StateKey, V: StateType>(
        &mut self,
        map: MapState<K, V>,
        at: Namespace,
        key: K,
        value: V,
    ) -> Option<V> {
        let (entries, lookup) = self.entries_mut::<BTreeMap<K, V>>(map.id, at);
        entries.entry(lookup).or_default().insert(key, value)
    }

    fn map_get<K: StateKey, V: StateType>(&self, state: MapState<K, V>, at: Namespace, key: &K) -> Option<&V> {
        self.map(state, at)?.get(key)
    }

    fn map_remove<K: StateKey, V: StateType>(&mut self, state: MapState<K, V>, at: Namespace, key: &K) -> Option<V> {
        let (entries, lookup) = self.entries_mut::<BTreeMap<K, V>>(state.id, at);
        let map = entries.get_mut(&lookup)?;
        let removed = map.remove(key);
        if map.is_empty() {
            entries.remove(&lookup);
        }
        removed
    }

    fn map<K: StateKey, V: StateType>(&self, state: MapState<K, V>, at: Namespace) -> Option<&BTreeMap<K, V>> {
        let (entries, lookup) = self.entries::<BTreeMap<K, V>>(state.id, at);
        entries.get(&lookup)
    }

    fn reducing_add<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace, value: T) -> StateResult<()> {
        let (group, lookup) = (self.current_group, (self.current_key.clone(), at));
        let table = self.table_mut::<T>(state.id);
        let Some(reduce) = &table.reduce else {
            unreachable!("a reducing state handle always names a table with a reduce function");
        };
        match table.groups[group].get_mut(&lookup) {
            Some(current) => reduce(current, value),
            None => {
                table.groups[group].insert(lookup, value);
                Ok(())
            }
        }
    }

    fn reducing_get<T: StateType>(&self, state: ReducingState<T>, at: Namespace) -> Option<&T> {
        let (entries, lookup) = self.entries::<T>(state.id, at);
        entries.get(&lookup)
    }

    fn reducing_take<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace) -> Option<T> {
        let (entries, lookup) = self.entries_mut::<T>(state.id, at);
        entries.remove(&lookup)
    }

    fn entry_count(&self) -> usize {
        self.tables.iter().map(|table| table.len()).sum()
    }

    fn snapshot(&self) -> StateResult<KeyedSnapshot> {
        let mut groups = Vec::new();
        for key_group in self.range.iter() {
            if let Some(bytes) = self.encode_group((key_group - self.range.start) as usize)? {
                groups.push(KeyGroupSnapshot { key_group, bytes });
            }
        }
        Ok(KeyedSnapshot { max_parallelism: self.max_parallelism, key_group_range: self.range, groups })
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

/// A list state's codec: a count, then each item's bytes with their length.
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

/// A map state's codec: the `(key, value)` pairs in key order, each part with its length.
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
